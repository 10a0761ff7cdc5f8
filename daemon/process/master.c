#include "master.h"
#include "metrics.h"
#include "channel.h"
#include "config.h"
#include "listen.h"
#include "log.h"
#include "notify.h"
#include "relay.h"
#include "registry.h"
#include "tls.h"
#include "util.h"
#include "worker.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SLOTS 1100          /* workers of two generations during a reload */
#define MAX_IDS 513
#define FAST_DEATH_MS 2000      /* a worker that dies sooner is respawned with back-off */
#define MAX_BACKOFF_MS 10000

struct generation {
	struct config *cfg;
	int *fds;
	int *extra;
	size_t nextra;
	unsigned alive, ready, target;
	unsigned fatal;             /* workers that failed at setup: not respawned */
	unsigned number;
};

struct master;

struct slot {
	int used;
	pid_t pid;
	unsigned id;
	struct generation *gen;
	int chan;
	struct event *chan_ev;
	int ready;
	int quitting;
	uint64_t quit_deadline_ms;  /* SIGKILL after this, if still running */
	uint64_t started_ms;
	struct master *m;
};

struct master {
	struct event_base *base;
	const char *config_path;
	struct generation *cur;     /* serving */
	struct generation *next;    /* being started by a reload */
	struct slot slots[MAX_SLOTS];
	struct listen_set listens;
	unsigned fast_deaths[MAX_IDS];
	struct event *respawn_ev[MAX_IDS];
	int started;                /* READY=1 sent once */
	int stopping;
	int exit_status;
	char *pid_file;
	struct event *stop_timer;
	struct event *watch_timer;  /* once a second: overdue workers, reload deadline */
	uint64_t reload_deadline_ms;
	struct event *sig_ev;
	int sig_pipe[2];
	struct relay_master *relay;
	unsigned generations;
	struct chan_msg msg;
};

static const int handled_signals[] = { SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGCHLD };

static void master_stop(struct master *m, const char *why);
static int spawn(struct master *m, struct generation *g, unsigned id);
static void check_ready(struct master *m);

/* ---- generations ---- */

static void
log_config_error(const char *msg, void *arg)
{
	(void)arg;
	log_error("%s", msg);
}

static void
gen_free(struct generation *g)
{
	if (g == NULL)
		return;
	config_free(g->cfg);
	free(g->fds);
	free(g->extra);
	free(g);
}

static void
gen_maybe_free(struct master *m, struct generation *g)
{
	if (g != m->cur && g != m->next && g->alive == 0)
		gen_free(g);
}

/* Sockets for cfg: reuse what is bound, bind what is new. */
static struct generation *
gen_new(struct master *m, struct config *cfg, struct errlist *errs)
{
	struct generation *g = calloc(1, sizeof(*g));
	if (g == NULL)
		return NULL;
	g->cfg = cfg;
	g->fds = calloc(cfg->nlisten ? cfg->nlisten : 1, sizeof(int));
	if (g->fds == NULL || listen_prepare(&m->listens, cfg, g->fds, &g->extra, &g->nextra, errs) < 0) {
		free(g->fds);
		free(g);
		return NULL;
	}
	g->target = (unsigned)cfg->workers;
	g->number = ++m->generations;
	return g;
}

static void
mark_generation(struct master *m, const struct generation *g)
{
	for (size_t i = 0; i < m->listens.n; i++) {
		struct listen_socket *s = &m->listens.v[i];
		s->mark = 0;
		for (size_t j = 0; j < g->cfg->nlisten; j++)
			if (g->fds[j] == s->fd)
				s->mark = 1;
		for (size_t j = 0; j < g->nextra; j++)
			if (g->extra[j] == s->fd)
				s->mark = 1;
	}
}

static unsigned
slots_used(const struct master *m)
{
	unsigned n = 0;
	for (size_t i = 0; i < MAX_SLOTS; i++)
		n += m->slots[i].used;
	return n;
}

/* ---- pid file ---- */

static int
write_pid_file(const char *path)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_sys(LOG_ERROR, "pid file %s", tmp);
		return -1;
	}
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, (size_t)n) != n || close(fd) < 0) {
		log_sys(LOG_ERROR, "writing pid file %s", tmp);
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) < 0) {
		log_sys(LOG_ERROR, "pid file %s", path);
		unlink(tmp);
		return -1;
	}
	return 0;
}

static void
update_pid_file(struct master *m, const char *path)
{
	if (m->pid_file != NULL && (path == NULL || strcmp(path, m->pid_file) != 0)) {
		unlink(m->pid_file);
		free(m->pid_file);
		m->pid_file = NULL;
	}
	if (path != NULL && write_pid_file(path) == 0 && m->pid_file == NULL)
		m->pid_file = strdup(path);
}

/* ---- status ---- */

static void
notify_status(struct master *m, const char *prefix)
{
	char addrs[512];
	struct sbuf b;
	sbuf_init(&b, addrs, sizeof(addrs));
	const struct config *c = m->cur->cfg;
	for (size_t i = 0; i < c->nlisten; i++)
		sbuf_printf(&b, "%s%s", i ? ", " : "", c->listen[i].address);
	sbuf_mark_cut(&b, "...");
	notify_send("%sSTATUS=%u workers serving %s\nMAINPID=%d", prefix,
	    m->cur->alive, addrs, (int)getpid());
}

static void
describe_exit(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)%s", WTERMSIG(status),
		    strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(buf, len, "ended with status 0x%x", status);
}

static void
kill_logged(pid_t pid, int sig)
{
	if (kill(pid, sig) < 0 && errno != ESRCH)
		log_sys(LOG_ERROR, "kill(%d, %d) (does mcpd have CAP_KILL?)", (int)pid, sig);
}

static int
pages_differ(const struct list_pages *a, const struct list_pages *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	if (a->npages != b->npages)
		return 1;
	for (size_t i = 0; i < a->npages; i++)
		if (strcmp(a->pages[i], b->pages[i]) != 0)
			return 1;
	return 0;
}

/* Ask a worker to drain; it is killed if still there after the grace.
 * The message says which lists a reload changed, so that the worker can
 * tell the clients whose streams it holds. */
static void
slot_quit(struct master *m, struct slot *s)
{
	if (s->quitting)
		return;
	s->quitting = 1;
	s->quit_deadline_ms = monotonic_ms() + s->gen->cfg->limits.shutdown_timeout_ms + 2000;
	unsigned char changed[3] = { 0, 0, 0 };
	const struct config *now = m->next ? m->next->cfg : m->cur->cfg, *was = s->gen->cfg;
	if (now != was) {
		changed[0] = (unsigned char)pages_differ(now->tool_pages, was->tool_pages);
		/* A skill's files (their digests) are resources too. */
		changed[1] = (unsigned char)(pages_differ(now->resource_pages, was->resource_pages) ||
		    pages_differ(now->template_pages, was->template_pages) ||
		    pages_differ(now->skill_pages, was->skill_pages));
		changed[2] = (unsigned char)pages_differ(now->prompt_pages, was->prompt_pages);
	}
	if (chan_send(s->chan, CHAN_QUIT, changed, sizeof(changed), -1) < 0)
		kill_logged(s->pid, SIGTERM);
}

static const char *
plural(unsigned n)
{
	return n == 1 ? "" : "s";
}

/* ---- reload ---- */

static void
commit_reload(struct master *m)
{
	struct generation *old = m->cur;
	for (size_t i = 0; i < MAX_SLOTS; i++)
		if (m->slots[i].used && m->slots[i].gen == old)
			slot_quit(m, &m->slots[i]);
	for (unsigned id = 0; id < MAX_IDS; id++) {
		if (m->respawn_ev[id] != NULL)
			event_del(m->respawn_ev[id]);
		m->fast_deaths[id] = 0;
	}
	m->cur = m->next;
	m->next = NULL;
	mark_generation(m, m->cur);
	listen_close_unmarked(&m->listens);
	update_pid_file(m, m->cur->cfg->pid_file);
	gen_maybe_free(m, old);
	metrics_reload(1);
	log_notice("reload complete: configuration %u serving with %u worker%s",
	    m->cur->number, m->cur->alive, plural(m->cur->alive));
	notify_status(m, "READY=1\n");
}

static void
abort_reload(struct master *m, const char *why)
{
	metrics_reload(0);
	struct generation *g = m->next;
	log_error("reload failed: %s; the previous configuration keeps serving", why);
	for (size_t i = 0; i < MAX_SLOTS; i++)
		if (m->slots[i].used && m->slots[i].gen == g)
			slot_quit(m, &m->slots[i]);
	m->next = NULL;
	mark_generation(m, m->cur);
	listen_close_unmarked(&m->listens);
	if (m->cur->cfg->log.file != NULL) {
		char err[256];
		if (log_open(m->cur->cfg->log.file, m->cur->cfg->log.level,
		    m->cur->cfg->log.format, err, sizeof(err)) < 0)
			log_error("%s", err);
	}
	gen_maybe_free(m, g);
	notify_send("READY=1\nSTATUS=reload failed: %s", why);
}

static void
reload(struct master *m)
{
	if (m->stopping)
		return;
	if (m->next != NULL) {
		log_warn("SIGHUP: a reload is already in progress");
		return;
	}
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	notify_send("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
	    (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
	log_notice("SIGHUP: reloading %s", m->config_path);

	struct errlist errs = { 0 };
	struct config *cfg = config_load(m->config_path, &errs);
	if (cfg != NULL && tls_load_config(cfg, &errs) < 0) {
		config_free(cfg);
		cfg = NULL;
	}
	if (cfg == NULL) {
		errlist_each(&errs, log_config_error, NULL);
		errlist_free(&errs);
		metrics_reload(0);
		log_error("reload failed: configuration has errors; the previous configuration keeps serving");
		notify_send("READY=1\nSTATUS=reload failed: configuration has errors");
		return;
	}
	struct generation *g = gen_new(m, cfg, &errs);
	if (g == NULL) {
		errlist_each(&errs, log_config_error, NULL);
		errlist_free(&errs);
		config_free(cfg);
		metrics_reload(0);
		log_error("reload failed; the previous configuration keeps serving");
		notify_send("READY=1\nSTATUS=reload failed: cannot listen");
		return;
	}
	errlist_free(&errs);
	metrics_config(cfg);
	char err[256];
	if (log_open(cfg->log.file, cfg->log.level, cfg->log.format, err, sizeof(err)) < 0)
		log_error("%s; keeping the previous log destination", err);
	m->next = g;
	m->reload_deadline_ms = monotonic_ms() + 60000;
	for (unsigned id = 1; id <= g->target; id++) {
		if (spawn(m, g, id) < 0) {
			abort_reload(m, "cannot start workers");
			return;
		}
	}
}

/* ---- workers ---- */

static void
chan_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)ev;
	struct slot *s = arg;
	struct master *m = s->m;
	for (;;) {
		int rc = chan_recv(fd, &m->msg);
		if (rc < 0 && errno == EAGAIN)
			return;
		if (rc <= 0) {
			/* The worker is exiting; SIGCHLD will tell us how. */
			event_del(s->chan_ev);
			return;
		}
		if (m->msg.fd >= 0)
			close(m->msg.fd);
		if (m->msg.type != CHAN_READY || s->ready)
			continue;
		s->ready = 1;
		s->gen->ready++;
		log_debug("worker %u (pid %d) ready", s->id, (int)s->pid);
		check_ready(m);
	}
}

/* Every worker that can start has reported ready. */
static int
gen_ready(const struct generation *g)
{
	return g->ready > 0 && g->ready + g->fatal >= g->target;
}

static void
check_ready(struct master *m)
{
	if (m->next != NULL && gen_ready(m->next)) {
		commit_reload(m);
	} else if (!m->started && !m->stopping && gen_ready(m->cur)) {
		m->started = 1;
		log_notice("mcpd ready: %u worker%s", m->cur->alive, plural(m->cur->alive));
		notify_status(m, "READY=1\n");
	}
}

static int
spawn(struct master *m, struct generation *g, unsigned id)
{
	struct slot *s = NULL;
	for (size_t i = 0; i < MAX_SLOTS; i++) {
		if (!m->slots[i].used) {
			s = &m->slots[i];
			break;
		}
	}
	if (s == NULL) {
		log_error("too many worker processes");
		return -1;
	}
	int sv[2], rv[2];
	if (chan_pair(sv) < 0) {
		log_sys(LOG_ERROR, "socketpair");
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, rv) < 0) {
		log_sys(LOG_ERROR, "socketpair");
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	metrics_slot_begin((unsigned)(s - m->slots));
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid_t pid = fork();
	if (pid < 0) {
		log_sys(LOG_ERROR, "fork");
		sigprocmask(SIG_SETMASK, &old, NULL);
		close(sv[0]);
		close(sv[1]);
		close(rv[0]);
		close(rv[1]);
		return -1;
	}
	if (pid == 0) {
		/* Child: the master's signal handlers would write into the
		 * master's event loop; put them back before anything else. */
		for (size_t i = 0; i < sizeof(handled_signals) / sizeof(handled_signals[0]); i++)
			signal(handled_signals[i], SIG_DFL);
		close(sv[0]);
		close(rv[0]);
		relay_master_close_fds(m->relay);
		close(m->sig_pipe[0]);
		close(m->sig_pipe[1]);
		for (size_t i = 0; i < MAX_SLOTS; i++)
			if (m->slots[i].used)
				close(m->slots[i].chan);
		metrics_attach((unsigned)(s - m->slots));
		mark_generation(m, g);
		for (size_t i = 0; i < m->listens.n; i++)
			if (!m->listens.v[i].mark)
				close(m->listens.v[i].fd);
		struct worker_params p = {
			.cfg = g->cfg, .fds = g->fds, .extra_fds = g->extra, .nextra = g->nextra,
			.chan = sv[1], .relay = rv[1], .id = id,
		};
		/* exit, not _exit: LeakSanitizer checks workers too */
		exit(worker_main(&p));
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(sv[1]);
	close(rv[1]);
	if (relay_master_add(m->relay, rv[0], (unsigned)(s - m->slots), (size_t)g->cfg->limits.stream_buffer) < 0) {
		log_error("cannot set up the relay to worker %u", id);
		close(rv[0]);
	}
	memset(s, 0, sizeof(*s));
	s->used = 1;
	s->pid = pid;
	s->id = id;
	s->gen = g;
	s->chan = sv[0];
	s->m = m;
	s->started_ms = monotonic_ms();
	s->chan_ev = event_new(m->base, sv[0], EV_READ | EV_PERSIST, chan_cb, s);
	event_add(s->chan_ev, NULL);
	g->alive++;
	metrics_worker_started();
	log_info("started worker %u (pid %d)", id, (int)pid);
	return 0;
}

static void
respawn_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct master *m = arg;
	if (m->stopping)
		return;
	/* Start every missing worker whose back-off has elapsed. */
	unsigned present[MAX_IDS] = { 0 };
	for (size_t i = 0; i < MAX_SLOTS; i++)
		if (m->slots[i].used && m->slots[i].gen == m->cur && !m->slots[i].quitting)
			present[m->slots[i].id] = 1;
	for (unsigned id = 1; id <= m->cur->target; id++) {
		if (present[id])
			continue;
		if (m->respawn_ev[id] != NULL && evtimer_pending(m->respawn_ev[id], NULL))
			continue;
		spawn(m, m->cur, id);
	}
}

static void
schedule_respawn(struct master *m, unsigned id, uint64_t delay_ms)
{
	if (m->respawn_ev[id] == NULL)
		m->respawn_ev[id] = evtimer_new(m->base, respawn_cb, m);
	struct timeval tv = { (time_t)(delay_ms / 1000), (suseconds_t)(delay_ms % 1000) * 1000 };
	evtimer_add(m->respawn_ev[id], &tv);
}

static void
finish_if_done(struct master *m)
{
	if (m->stopping && slots_used(m) == 0) {
		update_pid_file(m, NULL);
		log_notice("exiting");
		event_base_loopexit(m->base, NULL);
	}
}

/* The processes of session sid, found in /proc: a worker is a session
 * leader (worker.c), so what its commands started, in whatever process
 * group, is in its session until it leaves it with setsid. */
static unsigned
kill_session(pid_t sid)
{
	DIR *d = opendir("/proc");
	if (d == NULL)
		return 0;
	unsigned n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		char path[64], buf[512];
		snprintf(path, sizeof(path), "/proc/%.20s/stat", e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;
		buf[len] = '\0';
		/* pid (comm) state ppid pgrp session ...; comm may hold anything */
		char *p = strrchr(buf, ')');
		int ppid, pgrp, session;
		char state;
		if (p == NULL || sscanf(p + 1, " %c %d %d %d", &state, &ppid, &pgrp, &session) != 4)
			continue;
		pid_t pid = (pid_t)atoi(e->d_name);
		if (session != sid || pid == sid || state == 'Z' || state == 'X')
			continue;
		/* The group too: a child forked meanwhile is in it. */
		if (pgrp > 1 && pgrp != sid)
			kill(-pgrp, SIGKILL);
		if (kill(pid, SIGKILL) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* A worker has exited (not reaped yet, so that its pid, the id of its
 * session, cannot be taken by another process): its commands die with
 * it, whether it was killed or left them behind. */
static void
end_worker_session(struct master *m, pid_t pid)
{
	struct slot *s = NULL;
	for (size_t i = 0; i < MAX_SLOTS; i++)
		if (m->slots[i].used && m->slots[i].pid == pid)
			s = &m->slots[i];
	if (s == NULL)
		return;
	unsigned n = kill_session(pid);
	if (n == 0)
		return;
	log_notice("worker %u (pid %d) left %u command process%s running; killed",
	    s->id, (int)pid, n, n == 1 ? "" : "es");
	kill_session(pid);      /* one that was forked as the others were killed */
}

static void
child_exited(struct master *m, pid_t pid, int status)
{
	struct slot *s = NULL;
	for (size_t i = 0; i < MAX_SLOTS; i++)
		if (m->slots[i].used && m->slots[i].pid == pid)
			s = &m->slots[i];
	if (s == NULL)
		return;
	struct generation *g = s->gen;
	unsigned id = s->id;
	int quitting = s->quitting, was_ready = s->ready;
	uint64_t lived = monotonic_ms() - s->started_ms;
	event_free(s->chan_ev);
	close(s->chan);
	relay_master_remove(m->relay, (unsigned)(s - m->slots));
	metrics_slot_end((unsigned)(s - m->slots));
	s->used = 0;
	g->alive--;
	if (was_ready)
		g->ready--;

	char how[128];
	describe_exit(status, how, sizeof(how));
	int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	int fatal = WIFEXITED(status) && WEXITSTATUS(status) == WORKER_EXIT_FATAL;

	if (m->stopping || quitting) {
		if (clean)
			log_info("worker %u (pid %d) finished", id, (int)pid);
		else
			log_warn("worker %u (pid %d) %s while stopping", id, (int)pid, how);
		gen_maybe_free(m, g);
		finish_if_done(m);
		return;
	}
	metrics_worker_died(fatal ? MXD_SETUP : WIFSIGNALED(status) ? MXD_SIGNAL : MXD_EXIT);
	if (g == m->next) {
		/* A new configuration whose workers die is not applied. */
		log_error("new worker %u (pid %d) %s", id, (int)pid, how);
		abort_reload(m, fatal ? "a new worker failed to start" : "a new worker died");
		return;
	}
	if (fatal) {
		g->fatal++;
		log_error("worker %u (pid %d) failed to start; not respawning it", id, (int)pid);
		if (g->alive == 0) {
			m->exit_status = 1;
			master_stop(m, "no worker could start");
			return;
		}
		check_ready(m);
		return;
	}
	uint64_t delay = 0;
	if (lived < FAST_DEATH_MS) {
		/* The first early death is respawned at once; repeated ones
		 * wait 100ms, 200ms, ... up to MAX_BACKOFF_MS. */
		unsigned n = m->fast_deaths[id]++;
		if (n > 0) {
			delay = 100ULL << (n > 8 ? 7 : n - 1);
			if (delay > MAX_BACKOFF_MS)
				delay = MAX_BACKOFF_MS;
		}
	} else {
		m->fast_deaths[id] = 0;
	}
	log_warn("worker %u (pid %d) %s; respawning in %llums", id, (int)pid, how,
	    (unsigned long long)delay);
	schedule_respawn(m, id, delay);
}

/* ---- stop ---- */

static void
stop_timeout(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct master *m = arg;
	for (size_t i = 0; i < MAX_SLOTS; i++) {
		if (m->slots[i].used) {
			log_warn("worker %u (pid %d) still running after shutdown_timeout; killing it",
			    m->slots[i].id, (int)m->slots[i].pid);
			kill_logged(m->slots[i].pid, SIGKILL);
		}
	}
}

static void
watch_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct master *m = arg;
	uint64_t now = monotonic_ms();
	for (size_t i = 0; i < MAX_SLOTS; i++) {
		struct slot *s = &m->slots[i];
		if (s->used && s->quitting && now > s->quit_deadline_ms) {
			log_warn("worker %u (pid %d) did not finish draining in time; killing it",
			    s->id, (int)s->pid);
			kill_logged(s->pid, SIGKILL);
			s->quit_deadline_ms = now + 5000;
		}
	}
	if (m->next != NULL && now > m->reload_deadline_ms)
		abort_reload(m, "new workers did not become ready within 60s");
}

static void
master_stop(struct master *m, const char *why)
{
	if (m->stopping) {
		log_notice("%s again: stopping workers now", why);
		for (size_t i = 0; i < MAX_SLOTS; i++)
			if (m->slots[i].used)
				kill_logged(m->slots[i].pid, SIGKILL);
		return;
	}
	m->stopping = 1;
	log_notice("%s: stopping (up to %llums for requests in flight)", why,
	    (unsigned long long)m->cur->cfg->limits.shutdown_timeout_ms);
	notify_send("STOPPING=1\nSTATUS=stopping");
	/* New connections are refused at once; accepted ones finish. */
	listen_close_all(&m->listens);
	for (unsigned id = 0; id < MAX_IDS; id++)
		if (m->respawn_ev[id] != NULL)
			event_del(m->respawn_ev[id]);
	for (size_t i = 0; i < MAX_SLOTS; i++)
		if (m->slots[i].used)
			slot_quit(m, &m->slots[i]);
	uint64_t ms = m->cur->cfg->limits.shutdown_timeout_ms + 1000;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	m->stop_timer = evtimer_new(m->base, stop_timeout, m);
	evtimer_add(m->stop_timer, &tv);
	finish_if_done(m);
}

/* ---- signals ---- */

static void
reopen_logs(struct master *m)
{
	log_notice("SIGUSR1: reopening log files");
	if (log_reopen() < 0 || m->cur->cfg->log.file == NULL ||
	    strcmp(m->cur->cfg->log.file, "stderr") == 0)
		return;
	for (size_t i = 0; i < MAX_SLOTS; i++)
		if (m->slots[i].used && chan_send(m->slots[i].chan, CHAN_LOG_FD, NULL, 0, log_fd()) < 0)
			log_sys(LOG_WARN, "sending the log file to worker %u", m->slots[i].id);
}

static void
handle_signal(struct master *m, int sig)
{
	switch (sig) {
	case SIGHUP:
		reload(m);
		break;
	case SIGTERM:
		master_stop(m, "SIGTERM");
		break;
	case SIGINT:
		master_stop(m, "SIGINT");
		break;
	case SIGQUIT:
		master_stop(m, "SIGQUIT");
		break;
	case SIGUSR1:
		reopen_logs(m);
		break;
	case SIGCHLD:
		for (;;) {
			siginfo_t si;
			int status;
			memset(&si, 0, sizeof(si));
			if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
				break;
			end_worker_session(m, si.si_pid);
			if (waitpid(si.si_pid, &status, 0) != si.si_pid)
				break;
			child_exited(m, si.si_pid, status);
		}
		break;
	}
}

/* Signals arrive as bytes on a pipe, so that all work happens in the loop.
 * (Not libevent's signal events: their process-wide state would follow the
 * workers through fork.) */
static int signal_pipe_w = -1;

static void
signal_handler(int sig)
{
	int saved = errno;
	unsigned char b = (unsigned char)sig;
	if (write(signal_pipe_w, &b, 1) < 0) {
		/* pipe full: the same signals are already pending */
	}
	errno = saved;
}

static void
signal_pipe_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)ev;
	unsigned char buf[64];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			handle_signal(arg, buf[i]);
}

static int
install_signals(struct master *m)
{
	if (pipe2(m->sig_pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	signal_pipe_w = m->sig_pipe[1];
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = signal_handler;
	sigfillset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	for (size_t i = 0; i < sizeof(handled_signals) / sizeof(handled_signals[0]); i++)
		if (sigaction(handled_signals[i], &sa, NULL) < 0)
			return -1;
	m->sig_ev = event_new(m->base, m->sig_pipe[0], EV_READ | EV_PERSIST, signal_pipe_cb, m);
	if (m->sig_ev == NULL)
		return -1;
	return event_add(m->sig_ev, NULL);
}

static void
raise_fd_limit(const struct config *c)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	rlim_t want = (rlim_t)c->limits.max_connections + 1024;
	if (rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < want)
		log_warn("open file limit %llu is below what limits.max_connections %llu needs (%llu)",
		    (unsigned long long)rl.rlim_cur, (unsigned long long)c->limits.max_connections,
		    (unsigned long long)want);
}

int
master_main(struct config *cfg, const char *config_path)
{
	static struct master m;   /* large; lives for the whole process */
	m.config_path = config_path;
	log_set_process("master");
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(cfg);

	m.base = event_base_new();
	if (m.base == NULL) {
		log_error("cannot create an event loop");
		config_free(cfg);
		return 1;
	}
	if (install_signals(&m) < 0) {
		log_sys(LOG_ERROR, "cannot install signal handlers");
		config_free(cfg);
		return 1;
	}

	m.relay = relay_master_new(m.base);
	m.watch_timer = event_new(m.base, -1, EV_PERSIST, watch_cb, &m);
	struct timeval second = { 1, 0 };
	event_add(m.watch_timer, &second);
	listen_adopt_systemd(&m.listens);
	if (cfg->metrics.enabled) {
		char merr[256];
		if (metrics_init(MAX_SLOTS, merr, sizeof(merr)) < 0)
			log_error("%s; serving without metrics", merr);
	}
	metrics_config(cfg);
	struct errlist errs = { 0 };
	m.cur = gen_new(&m, cfg, &errs);
	if (m.cur == NULL) {
		errlist_each(&errs, log_config_error, NULL);
		errlist_free(&errs);
		config_free(cfg);
		return 1;
	}
	errlist_free(&errs);
	for (size_t i = 0; i < cfg->nlisten; i++)
		log_info("listening on %s%s", cfg->listen[i].address,
		    cfg->listen[i].ssl_ctx ? " (TLS)" : "");
	update_pid_file(&m, cfg->pid_file);
	if (cfg->switch_user && geteuid() != 0)
		log_notice("user: %s is applied only when mcpd starts as root", cfg->user);
	else if (!cfg->switch_user && geteuid() == 0)
		log_warn("running workers as root: set user: in %s", config_path);

	for (unsigned id = 1; id <= m.cur->target; id++) {
		if (spawn(&m, m.cur, id) < 0) {
			m.exit_status = 1;
			master_stop(&m, "cannot start workers");
			break;
		}
	}
	event_base_dispatch(m.base);

	for (unsigned id = 0; id < MAX_IDS; id++)
		if (m.respawn_ev[id] != NULL)
			event_free(m.respawn_ev[id]);
	if (m.stop_timer != NULL)
		event_free(m.stop_timer);
	event_free(m.watch_timer);
	relay_master_free(m.relay);
	event_free(m.sig_ev);
	for (size_t i = 0; i < sizeof(handled_signals) / sizeof(handled_signals[0]); i++)
		signal(handled_signals[i], SIG_DFL);
	close(m.sig_pipe[0]);
	close(m.sig_pipe[1]);
	listen_close_all(&m.listens);
	gen_free(m.cur);
	gen_free(m.next);
	free(m.pid_file);
	event_base_free(m.base);
	return m.exit_status;
}
