/*
 * RFC 3339 / ISO 8601 times as the cloud APIs write them
 * (2024-05-01T12:00:00Z, 2024-05-01T12:00:00.123456Z, +02:00): read for
 * credentials' expiry (AWS, Google) and written and read for Firestore's
 * timestamps. Built into the plugins that use it, like fetch.c.
 */
#ifndef MCPD_PLUGIN_ISOTIME_H
#define MCPD_PLUGIN_ISOTIME_H

#include <stddef.h>
#include <stdint.h>

/* A time as Unix ms (fractions kept to the millisecond; no zone means
 * UTC), or 0 when s is not one. */
uint64_t isotime_parse_ms(const char *s);

/* Unix ms as 2024-05-01T12:00:00.123Z into buf (at least 32 bytes). */
void isotime_format_ms(uint64_t ms, char *buf, size_t len);

#endif
