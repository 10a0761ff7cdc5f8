#include "reqstate.h"
#include "json.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static unsigned char process_key[REQSTATE_KEY_LEN];
static int process_key_set;

int
reqstate_key(const char *path, unsigned char key[REQSTATE_KEY_LEN], char *err, size_t errlen)
{
	if (path == NULL) {
		/* One random key per master: its workers inherit it, and it
		 * survives reloads so that states in flight stay valid. */
		if (!process_key_set) {
			if (random_bytes(process_key, sizeof(process_key)) < 0) {
				snprintf(err, errlen, "cannot get random bytes: %s", strerror(errno));
				return -1;
			}
			process_key_set = 1;
		}
		memcpy(key, process_key, REQSTATE_KEY_LEN);
		return 0;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && (st.st_mode & 0077) != 0 && (st.st_mode & 0004) != 0) {
		close(fd);
		snprintf(err, errlen, "%s is readable by everyone; chmod 600 it", path);
		return -1;
	}
	unsigned char buf[4096];
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 32) {
		snprintf(err, errlen, "%s holds %zd bytes; a key needs at least 32 (e.g. openssl rand -hex 32)",
		    path, n < 0 ? (ssize_t)0 : n);
		return -1;
	}
	unsigned int len = REQSTATE_KEY_LEN;
	EVP_Digest(buf, (size_t)n, key, &len, EVP_sha256(), NULL);
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static char *
b64url(const unsigned char *in, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);
	if (out == NULL)
		return NULL;
	size_t n = base64_encode(in, len, out);
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (size_t i = 0; i < n; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	return out;
}

char *
reqstate_seal(const unsigned char key[REQSTATE_KEY_LEN], cJSON *payload, uint64_t ttl_ms)
{
	cJSON_DeleteItemFromObjectCaseSensitive(payload, "exp");
	cJSON_AddNumberToObject(payload, "exp", (double)(now_ms() + ttl_ms));
	char *json = json_print(payload);
	if (json == NULL)
		return NULL;
	unsigned char mac[32];
	unsigned int maclen = sizeof(mac);
	HMAC(EVP_sha256(), key, REQSTATE_KEY_LEN, (unsigned char *)json, strlen(json), mac, &maclen);
	char *a = b64url((unsigned char *)json, strlen(json));
	char *b = b64url(mac, maclen);
	free(json);
	char *token = NULL;
	if (a != NULL && b != NULL && asprintf(&token, "%s.%s", a, b) < 0)
		token = NULL;
	free(a);
	free(b);
	return token;
}

cJSON *
reqstate_open(const unsigned char key[REQSTATE_KEY_LEN], const char *token, char *err, size_t errlen)
{
	const char *dot = strchr(token, '.');
	size_t tlen = strlen(token);
	if (dot == NULL || tlen > 1024 * 1024) {
		snprintf(err, errlen, "requestState is malformed");
		return NULL;
	}
	size_t plen = (size_t)(dot - token);
	unsigned char *payload = malloc(plen + 1);
	/* 32 bytes are 43 base64url characters, 44 padded: anything longer is
	 * no MAC of ours and must not be decoded into mac[]. */
	unsigned char mac[48];
	size_t outlen = 0, maclen = 0, mlen = strlen(dot + 1);
	if (payload == NULL || base64_decode(token, plen, payload, &outlen) < 0 ||
	    mlen > 44 || base64_decode(dot + 1, mlen, mac, &maclen) < 0 || maclen != 32) {
		free(payload);
		snprintf(err, errlen, "requestState integrity check failed");
		return NULL;
	}
	unsigned char want[32];
	unsigned int wlen = sizeof(want);
	HMAC(EVP_sha256(), key, REQSTATE_KEY_LEN, payload, outlen, want, &wlen);
	if (CRYPTO_memcmp(want, mac, 32) != 0) {
		free(payload);
		snprintf(err, errlen, "requestState integrity check failed");
		return NULL;
	}
	payload[outlen] = '\0';
	cJSON *v = json_parse((char *)payload, outlen, 0, NULL);
	free(payload);
	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(v, "exp");
	if (!cJSON_IsObject(v) || !cJSON_IsNumber(exp)) {
		cJSON_Delete(v);
		snprintf(err, errlen, "requestState is malformed");
		return NULL;
	}
	if (exp->valuedouble < (double)now_ms()) {
		cJSON_Delete(v);
		snprintf(err, errlen, "requestState has expired; start the request again");
		return NULL;
	}
	return v;
}

void
json_digest(const cJSON *v, char out[65])
{
	char *s = v ? json_print(v) : NULL;
	unsigned char d[32];
	unsigned int dl = sizeof(d);
	EVP_Digest(s ? s : "", s ? strlen(s) : 0, d, &dl, EVP_sha256(), NULL);
	free(s);
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[64] = '\0';
}
