#include <check.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include <mcpd/plugin.h>

#include "../../plugins/common/localq.h"
#include "../../plugins/common/subs.h"
#include "suites.h"

/* plugins/common/localq.c: a copy for this worker's subscribers, from the
 * loop and never before push returns; none kept for a channel nobody here
 * holds; what waits is dropped when cleared. */
static char got[8][16];
static int ngot;

static void
on_message(void *arg, const char *channel, const void *msg, size_t len)
{
	(void)arg;
	if (ngot < 8) {
		snprintf(got[ngot], sizeof(got[ngot]), "%s=%.*s", channel, (int)len, (const char *)msg);
		ngot++;
	}
}

START_TEST(localq_from_the_loop)
{
	static struct subs subs;        /* large: not on the stack */
	memset(&subs, 0, sizeof(subs));
	struct event_base *base = event_base_new();
	struct localq q;
	ngot = 0;
	ck_assert_int_eq(localq_init(&q, base, &subs), 0);
	ck_assert_ptr_nonnull(subs_add(&subs, "a", on_message, NULL));
	localq_push(&q, "a", "one", 3);
	localq_push(&q, "b", "nobody", 6);      /* no subscriber here: not kept */
	localq_push(&q, "a", "two", 3);
	ck_assert_int_eq(ngot, 0);              /* not inside push */
	ck_assert_ptr_nonnull(q.head);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(ngot, 2);
	ck_assert_str_eq(got[0], "a=one");
	ck_assert_str_eq(got[1], "a=two");
	ck_assert_ptr_null(q.head);
	/* An empty message is carried too. */
	localq_push(&q, "a", "", 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(ngot, 3);
	ck_assert_str_eq(got[2], "a=");
	/* Cleared with a message waiting: dropped, never delivered. */
	localq_push(&q, "a", "late", 4);
	localq_clear(&q);
	ck_assert_ptr_null(q.ev);
	ck_assert_ptr_null(q.head);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(ngot, 3);
	subs_clear(&subs);
	event_base_free(base);
}
END_TEST

Suite *
localq_suite(void)
{
	Suite *s = suite_create("localq");
	TCase *tc = tcase_create("localq");
	tcase_add_test(tc, localq_from_the_loop);
	suite_add_tcase(s, tc);
	return s;
}
