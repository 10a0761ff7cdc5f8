#include "log.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 8192

static struct {
	int fd;                 /* -1: stderr */
	char path[4096];        /* empty: stderr */
	enum log_level level;
	enum log_format format;
	int journal;            /* stderr is connected to journald */
	char process[32];
} logger = { -1, "", LOG_INFO, LOG_TEXT, 0, "mcpd" };

static const char *const level_names[] = { "error", "warn", "notice", "info", "debug" };
/* syslog priorities for the "<N>" prefix that journald understands */
static const int level_prio[] = { 3, 4, 5, 6, 7 };

int
log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcmp(s, "warning") == 0) {
		*out = LOG_WARN;
		return 0;
	}
	return -1;
}

const char *
log_level_name(enum log_level level)
{
	return level_names[level];
}

static int
open_dest(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0 && err != NULL)
		snprintf(err, errlen, "cannot open log file %s: %s", path, strerror(errno));
	return fd;
}

/* JOURNAL_STREAM is "dev:inode" of the stream journald gave us; only when
 * stderr is still that stream do the "<N>" priority prefixes apply. */
static int
stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

int
log_open(const char *dest, enum log_level level, enum log_format format,
    char *err, size_t errlen)
{
	int fd = -1;
	if (dest != NULL && strcmp(dest, "stderr") != 0) {
		if (strlen(dest) >= sizeof(logger.path)) {
			snprintf(err, errlen, "log file path too long");
			return -1;
		}
		fd = open_dest(dest, err, errlen);
		if (fd < 0)
			return -1;
	}
	if (logger.fd >= 0)
		close(logger.fd);
	logger.fd = fd;
	if (fd >= 0)
		snprintf(logger.path, sizeof(logger.path), "%s", dest);
	else
		logger.path[0] = '\0';
	logger.level = level;
	logger.format = format;
	logger.journal = fd < 0 && stderr_is_journal();
	return 0;
}

int
log_reopen(void)
{
	if (logger.path[0] == '\0')
		return 0;
	char err[4400];
	int fd = open_dest(logger.path, err, sizeof(err));
	if (fd < 0) {
		log_error("%s", err);
		return -1;
	}
	dup2(fd, logger.fd);  /* keep the number: children may hold it */
	close(fd);
	return 0;
}

void
log_set_process(const char *name)
{
	snprintf(logger.process, sizeof(logger.process), "%s", name);
}

void
log_set_level(enum log_level level)
{
	logger.level = level;
}

int
log_enabled(enum log_level level)
{
	return level <= logger.level;
}

int
log_fd(void)
{
	return logger.fd >= 0 ? logger.fd : STDERR_FILENO;
}

static size_t
format_time(char *buf, size_t len)
{
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(buf + n, len - n, ".%03dZ", (int)(tv.tv_usec / 1000));
	return n;
}

/* Append s to buf as the inside of a JSON string. */
static size_t
json_escape(char *buf, size_t pos, size_t len, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	for (const unsigned char *p = (const unsigned char *)s; *p && pos + 7 < len; p++) {
		unsigned char c = *p;
		if (c == '"' || c == '\\') {
			buf[pos++] = '\\';
			buf[pos++] = (char)c;
		} else if (c == '\n') {
			buf[pos++] = '\\';
			buf[pos++] = 'n';
		} else if (c < 0x20 || c == 0x7f) {
			pos += (size_t)snprintf(buf + pos, len - pos, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
		} else {
			buf[pos++] = (char)c;
		}
	}
	return pos;
}

/* Text lines keep control characters out: a message never spans lines. */
static size_t
text_clean(char *buf, size_t pos, size_t len, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p && pos + 5 < len; p++) {
		if (*p < 0x20 || *p == 0x7f)
			pos += (size_t)snprintf(buf + pos, len - pos, "\\x%02x", *p);
		else
			buf[pos++] = (char)*p;
	}
	return pos;
}

static void
emit(char *line, size_t n)
{
	if (n >= LINE_MAX_BYTES - 1)
		n = LINE_MAX_BYTES - 2;
	line[n++] = '\n';
	int fd = log_fd();
	ssize_t off = 0;
	while ((size_t)off < n) {
		ssize_t w = write(fd, line + off, n - (size_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += w;
	}
}

static size_t
prefix(char *line, enum log_level level)
{
	size_t n = 0;
	if (logger.format == LOG_JSON) {
		n += (size_t)snprintf(line, LINE_MAX_BYTES, "{\"time\":\"");
		n += format_time(line + n, LINE_MAX_BYTES - n);
		n += (size_t)snprintf(line + n, LINE_MAX_BYTES - n,
		    "\",\"level\":\"%s\",\"process\":\"%s\",\"pid\":%d",
		    level_names[level], logger.process, (int)getpid());
	} else if (logger.journal) {
		n += (size_t)snprintf(line, LINE_MAX_BYTES, "<%d>%s[%d]: ",
		    level_prio[level], logger.process, (int)getpid());
	} else {
		n += format_time(line, LINE_MAX_BYTES);
		n += (size_t)snprintf(line + n, LINE_MAX_BYTES - n, " [%s] %s[%d]: ",
		    level_names[level], logger.process, (int)getpid());
	}
	return n;
}

static void
vlog(enum log_level level, const char *suffix, const char *fmt, va_list ap)
{
	char msg[LINE_MAX_BYTES / 2];
	char line[LINE_MAX_BYTES];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = prefix(line, level);
	if (logger.format == LOG_JSON) {
		n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"msg\":\"");
		n = json_escape(line, n, sizeof(line) - 8, msg);
		if (suffix != NULL) {
			n = json_escape(line, n, sizeof(line) - 8, ": ");
			n = json_escape(line, n, sizeof(line) - 8, suffix);
		}
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\"}");
	} else {
		n = text_clean(line, n, sizeof(line) - 2, msg);
		if (suffix != NULL) {
			n = text_clean(line, n, sizeof(line) - 2, ": ");
			n = text_clean(line, n, sizeof(line) - 2, suffix);
		}
	}
	emit(line, n);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	if (level > logger.level)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(level, NULL, fmt, ap);
	va_end(ap);
}

void
log_sys(enum log_level level, const char *fmt, ...)
{
	int saved = errno;
	if (level > logger.level)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(level, strerror(saved), fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_access(const struct access_record *r)
{
	if (LOG_INFO > logger.level)
		return;
	char line[LINE_MAX_BYTES];
	size_t n = prefix(line, LOG_INFO);
	const size_t lim = sizeof(line) - 8;
	if (logger.format == LOG_JSON) {
		n += (size_t)snprintf(line + n, lim - n, ",\"type\":\"access\",\"remote\":\"");
		n = json_escape(line, n, lim, r->remote ? r->remote : "-");
		n += (size_t)snprintf(line + n, lim - n, "\",\"method\":\"");
		n = json_escape(line, n, lim, r->method ? r->method : "-");
		n += (size_t)snprintf(line + n, lim - n, "\",\"target\":\"");
		n = json_escape(line, n, lim, r->target ? r->target : "-");
		n += (size_t)snprintf(line + n, lim - n,
		    "\",\"protocol\":\"HTTP/1.%d\",\"status\":%d,\"bytes_in\":%zu,"
		    "\"bytes_out\":%zu,\"duration_ms\":%.3f,\"user_agent\":\"",
		    r->http_minor, r->status, r->bytes_in, r->bytes_out, r->duration_ms);
		n = json_escape(line, n, lim, r->user_agent ? r->user_agent : "");
		n += (size_t)snprintf(line + n, lim - n, "\"");
		if (r->extra != NULL) {
			n += (size_t)snprintf(line + n, lim - n, ",\"rpc\":\"");
			n = json_escape(line, n, lim, r->extra);
			n += (size_t)snprintf(line + n, lim - n, "\"");
		}
		n += (size_t)snprintf(line + n, sizeof(line) - n, "}");
	} else {
		n = text_clean(line, n, lim, r->remote ? r->remote : "-");
		n += (size_t)snprintf(line + n, lim - n, " \"");
		n = text_clean(line, n, lim, r->method ? r->method : "-");
		line[n++] = ' ';
		n = text_clean(line, n, lim, r->target ? r->target : "-");
		n += (size_t)snprintf(line + n, lim - n, " HTTP/1.%d\" %d %zu %zu %.3fms \"",
		    r->http_minor, r->status, r->bytes_in, r->bytes_out, r->duration_ms);
		n = text_clean(line, n, lim, r->user_agent ? r->user_agent : "-");
		line[n++] = '"';
		if (r->extra != NULL) {
			line[n++] = ' ';
			n = text_clean(line, n, lim, r->extra);
		}
	}
	emit(line, n);
}

void
log_adopt_fd(int fd)
{
	if (logger.fd >= 0)
		dup2(fd, logger.fd);
	close(fd);
}

static void
libevent_log(int severity, const char *msg)
{
	enum log_level l = severity >= EVENT_LOG_ERR ? LOG_ERROR :
	    severity == EVENT_LOG_WARN ? LOG_WARN : LOG_DEBUG;
	log_msg(l, "libevent: %s", msg);
}

void
log_capture_libevent(void)
{
	event_set_log_callback(libevent_log);
}
