/* Secret keys read from files named in mcpd.yaml (transport signing,
 * storage encryption, keyed hashes of ids). A file holds 32 to 4096
 * bytes of secret (e.g. `openssl rand -hex 32`); trailing blanks and
 * newlines are not part of it. The key used is SHA-256 over a label and
 * the secret, so that one file given for two purposes yields two keys. */
#ifndef MCPD_KEYFILE_H
#define MCPD_KEYFILE_H

#include <stddef.h>

#define KEYFILE_LEN 32
#define KEYFILE_MIN 32
#define KEYFILE_MAX 4096

/* Read a small file whole into buf (at most cap bytes; *len == cap
 * means it may hold more), trailing blanks and newlines left out. It
 * must be a regular file; secret: not readable by others nor writable
 * by its group either. -1 with a message in err. */
int keyfile_load(const char *path, int secret, unsigned char *buf, size_t cap, size_t *len,
    char *err, size_t errlen);
/* Read path, check it (a regular file, not readable by others nor
 * writable by its group, 32 to 4096 bytes) and derive the key for
 * label. -1 with a message in err. */
int keyfile_read(const char *path, const char *label, unsigned char key[KEYFILE_LEN],
    char *err, size_t errlen);
/* The key for label from a secret of n bytes (KEYFILE_MIN to
 * KEYFILE_MAX, checked by the caller) got another way (a KMS). */
int keyfile_derive(const unsigned char *secret, size_t n, const char *label, unsigned char key[KEYFILE_LEN]);
/* A short public name of a key (8 hex digits and a NUL), stored or sent
 * beside what the key protects so that the reader knows which key to use. */
void keyfile_id(const unsigned char key[KEYFILE_LEN], char id[9]);

#endif
