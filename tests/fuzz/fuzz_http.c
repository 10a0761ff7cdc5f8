/* libFuzzer target: the HTTP/1.1 server's read path (daemon/http/http.c) as a
 * client drives it. One http_server listens on a Unix socket on its own
 * event_base; each input is the bytes one client connection sends: it is
 * accepted through the listener as any connection, written, then the
 * client shuts its side down and reads everything the server answers,
 * until the server has closed the connection. Several requests in one
 * input are pipelined on the connection; chunked bodies, 100-continue,
 * errors (and the linger after them) all take their real paths.
 *
 * Routes: "/" and "/mcp" answer at once, echoing the body and a header;
 * "/stream" answers as a chunked stream; "/later" answers from a timer,
 * so that the client's leaving while a handler owns the request is seen
 * (the close callback). Every other path gets the fallback 404.
 *
 * After each input the server must hold no connection: anything else,
 * or a loop that does not end (libFuzzer's -timeout), is a fault.
 * FUZZ_VERBOSE=1 prints what the server answered and its log. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct event_base *base;
static struct http_server *srv;
static struct sockaddr_un addr;
static socklen_t addrlen;
static int verbose;

struct client {
	int fd;
	const uint8_t *data;
	size_t len, off;
	int eof;                /* the server closed the connection */
	struct event *rev, *wev;
};

/* ---- handlers ---- */

static void
answer(struct http_request *r, void *arg)
{
	(void)arg;
	size_t len;
	const char *body = http_request_body(r, &len);
	const char *echo = http_request_header(r, "X-Echo");
	if (echo != NULL)
		http_response_header(r, "X-Echo", echo);
	const char *q = http_request_query(r);
	http_response_header(r, "X-Query", q ? q : "-");
	http_request_log_extra(r, http_request_header(r, "Mcp-Method"));
	/* The fields indexed at parse time, in the case the code asks them. */
	const char *sid = http_request_header(r, "Mcp-Session-Id");
	if (sid != NULL)
		http_response_header(r, "X-Session", sid);
	http_respond(r, 200, "application/octet-stream", body, len);
}

static void
stream(struct http_request *r, void *arg)
{
	(void)arg;
	size_t len;
	const char *body = http_request_body(r, &len);
	if (http_stream_begin(r, 200, "text/event-stream") < 0)
		abort();
	http_stream_write(r, "data: ", 6);
	http_stream_write(r, body, len);
	http_stream_write(r, "\n\n", 2);
	if (http_stream_pending(r) == 0 && len > 0)
		abort();        /* written, so queued until the loop sends it */
	http_stream_end(r);
}

struct later {
	struct http_request *r;
	struct event *ev;
};

static void
later_closed(struct http_request *r, void *arg)
{
	(void)r;
	struct later *l = arg;
	event_free(l->ev);
	free(l);
}

static void
later_fire(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct later *l = arg;
	http_request_on_close(l->r, NULL, NULL);
	http_respond_text(l->r, 202, "answered later");
	event_free(l->ev);
	free(l);
}

static void
later(struct http_request *r, void *arg)
{
	(void)arg;
	struct later *l = calloc(1, sizeof(*l));
	l->r = r;
	l->ev = evtimer_new(base, later_fire, l);
	struct timeval tv = { 0, 0 };
	evtimer_add(l->ev, &tv);
	http_request_on_close(r, later_closed, l);
}

/* ---- the client ---- */

static void
client_read(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct client *c = arg;
	char buf[65536];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n > 0) {
		if (verbose)
			fwrite(buf, 1, (size_t)n, stderr);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	c->eof = 1;
	event_del(c->rev);
	event_del(c->wev);
}

static void
client_write(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct client *c = arg;
	if (c->off < c->len) {
		ssize_t n = write(fd, c->data + c->off, c->len - c->off);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			c->off = c->len;        /* the server closed: stop sending */
		} else if (n > 0) {
			c->off += (size_t)n;
		}
	}
	if (c->off == c->len) {
		shutdown(fd, SHUT_WR);
		event_del(c->wev);
	}
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	verbose = getenv("FUZZ_VERBOSE") != NULL;
	char err[256];
	/* The access log is written (its formatting is on the read path), to
	 * nowhere unless asked for; text or JSON by the input's length. */
	if (log_open(verbose ? "stderr" : "/dev/null", LOG_INFO, LOG_TEXT, err, sizeof(err)) < 0)
		abort();
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	/* mcpd's defaults (config.c), but bodies of at most 64 KiB. */
	struct limits_conf limits = {
		.max_body = 64 * 1024, .max_header = 16 * 1024, .max_connections = 10000,
		.header_timeout_ms = 30000, .body_timeout_ms = 30000, .idle_timeout_ms = 75000,
		.send_timeout_ms = 60000, .json_depth = 64,
	};
	srv = http_server_new(base, &limits);
	if (base == NULL || srv == NULL)
		abort();
	http_server_route(srv, "/", answer, NULL);
	http_server_route(srv, "/mcp", answer, NULL);
	http_server_route(srv, "/stream", stream, NULL);
	http_server_route(srv, "/later", later, NULL);

	/* An abstract socket (Linux): no file to clean up. */
	addr.sun_family = AF_UNIX;
	addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
	    (size_t)snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1, "mcpd-fuzz-http-%d", (int)getpid()));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, addrlen) < 0 || listen(fd, 16) < 0 ||
	    http_server_listen(srv, fd, NULL) < 0) {
		perror("listen");
		abort();
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	log_open(verbose ? "stderr" : "/dev/null", LOG_INFO, size % 2 ? LOG_JSON : LOG_TEXT,
	    err, sizeof(err));
	struct client c = { .data = data, .len = size };
	c.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c.fd < 0)
		abort();
	if (connect(c.fd, (struct sockaddr *)&addr, addrlen) < 0) {
		perror("connect");
		abort();
	}
	c.rev = event_new(base, c.fd, EV_READ | EV_PERSIST, client_read, &c);
	c.wev = event_new(base, c.fd, EV_WRITE | EV_PERSIST, client_write, &c);
	event_add(c.rev, NULL);
	event_add(c.wev, NULL);
	while (!c.eof || http_server_connections(srv) > 0)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(c.rev);
	event_free(c.wev);
	close(c.fd);
	return 0;
}
