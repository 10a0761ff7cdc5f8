#include "http.h"
#include "metrics.h"
#include "traceparent.h"
#include "arena.h"
#include "config.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADERS 100
#define MAX_RESPONSE_HEADERS 24
#define STATUS_LINE_MAX 64
#define CHUNK_LINE_MAX 1024
#define MAX_KEEPALIVE_REQUESTS 10000
#define LINGER_MS 2000
/* While draining, an idle keep-alive connection stays open this long so
 * that a request already on its way is answered (with Connection: close)
 * rather than reset. */
#define DRAIN_GRACE_MS 1000
/* While a handler runs we keep reading only to notice the client leaving;
 * pipelined input beyond this waits in the kernel. */
#define HANDLING_INPUT_MAX (64 * 1024)
/* One read(2) of a plain connection takes at most this. */
#define READ_SIZE (16 * 1024)

enum conn_state {
	CS_IDLE,        /* waiting for the first byte of a request */
	CS_HEAD,        /* reading the request head */
	CS_BODY,        /* reading a Content-Length body */
	CS_CHUNKED,     /* reading a chunked body */
	CS_HANDLING,    /* the handler owns the request */
	CS_STREAMING,   /* a streamed response is being written */
	CS_WRITING,     /* the response is queued; waiting for it to leave */
	CS_LINGER,      /* response sent; discarding input before closing */
};

enum chunk_state { CH_SIZE, CH_DATA, CH_DATA_CRLF, CH_TRAILER };

struct header {
	const char *name, *value;
	int id;                 /* its HDR_ number, or -1 (http_known_header) */
};

/* Long enough for every known name, NUL-padded: names are compared in
 * lower case a word at a time. */
union lname {
	char s[32];
	uint64_t w[4];
};

static const struct {
	union lname name;       /* in lower case; found by its first letter (known_by_initial) */
	unsigned char len;
	unsigned char once;     /* must come once: repeated_field */
} known_headers[HDR_KNOWN] = {
#define K(id, name, once) [id] = { { name }, sizeof(name) - 1, once }
	K(HDR_HOST, "host", 1),
	K(HDR_CONTENT_TYPE, "content-type", 1),
	K(HDR_CONTENT_LENGTH, "content-length", 0),
	K(HDR_TRANSFER_ENCODING, "transfer-encoding", 0),
	K(HDR_CONNECTION, "connection", 0),
	K(HDR_EXPECT, "expect", 0),
	K(HDR_ACCEPT, "accept", 0),
	K(HDR_ORIGIN, "origin", 1),
	K(HDR_AUTHORIZATION, "authorization", 1),
	K(HDR_COOKIE, "cookie", 0),
	K(HDR_USER_AGENT, "user-agent", 0),
	K(HDR_TRACEPARENT, "traceparent", 0),
	K(HDR_MCP_SESSION_ID, "mcp-session-id", 1),
	K(HDR_MCP_PROTOCOL_VERSION, "mcp-protocol-version", 1),
	K(HDR_MCP_METHOD, "mcp-method", 1),
	K(HDR_MCP_NAME, "mcp-name", 1),
	K(HDR_LAST_EVENT_ID, "last-event-id", 1),
	K(HDR_AC_REQUEST_HEADERS, "access-control-request-headers", 0),
#undef K
};

struct http_request {
	struct http_conn *conn;
	const char *method, *target, *path, *query;
	size_t path_len;
	int mx_route;           /* 1 + its route's metrics_route, or 0: from path */
	int minor;
	struct header headers[MAX_HEADERS];
	size_t nheaders;
	unsigned char known[HDR_KNOWN]; /* 1 + the index of its first field, or 0 */
	char *body;
	size_t body_len;
	uint64_t content_length;
	int chunked;
	uint64_t start_us;
	size_t head_len;
	struct header resp_headers[MAX_RESPONSE_HEADERS];
	size_t nresp;
	int status;
	size_t bytes_out;
	http_close_fn on_close;
	void *on_close_arg;
	const char *log_extra;
	struct http_log_mcp *log_mcp;   /* or NULL */
	int logged;
	int counted;            /* in the metrics already (http_respond) */
	int sse;                        /* counted in mcpd_sse_streams_open */
	void *user;                     /* the authenticated principal, or NULL */
};

_Static_assert(MAX_HEADERS < 256, "http_request.known holds a header's index + 1");

/* What the connection's timer holds, for the code that re-arms it. */
enum timer_holds {
	TIMER_FIXED,            /* a timeout that stays until it fires or is replaced */
	TIMER_IDLE,             /* the idle timeout: re-armed lazily (idle_until) */
	TIMER_HEAD,             /* a head's: removed once the head is read */
};

struct http_conn {
	struct http_server *srv;
	struct bufferevent *bev;
	/* The connection's one timeout: the header's, the idle one, the
	 * linger, a cut stream's. The idle one is re-armed lazily: while a
	 * request is served it stays as it was, and when it expires before
	 * idle_until it is added again for the rest (an add and a delete per
	 * request were a tenth of the HTTP layer's instructions). */
	struct event *timer;
	uint64_t idle_until;    /* monotonic_us: CS_IDLE ends here */
	enum timer_holds holds; /* what the timer, if pending, holds */
	struct event *done;     /* finishes a response sent whole (sent) */
	/* Plain connections are read here, not by the bufferevent: its reads
	 * ask FIONREAD before each one, an ioctl per request. TLS reads
	 * through the bufferevent. */
	struct event *rev;
	int read_paused;        /* rev removed: read_limited and input full */
	struct arena *arena;
	enum conn_state state;
	int keepalive;          /* keep the connection after this response */
	int linger;             /* unread input remains: linger before close */
	int tls;
	int body_timeout_on;    /* the read timeout is armed (reading a body) */
	int read_limited;       /* the read high watermark is set (handling) */
	int overflowed;         /* a stream past limits.stream_buffer: closing */
	int peer_eof;           /* the client shut down its side: no more input */
	int sent;               /* the response went out whole: finish it (done_cb) */
	int dispatching;        /* a handler runs under dispatch */
	int finish_inline;      /* sent while dispatching: process_input finishes it */
	unsigned nreq;
	size_t searched;        /* bytes of the head already scanned */
	enum chunk_state chunk;
	uint64_t chunk_left;
	size_t chunk_meta;      /* bytes of chunk extensions and trailer fields */
	struct evbuffer *body_buf;
	char remote[64];
	int front_tls;          /* TLS ended in front of us (mcpd --lambda) */
	struct http_request req;
	TAILQ_ENTRY(http_conn) link;
};

struct route {
	char *path;
	size_t len;
	int mx;                 /* 1 + metrics_route(path), or 0 until first served */
	http_handler_fn fn;
	void *arg;
};

struct listener {
	struct evconnlistener *lev;
	SSL_CTX *ssl;
	struct http_server *srv;
};

struct http_server {
	struct event_base *base;
	struct limits_conf limits;
	struct listener **listeners;   /* each allocated alone: callbacks point at them */
	size_t nlisteners;
	struct route *routes;
	size_t nroutes;
	TAILQ_HEAD(, http_conn) conns;
	unsigned nconns;
	int accept_paused;      /* at max_connections */
	struct event *accept_retry;
	int draining;
	void (*drain_done)(void *);
	void *drain_arg;
	const struct timeval *tv_header, *tv_idle;
	struct timeval tv_drain_grace;
	struct timeval tv_body, tv_send;
	char date[96];          /* http_date_lines */
	size_t date_len;
	time_t date_at;
	char head[STATUS_LINE_MAX + 96];  /* status_date_lines */
	size_t head_len;
	int head_status;
	time_t head_at;
};

static void conn_close(struct http_conn *c);
static void process_input(struct http_conn *c);

/* Changing bufferevent timeouts or watermarks costs epoll_ctl calls:
 * only touch them when they change. */
static void
set_body_timeout(struct http_conn *c, int on)
{
	if (c->body_timeout_on == on)
		return;
	c->body_timeout_on = on;
	if (c->rev != NULL) {
		if (!c->read_paused)
			event_add(c->rev, on ? &c->srv->tv_body : NULL);
		return;
	}
	bufferevent_set_timeouts(c->bev, on ? &c->srv->tv_body : NULL, &c->srv->tv_send);
}

/* Reading resumes (a plain connection's read event is added again). */
static void
read_resume(struct http_conn *c)
{
	/* After the client's EOF nothing more is read (as the bufferevent
	 * stops reading then): requests already in are still answered. */
	if (c->rev == NULL || !c->read_paused || c->peer_eof)
		return;
	c->read_paused = 0;
	event_add(c->rev, c->body_timeout_on ? &c->srv->tv_body : NULL);
}

static void
set_read_limit(struct http_conn *c, int on)
{
	if (c->read_limited == on)
		return;
	c->read_limited = on;
	if (c->rev != NULL) {
		if (!on)
			read_resume(c);
		return;
	}
	bufferevent_setwatermark(c->bev, EV_READ, 0, on ? HANDLING_INPUT_MAX : 0);
}

static struct timeval
ms_to_tv(uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
	return tv;
}

const char *
http_status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	}
	return "Unknown";
}

/* "\r\nServer: mcpd\r\nDate: <now>\r\n", which follows the status line
 * of every response: written once a second, its length in *len. */
static const char *
http_date_lines(struct http_server *s, size_t *len)
{
	time_t now = time(NULL);
	if (now != s->date_at) {
		struct tm tm;
		gmtime_r(&now, &tm);
		static const char pre[] = "\r\nServer: mcpd\r\nDate: ";
		memcpy(s->date, pre, sizeof(pre) - 1);
		size_t n = strftime(s->date + sizeof(pre) - 1, sizeof(s->date) - sizeof(pre) - 2,
		    "%a, %d %b %Y %H:%M:%S GMT", &tm);
		memcpy(s->date + sizeof(pre) - 1 + n, "\r\n", 3);
		s->date_len = sizeof(pre) - 1 + n + 2;
		s->date_at = now;
	}
	*len = s->date_len;
	return s->date;
}

/* ---- listeners and connection accounting ---- */

static void
listeners_enable(struct http_server *s, int on)
{
	for (size_t i = 0; i < s->nlisteners; i++) {
		if (s->listeners[i]->lev == NULL)
			continue;
		if (on)
			evconnlistener_enable(s->listeners[i]->lev);
		else
			evconnlistener_disable(s->listeners[i]->lev);
	}
}

static void
accept_retry_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct http_server *s = arg;
	if (!s->draining && !s->accept_paused)
		listeners_enable(s, 1);
}

static void
accept_error_cb(struct evconnlistener *lev, void *arg)
{
	(void)lev;
	struct listener *l = arg;
	struct http_server *s = l->srv;
	int err = EVUTIL_SOCKET_ERROR();
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		/* Out of descriptors: stop accepting for a moment, as nginx does,
		 * instead of spinning on a listener that cannot be served. */
		log_warn("accept: %s; pausing accepts for 500ms", strerror(err));
		listeners_enable(s, 0);
		struct timeval tv = { 0, 500000 };
		evtimer_add(s->accept_retry, &tv);
		return;
	}
	log_warn("accept: %s", strerror(err));
}

static void
conn_reset_request(struct http_conn *c)
{
	struct http_request *r = &c->req;
	r->method = r->target = r->path = r->query = NULL;
	r->path_len = 0;
	r->mx_route = 0;
	r->nheaders = 0;
	memset(r->known, 0, sizeof(r->known));
	r->body = NULL;
	r->body_len = 0;
	r->content_length = 0;
	r->chunked = 0;
	r->head_len = 0;
	r->nresp = 0;
	r->status = 0;
	r->bytes_out = 0;
	r->on_close = NULL;
	r->on_close_arg = NULL;
	r->log_extra = NULL;
	r->log_mcp = NULL;
	r->logged = 0;
	r->counted = 0;
	r->sse = 0;
	r->user = NULL;
	c->searched = 0;
	c->linger = 0;
	arena_reset(c->arena);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	process_input(arg);
}

static void
write_cb(struct bufferevent *bev, void *arg);
static int
response_done(struct http_conn *c);
static void
event_cb(struct bufferevent *bev, short what, void *arg);

/* A plain connection's input: one read of at most READ_SIZE, added to the
 * input buffer, then on as the bufferevent's read callback goes; EOF,
 * errors and the body timeout are told as the bufferevent tells them.
 * While a handler owns the request, reading stops at HANDLING_INPUT_MAX
 * (the bufferevent's high watermark did that). */
static void
plain_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;
	if (what & EV_TIMEOUT) {
		event_del(c->rev);
		c->read_paused = 1;
		event_cb(c->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, c);
		return;
	}
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t want = READ_SIZE;
	if (c->read_limited) {
		size_t have = evbuffer_get_length(in);
		if (have >= HANDLING_INPUT_MAX) {
			event_del(c->rev);
			c->read_paused = 1;
			return;
		}
		if (want > HANDLING_INPUT_MAX - have)
			want = HANDLING_INPUT_MAX - have;
	}
	/* Into a buffer on the stack, then added: a chain the size of what
	 * came (reserving READ_SIZE in the evbuffer would malloc and free
	 * that much per request, as a drained chain is freed). */
	char buf[READ_SIZE];
	ssize_t n;
	do
		n = read(fd, buf, want);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0 || evbuffer_add(in, buf, (size_t)n) < 0) {
		/* EOF or an error: no more reading, as the bufferevent does. */
		event_del(c->rev);
		c->read_paused = 1;
		event_cb(c->bev, BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), c);
		return;
	}
	process_input(c);
}
static void
timer_cb(evutil_socket_t fd, short ev, void *arg);
static void
done_cb(evutil_socket_t fd, short ev, void *arg);

/* A connection on fd (ours from now on), from remote; NULL on failure. */
static struct http_conn *
conn_start(struct http_server *s, evutil_socket_t fd, const char *remote, SSL_CTX *ssl_ctx)
{
	struct http_conn *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		evutil_closesocket(fd);
		return NULL;
	}
	c->srv = s;
	c->arena = arena_new(8192);
	c->body_buf = evbuffer_new();
	c->timer = evtimer_new(s->base, timer_cb, c);
	c->done = event_new(s->base, -1, 0, done_cb, c);
	if (c->arena == NULL || c->body_buf == NULL || c->timer == NULL || c->done == NULL)
		goto fail;
	snprintf(c->remote, sizeof(c->remote), "%s", remote);
	if (ssl_ctx != NULL) {
		SSL *ssl = SSL_new(ssl_ctx);
		if (ssl == NULL)
			goto fail;
		c->bev = bufferevent_openssl_socket_new(s->base, fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
		if (c->bev == NULL) {
			SSL_free(ssl);
			goto fail;
		}
		bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
		c->tls = 1;
	} else {
		c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (c->bev == NULL)
			goto fail;
		c->rev = event_new(s->base, fd, EV_READ | EV_PERSIST, plain_read_cb, c);
		if (c->rev == NULL)
			goto fail;
	}
	c->req.conn = c;
	c->state = CS_IDLE;
	c->keepalive = 1;
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_set_timeouts(c->bev, NULL, &s->tv_send);
	if (c->rev != NULL) {
		/* The bufferevent keeps its input's end frozen but while it
		 * reads itself: here plain_read_cb adds to it. */
		evbuffer_unfreeze(bufferevent_get_input(c->bev), 0);
		bufferevent_enable(c->bev, EV_WRITE);
		event_add(c->rev, NULL);
	} else {
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	}
	evtimer_add(c->timer, s->tv_header);
	c->idle_until = monotonic_us() + s->limits.header_timeout_ms * 1000;
	TAILQ_INSERT_TAIL(&s->conns, c, link);
	if (++s->nconns >= s->limits.max_connections && !s->accept_paused) {
		s->accept_paused = 1;
		listeners_enable(s, 0);
		log_warn("limits.max_connections (%llu) reached; pausing accepts",
		    (unsigned long long)s->limits.max_connections);
	}
	return c;
fail:
	log_error("cannot set up a connection: out of memory");
	if (c->timer)
		event_free(c->timer);
	if (c->done)
		event_free(c->done);
	if (c->rev)
		event_free(c->rev);
	if (c->body_buf)
		evbuffer_free(c->body_buf);
	arena_free(c->arena);
	if (c->bev == NULL)
		evutil_closesocket(fd);
	else
		bufferevent_free(c->bev);
	free(c);
	return NULL;
}

static void
accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	(void)lev;
	struct listener *l = arg;
	char remote[sizeof(((struct http_conn *)0)->remote)];
	if (sa->sa_family == AF_UNIX)
		snprintf(remote, sizeof(remote), "unix");
	else
		sockaddr_format(sa, (socklen_t)salen, remote, sizeof(remote));
	if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	conn_start(l->srv, fd, remote, l->ssl);
}

int
http_server_adopt(struct http_server *s, int fd, const char *remote, int front_tls)
{
	if (evutil_make_socket_nonblocking(fd) < 0) {
		evutil_closesocket(fd);
		return -1;
	}
	struct http_conn *c = conn_start(s, fd, remote, NULL);
	if (c == NULL)
		return -1;
	c->front_tls = front_tls;
	return 0;
}

/* ---- responses ---- */

/* The response in the metrics, by the route dispatch found (its class
 * kept with it) or, for a request no route took, by its path. */
static void
count_response(struct http_request *r, int status)
{
	metrics_http_route(r->mx_route > 0 ? r->mx_route - 1 : metrics_route(r->path), status);
}

static void
log_request(struct http_conn *c, int status)
{
	struct http_request *r = &c->req;
	if (r->sse) {
		metrics_sse(-1);
		r->sse = 0;
	}
	if (r->logged || r->method == NULL)
		return;
	r->logged = 1;
	if (!r->counted)
		count_response(r, status);
	if (!log_enabled(LOG_INFO))
		return;     /* no access lines: nothing to gather for one */
	const char *tp = http_request_field(r, HDR_TRACEPARENT);
	char trace_id[33];
	struct access_record rec = {
		.remote = c->remote,
		.method = r->method,
		.target = r->target,
		.user_agent = http_request_field(r, HDR_USER_AGENT),
		.extra = r->log_extra,
		.http_minor = r->minor,
		.status = status,
		.bytes_in = r->head_len + r->body_len,
		.bytes_out = r->bytes_out,
		.duration_ms = (double)(monotonic_us() - r->start_us) / 1000.0,
		.trace_id = tp != NULL && traceparent_parse(tp, strlen(tp), trace_id) == 0 ? trace_id : NULL,
	};
	const struct http_log_mcp *m = r->log_mcp;
	if (m != NULL) {
		rec.mcp_method = m->method;
		rec.tool = m->tool;
		rec.session = m->session;
		rec.principal = m->principal;
		rec.error_type = m->error_type;
		if (m->trace_id != NULL) {  /* the request's trace: its _meta's, or ours */
			rec.trace_id = m->trace_id;
			rec.span_id = m->span_id;
		}
	}
	log_access(&rec);
}

static int
wants_keepalive(struct http_conn *c)
{
	struct http_request *r = &c->req;
	if (!c->keepalive || c->srv->draining || c->nreq >= MAX_KEEPALIVE_REQUESTS)
		return 0;
	/* Connection is a list and may come in several fields: "close"
	 * anywhere closes, whatever else is said. */
	int closing = 0, keep = 0;
	/* from the first Connection field, when there is one (known) */
	for (size_t i = r->known[HDR_CONNECTION] != 0 ? r->known[HDR_CONNECTION] - 1u : r->nheaders;
	    i < r->nheaders; i++) {
		if (r->headers[i].id != HDR_CONNECTION)
			continue;
		for (const char *p = r->headers[i].value; *p;) {
			p += strspn(p, " \t,");
			size_t n = strcspn(p, " \t,");
			closing |= n == 5 && strncasecmp(p, "close", 5) == 0;
			keep |= n == 10 && strncasecmp(p, "keep-alive", 10) == 0;
			p += n;
		}
	}
	if (closing)
		return 0;
	return r->minor == 0 ? keep : 1;
}

/* The status line and the date lines ("HTTP/1.1 200 OK\r\nServer: mcpd\r\n
 * Date: <now>\r\n") of a response with this status, in one piece kept
 * by the server: rebuilt when the status or the second changes. */
static const char *
status_date_lines(struct http_server *s, int status, size_t *len)
{
	size_t dl;
	const char *date = http_date_lines(s, &dl);
	if (status == s->head_status && s->head_at == s->date_at && s->head_len > 0) {
		*len = s->head_len;
		return s->head;
	}
	char *h = s->head;
	size_t n;
	if (status >= 100 && status <= 999) {
		/* Written by hand: printf per response showed in the profile. */
		const char *text = http_status_text(status);
		size_t tl = strlen(text);
		memcpy(h, "HTTP/1.1 ", 9);
		h[9] = (char)('0' + status / 100);
		h[10] = (char)('0' + status / 10 % 10);
		h[11] = (char)('0' + status % 10);
		h[12] = ' ';
		memcpy(h + 13, text, tl);
		n = 13 + tl;
	} else {
		int k = snprintf(h, STATUS_LINE_MAX, "HTTP/1.1 %d %s", status, http_status_text(status));
		n = k > 0 && (size_t)k < STATUS_LINE_MAX ? (size_t)k : 0;
	}
	memcpy(h + n, date, dl);
	s->head_len = n + dl;
	s->head_status = status;
	s->head_at = s->date_at;
	*len = s->head_len;
	return h;
}

/* The response head, in one piece in the request's arena (so that it can
 * go to the socket with the body in one writev), its length in *len;
 * NULL when out of memory. The status line, Server, Date, the framing
 * line (frame, frame_len bytes, without its CRLF; or none), Connection
 * and the handler's headers. Decides keep-alive. */
static char *
build_head(struct http_request *r, int status, const char *content_type,
    const char *frame, size_t frame_len, int chunked, size_t *len)
{
	struct http_conn *c = r->conn;
	c->keepalive = wants_keepalive(c);
	if (chunked && r->minor == 0)
		c->keepalive = 0;   /* HTTP/1.0: the stream ends with the connection */
	static const char ct_name[] = "Content-Type: ", close_line[] = "Connection: close\r\n",
	    keep_line[] = "Connection: keep-alive\r\n";
	size_t pre_len;
	const char *pre = status_date_lines(c->srv, status, &pre_len);
	size_t ct_len = content_type != NULL ? strlen(content_type) : 0;
	size_t total = pre_len + 2;
	if (content_type != NULL)
		total += sizeof(ct_name) - 1 + ct_len + 2;
	if (frame != NULL)
		total += frame_len + 2;
	if (!c->keepalive)
		total += sizeof(close_line) - 1;
	else if (r->minor == 0)
		total += sizeof(keep_line) - 1;
	size_t name_len[MAX_RESPONSE_HEADERS], value_len[MAX_RESPONSE_HEADERS];
	for (size_t i = 0; i < r->nresp; i++) {
		name_len[i] = strlen(r->resp_headers[i].name);
		value_len[i] = strlen(r->resp_headers[i].value);
		total += name_len[i] + 2 + value_len[i] + 2;
	}
	r->status = status;
	char *head = arena_alloc(c->arena, total);
	if (head == NULL)
		return NULL;
	char *at = head;
	memcpy(at, pre, pre_len);
	at += pre_len;
	if (content_type != NULL) {
		memcpy(at, ct_name, sizeof(ct_name) - 1);
		at += sizeof(ct_name) - 1;
		memcpy(at, content_type, ct_len);
		at += ct_len;
		*at++ = '\r';
		*at++ = '\n';
	}
	if (frame != NULL) {
		memcpy(at, frame, frame_len);
		at += frame_len;
		*at++ = '\r';
		*at++ = '\n';
	}
	if (!c->keepalive) {
		memcpy(at, close_line, sizeof(close_line) - 1);
		at += sizeof(close_line) - 1;
	} else if (r->minor == 0) {
		memcpy(at, keep_line, sizeof(keep_line) - 1);
		at += sizeof(keep_line) - 1;
	}
	for (size_t i = 0; i < r->nresp; i++) {
		memcpy(at, r->resp_headers[i].name, name_len[i]);
		at += name_len[i];
		*at++ = ':';
		*at++ = ' ';
		memcpy(at, r->resp_headers[i].value, value_len[i]);
		at += value_len[i];
		*at++ = '\r';
		*at++ = '\n';
	}
	*at++ = '\r';
	*at++ = '\n';
	r->bytes_out += total;
	*len = total;
	return head;
}

static int
write_head(struct http_request *r, int status, const char *content_type,
    const char *length_or_te, int chunked)
{
	size_t len;
	char *head = build_head(r, status, content_type, length_or_te,
	    length_or_te != NULL ? strlen(length_or_te) : 0, chunked, &len);
	if (head == NULL)
		return -1;
	evbuffer_add(bufferevent_get_output(r->conn->bev), head, len);
	return 0;
}

/* A response that fits the socket's buffer, as most do, goes out at once
 * in one writev: no write event to add, wait for and remove (two
 * epoll_ctl calls and a turn of the loop per response). What the socket
 * does not take, and anything behind bytes already queued or under TLS,
 * goes through the output buffer as before. Returns 1 when all went. */
static int
send_now(struct http_conn *c, const char *head, size_t hlen, const void *body, size_t blen)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	ssize_t n = 0;
	if (c->rev != NULL && evbuffer_get_length(out) == 0) {   /* plain, not TLS */
		struct iovec iov[2] = { { (void *)head, hlen }, { (void *)body, blen } };
		do
			n = writev(event_get_fd(c->rev), iov, blen > 0 ? 2 : 1);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			n = 0;      /* EAGAIN; an error shows on the buffered write */
	}
	size_t sent = (size_t)n;
	if (sent == hlen + blen)
		return 1;
	if (sent < hlen) {
		evbuffer_add(out, head + sent, hlen - sent);
		sent = hlen;
	}
	if (blen > 0)
		evbuffer_add(out, (const char *)body + (sent - hlen), blen - (sent - hlen));
	return 0;
}

void
http_response_header(struct http_request *r, const char *name, const char *value)
{
	if (r->nresp == MAX_RESPONSE_HEADERS) {
		log_warn("too many response headers; dropping %s", name);
		return;
	}
	/* Header text must not break the response framing. */
	if (strpbrk(name, "\r\n:") != NULL || strpbrk(value, "\r\n") != NULL) {
		log_warn("refusing response header %s with a line break", name);
		return;
	}
	r->resp_headers[r->nresp].name = arena_strdup(r->conn->arena, name);
	r->resp_headers[r->nresp].value = arena_strdup(r->conn->arena, value);
	r->nresp++;
}

/* The response went out whole: the write callback will not run. It is
 * finished not under the handler that is answering but after it: by
 * process_input once dispatch returns, when the handler answered there
 * (as most do; an event_active and a turn of the loop per request
 * otherwise), or from the loop. */
static void
response_sent(struct http_conn *c)
{
	c->sent = 1;
	if (c->dispatching)
		c->finish_inline = 1;
	else
		event_active(c->done, EV_TIMEOUT, 1);
}

void
http_respond(struct http_request *r, int status, const char *content_type,
    const void *body, size_t len)
{
	struct http_conn *c = r->conn;
	if (c->state != CS_HANDLING) {
		log_error("http: response for a request that is not being handled");
		return;
	}
	char cl[48], digits[24];
	size_t nd = 0;
	for (size_t v = len; nd == 0 || v > 0; v /= 10)
		digits[nd++] = (char)('0' + v % 10);
	memcpy(cl, "Content-Length: ", 16);
	for (size_t i = 0; i < nd; i++)
		cl[16 + i] = digits[nd - 1 - i];
	if (r->method[0] == 'H' && strcmp(r->method, "HEAD") == 0)
		len = 0;
	size_t hlen;
	char *head = build_head(r, status, content_type, cl, 16 + nd, 0, &hlen);
	if (head == NULL) {
		log_error("http: out of memory for a response head; closing %s", c->remote);
		c->keepalive = 0;
		c->state = CS_WRITING;
		response_sent(c);
		return;
	}
	r->bytes_out += len;
	c->state = CS_WRITING;
	/* Counted before the client can read the answer: a scrape it sends
	 * next, to any worker, sees this request (the access line waits). */
	count_response(r, status);
	r->counted = 1;
	if (send_now(c, head, hlen, body, len))
		response_sent(c);
}

void
http_respond_text(struct http_request *r, int status, const char *message)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "%s\n", message);
	if (n < 0 || (size_t)n >= sizeof(buf))
		n = (int)sizeof(buf) - 1;
	http_respond(r, status, "text/plain; charset=utf-8", buf, (size_t)n);
}

int
http_stream_begin(struct http_request *r, int status, const char *content_type)
{
	struct http_conn *c = r->conn;
	if (c->state != CS_HANDLING)
		return -1;
	if (write_head(r, status, content_type,
	    r->minor >= 1 ? "Transfer-Encoding: chunked" : NULL, 1) < 0)
		return -1;
	c->state = CS_STREAMING;
	evtimer_del(c->timer);
	if (content_type != NULL && strncmp(content_type, "text/event-stream", 17) == 0) {
		r->sse = 1;
		metrics_sse(1);
	}
	return 0;
}

/* The client does not take what its stream is sent: queue no more. The
 * owner hears it from the loop (not from under its write) through the
 * close callback, as when the client leaves; what is queued still goes
 * out, as far as the client takes it within send_timeout, and then the
 * connection closes, without the last chunk: the response is cut short. */
static void
stream_cut(struct http_conn *c, const char *why)
{
	struct http_request *r = &c->req;
	c->overflowed = 1;
	c->keepalive = 0;
	r->log_extra = r->log_extra != NULL ? arena_printf(c->arena, "%s, %s", r->log_extra, why) : why;
	static const struct timeval now = { 0, 0 };
	evtimer_add(c->timer, &now);
	c->holds = TIMER_FIXED;
}

static void
stream_overflow(struct http_conn *c, size_t pending)
{
	struct http_request *r = &c->req;
	log_warn("%s: %s %s: the client does not read its stream: %zu bytes wait, more than "
	    "limits.stream_buffer (%llu); closing it", c->remote, r->method, r->path ? r->path : "-",
	    pending, (unsigned long long)c->srv->limits.stream_buffer);
	stream_cut(c, "stream not read");
}

void
http_stream_cut(struct http_request *r, const char *why)
{
	struct http_conn *c = r->conn;
	if (c->state == CS_STREAMING && !c->overflowed)
		stream_cut(c, why);
}

/* From the loop: the stream is over for its owner. */
static void
stream_overflowed(struct http_conn *c)
{
	struct http_request *r = &c->req;
	if (c->state != CS_STREAMING)
		return;     /* the owner ended it meanwhile */
	http_close_fn fn = r->on_close;
	r->on_close = NULL;
	c->state = CS_WRITING;
	if (fn != NULL)
		fn(r, r->on_close_arg);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		write_cb(c->bev, c);
}

int
http_stream_write(struct http_request *r, const void *data, size_t len)
{
	struct http_conn *c = r->conn;
	if (c->state != CS_STREAMING || c->overflowed)
		return -1;
	if (len == 0)
		return 0;   /* an empty chunk would end the stream */
	struct evbuffer *out = bufferevent_get_output(c->bev);
	/* Every stream (SSE of a request, a session's GET stream, a listen
	 * stream, a replay) stops here: what one client does not read is
	 * bounded, one event past the limit at most. */
	size_t pending = evbuffer_get_length(out);
	if (pending > c->srv->limits.stream_buffer) {
		stream_overflow(c, pending);
		return -1;
	}
	if (r->minor >= 1)
		evbuffer_add_printf(out, "%zx\r\n", len);
	evbuffer_add(out, data, len);
	if (r->minor >= 1)
		evbuffer_add(out, "\r\n", 2);
	r->bytes_out += len;
	return 0;
}

size_t
http_stream_pending(const struct http_request *r)
{
	return evbuffer_get_length(bufferevent_get_output(r->conn->bev));
}

int
http_request_overflowed(const struct http_request *r)
{
	return r->conn->overflowed;
}

void
http_stream_end(struct http_request *r)
{
	struct http_conn *c = r->conn;
	if (c->state != CS_STREAMING)
		return;
	if (c->overflowed) {
		/* Cut short: no last chunk; closed once the rest is out. */
		c->state = CS_WRITING;
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			write_cb(c->bev, c);
		return;
	}
	if (r->minor >= 1)
		evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
	else
		c->keepalive = 0;
	c->state = CS_WRITING;
	/* Nothing queued: the write callback will not run, finish now. */
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		write_cb(c->bev, c);
}

/* An error found while reading a request: answer and close. */
static void
fail_request(struct http_conn *c, int status, const char *why, int unread_input)
{
	struct http_request *r = &c->req;
	if (r->method == NULL) {
		r->method = "-";
		r->target = "-";
		r->minor = 1;
		r->start_us = monotonic_us();
	}
	c->keepalive = 0;
	c->linger = unread_input;
	c->state = CS_HANDLING;
	r->log_extra = why;
	set_body_timeout(c, 0);
	http_respond_text(r, status, why);
}

/* ---- request parsing ---- */

/* tchar (RFC 9110 5.6.2): a table, as every byte of a head's names and
 * method goes through it; a tchar's entry is its ASCII lower case (names
 * are compared in it), any other byte's 0. */
static const unsigned char tchars[256] = {
	['!'] = '!', ['#'] = '#', ['$'] = '$', ['%'] = '%', ['&'] = '&', ['\''] = '\'',
	['*'] = '*', ['+'] = '+', ['-'] = '-', ['.'] = '.', ['^'] = '^', ['_'] = '_',
	['`'] = '`', ['|'] = '|', ['~'] = '~',
	['0'] = '0', ['1'] = '1', ['2'] = '2', ['3'] = '3', ['4'] = '4', ['5'] = '5',
	['6'] = '6', ['7'] = '7', ['8'] = '8', ['9'] = '9',
	['A'] = 'a', ['B'] = 'b', ['C'] = 'c', ['D'] = 'd', ['E'] = 'e', ['F'] = 'f', ['G'] = 'g',
	['H'] = 'h', ['I'] = 'i', ['J'] = 'j', ['K'] = 'k', ['L'] = 'l', ['M'] = 'm', ['N'] = 'n',
	['O'] = 'o', ['P'] = 'p', ['Q'] = 'q', ['R'] = 'r', ['S'] = 's', ['T'] = 't', ['U'] = 'u',
	['V'] = 'v', ['W'] = 'w', ['X'] = 'x', ['Y'] = 'y', ['Z'] = 'z',
	['a'] = 'a', ['b'] = 'b', ['c'] = 'c', ['d'] = 'd', ['e'] = 'e', ['f'] = 'f', ['g'] = 'g',
	['h'] = 'h', ['i'] = 'i', ['j'] = 'j', ['k'] = 'k', ['l'] = 'l', ['m'] = 'm', ['n'] = 'n',
	['o'] = 'o', ['p'] = 'p', ['q'] = 'q', ['r'] = 'r', ['s'] = 's', ['t'] = 't', ['u'] = 'u',
	['v'] = 'v', ['w'] = 'w', ['x'] = 'x', ['y'] = 'y', ['z'] = 'z',
};

static int
is_tchar(unsigned char ch)
{
	return tchars[ch] != 0;
}

/* The bytes of a field value (RFC 9110 5.5): VCHAR, obs-text, SP, HTAB;
 * a table, as every byte of a head's values goes through it. */
#define V16 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
static const unsigned char vchars[256] = {
	['\t'] = 1,
	[0x20] = V16, [0x30] = V16, [0x40] = V16, [0x50] = V16, [0x60] = V16,
	[0x70] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,
	[0x80] = V16, V16, V16, V16, V16, V16, V16, V16,
};
#undef V16

static int
is_ows(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* qdtext and the second byte of a quoted-pair (RFC 9110 5.6.4), obs-text
 * included. */
static int
is_qdtext(unsigned char ch)
{
	return ch == '\t' || ch == ' ' || (ch >= 0x21 && ch != 0x7f);
}

/* RFC 9112 7.1: chunk-size [ chunk-ext ], the CRLF taken off. chunk-size
 * is hex digits only (no sign, blank or 0x, at most 16: no overflow);
 * chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ).
 * Anything else in the line (NUL, a bare CR or LF) makes it malformed. */
int
http_parse_chunk_line(const char *line, size_t len, uint64_t *size)
{
	size_t i = 0;
	uint64_t v = 0;
	for (; i < len; i++) {
		char ch = line[i];
		int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 :
		    ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
		if (d < 0)
			break;
		if (i == 16)
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	if (i == 0)
		return -1;
	while (i < len) {
		while (i < len && is_ows(line[i]))
			i++;
		if (i == len || line[i] != ';')
			return -1;
		i++;
		while (i < len && is_ows(line[i]))
			i++;
		size_t name = i;
		while (i < len && is_tchar((unsigned char)line[i]))
			i++;
		if (i == name)
			return -1;
		size_t j = i;
		while (j < len && is_ows(line[j]))
			j++;
		if (j == len || line[j] != '=')
			continue;       /* no value: what follows is checked above */
		i = j + 1;
		while (i < len && is_ows(line[i]))
			i++;
		if (i < len && line[i] == '"') {
			for (i++; i < len && line[i] != '"'; i++) {
				if (line[i] == '\\' && ++i == len)
					return -1;
				if (!is_qdtext((unsigned char)line[i]))
					return -1;
			}
			if (i == len)
				return -1;
			i++;
		} else {
			size_t val = i;
			while (i < len && is_tchar((unsigned char)line[i]))
				i++;
			if (i == val)
				return -1;
		}
	}
	*size = v;
	return 0;
}

/* A trailer field, checked as a header field is: a token name, a colon,
 * then no control character but HTAB; no obsolete line folding. */
int
http_parse_field_line(const char *line, size_t len)
{
	size_t i = 0;
	while (i < len && is_tchar((unsigned char)line[i]))
		i++;
	if (i == 0 || i == len || line[i] != ':')
		return -1;
	for (i++; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return -1;
	}
	return 0;
}

/* Eight bytes at p, as a word. The head's copy has HEAD_SLACK zero bytes
 * after its end, so that a value or name near it (or a known name as
 * long as the longest, from any line's start) can be read so. */
#define HEAD_SLACK 40
static uint64_t
word_at(const char *p)
{
	uint64_t w;
	memcpy(&w, p, sizeof(w));
	return w;
}

/* The first n bytes of a word read by word_at, 0 < n <= 8. */
static uint64_t
first_bytes(size_t n)
{
	if (n >= 8)
		return ~(uint64_t)0;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return ~(~(uint64_t)0 >> (8 * n));
#else
	return ((uint64_t)1 << (8 * n)) - 1;
#endif
}

/* Whether the len bytes at name (readable up to the next multiple of 8)
 * are the known field id's name: a word at a time, in any case. A known
 * name has letters and '-' only; a letter's bit 0x20 (its case) is set
 * in the name's byte before comparing, which makes no byte but that
 * letter in either case equal to it; '-' is compared as is. */
static int
known_is(const char *name, size_t len, int id)
{
	const uint64_t *k = known_headers[id].name.w;
	size_t i = 0;
	for (; len - i > 8; i += 8)
		if ((word_at(name + i) | ((k[i / 8] & 0x4040404040404040ULL) >> 1)) != k[i / 8])
			return 0;
	uint64_t fold = (k[i / 8] & 0x4040404040404040ULL) >> 1;
	return (((word_at(name + i) | fold) ^ k[i / 8]) & first_bytes(len - i)) == 0;
}

/* The known fields by the first letter of their names, a bit each:
 * derived from known_headers once, so that a field added there is found
 * by known_field and known_line alike. Written only on the first call,
 * then read: each process builds the same table. */
_Static_assert(HDR_KNOWN <= 32, "a known field is a bit of a uint32_t");

static const uint32_t *
known_by_initial(void)
{
	static uint32_t by[26];
	static int built;
	if (!built) {
		for (int id = 0; id < HDR_KNOWN; id++)
			by[known_headers[id].name.s[0] - 'a'] |= (uint32_t)1 << id;
		built = 1;
	}
	return by;
}

/* The known fields whose names begin with the tchar c, a bit each.
 * Inlined: it runs for every field line. */
static inline __attribute__((always_inline)) uint32_t
known_with_initial(unsigned char c)
{
	unsigned char l = tchars[c];
	return l >= 'a' && l <= 'z' ? known_by_initial()[l - 'a'] : 0;
}

/* The known field whose name is name (len tchars, readable as known_is
 * says), or -1. */
static int
known_field(const char *name, size_t len)
{
	for (uint32_t m = known_with_initial((unsigned char)*name); m != 0; m &= m - 1) {
		int id = __builtin_ctz(m);
		if (known_headers[id].len == len && known_is(name, len, id))
			return id;
	}
	return -1;
}

/* The known field whose name, followed by its colon, starts the field
 * line at p (the head's copy, readable past a known name's length from
 * any line), its colon in *colon; or -1 when there is none, p's name
 * being another or malformed. A known name is all tchars: when one
 * matches, the name needs no other scan. */
static int
known_line(char *p, char **colon)
{
	for (uint32_t m = known_with_initial((unsigned char)*p); m != 0; m &= m - 1) {
		int id = __builtin_ctz(m);
		size_t len = known_headers[id].len;
		if (p[len] == ':' && known_is(p, len, id)) {
			*colon = p + len;
			return id;
		}
	}
	return -1;
}

int
http_known_header(const char *name, size_t len)
{
	char buf[32 + HEAD_SLACK] = { 0 };
	if (len > 32)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (!is_tchar((unsigned char)name[i]))
			return -1;      /* no known name has it */
	memcpy(buf, name, len);
	return known_field(buf, len);
}

/* The end of the field value at v: the first byte that is not a vchar
 * (RFC 9110 5.5; the CR of its CRLF when the value is well formed). Eight
 * bytes at a time while none of them is a control character (HTAB
 * included) or DEL; v's line ends within the head, so the word that
 * holds that CR is the last one read (HEAD_SLACK). */
static char *
value_end(char *v)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	for (;;) {
		uint64_t w = word_at(v);
		/* a byte below 0x20, or a byte 0x7f (bytes from 0x80 never) */
		uint64_t del = w ^ (0x7f * ones);
		uint64_t m = (((w - 0x20 * ones) & ~w) | ((del - ones) & ~del)) & highs;
		if (m != 0) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
			/* The lowest flagged byte is exact (a borrow flags only
			 * bytes above it): go to it, then on by the table (an HTAB
			 * is flagged, and a vchar). */
			v += __builtin_ctzll(m) >> 3;
#endif
			break;
		}
		v += 8;
	}
	while (vchars[(unsigned char)*v])
		v++;
	return v;
}

/* Fields that must come once. A second copy, even an equal one, is refused:
 * Host by RFC 9112 3.2; the others decide who the client is, which session
 * or method a request names, or how its body is read, and a proxy in front
 * may have acted on the other copy: the known fields marked once, and
 * every Mcp-Param-. (Content-Length and Transfer-Encoding are checked with
 * the framing below.) Returns the index of the first field that repeats
 * one before it, or -1. */
static int
repeated_field(const struct http_request *r)
{
	for (size_t i = 1; i < r->nheaders; i++) {
		const struct header *h = &r->headers[i];
		if (h->id >= 0) {
			if (known_headers[h->id].once && r->known[h->id] != i + 1)
				return (int)i;
			continue;
		}
		if ((h->name[0] | 0x20) != 'm' || strncasecmp(h->name, "Mcp-Param-", 10) != 0)
			continue;
		for (size_t j = 0; j < i; j++)
			if (strcasecmp(r->headers[j].name, h->name) == 0)
				return (int)i;
	}
	return -1;
}

/* The end of the line at p: its CRLF (a bare CR is part of the line). */
static char *
find_crlf(char *p)
{
	while ((p = strchr(p, '\r')) != NULL && p[1] != '\n')
		p++;
	return p;
}

/* Parses the head in place (it is a NUL-terminated copy, with no NUL in
 * it, that ends with an empty line), each byte looked at once or twice.
 * Returns an HTTP status on error, 0 when fine. */
static int
parse_head(struct http_request *r, char *p, const char **why)
{
	/* request line: method SP target SP version */
	char *eol = find_crlf(p);
	*eol = '\0';
	char *line = p;
	p = eol + 2;
	char *sp1 = line;
	while (is_tchar((unsigned char)*sp1))
		sp1++;
	if (*sp1 != ' ' || sp1 == line) {
		char *sp = strchr(line, ' ');
		*why = sp == NULL || sp == line ? "malformed request line" : "malformed request method";
		return 400;
	}
	*sp1 = '\0';
	r->method = line;
	char *target = sp1 + 1, *sp2 = target, *q = NULL;
	for (; (unsigned char)*sp2 > 0x20 && *sp2 != 0x7f; sp2++)
		if (*sp2 == '?' && q == NULL)
			q = sp2;
	if (*sp2 != ' ' || sp2 == target) {
		char *sp = strchr(target, ' ');
		*why = sp == NULL || sp == target ? "malformed request line" : "malformed request target";
		return 400;
	}
	*sp2 = '\0';
	/* The version with its NUL, compared whole (the head's copy has
	 * HEAD_SLACK zero bytes after its end: nine bytes can be read). */
	const char *version = sp2 + 1;
	if (memcmp(version, "HTTP/1.1", 9) == 0)
		r->minor = 1;
	else if (memcmp(version, "HTTP/1.0", 9) == 0)
		r->minor = 0;
	else if (strncmp(version, "HTTP/", 5) != 0) {
		*why = "malformed request line";
		return 400;
	} else {
		r->minor = 1;
		*why = "only HTTP/1.0 and HTTP/1.1 are served";
		return 505;
	}
	r->target = target;
	if (target[0] != '/') {
		*why = "request target must be an absolute path";
		return 400;
	}
	if (q != NULL) {
		r->path = arena_strndup(r->conn->arena, target, (size_t)(q - target));
		r->path_len = (size_t)(q - target);
		r->query = q + 1;
	} else {
		r->path = target;
		r->path_len = (size_t)(sp2 - target);
		r->query = NULL;
	}

	/* header fields: name ":" OWS value OWS CRLF, up to the empty line */
	for (;;) {
		if (p[0] == '\r' && p[1] == '\n')
			break;
		if (*p == ' ' || *p == '\t') {
			*why = "obsolete header line folding";
			return 400;
		}
		char *colon;
		int id = known_line(p, &colon);
		if (id < 0) {
			colon = p;
			while (is_tchar((unsigned char)*colon))
				colon++;
			if (*colon != ':' || colon == p) {
				*why = "malformed header name";
				return 400;
			}
		}
		*colon = '\0';
		char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		/* The value up to the CRLF: no other control character. */
		char *end = value_end(v);
		if (end[0] != '\r' || end[1] != '\n') {
			*why = "control character in a header";
			return 400;
		}
		eol = end;
		while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		*end = '\0';
		if (r->nheaders == MAX_HEADERS) {
			*why = "too many header fields";
			return 431;
		}
		struct header *h = &r->headers[r->nheaders];
		h->name = p;
		h->value = v;
		h->id = id;
		if (h->id >= 0 && r->known[h->id] == 0)
			r->known[h->id] = (unsigned char)(r->nheaders + 1);
		r->nheaders++;
		p = eol + 2;
	}

	int rep = repeated_field(r);
	if (rep >= 0) {
		*why = arena_printf(r->conn->arena, "repeated %.64s header", r->headers[rep].name);
		if (*why == NULL)
			*why = "repeated header";
		return 400;
	}
	if (r->minor == 1 && r->known[HDR_HOST] == 0) {
		*why = "missing Host header";
		return 400;
	}
	const char *te = NULL, *cl = NULL;
	for (size_t i = 0; i < r->nheaders; i++) {
		const struct header *h = &r->headers[i];
		if (h->id == HDR_TRANSFER_ENCODING) {
			if (te != NULL) {
				*why = "repeated Transfer-Encoding";
				return 400;
			}
			te = h->value;
		} else if (h->id == HDR_CONTENT_LENGTH) {
			if (cl != NULL && strcmp(cl, h->value) != 0) {
				*why = "conflicting Content-Length headers";
				return 400;
			}
			cl = h->value;
		}
	}
	if (te != NULL && cl != NULL) {
		*why = "both Transfer-Encoding and Content-Length";
		return 400;
	}
	if (te != NULL) {
		if (strcasecmp(te, "chunked") != 0) {
			*why = "unsupported Transfer-Encoding";
			return 501;
		}
		if (r->minor == 0) {
			*why = "chunked body on HTTP/1.0";
			return 400;
		}
		r->chunked = 1;
	} else if (cl != NULL) {
		uint64_t v = 0;
		size_t digits = strspn(cl, "0123456789");
		if (digits == 0 || cl[digits] != '\0' || digits > 18) {
			*why = "invalid Content-Length";
			return 400;
		}
		for (size_t i = 0; i < digits; i++)
			v = v * 10 + (uint64_t)(cl[i] - '0');
		r->content_length = v;
	}
	return 0;
}

static void
dispatch(struct http_conn *c)
{
	struct http_server *s = c->srv;
	struct http_request *r = &c->req;
	c->state = CS_HANDLING;
	c->nreq++;
	set_body_timeout(c, 0);
	set_read_limit(c, 1);
	c->dispatching = 1;
	struct route *rt = NULL;
	for (size_t i = 0; i < s->nroutes; i++) {
		if (s->routes[i].len == r->path_len && r->path != NULL &&
		    memcmp(s->routes[i].path, r->path, r->path_len) == 0) {
			rt = &s->routes[i];
			break;
		}
	}
	if (rt != NULL) {
		if (rt->mx == 0)
			rt->mx = 1 + metrics_route(rt->path);
		r->mx_route = rt->mx;
		rt->fn(r, rt->arg);
	} else {
		http_respond_text(r, 404, "not found");
	}
	c->dispatching = 0;
}

/* The body is the first len bytes of from: into the arena, then the
 * handler. */
static void
body_complete(struct http_conn *c, struct evbuffer *from, size_t len)
{
	struct http_request *r = &c->req;
	r->body = arena_alloc(c->arena, len + 1);
	if (r->body == NULL) {
		fail_request(c, 500, "out of memory", 0);
		return;
	}
	if (len > 0 && evbuffer_get_contiguous_space(from) >= len) {
		/* in one piece (as a body sent after its head comes): copied
		 * from there, without evbuffer_remove's own work */
		memcpy(r->body, evbuffer_pullup(from, (ev_ssize_t)len), len);
		evbuffer_drain(from, len);
	} else {
		evbuffer_remove(from, r->body, len);
	}
	r->body[len] = '\0';
	r->body_len = len;
	dispatch(c);
}

/* The head's end in buf[0, span), the search starting at from: the
 * CRLF CRLF that ends it, or NULL. By each LF, then the three bytes
 * before it (memmem looks at every byte the slow way); sixteen bytes at a
 * time where SSE2 is, as a memchr per line showed in the profile. */
static const char *
head_end(const char *buf, size_t from, size_t span)
{
	const char *q = buf + from + 3, *stop = buf + span;
#ifdef __SSE2__
	const __m128i lf = _mm_set1_epi8('\n');
	for (; q + 16 <= stop; q += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)q);
		unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, lf));
		for (; m != 0; m &= m - 1) {
			const char *n = q + __builtin_ctz(m);
			if (n[-1] == '\r' && n[-2] == '\n' && n[-3] == '\r')
				return n - 3;
		}
	}
#endif
	for (; q < stop; q++) {
		if ((q = memchr(q, '\n', (size_t)(stop - q))) == NULL)
			break;
		if (q[-1] == '\r' && q[-2] == '\n' && q[-3] == '\r')
			return q - 3;
	}
	return NULL;
}

/* Returns 1 when the request moved on, 0 when more input is needed, -1
 * when the connection is finished with (it may be freed). */
static int
read_head(struct http_conn *c)
{
	struct http_server *s = c->srv;
	struct http_request *r = &c->req;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t avail = evbuffer_get_length(in);
	int fresh = 0;

	if (c->state == CS_IDLE) {
		/* Tolerate the stray CRLF some clients send between requests. */
		while (avail >= 2) {
			const unsigned char *two = evbuffer_pullup(in, 2);
			if (two == NULL || two[0] != '\r' || two[1] != '\n')
				break;
			evbuffer_drain(in, 2);
			avail -= 2;
		}
		if (avail == 0)
			return 0;
		c->state = CS_HEAD;
		r->start_us = monotonic_us();
		fresh = 1;
	}
	/* The head is parsed from one contiguous piece: at most max_header
	 * bytes of the input (a head that does not end within them is too
	 * large whatever follows), pulled up only when it came in pieces. The
	 * search for its end starts where the last one stopped. */
	size_t span = avail < s->limits.max_header ? avail : (size_t)s->limits.max_header;
	const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)span);
	if (buf == NULL && span > 0) {
		fail_request(c, 500, "out of memory", 1);
		return -1;
	}
	const char *end = head_end(buf, c->searched, span);
	if (end == NULL) {
		if (avail > s->limits.max_header) {
			fail_request(c, 431, "request head larger than limits.max_header", 1);
			return -1;
		}
		c->searched = span > 3 ? span - 3 : 0;
		/* The head's time runs from its first byte; a head read whole
		 * at once (as most are) never needs the timer. */
		if (fresh) {
			evtimer_add(c->timer, s->tv_header);
			c->holds = TIMER_HEAD;
		}
		return 0;
	}
	size_t head_len = (size_t)(end - buf) + 4;
	char *head = arena_alloc(c->arena, head_len + 1 + HEAD_SLACK);
	if (head == NULL) {
		fail_request(c, 500, "out of memory", 1);
		return -1;
	}
	memcpy(head, buf, head_len);
	evbuffer_drain(in, head_len);
	memset(head + head_len, 0, 1 + HEAD_SLACK);
	r->head_len = head_len;
	if (memchr(head, '\0', head_len) != NULL) {
		fail_request(c, 400, "NUL byte in request head", 1);
		return -1;
	}
	const char *why = NULL;
	int status = parse_head(r, head, &why);
	if (status != 0) {
		fail_request(c, status, why, 1);
		return -1;
	}
	if (c->holds == TIMER_HEAD) {
		evtimer_del(c->timer);
		c->holds = TIMER_FIXED;
	}
	if (r->chunked || r->content_length > 0) {
		if (r->content_length > s->limits.max_body) {
			fail_request(c, 413, "request body larger than limits.max_body", 1);
			return -1;
		}
		const char *expect = http_request_field(r, HDR_EXPECT);
		if (expect != NULL && strcasecmp(expect, "100-continue") != 0) {
			fail_request(c, 417, "unsupported Expect", 1);
			return -1;
		}
		if (!r->chunked && evbuffer_get_length(in) >= r->content_length) {
			/* The body came with the head (as most do): taken at once,
			 * from the piece pulled up for the head. */
			body_complete(c, in, (size_t)r->content_length);
			return 1;
		}
		if (expect != NULL) {
			if (r->minor == 1 && evbuffer_get_length(in) == 0)
				bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
		}
		c->state = r->chunked ? CS_CHUNKED : CS_BODY;
		c->chunk = CH_SIZE;
		c->chunk_meta = 0;
		evbuffer_drain(c->body_buf, evbuffer_get_length(c->body_buf));
		/* A body already here whole needs no timeout (two
		 * bufferevent_set_timeouts per request otherwise). */
		if (r->chunked || evbuffer_get_length(in) < r->content_length)
			set_body_timeout(c, 1);
		return 1;
	}
	r->body = "";
	r->body_len = 0;
	dispatch(c);
	return 1;
}

static int
read_body(struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t have = evbuffer_get_length(c->body_buf);
	size_t need = (size_t)c->req.content_length - have;
	size_t take = evbuffer_get_length(in);
	if (have == 0 && take >= need) {
		/* All here at once, as most bodies are: no gathering. */
		body_complete(c, in, need);
		return 1;
	}
	if (take > need)
		take = need;
	evbuffer_remove_buffer(in, c->body_buf, take);
	if (take < need)
		return 0;
	body_complete(c, c->body_buf, have + take);
	return 1;
}

static int
read_chunked(struct http_conn *c)
{
	struct http_server *s = c->srv;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	for (;;) {
		switch (c->chunk) {
		case CH_SIZE:
		case CH_TRAILER: {
			size_t n;
			char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT);
			if (line == NULL) {
				if (evbuffer_get_length(in) > CHUNK_LINE_MAX) {
					fail_request(c, 400, "chunk header line too long", 1);
					return -1;
				}
				return 0;
			}
			if (n > CHUNK_LINE_MAX) {
				free(line);
				fail_request(c, 400, "chunk header line too long", 1);
				return -1;
			}
			/* Extensions and trailer fields are read and dropped: bound
			 * them all together, not only line by line. */
			c->chunk_meta += c->chunk == CH_TRAILER ? n : n - strspn(line, "0123456789abcdefABCDEF");
			if (c->chunk_meta > s->limits.max_header) {
				free(line);
				fail_request(c, 431, "chunk extensions and trailer fields larger than limits.max_header", 1);
				return -1;
			}
			if (c->chunk == CH_TRAILER) {
				int bad = n > 0 && http_parse_field_line(line, n) < 0;
				free(line);
				if (bad) {
					fail_request(c, 400, "malformed trailer field", 1);
					return -1;
				}
				if (n == 0) {
					body_complete(c, c->body_buf, evbuffer_get_length(c->body_buf));
					return 1;
				}
				continue;  /* trailer fields are ignored */
			}
			uint64_t size;
			int bad = http_parse_chunk_line(line, n, &size) < 0;
			free(line);
			if (bad) {
				fail_request(c, 400, "malformed chunk size", 1);
				return -1;
			}
			if (size > s->limits.max_body ||
			    evbuffer_get_length(c->body_buf) + size > s->limits.max_body) {
				fail_request(c, 413, "request body larger than limits.max_body", 1);
				return -1;
			}
			c->chunk_left = size;
			c->chunk = size == 0 ? CH_TRAILER : CH_DATA;
			break;
		}
		case CH_DATA: {
			size_t take = evbuffer_get_length(in);
			if (take > c->chunk_left)
				take = (size_t)c->chunk_left;
			evbuffer_remove_buffer(in, c->body_buf, take);
			c->chunk_left -= take;
			if (c->chunk_left > 0)
				return 0;
			c->chunk = CH_DATA_CRLF;
			break;
		}
		case CH_DATA_CRLF: {
			if (evbuffer_get_length(in) < 2)
				return 0;
			char crlf[2];
			evbuffer_remove(in, crlf, 2);
			if (crlf[0] != '\r' || crlf[1] != '\n') {
				fail_request(c, 400, "malformed chunk", 1);
				return -1;
			}
			c->chunk = CH_SIZE;
			break;
		}
		}
	}
}

static void
process_input(struct http_conn *c)
{
	for (;;) {
		int rc;
		switch (c->state) {
		case CS_IDLE:
		case CS_HEAD:
			rc = read_head(c);
			break;
		case CS_BODY:
			rc = read_body(c);
			break;
		case CS_CHUNKED:
			rc = read_chunked(c);
			break;
		case CS_LINGER: {
			struct evbuffer *in = bufferevent_get_input(c->bev);
			evbuffer_drain(in, evbuffer_get_length(in));
			return;
		}
		default:
			/* The handler owns the request; input waits (bounded by the
			 * read watermark) until the response is out. */
			return;
		}
		if (rc < 0)
			return;
		if (c->finish_inline) {
			/* The handler answered under dispatch, whole: finish it
			 * here, then on to what follows in the input. */
			c->finish_inline = 0;
			c->sent = 0;
			if (!response_done(c))
				return;
			continue;
		}
		if (rc == 0) {
			/* After a half-close nothing will complete the request. */
			if (c->peer_eof)
				conn_close(c);
			return;
		}
	}
}

/* ---- connection life ---- */

static void
conn_close(struct http_conn *c)
{
	struct http_server *s = c->srv;
	struct http_request *r = &c->req;
	if (c->state == CS_HANDLING || c->state == CS_STREAMING) {
		/* The client left before the response was complete. */
		http_close_fn fn = r->on_close;
		r->on_close = NULL;
		log_request(c, c->state == CS_STREAMING ? r->status : 499);
		c->state = CS_WRITING;
		if (fn != NULL)
			fn(r, r->on_close_arg);
	} else if (c->state == CS_WRITING) {
		log_request(c, r->status);
	}
	TAILQ_REMOVE(&s->conns, c, link);
	if (c->rev != NULL)
		event_free(c->rev);     /* before the bufferevent closes the fd */
	bufferevent_free(c->bev);
	event_free(c->timer);
	event_free(c->done);
	evbuffer_free(c->body_buf);
	arena_free(c->arena);
	free(c);
	s->nconns--;
	if (s->accept_paused && s->nconns < s->limits.max_connections && !s->draining) {
		s->accept_paused = 0;
		listeners_enable(s, 1);
	}
	if (s->draining && s->nconns == 0 && s->drain_done != NULL) {
		void (*done)(void *) = s->drain_done;
		s->drain_done = NULL;
		done(s->drain_arg);
	}
}

static void
start_linger(struct http_conn *c)
{
	c->state = CS_LINGER;
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	if (c->tls || fd < 0) {
		conn_close(c);
		return;
	}
	/* Close our side, then discard what the client still sends so that the
	 * kernel does not reset the connection before it reads our answer. */
	shutdown(fd, SHUT_WR);
	struct evbuffer *in = bufferevent_get_input(c->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	set_read_limit(c, 0);
	set_body_timeout(c, 0);
	if (c->rev != NULL && c->peer_eof) {
		conn_close(c);  /* nothing more will come to discard */
		return;
	}
	if (c->rev != NULL)
		read_resume(c);
	else
		bufferevent_enable(c->bev, EV_READ);
	struct timeval tv = ms_to_tv(LINGER_MS);
	evtimer_add(c->timer, &tv);
	c->holds = TIMER_FIXED;
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct http_conn *c = arg;
	/* A response sent whole (c->sent) is finished by timer_cb alone: the
	 * bufferevent may also call here in the same loop turn (its write
	 * event, ready with the request's read), and finishing twice lost
	 * the idle timer, which the timer's own pending run then removed. */
	if (c->state != CS_WRITING || c->sent)
		return;
	if (response_done(c))
		process_input(c);
}

/* The response is out: logged, then the connection lingers, closes or
 * waits for the next request. Returns 1 in the last case, when the input
 * is to be read on; 0 when c may be gone. */
static int
response_done(struct http_conn *c)
{
	struct http_server *s = c->srv;
	log_request(c, c->req.status);
	if (c->linger) {
		start_linger(c);
		return 0;
	}
	/* keepalive says what the response announced: after "Connection:
	 * close" we close, otherwise the client may already be sending. */
	if (!c->keepalive) {
		conn_close(c);
		return 0;
	}
	conn_reset_request(c);
	c->state = CS_IDLE;
	set_read_limit(c, 0);
	set_body_timeout(c, 0);
	c->idle_until = monotonic_us() + s->limits.idle_timeout_ms * 1000;
	if (s->draining) {
		evtimer_add(c->timer, &s->tv_drain_grace);
		c->holds = TIMER_FIXED;
	} else if (c->holds != TIMER_IDLE || !evtimer_pending(c->timer, NULL)) {
		/* (a pending idle timeout ends no later than this one) */
		evtimer_add(c->timer, s->tv_idle);
		c->holds = TIMER_IDLE;
	}
	return 1;
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct http_conn *c = arg;
	if (what & BEV_EVENT_CONNECTED)
		return;     /* TLS handshake done */
	if ((what & BEV_EVENT_EOF) && c->state == CS_WRITING) {
		/* A half-close (printf ... | nc -N): this response and those to
		 * requests pipelined behind it are still sent, then we close. */
		c->peer_eof = 1;
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) &&
	    (c->state == CS_BODY || c->state == CS_CHUNKED)) {
		fail_request(c, 408, "request body timed out", 0);
		return;
	}
	if ((what & BEV_EVENT_ERROR) && c->tls) {
		unsigned long e;
		while ((e = bufferevent_get_openssl_error(bev)) != 0) {
			char buf[256];
			ERR_error_string_n(e, buf, sizeof(buf));
			log_debug("TLS error from %s: %s", c->remote, buf);
		}
	}
	conn_close(c);
}

/* From the loop: the response left in one write (http_respond). */
static void
done_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct http_conn *c = arg;
	if (c->sent) {
		c->sent = 0;
		write_cb(c->bev, c);
	}
}

static void
timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct http_conn *c = arg;
	if (c->overflowed) {
		stream_overflowed(c);
		return;
	}
	switch (c->state) {
	case CS_HEAD:
		fail_request(c, 408, "request head timed out", 0);
		break;
	case CS_IDLE:
		if (!c->srv->draining) {
			/* Idle since a later response than when it was added. */
			uint64_t now = monotonic_us();
			if (now < c->idle_until) {
				uint64_t left = c->idle_until - now;
				struct timeval tv = { (time_t)(left / 1000000), (suseconds_t)(left % 1000000) };
				evtimer_add(c->timer, &tv);
				c->holds = TIMER_IDLE;
				return;
			}
		}
		conn_close(c);  /* keep-alive idle, or the drain's grace over */
		break;
	case CS_LINGER:
		conn_close(c);  /* lingering done */
		break;
	default:
		break;          /* an idle timeout from before the request in hand */
	}
}

/* ---- server ---- */

struct http_server *
http_server_new(struct event_base *base, const struct limits_conf *limits)
{
	struct http_server *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->base = base;
	s->limits = *limits;
	TAILQ_INIT(&s->conns);
	struct timeval th = ms_to_tv(limits->header_timeout_ms);
	struct timeval ti = ms_to_tv(limits->idle_timeout_ms);
	/* Common timeouts: every connection waits the same time, so libevent
	 * keeps them in a queue instead of the heap. */
	s->tv_header = event_base_init_common_timeout(base, &th);
	s->tv_idle = event_base_init_common_timeout(base, &ti);
	s->tv_body = ms_to_tv(limits->body_timeout_ms);
	s->tv_send = ms_to_tv(limits->send_timeout_ms);
	s->tv_drain_grace = ms_to_tv(limits->idle_timeout_ms < DRAIN_GRACE_MS ?
	    limits->idle_timeout_ms : DRAIN_GRACE_MS);
	s->accept_retry = evtimer_new(base, accept_retry_cb, s);
	if (s->tv_header == NULL || s->tv_idle == NULL || s->accept_retry == NULL) {
		http_server_free(s);
		return NULL;
	}
	return s;
}

int
http_server_listen(struct http_server *s, int fd, void *ssl_ctx)
{
	struct listener **ls = realloc(s->listeners, (s->nlisteners + 1) * sizeof(*ls));
	if (ls == NULL)
		return -1;
	s->listeners = ls;
	struct listener *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return -1;
	l->srv = s;
	l->ssl = ssl_ctx;
	evutil_make_socket_nonblocking(fd);
	l->lev = evconnlistener_new(s->base, accept_cb, l,
	    LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (l->lev == NULL) {
		free(l);
		return -1;
	}
	evconnlistener_set_error_cb(l->lev, accept_error_cb);
	ls[s->nlisteners++] = l;
	return 0;
}

int
http_server_route(struct http_server *s, const char *path, http_handler_fn fn, void *arg)
{
	struct route *r = realloc(s->routes, (s->nroutes + 1) * sizeof(*r));
	if (r == NULL)
		return -1;
	s->routes = r;
	r[s->nroutes].path = strdup(path);
	if (r[s->nroutes].path == NULL)
		return -1;
	r[s->nroutes].len = strlen(path);
	r[s->nroutes].mx = 0;
	r[s->nroutes].fn = fn;
	r[s->nroutes].arg = arg;
	s->nroutes++;
	return 0;
}

void
http_server_drain(struct http_server *s, void (*done)(void *), void *arg)
{
	s->draining = 1;
	s->drain_done = done;
	s->drain_arg = arg;
	for (size_t i = 0; i < s->nlisteners; i++) {
		if (s->listeners[i]->lev != NULL) {
			evconnlistener_free(s->listeners[i]->lev);
			s->listeners[i]->lev = NULL;
		}
	}
	/* Busy connections finish their request and announce Connection:
	 * close; idle ones get a short grace in which a request already sent
	 * is still answered. */
	struct http_conn *c;
	TAILQ_FOREACH(c, &s->conns, link) {
		if (c->state == CS_IDLE) {
			evtimer_add(c->timer, &s->tv_drain_grace);
			c->holds = TIMER_FIXED;
		}
	}
	if (s->nconns == 0 && s->drain_done != NULL) {
		s->drain_done = NULL;
		done(arg);
	}
}

unsigned
http_server_connections(const struct http_server *s)
{
	return s->nconns;
}

void
http_server_free(struct http_server *s)
{
	if (s == NULL)
		return;
	s->drain_done = NULL;
	s->draining = 1;
	while (!TAILQ_EMPTY(&s->conns))
		conn_close(TAILQ_FIRST(&s->conns));
	for (size_t i = 0; i < s->nlisteners; i++) {
		if (s->listeners[i]->lev != NULL)
			evconnlistener_free(s->listeners[i]->lev);
		free(s->listeners[i]);
	}
	free(s->listeners);
	for (size_t i = 0; i < s->nroutes; i++)
		free(s->routes[i].path);
	free(s->routes);
	if (s->accept_retry)
		event_free(s->accept_retry);
	free(s);
}

/* ---- request accessors ---- */

const char *http_request_method(const struct http_request *r) { return r->method; }
const char *http_request_path(const struct http_request *r) { return r->path; }
const char *http_request_query(const struct http_request *r) { return r->query; }
const char *http_request_remote(const struct http_request *r) { return r->conn->remote; }
uint64_t http_request_start(const struct http_request *r) { return r->start_us; }
int http_request_tls(const struct http_request *r) { return r->conn->tls || r->conn->front_tls; }
void http_request_set_user(struct http_request *r, void *user) { r->user = user; }
void *http_request_user(const struct http_request *r) { return r->user; }
struct arena *http_request_arena(struct http_request *r) { return r->conn->arena; }

const char *
http_request_field(const struct http_request *r, enum http_field f)
{
	return r->known[f] != 0 ? r->headers[r->known[f] - 1].value : NULL;
}

const char *
http_request_header(const struct http_request *r, const char *name)
{
	int id = http_known_header(name, strlen(name));
	if (id >= 0)
		return http_request_field(r, (enum http_field)id);
	for (size_t i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

const char *
http_request_body(const struct http_request *r, size_t *len)
{
	if (len != NULL)
		*len = r->body_len;
	return r->body;
}

void
http_request_on_close(struct http_request *r, http_close_fn fn, void *arg)
{
	r->on_close = fn;
	r->on_close_arg = arg;
}

void
http_request_log_extra(struct http_request *r, const char *extra)
{
	r->log_extra = extra ? arena_strdup(r->conn->arena, extra) : NULL;
}

void
http_request_log_mcp(struct http_request *r, const struct http_log_mcp *m)
{
	struct arena *a = r->conn->arena;
	struct http_log_mcp *l = r->log_mcp;
	if (l == NULL && (l = r->log_mcp = arena_zalloc(a, sizeof(*l))) == NULL)
		return;
#define COPY(f) l->f = m->f != NULL ? arena_strdup(a, m->f) : NULL
	COPY(method);
	COPY(tool);
	COPY(session);
	COPY(principal);
	COPY(trace_id);
	COPY(span_id);
	COPY(error_type);
#undef COPY
}
