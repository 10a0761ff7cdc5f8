#include "content.h"
#include "defs.h"
#include "json.h"
#include "schema.h"
#include "tool_exec.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *
utf8_sanitize(const char *s, size_t len)
{
	char *out = malloc(len * 3 + 1);
	if (out == NULL)
		return NULL;
	size_t o = 0, i = 0;
	while (i < len) {
		size_t n = 1;
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x80) {
			n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
			if (n == 0 || i + n > len || !utf8_valid(s + i, n)) {
				memcpy(out + o, "\xef\xbf\xbd", 3);
				o += 3;
				i++;
				continue;
			}
		} else if (c == 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);   /* NUL cannot live in a C string */
			o += 3;
			i++;
			continue;
		}
		memcpy(out + o, s + i, n);
		o += n;
		i += n;
	}
	out[o] = '\0';
	return out;
}

cJSON *
content_text(const char *s, size_t len)
{
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "type", "text");
	char *clean = utf8_sanitize(s, len);
	cJSON_AddStringToObject(b, "text", clean ? clean : "");
	free(clean);
	return b;
}

static int
has_string(const cJSON *o, const char *k)
{
	return cJSON_IsString(json_get(o, k));
}

int
content_blocks_check(const cJSON *blocks, char *err, size_t errlen)
{
	if (!cJSON_IsArray(blocks)) {
		snprintf(err, errlen, "content must be a JSON array of content blocks");
		return -1;
	}
	int i = 0;
	const cJSON *b;
	cJSON_ArrayForEach(b, blocks) {
		const cJSON *type = json_get(b, "type");
		if (!cJSON_IsObject(b) || !cJSON_IsString(type)) {
			snprintf(err, errlen, "content[%d] needs a \"type\"", i);
			return -1;
		}
		const char *t = type->valuestring;
		int ok;
		if (strcmp(t, "text") == 0)
			ok = has_string(b, "text");
		else if (strcmp(t, "image") == 0 || strcmp(t, "audio") == 0)
			ok = has_string(b, "data") && has_string(b, "mimeType");
		else if (strcmp(t, "resource") == 0) {
			const cJSON *r = json_get(b, "resource");
			ok = cJSON_IsObject(r) && has_string(r, "uri") &&
			    (has_string(r, "text") || has_string(r, "blob"));
		} else if (strcmp(t, "resource_link") == 0)
			ok = has_string(b, "uri") && has_string(b, "name");
		else {
			snprintf(err, errlen, "content[%d] has unknown type \"%s\"", i, t);
			return -1;
		}
		if (!ok) {
			snprintf(err, errlen, "content[%d] (%s) lacks a required field", i, t);
			return -1;
		}
		i++;
	}
	return 0;
}

static cJSON *error_result(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static cJSON *
error_result(const char *fmt, ...)
{
	char msg[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON *r = cJSON_CreateObject();
	cJSON *c = cJSON_AddArrayToObject(r, "content");
	cJSON_AddItemToArray(c, content_text(msg, strlen(msg)));
	cJSON_AddBoolToObject(r, "isError", 1);
	return r;
}

/* Parse stdout by the tool's output mode. NULL with err when it does not fit. */
static cJSON *
parse_output(const struct tool_def *t, const struct tool_result *r, char *err, size_t errlen)
{
	cJSON *res = cJSON_CreateObject();
	if (t->output == OUT_TEXT) {
		/* Trailing newlines go, as in the shell's $(...): echo hello is "hello". */
		size_t len = r->outlen;
		while (len > 0 && (r->out[len - 1] == '\n' || r->out[len - 1] == '\r'))
			len--;
		cJSON *c = cJSON_AddArrayToObject(res, "content");
		cJSON_AddItemToArray(c, content_text(r->out, len));
		return res;
	}
	struct json_error je;
	cJSON *v = json_parse(r->out, r->outlen, 0, &je);
	if (v == NULL) {
		snprintf(err, errlen, "the tool's output is not valid JSON: %s", je.message);
		cJSON_Delete(res);
		return NULL;
	}
	if (t->output == OUT_JSON) {
		if (!cJSON_IsObject(v)) {
			snprintf(err, errlen, "output: json needs one JSON object on stdout (structuredContent is an object)");
			cJSON_Delete(v);
			cJSON_Delete(res);
			return NULL;
		}
		if (t->output_schema != NULL && (t->output_compiled != NULL ?
		    schema_validate_compiled(t->output_compiled, v, "structuredContent", err, errlen) :
		    schema_validate(t->output_schema, v, "structuredContent", err, errlen)) < 0) {
			cJSON_Delete(v);
			cJSON_Delete(res);
			return NULL;
		}
		/* The text block carries the same JSON for clients that do not
		 * read structuredContent, as the specification recommends. */
		char *txt = json_print(v);
		cJSON *c = cJSON_AddArrayToObject(res, "content");
		cJSON_AddItemToArray(c, content_text(txt ? txt : "", txt ? strlen(txt) : 0));
		free(txt);
		cJSON_AddItemToObject(res, "structuredContent", v);
		return res;
	}
	/* OUT_CONTENT: an array of blocks, or a whole result object. */
	cJSON_Delete(res);
	if (cJSON_IsArray(v)) {
		if (content_blocks_check(v, err, errlen) < 0) {
			cJSON_Delete(v);
			return NULL;
		}
		res = cJSON_CreateObject();
		cJSON_AddItemToObject(res, "content", v);
		return res;
	}
	const cJSON *blocks = json_get(v, "content");
	if (!cJSON_IsObject(v) || content_blocks_check(blocks, err, errlen) < 0) {
		if (!cJSON_IsObject(v))
			snprintf(err, errlen, "output: content expects a JSON array of content blocks");
		cJSON_Delete(v);
		return NULL;
	}
	/* Only the members of a CallToolResult pass. */
	res = cJSON_CreateObject();
	static const char *const keep[] = { "content", "structuredContent", "isError", "_meta", NULL };
	for (size_t i = 0; keep[i] != NULL; i++) {
		cJSON *m = cJSON_DetachItemFromObjectCaseSensitive(v, keep[i]);
		if (m != NULL)
			cJSON_AddItemToObject(res, keep[i], m);
	}
	cJSON_Delete(v);
	return res;
}

cJSON *
tool_result_build(const struct tool_def *t, const struct tool_result *r)
{
	char secs[32];
	snprintf(secs, sizeof(secs), "%.3gs", (double)t->cmd.timeout_ms / 1000.0);
	if (r->deadline)
		return error_result("tool %s was stopped at the invocation's deadline "
		    "(Lambda-Runtime-Deadline-Ms less lambda.deadline_margin)", t->name);
	if (r->timed_out)
		return error_result("tool %s timed out after %s", t->name, secs);
	if (r->output_exceeded) {
		return error_result("tool %s produced more than %llu bytes of output", t->name,
		    (unsigned long long)t->cmd.max_output);
	}
	if (r->channel_exceeded)
		return error_result("tool %s was stopped: it did not read the answers to its questions "
		    "(more than %d bytes waited on its channel, fd 3)", t->name, TOOL_CHANNEL_UNREAD_MAX);
	if (r->signal != 0)
		return error_result("tool %s was killed by signal %s", t->name, strsignal(r->signal));
	char err[512] = "";
	int failed = !r->exited || r->status != 0;
	cJSON *res = NULL;
	if (r->outlen > 0 || !failed)
		res = parse_output(t, r, err, sizeof(err));
	if (!failed) {
		if (res == NULL)
			return error_result("tool %s: %s", t->name, err);
		return res;
	}
	/* Non-zero exit: the output if it parses, else stderr's tail. */
	if (res == NULL) {
		if (r->err_tail != NULL && r->err_tail[0] != '\0')
			return error_result("%s", r->err_tail);
		return error_result("tool %s exited with status %d", t->name, r->status);
	}
	cJSON_DeleteItemFromObjectCaseSensitive(res, "isError");
	cJSON_AddBoolToObject(res, "isError", 1);
	return res;
}

char *
template_render(const char *tmpl, const cJSON *args)
{
	size_t cap = strlen(tmpl) + 256, len = 0;
	char *out = malloc(cap);
	if (out == NULL)
		return NULL;
	const char *p = tmpl;
	while (*p) {
		const char *val = NULL;
		size_t skip = 0;
		if (p[0] == '{' && p[1] == '{') {
			const char *close = strstr(p + 2, "}}");
			if (close != NULL) {
				char name[128];
				const char *a = p + 2, *b = close;
				while (a < b && *a == ' ')
					a++;
				while (b > a && b[-1] == ' ')
					b--;
				if ((size_t)(b - a) < sizeof(name)) {
					memcpy(name, a, (size_t)(b - a));
					name[b - a] = '\0';
					const cJSON *v = json_get(args, name);
					val = cJSON_IsString(v) ? v->valuestring : "";
					skip = (size_t)(close + 2 - p);
				}
			}
		}
		size_t add = val ? strlen(val) : 1;
		if (len + add + 1 > cap) {
			cap = (len + add + 1) * 2;
			char *n = realloc(out, cap);
			if (n == NULL) {
				free(out);
				return NULL;
			}
			out = n;
		}
		if (val) {
			memcpy(out + len, val, add);
			len += add;
			p += skip;
		} else {
			out[len++] = *p++;
		}
	}
	out[len] = '\0';
	return out;
}

int
content_result_tree(const cJSON *r, int *is_error, int *has_type)
{
	char err[256];
	if (!cJSON_IsObject(r) || content_blocks_check(json_get(r, "content"), err, sizeof(err)) < 0)
		return 0;
	*is_error = cJSON_IsTrue(json_get(r, "isError"));
	*has_type = cJSON_HasObjectItem(r, "resultType");
	return 1;
}

/* ---- A plugin's result, checked without a tree ----
 *
 * content_result_scan reads the JSON text once, checking what
 * content_result_tree checks, and answers 1 only where the tree would
 * say valid (with the same isError and resultType); it says 0, "ask
 * the tree", for anything it does not read itself: a \u escape, a byte
 * over 0x7f (UTF-8 is the parser's to check), an escape in a member
 * name or a block's type, an object of more than 16 members, deep
 * nesting, and for every fault. A result the tree refuses is never
 * accepted here: the grammar below is the parser's (json.c), narrowed. */

#define SCAN_MAX_DEPTH 64
#define SCAN_MAX_MEMBERS 16

enum scan_kind { SK_OBJECT, SK_ARRAY, SK_STRING, SK_NUMBER, SK_TRUE, SK_FALSE, SK_NULL };

/* What a container is in a result: its checks depend on it. */
enum scan_role { SR_OTHER, SR_ROOT, SR_CONTENT, SR_BLOCK, SR_RESOURCE };

struct scan {
	const char *s;
	size_t len, pos;
	int depth;
	int is_error, has_type;     /* the root's isError is true; a member named resultType in any case */
	int has_content;            /* the root's content (an array: checked as SR_CONTENT) */
};

/* What a block or resource object holds, for its checks. */
struct scan_members {
	int type_kind, text, data, mime, resource, uri, name, blob;   /* kind + 1 of each; 0: absent */
	size_t type_at, type_len;   /* the type's string, without escapes */
};

static const unsigned char scan_space[256] = { [' '] = 1, ['\t'] = 1 };

/* Whitespace between tokens: json.c's four characters but the line
 * breaks, which the scan leaves to the tree (a result written as it is
 * must be on one line: t_tools.c). */
static inline void
scan_ws(struct scan *x)
{
	while (x->pos < x->len && scan_space[(unsigned char)x->s[x->pos]])
		x->pos++;
}

/* The bytes a string holds as they are: printable ASCII but the quote
 * and the backslash. */
static const unsigned char scan_plain[256] = {
	[0x20] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,           /* 0x22 '"' */
	[0x30] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	[0x40] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	[0x50] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,           /* 0x5c '\\' */
	[0x60] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	[0x70] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* A string at pos ('"'): its bytes in [*at, *at + *n), *esc if it has an
 * escape. -1: not one this scan reads. */
static int
scan_string(struct scan *x, size_t *at, size_t *n, int *esc)
{
	const unsigned char *s = (const unsigned char *)x->s;
	size_t i = x->pos + 1, len = x->len;
	*esc = 0;
	*at = i;
	for (;;) {
		while (i < len && scan_plain[s[i]])
			i++;
		if (i >= len)
			return -1;
		if (s[i] == '"')
			break;
		if (s[i] != '\\')
			return -1;      /* a control byte, or one over 0x7f */
		if (i + 1 >= len || (s[i + 1] != '"' && s[i + 1] != '\\' && s[i + 1] != '/' &&
		    s[i + 1] != 'b' && s[i + 1] != 'f' && s[i + 1] != 'n' && s[i + 1] != 'r' && s[i + 1] != 't'))
			return -1;      /* \u, or not an escape */
		*esc = 1;
		i += 2;
	}
	*n = i - *at;
	x->pos = i + 1;
	return 0;
}

/* A scalar string's bytes and whether it has an escape (scan_value). */
struct scan_str {
	size_t at, n;
	int esc;
};

static int scan_value(struct scan *x, enum scan_role role, enum scan_kind *kind, struct scan_str *str);

static int
scan_literal(struct scan *x, const char *word)
{
	size_t n = strlen(word);
	if (x->len - x->pos < n || memcmp(x->s + x->pos, word, n) != 0)
		return -1;
	x->pos += n;
	return 0;
}

/* Whether the member name at [at, at + n) is the literal name. */
#define name_is(x, at, n, name) ((n) == sizeof(name) - 1 && memcmp((x)->s + (at), name, sizeof(name) - 1) == 0)

/* A block's checks, as content_blocks_check's. */
static int
block_ok(const struct scan *x, const struct scan_members *m)
{
	const int str = SK_STRING + 1;
	if (m->type_kind != str)
		return 0;
	const char *t = x->s + m->type_at;
	size_t n = m->type_len;
#define TYPE_IS(w) (n == sizeof(w) - 1 && memcmp(t, w, n) == 0)
	if (TYPE_IS("text"))
		return m->text == str;
	if (TYPE_IS("image") || TYPE_IS("audio"))
		return m->data == str && m->mime == str;
	if (TYPE_IS("resource"))
		return m->resource == SK_OBJECT + 1;    /* its uri and text or blob: checked as SR_RESOURCE */
	if (TYPE_IS("resource_link"))
		return m->uri == str && m->name == str;
#undef TYPE_IS
	return 0;
}

static int
scan_container(struct scan *x, int object, enum scan_role role)
{
	if (++x->depth > SCAN_MAX_DEPTH)
		return -1;
	char close = object ? '}' : ']';
	size_t names[SCAN_MAX_MEMBERS][2];
	size_t count = 0;
	struct scan_members m = { 0 };
	x->pos++;
	scan_ws(x);
	if (x->pos < x->len && x->s[x->pos] == close) {
		x->pos++;
	} else {
		for (;;) {
			enum scan_role sub = SR_OTHER;
			size_t at = 0, n = 0;
			if (object) {
				int esc;
				if (x->pos >= x->len || x->s[x->pos] != '"' || count == SCAN_MAX_MEMBERS ||
				    scan_string(x, &at, &n, &esc) < 0 || esc)
					return -1;
				for (size_t i = 0; i < count; i++)
					if (names[i][1] == n && (n == 0 || (x->s[names[i][0]] == x->s[at] &&
					    x->s[names[i][0] + n - 1] == x->s[at + n - 1])) &&
					    memcmp(x->s + names[i][0], x->s + at, n) == 0)
						return -1;      /* a name twice: the parser refuses it */
				names[count][0] = at;
				names[count][1] = n;
				scan_ws(x);
				if (x->pos >= x->len || x->s[x->pos] != ':')
					return -1;
				x->pos++;
				scan_ws(x);
				if (role == SR_ROOT && name_is(x, at, n, "content"))
					sub = SR_CONTENT;
				else if (role == SR_BLOCK && name_is(x, at, n, "resource"))
					sub = SR_RESOURCE;
			} else if (role == SR_CONTENT) {
				sub = SR_BLOCK;
			}
			enum scan_kind kind;
			struct scan_str str;
			if (scan_value(x, sub, &kind, &str) < 0)
				return -1;
			if (!object && role == SR_CONTENT && kind != SK_OBJECT)
				return -1;      /* a block is an object */
			if (object) {
				count++;
				if (role == SR_ROOT) {
					if (name_is(x, at, n, "isError"))
						x->is_error = kind == SK_TRUE;
					if (n == 10 && strncasecmp(x->s + at, "resultType", 10) == 0)
						x->has_type = 1;    /* cJSON_HasObjectItem ignores case */
					if (name_is(x, at, n, "content"))
						x->has_content = 1;     /* an array: SR_CONTENT takes no other */
				} else if (role == SR_BLOCK || role == SR_RESOURCE) {
					int k = (int)kind + 1;
					if (name_is(x, at, n, "type")) {
						m.type_kind = k;
						/* Its text between the quotes; an escaped one is the tree's. */
						if (kind == SK_STRING) {
							if (str.esc)
								return -1;
							m.type_at = str.at;
							m.type_len = str.n;
						}
					} else if (name_is(x, at, n, "text"))
						m.text = k;
					else if (name_is(x, at, n, "data"))
						m.data = k;
					else if (name_is(x, at, n, "mimeType"))
						m.mime = k;
					else if (name_is(x, at, n, "resource"))
						m.resource = k;
					else if (name_is(x, at, n, "uri"))
						m.uri = k;
					else if (name_is(x, at, n, "name"))
						m.name = k;
					else if (name_is(x, at, n, "blob"))
						m.blob = k;
				}
			}
			scan_ws(x);
			if (x->pos < x->len && x->s[x->pos] == ',') {
				x->pos++;
				scan_ws(x);
				continue;
			}
			if (x->pos < x->len && x->s[x->pos] == close) {
				x->pos++;
				break;
			}
			return -1;
		}
	}
	x->depth--;
	if (role == SR_BLOCK && !block_ok(x, &m))
		return -1;
	if (role == SR_RESOURCE && !(m.uri == SK_STRING + 1 && (m.text == SK_STRING + 1 || m.blob == SK_STRING + 1)))
		return -1;
	return 0;
}

static int
scan_value(struct scan *x, enum scan_role role, enum scan_kind *kind, struct scan_str *str)
{
	if (x->pos >= x->len)
		return -1;
	/* A container where a role wants one; else the role's checks fail. */
	switch (x->s[x->pos]) {
	case '{':
		*kind = SK_OBJECT;
		if (role == SR_CONTENT)
			return -1;
		return scan_container(x, 1, role);
	case '[':
		*kind = SK_ARRAY;
		if (role == SR_ROOT || role == SR_BLOCK || role == SR_RESOURCE)
			return -1;
		return scan_container(x, 0, role);
	default:
		break;
	}
	if (role != SR_OTHER)
		return -1;
	size_t n;
	switch (x->s[x->pos]) {
	case '"':
		*kind = SK_STRING;
		return scan_string(x, &str->at, &str->n, &str->esc);
	case 't':
		*kind = SK_TRUE;
		return scan_literal(x, "true");
	case 'f':
		*kind = SK_FALSE;
		return scan_literal(x, "false");
	case 'n':
		*kind = SK_NULL;
		return scan_literal(x, "null");
	default:
		*kind = SK_NUMBER;
		n = json_number_length(x->s + x->pos, x->len - x->pos);
		if (n == 0)
			return -1;
		x->pos += n;
		return 0;
	}
}

int
content_result_scan(const char *json, size_t len, int *is_error, int *has_type)
{
	struct scan x = { json, len, 0, 0, 0, 0, 0 };
	enum scan_kind kind;
	struct scan_str str;
	scan_ws(&x);
	if (x.pos >= x.len || json[x.pos] != '{' || scan_value(&x, SR_ROOT, &kind, &str) < 0)
		return 0;
	scan_ws(&x);
	if (x.pos != x.len || !x.has_content)
		return 0;
	*is_error = x.is_error;
	*has_type = x.has_type;
	return 1;
}
