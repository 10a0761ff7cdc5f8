/* lib/sigmsg.c, lib/keyfile.c and lib/idhash.c: the signed-message
 * envelope, the replay cache's bounds, key files, keyed id hashes. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "idhash.h"
#include "keyfile.h"
#include "sigmsg.h"
#include "suites.h"

#define NOW 1800000000000ull

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

static enum sigmsg_verdict
verify(const struct sigkeys *k, const char *ch, const char *m, size_t len, uint64_t now)
{
	const void *body;
	size_t bl;
	unsigned char nonce[SIGMSG_NONCE];
	uint64_t ts;
	enum sigmsg_verdict v = sigmsg_verify(k, ch, m, len, now, 30000, &body, &bl, nonce, &ts);
	if (v == SIGMSG_OK) {
		ck_assert_uint_eq(bl, 5);
		ck_assert(memcmp(body, "hello", 5) == 0);
		ck_assert_uint_eq(ts, NOW);
	}
	return v;
}

START_TEST(envelope)
{
	struct sigkeys k, other, both;
	keys_of(&k, 1, 1);
	keys_of(&other, 1, 9);
	keys_of(&both, 2, 9);
	memcpy(both.key[1], k.key[0], 32);
	memcpy(both.id[1], k.id[0], 9);
	size_t len;
	char *m = sigmsg_sign(&k, "control:abc", "hello", 5, NOW, &len);
	ck_assert_ptr_nonnull(m);
	ck_assert(strncmp(m, "mcpd-sig1 ", 10) == 0);
	ck_assert_int_eq(verify(&k, "control:abc", m, len, NOW), SIGMSG_OK);
	ck_assert_int_eq(verify(&both, "control:abc", m, len, NOW + 29000), SIGMSG_OK);
	ck_assert_int_eq(verify(&other, "control:abc", m, len, NOW), SIGMSG_FORGED);
	ck_assert_int_eq(verify(&k, "control:abd", m, len, NOW), SIGMSG_FORGED);
	ck_assert_int_eq(verify(&k, "control:abc", m, len, NOW + 30001), SIGMSG_STALE);
	ck_assert_int_eq(verify(&k, "control:abc", m, len, NOW - 30001), SIGMSG_STALE);
	ck_assert_int_eq(verify(&k, "control:abc", "hello", 5, NOW), SIGMSG_UNSIGNED);
	ck_assert_int_eq(verify(&k, "control:abc", "", 0, NOW), SIGMSG_UNSIGNED);
	/* Every byte changed is refused (in the magic word: as unsigned). */
	for (size_t i = 0; i < len; i++) {
		char *c = malloc(len);
		memcpy(c, m, len);
		c[i] ^= 0x01;
		enum sigmsg_verdict v = verify(&k, "control:abc", c, len, NOW);
		ck_assert_msg(v == SIGMSG_FORGED || v == SIGMSG_UNSIGNED, "byte %zu changed: %d", i, v);
		free(c);
	}
	/* Cut anywhere: refused, never read past the end. */
	for (size_t i = 0; i < len; i++) {
		char *c = malloc(i ? i : 1);
		memcpy(c, m, i);
		ck_assert_int_ne(verify(&k, "control:abc", c, i, NOW), SIGMSG_OK);
		free(c);
	}
	free(m);
	/* Two messages of the same body differ (their nonces). */
	char *a = sigmsg_sign(&k, "x", "hello", 5, NOW, &len), *b = sigmsg_sign(&k, "x", "hello", 5, NOW, &len);
	ck_assert(memcmp(a, b, len) != 0);
	free(a);
	free(b);
	/* No key: nothing signed. */
	struct sigkeys none = { 0 };
	ck_assert_ptr_null(sigmsg_sign(&none, "x", "hello", 5, NOW, &len));
}
END_TEST

static void
nonce_of(unsigned char n[SIGMSG_NONCE], unsigned i)
{
	memset(n, 0, SIGMSG_NONCE);
	memcpy(n + 4, &i, sizeof(i));   /* the first bytes alike: one bucket chain */
}

START_TEST(replay_bounds)
{
	struct replay *r = replay_new(100);
	unsigned char n[SIGMSG_NONCE];
	for (unsigned i = 0; i < 100; i++) {
		nonce_of(n, i);
		ck_assert_int_eq(replay_check(r, n, 0, NOW + i, NOW + i, 30000), 0);
	}
	for (unsigned i = 0; i < 100; i++) {
		nonce_of(n, i);
		ck_assert_int_eq(replay_check(r, n, 0, NOW + i, NOW + 100, 30000), -1);
	}
	/* Another subscriber is another pair. */
	nonce_of(n, 5);
	ck_assert_int_eq(replay_check(r, n, 1, NOW + 5, NOW + 100, 30000), 0);
	/* Full: the oldest (NOW + 1 by now) goes, and nothing dated at or
	 * before it is let in, though it is forgotten. */
	nonce_of(n, 1000);
	ck_assert_int_eq(replay_check(r, n, 0, NOW + 200, NOW + 200, 30000), 0);
	nonce_of(n, 1);
	ck_assert_int_eq(replay_check(r, n, 0, NOW + 1, NOW + 200, 30000), -1);
	nonce_of(n, 1001);
	ck_assert_int_eq(replay_check(r, n, 0, NOW + 1, NOW + 200, 30000), -1);
	ck_assert_int_eq(replay_check(r, n, 0, NOW + 150, NOW + 200, 30000), 0);
	/* Out of the window, entries go without raising the floor. */
	for (unsigned i = 2000; i < 2300; i++) {
		nonce_of(n, i);
		ck_assert_int_eq(replay_check(r, n, 0, NOW + 100000 + i, NOW + 100000 + i, 30000), 0);
	}
	nonce_of(n, 2299);
	ck_assert_int_eq(replay_check(r, n, 0, NOW + 102299, NOW + 102300, 30000), -1);
	replay_free(r);
	ck_assert_ptr_null(replay_new(0));
}
END_TEST

static char *
write_key(const char *text, mode_t mode)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/mcpd-check-key-XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	fchmod(fd, mode);
	close(fd);
	return path;
}

START_TEST(key_files)
{
	unsigned char a[32], b[32], c[32];
	char err[300];
	const char *hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	char line[100];
	snprintf(line, sizeof(line), "%s\n", hex);
	char *p = write_key(line, 0600);
	ck_assert_int_eq(keyfile_read(p, "one", a, err, sizeof(err)), 0);
	ck_assert_int_eq(keyfile_read(p, "two", b, err, sizeof(err)), 0);
	ck_assert(memcmp(a, b, 32) != 0);           /* labels part the uses */
	unlink(p);
	p = write_key(hex, 0640);                   /* the newline is no part of the key */
	ck_assert_int_eq(keyfile_read(p, "one", c, err, sizeof(err)), 0);
	ck_assert(memcmp(a, c, 32) == 0);
	unlink(p);
	p = write_key(hex, 0644);
	ck_assert_int_eq(keyfile_read(p, "one", c, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "chmod 600"));
	unlink(p);
	p = write_key(hex, 0660);
	ck_assert_int_eq(keyfile_read(p, "one", c, err, sizeof(err)), -1);
	unlink(p);
	p = write_key("short key\n", 0600);
	ck_assert_int_eq(keyfile_read(p, "one", c, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "holds 9 bytes"));
	unlink(p);
	char *big = malloc(5000);
	memset(big, 'k', 4999);
	big[4999] = '\0';
	p = write_key(big, 0600);
	free(big);
	ck_assert_int_eq(keyfile_read(p, "one", c, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "more than 4096"));
	unlink(p);
	ck_assert_int_eq(keyfile_read("/nonexistent/key", "one", c, err, sizeof(err)), -1);
	ck_assert_int_eq(keyfile_read("/tmp", "one", c, err, sizeof(err)), -1);
	char id1[9], id2[9];
	keyfile_id(a, id1);
	keyfile_id(b, id2);
	ck_assert_uint_eq(strlen(id1), 8);
	ck_assert_str_ne(id1, id2);
}
END_TEST

/* An id's keyed hash: HMAC-SHA256, 144 bits in base64url. The values are
 * fixed (every instance sharing a backend computes the same keys), and
 * stay right when the same id is hashed again and when the key changes
 * (the keyed context is made once per key). */
START_TEST(id_hashes)
{
	char h[IDHASH_LEN + 1];
	unsigned char k[32];
	for (int round = 0; round < 2; round++) {
		idhash_set_key(NULL);
		ck_assert_str_eq(idhash("session-one", h), "PYYzoL7zjalvxYz1ykhYv0Ql");
		ck_assert_str_eq(idhash("session-one", h), "PYYzoL7zjalvxYz1ykhYv0Ql");
		memset(k, 7, sizeof(k));
		idhash_set_key(k);
		ck_assert_str_eq(idhash("session-one", h), "HwnlKkhrdz9qA0ed2rbw_3QC");
		memset(k, 9, sizeof(k));
		idhash_set_key(k);
		ck_assert_str_eq(idhash("session-two", h), "pqBWbSmQbKqw35UGqOtsMha9");
		ck_assert_str_eq(idhash("session-two", h), "pqBWbSmQbKqw35UGqOtsMha9");
	}
	idhash_set_key(NULL);
}
END_TEST

/* OAuth's codes and tokens: the whole HMAC with the same key, in hex
 * (what Python's hmac.new(key, token, sha256).hexdigest() gives). */
START_TEST(token_hashes)
{
	char hex[65];
	unsigned char k[32];
	idhash_set_key(NULL);
	idhash_hex("mcpd_at_token", strlen("mcpd_at_token"), hex);
	ck_assert_str_eq(hex, "afed2ce62b6b404d4ee3be0f58fa0a9b03d62e1a63aa93fe54cc4a78f239e2e9");
	memset(k, 9, sizeof(k));
	idhash_set_key(k);
	idhash_hex("mcpd_at_token", strlen("mcpd_at_token"), hex);
	ck_assert_str_eq(hex, "af2b1b8c5279bf2aad72c3c985299e38617d8f75a360e378dc50a8aaceeff058");
	idhash_set_key(NULL);
}
END_TEST

Suite *
sigmsg_suite(void)
{
	Suite *s = suite_create("sigmsg");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, envelope);
	tcase_add_test(tc, replay_bounds);
	tcase_add_test(tc, key_files);
	tcase_add_test(tc, token_hashes);
	tcase_add_test(tc, id_hashes);
	suite_add_tcase(s, tc);
	return s;
}
