/* Operations on one key in order: see keyorder.h. */
#include "keyorder.h"

#include "hash.h"

#include <stdlib.h>
#include <string.h>

#define KEY_BUCKETS 1024

struct busy {
	char *key;
	struct keyorder_op *head, *tail;        /* head: in flight */
	struct busy *next;
};

static struct busy *busy[KEY_BUCKETS];      /* per worker process */

void
keyorder_submit(struct keyorder_op *op)
{
	struct busy **bp = &busy[fnv1a(op->key) % KEY_BUCKETS], *b;
	op->next = NULL;
	for (b = *bp; b != NULL; b = b->next)
		if (strcmp(b->key, op->key) == 0)
			break;
	if (b != NULL) {
		b->tail->next = op;
		b->tail = op;
		return;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL || (b->key = strdup(op->key)) == NULL) {
		free(b);
		op->start(op);          /* out of memory: unordered rather than lost */
		return;
	}
	b->head = b->tail = op;
	b->next = *bp;
	*bp = b;
	op->start(op);
}

void
keyorder_release(struct keyorder_op *op)
{
	struct busy **bp = &busy[fnv1a(op->key) % KEY_BUCKETS];
	for (; *bp != NULL; bp = &(*bp)->next) {
		struct busy *b = *bp;
		if (b->head != op)
			continue;
		struct keyorder_op *next = op->next;
		if (next == NULL) {
			*bp = b->next;
			free(b->key);
			free(b);
			return;
		}
		b->head = next;
		next->start(next);
		return;
	}
}

void
keyorder_clear(void)
{
	for (size_t i = 0; i < KEY_BUCKETS; i++)
		while (busy[i] != NULL) {
			struct busy *b = busy[i];
			busy[i] = b->next;
			free(b->key);
			free(b);
		}
}
