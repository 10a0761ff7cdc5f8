/* Metered storage and transport operations (see metered.h). Each call
 * carries a small record of what to call back and when it began; the
 * plugin's completion records the outcome, then calls the caller. An
 * operation started while a sampled span is current (tracing.h) is that
 * span's child, and the span is current again while the caller's
 * callback runs, so that what it starts next is a child too. */
#include "metered.h"
#include "metrics.h"
#include "plugin.h"
#include "tracing.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>

static struct mcpd_storage_ops sops;    /* the wrappers */
static const struct mcpd_storage_ops *sreal;
static struct mcpd_transport_ops tops;
static const struct mcpd_transport_ops *treal;

struct op {
	int publish;                    /* a transport's publish, else storage's what */
	enum mx_storage_op what;
	uint64_t start;
	struct trace_ctx parent;        /* current when it began (trace_id "": none) */
	struct trace_ctx span;          /* its own, when parent is sampled */
	void *cb;
	void *arg;
	struct op *prev, *next;
};

/* The records of operations in flight: a plugin that detaches drops its
 * own without calling back (the worker is stopping), and then these are
 * freed by metered_forget. */
static struct op *pending;
static size_t npending;

/* Records done with, kept for the next operations: no malloc per call. */
#define SPARE_MAX 64
static struct op *spare;
static size_t nspare;

static struct op *
op_new(enum mx_storage_op what, void *cb, void *arg)
{
	struct op *o = spare;
	if (o != NULL) {
		spare = o->next;
		nspare--;
	} else if ((o = malloc(sizeof(*o))) == NULL) {
		return NULL;
	}
	o->publish = 0;
	o->what = what;
	o->start = monotonic_us();
	const struct trace_ctx *cur = tracing_current();
	o->parent.trace_id[0] = o->span.trace_id[0] = '\0';
	o->span.sampled = 0;
	if (cur != NULL) {
		o->parent = *cur;
		tracing_child(&o->span, cur, o->start);
	}
	o->cb = cb;
	o->arg = arg;
	o->prev = NULL;
	o->next = pending;
	if (pending != NULL)
		pending->prev = o;
	pending = o;
	npending++;
	return o;
}

static const char *const op_names[MXO_N] = {
	"get", "set", "del", "exists", "incr", "index_add", "index_remove", "index_members",
	"log_append", "log_range",
};
static const char *storage_name = "", *transport_name = "";

static void
op_span(const struct trace_ctx *span, int publish, enum mx_storage_op what, int status)
{
	const char *op = publish ? "publish" : op_names[what];
	struct trace_attr a[] = {
		{ publish ? "messaging.system" : "db.system.name", TA_STR,
		    publish ? transport_name : storage_name, 0 },
		{ publish ? "messaging.operation.name" : "db.operation.name", TA_STR, op, 0 },
		{ "messaging.operation.type", TA_STR, publish ? "send" : NULL, 0 },
	};
	char name[64];
	snprintf(name, sizeof(name), "%s %s", publish ? "transport" : "storage", op);
	tracing_end(span, 0, name, TK_CLIENT, status == MCPD_ERROR ? "backend_error" : NULL, a,
	    sizeof(a) / sizeof(a[0]));
}

/* Record the outcome; the caller's cb and arg are in *cb and *arg, the
 * span to make current while they run in *parent. */
static void
op_end(struct op *o, int status, void **cb, void **arg, struct trace_ctx *parent)
{
	if (o->publish)
		metrics_transport(MXP_PUBLISH, status != MCPD_ERROR, monotonic_us() - o->start);
	else
		metrics_storage(o->what, status != MCPD_ERROR, monotonic_us() - o->start);
	if (o->span.sampled)
		op_span(&o->span, o->publish, o->what, status);
	*parent = o->parent;
	*cb = o->cb;
	*arg = o->arg;
	if (o->prev != NULL)
		o->prev->next = o->next;
	else
		pending = o->next;
	if (o->next != NULL)
		o->next->prev = o->prev;
	npending--;
	if (nspare < SPARE_MAX) {
		o->next = spare;
		spare = o;
		nspare++;
	} else {
		free(o);
	}
}

size_t
metered_pending(void)
{
	return npending;
}

void
metered_forget(void)
{
	while (pending != NULL) {
		struct op *o = pending;
		pending = o->next;
		free(o);
	}
	npending = 0;
	while (spare != NULL) {
		struct op *o = spare;
		spare = o->next;
		free(o);
	}
	nspare = 0;
}

static void
done_cb(void *arg, int status, const char *err)
{
	void *cb, *a;
	struct trace_ctx parent, saved;
	op_end(arg, status, &cb, &a, &parent);
	if (cb == NULL)
		return;
	tracing_push(parent.trace_id[0] ? &parent : NULL, &saved);
	((mcpd_done_cb *)cb)(a, status, err);
	tracing_pop(&saved);
}

static void
value_cb(void *arg, int status, const void *value, size_t len, const char *err)
{
	void *cb, *a;
	struct trace_ctx parent, saved;
	op_end(arg, status, &cb, &a, &parent);
	if (cb == NULL)
		return;
	tracing_push(parent.trace_id[0] ? &parent : NULL, &saved);
	((mcpd_value_cb *)cb)(a, status, value, len, err);
	tracing_pop(&saved);
}

static void
int_cb(void *arg, int status, int64_t value, const char *err)
{
	void *cb, *a;
	struct trace_ctx parent, saved;
	op_end(arg, status, &cb, &a, &parent);
	if (cb == NULL)
		return;
	tracing_push(parent.trace_id[0] ? &parent : NULL, &saved);
	((mcpd_int_cb *)cb)(a, status, value, err);
	tracing_pop(&saved);
}

static void
members_cb(void *arg, int status, const char *const *members, size_t n, const char *err)
{
	void *cb, *a;
	struct trace_ctx parent, saved;
	op_end(arg, status, &cb, &a, &parent);
	if (cb == NULL)
		return;
	tracing_push(parent.trace_id[0] ? &parent : NULL, &saved);
	((mcpd_members_cb *)cb)(a, status, members, n, err);
	tracing_pop(&saved);
}

static void
entries_cb(void *arg, int status, const struct mcpd_log_entry *entries, size_t n, const char *err)
{
	void *cb, *a;
	struct trace_ctx parent, saved;
	op_end(arg, status, &cb, &a, &parent);
	if (cb == NULL)
		return;
	tracing_push(parent.trace_id[0] ? &parent : NULL, &saved);
	((mcpd_entries_cb *)cb)(a, status, entries, n, err);
	tracing_pop(&saved);
}

/* Out of memory for the record: the operation runs unmetered. */
#define WRAP(what, cbtype, mycb, call_real, call_plain)                        \
	do {                                                                   \
		struct op *o = op_new(what, (void *)cb, arg);                  \
		if (o == NULL) {                                               \
			call_plain;                                            \
			return;                                                \
		}                                                              \
		cbtype *c_ = mycb;                                             \
		void *a_ = o;                                                  \
		call_real;                                                     \
	} while (0)

static void
m_get(void *inst, const char *key, mcpd_value_cb *cb, void *arg)
{
	WRAP(MXO_GET, mcpd_value_cb, value_cb, sreal->get(inst, key, c_, a_),
	    sreal->get(inst, key, cb, arg));
}

static void
m_set(void *inst, const char *key, const void *value, size_t len, uint64_t ttl_ms,
    unsigned flags, mcpd_done_cb *cb, void *arg)
{
	WRAP(MXO_SET, mcpd_done_cb, done_cb, sreal->set(inst, key, value, len, ttl_ms, flags, c_, a_),
	    sreal->set(inst, key, value, len, ttl_ms, flags, cb, arg));
}

static void
m_del(void *inst, const char *key, mcpd_done_cb *cb, void *arg)
{
	WRAP(MXO_DEL, mcpd_done_cb, done_cb, sreal->del(inst, key, c_, a_),
	    sreal->del(inst, key, cb, arg));
}

static void
m_exists(void *inst, const char *key, mcpd_done_cb *cb, void *arg)
{
	WRAP(MXO_EXISTS, mcpd_done_cb, done_cb, sreal->exists(inst, key, c_, a_),
	    sreal->exists(inst, key, cb, arg));
}

static void
m_incr(void *inst, const char *key, int64_t by, uint64_t ttl_ms, mcpd_int_cb *cb, void *arg)
{
	WRAP(MXO_INCR, mcpd_int_cb, int_cb, sreal->incr(inst, key, by, ttl_ms, c_, a_),
	    sreal->incr(inst, key, by, ttl_ms, cb, arg));
}

static void
m_index_add(void *inst, const char *index, const char *member, uint64_t ttl_ms,
    mcpd_done_cb *cb, void *arg)
{
	WRAP(MXO_INDEX_ADD, mcpd_done_cb, done_cb, sreal->index_add(inst, index, member, ttl_ms, c_, a_),
	    sreal->index_add(inst, index, member, ttl_ms, cb, arg));
}

static void
m_index_remove(void *inst, const char *index, const char *member, mcpd_done_cb *cb, void *arg)
{
	WRAP(MXO_INDEX_REMOVE, mcpd_done_cb, done_cb, sreal->index_remove(inst, index, member, c_, a_),
	    sreal->index_remove(inst, index, member, cb, arg));
}

static void
m_index_members(void *inst, const char *index, mcpd_members_cb *cb, void *arg)
{
	WRAP(MXO_INDEX_MEMBERS, mcpd_members_cb, members_cb, sreal->index_members(inst, index, c_, a_),
	    sreal->index_members(inst, index, cb, arg));
}

static void
m_log_append(void *inst, const char *log, const void *entry, size_t len,
    uint64_t max_entries, uint64_t ttl_ms, mcpd_int_cb *cb, void *arg)
{
	WRAP(MXO_LOG_APPEND, mcpd_int_cb, int_cb,
	    sreal->log_append(inst, log, entry, len, max_entries, ttl_ms, c_, a_),
	    sreal->log_append(inst, log, entry, len, max_entries, ttl_ms, cb, arg));
}

static void
m_log_range(void *inst, const char *log, uint64_t after, size_t max, mcpd_entries_cb *cb, void *arg)
{
	WRAP(MXO_LOG_RANGE, mcpd_entries_cb, entries_cb, sreal->log_range(inst, log, after, max, c_, a_),
	    sreal->log_range(inst, log, after, max, cb, arg));
}

/* ---- transport ---- */

static void
m_publish(void *inst, const char *channel, const void *msg, size_t len,
    const struct mcpd_publish_opts *opts, mcpd_done_cb *cb, void *arg)
{
	struct op *o = op_new(0, (void *)cb, arg);
	if (o == NULL) {
		treal->publish(inst, channel, msg, len, opts, cb, arg);
		return;
	}
	o->publish = 1;
	treal->publish(inst, channel, msg, len, opts, done_cb, o);
}

static void *
m_subscribe(void *inst, const char *channel, mcpd_message_cb *cb, void *arg)
{
	uint64_t start = monotonic_us();
	void *sub = treal->subscribe(inst, channel, cb, arg);
	metrics_transport(MXP_SUBSCRIBE, sub != NULL, monotonic_us() - start);
	return sub;
}

void
metered_names(const char *storage, const char *transport)
{
	storage_name = storage != NULL ? storage : "";
	transport_name = transport != NULL ? transport : "";
}

void
metered_backends(struct backends *b)
{
	if (b->storage != NULL && sreal == NULL) {
		sreal = b->storage;
		sops = *sreal;
		sops.get = m_get;
		sops.set = m_set;
		sops.del = m_del;
		sops.log_append = m_log_append;
		sops.log_range = m_log_range;
		/* Optional ones stay NULL where the plugin lacks them. */
		if (sreal->exists != NULL)
			sops.exists = m_exists;
		if (sreal->incr != NULL)
			sops.incr = m_incr;
		if (sreal->index_add != NULL)
			sops.index_add = m_index_add;
		if (sreal->index_remove != NULL)
			sops.index_remove = m_index_remove;
		if (sreal->index_members != NULL)
			sops.index_members = m_index_members;
	}
	if (b->transport != NULL && treal == NULL) {
		treal = b->transport;
		tops = *treal;
		tops.publish = m_publish;
		tops.subscribe = m_subscribe;
	}
	if (sreal != NULL)
		b->storage = &sops;
	if (treal != NULL)
		b->transport = &tops;
}
