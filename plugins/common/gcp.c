/* Calls to Google Cloud's REST APIs on the worker's loop: see gcp.h. */
#include <mcpd/plugin.h>

#include "backoff.h"
#include "clock.h"
#include "fetch.h"
#include "gcp.h"
#include "gcp_auth.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#define MAX_ANSWER (40u << 20)          /* a page of a query: bounded by the plugins' page sizes */
#define BACKOFF_BASE_MS 25
#define BACKOFF_CAP_MS 1000
#define MAX_ATTEMPTS 6

struct call {
	struct gcp_client *c;
	char *method, *url;
	char *body;
	size_t len;
	unsigned flags;
	uint64_t timeout_ms, deadline;  /* monotonic */
	unsigned attempts;
	int renewed;
	gcp_done_fn *done;
	void *arg;
	struct event *timer;            /* back-off, and failures reported from the loop */
	int failing_later;
	char fail_msg[900];
	LIST_ENTRY(call) link;
};

struct gcp_client {
	struct event_base *base;
	const struct mcpd_host *host;
	struct fetcher *f;
	struct gcp_auth *auth;          /* NULL: an emulator, no credentials */
	char who[64];
	int failing;
	uint64_t last_ok_ms;
	char last_error[900];
	LIST_HEAD(, call) calls;
};

static const char *
env(const char *name)
{
	const char *v = getenv(name);
	return v != NULL && *v != '\0' ? v : NULL;
}

int
gcp_endpoint(const char *endpoint, const char *emulator_var, const char *google_url, char *url, size_t len,
    int *emulator, char *err, size_t errlen)
{
	const char *emu = emulator_var ? env(emulator_var) : NULL;
	*emulator = 0;
	if (endpoint != NULL && *endpoint != '\0') {
		if (strncasecmp(endpoint, "https://", 8) != 0 && strncasecmp(endpoint, "http://", 7) != 0) {
			snprintf(err, errlen, "endpoint %.300s must be an http or https URL", endpoint);
			return -1;
		}
		if (strpbrk(endpoint, "?# \r\n") != NULL) {
			snprintf(err, errlen, "endpoint %.300s: a URL without query, fragment or spaces, please", endpoint);
			return -1;
		}
		*emulator = strncasecmp(endpoint, "http://", 7) == 0;
		if ((size_t)snprintf(url, len, "%s", endpoint) >= len) {
			snprintf(err, errlen, "endpoint %.64s... is too long", endpoint);
			return -1;
		}
	} else if (emu != NULL) {
		if (strpbrk(emu, "/?#@ \r\n") != NULL) {
			snprintf(err, errlen, "%s must be host:port", emulator_var);
			return -1;
		}
		*emulator = 1;
		if ((size_t)snprintf(url, len, "http://%s", emu) >= len) {
			snprintf(err, errlen, "%s is too long", emulator_var);
			return -1;
		}
	} else {
		snprintf(url, len, "%s", google_url);
	}
	size_t n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		url[--n] = '\0';
	CURLU *u = curl_url();
	int ok = u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK;
	curl_url_cleanup(u);
	if (!ok) {
		snprintf(err, errlen, "endpoint %.300s is not a URL", url);
		return -1;
	}
	return 0;
}

struct gcp_client *
gcp_client_new(struct event_base *base, const struct mcpd_host *host, int use_auth, const char *who, char *err,
    size_t errlen)
{
	struct gcp_client *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->base = base;
	c->host = host;
	snprintf(c->who, sizeof(c->who), "%s", who);
	LIST_INIT(&c->calls);
	if ((c->f = fetcher_new(base, "mcpd", err, errlen)) == NULL)
		goto fail;
	/* Calls in flight at once per worker; more wait for a connection. */
	fetcher_set_max_connections(c->f, 64);
	if (use_auth && (c->auth = gcp_auth_new(c->f, host, err, errlen)) == NULL)
		goto fail;
	return c;
fail:
	gcp_client_free(c);
	return NULL;
}

static void
call_free(struct call *k)
{
	LIST_REMOVE(k, link);
	if (k->timer != NULL)
		event_free(k->timer);
	free(k->method);
	free(k->url);
	free(k->body);
	free(k);
}

void
gcp_client_free(struct gcp_client *c)
{
	if (c == NULL)
		return;
	/* The fetcher first: its transfers point at calls and at the source. */
	fetcher_free(c->f);
	gcp_auth_free(c->auth);
	while (!LIST_EMPTY(&c->calls))
		call_free(LIST_FIRST(&c->calls));
	free(c);
}

int
gcp_client_status(const struct gcp_client *c, char *why, size_t len)
{
	if (!c->failing)
		return 0;
	snprintf(why, len, "%s", c->last_error);
	return -1;
}

uint64_t
gcp_client_idle_ms(const struct gcp_client *c)
{
	return c->last_ok_ms ? mono_ms() - c->last_ok_ms : UINT64_MAX;
}

const char *
gcp_client_source(const struct gcp_client *c)
{
	return c->auth ? gcp_auth_source(c->auth) : "none (an emulator)";
}

void
gcp_error_of(const char *body, size_t len, char *code, size_t clen, char *msg, size_t mlen)
{
	code[0] = msg[0] = '\0';
	cJSON *j = len > 0 ? cJSON_ParseWithLength(body, len) : NULL;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(cJSON_IsArray(j) ? cJSON_GetArrayItem(j, 0) : j, "error");
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "status");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
	if (cJSON_IsString(s))
		snprintf(code, clen, "%s", s->valuestring);
	if (cJSON_IsString(m))
		snprintf(msg, mlen, "%s", m->valuestring);
	else if (j == NULL && len > 0) {
		/* Not JSON (a front end's page): its first line. */
		size_t n = strcspn(body, "\r\n");
		snprintf(msg, mlen, "%.*s", (int)(n < 200 ? n : 200), body);
	}
	cJSON_Delete(j);
}

int
gcp_project_missing(const struct gcp_result *r)
{
	char code[64], msg[600];
	if (r->code == NULL || strcmp(r->code, "NOT_FOUND") != 0 || r->body == NULL)
		return 0;
	gcp_error_of(r->body, r->len, code, sizeof(code), msg, sizeof(msg));
	return (strncmp(msg, "The project ", 12) == 0 && strstr(msg, "does not exist") != NULL) ||
	    strstr(msg, "project not found") != NULL;
}

char *
gcp_url_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(3 * strlen(s) + 1), *o = out;
	if (out == NULL)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

/* The status name of an HTTP status, when the body names none. */
static const char *
code_of_status(long status)
{
	switch (status) {
	case 400: return "INVALID_ARGUMENT";
	case 401: return "UNAUTHENTICATED";
	case 403: return "PERMISSION_DENIED";
	case 404: return "NOT_FOUND";
	case 409: return "ABORTED";
	case 412: return "FAILED_PRECONDITION";
	case 413: return "INVALID_ARGUMENT";
	case 429: return "RESOURCE_EXHAUSTED";
	case 501: return "UNIMPLEMENTED";
	case 503: return "UNAVAILABLE";
	case 504: return "DEADLINE_EXCEEDED";
	default: return status >= 500 ? "INTERNAL" : "UNKNOWN";
	}
}

static void attempt(struct call *k);

static void
finish(struct call *k, const struct gcp_result *r)
{
	struct gcp_client *c = k->c;
	/* Readiness follows whether the service answers and accepts us. */
	int down = r->code != NULL && (r->status == 0 || r->status >= 500 || r->status == 401 || r->status == 403 ||
	    r->status == 429 || strcmp(r->code, "CREDENTIALS") == 0);
	if (down && !(k->flags & GCP_QUIET)) {
		if (!c->failing || strcmp(c->last_error, r->message) != 0)
			c->host->log(MCPD_LOG_WARN, "%s", r->message);
		snprintf(c->last_error, sizeof(c->last_error), "%s", r->message);
		c->failing = 1;
	} else if (r->status >= 200 && r->status < 500 && r->status != 401 && r->status != 403 && r->status != 429) {
		if (c->failing)
			c->host->log(MCPD_LOG_NOTICE, "%s: the service answers again", c->who);
		c->failing = 0;
	}
	if (r->status >= 200 && r->status < 300)
		c->last_ok_ms = mono_ms();
	/* The message may be in k (a failure reported from the loop). */
	char msg[sizeof(k->fail_msg)];
	struct gcp_result out = *r;
	if (r->message != NULL) {
		snprintf(msg, sizeof(msg), "%s", r->message);
		out.message = msg;
	}
	gcp_done_fn *done = k->done;
	void *arg = k->arg;
	call_free(k);
	done(arg, &out);
}

static void
timer_fired(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct call *k = arg;
	if (k->failing_later) {
		struct gcp_result r = { 0, "", 0, k->fail_msg[0] == '!' ? "CREDENTIALS" : "",
		    k->fail_msg + (k->fail_msg[0] == '!') };
		finish(k, &r);
		return;
	}
	attempt(k);
}

/* Reports a failure from the loop (never inside gcp_call); credentials:
 * the token could not be had. */
static void
fail_later(struct call *k, int credentials, const char *detail)
{
	snprintf(k->fail_msg, sizeof(k->fail_msg), "%s%s", credentials ? "!" : "", detail);
	k->failing_later = 1;
	struct timeval now = { 0, 0 };
	evtimer_add(k->timer, &now);
}

/* Again after a back-off, if the budget allows. */
static int
retry(struct call *k)
{
	if (k->attempts >= MAX_ATTEMPTS)
		return 0;
	uint64_t delay = backoff_delay_ms(k->attempts, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
	if (mono_ms() + delay + 10 >= k->deadline)
		return 0;
	struct timeval tv = { (time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000 };
	evtimer_add(k->timer, &tv);
	return 1;
}

/* The path of url, for messages: no host (it is in the log already). */
static const char *
short_url(const char *url)
{
	const char *p = strstr(url, "://");
	p = p ? strchr(p + 3, '/') : NULL;
	return p ? p : url;
}

static void
answered(void *arg, const struct fetch_result *fr)
{
	struct call *k = arg;
	struct gcp_client *c = k->c;
	struct gcp_result r = { fr->status, fr->body, fr->len, NULL, NULL };
	char code[64] = "", msg[600] = "", text[900];
	if (fr->error != NULL && fr->status == 0) {
		snprintf(text, sizeof(text), "%s: %s %s: %s", c->who, k->method, k->url, fr->error);
		if (((k->flags & GCP_IDEMPOTENT) || fr->not_sent) && retry(k))
			return;
		r.code = "";
		r.message = text;
		finish(k, &r);
		return;
	}
	if (fr->error != NULL) {                /* too large */
		snprintf(text, sizeof(text), "%s: %s %s: %s", c->who, k->method, short_url(k->url), fr->error);
		r.status = 0;
		r.code = "";
		r.message = text;
		finish(k, &r);
		return;
	}
	if (fr->status >= 200 && fr->status < 300) {
		finish(k, &r);
		return;
	}
	gcp_error_of(fr->body, fr->len, code, sizeof(code), msg, sizeof(msg));
	if (code[0] == '\0')
		snprintf(code, sizeof(code), "%s", code_of_status(fr->status));
	if (fr->status == 401 && c->auth != NULL && !k->renewed) {
		k->renewed = 1;
		gcp_auth_invalidate(c->auth);
		if (retry(k))
			return;
	}
	int said_nothing_done = fr->status == 429 || fr->status == 503;
	if ((said_nothing_done || (fr->status >= 500 && (k->flags & GCP_IDEMPOTENT))) && retry(k))
		return;
	if (fr->status == 401 || fr->status == 403)
		snprintf(text, sizeof(text), "%s refused the call with the credentials from %s: %s%s%s", c->who,
		    gcp_client_source(c), code, msg[0] ? ": " : "", msg);
	else
		snprintf(text, sizeof(text), "%s: %s %s: %s%s%s", c->who, k->method, short_url(k->url), code,
		    msg[0] ? ": " : "", msg);
	r.code = code;
	r.message = text;
	finish(k, &r);
}

static void
send_with(struct call *k, const char *token)
{
	struct gcp_client *c = k->c;
	char err[600], *auth = NULL;
	if (token != NULL && asprintf(&auth, "Authorization: Bearer %s", token) < 0) {
		fail_later(k, 0, "out of memory");
		return;
	}
	const char *headers[] = { "Content-Type: application/json", "Accept: application/json", auth, NULL };
	struct fetch_request rq = { k->method, headers, k->body, k->len, 1 };
	struct fetch_opts o = { k->timeout_ms, MAX_ANSWER, NULL, 0 };
	k->attempts++;
	int rc = fetch_request(c->f, k->url, &rq, &o, answered, k, err, sizeof(err));
	if (auth != NULL) {
		OPENSSL_cleanse(auth, strlen(auth));
		free(auth);
	}
	if (rc < 0)
		fail_later(k, 0, err);
}

static void
got_token(void *arg, const char *token, const char *why)
{
	struct call *k = arg;
	if (token == NULL) {
		char msg[800];
		snprintf(msg, sizeof(msg), "%s: no Google access token: %s", k->c->who, why ? why : "unknown");
		fail_later(k, 1, msg);
		return;
	}
	send_with(k, token);
}

static void
attempt(struct call *k)
{
	k->failing_later = 0;
	if (k->c->auth == NULL)
		send_with(k, NULL);
	else
		gcp_auth_token(k->c->auth, got_token, k);
}

void
gcp_call(struct gcp_client *c, const char *method, const char *url, const char *body, size_t len, unsigned flags,
    uint64_t timeout_ms, uint64_t budget_ms, gcp_done_fn *done, void *arg)
{
	struct call *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		struct gcp_result r = { 0, "", 0, "", "out of memory" };
		done(arg, &r);
		return;
	}
	k->c = c;
	k->done = done;
	k->arg = arg;
	k->flags = flags;
	k->timeout_ms = timeout_ms;
	k->deadline = mono_ms() + (budget_ms > timeout_ms ? budget_ms : timeout_ms);
	LIST_INSERT_HEAD(&c->calls, k, link);
	k->timer = evtimer_new(c->base, timer_fired, k);
	k->method = strdup(method);
	k->url = strdup(url);
	if (body != NULL && (k->body = malloc(len + 1)) != NULL) {
		memcpy(k->body, body, len);
		k->body[len] = '\0';
		k->len = len;
	}
	if (k->timer == NULL || k->method == NULL || k->url == NULL || (body != NULL && k->body == NULL)) {
		struct gcp_result r = { 0, "", 0, "", "out of memory" };
		call_free(k);
		done(arg, &r);
		return;
	}
	attempt(k);
}
