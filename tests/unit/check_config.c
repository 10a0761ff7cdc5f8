#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "arena.h"
#include "config.h"
#include "conftree.h"
#include "defs.h"
#include "schema.h"
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

/* The config must fail with exactly this one error. */
static void
expect_exact(const char *yaml, const char *msg)
{
	struct config *c = load(yaml);
	ck_assert_msg(c == NULL, "config unexpectedly valid:\n%s", yaml);
	ck_assert_msg(errs.n == 1, "expected 1 error, got %zu (first: %s)", errs.n,
	    errs.n ? errs.msgs[0] : "none");
	ck_assert_str_eq(errs.msgs[0], msg);
}

/* A tool's schemas are compiled when the config is read and freed with
 * it (the sanitizer build's leak check sees a config that keeps them). */
START_TEST(tool_schemas_compiled)
{
	for (int round = 0; round < 2; round++) {       /* a reload: a new config, new patterns */
		struct config *c = load("tools:\n"
		    "  - name: t\n    shell: x\n    output: json\n"
		    "    input_schema: { type: object, properties: { id: { type: string, pattern: '^[a-z]+$' } },"
		    " patternProperties: { '^x-': {} } }\n"
		    "    output_schema: { type: object, properties: { n: { pattern: '^[0-9]+$' } } }\n"
		    "  - name: u\n    shell: x\n");
		ck_assert_msg(c != NULL, "%s", errs.n ? errs.msgs[0] : "");
		ck_assert_uint_eq(c->ntools, 2);
		ck_assert_ptr_nonnull(c->tools[0].input_compiled);
		ck_assert_uint_eq(schema_compiled_patterns(c->tools[0].input_compiled), 2);
		ck_assert_uint_eq(schema_compiled_patterns(c->tools[0].output_compiled), 1);
		ck_assert_ptr_null(c->tools[1].output_compiled);
		cJSON *v = cJSON_Parse("{\"id\":\"AB\"}");
		char e[256];
		ck_assert_int_eq(schema_validate_compiled(c->tools[0].input_compiled, v, "arguments", e, sizeof(e)), -1);
		ck_assert(strstr(e, "does not match the pattern") != NULL);
		cJSON_Delete(v);
		config_free(c);
	}
	expect_error("tools:\n  - name: t\n    shell: x\n    input_schema: { type: object, "
	    "properties: { id: { pattern: '(x' } } }\n", "t.yaml:", "is not a regular expression");
}
END_TEST

/* persistent: true and its instances and concurrency: defaults, ranges,
 * and what they may not go with, each error at its line. */
START_TEST(persistent_tools)
{
	struct config *c = load("tools:\n"
	    "  - name: a\n    shell: x\n    persistent: true\n"
	    "  - name: b\n    shell: x\n    persistent: true\n    instances: 3\n    concurrency: 8\n"
	    "  - name: c\n    shell: x\n");
	ck_assert_msg(c != NULL, "%s", errs.n ? errs.msgs[0] : "");
	ck_assert_int_eq(c->tools[0].cmd.persistent, 1);
	ck_assert_uint_eq(c->tools[0].cmd.instances, 1);
	ck_assert_uint_eq(c->tools[0].cmd.concurrency, 1);
	ck_assert_uint_eq(c->tools[1].cmd.instances, 3);
	ck_assert_uint_eq(c->tools[1].cmd.concurrency, 8);
	ck_assert_int_eq(c->tools[2].cmd.persistent, 0);
	config_free(c);
	expect_error("tools:\n  - name: a\n    shell: x\n    concurrency: 2\n", "t.yaml:4:",
	    "instances and concurrency need persistent: true");
	expect_error("tools:\n  - name: a\n    shell: x\n    persistent: true\n    instances: 0\n", "t.yaml:5:",
	    "instances");
	expect_error("tools:\n  - name: a\n    shell: x\n    persistent: true\n    concurrency: 1025\n", "t.yaml:5:",
	    "concurrency");
	expect_error("tools:\n  - name: a\n    shell: x\n    persistent: yes please\n", "t.yaml:4:", "persistent");
	expect_error("resources:\n  - uri: x://a\n    name: a\n    shell: x\n    persistent: true\n", "t.yaml:5:",
	    "unknown key \"persistent\"");
}
END_TEST

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

/* limits.rate and a tool's max_concurrent: values, defaults, errors. */
START_TEST(rate_and_max_concurrent)
{
	struct config *c = load("limits: { rate: { sustained: 600/m } }\n");
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(c->limits.rate.per, 600);
	ck_assert_uint_eq(c->limits.rate.period_ms, 60000);
	ck_assert_uint_eq(c->limits.rate.burst, 600);          /* the default: N */
	ck_assert_int_eq(c->limits.rate.shared, 0);
	config_free(c);
	c = load("limits: { rate: { sustained: 5/s, burst: 12, shared: true } }\n"
	    "tools:\n  - name: a\n    shell: 'true'\n    max_concurrent: 3\n");
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(c->limits.rate.per, 5);
	ck_assert_uint_eq(c->limits.rate.period_ms, 1000);
	ck_assert_uint_eq(c->limits.rate.burst, 12);
	ck_assert_int_eq(c->limits.rate.shared, 1);
	ck_assert_uint_eq(c->tools[0].cmd.max_concurrent, 3);
	config_free(c);
	c = load("limits: { rate: { sustained: 1/h } }\n");
	ck_assert_uint_eq(c->limits.rate.period_ms, 3600000);
	config_free(c);
	c = load("");
	ck_assert_uint_eq(c->limits.rate.period_ms, 0);        /* no rate */
	config_free(c);
	expect_error("limits: { rate: { sustained: 5/x } }\n", "t.yaml:1:30:",
	    "limits.rate.sustained must be requests per second, minute or hour");
	expect_error("limits: { rate: { sustained: 2000000/s } }\n", "t.yaml:1:30:", "1 to 1000000");
	expect_error("limits: { rate: { sustained: /s } }\n", "t.yaml:1:30:", "such as 10/s");
	expect_error("limits: { rate: { sustained: 12345678901234567890123/s } }\n", "t.yaml:1:30:", "10/s");
	expect_error("limits: { rate: { burst: 3 } }\n", "t.yaml:1:17:", "limits.rate needs sustained");
	expect_error("limits: { rate: 5 }\n", "t.yaml:1:17:", "limits.rate");
	/* (x.so is not found either: a second error) */
	ck_assert_ptr_null(load("tools:\n  - name: a\n    plugin: x.so:f\n    max_concurrent: 2\n"));
	ck_assert_str_eq(errs.msgs[0], "t.yaml:4:21: tool \"a\": max_concurrent applies to command and shell "
	    "tools (a plugin tool runs in the worker)");
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

/* A key of the top level is named alone, as the operator wrote it. */
START_TEST(top_level_names)
{
	expect_exact("user: [a]\n", "t.yaml:1:7: user must be a scalar, not a list");
	expect_exact("pid_file: \"\"\n", "t.yaml:1:11: pid_file must not be empty");
	expect_exact("plugin_dir: {a: 1}\n", "t.yaml:1:13: plugin_dir must be a scalar, not a mapping");
	expect_exact("allowed_origins: x\n", "t.yaml:1:18: allowed_origins must be a list, not a scalar");
}
END_TEST

/* Each kind of key in the field tables, in each kind of section, with
 * its exact message. */
START_TEST(table_kinds)
{
	expect_exact("log:\n  format: xml\n", "t.yaml:2:11: log.format must be text or json, not \"xml\"");
	expect_exact("limits:\n  max_body: 1\n", "t.yaml:2:13: limits.max_body must be between 1024 and 1073741824 bytes");
	expect_exact("sse:\n  retry: 2h\n", "t.yaml:2:10: sse.retry must be between 0ms and 3600000ms");
	expect_exact("cache:\n  read_ttl: 1\n",
	    "t.yaml:2:13: cache.read_ttl: \"1\" is not a duration (use ms, s, m, h or d, e.g. 30s)");
	expect_exact("allowed_origins: [\"*\", [a]]\n",
	    "t.yaml:1:24: allowed_origins entry must be a scalar, not a list");
	expect_exact("allowed_origins: [x.com]\n",
	    "t.yaml:1:19: allowed_origins entry \"x.com\" must be an origin such as https://app.example.com, or *");
	expect_exact("listen:\n  - address: 127.0.0.1:80\n    tls: { cert: \"\", key: k }\n",
	    "t.yaml:3:18: listen.tls.cert must not be empty");
	expect_exact("tools:\n  - name: t\n    command: [/bin/echo]\n    output: xml\n",
	    "t.yaml:4:13: output must be text, json or content, not \"xml\"");
	expect_exact("tools:\n  - name: t\n    command: [/bin/echo]\n    timout: 1s\n",
	    "t.yaml:4:5: unknown key \"timout\" in a tool (did you mean \"timeout\"?)");
	expect_exact("resources:\n  - uri_template: \"x://{a}\"\n    name: r\n    shell: echo\n    timeout: 0s\n",
	    "t.yaml:5:14: a resource.timeout must be between 1ms and 86400000ms");
	expect_exact("prompts:\n  - name: p\n    shell: echo\n    max_output: 2GiB\n",
	    "t.yaml:4:17: a prompt.max_output must be between 1 and 1073741824 bytes");
	expect_exact("prompts:\n  - name: p\n    shell: echo\n    arguments: [{ name: a, required: maybe }]\n",
	    "t.yaml:4:38: a prompt argument.required must be true or false, not \"maybe\"");
	expect_exact("prompts:\n  - name: p\n    shell: echo\n    arguments: [{ name: a, nam: b }]\n",
	    "t.yaml:4:28: unknown key \"nam\" in a prompt argument (did you mean \"name\"?)");
	expect_exact("tools: { a: 1 }\n", "t.yaml:1:8: tools must be a list, not a mapping");
	expect_exact("tools:\n  - 1\n", "t.yaml:2:5: a tool must be a mapping, not a scalar");
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
	/* Octal digits only: strtol took a sign or blanks. */
	static const char *const modes[] = { "\"+0660\"", "\"-0\"", "\" 0660\"", "\"0x1b0\"", "\"0660 \"",
	    "\"0800\"", "\"01000\"", "\"\"", NULL };
	for (size_t i = 0; modes[i] != NULL; i++) {
		char yaml[256];
		snprintf(yaml, sizeof(yaml), "listen:\n  - address: unix:/run/x.sock\n    mode: %s\n", modes[i]);
		expect_error(yaml, "t.yaml:3:11:", "listen.mode must be octal permissions");
	}
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

/* The "billion laughs": each level a list of nine aliases of the level
 * before, so that levels lines name 10 * 9^levels nodes. */
static char *
laughs(int levels)
{
	size_t cap = 4096 + (size_t)levels * 128;
	char *y = malloc(cap);
	ck_assert_ptr_nonnull(y);
	int n = snprintf(y, cap, "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
	for (int i = 1; i <= levels; i++) {
		n += snprintf(y + n, cap - (size_t)n, "a%d: &a%d [", i, i);
		for (int j = 0; j < 9; j++)
			n += snprintf(y + n, cap - (size_t)n, "%s*a%d", j ? ", " : "", i - 1);
		n += snprintf(y + n, cap - (size_t)n, "]\n");
	}
	return y;
}

static struct cnode *
tree(struct arena *a, const char *yaml, char *err, size_t errlen)
{
	err[0] = '\0';
	return conftree_load_string(a, "t.yaml", yaml, strlen(yaml), err, errlen);
}

START_TEST(alias_expansion_bounded)
{
	char err[1024];
	/* Beyond the bound at once, whatever the depth: refused where the
	 * alias that crosses it stands (line 6: a5's third *a4). */
	static const int levels[] = { 5, 7, 10, 30 };
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		struct arena *a = arena_new(4096);
		char *y = laughs(levels[i]);
		struct cnode *root = tree(a, y, err, sizeof(err));
		ck_assert_msg(root == NULL, "%d levels of aliases loaded", levels[i]);
		ck_assert_msg(strstr(err, "t.yaml:6:20: alias *a4 makes the configuration larger than 250000 nodes") == err,
		    "%d levels: %s", levels[i], err);
		ck_assert_uint_lt(arena_used(a), 1 << 20);
		free(y);
		arena_free(a);
	}
	/* Under the bound (4 levels: 74 000 nodes as expanded) the tree loads,
	 * and an alias shares the node it names rather than copying it. */
	struct arena *a = arena_new(4096);
	char *y = laughs(4);
	struct cnode *root = tree(a, y, err, sizeof(err));
	ck_assert_msg(root != NULL, "%s", err);
	const struct cnode *a4 = cnode_get(root, "a4");
	ck_assert_ptr_nonnull(a4);
	ck_assert_uint_eq(a4->n, 9);
	ck_assert_ptr_eq(a4->items[0], a4->items[8]);
	ck_assert_ptr_eq(a4->items[0], cnode_get(root, "a3"));
	ck_assert_str_eq(a4->items[3]->items[2]->items[1]->items[0]->items[7]->str, "lol");
	ck_assert_uint_lt(arena_used(a), 1 << 20);
	free(y);
	arena_free(a);
	/* The same through config_load_string: one error, with its place. */
	y = laughs(8);
	struct config *c = load(y);
	ck_assert_ptr_null(c);
	ck_assert_uint_eq(errs.n, 1);
	ck_assert_msg(strstr(errs.msgs[0], "t.yaml:6:20: alias *a4") == errs.msgs[0], "%s", errs.msgs[0]);
	free(y);
}
END_TEST

START_TEST(alias_text_bounded)
{
	/* Few nodes but long text: a 1 MiB scalar named 100 times. */
	size_t big = 1 << 20;
	char *y = malloc(big + 4096);
	ck_assert_ptr_nonnull(y);
	int n = sprintf(y, "a: &big ");
	memset(y + n, 'x', big);
	n += (int)big;
	n += sprintf(y + n, "\nb: [");
	for (int i = 0; i < 100; i++)
		n += sprintf(y + n, "%s*big", i ? ", " : "");
	sprintf(y + n, "]\n");
	char err[1024];
	struct arena *a = arena_new(4096);
	ck_assert_ptr_null(tree(a, y, err, sizeof(err)));
	ck_assert_msg(strstr(err, "t.yaml:2:") == err && strstr(err, "alias *big makes the configuration's text larger than 67108864 bytes") != NULL, "%s", err);
	arena_free(a);
	free(y);
	/* Mappings named by aliases count their keys and values too. */
	a = arena_new(4096);
	ck_assert_ptr_null(tree(a,
	    "m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9}\n"
	    "m1: &m1 {a: *m0, b: *m0, c: *m0, d: *m0, e: *m0, f: *m0, g: *m0, h: *m0, i: *m0}\n"
	    "m2: &m2 {a: *m1, b: *m1, c: *m1, d: *m1, e: *m1, f: *m1, g: *m1, h: *m1, i: *m1}\n"
	    "m3: &m3 {a: *m2, b: *m2, c: *m2, d: *m2, e: *m2, f: *m2, g: *m2, h: *m2, i: *m2}\n"
	    "m4: &m4 {a: *m3, b: *m3, c: *m3, d: *m3, e: *m3, f: *m3, g: *m3, h: *m3, i: *m3}\n"
	    "m5: [*m4, *m4, *m4, *m4, *m4, *m4, *m4, *m4, *m4]\n", err, sizeof(err)));
	ck_assert_msg(strstr(err, "t.yaml:6:") == err && strstr(err, "alias *m4 makes the configuration larger") != NULL, "%s", err);
	arena_free(a);
}
END_TEST

START_TEST(alias_errors)
{
	char err[1024];
	struct arena *a = arena_new(4096);
	ck_assert_ptr_null(tree(a, "a: &x [1, *x]\n", err, sizeof(err)));
	ck_assert_str_eq(err, "t.yaml:1:11: alias *x is inside the node it names (a loop)");
	ck_assert_ptr_null(tree(a, "a: *nope\n", err, sizeof(err)));
	ck_assert_str_eq(err, "t.yaml:1:4: alias *nope names no anchor before it");
	ck_assert_ptr_null(tree(a, "a: &k [x]\n*k : 1\n", err, sizeof(err)));
	ck_assert_str_eq(err, "t.yaml:2:1: mapping keys must be scalars");
	/* A name given again names the newer node; a scalar alias may be a key. */
	struct cnode *root = tree(a, "a: &x one\nb: &x two\nc: *x\n*x : 3\n", err, sizeof(err));
	ck_assert_msg(root != NULL, "%s", err);
	ck_assert_str_eq(cnode_get(root, "c")->str, "two");
	ck_assert_str_eq(cnode_get(root, "two")->str, "3");
	/* An alias may not make the tree deeper than one written out: a list
	 * 40 deep, named 30 levels down. */
	char deep[512];
	snprintf(deep, sizeof(deep), "a: &d %.40s1%.40s\nb: %.30s*d%.30s\n",
	    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
	    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
	ck_assert_ptr_null(tree(a, deep, err, sizeof(err)));
	ck_assert_str_eq(err, "t.yaml:2:34: alias *d makes the nesting deeper than 64 levels");
	snprintf(deep, sizeof(deep), "a: &d %.40s1%.40s\nb: %.22s*d%.22s\n",
	    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
	    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
	ck_assert_msg(tree(a, deep, err, sizeof(err)) != NULL, "%s", err);
	ck_assert_ptr_null(tree(a, "a: &x one\nb: &x two\n*x : 3\nc: 4\ntwo: 5\n", err, sizeof(err)));
	ck_assert_str_eq(err, "t.yaml:5:1: duplicate key \"two\" (first at line 2)");
	arena_free(a);
}
END_TEST

START_TEST(big_files_and_collections)
{
	char err[1024];
	/* More YAML than a configuration may hold: refused before parsing. */
	size_t len = CONFTREE_MAX_FILE + 1;
	char *y = malloc(len + 1);
	ck_assert_ptr_nonnull(y);
	memcpy(y, "a: ", 3);
	memset(y + 3, 'x', len - 3);
	y[len] = '\0';
	struct arena *a = arena_new(4096);
	ck_assert_ptr_null(conftree_load_string(a, "t.yaml", y, len, err, sizeof(err)));
	ck_assert_str_eq(err, "t.yaml: larger than 67108864 bytes");
	arena_free(a);
	free(y);
	/* Too many nodes without any alias. */
	y = malloc(4 * 1024 * 1024);
	ck_assert_ptr_nonnull(y);
	len = (size_t)sprintf(y, "a: [");
	for (int i = 0; i < 260000; i++)
		len += (size_t)sprintf(y + len, "%s1", i ? "," : "");
	sprintf(y + len, "]\n");
	a = arena_new(4096);
	ck_assert_ptr_null(tree(a, y, err, sizeof(err)));
	ck_assert_msg(strstr(err, "t.yaml:1:") == err && strstr(err, "more than 250000 nodes") != NULL, "%s", err);
	arena_free(a);
	/* A mapping of many keys, one given twice: found in n log n (the
	 * pairwise check took minutes here). */
	len = 0;
	for (int i = 0; i < 100000; i++)
		len += (size_t)sprintf(y + len, "k%d: v\n", i);
	sprintf(y + len, "k5: again\n");
	a = arena_new(4096);
	ck_assert_ptr_null(tree(a, y, err, sizeof(err)));
	ck_assert_str_eq(err, "t.yaml:100001:1: duplicate key \"k5\" (first at line 6)");
	arena_free(a);
	/* Many tools, one name twice; many required inputs; a long scope
	 * list (joined in one pass, not copied once per scope). */
	len = (size_t)sprintf(y, "tools:\n");
	for (int i = 0; i < 30000; i++)
		len += (size_t)sprintf(y + len, "  - {name: t%d, shell: x}\n", i);
	len += (size_t)sprintf(y + len, "  - {name: t7, shell: x}\n");
	expect_error(y, "t.yaml:30002:12:", "tool \"t7\" declared twice (first at line 9)");
	len = (size_t)sprintf(y, "tools:\n  - name: t\n    shell: x\n    input:\n");
	for (int i = 0; i < 40000; i++)
		len += (size_t)sprintf(y + len, "      p%d: string\n", i);
	len += (size_t)sprintf(y + len, "    required: [");
	for (int i = 0; i < 40000; i++)
		len += (size_t)sprintf(y + len, "p%d, ", i);
	sprintf(y + len, "nope]\n");
	expect_error(y, "t.yaml:40005:", "required \"nope\" is not an input property");
	len = (size_t)sprintf(y, "tools:\n  - name: t\n    shell: x\n    scopes: [");
	for (int i = 0; i < 100000; i++)
		len += (size_t)sprintf(y + len, "%sscope-%d", i ? ", " : "", i);
	sprintf(y + len, "]\n");
	expect_error(y, "t.yaml:2:", "tool \"t\" has scopes: but there is no auth");
	free(y);
}
END_TEST

START_TEST(many_errors_kept_short)
{
	char *y = malloc(1 << 20);
	ck_assert_ptr_nonnull(y);
	size_t len = 0;
	for (int i = 0; i < 5000; i++)
		len += (size_t)sprintf(y + len, "k%d: v\n", i);
	struct config *c = load(y);
	ck_assert_ptr_null(c);
	ck_assert_uint_eq(errs.n, 5000);
	ck_assert_uint_eq(errs.kept, ERRLIST_KEEP);
	ck_assert_str_eq(errs.msgs[ERRLIST_KEEP - 1], "t.yaml:200:1: unknown key \"k199\" in the top level");
	free(y);
}
END_TEST

START_TEST(collection_caps)
{
	char *y = malloc(1 << 20);
	ck_assert_ptr_nonnull(y);
	size_t len = (size_t)sprintf(y, "listen:\n");
	for (int i = 0; i < 300; i++)
		len += (size_t)sprintf(y + len, "  - 127.0.0.1:%d\n", 1000 + i);
	expect_error(y, "t.yaml:2:3:", "listen has 300 addresses; at most 256");
	len = (size_t)sprintf(y, "tools:\n  - name: t\n    shell: x\n    input_schema:\n      type: object\n      properties:\n");
	for (int i = 0; i < 65; i++)
		len += (size_t)sprintf(y + len, "        p%d: { type: string, x-mcp-header: P%d }\n", i, i);
	expect_error(y, "t.yaml:5:", "tool \"t\": more than 64 x-mcp-header properties");
	/* Prompt media are read into the config: 16 MiB a file, 64 in all. */
	char path[] = "/tmp/mcpd-check-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 15 << 20), 0);
	close(fd);
	len = (size_t)sprintf(y, "prompts:\n  - name: p\n    messages:\n");
	for (int i = 0; i < 5; i++)
		len += (size_t)sprintf(y + len, "      - { image: %s, mime_type: image/png }\n", path);
	expect_error(y, "t.yaml:8:18:", "the prompts' files come to more than 64 MiB in all");
	fd = open(path, O_WRONLY);
	ck_assert_int_eq(ftruncate(fd, (16 << 20) + 1), 0);
	close(fd);
	sprintf(y, "prompts:\n  - name: p\n    messages:\n      - { image: %s, mime_type: image/png }\n", path);
	expect_error(y, "t.yaml:4:18:", "is larger than 16 MiB");
	unlink(path);
	free(y);
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
	tcase_set_timeout(tc, 20);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, defaults);
	tcase_add_test(tc, full_file);
	tcase_add_test(tc, unknown_keys);
	tcase_add_test(tc, wrong_types);
	tcase_add_test(tc, top_level_names);
	tcase_add_test(tc, table_kinds);
	tcase_add_test(tc, bad_durations_and_sizes);
	tcase_add_test(tc, bad_addresses);
	tcase_add_test(tc, yaml_syntax);
	tcase_add_test(tc, identity);
	tcase_add_test(tc, every_error_reported);
	tcase_add_test(tc, missing_file);
	tcase_add_test(tc, header_param_names);
	tcase_add_test(tc, persistent_tools);
	tcase_add_test(tc, alias_expansion_bounded);
	tcase_add_test(tc, alias_text_bounded);
	tcase_add_test(tc, alias_errors);
	tcase_add_test(tc, big_files_and_collections);
	tcase_add_test(tc, many_errors_kept_short);
	tcase_add_test(tc, collection_caps);
	tcase_add_test(tc, tool_schemas_compiled);
	tcase_add_test(tc, rate_and_max_concurrent);
	suite_add_tcase(s, tc);
	return s;
}
