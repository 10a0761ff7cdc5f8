/* tasks/get, tasks/update and tasks/cancel (the io.modelcontextprotocol/
 * tasks extension): answered by any worker of any instance from the
 * task's record in storage (task.c writes it); a cancellation and the
 * client's answers go to the worker running the command through the
 * transport. A task belongs to the principal that created it: to anyone
 * else it is unknown, as one that never existed. The id the client
 * presents is found under its keyed hash (task.c), never stored. */
#include "mcp_internal.h"
#include "config.h"
#include "idhash.h"
#include "json.h"
#include "log.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum op_kind { OP_GET, OP_UPDATE, OP_CANCEL };

struct task_op {
	struct call *c;             /* NULL once the call is gone */
	enum op_kind kind;
	char id[64];
	char hid[IDHASH_LEN + 1];   /* idhash(id): the record's key, the channel */
	char *owner;
	struct mcp *m;
	cJSON *answers;             /* tasks/update: published once stored */
};

static void
op_free(struct task_op *op)
{
	free(op->owner);
	cJSON_Delete(op->answers);
	free(op);
}

void
task_op_forget(struct call *c)
{
	if (c->op != NULL) {
		c->op->c = NULL;
		c->op = NULL;
	}
}

static int
terminal(const char *status)
{
	return strcmp(status, "completed") == 0 || strcmp(status, "failed") == 0 ||
	    strcmp(status, "cancelled") == 0;
}

/* The record as tasks/get shows it (a DetailedTask), with its id (the
 * record has none; NULL: without). */
cJSON *
task_detailed(const cJSON *rec, const char *id, int small)
{
	static const char *const keys[] = { "status", "statusMessage", "createdAt",
		"lastUpdatedAt", "ttlMs", "pollIntervalMs" };
	cJSON *o = cJSON_CreateObject();
	if (id != NULL)
		cJSON_AddStringToObject(o, "taskId", id);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, keys[i]);
		if (v != NULL)
			cJSON_AddItemToObject(o, keys[i], cJSON_Duplicate(v, 1));
	}
	const char *status = cJSON_GetObjectItemCaseSensitive(rec, "status")->valuestring;
	const char *extra = strcmp(status, "input_required") == 0 ? "inputRequests" :
	    strcmp(status, "completed") == 0 ? "result" : strcmp(status, "failed") == 0 ? "error" : NULL;
	const cJSON *v = extra ? cJSON_GetObjectItemCaseSensitive(rec, extra) : NULL;
	if (v != NULL && small && strcmp(extra, "result") == 0) {
		/* A notification inlines a result only when it is small: the
		 * transport carries it to every worker of every instance. */
		char *json = json_print(v);
		if (json == NULL || strlen(json) > TASK_NOTIFY_RESULT_MAX)
			v = NULL;
		free(json);
	}
	if (v != NULL)
		cJSON_AddItemToObject(o, extra, cJSON_Duplicate(v, 1));
	return o;
}

/* ---- notifications/tasks ---- */

/* To every worker of every instance: {"o": owner, "h": the id's hash,
 * "t": the task without its id}. A listen stream knows the ids it asked
 * for: it finds the task by their hashes. */
void
tasks_publish(struct mcp *m, const char *hid, const cJSON *rec)
{
	const cJSON *owner = cJSON_GetObjectItemCaseSensitive(rec, "owner");
	if (m->b.transport == NULL || !m->cfg->tasks || !cJSON_IsString(owner))
		return;
	cJSON *msg = cJSON_CreateObject();
	cJSON_AddStringToObject(msg, "o", owner->valuestring);
	cJSON_AddStringToObject(msg, "h", hid);
	cJSON_AddItemToObject(msg, "t", task_detailed(rec, NULL, 1));
	char *json = json_print(msg);
	cJSON_Delete(msg);
	if (json != NULL)
		m->b.transport->publish(m->b.transport_inst, "mcpd:tasks", json, strlen(json), NULL, NULL, NULL);
	free(json);
}

/* A task changed somewhere: the listen streams held here that asked for
 * it, of its owner, hear it. */
static void
tasks_heard(void *arg, const char *channel, const void *msg, size_t len)
{
	(void)channel;
	struct mcp *m = arg;
	cJSON *n = json_parse(msg, len, 0, NULL);
	const cJSON *owner = cJSON_GetObjectItemCaseSensitive(n, "o");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(n, "t");
	const cJSON *hid = cJSON_GetObjectItemCaseSensitive(n, "h");
	if (!cJSON_IsString(owner) || !cJSON_IsObject(t) || !cJSON_IsString(hid)) {
		cJSON_Delete(n);
		return;
	}
	struct call *c;
	LIST_FOREACH(c, &m->calls, link) {
		if (!c->listen || c->principal == NULL || strcmp(c->principal, owner->valuestring) != 0)
			continue;
		const char *id = NULL;
		const cJSON *u;
		char h[IDHASH_LEN + 1];
		cJSON_ArrayForEach(u, cJSON_GetObjectItemCaseSensitive(c->filter, "taskIds"))
			if (id == NULL && cJSON_IsString(u) && strcmp(idhash(u->valuestring, h), hid->valuestring) == 0)
				id = u->valuestring;
		if (id == NULL)
			continue;
		cJSON *p = cJSON_CreateObject();
		cJSON_AddStringToObject(p, "taskId", id);
		const cJSON *f;
		cJSON_ArrayForEach(f, t)
			cJSON_AddItemToObject(p, f->string, cJSON_Duplicate(f, 1));
		cJSON *meta = cJSON_AddObjectToObject(p, "_meta");
		cJSON_AddItemToObject(meta, "io.modelcontextprotocol/subscriptionId", cJSON_Duplicate(c->msg.id, 1));
		char *json = jsonrpc_notification("notifications/tasks", p);
		if (json != NULL)
			direct_write(c, json);
		free(json);
	}
	cJSON_Delete(n);
}

void
tasks_listen_start(struct mcp *m)
{
	if (m->cfg->tasks && m->b.transport != NULL)
		m->tasks_sub = m->b.transport->subscribe(m->b.transport_inst, "mcpd:tasks", tasks_heard, m);
}

void
tasks_listen_stop(struct mcp *m)
{
	if (m->tasks_sub != NULL)
		m->b.transport->unsubscribe(m->b.transport_inst, m->tasks_sub);
	m->tasks_sub = NULL;
}

static void
set_string(cJSON *o, const char *key, const char *value)
{
	cJSON_DeleteItemFromObjectCaseSensitive(o, key);
	cJSON_AddStringToObject(o, key, value);
}

/* The record changed here (not by the worker running the task): stored
 * again if it still exists, for what is left of its time to live. */
static void
rewrite(struct mcp *m, const char *hid, cJSON *rec, mcpd_done_cb *cb, void *arg)
{
	char now[32];
	iso_time(wall_ms(), now);
	set_string(rec, "lastUpdatedAt", now);
	const cJSON *cm = cJSON_GetObjectItemCaseSensitive(rec, "createdMs");
	const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(rec, "ttlMs");
	uint64_t end = cJSON_IsNumber(cm) && cJSON_IsNumber(ttl) ? (uint64_t)cm->valuedouble + (uint64_t)ttl->valuedouble : 0;
	uint64_t t = wall_ms();
	char *json = json_print(rec);
	char key[96];
	snprintf(key, sizeof(key), "task:%s", hid);
	if (json == NULL || end <= t) {
		free(json);
		if (cb != NULL)
			cb(arg, MCPD_OK, NULL);
		return;
	}
	tasks_publish(m, hid, rec);
	m->b.storage->set(m->b.storage_inst, key, json, strlen(json), end - t, MCPD_SET_IF_PRESENT, cb, arg);
	free(json);
}

/* task:<hid>:cancel, which the task's worker reads at each renewal of
 * the record: the message may reach no one (published before the
 * worker's subscription is active, or while the transport is down), and
 * the record's "cancelled" may be overwritten by the worker's next write
 * of it (a status message) before that worker has heard. The marker is
 * written by cancellations only, and lives as long as the record. */
static void
mark_cancelled(struct mcp *m, const char *hid, const cJSON *rec)
{
	const cJSON *cm = cJSON_GetObjectItemCaseSensitive(rec, "createdMs");
	const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(rec, "ttlMs");
	uint64_t end = cJSON_IsNumber(cm) && cJSON_IsNumber(ttl) ? (uint64_t)cm->valuedouble + (uint64_t)ttl->valuedouble : 0;
	uint64_t t = wall_ms();
	if (end <= t)
		return;
	char key[112];
	snprintf(key, sizeof(key), "task:%s:cancel", hid);
	m->b.storage->set(m->b.storage_inst, key, "1", 1, end - t, 0, NULL, NULL);
}

static void
publish(struct mcp *m, const char *hid, cJSON *msg)
{
	char channel[96], *json = json_print(msg);
	snprintf(channel, sizeof(channel), "task:%s", hid);
	if (json != NULL && m->b.transport != NULL)
		m->b.transport->publish(m->b.transport_inst, channel, json, strlen(json), NULL, NULL, NULL);
	free(json);
}

static void
acked(void *arg, int status, const char *err)
{
	struct task_op *op = arg;
	struct call *c = op->c;
	/* The answers go to the task's worker only now: published before
	 * this write, a tool that finished at once would have its record
	 * ("completed") overwritten by this one ("working"). */
	if (op->answers != NULL && status == MCPD_OK)
		publish(op->m, op->hid, op->answers);
	if (c != NULL) {
		c->op = NULL;
		if (status != MCPD_OK && status != MCPD_NOT_FOUND) {
			log_warn("task %.8s…: the record could not be stored: %s", op->id, err ? err : "storage error");
			call_error(c, JSONRPC_INTERNAL_ERROR, "Task storage is unavailable; try again later");
		} else {
			call_result(c, cJSON_CreateObject());
		}
	}
	op_free(op);
}

static void
unknown_task(struct call *c, const char *id)
{
	cJSON *data = cJSON_CreateObject();
	cJSON_AddStringToObject(data, "taskId", id);
	call_error_data(c, JSONRPC_INVALID_PARAMS, "Invalid params: unknown task", data);
}

static void
got(void *arg, int status, const void *value, size_t len, const char *err)
{
	struct task_op *op = arg;
	struct call *c = op->c;
	if (c == NULL) {
		op_free(op);
		return;
	}
	if (status == MCPD_ERROR) {
		c->op = NULL;
		log_warn("task %.8s…: storage: %s", op->id, err ? err : "error");
		call_error(c, JSONRPC_INTERNAL_ERROR, "Task storage is unavailable; try again later");
		op_free(op);
		return;
	}
	cJSON *rec = status == MCPD_OK ? json_parse(value, len, 0, NULL) : NULL;
	const cJSON *owner = cJSON_GetObjectItemCaseSensitive(rec, "owner");
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(rec, "status");
	if (!cJSON_IsString(owner) || !cJSON_IsString(st) || strcmp(owner->valuestring, op->owner) != 0) {
		c->op = NULL;
		cJSON_Delete(rec);
		unknown_task(c, op->id);
		op_free(op);
		return;
	}
	/* Not finished and not renewed: its worker or instance went away. */
	const cJSON *alive = cJSON_GetObjectItemCaseSensitive(rec, "aliveUntil");
	if (!terminal(st->valuestring) && cJSON_IsNumber(alive) && (uint64_t)alive->valuedouble < wall_ms()) {
		log_warn("task %.8s…: the worker running it stopped; marked failed", op->id);
		set_string(rec, "status", "failed");
		cJSON_DeleteItemFromObjectCaseSensitive(rec, "aliveUntil");
		cJSON_DeleteItemFromObjectCaseSensitive(rec, "inputRequests");
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "code", JSONRPC_INTERNAL_ERROR);
		cJSON_AddStringToObject(e, "message", "the worker or instance running the task stopped");
		cJSON_DeleteItemFromObjectCaseSensitive(rec, "error");
		cJSON_AddItemToObject(rec, "error", e);
		rewrite(c->m, op->hid, rec, NULL, NULL);
		st = cJSON_GetObjectItemCaseSensitive(rec, "status");
	}
	if (op->kind == OP_GET) {
		c->op = NULL;
		call_result(c, task_detailed(rec, op->id, 0));
		cJSON_Delete(rec);
		op_free(op);
		return;
	}
	if (op->kind == OP_CANCEL) {
		if (terminal(st->valuestring)) {
			c->op = NULL;
			call_result(c, cJSON_CreateObject());
			cJSON_Delete(rec);
			op_free(op);
			return;
		}
		mark_cancelled(c->m, op->hid, rec);
		cJSON *msg = cJSON_CreateObject();
		cJSON_AddStringToObject(msg, "t", "cancel");
		publish(c->m, op->hid, msg);
		cJSON_Delete(msg);
		set_string(rec, "status", "cancelled");
		cJSON_DeleteItemFromObjectCaseSensitive(rec, "inputRequests");
		cJSON_DeleteItemFromObjectCaseSensitive(rec, "aliveUntil");
		rewrite(c->m, op->hid, rec, acked, op);
		cJSON_Delete(rec);
		return;
	}
	/* OP_UPDATE: the answers to questions still open go to the command;
	 * the rest are ignored. */
	const cJSON *ir = cJSON_GetObjectItemCaseSensitive(c->params, "inputResponses");
	cJSON *inputs = cJSON_GetObjectItemCaseSensitive(rec, "inputRequests");
	cJSON *answers = cJSON_CreateObject();
	const cJSON *a;
	cJSON_ArrayForEach(a, ir) {
		if (strcmp(st->valuestring, "input_required") != 0 ||
		    cJSON_GetObjectItemCaseSensitive(inputs, a->string) == NULL)
			continue;
		cJSON_AddItemToObject(answers, a->string, cJSON_Duplicate(a, 1));
		cJSON_DeleteItemFromObjectCaseSensitive(inputs, a->string);
	}
	if (cJSON_GetArraySize(answers) == 0) {
		c->op = NULL;
		call_result(c, cJSON_CreateObject());
		cJSON_Delete(answers);
		cJSON_Delete(rec);
		op_free(op);
		return;
	}
	op->answers = cJSON_CreateObject();
	cJSON_AddStringToObject(op->answers, "t", "answers");
	cJSON_AddItemToObject(op->answers, "r", answers);
	op->m = c->m;
	if (cJSON_GetArraySize(inputs) == 0) {
		set_string(rec, "status", "working");
		cJSON_DeleteItemFromObjectCaseSensitive(rec, "inputRequests");
	}
	rewrite(c->m, op->hid, rec, acked, op);
	cJSON_Delete(rec);
}

static void
task_method(struct call *c, enum op_kind kind)
{
	if (!client_has_extension(c, TASKS_EXTENSION)) {
		missing_tasks_capability(c, "MissingRequiredClientCapabilityError: tasks/* needs the "
		    "io.modelcontextprotocol/tasks extension in the request's client capabilities");
		return;
	}
	const char *id = param_string(c, "taskId");
	if (id == NULL || id[0] == '\0' || strlen(id) >= sizeof(((struct task_op *)0)->id)) {
		call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: \"taskId\" must be a task's id");
		return;
	}
	if (kind == OP_UPDATE) {
		const cJSON *ir = cJSON_GetObjectItemCaseSensitive(c->params, "inputResponses");
		if (!cJSON_IsObject(ir)) {
			call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: \"inputResponses\" must be an object");
			return;
		}
		const cJSON *a;
		cJSON_ArrayForEach(a, ir)
			if (!cJSON_IsObject(a)) {
				call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: inputResponses.%s must be an "
				    "object (the client's result for that request)", a->string);
				return;
			}
	}
	struct task_op *op = calloc(1, sizeof(*op));
	if (op == NULL || (op->owner = strdup(call_principal(c))) == NULL) {
		free(op);
		call_error(c, JSONRPC_INTERNAL_ERROR, "out of memory");
		return;
	}
	op->c = c;
	op->kind = kind;
	snprintf(op->id, sizeof(op->id), "%s", id);
	idhash(op->id, op->hid);
	c->op = op;
	call_go_async(c);
	char key[96];
	snprintf(key, sizeof(key), "task:%s", op->hid);
	c->m->b.storage->get(c->m->b.storage_inst, key, got, op);
}

void
m_tasks_get(struct call *c)
{
	task_method(c, OP_GET);
}

void
m_tasks_update(struct call *c)
{
	task_method(c, OP_UPDATE);
}

void
m_tasks_cancel(struct call *c)
{
	task_method(c, OP_CANCEL);
}
