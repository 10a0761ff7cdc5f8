#include "conftree.h"
#include "arena.h"
#include "json.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#define MAX_DEPTH 64

struct loader {
	struct arena *arena;
	yaml_document_t *doc;
	const char *name;
	char *err;
	size_t errlen;
};

static struct cnode *
convert(struct loader *l, yaml_node_t *yn, int depth)
{
	if (depth > MAX_DEPTH) {
		snprintf(l->err, l->errlen, "%s:%zu:%zu: nesting deeper than %d levels",
		    l->name, yn->start_mark.line + 1, yn->start_mark.column + 1, MAX_DEPTH);
		return NULL;
	}
	struct cnode *n = arena_zalloc(l->arena, sizeof(*n));
	if (n == NULL)
		goto nomem;
	n->line = (int)yn->start_mark.line + 1;
	n->col = (int)yn->start_mark.column + 1;
	switch (yn->type) {
	case YAML_SCALAR_NODE:
		n->type = CNODE_SCALAR;
		n->len = yn->data.scalar.length;
		n->str = arena_strndup(l->arena, (const char *)yn->data.scalar.value, n->len);
		if (n->str == NULL)
			goto nomem;
		n->plain = yn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		break;
	case YAML_SEQUENCE_NODE: {
		n->type = CNODE_SEQ;
		yaml_node_item_t *it = yn->data.sequence.items.start;
		n->n = (size_t)(yn->data.sequence.items.top - it);
		n->items = arena_alloc(l->arena, (n->n ? n->n : 1) * sizeof(*n->items));
		if (n->items == NULL)
			goto nomem;
		for (size_t i = 0; i < n->n; i++) {
			n->items[i] = convert(l, yaml_document_get_node(l->doc, it[i]), depth + 1);
			if (n->items[i] == NULL)
				return NULL;
		}
		break;
	}
	case YAML_MAPPING_NODE: {
		n->type = CNODE_MAP;
		yaml_node_pair_t *p = yn->data.mapping.pairs.start;
		n->n = (size_t)(yn->data.mapping.pairs.top - p);
		n->pairs = arena_alloc(l->arena, (n->n ? n->n : 1) * sizeof(*n->pairs));
		if (n->pairs == NULL)
			goto nomem;
		for (size_t i = 0; i < n->n; i++) {
			yaml_node_t *k = yaml_document_get_node(l->doc, p[i].key);
			if (k->type != YAML_SCALAR_NODE) {
				snprintf(l->err, l->errlen, "%s:%zu:%zu: mapping keys must be scalars",
				    l->name, k->start_mark.line + 1, k->start_mark.column + 1);
				return NULL;
			}
			n->pairs[i].key = convert(l, k, depth + 1);
			if (n->pairs[i].key == NULL)
				return NULL;
			for (size_t j = 0; j < i; j++) {
				if (strcmp(n->pairs[j].key->str, n->pairs[i].key->str) == 0) {
					snprintf(l->err, l->errlen, "%s:%d:%d: duplicate key \"%s\" (first at line %d)",
					    l->name, n->pairs[i].key->line, n->pairs[i].key->col,
					    n->pairs[i].key->str, n->pairs[j].key->line);
					return NULL;
				}
			}
			n->pairs[i].value = convert(l, yaml_document_get_node(l->doc, p[i].value), depth + 1);
			if (n->pairs[i].value == NULL)
				return NULL;
		}
		break;
	}
	default:
		snprintf(l->err, l->errlen, "%s:%d:%d: empty node", l->name, n->line, n->col);
		return NULL;
	}
	return n;
nomem:
	snprintf(l->err, l->errlen, "%s: out of memory", l->name);
	return NULL;
}

static struct cnode *
load(struct arena *a, const char *name, yaml_parser_t *parser, char *err, size_t errlen)
{
	yaml_document_t doc;
	struct cnode *root = NULL;

	if (!yaml_parser_load(parser, &doc)) {
		yaml_mark_t m = parser->problem_mark;
		if (parser->context != NULL)
			snprintf(err, errlen, "%s:%zu:%zu: %s %s", name, m.line + 1, m.column + 1,
			    parser->problem ? parser->problem : "syntax error", parser->context);
		else
			snprintf(err, errlen, "%s:%zu:%zu: %s", name, m.line + 1, m.column + 1,
			    parser->problem ? parser->problem : "syntax error");
		return NULL;
	}
	yaml_node_t *top = yaml_document_get_root_node(&doc);
	if (top == NULL) {
		/* An empty file is an empty mapping: every key takes its default. */
		root = arena_zalloc(a, sizeof(*root));
		if (root != NULL) {
			root->type = CNODE_MAP;
			root->line = root->col = 1;
		}
		yaml_document_delete(&doc);
		return root;
	}
	struct loader l = { a, &doc, name, err, errlen };
	root = convert(&l, top, 0);
	yaml_document_delete(&doc);
	if (root == NULL)
		return NULL;

	/* One document only: a second one is most likely a mistake. */
	yaml_document_t next;
	if (!yaml_parser_load(parser, &next)) {
		yaml_mark_t m = parser->problem_mark;
		snprintf(err, errlen, "%s:%zu:%zu: %s", name, m.line + 1, m.column + 1,
		    parser->problem ? parser->problem : "syntax error");
		return NULL;
	}
	yaml_node_t *extra = yaml_document_get_root_node(&next);
	if (extra != NULL) {
		snprintf(err, errlen, "%s:%zu:%zu: only one YAML document is allowed",
		    name, extra->start_mark.line + 1, extra->start_mark.column + 1);
		root = NULL;
	}
	yaml_document_delete(&next);
	return root;
}

struct cnode *
conftree_load_string(struct arena *a, const char *name, const char *text, size_t len,
    char *err, size_t errlen)
{
	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser)) {
		snprintf(err, errlen, "%s: out of memory", name);
		return NULL;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	struct cnode *root = load(a, name, &parser, err, errlen);
	yaml_parser_delete(&parser);
	return root;
}

struct cnode *
conftree_load_file(struct arena *a, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser)) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	yaml_parser_set_input_file(&parser, f);
	struct cnode *root = load(a, path, &parser, err, errlen);
	yaml_parser_delete(&parser);
	fclose(f);
	return root;
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
