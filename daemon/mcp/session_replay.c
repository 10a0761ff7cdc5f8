/* The GET stream and resumption (Last-Event-ID): a holder of the stream,
 * made before storage is read, replays the event log after the given
 * event and then writes what comes to it through toclient: (held while
 * the replay is read). A resumed request's stream that hears nothing of
 * its request looks in the log for its end, and answers it with an error
 * when the request is lost. */
#include "session_internal.h"
#include "http.h"
#include "json.h"
#include "jsonrpc.h"
#include "log.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPLAY_MAX 10000

struct held_msg {               /* toclient: events that came during a replay */
	uint64_t seq;
	int final;
	char *json;
	struct held_msg *next;
};

void
held_free(struct stream *st)
{
	struct stream_x *x = sx(st);
	while (x->held != NULL) {
		struct held_msg *h = x->held;
		x->held = h->next;
		free(h->json);
		free(h);
	}
	x->held_tail = &x->held;
	x->held_bytes = 0;
}

static void
hold_or_write(struct stream *st, uint64_t seq, int final, const char *json)
{
	struct stream_x *x = sx(st);
	if (x->replaying) {
		/* Kept for after the replay, up to limits.stream_buffer: past
		 * that they are let go (they are in the log) and the stream
		 * closes once the replay is out, for the client to resume from
		 * there, as any stream the client cannot keep up with. */
		if (x->held_over)
			return;
		if (x->held_bytes > st->s->table->stream_buffer) {
			log_warn("session %.8s…: stream %s: more than limits.stream_buffer (%zu bytes) came "
			    "while its replay was read from storage; it will close after the replay, "
			    "for the client to resume", st->s->id, st->id, st->s->table->stream_buffer);
			held_free(st);
			x->held_over = 1;
			return;
		}
		struct held_msg *h = calloc(1, sizeof(*h));
		if (h == NULL || (h->json = strdup(json)) == NULL) {
			free(h);
			return;
		}
		h->seq = seq;
		h->final = final;
		if (x->held_tail == NULL)
			x->held_tail = &x->held;
		*x->held_tail = h;
		x->held_tail = &h->next;
		x->held_bytes += strlen(json);
		return;
	}
	if (seq != 0 && seq <= st->sent)
		return;     /* already written by the replay */
	write_event(st, seq, json);
	if (final)
		stream_free(st);
}

static void
toclient_msg(void *arg, const char *channel, const void *msg, size_t len);

static void
toclient_use(struct session *s)
{
	if (s->toclient_users++ == 0 && !s->deleted) {
		char ch[96];
		key_of(ch, sizeof(ch), "toclient:", s->id);
		s->toclient_sub = subscribe(s->table, ch, toclient_msg, s);
	}
}

void
toclient_release(struct session *s)
{
	if (s->toclient_users > 0 && --s->toclient_users == 0) {
		unsubscribe(s->table, s->toclient_sub);
		s->toclient_sub = NULL;
	}
}

static void
toclient_msg(void *arg, const char *channel, const void *msg, size_t len)
{
	(void)channel;
	struct session *s = arg;
	char *m = strndup(msg, len);
	if (m == NULL)
		return;
	char *p1 = strchr(m, '\n'), *p2 = p1 ? strchr(p1 + 1, '\n') : NULL;
	char *p3 = p2 ? strchr(p2 + 1, '\n') : NULL;
	if (p3 != NULL) {
		*p1 = *p2 = *p3 = '\0';
		struct stream *st;
		LIST_FOREACH(st, &s->streams, link)
			if (st->holder && strcmp(st->id, m) == 0 && (st->req != NULL || sx(st)->replaying))
				break;
		int kind = atoi(p2 + 1);
		if (st != NULL)
			sx(st)->heard_ms = now_ms();
		if (st != NULL && kind != 3)    /* 3: the request is still running */
			hold_or_write(st, strtoull(p1 + 1, NULL, 10), kind, p3 + 1);
	}
	free(m);
}

static void
replay_req_closed(struct http_request *r, void *arg)
{
	(void)r;
	struct replay *rp = arg;
	rp->req = NULL;
}

static void
replay_free(struct replay *rp)
{
	if (rp->st != NULL) {
		sx(rp->st)->replay = NULL;
		if (rp->st->req == NULL)
			stream_free(rp->st);
	}
	session_unref(rp->s);
	free(rp);
}

static void
respond_bad_id(struct http_request *r)
{
	char *json = jsonrpc_error(NULL, JSONRPC_INVALID_REQUEST, "Bad Request: unknown Last-Event-ID", NULL);
	http_request_on_close(r, NULL, NULL);
	if (json != NULL)
		http_respond(r, 400, "application/json", json, strlen(json));
	else
		http_respond_text(r, 400, "unknown Last-Event-ID");
	free(json);
}

/* Split an entry: stream id, kind (0 event, 1 last, 2 start), data. */
static int
entry_parse(const struct mcpd_log_entry *e, const char **id, size_t *idlen, int *kind,
    const char **data, size_t *dlen)
{
	const char *d = e->data;
	const char *nl1 = memchr(d, '\n', e->len);
	const char *nl2 = nl1 ? memchr(nl1 + 1, '\n', e->len - (size_t)(nl1 + 1 - d)) : NULL;
	if (nl2 == NULL)
		return -1;
	*id = d;
	*idlen = (size_t)(nl1 - d);
	*kind = nl1[1] - '0';
	*data = nl2 + 1;
	*dlen = e->len - (size_t)(nl2 + 1 - d);
	return 0;
}

static void
replayed(void *arg, int status, const struct mcpd_log_entry *e, size_t n, const char *err)
{
	struct replay *rp = arg;
	struct stream *st = rp->st;
	if (status != MCPD_OK)
		log_warn("storage: replaying events: %s", err ? err : "failed");
	if (rp->req == NULL) {
		replay_free(rp);
		return;
	}
	if (st == NULL) {
		/* The session ended while storage answered. */
		char *json = jsonrpc_error(NULL, -32001, "Session not found", NULL);
		http_request_on_close(rp->req, NULL, NULL);
		if (json != NULL)
			http_respond(rp->req, 404, "application/json", json, strlen(json));
		else
			http_respond_text(rp->req, 404, "session not found");
		free(json);
		replay_free(rp);
		return;
	}
	size_t il = strlen(rp->id);
	/* A resumed id must name an event of that stream, or its start. The
	 * GET stream's start is the position it was opened at: 0, or an
	 * event of its own, or one older than the log keeps. */
	if (!rp->fresh && status == MCPD_OK) {
		int get = strcmp(rp->id, "g") == 0;
		int known = get && (rp->after == 0 || (n > 0 && e[0].seq > rp->after));
		for (size_t i = 0; i < n && !known; i++) {
			const char *id, *data;
			size_t idl, dl;
			int kind;
			if (entry_parse(&e[i], &id, &idl, &kind, &data, &dl) == 0 && idl == il &&
			    memcmp(id, rp->id, il) == 0 && e[i].seq == rp->after)
				known = 1;
		}
		if (!known) {
			respond_bad_id(rp->req);
			replay_free(rp);
			return;
		}
	}
	/* A request's stream of ours whose client left: the new connection
	 * takes it. (Not the sender of the GET stream's events, which has
	 * no client: the GET stream is always a holder, which records what
	 * it delivered in gsent.) */
	struct stream *own;
	LIST_FOREACH(own, &rp->s->streams, link)
		if (!own->holder && own->req == NULL && !own->finished && request_stream(own) &&
		    strcmp(own->id, rp->id) == 0)
			break;
	if (own != NULL) {
		stream_free(st);
		rp->st = st = own;
	}
	sx(st)->replay = NULL;
	/* Where the client is: the priming event of a fresh GET stream gets
	 * this position as its id, so that it can be resumed from. */
	st->sent = rp->after;
	attach(st, rp->req, rp->fresh && rp->priming);
	sx(st)->heard_ms = now_ms();
	int final = 0;
	for (size_t i = 0; i < n && !final; i++) {
		const char *id, *data;
		size_t idl, dl;
		int kind;
		if (entry_parse(&e[i], &id, &idl, &kind, &data, &dl) < 0 || idl != il ||
		    memcmp(id, rp->id, il) != 0 || kind == 2)
			continue;
		if (e[i].seq <= st->sent) {
			final = kind == 1;      /* resumed after its last event: nothing more */
			continue;
		}
		char *json = strndup(data, dl);
		if (json != NULL)
			write_event(st, e[i].seq, json);
		free(json);
		final = kind == 1;
	}
	sx(st)->replaying = 0;
	/* What came meanwhile, in order, without what the replay wrote. */
	while (sx(st)->held != NULL) {
		struct held_msg *h = sx(st)->held;
		sx(st)->held = h->next;
		if (!final && (h->seq == 0 || h->seq > st->sent)) {
			write_event(st, h->seq, h->json);
			final = h->final;
		}
		free(h->json);
		free(h);
	}
	sx(st)->held_tail = &sx(st)->held;
	sx(st)->held_bytes = 0;
	int cut = sx(st)->held_over && !final && !st->finished;
	sx(st)->held_over = 0;
	rp->st = NULL;
	session_unref(rp->s);
	free(rp);
	if (final || st->finished)
		stream_free(st);
	else if (cut && st->req != NULL)
		http_stream_cut(st->req, "replay overtaken");   /* req_closed follows */
}

/* A resumed stream has heard nothing of its request for a while: the
 * worker that ran it is gone (killed), or it ended there without an
 * answer. What the log has of the stream, from its start, tells. */
static void lost_read(void *arg, int status, const struct mcpd_log_entry *e, size_t n, const char *err);

void
lost_check_start(struct stream *st)
{
	struct sessions *t = st->s->table;
	struct lost_check *lc = calloc(1, sizeof(*lc));
	if (lc == NULL)
		return;
	lc->st = st;
	sx(st)->check = lc;
	char log[96];
	key_of(log, sizeof(log), "events:", st->s->id);
	t->b.storage->log_range(t->b.storage_inst, log, 0, REPLAY_MAX, lost_read, lc);
}

static void
lost_recorded(void *arg, int status, int64_t seq, const char *err)
{
	struct lost_check *lc = arg;
	struct stream *st = lc->st;
	if (st != NULL) {
		sx(st)->check = NULL;
		if (status != MCPD_OK)
			log_warn("storage: the end of a lost request not kept: %s", err ? err : "failed");
		write_event(st, status == MCPD_OK ? (uint64_t)seq : 0, lc->json);
		stream_free(st);
	}
	free(lc->json);
	free(lc);
}

/* Record json as the stream's last event, then send it and end. */
static void
record_lost(struct stream *st, char *json)
{
	struct sessions *t = st->s->table;
	struct lost_check *lc = calloc(1, sizeof(*lc));
	size_t len = strlen(json);
	char *entry = malloc(strlen(st->id) + len + 8);
	if (lc == NULL || entry == NULL) {
		free(lc);
		free(entry);
		write_event(st, 0, json);
		free(json);
		stream_free(st);
		return;
	}
	lc->st = st;
	lc->json = json;
	sx(st)->check = lc;
	int n = sprintf(entry, "%s\n1\n%s", st->id, json);
	char log[96];
	key_of(log, sizeof(log), "events:", st->s->id);
	t->b.storage->log_append(t->b.storage_inst, log, entry, (size_t)n, t->history, t->idle_ms,
	    lost_recorded, lc);
	free(entry);
}

static void
lost_read(void *arg, int status, const struct mcpd_log_entry *e, size_t n, const char *err)
{
	struct lost_check *lc = arg;
	struct stream *st = lc->st;
	free(lc);
	if (st == NULL)
		return;
	sx(st)->check = NULL;
	if (status != MCPD_OK) {
		log_warn("storage: reading events of a resumed stream: %s", err ? err : "failed");
		sx(st)->heard_ms = now_ms();    /* try again later */
		return;
	}
	size_t il = strlen(st->id);
	cJSON *rid = NULL;
	for (size_t i = 0; i < n; i++) {
		const char *id, *data;
		size_t idl, dl;
		int kind;
		if (entry_parse(&e[i], &id, &idl, &kind, &data, &dl) < 0 || idl != il ||
		    memcmp(id, st->id, il) != 0)
			continue;
		if (kind == 2) {
			cJSON_Delete(rid);
			rid = dl > 0 ? json_parse(data, dl, 0, NULL) : NULL;
			continue;
		}
		if (e[i].seq <= st->sent)
			continue;
		/* Recorded, but the word to this worker was lost: the answer
		 * may be among these. */
		char *json = strndup(data, dl);
		if (json != NULL)
			write_event(st, e[i].seq, json);
		free(json);
		if (kind == 1) {
			cJSON_Delete(rid);
			stream_free(st);
			return;
		}
	}
	/* No answer will come: give the client one, kept in the log so that
	 * a later resumption ends at once. */
	log_warn("session %.8s…: stream %s: its request is lost (nothing from it for %llums); "
	    "answering it with an error", st->s->id, st->id,
	    (unsigned long long)(LOST_AFTER * st->s->table->keepalive_ms));
	char *json = cJSON_IsString(rid) || cJSON_IsNumber(rid) ? jsonrpc_error(rid, JSONRPC_INTERNAL_ERROR,
	    "request lost: the process serving it ended before it answered", NULL) : NULL;
	cJSON_Delete(rid);
	if (json == NULL) {
		stream_free(st);    /* an old log without the request id: just end */
		return;
	}
	record_lost(st, json);
}

static void
start_replay(struct replay *rp)
{
	char log[96];
	key_of(log, sizeof(log), "events:", rp->s->id);
	uint64_t from = rp->fresh || rp->after == 0 ? rp->after : rp->after - 1;
	rp->s->table->b.storage->log_range(rp->s->table->b.storage_inst, log, from, REPLAY_MAX, replayed, rp);
}

static void
gsent_read(void *arg, int status, const void *value, size_t len, const char *err)
{
	(void)err;
	struct replay *rp = arg;
	char buf[32] = "0";
	if (status == MCPD_OK && len < sizeof(buf)) {
		memcpy(buf, value, len);
		buf[len] = '\0';
	}
	if (parse_u64(buf, &rp->after) < 0)
		rp->after = 0;
	start_replay(rp);
}

int
stream_get(struct session *s, struct http_request *req, const char *last_event_id, int priming)
{
	struct replay *rp = calloc(1, sizeof(*rp));
	if (rp == NULL)
		return -1;
	snprintf(rp->id, sizeof(rp->id), "g");
	rp->fresh = last_event_id == NULL;
	rp->priming = priming;
	if (last_event_id != NULL) {
		const char *dash = strrchr(last_event_id, '-');
		size_t il = dash ? (size_t)(dash - last_event_id) : 0;
		int ok = dash != NULL && il > 0 && il < sizeof(rp->id) && dash[1] != '\0';
		for (size_t i = 0; ok && i < il; i++) {
			char c = last_event_id[i];
			ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z');
		}
		/* Digits only: strtoull takes a sign or blanks, and wraps. */
		if (ok)
			ok = parse_u64(dash + 1, &rp->after) == 0;
		if (!ok) {
			free(rp);
			return -1;
		}
		memcpy(rp->id, last_event_id, il);
		rp->id[il] = '\0';
	} else if (local_holder(s, "g") != NULL) {
		free(rp);
		return -1;
	}
	/* The holder exists (unattached) from now, so that events published
	 * while storage answers are kept for after the replay. */
	rp->st = stream_new(s, rp->id, 1);
	if (rp->st == NULL) {
		free(rp);
		return -1;
	}
	toclient_use(s);
	sx(rp->st)->replaying = 1;
	sx(rp->st)->replay = rp;
	rp->s = s;
	session_ref(s);
	rp->req = req;
	http_request_on_close(req, replay_req_closed, rp);
	if (rp->fresh) {
		char key[96];
		key_of(key, sizeof(key), "gsent:", s->id);
		s->table->b.storage->get(s->table->b.storage_inst, key, gsent_read, rp);
	} else {
		start_replay(rp);
	}
	return 0;
}

int
session_holds_get(const struct session *s)
{
	return local_holder((struct session *)s, "g") != NULL;
}

struct stream *
session_get_holder(struct session *s)
{
	return local_holder(s, "g");
}

void
session_notify(struct session *s, const char *json)
{
	/* A sender for the GET stream: it numbers events through storage and
	 * hands them to whichever worker holds the stream. */
	if (s->line != NULL) {
		s->line(s->line_arg, json);
		return;
	}
	struct stream *st;
	LIST_FOREACH(st, &s->streams, link)
		if (!st->holder && strcmp(st->id, "g") == 0)
			break;
	if (st == NULL && (st = stream_new(s, "g", 0)) == NULL)
		return;
	stream_send(st, json);
}

void
session_set_line(struct session *s, void (*line)(void *arg, const char *json), void *arg)
{
	s->line = line;
	s->line_arg = arg;
}
