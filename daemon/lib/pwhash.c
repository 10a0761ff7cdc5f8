/* scrypt password hashes (see pwhash.h). */
#include "pwhash.h"
#include "util.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_LN 15           /* N = 32768: 32 MiB with r = 8 */
#define DEFAULT_R 8
#define DEFAULT_P 1
#define SALT_LEN 16
#define KEY_LEN 32
#define MAX_MEM (256ull * 1024 * 1024)

struct params {
	unsigned ln, r, p;
	unsigned char salt[64];
	size_t salt_len;
	unsigned char key[64];
	size_t key_len;
};

static int
read_uint(const char **s, const char *name, unsigned max, unsigned *out)
{
	size_t nl = strlen(name);
	if (strncmp(*s, name, nl) != 0 || (*s)[nl] != '=')
		return -1;
	const char *p = *s + nl + 1;
	unsigned v = 0;
	if (*p < '0' || *p > '9')
		return -1;
	while (*p >= '0' && *p <= '9') {
		v = v * 10 + (unsigned)(*p++ - '0');
		if (v > max)
			return -1;
	}
	*s = p;
	*out = v;
	return 0;
}

static int
decode_part(const char *s, size_t len, unsigned char *out, size_t max, size_t *outlen)
{
	if (len == 0 || len > 4 * max / 3 + 4)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_'))
			return -1;
	}
	unsigned char buf[128];
	size_t n;
	if (base64_decode(s, len, buf, &n) < 0 || n > max)
		return -1;
	memcpy(out, buf, n);
	*outlen = n;
	return 0;
}

static int
parse(const char *hash, struct params *pa, char *why, size_t wl)
{
	static const char prefix[] = "$scrypt$";
	if (strlen(hash) > PWHASH_MAX) {
		snprintf(why, wl, "the hash is too long");
		return -1;
	}
	if (strncmp(hash, prefix, sizeof(prefix) - 1) != 0) {
		snprintf(why, wl, "not a $scrypt$ hash (make one with mcpd -p)");
		return -1;
	}
	const char *s = hash + sizeof(prefix) - 1;
	if (read_uint(&s, "ln", 30, &pa->ln) < 0 || *s++ != ',' || read_uint(&s, "r", 1000, &pa->r) < 0 ||
	    *s++ != ',' || read_uint(&s, "p", 1000, &pa->p) < 0 || *s++ != '$') {
		snprintf(why, wl, "the parameters must read ln=<n>,r=<n>,p=<n>");
		return -1;
	}
	if (pa->ln < 10 || pa->ln > 22 || pa->r < 1 || pa->r > 32 || pa->p < 1 || pa->p > 16 ||
	    128ull * pa->r * (1ull << pa->ln) > MAX_MEM) {
		snprintf(why, wl, "scrypt parameters out of range (ln 10-22, r 1-32, p 1-16, at most 256 MiB)");
		return -1;
	}
	const char *dollar = strchr(s, '$');
	if (dollar == NULL || decode_part(s, (size_t)(dollar - s), pa->salt, sizeof(pa->salt), &pa->salt_len) < 0 ||
	    pa->salt_len < 8) {
		snprintf(why, wl, "the salt must be 8 to 64 bytes in base64url");
		return -1;
	}
	s = dollar + 1;
	if (decode_part(s, strlen(s), pa->key, sizeof(pa->key), &pa->key_len) < 0 || pa->key_len < 16) {
		snprintf(why, wl, "the key must be 16 to 64 bytes in base64url");
		return -1;
	}
	return 0;
}

static int
scrypt(const char *password, size_t len, const struct params *pa, unsigned char *out, size_t outlen)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
	if (kdf == NULL)
		return -1;
	EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (ctx == NULL)
		return -1;
	uint64_t n = 1ull << pa->ln;
	uint32_t r = pa->r, p = pa->p;
	uint64_t maxmem = MAX_MEM + 1024 * 1024;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)password, len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)pa->salt, pa->salt_len),
		OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
		OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
		OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
		OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
		OSSL_PARAM_construct_end(),
	};
	int rc = EVP_KDF_derive(ctx, out, outlen, params) == 1 ? 0 : -1;
	EVP_KDF_CTX_free(ctx);
	return rc;
}

int
pwhash_make(const char *password, size_t len, char *out, size_t outlen, char *err, size_t errlen)
{
	struct params pa = { .ln = DEFAULT_LN, .r = DEFAULT_R, .p = DEFAULT_P, .salt_len = SALT_LEN,
	    .key_len = KEY_LEN };
	if (len == 0 || len > PWHASH_MAX_PASSWORD) {
		snprintf(err, errlen, "a password is 1 to %d bytes", PWHASH_MAX_PASSWORD);
		return -1;
	}
	if (random_bytes(pa.salt, pa.salt_len) < 0) {
		snprintf(err, errlen, "no random bytes from the kernel");
		return -1;
	}
	if (scrypt(password, len, &pa, pa.key, pa.key_len) < 0) {
		snprintf(err, errlen, "scrypt failed (OpenSSL without the SCRYPT KDF?)");
		return -1;
	}
	char salt[32], key[64];
	base64url_encode(pa.salt, pa.salt_len, salt);
	base64url_encode(pa.key, pa.key_len, key);
	OPENSSL_cleanse(pa.key, sizeof(pa.key));
	int n = snprintf(out, outlen, "$scrypt$ln=%u,r=%u,p=%u$%s$%s", pa.ln, pa.r, pa.p, salt, key);
	OPENSSL_cleanse(key, sizeof(key));
	if (n < 0 || (size_t)n >= outlen) {
		snprintf(err, errlen, "no room for the hash");
		return -1;
	}
	return 0;
}

int
pwhash_valid(const char *hash, char *why, size_t len)
{
	struct params pa;
	return parse(hash, &pa, why, len);
}

int
pwhash_check(const char *password, size_t len, const char *hash)
{
	struct params pa;
	char why[128];
	if (parse(hash, &pa, why, sizeof(why)) < 0)
		return -1;
	if (len > PWHASH_MAX_PASSWORD)
		return 0;
	unsigned char got[64];
	if (scrypt(password, len, &pa, got, pa.key_len) < 0)
		return -1;
	int same = CRYPTO_memcmp(got, pa.key, pa.key_len) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	return same;
}

const char *
pwhash_dummy(void)
{
	return "$scrypt$ln=15,r=8,p=1$bWNwZC1uby11c2VyLXNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
}
