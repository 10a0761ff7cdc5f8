/* Storage and transport operations timed and counted for the metrics:
 * the worker's backends table pointed at wrappers that call the plugin
 * and record each operation's outcome and latency when it completes (and
 * its span, when it was started inside a sampled one: tracing.h). */
#ifndef MCPD_METERED_H
#define MCPD_METERED_H

#include <stddef.h>

struct backends;

/* Replace b's operations by metered ones (once per process). */
void metered_backends(struct backends *b);
/* The plugins' names, for the spans of their operations. */
void metered_names(const char *storage, const char *transport);
/* After the backends are detached (no callback can come any more): free
 * the records of the operations they dropped. */
void metered_forget(void);
/* How many operations wait for their callback (a stopping worker lets
 * them finish before it detaches the plugins). */
size_t metered_pending(void);

#endif
