/* tools/list and tools/call: the arguments checked against the tool's
 * input schema, its scopes, the client's capabilities and the Mcp-Param
 * headers, then a command (command.c) or a plugin tool, with the host
 * functions a plugin tool calls back (result, text, progress, cancel;
 * asking is ask.c's). */
#include "mcp_internal.h"
#include "metrics.h"
#include "traceparent.h"
#include "arena.h"
#include "auth.h"
#include "config.h"
#include "content.h"
#include "host.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "registry.h"
#include "schema.h"
#include "tool_exec.h"
#include "util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Count the tool call's outcome once (a plugin tool that timed out
 * finishes later, cancelled: the timeout is what counts). */
static void
tool_outcome(struct call *c, enum mx_tool_outcome o)
{
	if (c->mx_tool_done || c->tool == NULL)
		return;
	c->mx_tool_done = 1;
	metrics_tool(c->tool->mx, o, monotonic_us() - c->mx_tool_start);
	static const char *const outcomes[MXT_N] = { "ok", "is_error", "timeout", "cancelled", "killed" };
	if (o != MXT_OK)
		c->tool_error = outcomes[o];
	if (!c->tool_trace.sampled)
		return;         /* no span: its name is not worth a printf */
	struct trace_attr a[] = {
		{ "gen_ai.tool.name", TA_STR, c->tool->name, 0 },
		{ "mcpd.tool.kind", TA_STR, c->tool->kind == TOOL_PLUGIN ? "plugin" : "command", 0 },
		{ "mcpd.tool.outcome", TA_STR, outcomes[o], 0 },
	};
	char name[160];
	snprintf(name, sizeof(name), "%s %.128s", c->tool->kind == TOOL_PLUGIN ? "plugin" : "process",
	    c->tool->name);
	tracing_end(&c->tool_trace, 0, name, TK_INTERNAL, o != MXT_OK ? outcomes[o] : NULL, a,
	    sizeof(a) / sizeof(a[0]));
}

static int
is_error(const cJSON *result)
{
	return cJSON_IsTrue(json_get(result, "isError"));
}

static void
tool_done(void *arg, struct tool_result *r)
{
	struct call *c = arg;
	if (call_is_task(c)) {
		task_tool_done(c, r);
		return;
	}
	c->run = NULL;
	if (c->cancelled) {
		tool_outcome(c, MXT_CANCELLED);
		log_info("tool %s cancelled", c->tool->name);
		/* A cancelled request gets no response; end the HTTP exchange. */
		if (c->stream == NULL && c->req != NULL) {
			call_error(c, JSONRPC_REQUEST_CANCELLED, "Request cancelled");
			return;
		}
		call_reply(c, NULL);
		return;
	}
	if (!r->exited || r->status != 0 || r->timed_out)
		log_info("tool %s: %s%s%s", c->tool->name,
		    r->timed_out ? "timed out" : r->output_exceeded ? "output over the limit" :
		    r->channel_exceeded ? "did not read its channel" :
		    r->signal ? "killed by a signal" : "exited non-zero",
		    r->err_tail[0] ? "; stderr: " : "", r->err_tail);
	cJSON *res = tool_result_build(c->tool, r);
	tool_outcome(c, r->timed_out ? MXT_TIMEOUT :
	    r->output_exceeded || r->channel_exceeded || r->signal ? MXT_KILLED :
	    is_error(res) ? MXT_IS_ERROR : MXT_OK);
	call_result(c, res);
}

static const struct tool_run_callbacks tool_callbacks = { tool_message, tool_done };

static cJSON *
tool_error_result(const char *msg)
{
	cJSON *r = cJSON_CreateObject();
	cJSON *content = cJSON_AddArrayToObject(r, "content");
	cJSON_AddItemToArray(content, content_text(msg, strlen(msg)));
	cJSON_AddBoolToObject(r, "isError", 1);
	return r;
}

/* SEP-2243: arguments mirrored in Mcp-Param-<name> headers must match. A
 * value wrapped as =?base64?...?= is strict RFC 4648 Base64. */
static int
strict_base64(const char *s, size_t len, char **out)
{
	if (len == 0 || len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		int ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '+' || ch == '/' || (ch == '=' && i >= len - 2 && (i == len - 1 || s[len - 1] == '='));
		if (!ok)
			return -1;
	}
	unsigned char *buf = malloc(len);
	size_t n = 0;
	if (buf == NULL || base64_decode(s, len, buf, &n) < 0) {
		free(buf);
		return -1;
	}
	*out = malloc(n + 1);
	if (*out == NULL) {
		free(buf);
		return -1;
	}
	memcpy(*out, buf, n);
	(*out)[n] = '\0';
	free(buf);
	return memchr(*out, '\0', n) != NULL ? -1 : 0;
}

static int
check_header_params(struct call *c, const struct tool_def *t, const cJSON *args)
{
	const cJSON *hp;
	cJSON_ArrayForEach(hp, t->header_params) {
		char hname[200];
		snprintf(hname, sizeof(hname), "Mcp-Param-%s", hp->valuestring);
		const char *hv = c->req ? http_request_header(c->req, hname) : NULL;
		const cJSON *a = json_get(args, hp->string);
		if (a == NULL || cJSON_IsNull(a)) {
			if (hv != NULL) {
				call_error(c, -32020, "Header %s given but arguments.%s is absent", hname, hp->string);
				return -1;
			}
			continue;
		}
		if (hv == NULL) {
			call_error(c, -32020, "Header %s is required: the tool declares x-mcp-header for arguments.%s",
			    hname, hp->string);
			return -1;
		}
		char *decoded = NULL;
		size_t hl = strlen(hv);
		if (hl >= 11 && strncmp(hv, "=?base64?", 9) == 0 && strcmp(hv + hl - 2, "?=") == 0) {
			if (strict_base64(hv + 9, hl - 11, &decoded) < 0) {
				free(decoded);
				call_error(c, -32020, "Header %s is not valid Base64", hname);
				return -1;
			}
		}
		const char *v = decoded ? decoded : hv;
		int same = 0;
		if (cJSON_IsString(a)) {
			same = strcmp(v, a->valuestring) == 0;
		} else if (cJSON_IsBool(a)) {
			same = strcmp(v, cJSON_IsTrue(a) ? "true" : "false") == 0;
		} else if (cJSON_IsNumber(a)) {
			/* The same number, not merely the same nearest double. */
			cJSON *h = json_number_parse(v, strlen(v));
			same = h != NULL && json_number_cmp(h, a) == 0;
			cJSON_Delete(h);
		}
		free(decoded);
		if (!same) {
			call_error(c, -32020, "Header %s does not match arguments.%s", hname, hp->string);
			return -1;
		}
	}
	return 0;
}

static void
plugin_finish(struct call *c, cJSON *result)
{
	c->in_plugin = 0;
	if (call_is_task(c)) {
		task_plugin_done(c, result, c->plugin_timed_out);
		return;
	}
	if (c->input_needed && !c->cancelled) {
		cJSON_Delete(result);
		mrtr_end_round(c);
		return;
	}
	if (c->cancelled) {
		tool_outcome(c, MXT_CANCELLED);
		cJSON_Delete(result);
		call_reply(c, c->req != NULL && c->stream == NULL ?
		    jsonrpc_error(c->msg.id, JSONRPC_REQUEST_CANCELLED, "Request cancelled", NULL) : NULL);
		return;
	}
	tool_outcome(c, is_error(result) ? MXT_IS_ERROR : MXT_OK);
	call_result(c, result);
}

/* The common case: a plain call's result that is valid and on one line
 * (a line break between its tokens would split an SSE data line or a
 * stdio message) goes into the answer as the plugin wrote it. It is
 * checked by a scan of its text (content_result_scan), or where the
 * scan cannot tell, in a tree from the worker's scratch arena, gone
 * before the answer is sent. 0: not that case, nothing done. */
static int
result_as_written(struct call *c, const char *json, size_t len)
{
	if (call_is_task(c) || c->input_needed || c->cancelled)
		return 0;
	int failed = 0, has_type = 0;
	/* (The scan takes no line break: one it reads is on one line.) */
	if (!content_result_scan(json, len, &failed, &has_type)) {
		if (memchr(json, '\n', len) != NULL || memchr(json, '\r', len) != NULL)
			return 0;
		struct mcp *m = c->m;
		if (m->scratch == NULL && (m->scratch = arena_new(4096)) == NULL)
			return 0;
		const cJSON *r = json_parse_arena(json, len, 0, NULL, m->scratch);
		int ok = content_result_tree(r, &failed, &has_type);
		arena_reset(m->scratch);
		if (!ok)
			return 0;       /* the tree path says what is wrong */
	}
	c->in_plugin = 0;
	tool_outcome(c, failed ? MXT_IS_ERROR : MXT_OK);
	call_result_text(c, json, len, has_type);
	return 1;
}

void
host_tool_result(struct mcpd_tool_call *call, const char *result_json)
{
	struct call *c = (struct call *)call;
	size_t len = result_json ? strlen(result_json) : 0;
	if (result_json != NULL && result_as_written(c, result_json, len))
		return;
	cJSON *r = result_json ? json_parse(result_json, len, 0, NULL) : NULL;
	char err[256];
	if (r == NULL || !cJSON_IsObject(r) ||
	    content_blocks_check(json_get(r, "content"), err, sizeof(err)) < 0) {
		if (r == NULL || !cJSON_IsObject(r))
			snprintf(err, sizeof(err), "the result is not a JSON object");
		log_error("plugin tool %s returned an invalid result: %s", c->tool->name, err);
		cJSON_Delete(r);
		r = tool_error_result("the tool returned an invalid result");
	}
	plugin_finish(c, r);
}

void
host_tool_text(struct mcpd_tool_call *call, const char *text, int is_error)
{
	struct call *c = (struct call *)call;
	cJSON *r = cJSON_CreateObject();
	cJSON *content = cJSON_AddArrayToObject(r, "content");
	cJSON_AddItemToArray(content, content_text(text ? text : "", text ? strlen(text) : 0));
	if (is_error)
		cJSON_AddBoolToObject(r, "isError", 1);
	plugin_finish(c, r);
}

void
host_tool_progress(struct mcpd_tool_call *call, double progress, double total, const char *message)
{
	struct call *c = (struct call *)call;
	if (call_is_task(c)) {
		/* A task has no stream: its progress is its statusMessage. */
		char buf[128];
		if (message == NULL && total > 0)
			snprintf(buf, sizeof(buf), "%g of %g", progress, total);
		else if (message == NULL)
			snprintf(buf, sizeof(buf), "%g", progress);
		if (!c->cancelled)
			task_note(c, message != NULL ? message : buf);
		return;
	}
	if (c->progress_token == NULL || c->cancelled)
		return;
	cJSON *p = cJSON_CreateObject();
	cJSON_AddItemToObject(p, "progressToken", cJSON_Duplicate(c->progress_token, 1));
	cJSON_AddNumberToObject(p, "progress", progress);
	if (total > 0)
		cJSON_AddNumberToObject(p, "total", total);
	if (message != NULL)
		cJSON_AddStringToObject(p, "message", message);
	call_send(c, jsonrpc_notification("notifications/progress", p));
}

/* ABI 1.5: what a task shows as its statusMessage; a plain call has none. */
void
host_tool_status(struct mcpd_tool_call *call, const char *message)
{
	struct call *c = (struct call *)call;
	if (call_is_task(c) && !c->cancelled && message != NULL)
		task_note(c, message);
}

void
host_tool_on_cancel(struct mcpd_tool_call *call, void (*fn)(void *), void *arg)
{
	struct call *c = (struct call *)call;
	c->plugin_cancel = fn;
	c->plugin_cancel_arg = arg;
}

/* The client cancelled or left: tell the plugin; the call lives on until
 * the plugin finishes it. */
void
plugin_cancel(struct call *c)
{
	if (c->cancelled)
		return;
	c->cancelled = 1;
	/* The plugin may finish the call in its cancel function, or in the
	 * done() of a question: the questions will not be answered now, and
	 * the ABI promises one done() each. */
	int finished = 0, *outer = c->finished_flag;
	c->finished_flag = &finished;
	if (c->plugin_cancel != NULL)
		c->plugin_cancel(c->plugin_cancel_arg);
	while (!finished && !LIST_EMPTY(&c->plugin_asks)) {
		struct plugin_ask *pa = LIST_FIRST(&c->plugin_asks);
		LIST_REMOVE(pa, link);
		if (pa->key == NULL) {
			if (c->s != NULL)
				session_cancel_pending(c->s, pa);
		} else {
			c->questions--;
		}
		void (*done)(void *, const char *, const char *) = pa->done;
		void *arg = pa->arg;
		free(pa->key);
		free(pa);
		done(arg, NULL, "cancelled");
	}
	if (finished) {
		if (outer != NULL)
			*outer = 1;
		return;
	}
	c->finished_flag = outer;
}

/* A plugin tool past its timeout: the client gets an error now; the call
 * stays until the plugin finishes it, as the ABI promises the plugin. */
static void
plugin_timeout(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct call *c = arg;
	char msg[200];
	snprintf(msg, sizeof(msg), "tool %s timed out after %.3gs", c->tool->name,
	    (double)c->tool->cmd.timeout_ms / 1000.0);
	log_warn("%s (plugin tool)", msg);
	tool_outcome(c, MXT_TIMEOUT);
	if (call_is_task(c)) {
		/* The task fails once the plugin finishes (task_plugin_done). */
		if (!c->cancelled)
			c->plugin_timed_out = 1;
		plugin_cancel(c);
		return;
	}
	cJSON *r = tool_error_result(msg);
	if (c->stateless && r != NULL)
		cJSON_AddStringToObject(r, "resultType", "complete");
	call_send_final(c, jsonrpc_result(c->msg.id, r));
	plugin_cancel(c);
}

static void
run_plugin_tool(struct call *c, const struct tool_def *t, const cJSON *args, int as_task)
{
	char *json = json_print(args);
	if (json == NULL) {
		call_result(c, tool_error_result("out of memory"));
		return;
	}
	c->in_plugin = 1;
	/* A task exists before the tool runs (or its task_after window
	 * starts): what the plugin does from the start is the task's. */
	if (as_task) {
		call_go_async(c);
		if (task_begin(c) < 0) {
			c->in_plugin = 0;
			free(json);
			log_error("tool %s: out of memory for its task", t->name);
			call_error(c, JSONRPC_INTERNAL_ERROR, "out of memory");
			return;
		}
		if (c->cancelled) {
			/* Refused at once (limits.max_tasks): the tool never runs. */
			c->in_plugin = 0;
			free(json);
			task_plugin_done(c, NULL, 0);
			return;
		}
	}
	/* Most plugin tools answer before they return: then the call never
	 * needs a timer or cross-worker cancellation. */
	int finished = 0;
	c->finished_flag = &finished;
	((mcpd_tool_fn *)t->plugin_fn)(host_table(), (struct mcpd_tool_call *)c, json);
	free(json);
	if (finished)
		return;
	c->finished_flag = NULL;
	if (!c->in_plugin)
		return;         /* finished: a task's result waits for its creation */
	call_go_async(c);
	c->plugin_timer = evtimer_new(c->m->base, plugin_timeout, c);
	if (c->plugin_timer != NULL) {
		struct timeval tv = { (time_t)(t->cmd.timeout_ms / 1000), (suseconds_t)(t->cmd.timeout_ms % 1000) * 1000 };
		evtimer_add(c->plugin_timer, &tv);
	}
}

void
m_tools_list(struct call *c)
{
	list_page(c, c->m->cfg->tool_pages);
}

void
m_tools_call(struct call *c)
{
	const char *name = param_string(c, "name");
	if (name == NULL) {
		call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: \"name\" must be a string");
		return;
	}
	const struct tool_def *t = registry_tool(c->m->cfg, name);
	if (t == NULL) {
		call_error(c, JSONRPC_INVALID_PARAMS, "Unknown tool: %s", name);
		return;
	}
	if (c->m->auth != NULL && t->scopes != NULL && c->req != NULL &&
	    !auth_has_scopes(auth_principal(c->req), t->scopes)) {
		/* Before anything streams: the answer is a plain 403 that
		 * tells the client which scopes to ask for (step-up). */
		auth_insufficient_scope(c->m->auth, c->req, t->scopes);
		http_request_log_extra(c->req, "tools/call: insufficient scope");
		c->status = 403;
		char msg[600];
		snprintf(msg, sizeof(msg), "Forbidden: tool %s needs the scopes: %s", t->name, t->scopes);
		call_reply(c, jsonrpc_error(c->msg.id, -32000, msg, NULL));
		return;
	}
	c->tool = t;
	c->mx_tool_start = monotonic_us();
	tracing_child(&c->tool_trace, &c->trace, c->mx_tool_start);
	const cJSON *args = json_get(c->params, "arguments");
	cJSON *empty = NULL;
	if (args == NULL || cJSON_IsNull(args))
		args = empty = cJSON_CreateObject();
	if (!cJSON_IsObject(args)) {
		call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: \"arguments\" must be an object");
		cJSON_Delete(empty);
		return;
	}
	char err[512];
	if ((t->input_compiled != NULL ?
	    schema_validate_compiled(t->input_compiled, args, "arguments", err, sizeof(err)) :
	    schema_validate(t->input_schema, args, "arguments", err, sizeof(err))) < 0) {
		cJSON_Delete(empty);
		/* 2025-11-25: input errors are tool errors the model can correct;
		 * earlier revisions answer with a protocol error. */
		if (c->proto < PROTO_2025_11_25) {
			call_error(c, JSONRPC_INVALID_PARAMS, "Invalid arguments for tool %s: %s", name, err);
			return;
		}
		char msg[700];
		snprintf(msg, sizeof(msg), "Invalid arguments for tool %s: %s", name, err);
		call_result(c, tool_error_result(msg));
		return;
	}
	if (t->requires != NULL) {
		cJSON *missing = cJSON_CreateObject();
		const cJSON *cap;
		cJSON_ArrayForEach(cap, t->requires)
			if (!client_has(c, cap->string))
				cJSON_AddObjectToObject(missing, cap->string);
		if (cJSON_GetArraySize(missing) > 0) {
			cJSON_Delete(empty);
			if (c->stateless) {
				cJSON *data = cJSON_CreateObject();
				cJSON_AddItemToObject(data, "requiredCapabilities", missing);
				call_error_data(c, -32021, "MissingRequiredClientCapabilityError: the client must declare the capabilities this tool needs", data);
				return;
			}
			char msg[300];
			snprintf(msg, sizeof(msg), "Tool %s needs the client to support %s", name, missing->child->string);
			cJSON_Delete(missing);
			call_result(c, tool_error_result(msg));
			return;
		}
		cJSON_Delete(missing);
	}
	if (c->stateless && (check_header_params(c, t, args) < 0 || mrtr_begin(c, t->name, args) < 0)) {
		cJSON_Delete(empty);
		return;
	}
	/* A task, when the tool and the client take one (the client's
	 * legacy params.task hint decides nothing). */
	int as_task = task_wanted(c, t);
	if (as_task < 0) {
		cJSON_Delete(empty);
		return;
	}
	if (t->kind == TOOL_PLUGIN) {
		run_plugin_tool(c, t, args, as_task);
		cJSON_Delete(empty);
		return;
	}
	char tool_env[sizeof("MCP_TOOL_NAME=") + 128], proto_env[64];   /* names: at most 128 */
	snprintf(tool_env, sizeof(tool_env), "MCP_TOOL_NAME=%s", t->name);
	snprintf(proto_env, sizeof(proto_env), "MCP_PROTOCOL_VERSION=%s", proto_names[c->proto]);
	char *caps_json = c->client_caps ? json_print(c->client_caps) : NULL;
	char *caps_env = NULL;
	if (asprintf(&caps_env, "MCP_CLIENT_CAPABILITIES=%s", caps_json ? caps_json : "{}") < 0)
		caps_env = NULL;
	free(caps_json);
	/* W3C trace context, from the request's _meta (as MCP carries it)
	 * or its traceparent header: handed on to the command when valid. */
	char trace_env[sizeof("TRACEPARENT=") + 128] = "";
	const char *tps = request_traceparent(c->msg.meta, c->req);
	char trace_id[33], ours[64];
	/* Recorded: the tool's span is its parent. */
	if (tracing_traceparent(&c->tool_trace, ours, sizeof(ours)) == 0)
		snprintf(trace_env, sizeof(trace_env), "TRACEPARENT=%s", ours);
	else if (tps != NULL && strlen(tps) <= 128 && traceparent_parse(tps, strlen(tps), trace_id) == 0)
		snprintf(trace_env, sizeof(trace_env), "TRACEPARENT=%s", tps);
	const char *extra[] = { tool_env, proto_env, caps_env ? caps_env : "MCP_CLIENT_CAPABILITIES={}",
	    trace_env[0] ? trace_env : NULL, NULL };
	int rc = start_command(c, t->name, &t->cmd, &t->arg_env, args, extra, &tool_callbacks, err, sizeof(err));
	free(caps_env);
	cJSON_Delete(empty);
	if (rc < 0) {
		log_error("tool %s: %s", t->name, err);
		char msg[700];
		snprintf(msg, sizeof(msg), "Tool %s could not run: %s", name, err);
		tool_outcome(c, MXT_IS_ERROR);
		call_result(c, tool_error_result(msg));
		return;
	}
	call_go_async(c);
	if (as_task && task_begin(c) < 0) {
		c->cancelled = 1;
		tool_run_cancel(c->run);
		log_error("tool %s: out of memory for its task", t->name);
	}
}
