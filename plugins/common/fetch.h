/*
 * HTTP for the auth plugins (jwt: GETs of discovery documents and JWKS;
 * introspection: POSTs of tokens): libcurl's multi interface driven by
 * the worker's libevent loop, so that a request never blocks the worker.
 * Bounded in size and time; no redirects followed. The same source is
 * built into each plugin that uses it (plugins share no code at run
 * time).
 */
#ifndef MCPD_PLUGIN_FETCH_H
#define MCPD_PLUGIN_FETCH_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct fetcher;

struct fetch_opts {
	uint64_t timeout_ms;        /* the whole transfer */
	size_t max_bytes;           /* of the body */
	const char *ca_file;        /* CA certificates for https, or NULL: the system's */
};

/* A POST of an application/x-www-form-urlencoded body, asking for JSON. */
struct fetch_post {
	const char *body;           /* already encoded (fetch_form_add) */
	const char *user, *password;        /* HTTP Basic, or NULL */
};

struct fetch_result {
	const char *error;          /* NULL: a 200 answer with body and len */
	const char *body;           /* NUL-terminated */
	size_t len;
	long status;                /* HTTP status, 0 if there was no answer */
	int64_t max_age;            /* Cache-Control max-age in seconds, or -1 */
	int64_t date;               /* the answer's Date as Unix seconds, or -1 */
	int not_sent;               /* no connection was made: the request never left */
};

/* Runs on the loop, never inside fetch_get or fetch_post. */
typedef void fetch_done_fn(void *arg, const struct fetch_result *r);

struct fetcher *fetcher_new(struct event_base *base, const char *user_agent, char *err, size_t errlen);
/* Drops transfers in flight without calling their callbacks. */
void fetcher_free(struct fetcher *f);
/* 0, or -1 and err. */
int fetch_get(struct fetcher *f, const char *url, const struct fetch_opts *o, fetch_done_fn *done,
    void *arg, char *err, size_t errlen);

/* Like fetch_get, with a POST; the answer's status is the caller's to
 * judge: r->error is set only when there is no complete answer (r->status
 * then 0), or when it is too large. */
int fetch_post(struct fetcher *f, const char *url, const struct fetch_post *p, const struct fetch_opts *o,
    fetch_done_fn *done, void *arg, char *err, size_t errlen);

/* Any request (the AWS plugins' signed calls, metadata endpoints): the
 * answer's status is the caller's to judge, as with fetch_post. */
struct fetch_request {
	const char *method;         /* GET, POST, PUT... */
	const char *const *headers; /* "Name: value" lines, NULL-terminated, or NULL */
	const void *body;           /* copied, and wiped when done; NULL: none */
	size_t body_len;
	int allow_http;             /* plain http to any host (an instance metadata
	                               address, an emulator named in the configuration) */
};

int fetch_request(struct fetcher *f, const char *url, const struct fetch_request *rq, const struct fetch_opts *o,
    fetch_done_fn *done, void *arg, char *err, size_t errlen);

/* How many connections the fetcher keeps open at most (4 unless set):
 * more requests than that wait for one. */
void fetcher_set_max_connections(struct fetcher *f, long n);

/* Appends name=value to a form body in *body (malloc'ed, "&" between
 * pairs), both percent-encoded. 0, or -1 (out of memory). */
int fetch_form_add(char **body, const char *name, const char *value);
/* The form-urlencoding of s (RFC 6749 2.3.1 wants it for HTTP Basic
 * client credentials too), malloc'ed, or NULL. */
char *fetch_form_encode(const char *s);

/* May mcpd fetch keys from url: https, or http to a loopback address.
 * 0, or -1 and why. */
int fetch_url_allowed(const char *url, char *why, size_t len);
/* Is url's host a loopback address (127.0.0.0/8, ::1, localhost)? */
int fetch_url_loopback(const char *url);

#endif
