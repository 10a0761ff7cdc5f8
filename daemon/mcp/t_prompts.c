/* prompts/list and prompts/get: messages from the prompt's templates, or
 * a command's. */
#include "mcp_internal.h"
#include "config.h"
#include "content.h"
#include "json.h"
#include "registry.h"
#include "tool_exec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct prompt_arg *
prompt_arg(const struct prompt_def *p, const char *name)
{
	for (size_t i = 0; i < p->nargs; i++)
		if (strcmp(p->args[i].name, name) == 0)
			return &p->args[i];
	return NULL;
}

static cJSON *
prompt_content(const struct prompt_message *pm, const cJSON *args)
{
	cJSON *content = cJSON_CreateObject();
	switch (pm->type) {
	case CT_TEXT: {
		char *t = template_render(pm->text, args);
		cJSON_AddStringToObject(content, "type", "text");
		cJSON_AddStringToObject(content, "text", t ? t : "");
		free(t);
		break;
	}
	case CT_IMAGE:
	case CT_AUDIO:
		cJSON_AddStringToObject(content, "type", pm->type == CT_IMAGE ? "image" : "audio");
		cJSON_AddStringToObject(content, "data", pm->data ? pm->data : "");
		cJSON_AddStringToObject(content, "mimeType", pm->mime_type);
		break;
	case CT_RESOURCE: {
		cJSON_AddStringToObject(content, "type", "resource");
		cJSON *res = cJSON_AddObjectToObject(content, "resource");
		char *u = template_render(pm->uri, args);
		char *t = template_render(pm->resource_text, args);
		cJSON_AddStringToObject(res, "uri", u ? u : "");
		cJSON_AddStringToObject(res, "mimeType", pm->mime_type ? pm->mime_type : "text/plain");
		cJSON_AddStringToObject(res, "text", t ? t : "");
		free(u);
		free(t);
		break;
	}
	}
	return content;
}

static void
prompt_done(void *arg, struct tool_result *r)
{
	struct call *c = arg;
	c->run = NULL;
	if (c->cancelled) {
		call_reply(c, NULL);
		return;
	}
	if (!r->exited || r->status != 0) {
		call_error(c, JSONRPC_INTERNAL_ERROR, "Prompt %s: the command failed%s", c->prompt->name,
		    r->channel_exceeded ? ": it did not read the answers on its channel" : "");
		return;
	}
	cJSON *v = json_parse(r->out, r->outlen, 0, NULL);
	cJSON *res = NULL;
	if (cJSON_IsArray(v)) {
		res = cJSON_CreateObject();
		cJSON_AddItemToObject(res, "messages", v);
	} else if (cJSON_IsObject(v) && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(v, "messages"))) {
		res = v;
	} else {
		cJSON_Delete(v);
		call_error(c, JSONRPC_INTERNAL_ERROR, "Prompt %s: the command's output is not a JSON array of messages",
		    c->prompt->name);
		return;
	}
	if (c->prompt->description != NULL && !cJSON_HasObjectItem(res, "description"))
		cJSON_AddStringToObject(res, "description", c->prompt->description);
	call_result(c, res);
}

static const struct tool_run_callbacks prompt_callbacks = { tool_message, prompt_done };

void
m_prompts_list(struct call *c)
{
	list_page(c, c->m->cfg->prompt_pages);
}

void
m_prompts_get(struct call *c)
{
	const char *name = param_string(c, "name");
	if (name == NULL) {
		call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: \"name\" must be a string");
		return;
	}
	const struct prompt_def *p = registry_prompt(c->m->cfg, name);
	if (p == NULL) {
		call_error(c, JSONRPC_INVALID_PARAMS, "Unknown prompt: %s", name);
		return;
	}
	c->prompt = p;
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(c->params, "arguments");
	if (args != NULL && !cJSON_IsNull(args) && !cJSON_IsObject(args)) {
		call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: \"arguments\" must be an object");
		return;
	}
	const cJSON *a;
	cJSON_ArrayForEach(a, args) {
		if (!cJSON_IsString(a)) {
			call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: argument \"%s\" must be a string", a->string);
			return;
		}
		if (prompt_arg(p, a->string) == NULL) {
			call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: prompt %s has no argument \"%.100s\"",
			    name, a->string);
			return;
		}
	}
	for (size_t i = 0; i < p->nargs; i++) {
		if (p->args[i].required && !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(args, p->args[i].name))) {
			call_error(c, JSONRPC_INVALID_PARAMS, "Missing required argument \"%s\" for prompt %s",
			    p->args[i].name, name);
			return;
		}
	}
	if (p->cmd.argv != NULL) {
		if (c->stateless && mrtr_begin(c, p->name, args) < 0)
			return;
		char err[256], *env = NULL;
		if (asprintf(&env, "MCP_PROMPT_NAME=%s", p->name) < 0) {
			call_error(c, JSONRPC_INTERNAL_ERROR, "Prompt %s: out of memory", name);
			return;
		}
		const char *extra[] = { env, NULL };
		c->vars = args ? cJSON_Duplicate(args, 1) : cJSON_CreateObject();
		int rc = start_command(c, p->name, &p->cmd, &p->arg_env, c->vars, extra, &prompt_callbacks,
		    err, sizeof(err));
		free(env);
		if (rc < 0) {
			call_error(c, JSONRPC_INTERNAL_ERROR, "Prompt %s: %s", name, err);
			return;
		}
		call_go_async(c);
		return;
	}
	cJSON *res = cJSON_CreateObject();
	if (p->description != NULL)
		cJSON_AddStringToObject(res, "description", p->description);
	cJSON *msgs = cJSON_AddArrayToObject(res, "messages");
	for (size_t i = 0; i < p->nmessages; i++) {
		cJSON *m = cJSON_CreateObject();
		cJSON_AddStringToObject(m, "role", p->messages[i].role);
		cJSON_AddItemToObject(m, "content", prompt_content(&p->messages[i], args));
		cJSON_AddItemToArray(msgs, m);
	}
	call_result(c, res);
}
