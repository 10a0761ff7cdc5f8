/* Running a command for a tool, a resource or a prompt: posix_spawn with
 * no shell (unless the operator wrote shell:), its own process group, a
 * chosen environment, arguments on stdin, stdout and stderr captured up to
 * a cap, a timeout that kills the group, and fd 3 as a JSON-lines channel
 * through which the command talks back (progress, log, elicitation...). */
#ifndef MCPD_TOOL_EXEC_H
#define MCPD_TOOL_EXEC_H

#include "tool_result.h"

#include <stddef.h>
#include <stdint.h>

/* The PATH commands run with (after mcpd-tool's directory), which is also
 * where a command named without a slash is looked up at load. */
#define TOOL_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct event_base;
struct command_def;
struct cJSON;
struct tool_run;


struct tool_run_callbacks {
	/* A JSON-RPC message the command sent on its channel (a notification,
	 * or a request to answer with tool_run_reply). Ownership stays. */
	void (*message)(void *arg, const struct cJSON *msg);
	/* The command finished; the run is freed after this returns. */
	void (*done)(void *arg, struct tool_result *res);
};

struct tool_exec;   /* per worker: reaping children, counting them */

struct tool_exec *tool_exec_new(struct event_base *base, unsigned max_processes,
    const char *helper_dir);
void tool_exec_free(struct tool_exec *te);
unsigned tool_exec_running(const struct tool_exec *te);
/* mcpd --lambda, at each invocation: no command runs past deadline_ms
 * (wall-clock ms since the epoch; 0 lifts it), those running now
 * included; one that reaches it is killed (SIGKILL: no grace) and its
 * result says deadline. Commands started from now get trace_id (or
 * nothing, NULL) as _X_AMZN_TRACE_ID. */
void tool_exec_set_invocation(struct tool_exec *te, uint64_t deadline_ms, const char *trace_id);

/* label names the run in logs (the tool's name). env: extra "KEY=value"
 * strings (NULL-terminated), added to the fixed environment and the
 * operator's env:, within tool_env_room. Returns NULL with err on failure. */
struct tool_run *tool_run_start(struct tool_exec *te, const char *label,
    const struct command_def *cmd, const char *const *env, const char *input, size_t inlen,
    const struct tool_run_callbacks *cb, void *arg, char *err, size_t errlen);
/* Send one JSON line to the command's channel (an answer to its request).
 * A command that leaves more than 4 MiB of them unread is stopped
 * (channel_exceeded). */
void tool_run_reply(struct tool_run *run, const char *json_line);
/* Kill the command's process group; done() still runs, with cancelled. */
void tool_run_cancel(struct tool_run *run);
/* The caller lost interest: no more callbacks; the process is killed. */
void tool_run_abandon(struct tool_run *run);
/* The worker drains (a reload or shutdown): persistent processes end
 * once their calls are answered. */
void tool_exec_drain(struct tool_exec *te);
/* Persistent processes running (started and not yet ended). */
unsigned tool_exec_persistent(const struct tool_exec *te);
/* Name for environment variables: prefix then name with [^A-Za-z0-9] as
 * _, in out[len] (NUL included). -1 if it does not fit: out then holds
 * as much as fits, never more than len bytes. */
int tool_env_name(char *out, size_t len, const char *prefix, const char *name);

/* The kernel's limit on one argument or environment string, its NUL
 * included (MAX_ARG_STRLEN: 32 pages of 4 KiB): a longer one makes
 * execve fail with E2BIG. */
#define TOOL_ENV_STRING_MAX (32 * 4096)
/* Bytes left for the extra environment of cmd's runs (tool_run_start's
 * env): the kernel's limit on argv and envp together (a quarter of the
 * stack limit, at most 6 MiB) less what argv, the fixed environment and
 * the operator's env: take. A string costs its length, its NUL and a
 * pointer. */
size_t tool_env_room(const struct tool_exec *te, const struct command_def *cmd);

#endif
