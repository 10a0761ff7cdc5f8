#include "jsonrpc.h"
#include "arena.h"
#include "json.h"
#include "schema.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
json_depth_exceeds(const char *s, size_t len, int max_depth)
{
	int depth = 0, in_str = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (c == '"')
			in_str = 1;
		else if (c == '{' || c == '[') {
			if (++depth > max_depth)
				return 1;
		} else if (c == '}' || c == ']')
			depth--;
	}
	return 0;
}

/* A first block of 4 KiB at least: the kept arena is to hold the next
 * message's tree too, whatever the size of the one it came from (a
 * request's tree takes about four times its text). Under
 * AddressSanitizer a reset arena's bytes are poisoned (arena.c): a use
 * of a freed message's tree is still reported. */
static struct arena *
msg_arena(struct jsonrpc_reader *rd, size_t len)
{
	struct arena *a = rd != NULL ? rd->spare : NULL;
	if (a == NULL)
		return arena_new(len < 896 ? 4096 : len < 4096 ? 4 * len + 512 : 16384);
	rd->spare = NULL;
	return a;
}

static void
msg_arena_done(struct jsonrpc_reader *rd, struct arena *a)
{
	if (rd != NULL && rd->spare == NULL) {
		arena_reset(a);
		rd->spare = a;
	} else {
		arena_free(a);
	}
}

void
jsonrpc_reader_clear(struct jsonrpc_reader *rd)
{
	arena_free(rd->spare);
	rd->spare = NULL;
}

static int
valid_id(const cJSON *id)
{
	return cJSON_IsString(id) || (cJSON_IsNumber(id));
}

int
jsonrpc_parse(struct jsonrpc_reader *rd, const char *body, size_t len, int max_depth, struct jsonrpc_msg *out,
    int *code, char *msg, size_t msglen, cJSON **id_out)
{
	memset(out, 0, sizeof(*out));
	*id_out = NULL;
	if (len == 0) {
		*code = JSONRPC_PARSE_ERROR;
		snprintf(msg, msglen, "Parse error: empty body");
		return -1;
	}
	/* Strict RFC 8259 (no raw control characters, no name twice, no
	 * \u0000), numbers keeping their text so that ids go back as sent.
	 * A text it takes is valid UTF-8 (bytes over 0x7f are legal only in
	 * strings, which it checks), so the whole body is looked at only to
	 * name the fault of one it refused. */
	struct json_error je;
	struct arena *a = msg_arena(rd, len);
	if (a == NULL) {
		*code = JSONRPC_INTERNAL_ERROR;
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	cJSON *root = json_parse_arena(body, len, max_depth, &je, a);
	if (root == NULL) {
		msg_arena_done(rd, a);
		*code = JSONRPC_PARSE_ERROR;
		if (!utf8_valid(body, len))
			snprintf(msg, msglen, "Parse error: body is not valid UTF-8");
		else
			snprintf(msg, msglen, "Parse error: %s", je.message);
		return -1;
	}
	*code = JSONRPC_INVALID_REQUEST;
	const cJSON *id = NULL, *v = NULL, *method = NULL, *params = NULL, *result = NULL, *error = NULL;
	if (cJSON_IsArray(root)) {
		snprintf(msg, msglen, "Invalid Request: batch requests are not supported; send one message per request");
		goto fail;
	}
	if (!cJSON_IsObject(root)) {
		snprintf(msg, msglen, "Invalid Request: a JSON-RPC message must be an object");
		goto fail;
	}
	/* The members in one pass (the parser refused a name twice), told
	 * apart by their first byte. */
	for (const cJSON *it = root->child; it != NULL; it = it->next) {
		const char *k = it->string;
		switch (k[0]) {
		case 'i':
			if (strcmp(k, "id") == 0)
				id = it;
			break;
		case 'j':
			if (strcmp(k, "jsonrpc") == 0)
				v = it;
			break;
		case 'm':
			if (strcmp(k, "method") == 0)
				method = it;
			break;
		case 'p':
			if (strcmp(k, "params") == 0)
				params = it;
			break;
		case 'r':
			if (strcmp(k, "result") == 0)
				result = it;
			break;
		case 'e':
			if (strcmp(k, "error") == 0)
				error = it;
			break;
		}
	}
	if (!cJSON_IsString(v) || strcmp(v->valuestring, "2.0") != 0) {
		snprintf(msg, msglen, "Invalid Request: \"jsonrpc\" must be \"2.0\"");
		goto fail;
	}
	if (id != NULL && !valid_id(id)) {
		snprintf(msg, msglen, "Invalid Request: \"id\" must be a string or a number");
		goto fail;
	}
	out->root = root;
	out->arena = a;
	out->reader = rd;
	out->id = id;
	if (method != NULL) {
		if (!cJSON_IsString(method) || method->valuestring[0] == '\0') {
			snprintf(msg, msglen, "Invalid Request: \"method\" must be a non-empty string");
			goto fail;
		}
		if (params != NULL && !cJSON_IsObject(params)) {
			snprintf(msg, msglen, "Invalid Request: \"params\" must be an object");
			goto fail;
		}
		if (result != NULL || error != NULL) {
			snprintf(msg, msglen, "Invalid Request: a request cannot carry \"result\" or \"error\"");
			goto fail;
		}
		out->kind = id != NULL ? RPC_REQUEST : RPC_NOTIFICATION;
		out->method = method->valuestring;
		out->params = params;
		out->meta = json_get(params, "_meta");
		if (!cJSON_IsObject(out->meta))
			out->meta = NULL;
		return 0;
	}
	if ((result != NULL) == (error != NULL)) {
		snprintf(msg, msglen, "Invalid Request: a message needs \"method\", or exactly one of \"result\" and \"error\"");
		goto fail;
	}
	if (id == NULL) {
		snprintf(msg, msglen, "Invalid Request: a response needs an \"id\"");
		goto fail;
	}
	if (error != NULL && !cJSON_IsObject(error)) {
		snprintf(msg, msglen, "Invalid Request: \"error\" must be an object");
		goto fail;
	}
	out->kind = RPC_RESPONSE;
	out->result = result;
	out->error = error;
	return 0;
fail:
	/* The id for the error response: a copy, the tree goes now. */
	if (valid_id(id))
		*id_out = cJSON_Duplicate(id, 1);
	out->root = NULL;
	out->arena = NULL;
	msg_arena_done(rd, a);
	return -1;
}

void
jsonrpc_free(struct jsonrpc_msg *m)
{
	if (m->root == NULL)
		return;         /* handed on: the copy owns the tree */
	msg_arena_done(m->reader, m->arena);
	m->arena = NULL;
	m->root = NULL;
}

/* Messages are written straight as text, each member once, in the order
 * the tree printer had them: "jsonrpc", "id", then the rest. */
static void
head(struct json_buf *o, const cJSON *id, int null_id)
{
	static const char jsonrpc[] = "{\"jsonrpc\":\"2.0\"";
	json_buf_put(o, jsonrpc, sizeof(jsonrpc) - 1);
	if (id != NULL || null_id) {
		json_buf_put(o, ",\"id\":", 6);
		if (id != NULL)
			json_buf_value(o, id);
		else
			json_buf_put(o, "null", 4);
	}
}

char *
jsonrpc_result(const cJSON *id, cJSON *result)
{
	struct json_buf o = { 0 };
	head(&o, id, 0);
	json_buf_put(&o, ",\"result\":", 10);
	if (result != NULL)
		json_buf_value(&o, result);
	else
		json_buf_put(&o, "{}", 2);
	json_buf_put(&o, "}", 1);
	cJSON_Delete(result);
	return json_buf_finish(&o);
}

char *
jsonrpc_result_text(const cJSON *id, const char *result, size_t len)
{
	struct json_buf o = { 0 };
	head(&o, id, 0);
	json_buf_put(&o, ",\"result\":", 10);
	json_buf_put(&o, result, len);
	json_buf_put(&o, "}", 1);
	return json_buf_finish(&o);
}

char *
jsonrpc_result_complete(const cJSON *id, const char *result, size_t len)
{
	static const char complete[] = ",\"result\":{\"resultType\":\"complete\"";
	struct json_buf o = { 0 };
	/* The object's members go after the added one. */
	const char *p = result, *end = result + len;
	while (p < end && *p != '{')
		p++;
	const char *rest = p < end ? p + 1 : end;
	while (rest < end && (*rest == ' ' || *rest == '\t'))
		rest++;
	head(&o, id, 0);
	json_buf_put(&o, complete, sizeof(complete) - 1);
	if (!(rest < end && *rest == '}'))
		json_buf_put(&o, ",", 1);       /* not an empty object */
	json_buf_put(&o, rest, (size_t)(end - rest));
	json_buf_put(&o, "}", 1);
	return json_buf_finish(&o);
}

char *
jsonrpc_error(const cJSON *id, int code, const char *message, cJSON *data)
{
	struct json_buf o = { 0 };
	char num[16];
	head(&o, id, 1);
	json_buf_put(&o, ",\"error\":{\"code\":", 17);
	json_buf_put(&o, num, (size_t)snprintf(num, sizeof(num), "%d", code));
	json_buf_put(&o, ",\"message\":", 11);
	json_buf_string(&o, message);
	if (data != NULL) {
		json_buf_put(&o, ",\"data\":", 8);
		json_buf_value(&o, data);
	}
	json_buf_put(&o, "}}", 2);
	cJSON_Delete(data);
	return json_buf_finish(&o);
}

static char *
with_method(const cJSON *id, const char *method, cJSON *params)
{
	struct json_buf o = { 0 };
	head(&o, id, 0);
	json_buf_put(&o, ",\"method\":", 10);
	json_buf_string(&o, method);
	if (params != NULL) {
		json_buf_put(&o, ",\"params\":", 10);
		json_buf_value(&o, params);
	}
	json_buf_put(&o, "}", 1);
	cJSON_Delete(params);
	return json_buf_finish(&o);
}

char *
jsonrpc_notification(const char *method, cJSON *params)
{
	return with_method(NULL, method, params);
}

char *
jsonrpc_request(const cJSON *id, const char *method, cJSON *params)
{
	return with_method(id, method, params);
}
