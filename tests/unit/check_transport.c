/* The network transport plugins against a real peer: nats when
 * MCPD_TEST_NATS_URL names a nats-server (test_nats.py starts one and
 * runs this suite), sqs when MCPD_TEST_SQS_ENDPOINT names moto's server
 * (test_sqs.py; credentials from the environment), pubsub when
 * MCPD_TEST_PUBSUB_ENDPOINT names the Pub/Sub emulator (test_pubsub.py),
 * amqp when MCPD_TEST_AMQP_URL names an AMQP 1.0 broker (test_amqp.py:
 * RabbitMQ, or its fake broker for the flavors and faults no broker here
 * has), with MCPD_TEST_AMQP_FLAVOR and, where the broker has one,
 * MCPD_TEST_AMQP_MAX_MESSAGE. Two instances of the plugin in this process
 * stand for two workers of two mcpd instances: each has its own
 * connection, or queue. */
#include <check.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "conftree.h"
#include "host.h"
#include "plugin.h"
#include "relay.h"
#include "suites.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>

/* Channels that a naive mapping to subjects would mix up. */
static const char *const CHANNELS[] = { "toclient:abc", "a.b", "a*b", "a>b", "a b", "a%2Eb", "a%b",
	"a.*", "a.>", "\xc3\xa4.b", "toserver:s:\"7\"" };
#define NCH (sizeof(CHANNELS) / sizeof(CHANNELS[0]))

static const char *KINDS[4];
static int nkinds;

static struct event_base *base;
static const struct mcpd_plugin *desc;
static const struct mcpd_transport_ops *ops;
static struct arena *arena;

static struct {
	int n;
	int wrong;                  /* a message on a channel it was not sent to */
	char last[64];
} rx[NCH];

static struct {
	int called, status;
	int64_t value;
} got;

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
spin(int ms)
{
	struct timeval tv = { 0, ms * 1000 };
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static void
on_message(void *arg, const char *channel, const void *msg, size_t len)
{
	size_t i = (size_t)(uintptr_t)arg;
	char want[64];
	snprintf(want, sizeof(want), "m%zu", i);
	rx[i].n++;
	snprintf(rx[i].last, sizeof(rx[i].last), "%.*s", (int)len, (const char *)msg);
	if (strcmp(channel, CHANNELS[i]) != 0 || strcmp(rx[i].last, want) != 0)
		rx[i].wrong++;
}

static void
int_cb(void *arg, int status, int64_t value, const char *err)
{
	(void)arg;
	(void)err;
	got.called++;
	got.status = status;
	got.value = value;
}

static void
done_cb(void *arg, int status, const char *err)
{
	(void)arg;
	(void)err;
	got.called++;
	got.status = status;
}

static const char *
url_of(const char *kind)
{
	if (strcmp(kind, "nats") == 0)
		return getenv("MCPD_TEST_NATS_URL");
	if (strcmp(kind, "pubsub") == 0)
		return getenv("MCPD_TEST_PUBSUB_ENDPOINT");
	return getenv(strcmp(kind, "sqs") == 0 ? "MCPD_TEST_SQS_ENDPOINT" : "MCPD_TEST_AMQP_URL");
}

static void *
open_one(const char *kind, const char *url)
{
	char exe[1024], path[1200], err[512], yaml[600];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	ck_assert_int_gt(n, 0);
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	snprintf(path, sizeof(path), "%s/plugins/%s.so", exe, kind);
	struct loaded_plugin *lp = plugin_load(path, MCPD_PLUGIN_TRANSPORT, err, sizeof(err));
	ck_assert_msg(lp != NULL, "%s", err);
	desc = lp->desc;
	ops = desc->ops;
	/* Subjects (a topic and queues, addresses) of this run only, so
	 * that runs can share a server. */
	if (strcmp(kind, "nats") == 0)
		snprintf(yaml, sizeof(yaml), "plugin: nats\nurl: \"%s\"\nprefix: \"t%d.\"\npresence_timeout: 300ms\n"
		    "connect_timeout: 500ms\n", url, (int)getpid());
	else if (strcmp(kind, "pubsub") == 0)
		snprintf(yaml, sizeof(yaml), "plugin: pubsub\nendpoint: \"%s\"\nproject: test-project\ntopic: t%d\n"
		    "create_topic: true\nsubscription_prefix: t%d-\npresence_timeout: 300ms\nwait: 2s\ntimeout: 1s\n", url,
		    (int)getpid(), (int)getpid());
	else if (strcmp(kind, "sqs") == 0)
		snprintf(yaml, sizeof(yaml), "plugin: sqs\nendpoint: \"%s\"\ntopic: t%d\ncreate_topic: true\n"
		    "queue_prefix: t%d-\npresence_timeout: 300ms\nwait: 2s\ntimeout: 1s\n", url, (int)getpid(),
		    (int)getpid());
	else
		snprintf(yaml, sizeof(yaml), "plugin: amqp\nurl: \"%s\"\nflavor: %s\nprefix: \"t%d.\"\n"
		    "connect_timeout: 1s\nheartbeat: 300ms\n", url, getenv("MCPD_TEST_AMQP_FLAVOR") ?
		    getenv("MCPD_TEST_AMQP_FLAVOR") : "rabbitmq", (int)getpid());
	if (base == NULL)
		base = event_base_new();
	host_set_worker(base, 1);
	if (arena == NULL)
		arena = arena_new(4096);
	struct cnode *section = conftree_load_string(arena, "t.yaml", yaml, strlen(yaml), err, sizeof(err));
	ck_assert_msg(section != NULL, "%s", err);
	void *inst = desc->create(host_table(), (const struct mcpd_config *)section, err, sizeof(err));
	ck_assert_msg(inst != NULL, "%s", err);
	ck_assert_msg(desc->attach(inst, err, sizeof(err)) == 0, "%s", err);
	return inst;
}

static void
wait_ready(void *inst)
{
	char why[256];
	uint64_t end = now_ms() + 5000;
	while (desc->status(inst, why, sizeof(why)) != 0 && now_ms() < end)
		spin(10);
	ck_assert_msg(desc->status(inst, why, sizeof(why)) == 0, "not ready: %s", why);
}

static int64_t
count(void *inst, const char *channel, uint64_t *took)
{
	int before = got.called;
	uint64_t t0 = now_ms();
	ops->has_subscribers(inst, channel, int_cb, NULL);
	while (got.called == before && now_ms() - t0 < 5000)
		spin(5);
	ck_assert_msg(got.called > before, "has_subscribers never answered");
	ck_assert_int_eq(got.status, MCPD_OK);
	if (took != NULL)
		*took = now_ms() - t0;
	return got.value;
}

/* Subscriptions reach the server asynchronously: ask until it agrees. */
static void
await_count(void *inst, const char *channel, int64_t want)
{
	uint64_t end = now_ms() + 5000;
	int64_t v;
	while ((v = count(inst, channel, NULL)) != want && now_ms() < end)
		spin(20);
	ck_assert_msg(v == want, "%s: %lld subscribers, expected %lld", channel, (long long)v, (long long)want);
}

static void
close_all(void **insts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		desc->detach(insts[i]);
	for (size_t i = 0; i < n; i++)
		desc->destroy(insts[i]);
	arena_free(arena);
	arena = NULL;
}

START_TEST(across_instances)
{
	const char *kind = KINDS[_i], *url = url_of(kind);
	void *x = open_one(kind, url), *y = open_one(kind, url);
	void *subs[NCH];
	wait_ready(x);
	wait_ready(y);
	memset(rx, 0, sizeof(rx));
	for (size_t i = 0; i < NCH; i++) {
		subs[i] = ops->subscribe(x, CHANNELS[i], on_message, (void *)(uintptr_t)i);
		ck_assert_ptr_nonnull(subs[i]);
	}
	await_count(y, CHANNELS[NCH - 1], 1);
	for (size_t i = 0; i < NCH; i++) {
		ck_assert_msg(count(y, CHANNELS[i], NULL) == 1, "%s", CHANNELS[i]);
		char m[16];
		int len = snprintf(m, sizeof(m), "m%zu", i);
		got.called = 0;
		ops->publish(y, CHANNELS[i], m, (size_t)len, NULL, done_cb, NULL);
		uint64_t end = now_ms() + 3000;
		while ((rx[i].n == 0 || got.called == 0) && now_ms() < end)
			spin(5);
		ck_assert_msg(rx[i].n == 1, "%s: %d messages", CHANNELS[i], rx[i].n);
		ck_assert_int_eq(got.called, 1);
		ck_assert_int_eq(got.status, MCPD_OK);
	}
	spin(100);
	for (size_t i = 0; i < NCH; i++)
		ck_assert_msg(rx[i].n == 1 && rx[i].wrong == 0, "%s: %d messages, %d wrong", CHANNELS[i], rx[i].n,
		    rx[i].wrong);

	/* Nobody: nats says so at once, no waiting for answers; amqp knows
	 * from the announcements it keeps; sqs waits presence_timeout for
	 * answers that do not come. */
	uint64_t took;
	ck_assert_int_eq(count(y, "nobody", &took), 0);
	ck_assert_msg(took < (strcmp(kind, "nats") == 0 ? 250u : 1000u), "has_subscribers of an empty channel took %llu ms",
	    (unsigned long long)took);
	ck_assert_int_eq(count(x, "a%2E", NULL), 0);

	/* Counts add up across instances and subscriptions. */
	void *ys = ops->subscribe(y, "a.b", on_message, (void *)(uintptr_t)1);
	void *x2 = ops->subscribe(x, "a.b", on_message, (void *)(uintptr_t)1);
	await_count(x, "a.b", 3);
	ops->unsubscribe(y, ys);
	ops->unsubscribe(x, x2);
	await_count(y, "a.b", 1);
	for (size_t i = 0; i < NCH; i++)
		ops->unsubscribe(x, subs[i]);
	await_count(y, "a.b", 0);
	await_count(y, "a*b", 0);
	void *both[] = { x, y };
	close_all(both, 2);
}
END_TEST

START_TEST(while_down)
{
	/* A port where nothing listens (the server's, plus one). */
	const char *kind = KINDS[_i], *url = url_of(kind);
	char down[256];
	const char *colon = strrchr(url, ':');
	snprintf(down, sizeof(down), "%.*s:%d", (int)(colon - url), url, atoi(colon + 1) + 1);
	void *x = open_one(kind, down);
	spin(200);
	char why[256];
	ck_assert_int_eq(desc->status(x, why, sizeof(why)), -1);
	ck_assert_msg(strstr(why, kind) != NULL, "%s", why);
	got.called = 0;
	ops->publish(x, "c", "m", 1, NULL, done_cb, NULL);
	ck_assert_int_eq(got.called, 1);
	ck_assert_int_eq(got.status, MCPD_ERROR);
	ops->has_subscribers(x, "c", int_cb, NULL);
	ck_assert_int_eq(got.called, 2);
	ck_assert_int_eq(got.status, MCPD_ERROR);
	/* Subscribing works meanwhile: it is made when the server is up. */
	void *s = ops->subscribe(x, "c", on_message, NULL);
	ck_assert_ptr_nonnull(s);
	ops->unsubscribe(x, s);
	close_all(&x, 1);
}
END_TEST

static struct {
	int n;
	size_t len;
	char data[64];
} bin;
static char got_err[512];

static void
on_bytes(void *arg, const char *channel, const void *msg, size_t len)
{
	(void)arg;
	(void)channel;
	bin.n++;
	bin.len = len;
	memcpy(bin.data, msg, len < sizeof(bin.data) ? len : sizeof(bin.data));
}

static void
err_cb(void *arg, int status, const char *err)
{
	(void)arg;
	got.called++;
	got.status = status;
	snprintf(got_err, sizeof(got_err), "%s", err ? err : "");
}

/* Bytes that are not text arrive as they were sent, an empty message
 * too; a message over what the service carries (SNS: 256 KiB; Pub/Sub:
 * 10 MB; an AMQP broker's max-message-size, when
 * MCPD_TEST_AMQP_MAX_MESSAGE says it has one) is an error the publisher
 * hears, never dropped unsaid; under it, it arrives whole. */
START_TEST(sizes_and_bytes)
{
	const char *kind = KINDS[_i], *url = url_of(kind);
	void *x = open_one(kind, url), *y = open_one(kind, url);
	wait_ready(x);
	wait_ready(y);
	memset(&bin, 0, sizeof(bin));
	void *s = ops->subscribe(x, "bin", on_bytes, NULL);
	ck_assert_ptr_nonnull(s);
	await_count(y, "bin", 1);
	static const char bytes[] = { 0, (char)0xff, 1, ' ', 'b', '\n', (char)0xc3, 0 };
	got.called = 0;
	ops->publish(y, "bin", bytes, sizeof(bytes), NULL, err_cb, NULL);
	uint64_t end = now_ms() + 3000;
	while (bin.n == 0 && now_ms() < end)
		spin(5);
	ck_assert_int_eq(bin.n, 1);
	ck_assert_uint_eq(bin.len, sizeof(bytes));
	ck_assert(memcmp(bin.data, bytes, sizeof(bytes)) == 0);
	ops->publish(y, "bin", "", 0, NULL, err_cb, NULL);
	end = now_ms() + 3000;
	while (bin.n == 1 && now_ms() < end)
		spin(5);
	ck_assert_int_eq(bin.n, 2);
	ck_assert_uint_eq(bin.len, 0);
	const char *max = strcmp(kind, "amqp") == 0 ? getenv("MCPD_TEST_AMQP_MAX_MESSAGE") : NULL;
	int pubsub = strcmp(kind, "pubsub") == 0, strict = pubsub || strcmp(kind, "sqs") == 0;
	size_t big = max != NULL ? (size_t)atol(max) + 1 : pubsub ? 11000000 : 300 * 1024;
	int refused = strict || max != NULL;
	char *b = malloc(big);
	ck_assert_ptr_nonnull(b);
	memset(b, 'a', big);
	got.called = 0;
	ops->publish(y, "bin", b, big, NULL, err_cb, NULL);
	end = now_ms() + 5000;
	while ((got.called == 0 || (!refused && bin.n == 2)) && now_ms() < end)
		spin(5);
	free(b);
	ck_assert_int_eq(got.called, 1);
	if (strict) {
		ck_assert_int_eq(got.status, MCPD_ERROR);
		ck_assert_msg(strstr(got_err, pubsub ? "10 MB" : "256 KiB") != NULL, "%s", got_err);
	} else if (max != NULL) {
		ck_assert_int_eq(got.status, MCPD_ERROR);
		ck_assert_msg(strstr(got_err, "over the broker's maximum") != NULL, "%s", got_err);
		spin(200);
		ck_assert_int_eq(bin.n, 2);
		/* The link goes on: the next message arrives. */
		ops->publish(y, "bin", "after", 5, NULL, err_cb, NULL);
		end = now_ms() + 3000;
		while (bin.n == 2 && now_ms() < end)
			spin(5);
		ck_assert_int_eq(bin.n, 3);
		ck_assert_uint_eq(bin.len, 5);
	} else {
		ck_assert_int_eq(got.status, MCPD_OK);
		ck_assert_uint_eq(bin.len, big);
	}
	ops->unsubscribe(x, s);
	void *both[] = { x, y };
	close_all(both, 2);
}
END_TEST

/* sqs addresses a channel's messages to the workers it learned hold a
 * subscriber. One that subscribes after that announces itself, and its
 * announcement may cross a message addressed without it: the publisher
 * sends it, once, what it missed. */
static struct {
	int n;
	char got[8][16];
} late[2];

static void
on_late(void *arg, const char *channel, const void *msg, size_t len)
{
	(void)channel;
	int who = (int)(uintptr_t)arg;
	if (late[who].n < 8)
		snprintf(late[who].got[late[who].n], sizeof(late[who].got[0]), "%.*s", (int)len, (const char *)msg);
	late[who].n++;
}

static void
await_late(int who, int n)
{
	uint64_t end = now_ms() + 3000;
	while (late[who].n < n && now_ms() < end)
		spin(5);
	ck_assert_msg(late[who].n == n, "subscriber %d got %d messages, expected %d", who, late[who].n, n);
}

static const char *ROUTED[2];           /* the kinds that address messages: sqs, pubsub */
static int nrouted;

START_TEST(a_late_holder_gets_what_crossed)
{
	const char *kind = ROUTED[_i], *url = url_of(kind);
	void *x = open_one(kind, url), *y = open_one(kind, url), *z = open_one(kind, url);
	wait_ready(x);
	wait_ready(y);
	wait_ready(z);
	memset(late, 0, sizeof(late));
	void *sx = ops->subscribe(x, "late", on_late, (void *)(uintptr_t)0);
	spin(300);                          /* x's queue subscribed, its announcement out */
	/* y learns the channel: the first message goes to all, x answers. */
	ops->publish(y, "late", "m1", 2, NULL, NULL, NULL);
	await_late(0, 1);
	spin(600);                          /* past presence_timeout: y sends to x only */
	void *sz = ops->subscribe(z, "late", on_late, (void *)(uintptr_t)1);
	ops->publish(y, "late", "m2", 2, NULL, NULL, NULL);
	await_late(0, 2);
	await_late(1, 1);
	ops->publish(y, "late", "m3", 2, NULL, NULL, NULL);
	await_late(0, 3);
	await_late(1, 2);
	spin(300);
	ck_assert_int_eq(late[0].n, 3);
	ck_assert_int_eq(late[1].n, 2);
	ck_assert_str_eq(late[1].got[0], "m2");
	ck_assert_str_eq(late[1].got[1], "m3");
	ops->unsubscribe(x, sx);
	ops->unsubscribe(z, sz);
	void *all[] = { x, y, z };
	close_all(all, 3);
}
END_TEST

/* pubsub: a worker learns holders from announcements, but only those
 * made while it was there to hear them, and from the answers to its
 * messages to all (each holder answering a sender now and then). What it
 * learned is not all there is: a holder it never heard of missed what
 * was addressed to the others alone (seen as a lost list_changed between
 * two instances under load). Four workers: x holds a channel from before
 * y came; w subscribes after, and y hears its announcement. */
START_TEST(a_holder_not_heard_of_is_not_missed)
{
	const char *url = url_of("pubsub");
	void *x = open_one("pubsub", url), *v = open_one("pubsub", url);
	wait_ready(x);
	wait_ready(v);
	memset(late, 0, sizeof(late));
	void *sx = ops->subscribe(x, "known", on_late, (void *)(uintptr_t)0);
	void *sx2 = ops->subscribe(x, "asked", on_late, (void *)(uintptr_t)0);
	spin(300);                          /* x's announcements out, before y was there */
	void *y = open_one("pubsub", url), *w = open_one("pubsub", url);
	wait_ready(y);
	wait_ready(w);
	void *sw = ops->subscribe(w, "known", on_late, (void *)(uintptr_t)1);
	spin(500);                          /* y heard w's announcement */
	ops->publish(y, "known", "k1", 2, NULL, NULL, NULL);
	await_late(0, 1);
	await_late(1, 1);
	/* x answered v's message to all; y's, just after, must have its
	 * answer too, or y knows only the holder that announces itself next. */
	ops->publish(v, "asked", "a1", 2, NULL, NULL, NULL);
	await_late(0, 2);
	spin(300);                          /* x answered v */
	ops->publish(y, "asked", "a2", 2, NULL, NULL, NULL);
	await_late(0, 3);
	spin(500);                          /* x answered y */
	void *sw2 = ops->subscribe(w, "asked", on_late, (void *)(uintptr_t)1);
	spin(500);                          /* y heard w's announcement */
	ops->publish(y, "asked", "a3", 2, NULL, NULL, NULL);
	await_late(0, 4);
	await_late(1, 2);
	spin(300);
	ck_assert_int_eq(late[0].n, 4);
	ck_assert_int_eq(late[1].n, 2);
	ck_assert_str_eq(late[0].got[3], "a3");
	ck_assert_str_eq(late[1].got[1], "a3");
	ops->unsubscribe(x, sx);
	ops->unsubscribe(x, sx2);
	ops->unsubscribe(w, sw);
	ops->unsubscribe(w, sw2);
	void *all[] = { x, v, y, w };
	close_all(all, 4);
}
END_TEST

/* pubsub: the answers to a message to all come one by one; a message
 * published after some came and before the others is addressed without
 * the late ones, which must get it again when their answer comes. x runs
 * on a loop of its own, held still while w answers y's first message and
 * y publishes the second (to w alone); then x runs, and answers. */
static struct event_base *xbase;

static void
spin_x(int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	while (now_ms() < end) {
		struct timeval tv = { 0, 5000 };
		event_base_loopexit(xbase, &tv);
		event_base_dispatch(xbase);
		spin(5);
	}
}

START_TEST(an_answer_that_crossed_gets_it_again)
{
	const char *url = url_of("pubsub");
	void *w = open_one("pubsub", url);
	struct event_base *main_base = base;
	xbase = event_base_new();
	base = xbase;
	void *x = open_one("pubsub", url);
	base = main_base;
	host_set_worker(base, 1);
	uint64_t end = now_ms() + 5000;
	char why[256];
	while (desc->status(x, why, sizeof(why)) != 0 && now_ms() < end)
		spin_x(10);
	wait_ready(w);
	memset(late, 0, sizeof(late));
	void *sx = ops->subscribe(x, "crossed", on_late, (void *)(uintptr_t)0);
	void *sw = ops->subscribe(w, "crossed", on_late, (void *)(uintptr_t)1);
	spin_x(300);                        /* announced, before y came */
	void *y = open_one("pubsub", url);
	wait_ready(y);
	ops->publish(y, "crossed", "c1", 2, NULL, NULL, NULL);
	await_late(1, 1);
	spin(300);                          /* w's answer reached y; x, held still, has not answered */
	ck_assert_int_eq(late[0].n, 0);
	ops->publish(y, "crossed", "c2", 2, NULL, NULL, NULL);
	await_late(1, 2);
	end = now_ms() + 5000;
	while (late[0].n < 2 && now_ms() < end)
		spin_x(10);
	spin_x(300);
	ck_assert_msg(late[0].n == 2 && late[1].n == 2, "x got %d, w got %d, expected 2 each", late[0].n, late[1].n);
	ck_assert_str_eq(late[0].got[0], "c1");
	ck_assert_str_eq(late[0].got[1], "c2");
	ops->unsubscribe(x, sx);
	ops->unsubscribe(w, sw);
	void *all[] = { x, w, y };
	close_all(all, 3);
	event_base_free(xbase);
	xbase = NULL;
}
END_TEST

/* pubsub: past 16 holders a channel goes to all; the next announcement
 * read (and a worker that stopped freed) a holder past the table's 16. */
static int many_got;

static void
on_many(void *arg, const char *channel, const void *msg, size_t len)
{
	(void)arg;
	(void)channel;
	(void)msg;
	(void)len;
	many_got++;
}

START_TEST(more_holders_than_named)
{
	const char *url = url_of("pubsub");
	enum { N = 19 };
	void *w[N], *s[N];
	for (int i = 0; i < N; i++)
		w[i] = open_one("pubsub", url);
	for (int i = 0; i < N; i++)
		wait_ready(w[i]);
	many_got = 0;
	for (int i = 1; i < N; i++)
		s[i] = ops->subscribe(w[i], "many", on_many, NULL);
	spin(1000);                         /* the 18 announcements heard by all */
	ops->publish(w[0], "many", "m", 1, NULL, NULL, NULL);
	ops->publish(w[0], "many", "n", 1, NULL, NULL, NULL);
	uint64_t end = now_ms() + 5000;
	while (many_got < 2 * (N - 1) && now_ms() < end)
		spin(10);
	spin(200);
	ck_assert_int_eq(many_got, 2 * (N - 1));
	for (int i = 1; i < N; i++)
		ops->unsubscribe(w[i], s[i]);
	close_all(w, N);
}
END_TEST

/* sqs: the answers that wait together at a worker leave together (the
 * test that runs this suite counts the SendMessageBatch calls through a
 * relay in front of the service). Twenty messages on twenty channels
 * that y does not know yet each ask who holds them (those beyond the
 * calls y has in flight leave together, PublishBatch); x holds them all. */
START_TEST(answers_go_together)
{
	const char *url = url_of("sqs");
	void *x = open_one("sqs", url), *y = open_one("sqs", url);
	wait_ready(x);
	wait_ready(y);
	memset(late, 0, sizeof(late));
	void *subs[20];
	char ch[32];
	for (int i = 0; i < 20; i++) {
		snprintf(ch, sizeof(ch), "together%d", i);
		subs[i] = ops->subscribe(x, ch, on_late, (void *)(uintptr_t)0);
	}
	spin(300);
	for (int i = 0; i < 20; i++) {
		snprintf(ch, sizeof(ch), "together%d", i);
		ops->publish(y, ch, ch, strlen(ch), NULL, NULL, NULL);
	}
	await_late(0, 20);
	spin(500);                          /* the answers sent */
	for (int i = 0; i < 20; i++)
		ops->unsubscribe(x, subs[i]);
	void *both[] = { x, y };
	close_all(both, 2);
}
END_TEST

/* A burst: messages published in one loop turn on many channels, and
 * many on one channel, all arrive intact (those of one channel in order,
 * where the plugin keeps it: not on an SNS standard topic), and each
 * publisher hears of its own. Run alone (MCPD_TEST_BURST, its own case:
 * CK_RUN_CASE=burst) through a relay that counts the calls, which shows
 * that they went together (test_sqs.py, test_pubsub.py). With
 * MCPD_TEST_FAIL_BODY, the relay says that the service refused the
 * message of that body (a batch fails entry by entry): its publisher, and
 * only it, hears an error. With MCPD_TEST_BURST_DOWN, a first burst
 * (bodies x<n>) meets a service that refuses it (the relay answers for
 * it): every publisher hears an error, and the burst after it goes
 * through as above. */
#define BURST_CH 40
#define BURST_SEQ 30

static struct {
	int n[BURST_CH + 1];
	int wrong;
	int next_seq;
	int ok, err, err_fail;
} burst;

static void
on_burst(void *arg, const char *channel, const void *msg, size_t len)
{
	size_t i = (size_t)(uintptr_t)arg;
	char want[32];
	(void)channel;
	if (i < BURST_CH)
		snprintf(want, sizeof(want), "b%zu", i);
	else
		snprintf(want, sizeof(want), "s%d", burst.next_seq);
	if (len >= sizeof(want) || strlen(want) != len || memcmp(want, msg, len) != 0) {
		if (i == BURST_CH && len < 8 && ((const char *)msg)[0] == 's')
			burst.wrong += 1000;    /* out of order: counted apart */
		else
			burst.wrong++;
	}
	if (i == BURST_CH)
		burst.next_seq++;
	burst.n[i]++;
}

static void
burst_done(void *arg, int status, const char *err)
{
	(void)err;
	if (status == MCPD_OK)
		burst.ok++;
	else if (arg != NULL)
		burst.err_fail++;
	else
		burst.err++;
}

START_TEST(a_burst_goes_together)
{
	const char *kind = KINDS[_i], *url = url_of(kind);
	const char *fail = getenv("MCPD_TEST_FAIL_BODY");
	int ordered = strcmp(kind, "sqs") != 0;
	void *x = open_one(kind, url), *y = open_one(kind, url);
	void *subs[BURST_CH + 1];
	char ch[32], m[32];
	wait_ready(x);
	wait_ready(y);
	memset(&burst, 0, sizeof(burst));
	for (int i = 0; i <= BURST_CH; i++) {
		if (i < BURST_CH)
			snprintf(ch, sizeof(ch), "burst%d", i);
		subs[i] = ops->subscribe(x, i < BURST_CH ? ch : "burst-seq", on_burst, (void *)(uintptr_t)i);
		ck_assert_ptr_nonnull(subs[i]);
	}
	await_count(y, "burst-seq", 1);
	snprintf(ch, sizeof(ch), "burst%d", BURST_CH - 1);
	await_count(y, ch, 1);
	if (getenv("MCPD_TEST_BURST_DOWN") != NULL) {
		/* Five on one channel: sqs sends those one call at a time,
		 * each retried before it fails. */
		for (int i = 0; i < BURST_CH + 5; i++) {
			snprintf(ch, sizeof(ch), "burst%d", i);
			int len = snprintf(m, sizeof(m), "x%d", i);
			ops->publish(y, i < BURST_CH ? ch : "burst-seq", m, (size_t)len, NULL, burst_done, NULL);
		}
		uint64_t until = now_ms() + 20000;
		while (burst.ok + burst.err < BURST_CH + 5 && now_ms() < until)
			spin(10);
		ck_assert_msg(burst.err == BURST_CH + 5 && burst.ok == 0, "refused: %d failed, %d published",
		    burst.err, burst.ok);
		memset(&burst, 0, sizeof(burst));
	}
	/* One loop turn: nothing runs the loop between these. */
	for (int i = 0; i < BURST_CH; i++) {
		snprintf(ch, sizeof(ch), "burst%d", i);
		int len = snprintf(m, sizeof(m), "b%d", i);
		ops->publish(y, ch, m, (size_t)len, NULL, burst_done, NULL);
	}
	for (int i = 0; i < BURST_SEQ; i++) {
		int len = snprintf(m, sizeof(m), "s%d", i);
		ops->publish(y, "burst-seq", m, (size_t)len, NULL, burst_done, NULL);
	}
	if (fail != NULL)
		ops->publish(y, "burst-fail", fail, strlen(fail), NULL, burst_done, (void *)1);
	int want = BURST_CH + BURST_SEQ + (fail != NULL);
	uint64_t end = now_ms() + 15000;
	while ((burst.ok + burst.err + burst.err_fail < want || burst.n[BURST_CH] < BURST_SEQ) && now_ms() < end)
		spin(10);
	spin(300);
	ck_assert_msg(burst.ok == BURST_CH + BURST_SEQ && burst.err == 0, "%d published, %d failed", burst.ok, burst.err);
	if (fail != NULL)
		ck_assert_msg(burst.err_fail == 1, "the refused message's publisher heard no error");
	for (int i = 0; i < BURST_CH; i++)
		ck_assert_msg(burst.n[i] == 1, "burst%d: %d messages", i, burst.n[i]);
	ck_assert_msg(burst.n[BURST_CH] == BURST_SEQ, "burst-seq: %d of %d messages", burst.n[BURST_CH], BURST_SEQ);
	ck_assert_msg(burst.wrong % 1000 == 0, "%d messages not as sent", burst.wrong % 1000);
	ck_assert_msg(!ordered || burst.wrong == 0, "%s: burst-seq out of order", kind);
	for (int i = 0; i <= BURST_CH; i++)
		ops->unsubscribe(x, subs[i]);
	void *both[] = { x, y };
	close_all(both, 2);
}
END_TEST

/* The master's relay (the local transport): a message larger than a
 * frame may be is refused by its sender. Sent, it made the master drop
 * the link's input and read the rest of the message as frames: what
 * came after it was lost, or worse, taken for frames a tool's output
 * could shape. Worker 0 is this process's relay worker; worker 1 is
 * played by hand on a socket, in the wire format of relay.c. */
static void
put_frame(int fd, int op, const char *channel)
{
	unsigned char f[128];
	size_t cl = strlen(channel) + 1;
	uint32_t len = (uint32_t)(1 + cl);
	f[0] = (unsigned char)(len >> 24);
	f[1] = (unsigned char)(len >> 16);
	f[2] = (unsigned char)(len >> 8);
	f[3] = (unsigned char)len;
	f[4] = (unsigned char)op;
	memcpy(f + 5, channel, cl);
	ck_assert_int_eq(write(fd, f, 5 + cl), (ssize_t)(5 + cl));
}

START_TEST(relay_frames_bounded)
{
	struct event_base *b = event_base_new();
	struct relay_master *rm = relay_master_new(b);
	int w0[2], w1[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, w0), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, w1), 0);
	ck_assert_int_eq(relay_master_add(rm, w0[0], 0, 8u << 20), 0);
	ck_assert_int_eq(relay_master_add(rm, w1[0], 1, 8u << 20), 0);
	ck_assert_int_eq(relay_worker_start(b, w0[1], 8u << 20), 0);
	put_frame(w1[1], 1, "c");        /* worker 1 subscribes to c */
	for (int i = 0; i < 20; i++)
		event_base_loop(b, EVLOOP_NONBLOCK);

	size_t big = 17u << 20;
	char *msg = malloc(big);
	ck_assert_ptr_nonnull(msg);
	/* Bytes that, read as frames, would be a DELIVER of "c" saying "forged". */
	memset(msg, 'x', big);
	static const unsigned char forged[] = { 0, 0, 0, 9, 4, 'c', 0, 'f', 'o', 'r', 'g', 'e', 'd' };
	for (size_t at = 4096; at + sizeof(forged) < big; at += 1 << 20)
		memcpy(msg + at, forged, sizeof(forged));
	ck_assert_int_eq(relay_publish("c", msg, big), -1);
	free(msg);
	ck_assert_int_eq(relay_publish("c", "after", 5), 0);

	/* Worker 1 gets exactly one frame: DELIVER c "after". */
	fcntl(w1[1], F_SETFL, O_NONBLOCK);
	unsigned char *rxb = NULL;
	size_t have = 0;
	time_t until = time(NULL) + 10;
	while (time(NULL) < until && have < 13) {
		event_base_loop(b, EVLOOP_NONBLOCK);
		unsigned char buf[65536];
		ssize_t n = read(w1[1], buf, sizeof(buf));
		if (n > 0) {
			rxb = realloc(rxb, have + (size_t)n);
			memcpy(rxb + have, buf, (size_t)n);
			have += (size_t)n;
		}
	}
	for (int i = 0; i < 50; i++) {      /* anything more would show now */
		event_base_loop(b, EVLOOP_NONBLOCK);
		unsigned char buf[65536];
		ssize_t n = read(w1[1], buf, sizeof(buf));
		if (n > 0) {
			rxb = realloc(rxb, have + (size_t)n);
			memcpy(rxb + have, buf, (size_t)n);
			have += (size_t)n;
		}
	}
	static const unsigned char want[] = { 0, 0, 0, 8, 4, 'c', 0, 'a', 'f', 't', 'e', 'r' };
	ck_assert_msg(have == sizeof(want) && memcmp(rxb, want, sizeof(want)) == 0,
	    "worker 1 got %zu bytes, not one DELIVER of \"after\"", have);
	free(rxb);
	relay_worker_stop();
	relay_master_free(rm);
	close(w1[1]);
	event_base_free(b);
}
END_TEST

/* The master's relay, which the local transport is built on. */
/* Messages wait on a link for at most its limit (limits.stream_buffer),
 * one message past it: a master that lags, or a worker that does not
 * read, made the other end queue up to 64 MiB of them (a worker grew by
 * 120 MB under load for a tool's flood). Subscriptions still go. */
START_TEST(relay_messages_bounded)
{
	struct event_base *b = event_base_new();
	struct relay_master *rm = relay_master_new(b);
	int w0[2], w1[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, w0), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, w1), 0);
	const size_t limit = 1u << 20, len = 256u << 10;
	ck_assert_int_eq(relay_master_add(rm, w0[0], 0, limit), 0);
	ck_assert_int_eq(relay_master_add(rm, w1[0], 1, limit), 0);
	ck_assert_int_eq(relay_worker_start(b, w0[1], limit), 0);
	char *msg = calloc(1, len);
	ck_assert_ptr_nonnull(msg);

	/* The loop does not run: the master reads nothing, as when it lags. */
	int sent = 0;
	for (int i = 0; i < 64; i++)
		sent += relay_publish("c", msg, len) == 0;
	ck_assert_int_eq(sent, 4);          /* 1 MiB, then one more would pass it */
	ck_assert_int_eq(relay_subscribe("d"), 0);
	/* Once the master has read, messages go again. */
	time_t until = time(NULL) + 10;
	int again = -1;
	while (again != 0 && time(NULL) < until) {
		event_base_loop(b, EVLOOP_NONBLOCK);
		again = relay_publish("c", msg, len);
	}
	ck_assert_int_eq(again, 0);

	/* Worker 1 subscribes to c and reads nothing: the master keeps at
	 * most the limit (and one message) for it; the rest is dropped. */
	put_frame(w1[1], 1, "c");
	for (int i = 0; i < 20; i++)
		event_base_loop(b, EVLOOP_NONBLOCK);
	for (int i = 0; i < 64; i++) {
		for (int k = 0; k < 20; k++)
			event_base_loop(b, EVLOOP_NONBLOCK);
		relay_publish("c", msg, len);
	}
	for (int k = 0; k < 200; k++)
		event_base_loop(b, EVLOOP_NONBLOCK);
	/* Now read all that comes, until nothing has for a while. */
	fcntl(w1[1], F_SETFL, O_NONBLOCK);
	size_t rcvd = 0;
	int quiet = 0;
	until = time(NULL) + 20;
	while (quiet < 200 && time(NULL) < until) {
		event_base_loop(b, EVLOOP_NONBLOCK);
		char buf[65536];
		ssize_t n = read(w1[1], buf, sizeof(buf));
		if (n > 0) {
			rcvd += (size_t)n;
			quiet = 0;
		} else {
			quiet++;
			usleep(1000);
		}
	}
	ck_assert_msg(rcvd > 0 && rcvd < limit + 3 * len + (1u << 20),
	    "worker 1 was sent %zu bytes of the 16 MiB published for it", rcvd);
	free(msg);
	relay_worker_stop();
	relay_master_free(rm);
	close(w1[1]);
	event_base_free(b);
}
END_TEST

Suite *
relay_suite(void)
{
	Suite *s = suite_create("relay");
	TCase *tc = tcase_create("frames");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, relay_frames_bounded);
	tcase_add_test(tc, relay_messages_bounded);
	suite_add_tcase(s, tc);
	return s;
}

Suite *
transport_suite(void)
{
	Suite *s = suite_create("transport");
	if (getenv("MCPD_TEST_NATS_URL") != NULL)
		KINDS[nkinds++] = "nats";
	if (getenv("MCPD_TEST_SQS_ENDPOINT") != NULL && *getenv("MCPD_TEST_SQS_ENDPOINT") != '\0')
		KINDS[nkinds++] = "sqs";
	if (getenv("MCPD_TEST_AMQP_URL") != NULL)
		KINDS[nkinds++] = "amqp";
	if (getenv("MCPD_TEST_PUBSUB_ENDPOINT") != NULL && *getenv("MCPD_TEST_PUBSUB_ENDPOINT") != '\0')
		KINDS[nkinds++] = "pubsub";
	if (nkinds > 0) {
		TCase *tc = tcase_create("network");
		tcase_set_timeout(tc, 60);
		tcase_add_loop_test(tc, across_instances, 0, nkinds);
		tcase_add_loop_test(tc, while_down, 0, nkinds);
		tcase_add_loop_test(tc, sizes_and_bytes, 0, nkinds);
		for (int i = 0; i < nkinds; i++)
			if (strcmp(KINDS[i], "sqs") == 0 || strcmp(KINDS[i], "pubsub") == 0)
				ROUTED[nrouted++] = KINDS[i];
		tcase_add_loop_test(tc, a_late_holder_gets_what_crossed, 0, nrouted);
		if (strcmp(KINDS[nkinds - 1], "sqs") == 0)
			tcase_add_test(tc, answers_go_together);
		if (strcmp(KINDS[nkinds - 1], "pubsub") == 0) {
			tcase_add_test(tc, a_holder_not_heard_of_is_not_missed);
			tcase_add_test(tc, an_answer_that_crossed_gets_it_again);
			tcase_add_test(tc, more_holders_than_named);
		}
		suite_add_tcase(s, tc);
		if (getenv("MCPD_TEST_BURST") != NULL) {
			TCase *tb = tcase_create("burst");
			tcase_set_timeout(tb, 60);
			tcase_add_loop_test(tb, a_burst_goes_together, 0, nkinds);
			suite_add_tcase(s, tb);
		}
	}
	return s;
}
