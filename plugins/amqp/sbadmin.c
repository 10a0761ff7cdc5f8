/*
 * Service Bus: the worker's subscription, made (or found) before each
 * connection with the management API's PUT (ATOM XML over HTTPS, the
 * same SAS key or token as $cbs, or a Bearer token from Entra ID; it
 * needs the Manage right). It keeps
 * the messages whose "to" is this worker or "all" (its default rule, a
 * SQL filter), deletes itself after five idle minutes (a worker that
 * died leaves nothing for long), and drops what waited over a minute.
 */
#include "amqp.h"

#include "azure_auth.h"
#include "clock.h"
#include "fetch.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SB_API "2021-05"

struct sbput {
	struct amqp *a;
	uint64_t gen;                       /* the connection attempt it is for */
	void (*done)(struct amqp *a, const char *err);
	struct sbput *next;                 /* in flight, in a->sb_pending */
};

void
sb_forget(struct amqp *a)
{
	while (a->sb_pending != NULL) {
		struct sbput *p = a->sb_pending;
		a->sb_pending = p->next;
		free(p);
	}
}

/* p is done: out of the list, freed, its caller told unless a newer
 * connection attempt runs. */
static void
put_end(struct sbput *p, const char *why)
{
	struct amqp *a = p->a;
	void (*done)(struct amqp *, const char *) = p->done;
	int stale = p->gen != a->gen;       /* that attempt timed out: a new one runs */
	for (struct sbput **pp = &a->sb_pending; *pp != NULL; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	free(p);
	if (!stale)
		done(a, why);
}

static void
put_done(void *arg, const struct fetch_result *r)
{
	struct sbput *p = arg;
	struct amqp *a = p->a;
	char why[400];
	if (r->error != NULL && r->status == 0) {
		snprintf(why, sizeof(why), "cannot make the subscription: %s", r->error);
		put_end(p, why);
	} else if (r->status == 200 || r->status == 201 || r->status == 409) {
		put_end(p, NULL);       /* 409: it is there already */
	} else {
		if (a->cred != NULL && r->status == 401)
			azure_token_invalidate(a->cred);    /* another, next time */
		snprintf(why, sizeof(why), "Service Bus refused to make the subscription %s/Subscriptions/%s%s "
		    "(HTTP %ld%s%.160s)", a->topic, a->prefix, a->me, r->status,
		    r->status == 401 || r->status == 403 ? ": the key or token needs the Manage right; " : ": ",
		    r->body ? r->body : "");
		put_end(p, why);
	}
}

/* The subscription's description: XML of our own, with nothing from
 * outside in it but the ids (letters, digits, '-', '_', '.'). */
static char *
description(const struct amqp *a)
{
	char *xml = NULL;
	if (asprintf(&xml, "<entry xmlns=\"http://www.w3.org/2005/Atom\"><content type=\"application/xml\">"
	    "<SubscriptionDescription xmlns:i=\"http://www.w3.org/2001/XMLSchema-instance\" "
	    "xmlns=\"http://schemas.microsoft.com/netservices/2010/10/servicebus/connect\">"
	    "<LockDuration>PT30S</LockDuration><DefaultMessageTimeToLive>PT1M</DefaultMessageTimeToLive>"
	    "<DefaultRuleDescription><Filter i:type=\"SqlFilter\"><SqlExpression>user.to IN ('%s', 'all')"
	    "</SqlExpression></Filter><Name>mcpd</Name></DefaultRuleDescription>"
	    "<AutoDeleteOnIdle>PT5M</AutoDeleteOnIdle></SubscriptionDescription></content></entry>", a->me) < 0)
		return NULL;
	return xml;
}

/* The PUT itself, with the Authorization header's value. */
static void
put_send(struct sbput *p, const char *authz)
{
	struct amqp *a = p->a;
	char err[300], why[400];
	char *url = NULL, *auth = NULL, *xml = description(a);
	if (xml == NULL || asprintf(&url, "%s/%s/subscriptions/%s%s?api-version=" SB_API, a->management_url,
	    a->topic, a->prefix, a->me) < 0 || asprintf(&auth, "Authorization: %s", authz) < 0) {
		auth = NULL;
		snprintf(why, sizeof(why), "out of memory");
		goto fail;
	}
	const char *headers[] = { auth, "Content-Type: application/atom+xml;type=entry;charset=utf-8", NULL };
	struct fetch_request rq = { .method = "PUT", .headers = headers, .body = xml, .body_len = strlen(xml) };
	struct fetch_opts o = { .timeout_ms = a->connect_timeout_ms, .max_bytes = 65536, .ca_file = a->ca_file };
	if (fetch_request(a->fetcher, url, &rq, &o, put_done, p, err, sizeof(err)) < 0) {
		snprintf(why, sizeof(why), "cannot make the subscription: %s", err);
		goto fail;
	}
	why[0] = '\0';
fail:
	if (auth != NULL) {
		OPENSSL_cleanse(auth, strlen(auth));
		free(auth);
	}
	free(url);
	free(xml);
	if (why[0] != '\0')
		put_end(p, why);
}

/* Entra ID's token for the PUT, at once or from the loop later. */
static void
put_entra_token(void *arg, const char *token, const char *why)
{
	struct sbput *p = arg;
	char buf[1024], *bearer = NULL;
	if (p->gen != p->a->gen) {
		put_end(p, NULL);       /* its attempt timed out while the token came: no PUT for it */
		return;
	}
	if (token == NULL) {
		snprintf(buf, sizeof(buf), "cannot make the subscription: no Entra ID token: %s", why);
		put_end(p, buf);
		return;
	}
	if (asprintf(&bearer, "Bearer %s", token) < 0) {
		put_end(p, "out of memory");
		return;
	}
	put_send(p, bearer);
	OPENSSL_cleanse(bearer, strlen(bearer));
	free(bearer);
}

void
sb_subscription(struct amqp *a, void (*done)(struct amqp *a, const char *err))
{
	char err[300], why[400];
	char *token = NULL, *resource = NULL, *authz = NULL;
	if (a->fetcher == NULL && (a->fetcher = fetcher_new(a->base, "mcpd-amqp", err, sizeof(err))) == NULL) {
		snprintf(why, sizeof(why), "cannot make the subscription: %s", err);
		done(a, why);
		return;
	}
	struct sbput *p = calloc(1, sizeof(*p));
	if (p == NULL) {
		done(a, "out of memory");
		return;
	}
	p->a = a;
	p->gen = a->gen;
	p->done = done;
	p->next = a->sb_pending;
	a->sb_pending = p;
	if (a->cred != NULL) {
		azure_token_get(a->cred, put_entra_token, p);
		return;
	}
	if (a->sas_key != NULL) {
		if (asprintf(&resource, "%s/%s", a->management_url, a->topic) < 0)
			resource = NULL;
		else
			token = sas_token(resource, a->sas_key_name, a->sas_key, real_ms() / 1000 + 600);
		if (token == NULL) {
			put_end(p, "out of memory");
			goto done;
		}
	} else if ((token = sb_read_token(a, why, sizeof(why))) == NULL) {
		put_end(p, why);
		goto done;
	}
	if (asprintf(&authz, "%s%s", strncmp(token, "SharedAccessSignature ", 22) == 0 ? "" : "Bearer ", token) < 0) {
		authz = NULL;
		put_end(p, "out of memory");
		goto done;
	}
	put_send(p, authz);
done:
	if (token != NULL)
		OPENSSL_cleanse(token, strlen(token));
	if (authz != NULL)
		OPENSSL_cleanse(authz, strlen(authz));
	free(token);
	free(authz);
	free(resource);
}
