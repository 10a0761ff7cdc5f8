/* Google's Application Default Credentials: see gcp_auth.h. */
#include <mcpd/plugin.h>

#include "b64.h"
#include "clock.h"
#include "credfile.h"
#include "fetch.h"
#include "gcp_auth.h"
#include "isotime.h"
#include "tokcache.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_FILE (1u << 20)             /* a credentials file, a subject token file */
#define MAX_ANSWER (64u << 10)          /* of a token endpoint */
#define MAX_TOKEN 16384
#define FETCH_TIMEOUT_MS 5000
#define METADATA_TIMEOUT_MS 3000
#define RETRY_AFTER_FAILURE_MS 1000
#define DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"
#define DEFAULT_STS "https://sts.googleapis.com/v1/token"
#define METADATA_HOST "metadata.google.internal"
#define TOKEN_PATH "/computeMetadata/v1/instance/service-accounts/default/token"
#define MAX_SOURCE_HEADERS 8

enum source { SRC_SERVICE_ACCOUNT, SRC_USER, SRC_EXTERNAL, SRC_METADATA };

struct waiter {
	gcp_token_cb *cb;
	void *arg;
	struct waiter *next;
};

struct gcp_auth {
	struct fetcher *f;
	const struct mcpd_host *host;
	enum source src;
	char what[600];
	char project[128];
	/* service account */
	char *email, *key_id, *token_uri;
	char *pem;
	/* authorized user */
	char *client_id, *client_secret, *refresh_token;
	/* external account */
	char *audience, *subject_type, *sts_url, *impersonate_url;
	char *src_file, *src_url, *src_field;
	char *src_headers[MAX_SOURCE_HEADERS + 1];
	int ext_step;                   /* 0 subject token, 1 STS, 2 impersonation */
	/* metadata */
	char *md_url;
	/* the token */
	char *token;
	uint64_t expires_ms, obtained_ms;       /* wall clock */
	int fetching;
	uint64_t failed_at;             /* monotonic, of the last failed fetch */
	char last_error[1024];
	struct waiter *waiters, **tail;
	int depth;                      /* in callbacks: a free waits for them */
	int doomed;
};

static void
say(const struct gcp_auth *a, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
say(const struct gcp_auth *a, int level, const char *fmt, ...)
{
	if (a->host == NULL)
		return;
	char msg[1200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	a->host->log((enum mcpd_log_level)level, "%s", msg);
}

static const char *
str(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	return cJSON_IsString(v) && *v->valuestring != '\0' ? v->valuestring : NULL;
}

static int
dup_to(char **slot, const char *v)
{
	if (v == NULL)
		return 0;
	return (*slot = strdup(v)) == NULL ? -1 : 0;
}

/* An endpoint from a credentials file: https, or http to loopback (a
 * test's); plain http to anything else would send secrets in clear. */
static int
url_ok(const char *path, const char *what, const char *url, char *why, size_t whylen)
{
	char reason[600];
	if (fetch_url_allowed(url, reason, sizeof(reason)) < 0) {
		snprintf(why, whylen, "%.300s: %s: %s", path, what, reason);
		return -1;
	}
	return 0;
}

static void
source_clear(struct gcp_auth *a)
{
	free(a->email);
	free(a->key_id);
	free(a->token_uri);
	cred_wipe_free(&a->pem);
	free(a->client_id);
	cred_wipe_free(&a->client_secret);
	cred_wipe_free(&a->refresh_token);
	free(a->audience);
	free(a->subject_type);
	free(a->sts_url);
	free(a->impersonate_url);
	free(a->src_file);
	free(a->src_url);
	free(a->src_field);
	for (size_t i = 0; i < MAX_SOURCE_HEADERS; i++)
		cred_wipe_free(&a->src_headers[i]);
	free(a->md_url);
	a->email = a->key_id = a->token_uri = NULL;
	a->client_id = NULL;
	a->audience = a->subject_type = a->sts_url = a->impersonate_url = NULL;
	a->src_file = a->src_url = a->src_field = a->md_url = NULL;
}

static int
load_service_account(struct gcp_auth *a, const cJSON *j, const char *path, char *why, size_t whylen)
{
	const char *email = str(j, "client_email"), *key = str(j, "private_key");
	if (email == NULL || key == NULL) {
		snprintf(why, whylen, "%s: a service account key needs client_email and private_key", path);
		return -1;
	}
	/* The key must be one OpenSSL can sign with: found now, not at the
	 * first call. */
	BIO *bio = BIO_new_mem_buf(key, -1);
	EVP_PKEY *pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	int rsa = pk != NULL && EVP_PKEY_is_a(pk, "RSA");
	EVP_PKEY_free(pk);
	BIO_free(bio);
	if (!rsa) {
		snprintf(why, whylen, "%s: private_key is not an RSA private key in PEM", path);
		return -1;
	}
	const char *uri = str(j, "token_uri") ? str(j, "token_uri") : DEFAULT_TOKEN_URI;
	if (url_ok(path, "token_uri", uri, why, whylen) < 0)
		return -1;
	if (dup_to(&a->email, email) < 0 || dup_to(&a->pem, key) < 0 || dup_to(&a->key_id, str(j, "private_key_id")) < 0 ||
	    dup_to(&a->token_uri, uri) < 0) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	a->src = SRC_SERVICE_ACCOUNT;
	snprintf(a->what, sizeof(a->what), "service account %.200s (%.300s)", email, path);
	if (str(j, "project_id") != NULL)
		snprintf(a->project, sizeof(a->project), "%s", str(j, "project_id"));
	return 0;
}

static int
load_user(struct gcp_auth *a, const cJSON *j, const char *path, char *why, size_t whylen)
{
	const char *id = str(j, "client_id"), *secret = str(j, "client_secret"), *rt = str(j, "refresh_token");
	if (id == NULL || secret == NULL || rt == NULL) {
		snprintf(why, whylen, "%s: authorized_user credentials need client_id, client_secret and refresh_token", path);
		return -1;
	}
	const char *uri = str(j, "token_uri") ? str(j, "token_uri") : DEFAULT_TOKEN_URI;
	if (url_ok(path, "token_uri", uri, why, whylen) < 0)
		return -1;
	if (dup_to(&a->client_id, id) < 0 || dup_to(&a->client_secret, secret) < 0 || dup_to(&a->refresh_token, rt) < 0 ||
	    dup_to(&a->token_uri, uri) < 0) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	a->src = SRC_USER;
	snprintf(a->what, sizeof(a->what), "user credentials of client %.100s (%.300s)", id, path);
	if (str(j, "quota_project_id") != NULL)
		snprintf(a->project, sizeof(a->project), "%s", str(j, "quota_project_id"));
	return 0;
}

static int
load_external(struct gcp_auth *a, const cJSON *j, const char *path, char *why, size_t whylen)
{
	const char *aud = str(j, "audience"), *type = str(j, "subject_token_type");
	const cJSON *cs = cJSON_GetObjectItemCaseSensitive(j, "credential_source");
	if (aud == NULL || type == NULL || !cJSON_IsObject(cs)) {
		snprintf(why, whylen, "%s: an external account needs audience, subject_token_type and credential_source",
		    path);
		return -1;
	}
	if (str(cs, "environment_id") != NULL || cJSON_GetObjectItemCaseSensitive(cs, "executable") != NULL ||
	    cJSON_GetObjectItemCaseSensitive(cs, "certificate") != NULL) {
		snprintf(why, whylen, "%s: this credential_source (%s) is not supported by mcpd: use a file or a URL "
		    "source", path, str(cs, "environment_id") ? str(cs, "environment_id") :
		    cJSON_GetObjectItemCaseSensitive(cs, "executable") ? "executable" : "certificate");
		return -1;
	}
	const char *file = str(cs, "file"), *url = str(cs, "url");
	if ((file == NULL) == (url == NULL)) {
		snprintf(why, whylen, "%s: credential_source needs exactly one of file and url", path);
		return -1;
	}
	const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(cs, "format");
	const char *ftype = str(fmt, "type");
	const char *field = NULL;
	if (ftype != NULL && strcmp(ftype, "json") == 0) {
		if ((field = str(fmt, "subject_token_field_name")) == NULL) {
			snprintf(why, whylen, "%s: a json format needs subject_token_field_name", path);
			return -1;
		}
	} else if (ftype != NULL && strcmp(ftype, "text") != 0) {
		snprintf(why, whylen, "%s: credential_source format type must be text or json", path);
		return -1;
	}
	const char *sts = str(j, "token_url") ? str(j, "token_url") : DEFAULT_STS;
	const char *imp = str(j, "service_account_impersonation_url");
	if (url_ok(path, "token_url", sts, why, whylen) < 0 ||
	    (imp != NULL && url_ok(path, "service_account_impersonation_url", imp, why, whylen) < 0))
		return -1;
	if (url != NULL && strncasecmp(url, "https://", 8) != 0 && strncasecmp(url, "http://", 7) != 0) {
		snprintf(why, whylen, "%s: credential_source url must be http or https", path);
		return -1;
	}
	if (dup_to(&a->audience, aud) < 0 || dup_to(&a->subject_type, type) < 0 || dup_to(&a->sts_url, sts) < 0 ||
	    dup_to(&a->impersonate_url, imp) < 0 || dup_to(&a->src_file, file) < 0 || dup_to(&a->src_url, url) < 0 ||
	    dup_to(&a->src_field, field) < 0)
		goto oom;
	const cJSON *hs = cJSON_GetObjectItemCaseSensitive(cs, "headers"), *h;
	size_t n = 0;
	cJSON_ArrayForEach(h, hs) {
		if (!cJSON_IsString(h) || h->string == NULL || n >= MAX_SOURCE_HEADERS ||
		    strpbrk(h->string, "\r\n:") != NULL || strpbrk(h->valuestring, "\r\n") != NULL) {
			snprintf(why, whylen, "%s: credential_source headers must be at most %d names with string values",
			    path, MAX_SOURCE_HEADERS);
			return -1;
		}
		if (asprintf(&a->src_headers[n], "%s: %s", h->string, h->valuestring) < 0) {
			a->src_headers[n] = NULL;
			goto oom;
		}
		n++;
	}
	a->src = SRC_EXTERNAL;
	snprintf(a->what, sizeof(a->what), "workload identity federation (%.300s, subject token from %.200s)", path,
	    file ? file : url);
	return 0;
oom:
	snprintf(why, whylen, "out of memory");
	return -1;
}

static int
load_file(struct gcp_auth *a, const char *path, char *why, size_t whylen)
{
	size_t len;
	char *text = cred_slurp(path, MAX_FILE, &len);
	if (text == NULL) {
		snprintf(why, whylen, "cannot read the credentials file %.300s: %s", path, strerror(errno));
		return -1;
	}
	cJSON *j = cJSON_ParseWithLength(text, len);
	OPENSSL_cleanse(text, len);
	free(text);
	int rc = -1;
	const char *type = str(j, "type");
	if (j == NULL)
		snprintf(why, whylen, "the credentials file %.300s is not JSON", path);
	else if (type == NULL)
		snprintf(why, whylen, "the credentials file %.300s has no \"type\"", path);
	else if (strcmp(type, "service_account") == 0)
		rc = load_service_account(a, j, path, why, whylen);
	else if (strcmp(type, "authorized_user") == 0)
		rc = load_user(a, j, path, why, whylen);
	else if (strcmp(type, "external_account") == 0)
		rc = load_external(a, j, path, why, whylen);
	else
		snprintf(why, whylen, "the credentials file %.300s is of type %.64s, which mcpd does not support "
		    "(service_account, external_account and authorized_user are)", path, type);
	/* cJSON keeps copies of the secrets: wipe them. */
	const char *secrets[] = { "private_key", "client_secret", "refresh_token", NULL };
	for (const char *const *s = secrets; *s != NULL; s++) {
		cJSON *v = cJSON_GetObjectItemCaseSensitive(j, *s);
		if (cJSON_IsString(v))
			OPENSSL_cleanse(v->valuestring, strlen(v->valuestring));
	}
	cJSON_Delete(j);
	return rc;
}

/* The source the environment and files name: a filled. 0, or -1 and why. */
static int
find(struct gcp_auth *a, char *why, size_t whylen)
{
	const char *gac = cred_env("GOOGLE_APPLICATION_CREDENTIALS");
	if (gac != NULL)
		return load_file(a, gac, why, whylen);
	char path[1024];
	const char *dir = cred_env("CLOUDSDK_CONFIG"), *home = cred_env("HOME");
	int have = 0;
	if (dir != NULL)
		have = snprintf(path, sizeof(path), "%s/application_default_credentials.json", dir) < (int)sizeof(path);
	else if (home != NULL)
		have = snprintf(path, sizeof(path), "%s/.config/gcloud/application_default_credentials.json", home) <
		    (int)sizeof(path);
	FILE *fp = have ? fopen(path, "re") : NULL;
	if (fp != NULL) {
		fclose(fp);
		return load_file(a, path, why, whylen);
	}
	const char *md = cred_env("GCE_METADATA_HOST");
	if (md == NULL)
		md = METADATA_HOST;
	if (strpbrk(md, "/?#@ \r\n") != NULL) {
		snprintf(why, whylen, "GCE_METADATA_HOST must be a host or host:port");
		return -1;
	}
	if (asprintf(&a->md_url, "http://%s" TOKEN_PATH, md) < 0) {
		a->md_url = NULL;
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	a->src = SRC_METADATA;
	snprintf(a->what, sizeof(a->what), "the metadata server (%.300s)", md);
	return 0;
}

int
gcp_auth_probe(char *what, size_t whatlen, char *project, size_t projectlen, char *why, size_t whylen)
{
	struct gcp_auth a;
	memset(&a, 0, sizeof(a));
	int rc = find(&a, why, whylen);
	if (rc == 0)
		snprintf(what, whatlen, "%s", a.what);
	snprintf(project, projectlen, "%s", rc == 0 ? a.project : "");
	source_clear(&a);
	return rc;
}

struct gcp_auth *
gcp_auth_new(struct fetcher *f, const struct mcpd_host *host, char *err, size_t errlen)
{
	struct gcp_auth *a = calloc(1, sizeof(*a));
	if (a == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->f = f;
	a->host = host;
	a->tail = &a->waiters;
	if (find(a, err, errlen) < 0) {
		source_clear(a);
		free(a);
		return NULL;
	}
	return a;
}

const char *
gcp_auth_source(const struct gcp_auth *a)
{
	return a->what;
}

void
gcp_auth_free(struct gcp_auth *a)
{
	if (a == NULL)
		return;
	/* Waiters hear nothing more: their owners are going too. */
	while (a->waiters != NULL) {
		struct waiter *w = a->waiters;
		a->waiters = w->next;
		free(w);
	}
	a->tail = &a->waiters;
	if (a->depth > 0) {
		a->doomed = 1;
		return;
	}
	source_clear(a);
	cred_wipe_free(&a->token);
	free(a);
}

/* ---- the JWT of a service account ---- */

char *
gcp_jwt_assertion(const char *email, const char *pem_key, const char *key_id, const char *scope, const char *aud,
    int64_t now, char *err, size_t errlen)
{
	char *out = NULL, *hb = NULL, *cb = NULL, *sb = NULL, *h = NULL, *c = NULL, *input = NULL;
	unsigned char *sig = NULL;
	EVP_MD_CTX *md = NULL;
	BIO *bio = BIO_new_mem_buf(pem_key, -1);
	EVP_PKEY *pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (pk == NULL || !EVP_PKEY_is_a(pk, "RSA")) {
		snprintf(err, errlen, "the private key is not an RSA key in PEM");
		goto done;
	}
	cJSON *hj = cJSON_CreateObject(), *cj = cJSON_CreateObject();
	if (hj != NULL && cj != NULL) {
		cJSON_AddStringToObject(hj, "alg", "RS256");
		cJSON_AddStringToObject(hj, "typ", "JWT");
		if (key_id != NULL)
			cJSON_AddStringToObject(hj, "kid", key_id);
		cJSON_AddStringToObject(cj, "iss", email);
		cJSON_AddStringToObject(cj, "scope", scope);
		cJSON_AddStringToObject(cj, "aud", aud);
		cJSON_AddNumberToObject(cj, "iat", (double)now);
		cJSON_AddNumberToObject(cj, "exp", (double)(now + 3600));
		h = cJSON_PrintUnformatted(hj);
		c = cJSON_PrintUnformatted(cj);
	}
	cJSON_Delete(hj);
	cJSON_Delete(cj);
	if (h == NULL || c == NULL || (hb = b64url_encode((unsigned char *)h, strlen(h))) == NULL ||
	    (cb = b64url_encode((unsigned char *)c, strlen(c))) == NULL || asprintf(&input, "%s.%s", hb, cb) < 0) {
		input = NULL;
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	size_t siglen = 0;
	if ((md = EVP_MD_CTX_new()) == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pk) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, (unsigned char *)input, strlen(input)) != 1 ||
	    (sig = malloc(siglen)) == NULL ||
	    EVP_DigestSign(md, sig, &siglen, (unsigned char *)input, strlen(input)) != 1) {
		snprintf(err, errlen, "cannot sign the JWT with the private key");
		goto done;
	}
	if ((sb = b64url_encode(sig, siglen)) == NULL || asprintf(&out, "%s.%s", input, sb) < 0) {
		out = NULL;
		snprintf(err, errlen, "out of memory");
	}
done:
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pk);
	free(sig);
	free(h);
	free(c);
	free(hb);
	free(cb);
	free(sb);
	free(input);
	return out;
}

/* ---- fetching tokens ---- */

/* Still good for a call: not within the last tenth of its life (at most
 * 10 s), so that a call does not reach the service with a token that
 * lapsed on the way (tokcache.h's rule). */
static int
usable(const struct gcp_auth *a, uint64_t now)
{
	return a->token != NULL && tokcache_usable(a->obtained_ms, a->expires_ms, now);
}

/* Time to fetch another: in the second half of its life, or the last 5
 * minutes of it. */
static int
due(const struct gcp_auth *a, uint64_t now)
{
	return a->token == NULL || tokcache_due(a->obtained_ms, a->expires_ms, now);
}

static void
serve_waiters(struct gcp_auth *a, const char *token, const char *why)
{
	struct waiter *w = a->waiters;
	a->waiters = NULL;
	a->tail = &a->waiters;
	a->depth++;
	while (w != NULL) {
		struct waiter *next = w->next;
		if (!a->doomed)
			w->cb(w->arg, token, why);
		free(w);
		w = next;
	}
	if (--a->depth == 0 && a->doomed)
		gcp_auth_free(a);
}

/* A fetch ended: a new token (taken) valid for ttl_ms, or why not. */
static void
fetched(struct gcp_auth *a, char *token, uint64_t expires_ms, const char *why)
{
	a->fetching = 0;
	a->ext_step = 0;
	if (why != NULL || token == NULL) {
		cred_wipe_free(&token);
		a->failed_at = mono_ms();
		snprintf(a->last_error, sizeof(a->last_error), "credentials from %.600s: %.400s", a->what,
		    why ? why : "no token");
		if (usable(a, real_ms())) {
			say(a, MCPD_LOG_WARN, "google: cannot renew the token (%s); the current one stays in use "
			    "until it expires", a->last_error);
			char *t = strdup(a->token);
			serve_waiters(a, t, t ? NULL : "out of memory");
			cred_wipe_free(&t);
			return;
		}
		say(a, MCPD_LOG_ERROR, "google: %s", a->last_error);
		char msg[sizeof(a->last_error)];
		snprintf(msg, sizeof(msg), "%s", a->last_error);
		serve_waiters(a, NULL, msg);
		return;
	}
	int first = a->token == NULL || a->last_error[0] != '\0';
	cred_wipe_free(&a->token);
	a->token = token;
	a->obtained_ms = real_ms();
	a->expires_ms = expires_ms;
	a->last_error[0] = '\0';
	if (first)
		say(a, MCPD_LOG_INFO, "google: an access token from %s (renewed before it expires)", a->what);
	/* The waiters get a copy: one of them may free a (a worker stopping). */
	char *t = strdup(a->token);
	serve_waiters(a, t, t ? NULL : "out of memory");
	cred_wipe_free(&t);
}

/* A token answer, {"access_token", "expires_in"} (OAuth 2.0, STS and the
 * metadata server) or {"accessToken", "expireTime"} (IAM credentials). */
static void
take_token(struct gcp_auth *a, const struct fetch_result *r, const char *who)
{
	char why[700];
	if (r->error != NULL && r->status == 0) {
		snprintf(why, sizeof(why), "%s: %s", who, r->error);
		fetched(a, NULL, 0, why);
		return;
	}
	cJSON *j = cJSON_ParseWithLength(r->body, r->len);
	if (r->status != 200) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
		const char *code = cJSON_IsString(e) ? e->valuestring : str(e, "status");
		const char *desc = str(j, "error_description") ? str(j, "error_description") : str(e, "message");
		snprintf(why, sizeof(why), "%s refused (HTTP %ld)%s%.100s%s%.300s", who, r->status, code ? ": " : "",
		    code ? code : "", desc ? ": " : "", desc ? desc : "");
		cJSON_Delete(j);
		fetched(a, NULL, 0, why);
		return;
	}
	const char *tok = str(j, "access_token") ? str(j, "access_token") : str(j, "accessToken");
	const cJSON *in = cJSON_GetObjectItemCaseSensitive(j, "expires_in");
	const char *at = str(j, "expireTime");
	uint64_t now = real_ms(), expires = 0;
	if (cJSON_IsNumber(in) && in->valuedouble > 0 && in->valuedouble < 86400 * 365)
		expires = now + (uint64_t)(in->valuedouble * 1000);
	else if (cJSON_IsString(in) && atoll(in->valuestring) > 0)
		expires = now + (uint64_t)atoll(in->valuestring) * 1000;
	else if (at != NULL)
		expires = isotime_parse_ms(at);
	if (expires == 0)
		expires = now + 3600 * 1000;    /* none said: Google's tokens live an hour */
	if (tok == NULL || strlen(tok) > MAX_TOKEN || strpbrk(tok, "\r\n ") != NULL) {
		cJSON_Delete(j);
		OPENSSL_cleanse((char *)r->body, r->len);
		snprintf(why, sizeof(why), "%s gave no usable access token", who);
		fetched(a, NULL, 0, why);
		return;
	}
	char *t = strdup(tok);
	OPENSSL_cleanse((char *)tok, strlen(tok));
	cJSON_Delete(j);
	OPENSSL_cleanse((char *)r->body, r->len);
	if (t == NULL)
		fetched(a, NULL, 0, "out of memory");
	else if (expires <= now)
		fetched(a, t, 0, "the token has expired already");
	else
		fetched(a, t, expires, NULL);
}

static void
token_answer(void *arg, const struct fetch_result *r)
{
	struct gcp_auth *a = arg;
	const char *who = a->src == SRC_METADATA ? "the metadata server" : a->src == SRC_EXTERNAL ?
	    (a->ext_step == 2 ? "service account impersonation" : "the security token service") : "the token endpoint";
	if (a->src == SRC_EXTERNAL && a->ext_step == 1 && a->impersonate_url != NULL && r->error == NULL &&
	    r->status == 200) {
		/* The federated token buys a service account's token. */
		cJSON *j = cJSON_ParseWithLength(r->body, r->len);
		const char *tok = str(j, "access_token");
		char *auth = NULL, err[600];
		if (tok == NULL || strpbrk(tok, "\r\n") != NULL || asprintf(&auth, "Authorization: Bearer %s", tok) < 0) {
			auth = NULL;
			cJSON_Delete(j);
			fetched(a, NULL, 0, "the security token service gave no access token");
			return;
		}
		OPENSSL_cleanse((char *)tok, strlen(tok));
		cJSON_Delete(j);
		OPENSSL_cleanse((char *)r->body, r->len);
		const char *headers[] = { "Content-Type: application/json", "Accept: application/json", auth, NULL };
		const char *body = "{\"scope\":[\"" GCP_SCOPE "\"],\"lifetime\":\"3600s\"}";
		struct fetch_request rq = { "POST", headers, body, strlen(body), 0 };
		struct fetch_opts o = { FETCH_TIMEOUT_MS, MAX_ANSWER, NULL, 0 };
		a->ext_step = 2;
		int rc = fetch_request(a->f, a->impersonate_url, &rq, &o, token_answer, a, err, sizeof(err));
		cred_wipe_free(&auth);
		if (rc < 0)
			fetched(a, NULL, 0, err);
		return;
	}
	take_token(a, r, who);
}

static void
post_form(struct gcp_auth *a, const char *url, char *form)
{
	char err[600];
	if (form == NULL) {
		fetched(a, NULL, 0, "out of memory");
		return;
	}
	struct fetch_post p = { form, NULL, NULL };
	struct fetch_opts o = { FETCH_TIMEOUT_MS, MAX_ANSWER, NULL, 0 };
	int rc = fetch_post(a->f, url, &p, &o, token_answer, a, err, sizeof(err));
	cred_wipe_free(&form);
	if (rc < 0)
		fetched(a, NULL, 0, err);
}

static char *
form_of(const char *const *kv)
{
	char *body = NULL;
	for (size_t i = 0; kv[i] != NULL; i += 2)
		if (fetch_form_add(&body, kv[i], kv[i + 1]) < 0) {
			cred_wipe_free(&body);
			return NULL;
		}
	return body;
}

static void
fetch_service_account(struct gcp_auth *a)
{
	char err[300];
	char *jwt = gcp_jwt_assertion(a->email, a->pem, a->key_id, GCP_SCOPE, a->token_uri, (int64_t)time(NULL), err,
	    sizeof(err));
	if (jwt == NULL) {
		fetched(a, NULL, 0, err);
		return;
	}
	const char *kv[] = { "grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion", jwt, NULL };
	char *form = form_of(kv);
	cred_wipe_free(&jwt);
	post_form(a, a->token_uri, form);
}

static void
fetch_user(struct gcp_auth *a)
{
	const char *kv[] = { "grant_type", "refresh_token", "client_id", a->client_id, "client_secret",
	    a->client_secret, "refresh_token", a->refresh_token, NULL };
	post_form(a, a->token_uri, form_of(kv));
}

/* The subject token in hand: exchanged at STS. */
static void
exchange(struct gcp_auth *a, char *subject)
{
	const char *kv[] = { "grant_type", "urn:ietf:params:oauth:grant-type:token-exchange", "audience", a->audience,
	    "scope", GCP_SCOPE, "requested_token_type", "urn:ietf:params:oauth:token-type:access_token",
	    "subject_token", subject, "subject_token_type", a->subject_type, NULL };
	char *form = form_of(kv);
	OPENSSL_cleanse(subject, strlen(subject));
	a->ext_step = 1;
	post_form(a, a->sts_url, form);
}

/* The subject token out of what the source gave: the text, or a field of
 * its JSON. 0, or -1 and why. */
static int
subject_of(struct gcp_auth *a, char *text, size_t len, char **out, char *why, size_t whylen)
{
	*out = NULL;
	if (a->src_field == NULL) {
		char *t = cred_trim(text);
		if (*t == '\0') {
			snprintf(why, whylen, "the subject token is empty");
			return -1;
		}
		*out = strdup(t);
	} else {
		cJSON *j = cJSON_ParseWithLength(text, len);
		const char *v = str(j, a->src_field);
		if (v == NULL) {
			cJSON_Delete(j);
			snprintf(why, whylen, "the subject token source has no field %.100s", a->src_field);
			return -1;
		}
		*out = strdup(v);
		OPENSSL_cleanse((char *)v, strlen(v));
		cJSON_Delete(j);
	}
	if (*out == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	return 0;
}

static void
subject_answer(void *arg, const struct fetch_result *r)
{
	struct gcp_auth *a = arg;
	char why[600], *subject;
	if (r->error != NULL || r->status != 200) {
		snprintf(why, sizeof(why), "the subject token URL %.200s: %s", a->src_url,
		    r->error ? r->error : "HTTP status not 200");
		if (r->error == NULL)
			snprintf(why, sizeof(why), "the subject token URL %.200s: HTTP status %ld", a->src_url, r->status);
		fetched(a, NULL, 0, why);
		return;
	}
	int rc = subject_of(a, (char *)r->body, r->len, &subject, why, sizeof(why));
	OPENSSL_cleanse((char *)r->body, r->len);
	if (rc < 0) {
		fetched(a, NULL, 0, why);
		return;
	}
	exchange(a, subject);
	cred_wipe_free(&subject);
}

static void
fetch_external(struct gcp_auth *a)
{
	char why[600], *subject;
	a->ext_step = 0;
	if (a->src_file != NULL) {
		/* Read again at each renewal: the platform rotates it. */
		size_t len;
		char *text = cred_slurp(a->src_file, MAX_FILE, &len);
		if (text == NULL) {
			snprintf(why, sizeof(why), "cannot read the subject token file %.300s: %s", a->src_file,
			    strerror(errno));
			fetched(a, NULL, 0, why);
			return;
		}
		int rc = subject_of(a, text, len, &subject, why, sizeof(why));
		OPENSSL_cleanse(text, len);
		free(text);
		if (rc < 0) {
			fetched(a, NULL, 0, why);
			return;
		}
		exchange(a, subject);
		cred_wipe_free(&subject);
		return;
	}
	const char *headers[MAX_SOURCE_HEADERS + 2];
	size_t n = 0;
	for (size_t i = 0; i < MAX_SOURCE_HEADERS && a->src_headers[i] != NULL; i++)
		headers[n++] = a->src_headers[i];
	headers[n] = NULL;
	struct fetch_request rq = { "GET", headers, NULL, 0, 1 };
	struct fetch_opts o = { FETCH_TIMEOUT_MS, MAX_ANSWER, NULL, 0 };
	if (fetch_request(a->f, a->src_url, &rq, &o, subject_answer, a, why, sizeof(why)) < 0)
		fetched(a, NULL, 0, why);
}

static void
fetch_metadata(struct gcp_auth *a)
{
	char err[600];
	static const char *const headers[] = { "Metadata-Flavor: Google", "Accept: application/json", NULL };
	struct fetch_request rq = { "GET", headers, NULL, 0, 1 };
	struct fetch_opts o = { METADATA_TIMEOUT_MS, MAX_ANSWER, NULL, 0 };
	if (fetch_request(a->f, a->md_url, &rq, &o, token_answer, a, err, sizeof(err)) < 0)
		fetched(a, NULL, 0, err);
}

static void
start_fetch(struct gcp_auth *a)
{
	if (a->fetching)
		return;
	a->fetching = 1;
	switch (a->src) {
	case SRC_SERVICE_ACCOUNT:
		fetch_service_account(a);
		break;
	case SRC_USER:
		fetch_user(a);
		break;
	case SRC_EXTERNAL:
		fetch_external(a);
		break;
	case SRC_METADATA:
		fetch_metadata(a);
		break;
	}
}

void
gcp_auth_token(struct gcp_auth *a, gcp_token_cb *cb, void *arg)
{
	uint64_t now = real_ms();
	if (usable(a, now)) {
		/* Renewed in the background when due; this one serves
		 * meanwhile. A renewal that failed is tried again after a
		 * pause. */
		if (due(a, now) && !a->fetching && mono_ms() - a->failed_at >= RETRY_AFTER_FAILURE_MS)
			start_fetch(a);
		if (a->token == NULL) {         /* the fetch failed at once */
			cb(arg, NULL, a->last_error);
			return;
		}
		char *t = strdup(a->token);
		cb(arg, t, t ? NULL : "out of memory");
		cred_wipe_free(&t);
		return;
	}
	if (!a->fetching && a->failed_at != 0 && mono_ms() - a->failed_at < RETRY_AFTER_FAILURE_MS) {
		cb(arg, NULL, a->last_error);
		return;
	}
	struct waiter *w = malloc(sizeof(*w));
	if (w == NULL) {
		cb(arg, NULL, "out of memory");
		return;
	}
	w->cb = cb;
	w->arg = arg;
	w->next = NULL;
	*a->tail = w;
	a->tail = &w->next;
	start_fetch(a);
}

void
gcp_auth_invalidate(struct gcp_auth *a)
{
	if (a->token == NULL)
		return;
	a->expires_ms = real_ms();      /* no longer usable: the next use fetches */
	a->failed_at = 0;
}
