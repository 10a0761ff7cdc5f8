/* The AWS credential chain: see aws_creds.h. */
#include <mcpd/plugin.h>

#include "aws_creds.h"
#include "aws_xml.h"
#include "clock.h"
#include "credfile.h"
#include "fetch.h"
#include "isotime.h"
#include "tokcache.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_FILE (1u << 20)             /* a shared file or a token file */
#define MAX_ANSWER (64u << 10)          /* of STS, ECS, IMDS */
#define FETCH_TIMEOUT_MS 5000
#define IMDS_TIMEOUT_MS 2000
#define RETRY_AFTER_FAILURE_MS 1000
#define IMDS_DEFAULT "http://169.254.169.254"
#define ECS_HOST "http://169.254.170.2"

enum source { SRC_ENV, SRC_FILE, SRC_WEB, SRC_ECS, SRC_IMDS };

struct waiter {
	aws_creds_cb *cb;
	void *arg;
	struct waiter *next;
};

struct aws_chain {
	struct fetcher *f;
	const struct mcpd_host *host;
	enum source src;
	char what[512];                 /* the source in words */
	char region[64];
	/* what the source needs to fetch */
	char *token_file, *role_arn, *session_name;     /* web identity */
	char *url, *auth_token, *auth_token_file;       /* ECS */
	char *imds;                                     /* IMDS endpoint */
	char *imds_token, *imds_role;
	int imds_step;
	/* the credentials */
	char *ak, *sk, *tok;
	uint64_t expires_ms, obtained_ms;
	int fetching;
	uint64_t failed_at;             /* monotonic, of the last failed fetch */
	char last_error[1024];
	struct waiter *waiters, **tail;
	int depth;                      /* in callbacks: a free waits for them */
	int doomed;
};

static void
say(const struct aws_chain *ch, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
say(const struct aws_chain *ch, int level, const char *fmt, ...)
{
	if (ch->host == NULL)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ch->host->log((enum mcpd_log_level)level, "%s", msg);
}

/* The keys of one section of an INI file: [section] in the credentials
 * file, [profile NAME] (or [default]) in the config file. */
struct profile {
	char *ak, *sk, *tok;
	char region[64];
	char unsupported[64];           /* a key naming a way we do not support */
	int found;
};

static void
profile_clear(struct profile *p)
{
	cred_wipe_free(&p->ak);
	cred_wipe_free(&p->sk);
	cred_wipe_free(&p->tok);
}

static int
read_profile(const char *path, const char *name, int config, struct profile *p)
{
	size_t len;
	char *text = cred_slurp(path, MAX_FILE, &len);
	if (text == NULL)
		return errno == ENOENT ? 0 : -1;
	int in = 0;
	for (char *line = text, *next; line != NULL; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		char *l = cred_trim(line);
		if (*l == '#' || *l == ';' || *l == '\0')
			continue;
		if (*l == '[') {
			char *end = strchr(l, ']');
			if (end == NULL) {
				in = 0;
				continue;
			}
			*end = '\0';
			char *sec = cred_trim(l + 1);
			if (config && strcmp(name, "default") != 0) {
				in = strncmp(sec, "profile", 7) == 0 && isspace((unsigned char)sec[7]) &&
				    strcmp(cred_trim(sec + 8), name) == 0;
			} else if (config) {
				in = strcmp(sec, "default") == 0 || strcmp(sec, "profile default") == 0;
			} else {
				in = strcmp(sec, name) == 0;
			}
			if (in)
				p->found = 1;
			continue;
		}
		if (!in)
			continue;
		char *eq = strchr(l, '=');
		if (eq == NULL)
			continue;
		*eq = '\0';
		char *k = cred_trim(l), *v = cred_trim(eq + 1);
		char **slot = NULL;
		if (strcasecmp(k, "aws_access_key_id") == 0)
			slot = &p->ak;
		else if (strcasecmp(k, "aws_secret_access_key") == 0)
			slot = &p->sk;
		else if (strcasecmp(k, "aws_session_token") == 0)
			slot = &p->tok;
		else if (strcasecmp(k, "region") == 0 && p->region[0] == '\0')
			snprintf(p->region, sizeof(p->region), "%s", v);
		else if ((strcasecmp(k, "role_arn") == 0 || strcasecmp(k, "credential_process") == 0 ||
		    strncasecmp(k, "sso_", 4) == 0) && p->unsupported[0] == '\0')
			snprintf(p->unsupported, sizeof(p->unsupported), "%s", k);
		if (slot != NULL && *slot == NULL && *v != '\0')
			*slot = strdup(v);
	}
	OPENSSL_cleanse(text, len);
	free(text);
	return 0;
}

static char *
home_file(const char *envname, const char *rel)
{
	const char *v = cred_env(envname);
	char *path = NULL;
	if (v != NULL)
		return strdup(v);
	const char *home = cred_env("HOME");
	if (home == NULL || asprintf(&path, "%s/%s", home, rel) < 0)
		return NULL;
	return path;
}

/* What the environment and files configure: ch filled (keys for the
 * first two sources). 0, or -1 and why. */
static int
find(struct aws_chain *ch, const char *profile_name, char *why, size_t whylen)
{
	ch->region[0] = '\0';
	const char *ak = cred_env("AWS_ACCESS_KEY_ID"), *sk = cred_env("AWS_SECRET_ACCESS_KEY");
	if (ak != NULL || sk != NULL) {
		if (ak == NULL || sk == NULL) {
			snprintf(why, whylen, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together");
			return -1;
		}
		ch->src = SRC_ENV;
		snprintf(ch->what, sizeof(ch->what), "the environment (AWS_ACCESS_KEY_ID)");
		const char *tok = cred_env("AWS_SESSION_TOKEN");
		if ((ch->ak = strdup(ak)) == NULL || (ch->sk = strdup(sk)) == NULL ||
		    (tok != NULL && (ch->tok = strdup(tok)) == NULL))
			goto oom;
		return 0;
	}
	const char *name = profile_name ? profile_name : cred_env("AWS_PROFILE") ? cred_env("AWS_PROFILE") : "default";
	char *cred_path = home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
	char *conf_path = home_file("AWS_CONFIG_FILE", ".aws/config");
	struct profile c = { 0 }, k = { 0 };
	int rc = 0;
	if (cred_path != NULL && read_profile(cred_path, name, 0, &c) < 0) {
		snprintf(why, whylen, "cannot read %s: %s", cred_path, strerror(errno));
		rc = -1;
	}
	if (rc == 0 && conf_path != NULL && read_profile(conf_path, name, 1, &k) < 0) {
		snprintf(why, whylen, "cannot read %s: %s", conf_path, strerror(errno));
		rc = -1;
	}
	snprintf(ch->region, sizeof(ch->region), "%s", k.region[0] ? k.region : c.region);
	if (rc == 0 && (c.ak != NULL || k.ak != NULL)) {
		struct profile *p = c.ak != NULL ? &c : &k;
		if (p->sk == NULL) {
			snprintf(why, whylen, "profile %s in %s has aws_access_key_id but no aws_secret_access_key",
			    name, p == &c ? cred_path : conf_path);
			rc = -1;
		} else {
			ch->src = SRC_FILE;
			snprintf(ch->what, sizeof(ch->what), "profile %s of %s", name, p == &c ? cred_path : conf_path);
			ch->ak = p->ak;
			ch->sk = p->sk;
			ch->tok = p->tok;
			p->ak = p->sk = p->tok = NULL;
		}
	} else if (rc == 0 && (c.unsupported[0] || k.unsupported[0])) {
		snprintf(why, whylen, "profile %s uses %s, which mcpd does not support: give it keys, or use the "
		    "environment, web identity, the ECS endpoint or instance metadata", name,
		    c.unsupported[0] ? c.unsupported : k.unsupported);
		rc = -1;
	} else if (rc == 0 && profile_name != NULL && !c.found && !k.found) {
		snprintf(why, whylen, "no profile %s in %s or %s", name, cred_path ? cred_path : "(no HOME)",
		    conf_path ? conf_path : "(no HOME)");
		rc = -1;
	}
	profile_clear(&c);
	profile_clear(&k);
	free(cred_path);
	free(conf_path);
	if (rc < 0 || ch->ak != NULL)
		return rc;

	const char *tf = cred_env("AWS_WEB_IDENTITY_TOKEN_FILE"), *role = cred_env("AWS_ROLE_ARN");
	if (tf != NULL || role != NULL) {
		if (tf == NULL || role == NULL) {
			snprintf(why, whylen, "AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN must be set together");
			return -1;
		}
		ch->src = SRC_WEB;
		snprintf(ch->what, sizeof(ch->what), "web identity (role %.300s)", role);
		const char *sn = cred_env("AWS_ROLE_SESSION_NAME");
		if ((ch->token_file = strdup(tf)) == NULL || (ch->role_arn = strdup(role)) == NULL ||
		    (ch->session_name = strdup(sn ? sn : "mcpd")) == NULL)
			goto oom;
		return 0;
	}
	const char *rel = cred_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = cred_env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	if (rel != NULL || full != NULL) {
		ch->src = SRC_ECS;
		if (rel != NULL) {
			if (asprintf(&ch->url, "%s%s%s", ECS_HOST, rel[0] == '/' ? "" : "/", rel) < 0) {
				ch->url = NULL;
				goto oom;
			}
		} else {
			/* Plain http only to the container agents' addresses or
			 * loopback, as the SDKs allow. */
			int ok = strncasecmp(full, "https://", 8) == 0 || fetch_url_loopback(full) ||
			    strncmp(full, "http://169.254.170.2/", 21) == 0 || strncmp(full, "http://169.254.170.2:", 21) == 0 ||
			    strncmp(full, "http://169.254.170.23/", 22) == 0 || strncmp(full, "http://[fd00:ec2::23]", 21) == 0;
			if (!ok) {
				snprintf(why, whylen, "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, a loopback address, "
				    "or the container agent's address");
				return -1;
			}
			if ((ch->url = strdup(full)) == NULL)
				goto oom;
			const char *atf = cred_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
			const char *at = cred_env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
			if ((atf != NULL && (ch->auth_token_file = strdup(atf)) == NULL) ||
			    (atf == NULL && at != NULL && (ch->auth_token = strdup(at)) == NULL))
				goto oom;
		}
		snprintf(ch->what, sizeof(ch->what), "the container credentials endpoint %.300s", ch->url);
		return 0;
	}
	const char *off = cred_env("AWS_EC2_METADATA_DISABLED");
	if (off != NULL && strcasecmp(off, "true") == 0) {
		snprintf(why, whylen, "no AWS credentials: none in the environment, no profile %s with keys, no web "
		    "identity or container endpoint, and instance metadata is disabled (AWS_EC2_METADATA_DISABLED)", name);
		return -1;
	}
	const char *ep = cred_env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	ch->src = SRC_IMDS;
	if ((ch->imds = strdup(ep ? ep : IMDS_DEFAULT)) == NULL)
		goto oom;
	size_t n = strlen(ch->imds);
	while (n > 0 && ch->imds[n - 1] == '/')
		ch->imds[--n] = '\0';
	snprintf(ch->what, sizeof(ch->what), "EC2 instance metadata (%.300s)", ch->imds);
	return 0;
oom:
	snprintf(why, whylen, "out of memory");
	return -1;
}

static void
chain_clear(struct aws_chain *ch)
{
	cred_wipe_free(&ch->ak);
	cred_wipe_free(&ch->sk);
	cred_wipe_free(&ch->tok);
	free(ch->token_file);
	free(ch->role_arn);
	free(ch->session_name);
	free(ch->url);
	cred_wipe_free(&ch->auth_token);
	free(ch->auth_token_file);
	free(ch->imds);
	cred_wipe_free(&ch->imds_token);
	free(ch->imds_role);
	ch->token_file = ch->role_arn = ch->session_name = ch->url = ch->auth_token_file = NULL;
	ch->imds = ch->imds_role = NULL;
}

int
aws_creds_probe(const char *profile, char *what, size_t whatlen, char *region, size_t regionlen,
    char *why, size_t whylen)
{
	struct aws_chain ch;
	memset(&ch, 0, sizeof(ch));
	int rc = find(&ch, profile, why, whylen);
	if (rc == 0)
		snprintf(what, whatlen, "%s", ch.what);
	snprintf(region, regionlen, "%s", ch.region);
	chain_clear(&ch);
	return rc;
}

struct aws_chain *
aws_chain_new(struct fetcher *f, const char *profile, const char *region, const struct mcpd_host *host,
    char *err, size_t errlen)
{
	struct aws_chain *ch = calloc(1, sizeof(*ch));
	if (ch == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ch->f = f;
	ch->host = host;
	ch->tail = &ch->waiters;
	if (find(ch, profile, err, errlen) < 0) {
		chain_clear(ch);
		free(ch);
		return NULL;
	}
	if (region != NULL && *region != '\0')
		snprintf(ch->region, sizeof(ch->region), "%s", region);
	if (ch->src == SRC_ENV || ch->src == SRC_FILE)
		say(ch, MCPD_LOG_INFO, "aws: credentials from %s", ch->what);
	return ch;
}

const char *
aws_chain_source(const struct aws_chain *ch)
{
	return ch->what;
}

static void
fail_waiters(struct aws_chain *ch, const char *why)
{
	struct waiter *w = ch->waiters;
	ch->waiters = NULL;
	ch->tail = &ch->waiters;
	ch->depth++;
	while (w != NULL) {
		struct waiter *next = w->next;
		if (!ch->doomed)
			w->cb(w->arg, NULL, why);
		free(w);
		w = next;
	}
	if (--ch->depth == 0 && ch->doomed)
		aws_chain_free(ch);
}

void
aws_chain_free(struct aws_chain *ch)
{
	if (ch == NULL)
		return;
	/* Waiters hear nothing more: their owners are going too. */
	while (ch->waiters != NULL) {
		struct waiter *w = ch->waiters;
		ch->waiters = w->next;
		free(w);
	}
	if (ch->depth > 0) {
		ch->doomed = 1;
		return;
	}
	chain_clear(ch);
	free(ch);
}

/* Still good for a call: not within the last tenth of their life (at
 * most 10 s) before they expire, so that a signed call does not reach
 * the service with credentials that lapsed on the way (tokcache.h's
 * rule). Keys with no expiry are always good. */
static int
usable(const struct aws_chain *ch, uint64_t now)
{
	return ch->ak != NULL && (ch->expires_ms == 0 || tokcache_usable(ch->obtained_ms, ch->expires_ms, now));
}

/* Time to fetch new ones: in the second half of their life, or the last
 * 5 minutes of it. */
static int
due(const struct aws_chain *ch, uint64_t now)
{
	return ch->ak == NULL || (ch->expires_ms != 0 && tokcache_due(ch->obtained_ms, ch->expires_ms, now));
}

static void
serve_waiters(struct aws_chain *ch)
{
	struct waiter *w = ch->waiters;
	ch->waiters = NULL;
	ch->tail = &ch->waiters;
	ch->depth++;
	while (w != NULL) {
		struct waiter *next = w->next;
		struct aws_creds c = { ch->ak, ch->sk, ch->tok, ch->expires_ms };
		if (!ch->doomed)
			w->cb(w->arg, &c, NULL);
		free(w);
		w = next;
	}
	if (--ch->depth == 0 && ch->doomed)
		aws_chain_free(ch);
}

/* A fetch ended: new keys (taken), or why not. */
static void
fetched(struct aws_chain *ch, char *ak, char *sk, char *tok, uint64_t expires, const char *why)
{
	ch->fetching = 0;
	if (why != NULL) {
		cred_wipe_free(&ak);
		cred_wipe_free(&sk);
		cred_wipe_free(&tok);
		ch->failed_at = mono_ms();
		snprintf(ch->last_error, sizeof(ch->last_error), "credentials from %s: %s", ch->what, why);
		if (usable(ch, real_ms())) {
			say(ch, MCPD_LOG_WARN, "aws: cannot renew the %s; the current ones stay in use until they expire",
			    ch->last_error);
			serve_waiters(ch);
			return;
		}
		say(ch, MCPD_LOG_ERROR, "aws: %s", ch->last_error);
		char msg[sizeof(ch->last_error)];
		snprintf(msg, sizeof(msg), "%s", ch->last_error);
		fail_waiters(ch, msg);
		return;
	}
	int first = ch->ak == NULL || ch->last_error[0] != '\0';
	cred_wipe_free(&ch->ak);
	cred_wipe_free(&ch->sk);
	cred_wipe_free(&ch->tok);
	ch->ak = ak;
	ch->sk = sk;
	ch->tok = tok;
	ch->expires_ms = expires;
	ch->obtained_ms = real_ms();
	ch->last_error[0] = '\0';
	if (first)
		say(ch, MCPD_LOG_INFO, "aws: credentials from %s%s", ch->what, expires ? " (temporary, renewed before "
		    "they expire)" : "");
	serve_waiters(ch);
}

/* {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}: ECS and IMDS. */
static void
take_json(struct aws_chain *ch, const struct fetch_result *r)
{
	char why[300];
	if (r->error != NULL || r->status != 200) {
		if (r->error != NULL)
			snprintf(why, sizeof(why), "%s", r->error);
		else
			snprintf(why, sizeof(why), "HTTP status %ld", r->status);
		fetched(ch, NULL, NULL, NULL, 0, why);
		return;
	}
	cJSON *j = cJSON_ParseWithLength(r->body, r->len);
	const cJSON *ak = cJSON_GetObjectItemCaseSensitive(j, "AccessKeyId");
	const cJSON *sk = cJSON_GetObjectItemCaseSensitive(j, "SecretAccessKey");
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "Token");
	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(j, "Expiration");
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "Code");
	if (cJSON_IsString(code) && strcmp(code->valuestring, "Success") != 0) {
		snprintf(why, sizeof(why), "the endpoint answered Code %.100s", code->valuestring);
		cJSON_Delete(j);
		fetched(ch, NULL, NULL, NULL, 0, why);
		return;
	}
	if (!cJSON_IsString(ak) || !cJSON_IsString(sk) || *ak->valuestring == '\0' || *sk->valuestring == '\0') {
		cJSON_Delete(j);
		fetched(ch, NULL, NULL, NULL, 0, "the answer has no AccessKeyId and SecretAccessKey");
		return;
	}
	uint64_t expires = cJSON_IsString(exp) ? isotime_parse_ms(exp->valuestring) : 0;
	char *a = strdup(ak->valuestring), *s = strdup(sk->valuestring);
	int has_token = cJSON_IsString(tok) && *tok->valuestring;
	char *t = has_token ? strdup(tok->valuestring) : NULL;
	OPENSSL_cleanse(sk->valuestring, strlen(sk->valuestring));
	if (cJSON_IsString(tok))
		OPENSSL_cleanse(tok->valuestring, strlen(tok->valuestring));
	cJSON_Delete(j);
	OPENSSL_cleanse((char *)r->body, r->len);
	if (a == NULL || s == NULL || (has_token && t == NULL))
		fetched(ch, a, s, t, 0, "out of memory");
	else
		fetched(ch, a, s, t, expires, NULL);
}

static void
sts_done(void *arg, const struct fetch_result *r)
{
	struct aws_chain *ch = arg;
	char why[600];
	if (r->error != NULL) {
		fetched(ch, NULL, NULL, NULL, 0, r->error);
		return;
	}
	if (r->status != 200) {
		char code[128], msg[300];
		aws_xml_text(r->body, "Code", code, sizeof(code));
		aws_xml_text(r->body, "Message", msg, sizeof(msg));
		snprintf(why, sizeof(why), "STS refused AssumeRoleWithWebIdentity (HTTP %ld): %s%s%s", r->status,
		    code[0] ? code : "no error code", msg[0] ? ": " : "", msg);
		fetched(ch, NULL, NULL, NULL, 0, why);
		return;
	}
	char *a = aws_xml_dup(r->body, "AccessKeyId"), *s = aws_xml_dup(r->body, "SecretAccessKey");
	char *t = aws_xml_dup(r->body, "SessionToken"), *e = aws_xml_dup(r->body, "Expiration");
	uint64_t expires = e ? isotime_parse_ms(e) : 0;
	free(e);
	OPENSSL_cleanse((char *)r->body, r->len);
	if (a == NULL || s == NULL || t == NULL) {
		fetched(ch, a, s, t, 0, "the STS answer has no credentials");
		return;
	}
	fetched(ch, a, s, t, expires ? expires : real_ms() + 900000, NULL);
}

static const char *
sts_url(const struct aws_chain *ch, char *buf, size_t len)
{
	const char *ep = cred_env("AWS_ENDPOINT_URL_STS");
	if (ep == NULL)
		ep = cred_env("AWS_ENDPOINT_URL");
	if (ep != NULL)
		snprintf(buf, len, "%s", ep);
	else if (ch->region[0])
		snprintf(buf, len, "https://sts.%s.amazonaws.com/", ch->region);
	else
		snprintf(buf, len, "https://sts.amazonaws.com/");
	return buf;
}

static void
fetch_web(struct aws_chain *ch)
{
	size_t len;
	char err[600], url[512];
	char *token = cred_slurp(ch->token_file, MAX_FILE, &len);
	if (token == NULL) {
		snprintf(err, sizeof(err), "cannot read the token file %.300s: %s", ch->token_file, strerror(errno));
		fetched(ch, NULL, NULL, NULL, 0, err);
		return;
	}
	char *body = NULL;
	int ok = fetch_form_add(&body, "Action", "AssumeRoleWithWebIdentity") == 0 &&
	    fetch_form_add(&body, "Version", "2011-06-15") == 0 &&
	    fetch_form_add(&body, "RoleArn", ch->role_arn) == 0 &&
	    fetch_form_add(&body, "RoleSessionName", ch->session_name) == 0 &&
	    fetch_form_add(&body, "WebIdentityToken", cred_trim(token)) == 0;
	OPENSSL_cleanse(token, len);
	free(token);
	if (!ok) {
		cred_wipe_free(&body);
		fetched(ch, NULL, NULL, NULL, 0, "out of memory");
		return;
	}
	/* The call is not signed: the token is the proof. */
	static const char *const headers[] = { "Content-Type: application/x-www-form-urlencoded",
	    "Accept: application/xml", NULL };
	struct fetch_request rq = { "POST", headers, body, strlen(body), 0 };
	struct fetch_opts o = { FETCH_TIMEOUT_MS, MAX_ANSWER, NULL, 0 };
	int rc = fetch_request(ch->f, sts_url(ch, url, sizeof(url)), &rq, &o, sts_done, ch, err, sizeof(err));
	cred_wipe_free(&body);
	if (rc < 0)
		fetched(ch, NULL, NULL, NULL, 0, err);
}

static void
ecs_done(void *arg, const struct fetch_result *r)
{
	take_json(arg, r);
}

static void
fetch_ecs(struct aws_chain *ch)
{
	char err[600], *auth = NULL;
	if (ch->auth_token_file != NULL) {
		size_t len;
		char *t = cred_slurp(ch->auth_token_file, MAX_FILE, &len);
		if (t == NULL) {
			snprintf(err, sizeof(err), "cannot read %.300s: %s", ch->auth_token_file, strerror(errno));
			fetched(ch, NULL, NULL, NULL, 0, err);
			return;
		}
		if (asprintf(&auth, "Authorization: %s", cred_trim(t)) < 0)
			auth = NULL;
		OPENSSL_cleanse(t, len);
		free(t);
	} else if (ch->auth_token != NULL && asprintf(&auth, "Authorization: %s", ch->auth_token) < 0) {
		auth = NULL;
	}
	if ((ch->auth_token_file != NULL || ch->auth_token != NULL) && auth == NULL) {
		fetched(ch, NULL, NULL, NULL, 0, "out of memory");
		return;
	}
	if (auth != NULL && strpbrk(auth, "\r\n") != NULL) {
		cred_wipe_free(&auth);
		fetched(ch, NULL, NULL, NULL, 0, "the authorization token has a line break");
		return;
	}
	const char *headers[] = { "Accept: application/json", auth, NULL };
	struct fetch_request rq = { "GET", headers, NULL, 0, 1 };
	struct fetch_opts o = { FETCH_TIMEOUT_MS, MAX_ANSWER, NULL, 0 };
	int rc = fetch_request(ch->f, ch->url, &rq, &o, ecs_done, ch, err, sizeof(err));
	cred_wipe_free(&auth);
	if (rc < 0)
		fetched(ch, NULL, NULL, NULL, 0, err);
}

static void imds_next(struct aws_chain *ch);

static void
imds_done(void *arg, const struct fetch_result *r)
{
	struct aws_chain *ch = arg;
	char why[300];
	if (ch->imds_step == 2) {
		ch->imds_step = 0;
		take_json(ch, r);
		return;
	}
	if (r->error != NULL || r->status != 200) {
		/* A token that expired meanwhile: start again with a new one. */
		if (r->error == NULL && r->status == 401 && ch->imds_token != NULL && ch->imds_step == 1) {
			cred_wipe_free(&ch->imds_token);
			ch->imds_step = 0;
			imds_next(ch);
			return;
		}
		snprintf(why, sizeof(why), "%s: %s", ch->imds_step == 0 ? "the session token" : "the role name",
		    r->error ? r->error : r->status == 404 ? "HTTP status 404 (no role attached to the instance?)" :
		    "HTTP status not 200");
		if (r->error == NULL && r->status != 404)
			snprintf(why, sizeof(why), "%s: HTTP status %ld", ch->imds_step == 0 ? "the session token" :
			    "the role name", r->status);
		ch->imds_step = 0;
		fetched(ch, NULL, NULL, NULL, 0, why);
		return;
	}
	if (ch->imds_step == 0) {
		cred_wipe_free(&ch->imds_token);
		ch->imds_token = strndup(r->body, r->len);
		if (ch->imds_token != NULL)
			cred_trim(ch->imds_token);
		OPENSSL_cleanse((char *)r->body, r->len);
		ch->imds_step = 1;
	} else {
		free(ch->imds_role);
		size_t n = strcspn(r->body, "\r\n");
		ch->imds_role = strndup(r->body, n);
		if (ch->imds_role == NULL || *ch->imds_role == '\0' || strpbrk(ch->imds_role, "/?#% ") != NULL) {
			ch->imds_step = 0;
			fetched(ch, NULL, NULL, NULL, 0, "instance metadata names no usable role");
			return;
		}
		ch->imds_step = 2;
	}
	imds_next(ch);
}

/* Step 0: PUT /latest/api/token; 1: the role's name; 2: its keys. */
static void
imds_next(struct aws_chain *ch)
{
	char url[600], err[300], *tokhdr = NULL;
	if (ch->imds_step == 0 && ch->imds_token != NULL)
		ch->imds_step = ch->imds_role != NULL ? 2 : 1;
	if (ch->imds_token != NULL && asprintf(&tokhdr, "X-aws-ec2-metadata-token: %s", ch->imds_token) < 0)
		tokhdr = NULL;
	if (ch->imds_step > 0 && (tokhdr == NULL || strpbrk(ch->imds_token, "\r\n") != NULL)) {
		cred_wipe_free(&tokhdr);
		ch->imds_step = 0;
		fetched(ch, NULL, NULL, NULL, 0, "no usable session token");
		return;
	}
	const char *put_headers[] = { "X-aws-ec2-metadata-token-ttl-seconds: 21600", NULL };
	const char *get_headers[] = { tokhdr, NULL };
	struct fetch_request rq = { ch->imds_step == 0 ? "PUT" : "GET", ch->imds_step == 0 ? put_headers : get_headers,
	    NULL, 0, 1 };
	if (ch->imds_step == 0)
		snprintf(url, sizeof(url), "%s/latest/api/token", ch->imds);
	else if (ch->imds_step == 1)
		snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/", ch->imds);
	else
		snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/%s", ch->imds, ch->imds_role);
	struct fetch_opts o = { IMDS_TIMEOUT_MS, MAX_ANSWER, NULL, 0 };
	int rc = fetch_request(ch->f, url, &rq, &o, imds_done, ch, err, sizeof(err));
	cred_wipe_free(&tokhdr);
	if (rc < 0) {
		ch->imds_step = 0;
		fetched(ch, NULL, NULL, NULL, 0, err);
	}
}

static void
start_fetch(struct aws_chain *ch)
{
	if (ch->fetching)
		return;
	ch->fetching = 1;
	switch (ch->src) {
	case SRC_WEB:
		fetch_web(ch);
		break;
	case SRC_ECS:
		fetch_ecs(ch);
		break;
	case SRC_IMDS:
		/* The token is kept (6 hours); the role is asked again. */
		free(ch->imds_role);
		ch->imds_role = NULL;
		ch->imds_step = 0;
		imds_next(ch);
		break;
	default:
		ch->fetching = 0;
		break;
	}
}

void
aws_creds_get(struct aws_chain *ch, aws_creds_cb *cb, void *arg)
{
	uint64_t now = real_ms();
	if (ch->src == SRC_ENV || ch->src == SRC_FILE || (usable(ch, now) && !due(ch, now))) {
		struct aws_creds c = { ch->ak, ch->sk, ch->tok, ch->expires_ms };
		cb(arg, &c, NULL);
		return;
	}
	if (usable(ch, now)) {
		/* Renewed in the background; these serve meanwhile. A renewal
		 * that failed is tried again after a pause. */
		if (!ch->fetching && mono_ms() - ch->failed_at >= RETRY_AFTER_FAILURE_MS)
			start_fetch(ch);
		struct aws_creds c = { ch->ak, ch->sk, ch->tok, ch->expires_ms };
		cb(arg, &c, NULL);
		return;
	}
	if (!ch->fetching && ch->failed_at != 0 && mono_ms() - ch->failed_at < RETRY_AFTER_FAILURE_MS) {
		cb(arg, NULL, ch->last_error);
		return;
	}
	struct waiter *w = malloc(sizeof(*w));
	if (w == NULL) {
		cb(arg, NULL, "out of memory");
		return;
	}
	w->cb = cb;
	w->arg = arg;
	w->next = NULL;
	*ch->tail = w;
	ch->tail = &w->next;
	start_fetch(ch);
}

void
aws_creds_invalidate(struct aws_chain *ch)
{
	if (ch->src == SRC_ENV || ch->src == SRC_FILE || ch->ak == NULL)
		return;
	ch->expires_ms = real_ms();     /* no longer usable: the next get fetches */
	ch->failed_at = 0;
}
