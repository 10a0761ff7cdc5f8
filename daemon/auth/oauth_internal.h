/* Shared by the files of the internal authorization server: oauth.c
 * (routes, metadata, the token validator, helpers), oauth_client.c
 * (registration and client lookup), oauth_authorize.c (the authorization
 * endpoint), oauth_page.c (its HTML), oauth_token.c (token, revocation,
 * introspection).
 *
 * Storage keys (values are JSON; secrets appear only as SHA-256 hex):
 *   oauth:client:<client_id>     a registered client        TTL client_ttl
 *   oauth:req:<sha256(id)>       a pending sign-in          TTL login_ttl
 *   oauth:code:<sha256(code)>    an authorization code      TTL 10 min (valid code_ttl)
 *   oauth:code-used:<sha256>     the code was redeemed      same TTL
 *   oauth:grant:<id>             what the user allowed      TTL refresh_ttl from the sign-in
 *   oauth:at:<sha256(token)>     an access token            TTL token_ttl (at most the grant's)
 *   oauth:rt:<sha256(token)>     a refresh token            TTL the grant's
 *   oauth:rt-used:<sha256>       the refresh token was used TTL its remaining life
 *   oauth:cimd:<sha256(url)>     a client metadata document TTL client_metadata_cache
 *   oauth:rate:<kind>:<addr>:<minute>   a rate counter      TTL 2 min
 * A token is valid while its record exists and its grant exists and is
 * not a tombstone ({"revoked":true}): revoking the grant revokes every
 * token issued under it. Revocations are published on the transport
 * channel mcpd:oauth so that every worker drops them from its cache of
 * checked tokens. */
#ifndef MCPD_OAUTH_INTERNAL_H
#define MCPD_OAUTH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "plugin.h"

struct arena;
struct auth;
struct cJSON;
struct config;
struct form;
struct http_request;
struct http_server;
struct offload;
struct oauth_conf;
struct oauth_user;

#define OAUTH_MAX_FORM 8192             /* form bodies */
#define OAUTH_MAX_JSON 16384            /* registration bodies */
#define OAUTH_MAX_PARAM 2048            /* one form or query value */
#define OAUTH_MAX_URI 1024              /* a redirect URI */
#define OAUTH_MAX_REDIRECTS 8
#define OAUTH_MAX_STATE 1024
#define OAUTH_MAX_SCOPE 1024
#define OAUTH_MAX_NAME 200              /* client_name */
#define OAUTH_CODE_KEEP_MS 600000       /* a used code is remembered this long */
#define OAUTH_AT_PREFIX "mcpd_at_"
#define OAUTH_RT_PREFIX "mcpd_rt_"
#define OAUTH_CODE_PREFIX "mcpd_ac_"

struct oauth {
	struct event_base *base;
	const struct config *cfg;
	const struct oauth_conf *oc;
	struct backends b;
	struct auth *auth;
	struct offload *offload;        /* password checks */
	void *revoke_sub;
	struct cimd *cimd;              /* client ID metadata documents, or NULL */
};

/* A registered client, as stored. */
struct oclient {
	const char *id;
	const char *name;               /* "" if none */
	const char *method;             /* none, client_secret_basic, client_secret_post */
	const char *secret_sha256;      /* hex, or NULL for public clients */
	const char **redirect_uris;
	size_t nredirect;
	const char *scope;              /* what it may ask for, or NULL: anything */
	int refresh;                    /* may use refresh_token */
	int document;                   /* from a client ID metadata document */
};

/* One HTTP request to an OAuth endpoint, outliving the connection if the
 * client leaves while storage or a password check works (then r is NULL
 * and the next step frees it). Endpoints embed it first in their own
 * struct. Each asynchronous step is the last thing its caller does. */
struct oreq {
	struct oauth *o;
	struct http_request *r;
	struct arena *ar;
	void (*free_fn)(struct oreq *q);        /* cleanup of the embedding struct, or NULL */
	void (*value_next)(struct oreq *q, int status, struct cJSON *value);
	void (*done_next)(struct oreq *q, int status);
	void (*int_next)(struct oreq *q, int status, int64_t value);
	void (*client_next)(struct oreq *q, const struct oclient *c);
	const char *client_error;       /* why client lookup failed */
	const char *client_raw;         /* the client's record as found, to renew it */
	int client_status;
	struct oreq_rate *rate;         /* oreq_rate's state */
	struct oreq_cauth *cauth;       /* oreq_client_auth's state */
	const char *cimd_url;           /* the document being looked up */
	char addr[64];                  /* the client's address, for rate limits */
};

/* oauth.c */
struct oreq *oreq_new(struct oauth *o, struct http_request *r, size_t size);
/* The start of a POST endpoint that browsers may call (register, token,
 * revoke, introspect): Host check, CORS preflight, 405 for another
 * method (Allow: methods), then oreq_new. NULL when r was answered. */
struct oreq *oreq_new_post(struct oauth *o, struct http_request *r, const char *methods, size_t size,
    void (*free_fn)(struct oreq *q));
void oreq_free(struct oreq *q);
/* Storage with JSON values; next gets MCPD_OK with the value (freed after
 * next returns), or MCPD_NOT_FOUND, or MCPD_ERROR. */
void oreq_get(struct oreq *q, const char *key, void (*next)(struct oreq *, int, struct cJSON *));
void oreq_set(struct oreq *q, const char *key, const struct cJSON *value, uint64_t ttl_ms, unsigned flags,
    void (*next)(struct oreq *, int));
void oreq_del(struct oreq *q, const char *key, void (*next)(struct oreq *, int));
/* Counts a request of kind from this address in this minute; next runs
 * when the count is within limit (0: no limit); otherwise 429 with
 * Retry-After, as JSON or (html) a page. */
void oreq_rate(struct oreq *q, const char *kind, uint64_t limit, int html, void (*next)(struct oreq *));
/* Answers and frees q. */
void oreq_json(struct oreq *q, int status, struct cJSON *body);
void oreq_error(struct oreq *q, int status, const char *error, const char *description);
void oreq_html(struct oreq *q, int status, const char *html);
void oreq_redirect(struct oreq *q, const char *location);
/* 503 when storage fails. */
void oreq_storage_error(struct oreq *q, const char *what);
/* Delete a grant: every token issued under it stops working everywhere. */
/* Revocations reach the caches (this worker's, then the others' through
 * the transport) once storage has them; done(arg), if not NULL, then. */
void oauth_revoke_grant(struct oauth *o, const char *grant, void (*done)(void *), void *arg);
void oauth_revoke_access_token(struct oauth *o, const char *hash_hex, void (*done)(void *), void *arg);
/* Answers 403 for a Host outside allowed_hosts (DNS rebinding): 1 if so. */
int oauth_host_refused(struct oauth *o, struct http_request *r);
/* CORS for endpoints that browser clients call (token, register...). */
int oauth_preflight(struct http_request *r, const char *methods);

/* The user of that name in users_file, or NULL. */
const struct oauth_user *oauth_find_user(const struct oauth_conf *oc, const char *name);

/* Helpers. */
/* s for a log line: at most 128 bytes, control characters as '?'. */
const char *oauth_printable(struct arena *ar, const char *s);
/* SHA-256 as hex: client secrets as stored and metadata documents' URLs.
 * Codes, tokens and sign-in requests are named by idhash_hex, keyed with
 * the deployment's storage.hash_key_file. */
void oauth_sha256_hex(const char *s, size_t len, char out[65]);
int oauth_new_secret(const char *prefix, char *out, size_t outlen);
int64_t oauth_now(void);
int scope_valid(const char *s);
int scope_has(const char *set, const char *scope, size_t len);
int scope_subset(const char *sub, const char *set);
const char *scope_intersect(struct arena *ar, const char *a, const char *b);
/* Is this an https URL, a loopback http URL, or a private-use scheme? */
int redirect_uri_ok(const char *uri, const char **why);
const char *json_str(const struct cJSON *o, const char *name);
/* A form body (application/x-www-form-urlencoded) or answers 400. */
int oreq_form(struct oreq *q, struct form *f, int oauth_errors);

/* oauth_client.c */
int oauth_client_routes(struct oauth *o, struct http_server *http);
/* The client with that id (registered, or a metadata document); next
 * gets NULL when there is none (q->client_status says MCPD_NOT_FOUND or
 * MCPD_ERROR, q->client_error why). */
void oreq_client(struct oreq *q, const char *client_id, void (*next)(struct oreq *, const struct oclient *));
/* Client authentication at the token, revocation and introspection
 * endpoints (RFC 6749 2.3): Basic, or client_id and client_secret in
 * the form, or client_id alone for public clients. Answers 401
 * invalid_client itself on failure. */
void oreq_client_auth(struct oreq *q, const struct form *f, int confidential_only,
    void (*next)(struct oreq *, const struct oclient *));
struct oclient *oclient_from_json(struct arena *ar, const struct cJSON *o);
int oclient_has_redirect(const struct oclient *c, const char *uri);
/* oauth_cimd.c: client ID metadata documents (https client_ids). */
struct cimd *cimd_new(struct oauth *o);
void cimd_free(struct cimd *c);
/* Fetches the document (or takes it from the cache) and calls
 * q->client_next with the client it describes, or NULL. */
void cimd_lookup(struct oreq *q, const char *url);

/* oauth_authorize.c */
int oauth_authorize_routes(struct oauth *o, struct http_server *http);

/* oauth_token.c */
int oauth_token_routes(struct oauth *o, struct http_server *http);

/* oauth_page.c: whole HTML documents. */
struct page_login {
	const char *title;              /* the operator's, or the server's name */
	const char *client_name;
	const char *client_id;
	const char *redirect_host;      /* where the user will be sent */
	const char *scope;              /* requested, space-separated */
	const char *request_id, *csrf;
	const char *user;               /* prefilled after a failed attempt, or NULL */
	const char *error;              /* shown above the form, or NULL */
};
const char *page_login(struct arena *ar, const struct page_login *p);
const char *page_error(struct arena *ar, const char *title, const char *message);
/* Security headers every page gets. */
void page_headers(struct http_request *r);

#endif
