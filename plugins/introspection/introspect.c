/* An RFC 7662 introspection answer against the plugin's policy. */
#include "introspect.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void say(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Checked before parsing, so that the parser never recurses deeper. */
static int
depth_ok(const char *s, size_t len)
{
	int depth = 0, quoted = 0;
	for (size_t i = 0; i < len; i++) {
		if (quoted) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				quoted = 0;
		} else if (s[i] == '"') {
			quoted = 1;
		} else if ((s[i] == '{' || s[i] == '[') && ++depth > INTROSPECT_MAX_DEPTH) {
			return 0;
		} else if (s[i] == '}' || s[i] == ']') {
			depth--;
		}
	}
	return 1;
}

static cJSON *
parse(const char *json, size_t len)
{
	return depth_ok(json, len) ? cJSON_ParseWithLength(json, len) : NULL;
}

/* Two members of the same name: parsers disagree on which counts. */
static int
duplicates(const cJSON *o)
{
	for (const cJSON *a = o->child; a != NULL; a = a->next)
		for (const cJSON *b = a->next; b != NULL; b = b->next)
			if (strcmp(a->string, b->string) == 0)
				return 1;
	return 0;
}

/* A name fit for logs and session ownership: printable, not too long. */
static int
name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > INTROSPECT_MAX_STRING)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

/* A time member: absent (0), a number (1, in *t), or anything else (-1). */
static int
get_time(const cJSON *o, const char *name, int64_t *t)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 || v->valuedouble > 1e15)
		return -1;
	*t = (int64_t)v->valuedouble;
	return 1;
}

/* RFC 7662 2.2 token_type, RFC 8693 3 token type identifiers: only what
 * is an access token passes. */
static int
access_token_type(const char *t)
{
	static const char *const ok[] = { "bearer", "access_token", "urn:ietf:params:oauth:token-type:access_token",
	    NULL };
	for (const char *const *k = ok; *k; k++)
		if (strcasecmp(t, *k) == 0)
			return 1;
	return 0;
}

static int
audience_ok(const struct introspect_policy *p, const cJSON *aud, char *err, size_t errlen)
{
	if (p->naudiences == 0)
		return 1;
	if (aud == NULL || cJSON_IsNull(aud)) {
		if (!p->audience_required)
			return 1;
		say(err, errlen, "no audience (aud) in the introspection answer");
		return 0;
	}
	const cJSON *one = cJSON_IsString(aud) ? aud : NULL;
	if (one == NULL && !cJSON_IsArray(aud)) {
		say(err, errlen, "aud is neither a string nor an array");
		return 0;
	}
	for (const cJSON *a = one ? one : aud->child; a != NULL; a = one ? NULL : a->next) {
		if (!cJSON_IsString(a))
			continue;
		for (size_t i = 0; i < p->naudiences; i++)
			if (strcmp(a->valuestring, p->audiences[i]) == 0)
				return 1;
	}
	say(err, errlen, "wrong audience (the token is meant for another resource)");
	return 0;
}

/* scope: a space-separated string (RFC 7662 2.2), its words kept as they
 * are, each made of RFC 6749 3.3 scope-token characters. */
static char *
scopes_of(const cJSON *o, char *err, size_t errlen, int *bad)
{
	*bad = 0;
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "scope");
	if (s == NULL || cJSON_IsNull(s))
		return strdup("");
	if (!cJSON_IsString(s)) {
		say(err, errlen, "scope is not a string");
		*bad = 1;
		return NULL;
	}
	size_t n = strlen(s->valuestring);
	char *out = malloc(n + 1), *w = out;
	if (out == NULL)
		return NULL;
	for (const char *p = s->valuestring; *p;) {
		while (*p == ' ')
			p++;
		size_t l = strcspn(p, " ");
		if (l == 0)
			break;
		for (size_t i = 0; i < l; i++) {
			unsigned char c = (unsigned char)p[i];
			if (c < 0x21 || c > 0x7e || c == '"' || c == '\\') {
				say(err, errlen, "scope holds a character that no scope may hold");
				*bad = 1;
				free(out);
				return NULL;
			}
		}
		if (w != out)
			*w++ = ' ';
		memcpy(w, p, l);
		w += l;
		p += l;
	}
	*w = '\0';
	return out;
}

static int
has_scope(const char *scopes, const char *want)
{
	size_t wl = strlen(want);
	for (const char *p = scopes; *p;) {
		size_t l = strcspn(p, " ");
		if (l == wl && memcmp(p, want, l) == 0)
			return 1;
		p += l;
		while (*p == ' ')
			p++;
	}
	return 0;
}

void
introspect_principal_clear(struct introspect_principal *pr)
{
	free(pr->user);
	free(pr->client_id);
	free(pr->scopes);
	memset(pr, 0, sizeof(*pr));
}

enum introspect_result
introspect_check(const struct introspect_policy *p, const char *json, size_t len, int64_t now,
    struct introspect_principal *out, char *err, size_t errlen)
{
	enum introspect_result rc = INTROSPECT_DENIED;
	memset(out, 0, sizeof(*out));
	cJSON *o = parse(json, len);
	if (o == NULL || !cJSON_IsObject(o)) {
		say(err, errlen, "the introspection answer is not a JSON object");
		rc = INTROSPECT_BAD_ANSWER;
		goto done;
	}
	/* Bounded, since duplicates() compares every pair. */
	if (cJSON_GetArraySize(o) > INTROSPECT_MAX_MEMBERS || duplicates(o)) {
		say(err, errlen, "the introspection answer has a member twice, or more than %d members",
		    INTROSPECT_MAX_MEMBERS);
		rc = INTROSPECT_BAD_ANSWER;
		goto done;
	}
	const cJSON *active = cJSON_GetObjectItemCaseSensitive(o, "active");
	if (!cJSON_IsBool(active)) {
		say(err, errlen, "the introspection answer has no boolean \"active\"");
		rc = INTROSPECT_BAD_ANSWER;
		goto done;
	}
	if (!cJSON_IsTrue(active)) {
		say(err, errlen, "the token is not active (unknown, expired or revoked)");
		goto done;
	}
	int64_t exp = 0, nbf = 0;
	int has_exp = get_time(o, "exp", &exp), has_nbf = get_time(o, "nbf", &nbf);
	if (has_exp < 0 || has_nbf < 0) {
		say(err, errlen, "%s is not a number of seconds", has_exp < 0 ? "exp" : "nbf");
		goto done;
	}
	if (has_exp && exp + p->skew <= now) {
		say(err, errlen, "the token expired");
		goto done;
	}
	if (has_nbf && nbf - p->skew > now) {
		say(err, errlen, "the token is not valid yet (nbf)");
		goto done;
	}
	const cJSON *tt = cJSON_GetObjectItemCaseSensitive(o, "token_type");
	if (tt != NULL && !cJSON_IsNull(tt)) {
		if (!cJSON_IsString(tt) || !access_token_type(tt->valuestring)) {
			say(err, errlen, "not an access token (token_type %.40s)", cJSON_IsString(tt) ? tt->valuestring : "?");
			goto done;
		}
	}
	/* A sender-constrained token (mTLS, DPoP) is only worth its proof,
	 * which mcpd does not check: taken as a plain bearer token it would
	 * lose what binds it. */
	if (cJSON_GetObjectItemCaseSensitive(o, "cnf") != NULL) {
		say(err, errlen, "the token is bound to a key (cnf), which mcpd does not check");
		goto done;
	}
	if (p->issuer != NULL) {
		const cJSON *iss = cJSON_GetObjectItemCaseSensitive(o, "iss");
		if (!cJSON_IsString(iss) || strcmp(iss->valuestring, p->issuer) != 0) {
			say(err, errlen, iss == NULL ? "no issuer (iss) in the introspection answer" : "wrong issuer");
			goto done;
		}
	}
	if (!audience_ok(p, cJSON_GetObjectItemCaseSensitive(o, "aud"), err, errlen))
		goto done;
	const cJSON *user = NULL;
	for (size_t i = 0; i < p->nuser_claims && user == NULL; i++) {
		const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, p->user_claims[i]);
		if (cJSON_IsString(u) && u->valuestring[0] != '\0')
			user = u;
	}
	if (user == NULL) {
		say(err, errlen, "no user (%s) in the introspection answer", p->nuser_claims ? p->user_claims[0] : "sub");
		goto done;
	}
	if (!name_ok(user->valuestring)) {
		say(err, errlen, "the user name is longer than %d bytes or holds control characters",
		    INTROSPECT_MAX_STRING);
		goto done;
	}
	const cJSON *client = cJSON_GetObjectItemCaseSensitive(o, "client_id");
	int bad;
	char *scopes = scopes_of(o, err, errlen, &bad);
	if (scopes == NULL) {
		if (!bad)
			say(err, errlen, "out of memory");
		rc = bad ? INTROSPECT_DENIED : INTROSPECT_BAD_ANSWER;
		goto done;
	}
	for (size_t i = 0; i < p->nrequired_scopes; i++)
		if (!has_scope(scopes, p->required_scopes[i])) {
			say(err, errlen, "the token lacks the required scope %s", p->required_scopes[i]);
			free(scopes);
			goto done;
		}
	out->scopes = scopes;
	out->user = strdup(user->valuestring);
	if (cJSON_IsString(client) && name_ok(client->valuestring))
		out->client_id = strdup(client->valuestring);
	out->expires_at = has_exp ? exp : 0;
	if (out->user == NULL || (cJSON_IsString(client) && name_ok(client->valuestring) && out->client_id == NULL)) {
		introspect_principal_clear(out);
		say(err, errlen, "out of memory");
		rc = INTROSPECT_BAD_ANSWER;
		goto done;
	}
	rc = INTROSPECT_OK;
done:
	cJSON_Delete(o);
	return rc;
}

void
introspect_oauth_error(const char *json, size_t len, char *buf, size_t buflen)
{
	buf[0] = '\0';
	cJSON *o = parse(json, len);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
	if (cJSON_IsString(e)) {
		/* Shown in logs: printable ASCII only. */
		size_t n = 0;
		for (const char *p = e->valuestring; *p && n + 1 < buflen && n < 64; p++)
			buf[n++] = *p > 0x20 && *p < 0x7f ? *p : '?';
		buf[n] = '\0';
	}
	cJSON_Delete(o);
}
