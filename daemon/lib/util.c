#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void
errlist_add(struct errlist *e, const char *fmt, ...)
{
	e->n++;
	if (e->kept == ERRLIST_KEEP)
		return;
	if (e->kept == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 8;
		char **m = realloc(e->msgs, cap * sizeof(*m));
		if (m == NULL)
			return;
		e->msgs = m;
		e->cap = cap;
	}
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (s == NULL)
		s = strdup("(out of memory)");
	if (s != NULL)
		e->msgs[e->kept++] = s;
}

void
errlist_free(struct errlist *e)
{
	for (size_t i = 0; i < e->kept; i++)
		free(e->msgs[i]);
	free(e->msgs);
	e->msgs = NULL;
	e->n = e->cap = e->kept = 0;
}

void
errlist_each(const struct errlist *e, void (*fn)(const char *msg, void *arg), void *arg)
{
	for (size_t i = 0; i < e->kept; i++)
		fn(e->msgs[i], arg);
	if (e->n > e->kept) {
		char more[96];
		snprintf(more, sizeof(more), "(and %zu more errors, not shown)", e->n - e->kept);
		fn(more, arg);
	}
}

struct occurrence {
	const char *s;
	size_t i;
};

static int
occurrence_cmp(const void *a, const void *b)
{
	const struct occurrence *x = a, *y = b;
	int c = strcmp(x->s, y->s);
	if (c != 0)
		return c;
	return x->i < y->i ? -1 : x->i > y->i;
}

size_t *
first_occurrences(const char *const *s, size_t n)
{
	size_t *first = malloc((n ? n : 1) * sizeof(*first));
	struct occurrence *o = malloc((n ? n : 1) * sizeof(*o));
	if (first == NULL || o == NULL) {
		free(first);
		free(o);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		o[i].s = s[i];
		o[i].i = i;
	}
	qsort(o, n, sizeof(*o), occurrence_cmp);
	for (size_t i = 0; i < n; i++)
		first[o[i].i] = i > 0 && strcmp(o[i - 1].s, o[i].s) == 0 ? first[o[i - 1].i] : o[i].i;
	free(o);
	return first;
}

void
sbuf_init(struct sbuf *b, char *s, size_t cap)
{
	b->s = s;
	b->cap = cap;
	b->len = 0;
	b->cut = 0;
	if (cap > 0)
		s[0] = '\0';
}

size_t
sbuf_room(const struct sbuf *b)
{
	return b->cap > b->len + 1 ? b->cap - b->len - 1 : 0;
}

int
sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	size_t room = sbuf_room(b);
	int cut = n > room;
	if (cut) {
		n = room;
		b->cut = 1;
	}
	if (b->cap == 0)
		return -1;
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
	return cut ? -1 : 0;
}

int
sbuf_str(struct sbuf *b, const char *s)
{
	return sbuf_add(b, s, strlen(s));
}

int
sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = sbuf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

int
sbuf_vprintf(struct sbuf *b, const char *fmt, va_list ap)
{
	if (b->cap == 0) {
		b->cut = 1;
		return -1;
	}
	size_t room = sbuf_room(b);
	int n = vsnprintf(b->s + b->len, room + 1, fmt, ap);
	if (n < 0) {
		b->s[b->len] = '\0';
		b->cut = 1;
		return -1;
	}
	if ((size_t)n > room) {
		/* vsnprintf wrote what fitted; the rest is the cut */
		b->len += room;
		b->cut = 1;
		return -1;
	}
	b->len += (size_t)n;
	return 0;
}

void
sbuf_mark_cut(struct sbuf *b, const char *mark)
{
	size_t ml = strlen(mark);
	if (!b->cut || ml >= b->cap)
		return;
	if (b->len + ml > b->cap - 1)
		b->len = b->cap - 1 - ml;
	memcpy(b->s + b->len, mark, ml + 1);
	b->len += ml;
}

/* Reads "<decimal number><unit>" where unit is looked up in units[]. */
static int
parse_scaled(const char *s, const char *const *units, const uint64_t *scale,
    int unit_required, uint64_t *out)
{
	const char *p = s;
	if (!isdigit((unsigned char)*p))
		return -1;
	uint64_t whole = 0;
	while (isdigit((unsigned char)*p)) {
		if (whole > UINT64_MAX / 10 - 10)
			return -1;
		whole = whole * 10 + (uint64_t)(*p++ - '0');
	}
	double frac = 0, div = 1;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		while (isdigit((unsigned char)*p)) {
			frac = frac * 10 + (*p++ - '0');
			div *= 10;
		}
	}
	while (*p == ' ')
		p++;
	uint64_t mult = 0;
	if (*p == '\0') {
		if (unit_required && (whole != 0 || frac != 0))
			return -1;
		mult = 1;
	} else {
		for (size_t i = 0; units[i] != NULL; i++) {
			if (strcmp(p, units[i]) == 0) {
				mult = scale[i];
				break;
			}
		}
		if (mult == 0)
			return -1;
	}
	if (whole > UINT64_MAX / mult)
		return -1;
	double v = (double)whole * (double)mult + frac / div * (double)mult;
	if (v >= 18446744073709551615.0)
		return -1;
	*out = (uint64_t)llround(v);
	return 0;
}

int
parse_duration_ms(const char *s, uint64_t *out_ms)
{
	static const char *const units[] = { "ms", "s", "m", "h", "d", NULL };
	static const uint64_t scale[] = { 1, 1000, 60000, 3600000, 86400000 };
	return parse_scaled(s, units, scale, 1, out_ms);
}

int
parse_size(const char *s, uint64_t *out)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", NULL };
	static const uint64_t scale[] = { 1, 1024, 1024 * 1024, 1024 * 1024 * 1024 };
	return parse_scaled(s, units, scale, 0, out);
}

int
hex_digit(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	    c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int
parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	if (*s == '\0')
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return 64;
	size_t row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

uint64_t
monotonic_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t
monotonic_ms(void)
{
	return monotonic_us() / 1000u;
}

uint64_t
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -1;
	return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int
set_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);
	if (fl < 0)
		return -1;
	return fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t
base64_encode(const unsigned char *in, size_t len, char *out)
{
	size_t o = 0, i = 0;
	for (; i + 2 < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	if (i < len) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0);
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

size_t
base64url_encode(const unsigned char *in, size_t len, char *out)
{
	size_t n = base64_encode(in, len, out);
	while (n > 0 && out[n - 1] == '=')
		out[--n] = '\0';
	for (size_t i = 0; i < n; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	return n;
}

static int
b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

int
base64_decode(const char *in, size_t len, unsigned char *out, size_t *outlen)
{
	while (len > 0 && in[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return -1;
	size_t o = 0;
	unsigned acc = 0;
	int bits = 0;
	for (size_t i = 0; i < len; i++) {
		int v = b64_value(in[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Bits left over must be zero, as every encoder writes them: one
	 * text per value (a sealed value altered there is refused). */
	if (acc != 0)
		return -1;
	*outlen = o;
	return 0;
}

int
random_bytes(void *buf, size_t len)
{
	unsigned char *p = buf;
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
random_token(char *out, size_t len)
{
	unsigned char raw[64];
	if (len > sizeof(raw) || random_bytes(raw, len) < 0)
		return -1;
	char tmp[4 * (sizeof(raw) + 2) / 3 + 4];
	size_t n = base64_encode(raw, len, tmp);
	size_t o = 0;
	for (size_t i = 0; i < n && tmp[i] != '='; i++)
		out[o++] = tmp[i] == '+' ? '-' : tmp[i] == '/' ? '_' : tmp[i];
	out[o] = '\0';
	return 0;
}

char *
exe_dir(void)
{
	/* Linux gives at most a page; grow until the link fits, never cut. */
	for (size_t size = 4096; size <= 65536; size *= 2) {
		char *buf = malloc(size);
		if (buf == NULL)
			return NULL;
		ssize_t n = readlink("/proc/self/exe", buf, size);
		if (n <= 0) {
			free(buf);
			return NULL;
		}
		if ((size_t)n < size) {
			buf[n] = '\0';
			char *slash = strrchr(buf, '/');
			if (slash == NULL) {
				free(buf);
				return NULL;
			}
			slash[slash == buf] = '\0';    /* "/mcpd" is in "/" */
			return buf;
		}
		free(buf);
	}
	return NULL;
}

/* A whole regular file of at most max bytes, read at once. */
int
read_small_file(const char *path, uint64_t max, char **out, size_t *outlen, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, errlen, "not a regular file");
		return -1;
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		snprintf(err, errlen, "file larger than %llu bytes", (unsigned long long)max);
		return -1;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (buf != NULL && got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (buf == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	buf[got] = '\0';
	*out = buf;
	*outlen = got;
	return 0;
}
