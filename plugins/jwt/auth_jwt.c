/*
 * jwt: bearer tokens that are JWTs signed by an OpenID Connect provider
 * (or any OAuth authorization server that publishes a JWKS).
 *
 *   auth: { plugin: jwt, issuer: https://id.example.com, audience: https://mcp.example.com/mcp }
 *
 * create() (in the master, and for mcpd -t) checks the section; each
 * worker then fetches the discovery document and the JWKS on its own
 * loop (fetch.c) and keeps them: refreshed periodically, and on a token
 * signed with a key it does not know (at most every jwks_min_interval).
 * Requests that arrive before the first JWKS wait for it. jwt.c checks
 * the tokens.
 */
#include <mcpd/plugin.h>

#include "clock.h"
#include "fetch.h"
#include "section.h"
#include "jwt.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#define MAX_DOCUMENT (1024 * 1024)  /* discovery document or JWKS */
#define MAX_WAITING 1000            /* requests of one worker waiting for keys */
#define MAX_LIST 64                 /* entries of a list in the section */
#define MAX_RETRY_MS 30000          /* retries of a failed fetch back off up to this */

struct waiter {
	char *token;
	mcpd_auth_cb *cb;
	void *arg;
	TAILQ_ENTRY(waiter) link;
};

struct preset;

struct jwt {
	const struct mcpd_host *host;

	/* The configuration, checked in create(). */
	const struct preset *preset;
	char *issuer;
	char *jwks_uri_conf;                /* NULL: discovered */
	char *ca_file;
	char *audience_claim;
	struct strlist audiences, user_claims, client_claims, scope_claims, required_scopes;
	struct strlist claim_names, claim_values;   /* required_claims */
	struct jwt_claim_value *required_claims;
	uint64_t skew_ms, refresh_ms, min_interval_ms, timeout_ms;
	struct jwt_policy policy;

	/* Each worker's own, from attach(). */
	struct fetcher *fetcher;
	struct event *timer;                /* the next refresh, or a retry */
	struct jwt_keyset *keys;
	char *jwks_uri;                     /* configured or discovered */
	int busy;                           /* a fetch is on its way */
	int discovery_step;                 /* 0: openid-configuration, 1: oauth-authorization-server */
	long discovery_status;              /* what openid-configuration answered, before step 1 */
	int last_failed;
	unsigned failures;                  /* in a row */
	uint64_t last_start_ms;             /* monotonic */
	char last_error[768];
	TAILQ_HEAD(, waiter) waiters;
	size_t nwaiting;
};

/* What a preset sets when the section does not say otherwise. Lists are
 * space-separated. */
struct preset {
	const char *name;
	const char *issuer_form;            /* shown when the issuer does not fit */
	int (*issuer_ok)(const char *path); /* checks the issuer's path */
	const char *audience_claim;
	const char *user_claims, *client_claims, *scope_claims;
	const char *required_claim, *required_value;
	const char *jwks_uri;
	int audience_is_path;               /* the audience is the issuer's path (firebase) */
	int audience_needed;                /* resource is never right (cognito) */
};

static int
segments(const char *path, const char *suffix)
{
	/* "/a" is one segment; with suffix, "/a" + suffix. */
	if (path[0] != '/' || path[1] == '\0')
		return 0;
	const char *end = path + strlen(path);
	size_t sl = suffix ? strlen(suffix) : 0;
	if (sl > 0) {
		if ((size_t)(end - path) <= sl || strcmp(end - sl, suffix) != 0)
			return 0;
		end -= sl;
	}
	const char *slash = memchr(path + 1, '/', (size_t)(end - path - 1));
	return slash == NULL && end > path + 1;
}

static int
keycloak_ok(const char *path)
{
	/* Keycloak before version 17 served under /auth. */
	if (strncmp(path, "/auth/realms/", 13) == 0)
		path += 5;
	return strncmp(path, "/realms/", 8) == 0 && segments(path + 7, NULL);
}

static int
auth0_ok(const char *path)
{
	return strcmp(path, "/") == 0;
}

static int
cognito_ok(const char *path)
{
	return segments(path, NULL) && strchr(path, '_') != NULL;
}

static int
entra_ok(const char *path)
{
	return segments(path, "/v2.0");
}

static int
firebase_ok(const char *path)
{
	return segments(path, NULL);
}

static const struct preset presets[] = {
	{ NULL, NULL, NULL, "aud", "sub", "client_id azp", "scope scp", NULL, NULL, NULL, 0, 0 },
	{ "keycloak", "https://HOST/realms/REALM", keycloak_ok, "aud", "sub", "azp", "scope",
	    NULL, NULL, NULL, 0, 0 },
	{ "auth0", "https://TENANT.auth0.com/ (with the final slash)", auth0_ok, "aud", "sub", "azp",
	    "scope permissions", NULL, NULL, NULL, 0, 0 },
	{ "okta", NULL, NULL, "aud", "sub", "cid", "scp", NULL, NULL, NULL, 0, 0 },
	{ "cognito", "https://cognito-idp.REGION.amazonaws.com/POOL_ID", cognito_ok, "client_id", "sub",
	    "client_id", "scope", "token_use", "access", NULL, 0, 1 },
	{ "entra", "https://login.microsoftonline.com/TENANT/v2.0", entra_ok, "aud", "sub", "azp appid",
	    "scp roles", NULL, NULL, NULL, 0, 0 },
	{ "firebase", "https://securetoken.google.com/PROJECT", firebase_ok, "aud", "user_id sub", "",
	    "", NULL, NULL,
	    "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com", 1, 0 },
};

/* ---- configuration ---- */

/* A list in the section: a YAML sequence of words, or one string of
 * space-separated words. Replaces what l held (a preset's default). */
static int
parse_words(struct jwt *j, const struct mcpd_config *n, const char *key, struct strlist *l, char *err,
    size_t errlen)
{
	const struct mcpd_host *h = j->host;
	const struct mcpd_config *bad;
	int rc = section_strings(h, n, 1, section_word_ok, l, &bad);
	if (rc == -2)
		return section_error(h, bad, err, errlen,
		    "%s: \"%.200s\" is not a name (printable ASCII without spaces or quotes)", key, h->config_scalar(bad));
	if (rc < 0 && bad != NULL)
		return section_error(h, n, err, errlen, "%s must be a list of names, or one string of them", key);
	if (rc < 0) {
		jwt_say(err, errlen, "out of memory");
		return -1;
	}
	if (l->n > MAX_LIST)
		return section_error(h, n, err, errlen, "%s has more than %d entries", key, MAX_LIST);
	for (size_t i = 0; i < l->n; i++)
		if (!section_word_ok(l->v[i]))
			return section_error(h, n, err, errlen, "%s: \"%.200s\" is not a name", key, l->v[i]);
	return 0;
}

static int
parse_algorithms(struct jwt *j, const struct mcpd_config *n, char *err, size_t errlen)
{
	struct strlist l = { 0 };
	int rc = parse_words(j, n, "algorithms", &l, err, errlen);
	j->policy.algs = 0;
	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		const char *why;
		int a = jwt_alg_parse(l.v[i], &why);
		if (a < 0)
			rc = section_error(j->host, n, err, errlen, "algorithms: %s%s%s", why ? why : "unknown algorithm ",
			    why ? "" : l.v[i], why ? "" : " (RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA Ed25519)");
		else
			j->policy.algs |= JWT_ALG_BIT(a);
	}
	if (rc == 0 && j->policy.algs == 0)
		rc = section_error(j->host, n, err, errlen, "algorithms is empty");
	strlist_clear(&l);
	return rc;
}

static int
parse_required_claims(struct jwt *j, const struct mcpd_config *n, char *err, size_t errlen)
{
	const struct mcpd_host *h = j->host;
	strlist_clear(&j->claim_names);
	strlist_clear(&j->claim_values);
	size_t count = h->config_count(n);
	if (h->config_scalar(n) != NULL || count > MAX_LIST)
		return section_error(h, n, err, errlen, "required_claims must be a map of claim: value (at most %d)",
		    MAX_LIST);
	for (size_t i = 0; i < count; i++) {
		const char *k = NULL;
		const struct mcpd_config *v = h->config_item(n, i, &k);
		const char *s = h->config_scalar(v);
		if (k == NULL || s == NULL)
			return section_error(h, n, err, errlen, "required_claims must be a map of claim: value (strings)");
		if (strlist_add(&j->claim_names, k, strlen(k)) < 0 || strlist_add(&j->claim_values, s, strlen(s)) < 0) {
			jwt_say(err, errlen, "out of memory");
			return -1;
		}
	}
	return 0;
}

/* Where the path of url begins (its end when it has none). */
static const char *
url_path(const char *url)
{
	const char *p = strstr(url, "://");
	p = p ? strchr(p + 3, '/') : NULL;
	return p ? p : url + strlen(url);
}

static int
audience_ok(const char *s)
{
	return s[0] != '\0' && strlen(s) <= 2048;
}

/* One audience, or a list: audiences are any string, spaces and all. */
static int
parse_audience(struct jwt *j, const struct mcpd_config *v, char *err, size_t errlen)
{
	const struct mcpd_host *h = j->host;
	const struct mcpd_config *bad;
	const char *k;
	int rc;
	if (h->config_scalar(v) == NULL && h->config_count(v) > MAX_LIST) {
		bad = h->config_item(v, 0, &k);     /* said at the first item */
		rc = -1;
	} else {
		rc = section_strings(h, v, 0, audience_ok, &j->audiences, &bad);
	}
	if (rc < 0 && bad != NULL)
		return section_error(h, bad, err, errlen, "audience must be a string or a list of at most %d strings",
		    MAX_LIST);
	if (rc < 0) {
		jwt_say(err, errlen, "out of memory");
		return -1;
	}
	if (j->audiences.n == 0)
		return section_error(h, v, err, errlen, "audience is empty");
	return 0;
}

static void
jwt_destroy(void *inst)
{
	struct jwt *j = inst;
	if (j == NULL)
		return;
	free(j->issuer);
	free(j->jwks_uri_conf);
	free(j->ca_file);
	free(j->audience_claim);
	strlist_clear(&j->audiences);
	strlist_clear(&j->user_claims);
	strlist_clear(&j->client_claims);
	strlist_clear(&j->scope_claims);
	strlist_clear(&j->required_scopes);
	strlist_clear(&j->claim_names);
	strlist_clear(&j->claim_values);
	free(j->required_claims);
	free(j);
}

/* The preset's defaults, before the section's keys. */
static int
apply_preset(struct jwt *j, const struct preset *p)
{
	j->preset = p;
	if ((j->audience_claim = strdup(p->audience_claim)) == NULL ||
	    strlist_split(&j->user_claims, p->user_claims) < 0 ||
	    strlist_split(&j->client_claims, p->client_claims) < 0 ||
	    strlist_split(&j->scope_claims, p->scope_claims) < 0 ||
	    (p->jwks_uri != NULL && (j->jwks_uri_conf = strdup(p->jwks_uri)) == NULL))
		return -1;
	if (p->required_claim != NULL &&
	    (strlist_add(&j->claim_names, p->required_claim, strlen(p->required_claim)) < 0 ||
	    strlist_add(&j->claim_values, p->required_value, strlen(p->required_value)) < 0))
		return -1;
	return 0;
}

static const char KEYS[] = "preset, issuer, audience, audience_claim, jwks_uri, required_scopes, "
    "required_claims, clock_skew, user_claim, client_claim, scope_claims, algorithms, jwks_refresh, "
    "jwks_min_interval, fetch_timeout, ca_file";

/* One key of the section. */
static int
parse_key(struct jwt *j, const char *key, const struct mcpd_config *v, char *err, size_t errlen)
{
	const struct mcpd_host *h = j->host;
	if (strcmp(key, "issuer") == 0)
		return section_string(h, v, key, &j->issuer, err, errlen);
	if (strcmp(key, "jwks_uri") == 0)
		return section_string(h, v, key, &j->jwks_uri_conf, err, errlen);
	if (strcmp(key, "ca_file") == 0)
		return section_string(h, v, key, &j->ca_file, err, errlen);
	if (strcmp(key, "audience_claim") == 0) {
		if (section_string(h, v, key, &j->audience_claim, err, errlen) < 0)
			return -1;
		if (!section_word_ok(j->audience_claim))
			return section_error(h, v, err, errlen, "audience_claim must be a claim name");
		return 0;
	}
	if (strcmp(key, "audience") == 0)
		return parse_audience(j, v, err, errlen);
	if (strcmp(key, "user_claim") == 0)
		return parse_words(j, v, key, &j->user_claims, err, errlen);
	if (strcmp(key, "client_claim") == 0)
		return parse_words(j, v, key, &j->client_claims, err, errlen);
	if (strcmp(key, "scope_claims") == 0)
		return parse_words(j, v, key, &j->scope_claims, err, errlen);
	if (strcmp(key, "required_scopes") == 0)
		return parse_words(j, v, key, &j->required_scopes, err, errlen);
	if (strcmp(key, "required_claims") == 0)
		return parse_required_claims(j, v, err, errlen);
	if (strcmp(key, "algorithms") == 0)
		return parse_algorithms(j, v, err, errlen);
	if (strcmp(key, "clock_skew") == 0)
		return section_duration(h, v, key, 0, 600000, "0 to 10m", &j->skew_ms, err, errlen);
	if (strcmp(key, "jwks_refresh") == 0)
		return section_duration(h, v, key, 1000, 86400000, "1s to 24h", &j->refresh_ms, err, errlen);
	if (strcmp(key, "jwks_min_interval") == 0)
		return section_duration(h, v, key, 0, 3600000, "0 to 1h", &j->min_interval_ms, err, errlen);
	if (strcmp(key, "fetch_timeout") == 0)
		return section_duration(h, v, key, 100, 60000, "100ms to 60s", &j->timeout_ms, err, errlen);
	return section_error(h, v, err, errlen, "unknown key \"%s\" in auth (jwt takes %s)", key, KEYS);
}

/* What can only be checked with the whole section read. */
static int
check_section(struct jwt *j, const struct mcpd_config *section, char *err, size_t errlen)
{
	const struct mcpd_host *h = j->host;
	const struct preset *p = j->preset;
	char why[1024];
	const struct mcpd_config *in = h->config_get(section, "issuer");
	if (in == NULL)
		in = section;
	if (j->issuer == NULL)
		return section_error(h, in, err, errlen, "jwt needs issuer: (the URL in the tokens' iss%s%s)",
		    p->issuer_form ? ", such as " : "", p->issuer_form ? p->issuer_form : "");
	if (fetch_url_allowed(j->issuer, why, sizeof(why)) < 0)
		return section_error(h, in, err, errlen, "issuer: %s", why);
	if (strpbrk(j->issuer, "?#") != NULL)
		return section_error(h, in, err, errlen, "issuer: an issuer has no query or fragment");
	const char *path = url_path(j->issuer);
	if (p->issuer_ok != NULL && !p->issuer_ok(path))
		return section_error(h, in, err, errlen, "issuer: %s issuers look like %s", p->name, p->issuer_form);
	const struct mcpd_config *jn = h->config_get(section, "jwks_uri");
	if (j->jwks_uri_conf != NULL && fetch_url_allowed(j->jwks_uri_conf, why, sizeof(why)) < 0)
		return section_error(h, jn ? jn : section, err, errlen, "jwks_uri: %s", why);
	if (j->ca_file != NULL) {
		char *abs = section_path(h, j->ca_file);
		if (abs == NULL)
			goto oom;
		free(j->ca_file);
		j->ca_file = abs;
		if (access(j->ca_file, R_OK) < 0)
			return section_error(h, h->config_get(section, "ca_file"), err, errlen,
			    "ca_file %.512s cannot be read", j->ca_file);
	}
	if (j->audiences.n == 0) {
		const char *resource = h->config_scalar(h->config_get(section, "resource"));
		if (p->audience_is_path) {
			if (strlist_add(&j->audiences, path + 1, strlen(path + 1)) < 0)
				goto oom;
		} else if (p->audience_needed) {
			return section_error(h, section, err, errlen, "%s needs audience: (the app client id, which its "
			    "access tokens carry in %s)", p->name, j->audience_claim);
		} else if (resource != NULL) {
			if (strlist_add(&j->audiences, resource, strlen(resource)) < 0)
				goto oom;
		} else {
			return section_error(h, section, err, errlen, "jwt needs audience: (what the tokens carry in %s), or "
			    "resource: (the endpoint's URL, then taken as the audience)", j->audience_claim);
		}
	}
	if (j->user_claims.n == 0)
		return section_error(h, h->config_get(section, "user_claim"), err, errlen, "user_claim is empty");
	return 0;
oom:
	jwt_say(err, errlen, "out of memory");
	return -1;
}

/* The policy jwt.c checks tokens with, pointing into j. */
static int
build_policy(struct jwt *j)
{
	struct jwt_policy *p = &j->policy;
	j->required_claims = calloc(j->claim_names.n + 1, sizeof(*j->required_claims));
	if (j->required_claims == NULL)
		return -1;
	for (size_t i = 0; i < j->claim_names.n; i++) {
		j->required_claims[i].name = j->claim_names.v[i];
		j->required_claims[i].value = j->claim_values.v[i];
	}
	p->issuer = j->issuer;
	p->audiences = (const char *const *)j->audiences.v;
	p->naudiences = j->audiences.n;
	p->audience_claim = j->audience_claim;
	p->skew = (int64_t)(j->skew_ms / 1000);
	p->user_claims = (const char *const *)j->user_claims.v;
	p->nuser_claims = j->user_claims.n;
	p->client_claims = (const char *const *)j->client_claims.v;
	p->nclient_claims = j->client_claims.n;
	p->scope_claims = (const char *const *)j->scope_claims.v;
	p->nscope_claims = j->scope_claims.n;
	p->required_claims = j->required_claims;
	p->nrequired_claims = j->claim_names.n;
	p->required_scopes = (const char *const *)j->required_scopes.v;
	p->nrequired_scopes = j->required_scopes.n;
	return 0;
}

static void *
jwt_create(const struct mcpd_host *host, const struct mcpd_config *section, char *err, size_t errlen)
{
	if (host->size < offsetof(struct mcpd_host, config_dir) + sizeof(host->config_dir)) {
		jwt_say(err, errlen, "this mcpd is too old for the jwt plugin");
		return NULL;
	}
	struct jwt *j = calloc(1, sizeof(*j));
	if (j == NULL) {
		jwt_say(err, errlen, "out of memory");
		return NULL;
	}
	j->host = host;
	j->skew_ms = 60000;
	j->refresh_ms = 3600000;
	j->min_interval_ms = 30000;
	j->timeout_ms = 10000;
	j->policy.algs = JWT_DEFAULT_ALGS;
	const struct preset *p = &presets[0];
	const struct mcpd_config *pn = host->config_get(section, "preset");
	if (pn != NULL) {
		const char *name = host->config_scalar(pn);
		p = NULL;
		for (size_t i = 1; name != NULL && i < sizeof(presets) / sizeof(presets[0]); i++)
			if (strcmp(name, presets[i].name) == 0)
				p = &presets[i];
		if (p == NULL) {
			section_error(host, pn, err, errlen, "unknown preset \"%.100s\" (keycloak, auth0, okta, cognito, entra, "
			    "firebase)", name ? name : "");
			goto fail;
		}
	}
	if (apply_preset(j, p) < 0) {
		jwt_say(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < host->config_count(section); i++) {
		const char *key;
		const struct mcpd_config *v = host->config_item(section, i, &key);
		if (mcpd_auth_common_key(key) || strcmp(key, "preset") == 0)
			continue;
		if (parse_key(j, key, v, err, errlen) < 0)
			goto fail;
	}
	if (check_section(j, section, err, errlen) < 0)
		goto fail;
	if (build_policy(j) < 0) {
		jwt_say(err, errlen, "out of memory");
		goto fail;
	}
	return j;
fail:
	jwt_destroy(j);
	return NULL;
}

/* ---- keys, in each worker ---- */

static void check_token(struct jwt *j, const char *token, mcpd_auth_cb *cb, void *arg, int may_fetch);

static void
waiter_free(struct waiter *w)
{
	OPENSSL_cleanse(w->token, strlen(w->token));
	free(w->token);
	free(w);
}

static void
wait_for_keys(struct jwt *j, const char *token, mcpd_auth_cb *cb, void *arg)
{
	struct waiter *w = NULL;
	if (j->nwaiting >= MAX_WAITING || (w = calloc(1, sizeof(*w))) == NULL ||
	    (w->token = strdup(token)) == NULL) {
		free(w);
		cb(arg, MCPD_ERROR, NULL, "too many requests wait for the issuer's keys");
		return;
	}
	w->cb = cb;
	w->arg = arg;
	TAILQ_INSERT_TAIL(&j->waiters, w, link);
	j->nwaiting++;
	j->host->log(MCPD_LOG_DEBUG, "jwt: a request waits for the issuer's keys (%zu waiting)", j->nwaiting);
}

/* Every waiting request, checked with the keys there are now. */
static void
answer_waiters(struct jwt *j)
{
	TAILQ_HEAD(, waiter) now = TAILQ_HEAD_INITIALIZER(now);
	TAILQ_CONCAT(&now, &j->waiters, link);
	j->nwaiting = 0;
	struct waiter *w;
	while ((w = TAILQ_FIRST(&now)) != NULL) {
		TAILQ_REMOVE(&now, w, link);
		check_token(j, w->token, w->cb, w->arg, 0);
		waiter_free(w);
	}
}

static void
schedule(struct jwt *j, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	evtimer_add(j->timer, &tv);
}

static void
fetch_failed(struct jwt *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
fetch_failed(struct jwt *j, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(j->last_error, sizeof(j->last_error), fmt, ap);
	va_end(ap);
	j->busy = 0;
	j->last_failed = 1;
	j->failures++;
	uint64_t retry = j->failures < 8 ? 250u << (j->failures - 1) : MAX_RETRY_MS;
	if (retry > MAX_RETRY_MS)
		retry = MAX_RETRY_MS;
	if (retry > j->refresh_ms)
		retry = j->refresh_ms;
	j->host->log(MCPD_LOG_WARN, "jwt: %s%s", j->last_error, j->keys ? " (keeping the keys fetched before)" : "");
	schedule(j, retry);
	answer_waiters(j);
}

static void fetched_discovery(void *arg, const struct fetch_result *r);
static void fetched_jwks(void *arg, const struct fetch_result *r);

static void
get(struct jwt *j, const char *url, fetch_done_fn *done)
{
	struct fetch_opts o = { j->timeout_ms, MAX_DOCUMENT, j->ca_file, 0 };
	char err[512];
	if (fetch_get(j->fetcher, url, &o, done, j, err, sizeof(err)) < 0)
		fetch_failed(j, "%s", err);
}

/* OpenID Connect appends its path to the issuer's; RFC 8414 puts its
 * own before the issuer's path. */
static char *
discovery_url(const struct jwt *j, int step)
{
	char *url = NULL;
	const char *path = url_path(j->issuer);
	size_t origin = (size_t)(path - j->issuer);
	size_t plen = strlen(path);
	if (plen > 0 && path[plen - 1] == '/')
		plen--;
	if (step == 0) {
		if (asprintf(&url, "%.*s%.*s/.well-known/openid-configuration", (int)origin, j->issuer,
		    (int)plen, path) < 0)
			return NULL;
	} else if (asprintf(&url, "%.*s/.well-known/oauth-authorization-server%.*s", (int)origin, j->issuer,
	    (int)plen, path) < 0) {
		return NULL;
	}
	return url;
}

static void
start_fetch(struct jwt *j)
{
	if (j->busy)
		return;
	j->busy = 1;
	j->last_start_ms = mono_ms();
	evtimer_del(j->timer);
	if (j->jwks_uri != NULL) {
		get(j, j->jwks_uri, fetched_jwks);
		return;
	}
	j->discovery_step = 0;
	char *url = discovery_url(j, 0);
	if (url == NULL) {
		fetch_failed(j, "out of memory");
		return;
	}
	get(j, url, fetched_discovery);
	free(url);
}

static void
fetched_discovery(void *arg, const struct fetch_result *r)
{
	struct jwt *j = arg;
	char *url = discovery_url(j, j->discovery_step), why[512];
	if (url == NULL) {
		fetch_failed(j, "out of memory");
		return;
	}
	if (r->error != NULL && j->discovery_step == 0 && r->status >= 400 && r->status < 500) {
		/* No OpenID Connect: perhaps an RFC 8414 authorization server. */
		free(url);
		j->discovery_step = 1;
		j->discovery_status = r->status;
		if ((url = discovery_url(j, 1)) == NULL) {
			fetch_failed(j, "out of memory");
			return;
		}
		get(j, url, fetched_discovery);
		free(url);
		return;
	}
	if (r->error != NULL && j->discovery_step == 1) {
		fetch_failed(j, "cannot fetch the discovery document %.512s: %s (and openid-configuration "
		    "answered %ld)", url, r->error, j->discovery_status);
	} else if (r->error != NULL) {
		fetch_failed(j, "cannot fetch the discovery document %.512s: %s", url, r->error);
	} else if ((j->jwks_uri = jwt_discovery_jwks_uri(r->body, r->len, j->issuer, why, sizeof(why))) == NULL) {
		fetch_failed(j, "%.512s: %s", url, why);
	} else if (fetch_url_allowed(j->jwks_uri, why, sizeof(why)) < 0) {
		free(j->jwks_uri);
		j->jwks_uri = NULL;
		fetch_failed(j, "the discovery document %.512s names jwks_uri %s", url, why);
	} else {
		get(j, j->jwks_uri, fetched_jwks);
	}
	free(url);
}

static void
fetched_jwks(void *arg, const struct fetch_result *r)
{
	struct jwt *j = arg;
	char why[512];
	struct jwt_keyset *ks = NULL;
	if (r->error == NULL)
		ks = jwt_keyset_parse(r->body, r->len, why, sizeof(why));
	if (ks == NULL) {
		char uri[600];
		snprintf(uri, sizeof(uri), "%s", j->jwks_uri);
		/* A discovered jwks_uri is discovered again next time. */
		if (j->jwks_uri_conf == NULL) {
			free(j->jwks_uri);
			j->jwks_uri = NULL;
		}
		fetch_failed(j, "cannot use the JWKS %.512s: %s", uri, r->error ? r->error : why);
		return;
	}
	int first = j->keys == NULL || j->last_failed;
	jwt_keyset_free(j->keys);
	j->keys = ks;
	j->busy = 0;
	j->last_failed = 0;
	j->failures = 0;
	j->last_error[0] = '\0';
	/* A max-age shorter than jwks_refresh brings the next fetch closer,
	 * but not closer than jwks_min_interval (nor 1 s). */
	uint64_t next = j->refresh_ms;
	if (r->max_age >= 0) {
		uint64_t age = (uint64_t)r->max_age * 1000, floor = j->min_interval_ms > 1000 ? j->min_interval_ms : 1000;
		if (age < floor)
			age = floor;
		if (age < next)
			next = age;
	}
	j->host->log(first ? MCPD_LOG_INFO : MCPD_LOG_DEBUG, "jwt: %zu signing key%s from %s (next refresh in %llus)",
	    jwt_keyset_count(ks), jwt_keyset_count(ks) == 1 ? "" : "s", j->jwks_uri,
	    (unsigned long long)(next / 1000));
	schedule(j, next);
	answer_waiters(j);
}

static void
refresh_due(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	start_fetch(arg);
}

/* ---- tokens ---- */

static void
check_token(struct jwt *j, const char *token, mcpd_auth_cb *cb, void *arg, int may_fetch)
{
	char err[600];
	if (j->keys == NULL) {
		jwt_say(err, sizeof(err), "no signing keys from the issuer yet: %s",
		    j->last_error[0] ? j->last_error : "fetching");
		cb(arg, MCPD_ERROR, NULL, err);
		return;
	}
	struct jwt_principal pr;
	enum jwt_result rc = jwt_verify(&j->policy, j->keys, token, (int64_t)time(NULL), &pr, err, sizeof(err));
	if (rc == JWT_OK) {
		struct mcpd_principal p = { pr.user, pr.client_id, pr.scopes, pr.expires_at };
		cb(arg, MCPD_OK, &p, NULL);
		jwt_principal_clear(&pr);
		return;
	}
	if (rc == JWT_UNKNOWN_KEY && may_fetch &&
	    (j->busy || mono_ms() - j->last_start_ms >= j->min_interval_ms)) {
		/* The issuer may have rotated its keys: ask again, once. */
		wait_for_keys(j, token, cb, arg);
		start_fetch(j);
		return;
	}
	if (rc == JWT_UNKNOWN_KEY && j->last_failed) {
		jwt_say(err, sizeof(err), "the token's key is unknown and the issuer's keys cannot be refreshed: %s",
		    j->last_error);
		cb(arg, MCPD_ERROR, NULL, err);
		return;
	}
	j->host->log(MCPD_LOG_DEBUG, "jwt: token refused: %s", err);
	cb(arg, MCPD_DENIED, NULL, err);
}

static void
jwt_authenticate(void *inst, const char *token, mcpd_auth_cb *cb, void *arg)
{
	struct jwt *j = inst;
	if (j->fetcher == NULL) {
		cb(arg, MCPD_ERROR, NULL, "the jwt plugin is not attached to this worker");
		return;
	}
	if (j->keys == NULL && j->busy) {
		wait_for_keys(j, token, cb, arg);
		return;
	}
	check_token(j, token, cb, arg, 1);
}

static void jwt_detach(void *inst);

static int
jwt_attach(void *inst, char *err, size_t errlen)
{
	struct jwt *j = inst;
	struct event_base *base = j->host->event_base();
	TAILQ_INIT(&j->waiters);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		jwt_say(err, errlen, "libcurl cannot be initialised");
		return -1;
	}
	if ((j->timer = evtimer_new(base, refresh_due, j)) == NULL ||
	    (j->jwks_uri_conf != NULL && (j->jwks_uri = strdup(j->jwks_uri_conf)) == NULL)) {
		jwt_say(err, errlen, "out of memory");
		goto fail;
	}
	if ((j->fetcher = fetcher_new(base, "mcpd-jwt/1.0", err, errlen)) == NULL)
		goto fail;
	/* Fetched before the first token comes, if the issuer answers. */
	start_fetch(j);
	return 0;
fail:
	jwt_detach(j);
	return -1;
}

static void
jwt_detach(void *inst)
{
	struct jwt *j = inst;
	if (j->timer != NULL)
		event_free(j->timer);
	j->timer = NULL;
	fetcher_free(j->fetcher);
	j->fetcher = NULL;
	struct waiter *w;
	while ((w = TAILQ_FIRST(&j->waiters)) != NULL) {
		TAILQ_REMOVE(&j->waiters, w, link);
		w->cb(w->arg, MCPD_ERROR, NULL, "mcpd is stopping");
		waiter_free(w);
	}
	j->nwaiting = 0;
	jwt_keyset_free(j->keys);
	j->keys = NULL;
	free(j->jwks_uri);
	j->jwks_uri = NULL;
	curl_global_cleanup();
}

static int
jwt_status(void *inst, char *why, size_t len)
{
	struct jwt *j = inst;
	if (j->keys != NULL)
		return 0;
	jwt_say(why, len, "no signing keys from %s yet: %s", j->issuer, j->last_error[0] ? j->last_error : "fetching");
	return -1;
}

static const struct mcpd_auth_ops ops = {
	.size = sizeof(struct mcpd_auth_ops),
	.authenticate = jwt_authenticate,
};

static const struct mcpd_plugin descriptor = {
	.size = sizeof(struct mcpd_plugin),
	.abi_major = MCPD_PLUGIN_ABI_MAJOR,
	.abi_minor = MCPD_PLUGIN_ABI_MINOR,
	.kind = MCPD_PLUGIN_AUTH,
	.name = "jwt",
	.version = "1.0.0",
	.create = jwt_create,
	.attach = jwt_attach,
	.detach = jwt_detach,
	.destroy = jwt_destroy,
	.ops = &ops,
	.status = jwt_status,
};

const struct mcpd_plugin *
mcpd_plugin_entry(void)
{
	return &descriptor;
}
