/*
 * redis: storage and transport on a Redis server, so that several mcpd
 * instances share sessions. Built against <mcpd/plugin.h> alone, with
 * hiredis' asynchronous API on the worker's libevent loop.
 *
 *   storage:   { plugin: redis, url: redis://127.0.0.1:6379/0, key_prefix: "mcpd:" }
 *   transport: { plugin: redis, url: redis://127.0.0.1:6379, mode: pubsub }   # or streams
 *
 * Keys: url (redis://[:password@]host[:port][/db] or unix:/path),
 * password, database, key_prefix, connect_timeout, command_timeout, and for
 * the transport mode (pubsub | streams), stream_maxlen, stream_ttl.
 *
 * When Redis is down the plugin keeps trying (100 ms doubling to 5 s);
 * operations fail at once with a clear error meanwhile, and /readyz says so.
 * A host name is looked up on the loop (evdns) at each connection attempt,
 * and its addresses are tried in turn.
 *
 * Streams mode: each channel is a Redis stream (XADD, trimmed with MAXLEN
 * and expiring after stream_ttl); every worker reads what it subscribed to
 * with XREAD from the last id it saw, so a worker that reconnects misses
 * nothing. Consumer groups are not used on purpose: they share a stream's
 * messages among consumers, and here every subscriber needs every message.
 */
#include <mcpd/plugin.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/sds.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "opfail.h"
#include "resolve.h"
#include "subs.h"

#define MAX_BACKOFF_MS 5000
#define BLOCK_MS 200                /* XREAD BLOCK: how soon a new subscription is read */

struct redis;

struct rconn {
	struct redis *r;
	const char *role;               /* "commands", "subscriber", "reader" */
	redisAsyncContext *ac;
	int ready;                      /* connected, authenticated, database selected */
	int connecting;
	int resolving;                  /* the host name is being looked up */
	struct lookup *lookup;
	char addrs[RESOLVE_MAX_ADDRS][RESOLVE_ADDR_LEN];
	size_t naddrs, next_addr;       /* of the last lookup; the one tried now */
	unsigned backoff_ms;
	struct event *retry;
	uint64_t connect_started;
	unsigned inflight;
	uint64_t last_progress;
	int down_logged;
	void (*on_ready)(struct rconn *);
};

struct stream_pos {                 /* streams mode: where reading goes on */
	char *channel;
	char id[64];
	unsigned users;
	struct stream_pos *next;
};

struct redis {
	const struct mcpd_host *host;
	enum mcpd_plugin_kind kind;
	char host_name[300];
	int port;
	struct resolver *dns;           /* when host_name is a name */
	char unix_path[256];
	char password[256];
	int db;
	char prefix[128];
	uint64_t connect_timeout_ms, command_timeout_ms;
	uint64_t max_queued;            /* bytes of commands Redis has not read yet */
	int streams;
	uint64_t stream_maxlen, stream_ttl_ms;
	struct rconn cmd, sub;
	struct event *watchdog;
	struct subs subs;              /* channels without the prefix */
	struct stream_pos *positions;
	int reading;                    /* an XREAD is out */
	long long reader_id;            /* CLIENT ID of the reading connection */
	int64_t clock_offset_ms;        /* Redis' clock minus ours (stream ids are times) */
	int unblocking;                 /* a CLIENT UNBLOCK for it is out */
	int closing;                    /* detaching: calls out are dropped, not answered */
	char last_error[256];
};

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
note_error(struct redis *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->last_error, sizeof(r->last_error), fmt, ap);
	va_end(ap);
}

/* ---- connections ---- */

static void rconn_connect(struct rconn *c);

static void
retry_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	rconn_connect(arg);
}

static void
schedule_retry(struct rconn *c)
{
	c->ready = 0;
	c->connecting = 0;
	c->resolving = 0;
	c->ac = NULL;
	c->inflight = 0;
	/* The host name's next address at once; after the last, a new lookup
	 * after the back-off. */
	if (c->naddrs > 0 && ++c->next_addr < c->naddrs) {
		struct timeval now = { 0, 0 };
		evtimer_add(c->retry, &now);
		return;
	}
	c->naddrs = 0;
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : 100;
	if (c->backoff_ms > MAX_BACKOFF_MS)
		c->backoff_ms = MAX_BACKOFF_MS;
	struct timeval tv = { (time_t)(c->backoff_ms / 1000), (suseconds_t)(c->backoff_ms % 1000) * 1000 };
	evtimer_add(c->retry, &tv);
}

static void
setup_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct rconn *c = priv;
	redisReply *rep = reply;
	if (c->ac == NULL)
		return;
	if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
		note_error(c->r, "redis refused the connection setup: %s", rep ? rep->str : "no answer");
		c->r->host->log(MCPD_LOG_ERROR, "redis (%s): %s", c->role, c->r->last_error);
		redisAsyncDisconnect(c->ac);
		return;
	}
	/* Replies to AUTH and SELECT arrive in order; SELECT's is the last. */
	if (--c->inflight > 0)
		return;
	c->ready = 1;
	c->backoff_ms = 0;
	c->naddrs = 0;                  /* a reconnection looks the name up again */
	c->last_progress = now_ms();
	if (c->down_logged)
		c->r->host->log(MCPD_LOG_NOTICE, "redis (%s): connected again", c->role);
	c->down_logged = 0;
	if (c->on_ready)
		c->on_ready(c);
}

static void
connect_cb(const redisAsyncContext *ac, int status)
{
	struct rconn *c = ac->data;
	if (status != REDIS_OK) {
		/* Quiet while the host name has other addresses to try
		 * (localhost's ::1 when Redis listens on 127.0.0.1). */
		int more = c->naddrs > 0 && c->next_addr + 1 < c->naddrs;
		if (c->naddrs > 0)
			note_error(c->r, "cannot connect to redis at %s: %s", c->addrs[c->next_addr], ac->errstr);
		else
			note_error(c->r, "cannot connect to redis: %s", ac->errstr);
		if (!c->down_logged && !more) {
			c->r->host->log(MCPD_LOG_WARN, "redis (%s): %s; retrying", c->role, c->r->last_error);
			c->down_logged = 1;
		}
		schedule_retry(c);      /* hiredis frees ac */
		return;
	}
	c->connecting = 0;
	struct redis *r = c->r;
	if (r->password[0]) {
		const char *argv[] = { "AUTH", r->password };
		c->inflight++;
		redisAsyncCommandArgv(c->ac, setup_reply, c, 2, argv, NULL);
	}
	char db[16];
	snprintf(db, sizeof(db), "%d", r->db);
	const char *argv[] = { "SELECT", db };
	c->inflight++;
	redisAsyncCommandArgv(c->ac, setup_reply, c, 2, argv, NULL);
}

static void
disconnect_cb(const redisAsyncContext *ac, int status)
{
	struct rconn *c = ac->data;
	if (c == NULL)
		return;
	if (status != REDIS_OK && !c->down_logged) {
		note_error(c->r, "lost the connection to redis: %s", ac->errstr);
		c->r->host->log(MCPD_LOG_WARN, "redis (%s): %s; reconnecting", c->role, ac->errstr);
		c->down_logged = 1;
	}
	if (c->r->reading && c == &c->r->sub)
		c->r->reading = 0;
	schedule_retry(c);
}

static void
rconn_connect_to(struct rconn *c, const char *addr)
{
	struct redis *r = c->r;
	redisAsyncContext *ac = r->unix_path[0] ? redisAsyncConnectUnix(r->unix_path) :
	    redisAsyncConnect(addr, r->port);
	if (ac == NULL || ac->err) {
		note_error(r, "cannot connect to redis: %s", ac ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		schedule_retry(c);
		return;
	}
	ac->data = c;
	c->ac = ac;
	c->connecting = 1;
	c->connect_started = now_ms();
	redisLibeventAttach(ac, r->host->event_base());
	redisAsyncSetConnectCallback(ac, connect_cb);
	redisAsyncSetDisconnectCallback(ac, disconnect_cb);
}

static void
resolved(void *arg, char addrs[][RESOLVE_ADDR_LEN], size_t naddrs, const char *why)
{
	struct rconn *c = arg;
	struct redis *r = c->r;
	c->resolving = 0;
	if (naddrs == 0) {
		note_error(r, "cannot resolve %s: %s", r->host_name, why);
		if (!c->down_logged)
			r->host->log(MCPD_LOG_WARN, "redis (%s): %s; retrying", c->role, r->last_error);
		c->down_logged = 1;
		schedule_retry(c);
		return;
	}
	memcpy(c->addrs, addrs, naddrs * sizeof(c->addrs[0]));
	c->naddrs = naddrs;
	c->next_addr = 0;
	rconn_connect_to(c, c->addrs[0]);
}

/* A socket path or an address connects at once; a host name is looked up
 * first, on the loop (hiredis would call getaddrinfo and wait). */
static void
rconn_connect(struct rconn *c)
{
	struct redis *r = c->r;
	if (r->unix_path[0] || r->dns == NULL) {
		rconn_connect_to(c, r->host_name);
	} else if (c->next_addr < c->naddrs) {
		rconn_connect_to(c, c->addrs[c->next_addr]);
	} else {
		c->resolving = 1;
		c->connect_started = now_ms();
		resolve_start(r->dns, r->host_name, resolved, c, &c->lookup);
	}
}

/* Drops a connection at once: hiredis' own disconnect waits for the
 * replies due, which a hung server never sends. Those replies' callbacks
 * run now with NULL, so their callers hear that the connection is lost. */
static void
conn_drop(struct rconn *c)
{
	redisAsyncContext *ac = c->ac;
	c->ac = NULL;
	c->ready = 0;
	ac->data = NULL;                /* no disconnect callback for this one */
	if (c == &c->r->sub)
		c->r->reading = 0;
	redisAsyncFree(ac);
	schedule_retry(c);
}

/* Connections that hang (no connect, no answers) are dropped and redone. */
static void
watchdog_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct redis *r = arg;
	struct rconn *cs[] = { &r->cmd, &r->sub };
	uint64_t now = now_ms();
	for (size_t i = 0; i < 2; i++) {
		struct rconn *c = cs[i];
		if (c->resolving && now - c->connect_started > r->connect_timeout_ms) {
			resolve_cancel(&c->lookup);
			note_error(r, "cannot resolve %s: no answer within %llums", r->host_name,
			    (unsigned long long)r->connect_timeout_ms);
			if (!c->down_logged)
				r->host->log(MCPD_LOG_WARN, "redis (%s): %s; retrying", c->role, r->last_error);
			c->down_logged = 1;
			schedule_retry(c);
			continue;
		}
		if (c->ac == NULL)
			continue;
		int stuck = (c->connecting && now - c->connect_started > r->connect_timeout_ms) ||
		    (c->ready && c->inflight > 0 && now - c->last_progress > r->command_timeout_ms + BLOCK_MS);
		if (stuck) {
			note_error(r, "redis did not answer within %llums", (unsigned long long)
			    (c->connecting ? r->connect_timeout_ms : r->command_timeout_ms));
			r->host->log(MCPD_LOG_WARN, "redis (%s): %s; reconnecting", c->role, r->last_error);
			c->down_logged = 1;
			conn_drop(c);
		}
	}
}

/* A command; the callback gets NULL when the connection is gone. While
 * Redis is slow to read, commands wait in hiredis's output buffer: past
 * max_queued bytes the caller gets an error at once, rather than the
 * worker growing until command_timeout drops the connection. */
static int
command(struct rconn *c, redisCallbackFn *fn, void *priv, int argc, const char **argv, const size_t *lens)
{
	if (!c->ready || c->ac == NULL)
		return -1;
	if (c->ac->c.obuf != NULL && sdslen(c->ac->c.obuf) > c->r->max_queued) {
		note_error(c->r, "over %llu bytes of commands wait for redis to read them (max_queued)",
		    (unsigned long long)c->r->max_queued);
		return -1;
	}
	if (c->inflight++ == 0)
		c->last_progress = now_ms();
	return redisAsyncCommandArgv(c->ac, fn, priv, argc, argv, lens) == REDIS_OK ? 0 : -1;
}

static void
progress(struct rconn *c)
{
	if (c->inflight > 0)
		c->inflight--;
	c->last_progress = now_ms();
}

/* ---- storage ---- */

struct op {
	struct redis *r;
	int kind;                       /* which callback */
	void *cb;
	void *arg;
	uint64_t after;                 /* log_range */
	size_t max;
};

enum { K_DONE, K_VALUE, K_INT, K_MEMBERS, K_ENTRIES, K_SET, K_DEL, K_EXISTS };

static const char *
down_reason(struct redis *r)
{
	return r->last_error[0] ? r->last_error : "redis is not connected";
}

/* The shape of each kind's callback. */
static const enum op_shape shapes[] = {
	[K_DONE] = OP_DONE, [K_VALUE] = OP_VALUE, [K_INT] = OP_INT, [K_MEMBERS] = OP_MEMBERS,
	[K_ENTRIES] = OP_ENTRIES, [K_SET] = OP_DONE, [K_DEL] = OP_DONE, [K_EXISTS] = OP_DONE,
};
_Static_assert(sizeof(shapes) / sizeof(shapes[0]) == K_EXISTS + 1, "a shape for each kind");

static void
fail(struct op *o, const char *why)
{
	op_fail(shapes[o->kind], o->cb, o->arg, why);
}

static void
storage_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct op *o = priv;
	redisReply *rep = reply;
	progress(&o->r->cmd);
	if (o->r->closing) {
		free(o);
		return;
	}
	if (rep == NULL) {
		fail(o, "lost the connection to redis");
		free(o);
		return;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		fail(o, rep->str);
		free(o);
		return;
	}
	switch (o->kind) {
	case K_VALUE:
		if (o->cb)
			((mcpd_value_cb *)o->cb)(o->arg, rep->type == REDIS_REPLY_STRING ? MCPD_OK : MCPD_NOT_FOUND,
			    rep->str, rep->len, NULL);
		break;
	case K_SET:       /* OK, or nil when NX/XX did not hold */
		if (o->cb)
			((mcpd_done_cb *)o->cb)(o->arg, rep->type == REDIS_REPLY_NIL ? MCPD_CONFLICT : MCPD_OK, NULL);
		break;
	case K_DEL:
	case K_EXISTS:
		if (o->cb)
			((mcpd_done_cb *)o->cb)(o->arg, rep->integer > 0 ? MCPD_OK : MCPD_NOT_FOUND, NULL);
		break;
	case K_DONE:
		if (o->cb)
			((mcpd_done_cb *)o->cb)(o->arg, MCPD_OK, NULL);
		break;
	case K_INT:
		if (o->cb)
			((mcpd_int_cb *)o->cb)(o->arg, MCPD_OK, rep->type == REDIS_REPLY_INTEGER ? rep->integer :
			    (rep->str ? strtoll(rep->str, NULL, 10) : 0), NULL);
		break;
	case K_MEMBERS: {
		const char **names = calloc(rep->elements + 1, sizeof(char *));
		size_t n = 0;
		for (size_t i = 0; names != NULL && i < rep->elements; i++)
			if (rep->element[i]->type == REDIS_REPLY_STRING)
				names[n++] = rep->element[i]->str;
		if (o->cb)
			((mcpd_members_cb *)o->cb)(o->arg, MCPD_OK, names, n, NULL);
		free(names);
		break;
	}
	case K_ENTRIES: {
		struct mcpd_log_entry *e = calloc(rep->elements + 1, sizeof(*e));
		size_t n = 0;
		for (size_t i = 0; e != NULL && i < rep->elements && n < o->max; i++) {
			redisReply *x = rep->element[i];
			if (x->type != REDIS_REPLY_STRING)
				continue;
			char *nl = memchr(x->str, '\n', x->len);
			if (nl == NULL)
				continue;
			uint64_t seq = strtoull(x->str, NULL, 10);
			if (seq <= o->after)
				continue;
			e[n].seq = seq;
			e[n].data = nl + 1;
			e[n].len = x->len - (size_t)(nl + 1 - x->str);
			n++;
		}
		if (o->cb)
			((mcpd_entries_cb *)o->cb)(o->arg, MCPD_OK, e, n, NULL);
		free(e);
		break;
	}
	}
	free(o);
}

static struct op *
op_new(struct redis *r, int kind, void *cb, void *arg)
{
	struct op *o = calloc(1, sizeof(*o));
	if (o != NULL) {
		o->r = r;
		o->kind = kind;
		o->cb = cb;
		o->arg = arg;
	}
	return o;
}

static void
send_op(struct op *o, int argc, const char **argv, const size_t *lens)
{
	if (o == NULL)
		return;
	if (command(&o->r->cmd, storage_reply, o, argc, argv, lens) < 0) {
		fail(o, down_reason(o->r));
		free(o);
	}
}

/* The prefixed key. One that does not fit is refused (the op fails and
 * is freed): cut, two long keys would be one. */
static int
key_of(struct redis *r, char *buf, size_t len, const char *key, struct op *o)
{
	if ((size_t)snprintf(buf, len, "%s%s", r->prefix, key) < len)
		return 0;
	if (o != NULL) {
		fail(o, "redis: key too long");
		free(o);
	}
	return -1;
}

static void
s_get(void *inst, const char *key, mcpd_value_cb *cb, void *arg)
{
	char k[1024];
	struct op *o = op_new(inst, K_VALUE, (void *)cb, arg);
	if (key_of(inst, k, sizeof(k), key, o) < 0)
		return;
	const char *argv[] = { "GET", k };
	send_op(o, 2, argv, NULL);
}

static void
s_set(void *inst, const char *key, const void *value, size_t len, uint64_t ttl_ms, unsigned flags,
    mcpd_done_cb *cb, void *arg)
{
	char k[1024], ttl[32];
	struct op *o = op_new(inst, K_SET, (void *)cb, arg);
	if (key_of(inst, k, sizeof(k), key, o) < 0)
		return;
	const char *argv[6] = { "SET", k, value };
	size_t lens[6] = { 3, strlen(k), len };
	int argc = 3;
	if (ttl_ms > 0) {
		snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)ttl_ms);
		argv[argc] = "PX";
		lens[argc++] = 2;
		argv[argc] = ttl;
		lens[argc++] = strlen(ttl);
	}
	if (flags & (MCPD_SET_IF_ABSENT | MCPD_SET_IF_PRESENT)) {
		argv[argc] = (flags & MCPD_SET_IF_ABSENT) ? "NX" : "XX";
		lens[argc++] = 2;
	}
	send_op(o, argc, argv, lens);
}

static void
s_del(void *inst, const char *key, mcpd_done_cb *cb, void *arg)
{
	/* A log of that name goes too, with its sequence counter. */
	char k[1024], seq[1032];
	struct op *o = op_new(inst, K_DEL, (void *)cb, arg);
	if (key_of(inst, k, sizeof(k), key, o) < 0)
		return;
	snprintf(seq, sizeof(seq), "%s:seq", k);
	const char *argv[] = { "DEL", k, seq };
	send_op(o, 3, argv, NULL);
}

static void
s_exists(void *inst, const char *key, mcpd_done_cb *cb, void *arg)
{
	char k[1024];
	struct op *o = op_new(inst, K_EXISTS, (void *)cb, arg);
	if (key_of(inst, k, sizeof(k), key, o) < 0)
		return;
	const char *argv[] = { "EXISTS", k };
	send_op(o, 2, argv, NULL);
}

/* INCRBY and the expiry in one step. */
static const char INCR_SCRIPT[] =
    "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) "
    "if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end "
    "return v";

static void
s_incr(void *inst, const char *key, int64_t by, uint64_t ttl_ms, mcpd_int_cb *cb, void *arg)
{
	char k[1024], b[32], t[32];
	struct op *o = op_new(inst, K_INT, (void *)cb, arg);
	if (key_of(inst, k, sizeof(k), key, o) < 0)
		return;
	snprintf(b, sizeof(b), "%lld", (long long)by);
	snprintf(t, sizeof(t), "%llu", (unsigned long long)ttl_ms);
	const char *argv[] = { "EVAL", INCR_SCRIPT, "1", k, b, t };
	send_op(o, 6, argv, NULL);
}

/* Index members are a sorted set scored by their expiry (+inf: none). */
static const char INDEX_ADD_SCRIPT[] =
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3]) "
    "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) "
    "return 1";

static void
s_index_add(void *inst, const char *index, const char *member, uint64_t ttl_ms, mcpd_done_cb *cb, void *arg)
{
	char k[1024], score[32], now[32];
	struct op *o = op_new(inst, K_DONE, (void *)cb, arg);
	if (key_of(inst, k, sizeof(k), index, o) < 0)
		return;
	if (ttl_ms > 0)
		snprintf(score, sizeof(score), "%llu", (unsigned long long)(wall_ms() + ttl_ms));
	else
		snprintf(score, sizeof(score), "+inf");
	snprintf(now, sizeof(now), "%llu", (unsigned long long)wall_ms());
	const char *argv[] = { "EVAL", INDEX_ADD_SCRIPT, "1", k, score, member, now };
	send_op(o, 7, argv, NULL);
}

static void
s_index_remove(void *inst, const char *index, const char *member, mcpd_done_cb *cb, void *arg)
{
	char k[1024];
	struct op *o = op_new(inst, K_DEL, (void *)cb, arg);
	if (key_of(inst, k, sizeof(k), index, o) < 0)
		return;
	const char *argv[] = { "ZREM", k, member };
	send_op(o, 3, argv, NULL);
}

static void
s_index_members(void *inst, const char *index, mcpd_members_cb *cb, void *arg)
{
	char k[1024], now[32];
	struct op *o = op_new(inst, K_MEMBERS, (void *)cb, arg);
	if (key_of(inst, k, sizeof(k), index, o) < 0)
		return;
	snprintf(now, sizeof(now), "(%llu", (unsigned long long)wall_ms());
	const char *argv[] = { "ZRANGEBYSCORE", k, now, "+inf" };
	send_op(o, 4, argv, NULL);
}

/* A log is a list of "<seq>\n<entry>" with its counter beside it. */
static const char LOG_APPEND_SCRIPT[] =
    "local seq = redis.call('INCR', KEYS[2]) "
    "redis.call('RPUSH', KEYS[1], seq .. '\\n' .. ARGV[1]) "
    "redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1) "
    "if tonumber(ARGV[3]) > 0 then "
    "  redis.call('PEXPIRE', KEYS[1], ARGV[3]) redis.call('PEXPIRE', KEYS[2], ARGV[3]) "
    "end "
    "return seq";

static void
s_log_append(void *inst, const char *log, const void *entry, size_t len, uint64_t max_entries,
    uint64_t ttl_ms, mcpd_int_cb *cb, void *arg)
{
	struct redis *r = inst;
	char k[1024], seqk[1100], max[32], ttl[32];
	struct op *o = op_new(r, K_INT, (void *)cb, arg);
	if (key_of(r, k, sizeof(k), log, o) < 0)
		return;
	snprintf(seqk, sizeof(seqk), "%s:seq", k);
	snprintf(max, sizeof(max), "%llu", (unsigned long long)(max_entries ? max_entries : 1));
	snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)ttl_ms);
	const char *argv[] = { "EVAL", LOG_APPEND_SCRIPT, "2", k, seqk, entry, max, ttl };
	size_t lens[] = { 4, strlen(LOG_APPEND_SCRIPT), 1, strlen(k), strlen(seqk), len, strlen(max), strlen(ttl) };
	send_op(o, 8, argv, lens);
}

static void
s_log_range(void *inst, const char *log, uint64_t after, size_t max, mcpd_entries_cb *cb, void *arg)
{
	char k[1024];
	struct op *o = op_new(inst, K_ENTRIES, (void *)cb, arg);
	if (key_of(inst, k, sizeof(k), log, o) < 0)
		return;
	if (o != NULL) {
		o->after = after;
		o->max = max;
	}
	const char *argv[] = { "LRANGE", k, "0", "-1" };
	send_op(o, 4, argv, NULL);
}

static const struct mcpd_storage_ops storage_ops = {
	.size = sizeof(struct mcpd_storage_ops),
	.get = s_get,
	.set = s_set,
	.del = s_del,
	.exists = s_exists,
	.incr = s_incr,
	.index_add = s_index_add,
	.index_remove = s_index_remove,
	.index_members = s_index_members,
	.log_append = s_log_append,
	.log_range = s_log_range,
};

/* ---- transport ---- */

static void
deliver(struct redis *r, const char *channel, const char *msg, size_t len)
{
	subs_deliver(&r->subs, channel, msg, len);
}

/* pubsub: one SUBSCRIBE per channel on the subscriber connection; hiredis
 * calls the callback for the confirmation and for every message. */
static void
pubsub_message(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct redis *r = priv;
	redisReply *rep = reply;
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3)
		return;
	if (strcmp(rep->element[0]->str, "message") != 0)
		return;
	size_t pl = strlen(r->prefix);
	const char *ch = rep->element[1]->str;
	if (strncmp(ch, r->prefix, pl) != 0)
		return;
	deliver(r, ch + pl, rep->element[2]->str, rep->element[2]->len);
}

static void
pubsub_subscribe(struct redis *r, const char *channel, int on)
{
	if (!r->sub.ready)
		return;     /* done for every channel when the connection is ready */
	char k[1024];
	if (key_of(r, k, sizeof(k), channel, NULL) < 0)
		return;     /* t_subscribe refuses such channels */
	const char *argv[] = { on ? "SUBSCRIBE" : "UNSUBSCRIBE", k };
	redisAsyncCommandArgv(r->sub.ac, pubsub_message, r, 2, argv, NULL);
}

static void xread(struct redis *r);

static struct stream_pos *
position(struct redis *r, const char *channel, int create)
{
	for (struct stream_pos *p = r->positions; p != NULL; p = p->next)
		if (strcmp(p->channel, channel) == 0)
			return p;
	if (!create)
		return NULL;
	struct stream_pos *p = calloc(1, sizeof(*p));
	if (p == NULL || (p->channel = strdup(channel)) == NULL) {
		free(p);
		return NULL;
	}
	/* From a moment ago: a message sent just before we subscribed, or
	 * while clocks differ a little between hosts, is still seen; a copy
	 * seen twice is harmless to mcpd (events carry sequence numbers). */
	snprintf(p->id, sizeof(p->id), "%llu-0",
	    (unsigned long long)((int64_t)wall_ms() + r->clock_offset_ms - 1000));
	p->next = r->positions;
	r->positions = p;
	return p;
}

static void
drop_position(struct redis *r, const char *channel)
{
	for (struct stream_pos **pp = &r->positions; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->channel, channel) == 0) {
			struct stream_pos *p = *pp;
			*pp = p->next;
			free(p->channel);
			free(p);
			return;
		}
	}
}

static void
xread_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct redis *r = priv;
	redisReply *rep = reply;
	r->reading = 0;
	r->unblocking = 0;
	progress(&r->sub);
	if (rep == NULL)
		return;     /* reconnecting: the read starts again when ready */
	size_t pl = strlen(r->prefix) + 7;     /* "<prefix>stream:" */
	if (rep->type == REDIS_REPLY_ARRAY) {
		for (size_t i = 0; i < rep->elements; i++) {
			redisReply *st = rep->element[i];
			if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 || st->element[0]->len <= pl)
				continue;
			const char *channel = st->element[0]->str + pl;
			struct stream_pos *p = position(r, channel, 0);
			redisReply *entries = st->element[1];
			for (size_t j = 0; j < entries->elements; j++) {
				redisReply *e = entries->element[j];
				if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
					continue;
				if (p != NULL)
					snprintf(p->id, sizeof(p->id), "%s", e->element[0]->str);
				redisReply *f = e->element[1];
				for (size_t k = 0; k + 1 < f->elements; k += 2)
					if (strcmp(f->element[k]->str, "m") == 0)
						deliver(r, channel, f->element[k + 1]->str, f->element[k + 1]->len);
			}
		}
	}
	xread(r);
}

/* One XREAD for every subscribed channel, from where each left off. */
static void
xread(struct redis *r)
{
	if (r->reading || !r->sub.ready || r->positions == NULL)
		return;
	size_t n = 0;
	for (struct stream_pos *p = r->positions; p != NULL; p = p->next)
		n++;
	const char **argv = calloc(5 + 2 * n, sizeof(char *));
	char **keys = calloc(n, sizeof(char *));
	if (argv == NULL || keys == NULL) {
		free(argv);
		free(keys);
		return;
	}
	char block[16];
	snprintf(block, sizeof(block), "%d", BLOCK_MS);
	size_t a = 0, i = 0;
	argv[a++] = "XREAD";
	argv[a++] = "BLOCK";
	argv[a++] = block;
	argv[a++] = "STREAMS";
	for (struct stream_pos *p = r->positions; p != NULL; p = p->next, i++) {
		size_t kl = strlen(r->prefix) + strlen(p->channel) + 8;
		keys[i] = malloc(kl);
		snprintf(keys[i], kl, "%sstream:%s", r->prefix, p->channel);
		argv[a++] = keys[i];
	}
	for (struct stream_pos *p = r->positions; p != NULL; p = p->next)
		argv[a++] = p->id;
	if (command(&r->sub, xread_reply, r, (int)a, argv, NULL) == 0)
		r->reading = 1;
	for (i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	free(argv);
}

static void
client_id_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct redis *r = priv;
	redisReply *rep = reply;
	progress(&r->sub);
	r->reader_id = rep != NULL && rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
}

static void
time_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct redis *r = priv;
	redisReply *rep = reply;
	progress(&r->sub);
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
	    rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_STRING)
		return;
	int64_t theirs = strtoll(rep->element[0]->str, NULL, 10) * 1000 + strtoll(rep->element[1]->str, NULL, 10) / 1000;
	r->clock_offset_ms = theirs - (int64_t)wall_ms();
	if (r->clock_offset_ms > 1000 || r->clock_offset_ms < -1000)
		r->host->log(MCPD_LOG_WARN, "redis: its clock is %lld ms from ours; following its clock",
		    (long long)r->clock_offset_ms);
}

static void
unblock_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	(void)reply;
	progress(&((struct redis *)priv)->cmd);
}

/* A channel subscribed while the XREAD blocks would wait for the block to
 * time out; cut it short so that the next read includes the channel. */
static void
reread(struct redis *r)
{
	if (!r->reading) {
		xread(r);
		return;
	}
	if (r->unblocking || r->reader_id <= 0)
		return;
	char id[32];
	snprintf(id, sizeof(id), "%lld", r->reader_id);
	const char *argv[] = { "CLIENT", "UNBLOCK", id };
	if (command(&r->cmd, unblock_reply, r, 3, argv, NULL) == 0)
		r->unblocking = 1;
}

static void
sub_ready(struct rconn *c)
{
	struct redis *r = c->r;
	if (r->streams) {
		const char *argv[] = { "CLIENT", "ID" };
		const char *tv[] = { "TIME" };
		r->reader_id = 0;
		r->unblocking = 0;
		command(c, time_reply, r, 1, tv, NULL);
		command(c, client_id_reply, r, 2, argv, NULL);
		xread(r);
		return;
	}
	/* Subscribe again to everything we listen to. */
	for (size_t b = 0; b < SUBS_BUCKETS; b++)
		for (struct sub *s = r->subs.buckets[b]; s != NULL; s = s->next)
			if (!s->dead) {
				int first = 1;
				for (struct sub *t = r->subs.buckets[b]; t != s; t = t->next)
					if (!t->dead && strcmp(t->channel, s->channel) == 0)
						first = 0;
				if (first)
					pubsub_subscribe(r, s->channel, 1);
			}
}

static void *
t_subscribe(void *inst, const char *channel, mcpd_message_cb *cb, void *arg)
{
	struct redis *r = inst;
	/* a channel whose key would be cut is refused: cut, two would be one */
	if (strlen(r->prefix) + strlen("stream:") + strlen(channel) >= 1024)
		return NULL;
	int first = subs_count(&r->subs, channel) == 0;
	struct sub *s = subs_add(&r->subs, channel, cb, arg);
	if (s != NULL && first) {
		if (r->streams) {
			position(r, channel, 1);
			reread(r);
		} else {
			pubsub_subscribe(r, channel, 1);
		}
	}
	return s;
}

static void
t_unsubscribe(void *inst, void *subscription)
{
	struct redis *r = inst;
	struct sub *s = subscription;
	if (!subs_mark(s))
		return;
	if (subs_count(&r->subs, s->channel) == 0) {
		if (r->streams)
			drop_position(r, s->channel);
		else
			pubsub_subscribe(r, s->channel, 0);
	}
	subs_release(&r->subs, s);
}

static void
t_publish(void *inst, const char *channel, const void *msg, size_t len,
    const struct mcpd_publish_opts *opts, mcpd_done_cb *cb, void *arg)
{
	struct redis *r = inst;
	char k[1024];
	struct op *o = op_new(r, K_DONE, (void *)cb, arg);
	if (!r->streams) {
		if (key_of(r, k, sizeof(k), channel, o) < 0)
			return;
		const char *argv[] = { "PUBLISH", k, msg };
		size_t lens[] = { 7, strlen(k), len };
		send_op(o, 3, argv, lens);
		return;
	}
	if ((size_t)snprintf(k, sizeof(k), "%sstream:%s", r->prefix, channel) >= sizeof(k)) {
		if (o != NULL) {
			fail(o, "redis: channel name too long");
			free(o);
		}
		return;
	}
	char maxlen[32], ttl[32];
	snprintf(maxlen, sizeof(maxlen), "%llu", (unsigned long long)r->stream_maxlen);
	uint64_t t = opts != NULL && opts->size >= sizeof(*opts) && opts->ttl_ms ? opts->ttl_ms : r->stream_ttl_ms;
	snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)t);
	static const char XADD_SCRIPT[] =
	    "redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'm', ARGV[1]) "
	    "redis.call('PEXPIRE', KEYS[1], ARGV[3]) return 1";
	const char *argv[] = { "EVAL", XADD_SCRIPT, "1", k, msg, maxlen, ttl };
	size_t lens[] = { 4, strlen(XADD_SCRIPT), 1, strlen(k), len, strlen(maxlen), strlen(ttl) };
	send_op(o, 7, argv, lens);
}

struct numsub {
	struct redis *r;
	mcpd_int_cb *cb;
	void *arg;
};

static void
numsub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct numsub *n = priv;
	redisReply *rep = reply;
	progress(&n->r->cmd);
	if (n->r->closing) {
		free(n);
		return;
	}
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2)
		n->cb(n->arg, MCPD_ERROR, 0, rep ? "unexpected PUBSUB NUMSUB answer" : "lost the connection to redis");
	else
		n->cb(n->arg, MCPD_OK, rep->element[1]->integer, NULL);
	free(n);
}

static void
t_has_subscribers(void *inst, const char *channel, mcpd_int_cb *cb, void *arg)
{
	struct redis *r = inst;
	if (r->streams) {
		cb(arg, MCPD_ERROR, 0, "not known in streams mode");
		return;
	}
	char k[1024];
	if (key_of(r, k, sizeof(k), channel, NULL) < 0) {
		cb(arg, MCPD_ERROR, 0, "redis: channel name too long");
		return;
	}
	const char *argv[] = { "PUBSUB", "NUMSUB", k };
	struct numsub *n = malloc(sizeof(*n));
	if (n == NULL) {
		cb(arg, MCPD_ERROR, 0, "out of memory");
		return;
	}
	n->r = r;
	n->cb = cb;
	n->arg = arg;
	if (command(&r->cmd, numsub_reply, n, 3, argv, NULL) < 0) {
		free(n);
		cb(arg, MCPD_ERROR, 0, down_reason(r));
	}
}

static const struct mcpd_transport_ops transport_ops = {
	.size = sizeof(struct mcpd_transport_ops),
	.subscribe = t_subscribe,
	.unsubscribe = t_unsubscribe,
	.publish = t_publish,
	.has_subscribers = t_has_subscribers,
};

/* ---- configuration and lifecycle ---- */

static int
parse_url(struct redis *r, const char *url, char *err, size_t errlen)
{
	if (strncmp(url, "unix:", 5) == 0) {
		snprintf(r->unix_path, sizeof(r->unix_path), "%s", url + 5);
		return 0;
	}
	if (strncmp(url, "rediss://", 9) == 0) {
		snprintf(err, errlen, "rediss:// needs hiredis with TLS (1.0 or later); this one is %d.%d",
		    HIREDIS_MAJOR, HIREDIS_MINOR);
		return -1;
	}
	if (strncmp(url, "redis://", 8) != 0) {
		snprintf(err, errlen, "url must be redis://[:password@]host[:port][/db] or unix:/path");
		return -1;
	}
	const char *p = url + 8, *at = strchr(p, '@');
	if (at != NULL) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		const char *pw = colon ? colon + 1 : p;
		snprintf(r->password, sizeof(r->password), "%.*s", (int)(at - pw), pw);
		p = at + 1;
	}
	const char *slash = strchr(p, '/');
	char hostport[300];
	snprintf(hostport, sizeof(hostport), "%.*s", slash ? (int)(slash - p) : (int)strlen(p), p);
	if (slash != NULL && slash[1] != '\0')
		r->db = atoi(slash + 1);
	char *colon = strrchr(hostport, ':');
	if (colon != NULL) {
		*colon = '\0';
		r->port = atoi(colon + 1);
	}
	if (hostport[0] == '\0' || r->port <= 0 || r->port > 65535) {
		snprintf(err, errlen, "url: bad host or port");
		return -1;
	}
	snprintf(r->host_name, sizeof(r->host_name), "%s", hostport);
	return 0;
}

static const char *
expected_value(const char *key)
{
	if (strcmp(key, "mode") == 0)
		return "pubsub or streams";
	if (strcmp(key, "database") == 0)
		return "a database number (0, 1, ...)";
	if (strcmp(key, "stream_maxlen") == 0)
		return "a positive number of entries";
	if (strcmp(key, "stream_ttl") == 0)
		return "a duration of at least 1s";
	if (strcmp(key, "connect_timeout") == 0 || strcmp(key, "command_timeout") == 0)
		return "a duration of at least 10ms";
	if (strcmp(key, "max_queued") == 0)
		return "a size of at least 64KiB";
	return "a string";
}

static void *
redis_create(const struct mcpd_host *host, const struct mcpd_config *section, enum mcpd_plugin_kind kind,
    char *err, size_t errlen)
{
	struct redis *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->host = host;
	r->kind = kind;
	snprintf(r->host_name, sizeof(r->host_name), "127.0.0.1");
	r->port = 6379;
	snprintf(r->prefix, sizeof(r->prefix), "mcpd:");
	r->connect_timeout_ms = 2000;
	r->command_timeout_ms = 2000;
	r->max_queued = 64u << 20;
	r->stream_maxlen = 10000;
	r->stream_ttl_ms = 3600000;
	char where[512];
	for (size_t i = 0; i < host->config_count(section); i++) {
		const char *key, *v;
		const struct mcpd_config *n = host->config_item(section, i, &key);
		host->config_where(n, where, sizeof(where));
		v = host->config_scalar(n);
		int bad = v == NULL;
		if (strcmp(key, "plugin") == 0)
			continue;
		if (!bad && strcmp(key, "url") == 0) {
			char why[256];
			if (parse_url(r, v, why, sizeof(why)) < 0) {
				snprintf(err, errlen, "%s: %s", where, why);
				goto fail;
			}
		} else if (!bad && strcmp(key, "password") == 0) {
			snprintf(r->password, sizeof(r->password), "%s", v);
		} else if (!bad && strcmp(key, "database") == 0) {
			r->db = atoi(v);
			bad = r->db < 0 || strspn(v, "0123456789") != strlen(v);
		} else if (!bad && strcmp(key, "key_prefix") == 0) {
			snprintf(r->prefix, sizeof(r->prefix), "%s", v);
		} else if (strcmp(key, "connect_timeout") == 0) {
			bad = host->config_duration(n, &r->connect_timeout_ms) < 0 || r->connect_timeout_ms < 10;
		} else if (strcmp(key, "command_timeout") == 0) {
			bad = host->config_duration(n, &r->command_timeout_ms) < 0 || r->command_timeout_ms < 10;
		} else if (strcmp(key, "max_queued") == 0) {
			bad = host->config_size(n, &r->max_queued) < 0 || r->max_queued < 65536;
		} else if (!bad && strcmp(key, "mode") == 0 && kind == MCPD_PLUGIN_TRANSPORT) {
			if (strcmp(v, "streams") == 0)
				r->streams = 1;
			else
				bad = strcmp(v, "pubsub") != 0;
		} else if (!bad && strcmp(key, "stream_maxlen") == 0 && kind == MCPD_PLUGIN_TRANSPORT) {
			r->stream_maxlen = strtoull(v, NULL, 10);
			bad = r->stream_maxlen == 0;
		} else if (strcmp(key, "stream_ttl") == 0 && kind == MCPD_PLUGIN_TRANSPORT) {
			bad = host->config_duration(n, &r->stream_ttl_ms) < 0 || r->stream_ttl_ms < 1000;
		} else {
			snprintf(err, errlen, "%s: unknown key \"%s\" (redis takes url, password, database, key_prefix, "
			    "connect_timeout, command_timeout, max_queued%s)", where, key,
			    kind == MCPD_PLUGIN_TRANSPORT ? ", mode, stream_maxlen, stream_ttl" : "");
			goto fail;
		}
		if (bad) {
			snprintf(err, errlen, "%s: %s must be %s", where, key, expected_value(key));
			goto fail;
		}
	}
	return r;
fail:
	free(r);
	return NULL;
}

static void *
storage_create(const struct mcpd_host *host, const struct mcpd_config *section, char *err, size_t errlen)
{
	return redis_create(host, section, MCPD_PLUGIN_STORAGE, err, errlen);
}

static void *
transport_create(const struct mcpd_host *host, const struct mcpd_config *section, char *err, size_t errlen)
{
	return redis_create(host, section, MCPD_PLUGIN_TRANSPORT, err, errlen);
}

static int
redis_attach(void *inst, char *err, size_t errlen)
{
	struct redis *r = inst;
	struct event_base *base = r->host->event_base();
	r->closing = 0;
	r->cmd.r = r;
	r->cmd.role = r->kind == MCPD_PLUGIN_STORAGE ? "storage" : "publisher";
	r->cmd.retry = evtimer_new(base, retry_cb, &r->cmd);
	r->watchdog = event_new(base, -1, EV_PERSIST, watchdog_cb, r);
	if (r->cmd.retry == NULL || r->watchdog == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (!r->unix_path[0] && resolve_is_name(r->host_name) && (r->dns = resolver_new(base, err, errlen)) == NULL)
		return -1;
	if (r->kind == MCPD_PLUGIN_TRANSPORT) {
		r->sub.r = r;
		r->sub.role = r->streams ? "stream reader" : "subscriber";
		r->sub.retry = evtimer_new(base, retry_cb, &r->sub);
		r->sub.on_ready = sub_ready;
		rconn_connect(&r->sub);
	}
	struct timeval second = { 1, 0 };
	event_add(r->watchdog, &second);
	/* Not connected yet is fine: mcpd starts, reports not ready, and
	 * serves as soon as Redis answers. */
	rconn_connect(&r->cmd);
	return 0;
}

static void
conn_close(struct rconn *c)
{
	if (c->retry != NULL) {
		event_free(c->retry);
		c->retry = NULL;
	}
	if (c->ac != NULL) {
		redisAsyncContext *ac = c->ac;
		c->ac = NULL;
		ac->data = NULL;
		redisAsyncFree(ac);
	}
}

/* The worker is stopping, its callers already gone: hiredis runs every
 * callback still due with no reply as it frees a connection, and those
 * are dropped here without calling back (like every plugin's detach). */
static void
redis_detach(void *inst)
{
	struct redis *r = inst;
	r->closing = 1;
	if (r->watchdog != NULL)
		event_free(r->watchdog);
	r->watchdog = NULL;
	conn_close(&r->cmd);
	conn_close(&r->sub);
	resolver_free(r->dns);          /* a lookup running is dropped: no callback */
	r->dns = NULL;
	subs_clear(&r->subs);
	while (r->positions != NULL)
		drop_position(r, r->positions->channel);
}

static void
redis_destroy(void *inst)
{
	free(inst);
}

static int
redis_status(void *inst, char *why, size_t len)
{
	struct redis *r = inst;
	int ok = r->cmd.ready && (r->kind == MCPD_PLUGIN_STORAGE || r->sub.ready);
	if (!ok)
		snprintf(why, len, "%s", down_reason(r));
	return ok ? 0 : -1;
}

static const struct mcpd_plugin storage_descriptor = {
	.size = sizeof(struct mcpd_plugin),
	.abi_major = MCPD_PLUGIN_ABI_MAJOR,
	.abi_minor = MCPD_PLUGIN_ABI_MINOR,
	.kind = MCPD_PLUGIN_STORAGE,
	.name = "redis",
	.version = "1.0.0",
	.create = storage_create,
	.attach = redis_attach,
	.detach = redis_detach,
	.destroy = redis_destroy,
	.ops = &storage_ops,
	.status = redis_status,
};

static const struct mcpd_plugin transport_descriptor = {
	.size = sizeof(struct mcpd_plugin),
	.abi_major = MCPD_PLUGIN_ABI_MAJOR,
	.abi_minor = MCPD_PLUGIN_ABI_MINOR,
	.kind = MCPD_PLUGIN_TRANSPORT,
	.name = "redis",
	.version = "1.0.0",
	.create = transport_create,
	.attach = redis_attach,
	.detach = redis_detach,
	.destroy = redis_destroy,
	.ops = &transport_ops,
	.status = redis_status,
};

static const struct mcpd_plugin *const descriptors[] = {
	&storage_descriptor, &transport_descriptor, NULL,
};

MCPD_EXPORT const struct mcpd_plugin *const *mcpd_plugin_entries(void);

const struct mcpd_plugin *const *
mcpd_plugin_entries(void)
{
	return descriptors;
}

/* For loaders that know only the single entry. */
const struct mcpd_plugin *
mcpd_plugin_entry(void)
{
	return &storage_descriptor;
}
