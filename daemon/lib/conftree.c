#include "conftree.h"
#include "arena.h"
#include "envexpand.h"
#include "json.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#define MAX_DEPTH 64
#define ANCHOR_BUCKETS 1024

/* An anchor (&name) and the node it names. An alias (*name) shares that
 * node instead of copying it; what the alias adds to the tree as its
 * readers will walk it is counted, so that a few lines of aliases naming
 * aliases (a "billion laughs") cannot make it huge. */
struct anchor {
	char *name;
	struct cnode *node;         /* NULL while the node is being read */
	size_t nodes, text;         /* its size once expanded */
	int height;                 /* levels below it */
	struct anchor *next;
};

struct frame {                  /* a sequence or mapping being read */
	struct cnode *n;
	size_t cap;                 /* items or pairs allocated */
	int have_key;               /* mapping: a key waits for its value */
	int height;                 /* levels below it so far */
	struct anchor *anchor;
	size_t nodes0, text0;       /* the counts where it started */
};

struct loader {
	struct arena *arena;
	yaml_parser_t *parser;
	const char *name;
	char *err;
	size_t errlen;
	struct frame stack[MAX_DEPTH + 1];
	int depth;
	size_t nodes, text;         /* of the tree as expanded */
	struct cnode *root;
	struct anchor *anchors[ANCHOR_BUCKETS];
	const char *src;            /* the YAML text, to place an expansion's error */
	size_t srclen;
	int verbatim;               /* no ${VAR} expansion (documents not ours) */
};

static void
fail_at(struct loader *l, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fail_at(struct loader *l, const yaml_mark_t *m, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(l->err, l->errlen, "%s:%zu:%zu: %s", l->name, m->line + 1, m->column + 1, msg);
}

static void
parse_failed(struct loader *l)
{
	yaml_parser_t *p = l->parser;
	yaml_mark_t m = p->problem_mark;
	if (p->context != NULL)
		fail_at(l, &m, "%s %s", p->problem ? p->problem : "syntax error", p->context);
	else
		fail_at(l, &m, "%s", p->problem ? p->problem : "syntax error");
}

static unsigned
anchor_hash(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % ANCHOR_BUCKETS;
}

/* The newest anchor of that name: YAML lets a name be used again. */
static struct anchor *
anchor_find(struct loader *l, const char *name)
{
	for (struct anchor *a = l->anchors[anchor_hash(name)]; a != NULL; a = a->next)
		if (strcmp(a->name, name) == 0)
			return a;
	return NULL;
}

static struct anchor *
anchor_add(struct loader *l, const char *name)
{
	struct anchor *a = arena_zalloc(l->arena, sizeof(*a));
	if (a == NULL || (a->name = arena_strdup(l->arena, name)) == NULL)
		return NULL;
	unsigned h = anchor_hash(name);
	a->next = l->anchors[h];
	l->anchors[h] = a;
	return a;
}

/* Count what a node adds to the tree as expanded. */
static int
count(struct loader *l, const yaml_mark_t *m, size_t nodes, size_t text, const char *alias)
{
	if (nodes > CONFTREE_MAX_NODES - l->nodes) {
		if (alias != NULL)
			fail_at(l, m, "alias *%s makes the configuration larger than %u nodes "
			    "once expanded (aliases naming aliases multiply)", alias, CONFTREE_MAX_NODES);
		else
			fail_at(l, m, "the configuration has more than %u nodes", CONFTREE_MAX_NODES);
		return -1;
	}
	if (text > CONFTREE_MAX_TEXT - l->text) {
		if (alias != NULL)
			fail_at(l, m, "alias *%s makes the configuration's text larger than %u bytes "
			    "once expanded (aliases naming aliases multiply)", alias, CONFTREE_MAX_TEXT);
		else
			fail_at(l, m, "the configuration's text is larger than %u bytes", CONFTREE_MAX_TEXT);
		return -1;
	}
	l->nodes += nodes;
	l->text += text;
	return 0;
}

static int
grow(struct loader *l, struct frame *f, size_t want, size_t size)
{
	if (want <= f->cap)
		return 0;
	size_t cap = f->cap ? f->cap * 2 : 4;
	void *p = arena_alloc(l->arena, cap * size);
	if (p == NULL)
		return -1;
	void *old = f->n->type == CNODE_SEQ ? (void *)f->n->items : (void *)f->n->pairs;
	if (f->cap > 0)
		memcpy(p, old, f->cap * size);
	if (f->n->type == CNODE_SEQ)
		f->n->items = p;
	else
		f->n->pairs = p;
	f->cap = cap;
	return 0;
}

/* Put a finished node where it belongs: the root, a sequence's next item,
 * or a mapping's next key or value. */
static int
place(struct loader *l, struct cnode *n, int height, const yaml_mark_t *m)
{
	if (l->depth == 0) {
		l->root = n;
		return 0;
	}
	struct frame *f = &l->stack[l->depth - 1];
	struct cnode *p = f->n;
	if (height + 1 > f->height)
		f->height = height + 1;
	if (p->type == CNODE_SEQ) {
		if (grow(l, f, p->n + 1, sizeof(*p->items)) < 0)
			goto nomem;
		p->items[p->n++] = n;
		return 0;
	}
	if (f->have_key) {
		p->pairs[p->n++].value = n;
		f->have_key = 0;
		return 0;
	}
	if (n->type != CNODE_SCALAR) {
		fail_at(l, m, "mapping keys must be scalars");
		return -1;
	}
	if (grow(l, f, p->n + 1, sizeof(*p->pairs)) < 0)
		goto nomem;
	p->pairs[p->n].key = n;
	p->pairs[p->n].value = NULL;
	f->have_key = 1;
	return 0;
nomem:
	snprintf(l->err, l->errlen, "%s: out of memory", l->name);
	return -1;
}

struct keyref {
	const char *key;
	size_t i;
};

static int
keyref_cmp(const void *a, const void *b)
{
	const struct keyref *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	if (c != 0)
		return c;
	return x->i < y->i ? -1 : x->i > y->i;
}

/* A key given twice: reported at the earliest second use, naming the
 * first. Sorted, so that a mapping of many keys costs n log n. */
static int
check_duplicates(struct loader *l, const struct cnode *map)
{
	if (map->n < 2)
		return 0;
	struct keyref *k = malloc(map->n * sizeof(*k));
	if (k == NULL) {
		snprintf(l->err, l->errlen, "%s: out of memory", l->name);
		return -1;
	}
	for (size_t i = 0; i < map->n; i++) {
		k[i].key = map->pairs[i].key->str;
		k[i].i = i;
	}
	qsort(k, map->n, sizeof(*k), keyref_cmp);
	size_t first = 0, second = SIZE_MAX;
	for (size_t i = 1; i < map->n; i++)
		if (strcmp(k[i - 1].key, k[i].key) == 0 && k[i].i < second &&
		    (i == 1 || strcmp(k[i - 2].key, k[i].key) != 0)) {
			first = k[i - 1].i;
			second = k[i].i;
		}
	free(k);
	if (second == SIZE_MAX)
		return 0;
	const struct cnode *dup = map->pairs[second].key;
	snprintf(l->err, l->errlen, "%s:%d:%d: duplicate key \"%s\" (first at line %d)",
	    l->name, dup->line, dup->col, dup->str, map->pairs[first].key->line);
	return -1;
}

static struct cnode *
node_new(struct loader *l, enum cnode_type type, const yaml_mark_t *m)
{
	struct cnode *n = arena_zalloc(l->arena, sizeof(*n));
	if (n == NULL) {
		snprintf(l->err, l->errlen, "%s: out of memory", l->name);
		return NULL;
	}
	n->type = type;
	n->line = (int)m->line + 1;
	n->col = (int)m->column + 1;
	return n;
}

/* The byte of the source at a mark's line and column (libyaml counts
 * columns in characters and skips a byte order mark). */
static size_t
src_offset(const struct loader *l, size_t line, size_t col)
{
	const unsigned char *s = (const unsigned char *)l->src;
	size_t i = 0, n = l->srclen;
	if (n >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf)
		i = 3;
	for (size_t ln = 0; ln < line && i < n; i++)
		if (s[i] == '\n' || (s[i] == '\r' && (i + 1 >= n || s[i + 1] != '\n')))
			ln++;
	for (size_t c = 0; c < col && i < n; c++)
		for (i++; i < n && (s[i] & 0xc0) == 0x80; i++)
			;
	return i;
}

/* Where the $ at offset off of a scalar's value was written: YAML's quoting
 * and folding change the text but not its $s, so it is the source's $ that
 * has as many before it in the scalar. The scalar's start if none is. */
static void
dollar_mark(const struct loader *l, const yaml_event_t *e, const char *value, size_t off,
    yaml_mark_t *out)
{
	*out = e->start_mark;
	if (l->src == NULL)
		return;
	size_t k = 0;
	for (size_t i = 0; i < off; i++)
		k += value[i] == '$';
	const unsigned char *s = (const unsigned char *)l->src;
	size_t i = src_offset(l, e->start_mark.line, e->start_mark.column);
	size_t end = src_offset(l, e->end_mark.line, e->end_mark.column);
	size_t line = e->start_mark.line, col = e->start_mark.column;
	for (; i < end; i++) {
		if ((s[i] & 0xc0) == 0x80)
			continue;
		if (s[i] == '$' && k-- == 0) {
			out->line = line;
			out->column = col;
			return;
		}
		if (s[i] == '\n' || (s[i] == '\r' && (i + 1 >= end || s[i + 1] != '\n'))) {
			line++;
			col = 0;
		} else if (s[i] != '\r') {
			col++;
		}
	}
}

/* One event of the document's body. Returns 1 when the root is done. */
static int
event(struct loader *l, yaml_event_t *e)
{
	const yaml_mark_t *m = &e->start_mark;
	const char *anchor = NULL;
	struct cnode *n;

	switch (e->type) {
	case YAML_ALIAS_EVENT: {
		const char *name = (const char *)e->data.alias.anchor;
		struct anchor *a = anchor_find(l, name);
		if (a == NULL) {
			fail_at(l, m, "alias *%s names no anchor before it", name);
			return -1;
		}
		if (a->node == NULL) {
			fail_at(l, m, "alias *%s is inside the node it names (a loop)", name);
			return -1;
		}
		/* The tree as expanded is no deeper than one written out. */
		if (l->depth + a->height > MAX_DEPTH) {
			fail_at(l, m, "alias *%s makes the nesting deeper than %d levels", name, MAX_DEPTH);
			return -1;
		}
		if (count(l, m, a->nodes, a->text, name) < 0)
			return -1;
		if (place(l, a->node, a->height, m) < 0)
			return -1;
		return l->depth == 0;
	}
	case YAML_SCALAR_EVENT:
		anchor = (const char *)e->data.scalar.anchor;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = (const char *)e->data.sequence_start.anchor;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = (const char *)e->data.mapping_start.anchor;
		break;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT: {
		struct frame *f = &l->stack[--l->depth];
		n = f->n;
		if (n->type == CNODE_MAP && check_duplicates(l, n) < 0)
			return -1;
		/* Never a NULL array, even empty. */
		if (n->n == 0 && (n->type == CNODE_SEQ ?
		    (void *)(n->items = arena_alloc(l->arena, sizeof(*n->items))) :
		    (void *)(n->pairs = arena_alloc(l->arena, sizeof(*n->pairs)))) == NULL) {
			snprintf(l->err, l->errlen, "%s: out of memory", l->name);
			return -1;
		}
		if (f->anchor != NULL) {
			f->anchor->node = n;
			f->anchor->nodes = l->nodes - f->nodes0;
			f->anchor->text = l->text - f->text0;
			f->anchor->height = f->height;
		}
		yaml_mark_t at = { 0, (size_t)n->line - 1, (size_t)n->col - 1 };
		if (place(l, n, f->height, &at) < 0)
			return -1;
		return l->depth == 0;
	}
	default:
		fail_at(l, m, "unexpected YAML event");
		return -1;
	}

	if (l->depth > MAX_DEPTH) {
		fail_at(l, m, "nesting deeper than %d levels", MAX_DEPTH);
		return -1;
	}
	if (e->type == YAML_SCALAR_EVENT) {
		const char *val = (const char *)e->data.scalar.value;
		size_t len = e->data.scalar.length;
		char *str = NULL;
		/* ${VAR} in values; keys are the file's structure and stay as written. */
		const struct frame *up = l->depth > 0 ? &l->stack[l->depth - 1] : NULL;
		int key = up != NULL && up->n->type == CNODE_MAP && !up->have_key;
		if (!key && !l->verbatim && envexpand_needed(val, len)) {
			char msg[400];
			size_t at;
			str = envexpand(l->arena, val, len, CONFTREE_MAX_TEXT - l->text, &len, &at,
			    msg, sizeof(msg));
			if (str == NULL) {
				yaml_mark_t where;
				dollar_mark(l, e, val, at, &where);
				fail_at(l, &where, "%s", msg);
				return -1;
			}
		}
		if (count(l, m, 1, len, NULL) < 0 || (n = node_new(l, CNODE_SCALAR, m)) == NULL)
			return -1;
		n->len = len;
		n->str = str != NULL ? str : arena_strndup(l->arena, val, len);
		if (n->str == NULL) {
			snprintf(l->err, l->errlen, "%s: out of memory", l->name);
			return -1;
		}
		n->plain = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		if (anchor != NULL) {
			struct anchor *a = anchor_add(l, anchor);
			if (a == NULL) {
				snprintf(l->err, l->errlen, "%s: out of memory", l->name);
				return -1;
			}
			a->node = n;
			a->nodes = 1;
			a->text = len;
		}
		if (place(l, n, 0, m) < 0)
			return -1;
		return l->depth == 0;
	}
	enum cnode_type t = e->type == YAML_SEQUENCE_START_EVENT ? CNODE_SEQ : CNODE_MAP;
	if (count(l, m, 1, 0, NULL) < 0 || (n = node_new(l, t, m)) == NULL)
		return -1;
	struct frame *f = &l->stack[l->depth++];
	memset(f, 0, sizeof(*f));
	f->n = n;
	f->nodes0 = l->nodes - 1;
	f->text0 = l->text;
	if (anchor != NULL && (f->anchor = anchor_add(l, anchor)) == NULL) {
		snprintf(l->err, l->errlen, "%s: out of memory", l->name);
		return -1;
	}
	return 0;
}

static int
next_event(struct loader *l, yaml_event_t *e)
{
	if (!yaml_parser_parse(l->parser, e)) {
		parse_failed(l);
		return -1;
	}
	return 0;
}

static struct cnode *
load(struct arena *a, const char *name, yaml_parser_t *parser, const char *src, size_t srclen,
    int verbatim, char *err, size_t errlen)
{
	struct loader *l = calloc(1, sizeof(*l));
	if (l == NULL) {
		snprintf(err, errlen, "%s: out of memory", name);
		return NULL;
	}
	l->arena = a;
	l->parser = parser;
	l->name = name;
	l->err = err;
	l->errlen = errlen;
	l->src = src;
	l->srclen = srclen;
	l->verbatim = verbatim;
	struct cnode *root = NULL;
	yaml_event_t e;
	int docs = 0, done = 0;

	/* stream-start, then one document at most, then stream-end */
	while (!done) {
		if (next_event(l, &e) < 0)
			goto fail;
		int rc = 0;
		switch (e.type) {
		case YAML_STREAM_START_EVENT:
		case YAML_DOCUMENT_END_EVENT:
			break;
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (docs++ > 0) {
				/* A second one is most likely a mistake: said where its
				 * content starts. */
				yaml_event_delete(&e);
				if (next_event(l, &e) < 0)
					goto fail;
				fail_at(l, &e.start_mark, "only one YAML document is allowed");
				rc = -1;
			}
			break;
		default:
			rc = event(l, &e);
			break;
		}
		yaml_event_delete(&e);
		if (rc < 0)
			goto fail;
	}
	root = l->root;
	if (root == NULL) {
		/* An empty file is an empty mapping: every key takes its default. */
		root = arena_zalloc(a, sizeof(*root));
		if (root == NULL) {
			snprintf(err, errlen, "%s: out of memory", name);
			goto fail;
		}
		root->type = CNODE_MAP;
		root->line = root->col = 1;
	}
	free(l);
	return root;
fail:
	free(l);
	return NULL;
}

static struct cnode *
load_string(struct arena *a, const char *name, const char *text, size_t len, int verbatim,
    char *err, size_t errlen)
{
	if (len > CONFTREE_MAX_FILE) {
		snprintf(err, errlen, "%s: larger than %u bytes", name, CONFTREE_MAX_FILE);
		return NULL;
	}
	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser)) {
		snprintf(err, errlen, "%s: out of memory", name);
		return NULL;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	struct cnode *root = load(a, name, &parser, text, len, verbatim, err, errlen);
	yaml_parser_delete(&parser);
	return root;
}

struct cnode *
conftree_load_string(struct arena *a, const char *name, const char *text, size_t len,
    char *err, size_t errlen)
{
	return load_string(a, name, text, len, 0, err, errlen);
}

struct cnode *
conftree_load_verbatim(struct arena *a, const char *name, const char *text, size_t len,
    char *err, size_t errlen)
{
	return load_string(a, name, text, len, 1, err, errlen);
}

/* The file is read whole, up to the limit and no further: an error in a
 * ${VAR} is placed by looking at its text. */
struct cnode *
conftree_load_file(struct arena *a, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	char *text = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len == cap) {
			if (cap > CONFTREE_MAX_FILE) {
				snprintf(err, errlen, "%s: larger than %u bytes", path, CONFTREE_MAX_FILE);
				goto fail;
			}
			size_t ncap = cap ? cap * 2 : 65536;
			if (ncap > (size_t)CONFTREE_MAX_FILE + 1)
				ncap = (size_t)CONFTREE_MAX_FILE + 1;
			char *p = realloc(text, ncap);
			if (p == NULL) {
				snprintf(err, errlen, "%s: out of memory", path);
				goto fail;
			}
			text = p;
			cap = ncap;
		}
		size_t got = fread(text + len, 1, cap - len, f);
		len += got;
		if (got == 0) {
			if (ferror(f)) {
				snprintf(err, errlen, "%s: %s", path, strerror(errno ? errno : EIO));
				goto fail;
			}
			break;
		}
	}
	fclose(f);
	f = NULL;
	struct cnode *root = conftree_load_string(a, path, text, len, err, errlen);
	free(text);
	return root;
fail:
	if (f != NULL)
		fclose(f);
	free(text);
	return NULL;
}

const struct cnode *
cnode_get(const struct cnode *map, const char *key)
{
	if (map == NULL || map->type != CNODE_MAP)
		return NULL;
	for (size_t i = 0; i < map->n; i++)
		if (strcmp(map->pairs[i].key->str, key) == 0)
			return map->pairs[i].value;
	return NULL;
}

const char *
cnode_type_name(enum cnode_type t)
{
	switch (t) {
	case CNODE_SCALAR: return "a scalar";
	case CNODE_SEQ: return "a list";
	case CNODE_MAP: return "a mapping";
	}
	return "?";
}

int
cnode_is_null(const struct cnode *n)
{
	return n->type == CNODE_SCALAR && n->plain &&
	    (n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
	    strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0);
}

static int
looks_like_number(const char *s)
{
	const char *p = s;
	if (*p == '-' || *p == '+')
		p++;
	if (!((*p >= '0' && *p <= '9') || (*p == '.' && p[1] >= '0' && p[1] <= '9')))
		return 0;
	char *end;
	strtod(s, &end);
	return *end == '\0';
}

cJSON *
cnode_to_json(const struct cnode *n)
{
	switch (n->type) {
	case CNODE_SCALAR:
		if (n->plain) {
			if (cnode_is_null(n))
				return cJSON_CreateNull();
			if (strcmp(n->str, "true") == 0)
				return cJSON_CreateTrue();
			if (strcmp(n->str, "false") == 0)
				return cJSON_CreateFalse();
			if (looks_like_number(n->str)) {
				/* Written as JSON writes it: keep the text, so that
				 * 9007199254740993 in a schema stays exact. */
				cJSON *num = json_number_parse(n->str, strlen(n->str));
				return num ? num : cJSON_CreateNumber(strtod(n->str, NULL));
			}
		}
		return cJSON_CreateString(n->str);
	case CNODE_SEQ: {
		cJSON *a = cJSON_CreateArray();
		for (size_t i = 0; i < n->n; i++)
			cJSON_AddItemToArray(a, cnode_to_json(n->items[i]));
		return a;
	}
	case CNODE_MAP: {
		cJSON *o = cJSON_CreateObject();
		for (size_t i = 0; i < n->n; i++)
			cJSON_AddItemToObject(o, n->pairs[i].key->str, cnode_to_json(n->pairs[i].value));
		return o;
	}
	}
	return cJSON_CreateNull();
}
