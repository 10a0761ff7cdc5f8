/* TLS contexts for listeners. Certificates are loaded by the master (while
 * it may still read root-only keys) and inherited by the workers. */
#ifndef MCPD_TLS_H
#define MCPD_TLS_H

struct config;
struct errlist;

/* Make an SSL_CTX for every listen entry with tls; config_free frees
 * them. */
int tls_load_config(struct config *c, struct errlist *errs);

#endif
