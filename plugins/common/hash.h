/*
 * FNV-1a of a string: the bucket of a channel in the transport plugins'
 * hash tables (subs.c, sqs's routes.c).
 */
#ifndef MCPD_COMMON_HASH_H
#define MCPD_COMMON_HASH_H

static inline unsigned
fnv1a(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

#endif
