#include "config.h"
#include "defs.h"
#include "config_internal.h"
#include "arena.h"
#include "conftree.h"
#include "paths.h"
#include "host.h"
#include "keyfile.h"
#include "plugin.h"
#include "reqstate.h"
#include "transport_compress.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Each address is a socket in the master and in every worker. */
#define MAX_LISTEN 256

void
err_at(struct ctx *x, const struct cnode *n, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n != NULL)
		errlist_add(x->errs, "%s:%d:%d: %s", x->file, n->line, n->col, msg);
	else
		errlist_add(x->errs, "%s: %s", x->file, msg);
}

int
want_type(struct ctx *x, const struct cnode *n, enum cnode_type t, const char *what)
{
	if (n->type == t && !(t == CNODE_SCALAR && cnode_is_null(n)))
		return 0;
	err_at(x, n, "%s must be %s, not %s", what, cnode_type_name(t),
	    cnode_is_null(n) ? "empty" : cnode_type_name(n->type));
	return -1;
}

static int walk(struct ctx *, const struct cnode *, const struct field *, void *,
    const char *, int);

/* The row of key in a table or in those it includes; *off is where the
 * row's base lies from the table's. */
static const struct field *
find_field(const struct field *fields, const char *key, size_t *off)
{
	for (const struct field *f = fields; f->key != NULL; f++) {
		if (f->type == F_INCLUDE) {
			const struct field *g = find_field(f->include, key, off);
			if (g != NULL) {
				*off += f->offset;
				return g;
			}
		} else if (strcmp(f->key, key) == 0) {
			*off = 0;
			return f;
		}
	}
	return NULL;
}

static void
closest_key(const struct field *fields, const char *key, const char **best, size_t *best_d)
{
	for (const struct field *f = fields; f->key != NULL; f++) {
		if (f->type == F_INCLUDE) {
			closest_key(f->include, key, best, best_d);
			continue;
		}
		size_t d = edit_distance(key, f->key);
		if (d < *best_d) {
			*best_d = d;
			*best = f->key;
		}
	}
}

static void
unknown_key(struct ctx *x, const struct cnode *key, const struct field *fields,
    const char *section)
{
	const char *best = NULL;
	size_t best_d = 3;
	closest_key(fields, key->str, &best, &best_d);
	if (best != NULL)
		err_at(x, key, "unknown key \"%s\" in %s (did you mean \"%s\"?)", key->str, section, best);
	else
		err_at(x, key, "unknown key \"%s\" in %s", key->str, section);
}

int
scalar_string(struct ctx *x, const struct cnode *n, const char *what, const char **out)
{
	if (want_type(x, n, CNODE_SCALAR, what) < 0)
		return -1;
	if (strlen(n->str) != n->len) {
		err_at(x, n, "%s contains a NUL byte", what);
		return -1;
	}
	*out = n->str;  /* the tree lives in the config's arena */
	return 0;
}

int
scalar_uint(struct ctx *x, const struct cnode *n, const char *what, uint64_t min,
    uint64_t max, uint64_t *out)
{
	if (want_type(x, n, CNODE_SCALAR, what) < 0)
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(n->str, &end, 10);
	if (n->str[0] == '-' || n->str[0] == '+' || n->str[0] == ' ' || end == n->str ||
	    *end != '\0' || errno != 0) {
		err_at(x, n, "%s must be a whole number, not \"%s\"", what, n->str);
		return -1;
	}
	if (v < min || v > max) {
		err_at(x, n, "%s must be between %llu and %llu", what,
		    (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

int
scalar_bool(struct ctx *x, const struct cnode *n, const char *what, int *out)
{
	if (want_type(x, n, CNODE_SCALAR, what) < 0)
		return -1;
	if (strcmp(n->str, "true") == 0)
		*out = 1;
	else if (strcmp(n->str, "false") == 0)
		*out = 0;
	else {
		err_at(x, n, "%s must be true or false, not \"%s\"", what, n->str);
		return -1;
	}
	return 0;
}

/* A duration (in ms) or a size (in bytes) within the field's limits. */
static void
scalar_measure(struct ctx *x, const struct cnode *n, const char *what, const struct field *f,
    uint64_t *out)
{
	int ms = f->type == F_DURATION;
	uint64_t u;
	if (want_type(x, n, CNODE_SCALAR, what) < 0)
		return;
	if ((ms ? parse_duration_ms(n->str, &u) : parse_size(n->str, &u)) < 0)
		err_at(x, n, "%s: \"%s\" is not a %s", what, n->str,
		    ms ? "duration (use ms, s, m, h or d, e.g. 30s)" : "size (bytes, or KiB, MiB, GiB, e.g. 4MiB)");
	else if (u < f->min || u > f->max)
		err_at(x, n, "%s must be between %llu%s and %llu%s", what, (unsigned long long)f->min,
		    ms ? "ms" : "", (unsigned long long)f->max, ms ? "ms" : " bytes");
	else
		*out = u;
}

/* One of an F_ENUM's words; the message offers them all. */
int
scalar_enum(struct ctx *x, const struct cnode *n, const char *what,
    const struct enum_name *names, int *out)
{
	if (want_type(x, n, CNODE_SCALAR, what) < 0)
		return -1;
	for (const struct enum_name *e = names; e->name != NULL; e++)
		if (strcmp(n->str, e->name) == 0) {
			*out = e->value;
			return 0;
		}
	char choices[256] = "";
	size_t len = 0;
	for (const struct enum_name *e = names; e->name != NULL && len < sizeof(choices); e++)
		len += (size_t)snprintf(choices + len, sizeof(choices) - len, "%s%s",
		    e == names ? "" : e[1].name == NULL ? " or " : ", ", e->name);
	err_at(x, n, "%s must be %s, not \"%s\"", what, choices, n->str);
	return -1;
}

const char **
parse_list(struct ctx *x, const struct cnode *n, const char *what,
    const struct list_spec *spec, size_t *count)
{
	if (want_type(x, n, CNODE_SEQ, what) < 0)
		return NULL;
	char entry[128];
	snprintf(entry, sizeof(entry), "%s entry", what);
	const char **list = arena_zalloc(x->cfg->arena, (n->n + 1) * sizeof(char *));
	*count = 0;
	for (size_t i = 0; i < n->n; i++) {
		const char *s;
		if (scalar_string(x, n->items[i], entry, &s) < 0)
			continue;
		if (spec->valid != NULL && !spec->valid(s)) {
			err_at(x, n->items[i], "%s \"%s\" must be %s", entry, s, spec->must);
			continue;
		}
		list[(*count)++] = s;
	}
	return list;
}

int
parse_items(struct ctx *x, const struct cnode *n, const struct items *it, void *arrayp,
    size_t *count)
{
	if (want_type(x, n, CNODE_SEQ, it->name) < 0)
		return -1;
	/* In place at once: a check may look at the elements before. */
	size_t len = n->n ? n->n : 1;
	char *array = arena_zalloc(x->cfg->arena, len * it->size);
	const struct cnode **at = it->name_of ? arena_alloc(x->cfg->arena, len * sizeof(*at)) : NULL;
	if (array == NULL || (it->name_of != NULL && at == NULL))
		goto oom;
	*(void **)arrayp = array;
	*count = 0;
	for (size_t i = 0; i < n->n; i++) {
		const struct cnode *item = n->items[i];
		void *elem = array + *count * it->size;
		if (it->init != NULL)
			it->init(elem, item);
		int keep;
		if (it->scalar != NULL && item->type == CNODE_SCALAR) {
			keep = it->scalar(x, item, elem) == 0;
		} else {
			size_t before = x->errs->n;
			keep = walk(x, item, it->fields, elem, it->item, 0) == 0 &&
			    (it->check == NULL || it->check(x, item, elem, before) == 0);
		}
		if (keep && at != NULL)
			at[*count] = item;
		*count += keep;
	}
	if (it->name_of == NULL)
		return 0;
	/* Names given twice, found by sorting: n log n for a long list. */
	const char **names = arena_alloc(x->cfg->arena, (*count ? *count : 1) * sizeof(*names));
	for (size_t i = 0; names != NULL && i < *count; i++)
		names[i] = it->name_of(array + i * it->size);
	size_t *first = names != NULL ? first_occurrences(names, *count) : NULL;
	if (first == NULL)
		goto oom;
	for (size_t i = 0; i < *count; i++)
		if (first[i] != i)
			it->twice(x, at[i], array + i * it->size, array + first[i] * it->size);
	free(first);
	return 0;
oom:
	err_at(x, n, "%s: out of memory", it->name);
	return -1;
}

int
parse_section(struct ctx *x, const struct cnode *n, const struct section *s, void *base)
{
	if (walk(x, n, s->fields, base, s->name, s->bare) < 0)
		return -1;
	if (s->check != NULL)
		s->check(x, n, base);
	return 0;
}

/* Walk a mapping with a table: name names the section in "unknown key"
 * messages and, unless bare, before each key in the others. */
static int
walk(struct ctx *x, const struct cnode *map, const struct field *fields, void *base,
    const char *name, int bare)
{
	if (want_type(x, map, CNODE_MAP, name) < 0)
		return -1;
	for (size_t i = 0; i < map->n; i++) {
		const struct cnode *k = map->pairs[i].key, *v = map->pairs[i].value;
		size_t off;
		const struct field *f = find_field(fields, k->str, &off);
		if (f == NULL) {
			unknown_key(x, k, fields, name);
			continue;
		}
		char *b = (char *)base + off;
		void *dst = b + f->offset;
		char what[128];
		if (bare)
			snprintf(what, sizeof(what), "%s", f->key);
		else
			snprintf(what, sizeof(what), "%s.%s", name, f->key);
		const char **list;
		switch (f->type) {
		case F_STRING:
		case F_PATH:
			if (scalar_string(x, v, what, (const char **)dst) < 0)
				break;
			if (f->type == F_PATH && (*(const char **)dst)[0] == '\0')
				err_at(x, v, "%s must not be empty", what);
			break;
		case F_UINT:
			scalar_uint(x, v, what, f->min, f->max, (uint64_t *)dst);
			break;
		case F_DURATION:
		case F_SIZE:
			scalar_measure(x, v, what, f, (uint64_t *)dst);
			break;
		case F_BOOL:
			scalar_bool(x, v, what, (int *)dst);
			break;
		case F_CUSTOM:
			f->custom(x, v, dst);
			break;
		case F_ENUM:
			scalar_enum(x, v, what, f->names, (int *)dst);
			break;
		case F_LIST:
			list = parse_list(x, v, what, f->list, (size_t *)(b + f->list->count));
			if (list != NULL)
				*(const char ***)dst = list;
			break;
		case F_SECTION:
			parse_section(x, v, f->section, dst);
			break;
		case F_ITEMS:
			parse_items(x, v, f->items, dst, (size_t *)(b + f->items->count));
			break;
		case F_IGNORE:
		case F_INCLUDE:
			break;
		}
	}
	return 0;
}

/* ---- addresses ---- */

int
config_parse_address(const char *s, struct sockaddr_storage *sa, socklen_t *salen,
    int *family, char *err, size_t errlen)
{
	memset(sa, 0, sizeof(*sa));
	if (strncmp(s, "unix:", 5) == 0) {
		const char *path = s + 5;
		struct sockaddr_un *un = (struct sockaddr_un *)sa;
		if (path[0] != '/') {
			snprintf(err, errlen, "unix socket path must be absolute");
			return -1;
		}
		if (strlen(path) >= sizeof(un->sun_path)) {
			snprintf(err, errlen, "unix socket path longer than %zu bytes", sizeof(un->sun_path) - 1);
			return -1;
		}
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, path);
		*salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
		*family = AF_UNIX;
		return 0;
	}
	char host[256];
	const char *port;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':') {
			snprintf(err, errlen, "expected [IPv6]:port");
			return -1;
		}
		size_t hl = (size_t)(close - s - 1);
		if (hl >= sizeof(host)) {
			snprintf(err, errlen, "address too long");
			return -1;
		}
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		port = close + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (colon == NULL) {
			snprintf(err, errlen, "expected host:port, [IPv6]:port or unix:/path");
			return -1;
		}
		if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
			snprintf(err, errlen, "write IPv6 addresses in brackets: [::1]:8080");
			return -1;
		}
		size_t hl = (size_t)(colon - s);
		if (hl >= sizeof(host)) {
			snprintf(err, errlen, "address too long");
			return -1;
		}
		memcpy(host, s, hl);
		host[hl] = '\0';
		port = colon + 1;
	}
	char *end;
	errno = 0;
	long p = strtol(port, &end, 10);
	if (*port == '\0' || *end != '\0' || errno != 0 || p < 1 || p > 65535 || port[0] == '+' || port[0] == '-') {
		snprintf(err, errlen, "port must be a number from 1 to 65535");
		return -1;
	}
	if (strcmp(host, "*") == 0 || host[0] == '\0')
		strcpy(host, "0.0.0.0");
	else if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	struct sockaddr_in *in4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
	if (s[0] != '[' && inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)p);
		*salen = sizeof(*in4);
		*family = AF_INET;
		return 0;
	}
	if (s[0] == '[' && inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)p);
		*salen = sizeof(*in6);
		*family = AF_INET6;
		return 0;
	}
	snprintf(err, errlen, "\"%s\" is not a numeric IP address (or *, localhost)", host);
	return -1;
}

void
sockaddr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t buflen)
{
	char host[INET6_ADDRSTRLEN];
	switch (sa->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(buf, buflen, "%s:%u", host, ntohs(in->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(buf, buflen, "[%s]:%u", host, ntohs(in6->sin6_port));
		break;
	}
	case AF_UNIX: {
		const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
		if (len > offsetof(struct sockaddr_un, sun_path) && un->sun_path[0] != '\0')
			snprintf(buf, buflen, "unix:%s", un->sun_path);
		else
			snprintf(buf, buflen, "unix");
		break;
	}
	default:
		snprintf(buf, buflen, "?");
	}
}

/* ---- sections ---- */

static void
check_tls(struct ctx *x, const struct cnode *n, void *base)
{
	const struct listen_conf *l = base;
	if (l->tls_cert == NULL || l->tls_key == NULL)
		err_at(x, n, "listen.tls needs both cert and key");
}

static const struct field tls_fields[] = {
	{ "cert", F_PATH, offsetof(struct listen_conf, tls_cert), 0, 0, { NULL } },
	{ "key", F_PATH, offsetof(struct listen_conf, tls_key), 0, 0, { NULL } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};
static const struct section tls_section = { "listen.tls", 0, tls_fields, check_tls };

static int
parse_mode(struct ctx *x, const struct cnode *n, void *base)
{
	struct listen_conf *l = base;
	if (want_type(x, n, CNODE_SCALAR, "listen.mode") < 0)
		return -1;
	/* Octal digits only: strtol takes a sign or blanks. */
	int m = 0;
	size_t len = strlen(n->str);
	for (size_t i = 0; i < len && m <= 0777; i++)
		m = n->str[i] >= '0' && n->str[i] <= '7' ? m * 8 + (n->str[i] - '0') : 01000;
	if (len == 0 || m > 0777) {
		err_at(x, n, "listen.mode must be octal permissions such as 0660");
		return -1;
	}
	l->mode = m;
	return 0;
}

static int
parse_listen_address(struct ctx *x, const struct cnode *n, void *base)
{
	struct listen_conf *l = base;
	if (scalar_string(x, n, "listen.address", &l->address) < 0)
		return -1;
	char err[160];
	if (config_parse_address(l->address, &l->sa, &l->salen, &l->family, err, sizeof(err)) < 0) {
		err_at(x, n, "listen.address \"%s\": %s", l->address, err);
		l->address = NULL;
		return -1;
	}
	l->line = n->line;
	l->col = n->col;
	return 0;
}

static void
listen_init(void *elem, const struct cnode *item)
{
	struct listen_conf *l = elem;
	l->backlog = 511;
	l->mode = -1;
}

/* An entry is kept once it has an address and no error. */
static int
listen_check(struct ctx *x, const struct cnode *item, void *elem, size_t before)
{
	const struct listen_conf *l = elem;
	if (cnode_get(item, "address") == NULL) {
		err_at(x, item, "listen entry needs an address");
		return -1;
	}
	if (l->address == NULL || x->errs->n != before)
		return -1;
	if (l->family != AF_UNIX && l->mode != -1)
		err_at(x, cnode_get(item, "mode"), "listen.mode applies to unix sockets only");
	return 0;
}

static const struct field listen_fields[] = {
	{ "address", F_CUSTOM, 0, 0, 0, { parse_listen_address } },
	{ "tls", F_SECTION, 0, 0, 0, { .section = &tls_section } },
	{ "backlog", F_UINT, offsetof(struct listen_conf, backlog), 1, 65535, { NULL } },
	{ "mode", F_CUSTOM, 0, 0, 0, { parse_mode } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};
static const struct items listen_items = {
	"listen", "listen", listen_fields, sizeof(struct listen_conf), offsetof(struct config, nlisten),
	listen_init, parse_listen_address, listen_check, NULL, NULL,
};

static int
parse_listen(struct ctx *x, const struct cnode *n, void *base)
{
	struct config *c = base;
	if (n->type == CNODE_SEQ && n->n == 0) {
		err_at(x, n, "listen needs at least one address");
		return -1;
	}
	if (n->type == CNODE_SEQ && n->n > MAX_LISTEN) {
		err_at(x, n, "listen has %zu addresses; at most %d", n->n, MAX_LISTEN);
		return -1;
	}
	if (parse_items(x, n, &listen_items, &c->listen, &c->nlisten) < 0)
		return -1;
	const struct listen_conf *l = c->listen;
	for (size_t i = 0; i < c->nlisten; i++)
		for (size_t j = 0; j < i; j++)
			if (l[i].salen == l[j].salen && memcmp(&l[i].sa, &l[j].sa, l[i].salen) == 0)
				errlist_add(x->errs, "%s:%d:%d: listen address \"%s\" given twice (first at line %d)",
				    x->file, l[i].line, l[i].col, l[i].address, l[j].line);
	return 0;
}

static int
parse_workers(struct ctx *x, const struct cnode *n, void *base)
{
	struct config *c = base;
	if (want_type(x, n, CNODE_SCALAR, "workers") < 0)
		return -1;
	if (strcmp(n->str, "auto") == 0) {
		c->workers_auto = 1;
		return 0;
	}
	if (scalar_uint(x, n, "workers (auto or a number)", 1, 512, &c->workers) < 0)
		return -1;
	c->workers_auto = 0;
	return 0;
}

static int
parse_log_level(struct ctx *x, const struct cnode *n, void *base)
{
	struct config *c = base;
	if (want_type(x, n, CNODE_SCALAR, "log.level") < 0)
		return -1;
	if (log_level_parse(n->str, &c->log.level) < 0) {
		err_at(x, n, "log.level must be error, warn, notice, info or debug, not \"%s\"", n->str);
		return -1;
	}
	return 0;
}

static const struct enum_name log_formats[] = {
	{ "text", LOG_TEXT }, { "json", LOG_JSON }, { NULL, 0 },
};
_Static_assert(sizeof(enum log_format) == sizeof(int), "F_ENUM writes an int");

static const struct field log_fields[] = {
	{ "level", F_CUSTOM, 0, 0, 0, { parse_log_level } },
	{ "format", F_ENUM, offsetof(struct config, log.format), 0, 0, { .names = log_formats } },
	{ "file", F_PATH, offsetof(struct config, log.file), 0, 0, { NULL } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};
static const struct section log_section = { "log", 0, log_fields, NULL };

/* limits.rate.sustained: "N/s", "N/m" or "N/h". */
static int
parse_rate_sustained(struct ctx *x, const struct cnode *n, void *dst)
{
	struct rate_conf *r = dst;
	if (want_type(x, n, CNODE_SCALAR, "limits.rate.sustained") < 0)
		return -1;
	const char *slash = strchr(n->str, '/');
	char num[24];
	uint64_t per = 0, period = 0;
	if (slash != NULL && (size_t)(slash - n->str) < sizeof(num)) {
		memcpy(num, n->str, (size_t)(slash - n->str));
		num[slash - n->str] = '\0';
		if (strcmp(slash + 1, "s") == 0)
			period = 1000;
		else if (strcmp(slash + 1, "m") == 0)
			period = 60000;
		else if (strcmp(slash + 1, "h") == 0)
			period = 3600000;
	}
	if (period == 0 || parse_u64(num, &per) < 0 || per < 1 || per > 1000000) {
		err_at(x, n, "limits.rate.sustained must be requests per second, minute or hour "
		    "(1 to 1000000), such as 10/s, 600/m or 100/h, not \"%s\"", n->str);
		return -1;
	}
	r->per = per;
	r->period_ms = period;
	return 0;
}

/* Without sustained there is no rate; the burst defaults to it. */
static void
check_rate(struct ctx *x, const struct cnode *n, void *base)
{
	struct rate_conf *r = base;
	if (cnode_get(n, "sustained") == NULL) {
		err_at(x, n, "limits.rate needs sustained: (such as 10/s)");
		return;
	}
	if (r->burst == 0)
		r->burst = r->per;
}

#define R(f) offsetof(struct rate_conf, f)
static const struct field rate_fields[] = {
	{ "sustained", F_CUSTOM, 0, 0, 0, { parse_rate_sustained } },
	{ "burst", F_UINT, R(burst), 1, 1000000, { NULL } },
	{ "shared", F_BOOL, R(shared), 0, 0, { NULL } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};
#undef R
static const struct section rate_section = { "limits.rate", 0, rate_fields, check_rate };

#define L(f) offsetof(struct limits_conf, f)
static const struct field limits_fields[] = {
	{ "max_body", F_SIZE, L(max_body), 1024, 1ULL << 30, { NULL } },
	{ "max_header", F_SIZE, L(max_header), 1024, 1 << 20, { NULL } },
	{ "max_connections", F_UINT, L(max_connections), 1, 1000000, { NULL } },
	{ "header_timeout", F_DURATION, L(header_timeout_ms), 100, 3600000, { NULL } },
	{ "body_timeout", F_DURATION, L(body_timeout_ms), 100, 3600000, { NULL } },
	{ "idle_timeout", F_DURATION, L(idle_timeout_ms), 100, 86400000, { NULL } },
	{ "send_timeout", F_DURATION, L(send_timeout_ms), 100, 3600000, { NULL } },
	{ "stream_buffer", F_SIZE, L(stream_buffer), 64 * 1024, 1ULL << 30, { NULL } },
	{ "session_idle_timeout", F_DURATION, L(session_idle_timeout_ms), 1000, 30ULL * 86400000, { NULL } },
	{ "shutdown_timeout", F_DURATION, L(shutdown_timeout_ms), 0, 3600000, { NULL } },
	{ "max_sessions", F_UINT, L(max_sessions), 1, 10000000, { NULL } },
	{ "json_depth", F_UINT, L(json_depth), 4, 1000, { NULL } },
	{ "tool_timeout", F_DURATION, L(tool_timeout_ms), 1, 86400000, { NULL } },
	{ "tool_output", F_SIZE, L(tool_output), 1, 1ULL << 30, { NULL } },
	{ "tool_processes", F_UINT, L(tool_processes), 1, 100000, { NULL } },
	{ "page_size", F_UINT, L(page_size), 1, 100000, { NULL } },
	{ "max_tasks", F_UINT, L(max_tasks), 1, 1000000, { NULL } },
	{ "task_result", F_SIZE, L(task_result), 1024, 1ULL << 30, { NULL } },
	{ "task_lease", F_DURATION, L(task_lease_ms), 1000, 3600000, { NULL } },
	{ "rate", F_SECTION, L(rate), 0, 0, { .section = &rate_section } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};
#undef L
static const struct section limits_section = { "limits", 0, limits_fields, NULL };

static const struct field server_fields[] = {
	{ "name", F_STRING, offsetof(struct config, server.name), 0, 0, { NULL } },
	{ "version", F_STRING, offsetof(struct config, server.version), 0, 0, { NULL } },
	{ "instructions", F_STRING, offsetof(struct config, server.instructions), 0, 0, { NULL } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};
static const struct section server_section = { "server", 0, server_fields, NULL };

static const struct enum_name lambda_modes[] = {
	{ "buffered", LAMBDA_BUFFERED }, { "streaming", LAMBDA_STREAMING }, { NULL, 0 },
};

static const struct field lambda_fields[] = {
	{ "response_mode", F_ENUM, offsetof(struct config, lambda.response_mode), 0, 0, { .names = lambda_modes } },
	{ "deadline_margin", F_DURATION, offsetof(struct config, lambda.deadline_margin_ms), 0, 60000, { NULL } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};
static const struct section lambda_section = { "lambda", 0, lambda_fields, NULL };

static int
parse_metrics_listen(struct ctx *x, const struct cnode *n, void *base)
{
	struct config *c = base;
	struct listen_conf *l = arena_zalloc(c->arena, sizeof(*l));
	if (l == NULL) {
		err_at(x, n, "metrics.listen: out of memory");
		return -1;
	}
	if (scalar_string(x, n, "metrics.listen", &l->address) < 0)
		return -1;
	char err[160];
	if (config_parse_address(l->address, &l->sa, &l->salen, &l->family, err, sizeof(err)) < 0) {
		err_at(x, n, "metrics.listen \"%s\": %s", l->address, err);
		return -1;
	}
	l->backlog = 511;
	l->mode = -1;
	l->line = n->line;
	l->col = n->col;
	l->metrics_only = 1;
	c->metrics.listen = l;
	return 0;
}

static const struct field metrics_fields[] = {
	{ "enabled", F_BOOL, offsetof(struct config, metrics.enabled), 0, 0, { NULL } },
	{ "listen", F_CUSTOM, 0, 0, 0, { parse_metrics_listen } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};
static const struct section metrics_section = { "metrics", 0, metrics_fields, NULL };

static int http_url(const char *u);

/* tracing: the OTLP/HTTP collector's URL, and how much goes there. */
static int
parse_tracing_endpoint(struct ctx *x, const struct cnode *n, void *base)
{
	struct config *c = x->cfg;
	(void)base;
	const char *u;
	if (scalar_string(x, n, "tracing.endpoint", &u) < 0)
		return -1;
	const char *host = strstr(u, "://");
	if (!http_url(u) || host[3] == '\0' || host[3] == '/' || strpbrk(u, " \t\r\n#") != NULL ||
	    strlen(u) > 2048) {
		err_at(x, n, "tracing.endpoint must be the collector's http:// or https:// URL, "
		    "such as http://127.0.0.1:4318 (spans go to its /v1/traces)");
		return -1;
	}
	c->tracing.endpoint = u;
	return 0;
}

static int
parse_tracing_sample(struct ctx *x, const struct cnode *n, void *base)
{
	struct config *c = x->cfg;
	(void)base;
	if (want_type(x, n, CNODE_SCALAR, "tracing.sample") < 0)
		return -1;
	char *end;
	errno = 0;
	double v = strtod(n->str, &end);
	if (end == n->str || *end != '\0' || errno != 0 || !(v >= 0.0 && v <= 1.0)) {
		err_at(x, n, "tracing.sample must be a number from 0 to 1 (the share of new traces "
		    "recorded), not \"%s\"", n->str);
		return -1;
	}
	c->tracing.sample = v;
	return 0;
}

/* "Name: value": a token, a colon, a value without line breaks. */
static int
header_line(const char *h)
{
	size_t n = strcspn(h, ":");
	if (n == 0 || h[n] != ':' || strlen(h) > 8192)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strchr("!#$%&'*+-.^_`|~", h[i]) == NULL && !isalnum((unsigned char)h[i]))
			return 0;
	return strpbrk(h, "\r\n") == NULL;
}

#define TR(f) (offsetof(struct config, tracing.f) - offsetof(struct config, tracing))
static const struct list_spec tracing_headers = {
	TR(nheaders), header_line, "a header line such as \"Authorization: Bearer ...\"",
};

static void
check_tracing(struct ctx *x, const struct cnode *n, void *base)
{
	(void)base;
	if (x->cfg->tracing.endpoint == NULL)
		err_at(x, n, "tracing needs endpoint: (the OTLP/HTTP collector's URL)");
	if (x->cfg->tracing.batch > x->cfg->tracing.queue)
		err_at(x, n, "tracing.batch (%llu) must not exceed tracing.queue (%llu)",
		    (unsigned long long)x->cfg->tracing.batch, (unsigned long long)x->cfg->tracing.queue);
}

static const struct field tracing_fields[] = {
	{ "endpoint", F_CUSTOM, 0, 0, 0, { parse_tracing_endpoint } },
	{ "sample", F_CUSTOM, 0, 0, 0, { parse_tracing_sample } },
	{ "service_name", F_STRING, TR(service_name), 0, 0, { NULL } },
	{ "queue", F_UINT, TR(queue), 1, 1000000, { NULL } },
	{ "batch", F_UINT, TR(batch), 1, 100000, { NULL } },
	{ "interval", F_DURATION, TR(interval_ms), 10, 600000, { NULL } },
	{ "timeout", F_DURATION, TR(timeout_ms), 100, 600000, { NULL } },
	{ "retry", F_DURATION, TR(retry_ms), 0, 600000, { NULL } },
	{ "headers", F_LIST, TR(headers), 0, 0, { .list = &tracing_headers } },
	{ "ca_file", F_PATH, TR(ca_file), 0, 0, { NULL } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};
#undef TR
static const struct section tracing_section = { "tracing", 0, tracing_fields, check_tracing };

static int
parse_endpoint(struct ctx *x, const struct cnode *n, void *base)
{
	struct config *c = base;
	if (scalar_string(x, n, "endpoint", &c->endpoint) < 0)
		return -1;
	if (c->endpoint[0] != '/' || strpbrk(c->endpoint, "?# \t") != NULL) {
		err_at(x, n, "endpoint must be a path starting with / (no query or spaces)");
		return -1;
	}
	return 0;
}

static int
origin_ok(const char *o)
{
	return strcmp(o, "*") == 0 || strstr(o, "://") != NULL;
}

static const struct list_spec origins_list = {
	offsetof(struct config, norigins), origin_ok, "an origin such as https://app.example.com, or *",
};

static int
parse_hosts(struct ctx *x, const struct cnode *n, void *base)
{
	struct config *c = base;
	if (want_type(x, n, CNODE_SEQ, "allowed_hosts") < 0)
		return -1;
	c->allowed_hosts = arena_zalloc(c->arena, (n->n + 1) * sizeof(char *));
	c->nhosts = 0;
	for (size_t i = 0; i < n->n; i++) {
		const char *h;
		if (scalar_string(x, n->items[i], "allowed_hosts entry", &h) < 0)
			continue;
		if (strcmp(h, "*") == 0) {
			c->allowed_hosts = NULL;    /* any Host */
			c->nhosts = 0;
			return 0;
		}
		c->allowed_hosts[c->nhosts++] = h;
	}
	return 0;
}

#define M(f) offsetof(struct config, mcp.f)
static const struct field sse_fields[] = {
	{ "retry", F_DURATION, M(retry_ms), 0, 3600000, { NULL } },
	{ "keepalive", F_DURATION, M(keepalive_ms), 1000, 3600000, { NULL } },
	{ "history", F_UINT, M(history), 0, 100000, { NULL } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};
#undef M
static const struct section sse_section = { "sse", 0, sse_fields, NULL };

static const struct field request_state_fields[] = {
	{ "key_file", F_PATH, offsetof(struct config, request_state.key_file), 0, 0, { NULL } },
	{ "ttl", F_DURATION, offsetof(struct config, request_state.ttl_ms), 1000, 86400000, { NULL } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};
static const struct section request_state_section = { "request_state", 0, request_state_fields, NULL };

static const struct field cache_fields[] = {
	{ "list_ttl", F_DURATION, offsetof(struct config, cache.list_ttl_ms), 0, 86400000, { NULL } },
	{ "read_ttl", F_DURATION, offsetof(struct config, cache.read_ttl_ms), 0, 86400000, { NULL } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};
static const struct section cache_section = { "cache", 0, cache_fields, NULL };

static const struct field storage_cache_fields[] = {
	{ "entries", F_UINT, offsetof(struct config, storage_cache.entries), 1, 10000000, { NULL } },
	{ "ttl", F_DURATION, offsetof(struct config, storage_cache.ttl_ms), 1, 86400000, { NULL } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};
static const struct section storage_cache_cfg = { "storage.cache", 0, storage_cache_fields, NULL };

/* storage: { cache: } is the host's (storage_cache.c): read here, and
 * the plugin gets its section without it (host_key). */
static int
storage_cache_section(struct ctx *x, const struct cnode *n)
{
	const struct cnode *cn = cnode_get(n, "cache");
	x->cfg->storage_cache.entries = 10000;
	x->cfg->storage_cache.ttl_ms = 5000;
	if (cnode_is_null(cn) || (cn->type == CNODE_SCALAR && strcmp(cn->str, "false") == 0)) {
		x->cfg->storage_cache.entries = 0;
	} else if (!(cn->type == CNODE_SCALAR && strcmp(cn->str, "true") == 0)) {
		if (cn->type != CNODE_MAP) {
			err_at(x, cn, "storage.cache must be a mapping ({ entries: N, ttl: DURATION }), true or false");
			return -1;
		}
		if (parse_section(x, cn, &storage_cache_cfg, x->cfg) < 0)
			return -1;
	}
	return 0;
}

static const struct field kms_fields[] = {
	{ "provider", F_STRING, offsetof(struct kms_conf, provider), 0, 0, { NULL } },
	{ "region", F_STRING, offsetof(struct kms_conf, region), 0, 0, { NULL } },
	{ "endpoint", F_STRING, offsetof(struct kms_conf, endpoint), 0, 0, { NULL } },
	{ "key_id", F_STRING, offsetof(struct kms_conf, key_id), 0, 0, { NULL } },
	{ "algorithm", F_STRING, offsetof(struct kms_conf, algorithm), 0, 0, { NULL } },
	{ "client_id", F_STRING, offsetof(struct kms_conf, client_id), 0, 0, { NULL } },
	{ "timeout", F_DURATION, offsetof(struct kms_conf, timeout_ms), 100, 120000, { NULL } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};

/* storage.encrypt_key_kms: who unwraps the key files (keykms.h). */
static void
kms_section(struct ctx *x, const struct cnode *v, struct backend *b)
{
	b->kms.timeout_ms = 10000;
	if (walk(x, v, kms_fields, &b->kms, "encrypt_key_kms", 0) < 0)
		return;
	const char *which;
	char why[400];
	if (keykms_check(&b->kms, &which, why, sizeof(why)) < 0) {
		const struct cnode *at = cnode_get(v, which);
		err_at(x, at != NULL ? at : v, "encrypt_key_kms.%s %s", which, why);
		b->kms.provider = NULL;
	}
	if (b->key_file == NULL)
		err_at(x, v, "encrypt_key_kms needs encrypt_key_file (the wrapped data key)");
}

static int
parse_backend_section(struct ctx *x, const struct cnode *n, void *dst)
{
	struct backend *b = dst;
	const char *what = b == &x->cfg->storage ? "storage" : "transport";
	if (want_type(x, n, CNODE_MAP, what) < 0)
		return -1;
	const struct cnode *p = cnode_get(n, "plugin");
	if (p == NULL) {
		err_at(x, n, "%s needs plugin: (a name such as %s, or a path to a .so)", what,
		    b == &x->cfg->storage ? "lmdb, memory, redis" : "local, redis");
		return -1;
	}
	if (scalar_string(x, p, "plugin", &b->name) < 0)
		return -1;
	b->section = n;
	/* The keys mcpd reads itself, for every plugin. */
	int storage = b == &x->cfg->storage;
	const struct cnode *v;
	if ((v = cnode_get(n, storage ? "encrypt_key_file" : "sign_key_file")) != NULL)
		scalar_string(x, v, storage ? "encrypt_key_file" : "sign_key_file", &b->key_file);
	if ((v = cnode_get(n, storage ? "encrypt_key_file_accept" : "sign_key_file_accept")) != NULL &&
	    scalar_string(x, v, storage ? "encrypt_key_file_accept" : "sign_key_file_accept",
	    &b->key_file_accept) == 0 && b->key_file == NULL)
		err_at(x, v, "%s needs %s too (the key that %s)", storage ? "encrypt_key_file_accept" :
		    "sign_key_file_accept", storage ? "encrypt_key_file" : "sign_key_file",
		    storage ? "seals what is written" : "signs what is sent");
	if (storage && (v = cnode_get(n, "hash_key_file")) != NULL)
		scalar_string(x, v, "hash_key_file", &b->hash_key_file);
	if (storage && (v = cnode_get(n, "encrypt_key_kms")) != NULL)
		kms_section(x, v, b);
	b->window_ms = 30000;
	if (!storage && (v = cnode_get(n, "sign_window")) != NULL) {
		const char *w;
		if (scalar_string(x, v, "sign_window", &w) == 0 &&
		    (parse_duration_ms(w, &b->window_ms) < 0 || b->window_ms < 1000 || b->window_ms > 3600000))
			err_at(x, v, "sign_window: \"%s\" is not a duration from 1s to 1h", w);
		else if (b->key_file == NULL)
			err_at(x, v, "sign_window needs sign_key_file");
	}
	if (!storage && (v = cnode_get(n, "compress_over")) != NULL) {
		const char *w;
		if (scalar_string(x, v, "compress_over", &w) == 0 &&
		    (parse_size(w, &b->compress_over) < 0 || b->compress_over < 1 || b->compress_over > TCOMP_MAX))
			err_at(x, v, "compress_over: \"%s\" is not a size from 1 byte to 64MiB", w);
	}
	if (b == &x->cfg->storage && cnode_get(n, "cache") != NULL)
		return storage_cache_section(x, n);
	return 0;
}

/* Keys of a storage: or transport: section that mcpd reads (above) and
 * the plugin does not see. */
static int
host_key(int storage, const char *key)
{
	static const char *const skeys[] = { "encrypt_key_file", "encrypt_key_file_accept", "hash_key_file",
	    "encrypt_key_kms", "cache", NULL };
	static const char *const tkeys[] = { "sign_key_file", "sign_key_file_accept", "sign_window", "compress_over",
	    NULL };
	for (const char *const *k = storage ? skeys : tkeys; *k != NULL; k++)
		if (strcmp(*k, key) == 0)
			return 1;
	return 0;
}

/* The section as the plugin sees it: without the host's keys. */
static const struct cnode *
plugin_view(struct config *c, const struct cnode *section, int storage)
{
	size_t n = 0;
	for (size_t i = 0; i < section->n; i++)
		n += host_key(storage, section->pairs[i].key->str);
	if (n == 0)
		return section;
	struct cnode *v = arena_zalloc(c->arena, sizeof(*v));
	struct cnode_pair *pairs = arena_zalloc(c->arena, (section->n - n + 1) * sizeof(*pairs));
	if (v == NULL || pairs == NULL)
		return section;
	*v = *section;
	v->pairs = pairs;
	v->n = 0;
	for (size_t i = 0; i < section->n; i++)
		if (!host_key(storage, section->pairs[i].key->str))
			pairs[v->n++] = section->pairs[i];
	return v;
}

/* Read the key files a backend section names into keys; their errors at
 * the key's place. */
static void
backend_keys(struct ctx *x, struct config *c, struct backend *b, const char *label,
    struct sigkeys *keys)
{
	int storage = b == &c->storage;
	const char *names[2] = { storage ? "encrypt_key_file" : "sign_key_file",
	    storage ? "encrypt_key_file_accept" : "sign_key_file_accept" };
	const char *paths[2] = { b->key_file, b->key_file_accept };
	keys->n = 0;
	for (int i = 0; i < 2 && paths[i] != NULL; i++) {
		const char *path = paths[i][0] == '/' ? paths[i] :
		    arena_printf(c->arena, "%s/%s", c->config_dir, paths[i]);
		char err[1200];
		if (storage && b->kms.provider != NULL ?
		    keykms_unwrap(&b->kms, path, label, keys->key[keys->n], err, sizeof(err)) < 0 :
		    keyfile_read(path, label, keys->key[keys->n], err, sizeof(err)) < 0) {
			err_at(x, cnode_get(b->section, names[i]), "%s: %s", names[i], err);
			return;
		}
		keyfile_id(keys->key[keys->n], keys->id[keys->n]);
		keys->n++;
	}
	if (keys->n == 2 && strcmp(keys->id[0], keys->id[1]) == 0)
		err_at(x, cnode_get(b->section, names[1]), "%s is the same key as %s", names[1], names[0]);
}

/* A list of scope tokens (RFC 6749 3.3), or one string of them, as one
 * space-separated string. */
int
parse_scope_list(struct ctx *x, const struct cnode *n, const char *what, struct arena *a,
    const char **out)
{
	size_t count = n->type == CNODE_SEQ ? n->n : 1, total = 1;
	for (size_t i = 0; i < count; i++) {
		const struct cnode *item = n->type == CNODE_SEQ ? n->items[i] : n;
		const char *v;
		if (scalar_string(x, item, what, &v) < 0)
			return -1;
		for (const char *p = v; *p; p++) {
			unsigned char ch = (unsigned char)*p;
			if (ch == ' ' && n->type != CNODE_SEQ)
				continue;
			if (ch < 0x21 || ch == '"' || ch == '\\' || ch > 0x7e) {
				err_at(x, item,
				    "%s: \"%s\" is not a scope (printable ASCII without spaces, quotes or backslashes)",
				    what, v);
				return -1;
			}
		}
		total += item->len + 1;
	}
	/* Joined in one pass: one copy, however long the list. */
	char *buf = arena_alloc(a, total), *p = buf;
	if (buf == NULL) {
		err_at(x, n, "%s: out of memory", what);
		return -1;
	}
	for (size_t i = 0; i < count; i++) {
		const struct cnode *item = n->type == CNODE_SEQ ? n->items[i] : n;
		if (p != buf)
			*p++ = ' ';
		memcpy(p, item->str, item->len);
		p += item->len;
	}
	*p = '\0';
	*out = buf;
	return 0;
}

static int
http_url(const char *u)
{
	return strncmp(u, "https://", 8) == 0 || strncmp(u, "http://", 7) == 0;
}

static int
parse_auth_section(struct ctx *x, const struct cnode *n, void *dst)
{
	(void)dst;
	struct config *c = x->cfg;
	if (want_type(x, n, CNODE_MAP, "auth") < 0)
		return -1;
	const struct cnode *p = cnode_get(n, "plugin");
	if (p == NULL) {
		err_at(x, n, "auth needs plugin: (none, internal, apikey, or a path to a .so)");
		return -1;
	}
	if (scalar_string(x, p, "plugin", &c->auth.name) < 0)
		return -1;
	c->auth.section = n;
	const struct cnode *v;
	if ((v = cnode_get(n, "resource")) != NULL && scalar_string(x, v, "resource", &c->authz.resource) == 0 &&
	    strncmp(c->authz.resource, "https://", 8) != 0 && strncmp(c->authz.resource, "http://", 7) != 0) {
		err_at(x, v, "resource must be the endpoint's absolute URL, such as https://mcp.example.com/mcp");
		return -1;
	}
	if ((v = cnode_get(n, "admin_scope")) != NULL)
		parse_scope_list(x, v, "admin_scope", c->arena, &c->authz.admin_scope);
	if ((v = cnode_get(n, "resource_name")) != NULL)
		scalar_string(x, v, "resource_name", &c->authz.resource_name);
	if ((v = cnode_get(n, "scopes_supported")) != NULL)
		parse_scope_list(x, v, "scopes_supported", c->arena, &c->authz.scopes_supported);
	if ((v = cnode_get(n, "authorization_servers")) != NULL) {
		static const struct list_spec servers = { 0, http_url, "an issuer URL" };
		const char **list = parse_list(x, v, "authorization_servers", &servers, &c->authz.nservers);
		if (list != NULL)
			c->authz.authorization_servers = list;
	}
	/* A plugin with an issuer (jwt) names its authorization server: the
	 * metadata lists it unless the operator says otherwise. The internal
	 * server lists itself (auth.c). */
	const struct cnode *iss = cnode_get(n, "issuer");
	if (strcmp(c->auth.name, "internal") != 0 && c->authz.nservers == 0 && cnode_get(n, "authorization_servers") == NULL && iss != NULL &&
	    iss->type == CNODE_SCALAR && (strncmp(iss->str, "https://", 8) == 0 ||
	    strncmp(iss->str, "http://", 7) == 0)) {
		c->authz.authorization_servers = arena_zalloc(c->arena, 2 * sizeof(char *));
		c->authz.authorization_servers[c->authz.nservers++] = iss->str;
	}
	if ((v = cnode_get(n, "cache")) != NULL) {
		const char *d;
		if (scalar_string(x, v, "cache", &d) == 0 &&
		    (parse_duration_ms(d, &c->authz.cache_ms) < 0 || c->authz.cache_ms > 3600000)) {
			err_at(x, v, "cache must be a duration from 0 to 1h (how long a checked token is trusted)");
			return -1;
		}
	}
	/* The authorization server built into mcpd, not a plugin. */
	if (strcmp(c->auth.name, "internal") == 0)
		return parse_oauth_section(x, n);
	return 0;
}

static const struct field top_fields[] = {
	{ "server", F_SECTION, 0, 0, 0, { .section = &server_section } },
	{ "listen", F_CUSTOM, 0, 0, 0, { parse_listen } },
	{ "endpoint", F_CUSTOM, 0, 0, 0, { parse_endpoint } },
	{ "workers", F_CUSTOM, 0, 0, 0, { parse_workers } },
	{ "user", F_STRING, offsetof(struct config, user), 0, 0, { NULL } },
	{ "group", F_STRING, offsetof(struct config, group), 0, 0, { NULL } },
	{ "pid_file", F_PATH, offsetof(struct config, pid_file), 0, 0, { NULL } },
	{ "log", F_SECTION, 0, 0, 0, { .section = &log_section } },
	{ "allowed_origins", F_LIST, offsetof(struct config, allowed_origins), 0, 0, { .list = &origins_list } },
	{ "allowed_hosts", F_CUSTOM, 0, 0, 0, { parse_hosts } },
	{ "plugin_dir", F_PATH, offsetof(struct config, plugin_dir), 0, 0, { NULL } },
	{ "limits", F_SECTION, offsetof(struct config, limits), 0, 0, { .section = &limits_section } },
	{ "sse", F_SECTION, 0, 0, 0, { .section = &sse_section } },
	{ "metrics", F_SECTION, 0, 0, 0, { .section = &metrics_section } },
	{ "tracing", F_SECTION, offsetof(struct config, tracing), 0, 0, { .section = &tracing_section } },
	{ "request_state", F_SECTION, 0, 0, 0, { .section = &request_state_section } },
	{ "storage", F_CUSTOM, offsetof(struct config, storage), 0, 0, { parse_backend_section } },
	{ "transport", F_CUSTOM, offsetof(struct config, transport), 0, 0, { parse_backend_section } },
	{ "auth", F_CUSTOM, 0, 0, 0, { parse_auth_section } },
	{ "cache", F_SECTION, 0, 0, 0, { .section = &cache_section } },
	{ "lambda", F_SECTION, 0, 0, 0, { .section = &lambda_section } },
	{ "tools", F_ITEMS, offsetof(struct config, tools), 0, 0, { .items = &tool_items } },
	{ "resources", F_ITEMS, offsetof(struct config, resources), 0, 0, { .items = &resource_items } },
	{ "prompts", F_ITEMS, offsetof(struct config, prompts), 0, 0, { .items = &prompt_items } },
	{ "skills", F_CUSTOM, 0, 0, 0, { parse_skills } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};
static const struct section top_section = { "the top level", 1, top_fields, NULL };

static void
set_defaults(struct config *c)
{
	c->server.name = "mcpd";
	c->server.version = PACKAGE_VERSION;
	c->endpoint = "/mcp";
	c->workers_auto = 1;
	c->authz.cache_ms = 60000;
	c->authz.admin_scope = "mcpd:admin";
	oauth_config_defaults(c);
	c->log.level = LOG_INFO;
	c->log.format = LOG_TEXT;
	c->log.file = "stderr";
	c->lambda.response_mode = LAMBDA_BUFFERED;
	c->lambda.deadline_margin_ms = 300;
	c->limits.max_body = 4 * 1024 * 1024;
	c->limits.max_header = 16 * 1024;
	c->limits.max_connections = 10000;
	c->limits.header_timeout_ms = 30000;
	c->limits.body_timeout_ms = 30000;
	c->limits.idle_timeout_ms = 75000;
	c->limits.send_timeout_ms = 60000;
	c->limits.stream_buffer = 8 * 1024 * 1024;
	c->limits.session_idle_timeout_ms = 3600000;
	c->limits.shutdown_timeout_ms = 30000;
	c->limits.max_sessions = 100000;
	c->limits.json_depth = 64;
	c->limits.tool_timeout_ms = 60000;
	c->limits.tool_output = 1024 * 1024;
	c->limits.tool_processes = 256;
	c->limits.page_size = 100;
	c->limits.max_tasks = 100;
	c->limits.task_result = 4 * 1024 * 1024;
	c->limits.task_lease_ms = 30000;
	c->mcp.retry_ms = 3000;
	c->metrics.enabled = 1;
	c->tracing.sample = 1.0;
	c->tracing.queue = 2048;
	c->tracing.batch = 512;
	c->tracing.interval_ms = 5000;
	c->tracing.timeout_ms = 10000;
	c->tracing.retry_ms = 30000;
	c->request_state.ttl_ms = 600000;
	c->cache.list_ttl_ms = 300000;
	c->cache.read_ttl_ms = 0;
	c->mcp.keepalive_ms = 15000;
	c->mcp.history = 1000;
	static const char *const origins[] = { "http://localhost:*", "https://localhost:*",
	    "http://127.0.0.1:*", "https://127.0.0.1:*", "http://[::1]:*", "https://[::1]:*", NULL };
	c->allowed_origins = (const char **)origins;
	c->norigins = 6;
}

static int
same_address(const struct listen_conf *a, const struct listen_conf *b)
{
	return a->salen == b->salen && memcmp(&a->sa, &b->sa, a->salen) == 0;
}

static int
loopback_only(const struct config *c)
{
	for (size_t i = 0; i < c->nlisten; i++) {
		const struct listen_conf *l = &c->listen[i];
		if (l->metrics_only)
			continue;
		if (l->family == AF_INET) {
			const struct sockaddr_in *in = (const void *)&l->sa;
			if ((ntohl(in->sin_addr.s_addr) >> 24) != 127)
				return 0;
		} else if (l->family == AF_INET6) {
			const struct sockaddr_in6 *in6 = (const void *)&l->sa;
			if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
				return 0;
		}
	}
	return 1;
}

static void
resolve_identity(struct ctx *x, struct config *c)
{
	const struct cnode *un = cnode_get(c->root, "user");
	const struct cnode *gn = cnode_get(c->root, "group");
	if (c->user != NULL) {
		struct passwd *pw = getpwnam(c->user);
		if (pw == NULL) {
			err_at(x, un, "user \"%s\" does not exist", c->user);
		} else {
			c->uid = pw->pw_uid;
			c->gid = pw->pw_gid;
			c->switch_user = 1;
		}
	}
	if (c->group != NULL) {
		struct group *gr = getgrnam(c->group);
		if (gr == NULL)
			err_at(x, gn, "group \"%s\" does not exist", c->group);
		else
			c->gid = gr->gr_gid;
		if (c->user == NULL)
			err_at(x, gn, "group needs user as well");
	}
}

/* mcpd-tool, the helper commands use to talk back: beside the running
 * binary (a build tree), else where make install put it. */
static const char *
find_helper(struct config *c)
{
	char *dir = exe_dir();
	const char *p = dir != NULL ? arena_printf(c->arena, "%s/mcpd-tool", dir) : NULL;
	free(dir);
	if (p != NULL && access(p, X_OK) == 0)
		return p;
	return arena_printf(c->arena, "%s/mcpd-tool", mcpd_libexec_dir);
}

char *
config_default_plugin_dir(void)
{
	char *dir = exe_dir();
	char *p = NULL;
	if (dir != NULL && asprintf(&p, "%s/plugins", dir) < 0)
		p = NULL;
	free(dir);
	struct stat st;
	if (p != NULL && stat(p, &st) == 0 && S_ISDIR(st.st_mode))
		return p;
	free(p);
	return strdup(mcpd_default_plugin_dir);
}

/* plugin_dir as written (relative to the config's directory), or the
 * default (config_default_plugin_dir). */
static const char *
find_plugin_dir(struct config *c)
{
	if (c->plugin_dir != NULL) {
		if (c->plugin_dir[0] == '/')
			return c->plugin_dir;
		return arena_printf(c->arena, "%s/%s", c->config_dir, c->plugin_dir);
	}
	char *dir = config_default_plugin_dir();
	const char *p = dir != NULL ? arena_printf(c->arena, "%s", dir) : NULL;
	free(dir);
	return p != NULL ? p : mcpd_default_plugin_dir;
}

/* An operation mcpd calls without checking for NULL. */
struct required_op {
	const char *name;
	size_t offset;
};

#define OP(type, op) { #op, offsetof(type, op) }
static const struct required_op storage_required[] = {
	OP(struct mcpd_storage_ops, get), OP(struct mcpd_storage_ops, set),
	OP(struct mcpd_storage_ops, del), OP(struct mcpd_storage_ops, log_append),
	OP(struct mcpd_storage_ops, log_range), { NULL, 0 },
};
static const struct required_op transport_required[] = {
	OP(struct mcpd_transport_ops, subscribe), OP(struct mcpd_transport_ops, unsubscribe),
	OP(struct mcpd_transport_ops, publish), { NULL, 0 },
};
static const struct required_op auth_required[] = {
	OP(struct mcpd_auth_ops, authenticate), { NULL, 0 },
};
#undef OP

/* Take the plugin's table of operations as far as both sides know it
 * (its size comes first; what it lacks stays NULL), and refuse one
 * without an operation that mcpd calls unchecked. */
static int
backend_ops(struct ctx *x, struct config *c, struct backend *b, enum mcpd_plugin_kind kind,
    const char *what, const struct cnode *at)
{
	const void *theirs = b->lp->desc->ops;
	size_t size = *(const uint32_t *)theirs;
	size_t ours = kind == MCPD_PLUGIN_STORAGE ? sizeof(struct mcpd_storage_ops) :
	    kind == MCPD_PLUGIN_AUTH ? sizeof(struct mcpd_auth_ops) : sizeof(struct mcpd_transport_ops);
	const struct required_op *req = kind == MCPD_PLUGIN_STORAGE ? storage_required :
	    kind == MCPD_PLUGIN_AUTH ? auth_required : transport_required;
	char *ops = arena_zalloc(c->arena, ours);
	if (ops == NULL) {
		err_at(x, at, "%s: out of memory", what);
		return -1;
	}
	memcpy(ops, theirs, size < ours ? size : ours);
	char missing[128];
	struct sbuf ms;
	sbuf_init(&ms, missing, sizeof(missing));
	for (; req->name != NULL; req++) {
		void (*fn)(void);
		memcpy(&fn, ops + req->offset, sizeof(fn));
		if (fn == NULL)
			sbuf_printf(&ms, "%s%s", ms.len ? ", " : "", req->name);
	}
	sbuf_mark_cut(&ms, "...");
	if (ms.len > 0) {
		err_at(x, at, "%s: plugin %s lacks operations that mcpd needs: %s", what, b->name, missing);
		return -1;
	}
	b->ops = ops;
	return 0;
}

/* Load the plugin named by a storage: or transport: section and let it
 * check its keys (mcpd -t does this too). */
static void
load_backend(struct ctx *x, struct config *c, struct backend *b, enum mcpd_plugin_kind kind,
    const char *default_name, const char *what)
{
	static const struct cnode empty = { .type = CNODE_MAP, .line = 1, .col = 1 };
	if (b->name == NULL)
		b->name = default_name;
	const struct cnode *at = b->section ? cnode_get(b->section, "plugin") : NULL;
	const struct cnode *section = b->section ? b->section : &empty;
	/* A name (lmdb, or lmdb.so like tool plugins) is looked up in
	 * plugin_dir; a path is taken as written, relative to the file. */
	size_t nl = strlen(b->name);
	int has_so = nl > 3 && strcmp(b->name + nl - 3, ".so") == 0;
	const char *path = strchr(b->name, '/') == NULL ?
	    arena_printf(c->arena, "%s/%s%s", c->plugin_dir, b->name, has_so ? "" : ".so") :
	    (b->name[0] == '/' ? b->name : arena_printf(c->arena, "%s/%s", c->config_dir, b->name));
	char err[1024];
	b->lp = plugin_load(path, kind, err, sizeof(err));
	if (b->lp == NULL) {
		err_at(x, at, "%s: %s", what, err);
		return;
	}
	const struct mcpd_plugin *d = b->lp->desc;
	if (d->size < offsetof(struct mcpd_plugin, flags) + sizeof(d->flags) || d->create == NULL ||
	    d->ops == NULL) {
		err_at(x, at, "%s: plugin %s lacks the %s operations (built for an older ABI?)", what, b->name, what);
		b->lp = NULL;
		return;
	}
	if (kind == MCPD_PLUGIN_AUTH && d->abi_minor < 4) {
		err_at(x, at, "auth: plugin %s was built for plugin ABI %u.%u; auth plugins need 1.4 or later",
		    b->name, d->abi_major, d->abi_minor);
		b->lp = NULL;
		return;
	}
	if (backend_ops(x, c, b, kind, what, at) < 0) {
		b->lp = NULL;
		return;
	}
	if ((d->flags & MCPD_PLUGIN_PROCESS_LOCAL) && c->workers > 1) {
		err_at(x, at ? at : cnode_get(c->root, "workers"),
		    "%s plugin %s keeps its data inside one process: it needs workers: 1 (or use lmdb)",
		    what, b->name);
		b->lp = NULL;
		return;
	}
	/* user: is applied only by a master started as root (else ignored,
	 * see master.c): only then are there files to give the workers. */
	int switching = c->switch_user && geteuid() == 0;
	host_set_identity(switching ? (long)c->uid : -1, switching ? (long)c->gid : -1);
	host_set_config_file(c->path);
	err[0] = '\0';
	if (b->section != NULL)
		section = plugin_view(c, section, kind == MCPD_PLUGIN_STORAGE);
	b->inst = d->create(host_table(), (const struct mcpd_config *)section, err, sizeof(err));
	if (b->inst == NULL) {
		/* Messages that start with our file name carry their own place. */
		if (strncmp(err, c->path, strlen(c->path)) == 0)
			errlist_add(x->errs, "%s", err);
		else
			err_at(x, at, "%s plugin %s: %s", what, b->name, err[0] ? err : "refused its configuration");
		b->lp = NULL;
	}
}

static int one_client, lambda_mode;

void
config_one_client(int on)
{
	one_client = on;
}

void
config_lambda(int on)
{
	lambda_mode = on;
}

static struct config *
finish(struct config *c, struct errlist *errs, size_t nerr_before)
{
	struct ctx x = { c, errs, c->path, 0 };
	set_defaults(c);
	parse_section(&x, c->root, &top_section, c);
	if (c->root->type == CNODE_MAP) {
		if (c->nlisten == 0 && cnode_get(c->root, "listen") == NULL) {
			c->listen = arena_zalloc(c->arena, sizeof(*c->listen));
			struct listen_conf *l = &c->listen[0];
			char err[128];
			l->address = "127.0.0.1:8080";
			l->backlog = 511;
			l->mode = -1;
			l->line = l->col = 1;
			config_parse_address(l->address, &l->sa, &l->salen, &l->family, err, sizeof(err));
			c->nlisten = 1;
		}
		resolve_identity(&x, c);
	}
	if (c->metrics.listen != NULL && !c->metrics.enabled) {
		err_at(&x, cnode_get(cnode_get(c->root, "metrics"), "enabled"),
		    "metrics.listen needs metrics.enabled: true");
	} else if (c->metrics.listen != NULL) {
		/* The last listener: bound and inherited like the others, and
		 * served by each worker with /metrics alone. */
		struct listen_conf *l = arena_zalloc(c->arena, (c->nlisten + 1) * sizeof(*l));
		if (l != NULL) {
			for (size_t i = 0; i < c->nlisten; i++)
				if (same_address(&c->listen[i], c->metrics.listen))
					err_at(&x, cnode_get(cnode_get(c->root, "metrics"), "listen"),
					    "metrics.listen \"%s\" is also a listen address", c->metrics.listen->address);
			memcpy(l, c->listen, c->nlisten * sizeof(*l));
			l[c->nlisten] = *c->metrics.listen;
			c->listen = l;
			c->nlisten++;
		}
	}
	/* mcpd --lambda listens nowhere: the Host of its requests is the
	 * function URL's or the API's name, not a loopback one. */
	if (c->root->type == CNODE_MAP && cnode_get(c->root, "allowed_hosts") == NULL && !lambda_mode &&
	    loopback_only(c)) {
		/* Bound to loopback only: refuse other Host names, the DNS
		 * rebinding defence the MCP transport asks for. */
		c->allowed_hosts = arena_zalloc(c->arena, (c->nlisten + 4) * sizeof(char *));
		c->allowed_hosts[c->nhosts++] = "localhost";
		c->allowed_hosts[c->nhosts++] = "127.0.0.1";
		c->allowed_hosts[c->nhosts++] = "[::1]";
		/* and the loopback addresses it listens on, such as 127.0.0.2 */
		for (size_t i = 0; i < c->nlisten; i++) {
			if (c->listen[i].family == AF_UNIX)
				continue;
			char a[80];
			sockaddr_format((const struct sockaddr *)&c->listen[i].sa, c->listen[i].salen, a, sizeof(a));
			char *colon = strrchr(a, ':');
			if (colon != NULL)
				*colon = '\0';
			c->allowed_hosts[c->nhosts++] = arena_strdup(c->arena, a);
		}
	}
	char kerr[512];
	if (c->request_state.key_file != NULL && c->request_state.key_file[0] != '/')
		c->request_state.key_file = arena_printf(c->arena, "%s/%s", c->config_dir, c->request_state.key_file);
	if (reqstate_key(c->request_state.key_file, c->request_state.key, kerr, sizeof(kerr)) < 0)
		err_at(&x, cnode_get(cnode_get(c->root, "request_state"), "key_file"), "request_state.key_file: %s", kerr);
	backend_keys(&x, c, &c->transport, "mcpd transport signing", &c->sign);
	backend_keys(&x, c, &c->storage, "mcpd storage sealing", &c->seal);
	if (c->storage.hash_key_file != NULL) {
		const char *path = c->storage.hash_key_file[0] == '/' ? c->storage.hash_key_file :
		    arena_printf(c->arena, "%s/%s", c->config_dir, c->storage.hash_key_file);
		char kerr2[600];
		if (keyfile_read(path, "mcpd id hashing", c->idkey.key[0], kerr2, sizeof(kerr2)) < 0)
			err_at(&x, cnode_get(c->storage.section, "hash_key_file"), "hash_key_file: %s", kerr2);
		else
			c->idkey.n = 1;
	}
	c->helper_path = find_helper(c);
	c->plugin_dir = find_plugin_dir(c);
	c->lambda.serving = lambda_mode;
	config_tools_finish(&x, c);
	if (c->workers_auto) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		c->workers = n > 0 ? (uint64_t)n : 1;
		if (c->workers > 64)
			c->workers = 64;
	}
	if (one_client) {
		/* mcpd --stdio: one process, one client, whose session lives
		 * and dies with the process; nothing to share with anyone. */
		c->workers = 1;
		c->storage.name = "memory";
		c->storage.section = NULL;
		c->storage_cache.entries = 0;
		c->transport.name = "local";
		c->transport.section = NULL;
	}
	if (lambda_mode) {
		/* mcpd --lambda: one process per execution environment, and
		 * many environments: sessions only mean something in a
		 * network storage, which the operator names; by default none
		 * outlives the environment. */
		c->workers = 1;
		if (c->storage.name == NULL)
			c->storage.name = "memory";
	}
	if (errs->n == nerr_before && c->root->type == CNODE_MAP) {
		load_backend(&x, c, &c->storage, MCPD_PLUGIN_STORAGE, "lmdb", "storage");
		load_backend(&x, c, &c->transport, MCPD_PLUGIN_TRANSPORT, "local", "transport");
		if (c->auth.name != NULL && strcmp(c->auth.name, "none") == 0)
			c->auth.name = NULL;
		if (c->oauth.enabled)
			oauth_config_finish(&x, c);
		else if (c->auth.name != NULL)
			load_backend(&x, c, &c->auth, MCPD_PLUGIN_AUTH, NULL, "auth");
		/* A shared rate counts with incr (every built-in storage has it). */
		const struct mcpd_storage_ops *sops = c->storage.ops;
		if (c->limits.rate.shared && sops != NULL && sops->incr == NULL)
			err_at(&x, cnode_get(cnode_get(cnode_get(c->root, "limits"), "rate"), "shared"),
			    "limits.rate.shared needs a storage plugin with incr (storage plugin %s has none)",
			    c->storage.name);
		/* Scopes without auth would be a lock with no door around it. */
		for (size_t i = 0; c->auth.name == NULL && i < c->ntools; i++)
			if (c->tools[i].scopes != NULL)
				errlist_add(errs, "%s:%d: tool \"%s\" has scopes: but there is no auth: section "
				    "to check them (add auth: { plugin: apikey, ... } or another auth plugin)",
				    c->path, c->tools[i].line, c->tools[i].name);
	}
	if (errs->n != nerr_before) {
		config_free(c);
		return NULL;
	}
	return c;
}

static struct config *
config_new(const char *name)
{
	struct arena *a = arena_new(16384);
	if (a == NULL)
		return NULL;
	struct config *c = arena_zalloc(a, sizeof(*c));
	c->arena = a;
	c->path = arena_strdup(a, name);
	const char *slash = strrchr(name, '/');
	if (slash == NULL) {
		char cwd[4096];
		c->config_dir = getcwd(cwd, sizeof(cwd)) ? arena_strdup(a, cwd) : ".";
	} else if (name[0] == '/') {
		c->config_dir = arena_strndup(a, name, (size_t)(slash - name));
	} else {
		char cwd[4096];
		c->config_dir = getcwd(cwd, sizeof(cwd)) ?
		    arena_printf(a, "%s/%.*s", cwd, (int)(slash - name), name) : ".";
	}
	return c;
}

struct config *
config_load(const char *path, struct errlist *errs)
{
	size_t before = errs->n;
	struct config *c = config_new(path);
	if (c == NULL) {
		errlist_add(errs, "%s: out of memory", path);
		return NULL;
	}
	char err[1024];
	c->root = conftree_load_file(c->arena, path, err, sizeof(err));
	if (c->root == NULL) {
		errlist_add(errs, "%s", err);
		config_free(c);
		return NULL;
	}
	return finish(c, errs, before);
}

struct config *
config_load_string(const char *name, const char *text, struct errlist *errs)
{
	size_t before = errs->n;
	struct config *c = config_new(name);
	if (c == NULL) {
		errlist_add(errs, "%s: out of memory", name);
		return NULL;
	}
	char err[1024];
	c->root = conftree_load_string(c->arena, name, text, strlen(text), err, sizeof(err));
	if (c->root == NULL) {
		errlist_add(errs, "%s", err);
		config_free(c);
		return NULL;
	}
	return finish(c, errs, before);
}

void
config_free(struct config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nlisten; i++)
		if (c->listen[i].ssl_ctx != NULL)
			c->listen[i].ssl_ctx_free(c->listen[i].ssl_ctx);
	config_tools_free(c);
	config_skills_free(c);
	OPENSSL_cleanse(&c->sign, sizeof(c->sign));
	OPENSSL_cleanse(&c->seal, sizeof(c->seal));
	OPENSSL_cleanse(&c->idkey, sizeof(c->idkey));
	struct backend *bs[] = { &c->storage, &c->transport, &c->auth };
	for (size_t i = 0; i < 3; i++)
		if (bs[i]->lp != NULL && bs[i]->inst != NULL && bs[i]->lp->desc->destroy != NULL)
			bs[i]->lp->desc->destroy(bs[i]->inst);
	arena_free(c->arena);
}

/* Backends connect in the process that serves (each worker, after fork
 * and the privilege drop; or the one process of --stdio and --lambda).
 * auth: the auth plugin too (stdio serves without auth). */
int
config_attach_backends(struct config *cfg, int auth, char *err, size_t errlen)
{
	struct backend *bs[] = { &cfg->storage, &cfg->transport, &cfg->auth };
	static const char *const what[] = { "storage", "transport", "auth" };
	for (size_t i = 0; i < (auth ? 3u : 2u); i++) {
		if (bs[i]->lp == NULL || bs[i]->lp->desc->attach == NULL)
			continue;
		char why[512] = "";
		if (bs[i]->lp->desc->attach(bs[i]->inst, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s plugin %s: %s", what[i], bs[i]->name, why);
			return -1;
		}
	}
	return 0;
}

void
config_detach_backends(struct config *cfg, int auth)
{
	struct backend *bs[] = { &cfg->storage, &cfg->transport, &cfg->auth };
	for (size_t i = 0; i < (auth ? 3u : 2u); i++)
		if (bs[i]->lp != NULL && bs[i]->lp->desc->detach != NULL)
			bs[i]->lp->desc->detach(bs[i]->inst);
}
