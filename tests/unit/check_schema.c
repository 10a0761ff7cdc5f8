/* JSON Schema validation, JSON-RPC parsing, URI templates, prompt
 * templates, requestState sealing, Base64. */
#include <check.h>
#include <stdio.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "content.h"
#include "jsonrpc.h"
#include "registry.h"
#include "reqstate.h"
#include "schema.h"
#include "suites.h"
#include "util.h"

static char err[512];

static int
valid(const char *schema, const char *value)
{
	cJSON *s = cJSON_Parse(schema), *v = cJSON_Parse(value);
	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_nonnull(v);
	int rc = schema_validate(s, v, "arguments", err, sizeof(err));
	cJSON_Delete(s);
	cJSON_Delete(v);
	return rc == 0;
}

START_TEST(types_and_required)
{
	const char *s = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
	    "\"n\":{\"type\":\"integer\"},\"x\":{\"type\":[\"number\",\"null\"]}},\"required\":[\"name\"]}";
	ck_assert(valid(s, "{\"name\":\"a\",\"n\":3,\"x\":null}"));
	ck_assert(!valid(s, "{\"n\":3}"));
	ck_assert_str_eq(err, "arguments: missing required property \"name\"");
	ck_assert(!valid(s, "{\"name\":5}"));
	ck_assert_str_eq(err, "arguments.name: expected string, got number");
	ck_assert(!valid(s, "{\"name\":\"a\",\"n\":2.5}"));
	ck_assert_str_eq(err, "arguments.n: expected integer, got number");
	ck_assert(valid(s, "{\"name\":\"a\",\"n\":2.0}"));
	ck_assert(!valid(s, "{\"name\":\"a\",\"x\":\"s\"}"));
	ck_assert_str_eq(err, "arguments.x: expected number or null, got string");
}
END_TEST

START_TEST(ranges_lengths_patterns)
{
	ck_assert(valid("{\"minimum\":1,\"maximum\":10}", "10"));
	ck_assert(!valid("{\"minimum\":1,\"maximum\":10}", "11"));
	ck_assert(!valid("{\"exclusiveMinimum\":0}", "0"));
	ck_assert(valid("{\"multipleOf\":0.5}", "2.5"));
	ck_assert(!valid("{\"multipleOf\":0.5}", "2.3"));
	ck_assert(valid("{\"minLength\":2,\"maxLength\":3}", "\"héé\""));     /* code points */
	ck_assert(!valid("{\"maxLength\":2}", "\"héé\""));
	ck_assert(valid("{\"pattern\":\"^\\\\d{3}-\\\\w+$\"}", "\"123-abc_9\""));
	ck_assert(!valid("{\"pattern\":\"^\\\\d{3}$\"}", "\"12a\""));
	ck_assert(valid("{\"enum\":[\"a\",1,null]}", "1"));
	ck_assert(!valid("{\"enum\":[\"a\",1,null]}", "2"));
	ck_assert(valid("{\"const\":{\"k\":[1]}}", "{\"k\":[1]}"));
}
END_TEST

START_TEST(structure)
{
	const char *s = "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
	    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1,\"uniqueItems\":true},"
	    "\"addr\":{\"$ref\":\"#/$defs/addr\"}},\"$defs\":{\"addr\":{\"type\":\"object\","
	    "\"properties\":{\"zip\":{\"type\":\"string\",\"pattern\":\"^[0-9]{5}$\"}},\"required\":[\"zip\"]}}}";
	ck_assert(valid(s, "{\"tags\":[\"a\",\"b\"],\"addr\":{\"zip\":\"12345\"}}"));
	ck_assert(!valid(s, "{\"tags\":[\"a\",\"a\"]}"));
	ck_assert(!valid(s, "{\"tags\":[]}"));
	ck_assert(!valid(s, "{\"tags\":[1]}"));
	ck_assert_str_eq(err, "arguments.tags[0]: expected string, got number");
	ck_assert(!valid(s, "{\"addr\":{\"zip\":\"1234\"}}"));
	ck_assert(!valid(s, "{\"other\":1}"));
	ck_assert_str_eq(err, "arguments: unexpected property \"other\"");
	const char *alt = "{\"anyOf\":[{\"required\":[\"a\"]},{\"required\":[\"b\"]}],"
	    "\"oneOf\":[{\"required\":[\"x\"]},{\"required\":[\"y\"]}],"
	    "\"if\":{\"properties\":{\"m\":{\"const\":\"p\"}},\"required\":[\"m\"]},\"then\":{\"required\":[\"p\"]}}";
	ck_assert(valid(alt, "{\"a\":1,\"x\":1}"));
	ck_assert(!valid(alt, "{\"x\":1}"));
	ck_assert(!valid(alt, "{\"a\":1,\"x\":1,\"y\":1}"));
	ck_assert(!valid(alt, "{\"a\":1,\"x\":1,\"m\":\"p\"}"));
	ck_assert(valid(alt, "{\"a\":1,\"x\":1,\"m\":\"p\",\"p\":0}"));
	ck_assert(valid("{\"not\":{\"type\":\"string\"}}", "1"));
	ck_assert(!valid("{\"not\":{\"type\":\"string\"}}", "\"s\""));
}
END_TEST

START_TEST(schema_checks)
{
	cJSON *s = cJSON_Parse("{\"properties\":{\"a\":{\"$ref\":\"#/$defs/missing\"}}}");
	ck_assert_int_eq(schema_check(s, err, sizeof(err)), -1);
	cJSON_Delete(s);
	s = cJSON_Parse("{\"properties\":{\"a\":{\"pattern\":\"(unclosed\"}}}");
	ck_assert_int_eq(schema_check(s, err, sizeof(err)), -1);
	cJSON_Delete(s);
	/* A $ref cycle is bounded, not a crash. */
	s = cJSON_Parse("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/a\"}},\"$ref\":\"#/$defs/a\"}");
	cJSON *v = cJSON_Parse("1");
	ck_assert_int_eq(schema_validate(s, v, "x", err, sizeof(err)), -1);
	cJSON_Delete(s);
	cJSON_Delete(v);
}
END_TEST

/* regcomp copies what a count repeats: patterns that would take too much
 * memory to compile are refused when the file is read. Found by
 * tests/fuzz/fuzz_config.c (a "+" repeated 70 times ran out of memory). */
static int
pattern_ok(const char *key, const char *pattern)
{
	cJSON *s = cJSON_CreateObject();
	if (strcmp(key, "pattern") == 0)
		cJSON_AddStringToObject(s, "pattern", pattern);
	else
		cJSON_AddObjectToObject(cJSON_AddObjectToObject(s, "patternProperties"), pattern);
	int rc = schema_check(s, err, sizeof(err));
	cJSON_Delete(s);
	return rc == 0;
}

START_TEST(pattern_size)
{
	static const char *const fine[] = { "^[a-z]{1,64}@[a-z]{1,255}$", "^\\d{4}-\\d{2}-\\d{2}$",
	    "(a{100}){100}", "((a{30}){30}){30}", "a{1,1000}", "a{32767}", "[[:alpha:]]{2,}x+y*z?",
	    "^(ab|cd|ef)+$", "a]{3}", "(x+)+(x+)+(x+)+(x+)+(x+)+(x+)+(x+)+(x+)+(x+)+(x+)+(x+)+(x+)+",
	    NULL };
	static const char *const big[] = { "a{0,4000}", "(a{1000}){1000}", "((a{100}){100}){100}",
	    ".++++++++++++++++++++++++++++++++++++++++",
	    "[a-z]{0,9999}", "(((((((((((((((((a+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)", NULL };
	for (size_t i = 0; fine[i] != NULL; i++)
		ck_assert_msg(pattern_ok("pattern", fine[i]), "%s refused: %s", fine[i], err);
	for (size_t i = 0; big[i] != NULL; i++) {
		ck_assert_msg(!pattern_ok("pattern", big[i]), "%s accepted", big[i]);
		ck_assert(strstr(err, "repeats too much") != NULL);
		ck_assert_msg(!pattern_ok("patternProperties", big[i]), "%s accepted as a name", big[i]);
	}
	ck_assert(!pattern_ok("patternProperties", "(unclosed"));
	/* Validation refuses them too (a string against the pattern). */
	cJSON *s = cJSON_Parse("{\"pattern\":\"a{0,4000}\"}");
	cJSON *v = cJSON_CreateString("aaa");
	ck_assert_int_eq(schema_validate(s, v, "x", err, sizeof(err)), -1);
	cJSON_Delete(s);
	cJSON_Delete(v);
}
END_TEST

START_TEST(utf8)
{
	ck_assert(utf8_valid("plain", 5));
	ck_assert(utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
	ck_assert(!utf8_valid("\xff", 1));
	ck_assert(!utf8_valid("\xc0\xaf", 2));             /* overlong */
	ck_assert(!utf8_valid("\xed\xa0\x80", 3));         /* surrogate */
	ck_assert(!utf8_valid("\xe2\x82", 2));             /* truncated */
	char *s = utf8_sanitize("a\xff" "b", 3);
	ck_assert_str_eq(s, "a\xef\xbf\xbd" "b");
	free(s);
}
END_TEST

static int
parse_code(const char *body)
{
	struct jsonrpc_msg m;
	int code = 0;
	char msg[256];
	cJSON *id = NULL;
	int rc = jsonrpc_parse(body, strlen(body), 16, &m, &code, msg, sizeof(msg), &id);
	cJSON_Delete(id);
	if (rc == 0) {
		jsonrpc_free(&m);
		return 0;
	}
	return code;
}

START_TEST(jsonrpc)
{
	ck_assert_int_eq(parse_code("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}"), 0);
	ck_assert_int_eq(parse_code("{\"jsonrpc\":\"2.0\",\"method\":\"n\"}"), 0);
	ck_assert_int_eq(parse_code("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"result\":{}}"), 0);
	ck_assert_int_eq(parse_code("{"), JSONRPC_PARSE_ERROR);
	ck_assert_int_eq(parse_code("{} x"), JSONRPC_PARSE_ERROR);
	ck_assert_int_eq(parse_code("[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]"), JSONRPC_PARSE_ERROR);
	ck_assert_int_eq(parse_code("{\"s\":\"\\u0000\"}"), JSONRPC_PARSE_ERROR);
	ck_assert_int_eq(parse_code("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\",\"s\":\"\\\\u0000\"}"), 0);
	ck_assert_int_eq(parse_code("[]"), JSONRPC_INVALID_REQUEST);
	ck_assert_int_eq(parse_code("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"p\"}"), JSONRPC_INVALID_REQUEST);
	ck_assert_int_eq(parse_code("{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"p\"}"), JSONRPC_INVALID_REQUEST);
	ck_assert_int_eq(parse_code("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1,\"error\":{}}"), JSONRPC_INVALID_REQUEST);
	ck_assert_int_eq(parse_code("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\",\"params\":[]}"), JSONRPC_INVALID_REQUEST);
	ck_assert_int_eq(json_depth_exceeds("{\"a\":\"[[[[[[\"}", 13, 2), 0);
}
END_TEST

START_TEST(templates)
{
	cJSON *vars = NULL;
	ck_assert(uri_template_match("test://template/{id}/data", "test://template/123/data", &vars));
	ck_assert_str_eq(cJSON_GetObjectItem(vars, "id")->valuestring, "123");
	cJSON_Delete(vars);
	ck_assert(!uri_template_match("test://template/{id}/data", "test://template/1/2/data", NULL));
	ck_assert(!uri_template_match("test://template/{id}/data", "test://template//data", NULL));
	ck_assert(uri_template_match("users://{a}.{b}", "users://x.y", &vars));
	ck_assert_str_eq(cJSON_GetObjectItem(vars, "b")->valuestring, "y");
	cJSON_Delete(vars);
	cJSON *args = cJSON_Parse("{\"who\":\"Ann\",\"n\":3}");
	char *r = template_render("Hi {{who}}, {{ missing }}{{n}}! {{", args);
	ck_assert_str_eq(r, "Hi Ann, ! {{");
	free(r);
	cJSON_Delete(args);
}
END_TEST

START_TEST(request_state)
{
	unsigned char key[32], other[32];
	ck_assert_int_eq(reqstate_key(NULL, key, err, sizeof(err)), 0);
	memset(other, 7, sizeof(other));
	cJSON *p = cJSON_Parse("{\"m\":\"tools/call\",\"a\":{\"k\":{\"x\":1}}}");
	char *tok = reqstate_seal(key, p, 60000);
	cJSON_Delete(p);
	ck_assert_ptr_nonnull(tok);
	cJSON *back = reqstate_open(key, tok, err, sizeof(err));
	ck_assert_ptr_nonnull(back);
	ck_assert_str_eq(cJSON_GetObjectItem(back, "m")->valuestring, "tools/call");
	cJSON_Delete(back);
	ck_assert_ptr_null(reqstate_open(other, tok, err, sizeof(err)));      /* another key */
	tok[3] ^= 1;
	ck_assert_ptr_null(reqstate_open(key, tok, err, sizeof(err)));        /* tampered */
	ck_assert_str_eq(err, "requestState integrity check failed");
	free(tok);
	p = cJSON_Parse("{}");
	tok = reqstate_seal(key, p, 1);
	cJSON_Delete(p);
	struct timespec ts = { 0, 20000000 };
	nanosleep(&ts, NULL);
	ck_assert_ptr_null(reqstate_open(key, tok, err, sizeof(err)));        /* expired */
	ck_assert(strstr(err, "expired") != NULL);
	free(tok);
}
END_TEST

/* The MAC part is 43 characters: longer ones (up to the 88 once let
 * through, which decode to 66 bytes) are refused before they are decoded
 * into a fixed buffer. Found by tests/fuzz/fuzz_reqstate.c; ASan sees it. */
START_TEST(request_state_long_mac)
{
	unsigned char key[32];
	ck_assert_int_eq(reqstate_key(NULL, key, err, sizeof(err)), 0);
	char tok[128];
	for (size_t n = 44; n <= 100; n++) {
		snprintf(tok, sizeof(tok), "e30.%.*s", (int)n,
		    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
		ck_assert_ptr_null(reqstate_open(key, tok, err, sizeof(err)));
		ck_assert_str_eq(err, "requestState integrity check failed");
	}
	/* A sealed token with its MAC padded still opens. */
	cJSON *p = cJSON_Parse("{}");
	char *sealed = reqstate_seal(key, p, 60000);
	cJSON_Delete(p);
	snprintf(tok, sizeof(tok), "%s=", sealed);
	free(sealed);
	cJSON *back = reqstate_open(key, tok, err, sizeof(err));
	ck_assert_ptr_nonnull(back);
	cJSON_Delete(back);
}
END_TEST

START_TEST(base64)
{
	char out[64];
	unsigned char back[64];
	size_t n;
	ck_assert_uint_eq(base64_encode((const unsigned char *)"Hello", 5, out), 8);
	ck_assert_str_eq(out, "SGVsbG8=");
	ck_assert_int_eq(base64_decode("SGVsbG8=", 8, back, &n), 0);
	ck_assert_uint_eq(n, 5);
	ck_assert(memcmp(back, "Hello", 5) == 0);
	ck_assert_int_eq(base64_decode("SGV$bG8=", 8, back, &n), -1);
	char tok[64];
	ck_assert_int_eq(random_token(tok, 24), 0);
	ck_assert_uint_eq(strlen(tok), 32);
	ck_assert(strpbrk(tok, "+/=") == NULL);
}
END_TEST

Suite *
schema_suite(void)
{
	Suite *s = suite_create("schema and protocol");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, types_and_required);
	tcase_add_test(tc, ranges_lengths_patterns);
	tcase_add_test(tc, structure);
	tcase_add_test(tc, schema_checks);
	tcase_add_test(tc, pattern_size);
	tcase_add_test(tc, utf8);
	tcase_add_test(tc, jsonrpc);
	tcase_add_test(tc, templates);
	tcase_add_test(tc, request_state);
	tcase_add_test(tc, request_state_long_mac);
	tcase_add_test(tc, base64);
	suite_add_tcase(s, tc);
	return s;
}
