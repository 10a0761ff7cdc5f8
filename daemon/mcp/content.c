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
