/* Encrypted state (storage: { encrypt_key_file: ... }): the worker's
 * storage operations wrapped so that every value and log entry mcpd
 * writes is sealed with AES-256-GCM (sealbox.h) and opened when read.
 * A value sealed with a key not configured, or altered, reads as an
 * error; one written in clear (before encryption was turned on) reads
 * as absent. Keys, index members and counters are not sealed. */
#ifndef MCPD_STORAGE_SEAL_H
#define MCPD_STORAGE_SEAL_H

#include <stddef.h>

struct backends;
struct sigkeys;

/* Replace b's storage operations by sealing ones (keys->n > 0). Once per
 * process. */
void storage_seal_backends(struct backends *b, const struct sigkeys *keys);
/* The keys values are sealed with, or NULL without encryption: for what
 * else carries a stored record (a session's, on mcpd:sessions). */
const struct sigkeys *storage_seal_keys(void);
/* After the backends are detached: free the reads still waiting. */
void storage_seal_forget(void);

#endif
