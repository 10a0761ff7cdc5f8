#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/sqs/routes.h"
#include "suites.h"

/* plugins/sqs/routes.c: what a worker of the sqs transport knows of where
 * a channel's subscribers are. */

static enum route_to
to_of(const struct route *r, uint64_t now, char *to)
{
	return route_to(r, now, to, ROUTE_TO_MAX);
}

START_TEST(learned_then_addressed)
{
	struct routes t;
	routes_init(&t, 60000);
	char to[ROUTE_TO_MAX];
	ck_assert_ptr_null(routes_get(&t, "toclient:a", 1000));
	struct route *r = routes_new(&t, "toclient:a", 1000);
	ck_assert_ptr_nonnull(r);
	ck_assert_ptr_eq(routes_get(&t, "toclient:a", 1000), r);
	/* Not asked yet, then asked: to all until the answers are in. */
	ck_assert_int_eq(to_of(r, 5000, to), ROUTE_ALL);
	route_asked(&t, r, 1500);
	ck_assert_int_eq(route_add(r, "q-0123456789abcdef-1"), 1);
	ck_assert_int_eq(to_of(r, 1499, to), ROUTE_ALL);
	ck_assert_int_eq(to_of(r, 1500, to), ROUTE_SOME);
	ck_assert_str_eq(to, "[\"q-0123456789abcdef-1\"]");
	ck_assert_int_eq(route_add(r, "q-0123456789abcdef-1"), 0);
	ck_assert_int_eq(route_add(r, "q-fedcba9876543210-2.fifo"), 1);
	ck_assert_int_eq(to_of(r, 2000, to), ROUTE_SOME);
	ck_assert_str_eq(to, "[\"q-0123456789abcdef-1\",\"q-fedcba9876543210-2.fifo\"]");
	/* The holder that says it holds no more is no longer sent to. */
	ck_assert_int_eq(route_remove(r, "q-0123456789abcdef-1"), 1);
	ck_assert_int_eq(route_remove(r, "q-0123456789abcdef-1"), 0);
	ck_assert_int_eq(to_of(r, 2000, to), ROUTE_SOME);
	ck_assert_str_eq(to, "[\"q-fedcba9876543210-2.fifo\"]");
	ck_assert_int_eq(route_remove(r, "q-fedcba9876543210-2.fifo"), 1);
	ck_assert_int_eq(to_of(r, 2000, to), ROUTE_NONE);
	/* Known for ttl after the answers, then learned again. */
	ck_assert_ptr_eq(routes_get(&t, "toclient:a", 61499), r);
	ck_assert_ptr_null(routes_get(&t, "toclient:a", 61500));
	ck_assert_uint_eq(t.n, 0);
	routes_clear(&t);
}
END_TEST

START_TEST(holders_bounded_and_checked)
{
	struct routes t;
	routes_init(&t, 60000);
	char to[ROUTE_TO_MAX], name[ROUTE_NAME_MAX + 2];
	struct route *r = routes_new(&t, "mcpd:sessions", 0);
	route_asked(&t, r, 0);
	/* Names that would break the "to" list or a filter policy. */
	ck_assert_int_eq(route_add(r, "a\",\"b"), -1);
	ck_assert_int_eq(route_add(r, ""), -1);
	ck_assert_int_eq(route_add(r, "a b"), -1);
	memset(name, 'x', ROUTE_NAME_MAX + 1);
	name[ROUTE_NAME_MAX + 1] = '\0';
	ck_assert_int_eq(route_add(r, name), -1);
	name[ROUTE_NAME_MAX] = '\0';
	for (int i = 0; i < ROUTE_HOLDERS; i++) {
		memset(name, 'a' + i, ROUTE_NAME_MAX);
		ck_assert_int_eq(route_add(r, name), 1);
	}
	/* ROUTE_HOLDERS of the longest names fit in a "to". */
	ck_assert_int_eq(to_of(r, 1, to), ROUTE_SOME);
	ck_assert_uint_eq(strlen(to), ROUTE_HOLDERS * (ROUTE_NAME_MAX + 3) + 1);
	/* One more: every worker. */
	ck_assert_int_eq(route_add(r, "q-one-more"), 1);
	ck_assert_int_eq(to_of(r, 1, to), ROUTE_ALL);
	ck_assert_int_eq(route_add(r, "q-and-another"), 0);
	/* A "to" that does not fit: every worker rather than a cut list. */
	struct route *r2 = routes_new(&t, "c2", 0);
	route_asked(&t, r2, 0);
	route_add(r2, "q-a-1");
	ck_assert_int_eq(route_to(r2, 1, to, 5), ROUTE_ALL);
	routes_clear(&t);
	ck_assert_uint_eq(t.n, 0);
}
END_TEST

static char seen[ROUTE_RECENT + 1][64];
static int nseen;

static void
collect(void *arg, const struct route_sent *m)
{
	(void)arg;
	snprintf(seen[nseen++], sizeof(seen[0]), "%s/%d", m->body, m->enc);
}

START_TEST(what_a_late_holder_missed)
{
	struct routes t;
	routes_init(&t, 60000);
	struct route *r = routes_new(&t, "toclient:b", 0);
	route_asked(&t, r, 0);
	ck_assert_int_eq(route_sent(&t, r, 100, "m1", 0, "[\"q-a-1\"]"), 0);
	ck_assert_int_eq(route_sent(&t, r, 200, "m2", 1, "[\"q-a-1\",\"q-b-1\"]"), 0);
	ck_assert_int_eq(route_sent(&t, r, 300, "m3", 2, "[]"), 0);
	/* q-b-1 got m2; q-b-10 got none of them. */
	nseen = 0;
	route_missed(&t, r, "q-b-1", 400, collect, NULL);
	ck_assert_int_eq(nseen, 2);
	ck_assert_str_eq(seen[0], "m1/0");
	ck_assert_str_eq(seen[1], "m3/2");
	nseen = 0;
	route_missed(&t, r, "q-b-10", 400, collect, NULL);
	ck_assert_int_eq(nseen, 3);
	/* Only the last ROUTE_RECENT_MS count. */
	nseen = 0;
	route_missed(&t, r, "q-c-1", 200 + ROUTE_RECENT_MS, collect, NULL);
	ck_assert_int_eq(nseen, 2);
	ck_assert_str_eq(seen[0], "m2/1");
	ck_assert_uint_eq(r->nsent, 2);
	/* At most ROUTE_RECENT, the newest. */
	for (int i = 0; i < ROUTE_RECENT + 5; i++) {
		char b[16];
		snprintf(b, sizeof(b), "n%d", i);
		ck_assert_int_eq(route_sent(&t, r, 3000, b, 0, "[]"), 0);
	}
	nseen = 0;
	route_missed(&t, r, "q-c-1", 3000, collect, NULL);
	ck_assert_int_eq(nseen, ROUTE_RECENT);
	ck_assert_str_eq(seen[0], "n5/0");
	routes_clear(&t);
	ck_assert_uint_eq(t.sent_bytes, 0);
}
END_TEST

START_TEST(kept_bytes_bounded)
{
	struct routes t;
	routes_init(&t, 60000);
	size_t big = ROUTES_RECENT_BYTES / 4;
	char *b = malloc(big + 1);
	ck_assert_ptr_nonnull(b);
	memset(b, 'x', big);
	b[big] = '\0';
	struct route *r1 = routes_new(&t, "c1", 0), *r2 = routes_new(&t, "c2", 0);
	ck_assert_int_eq(route_sent(&t, r1, 0, b, 0, "[]"), 0);
	ck_assert_int_eq(route_sent(&t, r2, 0, b, 0, "[]"), 0);
	ck_assert_int_eq(route_sent(&t, r2, 0, b, 0, "[]"), 0);
	ck_assert_int_eq(route_sent(&t, r1, 0, b, 0, "[]"), -1);   /* over the budget: not kept */
	/* A route dropped gives its bytes back. */
	routes_drop(&t, r2);
	ck_assert_int_eq(route_sent(&t, r1, 0, b, 0, "[]"), 0);
	free(b);
	routes_clear(&t);
	ck_assert_uint_eq(t.sent_bytes, 0);
}
END_TEST

START_TEST(routes_bounded)
{
	struct routes t;
	routes_init(&t, 1000);
	char ch[32];
	for (int i = 0; i < ROUTES_MAX; i++) {
		snprintf(ch, sizeof(ch), "c%d", i);
		struct route *r = routes_new(&t, ch, 0);
		ck_assert_ptr_nonnull(r);
		route_asked(&t, r, i < 10 ? 0 : 100000);
	}
	ck_assert_ptr_null(routes_new(&t, "one-more", 10));
	/* Those expired make room, looked for at most once a second. */
	ck_assert_ptr_nonnull(routes_new(&t, "one-more", 1000));
	ck_assert_uint_eq(t.n, ROUTES_MAX - 10 + 1);
	for (int i = 0; i < 9; i++) {
		snprintf(ch, sizeof(ch), "more%d", i);
		ck_assert_ptr_nonnull(routes_new(&t, ch, 1001));
	}
	ck_assert_ptr_null(routes_new(&t, "full", 1500));
	ck_assert_ptr_nonnull(routes_get(&t, "c4095", 1500));
	ck_assert_ptr_null(routes_get(&t, "c5", 1500));
	routes_clear(&t);
	ck_assert_uint_eq(t.n, 0);
}
END_TEST

Suite *
routes_suite(void)
{
	Suite *s = suite_create("routes");
	TCase *tc = tcase_create("routes");
	tcase_add_test(tc, learned_then_addressed);
	tcase_add_test(tc, holders_bounded_and_checked);
	tcase_add_test(tc, what_a_late_holder_missed);
	tcase_add_test(tc, kept_bytes_bounded);
	tcase_add_test(tc, routes_bounded);
	suite_add_tcase(s, tc);
	return s;
}
