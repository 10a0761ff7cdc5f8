/*
 * Calls to Google Cloud's REST APIs (Firestore, Pub/Sub) from a worker's
 * loop: JSON over HTTPS with libcurl's multi interface (fetch.c,
 * connections kept alive and reused, many calls in flight), each attempt
 * bounded in time, with an access token of the Application Default
 * Credentials (gcp_auth.c) or none for an emulator.
 *
 * UNAVAILABLE, 429 and other 5xx answers and lost connections are tried
 * again with jittered exponential back-off (full jitter, from 25 ms, at
 * most 1 s) within the call's bound; a call that must not run twice (an
 * increment) is tried again only where the service said it did nothing
 * (429, 503) or when the connection could not be made. A 401 fetches a
 * new token once.
 */
#ifndef MCPD_PLUGIN_GCP_H
#define MCPD_PLUGIN_GCP_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct mcpd_host;
struct gcp_client;

struct gcp_result {
	long status;                /* HTTP status; 0: no answer */
	const char *body;           /* NUL-terminated */
	size_t len;
	/* On failure: Google's status name (NOT_FOUND, ALREADY_EXISTS,
	 * FAILED_PRECONDITION, UNAVAILABLE...), "" when there was no answer,
	 * and a message that says what happened. Both NULL on success (2xx). */
	const char *code, *message;
};

typedef void gcp_done_fn(void *arg, const struct gcp_result *r);

/* Where a service's calls go: endpoint (the configuration's) or the
 * emulator variable (FIRESTORE_EMULATOR_HOST=host:port) or Google's URL,
 * into url without a trailing slash; *emulator is 1 for the emulator
 * variable or an http:// endpoint (no credentials are sent there unless
 * credentials says so). 0, or -1 and err. */
int gcp_endpoint(const char *endpoint, const char *emulator_var, const char *google_url, char *url, size_t len,
    int *emulator, char *err, size_t errlen);

/* A client per worker, made in attach (the loop runs). use_auth: send
 * access tokens of the default credentials (0: an emulator). */
struct gcp_client *gcp_client_new(struct event_base *base, const struct mcpd_host *host, int use_auth,
    const char *who, char *err, size_t errlen);
/* Calls in flight are dropped without their callbacks. */
void gcp_client_free(struct gcp_client *c);

#define GCP_IDEMPOTENT 1u           /* may run twice: tried again after a lost answer */
#define GCP_QUIET 2u                /* a failure does not count against readiness */

/* method (GET, POST, PUT, PATCH, DELETE) of url with a JSON body (NULL:
 * none). done runs once, always from the loop. timeout_ms bounds each
 * attempt; all the attempts together are bounded by budget_ms. */
void gcp_call(struct gcp_client *c, const char *method, const char *url, const char *body, size_t len,
    unsigned flags, uint64_t timeout_ms, uint64_t budget_ms, gcp_done_fn *done, void *arg);

/* 0 when the last call reached the service and was accepted (or none
 * failed yet), else -1 and why: for the plugins' status (/readyz). */
int gcp_client_status(const struct gcp_client *c, char *why, size_t len);
/* How long since a call was last answered 2xx (UINT64_MAX: never). */
uint64_t gcp_client_idle_ms(const struct gcp_client *c);
/* Where the credentials come from, in words ("none (an emulator)"). */
const char *gcp_client_source(const struct gcp_client *c);

/* Google's error body {"error": {"code", "message", "status"}} (or a
 * list of them): the status name and the message. */
void gcp_error_of(const char *body, size_t len, char *code, size_t clen, char *msg, size_t mlen);

/* 1 when r is Google's NOT_FOUND for the project itself rather than for
 * something in it: Firestore's "The project P does not exist or it does
 * not contain an active ... database", Pub/Sub's "Requested project not
 * found or user does not have access to it". */
int gcp_project_missing(const struct gcp_result *r);

/* s percent-encoded for a URL's path or query (unreserved characters
 * kept), malloc'ed, or NULL. */
char *gcp_url_escape(const char *s);

#endif
