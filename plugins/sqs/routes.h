/*
 * Where a channel's subscribers are, as one worker of the sqs transport
 * knows it: the queues (one a worker) that hold a subscriber, so that a
 * message goes to them only. A route is learned: the first message on a
 * channel goes to every worker and asks the holders to answer; from when
 * the answers are in (known_at) it is addressed to those who answered,
 * until it expires (ttl). Meanwhile a worker that gains a subscriber says
 * so to all (route_add) and one that was sent a message without holding
 * a subscriber any more says so to the sender (route_remove).
 *
 * A route keeps what it sent for ROUTE_RECENT_MS, so that a holder
 * learned a little late (its announcement crossed a message) is sent what
 * it missed (route_missed). Routes, holders and what is kept are bounded;
 * past a bound a message simply goes to every worker. No I/O here: the
 * caller passes the time.
 */
#ifndef MCPD_SQS_ROUTES_H
#define MCPD_SQS_ROUTES_H

#include <stddef.h>
#include <stdint.h>

#define ROUTES_BUCKETS 1024
#define ROUTES_MAX 4096                 /* channels known at once */
#define ROUTE_HOLDERS 8                 /* more holders than that: every worker */
#define ROUTE_NAME_MAX 80               /* an SQS queue name */
#define ROUTE_RECENT 16                 /* messages kept per route */
#define ROUTE_RECENT_MS 2000
#define ROUTES_RECENT_BYTES (4u << 20)  /* kept, over all routes */
/* The "to" attribute of a message to every holder: ["n1","n2",...] */
#define ROUTE_TO_MAX (ROUTE_HOLDERS * (ROUTE_NAME_MAX + 3) + 3)

struct route_sent {                     /* a message sent on the route */
	uint64_t at;
	char *body;                         /* as SNS carried it */
	int enc;                            /* as struct out's b64 */
	char *to;                           /* the holders it went to, as its "to" */
	struct route_sent *next;            /* newer */
};

struct route {
	char *channel;
	uint64_t known_at;                  /* the answers are in; UINT64_MAX: not asked yet */
	uint64_t expires;
	size_t n;
	char *holders[ROUTE_HOLDERS];
	int many;                           /* more holders than kept */
	struct route_sent *sent;            /* oldest first */
	size_t nsent;
	struct route *next;                 /* in its bucket */
};

struct routes {
	struct route *buckets[ROUTES_BUCKETS];
	size_t n;
	size_t sent_bytes;
	uint64_t ttl_ms;
	uint64_t swept;                     /* when expired routes were last looked for */
};

enum route_to {
	ROUTE_ALL,                          /* not known (yet), or too many holders */
	ROUTE_NONE,                         /* known: no holder anywhere else */
	ROUTE_SOME,                         /* known: to the holders in to */
};

void routes_init(struct routes *t, uint64_t ttl_ms);
/* The live route of channel, or NULL (an expired one is dropped). */
struct route *routes_get(struct routes *t, const char *channel, uint64_t now);
/* A new route of channel, being learned (not asked yet), or NULL when
 * ROUTES_MAX are known or out of memory. */
struct route *routes_new(struct routes *t, const char *channel, uint64_t now);
/* The ask has gone out: the answers are in by known_at. */
void route_asked(const struct routes *t, struct route *r, uint64_t known_at);
/* Where a message goes now; for ROUTE_SOME, to gets the holders. */
enum route_to route_to(const struct route *r, uint64_t now, char *to, size_t len);
/* 1: holder is new, 0: known already (or many), -1: not a queue name or out of memory. */
int route_add(struct route *r, const char *holder);
/* 1: holder was one, 0: it was not. */
int route_remove(struct route *r, const char *holder);
/* Keeps a copy of a message sent to to (ROUTE_NONE: "[]") for
 * ROUTE_RECENT_MS, within the bounds; -1 when it was not kept. */
int route_sent(struct routes *t, struct route *r, uint64_t now, const char *body, int enc, const char *to);
/* Calls fn, oldest first, for each message kept that did not go to holder. */
void route_missed(struct routes *t, struct route *r, const char *holder, uint64_t now,
    void (*fn)(void *arg, const struct route_sent *m), void *arg);
void routes_drop(struct routes *t, struct route *r);
void routes_clear(struct routes *t);

#endif
