#include "sealbox.h"
#include "sigmsg.h"
#include "util.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "mcpd-enc1:"
#define MAGIC_LEN (sizeof(MAGIC) - 1)
#define NONCE 12
#define TAG 16

/* GCM over in, with aad; dir 1 seals (tag written), 0 opens (tag
 * checked). -1 on any failure. */
static int
gcm(int dir, const unsigned char key[32], const unsigned char nonce[NONCE], const char *kid,
    const char *kind, const char *name, const unsigned char *in, size_t len, unsigned char *out,
    unsigned char tag[TAG])
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n, ok = c != NULL && EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, dir) == 1 &&
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE, NULL) == 1 &&
	    EVP_CipherInit_ex(c, NULL, NULL, key, nonce, dir) == 1 &&
	    EVP_CipherUpdate(c, NULL, &n, (const unsigned char *)MAGIC, (int)MAGIC_LEN) == 1 &&
	    EVP_CipherUpdate(c, NULL, &n, (const unsigned char *)kid, (int)strlen(kid) + 1) == 1 &&
	    EVP_CipherUpdate(c, NULL, &n, (const unsigned char *)kind, (int)strlen(kind) + 1) == 1 &&
	    EVP_CipherUpdate(c, NULL, &n, (const unsigned char *)name, (int)strlen(name)) == 1 &&
	    len <= INT32_MAX && (len == 0 || EVP_CipherUpdate(c, out, &n, in, (int)len) == 1) &&
	    (dir == 1 || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG, tag) == 1) &&
	    EVP_CipherFinal_ex(c, out + len, &n) == 1 &&
	    (dir == 0 || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG, tag) == 1);
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

char *
sealbox_seal(const struct sigkeys *keys, const char *kind, const char *name,
    const void *in, size_t len, size_t *outlen)
{
	if (keys->n < 1 || len > ((size_t)1 << 30))
		return NULL;
	size_t raw = NONCE + len + TAG;
	unsigned char *box = malloc(raw);
	char *out = malloc(MAGIC_LEN + 9 + 4 * ((raw + 2) / 3) + 1);
	if (box == NULL || out == NULL || random_bytes(box, NONCE) < 0 ||
	    gcm(1, keys->key[0], box, keys->id[0], kind, name, in, len, box + NONCE,
	    box + NONCE + len) < 0) {
		free(box);
		free(out);
		return NULL;
	}
	memcpy(out, MAGIC, MAGIC_LEN);
	memcpy(out + MAGIC_LEN, keys->id[0], 8);
	out[MAGIC_LEN + 8] = ':';
	size_t n = MAGIC_LEN + 9 + base64url_encode(box, raw, out + MAGIC_LEN + 9);
	out[n] = '\0';
	free(box);
	*outlen = n;
	return out;
}

enum sealbox_result
sealbox_open(const struct sigkeys *keys, const char *kind, const char *name,
    const void *in, size_t len, void **out, size_t *outlen, char kid[9])
{
	const char *s = in;
	if (len < MAGIC_LEN || memcmp(s, MAGIC, MAGIC_LEN) != 0)
		return SEALBOX_CLEAR;
	if (len < MAGIC_LEN + 9 || s[MAGIC_LEN + 8] != ':')
		return SEALBOX_BAD;
	memcpy(kid, s + MAGIC_LEN, 8);
	kid[8] = '\0';
	int k = -1;
	for (int i = 0; i < keys->n && k < 0; i++)
		if (strcmp(keys->id[i], kid) == 0)
			k = i;
	if (k < 0)
		return SEALBOX_UNKNOWN_KEY;
	const char *b64 = s + MAGIC_LEN + 9;
	size_t blen = len - MAGIC_LEN - 9, raw;
	unsigned char *box = malloc(3 * (blen / 4) + 3);
	if (box == NULL)
		return SEALBOX_BAD;
	if (base64_decode(b64, blen, box, &raw) < 0 || raw < NONCE + TAG) {
		free(box);
		return SEALBOX_BAD;
	}
	size_t plen = raw - NONCE - TAG;
	unsigned char *plain = malloc(plen + 1);
	if (plain == NULL || gcm(0, keys->key[k], box, kid, kind, name, box + NONCE, plen, plain,
	    box + NONCE + plen) < 0) {
		free(box);
		free(plain);
		return SEALBOX_BAD;
	}
	free(box);
	plain[plen] = '\0';
	*out = plain;
	*outlen = plen;
	return SEALBOX_OK;
}
