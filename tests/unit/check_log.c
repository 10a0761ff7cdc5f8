/* Log lines: whatever the fields hold, each line is one line within the
 * line limit, long values are cut visibly, and a JSON line is an object. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "suites.h"

static char path[64];

static void
open_log(enum log_format format)
{
	char err[256];
	snprintf(path, sizeof(path), "/tmp/mcpd-log-test-%d.log", (int)getpid());
	unlink(path);
	ck_assert_int_eq(log_open(path, LOG_INFO, format, err, sizeof(err)), 0);
}

/* The log's lines; *n gets their count. The caller frees the buffer. */
static char *
read_lines(char **lines, size_t max, size_t *n)
{
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	char *buf = calloc(1, 1 << 20);
	size_t len = fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	unlink(path);
	log_open("stderr", LOG_INFO, LOG_TEXT, NULL, 0);
	ck_assert_msg(len > 0 && buf[len - 1] == '\n', "the log does not end a line");
	*n = 0;
	for (char *p = buf; *p && *n < max;) {
		char *nl = strchr(p, '\n');
		*nl = '\0';
		lines[(*n)++] = p;
		p = nl + 1;
	}
	return buf;
}

static char *
filled(char c, size_t n)
{
	char *s = malloc(n + 1);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static const struct access_record *
long_record(void)
{
	static struct access_record r;
	static char *target, *agent, *extra;
	if (target == NULL) {
		target = filled('"', 9000);   /* escaped twice as long in JSON */
		target[0] = '/';
		agent = filled('\t', 14000);  /* \u0009 or \x09 each */
		extra = filled('e', 3000);
	}
	r = (struct access_record){ .remote = "127.0.0.1:1", .method = "GET", .target = target,
	    .user_agent = agent, .extra = extra, .http_minor = 1, .status = 200,
	    .bytes_in = 1, .bytes_out = 2, .duration_ms = 0.5 };
	return &r;
}

START_TEST(access_json)
{
	open_log(LOG_JSON);
	log_access(long_record());
	log_access(long_record());
	char *lines[4];
	size_t n;
	char *buf = read_lines(lines, 4, &n);
	ck_assert_uint_eq(n, 2);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_lt(strlen(lines[i]), 8192);
		cJSON *o = cJSON_Parse(lines[i]);
		ck_assert_msg(o != NULL, "not JSON: %.200s", lines[i]);
		const char *t = cJSON_GetObjectItem(o, "target")->valuestring;
		ck_assert_msg(t[0] == '/' && t[1] == '"', "target %.40s", t);
		ck_assert_str_eq(t + strlen(t) - 3, "...");
		const char *ua = cJSON_GetObjectItem(o, "user_agent")->valuestring;
		ck_assert(ua[0] == '\t' && strcmp(ua + strlen(ua) - 3, "...") == 0);
		const char *rpc = cJSON_GetObjectItem(o, "rpc")->valuestring;
		ck_assert(rpc[0] == 'e' && strcmp(rpc + strlen(rpc) - 3, "...") == 0);
		ck_assert_int_eq(cJSON_GetObjectItem(o, "status")->valueint, 200);
		cJSON_Delete(o);
	}
	free(buf);
}
END_TEST

START_TEST(access_text)
{
	open_log(LOG_TEXT);
	log_access(long_record());
	char *lines[4];
	size_t n;
	char *buf = read_lines(lines, 4, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_lt(strlen(lines[0]), 8192);
	ck_assert_ptr_nonnull(strstr(lines[0], "\"GET /\\x22\\x22"));
	ck_assert_ptr_nonnull(strstr(lines[0], "\\x22... HTTP/1.1\" 200 1 2 0.500ms \"\\x09"));
	ck_assert_ptr_nonnull(strstr(lines[0], "\\x09...\" eee"));
	ck_assert_str_eq(lines[0] + strlen(lines[0]) - 4, "e...");
	free(buf);
}
END_TEST

/* A value is never cut inside a UTF-8 sequence. */
START_TEST(access_utf8_cut)
{
	open_log(LOG_JSON);
	char *target = malloc(10001);
	target[0] = '/';
	for (size_t i = 1; i + 1 < 10000; i += 2)
		memcpy(target + i, "\xc3\xa9", 2);
	target[9999] = '\0';
	for (size_t shift = 0; shift < 2; shift++) {
		struct access_record r = { .remote = "r", .method = "GET", .target = target + shift,
		    .status = 200 };
		log_access(&r);
	}
	char *lines[4];
	size_t n;
	char *buf = read_lines(lines, 4, &n);
	ck_assert_uint_eq(n, 2);
	for (size_t i = 0; i < n; i++) {
		cJSON *o = cJSON_Parse(lines[i]);
		ck_assert_ptr_nonnull(o);
		const char *t = cJSON_GetObjectItem(o, "target")->valuestring;
		size_t tl = strlen(t);
		ck_assert_str_eq(t + tl - 3, "...");
		/* what precedes the mark ends with a whole "é" */
		ck_assert_msg(memcmp(t + tl - 5, "\xc3\xa9", 2) == 0, "cut inside a character");
		cJSON_Delete(o);
	}
	free(buf);
	free(target);
}
END_TEST

START_TEST(long_messages)
{
	char *big = filled('m', 6000);
	for (int f = 0; f < 2; f++) {
		open_log(f ? LOG_JSON : LOG_TEXT);
		log_info("%s", big);
		log_info("short \"one\"\nsecond line");
		char *lines[4];
		size_t n;
		char *buf = read_lines(lines, 4, &n);
		ck_assert_uint_eq(n, 2);
		ck_assert_str_eq(lines[0] + strlen(lines[0]) - (f ? 5 : 3), f ? "...\"}" : "...");
		if (f) {
			cJSON *o = cJSON_Parse(lines[1]);
			ck_assert_ptr_nonnull(o);
			ck_assert_str_eq(cJSON_GetObjectItem(o, "msg")->valuestring, "short \"one\"\nsecond line");
			cJSON_Delete(o);
			o = cJSON_Parse(lines[0]);
			ck_assert_ptr_nonnull(o);
			cJSON_Delete(o);
		} else {
			ck_assert_str_eq(strstr(lines[1], "short"), "short \"one\"\\x0asecond line");
		}
		free(buf);
	}
	free(big);
}
END_TEST

Suite *
log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("lines");
	tcase_add_test(tc, access_json);
	tcase_add_test(tc, access_text);
	tcase_add_test(tc, access_utf8_cut);
	tcase_add_test(tc, long_messages);
	suite_add_tcase(s, tc);
	return s;
}
