/* /admin/sessions?user=NAME: GET lists the user's live sessions, DELETE
 * revokes them all (their streams end on every worker and instance). The
 * caller's token must hold auth.admin_scope (default mcpd:admin). */
#include "admin.h"
#include "arena.h"
#include "auth.h"
#include "config.h"
#include "http.h"
#include "jsonrpc.h"
#include "log.h"
#include "mcp.h"
#include "plugin.h"
#include "session.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct admin {
	struct auth *auth;
	struct sessions *sessions;
	const struct config *cfg;
};

struct admin_op {
	struct http_request *r;         /* NULL once the client left */
	int revoke;
	char user[256];
};

static void
respond_json(struct http_request *r, int status, cJSON *o)
{
	char *body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (body == NULL) {
		http_respond_text(r, 500, "out of memory");
		return;
	}
	http_response_header(r, "Cache-Control", "no-store");
	http_respond(r, status, "application/json", body, strlen(body));
	cJSON_free(body);
}

static void
respond_error(struct http_request *r, int status, const char *message)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "error", message);
	respond_json(r, status, o);
}

static void
op_closed(struct http_request *r, void *arg)
{
	(void)r;
	((struct admin_op *)arg)->r = NULL;
}

static void
listed(void *arg, int status, cJSON *list)
{
	struct admin_op *op = arg;
	struct http_request *r = op->r;
	if (r != NULL) {
		http_request_on_close(r, NULL, NULL);
		if (status != MCPD_OK) {
			respond_error(r, 503, "session storage is unavailable; try again later");
		} else {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "user", op->user);
			cJSON_AddItemToObject(o, op->revoke ? "revoked" : "sessions", cJSON_Duplicate(list, 1));
			respond_json(r, 200, o);
		}
	}
	free(op);
}

/* The value of name in a query string (no percent-decoding beyond %XX). */
static int
query_value(const char *q, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);
	for (const char *p = q; p != NULL && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
		if (strncmp(p, name, nl) != 0 || p[nl] != '=')
			continue;
		const char *v = p + nl + 1;
		size_t o = 0;
		for (; *v && *v != '&'; v++) {
			int c = (unsigned char)*v;
			if (c == '%' && v[1] && v[2]) {
				char hex[3] = { v[1], v[2], 0 };
				char *end;
				c = (int)strtol(hex, &end, 16);
				if (*end != '\0')
					return -1;
				v += 2;
			} else if (c == '+') {
				c = ' ';
			}
			if (o + 1 >= len || c == 0)
				return -1;
			out[o++] = (char)c;
		}
		out[o] = '\0';
		return o > 0 ? 0 : -1;
	}
	return -1;
}

static void
authorized(struct http_request *r, void *arg)
{
	struct admin *a = arg;
	const struct principal *p = auth_principal(r);
	const char *scope = a->cfg->authz.admin_scope;
	if (!auth_has_scopes(p, scope)) {
		auth_insufficient_scope(a->auth, r, scope);
		respond_error(r, 403, "this needs the admin scope");
		return;
	}
	const char *m = http_request_method(r);
	int revoke = strcmp(m, "DELETE") == 0;
	struct admin_op *op = calloc(1, sizeof(*op));
	if (op == NULL) {
		http_respond_text(r, 500, "out of memory");
		return;
	}
	if (query_value(http_request_query(r), "user", op->user, sizeof(op->user)) < 0) {
		free(op);
		respond_error(r, 400, "name the user: /admin/sessions?user=NAME");
		return;
	}
	op->r = r;
	op->revoke = revoke;
	if (revoke)
		log_notice("%s revokes the sessions of %s", p->user, op->user);
	http_request_on_close(r, op_closed, op);
	sessions_of_user(a->sessions, op->user, revoke, listed, op);
}

static void
admin_sessions(struct http_request *r, void *arg)
{
	struct admin *a = arg;
	const char *m = http_request_method(r);
	if (!mcp_host_allowed(a->cfg, http_request_header(r, "Host"))) {
		respond_error(r, 403, "Host not allowed (see allowed_hosts)");
		return;
	}
	if (strcmp(m, "GET") != 0 && strcmp(m, "DELETE") != 0) {
		http_response_header(r, "Allow", "GET, DELETE");
		respond_error(r, 405, "method not allowed");
		return;
	}
	auth_check(a->auth, r, authorized, a);
}

struct admin *
admin_new(struct http_server *http, struct auth *auth, struct sessions *sessions,
    const struct config *cfg, int *failed)
{
	*failed = 0;
	if (auth == NULL)
		return NULL;
	struct admin *a = calloc(1, sizeof(*a));
	if (a == NULL || http_server_route(http, "/admin/sessions", admin_sessions, a) < 0) {
		free(a);
		*failed = 1;
		return NULL;
	}
	a->auth = auth;
	a->sessions = sessions;
	a->cfg = cfg;
	return a;
}

void
admin_free(struct admin *a)
{
	free(a);
}
