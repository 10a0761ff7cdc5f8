/* daemon/lib/: libraries that know nothing of a running mcpd (no
 * configuration, event loop or log): util, arena (the bump allocator),
 * json (the strict parser and printer), jsonrpc (JSON-RPC 2.0 messages),
 * conftree (YAML read into a bounded tree), envexpand (${VAR} in its
 * values), schema (JSON Schema validation), reqstate (sealed requestState
 * tokens), pwhash (scrypt password hashes). They use one another and
 * system libraries only;
 * every layer above may use them.
 *
 * util: small helpers shared by every module (error lists, bounded
 * strings, numbers, durations and sizes, base64, clocks, random bytes,
 * descriptors). */
#ifndef MCPD_UTIL_H
#define MCPD_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* A list of error messages, each one line, collected so that a config
 * check can report every problem at once. n counts them all; only the
 * first ERRLIST_KEEP are kept (msgs[0 .. kept - 1]): a file of many
 * thousand mistakes does not make a log of many thousand lines. */
#define ERRLIST_KEEP 200

struct errlist {
	char **msgs;
	size_t n, cap;
	size_t kept;
};

void errlist_add(struct errlist *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void errlist_free(struct errlist *e);
/* Each kept message, then a line saying how many more there were. */
void errlist_each(const struct errlist *e, void (*fn)(const char *msg, void *arg), void *arg);

/* For each of n strings, the index of its first occurrence (i itself
 * when it is the first): duplicates found in n log n, not n squared.
 * Returns a malloc'd array, or NULL when out of memory. */
size_t *first_occurrences(const char *const *s, size_t n);

/* Text built in a fixed buffer: every append is clamped to the buffer
 * and a cut is remembered, so that nothing is written past the end and a
 * caller can show that the text was shortened. */
struct sbuf {
	char *s;
	size_t cap;     /* bytes of s, the NUL included */
	size_t len;     /* always < cap when cap > 0 */
	int cut;        /* something did not fit */
};

void sbuf_init(struct sbuf *b, char *s, size_t cap);
/* Bytes that can still be appended (the NUL kept aside). */
size_t sbuf_room(const struct sbuf *b);
/* Append what fits; -1 when this append was cut. */
int sbuf_add(struct sbuf *b, const char *s, size_t n);
int sbuf_str(struct sbuf *b, const char *s);
int sbuf_printf(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int sbuf_vprintf(struct sbuf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* When something was cut, end the text with mark (e.g. "..."), giving
 * up the last bytes for it. */
void sbuf_mark_cut(struct sbuf *b, const char *mark);

/* "250ms", "30s", "5m", "1h", "30d", "1.5s", "0". Returns -1 on a bad value. */
int parse_duration_ms(const char *s, uint64_t *out_ms);
/* "512", "64KiB", "4MiB", "1GiB". Returns -1 on a bad value. */
int parse_size(const char *s, uint64_t *out);
/* The value of a hex digit (0-9, a-f, A-F), else -1: strtol and sscanf
 * also take a sign, blanks or 0x, which an escape must not have. */
int hex_digit(int c);
/* A decimal number written as digits only (no sign, blank or junk) that
 * fits in 64 bits. Returns -1 otherwise. */
int parse_u64(const char *s, uint64_t *out);
/* Edit distance, for "did you mean" hints. */
size_t edit_distance(const char *a, const char *b);

uint64_t monotonic_ms(void);
/* Wall-clock ms since the epoch (timestamps, deadlines shared with peers). */
uint64_t wall_ms(void);
uint64_t monotonic_us(void);

/* out needs 4 * ((len + 2) / 3) + 1 bytes; returns the length written. */
size_t base64_encode(const unsigned char *in, size_t len, char *out);
/* The URL alphabet without padding (RFC 4648 5), as PKCE and tokens use
 * it; out needs 4 * ((len + 2) / 3) + 1 bytes. Returns the length. */
size_t base64url_encode(const unsigned char *in, size_t len, char *out);
/* Standard or URL alphabet, padding optional. Returns -1 on bad input. */
int base64_decode(const char *in, size_t len, unsigned char *out, size_t *outlen);
/* Random bytes from the kernel; -1 on failure. */
int random_bytes(void *buf, size_t len);
/* len random bytes as base64url without padding into out (needs 2*len). */
int random_token(char *out, size_t len);

/* The directory of the running binary (/proc/self/exe), malloc'd, or NULL
 * when it cannot be read whole. */
char *exe_dir(void);

int set_nonblock(int fd);
int set_cloexec(int fd);

/* The whole regular file at path (at most max bytes) in a new buffer,
 * NUL-terminated: 0, or -1 with why in err. */
int read_small_file(const char *path, uint64_t max, char **out, size_t *outlen, char *err, size_t errlen);

#endif
