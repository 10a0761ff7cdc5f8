#include "idhash.h"
#include "util.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <string.h>

static const char fixed[] = "mcpd id hash: no hash_key_file";
static unsigned char key[32];
static int keyed;

/* HMAC() looks the MAC and the digest up by name, under a lock, on every
 * call: several times the cost of the hash of a short id, on every
 * request of a session. The key is set once per process: the context
 * is keyed once and re-initialised with that key for each id. */
static EVP_MAC *mac;
static EVP_MAC_CTX *mctx;

void
idhash_set_key(const unsigned char k[32])
{
	EVP_MAC_CTX_free(mctx);
	mctx = NULL;
	if (k == NULL) {
		keyed = 0;
		return;
	}
	memcpy(key, k, sizeof(key));
	keyed = 1;
}

/* The keyed context, made on first use; NULL when OpenSSL cannot (then
 * HMAC() does the work). */
static EVP_MAC_CTX *
keyed_ctx(void)
{
	if (mctx != NULL)
		return mctx;
	if (mac == NULL && (mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
		return NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	if ((mctx = EVP_MAC_CTX_new(mac)) == NULL)
		return NULL;
	if (!EVP_MAC_init(mctx, keyed ? key : (const unsigned char *)fixed,
	    keyed ? sizeof(key) : sizeof(fixed) - 1, params)) {
		EVP_MAC_CTX_free(mctx);
		mctx = NULL;
	}
	return mctx;
}

void
idhash_mac(const char *s, size_t slen, unsigned char out[32])
{
	unsigned char m[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	size_t mlen = 0;
	EVP_MAC_CTX *ctx = keyed_ctx();
	int ok = ctx != NULL && EVP_MAC_init(ctx, NULL, 0, NULL) &&
	    EVP_MAC_update(ctx, (const unsigned char *)s, slen) &&
	    EVP_MAC_final(ctx, m, &mlen, sizeof(m)) && mlen == 32;
	if (!ok && HMAC(EVP_sha256(), keyed ? (const void *)key : fixed,
	    keyed ? (int)sizeof(key) : (int)sizeof(fixed) - 1,
	    (const unsigned char *)s, slen, m, &len) == NULL)
		memset(m, 0, 32);
	memcpy(out, m, 32);
}

void
idhash_hex(const char *s, size_t len, char out[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char m[32];
	idhash_mac(s, len, m);
	for (int i = 0; i < 32; i++) {
		out[2 * i] = digits[m[i] >> 4];
		out[2 * i + 1] = digits[m[i] & 15];
	}
	out[64] = '\0';
}

const char *
idhash(const char *id, char out[IDHASH_LEN + 1])
{
	unsigned char m[32];
	char b64[32];
	idhash_mac(id, strlen(id), m);
	base64url_encode(m, 18, b64);
	memcpy(out, b64, IDHASH_LEN);
	out[IDHASH_LEN] = '\0';
	return out;
}
