/* Sessions (see session.h): the table of those this worker holds, a cache
 * of their records read from storage on every request, creating, looking
 * up, saving and deleting them, their resource subscriptions, and
 * cancellations for calls running on another worker. Streams are
 * session_stream.c's, resumption session_replay.c's, requests to the
 * client session_request.c's. */
#include "session_internal.h"
#include "metrics.h"
#include "json.h"
#include "jsonrpc.h"
#include "log.h"
#include "relay.h"
#include "sealbox.h"
#include "storage_seal.h"
#include "util.h"

#include <event2/event.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

struct resend;
static void resend_free(struct resend *);

#define CACHE_IDLE_MS 60000         /* unused cached records are dropped after this */

const char *const proto_names[PROTO_COUNT] = {
	"2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28",
};

const char *const mcp_log_level_names[MLOG_COUNT] = {
	"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency",
};

int
proto_parse(const char *s)
{
	/* Newest first: most requests name one of the latest revisions. */
	for (int i = PROTO_COUNT - 1; i >= 0; i--)
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

static void evict(struct session *s);

static unsigned
hash(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % BUCKETS;
}

/* An id as cache_find compares it: its bytes, then zeros to the size of
 * session.id, so that whole words are compared (a cached session's id is
 * zero-padded the same way: cache_add writes it into zeroed memory). */
union id_words {
	char c[sizeof(((struct session *)0)->id)];
	uint64_t w[sizeof(((struct session *)0)->id) / sizeof(uint64_t)];
};
_Static_assert(sizeof(((struct session *)0)->id) % sizeof(uint64_t) == 0, "session.h: id is whole words");

static void
id_words(union id_words *w, const char *id, size_t len)
{
	memset(w, 0, sizeof(*w));
	memcpy(w->c, id, len);
}

/* The bucket of an id, from its words (FNV-1a a word at a time, then
 * folded): a quarter of hash()'s work on the 32 characters of an id. */
static unsigned
id_bucket(const union id_words *w)
{
	uint64_t h = 14695981039346656037u;
	for (size_t i = 0; i < sizeof(w->w) / sizeof(w->w[0]); i++)
		h = (h ^ w->w[i]) * 1099511628211u;
	h ^= h >> 32;
	return (unsigned)(h % BUCKETS);
}

const char *
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

/* Wall-clock time: a record's "w" is read on other hosts too. */
static uint64_t
wall_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A record last written idle_ms ago or more has expired in storage, or
 * will at once: a copy of it (a storage cache's) is not served. Records
 * written before "w" existed carry none and are taken as they come. */
int
record_expired_at(const void *value, size_t len, uint64_t idle_ms, uint64_t now)
{
	static const char w[] = "{\"w\":";
	if (len < sizeof(w) || memcmp(value, w, sizeof(w) - 1) != 0)
		return 0;
	char buf[24];
	size_t n = len - (sizeof(w) - 1) < sizeof(buf) - 1 ? len - (sizeof(w) - 1) : sizeof(buf) - 1;
	const char *v = (const char *)value + sizeof(w) - 1;
	unsigned long long at = 0;
	size_t i = 0;
	/* As record_json writes it, up to 19 digits (no overflow): read here
	 * (strtoull cost more than all the rest of a lookup's own work);
	 * anything else as before. */
	size_t lim = n < 19 ? n : 19;
	for (unsigned d; i < lim && (d = (unsigned)(unsigned char)v[i] - '0') < 10; i++)
		at = at * 10 + d;
	if (i == 0 || (i < n && v[i] >= '0' && v[i] <= '9')) {
		memcpy(buf, v, n);
		buf[n] = '\0';
		char *end;
		at = strtoull(buf, &end, 10);
		if (end == buf)
			return 0;
	}
	return now >= at + idle_ms;
}

static int
record_expired(const struct sessions *t, const void *value, size_t len)
{
	return record_expired_at(value, len, t->idle_ms, wall_now_ms());
}

static char *
record_json(const struct session *s)
{
	cJSON *r = cJSON_CreateObject();
	/* First, so that a lookup finds it without parsing the rest. */
	cJSON_AddNumberToObject(r, "w", (double)wall_now_ms());
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

/* The id is a bearer credential: compared in constant time, so that how
 * long a miss takes says nothing of a cached id's bytes. */
static struct session *
cache_find_in(struct sessions *t, const union id_words *want, unsigned h)
{
	/* Word by word, every word of every candidate: the same work
	 * whatever the bytes (CRYPTO_memcmp went byte by byte). */
	for (struct session *s = t->buckets[h]; s != NULL; s = s->hnext) {
		uint64_t diff = 0;
		for (size_t i = 0; i < sizeof(want->w) / sizeof(want->w[0]); i++) {
			uint64_t have;
			memcpy(&have, s->id + i * sizeof(have), sizeof(have));
			diff |= have ^ want->w[i];
		}
		if (diff == 0)
			return s;
	}
	return NULL;
}

struct session *
cache_find(struct sessions *t, const char *id)
{
	size_t len = strlen(id);
	if (len >= sizeof(((struct session *)0)->id))
		return NULL;
	union id_words want;
	id_words(&want, id, len);
	return cache_find_in(t, &want, id_bucket(&want));
}

_Static_assert(sizeof(((struct session *)0)->hid) == IDHASH_LEN + 1, "session.h: hid holds an idhash");

struct session *
cache_find_hashed(struct sessions *t, const char *hid)
{
	for (struct session *s = t->hbuckets[hash(hid)]; s != NULL; s = s->hhnext)
		if (strcmp(s->hid, hid) == 0)
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
	idhash(s->id, s->hid);
	unsigned hh = hash(s->hid);
	s->hhnext = t->hbuckets[hh];
	t->hbuckets[hh] = s;
	s->table = t;
	s->log_level = MLOG_INFO;
	s->used_ms = s->touched_ms = now_ms();
	LIST_INIT(&s->streams);
	LIST_INIT(&s->pending);
	union id_words w;
	id_words(&w, s->id, strlen(s->id));
	unsigned h = id_bucket(&w);
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
	union id_words w;
	id_words(&w, s->id, strlen(s->id));
	struct session **pp = &t->buckets[id_bucket(&w)];
	while (*pp != NULL && *pp != s)
		pp = &(*pp)->hnext;
	if (*pp == s) {
		*pp = s->hnext;
		TAILQ_REMOVE(&t->all, s, lru);
		t->count--;
		pp = &t->hbuckets[hash(s->hid)];
		while (*pp != NULL && *pp != s)
			pp = &(*pp)->hhnext;
		if (*pp == s)
			*pp = s->hhnext;
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

/* A record from mcpd:sessions: sealed when values are (one in clear,
 * or that does not open, is not taken: the next read from storage
 * brings the record anyway). */
static void
record_heard(struct session *s, const char *hid, const char *rec)
{
	const struct sigkeys *k = storage_seal_keys();
	if (k == NULL) {
		record_apply(s, rec, strlen(rec));
		return;
	}
	char name[64], kid[9];
	void *plain = NULL;
	size_t plen = 0;
	snprintf(name, sizeof(name), "mcpd:sessions:%s", hid);
	if (sealbox_open(k, "m", name, rec, strlen(rec), &plain, &plen, kid) == SEALBOX_OK)
		record_apply(s, plain, plen);
	free(plain);
}

static void
sessions_msg(void *arg, const char *channel, const void *msg, size_t len)
{
	(void)channel;
	struct sessions *t = arg;
	char *m = strndup(msg, len);
	if (m == NULL)
		return;
	/* The session is named by its keyed hash: these messages are read by
	 * whoever can read the transport. */
	char *hid = strchr(m, '\n');
	if (hid != NULL) {
		*hid++ = '\0';
		char *rec = strchr(hid, '\n');
		if (rec != NULL)
			*rec++ = '\0';
		struct session *s = cache_find_hashed(t, hid);
		if (strcmp(m, "d") == 0)
			gone_note(t, hid, now_ms());
		if (s != NULL && strcmp(m, "d") == 0)
			evict(s);
		else if (s != NULL && strcmp(m, "c") == 0 && rec != NULL)
			record_heard(s, hid, rec);
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

int
sessions_publish_change(struct sessions *t, const char *what, const char *uri)
{
	char msg[SESSION_CHANGE_URI_MAX + 64];
	if (uri != NULL && strlen(uri) > SESSION_CHANGE_URI_MAX)
		return -1;
	int n = snprintf(msg, sizeof(msg), "%s\n%s", what, uri ? uri : "");
	if (n < 0 || (size_t)n >= sizeof(msg))
		return -1;
	publish(t, "mcpd:changes", msg, (size_t)n);
	return 0;
}

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
	LIST_INIT(&t->resends);
	LIST_INIT(&t->ops);
	LIST_INIT(&t->reads);
	LIST_INIT(&t->probes);
	t->sweep = event_new(base, -1, EV_PERSIST, sweep_cb, t);
	struct timeval tv = { 5, 0 };
	if (t->sweep == NULL) {
		free(t);
		return NULL;
	}
	event_add(t->sweep, &tv);
	t->sessions_sub = subscribe(t, "mcpd:sessions", sessions_msg, t);
	t->changes_sub = subscribe(t, "mcpd:changes", changes_msg, t);
	relay_on_gap(streams_lost_events, t);
	return t;
}

/* A record read by hash, for the user index (no id to cache it under). */
struct record_read {
	struct sessions *t;
	char hid[IDHASH_LEN + 1];
	session_record_fn *cb;
	void *arg;
	LIST_ENTRY(record_read) link;
};

/* A lookup or a creation out at storage. */
struct sop {
	struct sessions *t;
	struct session *s;
	char id[48];
	union id_words words;           /* id as cache_find_in takes it */
	unsigned bucket;                /* id_bucket(&words) */
	char hid[IDHASH_LEN + 1];
	session_cb cb;
	void *arg;
	LIST_ENTRY(sop) link;
};

void
sessions_free(struct sessions *t)
{
	if (t == NULL)
		return;
	relay_on_gap(NULL, NULL);
	t->on_delete = NULL;
	while (!TAILQ_EMPTY(&t->all)) {
		struct session *s = TAILQ_FIRST(&t->all);
		s->refs++;          /* evict frees only what nothing else holds */
		evict(s);
		s->refs = 0;
		session_free(s);
	}
	while (!LIST_EMPTY(&t->resends))
		resend_free(LIST_FIRST(&t->resends));
	/* Storage drops these at its detach without calling back; their
	 * callers are gone with the worker. */
	while (!LIST_EMPTY(&t->ops)) {
		struct sop *o = LIST_FIRST(&t->ops);
		LIST_REMOVE(o, link);
		if (o->s != NULL)
			session_unref(o->s);    /* a creation's, never cached */
		free(o);
	}
	while (!LIST_EMPTY(&t->reads)) {
		struct record_read *rr = LIST_FIRST(&t->reads);
		LIST_REMOVE(rr, link);
		free(rr);
	}
	answer_probes_forget(t);
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

static void
created(void *arg, int status, const char *err)
{
	struct sop *o = arg;
	struct session *s = o->s;
	LIST_REMOVE(o, link);
	if (status != MCPD_OK) {
		log_error("storage: cannot store a new session: %s", err ? err : "conflict");
		session_unref(s);     /* the creation's reference; s was never cached */
		o->cb(o->arg, NULL, MCPD_ERROR);
		free(o);
		return;
	}
	metrics_session(MXS_CREATED);
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
		t->b.storage->index_add(t->b.storage_inst, index_key(c, ik, sizeof(ik)), c->hid, t->idle_ms, NULL, NULL);
	o->cb(o->arg, c, MCPD_OK);
	free(o);
}

void
session_create(struct sessions *t, enum proto proto, const cJSON *caps, const cJSON *info,
    const char *owner, session_cb cb, void *arg)
{
	/* A detached object until storage has it; then cached under its id. */
	struct session *s = calloc(1, sizeof(*s));
	struct sop *o = calloc(1, sizeof(*o));
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
	LIST_INSERT_HEAD(&t->ops, o, link);
	t->b.storage->set(t->b.storage_inst, key, rec, strlen(rec), t->idle_ms, MCPD_SET_IF_ABSENT, created, o);
	free(rec);
}

void
gone_note(struct sessions *t, const char *hid, uint64_t now)
{
	snprintf(t->gone[t->gone_next].hid, sizeof(t->gone[0].hid), "%s", hid);
	t->gone[t->gone_next].at = now;
	t->gone_next = (t->gone_next + 1) % GONE_SLOTS;
	t->gone_last = now;
}

int
gone_recently(const struct sessions *t, const char *hid, uint64_t now)
{
	/* None deleted within GONE_MS (as on most requests): no slot to
	 * look at, each being at most as recent as the newest. */
	if (t->gone_last == 0 || now - t->gone_last >= GONE_MS)
		return 0;
	for (size_t i = 0; i < GONE_SLOTS; i++)
		if (t->gone[i].at != 0 && now - t->gone[i].at < GONE_MS && strcmp(t->gone[i].hid, hid) == 0)
			return 1;
	return 0;
}

static int
recently_deleted(const struct sessions *t, const char *hid)
{
	return gone_recently(t, hid, now_ms());
}

static void
looked_up(void *arg, int status, const void *value, size_t len, const char *err)
{
	struct sop *o = arg;
	struct sessions *t = o->t;
	LIST_REMOVE(o, link);
	struct session *s = cache_find_in(t, &o->words, o->bucket);
	if (status == MCPD_OK && (recently_deleted(t, o->hid) || record_expired(t, value, len)))
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
		if (s != NULL) {
			/* Expired (idle), or deleted by another worker, which
			 * counted it: only an expiry is new here. */
			if (!s->deleted && now_ms() - s->used_ms >= t->idle_ms)
				metrics_session(MXS_EXPIRED);
			evict(s);   /* expired or deleted elsewhere */
		}
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
	size_t len = strlen(id);
	if (len >= sizeof(((struct session *)0)->id)) {
		cb(arg, NULL, MCPD_NOT_FOUND);
		return;
	}
	/* Always from storage (a local read with lmdb): a cached copy could
	 * outlive a DELETE made on another worker by the time the relay
	 * takes, and a deleted session must never be served. */
	/* malloc: glibc's calloc passes its per-thread cache by, malloc not. */
	struct sop *o = malloc(sizeof(*o));
	if (o == NULL) {
		cb(arg, NULL, MCPD_ERROR);
		return;
	}
	*o = (struct sop){ .t = t };
	memcpy(o->id, id, len + 1);
	id_words(&o->words, id, len);
	o->bucket = id_bucket(&o->words);
	/* A session cached here has its keyed hash already: an HMAC per
	 * request saved (the record itself is still read from storage). */
	struct session *s = cache_find_in(t, &o->words, o->bucket);
	if (s != NULL)
		memcpy(o->hid, s->hid, sizeof(o->hid));
	else
		idhash(id, o->hid);
	o->cb = cb;
	o->arg = arg;
	/* "session:" and the hash, of IDHASH_LEN characters (snprintf took
	 * more than all the rest of this function). */
	static const char prefix[] = "session:";
	char key[sizeof(prefix) - 1 + IDHASH_LEN + 1];
	memcpy(key, prefix, sizeof(prefix) - 1);
	memcpy(key + sizeof(prefix) - 1, o->hid, IDHASH_LEN + 1);
	LIST_INSERT_HEAD(&t->ops, o, link);
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
		t->b.storage->index_add(t->b.storage_inst, index_key(s, ik, sizeof(ik)), s->hid, t->idle_ms, NULL, NULL);
	record_remember(s, rec, strlen(rec));
	s->touched_ms = now_ms();
	if (announce) {
		/* With encrypt_key_file the record goes sealed, as stored:
		 * the transport is read by others than the storage's readers. */
		const struct sigkeys *k = storage_seal_keys();
		char name[64], *sealed = NULL;
		size_t slen = strlen(rec);
		snprintf(name, sizeof(name), "mcpd:sessions:%s", s->hid);
		if (k != NULL)
			sealed = sealbox_seal(k, "m", name, rec, strlen(rec), &slen);
		size_t n = slen + strlen(s->hid) + 4;
		char *msg = k == NULL || sealed != NULL ? malloc(n) : NULL;
		if (msg != NULL) {
			int l = snprintf(msg, n, "c\n%s\n%s", s->hid, sealed != NULL ? sealed : rec);
			publish(t, "mcpd:sessions", msg, (size_t)l);
			free(msg);
		}
		free(sealed);
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
	char hid[IDHASH_LEN + 1];
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
	int n = snprintf(msg, sizeof(msg), "d\n%s", d->hid);
	publish(d->t, "mcpd:sessions", msg, (size_t)n);
	if (status == MCPD_ERROR)
		log_warn("session %.8s… (hash): storage did not delete its record: %s", d->hid, err ? err : "error");
	if (d->done != NULL)
		d->done(d->arg, status != MCPD_ERROR);
	free(d);
}

/* Everything stored under the session hashed hid, then the message. */
static void
delete_stored(struct sessions *t, const char *hid, const char *owner, session_deleted_fn *done, void *arg)
{
	metrics_session(MXS_DELETED);
	char key[96];
	/* What a resumption would read goes with it (del drops a log too). */
	snprintf(key, sizeof(key), "events:%s", hid);
	t->b.storage->del(t->b.storage_inst, key, NULL, NULL);
	snprintf(key, sizeof(key), "gsent:%s", hid);
	t->b.storage->del(t->b.storage_inst, key, NULL, NULL);
	char ik[INDEX_KEY_MAX];
	if (t->b.storage->index_remove != NULL)
		t->b.storage->index_remove(t->b.storage_inst, user_index_key(owner ? owner : "anonymous", ik, sizeof(ik)),
		    hid, NULL, NULL);
	snprintf(key, sizeof(key), "session:%s", hid);
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
		snprintf(d->hid, sizeof(d->hid), "%s", hid);
		t->b.storage->del(t->b.storage_inst, key, record_deleted, d);
	}
}

void
session_delete_then(struct session *s, session_deleted_fn *done, void *arg)
{
	if (s->deleted) {
		if (done != NULL)
			done(arg, 1);
		return;
	}
	delete_stored(s->table, s->hid, s->owner, done, arg);
	evict(s);
}

void
session_delete_hashed(struct sessions *t, const char *hid, const char *owner, session_deleted_fn *done, void *arg)
{
	struct session *s = cache_find_hashed(t, hid);
	if (s != NULL) {
		session_delete_then(s, done, arg);
		return;
	}
	delete_stored(t, hid, owner, done, arg);
}

static void
record_read(void *arg, int status, const void *value, size_t len, const char *err)
{
	struct record_read *rr = arg;
	cJSON *r = NULL;
	LIST_REMOVE(rr, link);
	if (status == MCPD_OK && (recently_deleted(rr->t, rr->hid) || record_expired(rr->t, value, len)))
		status = MCPD_NOT_FOUND;
	if (status == MCPD_OK && !cJSON_IsObject(r = json_parse(value, len, 0, NULL))) {
		log_error("storage: session %.8s… (hash) has an unreadable record", rr->hid);
		status = MCPD_ERROR;
	} else if (status == MCPD_ERROR)
		log_error("storage: reading session %.8s… (hash): %s", rr->hid, err ? err : "failed");
	rr->cb(rr->arg, status, status == MCPD_OK ? r : NULL);
	cJSON_Delete(r);
	free(rr);
}

void
session_record_hashed(struct sessions *t, const char *hid, session_record_fn *cb, void *arg)
{
	if (strlen(hid) != IDHASH_LEN) {
		cb(arg, MCPD_NOT_FOUND, NULL);
		return;
	}
	struct record_read *rr = calloc(1, sizeof(*rr));
	if (rr == NULL) {
		cb(arg, MCPD_ERROR, NULL);
		return;
	}
	rr->t = t;
	snprintf(rr->hid, sizeof(rr->hid), "%s", hid);
	rr->cb = cb;
	rr->arg = arg;
	char key[96];
	snprintf(key, sizeof(key), "session:%s", hid);
	LIST_INSERT_HEAD(&t->reads, rr, link);
	t->b.storage->get(t->b.storage_inst, key, record_read, rr);
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

/*
 * A cancellation for a call running on another worker is published at
 * once and again 250 ms and 1 s later. The worker running the call
 * subscribed to the session's control channel when the call began, and a
 * transport may not have that subscription in effect yet (nats: the SUB
 * still on its way to the server; an AMQP link being attached), so a
 * client that cancels right after the call started was not heard (seen
 * under load). Request ids are not reused within a session, so a second
 * cancellation of the same call does nothing more.
 */
struct resend {
	struct sessions *t;
	struct event *ev;
	char ch[96];
	char *txt;
	int sent;
	LIST_ENTRY(resend) link;
};

static const int resend_after_ms[] = { 250, 750 };

static void
resend_free(struct resend *r)
{
	LIST_REMOVE(r, link);
	event_free(r->ev);
	free(r->txt);
	free(r);
}

static void
resend_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct resend *r = arg;
	publish(r->t, r->ch, r->txt, strlen(r->txt));
	if (++r->sent > (int)(sizeof(resend_after_ms) / sizeof(resend_after_ms[0]))) {
		resend_free(r);
		return;
	}
	int ms = resend_after_ms[r->sent - 1];
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	event_add(r->ev, &tv);
}

void
session_publish_cancel(struct session *s, const cJSON *request_id)
{
	cJSON *m = cJSON_CreateObject();
	cJSON_AddItemToObject(m, "cancel", cJSON_Duplicate(request_id, 1));
	char *txt = json_print(m);
	cJSON_Delete(m);
	if (txt == NULL)
		return;
	struct resend *r = calloc(1, sizeof(*r));
	if (r == NULL || (r->ev = evtimer_new(s->table->base, resend_cb, r)) == NULL) {
		char ch[96];                /* no memory to try again: once */
		key_of(ch, sizeof(ch), "control:", s->id);
		publish(s->table, ch, txt, strlen(txt));
		free(r);
		free(txt);
		return;
	}
	r->t = s->table;
	r->txt = txt;
	key_of(r->ch, sizeof(r->ch), "control:", s->id);
	LIST_INSERT_HEAD(&s->table->resends, r, link);
	resend_cb(-1, 0, r);
}
