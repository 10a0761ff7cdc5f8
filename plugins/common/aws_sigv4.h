/*
 * AWS Signature Version 4 (the "AWS4-HMAC-SHA256" Authorization header),
 * written from AWS's documentation of the signing process: a canonical
 * request, the string to sign over its hash, and an HMAC-SHA256 with a key
 * derived from the secret, the date, the region and the service. No I/O:
 * the caller sends the headers. Built into the AWS plugins (PLUGIN_SHARED_*)
 * and tested as it is by the unit tests.
 */
#ifndef MCPD_PLUGIN_AWS_SIGV4_H
#define MCPD_PLUGIN_AWS_SIGV4_H

#include <stddef.h>
#include <time.h>

struct aws_header {
	const char *name, *value;
};

struct aws_sign {
	const char *method;         /* GET, POST... */
	const char *path;           /* as sent: already percent-encoded, "/" at least */
	const char *query;          /* as sent (without '?'), or NULL */
	/* Every header to sign, Host and X-Amz-Date among them (the caller
	 * sends exactly these); a name may come more than once. */
	const struct aws_header *headers;
	size_t nheaders;
	const void *payload;
	size_t payload_len;
	const char *region, *service;
	const char *access_key, *secret_key;
	time_t when;                /* the time in X-Amz-Date */
};

/* "YYYYMMDDTHHMMSSZ" of when, in UTC. */
void aws_amz_date(time_t when, char out[17]);

/* The lower-case hex SHA-256 of data (the payload hash). */
void aws_sha256_hex(const void *data, size_t len, char out[65]);

/* The Authorization header's value into out. 0, or -1 (out too small,
 * out of memory, a header without a name). */
int aws_sigv4_authorization(const struct aws_sign *s, char *out, size_t outlen);

/* The canonical request (step 1 of the process), malloc'ed, for tests
 * and for the log of a signature that a service refused. NULL: out of
 * memory. */
char *aws_sigv4_canonical_request(const struct aws_sign *s);

#endif
