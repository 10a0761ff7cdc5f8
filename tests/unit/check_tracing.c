/* core/tracing.c: trace contexts (roots, children, the sampling decided
 * at the root), the current span, and the bounded export queue. The
 * export itself is tested against a receiver (test_tracing.py). */
#include <check.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "util.h"
#include "suites.h"
#include "tracing.h"

#define TP_SAMPLED "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define TP_NOT "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"

static struct event_base *base;
static struct config *cfg;

static void
start(const char *tracing)
{
	char yaml[512];
	struct errlist errs = { 0 };
	snprintf(yaml, sizeof(yaml), "listen: [127.0.0.1:1]\ntracing: %s\n", tracing);
	cfg = config_load_string("t.yaml", yaml, &errs);
	ck_assert_msg(cfg != NULL, "%s", errs.n ? errs.msgs[0] : "?");
	errlist_free(&errs);
	base = event_base_new();
	char err[256];
	ck_assert_int_eq(tracing_start(base, cfg, err, sizeof(err)), 0);
	ck_assert(tracing_enabled());
}

static void
stop(void)
{
	tracing_stop();
	ck_assert(!tracing_enabled());
	event_base_free(base);
	config_free(cfg);
}

static int
hex(const char *s, size_t n)
{
	if (strlen(s) != n || strspn(s, "0123456789abcdef") != n)
		return 0;
	return strspn(s, "0") != n;
}

START_TEST(off_keeps_the_callers_trace_id_only)
{
	struct trace_ctx c, k;
	tracing_root(&c, TP_SAMPLED, 5);
	ck_assert_str_eq(c.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
	ck_assert_str_eq(c.parent_id, "00f067aa0ba902b7");
	ck_assert(!c.sampled && c.span_id[0] == '\0' && c.start_us == 5);
	char tp[64];
	ck_assert_int_eq(tracing_traceparent(&c, tp, sizeof(tp)), -1);
	tracing_child(&k, &c, 6);
	ck_assert(!k.sampled && strcmp(k.trace_id, c.trace_id) == 0);
	tracing_root(&c, "garbage", 5);
	ck_assert(c.trace_id[0] == '\0' && !c.sampled);
	tracing_root(&c, NULL, 5);
	ck_assert(c.trace_id[0] == '\0' && !c.sampled);
}
END_TEST

START_TEST(sampling_at_the_root)
{
	struct trace_ctx c, k;
	char tp[64];
	start("{ endpoint: \"http://127.0.0.1:1\", sample: 1 }");
	/* A sampled parent: continued, with a span of our own. */
	tracing_root(&c, TP_SAMPLED, 1);
	ck_assert(c.sampled);
	ck_assert_str_eq(c.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
	ck_assert_str_eq(c.parent_id, "00f067aa0ba902b7");
	ck_assert(hex(c.span_id, 16) && strcmp(c.span_id, c.parent_id) != 0);
	tracing_child(&k, &c, 2);
	ck_assert(k.sampled && strcmp(k.parent_id, c.span_id) == 0 && strcmp(k.trace_id, c.trace_id) == 0);
	ck_assert(hex(k.span_id, 16) && strcmp(k.span_id, c.span_id) != 0);
	ck_assert_int_eq(tracing_traceparent(&k, tp, sizeof(tp)), 0);
	ck_assert_int_eq(strlen(tp), 55);
	ck_assert(strncmp(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36) == 0);
	ck_assert(strncmp(tp + 36, k.span_id, 16) == 0);
	ck_assert_str_eq(tp + 52, "-01");
	/* A parent that did not sample: not recorded, whatever our ratio. */
	tracing_root(&c, TP_NOT, 1);
	ck_assert(!c.sampled && strcmp(c.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736") == 0);
	tracing_child(&k, &c, 2);
	ck_assert(!k.sampled);
	/* No parent: a new trace, at sample 1 always recorded. */
	for (int i = 0; i < 50; i++) {
		tracing_root(&c, NULL, 1);
		ck_assert(c.sampled && hex(c.trace_id, 32) && hex(c.span_id, 16) && c.parent_id[0] == '\0');
	}
	stop();
	start("{ endpoint: \"http://127.0.0.1:1\", sample: 0 }");
	for (int i = 0; i < 50; i++) {
		tracing_root(&c, NULL, 1);
		ck_assert(!c.sampled && hex(c.trace_id, 32));
	}
	tracing_root(&c, TP_SAMPLED, 1);
	ck_assert(c.sampled);
	stop();
	start("{ endpoint: \"http://127.0.0.1:1\", sample: 0.5 }");
	int kept = 0;
	for (int i = 0; i < 2000; i++) {
		tracing_root(&c, NULL, 1);
		kept += c.sampled;
	}
	ck_assert_msg(kept > 800 && kept < 1200, "kept %d of 2000 at 0.5", kept);
	stop();
}
END_TEST

START_TEST(the_current_span)
{
	struct trace_ctx a, b, saved, saved2;
	start("{ endpoint: \"http://127.0.0.1:1\" }");
	ck_assert_ptr_null(tracing_current());
	tracing_root(&a, NULL, 1);
	tracing_root(&b, NULL, 2);
	tracing_push(&a, &saved);
	ck_assert_str_eq(tracing_current()->span_id, a.span_id);
	tracing_push(&b, &saved2);
	ck_assert_str_eq(tracing_current()->span_id, b.span_id);
	struct trace_ctx saved3;
	tracing_push(NULL, &saved3);    /* none */
	ck_assert_ptr_null(tracing_current());
	tracing_pop(&saved3);
	ck_assert_str_eq(tracing_current()->span_id, b.span_id);
	tracing_pop(&saved2);
	ck_assert_str_eq(tracing_current()->span_id, a.span_id);
	tracing_pop(&saved);
	ck_assert_ptr_null(tracing_current());
	stop();
}
END_TEST

START_TEST(the_queue_is_bounded)
{
	struct trace_ctx c;
	start("{ endpoint: \"http://127.0.0.1:1\", queue: 3, batch: 3, interval: 10m }");
	struct trace_attr a[] = {
		{ "k", TA_STR, "v \"quoted\"", 0 }, { "n", TA_INT, NULL, -42 }, { "absent", TA_STR, NULL, 0 },
	};
	for (int i = 0; i < 5; i++) {
		tracing_root(&c, NULL, 1);
		tracing_end(&c, 0, "span", TK_SERVER, i == 1 ? "boom" : NULL, a, 3);
	}
	ck_assert_uint_eq(tracing_queued(), 3);
	tracing_root(&c, TP_NOT, 1);
	tracing_end(&c, 0, "not sampled", TK_SERVER, NULL, NULL, 0);
	ck_assert_uint_eq(tracing_queued(), 3);
	stop();     /* what is queued is freed (the ASan build checks) */
	ck_assert_uint_eq(tracing_queued(), 0);
}
END_TEST

Suite *
tracing_suite(void)
{
	Suite *s = suite_create("tracing");
	TCase *tc = tcase_create("tracing");
	tcase_add_test(tc, off_keeps_the_callers_trace_id_only);
	tcase_add_test(tc, sampling_at_the_root);
	tcase_add_test(tc, the_current_span);
	tcase_add_test(tc, the_queue_is_bounded);
	suite_add_tcase(s, tc);
	return s;
}
