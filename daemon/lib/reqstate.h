/* MRTR requestState: mcpd's state for a request that needs input from
 * the client rides in the client's retry, so no instance keeps it. The
 * token is base64url(JSON) "." base64url(HMAC-SHA256(key, JSON)); the
 * JSON carries an expiry. Every instance that shares the key accepts the
 * tokens of the others; any change to a token is refused. */
#ifndef MCPD_REQSTATE_H
#define MCPD_REQSTATE_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;

#define REQSTATE_KEY_LEN 32

/* Load the key from a file (at least 32 bytes; hashed to 32), or make a
 * random one that lives as long as this mcpd. */
int reqstate_key(const char *path, unsigned char key[REQSTATE_KEY_LEN], char *err, size_t errlen);
/* Seal payload (an object; "exp" is added). Caller frees the token. */
char *reqstate_seal(const unsigned char key[REQSTATE_KEY_LEN], struct cJSON *payload,
    uint64_t ttl_ms);
/* Verify and decode; NULL with a reason when forged, malformed or expired. */
struct cJSON *reqstate_open(const unsigned char key[REQSTATE_KEY_LEN], const char *token,
    char *err, size_t errlen);
/* Hex SHA-256 of a JSON value's compact text (binds a state to a request). */
void json_digest(const struct cJSON *v, char out[65]);

#endif
