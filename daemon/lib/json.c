#include "json.h"

#include "arena.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* ---- parsing ---- */

struct parser {
	const unsigned char *s;
	size_t len, pos;
	int depth, max_depth;
	struct json_error *err;
	/* Where nodes and strings come from: the caller's arena, whose tree
	 * is never given to cJSON_Delete, or (NULL) cJSON's allocator. */
	struct arena *arena;
};

static inline void *
new_bytes(struct parser *p, size_t n)
{
	return p->arena != NULL ? arena_alloc(p->arena, n) : cJSON_malloc(n);
}

/* A node of the type; with n > 0, n bytes for its valuestring at *bytes:
 * after the node, in one allocation, from the arena; from cJSON's
 * allocator, two that cJSON_Delete frees. */
static inline cJSON *
new_node(struct parser *p, int type, size_t n, char **bytes)
{
	cJSON *v;
	if (p->arena != NULL) {
		if ((v = arena_alloc(p->arena, sizeof(*v) + n)) == NULL)
			return NULL;
		if (n > 0)
			*bytes = (char *)(v + 1);
	} else {
		if ((v = cJSON_malloc(sizeof(*v))) == NULL)
			return NULL;
		if (n > 0 && (*bytes = cJSON_malloc(n)) == NULL) {
			cJSON_free(v);
			return NULL;
		}
	}
	*v = (cJSON){ .type = type };
	return v;
}

static void
free_bytes(struct parser *p, void *b)
{
	if (p->arena == NULL)
		cJSON_free(b);
}

static void
free_node(struct parser *p, cJSON *v)
{
	if (p->arena == NULL)
		cJSON_Delete(v);
}

static void fault(struct parser *p, enum json_fault f, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
fault(struct parser *p, enum json_fault f, size_t at, const char *fmt, ...)
{
	if (p->err == NULL)
		return;
	p->err->fault = f;
	p->err->offset = at;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err->message, sizeof(p->err->message), fmt, ap);
	va_end(ap);
}

static void
syntax(struct parser *p)
{
	fault(p, JSON_SYNTAX, p->pos, "invalid JSON near byte %zu", p->pos);
}

/* Inline, the first byte looked at once: compact JSON has no whitespace,
 * and none of the four characters is above ' ' as every token's first
 * byte is. */
static inline void
skip_ws(struct parser *p)
{
	if (p->pos < p->len && p->s[p->pos] > ' ')
		return;
	while (p->pos < p->len) {
		unsigned char c = p->s[p->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

/* Is the next byte, whitespace skipped, c? That byte is looked at first:
 * in compact JSON it is the token. */
static inline int
next_is(struct parser *p, unsigned char c)
{
	if (p->pos < p->len && p->s[p->pos] == c)
		return 1;
	skip_ws(p);
	return p->pos < p->len && p->s[p->pos] == c;
}

static int
hex4(const unsigned char *s, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		unsigned char c = s[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* Length of the UTF-8 sequence at s (at most n bytes there), or 0 if it
 * is not a valid one (overlong, surrogate, beyond U+10FFFF, cut short). */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t k;
	unsigned cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		k = 1;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		k = 2;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		k = 3;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n <= k)
		return 0;
	for (size_t i = 1; i <= k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return k + 1;
}

static size_t
put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Bytes that stand for themselves in a string and need no other look:
 * printable ASCII but '"' and '\\' (and DEL, legal raw). */
static const unsigned char plain_byte[256] = {
	/* 0x00..0x1f: control characters */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/* 0x20..0x7f: all but '"' (0x22) and '\\' (0x5c) */
	1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	/* 0x80..0xff: UTF-8 sequences, checked by utf8_seq */
};

/* The end of the run of plain bytes from s[i] (s has n, i <= n). Sixteen
 * at a time with SSE2 (x86-64 has it): a byte below 0x20 as a signed
 * byte is a control character or >= 0x80. Then eight at a time: a byte
 * >= 0x80 has its high bit set; so has, in x - 0x20 or in
 * (x xor '"') - 1 or (x xor '\\') - 1, a byte below 0x20 or equal to
 * '"' or '\\', or one above such a byte (a borrow): the lowest flagged
 * byte is the first that is not plain. */
static inline size_t
plain_run(const unsigned char *s, size_t i, size_t n)
{
#ifdef __SSE2__
	const __m128i below = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'),
	    backslash = _mm_set1_epi8('\\');
	while (n - i >= 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(s + i));
		__m128i m = _mm_or_si128(_mm_cmplt_epi8(x, below),
		    _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)));
		unsigned bits = (unsigned)_mm_movemask_epi8(m);
		if (bits != 0)
			return i + (size_t)__builtin_ctz(bits);
		i += 16;
	}
#endif
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
	while (n - i >= 8) {              /* i <= n: string_extent sees to it */
		uint64_t x;
		memcpy(&x, s + i, 8);
		uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
		uint64_t m = (x | (x - ones * 0x20) | (q - ones) | (b - ones)) & highs;
		if (m != 0)
			return i + (size_t)(__builtin_ctzll(m) >> 3);
		i += 8;
	}
#endif
	while (i < n && plain_byte[s[i]])
		i++;
	return i;
}

/* The string at p->pos (the opening quote), what may stand raw in it
 * checked: *end is at its closing quote, *escapes says if it has any.
 * -1 with the fault. Inline (as the plain copy in string_decode): most
 * strings are names and short values, for which a call would be a good
 * part of the cost. */
static inline __attribute__((always_inline)) int
string_extent(struct parser *p, size_t *endp, int *escapes)
{
	size_t end = p->pos + 1;
	*escapes = 0;
	for (;;) {
		end = plain_run(p->s, end, p->len);
		if (end >= p->len)
			goto unterminated;
		unsigned char c = p->s[end];
		if (c == '"')
			break;
		if (c == '\\') {
			*escapes = 1;
			end += 2;
			if (end > p->len)
				goto unterminated;      /* the backslash was the last byte */
			continue;
		}
		if (c < 0x20) {
			fault(p, JSON_CONTROL, end, "a raw control character (U+%04X) in a string at byte %zu; "
			    "escape it", c, end);
			return -1;
		}
		size_t k = utf8_seq(p->s + end, p->len - end);
		if (k == 0) {
			fault(p, JSON_UTF8, end, "a string that is not valid UTF-8 at byte %zu", end);
			return -1;
		}
		end += k;
	}
	*endp = end;
	return 0;
unterminated:
	p->pos = p->len;
	syntax(p);
	return -1;
}

/* n bytes from s to o: short ones (most names and values) by a few
 * loads and stores rather than a call. */
static inline void
copy_bytes(char *o, const unsigned char *s, size_t n)
{
	if (n >= 8 && n <= 16) {
		memcpy(o, s, 8);
		memcpy(o + n - 8, s + n - 8, 8);
	} else if (n >= 4 && n < 8) {
		memcpy(o, s, 4);
		memcpy(o + n - 4, s + n - 4, 4);
	} else if (n < 4) {
		for (size_t i = 0; i < n; i++)
			o[i] = (char)s[i];
	} else {
		memcpy(o, s, n);
	}
}

static int decode_escapes(struct parser *p, size_t end, char *out);

/* The text of the string from p->pos (its opening quote) to end (its
 * closing one, string_extent's) decoded into out (end - p->pos bytes),
 * NUL-terminated; p->pos after the string. -1 with the fault. */
static inline __attribute__((always_inline)) int
string_decode(struct parser *p, size_t end, int escapes, char *out)
{
	if (escapes)
		return decode_escapes(p, end, out);
	size_t start = p->pos + 1;
	copy_bytes(out, p->s + start, end - start);
	out[end - start] = '\0';
	p->pos = end + 1;
	return 0;
}

/* string_decode's work for a string with escapes. */
static int
decode_escapes(struct parser *p, size_t end, char *out)
{
	size_t start = p->pos + 1, o = 0;
	for (size_t i = start; i < end; ) {
		unsigned char c = p->s[i];
		if (c != '\\') {
			out[o++] = (char)c;
			i++;
			continue;
		}
		unsigned char e = p->s[i + 1];
		unsigned cp;
		switch (e) {
		case '"': case '\\': case '/':
			out[o++] = (char)e;
			break;
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case 't': out[o++] = '\t'; break;
		case 'u':
			if (i + 6 > end || hex4(p->s + i + 2, &cp) < 0)
				goto bad;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				goto bad;           /* a low surrogate alone */
			if (cp >= 0xd800 && cp <= 0xdbff) {
				unsigned lo;
				if (i + 12 > end || p->s[i + 6] != '\\' || p->s[i + 7] != 'u' ||
				    hex4(p->s + i + 8, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
					goto bad;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				i += 6;
			}
			if (cp == 0) {
				fault(p, JSON_NUL, i, "strings containing \\u0000 are not supported");
				return -1;
			}
			o += put_utf8(out + o, cp);
			i += 6;
			continue;
		default:
			goto bad;
		}
		i += 2;
		continue;
bad:
		p->pos = i;
		fault(p, JSON_SYNTAX, i, "invalid escape in a string at byte %zu", i);
		return -1;
	}
	out[o] = '\0';
	p->pos = end + 1;
	return 0;
}

/* A member's name at p->pos (the opening quote), decoded, in bytes of
 * its own (the value's node owns it: cJSON_Delete frees it). */
static char *
parse_name(struct parser *p)
{
	size_t end;
	int escapes;
	if (string_extent(p, &end, &escapes) < 0)
		return NULL;
	char *out = new_bytes(p, end - p->pos);
	if (out == NULL) {
		fault(p, JSON_NOMEM, p->pos + 1, "out of memory");
		return NULL;
	}
	if (string_decode(p, end, escapes, out) < 0) {
		free_bytes(p, out);
		return NULL;
	}
	return out;
}

/* A string value at p->pos (the opening quote). */
static inline __attribute__((always_inline)) cJSON *
string_node(struct parser *p)
{
	size_t end;
	int escapes;
	char *out = NULL;
	if (string_extent(p, &end, &escapes) < 0)
		return NULL;
	cJSON *v = new_node(p, cJSON_String, end - p->pos, &out);
	if (v == NULL) {
		fault(p, JSON_NOMEM, p->pos + 1, "out of memory");
		return NULL;
	}
	v->valuestring = out;
	if (string_decode(p, end, escapes, out) < 0) {
		free_node(p, v);
		return NULL;
	}
	return v;
}

/* The length of the number at s (the JSON grammar), or 0. */
static size_t
number_length(const unsigned char *s, size_t n)
{
	size_t i = 0;
	if (i < n && s[i] == '-')
		i++;
	if (i < n && s[i] == '0')
		i++;
	else if (i < n && s[i] >= '1' && s[i] <= '9')
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	else
		return 0;
	if (i < n && s[i] == '.') {
		size_t d = ++i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == d)
			return 0;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		size_t d = i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == d)
			return 0;
	}
	return i;
}

static cJSON *
number_node(struct parser *p, const char *text, size_t n)
{
	char *lexeme = NULL;
	cJSON *v = new_node(p, cJSON_Number, n + 1, &lexeme);
	if (v == NULL)
		return NULL;
	copy_bytes(lexeme, (const unsigned char *)text, n);
	lexeme[n] = '\0';
	/* As cJSON_CreateNumber sets them. A short integer (ids, counts) is
	 * exact in a double: the same value as strtod's, -0 included. */
	size_t neg = text[0] == '-', i;
	uint64_t u = 0;
	for (i = neg; i < n && n - neg <= 15 && text[i] >= '0' && text[i] <= '9'; i++)
		u = u * 10 + (uint64_t)(text[i] - '0');
	if (i == n)
		v->valuedouble = neg ? -(double)u : (double)u;
	else
		v->valuedouble = strtod(lexeme, NULL);
	if (v->valuedouble >= INT_MAX)
		v->valueint = INT_MAX;
	else if (v->valuedouble <= (double)INT_MIN)
		v->valueint = INT_MIN;
	else
		v->valueint = (int)v->valuedouble;
	v->valuestring = lexeme;
	return v;
}

size_t
json_number_length(const char *s, size_t n)
{
	return number_length((const unsigned char *)s, n);
}

cJSON *
json_number_parse(const char *s, size_t len)
{
	struct parser p = { 0 };
	if (len == 0 || number_length((const unsigned char *)s, len) != len)
		return NULL;
	return number_node(&p, s, len);
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A name that appears twice among an object's members, or NULL. */
static const char *
duplicate_name(const cJSON *obj, size_t n)
{
	if (n < 2)
		return NULL;
	if (n <= 16) {
		/* The first bytes tell most names apart without a call. */
		for (const cJSON *a = obj->child; a != NULL; a = a->next)
			for (const cJSON *b = a->next; b != NULL; b = b->next)
				if (a->string[0] == b->string[0] && strcmp(a->string, b->string) == 0)
					return a->string;
		return NULL;
	}
	const char **names = malloc(n * sizeof(*names));
	if (names == NULL)
		return NULL;
	size_t i = 0;
	for (const cJSON *a = obj->child; a != NULL; a = a->next)
		names[i++] = a->string;
	qsort(names, n, sizeof(*names), name_cmp);
	const char *dup = NULL;
	for (i = 1; i < n && dup == NULL; i++)
		if (strcmp(names[i - 1], names[i]) == 0)
			dup = names[i];
	free(names);
	return dup;
}

static cJSON *parse_value(struct parser *p);

/* Inline into parse_object and parse_array, each with its own constant. */
static inline __attribute__((always_inline)) cJSON *
parse_container(struct parser *p, int object)
{
	size_t at = p->pos;
	if (++p->depth > p->max_depth) {
		fault(p, JSON_DEPTH, at, "JSON nested deeper than %d levels", p->max_depth);
		return NULL;
	}
	cJSON *c = new_node(p, object ? cJSON_Object : cJSON_Array, 0, NULL), *last = NULL;
	if (c == NULL) {
		fault(p, JSON_NOMEM, at, "out of memory");
		return NULL;
	}
	unsigned char close = object ? '}' : ']';
	size_t n = 0;
	p->pos++;
	if (next_is(p, close)) {
		p->pos++;
		p->depth--;
		return c;
	}
	for (;;) {
		char *name = NULL;
		if (object) {
			if (!next_is(p, '"')) {
				syntax(p);
				goto fail;
			}
			if ((name = parse_name(p)) == NULL)
				goto fail;
			if (!next_is(p, ':')) {
				free_bytes(p, name);
				syntax(p);
				goto fail;
			}
			p->pos++;
		}
		skip_ws(p);
		/* A string, the most common member, without parse_value's call. */
		cJSON *v = p->pos < p->len && p->s[p->pos] == '"' ? string_node(p) : parse_value(p);
		if (v == NULL) {
			free_bytes(p, name);
			goto fail;
		}
		v->string = name;       /* owned by v now: cJSON_Delete frees it */
		/* As cJSON_AddItemToArray links it: the first child's prev is
		 * the last child. */
		if (last == NULL) {
			c->child = v;
		} else {
			last->next = v;
			v->prev = last;
		}
		c->child->prev = v;
		last = v;
		n++;
		if (next_is(p, ',')) {
			p->pos++;
			continue;
		}
		if (p->pos < p->len && p->s[p->pos] == close) {     /* whitespace skipped */
			p->pos++;
			break;
		}
		syntax(p);
		goto fail;
	}
	if (object) {
		const char *dup = duplicate_name(c, n);
		if (dup != NULL) {
			fault(p, JSON_DUPLICATE, at, "the name \"%.80s\" appears twice in the object at byte %zu",
			    dup, at);
			goto fail;
		}
	}
	p->depth--;
	return c;
fail:
	free_node(p, c);
	return NULL;
}

static cJSON *
parse_object(struct parser *p)
{
	return parse_container(p, 1);
}

static cJSON *
parse_array(struct parser *p)
{
	return parse_container(p, 0);
}

static inline int
literal(struct parser *p, const char *word, size_t n)
{
	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
		return 0;
	p->pos += n;
	return 1;
}

static cJSON *
parse_value(struct parser *p)
{
	if (p->pos >= p->len) {
		syntax(p);
		return NULL;
	}
	unsigned char c = p->s[p->pos];
	cJSON *v = NULL;
	switch (c) {
	case '{':
		return parse_object(p);
	case '[':
		return parse_array(p);
	case '"':
		return string_node(p);
	case 't':
		if (!literal(p, "true", 4)) {
			syntax(p);
			return NULL;
		}
		if ((v = new_node(p, cJSON_True, 0, NULL)) != NULL)
			return v;
		break;
	case 'f':
		if (!literal(p, "false", 5)) {
			syntax(p);
			return NULL;
		}
		if ((v = new_node(p, cJSON_False, 0, NULL)) != NULL)
			return v;
		break;
	case 'n':
		if (!literal(p, "null", 4)) {
			syntax(p);
			return NULL;
		}
		if ((v = new_node(p, cJSON_NULL, 0, NULL)) != NULL)
			return v;
		break;
	default: {
		size_t n = number_length(p->s + p->pos, p->len - p->pos);
		if (n == 0) {
			syntax(p);
			return NULL;
		}
		v = number_node(p, (const char *)p->s + p->pos, n);
		if (v != NULL) {
			p->pos += n;
			return v;
		}
		break;
	}
	}
	fault(p, JSON_NOMEM, p->pos, "out of memory");
	return NULL;
}

static cJSON *
parse(struct parser *p, const char *text)
{
	if (text == NULL) {
		fault(p, JSON_SYNTAX, 0, "no JSON text");
		return NULL;
	}
	skip_ws(p);
	cJSON *v = parse_value(p);
	if (v == NULL)
		return NULL;
	skip_ws(p);
	if (p->pos < p->len) {
		fault(p, JSON_TRAILING, p->pos, "unexpected data after the JSON value");
		free_node(p, v);
		return NULL;
	}
	return v;
}

cJSON *
json_parse(const char *text, size_t len, int max_depth, struct json_error *err)
{
	struct parser p = { .s = (const unsigned char *)text, .len = len,
	    .max_depth = max_depth > 0 ? max_depth : JSON_MAX_DEPTH, .err = err };
	return parse(&p, text);
}

cJSON *
json_parse_arena(const char *text, size_t len, int max_depth, struct json_error *err, struct arena *a)
{
	struct parser p = { .s = (const unsigned char *)text, .len = len,
	    .max_depth = max_depth > 0 ? max_depth : JSON_MAX_DEPTH, .err = err, .arena = a };
	return parse(&p, text);
}

/* ---- printing ---- */

/* Room for n more bytes and the NUL: 0, or -1 when memory ran out (or
 * had before). */
static int
grow(struct json_buf *o, size_t n)
{
	if (o->failed)
		return -1;
	size_t cap = o->cap ? o->cap : 256;
	while (cap < o->len + n + 1)
		cap *= 2;
	char *b = realloc(o->b, cap);
	if (b == NULL) {
		o->failed = 1;
		return -1;
	}
	o->b = b;
	o->cap = cap;
	return 0;
}

/* Inline, so that a constant n is a store rather than a call. A text
 * that failed is thrown away whole (json_buf_finish): what goes into
 * its buffer after that does not matter. */
static inline void
put(struct json_buf *o, const char *s, size_t n)
{
	if (o->len + n + 1 > o->cap && grow(o, n) < 0)
		return;
	memcpy(o->b + o->len, s, n);
	o->len += n;
}

static void
put_string(struct json_buf *o, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	put(o, "\"", 1);
	const char *run = s;
	for (; s != NULL && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		put(o, run, (size_t)(s - run));
		char esc[6] = { '\\', 0, 0, 0, 0, 0 };
		size_t n = 2;
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			n = 6;
		}
		put(o, esc, n);
		run = s + 1;
	}
	if (s != NULL)
		put(o, run, (size_t)(s - run));
	put(o, "\"", 1);
}

/* A double as JSON: integers in full, others in the fewest digits that
 * read back as the same double; what JSON cannot say is null. */
static size_t
format_double(double d, char *buf, size_t len)
{
	if (!isfinite(d))
		return (size_t)snprintf(buf, len, "null");
	if (d == floor(d) && fabs(d) < 1e17)
		return (size_t)snprintf(buf, len, "%.0f", d);
	int n = 0;
	for (int prec = 15; prec <= 17; prec++) {
		n = snprintf(buf, len, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	return (size_t)n;
}

static void
print_value(struct json_buf *o, const cJSON *v)
{
	char num[64];
	switch (v->type & 0xff) {
	case cJSON_NULL:
		put(o, "null", 4);
		return;
	case cJSON_False:
		put(o, "false", 5);
		return;
	case cJSON_True:
		put(o, "true", 4);
		return;
	case cJSON_Number:
		if (v->valuestring != NULL)
			put(o, v->valuestring, strlen(v->valuestring));
		else
			put(o, num, format_double(v->valuedouble, num, sizeof(num)));
		return;
	case cJSON_String:
		put_string(o, v->valuestring);
		return;
	case cJSON_Raw:
		if (v->valuestring == NULL)
			o->failed = 1;
		else
			put(o, v->valuestring, strlen(v->valuestring));
		return;
	case cJSON_Array:
	case cJSON_Object: {
		int object = (v->type & 0xff) == cJSON_Object;
		put(o, object ? "{" : "[", 1);
		for (const cJSON *c = v->child; c != NULL && !o->failed; c = c->next) {
			if (c != v->child)
				put(o, ",", 1);
			if (object) {
				if (c->string == NULL) {
					o->failed = 1;
					return;
				}
				put_string(o, c->string);
				put(o, ":", 1);
			}
			print_value(o, c);
		}
		put(o, object ? "}" : "]", 1);
		return;
	}
	default:
		o->failed = 1;
	}
}

char *
json_print(const cJSON *v)
{
	struct json_buf o = { NULL, 0, 0, 0 };
	if (v == NULL)
		return NULL;
	print_value(&o, v);
	return json_buf_finish(&o);
}

void
json_buf_put(struct json_buf *o, const char *s, size_t n)
{
	put(o, s, n);
}

void
json_buf_string(struct json_buf *o, const char *s)
{
	put_string(o, s);
}

void
json_buf_value(struct json_buf *o, const cJSON *v)
{
	if (v == NULL)
		o->failed = 1;
	else
		print_value(o, v);
}

char *
json_buf_finish(struct json_buf *o)
{
	if (o->failed || o->b == NULL) {
		free(o->b);
		o->b = NULL;
		return NULL;
	}
	o->b[o->len] = '\0';
	return o->b;
}

/* ---- numbers by value ---- */

/* A number as sign, significant digits (no leading or trailing zeros)
 * and a power of ten: the value is digits * 10^exp. Zero has nd == 0. */
struct dec {
	int neg;
	char *digits;
	size_t nd;
	int64_t exp;
	char small[64];
};

#define EXP_LIMIT ((int64_t)1 << 50)

static void
dec_free(struct dec *d)
{
	if (d->digits != d->small)
		free(d->digits);
}

/* From a number's text; -1 if out of memory. */
static int
dec_from(const cJSON *n, struct dec *d)
{
	char buf[64];
	const char *s = json_number_text(n, buf, sizeof(buf));
	size_t len = strlen(s);
	memset(d, 0, sizeof(*d));
	d->digits = len < sizeof(d->small) ? d->small : malloc(len + 1);
	if (d->digits == NULL)
		return -1;
	const char *p = s;
	if (*p == '-') {
		d->neg = 1;
		p++;
	}
	int64_t frac = 0;
	int dot = 0;
	for (; *p && *p != 'e' && *p != 'E'; p++) {
		if (*p == '.') {
			dot = 1;
			continue;
		}
		if (*p < '0' || *p > '9')
			continue;       /* "null" from an infinite double: zero */
		if (d->nd == 0 && *p == '0') {
			if (dot)
				frac++;
			continue;       /* a leading zero */
		}
		d->digits[d->nd++] = *p;
		if (dot)
			frac++;
	}
	int64_t e = 0;
	if (*p == 'e' || *p == 'E') {
		int eneg = 0;
		p++;
		if (*p == '+' || *p == '-')
			eneg = *p++ == '-';
		for (; *p >= '0' && *p <= '9'; p++)
			if (e < EXP_LIMIT)
				e = e * 10 + (*p - '0');
		if (eneg)
			e = -e;
	}
	d->exp = e - frac;
	while (d->nd > 0 && d->digits[d->nd - 1] == '0') {
		d->nd--;
		d->exp++;
	}
	if (d->nd == 0) {
		d->neg = 0;         /* one zero: 0, -0, 0.00, 0e7 */
		d->exp = 0;
	}
	return 0;
}

static int
dec_cmp(const struct dec *a, const struct dec *b)
{
	if (a->nd == 0 && b->nd == 0)
		return 0;
	if (a->nd == 0)
		return b->neg ? 1 : -1;
	if (b->nd == 0)
		return a->neg ? -1 : 1;
	if (a->neg != b->neg)
		return a->neg ? -1 : 1;
	int sign = a->neg ? -1 : 1;
	/* The place of the leading digit decides first. */
	int64_t ta = (int64_t)a->nd + a->exp, tb = (int64_t)b->nd + b->exp;
	if (ta != tb)
		return ta < tb ? -sign : sign;
	size_t n = a->nd < b->nd ? a->nd : b->nd;
	int c = memcmp(a->digits, b->digits, n);
	if (c != 0)
		return c < 0 ? -sign : sign;
	if (a->nd == b->nd)
		return 0;
	return a->nd < b->nd ? -sign : sign;   /* the longer has more nonzero digits */
}

int
json_number_cmp(const cJSON *a, const cJSON *b)
{
	struct dec da, db;
	if (dec_from(a, &da) < 0)
		return a->valuedouble < b->valuedouble ? -1 : a->valuedouble > b->valuedouble;
	if (dec_from(b, &db) < 0) {
		dec_free(&da);
		return a->valuedouble < b->valuedouble ? -1 : a->valuedouble > b->valuedouble;
	}
	int c = dec_cmp(&da, &db);
	dec_free(&da);
	dec_free(&db);
	return c;
}

int
json_is_integer(const cJSON *n)
{
	if (!cJSON_IsNumber(n))
		return 0;
	if (n->valuestring == NULL)
		return isfinite(n->valuedouble) && n->valuedouble == floor(n->valuedouble);
	struct dec d;
	if (dec_from(n, &d) < 0)
		return n->valuedouble == floor(n->valuedouble);
	int r = d.nd == 0 || d.exp >= 0;
	dec_free(&d);
	return r;
}

typedef unsigned __int128 u128;

static uint64_t
pow10_mod(int64_t e, uint64_t m)
{
	u128 r = 1 % m, b = 10 % m;
	while (e > 0) {
		if (e & 1)
			r = r * b % m;
		b = b * b % m;
		e >>= 1;
	}
	return (uint64_t)r;
}

int
json_multiple_of(const cJSON *v, const cJSON *k)
{
	struct dec dv, dk;
	int r = -1;
	if (dec_from(v, &dv) < 0)
		goto approximate;
	if (dec_from(k, &dk) < 0) {
		dec_free(&dv);
		goto approximate;
	}
	if (dv.nd == 0) {
		r = 1;
	} else if (dk.nd > 0) {
		/* Scale both to integers: v' = dv * 10^sv, k' = dk * 10^sk. */
		int64_t e = dv.exp < dk.exp ? dv.exp : dk.exp;
		int64_t sv = dv.exp - e, sk = dk.exp - e;
		if ((int64_t)dk.nd + sk <= 19) {
			uint64_t kk = 0;
			for (size_t i = 0; i < dk.nd; i++)
				kk = kk * 10 + (uint64_t)(dk.digits[i] - '0');
			for (int64_t i = 0; i < sk; i++)
				kk *= 10;
			u128 rem = 0;
			for (size_t i = 0; i < dv.nd; i++)
				rem = (rem * 10 + (unsigned)(dv.digits[i] - '0')) % kk;
			rem = rem * pow10_mod(sv, kk) % kk;
			r = rem == 0;
		} else if ((int64_t)dv.nd + sv < (int64_t)dk.nd + sk) {
			r = 0;              /* 0 < v' < k' */
		}
	}
	dec_free(&dv);
	dec_free(&dk);
	if (r >= 0)
		return r;
approximate:;
	/* A divisor of more than 19 digits: as doubles. */
	double q = v->valuedouble / k->valuedouble;
	return isfinite(q) && fabs(q - round(q)) <= 1e-9;
}

const char *
json_number_text(const cJSON *n, char *buf, size_t len)
{
	if (n->valuestring != NULL)
		return n->valuestring;
	format_double(n->valuedouble, buf, len);
	return buf;
}

/* ---- equality ---- */

int
json_equal(const cJSON *a, const cJSON *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	int ta = a->type & 0xff, tb = b->type & 0xff;
	if (ta != tb)
		return 0;
	switch (ta) {
	case cJSON_NULL:
	case cJSON_False:
	case cJSON_True:
		return 1;
	case cJSON_Number:
		return json_number_cmp(a, b) == 0;
	case cJSON_String:
	case cJSON_Raw:
		if (a->valuestring == NULL || b->valuestring == NULL)
			return a->valuestring == b->valuestring;
		return strcmp(a->valuestring, b->valuestring) == 0;
	case cJSON_Array: {
		const cJSON *x = a->child, *y = b->child;
		for (; x != NULL && y != NULL; x = x->next, y = y->next)
			if (!json_equal(x, y))
				return 0;
		return x == NULL && y == NULL;
	}
	case cJSON_Object: {
		size_t na = 0, nb = 0;
		for (const cJSON *x = a->child; x != NULL; x = x->next)
			na++;
		for (const cJSON *y = b->child; y != NULL; y = y->next)
			nb++;
		if (na != nb)
			return 0;
		for (const cJSON *x = a->child; x != NULL; x = x->next) {
			if (x->string == NULL)
				return 0;
			const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, x->string);
			if (y == NULL || !json_equal(x, y))
				return 0;
		}
		return 1;
	}
	}
	return 0;
}

/* ---- uniqueness ---- */

static void canon(struct json_buf *o, const cJSON *v);

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A text that is the same for equal values (json_equal) and differs for
 * others: numbers as normalized decimals, object members sorted. */
static void
canon(struct json_buf *o, const cJSON *v)
{
	char buf[48];
	switch (v->type & 0xff) {
	case cJSON_Number: {
		struct dec d;
		if (dec_from(v, &d) < 0) {
			o->failed = 1;
			return;
		}
		int n = snprintf(buf, sizeof(buf), "#%s", d.neg ? "-" : "");
		put(o, buf, (size_t)n);
		put(o, d.digits, d.nd);
		n = snprintf(buf, sizeof(buf), "e%lld", (long long)d.exp);
		put(o, buf, (size_t)n);
		dec_free(&d);
		return;
	}
	case cJSON_Array:
		put(o, "[", 1);
		for (const cJSON *c = v->child; c != NULL && !o->failed; c = c->next) {
			if (c != v->child)
				put(o, ",", 1);
			canon(o, c);
		}
		put(o, "]", 1);
		return;
	case cJSON_Object: {
		size_t n = 0, i = 0;
		for (const cJSON *c = v->child; c != NULL; c = c->next)
			n++;
		char **members = calloc(n ? n : 1, sizeof(char *));
		if (members == NULL) {
			o->failed = 1;
			return;
		}
		for (const cJSON *c = v->child; c != NULL && !o->failed; c = c->next) {
			struct json_buf m = { NULL, 0, 0, 0 };
			put_string(&m, c->string);
			put(&m, ":", 1);
			canon(&m, c);
			put(&m, "", 1);
			if (m.failed) {
				free(m.b);
				o->failed = 1;
				break;
			}
			members[i++] = m.b;
		}
		if (!o->failed) {
			qsort(members, n, sizeof(char *), str_cmp);
			put(o, "{", 1);
			for (i = 0; i < n; i++) {
				if (i > 0)
					put(o, ",", 1);
				put(o, members[i], strlen(members[i]));
			}
			put(o, "}", 1);
		}
		for (i = 0; i < n; i++)
			free(members[i]);
		free(members);
		return;
	}
	default:
		print_value(o, v);
	}
}

int
json_unique_items(const cJSON *array)
{
	size_t n = 0, i = 0;
	for (const cJSON *c = array->child; c != NULL; c = c->next)
		n++;
	char **keys = calloc(n ? n : 1, sizeof(char *));
	if (keys == NULL)
		return -1;
	int r = 1;
	for (const cJSON *c = array->child; c != NULL; c = c->next) {
		struct json_buf o = { NULL, 0, 0, 0 };
		canon(&o, c);
		put(&o, "", 1);
		if (o.failed) {
			free(o.b);
			r = -1;
			break;
		}
		keys[i++] = o.b;
	}
	if (r == 1) {
		qsort(keys, n, sizeof(char *), str_cmp);
		for (size_t k = 1; k < n && r == 1; k++)
			if (strcmp(keys[k - 1], keys[k]) == 0)
				r = 0;
	}
	for (size_t k = 0; k < i; k++)
		free(keys[k]);
	free(keys);
	return r;
}
