/* The MCP endpoint as an OAuth protected resource: bearer tokens checked
 * by the auth plugin (cached per worker), 401/403 with WWW-Authenticate,
 * and the protected resource metadata (RFC 9728). */
#ifndef MCPD_AUTH_H
#define MCPD_AUTH_H

#include <stddef.h>

struct config;
struct event_base;
struct http_request;
struct http_server;
struct cJSON;

struct principal {
	const char *user;
	const char *client_id;          /* NULL if none */
	const char *scopes;             /* space-separated, "" if none */
};

struct auth;

/* NULL when the configuration has no auth (then every request passes).
 * cors sets the CORS headers of an answer (so that a browser client can
 * read a 401's WWW-Authenticate). */
struct auth *auth_new(struct event_base *base, const struct config *c,
    void (*cors)(struct http_request *r));
void auth_free(struct auth *a);
/* Serves the metadata documents under /.well-known/. */
int auth_routes(struct auth *a, struct http_server *http);

typedef void (*auth_go_fn)(struct http_request *r, void *arg);
/* Checks r's bearer token. On success the principal is set on r (see
 * auth_principal) and go runs, maybe later; otherwise r is answered
 * (401, or 503 when the plugin cannot tell now) and go never runs. */
void auth_check(struct auth *a, struct http_request *r, auth_go_fn go, void *arg);
/* The request's principal, or NULL without auth. */
const struct principal *auth_principal(const struct http_request *r);
/* Does p hold every scope of needed (space-separated)? */
int auth_has_scopes(const struct principal *p, const char *needed);
/* Sets the WWW-Authenticate header of a 403 for scopes a call lacks. */
void auth_insufficient_scope(struct auth *a, struct http_request *r, const char *needed);

#endif
