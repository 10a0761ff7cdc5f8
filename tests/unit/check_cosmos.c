/* The cosmos plugin's code that needs no network: the Authorization
 * header against the example of Microsoft's "Access control in the Azure
 * Cosmos DB SQL API" (its key, verb, resource and date, and the signature
 * the page gives), key files, Entra ID token answers (Microsoft's token
 * endpoint writes expires_in as a number, the managed identity endpoints
 * write expires_on and expires_in as strings), which Entra ID source the
 * environment names, and when a token is renewed. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../plugins/common/azure_auth.h"
#include "../../plugins/common/clock.h"
#include "../../plugins/common/tokcache.h"
#include "../../plugins/cosmos/cosmos_sig.h"
#include "suites.h"

#define DOC_KEY "dsZQi3KtZmCv1ljt3VNWNm7sQUF1y5rJfC6kv5JiwvW0EndXdDku/dkKBp8/ufDToSxLzR4y+O/0H/t4bQtVNw=="

START_TEST(master_signature)
{
	unsigned char key[COSMOS_KEY_MAX];
	size_t len;
	ck_assert_int_eq(cosmos_key_decode(" " DOC_KEY "\n", key, &len), 0);
	ck_assert_uint_eq(len, 64);
	char out[512];
	ck_assert_int_eq(cosmos_auth_master(key, len, "GET", "dbs", "dbs/ToDoList", "Thu, 27 Apr 2017 00:51:12 GMT",
	    out, sizeof(out)), 0);
	/* The page's value, with its escapes in upper case. */
	ck_assert_str_eq(out, "type%3Dmaster%26ver%3D1.0%26sig%3Dc09PEVJrgp2uQRkr934kFbTqhByc7TVr3OHyqlu%2Bc%2Bc%3D");
	/* The verb, type and date are lowercased; the link is not. */
	char other[512];
	ck_assert_int_eq(cosmos_auth_master(key, len, "get", "DBS", "dbs/ToDoList", "thu, 27 apr 2017 00:51:12 gmt",
	    other, sizeof(other)), 0);
	ck_assert_str_eq(other, out);
	ck_assert_int_eq(cosmos_auth_master(key, len, "GET", "dbs", "dbs/todolist", "Thu, 27 Apr 2017 00:51:12 GMT",
	    other, sizeof(other)), 0);
	ck_assert_str_ne(other, out);
	ck_assert_int_eq(cosmos_auth_master(key, len, "GET", "dbs", "dbs/ToDoList", "Thu, 27 Apr 2017 00:51:12 GMT",
	    out, 40), -1);
}
END_TEST

START_TEST(aad_and_dates)
{
	char out[256], date[32];
	ck_assert_int_eq(cosmos_auth_aad("eyJ0eXAi.eyJhdWQi.c2ln-_", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "type%3Daad%26ver%3D1.0%26sig%3DeyJ0eXAi.eyJhdWQi.c2ln-_");
	cosmos_date(1493254272, date);
	ck_assert_str_eq(date, "Thu, 27 Apr 2017 00:51:12 GMT");
	cosmos_date(0, date);
	ck_assert_str_eq(date, "Thu, 01 Jan 1970 00:00:00 GMT");
}
END_TEST

START_TEST(uri_encoding)
{
	char out[64];
	/* what the Authorization header carries: all but A-Z a-z 0-9 - _ . ~ */
	ck_assert_int_eq(cosmos_uri_encode("a-Z_0.~", 7, out, sizeof(out)), 7);
	ck_assert_str_eq(out, "a-Z_0.~");
	ck_assert_int_eq(cosmos_uri_encode("type=aad&sig=a+b/c", 18, out, sizeof(out)), 28);
	ck_assert_str_eq(out, "type%3Daad%26sig%3Da%2Bb%2Fc");
	/* bytes, the NUL and UTF-8 as they are, in upper-case hex */
	ck_assert_int_eq(cosmos_uri_encode("\0\xff\xc3\xa9 ", 4, out, sizeof(out)), 12);
	ck_assert_str_eq(out, "%00%FF%C3%A9");
	/* the terminator counts: a result that just fits, one that does not */
	ck_assert_int_eq(cosmos_uri_encode("ab=", 3, out, 6), 5);
	ck_assert_int_eq(cosmos_uri_encode("ab=", 3, out, 5), -1);
	ck_assert_int_eq(cosmos_uri_encode("abc", 3, out, 3), -1);
	ck_assert_int_eq(cosmos_uri_encode("", 0, out, 1), 0);
	ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(key_text)
{
	unsigned char key[COSMOS_KEY_MAX];
	size_t len;
	ck_assert_int_eq(cosmos_key_decode("", key, &len), -1);
	ck_assert_int_eq(cosmos_key_decode("not base64!", key, &len), -1);
	ck_assert_int_eq(cosmos_key_decode("abc", key, &len), -1);
	ck_assert_int_eq(cosmos_key_decode("ab=c", key, &len), -1);
	ck_assert_int_eq(cosmos_key_decode("YWJj", key, &len), 0);
	ck_assert_uint_eq(len, 3);
	ck_assert(memcmp(key, "abc", 3) == 0);
	ck_assert_int_eq(cosmos_key_decode("YWI=", key, &len), 0);
	ck_assert_uint_eq(len, 2);
	/* a connection string is not a key */
	ck_assert_int_eq(cosmos_key_decode("AccountEndpoint=https://x/;AccountKey=" DOC_KEY ";", key, &len), -1);
	char big[400];
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_eq(cosmos_key_decode(big, key, &len), -1);
}
END_TEST

START_TEST(token_answers)
{
	char *tok, why[256];
	uint64_t exp, now = 1700000000000ull;
	/* Entra ID's token endpoint */
	const char *a = "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"eyJ.x.y\"}";
	ck_assert_int_eq(azure_token_answer(a, strlen(a), now, &tok, &exp, why, sizeof(why)), 0);
	ck_assert_str_eq(tok, "eyJ.x.y");
	ck_assert_uint_eq(exp, now + 3599000);
	free(tok);
	/* IMDS and the App Service endpoint: strings, expires_on first */
	const char *b = "{\"access_token\":\"t2\",\"expires_in\":\"86399\",\"expires_on\":\"1700003600\","
	    "\"resource\":\"https://x.documents.azure.com\",\"token_type\":\"Bearer\"}";
	ck_assert_int_eq(azure_token_answer(b, strlen(b), now, &tok, &exp, why, sizeof(why)), 0);
	ck_assert_uint_eq(exp, 1700003600000ull);
	free(tok);
	const char *c = "{\"error\":\"invalid_request\",\"error_description\":\"Identity not found\"}";
	ck_assert_int_eq(azure_token_answer(c, strlen(c), now, &tok, &exp, why, sizeof(why)), -1);
	ck_assert_ptr_null(tok);
	ck_assert_str_eq(why, "invalid_request: Identity not found");
	const char *d = "{\"access_token\":\"t\"}";
	ck_assert_int_eq(azure_token_answer(d, strlen(d), now, &tok, &exp, why, sizeof(why)), -1);
	ck_assert(strstr(why, "expires") != NULL);
	const char *e = "{\"access_token\":\"t\",\"expires_on\":\"1600000000\"}";
	ck_assert_int_eq(azure_token_answer(e, strlen(e), now, &tok, &exp, why, sizeof(why)), -1);
	ck_assert(strstr(why, "expired") != NULL);
	const char *f = "{\"access_token\":\"a\\r\\nX-Evil: 1\",\"expires_in\":60}";
	ck_assert_int_eq(azure_token_answer(f, strlen(f), now, &tok, &exp, why, sizeof(why)), -1);
	ck_assert_int_eq(azure_token_answer("nope", 4, now, &tok, &exp, why, sizeof(why)), -1);
}
END_TEST

static void
unset_azure(void)
{
	static const char *const names[] = { "AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID", "AZURE_TENANT_ID",
	    "AZURE_AUTHORITY_HOST", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AZURE_POD_IDENTITY_AUTHORITY_HOST", NULL };
	for (const char *const *n = names; *n; n++)
		unsetenv(*n);
}

START_TEST(sources)
{
	char what[600], why[600];
	unset_azure();
	ck_assert_int_eq(azure_cred_probe(NULL, what, sizeof(what), why, sizeof(why)), 0);
	ck_assert_msg(strstr(what, "instance metadata, http://169.254.169.254") != NULL, "%s", what);
	setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9/", 1);
	ck_assert_int_eq(azure_cred_probe("cid-1", what, sizeof(what), why, sizeof(why)), 0);
	ck_assert_msg(strstr(what, "managed identity cid-1 (instance metadata, http://127.0.0.1:9)") != NULL, "%s", what);
	setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token", 1);
	ck_assert_int_eq(azure_cred_probe(NULL, what, sizeof(what), why, sizeof(why)), -1);
	ck_assert(strstr(why, "IDENTITY_HEADER") != NULL);
	setenv("IDENTITY_HEADER", "h", 1);
	ck_assert_int_eq(azure_cred_probe(NULL, what, sizeof(what), why, sizeof(why)), 0);
	ck_assert_msg(strstr(what, "(http://127.0.0.1:9/msi/token)") != NULL, "%s", what);
	setenv("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/tokens/azure-identity-token", 1);
	ck_assert_int_eq(azure_cred_probe(NULL, what, sizeof(what), why, sizeof(why)), -1);
	ck_assert(strstr(why, "AZURE_CLIENT_ID and AZURE_TENANT_ID") != NULL);
	setenv("AZURE_CLIENT_ID", "c1", 1);
	setenv("AZURE_TENANT_ID", "t1", 1);
	ck_assert_int_eq(azure_cred_probe(NULL, what, sizeof(what), why, sizeof(why)), 0);
	ck_assert_msg(strstr(what, "workload identity (client c1") != NULL, "%s", what);
	setenv("AZURE_AUTHORITY_HOST", "http://login.example.com/", 1);
	ck_assert_int_eq(azure_cred_probe(NULL, what, sizeof(what), why, sizeof(why)), -1);
	ck_assert(strstr(why, "AZURE_AUTHORITY_HOST") != NULL);
	setenv("AZURE_TENANT_ID", "t1/../x", 1);
	unsetenv("AZURE_AUTHORITY_HOST");
	ck_assert_int_eq(azure_cred_probe(NULL, what, sizeof(what), why, sizeof(why)), -1);
	unset_azure();
}
END_TEST

START_TEST(renewal)
{
	/* A token of an hour: used until its last 10 s, renewed in its last 5 minutes. */
	uint64_t got = 1000000, exp = got + 3600000;
	ck_assert(tokcache_usable(got, exp, exp - 10001));
	ck_assert(!tokcache_usable(got, exp, exp - 10000));
	ck_assert(!tokcache_due(got, exp, exp - 300001));
	ck_assert(tokcache_due(got, exp, exp - 300000));
	/* A token of a minute: renewed after 30 s, used until its last 6 s. */
	exp = got + 60000;
	ck_assert(!tokcache_due(got, exp, got + 29999));
	ck_assert(tokcache_due(got, exp, got + 30000));
	ck_assert(tokcache_usable(got, exp, got + 53999));
	ck_assert(!tokcache_usable(got, exp, got + 54000));
}
END_TEST

static uint64_t fetched_exp;

static void
fetch_now(void *src, struct tokcache *tc)
{
	(void)src;
	tokcache_fetched(tc, strdup("tok"), fetched_exp, NULL);
}

static void
got_tok(void *arg, const char *token, const char *why)
{
	*(int *)arg = token != NULL && strcmp(token, "tok") == 0 && why == NULL;
}

START_TEST(renewal_times)
{
	/* What a holder of the token (Service Bus's $cbs) is told: its end,
	 * and the time from which tokcache_due says it is due. */
	struct tokcache *tc = tokcache_new(fetch_now, NULL);
	uint64_t exp = 0, renew = 0;
	ck_assert_int_eq(tokcache_times(tc, &exp, &renew), -1);
	int ok = 0;
	fetched_exp = real_ms() + 60000;
	tokcache_get(tc, got_tok, &ok);
	ck_assert(ok);
	ck_assert_int_eq(tokcache_times(tc, &exp, &renew), 0);
	ck_assert(exp == fetched_exp);
	ck_assert_msg(renew >= exp - 30001 && renew <= exp - 29900, "%llu", (unsigned long long)(exp - renew));
	tokcache_invalidate(tc);
	ck_assert_int_eq(tokcache_times(tc, &exp, &renew), -1);
	/* Two hours: due 5 minutes before its end. */
	fetched_exp = real_ms() + 7200000;
	tokcache_get(tc, got_tok, &ok);
	ck_assert_int_eq(tokcache_times(tc, &exp, &renew), 0);
	ck_assert(renew == exp - 300000);
	tokcache_free(tc);
}
END_TEST

Suite *
cosmos_suite(void)
{
	Suite *s = suite_create("cosmos");
	TCase *tc = tcase_create("signing and credentials");
	tcase_add_test(tc, master_signature);
	tcase_add_test(tc, aad_and_dates);
	tcase_add_test(tc, key_text);
	tcase_add_test(tc, uri_encoding);
	tcase_add_test(tc, token_answers);
	tcase_add_test(tc, sources);
	tcase_add_test(tc, renewal);
	tcase_add_test(tc, renewal_times);
	suite_add_tcase(s, tc);
	return s;
}
