/* Persistent tool processes: a pool per tool in each worker. A call is
 * one line on the process's stdin,
 *     {"id":N,"arguments":{...},"env":{"MCP_TOOL_NAME":"...",...}}
 * and its answer one line on stdout,
 *     {"id":N,"output":"text" or any JSON}   or   {"id":N,"error":"message"}
 * while progress, log and questions go on fd 3 as for a one-shot
 * command, each line tagged "call":N (untagged lines belong to the only
 * call in flight). A cancelled call is told as {"cancel":N}; it still
 * gets an answer, or its process is killed after a grace period. A
 * process that dies fails its calls and is started again with back-off;
 * a call past its timeout, an answer past max_output, a line that is no
 * answer all kill the process (and fail its calls). */
#include "tool_pool.h"
#include "tool_result.h"
#include "errtail.h"
#include "defs.h"
#include "json.h"
#include "log.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHAN_LINE_MAX (4 * 1024 * 1024)
#define KILL_GRACE_MS 2000
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000
#define ANSWER_DEPTH 128

struct pool;
struct proc;

struct pool_call {
	struct pool *pool;
	struct proc *proc;          /* in flight there, or NULL: queued */
	struct tool_run *run;       /* NULL: abandoned, no callbacks */
	uint64_t id;
	char *line;                 /* the request, until written */
	size_t linelen;
	struct event *timer;        /* its timeout, then the cancel grace */
	int cancelled, timed_out, channel_exceeded;
	uint64_t ends_at;           /* its timeout, wall-clock ms */
	int at_deadline;            /* its timer is the invocation's deadline */
	int finishing;              /* the timer finishes it (deferred) */
	TAILQ_ENTRY(pool_call) link;
};

TAILQ_HEAD(call_list, pool_call);

struct proc {
	struct pool *pool;
	unsigned index;
	pid_t pid;                  /* 0: not running */
	struct bufferevent *in, *out, *err, *chan;
	struct event *timer;        /* back-off; kill grace; EOF after exit */
	struct call_list calls;
	unsigned ncalls;
	int exited, status, out_eof;
	int killing;                /* SIGTERM sent by mcpd */
	int quick;                  /* killed for a call's timeout or cancel: no back-off */
	int closing;                /* stdin closed: it ends when it likes */
	int backoff;                /* waits to be started again */
	int output_exceeded;
	char why[200];              /* why mcpd killed it, for its calls */
	unsigned fails;             /* deaths in a row, for the back-off */
	struct errtail stderr_tail;  /* its logged count reset at each answer */
};

struct pool {
	struct pools *ps;
	const struct command_def *cmd;
	char name[64];
	struct proc *procs;
	unsigned nprocs;
	struct call_list queue;
	unsigned queued;
	struct call_list finishing; /* cancelled in the queue: done() comes from the loop */
	uint64_t next_id;
	char start_err[256];        /* why the last start failed, or "" */
	LIST_ENTRY(pool) link;
};

struct pools {
	struct tool_exec *te;
	struct event_base *base;
	int draining;
	uint64_t deadline_ms;       /* mcpd --lambda: the invocation's end; 0: none */
	LIST_HEAD(, pool) list;
};

static void dispatch(struct pool *pl);
static void proc_kill(struct proc *pr, const char *why);
static void proc_ended(struct proc *pr);

struct pools *
pools_new(struct tool_exec *te)
{
	struct pools *ps = calloc(1, sizeof(*ps));
	if (ps == NULL)
		return NULL;
	ps->te = te;
	ps->base = tool_exec_base(te);
	LIST_INIT(&ps->list);
	return ps;
}

static void
set_timer(struct event *ev, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	evtimer_add(ev, &tv);
}

/* An invocation's deadline before the call's own timeout replaces it. */
static void
cap_at_deadline(struct pool_call *pc)
{
	uint64_t d = pc->pool->ps->deadline_ms;
	if (d == 0 || pc->cancelled || pc->finishing || d >= pc->ends_at)
		return;
	uint64_t now = wall_ms();
	pc->at_deadline = 1;
	evtimer_del(pc->timer);
	set_timer(pc->timer, d > now ? d - now : 0);
}

static void
call_free(struct pool_call *pc)
{
	if (pc->timer != NULL)
		event_free(pc->timer);
	free(pc->line);
	free(pc);
}

/* The call ends with res: its caller hears it (unless it left). */
static void
call_finish(struct pool_call *pc, struct tool_result *res)
{
	struct pool *pl = pc->pool;
	if (pc->proc != NULL) {
		TAILQ_REMOVE(&pc->proc->calls, pc, link);
		pc->proc->ncalls--;
	} else if (pc->finishing) {
		TAILQ_REMOVE(&pl->finishing, pc, link);
	} else {
		TAILQ_REMOVE(&pl->queue, pc, link);
		pl->queued--;
	}
	struct tool_run *run = pc->run;
	res->cancelled = pc->cancelled;
	call_free(pc);
	if (run != NULL)
		tool_run_pool_done(run, res);
}

static void
call_fail(struct pool_call *pc, const char *tail)
{
	struct tool_result res = { 0 };
	res.exited = 0;
	res.status = -1;
	res.timed_out = pc->timed_out;
	res.deadline = pc->timed_out && pc->at_deadline;
	res.channel_exceeded = pc->channel_exceeded;
	res.out = "";
	res.err_tail = (char *)tail;
	call_finish(pc, &res);
}

static void
call_timer(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct pool_call *pc = arg;
	if (pc->finishing) {            /* cancelled while it waited */
		call_fail(pc, "cancelled");
		return;
	}
	if (pc->proc == NULL) {
		/* Never got a process: no process to stop. */
		pc->timed_out = 1;
		call_fail(pc, "");
		return;
	}
	if (pc->cancelled) {
		char why[160];
		snprintf(why, sizeof(why), "did not answer call %" PRIu64 " within %d ms of its cancellation",
		    pc->id, POOL_CANCEL_GRACE_MS);
		pc->proc->quick = 1;
		proc_kill(pc->proc, why);
		return;
	}
	pc->timed_out = 1;
	char why[160];
	if (pc->at_deadline) {
		/* No time for a grace period: the answer must go out before
		 * the invocation ends. */
		struct proc *pr = pc->proc;
		snprintf(why, sizeof(why), "ran call %" PRIu64 " to the invocation's deadline", pc->id);
		proc_kill(pr, why);
		pr->quick = 1;
		if (pr->killing)
			kill(-pr->pid, SIGKILL);
		return;
	}
	snprintf(why, sizeof(why), "ran call %" PRIu64 " past its timeout (%" PRIu64 " ms)", pc->id,
	    pc->pool->cmd->timeout_ms);
	pc->proc->quick = 1;
	proc_kill(pc->proc, why);
}

/* ---- one process ---- */

static void
proc_kill(struct proc *pr, const char *why)
{
	if (pr->pid <= 0 || pr->exited || pr->killing)
		return;
	log_warn("tool %s: persistent process %d (pid %d) %s; stopping it", pr->pool->name, pr->index,
	    (int)pr->pid, why);
	snprintf(pr->why, sizeof(pr->why), "%s", why);
	pr->killing = 1;
	kill(-pr->pid, SIGTERM);
	set_timer(pr->timer, KILL_GRACE_MS);
}

static void
proc_close_stdin(struct proc *pr)
{
	if (pr->in != NULL) {
		bufferevent_free(pr->in);
		pr->in = NULL;
	}
	pr->closing = 1;
}

static struct pool_call *
find_call(struct proc *pr, const cJSON *id)
{
	if (!cJSON_IsNumber(id))
		return NULL;
	struct pool_call *pc;
	TAILQ_FOREACH(pc, &pr->calls, link)
		if ((double)pc->id == id->valuedouble)
			return pc;
	return NULL;
}

/* One answer line: the call's result. 0, or -1 if it is no answer. */
static int
answer(struct proc *pr, const char *line, size_t len)
{
	cJSON *a = json_parse(line, len, ANSWER_DEPTH, NULL);
	struct pool_call *pc = cJSON_IsObject(a) ? find_call(pr, cJSON_GetObjectItemCaseSensitive(a, "id")) : NULL;
	if (pc == NULL) {
		cJSON_Delete(a);
		return -1;
	}
	const cJSON *output = cJSON_GetObjectItemCaseSensitive(a, "output");
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(a, "error");
	if (error != NULL && !cJSON_IsString(error)) {
		cJSON_Delete(a);
		return -1;
	}
	char *printed = NULL;
	const char *out = "";
	if (cJSON_IsString(error))
		out = error->valuestring;
	else if (cJSON_IsString(output))
		out = output->valuestring;
	else if (output != NULL && !cJSON_IsNull(output))
		out = printed = json_print(output);
	if (out == NULL)
		out = "";
	struct tool_result res = { 0 };
	res.exited = 1;
	res.status = cJSON_IsString(error) ? 1 : 0;
	res.out = (char *)out;
	res.outlen = strlen(out);
	res.err_tail = cJSON_IsString(error) ? (char *)out : "";
	if (res.outlen > pr->pool->cmd->max_output) {
		res.output_exceeded = 1;
		log_warn("tool %s: answer to call %" PRIu64 " over %" PRIu64 " bytes", pr->pool->name, pc->id,
		    pr->pool->cmd->max_output);
	}
	pr->fails = 0;
	pr->stderr_tail.logged = 0;
	call_finish(pc, &res);
	free(printed);
	cJSON_Delete(a);
	return 0;
}

static void
out_read(struct bufferevent *bev, void *arg)
{
	struct proc *pr = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint64_t max = pr->pool->cmd->max_output + POOL_ANSWER_SLACK;
	while (pr->out != NULL && !pr->killing) {
		size_t len;
		char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
		if (line == NULL) {
			if (evbuffer_get_length(in) > max) {
				pr->output_exceeded = 1;
				proc_kill(pr, "wrote an answer over max_output");
			}
			break;
		}
		if (len > max) {
			free(line);
			pr->output_exceeded = 1;
			proc_kill(pr, "wrote an answer over max_output");
			break;
		}
		if (len == 0) {
			free(line);
			continue;
		}
		if (answer(pr, line, len) < 0) {
			char why[200];
			snprintf(why, sizeof(why), "wrote a line on stdout that is no answer to a call in flight: %.80s%s",
			    line, len > 80 ? "..." : "");
			free(line);
			proc_kill(pr, why);
			break;
		}
		free(line);
		if (pr->pool->ps->draining && pr->ncalls == 0)
			proc_close_stdin(pr);
	}
	if (pr->killing && pr->out != NULL)
		evbuffer_drain(in, evbuffer_get_length(in));
	dispatch(pr->pool);
}

/* A line on fd 3: to the call it names, or the only one in flight. */
static void
chan_read(struct bufferevent *bev, void *arg)
{
	struct proc *pr = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	while (pr->chan != NULL) {
		size_t len;
		char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
		if (line == NULL) {
			if (evbuffer_get_length(in) > CHAN_LINE_MAX)
				proc_kill(pr, "wrote a channel line over 4 MiB");
			return;
		}
		cJSON *msg = json_parse(line, len, 0, NULL);
		free(line);
		if (!cJSON_IsObject(msg)) {
			log_warn("tool %s: channel message is not a JSON object", pr->pool->name);
			cJSON_Delete(msg);
			continue;
		}
		const cJSON *tag = cJSON_GetObjectItemCaseSensitive(msg, "call");
		struct pool_call *pc = tag != NULL ? find_call(pr, tag) :
		    pr->ncalls == 1 ? TAILQ_FIRST(&pr->calls) : NULL;
		if (pc == NULL)
			log_warn("tool %s: channel message for no call in flight (tag it with \"call\")",
			    pr->pool->name);
		else if (pc->run != NULL && !pc->cancelled)
			tool_run_pool_message(pc->run, msg);
		cJSON_Delete(msg);
	}
}

static void
err_read(struct bufferevent *bev, void *arg)
{
	struct proc *pr = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char buf[4096];
	int n;
	while ((n = evbuffer_remove(in, buf, sizeof(buf))) > 0)
		errtail_feed(&pr->stderr_tail, pr->pool->name, buf, (size_t)n);
}

static void
pipe_event(struct bufferevent *bev, short what, void *arg)
{
	struct proc *pr = arg;
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (bev == pr->out) {
		out_read(bev, pr);
		pr->out_eof = 1;
		if (pr->out != NULL)
			bufferevent_disable(pr->out, EV_READ);
		if (pr->exited) {
			proc_ended(pr);
		} else if (!pr->killing) {
			/* Its exit is on its way, or it must be stopped. */
			evtimer_del(pr->timer);
			set_timer(pr->timer, 1000);
		}
	} else if (bev == pr->err) {
		err_read(bev, pr);
		bufferevent_disable(bev, EV_READ);
	} else if (bev == pr->chan) {
		chan_read(bev, pr);
		if (pr->chan != NULL)
			bufferevent_disable(pr->chan, EV_READ);
	} else if (bev == pr->in) {
		/* It closed its stdin: it cannot take calls any more. */
		bufferevent_free(pr->in);
		pr->in = NULL;
		pr->closing = 1;
		if (pr->ncalls > 0)
			proc_kill(pr, "closed its stdin");
	}
}

static struct bufferevent *
pipe_bev(struct proc *pr, int fd, bufferevent_data_cb rd)
{
	set_nonblock(fd);
	struct bufferevent *b = bufferevent_socket_new(pr->pool->ps->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (b == NULL) {
		close(fd);
		return NULL;
	}
	bufferevent_setcb(b, rd, NULL, pipe_event, pr);
	if (rd != NULL)
		bufferevent_enable(b, EV_READ);
	return b;
}

static void
proc_free_pipes(struct proc *pr)
{
	struct bufferevent **b[] = { &pr->in, &pr->out, &pr->err, &pr->chan };
	for (size_t i = 0; i < 4; i++) {
		if (*b[i] != NULL) {
			bufferevent_free(*b[i]);
			*b[i] = NULL;
		}
	}
}

static int
proc_start(struct proc *pr, char *err, size_t errlen)
{
	struct pool *pl = pr->pool;
	char instance[32];
	snprintf(instance, sizeof(instance), "MCP_INSTANCE=%u", pr->index);
	const char *env[] = { "MCP_PERSISTENT=1", instance, NULL };
	int fds[4];
	pid_t pid = tool_spawn(pl->ps->te, pl->cmd, env, fds, err, errlen);
	if (pid < 0) {
		snprintf(pl->start_err, sizeof(pl->start_err), "%s", err);
		return -1;
	}
	pl->start_err[0] = '\0';
	pr->pid = pid;
	pr->exited = pr->out_eof = pr->killing = pr->quick = pr->closing = pr->output_exceeded = 0;
	pr->why[0] = '\0';
	memset(&pr->stderr_tail, 0, sizeof(pr->stderr_tail));
	pr->in = pipe_bev(pr, fds[0], NULL);
	pr->out = pipe_bev(pr, fds[1], out_read);
	pr->err = pipe_bev(pr, fds[2], err_read);
	pr->chan = pipe_bev(pr, fds[3], chan_read);
	if (pr->chan != NULL)
		bufferevent_enable(pr->chan, EV_WRITE);
	if (pr->in != NULL)
		bufferevent_enable(pr->in, EV_WRITE);
	if (pr->in == NULL || pr->out == NULL || pr->err == NULL)
		proc_kill(pr, "could not get its pipes");
	log_info("tool %s: persistent process %u started (pid %d)", pl->name, pr->index, (int)pid);
	return 0;
}

static void
proc_timer(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct proc *pr = arg;
	if (pr->backoff) {
		pr->backoff = 0;
		if (pr->pool->ps->draining)
			return;
		char err[256];
		if (proc_start(pr, err, sizeof(err)) < 0) {
			log_warn("tool %s: %s", pr->pool->name, err);
			pr->fails++;
			uint64_t ms = BACKOFF_MIN_MS << (pr->fails < 8 ? pr->fails : 8);
			pr->backoff = 1;
			set_timer(pr->timer, ms < BACKOFF_MAX_MS ? ms : BACKOFF_MAX_MS);
			return;
		}
		dispatch(pr->pool);
		return;
	}
	if (pr->exited) {
		/* A grandchild keeps its stdout open: done waiting. */
		proc_ended(pr);
		return;
	}
	if (pr->killing)
		kill(-pr->pid, SIGKILL);
	else if (pr->out_eof)
		proc_kill(pr, "closed its stdout");
}

/* The process is gone and its output read: its calls fail, and it
 * starts again after a back-off (none after a kill of mcpd's). */
static void
proc_ended(struct proc *pr)
{
	struct pool *pl = pr->pool;
	if (pr->pid <= 0)
		return;
	if (pr->out != NULL && !pr->killing)
		out_read(pr->out, pr);
	if (pr->chan != NULL)
		chan_read(pr->chan, pr);
	evtimer_del(pr->timer);
	proc_free_pipes(pr);
	tool_spawn_ended(pl->ps->te);
	int status = pr->status;
	char how[64];
	if (WIFEXITED(status))
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "was killed by signal %d", WTERMSIG(status));
	else
		snprintf(how, sizeof(how), "ended");
	char tail[ERRTAIL_SIZE + 1];
	size_t tl = errtail_copy(&pr->stderr_tail, tail);
	errtail_flush(&pr->stderr_tail, pl->name);
	int expected = pr->closing && pr->ncalls == 0;
	if (!expected)
		log_warn("tool %s: persistent process %u (pid %d) %s%s", pl->name, pr->index, (int)pr->pid,
		    how, pr->ncalls ? " with calls in flight" : "");
	char msg[ERRTAIL_SIZE + 400];
	if (pr->why[0] != '\0')
		snprintf(msg, sizeof(msg), "tool %s's process was stopped: it %s", pl->name, pr->why);
	else
		snprintf(msg, sizeof(msg), "tool %s's process %s before it answered%s%s", pl->name, how,
		    tl ? "; stderr: " : "", tail);
	int killed_by_us = pr->killing, output_exceeded = pr->output_exceeded, quick = pr->quick;
	pr->pid = 0;
	while (!TAILQ_EMPTY(&pr->calls)) {
		struct pool_call *pc = TAILQ_FIRST(&pr->calls);
		struct tool_result res = { 0 };
		res.exited = 0;
		res.status = -1;
		res.signal = !killed_by_us && WIFSIGNALED(status) ? WTERMSIG(status) : 0;
		res.timed_out = pc->timed_out;
		res.deadline = pc->timed_out && pc->at_deadline;
		res.channel_exceeded = pc->channel_exceeded;
		res.output_exceeded = output_exceeded && !pc->timed_out;
		res.out = "";
		res.err_tail = msg;
		call_finish(pc, &res);
	}
	if (pl->ps->draining || expected) {
		dispatch(pl);           /* calls that wait start it again */
		return;
	}
	/* Killed by mcpd (a timeout, a cancellation, garbage): again at
	 * once; died by itself: after a back-off that grows. */
	uint64_t ms = 0;
	if (!quick) {
		pr->fails++;
		ms = BACKOFF_MIN_MS << (pr->fails < 8 ? pr->fails - 1 : 7);
	}
	pr->backoff = 1;
	set_timer(pr->timer, ms < BACKOFF_MAX_MS ? ms : BACKOFF_MAX_MS);
}

int
pools_reap(struct pools *ps, pid_t pid, int status)
{
	if (ps == NULL)
		return 0;
	struct pool *pl;
	LIST_FOREACH(pl, &ps->list, link) {
		for (unsigned i = 0; i < pl->nprocs; i++) {
			struct proc *pr = &pl->procs[i];
			if (pr->pid != pid || pr->exited)
				continue;
			pr->exited = 1;
			pr->status = status;
			kill(-pid, SIGKILL);    /* what it left behind dies with it */
			if (pr->out_eof || pr->out == NULL) {
				proc_ended(pr);
			} else {
				evtimer_del(pr->timer);
				set_timer(pr->timer, 1000);
			}
			dispatch(pl);
			return 1;
		}
	}
	return 0;
}

/* ---- calls ---- */

static void
send_call(struct proc *pr, struct pool_call *pc)
{
	pc->proc = pr;
	TAILQ_INSERT_TAIL(&pr->calls, pc, link);
	pr->ncalls++;
	bufferevent_write(pr->in, pc->line, pc->linelen);
	free(pc->line);
	pc->line = NULL;
}

/* Calls from the queue to processes with room, starting processes that
 * are not running. Returns with what does not fit still queued. */
static void
dispatch(struct pool *pl)
{
	while (!TAILQ_EMPTY(&pl->queue)) {
		struct proc *best = NULL, *idle = NULL;
		for (unsigned i = 0; i < pl->nprocs; i++) {
			struct proc *pr = &pl->procs[i];
			if (pr->pid > 0 && !pr->exited && !pr->killing && !pr->closing && pr->in != NULL &&
			    pr->ncalls < pl->cmd->concurrency && (best == NULL || pr->ncalls < best->ncalls))
				best = pr;
			else if (pr->pid == 0 && !pr->backoff && idle == NULL)
				idle = pr;
		}
		if (best == NULL && idle != NULL) {
			char err[256];
			if (proc_start(idle, err, sizeof(err)) < 0) {
				log_warn("tool %s: %s", pl->name, err);
				idle->fails++;
				idle->backoff = 1;
				set_timer(idle->timer, BACKOFF_MIN_MS << (idle->fails < 8 ? idle->fails : 8));
				continue;
			}
			best = idle;
			if (best->killing)
				return;
		}
		if (best == NULL)
			return;
		struct pool_call *pc = TAILQ_FIRST(&pl->queue);
		TAILQ_REMOVE(&pl->queue, pc, link);
		pl->queued--;
		send_call(best, pc);
	}
}

static struct pool *
pool_get(struct pools *ps, const struct command_def *cmd, const char *label)
{
	struct pool *pl;
	LIST_FOREACH(pl, &ps->list, link)
		if (pl->cmd == cmd)
			return pl;
	pl = calloc(1, sizeof(*pl));
	if (pl == NULL)
		return NULL;
	pl->procs = calloc(cmd->instances, sizeof(*pl->procs));
	if (pl->procs == NULL) {
		free(pl);
		return NULL;
	}
	pl->ps = ps;
	pl->cmd = cmd;
	pl->nprocs = (unsigned)cmd->instances;
	snprintf(pl->name, sizeof(pl->name), "%s", label);
	TAILQ_INIT(&pl->queue);
	TAILQ_INIT(&pl->finishing);
	for (unsigned i = 0; i < pl->nprocs; i++) {
		pl->procs[i].pool = pl;
		pl->procs[i].index = i;
		TAILQ_INIT(&pl->procs[i].calls);
		pl->procs[i].timer = evtimer_new(ps->base, proc_timer, &pl->procs[i]);
		if (pl->procs[i].timer == NULL) {
			for (unsigned j = 0; j < i; j++)
				event_free(pl->procs[j].timer);
			free(pl->procs);
			free(pl);
			return NULL;
		}
	}
	LIST_INSERT_HEAD(&ps->list, pl, link);
	return pl;
}

/* The request line: id, arguments (input as it is) and the call's
 * environment as an object. */
static char *
request_line(uint64_t id, const char *const *env, const char *input, size_t inlen, size_t *len)
{
	while (inlen > 0 && (input[inlen - 1] == '\n' || input[inlen - 1] == ' '))
		inlen--;
	cJSON *e = cJSON_CreateObject();
	for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
		const char *eq = strchr(env[i], '=');
		if (eq == NULL)
			continue;
		char name[128];
		if ((size_t)(eq - env[i]) >= sizeof(name))
			continue;
		memcpy(name, env[i], (size_t)(eq - env[i]));
		name[eq - env[i]] = '\0';
		cJSON_AddItemToObject(e, name, cJSON_CreateString(eq + 1));
	}
	char *ej = json_print(e);
	cJSON_Delete(e);
	if (ej == NULL)
		return NULL;
	char *line = NULL;
	int n = asprintf(&line, "{\"id\":%" PRIu64 ",\"arguments\":%.*s,\"env\":%s}\n", id,
	    inlen > 0 ? (int)inlen : 2, inlen > 0 ? input : "{}", ej);
	free(ej);
	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return line;
}

struct pool_call *
pool_call_start(struct pools *ps, struct tool_run *run, const char *label,
    const struct command_def *cmd, const char *const *env, const char *input, size_t inlen,
    char *err, size_t errlen)
{
	struct pool *pl = pool_get(ps, cmd, label);
	if (pl == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	uint64_t max_queue = (uint64_t)POOL_QUEUE_PER_SLOT * pl->nprocs * cmd->concurrency;
	if (pl->queued >= max_queue) {
		snprintf(err, errlen, "%u calls already wait for its processes (instances: %u, concurrency: %"
		    PRIu64 ")", pl->queued, pl->nprocs, cmd->concurrency);
		return NULL;
	}
	struct pool_call *pc = calloc(1, sizeof(*pc));
	if (pc == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pc->pool = pl;
	pc->run = run;
	pc->id = ++pl->next_id;
	pc->line = request_line(pc->id, env, input, inlen, &pc->linelen);
	pc->timer = evtimer_new(ps->base, call_timer, pc);
	if (pc->line == NULL || pc->timer == NULL) {
		call_free(pc);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	event_base_update_cache_time(ps->base);  /* the whole timeout, from now */
	set_timer(pc->timer, cmd->timeout_ms);
	pc->ends_at = wall_ms() + cmd->timeout_ms;
	cap_at_deadline(pc);
	TAILQ_INSERT_TAIL(&pl->queue, pc, link);
	pl->queued++;
	dispatch(pl);
	if (pc->proc == NULL && pl->start_err[0] != '\0') {
		/* Not sent, and no process runs: the start that failed is
		 * this call's answer (others retry after a back-off). */
		int any = 0;
		for (unsigned i = 0; i < pl->nprocs; i++)
			any |= pl->procs[i].pid > 0;
		if (!any) {
			TAILQ_REMOVE(&pl->queue, pc, link);
			pl->queued--;
			call_free(pc);
			snprintf(err, errlen, "%s", pl->start_err);
			return NULL;
		}
	}
	return pc;
}

void
pool_call_reply(struct pool_call *pc, const char *json_line)
{
	struct proc *pr = pc->proc;
	if (pr == NULL || pr->chan == NULL || pr->killing || json_line[0] != '{')
		return;
	struct evbuffer *out = bufferevent_get_output(pr->chan);
	if (evbuffer_get_length(out) > TOOL_CHANNEL_UNREAD_MAX) {
		pc->channel_exceeded = 1;
		proc_kill(pr, "does not read its channel (fd 3)");
		return;
	}
	/* Tagged with the call, for a process that serves several. */
	char tag[48];
	int n = snprintf(tag, sizeof(tag), "{\"call\":%" PRIu64 "%s", pc->id, json_line[1] == '}' ? "" : ",");
	bufferevent_write(pr->chan, tag, (size_t)n);
	bufferevent_write(pr->chan, json_line + 1, strlen(json_line + 1));
	bufferevent_write(pr->chan, "\n", 1);
}

void
pool_call_cancel(struct pool_call *pc)
{
	if (pc->cancelled)
		return;
	pc->cancelled = 1;
	if (pc->proc == NULL) {
		/* Out of the queue now, finished from the loop (the caller
		 * expects done() later, as for a process it kills). */
		TAILQ_REMOVE(&pc->pool->queue, pc, link);
		pc->pool->queued--;
		TAILQ_INSERT_TAIL(&pc->pool->finishing, pc, link);
		pc->finishing = 1;
		evtimer_del(pc->timer);
		set_timer(pc->timer, 0);
		return;
	}
	if (pc->proc->in != NULL) {
		char line[64];
		int n = snprintf(line, sizeof(line), "{\"cancel\":%" PRIu64 "}\n", pc->id);
		bufferevent_write(pc->proc->in, line, (size_t)n);
	}
	evtimer_del(pc->timer);
	set_timer(pc->timer, POOL_CANCEL_GRACE_MS);
}

void
pool_call_abandon(struct pool_call *pc)
{
	pc->run = NULL;
	if (pc->proc == NULL) {
		if (pc->finishing) {
			TAILQ_REMOVE(&pc->pool->finishing, pc, link);
		} else {
			TAILQ_REMOVE(&pc->pool->queue, pc, link);
			pc->pool->queued--;
		}
		call_free(pc);
		return;
	}
	pool_call_cancel(pc);
}

void
pools_set_deadline(struct pools *ps, uint64_t deadline_ms)
{
	ps->deadline_ms = deadline_ms;
	struct pool *pl;
	struct pool_call *pc;
	LIST_FOREACH(pl, &ps->list, link) {
		TAILQ_FOREACH(pc, &pl->queue, link)
			cap_at_deadline(pc);
		for (unsigned i = 0; i < pl->nprocs; i++)
			TAILQ_FOREACH(pc, &pl->procs[i].calls, link)
				cap_at_deadline(pc);
	}
}

unsigned
pools_running(const struct pools *ps)
{
	unsigned n = 0;
	const struct pool *pl;
	LIST_FOREACH(pl, &ps->list, link)
		for (unsigned i = 0; i < pl->nprocs; i++)
			n += pl->procs[i].pid > 0;
	return n;
}

void
pools_drain(struct pools *ps)
{
	if (ps == NULL)
		return;
	ps->draining = 1;
	struct pool *pl;
	LIST_FOREACH(pl, &ps->list, link) {
		for (unsigned i = 0; i < pl->nprocs; i++) {
			struct proc *pr = &pl->procs[i];
			if (pr->backoff) {
				evtimer_del(pr->timer);
				pr->backoff = 0;
			}
			if (pr->pid > 0 && pr->ncalls == 0)
				proc_close_stdin(pr);
		}
	}
}

void
pools_free(struct pools *ps)
{
	if (ps == NULL)
		return;
	while (!LIST_EMPTY(&ps->list)) {
		struct pool *pl = LIST_FIRST(&ps->list);
		LIST_REMOVE(pl, link);
		struct call_list *lists[] = { &pl->queue, &pl->finishing };
		for (size_t l = 0; l < 2; l++) {
			while (!TAILQ_EMPTY(lists[l])) {
				struct pool_call *pc = TAILQ_FIRST(lists[l]);
				TAILQ_REMOVE(lists[l], pc, link);
				call_free(pc);
			}
		}
		for (unsigned i = 0; i < pl->nprocs; i++) {
			struct proc *pr = &pl->procs[i];
			while (!TAILQ_EMPTY(&pr->calls)) {
				struct pool_call *pc = TAILQ_FIRST(&pr->calls);
				TAILQ_REMOVE(&pr->calls, pc, link);
				call_free(pc);
			}
			if (pr->pid > 0) {
				kill(-pr->pid, SIGKILL);
				tool_spawn_ended(ps->te);
			}
			proc_free_pipes(pr);
			event_free(pr->timer);
		}
		free(pl->procs);
		free(pl);
	}
	free(ps);
}
