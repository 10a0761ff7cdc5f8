/* Calls to the Cosmos DB REST API on the worker's loop: see cosmos_client.h. */
#include <mcpd/plugin.h>

#include "azure_auth.h"
#include "backoff.h"
#include "clock.h"
#include "cosmos_client.h"
#include "cosmos_sig.h"
#include "fetch.h"
#include "utf8.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_ANSWER (8u << 20)       /* a query's page is at most 4 MB */
#define MAX_KEY_FILE 4096
#define BACKOFF_BASE_MS 25
#define BACKOFF_CAP_MS 1000
#define MAX_ATTEMPTS 9              /* as the SDKs' throttling retries */
#define API_VERSION "2020-07-15"

struct call {
	struct cosmos_client *c;
	char *method, *rtype, *rlink, *url, *pk, *if_match, *continuation;
	long max_items;
	unsigned flags;
	char *body;
	size_t len;
	uint64_t timeout_ms, deadline;  /* monotonic */
	unsigned attempts;
	int renewed;                    /* the token fetched again, or the key read again: once */
	cosmos_done_fn *done;
	void *arg;
	struct event *timer;            /* back-off, and failures reported from the loop */
	char fail_msg[700];
	int fail_pending;
	LIST_ENTRY(call) link;
};

struct cosmos_client {
	struct event_base *base;
	const struct mcpd_host *host;
	struct fetcher *f;
	char who[32];
	char *endpoint, *key_file, *ca_file;
	int no_verify;
	unsigned char key[COSMOS_KEY_MAX];
	size_t keylen;
	struct timespec key_mtime;
	off_t key_size;
	struct azure_cred *cred;        /* without a key */
	char source[600];
	int failing;
	uint64_t last_answer_ms;        /* monotonic, of the last call answered */
	char last_error[700];
	LIST_HEAD(, call) calls;
};

int
cosmos_read_key(const char *path, unsigned char *key, size_t *keylen, char *why, size_t whylen)
{
	FILE *fp = fopen(path, "re");
	if (fp == NULL) {
		snprintf(why, whylen, "cannot read the key file %s: %s", path, strerror(errno));
		return -1;
	}
	char buf[MAX_KEY_FILE + 1];
	size_t n = fread(buf, 1, MAX_KEY_FILE + 1, fp);
	int bad = ferror(fp);
	fclose(fp);
	if (bad || n > MAX_KEY_FILE) {
		snprintf(why, whylen, "cannot read the key file %s: %s", path, bad ? "read error" : "too large");
		OPENSSL_cleanse(buf, sizeof(buf));
		return -1;
	}
	buf[n] = '\0';
	int rc = cosmos_key_decode(buf, key, keylen);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (rc < 0)
		snprintf(why, whylen, "the key file %s does not hold an account key (base64, as the portal shows it)", path);
	return rc;
}

static int
load_key(struct cosmos_client *c, char *err, size_t errlen)
{
	struct stat st;
	if (stat(c->key_file, &st) == 0) {
		c->key_mtime = st.st_mtim;
		c->key_size = st.st_size;
	}
	return cosmos_read_key(c->key_file, c->key, &c->keylen, err, errlen);
}

/* The key file changed since it was read: read it again. 1 when a new
 * key is in use. */
static int
reload_key(struct cosmos_client *c)
{
	struct stat st;
	char why[600];
	if (stat(c->key_file, &st) < 0 || (st.st_mtim.tv_sec == c->key_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == c->key_mtime.tv_nsec && st.st_size == c->key_size))
		return 0;
	unsigned char key[COSMOS_KEY_MAX];
	size_t len;
	c->key_mtime = st.st_mtim;
	c->key_size = st.st_size;
	if (cosmos_read_key(c->key_file, key, &len, why, sizeof(why)) < 0) {
		c->host->log(MCPD_LOG_WARN, "%s: %s", c->who, why);
		return 0;
	}
	int changed = len != c->keylen || CRYPTO_memcmp(key, c->key, len) != 0;
	memcpy(c->key, key, len);
	c->keylen = len;
	OPENSSL_cleanse(key, sizeof(key));
	if (changed)
		c->host->log(MCPD_LOG_NOTICE, "%s: the account key in %s changed: using the new one", c->who, c->key_file);
	return changed;
}

struct cosmos_client *
cosmos_client_new(struct event_base *base, const struct mcpd_host *host, const struct cosmos_conf *conf,
    const char *who, char *err, size_t errlen)
{
	struct cosmos_client *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->base = base;
	c->host = host;
	c->no_verify = conf->no_verify;
	snprintf(c->who, sizeof(c->who), "%s", who);
	LIST_INIT(&c->calls);
	if ((c->endpoint = strdup(conf->endpoint)) == NULL ||
	    (conf->ca_file != NULL && (c->ca_file = strdup(conf->ca_file)) == NULL) ||
	    (conf->key_file != NULL && (c->key_file = strdup(conf->key_file)) == NULL)) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((c->f = fetcher_new(base, "mcpd", err, errlen)) == NULL)
		goto fail;
	/* Calls in flight at once per worker; more wait for a connection. */
	fetcher_set_max_connections(c->f, 64);
	if (c->key_file != NULL) {
		if (load_key(c, err, errlen) < 0)
			goto fail;
		snprintf(c->source, sizeof(c->source), "the account key in %s", c->key_file);
	} else {
		if ((c->cred = azure_cred_new(c->f, conf->scope, conf->client_id, host, err, errlen)) == NULL)
			goto fail;
		snprintf(c->source, sizeof(c->source), "Entra ID tokens from %s", azure_cred_source(c->cred));
	}
	return c;
fail:
	cosmos_client_free(c);
	return NULL;
}

static void
call_free(struct call *k)
{
	LIST_REMOVE(k, link);
	if (k->timer != NULL)
		event_free(k->timer);
	free(k->method);
	free(k->rtype);
	free(k->rlink);
	free(k->url);
	free(k->pk);
	free(k->if_match);
	free(k->continuation);
	free(k->body);
	free(k);
}

void
cosmos_client_free(struct cosmos_client *c)
{
	if (c == NULL)
		return;
	/* The fetcher first: its transfers point at calls and at the credentials. */
	fetcher_free(c->f);
	azure_cred_free(c->cred);
	while (!LIST_EMPTY(&c->calls))
		call_free(LIST_FIRST(&c->calls));
	OPENSSL_cleanse(c->key, sizeof(c->key));
	free(c->endpoint);
	free(c->key_file);
	free(c->ca_file);
	free(c);
}

int
cosmos_client_status(const struct cosmos_client *c, char *why, size_t len)
{
	if (!c->failing)
		return 0;
	snprintf(why, len, "%s", c->last_error);
	return -1;
}

uint64_t
cosmos_client_idle_ms(const struct cosmos_client *c)
{
	return c->last_answer_ms ? mono_ms() - c->last_answer_ms : UINT64_MAX;
}

const char *
cosmos_client_source(const struct cosmos_client *c)
{
	return c->source;
}

static void
finish(struct call *k, const struct cosmos_result *r)
{
	struct cosmos_client *c = k->c;
	/* Readiness follows whether the service answers and accepts us. */
	int down = r->code != NULL && !(k->flags & COSMOS_QUIET) && (r->status == 0 || r->status >= 500 ||
	    r->status == 401 || r->status == 403 || r->status == 429);
	if (down) {
		if (!c->failing || strcmp(c->last_error, r->message) != 0)
			c->host->log(MCPD_LOG_WARN, "%s: %s", c->who, r->message);
		snprintf(c->last_error, sizeof(c->last_error), "%s", r->message);
		c->failing = 1;
	} else if (r->status >= 200 && r->status < 500 && r->status != 401 && r->status != 403 && r->status != 429) {
		if (c->failing)
			c->host->log(MCPD_LOG_NOTICE, "%s: the service answers again", c->who);
		c->failing = 0;
	}
	if (r->status != 0)
		c->last_answer_ms = mono_ms();
	/* The message may be in k (a failure reported from the loop). */
	char msg[sizeof(k->fail_msg)];
	struct cosmos_result out = *r;
	if (r->message != NULL) {
		snprintf(msg, sizeof(msg), "%s", r->message);
		out.message = msg;
	}
	cosmos_done_fn *done = k->done;
	void *arg = k->arg;
	call_free(k);
	done(arg, &out);
}

static void attempt(struct call *k);

static void
timer_fired(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct call *k = arg;
	if (k->fail_pending) {
		struct cosmos_result r = { 0, "", 0, "", "", 0, "", k->fail_msg };
		finish(k, &r);
		return;
	}
	attempt(k);
}

/* Reports a failure from the loop (never inside cosmos_request). */
static void
fail_later(struct call *k, const char *prefix, const char *detail)
{
	snprintf(k->fail_msg, sizeof(k->fail_msg), "%s%s", prefix, detail);
	k->fail_pending = 1;
	struct timeval now = { 0, 0 };
	evtimer_add(k->timer, &now);
}

/* Again after delay_ms (a back-off when UINT64_MAX), if the bounds allow. */
static int
retry(struct call *k, uint64_t delay_ms)
{
	if (k->attempts >= MAX_ATTEMPTS)
		return 0;
	uint64_t delay = delay_ms != UINT64_MAX ? delay_ms : backoff_delay_ms(k->attempts, BACKOFF_BASE_MS,
	    BACKOFF_CAP_MS);
	if (mono_ms() + delay + 10 >= k->deadline)
		return 0;
	struct timeval tv = { (time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000 };
	evtimer_add(k->timer, &tv);
	return 1;
}

/* Cosmos DB's error body: {"code": "...", "message": "..."}. */
static void
error_of(const char *body, size_t len, char *code, size_t clen, char *msg, size_t mlen)
{
	code[0] = msg[0] = '\0';
	cJSON *j = len > 0 ? cJSON_ParseWithLength(body, len) : NULL;
	const cJSON *cd = cJSON_GetObjectItemCaseSensitive(j, "code");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
	if (cJSON_IsString(cd))
		snprintf(code, clen, "%s", cd->valuestring);
	if (cJSON_IsString(m)) {
		/* The first line: the rest is activity ids and diagnostics. */
		size_t n = strcspn(m->valuestring, "\r\n");
		snprintf(msg, mlen, "%.*s", (int)(n < 300 ? n : 300), m->valuestring);
	}
	cJSON_Delete(j);
}

static const char *
status_name(long st)
{
	switch (st) {
	case 400: return "BadRequest";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "NotFound";
	case 408: return "RequestTimeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 412: return "PreconditionFailed";
	case 413: return "RequestEntityTooLarge";
	case 429: return "TooManyRequests";
	case 449: return "RetryWith";
	case 500: return "InternalServerError";
	case 503: return "ServiceUnavailable";
	default: return "";
	}
}

static void
answered(void *arg, const struct fetch_result *fr)
{
	struct call *k = arg;
	struct cosmos_client *c = k->c;
	char etag[256] = "", cont[4096] = "", sub[32] = "", text[1200], code[64], msg[400], after[32];
	if (fr->error != NULL) {
		snprintf(text, sizeof(text), "%s %s: %s", c->who, c->endpoint, fr->error);
		/* No connection made while the service is known to be away:
		 * failed at once rather than held to the call's bound (the
		 * probe finds the service back). */
		int away = fr->not_sent && c->failing;
		if (!away && ((k->flags & COSMOS_IDEMPOTENT) || fr->not_sent) && retry(k, UINT64_MAX))
			return;
		struct cosmos_result r = { 0, "", 0, "", "", 0, "", text };
		finish(k, &r);
		return;
	}
	fetch_header(fr, "etag", etag, sizeof(etag));
	fetch_header(fr, "x-ms-continuation", cont, sizeof(cont));
	fetch_header(fr, "x-ms-substatus", sub, sizeof(sub));
	struct cosmos_result r = { fr->status, fr->body, fr->len, etag, cont, strtol(sub, NULL, 10), NULL, NULL };
	if (fr->status >= 200 && fr->status < 300) {
		finish(k, &r);
		return;
	}
	error_of(fr->body, fr->len, code, sizeof(code), msg, sizeof(msg));
	if (code[0] == '\0')
		snprintf(code, sizeof(code), "%s", *status_name(fr->status) ? status_name(fr->status) : "HTTP");
	long st = fr->status;
	if ((st == 401 || st == 403) && !k->renewed) {
		k->renewed = 1;
		if (c->cred != NULL) {
			azure_token_invalidate(c->cred);
			if (retry(k, 0))
				return;
		} else if (st == 401 && reload_key(c) && retry(k, 0)) {
			return;
		}
	}
	if (st == 429) {
		/* The service says how long: waited, within the call's bound. */
		uint64_t wait = UINT64_MAX;
		if (fetch_header(fr, "x-ms-retry-after-ms", after, sizeof(after)) > 0 &&
		    strspn(after, "0123456789") == strlen(after) && strlen(after) < 10)
			wait = strtoull(after, NULL, 10);
		if (retry(k, wait))
			return;
		snprintf(text, sizeof(text), "%s: throttled (HTTP 429%s%s%s) for longer than the call may wait%s%s",
		    c->who, wait != UINT64_MAX ? ", retry after " : "", wait != UINT64_MAX ? after : "",
		    wait != UINT64_MAX ? " ms" : "", msg[0] ? ": " : "", msg);
		r.code = code;
		r.message = text;
		finish(k, &r);
		return;
	}
	int again = st == 503 || st == 449 || st == 410 || ((st == 408 || st == 500) && (k->flags & COSMOS_IDEMPOTENT));
	if (again && retry(k, UINT64_MAX))
		return;
	if (st == 401 || st == 403)
		snprintf(text, sizeof(text), "%s refused the request made with %s: HTTP %ld %s%s%s", c->who, c->source, st,
		    code, msg[0] ? ": " : "", msg);
	else
		snprintf(text, sizeof(text), "%s: HTTP %ld %s%s%s", c->who, st, code, msg[0] ? ": " : "", msg);
	r.code = code;
	r.message = text;
	finish(k, &r);
}

/* The partition key header's value: a JSON array of one string, ASCII only. */
static char *
pk_header(const char *pk)
{
	size_t n = strlen(pk);
	char *out = malloc(6 * n + 64), *o;
	if (out == NULL)
		return NULL;
	o = out + sprintf(out, "x-ms-documentdb-partitionkey: [\"");
	for (const unsigned char *p = (const unsigned char *)pk; *p; p++) {
		if (*p == '"' || *p == '\\') {
			*o++ = '\\';
			*o++ = (char)*p;
		} else if (*p < 0x20 || *p >= 0x7f) {
			/* bytes as JSON escapes: the header stays ASCII; UTF-8
			 * sequences become their code point. */
			uint32_t cp;
			size_t len = utf8_char(p, n - (size_t)(p - (const unsigned char *)pk), &cp);
			if (len == 0) {
				free(out);
				return NULL;            /* not UTF-8: the caller refused it */
			}
			p += len - 1;
			if (cp >= 0x10000) {
				cp -= 0x10000;
				o += sprintf(o, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
			} else {
				o += sprintf(o, "\\u%04x", cp);
			}
		} else {
			*o++ = (char)*p;
		}
	}
	strcpy(o, "\"]");
	return out;
}

/* signed_date: the x-ms-date the key signed (the same second, or the service
 * refuses it), or NULL under a token, which signs no date. */
static void
send_with(struct call *k, const char *auth, const char *signed_date)
{
	struct cosmos_client *c = k->c;
	char date[32], err[300];
	if (signed_date != NULL)
		snprintf(date, sizeof(date), "%s", signed_date);
	else
		cosmos_date(time(NULL), date);
	char *lines[16] = { NULL };
	size_t n = 0;
	int ok = asprintf(&lines[n++], "x-ms-date: %s", date) >= 0 &&
	    asprintf(&lines[n++], "Authorization: %s", auth) >= 0 &&
	    (lines[n++] = strdup("x-ms-version: " API_VERSION)) != NULL &&
	    (lines[n++] = strdup("Accept: application/json")) != NULL;
	if (ok && k->body != NULL)
		ok = (lines[n++] = strdup(k->flags & COSMOS_QUERY ? "Content-Type: application/query+json" :
		    "Content-Type: application/json")) != NULL;
	if (ok && k->pk != NULL)
		ok = (lines[n++] = pk_header(k->pk)) != NULL;
	if (ok && k->if_match != NULL)
		ok = asprintf(&lines[n++], "If-Match: %s", k->if_match) >= 0;
	if (ok && (k->flags & COSMOS_UPSERT))
		ok = (lines[n++] = strdup("x-ms-documentdb-is-upsert: True")) != NULL;
	if (ok && (k->flags & COSMOS_QUERY))
		ok = (lines[n++] = strdup("x-ms-documentdb-isquery: True")) != NULL;
	if (ok && k->max_items > 0)
		ok = asprintf(&lines[n++], "x-ms-max-item-count: %ld", k->max_items) >= 0;
	if (ok && k->continuation != NULL)
		ok = asprintf(&lines[n++], "x-ms-continuation: %s", k->continuation) >= 0;
	if (ok && (k->flags & COSMOS_BATCH))
		ok = (lines[n++] = strdup("x-ms-cosmos-is-batch-request: True")) != NULL &&
		    (lines[n++] = strdup("x-ms-cosmos-batch-atomic: True")) != NULL;
	if (!ok) {
		for (size_t i = 0; i < n; i++)
			free(lines[i]);
		fail_later(k, "", "out of memory");
		return;
	}
	lines[n] = NULL;
	struct fetch_request rq = { k->method, (const char *const *)lines, k->body, k->body ? k->len : 0,
	    strncmp(c->endpoint, "http://", 7) == 0 };
	struct fetch_opts o = { k->timeout_ms, MAX_ANSWER, c->ca_file, c->no_verify };
	k->attempts++;
	int rc = fetch_request(c->f, k->url, &rq, &o, answered, k, err, sizeof(err));
	for (size_t i = 0; i < n; i++) {
		OPENSSL_cleanse(lines[i], strlen(lines[i]));
		free(lines[i]);
	}
	if (rc < 0)
		fail_later(k, "", err);
}

static void
got_token(void *arg, const char *token, const char *why)
{
	struct call *k = arg;
	char auth[8192 * 3];
	if (token == NULL) {
		fail_later(k, "no Entra ID token: ", why);
		return;
	}
	if (cosmos_auth_aad(token, auth, sizeof(auth)) < 0) {
		fail_later(k, "", "the Entra ID token is too long");
		return;
	}
	send_with(k, auth, NULL);
	OPENSSL_cleanse(auth, strlen(auth));
}

static void
attempt(struct call *k)
{
	struct cosmos_client *c = k->c;
	if (c->cred != NULL) {
		azure_token_get(c->cred, got_token, k);
		return;
	}
	char date[32], auth[512];
	cosmos_date(time(NULL), date);
	if (cosmos_auth_master(c->key, c->keylen, k->method, k->rtype, k->rlink, date, auth, sizeof(auth)) < 0) {
		fail_later(k, "", "cannot sign the request");
		return;
	}
	send_with(k, auth, date);
	OPENSSL_cleanse(auth, sizeof(auth));
}

static char *
dup_or_null(const char *s, int *ok)
{
	if (s == NULL)
		return NULL;
	char *d = strdup(s);
	if (d == NULL)
		*ok = 0;
	return d;
}

void
cosmos_request(struct cosmos_client *c, const struct cosmos_call *in, uint64_t timeout_ms, uint64_t budget_ms,
    cosmos_done_fn *done, void *arg)
{
	struct call *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		struct cosmos_result r = { 0, "", 0, "", "", 0, "", "out of memory" };
		done(arg, &r);
		return;
	}
	k->c = c;
	k->done = done;
	k->arg = arg;
	k->timeout_ms = timeout_ms;
	k->deadline = mono_ms() + (budget_ms > timeout_ms ? budget_ms : timeout_ms);
	k->flags = in->flags;
	k->max_items = in->max_items;
	LIST_INSERT_HEAD(&c->calls, k, link);
	int ok = (k->timer = evtimer_new(c->base, timer_fired, k)) != NULL &&
	    asprintf(&k->url, "%s%s", c->endpoint, in->path) >= 0;
	if (!ok)
		k->url = NULL;
	k->method = dup_or_null(in->method, &ok);
	k->rtype = dup_or_null(in->rtype, &ok);
	k->rlink = dup_or_null(in->rlink, &ok);
	k->pk = dup_or_null(in->pk, &ok);
	k->if_match = dup_or_null(in->if_match, &ok);
	k->continuation = dup_or_null(in->continuation, &ok);
	if (ok && in->body != NULL) {
		if ((k->body = malloc(in->len + 1)) == NULL) {
			ok = 0;
		} else {
			memcpy(k->body, in->body, in->len);
			k->body[in->len] = '\0';
			k->len = in->len;
		}
	}
	if (!ok || (k->continuation != NULL && strpbrk(k->continuation, "\r\n") != NULL) ||
	    (k->if_match != NULL && strpbrk(k->if_match, "\r\n") != NULL)) {
		struct cosmos_result r = { 0, "", 0, "", "", 0, "", ok ? "a header with a line break" : "out of memory" };
		call_free(k);
		done(arg, &r);
		return;
	}
	if (k->pk != NULL) {
		char *h = pk_header(k->pk);
		if (h == NULL) {
			struct cosmos_result r = { 0, "", 0, "", "", 0, "", "a partition key that is not UTF-8" };
			call_free(k);
			done(arg, &r);
			return;
		}
		free(h);
	}
	attempt(k);
}
