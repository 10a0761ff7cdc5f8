/* JWKS to OpenSSL keys, JWS signatures and JWT claims: see jwt.h. */
#include "jwt.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HEADER 4096         /* decoded bytes */
#define MAX_PAYLOAD 12288
#define MAX_SIGNATURE 1024      /* RSA up to 8192 bits */
#define MAX_SCOPES 8192         /* bytes of the scopes of one token */
#define MIN_RSA_BITS 2048
#define MAX_RSA_BITS 8192

enum kty { KTY_RSA, KTY_EC256, KTY_EC384, KTY_ED25519 };

struct jwt_key {
	char *kid;                  /* NULL: the JWK has none */
	enum kty kty;
	int alg;                    /* the JWK's own alg, or -1 */
	EVP_PKEY *pkey;
};

struct jwt_keyset {
	size_t n;
	struct jwt_key keys[];
};

static const struct {
	const char *name;
	enum kty kty;
	const char *md;             /* NULL: EdDSA hashes itself */
	int pss;
} algs[JWT_NALGS] = {
	[JWT_RS256] = { "RS256", KTY_RSA, "SHA256", 0 },
	[JWT_RS384] = { "RS384", KTY_RSA, "SHA384", 0 },
	[JWT_RS512] = { "RS512", KTY_RSA, "SHA512", 0 },
	[JWT_PS256] = { "PS256", KTY_RSA, "SHA256", 1 },
	[JWT_PS384] = { "PS384", KTY_RSA, "SHA384", 1 },
	[JWT_PS512] = { "PS512", KTY_RSA, "SHA512", 1 },
	[JWT_ES256] = { "ES256", KTY_EC256, "SHA256", 0 },
	[JWT_ES384] = { "ES384", KTY_EC384, "SHA384", 0 },
	[JWT_EDDSA] = { "EdDSA", KTY_ED25519, NULL, 0 },
	[JWT_ED25519] = { "Ed25519", KTY_ED25519, NULL, 0 },
};

/* Names that are known but never accepted, and why. */
static const struct {
	const char *name, *why;
} refused[] = {
	{ "none", "unsigned tokens (alg none) are refused" },
	{ "HS256", "HS256 is a shared-secret algorithm: only public-key signatures are checked" },
	{ "HS384", "HS384 is a shared-secret algorithm: only public-key signatures are checked" },
	{ "HS512", "HS512 is a shared-secret algorithm: only public-key signatures are checked" },
	{ "ES512", "ES512 (P-521) is not supported" },
};

const char *
jwt_alg_name(enum jwt_alg a)
{
	return (unsigned)a < JWT_NALGS ? algs[a].name : "?";
}

int
jwt_alg_parse(const char *name, const char **why)
{
	*why = NULL;
	for (int i = 0; i < JWT_NALGS; i++)
		if (strcmp(name, algs[i].name) == 0)
			return i;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (strcasecmp(name, refused[i].name) == 0) {
			*why = refused[i].why;
			return -1;
		}
	return -1;
}

void
jwt_say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- encodings ---- */

static int
b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '-' ? 62 : c == '_' ? 63 : -1;
}

int
jwt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap, size_t *outlen, int allow_pad)
{
	size_t pads = 0;
	while (allow_pad && len > 0 && in[len - 1] == '=' && pads < 2)
		len--, pads++;
	if (len % 4 == 1 || (pads > 0 && (len + pads) % 4 != 0))
		return -1;
	size_t need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
	if (need > cap)
		return -1;
	unsigned acc = 0, bits = 0;
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		int v = b64val((unsigned char)in[i]);
		if (v < 0)
			return -1;
		acc = acc << 6 | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Another text for the same bytes would be a second valid token. */
	if (acc != 0)
		return -1;
	*outlen = o;
	return 0;
}

int
jwt_json_depth_ok(const char *s, size_t len, int max_depth)
{
	int depth = 0, in_string = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = 0;
		} else if (c == '"') {
			in_string = 1;
		} else if (c == '{' || c == '[') {
			if (++depth > max_depth)
				return 0;
		} else if (c == '}' || c == ']') {
			depth--;
		}
	}
	return 1;
}

/* A bounded JSON text into a tree; NULL if it is not JSON or too deep. */
static cJSON *
parse_json(const char *s, size_t len)
{
	if (!jwt_json_depth_ok(s, len, JWT_MAX_DEPTH))
		return NULL;
	return cJSON_ParseWithLength(s, len);
}

/* Two members of the same name: parsers disagree on which counts. */
static int
has_duplicate_names(const cJSON *o)
{
	for (const cJSON *a = o->child; a != NULL; a = a->next)
		for (const cJSON *b = a->next; b != NULL; b = b->next)
			if (a->string != NULL && b->string != NULL && strcmp(a->string, b->string) == 0)
				return 1;
	return 0;
}

static const char *
get_string(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- keys ---- */

/* A JWK member in base64url into a new buffer of at most cap bytes. */
static unsigned char *
jwk_bytes(const cJSON *jwk, const char *name, size_t cap, size_t *len)
{
	const char *s = get_string(jwk, name);
	if (s == NULL)
		return NULL;
	unsigned char *buf = malloc(cap ? cap : 1);
	if (buf == NULL || jwt_b64url_decode(s, strlen(s), buf, cap, len, 1) < 0 || *len == 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static EVP_PKEY *
pkey_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
	EVP_PKEY *pkey = NULL;
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

static EVP_PKEY *
rsa_key(const cJSON *jwk, const char **why)
{
	EVP_PKEY *pkey = NULL;
	BIGNUM *n = NULL, *e = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	size_t nl = 0, el = 0;
	unsigned char *nb = jwk_bytes(jwk, "n", MAX_RSA_BITS / 8 + 1, &nl);
	unsigned char *eb = jwk_bytes(jwk, "e", 8, &el);
	if (nb == NULL || eb == NULL) {
		*why = "an RSA key without valid n and e";
		goto fail;
	}
	n = BN_bin2bn(nb, (int)nl, NULL);
	e = BN_bin2bn(eb, (int)el, NULL);
	if (n == NULL || e == NULL || (bld = OSSL_PARAM_BLD_new()) == NULL) {
		*why = "out of memory";
		goto fail;
	}
	if (BN_num_bits(n) < MIN_RSA_BITS || BN_num_bits(n) > MAX_RSA_BITS) {
		*why = "an RSA key shorter than 2048 bits (or longer than 8192)";
		goto fail;
	}
	if (!BN_is_odd(e) || BN_is_one(e)) {
		*why = "an RSA key with an invalid exponent";
		goto fail;
	}
	if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
	    (pkey = pkey_from_params("RSA", bld)) == NULL)
		*why = "an RSA key that OpenSSL refuses";
fail:
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	free(nb);
	free(eb);
	return pkey;
}

static EVP_PKEY *
ec_key(const cJSON *jwk, enum kty kty, const char **why)
{
	EVP_PKEY *pkey = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	size_t coord = kty == KTY_EC256 ? 32 : 48, xl = 0, yl = 0;
	unsigned char point[1 + 2 * 48];
	unsigned char *x = jwk_bytes(jwk, "x", coord, &xl);
	unsigned char *y = jwk_bytes(jwk, "y", coord, &yl);
	if (x == NULL || y == NULL || xl != coord || yl != coord) {
		*why = "an EC key whose x and y do not fit its curve";
		goto fail;
	}
	point[0] = 0x04;        /* uncompressed */
	memcpy(point + 1, x, coord);
	memcpy(point + 1 + coord, y, coord);
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
	    kty == KTY_EC256 ? "prime256v1" : "secp384r1", 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * coord) ||
	    (pkey = pkey_from_params("EC", bld)) == NULL) {
		/* x and y have their length: OpenSSL checks the point. */
		*why = "an EC key whose point is not on its curve";
		goto fail;
	}
	/* The point must be on the curve (invalid-curve attacks). */
	EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (check == NULL || EVP_PKEY_public_check(check) != 1) {
		*why = "an EC key whose point is not on its curve";
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	EVP_PKEY_CTX_free(check);
fail:
	OSSL_PARAM_BLD_free(bld);
	free(x);
	free(y);
	return pkey;
}

static EVP_PKEY *
ed25519_key(const cJSON *jwk, const char **why)
{
	EVP_PKEY *pkey = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	size_t xl = 0;
	unsigned char *x = jwk_bytes(jwk, "x", 32, &xl);
	if (x == NULL || xl != 32) {
		*why = "an Ed25519 key whose x is not 32 bytes";
		goto fail;
	}
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, x, xl) ||
	    (pkey = pkey_from_params("ED25519", bld)) == NULL)
		*why = "an Ed25519 key that OpenSSL refuses";
fail:
	OSSL_PARAM_BLD_free(bld);
	free(x);
	return pkey;
}

/* One JWK into k; 0, or -1 and why it is skipped. */
static int
parse_jwk(const cJSON *jwk, struct jwt_key *k, const char **why)
{
	const char *kty = get_string(jwk, "kty");
	const char *crv = get_string(jwk, "crv");
	const char *use = get_string(jwk, "use");
	const char *kid = get_string(jwk, "kid");
	const char *alg = get_string(jwk, "alg");
	const cJSON *ops = cJSON_GetObjectItemCaseSensitive(jwk, "key_ops");
	if (!cJSON_IsObject(jwk) || kty == NULL) {
		*why = "a key without kty";
		return -1;
	}
	if (use != NULL && strcmp(use, "sig") != 0) {
		*why = "a key not for signatures (use)";
		return -1;
	}
	if (ops != NULL) {
		int verify = 0;
		const cJSON *op;
		cJSON_ArrayForEach(op, ops)
			verify |= cJSON_IsString(op) && strcmp(op->valuestring, "verify") == 0;
		if (!cJSON_IsArray(ops) || !verify) {
			*why = "a key not for verifying (key_ops)";
			return -1;
		}
	}
	if (kid != NULL && strlen(kid) > JWT_MAX_STRING) {
		*why = "a key with an overlong kid";
		return -1;
	}
	if (strcmp(kty, "RSA") == 0)
		k->kty = KTY_RSA;
	else if (strcmp(kty, "EC") == 0 && crv != NULL && strcmp(crv, "P-256") == 0)
		k->kty = KTY_EC256;
	else if (strcmp(kty, "EC") == 0 && crv != NULL && strcmp(crv, "P-384") == 0)
		k->kty = KTY_EC384;
	else if (strcmp(kty, "OKP") == 0 && crv != NULL && strcmp(crv, "Ed25519") == 0)
		k->kty = KTY_ED25519;
	else {
		*why = "a key of another type or curve";
		return -1;
	}
	k->alg = -1;
	if (alg != NULL) {
		const char *ignored;
		k->alg = jwt_alg_parse(alg, &ignored);
		if (k->alg < 0 || algs[k->alg].kty != k->kty) {
			*why = "a key whose alg is unknown or does not fit it";
			return -1;
		}
	}
	k->pkey = k->kty == KTY_RSA ? rsa_key(jwk, why) : k->kty == KTY_ED25519 ? ed25519_key(jwk, why) :
	    ec_key(jwk, k->kty, why);
	if (k->pkey == NULL)
		return -1;
	k->kid = kid != NULL ? strdup(kid) : NULL;
	if (kid != NULL && k->kid == NULL) {
		EVP_PKEY_free(k->pkey);
		*why = "out of memory";
		return -1;
	}
	return 0;
}

struct jwt_keyset *
jwt_keyset_parse(const char *json, size_t len, char *err, size_t errlen)
{
	struct jwt_keyset *ks = NULL;
	cJSON *doc = parse_json(json, len);
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(doc, "keys");
	if (doc == NULL || !cJSON_IsObject(doc)) {
		jwt_say(err, errlen, "the JWKS is not a JSON object (or nests deeper than %d)", JWT_MAX_DEPTH);
		goto done;
	}
	if (!cJSON_IsArray(keys)) {
		jwt_say(err, errlen, "the JWKS has no \"keys\" array");
		goto done;
	}
	int total = cJSON_GetArraySize(keys);
	size_t max = total < JWT_MAX_KEYS ? (size_t)total : JWT_MAX_KEYS;
	ks = calloc(1, sizeof(*ks) + max * sizeof(ks->keys[0]));
	if (ks == NULL) {
		jwt_say(err, errlen, "out of memory");
		goto done;
	}
	const char *skipped = NULL;
	const cJSON *jwk;
	cJSON_ArrayForEach(jwk, keys) {
		if (ks->n == max)
			break;
		const char *why = NULL;
		if (parse_jwk(jwk, &ks->keys[ks->n], &why) == 0)
			ks->n++;
		else if (skipped == NULL)
			skipped = why;
	}
	if (ks->n == 0) {
		jwt_say(err, errlen, "the JWKS has no key usable for signatures (%d key%s%s%s)", total,
		    total == 1 ? "" : "s", skipped ? "; first skipped: " : "", skipped ? skipped : "");
		jwt_keyset_free(ks);
		ks = NULL;
	}
done:
	cJSON_Delete(doc);
	return ks;
}

size_t
jwt_keyset_count(const struct jwt_keyset *ks)
{
	return ks ? ks->n : 0;
}

void
jwt_keyset_free(struct jwt_keyset *ks)
{
	if (ks == NULL)
		return;
	for (size_t i = 0; i < ks->n; i++) {
		free(ks->keys[i].kid);
		EVP_PKEY_free(ks->keys[i].pkey);
	}
	free(ks);
}

/* The key to check a token with: by kid, or the only key when the token
 * names none. */
static enum jwt_result
find_key(const struct jwt_keyset *ks, const char *kid, enum jwt_alg alg, const struct jwt_key **out,
    char *err, size_t errlen)
{
	int named = 0;
	for (size_t i = 0; i < ks->n; i++) {
		const struct jwt_key *k = &ks->keys[i];
		if (kid != NULL && (k->kid == NULL || strcmp(k->kid, kid) != 0))
			continue;
		if (kid == NULL && ks->n != 1)
			break;
		named = 1;
		if (algs[alg].kty == k->kty && (k->alg < 0 || k->alg == (int)alg)) {
			*out = k;
			return JWT_OK;
		}
	}
	if (named) {
		jwt_say(err, errlen, "algorithm %s does not match the issuer's key", algs[alg].name);
		return JWT_DENIED;
	}
	if (kid == NULL) {
		jwt_say(err, errlen, "the token names no key (kid) and the issuer has several");
		return JWT_DENIED;
	}
	jwt_say(err, errlen, "unknown signing key: the token's kid is not in the issuer's JWKS");
	return JWT_UNKNOWN_KEY;
}

/* JWS ECDSA signatures are r||s; OpenSSL wants DER. */
static unsigned char *
ecdsa_der(const unsigned char *sig, size_t len, size_t *derlen)
{
	unsigned char *der = NULL;
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, (int)(len / 2), NULL);
	BIGNUM *s = BN_bin2bn(sig + len / 2, (int)(len / 2), NULL);
	if (es == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s)) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(es);
		return NULL;
	}
	int n = i2d_ECDSA_SIG(es, &der);
	ECDSA_SIG_free(es);
	if (n <= 0)
		return NULL;
	*derlen = (size_t)n;
	return der;
}

static int
signature_ok(const struct jwt_key *k, enum jwt_alg alg, const char *input, size_t inlen,
    const unsigned char *sig, size_t siglen)
{
	int ok = 0;
	unsigned char *der = NULL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	if (md == NULL)
		return 0;
	switch (k->kty) {
	case KTY_RSA:
		if (siglen != (size_t)EVP_PKEY_get_size(k->pkey))
			goto done;
		break;
	case KTY_EC256:
	case KTY_EC384: {
		size_t want = k->kty == KTY_EC256 ? 64 : 96, derlen = 0;
		if (siglen != want || (der = ecdsa_der(sig, siglen, &derlen)) == NULL)
			goto done;
		sig = der;
		siglen = derlen;
		break;
	}
	case KTY_ED25519:
		if (siglen != 64)
			goto done;
		break;
	}
	if (EVP_DigestVerifyInit_ex(md, &pctx, algs[alg].md, NULL, NULL, k->pkey, NULL) != 1)
		goto done;
	if (algs[alg].pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0))
		goto done;
	ok = EVP_DigestVerify(md, sig, siglen, (const unsigned char *)input, inlen) == 1;
done:
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	return ok;
}

/* ---- claims ---- */

/* A NumericDate: an integer or not, within reason. */
static int
get_time(const cJSON *o, const char *name, int64_t *t)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (v == NULL)
		return 0;
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 || v->valuedouble > 1e13)
		return -1;
	*t = (int64_t)v->valuedouble;
	return 1;
}

static int
printable(const char *s, size_t max)
{
	size_t n = 0;
	for (; s[n] != '\0'; n++)
		if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f || n >= max)
			return 0;
	return n > 0;
}

static int
audience_ok(const struct jwt_policy *p, const cJSON *claims, char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(claims, p->audience_claim);
	if (v == NULL) {
		jwt_say(err, errlen, "the token has no audience (%s)", p->audience_claim);
		return 0;
	}
	int is_aud = strcmp(p->audience_claim, "aud") == 0;
	if (!cJSON_IsString(v) && !(is_aud && cJSON_IsArray(v))) {
		jwt_say(err, errlen, "the token's audience (%s) is not a string", p->audience_claim);
		return 0;
	}
	const cJSON *one = cJSON_IsString(v) ? v : v->child;
	for (; one != NULL; one = cJSON_IsArray(v) ? one->next : NULL)
		for (size_t i = 0; cJSON_IsString(one) && i < p->naudiences; i++)
			if (strcmp(one->valuestring, p->audiences[i]) == 0)
				return 1;
	jwt_say(err, errlen, "wrong audience: the token is not meant for this server (%s)", p->audience_claim);
	return 0;
}

/* A granted scope as mcpd compares them: printable ASCII, no quotes. */
static int
scope_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
			return 0;
	return n > 0;
}

struct buf {
	char *s;
	size_t len, cap;
};

static int
add_scope(struct buf *b, const char *s, size_t n)
{
	if (!scope_ok(s, n))
		return 0;       /* not a scope anybody could require */
	if (b->len + n + 2 > MAX_SCOPES)
		return -1;
	if (b->len + n + 2 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		while (cap < b->len + n + 2)
			cap *= 2;
		char *t = realloc(b->s, cap);
		if (t == NULL)
			return -1;
		b->s = t;
		b->cap = cap;
	}
	if (b->len > 0)
		b->s[b->len++] = ' ';
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
	return 0;
}

/* Every scope claim: "a b c" strings and ["a","b"] arrays alike. */
static int
collect_scopes(const struct jwt_policy *p, const cJSON *claims, struct buf *b)
{
	for (size_t i = 0; i < p->nscope_claims; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(claims, p->scope_claims[i]);
		const cJSON *item;
		if (cJSON_IsString(v)) {
			for (const char *s = v->valuestring; *s;) {
				size_t n = strcspn(s, " ");
				if (n > 0 && add_scope(b, s, n) < 0)
					return -1;
				s += n;
				while (*s == ' ')
					s++;
			}
		} else if (cJSON_IsArray(v)) {
			cJSON_ArrayForEach(item, v)
				if (cJSON_IsString(item) && add_scope(b, item->valuestring, strlen(item->valuestring)) < 0)
					return -1;
		}
	}
	if (b->s == NULL && (b->s = strdup("")) == NULL)
		return -1;
	return 0;
}

static int
has_scope(const char *scopes, const char *want)
{
	size_t wl = strlen(want);
	for (const char *s = scopes; *s;) {
		size_t n = strcspn(s, " ");
		if (n == wl && memcmp(s, want, n) == 0)
			return 1;
		s += n;
		while (*s == ' ')
			s++;
	}
	return 0;
}

static enum jwt_result
check_claims(const struct jwt_policy *p, const cJSON *c, int64_t now, struct jwt_principal *out,
    char *err, size_t errlen)
{
	const char *iss = get_string(c, "iss");
	if (iss == NULL || strcmp(iss, p->issuer) != 0) {
		jwt_say(err, errlen, iss ? "wrong issuer: the token was not issued by %s" : "the token names no issuer (iss)",
		    p->issuer);
		return JWT_DENIED;
	}
	int64_t exp = 0, nbf = 0;
	int has = get_time(c, "exp", &exp);
	if (has <= 0) {
		jwt_say(err, errlen, has < 0 ? "the token's expiry (exp) is not a time" : "the token has no expiry (exp)");
		return JWT_DENIED;
	}
	if (exp <= now - p->skew) {
		jwt_say(err, errlen, "the token expired");
		return JWT_DENIED;
	}
	if ((has = get_time(c, "nbf", &nbf)) < 0 || (has > 0 && nbf > now + p->skew)) {
		jwt_say(err, errlen, has < 0 ? "the token's nbf is not a time" : "the token is not valid yet (nbf)");
		return JWT_DENIED;
	}
	if (!audience_ok(p, c, err, errlen))
		return JWT_DENIED;
	for (size_t i = 0; i < p->nrequired_claims; i++) {
		const char *v = get_string(c, p->required_claims[i].name);
		if (v == NULL || strcmp(v, p->required_claims[i].value) != 0) {
			jwt_say(err, errlen, "the token's %s claim is not %s", p->required_claims[i].name,
			    p->required_claims[i].value);
			return JWT_DENIED;
		}
	}
	const char *user = NULL, *client = NULL;
	for (size_t i = 0; i < p->nuser_claims && user == NULL; i++)
		user = get_string(c, p->user_claims[i]);
	if (user == NULL || !printable(user, JWT_MAX_STRING)) {
		jwt_say(err, errlen, user ? "the token's user (%s) is empty, too long or not printable" :
		    "the token names no user (%s)", p->nuser_claims ? p->user_claims[0] : "sub");
		return JWT_DENIED;
	}
	for (size_t i = 0; i < p->nclient_claims && client == NULL; i++)
		client = get_string(c, p->client_claims[i]);
	if (client != NULL && !printable(client, JWT_MAX_STRING))
		client = NULL;
	struct buf scopes = { 0 };
	if (collect_scopes(p, c, &scopes) < 0) {
		free(scopes.s);
		jwt_say(err, errlen, "the token's scopes are too long");
		return JWT_DENIED;
	}
	for (size_t i = 0; i < p->nrequired_scopes; i++)
		if (!has_scope(scopes.s, p->required_scopes[i])) {
			free(scopes.s);
			jwt_say(err, errlen, "the token lacks the required scope %s", p->required_scopes[i]);
			return JWT_DENIED;
		}
	out->user = strdup(user);
	out->client_id = client ? strdup(client) : NULL;
	out->scopes = scopes.s;
	out->expires_at = exp;
	if (out->user == NULL || (client != NULL && out->client_id == NULL)) {
		jwt_principal_clear(out);
		jwt_say(err, errlen, "out of memory");
		return JWT_DENIED;
	}
	return JWT_OK;
}

void
jwt_principal_clear(struct jwt_principal *pr)
{
	free(pr->user);
	free(pr->client_id);
	free(pr->scopes);
	memset(pr, 0, sizeof(*pr));
}

/* ---- the token ---- */

/* A base64url part holding a JSON object. */
static cJSON *
decode_part(const char *s, size_t len, size_t cap)
{
	unsigned char *buf = malloc(cap);
	size_t n = 0;
	cJSON *o = NULL;
	if (buf != NULL && jwt_b64url_decode(s, len, buf, cap, &n, 0) == 0) {
		o = parse_json((const char *)buf, n);
		if (o != NULL && (!cJSON_IsObject(o) || has_duplicate_names(o))) {
			cJSON_Delete(o);
			o = NULL;
		}
	}
	free(buf);
	return o;
}

static int
typ_ok(const char *typ)
{
	if (strncasecmp(typ, "application/", 12) == 0)
		typ += 12;
	return strcasecmp(typ, "JWT") == 0 || strcasecmp(typ, "at+jwt") == 0;
}

enum jwt_result
jwt_verify(const struct jwt_policy *p, const struct jwt_keyset *ks, const char *token, int64_t now,
    struct jwt_principal *out, char *err, size_t errlen)
{
	enum jwt_result rc = JWT_DENIED;
	cJSON *header = NULL, *claims = NULL;
	unsigned char *sig = NULL;
	memset(out, 0, sizeof(*out));
	size_t len = strnlen(token, JWT_MAX_TOKEN + 1);
	if (len > JWT_MAX_TOKEN) {
		jwt_say(err, errlen, "the token is too long");
		return JWT_DENIED;
	}
	const char *dot1 = memchr(token, '.', len);
	const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
	if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL) {
		jwt_say(err, errlen, dot2 ? "encrypted tokens (JWE) are not supported" :
		    "not a JWT (three base64url parts joined by dots)");
		return JWT_DENIED;
	}
	header = decode_part(token, (size_t)(dot1 - token), MAX_HEADER);
	if (header == NULL) {
		jwt_say(err, errlen, "the token's header is not a base64url JSON object");
		goto done;
	}
	const char *algname = get_string(header, "alg");
	if (algname == NULL) {
		jwt_say(err, errlen, "the token's header names no algorithm (alg)");
		goto done;
	}
	const char *why;
	int alg = jwt_alg_parse(algname, &why);
	if (alg < 0 || !(p->algs & JWT_ALG_BIT(alg))) {
		if (why != NULL)
			jwt_say(err, errlen, "%s", why);
		else if (alg >= 0)
			jwt_say(err, errlen, "algorithm %s is not allowed", algs[alg].name);
		else
			jwt_say(err, errlen, "the token's algorithm is not supported");
		goto done;
	}
	const cJSON *typ = cJSON_GetObjectItemCaseSensitive(header, "typ");
	if (typ != NULL && (!cJSON_IsString(typ) || !typ_ok(typ->valuestring))) {
		jwt_say(err, errlen, "the token's type (typ) is not JWT or at+jwt");
		goto done;
	}
	if (cJSON_GetObjectItemCaseSensitive(header, "crit") != NULL) {
		jwt_say(err, errlen, "the token has critical header parameters (crit), none of which are understood");
		goto done;
	}
	const cJSON *kid = cJSON_GetObjectItemCaseSensitive(header, "kid");
	if (kid != NULL && !cJSON_IsString(kid)) {
		jwt_say(err, errlen, "the token's kid is not a string");
		goto done;
	}
	const struct jwt_key *key = NULL;
	if ((rc = find_key(ks, kid ? kid->valuestring : NULL, (enum jwt_alg)alg, &key, err, errlen)) != JWT_OK)
		goto done;
	rc = JWT_DENIED;
	size_t siglen = 0;
	const char *sigtext = dot2 + 1;
	if ((sig = malloc(MAX_SIGNATURE)) == NULL ||
	    jwt_b64url_decode(sigtext, len - (size_t)(sigtext - token), sig, MAX_SIGNATURE, &siglen, 0) < 0 ||
	    !signature_ok(key, (enum jwt_alg)alg, token, (size_t)(dot2 - token), sig, siglen)) {
		jwt_say(err, errlen, "bad signature");
		goto done;
	}
	/* Only now is the payload worth reading. */
	claims = decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1), MAX_PAYLOAD);
	if (claims == NULL) {
		jwt_say(err, errlen, "the token's claims are not a base64url JSON object");
		goto done;
	}
	rc = check_claims(p, claims, now, out, err, errlen);
done:
	free(sig);
	cJSON_Delete(header);
	cJSON_Delete(claims);
	return rc;
}

/* ---- discovery ---- */

char *
jwt_discovery_jwks_uri(const char *json, size_t len, const char *issuer, char *err, size_t errlen)
{
	char *uri = NULL;
	cJSON *doc = parse_json(json, len);
	if (!cJSON_IsObject(doc)) {
		jwt_say(err, errlen, "the discovery document is not a JSON object");
		goto done;
	}
	const char *iss = get_string(doc, "issuer");
	const char *jwks = get_string(doc, "jwks_uri");
	if (iss == NULL || strcmp(iss, issuer) != 0) {
		jwt_say(err, errlen, "the discovery document names another issuer (%.200s)", iss ? iss : "none");
		goto done;
	}
	if (jwks == NULL || jwks[0] == '\0' || strlen(jwks) > 2048) {
		jwt_say(err, errlen, "the discovery document has no jwks_uri");
		goto done;
	}
	if ((uri = strdup(jwks)) == NULL)
		jwt_say(err, errlen, "out of memory");
done:
	cJSON_Delete(doc);
	return uri;
}
