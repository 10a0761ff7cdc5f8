/* Sessions of the 2025 protocol revisions, shared by every worker (and,
 * with network backends, every instance) through the storage and
 * transport plugins.
 *
 * storage  session:<id>          the record (JSON), TTL session_idle_timeout
 *          user:<user>:sessions  index of a user's sessions
 *          events:<id>           log of SSE events, for Last-Event-ID
 *          gsent:<id>            the last event the GET stream delivered
 *          (DELETE removes all three; the index entry goes too)
 * channels toclient:<id>         events for a stream held by another worker
 *          toserver:<id>:<rid>   the client's answer to our request <rid>
 *          control:<id>          cancellations for calls running elsewhere
 *          mcpd:sessions         records changed or deleted (cache upkeep)
 *          mcpd:changes          tools/prompts/resources changed
 *
 * A worker caches sessions for what lives in it (streams, calls, questions
 * to the client) and reads the record from storage on every request, so
 * that a session deleted or expired anywhere is never served. */
#ifndef MCPD_SESSION_H
#define MCPD_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <mcpd/plugin.h>

struct backends;
struct cJSON;
struct event_base;
struct http_request;

enum proto {
	PROTO_2025_03_26,
	PROTO_2025_06_18,
	PROTO_2025_11_25,
	PROTO_2026_07_28,
	PROTO_COUNT
};

extern const char *const proto_names[PROTO_COUNT];
int proto_parse(const char *s);

enum mcp_log_level { MLOG_DEBUG, MLOG_INFO, MLOG_NOTICE, MLOG_WARNING, MLOG_ERROR,
	MLOG_CRITICAL, MLOG_ALERT, MLOG_EMERGENCY, MLOG_COUNT };
extern const char *const mcp_log_level_names[MLOG_COUNT];
int mcp_log_level_parse(const char *s);

struct session;
struct sessions;
struct outq;

/* A stream this worker writes: a POST answered with SSE, the session's
 * GET stream ("g"), or a stream resumed with Last-Event-ID. */
struct stream {
	struct session *s;
	char id[32];
	uint64_t sent;              /* highest event seq written to the response */
	struct http_request *req;   /* NULL once the client is gone */
	struct event *keepalive;
	int holder;                 /* written from toclient: messages (GET, resumed) */
	int priming;                /* send the priming event when the start is numbered */
	int finished;
	struct outq *queue;         /* events waiting for their seq from storage */
	void (*detached)(void *arg);
	void *detached_arg;
	LIST_ENTRY(stream) link;
};

typedef void (*pending_cb)(void *arg, const struct cJSON *result, const struct cJSON *error);

struct session {
	struct sessions *table;
	char id[48];
	char hid[25];               /* its keyed hash (idhash.h): names it in storage and messages */
	enum proto proto;
	struct cJSON *client_info;
	struct cJSON *client_caps;
	int log_level;
	char *owner;                /* the principal that created it; NULL without auth */
	char **subs;
	size_t nsubs;
	uint64_t touched_ms;        /* when its TTL was last renewed */
	char *record;               /* the stored record as last seen: unchanged means no parse */
	size_t record_len;
	uint64_t used_ms;
	int deleted;
	unsigned refs;
	unsigned calls;             /* async calls running here: control:<id> */
	void *control_sub, *toclient_sub;
	unsigned toclient_users;
	/* A client on a line transport (mcpd --stdio): what would go to its
	 * GET stream goes to line instead, whole and at once. */
	void (*line)(void *arg, const char *json);
	void *line_arg;
	LIST_HEAD(, stream) streams;
	LIST_HEAD(, pending_request) pending;
	struct session *hnext, *hhnext;
	TAILQ_ENTRY(session) lru;
};

typedef void (*session_cb)(void *arg, struct session *s, int status);

/* stream_buffer: the most bytes of a stream's messages that may wait
 * for storage to number them (limits.stream_buffer). */
struct sessions *sessions_new(struct event_base *base, const struct backends *b, size_t max,
    size_t history, uint64_t idle_ms, uint64_t keepalive_ms, uint64_t retry_ms,
    size_t stream_buffer);
void sessions_free(struct sessions *t);
/* Hooks into the MCP layer. */
void sessions_on_delete(struct sessions *t, void (*fn)(struct session *, void *), void *arg);
void sessions_on_cancel(struct sessions *t, void (*fn)(struct session *, const struct cJSON *, void *), void *arg);
void sessions_on_change(struct sessions *t, void (*fn)(const char *what, const char *uri, void *), void *arg);
/* Every session this worker holds in memory. */
void sessions_foreach(struct sessions *t, void (*fn)(struct session *, void *), void *arg);
/* Tell every worker that tools, prompts or resources changed ("updated"
 * with a URI for one resource). */
/* A change for every worker of every instance: -1 if uri is longer than
 * SESSION_CHANGE_URI_MAX (nothing is sent). */
#define SESSION_CHANGE_URI_MAX 4096
int sessions_publish_change(struct sessions *t, const char *what, const char *uri);

/* status: MCPD_OK with s, MCPD_NOT_FOUND, or MCPD_ERROR (storage down).
 * cb may run before these return. */
void session_create(struct sessions *t, enum proto proto, const struct cJSON *caps,
    const struct cJSON *info, const char *owner, session_cb cb, void *arg);
void session_lookup(struct sessions *t, const char *id, session_cb cb, void *arg);
/* The live sessions a principal created (an array of {id, protocol,
 * client}), revoking them too if revoke: every worker and instance ends
 * their streams. cb gets MCPD_ERROR and NULL if storage cannot tell. */
typedef void (*user_sessions_cb)(void *arg, int status, struct cJSON *list);
void sessions_of_user(struct sessions *t, const char *user, int revoke, user_sessions_cb cb, void *arg);
void session_touch(struct session *s);
/* Store the record again after log level or subscriptions changed. */
void session_save(struct session *s);
void session_delete(struct session *s);
/* The same, then done(arg, ok) once storage has removed the record (and
 * the other workers have been told): an answer sent from done cannot be
 * outrun by a request that reads the record back. */
typedef void session_deleted_fn(void *arg, int ok);
void session_delete_then(struct session *s, session_deleted_fn *done, void *arg);
void session_ref(struct session *s);
void session_unref(struct session *s);
int session_subscribed(const struct session *s, const char *uri);
int session_subscribe(struct session *s, const char *uri);
void session_unsubscribe(struct session *s, const char *uri);
/* While a call of the session runs here, cancellations reach it. */
void session_calls_begin(struct session *s);
void session_calls_end(struct session *s);
void session_publish_cancel(struct session *s, const struct cJSON *request_id);

/* Streams. priming: an event with an id and empty data first, which
 * 2025-11-25 clients reconnect with. request_id: the request's id as
 * JSON, kept with the stream's start so that a client that resumes the
 * stream of a request that was lost (its worker died) can be answered. */
struct stream *stream_open(struct session *s, struct http_request *req, int priming,
    const char *request_id);
void stream_send(struct stream *st, const char *json);
/* The last event (or NULL), then the response ends. Frees st. */
void stream_finish(struct stream *st, const char *json);
/* The response went away: events go on being recorded for a resume. */
void stream_detach(struct stream *st);
/* A GET: the session's stream, fresh or resumed from last_event_id.
 * Returns -1 when last_event_id is malformed or the GET stream is
 * already open here. */
int stream_get(struct session *s, struct http_request *req, const char *last_event_id, int priming);
/* A message to the client outside any request: the GET stream, wherever
 * it is held, or the session's line. */
void session_notify(struct session *s, const char *json);
/* The session's client reads one line transport (stdio): its messages
 * go to line(arg, json) instead of streams; NULL stops them. */
void session_set_line(struct session *s, void (*line)(void *arg, const char *json), void *arg);
int session_holds_get(const struct session *s);
/* The GET stream this worker writes for the session, or NULL. */
struct stream *session_get_holder(struct session *s);

/* Requests to the client: cb gets the answer, wherever it is posted, or
 * an error if the session ends first. */
void session_request(struct session *s, const char *method, struct cJSON *params,
    struct stream *via, pending_cb cb, void *arg);
/* A response the client posted (to this worker). */
void session_response(struct session *s, const struct cJSON *id, const struct cJSON *result,
    const struct cJSON *error);
/* Forget the callbacks that point at arg (its owner is going away). */
void session_cancel_pending(struct session *s, void *arg);

#endif
