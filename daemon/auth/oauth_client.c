/* Clients of the internal authorization server: RFC 7591 dynamic
 * registration (POST /oauth/register), looking a client up by its id,
 * and client authentication at the token, revocation and introspection
 * endpoints (RFC 6749 2.3). */
#include "oauth_internal.h"
#include "arena.h"
#include "config.h"
#include "form.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CLIENT_ID_PREFIX "mcpd_c_"
#define MAX_CLIENT_ID 1024              /* a client ID metadata document's URL */
/* A registered client's id is CLIENT_ID_PREFIX and 22 characters; a
 * longer one names no client, and is not looked up: as a storage key it
 * could be too long for the backend (LMDB takes 511 bytes), which would
 * answer a storage error rather than "unknown client". */
#define MAX_REGISTERED_ID 64

struct oreq_cauth {
	const char *method;             /* what the client used */
	char *secret;                   /* presented, or NULL; wiped at the end */
	int confidential_only;
	void (*next)(struct oreq *, const struct oclient *);
};

/* ---- the stored record ---- */

struct oclient *
oclient_from_json(struct arena *ar, const cJSON *o)
{
	const char *id = json_str(o, "client_id"), *method = json_str(o, "method");
	const cJSON *uris = cJSON_GetObjectItemCaseSensitive(o, "redirect_uris");
	if (id == NULL || method == NULL || !cJSON_IsArray(uris))
		return NULL;
	struct oclient *c = arena_zalloc(ar, sizeof(*c));
	c->id = arena_strdup(ar, id);
	c->method = arena_strdup(ar, method);
	c->name = arena_strdup(ar, json_str(o, "client_name") ? json_str(o, "client_name") : "");
	const char *sh = json_str(o, "secret_sha256");
	c->secret_sha256 = sh ? arena_strdup(ar, sh) : NULL;
	const char *scope = json_str(o, "scope");
	c->scope = scope ? arena_strdup(ar, scope) : NULL;
	int n = cJSON_GetArraySize(uris);
	c->redirect_uris = arena_zalloc(ar, ((size_t)n + 1) * sizeof(char *));
	const cJSON *u;
	cJSON_ArrayForEach(u, uris)
		if (cJSON_IsString(u))
			c->redirect_uris[c->nredirect++] = arena_strdup(ar, u->valuestring);
	const cJSON *g;
	cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(o, "grant_types"))
		if (cJSON_IsString(g) && strcmp(g->valuestring, "refresh_token") == 0)
			c->refresh = 1;
	c->document = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "document"));
	return c;
}

/* For an http loopback redirect URI: the part after the port (path and
 * query), and the host's length; NULL for any other URI. */
static const char *
loopback_rest(const char *uri, size_t *hostlen)
{
	static const char *const hosts[] = { "127.0.0.1", "[::1]", "localhost" };
	if (strncmp(uri, "http://", 7) != 0)
		return NULL;
	const char *h = uri + 7;
	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		size_t n = strlen(hosts[i]);
		if (strncmp(h, hosts[i], n) != 0 || (h[n] != ':' && h[n] != '/' && h[n] != '\0'))
			continue;
		const char *r = h + n;
		if (*r == ':')
			for (r++; *r >= '0' && *r <= '9'; r++)
				;
		if (*r != '/' && *r != '\0')
			return NULL;
		*hostlen = n;
		return r;
	}
	return NULL;
}

/* Exact match, except that a loopback redirect URI may name any port
 * (OAuth 2.1 section 8.4.2, RFC 8252 section 7.3): native clients such
 * as Claude Code listen on whatever port is free when they sign in. */
int
oclient_has_redirect(const struct oclient *c, const char *uri)
{
	size_t hl, rhl;
	const char *rest = loopback_rest(uri, &hl);
	for (size_t i = 0; i < c->nredirect; i++) {
		const char *reg = c->redirect_uris[i];
		if (strcmp(reg, uri) == 0)
			return 1;
		const char *rrest = rest != NULL ? loopback_rest(reg, &rhl) : NULL;
		if (rrest != NULL && rhl == hl && strncmp(reg + 7, uri + 7, hl) == 0 && strcmp(rrest, rest) == 0)
			return 1;
	}
	return 0;
}

/* ---- registration ---- */

struct reg {
	struct oreq q;
	cJSON *answer;
};

static void
reg_free(struct oreq *q)
{
	struct reg *g = (struct reg *)q;
	cJSON_Delete(g->answer);
}

static void
reg_error(struct oreq *q, const char *error, const char *why)
{
	oreq_error(q, 400, error, why);
}

static int
printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

static void
reg_stored(struct oreq *q, int status)
{
	struct reg *g = (struct reg *)q;
	if (status == MCPD_ERROR) {
		oreq_storage_error(q, "registering a client");
		return;
	}
	if (status != MCPD_OK) {        /* an id drawn twice: 2^-128 */
		oreq_error(q, 500, "server_error", "client id collision; register again");
		return;
	}
	log_info("oauth: registered client %s (%s) from %s", json_str(g->answer, "client_id"),
	    json_str(g->answer, "client_name") ? json_str(g->answer, "client_name") : "no name", q->addr);
	cJSON *a = g->answer;
	g->answer = NULL;
	oreq_json(q, 201, a);
}

static void
reg_counted(struct oreq *q)
{
	struct reg *g = (struct reg *)q;
	const struct oauth_conf *oc = q->o->oc;
	size_t len;
	const char *body = http_request_body(q->r, &len);
	const char *ct = http_request_field(q->r, HDR_CONTENT_TYPE);
	if (len > OAUTH_MAX_JSON) {
		oreq_error(q, 413, "invalid_client_metadata", "the registration request is too large");
		return;
	}
	if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0) {
		reg_error(q, "invalid_client_metadata", "the body must be application/json");
		return;
	}
	struct json_error je;
	cJSON *in = body ? json_parse(body, len, 32, &je) : NULL;
	if (body != NULL && in == NULL) {
		char why[256];
		snprintf(why, sizeof(why), "the body is not JSON: %s", je.message);
		reg_error(q, "invalid_client_metadata", why);
		return;
	}
	if (!cJSON_IsObject(in)) {
		cJSON_Delete(in);
		reg_error(q, "invalid_client_metadata", "the body must be a JSON object");
		return;
	}
	const char *why = NULL, *error = "invalid_client_metadata";
	cJSON *rec = cJSON_CreateObject();
	cJSON *uris = cJSON_AddArrayToObject(rec, "redirect_uris");
	const cJSON *ru = cJSON_GetObjectItemCaseSensitive(in, "redirect_uris");
	if (!cJSON_IsArray(ru) || cJSON_GetArraySize(ru) == 0) {
		why = "redirect_uris is required: a non-empty array of URIs";
		error = "invalid_redirect_uri";
	} else if (cJSON_GetArraySize(ru) > OAUTH_MAX_REDIRECTS) {
		why = "at most 8 redirect_uris";
		error = "invalid_redirect_uri";
	} else {
		const cJSON *u;
		cJSON_ArrayForEach(u, ru) {
			if (!cJSON_IsString(u)) {
				why = "redirect_uris must hold strings";
			} else if (!redirect_uri_ok(u->valuestring, &why)) {
				why = arena_printf(q->ar, "%s: %.100s", why, u->valuestring);
			} else {
				cJSON_AddItemToArray(uris, cJSON_CreateString(u->valuestring));
				continue;
			}
			error = "invalid_redirect_uri";
			break;
		}
	}
	const char *method = "client_secret_basic";     /* RFC 7591 2: the default */
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(in, "token_endpoint_auth_method");
	if (why == NULL && m != NULL) {
		if (!cJSON_IsString(m) || (strcmp(m->valuestring, "none") != 0 &&
		    strcmp(m->valuestring, "client_secret_basic") != 0 && strcmp(m->valuestring, "client_secret_post") != 0))
			why = "token_endpoint_auth_method must be none, client_secret_basic or client_secret_post";
		else
			method = m->valuestring;
	}
	int want_refresh = 0;
	const cJSON *gt = cJSON_GetObjectItemCaseSensitive(in, "grant_types");
	if (why == NULL && gt != NULL) {
		int code = 0;
		const cJSON *v;
		if (!cJSON_IsArray(gt))
			why = "grant_types must be an array";
		cJSON_ArrayForEach(v, gt) {
			if (cJSON_IsString(v) && strcmp(v->valuestring, "authorization_code") == 0)
				code = 1;
			else if (cJSON_IsString(v) && strcmp(v->valuestring, "refresh_token") == 0)
				want_refresh = 1;
			else
				why = "grant_types may hold authorization_code and refresh_token only";
		}
		if (why == NULL && !code)
			why = "grant_types must include authorization_code";
		if (why == NULL && want_refresh && oc->refresh_ttl_ms == 0)
			why = "this server issues no refresh tokens (auth.refresh_ttl is 0)";
	} else if (gt == NULL) {
		want_refresh = 0;
	}
	const cJSON *rt = cJSON_GetObjectItemCaseSensitive(in, "response_types");
	if (why == NULL && rt != NULL) {
		const cJSON *v;
		if (!cJSON_IsArray(rt))
			why = "response_types must be an array";
		cJSON_ArrayForEach(v, rt)
			if (!cJSON_IsString(v) || strcmp(v->valuestring, "code") != 0)
				why = "response_types may hold code only";
	}
	const cJSON *nm = cJSON_GetObjectItemCaseSensitive(in, "client_name");
	if (why == NULL && nm != NULL && (!cJSON_IsString(nm) || strlen(nm->valuestring) > OAUTH_MAX_NAME ||
	    !printable(nm->valuestring)))
		why = "client_name must be a string of at most 200 printable characters";
	const cJSON *sc = cJSON_GetObjectItemCaseSensitive(in, "scope");
	if (why == NULL && sc != NULL && (!cJSON_IsString(sc) || !scope_valid(sc->valuestring)))
		why = "scope must be space-separated scope tokens";
	if (why != NULL) {
		cJSON_Delete(in);
		cJSON_Delete(rec);
		reg_error(q, error, why);
		return;
	}
	char id[80], secret[80] = "", hash[65];
	if (oauth_new_secret(CLIENT_ID_PREFIX, id, sizeof(id)) < 0 ||
	    (strcmp(method, "none") != 0 && oauth_new_secret("mcpd_cs_", secret, sizeof(secret)) < 0)) {
		cJSON_Delete(in);
		cJSON_Delete(rec);
		oreq_error(q, 500, "server_error", "no random bytes");
		return;
	}
	/* A shorter id: 128 bits are plenty for an identifier. */
	_Static_assert(sizeof(CLIENT_ID_PREFIX) - 1 + 22 <= MAX_REGISTERED_ID, "client ids are looked up");
	id[sizeof(CLIENT_ID_PREFIX) - 1 + 22] = '\0';
	int64_t now = oauth_now();
	cJSON_AddStringToObject(rec, "client_id", id);
	cJSON_AddStringToObject(rec, "method", method);
	if (secret[0]) {
		oauth_sha256_hex(secret, strlen(secret), hash);
		cJSON_AddStringToObject(rec, "secret_sha256", hash);
	}
	if (nm != NULL)
		cJSON_AddStringToObject(rec, "client_name", nm->valuestring);
	if (sc != NULL)
		cJSON_AddStringToObject(rec, "scope", sc->valuestring);
	cJSON *grants = cJSON_AddArrayToObject(rec, "grant_types");
	cJSON_AddItemToArray(grants, cJSON_CreateString("authorization_code"));
	if (want_refresh)
		cJSON_AddItemToArray(grants, cJSON_CreateString("refresh_token"));
	cJSON_AddNumberToObject(rec, "created", (double)now);

	cJSON *a = cJSON_CreateObject();
	cJSON_AddStringToObject(a, "client_id", id);
	cJSON_AddNumberToObject(a, "client_id_issued_at", (double)now);
	if (secret[0]) {
		cJSON_AddStringToObject(a, "client_secret", secret);
		cJSON_AddNumberToObject(a, "client_secret_expires_at", 0);
	}
	cJSON_AddItemToObject(a, "redirect_uris", cJSON_Duplicate(uris, 1));
	cJSON_AddStringToObject(a, "token_endpoint_auth_method", method);
	cJSON_AddItemToObject(a, "grant_types", cJSON_Duplicate(grants, 1));
	cJSON *rts = cJSON_AddArrayToObject(a, "response_types");
	cJSON_AddItemToArray(rts, cJSON_CreateString("code"));
	if (nm != NULL)
		cJSON_AddStringToObject(a, "client_name", nm->valuestring);
	if (sc != NULL)
		cJSON_AddStringToObject(a, "scope", sc->valuestring);
	OPENSSL_cleanse(secret, sizeof(secret));
	cJSON_Delete(in);
	g->answer = a;
	const char *key = arena_printf(q->ar, "oauth:client:%s", id);
	oreq_set(q, key, rec, oc->client_ttl_ms, MCPD_SET_IF_ABSENT, reg_stored);
	cJSON_Delete(rec);
}

static void
register_endpoint(struct http_request *r, void *arg)
{
	struct oauth *o = arg;
	struct reg *g = (struct reg *)oreq_new_post(o, r, "POST, OPTIONS", sizeof(struct reg), reg_free);
	if (g == NULL)
		return;
	if (!o->oc->registration) {
		oreq_error(&g->q, 403, "access_denied", "dynamic client registration is off on this server");
		return;
	}
	oreq_rate(&g->q, "register", o->oc->rate_register, 0, reg_counted);
}

int
oauth_client_routes(struct oauth *o, struct http_server *http)
{
	return http_server_route(http, "/oauth/register", register_endpoint, o);
}

/* ---- lookup ---- */

static void
client_found(struct oreq *q, int status, cJSON *v)
{
	void (*next)(struct oreq *, const struct oclient *) = q->client_next;
	q->client_status = status;
	if (status == MCPD_NOT_FOUND) {
		q->client_error = "unknown client (registrations expire when unused)";
		next(q, NULL);
		return;
	}
	if (status != MCPD_OK) {
		q->client_error = "the client registry is unavailable";
		next(q, NULL);
		return;
	}
	struct oclient *c = oclient_from_json(q->ar, v);
	char *raw = cJSON_PrintUnformatted(v);
	q->client_raw = raw ? arena_strdup(q->ar, raw) : NULL;
	cJSON_free(raw);
	if (c == NULL) {
		q->client_status = MCPD_ERROR;
		q->client_error = "a malformed client record";
	}
	next(q, c);
}

void
oreq_client(struct oreq *q, const char *client_id, void (*next)(struct oreq *, const struct oclient *))
{
	q->client_next = next;
	q->client_status = MCPD_NOT_FOUND;
	size_t len = strlen(client_id);
	if (len == 0 || len > MAX_CLIENT_ID) {
		q->client_error = "the client_id is empty or too long";
		next(q, NULL);
		return;
	}
	if (strncmp(client_id, "https://", 8) == 0) {
		if (q->o->cimd == NULL) {
			q->client_error = "this server does not accept client ID metadata documents "
			    "(URL client_ids); register with POST /oauth/register";
			next(q, NULL);
			return;
		}
		cimd_lookup(q, client_id);
		return;
	}
	if (len > MAX_REGISTERED_ID) {
		q->client_error = "unknown client";
		next(q, NULL);
		return;
	}
	for (const char *p = client_id; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '_')) {
			q->client_error = "unknown client";
			next(q, NULL);
			return;
		}
	oreq_get(q, arena_printf(q->ar, "oauth:client:%s", client_id), client_found);
}

/* ---- client authentication ---- */

static void
cauth_end(struct oreq *q)
{
	if (q->cauth != NULL && q->cauth->secret != NULL) {
		OPENSSL_cleanse(q->cauth->secret, strlen(q->cauth->secret));
		q->cauth->secret = NULL;
	}
}

static void
invalid_client(struct oreq *q, const char *why)
{
	cauth_end(q);
	oreq_error(q, 401, "invalid_client", why);
}

static void
cauth_found(struct oreq *q, const struct oclient *c)
{
	struct oreq_cauth *ca = q->cauth;
	if (c == NULL) {
		if (q->client_status == MCPD_ERROR) {
			cauth_end(q);
			oreq_storage_error(q, "looking a client up");
		} else {
			invalid_client(q, q->client_error);
		}
		return;
	}
	int is_public = strcmp(c->method, "none") == 0;
	if (is_public) {
		if (ca->secret != NULL) {
			invalid_client(q, "this client is public (token_endpoint_auth_method none): it has no secret");
			return;
		}
		if (ca->confidential_only) {
			invalid_client(q, "this endpoint needs a confidential client (one with a secret)");
			return;
		}
	} else {
		if (ca->secret == NULL || c->secret_sha256 == NULL) {
			invalid_client(q, "this client must authenticate with its secret");
			return;
		}
		/* The method it registered, not another (RFC 7591 2). */
		if (strcmp(ca->method, c->method) != 0) {
			invalid_client(q, arena_printf(q->ar, "this client authenticates with %s", c->method));
			return;
		}
		char hex[65];
		oauth_sha256_hex(ca->secret, strlen(ca->secret), hex);
		int same = strlen(c->secret_sha256) == 64 && CRYPTO_memcmp(hex, c->secret_sha256, 64) == 0;
		if (!same) {
			log_notice("oauth: client %s from %s failed to authenticate", c->id, q->addr);
			invalid_client(q, "client authentication failed");
			return;
		}
	}
	cauth_end(q);
	ca->next(q, c);
}

void
oreq_client_auth(struct oreq *q, const struct form *f, int confidential_only,
    void (*next)(struct oreq *, const struct oclient *))
{
	struct oreq_cauth *ca = arena_zalloc(q->ar, sizeof(*ca));
	ca->confidential_only = confidential_only;
	ca->next = next;
	q->cauth = ca;
	const char *h = http_request_field(q->r, HDR_AUTHORIZATION);
	const char *id = form_get(f, "client_id");
	const char *secret = form_get(f, "client_secret");
	const char *basic_id = NULL;
	if (h != NULL && strncasecmp(h, "Basic ", 6) == 0) {
		const char *b = h + 6;
		while (*b == ' ')
			b++;
		size_t bl = strlen(b);
		unsigned char raw[1024];
		size_t rl;
		if (bl > 1300 || base64_decode(b, bl, raw, &rl) < 0 || rl >= sizeof(raw)) {
			invalid_client(q, "malformed Basic credentials");
			return;
		}
		raw[rl] = '\0';
		char *colon = strchr((char *)raw, ':');
		struct form parts;
		const char *why;
		/* RFC 6749 2.3.1: both halves are form-encoded. */
		if (colon == NULL || memchr(raw, '\0', rl) != NULL) {
			OPENSSL_cleanse(raw, sizeof(raw));
			invalid_client(q, "malformed Basic credentials");
			return;
		}
		char *joined = arena_printf(q->ar, "i=%.*s&s=%s", (int)(colon - (char *)raw), (char *)raw, colon + 1);
		OPENSSL_cleanse(raw, sizeof(raw));
		int bad = form_parse(q->ar, joined, strlen(joined), 2, OAUTH_MAX_PARAM, &parts, &why) < 0;
		OPENSSL_cleanse(joined, strlen(joined));
		if (bad || form_get(&parts, "i") == NULL || form_get(&parts, "s") == NULL) {
			invalid_client(q, "malformed Basic credentials");
			return;
		}
		basic_id = form_get(&parts, "i");
		ca->secret = (char *)form_get(&parts, "s");
		if (secret != NULL) {
			cauth_end(q);
			oreq_error(q, 400, "invalid_request", "use one client authentication method, not Basic and client_secret");
			return;
		}
		if (id != NULL && strcmp(id, basic_id) != 0) {
			cauth_end(q);
			oreq_error(q, 400, "invalid_request", "client_id differs from the Basic credentials");
			return;
		}
		id = basic_id;
		ca->method = "client_secret_basic";
	} else if (h != NULL && strncasecmp(h, "Bearer ", 7) != 0) {
		invalid_client(q, "unsupported Authorization scheme (use Basic)");
		return;
	} else if (secret != NULL) {
		ca->secret = arena_strdup(q->ar, secret);
		ca->method = "client_secret_post";
	} else {
		ca->method = "none";
	}
	if (id == NULL || id[0] == '\0') {
		invalid_client(q, "client authentication is required (client_id)");
		return;
	}
	oreq_client(q, id, cauth_found);
}
