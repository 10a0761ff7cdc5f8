/* A per-worker cache in front of any storage plugin (storage: { cache: }):
 * the worker's backends table pointed at wrappers that answer reads of
 * read-mostly keys (session records, OAuth access tokens, grants and
 * clients) from memory, and write through. A write or delete of such a
 * key is published on the transport (channel mcpd:cache) to every worker
 * of every instance, which drop their copy, and the caller hears the
 * outcome only once that message has come back to this worker (the
 * broker has handed it to every subscriber), or, with a transport that
 * does not bring it back, once the transport has accepted it. A hit is
 * answered on the next turn of the loop, after invalidations that have
 * arrived by then. While the transport is down, or since a publish
 * failed, reads go to storage. */
#ifndef MCPD_STORAGE_CACHE_H
#define MCPD_STORAGE_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct backends;
struct event_base;

/* ---- the table: bounded, least recently used first out ---- */

struct scache;

#define SCACHE_MAX_VALUE 65536          /* larger values are not kept */

struct scache *scache_new(size_t entries);
void scache_free(struct scache *c);
/* 1 and the entry (status MCPD_OK with its value, or MCPD_NOT_FOUND)
 * when key is there and now < its expiry; else 0. The value lives until
 * the next change of the table. */
int scache_get(struct scache *c, const char *key, uint64_t now, int *status,
    const void **value, size_t *len);
/* Keep key until expires (the least recently used entry goes when
 * full); -1 when it cannot (no memory, a value too large). */
int scache_put(struct scache *c, const char *key, int status, const void *value, size_t len,
    uint64_t expires);
void scache_drop(struct scache *c, const char *key);
void scache_clear(struct scache *c);
size_t scache_size(const struct scache *c);

/* ---- the wrapper ---- */

struct storage_cache_conf {
	uint64_t entries;               /* 0: no cache */
	uint64_t ttl_ms;
};

/* The transport's status (struct mcpd_plugin's), or NULL: always up. */
typedef int scache_status_fn(void *inst, char *why, size_t len);

/* Put the cache in front of b's storage (b keeps its transport, which
 * carries the invalidations). -1 when it cannot (no memory, no
 * subscription): b is unchanged. */
int storage_cache_backends(struct backends *b, struct event_base *base,
    const struct storage_cache_conf *conf, scache_status_fn *transport_status);
/* Once the backends are detached (no callback can come any more, and
 * the subscription went with the transport): restore b's storage (b may
 * be NULL) and free the cache and what the plugins dropped. */
void storage_cache_forget(struct backends *b);

struct storage_cache_stats {
	uint64_t hits, misses, bypassed, invalidations;
	size_t size;
};
void storage_cache_stats(struct storage_cache_stats *st);

/* Whether key is one the cache keeps (for tests). */
int storage_cache_key(const char *key, int *negative);

#endif
