/*
 * memory: storage kept in the worker's own memory. For tests and for
 * workers: 1 only (its data is not shared between processes) and lost
 * when mcpd stops. Built against <mcpd/plugin.h> alone.
 */
#include <mcpd/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUCKETS 4096

enum kind { KV = 'k', INDEX = 'i', LOG = 'l' };

struct member {
	char *name;
	uint64_t expires;
};

struct entry {
	uint64_t seq;
	unsigned char *data;
	size_t len;
};

struct item {
	char *key;                  /* kind letter, then the key */
	uint64_t expires;           /* 0: never */
	unsigned char *val;
	size_t len;
	struct member *members;
	size_t nmembers;
	struct entry *entries;
	size_t nentries;
	uint64_t last_seq;
	struct item *next;
};

struct store {
	const struct mcpd_host *host;
	struct item *buckets[BUCKETS];
	uint64_t max_items;
	uint64_t count;
};

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t
deadline(uint64_t ttl_ms)
{
	return ttl_ms ? now_ms() + ttl_ms : 0;
}

/* Items are keyed by their kind's byte, then the key. */
static unsigned
hash(char kind, const char *s)
{
	unsigned h = (2166136261u ^ (unsigned char)kind) * 16777619u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % BUCKETS;
}

static void
item_free(struct item *it)
{
	free(it->key);
	free(it->val);
	for (size_t i = 0; i < it->nmembers; i++)
		free(it->members[i].name);
	free(it->members);
	for (size_t i = 0; i < it->nentries; i++)
		free(it->entries[i].data);
	free(it->entries);
	free(it);
}

/* The live item of a kind, or NULL; expired ones are dropped on the way. */
static struct item *
lookup(struct store *st, enum kind k, const char *key, struct item ***slot_out)
{
	/* no fixed buffer: a key is found whole, however long */
	struct item **slot = &st->buckets[hash((char)k, key)];
	uint64_t now = now_ms();
	while (*slot != NULL) {
		struct item *it = *slot;
		if (it->expires && it->expires <= now) {
			*slot = it->next;
			item_free(it);
			st->count--;
			continue;
		}
		if (it->key[0] == (char)k && strcmp(it->key + 1, key) == 0) {
			if (slot_out)
				*slot_out = slot;
			return it;
		}
		slot = &it->next;
	}
	return NULL;
}

static struct item *
create(struct store *st, enum kind k, const char *key)
{
	if (st->count >= st->max_items)
		return NULL;
	struct item *it = calloc(1, sizeof(*it));
	if (it == NULL)
		return NULL;
	size_t kl = strlen(key);
	it->key = malloc(kl + 2);
	if (it->key == NULL) {
		free(it);
		return NULL;
	}
	it->key[0] = (char)k;
	memcpy(it->key + 1, key, kl + 1);
	unsigned h = hash((char)k, key);
	it->next = st->buckets[h];
	st->buckets[h] = it;
	st->count++;
	return it;
}

static void
remove_item(struct store *st, enum kind k, const char *key)
{
	struct item **slot;
	struct item *it = lookup(st, k, key, &slot);
	if (it != NULL) {
		*slot = it->next;
		item_free(it);
		st->count--;
	}
}

#define FULL "memory storage is full (max_items)"

static void
m_get(void *inst, const char *key, mcpd_value_cb *cb, void *arg)
{
	struct item *it = lookup(inst, KV, key, NULL);
	if (cb)
		cb(arg, it ? MCPD_OK : MCPD_NOT_FOUND, it ? it->val : NULL, it ? it->len : 0, NULL);
}

static void
m_set(void *inst, const char *key, const void *value, size_t len, uint64_t ttl_ms, unsigned flags,
    mcpd_done_cb *cb, void *arg)
{
	struct store *st = inst;
	struct item *it = lookup(st, KV, key, NULL);
	if ((it != NULL && (flags & MCPD_SET_IF_ABSENT)) || (it == NULL && (flags & MCPD_SET_IF_PRESENT))) {
		if (cb)
			cb(arg, MCPD_CONFLICT, NULL);
		return;
	}
	unsigned char *copy = malloc(len ? len : 1);
	if (copy == NULL || (it == NULL && (it = create(st, KV, key)) == NULL)) {
		free(copy);
		if (cb)
			cb(arg, MCPD_ERROR, FULL);
		return;
	}
	memcpy(copy, value, len);
	free(it->val);
	it->val = copy;
	it->len = len;
	it->expires = deadline(ttl_ms);
	if (cb)
		cb(arg, MCPD_OK, NULL);
}

/* The value under key, and a log of that name. */
static void
m_del(void *inst, const char *key, mcpd_done_cb *cb, void *arg)
{
	struct store *st = inst;
	int found = lookup(st, KV, key, NULL) != NULL || lookup(st, LOG, key, NULL) != NULL;
	remove_item(st, KV, key);
	remove_item(st, LOG, key);
	if (cb)
		cb(arg, found ? MCPD_OK : MCPD_NOT_FOUND, NULL);
}

static void
m_exists(void *inst, const char *key, mcpd_done_cb *cb, void *arg)
{
	if (cb)
		cb(arg, lookup(inst, KV, key, NULL) ? MCPD_OK : MCPD_NOT_FOUND, NULL);
}

static void
m_incr(void *inst, const char *key, int64_t by, uint64_t ttl_ms, mcpd_int_cb *cb, void *arg)
{
	struct store *st = inst;
	struct item *it = lookup(st, KV, key, NULL);
	int64_t v = 0;
	if (it != NULL) {
		char buf[32];
		size_t n = it->len < sizeof(buf) - 1 ? it->len : sizeof(buf) - 1;
		memcpy(buf, it->val, n);
		buf[n] = '\0';
		v = strtoll(buf, NULL, 10);
	} else if ((it = create(st, KV, key)) == NULL) {
		if (cb)
			cb(arg, MCPD_ERROR, 0, FULL);
		return;
	}
	v += by;
	char out[32];
	int n = snprintf(out, sizeof(out), "%lld", (long long)v);
	free(it->val);
	it->val = malloc((size_t)n);
	memcpy(it->val, out, (size_t)n);
	it->len = (size_t)n;
	if (ttl_ms)
		it->expires = deadline(ttl_ms);
	if (cb)
		cb(arg, MCPD_OK, v, NULL);
}

static void
m_index_add(void *inst, const char *index, const char *member, uint64_t ttl_ms, mcpd_done_cb *cb, void *arg)
{
	struct store *st = inst;
	struct item *it = lookup(st, INDEX, index, NULL);
	if (it == NULL && (it = create(st, INDEX, index)) == NULL) {
		if (cb)
			cb(arg, MCPD_ERROR, FULL);
		return;
	}
	for (size_t i = 0; i < it->nmembers; i++) {
		if (strcmp(it->members[i].name, member) == 0) {
			it->members[i].expires = deadline(ttl_ms);
			if (cb)
				cb(arg, MCPD_OK, NULL);
			return;
		}
	}
	struct member *m = realloc(it->members, (it->nmembers + 1) * sizeof(*m));
	if (m == NULL) {
		if (cb)
			cb(arg, MCPD_ERROR, "out of memory");
		return;
	}
	it->members = m;
	m[it->nmembers].name = strdup(member);
	m[it->nmembers].expires = deadline(ttl_ms);
	it->nmembers++;
	if (cb)
		cb(arg, MCPD_OK, NULL);
}

static void
m_index_remove(void *inst, const char *index, const char *member, mcpd_done_cb *cb, void *arg)
{
	struct item *it = lookup(inst, INDEX, index, NULL);
	for (size_t i = 0; it != NULL && i < it->nmembers; i++) {
		if (strcmp(it->members[i].name, member) == 0) {
			free(it->members[i].name);
			it->members[i] = it->members[--it->nmembers];
			if (cb)
				cb(arg, MCPD_OK, NULL);
			return;
		}
	}
	if (cb)
		cb(arg, MCPD_NOT_FOUND, NULL);
}

static void
m_index_members(void *inst, const char *index, mcpd_members_cb *cb, void *arg)
{
	struct item *it = lookup(inst, INDEX, index, NULL);
	const char **names = calloc(it ? it->nmembers + 1 : 1, sizeof(char *));
	size_t n = 0;
	uint64_t now = now_ms();
	for (size_t i = 0; it != NULL && i < it->nmembers; i++)
		if (it->members[i].expires == 0 || it->members[i].expires > now)
			names[n++] = it->members[i].name;
	if (cb)
		cb(arg, MCPD_OK, names, n, NULL);
	free(names);
}

static void
m_log_append(void *inst, const char *log, const void *entry, size_t len, uint64_t max_entries,
    uint64_t ttl_ms, mcpd_int_cb *cb, void *arg)
{
	struct store *st = inst;
	struct item *it = lookup(st, LOG, log, NULL);
	if (it == NULL && (it = create(st, LOG, log)) == NULL) {
		if (cb)
			cb(arg, MCPD_ERROR, 0, FULL);
		return;
	}
	if (max_entries == 0)
		max_entries = 1;
	while (it->nentries >= max_entries) {
		free(it->entries[0].data);
		memmove(it->entries, it->entries + 1, (it->nentries - 1) * sizeof(*it->entries));
		it->nentries--;
	}
	struct entry *e = realloc(it->entries, (it->nentries + 1) * sizeof(*e));
	unsigned char *copy = malloc(len ? len : 1);
	if (e == NULL || copy == NULL) {
		if (e != NULL)
			it->entries = e;
		free(copy);
		if (cb)
			cb(arg, MCPD_ERROR, 0, "out of memory");
		return;
	}
	it->entries = e;
	memcpy(copy, entry, len);
	e[it->nentries].seq = ++it->last_seq;
	e[it->nentries].data = copy;
	e[it->nentries].len = len;
	it->nentries++;
	it->expires = deadline(ttl_ms);
	if (cb)
		cb(arg, MCPD_OK, (int64_t)it->last_seq, NULL);
}

static void
m_log_range(void *inst, const char *log, uint64_t after, size_t max, mcpd_entries_cb *cb, void *arg)
{
	struct item *it = lookup(inst, LOG, log, NULL);
	struct mcpd_log_entry *out = calloc(it && it->nentries ? it->nentries : 1, sizeof(*out));
	size_t n = 0;
	for (size_t i = 0; it != NULL && i < it->nentries && n < max; i++) {
		if (it->entries[i].seq <= after)
			continue;
		out[n].seq = it->entries[i].seq;
		out[n].data = it->entries[i].data;
		out[n].len = it->entries[i].len;
		n++;
	}
	if (cb)
		cb(arg, MCPD_OK, out, n, NULL);
	free(out);
}

static const struct mcpd_storage_ops ops = {
	.size = sizeof(struct mcpd_storage_ops),
	.get = m_get,
	.set = m_set,
	.del = m_del,
	.exists = m_exists,
	.incr = m_incr,
	.index_add = m_index_add,
	.index_remove = m_index_remove,
	.index_members = m_index_members,
	.log_append = m_log_append,
	.log_range = m_log_range,
};

static void *
memory_create(const struct mcpd_host *host, const struct mcpd_config *section, char *err, size_t errlen)
{
	struct store *st = calloc(1, sizeof(*st));
	if (st == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	st->host = host;
	st->max_items = 1000000;
	for (size_t i = 0; i < host->config_count(section); i++) {
		const char *key;
		const struct mcpd_config *v = host->config_item(section, i, &key);
		char where[512];
		host->config_where(v, where, sizeof(where));
		if (strcmp(key, "plugin") == 0)
			continue;
		if (strcmp(key, "max_items") == 0) {
			const char *s = host->config_scalar(v);
			char *end;
			unsigned long long n = s ? strtoull(s, &end, 10) : 0;
			if (s == NULL || *end != '\0' || n == 0) {
				snprintf(err, errlen, "%s: storage.max_items must be a positive number", where);
				free(st);
				return NULL;
			}
			st->max_items = n;
			continue;
		}
		snprintf(err, errlen, "%s: unknown key \"%s\" in storage (memory takes max_items)", where, key);
		free(st);
		return NULL;
	}
	return st;
}

static void
memory_destroy(void *inst)
{
	struct store *st = inst;
	for (size_t i = 0; i < BUCKETS; i++) {
		while (st->buckets[i] != NULL) {
			struct item *it = st->buckets[i];
			st->buckets[i] = it->next;
			item_free(it);
		}
	}
	free(st);
}

static const struct mcpd_plugin descriptor = {
	.size = sizeof(struct mcpd_plugin),
	.abi_major = MCPD_PLUGIN_ABI_MAJOR,
	.abi_minor = MCPD_PLUGIN_ABI_MINOR,
	.kind = MCPD_PLUGIN_STORAGE,
	.name = "memory",
	.version = "1.0.0",
	.create = memory_create,
	.destroy = memory_destroy,
	.ops = &ops,
	.flags = MCPD_PLUGIN_PROCESS_LOCAL,
};

const struct mcpd_plugin *
mcpd_plugin_entry(void)
{
	return &descriptor;
}
