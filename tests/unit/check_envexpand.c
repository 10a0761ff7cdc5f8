/* ${VAR} in the configuration: the expander alone (lib/envexpand.c), then
 * in a YAML tree (lib/conftree.c: where errors are placed, what is
 * expanded, the bound) and in a loaded configuration. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "config.h"
#include "defs.h"
#include "conftree.h"
#include "envexpand.h"
#include "suites.h"
#include "util.h"

static char msg[512];

/* The expansion of s, or NULL with msg and *at. */
static const char *
ex(struct arena *a, const char *s, size_t *at)
{
	size_t len, where = (size_t)-1;
	msg[0] = '\0';
	const char *r = envexpand(a, s, strlen(s), 1 << 20, &len, &where, msg, sizeof(msg));
	if (r != NULL)
		ck_assert_uint_eq(len, strlen(r));
	if (at != NULL)
		*at = where;
	return r;
}

static void
set_env(void)
{
	setenv("EV_PORT", "9090", 1);
	setenv("EV_EMPTY", "", 1);
	setenv("EV_HOST", "example.org", 1);
	setenv("ev_lower_9", "low", 1);
	unsetenv("EV_UNSET");
}

START_TEST(expand_forms)
{
	set_env();
	struct arena *a = arena_new(4096);
	ck_assert_str_eq(ex(a, "0.0.0.0:${EV_PORT}", NULL), "0.0.0.0:9090");
	ck_assert_str_eq(ex(a, "0.0.0.0:${EV_PORT:-8080}", NULL), "0.0.0.0:9090");
	ck_assert_str_eq(ex(a, "0.0.0.0:${EV_UNSET:-8080}", NULL), "0.0.0.0:8080");
	/* :- takes the default for an empty value too, as sh does */
	ck_assert_str_eq(ex(a, "[${EV_EMPTY:-x}]", NULL), "[x]");
	/* without one, set but empty is empty */
	ck_assert_str_eq(ex(a, "[${EV_EMPTY}]", NULL), "[]");
	ck_assert_str_eq(ex(a, "[${EV_UNSET:-}]", NULL), "[]");
	ck_assert_str_eq(ex(a, "${EV_HOST}:${EV_PORT}/${ev_lower_9}", NULL), "example.org:9090/low");
	ck_assert_str_eq(ex(a, "${_}", NULL) ? "ok" : msg, getenv("_") ? "ok" : msg);
	/* a default runs to the first } and is not itself expanded */
	ck_assert_str_eq(ex(a, "${EV_UNSET:-a b:-c $HOME}", NULL), "a b:-c $HOME");
	/* the value is not expanded again */
	setenv("EV_NESTED", "${EV_PORT} $${", 1);
	ck_assert_str_eq(ex(a, "${EV_NESTED}", NULL), "${EV_PORT} $${");
	arena_free(a);
}
END_TEST

START_TEST(expand_literals)
{
	set_env();
	struct arena *a = arena_new(4096);
	/* Only ${ and $${ mean anything: $HOME, $$, a lone $ and } stay. */
	ck_assert_str_eq(ex(a, "$HOME $$ $ $1 } {EV_PORT} $", NULL), "$HOME $$ $ $1 } {EV_PORT} $");
	ck_assert_str_eq(ex(a, "$${EV_PORT}", NULL), "${EV_PORT}");
	ck_assert_str_eq(ex(a, "a$${b}c${EV_PORT}", NULL), "a${b}c9090");
	ck_assert_str_eq(ex(a, "$$${EV_PORT}", NULL), "$${EV_PORT}");
	ck_assert_str_eq(ex(a, "$${", NULL), "${");
	ck_assert_str_eq(ex(a, "", NULL), "");
	ck_assert(!envexpand_needed("$HOME $$ $", 10));
	ck_assert(envexpand_needed("x ${A}", 6));
	ck_assert(envexpand_needed("$${", 3));
	ck_assert(!envexpand_needed("$", 1));
	arena_free(a);
}
END_TEST

START_TEST(expand_errors)
{
	set_env();
	struct arena *a = arena_new(4096);
	size_t at;
	ck_assert_ptr_null(ex(a, "port ${EV_UNSET}", &at));
	ck_assert_uint_eq(at, 5);
	ck_assert_str_eq(msg, "environment variable EV_UNSET is not set (give a default as "
	    "${EV_UNSET:-value}, or write $${ for a literal ${)");
	ck_assert_ptr_null(ex(a, "ok ${EV_PORT} ${", &at));
	ck_assert_uint_eq(at, 14);
	ck_assert_str_eq(msg, "unterminated ${ (write $${ for a literal ${)");
	ck_assert_ptr_null(ex(a, "${EV_PORT", &at));
	ck_assert_uint_eq(at, 0);
	ck_assert_str_eq(msg, "unterminated ${EV_PORT (no closing })");
	ck_assert_ptr_null(ex(a, "${EV_PORT:-8080", &at));
	ck_assert_str_eq(msg, "unterminated ${EV_PORT:- (no closing })");
	ck_assert_ptr_null(ex(a, "x${}", &at));
	ck_assert_uint_eq(at, 1);
	ck_assert_str_eq(msg, "empty variable name in ${}");
	ck_assert_ptr_null(ex(a, "${1X}", &at));
	ck_assert(strstr(msg, "invalid variable name") != NULL);
	ck_assert_ptr_null(ex(a, "${-x}", &at));
	ck_assert(strstr(msg, "invalid variable name") != NULL);
	/* sh's other forms are not taken for something else */
	const char *other[] = { "${EV_PORT-1}", "${EV_PORT:=1}", "${EV_PORT+x}", "${EV_PORT:?x}",
	    "${EV_PORT.x}", "${EV_PORT }", "${#EV_PORT}" };
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		ck_assert_msg(ex(a, other[i], &at) == NULL, "%s", other[i]);
		ck_assert_uint_eq(at, 0);
	}
	ck_assert_ptr_null(ex(a, "${EV_PORT.x}", &at));
	ck_assert_str_eq(msg, "expected } or :- after ${EV_PORT (the forms are ${NAME} and "
	    "${NAME:-default})");
	ck_assert_ptr_null(ex(a, "${EV_UNSET:-${EV_PORT}}", &at));
	ck_assert(strstr(msg, "defaults are not expanded") != NULL);
	/* what mcpd sets for each run is not read at load */
	ck_assert_ptr_null(ex(a, "${MCP_ARG_who:-world}", &at));
	ck_assert(strstr(msg, "$${MCP_ARG_who...}") != NULL);
	ck_assert_str_eq(ex(a, "$${MCP_ARG_who:-world} $MCP_ARG_x", NULL), "${MCP_ARG_who:-world} $MCP_ARG_x");
	/* a name's length is bounded (getenv needs a copy of it) */
	char big[400] = "${";
	memset(big + 2, 'A', ENVEXPAND_MAX_NAME + 1);
	strcpy(big + 2 + ENVEXPAND_MAX_NAME + 1, "}");
	ck_assert_ptr_null(ex(a, big, &at));
	ck_assert(strstr(msg, "longer than 255") != NULL);
	/* a NUL is not part of a name */
	size_t len;
	ck_assert_ptr_null(envexpand(a, "${EV\0PORT}", 10, 100, &len, &at, msg, sizeof(msg)));
	arena_free(a);
}
END_TEST

START_TEST(expand_bounded)
{
	struct arena *a = arena_new(4096);
	char *v = malloc(1001);
	memset(v, 'v', 1000);
	v[1000] = '\0';
	setenv("EV_BIG", v, 1);
	free(v);
	size_t len, at;
	const char *s = "ab${EV_BIG}${EV_BIG}";
	ck_assert_ptr_nonnull(envexpand(a, s, strlen(s), 2002, &len, &at, msg, sizeof(msg)));
	ck_assert_uint_eq(len, 2002);
	size_t used = arena_used(a);
	ck_assert_ptr_null(envexpand(a, s, strlen(s), 2001, &len, &at, msg, sizeof(msg)));
	ck_assert_uint_eq(at, 11);
	ck_assert(strstr(msg, "longer than the 2001 bytes") != NULL);
	/* measured before anything is allocated */
	ck_assert_uint_eq(arena_used(a), used);
	/* the text around the variables counts too */
	ck_assert_ptr_null(envexpand(a, "abcdef", 6, 5, &len, &at, msg, sizeof(msg)));
	arena_free(a);
}
END_TEST

static struct cnode *
tree(struct arena *a, const char *yaml, char *err, size_t errlen)
{
	err[0] = '\0';
	return conftree_load_string(a, "t.yaml", yaml, strlen(yaml), err, errlen);
}

START_TEST(tree_values_not_keys)
{
	set_env();
	char err[1024];
	struct arena *a = arena_new(4096);
	struct cnode *r = tree(a,
	    "listen: [{ address: '0.0.0.0:${EV_PORT:-8080}' }]\n"
	    "workers: ${EV_PORT}\n"
	    "quoted: \"${EV_PORT}\"\n"
	    "${EV_HOST}: kept\n"
	    "anchored: &p ${EV_HOST}\n"
	    "again: *p\n"
	    "block: |\n  a ${EV_HOST}\n  b $${x}\n", err, sizeof(err));
	ck_assert_msg(r != NULL, "%s", err);
	const struct cnode *l = cnode_get(r, "listen");
	ck_assert_str_eq(cnode_get(l->items[0], "address")->str, "0.0.0.0:9090");
	const struct cnode *w = cnode_get(r, "workers");
	ck_assert_str_eq(w->str, "9090");
	ck_assert_uint_eq(w->len, 4);
	ck_assert(w->plain);            /* still a number to the reader */
	const struct cnode *q = cnode_get(r, "quoted");
	ck_assert_str_eq(q->str, "9090");
	ck_assert(!q->plain);           /* still a string */
	ck_assert_str_eq(cnode_get(r, "${EV_HOST}")->str, "kept");
	ck_assert_ptr_null(cnode_get(r, "example.org"));
	ck_assert_str_eq(cnode_get(r, "anchored")->str, "example.org");
	ck_assert_str_eq(cnode_get(r, "again")->str, "example.org");
	ck_assert_str_eq(cnode_get(r, "block")->str, "a example.org\nb ${x}\n");
	arena_free(a);
}
END_TEST

/* file:line:column of an error, the column that of its $. */
static void
tree_error(const char *yaml, const char *want)
{
	char err[1024];
	struct arena *a = arena_new(4096);
	ck_assert_msg(tree(a, yaml, err, sizeof(err)) == NULL, "%s loaded", yaml);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s: got \"%s\", want \"%s...\"",
	    yaml, err, want);
	arena_free(a);
}

START_TEST(tree_error_places)
{
	set_env();
	tree_error("a: 1\nlisten:\n  - address: 0.0.0.0:${EV_UNSET}\n",
	    "t.yaml:3:22: environment variable EV_UNSET is not set");
	/* in a flow collection { and } end a plain scalar: quoted there */
	tree_error("a: 1\nlisten: [{ address: \"0.0.0.0:${EV_UNSET}\" }]\n",
	    "t.yaml:2:30: environment variable EV_UNSET is not set");
	/* quoted: the quote and escapes before it change the text, not the $s */
	tree_error("x: \"\\t\\u00e9 $HOME ${EV_PORT} ${EV_UNSET}\"\n", "t.yaml:1:31: environment");
	tree_error("x: 'it''s $$ ${EV_UNSET}'\n", "t.yaml:1:14: environment");
	/* a block scalar: the line in the block */
	tree_error("tools:\n  - shell: |\n      echo one\n      echo \"${EV_UNSET}\"\n",
	    "t.yaml:4:13: environment");
	/* a plain scalar folded over lines */
	tree_error("x: a b\n  c ${EV_PORT}\n    ${EV_UNSET}\n", "t.yaml:3:5: environment");
	/* characters, not bytes, as libyaml counts columns */
	tree_error("x: \"\xc3\xa9\xc3\xa9 ${\"\n", "t.yaml:1:8: unterminated ${");
	tree_error("\xef\xbb\xbfx: ${1}\n", "t.yaml:1:4: invalid variable name");
	tree_error("x:\r\n  - ok\r\n  - ${}\r\n", "t.yaml:3:5: empty variable name");
	tree_error("- [a, b, \"${EV_PORT:-1\"]\n", "t.yaml:1:11: unterminated ${EV_PORT:-");
	tree_error("x: ${MCP_ARG_a}\n", "t.yaml:1:4: ${MCP_ARG_a}: mcpd sets MCP_ variables");
}
END_TEST

START_TEST(tree_expansion_bounded)
{
	/* Few bytes of YAML naming a large variable many times: the text as
	 * expanded is counted against CONFTREE_MAX_TEXT like any other. */
	size_t vlen = 1 << 20;
	char *v = malloc(vlen + 1);
	memset(v, 'v', vlen);
	v[vlen] = '\0';
	setenv("EV_MIB", v, 1);
	free(v);
	size_t n = (CONFTREE_MAX_TEXT / vlen) + 2;
	char *y = malloc(n * 16 + 16);
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(y + len, "- ${EV_MIB}\n");
	char err[1024];
	struct arena *a = arena_new(4096);
	ck_assert_ptr_null(tree(a, y, err, sizeof(err)));
	ck_assert_msg(strstr(err, "expanded, the text would be longer than") != NULL, "%s", err);
	char want[64];
	snprintf(want, sizeof(want), "t.yaml:%u:3: ", CONFTREE_MAX_TEXT / (1u << 20) + 1);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
	arena_free(a);
	/* One scalar: refused before it is built. */
	len = 0;
	y[len++] = '"';
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(y + len, "${EV_MIB}");
	sprintf(y + len, "\"\n");
	a = arena_new(4096);
	ck_assert_ptr_null(tree(a, y, err, sizeof(err)));
	ck_assert_msg(strstr(err, "expanded, the text would be longer than") != NULL, "%s", err);
	ck_assert_uint_lt(arena_used(a), 1 << 20);
	arena_free(a);
	free(y);
}
END_TEST

START_TEST(config_from_file)
{
	/* Through config_load, as mcpd -t and a reload read it. */
	set_env();
	char path[] = "/tmp/mcpd-envXXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	const char *y =
	    "listen:\n  - address: 127.0.0.1:${EV_PORT:-8080}\n"
	    "server: { name: \"${EV_HOST}\" }\n"
	    "tools:\n  - name: t\n    description: d\n"
	    "    command: [/bin/echo, \"${EV_HOST}\", \"$${EV_HOST}\"]\n";
	ck_assert_int_eq(write(fd, y, strlen(y)), (ssize_t)strlen(y));
	close(fd);
	struct errlist errs = { 0 };
	struct config *c = config_load(path, &errs);
	ck_assert_msg(c != NULL, "%s", errs.n ? errs.msgs[0] : "?");
	ck_assert_uint_eq(c->nlisten, 1);
	ck_assert_str_eq(c->server.name, "example.org");
	ck_assert_uint_eq(c->ntools, 1);
	ck_assert_str_eq(c->tools[0].cmd.argv[1], "example.org");
	ck_assert_str_eq(c->tools[0].cmd.argv[2], "${EV_HOST}");
	config_free(c);
	unsetenv("EV_PORT");
	unsetenv("EV_HOST");
	c = config_load(path, &errs);
	ck_assert_ptr_null(c);
	ck_assert_uint_eq(errs.n, 1);
	char want[256];
	snprintf(want, sizeof(want), "%s:3:18: environment variable EV_HOST is not set", path);
	ck_assert_msg(strncmp(errs.msgs[0], want, strlen(want)) == 0, "%s", errs.msgs[0]);
	errlist_free(&errs);
	unlink(path);
}
END_TEST

Suite *
envexpand_suite(void)
{
	Suite *s = suite_create("envexpand");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, expand_forms);
	tcase_add_test(tc, expand_literals);
	tcase_add_test(tc, expand_errors);
	tcase_add_test(tc, expand_bounded);
	tcase_add_test(tc, tree_values_not_keys);
	tcase_add_test(tc, tree_error_places);
	tcase_add_test(tc, tree_expansion_bounded);
	tcase_add_test(tc, config_from_file);
	suite_add_tcase(s, tc);
	return s;
}
