/* One client on a line transport (mcpd --stdio, mcp.h): the MCP side of
 * it. Each line the client sends is one JSON-RPC message; requests
 * become calls and go through the same dispatch as the endpoint's POSTs,
 * responses answer our requests to the client (session_response), and
 * notifications are the endpoint's too (client_notification). The
 * connection has one session of the 2025 revisions, made by initialize;
 * a request that carries 2026-07-28 in its _meta is served on its own,
 * as the endpoint serves stateless POSTs. Whatever a call would send as an SSE event or a JSON answer, and what
 * the session would send on its GET stream (questions to the client,
 * change notifications), goes out as one line. The framing, the bound
 * on a line and the descriptors are process/stdio.c's. */
#include "mcp_internal.h"
#include "config.h"
#include "defs.h"
#include "json.h"
#include "log.h"
#include "mcp.h"

#include <stdlib.h>
#include <string.h>

struct mcp_line {
	struct mcp *m;
	struct session *s;          /* after initialize */
	struct call *init;          /* an initialize waiting for storage */
	int closed;                 /* mcp_line_close came while it waited */
	void (*out)(void *, const char *);
	void (*resume)(void *);
	void *arg;
};

void
line_write(struct mcp_line *l, const char *json)
{
	l->out(l->arg, json);
}

static void
session_line(void *arg, const char *json)
{
	line_write(arg, json);
}

static void
write_error(struct mcp_line *l, const cJSON *id, int code, const char *message)
{
	char *json = jsonrpc_error(id, code, message, NULL);
	if (json != NULL)
		line_write(l, json);
	free(json);
}

void
mcp_line_error(struct mcp_line *l, int code, const char *message)
{
	write_error(l, NULL, code, message);
}

struct mcp_line *
mcp_line_open(struct mcp *m, void (*out)(void *, const char *), void (*resume)(void *), void *arg)
{
	struct mcp_line *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return NULL;
	l->m = m;
	l->out = out;
	l->resume = resume;
	l->arg = arg;
	return l;
}

int
mcp_line_busy(const struct mcp_line *l)
{
	return l->init != NULL;
}

static void
line_session_created(void *arg, struct session *s, int status)
{
	(void)status;
	struct mcp_line *l = arg;
	struct call *c = l->init;
	l->init = NULL;
	if (l->closed) {
		if (s != NULL)
			session_delete(s);
		c->line = NULL;
		call_free(c);
		free(l);
		return;
	}
	if (s == NULL) {
		call_error(c, -32000, "Session storage is unavailable; try again later");
	} else {
		session_ref(s);         /* the connection's, until it closes */
		l->s = s;
		session_set_line(s, session_line, l);
		c->s = s;
		session_ref(s);         /* the call's: call_free drops it */
		c->proto = s->proto;
		c->client_caps = s->client_caps;
		call_result(c, initialize_result(c, s));
	}
	l->resume(l->arg);
}

static void
line_initialize(struct mcp_line *l, struct call *c)
{
	if (l->s != NULL) {
		call_error(c, JSONRPC_INVALID_REQUEST,
		    "Invalid Request: this connection is initialized already (one session per stdio connection)");
		return;
	}
	enum proto proto;
	if (initialize_check(c, &proto) < 0)
		return;
	l->init = c;
	session_create(l->m->sessions, proto, cJSON_GetObjectItemCaseSensitive(c->params, "capabilities"),
	    cJSON_GetObjectItemCaseSensitive(c->params, "clientInfo"), NULL, line_session_created, l);
}

/* A stateless call of this line ends without an answer: cancelled, or
 * the client is gone. Its command is killed. */
static void
line_cancel(struct call *c)
{
	c->line = NULL;
	if (c->in_plugin) {
		plugin_cancel(c);
		return;
	}
	c->cancelled = 1;
	call_free(c);
}

/* notifications/cancelled for a 2026-07-28 request of this line (a
 * session's calls are the endpoint's business): 1 if it was one. */
static int
cancel_stateless(struct mcp_line *l, const struct jsonrpc_msg *msg)
{
	if (strcmp(msg->method, "notifications/cancelled") != 0)
		return 0;
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg->params, "requestId");
	struct call *c;
	LIST_FOREACH(c, &l->m->calls, link) {
		if (c->line == l && c->stateless && id != NULL && json_equal(c->msg.id, id)) {
			if (c->tool != NULL)
				log_info("tool %s cancelled", c->tool->name);
			line_cancel(c);
			return 1;
		}
	}
	return 0;
}

/* A request of 2026-07-28: no initialize, its version and the client's
 * capabilities in _meta, each request on its own, as the endpoint takes
 * them (there are no headers here to mirror them). Takes msg. */
static void
line_stateless(struct mcp_line *l, struct jsonrpc_msg *msg, const struct stateless_meta *sm)
{
	const cJSON *mv = sm->version, *caps = sm->caps;
	char text[200];
	if (!cJSON_IsString(mv) || !cJSON_IsObject(caps)) {
		write_error(l, msg->id, JSONRPC_INVALID_PARAMS,
		    "Invalid params: _meta needs io.modelcontextprotocol/protocolVersion and io.modelcontextprotocol/clientCapabilities");
	} else if (proto_parse(mv->valuestring) != PROTO_2026_07_28) {
		char *json = stateless_unsupported(msg->id, mv->valuestring);
		if (json != NULL)
			line_write(l, json);
		free(json);
	} else if (stateless_removed(msg, text, sizeof(text))) {
		write_error(l, msg->id, JSONRPC_METHOD_NOT_FOUND, text);
	} else {
		struct call *c = call_new(l->m, NULL, NULL, msg);
		if (c == NULL) {
			write_error(l, msg->id, JSONRPC_INTERNAL_ERROR, "out of memory");
			jsonrpc_free(msg);
			return;
		}
		c->line = l;
		stateless_call_init(c, sm);
		dispatch(c);
		return;
	}
	jsonrpc_free(msg);
}

void
mcp_line_message(struct mcp_line *l, const char *text, size_t len)
{
	struct mcp *m = l->m;
	struct jsonrpc_msg msg;
	int code;
	char why[256];
	cJSON *eid = NULL;
	if (jsonrpc_parse(&m->reader, text, len, (int)m->cfg->limits.json_depth, &msg, &code, why, sizeof(why), &eid) < 0) {
		log_info("stdio: %s", why);
		write_error(l, eid, code, why);
		cJSON_Delete(eid);
		return;
	}
	cJSON_Delete(eid);
	if (l->s != NULL)
		session_touch(l->s);
	switch (msg.kind) {
	case RPC_RESPONSE:
		if (l->s != NULL)
			session_response(l->s, msg.id, msg.result, msg.error);
		else
			log_info("stdio: a response before initialize, ignored");
		jsonrpc_free(&msg);
		return;
	case RPC_NOTIFICATION:
		if (!cancel_stateless(l, &msg) && l->s != NULL)
			client_notification(m, l->s, &msg);
		jsonrpc_free(&msg);
		return;
	case RPC_REQUEST:
		break;
	}
	struct stateless_meta sm;
	stateless_meta_read(request_meta(&msg), &sm);
	if (sm.version != NULL) {
		line_stateless(l, &msg, &sm);
		return;
	}
	int init = strcmp(msg.method, "initialize") == 0;
	if (!init && l->s == NULL && strcmp(msg.method, "ping") != 0) {
		write_error(l, msg.id, JSONRPC_INVALID_REQUEST,
		    "Invalid Request: send initialize first");
		jsonrpc_free(&msg);
		return;
	}
	struct call *c = call_new(m, NULL, l->s, &msg);
	if (c == NULL) {
		write_error(l, msg.id, JSONRPC_INTERNAL_ERROR, "out of memory");
		jsonrpc_free(&msg);
		return;
	}
	c->line = l;
	if (init)
		line_initialize(l, c);
	else
		dispatch(c);
}

void
mcp_line_close(struct mcp_line *l)
{
	struct call *c, *next;
	/* Nobody reads any more: what the calls would still say is dropped;
	 * stateless calls (listen streams, commands) end here. */
	for (c = LIST_FIRST(&l->m->calls); c != NULL; c = next) {
		next = LIST_NEXT(c, link);
		if (c->line != l)
			continue;
		if (c->stateless)
			line_cancel(c);
		else
			c->line = NULL;
	}
	if (l->s != NULL) {
		struct session *s = l->s;
		l->s = NULL;
		session_set_line(s, NULL, NULL);
		/* Its calls end and their commands are killed (session_gone),
		 * its questions to the client fail. */
		session_delete(s);
		session_unref(s);
	}
	if (l->init != NULL) {
		l->closed = 1;          /* line_session_created frees it */
		return;
	}
	free(l);
}
