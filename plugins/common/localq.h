/*
 * What a transport plugin that goes through a service (sqs, pubsub)
 * publishes to a channel that this worker's own subscribers hold: a copy
 * for them, delivered from the loop (a publish never calls subscribers
 * before it returns), the service's copy being for the other workers.
 * Built into those plugins, over subs.c.
 */
#ifndef MCPD_COMMON_LOCALQ_H
#define MCPD_COMMON_LOCALQ_H

#include <stddef.h>

struct event;
struct event_base;
struct local;
struct subs;

struct localq {
	struct subs *subs;
	struct event *ev;
	struct local *head, **tail;
};

/* q delivers to subs on base's loop: 0, or -1 (out of memory). */
int localq_init(struct localq *q, struct event_base *base, struct subs *subs);
/* When channel has subscribers here, a copy of msg for them (dropped when
 * out of memory). */
void localq_push(struct localq *q, const char *channel, const void *msg, size_t len);
/* What waits is dropped, and the event freed (the worker detaching). */
void localq_clear(struct localq *q);

#endif
