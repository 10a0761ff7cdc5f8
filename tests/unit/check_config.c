#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "config.h"
#include "suites.h"
#include "util.h"

static struct errlist errs;

static struct config *
load(const char *yaml)
{
	errlist_free(&errs);
	return config_load_string("t.yaml", yaml, &errs);
}

/* The config must fail with exactly one error that starts with where. */
static void
expect_error(const char *yaml, const char *where, const char *text)
{
	struct config *c = load(yaml);
	ck_assert_msg(c == NULL, "config unexpectedly valid:\n%s", yaml);
	ck_assert_msg(errs.n == 1, "expected 1 error, got %zu (first: %s)", errs.n,
	    errs.n ? errs.msgs[0] : "none");
	ck_assert_msg(strncmp(errs.msgs[0], where, strlen(where)) == 0,
	    "error \"%s\" does not start with \"%s\"", errs.msgs[0], where);
	ck_assert_msg(strstr(errs.msgs[0], text) != NULL,
	    "error \"%s\" does not mention \"%s\"", errs.msgs[0], text);
}

START_TEST(defaults)
{
	struct config *c = load("");
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(c->nlisten, 1);
	ck_assert_str_eq(c->listen[0].address, "127.0.0.1:8080");
	ck_assert_int_eq(c->listen[0].family, AF_INET);
	ck_assert_str_eq(c->endpoint, "/mcp");
	ck_assert_int_eq(c->workers_auto, 1);
	ck_assert_uint_ge(c->workers, 1);
	ck_assert_uint_eq(c->limits.max_body, 4 * 1024 * 1024);
	ck_assert_uint_eq(c->limits.shutdown_timeout_ms, 30000);
	ck_assert_uint_eq(c->limits.session_idle_timeout_ms, 3600000);
	ck_assert_int_eq(c->log.level, LOG_INFO);
	ck_assert_str_eq(c->log.file, "stderr");
	ck_assert_str_eq(c->server.name, "mcpd");
	ck_assert_int_eq(c->switch_user, 0);
	config_free(c);
}
END_TEST

START_TEST(full_file)
{
	struct config *c = load(
	    "server:\n"
	    "  name: build-farm\n"
	    "  version: 2.0.1\n"
	    "  instructions: Tools for the build farm.\n"
	    "listen:\n"
	    "  - address: 127.0.0.1:9000\n"
	    "  - address: \"[::1]:9001\"\n"
	    "    backlog: 128\n"
	    "  - address: unix:/run/mcpd/mcpd.sock\n"
	    "    mode: \"0660\"\n"
	    "  - 0.0.0.0:9002\n"
	    "endpoint: /api/mcp\n"
	    "workers: 3\n"
	    "user: root\n"
	    "group: root\n"
	    "pid_file: /run/mcpd/mcpd.pid\n"
	    "log: { level: debug, file: /var/log/mcpd.log, format: json }\n"
	    "allowed_origins: [\"http://localhost:*\", \"https://app.example.com\"]\n"
	    "limits:\n"
	    "  max_body: 1MiB\n"
	    "  max_header: 8KiB\n"
	    "  max_connections: 500\n"
	    "  header_timeout: 10s\n"
	    "  body_timeout: 20s\n"
	    "  idle_timeout: 2m\n"
	    "  send_timeout: 1m\n"
	    "  session_idle_timeout: 1h\n"
	    "  shutdown_timeout: 1500ms\n");
	ck_assert_msg(c != NULL, "%s", errs.n ? errs.msgs[0] : "");
	ck_assert_str_eq(c->server.name, "build-farm");
	ck_assert_str_eq(c->server.version, "2.0.1");
	ck_assert_str_eq(c->server.instructions, "Tools for the build farm.");
	ck_assert_uint_eq(c->nlisten, 4);
	ck_assert_int_eq(c->listen[0].family, AF_INET);
	ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&c->listen[0].sa)->sin_port), 9000);
	ck_assert_int_eq(c->listen[1].family, AF_INET6);
	ck_assert_uint_eq(c->listen[1].backlog, 128);
	ck_assert_int_eq(c->listen[2].family, AF_UNIX);
	ck_assert_str_eq(((struct sockaddr_un *)&c->listen[2].sa)->sun_path, "/run/mcpd/mcpd.sock");
	ck_assert_int_eq(c->listen[2].mode, 0660);
	ck_assert_int_eq(c->listen[3].family, AF_INET);
	ck_assert_int_eq(c->listen[3].line, 11);
	ck_assert_str_eq(c->endpoint, "/api/mcp");
	ck_assert_uint_eq(c->workers, 3);
	ck_assert_int_eq(c->workers_auto, 0);
	ck_assert_int_eq(c->switch_user, 1);
	ck_assert_int_eq(c->uid, 0);
	ck_assert_str_eq(c->pid_file, "/run/mcpd/mcpd.pid");
	ck_assert_int_eq(c->log.level, LOG_DEBUG);
	ck_assert_int_eq(c->log.format, LOG_JSON);
	ck_assert_str_eq(c->log.file, "/var/log/mcpd.log");
	ck_assert_uint_eq(c->norigins, 2);
	ck_assert_str_eq(c->allowed_origins[1], "https://app.example.com");
	ck_assert_uint_eq(c->limits.max_body, 1024 * 1024);
	ck_assert_uint_eq(c->limits.max_header, 8192);
	ck_assert_uint_eq(c->limits.max_connections, 500);
	ck_assert_uint_eq(c->limits.header_timeout_ms, 10000);
	ck_assert_uint_eq(c->limits.idle_timeout_ms, 120000);
	ck_assert_uint_eq(c->limits.shutdown_timeout_ms, 1500);
	config_free(c);
}
END_TEST

START_TEST(unknown_keys)
{
	expect_error("listen: [127.0.0.1:80]\nwokers: 2\n", "t.yaml:2:1:",
	    "unknown key \"wokers\" in the top level (did you mean \"workers\"?)");
	expect_error("limits:\n  max_bodyy: 1MiB\n", "t.yaml:2:3:",
	    "unknown key \"max_bodyy\" in limits (did you mean \"max_body\"?)");
	expect_error("log:\n  colour: red\n", "t.yaml:2:3:", "unknown key \"colour\" in log");
	expect_error("listen:\n  - address: 127.0.0.1:80\n    tls: { cert: a, key: b, pass: c }\n",
	    "t.yaml:3:29:", "unknown key \"pass\" in listen.tls");
}
END_TEST

START_TEST(wrong_types)
{
	expect_error("listen: 127.0.0.1:80\n", "t.yaml:1:9:", "listen must be a list, not a scalar");
	expect_error("limits: [1, 2]\n", "t.yaml:1:9:", "limits must be a mapping, not a list");
	expect_error("server:\n  name: [a, b]\n", "t.yaml:2:9:", "server.name must be a scalar");
	expect_error("log:\n  level: loud\n", "t.yaml:2:10:", "log.level must be error, warn");
	expect_error("log:\n  format: xml\n", "t.yaml:2:11:", "log.format must be text or json");
	expect_error("workers: many\n", "t.yaml:1:10:", "must be a whole number");
	expect_error("workers: -2\n", "t.yaml:1:10:", "must be a whole number");
	expect_error("workers: 0\n", "t.yaml:1:10:", "between 1 and 512");
	expect_error("limits:\n  max_connections: 1.5\n", "t.yaml:2:20:", "whole number");
	expect_error("pid_file:\n", "t.yaml:1:10:", "pid_file must be a scalar, not empty");
	expect_error("endpoint: mcp\n", "t.yaml:1:11:", "endpoint must be a path starting with /");
	expect_error("allowed_origins: [example.com]\n", "t.yaml:1:19:", "must be an origin");
}
END_TEST

START_TEST(bad_durations_and_sizes)
{
	expect_error("limits:\n  shutdown_timeout: 30\n", "t.yaml:2:21:",
	    "\"30\" is not a duration (use ms, s, m, h or d");
	expect_error("limits:\n  idle_timeout: soon\n", "t.yaml:2:17:", "is not a duration");
	expect_error("limits:\n  max_body: 4MB\n", "t.yaml:2:13:", "\"4MB\" is not a size");
	expect_error("limits:\n  max_body: 2GiB\n", "t.yaml:2:13:", "must be between 1024 and 1073741824 bytes");
	expect_error("limits:\n  header_timeout: 10ms\n", "t.yaml:2:19:", "must be between 100ms");
}
END_TEST

START_TEST(bad_addresses)
{
	expect_error("listen: [\"127.0.0.1\"]\n", "t.yaml:1:10:", "expected host:port");
	expect_error("listen: [\"127.0.0.1:0\"]\n", "t.yaml:1:10:", "port must be a number from 1 to 65535");
	expect_error("listen: [\"127.0.0.1:99999\"]\n", "t.yaml:1:10:", "port must be");
	expect_error("listen: [\"::1:80\"]\n", "t.yaml:1:10:", "write IPv6 addresses in brackets");
	expect_error("listen: [\"example.com:80\"]\n", "t.yaml:1:10:", "not a numeric IP address");
	expect_error("listen: [\"unix:relative.sock\"]\n", "t.yaml:1:10:", "must be absolute");
	expect_error("listen: []\n", "t.yaml:1:9:", "at least one address");
	expect_error("listen:\n  - backlog: 5\n", "t.yaml:2:5:", "listen entry needs an address");
	expect_error("listen:\n  - 127.0.0.1:80\n  - address: 127.0.0.1:80\n", "t.yaml:3:14:",
	    "given twice (first at line 2)");
	expect_error("listen:\n  - address: 127.0.0.1:80\n    tls: { cert: /x.pem }\n", "t.yaml:3:10:",
	    "listen.tls needs both cert and key");
	expect_error("listen:\n  - address: 127.0.0.1:80\n    mode: \"0600\"\n", "t.yaml:3:11:",
	    "applies to unix sockets only");
}
END_TEST

START_TEST(yaml_syntax)
{
	expect_error("listen: [127.0.0.1:80\n", "t.yaml:2:1:", "did not find expected");
	expect_error("a: 1\na: 2\n", "t.yaml:2:1:", "duplicate key \"a\" (first at line 1)");
	expect_error("workers: 1\n---\nworkers: 2\n", "t.yaml:3:1:", "only one YAML document");
	expect_error("- 1\n- 2\n", "t.yaml:1:1:", "the top level must be a mapping");
}
END_TEST

START_TEST(identity)
{
	expect_error("user: no-such-user-mcpd\n", "t.yaml:1:7:", "user \"no-such-user-mcpd\" does not exist");
	expect_error("user: root\ngroup: no-such-group-mcpd\n", "t.yaml:2:8:", "does not exist");
	expect_error("group: root\n", "t.yaml:1:8:", "group needs user as well");
}
END_TEST

START_TEST(every_error_reported)
{
	struct config *c = load(
	    "wokers: 2\n"
	    "limits:\n"
	    "  max_body: huge\n"
	    "  shutdown_timeout: 5\n"
	    "listen: [\"nope\"]\n");
	ck_assert_ptr_null(c);
	ck_assert_uint_eq(errs.n, 4);
	ck_assert(strncmp(errs.msgs[0], "t.yaml:1:1:", 11) == 0);
	ck_assert(strncmp(errs.msgs[1], "t.yaml:3:13:", 12) == 0);
	ck_assert(strncmp(errs.msgs[2], "t.yaml:4:21:", 12) == 0);
	ck_assert(strncmp(errs.msgs[3], "t.yaml:5:10:", 12) == 0);
}
END_TEST

/* Mcp-Param-<name> is looked up whole: the name is a token of bounded
 * length, or the config is refused. */
START_TEST(header_param_names)
{
	char yaml[1024], name[200];
#define tmpl "tools:\n  - name: t\n    description: d\n" \
	    "    input: { a: { type: string, x-mcp-header: \"%s\" } }\n    command: [/bin/true]\n"
	snprintf(yaml, sizeof(yaml), tmpl, "Who");
	struct config *c = load(yaml);
	ck_assert_msg(c != NULL, "%s", errs.n ? errs.msgs[0] : "");
	config_free(c);
	memset(name, 'n', 128);
	name[128] = '\0';
	snprintf(yaml, sizeof(yaml), tmpl, name);
	c = load(yaml);
	ck_assert_msg(c != NULL, "%s", errs.n ? errs.msgs[0] : "");
	config_free(c);
	name[128] = 'n';
	name[129] = '\0';
	snprintf(yaml, sizeof(yaml), tmpl, name);
	expect_error(yaml, "t.yaml:", "must be a header name");
	snprintf(yaml, sizeof(yaml), tmpl, "a(b)");
	expect_error(yaml, "t.yaml:", "must be a header name");
	snprintf(yaml, sizeof(yaml), tmpl, "a/b");
	expect_error(yaml, "t.yaml:", "must be a header name");
#undef tmpl
}
END_TEST

START_TEST(missing_file)
{
	errlist_free(&errs);
	struct config *c = config_load("/nonexistent/mcpd.yaml", &errs);
	ck_assert_ptr_null(c);
	ck_assert_uint_eq(errs.n, 1);
	ck_assert_str_eq(errs.msgs[0], "/nonexistent/mcpd.yaml: No such file or directory");
}
END_TEST

static void
teardown(void)
{
	errlist_free(&errs);
}

Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("parse");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, defaults);
	tcase_add_test(tc, full_file);
	tcase_add_test(tc, unknown_keys);
	tcase_add_test(tc, wrong_types);
	tcase_add_test(tc, bad_durations_and_sizes);
	tcase_add_test(tc, bad_addresses);
	tcase_add_test(tc, yaml_syntax);
	tcase_add_test(tc, identity);
	tcase_add_test(tc, every_error_reported);
	tcase_add_test(tc, missing_file);
	tcase_add_test(tc, header_param_names);
	suite_add_tcase(s, tc);
	return s;
}
