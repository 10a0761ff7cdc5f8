/* Persistent tool processes (persistent: true): per worker and per tool,
 * up to `instances` processes kept running, each taking `concurrency`
 * calls at a time, one request a line on stdin and one answer a line on
 * stdout; what does not fit waits in a bounded queue. tool_exec.c hands
 * a tool_run of such a tool here, and tool_run_reply/cancel/abandon go
 * through; the protocol is in mcpd.yaml(5), TOOLS. */
#ifndef MCPD_TOOL_POOL_H
#define MCPD_TOOL_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tool_exec;
struct tool_run;
struct tool_result;
struct command_def;
struct cJSON;
struct event_base;
struct pools;
struct pool_call;

/* Calls that may wait for a free process, per process and call slot. */
#define POOL_QUEUE_PER_SLOT 64
/* A persistent process that was told to cancel a call has this long to
 * answer it before it is killed and restarted. */
#define POOL_CANCEL_GRACE_MS 2000
/* What an answer line may carry beyond max_output: its envelope. */
#define POOL_ANSWER_SLACK 4096

struct pools *pools_new(struct tool_exec *te);
void pools_free(struct pools *p);
/* Reload or shutdown: idle processes get EOF on stdin, busy ones when
 * their last call is answered; nothing is started again. */
void pools_drain(struct pools *p);
/* mcpd --lambda: no call runs past deadline_ms (wall-clock ms; 0 lifts
 * it); one that reaches it kills its process at once (deadline). */
void pools_set_deadline(struct pools *p, uint64_t deadline_ms);
/* Processes running (started and not yet ended). */
unsigned pools_running(const struct pools *p);
/* A child exited: 1 if it was a persistent process. */
int pools_reap(struct pools *p, pid_t pid, int status);

/* env: the call's "KEY=value" strings, sent as the request's env
 * object; input: the arguments as JSON (a newline after it is ignored). */
struct pool_call *pool_call_start(struct pools *p, struct tool_run *run, const char *label,
    const struct command_def *cmd, const char *const *env, const char *input, size_t inlen,
    char *err, size_t errlen);
void pool_call_reply(struct pool_call *pc, const char *json_line);
void pool_call_cancel(struct pool_call *pc);
void pool_call_abandon(struct pool_call *pc);

/* tool_exec.c's side. */
pid_t tool_spawn(struct tool_exec *te, const struct command_def *cmd, const char *const *env,
    int fds[4], char *err, size_t errlen);
void tool_spawn_ended(struct tool_exec *te);
struct event_base *tool_exec_base(const struct tool_exec *te);
void tool_run_pool_message(struct tool_run *run, const struct cJSON *msg);
void tool_run_pool_done(struct tool_run *run, struct tool_result *res);

#endif
