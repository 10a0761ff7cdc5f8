#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/amqp/presence.h"
#include "../../plugins/amqp/sas.h"
#include "suites.h"

/* plugins/amqp/presence.c: who holds which channel, as the amqp
 * transport learns it from the other workers' announcements. */
static char seen[8][PRESENCE_ID_MAX + 1];
static size_t nseen;

static void
holder(void *arg, const char *id)
{
	(void)arg;
	if (nseen < 8)
		snprintf(seen[nseen++], sizeof(seen[0]), "%s", id);
}

static int
holds(const char *id)
{
	for (size_t i = 0; i < nseen; i++)
		if (strcmp(seen[i], id) == 0)
			return 1;
	return 0;
}

START_TEST(presence_counts)
{
	static struct presence p;
	memset(&p, 0, sizeof(p));
	ck_assert_int_eq(presence_set(&p, "aa-1", "toclient:x", 2, 100), 0);
	ck_assert_int_eq(presence_set(&p, "bb-2", "toclient:x", 1, 100), 0);
	ck_assert_int_eq(presence_set(&p, "bb-2", "other", 5, 100), 0);
	ck_assert_uint_eq(presence_count(&p, "toclient:x"), 3);
	ck_assert_uint_eq(presence_get(&p, "aa-1", "toclient:x"), 2);
	ck_assert_uint_eq(presence_get(&p, "aa-1", "other"), 0);
	nseen = 0;
	ck_assert_uint_eq(presence_holders(&p, "toclient:x", holder, NULL), 2);
	ck_assert(holds("aa-1") && holds("bb-2"));
	/* A new count replaces the old; 0 removes. */
	ck_assert_int_eq(presence_set(&p, "aa-1", "toclient:x", 1, 100), 0);
	ck_assert_uint_eq(presence_count(&p, "toclient:x"), 2);
	ck_assert_int_eq(presence_set(&p, "bb-2", "toclient:x", 0, 100), 0);
	ck_assert_uint_eq(presence_count(&p, "toclient:x"), 1);
	ck_assert_uint_eq(p.n, 2);
	/* A sync starts over: what bb-2 held goes, bb-2 stays known. */
	presence_forget(&p, "bb-2");
	ck_assert_uint_eq(presence_count(&p, "other"), 0);
	ck_assert_uint_eq(p.npeers, 2);
	/* Silent workers are forgotten with what they held. */
	presence_peer(&p, "bb-2", 500);
	ck_assert_uint_eq(presence_expire(&p, 400), 1);
	ck_assert_uint_eq(presence_count(&p, "toclient:x"), 0);
	ck_assert_uint_eq(p.npeers, 1);
	ck_assert_uint_eq(p.n, 0);
	/* Ids are names, nothing that an address or a filter would read. */
	ck_assert_int_eq(presence_id_ok("0a1b2c3d-12"), 1);
	ck_assert_int_eq(presence_id_ok(""), 0);
	ck_assert_int_eq(presence_id_ok("a'b"), 0);
	ck_assert_int_eq(presence_id_ok("a b"), 0);
	ck_assert_int_eq(presence_id_ok("0123456789012345678901234567890123456789x"), 0);
	ck_assert_int_eq(presence_set(&p, "a'b", "c", 1, 100), -1);
	ck_assert_int_eq(p.overflowed, 1);
	presence_clear(&p);
	ck_assert_uint_eq(p.npeers, 0);
}
END_TEST

START_TEST(presence_bounds)
{
	static struct presence p;
	memset(&p, 0, sizeof(p));
	char id[32];
	for (int i = 0; i < PRESENCE_PEERS_MAX; i++) {
		snprintf(id, sizeof(id), "w-%d", i);
		ck_assert_int_eq(presence_set(&p, id, "c", 1, 1), 0);
	}
	ck_assert_int_eq(p.overflowed, 0);
	ck_assert_int_eq(presence_set(&p, "one-more", "c", 1, 1), -1);
	ck_assert_int_eq(p.overflowed, 1);
	ck_assert_uint_eq(presence_count(&p, "c"), PRESENCE_PEERS_MAX);
	/* A count of 0 from an unknown worker is no overflow. */
	p.overflowed = 0;
	ck_assert_int_eq(presence_set(&p, "one-more", "c", 0, 1), 0);
	ck_assert_int_eq(p.overflowed, 0);
	presence_clear(&p);
}
END_TEST

START_TEST(presence_quiet_channels)
{
	static struct presence p;
	memset(&p, 0, sizeof(p));
	ck_assert_int_eq(presence_quiet(&p, "c", 10), 0);
	presence_set_quiet(&p, "c", 1010);
	ck_assert_int_eq(presence_quiet(&p, "c", 500), 1);
	ck_assert_int_eq(presence_quiet(&p, "c", 1010), 0);     /* over */
	ck_assert_uint_eq(p.nquiet, 0);
	presence_set_quiet(&p, "c", 2000);
	/* A holder that announces itself ends the quiet at once. */
	ck_assert_int_eq(presence_set(&p, "aa-1", "c", 1, 1500), 0);
	ck_assert_int_eq(presence_quiet(&p, "c", 1500), 0);
	for (int i = 0; i < PRESENCE_QUIET_MAX + 10; i++) {
		char ch[32];
		snprintf(ch, sizeof(ch), "q%d", i);
		presence_set_quiet(&p, ch, 5000);
	}
	ck_assert_uint_le(p.nquiet, PRESENCE_QUIET_MAX);
	presence_clear(&p);
	ck_assert_uint_eq(p.nquiet, 0);
}
END_TEST

/* plugins/amqp/sas.c: a token as Azure's SDKs make it, checked against
 * one made with Python's hmac and urllib for the same inputs. */
START_TEST(sas_tokens)
{
	char *t = sas_token("sb://ns.servicebus.windows.net/topic", "RootManageSharedAccessKey", "c2VjcmV0PQ==",
	    1700000000);
	ck_assert_ptr_nonnull(t);
	ck_assert_str_eq(t, "SharedAccessSignature sr=sb%3A%2F%2Fns.servicebus.windows.net%2Ftopic"
	    "&sig=QuJkT68a7SgvqehScIfAiAOmhfShiYsyZNkHz98nHBY%3D&se=1700000000&skn=RootManageSharedAccessKey");
	free(t);
	char *e = sas_encode("a b/c~d.e_f-g+h=\xc3\xa4");
	ck_assert_str_eq(e, "a%20b%2Fc~d.e_f-g%2Bh%3D%C3%A4");
	free(e);
}
END_TEST

Suite *
amqp_suite(void)
{
	Suite *s = suite_create("amqp");
	TCase *tc = tcase_create("presence");
	tcase_add_test(tc, presence_counts);
	tcase_add_test(tc, presence_bounds);
	tcase_add_test(tc, presence_quiet_channels);
	tcase_add_test(tc, sas_tokens);
	suite_add_tcase(s, tc);
	return s;
}
