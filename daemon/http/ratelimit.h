/* Rate limits on the endpoint (limits.rate): a token bucket per key (a
 * principal, or a client address without auth). Per worker, the buckets
 * live in this process: the daemon's bound is then workers x the rate
 * (instances x workers x the rate with several instances). Shared, each
 * key counts in the storage plugin with incr, in fixed windows of the
 * time the burst takes to earn: every worker of every instance draws on
 * the same count. A storage that fails falls back to the worker's own
 * bucket, so that an outage neither lets a flood through nor stops the
 * service. */
#ifndef MCPD_RATELIMIT_H
#define MCPD_RATELIMIT_H

#include <stdint.h>

struct backends;
struct rate_conf;
struct ratelimit;

/* Keys kept per worker; past this the least recently used goes (its
 * bucket had most time to fill again). */
#define RATELIMIT_MAX_KEYS 65536
/* Longer keys are cut: a key is a user name or an address. */
#define RATELIMIT_KEY_MAX 200

/* NULL when rc sets no rate (or out of memory: then err is set). b is
 * used when rc is shared (its storage must have incr). */
struct ratelimit *ratelimit_new(const struct rate_conf *rc, const struct backends *b,
    int *failed);
void ratelimit_free(struct ratelimit *rl);

/* Called with 0 when the request may go on, else with the seconds after
 * which to retry (at least 1). May be called before ratelimit_take
 * returns. */
typedef void ratelimit_cb(void *arg, uint64_t retry_after_s);
void ratelimit_take(struct ratelimit *rl, const char *key, ratelimit_cb *cb, void *arg);

/* The worker's own bucket, at a given time (monotonic microseconds):
 * 0 or the seconds to wait. For tests, and the fallback. */
uint64_t ratelimit_local(struct ratelimit *rl, const char *key, uint64_t now_us);
/* The same without taking: 0 when a request would pass now. */
uint64_t ratelimit_peek(struct ratelimit *rl, const char *key, uint64_t now_us);
/* Keys the worker holds now. */
unsigned ratelimit_keys(const struct ratelimit *rl);
/* Shared: the window (ms) in which at most burst requests pass. */
uint64_t ratelimit_window_ms(const struct rate_conf *rc);

#endif
