/* Rate limits on the endpoint (see ratelimit.h). */
#include "ratelimit.h"
#include "config.h"
#include "log.h"
#include "plugin.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#define NHASH 4096

struct bucket {
	double tokens;
	uint64_t at_us;                 /* when tokens was last brought up to date */
	struct bucket *hnext;
	TAILQ_ENTRY(bucket) lru;        /* most recently used first */
	char key[];
};

/* A shared count in flight; rl is NULL once the limiter is freed. */
struct rate_op {
	struct ratelimit *rl;
	ratelimit_cb *cb;
	void *arg;
	uint64_t retry_s;               /* to the end of the window */
	LIST_ENTRY(rate_op) link;
	char key[];                     /* for the fallback */
};

struct ratelimit {
	struct rate_conf rc;
	double per_us;                  /* tokens earned a microsecond */
	const struct mcpd_storage_ops *storage;
	void *storage_inst;
	struct bucket *hash[NHASH];
	TAILQ_HEAD(bucket_lru, bucket) lru;
	unsigned nkeys;
	uint64_t warned_ms;             /* the last storage failure logged */
	LIST_HEAD(, rate_op) ops;
};

struct ratelimit *
ratelimit_new(const struct rate_conf *rc, const struct backends *b, int *failed)
{
	*failed = 0;
	if (rc->period_ms == 0)
		return NULL;
	struct ratelimit *rl = calloc(1, sizeof(*rl));
	if (rl == NULL) {
		*failed = 1;
		return NULL;
	}
	rl->rc = *rc;
	rl->per_us = (double)rc->per / ((double)rc->period_ms * 1000.0);
	if (rc->shared && b != NULL && b->storage != NULL && b->storage->incr != NULL) {
		rl->storage = b->storage;
		rl->storage_inst = b->storage_inst;
	}
	TAILQ_INIT(&rl->lru);
	LIST_INIT(&rl->ops);
	return rl;
}

void
ratelimit_free(struct ratelimit *rl)
{
	if (rl == NULL)
		return;
	struct rate_op *op;
	while ((op = LIST_FIRST(&rl->ops)) != NULL) {
		LIST_REMOVE(op, link);
		op->rl = NULL;          /* its callback frees it */
	}
	struct bucket *bk;
	while ((bk = TAILQ_FIRST(&rl->lru)) != NULL) {
		TAILQ_REMOVE(&rl->lru, bk, lru);
		free(bk);
	}
	free(rl);
}

static unsigned
hash_key(const char *k)
{
	uint32_t h = 2166136261u;       /* FNV-1a */
	for (; *k; k++)
		h = (h ^ (unsigned char)*k) * 16777619u;
	return h % NHASH;
}

static void
unlink_bucket(struct ratelimit *rl, struct bucket *bk)
{
	struct bucket **pp = &rl->hash[hash_key(bk->key)];
	while (*pp != bk)
		pp = &(*pp)->hnext;
	*pp = bk->hnext;
	TAILQ_REMOVE(&rl->lru, bk, lru);
	rl->nkeys--;
}

static struct bucket *
find_bucket(struct ratelimit *rl, const char *key, uint64_t now_us)
{
	unsigned h = hash_key(key);
	for (struct bucket *bk = rl->hash[h]; bk != NULL; bk = bk->hnext)
		if (strcmp(bk->key, key) == 0) {
			TAILQ_REMOVE(&rl->lru, bk, lru);
			TAILQ_INSERT_HEAD(&rl->lru, bk, lru);
			return bk;
		}
	if (rl->nkeys >= RATELIMIT_MAX_KEYS) {
		struct bucket *old = TAILQ_LAST(&rl->lru, bucket_lru);
		unlink_bucket(rl, old);
		free(old);
	}
	size_t len = strlen(key);
	struct bucket *bk = malloc(sizeof(*bk) + len + 1);
	if (bk == NULL)
		return NULL;
	memcpy(bk->key, key, len + 1);
	bk->tokens = (double)rl->rc.burst;
	bk->at_us = now_us;
	bk->hnext = rl->hash[h];
	rl->hash[h] = bk;
	TAILQ_INSERT_HEAD(&rl->lru, bk, lru);
	rl->nkeys++;
	return bk;
}

static uint64_t
local_bucket(struct ratelimit *rl, const char *key, uint64_t now_us, int take)
{
	struct bucket *bk = find_bucket(rl, key, now_us);
	if (bk == NULL)
		return 0;               /* out of memory: not the client's fault */
	if (now_us > bk->at_us) {
		bk->tokens += (double)(now_us - bk->at_us) * rl->per_us;
		if (bk->tokens > (double)rl->rc.burst)
			bk->tokens = (double)rl->rc.burst;
		bk->at_us = now_us;
	}
	if (bk->tokens >= 1.0) {
		if (take)
			bk->tokens -= 1.0;
		return 0;
	}
	double wait_s = (1.0 - bk->tokens) / rl->per_us / 1e6;
	uint64_t s = (uint64_t)wait_s;
	if ((double)s < wait_s)
		s++;
	return s > 0 ? s : 1;
}

uint64_t
ratelimit_local(struct ratelimit *rl, const char *key, uint64_t now_us)
{
	return local_bucket(rl, key, now_us, 1);
}

uint64_t
ratelimit_peek(struct ratelimit *rl, const char *key, uint64_t now_us)
{
	return local_bucket(rl, key, now_us, 0);
}

unsigned
ratelimit_keys(const struct ratelimit *rl)
{
	return rl->nkeys;
}

uint64_t
ratelimit_window_ms(const struct rate_conf *rc)
{
	/* The time the burst takes to earn, rounded up; at least a second
	 * so that every storage's expiry can keep up. */
	uint64_t w = (rc->burst * rc->period_ms + rc->per - 1) / rc->per;
	return w < 1000 ? 1000 : w;
}

static void
counted(void *arg, int status, int64_t value, const char *err)
{
	struct rate_op *op = arg;
	struct ratelimit *rl = op->rl;
	if (rl == NULL) {
		free(op);
		return;
	}
	LIST_REMOVE(op, link);
	uint64_t retry = 0;
	if (status != MCPD_OK) {
		uint64_t now = monotonic_ms();
		if (rl->warned_ms == 0 || now - rl->warned_ms >= 60000) {
			log_warn("limits.rate: the storage could not count (%s): each worker limits alone "
			    "until it can", err ? err : "failed");
			rl->warned_ms = now;
		}
		retry = ratelimit_local(rl, op->key, monotonic_us());
	} else if (value > 0 && (uint64_t)value > rl->rc.burst) {
		retry = op->retry_s;
	}
	ratelimit_cb *cb = op->cb;
	void *cbarg = op->arg;
	free(op);
	cb(cbarg, retry);
}

void
ratelimit_take(struct ratelimit *rl, const char *key, ratelimit_cb *cb, void *arg)
{
	char k[RATELIMIT_KEY_MAX + 1];
	snprintf(k, sizeof(k), "%s", key);
	if (rl->storage == NULL) {
		cb(arg, ratelimit_local(rl, k, monotonic_us()));
		return;
	}
	uint64_t w = ratelimit_window_ms(&rl->rc);
	uint64_t now = wall_ms();
	uint64_t idx = now / w;
	size_t len = strlen(k);
	struct rate_op *op = malloc(sizeof(*op) + len + 1);
	if (op == NULL) {
		cb(arg, ratelimit_local(rl, k, monotonic_us()));
		return;
	}
	memcpy(op->key, k, len + 1);
	op->rl = rl;
	op->cb = cb;
	op->arg = arg;
	op->retry_s = ((idx + 1) * w - now + 999) / 1000;
	if (op->retry_s == 0)
		op->retry_s = 1;
	LIST_INSERT_HEAD(&rl->ops, op, link);
	char skey[RATELIMIT_KEY_MAX + 64];
	snprintf(skey, sizeof(skey), "rate:%" PRIu64 ":%s", idx, k);
	rl->storage->incr(rl->storage_inst, skey, 1, 2 * w, counted, op);
}
