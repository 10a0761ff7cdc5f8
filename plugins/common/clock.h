/* Milliseconds now, for the plugins' timers and caches (header-only: a
 * plugin shares no code with mcpd at run time). */
#ifndef MCPD_PLUGIN_CLOCK_H
#define MCPD_PLUGIN_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic: for intervals. */
static inline uint64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The wall clock: for Unix times (exp) from elsewhere. */
static inline uint64_t
real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#endif
