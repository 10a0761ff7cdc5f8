/* The jwt auth plugin's checks (plugins/jwt/jwt.c, linked in as it is):
 * base64url, JSON depth, JWKs to keys, signatures of every algorithm,
 * claims. Keys and tokens are made here with OpenSSL's signing side. */
#include <check.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../plugins/jwt/jwt.h"
#include "suites.h"

static EVP_PKEY *rsa, *rsa_short, *ec256, *ec384, *ed;
static const int64_t NOW = 1800000000;
static char err[600];

static void
make_keys(void)
{
	rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	rsa_short = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	ec256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ec384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
}

static void
free_keys(void)
{
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(rsa_short);
	EVP_PKEY_free(ec256);
	EVP_PKEY_free(ec384);
	EVP_PKEY_free(ed);
}

/* ---- making tokens (the signing side, which the plugin has not) ---- */

static char *
b64u(const unsigned char *d, size_t n)
{
	static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char *out = malloc(n * 4 / 3 + 4), *o = out;
	size_t i = 0;
	for (; i + 2 < n; i += 3) {
		*o++ = A[d[i] >> 2];
		*o++ = A[(d[i] & 3) << 4 | d[i + 1] >> 4];
		*o++ = A[(d[i + 1] & 15) << 2 | d[i + 2] >> 6];
		*o++ = A[d[i + 2] & 63];
	}
	if (n - i == 1) {
		*o++ = A[d[i] >> 2];
		*o++ = A[(d[i] & 3) << 4];
	} else if (n - i == 2) {
		*o++ = A[d[i] >> 2];
		*o++ = A[(d[i] & 3) << 4 | d[i + 1] >> 4];
		*o++ = A[(d[i + 1] & 15) << 2];
	}
	*o = '\0';
	return out;
}

static char *
b64u_str(const char *s)
{
	return b64u((const unsigned char *)s, strlen(s));
}

static char *
b64u_bn(EVP_PKEY *k, const char *param)
{
	BIGNUM *bn = NULL;
	ck_assert(EVP_PKEY_get_bn_param(k, param, &bn));
	unsigned char buf[1024];
	int n = BN_bn2bin(bn, buf);
	BN_free(bn);
	return b64u(buf, (size_t)n);
}

/* The public JWK of k; extra is more members ("" or ",\"use\":\"sig\""). */
static char *
jwk(EVP_PKEY *k, const char *kid, const char *extra)
{
	char *out = malloc(4096), *a = NULL, *b = NULL;
	char kidm[128] = "";
	if (kid != NULL)
		snprintf(kidm, sizeof(kidm), ",\"kid\":\"%s\"", kid);
	if (EVP_PKEY_is_a(k, "RSA")) {
		a = b64u_bn(k, OSSL_PKEY_PARAM_RSA_N);
		b = b64u_bn(k, OSSL_PKEY_PARAM_RSA_E);
		snprintf(out, 4096, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"%s%s}", a, b, kidm, extra);
	} else if (EVP_PKEY_is_a(k, "EC")) {
		unsigned char pt[200];
		size_t n = 0;
		ck_assert(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, sizeof(pt), &n));
		size_t c = (n - 1) / 2;
		a = b64u(pt + 1, c);
		b = b64u(pt + 1 + c, c);
		snprintf(out, 4096, "{\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"%s%s}",
		    c == 32 ? "P-256" : "P-384", a, b, kidm, extra);
	} else {
		unsigned char raw[32];
		size_t n = sizeof(raw);
		ck_assert(EVP_PKEY_get_raw_public_key(k, raw, &n));
		a = b64u(raw, n);
		snprintf(out, 4096, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"%s%s}", a, kidm, extra);
	}
	free(a);
	free(b);
	return out;
}

static struct jwt_keyset *
keyset(const char *jwks)
{
	struct jwt_keyset *ks = jwt_keyset_parse(jwks, strlen(jwks), err, sizeof(err));
	ck_assert_msg(ks != NULL, "%s", err);
	return ks;
}

/* header.payload signed with k as alg says; salt < 0: the digest length. */
static char *
sign_salt(const char *header, const char *payload, EVP_PKEY *k, const char *alg, int salt)
{
	char *h = b64u_str(header), *p = b64u_str(payload);
	size_t inlen = strlen(h) + 1 + strlen(p);
	char *input = malloc(inlen + 1);
	snprintf(input, inlen + 1, "%s.%s", h, p);
	const char *md = strstr(alg, "256") ? "SHA256" : strstr(alg, "384") ? "SHA384" :
	    strstr(alg, "512") ? "SHA512" : NULL;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	ck_assert(EVP_DigestSignInit_ex(ctx, &pctx, md, NULL, NULL, k, NULL) == 1);
	if (alg[0] == 'P') {
		EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
		EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt < 0 ? RSA_PSS_SALTLEN_DIGEST : salt);
	}
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	ck_assert(EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)input, inlen) == 1);
	EVP_MD_CTX_free(ctx);
	if (alg[0] == 'E' && alg[1] == 'S') {
		/* DER to r||s */
		const unsigned char *d = sig;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &d, (long)siglen);
		size_t c = strstr(alg, "256") ? 32 : 48;
		BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, (int)c);
		BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + c, (int)c);
		siglen = 2 * c;
		ECDSA_SIG_free(es);
	}
	char *s = b64u(sig, siglen);
	char *token = malloc(inlen + strlen(s) + 2);
	sprintf(token, "%s.%s", input, s);
	free(h);
	free(p);
	free(input);
	free(s);
	return token;
}

static char *
sign(const char *header, const char *payload, EVP_PKEY *k, const char *alg)
{
	return sign_salt(header, payload, k, alg, -1);
}

/* A token of alg with kid and the given claims. */
static char *
token(EVP_PKEY *k, const char *alg, const char *kid, const char *claims)
{
	char header[256];
	snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"at+jwt\"%s%s%s}", alg,
	    kid ? ",\"kid\":\"" : "", kid ? kid : "", kid ? "\"" : "");
	return sign(header, claims, k, alg);
}

/* Claims good for the policy below, with more members in extra. */
static char *
claims(const char *extra)
{
	static char buf[2048];
	snprintf(buf, sizeof(buf), "{\"iss\":\"https://id.example.com\",\"aud\":\"https://mcp.example.com/mcp\","
	    "\"sub\":\"alice\",\"exp\":%lld,\"iat\":%lld%s}", (long long)NOW + 300, (long long)NOW, extra);
	return buf;
}

static const char *const AUD[] = { "https://mcp.example.com/mcp" };
static const char *const USER[] = { "sub" };
static const char *const CLIENT[] = { "client_id", "azp" };
static const char *const SCOPES[] = { "scope", "scp" };

static struct jwt_policy
policy(void)
{
	struct jwt_policy p = {
		.issuer = "https://id.example.com", .audiences = AUD, .naudiences = 1, .audience_claim = "aud",
		.algs = JWT_DEFAULT_ALGS | JWT_ALG_BIT(JWT_ED25519), .skew = 60, .user_claims = USER,
		.nuser_claims = 1, .client_claims = CLIENT, .nclient_claims = 2, .scope_claims = SCOPES,
		.nscope_claims = 2,
	};
	return p;
}

/* The full key set the tests check against. */
static struct jwt_keyset *
all_keys(void)
{
	char *a = jwk(rsa, "rsa", ""), *b = jwk(ec256, "ec256", ",\"use\":\"sig\""),
	    *c = jwk(ec384, "ec384", ",\"alg\":\"ES384\""), *d = jwk(ed, "ed", ",\"key_ops\":[\"verify\"]");
	char set[8192];
	snprintf(set, sizeof(set), "{\"keys\":[%s,%s,%s,%s]}", a, b, c, d);
	free(a);
	free(b);
	free(c);
	free(d);
	return keyset(set);
}

static enum jwt_result
verify(const struct jwt_policy *p, const struct jwt_keyset *ks, char *tok, struct jwt_principal *pr)
{
	enum jwt_result rc = jwt_verify(p, ks, tok, NOW, pr, err, sizeof(err));
	free(tok);
	return rc;
}

/* Refused, with a message that contains want. */
#define REFUSED(p, ks, tok, want) do { \
	struct jwt_principal pr_; \
	ck_assert_int_eq(verify(p, ks, tok, &pr_), JWT_DENIED); \
	ck_assert_msg(strstr(err, want) != NULL, "\"%s\" does not say \"%s\"", err, want); \
} while (0)

/* ---- tests ---- */

START_TEST(base64url)
{
	unsigned char out[16];
	size_t n;
	static const struct { const char *in, *out; } ok[] = {
		{ "", "" }, { "Zg", "f" }, { "Zm8", "fo" }, { "Zm9v", "foo" }, { "Zm9vYg", "foob" },
		{ "_-8", "\xff\xef" },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ck_assert_int_eq(jwt_b64url_decode(ok[i].in, strlen(ok[i].in), out, sizeof(out), &n, 0), 0);
		ck_assert_uint_eq(n, strlen(ok[i].out));
		ck_assert(memcmp(out, ok[i].out, n) == 0);
	}
	ck_assert_int_eq(jwt_b64url_decode("Z", 1, out, sizeof(out), &n, 0), -1);      /* a lone 6 bits */
	ck_assert_int_eq(jwt_b64url_decode("Zh", 2, out, sizeof(out), &n, 0), -1);     /* bits left over */
	ck_assert_int_eq(jwt_b64url_decode("Zm+v", 4, out, sizeof(out), &n, 0), -1);   /* base64, not url */
	ck_assert_int_eq(jwt_b64url_decode("Zm/v", 4, out, sizeof(out), &n, 0), -1);
	ck_assert_int_eq(jwt_b64url_decode("Zg==", 4, out, sizeof(out), &n, 0), -1);   /* padding */
	ck_assert_int_eq(jwt_b64url_decode("Zg==", 4, out, sizeof(out), &n, 1), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(jwt_b64url_decode("Zg=", 3, out, sizeof(out), &n, 1), -1);    /* half padded */
	ck_assert_int_eq(jwt_b64url_decode("Zm9vYg", 6, out, 3, &n, 0), -1);           /* too long */
}
END_TEST

START_TEST(json_depth)
{
	char deep[64] = "", deeper[80] = "";
	for (int i = 0; i < 16; i++)
		strcat(deep, "[");
	for (int i = 0; i < 16; i++)
		strcat(deep, "]");
	snprintf(deeper, sizeof(deeper), "[%s]", deep);
	ck_assert(jwt_json_depth_ok(deep, strlen(deep), 16));
	ck_assert(!jwt_json_depth_ok(deeper, strlen(deeper), 16));
	/* Brackets in strings, escaped quotes included, do not count. */
	const char *s = "{\"a\":\"[[[[\\\"[[[[\"}";
	ck_assert(jwt_json_depth_ok(s, strlen(s), 1));
	ck_assert(!jwt_json_depth_ok("{\"a\":{}}", 8, 1));
}
END_TEST

START_TEST(keysets)
{
	struct jwt_keyset *ks = all_keys();
	ck_assert_uint_eq(jwt_keyset_count(ks), 4);
	jwt_keyset_free(ks);

	/* Keys that cannot check a JWS are skipped; a set of only those is an error. */
	char *good = jwk(rsa, "good", ""), *enc = jwk(rsa, "enc", ",\"use\":\"enc\""),
	    *shortk = jwk(rsa_short, "short", ""), *ops = jwk(ec256, "ops", ",\"key_ops\":[\"sign\"]"),
	    *oaep = jwk(rsa, "oaep", ",\"alg\":\"RSA-OAEP\""), *mismatch = jwk(ec256, "mm", ",\"alg\":\"RS256\"");
	char set[16384];
	snprintf(set, sizeof(set), "{\"keys\":[%s,%s,%s,%s,%s,{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"},"
	    "{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"AAAA\"},%s]}", enc, shortk, ops, oaep, mismatch, good);
	ks = keyset(set);
	ck_assert_uint_eq(jwt_keyset_count(ks), 1);
	jwt_keyset_free(ks);
	snprintf(set, sizeof(set), "{\"keys\":[%s]}", shortk);
	ck_assert_ptr_null(jwt_keyset_parse(set, strlen(set), err, sizeof(err)));
	ck_assert_msg(strstr(err, "shorter than 2048") != NULL, "%s", err);

	/* An EC point off its curve. */
	char *p = jwk(ec256, "bad", "");
	char *y = strstr(p, "\"y\":\"") + 5;
	y[3] = y[3] == 'A' ? 'B' : 'A';
	snprintf(set, sizeof(set), "{\"keys\":[%s]}", p);
	ck_assert_ptr_null(jwt_keyset_parse(set, strlen(set), err, sizeof(err)));
	ck_assert_msg(strstr(err, "not on its curve") != NULL, "%s", err);
	free(p);

	const char *bad[] = { "", "[]", "{}", "{\"keys\":{}}", "{\"keys\":[]}", "{\"keys\":[1,\"x\"]}",
	    "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}",
	    "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"!!\",\"e\":\"AQAB\"}]}" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(jwt_keyset_parse(bad[i], strlen(bad[i]), err, sizeof(err)) == NULL, "%s", bad[i]);
	free(good);
	free(enc);
	free(shortk);
	free(ops);
	free(oaep);
	free(mismatch);
}
END_TEST

START_TEST(every_algorithm)
{
	static const struct { const char *alg, *kid; } cases[] = {
		{ "RS256", "rsa" }, { "RS384", "rsa" }, { "RS512", "rsa" }, { "PS256", "rsa" }, { "PS384", "rsa" },
		{ "PS512", "rsa" }, { "ES256", "ec256" }, { "ES384", "ec384" }, { "EdDSA", "ed" }, { "Ed25519", "ed" },
	};
	EVP_PKEY *keys[] = { rsa, rsa, rsa, rsa, rsa, rsa, ec256, ec384, ed, ed };
	struct jwt_keyset *ks = all_keys();
	struct jwt_policy p = policy();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct jwt_principal pr;
		ck_assert_msg(verify(&p, ks, token(keys[i], cases[i].alg, cases[i].kid, claims("")), &pr) == JWT_OK,
		    "%s: %s", cases[i].alg, err);
		ck_assert_str_eq(pr.user, "alice");
		ck_assert_int_eq(pr.expires_at, NOW + 300);
		jwt_principal_clear(&pr);
	}
	jwt_keyset_free(ks);
}
END_TEST

START_TEST(principal)
{
	struct jwt_keyset *ks = all_keys();
	struct jwt_policy p = policy();
	struct jwt_principal pr;
	/* client_id before azp; scope (a string) and scp (an array) together;
	 * what could not be a scope is left out. */
	ck_assert_int_eq(verify(&p, ks, token(ec256, "ES256", "ec256", claims(",\"azp\":\"web\",\"client_id\":\"cli\","
	    "\"scope\":\"  tools.read  tools.write\",\"scp\":[\"a:b\",\"has space\",\"q\\\"uote\",7,\"c\"]")), &pr),
	    JWT_OK);
	ck_assert_str_eq(pr.client_id, "cli");
	ck_assert_str_eq(pr.scopes, "tools.read tools.write a:b c");
	jwt_principal_clear(&pr);
	ck_assert_int_eq(verify(&p, ks, token(ec256, "ES256", "ec256", claims(",\"azp\":\"web\"")), &pr), JWT_OK);
	ck_assert_str_eq(pr.client_id, "web");
	ck_assert_str_eq(pr.scopes, "");
	jwt_principal_clear(&pr);
	/* The first user claim present; required scopes and claims. */
	static const char *const users[] = { "user_id", "sub" };
	static const char *const need[] = { "tools.read", "tools.write" };
	static const struct jwt_claim_value use[] = { { "token_use", "access" } };
	p.user_claims = users;
	p.nuser_claims = 2;
	p.required_scopes = need;
	p.nrequired_scopes = 2;
	p.required_claims = use;
	p.nrequired_claims = 1;
	const char *c = claims(",\"user_id\":\"u1\",\"scope\":\"tools.write tools.read\",\"token_use\":\"access\"");
	ck_assert_int_eq(verify(&p, ks, token(ec256, "ES256", "ec256", c), &pr), JWT_OK);
	ck_assert_str_eq(pr.user, "u1");
	ck_assert_ptr_null(pr.client_id);
	jwt_principal_clear(&pr);
	REFUSED(&p, ks, token(ec256, "ES256", "ec256", claims(",\"scope\":\"tools.read\",\"token_use\":\"access\"")),
	    "lacks the required scope tools.write");
	REFUSED(&p, ks, token(ec256, "ES256", "ec256", claims(",\"scope\":\"tools.read tools.write\",\"token_use\":\"id\"")),
	    "token_use claim is not access");
	p.nrequired_scopes = p.nrequired_claims = 0;
	p.user_claims = USER;
	p.nuser_claims = 1;
	REFUSED(&p, ks, token(ec256, "ES256", "ec256", "{\"iss\":\"https://id.example.com\",\"aud\":"
	    "\"https://mcp.example.com/mcp\",\"exp\":1800000300}"), "names no user (sub)");
	REFUSED(&p, ks, token(ec256, "ES256", "ec256", claims(",\"sub\":\"\"")), "claims are not");  /* two subs */
	static const char *const uid[] = { "user_id" };
	p.user_claims = uid;
	REFUSED(&p, ks, token(ec256, "ES256", "ec256", claims(",\"user_id\":\"\"")), "user (user_id) is empty");
	REFUSED(&p, ks, token(ec256, "ES256", "ec256", claims(",\"user_id\":\"a\\nb\"")), "not printable");
	/* 255 bytes at most (what /admin/sessions?user= takes). */
	char name[300], extra[400];
	memset(name, 'u', 255);
	name[255] = '\0';
	snprintf(extra, sizeof(extra), ",\"user_id\":\"%s\"", name);
	ck_assert_int_eq(verify(&p, ks, token(ec256, "ES256", "ec256", claims(extra)), &pr), JWT_OK);
	ck_assert_uint_eq(strlen(pr.user), 255);
	jwt_principal_clear(&pr);
	snprintf(extra, sizeof(extra), ",\"user_id\":\"%su\"", name);
	REFUSED(&p, ks, token(ec256, "ES256", "ec256", claims(extra)), "too long");
	jwt_keyset_free(ks);
}
END_TEST

START_TEST(forged_and_unsigned)
{
	struct jwt_keyset *ks = all_keys();
	struct jwt_policy p = policy();
	const char *c = claims("");
	/* alg none, with and without a signature part. */
	char *h = b64u_str("{\"alg\":\"none\",\"kid\":\"rsa\"}"), *pl = b64u_str(c), tok[4096];
	snprintf(tok, sizeof(tok), "%s.%s.", h, pl);
	REFUSED(&p, ks, strdup(tok), "alg none");
	free(h);
	h = b64u_str("{\"alg\":\"NONE\"}");
	snprintf(tok, sizeof(tok), "%s.%s.", h, pl);
	REFUSED(&p, ks, strdup(tok), "alg none");
	free(h);
	/* HS256 with the RSA public key as the secret: refused before any key is used. */
	h = b64u_str("{\"alg\":\"HS256\",\"kid\":\"rsa\"}");
	snprintf(tok, sizeof(tok), "%s.%s.%s", h, pl, "c2lnbmF0dXJl");
	REFUSED(&p, ks, strdup(tok), "HS256 is a shared-secret algorithm");
	free(h);
	free(pl);
	/* A flipped byte in the signature, for each kind of key. */
	char *t = token(rsa, "RS256", "rsa", c);
	char *sig = strrchr(t, '.') + 10;
	*sig = *sig == 'A' ? 'B' : 'A';
	REFUSED(&p, ks, t, "bad signature");
	t = token(ec256, "ES256", "ec256", c);
	sig = strrchr(t, '.') + 10;
	*sig = *sig == 'A' ? 'B' : 'A';
	REFUSED(&p, ks, t, "bad signature");
	t = token(ed, "EdDSA", "ed", c);
	sig = strrchr(t, '.') + 10;
	*sig = *sig == 'A' ? 'B' : 'A';
	REFUSED(&p, ks, t, "bad signature");
	/* The claims changed after signing. */
	t = token(rsa, "RS256", "rsa", c);
	char *dot = strchr(t, '.') + 5;
	*dot = *dot == 'A' ? 'B' : 'A';
	REFUSED(&p, ks, t, "bad signature");
	/* Signed by a key the issuer does not have, under its kid. */
	EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	REFUSED(&p, ks, token(other, "ES256", "ec256", c), "bad signature");
	EVP_PKEY_free(other);
	/* ECDSA in DER, as OpenSSL makes it, is not a JWS signature. */
	t = token(ec256, "ES256", "ec256", c);
	unsigned char der[128];
	size_t derlen;
	{
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, ec256);
		derlen = sizeof(der);
		EVP_DigestSign(ctx, der, &derlen, (unsigned char *)t, (size_t)(strrchr(t, '.') - t));
		EVP_MD_CTX_free(ctx);
	}
	char *ders = b64u(der, derlen);
	snprintf(tok, sizeof(tok), "%.*s.%s", (int)(strrchr(t, '.') - t), t, ders);
	free(ders);
	free(t);
	REFUSED(&p, ks, strdup(tok), "bad signature");
	/* PSS with a salt shorter than the digest (JWA wants it equal). */
	REFUSED(&p, ks, sign_salt("{\"alg\":\"PS256\",\"kid\":\"rsa\"}", c, rsa, "PS256", 20), "bad signature");
	/* Another text for the same signature bytes: the last character's
	 * unused bits set. */
	t = token(ec256, "ES256", "ec256", c);
	char *last = t + strlen(t) - 1;
	const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	*last = alpha[(strchr(alpha, *last) - alpha) | 1];     /* 64 bytes: 86 characters, 4 bits spare */
	REFUSED(&p, ks, t, "bad signature");
	jwt_keyset_free(ks);
}
END_TEST

START_TEST(keys_and_algorithms)
{
	struct jwt_keyset *ks = all_keys();
	struct jwt_policy p = policy();
	const char *c = claims("");
	struct jwt_principal pr;
	/* An alg that names another kind of key than its kid's. */
	REFUSED(&p, ks, token(ec256, "ES256", "rsa", c), "does not match the issuer's key");
	REFUSED(&p, ks, token(ec384, "ES384", "ec256", c), "does not match");
	REFUSED(&p, ks, token(rsa, "PS256", "ec384", c), "does not match");   /* the JWK says ES384 */
	/* Allowed algorithms only. */
	p.algs = JWT_ALG_BIT(JWT_RS256);
	REFUSED(&p, ks, token(rsa, "PS256", "rsa", c), "algorithm PS256 is not allowed");
	REFUSED(&p, ks, token(ed, "EdDSA", "ed", c), "algorithm EdDSA is not allowed");
	p = policy();
	REFUSED(&p, ks, sign("{\"alg\":\"RS1\",\"kid\":\"rsa\"}", c, rsa, "RS256"), "not supported");
	REFUSED(&p, ks, sign("{\"kid\":\"rsa\"}", c, rsa, "RS256"), "names no algorithm");
	/* kid: unknown (the plugin may refetch), absent. */
	ck_assert_int_eq(verify(&p, ks, token(rsa, "RS256", "new-key", c), &pr), JWT_UNKNOWN_KEY);
	ck_assert_msg(strstr(err, "unknown signing key") != NULL, "%s", err);
	REFUSED(&p, ks, token(rsa, "RS256", NULL, c), "names no key (kid) and the issuer has several");
	char *one = jwk(ed, NULL, ""), set[1024];
	snprintf(set, sizeof(set), "{\"keys\":[%s]}", one);
	free(one);
	struct jwt_keyset *single = keyset(set);
	ck_assert_int_eq(verify(&p, single, token(ed, "EdDSA", NULL, c), &pr), JWT_OK);
	jwt_principal_clear(&pr);
	ck_assert_int_eq(verify(&p, single, token(ed, "EdDSA", "some-kid", c), &pr), JWT_UNKNOWN_KEY);
	jwt_keyset_free(single);
	/* Header checks: typ, crit, kid type, duplicate members. */
	REFUSED(&p, ks, sign("{\"alg\":\"RS256\",\"kid\":\"rsa\",\"typ\":\"dpop+jwt\"}", c, rsa, "RS256"), "typ");
	ck_assert_int_eq(verify(&p, ks, sign("{\"alg\":\"RS256\",\"kid\":\"rsa\",\"typ\":\"application/at+JWT\"}",
	    c, rsa, "RS256"), &pr), JWT_OK);
	jwt_principal_clear(&pr);
	ck_assert_int_eq(verify(&p, ks, sign("{\"alg\":\"RS256\",\"kid\":\"rsa\",\"typ\":\"JWT\"}", c, rsa, "RS256"),
	    &pr), JWT_OK);
	jwt_principal_clear(&pr);
	REFUSED(&p, ks, sign("{\"alg\":\"RS256\",\"kid\":\"rsa\",\"crit\":[\"exp\"]}", c, rsa, "RS256"), "crit");
	REFUSED(&p, ks, sign("{\"alg\":\"RS256\",\"kid\":7}", c, rsa, "RS256"), "kid is not a string");
	REFUSED(&p, ks, sign("{\"alg\":\"RS256\",\"kid\":\"rsa\",\"alg\":\"none\"}", c, rsa, "RS256"),
	    "header is not");
	jwt_keyset_free(ks);
}
END_TEST

START_TEST(claims_checked)
{
	struct jwt_keyset *ks = all_keys();
	struct jwt_policy p = policy();
	struct jwt_principal pr;
	char c[1024];
	const char *base = "\"iss\":\"https://id.example.com\",\"aud\":\"https://mcp.example.com/mcp\",\"sub\":\"a\"";
	/* exp: required, with clock_skew of leeway. */
	snprintf(c, sizeof(c), "{%s,\"exp\":%lld}", base, (long long)NOW - 61);
	REFUSED(&p, ks, token(ed, "EdDSA", "ed", c), "the token expired");
	snprintf(c, sizeof(c), "{%s,\"exp\":%lld}", base, (long long)NOW - 59);
	ck_assert_int_eq(verify(&p, ks, token(ed, "EdDSA", "ed", c), &pr), JWT_OK);
	jwt_principal_clear(&pr);
	p.skew = 0;
	REFUSED(&p, ks, token(ed, "EdDSA", "ed", c), "the token expired");
	p.skew = 60;
	snprintf(c, sizeof(c), "{%s}", base);
	REFUSED(&p, ks, token(ed, "EdDSA", "ed", c), "no expiry (exp)");
	snprintf(c, sizeof(c), "{%s,\"exp\":\"%lld\"}", base, (long long)NOW + 60);
	REFUSED(&p, ks, token(ed, "EdDSA", "ed", c), "is not a time");
	/* nbf */
	snprintf(c, sizeof(c), "{%s,\"exp\":%lld,\"nbf\":%lld}", base, (long long)NOW + 600, (long long)NOW + 61);
	REFUSED(&p, ks, token(ed, "EdDSA", "ed", c), "not valid yet (nbf)");
	snprintf(c, sizeof(c), "{%s,\"exp\":%lld,\"nbf\":%lld.5}", base, (long long)NOW + 600, (long long)NOW + 59);
	ck_assert_int_eq(verify(&p, ks, token(ed, "EdDSA", "ed", c), &pr), JWT_OK);
	jwt_principal_clear(&pr);
	/* iss: exactly. */
	REFUSED(&p, ks, token(ed, "EdDSA", "ed", "{\"iss\":\"https://id.example.com/\",\"aud\":"
	    "\"https://mcp.example.com/mcp\",\"sub\":\"a\",\"exp\":1800000300}"), "wrong issuer");
	REFUSED(&p, ks, token(ed, "EdDSA", "ed", "{\"aud\":\"https://mcp.example.com/mcp\",\"sub\":\"a\","
	    "\"exp\":1800000300}"), "names no issuer");
	/* aud: a string or an array holding ours. */
	const char *tail = "\"iss\":\"https://id.example.com\",\"sub\":\"a\",\"exp\":1800000300";
	snprintf(c, sizeof(c), "{%s,\"aud\":[\"x\",\"https://mcp.example.com/mcp\"]}", tail);
	ck_assert_int_eq(verify(&p, ks, token(ed, "EdDSA", "ed", c), &pr), JWT_OK);
	jwt_principal_clear(&pr);
	snprintf(c, sizeof(c), "{%s,\"aud\":[\"x\",\"https://mcp.example.com\"]}", tail);
	REFUSED(&p, ks, token(ed, "EdDSA", "ed", c), "wrong audience");
	snprintf(c, sizeof(c), "{%s,\"aud\":\"https://mcp.example.com/mcp/\"}", tail);
	REFUSED(&p, ks, token(ed, "EdDSA", "ed", c), "wrong audience");
	snprintf(c, sizeof(c), "{%s}", tail);
	REFUSED(&p, ks, token(ed, "EdDSA", "ed", c), "no audience (aud)");
	/* Another audience claim (Cognito's client_id) holds one string. */
	static const char *const app[] = { "app-client" };
	p.audiences = app;
	p.audience_claim = "client_id";
	snprintf(c, sizeof(c), "{%s,\"client_id\":\"app-client\"}", tail);
	ck_assert_int_eq(verify(&p, ks, token(ed, "EdDSA", "ed", c), &pr), JWT_OK);
	ck_assert_str_eq(pr.client_id, "app-client");
	jwt_principal_clear(&pr);
	snprintf(c, sizeof(c), "{%s,\"client_id\":[\"app-client\"]}", tail);
	REFUSED(&p, ks, token(ed, "EdDSA", "ed", c), "not a string");
	/* Claims that are not an object, duplicates, a JWE, garbage. */
	p = policy();
	REFUSED(&p, ks, token(ed, "EdDSA", "ed", "[1,2]"), "claims are not");
	snprintf(c, sizeof(c), "{%s,\"exp\":1800000300,\"sub\":\"mallory\"}", base);
	REFUSED(&p, ks, token(ed, "EdDSA", "ed", c), "claims are not");
	REFUSED(&p, ks, strdup("a.b.c.d.e"), "JWE");
	REFUSED(&p, ks, strdup("abc"), "not a JWT");
	REFUSED(&p, ks, strdup("a.b"), "not a JWT");
	REFUSED(&p, ks, strdup("..."), "JWE");
	REFUSED(&p, ks, strdup("e30.e30.e30"), "names no algorithm");
	jwt_keyset_free(ks);
}
END_TEST

START_TEST(discovery)
{
	const char *doc = "{\"issuer\":\"https://id.example.com\",\"jwks_uri\":\"https://id.example.com/keys\"}";
	char *u = jwt_discovery_jwks_uri(doc, strlen(doc), "https://id.example.com", err, sizeof(err));
	ck_assert_str_eq(u, "https://id.example.com/keys");
	free(u);
	ck_assert_ptr_null(jwt_discovery_jwks_uri(doc, strlen(doc), "https://id.example.com/", err, sizeof(err)));
	ck_assert_msg(strstr(err, "another issuer (https://id.example.com)") != NULL, "%s", err);
	const char *nokeys = "{\"issuer\":\"https://id.example.com\"}";
	ck_assert_ptr_null(jwt_discovery_jwks_uri(nokeys, strlen(nokeys), "https://id.example.com", err, sizeof(err)));
	ck_assert_msg(strstr(err, "no jwks_uri") != NULL, "%s", err);
	ck_assert_ptr_null(jwt_discovery_jwks_uri("<html>", 6, "https://id.example.com", err, sizeof(err)));
}
END_TEST

START_TEST(algorithm_names)
{
	const char *why;
	ck_assert_int_eq(jwt_alg_parse("PS384", &why), JWT_PS384);
	ck_assert_str_eq(jwt_alg_name(JWT_ES384), "ES384");
	ck_assert_int_eq(jwt_alg_parse("rs256", &why), -1);    /* names are case-sensitive */
	ck_assert_ptr_null(why);
	ck_assert_int_eq(jwt_alg_parse("HS512", &why), -1);
	ck_assert_ptr_nonnull(why);
	ck_assert_int_eq(jwt_alg_parse("none", &why), -1);
	ck_assert_ptr_nonnull(strstr(why, "alg none"));
	/* The default: RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA. */
	unsigned want = 0;
	const char *names[] = { "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA" };
	for (size_t i = 0; i < 9; i++)
		want |= JWT_ALG_BIT(jwt_alg_parse(names[i], &why));
	ck_assert_uint_eq(want, JWT_DEFAULT_ALGS);
}
END_TEST

Suite *
jwt_suite(void)
{
	Suite *s = suite_create("jwt");
	TCase *tc = tcase_create("jwt");
	tcase_add_unchecked_fixture(tc, make_keys, free_keys);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, base64url);
	tcase_add_test(tc, json_depth);
	tcase_add_test(tc, keysets);
	tcase_add_test(tc, every_algorithm);
	tcase_add_test(tc, principal);
	tcase_add_test(tc, forged_and_unsigned);
	tcase_add_test(tc, keys_and_algorithms);
	tcase_add_test(tc, claims_checked);
	tcase_add_test(tc, discovery);
	tcase_add_test(tc, algorithm_names);
	suite_add_tcase(s, tc);
	return s;
}
