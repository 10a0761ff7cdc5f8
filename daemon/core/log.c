#include "log.h"
#include "util.h"

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

/* What one field may take of an access line, escapes included: with the
 * prefix and the fixed text they stay well under LINE_MAX_BYTES, so that a
 * line always ends properly (a JSON line stays an object). A longer value
 * is cut and ends in "...". */
#define FIELD_SHORT 128         /* remote address, method */
#define FIELD_TARGET 4096
#define FIELD_AGENT 1024
#define FIELD_EXTRA 512

enum esc {
	ESC_TEXT,       /* control characters as \xNN: a message never spans lines */
	ESC_QUOTED,     /* the same, and '"' and '\' too: a quoted access-log field */
	ESC_JSON,       /* the inside of a JSON string */
};

static void
put_time(struct sbuf *b)
{
	struct timeval tv;
	struct tm tm;
	char buf[32];
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	if (strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		buf[0] = '\0';
	sbuf_printf(b, "%s.%03dZ", buf, (int)(tv.tv_usec / 1000));
}

/* One byte as it is written: escaped or itself. Returns its length. */
static size_t
escape_byte(unsigned char c, enum esc how, char out[8])
{
	static const char hex[] = "0123456789abcdef";
	if (how == ESC_JSON) {
		if (c == '"' || c == '\\') {
			out[0] = '\\';
			out[1] = (char)c;
			return 2;
		}
		if (c == '\n') {
			memcpy(out, "\\n", 2);
			return 2;
		}
		if (c < 0x20 || c == 0x7f) {
			memcpy(out, "\\u00", 4);
			out[4] = hex[c >> 4];
			out[5] = hex[c & 15];
			return 6;
		}
	} else if (c < 0x20 || c == 0x7f || (how == ESC_QUOTED && (c == '"' || c == '\\'))) {
		out[0] = '\\';
		out[1] = 'x';
		out[2] = hex[c >> 4];
		out[3] = hex[c & 15];
		return 4;
	}
	out[0] = (char)c;
	return 1;
}

/* Append s escaped, taking at most max bytes (and never more than the
 * buffer has left). A value that does not fit is cut where "..." still
 * fits, never inside an escape or a UTF-8 sequence, and ends in "...". */
static void
put_field(struct sbuf *b, const char *s, size_t max, enum esc how)
{
	static const char more[] = "...";
	const size_t ml = sizeof(more) - 1;
	if (max > sbuf_room(b))
		max = sbuf_room(b);
	const size_t soft = max > ml ? max - ml : 0;
	const size_t start = b->len;
	const unsigned char *p = (const unsigned char *)s, *cut = NULL;
	size_t cut_len = start;
	char u[8];
	for (; *p; p++) {
		size_t ul = escape_byte(*p, how, u);
		if (cut == NULL && b->len - start + ul > soft) {
			cut = p;
			cut_len = b->len;
		}
		if (b->len - start + ul > max)
			break;
		memcpy(b->s + b->len, u, ul);
		b->len += ul;
	}
	if (*p != '\0') {
		/* Bytes from 0x80 up are written as they are, one for one, so
		 * stepping back over continuation bytes steps back the output. */
		while (cut > (const unsigned char *)s && (*cut & 0xc0) == 0x80) {
			cut--;
			cut_len--;
		}
		b->len = cut_len;
		if (max >= ml) {
			memcpy(b->s + b->len, more, ml);
			b->len += ml;
		}
		b->cut = 1;
	}
	if (b->cap > 0)
		b->s[b->len] = '\0';
}

static void
emit(const struct sbuf *b)
{
	char *line = b->s;
	size_t n = b->len;
	/* the buffer keeps a byte beyond its sbuf for this */
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

static void
prefix(struct sbuf *b, enum log_level level)
{
	if (logger.format == LOG_JSON) {
		sbuf_str(b, "{\"time\":\"");
		put_time(b);
		sbuf_str(b, "\",\"level\":\"");
		sbuf_str(b, level_names[level]);
		sbuf_str(b, "\",\"process\":\"");
		put_field(b, logger.process, FIELD_SHORT, ESC_JSON);
		sbuf_printf(b, "\",\"pid\":%d", (int)getpid());
	} else if (logger.journal) {
		sbuf_printf(b, "<%d>", level_prio[level]);
		put_field(b, logger.process, FIELD_SHORT, ESC_TEXT);
		sbuf_printf(b, "[%d]: ", (int)getpid());
	} else {
		put_time(b);
		sbuf_printf(b, " [%s] ", level_names[level]);
		put_field(b, logger.process, FIELD_SHORT, ESC_TEXT);
		sbuf_printf(b, "[%d]: ", (int)getpid());
	}
}

static void
vlog(enum log_level level, const char *suffix, const char *fmt, va_list ap)
{
	char msg[LINE_MAX_BYTES / 2];
	char line[LINE_MAX_BYTES];
	struct sbuf m, b;
	sbuf_init(&m, msg, sizeof(msg));
	sbuf_vprintf(&m, fmt, ap);
	if (suffix != NULL)
		sbuf_printf(&m, ": %s", suffix);
	sbuf_mark_cut(&m, "...");
	sbuf_init(&b, line, sizeof(line) - 1);
	prefix(&b, level);
	if (logger.format == LOG_JSON) {
		sbuf_str(&b, ",\"msg\":\"");
		size_t room = sbuf_room(&b);
		put_field(&b, msg, room > 2 ? room - 2 : 0, ESC_JSON);
		sbuf_str(&b, "\"}");
	} else {
		put_field(&b, msg, sbuf_room(&b), ESC_TEXT);
	}
	emit(&b);
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

int
log_access_json(void)
{
	return logger.format == LOG_JSON && LOG_INFO <= logger.level;
}

void
log_access(const struct access_record *r)
{
	if (LOG_INFO > logger.level)
		return;
	char line[LINE_MAX_BYTES];
	struct sbuf b;
	sbuf_init(&b, line, sizeof(line) - 1);
	prefix(&b, LOG_INFO);
	if (logger.format == LOG_JSON) {
		sbuf_str(&b, ",\"type\":\"access\",\"remote\":\"");
		put_field(&b, r->remote ? r->remote : "-", FIELD_SHORT, ESC_JSON);
		sbuf_str(&b, "\",\"method\":\"");
		put_field(&b, r->method ? r->method : "-", FIELD_SHORT, ESC_JSON);
		sbuf_str(&b, "\",\"target\":\"");
		put_field(&b, r->target ? r->target : "-", FIELD_TARGET, ESC_JSON);
		sbuf_printf(&b, "\",\"protocol\":\"HTTP/1.%d\",\"status\":%d,\"bytes_in\":%zu,"
		    "\"bytes_out\":%zu,\"duration_ms\":%.3f,\"user_agent\":\"",
		    r->http_minor, r->status, r->bytes_in, r->bytes_out, r->duration_ms);
		put_field(&b, r->user_agent ? r->user_agent : "", FIELD_AGENT, ESC_JSON);
		sbuf_str(&b, "\"");
		if (r->extra != NULL) {
			sbuf_str(&b, ",\"rpc\":\"");
			put_field(&b, r->extra, FIELD_EXTRA, ESC_JSON);
			sbuf_str(&b, "\"");
		}
		if (r->trace_id != NULL)    /* 32 hex digits, checked */
			sbuf_printf(&b, ",\"trace_id\":\"%s\"", r->trace_id);
		if (r->span_id != NULL)     /* 16 hex digits, ours */
			sbuf_printf(&b, ",\"span_id\":\"%s\"", r->span_id);
		const struct { const char *key, *value; } mcp[] = {
			{ "mcp.method.name", r->mcp_method }, { "gen_ai.tool.name", r->tool },
			{ "mcp.session.id", r->session }, { "user.id", r->principal },
			{ "error.type", r->error_type },
		};
		for (size_t i = 0; i < sizeof(mcp) / sizeof(mcp[0]); i++) {
			if (mcp[i].value == NULL)
				continue;
			sbuf_printf(&b, ",\"%s\":\"", mcp[i].key);
			put_field(&b, mcp[i].value, FIELD_SHORT, ESC_JSON);
			sbuf_str(&b, "\"");
		}
		sbuf_str(&b, "}");
	} else {
		put_field(&b, r->remote ? r->remote : "-", FIELD_SHORT, ESC_QUOTED);
		sbuf_str(&b, " \"");
		put_field(&b, r->method ? r->method : "-", FIELD_SHORT, ESC_QUOTED);
		sbuf_str(&b, " ");
		put_field(&b, r->target ? r->target : "-", FIELD_TARGET, ESC_QUOTED);
		sbuf_printf(&b, " HTTP/1.%d\" %d %zu %zu %.3fms \"",
		    r->http_minor, r->status, r->bytes_in, r->bytes_out, r->duration_ms);
		put_field(&b, r->user_agent ? r->user_agent : "-", FIELD_AGENT, ESC_QUOTED);
		sbuf_str(&b, "\"");
		if (r->extra != NULL) {
			sbuf_str(&b, " ");
			put_field(&b, r->extra, FIELD_EXTRA, ESC_TEXT);
		}
	}
	emit(&b);
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
