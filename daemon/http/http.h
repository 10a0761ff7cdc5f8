/* daemon/http/: the HTTP server (this file: where every request enters,
 * read whole, then handed to the handler of its route), tls (contexts
 * for the listeners), form (forms, query strings, escaping) and guard
 * (the Host, Origin and CORS checks every endpoint shares). It uses
 * core/ and lib/; auth/ and mcp/ register their routes on it.
 *
 * http: HTTP/1.1 server on a libevent loop: strict parsing, bounded
 * input, keep-alive, streamed (chunked) responses for SSE, TLS, graceful
 * drain. Handlers may answer at once or later; a request whose client
 * goes away tells its handler through the close callback. */
#ifndef MCPD_HTTP_H
#define MCPD_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct arena;
struct limits_conf;
struct http_server;
struct http_request;

typedef void (*http_handler_fn)(struct http_request *req, void *arg);
/* Called once if the connection ends before the response is complete;
 * the request must not be used afterwards. */
typedef void (*http_close_fn)(struct http_request *req, void *arg);

struct http_server *http_server_new(struct event_base *base, const struct limits_conf *limits);
void http_server_free(struct http_server *s);
/* Serve an already listening socket; ssl_ctx is an SSL_CTX or NULL. */
int http_server_listen(struct http_server *s, int fd, void *ssl_ctx);
/* Serve one connected socket (a socketpair end: mcpd --lambda hands
 * each invocation over as an HTTP request on one); remote names the
 * client in logs; front_tls says that the client's connection was TLS,
 * ended in front of us (http_request_tls then says so). fd is the
 * server's from now on, closed on failure. */
int http_server_adopt(struct http_server *s, int fd, const char *remote, int front_tls);
/* Exact-path routes; the fallback answers 404. */
int http_server_route(struct http_server *s, const char *path, http_handler_fn fn, void *arg);
/* Stop accepting, close idle connections, let the others finish; done()
 * runs when the last connection is gone. */
void http_server_drain(struct http_server *s, void (*done)(void *), void *arg);
unsigned http_server_connections(const struct http_server *s);

const char *http_request_method(const struct http_request *r);
const char *http_request_path(const struct http_request *r);
const char *http_request_query(const struct http_request *r);   /* NULL if none */
/* Case-insensitive lookup; the first occurrence. */
const char *http_request_header(const struct http_request *r, const char *name);
/* The fields mcpd itself reads, recognised once while the head is parsed
 * (a field's name is classified as it is read): their lookup by number is
 * an index, with no name to classify or compare. */
enum http_field {
	HDR_HOST, HDR_CONTENT_TYPE, HDR_CONTENT_LENGTH, HDR_TRANSFER_ENCODING,
	HDR_CONNECTION, HDR_EXPECT, HDR_ACCEPT, HDR_ORIGIN, HDR_AUTHORIZATION,
	HDR_COOKIE, HDR_USER_AGENT, HDR_TRACEPARENT, HDR_MCP_SESSION_ID,
	HDR_MCP_PROTOCOL_VERSION, HDR_MCP_METHOD, HDR_MCP_NAME, HDR_LAST_EVENT_ID,
	HDR_AC_REQUEST_HEADERS,
	HDR_KNOWN
};
/* http_request_header of that field's name: its first occurrence, or NULL. */
const char *http_request_field(const struct http_request *r, enum http_field f);
const char *http_request_body(const struct http_request *r, size_t *len);
const char *http_request_remote(const struct http_request *r);
/* When the request began (monotonic_us). */
uint64_t http_request_start(const struct http_request *r);
/* The client came over TLS (here, or ended in front: http_server_adopt). */
int http_request_tls(const struct http_request *r);
/* Who made the request (auth.c's principal), for this request only. */
void http_request_set_user(struct http_request *r, void *user);
void *http_request_user(const struct http_request *r);
struct arena *http_request_arena(struct http_request *r);
void http_request_on_close(struct http_request *r, http_close_fn fn, void *arg);
/* A short label (e.g. the JSON-RPC method) for the access log. */
void http_request_log_extra(struct http_request *r, const char *extra);
/* What the MCP layer knows of the request, for the access log's JSON
 * lines (see log.h's access_record); NULL fields are left out. Copied. */
struct http_log_mcp {
	const char *method, *tool, *session, *principal, *trace_id, *span_id, *error_type;
};
void http_request_log_mcp(struct http_request *r, const struct http_log_mcp *m);

/* Add a response header; call before http_respond / http_stream_begin. */
void http_response_header(struct http_request *r, const char *name, const char *value);
void http_respond(struct http_request *r, int status, const char *content_type,
    const void *body, size_t len);
/* A plain-text error body: "<message>\n". */
void http_respond_text(struct http_request *r, int status, const char *message);

/* Streamed response (chunked on HTTP/1.1). Writes return -1 once the
 * client is gone. */
int http_stream_begin(struct http_request *r, int status, const char *content_type);
int http_stream_write(struct http_request *r, const void *data, size_t len);
/* Bytes queued to the client and not yet sent: for back-pressure. */
size_t http_stream_pending(const struct http_request *r);
void http_stream_end(struct http_request *r);
/* A write found more than limits.stream_buffer bytes the client had not
 * taken: the stream is being closed (its close callback runs from the
 * loop, as when the client leaves) and further writes return -1. */
int http_request_overflowed(const struct http_request *r);
/* Close a stream as an overflow does, for the owner's own reason (why:
 * for the access log; the caller logs the rest): what is queued still
 * goes out, then the connection closes without the last chunk, and the
 * close callback runs from the loop. */
void http_stream_cut(struct http_request *r, const char *why);

const char *http_status_text(int status);

/* The request parser's pieces that stand alone (for tests). A chunk-size
 * line without its CRLF: 0 and the size, or -1 when malformed. */
int http_parse_chunk_line(const char *line, size_t len, uint64_t *size);
/* A trailer field line without its CRLF: 0, or -1 when malformed. */
int http_parse_field_line(const char *line, size_t len);
/* The number of a field name mcpd reads itself (case-insensitive), whose
 * lookup is indexed at parse time; -1 for any other name. */
int http_known_header(const char *name, size_t len);

#endif
