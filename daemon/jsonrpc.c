#include "jsonrpc.h"
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

static int
valid_id(const cJSON *id)
{
	return cJSON_IsString(id) || (cJSON_IsNumber(id));
}

int
jsonrpc_parse(const char *body, size_t len, int max_depth, struct jsonrpc_msg *out,
    int *code, char *msg, size_t msglen, cJSON **id_out)
{
	memset(out, 0, sizeof(*out));
	*id_out = NULL;
	if (len == 0) {
		*code = JSONRPC_PARSE_ERROR;
		snprintf(msg, msglen, "Parse error: empty body");
		return -1;
	}
	if (!utf8_valid(body, len)) {
		*code = JSONRPC_PARSE_ERROR;
		snprintf(msg, msglen, "Parse error: body is not valid UTF-8");
		return -1;
	}
	/* Strict RFC 8259 (no raw control characters, no name twice, no
	 * \u0000), numbers keeping their text so that ids go back as sent. */
	struct json_error je;
	cJSON *root = json_parse(body, len, max_depth, &je);
	if (root == NULL) {
		*code = JSONRPC_PARSE_ERROR;
		snprintf(msg, msglen, "Parse error: %s", je.message);
		return -1;
	}
	*code = JSONRPC_INVALID_REQUEST;
	if (cJSON_IsArray(root)) {
		snprintf(msg, msglen, "Invalid Request: batch requests are not supported; send one message per request");
		goto fail;
	}
	if (!cJSON_IsObject(root)) {
		snprintf(msg, msglen, "Invalid Request: a JSON-RPC message must be an object");
		goto fail;
	}
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
	if (valid_id(id))
		*id_out = cJSON_Duplicate(id, 1);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "jsonrpc");
	if (!cJSON_IsString(v) || strcmp(v->valuestring, "2.0") != 0) {
		snprintf(msg, msglen, "Invalid Request: \"jsonrpc\" must be \"2.0\"");
		goto fail;
	}
	if (id != NULL && !valid_id(id)) {
		snprintf(msg, msglen, "Invalid Request: \"id\" must be a string or a number");
		goto fail;
	}
	const cJSON *method = cJSON_GetObjectItemCaseSensitive(root, "method");
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "params");
	const cJSON *result = cJSON_GetObjectItemCaseSensitive(root, "result");
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
	out->root = root;
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
	out->root = NULL;
	cJSON_Delete(root);
	return -1;
}

void
jsonrpc_free(struct jsonrpc_msg *m)
{
	cJSON_Delete(m->root);
	m->root = NULL;
}

static char *
finish(cJSON *msg)
{
	char *s = json_print(msg);
	cJSON_Delete(msg);
	return s;
}

static cJSON *
envelope(const cJSON *id)
{
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "jsonrpc", "2.0");
	if (id != NULL)
		cJSON_AddItemToObject(m, "id", cJSON_Duplicate(id, 1));
	return m;
}

char *
jsonrpc_result(const cJSON *id, cJSON *result)
{
	cJSON *m = envelope(id);
	cJSON_AddItemToObject(m, "result", result ? result : cJSON_CreateObject());
	return finish(m);
}

char *
jsonrpc_error(const cJSON *id, int code, const char *message, cJSON *data)
{
	cJSON *m = envelope(NULL);
	cJSON_AddItemToObject(m, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
	cJSON *e = cJSON_AddObjectToObject(m, "error");
	cJSON_AddNumberToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", message);
	if (data != NULL)
		cJSON_AddItemToObject(e, "data", data);
	return finish(m);
}

char *
jsonrpc_notification(const char *method, cJSON *params)
{
	cJSON *m = envelope(NULL);
	cJSON_AddStringToObject(m, "method", method);
	if (params != NULL)
		cJSON_AddItemToObject(m, "params", params);
	return finish(m);
}

char *
jsonrpc_request(const cJSON *id, const char *method, cJSON *params)
{
	cJSON *m = envelope(id);
	cJSON_AddStringToObject(m, "method", method);
	if (params != NULL)
		cJSON_AddItemToObject(m, "params", params);
	return finish(m);
}
