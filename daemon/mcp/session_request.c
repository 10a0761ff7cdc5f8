/* Requests to the client (elicitation, sampling, roots): sent on a stream
 * with an id unique across workers; the answer may be posted to any
 * worker, which passes it on (toserver:) and stores it, in case the
 * message outruns the asker's subscription. */
#include "session_internal.h"
#include "json.h"
#include "jsonrpc.h"
#include "log.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An answer reaches the worker that asked over the transport; it is also
 * stored, and the asker looks there now and then, because a message can
 * outrun the subscription made just before the question went out (the
 * transport gives no order between different publishers), or be lost
 * while a pub/sub connection is redone. */
#define ANSWER_TTL_MS (10 * 60 * 1000)

#define ANSWER_POLL_FIRST_MS 20

#define ANSWER_POLL_MAX_MS 2000

static void
answer_key(char *buf, size_t len, const char *sid, const char *qid)
{
	char h[IDHASH_LEN + 1];
	snprintf(buf, len, "answer:%s:%.60s", idhash(sid, h), qid);
}

void
pending_free(struct pending_request *p)
{
	LIST_REMOVE(p, link);
	unsubscribe(p->s->table, p->sub);
	if (p->poll != NULL)
		event_free(p->poll);
	free(p);
}

/* Delivers the answer message (JSON with result or error) to the asker. */
static void
pending_answered(struct pending_request *p, const void *msg, size_t len)
{
	struct sessions *t = p->s->table;
	char key[200];
	answer_key(key, sizeof(key), p->s->id, p->id);
	t->b.storage->del(t->b.storage_inst, key, NULL, NULL);
	cJSON *m = json_parse(msg, len, 0, NULL);
	pending_cb cb = p->cb;
	void *arg = p->arg;
	pending_free(p);
	cb(arg, cJSON_GetObjectItemCaseSensitive(m, "result"), cJSON_GetObjectItemCaseSensitive(m, "error"));
	cJSON_Delete(m);
}

static void
answer_msg(void *arg, const char *channel, const void *msg, size_t len)
{
	(void)channel;
	pending_answered(arg, msg, len);
}

struct answer_probe {
	struct sessions *t;
	char sid[64];
	char qid[48];
	LIST_ENTRY(answer_probe) link;
};

void
answer_probes_forget(struct sessions *t)
{
	while (!LIST_EMPTY(&t->probes)) {
		struct answer_probe *pr = LIST_FIRST(&t->probes);
		LIST_REMOVE(pr, link);
		free(pr);
	}
}

static struct pending_request *
pending_find(struct session *s, const char *qid)
{
	struct pending_request *p;
	LIST_FOREACH(p, &s->pending, link)
		if (strcmp(p->id, qid) == 0)
			return p;
	return NULL;
}

static void
answer_probed(void *arg, int status, const void *value, size_t len, const char *err)
{
	(void)err;
	struct answer_probe *pr = arg;
	struct session *s = cache_find(pr->t, pr->sid);
	struct pending_request *p = s != NULL ? pending_find(s, pr->qid) : NULL;
	LIST_REMOVE(pr, link);
	free(pr);
	if (p == NULL)
		return;         /* answered or given up meanwhile */
	p->probing = 0;
	if (status == MCPD_OK && value != NULL) {
		log_info("session %.8s…: the answer to %s was found in storage, not received", p->s->id, p->id);
		pending_answered(p, value, len);
		return;
	}
	p->poll_ms = p->poll_ms * 2 > ANSWER_POLL_MAX_MS ? ANSWER_POLL_MAX_MS : p->poll_ms * 2;
	struct timeval tv = { p->poll_ms / 1000, (p->poll_ms % 1000) * 1000 };
	evtimer_add(p->poll, &tv);
}

static void
answer_poll_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct pending_request *p = arg;
	struct sessions *t = p->s->table;
	struct answer_probe *pr = calloc(1, sizeof(*pr));
	if (pr == NULL || p->probing) {
		free(pr);
		return;
	}
	pr->t = t;
	snprintf(pr->sid, sizeof(pr->sid), "%s", p->s->id);
	snprintf(pr->qid, sizeof(pr->qid), "%s", p->id);
	char key[200];
	answer_key(key, sizeof(key), p->s->id, p->id);
	p->probing = 1;
	LIST_INSERT_HEAD(&t->probes, pr, link);
	t->b.storage->get(t->b.storage_inst, key, answer_probed, pr);
}

void
session_request(struct session *s, const char *method, cJSON *params, struct stream *via,
    pending_cb cb, void *arg)
{
	struct sessions *t = s->table;
	struct pending_request *p = calloc(1, sizeof(*p));
	if (p == NULL) {
		cJSON_Delete(params);
		return;
	}
	/* Ids unique across workers: the answer may be posted to any of them. */
	snprintf(p->id, sizeof(p->id), "%x.%" PRIx64, t->pid, ++t->next_request);
	p->s = s;
	p->cb = cb;
	p->arg = arg;
	char ch[160];
	char h[IDHASH_LEN + 1];
	snprintf(ch, sizeof(ch), "toserver:%s:%s", idhash(s->id, h), p->id);
	p->sub = subscribe(t, ch, answer_msg, p);
	p->poll = evtimer_new(t->base, answer_poll_cb, p);
	p->poll_ms = ANSWER_POLL_FIRST_MS;
	if (p->poll != NULL) {
		struct timeval tv = { 0, ANSWER_POLL_FIRST_MS * 1000 };
		evtimer_add(p->poll, &tv);
	}
	LIST_INSERT_HEAD(&s->pending, p, link);
	cJSON *id = cJSON_CreateString(p->id);
	char *msg = jsonrpc_request(id, method, params);
	cJSON_Delete(id);
	if (msg != NULL) {
		if (via != NULL)
			stream_send(via, msg);
		else
			session_notify(s, msg);
	}
	free(msg);
}

struct answer_store {
	struct sessions *t;
	char channel[160];
	char *msg;
};

static void
answer_stored(void *arg, int status, const char *err)
{
	(void)status;
	(void)err;
	struct answer_store *as = arg;
	/* Published even if storing failed: the asker may well be listening. */
	publish(as->t, as->channel, as->msg, strlen(as->msg));
	free(as->msg);
	free(as);
}

void
session_response(struct session *s, const cJSON *id, const cJSON *result, const cJSON *error)
{
	if (!cJSON_IsString(id))
		return;
	struct pending_request *p = pending_find(s, id->valuestring);
	if (p != NULL) {
		pending_cb cb = p->cb;
		void *arg = p->arg;
		pending_free(p);
		cb(arg, result, error);
		return;
	}
	/* Awaited on another worker, maybe: store it, then pass it on. */
	cJSON *m = cJSON_CreateObject();
	if (error != NULL)
		cJSON_AddItemToObject(m, "error", cJSON_Duplicate(error, 1));
	else
		cJSON_AddItemToObject(m, "result", result ? cJSON_Duplicate(result, 1) : cJSON_CreateObject());
	char *txt = json_print(m);
	cJSON_Delete(m);
	struct answer_store *as = txt != NULL ? calloc(1, sizeof(*as)) : NULL;
	if (as == NULL) {
		free(txt);
		return;
	}
	as->t = s->table;
	as->msg = txt;
	char h[IDHASH_LEN + 1];
	snprintf(as->channel, sizeof(as->channel), "toserver:%s:%.60s", idhash(s->id, h), id->valuestring);
	char key[200];
	answer_key(key, sizeof(key), s->id, id->valuestring);
	s->table->b.storage->set(s->table->b.storage_inst, key, txt, strlen(txt), ANSWER_TTL_MS, 0,
	    answer_stored, as);
}

void
session_cancel_pending(struct session *s, void *arg)
{
	struct pending_request *p, *next;
	for (p = LIST_FIRST(&s->pending); p != NULL; p = next) {
		next = LIST_NEXT(p, link);
		if (p->arg == arg)
			pending_free(p);
	}
}
