/* initialize (a session starts), ping and logging/setLevel of the 2025
 * revisions; server/discover of 2026-07-28. */
#include "mcp_internal.h"
#include "auth.h"
#include "config.h"
#include "http.h"
#include "log.h"

void
m_ping(struct call *c)
{
	call_result(c, cJSON_CreateObject());
}

void
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

cJSON *
initialize_result(struct call *c, const struct session *s)
{
	const struct config *cfg = c->m->cfg;
	const cJSON *info = cJSON_GetObjectItemCaseSensitive(c->params, "clientInfo");
	const cJSON *cname = cJSON_GetObjectItemCaseSensitive(info, "name");
	log_info("session %.8s… started by %s, protocol %s", s->id,
	    cJSON_IsString(cname) ? cname->valuestring : "an unnamed client", proto_names[s->proto]);
	cJSON *res = cJSON_CreateObject();
	cJSON_AddStringToObject(res, "protocolVersion", proto_names[s->proto]);
	cJSON_AddItemToObject(res, "capabilities", cJSON_Parse(cfg->capabilities_2025_json));
	cJSON *si = cJSON_AddObjectToObject(res, "serverInfo");
	cJSON_AddStringToObject(si, "name", cfg->server.name);
	cJSON_AddStringToObject(si, "version", cfg->server.version);
	if (cfg->server.instructions != NULL)
		cJSON_AddStringToObject(res, "instructions", cfg->server.instructions);
	return res;
}

static void
session_created(void *arg, struct session *s, int status)
{
	struct call *c = arg;
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
	cJSON *res = initialize_result(c, s);
	http_response_header(c->req, "Mcp-Session-Id", s->id);
	call_result(c, res);
}

int
initialize_check(struct call *c, enum proto *proto)
{
	const char *requested = param_string(c, "protocolVersion");
	int p = requested ? proto_parse(requested) : -1;
	if (p < 0 || p == PROTO_2026_07_28)
		p = PROTO_2025_11_25;   /* our latest dated revision; the client decides */
	const cJSON *caps = cJSON_GetObjectItemCaseSensitive(c->params, "capabilities");
	if (!cJSON_IsObject(c->params) || (caps != NULL && !cJSON_IsObject(caps))) {
		call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: initialize needs protocolVersion, capabilities and clientInfo");
		return -1;
	}
	*proto = (enum proto)p;
	return 0;
}

void
m_initialize(struct call *c)
{
	enum proto proto;
	if (initialize_check(c, &proto) < 0)
		return;
	const cJSON *caps = cJSON_GetObjectItemCaseSensitive(c->params, "capabilities");
	const cJSON *info = cJSON_GetObjectItemCaseSensitive(c->params, "clientInfo");
	/* Storage may answer later: hear if the client leaves meanwhile. */
	http_request_on_close(c->req, call_req_closed, c);
	const struct principal *who = c->req != NULL ? auth_principal(c->req) : NULL;
	session_create(c->m->sessions, proto, caps, info, who ? who->user : NULL,
	    session_created, c);
}

void
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
