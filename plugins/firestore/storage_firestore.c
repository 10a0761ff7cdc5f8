/*
 * firestore: storage in a Cloud Firestore database (native mode), so that
 * mcpd instances on Google Cloud share sessions, event logs and the OAuth
 * server's state through a managed service. Built against <mcpd/plugin.h>
 * alone; the calls are plugins/common/gcp.c's (REST over libcurl multi on
 * the worker's loop, the Application Default Credentials).
 *
 *   storage: { plugin: firestore, project: my-project, collection: mcpd }
 *
 * Keys: project (else GOOGLE_CLOUD_PROJECT, GCLOUD_PROJECT, or the
 * service account key's project_id), database ("(default)"), collection
 * ("mcpd"), endpoint (another URL: an emulator, a private endpoint;
 * FIRESTORE_EMULATOR_HOST does the same), credentials (default: the
 * Application Default Credentials; none for an emulator, the default for
 * an http:// endpoint), timeout (3s: each attempt of a call).
 *
 * Documents, under the collection C, named by an encoding of mcpd's keys
 * (letters, digits, '-', '_' and '.' as they are, every other byte ~XX,
 * a leading '.' or '_' too: reversible, and never ".", ".." or __x__):
 *
 *   a value            C/<key>: v (bytes; n, an integer, for a counter)
 *   an index member    C/<index>/m/<member>
 *   a log's head       C/<log>/l/head: seq (the last entry's), max
 *   a log's entry      C/<log>/e/<seq in 20 digits>: d (bytes)
 *
 * Each may have expire_at, a timestamp: every read checks it, since
 * Firestore's TTL policy (on expire_at, for the collection groups C, m, l
 * and e) deletes expired documents late, within a day or so; worker 1 of
 * each instance also deletes the expired values of C it finds, at most
 * 100 a minute (the first time 10 seconds after it starts). Reads are strongly consistent. Preconditions make set's
 * only-if-absent (exists: false, or the update time of an expired one)
 * and only-if-present (the update time of the live one read) atomic; incr
 * adds with a field transform (increment) in one commit, or starts a
 * counter anew over an absent or expired one; an append writes the head
 * and the entry in one commit conditional on the head it read, and
 * deletes the entry that falls out of the newest max in it, so that
 * entries appear in order and a reader never sees a gap. A delete takes
 * the value, the log's head and (at most 400 of) its entries in one
 * commit.
 *
 * A missing database is an error at start and in mcpd -t; /readyz fails
 * while the database cannot be reached.
 */
#include <mcpd/plugin.h>

#include "b64.h"
#include "clock.h"
#include "gcp.h"
#include "gcp_auth.h"
#include "isotime.h"
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

#define MAX_ID 1500                 /* Firestore's bound on a document id */
#define MAX_DOC (1u << 20)          /* and on a document */
#define DOC_OVERHEAD 2048           /* names and other fields, counted generously */
#define MAX_PAGES 64                /* of one listing */
#define MEMBERS_PAGE 300
#define RANGE_PAGE 16               /* entries of up to 1 MiB each: bounded answers */
#define TRIES 16                    /* of a write whose precondition another write broke */
#define DEL_ENTRIES 400             /* entries a delete takes with it */
#define PROBE_MS 1000
#define IDLE_CHECK_MS 2000
#define PURGE_MS 60000
#define FIRST_PURGE_MS 10000
#define PURGE_MAX 100
#define GOOGLE_URL "https://firestore.googleapis.com"

struct fs {
	const struct mcpd_host *host;
	char *project, *database, *collection, *endpoint;
	int credentials;            /* -1: as the endpoint says; 0 none; 1 default */
	uint64_t timeout_ms;
	char url[600];              /* the service, no trailing slash */
	int emulator;
	char root[800];             /* projects/P/databases/D/documents */
	char base[1500];            /* url/v1/root */
	/* per worker */
	struct gcp_client *client;
	struct event *probe, *purge;
	int ready, probing, purging;
	int closing;
	struct storeop *ops;        /* every operation not finished */
	char db_error[700];
};

/* ---- names ---- */

static int
plain(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
	    c == '.';
}

/* key as a document id into out (3 * strlen + 1 bytes). */
static void
encode_id(const char *key, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	char *o = out;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		if (plain(*p) && !(p == (const unsigned char *)key && (*p == '.' || *p == '_'))) {
			*o++ = (char)*p;
		} else {
			*o++ = '~';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
}

static int
hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A document id back into the key (malloc'ed), or NULL. */
static char *
decode_id(const char *id)
{
	char *out = malloc(strlen(id) + 1), *o = out;
	if (out == NULL)
		return NULL;
	for (const char *p = id; *p; p++) {
		if (*p == '~') {
			int h = hexval(p[1]), l = h >= 0 ? hexval(p[2]) : -1;
			if (l < 0 || (h == 0 && l == 0)) {
				free(out);
				return NULL;
			}
			*o++ = (char)(h << 4 | l);
			p += 2;
		} else if (*p == '%') {         /* as a name may come back escaped */
			int h = hexval(p[1]), l = h >= 0 ? hexval(p[2]) : -1;
			if (l < 0 || (h == 0 && l == 0)) {
				free(out);
				return NULL;
			}
			*o++ = (char)(h << 4 | l);
			p += 2;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return out;
}

/* ---- operations ---- */

struct op {
	struct storeop s;               /* first: key, callback, the list, what pages gave (storeop.h) */
	struct fs *f;
	void (*start)(struct op *);
	int step;
	char *doc;                      /* the value's document name (root/C/id) */
	char *sub;                      /* index ops: the member's; logs: the head's */
	unsigned char *data;
	size_t len;
	uint64_t ttl_ms;
	unsigned flags;
	int64_t by;
	uint64_t max, after;
	int tries;
	int found;
	int64_t seq;
	uint64_t head_exp;
	char *update_time;              /* of the document read */
	int pages;
	char *page_token;
};

/* Operations on one key in order (keyorder.h). */
static void
start_op(struct keyorder_op *q)
{
	struct op *o = (struct op *)q;
	o->start(o);
}

static void
op_free(struct op *o)
{
	storeop_clear(&o->s, !o->f->closing);
	free(o->doc);
	free(o->sub);
	free(o->data);
	free(o->update_time);
	free(o->page_token);
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

static void answered(void *arg, const struct gcp_result *r);

/* A document's name under the collection: root/C/<id>[/<sub>]. */
static char *
doc_name(const struct fs *f, const char *key, const char *sub)
{
	char *id = malloc(3 * strlen(key) + 1), *name = NULL;
	if (id == NULL)
		return NULL;
	encode_id(key, id);
	if (strlen(id) <= MAX_ID && asprintf(&name, "%s/%s/%s%s%s", f->root, f->collection, id, sub ? "/" : "",
	    sub ? sub : "") < 0)
		name = NULL;
	free(id);
	return name;
}

static struct op *
op_new(struct fs *f, enum store_kind kind, const char *key, void *cb, void *arg)
{
	struct op *o = calloc(1, sizeof(*o));
	if (o == NULL || storeop_init(&o->s, &f->ops, kind, key, cb, arg) < 0) {
		free(o);
		return NULL;
	}
	o->s.q.start = start_op;
	o->f = f;
	return o;
}

/* The value's document name, or the op failed (a key Firestore cannot
 * name is refused, never cut). 0 or -1. */
static int
name_op(struct op *o)
{
	if (*o->s.key == '\0') {
		fail(o, "firestore: empty key");
		return -1;
	}
	char *id = malloc(3 * strlen(o->s.key) + 1);
	if (id == NULL) {
		fail(o, "out of memory");
		return -1;
	}
	encode_id(o->s.key, id);
	size_t n = strlen(id);
	free(id);
	if (n > MAX_ID) {
		fail(o, "firestore: key too long (a document id holds 1500 bytes, some characters taking 3)");
		return -1;
	}
	if ((o->doc = doc_name(o->f, o->s.key, NULL)) == NULL) {
		fail(o, "out of memory");
		return -1;
	}
	return 0;
}

/* The URL of a document name (root/...) with a suffix (":runQuery", a
 * query string). */
static char *
doc_url(const struct fs *f, const char *name, const char *suffix)
{
	char *u = NULL;
	if (asprintf(&u, "%s/v1/%s%s", f->url, name, suffix ? suffix : "") < 0)
		return NULL;
	return u;
}

static void
call(struct op *o, const char *method, char *url, cJSON *body, unsigned flags)
{
	struct fs *f = o->f;
	char *text = body ? cJSON_PrintUnformatted(body) : NULL;
	cJSON_Delete(body);
	if (url == NULL || (body != NULL && text == NULL)) {
		free(url);
		free(text);
		fail(o, "out of memory");
		return;
	}
	gcp_call(f->client, method, url, text, text ? strlen(text) : 0, flags, f->timeout_ms, 2 * f->timeout_ms,
	    answered, o);
	free(url);
	free(text);
}

static void
get_doc(struct op *o, const char *name, int mask)
{
	call(o, "GET", doc_url(o->f, name, mask ? "?mask.fieldPaths=expire_at" : NULL), NULL, GCP_IDEMPOTENT);
}

/* ---- fields ---- */

static void
add_time(cJSON *fields, const char *name, uint64_t ms)
{
	char t[40];
	isotime_format_ms(ms, t, sizeof(t));
	cJSON_AddStringToObject(cJSON_AddObjectToObject(fields, name), "timestampValue", t);
}

static void
add_int(cJSON *fields, const char *name, int64_t v)
{
	char n[32];
	snprintf(n, sizeof(n), "%" PRId64, v);
	cJSON_AddStringToObject(cJSON_AddObjectToObject(fields, name), "integerValue", n);
}

static int
add_bytes(cJSON *fields, const char *name, const void *data, size_t len)
{
	char *s = b64_encode(data, len);
	if (s == NULL)
		return -1;
	cJSON *v = cJSON_AddObjectToObject(fields, name);
	int ok = v != NULL && cJSON_AddStringToObject(v, "bytesValue", s) != NULL;
	free(s);
	return ok ? 0 : -1;
}

static const cJSON *
field(const cJSON *doc, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "fields"), name);
}

/* expire_at in Unix ms, 0 when none. */
static uint64_t
expiry(const cJSON *doc)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(field(doc, "expire_at"), "timestampValue");
	return cJSON_IsString(t) ? isotime_parse_ms(t->valuestring) : 0;
}

static int
expired(const cJSON *doc, uint64_t now)
{
	uint64_t e = expiry(doc);
	return e > 0 && e <= now;
}

static int
int_field(const cJSON *doc, const char *name, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(field(doc, name), "integerValue");
	if (!cJSON_IsString(v))
		return -1;
	*out = strtoll(v->valuestring, NULL, 10);
	return 0;
}

/* A write of document name with fields (taken). */
static cJSON *
update_write(const char *name, cJSON *fields)
{
	cJSON *w = cJSON_CreateObject(), *u = cJSON_AddObjectToObject(w, "update");
	if (u == NULL) {
		cJSON_Delete(fields);
		cJSON_Delete(w);
		return NULL;
	}
	cJSON_AddStringToObject(u, "name", name);
	cJSON_AddItemToObject(u, "fields", fields ? fields : cJSON_CreateObject());
	return w;
}

static cJSON *
delete_write(const char *name)
{
	cJSON *w = cJSON_CreateObject();
	if (w != NULL)
		cJSON_AddStringToObject(w, "delete", name);
	return w;
}

/* A precondition: exists (0 or 1), or the update time read (when set). */
static void
precondition(cJSON *w, int exists, const char *update_time)
{
	cJSON *c = cJSON_AddObjectToObject(w, "currentDocument");
	if (update_time != NULL)
		cJSON_AddStringToObject(c, "updateTime", update_time);
	else
		cJSON_AddBoolToObject(c, "exists", exists);
}

static void
commit(struct op *o, cJSON *writes, unsigned flags)
{
	cJSON *body = cJSON_CreateObject();
	if (body == NULL || writes == NULL) {
		cJSON_Delete(body);
		cJSON_Delete(writes);
		fail(o, "out of memory");
		return;
	}
	cJSON_AddItemToObject(body, "writes", writes);
	call(o, "POST", doc_url(o->f, o->f->root, ":commit"), body, flags);
}

static void
keep_update_time(struct op *o, const cJSON *doc)
{
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(doc, "updateTime");
	free(o->update_time);
	o->update_time = cJSON_IsString(u) ? strdup(u->valuestring) : NULL;
}

/* ---- get, exists, set, del ---- */

static void
start_get(struct op *o)
{
	get_doc(o, o->doc, 0);
}

static void
start_exists(struct op *o)
{
	get_doc(o, o->doc, 1);
}

/* The value written: unconditionally (step 0 without flags), absent
 * (exists: false), or over the document read (its update time). */
static void
write_value(struct op *o, int exists, const char *update_time)
{
	cJSON *fields = cJSON_CreateObject();
	if (fields == NULL || add_bytes(fields, "v", o->data ? o->data : (unsigned char *)"", o->len) < 0) {
		cJSON_Delete(fields);
		fail(o, "out of memory");
		return;
	}
	if (o->ttl_ms > 0)
		add_time(fields, "expire_at", real_ms() + o->ttl_ms);
	cJSON *w = update_write(o->doc, fields), *writes = cJSON_CreateArray();
	if (w != NULL && (exists >= 0 || update_time != NULL))
		precondition(w, exists, update_time);
	if (w != NULL)
		cJSON_AddItemToArray(writes, w);
	commit(o, w ? writes : (cJSON_Delete(writes), NULL), GCP_IDEMPOTENT);
}

/* set: step 0 the write (exists: false for only-if-absent) or, for
 * only-if-present, the read; step 1 a read after ALREADY_EXISTS; step 2
 * the write over what was read. */
static void
start_set(struct op *o)
{
	o->step = 0;
	if (o->flags & MCPD_SET_IF_PRESENT)
		get_doc(o, o->doc, 1);
	else
		write_value(o, o->flags & MCPD_SET_IF_ABSENT ? 0 : -1, NULL);
}

static void
start_del(struct op *o)
{
	/* Both documents at once: the value and the log's head. */
	cJSON *body = cJSON_CreateObject(), *docs = cJSON_AddArrayToObject(body, "documents");
	cJSON_AddItemToArray(docs, cJSON_CreateString(o->doc));
	cJSON_AddItemToArray(docs, cJSON_CreateString(o->sub));
	o->step = 0;
	call(o, "POST", doc_url(o->f, o->f->root, ":batchGet"), body, GCP_IDEMPOTENT);
}

static void
s_get(void *inst, const char *key, mcpd_value_cb *cb, void *arg)
{
	struct op *o = op_new(inst, K_GET, key, (void *)cb, arg);
	if (o == NULL) {
		cb(arg, MCPD_ERROR, NULL, 0, "out of memory");
		return;
	}
	if (name_op(o) == 0) {
		o->start = start_get;
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
	if (name_op(o) == 0) {
		o->start = start_exists;
		keyorder_submit(&o->s.q);
	}
}

static int
fits(struct op *o, size_t len)
{
	if (len + strlen(o->doc) + DOC_OVERHEAD > MAX_DOC) {
		char why[200];
		snprintf(why, sizeof(why), "firestore: a value of %zu bytes is too large (Firestore keeps at most 1 MiB "
		    "a document)", len);
		fail(o, why);
		return 0;
	}
	return 1;
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
	if (name_op(o) < 0 || !fits(o, len))
		return;
	if ((o->data = malloc(len ? len : 1)) == NULL) {
		fail(o, "out of memory");
		return;
	}
	memcpy(o->data, value, len);
	o->len = len;
	o->ttl_ms = ttl_ms;
	o->flags = flags;
	o->start = start_set;
	keyorder_submit(&o->s.q);
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
	if (name_op(o) < 0)
		return;
	if (asprintf(&o->sub, "%s/l/head", o->doc) < 0) {
		o->sub = NULL;
		fail(o, "out of memory");
		return;
	}
	o->start = start_del;
	keyorder_submit(&o->s.q);
}

/* ---- counters ---- */

/* Step 0: the read; step 1: the write (a new counter or an increment). */
static void
start_incr(struct op *o)
{
	o->step = 0;
	get_doc(o, o->doc, 0);
}

static void
incr_write(struct op *o, const cJSON *doc, uint64_t now)
{
	cJSON *writes = cJSON_CreateArray(), *w;
	int live = doc != NULL && !expired(doc, now);
	o->step = 1;
	if (!live) {
		/* A new counter over nothing, or over an expired one. */
		cJSON *fields = cJSON_CreateObject();
		add_int(fields, "n", o->by);
		if (o->ttl_ms > 0)
			add_time(fields, "expire_at", now + o->ttl_ms);
		w = update_write(o->doc, fields);
		if (w != NULL)
			precondition(w, 0, doc != NULL ? o->update_time : NULL);
		o->found = 0;
	} else {
		char by[32];
		snprintf(by, sizeof(by), "%" PRId64, o->by);
		cJSON *fields = cJSON_CreateObject();
		if (o->ttl_ms > 0)
			add_time(fields, "expire_at", now + o->ttl_ms);
		w = update_write(o->doc, fields);
		cJSON *mask = cJSON_AddObjectToObject(w, "updateMask");
		cJSON *paths = cJSON_AddArrayToObject(mask, "fieldPaths");
		if (o->ttl_ms > 0)
			cJSON_AddItemToArray(paths, cJSON_CreateString("expire_at"));
		cJSON *tr = cJSON_AddArrayToObject(w, "updateTransforms"), *t = cJSON_CreateObject();
		cJSON_AddStringToObject(t, "fieldPath", "n");
		cJSON_AddStringToObject(cJSON_AddObjectToObject(t, "increment"), "integerValue", by);
		cJSON_AddItemToArray(tr, t);
		precondition(w, 1, NULL);
		o->found = 1;
	}
	if (w == NULL) {
		cJSON_Delete(writes);
		fail(o, "out of memory");
		return;
	}
	cJSON_AddItemToArray(writes, w);
	/* An increment must not run twice; a new counter may (its
	 * precondition stops the second). */
	commit(o, writes, o->found ? 0 : GCP_IDEMPOTENT);
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
	if (name_op(o) < 0)
		return;
	o->by = by;
	o->ttl_ms = ttl_ms;
	o->start = start_incr;
	keyorder_submit(&o->s.q);
}

/* ---- indexes ---- */

static void
start_index_add(struct op *o)
{
	cJSON *fields = cJSON_CreateObject(), *writes = cJSON_CreateArray();
	if (o->ttl_ms > 0)
		add_time(fields, "expire_at", real_ms() + o->ttl_ms);
	cJSON *w = update_write(o->sub, fields);
	if (w != NULL)
		cJSON_AddItemToArray(writes, w);
	commit(o, w ? writes : (cJSON_Delete(writes), NULL), GCP_IDEMPOTENT);
}

/* Step 0: the member read (whether it was there); step 1: its delete. */
static void
start_index_remove(struct op *o)
{
	o->step = 0;
	get_doc(o, o->sub, 1);
}

static void
list_members(struct op *o)
{
	char *url = NULL, *tok = o->page_token ? gcp_url_escape(o->page_token) : NULL;
	if (asprintf(&url, "%s/v1/%s/m?pageSize=%d&mask.fieldPaths=expire_at%s%s", o->f->url, o->doc, MEMBERS_PAGE,
	    tok ? "&pageToken=" : "", tok ? tok : "") < 0)
		url = NULL;
	free(tok);
	call(o, "GET", url, NULL, GCP_IDEMPOTENT);
}

static void
start_members(struct op *o)
{
	list_members(o);
}

/* An index operation on member: o with the member's document, or NULL
 * (cb told). */
static struct op *
index_op(struct fs *f, enum store_kind kind, const char *index, const char *member, void *cb, void *arg)
{
	struct op *o = op_new(f, kind, index, cb, arg);
	if (o == NULL) {
		storeop_fail_kind(kind, cb, arg, "out of memory");
		return NULL;
	}
	if (name_op(o) < 0)
		return NULL;
	if (member == NULL)
		return o;
	if (*member == '\0' || strlen(member) * 3 > MAX_ID) {
		fail(o, *member ? "firestore: index member too long" : "firestore: empty index member");
		return NULL;
	}
	char *id = malloc(3 * strlen(member) + 1);
	if (id != NULL) {
		encode_id(member, id);
		if (asprintf(&o->sub, "%s/m/%s", o->doc, id) < 0)
			o->sub = NULL;
	}
	free(id);
	if (o->sub == NULL) {
		fail(o, "out of memory");
		return NULL;
	}
	return o;
}

static void
s_index_add(void *inst, const char *index, const char *member, uint64_t ttl_ms, mcpd_done_cb *cb, void *arg)
{
	struct op *o = index_op(inst, K_IDX_ADD, index, member, (void *)cb, arg);
	if (o != NULL) {
		o->ttl_ms = ttl_ms;
		o->start = start_index_add;
		keyorder_submit(&o->s.q);
	}
}

static void
s_index_remove(void *inst, const char *index, const char *member, mcpd_done_cb *cb, void *arg)
{
	struct op *o = index_op(inst, K_IDX_REM, index, member, (void *)cb, arg);
	if (o != NULL) {
		o->start = start_index_remove;
		keyorder_submit(&o->s.q);
	}
}

static void
s_index_members(void *inst, const char *index, mcpd_members_cb *cb, void *arg)
{
	struct op *o = index_op(inst, K_MEMBERS, index, NULL, (void *)cb, arg);
	if (o != NULL) {
		o->start = start_members;
		keyorder_submit(&o->s.q);
	}
}

/* ---- logs ---- */

static void
entry_name(const struct op *o, uint64_t seq, char *buf, size_t len)
{
	snprintf(buf, len, "%s/e/%020" PRIu64, o->doc, seq);
}

static void
start_head(struct op *o)
{
	o->step = 0;
	get_doc(o, o->sub, 0);
}

/* The head read (doc, or NULL): the commit of the head, the entry and
 * the trim. */
static void
append_write(struct op *o, const cJSON *doc, uint64_t now)
{
	int64_t seq = 0;
	int live = doc != NULL && !expired(doc, now) && int_field(doc, "seq", &seq) == 0;
	uint64_t next = live ? (uint64_t)seq + 1 : 1;
	uint64_t exp = o->ttl_ms > 0 ? now + o->ttl_ms : live ? expiry(doc) : 0;
	char name[2200];
	cJSON *writes = cJSON_CreateArray();
	/* the head, conditional on what was read */
	cJSON *fields = cJSON_CreateObject();
	add_int(fields, "seq", (int64_t)next);
	add_int(fields, "max", (int64_t)o->max);
	if (exp > 0)
		add_time(fields, "expire_at", exp);
	cJSON *w = update_write(o->sub, fields);
	if (w != NULL) {
		precondition(w, 0, doc != NULL ? o->update_time : NULL);
		cJSON_AddItemToArray(writes, w);
	}
	/* the entry */
	entry_name(o, next, name, sizeof(name));
	fields = cJSON_CreateObject();
	if (fields == NULL || add_bytes(fields, "d", o->data ? o->data : (unsigned char *)"", o->len) < 0) {
		cJSON_Delete(fields);
		cJSON_Delete(writes);
		fail(o, "out of memory");
		return;
	}
	if (exp > 0)
		add_time(fields, "expire_at", exp);
	cJSON *e = update_write(name, fields);
	if (e != NULL)
		cJSON_AddItemToArray(writes, e);
	/* the one that falls out of the window */
	if (next > o->max) {
		entry_name(o, next - o->max, name, sizeof(name));
		cJSON *d = delete_write(name);
		if (d != NULL)
			cJSON_AddItemToArray(writes, d);
	}
	if (w == NULL || e == NULL) {
		cJSON_Delete(writes);
		fail(o, "out of memory");
		return;
	}
	o->step = 1;
	o->seq = (int64_t)next;
	commit(o, writes, GCP_IDEMPOTENT);
}

static int
log_op(struct op *o)
{
	if (name_op(o) < 0)
		return -1;
	if (asprintf(&o->sub, "%s/l/head", o->doc) < 0) {
		o->sub = NULL;
		fail(o, "out of memory");
		return -1;
	}
	return 0;
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
	if (log_op(o) < 0 || !fits(o, len))
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

/* Entries from o->after + 1 to o->seq, a page at a most. */
static void
range_query(struct op *o)
{
	char lo[2200], hi[2200];
	entry_name(o, o->after + 1, lo, sizeof(lo));
	entry_name(o, (uint64_t)o->seq, hi, sizeof(hi));
	size_t want = o->max - o->s.n < RANGE_PAGE ? o->max - o->s.n : RANGE_PAGE;
	cJSON *body = cJSON_CreateObject(), *q = cJSON_AddObjectToObject(body, "structuredQuery");
	cJSON *from = cJSON_AddArrayToObject(q, "from"), *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "collectionId", "e");
	cJSON_AddItemToArray(from, c);
	cJSON *filters = cJSON_AddArrayToObject(cJSON_AddObjectToObject(cJSON_AddObjectToObject(q, "where"),
	    "compositeFilter"), "filters");
	cJSON_AddStringToObject(cJSON_GetObjectItem(cJSON_GetObjectItem(q, "where"), "compositeFilter"), "op", "AND");
	const char *ops[2] = { "GREATER_THAN_OR_EQUAL", "LESS_THAN_OR_EQUAL" };
	const char *refs[2] = { lo, hi };
	for (int i = 0; i < 2; i++) {
		cJSON *ff = cJSON_CreateObject(), *fl = cJSON_AddObjectToObject(ff, "fieldFilter");
		cJSON_AddStringToObject(cJSON_AddObjectToObject(fl, "field"), "fieldPath", "__name__");
		cJSON_AddStringToObject(fl, "op", ops[i]);
		cJSON_AddStringToObject(cJSON_AddObjectToObject(fl, "value"), "referenceValue", refs[i]);
		cJSON_AddItemToArray(filters, ff);
	}
	cJSON *ob = cJSON_AddArrayToObject(q, "orderBy"), *oo = cJSON_CreateObject();
	cJSON_AddStringToObject(cJSON_AddObjectToObject(oo, "field"), "fieldPath", "__name__");
	cJSON_AddStringToObject(oo, "direction", "ASCENDING");
	cJSON_AddItemToArray(ob, oo);
	cJSON_AddNumberToObject(q, "limit", (double)want);
	o->step = 1;
	call(o, "POST", doc_url(o->f, o->doc, ":runQuery"), body, GCP_IDEMPOTENT);
}

static void
s_log_range(void *inst, const char *log, uint64_t after, size_t max, mcpd_entries_cb *cb, void *arg)
{
	struct op *o = op_new(inst, K_RANGE, log, (void *)cb, arg);
	if (o == NULL) {
		cb(arg, MCPD_ERROR, NULL, 0, "out of memory");
		return;
	}
	if (log_op(o) < 0)
		return;
	o->after = after;
	o->max = max;
	o->start = start_head;
	keyorder_submit(&o->s.q);
}

/* ---- answers ---- */

static int
is(const struct gcp_result *r, const char *code)
{
	return r->code != NULL && strcmp(r->code, code) == 0;
}

static void
got_value(struct op *o, const cJSON *doc)
{
	mcpd_value_cb *cb = o->s.cb;
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(field(doc, "v"), "bytesValue");
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(field(doc, "n"), "integerValue");
	if (cJSON_IsString(n)) {
		cb(o->s.arg, MCPD_OK, n->valuestring, strlen(n->valuestring), NULL);
	} else if (cJSON_IsString(b)) {
		size_t len;
		unsigned char *data = b64_decode(b->valuestring, &len);
		if (data == NULL)
			cb(o->s.arg, MCPD_ERROR, NULL, 0, "firestore: a value that is not base64");
		else
			cb(o->s.arg, MCPD_OK, data, len, NULL);
		free(data);
	} else {
		cb(o->s.arg, MCPD_ERROR, NULL, 0, "firestore: a document without a value");
	}
	op_free(o);
}

/* A page of members; 1 when another was asked. */
static int
members_page(struct op *o, const cJSON *ans, uint64_t now)
{
	const cJSON *docs = cJSON_GetObjectItemCaseSensitive(ans, "documents"), *d;
	cJSON_ArrayForEach(d, docs) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(d, "name");
		if (!cJSON_IsString(name) || expired(d, now))
			continue;
		const char *id = strrchr(name->valuestring, '/');
		char *m = id ? decode_id(id + 1) : NULL;
		if (m != NULL)
			storeop_add_name(&o->s, m);
	}
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(ans, "nextPageToken");
	if (!cJSON_IsString(tok) || *tok->valuestring == '\0' || ++o->pages >= MAX_PAGES)
		return 0;
	free(o->page_token);
	if ((o->page_token = strdup(tok->valuestring)) == NULL)
		return 0;
	list_members(o);
	return 1;
}

/* A page of entries; 1 when another was asked. */
static int
range_page(struct op *o, const cJSON *ans)
{
	const cJSON *it;
	size_t got = 0;
	uint64_t last = o->after;
	cJSON_ArrayForEach(it, ans) {
		const cJSON *doc = cJSON_GetObjectItemCaseSensitive(it, "document");
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(doc, "name");
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(field(doc, "d"), "bytesValue");
		if (!cJSON_IsString(name) || !cJSON_IsString(d))
			continue;
		const char *id = strrchr(name->valuestring, '/');
		if (id == NULL || strspn(id + 1, "0123456789") != 20)
			continue;
		uint64_t seq = strtoull(id + 1, NULL, 10);
		got++;
		if (seq <= last)
			continue;
		last = seq;
		if (o->s.n >= o->max)
			break;
		size_t len;
		unsigned char *data = b64_decode(d->valuestring, &len);
		if (data == NULL)
			continue;
		if (storeop_add_entry(&o->s, seq, data, len) < 0)
			break;
	}
	o->after = last;
	if (got == 0 || o->s.n >= o->max || last >= (uint64_t)o->seq || ++o->pages >= MAX_PAGES)
		return 0;
	range_query(o);
	return 1;
}

static int
too_large(const struct gcp_result *r)
{
	return is(r, "INVALID_ARGUMENT") && r->message != NULL && (strstr(r->message, "exceeds the maximum") != NULL ||
	    strstr(r->message, "too large") != NULL || strstr(r->message, "too big") != NULL);
}

/* Another write won between the read and the write: read again. */
static int
lost_race(const struct gcp_result *r)
{
	return is(r, "FAILED_PRECONDITION") || is(r, "ALREADY_EXISTS") || is(r, "ABORTED");
}

static void
answered(void *arg, const struct gcp_result *r)
{
	struct op *o = arg;
	struct fs *f = o->f;
	uint64_t now = real_ms();
	int missing = is(r, "NOT_FOUND");
	if (r->code != NULL && !missing) {
		if (o->s.kind == K_SET && lost_race(r)) {
			if (o->step == 0 && (o->flags & MCPD_SET_IF_ABSENT) && is(r, "ALREADY_EXISTS")) {
				o->step = 1;            /* there: expired? */
				get_doc(o, o->doc, 1);
				return;
			}
			if (o->step == 2 && ++o->tries < TRIES) {
				start_set(o);
				return;
			}
		}
		if ((o->s.kind == K_INCR || o->s.kind == K_APPEND) && o->step == 1 && lost_race(r) && ++o->tries < TRIES) {
			o->start(o);
			return;
		}
		if (too_large(r)) {
			char why[900];
			snprintf(why, sizeof(why), "firestore: the document is too large (Firestore keeps at most 1 MiB a "
			    "document): %s", r->message);
			fail(o, why);
			return;
		}
		fail(o, r->message);
		return;
	}
	if (missing && gcp_project_missing(r)) {
		char why[900];
		snprintf(why, sizeof(why), "firestore: project %s does not exist or has no Firestore database", f->project);
		fail(o, why);
		return;
	}
	if (missing && r->body != NULL && strstr(r->body, "The database") != NULL && strstr(r->body, "does not exist")) {
		char why[900];
		snprintf(why, sizeof(why), "firestore: database %s of project %s does not exist", f->database, f->project);
		fail(o, why);
		return;
	}
	cJSON *ans = missing ? NULL : cJSON_ParseWithLength(r->body, r->len);
	if (!missing && ans == NULL) {
		fail(o, "firestore: an answer that is not JSON");
		return;
	}
	switch (o->s.kind) {
	case K_GET:
		if (ans == NULL || expired(ans, now)) {
			((mcpd_value_cb *)o->s.cb)(o->s.arg, MCPD_NOT_FOUND, NULL, 0, NULL);
			op_free(o);
		} else {
			got_value(o, ans);
		}
		break;
	case K_EXISTS:
		done_status(o, ans != NULL && !expired(ans, now) ? MCPD_OK : MCPD_NOT_FOUND);
		break;
	case K_SET:
		if (o->step == 0 && (o->flags & MCPD_SET_IF_PRESENT)) {
			if (ans == NULL || expired(ans, now)) {
				done_status(o, MCPD_CONFLICT);
				break;
			}
			keep_update_time(o, ans);
			o->step = 2;
			write_value(o, 1, o->update_time);
			break;
		}
		if (o->step == 1) {                     /* only-if-absent found one */
			if (ans != NULL && !expired(ans, now)) {
				done_status(o, MCPD_CONFLICT);
				break;
			}
			o->step = 2;
			keep_update_time(o, ans);
			write_value(o, 0, ans != NULL ? o->update_time : NULL);
			break;
		}
		if (missing) {                          /* only-if-present: deleted meanwhile */
			done_status(o, MCPD_CONFLICT);
			break;
		}
		done_status(o, MCPD_OK);
		break;
	case K_DEL:
		if (o->step == 0) {
			const cJSON *it;
			uint64_t head_seq = 0, head_max = 0;
			cJSON_ArrayForEach(it, ans) {
				const cJSON *doc = cJSON_GetObjectItemCaseSensitive(it, "found");
				if (doc == NULL)
					continue;
				if (!expired(doc, now))
					o->found = 1;
				int64_t s, m;
				if (int_field(doc, "seq", &s) == 0 && int_field(doc, "max", &m) == 0 && s > 0 && m > 0) {
					head_seq = (uint64_t)s;
					head_max = (uint64_t)m;
				}
			}
			cJSON *writes = cJSON_CreateArray();
			cJSON_AddItemToArray(writes, delete_write(o->doc));
			cJSON_AddItemToArray(writes, delete_write(o->sub));
			/* the log's entries, newest first, a bounded number */
			char name[2200];
			for (uint64_t k = 0; k < head_max && k < DEL_ENTRIES && k < head_seq; k++) {
				entry_name(o, head_seq - k, name, sizeof(name));
				cJSON_AddItemToArray(writes, delete_write(name));
			}
			o->step = 1;
			commit(o, writes, GCP_IDEMPOTENT);
			break;
		}
		done_status(o, o->found ? MCPD_OK : MCPD_NOT_FOUND);
		break;
	case K_INCR:
		if (o->step == 0) {
			if (ans != NULL && !expired(ans, now) && field(ans, "n") == NULL) {
				fail(o, "firestore: the value is not a counter");
				break;
			}
			keep_update_time(o, ans);
			incr_write(o, ans, now);
			break;
		}
		if (missing) {                          /* deleted meanwhile */
			if (++o->tries < TRIES) {
				start_incr(o);
				break;
			}
			fail(o, "firestore: the counter keeps changing");
			break;
		}
		if (!o->found) {
			int_result(o, o->by);
			break;
		}
		const cJSON *wr = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ans, "writeResults"), 0);
		const cJSON *tr = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(wr, "transformResults"), 0);
		const cJSON *iv = cJSON_GetObjectItemCaseSensitive(tr, "integerValue");
		if (!cJSON_IsString(iv))
			fail(o, "firestore: no counter in the answer");
		else
			int_result(o, strtoll(iv->valuestring, NULL, 10));
		break;
	case K_IDX_ADD:
		done_status(o, MCPD_OK);
		break;
	case K_IDX_REM:
		if (o->step == 0) {
			if (ans == NULL) {
				done_status(o, MCPD_NOT_FOUND);
				break;
			}
			o->found = !expired(ans, now);
			o->step = 1;
			cJSON *writes = cJSON_CreateArray();
			cJSON_AddItemToArray(writes, delete_write(o->sub));
			commit(o, writes, GCP_IDEMPOTENT);
			break;
		}
		done_status(o, o->found ? MCPD_OK : MCPD_NOT_FOUND);
		break;
	case K_MEMBERS:
		if (ans != NULL && members_page(o, ans, now))
			break;
		((mcpd_members_cb *)o->s.cb)(o->s.arg, MCPD_OK, (const char *const *)o->s.names, o->s.n, NULL);
		op_free(o);
		break;
	case K_APPEND:
		if (o->step == 0) {
			keep_update_time(o, ans);
			append_write(o, ans, now);
			break;
		}
		if (missing) {                          /* the head went meanwhile */
			if (++o->tries < TRIES) {
				start_head(o);
				break;
			}
			fail(o, "firestore: the log keeps changing");
			break;
		}
		int_result(o, o->seq);
		break;
	case K_RANGE:
		if (o->step == 0) {
			int64_t seq = 0, max = 1;
			if (ans == NULL || expired(ans, now) || o->max == 0 || int_field(ans, "seq", &seq) < 0) {
				((mcpd_entries_cb *)o->s.cb)(o->s.arg, MCPD_OK, NULL, 0, NULL);
				op_free(o);
				break;
			}
			int_field(ans, "max", &max);
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
			range_query(o);
			break;
		}
		if (ans != NULL && range_page(o, ans))
			break;
		((mcpd_entries_cb *)o->s.cb)(o->s.arg, MCPD_OK, o->s.entries, o->s.n, NULL);
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

/* ---- the database: readiness and the purge ---- */

/* What a listing of the collection says of the database: NULL when it
 * can be used, else why not. */
static const char *
database_problem(const struct fs *f, const struct gcp_result *r, char *buf, size_t len)
{
	if (r->code == NULL)
		return NULL;
	if (gcp_project_missing(r))
		snprintf(buf, len, "project %s does not exist or has no Firestore database (is project: right? else "
		    "create the database: gcloud firestore databases create --project=%s --location=...)", f->project,
		    f->project);
	else if (is(r, "NOT_FOUND"))
		snprintf(buf, len, "database %s of project %s does not exist (create it: gcloud firestore databases "
		    "create --database='%s' --location=...)", f->database, f->project, f->database);
	else
		snprintf(buf, len, "%s", r->message ? r->message : "no answer");
	return buf;
}

static char *
probe_url(const struct fs *f)
{
	char *u = NULL;
	if (asprintf(&u, "%s/%s?pageSize=1&mask.fieldPaths=expire_at", f->base, f->collection) < 0)
		return NULL;
	return u;
}

static void
probed(void *arg, const struct gcp_result *r)
{
	struct fs *f = arg;
	char why[700];
	f->probing = 0;
	const char *p = database_problem(f, r, why, sizeof(why));
	if (p == NULL) {
		if (!f->ready && f->db_error[0] && strstr(f->db_error, "not checked yet") == NULL)
			f->host->log(MCPD_LOG_NOTICE, "firestore: database %s is ready", f->database);
		f->ready = 1;
		f->db_error[0] = '\0';
		return;
	}
	if (is(r, "NOT_FOUND") && strcmp(f->db_error, p) != 0)
		f->host->log(MCPD_LOG_ERROR, "firestore: %s", p);
	snprintf(f->db_error, sizeof(f->db_error), "%s", p);
	f->ready = 0;
}

/* While the database is not known to be there, or calls fail, look
 * again; an idle worker looks every IDLE_CHECK_MS, so that its /readyz
 * follows the service too. */
static void
probe_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct fs *f = arg;
	char why[16];
	if (f->probing || (f->ready && gcp_client_status(f->client, why, sizeof(why)) == 0 &&
	    gcp_client_idle_ms(f->client) < IDLE_CHECK_MS))
		return;
	char *url = probe_url(f);
	if (url == NULL)
		return;
	f->probing = 1;
	gcp_call(f->client, "GET", url, NULL, 0, GCP_IDEMPOTENT, f->timeout_ms, 2 * f->timeout_ms, probed, f);
	free(url);
}

struct purge_one {
	struct fs *f;
	char *name;
	struct purge_one *next;
};

static struct purge_one *purge_list;    /* per worker: what the purge deletes next */

static void purge_next(struct fs *f);

static void
purged(void *arg, const struct gcp_result *r)
{
	struct fs *f = arg;
	(void)r;                        /* renewed meanwhile (precondition) or gone: either is fine */
	purge_next(f);
}

/* One expired value at a time, each conditional on the update time the
 * query saw (a value renewed meanwhile stays). */
static void
purge_next(struct fs *f)
{
	struct purge_one *p = purge_list;
	if (p == NULL) {
		f->purging = 0;
		return;
	}
	purge_list = p->next;
	char *nl = strchr(p->name, '\n');
	*nl = '\0';
	cJSON *body = cJSON_CreateObject(), *writes = cJSON_AddArrayToObject(body, "writes");
	cJSON *w = delete_write(p->name);
	cJSON_AddStringToObject(cJSON_AddObjectToObject(w, "currentDocument"), "updateTime", nl + 1);
	cJSON_AddItemToArray(writes, w);
	char *text = cJSON_PrintUnformatted(body), *url = doc_url(f, f->root, ":commit");
	cJSON_Delete(body);
	free(p->name);
	free(p);
	if (text == NULL || url == NULL) {
		free(text);
		free(url);
		f->purging = 0;
		return;
	}
	gcp_call(f->client, "POST", url, text, strlen(text), GCP_IDEMPOTENT | GCP_QUIET, f->timeout_ms,
	    2 * f->timeout_ms, purged, f);
	free(text);
	free(url);
}

static void
purge_found(void *arg, const struct gcp_result *r)
{
	struct fs *f = arg;
	if (r->code != NULL) {
		f->purging = 0;
		return;
	}
	cJSON *ans = cJSON_ParseWithLength(r->body, r->len);
	const cJSON *it;
	size_t n = 0;
	cJSON_ArrayForEach(it, ans) {
		const cJSON *doc = cJSON_GetObjectItemCaseSensitive(it, "document");
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(doc, "name");
		const cJSON *ut = cJSON_GetObjectItemCaseSensitive(doc, "updateTime");
		if (!cJSON_IsString(name) || !cJSON_IsString(ut) || !expired(doc, real_ms()))
			continue;
		struct purge_one *p = calloc(1, sizeof(*p));
		if (p == NULL || asprintf(&p->name, "%s\n%s", name->valuestring, ut->valuestring) < 0) {
			free(p);
			break;
		}
		p->f = f;
		p->next = purge_list;
		purge_list = p;
		n++;
	}
	cJSON_Delete(ans);
	if (n > 0)
		f->host->log(MCPD_LOG_DEBUG, "firestore: deleting %zu expired values", n);
	purge_next(f);
}

static void
purge_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct fs *f = arg;
	struct timeval next = { PURGE_MS / 1000, 0 };
	evtimer_add(f->purge, &next);
	if (f->purging || !f->ready)
		return;
	char t[40];
	isotime_format_ms(real_ms(), t, sizeof(t));
	cJSON *body = cJSON_CreateObject(), *q = cJSON_AddObjectToObject(body, "structuredQuery");
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "collectionId", f->collection);
	cJSON_AddItemToArray(cJSON_AddArrayToObject(q, "from"), c);
	cJSON *fl = cJSON_AddObjectToObject(cJSON_AddObjectToObject(q, "where"), "fieldFilter");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(fl, "field"), "fieldPath", "expire_at");
	cJSON_AddStringToObject(fl, "op", "LESS_THAN");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(fl, "value"), "timestampValue", t);
	cJSON *sel = cJSON_AddArrayToObject(cJSON_AddObjectToObject(q, "select"), "fields"), *fp = cJSON_CreateObject();
	cJSON_AddStringToObject(fp, "fieldPath", "expire_at");
	cJSON_AddItemToArray(sel, fp);
	cJSON_AddNumberToObject(q, "limit", PURGE_MAX);
	char *text = cJSON_PrintUnformatted(body), *url = doc_url(f, f->root, ":runQuery");
	cJSON_Delete(body);
	if (text != NULL && url != NULL) {
		f->purging = 1;
		gcp_call(f->client, "POST", url, text, strlen(text), GCP_IDEMPOTENT | GCP_QUIET, f->timeout_ms,
		    2 * f->timeout_ms, purge_found, f);
	}
	free(text);
	free(url);
}

/* ---- configuration and lifecycle ---- */

/* At configuration time (mcpd -t too): is the database there? Asked once,
 * on a loop of our own, within CHECK_MS; only a definite "no such
 * database" is an error (the service unreachable now is the workers' to
 * wait for). */
#define CHECK_MS 3000

struct check {
	struct event_base *base;
	struct fs *f;
	int done, missing;
	char why[700];
};

static void
checked(void *arg, const struct gcp_result *r)
{
	struct check *k = arg;
	char why[700];
	k->done = 1;
	k->missing = is(r, "NOT_FOUND");
	const char *p = database_problem(k->f, r, why, sizeof(why));
	snprintf(k->why, sizeof(k->why), "%s", p ? p : "");
	event_base_loopbreak(k->base);
}

static int
use_auth(const struct fs *f)
{
	return f->credentials >= 0 ? f->credentials : !f->emulator;
}

static int
database_check(struct fs *f, char *err, size_t errlen)
{
	struct check k = { 0 };
	char why[700];
	k.f = f;
	if ((k.base = event_base_new()) == NULL)
		return 0;
	struct gcp_client *c = gcp_client_new(k.base, f->host, use_auth(f), "firestore", why, sizeof(why));
	char *url = probe_url(f);
	if (c != NULL && url != NULL) {
		gcp_call(c, "GET", url, NULL, 0, GCP_IDEMPOTENT, CHECK_MS * 2 / 3, CHECK_MS, checked, &k);
		struct timeval tv = { CHECK_MS / 1000 + 1, 0 };
		event_base_loopexit(k.base, &tv);
		event_base_dispatch(k.base);
	}
	free(url);
	gcp_client_free(c);
	event_base_free(k.base);
	if (k.missing) {
		section_say(err, errlen, "firestore: %s", k.why);
		return -1;
	}
	if (!k.done)
		f->host->log(MCPD_LOG_WARN, "firestore: database %s not checked: no answer within %dms", f->database,
		    CHECK_MS);
	else if (k.why[0])
		f->host->log(MCPD_LOG_WARN, "firestore: database %s not checked: %s", f->database, k.why);
	return 0;
}

static void
fs_free(struct fs *f)
{
	free(f->project);
	free(f->database);
	free(f->collection);
	free(f->endpoint);
	free(f);
}

/* Google's rules: a project id is 6 to 30 lowercase letters, digits and
 * '-' (a domain-scoped one has "example.com:" before it); a database id
 * 4 to 63 of them, or "(default)"; a collection id any id but with no
 * '/' (mcpd asks for a plain one). */
static int
id_ok(const char *s, size_t min, size_t max, const char *more)
{
	size_t n = strlen(s);
	if (n < min || n > max)
		return 0;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || strchr(more, *p)))
			return 0;
	return 1;
}

static void *
fs_create(const struct mcpd_host *host, const struct mcpd_config *section, char *err, size_t errlen)
{
	struct fs *f = calloc(1, sizeof(*f));
	if (f == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	f->host = host;
	f->timeout_ms = 3000;
	f->credentials = -1;
	const struct mcpd_config *nodes[3] = { NULL };
	for (size_t i = 0; i < host->config_count(section); i++) {
		const char *key;
		const struct mcpd_config *n = host->config_item(section, i, &key);
		int rc = 0;
		if (strcmp(key, "plugin") == 0)
			continue;
		if (strcmp(key, "project") == 0) {
			rc = section_string(host, n, key, &f->project, err, errlen);
			nodes[0] = n;
		} else if (strcmp(key, "database") == 0) {
			rc = section_string(host, n, key, &f->database, err, errlen);
			nodes[1] = n;
		} else if (strcmp(key, "collection") == 0) {
			rc = section_string(host, n, key, &f->collection, err, errlen);
			nodes[2] = n;
		} else if (strcmp(key, "endpoint") == 0) {
			rc = section_string(host, n, key, &f->endpoint, err, errlen);
		} else if (strcmp(key, "credentials") == 0) {
			const char *v = host->config_scalar(n);
			if (v != NULL && (strcmp(v, "default") == 0 || strcmp(v, "none") == 0))
				f->credentials = strcmp(v, "default") == 0;
			else
				rc = section_error(host, n, err, errlen, "credentials must be default or none");
		} else if (strcmp(key, "timeout") == 0) {
			rc = section_duration(host, n, key, 100, 60000, "100ms to 60s", &f->timeout_ms, err, errlen);
		} else {
			rc = section_error(host, n, err, errlen, "unknown key \"%s\" (firestore takes project, database, "
			    "collection, endpoint, credentials, timeout)", key);
		}
		if (rc < 0)
			goto fail;
	}
	char why[700], what[700], fproject[128] = "";
	if (gcp_endpoint(f->endpoint, "FIRESTORE_EMULATOR_HOST", GOOGLE_URL, f->url, sizeof(f->url), &f->emulator,
	    why, sizeof(why)) < 0) {
		section_say(err, errlen, "firestore: %s", why);
		goto fail;
	}
	if (use_auth(f) && gcp_auth_probe(what, sizeof(what), fproject, sizeof(fproject), why, sizeof(why)) < 0) {
		section_say(err, errlen, "firestore: %s", why);
		goto fail;
	}
	if (f->project == NULL) {
		const char *p = getenv("GOOGLE_CLOUD_PROJECT");
		if (p == NULL || *p == '\0')
			p = getenv("GCLOUD_PROJECT");
		if ((p == NULL || *p == '\0') && fproject[0])
			p = fproject;
		if (p == NULL || *p == '\0') {
			section_say(err, errlen, "firestore needs project: (or GOOGLE_CLOUD_PROJECT, or a service account "
			    "key naming one)");
			goto fail;
		}
		if ((f->project = strdup(p)) == NULL)
			goto oom;
	}
	if (!id_ok(f->project, 6, 63, ".:")) {
		if (nodes[0] != NULL)
			section_error(host, nodes[0], err, errlen, "project must be a project id (6 to 30 lowercase "
			    "letters, digits and '-')");
		else
			section_say(err, errlen, "firestore: the project %.100s is not a project id", f->project);
		goto fail;
	}
	if (f->database == NULL && (f->database = strdup("(default)")) == NULL)
		goto oom;
	if (strcmp(f->database, "(default)") != 0 && !id_ok(f->database, 4, 63, "")) {
		section_error(host, nodes[1], err, errlen, "database must be (default) or 4 to 63 lowercase letters, "
		    "digits and '-'");
		goto fail;
	}
	if (f->collection == NULL && (f->collection = strdup("mcpd")) == NULL)
		goto oom;
	size_t cl = strlen(f->collection);
	if (cl == 0 || cl > 100 || strspn(f->collection, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
	    cl || (cl >= 4 && strncmp(f->collection, "__", 2) == 0)) {
		section_error(host, nodes[2], err, errlen, "collection must be 1 to 100 letters, digits, '-' and '_'");
		goto fail;
	}
	snprintf(f->root, sizeof(f->root), "projects/%s/databases/%s/documents", f->project, f->database);
	snprintf(f->base, sizeof(f->base), "%s/v1/%s", f->url, f->root);
	if (database_check(f, err, errlen) < 0)
		goto fail;
	return f;
oom:
	section_say(err, errlen, "out of memory");
fail:
	fs_free(f);
	return NULL;
}

static int
fs_attach(void *inst, char *err, size_t errlen)
{
	struct fs *f = inst;
	struct event_base *base = f->host->event_base();
	if ((f->client = gcp_client_new(base, f->host, use_auth(f), "firestore", err, errlen)) == NULL)
		return -1;
	f->probe = event_new(base, -1, EV_PERSIST, probe_cb, f);
	f->purge = evtimer_new(base, purge_cb, f);
	if (f->probe == NULL || f->purge == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(f->db_error, sizeof(f->db_error), "database %s not checked yet", f->database);
	struct timeval tv = { PROBE_MS / 1000, (PROBE_MS % 1000) * 1000 };
	event_add(f->probe, &tv);
	if (f->host->worker_id() == 1) {
		struct timeval pv = { FIRST_PURGE_MS / 1000, 0 };
		event_add(f->purge, &pv);
	}
	probe_cb(-1, 0, f);
	return 0;
}

static void
fs_detach(void *inst)
{
	struct fs *f = inst;
	struct event **evs[] = { &f->probe, &f->purge };
	for (size_t i = 0; i < 2; i++)
		if (*evs[i] != NULL) {
			event_free(*evs[i]);
			*evs[i] = NULL;
		}
	gcp_client_free(f->client);
	f->client = NULL;
	/* Calls in flight were dropped with the client: their operations go
	 * too, without callbacks (the worker is stopping). */
	f->closing = 1;
	while (f->ops != NULL)
		op_free((struct op *)f->ops);
	keyorder_clear();
	f->closing = 0;
	while (purge_list != NULL) {
		struct purge_one *p = purge_list;
		purge_list = p->next;
		free(p->name);
		free(p);
	}
}

static void
fs_destroy(void *inst)
{
	fs_free(inst);
}

static int
fs_status(void *inst, char *why, size_t len)
{
	struct fs *f = inst;
	if (f->client == NULL) {
		snprintf(why, len, "not attached");
		return -1;
	}
	if (gcp_client_status(f->client, why, len) < 0)
		return -1;
	if (!f->ready) {
		snprintf(why, len, "firestore: %s", f->db_error);
		return -1;
	}
	return 0;
}

static const struct mcpd_plugin descriptor = {
	.size = sizeof(struct mcpd_plugin),
	.abi_major = MCPD_PLUGIN_ABI_MAJOR,
	.abi_minor = MCPD_PLUGIN_ABI_MINOR,
	.kind = MCPD_PLUGIN_STORAGE,
	.name = "firestore",
	.version = "1.0.0",
	.create = fs_create,
	.attach = fs_attach,
	.detach = fs_detach,
	.destroy = fs_destroy,
	.ops = &storage_ops,
	.status = fs_status,
};

const struct mcpd_plugin *
mcpd_plugin_entry(void)
{
	return &descriptor;
}
