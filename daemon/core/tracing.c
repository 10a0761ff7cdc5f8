/* OpenTelemetry spans and their OTLP/HTTP export (see tracing.h). The
 * encoding is OTLP's JSON form of ExportTraceServiceRequest: ids in hex,
 * 64-bit integers as decimal strings, enums as numbers. */
#include "tracing.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "paths.h"
#include "traceparent.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_BODY_ANSWER 65536   /* what we read of a collector's answer */
#define FAIL_LOG_EVERY_US 60000000
#define MAX_ATTR 1024           /* bytes of a string attribute */
#define MAX_ATTEMPTS 10         /* of one batch; tracing.retry bounds the time too */
#define BACKOFF_FIRST_MS 1000   /* then doubled, up to BACKOFF_MAX_MS */
#define BACKOFF_MAX_MS 16000
#define RETRY_AFTER_MAX_S 30

struct sock {
	curl_socket_t fd;
	struct event *ev;
};

static struct {
	const struct config *cfg;
	struct event_base *base;
	double sample;
	CURLM *multi;
	struct event *curl_timer;   /* libcurl's own timeouts */
	struct event *flush;        /* the batch timer */
	int flush_armed;
	char *url;
	struct curl_slist *headers;
	char *prefix;               /* the envelope up to the spans, and after them */
	const char *suffix;
	char **queue;               /* ring of encoded spans */
	size_t cap, head, n;
	CURL *easy;                 /* the export in flight, or NULL */
	char *body;                 /* the batch being sent, or waiting to be again */
	size_t body_len;
	size_t in_flight;           /* spans in it */
	unsigned attempt;           /* of sending body */
	uint64_t first_us;          /* when its first attempt began */
	struct event *retry;
	uint64_t last_fail_log;
	uint64_t rng[2];
	uint64_t epoch_ns;          /* the wall clock at monotonic 0 */
	void (*flushed)(void *);    /* tracing_flush's, once the queue is out */
	void *flushed_arg;
	int on;
} T;

static struct trace_ctx cur;
static int cur_set;

/* The Lambda invocation's trace (tracing_invocation). */
static struct {
	char trace_id[33];          /* "" for none */
	char parent_id[17];         /* "" when the header had no Parent */
	int sampled;                /* 1, 0, -1: not said */
} inv;

int
tracing_enabled(void)
{
	return T.on;
}

/* ---- ids and sampling ---- */

static uint64_t
rnd(void)
{
	/* xorshift128+: ids need to be unique, not secret */
	uint64_t s1 = T.rng[0];
	const uint64_t s0 = T.rng[1];
	T.rng[0] = s0;
	s1 ^= s1 << 23;
	T.rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
	return T.rng[1] + s0;
}

static void
seed(void)
{
	if (T.rng[0] != 0 || T.rng[1] != 0)
		return;
	if (random_bytes(T.rng, sizeof(T.rng)) < 0 || (T.rng[0] == 0 && T.rng[1] == 0)) {
		T.rng[0] = (uint64_t)getpid() << 32 ^ monotonic_us();
		T.rng[1] = (uint64_t)time(NULL) | 1;
	}
}

static void
hex_id(char *out, size_t bytes)
{
	static const char digits[] = "0123456789abcdef";
	uint64_t v;
	do {
		int zero = 1;
		for (size_t i = 0; i < bytes; i += 8) {
			v = rnd();
			for (size_t j = 0; j < 16; j++) {
				out[2 * i + j] = digits[(v >> (60 - 4 * j)) & 15];
				zero &= out[2 * i + j] == '0';
			}
		}
		out[2 * bytes] = '\0';
		if (!zero)
			return;
	} while (1);
}

void
tracing_root(struct trace_ctx *ctx, const char *tp, uint64_t start_us)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->start_us = start_us;
	char tid[33];
	int parented = tp != NULL && strlen(tp) <= 512 && traceparent_parse(tp, strlen(tp), tid) == 0;
	if (parented) {
		memcpy(ctx->trace_id, tid, sizeof(tid));
		memcpy(ctx->parent_id, tp + 36, 16);
		ctx->parent_id[16] = '\0';
	}
	int invoked = !parented && inv.trace_id[0] != '\0';
	if (invoked) {
		memcpy(ctx->trace_id, inv.trace_id, sizeof(inv.trace_id));
		memcpy(ctx->parent_id, inv.parent_id, sizeof(inv.parent_id));
	}
	if (!T.on)
		return;
	seed();
	if (parented) {
		/* The parent decided (W3C trace-flags: bit 0 is sampled). */
		int flags = (int)strtol((char[3]){ tp[53], tp[54], '\0' }, NULL, 16);
		ctx->sampled = flags & 1;
	} else if (invoked && inv.sampled == 1) {
		ctx->sampled = 1;
	} else {
		if (!invoked)
			hex_id(ctx->trace_id, 16);
		ctx->sampled = T.sample >= 1.0 || (T.sample > 0.0 &&
		    (double)(rnd() >> 11) / (double)(1ULL << 53) < T.sample);
	}
	hex_id(ctx->span_id, 8);
}

int
tracing_invocation(const char *xray)
{
	if (xray == NULL || xray[0] == '\0') {
		memset(&inv, 0, sizeof(inv));
		return 0;
	}
	return traceparent_from_xray(xray, inv.trace_id, inv.parent_id, &inv.sampled);
}

void
tracing_child(struct trace_ctx *ctx, const struct trace_ctx *parent, uint64_t start_us)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->start_us = start_us;
	if (parent == NULL || parent->trace_id[0] == '\0')
		return;
	memcpy(ctx->trace_id, parent->trace_id, sizeof(ctx->trace_id));
	if (!T.on || !parent->sampled)
		return;
	memcpy(ctx->parent_id, parent->span_id, sizeof(ctx->parent_id));
	ctx->sampled = 1;
	hex_id(ctx->span_id, 8);
}

int
tracing_traceparent(const struct trace_ctx *ctx, char *out, size_t len)
{
	if (ctx == NULL || ctx->trace_id[0] == '\0' || ctx->span_id[0] == '\0' || len < 56)
		return -1;
	snprintf(out, len, "00-%s-%s-%s", ctx->trace_id, ctx->span_id, ctx->sampled ? "01" : "00");
	return 0;
}

const struct trace_ctx *
tracing_current(void)
{
	return cur_set ? &cur : NULL;
}

void
tracing_push(const struct trace_ctx *ctx, struct trace_ctx *saved)
{
	if (cur_set)
		*saved = cur;
	else
		saved->trace_id[0] = '\0';
	cur_set = ctx != NULL && ctx->trace_id[0] != '\0';
	if (cur_set)
		cur = *ctx;
}

void
tracing_pop(const struct trace_ctx *saved)
{
	cur_set = saved->trace_id[0] != '\0';
	if (cur_set)
		cur = *saved;
}

/* ---- encoding ---- */

/* Spans are timed on the monotonic clock and given wall-clock times with
 * one offset taken at start, so that a child never seems to begin before
 * its parent. */
static uint64_t
unix_ns(uint64_t mono_us)
{
	return T.epoch_ns + mono_us * 1000;
}

static void
add_attr(cJSON *list, const char *key, const char *s, const int64_t *i)
{
	cJSON *a = cJSON_CreateObject();
	cJSON *v = cJSON_CreateObject();
	char num[24];
	cJSON_AddStringToObject(a, "key", key);
	if (s != NULL && strlen(s) > MAX_ATTR) {
		/* A client's value (a request id, a URI) may be as long as a
		 * body: cut, at a character's start. */
		char cut[MAX_ATTR + 1];
		size_t n = MAX_ATTR;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
		memcpy(cut, s, n);
		cut[n] = '\0';
		cJSON_AddStringToObject(v, "stringValue", cut);
	} else if (s != NULL) {
		cJSON_AddStringToObject(v, "stringValue", s);
	} else {
		snprintf(num, sizeof(num), "%lld", (long long)*i);
		cJSON_AddStringToObject(v, "intValue", num);
	}
	cJSON_AddItemToObject(a, "value", v);
	cJSON_AddItemToArray(list, a);
}

static void arm_flush(int now);
static void check_flushed(void);
static void send_body(void);

void
tracing_end(const struct trace_ctx *ctx, uint64_t end_us, const char *name,
    enum trace_kind kind, const char *error_type, const struct trace_attr *attrs, size_t nattrs)
{
	if (!T.on || ctx == NULL || !ctx->sampled)
		return;
	if (T.n == T.cap) {
		metrics_spans(0, 1, 0);
		return;
	}
	char num[24];
	cJSON *s = cJSON_CreateObject();
	cJSON_AddStringToObject(s, "traceId", ctx->trace_id);
	cJSON_AddStringToObject(s, "spanId", ctx->span_id);
	if (ctx->parent_id[0] != '\0')
		cJSON_AddStringToObject(s, "parentSpanId", ctx->parent_id);
	cJSON_AddStringToObject(s, "name", name);
	cJSON_AddNumberToObject(s, "kind", kind);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)unix_ns(ctx->start_us));
	cJSON_AddStringToObject(s, "startTimeUnixNano", num);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)unix_ns(end_us ? end_us : monotonic_us()));
	cJSON_AddStringToObject(s, "endTimeUnixNano", num);
	cJSON *list = cJSON_AddArrayToObject(s, "attributes");
	for (size_t i = 0; i < nattrs; i++) {
		if (attrs[i].type == TA_STR && attrs[i].s != NULL)
			add_attr(list, attrs[i].key, attrs[i].s, NULL);
		else if (attrs[i].type == TA_INT)
			add_attr(list, attrs[i].key, NULL, &attrs[i].i);
	}
	if (error_type != NULL)
		add_attr(list, "error.type", error_type, NULL);
	cJSON *st = cJSON_AddObjectToObject(s, "status");
	if (error_type != NULL) {
		cJSON_AddNumberToObject(st, "code", 2);
		cJSON_AddStringToObject(st, "message", error_type);
	}
	char *text = cJSON_PrintUnformatted(s);
	cJSON_Delete(s);
	if (text == NULL) {
		metrics_spans(0, 1, 0);
		return;
	}
	T.queue[(T.head + T.n) % T.cap] = text;
	T.n++;
	arm_flush(T.n >= T.cfg->tracing.batch);
}

size_t
tracing_queued(void)
{
	return T.n;
}

/* ---- export ---- */

/* A flush is over when nothing waits and nothing is in flight. */
static void
check_flushed(void)
{
	if (T.flushed == NULL || T.n > 0 || T.body != NULL)
		return;
	void (*done)(void *) = T.flushed;
	T.flushed = NULL;
	done(T.flushed_arg);
}

void
tracing_flush(void (*done)(void *), void *arg)
{
	if (!T.on || (T.n == 0 && T.body == NULL)) {
		done(arg);
		return;
	}
	T.flushed = done;
	T.flushed_arg = arg;
	if (T.body != NULL && T.easy == NULL) {
		/* A batch waits to be tried again: now, a last time. */
		evtimer_del(T.retry);
		send_body();
		return;
	}
	arm_flush(1);
}

/* What OTLP/HTTP lets an exporter try again: an answer that says later
 * (429, 502, 503, 504) and a failure on the way (no connection, a reset,
 * no answer in time), not one that would fail the same way again (a bad
 * certificate, a URL curl does not take). */
static int
retryable(CURLcode rc, long code)
{
	switch (rc) {
	case CURLE_OK:
		return code == 429 || code == 502 || code == 503 || code == 504;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return 1;
	default:
		return 0;
	}
}

/* The same batch again after an exponential back-off (1 s, 2 s, 4 s, ...
 * up to 16 s, less up to a quarter at random so that workers do not
 * come back together), or the collector's Retry-After (at most 30 s);
 * not when that would end past tracing.retry from its first attempt, nor
 * while a flush waits (a stopping worker, --lambda before its next
 * event: the flush's bound comes first). 0: given up. */
static int
retry_later(CURLcode rc, long code)
{
	if (!retryable(rc, code) || T.attempt >= MAX_ATTEMPTS || T.flushed != NULL)
		return 0;
	curl_off_t after = -1;
	if (rc != CURLE_OK || curl_easy_getinfo(T.easy, CURLINFO_RETRY_AFTER, &after) != CURLE_OK)
		after = 0;
	uint64_t ms;
	if (after > 0) {
		ms = (uint64_t)(after > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : after) * 1000;
	} else {
		unsigned shift = T.attempt - 1 < 5 ? T.attempt - 1 : 5;
		ms = (uint64_t)BACKOFF_FIRST_MS << shift;
		if (ms > BACKOFF_MAX_MS)
			ms = BACKOFF_MAX_MS;
		ms -= rnd() % (ms / 4 + 1);
	}
	if (monotonic_us() - T.first_us + ms * 1000 > T.cfg->tracing.retry_ms * 1000)
		return 0;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	return evtimer_add(T.retry, &tv) == 0;
}

static void
export_done(CURLcode rc)
{
	long code = 0;
	curl_easy_getinfo(T.easy, CURLINFO_RESPONSE_CODE, &code);
	int again = retry_later(rc, code);
	if (again) {
		/* the body stays for the next attempt */
	} else if (rc == CURLE_OK && code >= 200 && code < 300) {
		metrics_spans(T.in_flight, 0, 0);
	} else {
		metrics_spans(0, 0, T.in_flight);
		uint64_t now = monotonic_us();
		if (T.last_fail_log == 0 || now - T.last_fail_log >= FAIL_LOG_EVERY_US) {
			T.last_fail_log = now;
			if (rc != CURLE_OK)
				log_warn("tracing: %zu spans lost: %s: %s (attempt %u)", T.in_flight, T.url,
				    curl_easy_strerror(rc), T.attempt);
			else
				log_warn("tracing: %zu spans lost: %s answered HTTP %ld (attempt %u)", T.in_flight,
				    T.url, code, T.attempt);
		}
	}
	curl_multi_remove_handle(T.multi, T.easy);
	curl_easy_cleanup(T.easy);
	T.easy = NULL;
	if (again)
		return;
	free(T.body);
	T.body = NULL;
	T.in_flight = 0;
	if (T.n > 0)
		arm_flush(T.flushed != NULL || T.n >= T.cfg->tracing.batch);
	else
		check_flushed();
}

static void
check_done(void)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(T.multi, &left)) != NULL)
		if (m->msg == CURLMSG_DONE && m->easy_handle == T.easy)
			export_done(m->data.result);
}

static size_t
discard(char *data, size_t size, size_t n, void *arg)
{
	(void)data;
	size_t *seen = arg;
	*seen += size * n;
	return *seen > MAX_BODY_ANSWER ? 0 : size * n;
}

static size_t answer_seen;

/* The next batch out of the queue, as one request body. */
static void
export_batch(void)
{
	size_t k = T.n < T.cfg->tracing.batch ? T.n : (size_t)T.cfg->tracing.batch;
	size_t len = strlen(T.prefix) + strlen(T.suffix) + 1;
	for (size_t i = 0; i < k; i++)
		len += strlen(T.queue[(T.head + i) % T.cap]) + 1;
	char *body = malloc(len), *p = body;
	if (body == NULL) {
		arm_flush(0);   /* try again later; the queue bounds what waits */
		return;
	}
	p = stpcpy(p, T.prefix);
	for (size_t i = 0; i < k; i++) {
		char **q = &T.queue[(T.head + i) % T.cap];
		if (i > 0)
			*p++ = ',';
		p = stpcpy(p, *q);
		free(*q);
		*q = NULL;
	}
	p = stpcpy(p, T.suffix);
	T.head = (T.head + k) % T.cap;
	T.n -= k;
	T.body = body;
	T.body_len = (size_t)(p - body);
	T.in_flight = k;
	T.attempt = 0;
	T.first_us = monotonic_us();
	send_body();
}

/* One attempt at sending the batch held in T.body. */
static void
send_body(void)
{
	CURL *e = curl_easy_init();
	T.attempt++;
	answer_seen = 0;
	if (e != NULL) {
		curl_easy_setopt(e, CURLOPT_URL, T.url);
		curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
		curl_easy_setopt(e, CURLOPT_PROXY, "");
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)T.cfg->tracing.timeout_ms);
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)T.cfg->tracing.timeout_ms);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, T.body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)T.body_len);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, T.headers);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &answer_seen);
		char agent[64];
		snprintf(agent, sizeof(agent), "mcpd/%s", mcpd_version);
		curl_easy_setopt(e, CURLOPT_USERAGENT, agent);
		if (T.cfg->tracing.ca_file != NULL)
			curl_easy_setopt(e, CURLOPT_CAINFO, T.cfg->tracing.ca_file);
		T.easy = e;
		if (curl_multi_add_handle(T.multi, e) == CURLM_OK)
			return;
		T.easy = NULL;
		curl_easy_cleanup(e);
	}
	metrics_spans(0, 0, T.in_flight);
	free(T.body);
	T.body = NULL;
	T.in_flight = 0;
	if (T.n > 0)
		arm_flush(0);
	else
		check_flushed();
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (T.body != NULL && T.easy == NULL)
		send_body();
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	T.flush_armed = 0;
	if (T.body == NULL && T.n > 0)
		export_batch();
	else
		check_flushed();
}

/* Send soon: at once (a full batch), else after the interval. Nothing
 * goes while an export is in flight or waits to be tried again: its end
 * arms the timer again. */
static void
arm_flush(int now)
{
	if (T.body != NULL)
		return;
	if (now) {
		if (T.flush_armed)
			evtimer_del(T.flush);
		T.flush_armed = 1;
		event_active(T.flush, EV_TIMEOUT, 0);
		return;
	}
	if (T.flush_armed)
		return;
	uint64_t ms = T.cfg->tracing.interval_ms;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	T.flush_armed = evtimer_add(T.flush, &tv) == 0;
}

/* ---- libcurl on the event loop ---- */

static void
sock_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)arg;
	int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
	int running;
	curl_multi_socket_action(T.multi, fd, flags, &running);
	check_done();
}

static void
curl_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	int running;
	curl_multi_socket_action(T.multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done();
}

static int
curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	(void)easy;
	(void)userp;
	struct sock *s = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			event_free(s->ev);
			free(s);
			curl_multi_assign(T.multi, fd, NULL);
		}
		return 0;
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return -1;
		s->fd = fd;
		curl_multi_assign(T.multi, fd, s);
	} else {
		event_free(s->ev);
	}
	short ev = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
	s->ev = event_new(T.base, fd, ev, sock_cb, NULL);
	if (s->ev == NULL || event_add(s->ev, NULL) < 0)
		return -1;
	return 0;
}

static int
curl_timer(CURLM *multi, long ms, void *userp)
{
	(void)multi;
	(void)userp;
	if (ms < 0) {
		evtimer_del(T.curl_timer);
		return 0;
	}
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	return evtimer_add(T.curl_timer, &tv);
}

/* ---- setup ---- */

static char *
envelope(const struct config *cfg)
{
	cJSON *res = cJSON_CreateObject();
	cJSON *attrs = cJSON_AddArrayToObject(res, "attributes");
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	char inst[300];
	snprintf(inst, sizeof(inst), "%s/%ld", host, (long)getpid());
	add_attr(attrs, "service.name", cfg->tracing.service_name ? cfg->tracing.service_name :
	    cfg->server.name, NULL);
	add_attr(attrs, "service.version", cfg->server.version, NULL);
	add_attr(attrs, "service.instance.id", inst, NULL);
	add_attr(attrs, "telemetry.sdk.name", "mcpd", NULL);
	add_attr(attrs, "telemetry.sdk.language", "cpp", NULL);
	add_attr(attrs, "telemetry.sdk.version", mcpd_version, NULL);
	char *r = cJSON_PrintUnformatted(res);
	cJSON_Delete(res);
	if (r == NULL)
		return NULL;
	char *out = NULL;
	if (asprintf(&out, "{\"resourceSpans\":[{\"resource\":%s,\"scopeSpans\":[{\"scope\":"
	    "{\"name\":\"mcpd\",\"version\":\"%s\"},\"spans\":[", r, mcpd_version) < 0)
		out = NULL;
	cJSON_free(r);
	return out;
}

int
tracing_start(struct event_base *base, const struct config *cfg, char *err, size_t errlen)
{
	if (cfg->tracing.endpoint == NULL)
		return 0;
	memset(&T, 0, sizeof(T));
	T.cfg = cfg;
	T.base = base;
	T.sample = cfg->tracing.sample;
	T.cap = (size_t)cfg->tracing.queue;
	T.suffix = "]}]}]}";
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	T.epoch_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec - monotonic_us() * 1000;
	seed();
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "tracing: cannot initialize libcurl");
		return -1;
	}
	const char *u = cfg->tracing.endpoint;
	const char *path = strchr(strstr(u, "://") + 3, '/');
	/* A collector's base URL gets OTLP's traces path (as
	 * OTEL_EXPORTER_OTLP_ENDPOINT does); a URL with a path is used as is. */
	if (path == NULL || strcmp(path, "/") == 0) {
		if (asprintf(&T.url, "%.*s/v1/traces", (int)(path ? path - u : (ptrdiff_t)strlen(u)), u) < 0)
			T.url = NULL;
	} else {
		T.url = strdup(u);
	}
	T.headers = curl_slist_append(NULL, "Content-Type: application/json");
	for (size_t i = 0; T.headers != NULL && i < cfg->tracing.nheaders; i++)
		T.headers = curl_slist_append(T.headers, cfg->tracing.headers[i]);
	T.queue = calloc(T.cap, sizeof(*T.queue));
	T.prefix = envelope(cfg);
	T.multi = curl_multi_init();
	T.curl_timer = evtimer_new(base, curl_timer_cb, NULL);
	T.flush = evtimer_new(base, flush_cb, NULL);
	T.retry = evtimer_new(base, retry_cb, NULL);
	if (T.url == NULL || T.headers == NULL || T.queue == NULL || T.prefix == NULL ||
	    T.multi == NULL || T.curl_timer == NULL || T.flush == NULL || T.retry == NULL) {
		tracing_stop();
		snprintf(err, errlen, "tracing: out of memory");
		return -1;
	}
	curl_multi_setopt(T.multi, CURLMOPT_SOCKETFUNCTION, curl_socket);
	curl_multi_setopt(T.multi, CURLMOPT_TIMERFUNCTION, curl_timer);
	T.on = 1;
	return 0;
}

void
tracing_stop(void)
{
	if (T.easy != NULL) {
		curl_multi_remove_handle(T.multi, T.easy);
		curl_easy_cleanup(T.easy);
	}
	if (T.body != NULL)
		metrics_spans(0, 0, T.in_flight);
	if (T.n > 0)
		metrics_spans(0, 0, T.n);
	for (size_t i = 0; i < T.n; i++)
		free(T.queue[(T.head + i) % T.cap]);
	free(T.queue);
	free(T.body);
	if (T.multi != NULL)
		curl_multi_cleanup(T.multi);
	if (T.curl_timer != NULL)
		event_free(T.curl_timer);
	if (T.flush != NULL)
		event_free(T.flush);
	if (T.retry != NULL)
		event_free(T.retry);
	curl_slist_free_all(T.headers);
	free(T.url);
	free(T.prefix);
	memset(&T, 0, sizeof(T));
	memset(&inv, 0, sizeof(inv));
	cur_set = 0;
}
