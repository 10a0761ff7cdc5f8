/*
 * The checking half of the jwt auth plugin: a JWKS turned into OpenSSL
 * keys, a compact JWS checked against them, its claims against a policy.
 * No I/O and no mcpd host here, so that tests/unit/check_jwt.c tests it
 * as it is. Internal to the plugin: not part of mcpd's ABI.
 */
#ifndef MCPD_JWT_H
#define MCPD_JWT_H

#include <stddef.h>
#include <stdint.h>

#define JWT_MAX_TOKEN 16384     /* bytes of a compact token */
#define JWT_MAX_DEPTH 16        /* nesting of any JSON read (tokens, JWKS, discovery) */
#define JWT_MAX_KEYS 100        /* keys read from one JWKS */
#define JWT_MAX_STRING 255      /* a user or client name taken from a token */

/* Signature algorithms (JWA names) that can be allowed. */
enum jwt_alg {
	JWT_RS256, JWT_RS384, JWT_RS512,
	JWT_PS256, JWT_PS384, JWT_PS512,
	JWT_ES256, JWT_ES384,
	JWT_EDDSA, JWT_ED25519,
	JWT_NALGS
};
#define JWT_ALG_BIT(a) (1u << (a))
/* RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA */
#define JWT_DEFAULT_ALGS (JWT_ALG_BIT(JWT_ED25519) - 1u)

const char *jwt_alg_name(enum jwt_alg a);
/* The alg of a name, or -1; *why says why a known name is refused. */
int jwt_alg_parse(const char *name, const char **why);

enum jwt_result {
	JWT_OK = 0,
	JWT_DENIED = 1,             /* the token is not valid: err says why */
	JWT_UNKNOWN_KEY = 2,        /* its kid is not in the key set: refetch, maybe */
};

struct jwt_keyset;

/* A JWK Set document into keys. Keys that cannot sign a JWS with an
 * algorithm known here (encryption keys, other curves, short RSA) are
 * skipped; a set with none left is an error. NULL and err on error. */
struct jwt_keyset *jwt_keyset_parse(const char *json, size_t len, char *err, size_t errlen);
size_t jwt_keyset_count(const struct jwt_keyset *ks);
void jwt_keyset_free(struct jwt_keyset *ks);

/* A claim name that must hold a string value. */
struct jwt_claim_value {
	const char *name, *value;
};

/* What a token must satisfy, and where its principal is read from. */
struct jwt_policy {
	const char *issuer;                 /* iss must equal it */
	const char *const *audiences;       /* audience_claim must hold one of them */
	size_t naudiences;
	const char *audience_claim;         /* "aud" (string or array), or a string claim */
	unsigned algs;                      /* JWT_ALG_BIT()s allowed */
	int64_t skew;                       /* seconds of leeway for exp and nbf */
	const char *const *user_claims;     /* the first present names the user */
	size_t nuser_claims;
	const char *const *client_claims;   /* the first present names the client */
	size_t nclient_claims;
	const char *const *scope_claims;    /* all give scopes: a space-separated string or an array */
	size_t nscope_claims;
	const struct jwt_claim_value *required_claims;
	size_t nrequired_claims;
	const char *const *required_scopes;
	size_t nrequired_scopes;
};

/* A valid token's principal; free with jwt_principal_clear. */
struct jwt_principal {
	char *user;
	char *client_id;                    /* or NULL */
	char *scopes;                       /* space-separated, maybe "" */
	int64_t expires_at;                 /* exp */
};

/* Checks token (NUL-terminated) at Unix time now. JWT_OK fills out;
 * otherwise err says what is wrong, without quoting the token. */
enum jwt_result jwt_verify(const struct jwt_policy *p, const struct jwt_keyset *ks, const char *token,
    int64_t now, struct jwt_principal *out, char *err, size_t errlen);
void jwt_principal_clear(struct jwt_principal *pr);

/* The jwks_uri of an OpenID Connect or RFC 8414 discovery document,
 * whose issuer must be the one given. NULL and err on error. */
char *jwt_discovery_jwks_uri(const char *json, size_t len, const char *issuer, char *err, size_t errlen);

/* base64url into out (at most cap bytes); padding is refused unless
 * allow_pad, and so are bits left over that are not zero. 0 or -1. */
int jwt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap, size_t *outlen,
    int allow_pad);

/* snprintf into an error buffer. */
void jwt_say(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Is the JSON text nested at most max_depth deep? (checked before it is
 * parsed, so that no parser recurses deeper) */
int jwt_json_depth_ok(const char *s, size_t len, int max_depth);

#endif
