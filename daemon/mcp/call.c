/* A call: one JSON-RPC request from dispatch to its answer. What it sends
 * goes as one JSON response, on an SSE stream of its session (the 2025
 * revisions: resumable, see session_stream.c), on the response itself
 * (2026-07-28) or, for a client on stdio, as lines (line.c); it ends
 * with call_result or call_error, or when the client leaves, cancels or
 * its session ends. The dispatch tables map each
 * method to its handler in t_*.c. */
#include "mcp_internal.h"
#include "asan.h"
#include "auth.h"
#include "config.h"
#include "http.h"
#include "json.h"
#include "metrics.h"
#include "log.h"
#include "registry.h"
#include "tool_exec.h"
#include "util.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void call_trace_begin(struct call *c);
static void call_log_fields(struct call *c);

/* A zeroed struct call: the one the last call_free kept (a call of
 * this worker's at a time is the common case), else a new one. Under
 * AddressSanitizer the kept call is poisoned until it is used again: a
 * use of a freed call is still reported as one of freed memory would be. */
static struct call *
call_alloc(struct mcp *m)
{
	struct call *c = m->spare_call;
	if (c == NULL)
		return calloc(1, sizeof(*c));
	m->spare_call = NULL;
	MCPD_UNPOISON(c, sizeof(*c));
	memset(c, 0, sizeof(*c));
	return c;
}

static void
call_release(struct call *c)
{
	struct mcp *m = c->m;
	if (m->spare_call != NULL) {
		free(c);
		return;
	}
	MCPD_POISON(c, sizeof(*c));
	m->spare_call = c;
}

void
call_spare_drop(struct mcp *m)
{
	if (m->spare_call == NULL)
		return;
	MCPD_UNPOISON(m->spare_call, sizeof(*m->spare_call));
	free(m->spare_call);
	m->spare_call = NULL;
}

struct call *
call_new(struct mcp *m, struct http_request *r, struct session *s, struct jsonrpc_msg *msg)
{
	struct call *c = call_alloc(m);
	if (c == NULL)
		return NULL;
	c->m = m;
	c->req = r;
	c->s = s;
	c->msg = *msg;
	msg->root = NULL;
	c->method = c->msg.method;
	c->params = c->msg.params;
	c->accept_sse = r != NULL ? -1 : 0;     /* read when first needed (call_accepts_sse) */
	c->status = 200;
	c->log_level = MLOG_COUNT;
	LIST_INIT(&c->asks);
	LIST_INIT(&c->plugin_asks);
	if (s != NULL) {
		c->proto = s->proto;
		c->client_caps = s->client_caps;
	}
	const cJSON *tok = json_get(c->msg.meta, "progressToken");
	if (cJSON_IsString(tok) || cJSON_IsNumber(tok))
		c->progress_token = tok;
	if (s != NULL)
		session_ref(s);
	call_trace_begin(c);
	call_log_fields(c);
	LIST_INSERT_HEAD(&m->calls, c, link);
	return c;
}

/* The request's trace context: _meta's traceparent (where MCP carries
 * it), else the HTTP header's. */
const char *
request_traceparent(const cJSON *meta, struct http_request *r)
{
	const cJSON *tp = json_get(meta, "traceparent");
	if (cJSON_IsString(tp))
		return tp->valuestring;
	return r != NULL ? http_request_field(r, HDR_TRACEPARENT) : NULL;
}

/* The call's span: the one its endpoint began for the request (current
 * while the request is being read and its session looked up), or a new
 * root. */
static void
call_trace_begin(struct call *c)
{
	const struct trace_ctx *cur = tracing_current();
	c->over_http = c->req != NULL;
	if (c->req != NULL && cur != NULL && cur->start_us == http_request_start(c->req))
		c->trace = *cur;
	else
		tracing_root(&c->trace, request_traceparent(c->msg.meta, c->req),
		    c->req != NULL ? http_request_start(c->req) : monotonic_us());
	/* Who asked: the request (and its principal) may be gone at the end. */
	if (c->trace.sampled && c->req != NULL && call_principal(c)[0] != '\0')
		c->trace_user = strdup(call_principal(c));
}

/* The session id as logs and spans show it: its first characters, as the
 * other log lines do. The whole id is a credential (with auth none, the
 * only one): it is not written where log and trace readers see it. */
#define SESSION_ID_SHOWN 8
static const char *
session_shown(const struct call *c, char out[SESSION_ID_SHOWN + 1])
{
	if (c->s == NULL)
		return NULL;
	snprintf(out, SESSION_ID_SHOWN + 1, "%.*s", SESSION_ID_SHOWN, c->s->id);
	return out;
}

/* error.type: the JSON-RPC error's code (in code), the tool's outcome
 * when not ok, or why no answer went; NULL for a result. */
static const char *
call_error_type(const struct call *c, char code[16])
{
	code[0] = '\0';
	if (c->mx_code != 0) {
		snprintf(code, 16, "%d", c->mx_code);
		return code;
	}
	if (!c->mx_answered)
		return c->cancelled ? "cancelled" : "no_response";
	return c->tool_error;
}

/* The access log's JSON line names what its span names. */
static void
call_log_fields(struct call *c)
{
	if (c->req == NULL || !log_access_json())
		return;
	char code[16], sid[SESSION_ID_SHOWN + 1];
	const struct principal *p = auth_principal(c->req);
	struct http_log_mcp l = {
		.method = c->method,
		.tool = c->tool != NULL ? c->tool->name : NULL,
		.session = session_shown(c, sid),
		.principal = p != NULL ? p->user : NULL,
		.trace_id = c->trace.trace_id[0] ? c->trace.trace_id : NULL,
		.span_id = c->trace.span_id[0] ? c->trace.span_id : NULL,
		.error_type = c->mx_answered ? call_error_type(c, code) : NULL,
	};
	http_request_log_mcp(c->req, &l);
}

/* The span ends with the call, named and described after OpenTelemetry's
 * semantic conventions for MCP. */
static void
call_trace_end(struct call *c)
{
	if (!c->trace.sampled)
		return;
	const char *target = c->tool != NULL ? c->tool->name : c->prompt != NULL ? c->prompt->name :
	    NULL;
	char name[300];
	snprintf(name, sizeof(name), "%s%s%.200s", c->method, target ? " " : "", target ? target : "");
	char *rid = c->msg.id != NULL ? json_print(c->msg.id) : NULL;
	const char *rids = rid;
	if (cJSON_IsString(c->msg.id))
		rids = c->msg.id->valuestring;
	char code[16] = "";
	const char *error = call_error_type(c, code);
	const char *who = c->trace_user;
	char sid[SESSION_ID_SHOWN + 1];
	struct trace_attr a[] = {
		{ "mcp.method.name", TA_STR, c->method, 0 },
		{ "mcp.protocol.version", TA_STR, c->s != NULL ? proto_names[c->s->proto] :
		    c->stateless ? proto_names[c->proto] : param_string(c, "protocolVersion"), 0 },
		{ "mcp.session.id", TA_STR, session_shown(c, sid), 0 },
		{ "jsonrpc.request.id", TA_STR, rids, 0 },
		{ "jsonrpc.protocol.version", TA_STR, "2.0", 0 },
		{ "gen_ai.tool.name", TA_STR, c->tool != NULL ? c->tool->name : NULL, 0 },
		{ "gen_ai.operation.name", TA_STR, c->tool != NULL ? "execute_tool" : NULL, 0 },
		{ "gen_ai.prompt.name", TA_STR, c->prompt != NULL ? c->prompt->name : NULL, 0 },
		{ "mcp.resource.uri", TA_STR, c->res != NULL ? param_string(c, "uri") : NULL, 0 },
		{ "rpc.response.status_code", TA_STR, code[0] ? code : NULL, 0 },
		{ "user.id", TA_STR, who != NULL && who[0] ? who : NULL, 0 },
		{ "network.protocol.name", TA_STR, c->over_http ? "http" : NULL, 0 },
	};
	tracing_end(&c->trace, 0, name, TK_SERVER, error, a, sizeof(a) / sizeof(a[0]));
	free(rid);
}

/* Under 2026-07-28 closing the response cancels the request; under the
 * 2025 revisions it does not (the client may resume a stream). */
void
call_req_closed(struct http_request *r, void *arg)
{
	struct call *c = arg;
	c->req = NULL;
	if (!c->stateless)
		return;
	/* A client that does not read its stream ends the call as one that
	 * leaves does: the tool is stopped, nothing more is queued for it. */
	if (http_request_overflowed(r))
		log_warn("%s%s%s ended: the client did not read its stream (limits.stream_buffer)%s",
		    c->method, c->tool ? " of tool " : "", c->tool ? c->tool->name : "",
		    c->run != NULL || c->in_plugin ? "; stopping the tool" : "");
	else if (c->tool != NULL && c->run != NULL)
		log_info("tool %s cancelled: the client closed the request", c->tool->name);
	if (c->in_plugin) {
		plugin_cancel(c);
		return;
	}
	c->cancelled = 1;
	call_free(c);
}

int
call_log_level(const struct call *c)
{
	return c->s != NULL ? c->s->log_level : c->log_level;
}

/* Whether the request's Accept takes an SSE stream; most calls answer
 * with one JSON response and never ask. */
static int
call_accepts_sse(struct call *c)
{
	if (c->accept_sse < 0)
		c->accept_sse = c->req != NULL &&
		    accepts(http_request_field(c->req, HDR_ACCEPT), "text/event-stream");
	return c->accept_sse;
}

static void
direct_keepalive(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct call *c = arg;
	if (c->req != NULL)
		http_stream_write(c->req, ": keep-alive\n\n", 14);
}

static void
call_stream_detached(void *arg)
{
	struct call *c = arg;
	c->req = NULL;   /* the stream goes on recording for Last-Event-ID */
}

/* Stateless: the response itself becomes an SSE stream scoped to the
 * request; returns 0 when it is (or already was). */
int
call_direct_stream(struct call *c)
{
	if (c->sse_direct || c->line != NULL)
		return 0;       /* (a line client takes each message as a line) */
	if (c->req == NULL || !call_accepts_sse(c))
		return -1;
	cors_headers(c->req);
	http_response_header(c->req, "Cache-Control", "no-cache");
	http_response_header(c->req, "X-Accel-Buffering", "no");
	http_stream_begin(c->req, 200, "text/event-stream");
	http_request_on_close(c->req, call_req_closed, c);
	c->sse_direct = 1;
	uint64_t ms = c->m->cfg->mcp.keepalive_ms;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	c->keepalive = event_new(c->m->base, -1, EV_PERSIST, direct_keepalive, c);
	if (c->keepalive != NULL)
		event_add(c->keepalive, &tv);
	return 0;
}

void
direct_write(struct call *c, const char *json)
{
	if (c->line != NULL) {
		line_write(c->line, json);
		return;
	}
	if (c->req == NULL)
		return;
	/* One chunk per event: proxies and line readers see it whole. */
	size_t len = strlen(json);
	char *ev = malloc(len + 32);
	if (ev == NULL)
		return;
	int n = snprintf(ev, len + 32, "event: message\ndata: %s\n\n", json);
	http_stream_write(c->req, ev, (size_t)n);
	free(ev);
}

/* The SSE stream of this call, opened on first use; NULL when the client
 * cannot take one (then messages go to the session's GET stream). */
struct stream *
call_stream(struct call *c)
{
	if (c->stream != NULL)
		return c->stream;
	if (c->s == NULL || c->req == NULL || !call_accepts_sse(c))
		return NULL;
	cors_headers(c->req);
	char *rid = json_print(c->msg.id);
	c->stream = stream_open(c->s, c->req, c->s->proto >= PROTO_2025_11_25, rid);
	free(rid);
	if (c->stream != NULL) {
		c->stream->detached = call_stream_detached;
		c->stream->detached_arg = c;
	}
	return c->stream;
}

void
call_send(struct call *c, char *json)
{
	if (json == NULL)
		return;
	if (c->line != NULL) {
		line_write(c->line, json);
		free(json);
		return;
	}
	if (c->stateless) {
		if (call_direct_stream(c) == 0)
			direct_write(c, json);
		free(json);
		return;
	}
	struct stream *st = call_stream(c);
	if (st != NULL)
		stream_send(st, json);
	else if (c->s != NULL)
		session_notify(c->s, json);   /* the GET stream, wherever it is held */
	free(json);
}

/* What the final message was, for the metrics: the envelope is ours
 * (jsonrpc.c), so "result" or "error" is the first member after the id,
 * and the raw quotes cannot come from inside a string. */
static void
note_answer(struct call *c, const char *json)
{
	if (c->mx_answered || json == NULL)
		return;
	c->mx_answered = 1;
	static const char error[] = "\"error\":{\"code\":";
	const char *res = strstr(json, "\"result\":");
	/* An error counts only before a result: look no further than it. */
	const char *err = memmem(json, res != NULL ? (size_t)(res - json) : strlen(json),
	    error, sizeof(error) - 1);
	if (err != NULL)
		c->mx_code = atoi(err + sizeof(error) - 1);
	if (c->mx_code == 0 && err != NULL)
		c->mx_code = -1;
}

/* Send the final message; the call itself stays. Takes json. */
void
call_send_final(struct call *c, char *json)
{
	note_answer(c, json);
	call_log_fields(c);
	if (c->sse_direct) {
		if (json != NULL)
			direct_write(c, json);
		free(json);
		if (c->req != NULL) {
			http_request_on_close(c->req, NULL, NULL);
			http_stream_end(c->req);
			c->req = NULL;
		}
	} else if (c->stream != NULL) {
		c->stream->detached = NULL;
		stream_finish(c->stream, json);
		c->stream = NULL;
		c->req = NULL;
		free(json);
	} else if (c->line != NULL) {
		if (json != NULL)
			line_write(c->line, json);
		c->line = NULL;
		free(json);
	} else if (c->req != NULL) {
		http_request_on_close(c->req, NULL, NULL);
		respond_json(c->req, c->status, json);
		c->req = NULL;
	} else {
		free(json);
	}
}

/* Send the final message and end the call. */
void
call_reply(struct call *c, char *json)
{
	call_send_final(c, json);
	call_free(c);
}

/* call_reply of an answer whose outcome the caller knows: mx_code as
 * note_answer would read it from the text (0: a result; an error's code,
 * -1 for an error of code 0), without the search. */
static void
call_reply_known(struct call *c, char *json, int mx_code)
{
	if (!c->mx_answered && json != NULL) {
		c->mx_answered = 1;
		c->mx_code = mx_code;
	}
	call_reply(c, json);
}

static int
error_mx_code(int code)
{
	return code != 0 ? code : -1;
}

void
call_result(struct call *c, cJSON *result)
{
	if (c->stateless && result != NULL && !cJSON_HasObjectItem(result, "resultType"))
		cJSON_AddStringToObject(result, "resultType", "complete");
	call_reply_known(c, jsonrpc_result(c->msg.id, result), 0);
}

/* The answer from a result object already in JSON text, checked and on
 * one line; has_type: it has a resultType member (else the stateless
 * revision's "complete" goes in first). */
void
call_result_text(struct call *c, const char *json, size_t len, int has_type)
{
	if (!c->stateless || has_type)
		call_reply_known(c, jsonrpc_result_text(c->msg.id, json, len), 0);
	else
		call_reply_known(c, jsonrpc_result_complete(c->msg.id, json, len), 0);
}

/* HTTP status of an error answer: the 2026 revision gives each its own. */
static int
error_status(const struct call *c, int code)
{
	if (!c->stateless)
		return 200;
	switch (code) {
	case JSONRPC_METHOD_NOT_FOUND:
		return 404;
	case -32020:
	case -32021:
	case -32022:
		return 400;
	default:
		return 200;
	}
}

void
call_error(struct call *c, int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->status = error_status(c, code);
	call_reply_known(c, jsonrpc_error(c->msg.id, code, msg, NULL), error_mx_code(code));
}

void
call_error_data(struct call *c, int code, const char *msg, cJSON *data)
{
	c->status = error_status(c, code);
	call_reply_known(c, jsonrpc_error(c->msg.id, code, msg, data), error_mx_code(code));
}

void
call_free(struct call *c)
{
	metrics_mcp(c->method, c->mx_answered, c->mx_code);
	call_trace_end(c);
	if (c->trace_user != NULL)
		free(c->trace_user);
	if (c->finished_flag != NULL)
		*c->finished_flag = 1;
	LIST_REMOVE(c, link);
	task_op_forget(c);
	if (c->task != NULL)
		task_call_gone(c);
	while (!LIST_EMPTY(&c->asks)) {
		struct ask_group *g = LIST_FIRST(&c->asks);
		LIST_REMOVE(g, link);
		for (size_t i = 0; i < g->nitems; i++) {
			if (c->s != NULL)
				session_cancel_pending(c->s, &g->items[i]);
			free(g->items[i].key);
		}
		free(g->items);
		cJSON_Delete(g->tool_id);
		cJSON_Delete(g->results);
		free(g);
	}
	while (!LIST_EMPTY(&c->plugin_asks)) {
		struct plugin_ask *pa = LIST_FIRST(&c->plugin_asks);
		LIST_REMOVE(pa, link);
		if (c->s != NULL && pa->key == NULL)
			session_cancel_pending(c->s, pa);
		free(pa->key);
		free(pa);
	}
	if (c->keepalive != NULL)
		event_free(c->keepalive);
	if (c->plugin_timer != NULL)
		event_free(c->plugin_timer);
	if (c->sse_direct && c->req != NULL) {
		http_request_on_close(c->req, NULL, NULL);
		http_stream_end(c->req);
		c->req = NULL;
	}
	/* (Most calls have none of these: no call into the library or free
	 * for each.) */
	if (c->answers != NULL)
		cJSON_Delete(c->answers);
	if (c->asked != NULL)
		cJSON_Delete(c->asked);
	if (c->filter != NULL)
		cJSON_Delete(c->filter);
	if (c->run != NULL)
		tool_run_abandon(c->run);
	if (c->stream != NULL) {
		c->stream->detached = NULL;
		stream_finish(c->stream, NULL);
	}
	if (c->req != NULL) {
		http_request_on_close(c->req, NULL, NULL);
		respond_rpc_error(c->req, 500, c->msg.id, JSONRPC_INTERNAL_ERROR, "request abandoned");
	}
	if (c->line != NULL) {
		char *json = jsonrpc_error(c->msg.id, JSONRPC_INTERNAL_ERROR, "request abandoned", NULL);
		if (json != NULL)
			line_write(c->line, json);
		free(json);
	}
	if (c->s != NULL && c->async)
		session_calls_end(c->s);
	if (c->s != NULL)
		session_unref(c->s);
	if (c->vars != NULL)
		cJSON_Delete(c->vars);
	if (c->complete_prefix != NULL)
		free(c->complete_prefix);
	if (c->principal != NULL)
		free(c->principal);
	jsonrpc_free(&c->msg);
	call_release(c);
}

/* The call goes on after the handler returns: hear if the client leaves. */
void
call_go_async(struct call *c)
{
	if (c->req != NULL && c->stream == NULL)
		http_request_on_close(c->req, call_req_closed, c);
	if (c->s != NULL && !c->async) {
		c->async = 1;
		session_calls_begin(c->s);
	}
}

const char *
param_string(const struct call *c, const char *key)
{
	const cJSON *v = json_get(c->params, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int
client_has(const struct call *c, const char *cap)
{
	return cJSON_IsObject(json_get(c->client_caps, cap));
}

void
list_page(struct call *c, const struct list_pages *lp)
{
	size_t page = 0;
	const char *cursor = param_string(c, "cursor");
	if (cursor != NULL) {
		uint64_t n = 0;
		if (strncmp(cursor, "page-", 5) != 0 || parse_u64(cursor + 5, &n) < 0 || n == 0 ||
		    n >= lp->npages) {
			call_error(c, JSONRPC_INVALID_PARAMS, "Invalid cursor");
			return;
		}
		page = (size_t)n;
	}
	/* "{"jsonrpc":"2.0","id":ID,"result":" + page + hints + "}}" */
	char *id = json_print(c->msg.id);
	const char *body = lp->pages[page];
	char hints[128] = "";
	if (c->stateless)
		snprintf(hints, sizeof(hints), ",\"resultType\":\"complete\",\"ttlMs\":%llu,\"cacheScope\":\"public\"",
		    (unsigned long long)c->m->cfg->cache.list_ttl_ms);
	size_t n = strlen(id) + strlen(body) + strlen(hints) + 48;
	char *json = malloc(n);
	if (json != NULL)
		snprintf(json, n, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s%s}}", id, body, hints);
	free(id);
	call_reply(c, json);
}

struct method {
	const char *name;
	void (*fn)(struct call *);
	int needs_session;
};

static const struct method methods[] = {
	{ "ping", m_ping, 0 },
	{ "tools/list", m_tools_list, 0 },
	{ "tools/call", m_tools_call, 0 },
	{ "resources/list", m_resources_list, 0 },
	{ "resources/templates/list", m_templates_list, 0 },
	{ "resources/read", m_resources_read, 0 },
	{ "resources/subscribe", m_subscribe, 1 },
	{ "resources/unsubscribe", m_unsubscribe, 1 },
	{ "prompts/list", m_prompts_list, 0 },
	{ "prompts/get", m_prompts_get, 0 },
	{ "completion/complete", m_complete, 0 },
	{ "logging/setLevel", m_set_level, 1 },
	{ "skills/list", m_skills_list, 0 },
	{ "skills/get", m_skills_get, 0 },
	{ "resources/directory/read", m_directory_read, 0 },
	{ NULL, NULL, 0 },
};

/* 2026-07-28: no session, so no initialize, ping, setLevel or
 * subscribe; discovery and listen streams instead. */
static const struct method methods_2026[] = {
	{ "server/discover", m_discover, 0 },
	{ "tools/list", m_tools_list, 0 },
	{ "tools/call", m_tools_call, 0 },
	{ "resources/list", m_resources_list, 0 },
	{ "resources/templates/list", m_templates_list, 0 },
	{ "resources/read", m_resources_read, 0 },
	{ "prompts/list", m_prompts_list, 0 },
	{ "prompts/get", m_prompts_get, 0 },
	{ "completion/complete", m_complete, 0 },
	{ "subscriptions/listen", m_listen, 0 },
	{ "tasks/get", m_tasks_get, 0 },
	{ "tasks/update", m_tasks_update, 0 },
	{ "tasks/cancel", m_tasks_cancel, 0 },
	{ "skills/list", m_skills_list, 0 },
	{ "skills/get", m_skills_get, 0 },
	{ "resources/directory/read", m_directory_read, 0 },
	{ NULL, NULL, 0 },
};

void
dispatch(struct call *c)
{
	if (c->req != NULL)
		http_request_log_extra(c->req, c->method);
	for (const struct method *mt = c->stateless ? methods_2026 : methods; mt->name != NULL; mt++) {
		if (mt->name[0] == c->method[0] && strcmp(mt->name, c->method) == 0) {
			if (c->params != NULL && !cJSON_IsObject(c->params)) {
				call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params");
				return;
			}
			/* The skills extension's methods exist where it is declared. */
			if (c->m->cfg->nskills == 0 && (mt->fn == m_skills_list || mt->fn == m_skills_get ||
			    mt->fn == m_directory_read))
				break;
			mt->fn(c);
			return;
		}
	}
	call_error(c, JSONRPC_METHOD_NOT_FOUND, "Method not found: %s", c->method);
}

/* Cancel the call of this session with that request id, if it runs here. */
int
cancel_request(struct mcp *m, struct session *s, const cJSON *id)
{
	struct call *c;
	LIST_FOREACH(c, &m->calls, link) {
		if (c->s != NULL && strcmp(c->s->id, s->id) == 0 && c->msg.id != NULL &&
		    json_equal(c->msg.id, id)) {
			if (c->in_plugin) {
				plugin_cancel(c);
				return 1;
			}
			if (c->run != NULL && !c->cancelled) {
				c->cancelled = 1;
				tool_run_cancel(c->run);
			}
			return 1;
		}
	}
	return 0;
}

void
cancel_from_anywhere(struct session *s, const cJSON *id, void *arg)
{
	cancel_request(arg, s, id);
}

void
session_gone(struct session *s, void *arg)
{
	struct mcp *m = arg;
	struct call *c, *next;
	for (c = LIST_FIRST(&m->calls); c != NULL; c = next) {
		next = LIST_NEXT(c, link);
		if (c->s == s && c->in_plugin) {
			/* The plugin still owns the call: only its stream goes now. */
			plugin_cancel(c);
			if (c->stream != NULL) {
				c->stream->detached = NULL;
				stream_finish(c->stream, NULL);
				c->stream = NULL;
				c->req = NULL;
			}
			continue;
		}
		if (c->s == s) {
			c->cancelled = 1;
			if (c->run != NULL) {
				tool_run_abandon(c->run);
				c->run = NULL;
			}
			call_reply(c, c->req != NULL ? jsonrpc_error(c->msg.id, JSONRPC_INTERNAL_ERROR, "Session ended", NULL) : NULL);
		}
	}
}
