#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../plugins/common/credfile.h"
#include "suites.h"

/* plugins/common/credfile.c: the bound on a file read whole, white space
 * trimmed, empty variables as unset, secrets freed. */
static void
write_file(const char *path, const char *data, size_t len)
{
	FILE *fp = fopen(path, "w");
	ck_assert_ptr_nonnull(fp);
	ck_assert_uint_eq(fwrite(data, 1, len, fp), len);
	fclose(fp);
}

START_TEST(cred_slurp_bounds)
{
	char path[] = "/tmp/mcpd-check-credfile.XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	write_file(path, "0123456789", 10);
	size_t len = 99;
	char *s = cred_slurp(path, 10, &len);          /* exactly the bound */
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, "0123456789");
	ck_assert_uint_eq(len, 10);
	free(s);
	errno = 0;
	len = 99;
	ck_assert_ptr_null(cred_slurp(path, 9, &len));  /* one byte over */
	ck_assert_int_eq(errno, EFBIG);
	ck_assert_uint_eq(len, 99);
	write_file(path, "", 0);
	s = cred_slurp(path, 10, NULL);
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, "");
	free(s);
	unlink(path);
	errno = 0;
	ck_assert_ptr_null(cred_slurp(path, 10, &len));
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(cred_trim_and_env)
{
	char a[] = " \t token\r\n", b[] = "   ", c[] = "x";
	ck_assert_str_eq(cred_trim(a), "token");
	ck_assert_str_eq(cred_trim(b), "");
	ck_assert_str_eq(cred_trim(c), "x");
	setenv("MCPD_CHECK_CRED", "", 1);
	ck_assert_ptr_null(cred_env("MCPD_CHECK_CRED"));
	unsetenv("MCPD_CHECK_CRED");
	ck_assert_ptr_null(cred_env("MCPD_CHECK_CRED"));
	setenv("MCPD_CHECK_CRED", "v", 1);
	ck_assert_str_eq(cred_env("MCPD_CHECK_CRED"), "v");
	unsetenv("MCPD_CHECK_CRED");
	char *secret = strdup("hunter2");
	cred_wipe_free(&secret);
	ck_assert_ptr_null(secret);
	cred_wipe_free(&secret);        /* NULL: nothing */
}
END_TEST

Suite *
credfile_suite(void)
{
	Suite *s = suite_create("credfile");
	TCase *tc = tcase_create("credfile");
	tcase_add_test(tc, cred_slurp_bounds);
	tcase_add_test(tc, cred_trim_and_env);
	suite_add_tcase(s, tc);
	return s;
}
