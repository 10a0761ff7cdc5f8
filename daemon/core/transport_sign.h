/* Signed transport messages (transport: { sign_key_file: ... }): the
 * worker's transport operations wrapped so that every message published
 * carries an HMAC over its channel, body, time and a unique id
 * (sigmsg.h), and every message received is checked before it reaches
 * its subscriber: unsigned, forged, replayed or out-of-window messages
 * are dropped, counted (mcpd_transport_dropped_total) and logged at a
 * bounded rate. */
#ifndef MCPD_TRANSPORT_SIGN_H
#define MCPD_TRANSPORT_SIGN_H

#include <stddef.h>
#include <stdint.h>

struct backends;
struct sigkeys;

/* Replace b's transport operations by signing ones, with keys (n > 0)
 * and the accepted clock difference window_ms. Once per process; -1
 * when out of memory. */
int transport_sign_backends(struct backends *b, const struct sigkeys *keys, uint64_t window_ms);
/* After the backends are detached: free the subscriptions left. */
void transport_sign_forget(void);

#endif
