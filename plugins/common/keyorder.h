/*
 * Operations on one key run one after the other, in the order they were
 * made, as over the single connection of redis or postgres: the HTTP
 * storage plugins (dynamodb, cosmos) send calls on many connections at
 * once, so a get made after a set (which mcpd does not wait for) could
 * otherwise overtake it. Operations on different keys run in parallel.
 * A table of the keys with an operation in flight, each with those
 * waiting behind it; one per worker process.
 */
#ifndef MCPD_PLUGIN_KEYORDER_H
#define MCPD_PLUGIN_KEYORDER_H

/* Embedded in each operation. */
struct keyorder_op {
	const char *key;                        /* lives as long as the operation */
	void (*start)(struct keyorder_op *);    /* its first request, when the key is free */
	struct keyorder_op *next;               /* waiting behind it */
};

/* Starts op now if its key is free, else after those before it. */
void keyorder_submit(struct keyorder_op *op);
/* op is done: the next on its key starts. */
void keyorder_release(struct keyorder_op *op);
/* When the worker detaches: whatever waits is forgotten. */
void keyorder_clear(void);

#endif
