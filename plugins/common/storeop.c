/* The common part of a storage operation over HTTP: see storeop.h. */
#include "storeop.h"

#include "opfail.h"

#include <mcpd/plugin.h>

#include <stdlib.h>
#include <string.h>

/* The shape of each kind's callback. */
static const enum op_shape shapes[] = {
	[K_GET] = OP_VALUE, [K_SET] = OP_DONE, [K_DEL] = OP_DONE, [K_EXISTS] = OP_DONE, [K_INCR] = OP_INT,
	[K_IDX_ADD] = OP_DONE, [K_IDX_REM] = OP_DONE, [K_MEMBERS] = OP_MEMBERS, [K_APPEND] = OP_INT,
	[K_RANGE] = OP_ENTRIES,
};
_Static_assert(sizeof(shapes) / sizeof(shapes[0]) == K_RANGE + 1, "a shape for each kind");

int
storeop_init(struct storeop *op, struct storeop **live, enum store_kind kind, const char *key, void *cb, void *arg)
{
	if ((op->key = strdup(key)) == NULL)
		return -1;
	op->q.key = op->key;
	op->kind = kind;
	op->cb = cb;
	op->arg = arg;
	op->live_next = *live;
	if (*live != NULL)
		(*live)->live_prev = &op->live_next;
	*live = op;
	op->live_prev = live;
	return 0;
}

void
storeop_clear(struct storeop *op, int release)
{
	if (release)
		keyorder_release(&op->q);
	if (op->live_prev != NULL) {
		*op->live_prev = op->live_next;
		if (op->live_next != NULL)
			op->live_next->live_prev = op->live_prev;
		op->live_prev = NULL;
	}
	for (size_t i = 0; i < op->n; i++) {
		if (op->bufs != NULL)
			free(op->bufs[i]);
		if (op->names != NULL)
			free(op->names[i]);
	}
	free(op->bufs);
	free(op->names);
	free(op->entries);
	free(op->key);
	op->bufs = NULL;
	op->names = NULL;
	op->entries = NULL;
	op->key = NULL;
	op->n = op->cap = 0;
}

void
storeop_fail(const struct storeop *op, const char *why)
{
	op_fail(shapes[op->kind], op->cb, op->arg, why);
}

void
storeop_fail_kind(enum store_kind kind, void *cb, void *arg, const char *why)
{
	op_fail(shapes[kind], cb, arg, why);
}

int
storeop_add_name(struct storeop *op, char *name)
{
	if (name == NULL)
		return -1;
	if (op->n == op->cap) {
		size_t cap = op->cap ? op->cap * 2 : 16;
		char **nn = realloc(op->names, cap * sizeof(*nn));
		if (nn == NULL) {
			free(name);
			return -1;
		}
		op->names = nn;
		op->cap = cap;
	}
	op->names[op->n++] = name;
	return 0;
}

int
storeop_add_entry(struct storeop *op, uint64_t seq, unsigned char *data, size_t len)
{
	if (op->n == op->cap) {
		size_t cap = op->cap ? op->cap * 2 : 16;
		struct mcpd_log_entry *e = realloc(op->entries, cap * sizeof(*e));
		if (e != NULL)
			op->entries = e;
		unsigned char **bb = e != NULL ? realloc(op->bufs, cap * sizeof(*bb)) : NULL;
		if (bb != NULL)
			op->bufs = bb;
		if (e == NULL || bb == NULL) {
			free(data);
			return -1;
		}
		op->cap = cap;
	}
	op->bufs[op->n] = data;
	op->entries[op->n].seq = seq;
	op->entries[op->n].data = data;
	op->entries[op->n].len = len;
	op->n++;
	return 0;
}
