#include "routes.h"

#include "../common/hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned
hash(const char *channel)
{
	return fnv1a(channel) % ROUTES_BUCKETS;
}

void
routes_init(struct routes *t, uint64_t ttl_ms)
{
	memset(t, 0, sizeof(*t));
	t->ttl_ms = ttl_ms;
}

static void
sent_free(struct routes *t, struct route_sent *m)
{
	t->sent_bytes -= strlen(m->body) + strlen(m->to);
	free(m->body);
	free(m->to);
	free(m);
}

/* Forgets what was sent before ROUTE_RECENT_MS ago. */
static void
trim(struct routes *t, struct route *r, uint64_t now)
{
	while (r->sent != NULL && r->sent->at + ROUTE_RECENT_MS < now) {
		struct route_sent *m = r->sent;
		r->sent = m->next;
		r->nsent--;
		sent_free(t, m);
	}
}

void
routes_drop(struct routes *t, struct route *r)
{
	for (struct route **pp = &t->buckets[hash(r->channel)]; *pp != NULL; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	while (r->sent != NULL) {
		struct route_sent *m = r->sent;
		r->sent = m->next;
		sent_free(t, m);
	}
	for (size_t i = 0; i < r->n; i++)
		free(r->holders[i]);
	free(r->channel);
	free(r);
	t->n--;
}

void
routes_clear(struct routes *t)
{
	for (size_t b = 0; b < ROUTES_BUCKETS; b++)
		while (t->buckets[b] != NULL)
			routes_drop(t, t->buckets[b]);
}

struct route *
routes_get(struct routes *t, const char *channel, uint64_t now)
{
	for (struct route *r = t->buckets[hash(channel)]; r != NULL; r = r->next)
		if (strcmp(r->channel, channel) == 0) {
			if (now >= r->expires) {
				routes_drop(t, r);
				return NULL;
			}
			return r;
		}
	return NULL;
}

struct route *
routes_new(struct routes *t, const char *channel, uint64_t now)
{
	if (t->n >= ROUTES_MAX && now >= t->swept + 1000) {
		t->swept = now;
		for (size_t b = 0; b < ROUTES_BUCKETS; b++)
			for (struct route *r = t->buckets[b], *next; r != NULL; r = next) {
				next = r->next;
				if (now >= r->expires)
					routes_drop(t, r);
			}
	}
	if (t->n >= ROUTES_MAX)
		return NULL;
	struct route *r = calloc(1, sizeof(*r));
	if (r == NULL || (r->channel = strdup(channel)) == NULL) {
		free(r);
		return NULL;
	}
	r->known_at = r->expires = UINT64_MAX;
	unsigned h = hash(channel);
	r->next = t->buckets[h];
	t->buckets[h] = r;
	t->n++;
	return r;
}

void
route_asked(const struct routes *t, struct route *r, uint64_t known_at)
{
	r->known_at = known_at;
	r->expires = known_at + t->ttl_ms;
}

enum route_to
route_to(const struct route *r, uint64_t now, char *to, size_t len)
{
	if (now < r->known_at || r->many)
		return ROUTE_ALL;
	if (r->n == 0)
		return ROUTE_NONE;
	size_t at = 0;
	for (size_t i = 0; i < r->n; i++) {
		int k = snprintf(to + at, len - at, "%s\"%s\"", i ? "," : "[", r->holders[i]);
		if (k < 0 || (size_t)k >= len - at)
			return ROUTE_ALL;
		at += (size_t)k;
	}
	if (at + 2 > len)
		return ROUTE_ALL;
	memcpy(to + at, "]", 2);
	return ROUTE_SOME;
}

/* A queue name (what workers name themselves): nothing a "to" value or a
 * filter policy would read otherwise. */
static int
queue_name(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n <= ROUTE_NAME_MAX &&
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") == n;
}

int
route_add(struct route *r, const char *holder)
{
	if (!queue_name(holder))
		return -1;
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->holders[i], holder) == 0)
			return 0;
	if (r->many)
		return 0;
	if (r->n == ROUTE_HOLDERS) {
		r->many = 1;
		return 1;
	}
	if ((r->holders[r->n] = strdup(holder)) == NULL)
		return -1;
	r->n++;
	return 1;
}

int
route_remove(struct route *r, const char *holder)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->holders[i], holder) == 0) {
			free(r->holders[i]);
			r->holders[i] = r->holders[--r->n];
			return 1;
		}
	return 0;
}

int
route_sent(struct routes *t, struct route *r, uint64_t now, const char *body, int enc, const char *to)
{
	trim(t, r, now);
	size_t size = strlen(body) + strlen(to);
	if (t->sent_bytes + size > ROUTES_RECENT_BYTES)
		return -1;
	struct route_sent *m = calloc(1, sizeof(*m));
	if (m == NULL || (m->body = strdup(body)) == NULL || (m->to = strdup(to)) == NULL) {
		if (m != NULL)
			free(m->body);
		free(m);
		return -1;
	}
	m->at = now;
	m->enc = enc;
	t->sent_bytes += size;
	if (r->nsent == ROUTE_RECENT) {
		struct route_sent *old = r->sent;
		r->sent = old->next;
		r->nsent--;
		sent_free(t, old);
	}
	struct route_sent **pp = &r->sent;
	while (*pp != NULL)
		pp = &(*pp)->next;
	*pp = m;
	r->nsent++;
	return 0;
}

void
route_missed(struct routes *t, struct route *r, const char *holder, uint64_t now,
    void (*fn)(void *arg, const struct route_sent *m), void *arg)
{
	char quoted[ROUTE_NAME_MAX + 3];
	trim(t, r, now);
	snprintf(quoted, sizeof(quoted), "\"%s\"", holder);
	for (struct route_sent *m = r->sent; m != NULL; m = m->next)
		if (strstr(m->to, quoted) == NULL)
			fn(arg, m);
}
