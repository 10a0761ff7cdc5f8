/* A YAML document as a tree of scalars, sequences and mappings, each node
 * knowing its line and column. The config parser walks it, and plugins get
 * their own section of it without depending on libyaml. */
#ifndef MCPD_CONFTREE_H
#define MCPD_CONFTREE_H

#include <stddef.h>

struct arena;

enum cnode_type { CNODE_SCALAR, CNODE_SEQ, CNODE_MAP };

struct cnode_pair {
	struct cnode *key, *value;
};

struct cnode {
	enum cnode_type type;
	int line, col;          /* 1-based, where the node starts */
	int plain;              /* scalar without quotes: may be a number, bool, null */
	char *str;              /* scalar text, NUL-terminated */
	size_t len;             /* scalar length (may contain NULs) */
	size_t n;               /* items or pairs */
	struct cnode **items;
	struct cnode_pair *pairs;
};

/* What a file may hold. Aliases do not copy the node they name but are
 * counted as if they did: the tree as its readers walk it stays within
 * these bounds however aliases are nested. */
#define CONFTREE_MAX_FILE (64u << 20)      /* bytes of YAML */
#define CONFTREE_MAX_NODES 250000u         /* scalars, lists and mappings */
#define CONFTREE_MAX_TEXT (64u << 20)      /* bytes of scalars, as expanded */

/* Parse a file or a string. ${VAR} in values (not in keys) is expanded
 * from the environment (envexpand.h). On error returns NULL and writes
 * "name:line:column: message" to err. */
struct cnode *conftree_load_file(struct arena *a, const char *path,
    char *err, size_t errlen);
struct cnode *conftree_load_string(struct arena *a, const char *name,
    const char *text, size_t len, char *err, size_t errlen);

/* The same without ${VAR} expansion: for YAML that is not the
 * operator's config (a SKILL.md's front matter), read as written. */
struct cnode *conftree_load_verbatim(struct arena *a, const char *name,
    const char *text, size_t len, char *err, size_t errlen);

/* Value of key in a mapping, or NULL. */
const struct cnode *cnode_get(const struct cnode *map, const char *key);
const char *cnode_type_name(enum cnode_type t);
/* A plain scalar that YAML would read as null (~, null, empty). */
int cnode_is_null(const struct cnode *n);
/* The node as JSON: plain scalars that look like numbers, true, false or
 * null become those; quoted scalars stay strings. Caller frees. */
struct cJSON *cnode_to_json(const struct cnode *n);

#endif
