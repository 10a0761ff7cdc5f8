#include <check.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mcpd/plugin.h>

#include "../../daemon/core/plugin.h"
#include "../../daemon/core/storage_cache.h"
#include "suites.h"

/* daemon/core/storage_cache.c: the table keeps at most its entries, drops
 * the least recently used first, never answers past an entry's expiry;
 * the wrapper answers a delete only once its invalidation is published,
 * drops what others invalidate, and reads storage while the transport is
 * down. */

static int
has(struct scache *c, const char *key, uint64_t now)
{
	int st;
	const void *v;
	size_t len;
	return scache_get(c, key, now, &st, &v, &len);
}

START_TEST(scache_lru_and_expiry)
{
	struct scache *c = scache_new(3);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(scache_put(c, "a", MCPD_OK, "1", 1, 100), 0);
	ck_assert_int_eq(scache_put(c, "b", MCPD_OK, "22", 2, 100), 0);
	ck_assert_int_eq(scache_put(c, "c", MCPD_NOT_FOUND, NULL, 0, 100), 0);
	ck_assert(has(c, "a", 10));             /* a is now the most recent */
	ck_assert_int_eq(scache_put(c, "d", MCPD_OK, "4", 1, 100), 0);
	ck_assert_uint_eq(scache_size(c), 3);
	ck_assert(!has(c, "b", 10));            /* the least recently used went */
	ck_assert(has(c, "a", 10) && has(c, "c", 10) && has(c, "d", 10));
	int st;
	const void *v;
	size_t len;
	ck_assert(scache_get(c, "c", 10, &st, &v, &len));
	ck_assert_int_eq(st, MCPD_NOT_FOUND);
	ck_assert(scache_get(c, "a", 99, &st, &v, &len));
	ck_assert_int_eq(st, MCPD_OK);
	ck_assert_uint_eq(len, 1);
	ck_assert_mem_eq(v, "1", 2);            /* NUL-terminated too */
	ck_assert(!has(c, "a", 100));           /* expired: gone */
	ck_assert_uint_eq(scache_size(c), 2);
	/* Replaced, dropped, cleared. */
	ck_assert_int_eq(scache_put(c, "d", MCPD_OK, "44", 2, 200), 0);
	ck_assert(scache_get(c, "d", 150, &st, &v, &len));
	ck_assert_uint_eq(len, 2);
	ck_assert_uint_eq(scache_size(c), 2);
	scache_drop(c, "d");
	ck_assert(!has(c, "d", 10));
	ck_assert_int_eq(scache_put(c, "big", MCPD_OK, "x", SCACHE_MAX_VALUE + 1, 100), -1);
	scache_clear(c);
	ck_assert_uint_eq(scache_size(c), 0);
	ck_assert(!has(c, "c", 10));
	scache_free(c);
	ck_assert_ptr_null(scache_new(0));
}
END_TEST

START_TEST(scache_many_keys)
{
	/* Many more keys than entries (and than buckets): still bounded,
	 * and the newest are all there. */
	struct scache *c = scache_new(100);
	char k[32];
	for (int i = 0; i < 5000; i++) {
		snprintf(k, sizeof(k), "session:%d", i);
		ck_assert_int_eq(scache_put(c, k, MCPD_OK, k, strlen(k), 1000), 0);
		ck_assert_uint_le(scache_size(c), 100);
	}
	for (int i = 4900; i < 5000; i++) {
		snprintf(k, sizeof(k), "session:%d", i);
		ck_assert(has(c, k, 1));
	}
	snprintf(k, sizeof(k), "session:%d", 4899);
	ck_assert(!has(c, k, 1));
	scache_free(c);
}
END_TEST

START_TEST(scache_kept_keys)
{
	int neg = -1;
	ck_assert(storage_cache_key("session:abc", &neg) && neg == 1);
	ck_assert(storage_cache_key("oauth:at:00ff", &neg) && neg == 1);
	ck_assert(storage_cache_key("oauth:grant:g", &neg) && neg == 0);
	ck_assert(storage_cache_key("oauth:client:c", &neg) && neg == 0);
	ck_assert(!storage_cache_key("oauth:rt:x", NULL));
	ck_assert(!storage_cache_key("oauth:code:x", NULL));
	ck_assert(!storage_cache_key("events:abc", NULL));
	ck_assert(!storage_cache_key("answer:a:b", NULL));
}
END_TEST

/* ---- the wrapper, over a storage and a transport of this test ---- */

static char stored[64];                 /* the one value of key "session:s" */
static int present;
static int reads;
static struct {
	mcpd_done_cb *cb;
	void *arg;
	char msg[64];
	char channel[64];
} pub;                                  /* the publish waiting for its answer */
static mcpd_message_cb *sub_cb;
static mcpd_message_cb *ack_cb;         /* on mcpd:cache:NONCE */
static char ack_channel[64];
static int transport_up = 1;

static void
f_get(void *inst, const char *key, mcpd_value_cb *cb, void *arg)
{
	(void)inst;
	(void)key;
	reads++;
	if (present)
		cb(arg, MCPD_OK, stored, strlen(stored), NULL);
	else
		cb(arg, MCPD_NOT_FOUND, NULL, 0, NULL);
}

static void
f_set(void *inst, const char *key, const void *value, size_t len, uint64_t ttl, unsigned flags,
    mcpd_done_cb *cb, void *arg)
{
	(void)inst;
	(void)key;
	(void)ttl;
	(void)flags;
	snprintf(stored, sizeof(stored), "%.*s", (int)len, (const char *)value);
	present = 1;
	if (cb != NULL)
		cb(arg, MCPD_OK, NULL);
}

static void
f_del(void *inst, const char *key, mcpd_done_cb *cb, void *arg)
{
	(void)inst;
	(void)key;
	present = 0;
	if (cb != NULL)
		cb(arg, MCPD_OK, NULL);
}

static const struct mcpd_storage_ops fstore = {
	.size = sizeof(struct mcpd_storage_ops), .get = f_get, .set = f_set, .del = f_del,
};

static void *
f_subscribe(void *inst, const char *channel, mcpd_message_cb *cb, void *arg)
{
	(void)inst;
	(void)arg;
	if (strncmp(channel, "mcpd:cache:", 11) == 0) {
		snprintf(ack_channel, sizeof(ack_channel), "%s", channel);
		ack_cb = cb;
		return &ack_cb;
	}
	ck_assert_str_eq(channel, "mcpd:cache");
	sub_cb = cb;
	return &sub_cb;
}

static void
f_unsubscribe(void *inst, void *s)
{
	(void)inst;
	*(mcpd_message_cb **)s = NULL;
}

static void
f_publish(void *inst, const char *channel, const void *msg, size_t len,
    const struct mcpd_publish_opts *opts, mcpd_done_cb *cb, void *arg)
{
	(void)inst;
	(void)opts;
	snprintf(pub.msg, sizeof(pub.msg), "%.*s", (int)len, (const char *)msg);
	snprintf(pub.channel, sizeof(pub.channel), "%s", channel);
	pub.cb = cb;
	pub.arg = arg;
}

static const struct mcpd_transport_ops ftransport = {
	.size = sizeof(struct mcpd_transport_ops), .subscribe = f_subscribe,
	.unsubscribe = f_unsubscribe, .publish = f_publish,
};

static int
f_status(void *inst, char *why, size_t len)
{
	(void)inst;
	snprintf(why, len, "test");
	return transport_up ? 0 : -1;
}

static int got_status, got_n;
static char got_value[64];

static void
on_value(void *arg, int status, const void *value, size_t len, const char *err)
{
	(void)arg;
	(void)err;
	got_status = status;
	got_n++;
	snprintf(got_value, sizeof(got_value), "%.*s", (int)len, value ? (const char *)value : "");
}

static int deleted;

static void
on_done(void *arg, int status, const char *err)
{
	(void)arg;
	(void)err;
	ck_assert_int_eq(status, MCPD_OK);
	deleted++;
}

/* A get through b, answered once the loop has turned. */
static void
read_key(struct backends *b, struct event_base *base, const char *key)
{
	int before = got_n;
	b->storage->get(b->storage_inst, key, on_value, NULL);
	for (int i = 0; i < 10 && got_n == before; i++)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_int_eq(got_n, before + 1);
}

START_TEST(scache_wrapper)
{
	struct event_base *base = event_base_new();
	struct backends b = { &fstore, NULL, &ftransport, NULL };
	struct storage_cache_conf conf = { 10, 60000 };
	ck_assert_int_eq(storage_cache_backends(&b, base, &conf, f_status), 0);
	ck_assert_ptr_nonnull(sub_cb);
	/* The probe that tells whether our messages come back; this
	 * transport does not bring them back (until later). */
	char probe[64];
	snprintf(probe, sizeof(probe), "%s", pub.msg);
	ck_assert(probe[0] == '\n' && strlen(probe) > 3 && strcmp(probe + strlen(probe) - 2, "-0") == 0);
	/* Acknowledgements for this worker's writes come on its channel. */
	ck_assert_ptr_nonnull(ack_cb);
	ck_assert(strncmp(ack_channel + 11, probe + 1, strlen(ack_channel + 11)) == 0);
	snprintf(stored, sizeof(stored), "v1");
	present = 1;
	reads = 0;

	read_key(&b, base, "session:s");
	read_key(&b, base, "session:s");
	ck_assert_int_eq(reads, 1);             /* the second from the cache */
	ck_assert_str_eq(got_value, "v1");
	snprintf(stored, sizeof(stored), "v2"); /* behind the cache's back */
	read_key(&b, base, "session:s");
	ck_assert_str_eq(got_value, "v1");
	read_key(&b, base, "events:s");         /* not a kept key: always read */
	read_key(&b, base, "events:s");
	ck_assert_int_eq(reads, 3);

	/* Another worker invalidates it: read again. */
	sub_cb(NULL, "mcpd:cache", "session:s", 9);
	read_key(&b, base, "session:s");
	ck_assert_str_eq(got_value, "v2");
	ck_assert_int_eq(reads, 4);

	/* A delete is answered once its invalidation is published. */
	deleted = 0;
	b.storage->del(b.storage_inst, "session:s", on_done, NULL);
	ck_assert_int_eq(deleted, 0);
	ck_assert(strncmp(pub.msg, "session:s\n", 10) == 0);
	ck_assert_ptr_nonnull(pub.cb);
	pub.cb(pub.arg, MCPD_OK, NULL);
	ck_assert_int_eq(deleted, 1);
	read_key(&b, base, "session:s");
	ck_assert_int_eq(got_status, MCPD_NOT_FOUND);
	read_key(&b, base, "session:s");        /* the absence is kept too */
	ck_assert_int_eq(reads, 5);

	/* A write is invalidated the same way. */
	b.storage->set(b.storage_inst, "session:s", "v3", 2, 0, 0, on_done, NULL);
	ck_assert_int_eq(deleted, 1);
	pub.cb(pub.arg, MCPD_OK, NULL);
	ck_assert_int_eq(deleted, 2);
	read_key(&b, base, "session:s");
	ck_assert_str_eq(got_value, "v3");

	/* An invalidation that arrives while a hit waits for its turn:
	 * storage is read instead. */
	snprintf(stored, sizeof(stored), "v4");
	int r0 = reads, before = got_n;
	b.storage->get(b.storage_inst, "session:s", on_value, NULL);
	sub_cb(NULL, "mcpd:cache", "session:s", 9);
	for (int i = 0; i < 10 && got_n == before; i++)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_str_eq(got_value, "v4");
	ck_assert_int_eq(reads, r0 + 1);

	/* Transport down: every read goes to storage. */
	transport_up = 0;
	snprintf(stored, sizeof(stored), "v5");
	read_key(&b, base, "session:s");
	read_key(&b, base, "session:s");
	ck_assert_str_eq(got_value, "v5");
	ck_assert_int_eq(reads, r0 + 3);
	transport_up = 1;
	read_key(&b, base, "session:s");        /* back: not at once */
	ck_assert_int_eq(reads, r0 + 4);

	/* A publish that fails: the caller still hears storage's answer. */
	b.storage->del(b.storage_inst, "session:s", on_done, NULL);
	pub.cb(pub.arg, MCPD_ERROR, "down");
	ck_assert_int_eq(deleted, 3);
	/* While the transport is down a delete does not wait for it. */
	transport_up = 0;
	pub.cb = NULL;
	b.storage->del(b.storage_inst, "session:s", on_done, NULL);
	ck_assert_int_eq(deleted, 4);
	ck_assert_ptr_null(pub.cb);             /* published without waiting */
	transport_up = 1;

	struct storage_cache_stats st;
	storage_cache_stats(&st);
	ck_assert_uint_ge(st.hits, 3);
	ck_assert_uint_ge(st.bypassed, 2);
	ck_assert_uint_eq(st.invalidations, 2);
	/* The transport brings our messages back: a delete answers once its
	 * own invalidation has come back, not when the publish is accepted. */
	sub_cb(NULL, "mcpd:cache", probe, strlen(probe));
	b.storage->del(b.storage_inst, "session:s", on_done, NULL);
	pub.cb(pub.arg, MCPD_OK, NULL);
	ck_assert_int_eq(deleted, 4);
	char echo[64];
	snprintf(echo, sizeof(echo), "%s", pub.msg);
	sub_cb(NULL, "mcpd:cache", "session:x\nother-1", 17);     /* another's */
	ck_assert_int_eq(deleted, 4);
	sub_cb(NULL, "mcpd:cache", echo, strlen(echo));
	ck_assert_int_eq(deleted, 5);
	/* One that never comes back: answered after a second, and the
	 * worker reads through. */
	b.storage->del(b.storage_inst, "session:s", on_done, NULL);
	pub.cb(pub.arg, MCPD_OK, NULL);
	ck_assert_int_eq(deleted, 5);
	for (int i = 0; i < 50 && deleted == 5; i++)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_int_eq(deleted, 6);
	/* Since then writes answer on acceptance, echoes or not. */
	sub_cb(NULL, "mcpd:cache", probe, strlen(probe));
	b.storage->del(b.storage_inst, "session:s", on_done, NULL);
	pub.cb(pub.arg, MCPD_OK, NULL);
	ck_assert_int_eq(deleted, 7);
	/* Another worker, heard of by its probe (acknowledged on its own
	 * channel, so that it learns of us): a delete answers once it has
	 * acknowledged the delete's invalidation, not before. */
	sub_cb(NULL, "mcpd:cache", "\npeer-0", 7);
	ck_assert_str_eq(pub.channel, "mcpd:cache:peer");
	ck_assert(strcmp(pub.msg + strlen(pub.msg) - 2, " 0") == 0);
	b.storage->del(b.storage_inst, "session:s", on_done, NULL);
	ck_assert_str_eq(pub.channel, "mcpd:cache");
	pub.cb(pub.arg, MCPD_OK, NULL);
	ck_assert_int_eq(deleted, 7);
	unsigned long long seq = strtoull(strrchr(pub.msg, '-') + 1, NULL, 10);
	char ack[64];
	snprintf(ack, sizeof(ack), "peer %llu", seq - 1);       /* an older one */
	ack_cb(NULL, ack_channel, ack, strlen(ack));
	ck_assert_int_eq(deleted, 7);
	snprintf(ack, sizeof(ack), "peer %llu", seq);
	ack_cb(NULL, ack_channel, ack, strlen(ack));
	ck_assert_int_eq(deleted, 8);
	/* One that does not acknowledge within a second is answered then,
	 * and that worker is not waited for any more. */
	b.storage->del(b.storage_inst, "session:s", on_done, NULL);
	pub.cb(pub.arg, MCPD_OK, NULL);
	ck_assert_int_eq(deleted, 8);
	for (int i = 0; i < 50 && deleted == 8; i++)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_int_eq(deleted, 9);
	b.storage->del(b.storage_inst, "session:s", on_done, NULL);
	pub.cb(pub.arg, MCPD_OK, NULL);
	ck_assert_int_eq(deleted, 10);
	/* A write whose publish the plugin dropped (it detached): freed
	 * with the cache. */
	b.storage->del(b.storage_inst, "session:s", on_done, NULL);
	ck_assert_int_eq(deleted, 10);
	storage_cache_forget(&b);
	ck_assert_ptr_eq(b.storage, &fstore);
	event_base_free(base);
}
END_TEST

Suite *
storage_cache_suite(void)
{
	Suite *s = suite_create("storage_cache");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, scache_lru_and_expiry);
	tcase_add_test(tc, scache_many_keys);
	tcase_add_test(tc, scache_kept_keys);
	tcase_add_test(tc, scache_wrapper);
	suite_add_tcase(s, tc);
	return s;
}
