/*
 * lmdb: storage in one LMDB environment under `path`, shared by every
 * worker process of the host and kept across restarts. Built against
 * <mcpd/plugin.h> alone.
 *
 *   storage: { plugin: lmdb, path: /var/lib/mcpd, map_size: 1GiB, sync: 1s }
 *
 * Writes go to the memory map at once (MDB_NOSYNC); a thread flushes the
 * map to disk every `sync` so that the event loop never waits on fsync. A
 * crash of mcpd loses nothing; a crash of the machine loses at most the
 * last `sync` period.
 */
#include <mcpd/plugin.h>

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct lmdb_store {
	const struct mcpd_host *host;
	char path[4096];
	uint64_t map_size;
	uint64_t sync_ms;
	MDB_env *env;
	MDB_dbi kv, idx, logs, logmeta;
	MDB_txn *reader;                /* a reset read-only txn kept for the next read, or NULL */
	pthread_t syncer;
	int syncer_running;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int stopping;
	unsigned sweep_calls;
};

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
put64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char)v;
		v >>= 8;
	}
}

static uint64_t
get64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static int
expired(const unsigned char *p)
{
	uint64_t e = get64(p);
	return e != 0 && e <= now_ms();
}

static uint64_t
deadline(uint64_t ttl_ms)
{
	return ttl_ms ? now_ms() + ttl_ms : 0;
}

static const char *
why(int rc)
{
	return rc == MDB_MAP_FULL ? "storage is full: raise storage.map_size" : mdb_strerror(rc);
}

static int
begin(struct lmdb_store *st, unsigned flags, MDB_txn **txn)
{
	return mdb_txn_begin(st->env, NULL, flags, txn);
}

/*
 * Reads: a read-only transaction is kept between reads, reset (it holds
 * no snapshot then, so writers may reuse every page) and renewed at the
 * next read, which takes the newest committed data as mdb_txn_begin would:
 * a renew costs a fraction of a begin and an abort (a malloc and a free,
 * and with MDB_NOTLS a reader slot found again). A read made while another
 * is in progress (from within its callback) begins a transaction of its own.
 * Reads run on the worker's event loop only (the syncer thread writes).
 */
static int
read_begin(struct lmdb_store *st, MDB_txn **txn)
{
	MDB_txn *kept = st->reader;
	if (kept != NULL) {
		st->reader = NULL;
		if (mdb_txn_renew(kept) == 0) {
			*txn = kept;
			return 0;
		}
		mdb_txn_abort(kept);
	}
	return begin(st, MDB_RDONLY, txn);
}

static void
read_end(struct lmdb_store *st, MDB_txn *txn)
{
	if (st->reader == NULL) {
		mdb_txn_reset(txn);
		st->reader = txn;
	} else {
		mdb_txn_abort(txn);
	}
}

/* ---- key/value ---- */

static void
l_get(void *inst, const char *key, mcpd_value_cb *cb, void *arg)
{
	struct lmdb_store *st = inst;
	MDB_txn *txn;
	int rc = read_begin(st, &txn);
	if (rc != 0) {
		if (cb)
			cb(arg, MCPD_ERROR, NULL, 0, why(rc));
		return;
	}
	MDB_val k = { strlen(key), (void *)key }, v;
	rc = mdb_get(txn, st->kv, &k, &v);
	if (rc == 0 && v.mv_size >= 8 && !expired(v.mv_data)) {
		if (cb)
			cb(arg, MCPD_OK, (unsigned char *)v.mv_data + 8, v.mv_size - 8, NULL);
	} else if (cb) {
		cb(arg, rc == 0 || rc == MDB_NOTFOUND ? MCPD_NOT_FOUND : MCPD_ERROR, NULL, 0,
		    rc == 0 || rc == MDB_NOTFOUND ? NULL : why(rc));
	}
	read_end(st, txn);
}

static void
l_set(void *inst, const char *key, const void *value, size_t len, uint64_t ttl_ms, unsigned flags,
    mcpd_done_cb *cb, void *arg)
{
	struct lmdb_store *st = inst;
	MDB_txn *txn;
	int rc = begin(st, 0, &txn);
	if (rc != 0)
		goto fail;
	MDB_val k = { strlen(key), (void *)key }, old;
	int present = mdb_get(txn, st->kv, &k, &old) == 0 && old.mv_size >= 8 && !expired(old.mv_data);
	if ((present && (flags & MCPD_SET_IF_ABSENT)) || (!present && (flags & MCPD_SET_IF_PRESENT))) {
		mdb_txn_abort(txn);
		if (cb)
			cb(arg, MCPD_CONFLICT, NULL);
		return;
	}
	MDB_val v = { len + 8, NULL };
	rc = mdb_put(txn, st->kv, &k, &v, MDB_RESERVE);
	if (rc != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	put64(v.mv_data, deadline(ttl_ms));
	memcpy((unsigned char *)v.mv_data + 8, value, len);
	rc = mdb_txn_commit(txn);
	if (rc != 0)
		goto fail;
	if (cb)
		cb(arg, MCPD_OK, NULL);
	return;
fail:
	if (cb)
		cb(arg, MCPD_ERROR, why(rc));
}

/* Drop a log: its entries ("log\0<seq>") and its meta record. Returns 0
 * (found says whether there was one) or an LMDB error. */
static int
log_drop(struct lmdb_store *st, MDB_txn *txn, const void *log, size_t ll, int *found)
{
	char key[1100];
	MDB_cursor *cur;
	if (ll + 9 > sizeof(key))
		return MDB_BAD_VALSIZE;
	int rc = mdb_cursor_open(txn, st->logs, &cur);
	if (rc != 0)
		return rc;
	memcpy(key, log, ll);
	key[ll] = '\0';
	memset(key + ll + 1, 0, 8);
	MDB_val ek = { ll + 9, key }, ev;
	for (rc = mdb_cursor_get(cur, &ek, &ev, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(cur, &ek, &ev, MDB_NEXT)) {
		if (ek.mv_size != ll + 9 || memcmp(ek.mv_data, key, ll + 1) != 0)
			break;
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	MDB_val mk = { ll, (void *)log };
	rc = mdb_del(txn, st->logmeta, &mk, NULL);
	*found = rc == 0;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The value under key, and a log of that name. */
static void
l_del(void *inst, const char *key, mcpd_done_cb *cb, void *arg)
{
	struct lmdb_store *st = inst;
	MDB_txn *txn;
	int rc = begin(st, 0, &txn);
	if (rc == 0) {
		MDB_val k = { strlen(key), (void *)key };
		int log_found = 0;
		rc = mdb_del(txn, st->kv, &k, NULL);
		int found = rc == 0;
		if (rc == 0 || rc == MDB_NOTFOUND)
			rc = log_drop(st, txn, key, strlen(key), &log_found);
		if (rc == 0) {
			found |= log_found;
			rc = mdb_txn_commit(txn);
			if (rc == 0) {
				if (cb)
					cb(arg, found ? MCPD_OK : MCPD_NOT_FOUND, NULL);
				return;
			}
		} else {
			mdb_txn_abort(txn);
		}
	}
	if (cb)
		cb(arg, MCPD_ERROR, why(rc));
}

struct exists_ctx {
	mcpd_done_cb *cb;
	void *arg;
};

static void
exists_done(void *arg, int status, const void *value, size_t len, const char *err)
{
	(void)value;
	(void)len;
	struct exists_ctx *x = arg;
	if (x->cb)
		x->cb(x->arg, status, err);
}

static void
l_exists(void *inst, const char *key, mcpd_done_cb *cb, void *arg)
{
	struct exists_ctx x = { cb, arg };
	l_get(inst, key, exists_done, &x);
}

static void
l_incr(void *inst, const char *key, int64_t by, uint64_t ttl_ms, mcpd_int_cb *cb, void *arg)
{
	struct lmdb_store *st = inst;
	MDB_txn *txn;
	int rc = begin(st, 0, &txn);
	if (rc != 0)
		goto fail;
	MDB_val k = { strlen(key), (void *)key }, old;
	int64_t value = 0;
	uint64_t exp = deadline(ttl_ms);
	if (mdb_get(txn, st->kv, &k, &old) == 0 && old.mv_size >= 8 && !expired(old.mv_data)) {
		char buf[32];
		size_t n = old.mv_size - 8 < sizeof(buf) - 1 ? old.mv_size - 8 : sizeof(buf) - 1;
		memcpy(buf, (unsigned char *)old.mv_data + 8, n);
		buf[n] = '\0';
		value = strtoll(buf, NULL, 10);
		if (ttl_ms == 0)
			exp = get64(old.mv_data);
	}
	value += by;
	char out[32];
	int n = snprintf(out, sizeof(out), "%lld", (long long)value);
	MDB_val v = { (size_t)n + 8, NULL };
	rc = mdb_put(txn, st->kv, &k, &v, MDB_RESERVE);
	if (rc != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	put64(v.mv_data, exp);
	memcpy((unsigned char *)v.mv_data + 8, out, (size_t)n);
	rc = mdb_txn_commit(txn);
	if (rc != 0)
		goto fail;
	if (cb)
		cb(arg, MCPD_OK, value, NULL);
	return;
fail:
	if (cb)
		cb(arg, MCPD_ERROR, 0, why(rc));
}

/* ---- indexes: key "index\0member" -> expiry ---- */

static size_t
join(char *buf, size_t buflen, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la + 1 + lb > buflen)
		return 0;
	memcpy(buf, a, la);
	buf[la] = '\0';
	memcpy(buf + la + 1, b, lb);
	return la + 1 + lb;
}

static void
l_index_add(void *inst, const char *index, const char *member, uint64_t ttl_ms, mcpd_done_cb *cb, void *arg)
{
	struct lmdb_store *st = inst;
	char buf[1024];
	size_t n = join(buf, sizeof(buf), index, member);
	MDB_txn *txn;
	int rc = n == 0 ? MDB_BAD_VALSIZE : begin(st, 0, &txn);
	if (rc == 0) {
		unsigned char exp[8];
		put64(exp, deadline(ttl_ms));
		MDB_val k = { n, buf }, v = { 8, exp };
		rc = mdb_put(txn, st->idx, &k, &v, 0);
		rc = rc == 0 ? mdb_txn_commit(txn) : (mdb_txn_abort(txn), rc);
	}
	if (cb)
		cb(arg, rc == 0 ? MCPD_OK : MCPD_ERROR, rc == 0 ? NULL : why(rc));
}

static void
l_index_remove(void *inst, const char *index, const char *member, mcpd_done_cb *cb, void *arg)
{
	struct lmdb_store *st = inst;
	char buf[1024];
	size_t n = join(buf, sizeof(buf), index, member);
	MDB_txn *txn;
	int rc = n == 0 ? MDB_BAD_VALSIZE : begin(st, 0, &txn);
	int found = 0;
	if (rc == 0) {
		MDB_val k = { n, buf };
		rc = mdb_del(txn, st->idx, &k, NULL);
		found = rc == 0;
		if (rc == 0 || rc == MDB_NOTFOUND)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	if (cb)
		cb(arg, rc != 0 ? MCPD_ERROR : found ? MCPD_OK : MCPD_NOT_FOUND, rc == 0 ? NULL : why(rc));
}

static void
l_index_members(void *inst, const char *index, mcpd_members_cb *cb, void *arg)
{
	struct lmdb_store *st = inst;
	MDB_txn *txn;
	MDB_cursor *cur;
	int rc = read_begin(st, &txn);
	if (rc == 0 && (rc = mdb_cursor_open(txn, st->idx, &cur)) != 0)
		read_end(st, txn);
	if (rc != 0) {
		if (cb)
			cb(arg, MCPD_ERROR, NULL, 0, why(rc));
		return;
	}
	size_t il = strlen(index), n = 0, cap = 16;
	if (il + 1 >= 1024) {
		/* l_index_add cannot have stored it either */
		mdb_cursor_close(cur);
		read_end(st, txn);
		if (cb)
			cb(arg, MCPD_ERROR, NULL, 0, why(MDB_BAD_VALSIZE));
		return;
	}
	char **names = malloc(cap * sizeof(char *));
	MDB_val k = { il + 1, NULL }, v;
	char prefix[1024];
	memcpy(prefix, index, il + 1);     /* with its NUL: the separator */
	k.mv_data = prefix;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && names != NULL;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size <= il || memcmp(k.mv_data, prefix, il + 1) != 0)
			break;
		if (v.mv_size == 8 && expired(v.mv_data))
			continue;
		if (n + 1 >= cap) {
			char **nn = realloc(names, (cap *= 2) * sizeof(char *));
			if (nn == NULL)
				break;
			names = nn;
		}
		size_t ml = k.mv_size - il - 1;
		names[n] = malloc(ml + 1);
		memcpy(names[n], (char *)k.mv_data + il + 1, ml);
		names[n][ml] = '\0';
		n++;
	}
	mdb_cursor_close(cur);
	read_end(st, txn);
	if (cb)
		cb(arg, MCPD_OK, (const char *const *)names, n, NULL);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* ---- logs: logs "log\0<seq be64>" -> entry; logmeta "log" -> last seq, expiry ---- */

static void
l_log_append(void *inst, const char *log, const void *entry, size_t len, uint64_t max_entries,
    uint64_t ttl_ms, mcpd_int_cb *cb, void *arg)
{
	struct lmdb_store *st = inst;
	MDB_txn *txn;
	uint64_t seq = 0;
	int rc = begin(st, 0, &txn);
	if (rc != 0)
		goto fail;
	size_t ll = strlen(log);
	MDB_val mk = { ll, (void *)log }, mv;
	uint64_t last = 0;
	if (mdb_get(txn, st->logmeta, &mk, &mv) == 0 && mv.mv_size == 16) {
		if (!expired((unsigned char *)mv.mv_data + 8)) {
			last = get64(mv.mv_data);
		} else {
			/* A lapsed log starts anew: none of its entries may show. */
			int found;
			if ((rc = log_drop(st, txn, log, ll, &found)) != 0) {
				mdb_txn_abort(txn);
				goto fail;
			}
		}
	}
	seq = last + 1;
	unsigned char meta[16];
	put64(meta, seq);
	put64(meta + 8, deadline(ttl_ms));
	MDB_val nv = { 16, meta };
	char key[1100];
	if (ll + 9 > sizeof(key)) {
		mdb_txn_abort(txn);
		rc = MDB_BAD_VALSIZE;
		goto fail;
	}
	memcpy(key, log, ll);
	key[ll] = '\0';
	put64((unsigned char *)key + ll + 1, seq);
	MDB_val ek = { ll + 9, key }, ev = { len, (void *)entry };
	if ((rc = mdb_put(txn, st->logmeta, &mk, &nv, 0)) != 0 || (rc = mdb_put(txn, st->logs, &ek, &ev, 0)) != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	/* Keep the newest max_entries: drop the one that fell out. */
	if (max_entries > 0 && seq > max_entries) {
		put64((unsigned char *)key + ll + 1, seq - max_entries);
		MDB_val dk = { ll + 9, key };
		mdb_del(txn, st->logs, &dk, NULL);
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	if (cb)
		cb(arg, MCPD_OK, (int64_t)seq, NULL);
	return;
fail:
	if (cb)
		cb(arg, MCPD_ERROR, 0, why(rc));
}

static void
l_log_range(void *inst, const char *log, uint64_t after, size_t max, mcpd_entries_cb *cb, void *arg)
{
	struct lmdb_store *st = inst;
	MDB_txn *txn;
	MDB_cursor *cur;
	int rc = read_begin(st, &txn);
	if (rc == 0 && (rc = mdb_cursor_open(txn, st->logs, &cur)) != 0)
		read_end(st, txn);
	if (rc != 0) {
		if (cb)
			cb(arg, MCPD_ERROR, NULL, 0, why(rc));
		return;
	}
	size_t ll = strlen(log), n = 0;
	MDB_val mk = { ll, (void *)log }, mv;
	int live = mdb_get(txn, st->logmeta, &mk, &mv) == 0 && mv.mv_size == 16 &&
	    !expired((unsigned char *)mv.mv_data + 8);
	struct mcpd_log_entry *out = calloc(max ? max : 1, sizeof(*out));
	char key[1100];
	if (live && out != NULL && ll + 9 <= sizeof(key)) {
		memcpy(key, log, ll);
		key[ll] = '\0';
		put64((unsigned char *)key + ll + 1, after + 1);
		MDB_val k = { ll + 9, key }, v;
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && n < max;
		    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			if (k.mv_size != ll + 9 || memcmp(k.mv_data, key, ll + 1) != 0)
				break;
			out[n].seq = get64((unsigned char *)k.mv_data + ll + 1);
			out[n].data = v.mv_data;    /* valid until the txn ends, after cb */
			out[n].len = v.mv_size;
			n++;
		}
	}
	if (cb)
		cb(arg, MCPD_OK, out, n, NULL);
	free(out);
	mdb_cursor_close(cur);
	read_end(st, txn);
}

/* ---- housekeeping ---- */

/* Drop expired keys, index members and logs. Runs every few minutes
 * from the loop in bounded steps; readers already ignore expired data. */
static void
sweep(struct lmdb_store *st)
{
	MDB_txn *txn;
	if (begin(st, 0, &txn) != 0)
		return;
	MDB_dbi dbis[] = { st->kv, st->idx };
	for (size_t d = 0; d < 2; d++) {
		MDB_cursor *cur;
		if (mdb_cursor_open(txn, dbis[d], &cur) != 0)
			continue;
		MDB_val k, v;
		int budget = 10000;
		for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && budget-- > 0;
		    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
			if (v.mv_size >= 8 && expired(v.mv_data))
				mdb_cursor_del(cur, 0);
		mdb_cursor_close(cur);
	}
	MDB_cursor *cur, *ec;
	if (mdb_cursor_open(txn, st->logmeta, &cur) == 0 && mdb_cursor_open(txn, st->logs, &ec) == 0) {
		MDB_val k, v;
		int budget = 1000;
		for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && budget-- > 0;
		    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			if (v.mv_size != 16 || !expired((unsigned char *)v.mv_data + 8))
				continue;
			char key[1100];
			if (k.mv_size + 9 > sizeof(key))
				continue;
			memcpy(key, k.mv_data, k.mv_size);
			key[k.mv_size] = '\0';
			memset(key + k.mv_size + 1, 0, 8);
			MDB_val ek = { k.mv_size + 9, key }, ev;
			for (int erc = mdb_cursor_get(ec, &ek, &ev, MDB_SET_RANGE); erc == 0;
			    erc = mdb_cursor_get(ec, &ek, &ev, MDB_NEXT)) {
				if (ek.mv_size != k.mv_size + 9 || memcmp(ek.mv_data, key, k.mv_size + 1) != 0)
					break;
				mdb_cursor_del(ec, 0);
			}
			mdb_cursor_del(cur, 0);
		}
		mdb_cursor_close(ec);
		mdb_cursor_close(cur);
	}
	if (mdb_txn_commit(txn) != 0)
		st->host->log(MCPD_LOG_WARN, "lmdb: sweeping expired entries failed");
}

static void *
syncer(void *arg)
{
	struct lmdb_store *st = arg;
	pthread_mutex_lock(&st->lock);
	while (!st->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)(st->sync_ms / 1000);
		ts.tv_nsec += (long)(st->sync_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&st->wake, &st->lock, &ts);
		pthread_mutex_unlock(&st->lock);
		mdb_env_sync(st->env, 1);
		if (++st->sweep_calls % 120 == 0)
			sweep(st);
		pthread_mutex_lock(&st->lock);
	}
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

/* ---- lifecycle ---- */

static const struct mcpd_storage_ops ops = {
	.size = sizeof(struct mcpd_storage_ops),
	.get = l_get,
	.set = l_set,
	.del = l_del,
	.exists = l_exists,
	.incr = l_incr,
	.index_add = l_index_add,
	.index_remove = l_index_remove,
	.index_members = l_index_members,
	.log_append = l_log_append,
	.log_range = l_log_range,
};

static int
mkdirs(const char *path, char *err, size_t errlen)
{
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", buf, strerror(errno));
			return -1;
		}
		*p = '/';
	}
	if (mkdir(buf, 0750) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", buf, strerror(errno));
		return -1;
	}
	return 0;
}

static void *
lmdb_create(const struct mcpd_host *host, const struct mcpd_config *section, char *err, size_t errlen)
{
	struct lmdb_store *st = calloc(1, sizeof(*st));
	if (st == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	st->host = host;
	st->map_size = 1ULL << 30;
	st->sync_ms = 1000;
	/* Refused below rather than cut (to another directory), unless the
	 * section names a path of its own. */
	int state_too_long = (size_t)snprintf(st->path, sizeof(st->path), "%s", host->state_dir()) >=
	    sizeof(st->path);
	char where[512];
	for (size_t i = 0; i < host->config_count(section); i++) {
		const char *key;
		const struct mcpd_config *v = host->config_item(section, i, &key);
		host->config_where(v, where, sizeof(where));
		if (strcmp(key, "plugin") == 0)
			continue;
		if (strcmp(key, "path") == 0 && host->config_scalar(v) != NULL && host->config_scalar(v)[0] == '/') {
			if ((size_t)snprintf(st->path, sizeof(st->path), "%s", host->config_scalar(v)) >= sizeof(st->path)) {
				snprintf(err, errlen, "%s: path is longer than %zu bytes", where, sizeof(st->path) - 1);
				free(st);
				return NULL;
			}
			state_too_long = 0;
		} else if (strcmp(key, "map_size") == 0 && host->config_size(v, &st->map_size) == 0 &&
		    st->map_size >= (1u << 20)) {
			;
		} else if (strcmp(key, "sync") == 0 && host->config_duration(v, &st->sync_ms) == 0 &&
		    st->sync_ms >= 10) {
			;
		} else {
			snprintf(err, errlen, "%s: storage.%s: %s", where, key,
			    strcmp(key, "path") == 0 ? "must be an absolute directory" :
			    strcmp(key, "map_size") == 0 ? "must be a size of at least 1MiB" :
			    strcmp(key, "sync") == 0 ? "must be a duration of at least 10ms" :
			    "unknown key (lmdb takes path, map_size, sync)");
			free(st);
			return NULL;
		}
	}
	if (state_too_long) {
		snprintf(err, errlen, "storage: the default directory %.64s... is longer than %zu bytes; "
		    "give lmdb a path:", host->state_dir(), sizeof(st->path) - 1);
		free(st);
		return NULL;
	}
	if (mkdirs(st->path, err, errlen) < 0) {
		free(st);
		return NULL;
	}
	long uid, gid;
	host->worker_identity(&uid, &gid);
	if (uid >= 0 && chown(st->path, (uid_t)uid, (gid_t)gid) < 0) {
		snprintf(err, errlen, "cannot give %s to the workers' user: %s", st->path, strerror(errno));
		free(st);
		return NULL;
	}
	/* Files made earlier (by another user) must be the workers' too. */
	const char *files[] = { "data.mdb", "lock.mdb" };
	for (size_t i = 0; i < 2 && uid >= 0; i++) {
		char f[4200];
		snprintf(f, sizeof(f), "%s/%s", st->path, files[i]);
		if (chown(f, (uid_t)uid, (gid_t)gid) < 0 && errno != ENOENT) {
			snprintf(err, errlen, "cannot give %s to the workers' user: %s", f, strerror(errno));
			free(st);
			return NULL;
		}
	}
	return st;
}

static int
lmdb_attach(void *inst, char *err, size_t errlen)
{
	struct lmdb_store *st = inst;
	MDB_txn *txn;
	int rc;
	if ((rc = mdb_env_create(&st->env)) != 0 ||
	    (rc = mdb_env_set_mapsize(st->env, (size_t)st->map_size)) != 0 ||
	    (rc = mdb_env_set_maxdbs(st->env, 8)) != 0 ||
	    (rc = mdb_env_set_maxreaders(st->env, 1024)) != 0 ||
	    (rc = mdb_env_open(st->env, st->path, MDB_NOSYNC | MDB_NOMETASYNC | MDB_NOTLS, 0640)) != 0) {
		snprintf(err, errlen, "lmdb: cannot open %s: %s", st->path, mdb_strerror(rc));
		if (st->env != NULL)
			mdb_env_close(st->env);
		st->env = NULL;
		return -1;
	}
	int stale = 0;
	mdb_reader_check(st->env, &stale);   /* readers left by a killed worker */
	if ((rc = mdb_txn_begin(st->env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "kv", MDB_CREATE, &st->kv)) != 0 ||
	    (rc = mdb_dbi_open(txn, "idx", MDB_CREATE, &st->idx)) != 0 ||
	    (rc = mdb_dbi_open(txn, "logs", MDB_CREATE, &st->logs)) != 0 ||
	    (rc = mdb_dbi_open(txn, "logmeta", MDB_CREATE, &st->logmeta)) != 0 ||
	    (rc = mdb_txn_commit(txn)) != 0) {
		snprintf(err, errlen, "lmdb: cannot open the databases in %s: %s", st->path, mdb_strerror(rc));
		mdb_env_close(st->env);
		st->env = NULL;
		return -1;
	}
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->wake, NULL);
	st->stopping = 0;
	if (pthread_create(&st->syncer, NULL, syncer, st) == 0)
		st->syncer_running = 1;
	return 0;
}

static void
lmdb_detach(void *inst)
{
	struct lmdb_store *st = inst;
	if (st->env == NULL)
		return;
	if (st->syncer_running) {
		pthread_mutex_lock(&st->lock);
		st->stopping = 1;
		pthread_cond_signal(&st->wake);
		pthread_mutex_unlock(&st->lock);
		pthread_join(st->syncer, NULL);
		st->syncer_running = 0;
	}
	if (st->reader != NULL) {
		mdb_txn_abort(st->reader);
		st->reader = NULL;
	}
	mdb_env_sync(st->env, 1);
	mdb_env_close(st->env);
	st->env = NULL;
}

static void
lmdb_destroy(void *inst)
{
	free(inst);
}

static const struct mcpd_plugin descriptor = {
	.size = sizeof(struct mcpd_plugin),
	.abi_major = MCPD_PLUGIN_ABI_MAJOR,
	.abi_minor = MCPD_PLUGIN_ABI_MINOR,
	.kind = MCPD_PLUGIN_STORAGE,
	.name = "lmdb",
	.version = "1.0.0",
	.create = lmdb_create,
	.attach = lmdb_attach,
	.detach = lmdb_detach,
	.destroy = lmdb_destroy,
	.ops = &ops,
};

const struct mcpd_plugin *
mcpd_plugin_entry(void)
{
	return &descriptor;
}
