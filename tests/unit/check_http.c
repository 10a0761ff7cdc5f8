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
		{ HDR_USER_AGENT, "User-Agent" },
	};
	char out[2048];
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

/* Sends input on one connection (then shuts its side down) and returns
 * all the server answered until it closed, NUL-terminated. */
static const char *
serve(const char *input, size_t len)
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
	ck_assert_int_eq(write(sv[1], input, len), (ssize_t)len);
	shutdown(sv[1], SHUT_WR);
	evutil_make_socket_nonblocking(sv[1]);
	memset(&k, 0, sizeof(k));
	k.base = base;
	struct event *ev = event_new(base, sv[1], EV_READ | EV_PERSIST, sink_read, &k);
	event_add(ev, NULL);
	struct timeval limit = { 10, 0 };
	event_base_loopexit(base, &limit);
	event_base_dispatch(base);
	event_free(ev);
	close(sv[1]);
	http_server_free(srv);
	event_base_free(base);
	k.buf[k.len] = '\0';
	return k.buf;
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
	suite_add_tcase(s, tc);
	tc = tcase_create("guard");
	tcase_add_test(tc, host_checks);
	tcase_add_test(tc, origin_checks);
	suite_add_tcase(s, tc);
	return s;
}
