/* /metrics on the main listeners: the same scrape as metrics.listen
 * serves, for tokens that hold the admin scope.
 *
 * /admin/sessions?user=NAME: GET lists the user's live sessions, DELETE
 * revokes them all (their streams end on every worker and instance). The
 * caller's token must hold auth.admin_scope (default mcpd:admin). */
#include "admin.h"
#include "arena.h"
#include "auth.h"
#include "config.h"
#include "form.h"
#include "guard.h"
#include "http.h"
#include "jsonrpc.h"
#include "log.h"
#include "metrics.h"
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
	char *user;
};

#define MAX_FIELDS 8
#define MAX_USER 4096           /* a principal's name, percent-encoded */

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
	free(op->user);
	free(op);
}

/* The user the query names: user=NAME once, percent-decoded as any
 * query (form.c: two hex digits after each %), not empty. NULL and why
 * otherwise. */
static const char *
query_user(struct http_request *r, const char **why)
{
	const char *q = http_request_query(r);
	struct form f;
	*why = "name the user: /admin/sessions?user=NAME";
	if (q == NULL)
		return NULL;
	if (form_parse(http_request_arena(r), q, strlen(q), MAX_FIELDS, MAX_USER, &f, why) < 0)
		return NULL;
	const char *user = form_get(&f, "user");
	if (f.repeated != NULL && strcmp(f.repeated, "user") == 0) {
		*why = "user is given more than once";
		return NULL;
	}
	if (user == NULL || user[0] == '\0') {
		*why = "name the user: /admin/sessions?user=NAME";
		return NULL;
	}
	return user;
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
	const char *why;
	const char *user = query_user(r, &why);
	if (user == NULL || (op->user = strdup(user)) == NULL) {
		free(op);
		if (user == NULL)
			respond_error(r, 400, why);
		else
			http_respond_text(r, 500, "out of memory");
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
	if (!guard_host_allowed(a->cfg, http_request_field(r, HDR_HOST))) {
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

void
admin_metrics_respond(struct http_request *r, const struct config *cfg)
{
	const char *m = http_request_method(r);
	if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
		http_response_header(r, "Allow", "GET, HEAD");
		http_respond_text(r, 405, "method not allowed");
		return;
	}
	if (!metrics_enabled()) {
		http_respond_text(r, 404, "metrics are off (metrics.enabled: false)");
		return;
	}
	char protos[256] = "";
	size_t n = 0;
	for (int i = 0; i < PROTO_COUNT && n < sizeof(protos); i++)
		n += (size_t)snprintf(protos + n, sizeof(protos) - n, "%s%s", i ? "," : "", proto_names[i]);
	/* OpenMetrics only when asked for by name; anything else gets the
	 * text format. */
	const char *acc = http_request_field(r, HDR_ACCEPT);
	int om = acc != NULL && strstr(acc, "application/openmetrics-text") != NULL;
	size_t len;
	char *body = metrics_render(cfg, om, protos, &len);
	if (body == NULL) {
		http_respond_text(r, 500, "out of memory");
		return;
	}
	http_response_header(r, "Cache-Control", "no-store");
	http_respond(r, 200, om ? "application/openmetrics-text; version=1.0.0; charset=utf-8" :
	    "text/plain; version=0.0.4; charset=utf-8", body, len);
	free(body);
}

static void
metrics_authorized(struct http_request *r, void *arg)
{
	struct admin *a = arg;
	const char *scope = a->cfg->authz.admin_scope;
	if (!auth_has_scopes(auth_principal(r), scope)) {
		auth_insufficient_scope(a->auth, r, scope);
		respond_error(r, 403, "this needs the admin scope");
		return;
	}
	admin_metrics_respond(r, a->cfg);
}

static void
admin_metrics(struct http_request *r, void *arg)
{
	struct admin *a = arg;
	if (!guard_host_allowed(a->cfg, http_request_field(r, HDR_HOST))) {
		respond_error(r, 403, "Host not allowed (see allowed_hosts)");
		return;
	}
	auth_check(a->auth, r, metrics_authorized, a);
}

struct admin *
admin_new(struct http_server *http, struct auth *auth, struct sessions *sessions,
    const struct config *cfg, int *failed)
{
	*failed = 0;
	if (auth == NULL)
		return NULL;
	struct admin *a = calloc(1, sizeof(*a));
	if (a == NULL || http_server_route(http, "/admin/sessions", admin_sessions, a) < 0 ||
	    http_server_route(http, "/metrics", admin_metrics, a) < 0) {
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
