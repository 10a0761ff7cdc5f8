/* A new API key for the apikey auth plugin: "mcpd_" and 256 random bits
 * in base64url, and the SHA-256 the plugin's keys_file keeps of it. */
#ifndef MCPD_APIKEYGEN_H
#define MCPD_APIKEYGEN_H

#include <stddef.h>

#define APIKEY_LEN 48           /* "mcpd_" and 43 characters */
#define APIKEY_HASH_HEX 64

/* key needs APIKEY_LEN + 1 bytes, hex APIKEY_HASH_HEX + 1. 0, or -1 when
 * the kernel gives no random bytes. */
int apikey_generate(char *key, size_t keylen, char *hex, size_t hexlen);

#endif
