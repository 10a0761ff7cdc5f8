/* Signature Version 4: the canonical request, the string to sign, the
 * derived key and the signature, as AWS's documentation describes them. */
#include "aws_sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct buf {
	char *s;
	size_t len, cap;
	int failed;
};

static void
put(struct buf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->s, cap);
		if (p == NULL) {
			b->failed = 1;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void
puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

static void
hex(const unsigned char *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = '\0';
}

void
aws_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char d[SHA256_DIGEST_LENGTH];
	SHA256(data, len, d);
	hex(d, sizeof(d), out);
}

void
aws_amz_date(time_t when, char out[17])
{
	struct tm tm;
	gmtime_r(&when, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static int
unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '-' || c == '.' || c == '_' || c == '~';
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* s[0..n) percent-decoded then encoded as SigV4 wants: every byte but the
 * unreserved ones as %XX (upper case). */
static void
put_encoded(struct buf *b, const char *s, size_t n)
{
	static const char digits[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			c = (unsigned char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		}
		if (unreserved(c)) {
			char ch = (char)c;
			put(b, &ch, 1);
		} else {
			char e[3] = { '%', digits[c >> 4], digits[c & 15] };
			put(b, e, 3);
		}
	}
}

struct param {
	char *enc;                  /* name=value, both encoded */
	size_t name_len;            /* of the encoded name */
};

static int
param_cmp(const void *a, const void *b)
{
	const struct param *x = a, *y = b;
	size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int c = memcmp(x->enc, y->enc, n);
	if (c != 0)
		return c;
	if (x->name_len != y->name_len)
		return x->name_len < y->name_len ? -1 : 1;
	return strcmp(x->enc + x->name_len, y->enc + y->name_len);
}

/* The query's parameters, encoded, sorted by name then value. */
static void
put_query(struct buf *b, const char *q)
{
	if (q == NULL || *q == '\0')
		return;
	size_t n = 1;
	for (const char *p = q; *p; p++)
		n += *p == '&';
	struct param *ps = calloc(n, sizeof(*ps));
	if (ps == NULL) {
		b->failed = 1;
		return;
	}
	size_t k = 0;
	for (const char *p = q; !b->failed;) {
		const char *end = strchr(p, '&');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len > 0) {
			const char *eq = memchr(p, '=', len);
			size_t nl = eq ? (size_t)(eq - p) : len;
			struct buf e = { 0 };
			put_encoded(&e, p, nl);
			size_t enl = e.len;
			put(&e, "=", 1);
			if (eq != NULL)
				put_encoded(&e, eq + 1, len - nl - 1);
			if (e.failed) {
				free(e.s);
				b->failed = 1;
				break;
			}
			ps[k].enc = e.s;
			ps[k].name_len = enl;
			k++;
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	qsort(ps, k, sizeof(*ps), param_cmp);
	for (size_t i = 0; i < k; i++) {
		if (i > 0)
			put(b, "&", 1);
		puts_(b, ps[i].enc);
		free(ps[i].enc);
	}
	free(ps);
}

struct hdr {
	char *name;                 /* lower case */
	const char *value;
	size_t order;
};

static int
hdr_cmp(const void *a, const void *b)
{
	const struct hdr *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c != 0)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* A header value trimmed, with runs of spaces made one. */
static void
put_value(struct buf *b, const char *v)
{
	while (*v == ' ' || *v == '\t')
		v++;
	size_t n = strlen(v);
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	int space = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] == ' ' || v[i] == '\t') {
			space = 1;
			continue;
		}
		if (space)
			put(b, " ", 1);
		space = 0;
		put(b, v + i, 1);
	}
}

/* The canonical request into b, and the signed headers' list into sh. */
static int
canonical(const struct aws_sign *s, struct buf *b, struct buf *sh)
{
	struct hdr *hs = calloc(s->nheaders ? s->nheaders : 1, sizeof(*hs));
	if (hs == NULL)
		return -1;
	int rc = -1;
	size_t n = 0;
	for (; n < s->nheaders; n++) {
		const char *name = s->headers[n].name;
		if (name == NULL || *name == '\0' || (hs[n].name = strdup(name)) == NULL)
			goto done;
		for (char *p = hs[n].name; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		hs[n].value = s->headers[n].value ? s->headers[n].value : "";
		hs[n].order = n;
	}
	qsort(hs, n, sizeof(*hs), hdr_cmp);
	puts_(b, s->method);
	put(b, "\n", 1);
	puts_(b, s->path && *s->path ? s->path : "/");
	put(b, "\n", 1);
	put_query(b, s->query);
	put(b, "\n", 1);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && strcmp(hs[i].name, hs[i - 1].name) == 0) {
			put(b, ",", 1);
		} else {
			if (i > 0) {
				put(b, "\n", 1);
				put(sh, ";", 1);
			}
			puts_(b, hs[i].name);
			put(b, ":", 1);
			puts_(sh, hs[i].name);
		}
		put_value(b, hs[i].value);
	}
	put(b, "\n\n", n > 0 ? 2 : 1);
	puts_(b, sh->s ? sh->s : "");
	put(b, "\n", 1);
	char ph[65];
	aws_sha256_hex(s->payload ? s->payload : "", s->payload ? s->payload_len : 0, ph);
	puts_(b, ph);
	rc = b->failed || sh->failed ? -1 : 0;
done:
	for (size_t i = 0; i < n; i++)
		free(hs[i].name);
	free(hs);
	return rc;
}

char *
aws_sigv4_canonical_request(const struct aws_sign *s)
{
	struct buf b = { 0 }, sh = { 0 };
	int rc = canonical(s, &b, &sh);
	free(sh.s);
	if (rc < 0) {
		free(b.s);
		return NULL;
	}
	return b.s;
}

static int
hmac(const void *key, size_t keylen, const char *data, unsigned char out[32])
{
	unsigned int n = 32;
	return HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)data, strlen(data), out, &n) ? 0 : -1;
}

int
aws_sigv4_authorization(const struct aws_sign *s, char *out, size_t outlen)
{
	struct buf b = { 0 }, sh = { 0 }, sts = { 0 };
	char amz[17], date[9], scope[256], creq_hash[65], sig[65];
	unsigned char k[32], k2[32];
	int rc = -1;
	if (canonical(s, &b, &sh) < 0)
		goto done;
	aws_amz_date(s->when, amz);
	memcpy(date, amz, 8);
	date[8] = '\0';
	if ((size_t)snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", date, s->region, s->service) >=
	    sizeof(scope))
		goto done;
	aws_sha256_hex(b.s, b.len, creq_hash);
	puts_(&sts, "AWS4-HMAC-SHA256\n");
	puts_(&sts, amz);
	put(&sts, "\n", 1);
	puts_(&sts, scope);
	put(&sts, "\n", 1);
	puts_(&sts, creq_hash);
	if (sts.failed)
		goto done;
	/* kSecret = "AWS4" + secret; then date, region, service, "aws4_request". */
	size_t sl = strlen(s->secret_key);
	char *ksecret = malloc(sl + 5);
	if (ksecret == NULL)
		goto done;
	memcpy(ksecret, "AWS4", 4);
	memcpy(ksecret + 4, s->secret_key, sl + 1);
	int ok = hmac(ksecret, sl + 4, date, k) == 0 && hmac(k, 32, s->region, k2) == 0 &&
	    hmac(k2, 32, s->service, k) == 0 && hmac(k, 32, "aws4_request", k2) == 0 &&
	    hmac(k2, 32, sts.s, k) == 0;
	OPENSSL_cleanse(ksecret, sl + 4);
	free(ksecret);
	if (!ok)
		goto done;
	hex(k, 32, sig);
	if ((size_t)snprintf(out, outlen, "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
	    s->access_key, scope, sh.s ? sh.s : "", sig) < outlen)
		rc = 0;
done:
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(k2, sizeof(k2));
	free(b.s);
	free(sh.s);
	free(sts.s);
	return rc;
}
