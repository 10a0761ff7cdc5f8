#include "worker.h"
#include "admin.h"
#include "metered.h"
#include "tracing.h"
#include "idhash.h"
#include "storage_seal.h"
#include "transport_compress.h"
#include "transport_sign.h"
#include "metrics.h"
#include "channel.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "mcp.h"
#include "host.h"
#include "plugin.h"
#include "relay.h"
#include "util.h"
#include "storage_cache.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stddef.h>
#include <event2/event.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct worker {
	struct event_base *base;
	struct config *cfg;
	struct http_server *http;
	struct http_server *mhttp;      /* metrics.listen, or NULL */
	struct mcp *mcp;
	unsigned id;
	int chan;
	int draining;
	struct event *chan_ev;
	struct event *sig_term;
	struct event *drain_timer;
	struct event *tasks_timer;      /* draining: waits for running tasks */
	struct event *settle_timer;     /* then for storage calls out */
	uint64_t settle_from;           /* monotonic ms */
	struct event *serve_timer;      /* polls the backends until they connect */
	uint64_t serve_wait_from;       /* monotonic ms */
	const struct worker_params *p;
	int serving;
	int fatal;                      /* listening failed: exit as at setup */
	struct chan_msg msg;
};

/* The last spans are out (or there were none): the loop ends; the
 * drain timer still bounds the wait. */
static void
loop_exit(void *arg)
{
	struct worker *w = arg;
	event_base_loopexit(w->base, NULL);
}

/* A new worker waits this long at most for its storage and transport to
 * connect before it takes connections (the others take them meanwhile);
 * past it, it serves all the same (503 and /readyz say why). */
#define CONNECT_WAIT_MS 2000

/* Storage and transport calls still out get their answers before the
 * plugins detach (which drops them unanswered, leaving what waited for
 * them to be freed without its own clean-up), up to SETTLE_MS: a
 * backend that hangs does not hold the stop for long. */
#define SETTLE_MS 1000

static void
settled(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct worker *w = arg;
	if (metered_pending() > 0 && monotonic_ms() - w->settle_from < SETTLE_MS)
		return;
	event_del(w->settle_timer);
	tracing_flush(loop_exit, w);
}

static void
settle(struct worker *w)
{
	if (metered_pending() == 0) {
		tracing_flush(loop_exit, w);
		return;
	}
	w->settle_from = monotonic_ms();
	w->settle_timer = event_new(w->base, -1, EV_PERSIST, settled, w);
	struct timeval tv = { 0, 5000 };
	if (w->settle_timer == NULL || event_add(w->settle_timer, &tv) < 0)
		tracing_flush(loop_exit, w);
}

/* Connections are done; tasks running here may still be (their clients
 * follow them from anywhere), and persistent tool processes that were
 * given end of file may not have exited yet: wait for them, within
 * shutdown_timeout. */
static void
tasks_check(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct worker *w = arg;
	if (mcp_tasks_running(w->mcp) > 0 || mcp_persistent_running(w->mcp) > 0)
		return;
	event_del(w->tasks_timer);
	log_info("all connections and tasks finished; exiting");
	settle(w);
}

static void
drained(void *arg)
{
	struct worker *w = arg;
	unsigned n = mcp_tasks_running(w->mcp), p = mcp_persistent_running(w->mcp);
	if (n == 0 && p == 0) {
		log_info("all connections finished; exiting");
		settle(w);
		return;
	}
	if (n > 0)
		log_info("all connections finished; waiting for %u running task%s", n, n == 1 ? "" : "s");
	if (p > 0)
		log_info("all connections finished; waiting for %u persistent tool process%s to exit", p,
		    p == 1 ? "" : "es");
	w->tasks_timer = event_new(w->base, -1, EV_PERSIST, tasks_check, w);
	struct timeval tv = { 0, 200000 };
	if (w->tasks_timer == NULL || event_add(w->tasks_timer, &tv) < 0)
		event_base_loopexit(w->base, NULL);
}

static void
mdrained(void *arg)
{
	(void)arg;
}

/* metrics.listen: the scrape and nothing else, without auth (bind it
 * where only the monitoring can reach). */
static void
metrics_page(struct http_request *r, void *arg)
{
	struct worker *w = arg;
	admin_metrics_respond(r, w->cfg);
}

static void
drain_timeout(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct worker *w = arg;
	log_warn("shutdown_timeout reached; closing %u connection(s)",
	    http_server_connections(w->http));
	event_base_loopbreak(w->base);
}

static void
worker_drain(struct worker *w, const char *why, const unsigned char *changed)
{
	if (w->draining)
		return;
	w->draining = 1;
	mcp_drain(w->mcp, changed ? changed[0] : 0, changed ? changed[1] : 0, changed ? changed[2] : 0);
	log_info("%s: draining %u connection(s)", why, http_server_connections(w->http));
	uint64_t ms = w->cfg->limits.shutdown_timeout_ms;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	evtimer_add(w->drain_timer, &tv);
	http_server_drain(w->http, drained, w);
	if (w->mhttp != NULL)
		http_server_drain(w->mhttp, mdrained, w);
}

static void
chan_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)ev;
	struct worker *w = arg;
	for (;;) {
		int rc = chan_recv(fd, &w->msg);
		if (rc < 0 && errno == EAGAIN)
			return;
		if (rc <= 0) {
			/* The master is gone: nobody would respawn or stop us. */
			event_del(w->chan_ev);
			worker_drain(w, "master exited", NULL);
			return;
		}
		switch (w->msg.type) {
		case CHAN_QUIT:
			worker_drain(w, "asked to quit", w->msg.len >= 3 ? w->msg.payload : NULL);
			break;
		case CHAN_TERMINATE:
			event_base_loopbreak(w->base);
			break;
		case CHAN_LOG_FD:
			if (w->msg.fd >= 0)
				log_adopt_fd(w->msg.fd);
			break;
		default:
			if (w->msg.fd >= 0)
				close(w->msg.fd);
			log_warn("unknown message %u from the master", w->msg.type);
		}
	}
}

static void
sigterm_cb(evutil_socket_t sig, short ev, void *arg)
{
	(void)sig;
	(void)ev;
	worker_drain(arg, "SIGTERM", NULL);
}

static void
healthz(struct http_request *r, void *arg)
{
	struct worker *w = arg;
	const char *m = http_request_method(r);
	if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
		http_response_header(r, "Allow", "GET, HEAD");
		http_respond_text(r, 405, "method not allowed");
		return;
	}
	char body[96];
	int n = snprintf(body, sizeof(body), "{\"status\":\"ok\",\"worker\":%u,\"pid\":%d}\n",
	    w->id, (int)getpid());
	http_response_header(r, "Cache-Control", "no-store");
	http_respond(r, 200, "application/json", body, (size_t)n);
}

/* Does the plugin of b say it cannot serve now (why)? */
static int
backend_unready(const struct backend *b, char *why, size_t len)
{
	if (b->lp == NULL)
		return 0;
	const struct mcpd_plugin *d = b->lp->desc;
	return d->size >= offsetof(struct mcpd_plugin, status) + sizeof(d->status) &&
	    d->status != NULL && d->status(b->inst, why, len) != 0;
}

/* Ready when every backend says it can serve: a load balancer takes an
 * instance whose Redis is gone out of rotation instead of sending it
 * requests that can only get 503. */
static void
readyz(struct http_request *r, void *arg)
{
	struct worker *w = arg;
	const char *m = http_request_method(r);
	if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
		http_response_header(r, "Allow", "GET, HEAD");
		http_respond_text(r, 405, "method not allowed");
		return;
	}
	const struct backend *bs[] = { &w->cfg->storage, &w->cfg->transport, &w->cfg->auth };
	const char *what[] = { "storage", "transport", "auth" };
	http_response_header(r, "Cache-Control", "no-store");
	for (size_t i = 0; i < 3; i++) {
		char why[256] = "";
		if (!backend_unready(bs[i], why, sizeof(why)))
			continue;
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "status", "unavailable");
		cJSON_AddStringToObject(o, "backend", what[i]);
		cJSON_AddStringToObject(o, "plugin", bs[i]->name);
		cJSON_AddStringToObject(o, "reason", why[0] ? why : "not ready");
		cJSON_AddNumberToObject(o, "worker", w->id);
		char *body = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		if (body == NULL) {
			http_respond_text(r, 503, "unavailable");
			return;
		}
		http_respond(r, 503, "application/json", body, strlen(body));
		cJSON_free(body);
		return;
	}
	char body[96];
	int n = snprintf(body, sizeof(body), "{\"status\":\"ready\",\"worker\":%u,\"pid\":%d}\n",
	    w->id, (int)getpid());
	http_respond(r, 200, "application/json", body, (size_t)n);
}

static int
drop_privileges(const struct config *c)
{
	if (!c->switch_user)
		return 0;
	if (geteuid() != 0) {
		if (c->uid != geteuid())
			log_notice("not started as root: staying uid %d (user %s not applied)",
			    (int)geteuid(), c->user);
		return 0;
	}
	if (initgroups(c->user, c->gid) < 0) {
		log_sys(LOG_ERROR, "initgroups(%s)", c->user);
		return -1;
	}
	if (setgid(c->gid) < 0) {
		log_sys(LOG_ERROR, "setgid(%d)", (int)c->gid);
		return -1;
	}
	if (setuid(c->uid) < 0) {
		log_sys(LOG_ERROR, "setuid(%d)", (int)c->uid);
		return -1;
	}
	if (c->uid != 0 && setuid(0) == 0) {
		log_error("privileges could be regained after dropping them");
		return -1;
	}
	return 0;
}

/* Take connections: the listen sockets on the loop. -1 on failure. */
static int
start_serving(struct worker *w)
{
	const struct worker_params *p = w->p;
	for (size_t i = 0; i < p->cfg->nlisten; i++) {
		struct http_server *hs = w->http;
		if (p->cfg->listen[i].metrics_only) {
			if (w->mhttp == NULL && ((w->mhttp = http_server_new(w->base, &p->cfg->limits)) == NULL ||
			    http_server_route(w->mhttp, "/metrics", metrics_page, w) < 0)) {
				log_error("cannot set up the metrics listener");
				return -1;
			}
			hs = w->mhttp;
		}
		if (http_server_listen(hs, p->fds[i], p->cfg->listen[i].ssl_ctx) < 0) {
			log_error("cannot serve %s", p->cfg->listen[i].address);
			return -1;
		}
	}
	for (size_t i = 0; i < p->nextra; i++)
		if (http_server_listen(w->http, p->extra_fds[i], NULL) < 0)
			return -1;
	return 0;
}

/* A new worker (a respawn, a reload's) takes connections once its
 * storage and transport are connected, or after CONNECT_WAIT_MS: until
 * then the workers already serving take them, rather than this one
 * answering 503. The master hears "ready" then, so a reload hands over
 * to workers that can serve. */
static void
serve_when_connected(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct worker *w = arg;
	if (w->serving)
		return;
	char why[256];
	if (!w->draining && monotonic_ms() - w->serve_wait_from < CONNECT_WAIT_MS &&
	    (backend_unready(&w->cfg->storage, why, sizeof(why)) ||
	    backend_unready(&w->cfg->transport, why, sizeof(why))))
		return;
	w->serving = 1;
	event_del(w->serve_timer);
	if (w->draining)
		return;
	if (start_serving(w) < 0) {
		w->fatal = 1;
		event_base_loopbreak(w->base);
		return;
	}
	if (chan_send(w->chan, CHAN_READY, NULL, 0, -1) < 0)
		log_sys(LOG_WARN, "telling the master we are ready");
	log_debug("serving");
}

int
worker_main(const struct worker_params *p)
{
	struct worker w = { .cfg = p->cfg, .id = p->id, .chan = p->chan };
	char name[32];
	snprintf(name, sizeof(name), "worker %u", p->id);
	log_set_process(name);

	/* A session of its own: the commands it runs stay in it, whatever
	 * their process group, so that the master can end them if this
	 * worker dies without doing so (killed). */
	if (setsid() < 0)
		log_sys(LOG_WARN, "setsid");
	if (drop_privileges(p->cfg) < 0)
		return WORKER_EXIT_FATAL;

	w.base = event_base_new();
	if (w.base == NULL) {
		log_error("cannot create an event loop");
		return WORKER_EXIT_FATAL;
	}
	w.http = http_server_new(w.base, &p->cfg->limits);
	if (w.http == NULL) {
		log_error("cannot create the HTTP server");
		return WORKER_EXIT_FATAL;
	}
	http_server_route(w.http, "/healthz", healthz, &w);
	http_server_route(w.http, "/readyz", readyz, &w);
	host_set_worker(w.base, p->id);
	metrics_set_endpoint(p->cfg->endpoint);
	if (relay_worker_start(w.base, p->relay, (size_t)p->cfg->limits.stream_buffer) < 0) {
		log_error("cannot start the relay to the other workers");
		return WORKER_EXIT_FATAL;
	}
	/* Backends connect in each worker, after fork and privilege drop. */
	char err[700];
	if (config_attach_backends(p->cfg, 1, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return WORKER_EXIT_FATAL;
	}
	struct backends b = {
		p->cfg->storage.ops, p->cfg->storage.inst,
		p->cfg->transport.ops, p->cfg->transport.inst,
	};
	/* Signing (and sealing) next to the plugin: the metrics time both. */
	storage_seal_backends(&b, &p->cfg->seal);
	idhash_set_key(p->cfg->idkey.n > 0 ? p->cfg->idkey.key[0] : NULL);
	if (transport_sign_backends(&b, &p->cfg->sign, p->cfg->transport.window_ms) < 0) {
		log_error("out of memory");
		return WORKER_EXIT_FATAL;
	}
	/* Outside signing: the signature covers what goes on the wire. */
	if (transport_compress_backends(&b, p->cfg->transport.compress_over) < 0) {
		log_error("out of memory");
		return WORKER_EXIT_FATAL;
	}
	if (tracing_start(w.base, p->cfg, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return WORKER_EXIT_FATAL;
	}
	metered_names(p->cfg->storage.name, p->cfg->transport.name);
	/* Always: its count of calls out lets a stopping worker settle. */
	metered_backends(&b);
	if (p->cfg->storage_cache.entries > 0) {
		const struct mcpd_plugin *td = p->cfg->transport.lp->desc;
		struct storage_cache_conf cc = { p->cfg->storage_cache.entries, p->cfg->storage_cache.ttl_ms };
		if (storage_cache_backends(&b, w.base, &cc,
		    td->size >= offsetof(struct mcpd_plugin, status) + sizeof(td->status) ? td->status : NULL) < 0)
			log_warn("storage cache: cannot subscribe to its invalidations: reading storage directly");
	}
	w.mcp = mcp_new(w.base, p->cfg, w.http, &b);
	if (w.mcp == NULL) {
		log_error("cannot set up the MCP endpoint");
		return WORKER_EXIT_FATAL;
	}

	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);    /* reload is the master's business */
	signal(SIGINT, SIG_IGN);    /* Ctrl-C reaches the master, which tells us */
	signal(SIGQUIT, SIG_IGN);   /* likewise Ctrl-\ */
	signal(SIGUSR1, SIG_IGN);   /* the master sends the reopened log over the channel */
	w.sig_term = evsignal_new(w.base, SIGTERM, sigterm_cb, &w);
	w.chan_ev = event_new(w.base, p->chan, EV_READ | EV_PERSIST, chan_cb, &w);
	w.drain_timer = evtimer_new(w.base, drain_timeout, &w);
	if (w.sig_term == NULL || w.chan_ev == NULL || w.drain_timer == NULL) {
		log_error("out of memory");
		return WORKER_EXIT_FATAL;
	}
	evsignal_add(w.sig_term, NULL);
	event_add(w.chan_ev, NULL);

	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);

	w.p = p;
	w.serve_wait_from = monotonic_ms();
	w.serve_timer = event_new(w.base, -1, EV_PERSIST, serve_when_connected, &w);
	struct timeval poll = { 0, 10000 };
	if (w.serve_timer == NULL || event_add(w.serve_timer, &poll) < 0) {
		log_error("out of memory");
		return WORKER_EXIT_FATAL;
	}
	serve_when_connected(-1, 0, &w);
	if (w.fatal)
		return WORKER_EXIT_FATAL;
	event_base_dispatch(w.base);
	if (w.fatal)
		return WORKER_EXIT_FATAL;

	mcp_free(w.mcp);
	http_server_free(w.http);
	if (w.mhttp != NULL)
		http_server_free(w.mhttp);
	config_detach_backends(p->cfg, 1);
	storage_cache_forget(NULL);
	metered_forget();
	tracing_stop();
	transport_compress_forget();
	transport_sign_forget();
	storage_seal_forget();
	relay_worker_stop();
	event_free(w.sig_term);
	event_free(w.chan_ev);
	event_free(w.drain_timer);
	event_free(w.serve_timer);
	if (w.tasks_timer != NULL)
		event_free(w.tasks_timer);
	if (w.settle_timer != NULL)
		event_free(w.settle_timer);
	event_base_free(w.base);
	return 0;
}
