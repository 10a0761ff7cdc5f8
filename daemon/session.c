#include "session.h"
#include "http.h"
#include "json.h"
#include "jsonrpc.h"
#include "log.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define BUCKETS 16384
#define CACHE_IDLE_MS 60000         /* unused cached records are dropped after this */
#define REPLAY_MAX 10000

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

struct held_msg {               /* toclient: events that came during a replay */
	uint64_t seq;
	int final;
	char *json;
	struct held_msg *next;
};

#define GONE_SLOTS 64
#define GONE_MS 30000

struct sessions {
	struct event_base *base;
	struct backends b;
	size_t max, history;
	size_t stream_buffer;       /* a stream's messages waiting for storage, in bytes */
	uint64_t idle_ms, keepalive_ms, retry_ms;
	struct session *buckets[BUCKETS];
	TAILQ_HEAD(, session) all;
	size_t count;
	struct event *sweep;
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
	/* Sessions deleted lately: a deletion can be heard before the reply
	 * of a lookup that read the record just before it. */
	struct {
		char id[48];
		uint64_t at;
	} gone[GONE_SLOTS];
	unsigned gone_next;
};

struct replay {
	struct session *s;
	struct http_request *req;   /* NULL once the client left */
	struct stream *st;          /* the holder, made before the storage read */
	char id[32];
	uint64_t after;
	int fresh, priming;
};

struct lost_check;

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

static void stream_free(struct stream *st);
static void pending_free(struct pending_request *p);
static void write_event(struct stream *st, uint64_t seq, const char *json);
static void evict(struct session *s);
static struct stream_x *sx(struct stream *st);
static void stream_ping(struct stream *st);
static void lost_check_start(struct stream *st);
static void held_free(struct stream *st);

static uint64_t
now_ms(void)
{
	return monotonic_ms();
}

static unsigned
hash(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % BUCKETS;
}

static void
key_of(char *buf, size_t len, const char *prefix, const char *id)
{
	snprintf(buf, len, "%s%s", prefix, id);
}

/* ---- the record ---- */

/* The index of a principal's sessions, for listing and revoking them. A
 * name too long for the key is replaced by its SHA-256 under another
 * prefix: a cut name could share the index of another principal. */
#define INDEX_KEY_MAX 256

static const char *
user_index_key(const char *user, char *buf, size_t len)
{
	if ((size_t)snprintf(buf, len, "user:%s:sessions", user) < len)
		return buf;
	unsigned char h[EVP_MAX_MD_SIZE];
	unsigned int hl = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1] = "";
	if (EVP_Digest(user, strlen(user), h, &hl, EVP_sha256(), NULL) != 1)
		hl = 0;
	for (unsigned int i = 0; i < hl; i++)
		snprintf(hex + 2 * i, 3, "%02x", h[i]);
	snprintf(buf, len, "user#%s:sessions", hex);
	return buf;
}

static const char *
index_key(const struct session *s, char *buf, size_t len)
{
	return user_index_key(s->owner ? s->owner : "anonymous", buf, len);
}

static char *
record_json(const struct session *s)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddNumberToObject(r, "p", s->proto);
	cJSON_AddItemToObject(r, "c", s->client_caps ? cJSON_Duplicate(s->client_caps, 1) : cJSON_CreateObject());
	if (s->client_info != NULL)
		cJSON_AddItemToObject(r, "i", cJSON_Duplicate(s->client_info, 1));
	cJSON_AddNumberToObject(r, "l", s->log_level);
	if (s->owner != NULL)
		cJSON_AddStringToObject(r, "o", s->owner);
	cJSON *subs = cJSON_AddArrayToObject(r, "s");
	for (size_t i = 0; i < s->nsubs; i++)
		cJSON_AddItemToArray(subs, cJSON_CreateString(s->subs[i]));
	char *out = json_print(r);
	cJSON_Delete(r);
	return out;
}

static void
clear_subs(struct session *s)
{
	for (size_t i = 0; i < s->nsubs; i++)
		free(s->subs[i]);
	free(s->subs);
	s->subs = NULL;
	s->nsubs = 0;
}

static void
record_remember(struct session *s, const char *json, size_t len)
{
	char *copy = malloc(len + 1);
	if (copy == NULL)
		return;
	memcpy(copy, json, len);
	copy[len] = '\0';
	free(s->record);
	s->record = copy;
	s->record_len = len;
}

static int
record_apply(struct session *s, const char *json, size_t len)
{
	/* Read on every request: most of the time it is what we have. */
	if (s->record != NULL && len == s->record_len && memcmp(json, s->record, len) == 0)
		return 0;
	cJSON *r = json_parse(json, len, 0, NULL);
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(r, "p");
	if (!cJSON_IsObject(r) || !cJSON_IsNumber(p) || p->valueint < 0 || p->valueint >= PROTO_COUNT) {
		cJSON_Delete(r);
		return -1;
	}
	s->proto = (enum proto)p->valueint;
	cJSON_Delete(s->client_caps);
	s->client_caps = cJSON_DetachItemFromObjectCaseSensitive(r, "c");
	cJSON_Delete(s->client_info);
	s->client_info = cJSON_DetachItemFromObjectCaseSensitive(r, "i");
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(r, "l");
	s->log_level = cJSON_IsNumber(l) ? l->valueint : MLOG_INFO;
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(r, "o");
	free(s->owner);
	s->owner = cJSON_IsString(o) ? strdup(o->valuestring) : NULL;
	clear_subs(s);
	const cJSON *u;
	cJSON_ArrayForEach(u, cJSON_GetObjectItemCaseSensitive(r, "s"))
		if (cJSON_IsString(u))
			session_subscribe(s, u->valuestring);
	cJSON_Delete(r);
	record_remember(s, json, len);
	return 0;
}

/* ---- the cache ---- */

static struct session *
cache_find(struct sessions *t, const char *id)
{
	for (struct session *s = t->buckets[hash(id)]; s != NULL; s = s->hnext)
		if (strcmp(s->id, id) == 0)
			return s;
	return NULL;
}

static struct session *
cache_add(struct sessions *t, const char *id)
{
	struct session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	snprintf(s->id, sizeof(s->id), "%s", id);
	s->table = t;
	s->log_level = MLOG_INFO;
	s->used_ms = s->touched_ms = now_ms();
	LIST_INIT(&s->streams);
	LIST_INIT(&s->pending);
	unsigned h = hash(s->id);
	s->hnext = t->buckets[h];
	t->buckets[h] = s;
	TAILQ_INSERT_TAIL(&t->all, s, lru);
	t->count++;
	return s;
}

static void
cache_remove(struct session *s)
{
	struct sessions *t = s->table;
	struct session **pp = &t->buckets[hash(s->id)];
	while (*pp != NULL && *pp != s)
		pp = &(*pp)->hnext;
	if (*pp == s) {
		*pp = s->hnext;
		TAILQ_REMOVE(&t->all, s, lru);
		t->count--;
	}
}

static void
session_free(struct session *s)
{
	free(s->record);
	free(s->owner);
	clear_subs(s);
	cJSON_Delete(s->client_info);
	cJSON_Delete(s->client_caps);
	free(s);
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

static int
busy(const struct session *s)
{
	return s->refs > 0 || !LIST_EMPTY(&s->streams) || !LIST_EMPTY(&s->pending) || s->calls > 0;
}

/* Drop a cached record that nothing here uses; it stays in storage. */
static void
cache_drop(struct session *s)
{
	cache_remove(s);
	s->deleted = 1;
	if (s->refs == 0)
		session_free(s);
}

/* ---- transport helpers ---- */

static void
publish(struct sessions *t, const char *channel, const char *msg, size_t len)
{
	if (t->b.transport == NULL)
		return;
	t->b.transport->publish(t->b.transport_inst, channel, msg, len, NULL, NULL, NULL);
}

static void *
subscribe(struct sessions *t, const char *channel, mcpd_message_cb *cb, void *arg)
{
	if (t->b.transport == NULL)
		return NULL;
	return t->b.transport->subscribe(t->b.transport_inst, channel, cb, arg);
}

static void
unsubscribe(struct sessions *t, void *sub)
{
	if (sub != NULL && t->b.transport != NULL)
		t->b.transport->unsubscribe(t->b.transport_inst, sub);
}

/* ---- global channels ---- */

static void
sessions_msg(void *arg, const char *channel, const void *msg, size_t len)
{
	(void)channel;
	struct sessions *t = arg;
	char *m = strndup(msg, len);
	if (m == NULL)
		return;
	char *id = strchr(m, '\n');
	if (id != NULL) {
		*id++ = '\0';
		char *rec = strchr(id, '\n');
		if (rec != NULL)
			*rec++ = '\0';
		struct session *s = cache_find(t, id);
		if (strcmp(m, "d") == 0) {
			snprintf(t->gone[t->gone_next].id, sizeof(t->gone[0].id), "%s", id);
			t->gone[t->gone_next].at = now_ms();
			t->gone_next = (t->gone_next + 1) % GONE_SLOTS;
		}
		if (s != NULL && strcmp(m, "d") == 0)
			evict(s);
		else if (s != NULL && strcmp(m, "c") == 0 && rec != NULL)
			record_apply(s, rec, strlen(rec));
	}
	free(m);
}

static void
changes_msg(void *arg, const char *channel, const void *msg, size_t len)
{
	(void)channel;
	struct sessions *t = arg;
	char *m = strndup(msg, len);
	if (m == NULL)
		return;
	char *uri = strchr(m, '\n');
	if (uri != NULL)
		*uri++ = '\0';
	if (t->on_change != NULL)
		t->on_change(m, uri && *uri ? uri : NULL, t->on_change_arg);
	free(m);
}

void
sessions_publish_change(struct sessions *t, const char *what, const char *uri)
{
	char msg[4200];
	int n = snprintf(msg, sizeof(msg), "%s\n%s", what, uri ? uri : "");
	if (n > 0 && (size_t)n < sizeof(msg))
		publish(t, "mcpd:changes", msg, (size_t)n);
}

/* ---- table ---- */

static void
sweep_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct sessions *t = arg;
	uint64_t now = now_ms();
	struct session *s, *next;
	for (s = TAILQ_FIRST(&t->all); s != NULL; s = next) {
		next = TAILQ_NEXT(s, lru);
		int attached = 0;
		struct stream *st;
		LIST_FOREACH(st, &s->streams, link)
			attached |= st->req != NULL;
		if (attached || s->calls > 0) {
			s->used_ms = now;
			session_touch(s);   /* a held stream or a running call is activity */
			continue;
		}
		if (s->control_sub != NULL) {
			unsubscribe(t, s->control_sub);
			s->control_sub = NULL;
		}
		if (!busy(s) && (now - s->used_ms > CACHE_IDLE_MS || t->count > t->max))
			cache_drop(s);
	}
}

struct sessions *
sessions_new(struct event_base *base, const struct backends *b, size_t max, size_t history,
    uint64_t idle_ms, uint64_t keepalive_ms, uint64_t retry_ms, size_t stream_buffer)
{
	struct sessions *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->base = base;
	t->b = *b;
	t->max = max;
	t->history = history ? history : 1;
	t->idle_ms = idle_ms;
	t->keepalive_ms = keepalive_ms;
	t->retry_ms = retry_ms;
	t->stream_buffer = stream_buffer;
	t->pid = (int)getpid();
	uint64_t r[2] = { 0, 0 };
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r[0] = r[1] = now_ms() ^ ((uint64_t)t->pid << 32);
	t->next_stream = r[0] >> 16;        /* 48 bits: ids stay short */
	t->next_request = r[1] >> 16;
	TAILQ_INIT(&t->all);
	t->sweep = event_new(base, -1, EV_PERSIST, sweep_cb, t);
	struct timeval tv = { 5, 0 };
	if (t->sweep == NULL) {
		free(t);
		return NULL;
	}
	event_add(t->sweep, &tv);
	t->sessions_sub = subscribe(t, "mcpd:sessions", sessions_msg, t);
	t->changes_sub = subscribe(t, "mcpd:changes", changes_msg, t);
	return t;
}

void
sessions_free(struct sessions *t)
{
	if (t == NULL)
		return;
	t->on_delete = NULL;
	while (!TAILQ_EMPTY(&t->all)) {
		struct session *s = TAILQ_FIRST(&t->all);
		s->refs++;          /* evict frees only what nothing else holds */
		evict(s);
		s->refs = 0;
		session_free(s);
	}
	unsubscribe(t, t->sessions_sub);
	unsubscribe(t, t->changes_sub);
	event_free(t->sweep);
	free(t);
}

void
sessions_on_delete(struct sessions *t, void (*fn)(struct session *, void *), void *arg)
{
	t->on_delete = fn;
	t->on_delete_arg = arg;
}

void
sessions_on_cancel(struct sessions *t, void (*fn)(struct session *, const cJSON *, void *), void *arg)
{
	t->on_cancel = fn;
	t->on_cancel_arg = arg;
}

void
sessions_on_change(struct sessions *t, void (*fn)(const char *, const char *, void *), void *arg)
{
	t->on_change = fn;
	t->on_change_arg = arg;
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

/* ---- create, lookup, save, delete ---- */

struct op {
	struct sessions *t;
	struct session *s;
	char id[48];
	session_cb cb;
	void *arg;
};

static void
created(void *arg, int status, const char *err)
{
	struct op *o = arg;
	struct session *s = o->s;
	if (status != MCPD_OK) {
		log_error("storage: cannot store a new session: %s", err ? err : "conflict");
		session_unref(s);     /* the creation's reference; s was never cached */
		o->cb(o->arg, NULL, MCPD_ERROR);
		free(o);
		return;
	}
	struct sessions *t = o->t;
	struct session *c = cache_add(t, s->id);
	if (c == NULL) {
		session_unref(s);
		o->cb(o->arg, NULL, MCPD_ERROR);
		free(o);
		return;
	}
	c->proto = s->proto;
	c->client_caps = s->client_caps;
	c->client_info = s->client_info;
	c->log_level = s->log_level;
	c->owner = s->owner;
	s->owner = NULL;
	s->client_caps = s->client_info = NULL;
	session_unref(s);
	char ik[INDEX_KEY_MAX];
	if (t->b.storage->index_add != NULL)
		t->b.storage->index_add(t->b.storage_inst, index_key(c, ik, sizeof(ik)), c->id, t->idle_ms, NULL, NULL);
	o->cb(o->arg, c, MCPD_OK);
	free(o);
}

void
session_create(struct sessions *t, enum proto proto, const cJSON *caps, const cJSON *info,
    const char *owner, session_cb cb, void *arg)
{
	/* A detached object until storage has it; then cached under its id. */
	struct session *s = calloc(1, sizeof(*s));
	struct op *o = calloc(1, sizeof(*o));
	if (s == NULL || o == NULL || random_token(s->id, 24) < 0) {   /* 192 random bits */
		free(s);
		free(o);
		cb(arg, NULL, MCPD_ERROR);
		return;
	}
	s->table = t;
	s->proto = proto;
	s->log_level = MLOG_INFO;
	s->client_caps = caps ? cJSON_Duplicate(caps, 1) : cJSON_CreateObject();
	s->client_info = info ? cJSON_Duplicate(info, 1) : NULL;
	s->owner = owner ? strdup(owner) : NULL;
	s->refs = 1;
	s->deleted = 1;
	LIST_INIT(&s->streams);
	LIST_INIT(&s->pending);
	o->t = t;
	o->s = s;
	o->cb = cb;
	o->arg = arg;
	char key[96], *rec = record_json(s);
	key_of(key, sizeof(key), "session:", s->id);
	t->b.storage->set(t->b.storage_inst, key, rec, strlen(rec), t->idle_ms, MCPD_SET_IF_ABSENT, created, o);
	free(rec);
}

static int
recently_deleted(const struct sessions *t, const char *id)
{
	uint64_t now = now_ms();
	for (size_t i = 0; i < GONE_SLOTS; i++)
		if (t->gone[i].at != 0 && now - t->gone[i].at < GONE_MS && strcmp(t->gone[i].id, id) == 0)
			return 1;
	return 0;
}

static void
looked_up(void *arg, int status, const void *value, size_t len, const char *err)
{
	struct op *o = arg;
	struct sessions *t = o->t;
	struct session *s = cache_find(t, o->id);
	if (status == MCPD_OK && recently_deleted(t, o->id))
		status = MCPD_NOT_FOUND;
	if (status == MCPD_OK) {
		if (s == NULL)
			s = cache_add(t, o->id);
		if (s == NULL || record_apply(s, value, len) < 0) {
			if (s != NULL)
				log_error("storage: session %.8s… has an unreadable record", o->id);
			o->cb(o->arg, NULL, MCPD_ERROR);
		} else {
			s->used_ms = now_ms();
			o->cb(o->arg, s, MCPD_OK);
		}
	} else if (status == MCPD_NOT_FOUND) {
		if (s != NULL)
			evict(s);   /* expired or deleted elsewhere */
		o->cb(o->arg, NULL, MCPD_NOT_FOUND);
	} else {
		log_error("storage: reading session %.8s…: %s", o->id, err ? err : "failed");
		o->cb(o->arg, NULL, MCPD_ERROR);
	}
	free(o);
}

void
session_lookup(struct sessions *t, const char *id, session_cb cb, void *arg)
{
	if (strlen(id) >= sizeof(((struct session *)0)->id)) {
		cb(arg, NULL, MCPD_NOT_FOUND);
		return;
	}
	/* Always from storage (a local read with lmdb): a cached copy could
	 * outlive a DELETE made on another worker by the time the relay
	 * takes, and a deleted session must never be served. */
	struct op *o = calloc(1, sizeof(*o));
	if (o == NULL) {
		cb(arg, NULL, MCPD_ERROR);
		return;
	}
	o->t = t;
	snprintf(o->id, sizeof(o->id), "%s", id);
	o->cb = cb;
	o->arg = arg;
	char key[96];
	key_of(key, sizeof(key), "session:", id);
	t->b.storage->get(t->b.storage_inst, key, looked_up, o);
}

static void
store_record(struct session *s, int announce)
{
	struct sessions *t = s->table;
	char key[96], *rec = record_json(s);
	if (rec == NULL)
		return;
	key_of(key, sizeof(key), "session:", s->id);
	t->b.storage->set(t->b.storage_inst, key, rec, strlen(rec), t->idle_ms, MCPD_SET_IF_PRESENT, NULL, NULL);
	/* The index entry lives as long as the record. */
	char ik[INDEX_KEY_MAX];
	if (t->b.storage->index_add != NULL)
		t->b.storage->index_add(t->b.storage_inst, index_key(s, ik, sizeof(ik)), s->id, t->idle_ms, NULL, NULL);
	record_remember(s, rec, strlen(rec));
	s->touched_ms = now_ms();
	if (announce) {
		size_t n = strlen(rec) + strlen(s->id) + 4;
		char *msg = malloc(n);
		if (msg != NULL) {
			int l = snprintf(msg, n, "c\n%s\n%s", s->id, rec);
			publish(t, "mcpd:sessions", msg, (size_t)l);
			free(msg);
		}
	}
	free(rec);
}

void
session_touch(struct session *s)
{
	uint64_t now = now_ms();
	s->used_ms = now;
	uint64_t every = s->table->idle_ms / 4 < 30000 ? s->table->idle_ms / 4 : 30000;
	if (!s->deleted && now - s->touched_ms >= every)
		store_record(s, 0);
}

void
session_save(struct session *s)
{
	if (!s->deleted)
		store_record(s, 1);
}

/* Forget the session here: its calls stop, streams end, questions fail. */
static void
evict(struct session *s)
{
	struct sessions *t = s->table;
	if (s->deleted)
		return;
	cache_remove(s);
	s->deleted = 1;
	session_ref(s);
	if (t->on_delete != NULL)
		t->on_delete(s, t->on_delete_arg);
	while (!LIST_EMPTY(&s->pending)) {
		struct pending_request *p = LIST_FIRST(&s->pending);
		pending_cb cb = p->cb;
		void *arg = p->arg;
		pending_free(p);
		cJSON *err = cJSON_CreateObject();
		cJSON_AddNumberToObject(err, "code", JSONRPC_INTERNAL_ERROR);
		cJSON_AddStringToObject(err, "message", "session ended");
		cb(arg, NULL, err);
		cJSON_Delete(err);
	}
	while (!LIST_EMPTY(&s->streams))
		stream_finish(LIST_FIRST(&s->streams), NULL);
	unsubscribe(t, s->control_sub);
	unsubscribe(t, s->toclient_sub);
	s->control_sub = s->toclient_sub = NULL;
	session_unref(s);
}

struct deleting {
	struct sessions *t;
	session_deleted_fn *done;
	void *arg;
	char id[64];
};

/* The record is gone from storage: only now may the other workers and
 * instances forget it, and the client hear that it ended; told earlier,
 * one of them could read the record back before the delete lands (with
 * storage whose connections are per worker, such as postgres). */
static void
record_deleted(void *arg, int status, const char *err)
{
	struct deleting *d = arg;
	char msg[80];
	int n = snprintf(msg, sizeof(msg), "d\n%s", d->id);
	publish(d->t, "mcpd:sessions", msg, (size_t)n);
	if (status == MCPD_ERROR)
		log_warn("session %.8s…: storage did not delete its record: %s", d->id, err ? err : "error");
	if (d->done != NULL)
		d->done(d->arg, status != MCPD_ERROR);
	free(d);
}

void
session_delete_then(struct session *s, session_deleted_fn *done, void *arg)
{
	struct sessions *t = s->table;
	if (s->deleted) {
		if (done != NULL)
			done(arg, 1);
		return;
	}
	char key[96];
	/* What a resumption would read goes with it (del drops a log too). */
	key_of(key, sizeof(key), "events:", s->id);
	t->b.storage->del(t->b.storage_inst, key, NULL, NULL);
	key_of(key, sizeof(key), "gsent:", s->id);
	t->b.storage->del(t->b.storage_inst, key, NULL, NULL);
	char ik[INDEX_KEY_MAX];
	if (t->b.storage->index_remove != NULL)
		t->b.storage->index_remove(t->b.storage_inst, index_key(s, ik, sizeof(ik)), s->id, NULL, NULL);
	key_of(key, sizeof(key), "session:", s->id);
	struct deleting *d = calloc(1, sizeof(*d));
	if (d == NULL) {
		/* Still delete it; the others learn when their cache entry lapses. */
		t->b.storage->del(t->b.storage_inst, key, NULL, NULL);
		if (done != NULL)
			done(arg, 1);
	} else {
		d->t = t;
		d->done = done;
		d->arg = arg;
		snprintf(d->id, sizeof(d->id), "%s", s->id);
		t->b.storage->del(t->b.storage_inst, key, record_deleted, d);
	}
	evict(s);
}

void
session_delete(struct session *s)
{
	session_delete_then(s, NULL, NULL);
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

/* ---- cancellations ---- */

static void
control_msg(void *arg, const char *channel, const void *msg, size_t len)
{
	(void)channel;
	struct session *s = arg;
	cJSON *m = json_parse(msg, len, 0, NULL);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "cancel");
	if (id != NULL && s->table->on_cancel != NULL)
		s->table->on_cancel(s, id, s->table->on_cancel_arg);
	cJSON_Delete(m);
}

void
session_calls_begin(struct session *s)
{
	if (s->calls++ == 0 && s->control_sub == NULL && !s->deleted) {
		char ch[96];
		key_of(ch, sizeof(ch), "control:", s->id);
		s->control_sub = subscribe(s->table, ch, control_msg, s);
	}
}

/* The subscription outlives the calls a little (the sweep drops it): a
 * session that runs one command after another keeps one subscription. */
void
session_calls_end(struct session *s)
{
	if (s->calls > 0)
		s->calls--;
}

void
session_publish_cancel(struct session *s, const cJSON *request_id)
{
	cJSON *m = cJSON_CreateObject();
	cJSON_AddItemToObject(m, "cancel", cJSON_Duplicate(request_id, 1));
	char *txt = json_print(m);
	cJSON_Delete(m);
	char ch[96];
	key_of(ch, sizeof(ch), "control:", s->id);
	if (txt != NULL)
		publish(s->table, ch, txt, strlen(txt));
	free(txt);
}

/* ---- streams ---- */

/* A request's stream, as opposed to the GET stream "g". */
static int
request_stream(const struct stream *st)
{
	return strcmp(st->id, "g") != 0;
}

/* Every keepalive period while it lives. A request's stream tells
 * whoever resumed it elsewhere that its request is still running; a
 * resumed one that has heard nothing of its request for LOST_AFTER
 * periods looks in the log for the end (see lost_read). */
#define LOST_AFTER 3

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

static void
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

static struct stream *
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

static struct stream_x *
sx(struct stream *st)
{
	return (struct stream_x *)(st + 1);
}

static void
toclient_msg(void *arg, const char *channel, const void *msg, size_t len);

static void
toclient_use(struct session *s)
{
	if (s->toclient_users++ == 0 && !s->deleted) {
		char ch[96];
		key_of(ch, sizeof(ch), "toclient:", s->id);
		s->toclient_sub = subscribe(s->table, ch, toclient_msg, s);
	}
}

static void
toclient_release(struct session *s)
{
	if (s->toclient_users > 0 && --s->toclient_users == 0) {
		unsubscribe(s->table, s->toclient_sub);
		s->toclient_sub = NULL;
	}
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

static void
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

static void
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

/* The worker here that holds (writes) stream id for the client. */
static struct stream *
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

/* ---- GET streams and resumption ---- */

static void
held_free(struct stream *st)
{
	struct stream_x *x = sx(st);
	while (x->held != NULL) {
		struct held_msg *h = x->held;
		x->held = h->next;
		free(h->json);
		free(h);
	}
	x->held_tail = &x->held;
	x->held_bytes = 0;
}

static void
hold_or_write(struct stream *st, uint64_t seq, int final, const char *json)
{
	struct stream_x *x = sx(st);
	if (x->replaying) {
		/* Kept for after the replay, up to limits.stream_buffer: past
		 * that they are let go (they are in the log) and the stream
		 * closes once the replay is out, for the client to resume from
		 * there, as any stream the client cannot keep up with. */
		if (x->held_over)
			return;
		if (x->held_bytes > st->s->table->stream_buffer) {
			log_warn("session %.8s…: stream %s: more than limits.stream_buffer (%zu bytes) came "
			    "while its replay was read from storage; it will close after the replay, "
			    "for the client to resume", st->s->id, st->id, st->s->table->stream_buffer);
			held_free(st);
			x->held_over = 1;
			return;
		}
		struct held_msg *h = calloc(1, sizeof(*h));
		if (h == NULL || (h->json = strdup(json)) == NULL) {
			free(h);
			return;
		}
		h->seq = seq;
		h->final = final;
		if (x->held_tail == NULL)
			x->held_tail = &x->held;
		*x->held_tail = h;
		x->held_tail = &h->next;
		x->held_bytes += strlen(json);
		return;
	}
	if (seq != 0 && seq <= st->sent)
		return;     /* already written by the replay */
	write_event(st, seq, json);
	if (final)
		stream_free(st);
}

static void
toclient_msg(void *arg, const char *channel, const void *msg, size_t len)
{
	(void)channel;
	struct session *s = arg;
	char *m = strndup(msg, len);
	if (m == NULL)
		return;
	char *p1 = strchr(m, '\n'), *p2 = p1 ? strchr(p1 + 1, '\n') : NULL;
	char *p3 = p2 ? strchr(p2 + 1, '\n') : NULL;
	if (p3 != NULL) {
		*p1 = *p2 = *p3 = '\0';
		struct stream *st;
		LIST_FOREACH(st, &s->streams, link)
			if (st->holder && strcmp(st->id, m) == 0 && (st->req != NULL || sx(st)->replaying))
				break;
		int kind = atoi(p2 + 1);
		if (st != NULL)
			sx(st)->heard_ms = now_ms();
		if (st != NULL && kind != 3)    /* 3: the request is still running */
			hold_or_write(st, strtoull(p1 + 1, NULL, 10), kind, p3 + 1);
	}
	free(m);
}


static void
replay_req_closed(struct http_request *r, void *arg)
{
	(void)r;
	struct replay *rp = arg;
	rp->req = NULL;
}

static void
replay_free(struct replay *rp)
{
	if (rp->st != NULL) {
		sx(rp->st)->replay = NULL;
		if (rp->st->req == NULL)
			stream_free(rp->st);
	}
	session_unref(rp->s);
	free(rp);
}

static void
respond_bad_id(struct http_request *r)
{
	char *json = jsonrpc_error(NULL, JSONRPC_INVALID_REQUEST, "Bad Request: unknown Last-Event-ID", NULL);
	http_request_on_close(r, NULL, NULL);
	if (json != NULL)
		http_respond(r, 400, "application/json", json, strlen(json));
	else
		http_respond_text(r, 400, "unknown Last-Event-ID");
	free(json);
}

/* Split an entry: stream id, kind (0 event, 1 last, 2 start), data. */
static int
entry_parse(const struct mcpd_log_entry *e, const char **id, size_t *idlen, int *kind,
    const char **data, size_t *dlen)
{
	const char *d = e->data;
	const char *nl1 = memchr(d, '\n', e->len);
	const char *nl2 = nl1 ? memchr(nl1 + 1, '\n', e->len - (size_t)(nl1 + 1 - d)) : NULL;
	if (nl2 == NULL)
		return -1;
	*id = d;
	*idlen = (size_t)(nl1 - d);
	*kind = nl1[1] - '0';
	*data = nl2 + 1;
	*dlen = e->len - (size_t)(nl2 + 1 - d);
	return 0;
}

static void
replayed(void *arg, int status, const struct mcpd_log_entry *e, size_t n, const char *err)
{
	struct replay *rp = arg;
	struct stream *st = rp->st;
	if (status != MCPD_OK)
		log_warn("storage: replaying events: %s", err ? err : "failed");
	if (rp->req == NULL) {
		replay_free(rp);
		return;
	}
	if (st == NULL) {
		/* The session ended while storage answered. */
		char *json = jsonrpc_error(NULL, -32001, "Session not found", NULL);
		http_request_on_close(rp->req, NULL, NULL);
		if (json != NULL)
			http_respond(rp->req, 404, "application/json", json, strlen(json));
		else
			http_respond_text(rp->req, 404, "session not found");
		free(json);
		replay_free(rp);
		return;
	}
	size_t il = strlen(rp->id);
	/* A resumed id must name an event of that stream, or its start. The
	 * GET stream's start is the position it was opened at: 0, or an
	 * event of its own, or one older than the log keeps. */
	if (!rp->fresh && status == MCPD_OK) {
		int get = strcmp(rp->id, "g") == 0;
		int known = get && (rp->after == 0 || (n > 0 && e[0].seq > rp->after));
		for (size_t i = 0; i < n && !known; i++) {
			const char *id, *data;
			size_t idl, dl;
			int kind;
			if (entry_parse(&e[i], &id, &idl, &kind, &data, &dl) == 0 && idl == il &&
			    memcmp(id, rp->id, il) == 0 && e[i].seq == rp->after)
				known = 1;
		}
		if (!known) {
			respond_bad_id(rp->req);
			replay_free(rp);
			return;
		}
	}
	/* A request's stream of ours whose client left: the new connection
	 * takes it. (Not the sender of the GET stream's events, which has
	 * no client: the GET stream is always a holder, which records what
	 * it delivered in gsent.) */
	struct stream *own;
	LIST_FOREACH(own, &rp->s->streams, link)
		if (!own->holder && own->req == NULL && !own->finished && request_stream(own) &&
		    strcmp(own->id, rp->id) == 0)
			break;
	if (own != NULL) {
		stream_free(st);
		rp->st = st = own;
	}
	sx(st)->replay = NULL;
	/* Where the client is: the priming event of a fresh GET stream gets
	 * this position as its id, so that it can be resumed from. */
	st->sent = rp->after;
	attach(st, rp->req, rp->fresh && rp->priming);
	sx(st)->heard_ms = now_ms();
	int final = 0;
	for (size_t i = 0; i < n && !final; i++) {
		const char *id, *data;
		size_t idl, dl;
		int kind;
		if (entry_parse(&e[i], &id, &idl, &kind, &data, &dl) < 0 || idl != il ||
		    memcmp(id, rp->id, il) != 0 || kind == 2)
			continue;
		if (e[i].seq <= st->sent) {
			final = kind == 1;      /* resumed after its last event: nothing more */
			continue;
		}
		char *json = strndup(data, dl);
		if (json != NULL)
			write_event(st, e[i].seq, json);
		free(json);
		final = kind == 1;
	}
	sx(st)->replaying = 0;
	/* What came meanwhile, in order, without what the replay wrote. */
	while (sx(st)->held != NULL) {
		struct held_msg *h = sx(st)->held;
		sx(st)->held = h->next;
		if (!final && (h->seq == 0 || h->seq > st->sent)) {
			write_event(st, h->seq, h->json);
			final = h->final;
		}
		free(h->json);
		free(h);
	}
	sx(st)->held_tail = &sx(st)->held;
	sx(st)->held_bytes = 0;
	int cut = sx(st)->held_over && !final && !st->finished;
	sx(st)->held_over = 0;
	rp->st = NULL;
	session_unref(rp->s);
	free(rp);
	if (final || st->finished)
		stream_free(st);
	else if (cut && st->req != NULL)
		http_stream_cut(st->req, "replay overtaken");   /* req_closed follows */
}

/* A resumed stream has heard nothing of its request for a while: the
 * worker that ran it is gone (killed), or it ended there without an
 * answer. What the log has of the stream, from its start, tells. */
static void lost_read(void *arg, int status, const struct mcpd_log_entry *e, size_t n, const char *err);

static void
lost_check_start(struct stream *st)
{
	struct sessions *t = st->s->table;
	struct lost_check *lc = calloc(1, sizeof(*lc));
	if (lc == NULL)
		return;
	lc->st = st;
	sx(st)->check = lc;
	char log[96];
	key_of(log, sizeof(log), "events:", st->s->id);
	t->b.storage->log_range(t->b.storage_inst, log, 0, REPLAY_MAX, lost_read, lc);
}

static void
lost_recorded(void *arg, int status, int64_t seq, const char *err)
{
	struct lost_check *lc = arg;
	struct stream *st = lc->st;
	if (st != NULL) {
		sx(st)->check = NULL;
		if (status != MCPD_OK)
			log_warn("storage: the end of a lost request not kept: %s", err ? err : "failed");
		write_event(st, status == MCPD_OK ? (uint64_t)seq : 0, lc->json);
		stream_free(st);
	}
	free(lc->json);
	free(lc);
}

/* Record json as the stream's last event, then send it and end. */
static void
record_lost(struct stream *st, char *json)
{
	struct sessions *t = st->s->table;
	struct lost_check *lc = calloc(1, sizeof(*lc));
	size_t len = strlen(json);
	char *entry = malloc(strlen(st->id) + len + 8);
	if (lc == NULL || entry == NULL) {
		free(lc);
		free(entry);
		write_event(st, 0, json);
		free(json);
		stream_free(st);
		return;
	}
	lc->st = st;
	lc->json = json;
	sx(st)->check = lc;
	int n = sprintf(entry, "%s\n1\n%s", st->id, json);
	char log[96];
	key_of(log, sizeof(log), "events:", st->s->id);
	t->b.storage->log_append(t->b.storage_inst, log, entry, (size_t)n, t->history, t->idle_ms,
	    lost_recorded, lc);
	free(entry);
}

static void
lost_read(void *arg, int status, const struct mcpd_log_entry *e, size_t n, const char *err)
{
	struct lost_check *lc = arg;
	struct stream *st = lc->st;
	free(lc);
	if (st == NULL)
		return;
	sx(st)->check = NULL;
	if (status != MCPD_OK) {
		log_warn("storage: reading events of a resumed stream: %s", err ? err : "failed");
		sx(st)->heard_ms = now_ms();    /* try again later */
		return;
	}
	size_t il = strlen(st->id);
	cJSON *rid = NULL;
	for (size_t i = 0; i < n; i++) {
		const char *id, *data;
		size_t idl, dl;
		int kind;
		if (entry_parse(&e[i], &id, &idl, &kind, &data, &dl) < 0 || idl != il ||
		    memcmp(id, st->id, il) != 0)
			continue;
		if (kind == 2) {
			cJSON_Delete(rid);
			rid = dl > 0 ? json_parse(data, dl, 0, NULL) : NULL;
			continue;
		}
		if (e[i].seq <= st->sent)
			continue;
		/* Recorded, but the word to this worker was lost: the answer
		 * may be among these. */
		char *json = strndup(data, dl);
		if (json != NULL)
			write_event(st, e[i].seq, json);
		free(json);
		if (kind == 1) {
			cJSON_Delete(rid);
			stream_free(st);
			return;
		}
	}
	/* No answer will come: give the client one, kept in the log so that
	 * a later resumption ends at once. */
	log_warn("session %.8s…: stream %s: its request is lost (nothing from it for %llums); "
	    "answering it with an error", st->s->id, st->id,
	    (unsigned long long)(LOST_AFTER * st->s->table->keepalive_ms));
	char *json = cJSON_IsString(rid) || cJSON_IsNumber(rid) ? jsonrpc_error(rid, JSONRPC_INTERNAL_ERROR,
	    "request lost: the process serving it ended before it answered", NULL) : NULL;
	cJSON_Delete(rid);
	if (json == NULL) {
		stream_free(st);    /* an old log without the request id: just end */
		return;
	}
	record_lost(st, json);
}

static void
start_replay(struct replay *rp)
{
	char log[96];
	key_of(log, sizeof(log), "events:", rp->s->id);
	uint64_t from = rp->fresh || rp->after == 0 ? rp->after : rp->after - 1;
	rp->s->table->b.storage->log_range(rp->s->table->b.storage_inst, log, from, REPLAY_MAX, replayed, rp);
}

static void
gsent_read(void *arg, int status, const void *value, size_t len, const char *err)
{
	(void)err;
	struct replay *rp = arg;
	char buf[32] = "0";
	if (status == MCPD_OK && len < sizeof(buf)) {
		memcpy(buf, value, len);
		buf[len] = '\0';
	}
	if (parse_u64(buf, &rp->after) < 0)
		rp->after = 0;
	start_replay(rp);
}

int
stream_get(struct session *s, struct http_request *req, const char *last_event_id, int priming)
{
	struct replay *rp = calloc(1, sizeof(*rp));
	if (rp == NULL)
		return -1;
	snprintf(rp->id, sizeof(rp->id), "g");
	rp->fresh = last_event_id == NULL;
	rp->priming = priming;
	if (last_event_id != NULL) {
		const char *dash = strrchr(last_event_id, '-');
		size_t il = dash ? (size_t)(dash - last_event_id) : 0;
		int ok = dash != NULL && il > 0 && il < sizeof(rp->id) && dash[1] != '\0';
		for (size_t i = 0; ok && i < il; i++) {
			char c = last_event_id[i];
			ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z');
		}
		/* Digits only: strtoull takes a sign or blanks, and wraps. */
		if (ok)
			ok = parse_u64(dash + 1, &rp->after) == 0;
		if (!ok) {
			free(rp);
			return -1;
		}
		memcpy(rp->id, last_event_id, il);
		rp->id[il] = '\0';
	} else if (local_holder(s, "g") != NULL) {
		free(rp);
		return -1;
	}
	/* The holder exists (unattached) from now, so that events published
	 * while storage answers are kept for after the replay. */
	rp->st = stream_new(s, rp->id, 1);
	if (rp->st == NULL) {
		free(rp);
		return -1;
	}
	toclient_use(s);
	sx(rp->st)->replaying = 1;
	sx(rp->st)->replay = rp;
	rp->s = s;
	session_ref(s);
	rp->req = req;
	http_request_on_close(req, replay_req_closed, rp);
	if (rp->fresh) {
		char key[96];
		key_of(key, sizeof(key), "gsent:", s->id);
		s->table->b.storage->get(s->table->b.storage_inst, key, gsent_read, rp);
	} else {
		start_replay(rp);
	}
	return 0;
}

int
session_holds_get(const struct session *s)
{
	return local_holder((struct session *)s, "g") != NULL;
}

struct stream *
session_get_holder(struct session *s)
{
	return local_holder(s, "g");
}

void
session_notify(struct session *s, const char *json)
{
	/* A sender for the GET stream: it numbers events through storage and
	 * hands them to whichever worker holds the stream. */
	struct stream *st;
	LIST_FOREACH(st, &s->streams, link)
		if (!st->holder && strcmp(st->id, "g") == 0)
			break;
	if (st == NULL && (st = stream_new(s, "g", 0)) == NULL)
		return;
	stream_send(st, json);
}

/* ---- requests to the client ---- */

/* An answer reaches the worker that asked over the transport; it is also
 * stored, and the asker looks there now and then, because a message can
 * outrun the subscription made just before the question went out (the
 * transport gives no order between different publishers), or be lost
 * while a pub/sub connection is redone. */
#define ANSWER_TTL_MS (10 * 60 * 1000)
#define ANSWER_POLL_FIRST_MS 20
#define ANSWER_POLL_MAX_MS 2000

static void
answer_key(char *buf, size_t len, const char *sid, const char *qid)
{
	snprintf(buf, len, "answer:%s:%.60s", sid, qid);
}

static void
pending_free(struct pending_request *p)
{
	LIST_REMOVE(p, link);
	unsubscribe(p->s->table, p->sub);
	if (p->poll != NULL)
		event_free(p->poll);
	free(p);
}

/* Delivers the answer message (JSON with result or error) to the asker. */
static void
pending_answered(struct pending_request *p, const void *msg, size_t len)
{
	struct sessions *t = p->s->table;
	char key[200];
	answer_key(key, sizeof(key), p->s->id, p->id);
	t->b.storage->del(t->b.storage_inst, key, NULL, NULL);
	cJSON *m = json_parse(msg, len, 0, NULL);
	pending_cb cb = p->cb;
	void *arg = p->arg;
	pending_free(p);
	cb(arg, cJSON_GetObjectItemCaseSensitive(m, "result"), cJSON_GetObjectItemCaseSensitive(m, "error"));
	cJSON_Delete(m);
}

static void
answer_msg(void *arg, const char *channel, const void *msg, size_t len)
{
	(void)channel;
	pending_answered(arg, msg, len);
}

struct answer_probe {
	struct sessions *t;
	char sid[64];
	char qid[48];
};

static struct pending_request *
pending_find(struct session *s, const char *qid)
{
	struct pending_request *p;
	LIST_FOREACH(p, &s->pending, link)
		if (strcmp(p->id, qid) == 0)
			return p;
	return NULL;
}

static void
answer_probed(void *arg, int status, const void *value, size_t len, const char *err)
{
	(void)err;
	struct answer_probe *pr = arg;
	struct session *s = cache_find(pr->t, pr->sid);
	struct pending_request *p = s != NULL ? pending_find(s, pr->qid) : NULL;
	free(pr);
	if (p == NULL)
		return;         /* answered or given up meanwhile */
	p->probing = 0;
	if (status == MCPD_OK && value != NULL) {
		log_info("session %.8s…: the answer to %s was found in storage, not received", p->s->id, p->id);
		pending_answered(p, value, len);
		return;
	}
	p->poll_ms = p->poll_ms * 2 > ANSWER_POLL_MAX_MS ? ANSWER_POLL_MAX_MS : p->poll_ms * 2;
	struct timeval tv = { p->poll_ms / 1000, (p->poll_ms % 1000) * 1000 };
	evtimer_add(p->poll, &tv);
}

static void
answer_poll_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct pending_request *p = arg;
	struct sessions *t = p->s->table;
	struct answer_probe *pr = calloc(1, sizeof(*pr));
	if (pr == NULL || p->probing) {
		free(pr);
		return;
	}
	pr->t = t;
	snprintf(pr->sid, sizeof(pr->sid), "%s", p->s->id);
	snprintf(pr->qid, sizeof(pr->qid), "%s", p->id);
	char key[200];
	answer_key(key, sizeof(key), p->s->id, p->id);
	p->probing = 1;
	t->b.storage->get(t->b.storage_inst, key, answer_probed, pr);
}

void
session_request(struct session *s, const char *method, cJSON *params, struct stream *via,
    pending_cb cb, void *arg)
{
	struct sessions *t = s->table;
	struct pending_request *p = calloc(1, sizeof(*p));
	if (p == NULL) {
		cJSON_Delete(params);
		return;
	}
	/* Ids unique across workers: the answer may be posted to any of them. */
	snprintf(p->id, sizeof(p->id), "%x.%" PRIx64, t->pid, ++t->next_request);
	p->s = s;
	p->cb = cb;
	p->arg = arg;
	char ch[160];
	snprintf(ch, sizeof(ch), "toserver:%s:%s", s->id, p->id);
	p->sub = subscribe(t, ch, answer_msg, p);
	p->poll = evtimer_new(t->base, answer_poll_cb, p);
	p->poll_ms = ANSWER_POLL_FIRST_MS;
	if (p->poll != NULL) {
		struct timeval tv = { 0, ANSWER_POLL_FIRST_MS * 1000 };
		evtimer_add(p->poll, &tv);
	}
	LIST_INSERT_HEAD(&s->pending, p, link);
	cJSON *id = cJSON_CreateString(p->id);
	char *msg = jsonrpc_request(id, method, params);
	cJSON_Delete(id);
	if (msg != NULL) {
		if (via != NULL)
			stream_send(via, msg);
		else
			session_notify(s, msg);
	}
	free(msg);
}

struct answer_store {
	struct sessions *t;
	char channel[160];
	char *msg;
};

static void
answer_stored(void *arg, int status, const char *err)
{
	(void)status;
	(void)err;
	struct answer_store *as = arg;
	/* Published even if storing failed: the asker may well be listening. */
	publish(as->t, as->channel, as->msg, strlen(as->msg));
	free(as->msg);
	free(as);
}

void
session_response(struct session *s, const cJSON *id, const cJSON *result, const cJSON *error)
{
	if (!cJSON_IsString(id))
		return;
	struct pending_request *p = pending_find(s, id->valuestring);
	if (p != NULL) {
		pending_cb cb = p->cb;
		void *arg = p->arg;
		pending_free(p);
		cb(arg, result, error);
		return;
	}
	/* Awaited on another worker, maybe: store it, then pass it on. */
	cJSON *m = cJSON_CreateObject();
	if (error != NULL)
		cJSON_AddItemToObject(m, "error", cJSON_Duplicate(error, 1));
	else
		cJSON_AddItemToObject(m, "result", result ? cJSON_Duplicate(result, 1) : cJSON_CreateObject());
	char *txt = json_print(m);
	cJSON_Delete(m);
	struct answer_store *as = txt != NULL ? calloc(1, sizeof(*as)) : NULL;
	if (as == NULL) {
		free(txt);
		return;
	}
	as->t = s->table;
	as->msg = txt;
	snprintf(as->channel, sizeof(as->channel), "toserver:%s:%.60s", s->id, id->valuestring);
	char key[200];
	answer_key(key, sizeof(key), s->id, id->valuestring);
	s->table->b.storage->set(s->table->b.storage_inst, key, txt, strlen(txt), ANSWER_TTL_MS, 0,
	    answer_stored, as);
}

void
session_cancel_pending(struct session *s, void *arg)
{
	struct pending_request *p, *next;
	for (p = LIST_FIRST(&s->pending); p != NULL; p = next) {
		next = LIST_NEXT(p, link);
		if (p->arg == arg)
			pending_free(p);
	}
}

/* ---- a principal's sessions, for operators ---- */

struct user_op {
	struct sessions *t;
	char *user;
	int revoke;
	size_t left;
	cJSON *list;
	user_sessions_cb cb;
	void *arg;
};

static void
user_op_free(struct user_op *u)
{
	cJSON_Delete(u->list);
	free(u->user);
	free(u);
}

static void
user_op_done(struct user_op *u)
{
	u->cb(u->arg, MCPD_OK, u->list);
	user_op_free(u);
}

/* The operator hears back once every revoked record is gone. */
static void
user_session_revoked(void *arg, int ok)
{
	struct user_op *u = arg;
	(void)ok;
	if (--u->left == 0)
		user_op_done(u);
}

static void
user_session_found(void *arg, struct session *s, int status)
{
	struct user_op *u = arg;
	(void)status;
	if (s != NULL && s->owner != NULL && strcmp(s->owner, u->user) == 0) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "id", s->id);
		cJSON_AddStringToObject(e, "protocol", proto_names[s->proto]);
		if (s->client_info != NULL)
			cJSON_AddItemToObject(e, "client", cJSON_Duplicate(s->client_info, 1));
		cJSON_AddItemToArray(u->list, e);
		if (u->revoke) {
			log_notice("session %.8s… of %s revoked by an operator", s->id, u->user);
			u->left++;
			session_delete_then(s, user_session_revoked, u);
		}
	}
	if (--u->left == 0)
		user_op_done(u);
}

static void
user_members(void *arg, int status, const char *const *members, size_t n, const char *err)
{
	struct user_op *u = arg;
	(void)err;
	if (status != MCPD_OK && status != MCPD_NOT_FOUND) {
		u->cb(u->arg, MCPD_ERROR, NULL);
		user_op_free(u);
		return;
	}
	if (n == 0 || status == MCPD_NOT_FOUND) {
		user_op_done(u);
		return;
	}
	/* Lookups may answer at once (lmdb): count them all in first. */
	u->left = n + 1;
	for (size_t i = 0; i < n; i++)
		session_lookup(u->t, members[i], user_session_found, u);
	if (--u->left == 0)
		user_op_done(u);
}

void
sessions_of_user(struct sessions *t, const char *user, int revoke, user_sessions_cb cb, void *arg)
{
	struct user_op *u = calloc(1, sizeof(*u));
	if (u == NULL || (u->user = strdup(user)) == NULL || (u->list = cJSON_CreateArray()) == NULL ||
	    t->b.storage->index_members == NULL) {
		if (u != NULL)
			user_op_free(u);
		cb(arg, MCPD_ERROR, NULL);
		return;
	}
	u->t = t;
	u->revoke = revoke;
	u->cb = cb;
	u->arg = arg;
	char ik[INDEX_KEY_MAX];
	user_index_key(user, ik, sizeof(ik));
	t->b.storage->index_members(t->b.storage_inst, ik, user_members, u);
}
