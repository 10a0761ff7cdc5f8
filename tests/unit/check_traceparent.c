/* lib/traceparent.c: W3C traceparent values, valid and not. */
#include <check.h>
#include <string.h>

#include "suites.h"
#include "traceparent.h"

static int
ok(const char *s, char id[33])
{
	return traceparent_parse(s, strlen(s), id) == 0;
}

START_TEST(valid_and_invalid)
{
	char id[33];
	ck_assert(ok("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", id));
	ck_assert_str_eq(id, "4bf92f3577b34da6a3ce929d0e0e4736");
	ck_assert(ok("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", id));
	/* a later version may carry more after a dash */
	ck_assert(ok("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever", id));
	ck_assert(ok("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", id));
	static const char *const bad[] = {
		"",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",      /* 00 is exact */
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",       /* version ff */
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",       /* upper case */
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",       /* zero trace */
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",       /* zero parent */
		"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",      /* no dash after */
		"0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!ok(bad[i], id), "accepted %s", bad[i]);
	ck_assert_int_eq(traceparent_parse(NULL, 0, id), -1);
}
END_TEST

Suite *
traceparent_suite(void)
{
	Suite *s = suite_create("traceparent");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, valid_and_invalid);
	suite_add_tcase(s, tc);
	return s;
}
