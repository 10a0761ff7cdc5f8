/*
 * postgres: storage in a PostgreSQL database, so that several mcpd
 * instances share sessions, event logs and the OAuth server's state.
 * Built against <mcpd/plugin.h> alone, with libpq's non-blocking API
 * driven by the worker's libevent loop: no libpq call here ever waits.
 *
 *   storage: { plugin: postgres, url: "postgresql://mcpd@127.0.0.1:5432/mcpd" }
 *
 * Keys: url (a libpq URI or key=value conninfo), password_file (a file
 * whose first line is the password, read when the configuration is
 * loaded), table_prefix (mcpd_), schema, connect_timeout (5s),
 * query_timeout (5s: the session's statement_timeout, and the time after
 * which a silent server is given up), purge_interval (1m).
 *
 * One connection per worker, in libpq's pipeline mode: queries are sent in
 * order without waiting for the answers before them (each closed by its
 * own sync, so that one failing leaves the others alone), up to
 * MAX_INFLIGHT at a time; more wait in a FIFO.
 * At each connection the tables are created if missing (under an
 * advisory lock, so that many workers starting at once do not race) and
 * the statements are prepared. Every statement is a single parameterised
 * statement, so each operation is atomic on its own. Times are the
 * database server's clock (now()), the same for every instance.
 *
 * When the server is down the plugin keeps trying (100 ms doubling to
 * 5 s); operations fail at once with a clear error meanwhile (mcpd
 * answers 503), and /readyz says why.
 *
 * libpq looks a host name up with getaddrinfo(3), which waits. So the
 * url's host names are looked up here, on the loop (evdns), at each
 * connection attempt, and libpq is given their addresses as hostaddr
 * beside host (which it keeps for TLS verification and .pgpass): each
 * address of each host is tried in turn. A url with hostaddr, or a
 * service, is left to libpq as it is.
 *
 * Expired rows are invisible to every read, and worker 1 of each instance
 * deletes them every purge_interval in bounded batches.
 */
#include <mcpd/plugin.h>

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "opfail.h"
#include "resolve.h"

#define MAX_BACKOFF_MS 5000
#define MAX_QUEUE 10000             /* ops waiting on one connection */
#define MAX_INFLIGHT 128            /* ops sent and not answered yet */
#define ADVISORY_LOCK 0x6d637064    /* "mcpd": serialises schema creation */

enum state { ST_DOWN, ST_CONNECTING, ST_SETUP, ST_READY };

/* Statements, prepared on every connection as "mcpd_<index>". */
enum stmt {
	S_GET, S_SET, S_SET_NX, S_SET_XX, S_DEL, S_EXISTS, S_INCR,
	S_IDX_ADD, S_IDX_REM, S_IDX_MEMBERS, S_LOG_APPEND, S_LOG_RANGE,
	S_PURGE_KV, S_PURGE_IDX, S_PURGE_LOG,
	N_STMT
};

/* Templates: {kv} {idx} {log} {meta} name the tables, {pfx} the prefix,
 * {now} the server's time in ms, {live} "expires_at not reached". */
#define LIVE "(expires_at IS NULL OR expires_at > {now})"
#define EXPIRES(n) "CASE WHEN $" #n "::bigint > 0 THEN {now} + $" #n "::bigint END"
#define GONE(t) "(" t ".expires_at IS NOT NULL AND " t ".expires_at <= {now})"

static const char *const TEMPLATES[N_STMT] = {
	[S_GET] = "SELECT value FROM {kv} WHERE key = $1::text AND " LIVE,
	[S_SET] = "INSERT INTO {kv} AS t (key, value, expires_at) VALUES ($1::text, $2::bytea, " EXPIRES(3) ") "
	    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
	/* Only over an expired row: the conflict's row lock makes it atomic. */
	[S_SET_NX] = "INSERT INTO {kv} AS t (key, value, expires_at) VALUES ($1::text, $2::bytea, " EXPIRES(3) ") "
	    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at "
	    "WHERE " GONE("t") " RETURNING 1",
	[S_SET_XX] = "UPDATE {kv} SET value = $2::bytea, expires_at = " EXPIRES(3) " "
	    "WHERE key = $1::text AND " LIVE,
	/* The value and the log of that name; found if either was live. */
	[S_DEL] = "WITH a AS (DELETE FROM {kv} WHERE key = $1::text RETURNING expires_at), "
	    "b AS (DELETE FROM {meta} WHERE log = $1::text RETURNING expires_at), "
	    "c AS (DELETE FROM {log} WHERE log = $1::text) "
	    "SELECT (SELECT count(*) FROM a WHERE " LIVE ") + (SELECT count(*) FROM b WHERE " LIVE ")",
	[S_EXISTS] = "SELECT 1 FROM {kv} WHERE key = $1::text AND " LIVE,
	/* An expired counter starts again from 0; ttl 0 keeps the expiry. */
	[S_INCR] = "INSERT INTO {kv} AS t (key, value, expires_at) "
	    "VALUES ($1::text, convert_to($2::bigint::text, 'UTF8'), " EXPIRES(3) ") "
	    "ON CONFLICT (key) DO UPDATE SET "
	    "value = convert_to(((CASE WHEN " GONE("t") " THEN 0 ELSE convert_from(t.value, 'UTF8')::bigint END) "
	    "+ $2::bigint)::text, 'UTF8'), "
	    "expires_at = CASE WHEN $3::bigint > 0 THEN {now} + $3::bigint WHEN " GONE("t") " THEN NULL "
	    "ELSE t.expires_at END "
	    "RETURNING convert_from(value, 'UTF8')::bigint",
	[S_IDX_ADD] = "INSERT INTO {idx} AS t (idx, member, expires_at) VALUES ($1::text, $2::text, " EXPIRES(3) ") "
	    "ON CONFLICT (idx, member) DO UPDATE SET expires_at = excluded.expires_at",
	[S_IDX_REM] = "WITH d AS (DELETE FROM {idx} WHERE idx = $1::text AND member = $2::text RETURNING expires_at) "
	    "SELECT count(*) FROM d WHERE " LIVE,
	[S_IDX_MEMBERS] = "SELECT member FROM {idx} WHERE idx = $1::text AND " LIVE " ORDER BY member",
	/* Next seq (from 1 again after the log lapsed), the entry, the trim,
	 * and leftovers of a lapsed log above the new seq, in one statement. */
	[S_LOG_APPEND] = "WITH m AS (INSERT INTO {meta} AS t (log, last_seq, expires_at) "
	    "VALUES ($1::text, 1, " EXPIRES(4) ") ON CONFLICT (log) DO UPDATE SET "
	    "last_seq = CASE WHEN " GONE("t") " THEN 1 ELSE t.last_seq + 1 END, expires_at = excluded.expires_at "
	    "RETURNING last_seq), "
	    "i AS (INSERT INTO {log} (log, seq, value) SELECT $1::text, last_seq, $2::bytea FROM m "
	    "ON CONFLICT (log, seq) DO UPDATE SET value = excluded.value), "
	    "d AS (DELETE FROM {log} WHERE log = $1::text AND (seq > (SELECT last_seq FROM m) "
	    "OR ($3::bigint > 0 AND seq <= (SELECT last_seq FROM m) - $3::bigint))) "
	    "SELECT last_seq FROM m",
	[S_LOG_RANGE] = "SELECT l.seq, l.value FROM {log} l JOIN {meta} m ON m.log = l.log "
	    "WHERE l.log = $1::text AND l.seq > $2::bigint AND l.seq <= m.last_seq "
	    "AND (m.expires_at IS NULL OR m.expires_at > {now}) ORDER BY l.seq LIMIT $3::bigint",
	/* Bounded purges: a batch per tick keeps each statement short. */
	[S_PURGE_KV] = "DELETE FROM {kv} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {kv} "
	    "WHERE expires_at <= {now} LIMIT 1000))",
	[S_PURGE_IDX] = "DELETE FROM {idx} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {idx} "
	    "WHERE expires_at <= {now} LIMIT 1000))",
	[S_PURGE_LOG] = "WITH m AS (DELETE FROM {meta} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {meta} "
	    "WHERE expires_at <= {now} LIMIT 200)) RETURNING log) "
	    "DELETE FROM {log} WHERE log IN (SELECT log FROM m)",
};

static const char SCHEMA_TEMPLATE[] =
    "BEGIN; SELECT pg_advisory_xact_lock({lock}); {mkschema}"
    "CREATE TABLE IF NOT EXISTS {kv} (key text PRIMARY KEY, value bytea NOT NULL, expires_at bigint); "
    "CREATE INDEX IF NOT EXISTS {pfx}kv_expires ON {kv} (expires_at) WHERE expires_at IS NOT NULL; "
    "CREATE TABLE IF NOT EXISTS {idx} (idx text NOT NULL, member text NOT NULL, expires_at bigint, "
    "PRIMARY KEY (idx, member)); "
    "CREATE INDEX IF NOT EXISTS {pfx}idx_expires ON {idx} (expires_at) WHERE expires_at IS NOT NULL; "
    "CREATE TABLE IF NOT EXISTS {meta} (log text PRIMARY KEY, last_seq bigint NOT NULL, expires_at bigint); "
    "CREATE INDEX IF NOT EXISTS {pfx}logmeta_expires ON {meta} (expires_at) WHERE expires_at IS NOT NULL; "
    "CREATE TABLE IF NOT EXISTS {log} (log text NOT NULL, seq bigint NOT NULL, value bytea NOT NULL, "
    "PRIMARY KEY (log, seq)); "
    "COMMIT";

/* What a finished op reports, and through which callback. */
enum kind { K_DONE, K_FOUND, K_COUNT, K_SET, K_VALUE, K_INT, K_MEMBERS, K_ENTRIES, K_PURGE };

struct op {
	struct op *next;
	int synced;                     /* its results are in; its sync is due */
	uint64_t sent_ms;
	int stmt;
	enum kind kind;
	void *cb;
	void *arg;
	int nparams;
	const char *values[4];
	int lens[4];
	int formats[4];
	PGresult *res;
	/* parameter bytes follow */
};

struct pg {
	const struct mcpd_host *host;
	char *conninfo;
	char *password;                 /* from password_file, or NULL */
	char prefix[64];
	char schema[64];
	uint64_t connect_timeout_ms, query_timeout_ms, purge_interval_ms;
	char *sql[N_STMT];
	char *schema_sql;
	/* The url's hosts (and ports) when one of them is a name to look up. */
	char **hosts, **ports;
	size_t nhosts, nports;

	/* per worker */
	PGconn *conn;
	enum state state;
	int fd;
	struct event *connect_ev;       /* one-shot, while connecting */
	struct event *read_ev;          /* persistent, once connected */
	struct event *write_ev;         /* one-shot, while output is pending */
	struct event *retry, *watchdog, *purge;
	unsigned backoff_ms;
	uint64_t started_ms;            /* of the connection attempt, or the setup step */
	int setup_step;                 /* 0: schema, 1..N_STMT: prepares */
	PGresult *setup_res;
	struct op *sent, *sent_tail;    /* in the pipeline, oldest first */
	unsigned nsent;
	struct op *head, *tail;         /* not sent yet */
	size_t queued;
	int down_logged;
	int closing;                    /* detaching: ops out are dropped, not answered */
	char last_error[512];
	struct resolver *dns;           /* when a host is a name */
	struct lookup *lookup;
	size_t resolving;               /* the host looked up now */
	char (*addrs)[RESOLVE_MAX_ADDRS][RESOLVE_ADDR_LEN];     /* per host */
	size_t *naddrs;
	char resolve_error[300];
};

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* libpq's messages end with a newline, sometimes several lines. */
static void
note_error(struct pg *p, const char *what, const char *msg)
{
	snprintf(p->last_error, sizeof(p->last_error), "postgres: %s%s%s", what, msg ? ": " : "", msg ? msg : "");
	size_t n = strlen(p->last_error);
	while (n > 0 && (p->last_error[n - 1] == '\n' || p->last_error[n - 1] == ' '))
		p->last_error[--n] = '\0';
	/* One line: newlines and tabs become single spaces. */
	char *w = p->last_error;
	for (const char *c = p->last_error; *c; c++) {
		char ch = *c == '\n' || *c == '\t' ? ' ' : *c;
		if (ch != ' ' || (w > p->last_error && w[-1] != ' '))
			*w++ = ch;
	}
	*w = '\0';
}

static const char *
down_reason(struct pg *p)
{
	return p->last_error[0] ? p->last_error : "postgres: not connected yet";
}

/* ---- SQL text from the templates ---- */

static int
append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t nc = (*len + n + 1) * 2;
		char *nb = realloc(*buf, nc);
		if (nb == NULL)
			return -1;
		*buf = nb;
		*cap = nc;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

/* Identifiers are checked to be [a-z0-9_] at configuration time, so
 * quoting them is enough; nothing else from outside enters the SQL. */
static char *
expand(const struct pg *p, const char *tpl)
{
	char *buf = NULL, tok[160];
	size_t len = 0, cap = 0;
	if (append(&buf, &len, &cap, "", 0) < 0)
		return NULL;
	for (const char *s = tpl; *s;) {
		const char *open = strchr(s, '{'), *close = open ? strchr(open, '}') : NULL;
		if (open == NULL || close == NULL) {
			if (append(&buf, &len, &cap, s, strlen(s)) < 0)
				goto fail;
			break;
		}
		if (append(&buf, &len, &cap, s, (size_t)(open - s)) < 0)
			goto fail;
		size_t tl = (size_t)(close - open - 1);
		const char *name = open + 1;
		const char *table = NULL;
		if (tl == 2 && strncmp(name, "kv", 2) == 0)
			table = "kv";
		else if (tl == 3 && strncmp(name, "idx", 3) == 0)
			table = "idx";
		else if (tl == 3 && strncmp(name, "log", 3) == 0)
			table = "log";
		else if (tl == 4 && strncmp(name, "meta", 4) == 0)
			table = "logmeta";
		if (table != NULL) {
			if (p->schema[0])
				snprintf(tok, sizeof(tok), "\"%s\".\"%s%s\"", p->schema, p->prefix, table);
			else
				snprintf(tok, sizeof(tok), "\"%s%s\"", p->prefix, table);
		} else if (tl == 3 && strncmp(name, "pfx", 3) == 0) {
			snprintf(tok, sizeof(tok), "%s", p->prefix);
		} else if (tl == 3 && strncmp(name, "now", 3) == 0) {
			snprintf(tok, sizeof(tok), "(extract(epoch from now()) * 1000)::bigint");
		} else if (tl == 4 && strncmp(name, "lock", 4) == 0) {
			snprintf(tok, sizeof(tok), "%d", ADVISORY_LOCK);
		} else if (tl == 8 && strncmp(name, "mkschema", 8) == 0) {
			if (p->schema[0])
				snprintf(tok, sizeof(tok), "CREATE SCHEMA IF NOT EXISTS \"%s\"; ", p->schema);
			else
				tok[0] = '\0';
		} else {
			snprintf(tok, sizeof(tok), "%.*s", (int)(close - open + 1), open);
		}
		if (append(&buf, &len, &cap, tok, strlen(tok)) < 0)
			goto fail;
		s = close + 1;
	}
	return buf;
fail:
	free(buf);
	return NULL;
}

/* ---- results ---- */

static int64_t
get_int(const PGresult *res, int row, int col)
{
	const unsigned char *v = (const unsigned char *)PQgetvalue(res, row, col);
	int len = PQgetlength(res, row, col);
	uint64_t x = 0;
	if (len != 8 && len != 4)
		return 0;
	for (int i = 0; i < len; i++)
		x = x << 8 | v[i];
	return len == 4 ? (int64_t)(int32_t)(uint32_t)x : (int64_t)x;
}

/* The shape of each kind's callback. */
static const enum op_shape shapes[] = {
	[K_DONE] = OP_DONE, [K_FOUND] = OP_DONE, [K_COUNT] = OP_DONE, [K_SET] = OP_DONE,
	[K_VALUE] = OP_VALUE, [K_INT] = OP_INT, [K_MEMBERS] = OP_MEMBERS, [K_ENTRIES] = OP_ENTRIES,
	[K_PURGE] = OP_NO_CALLBACK,
};
_Static_assert(sizeof(shapes) / sizeof(shapes[0]) == K_PURGE + 1, "a shape for each kind");

static void
report_error(struct op *o, const char *why)
{
	op_fail(shapes[o->kind], o->cb, o->arg, why);
}

static void
op_free(struct op *o)
{
	if (o->res != NULL)
		PQclear(o->res);
	free(o);
}

/* An op's statement finished with res: tell its caller. */
static void
report(struct pg *p, struct op *o)
{
	PGresult *res = o->res;
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		char why[512];
		snprintf(why, sizeof(why), "postgres: %s", res ? PQresultErrorMessage(res) : "no result");
		why[strcspn(why, "\n")] = '\0';
		if (o->kind == K_PURGE)
			p->host->log(MCPD_LOG_WARN, "%s (purging expired rows)", why);
		report_error(o, why);
		return;
	}
	int rows = PQntuples(res);
	switch (o->kind) {
	case K_DONE:
		if (o->cb)
			((mcpd_done_cb *)o->cb)(o->arg, MCPD_OK, NULL);
		break;
	case K_FOUND:
		if (o->cb)
			((mcpd_done_cb *)o->cb)(o->arg, rows > 0 ? MCPD_OK : MCPD_NOT_FOUND, NULL);
		break;
	case K_COUNT:
		if (o->cb)
			((mcpd_done_cb *)o->cb)(o->arg, rows > 0 && get_int(res, 0, 0) > 0 ? MCPD_OK : MCPD_NOT_FOUND, NULL);
		break;
	case K_SET: {
		int ok = o->stmt == S_SET || (o->stmt == S_SET_NX && rows > 0) ||
		    (o->stmt == S_SET_XX && strcmp(PQcmdTuples(res), "0") != 0);
		if (o->cb)
			((mcpd_done_cb *)o->cb)(o->arg, ok ? MCPD_OK : MCPD_CONFLICT, NULL);
		break;
	}
	case K_VALUE:
		if (o->cb == NULL)
			break;
		if (rows > 0)
			((mcpd_value_cb *)o->cb)(o->arg, MCPD_OK, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), NULL);
		else
			((mcpd_value_cb *)o->cb)(o->arg, MCPD_NOT_FOUND, NULL, 0, NULL);
		break;
	case K_INT:
		if (o->cb == NULL)
			break;
		if (rows > 0)
			((mcpd_int_cb *)o->cb)(o->arg, MCPD_OK, get_int(res, 0, 0), NULL);
		else
			((mcpd_int_cb *)o->cb)(o->arg, MCPD_ERROR, 0, "postgres: the statement returned no row");
		break;
	case K_MEMBERS: {
		const char **names = calloc((size_t)rows + 1, sizeof(char *));
		if (names == NULL) {
			report_error(o, "out of memory");
			break;
		}
		for (int i = 0; i < rows; i++)
			names[i] = PQgetvalue(res, i, 0);   /* binary text: NUL-terminated too */
		if (o->cb)
			((mcpd_members_cb *)o->cb)(o->arg, MCPD_OK, names, (size_t)rows, NULL);
		free(names);
		break;
	}
	case K_ENTRIES: {
		struct mcpd_log_entry *e = calloc((size_t)rows + 1, sizeof(*e));
		if (e == NULL) {
			report_error(o, "out of memory");
			break;
		}
		for (int i = 0; i < rows; i++) {
			e[i].seq = (uint64_t)get_int(res, i, 0);
			e[i].data = PQgetvalue(res, i, 1);
			e[i].len = (size_t)PQgetlength(res, i, 1);
		}
		if (o->cb)
			((mcpd_entries_cb *)o->cb)(o->arg, MCPD_OK, e, (size_t)rows, NULL);
		free(e);
		break;
	}
	case K_PURGE:
		break;
	}
}

/* ---- the connection ---- */

static void conn_connect(struct pg *p);
static void send_more(struct pg *p);
static void setup_send(struct pg *p);

static void
free_events(struct pg *p)
{
	struct event **evs[] = { &p->connect_ev, &p->read_ev, &p->write_ev };
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
		if (*evs[i] != NULL) {
			event_free(*evs[i]);
			*evs[i] = NULL;
		}
	}
}

/* Drops the connection: the op in flight and every queued one fail with
 * why, and a reconnection is scheduled. */
static void
conn_lost(struct pg *p, const char *what, const char *msg)
{
	note_error(p, what, msg);
	resolve_cancel(&p->lookup);
	if (!p->down_logged)
		p->host->log(MCPD_LOG_WARN, "%s; reconnecting", p->last_error);
	p->down_logged = 1;
	free_events(p);
	if (p->conn != NULL) {
		PQfinish(p->conn);          /* the socket is non-blocking: no wait */
		p->conn = NULL;
	}
	if (p->setup_res != NULL) {
		PQclear(p->setup_res);
		p->setup_res = NULL;
	}
	p->state = ST_DOWN;
	/* Detach everything first: a callback may queue more (it fails at once). */
	struct op *list = p->sent;
	if (list != NULL)
		p->sent_tail->next = p->head;
	else
		list = p->head;
	p->sent = p->sent_tail = NULL;
	p->nsent = 0;
	p->head = p->tail = NULL;
	p->queued = 0;
	while (list != NULL) {
		struct op *o = list;
		list = o->next;
		if (!p->closing)
			report_error(o, p->last_error);
		op_free(o);
	}
	p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : 100;
	if (p->backoff_ms > MAX_BACKOFF_MS)
		p->backoff_ms = MAX_BACKOFF_MS;
	struct timeval tv = { (time_t)(p->backoff_ms / 1000), (suseconds_t)(p->backoff_ms % 1000) * 1000 };
	evtimer_add(p->retry, &tv);
}

static void
flush_output(struct pg *p)
{
	int r = PQflush(p->conn);
	if (r < 0)
		conn_lost(p, "lost the connection", PQerrorMessage(p->conn));
	else if (r > 0 && !event_pending(p->write_ev, EV_WRITE, NULL))
		event_add(p->write_ev, NULL);
}

static void
write_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct pg *p = arg;
	if (p->conn != NULL)
		flush_output(p);
}

/* A setup step finished: the next one, or ready. */
static void
setup_done(struct pg *p)
{
	PGresult *res = p->setup_res;
	p->setup_res = NULL;
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		char why[512];
		snprintf(why, sizeof(why), "%s", res ? PQresultErrorMessage(res) : "no result");
		if (res)
			PQclear(res);
		p->host->log(MCPD_LOG_ERROR, "postgres: %s failed: %s", p->setup_step == 0 ?
		    "creating the tables" : "preparing a statement", why);
		conn_lost(p, p->setup_step == 0 ? "creating the tables failed" : "preparing a statement failed", why);
		return;
	}
	PQclear(res);
	if (++p->setup_step <= N_STMT) {
		setup_send(p);
		return;
	}
	if (PQenterPipelineMode(p->conn) != 1) {
		conn_lost(p, "cannot enter pipeline mode", PQerrorMessage(p->conn));
		return;
	}
	p->state = ST_READY;
	p->backoff_ms = 0;
	p->last_error[0] = '\0';
	if (p->down_logged)
		p->host->log(MCPD_LOG_NOTICE, "postgres: connected again");
	p->down_logged = 0;
	send_more(p);
}

static void
read_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct pg *p = arg;
	if (p->conn == NULL)
		return;
	if (!PQconsumeInput(p->conn)) {
		conn_lost(p, "lost the connection", PQerrorMessage(p->conn));
		return;
	}
	/* Setup runs before pipeline mode: one statement (or the schema's
	 * several) at a time. Several results: keep the first error,
	 * otherwise the last. */
	while (p->conn != NULL && p->state == ST_SETUP && !PQisBusy(p->conn)) {
		PGresult *res = PQgetResult(p->conn);
		if (res == NULL) {
			setup_done(p);
			continue;
		}
		ExecStatusType prev = p->setup_res ? PQresultStatus(p->setup_res) : PGRES_COMMAND_OK;
		if (p->setup_res != NULL && (prev == PGRES_FATAL_ERROR || prev == PGRES_NONFATAL_ERROR)) {
			PQclear(res);
		} else {
			if (p->setup_res != NULL)
				PQclear(p->setup_res);
			p->setup_res = res;
		}
	}
	/* The pipeline: for the oldest op, its result, a NULL, then the
	 * PGRES_PIPELINE_SYNC of its own sync. */
	while (p->conn != NULL && p->state == ST_READY && p->sent != NULL && !PQisBusy(p->conn)) {
		PGresult *res = PQgetResult(p->conn);
		struct op *o = p->sent;
		if (!o->synced) {
			if (res == NULL)
				o->synced = 1;
			else if (o->res == NULL || PQresultStatus(o->res) == PGRES_TUPLES_OK ||
			    PQresultStatus(o->res) == PGRES_COMMAND_OK) {
				if (o->res != NULL)
					PQclear(o->res);
				o->res = res;
			} else {
				PQclear(res);
			}
			continue;
		}
		if (res == NULL)
			break;          /* not expected; the watchdog decides */
		ExecStatusType st = PQresultStatus(res);
		PQclear(res);
		if (st != PGRES_PIPELINE_SYNC)
			continue;
		p->sent = o->next;
		if (p->sent == NULL)
			p->sent_tail = NULL;
		p->nsent--;
		report(p, o);
		op_free(o);
	}
	send_more(p);
	if (p->conn != NULL && PQstatus(p->conn) == CONNECTION_BAD)
		conn_lost(p, "lost the connection", PQerrorMessage(p->conn));
}

static void
setup_send(struct pg *p)
{
	int ok;
	p->started_ms = now_ms();
	if (p->setup_step == 0) {
		ok = PQsendQuery(p->conn, p->schema_sql);
	} else {
		char name[32];
		snprintf(name, sizeof(name), "mcpd_%d", p->setup_step - 1);
		ok = PQsendPrepare(p->conn, name, p->sql[p->setup_step - 1], 0, NULL);
	}
	if (!ok) {
		conn_lost(p, "lost the connection", PQerrorMessage(p->conn));
		return;
	}
	flush_output(p);
}

static void
send_more(struct pg *p)
{
	int sent = 0;
	while (p->state == ST_READY && p->head != NULL && p->nsent < MAX_INFLIGHT) {
		struct op *o = p->head;
		p->head = o->next;
		if (p->head == NULL)
			p->tail = NULL;
		p->queued--;
		/* In the pipeline before it is sent: if sending fails,
		 * conn_lost reports it with the others. */
		o->next = NULL;
		o->sent_ms = now_ms();
		if (p->sent_tail != NULL)
			p->sent_tail->next = o;
		else
			p->sent = o;
		p->sent_tail = o;
		p->nsent++;
		char name[32];
		snprintf(name, sizeof(name), "mcpd_%d", o->stmt);
		if (!PQsendQueryPrepared(p->conn, name, o->nparams, o->values, o->lens, o->formats, 1) ||
		    !PQpipelineSync(p->conn)) {
			conn_lost(p, "lost the connection", PQerrorMessage(p->conn));
			return;
		}
		sent = 1;
	}
	if (sent)
		flush_output(p);
}

/* The handshake, one PQconnectPoll step per readiness event. The socket
 * may change between steps (another host or address is tried). */
static void
connect_step(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct pg *p = arg;
	PostgresPollingStatusType r = PQconnectPoll(p->conn);
	if (p->connect_ev != NULL) {
		event_free(p->connect_ev);
		p->connect_ev = NULL;
	}
	if (r == PGRES_POLLING_FAILED) {
		conn_lost(p, "cannot connect", PQerrorMessage(p->conn));
		return;
	}
	if (r == PGRES_POLLING_READING || r == PGRES_POLLING_WRITING) {
		p->connect_ev = event_new(p->host->event_base(), PQsocket(p->conn),
		    r == PGRES_POLLING_READING ? EV_READ : EV_WRITE, connect_step, p);
		if (p->connect_ev == NULL || event_add(p->connect_ev, NULL) < 0)
			conn_lost(p, "cannot connect", "out of memory");
		return;
	}
	/* Connected: from now on output never blocks and input is read
	 * whenever it comes. */
	p->fd = PQsocket(p->conn);
	if (PQsetnonblocking(p->conn, 1) != 0) {
		conn_lost(p, "cannot connect", PQerrorMessage(p->conn));
		return;
	}
	struct event_base *base = p->host->event_base();
	p->read_ev = event_new(base, p->fd, EV_READ | EV_PERSIST, read_cb, p);
	p->write_ev = event_new(base, p->fd, EV_WRITE, write_cb, p);
	if (p->read_ev == NULL || p->write_ev == NULL || event_add(p->read_ev, NULL) < 0) {
		conn_lost(p, "cannot connect", "out of memory");
		return;
	}
	p->state = ST_SETUP;
	p->setup_step = 0;
	setup_send(p);
}

/* CREATE TABLE IF NOT EXISTS says so with a NOTICE: not for our log. */
static void
quiet_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* host=, hostaddr= and port= lists for libpq from the lookups: a host
 * once per address (a socket path or an address once, with an empty
 * hostaddr: libpq uses host), its port beside it when there are several.
 * NULL when no host is left (every name failed), or out of memory. */
static int
address_lists(struct pg *p, char **host, char **hostaddr, char **port)
{
	size_t hl = 1, al = 1, pl = 1, count = 0;
	for (size_t i = 0; i < p->nhosts; i++) {
		size_t k = resolve_is_name(p->hosts[i]) ? p->naddrs[i] : 1;
		count += k;
		hl += k * (strlen(p->hosts[i]) + 1);
		al += k * (RESOLVE_ADDR_LEN + 1);
		pl += k * ((p->nports > 1 ? strlen(p->ports[i]) : 0) + 1);
	}
	*host = malloc(hl), *hostaddr = malloc(al), *port = malloc(pl);
	if (count == 0 || *host == NULL || *hostaddr == NULL || *port == NULL) {
		free(*host), free(*hostaddr), free(*port);
		*host = *hostaddr = *port = NULL;
		return count == 0 ? 0 : -1;
	}
	char *h = *host, *a = *hostaddr, *pt = *port;
	for (size_t i = 0; i < p->nhosts; i++) {
		int name = resolve_is_name(p->hosts[i]);
		size_t k = name ? p->naddrs[i] : 1;
		for (size_t j = 0; j < k; j++) {
			const char *sep = h == *host ? "" : ",";
			h += sprintf(h, "%s%s", sep, p->hosts[i]);
			a += sprintf(a, "%s%s", sep, name ? p->addrs[i][j] : "");
			pt += sprintf(pt, "%s%s", sep, p->nports > 1 ? p->ports[i] : "");
		}
	}
	return 1;
}

static void
conn_start(struct pg *p)
{
	char *host = NULL, *hostaddr = NULL, *port = NULL;
	if (p->dns != NULL) {
		int r = address_lists(p, &host, &hostaddr, &port);
		if (r <= 0) {
			conn_lost(p, r == 0 ? p->resolve_error : "cannot connect", r == 0 ? NULL : "out of memory");
			return;
		}
	}
	/* Later keywords win: the url may name the application, the
	 * password file overrides the url's password, the addresses looked
	 * up join the url's hosts. */
	const char *keys[8], *vals[8];
	int n = 0;
	keys[n] = "application_name", vals[n++] = "mcpd";
	keys[n] = "dbname", vals[n++] = p->conninfo;
	if (p->password != NULL)
		keys[n] = "password", vals[n++] = p->password;
	if (host != NULL) {
		keys[n] = "host", vals[n++] = host;
		keys[n] = "hostaddr", vals[n++] = hostaddr;
		if (p->nports > 1)
			keys[n] = "port", vals[n++] = port;
	}
	keys[n] = NULL, vals[n] = NULL;
	p->conn = PQconnectStartParams(keys, vals, 1);
	free(host), free(hostaddr), free(port);
	p->state = ST_CONNECTING;
	if (p->conn == NULL) {
		conn_lost(p, "cannot connect", "out of memory");
		return;
	}
	if (PQstatus(p->conn) == CONNECTION_BAD) {
		conn_lost(p, "cannot connect", PQerrorMessage(p->conn));
		return;
	}
	PQsetNoticeProcessor(p->conn, quiet_notice, NULL);
	p->connect_ev = event_new(p->host->event_base(), PQsocket(p->conn), EV_WRITE, connect_step, p);
	if (p->connect_ev == NULL || event_add(p->connect_ev, NULL) < 0)
		conn_lost(p, "cannot connect", "out of memory");
}

static void resolve_next(struct pg *p);

static void
resolved(void *arg, char addrs[][RESOLVE_ADDR_LEN], size_t naddrs, const char *why)
{
	struct pg *p = arg;
	size_t i = p->resolving;
	memcpy(p->addrs[i], addrs, naddrs * RESOLVE_ADDR_LEN);
	p->naddrs[i] = naddrs;
	if (naddrs == 0)                /* the other hosts may do; else this says why */
		snprintf(p->resolve_error, sizeof(p->resolve_error), "cannot resolve %s: %s", p->hosts[i], why);
	p->resolving++;
	resolve_next(p);
}

/* The names one after the other (a lookup may answer at once), then the
 * connection. */
static void
resolve_next(struct pg *p)
{
	while (p->resolving < p->nhosts && !resolve_is_name(p->hosts[p->resolving]))
		p->resolving++;
	if (p->resolving == p->nhosts)
		conn_start(p);
	else
		resolve_start(p->dns, p->hosts[p->resolving], resolved, p, &p->lookup);
}

static void
conn_connect(struct pg *p)
{
	p->state = ST_CONNECTING;
	p->started_ms = now_ms();
	if (p->dns == NULL) {
		conn_start(p);
		return;
	}
	p->resolving = 0;
	p->resolve_error[0] = '\0';
	resolve_next(p);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_connect(arg);
}

/* A server that stops answering without closing (a hung host, a
 * partition) is given up after its timeout, like a closed connection. */
static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct pg *p = arg;
	uint64_t elapsed = now_ms() - p->started_ms;
	char msg[96];
	if (p->state == ST_CONNECTING && elapsed > p->connect_timeout_ms) {
		char why[400];
		if (p->lookup != NULL) {
			resolve_cancel(&p->lookup);
			snprintf(why, sizeof(why), "cannot resolve %s: no answer within %llums",
			    p->hosts[p->resolving], (unsigned long long)p->connect_timeout_ms);
		} else {
			snprintf(why, sizeof(why), "cannot connect: no answer within %llums",
			    (unsigned long long)p->connect_timeout_ms);
		}
		conn_lost(p, why, NULL);
	} else if (p->state == ST_READY && p->sent != NULL && now_ms() - p->sent->sent_ms > p->query_timeout_ms + 1000) {
		snprintf(msg, sizeof(msg), "did not answer within %llums", (unsigned long long)p->query_timeout_ms);
		conn_lost(p, msg, NULL);
	} else if (p->state == ST_SETUP && elapsed > p->query_timeout_ms + 1000) {
		snprintf(msg, sizeof(msg), "did not answer within %llums", (unsigned long long)p->query_timeout_ms);
		conn_lost(p, msg, NULL);
	}
}

/* ---- operations ---- */

static void
enqueue(struct pg *p, int stmt, enum kind kind, void *cb, void *arg, int nparams, const void *const *vals,
    const size_t *lens, const int *binary)
{
	if (p->state != ST_READY) {
		struct op o = { .kind = kind, .cb = cb, .arg = arg };
		report_error(&o, down_reason(p));
		return;
	}
	size_t total = sizeof(struct op);
	for (int i = 0; i < nparams; i++)
		total += lens[i] + 1;
	struct op *o = p->queued >= MAX_QUEUE ? NULL : calloc(1, total);
	if (o == NULL) {
		struct op f = { .kind = kind, .cb = cb, .arg = arg };
		report_error(&f, p->queued >= MAX_QUEUE ? "postgres: too many queries waiting" : "out of memory");
		return;
	}
	o->stmt = stmt;
	o->kind = kind;
	o->cb = cb;
	o->arg = arg;
	o->nparams = nparams;
	char *at = (char *)(o + 1);
	for (int i = 0; i < nparams; i++) {
		memcpy(at, vals[i], lens[i]);
		at[lens[i]] = '\0';
		o->values[i] = at;
		o->lens[i] = (int)lens[i];
		o->formats[i] = binary != NULL && binary[i];
		at += lens[i] + 1;
	}
	if (p->tail != NULL)
		p->tail->next = o;
	else
		p->head = o;
	p->tail = o;
	p->queued++;
	send_more(p);
}

/* Text parameters: key strings and decimal numbers. */
static void
enqueue_text(struct pg *p, int stmt, enum kind kind, void *cb, void *arg, int n, const char *a, const char *b,
    const char *c)
{
	const void *vals[3] = { a, b, c };
	size_t lens[3] = { a ? strlen(a) : 0, b ? strlen(b) : 0, c ? strlen(c) : 0 };
	enqueue(p, stmt, kind, cb, arg, n, vals, lens, NULL);
}

static void
num(char *buf, size_t len, uint64_t v)
{
	if (v > INT64_MAX)
		v = INT64_MAX;
	snprintf(buf, len, "%llu", (unsigned long long)v);
}

static void
s_get(void *inst, const char *key, mcpd_value_cb *cb, void *arg)
{
	enqueue_text(inst, S_GET, K_VALUE, (void *)cb, arg, 1, key, NULL, NULL);
}

static void
s_set(void *inst, const char *key, const void *value, size_t len, uint64_t ttl_ms, unsigned flags,
    mcpd_done_cb *cb, void *arg)
{
	char ttl[24];
	num(ttl, sizeof(ttl), ttl_ms);
	const void *vals[3] = { key, value != NULL ? value : "", ttl };
	size_t lens[3] = { strlen(key), len, strlen(ttl) };
	int binary[3] = { 0, 1, 0 };
	int stmt = (flags & MCPD_SET_IF_ABSENT) ? S_SET_NX : (flags & MCPD_SET_IF_PRESENT) ? S_SET_XX : S_SET;
	enqueue(inst, stmt, K_SET, (void *)cb, arg, 3, vals, lens, binary);
}

static void
s_del(void *inst, const char *key, mcpd_done_cb *cb, void *arg)
{
	enqueue_text(inst, S_DEL, K_COUNT, (void *)cb, arg, 1, key, NULL, NULL);
}

static void
s_exists(void *inst, const char *key, mcpd_done_cb *cb, void *arg)
{
	enqueue_text(inst, S_EXISTS, K_FOUND, (void *)cb, arg, 1, key, NULL, NULL);
}

static void
s_incr(void *inst, const char *key, int64_t by, uint64_t ttl_ms, mcpd_int_cb *cb, void *arg)
{
	char b[24], ttl[24];
	snprintf(b, sizeof(b), "%lld", (long long)by);
	num(ttl, sizeof(ttl), ttl_ms);
	enqueue_text(inst, S_INCR, K_INT, (void *)cb, arg, 3, key, b, ttl);
}

static void
s_index_add(void *inst, const char *index, const char *member, uint64_t ttl_ms, mcpd_done_cb *cb, void *arg)
{
	char ttl[24];
	num(ttl, sizeof(ttl), ttl_ms);
	enqueue_text(inst, S_IDX_ADD, K_DONE, (void *)cb, arg, 3, index, member, ttl);
}

static void
s_index_remove(void *inst, const char *index, const char *member, mcpd_done_cb *cb, void *arg)
{
	enqueue_text(inst, S_IDX_REM, K_COUNT, (void *)cb, arg, 2, index, member, NULL);
}

static void
s_index_members(void *inst, const char *index, mcpd_members_cb *cb, void *arg)
{
	enqueue_text(inst, S_IDX_MEMBERS, K_MEMBERS, (void *)cb, arg, 1, index, NULL, NULL);
}

static void
s_log_append(void *inst, const char *log, const void *entry, size_t len, uint64_t max_entries,
    uint64_t ttl_ms, mcpd_int_cb *cb, void *arg)
{
	char max[24], ttl[24];
	num(max, sizeof(max), max_entries);
	num(ttl, sizeof(ttl), ttl_ms);
	const void *vals[4] = { log, entry != NULL ? entry : "", max, ttl };
	size_t lens[4] = { strlen(log), len, strlen(max), strlen(ttl) };
	int binary[4] = { 0, 1, 0, 0 };
	enqueue(inst, S_LOG_APPEND, K_INT, (void *)cb, arg, 4, vals, lens, binary);
}

static void
s_log_range(void *inst, const char *log, uint64_t after, size_t max, mcpd_entries_cb *cb, void *arg)
{
	char a[24], m[24];
	num(a, sizeof(a), after);
	num(m, sizeof(m), max);
	enqueue_text(inst, S_LOG_RANGE, K_ENTRIES, (void *)cb, arg, 3, log, a, m);
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

static void
purge_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct pg *p = arg;
	if (p->state != ST_READY)
		return;
	enqueue_text(p, S_PURGE_KV, K_PURGE, NULL, NULL, 0, NULL, NULL, NULL);
	enqueue_text(p, S_PURGE_IDX, K_PURGE, NULL, NULL, 0, NULL, NULL, NULL);
	enqueue_text(p, S_PURGE_LOG, K_PURGE, NULL, NULL, 0, NULL, NULL, NULL);
}

/* ---- configuration and lifecycle ---- */

static int
identifier(const char *s, int may_be_empty)
{
	size_t n = strlen(s);
	if (n == 0)
		return may_be_empty;
	if (n > 40 || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

static int
read_password(struct pg *p, const char *file, char *why, size_t len)
{
	char *path = NULL;
	if (file[0] != '/' && p->host->size >= offsetof(struct mcpd_host, config_dir) + sizeof(p->host->config_dir) &&
	    p->host->config_dir != NULL) {
		size_t n = strlen(p->host->config_dir()) + strlen(file) + 2;
		if ((path = malloc(n)) != NULL)
			snprintf(path, n, "%s/%s", p->host->config_dir(), file);
	}
	FILE *f = fopen(path ? path : file, "r");
	free(path);
	if (f == NULL) {
		snprintf(why, len, "password_file: cannot open %s", file);
		return -1;
	}
	char line[1024];
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	if (line[0] == '\0') {
		snprintf(why, len, "password_file: %s has no password on its first line", file);
		return -1;
	}
	free(p->password);
	p->password = strdup(line);
	explicit_bzero(line, sizeof(line));
	return p->password ? 0 : -1;
}

static void pg_destroy(void *inst);

static void
free_list(char **list, size_t n)
{
	for (size_t i = 0; list != NULL && i < n; i++)
		free(list[i]);
	free(list);
}

/* A comma-separated libpq list (host, port) as an array. */
static char **
split_list(const char *s, size_t *n)
{
	*n = 1;
	for (const char *c = s; *c; c++)
		*n += *c == ',';
	char **list = calloc(*n, sizeof(*list));
	for (size_t i = 0; list != NULL && i < *n; i++) {
		size_t len = strcspn(s, ",");
		if ((list[i] = strndup(s, len)) == NULL) {
			free_list(list, i);
			return NULL;
		}
		s += len + (s[len] == ',');
	}
	return list;
}

/* The hosts to look up on the loop, if the url (or PGHOST) names any
 * and gives no hostaddr (nor PGHOSTADDR, nor a service: those are left
 * to libpq as they are). */
static int
find_hosts(struct pg *p, char *why, size_t len)
{
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(p->conninfo, &perr);
	if (opts == NULL) {
		snprintf(why, len, "%s", perr ? perr : "out of memory");
		PQfreemem(perr);
		return -1;
	}
	const char *host = NULL, *port = NULL;
	int given = 0;
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL || o->val[0] == '\0')
			continue;
		if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			port = o->val;
		else if (strcmp(o->keyword, "hostaddr") == 0 || strcmp(o->keyword, "service") == 0)
			given = 1;
	}
	if (host == NULL)
		host = getenv("PGHOST");
	if (port == NULL)
		port = getenv("PGPORT");
	if (getenv("PGHOSTADDR") != NULL || getenv("PGSERVICE") != NULL)
		given = 1;
	int rc = 0;
	if (!given && host != NULL) {
		p->hosts = split_list(host, &p->nhosts);
		if (p->hosts != NULL && port != NULL)
			p->ports = split_list(port, &p->nports);
		if (p->hosts == NULL || (port != NULL && p->ports == NULL)) {
			snprintf(why, len, "out of memory");
			rc = -1;
		} else if (p->nports > 1 && p->nports != p->nhosts) {
			snprintf(why, len, "url: %zu ports for %zu hosts", p->nports, p->nhosts);
			rc = -1;
		}
		int names = 0;
		for (size_t i = 0; rc == 0 && i < p->nhosts; i++)
			names |= resolve_is_name(p->hosts[i]);
		if (rc == 0 && !names) {        /* addresses and sockets: nothing to look up */
			free_list(p->hosts, p->nhosts);
			free_list(p->ports, p->nports);
			p->hosts = p->ports = NULL;
			p->nhosts = p->nports = 0;
		}
	}
	PQconninfoFree(opts);
	return rc;
}

static const char *
expected_value(const char *key)
{
	if (strcmp(key, "table_prefix") == 0 || strcmp(key, "schema") == 0)
		return "a lower-case SQL name ([a-z_][a-z0-9_]*, at most 40 characters)";
	if (strcmp(key, "connect_timeout") == 0 || strcmp(key, "query_timeout") == 0)
		return "a duration of at least 10ms";
	if (strcmp(key, "purge_interval") == 0)
		return "a duration of at least 100ms";
	return "a string";
}

static void *
pg_create(const struct mcpd_host *host, const struct mcpd_config *section, char *err, size_t errlen)
{
	struct pg *p = calloc(1, sizeof(*p));
	if (p == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->host = host;
	p->fd = -1;
	snprintf(p->prefix, sizeof(p->prefix), "mcpd_");
	p->connect_timeout_ms = 5000;
	p->query_timeout_ms = 5000;
	p->purge_interval_ms = 60000;
	char where[512];
	for (size_t i = 0; i < host->config_count(section); i++) {
		const char *key, *v;
		const struct mcpd_config *n = host->config_item(section, i, &key);
		host->config_where(n, where, sizeof(where));
		v = host->config_scalar(n);
		int bad = v == NULL;
		if (strcmp(key, "plugin") == 0)
			continue;
		if (!bad && (strcmp(key, "url") == 0 || strcmp(key, "conninfo") == 0)) {
			char *perr = NULL;
			PQconninfoOption *opts = PQconninfoParse(v, &perr);
			if (opts == NULL) {
				snprintf(err, errlen, "%s: %s: %s", where, key, perr ? perr : "out of memory");
				err[strcspn(err, "\n")] = '\0';
				PQfreemem(perr);
				goto fail;
			}
			PQconninfoFree(opts);
			free(p->conninfo);
			if ((p->conninfo = strdup(v)) == NULL) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
		} else if (!bad && strcmp(key, "password_file") == 0) {
			char why[512];
			if (read_password(p, v, why, sizeof(why)) < 0) {
				snprintf(err, errlen, "%s: %s", where, why);
				goto fail;
			}
		} else if (!bad && strcmp(key, "table_prefix") == 0) {
			bad = !identifier(v, 1);
			if (!bad)
				snprintf(p->prefix, sizeof(p->prefix), "%s", v);
		} else if (!bad && strcmp(key, "schema") == 0) {
			bad = !identifier(v, 0);
			if (!bad)
				snprintf(p->schema, sizeof(p->schema), "%s", v);
		} else if (strcmp(key, "connect_timeout") == 0) {
			bad = host->config_duration(n, &p->connect_timeout_ms) < 0 || p->connect_timeout_ms < 10;
		} else if (strcmp(key, "query_timeout") == 0) {
			bad = host->config_duration(n, &p->query_timeout_ms) < 0 || p->query_timeout_ms < 10;
		} else if (strcmp(key, "purge_interval") == 0) {
			bad = host->config_duration(n, &p->purge_interval_ms) < 0 || p->purge_interval_ms < 100;
		} else {
			snprintf(err, errlen, "%s: unknown key \"%s\" (postgres takes url, password_file, table_prefix, "
			    "schema, connect_timeout, query_timeout, purge_interval)", where, key);
			goto fail;
		}
		if (bad) {
			snprintf(err, errlen, "%s: %s must be %s", where, key, expected_value(key));
			goto fail;
		}
	}
	if (p->conninfo == NULL) {
		host->config_where(section, where, sizeof(where));
		snprintf(err, errlen, "%s: postgres needs url (postgresql://user@host:port/database)", where);
		goto fail;
	}
	char why[512];
	if (find_hosts(p, why, sizeof(why)) < 0) {
		host->config_where(section, where, sizeof(where));
		snprintf(err, errlen, "%s: %s", where, why);
		goto fail;
	}
	/* The session's statement_timeout goes first, then the tables. */
	char head[64];
	snprintf(head, sizeof(head), "SET statement_timeout = %llu; ", (unsigned long long)p->query_timeout_ms);
	char *schema = expand(p, SCHEMA_TEMPLATE);
	if (schema != NULL && (p->schema_sql = malloc(strlen(head) + strlen(schema) + 1)) != NULL)
		sprintf(p->schema_sql, "%s%s", head, schema);
	free(schema);
	for (int i = 0; i < N_STMT && p->schema_sql != NULL; i++)
		if ((p->sql[i] = expand(p, TEMPLATES[i])) == NULL)
			break;
	if (p->schema_sql == NULL || p->sql[N_STMT - 1] == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return p;
fail:
	pg_destroy(p);
	return NULL;
}

static int
pg_attach(void *inst, char *err, size_t errlen)
{
	struct pg *p = inst;
	struct event_base *base = p->host->event_base();
	p->closing = 0;
	p->retry = evtimer_new(base, retry_cb, p);
	p->watchdog = event_new(base, -1, EV_PERSIST, watchdog_cb, p);
	/* One purger per instance is enough; every worker would only contend. */
	if (p->host->worker_id == NULL || p->host->worker_id() <= 1)
		p->purge = event_new(base, -1, EV_PERSIST, purge_cb, p);
	if (p->retry == NULL || p->watchdog == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (p->nhosts > 0) {
		p->addrs = calloc(p->nhosts, sizeof(*p->addrs));
		p->naddrs = calloc(p->nhosts, sizeof(*p->naddrs));
		if (p->addrs == NULL || p->naddrs == NULL ||
		    (p->dns = resolver_new(base, err, errlen)) == NULL) {
			if (p->addrs == NULL || p->naddrs == NULL)
				snprintf(err, errlen, "out of memory");
			free(p->addrs);
			free(p->naddrs);
			p->addrs = NULL;
			p->naddrs = NULL;
			return -1;
		}
	}
	struct timeval second = { 0, 250000 };
	event_add(p->watchdog, &second);
	if (p->purge != NULL) {
		struct timeval tv = { (time_t)(p->purge_interval_ms / 1000),
		    (suseconds_t)(p->purge_interval_ms % 1000) * 1000 };
		event_add(p->purge, &tv);
	}
	/* Not connected yet is fine: mcpd starts, reports not ready, and
	 * serves as soon as the database answers. */
	conn_connect(p);
	return 0;
}

static void
pg_detach(void *inst)
{
	struct pg *p = inst;
	struct event **evs[] = { &p->retry, &p->watchdog, &p->purge };
	/* A lookup running is dropped (no callback); pending ops are dropped
	 * without callbacks (the worker is stopping: their callers are gone);
	 * the reconnection conn_lost schedules is dropped. */
	p->closing = 1;
	resolver_free(p->dns);
	p->dns = NULL;
	p->down_logged = 1;
	if (p->conn != NULL || p->sent != NULL || p->head != NULL)
		conn_lost(p, "shutting down", NULL);
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
		if (*evs[i] != NULL) {
			event_free(*evs[i]);
			*evs[i] = NULL;
		}
	}
	free_events(p);
	p->state = ST_DOWN;
	free(p->addrs);
	free(p->naddrs);
	p->addrs = NULL;
	p->naddrs = NULL;
}

static void
pg_destroy(void *inst)
{
	struct pg *p = inst;
	if (p == NULL)
		return;
	for (int i = 0; i < N_STMT; i++)
		free(p->sql[i]);
	free(p->schema_sql);
	free(p->conninfo);
	free_list(p->hosts, p->nhosts);
	free_list(p->ports, p->nports);
	if (p->password != NULL) {
		explicit_bzero(p->password, strlen(p->password));
		free(p->password);
	}
	free(p);
}

static int
pg_status(void *inst, char *why, size_t len)
{
	struct pg *p = inst;
	if (p->state == ST_READY)
		return 0;
	snprintf(why, len, "%s", down_reason(p));
	return -1;
}

static const struct mcpd_plugin descriptor = {
	.size = sizeof(struct mcpd_plugin),
	.abi_major = MCPD_PLUGIN_ABI_MAJOR,
	.abi_minor = MCPD_PLUGIN_ABI_MINOR,
	.kind = MCPD_PLUGIN_STORAGE,
	.name = "postgres",
	.version = "1.0.0",
	.create = pg_create,
	.attach = pg_attach,
	.detach = pg_detach,
	.destroy = pg_destroy,
	.ops = &storage_ops,
	.status = pg_status,
};

const struct mcpd_plugin *
mcpd_plugin_entry(void)
{
	return &descriptor;
}
