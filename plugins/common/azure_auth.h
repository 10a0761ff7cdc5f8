/*
 * Microsoft Entra ID access tokens for the Azure plugins (Cosmos DB,
 * Service Bus), as
 * the Azure SDKs' default credential finds them, first configured first:
 *
 *   1. workload identity federation (AKS): AZURE_FEDERATED_TOKEN_FILE,
 *      AZURE_CLIENT_ID and AZURE_TENANT_ID; the file's token (read again
 *      at each renewal: it rotates) is traded at
 *      AZURE_AUTHORITY_HOST (https://login.microsoftonline.com/)
 *      TENANT/oauth2/v2.0/token as a client assertion;
 *   2. managed identity where the platform gives an endpoint (Container
 *      Apps, App Service, Functions): IDENTITY_ENDPOINT and
 *      IDENTITY_HEADER;
 *   3. managed identity through the instance metadata service (VMs, AKS
 *      nodes), at 169.254.169.254 or AZURE_POD_IDENTITY_AUTHORITY_HOST.
 *
 * A user-assigned identity is chosen by its client id (the
 * configuration's, else AZURE_CLIENT_ID). Tokens are fetched on the
 * worker's loop with fetch.c and renewed before they expire (tokcache.c);
 * they are wiped when dropped and never logged.
 */
#ifndef MCPD_PLUGIN_AZURE_AUTH_H
#define MCPD_PLUGIN_AZURE_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "tokcache.h"

struct fetcher;
struct mcpd_host;
struct azure_cred;

/* Which source the environment configures, in words, without fetching
 * (for mcpd -t and the log). 0, or -1 and why. */
int azure_cred_probe(const char *client_id, char *what, size_t whatlen, char *why, size_t whylen);

/* Tokens for scope (https://ACCOUNT.documents.azure.com/.default) on f's
 * loop; host for the log (NULL: none). */
struct azure_cred *azure_cred_new(struct fetcher *f, const char *scope, const char *client_id,
    const struct mcpd_host *host, char *err, size_t errlen);
void azure_cred_free(struct azure_cred *c);
const char *azure_cred_source(const struct azure_cred *c);

/* The current token, or a new one (see tokcache_get). */
void azure_token_get(struct azure_cred *c, tokcache_cb *cb, void *arg);
/* The current token's end and renewal time (see tokcache_times). */
int azure_token_times(const struct azure_cred *c, uint64_t *expires_ms, uint64_t *renew_ms);
/* The service refused the token: another is fetched before the next use. */
void azure_token_invalidate(struct azure_cred *c);

/* A token endpoint's answer (Entra ID's or a managed identity's): the
 * access_token (malloc'ed) and when it expires (expires_on, Unix seconds,
 * or now + expires_in). 0, or -1 and why. For tests too. */
int azure_token_answer(const char *body, size_t len, uint64_t now_ms, char **token, uint64_t *expires_ms,
    char *why, size_t whylen);

#endif
