#include "apikeygen.h"
#include "util.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

int
apikey_generate(char *key, size_t keylen, char *hex, size_t hexlen)
{
	char token[64];
	if (keylen < APIKEY_LEN + 1 || hexlen < APIKEY_HASH_HEX + 1)
		return -1;
	if (random_token(token, 32) < 0)        /* 256 random bits */
		return -1;
	snprintf(key, keylen, "mcpd_%s", token);
	unsigned char h[32];
	unsigned int n = 32;
	if (EVP_Digest(key, strlen(key), h, &n, EVP_sha256(), NULL) != 1)
		return -1;
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", h[i]);
	return 0;
}
