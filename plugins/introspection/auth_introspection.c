/*
 * introspection: opaque bearer tokens checked by asking the authorization
 * server that issued them (RFC 7662 token introspection).
 *
 *   auth: { plugin: introspection, endpoint: https://id.example.com/introspect,
 *           client_id: mcpd, client_secret_file: introspection.secret,
 *           resource: https://mcp.example.com/mcp }
 *
 * create() (in the master, and for mcpd -t) checks the section and reads
 * the client secret. Each worker POSTs tokens to the endpoint on its own
 * loop (fetch.c) and keeps the answers in a cache of its own, keyed by
 * the token's SHA-256: active tokens until min(exp, cache_ttl), refused
 * ones for negative_cache_ttl. Requests with a token whose introspection
 * is on its way wait for it instead of asking again. introspect.c judges
 * the answers.
 *
 * mcpd's own cache of checked tokens (auth: cache:) sits in front of this
 * one. The principal handed to it "expires" (expires_at) when this
 * cache's entry does, rounded down to the second, so that mcpd's cache
 * never keeps it longer: an active answer is trusted for min(exp,
 * cache_ttl) whatever cache: says, and cache_ttl: 0 makes every request
 * ask. Refusals are only cached here (mcpd's cache keeps none).
 */
#include <mcpd/plugin.h>

#include "clock.h"
#include "fetch.h"
#include "section.h"
#include "introspect.h"

#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_ANSWER (64 * 1024)      /* bytes of an introspection answer */
#define MAX_SECRET 1024             /* bytes of the client secret */
#define MAX_LIST 64                 /* entries of a list in the section */
#define MAX_FLIGHTS 256             /* tokens being introspected at once, per worker */
#define MAX_WAITING 1000            /* requests waiting for those, per worker */
#define BUCKETS 4096                /* of the cache's hash table */
#define UNREADY_MS 30000            /* /readyz fails this long after a failure */

/* One request waiting for a token's introspection. */
struct waiter {
	mcpd_auth_cb *cb;
	void *arg;
	TAILQ_ENTRY(waiter) link;
};

/* One introspection on its way, for every request with that token. */
struct flight {
	struct intro *in;
	unsigned char hash[32];
	TAILQ_HEAD(, waiter) waiters;
	LIST_ENTRY(flight) link;
};

/* An answer kept: a principal, or why the token was refused. */
struct entry {
	unsigned char hash[32];
	uint64_t expires_ms;                /* monotonic */
	int64_t expires_at;                 /* Unix seconds, for mcpd's cache (positive only) */
	int denied;
	char *user, *client_id, *scopes;    /* positive */
	char *why;                          /* negative */
	struct entry *next;                 /* bucket chain */
	TAILQ_ENTRY(entry) lru;             /* least recently used first */
};

struct intro {
	const struct mcpd_host *host;

	/* The configuration, checked in create(). */
	char *endpoint, *client_id, *client_secret, *ca_file, *issuer;
	int client_post;                    /* client_secret_post, not client_secret_basic */
	struct strlist audiences, user_claims, required_scopes;
	int audience_required;              /* -1: not said (yes) */
	uint64_t skew_ms, timeout_ms, cache_ttl_ms, negative_ttl_ms, cache_size;
	struct introspect_policy policy;

	/* Each worker's own, from attach(). */
	struct fetcher *fetcher;
	char *basic_user, *basic_password;  /* form-encoded (RFC 6749 2.3.1) */
	struct entry *buckets[BUCKETS];
	TAILQ_HEAD(, entry) lru;
	size_t nentries;
	LIST_HEAD(, flight) flights;
	size_t nflights, nwaiting;
	int failing;                        /* the last introspection could not be done */
	uint64_t failed_ms;                 /* when (monotonic) */
	char last_error[600];
};

static void
wipe_free(char *s)
{
	if (s != NULL) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

/* ---- configuration ---- */

/* A string, or a list of them (at most MAX_LIST); words: each one a
 * name without spaces; a single string of words is split on spaces. */
static int
parse_list(struct intro *in, const struct mcpd_config *n, const char *key, int words, struct strlist *l,
    char *err, size_t errlen)
{
	const struct mcpd_host *h = in->host;
	const struct mcpd_config *bad;
	if (section_strings(h, n, words, NULL, l, &bad) < 0) {
		if (bad == NULL) {
			section_say(err, errlen, "out of memory");
			return -1;
		}
		return section_error(h, n, err, errlen, "%s must be a string or a list of strings", key);
	}
	if (l->n == 0 || l->n > MAX_LIST)
		return section_error(h, n, err, errlen, "%s must have from 1 to %d entries", key, MAX_LIST);
	for (size_t i = 0; i < l->n; i++)
		if (words ? !section_word_ok(l->v[i]) : (l->v[i][0] == '\0' || strlen(l->v[i]) > 2048))
			return section_error(h, n, err, errlen, "%s: \"%.200s\" is not a %s", key, l->v[i],
			    words ? "name (printable ASCII without spaces or quotes)" : "string of 1 to 2048 bytes");
	return 0;
}

static int
parse_choice(struct intro *in, const struct mcpd_config *n, const char *key, const char *const *choices,
    const char *list, int *out, char *err, size_t errlen)
{
	const char *s = in->host->config_scalar(n);
	for (int i = 0; s != NULL && choices[i] != NULL; i++)
		if (strcmp(s, choices[i]) == 0) {
			*out = i;
			return 0;
		}
	return section_error(in->host, n, err, errlen, "%s must be %s", key, list);
}

/* The client secret: the file's first line. The master reads it (the
 * file may be root's alone) before the workers start. */
static int
read_secret(struct intro *in, const char *file, char *err, size_t errlen)
{
	char *path = section_path(in->host, file), buf[MAX_SECRET + 2];
	if (path == NULL) {
		section_say(err, errlen, "out of memory");
		return -1;
	}
	int rc = -1;
	FILE *f = fopen(path, "r");
	struct stat st;
	if (f == NULL) {
		section_say(err, errlen, "client_secret_file %.512s: %s", path, strerror(errno));
		goto done;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 026) != 0) {
		/* Whoever can read it can introspect; whoever can write it can
		 * make mcpd send its tokens to the wrong client. */
		section_say(err, errlen, "client_secret_file %.512s can be %s by others (mode %03o): chmod 600 or 640 it",
		    path, st.st_mode & 004 ? "read" : "written", (unsigned)(st.st_mode & 0777));
		goto done;
	}
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	size_t n = strcspn(buf, "\r\n");
	if (n > MAX_SECRET) {
		section_say(err, errlen, "client_secret_file %.512s: the secret is longer than %d bytes", path, MAX_SECRET);
		goto done;
	}
	buf[n] = '\0';
	if (n == 0) {
		section_say(err, errlen, "client_secret_file %.512s: the first line (the secret) is empty", path);
		goto done;
	}
	wipe_free(in->client_secret);
	if ((in->client_secret = strdup(buf)) == NULL) {
		section_say(err, errlen, "out of memory");
		goto done;
	}
	rc = 0;
done:
	OPENSSL_cleanse(buf, sizeof(buf));
	if (f != NULL)
		fclose(f);
	free(path);
	return rc;
}

static void
intro_destroy(void *inst)
{
	struct intro *in = inst;
	if (in == NULL)
		return;
	free(in->endpoint);
	free(in->client_id);
	wipe_free(in->client_secret);
	free(in->ca_file);
	free(in->issuer);
	strlist_clear(&in->audiences);
	strlist_clear(&in->user_claims);
	strlist_clear(&in->required_scopes);
	free(in);
}

static const char KEYS[] = "endpoint, client_id, client_secret_file, client_secret, client_auth, audience, "
    "audience_required, issuer, user_claim, required_scopes, clock_skew, timeout, cache_ttl, negative_cache_ttl, "
    "cache_size, ca_file";

static int
parse_key(struct intro *in, const char *key, const struct mcpd_config *v, char *err, size_t errlen)
{
	static const char *const methods[] = { "client_secret_basic", "client_secret_post", NULL };
	static const char *const booleans[] = { "false", "true", "no", "yes", NULL };
	const struct mcpd_host *h = in->host;
	if (strcmp(key, "endpoint") == 0)
		return section_string(h, v, key, &in->endpoint, err, errlen);
	if (strcmp(key, "client_id") == 0)
		return section_string(h, v, key, &in->client_id, err, errlen);
	if (strcmp(key, "client_secret") == 0)
		return section_string(h, v, key, &in->client_secret, err, errlen);
	if (strcmp(key, "client_secret_file") == 0) {
		const char *file = h->config_scalar(v);
		char why[1024];
		if (file == NULL || file[0] == '\0')
			return section_error(h, v, err, errlen, "client_secret_file must be a path");
		if (read_secret(in, file, why, sizeof(why)) < 0)
			return section_error(h, v, err, errlen, "%s", why);
		return 0;
	}
	if (strcmp(key, "client_auth") == 0)
		return parse_choice(in, v, key, methods, "client_secret_basic or client_secret_post", &in->client_post,
		    err, errlen);
	if (strcmp(key, "audience_required") == 0) {
		int b;
		if (parse_choice(in, v, key, booleans, "true or false", &b, err, errlen) < 0)
			return -1;
		in->audience_required = b & 1;
		return 0;
	}
	if (strcmp(key, "issuer") == 0)
		return section_string(h, v, key, &in->issuer, err, errlen);
	if (strcmp(key, "ca_file") == 0)
		return section_string(h, v, key, &in->ca_file, err, errlen);
	if (strcmp(key, "audience") == 0)
		return parse_list(in, v, key, 0, &in->audiences, err, errlen);
	if (strcmp(key, "user_claim") == 0)
		return parse_list(in, v, key, 1, &in->user_claims, err, errlen);
	if (strcmp(key, "required_scopes") == 0)
		return parse_list(in, v, key, 1, &in->required_scopes, err, errlen);
	if (strcmp(key, "clock_skew") == 0)
		return section_duration(h, v, key, 0, 600000, "0 to 10m", &in->skew_ms, err, errlen);
	if (strcmp(key, "timeout") == 0)
		return section_duration(h, v, key, 100, 60000, "100ms to 60s", &in->timeout_ms, err, errlen);
	if (strcmp(key, "cache_ttl") == 0)
		return section_duration(h, v, key, 0, 3600000, "0 to 1h", &in->cache_ttl_ms, err, errlen);
	if (strcmp(key, "negative_cache_ttl") == 0)
		return section_duration(h, v, key, 0, 600000, "0 to 10m", &in->negative_ttl_ms, err, errlen);
	if (strcmp(key, "cache_size") == 0) {
		const char *s = h->config_scalar(v);
		char *end = NULL;
		unsigned long long n = s ? strtoull(s, &end, 10) : 0;
		if (s == NULL || end == s || *end != '\0' || s[0] == '-' || n > 1000000)
			return section_error(h, v, err, errlen, "cache_size must be a number of entries from 0 to 1000000");
		in->cache_size = n;
		return 0;
	}
	return section_error(h, v, err, errlen, "unknown key \"%s\" in auth (introspection takes %s)", key, KEYS);
}

/* What can only be checked with the whole section read. */
static int
check_section(struct intro *in, const struct mcpd_config *section, char *err, size_t errlen)
{
	const struct mcpd_host *h = in->host;
	char why[1024];
	if (in->endpoint == NULL)
		return section_error(h, section, err, errlen,
		    "introspection needs endpoint: (the authorization server's introspection URL)");
	if (in->client_id == NULL)
		return section_error(h, section, err, errlen,
		    "introspection needs client_id: (mcpd's client at the authorization server)");
	if (h->config_get(section, "client_secret") != NULL && h->config_get(section, "client_secret_file") != NULL)
		return section_error(h, h->config_get(section, "client_secret"), err, errlen,
		    "client_secret and client_secret_file: give one");
	if (in->client_secret == NULL)
		return section_error(h, section, err, errlen, "introspection needs client_secret_file: (a file holding "
		    "mcpd's client secret) or client_secret:");
	if (fetch_url_allowed(in->endpoint, why, sizeof(why)) < 0)
		return section_error(h, h->config_get(section, "endpoint"), err, errlen, "endpoint: %s", why);
	if (in->ca_file != NULL) {
		char *abs = section_path(h, in->ca_file);
		if (abs == NULL) {
			section_say(err, errlen, "out of memory");
			return -1;
		}
		free(in->ca_file);
		in->ca_file = abs;
		if (access(in->ca_file, R_OK) < 0)
			return section_error(h, h->config_get(section, "ca_file"), err, errlen,
			    "ca_file %.512s cannot be read", in->ca_file);
	}
	if (in->audiences.n == 0) {
		/* The endpoint's own URL is the audience of tokens for it (RFC 8707). */
		const char *resource = h->config_scalar(h->config_get(section, "resource"));
		if (resource == NULL)
			return section_error(h, section, err, errlen, "introspection needs audience: (what the answers carry "
			    "in aud), or resource: (the endpoint's URL, then taken as the audience)");
		if (strlist_add(&in->audiences, resource, strlen(resource)) < 0) {
			section_say(err, errlen, "out of memory");
			return -1;
		}
	}
	if (in->audience_required < 0)
		in->audience_required = 1;
	if (in->user_claims.n == 0 && strlist_split(&in->user_claims, "sub username") < 0) {
		section_say(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static void *
intro_create(const struct mcpd_host *host, const struct mcpd_config *section, char *err, size_t errlen)
{
	if (host->size < offsetof(struct mcpd_host, config_dir) + sizeof(host->config_dir)) {
		section_say(err, errlen, "this mcpd is too old for the introspection plugin");
		return NULL;
	}
	struct intro *in = calloc(1, sizeof(*in));
	if (in == NULL) {
		section_say(err, errlen, "out of memory");
		return NULL;
	}
	in->host = host;
	in->audience_required = -1;
	in->skew_ms = 60000;
	in->timeout_ms = 5000;
	in->cache_ttl_ms = 60000;
	in->negative_ttl_ms = 5000;
	in->cache_size = 10000;
	for (size_t i = 0; i < host->config_count(section); i++) {
		const char *key;
		const struct mcpd_config *v = host->config_item(section, i, &key);
		if (mcpd_auth_common_key(key))
			continue;
		if (parse_key(in, key, v, err, errlen) < 0)
			goto fail;
	}
	if (check_section(in, section, err, errlen) < 0)
		goto fail;
	struct introspect_policy *p = &in->policy;
	p->issuer = in->issuer;
	p->audiences = (const char *const *)in->audiences.v;
	p->naudiences = in->audiences.n;
	p->audience_required = in->audience_required;
	p->skew = (int64_t)(in->skew_ms / 1000);
	p->user_claims = (const char *const *)in->user_claims.v;
	p->nuser_claims = in->user_claims.n;
	p->required_scopes = (const char *const *)in->required_scopes.v;
	p->nrequired_scopes = in->required_scopes.n;
	return in;
fail:
	intro_destroy(in);
	return NULL;
}

/* ---- the cache, in each worker ---- */

static struct entry **
bucket(struct intro *in, const unsigned char hash[32])
{
	return &in->buckets[(hash[0] | hash[1] << 8) % BUCKETS];
}

static void
entry_free(struct intro *in, struct entry *e)
{
	for (struct entry **pp = bucket(in, e->hash); *pp != NULL; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	TAILQ_REMOVE(&in->lru, e, lru);
	in->nentries--;
	free(e->user);
	free(e->client_id);
	free(e->scopes);
	free(e->why);
	free(e);
}

static struct entry *
cache_find(struct intro *in, const unsigned char hash[32])
{
	for (struct entry *e = *bucket(in, hash); e != NULL; e = e->next) {
		if (CRYPTO_memcmp(e->hash, hash, 32) != 0)
			continue;
		if (e->expires_ms <= mono_ms()) {
			entry_free(in, e);
			return NULL;
		}
		TAILQ_REMOVE(&in->lru, e, lru);
		TAILQ_INSERT_TAIL(&in->lru, e, lru);
		return e;
	}
	return NULL;
}

/* Keeps an answer for ttl_ms (nothing for 0); the least recently used
 * entry goes when the cache is full. */
static struct entry *
cache_put(struct intro *in, const unsigned char hash[32], uint64_t ttl_ms)
{
	if (ttl_ms == 0 || in->cache_size == 0)
		return NULL;
	struct entry *old = cache_find(in, hash);
	if (old != NULL)
		entry_free(in, old);
	if (in->nentries >= in->cache_size)
		entry_free(in, TAILQ_FIRST(&in->lru));
	struct entry *e = calloc(1, sizeof(*e));
	if (e == NULL)
		return NULL;
	memcpy(e->hash, hash, 32);
	e->expires_ms = mono_ms() + ttl_ms;
	struct entry **b = bucket(in, hash);
	e->next = *b;
	*b = e;
	TAILQ_INSERT_TAIL(&in->lru, e, lru);
	in->nentries++;
	return e;
}

/* How long an active token's answer is trusted, from now: cache_ttl, but
 * not past its exp. */
static uint64_t
positive_ttl(const struct intro *in, int64_t exp, uint64_t now_real)
{
	uint64_t ttl = in->cache_ttl_ms;
	if (exp > 0) {
		uint64_t left = (uint64_t)exp * 1000 > now_real ? (uint64_t)exp * 1000 - now_real : 0;
		if (left < ttl)
			ttl = left;
	}
	return ttl;
}

static void
answer_entry(const struct entry *e, mcpd_auth_cb *cb, void *arg)
{
	if (e->denied) {
		cb(arg, MCPD_DENIED, NULL, e->why);
		return;
	}
	struct mcpd_principal p = { e->user, e->client_id, e->scopes, e->expires_at };
	cb(arg, MCPD_OK, &p, NULL);
}

/* ---- introspection ---- */

static void
flight_free(struct flight *fl)
{
	struct waiter *w;
	while ((w = TAILQ_FIRST(&fl->waiters)) != NULL) {
		TAILQ_REMOVE(&fl->waiters, w, link);
		free(w);
	}
	free(fl);
}

static void failed(struct intro *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The endpoint could not say: logged once per failure streak at warn. */
static void
failed(struct intro *in, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(in->last_error, sizeof(in->last_error), fmt, ap);
	va_end(ap);
	in->host->log(in->failing ? MCPD_LOG_INFO : MCPD_LOG_WARN, "introspection: %s", in->last_error);
	in->failing = 1;
	in->failed_ms = mono_ms();
}

/* The endpoint's answer, for every request waiting for it. */
static void
answered(void *arg, const struct fetch_result *r)
{
	struct flight *fl = arg;
	struct intro *in = fl->in;
	LIST_REMOVE(fl, link);
	in->nflights--;
	char why[600], oauth[80];
	int status = MCPD_ERROR;
	struct introspect_principal pr = { 0 };
	const char *msg = why;
	why[0] = '\0';
	uint64_t now_real = real_ms();
	if (r->error != NULL) {
		failed(in, "%.512s cannot be asked: %s", in->endpoint, r->error);
	} else if (r->status == 401 || r->status == 403) {
		introspect_oauth_error(r->body, r->len, oauth, sizeof(oauth));
		failed(in, "%.512s refuses mcpd's client credentials (HTTP %ld%s%s): check client_id, the client "
		    "secret and client_auth", in->endpoint, r->status, oauth[0] ? " " : "", oauth);
	} else if (r->status != 200) {
		introspect_oauth_error(r->body, r->len, oauth, sizeof(oauth));
		failed(in, "%.512s answers HTTP %ld%s%s", in->endpoint, r->status, oauth[0] ? " " : "", oauth);
	} else {
		enum introspect_result rc = introspect_check(&in->policy, r->body, r->len, (int64_t)(now_real / 1000), &pr,
		    why, sizeof(why));
		if (rc == INTROSPECT_BAD_ANSWER) {
			failed(in, "%.512s: %s", in->endpoint, why);
		} else {
			if (in->failing)
				in->host->log(MCPD_LOG_NOTICE, "introspection: %s answers again", in->endpoint);
			in->failing = 0;
			status = rc == INTROSPECT_OK ? MCPD_OK : MCPD_DENIED;
		}
	}
	if (status == MCPD_ERROR)
		msg = in->last_error;
	struct entry e0 = { .denied = status == MCPD_DENIED, .why = why }, *e = NULL;
	if (status == MCPD_OK) {
		uint64_t ttl = positive_ttl(in, pr.expires_at, now_real);
		e0.user = pr.user;
		e0.client_id = pr.client_id;
		e0.scopes = pr.scopes;
		/* Rounded down: mcpd's cache keeps it no longer than this one. */
		e0.expires_at = (int64_t)((now_real + ttl) / 1000);
		if ((e = cache_put(in, fl->hash, ttl)) != NULL) {
			e->expires_at = e0.expires_at;
			e->user = strdup(pr.user);
			e->client_id = pr.client_id ? strdup(pr.client_id) : NULL;
			e->scopes = strdup(pr.scopes);
			if (e->user == NULL || e->scopes == NULL || (pr.client_id != NULL && e->client_id == NULL))
				entry_free(in, e);
		}
	} else if (status == MCPD_DENIED) {
		in->host->log(MCPD_LOG_DEBUG, "introspection: token refused: %s", why);
		if ((e = cache_put(in, fl->hash, in->negative_ttl_ms)) != NULL) {
			e->denied = 1;
			if ((e->why = strdup(why)) == NULL)
				entry_free(in, e);
		}
	}
	struct waiter *w;
	while ((w = TAILQ_FIRST(&fl->waiters)) != NULL) {
		TAILQ_REMOVE(&fl->waiters, w, link);
		in->nwaiting--;
		if (status == MCPD_ERROR)
			w->cb(w->arg, MCPD_ERROR, NULL, msg);
		else
			answer_entry(&e0, w->cb, w->arg);
		free(w);
	}
	introspect_principal_clear(&pr);
	flight_free(fl);
}

static int
wait_in(struct intro *in, struct flight *fl, mcpd_auth_cb *cb, void *arg)
{
	struct waiter *w = NULL;
	if (in->nwaiting >= MAX_WAITING || (w = calloc(1, sizeof(*w))) == NULL)
		return -1;
	w->cb = cb;
	w->arg = arg;
	TAILQ_INSERT_TAIL(&fl->waiters, w, link);
	in->nwaiting++;
	return 0;
}

/* The form of one introspection request: the token, and the client's
 * credentials unless they go in the Authorization header. */
static char *
request_body(struct intro *in, const char *token)
{
	char *body = NULL;
	if (fetch_form_add(&body, "token", token) < 0 ||
	    fetch_form_add(&body, "token_type_hint", "access_token") < 0 ||
	    (in->client_post && (fetch_form_add(&body, "client_id", in->client_id) < 0 ||
	    fetch_form_add(&body, "client_secret", in->client_secret) < 0))) {
		wipe_free(body);
		return NULL;
	}
	return body;
}

static void
intro_authenticate(void *inst, const char *token, mcpd_auth_cb *cb, void *arg)
{
	struct intro *in = inst;
	if (in->fetcher == NULL) {
		cb(arg, MCPD_ERROR, NULL, "the introspection plugin is not attached to this worker");
		return;
	}
	unsigned char hash[32];
	unsigned int hl = 32;
	EVP_Digest(token, strlen(token), hash, &hl, EVP_sha256(), NULL);
	struct entry *e = cache_find(in, hash);
	if (e != NULL) {
		answer_entry(e, cb, arg);
		return;
	}
	struct flight *fl;
	LIST_FOREACH(fl, &in->flights, link)
		if (CRYPTO_memcmp(fl->hash, hash, 32) == 0)
			break;
	if (fl != NULL) {
		/* Asked already: this request waits for the same answer. */
		if (wait_in(in, fl, cb, arg) < 0)
			cb(arg, MCPD_ERROR, NULL, "too many requests wait for the introspection endpoint");
		else
			in->host->log(MCPD_LOG_DEBUG, "introspection: a request waits for the same token's answer "
			    "(%zu waiting)", in->nwaiting);
		return;
	}
	if (in->nflights >= MAX_FLIGHTS || in->nwaiting >= MAX_WAITING) {
		cb(arg, MCPD_ERROR, NULL, "too many introspections on their way");
		return;
	}
	char err[600];
	char *body = request_body(in, token);
	if (body == NULL || (fl = calloc(1, sizeof(*fl))) == NULL) {
		wipe_free(body);
		cb(arg, MCPD_ERROR, NULL, "out of memory");
		return;
	}
	fl->in = in;
	memcpy(fl->hash, hash, 32);
	TAILQ_INIT(&fl->waiters);
	if (wait_in(in, fl, cb, arg) < 0) {
		wipe_free(body);
		free(fl);
		cb(arg, MCPD_ERROR, NULL, "out of memory");
		return;
	}
	struct fetch_post post = { body, in->client_post ? NULL : in->basic_user,
	    in->client_post ? NULL : in->basic_password };
	struct fetch_opts o = { in->timeout_ms, MAX_ANSWER, in->ca_file, 0 };
	int rc = fetch_post(in->fetcher, in->endpoint, &post, &o, answered, fl, err, sizeof(err));
	wipe_free(body);
	if (rc < 0) {
		in->nwaiting--;
		flight_free(fl);
		failed(in, "%s", err);
		cb(arg, MCPD_ERROR, NULL, in->last_error);
		return;
	}
	LIST_INSERT_HEAD(&in->flights, fl, link);
	in->nflights++;
}

static void intro_detach(void *inst);

static int
intro_attach(void *inst, char *err, size_t errlen)
{
	struct intro *in = inst;
	TAILQ_INIT(&in->lru);
	LIST_INIT(&in->flights);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		section_say(err, errlen, "libcurl cannot be initialised");
		return -1;
	}
	if ((in->basic_user = fetch_form_encode(in->client_id)) == NULL ||
	    (in->basic_password = fetch_form_encode(in->client_secret)) == NULL) {
		section_say(err, errlen, "out of memory");
		goto fail;
	}
	if ((in->fetcher = fetcher_new(in->host->event_base(), "mcpd-introspection/1.0", err, errlen)) == NULL)
		goto fail;
	return 0;
fail:
	intro_detach(in);
	return -1;
}

static void
intro_detach(void *inst)
{
	struct intro *in = inst;
	/* Transfers go without their callbacks: the waiters hear it here. */
	fetcher_free(in->fetcher);
	in->fetcher = NULL;
	struct flight *fl;
	while ((fl = LIST_FIRST(&in->flights)) != NULL) {
		LIST_REMOVE(fl, link);
		struct waiter *w;
		while ((w = TAILQ_FIRST(&fl->waiters)) != NULL) {
			TAILQ_REMOVE(&fl->waiters, w, link);
			w->cb(w->arg, MCPD_ERROR, NULL, "mcpd is stopping");
			free(w);
		}
		flight_free(fl);
	}
	in->nflights = in->nwaiting = 0;
	while (!TAILQ_EMPTY(&in->lru))
		entry_free(in, TAILQ_FIRST(&in->lru));
	wipe_free(in->basic_user);
	wipe_free(in->basic_password);
	in->basic_user = in->basic_password = NULL;
	curl_global_cleanup();
}

static int
intro_status(void *inst, char *why, size_t len)
{
	struct intro *in = inst;
	/* Only for a while: an instance taken out of a balancer gets no
	 * tokens, and so would never see the endpoint answer again. */
	if (!in->failing || mono_ms() - in->failed_ms >= UNREADY_MS)
		return 0;
	section_say(why, len, "the introspection endpoint failed: %s", in->last_error);
	return -1;
}

static const struct mcpd_auth_ops ops = {
	.size = sizeof(struct mcpd_auth_ops),
	.authenticate = intro_authenticate,
};

static const struct mcpd_plugin descriptor = {
	.size = sizeof(struct mcpd_plugin),
	.abi_major = MCPD_PLUGIN_ABI_MAJOR,
	.abi_minor = MCPD_PLUGIN_ABI_MINOR,
	.kind = MCPD_PLUGIN_AUTH,
	.name = "introspection",
	.version = "1.0.0",
	.create = intro_create,
	.attach = intro_attach,
	.detach = intro_detach,
	.destroy = intro_destroy,
	.ops = &ops,
	.status = intro_status,
};

const struct mcpd_plugin *
mcpd_plugin_entry(void)
{
	return &descriptor;
}
