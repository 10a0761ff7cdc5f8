/* Bump allocator: many small allocations, one free. Used for the parsed
 * configuration and for per-request memory on the hot path. */
#ifndef MCPD_ARENA_H
#define MCPD_ARENA_H

#include <stddef.h>

struct arena;

struct arena *arena_new(size_t first_block);
void arena_free(struct arena *a);
/* Forget every allocation but keep the first block for reuse. */
void arena_reset(struct arena *a);
void *arena_alloc(struct arena *a, size_t n);
void *arena_zalloc(struct arena *a, size_t n);
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_printf(struct arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
size_t arena_used(const struct arena *a);

#endif
