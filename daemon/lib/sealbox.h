/* Values sealed for storage (storage: { encrypt_key_file: ... }):
 * AES-256-GCM, as text so that every storage plugin keeps it as it is:
 *
 *   mcpd-enc1:<key id>:<base64url(nonce 12 | ciphertext | tag 16)>
 *
 * The key id says which key opens it (a rotation reads old values with
 * the old key and writes new ones with the new). The additional data
 * binds the key id, what the value is (a value, a log entry) and the
 * storage key or log name: a value copied under another key does not
 * open. */
#ifndef MCPD_SEALBOX_H
#define MCPD_SEALBOX_H

#include <stddef.h>

struct sigkeys;

enum sealbox_result {
	SEALBOX_OK,
	SEALBOX_CLEAR,          /* not sealed at all (written without encryption) */
	SEALBOX_UNKNOWN_KEY,    /* sealed with a key not configured */
	SEALBOX_BAD,            /* altered, cut, or sealed for another name */
};

/* kind: "v" (a value) or "l" (a log entry); name: the key or log. The
 * sealed text (malloc'd, *outlen bytes and a NUL), or NULL. Seals with
 * keys->key[0]. */
char *sealbox_seal(const struct sigkeys *keys, const char *kind, const char *name,
    const void *in, size_t len, size_t *outlen);
/* SEALBOX_OK with *out (malloc'd, *outlen bytes and a NUL); else why
 * not, and the key id in kid when it is SEALBOX_UNKNOWN_KEY. */
enum sealbox_result sealbox_open(const struct sigkeys *keys, const char *kind, const char *name,
    const void *in, size_t len, void **out, size_t *outlen, char kid[9]);

#endif
