/* resources/list, resources/templates/list, resources/read (a text, a
 * file, or a command's output) and resources/subscribe, unsubscribe. */
#include "mcp_internal.h"
#include "config.h"
#include "content.h"
#include "log.h"
#include "registry.h"
#include "tool_exec.h"
#include "util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESOURCE_NOT_FOUND -32002

static cJSON *
resource_content(const struct resource_def *r, const char *uri, const char *data, size_t len)
{
	cJSON *item = cJSON_CreateObject();
	cJSON_AddStringToObject(item, "uri", uri);
	if (r->mime_type != NULL)
		cJSON_AddStringToObject(item, "mimeType", r->mime_type);
	if (r->binary) {
		char *b64 = malloc(4 * ((len + 2) / 3) + 1);
		if (b64 != NULL) {
			base64_encode((const unsigned char *)data, len, b64);
			cJSON_AddStringToObject(item, "blob", b64);
			free(b64);
		}
	} else {
		char *clean = utf8_sanitize(data, len);
		cJSON_AddStringToObject(item, "text", clean ? clean : "");
		free(clean);
	}
	return item;
}

static cJSON *
contents_result(const struct call *c, cJSON *item)
{
	cJSON *res = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(res, "contents");
	cJSON_AddItemToArray(arr, item);
	if (c->stateless) {
		cJSON_AddNumberToObject(res, "ttlMs", (double)c->m->cfg->cache.read_ttl_ms);
		cJSON_AddStringToObject(res, "cacheScope", "private");
	}
	return res;
}

static void
resource_done(void *arg, struct tool_result *r)
{
	struct call *c = arg;
	c->run = NULL;
	if (c->cancelled) {
		call_reply(c, NULL);
		return;
	}
	if (!r->exited || r->status != 0) {
		log_warn("resource %s: command failed%s%s", c->res->name,
		    r->err_tail[0] ? ": " : "", r->err_tail);
		call_error(c, JSONRPC_INTERNAL_ERROR, "Reading %s failed%s%s", param_string(c, "uri"),
		    r->timed_out ? ": timed out" : r->output_exceeded ? ": output too large" :
		    r->channel_exceeded ? ": the command did not read the answers on its channel" : "",
		    r->err_tail[0] ? "" : "");
		return;
	}
	call_result(c, contents_result(c, resource_content(c->res, param_string(c, "uri"), r->out, r->outlen)));
}

static const struct tool_run_callbacks resource_callbacks = { tool_message, resource_done };

void
m_resources_list(struct call *c)
{
	list_page(c, c->m->cfg->resource_pages);
}

void
m_templates_list(struct call *c)
{
	list_page(c, c->m->cfg->template_pages);
}

void
m_resources_read(struct call *c)
{
	const char *uri = param_string(c, "uri");
	if (uri == NULL) {
		call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: \"uri\" must be a string");
		return;
	}
	const struct resource_def *r = registry_resource(c->m->cfg, uri, &c->vars);
	if (r == NULL && skill_read(c, uri))
		return;
	if (r == NULL) {
		cJSON *data = cJSON_CreateObject();
		cJSON_AddStringToObject(data, "uri", uri);
		/* 2026-07-28 (SEP-2164) reports an unknown URI as invalid params. */
		call_error_data(c, c->stateless ? JSONRPC_INVALID_PARAMS : RESOURCE_NOT_FOUND,
		    "Resource not found", data);
		return;
	}
	c->res = r;
	if (c->stateless && r->kind == RES_COMMAND && mrtr_begin(c, uri, NULL) < 0)
		return;
	char err[256];
	switch (r->kind) {
	case RES_TEXT:
		call_result(c, contents_result(c, resource_content(r, uri, r->text, strlen(r->text))));
		return;
	case RES_FILE: {
		char *data;
		size_t len;
		if (read_small_file(r->file, r->cmd.max_output, &data, &len, err, sizeof(err)) < 0) {
			log_warn("resource %s: %s: %s", uri, r->file, err);
			call_error(c, JSONRPC_INTERNAL_ERROR, "Reading %s failed: %s", uri, err);
			return;
		}
		call_result(c, contents_result(c, resource_content(r, uri, data, len)));
		free(data);
		return;
	}
	case RES_COMMAND: {
		char *uri_env = NULL;
		if (asprintf(&uri_env, "MCP_RESOURCE_URI=%s", uri) < 0)
			uri_env = NULL;
		const char *extra[] = { uri_env ? uri_env : "MCP_RESOURCE_URI=", NULL };
		cJSON *vars = c->vars ? c->vars : cJSON_CreateObject();
		c->vars = vars;
		int rc = start_command(c, r->name, &r->cmd, &r->arg_env, vars, extra, &resource_callbacks,
		    err, sizeof(err));
		free(uri_env);
		if (rc < 0) {
			call_error(c, JSONRPC_INTERNAL_ERROR, "Reading %s failed: %s", uri, err);
			return;
		}
		call_go_async(c);
		return;
	}
	}
}

static void
m_resources_subscribe(struct call *c, int on)
{
	const char *uri = param_string(c, "uri");
	if (uri == NULL) {
		call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: \"uri\" must be a string");
		return;
	}
	cJSON *vars = NULL;
	if (on && registry_resource(c->m->cfg, uri, &vars) == NULL) {
		cJSON *data = cJSON_CreateObject();
		cJSON_AddStringToObject(data, "uri", uri);
		call_error_data(c, RESOURCE_NOT_FOUND, "Resource not found", data);
		return;
	}
	cJSON_Delete(vars);
	if (on && session_subscribe(c->s, uri) < 0) {
		call_error(c, JSONRPC_INTERNAL_ERROR, "Too many subscriptions");
		return;
	}
	if (!on)
		session_unsubscribe(c->s, uri);
	session_save(c->s);
	call_result(c, cJSON_CreateObject());
}

void
m_subscribe(struct call *c)
{
	m_resources_subscribe(c, 1);
}

void
m_unsubscribe(struct call *c)
{
	m_resources_subscribe(c, 0);
}
