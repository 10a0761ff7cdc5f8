/*
 * Jittered exponential back-off for the cloud plugins' calls that are
 * tried again (AWS, Google, Azure): full jitter, the n-th wait drawn from
 * [0, min(cap, base << n)]. Header-only, like clock.h.
 */
#ifndef MCPD_PLUGIN_BACKOFF_H
#define MCPD_PLUGIN_BACKOFF_H

#include <stdint.h>
#include <sys/random.h>

/* A number below `below` (0 gives 0; no entropy: the middle). */
static inline uint32_t
backoff_jitter(uint32_t below)
{
	uint32_t v = 0;
	if (below == 0 || getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
		return below / 2;
	return v % below;
}

/* How long to wait before attempt `done + 1`, having made `done`. */
static inline uint64_t
backoff_delay_ms(unsigned done, uint64_t base_ms, uint64_t cap_ms)
{
	uint64_t cap = base_ms << (done < 10 ? done : 10);
	if (cap > cap_ms)
		cap = cap_ms;
	return backoff_jitter((uint32_t)cap + 1);
}

#endif
