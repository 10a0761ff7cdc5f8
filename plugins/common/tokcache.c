/* A bearer token renewed before it expires: see tokcache.h. */
#include "tokcache.h"

#include "clock.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_AFTER_FAILURE_MS 1000

struct waiter {
	tokcache_cb *cb;
	void *arg;
	struct waiter *next;
};

struct tokcache {
	tokcache_fetch_fn *fetch;
	void *src;
	char *token;
	uint64_t expires_ms, obtained_ms;
	int fetching;
	uint64_t failed_at;             /* monotonic, of the last failed fetch */
	char error[1024];
	struct waiter *waiters, **tail;
	int depth;                      /* in callbacks: a free waits for them */
	int doomed;
};

static void
drop_token(struct tokcache *tc)
{
	if (tc->token != NULL) {
		OPENSSL_cleanse(tc->token, strlen(tc->token));
		free(tc->token);
		tc->token = NULL;
	}
}

struct tokcache *
tokcache_new(tokcache_fetch_fn *fetch, void *src)
{
	struct tokcache *tc = calloc(1, sizeof(*tc));
	if (tc == NULL)
		return NULL;
	tc->fetch = fetch;
	tc->src = src;
	tc->tail = &tc->waiters;
	return tc;
}

void
tokcache_free(struct tokcache *tc)
{
	if (tc == NULL)
		return;
	while (tc->waiters != NULL) {
		struct waiter *w = tc->waiters;
		tc->waiters = w->next;
		free(w);
	}
	tc->tail = &tc->waiters;
	if (tc->depth > 0) {
		tc->doomed = 1;
		return;
	}
	drop_token(tc);
	free(tc);
}

static uint64_t
life(uint64_t obtained, uint64_t expires)
{
	return expires > obtained ? expires - obtained : 0;
}

int
tokcache_usable(uint64_t obtained, uint64_t expires, uint64_t now)
{
	uint64_t l = life(obtained, expires), margin = l / 10 < 10000 ? l / 10 : 10000;
	return now + margin < expires;
}

int
tokcache_due(uint64_t obtained, uint64_t expires, uint64_t now)
{
	uint64_t l = life(obtained, expires), ahead = l / 2 < 300000 ? l / 2 : 300000;
	return now + ahead >= expires;
}

static int
usable(const struct tokcache *tc, uint64_t now)
{
	return tc->token != NULL && tokcache_usable(tc->obtained_ms, tc->expires_ms, now);
}

/* Every waiter told: the token, or why not. */
static void
serve(struct tokcache *tc, const char *why)
{
	struct waiter *w = tc->waiters;
	tc->waiters = NULL;
	tc->tail = &tc->waiters;
	tc->depth++;
	while (w != NULL) {
		struct waiter *next = w->next;
		if (!tc->doomed)
			w->cb(w->arg, why ? NULL : tc->token, why);
		free(w);
		w = next;
	}
	if (--tc->depth == 0 && tc->doomed)
		tokcache_free(tc);
}

static void
start_fetch(struct tokcache *tc)
{
	if (tc->fetching)
		return;
	tc->fetching = 1;
	tc->fetch(tc->src, tc);
}

void
tokcache_fetched(struct tokcache *tc, char *token, uint64_t expires_ms, const char *why)
{
	tc->fetching = 0;
	uint64_t now = real_ms();
	if (token == NULL || why != NULL) {
		if (token != NULL) {
			OPENSSL_cleanse(token, strlen(token));
			free(token);
		}
		tc->failed_at = mono_ms();
		snprintf(tc->error, sizeof(tc->error), "%s", why ? why : "no token");
		/* A renewal that failed: the current token serves while it can. */
		if (usable(tc, now)) {
			serve(tc, NULL);
			return;
		}
		char msg[sizeof(tc->error)];
		snprintf(msg, sizeof(msg), "%s", tc->error);
		serve(tc, msg);
		return;
	}
	drop_token(tc);
	tc->token = token;
	tc->expires_ms = expires_ms;
	tc->obtained_ms = now;
	tc->error[0] = '\0';
	tc->failed_at = 0;
	serve(tc, NULL);
}

void
tokcache_get(struct tokcache *tc, tokcache_cb *cb, void *arg)
{
	uint64_t now = real_ms();
	if (usable(tc, now)) {
		/* Renewed in the background once due; this one serves meanwhile. */
		if (tokcache_due(tc->obtained_ms, tc->expires_ms, now) && !tc->fetching &&
		    mono_ms() - tc->failed_at >= RETRY_AFTER_FAILURE_MS)
			start_fetch(tc);
		cb(arg, tc->token, NULL);
		return;
	}
	if (!tc->fetching && tc->failed_at != 0 && mono_ms() - tc->failed_at < RETRY_AFTER_FAILURE_MS) {
		cb(arg, NULL, tc->error);
		return;
	}
	struct waiter *w = malloc(sizeof(*w));
	if (w == NULL) {
		cb(arg, NULL, "out of memory");
		return;
	}
	w->cb = cb;
	w->arg = arg;
	w->next = NULL;
	*tc->tail = w;
	tc->tail = &w->next;
	start_fetch(tc);
}

void
tokcache_invalidate(struct tokcache *tc)
{
	drop_token(tc);
	tc->failed_at = 0;
}

int
tokcache_times(const struct tokcache *tc, uint64_t *expires_ms, uint64_t *renew_ms)
{
	if (tc->token == NULL)
		return -1;
	uint64_t l = life(tc->obtained_ms, tc->expires_ms), ahead = l / 2 < 300000 ? l / 2 : 300000;
	*expires_ms = tc->expires_ms;
	*renew_ms = tc->expires_ms - ahead;
	return 0;
}

const char *
tokcache_error(const struct tokcache *tc)
{
	return tc->error;
}
