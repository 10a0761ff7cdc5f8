/* libFuzzer target: a JSON-RPC message as a POST body reaches the MCP
 * endpoint (daemon/mcp/endpoint.c, parsed by daemon/lib/jsonrpc.c), then
 * its params.arguments checked against the input schemas of a few tools
 * (daemon/lib/schema.c), as tools/call does, and the answer that echoes
 * the id. The schemas are fixed: what an operator
 * writes in mcpd.yaml (the short input: form, the 2020-12 conformance
 * tool, and one with every keyword schema.c knows). Messages are parsed
 * into an arena: the same text parsed with malloc must give the same tree
 * or the same fault at the same byte. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "json.h"
#include "jsonrpc.h"
#include "schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static const char *const schema_texts[] = {
	/* input: { name: string, times: { type: integer, minimum: 1, maximum: 10 } }, required: [name] */
	"{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
	"\"times\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":10},"
	"\"path\":{\"type\":\"string\",\"pattern\":\"^/\"}},\"required\":[\"name\"]}",

	/* conf/conformance.yaml: json_schema_2020_12_tool */
	"{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"type\":\"object\","
	"\"$defs\":{\"address\":{\"$anchor\":\"addressDef\",\"type\":\"object\",\"properties\":"
	"{\"street\":{\"type\":\"string\"},\"city\":{\"type\":\"string\"}}}},"
	"\"properties\":{\"name\":{\"type\":\"string\"},\"address\":{\"$ref\":\"#/$defs/address\"},"
	"\"contactMethod\":{\"type\":\"string\",\"enum\":[\"phone\",\"email\"]},"
	"\"phone\":{\"type\":\"string\"},\"email\":{\"type\":\"string\"}},"
	"\"allOf\":[{\"anyOf\":[{\"required\":[\"phone\"]},{\"required\":[\"email\"]}]}],"
	"\"if\":{\"properties\":{\"contactMethod\":{\"const\":\"phone\"}},\"required\":[\"contactMethod\"]},"
	"\"then\":{\"required\":[\"phone\"]},\"else\":{\"required\":[\"email\"]},"
	"\"additionalProperties\":false}",

	/* every keyword: lengths, patterns with \d \w \s, numbers, arrays,
	 * property names, a recursive $ref, the combinators */
	"{\"type\":\"object\",\"minProperties\":1,\"maxProperties\":12,"
	"\"propertyNames\":{\"pattern\":\"^[A-Za-z_][\\\\w-]*$\",\"maxLength\":32},"
	"\"properties\":{"
	"\"id\":{\"type\":[\"string\",\"integer\"],\"pattern\":\"^\\\\d{1,8}$\",\"minimum\":0},"
	"\"word\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":16,\"pattern\":\"^\\\\S+$\"},"
	"\"ratio\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"exclusiveMaximum\":1,\"multipleOf\":0.25},"
	"\"count\":{\"type\":\"integer\",\"multipleOf\":3,\"not\":{\"const\":9}},"
	"\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"enum\":[\"a\",\"b\",\"c\",\"d\"]},"
	"\"uniqueItems\":true,\"minItems\":1,\"maxItems\":4,\"contains\":{\"const\":\"a\"}},"
	"\"pair\":{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\"},{\"type\":\"number\"}],\"items\":false},"
	"\"tree\":{\"$ref\":\"#/$defs/node\"},"
	"\"mode\":{\"oneOf\":[{\"const\":\"fast\"},{\"const\":\"safe\"},{\"type\":\"null\"}]},"
	"\"when\":{\"anyOf\":[{\"type\":\"string\",\"pattern\":\"^[0-9]{4}-[0-9]{2}-[0-9]{2}$\"},{\"type\":\"integer\"}]},"
	"\"opts\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"boolean\"}}},"
	"\"patternProperties\":{\"^x-[a-z]+$\":{\"type\":\"string\"},\"^[A-Z]+$\":true},"
	"\"additionalProperties\":false,"
	"\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
	"\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}},\"required\":[\"v\"]}}}",
};
#define NSCHEMAS (sizeof(schema_texts) / sizeof(schema_texts[0]))

static cJSON *schemas[NSCHEMAS];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	for (size_t i = 0; i < NSCHEMAS; i++) {
		char err[512];
		schemas[i] = cJSON_Parse(schema_texts[i]);
		if (schemas[i] == NULL || schema_check(schemas[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "fuzz_jsonrpc: schema %zu: %s\n", i, schemas[i] ? err : "not JSON");
			abort();
		}
	}
	return 0;
}

/* Nesting of a parsed tree (1 for a scalar). */
static int
depth(const cJSON *v)
{
	int max = 0;
	for (const cJSON *c = v->child; c != NULL; c = c->next) {
		int d = depth(c);
		if (d > max)
			max = d;
	}
	return max + 1;
}

/* The parser with its two allocators: one answer. */
static void
same_either_way(const char *body, size_t size)
{
	struct json_error e1, e2;
	struct arena *a = arena_new(256);
	if (a == NULL)
		return;
	cJSON *t1 = json_parse(body, size, 64, &e1);
	cJSON *t2 = json_parse_arena(body, size, 64, &e2, a);
	if ((t1 == NULL) != (t2 == NULL))
		abort();
	if (t1 == NULL) {
		if (e1.fault != e2.fault || e1.offset != e2.offset || strcmp(e1.message, e2.message) != 0)
			abort();
	} else {
		char *p1 = json_print(t1), *p2 = json_print(t2);
		if (p1 == NULL || p2 == NULL || strcmp(p1, p2) != 0 || !json_equal(t1, t2))
			abort();
		free(p1);
		free(p2);
	}
	cJSON_Delete(t1);
	arena_free(a);
}

/* Kept across inputs as a worker keeps it across requests: each input's
 * tree is parsed into the arena the last one left. */
static struct jsonrpc_reader reader;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The body exactly as long as it is: no NUL after it to lean on. */
	char *body = malloc(size ? size : 1);
	if (body == NULL)
		return 0;
	memcpy(body, data, size);
	same_either_way(body, size);
	struct jsonrpc_msg m;
	int code;
	char why[256];
	cJSON *eid = NULL;
	if (jsonrpc_parse(&reader, body, size, 64, &m, &code, why, sizeof(why), &eid) < 0) {
		if (code != JSONRPC_PARSE_ERROR && code != JSONRPC_INVALID_REQUEST)
			abort();
		free(jsonrpc_error(eid, code, why, NULL));
		cJSON_Delete(eid);
		free(body);
		return 0;
	}
	cJSON_Delete(eid);
	free(body);
	/* The depth check counts without parsing: it must agree with the
	 * parser, or a deeper tree than json_depth gets through. */
	if (depth(m.root) > 64 + 1)
		abort();
	if ((m.kind == RPC_REQUEST) != (m.id != NULL && m.method != NULL))
		abort();
	if (m.kind == RPC_REQUEST)
		free(jsonrpc_result(m.id, cJSON_CreateObject()));
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(m.params, "arguments");
	if (cJSON_IsObject(args)) {
		for (size_t i = 0; i < NSCHEMAS; i++) {
			char err[512];
			if (schema_validate(schemas[i], args, "arguments", err, sizeof(err)) < 0 &&
			    strncmp(err, "arguments", 9) != 0) {
				fprintf(stderr, "a validation error that names no place: %s\n", err);
				abort();
			}
		}
	}
	/* structuredContent is checked against an output schema the same way. */
	const cJSON *sc = cJSON_GetObjectItemCaseSensitive(m.result, "structuredContent");
	if (sc != NULL) {
		char err[512];
		schema_validate(schemas[2], sc, "structuredContent", err, sizeof(err));
	}
	jsonrpc_free(&m);
	return 0;
}
