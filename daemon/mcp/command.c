/* The command of a call (a tool, a command resource, a prompt, a
 * completion): its environment and standard input (start_command; the
 * run itself is tool_exec.c's), and what it sends on its channel, fd 3:
 * progress and log messages go to the client, requests to ask.c. */
#include "mcp_internal.h"
#include "json.h"
#include "log.h"
#include "registry.h"
#include "tool_exec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The extra environment of one run, within the kernel's limits (see
 * tool_env_room): the strings in extra, then MCP_ARG_<name> for each
 * declared name in args (strings as they are, the rest as JSON). One
 * that does not fit is left out; every argument is on stdin anyway. */
struct run_env {
	const char *label;
	const char **list;
	char **owned;
	size_t n, nowned;
	size_t room;
};

static void
run_env_add(struct run_env *e, const char *kv, char *owned)
{
	size_t cost = strlen(kv) + 1 + sizeof(char *);
	if (strlen(kv) + 1 > TOOL_ENV_STRING_MAX || cost > e->room) {
		const char *eq = strchr(kv, '=');
		log_info("%s: %.*s left out of the environment (%zu bytes; its value is on standard input)",
		    e->label, eq ? (int)(eq - kv) : 32, kv, strlen(kv));
		free(owned);
		return;
	}
	e->room -= cost;
	e->list[e->n++] = kv;
	if (owned != NULL)
		e->owned[e->nowned++] = owned;
}

static int
run_env_build(struct run_env *e, const char *label, const struct tool_exec *te,
    const struct command_def *cmd, const struct arg_names *names, const cJSON *args,
    const char *const *extra)
{
	size_t nextra = 0;
	while (extra != NULL && extra[nextra] != NULL)
		nextra++;
	size_t nargs = names != NULL ? names->n : 0;
	memset(e, 0, sizeof(*e));
	e->label = label;
	e->room = tool_env_room(te, cmd);
	e->list = calloc(nextra + nargs + 1, sizeof(char *));
	e->owned = calloc(nargs + 1, sizeof(char *));
	if (e->list == NULL || e->owned == NULL)
		return -1;
	for (size_t i = 0; i < nextra; i++)
		run_env_add(e, extra[i], NULL);
	for (size_t i = 0; i < nargs; i++) {
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(args, names->names[i]);
		if (a == NULL)
			continue;
		char *json = cJSON_IsString(a) ? NULL : json_print(a);
		const char *v = cJSON_IsString(a) ? a->valuestring : json;
		char *kv = NULL;
		if (v == NULL || asprintf(&kv, "%s=%s", names->vars[i], v) < 0)
			kv = NULL;
		free(json);
		if (kv == NULL)
			return -1;
		run_env_add(e, kv, kv);
	}
	return 0;
}

static void
run_env_free(struct run_env *e)
{
	for (size_t i = 0; i < e->nowned; i++)
		free(e->owned[i]);
	free(e->owned);
	free(e->list);
}

void
tool_message(void *arg, const cJSON *msg)
{
	struct call *c = arg;
	const cJSON *method = cJSON_GetObjectItemCaseSensitive(msg, "method");
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(msg, "params");
	if (!cJSON_IsString(method))
		return;
	const char *m = method->valuestring;
	if (cJSON_GetObjectItemCaseSensitive(msg, "id") != NULL) {
		tool_request(c, msg, m);
		return;
	}
	if (call_is_task(c)) {
		/* A task has no stream: its progress and log lines become its
		 * statusMessage. */
		const cJSON *text = NULL;
		char buf[128];
		if (strcmp(m, "notifications/progress") == 0) {
			text = cJSON_GetObjectItemCaseSensitive(params, "message");
			const cJSON *p = cJSON_GetObjectItemCaseSensitive(params, "progress");
			const cJSON *t = cJSON_GetObjectItemCaseSensitive(params, "total");
			if (!cJSON_IsString(text) && cJSON_IsNumber(p)) {
				if (cJSON_IsNumber(t))
					snprintf(buf, sizeof(buf), "%g of %g", p->valuedouble, t->valuedouble);
				else
					snprintf(buf, sizeof(buf), "%g", p->valuedouble);
				task_note(c, buf);
				return;
			}
		} else if (strcmp(m, "notifications/message") == 0) {
			text = cJSON_GetObjectItemCaseSensitive(params, "data");
		}
		if (cJSON_IsString(text))
			task_note(c, text->valuestring);
		return;
	}
	if (strcmp(m, "notifications/progress") == 0) {
		if (c->progress_token == NULL || !cJSON_IsObject(params))
			return;
		const cJSON *progress = cJSON_GetObjectItemCaseSensitive(params, "progress");
		if (!cJSON_IsNumber(progress))
			return;
		cJSON *p = cJSON_CreateObject();
		cJSON_AddItemToObject(p, "progressToken", cJSON_Duplicate(c->progress_token, 1));
		cJSON_AddItemToObject(p, "progress", cJSON_Duplicate(progress, 1));
		const cJSON *total = cJSON_GetObjectItemCaseSensitive(params, "total");
		if (cJSON_IsNumber(total))
			cJSON_AddItemToObject(p, "total", cJSON_Duplicate(total, 1));
		const cJSON *message = cJSON_GetObjectItemCaseSensitive(params, "message");
		if (cJSON_IsString(message))
			cJSON_AddStringToObject(p, "message", message->valuestring);
		call_send(c, jsonrpc_notification("notifications/progress", p));
	} else if (strcmp(m, "notifications/message") == 0) {
		const cJSON *level = cJSON_GetObjectItemCaseSensitive(params, "level");
		int l = cJSON_IsString(level) ? mcp_log_level_parse(level->valuestring) : -1;
		if (l < 0 || cJSON_GetObjectItemCaseSensitive(params, "data") == NULL)
			return;
		if (l < call_log_level(c))
			return;
		cJSON *p = cJSON_CreateObject();
		cJSON_AddStringToObject(p, "level", mcp_log_level_names[l]);
		const cJSON *logger = cJSON_GetObjectItemCaseSensitive(params, "logger");
		if (cJSON_IsString(logger))
			cJSON_AddStringToObject(p, "logger", logger->valuestring);
		cJSON_AddItemToObject(p, "data", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(params, "data"), 1));
		call_send(c, jsonrpc_notification("notifications/message", p));
	}
}

/* Start a command with the call's arguments: all of them on stdin, the
 * declared ones in the environment. Returns 0 or -1 with err. */
int
start_command(struct call *c, const char *label, const struct command_def *cmd,
    const struct arg_names *names, const cJSON *args, const char *const *extra,
    const struct tool_run_callbacks *cb, char *err, size_t errlen)
{
	struct run_env env = { 0 };
	char *input = json_print(args);
	/* A persistent process has the arguments in its request line. */
	if (cmd->persistent)
		names = NULL;
	if (input == NULL || run_env_build(&env, label, c->m->te, cmd, names, args, extra) < 0) {
		free(input);
		run_env_free(&env);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	size_t inlen = strlen(input);
	char *withnl = realloc(input, inlen + 2);
	if (withnl != NULL) {
		input = withnl;
		input[inlen++] = '\n';
		input[inlen] = '\0';
	}
	c->run = tool_run_start(c->m->te, label, cmd, env.list, input, inlen, cb, c, err, errlen);
	free(input);
	run_env_free(&env);
	return c->run != NULL ? 0 : -1;
}

void
ignore_message(void *arg, const cJSON *msg)
{
	(void)arg;
	(void)msg;
}
