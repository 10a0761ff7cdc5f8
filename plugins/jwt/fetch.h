/*
 * HTTP GETs for the jwt plugin: libcurl's multi interface driven by the
 * worker's libevent loop, so that a fetch never blocks the worker.
 * Bounded in size and time; no redirects followed.
 */
#ifndef MCPD_JWT_FETCH_H
#define MCPD_JWT_FETCH_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct fetcher;

struct fetch_opts {
	uint64_t timeout_ms;        /* the whole transfer */
	size_t max_bytes;           /* of the body */
	const char *ca_file;        /* CA certificates for https, or NULL: the system's */
};

struct fetch_result {
	const char *error;          /* NULL: a 200 answer with body and len */
	const char *body;           /* NUL-terminated */
	size_t len;
	long status;                /* HTTP status, 0 if there was no answer */
	int64_t max_age;            /* Cache-Control max-age in seconds, or -1 */
};

/* Runs on the loop, never inside fetch_get. */
typedef void fetch_done_fn(void *arg, const struct fetch_result *r);

struct fetcher *fetcher_new(struct event_base *base, const char *user_agent, char *err, size_t errlen);
/* Drops transfers in flight without calling their callbacks. */
void fetcher_free(struct fetcher *f);
/* 0, or -1 and err. */
int fetch_get(struct fetcher *f, const char *url, const struct fetch_opts *o, fetch_done_fn *done,
    void *arg, char *err, size_t errlen);

/* May mcpd fetch keys from url: https, or http to a loopback address.
 * 0, or -1 and why. */
int fetch_url_allowed(const char *url, char *why, size_t len);
/* Is url's host a loopback address (127.0.0.0/8, ::1, localhost)? */
int fetch_url_loopback(const char *url);

#endif
