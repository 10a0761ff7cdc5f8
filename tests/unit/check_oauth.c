/* The pure parts of the internal authorization server: password hashes,
 * forms and escaping, redirect URIs, scopes. */
#include <check.h>
#include <event2/event.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "form.h"
#include "oauth_internal.h"
#include "offload.h"
#include "pwhash.h"
#include "suites.h"
#include "util.h"

START_TEST(password_hashes)
{
	char h1[PWHASH_MAX + 1], h2[PWHASH_MAX + 1], err[128], why[128];
	ck_assert_int_eq(pwhash_make("correct horse", 13, h1, sizeof(h1), err, sizeof(err)), 0);
	ck_assert_int_eq(pwhash_make("correct horse", 13, h2, sizeof(h2), err, sizeof(err)), 0);
	ck_assert_msg(strncmp(h1, "$scrypt$ln=15,r=8,p=1$", 22) == 0, "%s", h1);
	ck_assert_str_ne(h1, h2);                       /* salted */
	ck_assert_int_eq(pwhash_valid(h1, why, sizeof(why)), 0);
	ck_assert_int_eq(pwhash_check("correct horse", 13, h1), 1);
	ck_assert_int_eq(pwhash_check("correct horse", 13, h2), 1);
	ck_assert_int_eq(pwhash_check("correct hors", 12, h1), 0);
	ck_assert_int_eq(pwhash_check("correct horse!", 14, h1), 0);
	ck_assert_int_eq(pwhash_check("", 0, h1), 0);
	/* The dummy is well formed and matches nothing. */
	ck_assert_int_eq(pwhash_valid(pwhash_dummy(), why, sizeof(why)), 0);
	ck_assert_int_eq(pwhash_check("", 0, pwhash_dummy()), 0);
	ck_assert_int_eq(pwhash_check("password", 8, pwhash_dummy()), 0);
	/* Malformed or out of range. */
	const char *bad[] = {
	    "plain", "$scrypt$", "$scrypt$ln=15,r=8$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	    "$scrypt$ln=9,r=8,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	    "$scrypt$ln=23,r=8,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	    "$scrypt$ln=21,r=32,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  /* 8 GiB */
	    "$scrypt$ln=15,r=8,p=1$AAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	    "$scrypt$ln=15,r=8,p=1$AAAAAAAAAAA$AAAA",
	    "$scrypt$ln=15,r=8,p=1$AAAA+AAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	    "$scrypt$ln=15,r=8,p=1,x=2$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	    NULL,
	};
	for (const char **b = bad; *b; b++) {
		ck_assert_msg(pwhash_valid(*b, why, sizeof(why)) == -1, "accepted %s", *b);
		ck_assert_int_eq(pwhash_check("x", 1, *b), -1);
	}
	ck_assert_int_eq(pwhash_make("", 0, h1, sizeof(h1), err, sizeof(err)), -1);
}
END_TEST

START_TEST(scrypt_known_answer)
{
	/* RFC 7914 section 12, third vector: "pleaseletmein", "SodiumChloride",
	 * N=16384, r=8, p=1 gives 7023bdcb3afd7348... (64 bytes). */
	const char *h = "$scrypt$ln=14,r=8,p=1$U29kaXVtQ2hsb3JpZGU$cCO9yzr9c0hGHAbNgf046_2o-7qQT44-qbVD9lRdofLVQylVYT8Pz2LUlwUkKpr55h6F3A1lHkDfzwF7RVdYhw";
	char why[128];
	ck_assert_msg(pwhash_valid(h, why, sizeof(why)) == 0, "%s", why);
	ck_assert_int_eq(pwhash_check("pleaseletmein", 13, h), 1);
	ck_assert_int_eq(pwhash_check("pleaseletmeout", 14, h), 0);
}
END_TEST

START_TEST(forms)
{
	struct arena *ar = arena_new(1024);
	struct form f;
	const char *why = NULL;
	const char *s = "a=1&b=x%20y+z&empty=&flag&c=%2B%26%3D";
	ck_assert_int_eq(form_parse(ar, s, strlen(s), 10, 100, &f, &why), 0);
	ck_assert_uint_eq(f.n, 5);
	ck_assert_str_eq(form_get(&f, "a"), "1");
	ck_assert_str_eq(form_get(&f, "b"), "x y z");
	ck_assert_str_eq(form_get(&f, "empty"), "");
	ck_assert_str_eq(form_get(&f, "flag"), "");
	ck_assert_str_eq(form_get(&f, "c"), "+&=");
	ck_assert_ptr_null(form_get(&f, "d"));
	ck_assert_ptr_null(f.repeated);
	ck_assert_int_eq(form_parse(ar, "a=1&a=2", 7, 10, 100, &f, &why), 0);
	ck_assert_str_eq(f.repeated, "a");
	ck_assert_int_eq(form_parse(ar, "a=%zz", 5, 10, 100, &f, &why), -1);
	ck_assert_int_eq(form_parse(ar, "a=%2", 4, 10, 100, &f, &why), -1);
	ck_assert_int_eq(form_parse(ar, "a=%00", 5, 10, 100, &f, &why), -1);
	ck_assert_int_eq(form_parse(ar, "a=1&b=2&c=3", 11, 2, 100, &f, &why), -1);
	ck_assert_int_eq(form_parse(ar, "a=12345", 7, 2, 4, &f, &why), -1);
	ck_assert_int_eq(form_parse(ar, "", 0, 2, 4, &f, &why), 0);
	ck_assert_uint_eq(f.n, 0);
	ck_assert_str_eq(url_encode(ar, "a b&c=d/é~._-"), "a%20b%26c%3Dd%2F%C3%A9~._-");
	ck_assert_str_eq(html_escape(ar, "<a href=\"x\">'&'</a>"),
	    "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
	ck_assert_str_eq(cookie_get(ar, "a=1; mcpd_csrf_x=tok; b=2", "mcpd_csrf_x"), "tok");
	ck_assert_str_eq(cookie_get(ar, "mcpd_csrf_x=tok", "mcpd_csrf_x"), "tok");
	ck_assert_ptr_null(cookie_get(ar, "mcpd_csrf_xy=tok", "mcpd_csrf_x"));
	ck_assert_ptr_null(cookie_get(ar, NULL, "a"));
	arena_free(ar);
}
END_TEST

START_TEST(redirect_uris)
{
	const char *why;
	const char *good[] = {
	    "https://app.example.com/cb", "https://app.example.com:8443/cb?x=1", "http://localhost/cb",
	    "http://localhost:33418/cb", "http://127.0.0.1:9/callback", "http://127.10.0.1/cb", "http://[::1]:80/cb",
	    "com.example.app:/oauth2redirect", "com.example.app://cb", NULL,
	};
	const char *bad[] = {
	    "", "/relative", "cb", "http://example.com/cb", "http://localhost.example.com/cb",
	    "http://127.0.0.1.example.com/cb", "https://app.example.com/cb#x", "https://u:p@app.example.com/cb",
	    "https:///cb", "https:app.example.com", "javascript:alert(1)", "data:text/html,x", "myapp:/cb",
	    "https://app.example.com/a b", "https://app.example.com/<x>", "1http://x/", NULL,
	};
	for (const char **g = good; *g; g++)
		ck_assert_msg(redirect_uri_ok(*g, &why), "refused %s: %s", *g, why);
	for (const char **b = bad; *b; b++)
		ck_assert_msg(!redirect_uri_ok(*b, &why), "accepted %s", *b);
	char longer[1100];
	memset(longer, 'a', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	memcpy(longer, "https://x/", 10);
	ck_assert(!redirect_uri_ok(longer, &why));
}
END_TEST

START_TEST(loopback_redirects_may_change_port)
{
	const char *uris[] = { "http://127.0.0.1:9/callback", "http://localhost/cb?a=1", "https://app.example.com/cb",
	    "http://[::1]:80/x" };
	struct oclient c = { .redirect_uris = uris, .nredirect = 4 };
	const char *yes[] = {
	    "http://127.0.0.1:9/callback", "http://127.0.0.1:51234/callback", "http://127.0.0.1/callback",
	    "http://localhost:6274/cb?a=1", "https://app.example.com/cb", "http://[::1]:1/x", NULL,
	};
	const char *no[] = {
	    "http://127.0.0.1:9/callback2", "http://127.0.0.1:9/", "http://localhost:9/callback",
	    "http://127.0.0.1:9x/callback", "https://127.0.0.1:9/callback", "http://localhost:1/cb?a=2",
	    "https://app.example.com:444/cb", "http://app.example.com/cb", "http://127.0.0.1.evil/callback",
	    "http://[::1]:1/y", NULL,
	};
	for (const char **u = yes; *u; u++)
		ck_assert_msg(oclient_has_redirect(&c, *u), "refused %s", *u);
	for (const char **u = no; *u; u++)
		ck_assert_msg(!oclient_has_redirect(&c, *u), "accepted %s", *u);
}
END_TEST

START_TEST(scopes)
{
	struct arena *ar = arena_new(1024);
	ck_assert(scope_valid(""));
	ck_assert(scope_valid("a b:c tools.read"));
	ck_assert(!scope_valid("a  b"));
	ck_assert(!scope_valid(" a"));
	ck_assert(!scope_valid("a "));
	ck_assert(!scope_valid("a\"b"));
	ck_assert(!scope_valid("a\\b"));
	ck_assert(!scope_valid("a\tb"));
	ck_assert(scope_subset("", "a"));
	ck_assert(scope_subset("a c", "a b c"));
	ck_assert(!scope_subset("a d", "a b c"));
	ck_assert(!scope_subset("ab", "a b"));
	ck_assert_str_eq(scope_intersect(ar, "c a x a", "a b c"), "c a");
	ck_assert_str_eq(scope_intersect(ar, "x", "a"), "");
	ck_assert_str_eq(scope_intersect(ar, "", "a"), "");
	arena_free(ar);
}
END_TEST

struct job_state {
	struct event_base *base;
	int worked, done, cancelled, order;
	int *log;
	int *nlog;
	int id;
};

static void
job_work(void *arg)
{
	struct job_state *j = arg;
	usleep(10000);
	j->worked = 1;
}

static void
job_done(void *arg, int cancelled)
{
	struct job_state *j = arg;
	j->done++;
	j->cancelled = cancelled;
	j->log[(*j->nlog)++] = j->id;
	if (j->id == 3)
		event_base_loopbreak(j->base);
}

START_TEST(offloaded_jobs)
{
	struct event_base *base = event_base_new();
	struct offload *o = offload_new(base, 3);
	int log[8], n = 0;
	struct job_state jobs[5];
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < 5; i++) {
		jobs[i].base = base;
		jobs[i].log = log;
		jobs[i].nlog = &n;
		jobs[i].id = i + 1;
	}
	/* Three fit in the queue; the fourth is refused. */
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(offload_run(o, job_work, job_done, &jobs[i]), 0);
	ck_assert_int_eq(offload_run(o, job_work, job_done, &jobs[3]), -1);
	/* Their done() runs on the loop, in order, after their work. */
	event_base_dispatch(base);
	ck_assert_int_eq(n, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(log[i], i + 1);
		ck_assert_int_eq(jobs[i].worked, 1);
		ck_assert_int_eq(jobs[i].done, 1);
		ck_assert_int_eq(jobs[i].cancelled, 0);
	}
	ck_assert_int_eq(jobs[3].done, 0);
	/* Room again; a job still queued when it is freed is cancelled, once. */
	ck_assert_int_eq(offload_run(o, job_work, job_done, &jobs[3]), 0);
	ck_assert_int_eq(offload_run(o, job_work, job_done, &jobs[4]), 0);
	offload_free(o);
	ck_assert_int_eq(jobs[3].done, 1);
	ck_assert_int_eq(jobs[4].done, 1);
	ck_assert_int_eq(jobs[4].cancelled, 1);
	event_base_free(base);
}
END_TEST

Suite *
oauth_suite(void)
{
	Suite *s = suite_create("oauth");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, password_hashes);
	tcase_add_test(tc, scrypt_known_answer);
	tcase_add_test(tc, forms);
	tcase_add_test(tc, redirect_uris);
	tcase_add_test(tc, loopback_redirects_may_change_port);
	tcase_add_test(tc, scopes);
	tcase_add_test(tc, offloaded_jobs);
	suite_add_tcase(s, tc);
	return s;
}
