/* The shared counters and their exposition (see metrics.h). */
#include "metrics.h"
#include "config.h"
#include "defs.h"
#include "jsonrpc.h"
#include "log.h"
#include "paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define RD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
/* One writer per field: a load and a store, no locked instruction. */
#define ADD(p, v) __atomic_store_n((p), RD(p) + (v), __ATOMIC_RELAXED)

enum { ROUTE_MCP, ROUTE_OAUTH, ROUTE_WELL_KNOWN, ROUTE_ADMIN, ROUTE_HEALTH, ROUTE_METRICS,
	ROUTE_OTHER, ROUTE_N };
static const char *const route_names[ROUTE_N] = {
	"mcp", "oauth", "well_known", "admin", "health", "metrics", "other",
};
#define CLASS_N 5

/* Methods named by the MCP revisions mcpd serves; any other is "other",
 * so that a client cannot grow the label set. */
static const char *const method_names[] = {
	"initialize", "ping", "tools/list", "tools/call", "resources/list",
	"resources/templates/list", "resources/read", "resources/subscribe",
	"resources/unsubscribe", "prompts/list", "prompts/get", "completion/complete",
	"logging/setLevel", "server/discover", "subscriptions/listen", "tasks/get",
	"tasks/result", "tasks/list", "tasks/cancel", "notifications/initialized",
	"notifications/cancelled", "notifications/roots/list_changed", "other",
};
#define METHOD_N (sizeof(method_names) / sizeof(method_names[0]))

enum { OUT_RESULT, OUT_PARSE, OUT_INVALID_REQUEST, OUT_METHOD_NOT_FOUND, OUT_INVALID_PARAMS,
	OUT_INTERNAL, OUT_CANCELLED, OUT_SERVER, OUT_OTHER, OUT_NONE, OUT_N };
static const char *const outcome_names[OUT_N] = {
	"result", "parse_error", "invalid_request", "method_not_found", "invalid_params",
	"internal_error", "cancelled", "server_error", "other_error", "no_response",
};

static const char *const tool_outcomes[MXT_N] = { "ok", "is_error", "timeout", "cancelled", "killed" };
static const char *const session_events[MXS_N] = { "created", "expired", "deleted" };
static const char *const auth_results[MXA_N] = { "ok", "missing", "denied", "insufficient_scope", "error" };
static const char *const death_causes[MXD_N] = { "signal", "exit", "setup" };
static const char *const storage_ops[MXO_N] = {
	"get", "set", "del", "exists", "incr", "index_add", "index_remove", "index_members",
	"log_append", "log_range",
};
static const char *const transport_ops[MXP_N] = { "subscribe", "publish" };

/* Upper bounds in microseconds, and as written in "le" (with a point:
 * the canonical form OpenMetrics asks for). */
#define BUCKET_N 15
static const uint64_t bucket_us[BUCKET_N] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};
static const char *const bucket_le[BUCKET_N] = {
	"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
	"1.0", "2.5", "5.0", "10.0", "30.0", "60.0",
};

struct hist {
	uint64_t n[BUCKET_N + 1];       /* per bucket, the last is +Inf; summed when shown */
	uint64_t sum_us;
};

/* What one worker process counts. Gauges (int64, up and down) belong to
 * the living process and are not folded into departed. Cache-line
 * aligned: no two workers write the same line. */
struct __attribute__((aligned(64))) slot {
	uint64_t http[ROUTE_N][CLASS_N];
	uint64_t mcp[METHOD_N][OUT_N];
	uint64_t tool[MX_TOOLS + 1][MXT_N];
	struct hist tool_time[MX_TOOLS + 1];
	uint64_t spawned;
	uint64_t session[MXS_N];
	uint64_t mrtr;
	uint64_t storage[MXO_N][2];
	struct hist storage_time[MXO_N];
	uint64_t transport[MXP_N][2];
	struct hist transport_time[MXP_N];
	uint64_t auth[MXA_N];
	uint64_t oauth[2];
	uint64_t spans[3];               /* exported, queue_full, export_failed */
	uint64_t limited[MXL_N];
	uint64_t cache[MXC_N];
	uint64_t dropped[MXM_N];
	/* gauges */
	int64_t running;
	int64_t sse;
	int64_t cache_entries;
};

struct shared {
	/* Written by the master only. */
	uint32_t seq;                   /* odd while a slot is being folded */
	uint32_t ntools;
	char tools[MX_TOOLS][129];
	uint64_t starts, deaths[MXD_N], reloads[2];
	int64_t last_reload;            /* unix time of the last good (re)load */
	int64_t started;
	struct slot departed;
	uint32_t nslots;
	uint8_t used[];                 /* then the slots, after the flags */
};

static struct shared *sh;
static struct slot *slots;
static struct slot *mine;
static const char *endpoint = "/mcp";

static size_t
slots_offset(unsigned n)
{
	size_t off = sizeof(struct shared) + n;
	return (off + 63) & ~(size_t)63;
}

int
metrics_init(unsigned nslots, char *err, size_t errlen)
{
	size_t len = slots_offset(nslots) + (size_t)nslots * sizeof(struct slot);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "cannot map %zu bytes for metrics: %s", len, strerror(errno));
		return -1;
	}
	sh = p;
	sh->nslots = nslots;
	sh->started = (int64_t)time(NULL);
	sh->last_reload = sh->started;
	slots = (struct slot *)((char *)p + slots_offset(nslots));
	return 0;
}

int
metrics_enabled(void)
{
	return sh != NULL;
}

void
metrics_slot_begin(unsigned i)
{
	if (sh == NULL || i >= sh->nslots)
		return;
	memset(&slots[i], 0, sizeof(slots[i]));
	__atomic_store_n(&sh->used[i], 1, __ATOMIC_RELEASE);
}

static void
fold_hist(struct hist *to, const struct hist *from)
{
	for (size_t b = 0; b <= BUCKET_N; b++)
		ADD(&to->n[b], RD(&from->n[b]));
	ADD(&to->sum_us, RD(&from->sum_us));
}

/* Add every counter of from into to (gauges not). */
static void
fold(struct slot *to, const struct slot *from)
{
	for (size_t i = 0; i < ROUTE_N; i++)
		for (size_t j = 0; j < CLASS_N; j++)
			ADD(&to->http[i][j], RD(&from->http[i][j]));
	for (size_t i = 0; i < METHOD_N; i++)
		for (size_t j = 0; j < OUT_N; j++)
			ADD(&to->mcp[i][j], RD(&from->mcp[i][j]));
	for (size_t i = 0; i <= MX_TOOLS; i++) {
		for (size_t j = 0; j < MXT_N; j++)
			ADD(&to->tool[i][j], RD(&from->tool[i][j]));
		fold_hist(&to->tool_time[i], &from->tool_time[i]);
	}
	ADD(&to->spawned, RD(&from->spawned));
	for (size_t i = 0; i < MXS_N; i++)
		ADD(&to->session[i], RD(&from->session[i]));
	ADD(&to->mrtr, RD(&from->mrtr));
	for (size_t i = 0; i < MXO_N; i++) {
		ADD(&to->storage[i][0], RD(&from->storage[i][0]));
		ADD(&to->storage[i][1], RD(&from->storage[i][1]));
		fold_hist(&to->storage_time[i], &from->storage_time[i]);
	}
	for (size_t i = 0; i < MXP_N; i++) {
		ADD(&to->transport[i][0], RD(&from->transport[i][0]));
		ADD(&to->transport[i][1], RD(&from->transport[i][1]));
		fold_hist(&to->transport_time[i], &from->transport_time[i]);
	}
	for (size_t i = 0; i < MXA_N; i++)
		ADD(&to->auth[i], RD(&from->auth[i]));
	ADD(&to->oauth[0], RD(&from->oauth[0]));
	ADD(&to->oauth[1], RD(&from->oauth[1]));
	for (size_t i = 0; i < 3; i++)
		ADD(&to->spans[i], RD(&from->spans[i]));
	for (size_t i = 0; i < MXL_N; i++)
		ADD(&to->limited[i], RD(&from->limited[i]));
	for (size_t i = 0; i < MXC_N; i++)
		ADD(&to->cache[i], RD(&from->cache[i]));
	for (size_t i = 0; i < MXM_N; i++)
		ADD(&to->dropped[i], RD(&from->dropped[i]));
}

void
metrics_slot_end(unsigned i)
{
	if (sh == NULL || i >= sh->nslots || !sh->used[i])
		return;
	/* A scrape that overlaps sees seq move and sums again: never the
	 * dead worker's figures twice, nor not at all. */
	__atomic_store_n(&sh->seq, sh->seq + 1, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	struct slot *d = &sh->departed;
	fold(d, &slots[i]);
	__atomic_store_n(&sh->used[i], 0, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&sh->seq, sh->seq + 1, __ATOMIC_RELEASE);
}

void
metrics_attach(unsigned i)
{
	mine = sh != NULL && i < sh->nslots ? &slots[i] : NULL;
}

static unsigned
tool_label(const char *name)
{
	for (uint32_t i = 0; i < sh->ntools; i++)
		if (strcmp(sh->tools[i], name) == 0)
			return i;
	if (sh->ntools >= MX_TOOLS || strlen(name) >= sizeof(sh->tools[0]))
		return MX_TOOLS;
	/* Written before the count that publishes it. */
	memcpy(sh->tools[sh->ntools], name, strlen(name) + 1);
	__atomic_store_n(&sh->ntools, sh->ntools + 1, __ATOMIC_RELEASE);
	return sh->ntools - 1;
}

void
metrics_config(struct config *cfg)
{
	for (size_t i = 0; i < cfg->ntools; i++)
		cfg->tools[i].mx = sh != NULL ? tool_label(cfg->tools[i].name) : MX_TOOLS;
}

void
metrics_worker_started(void)
{
	if (sh != NULL)
		ADD(&sh->starts, 1);
}

void
metrics_worker_died(enum mx_death cause)
{
	if (sh != NULL)
		ADD(&sh->deaths[cause], 1);
}

void
metrics_reload(int ok)
{
	if (sh == NULL)
		return;
	ADD(&sh->reloads[ok ? 0 : 1], 1);
	if (ok)
		__atomic_store_n(&sh->last_reload, (int64_t)time(NULL), __ATOMIC_RELAXED);
}

/* ---- worker hooks ---- */

void
metrics_set_endpoint(const char *e)
{
	endpoint = e;
}

/* A path's route (its row of mcpd_http_requests_total). The HTTP server
 * asks once per route it serves and keeps the answer (metrics_http_route):
 * a strcmp chain per response showed in the profile. */
int
metrics_route(const char *path)
{
	if (path == NULL)
		return ROUTE_OTHER;
	if (strcmp(path, endpoint) == 0)
		return ROUTE_MCP;
	if (strncmp(path, "/oauth/", 7) == 0)
		return ROUTE_OAUTH;
	if (strncmp(path, "/.well-known/", 13) == 0)
		return ROUTE_WELL_KNOWN;
	if (strncmp(path, "/admin/", 7) == 0)
		return ROUTE_ADMIN;
	if (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0)
		return ROUTE_HEALTH;
	if (strcmp(path, "/metrics") == 0)
		return ROUTE_METRICS;
	return ROUTE_OTHER;
}

void
metrics_http_route(int route, int status)
{
	if (mine == NULL)
		return;
	int c = status / 100 - 1;
	if (c < 0 || c >= CLASS_N)
		c = CLASS_N - 1;
	if (route < 0 || route >= ROUTE_N)
		route = ROUTE_OTHER;
	ADD(&mine->http[route][c], 1);
}

void
metrics_http(const char *path, int status)
{
	if (mine == NULL)
		return;
	metrics_http_route(metrics_route(path), status);
}

static int
outcome_of(int code)
{
	switch (code) {
	case JSONRPC_PARSE_ERROR: return OUT_PARSE;
	case JSONRPC_INVALID_REQUEST: return OUT_INVALID_REQUEST;
	case JSONRPC_METHOD_NOT_FOUND: return OUT_METHOD_NOT_FOUND;
	case JSONRPC_INVALID_PARAMS: return OUT_INVALID_PARAMS;
	case JSONRPC_INTERNAL_ERROR: return OUT_INTERNAL;
	case JSONRPC_REQUEST_CANCELLED: return OUT_CANCELLED;
	}
	if (code <= -32000 && code >= -32099)
		return OUT_SERVER;
	return OUT_OTHER;
}

void
metrics_mcp(const char *method, int answered, int code)
{
	if (mine == NULL)
		return;
	size_t m = METHOD_N - 1;
	for (size_t i = 0; method != NULL && i < METHOD_N - 1; i++)
		if (method[0] == method_names[i][0] && strcmp(method, method_names[i]) == 0) {
			m = i;
			break;
		}
	ADD(&mine->mcp[m][!answered ? OUT_NONE : code == 0 ? OUT_RESULT : outcome_of(code)], 1);
}

static void
observe(struct hist *h, uint64_t us)
{
	size_t b = 0;
	while (b < BUCKET_N && us > bucket_us[b])
		b++;
	ADD(&h->n[b], 1);
	ADD(&h->sum_us, us);
}

void
metrics_tool(unsigned tool, enum mx_tool_outcome o, uint64_t us)
{
	if (mine == NULL)
		return;
	if (tool > MX_TOOLS)
		tool = MX_TOOLS;
	ADD(&mine->tool[tool][o], 1);
	observe(&mine->tool_time[tool], us);
}

void
metrics_process(int delta)
{
	if (mine == NULL)
		return;
	if (delta > 0)
		ADD(&mine->spawned, 1);
	ADD(&mine->running, delta);
}

void
metrics_session(enum mx_session_event e)
{
	if (mine != NULL)
		ADD(&mine->session[e], 1);
}

void
metrics_sse(int delta)
{
	if (mine != NULL)
		ADD(&mine->sse, delta);
}

void
metrics_mrtr_round(void)
{
	if (mine != NULL)
		ADD(&mine->mrtr, 1);
}

void
metrics_storage(enum mx_storage_op op, int ok, uint64_t us)
{
	if (mine == NULL)
		return;
	ADD(&mine->storage[op][!ok], 1);
	observe(&mine->storage_time[op], us);
}

void
metrics_transport(enum mx_transport_op op, int ok, uint64_t us)
{
	if (mine == NULL)
		return;
	ADD(&mine->transport[op][!ok], 1);
	observe(&mine->transport_time[op], us);
}

void
metrics_auth(enum mx_auth_result r)
{
	if (mine != NULL)
		ADD(&mine->auth[r], 1);
}

void
metrics_dropped(enum mx_drop why)
{
	if (mine != NULL)
		ADD(&mine->dropped[why], 1);
}

void
metrics_oauth_token(int revoked)
{
	if (mine != NULL)
		ADD(&mine->oauth[revoked ? 1 : 0], 1);
}

void
metrics_spans(uint64_t exported, uint64_t queue_full, uint64_t failed)
{
	if (mine == NULL)
		return;
	ADD(&mine->spans[0], exported);
	ADD(&mine->spans[1], queue_full);
	ADD(&mine->spans[2], failed);
}

void
metrics_limited(enum mx_limit l)
{
	if (mine != NULL && l < MXL_N)
		ADD(&mine->limited[l], 1);
}

void
metrics_storage_cache(enum mx_cache_read r, int64_t entries_delta)
{
	if (mine == NULL)
		return;
	if (r != MXC_N)
		ADD(&mine->cache[r], 1);
	if (entries_delta != 0)
		ADD(&mine->cache_entries, entries_delta);
}

/* ---- exposition ---- */

struct out {
	FILE *f;
	int om;
};

/* A family's HELP and TYPE. Counters are named name_total in the text
 * format's TYPE line and name in OpenMetrics'. */
static void
family(struct out *o, const char *name, const char *type, const char *help)
{
	int counter = strcmp(type, "counter") == 0;
	const char *suffix = counter && !o->om ? "_total" : "";
	fprintf(o->f, "# HELP %s%s %s\n# TYPE %s%s %s\n", name, suffix, help, name, suffix, type);
}

/* A label value with \, " and newlines escaped. */
static void
label_value(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', f);
		if (*s == '\n') {
			fputs("\\n", f);
			continue;
		}
		fputc(*s, f);
	}
}

static void
hist(struct out *o, const char *name, const char *labels, const struct hist *h)
{
	uint64_t cum = 0;
	for (size_t b = 0; b <= BUCKET_N; b++) {
		cum += h->n[b];
		fprintf(o->f, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels, labels[0] ? "," : "",
		    b < BUCKET_N ? bucket_le[b] : "+Inf", (unsigned long long)cum);
	}
	fprintf(o->f, "%s_sum%s%s%s %.6f\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
	    (double)h->sum_us / 1e6);
	fprintf(o->f, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
	    (unsigned long long)cum);
}

/* The sum over departed workers and living ones, read consistently with
 * the master's folding. gauges: the living ones' gauges. */
static void
sum(struct slot *t, int64_t *running, int64_t *sse, unsigned *workers)
{
	for (int tries = 0; tries < 100; tries++) {
		uint32_t seq = __atomic_load_n(&sh->seq, __ATOMIC_ACQUIRE);
		if (seq & 1)
			continue;
		memset(t, 0, sizeof(*t));
		*running = *sse = 0;
		*workers = 0;
		fold(t, &sh->departed);
		for (uint32_t i = 0; i < sh->nslots; i++) {
			if (!__atomic_load_n(&sh->used[i], __ATOMIC_ACQUIRE))
				continue;
			fold(t, &slots[i]);
			*running += RD(&slots[i].running);
			*sse += RD(&slots[i].sse);
			t->cache_entries += RD(&slots[i].cache_entries);
			(*workers)++;
		}
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (__atomic_load_n(&sh->seq, __ATOMIC_ACQUIRE) == seq)
			return;
	}
}

static void
render(struct out *o, const struct config *cfg, const char *protocols, const struct slot *t,
    int64_t running, int64_t sse, unsigned workers)
{
	FILE *f = o->f;
	char labels[400];

	if (o->om) {
		fprintf(f, "# HELP mcpd_build Version, protocol revisions and plugins.\n# TYPE mcpd_build info\n");
	} else {
		fprintf(f, "# HELP mcpd_build_info Version, protocol revisions and plugins.\n# TYPE mcpd_build_info gauge\n");
	}
	fprintf(f, "mcpd_build_info{version=\"%s\",protocols=\"", PACKAGE_VERSION);
	label_value(f, protocols);
	fprintf(f, "\",storage=\"");
	label_value(f, cfg->storage.name ? cfg->storage.name : "");
	fprintf(f, "\",transport=\"");
	label_value(f, cfg->transport.name ? cfg->transport.name : "");
	fprintf(f, "\",auth=\"");
	label_value(f, cfg->auth.name ? cfg->auth.name : "none");
	fprintf(f, "\"} 1\n");

	family(o, "mcpd_start_time_seconds", "gauge", "When the master started, in seconds since the epoch.");
	fprintf(f, "mcpd_start_time_seconds %lld\n", (long long)sh->started);

	family(o, "mcpd_http_requests", "counter", "HTTP requests answered, by route and status class.");
	for (size_t i = 0; i < ROUTE_N; i++)
		for (size_t j = 0; j < CLASS_N; j++)
			fprintf(f, "mcpd_http_requests_total{route=\"%s\",code=\"%zuxx\"} %llu\n",
			    route_names[i], j + 1, (unsigned long long)t->http[i][j]);

	family(o, "mcpd_mcp_requests", "counter", "MCP requests, by method and outcome (result or the JSON-RPC error's class).");
	for (size_t i = 0; i < METHOD_N; i++)
		for (size_t j = 0; j < OUT_N; j++)
			if (t->mcp[i][j] != 0 || j == OUT_RESULT)
				fprintf(f, "mcpd_mcp_requests_total{method=\"%s\",outcome=\"%s\"} %llu\n",
				    method_names[i], outcome_names[j], (unsigned long long)t->mcp[i][j]);

	/* Tools: those of this configuration, then any a reload dropped
	 * that still have counts, then "other". */
	uint32_t ntools = __atomic_load_n(&sh->ntools, __ATOMIC_ACQUIRE);
	family(o, "mcpd_tool_calls", "counter", "Tool calls, by tool and outcome.");
	for (uint32_t k = 0; k <= ntools; k++) {
		unsigned i = k < ntools ? k : MX_TOOLS;
		for (size_t j = 0; j < MXT_N; j++) {
			fprintf(f, "mcpd_tool_calls_total{tool=\"");
			label_value(f, i < MX_TOOLS ? sh->tools[i] : "other");
			fprintf(f, "\",outcome=\"%s\"} %llu\n", tool_outcomes[j], (unsigned long long)t->tool[i][j]);
		}
	}
	family(o, "mcpd_tool_call_duration_seconds", "histogram", "How long tool calls took.");
	for (uint32_t k = 0; k <= ntools; k++) {
		unsigned i = k < ntools ? k : MX_TOOLS;
		char *lv = NULL;
		size_t lvlen = 0;
		FILE *lf = open_memstream(&lv, &lvlen);
		if (lf == NULL)
			continue;
		fputs("tool=\"", lf);
		label_value(lf, i < MX_TOOLS ? sh->tools[i] : "other");
		fputc('"', lf);
		fclose(lf);
		hist(o, "mcpd_tool_call_duration_seconds", lv, &t->tool_time[i]);
		free(lv);
	}

	family(o, "mcpd_processes_spawned", "counter", "Command processes started for tools, resources and prompts.");
	fprintf(f, "mcpd_processes_spawned_total %llu\n", (unsigned long long)t->spawned);
	family(o, "mcpd_processes_running", "gauge", "Command processes running now.");
	fprintf(f, "mcpd_processes_running %lld\n", (long long)running);

	family(o, "mcpd_sessions", "counter", "Sessions (2025 revisions) created, expired and deleted.");
	for (size_t i = 0; i < MXS_N; i++)
		fprintf(f, "mcpd_sessions_total{event=\"%s\"} %llu\n", session_events[i],
		    (unsigned long long)t->session[i]);
	long long active = (long long)t->session[MXS_CREATED] - (long long)t->session[MXS_EXPIRED] -
	    (long long)t->session[MXS_DELETED];
	family(o, "mcpd_sessions_active", "gauge", "Sessions this instance created that have not ended.");
	fprintf(f, "mcpd_sessions_active %lld\n", active > 0 ? active : 0);
	family(o, "mcpd_sse_streams_open", "gauge", "Server-sent event streams open now.");
	fprintf(f, "mcpd_sse_streams_open %lld\n", (long long)sse);
	family(o, "mcpd_mrtr_rounds", "counter", "InputRequiredResult rounds (2026-07-28 tools that asked).");
	fprintf(f, "mcpd_mrtr_rounds_total %llu\n", (unsigned long long)t->mrtr);

	const char *sp = cfg->storage.name ? cfg->storage.name : "";
	family(o, "mcpd_storage_operations", "counter", "Storage operations, by plugin, operation and outcome.");
	for (size_t i = 0; i < MXO_N; i++)
		for (size_t j = 0; j < 2; j++) {
			fprintf(f, "mcpd_storage_operations_total{plugin=\"");
			label_value(f, sp);
			fprintf(f, "\",operation=\"%s\",outcome=\"%s\"} %llu\n", storage_ops[i],
			    j ? "error" : "ok", (unsigned long long)t->storage[i][j]);
		}
	family(o, "mcpd_storage_operation_duration_seconds", "histogram", "Storage operation latency.");
	for (size_t i = 0; i < MXO_N; i++) {
		snprintf(labels, sizeof(labels), "plugin=\"%s\",operation=\"%s\"", sp, storage_ops[i]);
		hist(o, "mcpd_storage_operation_duration_seconds", labels, &t->storage_time[i]);
	}
	const char *tp = cfg->transport.name ? cfg->transport.name : "";
	family(o, "mcpd_transport_operations", "counter", "Transport operations, by plugin, operation and outcome.");
	for (size_t i = 0; i < MXP_N; i++)
		for (size_t j = 0; j < 2; j++)
			fprintf(f, "mcpd_transport_operations_total{plugin=\"%s\",operation=\"%s\",outcome=\"%s\"} %llu\n",
			    tp, transport_ops[i], j ? "error" : "ok", (unsigned long long)t->transport[i][j]);
	family(o, "mcpd_transport_operation_duration_seconds", "histogram", "Transport operation latency.");
	for (size_t i = 0; i < MXP_N; i++) {
		snprintf(labels, sizeof(labels), "plugin=\"%s\",operation=\"%s\"", tp, transport_ops[i]);
		hist(o, "mcpd_transport_operation_duration_seconds", labels, &t->transport_time[i]);
	}

	const char *ap = cfg->auth.name ? cfg->auth.name : "none";
	family(o, "mcpd_auth_results", "counter", "Bearer token checks, by auth plugin and result.");
	for (size_t i = 0; i < MXA_N; i++)
		fprintf(f, "mcpd_auth_results_total{plugin=\"%s\",result=\"%s\"} %llu\n", ap,
		    auth_results[i], (unsigned long long)t->auth[i]);
	family(o, "mcpd_oauth_tokens_issued", "counter", "Access tokens the internal authorization server issued.");
	fprintf(f, "mcpd_oauth_tokens_issued_total %llu\n", (unsigned long long)t->oauth[0]);
	family(o, "mcpd_oauth_tokens_revoked", "counter", "Tokens revoked (RFC 7009).");
	fprintf(f, "mcpd_oauth_tokens_revoked_total %llu\n", (unsigned long long)t->oauth[1]);
	family(o, "mcpd_tracing_spans_exported", "counter", "Spans the OTLP collector accepted.");
	fprintf(f, "mcpd_tracing_spans_exported_total %llu\n", (unsigned long long)t->spans[0]);
	family(o, "mcpd_tracing_spans_dropped", "counter",
	    "Spans lost: the export queue was full, or an export failed.");
	fprintf(f, "mcpd_tracing_spans_dropped_total{reason=\"queue_full\"} %llu\n",
	    (unsigned long long)t->spans[1]);
	fprintf(f, "mcpd_tracing_spans_dropped_total{reason=\"export_failed\"} %llu\n",
	    (unsigned long long)t->spans[2]);
	family(o, "mcpd_limited", "counter", "Requests refused by limits.rate (429) and tool calls by max_concurrent.");
	fprintf(f, "mcpd_limited_total{limit=\"rate\"} %llu\n", (unsigned long long)t->limited[MXL_RATE]);
	fprintf(f, "mcpd_limited_total{limit=\"max_concurrent\"} %llu\n",
	    (unsigned long long)t->limited[MXL_CONCURRENT]);
	if (cfg->storage_cache.entries > 0) {
		static const char *const reads[MXC_N] = { "hit", "miss", "bypass" };
		family(o, "mcpd_storage_cache_reads", "counter",
		    "Reads of kept keys: answered by the cache, missed, or past it (transport down).");
		for (size_t i = 0; i < MXC_N; i++)
			fprintf(f, "mcpd_storage_cache_reads_total{result=\"%s\"} %llu\n", reads[i],
			    (unsigned long long)t->cache[i]);
		family(o, "mcpd_storage_cache_entries", "gauge", "Entries in the workers' storage caches now.");
		fprintf(f, "mcpd_storage_cache_entries %lld\n", (long long)t->cache_entries);
	}

	static const char *const drop_reasons[MXM_N] = { "unsigned", "forged", "replayed", "stale" };
	family(o, "mcpd_transport_dropped", "counter",
	    "Received transport messages dropped by the signature check (transport.sign_key_file).");
	for (size_t i = 0; i < MXM_N; i++)
		fprintf(f, "mcpd_transport_dropped_total{reason=\"%s\"} %llu\n", drop_reasons[i],
		    (unsigned long long)t->dropped[i]);
	family(o, "mcpd_workers", "gauge", "Worker processes alive now.");
	fprintf(f, "mcpd_workers %u\n", workers);
	family(o, "mcpd_worker_starts", "counter", "Worker processes started.");
	fprintf(f, "mcpd_worker_starts_total %llu\n", (unsigned long long)RD(&sh->starts));
	family(o, "mcpd_worker_deaths", "counter", "Workers that died unasked, by cause (signal, exit status, failed setup).");
	for (size_t i = 0; i < MXD_N; i++)
		fprintf(f, "mcpd_worker_deaths_total{cause=\"%s\"} %llu\n", death_causes[i],
		    (unsigned long long)RD(&sh->deaths[i]));
	family(o, "mcpd_reloads", "counter", "Configuration reloads (SIGHUP), by result.");
	fprintf(f, "mcpd_reloads_total{result=\"ok\"} %llu\n", (unsigned long long)RD(&sh->reloads[0]));
	fprintf(f, "mcpd_reloads_total{result=\"failed\"} %llu\n", (unsigned long long)RD(&sh->reloads[1]));
	family(o, "mcpd_last_reload_success_time_seconds", "gauge", "When the configuration was last loaded with success.");
	fprintf(f, "mcpd_last_reload_success_time_seconds %lld\n", (long long)RD(&sh->last_reload));
	if (o->om)
		fputs("# EOF\n", f);
}

char *
metrics_render(const struct config *cfg, int openmetrics, const char *protocols, size_t *len)
{
	if (sh == NULL)
		return NULL;
	struct slot *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	int64_t running = 0, sse = 0;
	unsigned workers = 0;
	sum(t, &running, &sse, &workers);
	char *buf = NULL;
	struct out o = { open_memstream(&buf, len), openmetrics };
	if (o.f == NULL) {
		free(t);
		return NULL;
	}
	render(&o, cfg, protocols, t, running, sse, workers);
	free(t);
	if (fclose(o.f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
