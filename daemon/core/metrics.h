/* Metrics for the whole daemon, in memory every process shares: the
 * master maps it (MAP_SHARED) before forking, each worker writes only the
 * slot of its process (relaxed atomic stores: one writer, no locks), and
 * a scrape on any worker sums every slot. A dead worker's slot is folded
 * into a "departed" total before it is reused, so counters only grow; a
 * reload keeps the segment. Rendered as Prometheus text or OpenMetrics.
 * Every hook is a no-op where there is no segment (--stdio, or
 * metrics: { enabled: false }). */
#ifndef MCPD_METRICS_H
#define MCPD_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct config;

#define MX_TOOLS 64             /* tools with a label of their own; the rest are "other" */

enum mx_tool_outcome { MXT_OK, MXT_IS_ERROR, MXT_TIMEOUT, MXT_CANCELLED, MXT_KILLED, MXT_N };
enum mx_session_event { MXS_CREATED, MXS_EXPIRED, MXS_DELETED, MXS_N };
enum mx_auth_result { MXA_OK, MXA_MISSING, MXA_DENIED, MXA_SCOPE, MXA_ERROR, MXA_N };
enum mx_death { MXD_SIGNAL, MXD_EXIT, MXD_SETUP, MXD_N };
enum mx_storage_op {
	MXO_GET, MXO_SET, MXO_DEL, MXO_EXISTS, MXO_INCR, MXO_INDEX_ADD, MXO_INDEX_REMOVE,
	MXO_INDEX_MEMBERS, MXO_LOG_APPEND, MXO_LOG_RANGE, MXO_N
};
enum mx_transport_op { MXP_SUBSCRIBE, MXP_PUBLISH, MXP_N };
enum mx_limit { MXL_RATE, MXL_CONCURRENT, MXL_N };
enum mx_cache_read { MXC_HIT, MXC_MISS, MXC_BYPASS, MXC_N };
/* Why a received transport message was dropped (transport_sign.c). */
enum mx_drop { MXM_UNSIGNED, MXM_FORGED, MXM_REPLAYED, MXM_STALE, MXM_N };

/* Master: map the segment for nslots worker processes. -1 with err. */
int metrics_init(unsigned nslots, char *err, size_t errlen);
int metrics_enabled(void);
/* Master: slot i is about to get a new worker / its worker is gone. */
void metrics_slot_begin(unsigned i);
void metrics_slot_end(unsigned i);
/* Worker (after fork): write into slot i from now on. */
void metrics_attach(unsigned i);
/* Master: give each tool of cfg its label (tool_def.mx). */
void metrics_config(struct config *cfg);
void metrics_worker_started(void);
void metrics_worker_died(enum mx_death cause);
void metrics_reload(int ok);

/* Worker hooks. */
void metrics_set_endpoint(const char *endpoint);
void metrics_http(const char *path, int status);
/* The same in two steps: a path's route (it depends on the path and the
 * endpoint alone, so that a caller may keep it), then a response on it. */
int metrics_route(const char *path);
void metrics_http_route(int route, int status);
void metrics_mcp(const char *method, int answered, int code);
void metrics_tool(unsigned tool, enum mx_tool_outcome o, uint64_t us);
void metrics_process(int delta);        /* +1 spawned, -1 reaped */
void metrics_session(enum mx_session_event e);
void metrics_sse(int delta);
void metrics_mrtr_round(void);
void metrics_storage(enum mx_storage_op op, int ok, uint64_t us);
void metrics_transport(enum mx_transport_op op, int ok, uint64_t us);
void metrics_auth(enum mx_auth_result r);
void metrics_dropped(enum mx_drop why);
void metrics_oauth_token(int revoked);
/* Spans exported, dropped because the queue was full, lost in an export. */
void metrics_spans(uint64_t exported, uint64_t queue_full, uint64_t failed);
/* A request refused by limits.rate (429), a call by a tool's max_concurrent. */
void metrics_limited(enum mx_limit l);
/* A read of the storage cache (MXC_N: none), and how its size changed. */
void metrics_storage_cache(enum mx_cache_read r, int64_t entries_delta);

/* The exposition (malloc'd, *len bytes), or NULL. protocols: the
 * protocol revisions for mcpd_build_info. */
char *metrics_render(const struct config *cfg, int openmetrics, const char *protocols,
    size_t *len);

#endif
