/* Bump allocator: many small allocations, one free. Used for the parsed
 * configuration and for per-request memory on the hot path. */
#ifndef MCPD_ARENA_H
#define MCPD_ARENA_H

#include <stddef.h>

/* Under AddressSanitizer the bytes of a block that no allocation holds
 * are poisoned (arena.c): every allocation goes through arena.c then. */
#include "asan.h"

/* Only for arena_alloc's inline fast path; the rest is arena.c's. */
struct arena {
	char *cur, *end;       /* the free bytes of the current block */
	struct arena_block *head;    /* current block; older ones follow */
	size_t first_size;
	size_t done;           /* bytes given from the blocks after head */
};

struct arena *arena_new(size_t first_block);
void arena_free(struct arena *a);
/* Forget every allocation but keep the first block for reuse. */
void arena_reset(struct arena *a);
/* n bytes aligned for any type; NULL when out of memory. */
void *arena_alloc_slow(struct arena *a, size_t n);
void *arena_zalloc(struct arena *a, size_t n);
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_printf(struct arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
size_t arena_used(const struct arena *a);

/* Inline: a parser takes a node at a time, and most fit in the block.
 * A new block, and every allocation under ASan, is arena_alloc_slow's. */
static inline void *
arena_alloc(struct arena *a, size_t n)
{
#ifndef MCPD_ASAN
	const size_t align = _Alignof(max_align_t);
	size_t need = (n + align - 1) & ~(align - 1);
	if (need >= n && need <= (size_t)(a->end - a->cur)) {
		void *p = a->cur;
		a->cur += need;
		return p;
	}
#endif
	return arena_alloc_slow(a, n);
}

#endif
