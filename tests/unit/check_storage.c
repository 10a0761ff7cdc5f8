/* One suite for every storage plugin: each backend must pass the same
 * checks. The plugins are the built .so files, loaded as mcpd loads them.
 * redis joins when MCPD_TEST_REDIS_URL names a server, and postgres when
 * MCPD_TEST_POSTGRES_URL names one (the integration tests test_redis.py
 * and test_postgres.py start one and run this suite against it), dynamodb,
 * cosmos and firestore likewise with MCPD_TEST_DYNAMODB_ENDPOINT,
 * MCPD_TEST_COSMOS_ENDPOINT and MCPD_TEST_FIRESTORE_ENDPOINT (moto's, the
 * Cosmos DB and Firestore emulators'); their
 * callbacks come from the event loop, so every call waits for its own. */
#include <check.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "conftree.h"
#include "host.h"
#include "plugin.h"
#include "suites.h"

static const char *BACKENDS[8] = { "memory", "lmdb" };
static int nbackends = 2;

static struct event_base *base;

static const struct mcpd_storage_ops *ops;
static void *inst;
static const struct mcpd_plugin *desc;
static struct arena *arena;
static char dir[256];
static int dir_pid;                     /* whose directory open_backend opens (0: this process's) */
static const char *redis_extra = "";   /* more of the redis section */

/* What the last callback reported. */
static struct {
	int called, status;
	int64_t value;
	char data[4096];
	size_t len;
	char members[16][64];
	size_t nmembers;
	uint64_t seqs[64];
	char entries[64][64];
	size_t lens[64];
	size_t nentries;
	char err[512];
} got;

static void
reset(void)
{
	memset(&got, 0, sizeof(got));
}

static void
done_cb(void *arg, int status, const char *err)
{
	(void)arg;
	snprintf(got.err, sizeof(got.err), "%s", err ? err : "");
	got.called++;
	got.status = status;
}

static void
value_cb(void *arg, int status, const void *value, size_t len, const char *err)
{
	(void)arg;
	(void)err;
	got.called++;
	got.status = status;
	got.len = len < sizeof(got.data) ? len : sizeof(got.data);
	if (value != NULL)
		memcpy(got.data, value, got.len);
}

static void
int_cb(void *arg, int status, int64_t value, const char *err)
{
	(void)arg;
	snprintf(got.err, sizeof(got.err), "%s", err ? err : "");
	got.called++;
	got.status = status;
	got.value = value;
}

static void
members_cb(void *arg, int status, const char *const *m, size_t n, const char *err)
{
	(void)arg;
	(void)err;
	got.called++;
	got.status = status;
	got.nmembers = n;
	for (size_t i = 0; i < n && i < 16; i++)
		snprintf(got.members[i], sizeof(got.members[i]), "%s", m[i]);
}

static void
entries_cb(void *arg, int status, const struct mcpd_log_entry *e, size_t n, const char *err)
{
	(void)arg;
	(void)err;
	got.called++;
	got.status = status;
	got.nentries = n;
	for (size_t i = 0; i < n && i < 64; i++) {
		got.seqs[i] = e[i].seq;
		got.lens[i] = e[i].len;
		snprintf(got.entries[i], sizeof(got.entries[i]), "%.*s", (int)e[i].len, (const char *)e[i].data);
	}
}

/* Runs the loop until the call's callback came (at once for the
 * synchronous backends). */
static void
await_cb(int before)
{
	for (int spins = 0; got.called == before && spins < 5000; spins++)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_msg(got.called > before, "the callback never came");
}

#define CALL(expr) do { int before_ = got.called; (expr); await_cb(before_); } while (0)

static int
has_member(const char *m)
{
	for (size_t i = 0; i < got.nmembers; i++)
		if (strcmp(got.members[i], m) == 0)
			return 1;
	return 0;
}

/*
 * Short-lived data: long enough that the calls made before it lapses finish
 * within it on a loaded machine against a network backend (50 ms was not,
 * with moto under make check), short enough to keep the suite quick.
 */
#define SHORT_TTL	400
#define LAPSE_MS	600

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void
open_backend(int i)
{
	char exe[1024], path[1200], err[512], yaml[600];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	ck_assert_int_gt(n, 0);
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	snprintf(path, sizeof(path), "%s/plugins/%s.so", exe, BACKENDS[i]);
	struct loaded_plugin *lp = plugin_load(path, MCPD_PLUGIN_STORAGE, err, sizeof(err));
	ck_assert_msg(lp != NULL, "%s", err);
	desc = lp->desc;
	ops = desc->ops;
	snprintf(dir, sizeof(dir), "/tmp/mcpd-storage-test-%d-%d", dir_pid ? dir_pid : (int)getpid(), i);
	if (strcmp(BACKENDS[i], "lmdb") == 0)
		snprintf(yaml, sizeof(yaml), "plugin: lmdb\npath: %s\n", dir);
	else if (strcmp(BACKENDS[i], "redis") == 0)
		/* Keys of this run only, so that runs can share a server. */
		snprintf(yaml, sizeof(yaml), "plugin: redis\nurl: \"%s\"\nkey_prefix: \"t%d:\"\n%s",
		    getenv("MCPD_TEST_REDIS_URL"), (int)getpid(), redis_extra);
	else if (strcmp(BACKENDS[i], "postgres") == 0)
		/* Tables of this run only, likewise. */
		snprintf(yaml, sizeof(yaml), "plugin: postgres\nurl: \"%s\"\ntable_prefix: t%d_\n",
		    getenv("MCPD_TEST_POSTGRES_URL"), (int)getpid());
	else if (strcmp(BACKENDS[i], "dynamodb") == 0)
		/* A table of this run only; credentials and region from the
		 * environment (test_dynamodb.py sets them for its moto). */
		snprintf(yaml, sizeof(yaml), "plugin: dynamodb\ntable: t%d\nendpoint: \"%s\"\ncreate_table: true\n",
		    (int)getpid(), getenv("MCPD_TEST_DYNAMODB_ENDPOINT"));
	else if (strcmp(BACKENDS[i], "cosmos") == 0)
		/* A container of this run only; the key and the emulator's CA
		 * from the environment (test_cosmos.py sets them). */
		snprintf(yaml, sizeof(yaml), "plugin: cosmos\nendpoint: \"%s\"\ndatabase: mcpd\ncontainer: t%d\n"
		    "key_file: \"%s\"\nca_file: \"%s\"\ncreate_container: true\n", getenv("MCPD_TEST_COSMOS_ENDPOINT"),
		    (int)getpid(), getenv("MCPD_TEST_COSMOS_KEY_FILE"), getenv("MCPD_TEST_COSMOS_CA_FILE"));
	else if (strcmp(BACKENDS[i], "firestore") == 0)
		/* A collection of this run only, on the emulator. */
		snprintf(yaml, sizeof(yaml), "plugin: firestore\nproject: test-project\ncollection: t%d\n"
		    "endpoint: \"%s\"\n", (int)getpid(), getenv("MCPD_TEST_FIRESTORE_ENDPOINT"));
	else
		snprintf(yaml, sizeof(yaml), "plugin: %s\n", BACKENDS[i]);
	if (base == NULL)
		base = event_base_new();
	host_set_worker(base, 1);
	arena = arena_new(4096);
	struct cnode *section = conftree_load_string(arena, "t.yaml", yaml, strlen(yaml), err, sizeof(err));
	ck_assert_msg(section != NULL, "%s", err);
	inst = desc->create(host_table(), (const struct mcpd_config *)section, err, sizeof(err));
	ck_assert_msg(inst != NULL, "%s: %s", BACKENDS[i], err);
	if (desc->attach != NULL)
		ck_assert_msg(desc->attach(inst, err, sizeof(err)) == 0, "%s", err);
	/* A networked backend connects in the background: wait until ready. */
	for (int spins = 0; desc->status != NULL && spins < 500; spins++) {
		char why[256];
		if (desc->status(inst, why, sizeof(why)) == 0)
			break;
		struct timeval tv = { 0, 10000 };
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	reset();
}

static void
close_backend(void)
{
	if (desc->detach != NULL)
		desc->detach(inst);
	desc->destroy(inst);
	arena_free(arena);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

START_TEST(kv_roundtrip)
{
	open_backend(_i);
	const char bin[] = { 'a', 0, 'b', (char)0xff };
	CALL(ops->set(inst, "k1", bin, sizeof(bin), 0, 0, done_cb, NULL));
	ck_assert_int_eq(got.called, 1);
	ck_assert_int_eq(got.status, MCPD_OK);
	reset();
	CALL(ops->get(inst, "k1", value_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	ck_assert_uint_eq(got.len, sizeof(bin));
	ck_assert(memcmp(got.data, bin, sizeof(bin)) == 0);
	reset();
	CALL(ops->get(inst, "nope", value_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_NOT_FOUND);
	reset();
	CALL(ops->exists(inst, "k1", done_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	reset();
	CALL(ops->del(inst, "k1", done_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	reset();
	CALL(ops->exists(inst, "k1", done_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_NOT_FOUND);
	reset();
	CALL(ops->del(inst, "k1", done_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_NOT_FOUND);
	close_backend();
}
END_TEST

START_TEST(kv_conditions)
{
	open_backend(_i);
	CALL(ops->set(inst, "c", "x", 1, 0, MCPD_SET_IF_PRESENT, done_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_CONFLICT);
	reset();
	CALL(ops->set(inst, "c", "x", 1, 0, MCPD_SET_IF_ABSENT, done_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	reset();
	CALL(ops->set(inst, "c", "y", 1, 0, MCPD_SET_IF_ABSENT, done_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_CONFLICT);
	reset();
	CALL(ops->set(inst, "c", "z", 1, 0, MCPD_SET_IF_PRESENT, done_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	reset();
	CALL(ops->get(inst, "c", value_cb, NULL));
	ck_assert_int_eq(got.data[0], 'z');
	close_backend();
}
END_TEST

START_TEST(kv_ttl)
{
	open_backend(_i);
	CALL(ops->set(inst, "t", "v", 1, SHORT_TTL, 0, done_cb, NULL));
	CALL(ops->set(inst, "forever", "v", 1, 0, 0, done_cb, NULL));
	reset();
	CALL(ops->get(inst, "t", value_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	sleep_ms(LAPSE_MS);
	reset();
	CALL(ops->get(inst, "t", value_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_NOT_FOUND);
	reset();
	/* An expired key counts as absent for conditional sets. */
	CALL(ops->set(inst, "t", "w", 1, 0, MCPD_SET_IF_ABSENT, done_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	reset();
	CALL(ops->get(inst, "forever", value_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	close_backend();
}
END_TEST

START_TEST(counters)
{
	open_backend(_i);
	CALL(ops->incr(inst, "n", 5, 0, int_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	ck_assert_int_eq(got.value, 5);
	CALL(ops->incr(inst, "n", -7, 0, int_cb, NULL));
	ck_assert_int_eq(got.value, -2);
	CALL(ops->incr(inst, "n", 1000000000000LL, 0, int_cb, NULL));
	ck_assert_int_eq(got.value, 999999999998LL);
	close_backend();
}
END_TEST

START_TEST(indexes)
{
	open_backend(_i);
	CALL(ops->index_add(inst, "user:a:sessions", "s1", 0, done_cb, NULL));
	CALL(ops->index_add(inst, "user:a:sessions", "s2", 0, done_cb, NULL));
	CALL(ops->index_add(inst, "user:a:sessions", "s2", 0, done_cb, NULL));   /* once only */
	CALL(ops->index_add(inst, "user:a:sessions", "short", SHORT_TTL, done_cb, NULL));
	CALL(ops->index_add(inst, "user:ab:sessions", "other", 0, done_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	reset();
	CALL(ops->index_members(inst, "user:a:sessions", members_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	ck_assert_uint_eq(got.nmembers, 3);
	ck_assert(has_member("s1") && has_member("s2") && has_member("short"));
	sleep_ms(LAPSE_MS);
	reset();
	CALL(ops->index_members(inst, "user:a:sessions", members_cb, NULL));
	ck_assert_uint_eq(got.nmembers, 2);
	ck_assert(!has_member("short") && !has_member("other"));
	reset();
	CALL(ops->index_remove(inst, "user:a:sessions", "s1", done_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	reset();
	CALL(ops->index_members(inst, "user:a:sessions", members_cb, NULL));
	ck_assert_uint_eq(got.nmembers, 1);
	ck_assert(has_member("s2"));
	reset();
	CALL(ops->index_members(inst, "user:none:sessions", members_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	ck_assert_uint_eq(got.nmembers, 0);
	close_backend();
}
END_TEST

START_TEST(logs)
{
	open_backend(_i);
	char entry[32];
	int64_t last = 0;
	for (int k = 1; k <= 12; k++) {
		int n = snprintf(entry, sizeof(entry), "event %d", k);
		reset();
		CALL(ops->log_append(inst, "events:x", entry, (size_t)n, 10, 0, int_cb, NULL));
		ck_assert_int_eq(got.status, MCPD_OK);
		ck_assert_int_gt(got.value, last);     /* increasing */
		last = got.value;
	}
	CALL(ops->log_append(inst, "events:y", "other log", 9, 10, 0, int_cb, NULL));
	ck_assert_int_eq(got.value, 1);
	reset();
	/* Only the newest 10 are kept. */
	CALL(ops->log_range(inst, "events:x", 0, 100, entries_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	ck_assert_uint_eq(got.nentries, 10);
	ck_assert_str_eq(got.entries[0], "event 3");
	ck_assert_str_eq(got.entries[9], "event 12");
	uint64_t seq5 = got.seqs[2];
	reset();
	CALL(ops->log_range(inst, "events:x", seq5, 3, entries_cb, NULL));
	ck_assert_uint_eq(got.nentries, 3);
	ck_assert_str_eq(got.entries[0], "event 6");
	ck_assert_uint_gt(got.seqs[0], seq5);
	reset();
	CALL(ops->log_range(inst, "events:none", 0, 10, entries_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	ck_assert_uint_eq(got.nentries, 0);
	/* A log's ttl is renewed by each append; then it lapses whole. */
	CALL(ops->log_append(inst, "events:t", "a", 1, 10, SHORT_TTL, int_cb, NULL));
	sleep_ms(LAPSE_MS);
	reset();
	CALL(ops->log_range(inst, "events:t", 0, 10, entries_cb, NULL));
	ck_assert_uint_eq(got.nentries, 0);
	close_backend();
}
END_TEST

/* Expired data counts as absent everywhere, and what lapsed starts anew. */
START_TEST(expiry)
{
	open_backend(_i);
	CALL(ops->set(inst, "e", "v", 1, SHORT_TTL, 0, done_cb, NULL));
	CALL(ops->incr(inst, "cnt", 3, SHORT_TTL, int_cb, NULL));
	CALL(ops->incr(inst, "cnt", 1, 0, int_cb, NULL));      /* ttl 0 keeps the expiry */
	ck_assert_int_eq(got.value, 4);
	CALL(ops->log_append(inst, "events:e", "old", 3, 10, SHORT_TTL, int_cb, NULL));
	CALL(ops->log_append(inst, "events:e", "old", 3, 10, SHORT_TTL, int_cb, NULL));
	sleep_ms(LAPSE_MS);
	reset();
	CALL(ops->exists(inst, "e", done_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_NOT_FOUND);
	reset();
	CALL(ops->set(inst, "e", "w", 1, 0, MCPD_SET_IF_PRESENT, done_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_CONFLICT);
	reset();
	CALL(ops->get(inst, "e", value_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_NOT_FOUND);
	reset();
	CALL(ops->incr(inst, "cnt", 2, 0, int_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	ck_assert_int_eq(got.value, 2);
	reset();
	CALL(ops->log_append(inst, "events:e", "new", 3, 10, 0, int_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	reset();
	CALL(ops->log_range(inst, "events:e", 0, 10, entries_cb, NULL));
	ck_assert_uint_eq(got.nentries, 1);
	ck_assert_str_eq(got.entries[0], "new");
	close_backend();
}
END_TEST

static int burst_bad;

static void
burst_cb(void *arg, int status, const void *value, size_t len, const char *err)
{
	char want[16];
	int n = snprintf(want, sizeof(want), "v%d", (int)(intptr_t)arg);
	got.called++;
	if (status != MCPD_OK || len != (size_t)n || memcmp(value, want, len) != 0) {
		if (burst_bad++ == 0)
			fprintf(stderr, "burst %d: status %d: %s\n", (int)(intptr_t)arg, status, err ? err : "");
	}
}

/* Keys longer than a backend keeps are refused, never cut: two long keys
 * that differ only at the end must not meet. */
START_TEST(long_keys)
{
	open_backend(_i);
	static char a[2101], b[2101];
	memset(a, 'k', 2100);
	memcpy(b, a, 2100);
	a[2099] = 'a';
	b[2099] = 'b';
	CALL(ops->set(inst, a, "A", 1, 0, 0, done_cb, NULL));
	int stored = got.status == MCPD_OK;
	ck_assert_msg(stored || got.status == MCPD_ERROR, "set: status %d", got.status);
	reset();
	CALL(ops->get(inst, b, value_cb, NULL));
	ck_assert_msg(got.status == MCPD_NOT_FOUND || got.status == MCPD_ERROR,
	    "another long key read %.*s", (int)got.len, got.data);
	reset();
	CALL(ops->set(inst, b, "B", 1, 0, MCPD_SET_IF_ABSENT, done_cb, NULL));
	ck_assert_msg(got.status == (stored ? MCPD_OK : MCPD_ERROR), "set if absent: %d", got.status);
	reset();
	if (stored) {
		CALL(ops->get(inst, a, value_cb, NULL));
		ck_assert_int_eq(got.status, MCPD_OK);
		ck_assert(got.len == 1 && got.data[0] == 'A');
		reset();
	}
	CALL(ops->index_add(inst, a, "m1", 0, done_cb, NULL));
	reset();
	CALL(ops->index_members(inst, b, members_cb, NULL));
	ck_assert_msg(got.status == MCPD_ERROR || got.nmembers == 0, "another long index has %zu members", got.nmembers);
	close_backend();
}
END_TEST

/* Many calls before any answer (a network backend queues or pipelines
 * them), a failing one among them: each gets its own answer. */
START_TEST(bursts)
{
	open_backend(_i);
	char key[32], val[16];
	CALL(ops->set(inst, "notanumber", "abc", 3, 0, 0, done_cb, NULL));
	reset();
	burst_bad = 0;
	for (int k = 0; k < 300; k++) {
		snprintf(key, sizeof(key), "burst:%d", k);
		int n = snprintf(val, sizeof(val), "v%d", k);
		ops->set(inst, key, val, (size_t)n, 0, 0, done_cb, NULL);
		if (k == 150)       /* an error for redis, postgres, dynamodb and cosmos, 1 for the others */
			ops->incr(inst, "notanumber", 1, 0, int_cb, NULL);
	}
	for (int k = 0; k < 300; k++) {
		snprintf(key, sizeof(key), "burst:%d", k);
		ops->get(inst, key, burst_cb, (void *)(intptr_t)k);
	}
	for (int spins = 0; got.called < 601 && spins < 20000; spins++)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_int_eq(got.called, 601);
	ck_assert_int_eq(burst_bad, 0);
	close_backend();
}
END_TEST

/* A value or an entry larger than a backend keeps (DynamoDB: 400 KB an
 * item, Cosmos DB: 2 MB, Firestore: 1 MiB a document) is an error the
 * caller sees; the log goes on working. */
START_TEST(big_items)
{
	open_backend(_i);
	int cosmos = strcmp(BACKENDS[_i], "cosmos") == 0;
	int firestore = strcmp(BACKENDS[_i], "firestore") == 0;
	size_t big = cosmos ? 2200 * 1024 : firestore ? 1100 * 1024 : 500 * 1024;
	char *v = malloc(big);
	ck_assert_ptr_nonnull(v);
	memset(v, 'x', big);
	int strict = strcmp(BACKENDS[_i], "dynamodb") == 0 || cosmos || firestore;
	CALL(ops->set(inst, "big", v, big, 0, 0, done_cb, NULL));
	ck_assert_msg(got.status == (strict ? MCPD_ERROR : MCPD_OK), "set: %d %s", got.status, got.err);
	if (strict)
		ck_assert_msg(strstr(got.err, cosmos ? "2 MB" : firestore ? "1 MiB" : "400 KB") != NULL, "%s", got.err);
	reset();
	CALL(ops->log_append(inst, "events:big", "small 1", 7, 10, 0, int_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	reset();
	CALL(ops->log_append(inst, "events:big", v, big, 10, 0, int_cb, NULL));
	ck_assert_msg(got.status == (strict ? MCPD_ERROR : MCPD_OK), "append: %d %s", got.status, got.err);
	int stored = got.status == MCPD_OK;
	reset();
	CALL(ops->log_append(inst, "events:big", "small 2", 7, 10, 0, int_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	reset();
	CALL(ops->log_range(inst, "events:big", 0, 10, entries_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	ck_assert_uint_eq(got.nentries, stored ? 3 : 2);
	ck_assert_str_eq(got.entries[0], "small 1");
	ck_assert_str_eq(got.entries[got.nentries - 1], "small 2");
	if (stored)
		ck_assert_uint_eq(got.lens[1], big);
	ck_assert_uint_gt(got.seqs[got.nentries - 1], got.seqs[0]);
	free(v);
	close_backend();
}
END_TEST

/* A read after a write sees it, also when an earlier read came first
 * (lmdb keeps its read transaction between reads: it must take the newest
 * data each time), and a read made from within a read's callback gets its
 * own answer without spoiling the outer one's. */
static struct {
	int outer_status, inner_status;
	char outer[64], inner[64];
} nest;

static void
inner_cb(void *arg, int status, const void *value, size_t len, const char *err)
{
	(void)arg;
	(void)err;
	nest.inner_status = status;
	snprintf(nest.inner, sizeof(nest.inner), "%.*s", value ? (int)len : 0, value ? (const char *)value : "");
}

static void
outer_cb(void *arg, int status, const void *value, size_t len, const char *err)
{
	(void)err;
	char copy[64];
	snprintf(copy, sizeof(copy), "%.*s", value ? (int)len : 0, value ? (const char *)value : "");
	/* Within this callback: another read, and (lmdb, whose value stays
	 * valid until the callback returns) a write. */
	ops->get(inst, "rw2", inner_cb, NULL);
	if (*(const int *)arg)
		ops->set(inst, "rw1", "changed", 7, 0, 0, NULL, NULL);
	nest.outer_status = status;
	snprintf(nest.outer, sizeof(nest.outer), "%.*s", value ? (int)len : 0, value ? (const char *)value : "");
	ck_assert_str_eq(nest.outer, copy);
	got.called++;
}

START_TEST(reads_see_writes)
{
	open_backend(_i);
	for (int round = 0; round < 3; round++) {
		char v[16];
		snprintf(v, sizeof(v), "v%d", round);
		reset();
		CALL(ops->set(inst, "rw1", v, strlen(v), 0, 0, done_cb, NULL));
		ck_assert_int_eq(got.status, MCPD_OK);
		reset();
		CALL(ops->get(inst, "rw1", value_cb, NULL));
		ck_assert_int_eq(got.status, MCPD_OK);
		ck_assert_uint_eq(got.len, strlen(v));
		ck_assert(memcmp(got.data, v, got.len) == 0);
	}
	reset();
	CALL(ops->del(inst, "rw1", done_cb, NULL));
	reset();
	CALL(ops->get(inst, "rw1", value_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_NOT_FOUND);
	/* Indexes and logs read after a read. */
	reset();
	CALL(ops->index_add(inst, "rwi", "m1", 0, done_cb, NULL));
	reset();
	CALL(ops->index_members(inst, "rwi", members_cb, NULL));
	ck_assert_uint_eq(got.nmembers, 1);
	reset();
	CALL(ops->index_add(inst, "rwi", "m2", 0, done_cb, NULL));
	reset();
	CALL(ops->index_members(inst, "rwi", members_cb, NULL));
	ck_assert_uint_eq(got.nmembers, 2);
	reset();
	CALL(ops->log_append(inst, "rwl", "e1", 2, 10, 0, int_cb, NULL));
	reset();
	CALL(ops->log_range(inst, "rwl", 0, 10, entries_cb, NULL));
	ck_assert_uint_eq(got.nentries, 1);
	reset();
	CALL(ops->log_append(inst, "rwl", "e2", 2, 10, 0, int_cb, NULL));
	reset();
	CALL(ops->log_range(inst, "rwl", 0, 10, entries_cb, NULL));
	ck_assert_uint_eq(got.nentries, 2);
	/* Nested reads (synchronous backends only: the others call back
	 * from the loop, never within a call). */
	if (strcmp(BACKENDS[_i], "memory") == 0 || strcmp(BACKENDS[_i], "lmdb") == 0) {
		reset();
		CALL(ops->set(inst, "rw1", "outer", 5, 0, 0, done_cb, NULL));
		reset();
		CALL(ops->set(inst, "rw2", "inner", 5, 0, 0, done_cb, NULL));
		reset();
		memset(&nest, 0, sizeof(nest));
		int write_within = strcmp(BACKENDS[_i], "lmdb") == 0;
		CALL(ops->get(inst, "rw1", outer_cb, &write_within));
		ck_assert_int_eq(nest.outer_status, MCPD_OK);
		ck_assert_str_eq(nest.outer, "outer");
		ck_assert_int_eq(nest.inner_status, MCPD_OK);
		ck_assert_str_eq(nest.inner, "inner");
		for (int round = 0; round < 2; round++) {
			reset();
			CALL(ops->get(inst, "rw1", value_cb, NULL));
			ck_assert_int_eq(got.status, MCPD_OK);
			if (write_within)
				ck_assert(got.len == 7 && memcmp(got.data, "changed", 7) == 0);
			else
				ck_assert(got.len == 5 && memcmp(got.data, "outer", 5) == 0);
			reset();
			CALL(ops->get(inst, "rw2", value_cb, NULL));
			ck_assert_int_eq(got.status, MCPD_OK);
			ck_assert(memcmp(got.data, "inner", 5) == 0);
		}
	}
	close_backend();
}
END_TEST

/* lmdb: a write by another process (another worker) is seen by the next
 * read here, though this process read the key before and keeps its read
 * transaction between reads. */
START_TEST(lmdb_other_writer)
{
	int i = 0;
	while (i < nbackends && strcmp(BACKENDS[i], "lmdb") != 0)
		i++;
	ck_assert_int_lt(i, nbackends);
	int go[2];
	ck_assert_int_eq(pipe(go), 0);
	int parent = (int)getpid();
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		/* Opens the environment only once told: never one inherited. */
		char c;
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		dir_pid = parent;
		open_backend(i);
		int status = -1;
		for (int round = 0; round < 2; round++) {
			reset();
			ops->set(inst, "ow", "from-child", 10, 0, 0, done_cb, NULL);
			status = got.status;
			reset();
			ops->get(inst, "ow", value_cb, NULL);   /* its own kept read too */
		}
		desc->detach(inst);
		desc->destroy(inst);
		_exit(status == MCPD_OK && got.status == MCPD_OK ? 0 : 1);
	}
	close(go[0]);
	open_backend(i);
	CALL(ops->set(inst, "ow", "from-parent", 11, 0, 0, done_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	reset();
	CALL(ops->get(inst, "ow", value_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	ck_assert_uint_eq(got.len, 11);
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	close(go[1]);
	int ws = 0;
	ck_assert_int_eq(waitpid(child, &ws, 0), child);
	ck_assert_msg(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "the writer failed: %d", ws);
	reset();
	CALL(ops->get(inst, "ow", value_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	ck_assert_uint_eq(got.len, 10);
	ck_assert(memcmp(got.data, "from-child", 10) == 0);
	close_backend();
}
END_TEST

/* Commands Redis has not read yet wait in the worker's memory: past
 * max_queued bytes the caller gets an error at once; those queued before
 * still go through, and so do new ones once Redis has read them (the
 * loop does not run between the sets, so nothing is written meanwhile). */
START_TEST(redis_max_queued)
{
	int i = 0;
	while (i < nbackends && strcmp(BACKENDS[i], "redis") != 0)
		i++;
	ck_assert_int_lt(i, nbackends);
	redis_extra = "max_queued: 256KiB\n";
	open_backend(i);
	redis_extra = "";
	size_t len = 100 * 1024;
	char *v = malloc(len);
	ck_assert_ptr_nonnull(v);
	memset(v, 'q', len);
	int queued = 0;
	char key[32];
	for (; queued < 10; queued++) {
		int before = got.called;
		snprintf(key, sizeof(key), "q%d", queued);
		ops->set(inst, key, v, len, 0, 0, done_cb, NULL);
		if (got.called > before)
			break;          /* refused at once */
	}
	ck_assert_int_eq(queued, 3);
	ck_assert_int_eq(got.status, MCPD_ERROR);
	ck_assert_msg(strstr(got.err, "max_queued") != NULL, "%s", got.err);
	/* The three queued ones succeed. */
	for (int spins = 0; got.called < 4 && spins < 5000; spins++)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_int_eq(got.called, 4);
	ck_assert_int_eq(got.status, MCPD_OK);
	reset();
	CALL(ops->set(inst, "q-after", v, len, 0, 0, done_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	reset();
	CALL(ops->get(inst, "q2", value_cb, NULL));
	ck_assert_int_eq(got.status, MCPD_OK);
	ck_assert_uint_eq(got.len, sizeof(got.data));
	free(v);
	close_backend();
}
END_TEST

Suite *
storage_suite(void)
{
	if (getenv("MCPD_TEST_REDIS_URL") != NULL)
		BACKENDS[nbackends++] = "redis";
	if (getenv("MCPD_TEST_POSTGRES_URL") != NULL)
		BACKENDS[nbackends++] = "postgres";
	if (getenv("MCPD_TEST_DYNAMODB_ENDPOINT") != NULL)
		BACKENDS[nbackends++] = "dynamodb";
	if (getenv("MCPD_TEST_COSMOS_ENDPOINT") != NULL)
		BACKENDS[nbackends++] = "cosmos";
	if (getenv("MCPD_TEST_FIRESTORE_ENDPOINT") != NULL)
		BACKENDS[nbackends++] = "firestore";
	Suite *s = suite_create("storage");
	TCase *tc = tcase_create("every backend");
	tcase_set_timeout(tc, 20);
	tcase_add_loop_test(tc, kv_roundtrip, 0, nbackends);
	tcase_add_loop_test(tc, kv_conditions, 0, nbackends);
	tcase_add_loop_test(tc, kv_ttl, 0, nbackends);
	tcase_add_loop_test(tc, counters, 0, nbackends);
	tcase_add_loop_test(tc, indexes, 0, nbackends);
	tcase_add_loop_test(tc, logs, 0, nbackends);
	tcase_add_loop_test(tc, expiry, 0, nbackends);
	tcase_add_loop_test(tc, bursts, 0, nbackends);
	tcase_add_loop_test(tc, long_keys, 0, nbackends);
	tcase_add_loop_test(tc, big_items, 0, nbackends);
	tcase_add_loop_test(tc, reads_see_writes, 0, nbackends);
	tcase_add_test(tc, lmdb_other_writer);
	if (getenv("MCPD_TEST_REDIS_URL") != NULL)
		tcase_add_test(tc, redis_max_queued);
	suite_add_tcase(s, tc);
	return s;
}
