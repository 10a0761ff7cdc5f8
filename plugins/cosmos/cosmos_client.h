/*
 * Calls to the Cosmos DB REST API from a worker's loop: signed with the
 * account key or carrying an Entra ID token (plugins/common/azure_auth.c),
 * sent with libcurl's multi interface (fetch.c: connections kept alive,
 * many calls in flight), each attempt bounded in time.
 *
 * Throttling (429) waits what the service asks in x-ms-retry-after-ms
 * before the call is tried again, as long as the call's bound allows;
 * 503, 449 and 410 are tried again with jittered back-off, as are 408,
 * 500 and lost answers for calls that may run twice (reads, queries,
 * deletes, conditional replaces); a refused token is fetched again once,
 * and a refused key read again from its file once (it may have been
 * rotated).
 */
#ifndef MCPD_COSMOS_CLIENT_H
#define MCPD_COSMOS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct mcpd_host;
struct cosmos_client;

struct cosmos_conf {
	const char *endpoint;       /* https://ACCOUNT.documents.azure.com:443, no trailing slash */
	const char *key_file;       /* the account key, or NULL: Entra ID */
	const char *client_id;      /* a user-assigned identity, or NULL */
	const char *scope;          /* Entra ID's scope for the account */
	const char *ca_file;        /* or NULL: the system's */
	int no_verify;              /* tests only: the certificate is not checked */
};

#define COSMOS_IDEMPOTENT 1u        /* may run twice: tried again after a lost answer */
#define COSMOS_UPSERT 2u            /* POST docs: x-ms-documentdb-is-upsert */
#define COSMOS_QUERY 4u             /* POST docs: a query (application/query+json) */
#define COSMOS_BATCH 8u             /* POST docs: an atomic transactional batch */
#define COSMOS_QUIET 16u            /* a failure does not count against readiness */

struct cosmos_call {
	const char *method;         /* GET, POST, PUT, DELETE */
	const char *rtype;          /* dbs, colls, docs: signed */
	const char *rlink;          /* dbs/d/colls/c/docs/id as named: signed */
	const char *path;           /* the URL's path, encoded, from "/" */
	const char *pk;             /* the partition key's value, or NULL */
	const char *if_match;       /* an ETag, or NULL */
	const char *continuation;   /* of a query's previous page, or NULL */
	long max_items;             /* of a query's page, or 0 */
	unsigned flags;
	const char *body;           /* JSON, or NULL */
	size_t len;
};

struct cosmos_result {
	long status;                /* HTTP status; 0: no answer */
	const char *body;           /* NUL-terminated */
	size_t len;
	const char *etag;           /* the answer's ETag, or "" */
	const char *continuation;   /* x-ms-continuation, or "" */
	long substatus;             /* x-ms-substatus, or 0 */
	/* On failure (not 2xx): the service's code (Conflict,
	 * PreconditionFailed, NotFound...) or "" when there was no answer,
	 * and a message saying what happened. Both NULL on success. */
	const char *code, *message;
};

typedef void cosmos_done_fn(void *arg, const struct cosmos_result *r);

/* A client per worker, made in attach (the loop runs); who names the
 * plugin in the log. */
struct cosmos_client *cosmos_client_new(struct event_base *base, const struct mcpd_host *host,
    const struct cosmos_conf *conf, const char *who, char *err, size_t errlen);
/* Calls in flight are dropped without their callbacks. */
void cosmos_client_free(struct cosmos_client *c);

/* done runs once, always from the loop. timeout_ms bounds each attempt,
 * budget_ms all of them together. */
void cosmos_request(struct cosmos_client *c, const struct cosmos_call *k, uint64_t timeout_ms, uint64_t budget_ms,
    cosmos_done_fn *done, void *arg);

/* 0 when the last call reached the service and was accepted (or none
 * failed yet), else -1 and why: for the plugin's status (/readyz). */
int cosmos_client_status(const struct cosmos_client *c, char *why, size_t len);
/* Since a call was last answered (UINT64_MAX: never). */
uint64_t cosmos_client_idle_ms(const struct cosmos_client *c);
/* Where the credentials come from, in words. */
const char *cosmos_client_source(const struct cosmos_client *c);

/* Reads the account key file (for the configuration's check too): 0, or
 * -1 and why. */
int cosmos_read_key(const char *path, unsigned char *key, size_t *keylen, char *why, size_t whylen);

#endif
