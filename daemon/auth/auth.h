/* daemon/auth/: authorization. auth (this file) is the resource
 * server's half, which the MCP endpoint calls before a request goes on;
 * oauth.c and the oauth_*.c files are the internal authorization server
 * (oauth.h), with its own routes. It uses http/, core/ and lib/; mcp/
 * creates it and asks it.
 *
 * auth: the MCP endpoint as an OAuth protected resource: bearer tokens
 * checked by the auth plugin (cached per worker), 401/403 with
 * WWW-Authenticate, and the protected resource metadata (RFC 9728). */
#ifndef MCPD_AUTH_H
#define MCPD_AUTH_H

#include <stddef.h>

struct config;
struct event_base;
struct http_request;
struct http_server;
struct cJSON;
struct mcpd_principal;

struct principal {
	const char *user;
	const char *client_id;          /* NULL if none */
	const char *scopes;             /* space-separated, "" if none */
};

struct auth;

/* NULL when the configuration has no auth (then every request passes).
 * Its answers carry the CORS headers (guard_cors), so that a browser
 * client can read a 401's WWW-Authenticate. */
struct auth *auth_new(struct event_base *base, const struct config *c);
void auth_free(struct auth *a);
/* Serves the metadata documents under /.well-known/. */
int auth_routes(struct auth *a, struct http_server *http);

typedef void (*auth_go_fn)(struct http_request *r, void *arg);
/* Checks r's bearer token. On success the principal is set on r (see
 * auth_principal) and go runs, maybe later; otherwise r is answered
 * (401, or 503 when the plugin cannot tell now) and go never runs. */
void auth_check(struct auth *a, struct http_request *r, auth_go_fn go, void *arg);
/* fn runs for each request answered 401 (no token, or one not valid),
 * before the answer: what the endpoint counts per client address. */
void auth_on_refused(struct auth *a, void (*fn)(struct http_request *, void *), void *arg);
/* The request's principal, or NULL without auth. */
const struct principal *auth_principal(const struct http_request *r);
/* Does p hold every scope of needed (space-separated)? */
int auth_has_scopes(const struct principal *p, const char *needed);
/* Sets the WWW-Authenticate header of a 403 for scopes a call lacks. */
void auth_insufficient_scope(struct auth *a, struct http_request *r, const char *needed);

/* The resource's URL (auth.resource, or this request's scheme, Host and
 * endpoint), and with the internal authorization server its issuer
 * (auth.issuer, or the resource's origin); NULL without one. */
const char *auth_resource_url(struct auth *a, struct http_request *r);
const char *auth_issuer(struct auth *a, struct http_request *r);

/* The internal authorization server (oauth.c) checks its own tokens in
 * place of a plugin: like mcpd_auth_ops.authenticate, told the resource
 * the request is for (its tokens are bound to one), and answering with
 * the grant the token belongs to, so that revoking the grant evicts the
 * token from the cache. */
typedef void auth_checked_fn(void *arg, int status, const struct mcpd_principal *p,
    const char *grant, const char *err);
typedef void auth_validate_fn(void *inst, const char *token, size_t len, const char *resource,
    auth_checked_fn *cb, void *arg);
void auth_set_validator(struct auth *a, auth_validate_fn *fn, void *inst);
/* Forget cached tokens: those of a grant, or the one with this SHA-256. */
void auth_evict_grant(struct auth *a, const char *grant);
void auth_evict_token(struct auth *a, const unsigned char hash[32]);

#endif
