/* The checks every endpoint a browser can reach shares: the Host header
 * against allowed_hosts (DNS rebinding), the Origin against
 * allowed_origins, and the CORS headers of an answer to an allowed
 * origin. The MCP endpoint, the resource server's metadata, the internal
 * authorization server and /admin use them; each answers a refusal in
 * its own format. */
#ifndef MCPD_GUARD_H
#define MCPD_GUARD_H

struct config;
struct http_request;

/* Is this Host header one that allowed_hosts lets in? (Any, when the
 * configuration has no allowed_hosts.) */
int guard_host_allowed(const struct config *c, const char *host);
/* Does allowed_origins admit this Origin? Entries are "*", or patterns
 * where * matches any run (case-insensitive); "http://localhost:*" also
 * admits the origin without a port. */
int guard_origin_allowed(const struct config *c, const char *origin);
/* The CORS headers of r's answer, when r's Origin is allowed. */
void guard_cors(const struct config *c, struct http_request *r);

#endif
