/*
 * AWS credentials, found in the order of the AWS SDKs' default chain:
 *
 *   1. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
 *      AWS_SESSION_TOKEN;
 *   2. the shared files: AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials)
 *      and AWS_CONFIG_FILE (~/.aws/config), profile AWS_PROFILE or the
 *      one the configuration names, else "default";
 *   3. web identity: AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, traded
 *      at STS (AssumeRoleWithWebIdentity) for temporary credentials: what
 *      EKS gives a pod (IRSA);
 *   4. the ECS container endpoint: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI,
 *      or AWS_CONTAINER_CREDENTIALS_FULL_URI with
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or _TOKEN (EKS Pod Identity
 *      uses the same);
 *   5. EC2 instance metadata, IMDSv2 (a session token first), unless
 *      AWS_EC2_METADATA_DISABLED is true; AWS_EC2_METADATA_SERVICE_ENDPOINT
 *      moves it.
 *
 * The first source that is configured is the one used (as the SDKs do):
 * the first two are read when the chain is made, the others fetched on
 * the worker's loop with fetch.c and fetched again before they expire
 * (half their life, at most 5 minutes, before). Secrets are never logged
 * and are wiped when dropped.
 */
#ifndef MCPD_PLUGIN_AWS_CREDS_H
#define MCPD_PLUGIN_AWS_CREDS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct fetcher;
struct mcpd_host;
struct aws_chain;

struct aws_creds {
	const char *access_key, *secret_key;
	const char *token;          /* NULL: long-term keys */
	uint64_t expires_ms;        /* wall clock; 0: does not expire */
};

/* Runs once per aws_creds_get: with c, or c NULL and why (naming the
 * source). c lives until the callback returns. */
typedef void aws_creds_cb(void *arg, const struct aws_creds *c, const char *why);

/* Which source the environment and files configure, without fetching:
 * its description into what (for mcpd -t and the log), and the region a
 * profile names into region (or ""). 0, or -1 and why (a profile that
 * names a way mcpd does not support, a file that cannot be read). */
int aws_creds_probe(const char *profile, char *what, size_t whatlen, char *region, size_t regionlen,
    char *why, size_t whylen);

/* A chain on a worker's loop (f's); region for STS; host for the log
 * (NULL: none). */
struct aws_chain *aws_chain_new(struct fetcher *f, const char *profile, const char *region,
    const struct mcpd_host *host, char *err, size_t errlen);
void aws_chain_free(struct aws_chain *ch);
/* The source in words ("environment", "web identity (arn:...)"...). */
const char *aws_chain_source(const struct aws_chain *ch);

/* Current credentials: at once when they are fresh, after a fetch
 * otherwise (callbacks run on the loop, or before this returns). */
void aws_creds_get(struct aws_chain *ch, aws_creds_cb *cb, void *arg);
/* The service said the credentials expired or are not valid: fetch new
 * ones before the next use (for sources that can). */
void aws_creds_invalidate(struct aws_chain *ch);

#endif
