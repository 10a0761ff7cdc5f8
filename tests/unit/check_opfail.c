#include <check.h>
#include <stdint.h>
#include <string.h>

#include <mcpd/plugin.h>

#include "../../plugins/common/opfail.h"
#include "suites.h"

/* plugins/common/opfail.c: each shape's callback gets MCPD_ERROR, the
 * reason and empty results. */
static struct {
	int shape, status;
	const char *why;
	int empty;
} failed;

static void
saw(int shape, void *arg, int status, const char *err, int empty)
{
	failed.shape = shape;
	failed.status = status;
	failed.why = err;
	failed.empty = arg == &failed && empty;
}

static void
fail_done(void *arg, int status, const char *err)
{
	saw(OP_DONE, arg, status, err, 1);
}

static void
fail_value(void *arg, int status, const void *v, size_t len, const char *err)
{
	saw(OP_VALUE, arg, status, err, v == NULL && len == 0);
}

static void
fail_int(void *arg, int status, int64_t v, const char *err)
{
	saw(OP_INT, arg, status, err, v == 0);
}

static void
fail_members(void *arg, int status, const char *const *m, size_t n, const char *err)
{
	saw(OP_MEMBERS, arg, status, err, m == NULL && n == 0);
}

static void
fail_entries(void *arg, int status, const struct mcpd_log_entry *e, size_t n, const char *err)
{
	saw(OP_ENTRIES, arg, status, err, e == NULL && n == 0);
}

START_TEST(op_fail_shapes)
{
	static const struct {
		enum op_shape shape;
		void *cb;
	} cases[] = {
		{ OP_DONE, (void *)fail_done }, { OP_VALUE, (void *)fail_value }, { OP_INT, (void *)fail_int },
		{ OP_MEMBERS, (void *)fail_members }, { OP_ENTRIES, (void *)fail_entries },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&failed, 0, sizeof(failed));
		failed.shape = -1;
		op_fail(cases[i].shape, cases[i].cb, &failed, "the server went away");
		ck_assert_int_eq(failed.shape, cases[i].shape);
		ck_assert_int_eq(failed.status, MCPD_ERROR);
		ck_assert_str_eq(failed.why, "the server went away");
		ck_assert_int_eq(failed.empty, 1);
	}
	/* No callback to call: nothing happens. */
	memset(&failed, 0, sizeof(failed));
	op_fail(OP_DONE, NULL, &failed, "x");
	op_fail(OP_NO_CALLBACK, (void *)fail_done, &failed, "x");
	ck_assert_int_eq(failed.status, 0);
}
END_TEST

Suite *
opfail_suite(void)
{
	Suite *s = suite_create("opfail");
	TCase *tc = tcase_create("shapes");
	tcase_add_test(tc, op_fail_shapes);
	suite_add_tcase(s, tc);
	return s;
}
