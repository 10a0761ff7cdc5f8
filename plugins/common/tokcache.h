/*
 * One bearer token (an OAuth access token: Entra ID's for Cosmos DB) for
 * a worker, fetched on its loop by a source and renewed before it
 * expires: in the background from the second half of its life (at most
 * 5 minutes before it ends), and used until its last tenth (at most
 * 10 s), so that a call never reaches the service with a token that
 * lapsed on the way. Calls that need it while none is usable wait for
 * the fetch; a failed fetch is not tried again for a second (they are
 * told why at once meanwhile). The token is wiped when dropped and never
 * logged. Cloud-neutral: built into each plugin that uses it.
 */
#ifndef MCPD_PLUGIN_TOKCACHE_H
#define MCPD_PLUGIN_TOKCACHE_H

#include <stddef.h>
#include <stdint.h>

struct tokcache;

/* Runs once per tokcache_get: with token, or token NULL and why. The
 * token lives until the callback returns. */
typedef void tokcache_cb(void *arg, const char *token, const char *why);

/* Starts a fetch for tc: the source calls tokcache_fetched once, before
 * returning or later from the loop. */
typedef void tokcache_fetch_fn(void *src, struct tokcache *tc);

struct tokcache *tokcache_new(tokcache_fetch_fn *fetch, void *src);
/* Waiters hear nothing more. Safe from inside a callback of tc. */
void tokcache_free(struct tokcache *tc);

void tokcache_get(struct tokcache *tc, tokcache_cb *cb, void *arg);
/* A fetch ended: token (malloc'ed, taken) valid until expires_ms (wall
 * clock, Unix ms), or token NULL and why. */
void tokcache_fetched(struct tokcache *tc, char *token, uint64_t expires_ms, const char *why);
/* The service refused the token: fetch another before the next use. */
void tokcache_invalidate(struct tokcache *tc);
/* The current token's end and when its renewal is due (wall clock, Unix
 * ms): for a holder that hands the token on (Service Bus's $cbs). 0, or
 * -1 when there is none. */
int tokcache_times(const struct tokcache *tc, uint64_t *expires_ms, uint64_t *renew_ms);
/* Why the last fetch failed ("" when it did not). */
const char *tokcache_error(const struct tokcache *tc);

/* When to renew (for tests): usable at now, due for renewal at now. */
int tokcache_usable(uint64_t obtained, uint64_t expires, uint64_t now);
int tokcache_due(uint64_t obtained, uint64_t expires, uint64_t now);

#endif
