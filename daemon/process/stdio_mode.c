/* mcpd --stdio (stdio_mode.h): the MCP stdio transport. A desktop client
 * starts mcpd and speaks newline-delimited JSON-RPC on its stdin and
 * stdout. One process: no master, no workers, no listen socket; the
 * worker's code alone, on one libevent loop with fds 0 and 1 as
 * bufferevents, nothing blocking. This file frames the lines
 * (lib/linesplit.c: each bounded by limits.max_body; past it the client
 * gets an error and reading goes on at the next newline) and owns the
 * descriptors and the signals; the MCP layer (mcp/line.c) serves the messages through the
 * same calls as the HTTP endpoint. stdout carries nothing but JSON-RPC:
 * logs go to stderr. EOF on stdin, SIGTERM, SIGINT or SIGHUP end it:
 * running commands are killed, what is queued for stdout is written
 * (within shutdown_timeout), exit 0. */
#include "stdio_mode.h"
#include "config.h"
#include "host.h"
#include "jsonrpc.h"
#include "linesplit.h"
#include "log.h"
#include "mcp.h"
#include "metered.h"
#include "plugin.h"
#include "relay.h"
#include "tracing.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The answer to a line over the bound: it cannot be a valid request. */
#define LINE_TOO_LONG_CODE JSONRPC_INVALID_REQUEST

struct sio {
	struct event_base *base;
	struct config *cfg;
	struct mcp *mcp;
	struct mcp_line *line;
	struct bufferevent *in, *out;
	size_t max_line;
	struct linesplit split;
	int ending;
	int status;
	const char *why;
	struct event *resume_ev, *end_ev, *flush_timer;
	struct event *sigs[3];
	int flags[2];               /* fds 0 and 1 as we found them */
};

static void end_soon(struct sio *x, const char *why, int status);

static void
too_long(struct sio *x)
{
	char msg[160];
	snprintf(msg, sizeof(msg), "Invalid Request: a message is at most %llu bytes (limits.max_body); "
	    "this line was skipped", (unsigned long long)x->max_line);
	log_warn("stdio: a line over limits.max_body (%llu bytes) skipped", (unsigned long long)x->max_line);
	mcp_line_error(x->line, LINE_TOO_LONG_CODE, msg);
}

static int
blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

/* Hand complete lines to the MCP layer while it takes them. */
static void
process_lines(struct sio *x, int at_eof)
{
	struct evbuffer *in = bufferevent_get_input(x->in);
	while (!x->ending && !mcp_line_busy(x->line)) {
		const char *text;
		size_t len, take;
		switch (linesplit_next(&x->split, in, at_eof, &text, &len, &take)) {
		case LINE_NONE:
			return;
		case LINE_TOO_LONG:
			too_long(x);
			continue;
		case LINE_OK:
			if (!blank(text, len))
				mcp_line_message(x->line, text, len);
			evbuffer_drain(in, take);
			continue;
		}
	}
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	process_lines(arg, 0);
}

static void
in_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct sio *x = arg;
	if (what & BEV_EVENT_ERROR)
		log_sys(LOG_WARN, "stdio: reading stdin");
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		process_lines(x, 1);
		end_soon(x, "stdin closed", 0);
	}
}

static void
out_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct sio *x = arg;
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
		/* The client closed its end: nobody to answer. */
		evbuffer_drain(bufferevent_get_output(x->out), evbuffer_get_length(bufferevent_get_output(x->out)));
		bufferevent_disable(x->out, EV_WRITE);
		end_soon(x, "stdout closed", 0);
	}
}

/* The last spans are out too (the flush timer bounds the wait). */
static void
loop_exit(void *arg)
{
	struct sio *x = arg;
	event_base_loopexit(x->base, NULL);
}

static void
written_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct sio *x = arg;
	/* Everything queued is out: once ending, that was the last of it. */
	if (x->ending && x->line == NULL)
		tracing_flush(loop_exit, x);
}

/* One message, one line. */
static void
line_out(void *arg, const char *json)
{
	struct sio *x = arg;
	struct evbuffer *o = bufferevent_get_output(x->out);
	if (!(bufferevent_get_enabled(x->out) & EV_WRITE))
		return;
	size_t len = strlen(json);
	/* What waits is bounded (one message may go past it, as on HTTP
	 * streams): a client that stops reading is not buffered for. */
	if (evbuffer_get_length(o) > x->cfg->limits.stream_buffer) {
		log_error("stdio: the client does not read stdout (over limits.stream_buffer, %llu bytes, waiting); ending",
		    (unsigned long long)x->cfg->limits.stream_buffer);
		evbuffer_drain(o, evbuffer_get_length(o));
		bufferevent_disable(x->out, EV_WRITE);
		end_soon(x, "stdout not read", 1);
		return;
	}
	/* Our printers write no raw newline; a newline outside a string is
	 * only white space, and inside one JSON does not allow it. */
	if (memchr(json, '\n', len) != NULL) {
		char *copy = strdup(json);
		if (copy == NULL)
			return;
		for (char *p = copy; (p = strchr(p, '\n')) != NULL; p++)
			*p = ' ';
		evbuffer_add(o, copy, len);
		free(copy);
	} else {
		evbuffer_add(o, json, len);
	}
	evbuffer_add(o, "\n", 1);
}

static void
resume_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	process_lines(arg, 0);
}

/* initialize has its session: the lines held back go on, from the loop. */
static void
line_resume(void *arg)
{
	struct sio *x = arg;
	event_active(x->resume_ev, EV_TIMEOUT, 0);
}

static void
flush_timeout(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct sio *x = arg;
	log_warn("stdio: shutdown_timeout reached with %zu bytes unwritten",
	    evbuffer_get_length(bufferevent_get_output(x->out)));
	event_base_loopexit(x->base, NULL);
}

/* From the loop, never inside a call: ending frees the calls. */
static void
end_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct sio *x = arg;
	log_info("%s: ending", x->why);
	bufferevent_disable(x->in, EV_READ);
	mcp_line_close(x->line);    /* its commands are killed */
	x->line = NULL;
	uint64_t ms = x->cfg->limits.shutdown_timeout_ms;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	evtimer_add(x->flush_timer, &tv);
	if (evbuffer_get_length(bufferevent_get_output(x->out)) == 0 ||
	    !(bufferevent_get_enabled(x->out) & EV_WRITE))
		tracing_flush(loop_exit, x);
}

static void
end_soon(struct sio *x, const char *why, int status)
{
	if (x->ending)
		return;
	x->ending = 1;
	x->why = why;
	x->status = status;
	event_active(x->end_ev, EV_TIMEOUT, 0);
}

static void
signal_cb(evutil_socket_t sig, short ev, void *arg)
{
	(void)ev;
	end_soon(arg, sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "SIGHUP", 0);
}

int
stdio_main(struct config *cfg)
{
	struct sio x = { .cfg = cfg, .max_line = (size_t)cfg->limits.max_body, .flags = { -1, -1 } };
	int rc = 1, attached = 0;
	linesplit_init(&x.split, x.max_line);
	log_set_process("stdio");
	signal(SIGPIPE, SIG_IGN);
	if (cfg->auth.name != NULL || cfg->oauth.enabled)
		log_notice("stdio: auth is not applied: the client is whoever started mcpd");

	/* poll, not epoll: stdin may be a file or /dev/null. */
	struct event_config *ec = event_config_new();
	if (ec != NULL) {
		event_config_require_features(ec, EV_FEATURE_FDS);
		x.base = event_base_new_with_config(ec);
		event_config_free(ec);
	}
	if (x.base == NULL) {
		log_error("cannot create an event loop");
		goto done;
	}
	host_set_worker(x.base, 1);
	relay_alone();
	char why[700];
	if (config_attach_backends(cfg, 0, why, sizeof(why)) < 0) {
		log_error("%s", why);
		goto done;
	}
	attached = 1;
	struct backends b = {
		cfg->storage.ops, cfg->storage.inst,
		cfg->transport.ops, cfg->transport.inst,
	};
	if (tracing_start(x.base, cfg, why, sizeof(why)) < 0) {
		log_error("%s", why);
		goto done;
	}
	if (tracing_enabled()) {    /* for the spans of storage calls */
		metered_names(cfg->storage.name, cfg->transport.name);
		metered_backends(&b);
	}
	x.mcp = mcp_new(x.base, cfg, NULL, &b);
	if (x.mcp == NULL) {
		log_error("cannot set up the MCP layer");
		goto done;
	}
	for (int fd = 0; fd < 2; fd++) {
		x.flags[fd] = fcntl(fd, F_GETFL);
		if (x.flags[fd] < 0) {
			log_sys(LOG_ERROR, "stdio: fd %d", fd);
			goto done;
		}
		fcntl(fd, F_SETFL, x.flags[fd] | O_NONBLOCK);
	}
	x.in = bufferevent_socket_new(x.base, 0, 0);
	x.out = bufferevent_socket_new(x.base, 1, 0);
	x.line = mcp_line_open(x.mcp, line_out, line_resume, &x);
	x.resume_ev = event_new(x.base, -1, 0, resume_cb, &x);
	x.end_ev = event_new(x.base, -1, 0, end_cb, &x);
	x.flush_timer = evtimer_new(x.base, flush_timeout, &x);
	static const int signals[3] = { SIGTERM, SIGINT, SIGHUP };
	for (int i = 0; i < 3; i++) {
		x.sigs[i] = evsignal_new(x.base, signals[i], signal_cb, &x);
		if (x.sigs[i] == NULL || evsignal_add(x.sigs[i], NULL) < 0) {
			log_error("out of memory");
			goto done;
		}
	}
	if (x.in == NULL || x.out == NULL || x.line == NULL || x.resume_ev == NULL ||
	    x.end_ev == NULL || x.flush_timer == NULL) {
		log_error("out of memory");
		goto done;
	}
	bufferevent_setcb(x.in, read_cb, NULL, in_event_cb, &x);
	/* Input waits only while initialize waits for storage: a line and
	 * one byte more is all that is read ahead (enough to tell that a
	 * line is too long). */
	bufferevent_setwatermark(x.in, EV_READ, 0, x.max_line + 2);
	bufferevent_setcb(x.out, NULL, written_cb, out_event_cb, &x);
	if (bufferevent_enable(x.in, EV_READ) < 0 || bufferevent_enable(x.out, EV_WRITE) < 0) {
		log_error("stdio: cannot watch stdin and stdout");
		goto done;
	}
	log_info("serving one client on stdin and stdout");
	event_base_dispatch(x.base);
	rc = x.status;
done:
	if (x.line != NULL)
		mcp_line_close(x.line);
	mcp_free(x.mcp);
	if (attached)
		config_detach_backends(cfg, 0);
	metered_forget();
	tracing_stop();
	for (int i = 0; i < 3; i++)
		if (x.sigs[i] != NULL)
			event_free(x.sigs[i]);
	if (x.resume_ev != NULL)
		event_free(x.resume_ev);
	if (x.end_ev != NULL)
		event_free(x.end_ev);
	if (x.flush_timer != NULL)
		event_free(x.flush_timer);
	if (x.in != NULL)
		bufferevent_free(x.in);
	if (x.out != NULL)
		bufferevent_free(x.out);
	for (int fd = 0; fd < 2; fd++)
		if (x.flags[fd] >= 0)
			fcntl(fd, F_SETFL, x.flags[fd]);
	if (x.base != NULL)
		event_base_free(x.base);
	config_free(cfg);
	return rc;
}
