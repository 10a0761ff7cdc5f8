/* mcpd --lambda (lambda_mode.h): an AWS Lambda custom runtime. One
 * process, no listen socket, no master or workers: the worker's code on
 * one libevent loop, which also speaks to the Runtime API
 * (AWS_LAMBDA_RUNTIME_API): GET .../invocation/next (a long poll that
 * blocks nothing else), then POST .../invocation/ID/response or /error.
 *
 * Each event (API Gateway HTTP API and function URL payload 2.0, REST API
 * 1.0, ALB) is turned back into the HTTP/1.1 request it was
 * (lambda_event.c), written into
 * one end of a socketpair whose other end the real HTTP server serves
 * (http_server_adopt): auth, the Host and Origin checks, sessions, SSE
 * and every error are those of the daemon, with nothing copied. The
 * HTTP answer read back becomes the event format's answer: buffered (one
 * JSON document) or streamed (lambda.response_mode: streaming; the HTTP
 * integration's JSON prelude, eight NUL bytes, then the body as it comes,
 * so SSE events reach the client as they happen).
 *
 * The invocation's deadline (Lambda-Runtime-Deadline-Ms) less
 * lambda.deadline_margin stops its commands (tool_exec); a backstop a
 * little later cuts the request and answers 504, so that an answer goes
 * out before Lambda ends the invocation. A Runtime API that goes away
 * ends mcpd with status 1: Lambda starts the environment again. */
#include "lambda_mode.h"
#include "config.h"
#include "host.h"
#include "http.h"
#include "log.h"
#include "json.h"
#include "lambda_event.h"
#include "mcp.h"
#include "metered.h"
#include "paths.h"
#include "plugin.h"
#include "relay.h"
#include "schema.h"
#include "idhash.h"
#include "storage_seal.h"
#include "tracing.h"
#include "transport_sign.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define API_PREFIX "/2018-06-01"
#define API_HEAD_MAX (16 * 1024)        /* the Runtime API's answer headers */
#define API_BODY_MAX (64 * 1024)        /* its answers other than events */
#define RESP_HEAD_MAX (64 * 1024)       /* our HTTP server's answer headers */
#define RESP_HEADERS_MAX 64
/* Lambda's limit on a buffered response payload (6 MB). */
#define BUFFERED_MAX (6 * 1024 * 1024)
/* Streaming: past this much unsent, the HTTP answer is read no further. */
#define STREAM_HIGH (1024 * 1024)
#define STREAM_LOW (256 * 1024)
/* The NUL bytes between the HTTP integration prelude and the body. */
#define PRELUDE_DELIMITER 8

/* Our HTTP server's answer, read back from the socketpair. */
enum rstate { RS_HEAD, RS_LEN, RS_CHUNK_SIZE, RS_CHUNK_DATA, RS_CHUNK_CRLF, RS_TRAILER, RS_EOF, RS_DONE };

struct inv {
	int active;
	char id[128];
	char trace[128];
	uint64_t deadline_ms;           /* 0: none given */
	struct lambda_req req;
	struct bufferevent *http;       /* our end of the socketpair */
	enum rstate rs;
	uint64_t left;
	char *head;                     /* the answer's header block, parsed in place */
	struct lambda_field h[RESP_HEADERS_MAX];
	size_t nh;
	int status;
	int begun;                      /* emit_begin done */
	int ended;                      /* emit_end done */
	struct evbuffer *body;          /* buffered: the answer's body */
	int body_over;                  /* buffered: past BUFFERED_MAX */
};

struct lam {
	struct event_base *base;
	struct config *cfg;
	struct http_server *http;
	struct mcp *mcp;
	int status;                     /* exit status */
	struct sockaddr_storage sa;
	socklen_t salen;
	char api_host[300];
	struct event *sigs[2], *next_ev, *deadline_ev;
	uint64_t event_max;

	/* The Runtime API connection: one request at a time, kept alive. */
	struct bufferevent *api;
	int api_busy;                   /* a request is out, its answer not all read */
	int api_sending;                /* its chunked body is still being written */
	int api_in_body;
	int api_status;
	uint64_t api_left;
	int api_until_eof;
	int api_close;
	uint64_t api_body_max;
	int api_too_big;
	struct evbuffer *api_body;
	void (*api_done)(struct lam *);
	/* A kept-alive connection the server closed as the request went
	 * out: the request is sent again, once, on a new one. */
	struct evbuffer *api_req;       /* the request (not a streamed one) */
	int api_reused;                 /* sent on a connection used before */
	int api_got;                    /* some of the answer came */

	struct inv inv;
};

static void get_next(struct lam *l);
static void emit_body(struct lam *l, const void *data, size_t len);
static void emit_end(struct lam *l);

static void
fatal_end(struct lam *l, const char *why)
{
	log_error("%s: exiting so that Lambda starts the environment again", why);
	l->status = 1;
	event_base_loopexit(l->base, NULL);
}

/* --- the Runtime API client --- */

static void api_read_cb(struct bufferevent *bev, void *arg);

static void
api_drop(struct lam *l)
{
	if (l->api != NULL)
		bufferevent_free(l->api);
	l->api = NULL;
}

static int api_connect(struct lam *l);

/* The server closed a connection it had kept alive just as the request
 * went out on it, before a byte of the answer: the request never got
 * there. Once, on a new connection. */
static int
api_resend(struct lam *l)
{
	if (!l->api_reused || l->api_got || l->api_sending || api_connect(l) < 0)
		return -1;
	log_debug("the Runtime API closed a kept-alive connection: sending again");
	l->api_reused = 0;
	l->api_in_body = 0;
	evbuffer_add(bufferevent_get_output(l->api), evbuffer_pullup(l->api_req, -1), evbuffer_get_length(l->api_req));
	return 0;
}

static void
api_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct lam *l = arg;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & BEV_EVENT_EOF) {
		api_read_cb(l->api, l);     /* an answer delimited by the close */
		if (l->api != NULL && l->api_busy) {
			if (l->api_in_body && l->api_until_eof) {
				l->api_busy = 0;
				api_drop(l);
				void (*done)(struct lam *) = l->api_done;
				l->api_done = NULL;
				done(l);
				return;
			}
			api_drop(l);
			if (api_resend(l) == 0)
				return;
			fatal_end(l, "the Runtime API closed the connection before answering");
			return;
		}
		api_drop(l);        /* an idle keep-alive connection closed */
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		int err = EVUTIL_SOCKET_ERROR();
		int busy = l->api_busy;
		api_drop(l);
		if (busy && api_resend(l) == 0)
			return;
		log_error("Runtime API at %s: %s", l->api_host, evutil_socket_error_to_string(err));
		if (busy)
			fatal_end(l, "the Runtime API cannot be reached");
	}
}

/* Header lines of an answer, each "Name: value" with the CRLF cut: fn
 * gets each. Returns 0, -1 when a line is malformed. */
static int
each_field(char *block, void (*fn)(void *, const char *, const char *), void *arg, char **status_line)
{
	char *p = block, *nl;
	*status_line = NULL;
	while ((nl = strstr(p, "\r\n")) != NULL) {
		*nl = '\0';
		if (*status_line == NULL) {
			*status_line = p;
		} else if (*p != '\0') {
			char *colon = strchr(p, ':');
			if (colon == NULL || colon == p)
				return -1;
			*colon = '\0';
			char *v = colon + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			size_t vl = strlen(v);
			while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				v[--vl] = '\0';
			fn(arg, p, v);
		}
		p = nl + 2;
	}
	return *status_line != NULL ? 0 : -1;
}

static int
parse_status(const char *line)
{
	if (strncmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ')
		return -1;
	char *end;
	long st = strtol(line + 9, &end, 10);
	if (end != line + 12 || st < 100 || st > 999)
		return -1;
	return (int)st;
}

static void
api_field(void *arg, const char *name, const char *value)
{
	struct lam *l = arg;
	if (strcasecmp(name, "Content-Length") == 0) {
		char *end;
		unsigned long long n = strtoull(value, &end, 10);
		if (*value >= '0' && *value <= '9' && *end == '\0') {
			l->api_left = n;
			l->api_until_eof = 0;
		}
	} else if (strcasecmp(name, "Transfer-Encoding") == 0) {
		l->api_status = -1;     /* never sent by the Runtime API */
	} else if (strcasecmp(name, "Connection") == 0 && strcasecmp(value, "close") == 0) {
		l->api_close = 1;
	} else if (strcasecmp(name, "Lambda-Runtime-Aws-Request-Id") == 0) {
		lambda_printable(l->inv.id, sizeof(l->inv.id), value);
	} else if (strcasecmp(name, "Lambda-Runtime-Deadline-Ms") == 0) {
		l->inv.deadline_ms = strtoull(value, NULL, 10);
	} else if (strcasecmp(name, "Lambda-Runtime-Trace-Id") == 0) {
		lambda_printable(l->inv.trace, sizeof(l->inv.trace), value);
	}
}

static void
api_read_cb(struct bufferevent *bev, void *arg)
{
	struct lam *l = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	if (!l->api_busy) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (evbuffer_get_length(in) > 0)
		l->api_got = 1;
	if (!l->api_in_body) {
		struct evbuffer_ptr e = evbuffer_search(in, "\r\n\r\n", 4, NULL);
		if (e.pos < 0) {
			if (evbuffer_get_length(in) > API_HEAD_MAX)
				fatal_end(l, "the Runtime API's answer headers are too long");
			return;
		}
		size_t hl = (size_t)e.pos + 4;
		char *head = malloc(hl + 1);
		if (head == NULL) {
			fatal_end(l, "out of memory");
			return;
		}
		evbuffer_remove(in, head, hl);
		head[hl] = '\0';
		char *sl;
		l->api_left = 0;
		l->api_until_eof = 1;
		l->api_close = 0;
		l->api_status = 0;
		int rc = each_field(head, api_field, l, &sl);
		int st = rc == 0 ? parse_status(sl) : -1;
		if (l->api_status == -1 || st < 0) {
			free(head);
			fatal_end(l, "the Runtime API's answer is not one this client reads");
			return;
		}
		free(head);
		l->api_status = st;
		l->api_in_body = 1;
		l->api_too_big = l->api_left > l->api_body_max;
		evbuffer_drain(l->api_body, evbuffer_get_length(l->api_body));
	}
	size_t avail = evbuffer_get_length(in);
	if (l->api_until_eof) {
		if (evbuffer_get_length(l->api_body) + avail > l->api_body_max) {
			l->api_too_big = 1;
			evbuffer_drain(in, avail);
		} else {
			evbuffer_remove_buffer(in, l->api_body, avail);
		}
		return;     /* complete at EOF */
	}
	size_t take = avail < l->api_left ? avail : (size_t)l->api_left;
	if (l->api_too_big)
		evbuffer_drain(in, take);
	else
		evbuffer_remove_buffer(in, l->api_body, take);
	l->api_left -= take;
	if (l->api_left > 0)
		return;
	l->api_busy = 0;
	l->api_in_body = 0;
	if (l->api_close || l->api_sending) {
		/* A streamed request answered before its end: the
		 * connection is in no state to reuse. */
		api_drop(l);
	}
	void (*done)(struct lam *) = l->api_done;
	l->api_done = NULL;
	done(l);
}

static void
api_write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct lam *l = arg;
	/* Streaming drained below the low mark: read the answer again. */
	if (l->inv.http != NULL && l->api_sending)
		bufferevent_enable(l->inv.http, EV_READ);
}

static int
api_connect(struct lam *l)
{
	if (l->api != NULL)
		return 0;
	l->api = bufferevent_socket_new(l->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (l->api == NULL)
		return -1;
	bufferevent_setcb(l->api, api_read_cb, api_write_cb, api_event_cb, l);
	bufferevent_setwatermark(l->api, EV_WRITE, STREAM_LOW, 0);
	if (bufferevent_socket_connect(l->api, (struct sockaddr *)&l->sa, (int)l->salen) < 0) {
		api_drop(l);
		return -1;
	}
	bufferevent_enable(l->api, EV_READ | EV_WRITE);
	if (l->sa.ss_family == AF_INET || l->sa.ss_family == AF_INET6) {
		/* Headers, then a body or chunks: each a small write. */
		int one = 1;
		setsockopt(bufferevent_getfd(l->api), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return 0;
}

/* One request. body_len (SIZE_MAX: a chunked body follows, written with
 * api_chunk and api_chunk_end); done runs when the answer is read. */
static void
api_request(struct lam *l, const char *method, const char *path, const char *headers,
    const void *body, size_t len, uint64_t body_max, void (*done)(struct lam *))
{
	l->api_reused = l->api != NULL;
	if (api_connect(l) < 0) {
		fatal_end(l, "cannot connect to the Runtime API");
		return;
	}
	struct evbuffer *o = bufferevent_get_output(l->api);
	struct evbuffer *r = l->api_req;
	evbuffer_drain(r, evbuffer_get_length(r));
	evbuffer_add_printf(r, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: mcpd/%s\r\n%s", method, path,
	    l->api_host, PACKAGE_VERSION, headers ? headers : "");
	if (len == SIZE_MAX) {
		evbuffer_add_printf(r, "Transfer-Encoding: chunked\r\n\r\n");
		l->api_sending = 1;
		l->api_reused = 0;      /* its body is not kept: never sent again */
	} else {
		evbuffer_add_printf(r, "Content-Length: %zu\r\n\r\n", len);
		if (len > 0)
			evbuffer_add(r, body, len);
	}
	/* Copied, not moved: kept until the answer comes. */
	evbuffer_add(o, evbuffer_pullup(r, -1), evbuffer_get_length(r));
	l->api_got = 0;
	l->api_busy = 1;
	l->api_in_body = 0;
	l->api_body_max = body_max;
	l->api_done = done;
}

static void
api_chunk(struct lam *l, const void *data, size_t len)
{
	if (l->api == NULL || !l->api_sending || len == 0)
		return;
	struct evbuffer *o = bufferevent_get_output(l->api);
	evbuffer_add_printf(o, "%zx\r\n", len);
	evbuffer_add(o, data, len);
	evbuffer_add(o, "\r\n", 2);
	if (evbuffer_get_length(o) > STREAM_HIGH && l->inv.http != NULL)
		bufferevent_disable(l->inv.http, EV_READ);
}

static void
api_chunk_end(struct lam *l)
{
	if (l->api == NULL || !l->api_sending)
		return;
	l->api_sending = 0;
	evbuffer_add(bufferevent_get_output(l->api), "0\r\n\r\n", 5);
}

/* --- invocations --- */

static void
next_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	get_next(arg);
}

static void
inv_reset(struct lam *l)
{
	struct inv *v = &l->inv;
	if (v->http != NULL)
		bufferevent_free(v->http);
	free(v->head);
	if (v->body != NULL)
		evbuffer_free(v->body);
	memset(v, 0, sizeof(*v));
	if (l->deadline_ev != NULL)
		evtimer_del(l->deadline_ev);
}

static void
next_after_flush(void *arg)
{
	struct lam *l = arg;
	event_active(l->next_ev, EV_TIMEOUT, 0);
}

/* The Runtime API took the answer (or refused it): the next one. */
static void
answered(struct lam *l)
{
	if (l->api_status == 500) {
		fatal_end(l, "the Runtime API answered 500 (container error)");
		return;
	}
	if (l->api_status != 202) {
		size_t n = evbuffer_get_length(l->api_body);
		const char *text = n > 0 ? (const char *)evbuffer_pullup(l->api_body, -1) : "";
		log_warn("invocation %s: the Runtime API answered %d: %.*s", l->inv.id, l->api_status,
		    n > 300 ? 300 : (int)n, text);
	}
	inv_reset(l);
	/* Lambda may freeze the process once we ask for the next event:
	 * the invocation's spans go out first (the client has its answer). */
	tracing_invocation(NULL);
	tracing_flush(next_after_flush, l);
}

/* An invocation error, in the Runtime API's error format. */
static void
invocation_error(struct lam *l, const char *type, const char *message)
{
	log_warn("invocation %s: %s: %s", l->inv.id, type, message);
	/* This is the invocation's answer: the deadline has nothing left to cut. */
	l->inv.ended = 1;
	evtimer_del(l->deadline_ev);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "errorMessage", message);
	cJSON_AddStringToObject(o, "errorType", type);
	cJSON_AddArrayToObject(o, "stackTrace");
	char *json = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	char path[256], hdr[160];
	snprintf(path, sizeof(path), API_PREFIX "/runtime/invocation/%s/error", l->inv.id);
	snprintf(hdr, sizeof(hdr), "Lambda-Runtime-Function-Error-Type: %s\r\nContent-Type: application/json\r\n", type);
	api_request(l, "POST", path, hdr, json, json ? strlen(json) : 0, API_BODY_MAX, answered);
	cJSON_free(json);
}

static void
emit_begin(struct lam *l)
{
	struct inv *v = &l->inv;
	v->begun = 1;
	if (l->cfg->lambda.response_mode != LAMBDA_STREAMING) {
		v->body = evbuffer_new();
		return;
	}
	cJSON *meta = lambda_answer_meta(&v->req, v->status, v->h, v->nh);
	char *json = cJSON_PrintUnformatted(meta);
	cJSON_Delete(meta);
	char path[256];
	snprintf(path, sizeof(path), API_PREFIX "/runtime/invocation/%s/response", v->id);
	api_request(l, "POST", path, "Lambda-Runtime-Function-Response-Mode: streaming\r\n"
	    "Content-Type: application/vnd.awslambda.http-integration-response\r\n",
	    NULL, SIZE_MAX, API_BODY_MAX, answered);
	static const char zeros[PRELUDE_DELIMITER];
	struct evbuffer *o = l->api != NULL ? bufferevent_get_output(l->api) : NULL;
	if (o != NULL && json != NULL) {
		/* prelude and delimiter in one chunk */
		size_t n = strlen(json);
		evbuffer_add_printf(o, "%zx\r\n", n + PRELUDE_DELIMITER);
		evbuffer_add(o, json, n);
		evbuffer_add(o, zeros, PRELUDE_DELIMITER);
		evbuffer_add(o, "\r\n", 2);
	}
	cJSON_free(json);
}

static void
emit_body(struct lam *l, const void *data, size_t len)
{
	struct inv *v = &l->inv;
	if (len == 0)
		return;
	if (v->body == NULL) {
		api_chunk(l, data, len);
		return;
	}
	if (v->body_over || evbuffer_get_length(v->body) + len > BUFFERED_MAX) {
		v->body_over = 1;
		return;
	}
	evbuffer_add(v->body, data, len);
}

/* Is this body text that a JSON string carries as it is? */
static int
plain_text(const unsigned char *p, size_t n)
{
	return memchr(p, '\0', n) == NULL && utf8_valid((const char *)p, n);
}

static void
emit_end(struct lam *l)
{
	struct inv *v = &l->inv;
	if (v->ended)
		return;
	v->ended = 1;
	evtimer_del(l->deadline_ev);
	if (v->http != NULL) {
		bufferevent_free(v->http);
		v->http = NULL;
	}
	if (v->body == NULL) {
		/* Streaming: the Runtime API answers once the body ends. */
		api_chunk_end(l);
		return;
	}
	if (v->body_over) {
		log_warn("invocation %s: the answer is over Lambda's %d bytes for a buffered response",
		    v->id, BUFFERED_MAX);
		v->status = 502;
		v->nh = 0;
		evbuffer_drain(v->body, evbuffer_get_length(v->body));
		static const char msg[] = "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32603,"
		    "\"message\":\"the answer is over the 6 MB Lambda takes in a buffered response "
		    "(lambda.response_mode: streaming sends more)\"}}";
		evbuffer_add(v->body, msg, sizeof(msg) - 1);
		v->h[v->nh++] = (struct lambda_field){ "Content-Type", "application/json" };
	}
	cJSON *o = lambda_answer_meta(&v->req, v->status, v->h, v->nh);
	size_t n = evbuffer_get_length(v->body);
	const unsigned char *p = evbuffer_pullup(v->body, -1);
	if (n == 0 || plain_text(p, n)) {
		char *s = malloc(n + 1);
		if (s != NULL) {
			if (n > 0)
				memcpy(s, p, n);
			s[n] = '\0';
			cJSON_AddStringToObject(o, "body", s);
			free(s);
		}
		cJSON_AddBoolToObject(o, "isBase64Encoded", 0);
	} else {
		char *s = malloc(4 * ((n + 2) / 3) + 1);
		if (s != NULL) {
			base64_encode(p, n, s);
			cJSON_AddStringToObject(o, "body", s);
			free(s);
		}
		cJSON_AddBoolToObject(o, "isBase64Encoded", 1);
	}
	char *json = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (json == NULL) {
		invocation_error(l, "mcpd.OutOfMemory", "out of memory");
		return;
	}
	char path[256];
	snprintf(path, sizeof(path), API_PREFIX "/runtime/invocation/%s/response", v->id);
	api_request(l, "POST", path, "Content-Type: application/json\r\n", json, strlen(json),
	    API_BODY_MAX, answered);
	cJSON_free(json);
}

/* An answer of mcpd's own (not from the HTTP server), JSON-RPC shaped. */
static void
answer_error(struct lam *l, int status, int code, const char *message)
{
	struct inv *v = &l->inv;
	log_warn("invocation %s: %d: %s", v->id, status, message);
	if (v->http != NULL) {
		bufferevent_free(v->http);
		v->http = NULL;
	}
	if (v->begun && v->body == NULL) {
		/* Streaming and begun: the status is out; end the body. */
		emit_end(l);
		return;
	}
	if (v->body != NULL)
		evbuffer_free(v->body);
	v->body = NULL;
	v->begun = 0;
	v->status = status;
	v->nh = 0;
	v->h[v->nh++] = (struct lambda_field){ "Content-Type", "application/json" };
	emit_begin(l);
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "jsonrpc", "2.0");
	cJSON_AddNullToObject(e, "id");
	cJSON *err = cJSON_AddObjectToObject(e, "error");
	cJSON_AddNumberToObject(err, "code", code);
	cJSON_AddStringToObject(err, "message", message);
	char *json = cJSON_PrintUnformatted(e);
	cJSON_Delete(e);
	if (json != NULL)
		emit_body(l, json, strlen(json));
	cJSON_free(json);
	emit_end(l);
}

/* --- our HTTP server's answer, read back --- */

static void
resp_field(void *arg, const char *name, const char *value)
{
	struct inv *v = arg;
	if (v->nh < RESP_HEADERS_MAX)
		v->h[v->nh++] = (struct lambda_field){ name, value };
}

static int
resp_head(struct lam *l, struct evbuffer *in)
{
	struct inv *v = &l->inv;
	struct evbuffer_ptr e = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (e.pos < 0) {
		if (evbuffer_get_length(in) > RESP_HEAD_MAX) {
			answer_error(l, 502, -32603, "the HTTP answer's headers are too long");
			return -1;
		}
		return 0;
	}
	size_t hl = (size_t)e.pos + 4;
	v->head = malloc(hl + 1);
	if (v->head == NULL) {
		answer_error(l, 500, -32603, "out of memory");
		return -1;
	}
	evbuffer_remove(in, v->head, hl);
	v->head[hl] = '\0';
	char *sl;
	v->nh = 0;
	if (each_field(v->head, resp_field, v, &sl) < 0 || (v->status = parse_status(sl)) < 0) {
		answer_error(l, 502, -32603, "the HTTP answer is malformed");
		return -1;
	}
	if (v->status < 200) {
		/* 100 Continue and the like: the answer follows. */
		free(v->head);
		v->head = NULL;
		return 1;
	}
	v->rs = RS_EOF;
	for (size_t i = 0; i < v->nh; i++) {
		if (strcasecmp(v->h[i].name, "Transfer-Encoding") == 0 && strcasestr(v->h[i].value, "chunked")) {
			v->rs = RS_CHUNK_SIZE;
			break;
		}
		if (strcasecmp(v->h[i].name, "Content-Length") == 0) {
			v->left = strtoull(v->h[i].value, NULL, 10);
			v->rs = RS_LEN;
		}
	}
	if (v->req.head || v->status == 204 || v->status == 304)
		v->rs = RS_DONE;
	emit_begin(l);
	return 1;
}

/* What can be read of the answer; 1 when it is complete. */
static int
resp_body(struct lam *l, struct evbuffer *in)
{
	struct inv *v = &l->inv;
	for (;;) {
		size_t avail = evbuffer_get_length(in);
		switch (v->rs) {
		case RS_HEAD:
		case RS_DONE:
			return v->rs == RS_DONE;
		case RS_EOF:
			while (evbuffer_get_length(in) > 0) {
				struct evbuffer_iovec vec;
				if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1)
					break;
				emit_body(l, vec.iov_base, vec.iov_len);
				evbuffer_drain(in, vec.iov_len);
			}
			return 0;
		case RS_LEN:
		case RS_CHUNK_DATA:
			while (v->left > 0 && evbuffer_get_length(in) > 0) {
				struct evbuffer_iovec vec;
				if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1)
					break;
				size_t n = vec.iov_len < v->left ? vec.iov_len : (size_t)v->left;
				emit_body(l, vec.iov_base, n);
				evbuffer_drain(in, n);
				v->left -= n;
			}
			if (v->left > 0)
				return 0;
			v->rs = v->rs == RS_LEN ? RS_DONE : RS_CHUNK_CRLF;
			continue;
		case RS_CHUNK_CRLF:
			if (avail < 2)
				return 0;
			evbuffer_drain(in, 2);
			v->rs = RS_CHUNK_SIZE;
			continue;
		case RS_CHUNK_SIZE:
		case RS_TRAILER: {
			size_t n;
			char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT);
			if (line == NULL) {
				if (avail > 4096) {
					answer_error(l, 502, -32603, "the HTTP answer's chunks are malformed");
					return -1;
				}
				return 0;
			}
			if (v->rs == RS_TRAILER) {
				if (n == 0)
					v->rs = RS_DONE;
				free(line);
				continue;
			}
			uint64_t size;
			int rc = http_parse_chunk_line(line, n, &size);
			free(line);
			if (rc < 0) {
				answer_error(l, 502, -32603, "the HTTP answer's chunks are malformed");
				return -1;
			}
			if (size == 0) {
				v->rs = RS_TRAILER;
			} else {
				v->left = size;
				v->rs = RS_CHUNK_DATA;
			}
			continue;
		}
		}
	}
}

static void
http_read_cb(struct bufferevent *bev, void *arg)
{
	struct lam *l = arg;
	struct inv *v = &l->inv;
	struct evbuffer *in = bufferevent_get_input(bev);
	while (v->rs == RS_HEAD) {
		int rc = resp_head(l, in);
		if (rc <= 0)
			return;
	}
	int rc = resp_body(l, in);
	if (rc == 1)
		emit_end(l);
}

static void
http_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct lam *l = arg;
	struct inv *v = &l->inv;
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	http_read_cb(bev, l);
	if (v->ended || v->http == NULL)
		return;
	if (v->rs == RS_HEAD) {
		answer_error(l, 502, -32603, "the HTTP server closed the connection without an answer");
		return;
	}
	if (v->rs != RS_EOF && v->rs != RS_DONE)
		log_warn("invocation %s: the HTTP answer was cut short", v->id);
	emit_end(l);
}

static void
deadline_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct lam *l = arg;
	if (!l->inv.active || l->inv.ended)
		return;
	answer_error(l, 504, -32001, "the invocation's deadline came before the answer was complete "
	    "(Lambda-Runtime-Deadline-Ms; see lambda.deadline_margin)");
}

static void
start_request(struct lam *l, const cJSON *ev)
{
	struct inv *v = &l->inv;
	const char *why = NULL;
	struct evbuffer *req = evbuffer_new();
	if (req == NULL) {
		invocation_error(l, "mcpd.OutOfMemory", "out of memory");
		return;
	}
	int rc = lambda_event_request(ev, req, &v->req, &why);
	if (rc == -2) {
		evbuffer_free(req);
		invocation_error(l, "mcpd.UnknownEvent", "the event is not an HTTP request mcpd knows "
		    "(API Gateway HTTP API or function URL payload 2.0, REST API 1.0, or ALB)");
		return;
	}
	if (rc < 0) {
		evbuffer_free(req);
		char msg[200];
		snprintf(msg, sizeof(msg), "Bad Request: %s", why);
		answer_error(l, 400, -32600, msg);
		return;
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		evbuffer_free(req);
		log_sys(LOG_ERROR, "socketpair");
		answer_error(l, 500, -32603, "cannot hand the request to the HTTP server");
		return;
	}
	evutil_make_socket_nonblocking(sv[0]);
	v->http = bufferevent_socket_new(l->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	if (v->http == NULL || http_server_adopt(l->http, sv[1], v->req.remote, v->req.https) < 0) {
		if (v->http == NULL)
			close(sv[0]);
		evbuffer_free(req);
		answer_error(l, 500, -32603, "cannot hand the request to the HTTP server");
		return;
	}
	bufferevent_setcb(v->http, http_read_cb, NULL, http_event_cb, l);
	bufferevent_write_buffer(v->http, req);
	evbuffer_free(req);
	bufferevent_enable(v->http, EV_READ | EV_WRITE);
}

static void
got_event(struct lam *l)
{
	struct inv *v = &l->inv;
	if (l->api_status != 200) {
		char why[120];
		snprintf(why, sizeof(why), "the Runtime API answered %d to invocation/next", l->api_status);
		fatal_end(l, why);
		return;
	}
	if (v->id[0] == '\0') {
		fatal_end(l, "an invocation without Lambda-Runtime-Aws-Request-Id");
		return;
	}
	v->active = 1;
	if (v->trace[0] != '\0')
		setenv("_X_AMZN_TRACE_ID", v->trace, 1);
	else
		unsetenv("_X_AMZN_TRACE_ID");
	if (tracing_invocation(v->trace) < 0)
		log_debug("invocation %s: its trace header has no X-Ray Root: its requests start traces of their own",
		    v->id);
	uint64_t margin = l->cfg->lambda.deadline_margin_ms;
	if (v->deadline_ms != 0) {
		uint64_t stop = v->deadline_ms > margin ? v->deadline_ms - margin : 1;
		mcp_invocation(l->mcp, stop, v->trace[0] ? v->trace : NULL);
		/* The backstop, a third of the margin after the commands stop. */
		uint64_t at = v->deadline_ms - margin / 3 * 2, now = wall_ms();
		uint64_t in = at > now ? at - now : 0;
		struct timeval tv = { (time_t)(in / 1000), (suseconds_t)(in % 1000) * 1000 };
		evtimer_add(l->deadline_ev, &tv);
	} else {
		mcp_invocation(l->mcp, 0, v->trace[0] ? v->trace : NULL);
	}
	if (l->api_too_big) {
		char msg[200];
		snprintf(msg, sizeof(msg), "Payload Too Large: the event is over %llu bytes "
		    "(limits.max_body, base64 and JSON included)", (unsigned long long)l->event_max);
		answer_error(l, 413, -32600, msg);
		return;
	}
	size_t n = evbuffer_get_length(l->api_body);
	struct json_error je = { 0 };
	cJSON *ev = json_parse((const char *)evbuffer_pullup(l->api_body, -1), n, 0, &je);
	evbuffer_drain(l->api_body, n);
	if (!cJSON_IsObject(ev)) {
		char msg[300];
		snprintf(msg, sizeof(msg), "the event is not a JSON object%s%s", ev == NULL ? ": " : "",
		    ev == NULL ? je.message : "");
		cJSON_Delete(ev);
		invocation_error(l, "mcpd.UnknownEvent", msg);
		return;
	}
	start_request(l, ev);
	cJSON_Delete(ev);
}

static void
get_next(struct lam *l)
{
	inv_reset(l);
	api_request(l, "GET", API_PREFIX "/runtime/invocation/next", NULL, NULL, 0, l->event_max, got_event);
}

/* --- setup --- */

static int
parse_api(const char *spec, struct sockaddr_storage *sa, socklen_t *salen, char *host, size_t hlen)
{
	char h[256];
	const char *colon = strrchr(spec, ':');
	if (colon == NULL || colon == spec || (size_t)(colon - spec) >= sizeof(h) || colon[1] == '\0')
		return -1;
	memcpy(h, spec, (size_t)(colon - spec));
	h[colon - spec] = '\0';
	char *name = h;
	if (h[0] == '[' && h[strlen(h) - 1] == ']') {
		h[strlen(h) - 1] = '\0';
		name = h + 1;
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	if (getaddrinfo(name, colon + 1, &hints, &res) != 0)
		return -1;
	memcpy(sa, res->ai_addr, res->ai_addrlen);
	*salen = res->ai_addrlen;
	freeaddrinfo(res);
	snprintf(host, hlen, "%s", spec);
	return 0;
}

void
lambda_init_error(const char *type, const char *message)
{
	const char *spec = getenv("AWS_LAMBDA_RUNTIME_API");
	struct sockaddr_storage sa;
	socklen_t salen;
	char host[300];
	if (spec == NULL || parse_api(spec, &sa, &salen, host, sizeof(host)) < 0)
		return;
	int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	struct timeval tv = { 2, 0 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "errorMessage", message);
	cJSON_AddStringToObject(o, "errorType", type);
	char *json = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	char *req = NULL;
	int n = json == NULL ? -1 : asprintf(&req, "POST " API_PREFIX "/runtime/init/error HTTP/1.1\r\nHost: %s\r\n"
	    "Lambda-Runtime-Function-Error-Type: %s\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", host, type, strlen(json), json);
	if (n > 0 && connect(fd, (struct sockaddr *)&sa, salen) == 0 && write(fd, req, (size_t)n) == n) {
		char buf[512];
		while (read(fd, buf, sizeof(buf)) > 0)
			;       /* its answer, until it closes */
	}
	free(req);
	cJSON_free(json);
	close(fd);
}

static void
signal_cb(evutil_socket_t sig, short ev, void *arg)
{
	(void)ev;
	struct lam *l = arg;
	log_info("%s: ending", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	event_base_loopexit(l->base, NULL);
}

int
lambda_main(struct config *cfg)
{
	struct lam *l = calloc(1, sizeof(*l));
	int rc = 1, attached = 0;
	if (l == NULL) {
		config_free(cfg);
		return 1;
	}
	l->cfg = cfg;
	log_set_process("lambda");
	signal(SIGPIPE, SIG_IGN);
	const char *spec = getenv("AWS_LAMBDA_RUNTIME_API");
	if (spec == NULL || parse_api(spec, &l->sa, &l->salen, l->api_host, sizeof(l->api_host)) < 0) {
		log_error("AWS_LAMBDA_RUNTIME_API is %s%s%s: mcpd --lambda runs as a Lambda function's bootstrap",
		    spec ? "\"" : "", spec ? spec : "unset", spec ? "\", not host:port" : "");
		goto done;
	}
	/* The event carries the body, base64 (4/3) and JSON-escaped, and
	 * the headers. */
	l->event_max = cfg->limits.max_body / 3 * 4 + cfg->limits.max_body / 2 + 1024 * 1024;
	l->base = event_base_new();
	if (l->base == NULL) {
		log_error("cannot create an event loop");
		goto done;
	}
	host_set_worker(l->base, 1);
	relay_alone();
	l->http = http_server_new(l->base, &cfg->limits);
	if (l->http == NULL) {
		log_error("cannot create the HTTP server");
		goto done;
	}
	char why[700];
	if (config_attach_backends(cfg, 1, why, sizeof(why)) < 0) {
		log_error("%s", why);
		lambda_init_error("mcpd.InitError", why);
		goto done;
	}
	attached = 1;
	struct backends b = {
		cfg->storage.ops, cfg->storage.inst,
		cfg->transport.ops, cfg->transport.inst,
	};
	storage_seal_backends(&b, &cfg->seal);
	idhash_set_key(cfg->idkey.n > 0 ? cfg->idkey.key[0] : NULL);
	if (transport_sign_backends(&b, &cfg->sign, cfg->transport.window_ms) < 0)
		goto oom;
	if (tracing_start(l->base, cfg, why, sizeof(why)) < 0) {
		log_error("%s", why);
		lambda_init_error("mcpd.InitError", why);
		goto done;
	}
	if (tracing_enabled()) {    /* for the spans of storage calls */
		metered_names(cfg->storage.name, cfg->transport.name);
		metered_backends(&b);
	}
	l->mcp = mcp_new(l->base, cfg, l->http, &b);
	if (l->mcp == NULL) {
		log_error("cannot set up the MCP endpoint");
		lambda_init_error("mcpd.InitError", "cannot set up the MCP endpoint");
		goto done;
	}
	mcp_lambda(l->mcp, cfg->lambda.response_mode == LAMBDA_STREAMING ? MCP_LAMBDA_STREAMING : MCP_LAMBDA_BUFFERED);
	l->api_body = evbuffer_new();
	l->api_req = evbuffer_new();
	l->next_ev = event_new(l->base, -1, 0, next_cb, l);
	l->deadline_ev = evtimer_new(l->base, deadline_cb, l);
	static const int signals[2] = { SIGTERM, SIGINT };
	for (int i = 0; i < 2; i++) {
		l->sigs[i] = evsignal_new(l->base, signals[i], signal_cb, l);
		if (l->sigs[i] == NULL || evsignal_add(l->sigs[i], NULL) < 0)
			goto oom;
	}
	if (l->api_body == NULL || l->api_req == NULL || l->next_ev == NULL || l->deadline_ev == NULL)
		goto oom;
	log_info("serving the Lambda Runtime API at %s (%s responses)", l->api_host,
	    cfg->lambda.response_mode == LAMBDA_STREAMING ? "streaming" : "buffered");
	get_next(l);
	event_base_dispatch(l->base);
	rc = l->status;
	goto done;
oom:
	log_error("out of memory");
done:
	if (l->base != NULL)
		inv_reset(l);
	api_drop(l);
	mcp_free(l->mcp);
	if (l->http != NULL)
		http_server_free(l->http);
	if (attached)
		config_detach_backends(cfg, 1);
	metered_forget();
	tracing_stop();
	transport_sign_forget();
	storage_seal_forget();
	for (int i = 0; i < 2; i++)
		if (l->sigs[i] != NULL)
			event_free(l->sigs[i]);
	if (l->next_ev != NULL)
		event_free(l->next_ev);
	if (l->deadline_ev != NULL)
		event_free(l->deadline_ev);
	if (l->api_body != NULL)
		evbuffer_free(l->api_body);
	if (l->api_req != NULL)
		evbuffer_free(l->api_req);
	if (l->base != NULL)
		event_base_free(l->base);
	free(l);
	config_free(cfg);
	return rc;
}
