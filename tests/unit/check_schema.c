/* JSON Schema validation, JSON-RPC parsing, URI templates, prompt
 * templates, requestState sealing, Base64. */
#include <check.h>
#include <stdio.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "content.h"
#include "json.h"
#include "jsonrpc.h"
#include "registry.h"
#include "reqstate.h"
#include "schema.h"
#include "suites.h"
#include "util.h"

static char err[512];

/* schema_validate, and the same through the patterns compiled at load:
 * both must give the same answer and the same message. */
static int
validate_both(const cJSON *s, const cJSON *v, const char *where)
{
	int rc = schema_validate(s, v, where, err, sizeof(err));
	char why[512];
	struct schema_compiled *sc = schema_compile(s, why, sizeof(why));
	if (sc == NULL) {
		/* Refused at load: the config would not have been read. */
		ck_assert_int_eq(schema_check(s, why, sizeof(why)), -1);
		return rc;
	}
	char err2[512];
	int rc2 = schema_validate_compiled(sc, v, where, err2, sizeof(err2));
	schema_compiled_free(sc);
	ck_assert_int_eq(rc, rc2);
	ck_assert_str_eq(err, err2);
	return rc;
}

static int
valid(const char *schema, const char *value)
{
	cJSON *s = cJSON_Parse(schema), *v = cJSON_Parse(value);
	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_nonnull(v);
	int rc = validate_both(s, v, "arguments");
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

/* Paths are rendered only when a value fails: nested members and items,
 * keywords found whichever order the schema lists them in, and the first
 * of a duplicated keyword used (as a lookup by name would). */
START_TEST(paths_and_keyword_order)
{
	const char *s = "{\"required\":[\"outer\"],\"properties\":{\"outer\":{\"properties\":{\"list\":{"
	    "\"items\":{\"properties\":{\"name\":{\"maxLength\":3,\"type\":\"string\"}},\"type\":\"object\"},"
	    "\"type\":\"array\"}},\"type\":\"object\"}},\"type\":\"object\",\"type\":\"array\"}";
	ck_assert(valid(s, "{\"outer\":{\"list\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}"));
	ck_assert(!valid(s, "{\"outer\":{\"list\":[{\"name\":\"a\"},{\"name\":7}]}}"));
	ck_assert_str_eq(err, "arguments.outer.list[1].name: expected string, got number");
	ck_assert(!valid(s, "{\"outer\":{\"list\":[{\"name\":\"long\"}]}}"));
	ck_assert_str_eq(err, "arguments.outer.list[0].name: must be at most 3 character(s) long");
	ck_assert(!valid(s, "{}"));
	ck_assert_str_eq(err, "arguments: missing required property \"outer\"");
	ck_assert(!valid(s, "[]"));
	ck_assert_str_eq(err, "arguments: expected object, got array");
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

/* The keywords of each schema object gathered at load (schema_compile)
 * must be those validate gathers itself: every schema below, against
 * every value, through both paths (validate_both compares the answer
 * and the message), with keywords in any order, duplicated, in nested
 * and referenced schemas, and a $ref into an enum's value (a schema the
 * load's walk does not gather: looked up, not found, gathered then). */
START_TEST(compiled_keywords)
{
	static const char *const schemas[] = {
		"{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}},\"required\":[\"name\"]}",
		"{\"required\":[\"a\"],\"properties\":{\"a\":{\"maxLength\":2,\"type\":\"string\",\"type\":\"number\"}},"
		    "\"additionalProperties\":{\"type\":\"integer\",\"minimum\":3}}",
		"{\"patternProperties\":{\"^x\":{\"type\":\"boolean\"},\"^y\":{\"enum\":[1,2]}},"
		    "\"additionalProperties\":false,\"propertyNames\":{\"maxLength\":3}}",
		"{\"$defs\":{\"n\":{\"type\":\"number\",\"multipleOf\":2,\"exclusiveMaximum\":9}},"
		    "\"properties\":{\"a\":{\"$ref\":\"#/$defs/n\"},\"b\":{\"items\":{\"$ref\":\"#/$defs/n\"},\"minItems\":1}}}",
		"{\"prefixItems\":[{\"type\":\"string\"},{\"const\":1}],\"items\":{\"type\":\"null\"},"
		    "\"contains\":{\"type\":\"string\"},\"maxItems\":3,\"uniqueItems\":true}",
		"{\"if\":{\"required\":[\"k\"]},\"then\":{\"properties\":{\"k\":{\"minimum\":1}}},"
		    "\"else\":{\"not\":{\"required\":[\"j\"]}},\"anyOf\":[{\"type\":\"object\"},{\"type\":\"array\"}],"
		    "\"allOf\":[{\"maxProperties\":2},{\"minProperties\":0}],\"oneOf\":[{\"type\":\"object\"},{\"type\":\"string\"}]}",
		"{\"enum\":[{\"type\":\"string\"}],\"properties\":{\"e\":{\"$ref\":\"#/enum/0\"}}}",
		"{\"properties\":{\"s\":{\"pattern\":\"^a+$\",\"minLength\":2},\"t\":{\"type\":[\"string\",\"null\"]}}}",
		/* each type name a value can have (and two it cannot), at the top and in members */
		"{\"type\":\"null\"}", "{\"type\":\"boolean\"}", "{\"type\":\"number\"}", "{\"type\":\"integer\"}",
		"{\"type\":\"string\"}", "{\"type\":\"array\"}", "{\"type\":\"object\"}", "{\"type\":\"invalid\"}",
		"{\"type\":\"Object\"}", "{\"type\":7}",
		"{\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"boolean\"},\"e\":{\"type\":\"null\"},"
		    "\"k\":{\"type\":\"number\"},\"s\":{\"type\":\"array\"},\"t\":{\"type\":\"object\"}}}",
	};
	static const char *const values[] = {
		"{}", "{\"name\":\"bench\"}", "{\"name\":1}", "{\"a\":\"x\"}", "{\"a\":5,\"z\":2}",
		"{\"a\":5,\"z\":2.5}", "{\"xa\":true,\"y\":2}", "{\"xa\":1}", "{\"long\":1}", "{\"q\":1}",
		"{\"a\":4,\"b\":[2,8]}", "{\"a\":3}", "{\"b\":[]}", "{\"b\":[10]}", "[\"s\",1,null]",
		"[\"s\",2]", "[1]", "[\"s\",1,null,null]", "[\"s\",\"s\"]", "{\"k\":0}", "{\"k\":1}",
		"{\"j\":1}", "{\"k\":1,\"a\":1,\"b\":2}", "\"str\"", "3", "null", "{\"e\":\"s\"}",
		"{\"e\":1}", "{\"s\":\"aa\",\"t\":null}", "{\"s\":\"a\"}", "{\"s\":\"ab\"}", "{\"t\":1}",
		"true", "false", "2.0", "2.5", "[]", "{\"b\":false,\"e\":null,\"k\":1e2,\"s\":[],\"t\":{}}",
		"{\"a\":9007199254740993}", "{\"a\":1.5}", "{\"b\":0}", "{\"e\":false}", "{\"s\":{}}", "{\"t\":[]}",
	};
	for (size_t i = 0; i < sizeof(schemas) / sizeof(schemas[0]); i++) {
		cJSON *s = cJSON_Parse(schemas[i]);
		ck_assert_ptr_nonnull(s);
		for (size_t j = 0; j < sizeof(values) / sizeof(values[0]); j++) {
			cJSON *v = cJSON_Parse(values[j]);
			ck_assert_ptr_nonnull(v);
			validate_both(s, v, "arguments");
			cJSON_Delete(v);
		}
		cJSON_Delete(s);
	}
}
END_TEST

/* content_result_scan against the tree's check (content_result_tree
 * of json_parse's tree): wherever the scan answers, the tree must agree,
 * with the same isError and resultType; on results of every block type
 * and on every truncation, deletion and replacement of their bytes. */
static int scan_answered;

static void
scan_agrees(const char *json, size_t len)
{
	int se = -1, st = -1, te = -1, tt = -1;
	int scan = content_result_scan(json, len, &se, &st);
	cJSON *r = json_parse(json, len, 0, NULL);
	int tree = content_result_tree(r, &te, &tt);
	cJSON_Delete(r);
	if (!scan)
		return;
	scan_answered++;
	/* What it reads is on one line (it is sent as it is). */
	ck_assert_msg(memchr(json, '\n', len) == NULL && memchr(json, '\r', len) == NULL,
	    "scan read a line break in %.*s", (int)len, json);
	if (tree != 1 || se != te || st != tt)
		ck_abort_msg("scan and tree differ on %.*s: scan %d (%d %d), tree %d (%d %d)",
		    (int)len, json, scan, se, st, tree, te, tt);
}

START_TEST(result_scan)
{
	/* Each one the scan reads itself (and the tree takes). */
	static const char *const read[] = {
		"{\"content\":[{\"type\":\"text\",\"text\":\"Hello, bench!\"}]}",
		"{\"content\":[],\"isError\":true}",
		" {\"isError\":false,\"content\":[{\"text\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\",\"type\":\"text\"}]} ",
		"{\"content\":[{\"type\":\"image\",\"data\":\"AAA=\",\"mimeType\":\"image/png\"},"
		    "{\"type\":\"audio\",\"mimeType\":\"audio/wav\",\"data\":\"\"}],\"resultType\":\"complete\"}",
		"{\"content\":[{\"type\":\"resource\",\"resource\":{\"uri\":\"file:///a\",\"text\":\"t\"}},"
		    "{\"type\":\"resource\",\"resource\":{\"blob\":\"QQ==\",\"uri\":\"u\",\"mimeType\":\"x\"}}],"
		    "\"RESULTTYPE\":1}",
		"{\"content\":[{\"type\":\"resource_link\",\"uri\":\"u\",\"name\":\"n\",\"extra\":[1,{\"a\":null}]}],"
		    "\"structuredContent\":{\"n\":[-0,1.5e3,2E-2,0.25,-12,true,false,null,\"s\"],\"o\":{}},"
		    "\"_meta\":{\"k\":[[],[[]]]},\"isError\":1}",
		"{\t\"content\"\t:\t[ {\"type\" : \"text\" , \"text\" : \"\" } ] , \"resulttype\" : null }",
		"{\"content\":[{\"type\":\"text\",\"text\":\"x\",\"resource\":{\"uri\":\"u\",\"text\":\"t\"}}]}",
	};
	/* And some it leaves to the tree, or that are wrong. */
	static const char *const other[] = {
		"{\"content\":[{\"type\":\"text\",\"text\":\"caf\xc3\xa9\"}]}",
		"{\"content\":[{\"type\":\"text\",\"text\":\"\\u00e9\\ud83d\\ude00\"}]}",
		"{\"content\":[{\"type\":\"t\\u0065xt\",\"text\":\"a\"}]}",
		"{\"content\":[{\"type\":\"te\\/xt\",\"text\":\"a\"}]}",
		"{\"c\\u006fntent\":[]}",
		"{\"content\":[],\"content\":[]}",
		"{\"content\":[{\"type\":\"text\",\"text\":\"a\",\"text\":\"b\"}]}",
		"{\"content\":[],\"x\":{\"a\":1,\"a\":2}}",
		"{\"content\":[{\"type\":\"text\"}]}",
		"{\"content\":[{\"type\":\"video\",\"text\":\"a\"}]}",
		"{\"content\":[{\"type\":1,\"text\":\"a\"}]}",
		"{\"content\":[\"text\"]}",
		"{\"content\":{}}",
		"{\"isError\":true}",
		"[{\"content\":[]}]",
		"{\"content\":[{\"type\":\"resource\",\"resource\":{\"uri\":\"u\"}}]}",
		"{\"content\":[{\"type\":\"resource\",\"resource\":[]}]}",
		"{\"content\":[{\"type\":\"resource_link\",\"uri\":\"u\"}]}",
		"{\"content\":[{\"type\":\"image\",\"data\":\"A\",\"mimeType\":5}]}",
		"{\"content\":[]} x",
		"{\"content\":[],}",
		"{\"content\":[,]}",
		"{\"content\":[]",
		"{\"content\":[],\"n\":01}",
		"{\"content\":[],\"n\":1.}",
		"{\"content\":[],\"n\":-}",
		"{\"content\":[],\"n\":.5}",
		"{\"content\":[],\"n\":1e}",
		"{\"content\":[],\"n\":tru}",
		"{\"content\":[],\"s\":\"a\x01\"}",
		"{\"content\":[],\"s\":\"\\x\"}",
		"{\"content\":[],\"s\":\"\xff\"}",
		"{\"content\":[],\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,"
		    "\"j\":10,\"k\":11,\"l\":12,\"m\":13,\"n\":14,\"o\":15,\"p\":16}",
		"{\"content\":[],\"d\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
		    "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
		"",
		"   ",
		"{}",
	};
	scan_answered = 0;
	for (size_t i = 0; i < sizeof(read) / sizeof(read[0]); i++) {
		int e, t;
		ck_assert_msg(content_result_scan(read[i], strlen(read[i]), &e, &t) == 1, "not read: %s", read[i]);
	}
	static const char repl[] = "\"\\{}[],:0-e.E+ xtnfu\x01\x7f\x80\n\r\t";
	char buf[512];
	for (size_t set = 0; set < 2; set++) {
		const char *const *list = set == 0 ? read : other;
		size_t n = set == 0 ? sizeof(read) / sizeof(read[0]) : sizeof(other) / sizeof(other[0]);
		for (size_t i = 0; i < n; i++) {
			const char *base = list[i];
			size_t len = strlen(base);
			ck_assert(len < sizeof(buf) - 2);
			scan_agrees(base, len);
			for (size_t cut = 0; cut < len; cut++)
				scan_agrees(base, cut);
			for (size_t at = 0; at < len; at++) {
				/* deleted */
				memcpy(buf, base, at);
				memcpy(buf + at, base + at + 1, len - at - 1);
				scan_agrees(buf, len - 1);
				/* replaced, and inserted (every byte of repl in the
				 * results the scan reads, the first few elsewhere: the
				 * test stays well inside check's timeout under ASan) */
				size_t nrepl = set == 0 ? sizeof(repl) - 1 : 8;
				for (size_t k = 0; k < nrepl; k++) {
					memcpy(buf, base, len);
					buf[at] = repl[k];
					scan_agrees(buf, len);
					if (set == 1 && k >= 4)
						continue;
					memcpy(buf, base, at);
					buf[at] = repl[k];
					memcpy(buf + at + 1, base + at, len - at);
					scan_agrees(buf, len + 1);
				}
			}
		}
	}
	ck_assert_int_gt(scan_answered, 1000);
}
END_TEST

/* endpoint.c's Accept check (mcp_internal.h): as strstr would answer,
 * for types at every place of headers, cut short, doubled, and near
 * misses. */
int accepts(const char *accept, const char *type);

START_TEST(accept_header)
{
	static const char *const types[] = { "application/json", "text/event-stream", "a", "*/*" };
	static const char *const parts[] = { "application/json", "text/event-stream", "*/*", "application/*",
	    "applicatio", "application/jso", "text/event-strea", "*/", "*", "aapplication/json", "text/html",
	    "application/json;q=0.9", ", ", " ", "", "tttext/event-stream" };
	size_t np = sizeof(parts) / sizeof(parts[0]);
	char h[256];
	ck_assert(accepts(NULL, "text/event-stream"));
	for (size_t a = 0; a < np; a++)
		for (size_t b = 0; b < np; b++)
			for (size_t c = 0; c < np; c++) {
				snprintf(h, sizeof(h), "%s%s%s", parts[a], parts[b], parts[c]);
				for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
					int want = strstr(h, types[t]) != NULL || strstr(h, "*/*") != NULL;
					ck_assert_msg(accepts(h, types[t]) == want, "accepts(\"%s\", \"%s\")", h, types[t]);
				}
			}
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

/* Patterns are compiled by PCRE2, which bounds what a hostile one costs:
 * glibc's regcomp, used before, took 7 GB for (a*){30000} and seconds of
 * CPU for (){1000}(a?)+ (found by tests/fuzz/fuzz_config.c; each of
 * these ran out of memory or time here then). */
static int
pattern_ok(const char *key, const char *pattern)
{
	cJSON *s = cJSON_CreateObject();
	if (strcmp(key, "pattern") == 0)
		cJSON_AddStringToObject(s, "pattern", pattern);
	else
		cJSON_AddObjectToObject(cJSON_AddObjectToObject(s, "patternProperties"), pattern);
	int rc = schema_check(s, err, sizeof(err));
	/* Compiling it to keep gives the same verdict and message. */
	char why[512];
	struct schema_compiled *sc = schema_compile(s, why, sizeof(why));
	ck_assert_int_eq(sc != NULL, rc == 0);
	if (sc == NULL)
		ck_assert_str_eq(why, err);
	else
		ck_assert_uint_eq(schema_compiled_patterns(sc), 1);
	schema_compiled_free(sc);
	cJSON_Delete(s);
	return rc == 0;
}

/* 1 if str matches pattern, 0 if not, -1 if validation failed otherwise. */
static int
pattern_match(const char *pattern, const char *str)
{
	cJSON *s = cJSON_CreateObject(), *v = cJSON_CreateString(str);
	cJSON_AddStringToObject(s, "pattern", pattern);
	int rc = validate_both(s, v, "x");
	cJSON_Delete(s);
	cJSON_Delete(v);
	if (rc == 0)
		return 1;
	return strstr(err, "does not match the pattern") != NULL ? 0 : -1;
}

START_TEST(pattern_size)
{
	static const char *const fine[] = { "^[a-z]{1,64}@[a-z]{1,255}$", "^\\d{4}-\\d{2}-\\d{2}$",
	    "(a{100}){100}", "a{1,1000}", "a{32767}", "[[:alpha:]]{2,}x+y*z?", "^(ab|cd|ef)+$", "a]{3}",
	    "(x+)+(x+)+(x+)+(x+)+(x+)+(x+)+(x+)+(x+)+(x+)+(x+)+(x+)+(x+)+", "^.{0,1000}$",
	    "^[a-z]?[0-9]?-?[a-z0-9]{0,62}$", "^(\\b[a-z]+\\b ?)*$", "[\\d\\s]+", "^(?=.*[A-Z]).{8,}$",
	    NULL };
	/* Each is refused when the file is read, or compiles within bounds;
	 * either way, validating against it ends. */
	static const char *const hostile[] = { "a{0,4000}", "(a{1000}){1000}", "((a{100}){100}){100}",
	    ".++++++++++++++++++++++++++++++++++++++++", "[a-z]{0,9999}",
	    "(((((((((((((((((a+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)", "(a?){3000}", "(a*){30000}",
	    "((a?){100}){300}", "(a?b?c?){10000}", "(a|){3000}", "(^$){5000}", "(^|(a?){0,100})*",
	    "(\\b(a?){0,30})*", "((^|(a?){0,10})*){5}", "(a?){1000}(b?)*", "(){1000}(a?)+",
	    "(a|){300,400}((a?)*)*((){1,101}|(ab)?)+", "(((((a|)?.?){100,100}|(()?))?|(ab)?)*|()?)?",
	    "((a?)?()+(a+)?){30,30}", "(ab){30000}", NULL };
	char subject[2048];
	memset(subject, 'a', sizeof(subject) - 2);
	subject[sizeof(subject) - 2] = '!';
	subject[sizeof(subject) - 1] = '\0';
	for (size_t i = 0; fine[i] != NULL; i++) {
		ck_assert_msg(pattern_ok("pattern", fine[i]), "%s refused: %s", fine[i], err);
		ck_assert_msg(pattern_ok("patternProperties", fine[i]), "%s refused as a name: %s", fine[i], err);
	}
	for (size_t i = 0; hostile[i] != NULL; i++) {
		if (pattern_ok("pattern", hostile[i]))
			(void)pattern_match(hostile[i], subject);
		else
			ck_assert_msg(strstr(err, "not a regular expression mcpd can use: ") != NULL, "%s", err);
		(void)pattern_ok("patternProperties", hostile[i]);
	}
	ck_assert(!pattern_ok("pattern", "(ab){30000}"));
	ck_assert(strstr(err, "too large") != NULL);
	ck_assert(!pattern_ok("patternProperties", "(unclosed"));
	ck_assert(strstr(err, "missing closing parenthesis") != NULL);
	/* Backtracking that would run for years stops at the match limit,
	 * as a validation error that says so, not as a match or a hang. */
	ck_assert_int_eq(pattern_match("^(a|aa)+$", subject), -1);
	ck_assert(strstr(err, "took too long") != NULL);
	ck_assert_int_eq(pattern_match("^(a|aa)+!$", subject), 1);
	/* ECMA-262, as JSON Schema says: \d in a class, lookahead, $ only at
	 * the very end. */
	ck_assert_int_eq(pattern_match("^[\\d\\s]+$", "1 2"), 1);
	ck_assert_int_eq(pattern_match("^(?=.*[A-Z]).{8,}$", "abcdefgh"), 0);
	ck_assert_int_eq(pattern_match("^(?=.*[A-Z]).{8,}$", "abcdEfgh"), 1);
	ck_assert_int_eq(pattern_match("^abc$", "abc\n"), 0);
	ck_assert_int_eq(pattern_match("^\\u00e9$", "\xc3\xa9"), 1);
	/* Backreferences: backtracking on strings a client chooses, and
	 * JSON Schema's subset leaves them out. */
	ck_assert(!pattern_ok("pattern", "^(a+)+\\1$"));
	ck_assert(strstr(err, "backreferences") != NULL);
	ck_assert(!pattern_ok("patternProperties", "(x)\\9"));
	ck_assert(!pattern_ok("pattern", "(?<n>x)\\k<n>"));
	ck_assert(pattern_ok("pattern", "[\\1]x"));         /* a class: the character 1 */
	ck_assert(pattern_ok("pattern", "a\\\\1"));       /* an escaped backslash, then 1 */
	/* Validation refuses them too (a string against the pattern). */
	cJSON *s = cJSON_Parse("{\"pattern\":\"(a)\\\\1\"}");
	cJSON *v = cJSON_CreateString("aa");
	ck_assert_int_eq(schema_validate(s, v, "x", err, sizeof(err)), -1);
	ck_assert(strstr(err, "does not compile") != NULL);
	cJSON_Delete(s);
	cJSON_Delete(v);
}
END_TEST

/* Patterns compiled once at load: every pattern and patternProperties
 * name in the schema (through $defs too), reused match after match, with
 * the same answers as compiling on the fly. */
START_TEST(compiled_patterns)
{
	cJSON *s = cJSON_Parse("{\"type\":\"object\",\"properties\":{"
	    "\"id\":{\"type\":\"string\",\"pattern\":\"^[a-z]{2}-\\\\d+$\"},"
	    "\"tag\":{\"$ref\":\"#/$defs/tag\"}},"
	    "\"patternProperties\":{\"^x-\":{\"type\":\"integer\"},\"^y-[0-9]+$\":{\"type\":\"string\"}},"
	    "\"additionalProperties\":false,"
	    "\"$defs\":{\"tag\":{\"pattern\":\"^(a|aa)+$\"}},"
	    "\"default\":{\"pattern\":\"(not a schema\"}}");
	ck_assert_ptr_nonnull(s);
	struct schema_compiled *sc = schema_compile(s, err, sizeof(err));
	ck_assert_msg(sc != NULL, "%s", err);
	ck_assert_uint_eq(schema_compiled_patterns(sc), 4);
	static const struct {
		const char *value;
		int ok;
		const char *msg;
	} cases[] = {
		{ "{\"id\":\"ab-12\"}", 1, NULL },
		{ "{\"id\":\"ab-\"}", 0, "arguments.id: does not match the pattern" },
		{ "{\"x-a\":1,\"y-7\":\"s\"}", 1, NULL },
		{ "{\"x-a\":\"s\"}", 0, "arguments.x-a: expected integer, got string" },
		{ "{\"y-7a\":\"s\"}", 0, "unexpected property \"y-7a\"" },
		{ "{\"tag\":\"aaa\"}", 1, NULL },
		{ "{\"tag\":\"aab\"}", 0, "does not match the pattern \"^(a|aa)+$\"" },
		{ "{\"id\":\"ab-12\",\"x-b\":2}", 1, NULL },
	};
	/* Twice round: the reused match data holds nothing over. */
	for (int round = 0; round < 2; round++)
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			cJSON *v = cJSON_Parse(cases[i].value);
			int rc = schema_validate_compiled(sc, v, "arguments", err, sizeof(err));
			ck_assert_msg(rc == (cases[i].ok ? 0 : -1), "%s: %s", cases[i].value, err);
			if (!cases[i].ok)
				ck_assert_msg(strstr(err, cases[i].msg) != NULL, "%s: %s", cases[i].value, err);
			ck_assert_int_eq(validate_both(s, v, "arguments"), rc);
			cJSON_Delete(v);
		}
	/* Hostile backtracking still stops at the match limit (JIT or not),
	 * and the next match on the same context is fine. */
	char subject[2048 + 16];
	strcpy(subject, "{\"tag\":\"");
	memset(subject + 8, 'a', 2000);
	strcpy(subject + 2008, "b\"}");
	cJSON *v = cJSON_Parse(subject);
	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(schema_validate_compiled(sc, v, "arguments", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "took too long") != NULL, "%s", err);
	cJSON_Delete(v);
	v = cJSON_Parse("{\"tag\":\"aa\"}");
	ck_assert_int_eq(schema_validate_compiled(sc, v, "arguments", err, sizeof(err)), 0);
	cJSON_Delete(v);
	schema_compiled_free(sc);
	/* A pattern that does not compile: no compiled schema, the message
	 * schema_check gives. */
	cJSON_Delete(s);
	s = cJSON_Parse("{\"patternProperties\":{\"(x\":{}}}");
	ck_assert_ptr_null(schema_compile(s, err, sizeof(err)));
	ck_assert(strstr(err, "patternProperties name \"(x\" is not a regular expression") != NULL);
	cJSON_Delete(s);
	s = cJSON_Parse("[1]");
	ck_assert_ptr_null(schema_compile(s, err, sizeof(err)));
	cJSON_Delete(s);
	schema_compiled_free(NULL);
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
	int rc = jsonrpc_parse(NULL, body, strlen(body), 16, &m, &code, msg, sizeof(msg), &id);
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

/* What binds a requestState to its arguments: the SHA-256 of their
 * print, in lower-case hex; the same across versions, since a state
 * sealed by one instance is checked by another. */
START_TEST(request_digest)
{
	char d[65];
	memset(d, 'x', sizeof(d));
	cJSON *v = cJSON_Parse("{\"name\":\"bench\"}");
	json_digest(v, d);
	ck_assert_str_eq(d, "17b79dc6361c432f366ab4886b835e193dfc8014487b42c97fcd40f430bff702");
	cJSON_Delete(v);
	json_digest(NULL, d);
	ck_assert_str_eq(d, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
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
	/* "SGVsbG9" would be "Hello" too with its last 2 bits set: refused. */
	ck_assert_int_eq(base64_decode("SGVsbG9=", 8, back, &n), -1);
	ck_assert_int_eq(base64_decode("SGVsbA", 6, back, &n), 0);
	ck_assert_int_eq(base64_decode("SGVsbB", 6, back, &n), -1);
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
	tcase_add_test(tc, paths_and_keyword_order);
	tcase_add_test(tc, schema_checks);
	tcase_add_test(tc, pattern_size);
	tcase_add_test(tc, compiled_patterns);
	tcase_add_test(tc, compiled_keywords);
	tcase_add_test(tc, result_scan);
	tcase_add_test(tc, accept_header);
	tcase_add_test(tc, utf8);
	tcase_add_test(tc, jsonrpc);
	tcase_add_test(tc, templates);
	tcase_add_test(tc, request_state);
	tcase_add_test(tc, request_state_long_mac);
	tcase_add_test(tc, request_digest);
	tcase_add_test(tc, base64);
	suite_add_tcase(s, tc);
	return s;
}
