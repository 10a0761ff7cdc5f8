/*
 * Base64 (RFC 4648) for the cloud plugins: bytes carried in JSON (DynamoDB's
 * B, Firestore's bytesValue, Cosmos DB's items, Pub/Sub's data, SQS bodies)
 * and base64url without padding (ids, a JWT's parts). Built into the plugins
 * that use it.
 */
#ifndef MCPD_COMMON_B64_H
#define MCPD_COMMON_B64_H

#include <stddef.h>

/* len bytes as padded base64 (malloc'ed), or NULL (out of memory). */
char *b64_encode(const void *data, size_t len);

/* len bytes as base64url without padding (malloc'ed), or NULL. */
char *b64url_encode(const void *data, size_t len);

/* Padded base64 text into bytes (malloc'ed, *len; one spare byte after
 * them), or NULL: out of memory, a length not a multiple of 4, or a
 * character outside the alphabet. */
unsigned char *b64_decode(const char *s, size_t *len);

#endif
