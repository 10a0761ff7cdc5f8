#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mcpd/plugin.h>

#include "../../plugins/common/storeop.h"
#include "suites.h"

/* plugins/common/storeop.c: the list of operations not finished, the key's
 * line, the callback's shape by kind, and what pages gather. */
static int started[8];
static int nstarted;

static void
start(struct keyorder_op *q)
{
	started[nstarted++] = (int)(((struct storeop *)q)->kind);
}

START_TEST(storeop_list_and_line)
{
	struct storeop *live = NULL;
	struct storeop a = { 0 }, b = { 0 }, c = { 0 };
	nstarted = 0;
	ck_assert_int_eq(storeop_init(&a, &live, K_SET, "k1", NULL, NULL), 0);
	ck_assert_int_eq(storeop_init(&b, &live, K_GET, "k1", NULL, NULL), 0);
	ck_assert_int_eq(storeop_init(&c, &live, K_DEL, "k2", NULL, NULL), 0);
	ck_assert_str_eq(a.key, "k1");
	ck_assert_ptr_eq(a.q.key, a.key);
	/* Newest first. */
	ck_assert_ptr_eq(live, &c);
	ck_assert_ptr_eq(c.live_next, &b);
	ck_assert_ptr_eq(b.live_next, &a);
	ck_assert_ptr_null(a.live_next);
	a.q.start = b.q.start = c.q.start = start;
	keyorder_submit(&a.q);
	keyorder_submit(&b.q);         /* waits behind a */
	keyorder_submit(&c.q);         /* another key: at once */
	ck_assert_int_eq(nstarted, 2);
	ck_assert_int_eq(started[0], K_SET);
	ck_assert_int_eq(started[1], K_DEL);
	/* b, in the middle of the list, leaves it; a done starts nothing more. */
	storeop_clear(&a, 1);
	ck_assert_int_eq(nstarted, 3);
	ck_assert_int_eq(started[2], K_GET);
	ck_assert_ptr_null(a.key);
	ck_assert_ptr_eq(live, &c);
	ck_assert_ptr_eq(c.live_next, &b);
	ck_assert_ptr_null(b.live_next);
	/* d, c, b: c leaves from the middle, then b after it. */
	struct storeop d = { 0 };
	ck_assert_int_eq(storeop_init(&d, &live, K_INCR, "k3", NULL, NULL), 0);
	storeop_clear(&c, 1);
	ck_assert_ptr_eq(live, &d);
	ck_assert_ptr_eq(d.live_next, &b);
	ck_assert_ptr_eq(b.live_prev, &d.live_next);
	storeop_clear(&b, 1);
	ck_assert_ptr_eq(live, &d);
	ck_assert_ptr_null(d.live_next);
	/* Without release (the worker detaching): out of the list only. */
	storeop_clear(&d, 0);
	ck_assert_ptr_null(live);
	keyorder_clear();
	ck_assert_int_eq(nstarted, 3);
}
END_TEST

static struct {
	int calls, status;
	const char *why;
	int shape_ok;
} seen;

static void
got_value(void *arg, int status, const void *v, size_t len, const char *err)
{
	seen.calls++, seen.status = status, seen.why = err, seen.shape_ok = v == NULL && len == 0;
}

static void
got_members(void *arg, int status, const char *const *m, size_t n, const char *err)
{
	seen.calls++, seen.status = status, seen.why = err, seen.shape_ok = m == NULL && n == 0;
}

static void
got_int(void *arg, int status, int64_t v, const char *err)
{
	seen.calls++, seen.status = status, seen.why = err, seen.shape_ok = v == 0;
}

START_TEST(storeop_fail_by_kind)
{
	struct storeop *live = NULL;
	struct storeop op = { 0 };
	memset(&seen, 0, sizeof(seen));
	ck_assert_int_eq(storeop_init(&op, &live, K_GET, "k", (void *)got_value, NULL), 0);
	storeop_fail(&op, "gone");
	ck_assert_int_eq(seen.calls, 1);
	ck_assert_int_eq(seen.status, MCPD_ERROR);
	ck_assert_str_eq(seen.why, "gone");
	ck_assert_int_eq(seen.shape_ok, 1);
	storeop_clear(&op, 0);
	storeop_fail_kind(K_MEMBERS, (void *)got_members, NULL, "out of memory");
	ck_assert_int_eq(seen.calls, 2);
	ck_assert_str_eq(seen.why, "out of memory");
	ck_assert_int_eq(seen.shape_ok, 1);
	storeop_fail_kind(K_APPEND, (void *)got_int, NULL, "x");
	storeop_fail_kind(K_INCR, (void *)got_int, NULL, "y");
	ck_assert_int_eq(seen.calls, 4);
	ck_assert_str_eq(seen.why, "y");
	storeop_fail_kind(K_SET, NULL, NULL, "nobody waits");
	ck_assert_int_eq(seen.calls, 4);
}
END_TEST

START_TEST(storeop_gathers)
{
	struct storeop *live = NULL;
	struct storeop m = { 0 }, r = { 0 };
	ck_assert_int_eq(storeop_init(&m, &live, K_MEMBERS, "idx", NULL, NULL), 0);
	ck_assert_int_eq(storeop_init(&r, &live, K_RANGE, "log", NULL, NULL), 0);
	for (int i = 0; i < 100; i++) {         /* past the first 16, several times */
		char name[16];
		snprintf(name, sizeof(name), "m%d", i);
		ck_assert_int_eq(storeop_add_name(&m, strdup(name)), 0);
		unsigned char *data = malloc(4);
		memcpy(data, name, 3);
		ck_assert_int_eq(storeop_add_entry(&r, (uint64_t)i + 1, data, 3), 0);
	}
	ck_assert_int_eq(storeop_add_name(&m, NULL), -1);     /* a failed strdup */
	ck_assert_uint_eq(m.n, 100);
	ck_assert_uint_eq(r.n, 100);
	ck_assert_str_eq(m.names[0], "m0");
	ck_assert_str_eq(m.names[99], "m99");
	ck_assert_uint_eq(r.entries[41].seq, 42);
	ck_assert_uint_eq(r.entries[41].len, 3);
	ck_assert(memcmp(r.entries[41].data, "m41", 3) == 0);
	ck_assert_ptr_eq(r.entries[41].data, r.bufs[41]);
	/* Cleared: everything freed (the sanitizer build sees a leak). */
	storeop_clear(&m, 0);
	storeop_clear(&r, 0);
	ck_assert_ptr_null(m.names);
	ck_assert_ptr_null(r.entries);
	ck_assert_uint_eq(r.n, 0);
	ck_assert_ptr_null(live);
}
END_TEST

Suite *
storeop_suite(void)
{
	Suite *s = suite_create("storeop");
	TCase *tc = tcase_create("storeop");
	tcase_add_test(tc, storeop_list_and_line);
	tcase_add_test(tc, storeop_fail_by_kind);
	tcase_add_test(tc, storeop_gathers);
	suite_add_tcase(s, tc);
	return s;
}
