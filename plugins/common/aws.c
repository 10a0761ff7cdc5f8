/* Signed calls to AWS services on the worker's loop: see aws.h. */
#include <mcpd/plugin.h>

#include "aws.h"
#include "aws_creds.h"
#include "aws_sigv4.h"
#include "aws_xml.h"
#include "backoff.h"
#include "clock.h"
#include "fetch.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#define MAX_ANSWER (8u << 20)
#define BACKOFF_BASE_MS 25
#define BACKOFF_CAP_MS 1000
#define MAX_ATTEMPTS 6

struct call {
	struct aws_client *c;
	const struct aws_service *s;
	char *target;               /* JSON: the X-Amz-Target; NULL for query */
	char *body;
	size_t len;
	uint64_t timeout_ms, deadline;  /* monotonic */
	unsigned attempts;
	int renewed, skew_fixed;    /* once each */
	aws_done_fn *done;
	void *arg;
	struct event *timer;        /* back-off, and failures reported from the loop */
	struct aws_result fail;     /* to report when the timer fires with no attempt */
	char fail_msg[700];
	LIST_ENTRY(call) link;
};

struct aws_client {
	struct event_base *base;
	const struct mcpd_host *host;
	struct fetcher *f;
	struct aws_chain *chain;
	char who[64];               /* "dynamodb", "sqs": for the log */
	char region[64];
	int64_t skew_s;             /* the services' clock minus ours */
	int failing;
	uint64_t last_ok_ms;        /* monotonic, of the last call answered 2xx */
	char last_error[700];
	LIST_HEAD(, call) calls;
};

static const char *
env(const char *name)
{
	const char *v = getenv(name);
	return v != NULL && *v != '\0' ? v : NULL;
}

int
aws_region(const char *region, const char *profile, char *out, size_t len, char *err, size_t errlen)
{
	const char *r = region && *region ? region : env("AWS_REGION") ? env("AWS_REGION") : env("AWS_DEFAULT_REGION");
	char what[600], pr[64], why[512];
	if (r == NULL && aws_creds_probe(profile, what, sizeof(what), pr, sizeof(pr), why, sizeof(why)) == 0 && pr[0])
		r = pr;
	if (r == NULL) {
		snprintf(err, errlen, "no region: set region: in the section, or AWS_REGION");
		return -1;
	}
	for (const char *p = r; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) {
			snprintf(err, errlen, "region %.64s is not a region name (like eu-west-1)", r);
			return -1;
		}
	if (strlen(r) >= len || strlen(r) > 32) {
		snprintf(err, errlen, "region %.64s is too long", r);
		return -1;
	}
	snprintf(out, len, "%s", r);
	return 0;
}

int
aws_service_init(struct aws_service *s, const char *name, const char *endpoint, const char *region,
    char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	char envname[64];
	snprintf(envname, sizeof(envname), "AWS_ENDPOINT_URL_%s", name);
	for (char *p = envname; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	const char *ep = endpoint && *endpoint ? endpoint : env(envname) ? env(envname) : env("AWS_ENDPOINT_URL");
	if (ep != NULL) {
		if ((size_t)snprintf(s->url, sizeof(s->url), "%s", ep) >= sizeof(s->url)) {
			snprintf(err, errlen, "endpoint %.64s... is too long", ep);
			return -1;
		}
	} else {
		snprintf(s->url, sizeof(s->url), "https://%s.%s.amazonaws.com/", name, region);
	}
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL;
	int rc = -1;
	if (u == NULL || curl_url_set(u, CURLUPART_URL, s->url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		snprintf(err, errlen, "endpoint %.300s is not a URL", s->url);
		goto done;
	}
	curl_url_get(u, CURLUPART_PORT, &port, 0);
	curl_url_get(u, CURLUPART_PATH, &path, 0);
	if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK && query != NULL && *query) {
		snprintf(err, errlen, "endpoint %.300s: no query string, please", s->url);
		goto done;
	}
	if (strcasecmp(scheme, "https") != 0 && strcasecmp(scheme, "http") != 0) {
		snprintf(err, errlen, "endpoint %.300s must be an http or https URL", s->url);
		goto done;
	}
	s->plain_http = strcasecmp(scheme, "http") == 0;
	snprintf(s->host, sizeof(s->host), "%s%s%s", host, port ? ":" : "", port ? port : "");
	snprintf(s->path, sizeof(s->path), "%s", path && *path ? path : "/");
	rc = 0;
done:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	return rc;
}

struct aws_client *
aws_client_new(struct event_base *base, const struct mcpd_host *host, const char *region, const char *profile,
    const char *who, char *err, size_t errlen)
{
	struct aws_client *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->base = base;
	c->host = host;
	snprintf(c->who, sizeof(c->who), "%s", who);
	snprintf(c->region, sizeof(c->region), "%s", region);
	LIST_INIT(&c->calls);
	if ((c->f = fetcher_new(base, "mcpd", err, errlen)) == NULL)
		goto fail;
	/* Calls in flight at once per worker; more wait for a connection. */
	fetcher_set_max_connections(c->f, 64);
	if ((c->chain = aws_chain_new(c->f, profile, region, host, err, errlen)) == NULL)
		goto fail;
	return c;
fail:
	aws_client_free(c);
	return NULL;
}

static void
call_free(struct call *k)
{
	LIST_REMOVE(k, link);
	if (k->timer != NULL)
		event_free(k->timer);
	free(k->target);
	free(k->body);
	free(k);
}

void
aws_client_free(struct aws_client *c)
{
	if (c == NULL)
		return;
	/* The fetcher first: its transfers point at calls. */
	fetcher_free(c->f);
	aws_chain_free(c->chain);
	while (!LIST_EMPTY(&c->calls))
		call_free(LIST_FIRST(&c->calls));
	free(c);
}

int
aws_client_status(const struct aws_client *c, char *why, size_t len)
{
	if (!c->failing)
		return 0;
	snprintf(why, len, "%s", c->last_error);
	return -1;
}

uint64_t
aws_client_idle_ms(const struct aws_client *c)
{
	return c->last_ok_ms ? mono_ms() - c->last_ok_ms : UINT64_MAX;
}

const char *
aws_client_source(const struct aws_client *c)
{
	return aws_chain_source(c->chain);
}

void
aws_json_error(const char *body, size_t len, char *type, size_t tlen, char *msg, size_t mlen)
{
	type[0] = msg[0] = '\0';
	cJSON *j = len > 0 ? cJSON_ParseWithLength(body, len) : NULL;
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "__type");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
	if (!cJSON_IsString(m))
		m = cJSON_GetObjectItemCaseSensitive(j, "Message");
	if (cJSON_IsString(t)) {
		const char *hash = strrchr(t->valuestring, '#');
		snprintf(type, tlen, "%s", hash ? hash + 1 : t->valuestring);
	}
	if (cJSON_IsString(m))
		snprintf(msg, mlen, "%s", m->valuestring);
	cJSON_Delete(j);
}

static int
is_throttling(const char *t)
{
	static const char *const names[] = { "ThrottlingException", "Throttling", "ThrottledException",
	    "ProvisionedThroughputExceededException", "RequestLimitExceeded", "TooManyRequestsException",
	    "RequestThrottled", "RequestThrottledException", "LimitExceededException", "TransactionInProgressException",
	    "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException", NULL };
	for (const char *const *n = names; *n; n++)
		if (strcmp(t, *n) == 0)
			return 1;
	return 0;
}

static int
is_expired_creds(const char *t)
{
	return strcmp(t, "ExpiredToken") == 0 || strcmp(t, "ExpiredTokenException") == 0 ||
	    strcmp(t, "RequestExpired") == 0;
}

static int
is_skew(const char *t, const char *m)
{
	return strcmp(t, "RequestTimeTooSkewed") == 0 || strcmp(t, "RequestExpired") == 0 ||
	    (strcmp(t, "InvalidSignatureException") == 0 && strstr(m, "expired") != NULL);
}

/* Errors that say the service cannot be used with these credentials. */
static int
is_auth(const char *t)
{
	static const char *const names[] = { "UnrecognizedClientException", "InvalidClientTokenId",
	    "SignatureDoesNotMatch", "InvalidSignatureException", "IncompleteSignature", "MissingAuthenticationToken",
	    "AccessDenied", "AccessDeniedException", "AuthFailure", "InvalidAccessKeyId", "InvalidToken",
	    "ExpiredToken", "ExpiredTokenException", "MissingAuthenticationTokenException",
	    "NotAuthorized", NULL };
	for (const char *const *n = names; *n; n++)
		if (strcmp(t, *n) == 0)
			return 1;
	return 0;
}

static void attempt(struct call *k);

static void
finish(struct call *k, const struct aws_result *r)
{
	struct aws_client *c = k->c;
	/* Readiness follows whether the service answers and accepts us. */
	int down = r->type != NULL && (r->status == 0 || r->status >= 500 || is_auth(r->type) ||
	    is_throttling(r->type) || strcmp(r->type, "CredentialsError") == 0);
	if (down) {
		if (!c->failing || strcmp(c->last_error, r->message) != 0)
			c->host->log(MCPD_LOG_WARN, "%s: %s", c->who, r->message);
		snprintf(c->last_error, sizeof(c->last_error), "%s", r->message);
		c->failing = 1;
	} else if (r->status >= 200 && r->status < 500) {
		if (c->failing)
			c->host->log(MCPD_LOG_NOTICE, "%s: the service answers again", c->who);
		c->failing = 0;
	}
	if (r->status >= 200 && r->status < 300)
		c->last_ok_ms = mono_ms();
	/* The message may be in k (a failure reported from the loop). */
	char msg[sizeof(k->fail_msg)];
	struct aws_result out = *r;
	if (r->message != NULL) {
		snprintf(msg, sizeof(msg), "%s", r->message);
		out.message = msg;
	}
	aws_done_fn *done = k->done;
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
	if (k->fail.message != NULL) {
		struct aws_result r = k->fail;
		finish(k, &r);
		return;
	}
	attempt(k);
}

/* Reports a failure from the loop (never inside aws_json). */
static void
fail_later(struct call *k, const char *type, const char *prefix, const char *detail)
{
	snprintf(k->fail_msg, sizeof(k->fail_msg), "%s%s", prefix, detail);
	k->fail.status = 0;
	k->fail.body = "";
	k->fail.len = 0;
	k->fail.type = type;
	k->fail.message = k->fail_msg;
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
	uint64_t now = mono_ms();
	if (now + delay + 10 >= k->deadline)
		return 0;
	struct timeval tv = { (time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000 };
	evtimer_add(k->timer, &tv);
	return 1;
}

static void
answered(void *arg, const struct fetch_result *fr)
{
	struct call *k = arg;
	struct aws_client *c = k->c;
	struct aws_result r = { fr->status, fr->body, fr->len, NULL, NULL };
	char type[128] = "", msg[512] = "", text[1024];
	if (fr->error != NULL) {
		snprintf(text, sizeof(text), "%s %s: %s", k->s->name, k->s->url, fr->error);
		if (retry(k))
			return;
		r.status = 0;
		r.type = "";
		r.message = text;
		finish(k, &r);
		return;
	}
	if (fr->status >= 200 && fr->status < 300) {
		finish(k, &r);
		return;
	}
	/* JSON for the JSON protocol, XML for the query one; some front ends
	 * (and emulators) answer auth errors in XML whatever was asked. */
	if (k->target != NULL)
		aws_json_error(fr->body, fr->len, type, sizeof(type), msg, sizeof(msg));
	if (type[0] == '\0') {
		aws_xml_text(fr->body, "Code", type, sizeof(type));
		aws_xml_text(fr->body, "Message", msg, sizeof(msg));
	}
	if (type[0] == '\0')
		snprintf(type, sizeof(type), fr->status == 403 ? "AccessDenied" : "HTTP%ld", fr->status);
	/* The service's clock: sign with it from now on. */
	if (is_skew(type, msg) && !k->skew_fixed && fr->date > 0) {
		k->skew_fixed = 1;
		int64_t skew = fr->date - (int64_t)time(NULL);
		c->host->log(MCPD_LOG_WARN, "%s: the service says our clock is off (%s); signing with its clock "
		    "(%+llds) from now on", c->who, type, (long long)skew);
		c->skew_s = skew;
		if (retry(k))
			return;
	}
	if (is_expired_creds(type) && !k->renewed) {
		k->renewed = 1;
		aws_creds_invalidate(c->chain);
		if (retry(k))
			return;
	}
	if ((fr->status >= 500 || is_throttling(type)) && retry(k))
		return;
	if (is_auth(type))
		snprintf(text, sizeof(text), "%s refused the request signed with the credentials from %s: %s%s%s",
		    k->s->name, aws_chain_source(c->chain), type, msg[0] ? ": " : "", msg);
	else
		snprintf(text, sizeof(text), "%s: %s%s%s", k->s->name, type, msg[0] ? ": " : "", msg);
	r.type = type;
	r.message = text;
	finish(k, &r);
}

static void
got_creds(void *arg, const struct aws_creds *cr, const char *why)
{
	struct call *k = arg;
	struct aws_client *c = k->c;
	if (cr == NULL) {
		fail_later(k, "CredentialsError", "no AWS credentials: ", why);
		return;
	}
	char amz[17], hash[65], auth[1024], err[300];
	time_t when = time(NULL) + (time_t)c->skew_s;
	aws_amz_date(when, amz);
	aws_sha256_hex(k->body, k->len, hash);
	const char *ctype = !k->target ? "application/x-www-form-urlencoded; charset=utf-8" :
	    k->s->json11 ? "application/x-amz-json-1.1" : "application/x-amz-json-1.0";
	struct aws_header h[6] = {
		{ "Host", k->s->host }, { "X-Amz-Date", amz }, { "Content-Type", ctype },
		{ "X-Amz-Content-Sha256", hash },
	};
	size_t n = 4;
	if (k->target != NULL)
		h[n++] = (struct aws_header){ "X-Amz-Target", k->target };
	if (cr->token != NULL)
		h[n++] = (struct aws_header){ "X-Amz-Security-Token", cr->token };
	struct aws_sign s = { "POST", k->s->path, NULL, h, n, k->body, k->len, c->region, k->s->name,
	    cr->access_key, cr->secret_key, when };
	if (strpbrk(cr->access_key, "\r\n/ ,") != NULL || (cr->token != NULL && strpbrk(cr->token, "\r\n") != NULL)) {
		fail_later(k, "CredentialsError", "", "the credentials hold characters no header can carry");
		return;
	}
	if (aws_sigv4_authorization(&s, auth, sizeof(auth)) < 0) {
		fail_later(k, "CredentialsError", "", "cannot sign the request");
		return;
	}
	char *lines[7] = { NULL };
	size_t nl = 0;
	int ok = 1;
	for (size_t i = 1; i < n && ok; i++)     /* curl sends Host itself */
		ok = asprintf(&lines[nl++], "%s: %s", h[i].name, h[i].value) >= 0;
	ok = ok && asprintf(&lines[nl++], "Authorization: %s", auth) >= 0;
	OPENSSL_cleanse(auth, sizeof(auth));
	if (!ok) {
		for (size_t i = 0; i < nl; i++)
			free(lines[i]);
		fail_later(k, "", "", "out of memory");
		return;
	}
	lines[nl] = NULL;
	struct fetch_request rq = { "POST", (const char *const *)lines, k->body, k->len, k->s->plain_http };
	struct fetch_opts o = { k->timeout_ms, MAX_ANSWER, NULL, 0 };
	k->attempts++;
	int rc = fetch_request(c->f, k->s->url, &rq, &o, answered, k, err, sizeof(err));
	for (size_t i = 0; i < nl; i++) {
		OPENSSL_cleanse(lines[i], strlen(lines[i]));
		free(lines[i]);
	}
	if (rc < 0)
		fail_later(k, "", "", err);
}

static void
attempt(struct call *k)
{
	k->fail.message = NULL;
	aws_creds_get(k->c->chain, got_creds, k);
}

static void
start(struct aws_client *c, const struct aws_service *s, const char *target, const char *body, size_t len,
    uint64_t timeout_ms, uint64_t budget_ms, aws_done_fn *done, void *arg)
{
	struct call *k = calloc(1, sizeof(*k));
	if (k == NULL) {
		struct aws_result r = { 0, "", 0, "", "out of memory" };
		done(arg, &r);
		return;
	}
	k->c = c;
	k->s = s;
	k->done = done;
	k->arg = arg;
	k->timeout_ms = timeout_ms;
	k->deadline = mono_ms() + (budget_ms > timeout_ms ? budget_ms : timeout_ms);
	LIST_INSERT_HEAD(&c->calls, k, link);
	k->timer = evtimer_new(c->base, timer_fired, k);
	k->body = malloc(len + 1);
	if (k->timer == NULL || k->body == NULL || (target != NULL && (k->target = strdup(target)) == NULL)) {
		struct aws_result r = { 0, "", 0, "", "out of memory" };
		call_free(k);
		done(arg, &r);
		return;
	}
	memcpy(k->body, body, len);
	k->body[len] = '\0';
	k->len = len;
	attempt(k);
}

void
aws_json(struct aws_client *c, const struct aws_service *s, const char *target, const char *body, size_t len,
    uint64_t timeout_ms, uint64_t budget_ms, aws_done_fn *done, void *arg)
{
	start(c, s, target, body, len, timeout_ms, budget_ms, done, arg);
}

void
aws_query(struct aws_client *c, const struct aws_service *s, const char *body, uint64_t timeout_ms,
    uint64_t budget_ms, aws_done_fn *done, void *arg)
{
	start(c, s, NULL, body, strlen(body), timeout_ms, budget_ms, done, arg);
}
