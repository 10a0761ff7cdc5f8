#include "mcp.h"
#include "plugin.h"
#include "host.h"
#include "arena.h"
#include "config.h"
#include "content.h"
#include "http.h"
#include "admin.h"
#include "auth.h"
#include "oauth.h"
#include "json.h"
#include "jsonrpc.h"
#include "log.h"
#include "registry.h"
#include "reqstate.h"
#include "schema.h"
#include "session.h"
#include "tool_exec.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#define RESOURCE_NOT_FOUND -32002
#define MAX_COMPLETIONS 100
/* A command's questions forwarded to the client and not yet answered:
 * each waits with a subscription and a timer that polls storage. */
#define MAX_QUESTIONS 64

struct call;

struct ask_group;

struct ask_item {               /* one request forwarded to the client */
	struct ask_group *g;
	char *key;
};

struct ask_group {              /* a command's question(s), waiting for the client */
	struct call *c;
	cJSON *tool_id;             /* the id the command used on its channel */
	int single;                 /* answer with the result itself, not a map */
	cJSON *results;             /* key -> result, or {"error": ...} */
	struct ask_item *items;
	size_t nitems, remaining;
	LIST_ENTRY(ask_group) link;
};

struct plugin_ask {             /* a plugin's question waiting for the client */
	struct call *c;
	void (*done)(void *, const char *, const char *);
	void *arg;
	LIST_ENTRY(plugin_ask) link;
};

struct call {
	struct mcp *m;
	struct http_request *req;   /* NULL once the client is gone */
	struct session *s;
	struct jsonrpc_msg msg;
	const char *method;
	const cJSON *params;
	int accept_sse;
	struct stream *stream;
	const cJSON *progress_token;
	struct tool_run *run;
	const struct tool_def *tool;
	const struct resource_def *res;
	const struct prompt_def *prompt;
	cJSON *vars;                /* resource template variables, completion context */
	char *complete_prefix;
	int cancelled;
	int in_plugin;              /* a plugin tool owns the call until it finishes */
	int *finished_flag;         /* set when the call is freed (see run_plugin_tool) */
	struct event *plugin_timer; /* the tool's timeout, for plugin tools */
	int input_needed;           /* MRTR: a plugin asked what the client has not answered */
	LIST_HEAD(, plugin_ask) plugin_asks;
	void (*plugin_cancel)(void *);
	void *plugin_cancel_arg;
	enum proto proto;
	int stateless;              /* 2026-07-28: no session; the request says it all */
	const cJSON *client_caps;
	int log_level;              /* stateless threshold; MLOG_COUNT: no log messages */
	int sse_direct;             /* stateless: this response is an SSE stream */
	struct event *keepalive;
	int status;                 /* HTTP status of a JSON answer */
	cJSON *answers;             /* MRTR: input responses known so far */
	cJSON *asked;               /* MRTR: questions to return as inputRequests */
	char *bind_name;            /* MRTR: the tool, prompt or URI the state is for */
	char bind_digest[65];
	int listen;                 /* an open subscriptions/listen stream */
	int async;                  /* outlived its handler: cancellable from anywhere */
	cJSON *filter;              /* what the listener asked for and got */
	LIST_HEAD(, ask_group) asks;
	size_t questions;           /* forwarded to the client, not yet answered */
	LIST_ENTRY(call) link;
};

struct file_watch {             /* a directory holding file resources */
	int wd;
	char *dir;
};

struct mcp {
	struct event_base *base;
	struct config *cfg;
	struct sessions *sessions;
	struct tool_exec *te;
	LIST_HEAD(, call) calls;
	int draining;
	int inotify_fd;
	struct event *inotify_ev;
	struct file_watch *watches;
	size_t nwatches;
	struct auth *auth;              /* NULL: no auth configured */
	struct admin *admin;
	struct oauth *oauth;            /* the internal authorization server, or NULL */
};

static void call_free(struct call *c);

/* ---- HTTP helpers ---- */

static int
glob_match(const char *pat, const char *s)
{
	if (*pat == '\0')
		return *s == '\0';
	if (*pat == '*') {
		for (;; s++) {
			if (glob_match(pat + 1, s))
				return 1;
			if (*s == '\0')
				return 0;
		}
	}
	return tolower((unsigned char)*pat) == tolower((unsigned char)*s) && *s != '\0' &&
	    glob_match(pat + 1, s + 1);
}

static int
origin_allowed(const struct config *c, const char *origin)
{
	for (size_t i = 0; i < c->norigins; i++) {
		const char *p = c->allowed_origins[i];
		if (strcmp(p, "*") == 0 || glob_match(p, origin))
			return 1;
		/* "http://localhost:*" also admits the origin without a port */
		size_t pl = strlen(p);
		if (pl > 2 && strcmp(p + pl - 2, ":*") == 0 && strncasecmp(p, origin, pl - 2) == 0 &&
		    origin[pl - 2] == '\0')
			return 1;
	}
	return 0;
}

int
mcp_host_allowed(const struct config *c, const char *host)
{
	if (c->allowed_hosts == NULL)
		return 1;
	if (host == NULL)
		return 0;
	char name[256];
	if ((size_t)snprintf(name, sizeof(name), "%s", host) >= sizeof(name))
		return 0;       /* no host name is that long; a cut one could match */
	char *colon = name[0] == '[' ? strchr(name, ']') : strrchr(name, ':');
	if (name[0] == '[' && colon != NULL)
		colon[1] = '\0';
	else if (colon != NULL)
		*colon = '\0';
	for (size_t i = 0; i < c->nhosts; i++)
		if (strcasecmp(c->allowed_hosts[i], name) == 0 || strcasecmp(c->allowed_hosts[i], host) == 0)
			return 1;
	return 0;
}

/* The origin of this worker's requests is checked against this config. */
static const struct config *cors_config;

static void
cors_headers(struct http_request *r)
{
	const char *origin = http_request_header(r, "Origin");
	if (origin == NULL || !origin_allowed(cors_config, origin))
		return;
	http_response_header(r, "Access-Control-Allow-Origin", origin);
	http_response_header(r, "Vary", "Origin");
	http_response_header(r, "Access-Control-Expose-Headers",
	    "Mcp-Session-Id, MCP-Protocol-Version, WWW-Authenticate");
}

static void
respond_json(struct http_request *r, int status, char *json)
{
	cors_headers(r);
	if (json == NULL) {
		http_respond_text(r, 500, "out of memory");
		return;
	}
	http_respond(r, status, "application/json", json, strlen(json));
	free(json);
}

static void
respond_rpc_error(struct http_request *r, int status, const cJSON *id, int code,
    const char *message)
{
	respond_json(r, status, jsonrpc_error(id, code, message, NULL));
}

static int
accepts(const char *accept, const char *type)
{
	if (accept == NULL)
		return 1;
	return strstr(accept, type) != NULL || strstr(accept, "*/*") != NULL;
}

/* ---- calls ---- */

static struct call *
call_new(struct mcp *m, struct http_request *r, struct session *s, struct jsonrpc_msg *msg)
{
	struct call *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->m = m;
	c->req = r;
	c->s = s;
	c->msg = *msg;
	msg->root = NULL;
	c->method = c->msg.method;
	c->params = c->msg.params;
	c->accept_sse = accepts(http_request_header(r, "Accept"), "text/event-stream");
	c->status = 200;
	c->log_level = MLOG_COUNT;
	LIST_INIT(&c->asks);
	LIST_INIT(&c->plugin_asks);
	if (s != NULL) {
		c->proto = s->proto;
		c->client_caps = s->client_caps;
	}
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(c->params, "_meta");
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(meta, "progressToken");
	if (cJSON_IsString(tok) || cJSON_IsNumber(tok))
		c->progress_token = tok;
	if (s != NULL)
		session_ref(s);
	LIST_INSERT_HEAD(&m->calls, c, link);
	return c;
}

static void plugin_cancel(struct call *c);

/* Under 2026-07-28 closing the response cancels the request; under the
 * 2025 revisions it does not (the client may resume a stream). */
static void
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

static int
call_log_level(const struct call *c)
{
	return c->s != NULL ? c->s->log_level : c->log_level;
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

/* The SSE stream of this call, opened on first use; NULL when the client
 * cannot take one (then messages go to the session's GET stream). */
/* Stateless: the response itself becomes an SSE stream scoped to the
 * request; returns 0 when it is (or already was). */
static int
call_direct_stream(struct call *c)
{
	if (c->sse_direct)
		return 0;
	if (c->req == NULL || !c->accept_sse)
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

static void
direct_write(struct call *c, const char *json)
{
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

static struct stream *
call_stream(struct call *c)
{
	if (c->stream != NULL)
		return c->stream;
	if (c->s == NULL || c->req == NULL || !c->accept_sse)
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

static void
call_send(struct call *c, char *json)
{
	if (json == NULL)
		return;
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

/* Send the final message; the call itself stays. Takes json. */
static void
call_send_final(struct call *c, char *json)
{
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
	} else if (c->req != NULL) {
		http_request_on_close(c->req, NULL, NULL);
		respond_json(c->req, c->status, json);
		c->req = NULL;
	} else {
		free(json);
	}
}

/* Send the final message and end the call. */
static void
call_reply(struct call *c, char *json)
{
	call_send_final(c, json);
	call_free(c);
}

static void
call_result(struct call *c, cJSON *result)
{
	if (c->stateless && result != NULL && !cJSON_HasObjectItem(result, "resultType"))
		cJSON_AddStringToObject(result, "resultType", "complete");
	call_reply(c, jsonrpc_result(c->msg.id, result));
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

static void
call_error(struct call *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
call_error(struct call *c, int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->status = error_status(c, code);
	call_reply(c, jsonrpc_error(c->msg.id, code, msg, NULL));
}

static void
call_error_data(struct call *c, int code, const char *msg, cJSON *data)
{
	c->status = error_status(c, code);
	call_reply(c, jsonrpc_error(c->msg.id, code, msg, data));
}

static void
call_free(struct call *c)
{
	if (c->finished_flag != NULL)
		*c->finished_flag = 1;
	LIST_REMOVE(c, link);
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
		if (c->s != NULL)
			session_cancel_pending(c->s, pa);
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
	cJSON_Delete(c->answers);
	cJSON_Delete(c->asked);
	cJSON_Delete(c->filter);
	free(c->bind_name);
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
	if (c->s != NULL && c->async)
		session_calls_end(c->s);
	if (c->s != NULL)
		session_unref(c->s);
	cJSON_Delete(c->vars);
	free(c->complete_prefix);
	jsonrpc_free(&c->msg);
	free(c);
}

/* The call goes on after the handler returns: hear if the client leaves. */
static void
call_go_async(struct call *c)
{
	if (c->req != NULL && c->stream == NULL)
		http_request_on_close(c->req, call_req_closed, c);
	if (c->s != NULL && !c->async) {
		c->async = 1;
		session_calls_begin(c->s);
	}
}

static const char *
param_string(const struct call *c, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->params, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int
client_has(const struct call *c, const char *cap)
{
	return cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(c->client_caps, cap));
}

/* ---- lists ---- */

static void
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

/* ---- initialize and small methods ---- */

static void
m_ping(struct call *c)
{
	call_result(c, cJSON_CreateObject());
}

static void
m_set_level(struct call *c)
{
	const char *level = param_string(c, "level");
	int l = level ? mcp_log_level_parse(level) : -1;
	if (l < 0) {
		call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: level must be one of debug, info, notice, warning, error, critical, alert, emergency");
		return;
	}
	c->s->log_level = l;
	session_save(c->s);
	call_result(c, cJSON_CreateObject());
}

/* ---- tools ---- */

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

static void
tool_reply(struct call *c, char *line)
{
	if (c->run != NULL && line != NULL)
		tool_run_reply(c->run, line);
	free(line);
}

static void
reply_to_tool_error(struct call *c, const cJSON *id, int code, const char *message)
{
	tool_reply(c, jsonrpc_error(id, code, message, NULL));
}

static void
group_free(struct ask_group *g)
{
	LIST_REMOVE(g, link);
	for (size_t i = 0; i < g->nitems; i++)
		free(g->items[i].key);
	free(g->items);
	cJSON_Delete(g->tool_id);
	cJSON_Delete(g->results);
	free(g);
}

/* Every question of the group has its answer: hand them to the command,
 * the one result itself for a single question, else a map by key. */
static void
group_finish(struct ask_group *g)
{
	struct call *c = g->c;
	if (g->single) {
		cJSON *only = g->results->child;
		const cJSON *err = cJSON_GetObjectItemCaseSensitive(only, "mcpd/error");
		if (err != NULL)
			tool_reply(c, jsonrpc_error(g->tool_id,
			    cJSON_GetObjectItemCaseSensitive(err, "code") ? cJSON_GetObjectItemCaseSensitive(err, "code")->valueint : JSONRPC_INTERNAL_ERROR,
			    cJSON_IsString(cJSON_GetObjectItemCaseSensitive(err, "message")) ?
			    cJSON_GetObjectItemCaseSensitive(err, "message")->valuestring : "the client failed the request", NULL));
		else
			tool_reply(c, jsonrpc_result(g->tool_id, cJSON_Duplicate(only, 1)));
	} else {
		tool_reply(c, jsonrpc_result(g->tool_id, cJSON_Duplicate(g->results, 1)));
	}
	group_free(g);
}

static void
item_answered(void *arg, const cJSON *result, const cJSON *error)
{
	struct ask_item *it = arg;
	struct ask_group *g = it->g;
	if (error != NULL) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddItemToObject(e, "mcpd/error", cJSON_Duplicate(error, 1));
		cJSON_AddItemToObject(g->results, it->key, e);
	} else {
		cJSON_AddItemToObject(g->results, it->key, result ? cJSON_Duplicate(result, 1) : cJSON_CreateObject());
	}
	g->c->questions--;
	if (--g->remaining == 0)
		group_finish(g);
}

static const char *
ask_capability(const char *method)
{
	if (strcmp(method, "elicitation/create") == 0)
		return "elicitation";
	if (strcmp(method, "sampling/createMessage") == 0)
		return "sampling";
	if (strcmp(method, "roots/list") == 0)
		return "roots";
	return NULL;
}

static void mrtr_end_round(struct call *c);

/* A command asks the client: forwarded as requests under the 2025
 * revisions; under 2026-07-28 answered from the retry's inputResponses
 * or, if any is unknown, the command ends and the client gets them as
 * inputRequests (MRTR). requests: key -> {method, params}. */
static void
ask_start(struct call *c, const cJSON *tool_id, const cJSON *requests, const char *single_key)
{
	struct ask_group *g = calloc(1, sizeof(*g));
	size_t n = (size_t)cJSON_GetArraySize(requests);
	if (g == NULL || (g->items = calloc(n ? n : 1, sizeof(*g->items))) == NULL) {
		free(g);
		reply_to_tool_error(c, tool_id, JSONRPC_INTERNAL_ERROR, "out of memory");
		return;
	}
	g->c = c;
	g->tool_id = cJSON_Duplicate(tool_id, 1);
	g->single = single_key != NULL;
	g->results = cJSON_CreateObject();
	LIST_INSERT_HEAD(&c->asks, g, link);
	int need_input = 0;
	const cJSON *rq;
	cJSON_ArrayForEach(rq, requests) {
		const cJSON *method = cJSON_GetObjectItemCaseSensitive(rq, "method");
		const cJSON *params = cJSON_GetObjectItemCaseSensitive(rq, "params");
		const char *cap = cJSON_IsString(method) ? ask_capability(method->valuestring) : NULL;
		const char *why = NULL;
		char buf[128];
		if (cap == NULL) {
			why = "mcpd forwards only elicitation/create, sampling/createMessage and roots/list";
		} else if (!client_has(c, cap)) {
			snprintf(buf, sizeof(buf), "the client did not declare the %s capability", cap);
			why = buf;
		}
		if (why != NULL) {
			cJSON *e = cJSON_CreateObject();
			cJSON *err = cJSON_AddObjectToObject(e, "mcpd/error");
			cJSON_AddNumberToObject(err, "code", JSONRPC_METHOD_NOT_FOUND);
			cJSON_AddStringToObject(err, "message", why);
			cJSON_AddItemToObject(g->results, rq->string, e);
			continue;
		}
		if (c->stateless) {
			const cJSON *known = cJSON_GetObjectItemCaseSensitive(c->answers, rq->string);
			if (known != NULL) {
				cJSON_AddItemToObject(g->results, rq->string, cJSON_Duplicate(known, 1));
				continue;
			}
			if (c->asked == NULL)
				c->asked = cJSON_CreateObject();
			cJSON *q = cJSON_CreateObject();
			cJSON_AddStringToObject(q, "method", method->valuestring);
			cJSON_AddItemToObject(q, "params", params ? cJSON_Duplicate(params, 1) : cJSON_CreateObject());
			cJSON_AddItemToObject(c->asked, rq->string, q);
			need_input = 1;
			continue;
		}
		struct ask_item *it = &g->items[g->nitems++];
		it->g = g;
		it->key = strdup(rq->string);
		g->remaining++;
	}
	if (need_input) {
		mrtr_end_round(c);
		return;
	}
	if (g->remaining == 0) {
		group_finish(g);
		return;
	}
	if (c->questions + g->remaining > MAX_QUESTIONS) {
		char msg[160];
		snprintf(msg, sizeof(msg), "too many questions waiting for the client's answers "
		    "(at most %d a call)%s", MAX_QUESTIONS, c->questions > 0 ? ": wait for answers first" : "");
		cJSON *id = cJSON_Duplicate(g->tool_id, 1);
		group_free(g);
		reply_to_tool_error(c, id, JSONRPC_INVALID_REQUEST, msg);
		cJSON_Delete(id);
		return;
	}
	c->questions += g->remaining;
	/* Send only after counting, so that no early answer finishes the group. */
	size_t count = g->nitems;
	for (size_t i = 0; i < count; i++) {
		const cJSON *q = cJSON_GetObjectItemCaseSensitive(requests, g->items[i].key);
		const cJSON *params = cJSON_GetObjectItemCaseSensitive(q, "params");
		session_request(c->s, cJSON_GetObjectItemCaseSensitive(q, "method")->valuestring,
		    params ? cJSON_Duplicate(params, 1) : cJSON_CreateObject(), call_stream(c),
		    item_answered, &g->items[i]);
	}
}

/* The key of a question a command did not name: stable for the same
 * question, so that a rerun finds its answer. */
static void
derived_key(const char *method, const cJSON *params, char *out, size_t len)
{
	char digest[65];
	json_digest(params, digest);
	const char *slash = strchr(method, '/');
	snprintf(out, len, "%.*s-%.12s", slash ? (int)(slash - method) : (int)strlen(method), method, digest);
}

static void broadcast(struct mcp *m, const char *what, const char *uri);

static void
tool_request(struct call *c, const cJSON *msg, const char *method)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(msg, "params");
	if (strcmp(method, "mcpd/inputs") == 0) {
		const cJSON *requests = cJSON_GetObjectItemCaseSensitive(params, "requests");
		if (!cJSON_IsObject(requests) || cJSON_GetArraySize(requests) == 0) {
			reply_to_tool_error(c, id, JSONRPC_INVALID_PARAMS, "mcpd/inputs needs params.requests: {key: {method, params}}");
			return;
		}
		ask_start(c, id, requests, NULL);
		return;
	}
	if (strcmp(method, "mcpd/changed") == 0) {
		const cJSON *what = cJSON_GetObjectItemCaseSensitive(params, "what");
		const cJSON *uri = cJSON_GetObjectItemCaseSensitive(params, "uri");
		const char *w = cJSON_IsString(what) ? what->valuestring : "";
		if (strcmp(w, "tools") != 0 && strcmp(w, "prompts") != 0 && strcmp(w, "resources") != 0 &&
		    !(strcmp(w, "resource") == 0 && cJSON_IsString(uri))) {
			reply_to_tool_error(c, id, JSONRPC_INVALID_PARAMS, "changed: tools, prompts, resources, or resource URI");
			return;
		}
		broadcast(c->m, strcmp(w, "resource") == 0 ? "updated" : w, cJSON_IsString(uri) ? uri->valuestring : NULL);
		tool_reply(c, jsonrpc_result(id, cJSON_CreateObject()));
		return;
	}
	char key[96];
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(msg, "key");
	if (cJSON_IsString(k) && k->valuestring[0] != '\0') {
		/* a cut key could take the answer to another question */
		if (strlen(k->valuestring) >= sizeof(key)) {
			reply_to_tool_error(c, id, JSONRPC_INVALID_PARAMS, "key: at most 95 bytes");
			return;
		}
		snprintf(key, sizeof(key), "%s", k->valuestring);
	} else
		derived_key(method, params, key, sizeof(key));
	cJSON *requests = cJSON_CreateObject();
	cJSON *q = cJSON_AddObjectToObject(requests, key);
	cJSON_AddStringToObject(q, "method", method);
	cJSON_AddItemToObject(q, "params", params ? cJSON_Duplicate(params, 1) : cJSON_CreateObject());
	ask_start(c, id, requests, key);
	cJSON_Delete(requests);
}

static void
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

static void
tool_done(void *arg, struct tool_result *r)
{
	struct call *c = arg;
	c->run = NULL;
	if (c->cancelled) {
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
	call_result(c, tool_result_build(c->tool, r));
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

/* Start a command with the call's arguments: all of them on stdin, the
 * declared ones in the environment. Returns 0 or -1 with err. */
static int
start_command(struct call *c, const char *label, const struct command_def *cmd,
    const struct arg_names *names, const cJSON *args, const char *const *extra,
    const struct tool_run_callbacks *cb, char *err, size_t errlen)
{
	struct run_env env = { 0 };
	char *input = json_print(args);
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

/* ---- MRTR (2026-07-28): input required, then a retry ---- */

/* Close the round: the command is stopped and the client gets the
 * questions, with mcpd's state sealed in requestState. */
static void
mrtr_end_round(struct call *c)
{
	if (c->run != NULL) {
		tool_run_abandon(c->run);
		c->run = NULL;
	}
	cJSON *payload = cJSON_CreateObject();
	cJSON_AddStringToObject(payload, "m", c->method);
	cJSON_AddStringToObject(payload, "n", c->bind_name ? c->bind_name : "");
	cJSON_AddStringToObject(payload, "h", c->bind_digest);
	cJSON_AddItemToObject(payload, "a", c->answers ? c->answers : cJSON_CreateObject());
	c->answers = NULL;
	char *token = reqstate_seal(c->m->cfg->request_state.key, payload, c->m->cfg->request_state.ttl_ms);
	cJSON_Delete(payload);
	cJSON *res = cJSON_CreateObject();
	cJSON_AddStringToObject(res, "resultType", "input_required");
	cJSON_AddItemToObject(res, "inputRequests", c->asked ? c->asked : cJSON_CreateObject());
	c->asked = NULL;
	if (token != NULL)
		cJSON_AddStringToObject(res, "requestState", token);
	free(token);
	call_result(c, res);
}

/* Start a request that may need input: what the previous rounds learnt
 * (from requestState) plus this retry's inputResponses. Returns -1 after
 * answering with an error. */
static int
mrtr_begin(struct call *c, const char *name, const cJSON *bound)
{
	free(c->bind_name);
	c->bind_name = strdup(name);
	json_digest(bound, c->bind_digest);
	c->answers = cJSON_CreateObject();
	const cJSON *state = cJSON_GetObjectItemCaseSensitive(c->params, "requestState");
	if (state != NULL && !cJSON_IsNull(state)) {
		char err[160];
		if (!cJSON_IsString(state)) {
			call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: requestState must be a string");
			return -1;
		}
		cJSON *p = reqstate_open(c->m->cfg->request_state.key, state->valuestring, err, sizeof(err));
		if (p == NULL) {
			call_error(c, JSONRPC_INVALID_PARAMS, "%s", err);
			return -1;
		}
		const cJSON *pm = cJSON_GetObjectItemCaseSensitive(p, "m");
		const cJSON *pn = cJSON_GetObjectItemCaseSensitive(p, "n");
		const cJSON *ph = cJSON_GetObjectItemCaseSensitive(p, "h");
		if (!cJSON_IsString(pm) || !cJSON_IsString(pn) || !cJSON_IsString(ph) ||
		    strcmp(pm->valuestring, c->method) != 0 || strcmp(pn->valuestring, name) != 0 ||
		    strcmp(ph->valuestring, c->bind_digest) != 0) {
			cJSON_Delete(p);
			call_error(c, JSONRPC_INVALID_PARAMS, "requestState belongs to another request");
			return -1;
		}
		cJSON *a = cJSON_DetachItemFromObjectCaseSensitive(p, "a");
		cJSON_Delete(p);
		if (cJSON_IsObject(a)) {
			cJSON_Delete(c->answers);
			c->answers = a;
		} else {
			cJSON_Delete(a);
		}
	}
	const cJSON *ir = cJSON_GetObjectItemCaseSensitive(c->params, "inputResponses");
	if (ir != NULL && !cJSON_IsNull(ir)) {
		if (!cJSON_IsObject(ir)) {
			call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: inputResponses must be an object");
			return -1;
		}
		const cJSON *r;
		cJSON_ArrayForEach(r, ir) {
			if (!cJSON_IsObject(r)) {
				call_error(c, JSONRPC_INVALID_PARAMS,
				    "Invalid params: inputResponses.%s must be an object (the client's result for that request)",
				    r->string);
				return -1;
			}
			cJSON_DeleteItemFromObjectCaseSensitive(c->answers, r->string);
			cJSON_AddItemToObject(c->answers, r->string, cJSON_Duplicate(r, 1));
		}
	}
	return 0;
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
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(args, hp->string);
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

/* ---- plugin tools ---- */


static void
plugin_finish(struct call *c, cJSON *result)
{
	c->in_plugin = 0;
	if (c->input_needed && !c->cancelled) {
		cJSON_Delete(result);
		mrtr_end_round(c);
		return;
	}
	if (c->cancelled) {
		cJSON_Delete(result);
		call_reply(c, c->req != NULL && c->stream == NULL ?
		    jsonrpc_error(c->msg.id, JSONRPC_REQUEST_CANCELLED, "Request cancelled", NULL) : NULL);
		return;
	}
	call_result(c, result);
}

static void
host_tool_result(struct mcpd_tool_call *call, const char *result_json)
{
	struct call *c = (struct call *)call;
	cJSON *r = result_json ? json_parse(result_json, strlen(result_json), 0, NULL) : NULL;
	char err[256];
	if (r == NULL || !cJSON_IsObject(r) ||
	    content_blocks_check(cJSON_GetObjectItemCaseSensitive(r, "content"), err, sizeof(err)) < 0) {
		if (r == NULL || !cJSON_IsObject(r))
			snprintf(err, sizeof(err), "the result is not a JSON object");
		log_error("plugin tool %s returned an invalid result: %s", c->tool->name, err);
		cJSON_Delete(r);
		r = tool_error_result("the tool returned an invalid result");
	}
	plugin_finish(c, r);
}

static void
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

static void
host_tool_progress(struct mcpd_tool_call *call, double progress, double total, const char *message)
{
	struct call *c = (struct call *)call;
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

static void
host_tool_on_cancel(struct mcpd_tool_call *call, void (*fn)(void *), void *arg)
{
	struct call *c = (struct call *)call;
	c->plugin_cancel = fn;
	c->plugin_cancel_arg = arg;
}

static void
plugin_ask_answered(void *arg, const cJSON *result, const cJSON *error)
{
	struct plugin_ask *pa = arg;
	LIST_REMOVE(pa, link);
	char *json = result ? json_print(result) : NULL;
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(error, "message");
	pa->done(pa->arg, error ? NULL : (json ? json : "{}"),
	    error ? (cJSON_IsString(msg) ? msg->valuestring : "the client failed the request") : NULL);
	free(json);
	free(pa);
}

static void
host_tool_ask(struct mcpd_tool_call *call, const char *key, const char *method, const char *params_json,
    void (*done)(void *, const char *, const char *), void *arg)
{
	struct call *c = (struct call *)call;
	const char *cap = method ? ask_capability(method) : NULL;
	cJSON *params = params_json ? json_parse(params_json, strlen(params_json), 0, NULL) : cJSON_CreateObject();
	char why[128];
	if (cap == NULL || params == NULL || key == NULL || c->cancelled) {
		cJSON_Delete(params);
		done(arg, NULL, c->cancelled ? "cancelled" : "tool_ask needs a key, one of elicitation/create, sampling/createMessage, roots/list, and JSON params");
		return;
	}
	if (!client_has(c, cap)) {
		cJSON_Delete(params);
		snprintf(why, sizeof(why), "the client did not declare the %s capability", cap);
		done(arg, NULL, why);
		return;
	}
	if (c->stateless) {
		const cJSON *known = cJSON_GetObjectItemCaseSensitive(c->answers, key);
		if (known != NULL) {
			cJSON_Delete(params);
			char *json = json_print(known);
			done(arg, json, NULL);
			free(json);
			return;
		}
		if (c->asked == NULL)
			c->asked = cJSON_CreateObject();
		cJSON *q = cJSON_CreateObject();
		cJSON_AddStringToObject(q, "method", method);
		cJSON_AddItemToObject(q, "params", params);
		cJSON_DeleteItemFromObjectCaseSensitive(c->asked, key);
		cJSON_AddItemToObject(c->asked, key, q);
		c->input_needed = 1;
		done(arg, NULL, MCPD_INPUT_REQUIRED);
		return;
	}
	struct plugin_ask *pa = calloc(1, sizeof(*pa));
	if (pa == NULL) {
		cJSON_Delete(params);
		done(arg, NULL, "out of memory");
		return;
	}
	pa->c = c;
	pa->done = done;
	pa->arg = arg;
	LIST_INSERT_HEAD(&c->plugin_asks, pa, link);
	session_request(c->s, method, params, call_stream(c), plugin_ask_answered, pa);
}


/* The client cancelled or left: tell the plugin; the call lives on until
 * the plugin finishes it. */
static void
plugin_cancel(struct call *c)
{
	if (c->cancelled)
		return;
	c->cancelled = 1;
	if (c->plugin_cancel != NULL)
		c->plugin_cancel(c->plugin_cancel_arg);
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
	cJSON *r = tool_error_result(msg);
	if (c->stateless && r != NULL)
		cJSON_AddStringToObject(r, "resultType", "complete");
	call_send_final(c, jsonrpc_result(c->msg.id, r));
	plugin_cancel(c);
}

static void
run_plugin_tool(struct call *c, const struct tool_def *t, const cJSON *args)
{
	char *json = json_print(args);
	if (json == NULL) {
		call_result(c, tool_error_result("out of memory"));
		return;
	}
	c->in_plugin = 1;
	/* Most plugin tools answer before they return: then the call never
	 * needs a timer or cross-worker cancellation. */
	int finished = 0;
	c->finished_flag = &finished;
	((mcpd_tool_fn *)t->plugin_fn)(host_table(), (struct mcpd_tool_call *)c, json);
	free(json);
	if (finished)
		return;
	c->finished_flag = NULL;
	call_go_async(c);
	c->plugin_timer = evtimer_new(c->m->base, plugin_timeout, c);
	if (c->plugin_timer != NULL) {
		struct timeval tv = { (time_t)(t->cmd.timeout_ms / 1000), (suseconds_t)(t->cmd.timeout_ms % 1000) * 1000 };
		evtimer_add(c->plugin_timer, &tv);
	}
}

static void
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
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(c->params, "arguments");
	cJSON *empty = NULL;
	if (args == NULL || cJSON_IsNull(args))
		args = empty = cJSON_CreateObject();
	if (!cJSON_IsObject(args)) {
		call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: \"arguments\" must be an object");
		cJSON_Delete(empty);
		return;
	}
	char err[512];
	if (schema_validate(t->input_schema, args, "arguments", err, sizeof(err)) < 0) {
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
	if (t->kind == TOOL_PLUGIN) {
		run_plugin_tool(c, t, args);
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
	const char *extra[] = { tool_env, proto_env, caps_env ? caps_env : "MCP_CLIENT_CAPABILITIES={}", NULL };
	int rc = start_command(c, t->name, &t->cmd, &t->arg_env, args, extra, &tool_callbacks, err, sizeof(err));
	free(caps_env);
	cJSON_Delete(empty);
	if (rc < 0) {
		log_error("tool %s: %s", t->name, err);
		char msg[700];
		snprintf(msg, sizeof(msg), "Tool %s could not run: %s", name, err);
		call_result(c, tool_error_result(msg));
		return;
	}
	call_go_async(c);
}

/* ---- resources ---- */

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

static void
ignore_message(void *arg, const cJSON *msg)
{
	(void)arg;
	(void)msg;
}

static void tool_message(void *arg, const cJSON *msg);
static const struct tool_run_callbacks resource_callbacks = { tool_message, resource_done };

static int
read_file(const char *path, uint64_t max, char **out, size_t *outlen, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, errlen, "not a regular file");
		return -1;
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		snprintf(err, errlen, "file larger than %llu bytes", (unsigned long long)max);
		return -1;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (buf != NULL && got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (buf == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	buf[got] = '\0';
	*out = buf;
	*outlen = got;
	return 0;
}

static void
m_resources_read(struct call *c)
{
	const char *uri = param_string(c, "uri");
	if (uri == NULL) {
		call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: \"uri\" must be a string");
		return;
	}
	const struct resource_def *r = registry_resource(c->m->cfg, uri, &c->vars);
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
		if (read_file(r->file, r->cmd.max_output, &data, &len, err, sizeof(err)) < 0) {
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

/* ---- prompts ---- */

static const struct prompt_arg *
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

static void
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

/* ---- completion ---- */

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

static void
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

/* ---- initialize ---- */

static void
session_created(void *arg, struct session *s, int status)
{
	struct call *c = arg;
	struct mcp *m = c->m;
	if (c->req == NULL) {
		/* The client left before storage answered. */
		if (s != NULL)
			session_delete(s);
		call_free(c);
		return;
	}
	if (s == NULL) {
		http_request_on_close(c->req, NULL, NULL);
		respond_rpc_error(c->req, 503, c->msg.id, -32000, "Session storage is unavailable; try again later");
		c->req = NULL;
		call_free(c);
		return;
	}
	(void)status;
	http_request_on_close(c->req, NULL, NULL);
	const cJSON *info = cJSON_GetObjectItemCaseSensitive(c->params, "clientInfo");
	const cJSON *cname = cJSON_GetObjectItemCaseSensitive(info, "name");
	log_info("session %.8s… started by %s, protocol %s", s->id,
	    cJSON_IsString(cname) ? cname->valuestring : "an unnamed client", proto_names[s->proto]);
	cJSON *res = cJSON_CreateObject();
	cJSON_AddStringToObject(res, "protocolVersion", proto_names[s->proto]);
	cJSON_AddItemToObject(res, "capabilities", cJSON_Parse(m->cfg->capabilities_json));
	cJSON *si = cJSON_AddObjectToObject(res, "serverInfo");
	cJSON_AddStringToObject(si, "name", m->cfg->server.name);
	cJSON_AddStringToObject(si, "version", m->cfg->server.version);
	if (m->cfg->server.instructions != NULL)
		cJSON_AddStringToObject(res, "instructions", m->cfg->server.instructions);
	http_response_header(c->req, "Mcp-Session-Id", s->id);
	call_result(c, res);
}

static void
m_initialize(struct call *c)
{
	const char *requested = param_string(c, "protocolVersion");
	int proto = requested ? proto_parse(requested) : -1;
	if (proto < 0 || proto == PROTO_2026_07_28)
		proto = PROTO_2025_11_25;   /* our latest dated revision; the client decides */
	const cJSON *caps = cJSON_GetObjectItemCaseSensitive(c->params, "capabilities");
	const cJSON *info = cJSON_GetObjectItemCaseSensitive(c->params, "clientInfo");
	if (!cJSON_IsObject(c->params) || (caps != NULL && !cJSON_IsObject(caps))) {
		call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: initialize needs protocolVersion, capabilities and clientInfo");
		return;
	}
	/* Storage may answer later: hear if the client leaves meanwhile. */
	http_request_on_close(c->req, call_req_closed, c);
	const struct principal *who = c->req != NULL ? auth_principal(c->req) : NULL;
	session_create(c->m->sessions, (enum proto)proto, caps, info, who ? who->user : NULL,
	    session_created, c);
}

/* ---- 2026-07-28: discovery and subscriptions ---- */

static void
m_discover(struct call *c)
{
	const struct config *cfg = c->m->cfg;
	cJSON *res = cJSON_CreateObject();
	cJSON *v = cJSON_AddArrayToObject(res, "supportedVersions");
	cJSON_AddItemToArray(v, cJSON_CreateString(proto_names[PROTO_2026_07_28]));
	cJSON_AddItemToObject(res, "capabilities", cJSON_Parse(cfg->capabilities_json));
	if (cfg->server.instructions != NULL)
		cJSON_AddStringToObject(res, "instructions", cfg->server.instructions);
	cJSON *meta = cJSON_AddObjectToObject(res, "_meta");
	cJSON *si = cJSON_AddObjectToObject(meta, "io.modelcontextprotocol/serverInfo");
	cJSON_AddStringToObject(si, "name", cfg->server.name);
	cJSON_AddStringToObject(si, "version", cfg->server.version);
	cJSON_AddStringToObject(res, "resultType", "complete");
	cJSON_AddNumberToObject(res, "ttlMs", 0);
	cJSON_AddStringToObject(res, "cacheScope", "private");
	call_result(c, res);
}

/* A listen stream: acknowledged with the filter mcpd honours, then the
 * change notifications that match it, until the client closes it. */
static void
m_listen(struct call *c)
{
	const cJSON *want = cJSON_GetObjectItemCaseSensitive(c->params, "notifications");
	if (!cJSON_IsObject(want)) {
		call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: subscriptions/listen needs a notifications filter object");
		return;
	}
	cJSON *filter = cJSON_CreateObject();
	const cJSON *f;
	cJSON_ArrayForEach(f, want) {
		if (strcmp(f->string, "toolsListChanged") == 0 || strcmp(f->string, "promptsListChanged") == 0 ||
		    strcmp(f->string, "resourcesListChanged") == 0) {
			if (!cJSON_IsBool(f)) {
				cJSON_Delete(filter);
				call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: notifications.%s must be a boolean", f->string);
				return;
			}
			if (cJSON_IsTrue(f))
				cJSON_AddTrueToObject(filter, f->string);
		} else if (strcmp(f->string, "resourceSubscriptions") == 0) {
			if (!cJSON_IsArray(f)) {
				cJSON_Delete(filter);
				call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: notifications.resourceSubscriptions must be an array of URIs");
				return;
			}
			cJSON *uris = cJSON_CreateArray();
			const cJSON *u;
			cJSON_ArrayForEach(u, f) {
				cJSON *vars = NULL;
				if (cJSON_IsString(u) && registry_resource(c->m->cfg, u->valuestring, &vars) != NULL)
					cJSON_AddItemToArray(uris, cJSON_CreateString(u->valuestring));
				cJSON_Delete(vars);
			}
			cJSON_AddItemToObject(filter, "resourceSubscriptions", uris);
		} else {
			cJSON_Delete(filter);
			call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: unknown notification type \"%s\" in the filter", f->string);
			return;
		}
	}
	if (call_direct_stream(c) < 0) {
		cJSON_Delete(filter);
		call_error(c, JSONRPC_INVALID_PARAMS, "subscriptions/listen needs Accept: text/event-stream");
		return;
	}
	c->listen = 1;
	c->filter = filter;
	cJSON *p = cJSON_CreateObject();
	cJSON *meta = cJSON_AddObjectToObject(p, "_meta");
	cJSON_AddItemToObject(meta, "io.modelcontextprotocol/subscriptionId", cJSON_Duplicate(c->msg.id, 1));
	cJSON_AddItemToObject(p, "notifications", cJSON_Duplicate(filter, 1));
	char *ack = jsonrpc_notification("notifications/subscriptions/acknowledged", p);
	direct_write(c, ack);
	free(ack);
}

static int
listener_wants(const struct call *c, const char *what, const char *uri)
{
	if (strcmp(what, "updated") == 0) {
		const cJSON *u;
		cJSON_ArrayForEach(u, cJSON_GetObjectItemCaseSensitive(c->filter, "resourceSubscriptions"))
			if (cJSON_IsString(u) && uri != NULL && strcmp(u->valuestring, uri) == 0)
				return 1;
		return 0;
	}
	char key[32];
	snprintf(key, sizeof(key), "%sListChanged", what);
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c->filter, key));
}

static char *
change_notification(const char *what, const char *uri, const cJSON *subscription)
{
	char method[64];
	if (strcmp(what, "updated") == 0)
		snprintf(method, sizeof(method), "notifications/resources/updated");
	else
		snprintf(method, sizeof(method), "notifications/%s/list_changed", what);
	cJSON *p = cJSON_CreateObject();
	if (subscription != NULL) {
		cJSON *meta = cJSON_AddObjectToObject(p, "_meta");
		cJSON_AddItemToObject(meta, "io.modelcontextprotocol/subscriptionId", cJSON_Duplicate(subscription, 1));
	}
	if (uri != NULL)
		cJSON_AddStringToObject(p, "uri", uri);
	return jsonrpc_notification(method, p);
}

struct change {
	const char *what, *uri;
};

static void
session_change(struct session *s, void *arg)
{
	struct change *ch = arg;
	if (strcmp(ch->what, "updated") == 0 && !session_subscribed(s, ch->uri))
		return;
	/* Every worker hears about changes; each tells the GET streams it holds. */
	struct stream *holder = session_get_holder(s);
	if (holder == NULL)
		return;
	char *msg = change_notification(ch->what, ch->uri, NULL);
	if (msg != NULL)
		stream_send(holder, msg);
	free(msg);
}

/* Something changed: tools, prompts or resources lists, or one resource
 * ("updated"). Listen streams here that asked for it hear, and the GET
 * streams held here (resources/updated only if subscribed). */
static void
notify_change_here(struct mcp *m, const char *what, const char *uri)
{
	struct call *c;
	LIST_FOREACH(c, &m->calls, link) {
		if (!c->listen || !listener_wants(c, what, uri))
			continue;
		char *msg = change_notification(what, uri, c->msg.id);
		direct_write(c, msg);
		free(msg);
	}
	struct change ch = { what, uri };
	sessions_foreach(m->sessions, session_change, &ch);
}

static void
change_from_anywhere(const char *what, const char *uri, void *arg)
{
	notify_change_here(arg, what, uri);
}

/* A change a command announced: every worker (and instance) tells the
 * streams it holds, this one included, through the transport. */
static void
broadcast(struct mcp *m, const char *what, const char *uri)
{
	sessions_publish_change(m->sessions, what, uri);
}

/* ---- dispatch ---- */

struct method {
	const char *name;
	void (*fn)(struct call *);
	int needs_session;
};

static void m_tools_list(struct call *c) { list_page(c, c->m->cfg->tool_pages); }
static void m_resources_list(struct call *c) { list_page(c, c->m->cfg->resource_pages); }
static void m_templates_list(struct call *c) { list_page(c, c->m->cfg->template_pages); }
static void m_prompts_list(struct call *c) { list_page(c, c->m->cfg->prompt_pages); }
static void m_subscribe(struct call *c) { m_resources_subscribe(c, 1); }
static void m_unsubscribe(struct call *c) { m_resources_subscribe(c, 0); }

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
	{ NULL, NULL, 0 },
};

static void
dispatch(struct call *c)
{
	http_request_log_extra(c->req, c->method);
	for (const struct method *mt = c->stateless ? methods_2026 : methods; mt->name != NULL; mt++) {
		if (strcmp(mt->name, c->method) == 0) {
			if (c->params != NULL && !cJSON_IsObject(c->params)) {
				call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params");
				return;
			}
			mt->fn(c);
			return;
		}
	}
	call_error(c, JSONRPC_METHOD_NOT_FOUND, "Method not found: %s", c->method);
}

/* ---- notifications from the client ---- */

/* Cancel the call of this session with that request id, if it runs here. */
static int
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

static void
cancel_from_anywhere(struct session *s, const cJSON *id, void *arg)
{
	cancel_request(arg, s, id);
}

static void
notification(struct mcp *m, struct session *s, const struct jsonrpc_msg *msg)
{
	if (strcmp(msg->method, "notifications/cancelled") == 0) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg->params, "requestId");
		/* The call may run on another worker: tell them all. */
		if (id != NULL && !cancel_request(m, s, id))
			session_publish_cancel(s, id);
	}
	/* initialized, roots/list_changed and the rest need no action:
	 * commands ask for roots when they need them. */
}

/* ---- the endpoint ---- */

/* A request that belongs to a session waits for the session's record
 * (cached, or read from storage), then goes on. */
enum waiting_kind { W_POST, W_GET, W_DELETE };

struct waiting {
	struct mcp *m;
	struct http_request *r;
	enum waiting_kind kind;
	struct jsonrpc_msg msg;
};

static void post_in_session(struct mcp *m, struct http_request *r, struct session *s, struct jsonrpc_msg *msg);
static void get_in_session(struct mcp *m, struct http_request *r, struct session *s);
static void delete_in_session(struct mcp *m, struct http_request *r, struct session *s);

static void
waiting_closed(struct http_request *r, void *arg)
{
	(void)r;
	struct waiting *w = arg;
	w->r = NULL;
}

static void
session_found(void *arg, struct session *s, int status)
{
	struct waiting *w = arg;
	struct http_request *r = w->r;
	if (r == NULL) {
		jsonrpc_free(&w->msg);
		free(w);
		return;
	}
	http_request_on_close(r, NULL, NULL);
	/* A session belongs to whoever created it: to anyone else it does not
	 * exist (the same answer as for an unknown id, so nothing leaks). */
	const struct principal *who = auth_principal(r);
	if (s != NULL && w->m->auth != NULL &&
	    (who == NULL || s->owner == NULL || strcmp(s->owner, who->user) != 0)) {
		log_notice("session %.8s… used by %s, not by its owner: answered 404",
		    s->id, who ? who->user : "an anonymous client");
		s = NULL;
		status = MCPD_NOT_FOUND;
	}
	if (s == NULL) {
		if (status == MCPD_ERROR)
			respond_rpc_error(r, 503, w->msg.id, -32000, "Session storage is unavailable; try again later");
		else
			respond_rpc_error(r, 404, w->msg.id, -32001, "Session not found");
		jsonrpc_free(&w->msg);
		free(w);
		return;
	}
	session_touch(s);
	switch (w->kind) {
	case W_POST:
		post_in_session(w->m, r, s, &w->msg);
		break;
	case W_GET:
		get_in_session(w->m, r, s);
		break;
	case W_DELETE:
		delete_in_session(w->m, r, s);
		break;
	}
	jsonrpc_free(&w->msg);
	free(w);
}

/* Takes msg (when given). */
static void
with_session(struct mcp *m, struct http_request *r, enum waiting_kind kind, struct jsonrpc_msg *msg)
{
	const cJSON *id = msg ? msg->id : NULL;
	const char *sid = http_request_header(r, "Mcp-Session-Id");
	const char *pv = http_request_header(r, "MCP-Protocol-Version");
	if (sid == NULL || (pv != NULL && proto_parse(pv) < 0)) {
		char text[160];
		if (sid == NULL)
			snprintf(text, sizeof(text), "Bad Request: Mcp-Session-Id header is required");
		else
			snprintf(text, sizeof(text), "Bad Request: unsupported MCP-Protocol-Version \"%.40s\"", pv);
		respond_rpc_error(r, 400, id, -32000, text);
		if (msg)
			jsonrpc_free(msg);
		return;
	}
	struct waiting *w = calloc(1, sizeof(*w));
	if (w == NULL) {
		if (msg)
			jsonrpc_free(msg);
		http_respond_text(r, 500, "out of memory");
		return;
	}
	w->m = m;
	w->r = r;
	w->kind = kind;
	if (msg != NULL) {
		w->msg = *msg;
		msg->root = NULL;
	}
	http_request_on_close(r, waiting_closed, w);
	session_lookup(m->sessions, sid, session_found, w);
}

static const cJSON *
request_meta(const struct jsonrpc_msg *msg)
{
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(msg->params, "_meta");
	return cJSON_IsObject(meta) ? meta : NULL;
}

#define META_VERSION "io.modelcontextprotocol/protocolVersion"
#define META_CAPS "io.modelcontextprotocol/clientCapabilities"
#define META_LOGLEVEL "io.modelcontextprotocol/logLevel"

/* A request of the stateless revision: no session, and a protocol
 * version in _meta or a header that is not one of the dated revisions. */
static int
is_stateless(struct http_request *r, const struct jsonrpc_msg *msg)
{
	if (http_request_header(r, "Mcp-Session-Id") != NULL)
		return 0;
	if (cJSON_GetObjectItemCaseSensitive(request_meta(msg), META_VERSION) != NULL)
		return 1;
	const char *hv = http_request_header(r, "MCP-Protocol-Version");
	if (hv == NULL)
		return 0;
	int p = proto_parse(hv);
	return !(p >= 0 && p < PROTO_2026_07_28) && strcmp(hv, "2024-11-05") != 0;
}

/* Mcp-Name mirrors params.name (tools/call, prompts/get) or params.uri
 * (resources/read). */
static const char *
expected_name(const struct jsonrpc_msg *msg)
{
	const char *key = strcmp(msg->method, "resources/read") == 0 ? "uri" :
	    (strcmp(msg->method, "tools/call") == 0 || strcmp(msg->method, "prompts/get") == 0) ? "name" : NULL;
	if (key == NULL)
		return NULL;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg->params, key);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static void
handle_stateless(struct mcp *m, struct http_request *r, struct jsonrpc_msg *msg)
{
	if (msg->kind != RPC_REQUEST) {
		/* The revision has no client notifications or responses to
		 * carry; accept and drop them. */
		http_request_log_extra(r, msg->kind == RPC_RESPONSE ? "response" : msg->method);
		jsonrpc_free(msg);
		cors_headers(r);
		http_respond(r, 202, NULL, NULL, 0);
		return;
	}
	http_request_log_extra(r, msg->method);
	const cJSON *meta = request_meta(msg);
	const cJSON *mv = cJSON_GetObjectItemCaseSensitive(meta, META_VERSION);
	const cJSON *caps = cJSON_GetObjectItemCaseSensitive(meta, META_CAPS);
	const char *hv = http_request_header(r, "MCP-Protocol-Version");
	const char *why = NULL;
	int code = 0;
	if (!cJSON_IsString(mv) || !cJSON_IsObject(caps)) {
		code = JSONRPC_INVALID_PARAMS;
		why = "Invalid params: _meta needs io.modelcontextprotocol/protocolVersion and io.modelcontextprotocol/clientCapabilities";
	} else if (hv == NULL || strcmp(hv, mv->valuestring) != 0) {
		code = -32020;
		why = "HeaderMismatch: the MCP-Protocol-Version header must equal _meta io.modelcontextprotocol/protocolVersion";
	} else if (proto_parse(mv->valuestring) != PROTO_2026_07_28) {
		cJSON *data = cJSON_CreateObject();
		cJSON *sup = cJSON_AddArrayToObject(data, "supported");
		cJSON_AddItemToArray(sup, cJSON_CreateString(proto_names[PROTO_2026_07_28]));
		cJSON_AddStringToObject(data, "requested", mv->valuestring);
		respond_json(r, 400, jsonrpc_error(msg->id, -32022,
		    "UnsupportedProtocolVersionError: this server speaks 2026-07-28 without a session, "
		    "and 2025-03-26, 2025-06-18, 2025-11-25 with initialize", data));
		jsonrpc_free(msg);
		return;
	} else {
		const char *hm = http_request_header(r, "Mcp-Method");
		const char *want = expected_name(msg);
		const char *hn = http_request_header(r, "Mcp-Name");
		if (hm == NULL || strcmp(hm, msg->method) != 0) {
			code = -32020;
			why = "HeaderMismatch: the Mcp-Method header must equal the request's method";
		} else if (want != NULL && (hn == NULL || strcmp(hn, want) != 0)) {
			code = -32020;
			why = "HeaderMismatch: the Mcp-Name header must equal the request's params.name (or params.uri)";
		}
	}
	if (why != NULL) {
		respond_rpc_error(r, 400, msg->id, code, why);
		jsonrpc_free(msg);
		return;
	}
	static const char *const removed[] = { "initialize", "ping", "logging/setLevel",
	    "resources/subscribe", "resources/unsubscribe", NULL };
	for (size_t i = 0; removed[i] != NULL; i++) {
		if (strcmp(msg->method, removed[i]) == 0) {
			char text[160];
			snprintf(text, sizeof(text), "Method not found: %s is not part of 2026-07-28 (it belongs to the session-based revisions)", msg->method);
			respond_rpc_error(r, 404, msg->id, JSONRPC_METHOD_NOT_FOUND, text);
			jsonrpc_free(msg);
			return;
		}
	}
	struct call *c = call_new(m, r, NULL, msg);
	if (c == NULL) {
		jsonrpc_free(msg);
		http_respond_text(r, 500, "out of memory");
		return;
	}
	c->stateless = 1;
	c->proto = PROTO_2026_07_28;
	meta = request_meta(&c->msg);
	c->client_caps = cJSON_GetObjectItemCaseSensitive(meta, META_CAPS);
	const cJSON *ll = cJSON_GetObjectItemCaseSensitive(meta, META_LOGLEVEL);
	if (cJSON_IsString(ll) && mcp_log_level_parse(ll->valuestring) >= 0)
		c->log_level = mcp_log_level_parse(ll->valuestring);
	/* Closing the response cancels the request, from the start. */
	http_request_on_close(r, call_req_closed, c);
	dispatch(c);
}

static void
handle_post(struct mcp *m, struct http_request *r)
{
	const char *ctype = http_request_header(r, "Content-Type");
	if (ctype == NULL || strncasecmp(ctype, "application/json", 16) != 0) {
		respond_rpc_error(r, 415, NULL, JSONRPC_INVALID_REQUEST,
		    "Unsupported Media Type: Content-Type must be application/json");
		return;
	}
	const char *accept = http_request_header(r, "Accept");
	if (accept != NULL && !accepts(accept, "application/json") && !accepts(accept, "text/event-stream") &&
	    strstr(accept, "application/*") == NULL) {
		respond_rpc_error(r, 406, NULL, JSONRPC_INVALID_REQUEST,
		    "Not Acceptable: Accept must include application/json or text/event-stream");
		return;
	}
	size_t len;
	const char *body = http_request_body(r, &len);
	struct jsonrpc_msg msg;
	int code;
	char why[256];
	cJSON *eid = NULL;
	if (jsonrpc_parse(body, len, (int)m->cfg->limits.json_depth, &msg, &code, why, sizeof(why), &eid) < 0) {
		http_request_log_extra(r, why);
		respond_rpc_error(r, 400, eid, code, why);
		cJSON_Delete(eid);
		return;
	}
	cJSON_Delete(eid);

	if (is_stateless(r, &msg)) {
		handle_stateless(m, r, &msg);
		return;
	}
	if (msg.kind == RPC_REQUEST && strcmp(msg.method, "initialize") == 0) {
		if (http_request_header(r, "Mcp-Session-Id") != NULL) {
			respond_rpc_error(r, 400, msg.id, JSONRPC_INVALID_REQUEST,
			    "Invalid Request: initialize starts a session; do not send Mcp-Session-Id with it");
			jsonrpc_free(&msg);
			return;
		}
		if (m->draining) {
			respond_rpc_error(r, 503, msg.id, -32000, "Server is restarting; try again");
			jsonrpc_free(&msg);
			return;
		}
		http_request_log_extra(r, "initialize");
		struct call *c = call_new(m, r, NULL, &msg);
		if (c == NULL) {
			jsonrpc_free(&msg);
			http_respond_text(r, 500, "out of memory");
			return;
		}
		m_initialize(c);
		return;
	}
	with_session(m, r, W_POST, &msg);
}

static void
post_in_session(struct mcp *m, struct http_request *r, struct session *s, struct jsonrpc_msg *msg)
{
	switch (msg->kind) {
	case RPC_RESPONSE:
		http_request_log_extra(r, "response");
		session_response(s, msg->id, msg->result, msg->error);
		cors_headers(r);
		http_respond(r, 202, NULL, NULL, 0);
		return;
	case RPC_NOTIFICATION:
		http_request_log_extra(r, msg->method);
		notification(m, s, msg);
		cors_headers(r);
		http_respond(r, 202, NULL, NULL, 0);
		return;
	case RPC_REQUEST: {
		struct call *c = call_new(m, r, s, msg);
		if (c == NULL) {
			http_respond_text(r, 500, "out of memory");
			return;
		}
		dispatch(c);
		return;
	}
	}
}

static void
handle_get(struct mcp *m, struct http_request *r)
{
	if (!accepts(http_request_header(r, "Accept"), "text/event-stream")) {
		respond_rpc_error(r, 406, NULL, JSONRPC_INVALID_REQUEST,
		    "Not Acceptable: a GET stream needs Accept: text/event-stream");
		return;
	}
	http_request_log_extra(r, "stream");
	if (m->draining) {
		respond_rpc_error(r, 503, NULL, -32000, "Server is restarting; reconnect");
		return;
	}
	with_session(m, r, W_GET, NULL);
}

static void
get_in_session(struct mcp *m, struct http_request *r, struct session *s)
{
	(void)m;
	const char *last = http_request_header(r, "Last-Event-ID");
	cors_headers(r);
	if (stream_get(s, r, last, s->proto >= PROTO_2025_11_25) < 0) {
		if (last != NULL)
			respond_rpc_error(r, 400, NULL, JSONRPC_INVALID_REQUEST, "Bad Request: malformed Last-Event-ID");
		else
			respond_rpc_error(r, 409, NULL, JSONRPC_INVALID_REQUEST,
			    "Conflict: this session already has a GET stream open");
	}
}

static void
handle_delete(struct mcp *m, struct http_request *r)
{
	http_request_log_extra(r, "end session");
	with_session(m, r, W_DELETE, NULL);
}

struct ending {
	struct http_request *r;     /* NULL once the client left */
};

static void
ending_closed(struct http_request *r, void *arg)
{
	(void)r;
	struct ending *e = arg;
	e->r = NULL;
}

/* 200 only once storage has dropped the record, so that the client's
 * next request, wherever it lands, finds the session gone. */
static void
session_ended(void *arg, int ok)
{
	struct ending *e = arg;
	struct http_request *r = e->r;
	free(e);
	if (r == NULL)
		return;
	http_request_on_close(r, NULL, NULL);
	cors_headers(r);
	if (ok)
		http_respond(r, 200, NULL, NULL, 0);
	else
		respond_rpc_error(r, 503, NULL, -32000, "Service Unavailable: the session could not be deleted; try again");
}

static void
delete_in_session(struct mcp *m, struct http_request *r, struct session *s)
{
	(void)m;
	log_info("session %.8s… ended by the client", s->id);
	struct ending *e = calloc(1, sizeof(*e));
	if (e == NULL) {
		session_delete(s);
		cors_headers(r);
		http_respond(r, 200, NULL, NULL, 0);
		return;
	}
	e->r = r;
	http_request_on_close(r, ending_closed, e);
	session_delete_then(s, session_ended, e);
}

static void
endpoint_authorized(struct http_request *r, void *arg)
{
	struct mcp *m = arg;
	const char *method = http_request_method(r);
	if (strcmp(method, "POST") == 0)
		handle_post(m, r);
	else if (strcmp(method, "GET") == 0)
		handle_get(m, r);
	else
		handle_delete(m, r);
}

static void
mcp_endpoint(struct http_request *r, void *arg)
{
	struct mcp *m = arg;
	const char *method = http_request_method(r);
	if (!mcp_host_allowed(m->cfg, http_request_header(r, "Host"))) {
		char msg[160];
		snprintf(msg, sizeof(msg), "Forbidden: Host \"%.64s\" is not allowed (see allowed_hosts)",
		    http_request_header(r, "Host") ? http_request_header(r, "Host") : "");
		respond_rpc_error(r, 403, NULL, -32000, msg);
		return;
	}
	const char *origin = http_request_header(r, "Origin");
	if (origin != NULL && !origin_allowed(m->cfg, origin)) {
		char msg[160];
		snprintf(msg, sizeof(msg), "Forbidden: Origin \"%.64s\" is not allowed (see allowed_origins)", origin);
		respond_rpc_error(r, 403, NULL, -32000, msg);
		return;
	}
	if (strcmp(method, "POST") == 0 || strcmp(method, "GET") == 0 || strcmp(method, "DELETE") == 0) {
		auth_check(m->auth, r, endpoint_authorized, m);	} else if (strcmp(method, "OPTIONS") == 0) {
		cors_headers(r);
		http_response_header(r, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
		const char *want = http_request_header(r, "Access-Control-Request-Headers");
		http_response_header(r, "Access-Control-Allow-Headers", want ? want :
		    "Content-Type, Accept, Authorization, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID");
		http_response_header(r, "Access-Control-Max-Age", "600");
		http_respond(r, 204, NULL, NULL, 0);
	} else {
		http_response_header(r, "Allow", "GET, POST, DELETE, OPTIONS");
		respond_rpc_error(r, 405, NULL, JSONRPC_INVALID_REQUEST, "Method Not Allowed");
	}
}

static void
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

/* ---- file resources that change ---- */

static void
inotify_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)ev;
	struct mcp *m = arg;
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n; ) {
			struct inotify_event *e = (struct inotify_event *)p;
			p += sizeof(*e) + e->len;
			const char *dir = NULL;
			for (size_t i = 0; i < m->nwatches; i++)
				if (m->watches[i].wd == e->wd)
					dir = m->watches[i].dir;
			if (dir == NULL || e->len == 0)
				continue;
			size_t dl = strlen(dir);
			for (size_t i = 0; i < m->cfg->nresources; i++) {
				const struct resource_def *r = &m->cfg->resources[i];
				if (r->kind != RES_FILE || strncmp(r->file, dir, dl) != 0 || r->file[dl] != '/' ||
				    strcmp(r->file + dl + 1, e->name) != 0)
					continue;
				log_debug("resource %s changed", r->uri);
				notify_change_here(m, "updated", r->uri);
			}
		}
	}
}

/* Watch the directories of file resources: editors replace files by
 * renaming, which a watch on the file itself would miss. */
static void
watch_files(struct mcp *m)
{
	m->inotify_fd = -1;
	for (size_t i = 0; i < m->cfg->nresources; i++) {
		const struct resource_def *r = &m->cfg->resources[i];
		if (r->kind != RES_FILE)
			continue;
		if (m->inotify_fd < 0) {
			m->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
			if (m->inotify_fd < 0) {
				log_sys(LOG_WARN, "inotify: resources/updated will not be sent");
				return;
			}
		}
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s", r->file);
		char *slash = strrchr(dir, '/');
		if (slash == NULL)
			continue;
		*slash = '\0';
		int wd = inotify_add_watch(m->inotify_fd, dir[0] ? dir : "/",
		    IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB);
		if (wd < 0) {
			log_sys(LOG_WARN, "inotify: cannot watch %s", dir);
			continue;
		}
		int known = 0;
		for (size_t j = 0; j < m->nwatches; j++)
			known |= m->watches[j].wd == wd;
		if (known)
			continue;
		struct file_watch *w = realloc(m->watches, (m->nwatches + 1) * sizeof(*w));
		if (w == NULL)
			continue;
		m->watches = w;
		w[m->nwatches].wd = wd;
		w[m->nwatches].dir = strdup(dir);
		m->nwatches++;
	}
	if (m->inotify_fd >= 0) {
		m->inotify_ev = event_new(m->base, m->inotify_fd, EV_READ | EV_PERSIST, inotify_cb, m);
		event_add(m->inotify_ev, NULL);
	}
}

/* init_worker of the plugins this configuration uses: its storage, its
 * transport and those of its tools (not those an older one loaded). */
static int
init_plugins(const struct config *cfg)
{
	size_t n = 0;
	struct loaded_plugin **use = calloc(3 + cfg->ntools, sizeof(*use));
	if (use == NULL) {
		log_error("out of memory");
		return -1;
	}
	use[n++] = cfg->storage.lp;
	use[n++] = cfg->transport.lp;
	if (cfg->auth.lp != NULL)
		use[n++] = cfg->auth.lp;
	for (size_t i = 0; i < cfg->ntools; i++)
		if (cfg->tools[i].plugin != NULL)
			use[n++] = cfg->tools[i].plugin;
	char err[256];
	int rc = plugins_init_worker(host_table(), use, n, err, sizeof(err));
	if (rc < 0)
		log_error("%s", err);
	free(use);
	return rc;
}

struct mcp *
mcp_new(struct event_base *base, struct config *cfg, struct http_server *http,
    const struct backends *b)
{
	struct mcp *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	m->inotify_fd = -1;
	m->base = base;
	m->cfg = cfg;
	cors_config = cfg;
	LIST_INIT(&m->calls);
	m->sessions = sessions_new(base, b, cfg->limits.max_sessions, cfg->mcp.history,
	    cfg->limits.session_idle_timeout_ms, cfg->mcp.keepalive_ms, cfg->mcp.retry_ms,
	    (size_t)cfg->limits.stream_buffer);
	char helper_dir[4096] = "";
	if (cfg->helper_path != NULL) {
		snprintf(helper_dir, sizeof(helper_dir), "%s", cfg->helper_path);
		char *slash = strrchr(helper_dir, '/');
		if (slash != NULL)
			*slash = '\0';
	}
	m->te = tool_exec_new(base, (unsigned)cfg->limits.tool_processes,
	    helper_dir[0] ? helper_dir : NULL);
	if (m->sessions == NULL || m->te == NULL) {
		mcp_free(m);
		return NULL;
	}
	sessions_on_delete(m->sessions, session_gone, m);
	sessions_on_cancel(m->sessions, cancel_from_anywhere, m);
	sessions_on_change(m->sessions, change_from_anywhere, m);
	watch_files(m);
	host_set_tool_functions(host_tool_result, host_tool_text, host_tool_progress,
	    host_tool_on_cancel, host_tool_ask);
	if (init_plugins(cfg) < 0) {
		mcp_free(m);
		return NULL;
	}
	if (http_server_route(http, cfg->endpoint, mcp_endpoint, m) < 0) {
		mcp_free(m);
		return NULL;
	}
	if (cfg->auth.name != NULL) {
		m->auth = auth_new(base, cfg, cors_headers);
		int failed = 0;
		if (m->auth == NULL || auth_routes(m->auth, http) < 0 ||
		    ((m->admin = admin_new(http, m->auth, m->sessions, cfg, &failed)) == NULL && failed) ||
		    ((m->oauth = oauth_new(base, cfg, http, b, m->auth, &failed)) == NULL && failed)) {
			mcp_free(m);
			return NULL;
		}
	}
	return m;
}

struct drain_note {
	int tools, resources, prompts;
};

static void
drain_session(struct session *s, void *arg)
{
	struct drain_note *d = arg;
	struct stream *st = session_get_holder(s);
	if (st == NULL)
		return;
	if (d->tools)
		stream_send(st, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}");
	if (d->resources)
		stream_send(st, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/resources/list_changed\"}");
	if (d->prompts)
		stream_send(st, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/prompts/list_changed\"}");
	/* Ending the stream makes the client reconnect, to a worker that stays;
	 * the session lives on in storage. */
	stream_finish(st, NULL);
}

void
mcp_drain(struct mcp *m, int tools_changed, int resources_changed, int prompts_changed)
{
	m->draining = 1;
	struct drain_note d = { tools_changed, resources_changed, prompts_changed };
	sessions_foreach(m->sessions, drain_session, &d);
	/* Listen streams hear the changes, then the result that ends a
	 * subscription gracefully; the client listens again elsewhere. */
	struct call *c, *next;
	for (c = LIST_FIRST(&m->calls); c != NULL; c = next) {
		next = LIST_NEXT(c, link);
		if (!c->listen)
			continue;
		static const char *const kinds[] = { "tools", "resources", "prompts" };
		int changed[] = { tools_changed, resources_changed, prompts_changed };
		for (int i = 0; i < 3; i++) {
			if (changed[i] && listener_wants(c, kinds[i], NULL)) {
				char *msg = change_notification(kinds[i], NULL, c->msg.id);
				direct_write(c, msg);
				free(msg);
			}
		}
		cJSON *res = cJSON_CreateObject();
		cJSON *meta = cJSON_AddObjectToObject(res, "_meta");
		cJSON_AddItemToObject(meta, "io.modelcontextprotocol/subscriptionId", cJSON_Duplicate(c->msg.id, 1));
		call_result(c, res);
	}
}

void
mcp_free(struct mcp *m)
{
	if (m == NULL)
		return;
	while (!LIST_EMPTY(&m->calls)) {
		struct call *c = LIST_FIRST(&m->calls);
		c->req = NULL;
		call_free(c);
	}
	sessions_free(m->sessions);
	admin_free(m->admin);
	oauth_free(m->oauth);
	auth_free(m->auth);
	tool_exec_free(m->te);
	plugins_fini_worker();
	if (m->inotify_ev != NULL)
		event_free(m->inotify_ev);
	if (m->inotify_fd >= 0)
		close(m->inotify_fd);
	for (size_t i = 0; i < m->nwatches; i++)
		free(m->watches[i].dir);
	free(m->watches);
	free(m);
}
