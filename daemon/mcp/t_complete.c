/* completion/complete: values for a prompt's argument or a resource
 * template's variable, from a list or a command. */
#include "mcp_internal.h"
#include "config.h"
#include "content.h"
#include "registry.h"
#include "tool_exec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COMPLETIONS 100

static cJSON *
completion_result(const cJSON *candidates, const char *prefix)
{
	cJSON *res = cJSON_CreateObject();
	cJSON *comp = cJSON_AddObjectToObject(res, "completion");
	cJSON *values = cJSON_AddArrayToObject(comp, "values");
	int total = 0;
	const cJSON *v;
	size_t plen = strlen(prefix);
	cJSON_ArrayForEach(v, candidates) {
		if (!cJSON_IsString(v) || strncmp(v->valuestring, prefix, plen) != 0)
			continue;
		if (total < MAX_COMPLETIONS)
			cJSON_AddItemToArray(values, cJSON_CreateString(v->valuestring));
		total++;
	}
	cJSON_AddNumberToObject(comp, "total", total);
	cJSON_AddBoolToObject(comp, "hasMore", total > MAX_COMPLETIONS);
	return res;
}

static void
complete_done(void *arg, struct tool_result *r)
{
	struct call *c = arg;
	c->run = NULL;
	if (c->cancelled) {
		call_reply(c, NULL);
		return;
	}
	cJSON *lines = cJSON_CreateArray();
	if (r->exited && r->status == 0) {
		char *clean = utf8_sanitize(r->out, r->outlen);
		char *save = NULL;
		for (char *line = strtok_r(clean, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
			if (line[0] != '\0')
				cJSON_AddItemToArray(lines, cJSON_CreateString(line));
		free(clean);
	}
	/* The command already saw the prefix: keep its whole answer. */
	cJSON *res = completion_result(lines, "");
	cJSON_Delete(lines);
	call_result(c, res);
}

static const struct tool_run_callbacks complete_callbacks = { ignore_message, complete_done };

void
m_complete(struct call *c)
{
	const cJSON *ref = cJSON_GetObjectItemCaseSensitive(c->params, "ref");
	const cJSON *argument = cJSON_GetObjectItemCaseSensitive(c->params, "argument");
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(ref, "type");
	const cJSON *aname = cJSON_GetObjectItemCaseSensitive(argument, "name");
	const cJSON *avalue = cJSON_GetObjectItemCaseSensitive(argument, "value");
	if (!cJSON_IsString(type) || !cJSON_IsString(aname) || !cJSON_IsString(avalue)) {
		call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: need ref.type, argument.name and argument.value");
		return;
	}
	if (strcmp(type->valuestring, "ref/prompt") == 0) {
		const cJSON *pname = cJSON_GetObjectItemCaseSensitive(ref, "name");
		const struct prompt_def *p = cJSON_IsString(pname) ? registry_prompt(c->m->cfg, pname->valuestring) : NULL;
		if (p == NULL) {
			call_error(c, JSONRPC_INVALID_PARAMS, "Unknown prompt");
			return;
		}
		for (size_t i = 0; i < p->nargs; i++) {
			const struct prompt_arg *pa = &p->args[i];
			if (strcmp(pa->name, aname->valuestring) != 0)
				continue;
			if (pa->complete.argv != NULL) {
				/* The other arguments the client has so far: only the
				 * prompt's own, and only strings, reach the command. */
				const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(
				    cJSON_GetObjectItemCaseSensitive(c->params, "context"), "arguments");
				if (!cJSON_IsObject(ctx))
					ctx = NULL;
				c->vars = cJSON_CreateObject();
				const cJSON *o;
				cJSON_ArrayForEach(o, ctx)
					if (cJSON_IsString(o) && strcmp(o->string, pa->name) != 0 &&
					    prompt_arg(p, o->string) != NULL)
						cJSON_AddStringToObject(c->vars, o->string, o->valuestring);
				cJSON_AddStringToObject(c->vars, pa->name, avalue->valuestring);
				/* The whole name, however long (a cut one was another
				 * argument's, or none). */
				char err[256], *env = NULL;
				if (asprintf(&env, "MCP_COMPLETE_ARGUMENT=%s", pa->name) < 0) {
					call_error(c, JSONRPC_INTERNAL_ERROR, "Completion failed: out of memory");
					return;
				}
				const char *extra[] = { env, NULL };
				int rc = start_command(c, p->name, &pa->complete, &p->arg_env, c->vars, extra,
				    &complete_callbacks, err, sizeof(err));
				free(env);
				if (rc < 0) {
					call_error(c, JSONRPC_INTERNAL_ERROR, "Completion failed: %s", err);
					return;
				}
				call_go_async(c);
				return;
			}
			call_result(c, completion_result(pa->completions, avalue->valuestring));
			return;
		}
		call_result(c, completion_result(NULL, ""));
		return;
	}
	if (strcmp(type->valuestring, "ref/resource") == 0) {
		const cJSON *uri = cJSON_GetObjectItemCaseSensitive(ref, "uri");
		for (size_t i = 0; cJSON_IsString(uri) && i < c->m->cfg->nresources; i++) {
			const struct resource_def *r = &c->m->cfg->resources[i];
			if (r->uri_template != NULL && strcmp(r->uri_template, uri->valuestring) == 0) {
				const cJSON *list = cJSON_GetObjectItemCaseSensitive(r->completions, aname->valuestring);
				call_result(c, completion_result(list, avalue->valuestring));
				return;
			}
		}
		call_result(c, completion_result(NULL, ""));
		return;
	}
	call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: ref.type must be ref/prompt or ref/resource");
}
