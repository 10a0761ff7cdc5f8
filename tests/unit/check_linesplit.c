/* lib/linesplit.c: lines out of an evbuffer, bounded, however they arrive. */
#include <check.h>
#include <event2/buffer.h>
#include <string.h>

#include "linesplit.h"
#include "suites.h"

/* The next line as a string ("" for none); LINE_TOO_LONG as "!". */
static const char *
next(struct linesplit *ls, struct evbuffer *in, int at_eof)
{
	static char got[256];
	const char *text;
	size_t len, take;
	switch (linesplit_next(ls, in, at_eof, &text, &len, &take)) {
	case LINE_NONE:
		return "";
	case LINE_TOO_LONG:
		return "!";
	case LINE_OK:
		ck_assert_uint_lt(len, sizeof(got));
		memcpy(got, text, len);
		got[len] = '\0';
		evbuffer_drain(in, take);
		return got;
	}
	return "?";
}

static void
add(struct evbuffer *in, const char *s)
{
	evbuffer_add(in, s, strlen(s));
}

START_TEST(lines_and_line_ends)
{
	struct linesplit ls;
	struct evbuffer *in = evbuffer_new();
	linesplit_init(&ls, 10);
	add(in, "one\ntwo\r\n\nthr");
	ck_assert_str_eq(next(&ls, in, 0), "one");
	ck_assert_str_eq(next(&ls, in, 0), "two");      /* the \r is the line end's */
	ck_assert_str_eq(next(&ls, in, 0), "");         /* an empty line */
	ck_assert_uint_eq(evbuffer_get_length(in), 3);
	ck_assert_str_eq(next(&ls, in, 0), "");         /* "thr": not complete */
	ck_assert_uint_eq(evbuffer_get_length(in), 3);
	add(in, "ee");
	ck_assert_str_eq(next(&ls, in, 0), "");
	add(in, "\n");
	ck_assert_str_eq(next(&ls, in, 0), "three");
	add(in, "last");
	ck_assert_str_eq(next(&ls, in, 0), "");
	ck_assert_str_eq(next(&ls, in, 1), "last");     /* at the end, no newline needed */
	ck_assert_str_eq(next(&ls, in, 1), "");
	ck_assert_uint_eq(evbuffer_get_length(in), 0);
	evbuffer_free(in);
}
END_TEST

START_TEST(bound)
{
	struct linesplit ls;
	struct evbuffer *in = evbuffer_new();
	linesplit_init(&ls, 10);
	add(in, "0123456789\n");                        /* exactly max: a line */
	ck_assert_str_eq(next(&ls, in, 0), "0123456789");
	add(in, "0123456789\r\n");                      /* max and its \r\n */
	ck_assert_str_eq(next(&ls, in, 0), "!");        /* the \r counts until the \n */
	add(in, "0123456789A\nok\n");                   /* whole, with the next line */
	ck_assert_str_eq(next(&ls, in, 0), "!");
	ck_assert_str_eq(next(&ls, in, 0), "ok");
	ck_assert_uint_eq(evbuffer_get_length(in), 0);
	evbuffer_free(in);
}
END_TEST

START_TEST(long_line_in_pieces)
{
	struct linesplit ls;
	struct evbuffer *in = evbuffer_new();
	linesplit_init(&ls, 10);
	add(in, "0123456");
	ck_assert_str_eq(next(&ls, in, 0), "");
	add(in, "789AB");                                /* over max, no newline yet */
	ck_assert_str_eq(next(&ls, in, 0), "!");         /* said once... */
	ck_assert_uint_eq(evbuffer_get_length(in), 0);   /* ...and nothing kept */
	for (int i = 0; i < 5; i++) {
		add(in, "xxxxxxxxxxxxxxxxxxxx");
		ck_assert_str_eq(next(&ls, in, 0), "");  /* not again */
		ck_assert_uint_eq(evbuffer_get_length(in), 0);
	}
	add(in, "tail");                                 /* short, but the same line */
	ck_assert_str_eq(next(&ls, in, 0), "");
	add(in, "end\nnext\n");
	ck_assert_str_eq(next(&ls, in, 0), "next");
	ck_assert_str_eq(next(&ls, in, 0), "");
	/* A long line the input ends in the middle of. */
	add(in, "yyyyyyyyyyyyyyyy");
	ck_assert_str_eq(next(&ls, in, 0), "!");
	add(in, "zz");
	ck_assert_str_eq(next(&ls, in, 1), "");
	ck_assert_uint_eq(evbuffer_get_length(in), 0);
	evbuffer_free(in);
}
END_TEST

START_TEST(scan_resumes)
{
	/* A line arriving a byte at a time is found where it ends, with
	 * the search resuming past what was scanned. */
	struct linesplit ls;
	struct evbuffer *in = evbuffer_new();
	linesplit_init(&ls, 100);
	const char *msg = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
	for (const char *p = msg; *p; p++) {
		evbuffer_add(in, p, 1);
		ck_assert_str_eq(next(&ls, in, 0), "");
		ck_assert_uint_eq(ls.scanned, (size_t)(p - msg + 1));
	}
	add(in, "\n");
	ck_assert_str_eq(next(&ls, in, 0), msg);
	ck_assert_uint_eq(ls.scanned, 0);
	evbuffer_free(in);
}
END_TEST

Suite *
linesplit_suite(void)
{
	Suite *s = suite_create("linesplit");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, lines_and_line_ends);
	tcase_add_test(tc, bound);
	tcase_add_test(tc, long_line_in_pieces);
	tcase_add_test(tc, scan_resumes);
	suite_add_tcase(s, tc);
	return s;
}
