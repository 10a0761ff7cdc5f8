/* The OAuth 2.1 authorization server built into mcpd (auth: { plugin:
 * internal }): RFC 8414 metadata, RFC 7591 registration, the
 * authorization endpoint with its sign-in and consent page (PKCE S256
 * required), the token endpoint (authorization codes, rotating refresh
 * tokens), RFC 7009 revocation and RFC 7662 introspection. It lives in
 * the daemon rather than in a plugin because it serves HTTP routes and
 * keeps its state in the storage plugin, shared by every worker and
 * instance; it checks its access tokens for auth.c in place of a plugin.
 * One per worker. */
#ifndef MCPD_OAUTH_H
#define MCPD_OAUTH_H

struct auth;
struct backends;
struct config;
struct event_base;
struct http_server;
struct oauth;

/* NULL and *failed = 0 when the configuration has no internal
 * authorization server. */
struct oauth *oauth_new(struct event_base *base, const struct config *cfg, struct http_server *http,
    const struct backends *b, struct auth *auth, int *failed);
void oauth_free(struct oauth *o);

#endif
