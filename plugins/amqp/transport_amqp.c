/*
 * amqp: the transport on an AMQP 1.0 broker (RabbitMQ, ActiveMQ, Azure
 * Service Bus, or any broker through address templates), so that several
 * mcpd instances deliver session messages to each other. Built against
 * <mcpd/plugin.h> alone, with Qpid Proton's C library driven from the
 * worker's loop (conn.c): no thread, nothing that waits.
 *
 *   transport: { plugin: amqp, url: "amqp://mcpd:secret@broker:5672", flavor: rabbitmq }
 *
 * Addresses. Each worker of each instance has an id, <instance>-<worker>
 * (the instance a random id drawn when the configuration is loaded), and
 * two addresses: its own, and "all", that every worker receives. Both are
 * static: a worker attaches its receivers once per connection, never one
 * per channel. The flavor gives them:
 *   rabbitmq    /exchange/<exchange>/<prefix>w.<id> and .../<prefix>all on
 *               a topic exchange (amq.topic): RabbitMQ binds a queue of
 *               the link's own to the key, deleted with the link;
 *   activemq    topic://<prefix>w.<id> and topic://<prefix>all (ActiveMQ's
 *               non-durable topic subscriptions, gone with the link);
 *   servicebus  one topic for all; each worker receives from its own
 *               subscription, <topic>/Subscriptions/<prefix><id>, whose
 *               rule keeps the messages whose "to" is its id or "all";
 *               tokens go to $cbs (put-token) before any link: SAS
 *               tokens signed with a key, a token_file's, or Entra ID
 *               tokens mcpd fetches (azure_auth.c), renewed before
 *               they end;
 *   generic     worker_address and all_address templates ({prefix},
 *               {worker}, {exchange}, {topic}); receive_address, when
 *               given, is the one address a worker receives both from.
 *
 * Routing. A message goes only to the workers that hold a subscriber of
 * its channel: each worker announces to "all" its count of subscribers
 * of a channel whenever it changes (0: none left), answers a newcomer's
 * hello with its whole set (also to "all": what a worker says of itself
 * goes on one link, and so arrives in order), and beats every heartbeat;
 * presence.c keeps what it hears, and forgets a worker silent for three
 * beats. A publish goes to each holder's address, one message each;
 * has_subscribers sums the local count and the table, at once. A message
 * on a channel with no holder known goes to "all" (a holder's
 * announcement may still be on its way: a cancel sent just after the
 * call began), and the channel is then quiet for a second: its messages
 * go nowhere unless a holder announces itself. A worker that announces
 * a channel it did not hold is sent the channel's messages of the last
 * two seconds that did not go to it (its announcement crossed them). A
 * worker that gets a
 * message addressed to it on a channel it no longer holds says so (count
 * 0). Past the table's bounds a message goes to "all".
 *
 * Wire format: application properties op ("m" message, "n" count, "hello",
 * "sync", "beat", "bye"), from (the sender's id), to (the addressee's id or
 * "all", for Service Bus's rule), ch (the channel, as binary) and n; the
 * payload is the body's one data section.
 *
 * Delivery is at most once, to those subscribed when the message arrives,
 * as on the redis and nats transports: mcpd stores what must not be lost.
 * A publish succeeds once the broker accepted every copy (settled
 * unsettled-mode deliveries); a rejected or released message, a link the
 * broker closed, a message over the broker's max-message-size, or a
 * connection lost before the broker said, is an error the caller hears
 * and the log tells.
 */
#include "amqp.h"

#include "azure_auth.h"
#include "clock.h"
#include "section.h"

#include <errno.h>
#include <event2/event.h>
#include <proton/codec.h>
#include <proton/message.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define SYNC_PART_MAX (128u << 10)      /* bytes of one sync message's body */
#define QUIET_MS 1000                   /* a channel without holders goes quiet for */
#define SB_SCOPE "https://servicebus.azure.net/.default"       /* Entra ID's, for Service Bus */

/* What was published lately, for a holder whose announcement crossed it:
 * when a worker announces a channel it did not hold, it is sent the
 * channel's messages of the last RECENT_MS that did not go to it. */
#define RECENT_MS 2000
#define RECENT_PER_CHANNEL 16
#define RECENT_BYTES (4u << 20)
#define RECENT_BUCKETS 1024

struct recent {
	char *channel;
	uint64_t at;
	char *msg;
	size_t len;
	char *to;                           /* ",id,id," that it went to; NULL: every worker */
	struct recent *next;                /* in its bucket, newest first */
};

struct local {                          /* a message for this worker's own subscribers */
	char *channel;
	char *msg;
	size_t len;
	struct local *next;
};


static unsigned
recent_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h % RECENT_BUCKETS;
}

static void
recent_unlink(struct amqp *a, struct recent **rr)
{
	struct recent *r = *rr;
	*rr = r->next;
	a->recent_bytes -= r->len + strlen(r->channel) + (r->to ? strlen(r->to) : 0);
	free(r->channel);
	free(r->msg);
	free(r->to);
	free(r);
}

/* Drops what is older than RECENT_MS in a bucket; counts channel's. */
static size_t
recent_trim(struct amqp *a, unsigned b, const char *channel, uint64_t now)
{
	size_t n = 0;
	for (struct recent **rr = &a->recents[b]; *rr != NULL;) {
		if ((*rr)->at + RECENT_MS < now || (channel && strcmp((*rr)->channel, channel) == 0 &&
		    n >= RECENT_PER_CHANNEL)) {
			recent_unlink(a, rr);
			continue;
		}
		if (channel && strcmp((*rr)->channel, channel) == 0)
			n++;
		rr = &(*rr)->next;
	}
	return n;
}

static void
recent_keep(struct amqp *a, const char *channel, const void *msg, size_t len, const char *to, uint64_t now)
{
	unsigned b = recent_hash(channel);
	recent_trim(a, b, channel, now);
	size_t size = len + strlen(channel) + (to ? strlen(to) : 0);
	if (a->recent_bytes + size > RECENT_BYTES)
		return;
	struct recent *r = calloc(1, sizeof(*r));
	if (r == NULL || (r->channel = strdup(channel)) == NULL || (r->msg = malloc(len ? len : 1)) == NULL ||
	    (to != NULL && (r->to = strdup(to)) == NULL)) {
		if (r != NULL) {
			free(r->channel);
			free(r->msg);
		}
		free(r);
		return;
	}
	memcpy(r->msg, msg, len);
	r->len = len;
	r->at = now;
	r->next = a->recents[b];
	a->recents[b] = r;
	a->recent_bytes += size;
}

static void
recent_clear(struct amqp *a)
{
	for (size_t b = 0; b < RECENT_BUCKETS; b++)
		while (a->recents[b] != NULL)
			recent_unlink(a, &a->recents[b]);
}

/* ---- messages ---- */

struct wire {
	const char *op, *to, *ch;
	size_t chlen;
	uint64_t n;
	int has_n;
	const char *body;
	size_t len;
};

/* The message as bytes, malloc'ed; NULL when it cannot be encoded. */
static char *
encode(struct amqp *a, const struct wire *w, size_t *len)
{
	pn_message_t *m = a->msg;
	pn_message_clear(m);
	pn_message_set_inferred(m, true);
	pn_data_t *p = pn_message_properties(m);
	pn_data_put_map(p);
	pn_data_enter(p);
	pn_data_put_string(p, pn_bytes(2, "op"));
	pn_data_put_string(p, pn_bytes(strlen(w->op), w->op));
	pn_data_put_string(p, pn_bytes(4, "from"));
	pn_data_put_string(p, pn_bytes(strlen(a->me), a->me));
	pn_data_put_string(p, pn_bytes(2, "to"));
	pn_data_put_string(p, pn_bytes(strlen(w->to), w->to));
	if (w->ch != NULL) {
		pn_data_put_string(p, pn_bytes(2, "ch"));
		pn_data_put_binary(p, pn_bytes(w->chlen, w->ch));
	}
	if (w->has_n) {
		pn_data_put_string(p, pn_bytes(1, "n"));
		pn_data_put_ulong(p, w->n);
	}
	pn_data_exit(p);
	pn_data_put_binary(pn_message_body(m), pn_bytes(w->len, w->body ? w->body : ""));
	pn_rwbytes_t buf = { 0, NULL };
	ssize_t n = pn_message_encode2(m, &buf);
	pn_message_clear(m);
	if (n < 0) {
		free(buf.start);
		return NULL;
	}
	*len = (size_t)n;
	return buf.start;
}

/* The properties that matter, copied out of the message. */
struct got {
	char op[8];
	char from[PRESENCE_ID_MAX + 1];
	char ch[AMQP_MAX_CHANNEL + 1];
	int has_ch;
	int to_all;                         /* sent to every worker */
	uint64_t n;
	const char *body;                   /* in the message: valid until the next clear */
	size_t len;
};

static int
prop_eq(pn_bytes_t k, const char *name)
{
	return k.size == strlen(name) && memcmp(k.start, name, k.size) == 0;
}

static int
read_message(struct amqp *a, const char *bytes, size_t len, struct got *g)
{
	pn_message_t *m = a->msg;
	pn_message_clear(m);
	memset(g, 0, sizeof(*g));
	if (pn_message_decode(m, bytes, len) != 0)
		return -1;
	pn_data_t *p = pn_message_properties(m);
	pn_data_rewind(p);
	if (!pn_data_next(p) || pn_data_type(p) != PN_MAP)
		return -1;
	pn_data_enter(p);
	while (pn_data_next(p)) {
		pn_bytes_t k = pn_data_type(p) == PN_STRING ? pn_data_get_string(p) : pn_bytes(0, "");
		if (!pn_data_next(p))
			return -1;
		pn_type_t t = pn_data_type(p);
		if (prop_eq(k, "op") && t == PN_STRING) {
			pn_bytes_t v = pn_data_get_string(p);
			if (v.size >= sizeof(g->op))
				return -1;
			memcpy(g->op, v.start, v.size);
		} else if (prop_eq(k, "from") && t == PN_STRING) {
			pn_bytes_t v = pn_data_get_string(p);
			if (v.size > PRESENCE_ID_MAX)
				return -1;
			memcpy(g->from, v.start, v.size);
		} else if (prop_eq(k, "ch") && (t == PN_BINARY || t == PN_STRING)) {
			pn_bytes_t v = t == PN_BINARY ? pn_data_get_binary(p) : pn_data_get_string(p);
			if (v.size == 0 || v.size > AMQP_MAX_CHANNEL || memchr(v.start, '\0', v.size) != NULL)
				return -1;
			memcpy(g->ch, v.start, v.size);
			g->has_ch = 1;
		} else if (prop_eq(k, "to") && t == PN_STRING) {
			pn_bytes_t v = pn_data_get_string(p);
			g->to_all = v.size == 3 && memcmp(v.start, "all", 3) == 0;
		} else if (prop_eq(k, "n") && t == PN_ULONG) {
			g->n = pn_data_get_ulong(p);
		}
	}
	pn_data_t *b = pn_message_body(m);
	pn_data_rewind(b);
	if (pn_data_next(b) && (pn_data_type(b) == PN_BINARY || pn_data_type(b) == PN_STRING)) {
		pn_bytes_t v = pn_data_type(b) == PN_BINARY ? pn_data_get_binary(b) : pn_data_get_string(b);
		g->body = v.start;
		g->len = v.size;
	}
	if (!presence_id_ok(g->from) || g->op[0] == '\0')
		return -1;
	return 0;
}

/* Sends a message to a worker's address ("all": every worker's). */
static void
send_to(struct amqp *a, const char *worker, struct wire *w, struct op *op)
{
	w->to = worker;
	size_t len = 0;
	char *bytes = encode(a, w, &len);
	char *address = conn_address(a, worker, 0);
	if (bytes == NULL || address == NULL) {
		free(bytes);
		free(address);
		if (op != NULL)
			op_fail(op, "amqp: out of memory");
		return;
	}
	conn_send(a, address, bytes, len, op);
	free(address);
}

static void
announce(struct amqp *a, const char *channel, size_t count)
{
	if (!conn_up(a))
		return;         /* the whole set goes out once connected */
	struct wire w = { .op = "n", .ch = channel, .chlen = strlen(channel), .n = count, .has_n = 1 };
	send_to(a, "all", &w, NULL);
}

/* ---- sync: a worker's whole set, in parts ---- */

static int
sync_add(char **buf, size_t *len, size_t *cap, const char *ch, uint32_t n)
{
	size_t cl = strlen(ch);
	if (*len + 8 + cl > *cap) {
		size_t c = (*len + 8 + cl) * 2;
		char *p = realloc(*buf, c);
		if (p == NULL)
			return -1;
		*buf = p;
		*cap = c;
	}
	unsigned char *o = (unsigned char *)*buf + *len;
	o[0] = (unsigned char)(n >> 24), o[1] = (unsigned char)(n >> 16), o[2] = (unsigned char)(n >> 8);
	o[3] = (unsigned char)n;
	o[4] = (unsigned char)(cl >> 24), o[5] = (unsigned char)(cl >> 16), o[6] = (unsigned char)(cl >> 8);
	o[7] = (unsigned char)cl;
	memcpy(o + 8, ch, cl);
	*len += 8 + cl;
	return 0;
}

/* Sends this worker's channels and counts to every worker; the first
 * part (n = 0) tells them to forget what they had of it. What a worker
 * says of itself always goes to "all", one link, so that it arrives in
 * the order it was said. */
static void
send_sync(struct amqp *a)
{
	const char *worker = "all";
	char *buf = NULL;
	size_t len = 0, cap = 0;
	uint64_t part = 0;
	for (size_t b = 0; b < SUBS_BUCKETS; b++) {
		for (struct sub *s = a->subs.buckets[b]; s != NULL; s = s->next) {
			if (s->dead)
				continue;
			int seen = 0;       /* counted already, at an earlier sub of the same channel */
			for (struct sub *t = a->subs.buckets[b]; t != s; t = t->next)
				if (!t->dead && strcmp(t->channel, s->channel) == 0)
					seen = 1;
			if (seen)
				continue;
			if (sync_add(&buf, &len, &cap, s->channel, (uint32_t)subs_count(&a->subs, s->channel)) < 0)
				goto fail;
			if (len >= SYNC_PART_MAX) {
				struct wire w = { .op = "sync", .n = part++, .has_n = 1, .body = buf, .len = len };
				send_to(a, worker, &w, NULL);
				len = 0;
			}
		}
	}
	struct wire w = { .op = "sync", .n = part, .has_n = 1, .body = buf, .len = len };
	send_to(a, worker, &w, NULL);
	free(buf);
	return;
fail:
	free(buf);
	a->host->log(MCPD_LOG_ERROR, "amqp: out of memory while telling the other workers what this one holds");
}

static void
take_sync(struct amqp *a, const struct got *g)
{
	uint64_t now = mono_ms();
	if (g->n == 0)
		presence_forget(&a->presence, g->from);
	const unsigned char *p = (const unsigned char *)g->body, *end = p + g->len;
	char ch[AMQP_MAX_CHANNEL + 1];
	while (p != NULL && end - p >= 8) {
		uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
		uint32_t cl = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
		p += 8;
		if (cl == 0 || cl > AMQP_MAX_CHANNEL || (size_t)(end - p) < cl || memchr(p, '\0', cl) != NULL)
			break;
		memcpy(ch, p, cl);
		ch[cl] = '\0';
		p += cl;
		presence_set(&a->presence, g->from, ch, n, now);
	}
}

/* ---- what arrives ---- */

static void
deliver_local(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct amqp *a = arg;
	struct local *list = a->locals;
	a->locals = NULL;
	a->locals_tail = &a->locals;
	while (list != NULL) {
		struct local *l = list;
		list = l->next;
		subs_deliver(&a->subs, l->channel, l->msg, l->len);
		free(l->channel);
		free(l->msg);
		free(l);
	}
}

/* A worker just announced channel: send it, oldest first, what was
 * published on it lately and did not go to it. */
static void
replay(struct amqp *a, const char *worker, const char *channel, uint64_t now)
{
	unsigned b = recent_hash(channel);
	recent_trim(a, b, NULL, now);
	struct recent *list[RECENT_PER_CHANNEL + 1];
	size_t n = 0;
	char tag[PRESENCE_ID_MAX + 3];
	snprintf(tag, sizeof(tag), ",%s,", worker);
	for (struct recent *r = a->recents[b]; r != NULL && n < RECENT_PER_CHANNEL + 1; r = r->next)
		if (strcmp(r->channel, channel) == 0 && r->to != NULL && strstr(r->to, tag) == NULL)
			list[n++] = r;
	while (n > 0) {
		struct recent *r = list[--n];
		struct wire w = { .op = "m", .ch = channel, .chlen = strlen(channel), .body = r->msg, .len = r->len };
		send_to(a, worker, &w, NULL);
		char *to = NULL;
		if (asprintf(&to, "%s%s,", r->to, worker) >= 0) {
			a->recent_bytes += strlen(to) - strlen(r->to);
			free(r->to);
			r->to = to;
		}
	}
}

void
amqp_received(struct amqp *a, const char *bytes, size_t len)
{
	struct got g;
	if (read_message(a, bytes, len, &g) < 0) {
		a->host->log(MCPD_LOG_DEBUG, "amqp: a message that is not mcpd's was dropped");
		return;
	}
	if (strcmp(g.from, a->me) == 0)
		return;         /* our own on "all": delivered here at publish */
	uint64_t now = mono_ms();
	presence_peer(&a->presence, g.from, now);
	if (strcmp(g.op, "m") == 0 && g.has_ch) {
		if (subs_count(&a->subs, g.ch) > 0) {
			subs_deliver(&a->subs, g.ch, g.body ? g.body : "", g.len);
		} else if (!g.to_all) {
			/* The sender thinks we hold it: say we do not (on "all", in
			 * order with what we say of it later). */
			char ch[sizeof(g.ch)];
			memcpy(ch, g.ch, sizeof(ch));
			announce(a, ch, 0);
		}
	} else if (strcmp(g.op, "n") == 0 && g.has_ch) {
		int was = presence_get(&a->presence, g.from, g.ch) > 0;
		presence_set(&a->presence, g.from, g.ch, (uint32_t)(g.n > UINT32_MAX ? UINT32_MAX : g.n), now);
		if (!was && g.n > 0) {
			char from[sizeof(g.from)], ch[sizeof(g.ch)];
			memcpy(from, g.from, sizeof(from));
			memcpy(ch, g.ch, sizeof(ch));
			replay(a, from, ch, now);
		}
	} else if (strcmp(g.op, "hello") == 0) {
		/* Answered on "all", after the hellos that come together. */
		if (!evtimer_pending(a->sync_timer, NULL)) {
			struct timeval tv = { 0, 100 * 1000 };
			evtimer_add(a->sync_timer, &tv);
		}
	} else if (strcmp(g.op, "sync") == 0) {
		take_sync(a, &g);
	} else if (strcmp(g.op, "bye") == 0) {
		presence_forget(&a->presence, g.from);
	}
}

/* Connected (again): say hello (the others answer with what they hold)
 * and tell them what this worker holds. */
void
amqp_connected(struct amqp *a)
{
	struct wire w = { .op = "hello" };
	send_to(a, "all", &w, NULL);
	send_sync(a);
}

static void
sync_due(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct amqp *a = arg;
	if (conn_up(a))
		send_sync(a);
}

static void
beat(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct amqp *a = arg;
	if (conn_up(a)) {
		struct wire w = { .op = "beat" };
		send_to(a, "all", &w, NULL);
	}
	uint64_t now = mono_ms(), lapse = 3 * a->heartbeat_ms + 1000;
	if (now > lapse)
		presence_expire(&a->presence, now - lapse);
	for (unsigned b = 0; b < RECENT_BUCKETS; b++)
		recent_trim(a, b, NULL, now);
}

/* ---- operations ---- */

static void *
t_subscribe(void *inst, const char *channel, mcpd_message_cb *cb, void *arg)
{
	struct amqp *a = inst;
	if (channel[0] == '\0' || strlen(channel) > AMQP_MAX_CHANNEL)
		return NULL;
	struct sub *s = subs_add(&a->subs, channel, cb, arg);
	if (s != NULL)
		announce(a, channel, subs_count(&a->subs, channel));
	return s;
}

static void
t_unsubscribe(void *inst, void *subscription)
{
	struct amqp *a = inst;
	struct sub *s = subscription;
	if (!subs_mark(s))
		return;
	announce(a, s->channel, subs_count(&a->subs, s->channel));
	subs_release(&a->subs, s);
}

struct fanout {
	struct amqp *a;
	struct wire *w;
	struct op *op;
	char *to;                           /* ",id,id," */
	size_t len;
	int oom;
};

static void
to_holder(void *arg, const char *id)
{
	struct fanout *f = arg;
	if (strcmp(id, f->a->me) == 0)
		return;
	send_to(f->a, id, f->w, f->op);
	char *to = NULL;
	if (asprintf(&to, "%s%s,", f->to ? f->to : ",", id) < 0) {
		f->oom = 1;
		return;
	}
	free(f->to);
	f->to = to;
}

static void
t_publish(void *inst, const char *channel, const void *msg, size_t len,
    const struct mcpd_publish_opts *opts, mcpd_done_cb *cb, void *arg)
{
	(void)opts;     /* at most once: nothing kept for later subscribers */
	struct amqp *a = inst;
	const char *err = NULL;
	char why[sizeof(a->why) + 8];
	if (!conn_up(a)) {
		snprintf(why, sizeof(why), "amqp: %s", a->why[0] ? a->why : "not connected yet");
		err = why;
	} else if (channel[0] == '\0' || strlen(channel) > AMQP_MAX_CHANNEL) {
		err = "amqp: the channel name is empty or too long";
	}
	if (err != NULL) {
		if (cb != NULL)
			cb(arg, MCPD_ERROR, err);
		return;
	}
	if (subs_count(&a->subs, channel) > 0) {
		struct local *l = calloc(1, sizeof(*l));
		if (l == NULL || (l->channel = strdup(channel)) == NULL || (l->msg = malloc(len ? len : 1)) == NULL) {
			if (l != NULL)
				free(l->channel);
			free(l);
			if (cb != NULL)
				cb(arg, MCPD_ERROR, "amqp: out of memory");
			return;
		}
		memcpy(l->msg, msg, len);
		l->len = len;
		*a->locals_tail = l;
		a->locals_tail = &l->next;
		event_active(a->local_ev, EV_TIMEOUT, 0);
	}
	struct op *op = op_new(cb, arg);
	if (op == NULL) {
		if (cb != NULL)
			cb(arg, MCPD_ERROR, "amqp: out of memory");
		return;
	}
	struct wire w = { .op = "m", .ch = channel, .chlen = strlen(channel), .body = msg, .len = len };
	struct fanout f = { a, &w, op, NULL, 0, 0 };
	uint64_t now = mono_ms();
	if (a->presence.overflowed) {
		send_to(a, "all", &w, op);
	} else if (presence_holders(&a->presence, channel, to_holder, &f) == 0 &&
	    !presence_quiet(&a->presence, channel, now)) {
		/* Nobody known: a holder's announcement may be on its way (a
		 * cancel sent right after the call began), so every worker gets
		 * this one; later ones go nowhere for a while (quiet). */
		send_to(a, "all", &w, op);
		presence_set_quiet(&a->presence, channel, now + QUIET_MS);
	} else if (!f.oom) {
		recent_keep(a, channel, msg, len, f.to ? f.to : ",", now);
	}
	free(f.to);
	op_done(op, MCPD_OK, NULL);     /* ours: the sends hold it until they end */
}

static void
t_has_subscribers(void *inst, const char *channel, mcpd_int_cb *cb, void *arg)
{
	struct amqp *a = inst;
	if (!conn_up(a)) {
		char why[sizeof(a->why) + 8];
		snprintf(why, sizeof(why), "amqp: %s", a->why[0] ? a->why : "not connected yet");
		cb(arg, MCPD_ERROR, 0, why);
		return;
	}
	uint64_t n = subs_count(&a->subs, channel) + presence_count(&a->presence, channel);
	cb(arg, MCPD_OK, (int64_t)n, NULL);
}

static const struct mcpd_transport_ops transport_ops = {
	.size = sizeof(struct mcpd_transport_ops),
	.subscribe = t_subscribe,
	.unsubscribe = t_unsubscribe,
	.publish = t_publish,
	.has_subscribers = t_has_subscribers,
};

/* ---- configuration (in the master) ---- */

static void
amqp_free(struct amqp *a)
{
	char *secrets[] = { a->password, a->sas_key };
	for (size_t i = 0; i < 2; i++)
		if (secrets[i] != NULL)
			memset(secrets[i], 0, strlen(secrets[i]));
	char *strs[] = { a->host_name, a->vhost, a->user, a->password, a->ca_file, a->cert_file, a->key_file,
	    a->prefix, a->exchange, a->topic, a->worker_tmpl, a->all_tmpl, a->receive_tmpl, a->sas_key_name,
	    a->sas_key, a->token_file, a->management_url, a->client_id, a->token_scope };
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		free(strs[i]);
	free(a);
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decoding of a URL's user or password, into a new string. */
static char *
unescape(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			*o++ = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
			i += 2;
		} else if (s[i] == '%') {
			free(out);
			return NULL;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

/* amqp[s]://[user[:password]@]host[:port][/vhost] */
static int
parse_url(struct amqp *a, const char *u)
{
	const char *p;
	if (strncmp(u, "amqp://", 7) == 0) {
		p = u + 7;
		a->tls = 0;
	} else if (strncmp(u, "amqps://", 8) == 0) {
		p = u + 8;
		a->tls = 1;
	} else {
		return -1;
	}
	const char *slash = strchr(p, '/'), *end = slash ? slash : p + strlen(p);
	const char *at = memrchr(p, '@', (size_t)(end - p));
	if (at != NULL) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		free(a->user);
		free(a->password);
		a->password = NULL;
		a->user = unescape(p, (size_t)((colon ? colon : at) - p));
		if (a->user == NULL || a->user[0] == '\0')
			return -1;
		if (colon != NULL && (a->password = unescape(colon + 1, (size_t)(at - colon - 1))) == NULL)
			return -1;
		p = at + 1;
	}
	const char *hend = end, *port = NULL;
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));
		if (rb == NULL)
			return -1;
		free(a->host_name);
		a->host_name = strndup(p + 1, (size_t)(rb - p - 1));
		if (rb + 1 < end) {
			if (rb[1] != ':')
				return -1;
			port = rb + 2;
		}
	} else {
		const char *colon = memchr(p, ':', (size_t)(end - p));
		if (colon != NULL)
			hend = colon, port = colon + 1;
		free(a->host_name);
		a->host_name = strndup(p, (size_t)(hend - p));
	}
	if (a->host_name == NULL || a->host_name[0] == '\0' || strpbrk(a->host_name, " ,?#") != NULL)
		return -1;
	a->port = a->tls ? 5671 : 5672;
	if (port != NULL) {
		char *e;
		long v = strtol(port, &e, 10);
		if (e != end || port == end || v <= 0 || v > 65535)
			return -1;
		a->port = (int)v;
	}
	if (slash != NULL && slash[1] != '\0') {
		free(a->vhost);
		if ((a->vhost = unescape(slash + 1, strlen(slash + 1))) == NULL)
			return -1;
	}
	return 0;
}

/* A file's first line (a secret), into *out. */
static int
read_secret(const struct mcpd_host *h, const struct mcpd_config *node, const char *key, char **out, char *err,
    size_t errlen)
{
	const char *v = h->config_scalar(node);
	if (v == NULL || v[0] == '\0')
		return section_error(h, node, err, errlen, "%s must be a file name", key);
	char *path = section_path(h, v);
	FILE *f = path ? fopen(path, "r") : NULL;
	if (f == NULL) {
		section_error(h, node, err, errlen, "%s: cannot read %s: %s", key, path ? path : v, strerror(errno));
		free(path);
		return -1;
	}
	char buf[8192];
	size_t len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (buf[0] == '\0' || len == sizeof(buf) - 1) {
		section_error(h, node, err, errlen, "%s: %s is empty or too long", key, path);
		free(path);
		return -1;
	}
	free(path);
	if (*out != NULL)
		memset(*out, 0, strlen(*out));
	free(*out);
	*out = strdup(buf);
	memset(buf, 0, sizeof(buf));
	return *out ? 0 : -1;
}

static int
file_key(const struct mcpd_host *h, const struct mcpd_config *node, const char *key, char **out, char *err,
    size_t errlen)
{
	const char *v = h->config_scalar(node);
	free(*out);
	*out = v && v[0] ? section_path(h, v) : NULL;
	if (*out == NULL || access(*out, R_OK) != 0)
		return section_error(h, node, err, errlen, "%s: cannot read %s: %s", key, *out ? *out : "(none)",
		    *out ? strerror(errno) : "give a file name");
	return 0;
}

/* An address part: no spaces or quotes, at most 200 bytes. */
static int
name_ok(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n <= 200 && strpbrk(s, " \t\r\n\"'\\") == NULL;
}

/* A template holds {worker} (for worker_address) and no other braces
 * than the four names. */
static int
template_ok(const char *s, int needs_worker)
{
	if (s[0] == '\0' || strlen(s) > 400)
		return 0;
	static const char *const names[] = { "{prefix}", "{worker}", "{exchange}", "{topic}" };
	int worker = 0;
	for (const char *p = s; *p; p++) {
		if (*p == '}')
			return 0;
		if (*p != '{')
			continue;
		size_t i;
		for (i = 0; i < 4; i++)
			if (strncmp(p, names[i], strlen(names[i])) == 0)
				break;
		if (i == 4)
			return 0;
		worker |= i == 1;
		p += strlen(names[i]) - 1;
	}
	return !needs_worker || worker;
}

static const char KEYS[] = "url, flavor, prefix, exchange, topic, worker_address, all_address, receive_address, "
    "sasl, user, password, password_file, tls, tls_ca_file, tls_cert_file, tls_key_file, sas_key_name, "
    "sas_key_file, token_file, client_id, token_scope, token_ttl, management_url, connect_timeout, idle_timeout, "
    "heartbeat";

static void *
amqp_create(const struct mcpd_host *host, const struct mcpd_config *section, char *err, size_t errlen)
{
	struct amqp *a = calloc(1, sizeof(*a));
	if (a == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->host = host;
	a->connect_timeout_ms = 5000;
	a->idle_timeout_ms = 10000;
	a->heartbeat_ms = 5000;
	a->token_ttl_ms = 3600 * 1000;
	const struct mcpd_config *url_node = NULL, *flavor_node = NULL, *sasl_node = NULL, *tls_node = NULL;
	const struct mcpd_config *cert_node = NULL, *tmpl_node = NULL, *entra_node = NULL;
	int tls_set = -1;
	for (size_t i = 0; i < host->config_count(section); i++) {
		const char *key, *v;
		const struct mcpd_config *node = host->config_item(section, i, &key);
		v = host->config_scalar(node);
		int rc = 0;
		if (strcmp(key, "plugin") == 0) {
			continue;
		} else if (strcmp(key, "url") == 0) {
			url_node = node;
			if (v == NULL || parse_url(a, v) < 0)
				rc = section_error(host, node, err, errlen, "url must be amqp://[user[:password]@]host[:port]"
				    "[/vhost] or amqps://... (user and password percent-encoded)");
		} else if (strcmp(key, "flavor") == 0) {
			flavor_node = node;
			static const char *const names[] = { "generic", "rabbitmq", "activemq", "servicebus" };
			size_t f;
			for (f = 0; v != NULL && f < 4; f++)
				if (strcmp(v, names[f]) == 0)
					break;
			if (v == NULL || f == 4)
				rc = section_error(host, node, err, errlen, "flavor must be servicebus, rabbitmq, activemq "
				    "or generic");
			else
				a->flavor = (enum flavor)f;
		} else if (strcmp(key, "prefix") == 0 || strcmp(key, "exchange") == 0 || strcmp(key, "topic") == 0) {
			char **slot = key[0] == 'p' ? &a->prefix : key[0] == 'e' ? &a->exchange : &a->topic;
			if (v == NULL || (key[0] == 'p' ? v[0] != '\0' && !name_ok(v) : !name_ok(v)))
				rc = section_error(host, node, err, errlen, "%s must be a name without spaces or quotes "
				    "(at most 200 bytes)", key);
			else if ((free(*slot), *slot = strdup(v)) == NULL)
				rc = -1;
		} else if (strcmp(key, "worker_address") == 0 || strcmp(key, "all_address") == 0 ||
		    strcmp(key, "receive_address") == 0) {
			char **slot = key[0] == 'w' ? &a->worker_tmpl : key[0] == 'a' ? &a->all_tmpl : &a->receive_tmpl;
			tmpl_node = node;
			if (v == NULL || !template_ok(v, key[0] != 'a'))
				rc = section_error(host, node, err, errlen, "%s must be an address template%s, with "
				    "{prefix}, {exchange} and {topic} where wanted", key,
				    key[0] != 'a' ? " holding {worker}" : "");
			else if ((free(*slot), *slot = strdup(v)) == NULL)
				rc = -1;
		} else if (strcmp(key, "sasl") == 0) {
			sasl_node = node;
			if (v != NULL && strcmp(v, "anonymous") == 0)
				a->mech = SASL_ANONYMOUS;
			else if (v != NULL && strcmp(v, "plain") == 0)
				a->mech = SASL_PLAIN;
			else if (v != NULL && strcmp(v, "external") == 0)
				a->mech = SASL_EXTERNAL;
			else
				rc = section_error(host, node, err, errlen, "sasl must be anonymous, plain or external");
		} else if (strcmp(key, "user") == 0) {
			rc = section_string(host, node, key, &a->user, err, errlen);
		} else if (strcmp(key, "password") == 0) {
			rc = section_string(host, node, key, &a->password, err, errlen);
		} else if (strcmp(key, "password_file") == 0) {
			rc = read_secret(host, node, key, &a->password, err, errlen);
		} else if (strcmp(key, "tls") == 0) {
			tls_node = node;
			if (v == NULL || (strcmp(v, "true") != 0 && strcmp(v, "false") != 0))
				rc = section_error(host, node, err, errlen, "tls must be true or false");
			else
				tls_set = strcmp(v, "true") == 0;
		} else if (strcmp(key, "tls_ca_file") == 0) {
			rc = file_key(host, node, key, &a->ca_file, err, errlen);
		} else if (strcmp(key, "tls_cert_file") == 0) {
			cert_node = node;
			rc = file_key(host, node, key, &a->cert_file, err, errlen);
		} else if (strcmp(key, "tls_key_file") == 0) {
			rc = file_key(host, node, key, &a->key_file, err, errlen);
		} else if (strcmp(key, "sas_key_name") == 0) {
			if (v == NULL || !name_ok(v))
				rc = section_error(host, node, err, errlen, "sas_key_name must be the name of a shared "
				    "access policy");
			else if ((free(a->sas_key_name), a->sas_key_name = strdup(v)) == NULL)
				rc = -1;
		} else if (strcmp(key, "sas_key_file") == 0) {
			rc = read_secret(host, node, key, &a->sas_key, err, errlen);
		} else if (strcmp(key, "token_file") == 0) {
			rc = file_key(host, node, key, &a->token_file, err, errlen);
		} else if (strcmp(key, "client_id") == 0 || strcmp(key, "token_scope") == 0) {
			rc = section_string(host, node, key, key[0] == 'c' ? &a->client_id : &a->token_scope, err, errlen);
			entra_node = node;
		} else if (strcmp(key, "management_url") == 0) {
			if (v == NULL || strncmp(v, "https://", 8) != 0 || !name_ok(v) || v[strlen(v) - 1] == '/')
				rc = section_error(host, node, err, errlen, "management_url must be https://host[:port] "
				    "(Service Bus's management API; the namespace's by default)");
			else if ((free(a->management_url), a->management_url = strdup(v)) == NULL)
				rc = -1;
		} else if (strcmp(key, "token_ttl") == 0) {
			rc = section_duration(host, node, key, 60000, 24 * 3600000ull, "1m to 24h", &a->token_ttl_ms,
			    err, errlen);
		} else if (strcmp(key, "connect_timeout") == 0) {
			rc = section_duration(host, node, key, 100, 60000, "100ms to 60s", &a->connect_timeout_ms, err,
			    errlen);
		} else if (strcmp(key, "idle_timeout") == 0) {
			rc = section_duration(host, node, key, 200, 600000, "200ms to 10m", &a->idle_timeout_ms, err,
			    errlen);
		} else if (strcmp(key, "heartbeat") == 0) {
			rc = section_duration(host, node, key, 100, 60000, "100ms to 60s", &a->heartbeat_ms, err, errlen);
		} else {
			rc = section_error(host, node, err, errlen, "unknown key \"%s\" (amqp takes %s)", key, KEYS);
		}
		if (rc != 0) {
			if (err[0] == '\0')
				snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	const struct mcpd_config *where = url_node ? url_node : flavor_node ? flavor_node : section;
	if (a->host_name == NULL) {
		section_error(host, section, err, errlen, "amqp needs url: amqp://host[:port] or amqps://...");
		goto fail;
	}
	if (tls_set >= 0)
		a->tls = tls_set;
	if ((a->ca_file || a->cert_file) && !a->tls) {
		section_error(host, tls_node ? tls_node : where, err, errlen, "tls_ca_file and tls_cert_file need "
		    "TLS (amqps:// or tls: true)");
		goto fail;
	}
	if ((a->cert_file != NULL) != (a->key_file != NULL)) {
		section_error(host, cert_node ? cert_node : where, err, errlen, "tls_cert_file and tls_key_file go "
		    "together");
		goto fail;
	}
	if (a->mech == SASL_AUTO)
		a->mech = a->cert_file && !a->user ? SASL_EXTERNAL : a->user ? SASL_PLAIN : SASL_ANONYMOUS;
	if (a->mech == SASL_PLAIN && (a->user == NULL || a->password == NULL)) {
		section_error(host, sasl_node ? sasl_node : where, err, errlen, "sasl plain needs a user and a "
		    "password (in the url, or user with password or password_file)");
		goto fail;
	}
	if (a->mech == SASL_EXTERNAL && a->cert_file == NULL) {
		section_error(host, sasl_node ? sasl_node : where, err, errlen, "sasl external needs a client "
		    "certificate (tls_cert_file and tls_key_file)");
		goto fail;
	}
	if (a->prefix == NULL && (a->prefix = strdup(a->flavor == FL_SERVICEBUS ? "mcpd-" : "mcpd.")) == NULL)
		goto oom;
	switch (a->flavor) {
	case FL_RABBITMQ:
		if (a->exchange == NULL && (a->exchange = strdup("amq.topic")) == NULL)
			goto oom;
		if ((a->worker_tmpl == NULL && (a->worker_tmpl = strdup("/exchange/{exchange}/{prefix}w.{worker}")) == NULL) ||
		    (a->all_tmpl == NULL && (a->all_tmpl = strdup("/exchange/{exchange}/{prefix}all")) == NULL))
			goto oom;
		break;
	case FL_ACTIVEMQ:
		if ((a->worker_tmpl == NULL && (a->worker_tmpl = strdup("topic://{prefix}w.{worker}")) == NULL) ||
		    (a->all_tmpl == NULL && (a->all_tmpl = strdup("topic://{prefix}all")) == NULL))
			goto oom;
		break;
	case FL_SERVICEBUS:
		if (a->topic == NULL) {
			section_error(host, where, err, errlen, "flavor servicebus needs topic: the topic's name");
			goto fail;
		}
		if (!a->tls) {
			section_error(host, where, err, errlen, "Service Bus takes amqps:// only");
			goto fail;
		}
		if ((a->sas_key != NULL && a->token_file != NULL) || (a->sas_key != NULL) != (a->sas_key_name != NULL)) {
			section_error(host, where, err, errlen, "flavor servicebus takes sas_key_name with sas_key_file, "
			    "or token_file (a SAS or Entra ID token, read again at each renewal), or neither (Entra ID "
			    "tokens fetched by mcpd)");
			goto fail;
		}
		if ((a->sas_key != NULL || a->token_file != NULL) && entra_node != NULL) {
			section_error(host, entra_node, err, errlen, "client_id and token_scope are for the Entra ID tokens "
			    "mcpd fetches (without sas_key_file or token_file)");
			goto fail;
		}
		if (a->sas_key == NULL && a->token_file == NULL) {
			char what[600], why[600];
			if (azure_cred_probe(a->client_id, what, sizeof(what), why, sizeof(why)) < 0) {
				section_error(host, where, err, errlen, "no sas_key_file or token_file, and no Entra ID "
				    "credentials: %s", why);
				goto fail;
			}
			if (a->token_scope == NULL && (a->token_scope = strdup(SB_SCOPE)) == NULL)
				goto oom;
		}
		if (a->management_url == NULL && asprintf(&a->management_url, "https://%s", a->host_name) < 0) {
			a->management_url = NULL;
			goto oom;
		}
		if ((a->worker_tmpl == NULL && (a->worker_tmpl = strdup("{topic}")) == NULL) ||
		    (a->all_tmpl == NULL && (a->all_tmpl = strdup("{topic}")) == NULL) ||
		    (a->receive_tmpl == NULL && (a->receive_tmpl = strdup("{topic}/Subscriptions/{prefix}{worker}")) == NULL))
			goto oom;
		break;
	case FL_GENERIC:
		if (a->worker_tmpl == NULL || a->all_tmpl == NULL) {
			section_error(host, tmpl_node ? tmpl_node : where, err, errlen, "flavor generic (the default) "
			    "needs worker_address and all_address (or flavor: rabbitmq, activemq or servicebus)");
			goto fail;
		}
		break;
	}
	if (a->flavor != FL_SERVICEBUS && (a->sas_key != NULL || a->token_file != NULL || entra_node != NULL)) {
		section_error(host, where, err, errlen, "sas_key_file, token_file, client_id and token_scope are for "
		    "flavor servicebus");
		goto fail;
	}
	unsigned char rnd[4];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		snprintf(err, errlen, "getrandom: %s", strerror(errno));
		goto fail;
	}
	snprintf(a->instance, sizeof(a->instance), "%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
	return a;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	amqp_free(a);
	return NULL;
}

/* ---- lifecycle (in each worker) ---- */

static int
amqp_attach(void *inst, char *err, size_t errlen)
{
	struct amqp *a = inst;
	snprintf(a->me, sizeof(a->me), "%s-%u", a->instance, a->host->worker_id());
	srand((unsigned)getpid() ^ (unsigned)mono_ms());
	a->locals_tail = &a->locals;
	struct event_base *base = a->host->event_base();
	a->msg = pn_message();
	a->local_ev = event_new(base, -1, 0, deliver_local, a);
	a->beat_timer = event_new(base, -1, EV_PERSIST, beat, a);
	a->sync_timer = evtimer_new(base, sync_due, a);
	struct timeval tv = { (time_t)(a->heartbeat_ms / 1000), (suseconds_t)(a->heartbeat_ms % 1000) * 1000 };
	if (a->msg == NULL || a->local_ev == NULL || a->beat_timer == NULL || a->sync_timer == NULL || evtimer_add(a->beat_timer, &tv) < 0) {
		snprintf(err, errlen, "amqp: out of memory");
		return -1;
	}
	return conn_attach(a, err, errlen);
}

static void
amqp_detach(void *inst)
{
	struct amqp *a = inst;
	if (conn_up(a)) {
		struct wire w = { .op = "bye" };
		send_to(a, "all", &w, NULL);
	}
	conn_detach(a);
	if (a->local_ev != NULL)
		event_free(a->local_ev);
	if (a->beat_timer != NULL)
		event_free(a->beat_timer);
	if (a->sync_timer != NULL)
		event_free(a->sync_timer);
	a->local_ev = a->beat_timer = a->sync_timer = NULL;
	while (a->locals != NULL) {
		struct local *l = a->locals;
		a->locals = l->next;
		free(l->channel);
		free(l->msg);
		free(l);
	}
	subs_clear(&a->subs);
	presence_clear(&a->presence);
	recent_clear(a);
	if (a->msg != NULL)
		pn_message_free(a->msg);
	a->msg = NULL;
}

static void
amqp_destroy(void *inst)
{
	amqp_free(inst);
}

static int
amqp_status(void *inst, char *why, size_t len)
{
	struct amqp *a = inst;
	if (conn_up(a))
		return 0;
	snprintf(why, len, "amqp: %s", a->why[0] ? a->why : "not connected yet");
	return -1;
}

static const struct mcpd_plugin descriptor = {
	.size = sizeof(struct mcpd_plugin),
	.abi_major = MCPD_PLUGIN_ABI_MAJOR,
	.abi_minor = MCPD_PLUGIN_ABI_MINOR,
	.kind = MCPD_PLUGIN_TRANSPORT,
	.name = "amqp",
	.version = "1.0.0",
	.create = amqp_create,
	.attach = amqp_attach,
	.detach = amqp_detach,
	.destroy = amqp_destroy,
	.ops = &transport_ops,
	.status = amqp_status,
};

const struct mcpd_plugin *
mcpd_plugin_entry(void)
{
	return &descriptor;
}
