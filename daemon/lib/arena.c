#include "arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Under AddressSanitizer (MCPD_ASAN, asan.h) the bytes of a block that
 * no allocation holds are poisoned: a read past what arena_alloc gave, or
 * of what an arena_reset took back, is reported as a use of freed memory
 * would be. */

/* A block's bytes in use are those below the arena's cur while it is the
 * head, then used. */
struct arena_block {
	struct arena_block *next;
	size_t size, used;
	max_align_t data[];
};

/* The arena's free bytes are those of b from now on. */
static void
use_block(struct arena *a, struct arena_block *b)
{
	a->head = b;
	a->cur = (char *)b->data + b->used;
	a->end = (char *)b->data + b->size;
}

/* Bytes given from the head block. */
static size_t
head_used(const struct arena *a)
{
	return (size_t)(a->cur - (char *)a->head->data);
}

static struct arena_block *
block_new(size_t size)
{
	struct arena_block *b = malloc(sizeof(*b) + size);
	if (b == NULL)
		return NULL;
	b->next = NULL;
	b->size = size;
	b->used = 0;
	MCPD_POISON(b->data, size);
	return b;
}

struct arena *
arena_new(size_t first_block)
{
	struct arena *a = malloc(sizeof(*a));
	if (a == NULL)
		return NULL;
	if (first_block < 256)
		first_block = 256;
	a->first_size = first_block;
	a->done = 0;
	struct arena_block *b = block_new(first_block);
	if (b == NULL) {
		free(a);
		return NULL;
	}
	use_block(a, b);
	return a;
}

void
arena_free(struct arena *a)
{
	if (a == NULL)
		return;
	struct arena_block *b = a->head;
	while (b != NULL) {
		struct arena_block *next = b->next;
		free(b);
		b = next;
	}
	free(a);
}

void
arena_reset(struct arena *a)
{
	/* The first block is the last in the list: keep it, free the rest. */
	struct arena_block *b = a->head;
	while (b->next != NULL) {
		struct arena_block *next = b->next;
		free(b);
		b = next;
	}
	b->used = 0;
	MCPD_POISON(b->data, b->size);
	use_block(a, b);
	a->done = 0;
}

/* What arena_alloc (arena.h) does not do inline: a new block when the
 * head has no room, and every allocation under ASan (unpoisoning it). */
void *
arena_alloc_slow(struct arena *a, size_t n)
{
	const size_t align = _Alignof(max_align_t);
	size_t need = (n + align - 1) & ~(align - 1);
	if (need < n)
		return NULL;
	if ((size_t)(a->end - a->cur) < need) {
		struct arena_block *b = a->head;
		size_t size = b->size * 2;
		if (size < need)
			size = need;
		struct arena_block *nb = block_new(size);
		if (nb == NULL)
			return NULL;
		b->used = head_used(a);
		a->done += b->used;
		nb->next = b;
		use_block(a, nb);
	}
	void *p = a->cur;
	MCPD_UNPOISON(p, n);
	a->cur += need;
	return p;
}

void *
arena_zalloc(struct arena *a, size_t n)
{
	void *p = arena_alloc(a, n);
	if (p != NULL)
		memset(p, 0, n);
	return p;
}

char *
arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);
	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
arena_strdup(struct arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

char *
arena_printf(struct arena *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	char *p = arena_alloc(a, (size_t)n + 1);
	if (p == NULL)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

size_t
arena_used(const struct arena *a)
{
	return a->done + head_used(a);
}
