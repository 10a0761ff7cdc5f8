#include "relay.h"
#include "log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Frame: u32 length (of what follows, big-endian), u8 op, payload.
 *   SUB / UNSUB:  channel
 *   PUB:          channel NUL message        (worker -> master)
 *   DELIVER:      channel NUL message        (master -> worker)
 *   COUNT:        u32 request id, channel    (worker -> master)
 *   COUNTED:      u32 request id, u32 count  (master -> worker)
 *   GAP:          nothing: messages were dropped from here on, or up to
 *                 here: to this worker (master -> worker), or from
 *                 that one, which the master tells every other worker
 *                 (worker -> master) */
enum { OP_SUB = 1, OP_UNSUB, OP_PUB, OP_DELIVER, OP_COUNT, OP_COUNTED, OP_GAP };

#define FRAME_MAX (16u * 1024 * 1024)
/* What may wait for the other end of a link. Messages (PUB, DELIVER) stop
 * at the link's limit (limits.stream_buffer: the relay is a stream like
 * any other, and a flood of events to a master or worker that lags must
 * not grow this process without end; one message may go past it). The
 * small frames that keep subscriptions and counts right have the room
 * up to BACKLOG_MAX beyond it. */
#define BACKLOG_MAX (64u * 1024 * 1024)
#define BUCKETS 4096

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A link's messages refused while its other end lags: logged when the
 * first is, and counted until one goes through again. */
struct lag {
	unsigned long dropped;
};

/* Whether a message may be queued on out (limit: the link's), with the
 * log lines of a lag's start and end. slot: the worker at the other end,
 * or -1 for the master. */
static int
message_room(struct evbuffer *out, size_t limit, struct lag *lag, long slot)
{
	size_t waiting = evbuffer_get_length(out);
	if (waiting <= limit && lag->dropped == 0)
		return 1;
	char who[48] = "the master";
	if (slot >= 0)
		snprintf(who, sizeof(who), "the worker in slot %ld", slot);
	if (waiting > limit) {
		if (lag->dropped++ == 0)
			log_warn("relay: %s does not keep up: %zu bytes wait for it, more than "
			    "limits.stream_buffer (%zu); messages to it are dropped until it catches up",
			    who, waiting, limit);
		return 0;
	}
	log_warn("relay: %s caught up; %lu message%s to it dropped meanwhile",
	    who, lag->dropped, lag->dropped == 1 ? "" : "s");
	lag->dropped = 0;
	return 1;
}

static int
send_frame(struct bufferevent *bev, int op, const void *a, size_t alen, const void *b, size_t blen)
{
	struct evbuffer *out = bufferevent_get_output(bev);
	if (1 + alen + blen > FRAME_MAX) {
		/* The reader would refuse it, and what followed it with it. */
		log_warn("relay: a message of %zu bytes is over the %u a frame holds; not sent",
		    alen + blen, FRAME_MAX - 1);
		return -1;
	}
	if (evbuffer_get_length(out) > BACKLOG_MAX)
		return -1;
	unsigned char head[5];
	put32(head, (uint32_t)(1 + alen + blen));
	head[4] = (unsigned char)op;
	evbuffer_add(out, head, 5);
	if (alen)
		evbuffer_add(out, a, alen);
	if (blen)
		evbuffer_add(out, b, blen);
	return 0;
}

/* Calls fn for each complete frame in the input. */
static void
read_frames(struct bufferevent *bev, void (*fn)(void *arg, int op, unsigned char *p, size_t len), void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	for (;;) {
		unsigned char head[4];
		if (evbuffer_copyout(in, head, 4) < 4)
			return;
		uint32_t len = get32(head);
		if (len == 0 || len > FRAME_MAX) {
			/* Where the next frame starts is lost: reading on would
			 * take message bytes for frames. */
			log_error("relay: bad frame of %u bytes; no more is read from this link", len);
			evbuffer_drain(in, evbuffer_get_length(in));
			bufferevent_disable(bev, EV_READ);
			return;
		}
		if (evbuffer_get_length(in) < 4 + (size_t)len)
			return;
		evbuffer_drain(in, 4);
		unsigned char *p = malloc(len + 1);
		if (p == NULL) {
			evbuffer_drain(in, len);
			continue;
		}
		evbuffer_remove(in, p, len);
		p[len] = '\0';
		fn(arg, p[0], p + 1, len - 1);
		free(p);
	}
}

/* ---- master ---- */

struct sub {                    /* channel -> the workers subscribed */
	char *channel;
	unsigned *slots;
	size_t n;
	struct sub *next;
};

struct link {
	struct relay_master *rm;
	struct bufferevent *bev;
	unsigned slot;
	size_t limit;               /* messages waiting for the worker */
	struct lag lag;
};

struct relay_master {
	struct event_base *base;
	struct link **links;        /* by slot */
	size_t nlinks;
	struct sub *buckets[BUCKETS];
};

static unsigned
hash(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % BUCKETS;
}

static struct sub *
find_sub(struct relay_master *rm, const char *channel, int create)
{
	unsigned h = hash(channel);
	for (struct sub *s = rm->buckets[h]; s != NULL; s = s->next)
		if (strcmp(s->channel, channel) == 0)
			return s;
	if (!create)
		return NULL;
	struct sub *s = calloc(1, sizeof(*s));
	if (s == NULL || (s->channel = strdup(channel)) == NULL) {
		free(s);
		return NULL;
	}
	s->next = rm->buckets[h];
	rm->buckets[h] = s;
	return s;
}

static void
drop_slot(struct relay_master *rm, struct sub *s, unsigned slot)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->slots[i] == slot) {
			s->slots[i] = s->slots[--s->n];
			break;
		}
	}
	if (s->n > 0)
		return;
	struct sub **pp = &rm->buckets[hash(s->channel)];
	while (*pp != s)
		pp = &(*pp)->next;
	*pp = s->next;
	free(s->slots);
	free(s->channel);
	free(s);
}

static void
master_frame(void *arg, int op, unsigned char *p, size_t len)
{
	struct link *l = arg;
	struct relay_master *rm = l->rm;
	switch (op) {
	case OP_SUB: {
		struct sub *s = find_sub(rm, (char *)p, 1);
		if (s == NULL)
			return;
		for (size_t i = 0; i < s->n; i++)
			if (s->slots[i] == l->slot)
				return;
		unsigned *n = realloc(s->slots, (s->n + 1) * sizeof(*n));
		if (n == NULL)
			return;
		s->slots = n;
		s->slots[s->n++] = l->slot;
		return;
	}
	case OP_UNSUB: {
		struct sub *s = find_sub(rm, (char *)p, 0);
		if (s != NULL)
			drop_slot(rm, s, l->slot);
		return;
	}
	case OP_PUB: {
		size_t cl = strnlen((char *)p, len);
		if (cl == len)
			return;
		struct sub *s = find_sub(rm, (char *)p, 0);
		for (size_t i = 0; s != NULL && i < s->n; i++) {
			if (s->slots[i] == l->slot || s->slots[i] >= rm->nlinks || rm->links[s->slots[i]] == NULL)
				continue;
			struct link *to = rm->links[s->slots[i]];
			unsigned long dropped = to->lag.dropped;
			int room = message_room(bufferevent_get_output(to->bev), to->limit, &to->lag, (long)to->slot);
			/* The worker hears where its messages start and stop being
			 * dropped (a small frame: there is room for it), so that
			 * it can end the streams that lost events. */
			if ((dropped == 0) != (to->lag.dropped == 0))
				send_frame(to->bev, OP_GAP, NULL, 0, NULL, 0);
			if (room)
				send_frame(to->bev, OP_DELIVER, p, len, NULL, 0);
		}
		return;
	}
	case OP_GAP:
		/* The worker dropped what it published while this master
		 * lagged: whoever held a stream it fed may have missed some. */
		for (size_t i = 0; i < rm->nlinks; i++)
			if (rm->links[i] != NULL && rm->links[i] != l)
				send_frame(rm->links[i]->bev, OP_GAP, NULL, 0, NULL, 0);
		return;
	case OP_COUNT: {
		if (len < 5)
			return;
		struct sub *s = find_sub(rm, (char *)p + 4, 0);
		uint32_t n = 0;
		for (size_t i = 0; s != NULL && i < s->n; i++)
			n += s->slots[i] != l->slot;
		unsigned char reply[8];
		memcpy(reply, p, 4);
		put32(reply + 4, n);
		send_frame(l->bev, OP_COUNTED, reply, 8, NULL, 0);
		return;
	}
	}
}

static void
master_read(struct bufferevent *bev, void *arg)
{
	read_frames(bev, master_frame, arg);
}

static void
master_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct link *l = arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		bufferevent_disable(l->bev, EV_READ);   /* the worker is exiting; SIGCHLD cleans up */
}

struct relay_master *
relay_master_new(struct event_base *base)
{
	struct relay_master *rm = calloc(1, sizeof(*rm));
	if (rm != NULL)
		rm->base = base;
	return rm;
}

int
relay_master_add(struct relay_master *rm, int fd, unsigned slot, size_t limit)
{
	if (slot >= rm->nlinks) {
		size_t n = slot + 64;
		struct link **l = realloc(rm->links, n * sizeof(*l));
		if (l == NULL)
			return -1;
		memset(l + rm->nlinks, 0, (n - rm->nlinks) * sizeof(*l));
		rm->links = l;
		rm->nlinks = n;
	}
	struct link *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return -1;
	evutil_make_socket_nonblocking(fd);
	l->bev = bufferevent_socket_new(rm->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (l->bev == NULL) {
		free(l);
		return -1;
	}
	l->rm = rm;
	l->slot = slot;
	l->limit = limit;
	bufferevent_setcb(l->bev, master_read, NULL, master_event, l);
	bufferevent_enable(l->bev, EV_READ | EV_WRITE);
	rm->links[slot] = l;
	return 0;
}

void
relay_master_remove(struct relay_master *rm, unsigned slot)
{
	if (slot >= rm->nlinks || rm->links[slot] == NULL)
		return;
	for (size_t b = 0; b < BUCKETS; b++) {
		struct sub *s = rm->buckets[b];
		while (s != NULL) {
			struct sub *next = s->next;
			for (size_t i = 0; i < s->n; i++)
				if (s->slots[i] == slot) {
					drop_slot(rm, s, slot);
					break;
				}
			s = next;
		}
	}
	bufferevent_free(rm->links[slot]->bev);
	free(rm->links[slot]);
	rm->links[slot] = NULL;
}

void
relay_master_close_fds(struct relay_master *rm)
{
	for (size_t i = 0; i < rm->nlinks; i++)
		if (rm->links[i] != NULL)
			close(bufferevent_getfd(rm->links[i]->bev));
}

void
relay_master_free(struct relay_master *rm)
{
	if (rm == NULL)
		return;
	for (size_t i = 0; i < rm->nlinks; i++)
		if (rm->links[i] != NULL)
			relay_master_remove(rm, (unsigned)i);
	free(rm->links);
	free(rm);
}

/* ---- worker ---- */

struct count_wait {
	uint32_t id;
	mcpd_int_cb *cb;
	void *arg;
	struct count_wait *next;
};

static struct {
	struct bufferevent *bev;
	size_t limit;               /* messages waiting for the master */
	struct lag lag;
	mcpd_message_cb *receive;
	void *receive_arg;
	struct count_wait *waits;
	uint32_t next_id;
	void (*gap)(void *arg);
	void *gap_arg;
} w;

static void
worker_frame(void *arg, int op, unsigned char *p, size_t len)
{
	(void)arg;
	if (op == OP_DELIVER) {
		size_t cl = strnlen((char *)p, len);
		if (cl < len && w.receive != NULL)
			w.receive(w.receive_arg, (char *)p, p + cl + 1, len - cl - 1);
	} else if (op == OP_GAP) {
		if (w.gap != NULL)
			w.gap(w.gap_arg);
	} else if (op == OP_COUNTED && len == 8) {
		uint32_t id = get32(p);
		for (struct count_wait **pp = &w.waits; *pp != NULL; pp = &(*pp)->next) {
			if ((*pp)->id == id) {
				struct count_wait *cw = *pp;
				*pp = cw->next;
				cw->cb(cw->arg, MCPD_OK, get32(p + 4), NULL);
				free(cw);
				return;
			}
		}
	}
}

static void
worker_read(struct bufferevent *bev, void *arg)
{
	read_frames(bev, worker_frame, arg);
}

static void
worker_event(struct bufferevent *bev, short what, void *arg)
{
	(void)arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		bufferevent_disable(bev, EV_READ);   /* the master is gone; the channel says so too */
}

int
relay_worker_start(struct event_base *base, int fd, size_t limit)
{
	w.limit = limit;
	memset(&w.lag, 0, sizeof(w.lag));
	evutil_make_socket_nonblocking(fd);
	w.bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (w.bev == NULL)
		return -1;
	bufferevent_setcb(w.bev, worker_read, NULL, worker_event, NULL);
	bufferevent_enable(w.bev, EV_READ | EV_WRITE);
	return 0;
}

void
relay_worker_stop(void)
{
	while (w.waits != NULL) {
		struct count_wait *cw = w.waits;
		w.waits = cw->next;
		cw->cb(cw->arg, MCPD_ERROR, 0, "the worker is stopping");
		free(cw);
	}
	if (w.bev != NULL)
		bufferevent_free(w.bev);
	w.bev = NULL;
}

/* No master and no other worker (mcpd --stdio): whoever listens is in
 * this process, and the local transport reaches them itself. */
static int alone;

void
relay_alone(void)
{
	alone = 1;
}

int
relay_subscribe(const char *channel)
{
	if (alone)
		return 0;
	return w.bev ? send_frame(w.bev, OP_SUB, channel, strlen(channel) + 1, NULL, 0) : -1;
}

int
relay_unsubscribe(const char *channel)
{
	if (alone)
		return 0;
	return w.bev ? send_frame(w.bev, OP_UNSUB, channel, strlen(channel) + 1, NULL, 0) : -1;
}

int
relay_publish(const char *channel, const void *msg, size_t len)
{
	if (alone)
		return 0;
	if (w.bev == NULL)
		return -1;
	unsigned long dropped = w.lag.dropped;
	int room = message_room(bufferevent_get_output(w.bev), w.limit, &w.lag, -1);
	if ((dropped == 0) != (w.lag.dropped == 0))
		send_frame(w.bev, OP_GAP, NULL, 0, NULL, 0);
	if (!room)
		return -1;
	return send_frame(w.bev, OP_PUB, channel, strlen(channel) + 1, msg, len);
}

void
relay_count(const char *channel, mcpd_int_cb *cb, void *arg)
{
	if (alone) {
		cb(arg, MCPD_OK, 0, NULL);
		return;
	}
	struct count_wait *cw = calloc(1, sizeof(*cw));
	if (w.bev == NULL || cw == NULL) {
		free(cw);
		cb(arg, MCPD_ERROR, 0, "no relay");
		return;
	}
	cw->id = ++w.next_id;
	cw->cb = cb;
	cw->arg = arg;
	cw->next = w.waits;
	w.waits = cw;
	unsigned char id[4];
	put32(id, cw->id);
	send_frame(w.bev, OP_COUNT, id, 4, channel, strlen(channel) + 1);
}

void
relay_receive(mcpd_message_cb *cb, void *arg)
{
	w.receive = cb;
	w.receive_arg = arg;
}

void
relay_on_gap(void (*fn)(void *arg), void *arg)
{
	w.gap = fn;
	w.gap_arg = arg;
}
