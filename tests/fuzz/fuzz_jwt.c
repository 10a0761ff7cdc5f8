/* libFuzzer target: the jwt plugin's checks (plugins/jwt/jwt.c) with a
 * fixed key set (tests/fuzz/keys/jwks.json: Ed25519, P-256, RSA and a
 * key it must skip). An input is one of:
 *  - a compact token, checked as a client's bearer token;
 *  - a header and a claims object joined by a NUL: signed here with the
 *    test key its alg names (EdDSA, else ES256), so that the claim checks
 *    behind the signature are reached;
 *  - a JSON object: read as a JWKS and as a discovery document.
 * Each token is checked under two policies; a principal that comes out
 * must be what the policy allows. FUZZ_VERBOSE=1 prints each verdict. */
#include <cjson/cJSON.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/jwt/jwt.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1750000000

static struct jwt_keyset *keys;
static EVP_PKEY *ed_key, *ec_key;

static const char *const audiences[] = { "mcpd", "https://mcp.example/mcp" };
static const char *const user_claims[] = { "sub", "email" };
static const char *const client_claims[] = { "client_id", "azp" };
static const char *const scope_claims[] = { "scope", "scp" };
static const struct jwt_claim_value required[] = { { "tenant", "acme" } };
static const char *const need_scopes[] = { "mcp" };

static const struct jwt_policy loose = {
	.issuer = "https://issuer.example",
	.audiences = audiences, .naudiences = 1, .audience_claim = "aud",
	.algs = JWT_DEFAULT_ALGS, .skew = 60,
	.user_claims = user_claims, .nuser_claims = 1,
	.client_claims = client_claims, .nclient_claims = 2,
	.scope_claims = scope_claims, .nscope_claims = 2,
};
static const struct jwt_policy strict = {
	.issuer = "https://issuer.example",
	.audiences = audiences + 1, .naudiences = 1, .audience_claim = "resource",
	.algs = JWT_ALG_BIT(JWT_EDDSA) | JWT_ALG_BIT(JWT_ES256), .skew = 0,
	.user_claims = user_claims, .nuser_claims = 2,
	.client_claims = client_claims, .nclient_claims = 1,
	.scope_claims = scope_claims, .nscope_claims = 1,
	.required_claims = required, .nrequired_claims = 1,
	.required_scopes = need_scopes, .nrequired_scopes = 1,
};

static char *
read_file(const char *name, size_t *len)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/tests/fuzz/keys/%s", FUZZ_SRCDIR, name);
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		perror(path);
		abort();
	}
	char *buf = malloc(65536);
	*len = fread(buf, 1, 65535, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static EVP_PKEY *
read_key(const char *name)
{
	size_t len;
	char *pem = read_file(name, &len);
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	free(pem);
	if (k == NULL)
		abort();
	return k;
}

static void
setup(void)
{
	size_t len;
	char err[300];
	char *jwks = read_file("jwks.json", &len);
	keys = jwt_keyset_parse(jwks, len, err, sizeof(err));
	free(jwks);
	if (keys == NULL || jwt_keyset_count(keys) != 3) {
		fprintf(stderr, "fuzz_jwt: the test JWKS: %s\n", keys ? "not 3 keys" : err);
		abort();
	}
	ed_key = read_key("ed25519.pem");
	ec_key = read_key("p256.pem");
}

static char *
b64url(const unsigned char *in, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);
	out[base64url_encode(in, len, out)] = '\0';
	return out;
}

/* header.claims signed with the key for the header's alg. */
static char *
sign(const char *header, size_t hlen, const char *claims, size_t clen)
{
	char *h = b64url((const unsigned char *)header, hlen);
	char *c = b64url((const unsigned char *)claims, clen);
	size_t inlen = strlen(h) + 1 + strlen(c);
	char *input = malloc(inlen + 1);
	snprintf(input, inlen + 1, "%s.%s", h, c);
	free(h);
	free(c);
	int ec = memmem(header, hlen, "ES256", 5) != NULL;
	unsigned char sig[128], der[128];
	size_t siglen = sizeof(der);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (EVP_DigestSignInit(md, NULL, ec ? EVP_sha256() : NULL, NULL, ec ? ec_key : ed_key) != 1 ||
	    EVP_DigestSign(md, der, &siglen, (unsigned char *)input, inlen) != 1)
		abort();
	EVP_MD_CTX_free(md);
	if (ec) {
		/* DER (r, s) to the JWS form r || s. */
		const unsigned char *p = der;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
		if (es == NULL || BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32) != 32 ||
		    BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32) != 32)
			abort();
		ECDSA_SIG_free(es);
		siglen = 64;
	} else {
		memcpy(sig, der, siglen);
	}
	char *s = b64url(sig, siglen);
	char *token = malloc(inlen + 1 + strlen(s) + 1);
	sprintf(token, "%s.%s", input, s);
	free(input);
	free(s);
	return token;
}

static int
scopes_ok(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\')
			return 0;
	return 1;
}

static void
verify(const struct jwt_policy *p, const char *token)
{
	struct jwt_principal pr;
	char err[600];
	enum jwt_result rc = jwt_verify(p, keys, token, NOW, &pr, err, sizeof(err));
	if (getenv("FUZZ_VERBOSE") != NULL)
		fprintf(stderr, "%s policy: %s\n", p == &loose ? "loose" : "strict",
		    rc == JWT_OK ? pr.user : err);
	if (rc != JWT_OK)
		return;
	if (pr.user == NULL || pr.user[0] == '\0' || strlen(pr.user) > JWT_MAX_STRING ||
	    pr.scopes == NULL || !scopes_ok(pr.scopes) || pr.expires_at <= NOW - p->skew) {
		fprintf(stderr, "jwt_verify accepted a token it should not: user %s scopes %s exp %lld\n",
		    pr.user ? pr.user : "(none)", pr.scopes ? pr.scopes : "(none)",
		    (long long)pr.expires_at);
		abort();
	}
	jwt_principal_clear(&pr);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (keys == NULL)
		setup();
	const char *s = (const char *)data;
	const char *nul = memchr(s, '\0', size);
	char err[600];
	if (nul != NULL) {
		size_t hlen = (size_t)(nul - s);
		char *token = sign(s, hlen, nul + 1, size - hlen - 1);
		verify(&loose, token);
		verify(&strict, token);
		free(token);
	} else if (size > 0 && s[0] == '{') {
		struct jwt_keyset *ks = jwt_keyset_parse(s, size, err, sizeof(err));
		if (ks != NULL && (jwt_keyset_count(ks) == 0 || jwt_keyset_count(ks) > JWT_MAX_KEYS))
			abort();
		jwt_keyset_free(ks);
		free(jwt_discovery_jwks_uri(s, size, "https://issuer.example", err, sizeof(err)));
	} else {
		char *token = malloc(size + 1);
		memcpy(token, s, size);
		token[size] = '\0';
		verify(&loose, token);
		verify(&strict, token);
		free(token);
	}
	return 0;
}
