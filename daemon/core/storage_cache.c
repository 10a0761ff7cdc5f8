/* The storage cache (see storage_cache.h): a hash table with a least
 * recently used list, and the storage operations that use it. */
#include "storage_cache.h"
#include "log.h"
#include "metrics.h"
#include "plugin.h"
#include "util.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the table ---- */

struct ent {
	struct ent *hnext;              /* in its bucket */
	struct ent *prev, *next;        /* recency: head most recent */
	uint64_t expires;
	uint32_t hash;
	int status;
	size_t len;
	unsigned char *value;           /* after the key, in the same block */
	char key[];
};

struct scache {
	struct ent **buckets;
	size_t nbuckets;                /* a power of two */
	size_t n, max;
	struct ent *head, *tail;
};

static uint32_t
hash_of(const char *s)
{
	uint32_t h = 2166136261u;       /* FNV-1a */
	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

struct scache *
scache_new(size_t entries)
{
	struct scache *c = calloc(1, sizeof(*c));
	if (c == NULL || entries == 0)
		goto fail;
	c->max = entries;
	c->nbuckets = 16;
	while (c->nbuckets < entries && c->nbuckets < ((size_t)1 << 24))
		c->nbuckets <<= 1;
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	if (c->buckets == NULL)
		goto fail;
	return c;
fail:
	free(c);
	return NULL;
}

static struct ent **
slot(struct scache *c, const char *key, uint32_t h)
{
	struct ent **p = &c->buckets[h & (c->nbuckets - 1)];
	while (*p != NULL && ((*p)->hash != h || strcmp((*p)->key, key) != 0))
		p = &(*p)->hnext;
	return p;
}

static void
unlink_lru(struct scache *c, struct ent *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void
push_lru(struct scache *c, struct ent *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head != NULL)
		c->head->prev = e;
	c->head = e;
	if (c->tail == NULL)
		c->tail = e;
}

/* Remove the entry *p points at. */
static void
remove_at(struct scache *c, struct ent **p)
{
	struct ent *e = *p;
	*p = e->hnext;
	unlink_lru(c, e);
	c->n--;
	free(e);
}

void
scache_drop(struct scache *c, const char *key)
{
	struct ent **p = slot(c, key, hash_of(key));
	if (*p != NULL)
		remove_at(c, p);
}

int
scache_get(struct scache *c, const char *key, uint64_t now, int *status,
    const void **value, size_t *len)
{
	struct ent **p = slot(c, key, hash_of(key));
	struct ent *e = *p;
	if (e == NULL)
		return 0;
	if (now >= e->expires) {
		remove_at(c, p);
		return 0;
	}
	unlink_lru(c, e);
	push_lru(c, e);
	*status = e->status;
	*value = e->value;
	*len = e->len;
	return 1;
}

int
scache_put(struct scache *c, const char *key, int status, const void *value, size_t len,
    uint64_t expires)
{
	uint32_t h = hash_of(key);
	struct ent **p = slot(c, key, h);
	if (*p != NULL)
		remove_at(c, p);
	if (len > SCACHE_MAX_VALUE)
		return -1;
	size_t kl = strlen(key);
	struct ent *e = malloc(sizeof(*e) + kl + 1 + len + 1);
	if (e == NULL)
		return -1;
	memcpy(e->key, key, kl + 1);
	e->value = (unsigned char *)e->key + kl + 1;
	if (len > 0)
		memcpy(e->value, value, len);
	e->value[len] = '\0';           /* readers may take it as text */
	e->len = len;
	e->status = status;
	e->expires = expires;
	e->hash = h;
	while (c->n >= c->max && c->tail != NULL)
		remove_at(c, slot(c, c->tail->key, c->tail->hash));
	e->hnext = c->buckets[h & (c->nbuckets - 1)];
	c->buckets[h & (c->nbuckets - 1)] = e;
	push_lru(c, e);
	c->n++;
	return 0;
}

void
scache_clear(struct scache *c)
{
	while (c->head != NULL)
		remove_at(c, slot(c, c->head->key, c->head->hash));
}

size_t
scache_size(const struct scache *c)
{
	return c->n;
}

void
scache_free(struct scache *c)
{
	if (c == NULL)
		return;
	scache_clear(c);
	free(c->buckets);
	free(c);
}

/* ---- the wrapper ---- */

#define CHANNEL "mcpd:cache"
/* After the transport is back: a resubscription may still be on its way
 * to the broker, and what was published meanwhile is lost to us. */
#define RESUME_MS 1000
#define MAX_KEY 1024
/* How long a write waits for its invalidation to come back to us. */
#define ECHO_MS 1000

static struct event_base *base;
static struct mcpd_storage_ops cops;
static const struct mcpd_storage_ops *sreal;
static const struct mcpd_transport_ops *treal;
static void *tinst;
static scache_status_fn *tstatus;
static struct scache *table;
static uint64_t ttl_ms;
static void *sub;
/* Changes seen (here or published): a read that began before one may
 * carry what it removed, and is not kept. */
static uint64_t gen;
static uint64_t bypass_until;   /* monotonic ms: reads go to storage until then */
static int down;                /* the transport was down at the last look */
static struct storage_cache_stats stats;
static size_t reported;         /* the size last told to the metrics */
/* An invalidation is "KEY\nNONCE-SEQ": NONCE this process's, SEQ its
 * write's (0: the probe sent at start). When the transport brings our
 * own messages back (echoes: the probe came back), a write answers only
 * once its own has come back: the broker has then handed it to every
 * subscriber, not only accepted it. */
static char nonce[24];
static uint64_t wseq;
static int echoes;
static int echo_lost;           /* one did not come back: never wait again */
/* The broker hands a message to each subscriber on its own (NATS writes
 * to each connection apart, and libnats delivers on threads of its own):
 * our echo says nothing of when another worker has dropped its copy. So
 * every worker acknowledges each invalidation it has applied, on the
 * channel "mcpd:cache:NONCE" of the worker that wrote ("ACKER SEQ"), and
 * a write answers once every worker known to it has. Workers are known
 * by what they publish: the probe each sends at start (answered with an
 * acknowledgement of seq 0, so that it learns of us too), invalidations
 * and acknowledgements. One that does not acknowledge within ECHO_MS is
 * forgotten (stopped, most likely) until it is heard from again. */
#define MAX_PEERS 1024
#define ACK_PREFIX CHANNEL ":"
struct peer {
	char nonce[24];
	uint64_t acked;                 /* the highest of our seqs it acknowledged */
	uint64_t since;                 /* our wseq when we learned of it */
};
static struct peer *peers;
static size_t npeers;
static void *ack_sub;
static uint64_t echoed_seq;     /* the highest of our seqs back to us */

/* Count a read (MXC_N: none) and any change of size, in stats and metrics. */
static void
count(enum mx_cache_read r)
{
	if (r == MXC_HIT)
		stats.hits++;
	else if (r == MXC_MISS)
		stats.misses++;
	else if (r == MXC_BYPASS)
		stats.bypassed++;
	size_t n = table != NULL ? scache_size(table) : 0;
	metrics_storage_cache(r, (int64_t)n - (int64_t)reported);
	reported = n;
}

/* Keys whose values are read far more often than written: session
 * records, access tokens, grants, clients. negative: an absent key may be
 * remembered as absent too (ids too random to be created later by
 * someone who asked for them before). */
int
storage_cache_key(const char *key, int *negative)
{
	static const struct {
		const char *prefix;
		int negative;
	} kinds[] = {
		{ "session:", 1 }, { "oauth:at:", 1 }, { "oauth:grant:", 0 }, { "oauth:client:", 0 },
	};
	if (strlen(key) >= MAX_KEY)
		return 0;               /* its invalidation would not fit */
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strncmp(key, kinds[i].prefix, strlen(kinds[i].prefix)) == 0) {
			if (negative != NULL)
				*negative = kinds[i].negative;
			return 1;
		}
	return 0;
}

static void
forget_all(void)
{
	if (table != NULL)
		scache_clear(table);
	gen++;
	count(MXC_N);
}

static void echoed(uint64_t seq);
static void acks_arrived(void);

static struct peer *
peer_learn(const char *name)
{
	if (strlen(name) >= sizeof(peers[0].nonce) || peers == NULL)
		return NULL;
	for (size_t i = 0; i < npeers; i++)
		if (strcmp(peers[i].nonce, name) == 0)
			return &peers[i];
	if (npeers == MAX_PEERS)
		return NULL;
	struct peer *p = &peers[npeers++];
	snprintf(p->nonce, sizeof(p->nonce), "%s", name);
	p->acked = 0;
	p->since = wseq;
	log_debug("storage cache: %zu other workers acknowledge invalidations", npeers);
	return p;
}

/* Tell origin we have applied its invalidation seq (0: its probe). */
static void
ack(const char *origin, uint64_t seq)
{
	char chan[sizeof(ACK_PREFIX) + sizeof(nonce)], msg[64];
	if (peer_learn(origin) == NULL || treal == NULL)
		return;
	snprintf(chan, sizeof(chan), ACK_PREFIX "%s", origin);
	int n = snprintf(msg, sizeof(msg), "%s %llu", nonce, (unsigned long long)seq);
	treal->publish(tinst, chan, msg, (size_t)n, NULL, NULL, NULL);
}

static void
acked(void *arg, const char *channel, const void *msg, size_t len)
{
	(void)arg;
	(void)channel;
	char text[sizeof(nonce) + 32];
	if (len == 0 || len >= sizeof(text))
		return;
	memcpy(text, msg, len);
	text[len] = '\0';
	char *sp = strchr(text, ' ');
	if (sp == NULL)
		return;
	*sp++ = '\0';
	uint64_t seq = strtoull(sp, NULL, 10);
	struct peer *p = peer_learn(text);
	if (p != NULL && seq > p->acked)
		p->acked = seq;
	acks_arrived();
}

/* Does our own message come back? (Asked at start and whenever the
 * transport is back; a write's own coming back tells the same.) */
static void
probe(void)
{
	char msg[64];
	int n = snprintf(msg, sizeof(msg), "\n%s-0", nonce);
	if (treal != NULL && sub != NULL)
		treal->publish(tinst, CHANNEL, msg, (size_t)n, NULL, NULL, NULL);
}

/* May reads be answered from the table now? */
static int
usable(void)
{
	char why[256];
	uint64_t now = monotonic_ms();
	if (sub == NULL)
		return 0;
	if (tstatus != NULL && tstatus(tinst, why, sizeof(why)) != 0) {
		if (!down)
			log_debug("storage cache: bypassed while the transport is down (%s)", why);
		down = 1;
		forget_all();
		return 0;
	}
	if (down) {
		/* What others published while we were away never came. */
		down = 0;
		forget_all();
		bypass_until = now + RESUME_MS;
		log_debug("storage cache: the transport is back; in use again in %d ms", RESUME_MS);
		if (!echoes)
			probe();
	}
	return now >= bypass_until;
}

static void
invalidated(void *arg, const char *channel, const void *msg, size_t len)
{
	(void)arg;
	(void)channel;
	char key[MAX_KEY + 64];
	if (len == 0 || len >= sizeof(key))
		return;
	memcpy(key, msg, len);
	key[len] = '\0';
	char *tag = strchr(key, '\n');
	if (tag != NULL)
		*tag++ = '\0';
	if (key[0] != '\0') {
		gen++;
		stats.invalidations++;
		scache_drop(table, key);
		count(MXC_N);
	}
	char *dash = tag != NULL ? strrchr(tag, '-') : NULL;
	if (dash == NULL)
		return;
	*dash = '\0';
	uint64_t seq = strtoull(dash + 1, NULL, 10);
	if (strcmp(tag, nonce) == 0)
		echoed(seq);
	else
		ack(tag, seq);
}

/* Reads and writes out at the plugins: a plugin that detaches drops its
 * own without calling back (the worker is stopping), and then these are
 * freed by storage_cache_forget. */
struct pend {
	struct pend *prev, *next;
	char *key;                      /* the operation's, freed with it */
};
static struct pend *pending;

static void
pend_add(struct pend *p, char *key)
{
	p->key = key;
	p->prev = NULL;
	p->next = pending;
	if (pending != NULL)
		pending->prev = p;
	pending = p;
}

static void
pend_del(struct pend *p)
{
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		pending = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
}

struct rd {
	struct pend pend;               /* first: freed as one */
	char *key;
	uint64_t gen;
	int negative;
	mcpd_value_cb *cb;
	void *arg;
};

static void
read_done(void *arg, int status, const void *value, size_t len, const char *err)
{
	struct rd *r = arg;
	/* Kept only if nothing changed meanwhile: an invalidation that came
	 * while the read was out may be of what it brings back. */
	if (r->gen == gen && table != NULL && usable() &&
	    (status == MCPD_OK || (status == MCPD_NOT_FOUND && r->negative)))
		scache_put(table, r->key, status, value, len, monotonic_ms() + ttl_ms);
	count(MXC_N);
	pend_del(&r->pend);
	if (r->cb != NULL)
		r->cb(r->arg, status, value, len, err);
	free(r->key);
	free(r);
}

/* A hit is answered after the next look at the sockets: an
 * invalidation already on its way to this worker (the DELETE that
 * answered another client a moment ago) is applied first, and then the
 * key is read from storage instead. */
struct hit {
	struct hit *prev, *next;
	struct event *ev;
	void *inst;
	uint64_t gen;
	int status;
	mcpd_value_cb *cb;
	void *arg;
	size_t len;
	char *key;
	char value[];
};

static struct hit *hits;        /* waiting for their turn */

static void
hit_unlink(struct hit *h)
{
	if (h->prev != NULL)
		h->prev->next = h->next;
	else
		hits = h->next;
	if (h->next != NULL)
		h->next->prev = h->prev;
	event_free(h->ev);
}

static void read_through(void *inst, const char *key, int negative, mcpd_value_cb *cb, void *arg);

static void
hit_fire(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct hit *h = arg;
	hit_unlink(h);
	if (h->gen != gen) {
		/* Something changed meanwhile (perhaps this key): ask storage. */
		int negative = 0;
		storage_cache_key(h->key, &negative);
		count(MXC_MISS);
		read_through(h->inst, h->key, negative, h->cb, h->arg);
	} else {
		count(MXC_HIT);
		h->cb(h->arg, h->status, h->status == MCPD_OK ? h->value : NULL,
		    h->status == MCPD_OK ? h->len : 0, NULL);
	}
	free(h);
}

static int
hit_defer(void *inst, const char *key, int status, const void *value, size_t len,
    mcpd_value_cb *cb, void *arg)
{
	/* A timer due now runs on the loop's next turn, after that turn
	 * has polled the sockets (without waiting: one is due) and run
	 * their callbacks; event_active would run it on this turn. */
	static const struct timeval soon = { 0, 0 };
	size_t kl = strlen(key);
	struct hit *h = malloc(sizeof(*h) + len + 1 + kl + 1);
	if (h == NULL)
		return -1;
	h->ev = evtimer_new(base, hit_fire, h);
	if (h->ev == NULL || evtimer_add(h->ev, &soon) < 0) {
		if (h->ev != NULL)
			event_free(h->ev);
		free(h);
		return -1;
	}
	h->inst = inst;
	h->gen = gen;
	h->status = status;
	h->cb = cb;
	h->arg = arg;
	h->len = len;
	memcpy(h->value, value, len + 1);
	h->key = h->value + len + 1;
	memcpy(h->key, key, kl + 1);
	h->prev = NULL;
	h->next = hits;
	if (hits != NULL)
		hits->prev = h;
	hits = h;
	return 0;
}

static void
read_through(void *inst, const char *key, int negative, mcpd_value_cb *cb, void *arg)
{
	struct rd *r = calloc(1, sizeof(*r));
	if (r == NULL || (r->key = strdup(key)) == NULL) {
		free(r);
		sreal->get(inst, key, cb, arg);
		return;
	}
	r->gen = gen;
	r->negative = negative;
	r->cb = cb;
	r->arg = arg;
	pend_add(&r->pend, r->key);
	sreal->get(inst, key, read_done, r);
}

static void
c_get(void *inst, const char *key, mcpd_value_cb *cb, void *arg)
{
	int negative;
	if (!storage_cache_key(key, &negative)) {
		sreal->get(inst, key, cb, arg);
		return;
	}
	if (!usable()) {
		count(MXC_BYPASS);
		sreal->get(inst, key, cb, arg);
		return;
	}
	int status;
	const void *value;
	size_t len;
	if (scache_get(table, key, monotonic_ms(), &status, &value, &len) &&
	    hit_defer(inst, key, status, value, len, cb, arg) == 0)
		return;
	count(MXC_MISS);
	read_through(inst, key, negative, cb, arg);
}

/* A write or delete of a kept key: dropped here at once (and whatever
 * reads are out are not kept); once storage has answered, dropped again
 * and published; the caller hears storage's answer when the transport
 * has accepted the invalidation. */
struct wr {
	struct pend pend;               /* first: freed as one */
	uint64_t seq;
	struct event *timer;            /* waiting for its echo and acknowledgements */
	struct wr *enext;               /* in echoing */
	char *key;
	int status;
	char err[200];
	int has_err;
	mcpd_done_cb *cb;
	void *arg;
};

static struct wr *echoing;     /* published, waiting for the echo or acknowledgements */

static void
echo_unlink(struct wr *w)
{
	for (struct wr **p = &echoing; *p != NULL; p = &(*p)->enext)
		if (*p == w) {
			*p = w->enext;
			break;
		}
	if (w->timer != NULL)
		event_free(w->timer);
	w->timer = NULL;
}

static void
wr_finish(struct wr *w)
{
	echo_unlink(w);
	pend_del(&w->pend);
	if (w->cb != NULL)
		w->cb(w->arg, w->status, w->has_err ? w->err : NULL);
	free(w->key);
	free(w);
}

static void
echoed(uint64_t seq)
{
	if (!echoes && !echo_lost) {
		log_debug("storage cache: the transport brings invalidations back: writes wait for them");
		echoes = 1;
	}
	if (seq > echoed_seq)
		echoed_seq = seq;
	acks_arrived();
}

/* Has every worker that was to see w's invalidation applied it? */
static int
wr_ready(const struct wr *w)
{
	if (echoes && echoed_seq < w->seq)
		return 0;
	for (size_t i = 0; i < npeers; i++)
		if (peers[i].since < w->seq && peers[i].acked < w->seq)
			return 0;
	return 1;
}

static void
acks_arrived(void)
{
again:
	for (struct wr *w = echoing; w != NULL; w = w->enext)
		if (wr_ready(w)) {
			wr_finish(w);   /* its caller may change the list */
			goto again;
		}
}

static void
echo_late(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct wr *w = arg;
	if (echoes && echoed_seq < w->seq) {
		/* Perhaps lost on its way to others too: they keep theirs for
		 * ttl at most; we read through for as long. */
		log_warn("storage cache: an invalidation did not come back within %d ms: reading through for %llu ms; "
		    "from now on writes answer once the transport has accepted theirs", ECHO_MS,
		    (unsigned long long)ttl_ms);
		echoes = 0;
		echo_lost = 1;
		forget_all();
		bypass_until = monotonic_ms() + ttl_ms;
	}
	for (size_t i = 0; i < npeers;) {
		if (peers[i].since < w->seq && peers[i].acked < w->seq) {
			log_warn("storage cache: worker %s did not acknowledge an invalidation within %d ms "
			    "(stopped?): not waited for until heard from again", peers[i].nonce, ECHO_MS);
			peers[i] = peers[--npeers];
		} else {
			i++;
		}
	}
	wr_finish(w);
	acks_arrived();
}

static void
published(void *arg, int status, const char *err)
{
	struct wr *w = arg;
	if (status == MCPD_ERROR) {
		/* The others may keep the old value (for ttl at most): we at
		 * least read through for as long. */
		log_warn("storage cache: an invalidation was not published (%s): reading through for %llu ms",
		    err ? err : "error", (unsigned long long)ttl_ms);
		forget_all();
		bypass_until = monotonic_ms() + ttl_ms;
	} else if (!wr_ready(w) && base != NULL && (w->timer = evtimer_new(base, echo_late, w)) != NULL) {
		static const struct timeval wait = { ECHO_MS / 1000, (ECHO_MS % 1000) * 1000 };
		evtimer_add(w->timer, &wait);
		w->enext = echoing;
		echoing = w;
		return;
	}
	wr_finish(w);
}

static void
written(void *arg, int status, const char *err)
{
	struct wr *w = arg;
	w->status = status;
	if (err != NULL) {
		snprintf(w->err, sizeof(w->err), "%s", err);
		w->has_err = 1;
	}
	gen++;
	if (table != NULL)
		scache_drop(table, w->key);
	count(MXC_N);
	if (sub == NULL || treal == NULL) {
		wr_finish(w);
		return;
	}
	char why[256];
	if (tstatus != NULL && tstatus(tinst, why, sizeof(why)) != 0) {
		/* Down: the others read through (their transport is down too)
		 * or miss this anyway; the answer does not wait for a
		 * reconnection. Tried all the same. */
		char msg[MAX_KEY + 64];
		int n = snprintf(msg, sizeof(msg), "%s\n%s-%llu", w->key, nonce, (unsigned long long)w->seq);
		treal->publish(tinst, CHANNEL, msg, (size_t)n, NULL, NULL, NULL);
		forget_all();
		bypass_until = monotonic_ms() + ttl_ms;
		wr_finish(w);
		return;
	}
	char msg[MAX_KEY + 64];
	int n = snprintf(msg, sizeof(msg), "%s\n%s-%llu", w->key, nonce, (unsigned long long)w->seq);
	treal->publish(tinst, CHANNEL, msg, (size_t)n, NULL, published, w);
}

static struct wr *
wr_new(const char *key, mcpd_done_cb *cb, void *arg)
{
	if (!storage_cache_key(key, NULL))
		return NULL;
	gen++;
	scache_drop(table, key);
	count(MXC_N);
	struct wr *w = calloc(1, sizeof(*w));
	if (w == NULL || (w->key = strdup(key)) == NULL) {
		/* Unannounced: the others learn within ttl, we read through. */
		free(w);
		forget_all();
		bypass_until = monotonic_ms() + ttl_ms;
		return NULL;
	}
	w->cb = cb;
	w->arg = arg;
	w->seq = ++wseq;
	pend_add(&w->pend, w->key);
	return w;
}

static void
c_set(void *inst, const char *key, const void *value, size_t len, uint64_t ttl,
    unsigned flags, mcpd_done_cb *cb, void *arg)
{
	struct wr *w = wr_new(key, cb, arg);
	if (w == NULL)
		sreal->set(inst, key, value, len, ttl, flags, cb, arg);
	else
		sreal->set(inst, key, value, len, ttl, flags, written, w);
}

static void
c_del(void *inst, const char *key, mcpd_done_cb *cb, void *arg)
{
	struct wr *w = wr_new(key, cb, arg);
	if (w == NULL)
		sreal->del(inst, key, cb, arg);
	else
		sreal->del(inst, key, written, w);
}

static void
c_incr(void *inst, const char *key, int64_t by, uint64_t ttl, mcpd_int_cb *cb, void *arg)
{
	if (storage_cache_key(key, NULL)) {     /* not done by mcpd: never kept */
		gen++;
		scache_drop(table, key);
	}
	sreal->incr(inst, key, by, ttl, cb, arg);
}

int
storage_cache_backends(struct backends *b, struct event_base *evb,
    const struct storage_cache_conf *conf, scache_status_fn *transport_status)
{
	if (conf->entries == 0 || b->storage == NULL || b->transport == NULL || sreal != NULL)
		return -1;
	base = evb;
	table = scache_new((size_t)conf->entries);
	if (table == NULL)
		return -1;
	ttl_ms = conf->ttl_ms;
	treal = b->transport;
	tinst = b->transport_inst;
	tstatus = transport_status;
	if (random_token(nonce, 12) < 0)
		snprintf(nonce, sizeof(nonce), "p%ld", (long)getpid());
	echoes = 0;
	echo_lost = 0;
	wseq = 0;
	echoed_seq = 0;
	npeers = 0;
	char chan[sizeof(ACK_PREFIX) + sizeof(nonce)];
	snprintf(chan, sizeof(chan), ACK_PREFIX "%s", nonce);
	if ((peers = calloc(MAX_PEERS, sizeof(*peers))) == NULL ||
	    (ack_sub = treal->subscribe(tinst, chan, acked, NULL)) == NULL ||
	    (sub = treal->subscribe(tinst, CHANNEL, invalidated, NULL)) == NULL) {
		if (ack_sub != NULL)
			treal->unsubscribe(tinst, ack_sub);
		ack_sub = NULL;
		free(peers);
		peers = NULL;
		scache_free(table);
		table = NULL;
		return -1;
	}
	sreal = b->storage;
	cops = *sreal;
	cops.get = c_get;
	cops.set = c_set;
	cops.del = c_del;
	if (sreal->incr != NULL)
		cops.incr = c_incr;
	b->storage = &cops;
	probe();
	gen = 0;
	down = 0;
	bypass_until = 0;
	memset(&stats, 0, sizeof(stats));
	log_debug("storage cache: %llu entries, ttl %llu ms", (unsigned long long)conf->entries,
	    (unsigned long long)ttl_ms);
	return 0;
}

void
storage_cache_forget(struct backends *b)
{
	if (sreal == NULL)
		return;
	log_debug("storage cache: %llu hits, %llu misses, %llu read through, %llu invalidations",
	    (unsigned long long)stats.hits, (unsigned long long)stats.misses,
	    (unsigned long long)stats.bypassed, (unsigned long long)stats.invalidations);
	while (hits != NULL) {          /* their callers are gone with the worker */
		struct hit *h = hits;
		hit_unlink(h);
		free(h);
	}
	while (echoing != NULL)
		echo_unlink(echoing);
	while (pending != NULL) {
		struct pend *p = pending;
		pending = p->next;
		free(p->key);
		free(p);                /* the rd or wr it starts */
	}
	/* The transport's subscriptions went with its detach. */
	sub = NULL;
	ack_sub = NULL;
	free(peers);
	peers = NULL;
	npeers = 0;
	if (b != NULL && b->storage == &cops)
		b->storage = sreal;
	sreal = NULL;
	treal = NULL;
	scache_free(table);
	table = NULL;
	count(MXC_N);
}

void
storage_cache_stats(struct storage_cache_stats *st)
{
	*st = stats;
	st->size = table != NULL ? scache_size(table) : 0;
}
