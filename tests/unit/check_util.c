#include <check.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apikeygen.h"
#include "arena.h"
#include "suites.h"
#include "tool_exec.h"
#include "util.h"

START_TEST(durations)
{
	uint64_t v;
	ck_assert_int_eq(parse_duration_ms("250ms", &v), 0);
	ck_assert_uint_eq(v, 250);
	ck_assert_int_eq(parse_duration_ms("30s", &v), 0);
	ck_assert_uint_eq(v, 30000);
	ck_assert_int_eq(parse_duration_ms("5m", &v), 0);
	ck_assert_uint_eq(v, 300000);
	ck_assert_int_eq(parse_duration_ms("1h", &v), 0);
	ck_assert_uint_eq(v, 3600000);
	ck_assert_int_eq(parse_duration_ms("30d", &v), 0);
	ck_assert_uint_eq(v, 30ull * 86400000);
	ck_assert_int_eq(parse_duration_ms("1.5s", &v), 0);
	ck_assert_uint_eq(v, 1500);
	ck_assert_int_eq(parse_duration_ms("0", &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(parse_duration_ms("30", &v), -1);     /* unit required */
	ck_assert_int_eq(parse_duration_ms("30 sec", &v), -1);
	ck_assert_int_eq(parse_duration_ms("-1s", &v), -1);
	ck_assert_int_eq(parse_duration_ms("s", &v), -1);
	ck_assert_int_eq(parse_duration_ms("", &v), -1);
	ck_assert_int_eq(parse_duration_ms("1.s", &v), -1);
	ck_assert_int_eq(parse_duration_ms("99999999999999999999h", &v), -1);
}
END_TEST

START_TEST(sizes)
{
	uint64_t v;
	ck_assert_int_eq(parse_size("512", &v), 0);
	ck_assert_uint_eq(v, 512);
	ck_assert_int_eq(parse_size("64KiB", &v), 0);
	ck_assert_uint_eq(v, 65536);
	ck_assert_int_eq(parse_size("4MiB", &v), 0);
	ck_assert_uint_eq(v, 4194304);
	ck_assert_int_eq(parse_size("1GiB", &v), 0);
	ck_assert_uint_eq(v, 1073741824);
	ck_assert_int_eq(parse_size("1.5KiB", &v), 0);
	ck_assert_uint_eq(v, 1536);
	ck_assert_int_eq(parse_size("4MB", &v), -1);
	ck_assert_int_eq(parse_size("4 mib", &v), -1);
	ck_assert_int_eq(parse_size("lots", &v), -1);
	ck_assert_int_eq(parse_size("18446744073709551616", &v), -1);
}
END_TEST

START_TEST(edit_distances)
{
	ck_assert_uint_eq(edit_distance("listen", "listen"), 0);
	ck_assert_uint_eq(edit_distance("listn", "listen"), 1);
	ck_assert_uint_eq(edit_distance("wokers", "workers"), 1);
	ck_assert_uint_eq(edit_distance("abc", ""), 3);
}
END_TEST

START_TEST(arena_basics)
{
	struct arena *a = arena_new(256);
	ck_assert_ptr_nonnull(a);
	char *s = arena_strdup(a, "hello");
	ck_assert_str_eq(s, "hello");
	/* Allocations larger than a block still work and stay aligned. */
	for (int i = 0; i < 100; i++) {
		void *p = arena_alloc(a, 1000 + (size_t)i);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq((uintptr_t)p % _Alignof(max_align_t), 0);
		memset(p, 0xab, 1000 + (size_t)i);
	}
	ck_assert_str_eq(s, "hello");
	char *f = arena_printf(a, "%d-%s", 42, "x");
	ck_assert_str_eq(f, "42-x");
	arena_reset(a);
	ck_assert_uint_eq(arena_used(a), 0);
	ck_assert_str_eq(arena_strndup(a, "abcdef", 3), "abc");
	arena_free(a);
}
END_TEST

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
/* The ASan build only: what no allocation holds is poisoned, so that a
 * use of a reset arena's memory (a kept message arena, a connection's
 * arena after its request) is reported. */
START_TEST(arena_poisoned_under_asan)
{
	struct arena *a = arena_new(256);
	char *p = arena_alloc(a, 10);
	ck_assert(!__asan_address_is_poisoned(p));
	ck_assert(!__asan_address_is_poisoned(p + 9));
	ck_assert(__asan_address_is_poisoned(p + 10));     /* the padding */
	char *q = arena_alloc(a, 1000);                     /* a new block */
	ck_assert(!__asan_address_is_poisoned(q + 999));
	arena_reset(a);
	ck_assert(__asan_address_is_poisoned(p));
	char *r = arena_alloc(a, 4);
	ck_assert_ptr_eq(r, p);
	ck_assert(!__asan_address_is_poisoned(r + 3));
	ck_assert(__asan_address_is_poisoned(r + 4));
	arena_free(a);
}
END_TEST
#endif

struct each_state {
	char *last;
	size_t *lines;
};

static void
each_line(const char *msg, void *arg)
{
	struct each_state *st = arg;
	snprintf(st->last, 128, "%s", msg);
	(*st->lines)++;
}

START_TEST(errlists)
{
	struct errlist e = { 0 };
	for (int i = 0; i < 20; i++)
		errlist_add(&e, "error %d", i);
	ck_assert_uint_eq(e.n, 20);
	ck_assert_str_eq(e.msgs[19], "error 19");
	errlist_free(&e);
	ck_assert_uint_eq(e.n, 0);
	/* Past ERRLIST_KEEP they are counted, not kept, and said in one line. */
	for (int i = 0; i < 100000; i++)
		errlist_add(&e, "error %d", i);
	ck_assert_uint_eq(e.n, 100000);
	ck_assert_uint_eq(e.kept, ERRLIST_KEEP);
	ck_assert_uint_le(e.cap, 2 * ERRLIST_KEEP);
	ck_assert_str_eq(e.msgs[ERRLIST_KEEP - 1], "error 199");
	char last[128] = "";
	size_t lines = 0;
	struct each_state ea = { last, &lines };
	errlist_each(&e, each_line, &ea);
	ck_assert_uint_eq(lines, ERRLIST_KEEP + 1);
	ck_assert_str_eq(last, "(and 99800 more errors, not shown)");
	errlist_free(&e);
}
END_TEST

START_TEST(first_occurrence)
{
	const char *s[] = { "b", "a", "b", "c", "a", "b" };
	size_t *f = first_occurrences(s, 6);
	ck_assert_ptr_nonnull(f);
	size_t want[] = { 0, 1, 0, 3, 1, 0 };
	for (size_t i = 0; i < 6; i++)
		ck_assert_uint_eq(f[i], want[i]);
	free(f);
	/* Many names: sorted, not compared pairwise. */
	enum { N = 200000 };
	char (*names)[16] = malloc(N * sizeof(*names));
	const char **p = malloc(N * sizeof(*p));
	ck_assert(names != NULL && p != NULL);
	for (size_t i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "n%zu", i % (N - 1));
		p[i] = names[i];
	}
	f = first_occurrences(p, N);
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(f[N - 1], 0);
	ck_assert_uint_eq(f[N - 2], N - 2);
	free(f);
	free(p);
	free(names);
	f = first_occurrences(NULL, 0);
	ck_assert_ptr_nonnull(f);
	free(f);
}
END_TEST

START_TEST(sbufs)
{
	char buf[16];
	struct sbuf b;
	sbuf_init(&b, buf, sizeof(buf));
	ck_assert_int_eq(sbuf_str(&b, "hello"), 0);
	ck_assert_int_eq(sbuf_printf(&b, ", %d", 42), 0);
	ck_assert_str_eq(buf, "hello, 42");
	ck_assert_uint_eq(b.len, 9);
	ck_assert_uint_eq(sbuf_room(&b), 6);
	ck_assert_int_eq(b.cut, 0);
	sbuf_mark_cut(&b, "...");       /* nothing was cut: no mark */
	ck_assert_str_eq(buf, "hello, 42");
	/* An append that does not fit stops at the end and is remembered. */
	ck_assert_int_eq(sbuf_printf(&b, " and %s", "a long tail"), -1);
	ck_assert_uint_eq(b.len, 15);
	ck_assert_str_eq(buf, "hello, 42 and a");
	ck_assert_int_eq(b.cut, 1);
	ck_assert_int_eq(sbuf_str(&b, "more"), -1);
	ck_assert_uint_eq(b.len, 15);
	ck_assert_int_eq(sbuf_add(&b, "", 0), 0);
	sbuf_mark_cut(&b, "...");
	ck_assert_str_eq(buf, "hello, 42 an...");
	ck_assert_uint_eq(b.len, 15);
	/* The bytes after the buffer's end are never touched. */
	char guard[8 + 4];
	memset(guard, 'G', sizeof(guard));
	sbuf_init(&b, guard, 8);
	for (int i = 0; i < 10; i++)
		sbuf_printf(&b, "%d", 123456789);
	sbuf_add(&b, "xyz", 3);
	ck_assert_str_eq(guard, "1234567");
	ck_assert_int_eq(memcmp(guard + 8, "GGGG", 4), 0);
	/* Degenerate sizes stay safe. */
	sbuf_init(&b, guard, 1);
	ck_assert_int_eq(sbuf_str(&b, "x"), -1);
	sbuf_mark_cut(&b, "...");
	ck_assert_str_eq(guard, "");
	sbuf_init(&b, NULL, 0);
	ck_assert_int_eq(sbuf_str(&b, "x"), -1);
	ck_assert_int_eq(sbuf_printf(&b, "%d", 1), -1);
	sbuf_mark_cut(&b, "...");
	ck_assert_uint_eq(b.len, 0);
}
END_TEST

/* tool_env_name never writes past its buffer, whatever the prefix: it
 * wrote its NUL at out[strlen(prefix)] when the prefix did not fit. */
START_TEST(env_names)
{
	struct {
		char out[8];
		char guard[40];
	} b;
	memset(b.guard, 'G', sizeof(b.guard));
	int rc = tool_env_name(b.out, sizeof(b.out), "MCP_ARG_A_LONG_PREFIX_", "x");
	for (size_t i = 0; i < sizeof(b.guard); i++)
		ck_assert_msg(b.guard[i] == 'G', "byte %zu past the buffer was written", i);
	ck_assert_int_eq(rc, -1);
	ck_assert_str_eq(b.out, "MCP_ARG");
	ck_assert_int_eq(tool_env_name(b.out, sizeof(b.out), "P_", "a-b.c/de"), -1);
	ck_assert_str_eq(b.out, "P_a_b_c");
	ck_assert_int_eq(tool_env_name(b.out, sizeof(b.out), "P_", "a-b.c"), 0);
	ck_assert_str_eq(b.out, "P_a_b_c");
	ck_assert_int_eq(tool_env_name(b.out, sizeof(b.out), "", ""), 0);
	ck_assert_str_eq(b.out, "");
	ck_assert_int_eq(tool_env_name(b.out, 0, "P_", "x"), -1);
	for (size_t i = 0; i < sizeof(b.guard); i++)
		ck_assert(b.guard[i] == 'G');
	/* Exactly the size: an allocation of it, for ASan. */
	char *exact = malloc(strlen("MCP_ARG_") + 3 + 1);
	ck_assert_ptr_nonnull(exact);
	ck_assert_int_eq(tool_env_name(exact, strlen("MCP_ARG_") + 3 + 1, "MCP_ARG_", "a b"), 0);
	ck_assert_str_eq(exact, "MCP_ARG_a_b");
	ck_assert_int_eq(tool_env_name(exact, 4, "MCP_ARG_", "a b"), -1);
	ck_assert_str_eq(exact, "MCP");
	free(exact);
}
END_TEST

/* Digits only: what strtoul and sscanf take beyond them (a sign,
 * blanks, 0x, a wrapped number) is refused. */
START_TEST(strict_numbers)
{
	uint64_t v = 7;
	ck_assert_int_eq(parse_u64("0", &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(parse_u64("18446744073709551615", &v), 0);
	ck_assert(v == UINT64_MAX);
	static const char *const bad[] = { "", "+1", "-1", " 1", "1 ", "\t1", "0x1", "1x",
	    "18446744073709551616", "99999999999999999999", NULL };
	for (size_t i = 0; bad[i] != NULL; i++) {
		v = 7;
		ck_assert_msg(parse_u64(bad[i], &v) == -1, "\"%s\" taken", bad[i]);
		ck_assert_uint_eq(v, 7);
	}
	const char *digits = "0123456789abcdefABCDEF";
	for (int c = 0; c < 256; c++) {
		const char *at = c != 0 ? strchr(digits, c) : NULL;
		int want = at == NULL ? -1 : at - digits < 16 ? (int)(at - digits) : (int)(at - digits) - 6;
		ck_assert_int_eq(hex_digit(c), want);
	}
}
END_TEST

/* A new API key is mcpd_ and 43 base64url characters, hex is its SHA-256
 * (what the apikey plugin compares), and two keys differ; buffers too
 * small are refused. */
START_TEST(api_keys)
{
	char key[APIKEY_LEN + 1], hex[APIKEY_HASH_HEX + 1], key2[APIKEY_LEN + 1], hex2[APIKEY_HASH_HEX + 1];
	ck_assert_int_eq(apikey_generate(key, sizeof(key), hex, sizeof(hex)), 0);
	ck_assert_uint_eq(strlen(key), APIKEY_LEN);
	ck_assert(strncmp(key, "mcpd_", 5) == 0);
	ck_assert_uint_eq(strspn(key + 5, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);
	unsigned char h[32];
	unsigned int n = 32;
	ck_assert_int_eq(EVP_Digest(key, strlen(key), h, &n, EVP_sha256(), NULL), 1);
	char want[65];
	for (int i = 0; i < 32; i++)
		snprintf(want + 2 * i, 3, "%02x", h[i]);
	ck_assert_str_eq(hex, want);
	ck_assert_int_eq(apikey_generate(key2, sizeof(key2), hex2, sizeof(hex2)), 0);
	ck_assert_str_ne(key, key2);
	ck_assert_str_ne(hex, hex2);
	ck_assert_int_eq(apikey_generate(key2, APIKEY_LEN, hex2, sizeof(hex2)), -1);
	ck_assert_int_eq(apikey_generate(key2, sizeof(key2), hex2, APIKEY_HASH_HEX), -1);
}
END_TEST

Suite *
util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, durations);
	tcase_add_test(tc, sizes);
	tcase_add_test(tc, edit_distances);
	tcase_add_test(tc, arena_basics);
#ifdef __SANITIZE_ADDRESS__
	tcase_add_test(tc, arena_poisoned_under_asan);
#endif
	tcase_add_test(tc, errlists);
	tcase_add_test(tc, sbufs);
	tcase_add_test(tc, first_occurrence);
	tcase_add_test(tc, env_names);
	tcase_add_test(tc, strict_numbers);
	tcase_add_test(tc, api_keys);
	suite_add_tcase(s, tc);
	return s;
}
