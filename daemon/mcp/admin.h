/* Operators' endpoint: list and revoke a principal's sessions. Served
 * only with auth, to tokens that hold the admin scope. */
#ifndef MCPD_ADMIN_H
#define MCPD_ADMIN_H

struct auth;
struct config;
struct http_request;
struct http_server;
struct sessions;

struct admin;

/* NULL and no routes without auth; *failed set if the routes cannot be added. */
struct admin *admin_new(struct http_server *http, struct auth *auth, struct sessions *sessions,
    const struct config *cfg, int *failed);
void admin_free(struct admin *a);
/* Answer a scrape of /metrics (the caller has decided who may). */
void admin_metrics_respond(struct http_request *r, const struct config *cfg);

#endif
