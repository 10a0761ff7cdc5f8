/*
 * An example tools plugin, built against <mcpd/plugin.h> alone:
 *
 *   tools:
 *     - name: add
 *       description: Add two numbers in-process.
 *       input: { a: number, b: number }
 *       required: [a, b]
 *       plugin: examples.so:add
 *
 * Arguments arrive as a JSON object (already validated against the
 * tool's schema); a result goes back as a CallToolResult JSON object.
 * This example parses its two numbers by hand to stay dependency-free;
 * a real plugin would use a JSON library.
 */
#include <mcpd/plugin.h>

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
number_field(const char *json, const char *key, double *out)
{
	char pattern[64];
	snprintf(pattern, sizeof(pattern), "\"%s\":", key);
	const char *p = strstr(json, pattern);
	if (p == NULL)
		return -1;
	char *end;
	*out = strtod(p + strlen(pattern), &end);
	return end == p + strlen(pattern) ? -1 : 0;
}

MCPD_EXPORT mcpd_tool_fn add;

void
add(const struct mcpd_host *host, struct mcpd_tool_call *call, const char *arguments_json)
{
	double a, b;
	if (number_field(arguments_json, "a", &a) < 0 || number_field(arguments_json, "b", &b) < 0) {
		host->tool_text(call, "add needs numbers a and b", 1);
		return;
	}
	char result[128];
	snprintf(result, sizeof(result),
	    "{\"content\":[{\"type\":\"text\",\"text\":\"%.17g\"}],\"structuredContent\":{\"sum\":%.17g}}",
	    a + b, a + b);
	host->tool_result(call, result);
}

/* greet: "Hello, <name>!" — the benchmark's in-process tool. The name is
 * copied as JSON escapes it, so it is safe to put back in a string. */
MCPD_EXPORT mcpd_tool_fn greet;

void
greet(const struct mcpd_host *host, struct mcpd_tool_call *call, const char *arguments_json)
{
	const char *p = strstr(arguments_json, "\"name\":\"");
	char name[256] = "world";
	if (p != NULL) {
		p += 8;
		size_t n = 0;
		while (*p && *p != '"' && n < sizeof(name) - 2) {
			if (*p == '\\' && p[1] != '\0')
				name[n++] = *p++;
			name[n++] = *p++;
		}
		name[n] = '\0';
	}
	char result[512];
	snprintf(result, sizeof(result), "{\"content\":[{\"type\":\"text\",\"text\":\"Hello, %s!\"}]}", name);
	host->tool_result(call, result);
}

/* answer: answers with the text of its string argument "json" as its
 * result, as it is (mcpd checks what a plugin returns: the tests give it
 * results of every shape). Escapes \" \\ \/ \n \r \t are decoded, and
 * \uXXXX below U+0080. A progress notification goes first (when the
 * client asked for progress), so that the result follows on a stream.
 *
 *   - { name: answer, input: { json: string }, plugin: examples.so:answer }
 */
MCPD_EXPORT mcpd_tool_fn answer;

void
answer(const struct mcpd_host *host, struct mcpd_tool_call *call, const char *arguments_json)
{
	const char *p = strstr(arguments_json, "\"json\":\"");
	if (p == NULL) {
		host->tool_text(call, "answer needs a string json", 1);
		return;
	}
	p += 8;
	char *out = malloc(strlen(p) + 1), *o = out;
	if (out == NULL) {
		host->tool_text(call, "out of memory", 1);
		return;
	}
	for (; *p != '\0' && *p != '"'; p++) {
		if (*p != '\\' || p[1] == '\0') {
			*o++ = *p;
			continue;
		}
		p++;
		switch (*p) {
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u': {
			unsigned cp = 0;
			if (sscanf(p + 1, "%4x", &cp) == 1 && cp < 0x80 && cp > 0) {
				*o++ = (char)cp;
				p += 4;
			}
			break;
		}
		default: *o++ = *p;
		}
	}
	*o = '\0';
	host->tool_progress(call, 1, 1, NULL);
	host->tool_result(call, out);
	free(out);
}

/* confirm: asks the user (elicitation) before answering: under 2026-07-28
 * through MRTR, under the 2025 revisions as a request on the stream. */
struct confirm_call {
	const struct mcpd_host *host;
	struct mcpd_tool_call *call;
};

static void
confirmed(void *arg, const char *result_json, const char *error)
{
	struct confirm_call *cc = arg;
	if (error != NULL) {
		cc->host->tool_text(cc->call, error, 1);
	} else {
		char text[512];
		int yes = strstr(result_json, "\"action\":\"accept\"") != NULL;
		snprintf(text, sizeof(text), yes ? "Confirmed." : "Not confirmed.");
		cc->host->tool_text(cc->call, text, 0);
	}
	free(cc);
}

MCPD_EXPORT mcpd_tool_fn confirm;

void
confirm(const struct mcpd_host *host, struct mcpd_tool_call *call, const char *arguments_json)
{
	(void)arguments_json;
	if (host->size < offsetof(struct mcpd_host, tool_ask) + sizeof(host->tool_ask) || host->tool_ask == NULL) {
		host->tool_text(call, "this mcpd cannot ask the client", 1);
		return;
	}
	struct confirm_call *cc = malloc(sizeof(*cc));
	if (cc == NULL) {
		host->tool_text(call, "out of memory", 1);
		return;
	}
	cc->host = host;
	cc->call = call;
	host->tool_ask(call, "confirm", "elicitation/create",
	    "{\"message\":\"Proceed?\",\"requestedSchema\":{\"type\":\"object\",\"properties\":{}}}",
	    confirmed, cc);
}

/* count: counts to steps, one a tick (interval_ms), on the worker's
 * event loop: a long tool meant to run as a task (task: may). Each tick
 * is its progress, and its status (ABI 1.5) as tasks/get shows it. It
 * stops when cancelled, unless stubborn: then it counts on and finishes
 * all the same (mcpd drops that result: the task stays cancelled).
 *
 *   - name: count
 *     input: { steps: integer, interval_ms: integer, stubborn: boolean }
 *     plugin: examples.so:count
 *     task: may
 */
struct count_call {
	const struct mcpd_host *host;
	struct mcpd_tool_call *call;
	struct event *tick;
	long step, steps;
	int stubborn, cancelled;
};

static void
count_end(struct count_call *cc, const char *result_json, const char *text)
{
	if (result_json != NULL)
		cc->host->tool_result(cc->call, result_json);
	else
		cc->host->tool_text(cc->call, text, 1);
	event_free(cc->tick);
	free(cc);
}

static void
count_tick(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct count_call *cc = arg;
	cc->step++;
	if (cc->step >= cc->steps) {
		char result[200];
		snprintf(result, sizeof(result), "{\"content\":[{\"type\":\"text\",\"text\":\"counted to %ld%s\"}],"
		    "\"structuredContent\":{\"count\":%ld}}", cc->steps, cc->cancelled ? " (cancelled)" : "",
		    cc->steps);
		count_end(cc, result, NULL);
		return;
	}
	cc->host->tool_progress(cc->call, (double)cc->step, (double)cc->steps, NULL);
	if (cc->host->size >= offsetof(struct mcpd_host, tool_status) + sizeof(cc->host->tool_status) &&
	    cc->host->tool_status != NULL) {
		char status[64];
		snprintf(status, sizeof(status), "step %ld of %ld", cc->step, cc->steps);
		cc->host->tool_status(cc->call, status);
	}
}

static void
count_cancelled(void *arg)
{
	struct count_call *cc = arg;
	cc->cancelled = 1;
	if (!cc->stubborn)
		count_end(cc, NULL, "cancelled");
}

MCPD_EXPORT mcpd_tool_fn count;

void
count(const struct mcpd_host *host, struct mcpd_tool_call *call, const char *arguments_json)
{
	double steps = 5, interval = 100;
	if (number_field(arguments_json, "steps", &steps) == 0 && (steps < 1 || steps > 100000)) {
		host->tool_text(call, "steps must be 1 to 100000", 1);
		return;
	}
	if (number_field(arguments_json, "interval_ms", &interval) == 0 && (interval < 1 || interval > 60000)) {
		host->tool_text(call, "interval_ms must be 1 to 60000", 1);
		return;
	}
	struct count_call *cc = calloc(1, sizeof(*cc));
	if (cc == NULL) {
		host->tool_text(call, "out of memory", 1);
		return;
	}
	cc->host = host;
	cc->call = call;
	cc->steps = (long)steps;
	cc->stubborn = strstr(arguments_json, "\"stubborn\":true") != NULL;
	cc->tick = event_new(host->event_base(), -1, EV_PERSIST, count_tick, cc);
	struct timeval tv = { (time_t)((long)interval / 1000), (suseconds_t)((long)interval % 1000) * 1000 };
	if (cc->tick == NULL || event_add(cc->tick, &tv) < 0) {
		if (cc->tick != NULL)
			event_free(cc->tick);
		free(cc);
		host->tool_text(call, "no timer", 1);
		return;
	}
	host->tool_on_cancel(call, count_cancelled, cc);
}

static const struct mcpd_plugin descriptor = {
	.size = sizeof(struct mcpd_plugin),
	.abi_major = MCPD_PLUGIN_ABI_MAJOR,
	.abi_minor = MCPD_PLUGIN_ABI_MINOR,
	.kind = MCPD_PLUGIN_TOOLS,
	.name = "examples",
	.version = "1.0.0",
};

const struct mcpd_plugin *
mcpd_plugin_entry(void)
{
	return &descriptor;
}
