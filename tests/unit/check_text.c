#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/common/b64.h"
#include "../../plugins/common/utf8.h"
#include "suites.h"

/* plugins/common/b64.c: RFC 4648's vectors, round trips of every length
 * and byte, base64url, and text that is not base64. */
START_TEST(b64_vectors)
{
	static const char *plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *coded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		char *e = b64_encode(plain[i], strlen(plain[i]));
		ck_assert_ptr_nonnull(e);
		ck_assert_str_eq(e, coded[i]);
		size_t n = 99;
		unsigned char *d = b64_decode(coded[i], &n);
		ck_assert_ptr_nonnull(d);
		ck_assert_uint_eq(n, strlen(plain[i]));
		ck_assert(memcmp(d, plain[i], n) == 0);
		free(e);
		free(d);
	}
}
END_TEST

START_TEST(b64_round_trips)
{
	unsigned char in[300];
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(255 - i);      /* every byte, NUL and 0xff included */
	for (size_t len = 0; len <= sizeof(in); len++) {
		char *e = b64_encode(in, len);
		ck_assert_ptr_nonnull(e);
		ck_assert_uint_eq(strlen(e), 4 * ((len + 2) / 3));
		size_t n;
		unsigned char *d = b64_decode(e, &n);
		ck_assert_ptr_nonnull(d);
		ck_assert_uint_eq(n, len);
		ck_assert(memcmp(d, in, len) == 0);
		free(e);
		free(d);
	}
}
END_TEST

START_TEST(b64_bad_text)
{
	static const char *bad[] = {
		"Zg=",          /* not a multiple of 4 */
		"Zm9vY",
		"Zm9v!mFy",     /* outside the alphabet */
		"Zm9v-_Fy",     /* base64url's characters are not base64's */
		"Zm 9",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = 7;
		unsigned char *d = b64_decode(bad[i], &n);
		ck_assert_msg(d == NULL, "%s decoded", bad[i]);
		ck_assert_uint_eq(n, 7);
	}
}
END_TEST

START_TEST(b64url_no_padding)
{
	/* 0xfb 0xff: "+/8=" in base64. */
	static const unsigned char b[] = { 0xfb, 0xff };
	char *e = b64url_encode(b, sizeof(b));
	ck_assert_str_eq(e, "-_8");
	free(e);
	e = b64url_encode("f", 1);
	ck_assert_str_eq(e, "Zg");
	free(e);
	e = b64url_encode("foo", 3);
	ck_assert_str_eq(e, "Zm9v");
	free(e);
	e = b64url_encode("", 0);
	ck_assert_str_eq(e, "");
	free(e);
}
END_TEST

/* plugins/common/utf8.c: the shortest and longest sequences of each length,
 * and what is refused. */
START_TEST(utf8_valid_text)
{
	static const char *good[] = {
		"", "a", "\x7f", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf", "\xee\x80\x80",
		"\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(utf8_text((const unsigned char *)good[i], strlen(good[i])), "case %zu", i);
	uint32_t cp = 0;
	ck_assert_uint_eq(utf8_char((const unsigned char *)"\xf0\x9f\x98\x80", 4, &cp), 4);
	ck_assert_uint_eq(cp, 0x1f600);
	ck_assert_uint_eq(utf8_char((const unsigned char *)"\xe2\x82\xac", 3, &cp), 3);
	ck_assert_uint_eq(cp, 0x20ac);
	ck_assert_uint_eq(utf8_char((const unsigned char *)"\xc3\xa9", 2, &cp), 2);
	ck_assert_uint_eq(cp, 0xe9);
	ck_assert_uint_eq(utf8_char((const unsigned char *)"\0", 1, &cp), 1);
	ck_assert_uint_eq(cp, 0);
}
END_TEST

START_TEST(utf8_refused)
{
	static const struct {
		const char *s;
		size_t n;
	} bad[] = {
		{ "a\0b", 3 },                  /* NUL */
		{ "\x80", 1 },                  /* a continuation byte alone */
		{ "\xc0\xaf", 2 },              /* overlong '/' */
		{ "\xc1\xbf", 2 },
		{ "\xe0\x9f\xbf", 3 },          /* overlong U+07FF */
		{ "\xf0\x8f\xbf\xbf", 4 },      /* overlong U+FFFF */
		{ "\xed\xa0\x80", 3 },          /* U+D800, a surrogate */
		{ "\xed\xbf\xbf", 3 },          /* U+DFFF */
		{ "\xf4\x90\x80\x80", 4 },      /* U+110000 */
		{ "\xf5\x80\x80\x80", 4 },
		{ "\xff", 1 },
		{ "\xc3", 1 },                  /* cut short */
		{ "\xe2\x82", 2 },
		{ "\xf0\x9f\x98", 3 },
		{ "\xe2\x28\xa1", 3 },          /* not a continuation byte */
		{ "ok\xc3(", 4 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!utf8_text((const unsigned char *)bad[i].s, bad[i].n), "case %zu", i);
	/* A sequence cut by the length given, though the bytes go on. */
	uint32_t cp;
	ck_assert_uint_eq(utf8_char((const unsigned char *)"\xe2\x82\xac", 2, &cp), 0);
}
END_TEST

Suite *
text_suite(void)
{
	Suite *s = suite_create("text");
	TCase *tc = tcase_create("b64");
	tcase_add_test(tc, b64_vectors);
	tcase_add_test(tc, b64_round_trips);
	tcase_add_test(tc, b64_bad_text);
	tcase_add_test(tc, b64url_no_padding);
	suite_add_tcase(s, tc);
	tc = tcase_create("utf8");
	tcase_add_test(tc, utf8_valid_text);
	tcase_add_test(tc, utf8_refused);
	suite_add_tcase(s, tc);
	return s;
}
