/*
 * The Authorization header of the Cosmos DB REST API (Microsoft's "Access
 * control in the Azure Cosmos DB SQL API"): with the account key, an
 * HMAC-SHA256 over the verb, the resource type, the resource link and
 * the x-ms-date, keyed with the decoded key; with an Entra ID token, the
 * token itself. Both URL-encoded as "type=...&ver=1.0&sig=...". No host
 * in here: unit-tested as it is.
 */
#ifndef MCPD_COSMOS_SIG_H
#define MCPD_COSMOS_SIG_H

#include <stddef.h>
#include <time.h>

#define COSMOS_KEY_MAX 128          /* bytes of a decoded account key (64 today) */

/* t as an RFC 1123 date for x-ms-date ("Thu, 27 Apr 2017 00:51:12 GMT"). */
void cosmos_date(time_t t, char out[32]);

/* The base64 account key (blanks around it ignored) into key. 0, or -1. */
int cosmos_key_decode(const char *text, unsigned char *key, size_t *keylen);

/* The header's value for the account key: verb (GET, POST...), rtype
 * (dbs, colls, docs), rlink (dbs/d/colls/c/docs/id, as named, not
 * URL-encoded), date as sent in x-ms-date. 0, or -1 (out too small). */
int cosmos_auth_master(const unsigned char *key, size_t keylen, const char *verb, const char *rtype,
    const char *rlink, const char *date, char *out, size_t len);

/* The header's value for an Entra ID token. 0, or -1. */
int cosmos_auth_aad(const char *token, char *out, size_t len);

/* s encoded as a URI component (all but A-Z a-z 0-9 - _ . ~) into out.
 * Its length, or -1 when it does not fit. */
int cosmos_uri_encode(const char *s, size_t n, char *out, size_t len);

#endif
