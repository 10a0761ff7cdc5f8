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
