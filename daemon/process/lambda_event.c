/* HTTP events of Lambda and their answers (lambda_event.h), from AWS's
 * documentation of the payload formats: API Gateway HTTP APIs and
 * function URLs (2.0: rawPath, rawQueryString, headers joined with
 * commas, cookies apart, requestContext.http.method), REST APIs (1.0:
 * httpMethod, path, headers and multiValueHeaders, query parameters given
 * decoded) and ALB (requestContext.elb, query parameters as sent,
 * multiValueHeaders when the target group has them on). */
#include "lambda_event.h"
#include "http.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void
lambda_printable(char *dst, size_t len, const char *v)
{
	size_t o = 0;
	for (const char *p = v; *p && o + 1 < len; p++)
		if ((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f)
			dst[o++] = *p;
	dst[o] = '\0';
}

static const char *
str_at(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int
token_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("\"(),/:;<=>?@[\\]{}", c) == NULL;
}

/* Bytes that may not stand in a request target are %-escaped; also ?
 * and # in a path, and everything but unreserved ones in a form part. */
enum enc { ENC_TARGET, ENC_PATH, ENC_FORM };

static void
add_encoded(struct evbuffer *b, const char *s, enum enc how)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		int esc = *p <= 0x20 || *p >= 0x7f || *p == '#';
		if (how == ENC_PATH && *p == '?')
			esc = 1;
		if (how == ENC_FORM && !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL))
			esc = 1;
		if (esc)
			evbuffer_add_printf(b, "%%%02X", *p);
		else
			evbuffer_add(b, p, 1);
	}
}

/* Hop-by-hop headers and the framing: ours to write. */
static int
skipped_header(const char *name)
{
	static const char *const skip[] = { "content-length", "transfer-encoding", "connection",
		"keep-alive", "te", "upgrade", "proxy-connection", "trailer", "expect", NULL };
	for (size_t i = 0; skip[i] != NULL; i++)
		if (strcasecmp(name, skip[i]) == 0)
			return 1;
	return 0;
}

static int
add_header(struct evbuffer *b, const char *name, const char *value, int *has_host, const char **why)
{
	if (name[0] == '\0') {
		*why = "an empty header name";
		return -1;
	}
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (!token_char(*p)) {
			*why = "a header name that is not a token";
			return -1;
		}
	for (const unsigned char *p = (const unsigned char *)value; *p; p++)
		if (*p == '\r' || *p == '\n') {
			*why = "a line break in a header value";
			return -1;
		}
	if (skipped_header(name))
		return 0;
	if (strcasecmp(name, "Host") == 0)
		*has_host = 1;
	evbuffer_add_printf(b, "%s: %s\r\n", name, value);
	return 0;
}

/* The query of a 1.0 or ALB event, from its (multi-value) parameters:
 * 1.0 gives them decoded, ALB as the client sent them. */
static void
add_query(struct evbuffer *b, const cJSON *ev, int decoded)
{
	const cJSON *mv = cJSON_GetObjectItemCaseSensitive(ev, "multiValueQueryStringParameters");
	const cJSON *sv = cJSON_GetObjectItemCaseSensitive(ev, "queryStringParameters");
	enum enc how = decoded ? ENC_FORM : ENC_TARGET;
	int first = 1;
	const cJSON *k;
	if (cJSON_IsObject(mv)) {
		cJSON_ArrayForEach(k, mv) {
			const cJSON *x;
			cJSON_ArrayForEach(x, k) {
				if (!cJSON_IsString(x))
					continue;
				evbuffer_add(b, first ? "?" : "&", 1);
				first = 0;
				add_encoded(b, k->string, how);
				evbuffer_add(b, "=", 1);
				add_encoded(b, x->valuestring, how);
			}
		}
		return;
	}
	if (cJSON_IsObject(sv)) {
		cJSON_ArrayForEach(k, sv) {
			if (!cJSON_IsString(k))
				continue;
			evbuffer_add(b, first ? "?" : "&", 1);
			first = 0;
			add_encoded(b, k->string, how);
			evbuffer_add(b, "=", 1);
			add_encoded(b, k->valuestring, how);
		}
	}
}

/* The HTTP/1.1 request an event stands for, into b. Returns 0, -1 with
 * why (a 400 for the client), or -2 for an event of no known shape. */
static int
build_request(const cJSON *ev, struct evbuffer *b, struct lambda_req *v, const char **why)
{
	const cJSON *rc = cJSON_GetObjectItemCaseSensitive(ev, "requestContext");
	const cJSON *http = cJSON_GetObjectItemCaseSensitive(rc, "http");
	const char *method, *path, *src = NULL;
	const char *version = str_at(ev, "version");
	if (version != NULL && strcmp(version, "2.0") == 0 && str_at(http, "method") != NULL) {
		v->fmt = LAMBDA_FMT_V2;
		method = str_at(http, "method");
		path = str_at(ev, "rawPath");
		if (path == NULL)
			path = str_at(http, "path");
		src = str_at(http, "sourceIp");
	} else if (str_at(ev, "httpMethod") != NULL && str_at(ev, "path") != NULL) {
		v->fmt = cJSON_GetObjectItemCaseSensitive(rc, "elb") != NULL ? LAMBDA_FMT_ALB : LAMBDA_FMT_V1;
		method = str_at(ev, "httpMethod");
		path = str_at(ev, "path");
		src = str_at(cJSON_GetObjectItemCaseSensitive(rc, "identity"), "sourceIp");
	} else {
		return -2;
	}
	if (path == NULL || path[0] != '/') {
		*why = "the event's path does not start with /";
		return -1;
	}
	if (method[0] == '\0' || strlen(method) > 16) {
		*why = "the event's method is not one";
		return -1;
	}
	for (const unsigned char *p = (const unsigned char *)method; *p; p++)
		if (!token_char(*p)) {
			*why = "the event's method is not a token";
			return -1;
		}
	v->head = strcmp(method, "HEAD") == 0;
	evbuffer_add_printf(b, "%s ", method);
	add_encoded(b, path, v->fmt == LAMBDA_FMT_V2 ? ENC_TARGET : ENC_PATH);
	if (v->fmt == LAMBDA_FMT_V2) {
		const char *q = str_at(ev, "rawQueryString");
		if (q != NULL && q[0] != '\0') {
			evbuffer_add(b, "?", 1);
			add_encoded(b, q, ENC_TARGET);
		}
	} else {
		add_query(b, ev, v->fmt == LAMBDA_FMT_V1);
	}
	evbuffer_add_printf(b, " HTTP/1.1\r\n");

	int has_host = 0, plain = 0;
	const cJSON *mvh = cJSON_GetObjectItemCaseSensitive(ev, "multiValueHeaders");
	const cJSON *hs = cJSON_GetObjectItemCaseSensitive(ev, "headers");
	const cJSON *k;
	const char *xff = NULL;
	if (v->fmt != LAMBDA_FMT_V2 && cJSON_IsObject(mvh)) {
		v->multi = 1;
		cJSON_ArrayForEach(k, mvh) {
			/* One field line: our server takes the first of repeated
			 * ones, or refuses them where one is all there may be. */
			struct evbuffer *j = evbuffer_new();
			const char *sep = strcasecmp(k->string, "Cookie") == 0 ? "; " : ", ";
			const cJSON *x;
			int n = 0;
			cJSON_ArrayForEach(x, k) {
				if (!cJSON_IsString(x))
					continue;
				if (n++ > 0)
					evbuffer_add(j, sep, strlen(sep));
				evbuffer_add(j, x->valuestring, strlen(x->valuestring));
			}
			evbuffer_add(j, "", 1);
			if (strcasecmp(k->string, "X-Forwarded-For") == 0 && cJSON_IsString(k->child))
				xff = k->child->valuestring;
			if (strcasecmp(k->string, "X-Forwarded-Proto") == 0 &&
			    strcasecmp((const char *)evbuffer_pullup(j, -1), "http") == 0)
				plain = 1;
			int bad = n == 0 ? 0 : add_header(b, k->string, (const char *)evbuffer_pullup(j, -1), &has_host, why);
			evbuffer_free(j);
			if (bad < 0)
				return -1;
		}
	} else if (cJSON_IsObject(hs)) {
		cJSON_ArrayForEach(k, hs) {
			if (!cJSON_IsString(k))
				continue;
			if (add_header(b, k->string, k->valuestring, &has_host, why) < 0)
				return -1;
			if (strcasecmp(k->string, "X-Forwarded-For") == 0)
				xff = k->valuestring;
			if (strcasecmp(k->string, "X-Forwarded-Proto") == 0 && strcasecmp(k->valuestring, "http") == 0)
				plain = 1;
		}
	}
	if (v->fmt == LAMBDA_FMT_V2) {
		const cJSON *cookies = cJSON_GetObjectItemCaseSensitive(ev, "cookies");
		if (cJSON_GetArraySize(cookies) > 0) {
			struct evbuffer *c = evbuffer_new();
			const cJSON *x;
			cJSON_ArrayForEach(x, cookies) {
				if (!cJSON_IsString(x))
					continue;
				if (strpbrk(x->valuestring, "\r\n") != NULL) {
					evbuffer_free(c);
					*why = "a line break in a cookie";
					return -1;
				}
				if (evbuffer_get_length(c) > 0)
					evbuffer_add(c, "; ", 2);
				evbuffer_add(c, x->valuestring, strlen(x->valuestring));
			}
			evbuffer_add(b, "Cookie: ", 8);
			evbuffer_add_buffer(b, c);
			evbuffer_add(b, "\r\n", 2);
			evbuffer_free(c);
		}
	}
	if (!has_host) {
		const char *dn = str_at(rc, "domainName");
		evbuffer_add_printf(b, "Host: %s\r\n", dn != NULL && strpbrk(dn, "\r\n") == NULL ? dn : "lambda");
	}
	/* Function URLs and API Gateway take HTTPS only; an ALB says. */
	v->https = !plain;
	if (src == NULL && xff != NULL)
		src = xff;
	lambda_printable(v->remote, sizeof(v->remote), src != NULL ? src : "lambda");
	char *comma = strchr(v->remote, ',');
	if (comma != NULL)
		*comma = '\0';
	return 0;
}

/* The event's body, decoded: malloc'd, or NULL with *why. */
static unsigned char *
event_body(const cJSON *ev, size_t *len, const char **why)
{
	const char *body = str_at(ev, "body");
	const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(ev, "isBase64Encoded");
	size_t n = body != NULL ? strlen(body) : 0;
	unsigned char *out = malloc(n + 1);
	if (out == NULL) {
		*why = "out of memory";
		return NULL;
	}
	if (cJSON_IsTrue(b64) && n > 0) {
		if (base64_decode(body, n, out, len) < 0) {
			free(out);
			*why = "the event's body is not base64 (isBase64Encoded)";
			return NULL;
		}
	} else {
		if (n > 0)
			memcpy(out, body, n);
		*len = n;
	}
	return out;
}


int
lambda_event_request(const cJSON *ev, struct evbuffer *out, struct lambda_req *r, const char **why)
{
	memset(r, 0, sizeof(*r));
	struct evbuffer *b = evbuffer_new();
	if (b == NULL) {
		*why = "out of memory";
		return -1;
	}
	int rc = build_request(ev, b, r, why);
	size_t blen = 0;
	unsigned char *body = rc == 0 ? event_body(ev, &blen, why) : NULL;
	if (rc == 0 && body == NULL)
		rc = -1;
	if (rc == 0) {
		evbuffer_add_printf(b, "Content-Length: %zu\r\nConnection: close\r\n\r\n", blen);
		evbuffer_add(b, body, blen);
		evbuffer_add_buffer(out, b);
	}
	free(body);
	evbuffer_free(b);
	return rc;
}

static const char *
status_phrase(int status)
{
	const char *t = http_status_text(status);
	return t != NULL ? t : "";
}

cJSON *
lambda_answer_meta(const struct lambda_req *v, int status, const struct lambda_field *h, size_t nh)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "statusCode", status);
	if (v->fmt == LAMBDA_FMT_ALB) {
		char d[80];
		snprintf(d, sizeof(d), "%d %s", status, status_phrase(status));
		cJSON_AddStringToObject(o, "statusDescription", d);
	}
	int multi = v->fmt == LAMBDA_FMT_V1 || (v->fmt == LAMBDA_FMT_ALB && v->multi);
	cJSON *hs = cJSON_AddObjectToObject(o, multi ? "multiValueHeaders" : "headers");
	cJSON *cookies = v->fmt == LAMBDA_FMT_V2 ? cJSON_AddArrayToObject(o, "cookies") : NULL;
	for (size_t i = 0; i < nh; i++) {
		const char *n = h[i].name, *val = h[i].value;
		/* Framing is Lambda's business. */
		if (strcasecmp(n, "Content-Length") == 0 || strcasecmp(n, "Transfer-Encoding") == 0 ||
		    strcasecmp(n, "Connection") == 0)
			continue;
		if (cookies != NULL && strcasecmp(n, "Set-Cookie") == 0) {
			cJSON_AddItemToArray(cookies, cJSON_CreateString(val));
			continue;
		}
		cJSON *had = cJSON_GetObjectItem(hs, n);
		if (multi) {
			if (had == NULL)
				had = cJSON_AddArrayToObject(hs, n);
			cJSON_AddItemToArray(had, cJSON_CreateString(val));
		} else if (had != NULL && v->fmt == LAMBDA_FMT_V2) {
			/* 2.0 joins repeated headers with commas */
			char *j = malloc(strlen(had->valuestring) + strlen(val) + 2);
			if (j != NULL) {
				sprintf(j, "%s,%s", had->valuestring, val);
				cJSON_ReplaceItemInObject(hs, n, cJSON_CreateString(j));
				free(j);
			}
		} else {
			if (had != NULL)
				cJSON_DeleteItemFromObject(hs, n);
			cJSON_AddStringToObject(hs, n, val);
		}
	}
	return o;
}

