/* Small helpers shared by every module. */
#ifndef MCPD_UTIL_H
#define MCPD_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* A list of error messages, each one line, collected so that a config
 * check can report every problem at once. */
struct errlist {
	char **msgs;
	size_t n, cap;
};

void errlist_add(struct errlist *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void errlist_free(struct errlist *e);

/* "250ms", "30s", "5m", "1h", "1.5s", "0". Returns -1 on a bad value. */
int parse_duration_ms(const char *s, uint64_t *out_ms);
/* "512", "64KiB", "4MiB", "1GiB". Returns -1 on a bad value. */
int parse_size(const char *s, uint64_t *out);
/* Edit distance, for "did you mean" hints. */
size_t edit_distance(const char *a, const char *b);

uint64_t monotonic_ms(void);
uint64_t monotonic_us(void);

int set_nonblock(int fd);
int set_cloexec(int fd);

#endif
