/* process/lambda_event.c: Lambda's HTTP events back into HTTP/1.1
 * requests, and answers into the events' formats. */
#include <check.h>
#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "lambda_event.h"
#include "suites.h"

/* The request an event (JSON text) stands for, as a string; NULL when
 * it is refused (rc and why say how). */
static char *
request_of(const char *json, struct lambda_req *r, int *rc, const char **why)
{
	cJSON *ev = cJSON_Parse(json);
	ck_assert_ptr_nonnull(ev);
	struct evbuffer *out = evbuffer_new();
	*why = NULL;
	*rc = lambda_event_request(ev, out, r, why);
	cJSON_Delete(ev);
	char *s = NULL;
	if (*rc == 0) {
		size_t n = evbuffer_get_length(out);
		s = malloc(n + 1);
		evbuffer_remove(out, s, n);
		s[n] = '\0';
	} else {
		ck_assert_uint_eq(evbuffer_get_length(out), 0);
	}
	evbuffer_free(out);
	return s;
}

static char *
request_ok(const char *json, struct lambda_req *r)
{
	int rc;
	const char *why;
	char *s = request_of(json, r, &rc, &why);
	ck_assert_msg(rc == 0, "refused: %s", why ? why : "(no shape)");
	return s;
}

START_TEST(v2_request)
{
	struct lambda_req r;
	char *s = request_ok("{\"version\":\"2.0\",\"rawPath\":\"/mcp\",\"rawQueryString\":\"a=1&b=%20x\","
	    "\"cookies\":[\"c1=one\",\"c2=two\"],"
	    "\"headers\":{\"content-type\":\"application/json\",\"host\":\"x.lambda-url.us-east-1.on.aws\","
	    "\"accept\":\"application/json,text/event-stream\",\"content-length\":\"999\",\"connection\":\"keep-alive\"},"
	    "\"requestContext\":{\"http\":{\"method\":\"POST\",\"sourceIp\":\"203.0.113.7\"}},"
	    "\"body\":\"eyJhIjoxfQ==\",\"isBase64Encoded\":true}", &r);
	ck_assert_int_eq(r.fmt, LAMBDA_FMT_V2);
	ck_assert_int_eq(r.https, 1);
	ck_assert_str_eq(r.remote, "203.0.113.7");
	ck_assert_int_eq(r.head, 0);
	ck_assert_str_eq(s, "POST /mcp?a=1&b=%20x HTTP/1.1\r\n"
	    "content-type: application/json\r\n"
	    "host: x.lambda-url.us-east-1.on.aws\r\n"
	    "accept: application/json,text/event-stream\r\n"
	    "Cookie: c1=one; c2=two\r\n"
	    "Content-Length: 7\r\nConnection: close\r\n\r\n{\"a\":1}");
	free(s);
}
END_TEST

START_TEST(v1_request)
{
	struct lambda_req r;
	/* Query values come decoded: encoded again; repeated header values
	 * make one line; the path's spaces and ? are escaped. */
	char *s = request_ok("{\"version\":\"1.0\",\"httpMethod\":\"GET\",\"path\":\"/a b?c\","
	    "\"headers\":{\"Accept\":\"text/html\"},"
	    "\"multiValueHeaders\":{\"Accept\":[\"text/html\",\"application/json\"],\"X-Forwarded-For\":[\"198.51.100.1\"]},"
	    "\"queryStringParameters\":{\"q\":\"last\"},"
	    "\"multiValueQueryStringParameters\":{\"q\":[\"a b\",\"c&d\"]},"
	    "\"requestContext\":{\"identity\":{\"sourceIp\":\"198.51.100.9\"},\"domainName\":\"api.example.com\"},"
	    "\"body\":null,\"isBase64Encoded\":false}", &r);
	ck_assert_int_eq(r.fmt, LAMBDA_FMT_V1);
	ck_assert_int_eq(r.multi, 1);
	ck_assert_str_eq(r.remote, "198.51.100.9");
	ck_assert_str_eq(s, "GET /a%20b%3Fc?q=a%20b&q=c%26d HTTP/1.1\r\n"
	    "Accept: text/html, application/json\r\n"
	    "X-Forwarded-For: 198.51.100.1\r\n"
	    "Host: api.example.com\r\n"
	    "Content-Length: 0\r\nConnection: close\r\n\r\n");
	free(s);
}
END_TEST

START_TEST(alb_request)
{
	struct lambda_req r;
	/* ALB passes the query as sent (not decoded), and the client's
	 * address only in X-Forwarded-For. */
	char *s = request_ok("{\"requestContext\":{\"elb\":{\"targetGroupArn\":\"arn:x\"}},\"httpMethod\":\"HEAD\","
	    "\"path\":\"/mcp\",\"queryStringParameters\":{\"q\":\"a%20b\"},"
	    "\"headers\":{\"host\":\"alb.example.com\",\"x-forwarded-for\":\"192.0.2.5, 10.0.0.1\"},"
	    "\"body\":\"\",\"isBase64Encoded\":false}", &r);
	ck_assert_int_eq(r.fmt, LAMBDA_FMT_ALB);
	ck_assert_int_eq(r.multi, 0);
	ck_assert_int_eq(r.head, 1);
	ck_assert_int_eq(r.https, 1);
	ck_assert_str_eq(r.remote, "192.0.2.5");
	ck_assert_str_eq(s, "HEAD /mcp?q=a%20b HTTP/1.1\r\n"
	    "host: alb.example.com\r\nx-forwarded-for: 192.0.2.5, 10.0.0.1\r\n"
	    "Content-Length: 0\r\nConnection: close\r\n\r\n");
	free(s);
	/* Multi-value headers; a plain HTTP listener (X-Forwarded-Proto). */
	s = request_ok("{\"requestContext\":{\"elb\":{}},\"httpMethod\":\"GET\",\"path\":\"/\","
	    "\"multiValueHeaders\":{\"x-forwarded-for\":[\"192.0.2.9\"],\"x-forwarded-proto\":[\"http\"]}}", &r);
	ck_assert_int_eq(r.multi, 1);
	ck_assert_int_eq(r.https, 0);
	ck_assert_str_eq(r.remote, "192.0.2.9");
	free(s);
}
END_TEST

START_TEST(refused_events)
{
	struct lambda_req r;
	int rc;
	const char *why;
	static const char *const unknown[] = {
		"{}",
		"{\"Records\":[{\"eventSource\":\"aws:sqs\"}]}",
		"{\"version\":\"2.0\",\"rawPath\":\"/\"}",              /* no requestContext.http.method */
		"{\"httpMethod\":\"GET\"}",                             /* no path */
		"{\"version\":\"2.0\",\"requestContext\":{\"http\":{\"method\":7}}}",
	};
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		ck_assert_ptr_null(request_of(unknown[i], &r, &rc, &why));
		ck_assert_int_eq(rc, -2);
	}
	static const struct {
		const char *json, *why;
	} bad[] = {
		{ "{\"httpMethod\":\"GET\",\"path\":\"/x\",\"headers\":{\"X-A\":\"a\\r\\nX-B: b\"}}", "line break" },
		{ "{\"httpMethod\":\"GET\",\"path\":\"/x\",\"headers\":{\"X A\":\"a\"}}", "token" },
		{ "{\"httpMethod\":\"GET\",\"path\":\"/x\",\"headers\":{\"\":\"a\"}}", "empty" },
		{ "{\"httpMethod\":\"GET\",\"path\":\"/x\",\"multiValueHeaders\":{\"X-A\":[\"a\",\"b\\nc\"]}}", "line break" },
		{ "{\"httpMethod\":\"GE T\",\"path\":\"/x\"}", "token" },
		{ "{\"httpMethod\":\"GET\",\"path\":\"x\"}", "start with /" },
		{ "{\"version\":\"2.0\",\"rawPath\":\"/\",\"cookies\":[\"a=1\\r\\nX: y\"],"
		  "\"requestContext\":{\"http\":{\"method\":\"GET\"}}}", "cookie" },
		{ "{\"httpMethod\":\"POST\",\"path\":\"/x\",\"body\":\"%%%\",\"isBase64Encoded\":true}", "base64" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_ptr_null(request_of(bad[i].json, &r, &rc, &why));
		ck_assert_int_eq(rc, -1);
		ck_assert_msg(why != NULL && strstr(why, bad[i].why) != NULL, "%s: %s", bad[i].json, why);
	}
}
END_TEST

START_TEST(binary_body)
{
	struct lambda_req r;
	char *s = request_ok("{\"httpMethod\":\"PUT\",\"path\":\"/b\",\"body\":\"AAEC/w==\",\"isBase64Encoded\":true,"
	    "\"headers\":{\"Host\":\"h\"}}", &r);
	const char *body = strstr(s, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	ck_assert(strstr(s, "Content-Length: 4\r\n") != NULL);
	ck_assert(memcmp(body + 4, "\x00\x01\x02\xff", 4) == 0);
	free(s);
}
END_TEST

static char *
meta_of(enum lambda_fmt fmt, int multi, int status)
{
	static const struct lambda_field h[] = {
		{ "Content-Type", "text/event-stream" }, { "Set-Cookie", "a=1; Path=/" },
		{ "Set-Cookie", "b=2" }, { "Vary", "Origin" }, { "Vary", "Accept" },
		{ "Content-Length", "10" }, { "Transfer-Encoding", "chunked" }, { "Connection", "close" },
	};
	struct lambda_req r = { .fmt = fmt, .multi = multi };
	cJSON *o = lambda_answer_meta(&r, status, h, sizeof(h) / sizeof(h[0]));
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

START_TEST(answers_in_each_format)
{
	char *s = meta_of(LAMBDA_FMT_V2, 0, 200);
	ck_assert_str_eq(s, "{\"statusCode\":200,\"headers\":{\"Content-Type\":\"text/event-stream\","
	    "\"Vary\":\"Origin,Accept\"},\"cookies\":[\"a=1; Path=/\",\"b=2\"]}");
	free(s);
	s = meta_of(LAMBDA_FMT_V1, 0, 404);
	ck_assert_str_eq(s, "{\"statusCode\":404,\"multiValueHeaders\":{\"Content-Type\":[\"text/event-stream\"],"
	    "\"Set-Cookie\":[\"a=1; Path=/\",\"b=2\"],\"Vary\":[\"Origin\",\"Accept\"]}}");
	free(s);
	s = meta_of(LAMBDA_FMT_ALB, 1, 405);
	ck_assert_str_eq(s, "{\"statusCode\":405,\"statusDescription\":\"405 Method Not Allowed\","
	    "\"multiValueHeaders\":{\"Content-Type\":[\"text/event-stream\"],"
	    "\"Set-Cookie\":[\"a=1; Path=/\",\"b=2\"],\"Vary\":[\"Origin\",\"Accept\"]}}");
	free(s);
	/* ALB without multi-value headers: one value a name, the last. */
	s = meta_of(LAMBDA_FMT_ALB, 0, 200);
	ck_assert_str_eq(s, "{\"statusCode\":200,\"statusDescription\":\"200 OK\","
	    "\"headers\":{\"Content-Type\":\"text/event-stream\",\"Set-Cookie\":\"b=2\",\"Vary\":\"Accept\"}}");
	free(s);
}
END_TEST

START_TEST(printable)
{
	char out[8];
	lambda_printable(out, sizeof(out), "a b\r\nc\x01\x7f" "defghij");
	ck_assert_str_eq(out, "abcdefg");
	lambda_printable(out, 1, "abc");
	ck_assert_str_eq(out, "");
}
END_TEST

Suite *
lambda_suite(void)
{
	Suite *s = suite_create("lambda");
	TCase *tc = tcase_create("events");
	tcase_add_test(tc, v2_request);
	tcase_add_test(tc, v1_request);
	tcase_add_test(tc, alb_request);
	tcase_add_test(tc, refused_events);
	tcase_add_test(tc, binary_body);
	tcase_add_test(tc, answers_in_each_format);
	tcase_add_test(tc, printable);
	suite_add_tcase(s, tc);
	return s;
}
