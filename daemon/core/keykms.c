#include "keykms.h"
#include "host.h"
#include "keyfile.h"
#include "util.h"

#include "aws.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* AWS KMS's ciphertexts are a few hundred bytes. */
#define WRAPPED_MAX 6144

struct unwrap {
	int done;
	long status;
	char *body;
	size_t len;
	char why[512];
};

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
	if ((u->body = malloc(r->len + 1)) != NULL) {
		memcpy(u->body, r->body, r->len);
		u->body[r->len] = '\0';
		u->len = r->len;
	}
}

static void
timed_out(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	event_base_loopbreak(arg);
}

/* The file's ciphertext as base64 text (what `aws kms encrypt --output
 * text --query CiphertextBlob` prints), whether it holds that or bytes. */
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
		    (buf[i] >= '0' && buf[i] <= '9') || buf[i] == '+' || buf[i] == '/' || buf[i] == '=';
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
	if (strcmp(k->provider, "aws") != 0) {
		snprintf(err, errlen, "provider %s is not supported (aws is)", k->provider);
		goto done;
	}
	if (unwrap_aws(k, blob, &u, err, errlen) < 0)
		goto done;
	j = cJSON_ParseWithLength(u.body, u.len);
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "Plaintext");
	if (!cJSON_IsString(p) || strlen(p->valuestring) > 4 * ((KEYFILE_MAX + 2) / 3) ||
	    base64_decode(p->valuestring, strlen(p->valuestring), plain, &n) < 0) {
		snprintf(err, errlen, "AWS KMS's answer has no Plaintext");
		goto done;
	}
	if (n < KEYFILE_MIN || n > KEYFILE_MAX) {
		snprintf(err, errlen, "the data key %s wraps has %zu bytes; it needs %d to %d "
		    "(aws kms generate-data-key --key-spec AES_256)", path, n, KEYFILE_MIN, KEYFILE_MAX);
		goto done;
	}
	if (keyfile_derive(plain, n, label, key) < 0) {
		snprintf(err, errlen, "%s: cannot hash the key", path);
		goto done;
	}
	rc = 0;
done:
	if (j != NULL && cJSON_GetObjectItemCaseSensitive(j, "Plaintext") != NULL) {
		char *s = cJSON_GetObjectItemCaseSensitive(j, "Plaintext")->valuestring;
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
