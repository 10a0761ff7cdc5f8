/* The MCP endpoint (mcp.h): where a request to the endpoint enters once
 * http.c has read it. Host and Origin are checked (guard.c), then the
 * token (auth.c), then by verb: POST carries a JSON-RPC message, either
 * stateless (2026-07-28: everything in the request) or in a session
 * (the 2025 revisions: its record is found first); GET opens or resumes
 * the session's stream; DELETE ends the session; OPTIONS is the CORS
 * preflight. A request becomes a call (call.c) that dispatch hands to its
 * method (t_*.c). Also mcp_new, mcp_drain and mcp_free. */
#include "mcp_internal.h"
#include "metrics.h"
#include "arena.h"
#include "admin.h"
#include "auth.h"
#include "config.h"
#include "guard.h"
#include "host.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "mcp.h"
#include "oauth.h"
#include "plugin.h"
#include "ratelimit.h"
#include "registry.h"
#include "tool_exec.h"
#include "util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* The origin of this worker's requests is checked against this config. */
static const struct config *cors_config;

void
cors_headers(struct http_request *r)
{
	guard_cors(cors_config, r);
}

void
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

void
respond_rpc_error(struct http_request *r, int status, const cJSON *id, int code,
    const char *message)
{
	respond_json(r, status, jsonrpc_error(id, code, message, NULL));
}

/* Whether s contains word (not empty), as strstr(s, word) != NULL: for
 * a header's few dozen bytes strchr to each candidate and a compare cost
 * less than strstr's setup. */
static int
contains(const char *s, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = s; (p = strchr(p, word[0])) != NULL; p++)
		if (strncmp(p, word, n) == 0)
			return 1;
	return 0;
}

int
accepts(const char *accept, const char *type)
{
	if (accept == NULL)
		return 1;
	return contains(accept, type) || contains(accept, "*/*");
}

/* A notification the client posted (or wrote on stdio) in its session. */
void
client_notification(struct mcp *m, struct session *s, const struct jsonrpc_msg *msg)
{
	metrics_mcp(msg->method, 0, 0);
	if (strcmp(msg->method, "notifications/cancelled") == 0) {
		const cJSON *id = json_get(msg->params, "requestId");
		/* The call may run on another worker: tell them all. */
		if (id != NULL && !cancel_request(m, s, id))
			session_publish_cancel(s, id);
	}
	/* initialized, roots/list_changed and the rest need no action:
	 * commands ask for roots when they need them. */
}

/* A request that belongs to a session waits for the session's record
 * (cached, or read from storage), then goes on. */
enum waiting_kind { W_POST, W_GET, W_DELETE };

struct waiting {
	struct mcp *m;
	struct http_request *r;
	enum waiting_kind kind;
	struct jsonrpc_msg msg;
	LIST_ENTRY(waiting) link;
};

static void
waiting_free(struct waiting *w)
{
	LIST_REMOVE(w, link);
	jsonrpc_free(&w->msg);
	free(w);
}

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
		waiting_free(w);
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
		waiting_free(w);
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
	waiting_free(w);
}

/* Takes msg (when given). */
static void
with_session(struct mcp *m, struct http_request *r, enum waiting_kind kind, struct jsonrpc_msg *msg)
{
	const cJSON *id = msg ? msg->id : NULL;
	const char *sid = http_request_field(r, HDR_MCP_SESSION_ID);
	const char *pv = http_request_field(r, HDR_MCP_PROTOCOL_VERSION);
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
	/* malloc: glibc's calloc passes its per-thread cache by, malloc not. */
	struct waiting *w = malloc(sizeof(*w));
	if (w == NULL) {
		if (msg)
			jsonrpc_free(msg);
		http_respond_text(r, 500, "out of memory");
		return;
	}
	*w = (struct waiting){ .m = m, .r = r, .kind = kind };
	if (msg != NULL) {
		w->msg = *msg;
		msg->root = NULL;
	}
	LIST_INSERT_HEAD(&m->waiting, w, link);
	http_request_on_close(r, waiting_closed, w);
	session_lookup(m->sessions, sid, session_found, w);
}

const cJSON *
request_meta(const struct jsonrpc_msg *msg)
{
	return msg->meta;       /* found by jsonrpc_parse */
}

char *
stateless_unsupported(const cJSON *id, const char *requested)
{
	cJSON *data = cJSON_CreateObject();
	cJSON *sup = cJSON_AddArrayToObject(data, "supported");
	cJSON_AddItemToArray(sup, cJSON_CreateString(proto_names[PROTO_2026_07_28]));
	cJSON_AddStringToObject(data, "requested", requested);
	return jsonrpc_error(id, -32022,
	    "UnsupportedProtocolVersionError: this server speaks 2026-07-28 without a session, "
	    "and 2025-03-26, 2025-06-18, 2025-11-25 with initialize", data);
}

int
stateless_removed(const struct jsonrpc_msg *msg, char *text, size_t len)
{
	static const char *const removed[] = { "initialize", "ping", "logging/setLevel",
	    "resources/subscribe", "resources/unsubscribe", NULL };
	for (size_t i = 0; removed[i] != NULL; i++) {
		if (msg->method[0] == removed[i][0] && strcmp(msg->method, removed[i]) == 0) {
			snprintf(text, len, "Method not found: %s is not part of 2026-07-28 (it belongs to the session-based revisions)", msg->method);
			return 1;
		}
	}
	return 0;
}

void
stateless_meta_read(const cJSON *meta, struct stateless_meta *sm)
{
	static const char prefix[] = "io.modelcontextprotocol/";
	const size_t plen = sizeof(prefix) - 1;
	*sm = (struct stateless_meta){ 0 };
	for (const cJSON *v = meta != NULL ? meta->child : NULL; v != NULL; v = v->next) {
		const char *k = v->string;
		if (k == NULL || k[0] != 'i' || strncmp(k, prefix, plen) != 0)
			continue;
		k += plen;      /* (the parser refused a name twice) */
		if (strcmp(k, META_VERSION + plen) == 0)
			sm->version = v;
		else if (strcmp(k, META_CAPS + plen) == 0)
			sm->caps = v;
		else if (strcmp(k, META_LOGLEVEL + plen) == 0)
			sm->log_level = v;
	}
}

void
stateless_call_init(struct call *c, const struct stateless_meta *sm)
{
	c->stateless = 1;
	c->proto = PROTO_2026_07_28;
	c->client_caps = sm->caps;
	const cJSON *ll = sm->log_level;
	int level;
	if (cJSON_IsString(ll) && (level = mcp_log_level_parse(ll->valuestring)) >= 0)
		c->log_level = level;
}

/* A request of the stateless revision: no session, and a protocol
 * version in _meta or a header that is not one of the dated revisions. */
static int
is_stateless(struct http_request *r, const struct stateless_meta *sm)
{
	if (http_request_field(r, HDR_MCP_SESSION_ID) != NULL)
		return 0;
	if (sm->version != NULL)
		return 1;
	const char *hv = http_request_field(r, HDR_MCP_PROTOCOL_VERSION);
	if (hv == NULL)
		return 0;
	int p = proto_parse(hv);
	return !(p >= 0 && p < PROTO_2026_07_28) && strcmp(hv, "2024-11-05") != 0;
}

/* Mcp-Name mirrors params.name (tools/call, prompts/get), params.uri
 * (resources/read) or params.taskId (tasks/get, update, cancel). */
static const char *
expected_name(const struct jsonrpc_msg *msg)
{
	const char *m = msg->method;      /* (the first byte tells most apart without a call) */
	const char *key = m[0] == 'r' && strcmp(m, "resources/read") == 0 ? "uri" :
	    ((m[0] == 't' && strcmp(m, "tools/call") == 0) || (m[0] == 'p' && strcmp(m, "prompts/get") == 0)) ? "name" :
	    (m[0] == 't' && (strcmp(m, "tasks/get") == 0 || strcmp(m, "tasks/update") == 0 ||
	    strcmp(m, "tasks/cancel") == 0)) ? "taskId" : NULL;
	if (key == NULL)
		return NULL;
	const cJSON *v = json_get(msg->params, key);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static void
handle_stateless(struct mcp *m, struct http_request *r, struct jsonrpc_msg *msg,
    const struct stateless_meta *sm)
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
	/* The access log names the method: dispatch does for a call, the
	 * refusals below for themselves (one copy to the arena, not two). */
	const cJSON *mv = sm->version, *caps = sm->caps;
	const char *hv = http_request_field(r, HDR_MCP_PROTOCOL_VERSION);
	const char *why = NULL;
	int code = 0;
	if (!cJSON_IsString(mv) || !cJSON_IsObject(caps)) {
		code = JSONRPC_INVALID_PARAMS;
		why = "Invalid params: _meta needs io.modelcontextprotocol/protocolVersion and io.modelcontextprotocol/clientCapabilities";
	} else if (hv == NULL || strcmp(hv, mv->valuestring) != 0) {
		code = -32020;
		why = "HeaderMismatch: the MCP-Protocol-Version header must equal _meta io.modelcontextprotocol/protocolVersion";
	} else if (proto_parse(mv->valuestring) != PROTO_2026_07_28) {
		http_request_log_extra(r, msg->method);
		respond_json(r, 400, stateless_unsupported(msg->id, mv->valuestring));
		jsonrpc_free(msg);
		return;
	} else {
		const char *hm = http_request_field(r, HDR_MCP_METHOD);
		const char *want = expected_name(msg);
		const char *hn = http_request_field(r, HDR_MCP_NAME);
		if (hm == NULL || strcmp(hm, msg->method) != 0) {
			code = -32020;
			why = "HeaderMismatch: the Mcp-Method header must equal the request's method";
		} else if (want != NULL && (hn == NULL || strcmp(hn, want) != 0)) {
			code = -32020;
			why = "HeaderMismatch: the Mcp-Name header must equal the request's params.name (or params.uri)";
		}
	}
	if (why != NULL) {
		http_request_log_extra(r, msg->method);
		respond_rpc_error(r, 400, msg->id, code, why);
		jsonrpc_free(msg);
		return;
	}
	char text[200];
	if (stateless_removed(msg, text, sizeof(text))) {
		http_request_log_extra(r, msg->method);
		respond_rpc_error(r, 404, msg->id, JSONRPC_METHOD_NOT_FOUND, text);
		jsonrpc_free(msg);
		return;
	}
	struct call *c = call_new(m, r, NULL, msg);
	if (c == NULL) {
		http_request_log_extra(r, msg->method);
		jsonrpc_free(msg);
		http_respond_text(r, 500, "out of memory");
		return;
	}
	stateless_call_init(c, sm);
	/* Closing the response cancels the request, from the start. */
	http_request_on_close(r, call_req_closed, c);
	dispatch(c);
}

/* The auth check's span: from the request's start to its principal. */
static void
trace_auth(struct mcp *m, struct http_request *r, const struct trace_ctx *root, uint64_t done_us)
{
	if (m->auth == NULL || !root->sampled)
		return;
	struct trace_ctx t;
	tracing_child(&t, root, http_request_start(r));
	const struct principal *p = auth_principal(r);
	struct trace_attr a[] = {
		{ "mcpd.auth.plugin", TA_STR, m->cfg->auth.name, 0 },
		{ "user.id", TA_STR, p != NULL ? p->user : NULL, 0 },
	};
	tracing_end(&t, done_us, "auth", TK_INTERNAL, NULL, a, sizeof(a) / sizeof(a[0]));
}

static void post_parsed(struct mcp *m, struct http_request *r, struct jsonrpc_msg *msg);

static void
handle_post(struct mcp *m, struct http_request *r, uint64_t authorized_us)
{
	const char *ctype = http_request_field(r, HDR_CONTENT_TYPE);
	if (ctype == NULL || strncasecmp(ctype, "application/json", 16) != 0) {
		respond_rpc_error(r, 415, NULL, JSONRPC_INVALID_REQUEST,
		    "Unsupported Media Type: Content-Type must be application/json");
		return;
	}
	const char *accept = http_request_field(r, HDR_ACCEPT);
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
	if (jsonrpc_parse(&m->reader, body, len, (int)m->cfg->limits.json_depth, &msg, &code, why, sizeof(why), &eid) < 0) {
		http_request_log_extra(r, why);
		respond_rpc_error(r, 400, eid, code, why);
		cJSON_Delete(eid);
		return;
	}
	cJSON_Delete(eid);
	/* A request's span begins here (with the HTTP request), so that its
	 * auth check and the storage calls of its session's lookup are its
	 * children; the call takes it over (call_new). */
	struct trace_ctx root, saved;
	if (msg.kind == RPC_REQUEST) {
		tracing_root(&root, request_traceparent(msg.meta, r), http_request_start(r));
		trace_auth(m, r, &root, authorized_us);
		tracing_push(&root, &saved);
		post_parsed(m, r, &msg);
		tracing_pop(&saved);
		return;
	}
	post_parsed(m, r, &msg);
}

static void
post_parsed(struct mcp *m, struct http_request *r, struct jsonrpc_msg *msgp)
{
	struct jsonrpc_msg msg = *msgp;
	struct stateless_meta sm;
	stateless_meta_read(request_meta(&msg), &sm);
	if (is_stateless(r, &sm)) {
		handle_stateless(m, r, &msg, &sm);
		return;
	}
	if (msg.kind == RPC_REQUEST && strcmp(msg.method, "initialize") == 0) {
		if (http_request_field(r, HDR_MCP_SESSION_ID) != NULL) {
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
		if (log_access_json()) {
			char sid[9];
			const struct principal *p = auth_principal(r);
			snprintf(sid, sizeof(sid), "%.8s", s->id);
			struct http_log_mcp l = { .method = msg->method, .session = sid,
			    .principal = p != NULL ? p->user : NULL };
			http_request_log_mcp(r, &l);
		}
		client_notification(m, s, msg);
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
	if (!accepts(http_request_field(r, HDR_ACCEPT), "text/event-stream")) {
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
	const char *last = http_request_field(r, HDR_LAST_EVENT_ID);
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
endpoint_admitted(struct mcp *m, struct http_request *r)
{
	const char *method = http_request_method(r);
	if (strcmp(method, "POST") == 0)
		handle_post(m, r, monotonic_us());
	else if (strcmp(method, "GET") == 0)
		handle_get(m, r);
	else
		handle_delete(m, r);
}

/* With auth, requests refused 401 (no token, or a bad one) count against
 * their client address with limits.rate, in the worker's own buckets: an
 * address whose refusals outran the rate is answered 429 before its token
 * is checked (a hash, a signature or a remote call), until it has earned
 * a request back. Accepted tokens never draw on it, so clients sharing
 * an address (a NAT, a proxy) are limited by their principals only. */
static void
address_key(struct http_request *r, char *key, size_t len)
{
	snprintf(key, len, "a:%s", http_request_remote(r));
	char *colon = strrchr(key, ':');
	if (colon != NULL && colon > key + 1 && (key[2] != '[' || colon[-1] == ']'))
		*colon = '\0';
}

static void
refused(struct http_request *r, void *arg)
{
	struct mcp *m = arg;
	char key[RATELIMIT_KEY_MAX + 1];
	address_key(r, key, sizeof(key));
	ratelimit_local(m->refusals, key, monotonic_us());
}

static void
too_many(struct http_request *r, uint64_t retry_after_s)
{
	metrics_limited(MXL_RATE);
	char ra[24], msg[160];
	snprintf(ra, sizeof(ra), "%llu", (unsigned long long)retry_after_s);
	snprintf(msg, sizeof(msg), "Too Many Requests: over the rate limit (limits.rate); retry after %llu s",
	    (unsigned long long)retry_after_s);
	cJSON *data = cJSON_CreateObject();
	if (data != NULL)
		cJSON_AddNumberToObject(data, "retryAfter", (double)retry_after_s);
	cors_headers(r);
	http_response_header(r, "Retry-After", ra);
	respond_json(r, 429, jsonrpc_error(NULL, -32000, msg, data));
}

/* A request waiting for the rate limiter's count (in storage). */
struct rate_wait {
	struct mcp *m;
	struct http_request *r;         /* NULL once the client is gone */
};

static void
rate_wait_closed(struct http_request *r, void *arg)
{
	(void)r;
	struct rate_wait *w = arg;
	w->r = NULL;
}

static void
rate_counted(void *arg, uint64_t retry_after_s)
{
	struct rate_wait *w = arg;
	struct http_request *r = w->r;
	struct mcp *m = w->m;
	free(w);
	if (r == NULL)
		return;
	http_request_on_close(r, NULL, NULL);
	if (retry_after_s == 0) {
		endpoint_admitted(m, r);
		return;
	}
	too_many(r, retry_after_s);
}

/* What a rate counts against: the principal, or without auth the
 * client's address (without its port). */
static void
rate_key(const struct mcp *m, struct http_request *r, char *key, size_t len)
{
	const struct principal *who = m->auth != NULL ? auth_principal(r) : NULL;
	if (who != NULL && who->user != NULL) {
		snprintf(key, len, "u:%s", who->user);
		return;
	}
	address_key(r, key, len);
}

static void
endpoint_authorized(struct http_request *r, void *arg)
{
	struct mcp *m = arg;
	if (m->rate == NULL) {
		endpoint_admitted(m, r);
		return;
	}
	struct rate_wait *w = calloc(1, sizeof(*w));
	if (w == NULL) {
		http_respond_text(r, 500, "out of memory");
		return;
	}
	w->m = m;
	w->r = r;
	char key[RATELIMIT_KEY_MAX + 1];
	rate_key(m, r, key, sizeof(key));
	http_request_on_close(r, rate_wait_closed, w);
	ratelimit_take(m->rate, key, rate_counted, w);
}

static void
mcp_endpoint(struct http_request *r, void *arg)
{
	struct mcp *m = arg;
	const char *method = http_request_method(r);
	if (!guard_host_allowed(m->cfg, http_request_field(r, HDR_HOST))) {
		char msg[160];
		snprintf(msg, sizeof(msg), "Forbidden: Host \"%.64s\" is not allowed (see allowed_hosts)",
		    http_request_field(r, HDR_HOST) ? http_request_field(r, HDR_HOST) : "");
		respond_rpc_error(r, 403, NULL, -32000, msg);
		return;
	}
	const char *origin = http_request_field(r, HDR_ORIGIN);
	if (origin != NULL && !guard_origin_allowed(m->cfg, origin)) {
		char msg[160];
		snprintf(msg, sizeof(msg), "Forbidden: Origin \"%.64s\" is not allowed (see allowed_origins)", origin);
		respond_rpc_error(r, 403, NULL, -32000, msg);
		return;
	}
	if (m->lambda && strcmp(method, "GET") == 0) {
		/* No invocation stays open for a standalone stream: the
		 * transport lets a server without one answer 405. */
		cors_headers(r);
		http_response_header(r, "Allow", "POST, DELETE, OPTIONS");
		respond_rpc_error(r, 405, NULL, JSONRPC_INVALID_REQUEST,
		    "Method Not Allowed: no GET stream in Lambda mode (each request is one invocation)");
		return;
	}
	if (strcmp(method, "POST") == 0 || strcmp(method, "GET") == 0 || strcmp(method, "DELETE") == 0) {
		uint64_t wait_s;
		char key[RATELIMIT_KEY_MAX + 1];
		if (m->refusals != NULL && m->auth != NULL) {
			address_key(r, key, sizeof(key));
			if ((wait_s = ratelimit_peek(m->refusals, key, monotonic_us())) > 0) {
				http_request_log_extra(r, "refused too often");
				too_many(r, wait_s);
				return;
			}
		}
		auth_check(m->auth, r, endpoint_authorized, m);
	} else if (strcmp(method, "OPTIONS") == 0) {
		cors_headers(r);
		http_response_header(r, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
		const char *want = http_request_field(r, HDR_AC_REQUEST_HEADERS);
		http_response_header(r, "Access-Control-Allow-Headers", want ? want :
		    "Content-Type, Accept, Authorization, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID");
		http_response_header(r, "Access-Control-Max-Age", "600");
		http_respond(r, 204, NULL, NULL, 0);
	} else {
		http_response_header(r, "Allow", "GET, POST, DELETE, OPTIONS");
		respond_rpc_error(r, 405, NULL, JSONRPC_INVALID_REQUEST, "Method Not Allowed");
	}
}

/* init_worker of the plugins this configuration uses: its storage, its
 * transport, its auth (with an HTTP server) and those of its tools (not
 * those an older one loaded). */
static int
init_plugins(const struct config *cfg, int with_auth)
{
	size_t n = 0;
	struct loaded_plugin **use = calloc(3 + cfg->ntools, sizeof(*use));
	if (use == NULL) {
		log_error("out of memory");
		return -1;
	}
	use[n++] = cfg->storage.lp;
	use[n++] = cfg->transport.lp;
	if (cfg->auth.lp != NULL && with_auth)
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
	if (b != NULL)
		m->b = *b;
	cors_config = cfg;
	LIST_INIT(&m->calls);
	LIST_INIT(&m->waiting);
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
	tasks_listen_start(m);
	watch_files(m);
	host_set_tool_functions(host_tool_result, host_tool_text, host_tool_progress,
	    host_tool_on_cancel, host_tool_ask, host_tool_status);
	if (init_plugins(cfg, http != NULL) < 0) {
		mcp_free(m);
		return NULL;
	}
	/* Without an HTTP server (mcpd --stdio) the one client is the user
	 * who started mcpd: no endpoint, no tokens. */
	if (http == NULL)
		return m;
	int rate_failed;
	m->rate = ratelimit_new(&cfg->limits.rate, &m->b, &rate_failed);
	if (rate_failed) {
		log_error("out of memory");
		mcp_free(m);
		return NULL;
	}
	if (http_server_route(http, cfg->endpoint, mcp_endpoint, m) < 0) {
		mcp_free(m);
		return NULL;
	}
	if (cfg->auth.name != NULL) {
		m->auth = auth_new(base, cfg);
		int failed = 0;
		struct rate_conf own = cfg->limits.rate;
		own.shared = 0;         /* refusals are counted where they happen */
		if (m->auth != NULL && (m->refusals = ratelimit_new(&own, NULL, &rate_failed)) != NULL)
			auth_on_refused(m->auth, refused, m);
		if (m->auth == NULL || rate_failed || auth_routes(m->auth, http) < 0 ||
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
mcp_lambda(struct mcp *m, int mode)
{
	m->lambda = mode;
}

void
mcp_invocation(struct mcp *m, uint64_t deadline_ms, const char *trace_id)
{
	tool_exec_set_invocation(m->te, deadline_ms, trace_id);
}

void
mcp_drain(struct mcp *m, int tools_changed, int resources_changed, int prompts_changed)
{
	m->draining = 1;
	tool_exec_drain(m->te);
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

unsigned
mcp_persistent_running(const struct mcp *m)
{
	return tool_exec_persistent(m->te);
}

void
mcp_free(struct mcp *m)
{
	if (m == NULL)
		return;
	while (!LIST_EMPTY(&m->calls)) {
		struct call *c = LIST_FIRST(&m->calls);
		/* Its request may outlive it (the server closes connections
		 * after this): it must not call back into a freed call. */
		if (c->req != NULL)
			http_request_on_close(c->req, NULL, NULL);
		c->req = NULL;
		call_free(c);
	}
	call_spare_drop(m);
	/* Lookups still out at storage: the plugin drops them at its detach,
	 * without calling back. */
	while (!LIST_EMPTY(&m->waiting)) {
		struct waiting *w = LIST_FIRST(&m->waiting);
		if (w->r != NULL)
			http_request_on_close(w->r, NULL, NULL);
		waiting_free(w);
	}
	tasks_listen_stop(m);
	sessions_free(m->sessions);
	admin_free(m->admin);
	oauth_free(m->oauth);
	auth_free(m->auth);
	tool_exec_free(m->te);
	ratelimit_free(m->rate);
	ratelimit_free(m->refusals);
	plugins_fini_worker();
	if (m->inotify_ev != NULL)
		event_free(m->inotify_ev);
	if (m->inotify_fd >= 0)
		close(m->inotify_fd);
	for (size_t i = 0; i < m->nwatches; i++)
		free(m->watches[i].dir);
	free(m->watches);
	jsonrpc_reader_clear(&m->reader);       /* every message is freed by now */
	arena_free(m->scratch);
	free(m);
}
