/*
 * mcpd plugin ABI. This header is the whole interface between mcpd and a
 * plugin: include it, build a shared object, export mcpd_plugin_entry.
 * A plugin never links against mcpd and needs no other mcpd header.
 *
 *   cc -shared -fPIC -fvisibility=hidden -o my.so my.c
 *
 * Versioning: mcpd refuses a plugin whose abi_major differs from its own
 * and accepts an older abi_minor. Structures that may grow start with
 * their size; mcpd reads only what both sides know, and a NULL operation
 * means "not supported".
 */
#ifndef MCPD_PLUGIN_H
#define MCPD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MCPD_PLUGIN_ABI_MAJOR 1
#define MCPD_PLUGIN_ABI_MINOR 1

#if defined(__GNUC__)
#define MCPD_EXPORT __attribute__((visibility("default")))
#define MCPD_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define MCPD_EXPORT
#define MCPD_PRINTF(f, a)
#endif

enum mcpd_plugin_kind {
	MCPD_PLUGIN_TOOLS = 1,      /* tools called in-process: plugin: file.so:symbol */
	MCPD_PLUGIN_STORAGE = 2,    /* reserved for the storage ABI */
	MCPD_PLUGIN_TRANSPORT = 3,  /* reserved for the transport ABI */
	MCPD_PLUGIN_AUTH = 4,       /* reserved for the auth ABI */
};

enum mcpd_log_level {
	MCPD_LOG_ERROR = 0,
	MCPD_LOG_WARN = 1,
	MCPD_LOG_NOTICE = 2,
	MCPD_LOG_INFO = 3,
	MCPD_LOG_DEBUG = 4,
};

struct event_base;              /* libevent's; plugins may use it directly */
struct mcpd_tool_call;          /* one tools/call, owned by mcpd */

/* What mcpd offers a plugin. Valid for the life of the process. */
struct mcpd_host {
	uint32_t size;              /* sizeof(struct mcpd_host) of the daemon */
	uint32_t abi_major, abi_minor;

	void (*log)(enum mcpd_log_level level, const char *fmt, ...) MCPD_PRINTF(2, 3);
	/* The worker's event loop, for asynchronous tools. */
	struct event_base *(*event_base)(void);

	/* Finishing a call: exactly one of these, once, from the loop's
	 * thread; afterwards the call handle is gone. result_json is a
	 * CallToolResult object: {"content":[...], "structuredContent":...,
	 * "isError":...}. */
	void (*tool_result)(struct mcpd_tool_call *call, const char *result_json);
	void (*tool_text)(struct mcpd_tool_call *call, const char *text, int is_error);
	/* While running: progress (when the client asked for it). */
	void (*tool_progress)(struct mcpd_tool_call *call, double progress, double total,
	    const char *message);
	/* Called if the client cancels or goes away before the result; the
	 * plugin then stops and still finishes the call (its result is dropped). */
	void (*tool_on_cancel)(struct mcpd_tool_call *call, void (*fn)(void *arg), void *arg);

	/* ABI 1.1: ask the client something: method is elicitation/create,
	 * sampling/createMessage or roots/list, params_json its params; key
	 * names the question. done() runs exactly once, with the client's
	 * result (JSON) or an error message.
	 *
	 * Under MCP 2026-07-28 there is no connection back to the client: an
	 * answer the client gave in this request's retry comes back at once;
	 * otherwise done() gets the error "input required" and the plugin
	 * must finish the call (any result; mcpd replaces it with the
	 * questions). The client answers and retries, and the tool function
	 * runs again from the start. So ask first, then act. */
	void (*tool_ask)(struct mcpd_tool_call *call, const char *key, const char *method,
	    const char *params_json, void (*done)(void *arg, const char *result_json,
	    const char *error), void *arg);
};

/* The error text tool_ask reports when the client must answer first. */
#define MCPD_INPUT_REQUIRED "input required"

/*
 * A tool function, named by `plugin: file.so:symbol` in mcpd.yaml.
 * arguments_json is the validated arguments object (NUL-terminated).
 * It must finish the call with host->tool_result or host->tool_text,
 * now or later on the event loop. It must not block.
 */
typedef void mcpd_tool_fn(const struct mcpd_host *host, struct mcpd_tool_call *call,
    const char *arguments_json);

/* The descriptor every plugin exports through mcpd_plugin_entry(). */
struct mcpd_plugin {
	uint32_t size;              /* sizeof(struct mcpd_plugin) of the plugin */
	uint32_t abi_major, abi_minor;
	enum mcpd_plugin_kind kind;
	const char *name;
	const char *version;
	/* Optional: once per worker, before the first call. Non-zero refuses
	 * to start (the worker exits and is not respawned). */
	int (*init_worker)(const struct mcpd_host *host);
	/* Optional: when the worker stops. */
	void (*fini_worker)(void);
};

#define MCPD_PLUGIN_ENTRY "mcpd_plugin_entry"
typedef const struct mcpd_plugin *mcpd_plugin_entry_fn(void);

/* Every plugin defines this, and only this is looked up by name (besides
 * the tool symbols its configuration names). */
MCPD_EXPORT const struct mcpd_plugin *mcpd_plugin_entry(void);

#ifdef __cplusplus
}
#endif

#endif
