/* Logging: one line per event, text or JSON, to stderr (journald) or a file.
 * Every line is written with a single write(2) so that the lines of the
 * master and its workers never interleave. */
#ifndef MCPD_LOG_H
#define MCPD_LOG_H

#include <stddef.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_NOTICE, LOG_INFO, LOG_DEBUG };
enum log_format { LOG_TEXT, LOG_JSON };

/* dest is "stderr" or a file path. Returns -1 and fills err on failure;
 * the previous destination then stays in use. */
int log_open(const char *dest, enum log_level level, enum log_format format,
    char *err, size_t errlen);
int log_reopen(void);
void log_set_process(const char *name);
void log_set_level(enum log_level level);
int log_enabled(enum log_level level);
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);
/* The descriptor log lines go to, so that a child can be given it. */
int log_fd(void);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* As log_msg, with ": strerror(errno)" appended. */
void log_sys(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
	do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

struct access_record {
	const char *remote;
	const char *method;
	const char *target;
	const char *user_agent;
	const char *extra;      /* e.g. the JSON-RPC method, or NULL */
	int http_minor;
	int status;
	size_t bytes_in, bytes_out;
	double duration_ms;
	const char *trace_id;   /* from a valid traceparent header, or NULL */
	/* What the MCP layer knew of the request (JSON lines only, named as
	 * the attributes of its span); NULL: left out. */
	const char *mcp_method, *tool, *session, *principal, *span_id, *error_type;
};

/* Access lines are JSON and written: worth gathering the MCP fields. */
int log_access_json(void);

void log_access(const struct access_record *r);

/* Replace the log destination with fd (a file the master reopened). */
void log_adopt_fd(int fd);
/* Send libevent's own warnings through this logger. */
void log_capture_libevent(void);

#endif
