/* OpenTelemetry traces: spans of a worker's requests, exported to a
 * collector over OTLP/HTTP (the JSON encoding of ExportTraceServiceRequest
 * POSTed to /v1/traces) with libcurl's multi interface on the worker's
 * loop. A finished span is encoded at once and queued (bounded: a full
 * queue drops it, counted in the metrics); the queue goes out in batches,
 * on a timer or as soon as a batch is full, one request at a time.
 *
 * A span is known by a trace_ctx before it ends: its ids, its parent's,
 * whether it is sampled and when it began. The sampling is decided at the
 * root: a parent's sampled flag (a traceparent) is honoured, a root of our
 * own is kept with the configured probability. An unsampled context still
 * carries the trace id (for the log and the tools), nothing is recorded.
 *
 * The current context (tracing_current) is the span whose work runs now:
 * set by the MCP layer around a request's handler and restored by the
 * metered backends around a completion, so that storage and transport
 * calls started there become its children. */
#ifndef MCPD_TRACING_H
#define MCPD_TRACING_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct event_base;

struct trace_ctx {
	char trace_id[33];      /* 32 lowercase hex digits; "" when there is none */
	char span_id[17];       /* this span's */
	char parent_id[17];     /* "" for a root */
	int sampled;            /* recorded and exported */
	uint64_t start_us;      /* monotonic_us when it began */
};

enum trace_kind { TK_INTERNAL = 1, TK_SERVER = 2, TK_CLIENT = 3 };

enum trace_attr_type { TA_STR, TA_INT };

struct trace_attr {
	const char *key;
	enum trace_attr_type type;
	const char *s;          /* TA_STR (NULL: left out) */
	int64_t i;              /* TA_INT */
};

/* Worker: start exporting as the configuration says (nothing when it has
 * no tracing endpoint). -1 with err. */
int tracing_start(struct event_base *base, const struct config *cfg, char *err, size_t errlen);
/* A draining worker: export what is queued, batch after batch, then call
 * done (at once when nothing waits). */
void tracing_flush(void (*done)(void *), void *arg);
/* Worker exit: spans still queued or in flight are dropped (counted). */
void tracing_stop(void);
int tracing_enabled(void);

/* A server span beginning at start_us (monotonic), continuing traceparent
 * (NULL or invalid: the invocation's trace, else a new one, sampled by the
 * configured ratio). With
 * tracing off the context has the trace id of a valid traceparent, or
 * none, and is never sampled. */
void tracing_root(struct trace_ctx *ctx, const char *traceparent, uint64_t start_us);
/* mcpd --lambda: the parent of the invocation's roots that have no
 * traceparent of their own, from Lambda's X-Ray trace header (NULL: none).
 * Its trace id and Parent are taken; Sampled=1 records them, otherwise
 * tracing.sample decides. -1 when the header has no usable Root: roots
 * start traces of their own. */
int tracing_invocation(const char *xray);
/* A child of parent beginning at start_us; unsampled when parent is NULL
 * or unsampled. */
void tracing_child(struct trace_ctx *ctx, const struct trace_ctx *parent, uint64_t start_us);
/* The span ended at end_us (monotonic; 0: now): encoded and queued when
 * sampled. error_type: NULL for success, else the span's status is ERROR
 * with error.type. */
void tracing_end(const struct trace_ctx *ctx, uint64_t end_us, const char *name,
    enum trace_kind kind, const char *error_type, const struct trace_attr *attrs, size_t nattrs);
/* A W3C traceparent naming ctx as the parent (out: at least 56 bytes);
 * -1 when ctx has no trace. */
int tracing_traceparent(const struct trace_ctx *ctx, char *out, size_t len);

/* The span whose work runs now (sampled or not), or NULL.
 * tracing_push makes a copy of ctx (NULL: none) current and saves the one
 * it replaces in *saved, for tracing_pop to put back. */
const struct trace_ctx *tracing_current(void);
void tracing_push(const struct trace_ctx *ctx, struct trace_ctx *saved);
void tracing_pop(const struct trace_ctx *saved);

/* For tests: spans queued, exports in flight. */
size_t tracing_queued(void);

#endif
