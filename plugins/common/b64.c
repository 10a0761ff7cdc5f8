#include "b64.h"

#include <openssl/evp.h>

#include <stdlib.h>
#include <string.h>

char *
b64_encode(const void *data, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);
	if (out != NULL)
		EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

char *
b64url_encode(const void *data, size_t len)
{
	char *out = b64_encode(data, len);
	if (out == NULL)
		return NULL;
	char *p = out;
	for (; *p && *p != '='; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	*p = '\0';
	return out;
}

unsigned char *
b64_decode(const char *s, size_t *len)
{
	size_t n = strlen(s);
	if (n % 4 != 0)
		return NULL;
	unsigned char *out = malloc(n / 4 * 3 + 1);
	if (out == NULL)
		return NULL;
	/* EVP_DecodeBlock counts the bytes the padding stands for too. */
	int m = n ? EVP_DecodeBlock(out, (const unsigned char *)s, (int)n) : 0;
	if (m < 0) {
		free(out);
		return NULL;
	}
	size_t pad = n >= 1 && s[n - 1] == '=' ? (n >= 2 && s[n - 2] == '=' ? 2 : 1) : 0;
	*len = (size_t)m - pad;
	return out;
}
