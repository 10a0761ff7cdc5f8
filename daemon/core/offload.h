/* CPU-heavy work (password hashing) off a worker's event loop: one helper
 * thread per worker, started on first use, runs jobs in order; each job's
 * done() then runs on the loop. The queue is bounded, so that a flood of
 * logins waits in the kernel's accept queue rather than in memory. */
#ifndef MCPD_OFFLOAD_H
#define MCPD_OFFLOAD_H

#include <stddef.h>

struct event_base;
struct offload;

struct offload *offload_new(struct event_base *base, size_t max_queued);
/* Waits for the running job, then runs every done() not yet run with
 * cancelled set (the queued jobs are not run): call it once the loop no
 * longer runs. */
void offload_free(struct offload *o);
/* work(arg) runs on the helper thread (it must touch nothing the loop
 * uses), then done(arg, 0) on the loop. -1 when the queue is full or the
 * thread cannot start: nothing runs. */
int offload_run(struct offload *o, void (*work)(void *arg), void (*done)(void *arg, int cancelled),
    void *arg);

#endif
