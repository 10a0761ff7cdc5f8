/*
 * Who holds which channel, as one worker of the amqp transport knows it:
 * the other workers (of every instance) announce how many subscribers
 * they have on a channel whenever that changes, and send their whole set
 * when a worker joins; this table keeps those counts, so that a message
 * goes only to the workers that hold its channel and has_subscribers
 * answers at once. A worker not heard from (its beats stop) is forgotten
 * with everything it held. No I/O here: the caller passes the time.
 *
 * Bounded: past PRESENCE_MAX entries an announcement is not kept and the
 * table says so (overflowed): the caller then sends to every worker.
 */
#ifndef MCPD_AMQP_PRESENCE_H
#define MCPD_AMQP_PRESENCE_H

#include <stddef.h>
#include <stdint.h>

#define PRESENCE_BUCKETS 4096
#define PRESENCE_MAX 1000000            /* (channel, worker) entries */
#define PRESENCE_PEERS_MAX 4096         /* workers known at once */
#define PRESENCE_ID_MAX 40              /* a worker's id */

struct held {                           /* one worker's subscribers of one channel */
	char *channel;
	struct peer *peer;
	uint32_t count;
	struct held *next;                  /* in its bucket */
};

struct peer {
	char id[PRESENCE_ID_MAX + 1];
	uint64_t seen;
	size_t nheld;
	struct peer *next;
};

struct quiet {                          /* a channel found without holders */
	char *channel;
	uint64_t until;
	struct quiet *next;
};

#define PRESENCE_QUIET_MAX 65536

struct presence {
	struct held *buckets[PRESENCE_BUCKETS];
	struct quiet *quiet[PRESENCE_BUCKETS];
	size_t nquiet;
	struct peer *peers;
	size_t n, npeers;
	int overflowed;                     /* an announcement was not kept */
};

/* A worker's id: letters, digits, '-', '_' and '.', 1 to PRESENCE_ID_MAX. */
int presence_id_ok(const char *id);
/* The peer called id, added (seen now) if new; NULL when not an id, too
 * many peers, or out of memory. */
struct peer *presence_peer(struct presence *p, const char *id, uint64_t now);
/* id's count of channel (0 removes it). 0, or -1 (not kept: overflowed). */
int presence_set(struct presence *p, const char *id, const char *channel, uint32_t count, uint64_t now);
/* Forgets everything id held (a sync starts over, or it left). */
void presence_forget(struct presence *p, const char *id);
/* Drops the peers not seen since before cutoff; returns how many. */
size_t presence_expire(struct presence *p, uint64_t cutoff);
/* id's count of channel (0: none known). */
uint32_t presence_get(const struct presence *p, const char *id, const char *channel);
/* The sum of the counts of channel over every worker. */
uint64_t presence_count(const struct presence *p, const char *channel);
/* Calls fn for each worker holding channel; returns how many. */
size_t presence_holders(const struct presence *p, const char *channel,
    void (*fn)(void *arg, const char *id), void *arg);
/* Quiet channels: a message on a channel with no holder known goes to
 * every worker (its holder's announcement may still be on its way), and
 * the channel is then taken as quiet until until: its messages go
 * nowhere, unless a holder announces itself. 1 if channel is quiet now. */
int presence_quiet(struct presence *p, const char *channel, uint64_t now);
/* Marks channel quiet until until (not kept past PRESENCE_QUIET_MAX). */
void presence_set_quiet(struct presence *p, const char *channel, uint64_t until);
void presence_clear(struct presence *p);

#endif
