/*
 * cosmos: storage in one Azure Cosmos DB container (the NoSQL API), so
 * that mcpd instances on Azure share sessions, event logs and the OAuth
 * server's state through a managed service. Built against <mcpd/plugin.h>
 * alone; the calls are cosmos_client.c's (the REST API signed with the
 * account key, or Entra ID tokens; libcurl multi on the worker's loop).
 *
 *   storage: { plugin: cosmos, endpoint: https://ACCOUNT.documents.azure.com,
 *              database: mcpd, container: state, key_file: /etc/mcpd/cosmos.key }
 *
 * Keys: endpoint, database, container (required); key_file (the account
 * key; without it, Entra ID: workload identity or a managed identity);
 * client_id (a user-assigned identity), token_scope (else
 * https://HOST/.default), create_container (false), timeout (3s: each
 * attempt of a call; a call has twice that with its retries), ca_file,
 * tls_verify (true; false is for tests against an emulator only).
 *
 * The container is partitioned on /pk (hash, version 2: keys of up to
 * 2048 bytes) with TTL on and no default (defaultTtl -1). Items, all of
 * one key in its logical partition:
 *
 *   a value            id "v": v (text) or b (base64 bytes), exp, ttl
 *   an index member    id "m." + base64url(member): m, exp, ttl
 *   a log's head       id "l": seq (the last entry's), max, exp, ttl
 *   a log's entry      id "e." + seq in 20 digits: s (seq), v or b, ttl
 *
 * k names the kind (v, m, l, e) for the queries. exp is the expiry in
 * Unix ms, absent for none; every read checks it, since Cosmos DB deletes
 * expired items in the background (ttl, in seconds, is a little longer).
 * A counter is a value of decimal digits.
 *
 * Only-if-absent is a create (409 when the item is there: an expired one
 * is replaced, conditional on its ETag); only-if-present and increments
 * read the item and replace it with If-Match on its ETag, read again on
 * 412. An append reads the log's head and writes the new head
 * (conditional on the head read: If-Match, or a create) and the entry in
 * one transactional batch, so that entries appear in order and a reader
 * never sees a gap; the entry that falls out of the newest max is
 * deleted after it. Indexes and logs are read with queries on the key's
 * partition. A missing container is created when create_container is
 * true (with the account key: Entra ID identities cannot create
 * containers); otherwise it is an error at start and in mcpd -t.
 * /readyz fails while the container cannot be reached.
 */
#include <mcpd/plugin.h>

#include "azure_auth.h"
#include "b64.h"
#include "clock.h"
#include "cosmos_client.h"
#include "keyorder.h"
#include "section.h"
#include "storeop.h"
#include "utf8.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_PK 2048                 /* hash v2 partition keys */
#define MAX_ID 255
#define MAX_ITEM (2u << 20)         /* Cosmos DB keeps at most 2 MB an item */
#define MAX_PAGES 64                /* of one query */
#define TRIES 16                    /* of a conditional write that lost a race */
#define PROBE_MS 1000               /* the container checked again while down */
#define IDLE_CHECK_MS 2000          /* and when no call was answered for this long */
#define CHECK_MS 3000               /* at configuration time */

struct cosmos {
	const struct mcpd_host *host;
	char *endpoint;             /* without a trailing slash */
	char *database, *container;
	char *key_file, *client_id, *scope, *ca_file;
	int tls_verify;
	int create_container;
	uint64_t timeout_ms;
	char feed_path[600], feed_link[600];    /* .../docs, dbs/D/colls/C */
	/* per worker */
	struct cosmos_client *client;
	struct event *probe;
	int ready;                  /* the container was seen */
	int probing, creating;
	int closing;
	int said_ttl;
	struct storeop *ops;        /* every operation not finished */
	char error[700];            /* why the container is not ready */
};

/* ---- values ---- */

/* The value as v (text) or b (base64) of item. 0, or -1 (out of memory). */
static int
add_data(cJSON *item, const unsigned char *data, size_t len)
{
	if (utf8_text(data, len)) {
		char *s = malloc(len + 1);
		if (s == NULL)
			return -1;
		memcpy(s, data, len);
		s[len] = '\0';
		cJSON *v = cJSON_AddStringToObject(item, "v", s);
		free(s);
		return v != NULL ? 0 : -1;
	}
	char *s = b64_encode(data, len);
	cJSON *v = s ? cJSON_AddStringToObject(item, "b", s) : NULL;
	free(s);
	return v != NULL ? 0 : -1;
}

/* An item's value: its bytes (malloc'ed) or NULL. */
static unsigned char *
data_of(const cJSON *item, size_t *len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, "v");
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(item, "b");
	if (cJSON_IsString(v)) {
		*len = strlen(v->valuestring);
		unsigned char *out = malloc(*len + 1);
		if (out != NULL)
			memcpy(out, v->valuestring, *len + 1);
		return out;
	}
	if (cJSON_IsString(b))
		return b64_decode(b->valuestring, len);
	return NULL;
}

static int64_t
num(const cJSON *item, const char *name, int64_t dflt)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(item, name);
	return cJSON_IsNumber(n) ? (int64_t)n->valuedouble : dflt;
}

static int
expired(const cJSON *item, uint64_t now)
{
	int64_t e = num(item, "exp", 0);
	return e > 0 && (uint64_t)e <= now;
}

/* exp and ttl of an item that expires at exp_ms (0: never). */
static void
add_expiry(cJSON *item, uint64_t exp_ms, uint64_t now)
{
	if (exp_ms == 0)
		return;
	cJSON_AddNumberToObject(item, "exp", (double)exp_ms);
	/* Cosmos DB counts from its own write time, in whole seconds: a
	 * second more, so that it never deletes before exp. */
	uint64_t s = exp_ms > now ? (exp_ms - now + 999) / 1000 + 1 : 1;
	cJSON_AddNumberToObject(item, "ttl", (double)(s < 2147483647u ? s : 2147483647u));
}

static cJSON *
new_item(const char *key, const char *id, const char *kind)
{
	cJSON *item = cJSON_CreateObject();
	if (item != NULL && (cJSON_AddStringToObject(item, "id", id) == NULL ||
	    cJSON_AddStringToObject(item, "pk", key) == NULL || cJSON_AddStringToObject(item, "k", kind) == NULL)) {
		cJSON_Delete(item);
		return NULL;
	}
	return item;
}

/* ---- operations ---- */

enum step { S_READ, S_CREATE, S_REPLACE, S_UPSERT, S_DELETE, S_DELETE_LOG, S_QUERY, S_BATCH };

struct op {
	struct storeop s;               /* first: key, callback, the list, what pages gave (storeop.h) */
	struct cosmos *d;
	enum step step;
	char *id;                       /* the item the op is about ("v", "l", "m.xxx") */
	char *member;
	unsigned char *data;            /* set, append: the value */
	size_t len;
	uint64_t ttl_ms;
	unsigned flags;
	int64_t by;
	uint64_t max, after;
	int tries;
	int found;
	int64_t seq, head_exp, cur;     /* append, range: the head's; incr: the value read */
	uint64_t sent;                  /* when the call in flight left (wall clock, ms) */
	char etag[256];
	int pages;
	char *cont;                     /* a query's continuation */
};

static void
op_free(struct op *o)
{
	storeop_clear(&o->s, !o->d->closing);
	free(o->id);
	free(o->member);
	free(o->data);
	free(o->cont);
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

static void
int_result(struct op *o, int64_t v)
{
	if (o->s.cb)
		((mcpd_int_cb *)o->s.cb)(o->s.arg, MCPD_OK, v, NULL);
	op_free(o);
}

static struct op *
op_new(struct cosmos *d, enum store_kind kind, const char *key, void *cb, void *arg)
{
	struct op *o = calloc(1, sizeof(*o));
	if (o == NULL || storeop_init(&o->s, &d->ops, kind, key, cb, arg) < 0) {
		free(o);
		return NULL;
	}
	o->d = d;
	return o;
}

/* A key Cosmos DB cannot hold is refused, never cut. */
static int
key_ok(struct op *o)
{
	size_t n = strlen(o->s.key);
	const char *why = n == 0 ? "cosmos: empty key" : n > MAX_PK ? "cosmos: key too long (partition keys hold "
	    "2048 bytes)" : !utf8_text((const unsigned char *)o->s.key, n) ? "cosmos: a key that is not UTF-8" : NULL;
	if (why != NULL) {
		fail(o, why);
		return -1;
	}
	return 0;
}

static void answered(void *arg, const struct cosmos_result *r);

/* A call about one item (id) or the key's feed (id NULL). body is taken. */
static void
call(struct op *o, const char *method, const char *id, unsigned flags, const char *if_match, char *body)
{
	struct cosmos *d = o->d;
	char path[900], link[900];
	if (id != NULL) {
		snprintf(path, sizeof(path), "%s/%s", d->feed_path, id);
		snprintf(link, sizeof(link), "%s/docs/%s", d->feed_link, id);
	} else {
		snprintf(path, sizeof(path), "%s", d->feed_path);
		snprintf(link, sizeof(link), "%s", d->feed_link);
	}
	if ((flags & COSMOS_QUERY) || !strcmp(method, "GET") || !strcmp(method, "DELETE") || if_match != NULL ||
	    (flags & COSMOS_UPSERT))
		flags |= COSMOS_IDEMPOTENT;
	struct cosmos_call k = { method, "docs", link, path, o->s.key, if_match, o->cont, 0, flags, body,
	    body ? strlen(body) : 0 };
	if (o->s.kind == K_RANGE && o->step == S_QUERY)
		k.max_items = (long)(o->max - o->s.n < 1000 ? o->max - o->s.n : 1000);
	if (body != NULL && strlen(body) > MAX_ITEM) {
		free(body);
		fail(o, "cosmos: the item is too large (Cosmos DB keeps at most 2 MB an item)");
		return;
	}
	o->sent = real_ms();
	cosmos_request(d->client, &k, d->timeout_ms, 2 * d->timeout_ms, answered, o);
	free(body);
}

static char *
print(cJSON *j)
{
	char *s = j ? cJSON_PrintUnformatted(j) : NULL;
	cJSON_Delete(j);
	return s;
}

/* A write of item (taken) as method; NULL item: out of memory. */
static void
write_item(struct op *o, enum step step, cJSON *item)
{
	char *body = print(item);
	if (body == NULL) {
		fail(o, "out of memory");
		return;
	}
	o->step = step;
	switch (step) {
	case S_CREATE:
		call(o, "POST", NULL, 0, NULL, body);
		break;
	case S_UPSERT:
		call(o, "POST", NULL, COSMOS_UPSERT, NULL, body);
		break;
	default:
		call(o, "PUT", o->id, 0, o->etag, body);
		break;
	}
}

static void
read_item(struct op *o, const char *id)
{
	o->step = S_READ;
	free(o->id);
	if ((o->id = strdup(id)) == NULL) {
		fail(o, "out of memory");
		return;
	}
	call(o, "GET", o->id, 0, NULL, NULL);
}

/* The value item with the op's data and expiry. */
static cJSON *
value_item(struct op *o, uint64_t exp)
{
	cJSON *item = new_item(o->s.key, "v", "v");
	if (item != NULL && add_data(item, o->data ? o->data : (const unsigned char *)"", o->len) < 0) {
		cJSON_Delete(item);
		return NULL;
	}
	if (item != NULL)
		add_expiry(item, exp, real_ms());
	return item;
}

static uint64_t
exp_of(uint64_t ttl_ms)
{
	return ttl_ms > 0 ? real_ms() + ttl_ms : 0;
}

static void
start_set(struct keyorder_op *q)
{
	struct op *o = (struct op *)q;
	if ((o->id = strdup("v")) == NULL) {
		fail(o, "out of memory");
		return;
	}
	if (o->flags & MCPD_SET_IF_PRESENT)
		read_item(o, "v");
	else
		write_item(o, o->flags & MCPD_SET_IF_ABSENT ? S_CREATE : S_UPSERT, value_item(o, exp_of(o->ttl_ms)));
}

static void
start_read_v(struct keyorder_op *q)
{
	read_item((struct op *)q, "v");
}

static void
start_read_l(struct keyorder_op *q)
{
	read_item((struct op *)q, "l");
}

static void
start_del(struct keyorder_op *q)
{
	struct op *o = (struct op *)q;
	o->step = S_DELETE;
	if ((o->id = strdup("v")) == NULL) {
		fail(o, "out of memory");
		return;
	}
	call(o, "DELETE", "v", 0, NULL, NULL);
}

static void
start_index_add(struct keyorder_op *q)
{
	struct op *o = (struct op *)q;
	cJSON *item = new_item(o->s.key, o->id, "m");
	if (item != NULL && cJSON_AddStringToObject(item, "m", o->member) == NULL) {
		cJSON_Delete(item);
		item = NULL;
	}
	if (item != NULL)
		add_expiry(item, exp_of(o->ttl_ms), real_ms());
	write_item(o, S_UPSERT, item);
}

static void
start_index_remove(struct keyorder_op *q)
{
	struct op *o = (struct op *)q;
	o->step = S_DELETE;
	call(o, "DELETE", o->id, 0, NULL, NULL);
}

/* A query on the key's partition; params: "@name", value pairs of numbers. */
static void
query(struct op *o, const char *text, const char *const *names, const int64_t *values, size_t nparams)
{
	cJSON *q = cJSON_CreateObject(), *ps = cJSON_AddArrayToObject(q, "parameters");
	cJSON_AddStringToObject(q, "query", text);
	cJSON *p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "name", "@pk");
	cJSON_AddStringToObject(p, "value", o->s.key);
	cJSON_AddItemToArray(ps, p);
	for (size_t i = 0; i < nparams; i++) {
		p = cJSON_CreateObject();
		cJSON_AddStringToObject(p, "name", names[i]);
		cJSON_AddNumberToObject(p, "value", (double)values[i]);
		cJSON_AddItemToArray(ps, p);
	}
	char *body = print(q);
	if (body == NULL) {
		fail(o, "out of memory");
		return;
	}
	o->step = S_QUERY;
	call(o, "POST", NULL, COSMOS_QUERY, NULL, body);
}

#define Q_MEMBERS "SELECT c.m, c.exp FROM c WHERE c.pk = @pk AND c.k = \"m\""
#define Q_ENTRIES "SELECT c.s, c.v, c.b FROM c WHERE c.pk = @pk AND c.k = \"e\" AND c.s > @lo AND c.s <= @hi " \
    "ORDER BY c.s"

static void
members_query(struct op *o)
{
	query(o, Q_MEMBERS, NULL, NULL, 0);
}

static void
entries_query(struct op *o)
{
	static const char *const names[] = { "@lo", "@hi" };
	int64_t values[] = { (int64_t)o->after, o->seq };
	query(o, Q_ENTRIES, names, values, 2);
}

static void
start_members(struct keyorder_op *q)
{
	members_query((struct op *)q);
}

/* ---- the storage operations ---- */

#define NEW_OP(kind, key, cb, arg, fail_stmt) \
	struct op *o = op_new(inst, kind, key, (void *)cb, arg); \
	if (o == NULL) { fail_stmt; return; } \
	if (key_ok(o) < 0) return

static void
s_get(void *inst, const char *key, mcpd_value_cb *cb, void *arg)
{
	NEW_OP(K_GET, key, cb, arg, cb(arg, MCPD_ERROR, NULL, 0, "out of memory"));
	o->s.q.start = start_read_v;
	keyorder_submit(&o->s.q);
}

static void
s_exists(void *inst, const char *key, mcpd_done_cb *cb, void *arg)
{
	NEW_OP(K_EXISTS, key, cb, arg, if (cb) cb(arg, MCPD_ERROR, "out of memory"));
	o->s.q.start = start_read_v;
	keyorder_submit(&o->s.q);
}

static void
s_set(void *inst, const char *key, const void *value, size_t len, uint64_t ttl_ms, unsigned flags,
    mcpd_done_cb *cb, void *arg)
{
	NEW_OP(K_SET, key, cb, arg, if (cb) cb(arg, MCPD_ERROR, "out of memory"));
	if ((o->data = malloc(len ? len : 1)) == NULL) {
		fail(o, "out of memory");
		return;
	}
	memcpy(o->data, value, len);
	o->len = len;
	o->ttl_ms = ttl_ms;
	o->flags = flags;
	o->s.q.start = start_set;
	keyorder_submit(&o->s.q);
}

static void
s_del(void *inst, const char *key, mcpd_done_cb *cb, void *arg)
{
	NEW_OP(K_DEL, key, cb, arg, if (cb) cb(arg, MCPD_ERROR, "out of memory"));
	o->s.q.start = start_del;
	keyorder_submit(&o->s.q);
}

static void
s_incr(void *inst, const char *key, int64_t by, uint64_t ttl_ms, mcpd_int_cb *cb, void *arg)
{
	NEW_OP(K_INCR, key, cb, arg, if (cb) cb(arg, MCPD_ERROR, 0, "out of memory"));
	o->by = by;
	o->ttl_ms = ttl_ms;
	o->s.q.start = start_read_v;
	keyorder_submit(&o->s.q);
}

/* An index operation: the op with its member's item id, or NULL (cb told). */
static struct op *
index_op(struct cosmos *d, enum store_kind kind, const char *index, const char *member, mcpd_done_cb *cb, void *arg)
{
	struct op *o = op_new(d, kind, index, (void *)cb, arg);
	if (o == NULL) {
		if (cb)
			cb(arg, MCPD_ERROR, "out of memory");
		return NULL;
	}
	if (key_ok(o) < 0)
		return NULL;
	char *enc = b64url_encode(member, strlen(member));
	if (enc == NULL || (o->member = strdup(member)) == NULL || asprintf(&o->id, "m.%s", enc) < 0) {
		o->id = NULL;
		free(enc);
		fail(o, "out of memory");
		return NULL;
	}
	free(enc);
	if (strlen(o->id) > MAX_ID || !utf8_text((const unsigned char *)member, strlen(member))) {
		fail(o, "cosmos: an index member longer than 189 bytes, or not UTF-8");
		return NULL;
	}
	return o;
}

static void
s_index_add(void *inst, const char *index, const char *member, uint64_t ttl_ms, mcpd_done_cb *cb, void *arg)
{
	struct op *o = index_op(inst, K_IDX_ADD, index, member, cb, arg);
	if (o != NULL) {
		o->ttl_ms = ttl_ms;
		o->s.q.start = start_index_add;
		keyorder_submit(&o->s.q);
	}
}

static void
s_index_remove(void *inst, const char *index, const char *member, mcpd_done_cb *cb, void *arg)
{
	struct op *o = index_op(inst, K_IDX_REM, index, member, cb, arg);
	if (o != NULL) {
		o->s.q.start = start_index_remove;
		keyorder_submit(&o->s.q);
	}
}

static void
s_index_members(void *inst, const char *index, mcpd_members_cb *cb, void *arg)
{
	NEW_OP(K_MEMBERS, index, cb, arg, cb(arg, MCPD_ERROR, NULL, 0, "out of memory"));
	o->s.q.start = start_members;
	keyorder_submit(&o->s.q);
}

static void
s_log_append(void *inst, const char *log, const void *entry, size_t len, uint64_t max_entries, uint64_t ttl_ms,
    mcpd_int_cb *cb, void *arg)
{
	NEW_OP(K_APPEND, log, cb, arg, if (cb) cb(arg, MCPD_ERROR, 0, "out of memory"));
	if ((o->data = malloc(len ? len : 1)) == NULL) {
		fail(o, "out of memory");
		return;
	}
	memcpy(o->data, entry, len);
	o->len = len;
	o->max = max_entries ? max_entries : 1;
	o->ttl_ms = ttl_ms;
	o->s.q.start = start_read_l;
	keyorder_submit(&o->s.q);
}

static void
s_log_range(void *inst, const char *log, uint64_t after, size_t max, mcpd_entries_cb *cb, void *arg)
{
	NEW_OP(K_RANGE, log, cb, arg, cb(arg, MCPD_ERROR, NULL, 0, "out of memory"));
	o->after = after;
	o->max = max;
	o->s.q.start = start_read_l;
	keyorder_submit(&o->s.q);
}

/* ---- the steps after an answer ---- */

static void
entry_id(char *buf, size_t len, uint64_t seq)
{
	snprintf(buf, len, "e.%020" PRIu64, seq);
}

static void
ignore(void *arg, const struct cosmos_result *r)
{
	(void)arg;
	(void)r;
}

/* The entry that fell out of the log's window, deleted on its own: a
 * reader never looks there, and a delete that fails leaves it to its ttl. */
static void
trim(struct cosmos *d, const char *key, uint64_t seq)
{
	char id[32], path[900], link[900];
	entry_id(id, sizeof(id), seq);
	snprintf(path, sizeof(path), "%s/%s", d->feed_path, id);
	snprintf(link, sizeof(link), "%s/docs/%s", d->feed_link, id);
	struct cosmos_call k = { "DELETE", "docs", link, path, key, NULL, NULL, 0, COSMOS_IDEMPOTENT | COSMOS_QUIET,
	    NULL, 0 };
	cosmos_request(d->client, &k, d->timeout_ms, 2 * d->timeout_ms, ignore, NULL);
}

/* The head read (o->found, o->seq, o->head_exp, o->etag): the batch. */
static void
append_batch(struct op *o)
{
	uint64_t now = real_ms();
	int live = o->found && !(o->head_exp > 0 && (uint64_t)o->head_exp <= now);
	uint64_t seq = live ? (uint64_t)o->seq + 1 : 1;
	uint64_t exp = o->ttl_ms > 0 ? now + o->ttl_ms : live ? (uint64_t)(o->head_exp > 0 ? o->head_exp : 0) : 0;
	char id[32];
	/* Each operation names the partition too, as a JSON text (the
	 * service takes it from the header; the emulator from there). */
	cJSON *pkl = cJSON_CreateArray();
	cJSON_AddItemToArray(pkl, cJSON_CreateString(o->s.key));
	char *pk = print(pkl);
	cJSON *ops = cJSON_CreateArray();
	cJSON *head = new_item(o->s.key, "l", "l"), *h = cJSON_CreateObject();
	if (head != NULL) {
		cJSON_AddNumberToObject(head, "seq", (double)seq);
		cJSON_AddNumberToObject(head, "max", (double)o->max);
		add_expiry(head, exp, now);
	}
	cJSON_AddStringToObject(h, "operationType", o->found ? "Replace" : "Create");
	cJSON_AddStringToObject(h, "partitionKey", pk ? pk : "");
	cJSON_AddStringToObject(h, "id", "l");
	if (o->found)
		cJSON_AddStringToObject(h, "ifMatch", o->etag);
	cJSON_AddItemToObject(h, "resourceBody", head);
	cJSON_AddItemToArray(ops, h);
	entry_id(id, sizeof(id), seq);
	cJSON *entry = new_item(o->s.key, id, "e"), *e = cJSON_CreateObject();
	if (entry != NULL) {
		cJSON_AddNumberToObject(entry, "s", (double)seq);
		if (add_data(entry, o->data ? o->data : (const unsigned char *)"", o->len) < 0) {
			cJSON_Delete(entry);
			entry = NULL;
		} else {
			add_expiry(entry, exp, now);
			cJSON_DeleteItemFromObject(entry, "exp");       /* the head's counts */
		}
	}
	cJSON_AddStringToObject(e, "operationType", "Upsert");
	cJSON_AddStringToObject(e, "partitionKey", pk ? pk : "");
	cJSON_AddItemToObject(e, "resourceBody", entry);
	cJSON_AddItemToArray(ops, e);
	if (ops == NULL || head == NULL || h == NULL || entry == NULL || e == NULL || pk == NULL) {
		free(pk);
		cJSON_Delete(ops);
		fail(o, "out of memory");
		return;
	}
	free(pk);
	char *body = print(ops);
	if (body == NULL) {
		fail(o, "out of memory");
		return;
	}
	o->step = S_BATCH;
	o->seq = (int64_t)seq;          /* what to report */
	call(o, "POST", NULL, COSMOS_BATCH, NULL, body);
}

/* A batch's answer: the status of the operation that failed, or 0. */
static long
batch_failure(const cJSON *ans)
{
	const cJSON *it;
	long first = 0;
	cJSON_ArrayForEach(it, ans) {
		long st = (long)num(it, "statusCode", 0);
		if (st >= 400 && st != 424 && first == 0)
			first = st;
		else if (st == 424 && first == 0)
			first = -424;
	}
	return first == -424 ? 424 : first;
}

/* A page of a query: taken into o. 0, or -1 (out of memory). */
static int
take_page(struct op *o, const cJSON *ans, uint64_t now)
{
	const cJSON *docs = cJSON_GetObjectItemCaseSensitive(ans, "Documents"), *it;
	cJSON_ArrayForEach(it, docs) {
		if (o->s.kind == K_MEMBERS) {
			const cJSON *m = cJSON_GetObjectItemCaseSensitive(it, "m");
			if (!cJSON_IsString(m) || expired(it, now))
				continue;
			if (storeop_add_name(&o->s, strdup(m->valuestring)) < 0)
				return -1;
			continue;
		}
		if (o->s.n >= o->max)
			break;
		int64_t s = num(it, "s", 0);
		if (s <= (int64_t)o->after || s > o->seq || (o->s.n > 0 && (uint64_t)s <= o->s.entries[o->s.n - 1].seq))
			continue;
		size_t len = 0;
		unsigned char *data = data_of(it, &len);
		if (data == NULL || storeop_add_entry(&o->s, (uint64_t)s, data, len) < 0)
			return -1;
	}
	return 0;
}

/* The next page of a query, if there is one: 1 when asked. */
static int
next_page(struct op *o, const struct cosmos_result *r)
{
	free(o->cont);
	o->cont = NULL;
	if (r->continuation == NULL || r->continuation[0] == '\0' || ++o->pages >= MAX_PAGES)
		return 0;
	if (o->s.kind == K_RANGE && o->s.n >= o->max)
		return 0;
	if ((o->cont = strdup(r->continuation)) == NULL)
		return 0;
	if (o->s.kind == K_MEMBERS)
		members_query(o);
	else
		entries_query(o);
	return 1;
}

static void container_lost(struct cosmos *d, const char *why);

static void
answered(void *arg, const struct cosmos_result *r)
{
	struct op *o = arg;
	struct cosmos *d = o->d;
	/* Expiry as of when the read was sent: what was live then may be
	 * answered, however slow the answer (a read takes effect somewhere
	 * between the two). */
	uint64_t now = o->sent;
	long st = r->status;
	char why[800];
	if (st == 404 && r->substatus == 1003) {
		/* the database or container, not the item */
		snprintf(why, sizeof(why), "cosmos: container %s of database %s not found%s", d->container, d->database,
		    d->create_container ? " (being created)" : " (create it, or set create_container: true)");
		container_lost(d, why);
		fail(o, why);
		return;
	}
	if (st == 413 || (st == 400 && r->message != NULL && strstr(r->message, "too large") != NULL)) {
		snprintf(why, sizeof(why), "cosmos: the item is too large (Cosmos DB keeps at most 2 MB an item): %s",
		    r->message);
		fail(o, why);
		return;
	}
	int ok = st >= 200 && st < 300;
	cJSON *ans = ok && r->len > 0 ? cJSON_ParseWithLength(r->body, r->len) : NULL;
	switch (o->step) {
	case S_READ: {
		if (!ok && st != 404)
			break;
		if (ok && ans == NULL) {
			fail(o, "cosmos: an answer that is not JSON");
			return;
		}
		int live = ok && !expired(ans, now);
		o->found = ok;
		snprintf(o->etag, sizeof(o->etag), "%s", ok ? r->etag : "");
		switch (o->s.kind) {
		case K_GET:
			if (!live) {
				((mcpd_value_cb *)o->s.cb)(o->s.arg, MCPD_NOT_FOUND, NULL, 0, NULL);
				op_free(o);
			} else {
				size_t len = 0;
				unsigned char *data = data_of(ans, &len);
				if (data == NULL)
					fail(o, "cosmos: an item without a value");
				else {
					((mcpd_value_cb *)o->s.cb)(o->s.arg, MCPD_OK, data, len, NULL);
					free(data);
					op_free(o);
				}
			}
			break;
		case K_EXISTS:
			done_status(o, live ? MCPD_OK : MCPD_NOT_FOUND);
			break;
		case K_SET:
			if (!live && (o->flags & MCPD_SET_IF_PRESENT))
				done_status(o, MCPD_CONFLICT);
			else if (live && (o->flags & MCPD_SET_IF_ABSENT))
				done_status(o, MCPD_CONFLICT);
			else if (!ok)           /* absent after all: create it */
				write_item(o, S_CREATE, value_item(o, exp_of(o->ttl_ms)));
			else
				write_item(o, S_REPLACE, value_item(o, exp_of(o->ttl_ms)));
			break;
		case K_INCR: {
			int64_t cur = 0;
			uint64_t exp = exp_of(o->ttl_ms);
			if (live) {
				size_t len = 0;
				unsigned char *v = data_of(ans, &len);
				char *end = NULL;
				long long x = v != NULL && len > 0 && len < 24 ? strtoll((char *)v, &end, 10) : 0;
				int digits = v != NULL && len > 0 && len < 24 && end == (char *)v + len;
				free(v);
				if (!digits) {
					fail(o, "cosmos: the value is not an integer");
					break;
				}
				cur = x;
				if (o->ttl_ms == 0)
					exp = (uint64_t)num(ans, "exp", 0);
			}
			char text[32];
			int n = snprintf(text, sizeof(text), "%" PRId64, cur + o->by);
			o->cur = cur + o->by;
			free(o->data);
			o->data = (unsigned char *)strndup(text, (size_t)n);
			o->len = (size_t)n;
			if (o->data == NULL) {
				fail(o, "out of memory");
				break;
			}
			write_item(o, ok ? S_REPLACE : S_CREATE, value_item(o, exp));
			break;
		}
		case K_APPEND:
			o->seq = ok ? num(ans, "seq", 0) : 0;
			o->head_exp = ok ? num(ans, "exp", 0) : 0;
			append_batch(o);
			break;
		case K_RANGE: {
			if (!live || o->max == 0) {
				((mcpd_entries_cb *)o->s.cb)(o->s.arg, MCPD_OK, NULL, 0, NULL);
				op_free(o);
				break;
			}
			int64_t seq = num(ans, "seq", 0), max = num(ans, "max", 1);
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
			entries_query(o);
			break;
		}
		default:
			fail(o, "cosmos: an unexpected read");
			break;
		}
		cJSON_Delete(ans);
		return;
	}
	case S_CREATE:
	case S_REPLACE:
	case S_UPSERT:
		if (ok) {
			if (o->s.kind == K_INCR)
				int_result(o, o->cur);
			else
				done_status(o, MCPD_OK);
			cJSON_Delete(ans);
			return;
		}
		/* Lost a race: the item came (409), changed or went (412, 404). */
		if ((st == 409 || st == 412 || (st == 404 && o->step == S_REPLACE)) && ++o->tries < TRIES) {
			if (o->s.kind == K_SET && !(o->flags & MCPD_SET_IF_PRESENT) && st == 404)
				write_item(o, S_CREATE, value_item(o, exp_of(o->ttl_ms)));
			else
				read_item(o, "v");
			return;
		}
		break;
	case S_DELETE:
		if (ok || st == 404) {
			if (o->s.kind == K_IDX_REM) {
				done_status(o, ok ? MCPD_OK : MCPD_NOT_FOUND);
				return;
			}
			o->found = ok;
			o->step = S_DELETE_LOG;         /* the log of that name goes too */
			call(o, "DELETE", "l", 0, NULL, NULL);
			return;
		}
		break;
	case S_DELETE_LOG:
		if (ok || st == 404) {
			done_status(o, o->found || ok ? MCPD_OK : MCPD_NOT_FOUND);
			return;
		}
		break;
	case S_QUERY:
		if (!ok)
			break;
		if (ans == NULL || take_page(o, ans, now) < 0) {
			cJSON_Delete(ans);
			fail(o, ans == NULL ? "cosmos: an answer that is not JSON" : "out of memory");
			return;
		}
		cJSON_Delete(ans);
		if (next_page(o, r))
			return;
		if (o->s.kind == K_MEMBERS)
			((mcpd_members_cb *)o->s.cb)(o->s.arg, MCPD_OK, (const char *const *)o->s.names, o->s.n, NULL);
		else
			((mcpd_entries_cb *)o->s.cb)(o->s.arg, MCPD_OK, o->s.entries, o->s.n, NULL);
		op_free(o);
		return;
	case S_BATCH: {
		long failed = ok ? (ans != NULL ? batch_failure(ans) : -1) : 0;
		if (!ok && st == 207 && r->len > 0) {
			cJSON *b = cJSON_ParseWithLength(r->body, r->len);
			failed = b ? batch_failure(b) : st;
			cJSON_Delete(b);
		}
		if (ok && failed == 0) {
			cJSON_Delete(ans);
			if (o->seq > (int64_t)o->max)
				trim(d, o->s.key, (uint64_t)o->seq - o->max);
			int_result(o, o->seq);
			return;
		}
		cJSON_Delete(ans);
		if ((failed == 412 || failed == 409 || failed == 404 || st == 412 || st == 409) && ++o->tries < TRIES) {
			read_item(o, "l");              /* another append won: read again */
			return;
		}
		if (failed == 413) {
			fail(o, "cosmos: the item is too large (Cosmos DB keeps at most 2 MB an item)");
			return;
		}
		if (ok || st == 207) {
			snprintf(why, sizeof(why), "cosmos: the append's batch failed (status %ld)", failed);
			fail(o, why);
			return;
		}
		break;
	}
	default:
		break;
	}
	cJSON_Delete(ans);
	if (o->tries >= TRIES) {
		snprintf(why, sizeof(why), "cosmos: %s lost the race for %s %d times", o->s.kind == K_APPEND ? "an append" :
		    "a conditional write", o->s.key, TRIES);
		fail(o, why);
		return;
	}
	fail(o, r->message ? r->message : "cosmos: the call failed");
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

/* ---- the container ---- */

static void probe_answer(void *arg, const struct cosmos_result *r);

enum probe_step { P_READ, P_DATABASE, P_CREATE_DB, P_CREATE };
static enum probe_step probe_step;          /* per worker: one probe at a time */

static void
probe_call(struct cosmos *d, enum probe_step step)
{
	char path[700], link[700], *body = NULL;
	struct cosmos_call k = { "GET", "colls", link, path, NULL, NULL, NULL, 0, COSMOS_IDEMPOTENT, NULL, 0 };
	probe_step = step;
	switch (step) {
	case P_READ:
		snprintf(path, sizeof(path), "/dbs/%s/colls/%s", d->database, d->container);
		snprintf(link, sizeof(link), "dbs/%s/colls/%s", d->database, d->container);
		break;
	case P_DATABASE:
		snprintf(path, sizeof(path), "/dbs/%s", d->database);
		snprintf(link, sizeof(link), "dbs/%s", d->database);
		k.rtype = "dbs";
		break;
	case P_CREATE_DB:
		snprintf(path, sizeof(path), "/dbs");
		link[0] = '\0';
		k.rtype = "dbs";
		k.method = "POST";
		k.flags = COSMOS_QUIET;
		if (asprintf(&body, "{\"id\":\"%s\"}", d->database) < 0)
			body = NULL;
		break;
	case P_CREATE:
		snprintf(path, sizeof(path), "/dbs/%s/colls", d->database);
		snprintf(link, sizeof(link), "dbs/%s", d->database);
		k.method = "POST";
		k.flags = COSMOS_QUIET;
		if (asprintf(&body, "{\"id\":\"%s\",\"partitionKey\":{\"paths\":[\"/pk\"],\"kind\":\"Hash\","
		    "\"version\":2},\"defaultTtl\":-1}", d->container) < 0)
			body = NULL;
		break;
	}
	if (k.method[0] == 'P' && body == NULL) {
		d->probing = 0;
		return;
	}
	k.body = body;
	k.len = body ? strlen(body) : 0;
	cosmos_request(d->client, &k, d->timeout_ms, 2 * d->timeout_ms, probe_answer, d);
	free(body);
}

static void
not_ready(struct cosmos *d, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
not_ready(struct cosmos *d, int level, const char *fmt, ...)
{
	char msg[sizeof(d->error)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (level >= 0 && strcmp(msg, d->error) != 0)
		d->host->log((enum mcpd_log_level)level, "cosmos: %s", msg);
	snprintf(d->error, sizeof(d->error), "%s", msg);
	d->ready = 0;
	d->probing = 0;
}

/* The container as the service describes it: is it one mcpd can use? */
static void
container_seen(struct cosmos *d, const struct cosmos_result *r)
{
	cJSON *c = cJSON_ParseWithLength(r->body, r->len);
	const cJSON *pk = cJSON_GetObjectItemCaseSensitive(c, "partitionKey");
	const cJSON *paths = cJSON_GetObjectItemCaseSensitive(pk, "paths");
	const cJSON *first = cJSON_GetArrayItem(paths, 0);
	const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(c, "defaultTtl");
	int on_pk = cJSON_GetArraySize(paths) == 1 && cJSON_IsString(first) && strcmp(first->valuestring, "/pk") == 0;
	if (c == NULL || !on_pk) {
		not_ready(d, MCPD_LOG_ERROR, "container %s is partitioned on %s: mcpd needs the partition key path /pk",
		    d->container, cJSON_IsString(first) ? first->valuestring : "something else");
		cJSON_Delete(c);
		return;
	}
	if (!cJSON_IsNumber(ttl) && !d->said_ttl) {
		d->host->log(MCPD_LOG_WARN, "cosmos: time to live is off on container %s: expired items stay until "
		    "deleted (mcpd never returns them); turn it on with no default (-1)", d->container);
		d->said_ttl = 1;
	}
	cJSON_Delete(c);
	if (!d->ready && d->error[0])
		d->host->log(MCPD_LOG_NOTICE, "cosmos: container %s is ready", d->container);
	d->ready = 1;
	d->error[0] = '\0';
	d->probing = 0;
}

static void
probe_answer(void *arg, const struct cosmos_result *r)
{
	struct cosmos *d = arg;
	long st = r->status;
	switch (probe_step) {
	case P_READ:
		if (st == 200) {
			container_seen(d, r);
			return;
		}
		if (st == 404) {
			probe_call(d, P_DATABASE);     /* which is missing? */
			return;
		}
		break;
	case P_DATABASE:
		if (st == 404 && d->create_container) {
			d->host->log(MCPD_LOG_NOTICE, "cosmos: creating database %s", d->database);
			probe_call(d, P_CREATE_DB);
			return;
		}
		if (st == 404) {
			not_ready(d, MCPD_LOG_ERROR, "database %s does not exist at %s (create it and container %s, or "
			    "set create_container: true)", d->database, d->endpoint, d->container);
			return;
		}
		if (st == 200 && d->create_container) {
			d->host->log(MCPD_LOG_NOTICE, "cosmos: creating container %s in database %s", d->container,
			    d->database);
			probe_call(d, P_CREATE);
			return;
		}
		if (st == 200) {
			not_ready(d, MCPD_LOG_ERROR, "container %s does not exist in database %s (create it, or set "
			    "create_container: true)", d->container, d->database);
			return;
		}
		break;
	case P_CREATE_DB:
		if (st == 201 || st == 409) {
			probe_call(d, P_CREATE);
			return;
		}
		not_ready(d, MCPD_LOG_ERROR, "cannot create database %s: %s%s", d->database, r->message,
		    st == 403 ? " (Entra ID identities cannot create databases or containers: create them with the "
		    "Azure CLI or the portal)" : "");
		return;
	case P_CREATE:
		if (st == 201 || st == 409) {       /* made, by this worker or another */
			probe_call(d, P_READ);
			return;
		}
		not_ready(d, MCPD_LOG_ERROR, "cannot create container %s: %s%s", d->container, r->message,
		    st == 403 ? " (Entra ID identities cannot create databases or containers: create them with the "
		    "Azure CLI or the portal)" : "");
		return;
	}
	not_ready(d, -1, "%s", r->message ? r->message : "the container cannot be read");
}

/* A data call found the container gone: look again now. */
static void
container_lost(struct cosmos *d, const char *why)
{
	if (d->ready)
		d->host->log(MCPD_LOG_ERROR, "%s", why);
	d->ready = 0;
	snprintf(d->error, sizeof(d->error), "%.600s", why + strlen("cosmos: "));
}

/* While the container is not known to be there, or calls fail, or the
 * worker is idle, look again (so that /readyz follows the service). */
static void
probe_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct cosmos *d = arg;
	char why[16];
	if (d->probing || (d->ready && cosmos_client_status(d->client, why, sizeof(why)) == 0 &&
	    cosmos_client_idle_ms(d->client) < IDLE_CHECK_MS))
		return;
	d->probing = 1;
	probe_call(d, P_READ);
}

/* ---- configuration and lifecycle ---- */

struct check {
	struct event_base *base;
	int done;
	long db_status, coll_status;
	char why[800];
};

static void
checked(void *arg, const struct cosmos_result *r)
{
	struct check *k = arg;
	if (k->db_status == -1) {
		k->db_status = r->status;
	} else {
		k->coll_status = r->status;
		k->done = 1;
	}
	snprintf(k->why, sizeof(k->why), "%s", r->message ? r->message : "");
	event_base_loopbreak(k->base);
}

/* At configuration time (mcpd -t too): are the database and the container
 * there? Asked once, on a loop of our own, within CHECK_MS; only a
 * definite "no such database" or "no such container" is an error (a
 * service that cannot be reached now is the workers' to wait for). */
static int
container_check(struct cosmos *d, const struct cosmos_conf *conf, char *err, size_t errlen)
{
	struct check k = { NULL, 0, -1, -1, "" };
	char why[600], path[700], link[700];
	if ((k.base = event_base_new()) == NULL)
		return 0;
	struct cosmos_client *c = cosmos_client_new(k.base, d->host, conf, "cosmos", why, sizeof(why));
	uint64_t start = mono_ms();
	if (c != NULL) {
		snprintf(path, sizeof(path), "/dbs/%s", d->database);
		snprintf(link, sizeof(link), "dbs/%s", d->database);
		struct cosmos_call q = { "GET", "dbs", link, path, NULL, NULL, NULL, 0, COSMOS_IDEMPOTENT, NULL, 0 };
		cosmos_request(c, &q, CHECK_MS * 2 / 3, CHECK_MS, checked, &k);
		struct timeval tv = { CHECK_MS / 1000 + 1, 0 };
		event_base_loopexit(k.base, &tv);
		event_base_dispatch(k.base);
		if (k.db_status == 200 && mono_ms() - start < CHECK_MS) {
			snprintf(path, sizeof(path), "/dbs/%s/colls/%s", d->database, d->container);
			snprintf(link, sizeof(link), "dbs/%s/colls/%s", d->database, d->container);
			q.rtype = "colls";
			uint64_t left = CHECK_MS - (mono_ms() - start);
			cosmos_request(c, &q, left, left, checked, &k);
			struct timeval tv2 = { (time_t)(left / 1000 + 1), 0 };
			event_base_loopexit(k.base, &tv2);
			event_base_dispatch(k.base);
		}
	} else {
		snprintf(k.why, sizeof(k.why), "%s", why);
	}
	cosmos_client_free(c);
	event_base_free(k.base);
	if (k.db_status == 404) {
		section_say(err, errlen, "cosmos: database %s does not exist at %s (create it and container %s, or set "
		    "create_container: true)", d->database, d->endpoint, d->container);
		return -1;
	}
	if (k.coll_status == 404) {
		section_say(err, errlen, "cosmos: container %s does not exist in database %s (create it, or set "
		    "create_container: true)", d->container, d->database);
		return -1;
	}
	if (k.db_status == -1 || (k.db_status == 200 && k.coll_status == -1))
		d->host->log(MCPD_LOG_WARN, "cosmos: container %s not checked: %s", d->container,
		    k.why[0] ? k.why : "no answer in time");
	else if (k.why[0])
		d->host->log(MCPD_LOG_WARN, "cosmos: container %s not checked: %s", d->container, k.why);
	return 0;
}

static void
conf_of(const struct cosmos *d, struct cosmos_conf *c)
{
	c->endpoint = d->endpoint;
	c->key_file = d->key_file;
	c->client_id = d->client_id;
	c->scope = d->scope;
	c->ca_file = d->ca_file;
	c->no_verify = !d->tls_verify;
}

static void
cosmos_free(struct cosmos *d)
{
	free(d->endpoint);
	free(d->database);
	free(d->container);
	free(d->key_file);
	free(d->client_id);
	free(d->scope);
	free(d->ca_file);
	free(d);
}

/* A database's or container's name: what mcpd puts in a URL as it is. */
static int
name_ok(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n <= 255 && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

static int
bool_key(const struct mcpd_host *host, const struct mcpd_config *n, const char *key, int *out, char *err,
    size_t errlen)
{
	const char *v = host->config_scalar(n);
	if (v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)) {
		*out = strcmp(v, "true") == 0;
		return 0;
	}
	return section_error(host, n, err, errlen, "%s must be true or false", key);
}

static void *
cosmos_create(const struct mcpd_host *host, const struct mcpd_config *section, char *err, size_t errlen)
{
	struct cosmos *d = calloc(1, sizeof(*d));
	if (d == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->host = host;
	d->timeout_ms = 3000;
	d->tls_verify = 1;
	char *key_file = NULL, *ca_file = NULL;
	const struct mcpd_config *db_node = NULL, *coll_node = NULL, *ep_node = NULL;
	for (size_t i = 0; i < host->config_count(section); i++) {
		const char *key;
		const struct mcpd_config *n = host->config_item(section, i, &key);
		int rc = 0;
		if (strcmp(key, "plugin") == 0)
			continue;
		if (strcmp(key, "endpoint") == 0) {
			rc = section_string(host, n, key, &d->endpoint, err, errlen);
			ep_node = n;
		} else if (strcmp(key, "database") == 0) {
			rc = section_string(host, n, key, &d->database, err, errlen);
			db_node = n;
		} else if (strcmp(key, "container") == 0) {
			rc = section_string(host, n, key, &d->container, err, errlen);
			coll_node = n;
		} else if (strcmp(key, "key_file") == 0) {
			rc = section_string(host, n, key, &key_file, err, errlen);
		} else if (strcmp(key, "client_id") == 0) {
			rc = section_string(host, n, key, &d->client_id, err, errlen);
		} else if (strcmp(key, "token_scope") == 0) {
			rc = section_string(host, n, key, &d->scope, err, errlen);
		} else if (strcmp(key, "ca_file") == 0) {
			rc = section_string(host, n, key, &ca_file, err, errlen);
		} else if (strcmp(key, "tls_verify") == 0) {
			rc = bool_key(host, n, key, &d->tls_verify, err, errlen);
		} else if (strcmp(key, "create_container") == 0) {
			rc = bool_key(host, n, key, &d->create_container, err, errlen);
		} else if (strcmp(key, "timeout") == 0) {
			rc = section_duration(host, n, key, 100, 60000, "100ms to 60s", &d->timeout_ms, err, errlen);
		} else if (strcmp(key, "key") == 0 || strcmp(key, "account_key") == 0) {
			rc = section_error(host, n, err, errlen, "the account key is never written in the configuration: "
			    "put it in a file readable by mcpd only and name it with key_file");
		} else {
			rc = section_error(host, n, err, errlen, "unknown key \"%s\" (cosmos takes endpoint, database, "
			    "container, key_file, client_id, token_scope, create_container, timeout, ca_file, tls_verify)",
			    key);
		}
		if (rc < 0)
			goto fail;
	}
	if (d->endpoint == NULL || d->database == NULL || d->container == NULL) {
		section_say(err, errlen, "cosmos needs endpoint:, database: and container: (the account's URL, "
		    "https://ACCOUNT.documents.azure.com, and the names of its database and container)");
		goto fail;
	}
	if (!name_ok(d->database) || !name_ok(d->container)) {
		section_error(host, !name_ok(d->database) ? db_node : coll_node, err, errlen,
		    "%s must be 1 to 255 letters, digits, '_', '-' or '.'", !name_ok(d->database) ? "database" :
		    "container");
		goto fail;
	}
	size_t n = strlen(d->endpoint);
	while (n > 0 && d->endpoint[n - 1] == '/')
		d->endpoint[--n] = '\0';
	int http = strncasecmp(d->endpoint, "http://", 7) == 0;
	const char *hoststart = strstr(d->endpoint, "://");
	if ((!http && strncasecmp(d->endpoint, "https://", 8) != 0) || hoststart == NULL || hoststart[3] == '\0' ||
	    strpbrk(hoststart + 3, "/?#@ ") != NULL) {
		section_error(host, ep_node, err, errlen, "endpoint must be the account's https URL, without a path "
		    "(https://ACCOUNT.documents.azure.com)");
		goto fail;
	}
	if (http)
		host->log(MCPD_LOG_WARN, "cosmos: endpoint %s is plain http: for an emulator only", d->endpoint);
	if (!d->tls_verify)
		host->log(MCPD_LOG_WARN, "cosmos: tls_verify is false: the server's certificate is not checked "
		    "(for tests against an emulator only)");
	if (d->scope == NULL) {
		/* https://HOST/.default: the account's URL without its port */
		const char *h = hoststart + 3;
		size_t hl = strcspn(h, ":");
		if (h[0] == '[')
			hl = strcspn(h, "]") + 1;
		if (asprintf(&d->scope, "https://%.*s/.default", (int)hl, h) < 0) {
			d->scope = NULL;
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	if ((key_file != NULL && (d->key_file = section_path(host, key_file)) == NULL) ||
	    (ca_file != NULL && (d->ca_file = section_path(host, ca_file)) == NULL)) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	snprintf(d->feed_path, sizeof(d->feed_path), "/dbs/%s/colls/%s/docs", d->database, d->container);
	snprintf(d->feed_link, sizeof(d->feed_link), "dbs/%s/colls/%s", d->database, d->container);
	char why[700], what[600];
	if (d->key_file != NULL) {
		unsigned char key[128];
		size_t kl;
		int rc = cosmos_read_key(d->key_file, key, &kl, why, sizeof(why));
		OPENSSL_cleanse(key, sizeof(key));
		if (rc < 0) {
			section_say(err, errlen, "cosmos: %s", why);
			goto fail;
		}
	} else if (azure_cred_probe(d->client_id, what, sizeof(what), why, sizeof(why)) < 0) {
		section_say(err, errlen, "cosmos: no key_file, and no Entra ID credentials: %s", why);
		goto fail;
	}
	struct cosmos_conf conf;
	conf_of(d, &conf);
	if (!d->create_container && container_check(d, &conf, err, errlen) < 0)
		goto fail;
	free(key_file);
	free(ca_file);
	return d;
fail:
	free(key_file);
	free(ca_file);
	cosmos_free(d);
	return NULL;
}

static int
cosmos_attach(void *inst, char *err, size_t errlen)
{
	struct cosmos *d = inst;
	struct event_base *base = d->host->event_base();
	struct cosmos_conf conf;
	conf_of(d, &conf);
	if ((d->client = cosmos_client_new(base, d->host, &conf, "cosmos", err, errlen)) == NULL)
		return -1;
	d->probe = event_new(base, -1, EV_PERSIST, probe_cb, d);
	if (d->probe == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(d->error, sizeof(d->error), "container %s not checked yet", d->container);
	struct timeval tv = { PROBE_MS / 1000, (PROBE_MS % 1000) * 1000 };
	event_add(d->probe, &tv);
	probe_cb(-1, 0, d);
	return 0;
}

static void
cosmos_detach(void *inst)
{
	struct cosmos *d = inst;
	if (d->probe != NULL)
		event_free(d->probe);
	d->probe = NULL;
	cosmos_client_free(d->client);
	d->client = NULL;
	/* Calls in flight were dropped with the client: their operations go
	 * too, without callbacks (the worker is stopping). */
	d->closing = 1;
	while (d->ops != NULL)
		op_free((struct op *)d->ops);
	keyorder_clear();
	d->closing = 0;
	d->probing = 0;
	d->ready = 0;
}

static void
cosmos_destroy(void *inst)
{
	cosmos_free(inst);
}

static int
cosmos_status(void *inst, char *why, size_t len)
{
	struct cosmos *d = inst;
	if (d->client == NULL) {
		snprintf(why, len, "not attached");
		return -1;
	}
	if (cosmos_client_status(d->client, why, len) < 0)
		return -1;
	if (!d->ready) {
		snprintf(why, len, "cosmos: %s", d->error);
		return -1;
	}
	return 0;
}

static const struct mcpd_plugin descriptor = {
	.size = sizeof(struct mcpd_plugin),
	.abi_major = MCPD_PLUGIN_ABI_MAJOR,
	.abi_minor = MCPD_PLUGIN_ABI_MINOR,
	.kind = MCPD_PLUGIN_STORAGE,
	.name = "cosmos",
	.version = "1.0.0",
	.create = cosmos_create,
	.attach = cosmos_attach,
	.detach = cosmos_detach,
	.destroy = cosmos_destroy,
	.ops = &storage_ops,
	.status = cosmos_status,
};

const struct mcpd_plugin *
mcpd_plugin_entry(void)
{
	return &descriptor;
}
