/* Change notifications: the tools, prompts or resources lists changed (a
 * reload, a command's mcpd/changed) or one resource did
 * (resources/updated; the files of file resources are watched with
 * inotify). A change is broadcast to every worker and instance through
 * the transport; each tells the streams it holds: the GET streams of
 * sessions (the 2025 revisions) and subscriptions/listen streams
 * (2026-07-28). */
#include "mcp_internal.h"
#include "config.h"
#include "log.h"
#include "registry.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

/* A listen stream: acknowledged with the filter mcpd honours, then the
 * change notifications that match it, until the client closes it. */
void
m_listen(struct call *c)
{
	const cJSON *want = cJSON_GetObjectItemCaseSensitive(c->params, "notifications");
	if (c->m->lambda == MCP_LAMBDA_BUFFERED) {
		/* Its answer would go out when it ends: never, or at the
		 * invocation's deadline, with nothing in it. */
		call_error(c, JSONRPC_METHOD_NOT_FOUND, "subscriptions/listen is not served by a Lambda function "
		    "in buffered mode (lambda.response_mode: streaming, with a function URL in RESPONSE_STREAM mode)");
		return;
	}
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
		} else if (strcmp(f->string, "taskIds") == 0 && c->m->cfg->tasks) {
			/* notifications/tasks for these tasks of the caller's */
			if (!cJSON_IsArray(f) || cJSON_GetArraySize(f) > 100) {
				cJSON_Delete(filter);
				call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: notifications.taskIds must be an array of at most 100 task ids");
				return;
			}
			cJSON *ids = cJSON_CreateArray();
			const cJSON *u;
			cJSON_ArrayForEach(u, f)
				if (cJSON_IsString(u) && strlen(u->valuestring) < 64)
					cJSON_AddItemToArray(ids, cJSON_CreateString(u->valuestring));
			cJSON_AddItemToObject(filter, "taskIds", ids);
			free(c->principal);
			c->principal = strdup(call_principal(c));
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

int
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

char *
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
	if (holder == NULL && s->line == NULL)
		return;
	char *msg = change_notification(ch->what, ch->uri, NULL);
	if (msg != NULL && holder != NULL)
		stream_send(holder, msg);
	else if (msg != NULL)
		session_notify(s, msg);     /* its line (stdio) */
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

void
change_from_anywhere(const char *what, const char *uri, void *arg)
{
	notify_change_here(arg, what, uri);
}

/* A change a command announced: every worker (and instance) tells the
 * streams it holds, this one included, through the transport. */
int
broadcast(struct mcp *m, const char *what, const char *uri)
{
	return sessions_publish_change(m->sessions, what, uri);
}

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
void
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
