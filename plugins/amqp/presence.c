#include "presence.h"

#include <stdlib.h>
#include <string.h>

static unsigned
hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h % PRESENCE_BUCKETS;
}

int
presence_id_ok(const char *id)
{
	size_t n = strlen(id);
	return n > 0 && n <= PRESENCE_ID_MAX &&
	    strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

static struct peer *
find_peer(const struct presence *p, const char *id)
{
	for (struct peer *x = p->peers; x != NULL; x = x->next)
		if (strcmp(x->id, id) == 0)
			return x;
	return NULL;
}

struct peer *
presence_peer(struct presence *p, const char *id, uint64_t now)
{
	struct peer *x = find_peer(p, id);
	if (x != NULL) {
		x->seen = now;
		return x;
	}
	if (!presence_id_ok(id) || p->npeers >= PRESENCE_PEERS_MAX || (x = calloc(1, sizeof(*x))) == NULL)
		return NULL;
	strcpy(x->id, id);
	x->seen = now;
	x->next = p->peers;
	p->peers = x;
	p->npeers++;
	return x;
}

static void
held_free(struct presence *p, struct held **pp)
{
	struct held *h = *pp;
	*pp = h->next;
	h->peer->nheld--;
	free(h->channel);
	free(h);
	p->n--;
}

static void
quiet_drop(struct presence *p, struct quiet **qq)
{
	struct quiet *q = *qq;
	*qq = q->next;
	free(q->channel);
	free(q);
	p->nquiet--;
}

int
presence_quiet(struct presence *p, const char *channel, uint64_t now)
{
	for (struct quiet **qq = &p->quiet[hash(channel)]; *qq != NULL; qq = &(*qq)->next)
		if (strcmp((*qq)->channel, channel) == 0) {
			if ((*qq)->until > now)
				return 1;
			quiet_drop(p, qq);
			return 0;
		}
	return 0;
}

static void
unquiet(struct presence *p, const char *channel)
{
	for (struct quiet **qq = &p->quiet[hash(channel)]; *qq != NULL; qq = &(*qq)->next)
		if (strcmp((*qq)->channel, channel) == 0) {
			quiet_drop(p, qq);
			return;
		}
}

void
presence_set_quiet(struct presence *p, const char *channel, uint64_t until)
{
	unsigned b = hash(channel);
	for (struct quiet *q = p->quiet[b]; q != NULL; q = q->next)
		if (strcmp(q->channel, channel) == 0) {
			q->until = until;
			return;
		}
	if (p->nquiet >= PRESENCE_QUIET_MAX) {
		/* Drop the expired ones of this bucket, at least. */
		for (struct quiet **qq = &p->quiet[b]; *qq != NULL;)
			if ((*qq)->until + 1 < until)
				quiet_drop(p, qq);
			else
				qq = &(*qq)->next;
		if (p->nquiet >= PRESENCE_QUIET_MAX)
			return;
	}
	struct quiet *q = calloc(1, sizeof(*q));
	if (q == NULL || (q->channel = strdup(channel)) == NULL) {
		free(q);
		return;
	}
	q->until = until;
	q->next = p->quiet[b];
	p->quiet[b] = q;
	p->nquiet++;
}

int
presence_set(struct presence *p, const char *id, const char *channel, uint32_t count, uint64_t now)
{
	if (count > 0)
		unquiet(p, channel);
	struct peer *x = presence_peer(p, id, now);
	if (x == NULL) {
		if (count > 0)
			p->overflowed = 1;
		return count > 0 ? -1 : 0;
	}
	struct held **pp = &p->buckets[hash(channel)];
	for (; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->peer == x && strcmp((*pp)->channel, channel) == 0)
			break;
	if (*pp != NULL) {
		if (count == 0)
			held_free(p, pp);
		else
			(*pp)->count = count;
		return 0;
	}
	if (count == 0)
		return 0;
	struct held *h = NULL;
	if (p->n >= PRESENCE_MAX || (h = calloc(1, sizeof(*h))) == NULL || (h->channel = strdup(channel)) == NULL) {
		free(h);
		p->overflowed = 1;
		return -1;
	}
	h->peer = x;
	h->count = count;
	unsigned b = hash(channel);
	h->next = p->buckets[b];
	p->buckets[b] = h;
	x->nheld++;
	p->n++;
	return 0;
}

static void
drop_peer(struct presence *p, struct peer *x, int whole)
{
	for (size_t b = 0; b < PRESENCE_BUCKETS && x->nheld > 0; b++)
		for (struct held **pp = &p->buckets[b]; *pp != NULL;)
			if ((*pp)->peer == x)
				held_free(p, pp);
			else
				pp = &(*pp)->next;
	if (!whole)
		return;
	for (struct peer **pp = &p->peers; *pp != NULL; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	free(x);
	p->npeers--;
}

void
presence_forget(struct presence *p, const char *id)
{
	struct peer *x = find_peer(p, id);
	if (x != NULL)
		drop_peer(p, x, 0);
}

size_t
presence_expire(struct presence *p, uint64_t cutoff)
{
	size_t n = 0;
	for (struct peer *x = p->peers, *next; x != NULL; x = next) {
		next = x->next;
		if (x->seen < cutoff) {
			drop_peer(p, x, 1);
			n++;
		}
	}
	return n;
}

uint32_t
presence_get(const struct presence *p, const char *id, const char *channel)
{
	for (const struct held *h = p->buckets[hash(channel)]; h != NULL; h = h->next)
		if (strcmp(h->channel, channel) == 0 && strcmp(h->peer->id, id) == 0)
			return h->count;
	return 0;
}

uint64_t
presence_count(const struct presence *p, const char *channel)
{
	uint64_t n = 0;
	for (const struct held *h = p->buckets[hash(channel)]; h != NULL; h = h->next)
		if (strcmp(h->channel, channel) == 0)
			n += h->count;
	return n;
}

size_t
presence_holders(const struct presence *p, const char *channel, void (*fn)(void *arg, const char *id), void *arg)
{
	size_t n = 0;
	for (const struct held *h = p->buckets[hash(channel)]; h != NULL; h = h->next)
		if (strcmp(h->channel, channel) == 0) {
			fn(arg, h->peer->id);
			n++;
		}
	return n;
}

void
presence_clear(struct presence *p)
{
	while (p->peers != NULL)
		drop_peer(p, p->peers, 1);
	for (size_t b = 0; b < PRESENCE_BUCKETS; b++)
		while (p->quiet[b] != NULL)
			quiet_drop(p, &p->quiet[b]);
	p->overflowed = 0;
}
