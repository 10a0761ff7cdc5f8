/* The master's relay between workers: a SOCK_STREAM socketpair per
 * worker carrying framed messages. Workers subscribe to channels; the
 * master forwards each publish to the other subscribed workers. This is
 * what the `local` transport plugin is built on. */
#ifndef MCPD_RELAY_H
#define MCPD_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include <mcpd/plugin.h>

struct event_base;
struct relay_master;

/* ---- master side ---- */
struct relay_master *relay_master_new(struct event_base *base);
void relay_master_free(struct relay_master *rm);
/* A worker's end: the master owns fd from now on. Messages for it are
 * dropped while more than limit bytes wait for it (limits.stream_buffer).
 * Returns 0 or -1. */
int relay_master_add(struct relay_master *rm, int fd, unsigned slot, size_t limit);
/* The worker is gone: forget its subscriptions, close its end. */
void relay_master_remove(struct relay_master *rm, unsigned slot);
/* In a new worker: close the master's ends without touching the loop. */
void relay_master_close_fds(struct relay_master *rm);

/* ---- worker side (one per process) ---- */
/* Messages published are dropped (-1, logged) while more than limit bytes
 * wait for the master (limits.stream_buffer). */
int relay_worker_start(struct event_base *base, int fd, size_t limit);
void relay_worker_stop(void);
/* Instead of relay_worker_start in a process with no master (mcpd
 * --stdio): nothing to relay; subscribe, publish succeed, counts are 0. */
void relay_alone(void);
int relay_subscribe(const char *channel);
int relay_unsubscribe(const char *channel);
int relay_publish(const char *channel, const void *msg, size_t len);
void relay_count(const char *channel, mcpd_int_cb *cb, void *arg);
void relay_receive(mcpd_message_cb *cb, void *arg);
/* fn is called where the master began or ceased dropping messages to this
 * worker (it lagged, limits.stream_buffer), or another worker dropped what
 * it published (the master lagged): what this one holds may have missed
 * some. NULL: no one is told. */
void relay_on_gap(void (*fn)(void *arg), void *arg);

#endif
