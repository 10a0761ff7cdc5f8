/* SSE streams of a session (see session.h): a POST answered with a stream
 * and the sender of the GET stream. Each event is numbered by appending
 * it to the session's event log in storage, then written to the client
 * here, or passed to the worker that holds the stream now (toclient:);
 * what waits for its number is bounded by limits.stream_buffer. */
#include "session_internal.h"
#include "http.h"
#include "log.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Events of a stream waiting for storage to number them; shared with the
 * storage callbacks, so it outlives its stream when those are late. */
struct outq_item {
	struct outq *q;
	char *json;
	size_t len;
	int final;
	int ready;
	uint64_t seq;
	struct outq_item *next;
};

struct outq {
	struct stream *st;          /* NULL once the stream is gone */
	struct outq_item *head, *tail;
	unsigned waiting;           /* items whose storage callback has not run */
	size_t bytes;               /* of the items' messages */
	unsigned dropped;           /* messages refused while storage is behind */
};

static void stream_ping(struct stream *st);

int
request_stream(const struct stream *st)
{
	return strcmp(st->id, "g") != 0;
}

/* Every keepalive period while it lives. A request's stream tells
 * whoever resumed it elsewhere that its request is still running; a
 * resumed one that has heard nothing of its request for LOST_AFTER
 * periods looks in the log for the end (see lost_read). */
static void
keepalive_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct stream *st = arg;
	struct sessions *t = st->s->table;
	if (st->req != NULL)
		http_stream_write(st->req, ": keep-alive\n\n", 14);
	if (!request_stream(st))
		return;
	if (!st->holder && !st->finished)
		stream_ping(st);
	else if (st->holder && st->req != NULL && !sx(st)->replaying && sx(st)->check == NULL &&
	    now_ms() - sx(st)->heard_ms >= LOST_AFTER * t->keepalive_ms)
		lost_check_start(st);
}

static void
req_closed(struct http_request *r, void *arg)
{
	(void)r;
	struct stream *st = arg;
	st->req = NULL;
	if (st->holder)
		event_del(st->keepalive);   /* a request's own stream goes on: stream_ping */
	if (st->detached != NULL)
		st->detached(st->detached_arg);
	if (st->holder) {
		/* A GET or resumed stream exists only for its connection. */
		stream_free(st);
	}
}

void
attach(struct stream *st, struct http_request *req, int priming)
{
	struct sessions *t = st->s->table;
	st->req = req;
	http_request_on_close(req, req_closed, st);
	http_response_header(req, "Cache-Control", "no-cache");
	http_response_header(req, "X-Accel-Buffering", "no");
	http_stream_begin(req, 200, "text/event-stream");
	char head[128];
	int n;
	if (priming)
		n = snprintf(head, sizeof(head), "id: %s-%llu\nretry: %llu\ndata: \n\n", st->id,
		    (unsigned long long)st->sent, (unsigned long long)t->retry_ms);
	else
		n = snprintf(head, sizeof(head), "retry: %llu\n\n", (unsigned long long)t->retry_ms);
	http_stream_write(req, head, (size_t)n);
	struct timeval tv = { (time_t)(t->keepalive_ms / 1000), (suseconds_t)(t->keepalive_ms % 1000) * 1000 };
	event_add(st->keepalive, &tv);
}

struct stream *
stream_new(struct session *s, const char *id, int holder)
{
	struct stream *st = calloc(1, sizeof(*st) + sizeof(struct stream_x));
	if (st == NULL)
		return NULL;
	st->s = s;
	snprintf(st->id, sizeof(st->id), "%s", id);
	st->holder = holder;
	st->keepalive = event_new(s->table->base, -1, EV_PERSIST, keepalive_cb, st);
	st->queue = calloc(1, sizeof(*st->queue));
	if (st->keepalive == NULL || st->queue == NULL) {
		if (st->keepalive)
			event_free(st->keepalive);
		free(st->queue);
		free(st);
		return NULL;
	}
	st->queue->st = st;
	LIST_INSERT_HEAD(&s->streams, st, link);
	session_ref(s);
	return st;
}

static void
outq_free_items(struct outq *q)
{
	while (q->head != NULL) {
		struct outq_item *it = q->head;
		q->head = it->next;
		free(it->json);
		free(it);
	}
	q->tail = NULL;
	q->bytes = 0;
}

void
stream_free(struct stream *st)
{
	struct session *s = st->s;
	if (st->req != NULL) {
		struct http_request *r = st->req;
		http_request_on_close(r, NULL, NULL);
		st->req = NULL;
		http_stream_end(r);
	}
	LIST_REMOVE(st, link);
	event_free(st->keepalive);
	/* Ended (the session deleted, say) while its replay is read. */
	if (sx(st)->replay != NULL)
		sx(st)->replay->st = NULL;
	held_free(st);
	if (st->holder)
		toclient_release(s);
	if (sx(st)->check != NULL)
		sx(st)->check->st = NULL;
	/* Storage callbacks still due find the queue without its stream. */
	st->queue->st = NULL;
	if (st->queue->waiting == 0) {
		outq_free_items(st->queue);
		free(st->queue);
	}
	free(st);
	session_unref(s);
}

void
write_event(struct stream *st, uint64_t seq, const char *json)
{
	if (st->req == NULL)
		return;
	size_t len = strlen(json);
	char *ev = malloc(len + 96);
	if (ev == NULL)
		return;
	int n = seq ? snprintf(ev, len + 96, "id: %s-%llu\nevent: message\ndata: %s\n\n", st->id,
	    (unsigned long long)seq, json) : snprintf(ev, len + 96, "event: message\ndata: %s\n\n", json);
	int rc = http_stream_write(st->req, ev, (size_t)n);
	free(ev);
	/* Not written: the client left, or did not read what it was sent
	 * (limits.stream_buffer) and the stream is being closed; either way
	 * its close callback follows, and the events stay in the log for a
	 * resumption. */
	if (rc < 0)
		return;
	if (seq > st->sent)
		st->sent = seq;
	if (seq != 0 && st->holder && strcmp(st->id, "g") == 0) {
		/* What the GET stream delivered, so that a later GET (from any
		 * worker) starts with what came while none was open. */
		char key[96], val[32];
		key_of(key, sizeof(key), "gsent:", st->s->id);
		int vl = snprintf(val, sizeof(val), "%llu", (unsigned long long)seq);
		st->s->table->b.storage->set(st->s->table->b.storage_inst, key, val, (size_t)vl,
		    st->s->table->idle_ms, 0, NULL, NULL);
	}
}

struct stream *
local_holder(struct session *s, const char *id)
{
	struct stream *st;
	LIST_FOREACH(st, &s->streams, link)
		if (st->req != NULL && strcmp(st->id, id) == 0)
			return st;
	return NULL;
}

/* An event has its number: write it here, or pass it to the worker that
 * holds the stream now. */
static void
deliver(struct stream *st, uint64_t seq, int final, const char *json)
{
	struct session *s = st->s;
	struct stream *to = st->req != NULL ? st : local_holder(s, st->id);
	if (to != NULL) {
		write_event(to, seq, json);
		if (final && to != st)
			stream_free(to);
		return;
	}
	size_t len = strlen(json);
	char *msg = malloc(len + 64);
	if (msg == NULL)
		return;
	int n = snprintf(msg, len + 64, "%s\n%llu\n%d\n%s", st->id, (unsigned long long)seq, final, json);
	char ch[96];
	key_of(ch, sizeof(ch), "toclient:", s->id);
	publish(s->table, ch, msg, (size_t)n);
	free(msg);
}

/* "Still running", for the streams that resumed this one: those here at
 * once, those elsewhere through the transport. */
static void
stream_ping(struct stream *st)
{
	struct session *s = st->s;
	struct stream *h;
	LIST_FOREACH(h, &s->streams, link)
		if (h->holder && strcmp(h->id, st->id) == 0)
			sx(h)->heard_ms = now_ms();
	char msg[64], ch[96];
	int n = snprintf(msg, sizeof(msg), "%s\n0\n3\n", st->id);
	key_of(ch, sizeof(ch), "toclient:", s->id);
	publish(s->table, ch, msg, (size_t)n);
}

/* The priming event: an id (the stream's start marker) and no data. */
static void
priming_event(struct stream *st, uint64_t seq)
{
	if (st->req == NULL || !st->priming)
		return;
	char head[96];
	int n = snprintf(head, sizeof(head), "id: %s-%llu\ndata: \n\n", st->id, (unsigned long long)seq);
	http_stream_write(st->req, head, (size_t)n);
}

static void priming_event(struct stream *st, uint64_t seq);

static void
flush(struct outq *q)
{
	while (q->head != NULL && q->head->ready) {
		struct outq_item *it = q->head;
		q->head = it->next;
		if (q->head == NULL)
			q->tail = NULL;
		q->bytes -= it->len;
		if (q->st != NULL && it->final == 2)
			priming_event(q->st, it->seq);
		else if (q->st != NULL)
			deliver(q->st, it->seq, it->final, it->json);
		int final = it->final == 1;
		free(it->json);
		free(it);
		if (final && q->st != NULL && q->st->finished) {
			stream_free(q->st);
			return;
		}
	}
}

static void
appended(void *arg, int status, int64_t seq, const char *err)
{
	struct outq_item *it = arg;
	struct outq *q = it->q;
	q->waiting--;
	if (status != MCPD_OK) {
		log_warn("storage: event not kept for resumption: %s", err ? err : "failed");
		seq = 0;
	}
	it->seq = (uint64_t)seq;
	it->ready = 1;
	if (q->st == NULL) {
		if (q->waiting == 0) {
			outq_free_items(q);
			free(q);
		}
		return;
	}
	flush(q);
}

/* final: 0 an event, 1 the last event, 2 the stream's start marker (it
 * gives the priming event its id and proves the stream exists). */
static void
enqueue(struct stream *st, const char *json, int final)
{
	struct sessions *t = st->s->table;
	struct outq *q = st->queue;
	size_t len = strlen(json);
	/* Messages wait here until storage has numbered them: one that falls
	 * behind a tool sending fast must not make this grow without end.
	 * The last message (the answer) and the start are always taken. */
	if (final == 0 && q->bytes > t->stream_buffer) {
		if (q->dropped++ == 0)
			log_warn("session %.8s…: storage is behind: more than limits.stream_buffer (%zu bytes) "
			    "of stream %s waits for it; dropping the stream's messages until it catches up",
			    st->s->id, t->stream_buffer, st->id);
		return;
	}
	if (q->dropped > 0) {
		log_warn("session %.8s…: stream %s: %u messages dropped while storage was behind",
		    st->s->id, st->id, q->dropped);
		q->dropped = 0;
	}
	struct outq_item *it = calloc(1, sizeof(*it));
	if (it == NULL || (it->json = strdup(json)) == NULL) {
		free(it);
		return;
	}
	it->len = len;
	q->bytes += len;
	it->q = st->queue;
	it->final = final;
	if (st->queue->tail != NULL)
		st->queue->tail->next = it;
	else
		st->queue->head = it;
	st->queue->tail = it;
	st->queue->waiting++;
	char *entry = malloc(strlen(st->id) + len + 8);
	if (entry == NULL) {
		appended(it, MCPD_ERROR, 0, "out of memory");
		return;
	}
	int n = sprintf(entry, "%s\n%d\n%s", st->id, final, json);
	char log[96];
	key_of(log, sizeof(log), "events:", st->s->id);
	t->b.storage->log_append(t->b.storage_inst, log, entry, (size_t)n, t->history, t->idle_ms,
	    appended, it);
	free(entry);
}

struct stream *
stream_open(struct session *s, struct http_request *req, int priming, const char *request_id)
{
	struct sessions *t = s->table;
	char id[32];
	snprintf(id, sizeof(id), "%xx%" PRIx64, t->pid, ++t->next_stream);
	struct stream *st = stream_new(s, id, 0);
	if (st == NULL)
		return NULL;
	attach(st, req, 0);
	st->priming = priming;
	enqueue(st, request_id ? request_id : "", 2);   /* the start names the request */
	return st;
}

void
stream_send(struct stream *st, const char *json)
{
	enqueue(st, json, 0);
}

void
stream_finish(struct stream *st, const char *json)
{
	st->finished = 1;
	if (st->detached != NULL) {
		st->detached = NULL;
	}
	if (json != NULL) {
		enqueue(st, json, 1);   /* freed when its event is out */
		return;
	}
	if (st->queue->head == NULL)
		stream_free(st);
}

void
stream_detach(struct stream *st)
{
	if (st->req == NULL)
		return;
	http_request_on_close(st->req, NULL, NULL);
	st->req = NULL;
	if (st->holder)
		event_del(st->keepalive);
}

/* The streams held here may have missed events (the relay dropped some
 * while this worker or the master lagged): end them, so that their
 * clients resume with Last-Event-ID and get what was lost from the log. */
static void
end_held(struct session *s, void *arg)
{
	unsigned *n = arg;
	struct stream *st, *next;
	session_ref(s);
	for (st = LIST_FIRST(&s->streams); st != NULL; st = next) {
		next = LIST_NEXT(st, link);
		if (st->holder && st->req != NULL) {
			(*n)++;
			stream_free(st);
		}
	}
	session_unref(s);
}

void
streams_lost_events(void *arg)
{
	struct sessions *t = arg;
	unsigned n = 0;
	sessions_foreach(t, end_held, &n);
	log_warn("relay: messages were dropped while this worker or the master lagged; %u stream%s held "
	    "here ended, for the clients to resume them from the log", n, n == 1 ? "" : "s");
}
