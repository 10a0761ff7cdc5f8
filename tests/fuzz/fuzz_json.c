/* libFuzzer target: daemon/lib/json.c's parser, its two allocators
 * against each other. The first byte picks the nesting allowed (0, the
 * default, or 1..15) and, by its high bits, where the second arena's
 * blocks end; the rest is the text. json_parse (cJSON's allocator) and
 * json_parse_arena (arenas of small blocks, one of them part used, its
 * fast path inline) must give the same tree,
 * printed, or the same fault at the same byte with the same message; a
 * tree's print parses again to the same print. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
differ(const char *what)
{
	fprintf(stderr, "fuzz_json: %s\n", what);
	abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	int depth = data[0] & 15;
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	struct arena *a1 = arena_new(256), *a2 = arena_new(256);
	if (a1 == NULL || a2 == NULL || arena_alloc(a2, 1 + (size_t)(data[0] >> 4) * 15) == NULL)
		abort();
	struct json_error e[3];
	cJSON *t[3];
	t[0] = json_parse(text, len, depth, &e[0]);
	t[1] = json_parse_arena(text, len, depth, &e[1], a1);
	t[2] = json_parse_arena(text, len, depth, &e[2], a2);
	if (t[0] == NULL) {
		for (int i = 1; i < 3; i++) {
			if (t[i] != NULL)
				differ("one allocator took what another refused");
			if (e[i].fault != e[0].fault || e[i].offset != e[0].offset ||
			    strcmp(e[i].message, e[0].message) != 0)
				differ("not the same fault");
		}
	} else {
		char *p0 = json_print(t[0]);
		if (p0 == NULL)
			differ("a parsed tree that does not print");
		for (int i = 1; i < 3; i++) {
			if (t[i] == NULL)
				differ("one allocator refused what another took");
			char *p = json_print(t[i]);
			if (p == NULL || strcmp(p, p0) != 0 || !json_equal(t[0], t[i]))
				differ("not the same tree");
			free(p);
		}
		struct json_error e2;
		cJSON *again = json_parse(p0, strlen(p0), depth, &e2);
		char *p2 = again ? json_print(again) : NULL;
		if (p2 == NULL || strcmp(p2, p0) != 0)
			differ("a print that does not parse back to itself");
		free(p2);
		cJSON_Delete(again);
		free(p0);
	}
	cJSON_Delete(t[0]);
	arena_free(a1);
	arena_free(a2);
	return 0;
}
