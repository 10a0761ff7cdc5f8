#include "session.h"
#include "http.h"
#include "jsonrpc.h"
#include "log.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 16384
#define HISTORY_BYTES (2 * 1024 * 1024)
#define MAX_PENDING_OUTPUT (8 * 1024 * 1024)   /* a reader this slow is cut off */

const char *const proto_names[PROTO_COUNT] = {
	"2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28",
};

const char *const mcp_log_level_names[MLOG_COUNT] = {
	"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency",
};

int
proto_parse(const char *s)
{
	for (int i = 0; i < PROTO_COUNT; i++)
		if (strcmp(s, proto_names[i]) == 0)
			return i;
	return -1;
}

int
mcp_log_level_parse(const char *s)
{
	for (int i = 0; i < MLOG_COUNT; i++)
		if (strcmp(s, mcp_log_level_names[i]) == 0)
			return i;
	return -1;
}

struct hist_event {
	unsigned stream;
	uint64_t seq;
	char *data;
	size_t len;
};

struct pending_request {
	int64_t id;
	pending_cb cb;
	void *arg;
	LIST_ENTRY(pending_request) link;
};

struct sessions {
	struct event_base *base;
	struct session *buckets[BUCKETS];
	TAILQ_HEAD(, session) all;
	size_t count, max, history;
	uint64_t idle_ms, keepalive_ms, retry_ms;
	struct event *sweep;
	void (*on_delete)(struct session *, void *);
	void *on_delete_arg;
};

static unsigned
hash(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % BUCKETS;
}

static void
sweep_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct sessions *t = arg;
	uint64_t now = monotonic_ms();
	struct session *s, *next;
	for (s = TAILQ_FIRST(&t->all); s != NULL; s = next) {
		next = TAILQ_NEXT(s, lru);
		int attached = s->get_stream != NULL && s->get_stream->req != NULL;
		if (attached || s->refs > 0) {
			s->last_active_ms = now;   /* a held stream or a running call is activity */
			continue;
		}
		if (now - s->last_active_ms > t->idle_ms) {
			log_info("session %.8s… expired after %llus idle", s->id,
			    (unsigned long long)(t->idle_ms / 1000));
			session_delete(s);
		}
	}
}

struct sessions *
sessions_new(struct event_base *base, size_t max, size_t history, uint64_t idle_ms,
    uint64_t keepalive_ms, uint64_t retry_ms)
{
	struct sessions *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->base = base;
	t->max = max;
	t->history = history;
	t->idle_ms = idle_ms;
	t->keepalive_ms = keepalive_ms;
	t->retry_ms = retry_ms;
	TAILQ_INIT(&t->all);
	t->sweep = event_new(base, -1, EV_PERSIST, sweep_cb, t);
	uint64_t every = idle_ms / 4 < 10000 ? idle_ms / 4 : 10000;
	if (every < 250)
		every = 250;
	struct timeval tv = { (time_t)(every / 1000), (suseconds_t)(every % 1000) * 1000 };
	event_add(t->sweep, &tv);
	return t;
}

static void
session_free(struct session *s)
{
	for (size_t i = 0; i < s->hist_len; i++)
		free(s->hist[(s->hist_start + i) % s->hist_cap].data);
	free(s->hist);
	for (size_t i = 0; i < s->nsubs; i++)
		free(s->subs[i]);
	free(s->subs);
	cJSON_Delete(s->client_info);
	cJSON_Delete(s->client_caps);
	free(s);
}

void
sessions_free(struct sessions *t)
{
	if (t == NULL)
		return;
	t->on_delete = NULL;
	while (!TAILQ_EMPTY(&t->all)) {
		struct session *s = TAILQ_FIRST(&t->all);
		s->refs = 0;
		session_delete(s);
	}
	event_free(t->sweep);
	free(t);
}

size_t
sessions_count(const struct sessions *t)
{
	return t->count;
}

void
sessions_on_delete(struct sessions *t, void (*fn)(struct session *, void *), void *arg)
{
	t->on_delete = fn;
	t->on_delete_arg = arg;
}

void
sessions_foreach(struct sessions *t, void (*fn)(struct session *, void *), void *arg)
{
	struct session *s, *next;
	for (s = TAILQ_FIRST(&t->all); s != NULL; s = next) {
		next = TAILQ_NEXT(s, lru);
		fn(s, arg);
	}
}

struct session *
session_create(struct sessions *t, enum proto proto)
{
	if (t->count >= t->max)
		return NULL;
	struct session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	if (random_token(s->id, 24) < 0) {   /* 192 random bits */
		free(s);
		return NULL;
	}
	s->table = t;
	s->proto = proto;
	s->log_level = MLOG_INFO;
	s->next_stream = 1;
	s->last_active_ms = monotonic_ms();
	LIST_INIT(&s->streams);
	LIST_INIT(&s->pending);
	if (t->history > 0) {
		s->hist_cap = t->history;
		s->hist = calloc(s->hist_cap, sizeof(*s->hist));
		if (s->hist == NULL) {
			free(s);
			return NULL;
		}
	}
	unsigned h = hash(s->id);
	s->hnext = t->buckets[h];
	t->buckets[h] = s;
	TAILQ_INSERT_TAIL(&t->all, s, lru);
	t->count++;
	return s;
}

struct session *
session_find(struct sessions *t, const char *id)
{
	for (struct session *s = t->buckets[hash(id)]; s != NULL; s = s->hnext)
		if (strcmp(s->id, id) == 0)
			return s;
	return NULL;
}

void
session_touch(struct session *s)
{
	s->last_active_ms = monotonic_ms();
}

void
session_ref(struct session *s)
{
	s->refs++;
}

void
session_unref(struct session *s)
{
	if (--s->refs == 0 && s->deleted)
		session_free(s);
}

void
session_delete(struct session *s)
{
	if (s->deleted)
		return;
	struct sessions *t = s->table;
	s->deleted = 1;
	struct session **pp = &t->buckets[hash(s->id)];
	while (*pp != s)
		pp = &(*pp)->hnext;
	*pp = s->hnext;
	TAILQ_REMOVE(&t->all, s, lru);
	t->count--;
	session_ref(s);
	if (t->on_delete != NULL)
		t->on_delete(s, t->on_delete_arg);
	while (!LIST_EMPTY(&s->pending)) {
		struct pending_request *p = LIST_FIRST(&s->pending);
		LIST_REMOVE(p, link);
		cJSON *err = cJSON_CreateObject();
		cJSON_AddNumberToObject(err, "code", JSONRPC_INTERNAL_ERROR);
		cJSON_AddStringToObject(err, "message", "session ended");
		p->cb(p->arg, NULL, err);
		cJSON_Delete(err);
		free(p);
	}
	while (!LIST_EMPTY(&s->streams))
		stream_finish(LIST_FIRST(&s->streams));
	session_unref(s);
}

int
session_subscribed(const struct session *s, const char *uri)
{
	for (size_t i = 0; i < s->nsubs; i++)
		if (strcmp(s->subs[i], uri) == 0)
			return 1;
	return 0;
}

int
session_subscribe(struct session *s, const char *uri)
{
	if (session_subscribed(s, uri))
		return 0;
	if (s->nsubs >= 1024)
		return -1;
	char **n = realloc(s->subs, (s->nsubs + 1) * sizeof(char *));
	if (n == NULL)
		return -1;
	s->subs = n;
	s->subs[s->nsubs] = strdup(uri);
	if (s->subs[s->nsubs] == NULL)
		return -1;
	s->nsubs++;
	return 0;
}

void
session_unsubscribe(struct session *s, const char *uri)
{
	for (size_t i = 0; i < s->nsubs; i++) {
		if (strcmp(s->subs[i], uri) == 0) {
			free(s->subs[i]);
			s->subs[i] = s->subs[--s->nsubs];
			return;
		}
	}
}

/* ---- streams ---- */

static void
hist_add(struct session *s, unsigned stream, uint64_t seq, const char *json)
{
	if (s->hist_cap == 0)
		return;
	size_t total = 0;
	for (size_t i = 0; i < s->hist_len; i++)
		total += s->hist[(s->hist_start + i) % s->hist_cap].len;
	size_t len = strlen(json);
	while (s->hist_len > 0 && (s->hist_len == s->hist_cap || total + len > HISTORY_BYTES)) {
		struct hist_event *old = &s->hist[s->hist_start];
		total -= old->len;
		free(old->data);
		s->hist_start = (s->hist_start + 1) % s->hist_cap;
		s->hist_len--;
	}
	if (len > HISTORY_BYTES)
		return;
	struct hist_event *e = &s->hist[(s->hist_start + s->hist_len) % s->hist_cap];
	e->stream = stream;
	e->seq = seq;
	e->data = strdup(json);
	e->len = len;
	if (e->data != NULL)
		s->hist_len++;
}

static void
write_event(struct stream *st, uint64_t seq, const char *json)
{
	if (st->req == NULL)
		return;
	st->sent = seq;
	size_t len = strlen(json);
	char *ev = malloc(len + 80);
	if (ev == NULL)
		return;
	int n = snprintf(ev, len + 80, "id: %u-%llu\nevent: message\ndata: %s\n\n", st->no,
	    (unsigned long long)seq, json);
	http_stream_write(st->req, ev, (size_t)n);
	free(ev);
	if (http_stream_pending(st->req) > MAX_PENDING_OUTPUT) {
		log_warn("session %.8s…: client reads too slowly; dropping its stream %u", st->s->id, st->no);
		struct http_request *r = st->req;
		stream_detach(st);
		http_stream_end(r);
	}
}

static void
keepalive_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct stream *st = arg;
	if (st->req != NULL)
		http_stream_write(st->req, ": keep-alive\n\n", 14);
}

static void
req_closed(struct http_request *r, void *arg)
{
	(void)r;
	struct stream *st = arg;
	st->req = NULL;
	event_del(st->keepalive);
	if (st->detached != NULL)
		st->detached(st->detached_arg);
}

static void
attach(struct stream *st, struct http_request *req, int priming)
{
	struct sessions *t = st->s->table;
	st->req = req;
	http_request_on_close(req, req_closed, st);
	http_response_header(req, "Cache-Control", "no-cache");
	http_response_header(req, "X-Accel-Buffering", "no");
	http_stream_begin(req, 200, "text/event-stream");
	char head[96];
	int n;
	if (priming)
		n = snprintf(head, sizeof(head), "id: %u-%llu\nretry: %llu\ndata: \n\n", st->no,
		    (unsigned long long)st->seq, (unsigned long long)t->retry_ms);
	else
		n = snprintf(head, sizeof(head), "retry: %llu\n\n", (unsigned long long)t->retry_ms);
	http_stream_write(req, head, (size_t)n);
	struct timeval tv = { (time_t)(t->keepalive_ms / 1000), (suseconds_t)(t->keepalive_ms % 1000) * 1000 };
	event_add(st->keepalive, &tv);
}

static struct stream *
stream_new(struct session *s, unsigned no)
{
	struct stream *st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NULL;
	st->s = s;
	st->no = no;
	st->keepalive = event_new(s->table->base, -1, EV_PERSIST, keepalive_cb, st);
	if (st->keepalive == NULL) {
		free(st);
		return NULL;
	}
	LIST_INSERT_HEAD(&s->streams, st, link);
	return st;
}

struct stream *
stream_open(struct session *s, struct http_request *req, int priming)
{
	struct stream *st = stream_new(s, s->next_stream++);
	if (st != NULL)
		attach(st, req, priming);
	return st;
}

struct stream *
stream_open_get(struct session *s, struct http_request *req, int priming)
{
	if (s->get_stream == NULL) {
		s->get_stream = stream_new(s, 0);
		if (s->get_stream == NULL)
			return NULL;
	}
	struct stream *st = s->get_stream;
	if (req == NULL)
		return st;   /* created to record messages until the client opens it */
	attach(st, req, priming);
	/* Messages queued while no GET stream was open go out now. */
	uint64_t from = st->sent;
	for (size_t i = 0; i < s->hist_len; i++) {
		struct hist_event *e = &s->hist[(s->hist_start + i) % s->hist_cap];
		if (e->stream == 0 && e->seq > from)
			write_event(st, e->seq, e->data);
	}
	return st;
}

void
stream_send(struct stream *st, const char *json)
{
	st->seq++;
	hist_add(st->s, st->no, st->seq, json);
	write_event(st, st->seq, json);
}

void
stream_detach(struct stream *st)
{
	if (st->req == NULL)
		return;
	http_request_on_close(st->req, NULL, NULL);
	st->req = NULL;
	event_del(st->keepalive);
}

void
stream_finish(struct stream *st)
{
	struct session *s = st->s;
	if (st->req != NULL) {
		struct http_request *r = st->req;
		stream_detach(st);
		http_stream_end(r);
	}
	if (s->get_stream == st)
		s->get_stream = NULL;
	LIST_REMOVE(st, link);
	event_free(st->keepalive);
	free(st);
}

int
stream_resume(struct session *s, const char *last_event_id, struct http_request *req,
    struct stream **attached)
{
	*attached = NULL;
	char *end;
	unsigned long no = strtoul(last_event_id, &end, 10);
	if (end == last_event_id || *end != '-')
		return -1;
	const char *seqs = end + 1;
	unsigned long long seq = strtoull(seqs, &end, 10);
	if (end == seqs || *end != '\0' || no >= s->next_stream)
		return -1;
	struct stream *live = NULL;
	LIST_FOREACH(live, &s->streams, link)
		if (live->no == no)
			break;
	if (live != NULL && live->req != NULL)
		stream_detach(live);   /* the client left it: the new connection takes over */
	struct stream *st = live;
	if (st == NULL) {
		/* Finished already: replay what is left of it, then end. */
		st = stream_new(s, (unsigned)no);
		if (st == NULL)
			return -1;
		st->finished = 1;
	}
	attach(st, req, 0);
	for (size_t i = 0; i < s->hist_len; i++) {
		struct hist_event *e = &s->hist[(s->hist_start + i) % s->hist_cap];
		if (e->stream == no && e->seq > seq)
			write_event(st, e->seq, e->data);
	}
	if (st->finished) {
		stream_finish(st);
		return 0;
	}
	if (no == 0)
		s->get_stream = st;
	*attached = st;
	return 0;
}

/* ---- requests to the client ---- */

int64_t
session_request(struct session *s, const char *method, cJSON *params, struct stream *via,
    pending_cb cb, void *arg)
{
	struct pending_request *p = calloc(1, sizeof(*p));
	if (p == NULL) {
		cJSON_Delete(params);
		return -1;
	}
	p->id = s->next_request_id++;
	p->cb = cb;
	p->arg = arg;
	LIST_INSERT_HEAD(&s->pending, p, link);
	cJSON *id = cJSON_CreateNumber((double)p->id);
	char *msg = jsonrpc_request(id, method, params);
	cJSON_Delete(id);
	if (via == NULL)
		via = s->get_stream;
	if (via == NULL)
		via = s->get_stream = stream_new(s, 0);
	if (via != NULL && msg != NULL)
		stream_send(via, msg);
	free(msg);
	return p->id;
}

int
session_response(struct session *s, const cJSON *id, const cJSON *result, const cJSON *error)
{
	if (!cJSON_IsNumber(id))
		return -1;
	struct pending_request *p;
	LIST_FOREACH(p, &s->pending, link) {
		if ((double)p->id == id->valuedouble) {
			LIST_REMOVE(p, link);
			p->cb(p->arg, result, error);
			free(p);
			return 0;
		}
	}
	return -1;
}

void
session_cancel_pending(struct session *s, void *arg)
{
	struct pending_request *p, *next;
	for (p = LIST_FIRST(&s->pending); p != NULL; p = next) {
		next = LIST_NEXT(p, link);
		if (p->arg == arg) {
			LIST_REMOVE(p, link);
			free(p);
		}
	}
}
