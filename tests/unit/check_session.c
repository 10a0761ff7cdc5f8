#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../daemon/mcp/session_internal.h"
#include "suites.h"

/* daemon/mcp/session.c: a record's "w" (when it was last written) is read
 * by hand when it is digits, as record_json writes it, and by strtoull
 * otherwise: both must agree with strtoull on when a record lapsed. */

static int
expired(const char *rec, uint64_t idle_ms, uint64_t now)
{
	return record_expired_at(rec, strlen(rec), idle_ms, now);
}

/* What record_expired answered before the digits were read by hand. */
static int
expired_by_strtoull(const char *rec, size_t len, uint64_t idle_ms, uint64_t now)
{
	static const char w[] = "{\"w\":";
	if (len < sizeof(w) || memcmp(rec, w, sizeof(w) - 1) != 0)
		return 0;
	char buf[24];
	size_t n = len - (sizeof(w) - 1) < sizeof(buf) - 1 ? len - (sizeof(w) - 1) : sizeof(buf) - 1;
	memcpy(buf, rec + sizeof(w) - 1, n);
	buf[n] = '\0';
	char *end;
	unsigned long long at = strtoull(buf, &end, 10);
	if (end == buf)
		return 0;
	return now >= at + idle_ms;
}

START_TEST(record_expiry)
{
	const char *rec = "{\"w\":1765078712345,\"p\":2,\"c\":{}}";
	ck_assert_int_eq(expired(rec, 1000, 1765078713344), 0);
	ck_assert_int_eq(expired(rec, 1000, 1765078713345), 1);
	ck_assert_int_eq(expired(rec, 1000, 1765078712345), 0);
	ck_assert_int_eq(expired(rec, 0, 1765078712345), 1);
	/* No "w" first (an older record), or no number: never expired. */
	ck_assert_int_eq(expired("{\"p\":2,\"w\":1}", 1, UINT64_MAX), 0);
	ck_assert_int_eq(expired("{\"w\":x}", 1, UINT64_MAX), 0);
	ck_assert_int_eq(expired("{\"w\":", 1, UINT64_MAX), 0);
	ck_assert_int_eq(expired("{\"w\"", 1, UINT64_MAX), 0);
	/* The value is cut where it ends, short or at the end of the record. */
	ck_assert_int_eq(expired("{\"w\":5", 10, 15), 1);
	ck_assert_int_eq(expired("{\"w\":5", 10, 14), 0);
}
END_TEST

/* Every shape of "w" against the strtoull reading: digits of every
 * length up to past 2^64 (strtoull saturates), signs, blanks, exponents. */
START_TEST(record_expiry_as_strtoull)
{
	const char *vals[] = {
		"0", "7", "42,", "1765078712345", "1765078712345}", "0001765078712345",
		"9999999999999999999", "18446744073709551615", "18446744073709551616",
		"99999999999999999999", "123456789012345678901234567890",
		" 1765078712345", "+1765078712345", "-1", "-1765078712345", "1.765078712345e12",
		"1e3", "", "x", "\t9",
	};
	const uint64_t idles[] = { 0, 1, 60000, UINT64_MAX / 2 };
	const uint64_t nows[] = { 0, 1, 14, 15, 1765078712344, 1765078772345, 1765078772346,
	    UINT64_MAX - 1, UINT64_MAX };
	for (size_t v = 0; v < sizeof(vals) / sizeof(vals[0]); v++) {
		char rec[128];
		snprintf(rec, sizeof(rec), "{\"w\":%s", vals[v]);
		for (size_t i = 0; i < sizeof(idles) / sizeof(idles[0]); i++)
			for (size_t n = 0; n < sizeof(nows) / sizeof(nows[0]); n++)
				/* Whole, and cut short (the value is not a string). */
				for (size_t len = strlen(rec) + 1; len-- > 0;)
					ck_assert_msg(record_expired_at(rec, len, idles[i], nows[n]) ==
					    expired_by_strtoull(rec, len, idles[i], nows[n]),
					    "%.*s idle %llu now %llu", (int)len, rec, (unsigned long long)idles[i],
					    (unsigned long long)nows[n]);
	}
}
END_TEST

/* A session deleted lately (heard on mcpd:sessions) is not served from a
 * record read just before: for GONE_MS, whether or not others were
 * deleted since, and the ring keeps the newest GONE_SLOTS. */
START_TEST(gone_lately)
{
	struct sessions *t = calloc(1, sizeof(*t));
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(gone_recently(t, "h1", 5), 0);
	ck_assert_int_eq(gone_recently(t, "", 5), 0);
	gone_note(t, "h1", 100000);
	ck_assert_int_eq(gone_recently(t, "h1", 100000), 1);
	ck_assert_int_eq(gone_recently(t, "h1", 100000 + GONE_MS - 1), 1);
	ck_assert_int_eq(gone_recently(t, "h1", 100000 + GONE_MS), 0);
	ck_assert_int_eq(gone_recently(t, "h2", 100000), 0);
	/* Another deleted later: the first still counts until its own end. */
	gone_note(t, "h2", 100000 + GONE_MS - 10);
	ck_assert_int_eq(gone_recently(t, "h1", 100000 + GONE_MS - 1), 1);
	ck_assert_int_eq(gone_recently(t, "h1", 100000 + GONE_MS), 0);
	ck_assert_int_eq(gone_recently(t, "h2", 100000 + GONE_MS), 1);
	ck_assert_int_eq(gone_recently(t, "h2", 100000 + 2 * GONE_MS - 11), 1);
	ck_assert_int_eq(gone_recently(t, "h2", 100000 + 2 * GONE_MS - 10), 0);
	/* Past GONE_SLOTS deletions the oldest slot is taken again. */
	char hid[16];
	for (int i = 0; i < GONE_SLOTS; i++) {
		snprintf(hid, sizeof(hid), "x%d", i);
		gone_note(t, hid, 200000 + (uint64_t)i);
	}
	ck_assert_int_eq(gone_recently(t, "h2", 200000), 0);
	ck_assert_int_eq(gone_recently(t, "x0", 200000 + GONE_SLOTS), 1);
	ck_assert_int_eq(gone_recently(t, "x0", 200000 + GONE_MS), 0);
	ck_assert_int_eq(gone_recently(t, "x63", 200000 + GONE_MS), 1);
	free(t);
}
END_TEST

Suite *
session_suite(void)
{
	Suite *s = suite_create("session");
	TCase *tc = tcase_create("records");
	tcase_add_test(tc, record_expiry);
	tcase_add_test(tc, record_expiry_as_strtoull);
	tcase_add_test(tc, gone_lately);
	suite_add_tcase(s, tc);
	return s;
}
