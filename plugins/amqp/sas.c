/* Service Bus shared access signatures: HMAC-SHA256 of the encoded
 * resource URI and the expiry, with the key's text as the key. */
#include "sas.h"


#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *
sas_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = malloc(3 * n + 1), *o = out;
	if (out == NULL)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '_' || *p == '.' || *p == '~') {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

char *
sas_token(const char *uri, const char *key_name, const char *key, uint64_t expiry)
{
	char *sr = sas_encode(uri), *sig = NULL, *token = NULL, *to_sign = NULL;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
	if (sr == NULL || asprintf(&to_sign, "%s\n%llu", sr, (unsigned long long)expiry) < 0) {
		to_sign = NULL;
		goto done;
	}
	if (HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)to_sign, strlen(to_sign), mac,
	    &maclen) == NULL)
		goto done;
	EVP_EncodeBlock(b64, mac, (int)maclen);
	if ((sig = sas_encode((const char *)b64)) == NULL)
		goto done;
	if (asprintf(&token, "SharedAccessSignature sr=%s&sig=%s&se=%llu&skn=%s", sr, sig,
	    (unsigned long long)expiry, key_name) < 0)
		token = NULL;
done:
	free(sr);
	free(sig);
	free(to_sign);
	return token;
}
