/* Shared by the files of the session store: session.c (the table, the
 * cache of records, create, lookup, save, delete, subscriptions and
 * cancellations), session_stream.c (SSE streams: events numbered through
 * storage, then written here or passed to the worker that holds the
 * stream), session_replay.c (GET streams and resumption from the event
 * log), session_request.c (requests to the client and their answers)
 * and session_users.c (a principal's sessions, for operators). Other
 * files use session.h. */
#ifndef MCPD_SESSION_INTERNAL_H
#define MCPD_SESSION_INTERNAL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/queue.h>

#include "idhash.h"
#include "plugin.h"
#include "session.h"
#include "util.h"

struct event;
struct event_base;
struct held_msg;
struct http_request;

#define BUCKETS 16384

#define GONE_SLOTS 64
#define GONE_MS 30000           /* how long a deletion is remembered */

struct pending_request {
	struct session *s;
	char id[48];
	pending_cb cb;
	void *arg;
	void *sub;
	struct event *poll;             /* looks for a stored answer */
	unsigned poll_ms;
	int probing;
	LIST_ENTRY(pending_request) link;
};

struct sessions {
	struct event_base *base;
	struct backends b;
	size_t max, history;
	size_t stream_buffer;       /* a stream's messages waiting for storage, in bytes */
	uint64_t idle_ms, keepalive_ms, retry_ms;
	struct session *buckets[BUCKETS];
	struct session *hbuckets[BUCKETS];  /* the same, by keyed hash (messages) */
	TAILQ_HEAD(, session) all;
	size_t count;
	struct event *sweep;
	LIST_HEAD(, resend) resends;        /* cancellations to publish again */
	LIST_HEAD(, sop) ops;               /* lookups and creations out at storage */
	LIST_HEAD(, record_read) reads;     /* records read by hash, out at storage */
	LIST_HEAD(, answer_probe) probes;   /* looks for answers out at storage */
	void *sessions_sub, *changes_sub;
	void (*on_delete)(struct session *, void *);
	void *on_delete_arg;
	void (*on_cancel)(struct session *, const cJSON *, void *);
	void *on_cancel_arg;
	void (*on_change)(const char *, const char *, void *);
	void *on_change_arg;
	/* Start at random: ids name streams and questions in storage shared
	 * by hosts, where another worker may well have the same pid. */
	uint64_t next_stream, next_request;
	int pid;
	/* Sessions deleted lately (by keyed hash): a deletion can be heard
	 * before the reply of a lookup that read the record just before it. */
	struct {
		char hid[IDHASH_LEN + 1];
		uint64_t at;
	} gone[GONE_SLOTS];
	unsigned gone_next;
	uint64_t gone_last;             /* the newest gone[].at (0: none yet) */
};

struct replay {
	struct session *s;
	struct http_request *req;   /* NULL once the client left */
	struct stream *st;          /* the holder, made before the storage read */
	char id[32];
	uint64_t after;
	int fresh, priming;
};

/* A stream's extra state for being resumed from the log. */
struct stream_x {
	int replaying;
	struct held_msg *held, **held_tail;
	size_t held_bytes;
	int held_over;              /* more than limits.stream_buffer came: let go */
	struct replay *replay;          /* the storage read it waits for */
	uint64_t heard_ms;          /* a resumed stream: last word from its request */
	struct lost_check *check;   /* reading the log, or recording the loss */
};

/* A resumed stream's storage operation, which may outlive the stream. */
struct lost_check {
	struct stream *st;          /* NULL once the stream is gone */
	char *json;                 /* the answer being recorded */
};

/* Keepalive periods without a word from its request after which a resumed
 * stream looks in the log for the end (keepalive_cb, lost_read). */
#define LOST_AFTER 3

/* The index of a principal's sessions, for listing and revoking them. A
 * name too long for the key is replaced by its SHA-256 under another
 * prefix: a cut name could share the index of another principal. */
#define INDEX_KEY_MAX 256
const char *user_index_key(const char *user, char *buf, size_t len);

static inline uint64_t
now_ms(void)
{
	return monotonic_ms();
}

/* A session's storage key or channel: the id itself never appears in
 * them, only its keyed hash (idhash.h). */
static inline void
key_of(char *buf, size_t len, const char *prefix, const char *id)
{
	char h[IDHASH_LEN + 1];
	snprintf(buf, len, "%s%s", prefix, idhash(id, h));
}

static inline void
publish(struct sessions *t, const char *channel, const char *msg, size_t len)
{
	if (t->b.transport == NULL)
		return;
	t->b.transport->publish(t->b.transport_inst, channel, msg, len, NULL, NULL, NULL);
}

static inline void *
subscribe(struct sessions *t, const char *channel, mcpd_message_cb *cb, void *arg)
{
	if (t->b.transport == NULL)
		return NULL;
	return t->b.transport->subscribe(t->b.transport_inst, channel, cb, arg);
}

static inline void
unsubscribe(struct sessions *t, void *sub)
{
	if (sub != NULL && t->b.transport != NULL)
		t->b.transport->unsubscribe(t->b.transport_inst, sub);
}

static inline struct stream_x *
sx(struct stream *st)
{
	return (struct stream_x *)(st + 1);
}

/* session.c */
struct session *cache_find(struct sessions *t, const char *id);
/* Note that the session hashed hid was deleted (now_ms() now), and
 * whether it was within GONE_MS of now. */
void gone_note(struct sessions *t, const char *hid, uint64_t now);
int gone_recently(const struct sessions *t, const char *hid, uint64_t now);
/* Whether a stored record (value, len) written at its "w" has lapsed by
 * now, for sessions that expire idle_ms after their last write. */
int record_expired_at(const void *value, size_t len, uint64_t idle_ms, uint64_t now);
/* By keyed hash: the user index and the mcpd:sessions messages name a
 * session by its hash only, never by the id a client presents. */
struct session *cache_find_hashed(struct sessions *t, const char *hid);
typedef void session_record_fn(void *arg, int status, const cJSON *record);
/* The stored record of the session hashed hid (NULL: gone or expired). */
void session_record_hashed(struct sessions *t, const char *hid, session_record_fn *cb, void *arg);
/* Delete the session hashed hid, whose record names owner, wherever it
 * lives; done as session_delete_then's. */
void session_delete_hashed(struct sessions *t, const char *hid, const char *owner,
    session_deleted_fn *done, void *arg);

/* session_stream.c: SSE streams. */
/* A request's stream, as opposed to the GET stream "g". */
int request_stream(const struct stream *st);
struct stream *stream_new(struct session *s, const char *id, int holder);
void attach(struct stream *st, struct http_request *req, int priming);
void stream_free(struct stream *st);
/* The transport lost events for this worker: end the streams it holds. */
void streams_lost_events(void *arg);
void write_event(struct stream *st, uint64_t seq, const char *json);
/* The worker here that holds (writes) stream id for the client. */
struct stream *local_holder(struct session *s, const char *id);

/* session_replay.c: GET streams and resumption. */
void held_free(struct stream *st);
void toclient_release(struct session *s);
void lost_check_start(struct stream *st);

/* session_request.c: requests to the client. */
void pending_free(struct pending_request *p);
/* At stop, after the storage's detach: the probes it dropped. */
void answer_probes_forget(struct sessions *t);

#endif
