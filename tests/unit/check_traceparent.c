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

START_TEST(xray_header)
{
	char tid[33], pid[17];
	int sampled;
	ck_assert_int_eq(traceparent_from_xray("Root=1-5759e988-bd862e3fe1be46a994272793;"
	    "Parent=53995c3f42cd8ad8;Sampled=1", tid, pid, &sampled), 0);
	ck_assert_str_eq(tid, "5759e988bd862e3fe1be46a994272793");
	ck_assert_str_eq(pid, "53995c3f42cd8ad8");
	ck_assert_int_eq(sampled, 1);
	/* any order, other fields, spaces, upper case hex */
	ck_assert_int_eq(traceparent_from_xray("Sampled=0; Lineage=a87bd80c:1|68fd508a:5;"
	    " Parent=53995C3F42CD8AD8 ;Root=1-5759E988-BD862E3FE1BE46A994272793", tid, pid, &sampled), 0);
	ck_assert_str_eq(tid, "5759e988bd862e3fe1be46a994272793");
	ck_assert_str_eq(pid, "53995c3f42cd8ad8");
	ck_assert_int_eq(sampled, 0);
	/* no Parent, Sampled=? (the receiver decides) */
	ck_assert_int_eq(traceparent_from_xray("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?",
	    tid, pid, &sampled), 0);
	ck_assert_str_eq(pid, "");
	ck_assert_int_eq(sampled, -1);
	/* a bad Parent is left out, the Root kept */
	ck_assert_int_eq(traceparent_from_xray("Root=1-5759e988-bd862e3fe1be46a994272793;"
	    "Parent=0000000000000000", tid, pid, &sampled), 0);
	ck_assert_str_eq(pid, "");
	static const char *const bad[] = {
		"",
		"Parent=53995c3f42cd8ad8;Sampled=1",                    /* no Root */
		"Root=2-5759e988-bd862e3fe1be46a994272793",             /* version 2 */
		"Root=1-5759e988-bd862e3fe1be46a99427279",              /* short */
		"Root=1-5759e988-bd862e3fe1be46a9942727933",            /* long */
		"Root=1-5759e988bd862e3fe1be46a994272793",              /* no dash */
		"Root=1-5759e98g-bd862e3fe1be46a994272793",             /* not hex */
		"Root=1-00000000-000000000000000000000000",             /* zero */
		"root=1-5759e988-bd862e3fe1be46a994272793",             /* case of the key */
		"Root=1-5759e988-bd862e3fe1be46a994272793;Root=x",      /* the last one counts */
		"garbage",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(traceparent_from_xray(bad[i], tid, pid, &sampled) == -1, "accepted %s", bad[i]);
		ck_assert_str_eq(tid, "");
		ck_assert_str_eq(pid, "");
	}
	ck_assert_int_eq(traceparent_from_xray(NULL, tid, pid, &sampled), -1);
}
END_TEST

Suite *
traceparent_suite(void)
{
	Suite *s = suite_create("traceparent");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, valid_and_invalid);
	tcase_add_test(tc, xray_header);
	suite_add_tcase(s, tc);
	return s;
}
