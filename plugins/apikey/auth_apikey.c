/*
 * apikey: static bearer keys, each standing for a user with scopes.
 *
 *   auth: { plugin: apikey, keys_file: /etc/mcpd/apikeys }
 *
 * The file holds a line per key, as `mcpd -k USER [SCOPE...]` prints it:
 *
 *   alice:sha256:<64 hex digits of SHA-256(key)>:tools.read tools.write
 *
 * Only hashes are kept: keys are random (mcpd -k makes 256-bit ones), so
 * a plain SHA-256 cannot be reversed or guessed. A presented key is
 * hashed and compared with every entry in constant time.
 */
#include <mcpd/plugin.h>

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_KEYS 100000

struct key {
	unsigned char hash[32];
	char *user;
	char *scopes;
};

struct apikey {
	const struct mcpd_host *host;
	struct key *keys;
	size_t nkeys;
};

static void
apikey_destroy(void *inst)
{
	struct apikey *a = inst;
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->nkeys; i++) {
		free(a->keys[i].user);
		free(a->keys[i].scopes);
		OPENSSL_cleanse(a->keys[i].hash, 32);
	}
	free(a->keys);
	free(a);
}

static int
hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	    c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* One line: user:sha256:hex[:scopes]. 0, or -1 and why. */
static int
parse_line(char *line, struct key *k, char *why, size_t len)
{
	char *user = line;
	char *alg = strchr(user, ':');
	if (alg == NULL) {
		snprintf(why, len, "expected user:sha256:<hash>[:scopes], as mcpd -k prints");
		return -1;
	}
	*alg++ = '\0';
	char *hex = strchr(alg, ':');
	if (hex == NULL) {
		snprintf(why, len, "expected user:sha256:<hash>[:scopes], as mcpd -k prints");
		return -1;
	}
	*hex++ = '\0';
	char *scopes = strchr(hex, ':');
	if (scopes != NULL)
		*scopes++ = '\0';
	if (user[0] == '\0') {
		snprintf(why, len, "the user name is empty");
		return -1;
	}
	if (strcmp(alg, "sha256") != 0) {
		snprintf(why, len, "unknown hash \"%s\" (only sha256)", alg);
		return -1;
	}
	if (strlen(hex) != 64) {
		snprintf(why, len, "the hash must be 64 hex digits");
		return -1;
	}
	for (int i = 0; i < 32; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			snprintf(why, len, "the hash must be 64 hex digits");
			return -1;
		}
		k->hash[i] = (unsigned char)(hi << 4 | lo);
	}
	for (const char *s = scopes; s != NULL && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == '"' || *s == '\\' || (unsigned char)*s > 0x7e) {
			snprintf(why, len, "scopes are printable ASCII without quotes or backslashes");
			return -1;
		}
	k->user = strdup(user);
	k->scopes = strdup(scopes ? scopes : "");
	if (k->user == NULL || k->scopes == NULL) {
		free(k->user);
		free(k->scopes);
		snprintf(why, len, "out of memory");
		return -1;
	}
	return 0;
}

static int
load_keys(struct apikey *a, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "keys_file %.512s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 022) != 0) {
		/* Whoever can write it can let themselves in. */
		snprintf(err, errlen, "keys_file %.512s can be written by others (mode %03o): chmod 600 or 640 it",
		    path, (unsigned)(st.st_mode & 0777));
		fclose(f);
		return -1;
	}
	char line[4096];
	size_t cap = 0;
	int lineno = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		size_t n = strlen(line);
		if (n == sizeof(line) - 1 && line[n - 1] != '\n') {
			snprintf(err, errlen, "%.512s:%d: line too long", path, lineno);
			goto fail;
		}
		while (n > 0 && isspace((unsigned char)line[n - 1]))
			line[--n] = '\0';
		char *p = line;
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '\0' || *p == '#')
			continue;
		if (a->nkeys == MAX_KEYS) {
			snprintf(err, errlen, "%.512s: more than %d keys", path, MAX_KEYS);
			goto fail;
		}
		if (a->nkeys == cap) {
			cap = cap ? cap * 2 : 16;
			struct key *k = realloc(a->keys, cap * sizeof(*k));
			if (k == NULL) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			a->keys = k;
		}
		char why[200];
		struct key *k = &a->keys[a->nkeys];
		if (parse_line(p, k, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%.512s:%d: %s", path, lineno, why);
			goto fail;
		}
		for (size_t i = 0; i < a->nkeys; i++)
			if (memcmp(a->keys[i].hash, k->hash, 32) == 0) {
				snprintf(err, errlen, "%.512s:%d: the same key as for %.100s", path, lineno, a->keys[i].user);
				free(k->user);
				free(k->scopes);
				goto fail;
			}
		a->nkeys++;
	}
	fclose(f);
	return 0;
fail:
	fclose(f);
	return -1;
}

static void *
apikey_create(const struct mcpd_host *host, const struct mcpd_config *section, char *err, size_t errlen)
{
	if (host->size < offsetof(struct mcpd_host, config_dir) + sizeof(host->config_dir)) {
		snprintf(err, errlen, "this mcpd is too old for the apikey plugin");
		return NULL;
	}
	struct apikey *a = calloc(1, sizeof(*a));
	if (a == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->host = host;
	const char *file = NULL;
	const struct mcpd_config *file_node = NULL;
	for (size_t i = 0; i < host->config_count(section); i++) {
		const char *key;
		const struct mcpd_config *v = host->config_item(section, i, &key);
		char where[512];
		host->config_where(v, where, sizeof(where));
		if (mcpd_auth_common_key(key))
			continue;
		if (strcmp(key, "keys_file") == 0 && host->config_scalar(v) != NULL) {
			file = host->config_scalar(v);
			file_node = v;
		} else {
			snprintf(err, errlen, "%s: unknown key \"%s\" in auth (apikey takes keys_file)", where, key);
			goto fail;
		}
	}
	if (file == NULL) {
		snprintf(err, errlen, "apikey needs keys_file: (a file of lines made by mcpd -k USER [SCOPE...])");
		goto fail;
	}
	char path[4096], why[1024];
	int pl = file[0] == '/' ? snprintf(path, sizeof(path), "%s", file) :
	    snprintf(path, sizeof(path), "%s/%s", host->config_dir(), file);
	if (pl < 0 || (size_t)pl >= sizeof(path)) {
		/* cut, it would name another file */
		snprintf(why, sizeof(why), "keys_file: the path is longer than %zu bytes", sizeof(path) - 1);
		pl = -1;
	}
	if (pl < 0 || load_keys(a, path, why, sizeof(why)) < 0) {
		char where[512];
		host->config_where(file_node, where, sizeof(where));
		snprintf(err, errlen, "%s: %s", where, why);
		goto fail;
	}
	if (a->nkeys == 0)
		host->log(MCPD_LOG_WARN, "apikey: %s holds no keys: every request will be refused", path);
	return a;
fail:
	apikey_destroy(a);
	return NULL;
}

static void
apikey_authenticate(void *inst, const char *token, mcpd_auth_cb *cb, void *arg)
{
	struct apikey *a = inst;
	unsigned char h[32];
	unsigned int n = 32;
	EVP_Digest(token, strlen(token), h, &n, EVP_sha256(), NULL);
	/* Every entry is compared, found or not: the time says nothing. */
	const struct key *found = NULL;
	for (size_t i = 0; i < a->nkeys; i++)
		if (CRYPTO_memcmp(a->keys[i].hash, h, 32) == 0)
			found = &a->keys[i];
	if (found == NULL) {
		cb(arg, MCPD_DENIED, NULL, "unknown API key");
		return;
	}
	struct mcpd_principal p = { found->user, NULL, found->scopes, 0 };
	cb(arg, MCPD_OK, &p, NULL);
}

static const struct mcpd_auth_ops ops = {
	.size = sizeof(struct mcpd_auth_ops),
	.authenticate = apikey_authenticate,
};

static const struct mcpd_plugin descriptor = {
	.size = sizeof(struct mcpd_plugin),
	.abi_major = MCPD_PLUGIN_ABI_MAJOR,
	.abi_minor = MCPD_PLUGIN_ABI_MINOR,
	.kind = MCPD_PLUGIN_AUTH,
	.name = "apikey",
	.version = "1.0.0",
	.create = apikey_create,
	.destroy = apikey_destroy,
	.ops = &ops,
};

const struct mcpd_plugin *
mcpd_plugin_entry(void)
{
	return &descriptor;
}
