/* The introspection plugin's judgement of RFC 7662 answers
 * (plugins/introspection/introspect.c, linked in as it is). */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "../../plugins/introspection/introspect.h"
#include "suites.h"

static const int64_t NOW = 1800000000;
static char err[600];

static const char *const AUD[] = { "https://mcp.example.com/mcp", "api://mcpd" };
static const char *const USERS[] = { "sub", "username" };
static const char *const NEEDED[] = { "tools.read" };

static struct introspect_policy
policy(void)
{
	struct introspect_policy p = { "https://id.example.com", AUD, 2, 1, 60, USERS, 2, NULL, 0 };
	return p;
}

/* The answer's JSON with single quotes for double ones (easier to read). */
static enum introspect_result
judge(const struct introspect_policy *p, const char *json, struct introspect_principal *pr)
{
	static char buf[8192];
	snprintf(buf, sizeof(buf), "%s", json);
	for (char *c = buf; *c; c++)
		if (*c == '\'')
			*c = '"';
	err[0] = '\0';
	return introspect_check(p, buf, strlen(buf), NOW, pr, err, sizeof(err));
}

/* A refusal of kind want whose message holds why. */
static void
refused(const struct introspect_policy *p, const char *json, enum introspect_result want, const char *why)
{
	struct introspect_principal pr;
	enum introspect_result rc = judge(p, json, &pr);
	ck_assert_msg(rc == want, "%s: got %d (%s)", json, rc, err);
	ck_assert_msg(strstr(err, why) != NULL, "%s: \"%s\" lacks \"%s\"", json, err, why);
	ck_assert_ptr_null(pr.user);
}

#define BASE "'active':true,'iss':'https://id.example.com','aud':'https://mcp.example.com/mcp'"
#define GOOD BASE ",'exp':1800000300"

START_TEST(accepted)
{
	struct introspect_policy p = policy();
	struct introspect_principal pr;
	ck_assert_int_eq(judge(&p, "{" GOOD ",'sub':'alice','client_id':'cli','scope':'  tools.read  tools.admin ',"
	    "'token_type':'Bearer','iat':1799999000,'nbf':1799999000}", &pr), INTROSPECT_OK);
	ck_assert_str_eq(pr.user, "alice");
	ck_assert_str_eq(pr.client_id, "cli");
	ck_assert_str_eq(pr.scopes, "tools.read tools.admin");
	ck_assert_int_eq(pr.expires_at, 1800000300);
	introspect_principal_clear(&pr);
	/* aud as an array; no scope, no client, no exp; username when no sub. */
	ck_assert_int_eq(judge(&p, "{'active':true,'iss':'https://id.example.com','aud':['x','api://mcpd'],"
	    "'username':'bob'}", &pr), INTROSPECT_OK);
	ck_assert_str_eq(pr.user, "bob");
	ck_assert_ptr_null(pr.client_id);
	ck_assert_str_eq(pr.scopes, "");
	ck_assert_int_eq(pr.expires_at, 0);
	introspect_principal_clear(&pr);
	/* Access token types of RFC 7662 and RFC 8693, any case. */
	const char *types[] = { "bearer", "access_token", "urn:ietf:params:oauth:token-type:access_token" };
	for (size_t i = 0; i < 3; i++) {
		char json[300];
		snprintf(json, sizeof(json), "{" GOOD ",'sub':'a','token_type':'%s'}", types[i]);
		ck_assert_int_eq(judge(&p, json, &pr), INTROSPECT_OK);
		introspect_principal_clear(&pr);
	}
	/* Within the clock skew. */
	ck_assert_int_eq(judge(&p, "{'active':true,'iss':'https://id.example.com','aud':'api://mcpd','sub':'a',"
	    "'exp':1799999950,'nbf':1800000050}", &pr), INTROSPECT_OK);
	introspect_principal_clear(&pr);
}
END_TEST

START_TEST(denied)
{
	struct introspect_policy p = policy();
	refused(&p, "{'active':false}", INTROSPECT_DENIED, "not active");
	refused(&p, "{" BASE ",'sub':'a','exp':1799999000}", INTROSPECT_DENIED, "the token expired");
	refused(&p, "{" GOOD ",'sub':'a','nbf':1800001000}", INTROSPECT_DENIED, "not valid yet");
	refused(&p, "{" BASE ",'sub':'a','exp':'soon'}", INTROSPECT_DENIED, "exp is not a number");
	refused(&p, "{'active':true,'iss':'https://other','aud':'api://mcpd','sub':'a'}", INTROSPECT_DENIED,
	    "wrong issuer");
	refused(&p, "{'active':true,'aud':'api://mcpd','sub':'a'}", INTROSPECT_DENIED, "no issuer (iss)");
	refused(&p, "{'active':true,'iss':'https://id.example.com','aud':['x','y'],'sub':'a'}", INTROSPECT_DENIED,
	    "wrong audience");
	refused(&p, "{'active':true,'iss':'https://id.example.com','aud':'https://mcp.example.com','sub':'a'}",
	    INTROSPECT_DENIED, "wrong audience");
	refused(&p, "{'active':true,'iss':'https://id.example.com','sub':'a'}", INTROSPECT_DENIED, "no audience (aud)");
	refused(&p, "{'active':true,'iss':'https://id.example.com','aud':7,'sub':'a'}", INTROSPECT_DENIED,
	    "neither a string nor an array");
	refused(&p, "{" GOOD ",'sub':'a','token_type':'refresh_token'}", INTROSPECT_DENIED, "not an access token");
	refused(&p, "{" GOOD ",'sub':'a','token_type':'urn:ietf:params:oauth:token-type:refresh_token'}",
	    INTROSPECT_DENIED, "not an access token");
	refused(&p, "{" GOOD ",'sub':'a','token_type':'DPoP','cnf':{'jkt':'x'}}", INTROSPECT_DENIED,
	    "not an access token");
	refused(&p, "{" GOOD ",'sub':'a','cnf':{'x5t#S256':'x'}}", INTROSPECT_DENIED, "bound to a key (cnf)");
	refused(&p, "{" GOOD ",'client_id':'c'}", INTROSPECT_DENIED, "no user (sub)");
	refused(&p, "{" GOOD ",'sub':''}", INTROSPECT_DENIED, "no user (sub)");
	refused(&p, "{" GOOD ",'sub':'a\\u0001b'}", INTROSPECT_DENIED, "control characters");
	refused(&p, "{" GOOD ",'sub':'a','scope':['tools.read']}", INTROSPECT_DENIED, "scope is not a string");
	refused(&p, "{" GOOD ",'sub':'a','scope':'tools.read \\u00e9'}", INTROSPECT_DENIED,
	    "a character that no scope may hold");
	p.required_scopes = NEEDED;
	p.nrequired_scopes = 1;
	refused(&p, "{" GOOD ",'sub':'a','scope':'tools.reader tools.admin'}", INTROSPECT_DENIED,
	    "lacks the required scope tools.read");
}
END_TEST

START_TEST(policy_choices)
{
	struct introspect_policy p = policy();
	struct introspect_principal pr;
	/* No aud accepted when the audience is not required; a wrong one never. */
	p.audience_required = 0;
	ck_assert_int_eq(judge(&p, "{'active':true,'iss':'https://id.example.com','sub':'a'}", &pr), INTROSPECT_OK);
	introspect_principal_clear(&pr);
	refused(&p, "{'active':true,'iss':'https://id.example.com','aud':'x','sub':'a'}", INTROSPECT_DENIED,
	    "wrong audience");
	/* No issuer configured: iss is not looked at. */
	p.issuer = NULL;
	ck_assert_int_eq(judge(&p, "{'active':true,'iss':'anything','sub':'a'}", &pr), INTROSPECT_OK);
	introspect_principal_clear(&pr);
	/* user_claim: client_id, for client credentials answers without sub. */
	static const char *const by_client[] = { "sub", "client_id" };
	p.user_claims = by_client;
	ck_assert_int_eq(judge(&p, "{'active':true,'client_id':'svc'}", &pr), INTROSPECT_OK);
	ck_assert_str_eq(pr.user, "svc");
	ck_assert_str_eq(pr.client_id, "svc");
	introspect_principal_clear(&pr);
	/* No skew: an exp of now is past. */
	p.skew = 0;
	refused(&p, "{'active':true,'sub':'a','exp':1800000000}", INTROSPECT_DENIED, "expired");
}
END_TEST

START_TEST(bad_answers)
{
	struct introspect_policy p = policy();
	refused(&p, "<html>", INTROSPECT_BAD_ANSWER, "not a JSON object");
	refused(&p, "[true]", INTROSPECT_BAD_ANSWER, "not a JSON object");
	refused(&p, "{}", INTROSPECT_BAD_ANSWER, "no boolean \"active\"");
	refused(&p, "{'active':'true'}", INTROSPECT_BAD_ANSWER, "no boolean \"active\"");
	refused(&p, "{'active':false,'active':true}", INTROSPECT_BAD_ANSWER, "a member twice");
	/* Nested deeper than the limit: refused before it is parsed. */
	char deep[200] = "{'active':true,'x':";
	size_t n = strlen(deep);
	for (int i = 0; i < 40; i++)
		deep[n++] = '[';
	for (int i = 0; i < 40; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	deep[n] = '\0';
	refused(&p, deep, INTROSPECT_BAD_ANSWER, "not a JSON object");
	/* Too many members. */
	static char many[16384];
	n = (size_t)snprintf(many, sizeof(many), "{'active':true");
	for (int i = 0; i < INTROSPECT_MAX_MEMBERS + 1; i++)
		n += (size_t)snprintf(many + n, sizeof(many) - n, ",'m%d':1", i);
	snprintf(many + n, sizeof(many) - n, "}");
	struct introspect_principal pr;
	ck_assert_int_eq(introspect_check(&p, "x", 1, NOW, &pr, err, sizeof(err)), INTROSPECT_BAD_ANSWER);
	ck_assert_int_eq(judge(&p, many, &pr), INTROSPECT_BAD_ANSWER);
	ck_assert_ptr_nonnull(strstr(err, "more than 256 members"));
}
END_TEST

START_TEST(oauth_errors)
{
	char buf[80];
	const char *j = "{\"error\":\"invalid_client\",\"error_description\":\"client authentication failed\"}";
	introspect_oauth_error(j, strlen(j), buf, sizeof(buf));
	ck_assert_str_eq(buf, "invalid_client");
	introspect_oauth_error("oops", 4, buf, sizeof(buf));
	ck_assert_str_eq(buf, "");
	j = "{\"error\":\"bad\\nthing \\\"x\\\"\"}";
	introspect_oauth_error(j, strlen(j), buf, sizeof(buf));
	ck_assert_str_eq(buf, "bad?thing?\"x\"");
}
END_TEST

Suite *
introspection_suite(void)
{
	Suite *s = suite_create("introspection");
	TCase *tc = tcase_create("introspection");
	tcase_add_test(tc, accepted);
	tcase_add_test(tc, denied);
	tcase_add_test(tc, policy_choices);
	tcase_add_test(tc, bad_answers);
	tcase_add_test(tc, oauth_errors);
	suite_add_tcase(s, tc);
	return s;
}
