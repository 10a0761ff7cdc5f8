/*
 * mcpd plugin ABI. This header is the whole interface between mcpd and a
 * plugin: include it, build a shared object, export mcpd_plugin_entry.
 * A plugin never links against mcpd and needs no other mcpd header.
 *
 *   cc -shared -fPIC -fvisibility=hidden -o my.so my.c
 *
 * Versioning: mcpd refuses a plugin whose abi_major differs from its own
 * and accepts an older abi_minor. Structures that may grow start with
 * their size; mcpd reads only what both sides know. An optional
 * operation or hook may be NULL ("not supported"); the operations marked
 * "required" below must be there, and mcpd refuses (as a configuration
 * error, also for mcpd -t) a storage or transport plugin that lacks one.
 */
#ifndef MCPD_PLUGIN_H
#define MCPD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MCPD_PLUGIN_ABI_MAJOR 1
#define MCPD_PLUGIN_ABI_MINOR 5

#if defined(__GNUC__)
#define MCPD_EXPORT __attribute__((visibility("default")))
#define MCPD_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define MCPD_EXPORT
#define MCPD_PRINTF(f, a)
#endif

enum mcpd_plugin_kind {
	MCPD_PLUGIN_TOOLS = 1,      /* tools called in-process: plugin: file.so:symbol */
	MCPD_PLUGIN_STORAGE = 2,    /* storage: { plugin: ... } (ABI 1.2) */
	MCPD_PLUGIN_TRANSPORT = 3,  /* transport: { plugin: ... } (ABI 1.2) */
	MCPD_PLUGIN_AUTH = 4,       /* auth: { plugin: ... } (ABI 1.4) */
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
struct mcpd_config;             /* a node of the plugin's YAML section */

/* Results of backend operations. */
enum mcpd_status {
	MCPD_OK = 0,
	MCPD_NOT_FOUND = 1,         /* no such key (or it expired) */
	MCPD_CONFLICT = 2,          /* a set's condition (if absent / if present) did not hold */
	MCPD_ERROR = -1,            /* the backend failed: err says why */
	MCPD_DENIED = 3,            /* auth: the token is not valid (err says why) */
};

/* Completion callbacks. A backend may call them before the operation
 * returns (a local store) or later from the event loop (a network
 * store); callers handle both. err is set only with MCPD_ERROR.
 * A cb may be NULL where the caller does not need the outcome (mcpd
 * passes NULL to set, del, index_add, index_remove and publish): check
 * it before calling. */
typedef void mcpd_done_cb(void *arg, int status, const char *err);
typedef void mcpd_value_cb(void *arg, int status, const void *value, size_t len, const char *err);
typedef void mcpd_int_cb(void *arg, int status, int64_t value, const char *err);
typedef void mcpd_members_cb(void *arg, int status, const char *const *members, size_t n,
    const char *err);

struct mcpd_log_entry {
	uint64_t seq;               /* increasing within one log, from 1 */
	const void *data;
	size_t len;
};
typedef void mcpd_entries_cb(void *arg, int status, const struct mcpd_log_entry *entries,
    size_t n, const char *err);

#define MCPD_SET_IF_ABSENT  1u
#define MCPD_SET_IF_PRESENT 2u

/* Storage (kind MCPD_PLUGIN_STORAGE): keys are NUL-terminated text,
 * values bytes. A ttl of 0 means no expiry. Expired data is never
 * returned. Every worker of every instance sees the same data.
 * Required: get, set, del, log_append, log_range. Optional (skipped when
 * NULL): index_add, index_remove. Needed by some features: incr (the
 * internal authorization server's rate limits), index_members
 * (/admin/sessions). Not called yet: exists. */
struct mcpd_storage_ops {
	uint32_t size;              /* sizeof(struct mcpd_storage_ops) of the plugin */
	void (*get)(void *inst, const char *key, mcpd_value_cb *cb, void *arg);
	void (*set)(void *inst, const char *key, const void *value, size_t len, uint64_t ttl_ms,
	    unsigned flags, mcpd_done_cb *cb, void *arg);
	/* Removes the value stored under key, and the log of that name (so
	 * that a session's event log goes with it). */
	void (*del)(void *inst, const char *key, mcpd_done_cb *cb, void *arg);
	void (*exists)(void *inst, const char *key, mcpd_done_cb *cb, void *arg);
	/* Add by to an integer value (absent: 0); reports the new value. */
	void (*incr)(void *inst, const char *key, int64_t by, uint64_t ttl_ms, mcpd_int_cb *cb, void *arg);
	/* Sets of members (a user's sessions); ttl applies to the member, and
	 * adding a member again renews it. */
	void (*index_add)(void *inst, const char *index, const char *member, uint64_t ttl_ms,
	    mcpd_done_cb *cb, void *arg);
	void (*index_remove)(void *inst, const char *index, const char *member, mcpd_done_cb *cb, void *arg);
	void (*index_members)(void *inst, const char *index, mcpd_members_cb *cb, void *arg);
	/* Append-only logs (events kept for Last-Event-ID): reports the new
	 * entry's seq; keeps at most max_entries; ttl renews the whole log. */
	void (*log_append)(void *inst, const char *log, const void *entry, size_t len,
	    uint64_t max_entries, uint64_t ttl_ms, mcpd_int_cb *cb, void *arg);
	/* Entries with seq > after, oldest first, at most max. */
	void (*log_range)(void *inst, const char *log, uint64_t after, size_t max,
	    mcpd_entries_cb *cb, void *arg);
};

typedef void mcpd_message_cb(void *arg, const char *channel, const void *msg, size_t len);

struct mcpd_publish_opts {
	uint32_t size;
	const char *message_id;     /* for backends that deduplicate, or NULL */
	uint64_t ttl_ms;            /* how long an undelivered message is worth keeping */
};

/* Transport (kind MCPD_PLUGIN_TRANSPORT): messages to whoever subscribed
 * to a channel, on any worker of any instance. Required: subscribe,
 * unsubscribe, publish. Not called yet: has_subscribers. */
struct mcpd_transport_ops {
	uint32_t size;              /* sizeof(struct mcpd_transport_ops) of the plugin */
	/* Returns a subscription handle, or NULL. cb runs on the worker's loop. */
	void *(*subscribe)(void *inst, const char *channel, mcpd_message_cb *cb, void *arg);
	void (*unsubscribe)(void *inst, void *subscription);
	/* opts may be NULL (mcpd passes NULL: no id, no ttl), and so may cb. */
	void (*publish)(void *inst, const char *channel, const void *msg, size_t len,
	    const struct mcpd_publish_opts *opts, mcpd_done_cb *cb, void *arg);
	/* Reports how many subscribers the channel has (0 when none). */
	void (*has_subscribers)(void *inst, const char *channel, mcpd_int_cb *cb, void *arg);
};

/* Auth (kind MCPD_PLUGIN_AUTH, ABI 1.4): turns a bearer token into the
 * principal it stands for. mcpd does the rest of the resource server's
 * work: it reads the Authorization header, answers 401/403 with
 * WWW-Authenticate, serves the protected resource metadata (RFC 9728),
 * caches results, checks each tool's scopes and who owns a session.
 *
 * The plugin's YAML section also holds keys that mcpd reads itself (see
 * mcpd_auth_common_key): a plugin skips those when it checks its keys.
 * The resource (the MCP endpoint's URL, as tokens' audience) is one. */
struct mcpd_principal {
	const char *user;           /* who: a stable subject, never empty */
	const char *client_id;      /* the OAuth client, or NULL */
	const char *scopes;         /* granted scopes, space-separated, or "" */
	int64_t expires_at;         /* Unix seconds; 0 if unknown (mcpd's cache ttl applies) */
};

/* status: MCPD_OK with p; MCPD_DENIED (expired, wrong audience, bad
 * signature...: the client gets 401 invalid_token and err in
 * error_description); MCPD_ERROR when it cannot tell now (an identity
 * provider unreachable: 503). p and its strings need only live until
 * the callback returns. */
typedef void mcpd_auth_cb(void *arg, int status, const struct mcpd_principal *p, const char *err);

struct mcpd_auth_ops {
	uint32_t size;              /* sizeof(struct mcpd_auth_ops) of the plugin */
	/* token: the bearer token as sent (never log it). The callback runs
	 * exactly once: before this returns, or later from the worker's loop. */
	void (*authenticate)(void *inst, const char *token, mcpd_auth_cb *cb, void *arg);
};

/* Keys of an auth: section that mcpd reads itself. */
static inline int
mcpd_auth_common_key(const char *key)
{
	static const char *const common[] = { "plugin", "resource", "authorization_servers",
	    "scopes_supported", "cache", "resource_name", "admin_scope", NULL };
	for (const char *const *k = common; *k != NULL; k++) {
		const char *a = *k, *b = key;
		while (*a != '\0' && *a == *b)
			a++, b++;
		if (*a == '\0' && *b == '\0')
			return 1;
	}
	return 0;
}

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

	/* ABI 1.2: the plugin's YAML section. Nodes live only during create(). */
	const struct mcpd_config *(*config_get)(const struct mcpd_config *map, const char *key);
	const char *(*config_scalar)(const struct mcpd_config *node);     /* NULL: not a scalar */
	size_t (*config_count)(const struct mcpd_config *node);           /* list items, map pairs */
	const struct mcpd_config *(*config_item)(const struct mcpd_config *node, size_t i,
	    const char **key);                                             /* key: maps only */
	int (*config_duration)(const struct mcpd_config *node, uint64_t *ms);   /* 0 or -1 */
	int (*config_size)(const struct mcpd_config *node, uint64_t *bytes);    /* 0 or -1 */
	/* "file:line:column" of a node, for error messages. */
	void (*config_where)(const struct mcpd_config *node, char *buf, size_t len);
	/* The uid and gid workers run as, so that a plugin can give them the
	 * files it creates at configuration time; -1 when the workers keep
	 * the master's identity (no user:, or a master that is not root). */
	void (*worker_identity)(long *uid, long *gid);
	/* Workers of this mcpd: an id from 1, and the master's relay between
	 * them (what the local transport is built on): the master remembers
	 * which worker subscribed to which channel and forwards a publish to
	 * the other workers subscribed (never back to the publisher). */
	unsigned (*worker_id)(void);
	int (*relay_subscribe)(const char *channel);
	int (*relay_unsubscribe)(const char *channel);
	int (*relay_publish)(const char *channel, const void *msg, size_t len);
	/* Reports how many other workers subscribe to the channel. */
	void (*relay_count)(const char *channel, mcpd_int_cb *cb, void *arg);
	/* Where the relay delivers what other workers published. */
	void (*relay_receive)(mcpd_message_cb *cb, void *arg);
	/* The directory for state when the configuration names none:
	 * LOCALSTATEDIR/lib/mcpd, where LOCALSTATEDIR is PREFIX/var, or /var
	 * for PREFIX=/usr (so /usr/local/var/lib/mcpd, or /var/lib/mcpd);
	 * build/state for an mcpd run from its build tree. */
	const char *(*state_dir)(void);

	/* ABI 1.4: the directory of the configuration file, against which a
	 * relative path in a plugin's section is taken. */
	const char *(*config_dir)(void);

	/* ABI 1.5: a tool that runs as a task (task: in mcpd.yaml). A task
	 * has no stream to the client: what tasks/get shows while it works
	 * is its statusMessage, which this sets (a plain call has none: a
	 * no-op there). tool_progress sets it too, to its message or to
	 * "progress of total". A task's cancellation (tasks/cancel, from any
	 * worker) reaches the tool through tool_on_cancel; its result (from
	 * tool_result or tool_text) is stored for tasks/get. The tool runs
	 * in the worker where it started. Older plugins run as tasks as
	 * they are. */
	void (*tool_status)(struct mcpd_tool_call *call, const char *message);
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
	/* Optional: once per worker, before the first call, for each plugin
	 * the worker's configuration uses. Non-zero refuses to start (the
	 * worker exits and is not respawned). */
	int (*init_worker)(const struct mcpd_host *host);
	/* Optional: when the worker stops (if init_worker was due). */
	void (*fini_worker)(void);

	/* ABI 1.2, for storage and transport plugins. */
	/* Required: in the master, at configuration time (also mcpd -t):
	 * check the section, return an instance, or NULL and a message in
	 * err. */
	void *(*create)(const struct mcpd_host *host, const struct mcpd_config *section,
	    char *err, size_t errlen);
	/* Optional: in each worker after fork, with the event loop running:
	 * connect. */
	int (*attach)(void *inst, char *err, size_t errlen);
	/* Optional: in each worker as it stops, after the loop has ended and
	 * the callers of the operations still out are gone: those are dropped
	 * without calling back (mcpd frees what it kept for them). */
	void (*detach)(void *inst);
	/* Optional: in the master, when the configuration is dropped. */
	void (*destroy)(void *inst);
	/* Required: struct mcpd_storage_ops or struct mcpd_transport_ops, by
	 * kind, with the operations that one marks required. */
	const void *ops;
	uint32_t flags;

	/* ABI 1.3: is the backend usable now (connected)? 0 when it is;
	 * otherwise -1 and why (shown by /readyz). NULL: always ready. */
	int (*status)(void *inst, char *why, size_t len);
};

/* flags: the plugin's data is not shared between worker processes (it
 * then requires workers: 1). */
#define MCPD_PLUGIN_PROCESS_LOCAL 1u

#define MCPD_PLUGIN_ENTRY "mcpd_plugin_entry"
typedef const struct mcpd_plugin *mcpd_plugin_entry_fn(void);

/* Every plugin defines this, and only this is looked up by name (besides
 * the tool symbols its configuration names). */
MCPD_EXPORT const struct mcpd_plugin *mcpd_plugin_entry(void);

/* ABI 1.3: a plugin that provides several kinds (a storage and a
 * transport over the same service) may instead define this, returning a
 * NULL-terminated array; mcpd takes the descriptor of the kind it needs. */
#define MCPD_PLUGIN_ENTRIES "mcpd_plugin_entries"
typedef const struct mcpd_plugin *const *mcpd_plugin_entries_fn(void);

#ifdef __cplusplus
}
#endif

#endif
