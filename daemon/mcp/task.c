/* A task (the io.modelcontextprotocol/tasks extension, SEP-2663): a
 * tools/call answered at once with the task while the tool's command
 * runs on where it started. Its record lives in storage, so that any
 * worker of any instance answers tasks/get, tasks/update and
 * tasks/cancel (t_tasks.c); what must reach the command (a cancellation,
 * the client's answers) comes back through the transport.
 *
 * storage  task:<hid>      the record (JSON), kept ttlMs from creation
 *          task:<hid>:cancel  a tasks/cancel's mark (t_tasks.c), as long
 *                          (read at each renewal: the message may be
 *                          lost, the record's "cancelled" overwritten)
 *          tasks:<owner>   index of a principal's tasks (limits.max_tasks),
 *                          its members the tasks' <hid>
 * channel  task:<hid>      {"t":"cancel"} and {"t":"answers","r":{...}},
 *                          heard by the worker that runs the command
 *
 * A task's id is what its client presents to tasks/get, tasks/update and
 * tasks/cancel: a credential. Keys, channels and what is stored name it
 * by its keyed hash <hid> (lib/idhash.c), as sessions are; the record
 * does not hold the id (whoever reads it came with the id).
 *
 * Only that worker writes the record while the task lives, and renews
 * aliveUntil as it goes: a record whose aliveUntil passed while it was
 * not finished belongs to a worker or instance that died, and is read
 * as failed (t_tasks.c). A task's call starts as a plain call; with
 * task_after it stays one that long, so that a tool that finishes or
 * asks at once is answered directly (or with input_required, MRTR). */
#include "mcp_internal.h"
#include "mcp.h"
#include "auth.h"
#include "config.h"
#include "content.h"
#include "defs.h"
#include "idhash.h"
#include "json.h"
#include "log.h"
#include "plugin.h"
#include "tool_exec.h"
#include "util.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

enum phase { PH_WINDOW, PH_CREATING, PH_LIVE };

struct task {
	struct mcp *m;
	struct call *c;             /* the call running the command; NULL once gone */
	enum phase phase;
	char id[48];
	char hid[IDHASH_LEN + 1];   /* idhash(id): its name in keys and channels */
	char *owner, *tool;
	uint64_t created_ms, updated_ms, ttl_ms;
	int status;                 /* enum task_status */
	char *message;              /* statusMessage */
	cJSON *inputs;              /* inputRequests while input_required */
	cJSON *result, *error;
	int create_failed;
	int cancel;                 /* a tasks/cancel arrived */
	int writing, dirty;         /* a record write in flight; another wanted */
	int ops;                    /* storage operations in flight */
	int done;                   /* terminal: freed after its last write */
	int holds;                  /* functions using it now (storage may answer at once) */
	int notify;                 /* the next write is a change listeners hear of */
	void *sub;                  /* task:<hid> */
	struct event *after, *renew;
	int renewed;                /* renew ran once: it runs at lease/3 now */
	struct trace_ctx trace;     /* its tools/call's span */
};

/* The task's storage and transport calls are children of its call's
 * span, wherever they start: a timer, another request (tasks/cancel), a
 * storage callback of its own. */
static void
span_enter(const struct task *tk, struct trace_ctx *saved)
{
	tracing_push(tk->trace.trace_id[0] ? &tk->trace : NULL, saved);
}

const char *const task_status_names[] = {
	"working", "input_required", "completed", "failed", "cancelled",
};

void
iso_time(uint64_t ms, char out[32])
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03uZ", (unsigned)(ms % 1000));
}

int
client_has_extension(const struct call *c, const char *ext)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(c->client_caps, "extensions");
	return cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(e, ext));
}

const char *
call_principal(const struct call *c)
{
	const struct principal *p = c->req != NULL ? auth_principal(c->req) : NULL;
	return p != NULL && p->user != NULL ? p->user : "";
}

void
missing_tasks_capability(struct call *c, const char *why)
{
	cJSON *data = cJSON_CreateObject();
	cJSON *rc = cJSON_AddObjectToObject(data, "requiredCapabilities");
	cJSON *ext = cJSON_AddObjectToObject(rc, "extensions");
	cJSON_AddObjectToObject(ext, TASKS_EXTENSION);
	call_error_data(c, -32021, why, data);
}

int
task_wanted(struct call *c, const struct tool_def *t)
{
	if (!c->stateless || t->task == TASK_NEVER)
		return 0;
	/* Lambda freezes the environment once an invocation is answered:
	 * a task's command would stop there, its lease run out. */
	if (c->m->lambda && t->task == TASK_MAY)
		return 0;
	if (c->m->lambda) {
		call_error(c, JSONRPC_INVALID_REQUEST, "this tool runs only as a task, and tasks do not run "
		    "under mcpd --lambda (the environment is frozen between invocations)");
		return -1;
	}
	if (client_has_extension(c, TASKS_EXTENSION))
		return 1;
	if (t->task == TASK_MAY)
		return 0;
	missing_tasks_capability(c, "MissingRequiredClientCapabilityError: this tool runs only as a task: "
	    "declare the io.modelcontextprotocol/tasks extension in the request's client capabilities");
	return -1;
}

int
call_is_task(const struct call *c)
{
	return c->task != NULL && c->task->phase != PH_WINDOW;
}

/* ---- the record ---- */

/* The fields a client sees of a task (SEP-2663's Task). */
static void
add_task_fields(cJSON *o, const struct task *tk, int with_id)
{
	char created[32], updated[32];
	iso_time(tk->created_ms, created);
	iso_time(tk->updated_ms, updated);
	if (with_id)
		cJSON_AddStringToObject(o, "taskId", tk->id);
	cJSON_AddStringToObject(o, "status", task_status_names[tk->status]);
	if (tk->message != NULL)
		cJSON_AddStringToObject(o, "statusMessage", tk->message);
	cJSON_AddStringToObject(o, "createdAt", created);
	cJSON_AddStringToObject(o, "lastUpdatedAt", updated);
	cJSON_AddNumberToObject(o, "ttlMs", (double)tk->ttl_ms);
	cJSON_AddNumberToObject(o, "pollIntervalMs", TASK_POLL_MS);
}

static char *
record_json(const struct task *tk)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "v", 1);
	cJSON_AddStringToObject(o, "owner", tk->owner);
	cJSON_AddStringToObject(o, "tool", tk->tool);
	add_task_fields(o, tk, 0);
	cJSON_AddNumberToObject(o, "createdMs", (double)tk->created_ms);
	if (!tk->done)
		cJSON_AddNumberToObject(o, "aliveUntil", (double)(wall_ms() + tk->m->cfg->limits.task_lease_ms));
	if (tk->status == TS_INPUT_REQUIRED && tk->inputs != NULL)
		cJSON_AddItemToObject(o, "inputRequests", cJSON_Duplicate(tk->inputs, 1));
	if (tk->status == TS_COMPLETED && tk->result != NULL)
		cJSON_AddItemToObject(o, "result", cJSON_Duplicate(tk->result, 1));
	if (tk->status == TS_FAILED && tk->error != NULL)
		cJSON_AddItemToObject(o, "error", cJSON_Duplicate(tk->error, 1));
	char *json = json_print(o);
	cJSON_Delete(o);
	return json;
}

/* What is left of the task's time to live, in ms (0: expired). */
static uint64_t
ttl_left(const struct task *tk)
{
	uint64_t end = tk->created_ms + tk->ttl_ms, now = wall_ms();
	return end > now ? end - now : 0;
}

static void task_save(struct task *tk);
static void create_answered(struct task *tk, int ok, const char *why);

static void
task_free(struct task *tk)
{
	if (tk->sub != NULL && tk->m->b.transport != NULL)
		tk->m->b.transport->unsubscribe(tk->m->b.transport_inst, tk->sub);
	if (tk->after != NULL)
		event_free(tk->after);
	if (tk->renew != NULL)
		event_free(tk->renew);
	free(tk->owner);
	free(tk->tool);
	free(tk->message);
	cJSON_Delete(tk->inputs);
	cJSON_Delete(tk->result);
	cJSON_Delete(tk->error);
	free(tk);
}

/* A finished task whose call is gone goes once storage is done with it
 * and nothing on the stack uses it: each entry point holds it, as a
 * storage callback may run before the operation returns. */
static void
hold(struct task *tk)
{
	tk->holds++;
}

static void
release(struct task *tk)
{
	if (--tk->holds == 0 && tk->c == NULL && tk->ops == 0 &&
	    (tk->done || tk->phase == PH_WINDOW || tk->create_failed))
		task_free(tk);
}

static void
saved(void *arg, int status, const char *err)
{
	struct task *tk = arg;
	hold(tk);
	tk->ops--;
	tk->writing = 0;
	if (tk->phase == PH_CREATING)
		create_answered(tk, status == MCPD_OK, err);
	else if (status != MCPD_OK)
		log_warn("task %.8s…: the record could not be stored: %s", tk->id, err ? err : "storage error");
	if (tk->dirty && !tk->create_failed) {
		tk->dirty = 0;
		task_save(tk);
	}
	release(tk);
}

/* Store the record as the task is now. Writes never overlap: one in
 * flight, and the latest state once it returns. */
static void
task_save(struct task *tk)
{
	if (tk->writing) {
		tk->dirty = 1;
		return;
	}
	uint64_t ttl = ttl_left(tk);
	if (ttl == 0 && tk->phase == PH_LIVE)
		return;         /* expired: the client no longer asks for it */
	char *rec = record_json(tk);
	if (rec == NULL)
		return;
	struct trace_ctx was;
	span_enter(tk, &was);
	if (tk->notify) {
		tk->notify = 0;
		cJSON *r = json_parse(rec, strlen(rec), 0, NULL);
		if (r != NULL)
			tasks_publish(tk->m, tk->hid, r);
		cJSON_Delete(r);
	}
	char key[96];
	snprintf(key, sizeof(key), "task:%s", tk->hid);
	tk->updated_ms = tk->updated_ms ? tk->updated_ms : tk->created_ms;
	tk->writing = 1;
	tk->ops++;
	tk->m->b.storage->set(tk->m->b.storage_inst, key, rec, strlen(rec), ttl ? ttl : 1, 0, saved, tk);
	tracing_pop(&was);
	free(rec);
}

/* The task changed: stored now, or, while it is being created, right
 * after the record that creates it (which the client hears of first). */
static void
changed(struct task *tk)
{
	tk->notify = 1;
	if (tk->phase == PH_LIVE)
		task_save(tk);
	else if (tk->phase == PH_CREATING)
		tk->dirty = 1;
}

static void
set_status(struct task *tk, int status)
{
	tk->status = status;
	tk->updated_ms = wall_ms();
}

/* ---- creation ---- */

static cJSON *
create_result(const struct task *tk)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "resultType", "task");
	add_task_fields(o, tk, 1);
	return o;
}

static void cancel_here(struct task *tk);

/* The record as stored, before it is renewed: a cancellation whose
 * message was lost (the transport was down) is found there, when it was
 * not overwritten meanwhile (cancel_marked reads the marker first). */
static void
renew_read(void *arg, int status, const void *value, size_t len, const char *err)
{
	(void)err;
	struct task *tk = arg;
	hold(tk);
	tk->ops--;
	cJSON *rec = status == MCPD_OK ? json_parse(value, len, 0, NULL) : NULL;
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(rec, "status");
	if (cJSON_IsString(st) && strcmp(st->valuestring, "cancelled") == 0)
		cancel_here(tk);
	else if (!tk->done)
		task_save(tk);
	cJSON_Delete(rec);
	release(tk);
}

/* Renewed three times a lease: one late write is no death. The first
 * renewal comes sooner: the subscription to task:<hid> is made as the task
 * is created, and a transport makes it active a moment later (the master's
 * relay, a SUBSCRIBE to Redis): a tasks/cancel sent on another worker right
 * after the answer may be published before, and is then found only in the
 * record that renewal reads. */
static struct timeval
renew_interval(const struct task *tk, int first)
{
	uint64_t ms = tk->m->cfg->limits.task_lease_ms / 3;
	if (first && ms > 1000)
		ms = 1000;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	return tv;
}

/* Reads task:<hid><suffix> for cb, as a child of the task's span. */
static void
read_key(struct task *tk, const char *suffix, mcpd_value_cb *cb)
{
	char key[112];
	snprintf(key, sizeof(key), "task:%s%s", tk->hid, suffix);
	struct trace_ctx was;
	span_enter(tk, &was);
	tk->ops++;
	tk->m->b.storage->get(tk->m->b.storage_inst, key, cb, tk);
	tracing_pop(&was);
}

/* task:<hid>:cancel (t_tasks.c): a tasks/cancel's mark that no write
 * of the record removes. Absent: the record is read as before (and a
 * cancellation by an instance that writes no mark is found there). */
static void
cancel_marked(void *arg, int status, const void *value, size_t len, const char *err)
{
	(void)value;
	(void)len;
	(void)err;
	struct task *tk = arg;
	hold(tk);
	tk->ops--;
	if (status == MCPD_OK) {
		cancel_here(tk);
	} else if (!tk->done && !tk->writing) {
		read_key(tk, "", renew_read);
	}
	release(tk);
}

static void
renew(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct task *tk = arg;
	if (!tk->renewed) {
		tk->renewed = 1;
		struct timeval tv = renew_interval(tk, 0);
		event_add(tk->renew, &tv);
	}
	if (tk->done || tk->writing)
		return;
	read_key(tk, ":cancel", cancel_marked);
}

/* The command's process could not become a task: the client gets the
 * error, the command is stopped. */
static void
create_fail(struct task *tk, int code, const char *why)
{
	struct call *c = tk->c;
	tk->create_failed = 1;
	if (c == NULL)
		return;
	log_warn("task for tool %s not created: %s", tk->tool, why);
	call_send_final(c, jsonrpc_error(c->msg.id, code, why, NULL));
	if (c->run != NULL && !tk->done) {
		c->cancelled = 1;
		tool_run_cancel(c->run);    /* task_tool_done frees the call */
		return;
	}
	if (c->in_plugin && !tk->done) {
		plugin_cancel(c);           /* the plugin finishes it: task_plugin_done */
		return;
	}
	tk->c = NULL;
	c->task = NULL;
	call_free(c);
}

static void
create_answered(struct task *tk, int ok, const char *why)
{
	if (!ok) {
		create_fail(tk, JSONRPC_INTERNAL_ERROR, why ? why : "the task could not be stored");
		return;
	}
	tk->phase = PH_LIVE;
	if (tk->m->b.storage->index_add != NULL) {
		char index[600];
		snprintf(index, sizeof(index), "tasks:%s", tk->owner);
		struct trace_ctx was;
		span_enter(tk, &was);
		tk->m->b.storage->index_add(tk->m->b.storage_inst, index, tk->hid, tk->ttl_ms, NULL, NULL);
		tracing_pop(&was);
	}
	if (!tk->done) {
		tk->renew = event_new(tk->m->base, -1, EV_PERSIST, renew, tk);
		struct timeval tv = renew_interval(tk, 1);
		if (tk->renew != NULL)
			event_add(tk->renew, &tv);
	}
	log_info("task %.8s… of tool %s created", tk->id, tk->tool);
	if (tk->c != NULL) {
		struct call *c = tk->c;
		cJSON *res = create_result(tk);
		call_send_final(c, jsonrpc_result(c->msg.id, res));
		/* Its command finished meanwhile: the call is done with. */
		if (tk->done) {
			tk->c = NULL;
			c->task = NULL;
			call_free(c);
		}
	}
}

static void
counted(void *arg, int status, const char *const *members, size_t n, const char *err)
{
	(void)members;
	struct task *tk = arg;
	hold(tk);
	tk->ops--;
	if (tk->c == NULL) {
		tk->create_failed = 1;
	} else if (status == MCPD_OK && n >= tk->m->cfg->limits.max_tasks) {
		char why[200];
		snprintf(why, sizeof(why), "Too many tasks: at most %llu are kept for each user (limits.max_tasks); "
		    "let some finish and expire", (unsigned long long)tk->m->cfg->limits.max_tasks);
		create_fail(tk, -32000, why);
	} else {
		if (status != MCPD_OK && status != MCPD_NOT_FOUND)
			log_warn("tasks of a user could not be counted: %s", err ? err : "storage error");
		task_save(tk);
	}
	release(tk);
}

static void heard(void *arg, const char *channel, const void *msg, size_t len);

/* The call becomes a task: stored first (a tasks/get right after the
 * answer finds it), then the client is answered. */
static void
task_create(struct task *tk)
{
	tk->phase = PH_CREATING;
	tk->notify = 1;
	tk->created_ms = tk->updated_ms = wall_ms();
	char channel[96];
	snprintf(channel, sizeof(channel), "task:%s", tk->hid);
	if (tk->m->b.transport != NULL)
		tk->sub = tk->m->b.transport->subscribe(tk->m->b.transport_inst, channel, heard, tk);
	if (tk->m->b.storage->index_members != NULL) {
		char index[600];
		snprintf(index, sizeof(index), "tasks:%s", tk->owner);
		struct trace_ctx was;
		span_enter(tk, &was);
		tk->ops++;
		tk->m->b.storage->index_members(tk->m->b.storage_inst, index, counted, tk);
		tracing_pop(&was);
		return;
	}
	task_save(tk);
}

static void
after_elapsed(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct task *tk = arg;
	hold(tk);
	if (tk->c != NULL && (tk->c->run != NULL || tk->c->in_plugin) && !tk->c->cancelled)
		task_create(tk);
	release(tk);
}

int
task_begin(struct call *c)
{
	struct task *tk = calloc(1, sizeof(*tk));
	if (tk == NULL || random_token(tk->id, 24) < 0 ||
	    (tk->owner = strdup(call_principal(c))) == NULL || (tk->tool = strdup(c->tool->name)) == NULL) {
		if (tk != NULL) {
			free(tk->owner);
			free(tk);
		}
		return -1;
	}
	idhash(tk->id, tk->hid);
	tk->m = c->m;
	tk->c = c;
	tk->trace = c->trace;
	tk->ttl_ms = c->tool->task_ttl_ms;
	tk->status = TS_WORKING;
	c->task = tk;
	hold(tk);
	uint64_t after = c->tool->task_after_ms;
	if (after > 0 && (tk->after = evtimer_new(c->m->base, after_elapsed, tk)) != NULL) {
		struct timeval tv = { (time_t)(after / 1000), (suseconds_t)(after % 1000) * 1000 };
		evtimer_add(tk->after, &tv);
	} else {
		task_create(tk);
	}
	release(tk);
	return 0;
}

/* ---- while it runs ---- */

void
task_note(struct call *c, const char *text)
{
	struct task *tk = c->task;
	if (tk == NULL || tk->done || text == NULL)
		return;
	hold(tk);
	free(tk->message);
	tk->message = strndup(text, 1024);
	tk->updated_ms = wall_ms();
	changed(tk);
	release(tk);
}

int
task_asking(const struct call *c, const char *key)
{
	const struct task *tk = c->task;
	return tk != NULL && cJSON_GetObjectItemCaseSensitive(tk->inputs, key) != NULL;
}

void
task_ask(struct call *c, const char *key, const char *method, const cJSON *params)
{
	struct task *tk = c->task;
	if (tk->inputs == NULL)
		tk->inputs = cJSON_CreateObject();
	cJSON *q = cJSON_CreateObject();
	cJSON_AddStringToObject(q, "method", method);
	cJSON_AddItemToObject(q, "params", params ? cJSON_Duplicate(params, 1) : cJSON_CreateObject());
	cJSON_AddItemToObject(tk->inputs, key, q);
}

void
task_input_required(struct call *c)
{
	struct task *tk = c->task;
	if (tk->inputs == NULL || cJSON_GetArraySize(tk->inputs) == 0)
		return;
	hold(tk);
	set_status(tk, TS_INPUT_REQUIRED);
	changed(tk);
	release(tk);
}

/* Answers a tasks/update took in, sent here by whichever worker: each to
 * the question waiting for it. */
static void
answers_heard(struct task *tk, const cJSON *r)
{
	if (tk->c == NULL || tk->done || !cJSON_IsObject(r))
		return;
	int any = 0;
	const cJSON *a;
	cJSON_ArrayForEach(a, r) {
		if (cJSON_GetObjectItemCaseSensitive(tk->inputs, a->string) == NULL)
			continue;
		cJSON_DeleteItemFromObjectCaseSensitive(tk->inputs, a->string);
		any = 1;
		if (tk->c == NULL)
			break;
		ask_answer(tk->c, a->string, a);
	}
	if (!any || tk->done)
		return;
	if (cJSON_GetArraySize(tk->inputs) == 0 && tk->status == TS_INPUT_REQUIRED)
		set_status(tk, TS_WORKING);
	else
		tk->updated_ms = wall_ms();
	task_save(tk);
}

static void
cancel_here(struct task *tk)
{
	if (tk->c == NULL || tk->done || tk->cancel)
		return;
	tk->cancel = 1;
	log_info("task %.8s… of tool %s: cancelled by the client", tk->id, tk->tool);
	if (tk->c->in_plugin) {
		plugin_cancel(tk->c);       /* it stays until the plugin finishes it */
		return;
	}
	tk->c->cancelled = 1;
	if (tk->c->run != NULL)
		tool_run_cancel(tk->c->run);
}

static void
heard(void *arg, const char *channel, const void *msg, size_t len)
{
	(void)channel;
	struct task *tk = arg;
	hold(tk);
	cJSON *m = json_parse(msg, len, 0, NULL);
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(m, "t");
	if (cJSON_IsString(t) && strcmp(t->valuestring, "cancel") == 0) {
		cancel_here(tk);
	} else if (cJSON_IsString(t) && strcmp(t->valuestring, "answers") == 0) {
		answers_heard(tk, cJSON_GetObjectItemCaseSensitive(m, "r"));
	}
	cJSON_Delete(m);
	release(tk);
}

/* ---- the end ---- */

static void
fail_with(struct task *tk, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
fail_with(struct task *tk, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON_Delete(tk->error);
	tk->error = cJSON_CreateObject();
	cJSON_AddNumberToObject(tk->error, "code", JSONRPC_INTERNAL_ERROR);
	cJSON_AddStringToObject(tk->error, "message", msg);
	set_status(tk, TS_FAILED);
}

static void
finish(struct task *tk)
{
	tk->done = 1;
	cJSON_Delete(tk->inputs);
	tk->inputs = NULL;
	if (tk->renew != NULL) {
		event_free(tk->renew);
		tk->renew = NULL;
	}
	log_info("task %.8s… of tool %s %s", tk->id, tk->tool, task_status_names[tk->status]);
	changed(tk);
}

/* The call's tool ended with res (taken), or failed as fail_with said:
 * the outcome is stored, the call freed. */
static void
task_end(struct call *c, cJSON *res)
{
	struct task *tk = c->task;
	if (tk->create_failed) {
		cJSON_Delete(res);
		tk->c = NULL;
		c->task = NULL;
		call_free(c);
		return;
	}
	if (tk->cancel || c->cancelled) {
		set_status(tk, TS_CANCELLED);
	} else if (res != NULL) {
		char *json = json_print(res);
		size_t n = json ? strlen(json) : 0;
		free(json);
		if (n > c->m->cfg->limits.task_result) {
			fail_with(tk, "the result of tool %s is %zu bytes, more than limits.task_result (%llu)",
			    tk->tool, n, (unsigned long long)c->m->cfg->limits.task_result);
		} else {
			cJSON_Delete(tk->result);
			tk->result = res;
			res = NULL;
			set_status(tk, TS_COMPLETED);
		}
	} else if (tk->status != TS_FAILED) {
		fail_with(tk, "tool %s: out of memory", tk->tool);
	}
	cJSON_Delete(res);
	finish(tk);
	/* Before the client has its answer (the record that creates the
	 * task is still being stored), the call stays for it. */
	if (tk->phase != PH_CREATING) {
		tk->c = NULL;
		c->task = NULL;
		call_free(c);
	}
}

/* The command ended. */
void
task_tool_done(struct call *c, struct tool_result *r)
{
	struct task *tk = c->task;
	c->run = NULL;
	hold(tk);
	cJSON *res = NULL;
	if (tk->create_failed || tk->cancel || c->cancelled)
		;
	else if (r->timed_out)
		fail_with(tk, "tool %s timed out after %.3gs", tk->tool, (double)c->tool->cmd.timeout_ms / 1000.0);
	else if (!r->exited && r->signal != 0 && !r->output_exceeded && !r->channel_exceeded)
		fail_with(tk, "tool %s was killed by signal %d%s%s", tk->tool, r->signal,
		    r->err_tail[0] ? "; stderr: " : "", r->err_tail);
	else
		res = tool_result_build(c->tool, r);
	task_end(c, res);
	release(tk);
}

/* A plugin tool finished its call (host->tool_result or tool_text) with
 * res (taken); timed_out: after its timeout, when mcpd had cancelled it. */
void
task_plugin_done(struct call *c, cJSON *res, int timed_out)
{
	struct task *tk = c->task;
	hold(tk);
	if (timed_out && !tk->cancel && !tk->create_failed) {
		fail_with(tk, "tool %s timed out after %.3gs", tk->tool, (double)c->tool->cmd.timeout_ms / 1000.0);
		c->cancelled = 0;       /* failed, not cancelled by the client */
		cJSON_Delete(res);
		res = NULL;
	}
	task_end(c, res);
	release(tk);
}

/* The call goes without its command having finished: before the task
 * exists, nothing is left; after, the worker is stopping and the task
 * fails (a network store may not hear it: then aliveUntil says it). */
void
task_call_gone(struct call *c)
{
	struct task *tk = c->task;
	c->task = NULL;
	tk->c = NULL;
	hold(tk);
	if (tk->phase != PH_WINDOW && !tk->create_failed && !tk->done) {
		fail_with(tk, "the worker running the task stopped");
		finish(tk);
	}
	release(tk);
}

unsigned
mcp_tasks_running(const struct mcp *m)
{
	unsigned n = 0;
	const struct call *c;
	LIST_FOREACH(c, &m->calls, link)
		if (call_is_task(c))
			n++;
	return n;
}
