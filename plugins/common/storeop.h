/*
 * What every operation of the storage plugins over HTTP (dynamodb,
 * firestore, cosmos) holds whatever the service: its key's place in line
 * (keyorder.h), its place in the plugin's list of operations not finished
 * (dropped when the worker detaches), the caller's callback, and what
 * index_members and log_range gather over the pages of their answers.
 * Each plugin's operation starts with one. Built into those plugins.
 */
#ifndef MCPD_COMMON_STOREOP_H
#define MCPD_COMMON_STOREOP_H

#include "keyorder.h"

#include <stddef.h>
#include <stdint.h>

struct mcpd_log_entry;

/* The storage operations of plugin.h. */
enum store_kind { K_GET, K_SET, K_DEL, K_EXISTS, K_INCR, K_IDX_ADD, K_IDX_REM, K_MEMBERS, K_APPEND, K_RANGE };

struct storeop {
	struct keyorder_op q;           /* first: operations on one key in order */
	struct storeop *live_next, **live_prev;
	enum store_kind kind;
	void *cb;                       /* the caller's, of the kind's shape (or NULL) */
	void *arg;
	char *key;
	/* members, range: what the pages gave */
	struct mcpd_log_entry *entries;
	unsigned char **bufs;           /* the entries' data */
	char **names;
	size_t n, cap;
};

/* op (zeroed) gets a copy of key and goes at the head of *live: 0, or -1
 * (out of memory: nothing to clear). */
int storeop_init(struct storeop *op, struct storeop **live, enum store_kind kind, const char *key, void *cb,
    void *arg);
/* op leaves the list and, with release (not while the worker detaches),
 * its key's line, so that the next operation on the key starts; its key
 * and what it gathered are freed. */
void storeop_clear(struct storeop *op, int release);
/* Calls the caller's callback, if any, with MCPD_ERROR and why. */
void storeop_fail(const struct storeop *op, const char *why);
/* The same for an operation that could not be made: cb, of kind's shape. */
void storeop_fail_kind(enum store_kind kind, void *cb, void *arg, const char *why);
/* A member's name (taken) gathered: 0, or -1 (out of memory; name freed). */
int storeop_add_name(struct storeop *op, char *name);
/* A log entry (data taken) gathered: 0, or -1 (out of memory; data freed). */
int storeop_add_entry(struct storeop *op, uint64_t seq, unsigned char *data, size_t len);

#endif
