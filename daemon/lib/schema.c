#include "schema.h"
#include "json.h"

#include <cjson/cJSON.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

/* cJSON_Is*, as the library defines them, inline: validate asks a
 * dozen of them of each schema and value, each a call through the PLT. */
static inline int
is_type(const cJSON *v, int type)
{
	return v != NULL && (v->type & 0xff) == type;
}
#define is_array(v) is_type((v), cJSON_Array)
#define is_false(v) is_type((v), cJSON_False)
#define is_number(v) is_type((v), cJSON_Number)
#define is_object(v) is_type((v), cJSON_Object)
#define is_string(v) is_type((v), cJSON_String)
#define is_true(v) is_type((v), cJSON_True)
static inline int
is_bool(const cJSON *v)
{
	return v != NULL && (v->type & (cJSON_True | cJSON_False)) != 0;
}

/* A schema's patterns compiled once, when the config is read: pattern
 * and patternProperties nodes, sorted by address for bsearch. The match
 * data and context are reused by every match; a process validates one
 * value at a time, and a worker forked from the master has its own copy. */
struct compiled_pattern {
	const cJSON *node;          /* the "pattern" string or the patternProperties member */
	pcre2_code *re;
};

/* The keywords of one schema object, found in one pass over its members
 * rather than by a lookup per keyword. */
struct kw {
	const cJSON *ref, *type, *enum_, *const_, *all_of, *any_of, *one_of, *not_, *if_, *then_, *else_;
	const cJSON *properties, *required, *additional, *pattern_props, *min_props, *max_props, *names;
	const cJSON *items, *prefix_items, *min_items, *max_items, *unique, *contains;
	const cJSON *min_length, *max_length, *pattern;
	const cJSON *bound[4];      /* minimum, maximum, exclusiveMinimum, exclusiveMaximum */
	const cJSON *multiple_of;
	/* A string type's name as a bit of enum type_bit (load only); 0:
	 * read the name (type_matches). */
	unsigned type_bit;
};

/* A schema object's keywords gathered at load, so that validating a
 * value looks them up rather than walking the object's members against
 * the keyword names each time. */
struct compiled_kw {
	const cJSON *node;
	struct kw kw;
};

struct schema_compiled {
	const cJSON *root;
	struct compiled_pattern *pats;
	size_t n, cap;
	struct compiled_kw *kws;    /* every object in the schema, sorted by address */
	size_t nkw, kwcap;
	pcre2_match_data *md;
	pcre2_match_context *mc;
	pcre2_jit_stack *jit_stack; /* NULL: no pattern is JIT-compiled */
};

struct vctx {
	const cJSON *root;
	const struct schema_compiled *sc;   /* NULL: compile on the fly */
	char *err;
	size_t errlen;
	int depth;
};

int
utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str, *end = s + len;
	while (s < end) {
		unsigned char c = *s;
		if (c < 0x80) {
			s++;
			continue;
		}
		size_t n;
		unsigned cp;
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if ((size_t)(end - s) <= n)
			return 0;
		for (size_t i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		s += n + 1;
	}
	return 1;
}

size_t
utf8_length(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static const char *
json_type_name(const cJSON *v)
{
	switch (v != NULL ? v->type & 0xff : cJSON_Invalid) {
	case cJSON_NULL:
		return "null";
	case cJSON_False:
	case cJSON_True:
		return "boolean";
	case cJSON_Number:
		return "number";
	case cJSON_String:
		return "string";
	case cJSON_Array:
		return "array";
	case cJSON_Object:
		return "object";
	default:
		return "invalid";
	}
}

/* The type names a schema's "type" may hold, as bits: a compiled
 * schema's string "type" is one, found at load. */
enum type_bit {
	TB_NULL = 1, TB_BOOLEAN = 2, TB_NUMBER = 4, TB_STRING = 8, TB_ARRAY = 16, TB_OBJECT = 32,
	TB_INTEGER = 64,
};

/* A type name's bit; 0 for a name no value has. */
static unsigned
type_bit_of(const char *t)
{
	static const struct { const char *name; unsigned bit; } names[] = {
		{ "null", TB_NULL }, { "boolean", TB_BOOLEAN }, { "number", TB_NUMBER },
		{ "string", TB_STRING }, { "array", TB_ARRAY }, { "object", TB_OBJECT },
		{ "integer", TB_INTEGER },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(t, names[i].name) == 0)
			return names[i].bit;
	return 0;
}

/* Whether v is of the type whose bit this is. */
static int
type_bit_matches(unsigned bit, const cJSON *v)
{
	switch (bit) {
	case TB_INTEGER:
		return json_is_integer(v);   /* from the text: 2^53 + 1.5 is not */
	case TB_NUMBER:
		return is_number(v);
	case TB_NULL:
		return is_type(v, cJSON_NULL);
	case TB_BOOLEAN:
		return is_bool(v);
	case TB_STRING:
		return is_string(v);
	case TB_ARRAY:
		return is_array(v);
	case TB_OBJECT:
		return is_object(v);
	default:
		return 0;
	}
}

static int
type_matches(const char *t, const cJSON *v)
{
	return type_bit_matches(type_bit_of(t), v);
}

/* Patterns are ECMA-262 in JSON Schema; PCRE2 reads that dialect
 * (\d \w \s, lookahead, \uXXXX with ALT_BSUX) and, unlike regcomp(3),
 * bounds what a hostile one costs: the compiled form of a pattern fits
 * in 64 KB (link size 2) or the compile fails, and a match stops at
 * PATTERN_MATCH_LIMIT steps and PATTERN_HEAP_KB of backtracking memory.
 * glibc's regcomp took 7 GB for (a*){30000} and seconds of CPU for
 * (){1000}(a?)+, found by tests/fuzz/fuzz_config.c. */
#define PATTERN_MAX_LENGTH 8192
#define PATTERN_MATCH_LIMIT 1000000
#define PATTERN_HEAP_KB 4096
#define PATTERN_JIT_STACK_KB 512     /* pcre2_jit_stack_create(3): enough for any pattern */
#define PATTERN_OPTIONS (PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_ALT_BSUX)

/* A backreference makes matching backtrack on strings a client chooses;
 * JSON Schema's recommended regular expressions leave them out. */
static int
has_backreference(const char *pat)
{
	int in_class = 0;
	for (const char *p = pat; *p != '\0'; p++) {
		if (*p == '\\' && p[1] != '\0') {
			p++;
			if (!in_class && ((*p >= '1' && *p <= '9') || *p == 'k' || *p == 'g'))
				return 1;
		} else if (*p == '[' && !in_class) {
			in_class = 1;
			if (p[1] == '^')
				p++;
			if (p[1] == ']')
				p++;    /* a literal ']' first */
		} else if (*p == ']' && in_class) {
			in_class = 0;
		} else if (*p == '(' && p[1] == '?' && p[2] == 'P' && p[3] == '=') {
			return 1;       /* (?P=name) */
		}
	}
	return 0;
}

/* The compiled pattern, or NULL with why in why[]. */
static pcre2_code *
compile_pattern(const char *pat, char *why, size_t whylen)
{
	size_t len = strlen(pat);
	if (len > PATTERN_MAX_LENGTH) {
		snprintf(why, whylen, "longer than %d bytes", PATTERN_MAX_LENGTH);
		return NULL;
	}
	if (has_backreference(pat)) {
		snprintf(why, whylen, "backreferences such as \\1 are not supported");
		return NULL;
	}
	int code;
	PCRE2_SIZE at;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, PATTERN_OPTIONS, &code, &at, NULL);
	if (re == NULL) {
		PCRE2_UCHAR msg[160];
		if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
			snprintf((char *)msg, sizeof(msg), "error %d", code);
		snprintf(why, whylen, "%s at offset %zu", (const char *)msg, (size_t)at);
	}
	return re;
}

static pcre2_match_context *
match_context_new(void)
{
	pcre2_match_context *mc = pcre2_match_context_create(NULL);
	if (mc != NULL) {
		/* JIT matching honours match_limit (counted its own way) but not
		 * heap_limit; its stack is bounded by PATTERN_JIT_STACK_KB. */
		pcre2_set_match_limit(mc, PATTERN_MATCH_LIMIT);
		pcre2_set_heap_limit(mc, PATTERN_HEAP_KB);
	}
	return mc;
}

/* 1 if str matches, 0 if not, -1 if the match went past its limits.
 * With sc, its match data and context; without, made for this match. */
static int
pattern_matches(const struct schema_compiled *sc, const pcre2_code *re, const char *str)
{
	pcre2_match_data *md = sc != NULL ? sc->md : pcre2_match_data_create(1, NULL);
	pcre2_match_context *mc = sc != NULL ? sc->mc : match_context_new();
	int rc = PCRE2_ERROR_NOMEMORY;
	if (md != NULL && mc != NULL)
		rc = pcre2_match(re, (PCRE2_SPTR)str, strlen(str), 0, 0, md, mc);
	if (sc == NULL) {
		pcre2_match_context_free(mc);
		pcre2_match_data_free(md);
	}
	if (rc >= 0)
		return 1;
	return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

static int
compiled_cmp(const void *a, const void *b)
{
	const cJSON *x = ((const struct compiled_pattern *)a)->node;
	const cJSON *y = ((const struct compiled_pattern *)b)->node;
	return x < y ? -1 : x > y;
}

/* The pattern compiled at load for node, or NULL when the schema it is
 * in was not compiled (a $ref into another root cannot happen; a schema
 * given at run time has no sc). */
static const pcre2_code *
compiled_find(const struct schema_compiled *sc, const cJSON *node)
{
	if (sc == NULL || sc->n == 0)
		return NULL;
	struct compiled_pattern key = { node, NULL };
	const struct compiled_pattern *p = bsearch(&key, sc->pats, sc->n, sizeof(*sc->pats), compiled_cmp);
	return p != NULL ? p->re : NULL;
}

/* Whether str matches the pattern text pat held in node: 1, 0, -1 when
 * the match went past its limits, -2 when pat does not compile (why). */
static int
match_node(const struct vctx *x, const cJSON *node, const char *pat, const char *str,
    char *why, size_t whylen)
{
	const pcre2_code *re = compiled_find(x->sc, node);
	if (re != NULL)
		return pattern_matches(x->sc, re, str);
	pcre2_code *own = compile_pattern(pat, why, whylen);
	if (own == NULL)
		return -2;
	int hit = pattern_matches(NULL, own, str);
	pcre2_code_free(own);
	return hit;
}

static const cJSON *
resolve_ref(const cJSON *root, const char *ref)
{
	if (ref[0] != '#')
		return NULL;
	const cJSON *cur = root;
	const char *p = ref + 1;
	while (*p == '/') {
		p++;
		char tok[256];
		size_t n = 0;
		while (*p && *p != '/' && n < sizeof(tok) - 1) {
			if (p[0] == '~' && p[1] == '1') {
				tok[n++] = '/';
				p += 2;
			} else if (p[0] == '~' && p[1] == '0') {
				tok[n++] = '~';
				p += 2;
			} else {
				tok[n++] = *p++;
			}
		}
		tok[n] = '\0';
		if (is_array(cur)) {
			char *end;
			long idx = strtol(tok, &end, 10);
			if (*end != '\0')
				return NULL;
			cur = cJSON_GetArrayItem(cur, (int)idx);
		} else {
			cur = json_get(cur, tok);
		}
		if (cur == NULL)
			return NULL;
	}
	return *p == '\0' ? cur : NULL;
}

static void
gather(const cJSON *schema, struct kw *k)
{
	static const struct { const char *name; size_t off; } names[] = {
		{ "$ref", offsetof(struct kw, ref) },
		{ "type", offsetof(struct kw, type) },
		{ "enum", offsetof(struct kw, enum_) },
		{ "const", offsetof(struct kw, const_) },
		{ "allOf", offsetof(struct kw, all_of) },
		{ "anyOf", offsetof(struct kw, any_of) },
		{ "oneOf", offsetof(struct kw, one_of) },
		{ "not", offsetof(struct kw, not_) },
		{ "if", offsetof(struct kw, if_) },
		{ "then", offsetof(struct kw, then_) },
		{ "else", offsetof(struct kw, else_) },
		{ "properties", offsetof(struct kw, properties) },
		{ "required", offsetof(struct kw, required) },
		{ "additionalProperties", offsetof(struct kw, additional) },
		{ "patternProperties", offsetof(struct kw, pattern_props) },
		{ "minProperties", offsetof(struct kw, min_props) },
		{ "maxProperties", offsetof(struct kw, max_props) },
		{ "propertyNames", offsetof(struct kw, names) },
		{ "items", offsetof(struct kw, items) },
		{ "prefixItems", offsetof(struct kw, prefix_items) },
		{ "minItems", offsetof(struct kw, min_items) },
		{ "maxItems", offsetof(struct kw, max_items) },
		{ "uniqueItems", offsetof(struct kw, unique) },
		{ "contains", offsetof(struct kw, contains) },
		{ "minLength", offsetof(struct kw, min_length) },
		{ "maxLength", offsetof(struct kw, max_length) },
		{ "pattern", offsetof(struct kw, pattern) },
		{ "minimum", offsetof(struct kw, bound[0]) },
		{ "maximum", offsetof(struct kw, bound[1]) },
		{ "exclusiveMinimum", offsetof(struct kw, bound[2]) },
		{ "exclusiveMaximum", offsetof(struct kw, bound[3]) },
		{ "multipleOf", offsetof(struct kw, multiple_of) },
	};
	memset(k, 0, sizeof(*k));
	const cJSON *m;
	cJSON_ArrayForEach(m, schema) {
		if (m->string == NULL)
			continue;
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (m->string[0] == names[i].name[0] && strcmp(m->string, names[i].name) == 0) {
				const cJSON **slot = (const cJSON **)(void *)((char *)k + names[i].off);
				/* As cJSON_GetObjectItemCaseSensitive: the first of duplicates. */
				if (*slot == NULL)
					*slot = m;
				break;
			}
	}
}

/* The keywords gathered at load for schema, or NULL when its schema was
 * not compiled (then validate gathers them itself). */
static const struct kw *
compiled_kw_find(const struct schema_compiled *sc, const cJSON *schema)
{
	if (sc == NULL)
		return NULL;
	size_t lo = 0, hi = sc->nkw;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const cJSON *at = sc->kws[mid].node;
		if (at == schema)
			return &sc->kws[mid].kw;
		if (at < schema)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Where a value is, rendered only when it fails: "arguments.a.b[2]". */
struct vpath {
	const struct vpath *up;
	const char *key;            /* a member's name, or NULL: index */
	int index;
};

static size_t
render_path(const struct vpath *p, char *out, size_t len)
{
	size_t n = p->up != NULL ? render_path(p->up, out, len) : 0;
	if (n >= len - 1)
		return n;
	int w = p->up == NULL ? snprintf(out + n, len - n, "%s", p->key) :
	    p->key != NULL ? snprintf(out + n, len - n, ".%s", p->key) :
	    snprintf(out + n, len - n, "[%d]", p->index);
	if (w < 0)
		return n;
	return (size_t)w >= len - n ? len - 1 : n + (size_t)w;
}

static int validate(struct vctx *x, const cJSON *schema, const cJSON *v, const struct vpath *path);

static int fail(struct vctx *x, const struct vpath *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(struct vctx *x, const struct vpath *path, const char *fmt, ...)
{
	char msg[256], where[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	render_path(path, where, sizeof(where));
	snprintf(x->err, x->errlen, "%s: %s", where, msg);
	return -1;
}

static int
validate_object(struct vctx *x, const struct kw *k, const cJSON *v, const struct vpath *path)
{
	const cJSON *props = k->properties, *required = k->required, *additional = k->additional;
	const cJSON *patprops = k->pattern_props, *min = k->min_props, *max = k->max_props, *names = k->names;
	const cJSON *r;
	cJSON_ArrayForEach(r, required) {
		if (is_string(r) && json_get(v, r->valuestring) == NULL)
			return fail(x, path, "missing required property \"%s\"", r->valuestring);
	}
	int count = is_number(min) || is_number(max) ? cJSON_GetArraySize(v) : 0;
	if (is_number(min) && count < min->valuedouble)
		return fail(x, path, "has fewer properties than minProperties allows");
	if (is_number(max) && count > max->valuedouble)
		return fail(x, path, "has more properties than maxProperties allows");
	const cJSON *item;
	cJSON_ArrayForEach(item, v) {
		struct vpath sub = { path, item->string, 0 };
		if (names != NULL) {
			cJSON *name = cJSON_CreateString(item->string);
			int rc = validate(x, names, name, &sub);
			cJSON_Delete(name);
			if (rc < 0)
				return -1;
		}
		int matched = 0;
		const cJSON *ps = json_get(props, item->string);
		if (ps != NULL) {
			matched = 1;
			if (validate(x, ps, item, &sub) < 0)
				return -1;
		}
		const cJSON *pp;
		cJSON_ArrayForEach(pp, patprops) {
			char why[200];
			int hit = match_node(x, pp, pp->string, item->string, why, sizeof(why));
			if (hit == -2)
				return fail(x, path, "schema patternProperties name \"%s\" does not compile: %s",
				    pp->string, why);
			if (hit < 0)
				return fail(x, path, "property \"%s\" took too long to match against \"%s\"",
				    item->string, pp->string);
			if (hit) {
				matched = 1;
				if (validate(x, pp, item, &sub) < 0)
					return -1;
			}
		}
		if (matched || additional == NULL)
			continue;
		if (is_false(additional))
			return fail(x, path, "unexpected property \"%s\"", item->string);
		if (is_object(additional) && validate(x, additional, item, &sub) < 0)
			return -1;
	}
	return 0;
}

static int
validate_array(struct vctx *x, const struct kw *k, const cJSON *v, const struct vpath *path)
{
	const cJSON *items = k->items, *prefix = k->prefix_items, *min = k->min_items, *max = k->max_items;
	const cJSON *unique = k->unique, *contains = k->contains;
	int n = cJSON_GetArraySize(v);
	char num[32];
	if (is_number(min) && n < min->valuedouble) {
		snprintf(num, sizeof(num), "%d", min->valueint);
		return fail(x, path, "needs at least %s item(s)", num);
	}
	if (is_number(max) && n > max->valuedouble) {
		snprintf(num, sizeof(num), "%d", max->valueint);
		return fail(x, path, "allows at most %s item(s)", num);
	}
	int nprefix = is_array(prefix) ? cJSON_GetArraySize(prefix) : 0;
	int i = 0;
	const cJSON *item;
	cJSON_ArrayForEach(item, v) {
		struct vpath sub = { path, NULL, i };
		const cJSON *s = NULL;
		if (i < nprefix)
			s = cJSON_GetArrayItem(prefix, i);
		else if (is_object(items) || is_bool(items))
			s = items;
		if (s != NULL && validate(x, s, item, &sub) < 0)
			return -1;
		i++;
	}
	if (is_true(unique) && json_unique_items(v) != 1)
		return fail(x, path, "items must be unique");   /* sorted, not pair by pair */
	if (contains != NULL) {
		int found = 0;
		char saved[512];
		snprintf(saved, sizeof(saved), "%s", x->err);
		cJSON_ArrayForEach(item, v)
			if (validate(x, contains, item, path) == 0) {
				found = 1;
				break;
			}
		if (!found)
			return fail(x, path, "no item matches \"contains\"");
		snprintf(x->err, x->errlen, "%s", saved);
	}
	return 0;
}

static int
validate_string(struct vctx *x, const struct kw *k, const cJSON *v, const struct vpath *path)
{
	const cJSON *minl = k->min_length, *maxl = k->max_length, *pat = k->pattern;
	if (minl == NULL && maxl == NULL && pat == NULL)
		return 0;
	size_t len = utf8_length(v->valuestring);
	char num[32];
	if (is_number(minl) && (double)len < minl->valuedouble) {
		snprintf(num, sizeof(num), "%d", minl->valueint);
		return fail(x, path, "must be at least %s character(s) long", num);
	}
	if (is_number(maxl) && (double)len > maxl->valuedouble) {
		snprintf(num, sizeof(num), "%d", maxl->valueint);
		return fail(x, path, "must be at most %s character(s) long", num);
	}
	if (is_string(pat)) {
		char why[200];
		int hit = match_node(x, pat, pat->valuestring, v->valuestring, why, sizeof(why));
		if (hit == -2)
			return fail(x, path, "schema pattern \"%s\" does not compile: %s", pat->valuestring, why);
		if (hit < 0)
			return fail(x, path, "took too long to match against the pattern \"%s\"", pat->valuestring);
		if (!hit)
			return fail(x, path, "does not match the pattern \"%s\"", pat->valuestring);
	}
	return 0;
}

/* Bounds compare the numbers as written, not their nearest doubles. */
static int
validate_number(struct vctx *x, const struct kw *kw, const cJSON *v, const struct vpath *path)
{
	static const struct {
		const char *msg;
		int fails_if;       /* v compared with the bound: fails on this result */
		int or_equal;
	} bounds[] = {          /* as kw->bound[] */
		{ "must be at least", -1, 0 },
		{ "must be at most", 1, 0 },
		{ "must be greater than", -1, 1 },
		{ "must be less than", 1, 1 },
	};
	const cJSON *k;
	char num[64];
	for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
		k = kw->bound[i];
		if (!is_number(k))
			continue;
		int c = json_number_cmp(v, k);
		if (c == bounds[i].fails_if || (c == 0 && bounds[i].or_equal))
			return fail(x, path, "%s %s", bounds[i].msg, json_number_text(k, num, sizeof(num)));
	}
	if ((k = kw->multiple_of) && is_number(k) && k->valuedouble > 0 && !json_multiple_of(v, k))
		return fail(x, path, "must be a multiple of %s", json_number_text(k, num, sizeof(num)));
	return 0;
}

static int
validate(struct vctx *x, const cJSON *schema, const cJSON *v, const struct vpath *path)
{
	if (is_true(schema))
		return 0;
	if (is_false(schema))
		return fail(x, path, "no value is allowed here");
	if (!is_object(schema))
		return 0;
	if (++x->depth > MAX_DEPTH) {
		x->depth--;
		return fail(x, path, "schema nesting too deep (recursive $ref?)");
	}
	int rc = -1;
	const cJSON *k;
	struct kw own;
	const struct kw *kw = compiled_kw_find(x->sc, schema);
	if (kw == NULL) {
		gather(schema, &own);
		kw = &own;
	}

	if ((k = kw->ref) && is_string(k)) {
		const cJSON *target = resolve_ref(x->root, k->valuestring);
		if (target == NULL) {
			fail(x, path, "cannot resolve $ref \"%s\"", k->valuestring);
			goto out;
		}
		if (validate(x, target, v, path) < 0)
			goto out;
	}
	if ((k = kw->type) != NULL) {
		int ok = 0;
		if (is_string(k)) {
			ok = kw->type_bit != 0 ? type_bit_matches(kw->type_bit, v) : type_matches(k->valuestring, v);
			if (!ok) {
				fail(x, path, "expected %s, got %s", k->valuestring, json_type_name(v));
				goto out;
			}
		} else if (is_array(k)) {
			const cJSON *t;
			char list[128] = "";
			cJSON_ArrayForEach(t, k) {
				if (is_string(t)) {
					ok |= type_matches(t->valuestring, v);
					if (strlen(list) + strlen(t->valuestring) + 4 < sizeof(list)) {
						if (list[0])
							strcat(list, " or ");
						strcat(list, t->valuestring);
					}
				}
			}
			if (!ok) {
				fail(x, path, "expected %s, got %s", list, json_type_name(v));
				goto out;
			}
		}
	}
	if ((k = kw->enum_) && is_array(k)) {
		int found = 0;
		const cJSON *e;
		cJSON_ArrayForEach(e, k)
			if (json_equal(e, v))
				found = 1;
		if (!found) {
			char *allowed = json_print(k);
			fail(x, path, "must be one of %s", allowed ? allowed : "the enum");
			free(allowed);
			goto out;
		}
	}
	if ((k = kw->const_) != NULL && !json_equal(k, v)) {
		char *want = json_print(k);
		fail(x, path, "must be %s", want ? want : "the constant");
		free(want);
		goto out;
	}
	if (is_object(v) && validate_object(x, kw, v, path) < 0)
		goto out;
	if (is_array(v) && validate_array(x, kw, v, path) < 0)
		goto out;
	if (is_string(v) && validate_string(x, kw, v, path) < 0)
		goto out;
	if (is_number(v) && validate_number(x, kw, v, path) < 0)
		goto out;

	const cJSON *sub;
	if ((k = kw->all_of) && is_array(k)) {
		cJSON_ArrayForEach(sub, k)
			if (validate(x, sub, v, path) < 0)
				goto out;
	}
	if ((k = kw->any_of) && is_array(k)) {
		int any = 0;
		cJSON_ArrayForEach(sub, k)
			if (validate(x, sub, v, path) == 0) {
				any = 1;
				break;
			}
		if (!any) {
			fail(x, path, "matches none of the anyOf alternatives");
			goto out;
		}
	}
	if ((k = kw->one_of) && is_array(k)) {
		int n = 0;
		cJSON_ArrayForEach(sub, k)
			if (validate(x, sub, v, path) == 0)
				n++;
		if (n != 1) {
			fail(x, path, "%s", n == 0 ? "matches none of the oneOf alternatives" :
			    "matches more than one oneOf alternative");
			goto out;
		}
	}
	if ((k = kw->not_) != NULL) {
		if (validate(x, k, v, path) == 0) {
			fail(x, path, "matches a schema it must not match");
			goto out;
		}
	}
	if ((k = kw->if_) != NULL) {
		const cJSON *branch = validate(x, k, v, path) == 0 ? kw->then_ : kw->else_;
		if (branch != NULL && validate(x, branch, v, path) < 0)
			goto out;
	}
	rc = 0;
out:
	x->depth--;
	return rc;
}

int
schema_validate(const cJSON *schema, const cJSON *value, const char *where,
    char *err, size_t errlen)
{
	struct vctx x = { schema, NULL, err, errlen, 0 };
	struct vpath root = { NULL, where, 0 };
	err[0] = '\0';
	return validate(&x, schema, value, &root);
}

int
schema_validate_compiled(const struct schema_compiled *sc, const cJSON *value, const char *where,
    char *err, size_t errlen)
{
	struct vctx x = { sc->root, sc, err, errlen, 0 };
	struct vpath root = { NULL, where, 0 };
	err[0] = '\0';
	return validate(&x, sc->root, value, &root);
}

/* Compiles pat for node and keeps it in sc (when sc is not NULL). */
static int
check_pattern(struct schema_compiled *sc, const cJSON *node, const char *pat, char *why, size_t whylen)
{
	pcre2_code *re = compile_pattern(pat, why, whylen);
	if (re == NULL)
		return -1;
	if (sc == NULL) {
		pcre2_code_free(re);
		return 0;
	}
	if (sc->n == sc->cap) {
		size_t cap = sc->cap ? sc->cap * 2 : 8;
		struct compiled_pattern *p = realloc(sc->pats, cap * sizeof(*p));
		if (p == NULL) {
			pcre2_code_free(re);
			snprintf(why, whylen, "out of memory");
			return -1;
		}
		sc->pats = p;
		sc->cap = cap;
	}
	/* JIT where the library has it: the interpreter is the fallback,
	 * and both stop at the match limit. */
	if (pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0 && sc->jit_stack == NULL) {
		sc->jit_stack = pcre2_jit_stack_create(32 * 1024, PATTERN_JIT_STACK_KB * 1024, NULL);
		if (sc->jit_stack != NULL)
			pcre2_jit_stack_assign(sc->mc, NULL, sc->jit_stack);
	}
	sc->pats[sc->n].node = node;
	sc->pats[sc->n].re = re;
	sc->n++;
	return 0;
}

/* Gathers n's keywords for compiled_kw_find: every object of the
 * schema, whether or not it is a schema (a "properties" object is not),
 * as the walk cannot always tell. */
static int
keep_kw(struct schema_compiled *sc, const cJSON *n)
{
	if (sc->nkw == sc->kwcap) {
		size_t cap = sc->kwcap ? sc->kwcap * 2 : 8;
		struct compiled_kw *p = realloc(sc->kws, cap * sizeof(*p));
		if (p == NULL)
			return -1;
		sc->kws = p;
		sc->kwcap = cap;
	}
	struct kw *k = &sc->kws[sc->nkw].kw;
	sc->kws[sc->nkw].node = n;
	gather(n, k);
	if (is_string(k->type))
		k->type_bit = type_bit_of(k->type->valuestring);
	sc->nkw++;
	return 0;
}

static int
compiled_kw_cmp(const void *a, const void *b)
{
	const cJSON *x = ((const struct compiled_kw *)a)->node;
	const cJSON *y = ((const struct compiled_kw *)b)->node;
	return x < y ? -1 : x > y;
}

/* Walk a schema checking patterns and references (and, with sc,
 * compiling them and gathering its objects' keywords). */
static int
check_node(struct schema_compiled *sc, const cJSON *root, const cJSON *n, int depth,
    char *err, size_t errlen)
{
	if (depth > MAX_DEPTH) {
		snprintf(err, errlen, "schema nested too deeply");
		return -1;
	}
	if (!is_object(n) && !is_array(n))
		return 0;
	if (sc != NULL && is_object(n) && keep_kw(sc, n) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	const cJSON *c;
	cJSON_ArrayForEach(c, n) {
		char why[200];
		if (c->string != NULL && strcmp(c->string, "pattern") == 0 && is_string(c) &&
		    check_pattern(sc, c, c->valuestring, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "pattern \"%s\" is not a regular expression mcpd can use: %s",
			    c->valuestring, why);
			return -1;
		}
		/* Their names are patterns too. */
		if (c->string != NULL && strcmp(c->string, "patternProperties") == 0 && is_object(c)) {
			const cJSON *pp;
			cJSON_ArrayForEach(pp, c) {
				if (check_pattern(sc, pp, pp->string, why, sizeof(why)) < 0) {
					snprintf(err, errlen, "patternProperties name \"%s\" is not a regular expression "
					    "mcpd can use: %s", pp->string, why);
					return -1;
				}
			}
		}
		if (c->string != NULL && strcmp(c->string, "$ref") == 0 && is_string(c) &&
		    resolve_ref(root, c->valuestring) == NULL) {
			snprintf(err, errlen, "$ref \"%s\" does not resolve (only local #/... references are supported)", c->valuestring);
			return -1;
		}
		if (c->string != NULL && (strcmp(c->string, "enum") == 0 || strcmp(c->string, "const") == 0 ||
		    strcmp(c->string, "default") == 0 || strcmp(c->string, "examples") == 0))
			continue;
		if (check_node(sc, root, c, depth + 1, err, errlen) < 0)
			return -1;
	}
	return 0;
}

int
schema_check(const cJSON *schema, char *err, size_t errlen)
{
	if (!is_object(schema) && !is_bool(schema)) {
		snprintf(err, errlen, "a schema must be an object");
		return -1;
	}
	return check_node(NULL, schema, schema, 0, err, errlen);
}

struct schema_compiled *
schema_compile(const cJSON *schema, char *err, size_t errlen)
{
	if (!is_object(schema) && !is_bool(schema)) {
		snprintf(err, errlen, "a schema must be an object");
		return NULL;
	}
	struct schema_compiled *sc = calloc(1, sizeof(*sc));
	if (sc == NULL || (sc->md = pcre2_match_data_create(1, NULL)) == NULL ||
	    (sc->mc = match_context_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	sc->root = schema;
	if (check_node(sc, schema, schema, 0, err, errlen) < 0)
		goto fail;
	if (sc->n > 1)
		qsort(sc->pats, sc->n, sizeof(*sc->pats), compiled_cmp);
	if (sc->nkw > 1)
		qsort(sc->kws, sc->nkw, sizeof(*sc->kws), compiled_kw_cmp);
	return sc;
fail:
	schema_compiled_free(sc);
	return NULL;
}

size_t
schema_compiled_patterns(const struct schema_compiled *sc)
{
	return sc != NULL ? sc->n : 0;
}

void
schema_compiled_free(struct schema_compiled *sc)
{
	if (sc == NULL)
		return;
	for (size_t i = 0; i < sc->n; i++)
		pcre2_code_free(sc->pats[i].re);
	free(sc->pats);
	free(sc->kws);
	pcre2_match_data_free(sc->md);
	pcre2_match_context_free(sc->mc);
	pcre2_jit_stack_free(sc->jit_stack);
	free(sc);
}
