/* http/ratelimit.c: the worker's token bucket (a burst, then one request
 * per earned token, the wait rounded up to whole seconds), keys bounded
 * with the least recently used dropped, the shared window, and a shared
 * count that falls back to the bucket when the storage fails. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "plugin.h"
#include "ratelimit.h"
#include "suites.h"

#define SEC 1000000ULL

START_TEST(burst_then_wait)
{
	struct rate_conf rc = { .per = 2, .period_ms = 1000, .burst = 4 };
	int failed;
	struct ratelimit *rl = ratelimit_new(&rc, NULL, &failed);
	ck_assert_ptr_nonnull(rl);
	uint64_t t = 100 * SEC;
	for (int i = 0; i < 4; i++)
		ck_assert_uint_eq(ratelimit_local(rl, "a", t), 0);
	ck_assert_uint_eq(ratelimit_local(rl, "a", t), 1);     /* 0.5 s, rounded up */
	ck_assert_uint_eq(ratelimit_local(rl, "b", t), 0);     /* another key, its own bucket */
	t += SEC / 2;                                           /* one token earned */
	ck_assert_uint_eq(ratelimit_local(rl, "a", t), 0);
	ck_assert_uint_eq(ratelimit_local(rl, "a", t), 1);
	t += 60 * SEC;                                          /* full again, not more */
	for (int i = 0; i < 4; i++)
		ck_assert_uint_eq(ratelimit_local(rl, "a", t), 0);
	ck_assert_uint_ne(ratelimit_local(rl, "a", t), 0);
	ratelimit_free(rl);
}
END_TEST

START_TEST(slow_rate_waits_long)
{
	struct rate_conf rc = { .per = 1, .period_ms = 3600000, .burst = 1 };
	int failed;
	struct ratelimit *rl = ratelimit_new(&rc, NULL, &failed);
	ck_assert_uint_eq(ratelimit_local(rl, "a", SEC), 0);
	ck_assert_uint_eq(ratelimit_local(rl, "a", SEC), 3600);
	ck_assert_uint_eq(ratelimit_local(rl, "a", 1801 * SEC), 1800);
	ratelimit_free(rl);
}
END_TEST

/* Peeking (the endpoint's look at an address's refusals before a token
 * is checked) says whether a request would pass, and takes nothing. */
START_TEST(peek_takes_nothing)
{
	struct rate_conf rc = { .per = 1, .period_ms = 2000, .burst = 2 };
	int failed;
	struct ratelimit *rl = ratelimit_new(&rc, NULL, &failed);
	uint64_t t = 10 * SEC;
	for (int i = 0; i < 5; i++)
		ck_assert_uint_eq(ratelimit_peek(rl, "a", t), 0);
	ck_assert_uint_eq(ratelimit_local(rl, "a", t), 0);
	ck_assert_uint_eq(ratelimit_peek(rl, "a", t), 0);
	ck_assert_uint_eq(ratelimit_local(rl, "a", t), 0);
	ck_assert_uint_eq(ratelimit_peek(rl, "a", t), 2);       /* empty: 2 s to earn one */
	ck_assert_uint_eq(ratelimit_peek(rl, "a", t + SEC), 1);
	ck_assert_uint_eq(ratelimit_peek(rl, "a", t + 2 * SEC), 0);
	ck_assert_uint_eq(ratelimit_local(rl, "a", t + 2 * SEC), 0);
	ck_assert_uint_ne(ratelimit_local(rl, "a", t + 2 * SEC), 0);
	ratelimit_free(rl);
}
END_TEST

START_TEST(no_rate_no_limiter)
{
	struct rate_conf rc = { 0 };
	int failed = 1;
	ck_assert_ptr_null(ratelimit_new(&rc, NULL, &failed));
	ck_assert_int_eq(failed, 0);
}
END_TEST

START_TEST(keys_bounded)
{
	struct rate_conf rc = { .per = 1, .period_ms = 60000, .burst = 1 };
	int failed;
	struct ratelimit *rl = ratelimit_new(&rc, NULL, &failed);
	char k[32];
	ck_assert_uint_eq(ratelimit_local(rl, "first", SEC), 0);
	for (unsigned i = 0; i < RATELIMIT_MAX_KEYS + 10; i++) {
		snprintf(k, sizeof(k), "k%u", i);
		ck_assert_uint_eq(ratelimit_local(rl, k, SEC), 0);
	}
	ck_assert_uint_eq(ratelimit_keys(rl), RATELIMIT_MAX_KEYS);
	/* "first" was the least recently used: dropped, so a fresh bucket;
	 * the newest keys kept theirs (spent). */
	ck_assert_uint_eq(ratelimit_local(rl, "first", SEC), 0);
	snprintf(k, sizeof(k), "k%u", RATELIMIT_MAX_KEYS + 9);
	ck_assert_uint_ne(ratelimit_local(rl, k, SEC), 0);
	ratelimit_free(rl);
}
END_TEST

START_TEST(window)
{
	struct rate_conf rc = { .per = 10, .period_ms = 1000, .burst = 20 };
	ck_assert_uint_eq(ratelimit_window_ms(&rc), 2000);
	rc.burst = 1;
	ck_assert_uint_eq(ratelimit_window_ms(&rc), 1000);     /* at least a second */
	rc = (struct rate_conf){ .per = 1, .period_ms = 3600000, .burst = 6 };
	ck_assert_uint_eq(ratelimit_window_ms(&rc), 6 * 3600000ULL);
	rc = (struct rate_conf){ .per = 7, .period_ms = 60000, .burst = 1 };
	ck_assert_uint_eq(ratelimit_window_ms(&rc), 8572);     /* rounded up */
}
END_TEST

/* A storage whose incr counts in one variable, or fails. */
static int64_t counter;
static int fail_incr;
static char last_key[256];
static uint64_t last_ttl;

static void
fake_incr(void *inst, const char *key, int64_t by, uint64_t ttl_ms, mcpd_int_cb *cb, void *arg)
{
	snprintf(last_key, sizeof(last_key), "%s", key);
	last_ttl = ttl_ms;
	if (fail_incr)
		cb(arg, MCPD_ERROR, 0, "down");
	else
		cb(arg, MCPD_OK, counter += by, NULL);
}

static uint64_t answer;
static int answers;

static void
answered(void *arg, uint64_t retry)
{
	answer = retry;
	answers++;
}

START_TEST(shared_counts_in_storage)
{
	struct mcpd_storage_ops ops = { .size = sizeof(ops), .incr = fake_incr };
	struct backends b = { .storage = &ops };
	struct rate_conf rc = { .per = 1, .period_ms = 60000, .burst = 3, .shared = 1 };
	int failed;
	struct ratelimit *rl = ratelimit_new(&rc, &b, &failed);
	counter = 0;
	fail_incr = 0;
	answers = 0;
	for (int i = 0; i < 3; i++) {
		ratelimit_take(rl, "u:alice", answered, NULL);
		ck_assert_uint_eq(answer, 0);
	}
	ratelimit_take(rl, "u:alice", answered, NULL);
	ck_assert_uint_ge(answer, 1);
	ck_assert_uint_le(answer, 180);                 /* the window is 3 minutes */
	ck_assert_int_eq(answers, 4);
	ck_assert_ptr_nonnull(strstr(last_key, "rate:"));
	ck_assert_ptr_nonnull(strstr(last_key, ":u:alice"));
	ck_assert_uint_eq(last_ttl, 2 * 180000);
	/* The storage fails: the worker's own bucket decides (full: 3). */
	fail_incr = 1;
	for (int i = 0; i < 3; i++) {
		ratelimit_take(rl, "u:alice", answered, NULL);
		ck_assert_uint_eq(answer, 0);
	}
	ratelimit_take(rl, "u:alice", answered, NULL);
	ck_assert_uint_ne(answer, 0);
	ratelimit_free(rl);
}
END_TEST

Suite *
ratelimit_suite(void)
{
	Suite *s = suite_create("ratelimit");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, burst_then_wait);
	tcase_add_test(tc, slow_rate_waits_long);
	tcase_add_test(tc, peek_takes_nothing);
	tcase_add_test(tc, no_rate_no_limiter);
	tcase_add_test(tc, keys_bounded);
	tcase_add_test(tc, window);
	tcase_add_test(tc, shared_counts_in_storage);
	suite_add_tcase(s, tc);
	return s;
}
