/* Asking the client: what a command asks on its channel (mcpd/inputs, or
 * one request) and what a plugin tool asks (host_tool_ask). Under the
 * 2025 revisions each question is a request on the call's stream and its
 * answer goes back to the asker; under 2026-07-28 answers come with the
 * client's retry, and one not known yet ends the round: the client gets
 * inputRequests and mcpd's state sealed in requestState (MRTR). A
 * command may also announce changes (mcpd/changed, changes.c). */
#include "mcp_internal.h"
#include "metrics.h"
#include "config.h"
#include "json.h"
#include "reqstate.h"
#include "tool_exec.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A command's questions forwarded to the client and not yet answered:
 * each waits with a subscription and a timer that polls storage. */
#define MAX_QUESTIONS 64

/* Why a 2025 session's question cannot be asked under mcpd --lambda. */
#define LAMBDA_NO_ASK "the client's answer could not come back within this Lambda invocation " \
	"(it would be another invocation, which cannot run while this one waits); " \
	"the 2026-07-28 revision asks through the client's retry instead (MRTR)"

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
		const cJSON *err = json_get(only, "mcpd/error");
		if (err != NULL)
			tool_reply(c, jsonrpc_error(g->tool_id,
			    json_get(err, "code") ? json_get(err, "code")->valueint : JSONRPC_INTERNAL_ERROR,
			    cJSON_IsString(json_get(err, "message")) ?
			    json_get(err, "message")->valuestring : "the client failed the request", NULL));
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

static void plugin_ask_answered(void *arg, const cJSON *result, const cJSON *error);

int
ask_answer(struct call *c, const char *key, const cJSON *result)
{
	struct ask_group *g;
	LIST_FOREACH(g, &c->asks, link) {
		for (size_t i = 0; i < g->nitems; i++) {
			struct ask_item *it = &g->items[i];
			if (it->answered || strcmp(it->key, key) != 0)
				continue;
			it->answered = 1;
			item_answered(it, result, NULL);
			return 1;
		}
	}
	struct plugin_ask *pa;
	LIST_FOREACH(pa, &c->plugin_asks, link) {
		if (pa->key == NULL || strcmp(pa->key, key) != 0)
			continue;
		c->questions--;
		plugin_ask_answered(pa, result, NULL);
		return 1;
	}
	return 0;
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
		const cJSON *method = json_get(rq, "method");
		const cJSON *params = json_get(rq, "params");
		const char *cap = cJSON_IsString(method) ? ask_capability(method->valuestring) : NULL;
		const char *why = NULL;
		char buf[128];
		if (cap == NULL) {
			why = "mcpd forwards only elicitation/create, sampling/createMessage and roots/list";
		} else if (!client_has(c, cap)) {
			snprintf(buf, sizeof(buf), "the client did not declare the %s capability", cap);
			why = buf;
		} else if (!c->stateless && c->m->lambda) {
			why = LAMBDA_NO_ASK;
		}
		if (why != NULL) {
			cJSON *e = cJSON_CreateObject();
			cJSON *err = cJSON_AddObjectToObject(e, "mcpd/error");
			cJSON_AddNumberToObject(err, "code", JSONRPC_METHOD_NOT_FOUND);
			cJSON_AddStringToObject(err, "message", why);
			cJSON_AddItemToObject(g->results, rq->string, e);
			continue;
		}
		if (call_is_task(c)) {
			/* A task waits: its questions are in its record until a
			 * tasks/update answers them (ask_answer). */
			const cJSON *known = json_get(c->answers, rq->string);
			if (known != NULL) {
				cJSON_AddItemToObject(g->results, rq->string, cJSON_Duplicate(known, 1));
				continue;
			}
			if (task_asking(c, rq->string)) {
				cJSON *e = cJSON_CreateObject();
				cJSON *err = cJSON_AddObjectToObject(e, "mcpd/error");
				cJSON_AddNumberToObject(err, "code", JSONRPC_INVALID_REQUEST);
				cJSON_AddStringToObject(err, "message", "a question with this key is waiting already");
				cJSON_AddItemToObject(g->results, rq->string, e);
				continue;
			}
			task_ask(c, rq->string, method->valuestring, params);
			struct ask_item *it = &g->items[g->nitems++];
			it->g = g;
			it->key = strdup(rq->string);
			g->remaining++;
			continue;
		}
		if (c->stateless) {
			const cJSON *known = json_get(c->answers, rq->string);
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
	if (call_is_task(c)) {
		c->questions += g->remaining;
		task_input_required(c);
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
		const cJSON *q = json_get(requests, g->items[i].key);
		const cJSON *params = json_get(q, "params");
		session_request(c->s, json_get(q, "method")->valuestring,
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

/* A tool announcing changes in a loop would have every worker of every
 * instance tell every stream about each: so many at once, then so many a
 * second, per call (in thousandths of an announcement). */
#define CHANGED_BURST 20
#define CHANGED_PER_SECOND 10

static int
changed_allowed(struct call *c)
{
	uint64_t now = monotonic_ms(), full = (uint64_t)CHANGED_BURST * 1000;
	if (c->changed_at == 0)
		c->changed_credit = full;
	else
		c->changed_credit += (now - c->changed_at) * CHANGED_PER_SECOND;
	if (c->changed_credit > full)
		c->changed_credit = full;
	c->changed_at = now;
	if (c->changed_credit < 1000)
		return 0;
	c->changed_credit -= 1000;
	return 1;
}

void
tool_request(struct call *c, const cJSON *msg, const char *method)
{
	const cJSON *id = json_get(msg, "id");
	const cJSON *params = json_get(msg, "params");
	if (strcmp(method, "mcpd/inputs") == 0) {
		const cJSON *requests = json_get(params, "requests");
		if (!cJSON_IsObject(requests) || cJSON_GetArraySize(requests) == 0) {
			reply_to_tool_error(c, id, JSONRPC_INVALID_PARAMS, "mcpd/inputs needs params.requests: {key: {method, params}}");
			return;
		}
		ask_start(c, id, requests, NULL);
		return;
	}
	if (strcmp(method, "mcpd/changed") == 0) {
		const cJSON *what = json_get(params, "what");
		const cJSON *uri = json_get(params, "uri");
		const char *w = cJSON_IsString(what) ? what->valuestring : "";
		if (strcmp(w, "tools") != 0 && strcmp(w, "prompts") != 0 && strcmp(w, "resources") != 0 &&
		    !(strcmp(w, "resource") == 0 && cJSON_IsString(uri))) {
			reply_to_tool_error(c, id, JSONRPC_INVALID_PARAMS, "changed: tools, prompts, resources, or resource URI");
			return;
		}
		char why[160];
		if (cJSON_IsString(uri) && strlen(uri->valuestring) > SESSION_CHANGE_URI_MAX) {
			snprintf(why, sizeof(why), "changed: the URI is longer than %d bytes", SESSION_CHANGE_URI_MAX);
			reply_to_tool_error(c, id, JSONRPC_INVALID_PARAMS, why);
			return;
		}
		if (!changed_allowed(c)) {
			snprintf(why, sizeof(why), "changed: more than %d at once and %d a second after from one "
			    "call; announce once after a batch of changes", CHANGED_BURST, CHANGED_PER_SECOND);
			reply_to_tool_error(c, id, JSONRPC_INVALID_REQUEST, why);
			return;
		}
		if (broadcast(c->m, strcmp(w, "resource") == 0 ? "updated" : w,
		    cJSON_IsString(uri) ? uri->valuestring : NULL) < 0) {
			reply_to_tool_error(c, id, JSONRPC_INTERNAL_ERROR, "changed: could not be sent");
			return;
		}
		tool_reply(c, jsonrpc_result(id, cJSON_CreateObject()));
		return;
	}
	char key[96];
	const cJSON *k = json_get(msg, "key");
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

/* What binds a requestState to its request's arguments: a print and a
 * hash, so taken only when a state is checked or sealed, not on every
 * stateless call (mrtr_begin). */
static const char *
bind_digest(struct call *c)
{
	if (c->bind_digest[0] == '\0')
		json_digest(c->bind, c->bind_digest);
	return c->bind_digest;
}

/* Close the round: the command is stopped and the client gets the
 * questions, with mcpd's state sealed in requestState. */
void
mrtr_end_round(struct call *c)
{
	metrics_mrtr_round();
	c->mx_tool_done = 1;    /* a round, not an outcome of the tool */
	if (c->run != NULL) {
		tool_run_abandon(c->run);
		c->run = NULL;
	}
	cJSON *payload = cJSON_CreateObject();
	cJSON_AddStringToObject(payload, "m", c->method);
	cJSON_AddStringToObject(payload, "n", c->bind_name ? c->bind_name : "");
	cJSON_AddStringToObject(payload, "h", bind_digest(c));
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
int
mrtr_begin(struct call *c, const char *name, const cJSON *bound)
{
	/* The tool's or prompt's name (the config outlives its calls) or
	 * the URI in params: no copy. */
	c->bind_name = name;
	/* The arguments are a part of the call's params, which live as long
	 * as the call, or an object with no members (t_tools.c's own, gone
	 * after the handler): its digest, that of {}, is the same for all. */
	static char no_members[65];
	c->bind = NULL;
	c->bind_digest[0] = '\0';
	if (cJSON_IsObject(bound) && bound->child == NULL) {
		if (no_members[0] == '\0')
			json_digest(bound, no_members);
		memcpy(c->bind_digest, no_members, sizeof(no_members));
	} else
		c->bind = bound;
	cJSON_Delete(c->answers);
	c->answers = NULL;      /* made when there are answers */
	const cJSON *state = json_get(c->params, "requestState");
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
		const cJSON *pm = json_get(p, "m");
		const cJSON *pn = json_get(p, "n");
		const cJSON *ph = json_get(p, "h");
		if (!cJSON_IsString(pm) || !cJSON_IsString(pn) || !cJSON_IsString(ph) ||
		    strcmp(pm->valuestring, c->method) != 0 || strcmp(pn->valuestring, name) != 0 ||
		    strcmp(ph->valuestring, bind_digest(c)) != 0) {
			cJSON_Delete(p);
			call_error(c, JSONRPC_INVALID_PARAMS, "requestState belongs to another request");
			return -1;
		}
		cJSON *a = cJSON_DetachItemFromObjectCaseSensitive(p, "a");
		cJSON_Delete(p);
		if (cJSON_IsObject(a)) {
			c->answers = a;
		} else {
			cJSON_Delete(a);
		}
	}
	const cJSON *ir = json_get(c->params, "inputResponses");
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
			if (c->answers == NULL)
				c->answers = cJSON_CreateObject();
			cJSON_DeleteItemFromObjectCaseSensitive(c->answers, r->string);
			cJSON_AddItemToObject(c->answers, r->string, cJSON_Duplicate(r, 1));
		}
	}
	return 0;
}

static void
plugin_ask_answered(void *arg, const cJSON *result, const cJSON *error)
{
	struct plugin_ask *pa = arg;
	LIST_REMOVE(pa, link);
	char *json = result ? json_print(result) : NULL;
	const cJSON *msg = json_get(error, "message");
	pa->done(pa->arg, error ? NULL : (json ? json : "{}"),
	    error ? (cJSON_IsString(msg) ? msg->valuestring : "the client failed the request") : NULL);
	free(json);
	free(pa->key);
	free(pa);
}

void
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
	/* Answered already: by the retry (MRTR), or a task's earlier round. */
	const cJSON *known = c->stateless ? json_get(c->answers, key) : NULL;
	if (known != NULL) {
		cJSON_Delete(params);
		char *json = json_print(known);
		done(arg, json, NULL);
		free(json);
		return;
	}
	if (call_is_task(c)) {
		/* A task's questions wait in its record (input_required) until
		 * a tasks/update, on any worker, answers them (ask_answer). */
		const char *refused = NULL;
		if (task_asking(c, key))
			refused = "a question with this key is waiting already";
		else if (c->questions + 1 > MAX_QUESTIONS)
			refused = "too many questions waiting for the client's answers";
		struct plugin_ask *pa = refused ? NULL : calloc(1, sizeof(*pa));
		if (pa != NULL && (pa->key = strdup(key)) == NULL) {
			free(pa);
			pa = NULL;
		}
		if (pa == NULL) {
			cJSON_Delete(params);
			done(arg, NULL, refused ? refused : "out of memory");
			return;
		}
		pa->c = c;
		pa->done = done;
		pa->arg = arg;
		LIST_INSERT_HEAD(&c->plugin_asks, pa, link);
		task_ask(c, key, method, params);
		cJSON_Delete(params);
		c->questions++;
		task_input_required(c);
		return;
	}
	if (c->stateless) {
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
	if (c->m->lambda) {
		cJSON_Delete(params);
		done(arg, NULL, LAMBDA_NO_ASK);
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
