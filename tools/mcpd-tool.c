/* mcpd-tool: what a command run by mcpd uses to talk back to the client,
 * one line of shell per action. It writes JSON-RPC lines to the channel
 * descriptor mcpd passes (MCP_CHANNEL_FD) and reads the answers there. */
#include "json.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int chan = -1;

static void
usage(void)
{
	fputs("usage: mcpd-tool progress PROGRESS [TOTAL [MESSAGE]]\n"
	    "       mcpd-tool log LEVEL MESSAGE...\n"
	    "       mcpd-tool log --json LEVEL JSON\n"
	    "       mcpd-tool elicit [--key KEY] MESSAGE [SCHEMA_JSON]   (prints the answer as JSON)\n"
	    "       mcpd-tool sample [--key KEY] PROMPT [MAX_TOKENS]      (prints the result as JSON)\n"
	    "       mcpd-tool sample [--key KEY] --json PARAMS_JSON\n"
	    "       mcpd-tool roots [--key KEY]                           (prints {\"roots\":[...]})\n"
	    "       mcpd-tool ask REQUESTS_JSON   ({KEY: {method, params}, ...}; prints {KEY: result, ...})\n"
	    "       mcpd-tool changed tools|prompts|resources  |  changed resource URI\n"
	    "       mcpd-tool request METHOD [PARAMS_JSON]\n"
	    "       mcpd-tool get PATH [JSON]                    (a value of JSON, or of stdin)\n"
	    "       mcpd-tool quote STRING                       (STRING as a JSON string)\n"
	    "       mcpd-tool next                  (persistent: the next request line; status 1 at the end)\n"
	    "       mcpd-tool answer [--error|--json] REQUEST TEXT   (persistent: the answer line to REQUEST)\n"
	    "LEVEL: debug info notice warning error critical alert emergency.\n"
	    "PATH: keys and indexes joined by dots, e.g. content.text or roots.0.uri.\n"
	    "KEY names a question, so that under MCP 2026-07-28 the client's answer finds\n"
	    "its way back when mcpd runs the command again (ask before you act).\n", stderr);
	exit(2);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "mcpd-tool: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void
open_channel(void)
{
	const char *fd = getenv("MCP_CHANNEL_FD");
	if (fd == NULL)
		die("%s", "not running under mcpd (MCP_CHANNEL_FD is not set)");
	chan = atoi(fd);
}

static void
send_line(cJSON *msg)
{
	/* In a persistent process, the call this line is for (MCP_CALL_ID,
	 * which a script may export from its request's id). */
	const char *call = getenv("MCP_CALL_ID");
	if (call != NULL && call[0] != '\0' && cJSON_GetObjectItemCaseSensitive(msg, "call") == NULL)
		cJSON_AddNumberToObject(msg, "call", strtod(call, NULL));
	char *s = json_print(msg);
	if (s == NULL)
		die("%s", "out of memory");
	size_t len = strlen(s);
	s[len] = '\n';
	size_t off = 0;
	while (off < len + 1) {
		ssize_t w = write(chan, s + off, len + 1 - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("writing to mcpd: %s", strerror(errno));
		off += (size_t)w;
	}
	free(s);
}

static void
notify(const char *method, cJSON *params)
{
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "jsonrpc", "2.0");
	cJSON_AddStringToObject(m, "method", method);
	cJSON_AddItemToObject(m, "params", params);
	send_line(m);
	cJSON_Delete(m);
}

/* Send a request, wait for its answer, print the result; exit 1 on error. */
static const char *ask_key;   /* --key: the name of this question */
static int print_result = 1;

static void
request(const char *method, cJSON *params)
{
	char id[32];
	snprintf(id, sizeof(id), "%d", (int)getpid());
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "jsonrpc", "2.0");
	cJSON_AddStringToObject(m, "id", id);
	cJSON_AddStringToObject(m, "method", method);
	cJSON_AddItemToObject(m, "params", params);
	if (ask_key != NULL)
		cJSON_AddStringToObject(m, "key", ask_key);
	send_line(m);
	cJSON_Delete(m);

	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);
	for (;;) {
		char *nl = buf ? memchr(buf, '\n', len) : NULL;
		if (nl != NULL) {
			*nl = '\0';
			cJSON *resp = json_parse(buf, strlen(buf), 0, NULL);
			size_t used = (size_t)(nl - buf) + 1;
			memmove(buf, nl + 1, len - used);
			len -= used;
			const cJSON *rid = cJSON_GetObjectItemCaseSensitive(resp, "id");
			if (!cJSON_IsString(rid) || strcmp(rid->valuestring, id) != 0) {
				cJSON_Delete(resp);
				continue;
			}
			const cJSON *err = cJSON_GetObjectItemCaseSensitive(resp, "error");
			if (err != NULL) {
				const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
				char text[512];
				snprintf(text, sizeof(text), "%s", cJSON_IsString(msg) ? msg->valuestring : "the request failed");
				cJSON_Delete(resp);
				free(buf);
				die("%s", text);
			}
			if (print_result) {
				const cJSON *result = cJSON_GetObjectItemCaseSensitive(resp, "result");
				char *out = result ? json_print(result) : NULL;
				puts(out ? out : "{}");
				free(out);
			}
			cJSON_Delete(resp);
			free(buf);
			return;
		}
		if (buf == NULL || len == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			if (buf == NULL || cap > 64u << 20)
				die("%s", "answer too large");
		}
		ssize_t r = read(chan, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("%s", "mcpd closed the channel before answering");
		len += (size_t)r;
	}
}

static cJSON *
parse_json_arg(const char *s, const char *what)
{
	struct json_error je;
	cJSON *v = json_parse(s, strlen(s), 0, &je);
	if (v == NULL)
		die("%s is not valid JSON: %s", what, je.message);
	return v;
}

static char *
read_stdin(void)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap + 1);
	ssize_t r;
	while (buf != NULL && (r = read(0, buf + len, cap - len)) > 0) {
		len += (size_t)r;
		if (len == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
		}
	}
	if (buf == NULL)
		die("%s", "out of memory");
	buf[len] = '\0';
	return buf;
}

static int
get(const char *path, const char *json)
{
	char *owned = NULL;
	if (json == NULL)
		json = owned = read_stdin();
	cJSON *root = parse_json_arg(json, "the input");
	const cJSON *cur = root;
	char *p = strdup(path), *save = NULL;
	for (char *tok = strtok_r(p, ".", &save); tok && cur; tok = strtok_r(NULL, ".", &save)) {
		char *end;
		long idx = strtol(tok, &end, 10);
		if (cJSON_IsArray(cur) && *end == '\0')
			cur = cJSON_GetArrayItem(cur, (int)idx);
		else
			cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
	}
	free(p);
	int rc = 0;
	if (cur == NULL) {
		rc = 1;
	} else if (cJSON_IsString(cur)) {
		puts(cur->valuestring);
	} else {
		char *s = json_print(cur);
		puts(s ? s : "null");
		free(s);
	}
	cJSON_Delete(root);
	free(owned);
	return rc;
}

/* The next request of a persistent process: one line of stdin, read a
 * byte at a time so that nothing after it is taken from the script.
 * Cancellations are skipped: a script that serves one call at a time
 * cannot act on them (mcpd stops it after a grace period). */
static int
next_request(void)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (buf == NULL)
			die("%s", "out of memory");
		char ch;
		ssize_t r = read(0, &ch, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			free(buf);
			return 1;       /* mcpd closed stdin: the script ends */
		}
		if (ch != '\n') {
			if (len + 1 >= cap) {
				cap *= 2;
				if (cap > 1u << 30)
					die("%s", "request line too long");
				buf = realloc(buf, cap);
			}
			buf[len++] = ch;
			continue;
		}
		buf[len] = '\0';
		cJSON *req = json_parse(buf, len, 0, NULL);
		int skip = len == 0 || cJSON_GetObjectItemCaseSensitive(req, "cancel") != NULL;
		cJSON_Delete(req);
		if (!skip) {
			puts(buf);
			free(buf);
			return 0;
		}
		len = 0;
	}
}

/* The answer line to a request (its JSON, or only its id). */
static int
answer(int argc, char **argv)
{
	int i = 2, error = 0, json = 0;
	if (i < argc && strcmp(argv[i], "--error") == 0) {
		error = 1;
		i++;
	} else if (i < argc && strcmp(argv[i], "--json") == 0) {
		json = 1;
		i++;
	}
	if (argc - i != 2)
		usage();
	cJSON *req = parse_json_arg(argv[i], "the request");
	const cJSON *id = cJSON_IsNumber(req) ? req : cJSON_GetObjectItemCaseSensitive(req, "id");
	if (!cJSON_IsNumber(id))
		die("%s", "the request has no id");
	cJSON *a = cJSON_CreateObject();
	cJSON_AddItemToObject(a, "id", cJSON_Duplicate(id, 1));
	cJSON_AddItemToObject(a, error ? "error" : "output",
	    json ? parse_json_arg(argv[i + 1], "the output") : cJSON_CreateString(argv[i + 1]));
	char *out = json_print(a);
	if (out == NULL)
		die("%s", "out of memory");
	puts(out);
	fflush(stdout);
	free(out);
	cJSON_Delete(a);
	cJSON_Delete(req);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	const char *cmd = argv[1];
	if (strcmp(cmd, "get") == 0) {
		if (argc != 3 && argc != 4)
			usage();
		return get(argv[2], argc == 4 ? argv[3] : NULL);
	}
	if (strcmp(cmd, "next") == 0) {
		if (argc != 2)
			usage();
		return next_request();
	}
	if (strcmp(cmd, "answer") == 0)
		return answer(argc, argv);
	if (strcmp(cmd, "quote") == 0) {
		if (argc != 3)
			usage();
		cJSON *str = cJSON_CreateString(argv[2]);
		char *out = json_print(str);
		puts(out);
		free(out);
		cJSON_Delete(str);
		return 0;
	}
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0)
		usage();
	open_channel();
	/* --key KEY right after the command names the question. */
	if (argc >= 4 && strcmp(argv[2], "--key") == 0) {
		ask_key = argv[3];
		for (int i = 4; i <= argc; i++)
			argv[i - 2] = argv[i];
		argc -= 2;
	}
	if (strcmp(cmd, "progress") == 0) {
		if (argc < 3 || argc > 5)
			usage();
		cJSON *p = cJSON_CreateObject();
		cJSON_AddNumberToObject(p, "progress", strtod(argv[2], NULL));
		if (argc >= 4)
			cJSON_AddNumberToObject(p, "total", strtod(argv[3], NULL));
		if (argc == 5)
			cJSON_AddStringToObject(p, "message", argv[4]);
		notify("notifications/progress", p);
	} else if (strcmp(cmd, "log") == 0) {
		int json = argc > 2 && strcmp(argv[2], "--json") == 0;
		int first = json ? 3 : 2;
		if (argc < first + 2)
			usage();
		cJSON *p = cJSON_CreateObject();
		cJSON_AddStringToObject(p, "level", argv[first]);
		if (json) {
			cJSON_AddItemToObject(p, "data", parse_json_arg(argv[first + 1], "the log data"));
		} else {
			size_t len = 0;
			for (int i = first + 1; i < argc; i++)
				len += strlen(argv[i]) + 1;
			char *msg = malloc(len + 1);
			if (msg == NULL)
				die("%s", "out of memory");
			size_t o = 0;
			for (int i = first + 1; i < argc; i++) {
				size_t l = strlen(argv[i]);
				if (i > first + 1)
					msg[o++] = ' ';
				memcpy(msg + o, argv[i], l);
				o += l;
			}
			msg[o] = '\0';
			cJSON_AddStringToObject(p, "data", msg);
			free(msg);
		}
		notify("notifications/message", p);
	} else if (strcmp(cmd, "elicit") == 0) {
		if (argc < 3 || argc > 4)
			usage();
		cJSON *p = cJSON_CreateObject();
		cJSON_AddStringToObject(p, "message", argv[2]);
		cJSON *schema = argc == 4 ? parse_json_arg(argv[3], "the schema") : NULL;
		if (schema == NULL) {
			schema = cJSON_CreateObject();
			cJSON_AddStringToObject(schema, "type", "object");
			cJSON_AddObjectToObject(schema, "properties");
		}
		cJSON_AddItemToObject(p, "requestedSchema", schema);
		request("elicitation/create", p);
	} else if (strcmp(cmd, "sample") == 0) {
		if (argc < 3 || argc > 4)
			usage();
		cJSON *p;
		if (strcmp(argv[2], "--json") == 0) {
			if (argc != 4)
				usage();
			p = parse_json_arg(argv[3], "the sampling parameters");
		} else {
			p = cJSON_CreateObject();
			cJSON *msgs = cJSON_AddArrayToObject(p, "messages");
			cJSON *m = cJSON_CreateObject();
			cJSON_AddStringToObject(m, "role", "user");
			cJSON *content = cJSON_AddObjectToObject(m, "content");
			cJSON_AddStringToObject(content, "type", "text");
			cJSON_AddStringToObject(content, "text", argv[2]);
			cJSON_AddItemToArray(msgs, m);
			cJSON_AddNumberToObject(p, "maxTokens", argc == 4 ? atoi(argv[3]) : 1000);
		}
		request("sampling/createMessage", p);
	} else if (strcmp(cmd, "roots") == 0) {
		if (argc != 2)
			usage();
		request("roots/list", cJSON_CreateObject());
	} else if (strcmp(cmd, "ask") == 0) {
		if (argc != 3)
			usage();
		cJSON *p = cJSON_CreateObject();
		cJSON_AddItemToObject(p, "requests", parse_json_arg(argv[2], "the requests"));
		request("mcpd/inputs", p);
	} else if (strcmp(cmd, "changed") == 0) {
		if (argc < 3 || argc > 4 || (strcmp(argv[2], "resource") == 0) != (argc == 4))
			usage();
		cJSON *p = cJSON_CreateObject();
		cJSON_AddStringToObject(p, "what", argv[2]);
		if (argc == 4)
			cJSON_AddStringToObject(p, "uri", argv[3]);
		print_result = 0;   /* the acknowledgement is not output */
		request("mcpd/changed", p);
	} else if (strcmp(cmd, "request") == 0) {
		if (argc < 3 || argc > 4)
			usage();
		request(argv[2], argc == 4 ? parse_json_arg(argv[3], "the parameters") : cJSON_CreateObject());
	} else {
		usage();
	}
	return 0;
}
