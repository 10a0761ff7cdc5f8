/* libFuzzer target: an event from the Lambda Runtime API, as mcpd
 * --lambda reads it (daemon/lib/json.c), turned into the HTTP/1.1
 * request it stands for (daemon/process/lambda_event.c). Whatever the
 * event holds, the request is one request: a request line whose target
 * has no space or control byte, header lines that are each a token, ": "
 * and a value with no line break, the blank line, then exactly
 * Content-Length bytes of body. No header smuggled in, no second request. */
#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "lambda_event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
tchar(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("\"(),/:;<=>?@[\\]{}", c) == NULL;
}

static void
check_request(const char *s, size_t n)
{
	const char *end = memmem(s, n, "\r\n\r\n", 4);
	if (end == NULL)
		abort();
	const char *p = s, *eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
	/* METHOD SP target SP HTTP/1.1 */
	const char *sp = memchr(p, ' ', (size_t)(eol - p));
	if (sp == NULL || sp == p)
		abort();
	for (const char *q = p; q < sp; q++)
		if (!tchar((unsigned char)*q))
			abort();
	const char *sp2 = memchr(sp + 1, ' ', (size_t)(eol - sp - 1));
	if (sp2 == NULL || sp[1] != '/' || eol - sp2 != 9 || memcmp(sp2, " HTTP/1.1", 9) != 0)
		abort();
	for (const char *q = sp + 1; q < sp2; q++)
		if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
			abort();
	unsigned long long clen = (unsigned long long)-1;
	int nclen = 0;
	for (p = eol + 2; p < end + 2; p = eol + 2) {
		eol = memmem(p, (size_t)(end + 4 - p), "\r\n", 2);
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		if (colon == NULL || colon == p || colon[1] != ' ')
			abort();
		for (const char *q = p; q < colon; q++)
			if (!tchar((unsigned char)*q))
				abort();
		for (const char *q = colon; q < eol; q++)
			if (*q == '\r' || *q == '\n' || *q == '\0')
				abort();
		if ((size_t)(colon - p) == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
			clen = strtoull(colon + 2, NULL, 10);
			nclen++;
		}
		if ((size_t)(colon - p) == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0)
			abort();
	}
	if (nclen != 1 || clen != (unsigned long long)(n - (size_t)(end + 4 - s)))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *ev = json_parse((const char *)data, size, 0, NULL);
	if (ev == NULL)
		return 0;
	struct evbuffer *out = evbuffer_new();
	struct lambda_req r;
	const char *why = NULL;
	int rc = lambda_event_request(ev, out, &r, &why);
	size_t n = evbuffer_get_length(out);
	if (rc == 0) {
		check_request((const char *)evbuffer_pullup(out, -1), n);
		if (memchr(r.remote, ' ', strlen(r.remote)) != NULL)
			abort();
		struct lambda_field h[] = { { "Set-Cookie", "a=1" }, { "X", "y" } };
		cJSON_Delete(lambda_answer_meta(&r, 200, h, 2));
	} else if (n != 0 || (rc == -1 && why == NULL) || (rc != -1 && rc != -2)) {
		abort();
	}
	evbuffer_free(out);
	cJSON_Delete(ev);
	return 0;
}
