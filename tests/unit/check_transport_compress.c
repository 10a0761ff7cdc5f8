#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mcpd/plugin.h>

#include "../../daemon/core/plugin.h"
#include "../../daemon/core/transport_compress.h"
#include "suites.h"

/* daemon/core/transport_compress.c: the wire form of a compressed
 * message, what a receiver does with each kind, and the wrapper. */

START_TEST(tcomp_round_trip)
{
	char msg[20000];
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}"[i % 49];
	size_t n;
	unsigned char *z = tcomp_deflate(msg, sizeof(msg), &n);
	ck_assert_ptr_nonnull(z);
	ck_assert(z[0] == '\0' && z[1] == 'Z');
	ck_assert_uint_lt(n, sizeof(msg) / 10);
	void *out;
	size_t outlen;
	ck_assert_int_eq(tcomp_inflate(z, n, &out, &outlen), 1);
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(outlen, sizeof(msg));
	ck_assert(memcmp(out, msg, outlen) == 0);
	free(out);
	/* Damaged: cut short, a wrong length, a bad stream. */
	ck_assert_int_eq(tcomp_inflate(z, n - 3, &out, &outlen), -1);
	z[5] ^= 1;
	ck_assert_int_eq(tcomp_inflate(z, n, &out, &outlen), -1);
	z[5] ^= 1;
	z[8] ^= 0xff;
	ck_assert_int_eq(tcomp_inflate(z, n, &out, &outlen), -1);
	free(z);
	/* Over the bound it says. */
	unsigned char big[16] = { 0, 'Z', 0x7f, 0xff, 0xff, 0xff };
	ck_assert_int_eq(tcomp_inflate(big, sizeof(big), &out, &outlen), -1);
	ck_assert_int_eq(tcomp_inflate("\0X", 2, &out, &outlen), -1);
	/* Plain messages as they are; empty ones too. */
	ck_assert_int_eq(tcomp_inflate("hello", 5, &out, &outlen), 1);
	ck_assert_ptr_null(out);
	ck_assert_int_eq(tcomp_inflate("", 0, &out, &outlen), 1);
	ck_assert_ptr_null(out);
	/* An empty message compresses too. */
	z = tcomp_deflate("", 0, &n);
	ck_assert_ptr_nonnull(z);
	ck_assert_int_eq(tcomp_inflate(z, n, &out, &outlen), 1);
	ck_assert_uint_eq(outlen, 0);
	free(out);
	free(z);
}
END_TEST

/* A transport of this test: what was published, handed back to the one
 * subscriber. */
static unsigned char wire[65536];
static size_t wire_len;
static mcpd_message_cb *f_cb;
static void *f_arg;
static int unsubscribed;

static void *
f_subscribe(void *inst, const char *channel, mcpd_message_cb *cb, void *arg)
{
	(void)inst;
	(void)channel;
	f_cb = cb;
	f_arg = arg;
	return &f_cb;
}

static void
f_unsubscribe(void *inst, void *s)
{
	(void)inst;
	ck_assert_ptr_eq(s, &f_cb);
	unsubscribed++;
}

static void
f_publish(void *inst, const char *channel, const void *msg, size_t len,
    const struct mcpd_publish_opts *opts, mcpd_done_cb *cb, void *arg)
{
	(void)inst;
	(void)channel;
	(void)opts;
	ck_assert_uint_le(len, sizeof(wire));
	memcpy(wire, msg, len);
	wire_len = len;
	if (cb != NULL)
		cb(arg, MCPD_OK, NULL);
}

static const struct mcpd_transport_ops ftransport = {
	.size = sizeof(struct mcpd_transport_ops), .subscribe = f_subscribe,
	.unsubscribe = f_unsubscribe, .publish = f_publish,
};

static char got[40000];
static size_t got_len;
static int got_n;

static void
on_msg(void *arg, const char *channel, const void *msg, size_t len)
{
	(void)arg;
	(void)channel;
	ck_assert_uint_le(len, sizeof(got));
	memcpy(got, msg, len);
	got_len = len;
	got_n++;
}

START_TEST(tcomp_wrapper)
{
	struct backends b = { NULL, NULL, &ftransport, NULL };
	ck_assert_int_eq(transport_compress_backends(&b, 1024), 0);
	void *s = b.transport->subscribe(NULL, "c", on_msg, NULL);
	ck_assert_ptr_nonnull(s);
	/* At or under the size: as it is. */
	char msg[30000];
	memset(msg, 'a', sizeof(msg));
	b.transport->publish(NULL, "c", msg, 1024, NULL, NULL, NULL);
	ck_assert_uint_eq(wire_len, 1024);
	ck_assert(memcmp(wire, msg, 1024) == 0);
	f_cb(f_arg, "c", wire, wire_len);
	ck_assert_int_eq(got_n, 1);
	ck_assert_uint_eq(got_len, 1024);
	/* Over: compressed on the wire, whole at the subscriber. */
	b.transport->publish(NULL, "c", msg, sizeof(msg), NULL, NULL, NULL);
	ck_assert(wire[0] == '\0' && wire[1] == 'Z' && wire_len < 1000);
	f_cb(f_arg, "c", wire, wire_len);
	ck_assert_int_eq(got_n, 2);
	ck_assert_uint_eq(got_len, sizeof(msg));
	ck_assert(memcmp(got, msg, sizeof(msg)) == 0);
	/* A short one that starts with a NUL byte goes compressed (else it
	 * would read as compressed). */
	b.transport->publish(NULL, "c", "\0Zabc", 5, NULL, NULL, NULL);
	ck_assert(wire[0] == '\0' && wire_len > 6);
	f_cb(f_arg, "c", wire, wire_len);
	ck_assert_uint_eq(got_len, 5);
	ck_assert(memcmp(got, "\0Zabc", 5) == 0);
	/* One that does not inflate is dropped. */
	wire[wire_len - 1] ^= 0xff;
	f_cb(f_arg, "c", wire, wire_len - 2);
	ck_assert_int_eq(got_n, 3);
	b.transport->unsubscribe(NULL, s);
	ck_assert_int_eq(unsubscribed, 1);
	transport_compress_forget();
}
END_TEST

Suite *
transport_compress_suite(void)
{
	Suite *s = suite_create("transport_compress");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, tcomp_round_trip);
	tcase_add_test(tc, tcomp_wrapper);
	suite_add_tcase(s, tc);
	return s;
}
