/* Encrypted state (see storage_seal.h). A read carries a small record of
 * the key it read (the additional data to open with) and whom to call. */
#include "storage_seal.h"
#include "log.h"
#include "plugin.h"
#include "sealbox.h"
#include "sigmsg.h"
#include "util.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Problems are logged at most this often (a flood of bad values must not
 * flood the log); the errors themselves go to every caller. */
#define LOG_EVERY_MS 10000

static struct mcpd_storage_ops sops;
static const struct mcpd_storage_ops *sreal;
static struct sigkeys keys;

struct rd {
	void *cb;
	void *arg;
	struct rd *prev, *next;
	char name[];
};
static struct rd *pending;

static struct rd *
rd_new(const char *name, void *cb, void *arg)
{
	size_t n = strlen(name) + 1;
	struct rd *r = malloc(sizeof(*r) + n);
	if (r == NULL)
		return NULL;
	memcpy(r->name, name, n);
	r->cb = cb;
	r->arg = arg;
	r->prev = NULL;
	r->next = pending;
	if (pending != NULL)
		pending->prev = r;
	pending = r;
	return r;
}

static void
rd_free(struct rd *r)
{
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		pending = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	free(r);
}

const struct sigkeys *
storage_seal_keys(void)
{
	return keys.n > 0 ? &keys : NULL;
}

void
storage_seal_forget(void)
{
	while (pending != NULL) {
		struct rd *r = pending;
		pending = r->next;
		free(r);
	}
	OPENSSL_cleanse(&keys, sizeof(keys));
}

static void
complain(const char *name, const char *msg)
{
	static uint64_t last;
	static unsigned long quiet;
	uint64_t now = monotonic_ms();
	if (last != 0 && now - last < LOG_EVERY_MS) {
		quiet++;
		return;
	}
	if (quiet > 0)
		log_warn("storage: \"%.80s\": %s (and %lu more such reads since the last report)", name, msg, quiet);
	else
		log_warn("storage: \"%.80s\": %s", name, msg);
	last = now;
	quiet = 0;
}

/* Open one stored value: 0 with *out; 1 when it was in clear (absent);
 * -1 with err. */
static int
open_one(const char *kind, const char *name, const void *v, size_t len, void **out, size_t *outlen,
    char *err, size_t errlen)
{
	char kid[9] = "";
	switch (sealbox_open(&keys, kind, name, v, len, out, outlen, kid)) {
	case SEALBOX_OK:
		return 0;
	case SEALBOX_CLEAR:
		complain(name, "a value in clear (written before encrypt_key_file was set) is taken as absent");
		return 1;
	case SEALBOX_UNKNOWN_KEY:
		snprintf(err, errlen, "a value sealed with key %s, which is not configured "
		    "(encrypt_key_file, encrypt_key_file_accept)", kid);
		break;
	default:
		snprintf(err, errlen, "a sealed value does not open (altered, or not written under this name)");
		break;
	}
	complain(name, err);
	return -1;
}

static void
got(void *arg, int status, const void *value, size_t len, const char *err)
{
	struct rd *r = arg;
	mcpd_value_cb *cb = (mcpd_value_cb *)r->cb;
	void *a = r->arg;
	void *plain = NULL;
	size_t plen = 0;
	char why[200];
	int rc = status == MCPD_OK ? open_one("v", r->name, value, len, &plain, &plen, why, sizeof(why)) : 0;
	rd_free(r);
	if (cb == NULL) {
		free(plain);
		return;
	}
	if (status != MCPD_OK)
		cb(a, status, value, len, err);
	else if (rc < 0)
		cb(a, MCPD_ERROR, NULL, 0, why);
	else if (rc > 0)
		cb(a, MCPD_NOT_FOUND, NULL, 0, NULL);
	else
		cb(a, MCPD_OK, plain, plen, NULL);
	free(plain);
}

static void
s_get(void *inst, const char *key, mcpd_value_cb *cb, void *arg)
{
	struct rd *r = rd_new(key, (void *)cb, arg);
	if (r == NULL) {
		if (cb != NULL)
			cb(arg, MCPD_ERROR, NULL, 0, "out of memory");
		return;
	}
	sreal->get(inst, key, got, r);
}

static void
s_set(void *inst, const char *key, const void *value, size_t len, uint64_t ttl_ms,
    unsigned flags, mcpd_done_cb *cb, void *arg)
{
	size_t n;
	char *sealed = sealbox_seal(&keys, "v", key, value, len, &n);
	if (sealed == NULL) {
		if (cb != NULL)
			cb(arg, MCPD_ERROR, "cannot seal the value");
		return;
	}
	sreal->set(inst, key, sealed, n, ttl_ms, flags, cb, arg);
	free(sealed);
}

static void
s_log_append(void *inst, const char *log, const void *entry, size_t len,
    uint64_t max_entries, uint64_t ttl_ms, mcpd_int_cb *cb, void *arg)
{
	size_t n;
	char *sealed = sealbox_seal(&keys, "l", log, entry, len, &n);
	if (sealed == NULL) {
		if (cb != NULL)
			cb(arg, MCPD_ERROR, 0, "cannot seal the entry");
		return;
	}
	sreal->log_append(inst, log, sealed, n, max_entries, ttl_ms, cb, arg);
	free(sealed);
}

static void
ranged(void *arg, int status, const struct mcpd_log_entry *entries, size_t n, const char *err)
{
	struct rd *r = arg;
	mcpd_entries_cb *cb = (mcpd_entries_cb *)r->cb;
	void *a = r->arg;
	if (status != MCPD_OK || n == 0) {
		rd_free(r);
		if (cb != NULL)
			cb(a, status, entries, n, err);
		return;
	}
	struct mcpd_log_entry *open = calloc(n, sizeof(*open));
	size_t k = 0;
	char why[200] = "out of memory";
	int failed = open == NULL;
	/* Entries written in clear are left out, as absent. */
	for (size_t i = 0; i < n && !failed; i++) {
		void *p;
		size_t pl;
		int rc = open_one("l", r->name, entries[i].data, entries[i].len, &p, &pl, why, sizeof(why));
		if (rc < 0)
			failed = 1;
		else if (rc == 0) {
			open[k].seq = entries[i].seq;
			open[k].data = p;
			open[k++].len = pl;
		}
	}
	rd_free(r);
	if (cb != NULL) {
		if (failed)
			cb(a, MCPD_ERROR, NULL, 0, why);
		else
			cb(a, MCPD_OK, open, k, NULL);
	}
	for (size_t i = 0; i < k; i++)
		free((void *)open[i].data);
	free(open);
}

static void
s_log_range(void *inst, const char *log, uint64_t after, size_t max, mcpd_entries_cb *cb, void *arg)
{
	struct rd *r = rd_new(log, (void *)cb, arg);
	if (r == NULL) {
		if (cb != NULL)
			cb(arg, MCPD_ERROR, NULL, 0, "out of memory");
		return;
	}
	sreal->log_range(inst, log, after, max, ranged, r);
}

void
storage_seal_backends(struct backends *b, const struct sigkeys *k)
{
	if (b->storage == NULL || k->n < 1)
		return;
	if (sreal == NULL) {
		sreal = b->storage;
		sops = *sreal;
		sops.get = s_get;
		sops.set = s_set;
		sops.log_append = s_log_append;
		sops.log_range = s_log_range;
		keys = *k;
	}
	b->storage = &sops;
}
