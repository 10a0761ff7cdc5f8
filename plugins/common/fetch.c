/* libcurl's multi-socket interface on a libevent loop: curl says which
 * sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to wake it
 * (CURLMOPT_TIMERFUNCTION); the loop tells curl what happened. */
#include "fetch.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <openssl/crypto.h>

struct watch {                  /* one socket curl asked us to watch */
	struct fetcher *f;
	curl_socket_t fd;
	struct event *ev;
	LIST_ENTRY(watch) link;
};

struct transfer {
	struct fetcher *f;
	CURL *easy;
	fetch_done_fn *done;
	void *arg;
	char *body;
	size_t len, cap, max;
	int too_big;
	int any_status;             /* a POST: the caller judges the status */
	char *post;                 /* the POST's body (it may hold a token), wiped when done */
	size_t post_len;
	struct curl_slist *headers;
	int64_t max_age;
	int64_t date;
	char errbuf[CURL_ERROR_SIZE];
	LIST_ENTRY(transfer) link;
};

struct fetcher {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	char *user_agent;
	LIST_HEAD(, watch) watches;
	LIST_HEAD(, transfer) transfers;
};

static void
transfer_free(struct transfer *t)
{
	LIST_REMOVE(t, link);
	if (t->easy != NULL) {
		curl_multi_remove_handle(t->f->multi, t->easy);
		curl_easy_cleanup(t->easy);
	}
	free(t->body);
	if (t->post != NULL) {
		OPENSSL_cleanse(t->post, t->post_len);
		free(t->post);
	}
	curl_slist_free_all(t->headers);
	free(t);
}

/* Transfers curl has finished: their callbacks, on the loop. */
static void
reap(struct fetcher *f)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(f->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct transfer *t = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
		if (t == NULL)
			continue;
		CURLcode rc = m->data.result;
		struct fetch_result r = { NULL, t->body ? t->body : "", t->len, 0, t->max_age, t->date, 0 };
		char why[CURL_ERROR_SIZE + 64];
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &r.status);
		if (t->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
			snprintf(why, sizeof(why), "the answer is larger than %zu bytes", t->max);
			r.error = why;
		} else if (rc != CURLE_OK) {
			snprintf(why, sizeof(why), "%s", t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc));
			r.error = why;
			r.not_sent = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
			    rc == CURLE_COULDNT_RESOLVE_PROXY;
		} else if (r.status != 200 && !t->any_status) {
			snprintf(why, sizeof(why), "HTTP status %ld%s", r.status,
			    r.status >= 300 && r.status < 400 ? " (redirects are not followed: give the final URL)" : "");
			r.error = why;
		}
		fetch_done_fn *done = t->done;
		void *arg = t->arg;
		/* The body stays until the callback returns. */
		char *body = t->body;
		t->body = NULL;
		transfer_free(t);
		done(arg, &r);
		free(body);
	}
}

static void
socket_event(evutil_socket_t fd, short what, void *arg)
{
	struct fetcher *f = arg;
	int running, flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
	curl_multi_socket_action(f->multi, fd, flags, &running);
	reap(f);
}

static void
timer_event(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct fetcher *f = arg;
	int running;
	curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	reap(f);
}

static void
watch_free(struct watch *w)
{
	LIST_REMOVE(w, link);
	event_free(w->ev);
	free(w);
}

static int
on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	(void)easy;
	struct fetcher *f = userp;
	struct watch *w = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (w != NULL) {
			curl_multi_assign(f->multi, fd, NULL);
			watch_free(w);
		}
		return 0;
	}
	short events = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
	if (w == NULL) {
		if ((w = calloc(1, sizeof(*w))) == NULL)
			return -1;
		w->f = f;
		w->fd = fd;
		LIST_INSERT_HEAD(&f->watches, w, link);
		curl_multi_assign(f->multi, fd, w);
	} else {
		event_free(w->ev);
	}
	w->ev = event_new(f->base, fd, events, socket_event, f);
	if (w->ev == NULL || event_add(w->ev, NULL) < 0)
		return -1;
	return 0;
}

static int
on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	struct fetcher *f = userp;
	if (timeout_ms < 0)
		return evtimer_del(f->timer) < 0 ? -1 : 0;
	/* 0 too goes through the loop: curl must not be called from here. */
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	return evtimer_add(f->timer, &tv) < 0 ? -1 : 0;
}

struct fetcher *
fetcher_new(struct event_base *base, const char *user_agent, char *err, size_t errlen)
{
	struct fetcher *f = calloc(1, sizeof(*f));
	if (f == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	f->base = base;
	LIST_INIT(&f->watches);
	LIST_INIT(&f->transfers);
	f->multi = curl_multi_init();
	f->timer = evtimer_new(base, timer_event, f);
	f->user_agent = strdup(user_agent);
	if (f->multi == NULL || f->timer == NULL || f->user_agent == NULL) {
		snprintf(err, errlen, "cannot set up libcurl");
		fetcher_free(f);
		return NULL;
	}
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 4L);
	return f;
}

void
fetcher_free(struct fetcher *f)
{
	if (f == NULL)
		return;
	while (!LIST_EMPTY(&f->transfers))
		transfer_free(LIST_FIRST(&f->transfers));
	if (f->multi != NULL)
		curl_multi_cleanup(f->multi);
	while (!LIST_EMPTY(&f->watches))
		watch_free(LIST_FIRST(&f->watches));
	if (f->timer != NULL)
		event_free(f->timer);
	free(f->user_agent);
	free(f);
}

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
	struct transfer *t = arg;
	size_t len = size * n;
	if (len > t->max - t->len) {
		t->too_big = 1;
		return 0;       /* curl ends the transfer */
	}
	if (t->len + len + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 16384;
		while (cap < t->len + len + 1)
			cap *= 2;
		char *b = realloc(t->body, cap);
		if (b == NULL)
			return 0;
		t->body = b;
		t->cap = cap;
	}
	memcpy(t->body + t->len, data, len);
	t->len += len;
	t->body[t->len] = '\0';
	return len;
}

/* Cache-Control: max-age=N (the last one seen, for the final answer). */
static size_t
on_header(char *data, size_t size, size_t n, void *arg)
{
	struct transfer *t = arg;
	size_t len = size * n;
	if (len > 14 && strncasecmp(data, "HTTP/", 5) == 0) {
		t->max_age = -1;        /* a new answer (after 100 Continue) */
		t->date = -1;
	}
	if (len > 5 && len < 128 && strncasecmp(data, "date:", 5) == 0) {
		char d[128];
		memcpy(d, data + 5, len - 5);
		d[len - 5] = '\0';
		time_t when = curl_getdate(d, NULL);
		t->date = when > 0 ? (int64_t)when : -1;
		return len;
	}
	if (len < 14 || strncasecmp(data, "cache-control:", 14) != 0)
		return len;
	for (size_t i = 14; i + 8 < len; i++) {
		if (strncasecmp(data + i, "max-age=", 8) != 0)
			continue;
		int64_t v = 0;
		size_t j = i + 8;
		for (; j < len && data[j] >= '0' && data[j] <= '9' && v < 100000000; j++)
			v = v * 10 + (data[j] - '0');
		if (j > i + 8)
			t->max_age = v;
		break;
	}
	return len;
}

/* A transfer of url, set up and started: a GET (post and rq NULL), a
 * form POST (post) or any request (rq). */
static int
start(struct fetcher *f, const char *url, const struct fetch_post *post, const struct fetch_request *rq,
    const struct fetch_opts *o, fetch_done_fn *done, void *arg, char *err, size_t errlen)
{
	struct transfer *t = calloc(1, sizeof(*t));
	if (t == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	t->f = f;
	t->done = done;
	t->arg = arg;
	t->max = o->max_bytes;
	t->max_age = -1;
	t->date = -1;
	t->any_status = post != NULL || rq != NULL;
	LIST_INSERT_HEAD(&f->transfers, t, link);
	if ((t->easy = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "cannot set up libcurl");
		goto fail;
	}
	CURL *e = t->easy;
	int http = fetch_url_loopback(url) || (rq != NULL && rq->allow_http);
	int ok = curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, http ? "http,https" : "https") == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)o->timeout_ms) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_bytes) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "") == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_USERAGENT, f->user_agent) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, t) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_HEADERDATA, t) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_PRIVATE, t) == CURLE_OK &&
	    (o->ca_file == NULL || curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file) == CURLE_OK);
	if (ok && post != NULL) {
		/* curl does not copy the body: it stays ours, to be wiped. */
		ok = (t->post = strdup(post->body)) != NULL &&
		    (t->post_len = strlen(t->post), 1) &&
		    (t->headers = curl_slist_append(NULL, "Accept: application/json")) != NULL &&
		    (t->headers = curl_slist_append(t->headers,
		    "Content-Type: application/x-www-form-urlencoded")) != NULL &&
		    curl_easy_setopt(e, CURLOPT_POST, 1L) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->post) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(t->post)) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers) == CURLE_OK &&
		    (post->user == NULL ||
		    (curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_USERNAME, post->user) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_PASSWORD, post->password ? post->password : "") == CURLE_OK));
	}
	if (ok && rq != NULL) {
		/* No "Expect: 100-continue" (a round trip more for large bodies). */
		ok = (t->headers = curl_slist_append(NULL, "Expect:")) != NULL;
		for (size_t i = 0; ok && rq->headers != NULL && rq->headers[i] != NULL; i++)
			ok = (t->headers = curl_slist_append(t->headers, rq->headers[i])) != NULL;
		ok = ok && curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, rq->method) == CURLE_OK;
		if (ok && rq->body != NULL) {
			ok = (t->post = malloc(rq->body_len + 1)) != NULL;
			if (ok) {
				memcpy(t->post, rq->body, rq->body_len);
				t->post[rq->body_len] = '\0';
				t->post_len = rq->body_len;
			}
			ok = ok && curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->post) == CURLE_OK &&
			    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len) == CURLE_OK;
		} else if (ok && strcmp(rq->method, "GET") != 0) {
			ok = curl_easy_setopt(e, CURLOPT_POSTFIELDS, "") == CURLE_OK &&
			    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L) == CURLE_OK;
		}
	}
	if (!ok) {
		snprintf(err, errlen, "libcurl refuses the options for %.512s", url);
		goto fail;
	}
	if (curl_multi_add_handle(f->multi, e) != CURLM_OK) {
		snprintf(err, errlen, "libcurl cannot start a transfer");
		goto fail;
	}
	return 0;
fail:
	transfer_free(t);
	return -1;
}

int
fetch_get(struct fetcher *f, const char *url, const struct fetch_opts *o, fetch_done_fn *done, void *arg,
    char *err, size_t errlen)
{
	return start(f, url, NULL, NULL, o, done, arg, err, errlen);
}

int
fetch_post(struct fetcher *f, const char *url, const struct fetch_post *p, const struct fetch_opts *o,
    fetch_done_fn *done, void *arg, char *err, size_t errlen)
{
	return start(f, url, p, NULL, o, done, arg, err, errlen);
}

int
fetch_request(struct fetcher *f, const char *url, const struct fetch_request *rq, const struct fetch_opts *o,
    fetch_done_fn *done, void *arg, char *err, size_t errlen)
{
	return start(f, url, NULL, rq, o, done, arg, err, errlen);
}

void
fetcher_set_max_connections(struct fetcher *f, long n)
{
	curl_multi_setopt(f->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, n);
}

char *
fetch_form_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = malloc(3 * n + 1), *o = out;
	if (out == NULL)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.' || *p == '_' || *p == '*') {
			*o++ = (char)*p;
		} else if (*p == ' ') {
			*o++ = '+';
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

int
fetch_form_add(char **body, const char *name, const char *value)
{
	char *n = fetch_form_encode(name), *v = fetch_form_encode(value), *b = NULL;
	int rc = -1;
	if (n != NULL && v != NULL &&
	    asprintf(&b, "%s%s%s=%s", *body ? *body : "", *body ? "&" : "", n, v) >= 0) {
		if (*body != NULL) {
			OPENSSL_cleanse(*body, strlen(*body));
			free(*body);
		}
		*body = b;
		rc = 0;
	}
	if (v != NULL)
		OPENSSL_cleanse(v, strlen(v));
	free(n);
	free(v);
	return rc;
}

static int
loopback_host(const char *host)
{
	char buf[64];
	size_t n = strlen(host);
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(buf)) {
		memcpy(buf, host + 1, n - 2);
		buf[n - 2] = '\0';
		host = buf;
	}
	unsigned char a[16];
	if (inet_pton(AF_INET, host, a) == 1)
		return a[0] == 127;
	if (inet_pton(AF_INET6, host, a) == 1) {
		static const unsigned char one[16] = { [15] = 1 };
		return memcmp(a, one, 16) == 0;
	}
	/* curl resolves these to loopback itself, without DNS. */
	return strcasecmp(host, "localhost") == 0;
}

/* The scheme and host of url, or -1. */
static int
url_parts(const char *url, char **scheme, char **host)
{
	*scheme = *host = NULL;
	CURLU *u = curl_url();
	int rc = u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, host, 0) == CURLUE_OK ? 0 : -1;
	curl_url_cleanup(u);
	if (rc < 0) {
		curl_free(*scheme);
		curl_free(*host);
		*scheme = *host = NULL;
	}
	return rc;
}

int
fetch_url_loopback(const char *url)
{
	char *scheme, *host;
	if (url_parts(url, &scheme, &host) < 0)
		return 0;
	int yes = loopback_host(host);
	curl_free(scheme);
	curl_free(host);
	return yes;
}

int
fetch_url_allowed(const char *url, char *why, size_t len)
{
	char *scheme, *host;
	if (strncasecmp(url, "https://", 8) != 0 && strncasecmp(url, "http://", 7) != 0) {
		snprintf(why, len, "%.512s is not an https URL", url);
		return -1;
	}
	if (url_parts(url, &scheme, &host) < 0) {
		snprintf(why, len, "%.512s is not a valid URL", url);
		return -1;
	}
	int rc = 0;
	if (strcasecmp(scheme, "https") != 0 && !loopback_host(host)) {
		snprintf(why, len, "%.512s: only https URLs are fetched (plain http only on a loopback address)", url);
		rc = -1;
	}
	curl_free(scheme);
	curl_free(host);
	return rc;
}
