/* The pieces of the HTTP request parser that stand alone: chunk-size
 * lines and trailer fields (RFC 9112 7.1), the names of the fields
 * indexed at parse time; and the Host and Origin
 * checks of guard.c. */
#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "guard.h"
#include "http.h"
#include "suites.h"

static int
chunk(const char *line, size_t len, uint64_t *size)
{
	*size = 12345;
	return http_parse_chunk_line(line, len, size);
}

#define CHUNK_OK(s, want) do { \
	uint64_t v_; \
	ck_assert_msg(chunk(s, sizeof(s) - 1, &v_) == 0, "refused: \"%s\"", s); \
	ck_assert_msg(v_ == (want), "\"%s\" -> %llu", s, (unsigned long long)v_); \
} while (0)
#define CHUNK_BAD(s) do { \
	uint64_t v_; \
	ck_assert_msg(chunk(s, sizeof(s) - 1, &v_) == -1, "accepted: \"%s\"", s); \
} while (0)

START_TEST(chunk_sizes)
{
	CHUNK_OK("0", 0);
	CHUNK_OK("5", 5);
	CHUNK_OK("800", 0x800);
	CHUNK_OK("aBcD", 0xabcd);
	CHUNK_OK("000a", 10);
	CHUNK_OK("ffffffffffffffff", 0xffffffffffffffffULL);
	CHUNK_OK("0000000000000001", 1);
	CHUNK_BAD("");
	CHUNK_BAD("0x5");
	CHUNK_BAD("0X5");
	CHUNK_BAD("+5");
	CHUNK_BAD("-5");
	CHUNK_BAD("-0");
	CHUNK_BAD(" 5");
	CHUNK_BAD("\t5");
	CHUNK_BAD("5 ");
	CHUNK_BAD("5\t");
	CHUNK_BAD("5g");
	CHUNK_BAD("5,6");
	CHUNK_BAD("5\n");
	CHUNK_BAD("5\r");
	CHUNK_BAD("5\rX");
	CHUNK_BAD("5\0");
	CHUNK_BAD("00000000000000001");     /* 17 digits */
	CHUNK_BAD("10000000000000000");     /* would overflow */
}
END_TEST

START_TEST(chunk_extensions)
{
	CHUNK_OK("5;a", 5);
	CHUNK_OK("5;a=b", 5);
	CHUNK_OK("5 ; a = b", 5);
	CHUNK_OK("5\t;\ta\t=\tb", 5);
	CHUNK_OK("5;a;b=c;d", 5);
	CHUNK_OK("5;a=\"\"", 5);
	CHUNK_OK("5;a=\"q s\"", 5);
	CHUNK_OK("5;a=\"x\\\"y\\\\\"", 5);
	CHUNK_OK("5;a=\"\x80\xff\"", 5);     /* obs-text */
	CHUNK_OK("5;!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~", 5);
	CHUNK_BAD("5;");
	CHUNK_BAD("5; ");
	CHUNK_BAD("5;=b");
	CHUNK_BAD("5;a=");
	CHUNK_BAD("5;a= ");
	CHUNK_BAD("5;a b");
	CHUNK_BAD("5;a=b c");
	CHUNK_BAD("5;a=b ");
	CHUNK_BAD("5;a=@");
	CHUNK_BAD("5;a(b)");
	CHUNK_BAD("5;a=\"x");
	CHUNK_BAD("5;a=\"x\\\"");
	CHUNK_BAD("5;a=\"x\\");
	CHUNK_BAD("5;a=\"x\x01\"");
	CHUNK_BAD("5;a=\"x\x7f\"");
	CHUNK_BAD("5;a=\"x\"y");
	CHUNK_BAD("5;a=\"x\\\x01\"");
	CHUNK_BAD("5;a\nb");
	CHUNK_BAD("5;a\rb");
	CHUNK_BAD("5;a\0b");
	CHUNK_BAD("5;a=\"\0\"");
	CHUNK_BAD("5;;a");
	CHUNK_BAD("5;a,b");
}
END_TEST

#define FIELD(s) http_parse_field_line(s, sizeof(s) - 1)

START_TEST(trailer_fields)
{
	ck_assert_int_eq(FIELD("X: v"), 0);
	ck_assert_int_eq(FIELD("X:"), 0);
	ck_assert_int_eq(FIELD("X:\tv\tw "), 0);
	ck_assert_int_eq(FIELD("X: \x80\xff"), 0);
	ck_assert_int_eq(FIELD(": v"), -1);
	ck_assert_int_eq(FIELD("X"), -1);
	ck_assert_int_eq(FIELD("X : v"), -1);
	ck_assert_int_eq(FIELD(" X: v"), -1);      /* obsolete folding */
	ck_assert_int_eq(FIELD("\tv"), -1);
	ck_assert_int_eq(FIELD("A B: v"), -1);
	ck_assert_int_eq(FIELD("X: a\x01"), -1);
	ck_assert_int_eq(FIELD("X: a\x7f"), -1);
	ck_assert_int_eq(FIELD("X: a\nb"), -1);
	ck_assert_int_eq(FIELD("X: a\rb"), -1);
	ck_assert_int_eq(FIELD("X: a\0b"), -1);
	ck_assert_int_eq(FIELD("X\0: v"), -1);
}
END_TEST

/* The fields indexed at parse time: every case of their names, and no
 * other name, however close. */
START_TEST(known_headers)
{
	static const char *const names[] = {
		"Host", "Content-Type", "Content-Length", "Transfer-Encoding", "Connection",
		"Expect", "Accept", "Origin", "Authorization", "Cookie", "User-Agent",
		"traceparent", "Mcp-Session-Id", "MCP-Protocol-Version", "Mcp-Method",
		"Mcp-Name", "Last-Event-ID", "Access-Control-Request-Headers",
	};
	size_t n = sizeof(names) / sizeof(names[0]);
	int seen[64] = { 0 };
	for (size_t i = 0; i < n; i++) {
		char low[64], up[64];
		size_t len = strlen(names[i]);
		for (size_t j = 0; j <= len; j++) {
			low[j] = (char)tolower((unsigned char)names[i][j]);
			up[j] = (char)toupper((unsigned char)names[i][j]);
		}
		int id = http_known_header(names[i], len);
		ck_assert_msg(id >= 0 && id < 64, "%s not known", names[i]);
		ck_assert_msg(!seen[id], "%s shares a number", names[i]);
		seen[id] = 1;
		ck_assert_int_eq(http_known_header(low, len), id);
		ck_assert_int_eq(http_known_header(up, len), id);
		ck_assert_int_eq(http_known_header(names[i], len - 1), -1);    /* a prefix */
	}
	ck_assert_int_eq(http_known_header("Hostile", 4), http_known_header("Host", 4));   /* len bytes only */
	static const char *const others[] = {
		"", "H", "Hosts", "X-Host", "Mcp-Session-Idx", "Mcp-Session-ld", "Mcp-Param-Name",
		"Content-Lengtx", "Transfer_Encoding", "Accept-Encoding", "Mcp-Names", "tracestate",
		"Last-Event-I", "Access-Control-Request-Method",
	};
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		ck_assert_msg(http_known_header(others[i], strlen(others[i])) == -1, "%s known", others[i]);
}
END_TEST

/* ---- the real server on one connection ---- */

/* The handler's answer: what the request's fields look up as, by number
 * and by name (they must agree), and its body. */
static void
echo_fields(struct http_request *r, void *arg)
{
	(void)arg;
	static const struct {
		enum http_field f;
		const char *name;
	} asked[] = {
		{ HDR_HOST, "Host" }, { HDR_ACCEPT, "Accept" }, { HDR_CONNECTION, "Connection" },
		{ HDR_MCP_SESSION_ID, "Mcp-Session-Id" }, { HDR_TRACEPARENT, "traceparent" },
		{ HDR_USER_AGENT, "User-Agent" }, { HDR_MCP_PROTOCOL_VERSION, "MCP-Protocol-Version" },
		{ HDR_AC_REQUEST_HEADERS, "Access-Control-Request-Headers" },
	};
	char out[8192];     /* the test's heads are smaller */
	size_t n = 0;
	n += (size_t)snprintf(out + n, sizeof(out) - n, "%s %s q=%s", http_request_method(r),
	    http_request_path(r), http_request_query(r) ? http_request_query(r) : "-");
	for (size_t i = 0; i < sizeof(asked) / sizeof(asked[0]); i++) {
		const char *v = http_request_field(r, asked[i].f);
		const char *byname = http_request_header(r, asked[i].name);
		ck_assert_msg(v == byname, "%s: by number %s, by name %s", asked[i].name,
		    v ? v : "NULL", byname ? byname : "NULL");
		if (v != NULL)
			n += (size_t)snprintf(out + n, sizeof(out) - n, " %s=[%s]", asked[i].name, v);
	}
	const char *x = http_request_header(r, "X-Other");
	if (x != NULL)
		n += (size_t)snprintf(out + n, sizeof(out) - n, " X-Other=[%s]", x);
	size_t blen;
	const char *body = http_request_body(r, &blen);
	n += (size_t)snprintf(out + n, sizeof(out) - n, " body=[%.*s]\n", (int)blen, body);
	ck_assert_uint_lt(n, sizeof(out));
	http_respond(r, 200, "text/plain", out, n);
}

struct sink {
	char buf[16384];
	size_t len;
	struct event_base *base;
};

static void
sink_read(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct sink *k = arg;
	ssize_t n = read(fd, k->buf + k->len, sizeof(k->buf) - 1 - k->len);
	if (n > 0) {
		k->len += (size_t)n;
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	event_base_loopbreak(k->base);
}

struct feed {
	int fd;
	const char *const *piece;
	const size_t *len;
	size_t n, next;
	struct event *ev;
};

/* One piece a turn, 20 ms apart, so that the server reads each alone. */
static void
feed_next(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct feed *f = arg;
	if (f->next == f->n) {
		shutdown(f->fd, SHUT_WR);
		return;
	}
	ck_assert_int_eq(write(f->fd, f->piece[f->next], f->len[f->next]), (ssize_t)f->len[f->next]);
	f->next++;
	struct timeval tv = { 0, 20000 };
	evtimer_add(f->ev, &tv);
}

/* Sends the pieces on one connection (then shuts its side down) and
 * returns all the server answered until it closed, NUL-terminated. */
static const char *
serve_pieces(const char *const *piece, const size_t *len, size_t n)
{
	static struct sink k;
	signal(SIGPIPE, SIG_IGN);
	struct event_base *base = event_base_new();
	struct limits_conf limits = {
		.max_body = 64 * 1024, .max_header = 2048, .max_connections = 100,
		.header_timeout_ms = 5000, .body_timeout_ms = 5000, .idle_timeout_ms = 5000,
		.send_timeout_ms = 5000,
	};
	struct http_server *srv = http_server_new(base, &limits);
	ck_assert_ptr_nonnull(srv);
	http_server_route(srv, "/", echo_fields, NULL);
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(http_server_adopt(srv, sv[0], "test", 0), 0);
	evutil_make_socket_nonblocking(sv[1]);
	memset(&k, 0, sizeof(k));
	k.base = base;
	struct event *ev = event_new(base, sv[1], EV_READ | EV_PERSIST, sink_read, &k);
	event_add(ev, NULL);
	struct feed f = { .fd = sv[1], .piece = piece, .len = len, .n = n };
	f.ev = evtimer_new(base, feed_next, &f);
	feed_next(-1, 0, &f);
	struct timeval limit = { 10, 0 };
	event_base_loopexit(base, &limit);
	event_base_dispatch(base);
	event_free(f.ev);
	event_free(ev);
	close(sv[1]);
	http_server_free(srv);
	event_base_free(base);
	k.buf[k.len] = '\0';
	return k.buf;
}

static const char *
serve(const char *input, size_t len)
{
	return serve_pieces(&input, &len, 1);
}

#define SERVE(s) serve(s, sizeof(s) - 1)
#define HAS(out, want) ck_assert_msg(strstr(out, want) != NULL, "no \"%s\" in:\n%s", want, out)
#define HASNT(out, want) ck_assert_msg(strstr(out, want) == NULL, "\"%s\" in:\n%s", want, out)

/* http_request_field: the first of fields that may repeat, as
 * http_request_header by name; any case of the name. */
START_TEST(field_lookup)
{
	const char *out = SERVE("GET /?a=b HTTP/1.1\r\nhOST: h1\r\nAccept: one\r\n"
	    "accept: two\r\nX-Other: x\r\nUSER-AGENT: ua\r\nConnection: keep-alive\r\n"
	    "Connection: x, close\r\n\r\n");
	HAS(out, "HTTP/1.1 200 OK\r\n");
	HAS(out, "GET / q=a=b Host=[h1] Accept=[one] Connection=[keep-alive] User-Agent=[ua] "
	    "X-Other=[x] body=[]\n");
	HAS(out, "Connection: close\r\n");      /* close in the second field closes */
	out = SERVE("GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h2\r\n"
	    "Mcp-Session-Id: s\r\ntraceparent: t\r\n\r\n");
	HAS(out, "GET / q=- Host=[h] body=[]\n");   /* nothing left from the one before */
	HAS(out, "GET / q=- Host=[h2] Mcp-Session-Id=[s] traceparent=[t] body=[]\n");
}
END_TEST

/* The request line, each way it can be wrong, and what is taken from it. */
START_TEST(request_line)
{
	static const struct {
		const char *in, *want;
	} t[] = {
		{ "GET /?x=1?y HTTP/1.1\r\nHost: h\r\n\r\n", "GET / q=x=1?y Host=[h]" },
		{ "GET /a?b HTTP/1.1\r\nHost: h\r\n\r\n", "404 Not Found" },
		{ "\r\n\r\nGET / HTTP/1.0\r\n\r\n", "GET / q=- body" },   /* stray CRLFs */
		{ "GET /?\x80\xff HTTP/1.1\r\nHost: h\r\n\r\n", "q=\x80\xff Host" },  /* obs-text */
		{ "GET\r\nHost: h\r\n\r\n", "\r\n\r\nmalformed request line\n" },
		{ " GET / HTTP/1.1\r\nHost: h\r\n\r\n", "\r\n\r\nmalformed request line\n" },
		{ "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", "\r\n\r\nmalformed request method\n" },
		{ "G\rT / HTTP/1.1\r\nHost: h\r\n\r\n", "\r\n\r\nmalformed request method\n" },
		{ "G(T\r\nHost: h\r\n\r\n", "\r\n\r\nmalformed request line\n" },
		{ "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", "\r\n\r\nmalformed request line\n" },
		{ "GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n", "\r\n\r\nmalformed request target\n" },
		{ "GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n", "\r\n\r\nmalformed request target\n" },
		{ "GET /\r HTTP/1.1\r\nHost: h\r\n\r\n", "\r\n\r\nmalformed request target\n" },
		{ "GET /\r\nHost: h\r\n\r\n", "\r\n\r\nmalformed request line\n" },
		{ "GET / FTP/1.1\r\nHost: h\r\n\r\n", "\r\n\r\nmalformed request line\n" },
		{ "GET / HTTP/2.0\r\nHost: h\r\n\r\n", "HTTP/1.1 505 " },
		{ "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", "HTTP/1.1 505 " },
		{ "GET / HTTP/1.1\rX\r\nHost: h\r\n\r\n", "HTTP/1.1 505 " },
		{ "GET x HTTP/1.1\r\nHost: h\r\n\r\n", "\r\n\r\nrequest target must be an absolute path\n" },
		{ "GET / HTTP/1.1\r\n\r\n", "\r\n\r\nmissing Host header\n" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *out = serve(t[i].in, strlen(t[i].in));
		HAS(out, t[i].want);
	}
}
END_TEST

/* Header fields, each way they can be wrong, and their values' edges. */
START_TEST(header_fields)
{
	static const struct {
		const char *in, *want;
	} t[] = {
		{ "GET / HTTP/1.1\r\nHost:h\r\nAccept: \t a b \t\r\nX-Other:\r\n\r\n",
		    "Host=[h] Accept=[a b] X-Other=[] body" },
		{ "GET / HTTP/1.1\r\nHost: h\r\nX-Other: \x80\xff\r\n\r\n", "X-Other=[\x80\xff]" },
		{ "GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", "\r\n\r\nobsolete header line folding\n" },
		{ "GET / HTTP/1.1\r\nHost: h\r\n\tfolded\r\n\r\n", "\r\n\r\nobsolete header line folding\n" },
		{ "GET / HTTP/1.1\r\nHost : h\r\n\r\n", "\r\n\r\nmalformed header name\n" },
		{ "GET / HTTP/1.1\r\n: h\r\n\r\n", "\r\n\r\nmalformed header name\n" },
		{ "GET / HTTP/1.1\r\nHost\r\n\r\n", "\r\n\r\nmalformed header name\n" },
		{ "GET / HTTP/1.1\r\nHo\rst: h\r\n\r\n", "\r\n\r\nmalformed header name\n" },
		{ "GET / HTTP/1.1\r\nHost: h\r\r\n\r\n", "\r\n\r\ncontrol character in a header\n" },
		{ "GET / HTTP/1.1\r\nHost: h\rx\r\n\r\n", "\r\n\r\ncontrol character in a header\n" },
		{ "GET / HTTP/1.1\r\nHost: h\nX-Other: x\r\n\r\n", "\r\n\r\ncontrol character in a header\n" },
		{ "GET / HTTP/1.1\r\nHost: h\x7f\r\n\r\n", "\r\n\r\ncontrol character in a header\n" },
		{ "GET / HTTP/1.1\r\nHost: h \x01 \r\n\r\n", "\r\n\r\ncontrol character in a header\n" },
		{ "GET / HTTP/1.1\r\nHost: h\r\nhost: h\r\n\r\n", "\r\n\r\nrepeated host header\n" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *out = serve(t[i].in, strlen(t[i].in));
		HAS(out, t[i].want);
	}
	/* Names compared a word at a time: any case, and near misses at
	 * either side of a word's end. */
	const char *out = SERVE("GET / HTTP/1.1\r\nHost: h\r\nmCP-pROTOCOL-vERSION: v\r\n"
	    "ACCESS-control-REQUEST-headers: a\r\n\r\n");
	HAS(out, "MCP-Protocol-Version=[v] Access-Control-Request-Headers=[a]");
	out = SERVE("GET / HTTP/1.1\r\nHost: h\r\nMCP-Protocol_Version: v\r\nMCP-Protocol-Versioo: v\r\n"
	    "NCP-Protocol-Version: v\r\nAccess-Control-Request-Headerz: a\r\n"
	    "Access-Control-Request-Headers-: a\r\n\r\n");
	HAS(out, "Host=[h] body");
	/* A known name's start, cut short or followed by more, at the head's
	 * end (where a known name's length runs past it). */
	out = SERVE("GET / HTTP/1.1\r\nHost: h\r\nHosts: x\r\nHos: x\r\nHost-: x\r\n"
	    "Accept-: x\r\nA:\r\n\r\n");
	HAS(out, "q=- Host=[h] body");
	out = SERVE("GET / HTTP/1.1\r\nHost: h\r\nAccess-Control-Request-Header:\r\n\r\n");
	HAS(out, "q=- Host=[h] body");
	out = SERVE("GET / HTTP/1.1\r\nHost: h\r\nHost : x\r\n\r\n");
	HAS(out, "\r\n\r\nmalformed header name\n");
	out = SERVE("GET / HTTP/1.1\r\nHost: h\r\nM\r\n\r\n");
	HAS(out, "\r\n\r\nmalformed header name\n");
	/* Values read eight bytes at a time: a control byte, DEL, HTAB and
	 * obs-text at every place in a word. */
	for (size_t at = 0; at < 20; at++) {
		static const struct {
			char ch;
			int ok;
		} b[] = { { '\x01', 0 }, { '\x1f', 0 }, { '\x7f', 0 }, { '\n', 0 }, { '\r', 0 },
		    { '\t', 1 }, { '\x80', 1 }, { '\xff', 1 }, { ' ', 1 } };
		for (size_t j = 0; j < sizeof(b) / sizeof(b[0]); j++) {
			char in[256], v[64], want[128];
			memset(v, 'v', at);
			v[at] = b[j].ch;
			memcpy(v + at + 1, "z", 2);
			size_t n = (size_t)snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: h\r\n"
			    "X-Other: %s\r\n\r\n", v);
			out = serve(in, n);
			if (b[j].ok) {
				/* leading OWS is not part of the value */
				int ows = at == 0 && (b[j].ch == ' ' || b[j].ch == '\t');
				snprintf(want, sizeof(want), "X-Other=[%s]", v + ows);
				HAS(out, want);
			} else {
				HAS(out, "\r\n\r\ncontrol character in a header\n");
			}
			/* An allowed byte that the word test flags (HTAB, obs-text)
			 * with a control byte after it in the same word or the next. */
			for (size_t k = 1; b[j].ok && k <= 9; k++) {
				memset(v, 'v', sizeof(v));
				v[at] = b[j].ch;
				v[at + k] = '\x01';
				memcpy(v + at + k + 1, "z", 2);
				n = (size_t)snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: h\r\n"
				    "X-Other: %s\r\n\r\n", v);
				HAS(serve(in, n), "\r\n\r\ncontrol character in a header\n");
			}
		}
	}
	/* A NUL anywhere in the head. */
	static const char nul[] = "GET / HTTP/1.1\r\nHost: h\0\r\n\r\n";
	HAS(SERVE(nul), "\r\n\r\nNUL byte in request head\n");
	/* 100 fields are served, the 101st is refused. */
	char head[4096];
	size_t n = (size_t)snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: h\r\n");
	for (int i = 1; i < 100; i++)
		n += (size_t)snprintf(head + n, sizeof(head) - n, "A:\r\n");
	memcpy(head + n, "\r\n", 3);
	HAS(serve(head, n + 2), "HTTP/1.1 200 OK\r\n");
	memcpy(head + n, "A:\r\n\r\n", 7);
	HAS(serve(head, n + 6), "\r\n\r\ntoo many header fields\n");
}
END_TEST

/* The head's end found however it arrives, and limits.max_header (2048
 * here) to the byte, with a body behind or not. */
START_TEST(head_end)
{
	static const char *const split[] = {
		"POST / HTTP/1.1\r", "\nHost: h\r\nContent-Length: 2\r\n\r", "\n", "ok",
		"GET /?2 HTTP/1.1\r\nHost: h\r\n\r\nGET /?3 HT", "TP/1.1\r\nHost: h\r\n", "\r\n",
	};
	size_t len[7];
	for (size_t i = 0; i < 7; i++)
		len[i] = strlen(split[i]);
	const char *out = serve_pieces(split, len, 7);
	HAS(out, "POST / q=- Host=[h] body=[ok]\n");
	HAS(out, "GET / q=2 Host=[h] body=[]\n");
	HAS(out, "GET / q=3 Host=[h] body=[]\n");

	static char head[4096];
	for (size_t size = 2046; size <= 2050; size++) {
		/* "GET / HTTP/1.1\r\nHost: h\r\nX-Other: aaa...\r\n\r\n", size bytes */
		size_t n = (size_t)snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: h\r\nX-Other: ");
		memset(head + n, 'a', size - n - 4);
		memcpy(head + size - 4, "\r\n\r\n", 4);
		const char *want = size <= 2048 ? "HTTP/1.1 200 OK\r\n" :
		    "\r\n\r\nrequest head larger than limits.max_header\n";
		HAS(serve(head, size), want);
		/* in two pieces, the end's CRLFs apart */
		const char *piece[2] = { head, head + size - 3 };
		size_t plen[2] = { size - 3, 3 };
		HAS(serve_pieces(piece, plen, 2), want);
		/* with a pipelined request behind it in the same read */
		static const char next[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
		memcpy(head + size, next, sizeof(next) - 1);
		out = serve(head, size + sizeof(next) - 1);
		HAS(out, want);
		if (size <= 2048)
			ck_assert_msg(strstr(strstr(out, "200 OK") + 1, "200 OK") != NULL, "one answer:\n%s", out);
	}
}
END_TEST

START_TEST(host_checks)
{
	struct config c = { 0 };
	ck_assert_int_eq(guard_host_allowed(&c, NULL), 1);      /* no allowed_hosts: any */
	ck_assert_int_eq(guard_host_allowed(&c, "evil.example"), 1);
	const char *names[] = { "localhost", "[::1]", "mcp.example.com:8443" };
	c.allowed_hosts = names;
	c.nhosts = 3;
	ck_assert_int_eq(guard_host_allowed(&c, NULL), 0);
	ck_assert_int_eq(guard_host_allowed(&c, "localhost"), 1);
	ck_assert_int_eq(guard_host_allowed(&c, "LocalHost:8080"), 1);  /* any port, any case */
	ck_assert_int_eq(guard_host_allowed(&c, "[::1]:80"), 1);
	ck_assert_int_eq(guard_host_allowed(&c, "[::1]"), 1);
	ck_assert_int_eq(guard_host_allowed(&c, "mcp.example.com:8443"), 1);  /* as written */
	ck_assert_int_eq(guard_host_allowed(&c, "mcp.example.com"), 0);
	ck_assert_int_eq(guard_host_allowed(&c, "localhost.evil.example"), 0);
	ck_assert_int_eq(guard_host_allowed(&c, "::1"), 0);
	char longhost[300];
	memset(longhost, 'a', sizeof(longhost) - 1);
	longhost[sizeof(longhost) - 1] = '\0';
	memcpy(longhost, "localhost:", 10);
	ck_assert_int_eq(guard_host_allowed(&c, longhost), 0);   /* never cut to fit */
}
END_TEST

START_TEST(origin_checks)
{
	struct config c = { 0 };
	ck_assert_int_eq(guard_origin_allowed(&c, "https://app.example.com"), 0);
	const char *patterns[] = { "https://*.example.com", "http://localhost:*" };
	c.allowed_origins = patterns;
	c.norigins = 2;
	ck_assert_int_eq(guard_origin_allowed(&c, "https://app.example.com"), 1);
	ck_assert_int_eq(guard_origin_allowed(&c, "HTTPS://App.Example.COM"), 1);
	ck_assert_int_eq(guard_origin_allowed(&c, "https://example.com"), 0);
	ck_assert_int_eq(guard_origin_allowed(&c, "http://app.example.com"), 0);
	ck_assert_int_eq(guard_origin_allowed(&c, "https://app.example.com.evil"), 0);
	ck_assert_int_eq(guard_origin_allowed(&c, "http://localhost:5173"), 1);
	ck_assert_int_eq(guard_origin_allowed(&c, "http://localhost"), 1);  /* no port */
	ck_assert_int_eq(guard_origin_allowed(&c, "http://localhostx"), 0);
	const char *any[] = { "*" };
	c.allowed_origins = any;
	c.norigins = 1;
	ck_assert_int_eq(guard_origin_allowed(&c, "null"), 1);
}
END_TEST

Suite *
http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("parser");
	tcase_add_test(tc, chunk_sizes);
	tcase_add_test(tc, chunk_extensions);
	tcase_add_test(tc, trailer_fields);
	tcase_add_test(tc, known_headers);
	suite_add_tcase(s, tc);
	tc = tcase_create("server");
	tcase_add_test(tc, field_lookup);
	tcase_add_test(tc, request_line);
	tcase_add_test(tc, header_fields);
	tcase_add_test(tc, head_end);
	suite_add_tcase(s, tc);
	tc = tcase_create("guard");
	tcase_add_test(tc, host_checks);
	tcase_add_test(tc, origin_checks);
	suite_add_tcase(s, tc);
	return s;
}
