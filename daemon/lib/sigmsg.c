#include "sigmsg.h"
#include "util.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "mcpd-sig1"
#define MACLEN 32

static void
hex(const unsigned char *in, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[in[i] >> 4];
		out[2 * i + 1] = d[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int
unhex(const char *in, size_t n, unsigned char *out)
{
	for (size_t i = 0; i < n; i++) {
		int a = hex_digit((unsigned char)in[2 * i]), b = hex_digit((unsigned char)in[2 * i + 1]);
		if (a < 0 || b < 0)
			return -1;
		out[i] = (unsigned char)(a << 4 | b);
	}
	return 0;
}

/* HMAC-SHA256 over the fields, each but the body ended by a NUL. */
static int
mac_of(const unsigned char key[32], const char *kid, const char *ts, const char *nonce,
    const char *channel, const void *body, size_t len, unsigned char out[MACLEN])
{
	static EVP_MAC *mac;
	if (mac == NULL && (mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
		return -1;
	EVP_MAC_CTX *c = EVP_MAC_CTX_new(mac);
	if (c == NULL)
		return -1;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	size_t outl = 0;
	int ok = EVP_MAC_init(c, key, 32, params) == 1 &&
	    EVP_MAC_update(c, (const unsigned char *)MAGIC, sizeof(MAGIC)) == 1 &&
	    EVP_MAC_update(c, (const unsigned char *)kid, strlen(kid) + 1) == 1 &&
	    EVP_MAC_update(c, (const unsigned char *)ts, strlen(ts) + 1) == 1 &&
	    EVP_MAC_update(c, (const unsigned char *)nonce, strlen(nonce) + 1) == 1 &&
	    EVP_MAC_update(c, (const unsigned char *)channel, strlen(channel) + 1) == 1 &&
	    EVP_MAC_update(c, body, len) == 1 && EVP_MAC_final(c, out, &outl, MACLEN) == 1 &&
	    outl == MACLEN;
	EVP_MAC_CTX_free(c);
	return ok ? 0 : -1;
}

char *
sigmsg_sign(const struct sigkeys *k, const char *channel, const void *body, size_t len,
    uint64_t now_ms, size_t *outlen)
{
	unsigned char nonce[SIGMSG_NONCE], mac[MACLEN];
	char ts[24], nhex[2 * SIGMSG_NONCE + 1], mhex[2 * MACLEN + 1];
	if (k->n < 1 || random_bytes(nonce, sizeof(nonce)) < 0)
		return NULL;
	snprintf(ts, sizeof(ts), "%llu", (unsigned long long)now_ms);
	hex(nonce, sizeof(nonce), nhex);
	if (mac_of(k->key[0], k->id[0], ts, nhex, channel, body, len, mac) < 0)
		return NULL;
	hex(mac, sizeof(mac), mhex);
	char head[160];
	int hl = snprintf(head, sizeof(head), MAGIC " %s %s %s %s\n", k->id[0], ts, nhex, mhex);
	if (hl < 0 || (size_t)hl >= sizeof(head) || len > SIZE_MAX - (size_t)hl)
		return NULL;
	char *out = malloc((size_t)hl + len + 1);
	if (out == NULL)
		return NULL;
	memcpy(out, head, (size_t)hl);
	if (len > 0)
		memcpy(out + hl, body, len);
	out[(size_t)hl + len] = '\0';
	*outlen = (size_t)hl + len;
	return out;
}

enum sigmsg_verdict
sigmsg_verify(const struct sigkeys *k, const char *channel, const void *msg, size_t len,
    uint64_t now_ms, uint64_t window_ms, const void **body, size_t *bodylen,
    unsigned char nonce[SIGMSG_NONCE], uint64_t *ts_ms)
{
	const char *m = msg;
	const char *nl = memchr(m, '\n', len < 200 ? len : 200);
	if (len < sizeof(MAGIC) || memcmp(m, MAGIC " ", sizeof(MAGIC)) != 0 || nl == NULL)
		return SIGMSG_UNSIGNED;
	/* The header, split on its spaces: id, time, nonce, mac. */
	char head[200];
	size_t hl = (size_t)(nl - m) - sizeof(MAGIC);
	memcpy(head, m + sizeof(MAGIC), hl);
	head[hl] = '\0';
	char *f[4], *save = NULL, *p = head;
	for (int i = 0; i < 4; i++, p = NULL)
		if ((f[i] = strtok_r(p, " ", &save)) == NULL)
			return SIGMSG_FORGED;
	if (strtok_r(NULL, " ", &save) != NULL || strlen(f[0]) != 8 || strlen(f[2]) != 2 * SIGMSG_NONCE ||
	    strlen(f[3]) != 2 * MACLEN)
		return SIGMSG_FORGED;
	uint64_t ts;
	unsigned char given[MACLEN], want[MACLEN];
	if (parse_u64(f[1], &ts) < 0 || unhex(f[2], SIGMSG_NONCE, nonce) < 0 ||
	    unhex(f[3], MACLEN, given) < 0)
		return SIGMSG_FORGED;
	const void *b = nl + 1;
	size_t bl = len - (size_t)(nl + 1 - m);
	int ok = 0;
	for (int i = 0; i < k->n && !ok; i++) {
		if (strcmp(k->id[i], f[0]) != 0)
			continue;
		ok = mac_of(k->key[i], f[0], f[1], f[2], channel, b, bl, want) == 0 &&
		    CRYPTO_memcmp(want, given, MACLEN) == 0;
	}
	if (!ok)
		return SIGMSG_FORGED;
	/* Checked after the MAC: a stale verdict is only for genuine ones. */
	if (ts + window_ms < now_ms || ts > now_ms + window_ms)
		return SIGMSG_STALE;
	*body = b;
	*bodylen = bl;
	*ts_ms = ts;
	return SIGMSG_OK;
}

/* ---- replay cache: a ring in arrival order, indexed by a hash ---- */

struct seen {
	unsigned char nonce[SIGMSG_NONCE];
	uint64_t sub;
	uint64_t ts;
	uint32_t next;                  /* in its bucket's chain; NONE ends it */
};

#define NONE UINT32_MAX

struct replay {
	struct seen *ring;
	uint32_t *bucket;
	size_t cap, nbuckets;           /* nbuckets: a power of two */
	size_t head, count;             /* oldest entry, entries */
	uint64_t floor;                 /* the newest time let go while still in the window */
};

struct replay *
replay_new(size_t cap)
{
	if (cap == 0 || cap > NONE / 2)
		return NULL;
	struct replay *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->cap = cap;
	for (r->nbuckets = 1; r->nbuckets < cap; r->nbuckets <<= 1)
		;
	r->ring = calloc(cap, sizeof(*r->ring));
	r->bucket = malloc(r->nbuckets * sizeof(*r->bucket));
	if (r->ring == NULL || r->bucket == NULL) {
		replay_free(r);
		return NULL;
	}
	memset(r->bucket, 0xff, r->nbuckets * sizeof(*r->bucket));
	return r;
}

void
replay_free(struct replay *r)
{
	if (r == NULL)
		return;
	free(r->ring);
	free(r->bucket);
	free(r);
}

static size_t
slot_of(const struct replay *r, const unsigned char nonce[SIGMSG_NONCE], uint64_t sub)
{
	/* The nonce is random (or chosen by a forger who had the key):
	 * mixing in the subscriber is enough. */
	uint64_t h;
	memcpy(&h, nonce, sizeof(h));
	h ^= sub * 0x9e3779b97f4a7c15ull;
	h ^= h >> 29;
	return (size_t)(h & (r->nbuckets - 1));
}

static void
drop_oldest(struct replay *r, uint64_t cutoff)
{
	struct seen *e = &r->ring[r->head];
	uint32_t idx = (uint32_t)r->head, *pp = &r->bucket[slot_of(r, e->nonce, e->sub)];
	while (*pp != NONE && *pp != idx)
		pp = &r->ring[*pp].next;
	if (*pp == idx)
		*pp = e->next;
	if (e->ts >= cutoff && e->ts > r->floor)
		r->floor = e->ts;
	r->head = (r->head + 1) % r->cap;
	r->count--;
}

int
replay_check(struct replay *r, const unsigned char nonce[SIGMSG_NONCE], uint64_t subscriber,
    uint64_t ts_ms, uint64_t now_ms, uint64_t window_ms)
{
	uint64_t cutoff = now_ms > window_ms ? now_ms - window_ms : 0;
	while (r->count > 0 && r->ring[r->head].ts < cutoff)
		drop_oldest(r, cutoff);
	if (r->floor != 0 && ts_ms <= r->floor)
		return -1;
	size_t b = slot_of(r, nonce, subscriber);
	for (uint32_t i = r->bucket[b]; i != NONE; i = r->ring[i].next)
		if (r->ring[i].sub == subscriber && memcmp(r->ring[i].nonce, nonce, SIGMSG_NONCE) == 0)
			return -1;
	if (r->count == r->cap)
		drop_oldest(r, cutoff);
	/* drop_oldest may have raised the floor past this one. */
	if (r->floor != 0 && ts_ms <= r->floor)
		return -1;
	size_t at = (r->head + r->count) % r->cap;
	struct seen *e = &r->ring[at];
	memcpy(e->nonce, nonce, SIGMSG_NONCE);
	e->sub = subscriber;
	e->ts = ts_ms;
	e->next = r->bucket[b];
	r->bucket[b] = (uint32_t)at;
	r->count++;
	return 0;
}
