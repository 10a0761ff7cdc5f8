/* auth: { plugin: internal, ... }: the keys of the built-in authorization
 * server and its users file. */
#include "arena.h"
#include "config.h"
#include "config_internal.h"
#include "conftree.h"
#include "pwhash.h"
#include "util.h"

#include <mcpd/plugin.h>

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_USERS 100000
#define MAX_USER_NAME 128

static const struct field rate_limit_fields[] = {
	{ "token", F_UINT, offsetof(struct oauth_conf, rate_token), 0, 1000000, { NULL } },
	{ "login", F_UINT, offsetof(struct oauth_conf, rate_login), 0, 1000000, { NULL } },
	{ "register", F_UINT, offsetof(struct oauth_conf, rate_register), 0, 1000000, { NULL } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};
static const struct section rate_limit_section = { "auth.rate_limit", 0, rate_limit_fields, NULL };

static const struct field internal_fields[] = {
	/* the keys of every auth section, read by config.c */
	{ "plugin", F_IGNORE, 0, 0, 0, { NULL } },
	{ "resource", F_IGNORE, 0, 0, 0, { NULL } },
	{ "authorization_servers", F_IGNORE, 0, 0, 0, { NULL } },
	{ "scopes_supported", F_IGNORE, 0, 0, 0, { NULL } },
	{ "cache", F_IGNORE, 0, 0, 0, { NULL } },
	{ "resource_name", F_IGNORE, 0, 0, 0, { NULL } },
	{ "admin_scope", F_IGNORE, 0, 0, 0, { NULL } },
	{ "issuer", F_STRING, offsetof(struct oauth_conf, issuer), 0, 0, { NULL } },
	{ "users_file", F_PATH, offsetof(struct oauth_conf, users_file), 0, 0, { NULL } },
	{ "token_ttl", F_DURATION, offsetof(struct oauth_conf, token_ttl_ms), 1000, 86400000, { NULL } },
	{ "refresh_ttl", F_DURATION, offsetof(struct oauth_conf, refresh_ttl_ms), 0, 366ull * 86400000, { NULL } },
	{ "code_ttl", F_DURATION, offsetof(struct oauth_conf, code_ttl_ms), 1000, 600000, { NULL } },
	{ "client_ttl", F_DURATION, offsetof(struct oauth_conf, client_ttl_ms), 60000, 3660ull * 86400000, { NULL } },
	{ "login_ttl", F_DURATION, offsetof(struct oauth_conf, login_ttl_ms), 60000, 3600000, { NULL } },
	{ "registration", F_BOOL, offsetof(struct oauth_conf, registration), 0, 0, { NULL } },
	{ "client_metadata_documents", F_BOOL, offsetof(struct oauth_conf, client_metadata_documents), 0, 0, { NULL } },
	{ "client_metadata_ca_file", F_PATH, offsetof(struct oauth_conf, client_metadata_ca_file), 0, 0, { NULL } },
	{ "client_metadata_private_addresses", F_BOOL, offsetof(struct oauth_conf, client_metadata_private), 0, 0,
	    { NULL } },
	{ "client_metadata_cache", F_DURATION, offsetof(struct oauth_conf, client_metadata_cache_ms), 0, 86400000,
	    { NULL } },
	{ "rate_limit", F_SECTION, 0, 0, 0, { .section = &rate_limit_section } },
	{ "login_title", F_STRING, offsetof(struct oauth_conf, login_title), 0, 0, { NULL } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};
static const struct section internal_section = { "auth", 0, internal_fields, NULL };

void
oauth_config_defaults(struct config *c)
{
	struct oauth_conf *o = &c->oauth;
	o->token_ttl_ms = 3600000;
	o->refresh_ttl_ms = 30ull * 86400000;
	o->code_ttl_ms = 60000;
	o->client_ttl_ms = 90ull * 86400000;
	o->login_ttl_ms = 600000;
	o->registration = 1;
	o->rate_token = 60;
	o->rate_login = 10;
	o->rate_register = 10;
	o->client_metadata_cache_ms = 600000;
}

int
parse_oauth_section(struct ctx *x, const struct cnode *n)
{
	struct config *c = x->cfg;
	struct oauth_conf *o = &c->oauth;
	o->enabled = 1;
	size_t before = x->errs->n;
	parse_section(x, n, &internal_section, o);
	if (x->errs->n != before)
		return -1;
	if (o->users_file == NULL) {
		err_at(x, n, "auth: the internal authorization server needs users_file: (lines made by mcpd -p USER)");
		return -1;
	}
	if (o->issuer != NULL) {
		const struct cnode *v = cnode_get(n, "issuer");
		const char *u = o->issuer;
		const char *host = strncmp(u, "https://", 8) == 0 ? u + 8 : strncmp(u, "http://", 7) == 0 ? u + 7 : NULL;
		if (host == NULL || host[0] == '\0' || host[0] == '/' || strpbrk(u, "?# ") != NULL) {
			err_at(x, v, "issuer must be an http(s) URL without query or fragment, such as https://mcp.example.com");
			return -1;
		}
		size_t len = strlen(u);
		while (len > 0 && u[len - 1] == '/')
			len--;
		o->issuer = arena_strndup(c->arena, u, len);
	}
	return 0;
}

static int
bad_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > MAX_USER_NAME)
		return 1;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == ':' || *s == 0x7f)
			return 1;
	return 0;
}

/* One line: user:$scrypt$...[:scopes]. */
static int
parse_user(struct arena *ar, char *line, struct oauth_user *u, char *why, size_t len)
{
	char *hash = strchr(line, ':');
	if (hash == NULL) {
		snprintf(why, len, "expected user:$scrypt$...[:scopes], as mcpd -p prints");
		return -1;
	}
	*hash++ = '\0';
	char *scopes = strchr(hash, ':');
	if (scopes != NULL)
		*scopes++ = '\0';
	if (bad_name(line)) {
		snprintf(why, len, "a user name is 1 to %d printable characters without a colon or space",
		    MAX_USER_NAME);
		return -1;
	}
	char hwhy[128];
	if (pwhash_valid(hash, hwhy, sizeof(hwhy)) < 0) {
		snprintf(why, len, "%s", hwhy);
		return -1;
	}
	for (const char *s = scopes; s != NULL && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == '"' || *s == '\\' || (unsigned char)*s > 0x7e) {
			snprintf(why, len, "scopes are printable ASCII without quotes or backslashes");
			return -1;
		}
	u->name = arena_strdup(ar, line);
	u->hash = arena_strdup(ar, hash);
	/* Normalized: single spaces between scopes. */
	char *sc = arena_strdup(ar, scopes ? scopes : "");
	size_t o = 0;
	for (const char *s = sc; *s;) {
		while (*s == ' ' || *s == '\t')
			s++;
		size_t l = strcspn(s, " \t");
		if (l == 0)
			break;
		if (o > 0)
			sc[o++] = ' ';
		memmove(sc + o, s, l);
		o += l;
		s += l;
	}
	sc[o] = '\0';
	u->scopes = sc;
	return 0;
}

static int
by_name(const void *a, const void *b)
{
	const struct oauth_user *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c != 0 ? c : x->line - y->line;
}

static void
load_users(struct ctx *x, struct config *c, const struct cnode *at)
{
	struct oauth_conf *o = &c->oauth;
	const char *path = o->users_file[0] == '/' ? o->users_file :
	    arena_printf(c->arena, "%s/%s", c->config_dir, o->users_file);
	o->users_file = path;
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		err_at(x, at, "auth.users_file %s: %s", path, strerror(errno));
		return;
	}
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 022) != 0) {
		/* Whoever can write it can let themselves in. */
		err_at(x, at, "auth.users_file %s can be written by others (mode %03o): chmod 600 or 640 it",
		    path, (unsigned)(st.st_mode & 0777));
		fclose(f);
		return;
	}
	char line[4096];
	size_t cap = 0;
	int lineno = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		size_t n = strlen(line);
		if (n == sizeof(line) - 1 && line[n - 1] != '\n') {
			errlist_add(x->errs, "%s:%d: line too long", path, lineno);
			break;
		}
		while (n > 0 && isspace((unsigned char)line[n - 1]))
			line[--n] = '\0';
		char *p = line;
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '\0' || *p == '#')
			continue;
		if (o->nusers == MAX_USERS) {
			errlist_add(x->errs, "%s:%d: more than %d users", path, lineno, MAX_USERS);
			break;
		}
		if (o->nusers == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct oauth_user *nu = arena_alloc(c->arena, ncap * sizeof(*nu));
			if (o->nusers > 0)
				memcpy(nu, o->users, o->nusers * sizeof(*nu));
			o->users = nu;
			cap = ncap;
		}
		struct oauth_user *u = &o->users[o->nusers];
		char why[256];
		if (parse_user(c->arena, p, u, why, sizeof(why)) < 0) {
			errlist_add(x->errs, "%s:%d: %s", path, lineno, why);
			continue;
		}
		u->line = lineno;
		o->nusers++;
	}
	/* Sorted, for lookups by name (and to find a name listed twice). */
	if (o->nusers > 1)
		qsort(o->users, o->nusers, sizeof(*o->users), by_name);
	for (size_t i = 1; i < o->nusers; i++)
		if (strcmp(o->users[i - 1].name, o->users[i].name) == 0) {
			const struct oauth_user *a = &o->users[i - 1], *b = &o->users[i];
			errlist_add(x->errs, "%s:%d: user %s is already listed (line %d)", path,
			    a->line > b->line ? a->line : b->line, a->name, a->line < b->line ? a->line : b->line);
		}
	if (ferror(f))
		err_at(x, at, "auth.users_file %s: %s", path, strerror(errno));
	fclose(f);
}

void
oauth_config_finish(struct ctx *x, struct config *c)
{
	if (!c->oauth.enabled)
		return;
	const struct cnode *auth = cnode_get(c->root, "auth");
	load_users(x, c, cnode_get(auth, "users_file"));
	const char *ca = c->oauth.client_metadata_ca_file;
	if (ca != NULL) {
		if (ca[0] != '/')
			c->oauth.client_metadata_ca_file = ca = arena_printf(c->arena, "%s/%s", c->config_dir, ca);
		if (access(ca, R_OK) < 0)
			err_at(x, cnode_get(auth, "client_metadata_ca_file"), "auth.client_metadata_ca_file %s: %s", ca,
			    strerror(errno));
	}
	/* Rate limits count with incr; every built-in storage has it. */
	const struct mcpd_storage_ops *ops = c->storage.ops;
	if (ops != NULL && ops->incr == NULL)
		err_at(x, cnode_get(auth, "plugin"), "auth: the internal authorization server needs a storage "
		    "plugin with incr (storage plugin %s has none)", c->storage.name);
}
