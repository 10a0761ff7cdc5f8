/* Storage and transport operations timed and counted for the metrics:
 * the worker's backends table pointed at wrappers that call the plugin
 * and record each operation's outcome and latency when it completes. */
#ifndef MCPD_METERED_H
#define MCPD_METERED_H

struct backends;

/* Replace b's operations by metered ones (once per process). */
void metered_backends(struct backends *b);

#endif
