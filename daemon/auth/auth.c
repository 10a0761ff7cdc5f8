/* The resource server's half of OAuth, whatever the plugin: the
 * Authorization header, a per-worker cache of checked tokens (keyed by
 * the token's keyed hash, idhash_mac, as the internal OAuth server names
 * tokens in storage and revocations: no token is kept), 401/403 answers
 * with WWW-Authenticate, and the protected resource metadata (RFC 9728). */
#include "auth.h"
#include "idhash.h"
#include "metrics.h"
#include "arena.h"
#include "config.h"
#include "guard.h"
#include "http.h"
#include "jsonrpc.h"
#include "log.h"
#include "plugin.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#define CACHE_BUCKETS 1024
#define CACHE_MAX 10000
#define MAX_TOKEN 8192

struct cached {
	unsigned char hash[32];
	uint64_t expires_ms;
	char *user, *client_id, *scopes;
	char *grant;                    /* internal tokens: the grant, for revocation */
	char *aud;                      /* internal tokens: the resource it is bound to */
	struct cached *next;            /* bucket chain */
	TAILQ_ENTRY(cached) age;        /* oldest first */
};

struct auth {
	const struct config *cfg;
	const struct mcpd_auth_ops *ops;
	void *inst;
	auth_validate_fn *validate;     /* the internal authorization server, or NULL */
	void *vinst;
	struct cached *buckets[CACHE_BUCKETS];
	TAILQ_HEAD(, cached) by_age;
	size_t count;
	void (*refused)(struct http_request *, void *);    /* after each 401 */
	void *refused_arg;
};

/* One check in flight; the request may go away before the plugin answers. */
struct pending_check {
	struct auth *a;
	struct http_request *r;         /* NULL once the client left */
	unsigned char hash[32];
	auth_go_fn go;
	void *arg;
};

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct auth *
auth_new(struct event_base *base, const struct config *c)
{
	(void)base;
	if (c->auth.name == NULL || (c->auth.lp == NULL && !c->oauth.enabled))
		return NULL;
	struct auth *a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	a->cfg = c;
	a->ops = c->auth.ops;
	a->inst = c->auth.inst;
	TAILQ_INIT(&a->by_age);
	return a;
}

static void
cached_free(struct auth *a, struct cached *e)
{
	struct cached **pp = &a->buckets[e->hash[0] | (e->hash[1] & 3) << 8];
	for (; *pp != NULL; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	TAILQ_REMOVE(&a->by_age, e, age);
	a->count--;
	free(e->user);
	free(e->client_id);
	free(e->scopes);
	free(e->grant);
	free(e->aud);
	free(e);
}

void
auth_set_validator(struct auth *a, auth_validate_fn *fn, void *inst)
{
	a->validate = fn;
	a->vinst = inst;
}

void
auth_evict_grant(struct auth *a, const char *grant)
{
	struct cached *e, *next;
	for (e = TAILQ_FIRST(&a->by_age); e != NULL; e = next) {
		next = TAILQ_NEXT(e, age);
		if (e->grant != NULL && strcmp(e->grant, grant) == 0)
			cached_free(a, e);
	}
}

void
auth_evict_token(struct auth *a, const unsigned char hash[32])
{
	for (struct cached *e = a->buckets[hash[0] | (hash[1] & 3) << 8]; e != NULL; e = e->next)
		if (CRYPTO_memcmp(e->hash, hash, 32) == 0) {
			cached_free(a, e);
			return;
		}
}

void
auth_free(struct auth *a)
{
	if (a == NULL)
		return;
	while (!TAILQ_EMPTY(&a->by_age))
		cached_free(a, TAILQ_FIRST(&a->by_age));
	free(a);
}

static struct cached *
cache_find(struct auth *a, const unsigned char hash[32])
{
	uint64_t now = now_ms();
	for (struct cached *e = a->buckets[hash[0] | (hash[1] & 3) << 8]; e != NULL; e = e->next) {
		if (CRYPTO_memcmp(e->hash, hash, 32) != 0)
			continue;
		if (e->expires_ms <= now) {
			cached_free(a, e);
			return NULL;
		}
		return e;
	}
	return NULL;
}

static void
cache_put(struct auth *a, const unsigned char hash[32], const struct mcpd_principal *p,
    const char *grant, const char *aud)
{
	uint64_t ttl = a->cfg->authz.cache_ms;
	uint64_t now = now_ms();
	if (p->expires_at > 0) {
		uint64_t left = (uint64_t)p->expires_at * 1000 > now ? (uint64_t)p->expires_at * 1000 - now : 0;
		if (left < ttl)
			ttl = left;
	}
	if (ttl == 0)
		return;
	if (a->count >= CACHE_MAX)
		cached_free(a, TAILQ_FIRST(&a->by_age));
	struct cached *e = calloc(1, sizeof(*e));
	if (e == NULL)
		return;
	memcpy(e->hash, hash, 32);
	e->expires_ms = now + ttl;
	e->user = strdup(p->user);
	e->client_id = p->client_id ? strdup(p->client_id) : NULL;
	e->scopes = strdup(p->scopes ? p->scopes : "");
	e->grant = grant ? strdup(grant) : NULL;
	e->aud = aud ? strdup(aud) : NULL;
	if (e->user == NULL || e->scopes == NULL || (grant && e->grant == NULL) || (aud && e->aud == NULL)) {
		free(e->user);
		free(e->client_id);
		free(e->scopes);
		free(e->grant);
		free(e->aud);
		free(e);
		return;
	}
	unsigned b = hash[0] | (hash[1] & 3) << 8;
	e->next = a->buckets[b];
	a->buckets[b] = e;
	TAILQ_INSERT_TAIL(&a->by_age, e, age);
	a->count++;
}

/* The resource's URL: configured, or this request's scheme, Host and
 * endpoint. */
static const char *
resource_url(struct auth *a, struct http_request *r)
{
	if (a->cfg->authz.resource != NULL)
		return a->cfg->authz.resource;
	const char *host = http_request_field(r, HDR_HOST);
	return arena_printf(http_request_arena(r), "%s://%s%s", http_request_tls(r) ? "https" : "http",
	    host ? host : "localhost", a->cfg->endpoint);
}

const char *
auth_resource_url(struct auth *a, struct http_request *r)
{
	return resource_url(a, r);
}

const char *
auth_issuer(struct auth *a, struct http_request *r)
{
	if (a == NULL || !a->cfg->oauth.enabled)
		return NULL;
	if (a->cfg->oauth.issuer != NULL)
		return a->cfg->oauth.issuer;
	const char *res = resource_url(a, r);
	const char *hostpart = strstr(res, "://");
	const char *path = hostpart ? strchr(hostpart + 3, '/') : NULL;
	return path ? arena_strndup(http_request_arena(r), res, (size_t)(path - res)) : res;
}

/* RFC 9728 3.1: the well-known suffix goes between host and path. */
static const char *
metadata_url(struct auth *a, struct http_request *r)
{
	const char *res = resource_url(a, r);
	const char *hostpart = strstr(res, "://");
	const char *path = hostpart ? strchr(hostpart + 3, '/') : NULL;
	size_t origin = path ? (size_t)(path - res) : strlen(res);
	return arena_printf(http_request_arena(r), "%.*s/.well-known/oauth-protected-resource%s",
	    (int)origin, res, path && strcmp(path, "/") != 0 ? path : "");
}

/* A quoted-string value: the few characters a description might hold
 * that would break the header are replaced. */
static const char *
quoted(struct http_request *r, const char *s)
{
	char *q = arena_strdup(http_request_arena(r), s);
	for (char *p = q; *p; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
			*p = '\'';
	return q;
}

static void
challenge(struct auth *a, struct http_request *r, const char *error, const char *description,
    const char *scope)
{
	const char *h = arena_printf(http_request_arena(r), "Bearer resource_metadata=\"%s\"", metadata_url(a, r));
	if (scope == NULL)
		scope = a->cfg->authz.scopes_supported;
	if (scope != NULL && scope[0])
		h = arena_printf(http_request_arena(r), "%s, scope=\"%s\"", h, scope);
	if (error != NULL)
		h = arena_printf(http_request_arena(r), "%s, error=\"%s\"", h, error);
	/* RFC 6750 3.1: no error details for a request that sent no token. */
	if (description != NULL && error != NULL)
		h = arena_printf(http_request_arena(r), "%s, error_description=\"%s\"", h, quoted(r, description));
	http_response_header(r, "WWW-Authenticate", h);
}

static void
respond_error(struct auth *a, struct http_request *r, int status, const char *message)
{
	guard_cors(a->cfg, r);
	char *json = jsonrpc_error(NULL, -32000, message, NULL);
	if (json == NULL) {
		http_respond_text(r, status, message);
		return;
	}
	http_response_header(r, "Cache-Control", "no-store");
	http_respond(r, status, "application/json", json, strlen(json));
	free(json);
}

static void
unauthorized(struct auth *a, struct http_request *r, const char *error, const char *why)
{
	challenge(a, r, error, why, NULL);
	char msg[300];
	snprintf(msg, sizeof(msg), "Unauthorized: %s", why);
	http_request_log_extra(r, error ? "invalid token" : "no token");
	if (a->refused != NULL)
		a->refused(r, a->refused_arg);
	respond_error(a, r, 401, msg);
}

void
auth_on_refused(struct auth *a, void (*fn)(struct http_request *, void *), void *arg)
{
	a->refused = fn;
	a->refused_arg = arg;
}

static void
set_principal(struct http_request *r, const char *user, const char *client_id, const char *scopes)
{
	struct arena *ar = http_request_arena(r);
	struct principal *p = arena_zalloc(ar, sizeof(*p));
	p->user = arena_strdup(ar, user);
	p->client_id = client_id ? arena_strdup(ar, client_id) : NULL;
	p->scopes = arena_strdup(ar, scopes ? scopes : "");
	http_request_set_user(r, p);
}

static void
check_closed(struct http_request *r, void *arg)
{
	(void)r;
	struct pending_check *pc = arg;
	pc->r = NULL;
}

static void
checked(void *arg, int status, const struct mcpd_principal *p, const char *grant, const char *err)
{
	struct pending_check *pc = arg;     /* the plugin answers once (plugin.h) */
	struct http_request *r = pc->r;
	if (r == NULL) {
		free(pc);
		return;
	}
	http_request_on_close(r, NULL, NULL);
	if (status == MCPD_OK && p != NULL && p->user != NULL && p->user[0] != '\0') {
		metrics_auth(MXA_OK);
		cache_put(pc->a, pc->hash, p, grant, pc->a->validate ? resource_url(pc->a, r) : NULL);
		set_principal(r, p->user, p->client_id, p->scopes);
		auth_go_fn go = pc->go;
		void *garg = pc->arg;
		free(pc);
		go(r, garg);
		return;
	}
	struct auth *a = pc->a;
	free(pc);
	if (status == MCPD_DENIED || status == MCPD_OK || status == MCPD_NOT_FOUND) {
		metrics_auth(MXA_DENIED);
		unauthorized(a, r, "invalid_token", err && err[0] ? err : "the token is not valid");
	} else {
		metrics_auth(MXA_ERROR);
		log_warn("auth plugin %s: cannot check a token now: %s", a->cfg->auth.name, err ? err : "failed");
		http_response_header(r, "Retry-After", "1");
		respond_error(a, r, 503, "Service Unavailable: the token cannot be checked now; try again");
	}
}

/* A plugin's answer: plugins know nothing of grants. */
static void
checked_by_plugin(void *arg, int status, const struct mcpd_principal *p, const char *err)
{
	checked(arg, status, p, NULL, err);
}

void
auth_check(struct auth *a, struct http_request *r, auth_go_fn go, void *arg)
{
	if (a == NULL) {
		go(r, arg);
		return;
	}
	const char *h = http_request_field(r, HDR_AUTHORIZATION);
	if (h == NULL) {
		metrics_auth(MXA_MISSING);
		unauthorized(a, r, NULL, "this endpoint needs a bearer token (Authorization: Bearer ...)");
		return;
	}
	if (strncasecmp(h, "Bearer ", 7) != 0) {
		metrics_auth(MXA_DENIED);
		unauthorized(a, r, "invalid_request", "the Authorization header must be \"Bearer <token>\"");
		return;
	}
	const char *token = h + 7;
	while (*token == ' ')
		token++;
	size_t len = strlen(token);
	while (len > 0 && token[len - 1] == ' ')
		len--;
	if (len == 0 || len > MAX_TOKEN) {
		metrics_auth(MXA_DENIED);
		unauthorized(a, r, "invalid_token", len ? "the token is too long" : "the token is empty");
		return;
	}
	unsigned char hash[32];
	idhash_mac(token, len, hash);
	struct cached *e = cache_find(a, hash);
	if (e != NULL && (e->aud == NULL || strcmp(e->aud, resource_url(a, r)) == 0)) {
		metrics_auth(MXA_OK);
		set_principal(r, e->user, e->client_id, e->scopes);
		go(r, arg);
		return;
	}
	struct pending_check *pc = calloc(1, sizeof(*pc));
	char *tok = pc ? strndup(token, len) : NULL;
	if (tok == NULL) {
		free(pc);
		http_respond_text(r, 500, "out of memory");
		return;
	}
	pc->a = a;
	pc->r = r;
	memcpy(pc->hash, hash, 32);
	pc->go = go;
	pc->arg = arg;
	http_request_on_close(r, check_closed, pc);
	if (a->validate != NULL)
		a->validate(a->vinst, tok, len, resource_url(a, r), checked, pc);
	else if (a->ops != NULL)
		a->ops->authenticate(a->inst, tok, checked_by_plugin, pc);
	else
		checked(pc, MCPD_ERROR, NULL, NULL, "the authorization server is not running in this worker");
	OPENSSL_cleanse(tok, len);
	free(tok);
}

const struct principal *
auth_principal(const struct http_request *r)
{
	return http_request_user(r);
}

int
auth_has_scopes(const struct principal *p, const char *needed)
{
	if (needed == NULL || needed[0] == '\0')
		return 1;
	if (p == NULL)
		return 0;
	const char *n = needed;
	while (*n) {
		while (*n == ' ')
			n++;
		size_t nl = strcspn(n, " ");
		if (nl == 0)
			break;
		int found = 0;
		for (const char *g = p->scopes; *g && !found;) {
			while (*g == ' ')
				g++;
			size_t gl = strcspn(g, " ");
			found = gl == nl && memcmp(g, n, nl) == 0;
			g += gl;
		}
		if (!found)
			return 0;
		n += nl;
	}
	return 1;
}

void
auth_insufficient_scope(struct auth *a, struct http_request *r, const char *needed)
{
	metrics_auth(MXA_SCOPE);
	if (a != NULL)
		challenge(a, r, "insufficient_scope", "the token lacks a scope this needs", needed);
}

static void
metadata(struct http_request *r, void *arg)
{
	struct auth *a = arg;
	const char *m = http_request_method(r);
	/* The resource URL may come from Host: only from one we serve. */
	if (!guard_host_allowed(a->cfg, http_request_field(r, HDR_HOST))) {
		http_respond_text(r, 403, "Host not allowed (see allowed_hosts)");
		return;
	}
	if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0 && strcmp(m, "OPTIONS") != 0) {
		http_response_header(r, "Allow", "GET, HEAD, OPTIONS");
		http_respond_text(r, 405, "method not allowed");
		return;
	}
	/* Public documents: any origin may read them (a browser client
	 * discovers the authorization server this way). */
	http_response_header(r, "Access-Control-Allow-Origin", "*");
	if (strcmp(m, "OPTIONS") == 0) {
		http_response_header(r, "Access-Control-Allow-Methods", "GET, OPTIONS");
		http_response_header(r, "Access-Control-Allow-Headers", "MCP-Protocol-Version");
		http_respond(r, 204, NULL, NULL, 0);
		return;
	}
	const struct config *c = a->cfg;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "resource", resource_url(a, r));
	const char *issuer = auth_issuer(a, r);
	if (c->authz.nservers > 0 || issuer != NULL) {
		cJSON *as = cJSON_AddArrayToObject(o, "authorization_servers");
		if (issuer != NULL)
			cJSON_AddItemToArray(as, cJSON_CreateString(issuer));
		for (size_t i = 0; i < c->authz.nservers; i++)
			cJSON_AddItemToArray(as, cJSON_CreateString(c->authz.authorization_servers[i]));
	}
	if (c->authz.scopes_supported != NULL) {
		cJSON *sc = cJSON_AddArrayToObject(o, "scopes_supported");
		const char *s = c->authz.scopes_supported;
		while (*s) {
			size_t l = strcspn(s, " ");
			if (l > 0)
				cJSON_AddItemToArray(sc, cJSON_CreateString(arena_printf(http_request_arena(r),
				    "%.*s", (int)l, s)));
			s += l;
			while (*s == ' ')
				s++;
		}
	}
	cJSON *bm = cJSON_AddArrayToObject(o, "bearer_methods_supported");
	cJSON_AddItemToArray(bm, cJSON_CreateString("header"));
	cJSON_AddStringToObject(o, "resource_name", c->authz.resource_name ? c->authz.resource_name :
	    c->server.name);
	char *body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (body == NULL) {
		http_respond_text(r, 500, "out of memory");
		return;
	}
	http_response_header(r, "Cache-Control", "max-age=300");
	http_respond(r, 200, "application/json", body, strlen(body));
	cJSON_free(body);
}

int
auth_routes(struct auth *a, struct http_server *http)
{
	if (a == NULL)
		return 0;
	const char *suffixed = arena_printf(a->cfg->arena, "/.well-known/oauth-protected-resource%s",
	    a->cfg->endpoint);
	if (http_server_route(http, "/.well-known/oauth-protected-resource", metadata, a) < 0 ||
	    http_server_route(http, suffixed, metadata, a) < 0)
		return -1;
	return 0;
}
