/* mcpd --lambda's events (lambda_event.c): an HTTP event of API Gateway
 * (payload 2.0 and 1.0), a function URL (2.0) or an ALB turned back into
 * the HTTP/1.1 request it stands for, and an HTTP answer's status and
 * headers put in the event's format. */
#ifndef MCPD_LAMBDA_EVENT_H
#define MCPD_LAMBDA_EVENT_H

#include <stddef.h>

struct cJSON;
struct evbuffer;

enum lambda_fmt { LAMBDA_FMT_V2, LAMBDA_FMT_V1, LAMBDA_FMT_ALB };

struct lambda_req {
	enum lambda_fmt fmt;
	int multi;              /* the event had multiValueHeaders (ALB answers with them too) */
	int head;               /* a HEAD request: its answer has no body */
	int https;              /* the client's scheme: https unless X-Forwarded-Proto says http */
	char remote[64];        /* the client's address, for logs */
};

/* Appends to out the request line, the headers (hop-by-hop ones left
 * out, a field's multiple values joined into one line, 2.0's cookies as
 * Cookie), Content-Length, Connection: close, the blank line and the body
 * (decoded when isBase64Encoded). Returns 0; -1 with *why when it cannot
 * be a request (the client's fault: a 400); -2 when the event has no
 * known shape. */
int lambda_event_request(const struct cJSON *ev, struct evbuffer *out, struct lambda_req *r,
    const char **why);

struct lambda_field {
	const char *name, *value;
};

/* statusCode (statusDescription for ALB), headers or multiValueHeaders,
 * cookies (2.0, from Set-Cookie): the streaming prelude, or the buffered
 * answer to which the caller adds body and isBase64Encoded. The framing
 * fields (Content-Length, Transfer-Encoding, Connection) are left out. */
struct cJSON *lambda_answer_meta(const struct lambda_req *r, int status, const struct lambda_field *h,
    size_t nh);

/* v's printable ASCII (no space, no control) into dst[len]: what of a
 * Runtime API header may go into a path or an environment variable. */
void lambda_printable(char *dst, size_t len, const char *v);

#endif
