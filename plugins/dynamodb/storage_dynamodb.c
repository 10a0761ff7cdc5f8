/*
 * dynamodb: storage in one DynamoDB table, so that mcpd instances on AWS
 * share sessions, event logs and the OAuth server's state through a
 * managed service. Built against <mcpd/plugin.h> alone; the calls are
 * plugins/common/aws.c's (SigV4, the credential chain, libcurl multi on
 * the worker's loop).
 *
 *   storage: { plugin: dynamodb, table: mcpd, region: eu-west-1 }
 *
 * Keys: table (required), region (else AWS_REGION...), endpoint (another
 * URL for the service: a VPC endpoint, an emulator), profile (of the
 * shared files), create_table (false), timeout (3s: each attempt of a
 * call; with retries a call has twice that).
 *
 * The table: partition key "pk" (S), sort key "sk" (S), and DynamoDB's
 * TTL on the attribute "ttl" (Unix seconds). Items:
 *
 *   a value            pk = key, sk = "v": v (B; N for a counter), exp
 *   an index member    pk = index, sk = "m:" + member: exp
 *   a log's head       pk = log, sk = "l": seq (the last entry's), max, exp
 *   a log's entry      pk = log, sk = "e:" + seq in 20 digits: d (B)
 *
 * exp is the expiry in Unix ms, absent for none; every read checks it,
 * since DynamoDB deletes expired items late (TTL works within days). Reads
 * are strongly consistent: a session deleted on one instance is gone for
 * every other at once. Conditions make set's only-if-absent and
 * only-if-present atomic (an expired item counts as absent), incr is an
 * UpdateItem ADD, and an append writes the head and the entry in one
 * transaction (TransactWriteItems), conditional on the head it read, so
 * that entries appear in order and a reader never sees a gap; the entry
 * that falls out of the newest max is deleted in the same transaction. A
 * log that lapsed starts again from 1, its old entries overwritten as it
 * grows (they were outside every reader's window). Expiry compares the
 * instances' clocks: keep them synchronised (NTP), as SigV4 needs anyway.
 *
 * A missing table is created when create_table is true (on demand, with
 * PAY_PER_REQUEST billing and TTL on "ttl"); otherwise it is an error at
 * start and in mcpd -t. /readyz fails while the table cannot be reached.
 */
#include <mcpd/plugin.h>

#include "aws.h"
#include "aws_creds.h"
#include "b64.h"
#include "clock.h"
#include "keyorder.h"
#include "section.h"
#include "storeop.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PK 2048                 /* DynamoDB's bounds on key attributes */
#define MAX_SK 1024
#define MAX_PAGES 64                /* of one Query */
#define APPEND_TRIES 16
#define PROBE_MS 1000               /* readiness checked again while down */
#define IDLE_CHECK_MS 5000          /* and when no call succeeded for this long */
#define TARGET "DynamoDB_20120810."

struct ddb {
	const struct mcpd_host *host;
	char *table;
	char region[64];
	char *endpoint;
	char *profile;
	int create_table;
	uint64_t timeout_ms;
	/* per worker */
	struct aws_client *client;
	struct aws_service svc;
	struct event *probe;
	int table_ready;            /* described ACTIVE once */
	int creating;
	int probing;
	int closing;
	const char *table_call;     /* the call about the table in flight */
	struct storeop *ops;        /* every operation not finished */
	char table_error[512];
};

/* ---- items and expressions ---- */

static cJSON *
av(const char *type, const char *value)
{
	cJSON *o = cJSON_CreateObject();
	if (o != NULL && cJSON_AddStringToObject(o, type, value) == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static void
add_av(cJSON *obj, const char *name, const char *type, const char *value)
{
	cJSON *a = av(type, value);
	if (a != NULL)
		cJSON_AddItemToObject(obj, name, a);
}

static void
add_n(cJSON *obj, const char *name, int64_t v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%" PRId64, v);
	add_av(obj, name, "N", buf);
}

static void
add_b(cJSON *obj, const char *name, const void *data, size_t len)
{
	char *s = b64_encode(data, len);
	if (s != NULL)
		add_av(obj, name, "B", s);
	free(s);
}

/* {"pk": {"S": pk}, "sk": {"S": sk}} */
static cJSON *
key_of(const char *pk, const char *sk)
{
	cJSON *k = cJSON_CreateObject();
	if (k != NULL) {
		add_av(k, "pk", "S", pk);
		add_av(k, "sk", "S", sk);
	}
	return k;
}

/* Only the names an expression uses may be listed: DynamoDB refuses others. */
static void
add_names_used(cJSON *req, const char *const *exprs)
{
	cJSON *n = cJSON_CreateObject();
	static const char *const pairs[][2] = { { "#k", "pk" }, { "#s", "sk" }, { "#v", "v" }, { "#e", "exp" },
	    { "#t", "ttl" }, { "#q", "seq" }, { "#m", "max" } };
	if (n == NULL)
		return;
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		int used = 0;
		for (const char *const *e = exprs; *e != NULL && !used; e++) {
			const char *p = *e;
			while ((p = strstr(p, pairs[i][0])) != NULL) {
				char c = p[2];
				if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
					used = 1;
					break;
				}
				p += 2;
			}
		}
		if (used)
			cJSON_AddStringToObject(n, pairs[i][0], pairs[i][1]);
	}
	if (n->child != NULL)
		cJSON_AddItemToObject(req, "ExpressionAttributeNames", n);
	else
		cJSON_Delete(n);
}

static int64_t
num(const cJSON *item, const char *name, int64_t dflt)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(item, name);
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(a, "N");
	return cJSON_IsString(n) ? strtoll(n->valuestring, NULL, 10) : dflt;
}

/* An item's exp has passed (an item without exp lives). */
static int
expired(const cJSON *item, uint64_t now)
{
	int64_t e = num(item, "exp", 0);
	return e > 0 && (uint64_t)e <= now;
}

static uint64_t
ttl_s(uint64_t exp_ms)
{
	return (exp_ms + 999) / 1000;
}

/* ---- operations ---- */

struct op {
	struct storeop s;               /* first: key, callback, the list, what pages gave (storeop.h) */
	struct ddb *d;
	void (*start)(struct op *);     /* the first request, when the key is free */
	char *sk;                       /* index ops: "m:" + member */
	int step;
	unsigned char *data;        /* set, append: the value; incr: none */
	size_t len;
	uint64_t ttl_ms;
	unsigned flags;
	int64_t by;
	uint64_t max, after;
	int tries;
	int found;                  /* del: the value was there */
	int64_t seq;                /* append: the head's seq read; range: the last */
	int64_t head_exp;
	int pages;
	cJSON *last_key;
};

static void
start_op(struct keyorder_op *q)
{
	struct op *o = (struct op *)q;
	o->start(o);
}

static void
op_free(struct op *o)
{
	storeop_clear(&o->s, !o->d->closing);
	free(o->sk);
	free(o->data);
	cJSON_Delete(o->last_key);
	free(o);
}

static void
fail(struct op *o, const char *why)
{
	storeop_fail(&o->s, why);
	op_free(o);
}

static void
done_status(struct op *o, int status)
{
	if (o->s.cb)
		((mcpd_done_cb *)o->s.cb)(o->s.arg, status, NULL);
	op_free(o);
}

static void answered(void *arg, const struct aws_result *r);

/* Sends req (taken) as action. */
static void
send_req(struct op *o, const char *action, cJSON *req)
{
	struct ddb *d = o->d;
	if (req == NULL) {
		fail(o, "out of memory");
		return;
	}
	cJSON_AddStringToObject(req, "TableName", d->table);
	char *body = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	if (body == NULL) {
		fail(o, "out of memory");
		return;
	}
	char target[64];
	snprintf(target, sizeof(target), TARGET "%s", action);
	aws_json(d->client, &d->svc, target, body, strlen(body), d->timeout_ms, 2 * d->timeout_ms, answered, o);
	free(body);
}

static struct op *
op_new(struct ddb *d, enum store_kind kind, const char *key, void *cb, void *arg)
{
	struct op *o = calloc(1, sizeof(*o));
	if (o == NULL || storeop_init(&o->s, &d->ops, kind, key, cb, arg) < 0) {
		free(o);
		return NULL;
	}
	o->s.q.start = start_op;
	o->d = d;
	return o;
}

/* A key too long for DynamoDB is refused, never cut. */
static int
key_ok(struct op *o, size_t sk_len)
{
	size_t n = strlen(o->s.key);
	if (n == 0 || n > MAX_PK || sk_len > MAX_SK) {
		fail(o, n == 0 ? "dynamodb: empty key" : "dynamodb: key too long (partition keys hold 2048 bytes, "
		    "index members 1022)");
		return -1;
	}
	return 0;
}

static void
get_item(struct op *o, const char *sk, const char *projection)
{
	cJSON *req = cJSON_CreateObject();
	if (req != NULL) {
		cJSON_AddItemToObject(req, "Key", key_of(o->s.key, sk));
		cJSON_AddTrueToObject(req, "ConsistentRead");
		if (projection != NULL) {
			cJSON_AddStringToObject(req, "ProjectionExpression", projection);
			const char *e[] = { projection, NULL };
			add_names_used(req, e);
		}
	}
	send_req(o, "GetItem", req);
}

/* Conditions with :now */
#define ABSENT "attribute_not_exists(#k) OR #e <= :now"
#define PRESENT "attribute_exists(#k) AND (attribute_not_exists(#e) OR #e > :now)"
#define LIVE_OR_ABSENT "attribute_not_exists(#k) OR attribute_not_exists(#e) OR #e > :now"

static void
add_values_now(cJSON *vals, uint64_t now)
{
	add_n(vals, ":now", (int64_t)now);
}

static void
put_value(struct op *o)
{
	uint64_t now = real_ms();
	cJSON *req = cJSON_CreateObject(), *item = cJSON_CreateObject();
	if (req == NULL || item == NULL) {
		cJSON_Delete(req);
		cJSON_Delete(item);
		fail(o, "out of memory");
		return;
	}
	add_av(item, "pk", "S", o->s.key);
	add_av(item, "sk", "S", "v");
	add_b(item, "v", o->data ? o->data : (unsigned char *)"", o->len);
	if (o->ttl_ms > 0) {
		add_n(item, "exp", (int64_t)(now + o->ttl_ms));
		add_n(item, "ttl", (int64_t)ttl_s(now + o->ttl_ms));
	}
	cJSON_AddItemToObject(req, "Item", item);
	const char *cond = o->flags & MCPD_SET_IF_ABSENT ? ABSENT : o->flags & MCPD_SET_IF_PRESENT ? PRESENT : NULL;
	if (cond != NULL) {
		cJSON_AddStringToObject(req, "ConditionExpression", cond);
		const char *e[] = { cond, NULL };
		add_names_used(req, e);
		add_values_now(cJSON_AddObjectToObject(req, "ExpressionAttributeValues"), now);
	}
	send_req(o, "PutItem", req);
}

static void delete_item(struct op *o, const char *sk);

static void
start_get(struct op *o)
{
	get_item(o, "v", NULL);
}

static void
start_exists(struct op *o)
{
	get_item(o, "v", "#k, #e");
}

static void
start_del(struct op *o)
{
	delete_item(o, "v");            /* step 0: the value; step 1: the log's head */
}

static void
start_head(struct op *o)
{
	get_item(o, "l", NULL);
}

static void
start_index_remove(struct op *o)
{
	delete_item(o, o->sk);
}

static void
s_get(void *inst, const char *key, mcpd_value_cb *cb, void *arg)
{
	struct op *o = op_new(inst, K_GET, key, (void *)cb, arg);
	if (o == NULL) {
		cb(arg, MCPD_ERROR, NULL, 0, "out of memory");
		return;
	}
	if (key_ok(o, 1) == 0) {
		o->start = start_get;
		keyorder_submit(&o->s.q);
	}
}

static void
s_set(void *inst, const char *key, const void *value, size_t len, uint64_t ttl_ms, unsigned flags,
    mcpd_done_cb *cb, void *arg)
{
	struct op *o = op_new(inst, K_SET, key, (void *)cb, arg);
	if (o == NULL) {
		if (cb)
			cb(arg, MCPD_ERROR, "out of memory");
		return;
	}
	if (key_ok(o, 1) < 0)
		return;
	o->data = malloc(len ? len : 1);
	if (o->data == NULL) {
		fail(o, "out of memory");
		return;
	}
	memcpy(o->data, value, len);
	o->len = len;
	o->ttl_ms = ttl_ms;
	o->flags = flags;
	o->start = put_value;
	keyorder_submit(&o->s.q);
}

static void
delete_item(struct op *o, const char *sk)
{
	cJSON *req = cJSON_CreateObject();
	if (req != NULL) {
		cJSON_AddItemToObject(req, "Key", key_of(o->s.key, sk));
		cJSON_AddStringToObject(req, "ReturnValues", "ALL_OLD");
	}
	send_req(o, "DeleteItem", req);
}

static void
s_del(void *inst, const char *key, mcpd_done_cb *cb, void *arg)
{
	struct op *o = op_new(inst, K_DEL, key, (void *)cb, arg);
	if (o == NULL) {
		if (cb)
			cb(arg, MCPD_ERROR, "out of memory");
		return;
	}
	if (key_ok(o, 1) == 0) {
		o->start = start_del;
		keyorder_submit(&o->s.q);
	}
}

static void
s_exists(void *inst, const char *key, mcpd_done_cb *cb, void *arg)
{
	struct op *o = op_new(inst, K_EXISTS, key, (void *)cb, arg);
	if (o == NULL) {
		if (cb)
			cb(arg, MCPD_ERROR, "out of memory");
		return;
	}
	if (key_ok(o, 1) == 0) {
		o->start = start_exists;
		keyorder_submit(&o->s.q);
	}
}

/* Step 0: ADD to a live or absent counter; step 1: over an expired one,
 * a new counter (conditional on its still being expired). */
static void
incr_step(struct op *o)
{
	uint64_t now = real_ms();
	cJSON *req = cJSON_CreateObject();
	if (req == NULL) {
		fail(o, "out of memory");
		return;
	}
	cJSON *vals = cJSON_AddObjectToObject(req, "ExpressionAttributeValues");
	add_values_now(vals, now);
	const char *update = NULL, *cond;
	if (o->step == 0) {
		cJSON_AddItemToObject(req, "Key", key_of(o->s.key, "v"));
		update = o->ttl_ms > 0 ? "ADD #v :by SET #e = :exp, #t = :ttl" : "ADD #v :by";
		cond = LIVE_OR_ABSENT;
		cJSON_AddStringToObject(req, "UpdateExpression", update);
		cJSON_AddStringToObject(req, "ReturnValues", "UPDATED_NEW");
	} else {
		cJSON *item = cJSON_CreateObject();
		add_av(item, "pk", "S", o->s.key);
		add_av(item, "sk", "S", "v");
		cJSON_AddItemToObject(req, "Item", item);
		add_n(item, "v", o->by);
		if (o->ttl_ms > 0) {
			add_n(item, "exp", (int64_t)(now + o->ttl_ms));
			add_n(item, "ttl", (int64_t)ttl_s(now + o->ttl_ms));
		}
		cond = "#e <= :now";
	}
	add_n(vals, ":by", o->by);
	if (o->ttl_ms > 0 && o->step == 0) {
		add_n(vals, ":exp", (int64_t)(now + o->ttl_ms));
		add_n(vals, ":ttl", (int64_t)ttl_s(now + o->ttl_ms));
	}
	if (o->step == 1)
		cJSON_DeleteItemFromObject(vals, ":by");
	cJSON_AddStringToObject(req, "ConditionExpression", cond);
	const char *e[] = { cond, update ? update : "", NULL };
	add_names_used(req, e);
	send_req(o, o->step == 0 ? "UpdateItem" : "PutItem", req);
}

static void
s_incr(void *inst, const char *key, int64_t by, uint64_t ttl_ms, mcpd_int_cb *cb, void *arg)
{
	struct op *o = op_new(inst, K_INCR, key, (void *)cb, arg);
	if (o == NULL) {
		if (cb)
			cb(arg, MCPD_ERROR, 0, "out of memory");
		return;
	}
	if (key_ok(o, 1) < 0)
		return;
	o->by = by;
	o->ttl_ms = ttl_ms;
	o->start = incr_step;
	keyorder_submit(&o->s.q);
}

static void
start_index_add(struct op *o)
{
	uint64_t now = real_ms();
	cJSON *req = cJSON_CreateObject(), *item = cJSON_CreateObject();
	if (req != NULL && item != NULL) {
		add_av(item, "pk", "S", o->s.key);
		add_av(item, "sk", "S", o->sk);
		if (o->ttl_ms > 0) {
			add_n(item, "exp", (int64_t)(now + o->ttl_ms));
			add_n(item, "ttl", (int64_t)ttl_s(now + o->ttl_ms));
		}
		cJSON_AddItemToObject(req, "Item", item);
		item = NULL;
	}
	cJSON_Delete(item);
	send_req(o, "PutItem", req);
}

/* An index operation on member: o with its sort key, or NULL (cb told). */
static struct op *
index_op(struct ddb *d, enum store_kind kind, const char *index, const char *member, mcpd_done_cb *cb, void *arg)
{
	struct op *o = op_new(d, kind, index, (void *)cb, arg);
	if (o == NULL || asprintf(&o->sk, "m:%s", member) < 0) {
		if (o != NULL) {
			o->sk = NULL;
			op_free(o);
		}
		if (cb)
			cb(arg, MCPD_ERROR, "out of memory");
		return NULL;
	}
	return key_ok(o, strlen(o->sk)) == 0 ? o : NULL;
}

static void
s_index_add(void *inst, const char *index, const char *member, uint64_t ttl_ms, mcpd_done_cb *cb, void *arg)
{
	struct op *o = index_op(inst, K_IDX_ADD, index, member, cb, arg);
	if (o != NULL) {
		o->ttl_ms = ttl_ms;
		o->start = start_index_add;
		keyorder_submit(&o->s.q);
	}
}

static void
s_index_remove(void *inst, const char *index, const char *member, mcpd_done_cb *cb, void *arg)
{
	struct op *o = index_op(inst, K_IDX_REM, index, member, cb, arg);
	if (o != NULL) {
		o->start = start_index_remove;
		keyorder_submit(&o->s.q);
	}
}

/* A Query of pk's items whose sk is within [from, to] (or begins with
 * from when to is NULL), oldest first, going on from o->last_key. */
static void
query(struct op *o, const char *from, const char *to, size_t limit)
{
	cJSON *req = cJSON_CreateObject();
	if (req == NULL) {
		fail(o, "out of memory");
		return;
	}
	const char *kc = to ? "#k = :pk AND #s BETWEEN :a AND :b" : "#k = :pk AND begins_with(#s, :a)";
	cJSON_AddStringToObject(req, "KeyConditionExpression", kc);
	const char *e[] = { kc, NULL };
	add_names_used(req, e);
	cJSON *vals = cJSON_AddObjectToObject(req, "ExpressionAttributeValues");
	add_av(vals, ":pk", "S", o->s.key);
	add_av(vals, ":a", "S", from);
	if (to != NULL)
		add_av(vals, ":b", "S", to);
	cJSON_AddTrueToObject(req, "ConsistentRead");
	if (limit > 0)
		cJSON_AddNumberToObject(req, "Limit", (double)limit);
	if (o->last_key != NULL) {
		cJSON_AddItemToObject(req, "ExclusiveStartKey", o->last_key);
		o->last_key = NULL;
	}
	send_req(o, "Query", req);
}

static void
start_members(struct op *o)
{
	query(o, "m:", NULL, 0);
}

static void
s_index_members(void *inst, const char *index, mcpd_members_cb *cb, void *arg)
{
	struct op *o = op_new(inst, K_MEMBERS, index, (void *)cb, arg);
	if (o == NULL) {
		cb(arg, MCPD_ERROR, NULL, 0, "out of memory");
		return;
	}
	if (key_ok(o, 2) == 0) {
		o->start = start_members;
		keyorder_submit(&o->s.q);
	}
}

static void
entry_sk(char *buf, size_t len, uint64_t seq)
{
	snprintf(buf, len, "e:%020" PRIu64, seq);
}

/* Step 0: read the head; step 1: the transaction. */
static void
append_write(struct op *o)
{
	uint64_t now = real_ms();
	int live = o->found && !(o->head_exp > 0 && (uint64_t)o->head_exp <= now);
	uint64_t seq = live ? (uint64_t)o->seq + 1 : 1;
	int64_t exp = o->ttl_ms > 0 ? (int64_t)(now + o->ttl_ms) : live ? o->head_exp : 0;
	char sk[32];
	cJSON *req = cJSON_CreateObject(), *items = cJSON_AddArrayToObject(req, "TransactItems");
	if (req == NULL || items == NULL) {
		cJSON_Delete(req);
		fail(o, "out of memory");
		return;
	}
	/* the head, conditional on what was read */
	cJSON *put = cJSON_CreateObject(), *p = cJSON_AddObjectToObject(put, "Put");
	cJSON *item = cJSON_AddObjectToObject(p, "Item");
	cJSON_AddItemToArray(items, put);
	add_av(item, "pk", "S", o->s.key);
	add_av(item, "sk", "S", "l");
	add_n(item, "seq", (int64_t)seq);
	add_n(item, "max", (int64_t)o->max);
	if (exp > 0) {
		add_n(item, "exp", exp);
		add_n(item, "ttl", (int64_t)ttl_s((uint64_t)exp));
	}
	cJSON_AddStringToObject(p, "TableName", o->d->table);
	const char *cond = o->found ? "#q = :seq" : "attribute_not_exists(#k)";
	cJSON_AddStringToObject(p, "ConditionExpression", cond);
	const char *e[] = { cond, NULL };
	add_names_used(p, e);
	if (o->found)
		add_n(cJSON_AddObjectToObject(p, "ExpressionAttributeValues"), ":seq", o->seq);
	/* the entry */
	put = cJSON_CreateObject();
	p = cJSON_AddObjectToObject(put, "Put");
	item = cJSON_AddObjectToObject(p, "Item");
	cJSON_AddItemToArray(items, put);
	entry_sk(sk, sizeof(sk), seq);
	add_av(item, "pk", "S", o->s.key);
	add_av(item, "sk", "S", sk);
	add_b(item, "d", o->data ? o->data : (unsigned char *)"", o->len);
	if (exp > 0)
		add_n(item, "ttl", (int64_t)ttl_s((uint64_t)exp));
	cJSON_AddStringToObject(p, "TableName", o->d->table);
	/* the one that falls out of the window */
	if (seq > o->max) {
		cJSON *del = cJSON_CreateObject(), *dd = cJSON_AddObjectToObject(del, "Delete");
		cJSON_AddItemToArray(items, del);
		entry_sk(sk, sizeof(sk), seq - o->max);
		cJSON_AddItemToObject(dd, "Key", key_of(o->s.key, sk));
		cJSON_AddStringToObject(dd, "TableName", o->d->table);
	}
	o->step = 1;
	o->seq = (int64_t)seq;          /* what to report */
	send_req(o, "TransactWriteItems", req);
}

static void
s_log_append(void *inst, const char *log, const void *entry, size_t len, uint64_t max_entries, uint64_t ttl_ms,
    mcpd_int_cb *cb, void *arg)
{
	struct op *o = op_new(inst, K_APPEND, log, (void *)cb, arg);
	if (o == NULL) {
		if (cb)
			cb(arg, MCPD_ERROR, 0, "out of memory");
		return;
	}
	if (key_ok(o, 22) < 0)
		return;
	if ((o->data = malloc(len ? len : 1)) == NULL) {
		fail(o, "out of memory");
		return;
	}
	memcpy(o->data, entry, len);
	o->len = len;
	o->max = max_entries ? max_entries : 1;
	o->ttl_ms = ttl_ms;
	o->start = start_head;
	keyorder_submit(&o->s.q);
}

static void
s_log_range(void *inst, const char *log, uint64_t after, size_t max, mcpd_entries_cb *cb, void *arg)
{
	struct op *o = op_new(inst, K_RANGE, log, (void *)cb, arg);
	if (o == NULL) {
		cb(arg, MCPD_ERROR, NULL, 0, "out of memory");
		return;
	}
	if (key_ok(o, 22) < 0)
		return;
	o->after = after;
	o->max = max;
	o->start = start_head;
	keyorder_submit(&o->s.q);
}

/* ---- answers ---- */

static int
is(const struct aws_result *r, const char *type)
{
	return r->type != NULL && strcmp(r->type, type) == 0;
}

/* TransactionCanceledException whose reasons include a condition. */
static int
tx_conflict(const struct aws_result *r)
{
	return is(r, "TransactionCanceledException") && r->body != NULL &&
	    (strstr(r->body, "ConditionalCheckFailed") != NULL || strstr(r->body, "TransactionConflict") != NULL);
}

static void
too_large(struct op *o, const struct aws_result *r)
{
	char why[700];
	snprintf(why, sizeof(why), "dynamodb: the item is too large (DynamoDB keeps at most 400 KB an item): %s",
	    r->message);
	fail(o, why);
}

static int
size_error(const struct aws_result *r)
{
	return (is(r, "ValidationException") || is(r, "TransactionCanceledException")) && r->message != NULL &&
	    (strstr(r->message, "size") != NULL || strstr(r->body ? r->body : "", "size has exceeded") != NULL);
}

static void
got_value(struct op *o, const cJSON *item)
{
	mcpd_value_cb *cb = o->s.cb;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, "v");
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(v, "B");
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(v, "N");
	if (cJSON_IsString(n)) {
		cb(o->s.arg, MCPD_OK, n->valuestring, strlen(n->valuestring), NULL);
	} else if (cJSON_IsString(b)) {
		size_t len;
		unsigned char *data = b64_decode(b->valuestring, &len);
		if (data == NULL)
			cb(o->s.arg, MCPD_ERROR, NULL, 0, "dynamodb: a value that is not base64");
		else
			cb(o->s.arg, MCPD_OK, data, len, NULL);
		free(data);
	} else {
		cb(o->s.arg, MCPD_ERROR, NULL, 0, "dynamodb: an item without a value");
	}
	op_free(o);
}

static void
range_page(struct op *o, const cJSON *ans)
{
	const cJSON *items = cJSON_GetObjectItemCaseSensitive(ans, "Items"), *it;
	cJSON_ArrayForEach(it, items) {
		if (o->s.n >= o->max)
			break;
		const cJSON *sk = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(it, "sk"), "S");
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(it, "d"), "B");
		if (!cJSON_IsString(sk) || !cJSON_IsString(d) || strncmp(sk->valuestring, "e:", 2) != 0)
			continue;
		size_t len;
		unsigned char *data = b64_decode(d->valuestring, &len);
		if (data == NULL)
			continue;
		if (storeop_add_entry(&o->s, strtoull(sk->valuestring + 2, NULL, 10), data, len) < 0)
			break;
	}
}

static void
members_page(struct op *o, const cJSON *ans, uint64_t now)
{
	const cJSON *items = cJSON_GetObjectItemCaseSensitive(ans, "Items"), *it;
	cJSON_ArrayForEach(it, items) {
		const cJSON *sk = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(it, "sk"), "S");
		if (!cJSON_IsString(sk) || strncmp(sk->valuestring, "m:", 2) != 0 || expired(it, now))
			continue;
		char *m = strdup(sk->valuestring + 2);
		if (m != NULL && storeop_add_name(&o->s, m) < 0)
			break;
	}
}

/* Another page when the answer says there is one. 1 if one was asked. */
static int
next_page(struct op *o, const cJSON *ans, const char *from, const char *to, size_t limit)
{
	const cJSON *lk = cJSON_GetObjectItemCaseSensitive(ans, "LastEvaluatedKey");
	if (lk == NULL || ++o->pages >= MAX_PAGES)
		return 0;
	o->last_key = cJSON_Duplicate(lk, 1);
	if (o->last_key == NULL)
		return 0;
	query(o, from, to, limit);
	return 1;
}

static void
answered(void *arg, const struct aws_result *r)
{
	struct op *o = arg;
	uint64_t now = real_ms();
	int ok = r->type == NULL;
	if (!ok) {
		if (is(r, "ConditionalCheckFailedException")) {
			if (o->s.kind == K_SET) {
				done_status(o, MCPD_CONFLICT);
				return;
			}
			if (o->s.kind == K_INCR && o->step == 0) {
				o->step = 1;            /* expired: start it anew */
				incr_step(o);
				return;
			}
			if (o->s.kind == K_INCR && ++o->tries < APPEND_TRIES) {
				o->step = 0;            /* renewed meanwhile: add to it */
				incr_step(o);
				return;
			}
		}
		if (o->s.kind == K_APPEND && o->step == 1 && tx_conflict(r) && ++o->tries < APPEND_TRIES) {
			o->step = 0;                    /* another append won: read again */
			get_item(o, "l", NULL);
			return;
		}
		if (size_error(r)) {
			too_large(o, r);
			return;
		}
		if (is(r, "ResourceNotFoundException")) {
			char why[700];
			snprintf(why, sizeof(why), "dynamodb: table %s not found%s", o->d->table,
			    o->d->create_table ? " (being created)" : " (create it, or set create_table: true)");
			fail(o, why);
			return;
		}
		fail(o, r->message);
		return;
	}
	cJSON *ans = cJSON_ParseWithLength(r->body, r->len);
	if (ans == NULL) {
		fail(o, "dynamodb: an answer that is not JSON");
		return;
	}
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(ans, "Item");
	const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(ans, "Attributes");
	switch (o->s.kind) {
	case K_GET:
		if (item == NULL || expired(item, now)) {
			((mcpd_value_cb *)o->s.cb)(o->s.arg, MCPD_NOT_FOUND, NULL, 0, NULL);
			op_free(o);
		} else {
			got_value(o, item);
		}
		break;
	case K_EXISTS:
		done_status(o, item != NULL && !expired(item, now) ? MCPD_OK : MCPD_NOT_FOUND);
		break;
	case K_SET:
	case K_IDX_ADD:
		done_status(o, MCPD_OK);
		break;
	case K_IDX_REM:
		done_status(o, attrs != NULL && !expired(attrs, now) ? MCPD_OK : MCPD_NOT_FOUND);
		break;
	case K_DEL:
		if (o->step == 0) {
			o->found = attrs != NULL && !expired(attrs, now);
			o->step = 1;
			delete_item(o, "l");
		} else {
			done_status(o, o->found || (attrs != NULL && !expired(attrs, now)) ? MCPD_OK : MCPD_NOT_FOUND);
		}
		break;
	case K_INCR: {
		int64_t v = o->step == 0 ? num(attrs, "v", INT64_MIN) : o->by;
		if (v == INT64_MIN)
			fail(o, "dynamodb: no counter in the answer");
		else {
			if (o->s.cb)
				((mcpd_int_cb *)o->s.cb)(o->s.arg, MCPD_OK, v, NULL);
			op_free(o);
		}
		break;
	}
	case K_APPEND:
		if (o->step == 0) {
			o->found = item != NULL;
			o->seq = num(item, "seq", 0);
			o->head_exp = num(item, "exp", 0);
			append_write(o);
		} else {
			if (o->s.cb)
				((mcpd_int_cb *)o->s.cb)(o->s.arg, MCPD_OK, o->seq, NULL);
			op_free(o);
		}
		break;
	case K_RANGE: {
		char from[32], to[32];
		if (o->step == 0) {
			if (item == NULL || expired(item, now) || o->max == 0) {
				((mcpd_entries_cb *)o->s.cb)(o->s.arg, MCPD_OK, NULL, 0, NULL);
				op_free(o);
				break;
			}
			int64_t seq = num(item, "seq", 0), max = num(item, "max", 1);
			uint64_t lo = seq > max ? (uint64_t)(seq - max) : 0;
			if (o->after > lo)
				lo = o->after;
			if (lo >= (uint64_t)seq) {
				((mcpd_entries_cb *)o->s.cb)(o->s.arg, MCPD_OK, NULL, 0, NULL);
				op_free(o);
				break;
			}
			o->seq = seq;
			o->after = lo;
			o->step = 1;
			entry_sk(from, sizeof(from), lo + 1);
			entry_sk(to, sizeof(to), (uint64_t)seq);
			query(o, from, to, o->max);
			break;
		}
		range_page(o, ans);
		entry_sk(from, sizeof(from), o->after + 1);
		entry_sk(to, sizeof(to), (uint64_t)o->seq);
		if (o->s.n < o->max && next_page(o, ans, from, to, o->max - o->s.n))
			break;
		((mcpd_entries_cb *)o->s.cb)(o->s.arg, MCPD_OK, o->s.entries, o->s.n, NULL);
		op_free(o);
		break;
	}
	case K_MEMBERS:
		members_page(o, ans, now);
		if (next_page(o, ans, "m:", NULL, 0))
			break;
		((mcpd_members_cb *)o->s.cb)(o->s.arg, MCPD_OK, (const char *const *)o->s.names, o->s.n, NULL);
		op_free(o);
		break;
	}
	cJSON_Delete(ans);
}

static const struct mcpd_storage_ops storage_ops = {
	.size = sizeof(struct mcpd_storage_ops),
	.get = s_get,
	.set = s_set,
	.del = s_del,
	.exists = s_exists,
	.incr = s_incr,
	.index_add = s_index_add,
	.index_remove = s_index_remove,
	.index_members = s_index_members,
	.log_append = s_log_append,
	.log_range = s_log_range,
};

/* ---- the table ---- */

/* One call about the table at a time (DescribeTable, CreateTable,
 * UpdateTimeToLive): what it is, in d->table_call. */
static void table_answer(void *arg, const struct aws_result *r);

static void
table_call(struct ddb *d, const char *action, cJSON *req)
{
	char *body = NULL;
	if (req != NULL) {
		cJSON_AddStringToObject(req, "TableName", d->table);
		body = cJSON_PrintUnformatted(req);
	}
	cJSON_Delete(req);
	if (body == NULL) {
		d->probing = 0;
		return;
	}
	d->table_call = action;
	char target[64];
	snprintf(target, sizeof(target), TARGET "%s", action);
	aws_json(d->client, &d->svc, target, body, strlen(body), d->timeout_ms, 2 * d->timeout_ms, table_answer, d);
	free(body);
}

static void
create(struct ddb *d)
{
	cJSON *req = cJSON_Parse("{\"AttributeDefinitions\":[{\"AttributeName\":\"pk\",\"AttributeType\":\"S\"},"
	    "{\"AttributeName\":\"sk\",\"AttributeType\":\"S\"}],\"KeySchema\":[{\"AttributeName\":\"pk\","
	    "\"KeyType\":\"HASH\"},{\"AttributeName\":\"sk\",\"KeyType\":\"RANGE\"}],"
	    "\"BillingMode\":\"PAY_PER_REQUEST\"}");
	d->creating = 1;
	d->host->log(MCPD_LOG_NOTICE, "dynamodb: creating table %s", d->table);
	table_call(d, "CreateTable", req);
}

static void
table_answer(void *arg, const struct aws_result *r)
{
	struct ddb *d = arg;
	const char *what = d->table_call;
	if (strcmp(what, "UpdateTimeToLive") == 0) {
		if (r->type != NULL && !is(r, "ValidationException"))   /* already on */
			d->host->log(MCPD_LOG_WARN, "dynamodb: cannot turn TTL on for table %s: %s", d->table, r->message);
		d->probing = 0;
		return;
	}
	if (strcmp(what, "CreateTable") == 0) {
		if (r->type != NULL && !is(r, "ResourceInUseException")) {
			snprintf(d->table_error, sizeof(d->table_error), "cannot create table %s: %s", d->table, r->message);
			d->host->log(MCPD_LOG_ERROR, "dynamodb: %s", d->table_error);
			d->creating = 0;
			d->probing = 0;
			return;
		}
		/* Made (or being made by another worker): is it ACTIVE yet? */
		table_call(d, "DescribeTable", cJSON_CreateObject());
		return;
	}
	if (r->type != NULL) {
		if (is(r, "ResourceNotFoundException")) {
			if (d->create_table && !d->creating) {
				create(d);
				return;
			}
			if (!d->create_table) {
				snprintf(d->table_error, sizeof(d->table_error), "table %s does not exist in %s (create it, "
				    "or set create_table: true)", d->table, d->region);
				d->host->log(MCPD_LOG_ERROR, "dynamodb: %s", d->table_error);
			}
		} else {
			snprintf(d->table_error, sizeof(d->table_error), "%s", r->message);
		}
		d->table_ready = 0;
		d->probing = 0;
		return;
	}
	cJSON *ans = cJSON_ParseWithLength(r->body, r->len);
	const cJSON *tbl = cJSON_GetObjectItemCaseSensitive(ans, "Table");
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(tbl, "TableStatus");
	int active = cJSON_IsString(st) && (strcmp(st->valuestring, "ACTIVE") == 0 ||
	    strcmp(st->valuestring, "UPDATING") == 0);
	cJSON_Delete(ans);
	if (!active) {
		snprintf(d->table_error, sizeof(d->table_error), "table %s is not active yet", d->table);
		d->probing = 0;
		return;
	}
	if (!d->table_ready && d->table_error[0])
		d->host->log(MCPD_LOG_NOTICE, "dynamodb: table %s is ready", d->table);
	d->table_ready = 1;
	d->table_error[0] = '\0';
	if (d->creating) {
		d->creating = 0;
		cJSON *req = cJSON_Parse("{\"TimeToLiveSpecification\":{\"Enabled\":true,\"AttributeName\":\"ttl\"}}");
		table_call(d, "UpdateTimeToLive", req);
		return;
	}
	d->probing = 0;
}

/* While the table is not known to be there, or calls fail, look again. */
static void
probe_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct ddb *d = arg;
	char why[16];
	/* A worker without traffic would not notice the service going
	 * away: /readyz must, so an idle worker asks every IDLE_CHECK_MS. */
	if (d->probing || (d->table_ready && aws_client_status(d->client, why, sizeof(why)) == 0 &&
	    aws_client_idle_ms(d->client) < IDLE_CHECK_MS))
		return;
	d->probing = 1;
	table_call(d, "DescribeTable", cJSON_CreateObject());
}

/* ---- configuration and lifecycle ---- */

struct check {
	struct event_base *base;
	int done, missing;
	char why[700];
};

static void
checked(void *arg, const struct aws_result *r)
{
	struct check *k = arg;
	k->done = 1;
	k->missing = is(r, "ResourceNotFoundException");
	snprintf(k->why, sizeof(k->why), "%s", r->message ? r->message : "");
	event_base_loopbreak(k->base);
}

/* At configuration time (mcpd -t too): is the table there? Asked once,
 * on a loop of our own, within CHECK_MS; only a definite "no such table"
 * is an error (the service unreachable now is the workers' to wait for). */
#define CHECK_MS 3000

static int
table_check(struct ddb *d, char *err, size_t errlen)
{
	struct check k = { 0 };
	char why[512], body[600];
	if ((k.base = event_base_new()) == NULL)
		return 0;
	struct aws_client *c = aws_client_new(k.base, d->host, d->region, d->profile, "dynamodb", why, sizeof(why));
	cJSON *req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "TableName", d->table);
	char *text = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	if (c != NULL && text != NULL && strlen(text) < sizeof(body)) {
		snprintf(body, sizeof(body), "%s", text);
		aws_json(c, &d->svc, TARGET "DescribeTable", body, strlen(body), CHECK_MS * 2 / 3, CHECK_MS, checked, &k);
		struct timeval tv = { CHECK_MS / 1000 + 1, 0 };
		event_base_loopexit(k.base, &tv);
		event_base_dispatch(k.base);
	}
	free(text);
	aws_client_free(c);
	event_base_free(k.base);
	if (k.missing) {
		section_say(err, errlen, "dynamodb: table %s does not exist in %s (create it, or set create_table: true)",
		    d->table, d->region);
		return -1;
	}
	if (!k.done)
		d->host->log(MCPD_LOG_WARN, "dynamodb: table %s not checked: no answer within %dms", d->table, CHECK_MS);
	else if (k.why[0])
		d->host->log(MCPD_LOG_WARN, "dynamodb: table %s not checked: %s", d->table, k.why);
	return 0;
}

static void *
ddb_create(const struct mcpd_host *host, const struct mcpd_config *section, char *err, size_t errlen)
{
	struct ddb *d = calloc(1, sizeof(*d));
	if (d == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->host = host;
	d->timeout_ms = 3000;
	char *region = NULL;
	const struct mcpd_config *table_node = NULL;
	for (size_t i = 0; i < host->config_count(section); i++) {
		const char *key;
		const struct mcpd_config *n = host->config_item(section, i, &key);
		int rc = 0;
		if (strcmp(key, "plugin") == 0)
			continue;
		if (strcmp(key, "table") == 0) {
			rc = section_string(host, n, key, &d->table, err, errlen);
			table_node = n;
		} else if (strcmp(key, "region") == 0) {
			rc = section_string(host, n, key, &region, err, errlen);
		} else if (strcmp(key, "endpoint") == 0) {
			rc = section_string(host, n, key, &d->endpoint, err, errlen);
		} else if (strcmp(key, "profile") == 0) {
			rc = section_string(host, n, key, &d->profile, err, errlen);
		} else if (strcmp(key, "create_table") == 0) {
			const char *v = host->config_scalar(n);
			if (v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "false") == 0))
				d->create_table = strcmp(v, "true") == 0;
			else
				rc = section_error(host, n, err, errlen, "create_table must be true or false");
		} else if (strcmp(key, "timeout") == 0) {
			rc = section_duration(host, n, key, 100, 60000, "100ms to 60s", &d->timeout_ms, err, errlen);
		} else {
			rc = section_error(host, n, err, errlen, "unknown key \"%s\" (dynamodb takes table, region, "
			    "endpoint, profile, create_table, timeout)", key);
		}
		if (rc < 0)
			goto fail;
	}
	if (d->table == NULL) {
		section_say(err, errlen, "dynamodb needs table: (the name of its DynamoDB table)");
		goto fail;
	}
	size_t tl = strlen(d->table);
	if (tl < 3 || tl > 255 || strspn(d->table, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != tl) {
		section_error(host, table_node, err, errlen, "table must be 3 to 255 letters, digits, '_', '-' or '.'");
		goto fail;
	}
	char why[512];
	if (aws_region(region, d->profile, d->region, sizeof(d->region), why, sizeof(why)) < 0 ||
	    aws_service_init(&d->svc, "dynamodb", d->endpoint, d->region, why, sizeof(why)) < 0) {
		section_say(err, errlen, "dynamodb: %s", why);
		goto fail;
	}
	char what[600], pr[64];
	if (aws_creds_probe(d->profile, what, sizeof(what), pr, sizeof(pr), why, sizeof(why)) < 0) {
		section_say(err, errlen, "dynamodb: %s", why);
		goto fail;
	}
	if (!d->create_table && table_check(d, err, errlen) < 0)
		goto fail;
	free(region);
	return d;
fail:
	free(region);
	free(d->table);
	free(d->endpoint);
	free(d->profile);
	free(d);
	return NULL;
}

static int
ddb_attach(void *inst, char *err, size_t errlen)
{
	struct ddb *d = inst;
	struct event_base *base = d->host->event_base();
	if ((d->client = aws_client_new(base, d->host, d->region, d->profile, "dynamodb", err, errlen)) == NULL)
		return -1;
	d->probe = event_new(base, -1, EV_PERSIST, probe_cb, d);
	if (d->probe == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(d->table_error, sizeof(d->table_error), "table %s not checked yet", d->table);
	struct timeval tv = { PROBE_MS / 1000, (PROBE_MS % 1000) * 1000 };
	event_add(d->probe, &tv);
	probe_cb(-1, 0, d);
	return 0;
}

static void
ddb_detach(void *inst)
{
	struct ddb *d = inst;
	if (d->probe != NULL)
		event_free(d->probe);
	d->probe = NULL;
	aws_client_free(d->client);
	d->client = NULL;
	/* Calls in flight were dropped with the client: their operations go
	 * too, without callbacks (the worker is stopping). */
	d->closing = 1;
	while (d->ops != NULL)
		op_free((struct op *)d->ops);
	keyorder_clear();
	d->closing = 0;
}

static void
ddb_destroy(void *inst)
{
	struct ddb *d = inst;
	free(d->table);
	free(d->endpoint);
	free(d->profile);
	free(d);
}

static int
ddb_status(void *inst, char *why, size_t len)
{
	struct ddb *d = inst;
	if (d->client == NULL) {
		snprintf(why, len, "not attached");
		return -1;
	}
	if (aws_client_status(d->client, why, len) < 0)
		return -1;
	if (!d->table_ready) {
		snprintf(why, len, "dynamodb: %s", d->table_error);
		return -1;
	}
	return 0;
}

static const struct mcpd_plugin descriptor = {
	.size = sizeof(struct mcpd_plugin),
	.abi_major = MCPD_PLUGIN_ABI_MAJOR,
	.abi_minor = MCPD_PLUGIN_ABI_MINOR,
	.kind = MCPD_PLUGIN_STORAGE,
	.name = "dynamodb",
	.version = "1.0.0",
	.create = ddb_create,
	.attach = ddb_attach,
	.detach = ddb_detach,
	.destroy = ddb_destroy,
	.ops = &storage_ops,
	.status = ddb_status,
};

const struct mcpd_plugin *
mcpd_plugin_entry(void)
{
	return &descriptor;
}
