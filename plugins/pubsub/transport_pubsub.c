/*
 * pubsub: the transport on Google Cloud Pub/Sub, so that mcpd instances on
 * Google Cloud deliver session messages to each other through a managed
 * service. Built against <mcpd/plugin.h> alone; the calls are
 * plugins/common/gcp.c's (REST over libcurl multi on the worker's loop,
 * the Application Default Credentials).
 *
 *   transport: { plugin: pubsub, project: my-project, topic: mcpd }
 *
 * Keys: topic (required), project (else GOOGLE_CLOUD_PROJECT...),
 * create_topic (false: the topic must exist), subscription_prefix
 * ("mcpd-"), endpoint (PUBSUB_EMULATOR_HOST does the same), credentials
 * (default, or none), timeout (3s: each call), wait (the long pull, 20s),
 * presence_timeout (500ms), subscription_ttl (1 day, Google's least).
 *
 * One topic. Each worker of each instance has one subscription,
 * <prefix><instance>-<worker> (the instance a random id drawn when the
 * configuration is loaded), made at start with an expiration policy (so
 * that the subscriptions of dead instances go away by themselves) and a
 * static filter:
 *
 *   attributes:to_<instance>_<worker> OR (attributes:all AND attributes.from != "<its id>")
 *
 * A message carries its channel (attribute c), its sender (from), and
 * either the attribute all or one attribute to_<id> for each worker known
 * to hold a subscriber of the channel: Pub/Sub then delivers it only to
 * those workers' subscriptions. What a worker knows comes from the others:
 * a worker that gains its first subscriber of a channel announces it to
 * all (and its last one going; what was subscribed before its
 * subscription was made, once it is), answers a message that reached it
 * through "all" for a channel it holds with an announcement to the sender
 * (at most once in 10 seconds a channel and sender), and answers
 * has_subscribers probes with its count. Each worker keeps what it heard
 * in a bounded table (4096 channels, 16 holders each; entries lapse after
 * a minute unless heard again); a channel it knows no holder of goes to
 * all. Announcements reach only the workers there to hear them, so what a
 * worker knows of a channel is trusted only within a minute of its own
 * message to all on it (which every holder answers): a worker's first
 * message on a channel goes to all, and one a minute after. An
 * announcement or an answer may cross a message addressed without its
 * sender: a publisher that hears of a holder it did not know sends it,
 * addressed to it alone, what it published
 * on the channel to others in the last 2 seconds (16 messages a channel,
 * 4 MiB in all), and the holder delivers those published after its
 * subscriber came (by the publisher's clock) and not delivered already
 * (each message has an id; the last 4096 delivered are remembered, which
 * also drops what Pub/Sub delivers twice). So the first
 * message of a session's channel may go to every worker, and the next
 * ones to the one that holds the session's stream. Every worker also
 * checks the addressing of what it receives, as the emulator ignores
 * filters.
 *
 * A worker's own subscribers get what it publishes at once, without a
 * round trip. Publishes on one channel leave in order, one call in flight
 * per channel, with the channel as ordering key (the subscription has
 * message ordering on), so that a session's messages arrive in order.
 *
 * Each worker keeps one pull waiting (it returns as soon as a message is
 * there) and acknowledges what it received at once, in one call. A
 * message over Pub/Sub's 10 MB is refused with an error. has_subscribers:
 * the local count plus the counts workers that hold the channel send to
 * a probe, summed for presence_timeout. A worker that stops deletes its
 * subscription.
 */
#include <mcpd/plugin.h>

#include "b64.h"
#include "clock.h"
#include "gcp.h"
#include "gcp_auth.h"
#include "localq.h"
#include "section.h"
#include "subs.h"
#include "utf8.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define MAX_MESSAGE 10000000            /* Pub/Sub: a message (data and attributes), and a publish call */
#define MAX_BATCH_BYTES 9000000         /* of one publish call, its JSON included */
#define MAX_BATCH 100
#define MAX_QUEUED (64u << 20)          /* bytes waiting to be published */
#define MAX_CALLS 4                     /* publish calls in flight per worker */
#define MAX_CHANNEL 1024                /* Pub/Sub: an attribute value, an ordering key */
#define MAX_HOLDERS 16
#define ROUTES 4096
#define ROUTE_TTL_MS 60000
#define HOLD_REPLY_MS 10000
#define REPLIED 8                       /* senders a holder remembers answering, a channel */
#define RESEND_MS 2000                  /* what a new holder gets again */
#define RESEND_PER_CHANNEL 16
#define RESEND_BYTES (4u << 20)
#define SEEN 4096                       /* message ids remembered, against duplicates */
#define SETUP_RETRY_MAX_MS 5000
#define CLEANUP_MS 2000
#define CHECK_EVERY_MS 1000
#define IDLE_CHECK_MS 2000
#define GOOGLE_URL "https://pubsub.googleapis.com"

struct out {                            /* a message waiting to be published */
	char *channel;
	cJSON *msg;                         /* {data, attributes, orderingKey} */
	size_t size;
	mcpd_done_cb *cb;
	void *arg;
	struct out *next;
};

struct pcall {
	struct ps *p;
	struct out *msgs;
	size_t n;
	int used;
};

struct probe {
	struct ps *p;
	uint64_t id;
	int64_t sum;
	mcpd_int_cb *cb;
	void *arg;
	struct event *timer;
	struct probe *next;
};

/* What this worker heard of who holds a channel. The holders named are
 * trusted only within ROUTE_TTL_MS of a message of ours to all on it
 * (asked): every holder answers that, while announcements reach only the
 * workers that were there to hear them (a holder that announced itself
 * before we came, or before its own subscription was made, is known only
 * from its answer). */
struct route {
	char *channel;
	char *holders[MAX_HOLDERS];
	size_t n;
	uint64_t heard;                     /* monotonic */
	uint64_t asked;                     /* our last message to all on it */
	struct {                            /* our last answers to senders, for this channel */
		char who[40];
		uint64_t at;
	} replied[REPLIED];
	struct route *next;
};

#define ROUTE_BUCKETS 1024

/* A message published lately to some workers, kept RESEND_MS for a
 * holder that announces itself after it (the announcement and the
 * message crossed). */
struct sent {
	char *channel;
	cJSON *msg;                         /* as published, without its addressing */
	size_t size;
	uint64_t at;                        /* monotonic */
	struct sent *next;
};

/* The channels this worker holds, and since when (the wall clock): a
 * message sent again to a new holder is delivered only if it was
 * published after the holder's first subscriber came. */
struct held {
	char *channel;
	uint64_t since;
	struct held *next;
};

/* The ids of messages delivered lately: a resend, or Pub/Sub delivering
 * one again, is not delivered twice. */
struct seen {
	char key[64];                       /* from/id */
	struct seen *next;                  /* in its bucket */
};

enum setup { SU_TOPIC, SU_SUBSCRIPTION, SU_DONE };

struct ps {
	const struct mcpd_host *host;
	/* configuration */
	char *project, *topic, *prefix, *endpoint;
	int create_topic, credentials, emulator;
	uint64_t timeout_ms, wait_ms, presence_ms, sub_ttl_s;
	char url[600];
	char instance[17];
	/* per worker */
	struct gcp_client *client;
	char id[40];                        /* <instance>_<worker> */
	char sub_name[300];                 /* projects/P/subscriptions/<prefix><instance>-<worker> */
	char topic_name[400];
	enum setup setup;
	int setup_busy;
	unsigned setup_backoff_ms;
	char setup_error[800];
	int setup_logged;
	struct event *setup_timer, *pull_timer, *check_timer;
	struct event *flush_ev;             /* publishes leave at the end of the loop turn */
	int pulling, checking;
	int small_pulls;                    /* pulls of one message left, after an answer too large */
	struct subs subs;
	struct out *outq, **outq_tail;
	size_t queued_bytes;
	struct pcall calls[MAX_CALLS];
	struct probe *probes;
	uint64_t next_probe;
	struct localq local;          /* for this worker's own subscribers */
	struct route *routes[ROUTE_BUCKETS];
	size_t nroutes;
	uint64_t next_id;
	struct sent *recent, **recent_tail;
	size_t recent_bytes;
	struct seen seen[SEEN];
	struct seen *seen_buckets[SEEN];
	size_t seen_next;
	struct held *held[ROUTE_BUCKETS];
};

static void
say(struct ps *p, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
say(struct ps *p, int level, const char *fmt, ...)
{
	char msg[1200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->host->log((enum mcpd_log_level)level, "pubsub: %s", msg);
}

static int
channel_ok(const char *channel)
{
	size_t n = strlen(channel);
	return n > 0 && n <= MAX_CHANNEL && utf8_text((const unsigned char *)channel, n);
}

/* ---- calls ---- */

static char *
api_url(const struct ps *p, const char *name, const char *verb)
{
	char *u = NULL;
	if (asprintf(&u, "%s/v1/%s%s", p->url, name, verb ? verb : "") < 0)
		return NULL;
	return u;
}

static void
api(struct ps *p, const char *method, const char *name, const char *verb, cJSON *body, unsigned flags,
    uint64_t timeout_ms, gcp_done_fn *done, void *arg)
{
	char *url = api_url(p, name, verb), *text = body ? cJSON_PrintUnformatted(body) : NULL;
	cJSON_Delete(body);
	if (url == NULL || (body != NULL && text == NULL)) {
		free(url);
		free(text);
		struct gcp_result r = { 0, "", 0, "", "out of memory" };
		done(arg, &r);
		return;
	}
	gcp_call(p->client, method, url, text, text ? strlen(text) : 0, flags, timeout_ms, timeout_ms + p->timeout_ms,
	    done, arg);
	free(url);
	free(text);
}

/* ---- who holds what ---- */

static unsigned
route_hash(const char *s)
{
	return subs_hash(s) % ROUTE_BUCKETS;
}

static void
route_free(struct route *r)
{
	free(r->channel);
	for (size_t i = 0; i < r->n && i < MAX_HOLDERS; i++)
		free(r->holders[i]);
	free(r);
}

static struct route *
route_find(struct ps *p, const char *channel)
{
	for (struct route *r = p->routes[route_hash(channel)]; r != NULL; r = r->next)
		if (strcmp(r->channel, channel) == 0)
			return r;
	return NULL;
}

static void
route_drop(struct ps *p, struct route *r)
{
	for (struct route **rp = &p->routes[route_hash(r->channel)]; *rp != NULL; rp = &(*rp)->next)
		if (*rp == r) {
			*rp = r->next;
			route_free(r);
			p->nroutes--;
			return;
		}
}

/* Room for one more: the lapsed entries go, else the one heard longest
 * ago. */
static void
route_make_room(struct ps *p)
{
	if (p->nroutes < ROUTES)
		return;
	uint64_t now = mono_ms();
	struct route *oldest = NULL;
	for (size_t b = 0; b < ROUTE_BUCKETS; b++)
		for (struct route **rp = &p->routes[b]; *rp != NULL;) {
			struct route *r = *rp;
			if (now - r->heard > ROUTE_TTL_MS) {
				*rp = r->next;
				route_free(r);
				p->nroutes--;
				continue;
			}
			if (oldest == NULL || r->heard < oldest->heard)
				oldest = r;
			rp = &r->next;
		}
	if (p->nroutes >= ROUTES && oldest != NULL)
		route_drop(p, oldest);
}

static struct route *
route_get(struct ps *p, const char *channel, int create)
{
	struct route *r = route_find(p, channel);
	if (r != NULL || !create)
		return r;
	route_make_room(p);
	if ((r = calloc(1, sizeof(*r))) == NULL || (r->channel = strdup(channel)) == NULL) {
		free(r);
		return NULL;
	}
	unsigned h = route_hash(channel);
	r->next = p->routes[h];
	p->routes[h] = r;
	p->nroutes++;
	return r;
}

/* A worker id: what to_<id> may name in a filter. */
static int
id_ok(const char *id)
{
	size_t n = strlen(id);
	return n > 0 && n < 40 && strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

/* Returns 1 when who is a holder not known before. */
static int
route_hold(struct ps *p, const char *channel, const char *who, int holds)
{
	if (!id_ok(who) || strcmp(who, p->id) == 0 || !channel_ok(channel))
		return 0;
	struct route *r = route_get(p, channel, holds);
	if (r == NULL)
		return 0;
	size_t i;
	for (i = 0; i < r->n && r->n <= MAX_HOLDERS; i++)
		if (strcmp(r->holders[i], who) == 0)
			break;
	if (holds) {
		r->heard = mono_ms();
		if (r->n > MAX_HOLDERS)
			return 0;
		if (i < r->n)
			return 0;
		if (r->n < MAX_HOLDERS && (r->holders[r->n] = strdup(who)) != NULL)
			r->n++;
		else
			r->n = MAX_HOLDERS + 1;         /* too many to name: all, until it lapses */
		return 1;
	} else if (i < r->n && r->n <= MAX_HOLDERS) {
		free(r->holders[i]);
		r->holders[i] = r->holders[--r->n];
		if (r->n == 0)
			route_drop(p, r);
	}
	return 0;
}

/* A sender of a message to all on channel, that we hold: whether to
 * answer it with an announcement (each sender at most once in
 * HOLD_REPLY_MS: one sender's answer must not keep the others from
 * theirs). */
static int
reply_due(struct ps *p, const char *channel, const char *from)
{
	struct route *r = route_get(p, channel, 1);
	if (r == NULL)
		return 0;
	uint64_t now = mono_ms();
	if (r->heard == 0)
		r->heard = now;
	size_t slot = 0;
	for (size_t i = 0; i < REPLIED; i++) {
		if (strcmp(r->replied[i].who, from) == 0) {
			if (now - r->replied[i].at < HOLD_REPLY_MS)
				return 0;
			slot = i;
			break;
		}
		if (r->replied[i].at < r->replied[slot].at)
			slot = i;               /* else the oldest makes room */
	}
	snprintf(r->replied[slot].who, sizeof(r->replied[slot].who), "%s", from);
	r->replied[slot].at = now;
	return 1;
}

static void
routes_clear(struct ps *p)
{
	for (size_t b = 0; b < ROUTE_BUCKETS; b++)
		while (p->routes[b] != NULL) {
			struct route *r = p->routes[b];
			p->routes[b] = r->next;
			route_free(r);
		}
	p->nroutes = 0;
}

/* The addressing of a message on channel: to_<id> for each holder known,
 * or all. */
static void
address(struct ps *p, cJSON *attrs, const char *channel)
{
	uint64_t now = mono_ms();
	struct route *r = route_find(p, channel);
	if (r != NULL && now - r->heard > ROUTE_TTL_MS) {
		route_drop(p, r);
		r = NULL;
	}
	/* Not asked lately: to all, and every holder answers (those that
	 * answer after a message addressed without them get it again). */
	if (r == NULL || r->asked == 0 || now - r->asked > ROUTE_TTL_MS || r->n == 0 || r->n > MAX_HOLDERS) {
		if (r == NULL)
			r = route_get(p, channel, 1);
		if (r != NULL) {
			r->asked = now;
			if (r->heard == 0 || now - r->heard > ROUTE_TTL_MS)
				r->heard = now;
		}
		cJSON_AddStringToObject(attrs, "all", "");
		return;
	}
	char name[64];
	for (size_t i = 0; i < r->n; i++) {
		snprintf(name, sizeof(name), "to_%s", r->holders[i]);
		cJSON_AddStringToObject(attrs, name, "");
	}
}

/* ---- duplicates ---- */

static unsigned
seen_bucket(const char *key)
{
	return subs_hash(key) % SEEN;
}

static int
seen_has(const struct ps *p, const char *key)
{
	for (const struct seen *e = p->seen_buckets[seen_bucket(key)]; e != NULL; e = e->next)
		if (strcmp(e->key, key) == 0)
			return 1;
	return 0;
}

/* Remembered in a ring: the oldest goes. */
static void
seen_add(struct ps *p, const char *key)
{
	struct seen *e = &p->seen[p->seen_next];
	p->seen_next = (p->seen_next + 1) % SEEN;
	if (e->key[0] != '\0')
		for (struct seen **pp = &p->seen_buckets[seen_bucket(e->key)]; *pp != NULL; pp = &(*pp)->next)
			if (*pp == e) {
				*pp = e->next;
				break;
			}
	snprintf(e->key, sizeof(e->key), "%s", key);
	unsigned b = seen_bucket(e->key);
	e->next = p->seen_buckets[b];
	p->seen_buckets[b] = e;
}

static struct held **
held_find(struct ps *p, const char *channel)
{
	struct held **hp = &p->held[route_hash(channel)];
	while (*hp != NULL && strcmp((*hp)->channel, channel) != 0)
		hp = &(*hp)->next;
	return hp;
}

static void
held_set(struct ps *p, const char *channel, int holds)
{
	struct held **hp = held_find(p, channel), *h = *hp;
	if (!holds && h != NULL) {
		*hp = h->next;
		free(h->channel);
		free(h);
	} else if (holds && h == NULL && (h = calloc(1, sizeof(*h))) != NULL) {
		if ((h->channel = strdup(channel)) == NULL) {
			free(h);
			return;
		}
		h->since = real_ms();
		*hp = h;
	}
}

static void
held_clear(struct ps *p)
{
	for (size_t b = 0; b < ROUTE_BUCKETS; b++)
		while (p->held[b] != NULL) {
			struct held *h = p->held[b];
			p->held[b] = h->next;
			free(h->channel);
			free(h);
		}
}

/* ---- what a late holder gets again ---- */

static void
sent_free(struct sent *t)
{
	free(t->channel);
	cJSON_Delete(t->msg);
	free(t);
}

static void
recent_expire(struct ps *p, uint64_t now)
{
	while (p->recent != NULL && (now - p->recent->at > RESEND_MS || p->recent_bytes > RESEND_BYTES)) {
		struct sent *t = p->recent;
		p->recent = t->next;
		p->recent_bytes -= t->size;
		sent_free(t);
	}
	if (p->recent == NULL)
		p->recent_tail = &p->recent;
}

static void
recent_clear(struct ps *p)
{
	p->recent_bytes = SIZE_MAX / 2;
	recent_expire(p, mono_ms());
	p->recent_bytes = 0;
}

/* m (taken): a data message just queued for the topic. */
static void
recent_add(struct ps *p, const char *channel, cJSON *m, size_t size)
{
	uint64_t now = mono_ms();
	recent_expire(p, now);
	size_t n = 0;
	for (struct sent *t = p->recent; t != NULL; t = t->next)
		n += strcmp(t->channel, channel) == 0;
	struct sent *t = n < RESEND_PER_CHANNEL && size <= RESEND_BYTES ? calloc(1, sizeof(*t)) : NULL;
	if (t == NULL || (t->channel = strdup(channel)) == NULL) {
		free(t);
		cJSON_Delete(m);
		return;
	}
	t->msg = m;
	t->size = size;
	t->at = now;
	*p->recent_tail = t;
	p->recent_tail = &t->next;
	p->recent_bytes += size;
}

static void enqueue(struct ps *p, struct out *o);

/* who announced a subscriber of channel: what was published on it in the
 * last RESEND_MS to other workers only (the announcement and the message
 * crossed) is sent to it again, addressed to it alone; it delivers what
 * it had not (the message's id). */
static void
resend(struct ps *p, const char *channel, const char *who)
{
	recent_expire(p, mono_ms());
	char name[64];
	snprintf(name, sizeof(name), "to_%s", who);
	for (struct sent *t = p->recent; t != NULL; t = t->next) {
		cJSON *attrs = cJSON_GetObjectItemCaseSensitive(t->msg, "attributes");
		if (strcmp(t->channel, channel) != 0 || cJSON_GetObjectItemCaseSensitive(attrs, name) != NULL ||
		    p->queued_bytes + t->size > MAX_QUEUED)
			continue;
		struct out *o = calloc(1, sizeof(*o));
		if (o == NULL || (o->channel = strdup(channel)) == NULL || (o->msg = cJSON_Duplicate(t->msg, 1)) == NULL) {
			if (o != NULL)
				free(o->channel);
			free(o);
			return;
		}
		cJSON *a = cJSON_GetObjectItemCaseSensitive(o->msg, "attributes"), *k = a ? a->child : NULL;
		while (k != NULL) {             /* its old addressing goes */
			cJSON *next = k->next;
			if (k->string != NULL && strncmp(k->string, "to_", 3) == 0)
				cJSON_Delete(cJSON_DetachItemViaPointer(a, k));
			k = next;
		}
		cJSON_AddStringToObject(a, name, "");
		cJSON_AddStringToObject(a, "re", "");
		o->size = t->size;
		enqueue(p, o);
	}
}

/* ---- setting up: the topic, the subscription ---- */

static void setup_step(struct ps *p);
static void pull(struct ps *p);
static void flush(struct ps *p);
static void control(struct ps *p, const char *channel, const char *const *kv, const char *to);

/* Set up (again): the channels subscribed meanwhile are announced now
 * (control messages are dropped while not set up, and the core
 * subscribes some channels as a worker starts). */
static void
announce_held(struct ps *p)
{
	const char *kv[] = { "k", "sub", NULL };
	for (size_t b = 0; b < ROUTE_BUCKETS; b++)
		for (struct held *h = p->held[b]; h != NULL; h = h->next)
			control(p, h->channel, kv, NULL);
}

static void
setup_failed(struct ps *p, const char *prefix, const char *detail)
{
	char msg[sizeof(p->setup_error)];
	snprintf(msg, sizeof(msg), "%s%s", prefix, detail);
	if (strcmp(msg, p->setup_error) != 0 || !p->setup_logged)
		say(p, MCPD_LOG_ERROR, "%s", msg + (strncmp(msg, "pubsub: ", 8) == 0 ? 8 : 0));
	p->setup_logged = 1;
	snprintf(p->setup_error, sizeof(p->setup_error), "%s", msg);
	p->setup_busy = 0;
	p->setup_backoff_ms = p->setup_backoff_ms ? p->setup_backoff_ms * 2 : 250;
	if (p->setup_backoff_ms > SETUP_RETRY_MAX_MS)
		p->setup_backoff_ms = SETUP_RETRY_MAX_MS;
	struct timeval tv = { p->setup_backoff_ms / 1000, (p->setup_backoff_ms % 1000) * 1000 };
	evtimer_add(p->setup_timer, &tv);
}

static void
setup_answer(void *arg, const struct gcp_result *r)
{
	struct ps *p = arg;
	int exists = r->code != NULL && strcmp(r->code, "ALREADY_EXISTS") == 0;
	if (r->code != NULL && !exists) {
		if (gcp_project_missing(r)) {
			char why[600];
			snprintf(why, sizeof(why), "pubsub: project %.100s not found, or the credentials have no access to "
			    "it (is project: right?)", p->project);
			setup_failed(p, "", why);
			return;
		}
		if (p->setup == SU_SUBSCRIPTION && strcmp(r->code, "NOT_FOUND") == 0)
			p->setup = SU_TOPIC;            /* the topic went: look at it again */
		if (p->setup == SU_TOPIC && strcmp(r->code, "NOT_FOUND") == 0) {
			char why[600];
			snprintf(why, sizeof(why), "pubsub: topic %.300s does not exist in project %.100s (create it, or set "
			    "create_topic: true)", p->topic, p->project);
			setup_failed(p, "", why);
			return;
		}
		setup_failed(p, "pubsub: setting up: ", r->message);
		return;
	}
	p->setup_busy = 0;
	p->setup++;
	if (p->setup == SU_DONE) {
		say(p, p->setup_logged ? MCPD_LOG_NOTICE : MCPD_LOG_INFO, "subscription %s on topic %s%s", p->sub_name,
		    p->topic_name, p->setup_logged ? ": set up after all" : "");
		p->setup_logged = 0;
		p->setup_error[0] = '\0';
		p->setup_backoff_ms = 0;
		pull(p);
		announce_held(p);
		flush(p);
		return;
	}
	setup_step(p);
}

static void
setup_step(struct ps *p)
{
	if (p->setup_busy || p->setup == SU_DONE)
		return;
	p->setup_busy = 1;
	if (p->setup == SU_TOPIC) {
		if (p->create_topic)
			api(p, "PUT", p->topic_name, NULL, cJSON_CreateObject(), GCP_IDEMPOTENT, p->timeout_ms, setup_answer, p);
		else
			api(p, "GET", p->topic_name, NULL, NULL, GCP_IDEMPOTENT, p->timeout_ms, setup_answer, p);
		return;
	}
	/* The subscription: its static filter, kept 10 minutes of messages at
	 * most, gone when unused for subscription_ttl. */
	char filter[300], ttl[32];
	snprintf(filter, sizeof(filter), "attributes:to_%s OR (attributes:all AND attributes.from != \"%s\")", p->id,
	    p->id);
	snprintf(ttl, sizeof(ttl), "%" PRIu64 "s", p->sub_ttl_s);
	cJSON *req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "topic", p->topic_name);
	cJSON_AddStringToObject(req, "filter", filter);
	cJSON_AddNumberToObject(req, "ackDeadlineSeconds", 10);
	cJSON_AddStringToObject(req, "messageRetentionDuration", "600s");
	cJSON_AddTrueToObject(req, "enableMessageOrdering");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(req, "expirationPolicy"), "ttl", ttl);
	cJSON_AddStringToObject(cJSON_AddObjectToObject(req, "labels"), "mcpd", "transport");
	api(p, "PUT", p->sub_name, NULL, req, GCP_IDEMPOTENT, p->timeout_ms, setup_answer, p);
}

static void
setup_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	setup_step(arg);
}

/* ---- publishing ---- */

static void
out_free(struct out *o)
{
	free(o->channel);
	cJSON_Delete(o->msg);
	free(o);
}

static int
busy_channel(struct ps *p, const char *channel)
{
	for (size_t i = 0; i < MAX_CALLS; i++)
		if (p->calls[i].used)
			for (struct out *o = p->calls[i].msgs; o != NULL; o = o->next)
				if (strcmp(o->channel, channel) == 0)
					return 1;
	return 0;
}

static void published(void *arg, const struct gcp_result *r);

static void
flush(struct ps *p)
{
	if (p->setup != SU_DONE)
		return;
	for (size_t slot = 0; slot < MAX_CALLS && p->outq != NULL; slot++) {
		struct pcall *c = &p->calls[slot];
		if (c->used)
			continue;
		/* Waiting messages, oldest first, within a call's size, skipping
		 * a channel with one in flight or waiting before (its order is
		 * kept: one call at a time a channel). */
		struct out **pp = &p->outq, **tail = &c->msgs;
		size_t total = 0, looked = 0;
		c->n = 0;
		c->msgs = NULL;
		while (*pp != NULL && c->n < MAX_BATCH && looked++ < 1000) {
			struct out *o = *pp;
			int clash = busy_channel(p, o->channel);
			for (struct out *s = p->outq; !clash && s != o; s = s->next)
				clash = strcmp(s->channel, o->channel) == 0;
			if (clash || (c->n > 0 && total + o->size > MAX_BATCH_BYTES)) {
				pp = &o->next;
				continue;
			}
			*pp = o->next;
			o->next = NULL;
			*tail = o;
			tail = &o->next;
			total += o->size;
			c->n++;
			p->queued_bytes -= o->size;
		}
		p->outq_tail = &p->outq;
		while (*p->outq_tail != NULL)
			p->outq_tail = &(*p->outq_tail)->next;
		if (c->n == 0)
			continue;
		c->used = 1;
		c->p = p;
		cJSON *req = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(req, "messages");
		for (struct out *o = c->msgs; o != NULL; o = o->next)
			cJSON_AddItemReferenceToArray(arr, o->msg);
		api(p, "POST", p->topic_name, ":publish", req, 0, p->timeout_ms, published, c);
	}
}

static void
published(void *arg, const struct gcp_result *r)
{
	struct pcall *c = arg;
	struct ps *p = c->p;
	struct out *msgs = c->msgs;
	c->msgs = NULL;
	c->used = 0;
	if (r->code != NULL)
		say(p, MCPD_LOG_WARN, "%zu message(s) not published: %s", c->n, r->message);
	while (msgs != NULL) {
		struct out *o = msgs;
		msgs = o->next;
		if (o->cb)
			o->cb(o->arg, r->code == NULL ? MCPD_OK : MCPD_ERROR, r->message);
		out_free(o);
	}
	flush(p);
}

/* A message for the topic: data, the channel, the sender and attributes
 * kv (name, value pairs, NULL-terminated); addressed by route (to all
 * when to is NULL and route is 0, to to when given). */
static struct out *
message(struct ps *p, const char *channel, const void *data, size_t len, const char *const *kv, const char *to,
    int route)
{
	struct out *o = calloc(1, sizeof(*o));
	cJSON *m = cJSON_CreateObject(), *a = cJSON_AddObjectToObject(m, "attributes");
	char *d = b64_encode(data, len);
	if (o == NULL || m == NULL || a == NULL || d == NULL || (o->channel = strdup(channel)) == NULL) {
		free(o);
		free(d);
		cJSON_Delete(m);
		return NULL;
	}
	cJSON_AddStringToObject(m, "data", d);
	free(d);
	cJSON_AddStringToObject(a, "c", channel);
	cJSON_AddStringToObject(a, "from", p->id);
	for (size_t i = 0; kv != NULL && kv[i] != NULL; i += 2)
		cJSON_AddStringToObject(a, kv[i], kv[i + 1]);
	cJSON_AddStringToObject(m, "orderingKey", channel);
	if (route) {
		/* A data message: an id against duplicates. */
		char id[32];
		snprintf(id, sizeof(id), "%" PRIu64, ++p->next_id);
		cJSON_AddStringToObject(a, "id", id);
		snprintf(id, sizeof(id), "%" PRIu64, real_ms());
		cJSON_AddStringToObject(a, "t", id);
	}
	if (to != NULL) {
		char name[64];
		snprintf(name, sizeof(name), "to_%s", to);
		cJSON_AddStringToObject(a, name, "");
	} else if (route) {
		address(p, a, channel);
	} else {
		cJSON_AddStringToObject(a, "all", "");
	}
	/* Addressed to some workers: a copy kept for a holder that comes
	 * late (what went to all reached every worker). */
	if (route && cJSON_GetObjectItemCaseSensitive(a, "all") == NULL) {
		cJSON *copy = cJSON_Duplicate(m, 1);
		if (copy != NULL)
			recent_add(p, channel, copy, 4 * ((len + 2) / 3) + 2 * strlen(channel) + 400);
	}
	o->msg = m;
	o->size = 4 * ((len + 2) / 3) + 2 * strlen(channel) + 400 + (route ? MAX_HOLDERS * 48 : 0);
	return o;
}

static void
flush_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	flush(arg);
}

/* Publishes of one loop turn leave together, in one call: the first of a
 * burst would otherwise go alone, and the next few each in a call of
 * their own, while calls are free. A lone message waits for nothing but
 * the turn's end. */
static void
enqueue(struct ps *p, struct out *o)
{
	*p->outq_tail = o;
	p->outq_tail = &o->next;
	p->queued_bytes += o->size;
	struct timeval now = { 0, 0 };
	if (!event_pending(p->flush_ev, EV_TIMEOUT, NULL))
		event_add(p->flush_ev, &now);
}

/* Control messages (announcements, probes, counts): nobody waits for
 * them; dropped while not set up. */
static void
control(struct ps *p, const char *channel, const char *const *kv, const char *to)
{
	if (p->setup != SU_DONE || p->queued_bytes > MAX_QUEUED)
		return;
	struct out *o = message(p, channel, "", 0, kv, to, 0);
	if (o != NULL)
		enqueue(p, o);
}

static void
t_publish(void *inst, const char *channel, const void *msg, size_t len, const struct mcpd_publish_opts *opts,
    mcpd_done_cb *cb, void *arg)
{
	(void)opts;
	struct ps *p = inst;
	char why[300];
	if (p->setup != SU_DONE) {
		if (cb)
			cb(arg, MCPD_ERROR, p->setup_error[0] ? p->setup_error : "pubsub: not set up yet");
		return;
	}
	if (!channel_ok(channel)) {
		if (cb)
			cb(arg, MCPD_ERROR, "pubsub: a channel name Pub/Sub cannot carry");
		return;
	}
	size_t size = 4 * ((len + 2) / 3) + 2 * strlen(channel) + 400 + MAX_HOLDERS * 48;
	if (size > MAX_MESSAGE || p->queued_bytes + size > MAX_QUEUED) {
		if (size > MAX_MESSAGE)
			snprintf(why, sizeof(why), "pubsub: a message of %zu bytes on %.100s is over Pub/Sub's 10 MB (in "
			    "base64, with its attributes): not sent", len, channel);
		else
			snprintf(why, sizeof(why), "pubsub: more than %u MiB waiting to be published: not sent",
			    MAX_QUEUED >> 20);
		say(p, MCPD_LOG_WARN, "%s", why + 8);
		if (cb)
			cb(arg, MCPD_ERROR, why);
		return;
	}
	localq_push(&p->local, channel, msg, len);
	struct out *o = message(p, channel, msg, len, NULL, NULL, 1);
	if (o == NULL) {
		if (cb)
			cb(arg, MCPD_ERROR, "out of memory");
		return;
	}
	o->cb = cb;
	o->arg = arg;
	enqueue(p, o);
}

static void *
t_subscribe(void *inst, const char *channel, mcpd_message_cb *cb, void *arg)
{
	struct ps *p = inst;
	if (!channel_ok(channel))
		return NULL;
	int first = subs_count(&p->subs, channel) == 0;
	struct sub *s = subs_add(&p->subs, channel, cb, arg);
	if (s != NULL && first) {
		held_set(p, channel, 1);
		const char *kv[] = { "k", "sub", NULL };
		control(p, channel, kv, NULL);
	}
	return s;
}

static void
t_unsubscribe(void *inst, void *subscription)
{
	struct ps *p = inst;
	struct sub *s = subscription;
	if (!subs_mark(s))
		return;
	if (subs_count(&p->subs, s->channel) == 0) {
		held_set(p, s->channel, 0);
		const char *kv[] = { "k", "unsub", NULL };
		control(p, s->channel, kv, NULL);
	}
	subs_release(&p->subs, s);
}

/* ---- receiving ---- */

static void count_answer(struct ps *p, const char *id, const char *n);

static const char *
attr(const cJSON *attrs, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(attrs, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void
handle(struct ps *p, const cJSON *m)
{
	const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(m, "attributes");
	const char *channel = attr(attrs, "c"), *from = attr(attrs, "from"), *kind = attr(attrs, "k");
	char mine[64];
	snprintf(mine, sizeof(mine), "to_%s", p->id);
	int to_me = attr(attrs, mine) != NULL;
	int to_all = attr(attrs, "all") != NULL;
	/* What the subscription's filter lets through (the emulator lets
	 * everything through). */
	if (channel == NULL || from == NULL || !(to_me || (to_all && strcmp(from, p->id) != 0)))
		return;
	if (kind != NULL) {
		if (strcmp(kind, "sub") == 0) {
			route_hold(p, channel, from, 1);
			if (id_ok(from))
				resend(p, channel, from);
		} else if (strcmp(kind, "hold") == 0) {
			/* An answer may cross messages addressed without its
			 * sender: it gets them again. */
			if (route_hold(p, channel, from, 1))
				resend(p, channel, from);
		} else if (strcmp(kind, "unsub") == 0) {
			route_hold(p, channel, from, 0);
		} else if (strcmp(kind, "probe") == 0) {
			size_t n = subs_count(&p->subs, channel);
			const char *id = attr(attrs, "id");
			if (n > 0 && id != NULL && id_ok(from)) {
				char num[32];
				snprintf(num, sizeof(num), "%zu", n);
				const char *kv[] = { "k", "count", "id", id, "n", num, NULL };
				control(p, channel, kv, from);
			}
		} else if (strcmp(kind, "count") == 0) {
			if (route_hold(p, channel, from, 1))
				resend(p, channel, from);
			count_answer(p, attr(attrs, "id"), attr(attrs, "n"));
		}
		return;
	}
	if (subs_count(&p->subs, channel) == 0)
		return;
	if (to_all && id_ok(from) && reply_due(p, channel, from)) {
		/* The sender did not know we hold it: tell it, now and then. */
		const char *kv[] = { "k", "hold", NULL };
		control(p, channel, kv, from);
	}
	if (attr(attrs, "re") != NULL) {
		/* Sent again: only if published after our first subscriber came. */
		struct held *h = *held_find(p, channel);
		const char *t = attr(attrs, "t");
		if (h == NULL || t == NULL || strtoull(t, NULL, 10) < h->since)
			return;
	}
	const char *mid = attr(attrs, "id");
	char key[64];
	if (mid != NULL) {
		snprintf(key, sizeof(key), "%.39s/%.20s", from, mid);
		if (seen_has(p, key))
			return;                 /* delivered already */
		seen_add(p, key);
	}
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(m, "data");
	size_t len = 0;
	unsigned char *bytes = cJSON_IsString(data) ? b64_decode(data->valuestring, &len) : NULL;
	if (cJSON_IsString(data) && bytes == NULL)
		return;
	subs_deliver(&p->subs, channel, bytes ? (const char *)bytes : "", bytes ? len : 0);
	free(bytes);
}

static void
acked(void *arg, const struct gcp_result *r)
{
	struct ps *p = arg;
	if (r->code != NULL)
		say(p, MCPD_LOG_WARN, "messages received but not acknowledged (they will come again): %s", r->message);
}

static void
pulled(void *arg, const struct gcp_result *r)
{
	struct ps *p = arg;
	p->pulling = 0;
	if (r->code != NULL) {
		if (strcmp(r->code, "NOT_FOUND") == 0) {
			/* Deleted (expired, or by hand): made again. */
			say(p, MCPD_LOG_WARN, "subscription %s is gone; making it again", p->sub_name);
			p->setup = SU_TOPIC;
			setup_step(p);
			return;
		}
		if (r->status == 0 && strstr(r->message ? r->message : "", "larger than") != NULL)
			p->small_pulls = 10;    /* a message too large for a page of them */
		/* A pull that timed out waiting is normal; others the client logs. */
		struct timeval tv = { 0, r->status == 0 && strstr(r->message ? r->message : "", "imed out") ? 0 : 500000 };
		evtimer_add(p->pull_timer, &tv);
		return;
	}
	if (p->small_pulls > 0)
		p->small_pulls--;
	cJSON *j = cJSON_ParseWithLength(r->body, r->len);
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "receivedMessages"), *m;
	cJSON *ids = NULL;
	cJSON_ArrayForEach(m, msgs) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "ackId");
		if (cJSON_IsString(id)) {
			if (ids == NULL)
				ids = cJSON_CreateArray();
			cJSON_AddItemToArray(ids, cJSON_CreateString(id->valuestring));
		}
	}
	/* Acknowledged as they are delivered: a worker that dies in between
	 * has them sent again (after the ack deadline), at least once. */
	if (ids != NULL) {
		cJSON *req = cJSON_CreateObject();
		cJSON_AddItemToObject(req, "ackIds", ids);
		api(p, "POST", p->sub_name, ":acknowledge", req, GCP_IDEMPOTENT, p->timeout_ms, acked, p);
	}
	pull(p);
	cJSON_ArrayForEach(m, msgs)
		handle(p, cJSON_GetObjectItemCaseSensitive(m, "message"));
	cJSON_Delete(j);
}

static void
pull(struct ps *p)
{
	if (p->pulling || p->setup != SU_DONE)
		return;
	cJSON *req = cJSON_CreateObject();
	cJSON_AddNumberToObject(req, "maxMessages", p->small_pulls > 0 ? 1 : 100);
	p->pulling = 1;
	/* Quiet: a long pull that ends at its bound is not a failure. */
	api(p, "POST", p->sub_name, ":pull", req, GCP_IDEMPOTENT | GCP_QUIET, p->wait_ms, pulled, p);
}

static void
pull_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	pull(arg);
}

/* A pull that waits is quiet (it ends at its bound when nothing comes):
 * readiness follows a look at the topic, every IDLE_CHECK_MS when no call
 * succeeded meanwhile, every second while calls fail. */
static void
check_done(void *arg, const struct gcp_result *r)
{
	struct ps *p = arg;
	(void)r;
	p->checking = 0;
}

static void
check_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct ps *p = arg;
	char why[16];
	if (p->checking || p->setup != SU_DONE || (gcp_client_status(p->client, why, sizeof(why)) == 0 &&
	    gcp_client_idle_ms(p->client) < IDLE_CHECK_MS))
		return;
	p->checking = 1;
	api(p, "GET", p->topic_name, NULL, NULL, GCP_IDEMPOTENT, p->timeout_ms, check_done, p);
}

/* ---- has_subscribers ---- */

static void
probe_free(struct probe *pr)
{
	for (struct probe **pp = &pr->p->probes; *pp != NULL; pp = &(*pp)->next)
		if (*pp == pr) {
			*pp = pr->next;
			break;
		}
	if (pr->timer != NULL)
		event_free(pr->timer);
	free(pr);
}

static void
probe_done(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct probe *pr = arg;
	mcpd_int_cb *cb = pr->cb;
	void *a = pr->arg;
	int64_t sum = pr->sum;
	probe_free(pr);
	cb(a, MCPD_OK, sum, NULL);
}

static void
count_answer(struct ps *p, const char *id, const char *n)
{
	if (id == NULL || n == NULL)
		return;
	uint64_t want = strtoull(id, NULL, 10);
	for (struct probe *pr = p->probes; pr != NULL; pr = pr->next)
		if (pr->id == want) {
			long long v = strtoll(n, NULL, 10);
			if (v > 0 && v < 1000000)
				pr->sum += v;
			return;
		}
}

static void
t_has_subscribers(void *inst, const char *channel, mcpd_int_cb *cb, void *arg)
{
	struct ps *p = inst;
	if (p->setup != SU_DONE) {
		cb(arg, MCPD_ERROR, 0, p->setup_error[0] ? p->setup_error : "pubsub: not set up yet");
		return;
	}
	if (!channel_ok(channel)) {
		cb(arg, MCPD_ERROR, 0, "pubsub: a channel name Pub/Sub cannot carry");
		return;
	}
	struct probe *pr = calloc(1, sizeof(*pr));
	if (pr == NULL) {
		cb(arg, MCPD_ERROR, 0, "out of memory");
		return;
	}
	pr->p = p;
	pr->id = ++p->next_probe;
	pr->sum = (int64_t)subs_count(&p->subs, channel);
	pr->cb = cb;
	pr->arg = arg;
	pr->next = p->probes;
	p->probes = pr;
	if ((pr->timer = evtimer_new(p->host->event_base(), probe_done, pr)) == NULL) {
		probe_free(pr);
		cb(arg, MCPD_ERROR, 0, "out of memory");
		return;
	}
	struct timeval tv = { (time_t)(p->presence_ms / 1000), (suseconds_t)(p->presence_ms % 1000) * 1000 };
	evtimer_add(pr->timer, &tv);
	char id[32];
	snprintf(id, sizeof(id), "%" PRIu64, pr->id);
	const char *kv[] = { "k", "probe", "id", id, NULL };
	control(p, channel, kv, NULL);
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
use_auth(const struct ps *p)
{
	return p->credentials >= 0 ? p->credentials : !p->emulator;
}

#define CHECK_MS 3000

struct check {
	struct event_base *base;
	int done, missing, no_project;
	char why[900];
};

static void
checked(void *arg, const struct gcp_result *r)
{
	struct check *k = arg;
	k->done = 1;
	k->missing = r->code != NULL && strcmp(r->code, "NOT_FOUND") == 0;
	k->no_project = gcp_project_missing(r);
	snprintf(k->why, sizeof(k->why), "%s", r->message ? r->message : "");
	event_base_loopbreak(k->base);
}

/* At configuration time (mcpd -t too): does the topic exist? Asked once
 * on a loop of our own within CHECK_MS; only a definite "no such topic"
 * (unless create_topic) or "no such project" is an error (the service
 * unreachable now is the workers' to wait for). */
static int
topic_check(struct ps *p, char *err, size_t errlen)
{
	struct check k = { 0 };
	char why[700], name[400];
	if ((k.base = event_base_new()) == NULL)
		return 0;
	struct gcp_client *c = gcp_client_new(k.base, p->host, use_auth(p), "pubsub", why, sizeof(why));
	snprintf(name, sizeof(name), "projects/%s/topics/%s", p->project, p->topic);
	char *url = api_url(p, name, NULL);
	if (c != NULL && url != NULL) {
		gcp_call(c, "GET", url, NULL, 0, GCP_IDEMPOTENT, CHECK_MS * 2 / 3, CHECK_MS, checked, &k);
		struct timeval tv = { CHECK_MS / 1000 + 1, 0 };
		event_base_loopexit(k.base, &tv);
		event_base_dispatch(k.base);
	}
	free(url);
	gcp_client_free(c);
	event_base_free(k.base);
	if (k.no_project) {
		section_say(err, errlen, "pubsub: project %s not found, or the credentials have no access to it (is "
		    "project: right?)", p->project);
		return -1;
	}
	if (k.missing && p->create_topic)
		return 0;
	if (k.missing) {
		section_say(err, errlen, "pubsub: topic %s does not exist in project %s (create it, or set create_topic: "
		    "true)", p->topic, p->project);
		return -1;
	}
	if (!k.done)
		p->host->log(MCPD_LOG_WARN, "pubsub: topic %s not checked: no answer within %dms", p->topic, CHECK_MS);
	else if (k.why[0])
		p->host->log(MCPD_LOG_WARN, "pubsub: topic %s not checked: %s", p->topic, k.why);
	return 0;
}

static void
ps_free(struct ps *p)
{
	free(p->project);
	free(p->topic);
	free(p->prefix);
	free(p->endpoint);
	free(p);
}

static int
parse_bool(const struct mcpd_host *h, const struct mcpd_config *n, const char *key, int *out, char *err, size_t errlen)
{
	const char *v = h->config_scalar(n);
	if (v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)) {
		*out = strcmp(v, "true") == 0;
		return 0;
	}
	return section_error(h, n, err, errlen, "%s must be true or false", key);
}

static void *
ps_create(const struct mcpd_host *host, const struct mcpd_config *section, char *err, size_t errlen)
{
	struct ps *p = calloc(1, sizeof(*p));
	if (p == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->host = host;
	p->timeout_ms = 3000;
	p->wait_ms = 20000;
	p->presence_ms = 500;
	p->credentials = -1;
	uint64_t sub_ttl_ms = 86400000;
	const struct mcpd_config *topic_node = NULL, *prefix_node = NULL, *project_node = NULL;
	for (size_t i = 0; i < host->config_count(section); i++) {
		const char *key;
		const struct mcpd_config *n = host->config_item(section, i, &key);
		int rc = 0;
		if (strcmp(key, "plugin") == 0)
			continue;
		if (strcmp(key, "topic") == 0) {
			rc = section_string(host, n, key, &p->topic, err, errlen);
			topic_node = n;
		} else if (strcmp(key, "project") == 0) {
			rc = section_string(host, n, key, &p->project, err, errlen);
			project_node = n;
		} else if (strcmp(key, "subscription_prefix") == 0) {
			rc = section_string(host, n, key, &p->prefix, err, errlen);
			prefix_node = n;
		} else if (strcmp(key, "endpoint") == 0) {
			rc = section_string(host, n, key, &p->endpoint, err, errlen);
		} else if (strcmp(key, "create_topic") == 0) {
			rc = parse_bool(host, n, key, &p->create_topic, err, errlen);
		} else if (strcmp(key, "credentials") == 0) {
			const char *v = host->config_scalar(n);
			if (v != NULL && (strcmp(v, "default") == 0 || strcmp(v, "none") == 0))
				p->credentials = strcmp(v, "default") == 0;
			else
				rc = section_error(host, n, err, errlen, "credentials must be default or none");
		} else if (strcmp(key, "timeout") == 0) {
			rc = section_duration(host, n, key, 100, 60000, "100ms to 60s", &p->timeout_ms, err, errlen);
		} else if (strcmp(key, "wait") == 0) {
			rc = section_duration(host, n, key, 1000, 60000, "1s to 60s", &p->wait_ms, err, errlen);
		} else if (strcmp(key, "presence_timeout") == 0) {
			rc = section_duration(host, n, key, 10, 30000, "10ms to 30s", &p->presence_ms, err, errlen);
		} else if (strcmp(key, "subscription_ttl") == 0) {
			rc = section_duration(host, n, key, 86400000, 31 * 86400000ULL, "1 day (Google's least) to 31 days",
			    &sub_ttl_ms, err, errlen);
		} else {
			rc = section_error(host, n, err, errlen, "unknown key \"%s\" (pubsub takes topic, project, "
			    "create_topic, subscription_prefix, endpoint, credentials, timeout, wait, presence_timeout, "
			    "subscription_ttl)", key);
		}
		if (rc < 0)
			goto fail;
	}
	p->sub_ttl_s = sub_ttl_ms / 1000;
	if (p->topic == NULL) {
		section_say(err, errlen, "pubsub needs topic: (the Pub/Sub topic's name)");
		goto fail;
	}
	/* Google's rule: 3 to 255 characters, a letter first, then letters,
	 * digits and - _ . ~ + %, not beginning with goog. */
	size_t tl = strlen(p->topic);
	if (tl < 3 || tl > 255 || !((p->topic[0] >= 'a' && p->topic[0] <= 'z') || (p->topic[0] >= 'A' && p->topic[0] <= 'Z')) ||
	    strspn(p->topic, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~+") != tl ||
	    strncasecmp(p->topic, "goog", 4) == 0) {
		section_error(host, topic_node, err, errlen, "topic must be 3 to 255 letters, digits, '-', '_', '.', '~' "
		    "or '+', beginning with a letter (not goog)");
		goto fail;
	}
	if (p->prefix == NULL && (p->prefix = strdup("mcpd-")) == NULL)
		goto oom;
	size_t pl = strlen(p->prefix);
	if (pl == 0 || pl > 100 || !((p->prefix[0] >= 'a' && p->prefix[0] <= 'z') || (p->prefix[0] >= 'A' &&
	    p->prefix[0] <= 'Z')) || strspn(p->prefix, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != pl ||
	    strncasecmp(p->prefix, "goog", 4) == 0) {
		section_error(host, prefix_node, err, errlen, "subscription_prefix must be 1 to 100 letters, digits, '-', "
		    "'_' or '.', beginning with a letter");
		goto fail;
	}
	char why[700], what[700], fproject[128] = "";
	if (gcp_endpoint(p->endpoint, "PUBSUB_EMULATOR_HOST", GOOGLE_URL, p->url, sizeof(p->url), &p->emulator, why,
	    sizeof(why)) < 0) {
		section_say(err, errlen, "pubsub: %s", why);
		goto fail;
	}
	if (use_auth(p) && gcp_auth_probe(what, sizeof(what), fproject, sizeof(fproject), why, sizeof(why)) < 0) {
		section_say(err, errlen, "pubsub: %s", why);
		goto fail;
	}
	if (p->project == NULL) {
		const char *e = getenv("GOOGLE_CLOUD_PROJECT");
		if (e == NULL || *e == '\0')
			e = getenv("GCLOUD_PROJECT");
		if ((e == NULL || *e == '\0') && fproject[0])
			e = fproject;
		if (e == NULL || *e == '\0') {
			section_say(err, errlen, "pubsub needs project: (or GOOGLE_CLOUD_PROJECT, or a service account key "
			    "naming one)");
			goto fail;
		}
		if ((p->project = strdup(e)) == NULL)
			goto oom;
	}
	size_t prl = strlen(p->project);
	if (prl < 6 || prl > 63 || strspn(p->project, "abcdefghijklmnopqrstuvwxyz0123456789-.:") != prl) {
		if (project_node != NULL)
			section_error(host, project_node, err, errlen, "project must be a project id (6 to 30 lowercase "
			    "letters, digits and '-')");
		else
			section_say(err, errlen, "pubsub: the project %.100s is not a project id", p->project);
		goto fail;
	}
	if (topic_check(p, err, errlen) < 0)
		goto fail;
	unsigned char rnd[8];
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		section_say(err, errlen, "pubsub: no random bytes for the instance's id");
		goto fail;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(p->instance + 2 * i, 3, "%02x", rnd[i]);
	return p;
oom:
	section_say(err, errlen, "out of memory");
fail:
	ps_free(p);
	return NULL;
}

static int
ps_attach(void *inst, char *err, size_t errlen)
{
	struct ps *p = inst;
	struct event_base *base = p->host->event_base();
	snprintf(p->id, sizeof(p->id), "%s_%u", p->instance, p->host->worker_id());
	snprintf(p->sub_name, sizeof(p->sub_name), "projects/%s/subscriptions/%s%s-%u", p->project, p->prefix,
	    p->instance, p->host->worker_id());
	snprintf(p->topic_name, sizeof(p->topic_name), "projects/%s/topics/%s", p->project, p->topic);
	p->outq_tail = &p->outq;
	p->recent_tail = &p->recent;
	if ((p->client = gcp_client_new(base, p->host, use_auth(p), "pubsub", err, errlen)) == NULL)
		return -1;
	p->setup_timer = evtimer_new(base, setup_timer_cb, p);
	p->pull_timer = evtimer_new(base, pull_timer_cb, p);
	p->check_timer = event_new(base, -1, EV_PERSIST, check_cb, p);
	p->flush_ev = evtimer_new(base, flush_cb, p);
	int lq = localq_init(&p->local, base, &p->subs);
	if (p->setup_timer == NULL || p->pull_timer == NULL || lq < 0 || p->check_timer == NULL ||
	    p->flush_ev == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	struct timeval cv = { CHECK_EVERY_MS / 1000, (CHECK_EVERY_MS % 1000) * 1000 };
	event_add(p->check_timer, &cv);
	snprintf(p->setup_error, sizeof(p->setup_error), "pubsub: setting up subscription %s", p->sub_name);
	p->setup = SU_TOPIC;
	setup_step(p);
	return 0;
}

struct cleanup {
	struct event_base *base;
	int pending;
};

static void
cleaned(void *arg, const struct gcp_result *r)
{
	(void)r;
	struct cleanup *c = arg;
	if (--c->pending == 0)
		event_base_loopbreak(c->base);
}

/* A worker that stops takes its subscription away, within CLEANUP_MS, on
 * a loop of its own (the worker's has ended). */
static void
cleanup(struct ps *p)
{
	if (p->setup != SU_DONE)
		return;
	struct cleanup c = { event_base_new(), 0 };
	char why[300];
	struct gcp_client *cl = c.base ? gcp_client_new(c.base, p->host, use_auth(p), "pubsub", why, sizeof(why)) : NULL;
	char *url = api_url(p, p->sub_name, NULL);
	if (cl != NULL && url != NULL) {
		c.pending++;
		gcp_call(cl, "DELETE", url, NULL, 0, GCP_IDEMPOTENT | GCP_QUIET, CLEANUP_MS, CLEANUP_MS, cleaned, &c);
		struct timeval tv = { CLEANUP_MS / 1000 + 1, 0 };
		event_base_loopexit(c.base, &tv);
		event_base_dispatch(c.base);
	}
	free(url);
	gcp_client_free(cl);
	if (c.base != NULL)
		event_base_free(c.base);
}

static void
ps_detach(void *inst)
{
	struct ps *p = inst;
	gcp_client_free(p->client);         /* calls in flight dropped, callbacks unheard */
	p->client = NULL;
	cleanup(p);
	struct event **evs[] = { &p->setup_timer, &p->pull_timer, &p->check_timer, &p->flush_ev };
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (*evs[i] != NULL) {
			event_free(*evs[i]);
			*evs[i] = NULL;
		}
	while (p->outq != NULL) {
		struct out *o = p->outq;
		p->outq = o->next;
		out_free(o);
	}
	for (size_t i = 0; i < MAX_CALLS; i++) {
		while (p->calls[i].msgs != NULL) {
			struct out *o = p->calls[i].msgs;
			p->calls[i].msgs = o->next;
			out_free(o);
		}
		p->calls[i].used = 0;
	}
	while (p->probes != NULL)
		probe_free(p->probes);
	localq_clear(&p->local);
	subs_clear(&p->subs);
	routes_clear(p);
	held_clear(p);
	recent_clear(p);
	memset(p->seen, 0, sizeof(p->seen));
	memset(p->seen_buckets, 0, sizeof(p->seen_buckets));
	p->setup = SU_TOPIC;
	p->pulling = p->checking = p->setup_busy = 0;
}

static void
ps_destroy(void *inst)
{
	ps_free(inst);
}

static int
ps_status(void *inst, char *why, size_t len)
{
	struct ps *p = inst;
	if (p->client == NULL) {
		snprintf(why, len, "not attached");
		return -1;
	}
	if (p->setup != SU_DONE) {
		snprintf(why, len, "%s", p->setup_error);
		return -1;
	}
	return gcp_client_status(p->client, why, len);
}

static const struct mcpd_plugin descriptor = {
	.size = sizeof(struct mcpd_plugin),
	.abi_major = MCPD_PLUGIN_ABI_MAJOR,
	.abi_minor = MCPD_PLUGIN_ABI_MINOR,
	.kind = MCPD_PLUGIN_TRANSPORT,
	.name = "pubsub",
	.version = "1.0.0",
	.create = ps_create,
	.attach = ps_attach,
	.detach = ps_detach,
	.destroy = ps_destroy,
	.ops = &transport_ops,
	.status = ps_status,
};

const struct mcpd_plugin *
mcpd_plugin_entry(void)
{
	return &descriptor;
}
