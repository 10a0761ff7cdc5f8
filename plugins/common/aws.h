/*
 * Calls to AWS services from a worker's loop: signed with Signature
 * Version 4 (aws_sigv4.c) with the credentials of the chain (aws_creds.c),
 * sent with libcurl's multi interface (fetch.c, connections kept alive and
 * reused, many calls in flight), each attempt bounded in time. Throttling,
 * 5xx answers and lost connections are tried again with jittered
 * exponential back-off (full jitter, from 25 ms, at most 1 s) within the
 * call's bound; expired temporary credentials are fetched again once; a
 * clock that differs from the service's is corrected from its Date.
 *
 * Two protocols: JSON (DynamoDB "DynamoDB_20120810.*", SQS "AmazonSQS.*",
 * X-Amz-Target and application/x-amz-json-1.0) and query (SNS: a form
 * body Action=...&Version=..., answered in XML).
 */
#ifndef MCPD_PLUGIN_AWS_H
#define MCPD_PLUGIN_AWS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct mcpd_host;
struct aws_client;

/* A service endpoint: the signing name and where calls go. */
struct aws_service {
	char name[32];              /* dynamodb, sqs, sns */
	char url[512];
	char host[300];             /* the Host header, as curl sends it */
	char path[256];
	int plain_http;             /* an emulator named by endpoint: */
	int json11;                 /* application/x-amz-json-1.1 (KMS) rather than 1.0 */
};

struct aws_result {
	long status;                /* HTTP status; 0: no answer */
	const char *body;           /* NUL-terminated */
	size_t len;
	/* On failure: the service's error code (ConditionalCheckFailedException,
	 * ThrottlingException...) or "" when there was no answer, and a
	 * message that says what happened. Both NULL on success (2xx). */
	const char *type, *message;
};

typedef void aws_done_fn(void *arg, const struct aws_result *r);

/* The service's endpoint: endpoint (the configuration's), else
 * AWS_ENDPOINT_URL_<NAME> or AWS_ENDPOINT_URL, else AWS's regional one.
 * 0, or -1 and err. */
int aws_service_init(struct aws_service *s, const char *name, const char *endpoint, const char *region,
    char *err, size_t errlen);

/* The region: region when given, else AWS_REGION, AWS_DEFAULT_REGION, the
 * profile's. 0, or -1 and err. */
int aws_region(const char *region, const char *profile, char *out, size_t len, char *err, size_t errlen);

/* A client per worker, made in attach (the loop runs). */
struct aws_client *aws_client_new(struct event_base *base, const struct mcpd_host *host, const char *region,
    const char *profile, const char *who, char *err, size_t errlen);
/* Calls in flight are dropped without their callbacks. */
void aws_client_free(struct aws_client *c);

/* done runs once, always from the loop. timeout_ms bounds each attempt;
 * all the attempts together are bounded by budget_ms. */
void aws_json(struct aws_client *c, const struct aws_service *s, const char *target, const char *body,
    size_t len, uint64_t timeout_ms, uint64_t budget_ms, aws_done_fn *done, void *arg);
void aws_query(struct aws_client *c, const struct aws_service *s, const char *body, uint64_t timeout_ms,
    uint64_t budget_ms, aws_done_fn *done, void *arg);

/* 0 when the last call reached the service and was accepted (or none
 * failed yet), else -1 and why: for the plugins' status (/readyz). */
int aws_client_status(const struct aws_client *c, char *why, size_t len);
/* How long since a call was last answered 2xx (UINT64_MAX: never), so
 * that an idle worker can check the service now and then. */
uint64_t aws_client_idle_ms(const struct aws_client *c);
/* Where the credentials come from, in words. */
const char *aws_client_source(const struct aws_client *c);

/* The error code of a JSON error body ("__type", after its '#'). */
void aws_json_error(const char *body, size_t len, char *type, size_t tlen, char *msg, size_t mlen);

#endif
