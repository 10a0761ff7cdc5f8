/*
 * nats: the transport on a NATS server (core NATS, no JetStream), so that
 * several mcpd instances deliver session messages to each other. Built
 * against <mcpd/plugin.h> alone, with libnats.
 *
 *   transport: { plugin: nats, url: nats://127.0.0.1:4222, prefix: "mcpd." }
 *
 * Threads. libnats always runs threads of its own: message handlers run
 * on its delivery threads, connection events on its callback thread, and
 * even with its libevent adapter it adds and removes events on the
 * worker's event_base from its reconnect and flusher threads, which is
 * only valid on a base with libevent's locking (mcpd's workers create
 * theirs without it, and a plugin cannot change that). Publishing can
 * also write to the socket in place, under a lock the flusher holds while
 * it writes. So the worker's loop never calls libnats: one thread of this
 * plugin owns the connection and does every libnats call, taking commands
 * from a queue; everything libnats reports comes back to the loop through
 * a second queue and an eventfd watched by the loop. Both queues are
 * guarded by a mutex held only to link or unlink items. That thread
 * writes each message at once (send-asap), since it may block.
 *
 * Subjects: channel C is "<prefix>c.<token>", its presence subject
 * "<prefix>p.<token>", where token is C with every byte that a subject
 * token cannot hold (controls, space, '.', '*', '>', non-ASCII) and '%'
 * itself written %XX: reversible, and two channels never share a token.
 *
 * has_subscribers: NATS has no PUBSUB NUMSUB. A worker subscribed to a
 * channel also subscribes to its presence subject and answers a probe
 * there with its number of subscribers. A probe is one request with a
 * reply subject of this worker; when nobody listens the server answers
 * at once "no responders" (0), otherwise the answers are summed for
 * presence_timeout (100 ms). Cost: a second subscription per channel and
 * worker, a message per subscribed worker per probe, and presence_timeout
 * of latency when the channel has subscribers.
 *
 * Delivery is that of Redis pub/sub: at most once, to those subscribed
 * when the message reaches the server; nothing is kept for a later
 * subscriber (publish's ttl and message_id are not used). mcpd stores
 * what must not be lost (events for Last-Event-ID, answers to its
 * requests) in its storage.
 *
 * While NATS is unreachable the plugin keeps trying (100 ms doubling to
 * 5 s), also after libnats gives a connection up (refused credentials);
 * /readyz says why, and publish and has_subscribers fail at once.
 * A message published in the instant before the loop hears of a lost
 * connection is kept by libnats (up to 1 MiB) and sent on reconnection.
 */
#include <mcpd/plugin.h>

#include "clock.h"
#include "section.h"
#include "subs.h"

#include <errno.h>
#include <event2/event.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_BACKOFF_MS 5000
#define MAX_QUEUED (16u << 20)          /* bytes waiting for the NATS thread */
#define RECONNECT_BUF (1 << 20)         /* libnats' own, while it reconnects */
#define MAX_CHANNEL 1024

/* ---- the two queues ---- */

enum cmd_kind { C_SUB, C_UNSUB, C_PUB, C_STOP };

struct cmd {                            /* loop → NATS thread */
	enum cmd_kind kind;
	char *subject;                      /* C_PUB: the subject; C_SUB/C_UNSUB: the token */
	char *reply;                        /* C_PUB: or NULL */
	void *data;
	size_t len;
	mcpd_done_cb *cb;
	void *arg;
	struct cmd *next;
};

enum ev_kind { E_MSG, E_UP, E_DOWN, E_DONE, E_ERROR };

struct ev {                             /* libnats' threads → loop */
	enum ev_kind kind;
	char *subject;                      /* E_MSG */
	char *reply;
	int no_responders;
	void *data;                         /* E_MSG: the payload; others: text */
	size_t len;
	mcpd_done_cb *cb;                   /* E_DONE */
	void *arg;
	int status;
	struct ev *next;
};

/* ---- loop side ---- */


struct probe {
	struct nats *n;
	uint64_t id;
	int64_t count;
	mcpd_int_cb *cb;
	void *arg;
	struct event *timer;
	struct probe *next;
};

/* ---- NATS thread side ---- */

struct tsub {
	char *token;
	natsSubscription *msgs, *presence;
	struct tsub *next;
};

struct nats {
	const struct mcpd_host *host;
	/* configuration (master) */
	struct strlist urls;
	char prefix[128];
	char *token, *user, *password, *creds_file, *ca_pem;
	int secure;
	uint64_t connect_timeout_ms, presence_timeout_ms;

	/* worker: loop */
	struct subs subs;
	struct probe *probes;
	uint64_t next_probe;
	char inbox[40];                     /* this worker's token for probe answers */
	char name[64];                      /* of the connection, seen by the server */
	int connected, ever_connected;
	char why[256];
	struct event *wake;
	int efd;

	/* worker: shared, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct cmd *cmds, **cmds_tail;
	size_t queued;
	struct ev *evs, **evs_tail;
	pthread_t thread;
	int started, stopped;
	int closed;                         /* the connection's last callback came */
	int up;                             /* connected since the thread last looked */

	/* worker: the NATS thread's own */
	natsConnection *nc;
	natsOptions *opts;
	natsSubscription *inbox_sub;
	struct tsub *tsubs[SUBS_BUCKETS];  /* by subs_hash of the subject token */
};

/* ---- subjects ---- */

static int
token_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '.' && c != '*' && c != '>' && c != '%';
}

/* The channel as one subject token; -1 if it does not fit. */
static int
encode(const char *channel, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)channel; *p; p++) {
		if (o + 4 > len)
			return -1;
		if (token_char(*p)) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	if (o == 0 || o >= len)
		return -1;
	out[o] = '\0';
	return 0;
}

static int
unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
decode(const char *token, char *out, size_t len)
{
	size_t o = 0;
	for (const char *p = token; *p; p++) {
		if (o + 1 >= len)
			return -1;
		if (*p != '%') {
			out[o++] = *p;
			continue;
		}
		int hi = unhex(p[1]), lo = hi < 0 ? -1 : unhex(p[2]);
		if (lo < 0)
			return -1;
		out[o++] = (char)(hi << 4 | lo);
		p += 2;
	}
	out[o] = '\0';
	return o > 0 ? 0 : -1;
}

/* "<prefix><kind>.<token>" */
static char *
subject_of(struct nats *n, char kind, const char *token)
{
	char *s = NULL;
	if (asprintf(&s, "%s%c.%s", n->prefix, kind, token) < 0)
		return NULL;
	return s;
}

/* ---- the NATS thread ---- */

static void
ev_free(struct ev *e)
{
	free(e->subject);
	free(e->reply);
	free(e->data);
	free(e);
}

static void
post(struct nats *n, struct ev *e)
{
	pthread_mutex_lock(&n->mu);
	if (n->stopped) {           /* a late callback while the worker stops */
		pthread_mutex_unlock(&n->mu);
		ev_free(e);
		return;
	}
	int was_empty = n->evs == NULL;
	e->next = NULL;
	*n->evs_tail = e;
	n->evs_tail = &e->next;
	if (was_empty) {
		uint64_t one = 1;
		ssize_t w = write(n->efd, &one, sizeof(one));
		(void)w;        /* EAGAIN: the counter is already non-zero */
	}
	pthread_mutex_unlock(&n->mu);
}

static void
post_text(struct nats *n, enum ev_kind kind, const char *fmt, ...)
{
	struct ev *e = calloc(1, sizeof(*e));
	if (e == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	int len = vasprintf((char **)&e->data, fmt, ap);
	va_end(ap);
	if (len < 0)
		e->data = NULL;
	e->kind = kind;
	post(n, e);
}

/* On a libnats delivery thread. */
static void
on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	(void)nc;
	(void)sub;
	struct nats *n = closure;
	struct ev *e = calloc(1, sizeof(*e));
	const char *reply = natsMsg_GetReply(msg);
	int len = natsMsg_GetDataLength(msg);
	if (e != NULL) {
		e->kind = E_MSG;
		e->subject = strdup(natsMsg_GetSubject(msg));
		e->reply = reply != NULL && reply[0] ? strdup(reply) : NULL;
		e->no_responders = natsMsg_IsNoResponders(msg);
		e->len = len > 0 ? (size_t)len : 0;
		e->data = malloc(e->len + 1);
		if (e->subject == NULL || e->data == NULL) {
			free(e->subject);
			free(e->reply);
			free(e->data);
			free(e);
			e = NULL;
		} else {
			memcpy(e->data, natsMsg_GetData(msg), e->len);
			((char *)e->data)[e->len] = '\0';
		}
	}
	natsMsg_Destroy(msg);
	if (e != NULL)
		post(n, e);
}

/* On libnats' callback thread. */
static void
on_connected(natsConnection *nc, void *closure)
{
	struct nats *n = closure;
	char url[256] = "";
	natsConnection_GetConnectedUrl(nc, url, sizeof(url));
	post_text(n, E_UP, "%s", url);
	pthread_mutex_lock(&n->mu);
	n->up = 1;
	pthread_mutex_unlock(&n->mu);
}

static void
on_disconnected(natsConnection *nc, void *closure)
{
	const char *last = NULL;
	natsConnection_GetLastError(nc, &last);
	post_text(closure, E_DOWN, "lost the connection to nats%s%s", last && *last ? ": " : "",
	    last && *last ? last : "");
}

static void
on_closed(natsConnection *nc, void *closure)
{
	struct nats *n = closure;
	const char *last = NULL;
	natsConnection_GetLastError(nc, &last);
	post_text(n, E_DOWN, "nats closed the connection%s%s; connecting again", last && *last ? ": " : "",
	    last && *last ? last : "");
	pthread_mutex_lock(&n->mu);
	n->closed = 1;
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->mu);
}

static int64_t
reconnect_delay(natsConnection *nc, int attempts, void *closure)
{
	(void)nc;
	(void)closure;
	int64_t ms = 100;
	for (int i = 1; i < attempts && ms < MAX_BACKOFF_MS; i++)
		ms *= 2;
	if (ms > MAX_BACKOFF_MS)
		ms = MAX_BACKOFF_MS;
	return ms + rand() % (ms / 10 + 1);     /* spread the instances a little */
}

static void
tsub_open(struct nats *n, struct tsub *t)
{
	char *ms = subject_of(n, 'c', t->token), *ps = subject_of(n, 'p', t->token);
	natsStatus s = NATS_NO_MEMORY;
	if (ms != NULL && ps != NULL) {
		s = natsConnection_Subscribe(&t->msgs, n->nc, ms, on_msg, n);
		if (s == NATS_OK)
			s = natsConnection_Subscribe(&t->presence, n->nc, ps, on_msg, n);
	}
	if (s != NATS_OK)
		post_text(n, E_ERROR, "nats: cannot subscribe to %s: %s", ms ? ms : t->token, natsStatus_GetText(s));
	free(ms);
	free(ps);
}

static void
tsub_close(struct tsub *t)
{
	natsSubscription *subs[] = { t->msgs, t->presence };
	for (size_t i = 0; i < 2; i++) {
		if (subs[i] == NULL)
			continue;
		natsSubscription_Unsubscribe(subs[i]);
		natsSubscription_Destroy(subs[i]);
	}
	t->msgs = t->presence = NULL;
}

static natsStatus
make_options(struct nats *n)
{
	natsOptions *o = NULL;
	natsStatus s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetServers(o, (const char **)n->urls.v, (int)n->urls.n);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, (int64_t)n->connect_timeout_ms);
	if (s == NATS_OK)
		s = natsOptions_SetWriteDeadline(o, (int64_t)n->connect_timeout_ms);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, -1);
	if (s == NATS_OK)
		s = natsOptions_SetCustomReconnectDelay(o, reconnect_delay, n);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectBufSize(o, RECONNECT_BUF);
	if (s == NATS_OK)   /* a hung server is noticed within about 15 s */
		s = natsOptions_SetPingInterval(o, 5000);
	if (s == NATS_OK)
		s = natsOptions_SetMaxPingsOut(o, 2);
	if (s == NATS_OK)   /* written at once by this thread: libnats' flusher waits 1 ms to batch */
		s = natsOptions_SetSendAsap(o, true);
	if (s == NATS_OK)   /* one delivery thread, not one per subscription */
		s = natsOptions_UseGlobalMessageDelivery(o, true);
	if (s == NATS_OK)
		s = natsOptions_SetRetryOnFailedConnect(o, true, on_connected, n);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(o, on_connected, n);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(o, on_disconnected, n);
	if (s == NATS_OK)
		s = natsOptions_SetClosedCB(o, on_closed, n);
	if (s == NATS_OK)
		s = natsOptions_SetName(o, n->name);
	if (s == NATS_OK && n->token != NULL)
		s = natsOptions_SetToken(o, n->token);
	if (s == NATS_OK && n->user != NULL)
		s = natsOptions_SetUserInfo(o, n->user, n->password);
	if (s == NATS_OK && n->creds_file != NULL)
		s = natsOptions_SetUserCredentialsFromFiles(o, n->creds_file, NULL);
	if (s == NATS_OK && n->secure)
		s = natsOptions_SetSecure(o, true);
	if (s == NATS_OK && n->ca_pem != NULL)
		s = natsOptions_SetCATrustedCertificates(o, n->ca_pem);
	if (s != NATS_OK) {
		natsOptions_Destroy(o);
		return s;
	}
	n->opts = o;
	return NATS_OK;
}

/* Blocks this thread only: the first attempt is synchronous in libnats. */
static void
connect_now(struct nats *n)
{
	if (n->opts == NULL) {
		natsStatus s = make_options(n);
		if (s != NATS_OK) {
			post_text(n, E_ERROR, "nats options: %s (%s)", natsStatus_GetText(s), nats_GetLastError(NULL));
			return;
		}
	}
	natsStatus s = natsConnection_Connect(&n->nc, n->opts);
	if (s == NATS_OK) {
		on_connected(n->nc, n);
	} else if (s == NATS_NOT_YET_CONNECTED) {
		post_text(n, E_DOWN, "cannot connect to nats at %s%s; retrying", n->urls.v[0],
		    n->urls.n > 1 ? " (and the other servers)" : "");
	} else {
		post_text(n, E_ERROR, "cannot connect to nats: %s", nats_GetLastError(NULL));
		n->nc = NULL;
		return;
	}
	char *inbox = NULL;
	if (asprintf(&inbox, "%sr.%s.*", n->prefix, n->inbox) >= 0 &&
	    natsConnection_Subscribe(&n->inbox_sub, n->nc, inbox, on_msg, n) != NATS_OK)
		post_text(n, E_ERROR, "nats: cannot subscribe to %s", inbox);
	free(inbox);
	for (size_t b = 0; b < SUBS_BUCKETS; b++)
		for (struct tsub *t = n->tsubs[b]; t != NULL; t = t->next)
			tsub_open(n, t);
}

static void
apply(struct nats *n, struct cmd *c)
{
	switch (c->kind) {
	case C_SUB: {
		struct tsub *t = calloc(1, sizeof(*t));
		if (t == NULL)
			break;
		t->token = c->subject;
		c->subject = NULL;
		unsigned h = subs_hash(t->token);
		t->next = n->tsubs[h];
		n->tsubs[h] = t;
		if (n->nc != NULL)
			tsub_open(n, t);
		break;
	}
	case C_UNSUB:
		for (struct tsub **pp = &n->tsubs[subs_hash(c->subject)]; *pp != NULL; pp = &(*pp)->next) {
			struct tsub *t = *pp;
			if (strcmp(t->token, c->subject) == 0) {
				*pp = t->next;
				tsub_close(t);
				free(t->token);
				free(t);
				break;
			}
		}
		break;
	case C_PUB: {
		natsStatus s = NATS_CONNECTION_CLOSED;
		if (n->nc != NULL)
			s = c->reply ? natsConnection_PublishRequest(n->nc, c->subject, c->reply, c->data, (int)c->len) :
			    natsConnection_Publish(n->nc, c->subject, c->data, (int)c->len);
		if (c->cb != NULL) {
			struct ev *e = calloc(1, sizeof(*e));
			if (e != NULL) {
				e->kind = E_DONE;
				e->cb = c->cb;
				e->arg = c->arg;
				e->status = s == NATS_OK ? MCPD_OK : MCPD_ERROR;
				if (s != NATS_OK && asprintf((char **)&e->data, "nats: %s", natsStatus_GetText(s)) < 0)
					e->data = NULL;
				post(n, e);
			}
		}
		break;
	}
	case C_STOP:
		break;
	}
}

static void
cmd_free(struct cmd *c)
{
	free(c->subject);
	free(c->reply);
	free(c->data);
	free(c);
}

/* libnats gave the connection up (it does, for one, when the server
 * refuses our credentials): drop it, keeping what we subscribe to, and
 * make a new one after the back-off. */
static void
drop_connection(struct nats *n)
{
	for (size_t b = 0; b < SUBS_BUCKETS; b++)
		for (struct tsub *t = n->tsubs[b]; t != NULL; t = t->next)
			tsub_close(t);
	if (n->inbox_sub != NULL)
		natsSubscription_Destroy(n->inbox_sub);
	n->inbox_sub = NULL;
	natsConnection_Destroy(n->nc);
	n->nc = NULL;
}

static void *
thread_main(void *arg)
{
	struct nats *n = arg;
	int stop = 0;
	uint64_t backoff = 0, next_try = 0;
	while (!stop) {
		if (n->nc == NULL && mono_ms() >= next_try) {
			connect_now(n);
			if (n->nc == NULL) {
				backoff = backoff ? backoff * 2 : 100;
				if (backoff > MAX_BACKOFF_MS)
					backoff = MAX_BACKOFF_MS;
				next_try = mono_ms() + backoff;
			}
		}
		pthread_mutex_lock(&n->mu);
		if (n->cmds == NULL && n->nc == NULL) {
			uint64_t ms = next_try > mono_ms() ? next_try - mono_ms() : 0;
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += (time_t)(ms / 1000);
			ts.tv_nsec += (long)(ms % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&n->cond, &n->mu, &ts);
		}
		while (n->cmds == NULL && n->nc != NULL && !n->closed)
			pthread_cond_wait(&n->cond, &n->mu);
		int closed = n->closed && n->nc != NULL;
		n->closed = 0;
		if (n->up) {
			backoff = 0;
			n->up = 0;
		}
		struct cmd *list = n->cmds;
		n->cmds = NULL;
		n->cmds_tail = &n->cmds;
		n->queued = 0;
		pthread_mutex_unlock(&n->mu);
		if (closed) {
			drop_connection(n);
			backoff = backoff ? backoff * 2 : 100;
			if (backoff > MAX_BACKOFF_MS)
				backoff = MAX_BACKOFF_MS;
			next_try = mono_ms() + backoff;
		}
		while (list != NULL) {
			struct cmd *c = list;
			list = c->next;
			if (c->kind == C_STOP)
				stop = 1;
			else
				apply(n, c);
			cmd_free(c);
		}
	}
	for (size_t b = 0; b < SUBS_BUCKETS; b++) {
		while (n->tsubs[b] != NULL) {
			struct tsub *t = n->tsubs[b];
			n->tsubs[b] = t->next;
			tsub_close(t);
			free(t->token);
			free(t);
		}
	}
	if (n->inbox_sub != NULL)
		natsSubscription_Destroy(n->inbox_sub);
	if (n->nc != NULL) {
		natsConnection_Destroy(n->nc);
		/* The closed callback is the connection's last: wait for it (a
		 * little), so that none comes after the instance is gone. The
		 * library itself is not closed (nats_Close): its teardown is of
		 * no use to a process about to exit, and is not always clean. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 2;
		pthread_mutex_lock(&n->mu);
		while (!n->closed && pthread_cond_timedwait(&n->cond, &n->mu, &ts) == 0)
			;
		pthread_mutex_unlock(&n->mu);
	}
	natsOptions_Destroy(n->opts);
	n->nc = NULL;
	n->opts = NULL;
	return NULL;
}

/* ---- loop side ---- */

static int
queue_cmd(struct nats *n, struct cmd *c)
{
	pthread_mutex_lock(&n->mu);
	if (c->kind == C_PUB && n->queued + c->len > MAX_QUEUED) {
		pthread_mutex_unlock(&n->mu);
		return -1;
	}
	n->queued += c->len;
	c->next = NULL;
	*n->cmds_tail = c;
	n->cmds_tail = &c->next;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->mu);
	return 0;
}

static int
queue_pub(struct nats *n, char *subject, char *reply, const void *msg, size_t len,
    mcpd_done_cb *cb, void *arg)
{
	struct cmd *c = calloc(1, sizeof(*c));
	void *copy = malloc(len ? len : 1);
	if (c == NULL || copy == NULL || subject == NULL) {
		free(c);
		free(copy);
		free(subject);
		free(reply);
		return -1;
	}
	memcpy(copy, msg, len);
	c->kind = C_PUB;
	c->subject = subject;
	c->reply = reply;
	c->data = copy;
	c->len = len;
	c->cb = cb;
	c->arg = arg;
	if (queue_cmd(n, c) < 0) {
		cmd_free(c);
		return -1;
	}
	return 0;
}

static void
queue_sub(struct nats *n, enum cmd_kind kind, const char *channel)
{
	char token[3 * MAX_CHANNEL + 1];
	struct cmd *c = calloc(1, sizeof(*c));
	if (c == NULL || encode(channel, token, sizeof(token)) < 0 || (c->subject = strdup(token)) == NULL) {
		free(c);
		n->host->log(MCPD_LOG_ERROR, "nats: cannot %s channel %s", kind == C_SUB ? "subscribe to" :
		    "unsubscribe from", channel);
		return;
	}
	c->kind = kind;
	queue_cmd(n, c);
}

static void
deliver(struct nats *n, const char *channel, const void *msg, size_t len)
{
	subs_deliver(&n->subs, channel, msg, len);
}

static void
probe_end(struct probe *p, int status, const char *err)
{
	struct nats *n = p->n;
	for (struct probe **pp = &n->probes; *pp != NULL; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	event_free(p->timer);
	mcpd_int_cb *cb = p->cb;
	void *arg = p->arg;
	int64_t count = p->count;
	free(p);
	cb(arg, status, status == MCPD_OK ? count : 0, err);
}

static void
probe_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	probe_end(arg, MCPD_OK, NULL);
}

static void
on_message(struct nats *n, struct ev *e)
{
	size_t pl = strlen(n->prefix);
	const char *rest = e->subject + pl;
	char channel[MAX_CHANNEL + 1];
	if (strncmp(e->subject, n->prefix, pl) != 0 || rest[0] == '\0' || rest[1] != '.')
		return;
	if (rest[0] == 'c' && decode(rest + 2, channel, sizeof(channel)) == 0) {
		deliver(n, channel, e->data, e->len);
	} else if (rest[0] == 'p' && e->reply != NULL && decode(rest + 2, channel, sizeof(channel)) == 0) {
		/* Someone asks who listens: answer with our count, if any (an
		 * unsubscription may be on its way to the server). */
		size_t k = subs_count(&n->subs, channel);
		char num[32];
		int len = snprintf(num, sizeof(num), "%zu", k);
		if (k > 0)
			queue_pub(n, strdup(e->reply), NULL, num, (size_t)len, NULL, NULL);
	} else if (rest[0] == 'r') {
		const char *dot = strrchr(rest, '.');
		uint64_t id = dot ? strtoull(dot + 1, NULL, 10) : 0;
		for (struct probe *p = n->probes; p != NULL; p = p->next) {
			if (p->id != id)
				continue;
			if (e->no_responders) {
				probe_end(p, MCPD_OK, NULL);
			} else {
				long long v = strtoll(e->data, NULL, 10);
				p->count += v > 0 ? v : 0;
			}
			break;
		}
	}
}

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct nats *n = arg;
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof(v));
	(void)r;
	pthread_mutex_lock(&n->mu);
	struct ev *list = n->evs;
	n->evs = NULL;
	n->evs_tail = &n->evs;
	pthread_mutex_unlock(&n->mu);
	while (list != NULL) {
		struct ev *e = list;
		list = e->next;
		const char *text = e->data ? e->data : "out of memory";
		switch (e->kind) {
		case E_MSG:
			on_message(n, e);
			break;
		case E_UP:
			if (!n->connected)
				n->host->log(MCPD_LOG_NOTICE, "nats: connected%s to %s", n->ever_connected ? " again" : "",
				    text);
			n->connected = n->ever_connected = 1;
			break;
		case E_DOWN:
			if (n->connected || strcmp(n->why, text) != 0)
				n->host->log(MCPD_LOG_WARN, "nats: %s", text);
			n->connected = 0;
			snprintf(n->why, sizeof(n->why), "%s", text);
			break;
		case E_ERROR:
			if (strcmp(n->why, text) != 0)
				n->host->log(MCPD_LOG_ERROR, "%s", text);
			if (!n->connected)
				snprintf(n->why, sizeof(n->why), "%s", text);
			break;
		case E_DONE:
			e->cb(e->arg, e->status, e->status == MCPD_OK ? NULL : text);
			break;
		}
		ev_free(e);
	}
}

static void *
t_subscribe(void *inst, const char *channel, mcpd_message_cb *cb, void *arg)
{
	struct nats *n = inst;
	if (channel[0] == '\0' || strlen(channel) > MAX_CHANNEL)
		return NULL;
	int first = subs_count(&n->subs, channel) == 0;
	struct sub *s = subs_add(&n->subs, channel, cb, arg);
	if (s != NULL && first)
		queue_sub(n, C_SUB, channel);
	return s;
}

static void
t_unsubscribe(void *inst, void *subscription)
{
	struct nats *n = inst;
	struct sub *s = subscription;
	if (!subs_mark(s))
		return;
	if (subs_count(&n->subs, s->channel) == 0)
		queue_sub(n, C_UNSUB, s->channel);
	subs_release(&n->subs, s);
}

static const char *
down_reason(struct nats *n)
{
	return n->why[0] ? n->why : "nats is not connected yet";
}

static void
t_publish(void *inst, const char *channel, const void *msg, size_t len,
    const struct mcpd_publish_opts *opts, mcpd_done_cb *cb, void *arg)
{
	(void)opts;     /* no persistence: see the top of this file */
	struct nats *n = inst;
	char token[3 * MAX_CHANNEL + 1];
	const char *err = NULL;
	if (!n->connected)
		err = down_reason(n);
	else if (strlen(channel) > MAX_CHANNEL || encode(channel, token, sizeof(token)) < 0)
		err = "nats: the channel name is empty or too long";
	else if (queue_pub(n, subject_of(n, 'c', token), NULL, msg, len, cb, arg) < 0)
		err = "nats: the queue to the server is full";
	if (err != NULL && cb != NULL)
		cb(arg, MCPD_ERROR, err);
}

static void
t_has_subscribers(void *inst, const char *channel, mcpd_int_cb *cb, void *arg)
{
	struct nats *n = inst;
	char token[3 * MAX_CHANNEL + 1];
	if (!n->connected) {
		cb(arg, MCPD_ERROR, 0, down_reason(n));
		return;
	}
	if (strlen(channel) > MAX_CHANNEL || encode(channel, token, sizeof(token)) < 0) {
		cb(arg, MCPD_ERROR, 0, "nats: the channel name is empty or too long");
		return;
	}
	struct probe *p = calloc(1, sizeof(*p));
	char *reply = NULL;
	if (p == NULL || (p->timer = evtimer_new(n->host->event_base(), probe_timeout, p)) == NULL)
		goto fail;
	if (asprintf(&reply, "%sr.%s.%llu", n->prefix, n->inbox, (unsigned long long)(n->next_probe + 1)) < 0) {
		reply = NULL;
		goto fail;
	}
	p->n = n;
	p->id = ++n->next_probe;
	p->cb = cb;
	p->arg = arg;
	if (queue_pub(n, subject_of(n, 'p', token), reply, "", 0, NULL, NULL) < 0) {
		reply = NULL;   /* queue_pub took it */
		goto fail;
	}
	struct timeval tv = { (time_t)(n->presence_timeout_ms / 1000),
	    (suseconds_t)(n->presence_timeout_ms % 1000) * 1000 };
	evtimer_add(p->timer, &tv);
	p->next = n->probes;
	n->probes = p;
	return;
fail:
	free(reply);
	if (p != NULL && p->timer != NULL)
		event_free(p->timer);
	free(p);
	cb(arg, MCPD_ERROR, 0, "nats: out of memory or the queue to the server is full");
}

static const struct mcpd_transport_ops transport_ops = {
	.size = sizeof(struct mcpd_transport_ops),
	.subscribe = t_subscribe,
	.unsubscribe = t_unsubscribe,
	.publish = t_publish,
	.has_subscribers = t_has_subscribers,
};

/* ---- configuration (in the master) ---- */

static int
url_ok(const char *u)
{
	const char *p = strstr(u, "://");
	if (p == NULL)
		return 0;
	size_t sl = (size_t)(p - u);
	if (!((sl == 4 && strncmp(u, "nats", 4) == 0) || (sl == 3 && strncmp(u, "tls", 3) == 0)))
		return 0;
	p += 3;
	const char *at = strrchr(p, '@');
	if (at != NULL)
		p = at + 1;
	if (*p == '\0' || *p == ':' || strpbrk(p, " /,") != NULL)
		return 0;
	const char *colon = strrchr(p, ':');
	if (colon != NULL && p[0] != '[') {
		char *end;
		long port = strtol(colon + 1, &end, 10);
		if (*end != '\0' || port <= 0 || port > 65535)
			return 0;
	}
	return 1;
}

static int
prefix_ok(const char *s)
{
	/* Tokens of subject characters, each followed by a dot. */
	size_t len = strlen(s);
	if (len == 0 || len > 100 || s[0] == '.' || s[len - 1] != '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.' ? s[i + 1] == '.' : !token_char(c) || c == '%')
			return 0;
	}
	return 1;
}

/* A file's whole content, or its first line (secrets), into *out. */
static int
read_file(const struct mcpd_host *h, const struct mcpd_config *node, const char *key, int first_line,
    char **out, char *err, size_t errlen)
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
	char buf[65536];
	size_t len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	if (first_line)
		buf[strcspn(buf, "\r\n")] = '\0';
	free(*out);
	*out = NULL;
	if (buf[0] == '\0' || len == sizeof(buf) - 1) {
		section_error(h, node, err, errlen, "%s: %s is empty or too long", key, path);
		free(path);
		return -1;
	}
	free(path);
	if ((*out = strdup(buf)) == NULL) {
		section_say(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static void
nats_free(struct nats *n)
{
	strlist_clear(&n->urls);
	char *secrets[] = { n->token, n->password };
	for (size_t i = 0; i < 2; i++)
		if (secrets[i] != NULL)
			memset(secrets[i], 0, strlen(secrets[i]));
	free(n->token);
	free(n->user);
	free(n->password);
	free(n->creds_file);
	free(n->ca_pem);
	free(n);
}

static const char KEYS[] = "url, prefix, token, token_file, user, password, password_file, creds_file, "
    "tls, tls_ca_file, connect_timeout, presence_timeout";

static void *
nats_create(const struct mcpd_host *host, const struct mcpd_config *section, char *err, size_t errlen)
{
	struct nats *n = calloc(1, sizeof(*n));
	if (n == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	n->host = host;
	n->efd = -1;
	snprintf(n->prefix, sizeof(n->prefix), "mcpd.");
	n->connect_timeout_ms = 2000;
	n->presence_timeout_ms = 100;
	const struct mcpd_config *user_node = NULL, *password_node = NULL;
	for (size_t i = 0; i < host->config_count(section); i++) {
		const char *key, *v;
		const struct mcpd_config *node = host->config_item(section, i, &key);
		v = host->config_scalar(node);
		int rc = 0;
		if (strcmp(key, "plugin") == 0) {
			continue;
		} else if (strcmp(key, "url") == 0) {
			/* One URL, a comma-separated list, or a sequence of them. */
			const struct mcpd_config *bad = NULL;
			struct strlist l = { 0 };
			rc = section_strings(host, node, 0, NULL, &l, &bad);
			strlist_clear(&n->urls);
			for (size_t j = 0; rc == 0 && j < l.n; j++) {
				char *save = NULL;
				for (char *tok = strtok_r(l.v[j], ", ", &save); rc == 0 && tok != NULL;
				    tok = strtok_r(NULL, ", ", &save)) {
					if (!url_ok(tok))
						rc = section_error(host, node, err, errlen, "url \"%s\" is not "
						    "nats://[user:password@]host[:port] or tls://...", tok);
					else if (strlist_add(&n->urls, tok, strlen(tok)) < 0)
						rc = -1;
				}
			}
			strlist_clear(&l);
			if ((rc != 0 && err[0] == '\0' && bad != NULL) || (rc == 0 && n->urls.n == 0))
				rc = section_error(host, bad ? bad : node, err, errlen, "url must be a nats:// URL "
				    "or a list of them");
		} else if (strcmp(key, "prefix") == 0) {
			char p[128];
			snprintf(p, sizeof(p), "%s%s", v ? v : "", v && v[0] && v[strlen(v) - 1] != '.' ? "." : "");
			if (v == NULL || !prefix_ok(p))
				rc = section_error(host, node, err, errlen, "prefix must be subject tokens such as "
				    "\"mcpd.\" (no spaces, '*', '>', '%%' or empty tokens)");
			else
				snprintf(n->prefix, sizeof(n->prefix), "%s", p);
		} else if (strcmp(key, "token") == 0) {
			rc = section_string(host, node, key, &n->token, err, errlen);
		} else if (strcmp(key, "token_file") == 0) {
			rc = read_file(host, node, key, 1, &n->token, err, errlen);
		} else if (strcmp(key, "user") == 0) {
			rc = section_string(host, node, key, &n->user, err, errlen);
			user_node = node;
		} else if (strcmp(key, "password") == 0) {
			rc = section_string(host, node, key, &n->password, err, errlen);
			password_node = node;
		} else if (strcmp(key, "password_file") == 0) {
			rc = read_file(host, node, key, 1, &n->password, err, errlen);
			password_node = node;
		} else if (strcmp(key, "creds_file") == 0) {
			struct stat st;
			free(n->creds_file);
			n->creds_file = v && v[0] ? section_path(host, v) : NULL;
			if (n->creds_file == NULL || stat(n->creds_file, &st) < 0 || !S_ISREG(st.st_mode))
				rc = section_error(host, node, err, errlen, "creds_file must name a credentials file "
				    "(read by the workers at each connection)");
		} else if (strcmp(key, "tls") == 0) {
			if (v == NULL || (strcmp(v, "true") != 0 && strcmp(v, "false") != 0))
				rc = section_error(host, node, err, errlen, "tls must be true or false");
			else
				n->secure = strcmp(v, "true") == 0;
		} else if (strcmp(key, "tls_ca_file") == 0) {
			rc = read_file(host, node, key, 0, &n->ca_pem, err, errlen);
			n->secure = 1;
		} else if (strcmp(key, "connect_timeout") == 0) {
			rc = section_duration(host, node, key, 10, 60000, "10ms to 60s", &n->connect_timeout_ms,
			    err, errlen);
		} else if (strcmp(key, "presence_timeout") == 0) {
			rc = section_duration(host, node, key, 5, 10000, "5ms to 10s", &n->presence_timeout_ms,
			    err, errlen);
		} else {
			rc = section_error(host, node, err, errlen, "unknown key \"%s\" (nats takes %s)", key, KEYS);
		}
		if (rc != 0) {
			if (err[0] == '\0')
				snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	if ((user_node != NULL) != (password_node != NULL)) {
		section_error(host, user_node ? user_node : password_node, err, errlen,
		    "user and password (or password_file) go together");
		goto fail;
	}
	if (n->token != NULL && n->user != NULL) {
		section_error(host, user_node, err, errlen, "give a token or a user, not both");
		goto fail;
	}
	if (n->urls.n == 0 && strlist_add(&n->urls, "nats://127.0.0.1:4222", 21) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < n->urls.n; i++)
		if (strncmp(n->urls.v[i], "tls://", 6) == 0)
			n->secure = 1;
	return n;
fail:
	nats_free(n);
	return NULL;
}

/* ---- lifecycle (in each worker) ---- */

static int
nats_attach(void *inst, char *err, size_t errlen)
{
	struct nats *n = inst;
	unsigned char rnd[8];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		snprintf(err, errlen, "getrandom: %s", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(n->inbox + 2 * i, 3, "%02x", rnd[i]);
	srand((unsigned)(rnd[0] | rnd[1] << 8) ^ (unsigned)getpid());
	/* The thread must not call the host: what it needs is set here. */
	snprintf(n->name, sizeof(n->name), "mcpd worker %u pid %ld", n->host->worker_id(), (long)getpid());
	pthread_mutex_init(&n->mu, NULL);
	pthread_cond_init(&n->cond, NULL);
	n->cmds_tail = &n->cmds;
	n->evs_tail = &n->evs;
	n->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (n->efd < 0 || (n->wake = event_new(n->host->event_base(), n->efd, EV_READ | EV_PERSIST,
	    wake_cb, n)) == NULL || event_add(n->wake, NULL) < 0) {
		snprintf(err, errlen, "cannot watch an eventfd: %s", strerror(errno));
		return -1;
	}
	/* Not connected yet is fine: mcpd starts, reports not ready, and
	 * serves as soon as NATS answers. */
	int rc = pthread_create(&n->thread, NULL, thread_main, n);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the NATS thread: %s", strerror(rc));
		return -1;
	}
	n->started = 1;
	return 0;
}

static void
nats_detach(void *inst)
{
	struct nats *n = inst;
	if (n->started) {
		struct cmd *c = calloc(1, sizeof(*c));
		if (c != NULL) {
			c->kind = C_STOP;
			queue_cmd(n, c);
			pthread_join(n->thread, NULL);
		}
		n->started = 0;
		pthread_mutex_lock(&n->mu);
		n->stopped = 1;
		pthread_mutex_unlock(&n->mu);
	}
	if (n->wake != NULL)
		event_free(n->wake);
	n->wake = NULL;
	if (n->efd >= 0)
		close(n->efd);
	n->efd = -1;
	while (n->evs != NULL) {
		struct ev *e = n->evs;
		n->evs = e->next;
		ev_free(e);
	}
	while (n->cmds != NULL) {
		struct cmd *c = n->cmds;
		n->cmds = c->next;
		cmd_free(c);
	}
	while (n->probes != NULL) {
		struct probe *p = n->probes;
		n->probes = p->next;
		event_free(p->timer);
		free(p);
	}
	subs_clear(&n->subs);
}

static void
nats_destroy(void *inst)
{
	nats_free(inst);
}

static int
nats_status(void *inst, char *why, size_t len)
{
	struct nats *n = inst;
	if (n->connected)
		return 0;
	snprintf(why, len, "%s", down_reason(n));
	return -1;
}

static const struct mcpd_plugin descriptor = {
	.size = sizeof(struct mcpd_plugin),
	.abi_major = MCPD_PLUGIN_ABI_MAJOR,
	.abi_minor = MCPD_PLUGIN_ABI_MINOR,
	.kind = MCPD_PLUGIN_TRANSPORT,
	.name = "nats",
	.version = "1.0.0",
	.create = nats_create,
	.attach = nats_attach,
	.detach = nats_detach,
	.destroy = nats_destroy,
	.ops = &transport_ops,
	.status = nats_status,
};

const struct mcpd_plugin *
mcpd_plugin_entry(void)
{
	return &descriptor;
}
