#include "subs.h"

#include "hash.h"

#include <stdlib.h>
#include <string.h>

unsigned
subs_hash(const char *s)
{
	return fnv1a(s) % SUBS_BUCKETS;
}

size_t
subs_count(const struct subs *t, const char *channel)
{
	size_t n = 0;
	for (const struct sub *s = t->buckets[subs_hash(channel)]; s != NULL; s = s->next)
		n += !s->dead && strcmp(s->channel, channel) == 0;
	return n;
}

struct sub *
subs_add(struct subs *t, const char *channel, mcpd_message_cb *cb, void *arg)
{
	struct sub *s = calloc(1, sizeof(*s));
	if (s == NULL || (s->channel = strdup(channel)) == NULL) {
		free(s);
		return NULL;
	}
	s->cb = cb;
	s->arg = arg;
	unsigned h = subs_hash(channel);
	s->next = t->buckets[h];
	t->buckets[h] = s;
	return s;
}

int
subs_mark(struct sub *s)
{
	if (s == NULL || s->dead)
		return 0;
	s->dead = 1;
	return 1;
}

static void
sub_free(struct sub *s)
{
	free(s->channel);
	free(s);
}

void
subs_release(struct subs *t, struct sub *s)
{
	/* During a delivery the sweep after it frees it. */
	if (t->delivering > 0) {
		t->ndead++;
		return;
	}
	for (struct sub **pp = &t->buckets[subs_hash(s->channel)]; *pp != NULL; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			sub_free(s);
			return;
		}
}

void
subs_deliver(struct subs *t, const char *channel, const void *msg, size_t len)
{
	t->delivering++;
	for (struct sub *s = t->buckets[subs_hash(channel)]; s != NULL; s = s->next)
		if (!s->dead && strcmp(s->channel, channel) == 0)
			s->cb(s->arg, channel, msg, len);
	if (--t->delivering > 0 || t->ndead == 0)
		return;
	for (size_t b = 0; b < SUBS_BUCKETS; b++)
		for (struct sub **pp = &t->buckets[b]; *pp != NULL;) {
			struct sub *s = *pp;
			if (s->dead) {
				*pp = s->next;
				sub_free(s);
			} else {
				pp = &s->next;
			}
		}
	t->ndead = 0;
}

void
subs_clear(struct subs *t)
{
	for (size_t b = 0; b < SUBS_BUCKETS; b++)
		while (t->buckets[b] != NULL) {
			struct sub *s = t->buckets[b];
			t->buckets[b] = s->next;
			sub_free(s);
		}
	t->ndead = 0;
}
