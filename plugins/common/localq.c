/* Messages for this worker's own subscribers: see localq.h. */
#include "localq.h"

#include "subs.h"

#include <event2/event.h>

#include <stdlib.h>
#include <string.h>

struct local {
	char *channel;
	char *msg;
	size_t len;
	struct local *next;
};

static void
local_free(struct local *l)
{
	free(l->channel);
	free(l->msg);
	free(l);
}

static void
deliver(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct localq *q = arg;
	struct local *l = q->head;
	q->head = NULL;
	q->tail = &q->head;
	while (l != NULL) {
		struct local *next = l->next;
		subs_deliver(q->subs, l->channel, l->msg, l->len);
		local_free(l);
		l = next;
	}
}

int
localq_init(struct localq *q, struct event_base *base, struct subs *subs)
{
	q->subs = subs;
	q->head = NULL;
	q->tail = &q->head;
	q->ev = evtimer_new(base, deliver, q);
	return q->ev != NULL ? 0 : -1;
}

void
localq_push(struct localq *q, const char *channel, const void *msg, size_t len)
{
	if (subs_count(q->subs, channel) == 0)
		return;
	struct local *l = calloc(1, sizeof(*l));
	if (l == NULL || (l->channel = strdup(channel)) == NULL || (l->msg = malloc(len ? len : 1)) == NULL) {
		if (l != NULL)
			local_free(l);
		return;
	}
	memcpy(l->msg, msg, len);
	l->len = len;
	*q->tail = l;
	q->tail = &l->next;
	struct timeval now = { 0, 0 };
	event_add(q->ev, &now);
}

void
localq_clear(struct localq *q)
{
	if (q->ev != NULL) {
		event_free(q->ev);
		q->ev = NULL;
	}
	while (q->head != NULL) {
		struct local *l = q->head;
		q->head = l->next;
		local_free(l);
	}
	q->tail = &q->head;
}
