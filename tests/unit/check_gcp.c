/* The Google plugins' shared code that needs no network: the service
 * account's JWT (signed here, verified with the key's public half), which
 * credential source the environment and files name and what is wrong with
 * a file, the endpoints the emulator variables and endpoint: give,
 * Google's error bodies, and RFC 3339 times. Fetching tokens is tested by
 * test_gcp_credentials.py against token and metadata endpoints. */
#include <check.h>
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../plugins/common/gcp.h"
#include "../../plugins/common/gcp_auth.h"
#include "../../plugins/common/isotime.h"
#include "suites.h"

static char dir[128];
static char *pem_priv, *pem_pub;

static char *
pem_of(EVP_PKEY *k, int private)
{
	BIO *b = BIO_new(BIO_s_mem());
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(private ? PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) :
	    PEM_write_bio_PUBKEY(b, k), 1);
	char *data;
	long n = BIO_get_mem_data(b, &data);
	char *out = strndup(data, (size_t)n);
	BIO_free(b);
	return out;
}

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/mcpd-gcp-test-%d", (int)getpid());
	mkdir(dir, 0700);
	EVP_PKEY *k = EVP_RSA_gen(2048);
	ck_assert_ptr_nonnull(k);
	pem_priv = pem_of(k, 1);
	pem_pub = pem_of(k, 0);
	EVP_PKEY_free(k);
	unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
	unsetenv("GCE_METADATA_HOST");
	unsetenv("FIRESTORE_EMULATOR_HOST");
	setenv("CLOUDSDK_CONFIG", dir, 1);
}

static void
teardown(void)
{
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	free(pem_priv);
	free(pem_pub);
}

/* base64url without padding into bytes. */
static unsigned char *
unb64url(const char *s, size_t n, size_t *len)
{
	char *t = calloc(1, n + 4);
	size_t m = 0;
	ck_assert_ptr_nonnull(t);
	for (size_t i = 0; i < n; i++)
		t[m++] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	while (m % 4)
		t[m++] = '=';
	unsigned char *out = malloc(m);
	int r = EVP_DecodeBlock(out, (unsigned char *)t, (int)m);
	ck_assert_int_ge(r, 0);
	size_t pad = 0;
	for (size_t i = m; i > 0 && t[i - 1] == '='; i--)
		pad++;
	*len = (size_t)r - pad;
	free(t);
	return out;
}

static cJSON *
part(const char *jwt, int which)
{
	const char *p = jwt;
	for (int i = 0; i < which; i++)
		p = strchr(p, '.') + 1;
	size_t n = strcspn(p, "."), len;
	unsigned char *b = unb64url(p, n, &len);
	cJSON *j = cJSON_ParseWithLength((char *)b, len);
	free(b);
	ck_assert_ptr_nonnull(j);
	return j;
}

START_TEST(jwt_signed_and_verified)
{
	char err[256];
	char *jwt = gcp_jwt_assertion("mcpd@p.iam.gserviceaccount.com", pem_priv, "kid1", GCP_SCOPE,
	    "https://oauth2.googleapis.com/token", 1700000000, err, sizeof(err));
	ck_assert_msg(jwt != NULL, "%s", err);
	cJSON *h = part(jwt, 0), *c = part(jwt, 1);
	ck_assert_str_eq(cJSON_GetObjectItem(h, "alg")->valuestring, "RS256");
	ck_assert_str_eq(cJSON_GetObjectItem(h, "typ")->valuestring, "JWT");
	ck_assert_str_eq(cJSON_GetObjectItem(h, "kid")->valuestring, "kid1");
	ck_assert_str_eq(cJSON_GetObjectItem(c, "iss")->valuestring, "mcpd@p.iam.gserviceaccount.com");
	ck_assert_str_eq(cJSON_GetObjectItem(c, "scope")->valuestring, GCP_SCOPE);
	ck_assert_str_eq(cJSON_GetObjectItem(c, "aud")->valuestring, "https://oauth2.googleapis.com/token");
	ck_assert_int_eq((long long)cJSON_GetObjectItem(c, "iat")->valuedouble, 1700000000LL);
	ck_assert_int_eq((long long)cJSON_GetObjectItem(c, "exp")->valuedouble, 1700003600LL);
	cJSON_Delete(h);
	cJSON_Delete(c);
	/* The signature, checked with the public half. */
	const char *dot = strrchr(jwt, '.');
	size_t siglen;
	unsigned char *sig = unb64url(dot + 1, strlen(dot + 1), &siglen);
	BIO *b = BIO_new_mem_buf(pem_pub, -1);
	EVP_PKEY *pub = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
	BIO_free(b);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	ck_assert_int_eq(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub), 1);
	ck_assert_int_eq(EVP_DigestVerify(md, sig, siglen, (unsigned char *)jwt, (size_t)(dot - jwt)), 1);
	/* and a changed claim fails it */
	jwt[5] ^= 1;
	EVP_MD_CTX_free(md);
	md = EVP_MD_CTX_new();
	ck_assert_int_eq(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub), 1);
	ck_assert_int_ne(EVP_DigestVerify(md, sig, siglen, (unsigned char *)jwt, (size_t)(dot - jwt)), 1);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pub);
	free(sig);
	free(jwt);
	ck_assert_ptr_null(gcp_jwt_assertion("x", "not a key", NULL, GCP_SCOPE, "a", 1, err, sizeof(err)));
	ck_assert_msg(strstr(err, "RSA") != NULL, "%s", err);
}
END_TEST

static const char *
write_file(const char *name, const char *text)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static const char *
service_account(const char *extra)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "type", "service_account");
	cJSON_AddStringToObject(j, "project_id", "my-project-7");
	cJSON_AddStringToObject(j, "private_key_id", "k1");
	cJSON_AddStringToObject(j, "private_key", pem_priv);
	cJSON_AddStringToObject(j, "client_email", "mcpd@my-project-7.iam.gserviceaccount.com");
	static char buf[8192];
	char *t = cJSON_PrintUnformatted(j);
	snprintf(buf, sizeof(buf), "%.*s%s}", (int)strlen(t) - 1, t, extra);
	free(t);
	cJSON_Delete(j);
	return buf;
}

/* The source of GOOGLE_APPLICATION_CREDENTIALS=text: 0 or -1, what or why. */
static int
probe_text(const char *text, char *what, size_t wl, char *project, size_t pl)
{
	setenv("GOOGLE_APPLICATION_CREDENTIALS", write_file("adc.json", text), 1);
	char why[700];
	int rc = gcp_auth_probe(what, wl, project, pl, why, sizeof(why));
	if (rc < 0)
		snprintf(what, wl, "%s", why);
	return rc;
}

START_TEST(sources)
{
	char what[700], project[128];
	/* nothing configured: the metadata server */
	ck_assert_int_eq(gcp_auth_probe(what, sizeof(what), project, sizeof(project), what, sizeof(what)), 0);
	ck_assert_msg(strstr(what, "metadata server (metadata.google.internal)") != NULL, "%s", what);
	setenv("GCE_METADATA_HOST", "127.0.0.1:9", 1);
	ck_assert_int_eq(gcp_auth_probe(what, sizeof(what), project, sizeof(project), what, sizeof(what)), 0);
	ck_assert_msg(strstr(what, "127.0.0.1:9") != NULL, "%s", what);
	setenv("GCE_METADATA_HOST", "evil/path", 1);
	ck_assert_int_eq(gcp_auth_probe(what, sizeof(what), project, sizeof(project), what, sizeof(what)), -1);
	unsetenv("GCE_METADATA_HOST");
	/* gcloud's well-known file comes before the metadata server */
	char path[300];
	snprintf(path, sizeof(path), "%s", write_file("application_default_credentials.json",
	    "{\"type\":\"authorized_user\",\"client_id\":\"cid\",\"client_secret\":\"s\",\"refresh_token\":\"r\"}"));
	ck_assert_int_eq(gcp_auth_probe(what, sizeof(what), project, sizeof(project), what, sizeof(what)), 0);
	ck_assert_msg(strstr(what, "user credentials of client cid") != NULL, "%s", what);
	unlink(path);

	ck_assert_int_eq(probe_text(service_account(""), what, sizeof(what), project, sizeof(project)), 0);
	ck_assert_msg(strstr(what, "service account mcpd@my-project-7.iam.gserviceaccount.com") != NULL, "%s", what);
	ck_assert_str_eq(project, "my-project-7");
	ck_assert_int_eq(probe_text("{\"type\":\"external_account\",\"audience\":\"//iam.googleapis.com/x\","
	    "\"subject_token_type\":\"urn:ietf:params:oauth:token-type:jwt\",\"credential_source\":{\"file\":\"/t\"}}",
	    what, sizeof(what), project, sizeof(project)), 0);
	ck_assert_msg(strstr(what, "workload identity federation") != NULL && strstr(what, "/t") != NULL, "%s", what);
	ck_assert_str_eq(project, "");
	ck_assert_int_eq(probe_text("{\"type\":\"external_account\",\"audience\":\"a\",\"subject_token_type\":\"t\","
	    "\"credential_source\":{\"url\":\"http://169.254.169.254/token\",\"headers\":{\"Metadata\":\"True\"},"
	    "\"format\":{\"type\":\"json\",\"subject_token_field_name\":\"access_token\"}}}", what, sizeof(what), project,
	    sizeof(project)), 0);
}
END_TEST

/* What is wrong with a file is said, naming the file and the field. */
START_TEST(bad_files)
{
	static const struct {
		const char *text, *says;
	} cases[] = {
		{ "not json", "is not JSON" },
		{ "{}", "has no \"type\"" },
		{ "{\"type\":\"impersonated_service_account\"}", "impersonated_service_account, which mcpd does not support" },
		{ "{\"type\":\"service_account\",\"client_email\":\"x\"}", "needs client_email and private_key" },
		{ "{\"type\":\"service_account\",\"client_email\":\"x\",\"private_key\":\"junk\"}", "not an RSA private key" },
		{ "{\"type\":\"authorized_user\",\"client_id\":\"c\"}", "need client_id, client_secret and refresh_token" },
		{ "{\"type\":\"external_account\",\"audience\":\"a\"}", "needs audience, subject_token_type and credential_source" },
		{ "{\"type\":\"external_account\",\"audience\":\"a\",\"subject_token_type\":\"t\",\"credential_source\":"
		  "{\"environment_id\":\"aws1\"}}", "(aws1) is not supported" },
		{ "{\"type\":\"external_account\",\"audience\":\"a\",\"subject_token_type\":\"t\",\"credential_source\":"
		  "{\"file\":\"/a\",\"url\":\"https://b\"}}", "exactly one of file and url" },
		{ "{\"type\":\"external_account\",\"audience\":\"a\",\"subject_token_type\":\"t\",\"credential_source\":"
		  "{\"file\":\"/a\",\"format\":{\"type\":\"json\"}}}", "subject_token_field_name" },
		{ "{\"type\":\"external_account\",\"audience\":\"a\",\"subject_token_type\":\"t\",\"token_url\":"
		  "\"http://sts.example.com/v1/token\",\"credential_source\":{\"file\":\"/a\"}}", "token_url" },
		{ "{\"type\":\"authorized_user\",\"client_id\":\"c\",\"client_secret\":\"s\",\"refresh_token\":\"r\","
		  "\"token_uri\":\"http://example.com/token\"}", "only https URLs" },
	};
	char what[700], project[64];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(probe_text(cases[i].text, what, sizeof(what), project, sizeof(project)), -1);
		ck_assert_msg(strstr(what, cases[i].says) != NULL, "case %zu: %s", i, what);
		ck_assert_msg(strstr(what, "adc.json") != NULL || strstr(what, "token_uri") != NULL, "case %zu: %s", i, what);
	}
	/* A service account key's http token_uri to loopback is allowed (tests). */
	ck_assert_int_eq(probe_text(service_account(",\"token_uri\":\"http://127.0.0.1:1/token\""), what, sizeof(what),
	    project, sizeof(project)), 0);
	setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/adc.json", 1);
	ck_assert_int_eq(gcp_auth_probe(what, sizeof(what), project, sizeof(project), what, sizeof(what)), -1);
	ck_assert_msg(strstr(what, "cannot read the credentials file /nonexistent/adc.json") != NULL, "%s", what);
}
END_TEST

START_TEST(endpoints)
{
	char url[600], err[600];
	int emu;
	ck_assert_int_eq(gcp_endpoint(NULL, "FIRESTORE_EMULATOR_HOST", "https://firestore.googleapis.com", url,
	    sizeof(url), &emu, err, sizeof(err)), 0);
	ck_assert_str_eq(url, "https://firestore.googleapis.com");
	ck_assert_int_eq(emu, 0);
	setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080", 1);
	ck_assert_int_eq(gcp_endpoint(NULL, "FIRESTORE_EMULATOR_HOST", "https://g", url, sizeof(url), &emu, err,
	    sizeof(err)), 0);
	ck_assert_str_eq(url, "http://127.0.0.1:8080");
	ck_assert_int_eq(emu, 1);
	/* endpoint: wins over the variable; https is not an emulator */
	ck_assert_int_eq(gcp_endpoint("https://private.example.com/", "FIRESTORE_EMULATOR_HOST", "https://g", url,
	    sizeof(url), &emu, err, sizeof(err)), 0);
	ck_assert_str_eq(url, "https://private.example.com");
	ck_assert_int_eq(emu, 0);
	ck_assert_int_eq(gcp_endpoint("http://[::1]:9/", NULL, "https://g", url, sizeof(url), &emu, err, sizeof(err)), 0);
	ck_assert_int_eq(emu, 1);
	ck_assert_int_eq(gcp_endpoint("ftp://x", NULL, "https://g", url, sizeof(url), &emu, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "http or https") != NULL, "%s", err);
	ck_assert_int_eq(gcp_endpoint("https://x/?a=b", NULL, "https://g", url, sizeof(url), &emu, err, sizeof(err)), -1);
	setenv("FIRESTORE_EMULATOR_HOST", "a/b", 1);
	ck_assert_int_eq(gcp_endpoint(NULL, "FIRESTORE_EMULATOR_HOST", "https://g", url, sizeof(url), &emu, err,
	    sizeof(err)), -1);
	ck_assert_msg(strstr(err, "host:port") != NULL, "%s", err);
	unsetenv("FIRESTORE_EMULATOR_HOST");
}
END_TEST

START_TEST(errors_and_times)
{
	char code[64], msg[256];
	const char *e = "{\"error\":{\"code\":409,\"message\":\"Document already exists\",\"status\":\"ALREADY_EXISTS\"}}";
	gcp_error_of(e, strlen(e), code, sizeof(code), msg, sizeof(msg));
	ck_assert_str_eq(code, "ALREADY_EXISTS");
	ck_assert_str_eq(msg, "Document already exists");
	e = "[{\"error\":{\"code\":400,\"message\":\"bad\",\"status\":\"INVALID_ARGUMENT\"}}]";
	gcp_error_of(e, strlen(e), code, sizeof(code), msg, sizeof(msg));
	ck_assert_str_eq(code, "INVALID_ARGUMENT");
	e = "Not Found\nmore";
	gcp_error_of(e, strlen(e), code, sizeof(code), msg, sizeof(msg));
	ck_assert_str_eq(code, "");
	ck_assert_str_eq(msg, "Not Found");
	/* The project itself missing, as Firestore and Pub/Sub say it, and
	 * what is not that. */
	struct gcp_result r = { 404, NULL, 0, "NOT_FOUND", "" };
	r.body = "{\"error\":{\"code\":404,\"message\":\"The project p-1 does not exist or it does not contain an "
	    "active Cloud Datastore or Cloud Firestore database.\",\"status\":\"NOT_FOUND\"}}";
	r.len = strlen(r.body);
	ck_assert_int_eq(gcp_project_missing(&r), 1);
	r.body = "{\"error\":{\"code\":404,\"message\":\"Requested project not found or user does not have access to "
	    "it (project=p-1).\",\"status\":\"NOT_FOUND\"}}";
	r.len = strlen(r.body);
	ck_assert_int_eq(gcp_project_missing(&r), 1);
	r.body = "{\"error\":{\"code\":404,\"message\":\"The database (default) does not exist for project p-1\","
	    "\"status\":\"NOT_FOUND\"}}";
	r.len = strlen(r.body);
	ck_assert_int_eq(gcp_project_missing(&r), 0);
	r.body = "{\"error\":{\"code\":404,\"message\":\"Resource not found (resource=mcpd).\",\"status\":\"NOT_FOUND\"}}";
	r.len = strlen(r.body);
	ck_assert_int_eq(gcp_project_missing(&r), 0);
	r.code = NULL;
	ck_assert_int_eq(gcp_project_missing(&r), 0);

	char *u = gcp_url_escape("a b/c~d");
	ck_assert_str_eq(u, "a%20b%2Fc~d");
	free(u);

	char t[40];
	isotime_format_ms(1440938160123ULL, t, sizeof(t));
	ck_assert_str_eq(t, "2015-08-30T12:36:00.123Z");
	ck_assert_uint_eq(isotime_parse_ms(t), 1440938160123ULL);
	ck_assert_uint_eq(isotime_parse_ms("2015-08-30T12:36:00.123456Z"), 1440938160123ULL);
	ck_assert_uint_eq(isotime_parse_ms("2015-08-30T12:36:00.5Z"), 1440938160500ULL);
	ck_assert_uint_eq(isotime_parse_ms("2015-08-30T12:36:00.Z"), 0);
	isotime_format_ms(7, t, sizeof(t));
	ck_assert_str_eq(t, "1970-01-01T00:00:00.007Z");
}
END_TEST

Suite *
gcp_suite(void)
{
	Suite *s = suite_create("gcp");
	TCase *tc = tcase_create("offline");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, jwt_signed_and_verified);
	tcase_add_test(tc, sources);
	tcase_add_test(tc, bad_files);
	tcase_add_test(tc, endpoints);
	tcase_add_test(tc, errors_and_times);
	suite_add_tcase(s, tc);
	return s;
}
