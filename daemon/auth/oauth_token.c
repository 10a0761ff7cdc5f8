/* The token endpoint (authorization_code with PKCE S256, refresh_token
 * with rotation and reuse detection), RFC 7009 revocation and RFC 7662
 * introspection. Tokens are opaque, 256 random bits, kept only as their
 * SHA-256; each belongs to a grant (one user's consent to one client,
 * lasting refresh_ttl from the sign-in), and a code or refresh token
 * presented twice revokes its grant.
 *
 * Races between a legitimate use and a replay resolve to revocation
 * whatever the order: the used-markers are set only-if-absent, so one of
 * the two sees the other; the loser overwrites the grant with a
 * tombstone (never deleting it, so nothing can create it again), and a
 * grant is only ever created only-if-absent. */
#include "oauth_internal.h"
#include "idhash.h"
#include "metrics.h"
#include "arena.h"
#include "auth.h"
#include "config.h"
#include "form.h"
#include "http.h"
#include "log.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tok {
	struct oreq q;
	struct form f;
	const struct oclient *client;
	const char *hash;               /* of the code or refresh token presented */
	const char *user, *scope, *resource, *grant;
	int64_t exp;
	int64_t grant_exp;              /* when the sign-in ends */
	int64_t expires_in;             /* of the access token issued */
	char access[96], refresh[96];   /* wiped */
	int with_refresh;
};

static void
tok_free(struct oreq *q)
{
	struct tok *t = (struct tok *)q;
	OPENSSL_cleanse(t->access, sizeof(t->access));
	OPENSSL_cleanse(t->refresh, sizeof(t->refresh));
}

/* A POST with a form; size and free_fn those of the struct embedding
 * the tok (the introspection endpoint's too). */
static struct tok *
tok_new(struct oauth *o, struct http_request *r, size_t size, void (*free_fn)(struct oreq *q))
{
	struct tok *t = (struct tok *)oreq_new_post(o, r, "POST, OPTIONS", size, free_fn);
	if (t == NULL || oreq_form(&t->q, &t->f, 1) < 0)
		return NULL;
	return t;
}

static const char *
dup_field(struct oreq *q, const cJSON *rec, const char *name)
{
	const char *s = json_str(rec, name);
	return s ? arena_strdup(q->ar, s) : NULL;
}

static int64_t
json_int(const cJSON *rec, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, name);
	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

/* The fields of a code's or refresh token's record that t keeps: 0, or
 * -1 when one is missing. */
static int
record_fields(struct tok *t, const cJSON *rec)
{
	struct oreq *q = &t->q;
	t->user = dup_field(q, rec, "user");
	t->scope = dup_field(q, rec, "scope");
	t->resource = dup_field(q, rec, "resource");
	t->grant = dup_field(q, rec, "grant");
	return t->user != NULL && t->scope != NULL && t->resource != NULL && t->grant != NULL ? 0 : -1;
}

/* The last checks of a code or refresh token presented (the resource
 * must be the authorization's), then its used-marker (oauth:KIND-used:),
 * set only if absent: whoever marks it first has it. */
static void
mark_used(struct tok *t, const char *kind, uint64_t ttl_ms, void (*next)(struct oreq *q, int status))
{
	struct oreq *q = &t->q;
	const char *resource = form_get(&t->f, "resource");
	if (resource != NULL && strcmp(resource, t->resource) != 0) {
		oreq_error(q, 400, "invalid_target", "resource differs from the authorization's");
		return;
	}
	cJSON *used = cJSON_CreateObject();
	cJSON_AddStringToObject(used, "grant", t->grant);
	oreq_set(q, arena_printf(q->ar, "oauth:%s-used:%s", kind, t->hash), used, ttl_ms, MCPD_SET_IF_ABSENT, next);
	cJSON_Delete(used);
}

/* ---- issuing ---- */

static void
respond_tokens(struct tok *t)
{
	struct oreq *q = &t->q;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "access_token", t->access);
	cJSON_AddStringToObject(o, "token_type", "Bearer");
	cJSON_AddNumberToObject(o, "expires_in", (double)t->expires_in);
	cJSON_AddStringToObject(o, "scope", t->scope);
	if (t->with_refresh)
		cJSON_AddStringToObject(o, "refresh_token", t->refresh);
	metrics_oauth_token(0);
	oreq_json(q, 200, o);
}

static void
refresh_stored(struct oreq *q, int status)
{
	if (status != MCPD_OK) {
		oreq_storage_error(q, "storing a refresh token");
		return;
	}
	respond_tokens((struct tok *)q);
}

static cJSON *
token_record(struct tok *t, int64_t exp)
{
	cJSON *rec = cJSON_CreateObject();
	cJSON_AddStringToObject(rec, "grant", t->grant);
	cJSON_AddStringToObject(rec, "user", t->user);
	cJSON_AddStringToObject(rec, "client_id", t->client->id);
	cJSON_AddStringToObject(rec, "scope", t->scope);
	cJSON_AddStringToObject(rec, "resource", t->resource);
	cJSON_AddNumberToObject(rec, "iat", (double)oauth_now());
	cJSON_AddNumberToObject(rec, "exp", (double)exp);
	cJSON_AddNumberToObject(rec, "grant_exp", (double)t->grant_exp);
	return rec;
}

static void
access_stored(struct oreq *q, int status)
{
	struct tok *t = (struct tok *)q;
	if (status != MCPD_OK) {
		oreq_storage_error(q, "storing an access token");
		return;
	}
	if (!t->with_refresh) {
		respond_tokens(t);
		return;
	}
	/* A refresh token lasts as long as the sign-in. */
	char hash[65];
	idhash_hex(t->refresh, strlen(t->refresh), hash);
	int64_t left = t->grant_exp - oauth_now();
	cJSON *rec = token_record(t, t->grant_exp);
	oreq_set(q, arena_printf(q->ar, "oauth:rt:%s", hash), rec, (uint64_t)(left > 0 ? left : 1) * 1000,
	    MCPD_SET_IF_ABSENT, refresh_stored);
	cJSON_Delete(rec);
}

static void
issue(struct tok *t)
{
	struct oreq *q = &t->q;
	const struct oauth_conf *oc = q->o->oc;
	t->with_refresh = t->client->refresh && oc->refresh_ttl_ms > 0;
	if (oauth_new_secret(OAUTH_AT_PREFIX, t->access, sizeof(t->access)) < 0 ||
	    (t->with_refresh && oauth_new_secret(OAUTH_RT_PREFIX, t->refresh, sizeof(t->refresh)) < 0)) {
		oreq_error(q, 500, "server_error", "no random bytes");
		return;
	}
	/* The client is in use: keep its registration. */
	if (q->client_raw != NULL && !t->client->document)
		q->o->b.storage->set(q->o->b.storage_inst, arena_printf(q->ar, "oauth:client:%s", t->client->id),
		    q->client_raw, strlen(q->client_raw), oc->client_ttl_ms, MCPD_SET_IF_PRESENT, NULL, NULL);
	char hash[65];
	idhash_hex(t->access, strlen(t->access), hash);
	int64_t now = oauth_now(), exp = now + (int64_t)(oc->token_ttl_ms / 1000);
	if (exp > t->grant_exp)
		exp = t->grant_exp;
	t->expires_in = exp - now > 0 ? exp - now : 1;
	cJSON *rec = token_record(t, now + t->expires_in);
	oreq_set(q, arena_printf(q->ar, "oauth:at:%s", hash), rec, (uint64_t)t->expires_in * 1000, MCPD_SET_IF_ABSENT,
	    access_stored);
	cJSON_Delete(rec);
}

static uint64_t
grant_ttl(const struct oauth_conf *oc)
{
	return oc->refresh_ttl_ms > oc->token_ttl_ms ? oc->refresh_ttl_ms : oc->token_ttl_ms;
}

/* ---- authorization_code ---- */

static void
grant_created(struct oreq *q, int status)
{
	if (status == MCPD_ERROR) {
		oreq_storage_error(q, "storing a grant");
		return;
	}
	if (status != MCPD_OK) {
		/* A tombstone: a replay of the code got in first. */
		oreq_error(q, 400, "invalid_grant", "the grant was revoked");
		return;
	}
	issue((struct tok *)q);
}

/* What setting a code's or refresh token's used-marker said: storage
 * failed, or the marker was there (the token was presented twice), and
 * then its grant is revoked. 1 when q was answered. */
static int
used_again(struct tok *t, int status, const char *doing, const char *what, const char *verb,
    const char *description)
{
	struct oreq *q = &t->q;
	if (status == MCPD_ERROR) {
		oreq_storage_error(q, doing);
		return 1;
	}
	if (status != MCPD_CONFLICT)
		return 0;
	log_warn("oauth: %s of %s for client %s %s again from %s: revoking its grant", what, t->user, t->client->id,
	    verb, q->addr);
	oauth_revoke_grant(q->o, t->grant, NULL, NULL);
	oreq_error(q, 400, "invalid_grant", description);
	return 1;
}

static void
code_marked(struct oreq *q, int status)
{
	struct tok *t = (struct tok *)q;
	if (used_again(t, status, "redeeming a code", "authorization code", "presented",
	    "the code was already used; the tokens issued with it are revoked"))
		return;
	const struct oauth_conf *oc = q->o->oc;
	t->grant_exp = oauth_now() + (int64_t)(grant_ttl(oc) / 1000);
	cJSON *g = cJSON_CreateObject();
	cJSON_AddStringToObject(g, "user", t->user);
	cJSON_AddStringToObject(g, "client_id", t->client->id);
	cJSON_AddStringToObject(g, "scope", t->scope);
	cJSON_AddStringToObject(g, "resource", t->resource);
	cJSON_AddNumberToObject(g, "created", (double)oauth_now());
	cJSON_AddNumberToObject(g, "exp", (double)t->grant_exp);
	oreq_set(q, arena_printf(q->ar, "oauth:grant:%s", t->grant), g, grant_ttl(oc), MCPD_SET_IF_ABSENT,
	    grant_created);
	cJSON_Delete(g);
}

static int
verifier_ok(const char *v)
{
	size_t n = strlen(v);
	if (n < 43 || n > 128)
		return 0;
	for (; *v; v++)
		if (!((*v >= 'A' && *v <= 'Z') || (*v >= 'a' && *v <= 'z') || (*v >= '0' && *v <= '9') ||
		    *v == '-' || *v == '.' || *v == '_' || *v == '~'))
			return 0;
	return 1;
}

static void
code_found(struct oreq *q, int status, cJSON *rec)
{
	struct tok *t = (struct tok *)q;
	if (status == MCPD_ERROR) {
		oreq_storage_error(q, "looking a code up");
		return;
	}
	if (status != MCPD_OK) {
		oreq_error(q, 400, "invalid_grant", "the code is not valid (expired, or never issued)");
		return;
	}
	const char *client_id = json_str(rec, "client_id"), *redirect = json_str(rec, "redirect_uri");
	const char *challenge = json_str(rec, "challenge");
	if (record_fields(t, rec) < 0 || client_id == NULL || redirect == NULL || challenge == NULL) {
		oreq_error(q, 500, "server_error", "a malformed code record");
		return;
	}
	if (strcmp(client_id, t->client->id) != 0) {
		oreq_error(q, 400, "invalid_grant", "the code was issued to another client");
		return;
	}
	const char *ru = form_get(&t->f, "redirect_uri");
	int given = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(rec, "redirect_given"));
	if ((ru == NULL && given) || (ru != NULL && strcmp(ru, redirect) != 0)) {
		oreq_error(q, 400, "invalid_grant", "redirect_uri differs from the authorization request's");
		return;
	}
	if (json_int(rec, "exp") <= oauth_now()) {
		oreq_error(q, 400, "invalid_grant", "the code has expired");
		return;
	}
	const char *verifier = form_get(&t->f, "code_verifier");
	if (verifier == NULL) {
		oreq_error(q, 400, "invalid_request", "code_verifier is required (PKCE)");
		return;
	}
	if (!verifier_ok(verifier)) {
		oreq_error(q, 400, "invalid_grant", "code_verifier must be 43 to 128 unreserved characters");
		return;
	}
	unsigned char h[32];
	unsigned int hl = 32;
	char computed[48];
	EVP_Digest(verifier, strlen(verifier), h, &hl, EVP_sha256(), NULL);
	base64url_encode(h, 32, computed);
	if (strlen(challenge) != 43 || CRYPTO_memcmp(computed, challenge, 43) != 0) {
		log_notice("oauth: PKCE verification failed for client %s from %s", t->client->id, q->addr);
		oreq_error(q, 400, "invalid_grant", "PKCE verification failed: code_verifier does not match the challenge");
		return;
	}
	uint64_t keep = q->o->oc->code_ttl_ms > OAUTH_CODE_KEEP_MS ? q->o->oc->code_ttl_ms : OAUTH_CODE_KEEP_MS;
	mark_used(t, "code", keep, code_marked);
}

/* ---- refresh_token ---- */

static void
grant_found(struct oreq *q, int status, cJSON *rec)
{
	struct tok *t = (struct tok *)q;
	if (status == MCPD_ERROR) {
		oreq_storage_error(q, "looking a grant up");
		return;
	}
	if (status != MCPD_OK || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "revoked"))) {
		oreq_error(q, 400, "invalid_grant", "the grant was revoked");
		return;
	}
	t->grant_exp = json_int(rec, "exp");
	if (t->grant_exp <= oauth_now()) {
		oreq_error(q, 400, "invalid_grant", "the sign-in has expired");
		return;
	}
	issue(t);
}

static void
refresh_marked(struct oreq *q, int status)
{
	struct tok *t = (struct tok *)q;
	if (used_again(t, status, "using a refresh token", "refresh token", "used",
	    "the refresh token was already used; every token of its grant is revoked"))
		return;
	oreq_get(q, arena_printf(q->ar, "oauth:grant:%s", t->grant), grant_found);
}

static void
refresh_found(struct oreq *q, int status, cJSON *rec)
{
	struct tok *t = (struct tok *)q;
	if (status == MCPD_ERROR) {
		oreq_storage_error(q, "looking a refresh token up");
		return;
	}
	if (status != MCPD_OK) {
		oreq_error(q, 400, "invalid_grant", "the refresh token is not valid (expired or revoked)");
		return;
	}
	const char *client_id = json_str(rec, "client_id");
	t->exp = json_int(rec, "exp");
	if (record_fields(t, rec) < 0 || client_id == NULL) {
		oreq_error(q, 500, "server_error", "a malformed token record");
		return;
	}
	if (strcmp(client_id, t->client->id) != 0) {
		oreq_error(q, 400, "invalid_grant", "the refresh token was issued to another client");
		return;
	}
	const struct oauth_user *u = oauth_find_user(q->o->oc, t->user);
	if (u == NULL) {
		oreq_error(q, 400, "invalid_grant", "the user may no longer sign in");
		return;
	}
	t->scope = scope_intersect(q->ar, t->scope, u->scopes);
	int64_t now = oauth_now();
	if (t->exp <= now) {
		oreq_error(q, 400, "invalid_grant", "the refresh token has expired");
		return;
	}
	const char *scope = form_get(&t->f, "scope");
	if (scope != NULL && scope[0]) {
		if (!scope_valid(scope) || !scope_subset(scope, t->scope)) {
			oreq_error(q, 400, "invalid_scope", "a refresh may only narrow the scopes granted");
			return;
		}
		t->scope = arena_strdup(q->ar, scope);
	}
	mark_used(t, "rt", (uint64_t)(t->exp - now) * 1000 + 1000, refresh_marked);
}

/* ---- the endpoint ---- */

static void
token_client(struct oreq *q, const struct oclient *c)
{
	struct tok *t = (struct tok *)q;
	t->client = c;
	const char *gt = form_get(&t->f, "grant_type");
	char hash[65];
	if (gt == NULL) {
		oreq_error(q, 400, "invalid_request", "grant_type is required");
	} else if (strcmp(gt, "authorization_code") == 0) {
		const char *code = form_get(&t->f, "code");
		if (code == NULL || code[0] == '\0') {
			oreq_error(q, 400, "invalid_request", "code is required");
			return;
		}
		idhash_hex(code, strlen(code), hash);
		t->hash = arena_strdup(q->ar, hash);
		oreq_get(q, arena_printf(q->ar, "oauth:code:%s", hash), code_found);
	} else if (strcmp(gt, "refresh_token") == 0) {
		const char *rt = form_get(&t->f, "refresh_token");
		if (q->o->oc->refresh_ttl_ms == 0) {
			oreq_error(q, 400, "unsupported_grant_type", "this server issues no refresh tokens");
		} else if (!c->refresh) {
			oreq_error(q, 400, "unauthorized_client", "this client did not register the refresh_token grant");
		} else if (rt == NULL || rt[0] == '\0') {
			oreq_error(q, 400, "invalid_request", "refresh_token is required");
		} else if (strncmp(rt, OAUTH_RT_PREFIX, sizeof(OAUTH_RT_PREFIX) - 1) != 0) {
			oreq_error(q, 400, "invalid_grant", "not a refresh token of this server");
		} else {
			idhash_hex(rt, strlen(rt), hash);
			t->hash = arena_strdup(q->ar, hash);
			oreq_get(q, arena_printf(q->ar, "oauth:rt:%s", hash), refresh_found);
		}
	} else {
		oreq_error(q, 400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token");
	}
}

static void
token_counted(struct oreq *q)
{
	struct tok *t = (struct tok *)q;
	oreq_client_auth(q, &t->f, 0, token_client);
}

static void
token_endpoint(struct http_request *r, void *arg)
{
	struct oauth *o = arg;
	struct tok *t = tok_new(o, r, sizeof(struct tok), tok_free);
	if (t != NULL)
		oreq_rate(&t->q, "token", o->oc->rate_token, 0, token_counted);
}

/* ---- revocation (RFC 7009) and introspection (RFC 7662) ---- */

struct lookup {
	int access;                     /* an access token (else a refresh token) */
	int introspect;
	char hash[65];
};

static void
revoked(struct oreq *q)
{
	metrics_oauth_token(1);
	oreq_json(q, 200, cJSON_CreateObject());
}

static void
revoked_cb(void *arg)
{
	revoked(arg);
}

static void
inactive(struct oreq *q)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "active", 0);
	oreq_json(q, 200, o);
}

struct intro {
	struct tok t;
	struct lookup lk;
	cJSON *answer;
};

static void
intro_grant(struct oreq *q, int status, cJSON *rec)
{
	struct intro *in = (struct intro *)q;
	if (status == MCPD_ERROR) {
		oreq_storage_error(q, "looking a grant up");
		return;
	}
	if (status != MCPD_OK || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "revoked"))) {
		inactive(q);
		return;
	}
	cJSON *a = in->answer;
	in->answer = NULL;
	oreq_json(q, 200, a);
}

static void
intro_free(struct oreq *q)
{
	struct intro *in = (struct intro *)q;
	cJSON_Delete(in->answer);
	tok_free(q);
}

static void
token_record_found(struct oreq *q, int status, cJSON *rec)
{
	struct intro *in = (struct intro *)q;
	struct tok *t = &in->t;
	if (status == MCPD_ERROR) {
		oreq_storage_error(q, "looking a token up");
		return;
	}
	const char *client_id = json_str(rec, "client_id"), *grant = json_str(rec, "grant");
	if (status != MCPD_OK || client_id == NULL || grant == NULL) {
		if (in->lk.introspect)
			inactive(q);
		else
			revoked(q);     /* RFC 7009 2.2: an invalid token is no error */
		return;
	}
	if (strcmp(client_id, t->client->id) != 0) {
		if (in->lk.introspect) {
			inactive(q);    /* a client sees only its own tokens */
			return;
		}
		oreq_error(q, 400, "unauthorized_client", "the token was not issued to this client");
		return;
	}
	if (!in->lk.introspect) {
		log_info("oauth: client %s revoked %s", client_id, in->lk.access ? "an access token" :
		    "a refresh token and its grant");
		/* The answer once the revocation is stored (RFC 7009 2.2: 200
		 * means revoked), so that no instance accepts the token after. */
		if (in->lk.access)
			oauth_revoke_access_token(q->o, in->lk.hash, revoked_cb, q);
		else
			oauth_revoke_grant(q->o, grant, revoked_cb, q);
		return;
	}
	int64_t exp = json_int(rec, "exp");
	const struct oauth_user *u = json_str(rec, "user") ? oauth_find_user(q->o->oc, json_str(rec, "user")) : NULL;
	if (exp <= oauth_now() || u == NULL) {
		inactive(q);
		return;
	}
	cJSON *a = cJSON_CreateObject();
	cJSON_AddBoolToObject(a, "active", 1);
	cJSON_AddStringToObject(a, "scope", scope_intersect(q->ar, json_str(rec, "scope") ? json_str(rec, "scope") : "",
	    u->scopes));
	cJSON_AddStringToObject(a, "client_id", client_id);
	cJSON_AddStringToObject(a, "username", json_str(rec, "user") ? json_str(rec, "user") : "");
	cJSON_AddStringToObject(a, "sub", json_str(rec, "user") ? json_str(rec, "user") : "");
	cJSON_AddStringToObject(a, "token_type", in->lk.access ? "Bearer" : "refresh_token");
	cJSON_AddNumberToObject(a, "exp", (double)exp);
	cJSON_AddNumberToObject(a, "iat", (double)json_int(rec, "iat"));
	if (json_str(rec, "resource") != NULL)
		cJSON_AddStringToObject(a, "aud", json_str(rec, "resource"));
	const char *iss = auth_issuer(q->o->auth, q->r);
	if (iss != NULL)
		cJSON_AddStringToObject(a, "iss", iss);
	in->answer = a;
	oreq_get(q, arena_printf(q->ar, "oauth:grant:%s", grant), intro_grant);
}

static void
lookup_client(struct oreq *q, const struct oclient *c)
{
	struct intro *in = (struct intro *)q;
	in->t.client = c;
	const char *token = form_get(&in->t.f, "token");
	if (token == NULL || token[0] == '\0') {
		oreq_error(q, 400, "invalid_request", "token is required");
		return;
	}
	/* The prefix says which kind it is; token_type_hint is not needed. */
	if (strncmp(token, OAUTH_AT_PREFIX, sizeof(OAUTH_AT_PREFIX) - 1) == 0)
		in->lk.access = 1;
	else if (strncmp(token, OAUTH_RT_PREFIX, sizeof(OAUTH_RT_PREFIX) - 1) != 0) {
		if (in->lk.introspect)
			inactive(q);
		else
			revoked(q);
		return;
	}
	idhash_hex(token, strlen(token), in->lk.hash);
	oreq_get(q, arena_printf(q->ar, "oauth:%s:%s", in->lk.access ? "at" : "rt", in->lk.hash),
	    token_record_found);
}

static void
lookup_endpoint(struct http_request *r, struct oauth *o, int introspect)
{
	struct intro *in = (struct intro *)tok_new(o, r, sizeof(struct intro), intro_free);
	if (in == NULL)
		return;
	in->lk.introspect = introspect;
	oreq_client_auth(&in->t.q, &in->t.f, introspect, lookup_client);
}

static void
revoke_endpoint(struct http_request *r, void *arg)
{
	lookup_endpoint(r, arg, 0);
}

static void
introspect_endpoint(struct http_request *r, void *arg)
{
	lookup_endpoint(r, arg, 1);
}

int
oauth_token_routes(struct oauth *o, struct http_server *http)
{
	if (http_server_route(http, "/oauth/token", token_endpoint, o) < 0 ||
	    http_server_route(http, "/oauth/revoke", revoke_endpoint, o) < 0 ||
	    http_server_route(http, "/oauth/introspect", introspect_endpoint, o) < 0)
		return -1;
	return 0;
}
