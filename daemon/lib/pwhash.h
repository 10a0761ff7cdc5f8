/* Password hashes for the internal authorization server's users file:
 * scrypt (RFC 7914) through OpenSSL's EVP_KDF, with its parameters in the
 * string so that they can be raised without breaking old lines:
 *
 *   $scrypt$ln=15,r=8,p=1$<salt>$<key>       (base64url, no padding)
 *
 * ln is log2 of N. A check is CPU- and memory-heavy (32 MiB, tens of
 * milliseconds at the defaults): a worker runs it off its event loop
 * (offload.h). */
#ifndef MCPD_PWHASH_H
#define MCPD_PWHASH_H

#include <stddef.h>

#define PWHASH_MAX 256          /* longest hash string we write or accept */
#define PWHASH_MAX_PASSWORD 1024

/* A new hash of password into out. 0, or -1 and why. */
int pwhash_make(const char *password, size_t len, char *out, size_t outlen, char *err, size_t errlen);
/* Is hash well formed, with parameters mcpd accepts? 0, or -1 and why. */
int pwhash_valid(const char *hash, char *why, size_t len);
/* 1 when password matches (compared in constant time), 0 when it does
 * not, -1 when hash is malformed or scrypt fails. */
int pwhash_check(const char *password, size_t len, const char *hash);
/* A well-formed hash that no password matches, with the default cost:
 * checked for unknown users so that their answer takes as long. */
const char *pwhash_dummy(void);

#endif
