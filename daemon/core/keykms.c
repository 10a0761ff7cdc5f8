#include "keykms.h"
#include "host.h"
#include "keyfile.h"
#include "util.h"

#include "aws.h"
#include "azure_auth.h"
#include "fetch.h"
#include "gcp_auth.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* AWS KMS's ciphertexts are a few hundred bytes; an RSA-4096 wrap, 512. */
#define WRAPPED_MAX 6144
/* A KMS's answer: the data key and a few names. */
#define ANSWER_MAX 65536

#define GCP_KMS_DEFAULT "https://cloudkms.googleapis.com"
#define KEY_VAULT_API "7.4"

struct unwrap {
	int done;
	long status;
	char *body;
	size_t len;
	char why[512];
	/* gcp, azure: the call, made once a token is there */
	struct fetcher *f;
	const char *url;
	const char *request;
	uint64_t timeout_ms;
};

/* The KMS's answer, kept past its callback (NULL body: out of memory,
 * told as no answer). */
static void
keep_answer(struct unwrap *u, const char *body, size_t len)
{
	if ((u->body = malloc(len + 1)) != NULL) {
		memcpy(u->body, body, len);
		u->body[len] = '\0';
		u->len = len;
	}
}

static void
decrypted(void *arg, const struct aws_result *r)
{
	struct unwrap *u = arg;
	u->done = 1;
	u->status = r->status;
	if (r->message != NULL) {
		snprintf(u->why, sizeof(u->why), "%s%s%s", r->type && *r->type ? r->type : "",
		    r->type && *r->type ? ": " : "", r->message);
		return;
	}
	keep_answer(u, r->body, r->len);
}

static void
timed_out(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	event_base_loopbreak(arg);
}

/* The file's ciphertext as base64 text (what `aws kms encrypt --output
 * text --query CiphertextBlob` and `gcloud kms encrypt` piped to base64
 * print; base64url as Key Vault's wrapkey answers), whether it holds
 * that or bytes. */
static char *
read_wrapped(const char *path, char *err, size_t errlen)
{
	unsigned char buf[WRAPPED_MAX + 1];
	size_t n = 0;
	char *out = NULL;
	if (keyfile_load(path, 0, buf, sizeof(buf), &n, err, errlen) < 0)
		goto done;
	if (n == 0 || n > WRAPPED_MAX) {
		snprintf(err, errlen, "%s holds %s: not a wrapped key (the KMS's CiphertextBlob)", path,
		    n == 0 ? "nothing" : "more than 6 KiB");
		goto done;
	}
	int text = 1;
	for (size_t i = 0; i < n && text; i++)
		text = (buf[i] >= 'A' && buf[i] <= 'Z') || (buf[i] >= 'a' && buf[i] <= 'z') ||
		    (buf[i] >= '0' && buf[i] <= '9') || buf[i] == '+' || buf[i] == '/' || buf[i] == '=' ||
		    buf[i] == '-' || buf[i] == '_';
	if ((out = malloc(4 * ((n + 2) / 3) + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	if (text) {
		memcpy(out, buf, n);
		out[n] = '\0';
	} else
		base64_encode(buf, n, out);
done:
	return out;
}

static int
unwrap_aws(const struct kms_conf *k, const char *blob, struct unwrap *u, char *err, size_t errlen)
{
	char region[64], why[512];
	struct aws_service svc;
	struct event_base *base = NULL;
	struct aws_client *c = NULL;
	struct event *timer = NULL;
	char *body = NULL;
	int rc = -1;
	if (aws_region(k->region, NULL, region, sizeof(region), why, sizeof(why)) < 0 ||
	    aws_service_init(&svc, "kms", k->endpoint, region, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	svc.json11 = 1;
	cJSON *req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "CiphertextBlob", blob);
	if (k->key_id != NULL)
		cJSON_AddStringToObject(req, "KeyId", k->key_id);
	body = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	if (body == NULL || (base = event_base_new()) == NULL ||
	    (timer = evtimer_new(base, timed_out, base)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	if ((c = aws_client_new(base, host_table(), region, NULL, "storage.encrypt_key_kms", why, sizeof(why))) == NULL) {
		snprintf(err, errlen, "%s", why);
		goto done;
	}
	/* The call bounds itself (budget); the timer is the backstop. */
	struct timeval tv = { (time_t)(k->timeout_ms / 1000 + 1), 0 };
	evtimer_add(timer, &tv);
	aws_json(c, &svc, "TrentService.Decrypt", body, strlen(body), k->timeout_ms, k->timeout_ms, decrypted, u);
	while (!u->done && event_base_loop(base, EVLOOP_ONCE) == 0 && evtimer_pending(timer, NULL))
		;
	if (!u->done) {
		snprintf(err, errlen, "AWS KMS (%s) did not answer within %llu ms", svc.url,
		    (unsigned long long)k->timeout_ms);
		goto done;
	}
	if (u->body == NULL) {
		snprintf(err, errlen, u->status == 0 ? "AWS KMS (%s) did not answer: %s" :
		    "AWS KMS (%s) refused to decrypt it: %s", svc.url, u->why[0] ? u->why : "no answer");
		goto done;
	}
	rc = 0;
done:
	if (c != NULL)
		aws_client_free(c);
	if (timer != NULL)
		event_free(timer);
	if (base != NULL)
		event_base_free(base);
	free(body);
	return rc;
}

/* The wrapped key, whichever base64 alphabet the file used, in the one
 * the KMS reads (url: base64url without padding, as Key Vault's JSON
 * Web Key values are). NULL: not base64 (an error names the file). */
static char *
reencode(const char *blob, int url)
{
	size_t n = strlen(blob), len = 0;
	unsigned char *raw = malloc(n);
	char *out = malloc(4 * ((n + 2) / 3) + 1);
	if (raw == NULL || out == NULL || base64_decode(blob, n, raw, &len) < 0) {
		free(out);
		out = NULL;
	} else if (url)
		base64url_encode(raw, len, out);
	else
		base64_encode(raw, len, out);
	free(raw);
	return out;
}

/* The service's own words from an error answer: Google's
 * {"error":{"status","message"}}, Key Vault's {"error":{"code","message"}}. */
static void
error_words(const struct fetch_result *r, char *why, size_t whylen)
{
	cJSON *j = r->body != NULL ? cJSON_ParseWithLength(r->body, r->len) : NULL;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "status");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
	if (!cJSON_IsString(code))
		code = cJSON_GetObjectItemCaseSensitive(e, "code");
	if (cJSON_IsString(msg))
		snprintf(why, whylen, "HTTP %ld %.60s%s%.300s", r->status, cJSON_IsString(code) ? code->valuestring : "",
		    cJSON_IsString(code) ? ": " : "", msg->valuestring);
	else
		snprintf(why, whylen, "HTTP %ld", r->status);
	cJSON_Delete(j);
}

static void
answered(void *arg, const struct fetch_result *r)
{
	struct unwrap *u = arg;
	u->done = 1;
	u->status = r->status;
	if (r->error != NULL && r->status == 0) {
		snprintf(u->why, sizeof(u->why), "%s", r->error);
		return;
	}
	if (r->error != NULL || r->status != 200) {
		error_words(r, u->why, sizeof(u->why));
		return;
	}
	keep_answer(u, r->body, r->len);
}

/* The token is here (gcp_auth_token or azure_token_get): the call. */
static void
have_token(void *arg, const char *token, const char *why)
{
	struct unwrap *u = arg;
	char err[256];
	if (token == NULL) {
		u->done = 1;
		snprintf(u->why, sizeof(u->why), "no access token: %s", why ? why : "none");
		return;
	}
	char *auth = NULL;
	if (asprintf(&auth, "Authorization: Bearer %s", token) < 0) {
		u->done = 1;
		snprintf(u->why, sizeof(u->why), "out of memory");
		return;
	}
	const char *headers[] = { auth, "Content-Type: application/json", NULL };
	struct fetch_request rq = { "POST", headers, u->request, strlen(u->request), fetch_url_loopback(u->url) };
	struct fetch_opts o = { u->timeout_ms, ANSWER_MAX, NULL, 0 };
	if (fetch_request(u->f, u->url, &rq, &o, answered, u, err, sizeof(err)) < 0) {
		u->done = 1;
		snprintf(u->why, sizeof(u->why), "%s", err);
	}
	OPENSSL_cleanse(auth, strlen(auth));
	free(auth);
}

/* Key Vault's token audience, from the vault's host: the public cloud's
 * (vault.azure.net), a sovereign cloud's (vault.azure.cn,
 * vault.usgovcloudapi.net...) or a Managed HSM's. */
static void
key_vault_scope(const char *url, char *scope, size_t len)
{
	const char *h = strstr(url, "://");
	h = h != NULL ? h + 3 : url;
	size_t hl = strcspn(h, ":/");
	const char *dot = memchr(h, '.', hl);
	const char *rest = dot != NULL ? dot + 1 : NULL;
	size_t rl = rest != NULL ? hl - (size_t)(rest - h) : 0;
	if (rest != NULL && ((rl > 6 && strncmp(rest, "vault.", 6) == 0) ||
	    (rl > 11 && strncmp(rest, "managedhsm.", 11) == 0)))
		snprintf(scope, len, "https://%.*s/.default", (int)rl, rest);
	else
		snprintf(scope, len, "https://vault.azure.net/.default");
}

/* Cloud KMS's decrypt or Key Vault's unwrapkey with a bearer token. */
static int
unwrap_bearer(const struct kms_conf *k, const char *blob, struct unwrap *u, char *err, size_t errlen)
{
	int gcp = strcmp(k->provider, "gcp") == 0;
	const char *service = gcp ? "Google Cloud KMS" : "Azure Key Vault";
	struct event_base *base = NULL;
	struct event *timer = NULL;
	struct fetcher *f = NULL;
	struct gcp_auth *ga = NULL;
	struct azure_cred *ac = NULL;
	char *wrapped = NULL, *url = NULL, *body = NULL;
	char why[512], scope[300];
	int rc = -1;
	if ((wrapped = reencode(blob, !gcp)) == NULL) {
		snprintf(err, errlen, "not base64 text");
		goto done;
	}
	cJSON *req = cJSON_CreateObject();
	if (gcp) {
		const char *ep = k->endpoint != NULL ? k->endpoint : GCP_KMS_DEFAULT;
		size_t el = strlen(ep);
		while (el > 0 && ep[el - 1] == '/')
			el--;
		if (asprintf(&url, "%.*s/v1/%s:decrypt", (int)el, ep, k->key_id) < 0)
			url = NULL;
		cJSON_AddStringToObject(req, "ciphertext", wrapped);
	} else {
		size_t kl = strlen(k->key_id);
		while (kl > 0 && k->key_id[kl - 1] == '/')
			kl--;
		if (asprintf(&url, "%.*s/unwrapkey?api-version=" KEY_VAULT_API, (int)kl, k->key_id) < 0)
			url = NULL;
		cJSON_AddStringToObject(req, "alg", k->algorithm != NULL ? k->algorithm : "RSA-OAEP-256");
		cJSON_AddStringToObject(req, "value", wrapped);
	}
	body = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	if (url == NULL || body == NULL || (base = event_base_new()) == NULL ||
	    (timer = evtimer_new(base, timed_out, base)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	if ((f = fetcher_new(base, "mcpd", why, sizeof(why))) == NULL) {
		snprintf(err, errlen, "%s", why);
		goto done;
	}
	u->f = f;
	u->url = url;
	u->request = body;
	u->timeout_ms = k->timeout_ms;
	/* The token's fetch and the call share the timeout; the timer is
	 * the backstop. */
	struct timeval tv = { (time_t)(k->timeout_ms / 1000), (suseconds_t)(k->timeout_ms % 1000) * 1000 };
	evtimer_add(timer, &tv);
	if (gcp) {
		if ((ga = gcp_auth_new(f, NULL, why, sizeof(why))) == NULL) {
			snprintf(err, errlen, "no Google credentials: %s", why);
			goto done;
		}
		gcp_auth_token(ga, have_token, u);
	} else {
		key_vault_scope(k->key_id, scope, sizeof(scope));
		if ((ac = azure_cred_new(f, scope, k->client_id, NULL, why, sizeof(why))) == NULL) {
			snprintf(err, errlen, "no Entra ID credentials: %s", why);
			goto done;
		}
		azure_token_get(ac, have_token, u);
	}
	while (!u->done && event_base_loop(base, EVLOOP_ONCE) == 0 && evtimer_pending(timer, NULL))
		;
	if (!u->done) {
		snprintf(err, errlen, "%s (%s) did not answer within %llu ms", service, url,
		    (unsigned long long)k->timeout_ms);
		goto done;
	}
	if (u->body == NULL) {
		snprintf(err, errlen, u->status == 0 ? "%s (%s) did not answer: %s" :
		    "%s (%s) refused to decrypt it: %s", service, url, u->why[0] ? u->why : "no answer");
		goto done;
	}
	rc = 0;
done:
	gcp_auth_free(ga);
	azure_cred_free(ac);
	if (f != NULL)
		fetcher_free(f);
	if (timer != NULL)
		event_free(timer);
	if (base != NULL)
		event_base_free(base);
	if (wrapped != NULL) {
		OPENSSL_cleanse(wrapped, strlen(wrapped));
		free(wrapped);
	}
	free(url);
	free(body);
	return rc;
}

static int
is_name(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '-' || s[i] == '_' || s[i] == '.'))
			return 0;
	return 1;
}

/* projects/P/locations/L/keyRings/R/cryptoKeys/K */
static int
gcp_key_name(const char *s)
{
	static const char *const parts[] = { "projects", "locations", "keyRings", "cryptoKeys" };
	for (size_t i = 0; i < 4; i++) {
		size_t pl = strlen(parts[i]);
		if (strncmp(s, parts[i], pl) != 0 || s[pl] != '/')
			return 0;
		s += pl + 1;
		size_t n = strcspn(s, "/");
		if (!is_name(s, n) || (i < 3 && s[n] != '/') || (i == 3 && s[n] != '\0'))
			return 0;
		s += n + (i < 3);
	}
	return 1;
}

/* https://VAULT.vault.azure.net/keys/NAME[/VERSION] */
static int
key_vault_key(const char *s, char *why, size_t whylen)
{
	if (fetch_url_allowed(s, why, whylen) < 0)
		return 0;
	const char *h = strstr(s, "://") + 3;
	const char *path = strchr(h, '/');
	if (path == NULL || strncmp(path, "/keys/", 6) != 0 || strpbrk(s, "?#") != NULL) {
		snprintf(why, whylen, "is not a Key Vault key's identifier (https://VAULT.vault.azure.net/keys/NAME/VERSION)");
		return 0;
	}
	const char *name = path + 6;
	size_t n = strcspn(name, "/");
	const char *ver = name[n] == '/' ? name + n + 1 : name + n;
	size_t vn = strcspn(ver, "/");
	if (!is_name(name, n) || (ver[0] != '\0' && !is_name(ver, vn)) || ver[vn] != '\0') {
		snprintf(why, whylen, "is not a Key Vault key's identifier (https://VAULT.vault.azure.net/keys/NAME/VERSION)");
		return 0;
	}
	return 1;
}

int
keykms_check(const struct kms_conf *k, const char **which, char *why, size_t whylen)
{
	static const char *const algs[] = { "RSA-OAEP-256", "RSA-OAEP", "RSA1_5", "A128KW", "A192KW", "A256KW", NULL };
	*which = "provider";
	if (k->provider == NULL) {
		snprintf(why, whylen, "is needed: aws, gcp or azure");
		return -1;
	}
	int aws = strcmp(k->provider, "aws") == 0, gcp = strcmp(k->provider, "gcp") == 0;
	int azure = strcmp(k->provider, "azure") == 0;
	if (!aws && !gcp && !azure) {
		snprintf(why, whylen, "%s is not one of aws, gcp, azure", k->provider);
		return -1;
	}
	const struct { const char *name, *value; int ok; } only[] = {
		{ "region", k->region, aws },
		{ "endpoint", k->endpoint, aws || gcp },
		{ "algorithm", k->algorithm, azure },
		{ "client_id", k->client_id, azure },
	};
	for (size_t i = 0; i < sizeof(only) / sizeof(only[0]); i++)
		if (only[i].value != NULL && !only[i].ok) {
			*which = only[i].name;
			snprintf(why, whylen, "is not a setting of provider %s", k->provider);
			return -1;
		}
	*which = "key_id";
	if (!aws && k->key_id == NULL) {
		snprintf(why, whylen, gcp ? "is needed: the key's name, projects/P/locations/L/keyRings/R/cryptoKeys/K" :
		    "is needed: the key's identifier, https://VAULT.vault.azure.net/keys/NAME/VERSION");
		return -1;
	}
	if (gcp && !gcp_key_name(k->key_id)) {
		snprintf(why, whylen, "%s is not a key's name (projects/P/locations/L/keyRings/R/cryptoKeys/K)", k->key_id);
		return -1;
	}
	if (azure && !key_vault_key(k->key_id, why, whylen))
		return -1;
	*which = "endpoint";
	if (gcp && k->endpoint != NULL && fetch_url_allowed(k->endpoint, why, whylen) < 0)
		return -1;
	*which = "algorithm";
	if (azure && k->algorithm != NULL) {
		size_t i = 0;
		while (algs[i] != NULL && strcmp(algs[i], k->algorithm) != 0)
			i++;
		if (algs[i] == NULL) {
			snprintf(why, whylen, "%s is not one of RSA-OAEP-256, RSA-OAEP, RSA1_5, A128KW, A192KW, A256KW",
			    k->algorithm);
			return -1;
		}
	}
	return 0;
}

int
keykms_unwrap(const struct kms_conf *k, const char *path, const char *label, unsigned char key[KEYFILE_LEN],
    char *err, size_t errlen)
{
	struct unwrap u;
	memset(&u, 0, sizeof(u));
	char *blob = read_wrapped(path, err, errlen);
	if (blob == NULL)
		return -1;
	int rc = -1;
	unsigned char plain[KEYFILE_MAX + 3];   /* what the bounded base64 may decode to */
	size_t n = 0;
	cJSON *j = NULL;
	const char *field = "Plaintext", *service = "AWS KMS";
	if (strcmp(k->provider, "aws") == 0) {
		if (unwrap_aws(k, blob, &u, err, errlen) < 0)
			goto done;
	} else if (strcmp(k->provider, "gcp") == 0 || strcmp(k->provider, "azure") == 0) {
		int gcp = strcmp(k->provider, "gcp") == 0;
		field = gcp ? "plaintext" : "value";
		service = gcp ? "Google Cloud KMS" : "Azure Key Vault";
		if (unwrap_bearer(k, blob, &u, err, errlen) < 0)
			goto done;
	} else {
		snprintf(err, errlen, "provider %s is not one of aws, gcp, azure", k->provider);
		goto done;
	}
	j = cJSON_ParseWithLength(u.body, u.len);
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, field);
	if (!cJSON_IsString(p) || strlen(p->valuestring) > 4 * ((KEYFILE_MAX + 2) / 3) ||
	    base64_decode(p->valuestring, strlen(p->valuestring), plain, &n) < 0) {
		snprintf(err, errlen, "%s's answer has no %s", service, field);
		goto done;
	}
	if (n < KEYFILE_MIN || n > KEYFILE_MAX) {
		snprintf(err, errlen, "the data key %s wraps has %zu bytes; it needs %d to %d "
		    "(32 random bytes, as aws kms generate-data-key --key-spec AES_256 makes)", path, n,
		    KEYFILE_MIN, KEYFILE_MAX);
		goto done;
	}
	if (keyfile_derive(plain, n, label, key) < 0) {
		snprintf(err, errlen, "%s: cannot hash the key", path);
		goto done;
	}
	rc = 0;
done:
	if (j != NULL && cJSON_GetObjectItemCaseSensitive(j, field) != NULL) {
		char *s = cJSON_GetObjectItemCaseSensitive(j, field)->valuestring;
		if (s != NULL)
			OPENSSL_cleanse(s, strlen(s));
	}
	cJSON_Delete(j);
	if (u.body != NULL) {
		OPENSSL_cleanse(u.body, u.len);
		free(u.body);
	}
	OPENSSL_cleanse(plain, sizeof(plain));
	free(blob);
	return rc;
}
