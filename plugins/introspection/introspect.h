/*
 * The checking half of the introspection auth plugin: an RFC 7662
 * introspection answer (JSON) judged against a policy. No I/O and no
 * mcpd host here, so that tests/unit/check_introspection.c tests it as it
 * is. Internal to the plugin: not part of mcpd's ABI.
 */
#ifndef MCPD_INTROSPECT_H
#define MCPD_INTROSPECT_H

#include <stddef.h>
#include <stdint.h>

#define INTROSPECT_MAX_DEPTH 16     /* nesting of an answer */
#define INTROSPECT_MAX_STRING 255   /* a user or client name taken from an answer */
#define INTROSPECT_MAX_MEMBERS 256  /* of an answer's object */

enum introspect_result {
	INTROSPECT_OK = 0,
	INTROSPECT_DENIED = 1,          /* the token is not valid (inactive, expired, elsewhere's) */
	INTROSPECT_BAD_ANSWER = 2,      /* the answer is not an RFC 7662 one: the endpoint's fault */
};

/* What an active token's answer must say, and where the user is read. */
struct introspect_policy {
	const char *issuer;                 /* iss must equal it; NULL: not checked */
	const char *const *audiences;       /* aud (string or array) must hold one; none: not checked */
	size_t naudiences;
	int audience_required;              /* an answer without aud is refused */
	int64_t skew;                       /* seconds of leeway for exp and nbf */
	const char *const *user_claims;     /* the first present names the user */
	size_t nuser_claims;
	const char *const *required_scopes;
	size_t nrequired_scopes;
};

/* An active token's principal; free with introspect_principal_clear. */
struct introspect_principal {
	char *user;
	char *client_id;                    /* client_id, or NULL */
	char *scopes;                       /* scope, space-separated, maybe "" */
	int64_t expires_at;                 /* exp, or 0 when the answer has none */
};

/* Judges an answer (len bytes of JSON) at Unix time now. INTROSPECT_OK
 * fills out; otherwise err says why, without quoting the token. */
enum introspect_result introspect_check(const struct introspect_policy *p, const char *json, size_t len,
    int64_t now, struct introspect_principal *out, char *err, size_t errlen);
void introspect_principal_clear(struct introspect_principal *pr);

/* The "error" member of an OAuth error answer (RFC 6749 5.2), copied
 * into buf ("" when there is none). */
void introspect_oauth_error(const char *json, size_t len, char *buf, size_t buflen);

#endif
