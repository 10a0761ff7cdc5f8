/*
 * Google credentials as Google's client libraries find them (Application
 * Default Credentials), for the firestore and pubsub plugins:
 *
 *   1. GOOGLE_APPLICATION_CREDENTIALS naming a JSON file:
 *      - "service_account": a JWT (RS256, signed with the file's private
 *        key) exchanged at its token_uri for an access token (the OAuth
 *        2.0 JWT bearer grant, RFC 7523);
 *      - "external_account" (workload identity federation): a subject
 *        token read from a file or a URL (text, or a field of JSON)
 *        exchanged at Google's STS (RFC 8693), then, when the file says
 *        so, for a service account's token (generateAccessToken);
 *      - "authorized_user" (gcloud auth application-default login): the
 *        refresh token exchanged at the token endpoint;
 *   2. the same file where gcloud writes it:
 *      $CLOUDSDK_CONFIG (~/.config/gcloud)/application_default_credentials.json;
 *   3. the metadata server of GCE, GKE and Cloud Run:
 *      http://metadata.google.internal (GCE_METADATA_HOST moves it), with
 *      the Metadata-Flavor: Google header.
 *
 * The file is read when the source is made; tokens are fetched on the
 * worker's loop with fetch.c, kept, and fetched again in the second half
 * of their life (at most 5 minutes before they expire), calls going on
 * with the current one meanwhile. Tokens, keys and secrets are never
 * logged and are wiped when dropped.
 */
#ifndef MCPD_PLUGIN_GCP_AUTH_H
#define MCPD_PLUGIN_GCP_AUTH_H

#include <stddef.h>
#include <stdint.h>

struct fetcher;
struct mcpd_host;
struct gcp_auth;

#define GCP_SCOPE "https://www.googleapis.com/auth/cloud-platform"

/* Runs once per gcp_auth_token: with an access token, or token NULL and
 * why (naming the source). token lives until the callback returns. */
typedef void gcp_token_cb(void *arg, const char *token, const char *why);

/* Which source the environment and files name, without fetching: its
 * description into what, and the project the file names (a service
 * account's project_id, or "") into project. 0, or -1 and why (a file
 * that cannot be read or that mcpd cannot use). */
int gcp_auth_probe(char *what, size_t whatlen, char *project, size_t projectlen, char *why, size_t whylen);

/* A source on a worker's loop (f's); host for the log (NULL: none). */
struct gcp_auth *gcp_auth_new(struct fetcher *f, const struct mcpd_host *host, char *err, size_t errlen);
void gcp_auth_free(struct gcp_auth *a);
/* The source in words ("service account x@y (file)", "the metadata
 * server (metadata.google.internal)"...). */
const char *gcp_auth_source(const struct gcp_auth *a);

/* An access token: at once when the one kept is fresh, after a fetch
 * otherwise (the callback runs on the loop, or before this returns). */
void gcp_auth_token(struct gcp_auth *a, gcp_token_cb *cb, void *arg);
/* The service refused the token (401): fetch another before the next use. */
void gcp_auth_invalidate(struct gcp_auth *a);

/* For tests: the signed JWT a service account sends to token_uri
 * (malloc'ed), or NULL and err. */
char *gcp_jwt_assertion(const char *email, const char *pem_key, const char *key_id, const char *scope,
    const char *aud, int64_t now, char *err, size_t errlen);

#endif
