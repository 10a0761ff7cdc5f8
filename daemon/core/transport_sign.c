/* Signed transport messages (see transport_sign.h). A worker subscribes
 * to each channel once, however many subscribers it has there, and hands
 * what it receives to each: so a message reaches a process once, and the
 * replay cache (per process) can recognise it by its nonce alone. */
#include "transport_sign.h"
#include "log.h"
#include "metrics.h"
#include "plugin.h"
#include "sigmsg.h"
#include "util.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Messages remembered against replays (about 48 bytes each). More
 * within one window make the oldest go early; see replay_check. */
#define REPLAY_CAP 65536
/* A message dated more than this before the worker subscribed to its
 * channel cannot be meant for it (publishers' clocks may run behind ours
 * by up to this): a copy of one that went by before, replayed to a
 * process that had not seen it. */
#define BEFORE_SUB_MS 2000
/* A drop is logged at most this often per reason; the others counted. */
#define LOG_EVERY_MS 10000

static struct mcpd_transport_ops tops;
static const struct mcpd_transport_ops *treal;
static struct sigkeys keys;
static uint64_t window;
static struct replay *seen;

struct sub;

/* A channel this worker subscribes to, with its subscribers. */
struct chan {
	char *name;
	void *inst;
	void *real;                     /* the plugin's subscription */
	uint64_t since_ms;              /* subscribed then (wall clock) */
	struct sub *subs;
	unsigned delivering;            /* inside heard(): frees wait */
	struct chan *next;              /* in its bucket */
};

struct sub {
	mcpd_message_cb *cb;
	void *arg;
	struct chan *ch;
	int dead;                       /* unsubscribed during a delivery */
	struct sub *next;
};

#define BUCKETS 4096
static struct chan *chans[BUCKETS];

static size_t
bucket_of(const char *name)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % BUCKETS;
}

static struct {
	uint64_t last_ms;
	uint64_t quiet;                 /* dropped since, not logged */
} logged[MXM_N];

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
dropped(enum mx_drop why, const char *channel)
{
	static const char *const what[MXM_N] = {
		"an unsigned", "a forged (bad signature or unknown key)", "a replayed",
		"an out-of-window (clock difference above sign_window)",
	};
	metrics_dropped(why);
	uint64_t now = monotonic_ms();
	if (logged[why].last_ms != 0 && now - logged[why].last_ms < LOG_EVERY_MS) {
		logged[why].quiet++;
		return;
	}
	if (logged[why].quiet > 0)
		log_warn("transport: dropped %s message on channel \"%.80s\" (and %llu more since the last such report)",
		    what[why], channel, (unsigned long long)logged[why].quiet);
	else
		log_warn("transport: dropped %s message on channel \"%.80s\"", what[why], channel);
	logged[why].last_ms = now;
	logged[why].quiet = 0;
}

/* Free the subscribers that left; the channel too when none is left. */
static void
sweep(struct chan *ch)
{
	for (struct sub **pp = &ch->subs; *pp != NULL;) {
		struct sub *s = *pp;
		if (s->dead) {
			*pp = s->next;
			free(s);
		} else
			pp = &s->next;
	}
	if (ch->subs != NULL)
		return;
	treal->unsubscribe(ch->inst, ch->real);
	struct chan **cp = &chans[bucket_of(ch->name)];
	while (*cp != ch)
		cp = &(*cp)->next;
	*cp = ch->next;
	free(ch->name);
	free(ch);
}

static void
heard(void *arg, const char *channel, const void *msg, size_t len)
{
	struct chan *ch = arg;
	const void *body;
	size_t blen;
	unsigned char nonce[SIGMSG_NONCE];
	uint64_t ts, now = now_ms();
	switch (sigmsg_verify(&keys, ch->name, msg, len, now, window, &body, &blen, nonce, &ts)) {
	case SIGMSG_OK:
		break;
	case SIGMSG_UNSIGNED:
		dropped(MXM_UNSIGNED, ch->name);
		return;
	case SIGMSG_STALE:
		dropped(MXM_STALE, ch->name);
		return;
	default:
		dropped(MXM_FORGED, ch->name);
		return;
	}
	if (ts + BEFORE_SUB_MS < ch->since_ms || replay_check(seen, nonce, 0, ts, now, window) < 0) {
		dropped(MXM_REPLAYED, ch->name);
		return;
	}
	/* A subscriber may leave (or others come) during its callback. */
	ch->delivering++;
	for (struct sub *s = ch->subs; s != NULL; s = s->next)
		if (!s->dead)
			s->cb(s->arg, channel, body, blen);
	if (--ch->delivering == 0)
		sweep(ch);
}

static void
s_publish(void *inst, const char *channel, const void *msg, size_t len,
    const struct mcpd_publish_opts *opts, mcpd_done_cb *cb, void *arg)
{
	size_t n;
	char *signed_msg = sigmsg_sign(&keys, channel, msg, len, now_ms(), &n);
	if (signed_msg == NULL) {
		log_error("transport: cannot sign a message for channel \"%.80s\"", channel);
		if (cb != NULL)
			cb(arg, MCPD_ERROR, "cannot sign the message");
		return;
	}
	treal->publish(inst, channel, signed_msg, n, opts, cb, arg);
	free(signed_msg);
}

static void *
s_subscribe(void *inst, const char *channel, mcpd_message_cb *cb, void *arg)
{
	size_t b = bucket_of(channel);
	struct chan *ch = chans[b];
	while (ch != NULL && (ch->inst != inst || strcmp(ch->name, channel) != 0))
		ch = ch->next;
	struct sub *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	if (ch == NULL) {
		if ((ch = calloc(1, sizeof(*ch))) == NULL || (ch->name = strdup(channel)) == NULL)
			goto fail;
		ch->inst = inst;
		ch->since_ms = now_ms();
		if ((ch->real = treal->subscribe(inst, channel, heard, ch)) == NULL)
			goto fail;
		ch->next = chans[b];
		chans[b] = ch;
	}
	s->cb = cb;
	s->arg = arg;
	s->ch = ch;
	s->next = ch->subs;
	ch->subs = s;
	return s;
fail:
	if (ch != NULL)
		free(ch->name);
	free(ch);
	free(s);
	return NULL;
}

static void
s_unsubscribe(void *inst, void *subscription)
{
	(void)inst;
	struct sub *s = subscription;
	if (s == NULL)
		return;
	s->dead = 1;
	if (s->ch->delivering == 0)
		sweep(s->ch);
}

int
transport_sign_backends(struct backends *b, const struct sigkeys *k, uint64_t window_ms)
{
	if (b->transport == NULL || k->n < 1)
		return 0;
	if (treal == NULL) {
		if ((seen = replay_new(REPLAY_CAP)) == NULL)
			return -1;
		treal = b->transport;
		tops = *treal;
		tops.publish = s_publish;
		tops.subscribe = s_subscribe;
		tops.unsubscribe = s_unsubscribe;
		keys = *k;
		window = window_ms;
	}
	b->transport = &tops;
	return 0;
}

void
transport_sign_forget(void)
{
	for (size_t i = 0; i < BUCKETS; i++)
		while (chans[i] != NULL) {
			struct chan *ch = chans[i];
			chans[i] = ch->next;
			while (ch->subs != NULL) {
				struct sub *s = ch->subs;
				ch->subs = s->next;
				free(s);
			}
			free(ch->name);
			free(ch);
		}
	replay_free(seen);
	seen = NULL;
	OPENSSL_cleanse(&keys, sizeof(keys));
}
