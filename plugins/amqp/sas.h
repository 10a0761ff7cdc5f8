/* Service Bus shared access signatures (no I/O: unit-tested alone). */
#ifndef MCPD_AMQP_SAS_H
#define MCPD_AMQP_SAS_H

#include <stdint.h>

/* A Service Bus SAS token for resource uri, valid until expiry (Unix
 * seconds): malloc'ed, or NULL. */
char *sas_token(const char *uri, const char *key_name, const char *key, uint64_t expiry);
/* RFC 3986 percent-encoding of everything but unreserved characters. */
char *sas_encode(const char *s);

#endif
