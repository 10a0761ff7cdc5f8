/* core/metrics.c: slots summed, a dead worker's slot folded so that
 * counters never go back, histograms cumulative, labels bounded and
 * escaped. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "defs.h"
#include "metered.h"
#include "metrics.h"
#include "plugin.h"
#include "suites.h"

static struct tool_def tools[70];
static char names[70][32];

static struct config *
cfg_with_tools(size_t n)
{
	static struct config c;
	memset(&c, 0, sizeof(c));
	memset(tools, 0, sizeof(tools));
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "t%zu", i);
		tools[i].name = names[i];
	}
	c.tools = tools;
	c.ntools = n;
	c.storage.name = "lmdb";
	c.transport.name = "local";
	return &c;
}

static char *
scrape(const struct config *c, int om)
{
	size_t len;
	char *s = metrics_render(c, om, "2025-11-25", &len);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(strlen(s), len);
	return s;
}

static int
has(const char *text, const char *line)
{
	char want[512];
	snprintf(want, sizeof(want), "\n%s\n", line);
	return strstr(text, want) != NULL;
}

START_TEST(off_without_segment)
{
	/* Hooks are no-ops and nothing renders before metrics_init. */
	metrics_tool(0, MXT_OK, 1);
	metrics_http("/mcp", 200);
	size_t len;
	ck_assert_ptr_null(metrics_render(cfg_with_tools(1), 0, "", &len));
	ck_assert_int_eq(metrics_enabled(), 0);
}
END_TEST

START_TEST(slots_summed_and_folded)
{
	char err[128];
	ck_assert_int_eq(metrics_init(4, err, sizeof(err)), 0);
	struct config *c = cfg_with_tools(2);
	metrics_config(c);
	ck_assert_uint_eq(c->tools[0].mx, 0);
	ck_assert_uint_eq(c->tools[1].mx, 1);
	metrics_slot_begin(0);
	metrics_slot_begin(1);
	metrics_attach(0);
	for (int i = 0; i < 3; i++)
		metrics_tool(c->tools[0].mx, MXT_OK, 500);
	metrics_process(1);
	metrics_attach(1);
	metrics_tool(c->tools[0].mx, MXT_OK, 2000);
	metrics_tool(c->tools[1].mx, MXT_TIMEOUT, 70000000);
	metrics_process(1);
	metrics_process(1);
	metrics_process(-1);
	char *s = scrape(c, 0);
	ck_assert(has(s, "mcpd_tool_calls_total{tool=\"t0\",outcome=\"ok\"} 4"));
	ck_assert(has(s, "mcpd_tool_calls_total{tool=\"t1\",outcome=\"timeout\"} 1"));
	ck_assert(has(s, "mcpd_tool_call_duration_seconds_bucket{tool=\"t0\",le=\"0.001\"} 3"));
	ck_assert(has(s, "mcpd_tool_call_duration_seconds_bucket{tool=\"t0\",le=\"0.0025\"} 4"));
	ck_assert(has(s, "mcpd_tool_call_duration_seconds_bucket{tool=\"t1\",le=\"60.0\"} 0"));
	ck_assert(has(s, "mcpd_tool_call_duration_seconds_bucket{tool=\"t1\",le=\"+Inf\"} 1"));
	ck_assert(has(s, "mcpd_tool_call_duration_seconds_sum{tool=\"t0\"} 0.003500"));
	ck_assert(has(s, "mcpd_processes_spawned_total 3"));
	ck_assert(has(s, "mcpd_processes_running 2"));
	ck_assert(has(s, "mcpd_workers 2"));
	free(s);
	/* Worker 1 dies: its counters stay, its gauges go; a new worker in
	 * the slot starts from zero and adds to them. */
	metrics_slot_end(1);
	metrics_worker_died(MXD_SIGNAL);
	s = scrape(c, 0);
	ck_assert(has(s, "mcpd_tool_calls_total{tool=\"t0\",outcome=\"ok\"} 4"));
	ck_assert(has(s, "mcpd_processes_running 1"));
	ck_assert(has(s, "mcpd_workers 1"));
	ck_assert(has(s, "mcpd_worker_deaths_total{cause=\"signal\"} 1"));
	free(s);
	metrics_slot_begin(1);
	metrics_attach(1);
	metrics_tool(c->tools[0].mx, MXT_OK, 10);
	s = scrape(c, 0);
	ck_assert(has(s, "mcpd_tool_calls_total{tool=\"t0\",outcome=\"ok\"} 5"));
	ck_assert(has(s, "mcpd_tool_call_duration_seconds_count{tool=\"t0\"} 5"));
	free(s);
	/* A reload keeps the labels of tools it keeps, adds new ones. */
	struct config *c2 = cfg_with_tools(3);
	metrics_config(c2);
	ck_assert_uint_eq(c2->tools[2].mx, 2);
	metrics_reload(1);
	metrics_reload(0);
	s = scrape(c2, 0);
	ck_assert(has(s, "mcpd_tool_calls_total{tool=\"t0\",outcome=\"ok\"} 5"));
	ck_assert(has(s, "mcpd_tool_calls_total{tool=\"t2\",outcome=\"ok\"} 0"));
	ck_assert(has(s, "mcpd_reloads_total{result=\"ok\"} 1"));
	ck_assert(has(s, "mcpd_reloads_total{result=\"failed\"} 1"));
	free(s);
}
END_TEST

START_TEST(labels_bounded_and_escaped)
{
	char err[128];
	ck_assert_int_eq(metrics_init(2, err, sizeof(err)), 0);
	struct config *c = cfg_with_tools(66);
	strcpy(names[0], "a\"b\\c");
	metrics_config(c);
	ck_assert_uint_eq(c->tools[63].mx, 63);
	ck_assert_uint_eq(c->tools[64].mx, MX_TOOLS);    /* past the cap: "other" */
	ck_assert_uint_eq(c->tools[65].mx, MX_TOOLS);
	metrics_slot_begin(0);
	metrics_attach(0);
	metrics_tool(c->tools[65].mx, MXT_KILLED, 1);
	metrics_tool(c->tools[0].mx, MXT_CANCELLED, 1);
	metrics_mcp("tools/call", 1, 0);
	metrics_mcp("x/made-up", 1, -32601);
	metrics_mcp("ping", 1, -32001);
	metrics_mcp("ping", 0, 0);
	metrics_http("/mcp", 202);
	metrics_http("/nowhere", 404);
	metrics_http("/healthz", 200);
	metrics_http("/x", 99);
	/* In two steps (the HTTP server keeps a route's class): as one. */
	metrics_http_route(metrics_route("/readyz"), 204);
	metrics_http_route(metrics_route("/oauth/token"), 400);
	metrics_http_route(metrics_route(NULL), 302);
	metrics_http_route(-1, 200);            /* out of range: other */
	metrics_http_route(1000, 200);
	ck_assert_int_eq(metrics_route("/healthz"), metrics_route("/readyz"));
	ck_assert_int_ne(metrics_route("/mcp"), metrics_route("/mcpx"));
	ck_assert_int_eq(metrics_route("/mcpx"), metrics_route(NULL));
	char *s = scrape(c, 0);
	ck_assert(has(s, "mcpd_http_requests_total{route=\"health\",code=\"2xx\"} 2"));
	ck_assert(has(s, "mcpd_http_requests_total{route=\"oauth\",code=\"4xx\"} 1"));
	ck_assert(has(s, "mcpd_http_requests_total{route=\"other\",code=\"3xx\"} 1"));
	ck_assert(has(s, "mcpd_http_requests_total{route=\"other\",code=\"2xx\"} 2"));
	ck_assert(has(s, "mcpd_tool_calls_total{tool=\"other\",outcome=\"killed\"} 1"));
	ck_assert(has(s, "mcpd_tool_calls_total{tool=\"a\\\"b\\\\c\",outcome=\"cancelled\"} 1"));
	ck_assert(has(s, "mcpd_mcp_requests_total{method=\"tools/call\",outcome=\"result\"} 1"));
	ck_assert(has(s, "mcpd_mcp_requests_total{method=\"other\",outcome=\"method_not_found\"} 1"));
	ck_assert(has(s, "mcpd_mcp_requests_total{method=\"ping\",outcome=\"server_error\"} 1"));
	ck_assert(has(s, "mcpd_mcp_requests_total{method=\"ping\",outcome=\"no_response\"} 1"));
	ck_assert(strstr(s, "made-up") == NULL);
	ck_assert(has(s, "mcpd_http_requests_total{route=\"mcp\",code=\"2xx\"} 1"));
	ck_assert(has(s, "mcpd_http_requests_total{route=\"other\",code=\"4xx\"} 1"));
	ck_assert(has(s, "mcpd_http_requests_total{route=\"other\",code=\"5xx\"} 1"));
	ck_assert(has(s, "# TYPE mcpd_tool_calls_total counter"));
	ck_assert(strstr(s, "# EOF") == NULL);
	free(s);
	s = scrape(c, 1);
	ck_assert(has(s, "# TYPE mcpd_tool_calls counter"));
	ck_assert(has(s, "# TYPE mcpd_build info"));
	ck_assert(has(s, "mcpd_tool_calls_total{tool=\"other\",outcome=\"killed\"} 1"));
	size_t n = strlen(s);
	ck_assert(n > 6 && strcmp(s + n - 6, "# EOF\n") == 0);
	free(s);
}
END_TEST

/* A storage that keeps what it was asked, as one with a call in flight. */
static mcpd_value_cb *held_cb;
static void *held_arg;
static int answers;

static void
holding_get(void *inst, const char *key, mcpd_value_cb *cb, void *arg)
{
	(void)inst;
	(void)key;
	held_cb = cb;
	held_arg = arg;
}

static void
answered(void *arg, int status, const void *value, size_t len, const char *err)
{
	(void)arg;
	(void)status;
	(void)value;
	(void)len;
	(void)err;
	answers++;
}

/* A plugin that detaches drops its calls in flight without callbacks
 * (the worker is stopping): the records metered.c made for them are
 * freed by metered_forget (a LeakSanitizer report under ASan at a
 * worker's exit before, in test_gcp_credentials). */
START_TEST(records_of_dropped_calls_freed)
{
	static struct mcpd_storage_ops real;
	real.get = holding_get;
	struct backends b = { &real, NULL, NULL, NULL };
	metered_backends(&b);
	ck_assert_ptr_ne(b.storage, &real);
	b.storage->get(NULL, "k", answered, NULL);
	ck_assert_uint_eq(metered_pending(), 1);
	held_cb(held_arg, MCPD_OK, "v", 1, NULL);       /* answered: its record goes */
	ck_assert_int_eq(answers, 1);
	ck_assert_uint_eq(metered_pending(), 0);
	b.storage->get(NULL, "k", answered, NULL);
	b.storage->get(NULL, "k2", answered, NULL);
	ck_assert_uint_eq(metered_pending(), 2);
	metered_forget();                               /* dropped by the plugin */
	ck_assert_uint_eq(metered_pending(), 0);
	ck_assert_int_eq(answers, 1);
}
END_TEST

Suite *
metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, off_without_segment);
	tcase_add_test(tc, slots_summed_and_folded);
	tcase_add_test(tc, labels_bounded_and_escaped);
	tcase_add_test(tc, records_of_dropped_calls_freed);
	suite_add_tcase(s, tc);
	return s;
}
