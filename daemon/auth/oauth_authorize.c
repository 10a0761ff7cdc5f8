/* The authorization endpoint. GET /oauth/authorize checks the request
 * (client, exact redirect URI, response_type=code, PKCE with S256,
 * scope, resource), keeps it in storage under a random id and shows the
 * sign-in and consent page; POST /oauth/authorize (that page's form,
 * bound to the browser by a cookie) checks the password off the loop and
 * redirects back with a single-use code, the state and the issuer
 * (RFC 9207). Errors go back to the client (RFC 6749 4.1.2.1) once the
 * redirect URI is known to be the client's; before that, a page says
 * what is wrong. */
#include "oauth_internal.h"
#include "idhash.h"
#include "arena.h"
#include "auth.h"
#include "config.h"
#include "form.h"
#include "http.h"
#include "log.h"
#include "offload.h"
#include "pwhash.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CSRF_COOKIE "mcpd_csrf_"

struct authz {
	struct oreq q;
	struct form f;
	/* the authorization request */
	const char *client_id, *client_name, *redirect_uri, *state, *scope, *challenge, *resource;
	const char *issuer;
	/* the form */
	const char *request_id, *req_hash, *csrf, *user;
	char *password;                 /* heap, wiped */
	size_t password_len;
	const struct oauth_user *account;
	const char *hash;               /* checked against (a dummy for unknown users) */
	int match;
	cJSON *code_rec;
	const char *code;
};

static void
authz_free(struct oreq *q)
{
	struct authz *a = (struct authz *)q;
	if (a->password != NULL) {
		OPENSSL_cleanse(a->password, a->password_len);
		free(a->password);
	}
	cJSON_Delete(a->code_rec);
}

static const char *
title(struct oreq *q)
{
	const struct config *c = q->o->cfg;
	if (c->oauth.login_title != NULL)
		return c->oauth.login_title;
	return arena_printf(q->ar, "Sign in to %s", c->authz.resource_name ? c->authz.resource_name :
	    c->server.name);
}

/* redirect_uri with params added to its query. */
static const char *
back_to_client(struct authz *a, const char *params)
{
	struct arena *ar = a->q.ar;
	const char *sep = strchr(a->redirect_uri, '?') ? "&" : "?";
	const char *s = arena_printf(ar, "%s%s%s", a->redirect_uri, sep, params);
	if (a->state != NULL)
		s = arena_printf(ar, "%s&state=%s", s, url_encode(ar, a->state));
	return arena_printf(ar, "%s&iss=%s", s, url_encode(ar, a->issuer));
}

static void
error_to_client(struct authz *a, const char *error, const char *description)
{
	struct arena *ar = a->q.ar;
	oreq_redirect(&a->q, back_to_client(a, arena_printf(ar, "error=%s&error_description=%s", error,
	    url_encode(ar, description))));
}

static void
error_page(struct oreq *q, int status, const char *message)
{
	oreq_html(q, status, page_error(q->ar, "Cannot sign in", message));
}

static const char *
host_of(struct arena *ar, const char *uri)
{
	const char *p = strstr(uri, "://");
	if (p == NULL)
		return arena_strndup(ar, uri, strcspn(uri, "?"));
	p += 3;
	return arena_strndup(ar, p, strcspn(p, "/?"));
}

/* ---- GET: the request, then the page ---- */

static void
show_page(struct authz *a, int status, const char *error)
{
	struct oreq *q = &a->q;
	struct page_login p = {
		.title = title(q), .client_name = a->client_name, .client_id = a->client_id,
		.redirect_host = host_of(q->ar, a->redirect_uri), .scope = a->scope,
		.request_id = a->request_id, .csrf = a->csrf, .user = a->user, .error = error,
	};
	if (q->r != NULL) {
		/* The form is bound to this browser: the cookie must come back with it. */
		char hash[65];
		idhash_hex(a->request_id, strlen(a->request_id), hash);
		const char *cookie = arena_printf(q->ar, "%s%.12s=%s; Path=/oauth/authorize; Max-Age=%llu; HttpOnly; "
		    "SameSite=Strict%s", CSRF_COOKIE, hash, a->csrf,
		    (unsigned long long)(q->o->oc->login_ttl_ms / 1000), http_request_tls(q->r) ? "; Secure" : "");
		http_response_header(q->r, "Set-Cookie", cookie);
	}
	oreq_html(q, status, page_login(q->ar, &p));
}

static void
request_stored(struct oreq *q, int status)
{
	struct authz *a = (struct authz *)q;
	if (status != MCPD_OK) {
		error_page(q, 503, "The server cannot keep this sign-in request now; try again in a moment.");
		return;
	}
	show_page(a, 200, NULL);
}

static int
challenge_ok(const char *s)
{
	/* BASE64URL(SHA-256(verifier)): 43 characters. */
	if (strlen(s) != 43)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		    *s == '-' || *s == '_'))
			return 0;
	return 1;
}

static void
client_checked(struct oreq *q, const struct oclient *c)
{
	struct authz *a = (struct authz *)q;
	const struct config *cfg = q->o->cfg;
	if (c == NULL) {
		if (q->client_status == MCPD_ERROR)
			error_page(q, 503, "The server cannot look this application up now; try again in a moment.");
		else
			error_page(q, 400, arena_printf(q->ar, "The application is not known to this server: %s.",
			    q->client_error));
		return;
	}
	a->client_name = c->name;
	const char *ru = form_get(&a->f, "redirect_uri");
	if (ru == NULL) {
		if (c->nredirect != 1) {
			error_page(q, 400, "The request has no redirect_uri, and the application registered several.");
			return;
		}
		ru = c->redirect_uris[0];
	} else if (!oclient_has_redirect(c, ru)) {
		error_page(q, 400, "The redirect_uri is not one the application registered (they must match exactly).");
		return;
	}
	a->redirect_uri = ru;
	/* From here on, errors go back to the application. */
	const char *rt = form_get(&a->f, "response_type");
	const char *method = form_get(&a->f, "code_challenge_method");
	a->challenge = form_get(&a->f, "code_challenge");
	a->scope = form_get(&a->f, "scope");
	a->resource = form_get(&a->f, "resource");
	const char *expected = auth_resource_url(q->o->auth, q->r);
	if (a->state != NULL && strlen(a->state) > OAUTH_MAX_STATE) {
		a->state = NULL;
		error_to_client(a, "invalid_request", "state is too long");
		return;
	}
	if (a->f.repeated != NULL) {
		error_to_client(a, "invalid_request", arena_printf(q->ar, "parameter %s is repeated", a->f.repeated));
		return;
	}
	if (rt == NULL || strcmp(rt, "code") != 0) {
		error_to_client(a, "unsupported_response_type", "only response_type=code is supported");
		return;
	}
	if (a->challenge == NULL) {
		error_to_client(a, "invalid_request", "PKCE is required: send code_challenge with code_challenge_method=S256");
		return;
	}
	if (method == NULL || strcmp(method, "S256") != 0) {
		error_to_client(a, "invalid_request", method != NULL && strcmp(method, "plain") == 0 ?
		    "PKCE method plain is not allowed: use S256" : "code_challenge_method must be S256");
		return;
	}
	if (!challenge_ok(a->challenge)) {
		error_to_client(a, "invalid_request", "code_challenge must be 43 base64url characters (S256)");
		return;
	}
	if (a->scope != NULL && a->scope[0] == '\0')
		a->scope = NULL;
	if (a->scope != NULL) {
		if (!scope_valid(a->scope)) {
			error_to_client(a, "invalid_scope", "scope must be space-separated scope tokens");
			return;
		}
		if (cfg->authz.scopes_supported != NULL && !scope_subset(a->scope, cfg->authz.scopes_supported)) {
			error_to_client(a, "invalid_scope", arena_printf(q->ar, "this server knows the scopes: %s",
			    cfg->authz.scopes_supported));
			return;
		}
		if (c->scope != NULL && !scope_subset(a->scope, c->scope)) {
			error_to_client(a, "invalid_scope", "the application registered for fewer scopes");
			return;
		}
	}
	if (a->resource != NULL && strcmp(a->resource, expected) != 0) {
		error_to_client(a, "invalid_target", arena_printf(q->ar, "this server's resource is %s", expected));
		return;
	}
	a->resource = expected;
	char id[64], csrf[64];
	if (random_token(id, 32) < 0 || random_token(csrf, 32) < 0) {
		error_page(q, 500, "No random bytes.");
		return;
	}
	a->request_id = arena_strdup(q->ar, id);
	a->csrf = arena_strdup(q->ar, csrf);
	char hash[65];
	idhash_hex(id, strlen(id), hash);
	cJSON *rec = cJSON_CreateObject();
	cJSON_AddStringToObject(rec, "client_id", a->client_id);
	cJSON_AddStringToObject(rec, "client_name", a->client_name);
	cJSON_AddStringToObject(rec, "redirect_uri", a->redirect_uri);
	cJSON_AddBoolToObject(rec, "redirect_given", form_get(&a->f, "redirect_uri") != NULL);
	if (a->state != NULL)
		cJSON_AddStringToObject(rec, "state", a->state);
	if (a->scope != NULL)
		cJSON_AddStringToObject(rec, "scope", a->scope);
	if (c->scope != NULL)
		cJSON_AddStringToObject(rec, "client_scope", c->scope);
	cJSON_AddStringToObject(rec, "challenge", a->challenge);
	cJSON_AddStringToObject(rec, "resource", a->resource);
	cJSON_AddStringToObject(rec, "issuer", a->issuer);
	cJSON_AddStringToObject(rec, "csrf", a->csrf);
	oreq_set(q, arena_printf(q->ar, "oauth:req:%s", hash), rec, q->o->oc->login_ttl_ms, MCPD_SET_IF_ABSENT,
	    request_stored);
	cJSON_Delete(rec);
}

static void
authorize_get(struct authz *a)
{
	struct oreq *q = &a->q;
	const char *query = http_request_query(q->r);
	const char *why = NULL;
	if (query == NULL || query[0] == '\0') {
		error_page(q, 400, "This address is for OAuth clients: it needs an authorization request.");
		return;
	}
	if (strlen(query) > OAUTH_MAX_FORM ||
	    form_parse(q->ar, query, strlen(query), 32, OAUTH_MAX_PARAM, &a->f, &why) < 0) {
		error_page(q, 400, why ? why : "The authorization request is too long.");
		return;
	}
	a->client_id = form_get(&a->f, "client_id");
	a->state = form_get(&a->f, "state");
	a->issuer = arena_strdup(q->ar, auth_issuer(q->o->auth, q->r));
	if (a->client_id == NULL) {
		error_page(q, 400, "The authorization request has no client_id.");
		return;
	}
	oreq_client(q, a->client_id, client_checked);
}

/* ---- POST: the form ---- */

static void
code_stored(struct oreq *q, int status)
{
	struct authz *a = (struct authz *)q;
	if (status != MCPD_OK) {
		error_to_client(a, "temporarily_unavailable", "the server cannot store the authorization now");
		return;
	}
	log_info("oauth: %s signed in from %s and allowed client %s%s%s", a->account->name, q->addr,
	    a->client_id, json_str(a->code_rec, "scope")[0] ? " the scopes " : "", json_str(a->code_rec, "scope"));
	oreq_redirect(q, back_to_client(a, arena_printf(q->ar, "code=%s", a->code)));
}

static void
request_used(struct oreq *q, int status)
{
	struct authz *a = (struct authz *)q;
	if (status == MCPD_ERROR) {
		error_page(q, 503, "The server cannot complete the sign-in now; try again in a moment.");
		return;
	}
	if (status != MCPD_OK) {
		/* Another submission of the same form got there first. */
		error_page(q, 400, "This sign-in request was already used. Start again from your application.");
		return;
	}
	char code[96], grant[48], hash[65];
	if (oauth_new_secret(OAUTH_CODE_PREFIX, code, sizeof(code)) < 0 || random_token(grant, 18) < 0) {
		error_page(q, 500, "No random bytes.");
		return;
	}
	a->code = arena_strdup(q->ar, code);
	idhash_hex(code, strlen(code), hash);
	OPENSSL_cleanse(code, sizeof(code));
	cJSON_AddStringToObject(a->code_rec, "user", a->account->name);
	cJSON_AddStringToObject(a->code_rec, "grant", grant);
	cJSON_AddNumberToObject(a->code_rec, "exp", (double)(oauth_now() + (int64_t)(q->o->oc->code_ttl_ms / 1000)));
	uint64_t keep = q->o->oc->code_ttl_ms > OAUTH_CODE_KEEP_MS ? q->o->oc->code_ttl_ms : OAUTH_CODE_KEEP_MS;
	oreq_set(q, arena_printf(q->ar, "oauth:code:%s", hash), a->code_rec, keep, MCPD_SET_IF_ABSENT, code_stored);
}

static void
password_checked(void *arg, int cancelled)
{
	struct authz *a = arg;
	struct oreq *q = &a->q;
	OPENSSL_cleanse(a->password, a->password_len);
	if (cancelled || q->r == NULL) {
		oreq_free(q);
		return;
	}
	if (a->account == NULL || a->match != 1) {
		if (a->match < 0)
			log_warn("oauth: the password hash of %s cannot be checked", a->user);
		log_notice("oauth: failed sign-in as %s from %s", oauth_printable(q->ar, a->user), q->addr);
		show_page(a, 200, "Wrong user name or password.");
		return;
	}
	/* Which scopes: what was asked for (or, if nothing, all the user
	 * has that the server knows), as far as the user has them and the
	 * application registered for them. */
	const struct config *cfg = q->o->cfg;
	const char *granted;
	if (a->scope != NULL)
		granted = scope_intersect(q->ar, a->scope, a->account->scopes);
	else if (cfg->authz.scopes_supported != NULL)
		granted = scope_intersect(q->ar, a->account->scopes, cfg->authz.scopes_supported);
	else
		granted = a->account->scopes;
	const char *client_scope = json_str(a->code_rec, "client_scope");
	if (client_scope != NULL)
		granted = scope_intersect(q->ar, granted, client_scope);
	cJSON_DeleteItemFromObjectCaseSensitive(a->code_rec, "client_scope");
	cJSON_DeleteItemFromObjectCaseSensitive(a->code_rec, "scope");
	cJSON_AddStringToObject(a->code_rec, "scope", granted);
	/* The request is used once: whoever deletes it goes on. */
	oreq_del(q, arena_printf(q->ar, "oauth:req:%s", a->req_hash), request_used);
}

static void
check_password(void *arg)
{
	struct authz *a = arg;
	a->match = pwhash_check(a->password, a->password_len, a->hash);
}

static void
denied_done(struct oreq *q, int status)
{
	(void)status;
	error_to_client((struct authz *)q, "access_denied", "the user denied the request");
}

static int
same(const char *a, const char *b)
{
	size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0;
	return a != NULL && b != NULL && la == lb && la > 0 && CRYPTO_memcmp(a, b, la) == 0;
}

static void
request_found(struct oreq *q, int status, cJSON *rec)
{
	struct authz *a = (struct authz *)q;
	if (status == MCPD_ERROR) {
		error_page(q, 503, "The server cannot complete the sign-in now; try again in a moment.");
		return;
	}
	if (status != MCPD_OK) {
		error_page(q, 400, "This sign-in request has expired or was already used. Start again from your application.");
		return;
	}
	a->client_id = arena_strdup(q->ar, json_str(rec, "client_id") ? json_str(rec, "client_id") : "");
	a->client_name = arena_strdup(q->ar, json_str(rec, "client_name") ? json_str(rec, "client_name") : "");
	a->redirect_uri = json_str(rec, "redirect_uri") ? arena_strdup(q->ar, json_str(rec, "redirect_uri")) : NULL;
	a->state = json_str(rec, "state") ? arena_strdup(q->ar, json_str(rec, "state")) : NULL;
	a->scope = json_str(rec, "scope") ? arena_strdup(q->ar, json_str(rec, "scope")) : NULL;
	a->issuer = json_str(rec, "issuer") ? arena_strdup(q->ar, json_str(rec, "issuer")) : NULL;
	if (a->redirect_uri == NULL || a->issuer == NULL || json_str(rec, "challenge") == NULL) {
		error_page(q, 500, "A malformed sign-in request.");
		return;
	}
	/* The form must come from the page this browser was given: its
	 * hidden field and its cookie both carry the request's token. */
	char hash[65];
	idhash_hex(a->request_id, strlen(a->request_id), hash);
	const char *cookie = cookie_get(q->ar, http_request_field(q->r, HDR_COOKIE),
	    arena_printf(q->ar, "%s%.12s", CSRF_COOKIE, hash));
	const char *want = json_str(rec, "csrf");
	if (!same(a->csrf, want) || !same(cookie, want)) {
		log_notice("oauth: a sign-in form from %s failed the CSRF check", q->addr);
		error_page(q, 403, "This form could not be verified (it came from another site, or cookies are off). "
		    "Start again from your application.");
		return;
	}
	const char *action = form_get(&a->f, "action");
	if (action != NULL && strcmp(action, "deny") == 0) {
		log_info("oauth: a user at %s denied client %s", q->addr, a->client_id);
		oreq_del(q, arena_printf(q->ar, "oauth:req:%s", a->req_hash), denied_done);
		return;
	}
	if (action == NULL || strcmp(action, "allow") != 0) {
		error_page(q, 400, "The form has no action (allow or deny).");
		return;
	}
	/* What the code will carry, less the user and the grant. */
	a->code_rec = cJSON_CreateObject();
	cJSON_AddStringToObject(a->code_rec, "client_id", a->client_id);
	cJSON_AddStringToObject(a->code_rec, "redirect_uri", a->redirect_uri);
	cJSON_AddBoolToObject(a->code_rec, "redirect_given",
	    !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(rec, "redirect_given")));
	cJSON_AddStringToObject(a->code_rec, "challenge", json_str(rec, "challenge"));
	cJSON_AddStringToObject(a->code_rec, "resource", json_str(rec, "resource") ? json_str(rec, "resource") : "");
	if (json_str(rec, "client_scope") != NULL)
		cJSON_AddStringToObject(a->code_rec, "client_scope", json_str(rec, "client_scope"));
	const char *user = form_get(&a->f, "username");
	const char *password = form_get(&a->f, "password");
	if (user == NULL || user[0] == '\0' || password == NULL || password[0] == '\0') {
		show_page(a, 200, "Enter your user name and password.");
		return;
	}
	a->user = user;
	a->password_len = strlen(password);
	a->password = malloc(a->password_len + 1);
	if (a->password == NULL) {
		error_page(q, 500, "Out of memory.");
		return;
	}
	memcpy(a->password, password, a->password_len + 1);
	OPENSSL_cleanse((char *)password, a->password_len);
	const struct oauth_conf *oc = q->o->oc;
	a->account = oauth_find_user(oc, user);
	a->hash = a->account != NULL ? a->account->hash : pwhash_dummy();
	if (offload_run(q->o->offload, check_password, password_checked, a) < 0) {
		if (q->r != NULL)
			http_response_header(q->r, "Retry-After", "1");
		error_page(q, 503, "The server is busy checking other sign-ins; try again in a moment.");
	}
}

static void
login_counted(struct oreq *q)
{
	struct authz *a = (struct authz *)q;
	a->request_id = form_get(&a->f, "request_id");
	a->csrf = form_get(&a->f, "csrf");
	if (a->request_id == NULL || a->request_id[0] == '\0' || strlen(a->request_id) > 64) {
		error_page(q, 400, "The form has no sign-in request. Start again from your application.");
		return;
	}
	char hash[65];
	idhash_hex(a->request_id, strlen(a->request_id), hash);
	a->req_hash = arena_strdup(q->ar, hash);
	oreq_get(q, arena_printf(q->ar, "oauth:req:%s", hash), request_found);
}

static void
authorize_endpoint(struct http_request *r, void *arg)
{
	struct oauth *o = arg;
	const char *m = http_request_method(r);
	if (oauth_host_refused(o, r))
		return;
	if (strcmp(m, "GET") != 0 && strcmp(m, "POST") != 0) {
		http_response_header(r, "Allow", "GET, POST");
		http_respond_text(r, 405, "method not allowed");
		return;
	}
	struct authz *a = (struct authz *)oreq_new(o, r, sizeof(struct authz));
	if (a == NULL) {
		http_respond_text(r, 500, "out of memory");
		return;
	}
	a->q.free_fn = authz_free;
	if (strcmp(m, "GET") == 0) {
		authorize_get(a);
		return;
	}
	/* A browser names the page a form comes from: it must be ours. */
	const char *origin = http_request_field(r, HDR_ORIGIN);
	const char *host = http_request_field(r, HDR_HOST);
	if (origin != NULL && strcmp(origin, "null") != 0 && (host == NULL ||
	    strcmp(origin, arena_printf(a->q.ar, "%s://%s", http_request_tls(r) ? "https" : "http", host)) != 0)) {
		log_notice("oauth: a sign-in form from %s came from another origin (%.100s)", a->q.addr, origin);
		error_page(&a->q, 403, "This form came from another site. Start again from your application.");
		return;
	}
	if (oreq_form(&a->q, &a->f, 0) < 0)
		return;
	/* The parsed copy is all we need: the raw body holds the password. */
	size_t len;
	const char *body = http_request_body(r, &len);
	if (body != NULL)
		OPENSSL_cleanse((char *)body, len);
	oreq_rate(&a->q, "login", o->oc->rate_login, 1, login_counted);
}

int
oauth_authorize_routes(struct oauth *o, struct http_server *http)
{
	return http_server_route(http, "/oauth/authorize", authorize_endpoint, o);
}
