/* lib/sealbox.c: the format of values sealed for storage. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "keyfile.h"
#include "sealbox.h"
#include "sigmsg.h"
#include "suites.h"

static void
keys_of(struct sigkeys *k, int n, unsigned char fill)
{
	memset(k, 0, sizeof(*k));
	k->n = n;
	for (int i = 0; i < n; i++) {
		memset(k->key[i], fill + i, 32);
		keyfile_id(k->key[i], k->id[i]);
	}
}

static const char REC[] = "{\"owner\":\"alice\",\"clientInfo\":{\"name\":\"secret-client\"}}";

START_TEST(seal_and_open)
{
	struct sigkeys k, other;
	keys_of(&k, 1, 1);
	keys_of(&other, 1, 7);
	size_t n, pl;
	void *p;
	char kid[9];
	char *s = sealbox_seal(&k, "v", "session:abc", REC, strlen(REC), &n);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(strlen(s), n);
	ck_assert(strncmp(s, "mcpd-enc1:", 10) == 0);
	ck_assert(strncmp(s + 10, k.id[0], 8) == 0);
	ck_assert_ptr_null(strstr(s, "alice"));
	ck_assert_ptr_null(strstr(s, "secret-client"));
	ck_assert_int_eq(sealbox_open(&k, "v", "session:abc", s, n, &p, &pl, kid), SEALBOX_OK);
	ck_assert_uint_eq(pl, strlen(REC));
	ck_assert(memcmp(p, REC, pl) == 0);
	ck_assert_int_eq(((char *)p)[pl], '\0');
	free(p);
	/* Moved under another name, or read as a log entry: refused. */
	ck_assert_int_eq(sealbox_open(&k, "v", "session:abd", s, n, &p, &pl, kid), SEALBOX_BAD);
	ck_assert_int_eq(sealbox_open(&k, "l", "session:abc", s, n, &p, &pl, kid), SEALBOX_BAD);
	/* Another key: unknown, and its id told. */
	ck_assert_int_eq(sealbox_open(&other, "v", "session:abc", s, n, &p, &pl, kid), SEALBOX_UNKNOWN_KEY);
	ck_assert_str_eq(kid, k.id[0]);
	/* A rotation: new key first, the old one still opens old values. */
	struct sigkeys both;
	keys_of(&both, 2, 7);
	memcpy(both.key[1], k.key[0], 32);
	memcpy(both.id[1], k.id[0], 9);
	ck_assert_int_eq(sealbox_open(&both, "v", "session:abc", s, n, &p, &pl, kid), SEALBOX_OK);
	free(p);
	char *s2 = sealbox_seal(&both, "v", "session:abc", REC, strlen(REC), &n);
	ck_assert(strncmp(s2 + 10, other.id[0], 8) == 0);
	ck_assert_int_eq(sealbox_open(&k, "v", "session:abc", s2, n, &p, &pl, kid), SEALBOX_UNKNOWN_KEY);
	free(s2);
	/* Any byte changed, any cut: refused, never a crash. */
	n = strlen(s);
	for (size_t i = 0; i < n; i++) {
		char *c = strdup(s);
		c[i] = c[i] == 'A' ? 'B' : 'A';
		ck_assert_msg(sealbox_open(&k, "v", "session:abc", c, n, &p, &pl, kid) != SEALBOX_OK,
		    "byte %zu changed", i);
		free(c);
		ck_assert(sealbox_open(&k, "v", "session:abc", s, i, &p, &pl, kid) != SEALBOX_OK);
	}
	free(s);
	/* Clear values are told apart; empty values seal too. */
	ck_assert_int_eq(sealbox_open(&k, "v", "x", REC, strlen(REC), &p, &pl, kid), SEALBOX_CLEAR);
	s = sealbox_seal(&k, "v", "x", "", 0, &n);
	ck_assert_int_eq(sealbox_open(&k, "v", "x", s, n, &p, &pl, kid), SEALBOX_OK);
	ck_assert_uint_eq(pl, 0);
	free(p);
	/* Two seals of one value differ (their nonces). */
	char *t = sealbox_seal(&k, "v", "x", "", 0, &n);
	ck_assert_str_ne(s, t);
	free(s);
	free(t);
	struct sigkeys none = { 0 };
	ck_assert_ptr_null(sealbox_seal(&none, "v", "x", "a", 1, &n));
}
END_TEST

Suite *
sealbox_suite(void)
{
	Suite *s = suite_create("sealbox");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, seal_and_open);
	suite_add_tcase(s, tc);
	return s;
}
