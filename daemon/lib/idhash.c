#include "idhash.h"
#include "util.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

static unsigned char key[32];
static int keyed;

void
idhash_set_key(const unsigned char k[32])
{
	if (k == NULL) {
		keyed = 0;
		return;
	}
	memcpy(key, k, sizeof(key));
	keyed = 1;
}

const char *
idhash(const char *id, char out[IDHASH_LEN + 1])
{
	static const char fixed[] = "mcpd id hash: no hash_key_file";
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	char b64[32];
	if (HMAC(EVP_sha256(), keyed ? (const void *)key : fixed, keyed ? (int)sizeof(key) : (int)sizeof(fixed) - 1,
	    (const unsigned char *)id, strlen(id), mac, &len) == NULL)
		memset(mac, 0, 18);
	base64url_encode(mac, 18, b64);
	memcpy(out, b64, IDHASH_LEN);
	out[IDHASH_LEN] = '\0';
	return out;
}
