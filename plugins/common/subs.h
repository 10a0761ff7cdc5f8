/*
 * The subscriptions of one transport plugin instance in one worker: a hash
 * table of channel -> callbacks that lets a callback unsubscribe (itself or
 * another) while a message is being delivered. Built into the transport
 * plugins (local, redis, nats, sqs, pubsub, amqp); localq.c delivers
 * through it what sqs and pubsub publish for their own worker.
 */
#ifndef MCPD_COMMON_SUBS_H
#define MCPD_COMMON_SUBS_H

#include <mcpd/plugin.h>

#include <stddef.h>

#define SUBS_BUCKETS 1024

struct sub {
	char *channel;
	mcpd_message_cb *cb;
	void *arg;
	int dead;                   /* unsubscribed; freed once no delivery runs */
	struct sub *next;
};

struct subs {
	struct sub *buckets[SUBS_BUCKETS];
	int delivering;             /* inside callbacks: removal only marks */
	size_t ndead;               /* marked, to be freed after the delivery */
};

/* FNV-1a of the channel, modulo SUBS_BUCKETS. */
unsigned subs_hash(const char *channel);
/* Live subscriptions to channel. */
size_t subs_count(const struct subs *t, const char *channel);
/* A new subscription, or NULL when out of memory. */
struct sub *subs_add(struct subs *t, const char *channel, mcpd_message_cb *cb, void *arg);
/* Marks s unsubscribed (0 if it already was): subs_count no longer counts
 * it, and s->channel stays readable until subs_release(t, s). */
int subs_mark(struct sub *s);
/* Frees a marked s now, or after the delivery in progress. */
void subs_release(struct subs *t, struct sub *s);
/* Calls every live callback of channel. */
void subs_deliver(struct subs *t, const char *channel, const void *msg, size_t len);
/* Frees every subscription. */
void subs_clear(struct subs *t);

#endif
