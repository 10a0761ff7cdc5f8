/* The internal authorization server: its routes, the RFC 8414 metadata,
 * the access-token validator auth.c calls, revocation across workers,
 * and the helpers its endpoints share (see oauth_internal.h). */
#include "oauth.h"
#include "oauth_internal.h"
#include "idhash.h"
#include "arena.h"
#include "auth.h"
#include "config.h"
#include "form.h"
#include "guard.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "offload.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define REVOKE_CHANNEL "mcpd:oauth"
#define MAX_QUEUED_CHECKS 32    /* password checks waiting per worker */

/* ---- small helpers ---- */

static int
user_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct oauth_user *)elem)->name);
}

const struct oauth_user *
oauth_find_user(const struct oauth_conf *oc, const char *name)
{
	if (oc->nusers == 0)
		return NULL;
	return bsearch(name, oc->users, oc->nusers, sizeof(*oc->users), user_cmp);
}

const char *
oauth_printable(struct arena *ar, const char *s)
{
	char *out = arena_strndup(ar, s, strnlen(s, 128));
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return out;
}

int64_t
oauth_now(void)
{
	return (int64_t)time(NULL);
}

void
oauth_sha256_hex(const char *s, size_t len, char out[65])
{
	unsigned char h[32];
	unsigned int n = 32;
	EVP_Digest(s, len, h, &n, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* prefix + 256 random bits in base64url. */
int
oauth_new_secret(const char *prefix, char *out, size_t outlen)
{
	char tok[64];
	if (random_token(tok, 32) < 0)
		return -1;
	int n = snprintf(out, outlen, "%s%s", prefix, tok);
	OPENSSL_cleanse(tok, sizeof(tok));
	return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), separated
 * by single spaces. */
int
scope_valid(const char *s)
{
	if (strlen(s) > OAUTH_MAX_SCOPE)
		return 0;
	int prev_space = 1;
	if (*s == '\0')
		return 1;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == ' ') {
			if (prev_space)
				return 0;
			prev_space = 1;
			continue;
		}
		if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
			return 0;
		prev_space = 0;
	}
	return !prev_space;
}

int
scope_has(const char *set, const char *scope, size_t len)
{
	for (const char *g = set; g != NULL && *g;) {
		while (*g == ' ')
			g++;
		size_t gl = strcspn(g, " ");
		if (gl == len && gl > 0 && memcmp(g, scope, len) == 0)
			return 1;
		g += gl;
	}
	return 0;
}

int
scope_subset(const char *sub, const char *set)
{
	for (const char *s = sub; *s;) {
		while (*s == ' ')
			s++;
		size_t l = strcspn(s, " ");
		if (l > 0 && !scope_has(set, s, l))
			return 0;
		s += l;
	}
	return 1;
}

/* The scopes of a that b has too, in a's order. */
const char *
scope_intersect(struct arena *ar, const char *a, const char *b)
{
	char *out = arena_alloc(ar, strlen(a) + 1);
	size_t o = 0;
	for (const char *s = a; *s;) {
		while (*s == ' ')
			s++;
		size_t l = strcspn(s, " ");
		if (l > 0 && scope_has(b, s, l) && !scope_has(arena_strndup(ar, out, o), s, l)) {
			if (o > 0)
				out[o++] = ' ';
			memcpy(out + o, s, l);
			o += l;
		}
		s += l;
	}
	out[o] = '\0';
	return out;
}

static int
loopback_host(const char *host, size_t len)
{
	return (len == 9 && strncasecmp(host, "localhost", 9) == 0) ||
	    (len >= 9 && strncmp(host, "127.", 4) == 0 && strspn(host, "0123456789.") == len) ||
	    (len == 5 && memcmp(host, "[::1]", 5) == 0);
}

/* RFC 8252 and OAuth 2.1: https; http only to a loopback host (native
 * apps listening on a port); a private-use scheme (reverse domain name,
 * so with a dot) for apps that claim one. No fragment, no credentials. */
int
redirect_uri_ok(const char *uri, const char **why)
{
	size_t len = strlen(uri);
	if (len == 0 || len > OAUTH_MAX_URI) {
		*why = "a redirect URI is 1 to 1024 characters";
		return 0;
	}
	for (const char *p = uri; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '"' || *p == '<' ||
		    *p == '>' || *p == '\\' || *p == '`' || *p == '{' || *p == '}' || *p == '|' || *p == '^') {
			*why = "a redirect URI must be an absolute URI without spaces or unsafe characters";
			return 0;
		}
	if (strchr(uri, '#') != NULL) {
		*why = "a redirect URI must not have a fragment";
		return 0;
	}
	const char *colon = strchr(uri, ':');
	if (colon == NULL || colon == uri) {
		*why = "a redirect URI must be absolute";
		return 0;
	}
	size_t sl = (size_t)(colon - uri);
	for (size_t i = 0; i < sl; i++) {
		char c = uri[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && ((c >= '0' && c <= '9') ||
		    c == '+' || c == '-' || c == '.')))) {
			*why = "a redirect URI has a malformed scheme";
			return 0;
		}
	}
	int https = sl == 5 && strncasecmp(uri, "https", 5) == 0;
	int http = sl == 4 && strncasecmp(uri, "http", 4) == 0;
	if (https || http) {
		if (strncmp(colon, "://", 3) != 0) {
			*why = "an http(s) redirect URI needs a host";
			return 0;
		}
		const char *host = colon + 3;
		size_t hl = strcspn(host, "/?");
		const char *at = memchr(host, '@', hl);
		if (at != NULL) {
			*why = "a redirect URI must not carry credentials";
			return 0;
		}
		/* host[:port] */
		size_t nl = hl;
		if (host[0] == '[') {
			const char *end = memchr(host, ']', hl);
			nl = end ? (size_t)(end - host) + 1 : hl;
		} else {
			const char *pc = memchr(host, ':', hl);
			if (pc != NULL)
				nl = (size_t)(pc - host);
		}
		if (nl == 0) {
			*why = "an http(s) redirect URI needs a host";
			return 0;
		}
		if (http && !loopback_host(host, nl)) {
			*why = "an http redirect URI must point at a loopback host (localhost, 127.0.0.1, [::1]); use https";
			return 0;
		}
		return 1;
	}
	static const char *const refused[] = { "javascript", "data", "file", "vbscript", "about", "blob",
	    "ftp", "ws", "wss", NULL };
	for (const char *const *r = refused; *r; r++)
		if (strlen(*r) == sl && strncasecmp(uri, *r, sl) == 0) {
			*why = "that redirect URI scheme is not allowed";
			return 0;
		}
	if (memchr(uri, '.', sl) == NULL) {
		*why = "a private-use redirect URI scheme must be a reverse domain name, such as com.example.app:/callback";
		return 0;
	}
	return 1;
}

const char *
json_str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- requests ---- */

static void
oreq_closed(struct http_request *r, void *arg)
{
	(void)r;
	((struct oreq *)arg)->r = NULL;
}

struct oreq *
oreq_new(struct oauth *o, struct http_request *r, size_t size)
{
	struct oreq *q = calloc(1, size);
	if (q == NULL)
		return NULL;
	q->ar = arena_new(4096);
	if (q->ar == NULL) {
		free(q);
		return NULL;
	}
	q->o = o;
	q->r = r;
	/* The address without its port: "127.0.0.1:5555", "[::1]:5555". */
	snprintf(q->addr, sizeof(q->addr), "%s", http_request_remote(r));
	char *colon = strrchr(q->addr, ':');
	if (colon != NULL && (q->addr[0] != '[' || colon[-1] == ']'))
		*colon = '\0';
	http_request_on_close(r, oreq_closed, q);
	return q;
}

struct oreq *
oreq_new_post(struct oauth *o, struct http_request *r, const char *methods, size_t size,
    void (*free_fn)(struct oreq *q))
{
	if (oauth_host_refused(o, r) || oauth_preflight(r, methods))
		return NULL;
	if (strcmp(http_request_method(r), "POST") != 0) {
		http_response_header(r, "Allow", methods);
		http_respond_text(r, 405, "method not allowed");
		return NULL;
	}
	struct oreq *q = oreq_new(o, r, size);
	if (q == NULL) {
		http_respond_text(r, 500, "out of memory");
		return NULL;
	}
	q->free_fn = free_fn;
	return q;
}

void
oreq_free(struct oreq *q)
{
	if (q == NULL)
		return;
	if (q->r != NULL)
		http_request_on_close(q->r, NULL, NULL);
	if (q->free_fn != NULL)
		q->free_fn(q);
	arena_free(q->ar);
	free(q);
}

static void
common_headers(struct http_request *r)
{
	http_response_header(r, "Cache-Control", "no-store");
	http_response_header(r, "Pragma", "no-cache");
}

void
oreq_json(struct oreq *q, int status, cJSON *body)
{
	char *text = body ? cJSON_PrintUnformatted(body) : NULL;
	cJSON_Delete(body);
	if (q->r != NULL) {
		http_request_on_close(q->r, NULL, NULL);
		common_headers(q->r);
		http_response_header(q->r, "Access-Control-Allow-Origin", "*");
		if (text != NULL)
			http_respond(q->r, status, "application/json", text, strlen(text));
		else
			http_respond_text(q->r, 500, "out of memory");
		q->r = NULL;
	}
	if (text != NULL) {
		OPENSSL_cleanse(text, strlen(text));        /* it may hold tokens */
		cJSON_free(text);
	}
	oreq_free(q);
}

void
oreq_error(struct oreq *q, int status, const char *error, const char *description)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "error", error);
	if (description != NULL)
		cJSON_AddStringToObject(o, "error_description", description);
	if (q->r != NULL && status == 401 && http_request_field(q->r, HDR_AUTHORIZATION) != NULL)
		http_response_header(q->r, "WWW-Authenticate", "Basic realm=\"mcpd\"");
	oreq_json(q, status, o);
}

void
oreq_html(struct oreq *q, int status, const char *html)
{
	if (q->r != NULL) {
		http_request_on_close(q->r, NULL, NULL);
		page_headers(q->r);
		http_respond(q->r, status, "text/html; charset=utf-8", html, strlen(html));
		q->r = NULL;
	}
	oreq_free(q);
}

void
oreq_redirect(struct oreq *q, const char *location)
{
	if (q->r != NULL) {
		http_request_on_close(q->r, NULL, NULL);
		page_headers(q->r);
		http_response_header(q->r, "Location", location);
		/* 303: the browser follows a POST's answer with a GET. */
		http_respond(q->r, strcmp(http_request_method(q->r), "POST") == 0 ? 303 : 302, NULL, NULL, 0);
		q->r = NULL;
	}
	oreq_free(q);
}

void
oreq_storage_error(struct oreq *q, const char *what)
{
	log_warn("oauth: storage failed while %s", what);
	if (q->r != NULL)
		http_response_header(q->r, "Retry-After", "1");
	oreq_error(q, 503, "temporarily_unavailable", "the authorization server's storage is unavailable; try again");
}

/* A step's callback: if the client left, the request ends here. */
static int
gone(struct oreq *q)
{
	if (q->r != NULL)
		return 0;
	oreq_free(q);
	return 1;
}

static void
got_value(void *arg, int status, const void *value, size_t len, const char *err)
{
	struct oreq *q = arg;
	if (gone(q))
		return;
	cJSON *v = NULL;
	if (status == MCPD_OK) {
		v = json_parse(value, len, 0, NULL);
		if (v == NULL || !cJSON_IsObject(v)) {
			cJSON_Delete(v);
			v = NULL;
			status = MCPD_ERROR;
		}
	} else if (status == MCPD_ERROR) {
		log_warn("oauth: storage: %s", err ? err : "failed");
	}
	q->value_next(q, status, v);
	cJSON_Delete(v);
}

void
oreq_get(struct oreq *q, const char *key, void (*next)(struct oreq *, int, cJSON *))
{
	q->value_next = next;
	q->o->b.storage->get(q->o->b.storage_inst, key, got_value, q);
}

static void
got_done(void *arg, int status, const char *err)
{
	struct oreq *q = arg;
	if (gone(q))
		return;
	if (status == MCPD_ERROR)
		log_warn("oauth: storage: %s", err ? err : "failed");
	q->done_next(q, status);
}

void
oreq_set(struct oreq *q, const char *key, const cJSON *value, uint64_t ttl_ms, unsigned flags,
    void (*next)(struct oreq *, int))
{
	char *text = cJSON_PrintUnformatted(value);
	if (text == NULL) {
		next(q, MCPD_ERROR);
		return;
	}
	/* The store copies the value before calling back. */
	char *copy = arena_strdup(q->ar, text);
	cJSON_free(text);
	q->done_next = next;
	q->o->b.storage->set(q->o->b.storage_inst, key, copy, strlen(copy), ttl_ms, flags, got_done, q);
}

void
oreq_del(struct oreq *q, const char *key, void (*next)(struct oreq *, int))
{
	q->done_next = next;
	q->o->b.storage->del(q->o->b.storage_inst, key, got_done, q);
}

/* ---- rate limits ---- */

struct oreq_rate {
	uint64_t limit;
	int html;
	int64_t retry;
	void (*next)(struct oreq *);
};

static void
counted(void *arg, int status, int64_t value, const char *err)
{
	struct oreq *q = arg;
	if (gone(q))
		return;
	struct oreq_rate *rt = q->rate;
	if (status != MCPD_OK) {
		/* Without the counter, refuse rather than let a flood through. */
		log_warn("oauth: rate counter: %s", err ? err : "failed");
		oreq_storage_error(q, "counting requests");
		return;
	}
	if ((uint64_t)value <= rt->limit) {
		rt->next(q);
		return;
	}
	char ra[24];
	snprintf(ra, sizeof(ra), "%lld", (long long)rt->retry);
	if (q->r != NULL)
		http_response_header(q->r, "Retry-After", ra);
	if (rt->html)
		oreq_html(q, 429, page_error(q->ar, "Too many attempts",
		    "Too many attempts from your address. Wait a minute, then start again from your application."));
	else
		oreq_error(q, 429, "slow_down", "too many requests from this address; retry later");
}

void
oreq_rate(struct oreq *q, const char *kind, uint64_t limit, int html, void (*next)(struct oreq *))
{
	if (limit == 0) {
		next(q);
		return;
	}
	int64_t now = oauth_now();
	struct oreq_rate *rt = arena_zalloc(q->ar, sizeof(*rt));
	rt->limit = limit;
	rt->html = html;
	rt->retry = 60 - now % 60;
	rt->next = next;
	q->rate = rt;
	const char *key = arena_printf(q->ar, "oauth:rate:%s:%s:%lld", kind, q->addr, (long long)(now / 60));
	q->o->b.storage->incr(q->o->b.storage_inst, key, 1, 120000, counted, q);
}

/* ---- forms and CORS ---- */

int
oreq_form(struct oreq *q, struct form *f, int oauth_errors)
{
	size_t len;
	const char *body = http_request_body(q->r, &len);
	const char *ct = http_request_field(q->r, HDR_CONTENT_TYPE);
	const char *why = NULL;
	if (len > OAUTH_MAX_FORM)
		why = "the request body is too large";
	else if (ct == NULL || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0 ||
	    (ct[33] != '\0' && ct[33] != ';' && ct[33] != ' '))
		why = "the body must be application/x-www-form-urlencoded";
	else if (form_parse(q->ar, body ? body : "", body ? len : 0, 32, OAUTH_MAX_PARAM, f, &why) == 0 &&
	    f->repeated != NULL)
		why = arena_printf(q->ar, "parameter %s is repeated", f->repeated);
	if (why == NULL)
		return 0;
	if (oauth_errors)
		oreq_error(q, len > OAUTH_MAX_FORM ? 413 : 400, "invalid_request", why);
	else
		oreq_html(q, 400, page_error(q->ar, "Bad request", why));
	return -1;
}

int
oauth_host_refused(struct oauth *o, struct http_request *r)
{
	if (guard_host_allowed(o->cfg, http_request_field(r, HDR_HOST)))
		return 0;
	http_respond_text(r, 403, "Forbidden: this Host is not allowed (see allowed_hosts)");
	return 1;
}

int
oauth_preflight(struct http_request *r, const char *methods)
{
	if (strcmp(http_request_method(r), "OPTIONS") != 0)
		return 0;
	http_response_header(r, "Access-Control-Allow-Origin", "*");
	http_response_header(r, "Access-Control-Allow-Methods", methods);
	http_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version");
	http_response_header(r, "Access-Control-Max-Age", "600");
	http_respond(r, 204, NULL, NULL, 0);
	return 1;
}

/* ---- revocation ---- */

static void
publish(struct oauth *o, const char *msg)
{
	if (o->b.transport != NULL)
		o->b.transport->publish(o->b.transport_inst, REVOKE_CHANNEL, msg, strlen(msg), NULL, NULL, NULL);
}

static int
unhex(const char *hex, unsigned char out[32])
{
	for (int i = 0; i < 32; i++) {
		int hi = hex_digit((unsigned char)hex[2 * i]);
		int lo = hi < 0 ? -1 : hex_digit((unsigned char)hex[2 * i + 1]);
		if (lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/* A revocation is told to this worker's cache and to the other workers
 * once storage has it, not before: a worker told earlier could read the
 * token back from storage into its cache, valid, while the write is
 * still on its way (storage and transport may be different servers). */
struct revocation {
	struct oauth *o;
	int grant;                      /* else an access token */
	char id[128];
	void (*done)(void *arg);
	void *arg;
};

static void
revocation_stored(void *arg, int status, const char *err)
{
	(void)status;
	(void)err;
	struct revocation *rv = arg;
	unsigned char h[32];
	char msg[160];
	if (rv->grant)
		auth_evict_grant(rv->o->auth, rv->id);
	else if (strlen(rv->id) == 64 && unhex(rv->id, h) == 0)
		auth_evict_token(rv->o->auth, h);
	snprintf(msg, sizeof(msg), "%c %s", rv->grant ? 'g' : 't', rv->id);
	publish(rv->o, msg);
	if (rv->done != NULL)
		rv->done(rv->arg);
	free(rv);
}

static struct revocation *
revocation_new(struct oauth *o, int grant, const char *id, void (*done)(void *), void *arg)
{
	struct revocation *rv = calloc(1, sizeof(*rv));
	if (rv == NULL)
		return NULL;
	rv->o = o;
	rv->grant = grant;
	snprintf(rv->id, sizeof(rv->id), "%s", id);
	rv->done = done;
	rv->arg = arg;
	return rv;
}

/* The grant becomes a tombstone for as long as any of its tokens could
 * live: deleted, a racing code exchange could create it again. done(arg),
 * if given, runs once storage has answered. */
void
oauth_revoke_grant(struct oauth *o, const char *grant, void (*done)(void *), void *arg)
{
	static const char tombstone[] = "{\"revoked\":true}";
	char key[160];
	snprintf(key, sizeof(key), "oauth:grant:%s", grant);
	uint64_t ttl = o->oc->refresh_ttl_ms > o->oc->token_ttl_ms ? o->oc->refresh_ttl_ms : o->oc->token_ttl_ms;
	struct revocation *rv = revocation_new(o, 1, grant, done, arg);
	if (rv == NULL) {               /* out of memory: at once, as best we can */
		o->b.storage->set(o->b.storage_inst, key, tombstone, sizeof(tombstone) - 1, ttl, 0, NULL, NULL);
		auth_evict_grant(o->auth, grant);
		char msg[160];
		snprintf(msg, sizeof(msg), "g %s", grant);
		publish(o, msg);
		if (done != NULL)
			done(arg);
		return;
	}
	o->b.storage->set(o->b.storage_inst, key, tombstone, sizeof(tombstone) - 1, ttl, 0, revocation_stored, rv);
}

void
oauth_revoke_access_token(struct oauth *o, const char *hash_hex, void (*done)(void *), void *arg)
{
	char key[160];
	snprintf(key, sizeof(key), "oauth:at:%s", hash_hex);
	struct revocation *rv = revocation_new(o, 0, hash_hex, done, arg);
	if (rv == NULL) {               /* out of memory: at once, as best we can */
		o->b.storage->del(o->b.storage_inst, key, NULL, NULL);
		unsigned char h[32];
		if (strlen(hash_hex) == 64 && unhex(hash_hex, h) == 0)
			auth_evict_token(o->auth, h);
		char msg[160];
		snprintf(msg, sizeof(msg), "t %s", hash_hex);
		publish(o, msg);
		if (done != NULL)
			done(arg);
		return;
	}
	o->b.storage->del(o->b.storage_inst, key, revocation_stored, rv);
}

static void
revoked_elsewhere(void *arg, const char *channel, const void *msg, size_t len)
{
	(void)channel;
	struct oauth *o = arg;
	char buf[128];
	if (len < 3 || len >= sizeof(buf))
		return;
	memcpy(buf, msg, len);
	buf[len] = '\0';
	if (buf[0] == 'g' && buf[1] == ' ') {
		auth_evict_grant(o->auth, buf + 2);
	} else if (buf[0] == 't' && buf[1] == ' ' && len == 66) {
		unsigned char h[32];
		if (unhex(buf + 2, h) == 0)
			auth_evict_token(o->auth, h);
	}
}

/* ---- the validator: access tokens for auth.c ---- */

struct vcheck {
	struct oauth *o;
	auth_checked_fn *cb;
	void *arg;
	char *resource;
	char *grant, *user, *client_id, *scope;
	int64_t exp;
};

static void
vcheck_end(struct vcheck *v, int status, const char *err)
{
	struct mcpd_principal p = { v->user, v->client_id, v->scope ? v->scope : "", v->exp };
	v->cb(v->arg, status, status == MCPD_OK ? &p : NULL, v->grant, err);
	free(v->resource);
	free(v->grant);
	free(v->user);
	free(v->client_id);
	free(v->scope);
	free(v);
}

static void
grant_checked(void *arg, int status, const void *value, size_t len, const char *err)
{
	struct vcheck *v = arg;
	if (status == MCPD_OK) {
		cJSON *g = json_parse(value, len, 0, NULL);
		int revoked = g == NULL || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g, "revoked"));
		cJSON_Delete(g);
		vcheck_end(v, revoked ? MCPD_DENIED : MCPD_OK, revoked ? "the token was revoked" : NULL);
	} else if (status == MCPD_NOT_FOUND)
		vcheck_end(v, MCPD_DENIED, "the token was revoked");
	else
		vcheck_end(v, MCPD_ERROR, err);
}

static char *
dup_str(const cJSON *o, const char *name)
{
	const char *s = json_str(o, name);
	return s ? strdup(s) : NULL;
}

static void
token_found(void *arg, int status, const void *value, size_t len, const char *err)
{
	struct vcheck *v = arg;
	if (status == MCPD_NOT_FOUND) {
		vcheck_end(v, MCPD_DENIED, "the token is not valid (expired or revoked?)");
		return;
	}
	if (status != MCPD_OK) {
		vcheck_end(v, MCPD_ERROR, err);
		return;
	}
	cJSON *rec = json_parse(value, len, 0, NULL);
	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(rec, "exp");
	const char *res = json_str(rec, "resource");
	if (rec == NULL || !cJSON_IsNumber(exp) || json_str(rec, "user") == NULL || json_str(rec, "grant") == NULL) {
		cJSON_Delete(rec);
		vcheck_end(v, MCPD_ERROR, "a malformed token record");
		return;
	}
	v->exp = (int64_t)exp->valuedouble;
	v->user = dup_str(rec, "user");
	v->client_id = dup_str(rec, "client_id");
	v->scope = dup_str(rec, "scope");
	v->grant = dup_str(rec, "grant");
	int audience_ok = res != NULL && strcmp(res, v->resource) == 0;
	cJSON_Delete(rec);
	if (v->user == NULL || v->grant == NULL) {
		vcheck_end(v, MCPD_ERROR, "out of memory");
		return;
	}
	if (v->exp <= oauth_now()) {
		vcheck_end(v, MCPD_DENIED, "the token has expired");
		return;
	}
	/* Taken out of users_file (and reloaded): the tokens go too; scopes
	 * taken away are taken from the tokens. */
	const struct oauth_user *u = oauth_find_user(v->o->oc, v->user);
	if (u == NULL) {
		vcheck_end(v, MCPD_DENIED, "the user may no longer sign in");
		return;
	}
	if (v->scope != NULL && !scope_subset(v->scope, u->scopes)) {
		struct arena *ar = arena_new(256);
		char *narrowed = ar ? strdup(scope_intersect(ar, v->scope, u->scopes)) : NULL;
		arena_free(ar);
		if (narrowed == NULL) {
			vcheck_end(v, MCPD_ERROR, "out of memory");
			return;
		}
		free(v->scope);
		v->scope = narrowed;
	}
	if (!audience_ok) {
		vcheck_end(v, MCPD_DENIED, "the token was issued for another resource");
		return;
	}
	char key[128];
	snprintf(key, sizeof(key), "oauth:grant:%s", v->grant);
	v->o->b.storage->get(v->o->b.storage_inst, key, grant_checked, v);
}

static void
validate(void *inst, const char *token, size_t len, const char *resource, auth_checked_fn *cb, void *arg)
{
	struct oauth *o = inst;
	if (len < sizeof(OAUTH_AT_PREFIX) || strncmp(token, OAUTH_AT_PREFIX, sizeof(OAUTH_AT_PREFIX) - 1) != 0) {
		cb(arg, MCPD_DENIED, NULL, NULL, "not an access token of this server");
		return;
	}
	struct vcheck *v = calloc(1, sizeof(*v));
	if (v == NULL || (v->resource = strdup(resource)) == NULL) {
		free(v);
		cb(arg, MCPD_ERROR, NULL, NULL, "out of memory");
		return;
	}
	v->o = o;
	v->cb = cb;
	v->arg = arg;
	char hex[65], key[128];
	idhash_hex(token, len, hex);
	snprintf(key, sizeof(key), "oauth:at:%s", hex);
	o->b.storage->get(o->b.storage_inst, key, token_found, v);
}

/* ---- RFC 8414 metadata ---- */

static void
add_strings(cJSON *o, const char *name, const char *const *values)
{
	cJSON *a = cJSON_AddArrayToObject(o, name);
	for (; *values; values++)
		cJSON_AddItemToArray(a, cJSON_CreateString(*values));
}

static void
as_metadata(struct http_request *r, void *arg)
{
	struct oauth *o = arg;
	const char *m = http_request_method(r);
	if (oauth_host_refused(o, r) || oauth_preflight(r, "GET, OPTIONS"))
		return;
	if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
		http_response_header(r, "Allow", "GET, HEAD, OPTIONS");
		http_respond_text(r, 405, "method not allowed");
		return;
	}
	struct arena *ar = http_request_arena(r);
	const char *issuer = auth_issuer(o->auth, r);
	/* The endpoints are on the issuer's origin. */
	const char *hp = strstr(issuer, "://");
	const char *path = hp ? strchr(hp + 3, '/') : NULL;
	const char *origin = path ? arena_strndup(ar, issuer, (size_t)(path - issuer)) : issuer;
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "issuer", issuer);
	cJSON_AddStringToObject(j, "authorization_endpoint", arena_printf(ar, "%s/oauth/authorize", origin));
	cJSON_AddStringToObject(j, "token_endpoint", arena_printf(ar, "%s/oauth/token", origin));
	if (o->oc->registration)
		cJSON_AddStringToObject(j, "registration_endpoint", arena_printf(ar, "%s/oauth/register", origin));
	cJSON_AddStringToObject(j, "revocation_endpoint", arena_printf(ar, "%s/oauth/revoke", origin));
	cJSON_AddStringToObject(j, "introspection_endpoint", arena_printf(ar, "%s/oauth/introspect", origin));
	if (o->cfg->authz.scopes_supported != NULL) {
		cJSON *sc = cJSON_AddArrayToObject(j, "scopes_supported");
		for (const char *s = o->cfg->authz.scopes_supported; *s;) {
			size_t l = strcspn(s, " ");
			if (l > 0)
				cJSON_AddItemToArray(sc, cJSON_CreateString(arena_strndup(ar, s, l)));
			s += l;
			while (*s == ' ')
				s++;
		}
	}
	static const char *const response_types[] = { "code", NULL };
	static const char *const response_modes[] = { "query", NULL };
	static const char *const grants_refresh[] = { "authorization_code", "refresh_token", NULL };
	static const char *const grants_code[] = { "authorization_code", NULL };
	static const char *const methods[] = { "none", "client_secret_basic", "client_secret_post", NULL };
	static const char *const confidential[] = { "client_secret_basic", "client_secret_post", NULL };
	static const char *const pkce[] = { "S256", NULL };
	add_strings(j, "response_types_supported", response_types);
	add_strings(j, "response_modes_supported", response_modes);
	add_strings(j, "grant_types_supported", o->oc->refresh_ttl_ms > 0 ? grants_refresh : grants_code);
	add_strings(j, "token_endpoint_auth_methods_supported", methods);
	add_strings(j, "revocation_endpoint_auth_methods_supported", methods);
	add_strings(j, "introspection_endpoint_auth_methods_supported", confidential);
	add_strings(j, "code_challenge_methods_supported", pkce);
	cJSON_AddBoolToObject(j, "authorization_response_iss_parameter_supported", 1);
	cJSON_AddBoolToObject(j, "client_id_metadata_document_supported", o->cimd != NULL);
	char *body = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	if (body == NULL) {
		http_respond_text(r, 500, "out of memory");
		return;
	}
	http_response_header(r, "Access-Control-Allow-Origin", "*");
	http_response_header(r, "Cache-Control", "max-age=300");
	http_respond(r, 200, "application/json", body, strlen(body));
	cJSON_free(body);
}

/* ---- lifecycle ---- */

struct oauth *
oauth_new(struct event_base *base, const struct config *cfg, struct http_server *http,
    const struct backends *b, struct auth *auth, int *failed)
{
	*failed = 0;
	if (!cfg->oauth.enabled || auth == NULL)
		return NULL;
	*failed = 1;
	struct oauth *o = calloc(1, sizeof(*o));
	if (o == NULL)
		return NULL;
	o->base = base;
	o->cfg = cfg;
	o->oc = &cfg->oauth;
	o->b = *b;
	o->auth = auth;
	o->offload = offload_new(base, MAX_QUEUED_CHECKS);
	if (o->offload == NULL)
		goto fail;
	if (o->oc->client_metadata_documents && (o->cimd = cimd_new(o)) == NULL)
		goto fail;
	const char *wk = "/.well-known/oauth-authorization-server";
	const char *issuer_path = NULL;
	if (cfg->oauth.issuer != NULL) {
		const char *hp = strstr(cfg->oauth.issuer, "://");
		issuer_path = hp ? strchr(hp + 3, '/') : NULL;
	}
	if (issuer_path != NULL) {
		/* any length: a cut route would serve the metadata elsewhere */
		char *route = NULL;
		if (asprintf(&route, "%s%s", wk, issuer_path) < 0)
			goto fail;
		int rc = http_server_route(http, route, as_metadata, o);
		free(route);
		if (rc < 0)
			goto fail;
	} else if (http_server_route(http, wk, as_metadata, o) < 0) {
		goto fail;
	}
	if (oauth_client_routes(o, http) < 0 || oauth_authorize_routes(o, http) < 0 ||
	    oauth_token_routes(o, http) < 0)
		goto fail;
	if (b->transport != NULL)
		o->revoke_sub = b->transport->subscribe(b->transport_inst, REVOKE_CHANNEL, revoked_elsewhere, o);
	auth_set_validator(auth, validate, o);
	*failed = 0;
	return o;
fail:
	oauth_free(o);
	return NULL;
}

void
oauth_free(struct oauth *o)
{
	if (o == NULL)
		return;
	if (o->revoke_sub != NULL)
		o->b.transport->unsubscribe(o->b.transport_inst, o->revoke_sub);
	if (o->auth != NULL)
		auth_set_validator(o->auth, NULL, NULL);
	offload_free(o->offload);
	cimd_free(o->cimd);
	free(o);
}
