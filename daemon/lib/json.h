/* JSON text to cJSON trees and back, exactly as RFC 8259 has it.
 *
 * The parser is strict where cJSON is lenient: no raw control characters
 * in strings, only the four whitespace characters between tokens, numbers
 * by the grammar, no member name twice in an object, no U+0000 (a C
 * string cannot hold it), valid UTF-8, bounded nesting. It keeps each
 * number's text in the number node's valuestring (cJSON_Delete frees it,
 * cJSON_Duplicate copies it), and json_print writes that text back: ids
 * and integers travel as the client wrote them, whatever their size.
 * Numbers are compared by their decimal value, not by the nearest double. */
#ifndef MCPD_JSON_H
#define MCPD_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <string.h>

/* Nesting allowed when the caller gives none (as cJSON's own limit). */
#define JSON_MAX_DEPTH 1000

enum json_fault {
	JSON_SYNTAX,        /* not JSON */
	JSON_TRAILING,      /* something after the value */
	JSON_DEPTH,         /* nested deeper than allowed */
	JSON_UTF8,          /* a string that is not UTF-8 */
	JSON_CONTROL,       /* a raw U+0000..U+001F in a string */
	JSON_NUL,           /* \u0000 in a string */
	JSON_DUPLICATE,     /* a member name twice in one object */
	JSON_NOMEM,
};

struct json_error {
	enum json_fault fault;
	size_t offset;              /* byte of the text where it was found */
	char message[192];          /* one line, without a "Parse error" prefix */
};

/* Parses exactly one value (surrounding whitespace allowed). max_depth 0
 * means JSON_MAX_DEPTH. Returns NULL with err (which may be NULL). */
struct cJSON *json_parse(const char *text, size_t len, int max_depth, struct json_error *err);
/* The same with every node and string from an arena, its allocations
 * inline (a string value or a number's text in the same allocation as its
 * node): a request's tree, only read, that goes with the arena's next
 * reset or free. It must not be given to cJSON_Delete nor changed (cJSON
 * would free or keep its parts); cJSON_Duplicate makes a tree of one's own. */
struct arena;
struct cJSON *json_parse_arena(const char *text, size_t len, int max_depth, struct json_error *err,
    struct arena *a);

/* An object's member by name, as cJSON_GetObjectItemCaseSensitive finds
 * it (NULL for a NULL obj or name, or a node whose children have no
 * names), the first bytes compared before strcmp: handlers look a few
 * names up in every request, and most members differ at once. */
static inline cJSON *
json_get(const cJSON *obj, const char *name)
{
	if (obj == NULL || name == NULL)
		return NULL;
	for (cJSON *v = obj->child; v != NULL && v->string != NULL; v = v->next)
		if (v->string[0] == name[0] && strcmp(v->string, name) == 0)
			return v;
	return NULL;
}

/* Compact JSON of v (numbers from their text when they have one), or
 * NULL when out of memory or v holds an invalid node. Caller frees. */
char *json_print(const struct cJSON *v);

/* A text written piece by piece: json_buf_finish gives it NUL-terminated
 * (the caller frees it), or NULL if memory ran out or a value could not
 * be printed. Start from { 0 }. */
struct json_buf {
	char *b;
	size_t len, cap;
	int failed;
};
void json_buf_put(struct json_buf *o, const char *s, size_t n);   /* bytes as they are */
void json_buf_string(struct json_buf *o, const char *s);          /* a JSON string of s */
void json_buf_value(struct json_buf *o, const struct cJSON *v);   /* v as json_print has it */
char *json_buf_finish(struct json_buf *o);

/* The same JSON value: same type, strings byte for byte, numbers by
 * value (1.0 equals 1, 9007199254740993 does not equal ...992), arrays
 * in order, objects with the same members whatever their order. */
int json_equal(const struct cJSON *a, const struct cJSON *b);

/* Are the items of an array pairwise different (as json_equal has it)?
 * 1 or 0, in n log n; -1 when out of memory. */
int json_unique_items(const struct cJSON *array);

/* Numbers (both must be numbers): -1, 0 or 1 as a < b, a = b, a > b. */
int json_number_cmp(const struct cJSON *a, const struct cJSON *b);
/* Is the number an integer (its fraction zero, as JSON Schema says)? */
int json_is_integer(const struct cJSON *n);
/* Is v an integer multiple of k (k > 0)? */
int json_multiple_of(const struct cJSON *v, const struct cJSON *k);
/* The number's text: as written, or made from its double into buf. */
const char *json_number_text(const struct cJSON *n, char *buf, size_t len);
/* The length of the JSON number at s (at most n bytes), or 0 if none
 * starts there: the parser's own grammar. */
size_t json_number_length(const char *s, size_t n);
/* A number node for s if s is a JSON number (its text kept), else NULL. */
struct cJSON *json_number_parse(const char *s, size_t len);

#endif
