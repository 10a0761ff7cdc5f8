/*
 * sqs: the transport on Amazon SNS and SQS, so that mcpd instances on AWS
 * deliver session messages to each other through managed services only.
 * Built against <mcpd/plugin.h> alone; the calls are plugins/common/aws.c's
 * (SigV4, the credential chain, libcurl multi on the worker's loop).
 *
 *   transport: { plugin: sqs, region: eu-west-1, topic: mcpd, queue_prefix: "mcpd-" }
 *
 * Keys: topic (a name or an ARN, required), create_topic (false: the
 * topic must exist), queue_prefix ("mcpd-"), region, endpoint (for both
 * services), profile, fifo (false), wait (long polling, 20s), timeout
 * (3s: each call), presence_timeout (500ms), queue_expiry (10m),
 * route_ttl (60s).
 *
 * No queue per session: creating queues is slow and rate-limited. Each
 * worker of each instance has one queue, <queue_prefix><instance>-<worker>
 * (the instance a random id drawn when the configuration is loaded),
 * subscribed to the topic with raw delivery and a filter policy that
 * never changes: {"to": [<its queue>, "all"], "origin": [{"anything-but":
 * [<its queue>]}]}. A publish is an SNS Publish (PublishBatch when several
 * wait) with the channel, the publisher (origin) and the addressees (to)
 * as message attributes: SNS delivers it to the queues it names, never
 * back to the publisher (which delivers to its own subscribers at once).
 * Per-session filter policies are not used on purpose: a subscription's
 * policy takes minutes to apply and holds a few hundred values, and
 * session channels come and go by the second.
 *
 * Addressed routing (routes.c): a worker learns which workers hold a
 * subscriber of a channel. The first message it publishes on a channel
 * goes to all and asks the holders to answer (straight to its queue);
 * from when the answers are in (presence_timeout after the publish) the
 * channel's messages go to those holders only, and to nobody when there
 * is none. What it learned lasts route_ttl (60s), and stays current
 * meanwhile: a worker that gains a channel's first subscriber announces
 * it to all (publishers that know the channel add it, and send it what
 * they sent in the last two seconds, so that a message that crossed the
 * announcement still arrives), and a worker sent a message of a channel
 * it no longer holds tells the sender, which stops sending it there.
 * has_subscribers' answers teach the same. route_ttl: 0 sends every
 * message to all, as a broadcast transport.
 *
 * Each worker keeps one ReceiveMessage waiting (long polling: it returns
 * as soon as a message is there, so latency is SNS's delivery plus a
 * round trip, tens of milliseconds on AWS), and deletes what it received
 * with DeleteMessageBatch. Publishes on one channel leave in order, one
 * call in flight per channel; SNS and SQS standard queues keep that order
 * in general but do not promise it: fifo: true uses a FIFO topic and FIFO
 * queues, the channel as message group, for strict order per channel.
 *
 * has_subscribers: the local count, plus a probe published on the topic
 * with this worker's queue to answer to; workers that have subscribers
 * to the channel send their count there. The answers are summed for
 * presence_timeout. Answers and the notes to senders go straight to the
 * asker's queue, SendMessageBatch for those that wait together.
 *
 * Queues of instances that died: each worker tags its queue with the time
 * (mcpd-heartbeat) every queue_expiry/3; worker 1 of each instance lists
 * the queues of the prefix every queue_expiry and deletes those (and
 * their subscriptions, named in the tag mcpd-subscription) not tagged
 * within queue_expiry. A worker that stops cleanly deletes its own. Queues
 * keep messages 60 seconds (the least SQS allows), so a dead queue costs
 * little until it is swept.
 *
 * A message over SNS's 256 KiB (with its attributes) is refused with an
 * error, logged; bytes that SNS cannot carry as text are sent in base64.
 */
#include <mcpd/plugin.h>

#include "aws.h"
#include "aws_creds.h"
#include "aws_xml.h"
#include "b64.h"
#include "clock.h"
#include "fetch.h"
#include "localq.h"
#include "routes.h"
#include "section.h"
#include "subs.h"
#include "utf8.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define MAX_MESSAGE (256 * 1024)        /* SNS: a message and its attributes; a batch too */
#define MAX_QUEUED (16u << 20)          /* bytes waiting to be published */
#define MAX_CALLS 4                     /* Publish calls in flight per worker */
#define MAX_DCALLS 4                    /* SendMessage(Batch) calls in flight per worker */
#define MAX_DIRECT 1000                 /* messages waiting to go straight to a queue */
/* What a message's attributes may add to it: the addressees, the queue to
 * answer to, the rest. */
#define ATTRS_MAX (ROUTE_TO_MAX + 1024)
#define MAX_CHANNEL 1024
#define SETUP_RETRY_MAX_MS 5000
#define CLEANUP_MS 2000
#define SNS_VERSION "2010-03-31"

enum out_kind {
	OUT_DATA,                           /* a message for a channel's subscribers */
	OUT_REPLAY,                         /* one sent before, to a holder learned late (to) */
	OUT_SUB,                            /* "this worker holds the channel now" */
};

struct out {                            /* a message waiting to be published */
	enum out_kind kind;
	char *channel;
	char *body;                         /* as SNS carries it */
	int b64;                            /* 1: base64; 2: empty */
	char *dedup;                        /* fifo: the deduplication id */
	char *to;                           /* the addressees' "to" attribute; NULL: all */
	int ask;                            /* asks the holders to answer (a route learned) */
	mcpd_done_cb *cb;
	void *arg;
	struct out *next;
};

struct direct {                         /* a message straight to a worker's queue */
	char *url;
	cJSON *entry;                       /* MessageBody, MessageAttributes, fifo's ids */
	struct direct *next;
};

struct dcall {                          /* a SendMessage or SendMessageBatch in flight */
	struct sqs *q;
	size_t n;
	int used;
};

struct pcall {                          /* a Publish or PublishBatch in flight */
	struct sqs *q;
	struct out *msgs;
	size_t n;
	int used;
};

struct probe {
	struct sqs *q;
	uint64_t id;
	int64_t sum;
	mcpd_int_cb *cb;
	void *arg;
	struct event *timer;
	struct probe *next;
};

enum setup { SU_TOPIC, SU_ACCOUNT, SU_TOPIC_CHECK, SU_QUEUE, SU_QUEUE_ARN, SU_SUBSCRIBE, SU_TAG, SU_DONE };

struct sqs {
	const struct mcpd_host *host;
	/* configuration */
	char *topic, *endpoint, *profile, *prefix;
	char region[64];
	int create_topic, fifo;
	uint64_t timeout_ms, wait_s, presence_ms, expiry_ms, route_ttl_ms;
	char instance[17];
	/* per worker */
	struct aws_client *client;
	struct aws_service sqs_svc, sns_svc, sts_svc;
	enum setup setup;
	int setup_busy;
	unsigned setup_backoff_ms;
	struct event *setup_timer, *beat_timer, *sweep_timer, *recv_timer;
	char *topic_arn, *queue_url, *queue_arn, *sub_arn, *account;
	char queue_name[128];
	char setup_error[700];
	int setup_logged;                   /* a failure was logged */
	int receiving;
	struct subs subs;
	struct out *outq, **outq_tail;
	size_t queued_bytes;
	struct pcall calls[MAX_CALLS];
	struct probe *probes;
	uint64_t next_probe;
	struct localq local;          /* for this worker's own subscribers */
	int sweeping;
	struct sweep *sweeps;               /* in flight */
	struct routes routes;
	struct direct *direct, **direct_tail;
	size_t ndirect;
	struct dcall dcalls[MAX_DCALLS];
	struct event *direct_ev;
	struct event *flush_ev;             /* publishes leave at the end of the loop turn */
	uint64_t next_dedup;
};

static void
say(struct sqs *q, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
say(struct sqs *q, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	q->host->log((enum mcpd_log_level)level, "sqs: %s", msg);
}

/* ---- text SNS and SQS can carry ---- */

/* Valid UTF-8 of the characters SQS allows (tab, LF, CR, U+0020 and up,
 * no U+FFFE/FFFF), non-empty. */
static int
carriable(const unsigned char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t len = utf8_char(s + i, n - i, &cp);
		if (len == 0 || (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') ||
		    cp == 0xfffe || cp == 0xffff)
			return 0;
		i += len;
	}
	return 1;
}

/* ---- calls ---- */

static void
json_call(struct sqs *q, const char *action, cJSON *req, aws_done_fn *done, void *arg, uint64_t timeout_ms)
{
	char *body = req ? cJSON_PrintUnformatted(req) : NULL;
	cJSON_Delete(req);
	if (body == NULL) {
		struct aws_result r = { 0, "", 0, "", "out of memory" };
		done(arg, &r);
		return;
	}
	char target[64];
	snprintf(target, sizeof(target), "AmazonSQS.%s", action);
	aws_json(q->client, &q->sqs_svc, target, body, strlen(body), timeout_ms, timeout_ms + q->timeout_ms, done, arg);
	free(body);
}

/* A query call: form is Action=...&... (taken). */
static void
query_call(struct sqs *q, const struct aws_service *svc, char *form, aws_done_fn *done, void *arg)
{
	if (form == NULL) {
		struct aws_result r = { 0, "", 0, "", "out of memory" };
		done(arg, &r);
		return;
	}
	aws_query(q->client, svc, form, q->timeout_ms, 2 * q->timeout_ms, done, arg);
	free(form);
}

static int
form(char **f, const char *name, const char *value)
{
	if (*f == (char *)-1)
		return -1;
	if (fetch_form_add(f, name, value) < 0) {
		free(*f);
		*f = (char *)-1;
		return -1;
	}
	return 0;
}

static char *
form_done(char *f)
{
	return f == (char *)-1 ? NULL : f;
}

/* ---- setting up: the topic, the queue, the subscription ---- */

static void setup_step(struct sqs *q);

static void
setup_failed(struct sqs *q, const char *prefix, const char *detail)
{
	char msg[sizeof(q->setup_error)];
	snprintf(msg, sizeof(msg), "%s%s", prefix, detail);
	if (strcmp(msg, q->setup_error) != 0 || !q->setup_logged)
		say(q, MCPD_LOG_ERROR, "%s", msg);
	q->setup_logged = 1;
	snprintf(q->setup_error, sizeof(q->setup_error), "%s", msg);
	q->setup_busy = 0;
	q->setup_backoff_ms = q->setup_backoff_ms ? q->setup_backoff_ms * 2 : 250;
	if (q->setup_backoff_ms > SETUP_RETRY_MAX_MS)
		q->setup_backoff_ms = SETUP_RETRY_MAX_MS;
	struct timeval tv = { q->setup_backoff_ms / 1000, (q->setup_backoff_ms % 1000) * 1000 };
	evtimer_add(q->setup_timer, &tv);
}

static char *
xml_or(const struct aws_result *r, const char *tag)
{
	return r->body ? aws_xml_dup(r->body, tag) : NULL;
}

static void receive(struct sqs *q);
static void flush(struct sqs *q);
static void announce_all(struct sqs *q);

static void
setup_answer(void *arg, const struct aws_result *r)
{
	struct sqs *q = arg;
	if (r->type != NULL) {
		if (q->setup == SU_TOPIC_CHECK && (strcmp(r->type, "NotFound") == 0 || strcmp(r->type, "NotFoundException") == 0)) {
			char why[600];
			snprintf(why, sizeof(why), "topic %.300s does not exist (create it, or set create_topic: true)", q->topic);
			setup_failed(q, "", why);
			return;
		}
		setup_failed(q, "setting up: ", r->message);
		return;
	}
	cJSON *j = NULL;
	switch (q->setup) {
	case SU_TOPIC:
		free(q->topic_arn);
		if ((q->topic_arn = xml_or(r, "TopicArn")) == NULL) {
			setup_failed(q, "", "CreateTopic gave no TopicArn");
			return;
		}
		q->setup = SU_QUEUE;
		break;
	case SU_ACCOUNT:
		free(q->account);
		if ((q->account = xml_or(r, "Account")) == NULL) {
			setup_failed(q, "", "GetCallerIdentity gave no Account");
			return;
		}
		free(q->topic_arn);
		if (asprintf(&q->topic_arn, "arn:aws:sns:%s:%s:%s", q->region, q->account, q->topic) < 0) {
			q->topic_arn = NULL;
			setup_failed(q, "", "out of memory");
			return;
		}
		q->setup = SU_TOPIC_CHECK;
		break;
	case SU_TOPIC_CHECK:
		q->setup = SU_QUEUE;
		break;
	case SU_QUEUE: {
		j = cJSON_ParseWithLength(r->body, r->len);
		const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "QueueUrl");
		if (!cJSON_IsString(u)) {
			cJSON_Delete(j);
			setup_failed(q, "", "CreateQueue gave no QueueUrl");
			return;
		}
		free(q->queue_url);
		q->queue_url = strdup(u->valuestring);
		q->setup = SU_QUEUE_ARN;
		break;
	}
	case SU_QUEUE_ARN: {
		j = cJSON_ParseWithLength(r->body, r->len);
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "Attributes"), "QueueArn");
		if (!cJSON_IsString(a)) {
			cJSON_Delete(j);
			setup_failed(q, "", "GetQueueAttributes gave no QueueArn");
			return;
		}
		free(q->queue_arn);
		q->queue_arn = strdup(a->valuestring);
		q->setup = SU_SUBSCRIBE;
		break;
	}
	case SU_SUBSCRIBE:
		free(q->sub_arn);
		if ((q->sub_arn = xml_or(r, "SubscriptionArn")) == NULL) {
			setup_failed(q, "", "Subscribe gave no SubscriptionArn");
			return;
		}
		q->setup = SU_TAG;
		break;
	case SU_TAG:
		q->setup = SU_DONE;
		break;
	case SU_DONE:
		break;
	}
	cJSON_Delete(j);
	q->setup_busy = 0;
	if (q->setup == SU_DONE) {
		say(q, q->setup_logged ? MCPD_LOG_NOTICE : MCPD_LOG_INFO, "queue %s on topic %s%s", q->queue_name,
		    q->topic_arn, q->setup_logged ? ": set up after all" : "");
		q->setup_logged = 0;
		q->setup_error[0] = '\0';
		q->setup_backoff_ms = 0;
		receive(q);
		announce_all(q);
		flush(q);
		return;
	}
	setup_step(q);
}

static void
setup_step(struct sqs *q)
{
	if (q->setup_busy || q->setup == SU_DONE)
		return;
	q->setup_busy = 1;
	char *f = NULL;
	cJSON *req;
	char now[32];
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	switch (q->setup) {
	case SU_TOPIC:
		if (strncmp(q->topic, "arn:", 4) == 0) {
			free(q->topic_arn);
			q->topic_arn = strdup(q->topic);
			q->setup = SU_TOPIC_CHECK;
			q->setup_busy = 0;
			setup_step(q);
			return;
		}
		if (!q->create_topic) {
			q->setup = SU_ACCOUNT;
			q->setup_busy = 0;
			setup_step(q);
			return;
		}
		form(&f, "Action", "CreateTopic");
		form(&f, "Version", SNS_VERSION);
		form(&f, "Name", q->topic);
		if (q->fifo) {
			form(&f, "Attributes.entry.1.key", "FifoTopic");
			form(&f, "Attributes.entry.1.value", "true");
		}
		query_call(q, &q->sns_svc, form_done(f), setup_answer, q);
		return;
	case SU_ACCOUNT:
		form(&f, "Action", "GetCallerIdentity");
		form(&f, "Version", "2011-06-15");
		query_call(q, &q->sts_svc, form_done(f), setup_answer, q);
		return;
	case SU_TOPIC_CHECK:
		form(&f, "Action", "GetTopicAttributes");
		form(&f, "Version", SNS_VERSION);
		form(&f, "TopicArn", q->topic_arn);
		query_call(q, &q->sns_svc, form_done(f), setup_answer, q);
		return;
	case SU_QUEUE: {
		req = cJSON_CreateObject();
		cJSON_AddStringToObject(req, "QueueName", q->queue_name);
		cJSON *attrs = cJSON_AddObjectToObject(req, "Attributes");
		cJSON_AddStringToObject(attrs, "MessageRetentionPeriod", "60");
		if (q->fifo)
			cJSON_AddStringToObject(attrs, "FifoQueue", "true");
		/* SNS may write to it (AWS requires a queue policy for that). */
		char policy[1400];
		snprintf(policy, sizeof(policy), "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
		    "\"Principal\":{\"Service\":\"sns.amazonaws.com\"},\"Action\":\"sqs:SendMessage\",\"Resource\":\"*\","
		    "\"Condition\":{\"ArnEquals\":{\"aws:SourceArn\":\"%s\"}}}]}", q->topic_arn);
		cJSON_AddStringToObject(attrs, "Policy", policy);
		cJSON *tags = cJSON_AddObjectToObject(req, "tags");
		cJSON_AddStringToObject(tags, "mcpd-heartbeat", now);
		json_call(q, "CreateQueue", req, setup_answer, q, q->timeout_ms);
		return;
	}
	case SU_QUEUE_ARN:
		req = cJSON_CreateObject();
		cJSON_AddStringToObject(req, "QueueUrl", q->queue_url);
		cJSON_AddItemToObject(req, "AttributeNames", cJSON_CreateStringArray((const char *[]){ "QueueArn" }, 1));
		json_call(q, "GetQueueAttributes", req, setup_answer, q, q->timeout_ms);
		return;
	case SU_SUBSCRIBE: {
		/* What is addressed to this queue or to all, except what it sent. */
		char policy[400];
		snprintf(policy, sizeof(policy), "{\"to\":[\"%s\",\"all\"],\"origin\":[{\"anything-but\":[\"%s\"]}]}",
		    q->queue_name, q->queue_name);
		form(&f, "Action", "Subscribe");
		form(&f, "Version", SNS_VERSION);
		form(&f, "TopicArn", q->topic_arn);
		form(&f, "Protocol", "sqs");
		form(&f, "Endpoint", q->queue_arn);
		form(&f, "ReturnSubscriptionArn", "true");
		form(&f, "Attributes.entry.1.key", "RawMessageDelivery");
		form(&f, "Attributes.entry.1.value", "true");
		form(&f, "Attributes.entry.2.key", "FilterPolicy");
		form(&f, "Attributes.entry.2.value", policy);
		query_call(q, &q->sns_svc, form_done(f), setup_answer, q);
		return;
	}
	case SU_TAG:
		req = cJSON_CreateObject();
		cJSON_AddStringToObject(req, "QueueUrl", q->queue_url);
		cJSON *tags = cJSON_AddObjectToObject(req, "Tags");
		cJSON_AddStringToObject(tags, "mcpd-subscription", q->sub_arn);
		cJSON_AddStringToObject(tags, "mcpd-heartbeat", now);
		json_call(q, "TagQueue", req, setup_answer, q, q->timeout_ms);
		return;
	case SU_DONE:
		q->setup_busy = 0;
		return;
	}
}

static void
setup_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	setup_step(arg);
}

/* ---- messages straight to a queue: answers, notes to a sender ---- */

static void direct_flush(struct sqs *q);

static void
direct_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	direct_flush(arg);
}

/* Sends body with the attributes kv (name, value, ..., NULL) to the queue
 * at url, with what else waits for it (from the loop: the answers to one
 * ReceiveMessage's messages leave together). */
static void
direct_send(struct sqs *q, const char *url, const char *body, const char *const *kv)
{
	if (url == NULL || strncmp(url, "http", 4) != 0 || strlen(url) > 1024)
		return;
	if (q->ndirect >= MAX_DIRECT) {
		say(q, MCPD_LOG_WARN, "more than %d answers waiting to be sent: one dropped", MAX_DIRECT);
		return;
	}
	struct direct *d = calloc(1, sizeof(*d));
	cJSON *e = cJSON_CreateObject();
	if (d == NULL || e == NULL || (d->url = strdup(url)) == NULL) {
		free(d);
		cJSON_Delete(e);
		return;
	}
	cJSON_AddStringToObject(e, "MessageBody", body);
	cJSON *ma = cJSON_AddObjectToObject(e, "MessageAttributes");
	for (int i = 0; kv[2 * i] != NULL; i++) {
		cJSON *a = cJSON_AddObjectToObject(ma, kv[2 * i]);
		cJSON_AddStringToObject(a, "DataType", "String");
		cJSON_AddStringToObject(a, "StringValue", kv[2 * i + 1]);
	}
	if (q->fifo) {
		char dd[200];
		snprintf(dd, sizeof(dd), "%s-d%" PRIu64, q->queue_name, ++q->next_dedup);
		cJSON_AddStringToObject(e, "MessageGroupId", kv[1]);
		cJSON_AddStringToObject(e, "MessageDeduplicationId", dd);
	}
	d->entry = e;
	*q->direct_tail = d;
	q->direct_tail = &d->next;
	q->ndirect++;
	struct timeval now = { 0, 0 };
	event_add(q->direct_ev, &now);
}

static void
direct_free(struct direct *d)
{
	free(d->url);
	cJSON_Delete(d->entry);
	free(d);
}

static void
direct_sent(void *arg, const struct aws_result *r)
{
	struct dcall *c = arg;
	struct sqs *q = c->q;
	c->used = 0;
	if (r->type != NULL) {
		say(q, MCPD_LOG_WARN, "%zu answer(s) not sent: %s", c->n, r->message);
	} else if (c->n > 1) {
		cJSON *j = cJSON_ParseWithLength(r->body, r->len);
		int failed = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "Failed"));
		if (failed > 0)
			say(q, MCPD_LOG_WARN, "%d of %zu answers not sent: %.300s", failed, c->n, r->body);
		cJSON_Delete(j);
	}
	direct_flush(q);
}

/* What waits, to each queue: SendMessage for one, SendMessageBatch for up
 * to ten (a few dozen bytes each, far below a batch's 256 KiB). */
static void
direct_flush(struct sqs *q)
{
	if (q->setup != SU_DONE)
		return;
	for (size_t slot = 0; slot < MAX_DCALLS && q->direct != NULL; slot++) {
		struct dcall *c = &q->dcalls[slot];
		if (c->used)
			continue;
		const char *url = q->direct->url;
		cJSON *req = cJSON_CreateObject(), *entries = cJSON_CreateArray();
		if (req == NULL || entries == NULL) {
			cJSON_Delete(req);
			cJSON_Delete(entries);
			return;
		}
		cJSON_AddStringToObject(req, "QueueUrl", url);
		c->n = 0;
		struct direct **pp = &q->direct, *taken = NULL, **tail = &taken;
		while (*pp != NULL && c->n < 10) {
			struct direct *d = *pp;
			if (strcmp(d->url, url) != 0) {
				pp = &d->next;
				continue;
			}
			*pp = d->next;
			d->next = NULL;
			*tail = d;
			tail = &d->next;
			char id[16];
			snprintf(id, sizeof(id), "%zu", c->n++);
			cJSON_AddStringToObject(d->entry, "Id", id);
			cJSON_AddItemToArray(entries, d->entry);
			d->entry = NULL;
		}
		q->ndirect -= c->n;
		q->direct_tail = &q->direct;
		while (*q->direct_tail != NULL)
			q->direct_tail = &(*q->direct_tail)->next;
		const char *action = "SendMessageBatch";
		if (c->n == 1) {
			cJSON *e = cJSON_DetachItemFromArray(entries, 0), *f;
			cJSON_DeleteItemFromObjectCaseSensitive(e, "Id");
			while ((f = e->child) != NULL)
				cJSON_AddItemToObject(req, f->string, cJSON_DetachItemViaPointer(e, f));
			cJSON_Delete(e);
			cJSON_Delete(entries);
			action = "SendMessage";
		} else {
			cJSON_AddItemToObject(req, "Entries", entries);
		}
		c->used = 1;
		c->q = q;
		json_call(q, action, req, direct_sent, c, q->timeout_ms);
		while (taken != NULL) {
			struct direct *d = taken;
			taken = d->next;
			direct_free(d);
		}
	}
}

/* ---- receiving ---- */

static void answer_probe(struct sqs *q, const char *channel, size_t n, const char *reply, const char *id);
static void heard_count(struct sqs *q, const char *id, const char *n, const char *channel, const char *from);
static void heard_holder(struct sqs *q, const char *channel, const char *holder);
static void heard_gone(struct sqs *q, const char *channel, const char *from);

static const char *
attr(const cJSON *msg, const char *name)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(msg, "MessageAttributes"), name);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, "StringValue");
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void deleted(void *arg, const struct aws_result *r);

static void
handle(struct sqs *q, const cJSON *m)
{
	const cJSON *body = cJSON_GetObjectItemCaseSensitive(m, "Body");
	const char *kind = attr(m, "kind"), *channel = attr(m, "channel");
	if (!cJSON_IsString(body) || channel == NULL)
		return;
	if (kind != NULL && strcmp(kind, "count") == 0) {
		heard_count(q, attr(m, "probe"), body->valuestring, channel, attr(m, "from"));
		return;
	}
	if (kind != NULL && strcmp(kind, "gone") == 0) {
		heard_gone(q, channel, attr(m, "from"));
		return;
	}
	if (kind != NULL && strcmp(kind, "sub") == 0) {
		heard_holder(q, channel, attr(m, "origin"));
		return;
	}
	size_t held = subs_count(&q->subs, channel);
	const char *reply = attr(m, "reply"), *probe = attr(m, "probe"), *to = attr(m, "to");
	if (probe != NULL) {                /* a probe, or a message that asks */
		answer_probe(q, channel, held, reply, probe);
		if (kind != NULL && strcmp(kind, "probe") == 0)
			return;
	} else if (held == 0 && reply != NULL && to != NULL && strcmp(to, "all") != 0) {
		/* Addressed here, where nobody holds the channel any more. */
		const char *kv[] = { "kind", "gone", "channel", channel, "from", q->queue_name, NULL };
		direct_send(q, reply, "gone", kv);
	}
	if (held == 0)
		return;
	const char *enc = attr(m, "enc");
	if (enc != NULL && strcmp(enc, "empty") == 0) {
		subs_deliver(&q->subs, channel, "", 0);
	} else if (enc != NULL && strcmp(enc, "b64") == 0) {
		size_t len;
		unsigned char *data = b64_decode(body->valuestring, &len);
		if (data != NULL)
			subs_deliver(&q->subs, channel, data, len);
		free(data);
	} else {
		subs_deliver(&q->subs, channel, body->valuestring, strlen(body->valuestring));
	}
}

static void
received(void *arg, const struct aws_result *r)
{
	struct sqs *q = arg;
	q->receiving = 0;
	if (r->type != NULL) {
		if (strcmp(r->type, "QueueDoesNotExist") == 0 || strcmp(r->type, "NonExistentQueue") == 0 ||
		    strcmp(r->type, "AWS.SimpleQueueService.NonExistentQueue") == 0) {
			/* Swept by mistake (or by hand): made again. */
			say(q, MCPD_LOG_WARN, "queue %s is gone; making it again", q->queue_name);
			q->setup = SU_QUEUE;
			setup_step(q);
			return;
		}
		struct timeval tv = { 1, 0 };   /* the client logs it; try again soon */
		evtimer_add(q->recv_timer, &tv);
		return;
	}
	cJSON *j = cJSON_ParseWithLength(r->body, r->len);
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "Messages"), *m;
	cJSON *del = NULL, *entries = NULL;
	int n = 0;
	cJSON_ArrayForEach(m, msgs) {
		const cJSON *rh = cJSON_GetObjectItemCaseSensitive(m, "ReceiptHandle");
		if (cJSON_IsString(rh)) {
			if (del == NULL) {
				del = cJSON_CreateObject();
				cJSON_AddStringToObject(del, "QueueUrl", q->queue_url);
				entries = cJSON_AddArrayToObject(del, "Entries");
			}
			cJSON *e = cJSON_CreateObject();
			char id[16];
			snprintf(id, sizeof(id), "%d", n++);
			cJSON_AddStringToObject(e, "Id", id);
			cJSON_AddStringToObject(e, "ReceiptHandle", rh->valuestring);
			cJSON_AddItemToArray(entries, e);
		}
	}
	/* Deleted as they are delivered: a worker that dies in between has
	 * them sent again (after the visibility timeout), at least once. */
	if (del != NULL)
		json_call(q, "DeleteMessageBatch", del, deleted, q, q->timeout_ms);
	cJSON_ArrayForEach(m, msgs)
		handle(q, m);
	cJSON_Delete(j);
	receive(q);
}

static void
deleted(void *arg, const struct aws_result *r)
{
	struct sqs *q = arg;
	if (r->type != NULL)
		say(q, MCPD_LOG_WARN, "messages received but not deleted (they will come again): %s", r->message);
}

static void
receive(struct sqs *q)
{
	if (q->receiving || q->setup != SU_DONE || q->queue_url == NULL)
		return;
	cJSON *req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "QueueUrl", q->queue_url);
	cJSON_AddNumberToObject(req, "MaxNumberOfMessages", 10);
	cJSON_AddNumberToObject(req, "WaitTimeSeconds", (double)q->wait_s);
	cJSON_AddItemToObject(req, "MessageAttributeNames", cJSON_CreateStringArray((const char *[]){ "All" }, 1));
	q->receiving = 1;
	json_call(q, "ReceiveMessage", req, received, q, q->wait_s * 1000 + q->timeout_ms);
}

static void
recv_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	receive(arg);
}

/* ---- publishing ---- */

static void
out_free(struct out *o)
{
	free(o->channel);
	free(o->body);
	free(o->dedup);
	free(o->to);
	free(o);
}

/* A message to publish on channel: body as SNS carries it (taken), or
 * NULL when out of memory; fifo's deduplication id is id, or a random one. */
static struct out *
out_new(struct sqs *q, enum out_kind kind, const char *channel, char *body, int b64, const char *id)
{
	struct out *o = calloc(1, sizeof(*o));
	if (o == NULL || body == NULL || (o->channel = strdup(channel)) == NULL) {
		free(o);
		free(body);
		return NULL;
	}
	o->kind = kind;
	o->body = body;
	o->b64 = b64;
	if (q->fifo) {
		char rid[40];
		unsigned char rnd[16];
		if (id != NULL && *id && strlen(id) <= 128)
			o->dedup = strdup(id);
		else if (getrandom(rnd, sizeof(rnd), 0) == sizeof(rnd)) {
			for (size_t i = 0; i < sizeof(rnd); i++)
				snprintf(rid + 2 * i, 3, "%02x", rnd[i]);
			o->dedup = strdup(rid);
		}
		if (o->dedup == NULL) {
			out_free(o);
			return NULL;
		}
	}
	return o;
}

static void
enqueue(struct sqs *q, struct out *o)
{
	*q->outq_tail = o;
	q->outq_tail = &o->next;
	q->queued_bytes += strlen(o->body);
}

static int
busy_channel(struct sqs *q, const char *channel)
{
	for (size_t i = 0; i < MAX_CALLS; i++)
		if (q->calls[i].used)
			for (struct out *o = q->calls[i].msgs; o != NULL; o = o->next)
				if (strcmp(o->channel, channel) == 0)
					return 1;
	return 0;
}

/* Message attributes of entry prefix p (Publish: "MessageAttributes.entry";
 * a batch's: "PublishBatchRequestEntries.member.N.MessageAttributes.entry").
 * A "to" naming queues is a list, which filter policies match by element. */
static void
attrs(char **f, const char *p, const char *const *kv)
{
	char name[200];
	for (int i = 0; kv[2 * i] != NULL; i++) {
		const char *k = kv[2 * i], *v = kv[2 * i + 1];
		snprintf(name, sizeof(name), "%s.%d.Name", p, i + 1);
		form(f, name, k);
		snprintf(name, sizeof(name), "%s.%d.Value.DataType", p, i + 1);
		form(f, name, strcmp(k, "to") == 0 && v[0] == '[' ? "String.Array" : "String");
		snprintf(name, sizeof(name), "%s.%d.Value.StringValue", p, i + 1);
		form(f, name, v);
	}
}

/* Where o goes, decided as it leaves (what is known then): 0 to publish
 * it, 1 when it goes nowhere (nobody holds its channel elsewhere). A
 * message on a channel not known asks its holders to answer. */
static int
address(struct sqs *q, struct out *o)
{
	if (o->kind != OUT_DATA || q->route_ttl_ms == 0)
		return 0;
	uint64_t now = mono_ms();
	struct route *r = routes_get(&q->routes, o->channel, now);
	if (r == NULL) {
		o->ask = (r = routes_new(&q->routes, o->channel, now)) != NULL;
		return 0;
	}
	char to[ROUTE_TO_MAX];
	switch (route_to(r, now, to, sizeof(to))) {
	case ROUTE_ALL:
		return 0;
	case ROUTE_NONE:
		route_sent(&q->routes, r, now, o->body, o->b64, "[]");
		return 1;
	case ROUTE_SOME:
		if ((o->to = strdup(to)) == NULL)
			return 0;
		route_sent(&q->routes, r, now, o->body, o->b64, to);
		return 0;
	}
	return 0;
}

static void published(void *arg, const struct aws_result *r);

static void
flush_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	flush(arg);
}

/* Publishes of one loop turn leave together: the first of a burst would
 * otherwise go alone, and the next few each in a call of their own, while
 * calls are free. A lone message waits for nothing but the turn's end. */
static void
flush_soon(struct sqs *q)
{
	struct timeval now = { 0, 0 };
	if (!event_pending(q->flush_ev, EV_TIMEOUT, NULL))
		event_add(q->flush_ev, &now);
}

static void
flush(struct sqs *q)
{
	if (q->setup != SU_DONE)
		return;
	struct out *nowhere = NULL;         /* done once the calls are made */
	for (size_t slot = 0; slot < MAX_CALLS && q->outq != NULL; slot++) {
		struct pcall *c = &q->calls[slot];
		if (c->used)
			continue;
		/* Up to 10 waiting messages, oldest first, within SNS's size for
		 * a batch, skipping a channel with one in flight or waiting
		 * before (its order is kept); on a standard topic one message
		 * of a channel per batch (a batch's order is not kept there).
		 * One that goes nowhere is done at once. */
		struct out **pp = &q->outq, **tail = &c->msgs;
		size_t total = 0, looked = 0, gone = 0;
		c->n = 0;
		c->msgs = NULL;
		while (*pp != NULL && c->n < 10 && looked++ < 200) {
			struct out *o = *pp;
			size_t sz = strlen(o->body) + strlen(o->channel) + strlen(q->queue_name) + ATTRS_MAX;
			int clash = busy_channel(q, o->channel);
			for (struct out *s = q->outq; !clash && s != o; s = s->next)
				clash = strcmp(s->channel, o->channel) == 0;
			for (struct out *s = c->msgs; !clash && !q->fifo && s != NULL; s = s->next)
				clash = strcmp(s->channel, o->channel) == 0;
			if (clash || total + sz > MAX_MESSAGE) {
				pp = &o->next;
				continue;
			}
			*pp = o->next;
			q->queued_bytes -= strlen(o->body);
			if (address(q, o)) {
				o->next = nowhere;
				nowhere = o;
				gone++;
				continue;
			}
			o->next = NULL;
			*tail = o;
			tail = &o->next;
			total += sz;
			c->n++;
		}
		q->outq_tail = &q->outq;
		while (*q->outq_tail != NULL)
			q->outq_tail = &(*q->outq_tail)->next;
		if (c->n == 0) {
			if (gone > 0)
				slot--;             /* the slot is still free: fill it */
			continue;
		}
		c->used = 1;
		c->q = q;
		char *f = NULL;
		form(&f, "Version", SNS_VERSION);
		form(&f, "TopicArn", q->topic_arn);
		int i = 1;
		for (struct out *o = c->msgs; o != NULL; o = o->next, i++) {
			const char *kv[16], **k = kv;
			*k++ = "channel", *k++ = o->channel;
			*k++ = "origin", *k++ = q->queue_name;
			*k++ = "to", *k++ = o->to != NULL ? o->to : "all";
			if (o->kind == OUT_SUB)
				*k++ = "kind", *k++ = "sub";
			if (o->b64)
				*k++ = "enc", *k++ = o->b64 == 2 ? "empty" : "b64";
			if (o->to != NULL || o->ask)    /* where to answer, or say it is not held */
				*k++ = "reply", *k++ = q->queue_url;
			if (o->ask)
				*k++ = "probe", *k++ = "0";
			*k = NULL;
			char p[160];
			if (c->n == 1) {
				form(&f, "Action", "Publish");
				form(&f, "Message", o->body);
				snprintf(p, sizeof(p), "MessageAttributes.entry");
			} else {
				char name[120], id[16];
				if (i == 1)
					form(&f, "Action", "PublishBatch");
				snprintf(id, sizeof(id), "%d", i);
				snprintf(name, sizeof(name), "PublishBatchRequestEntries.member.%d.Id", i);
				form(&f, name, id);
				snprintf(name, sizeof(name), "PublishBatchRequestEntries.member.%d.Message", i);
				form(&f, name, o->body);
				snprintf(p, sizeof(p), "PublishBatchRequestEntries.member.%d.MessageAttributes.entry", i);
			}
			attrs(&f, p, kv);
			if (q->fifo) {
				char name[120];
				snprintf(name, sizeof(name), c->n == 1 ? "MessageGroupId" :
				    "PublishBatchRequestEntries.member.%d.MessageGroupId", i);
				form(&f, name, o->channel);
				snprintf(name, sizeof(name), c->n == 1 ? "MessageDeduplicationId" :
				    "PublishBatchRequestEntries.member.%d.MessageDeduplicationId", i);
				form(&f, name, o->dedup);
			}
		}
		query_call(q, &q->sns_svc, form_done(f), published, c);
	}
	while (nowhere != NULL) {
		struct out *o = nowhere;
		nowhere = o->next;
		if (o->cb)
			o->cb(o->arg, MCPD_OK, NULL);
		out_free(o);
	}
}

/* Whether SNS refused entry id of a PublishBatch (its entries are
 * numbered from 1): a member of <Failed> of that Id; why gets its code
 * and message. A batch succeeds or fails entry by entry. */
static int
entry_failed(const char *failed, size_t id, char *why, size_t len)
{
	if (failed == NULL)
		return 0;
	const char *end = strstr(failed, "</Failed>");
	char want[24], m[2048], code[128], msg[400];
	snprintf(want, sizeof(want), "%zu", id);
	for (const char *b = strstr(failed, "<member>"); b != NULL && (end == NULL || b < end);
	    b = strstr(b + 8, "<member>")) {
		const char *e = strstr(b, "</member>");
		size_t n = e != NULL ? (size_t)(e - b) : strlen(b);
		snprintf(m, sizeof(m), "%.*s", (int)(n < sizeof(m) - 1 ? n : sizeof(m) - 1), b);
		char got[24];
		if (aws_xml_text(m, "Id", got, sizeof(got)) < 0 || strcmp(got, want) != 0)
			continue;
		if (aws_xml_text(m, "Code", code, sizeof(code)) < 0)
			snprintf(code, sizeof(code), "refused");
		if (aws_xml_text(m, "Message", msg, sizeof(msg)) < 0)
			msg[0] = '\0';
		snprintf(why, len, "sqs: SNS did not publish the message: %s%s%s", code, msg[0] ? ": " : "", msg);
		return 1;
	}
	return 0;
}

static void
published(void *arg, const struct aws_result *r)
{
	struct pcall *c = arg;
	struct sqs *q = c->q;
	struct out *msgs = c->msgs;
	c->msgs = NULL;
	c->used = 0;
	const char *failed = r->type == NULL && r->body != NULL && c->n > 1 ? strstr(r->body, "<Failed>") : NULL;
	if (failed != NULL && strstr(failed, "<member>") == NULL)
		failed = NULL;
	if (r->type != NULL)
		say(q, MCPD_LOG_WARN, "%zu message(s) not published: %s", c->n, r->message);
	else if (failed != NULL)
		say(q, MCPD_LOG_WARN, "some of %zu messages not published: %.300s", c->n, r->body);
	uint64_t now = mono_ms();
	char why[600];
	for (size_t i = 1; msgs != NULL; i++) {
		struct out *o = msgs;
		msgs = o->next;
		int ok = r->type == NULL && !entry_failed(failed, i, why, sizeof(why));
		/* An ask out: the answers are in presence_timeout from now. One
		 * not sent is asked again by the next message. */
		struct route *rt = o->ask ? routes_get(&q->routes, o->channel, now) : NULL;
		if (rt != NULL && rt->known_at == UINT64_MAX) {
			if (ok)
				route_asked(&q->routes, rt, now + q->presence_ms);
			else
				routes_drop(&q->routes, rt);
		}
		if (o->cb)
			o->cb(o->arg, ok ? MCPD_OK : MCPD_ERROR, ok ? NULL : r->type != NULL ? r->message : why);
		out_free(o);
	}
	flush(q);
}

static void
t_publish(void *inst, const char *channel, const void *msg, size_t len, const struct mcpd_publish_opts *opts,
    mcpd_done_cb *cb, void *arg)
{
	struct sqs *q = inst;
	char why[300];
	if (q->setup != SU_DONE) {
		if (cb)
			cb(arg, MCPD_ERROR, q->setup_error[0] ? q->setup_error : "sqs: not set up yet");
		return;
	}
	localq_push(&q->local, channel, msg, len);
	int enc = !carriable(msg, len);
	char *body = enc ? b64_encode(msg, len) : strndup(msg, len);
	if (enc && body != NULL && body[0] == '\0') {
		free(body);
		body = strdup("-");         /* SNS refuses an empty message */
		enc = 2;
	}
	size_t size = body ? strlen(body) + strlen(channel) + strlen(q->queue_name) + ATTRS_MAX : 0;
	if (body == NULL || size > MAX_MESSAGE || q->queued_bytes + size > MAX_QUEUED) {
		if (body == NULL)
			snprintf(why, sizeof(why), "out of memory");
		else if (size > MAX_MESSAGE)
			snprintf(why, sizeof(why), "sqs: a message of %zu bytes on %.100s is over SNS's 256 KiB "
			    "(with its attributes%s): not sent", len, channel, enc ? ", in base64" : "");
		else
			snprintf(why, sizeof(why), "sqs: more than %u MiB waiting to be published: not sent",
			    MAX_QUEUED >> 20);
		say(q, MCPD_LOG_WARN, "%s", why + (strncmp(why, "sqs: ", 5) == 0 ? 5 : 0));
		free(body);
		if (cb)
			cb(arg, MCPD_ERROR, why);
		return;
	}
	const char *id = opts != NULL && opts->size >= sizeof(*opts) ? opts->message_id : NULL;
	struct out *o = out_new(q, OUT_DATA, channel, body, enc, id);
	if (o == NULL) {
		if (cb)
			cb(arg, MCPD_ERROR, "out of memory");
		return;
	}
	o->cb = cb;
	o->arg = arg;
	enqueue(q, o);
	flush_soon(q);
}

/* Tells every worker that this one holds channel now (publishers that
 * know the channel add it). */
static void
announce(struct sqs *q, const char *channel)
{
	if (q->queued_bytes + strlen(channel) + ATTRS_MAX > MAX_QUEUED) {
		say(q, MCPD_LOG_WARN, "more than %u MiB waiting to be published: a subscription to %.100s not "
		    "announced (messages reach it once route_ttl has passed)", MAX_QUEUED >> 20, channel);
		return;
	}
	struct out *o = out_new(q, OUT_SUB, channel, strdup("sub"), 0, NULL);
	if (o != NULL)
		enqueue(q, o);
}

/* Once the queue is subscribed (again): every channel held. */
static void
announce_all(struct sqs *q)
{
	for (size_t b = 0; b < SUBS_BUCKETS; b++)
		for (const struct sub *s = q->subs.buckets[b]; s != NULL; s = s->next) {
			if (s->dead)
				continue;
			const struct sub *e = q->subs.buckets[b];
			while (e != s && (e->dead || strcmp(e->channel, s->channel) != 0))
				e = e->next;
			if (e == s)                 /* the first of its channel */
				announce(q, s->channel);
		}
}

static void *
t_subscribe(void *inst, const char *channel, mcpd_message_cb *cb, void *arg)
{
	struct sqs *q = inst;
	if (strlen(channel) > MAX_CHANNEL || !carriable((const unsigned char *)channel, strlen(channel)))
		return NULL;
	int first = subs_count(&q->subs, channel) == 0;
	struct sub *s = subs_add(&q->subs, channel, cb, arg);
	if (s != NULL && first && q->setup == SU_DONE) {
		announce(q, channel);
		flush_soon(q);
	}
	return s;
}

static void
t_unsubscribe(void *inst, void *subscription)
{
	struct sqs *q = inst;
	struct sub *s = subscription;
	if (subs_mark(s))
		subs_release(&q->subs, s);
}

/* ---- what other workers say: routes ---- */

struct replay {
	struct sqs *q;
	const char *channel;
	char to[ROUTE_NAME_MAX + 5];
	struct out *head, **tail;
};

static void
replay_one(void *arg, const struct route_sent *m)
{
	struct replay *rp = arg;
	struct out *o = out_new(rp->q, OUT_REPLAY, rp->channel, strdup(m->body), m->enc, NULL);
	if (o == NULL || (o->to = strdup(rp->to)) == NULL) {
		if (o != NULL)
			out_free(o);
		return;
	}
	*rp->tail = o;
	rp->tail = &o->next;
}

/* holder holds channel: a known route adds it and sends it what went
 * elsewhere in the last moments, before what waits on the channel (its
 * order is kept). */
static void
heard_holder(struct sqs *q, const char *channel, const char *holder)
{
	uint64_t now = mono_ms();
	struct route *r = holder != NULL ? routes_get(&q->routes, channel, now) : NULL;
	if (r == NULL || route_add(r, holder) != 1 || now < r->known_at)
		return;
	struct replay rp = { q, r->channel, "", NULL, &rp.head };
	snprintf(rp.to, sizeof(rp.to), "[\"%s\"]", holder);
	route_missed(&q->routes, r, holder, now, replay_one, &rp);
	if (rp.head == NULL)
		return;
	struct out **pp = &q->outq;
	while (*pp != NULL && strcmp((*pp)->channel, channel) != 0)
		pp = &(*pp)->next;
	*rp.tail = *pp;
	*pp = rp.head;
	for (struct out *o = rp.head; o != *rp.tail; o = o->next)
		q->queued_bytes += strlen(o->body);
	q->outq_tail = &q->outq;
	while (*q->outq_tail != NULL)
		q->outq_tail = &(*q->outq_tail)->next;
	flush_soon(q);
}

static void
heard_gone(struct sqs *q, const char *channel, const char *from)
{
	struct route *r = from != NULL ? routes_get(&q->routes, channel, mono_ms()) : NULL;
	if (r != NULL)
		route_remove(r, from);
}

/* ---- has_subscribers ---- */

static void
probe_free(struct probe *p)
{
	for (struct probe **pp = &p->q->probes; *pp != NULL; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	if (p->timer != NULL)
		event_free(p->timer);
	free(p);
}

static void
probe_done(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct probe *p = arg;
	mcpd_int_cb *cb = p->cb;
	void *a = p->arg;
	int64_t sum = p->sum;
	probe_free(p);
	cb(a, MCPD_OK, sum, NULL);
}

/* An answer to a probe (id) or to a message that asked ("0"): from holds
 * n subscribers of channel. */
static void
heard_count(struct sqs *q, const char *id, const char *n, const char *channel, const char *from)
{
	uint64_t want = id != NULL ? strtoull(id, NULL, 10) : 0;
	for (struct probe *p = q->probes; want != 0 && p != NULL; p = p->next)
		if (p->id == want) {
			p->sum += strtoll(n, NULL, 10);
			break;
		}
	heard_holder(q, channel, from);
}

/* A probe, or a message that asks: this worker's count, if it holds the
 * channel, to the asker's queue. */
static void
answer_probe(struct sqs *q, const char *channel, size_t n, const char *reply, const char *id)
{
	if (n == 0 || reply == NULL || id == NULL)
		return;
	char num[32];
	snprintf(num, sizeof(num), "%zu", n);
	const char *kv[] = { "kind", "count", "probe", id, "channel", channel, "from", q->queue_name, NULL };
	direct_send(q, reply, num, kv);
}

static void
probe_sent(void *arg, const struct aws_result *r)
{
	struct sqs *q = arg;
	if (r->type != NULL)
		say(q, MCPD_LOG_WARN, "a subscriber probe not sent: %s", r->message);
}

static void
t_has_subscribers(void *inst, const char *channel, mcpd_int_cb *cb, void *arg)
{
	struct sqs *q = inst;
	if (q->setup != SU_DONE) {
		cb(arg, MCPD_ERROR, 0, q->setup_error[0] ? q->setup_error : "sqs: not set up yet");
		return;
	}
	if (!carriable((const unsigned char *)channel, strlen(channel)) || strlen(channel) > MAX_CHANNEL) {
		cb(arg, MCPD_ERROR, 0, "sqs: a channel name SNS cannot carry");
		return;
	}
	struct probe *p = calloc(1, sizeof(*p));
	if (p == NULL) {
		cb(arg, MCPD_ERROR, 0, "out of memory");
		return;
	}
	p->q = q;
	p->id = ++q->next_probe;
	p->sum = (int64_t)subs_count(&q->subs, channel);
	p->cb = cb;
	p->arg = arg;
	p->next = q->probes;
	q->probes = p;
	if ((p->timer = evtimer_new(q->host->event_base(), probe_done, p)) == NULL) {
		probe_free(p);
		cb(arg, MCPD_ERROR, 0, "out of memory");
		return;
	}
	struct timeval tv = { (time_t)(q->presence_ms / 1000), (suseconds_t)(q->presence_ms % 1000) * 1000 };
	evtimer_add(p->timer, &tv);
	/* The answers teach the channel's route too. */
	uint64_t now = mono_ms();
	struct route *r = q->route_ttl_ms > 0 && routes_get(&q->routes, channel, now) == NULL ?
	    routes_new(&q->routes, channel, now) : NULL;
	if (r != NULL)
		route_asked(&q->routes, r, now + q->presence_ms);
	char id[32], *f = NULL;
	snprintf(id, sizeof(id), "%" PRIu64, p->id);
	form(&f, "Action", "Publish");
	form(&f, "Version", SNS_VERSION);
	form(&f, "TopicArn", q->topic_arn);
	form(&f, "Message", "probe");
	const char *kv[] = { "kind", "probe", "channel", channel, "reply", q->queue_url, "probe", id,
	    "origin", q->queue_name, "to", "all", NULL };
	attrs(&f, "MessageAttributes.entry", kv);
	if (q->fifo) {
		char dd[200];
		snprintf(dd, sizeof(dd), "%s-p%s", q->queue_name, id);
		form(&f, "MessageGroupId", "probe");
		form(&f, "MessageDeduplicationId", dd);
	}
	query_call(q, &q->sns_svc, form_done(f), probe_sent, q);
}

static const struct mcpd_transport_ops transport_ops = {
	.size = sizeof(struct mcpd_transport_ops),
	.subscribe = t_subscribe,
	.unsubscribe = t_unsubscribe,
	.publish = t_publish,
	.has_subscribers = t_has_subscribers,
};

/* ---- heartbeats and the sweep of dead queues ---- */

static void
beat_done(void *arg, const struct aws_result *r)
{
	struct sqs *q = arg;
	if (r->type != NULL)
		say(q, MCPD_LOG_WARN, "queue %s not tagged alive: %s", q->queue_name, r->message);
}

static void
beat_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct sqs *q = arg;
	if (q->setup != SU_DONE)
		return;
	char now[32];
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	cJSON *req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "QueueUrl", q->queue_url);
	cJSON_AddStringToObject(cJSON_AddObjectToObject(req, "Tags"), "mcpd-heartbeat", now);
	json_call(q, "TagQueue", req, beat_done, q, q->timeout_ms);
}

struct sweep {                          /* one queue looked at by the sweep */
	struct sqs *q;
	char *url;
	char *sub;
	int step;                           /* 0 tags, 1 unsubscribed, 2 deleted */
	struct sweep *next;                 /* in q->sweeps */
};

static void
sweep_free(struct sweep *s)
{
	for (struct sweep **pp = &s->q->sweeps; *pp != NULL; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	free(s->url);
	free(s->sub);
	free(s);
}

static void
sweep_answer(void *arg, const struct aws_result *r)
{
	struct sweep *s = arg;
	struct sqs *q = s->q;
	if (r->type != NULL) {
		if (s->step != 0)
			say(q, MCPD_LOG_WARN, "sweeping %s: %s", s->url, r->message);
		goto done;
	}
	if (s->step == 0) {
		cJSON *j = cJSON_ParseWithLength(r->body, r->len);
		const cJSON *tags = cJSON_GetObjectItemCaseSensitive(j, "Tags");
		const cJSON *hb = cJSON_GetObjectItemCaseSensitive(tags, "mcpd-heartbeat");
		const cJSON *sub = cJSON_GetObjectItemCaseSensitive(tags, "mcpd-subscription");
		long long beat = cJSON_IsString(hb) ? strtoll(hb->valuestring, NULL, 10) : 0;
		int dead = beat > 0 && (uint64_t)(time(NULL) - beat) * 1000 > q->expiry_ms;
		if (dead && cJSON_IsString(sub))
			s->sub = strdup(sub->valuestring);
		cJSON_Delete(j);
		if (!dead)
			goto done;
		say(q, MCPD_LOG_NOTICE, "deleting queue %s: no heartbeat for %lld s", s->url, (long long)(time(NULL) - beat));
		if (s->sub != NULL) {
			char *f = NULL;
			form(&f, "Action", "Unsubscribe");
			form(&f, "Version", SNS_VERSION);
			form(&f, "SubscriptionArn", s->sub);
			s->step = 1;
			query_call(q, &q->sns_svc, form_done(f), sweep_answer, s);
			return;
		}
		s->step = 1;
	}
	if (s->step == 1) {
		cJSON *req = cJSON_CreateObject();
		cJSON_AddStringToObject(req, "QueueUrl", s->url);
		s->step = 2;
		json_call(q, "DeleteQueue", req, sweep_answer, s, q->timeout_ms);
		return;
	}
done:
	sweep_free(s);
}

/* Is this one of mcpd's queues of our prefix: <prefix><16 hex>-<worker>? */
static int
ours(const struct sqs *q, const char *url)
{
	const char *name = strrchr(url, '/');
	size_t pl = strlen(q->prefix);
	if (name == NULL || strncmp(++name, q->prefix, pl) != 0)
		return 0;
	name += pl;
	if (strspn(name, "0123456789abcdef") != 16 || name[16] != '-')
		return 0;
	size_t d = strspn(name + 17, "0123456789");
	return d > 0 && (name[17 + d] == '\0' || strcmp(name + 17 + d, ".fifo") == 0);
}

static void
listed(void *arg, const struct aws_result *r)
{
	struct sqs *q = arg;
	q->sweeping = 0;
	if (r->type != NULL) {
		say(q, MCPD_LOG_WARN, "cannot list queues to sweep: %s", r->message);
		return;
	}
	cJSON *j = cJSON_ParseWithLength(r->body, r->len);
	const cJSON *urls = cJSON_GetObjectItemCaseSensitive(j, "QueueUrls"), *u;
	cJSON_ArrayForEach(u, urls) {
		if (!cJSON_IsString(u) || !ours(q, u->valuestring) ||
		    (q->queue_url != NULL && strcmp(u->valuestring, q->queue_url) == 0))
			continue;
		struct sweep *s = calloc(1, sizeof(*s));
		if (s == NULL || (s->url = strdup(u->valuestring)) == NULL) {
			free(s);
			break;
		}
		s->q = q;
		s->next = q->sweeps;
		q->sweeps = s;
		cJSON *req = cJSON_CreateObject();
		cJSON_AddStringToObject(req, "QueueUrl", s->url);
		json_call(q, "ListQueueTags", req, sweep_answer, s, q->timeout_ms);
	}
	cJSON_Delete(j);
}

static void
sweep_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct sqs *q = arg;
	if (q->setup != SU_DONE || q->sweeping)
		return;
	q->sweeping = 1;
	cJSON *req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "QueueNamePrefix", q->prefix);
	cJSON_AddNumberToObject(req, "MaxResults", 1000);
	json_call(q, "ListQueues", req, listed, q, q->timeout_ms);
}

/* ---- configuration and lifecycle ---- */

static int
parse_bool(const struct mcpd_host *h, const struct mcpd_config *n, const char *key, int *out, char *err, size_t errlen)
{
	const char *v = h->config_scalar(n);
	if (v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)) {
		*out = strcmp(v, "true") == 0;
		return 0;
	}
	return section_error(h, n, err, errlen, "%s must be true or false", key);
}

/* At configuration time (mcpd -t too): does the topic exist? Asked on a
 * loop of our own within CHECK_MS; only a definite "no such topic" is an
 * error (the service unreachable now is the workers' to wait for). */
#define CHECK_MS 3000

struct check {
	struct event_base *base;
	int done, missing;
	char *body;                         /* the answer, for the account */
	char why[700];
};

static void
checked(void *arg, const struct aws_result *r)
{
	struct check *k = arg;
	k->done = 1;
	k->missing = r->type != NULL && (strcmp(r->type, "NotFound") == 0 || strcmp(r->type, "NotFoundException") == 0);
	snprintf(k->why, sizeof(k->why), "%s", r->message ? r->message : "");
	free(k->body);
	k->body = r->type == NULL && r->body != NULL ? strdup(r->body) : NULL;
	event_base_loopbreak(k->base);
}

static int
ask(struct aws_client *c, struct check *k, const struct aws_service *svc, char *form, uint64_t until)
{
	uint64_t now = mono_ms();
	if (form == NULL || now >= until) {
		free(form);
		return -1;
	}
	k->done = 0;
	aws_query(c, svc, form, until - now, until - now, checked, k);
	free(form);
	struct timeval tv = { (time_t)((until - now) / 1000), (suseconds_t)((until - now) % 1000) * 1000 };
	event_base_loopexit(k->base, &tv);
	event_base_dispatch(k->base);
	return k->done && k->why[0] == '\0' ? 0 : -1;
}

static int
topic_check(struct sqs *q, char *err, size_t errlen)
{
	struct check k = { 0 };
	char why[512], *arn = NULL;
	if ((k.base = event_base_new()) == NULL)
		return 0;
	uint64_t until = mono_ms() + CHECK_MS;
	struct aws_client *c = aws_client_new(k.base, q->host, q->region, q->profile, "sqs", why, sizeof(why));
	if (c != NULL && strncmp(q->topic, "arn:", 4) == 0) {
		arn = strdup(q->topic);
	} else if (c != NULL) {
		char *f = NULL;
		form(&f, "Action", "GetCallerIdentity");
		form(&f, "Version", "2011-06-15");
		char *account = ask(c, &k, &q->sts_svc, form_done(f), until) == 0 ? aws_xml_dup(k.body, "Account") : NULL;
		if (account != NULL && asprintf(&arn, "arn:aws:sns:%s:%s:%s", q->region, account, q->topic) < 0)
			arn = NULL;
		free(account);
	}
	if (arn != NULL) {
		char *f = NULL;
		form(&f, "Action", "GetTopicAttributes");
		form(&f, "Version", SNS_VERSION);
		form(&f, "TopicArn", arn);
		ask(c, &k, &q->sns_svc, form_done(f), until);
	}
	free(arn);
	free(k.body);
	aws_client_free(c);
	event_base_free(k.base);
	if (k.missing) {
		section_say(err, errlen, "sqs: topic %s does not exist in %s (create it, or set create_topic: true)",
		    q->topic, q->region);
		return -1;
	}
	if (!k.done)
		q->host->log(MCPD_LOG_WARN, "sqs: topic %s not checked: no answer within %dms", q->topic, CHECK_MS);
	else if (k.why[0])
		q->host->log(MCPD_LOG_WARN, "sqs: topic %s not checked: %s", q->topic, k.why);
	return 0;
}

static void
sqs_free(struct sqs *q)
{
	free(q->topic);
	free(q->endpoint);
	free(q->profile);
	free(q->prefix);
	free(q);
}

static void *
sqs_create(const struct mcpd_host *host, const struct mcpd_config *section, char *err, size_t errlen)
{
	struct sqs *q = calloc(1, sizeof(*q));
	if (q == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	q->host = host;
	q->timeout_ms = 3000;
	q->wait_s = 20;
	q->presence_ms = 500;
	q->expiry_ms = 600000;
	q->route_ttl_ms = 60000;
	char *region = NULL;
	uint64_t wait_ms = 20000;
	const struct mcpd_config *topic_node = NULL, *prefix_node = NULL;
	for (size_t i = 0; i < host->config_count(section); i++) {
		const char *key;
		const struct mcpd_config *n = host->config_item(section, i, &key);
		int rc = 0;
		if (strcmp(key, "plugin") == 0)
			continue;
		if (strcmp(key, "topic") == 0) {
			rc = section_string(host, n, key, &q->topic, err, errlen);
			topic_node = n;
		} else if (strcmp(key, "queue_prefix") == 0) {
			rc = section_string(host, n, key, &q->prefix, err, errlen);
			prefix_node = n;
		} else if (strcmp(key, "region") == 0) {
			rc = section_string(host, n, key, &region, err, errlen);
		} else if (strcmp(key, "endpoint") == 0) {
			rc = section_string(host, n, key, &q->endpoint, err, errlen);
		} else if (strcmp(key, "profile") == 0) {
			rc = section_string(host, n, key, &q->profile, err, errlen);
		} else if (strcmp(key, "create_topic") == 0) {
			rc = parse_bool(host, n, key, &q->create_topic, err, errlen);
		} else if (strcmp(key, "fifo") == 0) {
			rc = parse_bool(host, n, key, &q->fifo, err, errlen);
		} else if (strcmp(key, "timeout") == 0) {
			rc = section_duration(host, n, key, 100, 60000, "100ms to 60s", &q->timeout_ms, err, errlen);
		} else if (strcmp(key, "wait") == 0) {
			rc = section_duration(host, n, key, 1000, 20000, "1s to 20s (SQS's longest poll)", &wait_ms,
			    err, errlen);
		} else if (strcmp(key, "presence_timeout") == 0) {
			rc = section_duration(host, n, key, 10, 30000, "10ms to 30s", &q->presence_ms, err, errlen);
		} else if (strcmp(key, "queue_expiry") == 0) {
			rc = section_duration(host, n, key, 3000, 7 * 86400000ULL, "3s to 7 days", &q->expiry_ms, err, errlen);
		} else if (strcmp(key, "route_ttl") == 0) {
			rc = section_duration(host, n, key, 0, 3600000, "0 (every message to all) to 1h", &q->route_ttl_ms,
			    err, errlen);
		} else {
			rc = section_error(host, n, err, errlen, "unknown key \"%s\" (sqs takes topic, create_topic, "
			    "queue_prefix, region, endpoint, profile, fifo, wait, timeout, presence_timeout, queue_expiry, "
			    "route_ttl)", key);
		}
		if (rc < 0)
			goto fail;
	}
	q->wait_s = wait_ms / 1000;
	if (q->topic == NULL) {
		section_say(err, errlen, "sqs needs topic: (the SNS topic's name or ARN)");
		goto fail;
	}
	const char *name = strncmp(q->topic, "arn:", 4) == 0 ? strrchr(q->topic, ':') + 1 : q->topic;
	size_t tl = strlen(name);
	if (tl == 0 || tl > 256 || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != tl ||
	    (strchr(name, '.') != NULL && !(tl > 5 && strcmp(name + tl - 5, ".fifo") == 0))) {
		section_error(host, topic_node, err, errlen, "topic must be a name of letters, digits, '-' and '_' "
		    "(ending in .fifo for a FIFO topic), or a topic ARN");
		goto fail;
	}
	int fifo_name = tl > 5 && strcmp(name + tl - 5, ".fifo") == 0;
	if (fifo_name != q->fifo) {
		section_error(host, topic_node, err, errlen, q->fifo ? "with fifo: true the topic's name must end in .fifo" :
		    "a .fifo topic needs fifo: true");
		goto fail;
	}
	if (q->prefix == NULL && (q->prefix = strdup("mcpd-")) == NULL) {
		section_say(err, errlen, "out of memory");
		goto fail;
	}
	size_t pl = strlen(q->prefix);
	/* SQS names: 80 characters of letters, digits, '-' and '_' (.fifo counts) */
	if (pl > 40 || strspn(q->prefix, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != pl) {
		section_error(host, prefix_node, err, errlen, "queue_prefix must be at most 40 letters, digits, '-' and '_'");
		goto fail;
	}
	char why[512];
	if (aws_region(region, q->profile, q->region, sizeof(q->region), why, sizeof(why)) < 0 ||
	    aws_service_init(&q->sqs_svc, "sqs", q->endpoint, q->region, why, sizeof(why)) < 0 ||
	    aws_service_init(&q->sns_svc, "sns", q->endpoint, q->region, why, sizeof(why)) < 0 ||
	    aws_service_init(&q->sts_svc, "sts", q->endpoint, q->region, why, sizeof(why)) < 0) {
		section_say(err, errlen, "sqs: %s", why);
		goto fail;
	}
	char what[600], pr[64];
	if (aws_creds_probe(q->profile, what, sizeof(what), pr, sizeof(pr), why, sizeof(why)) < 0) {
		section_say(err, errlen, "sqs: %s", why);
		goto fail;
	}
	if (!q->create_topic && topic_check(q, err, errlen) < 0)
		goto fail;
	unsigned char rnd[8];
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		section_say(err, errlen, "sqs: no random bytes for the instance's id");
		goto fail;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(q->instance + 2 * i, 3, "%02x", rnd[i]);
	free(region);
	return q;
fail:
	free(region);
	sqs_free(q);
	return NULL;
}

static int
sqs_attach(void *inst, char *err, size_t errlen)
{
	struct sqs *q = inst;
	struct event_base *base = q->host->event_base();
	snprintf(q->queue_name, sizeof(q->queue_name), "%s%s-%u%s", q->prefix, q->instance, q->host->worker_id(),
	    q->fifo ? ".fifo" : "");
	q->outq_tail = &q->outq;
	q->direct_tail = &q->direct;
	routes_init(&q->routes, q->route_ttl_ms);
	if ((q->client = aws_client_new(base, q->host, q->region, q->profile, "sqs", err, errlen)) == NULL)
		return -1;
	q->setup_timer = evtimer_new(base, setup_timer_cb, q);
	q->recv_timer = evtimer_new(base, recv_timer_cb, q);
	q->direct_ev = evtimer_new(base, direct_cb, q);
	q->flush_ev = evtimer_new(base, flush_cb, q);
	q->beat_timer = event_new(base, -1, EV_PERSIST, beat_cb, q);
	q->sweep_timer = event_new(base, -1, EV_PERSIST, sweep_cb, q);
	int lq = localq_init(&q->local, base, &q->subs);
	if (q->setup_timer == NULL || q->recv_timer == NULL || lq < 0 || q->beat_timer == NULL ||
	    q->sweep_timer == NULL || q->direct_ev == NULL || q->flush_ev == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	uint64_t beat = q->expiry_ms / 3;
	struct timeval tv = { (time_t)(beat / 1000), (suseconds_t)(beat % 1000) * 1000 };
	event_add(q->beat_timer, &tv);
	if (q->host->worker_id() == 1) {
		struct timeval sv = { (time_t)(q->expiry_ms / 1000), (suseconds_t)(q->expiry_ms % 1000) * 1000 };
		event_add(q->sweep_timer, &sv);
	}
	snprintf(q->setup_error, sizeof(q->setup_error), "sqs: setting up queue %s", q->queue_name);
	q->setup = SU_TOPIC;
	setup_step(q);
	return 0;
}

struct cleanup {
	struct event_base *base;
	int pending;
};

static void
cleaned(void *arg, const struct aws_result *r)
{
	(void)r;
	struct cleanup *c = arg;
	if (--c->pending == 0)
		event_base_loopbreak(c->base);
}

/* A worker that stops takes its queue and subscription away, within
 * CLEANUP_MS, on a loop of its own (the worker's has ended). */
static void
cleanup(struct sqs *q)
{
	if (q->queue_url == NULL && q->sub_arn == NULL)
		return;
	struct cleanup c = { event_base_new(), 0 };
	char why[300];
	struct aws_client *cl = c.base ? aws_client_new(c.base, q->host, q->region, q->profile, "sqs", why, sizeof(why)) : NULL;
	if (cl != NULL) {
		if (q->sub_arn != NULL) {
			char *f = NULL;
			form(&f, "Action", "Unsubscribe");
			form(&f, "Version", SNS_VERSION);
			form(&f, "SubscriptionArn", q->sub_arn);
			if ((f = form_done(f)) != NULL) {
				c.pending++;
				aws_query(cl, &q->sns_svc, f, CLEANUP_MS, CLEANUP_MS, cleaned, &c);
				free(f);
			}
		}
		if (q->queue_url != NULL) {
			cJSON *req = cJSON_CreateObject();
			cJSON_AddStringToObject(req, "QueueUrl", q->queue_url);
			char *body = cJSON_PrintUnformatted(req);
			cJSON_Delete(req);
			if (body != NULL) {
				c.pending++;
				aws_json(cl, &q->sqs_svc, "AmazonSQS.DeleteQueue", body, strlen(body), CLEANUP_MS, CLEANUP_MS,
				    cleaned, &c);
				free(body);
			}
		}
		struct timeval tv = { CLEANUP_MS / 1000 + 1, 0 };
		event_base_loopexit(c.base, &tv);
		if (c.pending > 0)
			event_base_dispatch(c.base);
	}
	aws_client_free(cl);
	if (c.base != NULL)
		event_base_free(c.base);
}

static void
sqs_detach(void *inst)
{
	struct sqs *q = inst;
	aws_client_free(q->client);     /* calls in flight dropped, callbacks unheard */
	q->client = NULL;
	cleanup(q);
	struct event **evs[] = { &q->setup_timer, &q->recv_timer, &q->beat_timer, &q->sweep_timer,
	    &q->direct_ev, &q->flush_ev };
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (*evs[i] != NULL) {
			event_free(*evs[i]);
			*evs[i] = NULL;
		}
	while (q->outq != NULL) {
		struct out *o = q->outq;
		q->outq = o->next;
		out_free(o);
	}
	for (size_t i = 0; i < MAX_CALLS; i++)
		while (q->calls[i].msgs != NULL) {
			struct out *o = q->calls[i].msgs;
			q->calls[i].msgs = o->next;
			out_free(o);
		}
	while (q->probes != NULL)
		probe_free(q->probes);
	while (q->direct != NULL) {
		struct direct *d = q->direct;
		q->direct = d->next;
		direct_free(d);
	}
	q->ndirect = 0;
	routes_clear(&q->routes);
	while (q->sweeps != NULL)
		sweep_free(q->sweeps);
	localq_clear(&q->local);
	subs_clear(&q->subs);
	free(q->topic_arn);
	free(q->queue_url);
	free(q->queue_arn);
	free(q->sub_arn);
	free(q->account);
	q->topic_arn = q->queue_url = q->queue_arn = q->sub_arn = q->account = NULL;
}

static void
sqs_destroy(void *inst)
{
	sqs_free(inst);
}

static int
sqs_status(void *inst, char *why, size_t len)
{
	struct sqs *q = inst;
	if (q->client == NULL) {
		snprintf(why, len, "not attached");
		return -1;
	}
	if (q->setup != SU_DONE) {
		snprintf(why, len, "%s", q->setup_error);
		return -1;
	}
	return aws_client_status(q->client, why, len);
}

static const struct mcpd_plugin descriptor = {
	.size = sizeof(struct mcpd_plugin),
	.abi_major = MCPD_PLUGIN_ABI_MAJOR,
	.abi_minor = MCPD_PLUGIN_ABI_MINOR,
	.kind = MCPD_PLUGIN_TRANSPORT,
	.name = "sqs",
	.version = "1.0.0",
	.create = sqs_create,
	.attach = sqs_attach,
	.detach = sqs_detach,
	.destroy = sqs_destroy,
	.ops = &transport_ops,
	.status = sqs_status,
};

const struct mcpd_plugin *
mcpd_plugin_entry(void)
{
	return &descriptor;
}
