#include <check.h>
#include <event2/event.h>
#include <string.h>

#include "../../plugins/common/resolve.h"
#include "suites.h"

START_TEST(names)
{
	ck_assert_int_eq(resolve_is_name("localhost"), 1);
	ck_assert_int_eq(resolve_is_name("db.example.com"), 1);
	ck_assert_int_eq(resolve_is_name("no-such-host.invalid"), 1);
	ck_assert_int_eq(resolve_is_name("127.0.0.1"), 0);
	ck_assert_int_eq(resolve_is_name("10.0.0.30"), 0);
	ck_assert_int_eq(resolve_is_name("::1"), 0);
	ck_assert_int_eq(resolve_is_name("fe80::1%eth0"), 0);
	ck_assert_int_eq(resolve_is_name("/run/postgresql"), 0);
	ck_assert_int_eq(resolve_is_name("@abstract"), 0);
	ck_assert_int_eq(resolve_is_name(""), 0);
	ck_assert_int_eq(resolve_is_name(NULL), 0);
}
END_TEST

struct answer {
	int calls;
	size_t n;
	char first[RESOLVE_ADDR_LEN];
};

static void
got(void *arg, char addrs[][RESOLVE_ADDR_LEN], size_t n, const char *why)
{
	struct answer *a = arg;
	a->calls++;
	a->n = n;
	if (n > 0)
		memcpy(a->first, addrs[0], RESOLVE_ADDR_LEN);
	else
		ck_assert_ptr_nonnull(why);
}

/* /etc/hosts answers before resolve_start returns; the slot is cleared. */
START_TEST(hosts_file)
{
	struct event_base *base = event_base_new();
	char err[128];
	struct resolver *rs = resolver_new(base, err, sizeof(err));
	ck_assert_msg(rs != NULL, "%s", err);
	struct answer a = { 0 };
	struct lookup *slot = (struct lookup *)&a;     /* anything but NULL */
	resolve_start(rs, "localhost", got, &a, &slot);
	ck_assert_ptr_null(slot);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_uint_ge(a.n, 1);
	ck_assert_msg(strcmp(a.first, "127.0.0.1") == 0 || strcmp(a.first, "::1") == 0, "%s", a.first);
	resolver_free(rs);
	event_base_free(base);
}
END_TEST

Suite *
resolve_suite(void)
{
	Suite *s = suite_create("resolve");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, names);
	tcase_add_test(tc, hosts_file);
	suite_add_tcase(s, tc);
	return s;
}
