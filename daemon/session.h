/* Sessions of the 2025 protocol revisions and their SSE streams.
 *
 * A session owns logical streams: stream 0 is the standalone GET stream,
 * every POST answered with SSE gets its own number. Each event is
 * recorded in a bounded history, so that a client that lost a connection
 * resumes with Last-Event-ID ("<stream>-<seq>") and gets what it missed,
 * and a stream whose request is still running continues on the new
 * connection. This store is per worker; sharing it across workers and
 * hosts is the storage plugins' job. */
#ifndef MCPD_SESSION_H
#define MCPD_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

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
/* -1 when s is not a revision mcpd speaks. */
int proto_parse(const char *s);

enum mcp_log_level { MLOG_DEBUG, MLOG_INFO, MLOG_NOTICE, MLOG_WARNING, MLOG_ERROR,
	MLOG_CRITICAL, MLOG_ALERT, MLOG_EMERGENCY, MLOG_COUNT };
extern const char *const mcp_log_level_names[MLOG_COUNT];
int mcp_log_level_parse(const char *s);

struct session;
struct sessions;

struct stream {
	struct session *s;
	unsigned no;
	uint64_t seq;
	uint64_t sent;              /* highest seq written to a connection */
	struct http_request *req;   /* the response it writes to, or NULL */
	struct event *keepalive;
	int finished;               /* the last event is recorded */
	/* The owner hears when the response goes away (client closed it). */
	void (*detached)(void *arg);
	void *detached_arg;
	LIST_ENTRY(stream) link;
};

struct pending_request;          /* a request we sent to the client */
typedef void (*pending_cb)(void *arg, const struct cJSON *result, const struct cJSON *error);

struct session {
	struct sessions *table;
	char id[48];
	enum proto proto;
	struct cJSON *client_info;
	struct cJSON *client_caps;
	int log_level;
	char **subs;
	size_t nsubs;
	uint64_t last_active_ms;
	int initialized;
	int deleted;
	unsigned refs;
	unsigned next_stream;
	struct stream *get_stream;  /* stream 0, created on the first GET */
	LIST_HEAD(, stream) streams;
	/* history ring */
	struct hist_event *hist;
	size_t hist_cap, hist_start, hist_len;
	int64_t next_request_id;
	LIST_HEAD(, pending_request) pending;
	void *calls;                /* owned by mcp.c: the requests running */
	struct session *hnext;      /* hash chain */
	TAILQ_ENTRY(session) lru;
};

struct sessions *sessions_new(struct event_base *base, size_t max, size_t history,
    uint64_t idle_ms, uint64_t keepalive_ms, uint64_t retry_ms);
void sessions_free(struct sessions *t);
size_t sessions_count(const struct sessions *t);

/* NULL when the table is full. */
struct session *session_create(struct sessions *t, enum proto proto);
struct session *session_find(struct sessions *t, const char *id);
void session_touch(struct session *s);
/* Ends the session: its streams close, pending requests fail; the memory
 * stays until the last reference is dropped. on_delete runs first. */
void session_delete(struct session *s);
void session_ref(struct session *s);
void session_unref(struct session *s);
/* Called when a session ends (deleted or expired), to stop its calls. */
void sessions_on_delete(struct sessions *t, void (*fn)(struct session *, void *), void *arg);
/* Calls fn for every live session. */
void sessions_foreach(struct sessions *t, void (*fn)(struct session *, void *), void *arg);
int session_subscribed(const struct session *s, const char *uri);
int session_subscribe(struct session *s, const char *uri);
void session_unsubscribe(struct session *s, const char *uri);

/* Streams. priming: send an event with an id and empty data first
 * (2025-11-25 clients reconnect with it). */
struct stream *stream_open(struct session *s, struct http_request *req, int priming);
/* Stream 0: the session's GET stream, attached to req. */
struct stream *stream_open_get(struct session *s, struct http_request *req, int priming);
/* Record and (if attached) write one JSON-RPC message. */
void stream_send(struct stream *st, const char *json);
/* Record the stream as done; ends the attached response. Frees st. */
void stream_finish(struct stream *st);
/* The HTTP response went away: keep recording for a later resume. */
void stream_detach(struct stream *st);
/* A GET with Last-Event-ID: replay, and attach req when the stream is
 * still running. Returns 0, or -1 when the id is not of this session. */
int stream_resume(struct session *s, const char *last_event_id, struct http_request *req,
    struct stream **attached);

/* Requests to the client: the callback gets the answer (or an error when
 * the session ends first). */
int64_t session_request(struct session *s, const char *method, struct cJSON *params,
    struct stream *via, pending_cb cb, void *arg);
/* A response the client posted. Returns 0 when it matched a request. */
int session_response(struct session *s, const struct cJSON *id, const struct cJSON *result,
    const struct cJSON *error);
/* Forget the callbacks that point at arg (its owner is going away). */
void session_cancel_pending(struct session *s, void *arg);

#endif
