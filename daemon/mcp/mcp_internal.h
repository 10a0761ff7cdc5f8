/* Shared by the files of the MCP layer: the endpoint (endpoint.c), a call
 * and what it sends (call.c), asking the client (ask.c), a call's command
 * (command.c), the method families (t_tools.c, t_resources.c,
 * t_prompts.c, t_complete.c, t_lifecycle.c) and change notifications
 * (changes.c). Not for other layers: mcp.h is the MCP layer's face. */
#ifndef MCPD_MCP_INTERNAL_H
#define MCPD_MCP_INTERNAL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "jsonrpc.h"
#include "mcp.h"
#include "plugin.h"
#include "session.h"
#include "tracing.h"

struct admin;
struct arg_names;
struct auth;
struct command_def;
struct config;
struct event;
struct event_base;
struct http_request;
struct list_pages;
struct mcpd_tool_call;
struct oauth;
struct prompt_arg;
struct prompt_def;
struct ratelimit;
struct resource_def;
struct tool_def;
struct tool_exec;
struct tool_run;
struct tool_run_callbacks;

struct ask_group;
struct call;
struct task;
struct task_op;
struct mcp;
struct mcp_line;

struct ask_item {               /* one request forwarded to the client */
	struct ask_group *g;
	char *key;
	int answered;
};

struct ask_group {              /* a command's question(s), waiting for the client */
	struct call *c;
	cJSON *tool_id;             /* the id the command used on its channel */
	int single;                 /* answer with the result itself, not a map */
	cJSON *results;             /* key -> result, or {"error": ...} */
	struct ask_item *items;
	size_t nitems, remaining;
	LIST_ENTRY(ask_group) link;
};

struct plugin_ask {             /* a plugin's question waiting for the client */
	struct call *c;
	void (*done)(void *, const char *, const char *);
	void *arg;
	char *key;                  /* a task's question, answered by tasks/update */
	LIST_ENTRY(plugin_ask) link;
};

/* One JSON-RPC request, from dispatch to its answer (call.c). */
struct call {
	struct mcp *m;
	int mx_answered;            /* its final message went out (metrics) */
	int mx_code;                /* 0: a result; else the JSON-RPC error code */
	int mx_tool_done;           /* the tool's outcome is counted */
	uint64_t mx_tool_start;     /* monotonic_us when the tool began */
	struct http_request *req;   /* NULL once the client is gone */
	struct mcp_line *line;      /* or its line (stdio), until it is answered */
	struct session *s;
	struct jsonrpc_msg msg;
	const char *method;
	const cJSON *params;
	int accept_sse;
	struct stream *stream;
	const cJSON *progress_token;
	struct tool_run *run;
	const struct tool_def *tool;
	const struct resource_def *res;
	const struct prompt_def *prompt;
	cJSON *vars;                /* resource template variables, completion context */
	char *complete_prefix;
	int cancelled;
	uint64_t changed_at, changed_credit;    /* mcpd/changed's rate (ask.c) */
	int in_plugin;              /* a plugin tool owns the call until it finishes */
	int *finished_flag;         /* set when the call is freed (see run_plugin_tool) */
	struct event *plugin_timer; /* the tool's timeout, for plugin tools */
	int input_needed;           /* MRTR: a plugin asked what the client has not answered */
	int plugin_timed_out;       /* a plugin tool's timeout cancelled it */
	LIST_HEAD(, plugin_ask) plugin_asks;
	void (*plugin_cancel)(void *);
	void *plugin_cancel_arg;
	enum proto proto;
	int stateless;              /* 2026-07-28: no session; the request says it all */
	const cJSON *client_caps;
	int log_level;              /* stateless threshold; MLOG_COUNT: no log messages */
	int sse_direct;             /* stateless: this response is an SSE stream */
	struct event *keepalive;
	int status;                 /* HTTP status of a JSON answer */
	cJSON *answers;             /* MRTR: input responses known so far (NULL: none) */
	cJSON *asked;               /* MRTR: questions to return as inputRequests */
	const char *bind_name;      /* MRTR: the tool, prompt or URI the state is for (outlives the call) */
	const cJSON *bind;          /* MRTR: the arguments the state is for (in params) */
	char bind_digest[65];       /* their digest once taken; "" before */
	int listen;                 /* an open subscriptions/listen stream */
	int async;                  /* outlived its handler: cancellable from anywhere */
	cJSON *filter;              /* what the listener asked for and got */
	LIST_HEAD(, ask_group) asks;
	size_t questions;           /* forwarded to the client, not yet answered */
	struct task *task;          /* the task this call's command runs as (task.c) */
	struct task_op *op;         /* the storage read of tasks/get, update or cancel */
	char *principal;            /* a listen stream's: whose tasks it may hear of */
	struct trace_ctx trace;     /* its span (tracing.h) */
	struct trace_ctx tool_trace;    /* its tool's run, a child */
	const char *tool_error;     /* the tool's outcome when not ok, for the span */
	char *trace_user;           /* the principal's user, for the span */
	int over_http;              /* came over HTTP (not a line on stdio) */
	LIST_ENTRY(call) link;
};

struct file_watch {             /* a directory holding file resources */
	int wd;
	char *dir;
};

/* A worker's MCP layer (mcp_new). */
struct mcp {
	struct event_base *base;
	struct config *cfg;
	struct sessions *sessions;
	struct tool_exec *te;
	LIST_HEAD(, call) calls;
	LIST_HEAD(, waiting) waiting;   /* requests waiting for their session */
	int draining;
	int inotify_fd;
	struct event *inotify_ev;
	struct file_watch *watches;
	size_t nwatches;
	struct auth *auth;              /* NULL: no auth configured */
	struct admin *admin;
	struct oauth *oauth;            /* the internal authorization server, or NULL */
	int lambda;                     /* mcpd --lambda: MCP_LAMBDA_*, else 0 */
	struct backends b;              /* storage and transport (tasks) */
	void *tasks_sub;                /* mcpd:tasks, task status for listen streams */
	struct ratelimit *rate;         /* limits.rate, or NULL */
	struct ratelimit *refusals;     /* with auth: limits.rate over 401s, per address */
	struct call *spare_call;        /* the last call freed, kept for the next (call.c) */
	struct jsonrpc_reader reader;   /* the requests' kept arena */
	struct arena *scratch;          /* t_tools.c: a plugin result checked in a tree, or NULL */
};

/* endpoint.c: answers outside a call. cors_headers checks the Origin
 * against the worker's configuration. */
void cors_headers(struct http_request *r);
void respond_json(struct http_request *r, int status, char *json);     /* takes json */
void respond_rpc_error(struct http_request *r, int status, const cJSON *id, int code,
    const char *message);
/* A notification the client sent in its session (cancellation). */
void client_notification(struct mcp *m, struct session *s, const struct jsonrpc_msg *msg);
/* 2026-07-28, on any transport: the request's _meta (or NULL); the
 * error for another version (-32022); whether the method is one the
 * revision removed (1, with the message); a stateless call's version,
 * client capabilities and log level taken from _meta. */
#define META_VERSION "io.modelcontextprotocol/protocolVersion"
#define META_CAPS "io.modelcontextprotocol/clientCapabilities"
#define META_LOGLEVEL "io.modelcontextprotocol/logLevel"
const cJSON *request_meta(const struct jsonrpc_msg *msg);
char *stateless_unsupported(const cJSON *id, const char *requested);
int stateless_removed(const struct jsonrpc_msg *msg, char *text, size_t len);
/* The revision's members of a request's _meta (each NULL when absent),
 * read in one pass: their names share a long prefix. */
struct stateless_meta {
	const cJSON *version, *caps, *log_level;
};
void stateless_meta_read(const cJSON *meta, struct stateless_meta *sm);
void stateless_call_init(struct call *c, const struct stateless_meta *sm);
/* Does an Accept header take this type? (No header takes any.) */
int accepts(const char *accept, const char *type);

/* call.c: a call's lifecycle and output. */
struct call *call_new(struct mcp *m, struct http_request *r, struct session *s,
    struct jsonrpc_msg *msg);                                           /* takes msg */
void call_free(struct call *c);
void call_spare_drop(struct mcp *m);    /* at mcp_free */
/* The traceparent of a request: its _meta's (msg.meta), else r's header (NULL). */
const char *request_traceparent(const cJSON *meta, struct http_request *r);
void call_req_closed(struct http_request *r, void *arg);
int call_log_level(const struct call *c);
int call_direct_stream(struct call *c);
void direct_write(struct call *c, const char *json);
struct stream *call_stream(struct call *c);
void call_send(struct call *c, char *json);
void call_send_final(struct call *c, char *json);
void call_reply(struct call *c, char *json);
void call_result(struct call *c, cJSON *result);
void call_result_text(struct call *c, const char *json, size_t len, int has_type);
void call_error(struct call *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void call_error_data(struct call *c, int code, const char *msg, cJSON *data);
void call_go_async(struct call *c);
const char *param_string(const struct call *c, const char *key);
int client_has(const struct call *c, const char *cap);
void list_page(struct call *c, const struct list_pages *lp);
/* Hand the call to its method's handler (the tables in call.c). */
void dispatch(struct call *c);
/* Cancel the call of this session with that request id, if it runs here
 * (1), else 0. */
int cancel_request(struct mcp *m, struct session *s, const cJSON *id);
/* Session hooks (mcp_new): a cancellation from any worker; a session gone. */
void cancel_from_anywhere(struct session *s, const cJSON *id, void *arg);
void session_gone(struct session *s, void *arg);

/* ask.c: asking the client. */
void tool_request(struct call *c, const cJSON *msg, const char *method);
int mrtr_begin(struct call *c, const char *name, const cJSON *bound);
void mrtr_end_round(struct call *c);
void host_tool_ask(struct mcpd_tool_call *call, const char *key, const char *method,
    const char *params_json, void (*done)(void *, const char *, const char *), void *arg);

/* command.c: a call's command. */
int start_command(struct call *c, const char *label, const struct command_def *cmd,
    const struct arg_names *names, const cJSON *args, const char *const *extra,
    const struct tool_run_callbacks *cb, char *err, size_t errlen);
void tool_message(void *arg, const cJSON *msg);
void ignore_message(void *arg, const cJSON *msg);

/* t_tools.c: plugin tools, and the host functions they call. */
void plugin_cancel(struct call *c);
void host_tool_result(struct mcpd_tool_call *call, const char *result_json);
void host_tool_text(struct mcpd_tool_call *call, const char *text, int is_error);
void host_tool_progress(struct mcpd_tool_call *call, double progress, double total,
    const char *message);
void host_tool_on_cancel(struct mcpd_tool_call *call, void (*fn)(void *), void *arg);
void host_tool_status(struct mcpd_tool_call *call, const char *message);

/* t_lifecycle.c: initialize's params checked (an error answered, -1)
 * and the protocol the session will speak; its result once the session
 * exists. */
int initialize_check(struct call *c, enum proto *proto);
cJSON *initialize_result(struct call *c, const struct session *s);

/* ask.c: an answer a tasks/update brought for the question key of the
 * call's command (1), or 0 if none waits under that key. */
int ask_answer(struct call *c, const char *key, const cJSON *result);

/* task.c: a tools/call that runs on as a task (the tasks extension). */
#define TASKS_EXTENSION "io.modelcontextprotocol/tasks"
#define TASK_POLL_MS 500        /* pollIntervalMs */
#define TASK_NOTIFY_RESULT_MAX (64 * 1024)    /* a result inlined in notifications/tasks */
enum task_status { TS_WORKING, TS_INPUT_REQUIRED, TS_COMPLETED, TS_FAILED, TS_CANCELLED, TS_COUNT };
extern const char *const task_status_names[TS_COUNT];
void iso_time(uint64_t ms, char out[32]);
int client_has_extension(const struct call *c, const char *ext);
/* Who asks: the principal's user, or "" without auth. */
const char *call_principal(const struct call *c);
/* Answer -32021 naming the tasks extension as required. */
void missing_tasks_capability(struct call *c, const char *why);
/* Should this tools/call run as a task (1)? -1: an error was answered. */
int task_wanted(struct call *c, const struct tool_def *t);
/* The call's command started: make it a task (now, or after the tool's
 * task_after). -1 when out of memory. */
int task_begin(struct call *c);
/* The call runs as a task (created or being created). */
int call_is_task(const struct call *c);
void task_note(struct call *c, const char *text);
int task_asking(const struct call *c, const char *key);
void task_ask(struct call *c, const char *key, const char *method, const cJSON *params);
void task_input_required(struct call *c);
struct tool_result;
void task_tool_done(struct call *c, struct tool_result *r);
void task_plugin_done(struct call *c, cJSON *res, int timed_out);
void task_call_gone(struct call *c);

/* t_tasks.c: a call freed while its storage read (tasks methods) is out;
 * a record as tasks/get shows it (small: the result left out when large);
 * a record changed, told to every worker's listen streams. */
void task_op_forget(struct call *c);
cJSON *task_detailed(const cJSON *rec, const char *id, int small);
void tasks_publish(struct mcp *m, const char *hid, const cJSON *rec);
void tasks_listen_start(struct mcp *m);
void tasks_listen_stop(struct mcp *m);

/* line.c: a message to a client on a line transport. */
void line_write(struct mcp_line *l, const char *json);

/* t_prompts.c: a prompt's argument by name (completion asks too). */
const struct prompt_arg *prompt_arg(const struct prompt_def *p, const char *name);

/* changes.c: change notifications. */
int listener_wants(const struct call *c, const char *what, const char *uri);
char *change_notification(const char *what, const char *uri, const cJSON *subscription);
void change_from_anywhere(const char *what, const char *uri, void *arg);
int broadcast(struct mcp *m, const char *what, const char *uri);
void watch_files(struct mcp *m);

/* The methods (dispatch), in their families' files. */
void m_initialize(struct call *c);      /* t_lifecycle.c */
void m_ping(struct call *c);
void m_set_level(struct call *c);
void m_discover(struct call *c);
void m_tools_list(struct call *c);      /* t_tools.c */
void m_tools_call(struct call *c);
void m_resources_list(struct call *c);  /* t_resources.c */
void m_templates_list(struct call *c);
void m_resources_read(struct call *c);
void m_subscribe(struct call *c);
void m_unsubscribe(struct call *c);
void m_skills_list(struct call *c);     /* t_skills.c */
void m_skills_get(struct call *c);
void m_directory_read(struct call *c);
int skill_read(struct call *c, const char *uri);
void m_prompts_list(struct call *c);    /* t_prompts.c */
void m_prompts_get(struct call *c);
void m_complete(struct call *c);        /* t_complete.c */
void m_tasks_get(struct call *c);       /* t_tasks.c */
void m_tasks_update(struct call *c);
void m_tasks_cancel(struct call *c);
void m_listen(struct call *c);          /* changes.c */

#endif
