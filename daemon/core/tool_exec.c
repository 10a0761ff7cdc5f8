#include "tool_exec.h"
#include "tool_pool.h"
#include "errtail.h"
#include "metrics.h"
#include "defs.h"
#include "json.h"
#include "log.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHANNEL_FD 3
#define CHANNEL_LINE_MAX (4 * 1024 * 1024)
#define KILL_GRACE_MS 2000

struct tool_run {
	struct tool_exec *te;
	pid_t pid;
	struct bufferevent *in, *out, *err, *chan;
	struct event *timer;
	const struct tool_run_callbacks *cb;
	void *arg;
	struct evbuffer *outbuf;
	struct errtail stderr_tail;
	uint64_t max_output;
	uint64_t timeout_ms;
	int exited, status;
	int out_eof, err_eof;
	int timed_out, output_exceeded, cancelled;
	int channel_exceeded;       /* answers it did not read: stopped */
	int killed;                 /* SIGTERM sent; SIGKILL follows */
	int abandoned;
	uint64_t ends_at;           /* its timeout, wall-clock ms */
	int at_deadline;            /* its timer is the invocation's deadline */
	char name[64];
	const struct command_def *cmd;  /* for max_concurrent */
	struct pool_call *pc;       /* a call to a persistent process: all is there */
	LIST_ENTRY(tool_run) link;
};

struct tool_exec {
	struct event_base *base;
	struct event *sigchld;
	unsigned max_processes;
	unsigned running;
	size_t arg_max;             /* the kernel's limit on argv + envp */
	char path_env[4096];
	uint64_t deadline_ms;       /* tool_exec_set_invocation; 0: none */
	char trace_env[160];        /* _X_AMZN_TRACE_ID=..., or "" */
	LIST_HEAD(, tool_run) runs;
	struct pools *pools;        /* persistent processes (tool_pool.c) */
};

extern char **environ;

static void run_maybe_finish(struct tool_run *run);
static void chan_read(struct bufferevent *bev, void *arg);

/* The channel is done with: what the command sent is read first. */
static void
chan_close(struct tool_run *run)
{
	if (run->chan == NULL)
		return;
	chan_read(run->chan, run);
	if (run->chan != NULL) {
		bufferevent_free(run->chan);
		run->chan = NULL;
	}
}

int
tool_env_name(char *out, size_t len, const char *prefix, const char *name)
{
	if (len == 0)
		return -1;
	size_t o = 0;
	for (const char *p = prefix; *p; p++) {
		if (o + 1 >= len)
			goto cut;
		out[o++] = *p;
	}
	for (const char *p = name; *p; p++) {
		char c = *p;
		if (o + 1 >= len)
			goto cut;
		out[o++] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) ? c : '_';
	}
	out[o] = '\0';
	return 0;
cut:
	out[o] = '\0';
	return -1;
}

/* A deadline before the run's own timeout replaces it. */
static void
cap_at_deadline(struct tool_run *run)
{
	uint64_t d = run->te->deadline_ms;
	if (d == 0 || run->killed || run->exited || d >= run->ends_at)
		return;
	uint64_t now = wall_ms(), left = d > now ? d - now : 0;
	struct timeval tv = { (time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000 };
	run->at_deadline = 1;
	evtimer_add(run->timer, &tv);
}

void
tool_exec_set_invocation(struct tool_exec *te, uint64_t deadline_ms, const char *trace_id)
{
	te->trace_env[0] = '\0';
	if (trace_id != NULL && (size_t)snprintf(te->trace_env, sizeof(te->trace_env), "_X_AMZN_TRACE_ID=%s",
	    trace_id) >= sizeof(te->trace_env))
		te->trace_env[0] = '\0';   /* a cut one would be wrong */
	te->deadline_ms = deadline_ms;
	pools_set_deadline(te->pools, deadline_ms);
	struct tool_run *run;
	LIST_FOREACH(run, &te->runs, link)
		cap_at_deadline(run);
}

static void
kill_group(struct tool_run *run, int sig)
{
	if (run->pid > 0 && !run->exited)
		kill(-run->pid, sig);
}

static void
timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct tool_run *run = arg;
	if (run->exited) {
		/* The leader is gone but a grandchild keeps a pipe open. */
		kill_group(run, SIGKILL);
		run->out_eof = run->err_eof = 1;
		chan_close(run);
		run_maybe_finish(run);
		return;
	}
	if (!run->killed && run->at_deadline) {
		/* No time left for a grace period: the answer must go out
		 * before the invocation ends. */
		run->timed_out = !run->cancelled && !run->output_exceeded && !run->channel_exceeded;
		run->killed = 1;
		kill_group(run, SIGKILL);
		struct timeval tv = { 0, 100 * 1000 };
		evtimer_add(run->timer, &tv);
		return;
	}
	if (!run->killed) {
		run->timed_out = !run->cancelled && !run->output_exceeded && !run->channel_exceeded;
		run->killed = 1;
		kill_group(run, SIGTERM);
		struct timeval tv = { KILL_GRACE_MS / 1000, (KILL_GRACE_MS % 1000) * 1000 };
		evtimer_add(run->timer, &tv);
		return;
	}
	kill_group(run, SIGKILL);
}

static void
terminate(struct tool_run *run)
{
	if (run->killed || run->exited)
		return;
	run->killed = 1;
	kill_group(run, SIGTERM);
	struct timeval tv = { KILL_GRACE_MS / 1000, (KILL_GRACE_MS % 1000) * 1000 };
	evtimer_add(run->timer, &tv);
}

static void
run_free(struct tool_run *run)
{
	LIST_REMOVE(run, link);
	tool_spawn_ended(run->te);
	if (run->in)
		bufferevent_free(run->in);
	if (run->out)
		bufferevent_free(run->out);
	if (run->err)
		bufferevent_free(run->err);
	if (run->chan)
		bufferevent_free(run->chan);
	event_free(run->timer);
	evbuffer_free(run->outbuf);
	free(run);
}

static void
run_maybe_finish(struct tool_run *run)
{
	/* The channel too: what a command sends just before it exits may
	 * still be on its way when its exit and its output's end are seen. */
	if (!run->exited || !run->out_eof || !run->err_eof || run->chan != NULL)
		return;
	if (run->abandoned) {
		run_free(run);
		return;
	}
	struct tool_result res = { 0 };
	res.exited = WIFEXITED(run->status);
	res.status = res.exited ? WEXITSTATUS(run->status) : -1;
	res.signal = WIFSIGNALED(run->status) ? WTERMSIG(run->status) : 0;
	res.timed_out = run->timed_out;
	res.deadline = run->timed_out && run->at_deadline;
	res.output_exceeded = run->output_exceeded;
	res.channel_exceeded = run->channel_exceeded;
	res.cancelled = run->cancelled;
	size_t n = evbuffer_get_length(run->outbuf);
	evbuffer_add(run->outbuf, "", 1);
	res.out = (char *)evbuffer_pullup(run->outbuf, -1);
	res.outlen = n;
	char tail[ERRTAIL_SIZE + 1];
	errtail_copy(&run->stderr_tail, tail);
	res.err_tail = tail;
	errtail_flush(&run->stderr_tail, run->name);
	run->cb->done(run->arg, &res);
	run_free(run);
}

static void
out_read(struct bufferevent *bev, void *arg)
{
	struct tool_run *run = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t have = evbuffer_get_length(run->outbuf);
	size_t n = evbuffer_get_length(in);
	if (run->output_exceeded) {
		evbuffer_drain(in, n);
		return;
	}
	if (have + n > run->max_output) {
		evbuffer_remove_buffer(in, run->outbuf, (size_t)(run->max_output - have));
		evbuffer_drain(in, evbuffer_get_length(in));
		run->output_exceeded = 1;
		log_warn("tool %s: output over %llu bytes; stopping it", run->name,
		    (unsigned long long)run->max_output);
		terminate(run);
		return;
	}
	evbuffer_add_buffer(run->outbuf, in);
}

/* stderr goes to the log line by line, and its tail into the result. */
static void
err_read(struct bufferevent *bev, void *arg)
{
	struct tool_run *run = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char buf[4096];
	int n;
	while ((n = evbuffer_remove(in, buf, sizeof(buf))) > 0)
		errtail_feed(&run->stderr_tail, run->name, buf, (size_t)n);
}

static void
pipe_event(struct bufferevent *bev, short what, void *arg)
{
	struct tool_run *run = arg;
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (bev == run->out) {
		out_read(bev, run);
		run->out_eof = 1;
		bufferevent_disable(bev, EV_READ);
	} else if (bev == run->err) {
		err_read(bev, run);
		run->err_eof = 1;
		bufferevent_disable(bev, EV_READ);
	} else if (bev == run->chan) {
		chan_close(run);
	} else if (bev == run->in) {
		bufferevent_free(run->in);   /* the command closed stdin: fine */
		run->in = NULL;
		return;
	}
	run_maybe_finish(run);
}

static void
in_written(struct bufferevent *bev, void *arg)
{
	struct tool_run *run = arg;
	(void)bev;
	/* All arguments written: close stdin so that the command sees EOF. */
	bufferevent_free(run->in);
	run->in = NULL;
}

static void
chan_read(struct bufferevent *bev, void *arg)
{
	struct tool_run *run = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	for (;;) {
		size_t len;
		char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
		if (line == NULL) {
			if (evbuffer_get_length(in) > CHANNEL_LINE_MAX) {
				log_warn("tool %s: channel line over %d bytes; closing the channel",
				    run->name, CHANNEL_LINE_MAX);
				bufferevent_free(run->chan);
				run->chan = NULL;
			}
			return;
		}
		cJSON *msg = json_parse(line, len, 0, NULL);
		free(line);
		if (msg == NULL || !cJSON_IsObject(msg)) {
			log_warn("tool %s: channel message is not a JSON object", run->name);
			cJSON_Delete(msg);
			continue;
		}
		if (!run->abandoned && !run->cancelled)
			run->cb->message(run->arg, msg);
		cJSON_Delete(msg);
		if (run->chan == NULL)
			return;
	}
}

static void
sigchld_cb(evutil_socket_t sig, short ev, void *arg)
{
	(void)sig;
	(void)ev;
	struct tool_exec *te = arg;
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct tool_run *run;
		if (pools_reap(te->pools, pid, status))
			continue;
		LIST_FOREACH(run, &te->runs, link) {
			if (run->pid == pid) {
				run->exited = 1;
				run->status = status;
				/* Children the command left behind die with it. */
				kill(-pid, SIGKILL);
				if (!run->out_eof || !run->err_eof || run->chan != NULL) {
					struct timeval tv = { 1, 0 };
					evtimer_add(run->timer, &tv);
				}
				run_maybe_finish(run);
				break;
			}
		}
	}
}

#define FIXED_ENV 4           /* PATH, LANG, HOME, MCP_CHANNEL_FD */
/* What execve copies besides argv and envp (the file name) and rounding. */
#define ARG_SLACK 4096

/* The kernel's bound on argv and envp together (fs/exec.c): a quarter of
 * the stack limit, at most three quarters of 8 MiB, at least 128 KiB. */
static size_t
arg_limit(void)
{
	size_t lim = 6 * 1024 * 1024;
	struct rlimit rl;
	if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 4 < lim)
		lim = (size_t)(rl.rlim_cur / 4);
	return lim < 128 * 1024 ? 128 * 1024 : lim;
}

static size_t
strings_size(const char *const *v, size_t n)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += strlen(v[i]) + 1 + sizeof(char *);
	return total;
}

/* What argv, the fixed environment and env: of cmd take. */
static size_t
fixed_size(const struct tool_exec *te, const struct command_def *cmd)
{
	const char *fixed[FIXED_ENV] = { te->path_env, "LANG=C.UTF-8", "HOME=/", "MCP_CHANNEL_FD=3" };
	return ARG_SLACK + strlen(cmd->argv[0]) + 1 + sizeof(char *) +
	    strings_size(cmd->argv, cmd->argc) + strings_size(fixed, FIXED_ENV) +
	    strings_size(cmd->env, cmd->nenv) + sizeof(te->trace_env) + sizeof(char *);
}

size_t
tool_env_room(const struct tool_exec *te, const struct command_def *cmd)
{
	size_t used = fixed_size(te, cmd);
	return used < te->arg_max ? te->arg_max - used : 0;
}

struct tool_exec *
tool_exec_new(struct event_base *base, unsigned max_processes, const char *helper_dir)
{
	struct tool_exec *te = calloc(1, sizeof(*te));
	if (te == NULL)
		return NULL;
	te->base = base;
	te->max_processes = max_processes;
	te->arg_max = arg_limit();
	LIST_INIT(&te->runs);
	snprintf(te->path_env, sizeof(te->path_env), "PATH=%s%s" TOOL_PATH,
	    helper_dir ? helper_dir : "", helper_dir ? ":" : "");
	te->sigchld = evsignal_new(base, SIGCHLD, sigchld_cb, te);
	te->pools = pools_new(te);
	if (te->sigchld == NULL || te->pools == NULL || evsignal_add(te->sigchld, NULL) < 0) {
		if (te->sigchld != NULL)
			event_free(te->sigchld);
		pools_free(te->pools);
		free(te);
		return NULL;
	}
	return te;
}

void
tool_exec_free(struct tool_exec *te)
{
	if (te == NULL)
		return;
	while (!LIST_EMPTY(&te->runs)) {
		struct tool_run *run = LIST_FIRST(&te->runs);
		kill_group(run, SIGKILL);
		run_free(run);
	}
	pools_free(te->pools);
	event_free(te->sigchld);
	free(te);
}

unsigned
tool_exec_running(const struct tool_exec *te)
{
	return te->running;
}

static struct bufferevent *
pipe_bev(struct event_base *base, int fd, struct tool_run *run,
    bufferevent_data_cb rd, bufferevent_data_cb wr)
{
	set_nonblock(fd);
	struct bufferevent *b = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (b == NULL) {
		close(fd);
		return NULL;
	}
	bufferevent_setcb(b, rd, wr, pipe_event, run);
	return b;
}

/* Runs of cmd in this worker, until they are reaped and freed. */
static uint64_t
runs_of(const struct tool_exec *te, const struct command_def *cmd)
{
	uint64_t n = 0;
	const struct tool_run *r;
	LIST_FOREACH(r, &te->runs, link)
		if (r->cmd == cmd)
			n++;
	return n;
}

/* Spawn cmd with env added to its fixed environment: stdin, stdout,
 * stderr and the channel as pipes, the parent's ends in fds (in, out,
 * err, chan), each close-on-exec. Returns the pid, or -1 with err. */
pid_t
tool_spawn(struct tool_exec *te, const struct command_def *cmd, const char *const *env,
    int fds[4], char *err, size_t errlen)
{
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 }, chan[2] = { -1, -1 };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int fa_ok = 0, attr_ok = 0;
	const char **envp = NULL;
	pid_t pid = -1;

	if (te->running >= te->max_processes) {
		snprintf(err, errlen, "too many commands running (limits.tool_processes is %u)",
		    te->max_processes);
		return -1;
	}
	if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan) < 0) {
		snprintf(err, errlen, "cannot create pipes: %s", strerror(errno));
		goto fail;
	}
	size_t nenv = 0, nextra = 0;
	for (; env && env[nextra]; nextra++)
		;
	/* What posix_spawn would fail with E2BIG, refused here with a clear
	 * message (callers keep within tool_env_room). */
	size_t extra = strings_size(env, nextra);
	for (size_t i = 0; i < nextra; i++)
		if (strlen(env[i]) + 1 > TOOL_ENV_STRING_MAX)
			extra = SIZE_MAX;
	if (extra > tool_env_room(te, cmd)) {
		snprintf(err, errlen, "cannot run %s: its arguments and environment exceed the system's limit",
		    cmd->argv[0]);
		goto fail;
	}
	envp = calloc(FIXED_ENV + 2 + cmd->nenv + nextra, sizeof(char *));
	if (envp == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* A fixed environment: nothing of the daemon's own leaks into tools. */
	envp[nenv++] = te->path_env;
	envp[nenv++] = "LANG=C.UTF-8";
	envp[nenv++] = "HOME=/";
	envp[nenv++] = "MCP_CHANNEL_FD=3";
	if (te->trace_env[0] != '\0')
		envp[nenv++] = te->trace_env;
	for (size_t i = 0; i < cmd->nenv; i++)
		envp[nenv++] = cmd->env[i];
	for (size_t i = 0; i < nextra; i++)
		envp[nenv++] = env[i];
	envp[nenv] = NULL;

	if (posix_spawn_file_actions_init(&fa) != 0)
		goto fail_errno;
	fa_ok = 1;
	posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
	posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
	posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
	posix_spawn_file_actions_adddup2(&fa, chan[1], CHANNEL_FD);
	posix_spawn_file_actions_addclosefrom_np(&fa, CHANNEL_FD + 1);
	if (cmd->cwd != NULL)
		posix_spawn_file_actions_addchdir_np(&fa, cmd->cwd);
	if (posix_spawnattr_init(&attr) != 0)
		goto fail_errno;
	attr_ok = 1;
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setpgroup(&attr, 0);   /* its own group: timeouts kill all of it */
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
	    POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_USEVFORK);

	int rc = posix_spawn(&pid, cmd->argv[0], &fa, &attr, (char *const *)cmd->argv,
	    (char *const *)envp);
	if (rc != 0) {
		snprintf(err, errlen, "cannot run %s: %s", cmd->argv[0], strerror(rc));
		pid = -1;
		goto fail;
	}
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	close(chan[1]);
	fds[0] = pin[1];
	fds[1] = pout[0];
	fds[2] = perr[0];
	fds[3] = chan[0];
	te->running++;
	metrics_process(1);
	goto done;

fail_errno:
	snprintf(err, errlen, "cannot start the command: %s", strerror(errno));
fail:
	{
		int all_fds[] = { pin[0], pin[1], pout[0], pout[1], perr[0], perr[1], chan[0], chan[1] };
		for (size_t i = 0; i < sizeof(all_fds) / sizeof(all_fds[0]); i++)
			if (all_fds[i] >= 0)
				close(all_fds[i]);
	}
done:
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	if (attr_ok)
		posix_spawnattr_destroy(&attr);
	free(envp);
	return pid;
}

void
tool_spawn_ended(struct tool_exec *te)
{
	te->running--;
	metrics_process(-1);
}

struct event_base *
tool_exec_base(const struct tool_exec *te)
{
	return te->base;
}

struct tool_run *
tool_run_start(struct tool_exec *te, const char *label, const struct command_def *cmd,
    const char *const *env,
    const char *input, size_t inlen, const struct tool_run_callbacks *cb, void *arg,
    char *err, size_t errlen)
{
	if (cmd->max_concurrent != 0 && runs_of(te, cmd) >= cmd->max_concurrent) {
		metrics_limited(MXL_CONCURRENT);
		snprintf(err, errlen, "%s is busy: %llu calls of it are running in this worker "
		    "(its max_concurrent); retry later", label,
		    (unsigned long long)cmd->max_concurrent);
		return NULL;
	}
	struct tool_run *run = calloc(1, sizeof(*run));
	if (run == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	run->te = te;
	run->cb = cb;
	run->arg = arg;
	run->max_output = cmd->max_output;
	run->cmd = cmd;
	run->timeout_ms = cmd->timeout_ms;
	snprintf(run->name, sizeof(run->name), "%s", label);
	if (cmd->persistent) {
		run->pc = pool_call_start(te->pools, run, label, cmd, env, input, inlen, err, errlen);
		if (run->pc == NULL) {
			free(run);
			return NULL;
		}
		return run;
	}
	run->outbuf = evbuffer_new();
	run->timer = evtimer_new(te->base, timer_cb, run);
	if (run->outbuf == NULL || run->timer == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	int fds[4];
	run->pid = tool_spawn(te, cmd, env, fds, err, errlen);
	if (run->pid < 0)
		goto fail;

	LIST_INSERT_HEAD(&te->runs, run, link);
	run->in = pipe_bev(te->base, fds[0], run, NULL, in_written);
	run->out = pipe_bev(te->base, fds[1], run, out_read, NULL);
	run->err = pipe_bev(te->base, fds[2], run, err_read, NULL);
	run->chan = pipe_bev(te->base, fds[3], run, chan_read, NULL);
	if (run->out == NULL || run->err == NULL) {
		/* Without its pipes the run cannot finish: kill it and report. */
		run->out_eof = run->err_eof = 1;
		kill_group(run, SIGKILL);
	} else {
		bufferevent_enable(run->out, EV_READ);
		bufferevent_enable(run->err, EV_READ);
	}
	if (run->chan != NULL)
		bufferevent_enable(run->chan, EV_READ | EV_WRITE);
	if (run->in != NULL) {
		if (inlen > 0) {
			bufferevent_write(run->in, input, inlen);
			bufferevent_enable(run->in, EV_WRITE);
		} else {
			bufferevent_free(run->in);
			run->in = NULL;
		}
	}
	struct timeval tv = { (time_t)(run->timeout_ms / 1000), (suseconds_t)(run->timeout_ms % 1000) * 1000 };
	/* From now, not from the loop's cached time (before this request's
	 * parse and the spawn): a tool gets its whole timeout. */
	event_base_update_cache_time(te->base);
	evtimer_add(run->timer, &tv);
	run->ends_at = wall_ms() + run->timeout_ms;
	cap_at_deadline(run);
	return run;

fail:
	if (run->outbuf)
		evbuffer_free(run->outbuf);
	if (run->timer)
		event_free(run->timer);
	free(run);
	return NULL;
}

/* From tool_pool.c: what the persistent process said for this call. */
void
tool_run_pool_message(struct tool_run *run, const cJSON *msg)
{
	run->cb->message(run->arg, msg);
}

void
tool_run_pool_done(struct tool_run *run, struct tool_result *res)
{
	run->cb->done(run->arg, res);
	free(run);
}

void
tool_run_reply(struct tool_run *run, const char *json_line)
{
	if (run->pc != NULL) {
		pool_call_reply(run->pc, json_line);
		return;
	}
	if (run->chan == NULL || run->channel_exceeded)
		return;
	size_t unread = evbuffer_get_length(bufferevent_get_output(run->chan));
	if (unread > TOOL_CHANNEL_UNREAD_MAX) {
		log_warn("tool %s: does not read its channel (fd 3): %zu bytes of answers wait, "
		    "more than %d; stopping it", run->name, unread, TOOL_CHANNEL_UNREAD_MAX);
		run->channel_exceeded = 1;
		bufferevent_free(run->chan);    /* what waits is dropped */
		run->chan = NULL;
		terminate(run);
		return;
	}
	bufferevent_write(run->chan, json_line, strlen(json_line));
	bufferevent_write(run->chan, "\n", 1);
}

void
tool_run_cancel(struct tool_run *run)
{
	if (run->pc != NULL) {
		pool_call_cancel(run->pc);
		return;
	}
	run->cancelled = 1;
	terminate(run);
}

void
tool_run_abandon(struct tool_run *run)
{
	if (run->pc != NULL) {
		pool_call_abandon(run->pc);   /* no callbacks from now on */
		free(run);
		return;
	}
	run->abandoned = 1;
	run->cancelled = 1;
	terminate(run);
	run_maybe_finish(run);
}

void
tool_exec_drain(struct tool_exec *te)
{
	pools_drain(te->pools);
}

unsigned
tool_exec_persistent(const struct tool_exec *te)
{
	return pools_running(te->pools);
}
