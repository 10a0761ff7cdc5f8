/* Secret ids (session ids) as they appear in storage keys and transport
 * channel names: a keyed hash, so that whoever reads the backend's keys
 * or channels learns no id a client could use. HMAC-SHA256 with the
 * deployment's key (storage.hash_key_file), cut to 144 bits, base64url:
 * 24 characters. Without a key, a fixed one: the ids, 128 random bits,
 * still cannot be found from their hashes, but anyone who holds an id
 * can find its keys. Every instance sharing a backend needs the same key. */
#ifndef MCPD_IDHASH_H
#define MCPD_IDHASH_H

#include <stddef.h>

#define IDHASH_LEN 24

/* For this process (a worker, before it serves); NULL: the fixed key. */
void idhash_set_key(const unsigned char key[32]);
/* The hash of id, in out (IDHASH_LEN + 1 bytes); returns out. */
const char *idhash(const char *id, char out[IDHASH_LEN + 1]);
/* The whole HMAC-SHA256 of s (len bytes) with the same key: for OAuth's
 * codes and tokens, named in storage and revocations by its 64 hex
 * digits (idhash_hex), and the auth cache's key of a bearer token. */
void idhash_mac(const char *s, size_t len, unsigned char out[32]);
void idhash_hex(const char *s, size_t len, char out[65]);

#endif
