/* JSON as RFC 8259 has it: the strict parser (raw control characters,
 * whitespace, number grammar, duplicate names, \u0000), numbers kept as
 * written through parsing and printing (ids, arguments), and schema
 * keywords that compare numbers by value, not by their nearest double. */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "json.h"
#include "jsonrpc.h"
#include "schema.h"
#include "suites.h"

static char err[512];

/* The JSON-RPC error code of a body (0 when it parses). */
static int
rpc_code(const char *body, size_t len)
{
	struct jsonrpc_msg m;
	int code = 0;
	char msg[256];
	cJSON *id = NULL;
	int rc = jsonrpc_parse(NULL, body, len, 64, &m, &code, msg, sizeof(msg), &id);
	cJSON_Delete(id);
	if (rc == 0) {
		jsonrpc_free(&m);
		return 0;
	}
	return code;
}

/* A request whose params hold `inner` (raw bytes, NULs allowed). */
static int
params_code(const char *inner, size_t len)
{
	static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":{";
	char body[512];
	ck_assert_uint_lt(sizeof(head) + len + 2, sizeof(body));
	memcpy(body, head, sizeof(head) - 1);
	memcpy(body + sizeof(head) - 1, inner, len);
	memcpy(body + sizeof(head) - 1 + len, "}}", 2);
	return rpc_code(body, sizeof(head) - 1 + len + 2);
}

#define PARAMS(lit) params_code(lit, sizeof(lit) - 1)

START_TEST(raw_control_characters)
{
	/* Every one of U+0000..U+001F raw inside a string is a parse error. */
	for (int c = 0; c < 0x20; c++) {
		char inner[] = "\"s\":\"a?b\"";
		inner[6] = (char)c;
		ck_assert_msg(params_code(inner, sizeof(inner) - 1) == JSONRPC_PARSE_ERROR, "U+%04X accepted", c);
		char key[] = "\"k?\":1";
		key[2] = (char)c;
		ck_assert_msg(params_code(key, sizeof(key) - 1) == JSONRPC_PARSE_ERROR, "U+%04X accepted in a name", c);
	}
	/* Escaped, they are text; DEL and beyond stand raw. */
	ck_assert_int_eq(PARAMS("\"s\":\"\\u0001\\t\\n\\u001f\x7f\""), 0);
	ck_assert_int_eq(PARAMS("\"s\":\"\\u0000\""), JSONRPC_PARSE_ERROR);
	ck_assert_int_eq(PARAMS("\"s\":\"\\\\u0000\""), 0);
	/* Between tokens only space, tab, CR and LF. */
	ck_assert_int_eq(PARAMS(" \t\r\n\"a\" \t\r\n: \t\r\n1 \t\r\n"), 0);
	ck_assert_int_eq(PARAMS("\"a\":\v1"), JSONRPC_PARSE_ERROR);
	ck_assert_int_eq(PARAMS("\"a\":\f1"), JSONRPC_PARSE_ERROR);
	ck_assert_int_eq(PARAMS("\"a\":\0001"), JSONRPC_PARSE_ERROR);
	static const char lead[] = "\x01{\"jsonrpc\":\"2.0\",\"method\":\"m\"}";
	static const char tail[] = "{\"jsonrpc\":\"2.0\",\"method\":\"m\"}\0";
	ck_assert_int_eq(rpc_code(lead, sizeof(lead) - 1), JSONRPC_PARSE_ERROR);
	ck_assert_int_eq(rpc_code(lead + 1, sizeof(lead) - 2), 0);
	ck_assert_int_eq(rpc_code(tail, sizeof(tail) - 1), JSONRPC_PARSE_ERROR);
}
END_TEST

START_TEST(grammar)
{
	static const char *const bad[] = { "\"a\":01", "\"a\":1.", "\"a\":.5", "\"a\":-", "\"a\":+1",
	    "\"a\":1e", "\"a\":1e+", "\"a\":0x10", "\"a\":1.e5", "\"a\":Infinity", "\"a\":NaN",
	    "\"a\":-01", "\"a\":tru", "\"a\":nul", "\"a\":[1,]", "\"a\":{\"b\":1,}", "\"a\":'s'",
	    "\"a\":\"\\x\"", "\"a\":\"\\ud800\"", "\"a\":\"\\udc00\"", "\"a\":\"\\ud800\\u0041\"",
	    "\"a\":\"\\u12\"", "\"a\":1 2", "\"a\":1,\"a\":2", "\"a\":{\"b\":1,\"b\":1}", NULL };
	for (size_t i = 0; bad[i] != NULL; i++)
		ck_assert_msg(params_code(bad[i], strlen(bad[i])) == JSONRPC_PARSE_ERROR, "accepted: %s", bad[i]);
	static const char *const good[] = { "\"a\":0", "\"a\":-0", "\"a\":1.5e-3", "\"a\":2E+10",
	    "\"a\":12345678901234567890123456789012345678901234567890123456789012345678901234567890",
	    "\"a\":\"\\ud83d\\ude00\\/\"", "\"a\":[]", "\"a\":{}", "\"a\":1,\"A\":2", NULL };
	for (size_t i = 0; good[i] != NULL; i++)
		ck_assert_msg(params_code(good[i], strlen(good[i])) == 0, "refused: %s", good[i]);
}
END_TEST

/* The response to a request whose id is id_text. */
static void
check_id_echo(const char *id_text)
{
	char body[256];
	snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"m\"}", id_text);
	struct jsonrpc_msg m;
	int code;
	char msg[256], want[256];
	cJSON *id = NULL;
	ck_assert_int_eq(jsonrpc_parse(NULL, body, strlen(body), 64, &m, &code, msg, sizeof(msg), &id), 0);
	ck_assert_ptr_null(id);         /* a copy only for a message refused */
	char *r = jsonrpc_result(m.id, NULL);
	snprintf(want, sizeof(want), "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{}}", id_text);
	ck_assert_str_eq(r, want);
	free(r);
	jsonrpc_free(&m);
	/* Refused, its id copied for the error, as written. */
	snprintf(body, sizeof(body), "{\"jsonrpc\":\"1.0\",\"id\":%s,\"method\":\"m\"}", id_text);
	ck_assert_int_eq(jsonrpc_parse(NULL, body, strlen(body), 64, &m, &code, msg, sizeof(msg), &id), -1);
	ck_assert_int_eq(code, JSONRPC_INVALID_REQUEST);
	ck_assert_ptr_nonnull(id);
	r = jsonrpc_error(id, -32601, "no", NULL);
	snprintf(want, sizeof(want), "{\"jsonrpc\":\"2.0\",\"id\":%s,\"error\":{\"code\":-32601,\"message\":\"no\"}}",
	    id_text);
	ck_assert_str_eq(r, want);
	free(r);
	cJSON_Delete(id);
}

START_TEST(ids_echoed_as_written)
{
	check_id_echo("9007199254740993");
	check_id_echo("1000000000000000");
	check_id_echo("-9223372036854775809");
	check_id_echo("123456789012345678901234567890");
	check_id_echo("-0");
	check_id_echo("1.5e300");
	check_id_echo("1E+2");
	check_id_echo("0.1");
	check_id_echo("7");
	check_id_echo("\"s\"");
}
END_TEST

/* Messages written as text: each member once, in order, strings escaped,
 * a result's JSON text copied as it is. */
START_TEST(messages_written)
{
	cJSON *id = cJSON_CreateString("a\"b\n");
	char *r = jsonrpc_result(id, cJSON_Parse("{\"x\":[1,true,null]}"));
	ck_assert_str_eq(r, "{\"jsonrpc\":\"2.0\",\"id\":\"a\\\"b\\n\",\"result\":{\"x\":[1,true,null]}}");
	free(r);
	r = jsonrpc_result(NULL, NULL);
	ck_assert_str_eq(r, "{\"jsonrpc\":\"2.0\",\"result\":{}}");
	free(r);
	r = jsonrpc_result_text(id, "{\"y\": 2}", 8);
	ck_assert_str_eq(r, "{\"jsonrpc\":\"2.0\",\"id\":\"a\\\"b\\n\",\"result\":{\"y\": 2}}");
	free(r);
	/* The stateless revision's "complete" first, before members or none. */
	r = jsonrpc_result_complete(id, "{\"y\": 2}", 8);
	ck_assert_str_eq(r, "{\"jsonrpc\":\"2.0\",\"id\":\"a\\\"b\\n\",\"result\":{\"resultType\":\"complete\",\"y\": 2}}");
	free(r);
	r = jsonrpc_result_complete(NULL, " { \t\"y\":{}} ", 12);
	ck_assert_str_eq(r, "{\"jsonrpc\":\"2.0\",\"result\":{\"resultType\":\"complete\",\"y\":{}} }");
	free(r);
	r = jsonrpc_result_complete(NULL, "{ }", 3);
	ck_assert_str_eq(r, "{\"jsonrpc\":\"2.0\",\"result\":{\"resultType\":\"complete\"}}");
	free(r);
	r = jsonrpc_result_complete(NULL, "{}", 2);
	ck_assert_str_eq(r, "{\"jsonrpc\":\"2.0\",\"result\":{\"resultType\":\"complete\"}}");
	free(r);
	r = jsonrpc_error(NULL, -32700, "Parse error: \x01 \"x\" \\", NULL);
	ck_assert_str_eq(r, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
	    "\"message\":\"Parse error: \\u0001 \\\"x\\\" \\\\\"}}");
	free(r);
	r = jsonrpc_error(id, 7, "m", cJSON_Parse("{\"d\":\"\\u00e9\"}"));
	ck_assert_str_eq(r, "{\"jsonrpc\":\"2.0\",\"id\":\"a\\\"b\\n\",\"error\":{\"code\":7,\"message\":\"m\","
	    "\"data\":{\"d\":\"\xc3\xa9\"}}}");
	free(r);
	r = jsonrpc_notification("notifications/progress", cJSON_Parse("{\"p\":1}"));
	ck_assert_str_eq(r, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"p\":1}}");
	free(r);
	r = jsonrpc_notification("n", NULL);
	ck_assert_str_eq(r, "{\"jsonrpc\":\"2.0\",\"method\":\"n\"}");
	free(r);
	cJSON *num = json_number_parse("12345678901234567890", 20);
	r = jsonrpc_request(num, "sampling/createMessage", cJSON_CreateObject());
	ck_assert_str_eq(r, "{\"jsonrpc\":\"2.0\",\"id\":12345678901234567890,\"method\":\"sampling/createMessage\",\"params\":{}}");
	free(r);
	/* A node that cannot be printed: no message rather than half of one. */
	cJSON *raw = cJSON_CreateObject(), *bad = cJSON_CreateNull();
	bad->type = cJSON_Invalid;
	cJSON_AddItemToObject(raw, "r", bad);
	ck_assert_ptr_null(jsonrpc_result(num, raw));
	cJSON_Delete(num);
	cJSON_Delete(id);
}
END_TEST

/* Invalid UTF-8 is named as such wherever it is, even after a fault the
 * parser met first; UTF-8 the parser checks is not checked again. */
START_TEST(utf8_fault_named)
{
	struct jsonrpc_msg m;
	int code;
	char msg[256];
	cJSON *id = NULL;
	static const char late[] = "{\"jsonrpc\":\"2.0\",,\"id\":1,\"method\":\"\xff\"}";
	ck_assert_int_eq(jsonrpc_parse(NULL, late, sizeof(late) - 1, 64, &m, &code, msg, sizeof(msg), &id), -1);
	ck_assert_int_eq(code, JSONRPC_PARSE_ERROR);
	ck_assert_str_eq(msg, "Parse error: body is not valid UTF-8");
	static const char bad[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xed\xa0\x80\"}";
	ck_assert_int_eq(jsonrpc_parse(NULL, bad, sizeof(bad) - 1, 64, &m, &code, msg, sizeof(msg), &id), -1);
	ck_assert_str_eq(msg, "Parse error: body is not valid UTF-8");
	static const char syn[] = "{\"jsonrpc\":\"2.0\",,\"method\":\"\xc3\xa9\"}";
	ck_assert_int_eq(jsonrpc_parse(NULL, syn, sizeof(syn) - 1, 64, &m, &code, msg, sizeof(msg), &id), -1);
	ck_assert_str_ne(msg, "Parse error: body is not valid UTF-8");
	static const char good[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xc3\xa9\xf0\x9f\x98\x80\"}";
	ck_assert_int_eq(jsonrpc_parse(NULL, good, sizeof(good) - 1, 64, &m, &code, msg, sizeof(msg), &id), 0);
	ck_assert_str_eq(m.method, "\xc3\xa9\xf0\x9f\x98\x80");
	cJSON_Delete(id);
	jsonrpc_free(&m);
}
END_TEST

/* A tree from an arena is the tree json_parse makes (types, numbers'
 * text and values, names, order), and faults are the same faults; the
 * arena holds it all (nothing for cJSON_Delete to free). */
START_TEST(parse_into_an_arena)
{
	static const char *const texts[] = {
		"{\"jsonrpc\":\"2.0\",\"id\":9007199254740993,\"method\":\"tools/call\",\"params\":{\"name\":\"g\","
		"\"arguments\":{\"a\":[true,false,null,-1.5e3,\"\\u00e9\\n\\ud83d\\ude00\"],\"b\":{}},\"_meta\":{}}}",
		"[1,[2,[3,[]]],{\"\":\"\"}]", "\"s\"", "0", "-0.0", "1e999", "-2147483649", "true", " null ",
		"{\"a\":1,\"a\":2}", "{\"a\":1,}", "[1", "\"\\u0000\"", "\"\xff\"", "[[[[[[[[[[1]]]]]]]]]]", "{\"k\":tru}",
		"nul", "", "12 13", NULL };
	for (size_t i = 0; texts[i] != NULL; i++) {
		struct arena *a = arena_new(256);
		struct json_error e1, e2;
		cJSON *t1 = json_parse(texts[i], strlen(texts[i]), 8, &e1);
		cJSON *t2 = json_parse_arena(texts[i], strlen(texts[i]), 8, &e2, a);
		ck_assert_msg((t1 == NULL) == (t2 == NULL), "%s", texts[i]);
		if (t1 == NULL) {
			ck_assert_int_eq(e1.fault, e2.fault);
			ck_assert_uint_eq(e1.offset, e2.offset);
			ck_assert_str_eq(e1.message, e2.message);
		} else {
			char *p1 = json_print(t1), *p2 = json_print(t2);
			ck_assert_str_eq(p1, p2);
			ck_assert(json_equal(t1, t2));
			if (cJSON_IsNumber(t1)) {
				ck_assert_int_eq(t1->valueint, t2->valueint);
				ck_assert(t1->valuedouble == t2->valuedouble || (isnan(t1->valuedouble) && isnan(t2->valuedouble)));
			}
			ck_assert_int_gt(arena_used(a), 0);
			free(p1);
			free(p2);
		}
		cJSON_Delete(t1);
		arena_free(a);
	}
}
END_TEST

/* Every byte at every place of a long string (the 16- and 8-byte scans,
 * then byte by byte near the end): taken as itself, or the fault it is at
 * its offset. */
START_TEST(string_scan_every_place)
{
	char t[64];
	for (size_t len = 1; len <= 40; len += 13) {
		for (size_t k = 0; k < len; k++) {
			for (int b = 0; b < 256; b++) {
				size_t n = 0;
				t[n++] = '[';
				t[n++] = '"';
				for (size_t i = 0; i < len; i++)
					t[n++] = i == k ? (char)b : (char)('a' + i % 26);
				t[n++] = '"';
				t[n++] = ']';
				struct json_error je;
				cJSON *v = json_parse(t, n, 0, &je);
				size_t at = 2 + k;
				if (b >= 0x20 && b < 0x80 && b != '"' && b != '\\') {
					ck_assert_ptr_nonnull(v);
					ck_assert_uint_eq(strlen(v->child->valuestring), len);
					ck_assert_int_eq((unsigned char)v->child->valuestring[k], b);
					cJSON_Delete(v);
					continue;
				}
				if (b == '\\' && k + 1 < len && strchr("bfnrt", t[at + 1]) != NULL) {
					ck_assert_ptr_nonnull(v);         /* an escape after all */
					ck_assert_uint_eq(strlen(v->child->valuestring), len - 1);
					cJSON_Delete(v);
					continue;
				}
				ck_assert_ptr_null(v);
				enum json_fault want = b < 0x20 ? JSON_CONTROL : b >= 0x80 ? JSON_UTF8 : JSON_SYNTAX;
				if (b == '"')
					at = 3 + k;         /* at what follows the string */
				if (b == '\\' && k + 1 == len)
					want = JSON_SYNTAX, at = n;         /* \" then ']': unterminated */
				ck_assert_msg(je.fault == want && je.offset == at, "byte 0x%02x at %zu of %zu: fault %d at %zu",
				    b, k, len, je.fault, je.offset);
			}
		}
	}
}
END_TEST

/* Are a container's children linked as cJSON links them (each prev the
 * one before, the first's prev the last, the last's next NULL)? The
 * count of them, or -1. */
static int
links_count(const cJSON *c)
{
	int n = 0;
	const cJSON *prev = NULL;
	for (const cJSON *v = c->child; v != NULL; v = v->next, n++) {
		if (prev != NULL && v->prev != prev)
			return -1;
		if ((v->type & 0xff) == cJSON_Array || (v->type & 0xff) == cJSON_Object)
			if (links_count(v) < 0)
				return -1;
		prev = v;
	}
	if (c->child != NULL && c->child->prev != prev)
		return -1;
	return n;
}

/* The text parsed three ways (cJSON's allocator, an arena of 256-byte
 * blocks, one after `fill` bytes of it were taken) gives the same
 * tree, printed, or the same fault at the same offset with the same
 * message. The fault (-1 for none); the tree's print in *printed. */
static int
three_ways(const char *text, size_t len, int depth, size_t fill, char **printed)
{
	struct arena *a1 = arena_new(256), *a2 = arena_new(256);
	ck_assert_ptr_nonnull(arena_alloc(a2, fill));
	struct json_error e[3];
	cJSON *t[3];
	t[0] = json_parse(text, len, depth, &e[0]);
	t[1] = json_parse_arena(text, len, depth, &e[1], a1);
	t[2] = json_parse_arena(text, len, depth, &e[2], a2);
	int fault = -1;
	*printed = NULL;
	if (t[0] == NULL) {
		fault = (int)e[0].fault;
		for (int i = 1; i < 3; i++) {
			ck_assert_ptr_null(t[i]);
			ck_assert_int_eq(e[i].fault, e[0].fault);
			ck_assert_uint_eq(e[i].offset, e[0].offset);
			ck_assert_str_eq(e[i].message, e[0].message);
		}
	} else {
		*printed = json_print(t[0]);
		for (int i = 1; i < 3; i++) {
			ck_assert_ptr_nonnull(t[i]);
			char *p = json_print(t[i]);
			ck_assert_str_eq(p, *printed);
			free(p);
			ck_assert(json_equal(t[0], t[i]));
		}
		for (int i = 0; i < 3; i++)
			ck_assert_int_ge(links_count(t[i]), 0);
	}
	cJSON_Delete(t[0]);
	arena_free(a1);
	arena_free(a2);
	return fault;
}

/* Whitespace of each kind, and of all four, between every two tokens
 * (skip_ws looks at the first byte before its loop); a byte that is not
 * whitespace there (\f, \v, NUL, 0x7f, U+00A0) is a syntax fault at it. */
START_TEST(whitespace_between_tokens)
{
	static const char *const tokens[] = { "{", "\"a\"", ":", "[", "1", ",", "-2.5e3", ",", "\"\\u00e9x\"",
		",", "true", ",", "false", ",", "null", ",", "{", "}", ",", "[", "]", "]", ",", "\"b\"", ":",
		"{", "\"c\"", ":", "\"d\"", "}", "}", NULL };
	static const char *const spaces[] = { "", " ", "\t", "\n", "\r", " \t\n\r", "\r\n\t  ", NULL };
	static const char *const bad[] = { "\f", "\v", "\x01", "\x7f", "\xc2\xa0", NULL };
	char *want = NULL, text[512];
	static const char compact[] = "{\"a\":[1,-2.5e3,\"\\u00e9x\",true,false,null,{},[]],\"b\":{\"c\":\"d\"}}";
	ck_assert_int_eq(three_ways(compact, sizeof(compact) - 1, 0, 0, &want), -1);
	for (size_t gap = 0; tokens[gap] != NULL; gap++) {         /* before tokens[gap], and at the end */
		for (int w = 0; spaces[w] != NULL; w++) {
			for (int lead = 0; lead < 2; lead++) {
				size_t len = 0;
				if (lead)
					len += (size_t)snprintf(text + len, sizeof(text) - len, "%s", spaces[w]);
				for (size_t i = 0; tokens[i] != NULL; i++)
					len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%s",
					    i == gap ? spaces[w] : "", tokens[i]);
				len += (size_t)snprintf(text + len, sizeof(text) - len, "%s", spaces[w]);
				char *got;
				ck_assert_int_eq(three_ways(text, len, 0, 0, &got), -1);
				ck_assert_str_eq(got, want);
				free(got);
			}
		}
		if (gap == 0)
			continue;
		for (int b = 0; bad[b] != NULL; b++) {
			size_t len = 0, at = 0;
			for (size_t i = 0; tokens[i] != NULL; i++) {
				if (i == gap) {
					at = len;
					len += (size_t)snprintf(text + len, sizeof(text) - len, "%s", bad[b]);
				}
				len += (size_t)snprintf(text + len, sizeof(text) - len, "%s", tokens[i]);
			}
			char *got;
			struct json_error je;
			ck_assert_int_eq(three_ways(text, len, 0, 0, &got), JSON_SYNTAX);
			ck_assert_ptr_null(json_parse(text, len, 0, &je));
			ck_assert_uint_eq(je.offset, at);
		}
	}
	free(want);
}
END_TEST

/* Nesting at the limit and one past it, arrays and objects; many members
 * (linked by hand, as cJSON would); every kind of node across an arena's
 * block boundary; strings of every length (copied a few bytes at a time). */
START_TEST(parse_three_ways)
{
	char *got, text[4096];
	for (int depth = 1; depth <= 40; depth++) {
		for (int object = 0; object < 2; object++) {
			size_t len = 0;
			for (int i = 0; i < depth; i++)
				len += (size_t)snprintf(text + len, sizeof(text) - len, object ? "{\"k\":" : "[");
			text[len++] = '1';
			for (int i = 0; i < depth; i++)
				text[len++] = object ? '}' : ']';
			ck_assert_int_eq(three_ways(text, len, depth, 0, &got), -1);
			free(got);
			ck_assert_int_eq(three_ways(text, len, depth - 1 > 0 ? depth - 1 : 0, 0, &got),
			    depth > 1 ? JSON_DEPTH : -1);
			free(got);
		}
	}
	for (int n = 0; n < 40; n++) {
		for (int object = 0; object < 2; object++) {
			size_t len = 0;
			text[len++] = object ? '{' : '[';
			for (int i = 0; i < n; i++)
				len += (size_t)snprintf(text + len, sizeof(text) - len, object ? "%s\"m%d\":%d" : "%s%d",
				    i ? "," : "", i, i);
			text[len++] = object ? '}' : ']';
			ck_assert_int_eq(three_ways(text, len, 0, 0, &got), -1);
			free(got);
			cJSON *v = json_parse(text, len, 0, NULL);
			ck_assert_int_eq(links_count(v), n);
			ck_assert_int_eq(cJSON_GetArraySize(v), n);
			if (n > 0) {
				ck_assert_int_eq(cJSON_GetArrayItem(v, n - 1)->valueint, n - 1);
				cJSON_DeleteItemFromArray(v, 0);        /* cJSON's own unlinking works on it */
				ck_assert_int_eq(links_count(v), n - 1);
			}
			cJSON_Delete(v);
		}
	}
	static const char mixed[] = "{\"name\":\"a string long enough to span two words\",\"n\":-12345678901234567890.5e-3,"
		"\"t\":true,\"f\":false,\"z\":null,\"o\":{},\"a\":[],\"e\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\ud83d\\ude00\"}";
	char *want;
	ck_assert_int_eq(three_ways(mixed, sizeof(mixed) - 1, 0, 0, &want), -1);
	for (size_t fill = 0; fill <= 256; fill += 8) {
		ck_assert_int_eq(three_ways(mixed, sizeof(mixed) - 1, 0, fill, &got), -1);
		ck_assert_str_eq(got, want);
		free(got);
	}
	free(want);
	for (size_t n = 0; n <= 70; n++) {
		char s[80];
		for (size_t i = 0; i < n; i++)
			s[i] = (char)('a' + i % 26);
		s[n] = '\0';
		size_t len = (size_t)snprintf(text, sizeof(text), "{\"%s\":[\"%s\",%s1]}", s, s, n % 2 ? "-" : "");
		ck_assert_int_eq(three_ways(text, len, 0, n, &got), -1);
		free(got);
		struct arena *a = arena_new(256);
		cJSON *v = json_parse_arena(text, len, 0, NULL, a);
		ck_assert_str_eq(v->child->string, s);
		ck_assert_str_eq(v->child->child->valuestring, s);
		arena_free(a);
		/* Cut short anywhere: the same fault each way. */
		for (size_t cut = 0; cut < len; cut++)
			ck_assert_int_ge(three_ways(text, cut, 0, 0, &got), 0);
	}
	/* A backslash as the last byte, or before it. */
	ck_assert_int_eq(three_ways("\"ab\\", 4, 0, 0, &got), JSON_SYNTAX);
	ck_assert_int_eq(three_ways("\"ab\\\"", 5, 0, 0, &got), JSON_SYNTAX);
	ck_assert_int_eq(three_ways("\"abcdefgh\\", 10, 0, 0, &got), JSON_SYNTAX);
	ck_assert_int_eq(three_ways("[\"\\x\x01\"]", 8, 0, 0, &got), JSON_CONTROL);
	ck_assert_int_eq(three_ways("[\"\\x\\u0000\"]", 13, 0, 0, &got), JSON_SYNTAX);
	ck_assert_int_eq(three_ways("{\"\\u0000\":1}", 12, 0, 0, &got), JSON_NUL);
	ck_assert_int_eq(three_ways("{\"a\\q\":[1,", 10, 0, 0, &got), JSON_SYNTAX);
}
END_TEST

/* The inline bump and its slow path: allocations aligned, apart, counted,
 * across blocks of every size. */
START_TEST(arena_inline_bump)
{
	struct arena *a = arena_new(256);
	size_t total = 0;
	char *last = NULL;
	for (size_t n = 0; n < 600; n++) {
		char *p = arena_alloc(a, n);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq((uintptr_t)p % _Alignof(max_align_t), 0);
		memset(p, (int)(n & 0xff), n);
		if (last != NULL)
			ck_assert(last[0] == (char)((n - 1) & 0xff) || n - 1 == 0);
		last = p;
		total += (n + 15) & ~(size_t)15;
		ck_assert_uint_eq(arena_used(a), total);
	}
	ck_assert_ptr_null(arena_alloc(a, SIZE_MAX));
	arena_reset(a);
	ck_assert_uint_eq(arena_used(a), 0);
	ck_assert_ptr_nonnull(arena_alloc(a, 300));
	ck_assert_uint_eq(arena_used(a), 304);
	arena_free(a);
}
END_TEST

/* Schema and value parsed the way requests are, so that numbers keep
 * what the client (or the operator) wrote. */
static int
valid_exact(const char *schema, const char *value)
{
	char body[1024];
	snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":{\"s\":%s,\"v\":%s}}",
	    schema, value);
	struct jsonrpc_msg m;
	int code;
	char msg[256];
	cJSON *id = NULL;
	ck_assert_int_eq(jsonrpc_parse(NULL, body, strlen(body), 64, &m, &code, msg, sizeof(msg), &id), 0);
	int rc = schema_validate(cJSON_GetObjectItem(m.params, "s"), cJSON_GetObjectItem(m.params, "v"),
	    "arguments", err, sizeof(err));
	jsonrpc_free(&m);
	return rc == 0;
}

START_TEST(numbers_by_value)
{
	ck_assert(!valid_exact("{\"type\":\"integer\"}", "9007199254740993.5"));
	ck_assert_str_eq(err, "arguments: expected integer, got number");
	ck_assert(!valid_exact("{\"type\":\"integer\"}", "12345678901234567890.5"));
	ck_assert(valid_exact("{\"type\":\"integer\"}", "12345678901234567890123"));
	ck_assert(valid_exact("{\"type\":\"integer\"}", "1.50e1"));
	ck_assert(valid_exact("{\"type\":\"integer\"}", "-0.0"));
	ck_assert(!valid_exact("{\"type\":\"integer\"}", "1e-400"));
	ck_assert(!valid_exact("{\"maximum\":9007199254740992}", "9007199254740993"));
	ck_assert_str_eq(err, "arguments: must be at most 9007199254740992");
	ck_assert(valid_exact("{\"maximum\":9007199254740993}", "9007199254740993"));
	ck_assert(!valid_exact("{\"exclusiveMaximum\":9007199254740993}", "9007199254740993"));
	ck_assert(!valid_exact("{\"minimum\":0.1}", "0.09999999999999999999"));
	ck_assert_str_eq(err, "arguments: must be at least 0.1");
	ck_assert(valid_exact("{\"minimum\":-1e400}", "-1e399"));
	ck_assert(!valid_exact("{\"exclusiveMinimum\":-5}", "-5.000"));
	ck_assert(valid_exact("{\"exclusiveMinimum\":-5}", "-4.99999999999999999999"));
	ck_assert(!valid_exact("{\"enum\":[9007199254740993]}", "9007199254740992"));
	ck_assert_str_eq(err, "arguments: must be one of [9007199254740993]");
	ck_assert(valid_exact("{\"enum\":[9007199254740993]}", "9007199254740993"));
	ck_assert(valid_exact("{\"const\":100}", "1e2"));
	ck_assert(valid_exact("{\"const\":{\"a\":[1,2.0]}}", "{\"a\":[1.0,2]}"));
	ck_assert(!valid_exact("{\"const\":{\"a\":1}}", "{\"a\":1,\"b\":1}"));
	ck_assert(valid_exact("{\"multipleOf\":3}", "9007199254740993"));
	ck_assert(!valid_exact("{\"multipleOf\":3}", "9007199254740995"));
	ck_assert_str_eq(err, "arguments: must be a multiple of 3");
	ck_assert(valid_exact("{\"multipleOf\":0.1}", "0.3"));
	ck_assert(!valid_exact("{\"multipleOf\":0.1}", "0.35"));
	ck_assert(valid_exact("{\"multipleOf\":0.01}", "1e300"));
	ck_assert(valid_exact("{\"multipleOf\":1e-300}", "0.5"));
	ck_assert(!valid_exact("{\"multipleOf\":7}", "1e20"));
	ck_assert(valid_exact("{\"multipleOf\":7}", "7e20"));
	ck_assert(valid_exact("{\"uniqueItems\":true}", "[9007199254740992,9007199254740993]"));
	ck_assert(!valid_exact("{\"uniqueItems\":true}", "[1,1.0]"));
	ck_assert(!valid_exact("{\"uniqueItems\":true}", "[0,\"0\",-0.00]"));
	ck_assert(!valid_exact("{\"uniqueItems\":true}", "[{\"a\":1,\"b\":[2]},{\"b\":[2.0],\"a\":1e0}]"));
	ck_assert(valid_exact("{\"uniqueItems\":true}", "[{\"a\":1,\"b\":[2]},{\"a\":1,\"b\":[2,2]},[],{},\"\",null]"));
	ck_assert(valid_exact("{\"uniqueItems\":true}", "[\"a\\\"b\",\"a\\\\\",\"b\"]"));
}
END_TEST

/* uniqueItems sorts: a long array is judged at once, not pair by pair. */
START_TEST(unique_items_many)
{
	size_t n = 200000, cap = n * 12 + 64, len = 0;
	char *text = malloc(cap);
	len += (size_t)snprintf(text, cap, "[");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len, "%s%zu", i ? "," : "", i * 7);
	len += (size_t)snprintf(text + len, cap - len, "]");
	cJSON *v = json_parse(text, len, 0, NULL);
	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(json_unique_items(v), 1);
	cJSON_AddItemToArray(v, json_number_parse("7e0", 3));     /* equals the second */
	ck_assert_int_eq(json_unique_items(v), 0);
	cJSON_Delete(v);
	free(text);
}
END_TEST

START_TEST(parse_and_print)
{
	const char *text = "{\"id\":9007199254740993,\"a\":[1000000000000000,-0,1.5e300,0.1,1E+2],"
	    "\"s\":\"\\u00e9\\ud83d\\ude00\\t\\\"\\\\\\/\\u0001\",\"t\":true,\"f\":false,\"n\":null,\"o\":{}}";
	struct json_error je;
	cJSON *v = json_parse(text, strlen(text), 0, &je);
	ck_assert_ptr_nonnull(v);
	char *out = json_print(v);
	ck_assert_str_eq(out, "{\"id\":9007199254740993,\"a\":[1000000000000000,-0,1.5e300,0.1,1E+2],"
	    "\"s\":\"\xc3\xa9\xf0\x9f\x98\x80\\t\\\"\\\\/\\u0001\",\"t\":true,\"f\":false,\"n\":null,\"o\":{}}");
	free(out);
	/* Duplicates keep the text; so do the numbers' doubles. */
	cJSON *d = cJSON_Duplicate(v, 1);
	out = json_print(d);
	ck_assert_str_eq(out + 6, "9007199254740993,\"a\":[1000000000000000,-0,1.5e300,0.1,1E+2],"
	    "\"s\":\"\xc3\xa9\xf0\x9f\x98\x80\\t\\\"\\\\/\\u0001\",\"t\":true,\"f\":false,\"n\":null,\"o\":{}}");
	free(out);
	ck_assert(json_equal(v, d));
	ck_assert(cJSON_GetObjectItem(d, "id")->valuedouble == 9007199254740992.0);
	cJSON_Delete(d);
	cJSON_Delete(v);
	/* Numbers made here print in full when whole, shortest otherwise. */
	cJSON *a = cJSON_CreateArray();
	cJSON_AddItemToArray(a, cJSON_CreateNumber(1e15));
	cJSON_AddItemToArray(a, cJSON_CreateNumber(0.1));
	cJSON_AddItemToArray(a, cJSON_CreateNumber(-32602));
	cJSON_AddItemToArray(a, cJSON_CreateNumber(1e300));
	cJSON_AddItemToArray(a, cJSON_CreateNumber(NAN));
	cJSON_AddItemToArray(a, cJSON_CreateString("a\nb\x1f"));
	out = json_print(a);
	ck_assert_str_eq(out, "[1000000000000000,0.1,-32602,1e+300,null,\"a\\nb\\u001f\"]");
	free(out);
	cJSON_Delete(a);
}
END_TEST

static enum json_fault
fault_of(const char *text, size_t len, int depth, size_t *offset)
{
	struct json_error je;
	cJSON *v = json_parse(text, len, depth, &je);
	ck_assert_ptr_null(v);
	if (offset != NULL)
		*offset = je.offset;
	return je.fault;
}

START_TEST(faults)
{
	size_t off;
	ck_assert_int_eq(fault_of("{\"a\":\"x\x01\"}", 10, 0, &off), JSON_CONTROL);
	ck_assert_uint_eq(off, 7);
	ck_assert_int_eq(fault_of("[\"a\0b\"]", 7, 0, &off), JSON_CONTROL);
	ck_assert_uint_eq(off, 3);
	ck_assert_int_eq(fault_of("[\"\\u0000\"]", 10, 0, NULL), JSON_NUL);
	ck_assert_int_eq(fault_of("[\"\xff\"]", 5, 0, NULL), JSON_UTF8);
	ck_assert_int_eq(fault_of("[\"\xed\xa0\x80\"]", 7, 0, NULL), JSON_UTF8);
	ck_assert_int_eq(fault_of("{\"a\":1,\"b\":2,\"a\":3}", 19, 0, NULL), JSON_DUPLICATE);
	ck_assert_int_eq(fault_of("[[[1]]]", 7, 2, NULL), JSON_DEPTH);
	ck_assert_int_eq(fault_of("[1] [2]", 7, 0, &off), JSON_TRAILING);
	ck_assert_uint_eq(off, 4);
	ck_assert_int_eq(fault_of("", 0, 0, NULL), JSON_SYNTAX);
	ck_assert_int_eq(fault_of("[1,", 3, 0, NULL), JSON_SYNTAX);
	ck_assert_int_eq(fault_of("\"abc", 4, 0, NULL), JSON_SYNTAX);
	ck_assert_int_eq(fault_of("\"abc\\", 5, 0, &off), JSON_SYNTAX);
	ck_assert_uint_eq(off, 5);                      /* within the text */
	ck_assert_int_eq(fault_of("[1]", 2, 0, NULL), JSON_SYNTAX);      /* the length decides */
	/* Many members: duplicates are found by sorting, not pair by pair. */
	size_t n = 5000, cap = n * 16 + 16, len = 0;
	char *big = malloc(cap);
	big[len++] = '{';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(big + len, cap - len, "%s\"k%zu\":1", i ? "," : "", i % (n - 1));
	big[len++] = '}';
	ck_assert_int_eq(fault_of(big, len, 0, NULL), JSON_DUPLICATE);
	len = 0;
	big[len++] = '{';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(big + len, cap - len, "%s\"k%zu\":1", i ? "," : "", i);
	big[len++] = '}';
	cJSON *v = json_parse(big, len, 0, NULL);
	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(cJSON_GetArraySize(v), (int)n);
	cJSON_Delete(v);
	free(big);
	/* Deep, within the limit, and past it without a crash. */
	size_t deep = 100000;
	char *s = malloc(2 * deep);
	memset(s, '[', deep);
	memset(s + deep, ']', deep);
	ck_assert_int_eq(fault_of(s, 2 * deep, 0, NULL), JSON_DEPTH);
	v = json_parse(s + deep - 500, 1000, 0, NULL);
	ck_assert_ptr_nonnull(v);
	cJSON_Delete(v);
	free(s);
}
END_TEST

/* The string scan's fast path (plain ASCII) and its hand-over to the
 * UTF-8, escape and control-character checks at every boundary. */
START_TEST(string_scan_boundaries)
{
	size_t off;
	/* Every byte 0x20..0x7f but '"' and '\\' stands raw, alone and in a run. */
	for (int c = 0x20; c < 0x80; c++) {
		if (c == '"' || c == '\\')
			continue;
		char t[] = "[\"?\",\"ab?cd\"]";
		t[2] = (char)c;
		t[8] = (char)c;
		cJSON *v = json_parse(t, sizeof(t) - 1, 0, NULL);
		ck_assert_msg(v != NULL, "byte 0x%02x refused", c);
		ck_assert_int_eq((unsigned char)cJSON_GetArrayItem(v, 0)->valuestring[0], c);
		ck_assert_int_eq((unsigned char)cJSON_GetArrayItem(v, 1)->valuestring[2], c);
		cJSON_Delete(v);
	}
	/* UTF-8 between ASCII runs, at the start and at the end. */
	static const char mixed[] = "[\"ab\xc3\xa9" "cd\xe2\x82\xac" "e\xf0\x9f\x98\x80\",\"\xc3\xa9x\"]";
	cJSON *v = json_parse(mixed, sizeof(mixed) - 1, 0, NULL);
	ck_assert_ptr_nonnull(v);
	ck_assert_str_eq(cJSON_GetArrayItem(v, 0)->valuestring, "ab\xc3\xa9" "cd\xe2\x82\xac" "e\xf0\x9f\x98\x80");
	ck_assert_str_eq(cJSON_GetArrayItem(v, 1)->valuestring, "\xc3\xa9x");
	cJSON_Delete(v);
	/* Escapes after a run, and a run after escapes. */
	static const char esc[] = "[\"abc\\n\\\"d\\u00e9\\ud83d\\ude00xyz\\\\\"]";
	v = json_parse(esc, sizeof(esc) - 1, 0, NULL);
	ck_assert_ptr_nonnull(v);
	ck_assert_str_eq(cJSON_GetArrayItem(v, 0)->valuestring, "abc\n\"d\xc3\xa9\xf0\x9f\x98\x80xyz\\");
	cJSON_Delete(v);
	/* Faults right after a run are found at their byte. */
	ck_assert_int_eq(fault_of("[\"abcd\x01\"]", 9, 0, &off), JSON_CONTROL);
	ck_assert_uint_eq(off, 6);
	ck_assert_int_eq(fault_of("[\"abcd\x80\"]", 9, 0, &off), JSON_UTF8);
	ck_assert_uint_eq(off, 6);
	ck_assert_int_eq(fault_of("[\"abcd\xc0\xaf\"]", 10, 0, &off), JSON_UTF8);   /* overlong */
	ck_assert_uint_eq(off, 6);
	ck_assert_int_eq(fault_of("[\"abcd\xf4\x90\x80\x80\"]", 12, 0, &off), JSON_UTF8);   /* > U+10FFFF */
	ck_assert_uint_eq(off, 6);
	ck_assert_int_eq(fault_of("[\"ab\xc3", 5, 0, &off), JSON_UTF8);   /* cut short by the end */
	ck_assert_uint_eq(off, 4);
	ck_assert_int_eq(fault_of("[\"abcd", 6, 0, &off), JSON_SYNTAX);   /* unterminated */
	ck_assert_uint_eq(off, 6);
	ck_assert_int_eq(fault_of("[\"abcd\\", 7, 0, &off), JSON_SYNTAX);
	ck_assert_uint_eq(off, 7);
	ck_assert_int_eq(fault_of("[\"ab\\x\"]", 8, 0, &off), JSON_SYNTAX);   /* bad escape */
	ck_assert_uint_eq(off, 4);
	/* The length given ends the text, whatever follows in memory. */
	ck_assert_int_eq(fault_of("[\"abcdef\"]", 5, 0, &off), JSON_SYNTAX);
	ck_assert_uint_eq(off, 5);
}
END_TEST

/* Numbers: a short integer is read without strtod; every number keeps
 * the double, int and text strtod and cJSON_CreateNumber give. */
START_TEST(number_values)
{
	static const char *const texts[] = {
		"0", "-0", "7", "-7", "10", "2147483647", "2147483648", "-2147483648",
		"-2147483649", "123456789012345", "-999999999999999", "1234567890123456",
		"9007199254740993", "-9007199254740993", "12345678901234567890123",
		"-0.0", "0.5", "1e3", "-1E-2", "1.0", "100e0", "1e400", "-1e400", "4.9e-325",
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		const char *t = texts[i];
		char doc[64];
		int n = snprintf(doc, sizeof(doc), "[%s]", t);
		cJSON *arr = json_parse(doc, (size_t)n, 0, NULL);
		ck_assert_msg(arr != NULL, "%s refused", t);
		const cJSON *v = cJSON_GetArrayItem(arr, 0);
		double d = strtod(t, NULL);
		ck_assert_msg(memcmp(&v->valuedouble, &d, sizeof(d)) == 0, "%s: %.17g, not %.17g",
		    t, v->valuedouble, d);
		cJSON *ref = cJSON_CreateNumber(d);
		ck_assert_msg(v->valueint == ref->valueint, "%s: int %d, not %d", t, v->valueint, ref->valueint);
		cJSON_Delete(ref);
		ck_assert_str_eq(v->valuestring, t);
		cJSON_Delete(arr);
	}
}
END_TEST

/* Duplicate names: first bytes alike or not, empty names. */
START_TEST(duplicate_names)
{
	static const char *const ok[] = {
		"{\"ab\":1,\"ac\":2,\"a\":3}", "{\"\":1,\"a\":2}", "{\"a\":1,\"A\":2}",
		"{\"io.x/a\":1,\"io.x/b\":2,\"io.x/\":3}",
	};
	static const char *const dup[] = {
		"{\"ab\":1,\"ac\":2,\"ab\":3}", "{\"\":1,\"a\":2,\"\":3}", "{\"\\u0061\":1,\"a\":2}",
		"{\"io.x/a\":1,\"io.x/b\":2,\"io.x/a\":3}",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cJSON *v = json_parse(ok[i], strlen(ok[i]), 0, NULL);
		ck_assert_msg(v != NULL, "%s refused", ok[i]);
		cJSON_Delete(v);
	}
	for (size_t i = 0; i < sizeof(dup) / sizeof(dup[0]); i++)
		ck_assert_msg(fault_of(dup[i], strlen(dup[i]), 0, NULL) == JSON_DUPLICATE, "%s", dup[i]);
}
END_TEST

/* The envelope read in one pass: each member found wherever it stands,
 * params' _meta kept when it is an object. */
START_TEST(envelope_members)
{
	static const char *const bodies[] = {
		"{\"params\":{\"_meta\":{\"progressToken\":3},\"name\":\"t\"},\"method\":\"tools/call\",\"id\":\"x\",\"jsonrpc\":\"2.0\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"tools/call\",\"params\":{\"name\":\"t\",\"_meta\":{\"progressToken\":3}}}",
	};
	struct jsonrpc_msg m;
	int code;
	char msg[256];
	cJSON *id = NULL;
	for (size_t i = 0; i < 2; i++) {
		ck_assert_int_eq(jsonrpc_parse(NULL, bodies[i], strlen(bodies[i]), 64, &m, &code, msg, sizeof(msg), &id), 0);
		ck_assert_int_eq(m.kind, RPC_REQUEST);
		ck_assert_str_eq(m.id->valuestring, "x");
		ck_assert_str_eq(m.method, "tools/call");
		ck_assert_ptr_eq(m.params, json_get(m.root, "params"));
		ck_assert_ptr_nonnull(m.meta);
		ck_assert_ptr_eq(m.meta, json_get(m.params, "_meta"));
		ck_assert_int_eq(json_get(m.meta, "progressToken")->valueint, 3);
		ck_assert_ptr_null(json_get(m.params, "progressToken"));
		jsonrpc_free(&m);
	}
	static const char *const no_meta[] = {
		"{\"jsonrpc\":\"2.0\",\"method\":\"n\",\"params\":{\"_meta\":[1]}}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"n\",\"params\":{\"_meta\":\"s\"}}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"n\",\"params\":{}}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"n\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"_meta\":{}}}",
	};
	for (size_t i = 0; i < sizeof(no_meta) / sizeof(no_meta[0]); i++) {
		ck_assert_int_eq(jsonrpc_parse(NULL, no_meta[i], strlen(no_meta[i]), 64, &m, &code, msg, sizeof(msg), &id), 0);
		ck_assert_ptr_null(m.meta);
		jsonrpc_free(&m);
	}
	/* Members with the envelope's first letters are not taken for it. */
	static const char odd[] = "{\"i\":1,\"jsonrpcx\":0,\"methods\":\"m\",\"p\":{},\"jsonrpc\":\"2.0\",\"method\":\"m\",\"e\":1,\"r\":2}";
	ck_assert_int_eq(jsonrpc_parse(NULL, odd, sizeof(odd) - 1, 64, &m, &code, msg, sizeof(msg), &id), 0);
	ck_assert_int_eq(m.kind, RPC_NOTIFICATION);
	ck_assert_ptr_null(m.params);
	jsonrpc_free(&m);
	ck_assert_ptr_null(json_get(NULL, "a"));
	cJSON *arr = json_parse("[1,2]", 5, 0, NULL);
	ck_assert_ptr_null(json_get(arr, "a"));
	cJSON_Delete(arr);
}
END_TEST

/* Messages one after another and several alive at once (the arena of a
 * freed one is kept for the next): each keeps its own tree. */
START_TEST(messages_in_turn)
{
	struct jsonrpc_msg m[3];
	int code;
	char msg[256], body[4096];
	cJSON *id = NULL;
	struct jsonrpc_reader rd = { 0 };
	for (int round = 0; round < 50; round++) {
		for (int i = 0; i < 3; i++) {
			/* Sizes from a few bytes to past the first block. */
			int pad = (round * 7 + i * 300) % 1500;
			int n = snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"m%d\","
			    "\"params\":{\"s\":\"%*s\",\"_meta\":{\"k\":%d}}}", round * 3 + i, i, pad, "", i);
			ck_assert_int_eq(jsonrpc_parse(&rd, body, (size_t)n, 64, &m[i], &code, msg, sizeof(msg), &id), 0);
			memset(body, 'x', sizeof(body));
		}
		for (int i = 0; i < 3; i++) {
			char want[16];
			snprintf(want, sizeof(want), "m%d", i);
			ck_assert_str_eq(m[i].method, want);
			ck_assert_int_eq(m[i].id->valueint, round * 3 + i);
			ck_assert_int_eq(json_get(m[i].meta, "k")->valueint, i);
			ck_assert_uint_eq(strlen(json_get(m[i].params, "s")->valuestring), (size_t)((round * 7 + i * 300) % 1500));
		}
		/* Freed in another order than made; the first arena freed is
		 * kept, and the next message's tree is in it. */
		struct arena *kept = m[1].arena;
		jsonrpc_free(&m[1]);
		ck_assert_ptr_eq(rd.spare, kept);
		jsonrpc_free(&m[(round & 1) ? 0 : 2]);
		jsonrpc_free(&m[(round & 1) ? 2 : 0]);
		jsonrpc_free(&m[1]);            /* already freed: nothing */
		ck_assert_ptr_eq(rd.spare, kept);
		ck_assert_int_eq(jsonrpc_parse(&rd, "{\"jsonrpc\":\"2.0\",\"method\":\"n\"}", 30, 64, &m[0], &code,
		    msg, sizeof(msg), &id), 0);
		ck_assert_ptr_eq(m[0].arena, kept);
		ck_assert_ptr_null(rd.spare);
		jsonrpc_free(&m[0]);
	}
	jsonrpc_reader_clear(&rd);
	ck_assert_ptr_null(rd.spare);
}
END_TEST

/* The word-at-a-time scan: one byte of each kind at every place of
 * strings from 1 to 40 bytes, after plain bytes and before them, and
 * next to bytes that differ from a special one by one bit or one unit. */
START_TEST(string_scan_words)
{
	static const unsigned char plain[] = { 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7e, 0x7f, 0x41, 0x30, 0x3c };
	static const unsigned char control[] = { 0x00, 0x01, 0x09, 0x0a, 0x1f };
	static const unsigned char bad[] = { 0x80, 0xbf, 0xc0, 0xc1, 0xf5, 0xff };
	char t[64], want[64];
	size_t off;
	for (size_t len = 1; len <= 40; len++) {
		for (size_t pos = 0; pos < len; pos++) {
			/* ["aaa?aaa"] with ? at pos */
			memset(t, 0, sizeof(t));
			t[0] = '[';
			t[1] = '"';
			memset(t + 2, 'a', len);
			t[2 + len] = '"';
			t[3 + len] = ']';
			size_t n = 4 + len, at = 2 + pos;
			for (size_t k = 0; k < sizeof(plain); k++) {
				t[at] = (char)plain[k];
				cJSON *v = json_parse(t, n, 0, NULL);
				ck_assert_msg(v != NULL, "0x%02x at %zu of %zu refused", plain[k], pos, len);
				memcpy(want, t + 2, len);
				want[len] = '\0';
				ck_assert_str_eq(cJSON_GetArrayItem(v, 0)->valuestring, want);
				cJSON_Delete(v);
			}
			for (size_t k = 0; k < sizeof(control); k++) {
				t[at] = (char)control[k];
				ck_assert_int_eq(fault_of(t, n, 0, &off), JSON_CONTROL);
				ck_assert_uint_eq(off, at);
				/* a second one later changes nothing */
				if (pos + 1 < len) {
					t[at + 1] = 0x01;
					ck_assert_int_eq(fault_of(t, n, 0, &off), JSON_CONTROL);
					ck_assert_uint_eq(off, at);
					t[at + 1] = 'a';
				}
			}
			for (size_t k = 0; k < sizeof(bad); k++) {
				t[at] = (char)bad[k];
				ck_assert_int_eq(fault_of(t, n, 0, &off), JSON_UTF8);
				ck_assert_uint_eq(off, at);
			}
			/* A quote ends the string there: what follows is not JSON. */
			t[at] = '"';
			ck_assert_int_eq(fault_of(t, n, 0, NULL), JSON_SYNTAX);
			/* A backslash: "\a" is no escape, "\\" is one. */
			t[at] = '\\';
			ck_assert_int_eq(fault_of(t, n, 0, &off), JSON_SYNTAX);
			if (pos + 1 < len) {
				ck_assert_uint_eq(off, at);
				t[at + 1] = '\\';
				cJSON *v = json_parse(t, n, 0, NULL);
				ck_assert_ptr_nonnull(v);
				ck_assert_uint_eq(strlen(cJSON_GetArrayItem(v, 0)->valuestring), len - 1);
				ck_assert_int_eq(cJSON_GetArrayItem(v, 0)->valuestring[pos], '\\');
				cJSON_Delete(v);
				t[at + 1] = 'a';
			}
			/* Two bytes of UTF-8 (é) in place of two plain ones. */
			if (pos + 1 < len) {
				t[at] = (char)0xc3;
				t[at + 1] = (char)0xa9;
				cJSON *v = json_parse(t, n, 0, NULL);
				ck_assert_ptr_nonnull(v);
				ck_assert_int_eq((unsigned char)cJSON_GetArrayItem(v, 0)->valuestring[pos], 0xc3);
				cJSON_Delete(v);
				t[at + 1] = 'a';
			}
			t[at] = 'a';
		}
		/* A text that ends in a backslash (in a buffer of just its
		 * size, for the sanitizer): the scan goes on past the escape's
		 * two bytes, beyond the end, and must read nothing there. */
		char *e = malloc(len + 1);
		e[0] = '"';
		memset(e + 1, 'a', len);
		e[len] = '\\';
		ck_assert_int_eq(fault_of(e, len + 1, 0, &off), JSON_SYNTAX);
		ck_assert_uint_eq(off, len + 1);
		free(e);
	}
}
END_TEST

static cJSON *
num(const char *text)
{
	cJSON *n = json_number_parse(text, strlen(text));
	ck_assert_msg(n != NULL, "not a number: %s", text);
	return n;
}

static int
cmp(const char *a, const char *b)
{
	cJSON *x = num(a), *y = num(b);
	int c = json_number_cmp(x, y);
	cJSON_Delete(x);
	cJSON_Delete(y);
	return c;
}

static int
integer(const char *a)
{
	cJSON *x = num(a);
	int r = json_is_integer(x);
	cJSON_Delete(x);
	return r;
}

static int
multiple(const char *a, const char *b)
{
	cJSON *x = num(a), *y = num(b);
	int r = json_multiple_of(x, y);
	cJSON_Delete(x);
	cJSON_Delete(y);
	return r;
}

START_TEST(decimal_arithmetic)
{
	ck_assert_int_eq(cmp("9007199254740993", "9007199254740992"), 1);
	ck_assert_int_eq(cmp("-9007199254740993", "-9007199254740992"), -1);
	ck_assert_int_eq(cmp("1e2", "100.000"), 0);
	ck_assert_int_eq(cmp("-0", "0e5"), 0);
	ck_assert_int_eq(cmp("0.1", "0.10000000000000000000001"), -1);
	ck_assert_int_eq(cmp("1e400", "9e399"), 1);
	ck_assert_int_eq(cmp("1e-400", "0"), 1);
	ck_assert_int_eq(cmp("-1e-400", "0"), -1);
	ck_assert_int_eq(cmp("123.45", "12345e-2"), 0);
	ck_assert_int_eq(cmp("99", "100"), -1);
	ck_assert_int_eq(cmp("1e99999999999999999999", "1"), 1);          /* no overflow */
	ck_assert_int_eq(cmp("1e-99999999999999999999", "0"), 1);
	ck_assert(json_number_parse("01", 2) == NULL);
	ck_assert(json_number_parse("1 ", 2) == NULL);
	ck_assert(json_number_parse("", 0) == NULL);
	ck_assert(integer("10"));
	ck_assert(integer("1.0"));
	ck_assert(integer("1.5e1"));
	ck_assert(integer("1e400"));
	ck_assert(integer("0.0"));
	ck_assert(!integer("1.05e1"));
	ck_assert(!integer("9007199254740993.5"));
	ck_assert(!integer("1e-5"));
	ck_assert(multiple("9007199254740993", "3"));
	ck_assert(!multiple("9007199254740995", "3"));
	ck_assert(multiple("0", "7"));
	ck_assert(multiple("-21", "7"));
	ck_assert(multiple("4.5", "1.5"));
	ck_assert(!multiple("4.6", "1.5"));
	ck_assert(multiple("1e1000", "1e999"));
	ck_assert(!multiple("1e999", "1e1000"));
	ck_assert(multiple("123456789012345678901234567890", "10"));
	ck_assert(!multiple("123456789012345678901234567891", "10"));
	ck_assert(multiple("99999999999999999999999999999999999999", "9999999999999999999"));
	cJSON *d = cJSON_CreateNumber(0.5);
	cJSON *k = num("0.25");
	ck_assert(json_multiple_of(d, k));
	ck_assert_int_eq(json_number_cmp(d, k), 1);
	cJSON_Delete(d);
	cJSON_Delete(k);
}
END_TEST

Suite *
json_suite(void)
{
	Suite *s = suite_create("json");
	TCase *tc = tcase_create("core");
	/* unique_items_many takes seconds under ASan on a busy machine; a
	 * quadratic check of its 200,000 items would take hours. */
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, raw_control_characters);
	tcase_add_test(tc, grammar);
	tcase_add_test(tc, ids_echoed_as_written);
	tcase_add_test(tc, messages_written);
	tcase_add_test(tc, utf8_fault_named);
	tcase_add_test(tc, parse_into_an_arena);
	tcase_add_test(tc, whitespace_between_tokens);
	tcase_add_test(tc, string_scan_every_place);
	tcase_add_test(tc, parse_three_ways);
	tcase_add_test(tc, arena_inline_bump);
	tcase_add_test(tc, numbers_by_value);
	tcase_add_test(tc, unique_items_many);
	tcase_add_test(tc, parse_and_print);
	tcase_add_test(tc, faults);
	tcase_add_test(tc, decimal_arithmetic);
	tcase_add_test(tc, string_scan_boundaries);
	tcase_add_test(tc, string_scan_words);
	tcase_add_test(tc, number_values);
	tcase_add_test(tc, duplicate_names);
	tcase_add_test(tc, envelope_members);
	tcase_add_test(tc, messages_in_turn);
	suite_add_tcase(s, tc);
	return s;
}
