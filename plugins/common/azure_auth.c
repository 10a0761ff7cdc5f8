/* Entra ID tokens for the Azure plugins: see azure_auth.h. */
#include <mcpd/plugin.h>

#include "azure_auth.h"
#include "clock.h"
#include "fetch.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_FILE (64u << 10)            /* a federated token file */
#define MAX_ANSWER (64u << 10)          /* of a token endpoint */
#define FETCH_TIMEOUT_MS 5000
#define IMDS_TIMEOUT_MS 3000
#define AUTHORITY_DEFAULT "https://login.microsoftonline.com/"
#define IMDS_DEFAULT "http://169.254.169.254"

enum source { SRC_WORKLOAD, SRC_APP, SRC_IMDS };

struct azure_cred {
	struct fetcher *f;
	const struct mcpd_host *host;
	enum source src;
	char what[512];
	char *scope, *resource;         /* resource: the scope without /.default */
	char *client_id;                /* user-assigned identity, or NULL */
	char *tenant, *token_file, *authority;          /* workload identity */
	char *endpoint, *header;                        /* App Service, Container Apps; IMDS */
	struct tokcache *cache;
	int said;                       /* the first token was logged */
};

static const char *
env(const char *name)
{
	const char *v = getenv(name);
	return v != NULL && *v != '\0' ? v : NULL;
}

/* What the environment configures: c's source and its settings. */
static int
find(struct azure_cred *c, const char *client_id, char *why, size_t whylen)
{
	const char *cid = client_id && *client_id ? client_id : env("AZURE_CLIENT_ID");
	const char *tf = env("AZURE_FEDERATED_TOKEN_FILE"), *tenant = env("AZURE_TENANT_ID");
	if (cid != NULL && (c->client_id = strdup(cid)) == NULL)
		goto oom;
	if (tf != NULL) {
		if (cid == NULL || tenant == NULL) {
			snprintf(why, whylen, "AZURE_FEDERATED_TOKEN_FILE needs AZURE_CLIENT_ID and AZURE_TENANT_ID "
			    "(workload identity)");
			return -1;
		}
		if (strspn(tenant, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") != strlen(tenant)) {
			snprintf(why, whylen, "AZURE_TENANT_ID is not a tenant id or domain");
			return -1;
		}
		const char *auth = env("AZURE_AUTHORITY_HOST") ? env("AZURE_AUTHORITY_HOST") : AUTHORITY_DEFAULT;
		char reason[300];
		if (fetch_url_allowed(auth, reason, sizeof(reason)) < 0) {
			snprintf(why, whylen, "AZURE_AUTHORITY_HOST: %s", reason);
			return -1;
		}
		size_t n = strlen(auth);
		if (asprintf(&c->authority, "%s%s", auth, n > 0 && auth[n - 1] == '/' ? "" : "/") < 0) {
			c->authority = NULL;
			goto oom;
		}
		if ((c->tenant = strdup(tenant)) == NULL || (c->token_file = strdup(tf)) == NULL)
			goto oom;
		c->src = SRC_WORKLOAD;
		snprintf(c->what, sizeof(c->what), "workload identity (client %.64s, token file %.300s)", cid, tf);
		return 0;
	}
	const char *ie = env("IDENTITY_ENDPOINT"), *ih = env("IDENTITY_HEADER");
	if (ie != NULL || ih != NULL) {
		if (ie == NULL || ih == NULL) {
			snprintf(why, whylen, "IDENTITY_ENDPOINT and IDENTITY_HEADER must be set together (managed identity)");
			return -1;
		}
		if (strpbrk(ih, "\r\n") != NULL) {
			snprintf(why, whylen, "IDENTITY_HEADER has a line break");
			return -1;
		}
		if ((c->endpoint = strdup(ie)) == NULL || (c->header = strdup(ih)) == NULL)
			goto oom;
		c->src = SRC_APP;
		snprintf(c->what, sizeof(c->what), "managed identity%s%.64s (%.300s)", cid ? " " : "", cid ? cid : "", ie);
		return 0;
	}
	const char *host = env("AZURE_POD_IDENTITY_AUTHORITY_HOST");
	if (host == NULL)
		host = IMDS_DEFAULT;
	size_t n = strlen(host);
	while (n > 0 && host[n - 1] == '/')
		n--;
	if (asprintf(&c->endpoint, "%.*s/metadata/identity/oauth2/token", (int)n, host) < 0) {
		c->endpoint = NULL;
		goto oom;
	}
	c->src = SRC_IMDS;
	snprintf(c->what, sizeof(c->what), "managed identity%s%.64s (instance metadata, %.*s)", cid ? " " : "",
	    cid ? cid : "", (int)(n < 300 ? n : 300), host);
	return 0;
oom:
	snprintf(why, whylen, "out of memory");
	return -1;
}

static void
clear(struct azure_cred *c)
{
	free(c->scope);
	free(c->resource);
	free(c->client_id);
	free(c->tenant);
	free(c->token_file);
	free(c->authority);
	free(c->endpoint);
	if (c->header != NULL)
		OPENSSL_cleanse(c->header, strlen(c->header));
	free(c->header);
}

int
azure_cred_probe(const char *client_id, char *what, size_t whatlen, char *why, size_t whylen)
{
	struct azure_cred c;
	memset(&c, 0, sizeof(c));
	int rc = find(&c, client_id, why, whylen);
	if (rc == 0)
		snprintf(what, whatlen, "%s", c.what);
	clear(&c);
	return rc;
}

int
azure_token_answer(const char *body, size_t len, uint64_t now_ms, char **token, uint64_t *expires_ms,
    char *why, size_t whylen)
{
	*token = NULL;
	cJSON *j = cJSON_ParseWithLength(body, len);
	const cJSON *at = cJSON_GetObjectItemCaseSensitive(j, "access_token");
	const cJSON *on = cJSON_GetObjectItemCaseSensitive(j, "expires_on");
	const cJSON *in = cJSON_GetObjectItemCaseSensitive(j, "expires_in");
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
	const cJSON *desc = cJSON_GetObjectItemCaseSensitive(j, "error_description");
	int rc = -1;
	if (!cJSON_IsString(at) || *at->valuestring == '\0') {
		if (cJSON_IsString(err))
			snprintf(why, whylen, "%.100s%s%.400s", err->valuestring, cJSON_IsString(desc) ? ": " : "",
			    cJSON_IsString(desc) ? desc->valuestring : "");
		else
			snprintf(why, whylen, "the answer has no access_token");
		goto done;
	}
	if (strpbrk(at->valuestring, "\r\n") != NULL) {
		snprintf(why, whylen, "the access token has a line break");
		goto done;
	}
	/* Numbers or strings of digits, as the endpoints write them. */
	int64_t when = -1, after = -1;
	if (cJSON_IsNumber(on))
		when = (int64_t)on->valuedouble;
	else if (cJSON_IsString(on) && *on->valuestring && strspn(on->valuestring, "0123456789") == strlen(on->valuestring))
		when = strtoll(on->valuestring, NULL, 10);
	if (cJSON_IsNumber(in))
		after = (int64_t)in->valuedouble;
	else if (cJSON_IsString(in) && *in->valuestring && strspn(in->valuestring, "0123456789") == strlen(in->valuestring))
		after = strtoll(in->valuestring, NULL, 10);
	if (when > 0)
		*expires_ms = (uint64_t)when * 1000;
	else if (after > 0)
		*expires_ms = now_ms + (uint64_t)after * 1000;
	else {
		snprintf(why, whylen, "the answer says neither expires_on nor expires_in");
		goto done;
	}
	if (*expires_ms <= now_ms) {
		snprintf(why, whylen, "the token has expired already");
		goto done;
	}
	if ((*token = strdup(at->valuestring)) == NULL) {
		snprintf(why, whylen, "out of memory");
		goto done;
	}
	rc = 0;
done:
	if (cJSON_IsString(at))
		OPENSSL_cleanse(at->valuestring, strlen(at->valuestring));
	cJSON_Delete(j);
	return rc;
}

static void
token_done(void *arg, const struct fetch_result *r)
{
	struct azure_cred *c = arg;
	char why[700], reason[600], *tok = NULL;
	uint64_t exp = 0;
	if (r->error != NULL) {
		snprintf(why, sizeof(why), "token from %s: %s", c->what, r->error);
		tokcache_fetched(c->cache, NULL, 0, why);
		return;
	}
	int rc = azure_token_answer(r->body, r->len, real_ms(), &tok, &exp, reason, sizeof(reason));
	OPENSSL_cleanse((char *)r->body, r->len);
	if (r->status != 200 || rc < 0) {
		if (r->status != 200)
			snprintf(why, sizeof(why), "token from %.300s: HTTP status %ld%s%.300s", c->what, r->status,
			    rc < 0 && strcmp(reason, "the answer has no access_token") != 0 ? ": " : "",
			    rc < 0 && strcmp(reason, "the answer has no access_token") != 0 ? reason : "");
		else
			snprintf(why, sizeof(why), "token from %.300s: %.300s", c->what, reason);
		if (tok != NULL) {
			OPENSSL_cleanse(tok, strlen(tok));
			free(tok);
		}
		if (c->host != NULL)
			c->host->log(MCPD_LOG_ERROR, "azure: %s", why);
		tokcache_fetched(c->cache, NULL, 0, why);
		return;
	}
	if (!c->said && c->host != NULL)
		c->host->log(MCPD_LOG_INFO, "azure: a token from %s (renewed before it expires)", c->what);
	c->said = 1;
	tokcache_fetched(c->cache, tok, exp, NULL);
}

/* A small file whole, NUL-terminated (malloc'ed), or NULL and errno. */
static char *
read_small(const char *path, size_t *lenp)
{
	FILE *fp = fopen(path, "re");
	if (fp == NULL)
		return NULL;
	char *buf = malloc(MAX_FILE + 1);
	size_t n = buf ? fread(buf, 1, MAX_FILE + 1, fp) : 0;
	int bad = buf == NULL || ferror(fp) || n > MAX_FILE;
	fclose(fp);
	if (bad) {
		free(buf);
		errno = buf == NULL ? ENOMEM : EFBIG;
		return NULL;
	}
	buf[n] = '\0';
	*lenp = n;
	return buf;
}

static void
fail_now(struct azure_cred *c, const char *what)
{
	char why[700];
	snprintf(why, sizeof(why), "token from %s: %s", c->what, what);
	if (c->host != NULL)
		c->host->log(MCPD_LOG_ERROR, "azure: %s", why);
	tokcache_fetched(c->cache, NULL, 0, why);
}

static void
fetch_workload(struct azure_cred *c)
{
	size_t len;
	char err[600], url[1024];
	char *assertion = read_small(c->token_file, &len);
	if (assertion == NULL) {
		snprintf(err, sizeof(err), "cannot read %.300s: %s", c->token_file, strerror(errno));
		fail_now(c, err);
		return;
	}
	char *a = assertion, *body = NULL;
	while (isspace((unsigned char)*a))
		a++;
	size_t n = strlen(a);
	while (n > 0 && isspace((unsigned char)a[n - 1]))
		a[--n] = '\0';
	int ok = fetch_form_add(&body, "grant_type", "client_credentials") == 0 &&
	    fetch_form_add(&body, "client_id", c->client_id) == 0 &&
	    fetch_form_add(&body, "scope", c->scope) == 0 &&
	    fetch_form_add(&body, "client_assertion_type",
	    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") == 0 &&
	    fetch_form_add(&body, "client_assertion", a) == 0;
	OPENSSL_cleanse(assertion, len);
	free(assertion);
	if (!ok) {
		if (body != NULL) {
			OPENSSL_cleanse(body, strlen(body));
			free(body);
		}
		fail_now(c, "out of memory");
		return;
	}
	snprintf(url, sizeof(url), "%s%s/oauth2/v2.0/token", c->authority, c->tenant);
	static const char *const headers[] = { "Content-Type: application/x-www-form-urlencoded",
	    "Accept: application/json", NULL };
	struct fetch_request rq = { "POST", headers, body, strlen(body), 0 };
	struct fetch_opts o = { FETCH_TIMEOUT_MS, MAX_ANSWER, NULL, 0 };
	int rc = fetch_request(c->f, url, &rq, &o, token_done, c, err, sizeof(err));
	OPENSSL_cleanse(body, strlen(body));
	free(body);
	if (rc < 0)
		fail_now(c, err);
}

/* The managed identity endpoints: GET with the resource in the query. */
static void
fetch_managed(struct azure_cred *c)
{
	char err[600], *url = NULL, *hdr = NULL;
	char *res = fetch_form_encode(c->resource), *cid = c->client_id ? fetch_form_encode(c->client_id) : NULL;
	int app = c->src == SRC_APP;
	int ok = res != NULL && (c->client_id == NULL || cid != NULL) &&
	    asprintf(&url, "%s%sapi-version=%s&resource=%s%s%s", c->endpoint, strchr(c->endpoint, '?') ? "&" : "?",
	    app ? "2019-08-01" : "2018-02-01", res, cid ? "&client_id=" : "", cid ? cid : "") >= 0;
	free(res);
	free(cid);
	if (!ok) {
		url = NULL;
		fail_now(c, "out of memory");
		return;
	}
	if (app && asprintf(&hdr, "X-IDENTITY-HEADER: %s", c->header) < 0) {
		free(url);
		fail_now(c, "out of memory");
		return;
	}
	const char *headers[] = { app ? hdr : "Metadata: true", "Accept: application/json", NULL };
	struct fetch_request rq = { "GET", headers, NULL, 0, 1 };
	struct fetch_opts o = { app ? FETCH_TIMEOUT_MS : IMDS_TIMEOUT_MS, MAX_ANSWER, NULL, 0 };
	int rc = fetch_request(c->f, url, &rq, &o, token_done, c, err, sizeof(err));
	free(url);
	if (hdr != NULL) {
		OPENSSL_cleanse(hdr, strlen(hdr));
		free(hdr);
	}
	if (rc < 0)
		fail_now(c, err);
}

static void
start_fetch(void *src, struct tokcache *tc)
{
	(void)tc;
	struct azure_cred *c = src;
	if (c->src == SRC_WORKLOAD)
		fetch_workload(c);
	else
		fetch_managed(c);
}

struct azure_cred *
azure_cred_new(struct fetcher *f, const char *scope, const char *client_id, const struct mcpd_host *host,
    char *err, size_t errlen)
{
	struct azure_cred *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->f = f;
	c->host = host;
	if (find(c, client_id, err, errlen) < 0)
		goto fail;
	size_t n = strlen(scope);
	const char *suffix = "/.default";
	size_t sl = strlen(suffix);
	if ((c->scope = strdup(scope)) == NULL ||
	    (c->resource = strndup(scope, n >= sl && strcmp(scope + n - sl, suffix) == 0 ? n - sl : n)) == NULL ||
	    (c->cache = tokcache_new(start_fetch, c)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return c;
fail:
	azure_cred_free(c);
	return NULL;
}

void
azure_cred_free(struct azure_cred *c)
{
	if (c == NULL)
		return;
	tokcache_free(c->cache);
	clear(c);
	free(c);
}

const char *
azure_cred_source(const struct azure_cred *c)
{
	return c->what;
}

void
azure_token_get(struct azure_cred *c, tokcache_cb *cb, void *arg)
{
	tokcache_get(c->cache, cb, arg);
}

void
azure_token_invalidate(struct azure_cred *c)
{
	tokcache_invalidate(c->cache);
}

int
azure_token_times(const struct azure_cred *c, uint64_t *expires_ms, uint64_t *renew_ms)
{
	return tokcache_times(c->cache, expires_ms, renew_ms);
}
