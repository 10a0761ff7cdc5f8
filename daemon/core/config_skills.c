/* The skills: section of mcpd.yaml (the io.modelcontextprotocol/skills
 * extension): each entry a directory that holds a SKILL.md, or whose
 * subdirectories do. A skill's front matter is checked (skillmd.c), its
 * files found, sized and hashed here, at load, so that mcpd -t reports
 * what a client would trip on and skills/list is prebuilt (registry.c). */
#include "arena.h"
#include "config.h"
#include "config_internal.h"
#include "defs.h"
#include "schema.h"
#include "skillmd.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* The extension's advice, kept as limits: a skill of at most 512 files
 * and 16 MiB in all. Directories are bounded too, and how deep they go. */
#define SKILL_MAX_FILES 512
#define SKILL_MAX_DIRS 512
#define SKILL_MAX_BYTES (16u << 20)
#define SKILL_MAX_DEPTH 16
#define SKILL_MAX_SKILLS 1000
#define SKILLMD_MAX (1u << 20)

struct scan {
	struct ctx *x;
	const struct cnode *at;
	struct skill_def *sk;
	size_t cap, nfiles, ndirs;
	uint64_t bytes;
	int failed;
};

static const struct {
	const char *ext, *type;
} mime_types[] = {
	{ ".md", "text/markdown" }, { ".markdown", "text/markdown" }, { ".txt", "text/plain" },
	{ ".json", "application/json" }, { ".yaml", "application/yaml" }, { ".yml", "application/yaml" },
	{ ".html", "text/html" }, { ".htm", "text/html" }, { ".css", "text/css" }, { ".csv", "text/csv" },
	{ ".xml", "application/xml" }, { ".js", "text/javascript" }, { ".py", "text/x-python" },
	{ ".sh", "text/x-shellscript" }, { ".png", "image/png" }, { ".jpg", "image/jpeg" },
	{ ".jpeg", "image/jpeg" }, { ".gif", "image/gif" }, { ".svg", "image/svg+xml" },
	{ ".pdf", "application/pdf" }, { ".zip", "application/zip" },
};

static const char *
mime_type(const char *name, int binary)
{
	const char *dot = strrchr(name, '.');
	for (size_t i = 0; dot != NULL && i < sizeof(mime_types) / sizeof(mime_types[0]); i++)
		if (strcasecmp(dot, mime_types[i].ext) == 0)
			return mime_types[i].type;
	return binary ? "application/octet-stream" : "text/plain";
}

/* A path's segments percent-encoded where RFC 3986 wants it. */
static const char *
uri_path(struct arena *a, const char *path)
{
	static const char ok[] = "-._~!$&'()*+,;=:@/";
	char *out = arena_alloc(a, 3 * strlen(path) + 1), *o = out;
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr(ok, *p) != NULL)
			*o++ = (char)*p;
		else
			o += sprintf(o, "%%%02X", *p);
	}
	*o = '\0';
	return out;
}

static struct skill_file *
add_file(struct scan *s, const char *rel)
{
	struct skill_def *sk = s->sk;
	if (sk->nfiles == s->cap) {
		size_t ncap = s->cap ? 2 * s->cap : 16;
		struct skill_file *f = realloc(sk->files, ncap * sizeof(*f));
		if (f == NULL)
			return NULL;
		sk->files = f;
		s->cap = ncap;
	}
	struct skill_file *f = &sk->files[sk->nfiles++];
	memset(f, 0, sizeof(*f));
	struct arena *a = s->x->cfg->arena;
	f->path = arena_strdup(a, rel);
	f->uri = arena_printf(a, "%s/%s", sk->root_uri, uri_path(a, rel));
	return f;
}

/* Read a file whole (bounded by what the skill may still hold), hash it
 * and tell text from binary. */
static int
hash_file(struct scan *s, const char *abs, struct skill_file *f, char **text, size_t *textlen)
{
	FILE *fp = fopen(abs, "rb");
	if (fp == NULL) {
		err_at(s->x, s->at, "skill %s: %s: %s", s->sk->dir, f->path, strerror(errno));
		return -1;
	}
	size_t room = SKILL_MAX_BYTES - (size_t)s->bytes;
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap + 1);
	for (;;) {
		if (buf == NULL)
			break;
		if (len == cap) {
			if (cap > room)
				break;
			char *nb = realloc(buf, 2 * cap + 1);
			if (nb == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		size_t got = fread(buf + len, 1, cap - len, fp);
		if (got == 0)
			break;
		len += got;
	}
	int bad = ferror(fp);
	fclose(fp);
	if (buf == NULL || bad) {
		err_at(s->x, s->at, "skill %s: %s: %s", s->sk->dir, f->path,
		    buf == NULL ? "out of memory" : "read error");
		free(buf);
		return -1;
	}
	if (len > room) {
		err_at(s->x, s->at, "skill %s: its files come to more than %u MiB (at %s)", s->sk->dir,
		    SKILL_MAX_BYTES >> 20, f->path);
		free(buf);
		return -1;
	}
	buf[len] = '\0';
	s->bytes += len;
	f->size = len;
	unsigned char h[32];
	unsigned int hn = sizeof(h);
	EVP_Digest(buf, len, h, &hn, EVP_sha256(), NULL);
	memcpy(f->digest, "sha256:", 7);
	for (int i = 0; i < 32; i++)
		snprintf(f->digest + 7 + 2 * i, 3, "%02x", h[i]);
	f->binary = memchr(buf, '\0', len) != NULL || !utf8_valid(buf, len);
	const char *base = strrchr(f->path, '/');
	f->mime_type = mime_type(base ? base + 1 : f->path, f->binary);
	if (text != NULL) {
		*text = buf;
		*textlen = len;
	} else {
		free(buf);
	}
	return 0;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entries of a directory, sorted, hidden ones (.git) left out. */
static char **
dir_names(const char *dir, size_t *n, int *err)
{
	DIR *d = opendir(dir);
	*n = 0;
	if (d == NULL) {
		*err = errno;
		return NULL;
	}
	size_t cap = 16;
	char **names = malloc(cap * sizeof(char *));
	struct dirent *de;
	while (names != NULL && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (*n == cap) {
			char **nn = realloc(names, 2 * cap * sizeof(char *));
			if (nn == NULL)
				break;
			names = nn;
			cap *= 2;
		}
		if ((names[*n] = strdup(de->d_name)) != NULL)
			(*n)++;
		if (*n > SKILL_MAX_FILES + SKILL_MAX_DIRS)
			break;
	}
	closedir(d);
	if (names == NULL) {
		*err = ENOMEM;
		return NULL;
	}
	qsort(names, *n, sizeof(char *), name_cmp);
	return names;
}

static void
free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Every file under the skill's directory, depth first in name order.
 * Symbolic links to files are followed; to directories, not (no loops). */
static void
scan_dir(struct scan *s, const char *rel, int depth)
{
	const char *dir = rel[0] ? arena_printf(s->x->cfg->arena, "%s/%s", s->sk->dir, rel) : s->sk->dir;
	size_t n;
	int e = 0;
	char **names = dir_names(dir, &n, &e);
	if (names == NULL) {
		err_at(s->x, s->at, "skill %s: %s: %s", s->sk->dir, rel[0] ? rel : ".", strerror(e));
		s->failed = 1;
		return;
	}
	for (size_t i = 0; i < n && !s->failed; i++) {
		char *sub = rel[0] ? arena_printf(s->x->cfg->arena, "%s/%s", rel, names[i]) :
		    arena_strdup(s->x->cfg->arena, names[i]);
		char *abs = arena_printf(s->x->cfg->arena, "%s/%s", s->sk->dir, sub);
		struct stat lst, st;
		if (lstat(abs, &lst) < 0 || stat(abs, &st) < 0)
			continue;       /* vanished, or a dangling link */
		if (S_ISDIR(st.st_mode)) {
			if (S_ISLNK(lst.st_mode))
				continue;
			if (depth >= SKILL_MAX_DEPTH || ++s->ndirs > SKILL_MAX_DIRS) {
				err_at(s->x, s->at, "skill %s: more than %d directories, or deeper than %d (at %s)",
				    s->sk->dir, SKILL_MAX_DIRS, SKILL_MAX_DEPTH, sub);
				s->failed = 1;
				break;
			}
			struct skill_file *f = add_file(s, sub);
			if (f == NULL) {
				s->failed = 1;
				break;
			}
			f->dir = 1;
			f->mime_type = "inode/directory";
			scan_dir(s, sub, depth + 1);
			continue;
		}
		if (!S_ISREG(st.st_mode) || strcmp(sub, "SKILL.md") == 0)
			continue;       /* SKILL.md was taken first */
		if (++s->nfiles > SKILL_MAX_FILES) {
			err_at(s->x, s->at, "skill %s: more than %d files", s->sk->dir, SKILL_MAX_FILES);
			s->failed = 1;
			break;
		}
		struct skill_file *f = add_file(s, sub);
		if (f == NULL || hash_file(s, abs, f, NULL, NULL) < 0)
			s->failed = 1;
	}
	free_names(names, n);
}

static int
file_cmp(const void *a, const void *b)
{
	return strcmp(((const struct skill_file *)a)->path, ((const struct skill_file *)b)->path);
}

/* One skill: dir holds SKILL.md. */
static void
load_skill(struct ctx *x, const struct cnode *at, const char *dir, struct skill_def *sk)
{
	struct arena *a = x->cfg->arena;
	const char *base = strrchr(dir, '/');
	base = base ? base + 1 : dir;
	memset(sk, 0, sizeof(*sk));
	sk->dir = dir;
	sk->line = at->line;
	sk->name = arena_strdup(a, base);
	sk->root_uri = arena_printf(a, "skill://%s", base);
	struct scan s = { x, at, sk, 0, 1, 0, 0, 0 };
	struct skill_file *md = add_file(&s, "SKILL.md");
	char *text = NULL;
	size_t len = 0;
	const char *mdpath = arena_printf(a, "%s/SKILL.md", dir);
	struct stat st;
	const char *why = NULL;
	if (md == NULL)
		why = "out of memory";
	else if (stat(mdpath, &st) < 0)
		why = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		why = "is not a regular file";
	else if ((uint64_t)st.st_size > SKILLMD_MAX)
		why = "is larger than 1 MiB";
	if (why != NULL) {
		err_at(x, at, "skill %s: SKILL.md: %s", dir, why);
		return;
	}
	if (hash_file(&s, mdpath, md, &text, &len) < 0)
		return;
	struct skillmd fm;
	if (skillmd_parse(mdpath, text, len, base, &fm, x->errs) < 0) {
		free(text);
		return;
	}
	free(text);
	sk->frontmatter = fm.frontmatter;
	sk->name = fm.name;
	sk->description = fm.description;
	sk->uri = md->uri;
	md->mime_type = "text/markdown";
	scan_dir(&s, "", 0);
	/* SKILL.md first, then the rest by path: a stable listing. */
	if (sk->nfiles > 2)
		qsort(sk->files + 1, sk->nfiles - 1, sizeof(*sk->files), file_cmp);
}

static int
has_skillmd(const char *dir)
{
	char p[4096];
	struct stat st;
	return (size_t)snprintf(p, sizeof(p), "%s/SKILL.md", dir) < sizeof(p) &&
	    stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static struct skill_def *
next_skill(struct ctx *x, const struct cnode *at, size_t *cap)
{
	struct config *c = x->cfg;
	if (c->nskills >= SKILL_MAX_SKILLS) {
		err_at(x, at, "more than %d skills", SKILL_MAX_SKILLS);
		return NULL;
	}
	if (c->nskills == *cap) {
		size_t ncap = *cap ? 2 * *cap : 8;
		struct skill_def *ns = realloc(c->skills, ncap * sizeof(*ns));
		if (ns == NULL)
			return NULL;
		c->skills = ns;
		*cap = ncap;
	}
	return &c->skills[c->nskills];
}

static void
add_skill(struct ctx *x, const struct cnode *at, const char *dir, size_t *cap)
{
	struct skill_def *sk = next_skill(x, at, cap);
	if (sk == NULL)
		return;
	size_t before = x->errs->n;
	load_skill(x, at, dir, sk);
	if (x->errs->n != before) {
		cJSON_Delete(sk->frontmatter);
		free(sk->files);
		return;
	}
	for (size_t i = 0; i < x->cfg->nskills; i++)
		if (strcmp(x->cfg->skills[i].name, sk->name) == 0) {
			err_at(x, at, "skill \"%s\" (%s) is served already, from %s", sk->name, dir,
			    x->cfg->skills[i].dir);
			cJSON_Delete(sk->frontmatter);
			free(sk->files);
			return;
		}
	x->cfg->nskills++;
}

/* skills: [dir, ...]: each a skill's directory, or a directory of them. */
int
parse_skills(struct ctx *x, const struct cnode *n, void *dst)
{
	(void)dst;
	if (cnode_is_null(n))
		return 0;
	if (want_type(x, n, CNODE_SEQ, "skills") < 0)
		return -1;
	size_t cap = 0;
	for (size_t i = 0; i < n->n; i++) {
		const struct cnode *item = n->items[i];
		const char *p;
		if (scalar_string(x, item, "a skills entry (a directory)", &p) < 0)
			continue;
		if (p[0] == '\0') {
			err_at(x, item, "a skills entry must name a directory");
			continue;
		}
		const char *dir = p[0] == '/' || x->cfg->config_dir == NULL ? arena_strdup(x->cfg->arena, p) :
		    arena_printf(x->cfg->arena, "%s/%s", x->cfg->config_dir, p);
		size_t dl = strlen(dir);
		while (dl > 1 && dir[dl - 1] == '/')
			((char *)dir)[--dl] = '\0';
		struct stat st;
		if (stat(dir, &st) < 0) {
			err_at(x, item, "skills: %s: %s", dir, strerror(errno));
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			err_at(x, item, "skills: %s is not a directory", dir);
			continue;
		}
		if (has_skillmd(dir)) {
			add_skill(x, item, dir, &cap);
			continue;
		}
		size_t nn;
		int e = 0;
		char **names = dir_names(dir, &nn, &e);
		if (names == NULL) {
			err_at(x, item, "skills: %s: %s", dir, strerror(e));
			continue;
		}
		size_t found = 0;
		for (size_t j = 0; j < nn; j++) {
			const char *sub = arena_printf(x->cfg->arena, "%s/%s", dir, names[j]);
			if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode) && has_skillmd(sub)) {
				add_skill(x, item, sub, &cap);
				found++;
			}
		}
		free_names(names, nn);
		if (found == 0)
			err_at(x, item, "skills: %s holds no SKILL.md, nor does any directory in it", dir);
	}
	return 0;
}

void
config_skills_free(struct config *c)
{
	for (size_t i = 0; i < c->nskills; i++) {
		cJSON_Delete(c->skills[i].frontmatter);
		cJSON_Delete(c->skills[i].entry);
		cJSON_Delete(c->skills[i].listing);
		free(c->skills[i].files);
	}
	free(c->skills);
	c->skills = NULL;
	c->nskills = 0;
}
