/* Shared between the config parser files: the YAML-walking helpers. */
#ifndef MCPD_CONFIG_INTERNAL_H
#define MCPD_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "conftree.h"

struct config;
struct errlist;

struct ctx {
	struct config *cfg;
	struct errlist *errs;
	const char *file;
	uint64_t file_bytes;        /* of files embedded in the config (prompt media) */
};

/* Prompt images and audio are read into the config (in the master and
 * every worker): 16 MiB a file, 64 MiB in all. */
#define EMBED_FILE_MAX (16u << 20)
#define EMBED_TOTAL_MAX (64u << 20)

void err_at(struct ctx *x, const struct cnode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int want_type(struct ctx *x, const struct cnode *n, enum cnode_type t, const char *what);
int scalar_string(struct ctx *x, const struct cnode *n, const char *what, const char **out);
int scalar_uint(struct ctx *x, const struct cnode *n, const char *what, uint64_t min,
    uint64_t max, uint64_t *out);
int scalar_bool(struct ctx *x, const struct cnode *n, const char *what, int *out);
struct enum_name;
int scalar_enum(struct ctx *x, const struct cnode *n, const char *what,
    const struct enum_name *names, int *out);

/* Field tables: a section of mcpd.yaml is a table of its keys, each with
 * its kind, where its value goes (an offset from the section's base) and
 * its limits. parse_section walks a mapping with one: it reports unknown
 * keys and bad values as file:line:column and leaves the rest of the
 * section untouched, so that every error of the file is reported. */
enum field_type {
	F_STRING,       /* const char * */
	F_PATH,         /* const char *, not empty */
	F_UINT,         /* uint64_t, min to max */
	F_DURATION,     /* uint64_t milliseconds, min to max */
	F_SIZE,         /* uint64_t bytes, min to max */
	F_BOOL,         /* int */
	F_CUSTOM,       /* custom(base + offset) */
	F_ENUM,         /* int: the value of one of names */
	F_LIST,         /* const char **, NULL-terminated; size_t count at list.count */
	F_SECTION,      /* a mapping: section's table, with base + offset as its base */
	F_ITEMS,        /* a list of mappings: an array at offset (see struct items) */
	F_IGNORE,       /* allowed here, read elsewhere */
	F_INCLUDE,      /* the keys of the table include, with base + offset as their base */
};

/* F_ENUM: the words a key takes, ending in { NULL }. */
struct enum_name {
	const char *name;
	int value;
};

/* F_LIST: each entry a string, which must pass valid() when given
 * ("KEY entry \"...\" must be MUST"). */
struct list_spec {
	size_t count;   /* offset of the entry count from the same base */
	int (*valid)(const char *);
	const char *must;
};

struct field;

/* F_SECTION: a nested mapping. */
struct section {
	const char *name;       /* in messages: "unknown key in NAME", "NAME.key must" */
	int bare;               /* its keys are named alone: "user must" (the top level) */
	const struct field *fields;
	/* Called when the value was a mapping, after its keys. */
	void (*check)(struct ctx *, const struct cnode *, void *base);
};

/* F_ITEMS: a list of mappings, each parsed with fields into one element
 * of an array (its pointer at the field's offset, its length at count
 * from the same base). */
struct items {
	const char *name;       /* the list, as in "tools must be a list" */
	const char *item;       /* one mapping, as in "unknown key in a tool" */
	const struct field *fields;
	size_t size;            /* of an element */
	size_t count;           /* offset of the size_t length from the base */
	/* Optional: set an element's defaults before its keys. */
	void (*init)(void *elem, const struct cnode *item);
	/* Optional: an item written as a scalar (listen: - 127.0.0.1:80);
	 * 0 counts the element. Without it a scalar is a type error. */
	int (*scalar)(struct ctx *, const struct cnode *, void *elem);
	/* Optional: check a mapping once its keys are parsed; 0 counts the
	 * element (it is kept), -1 leaves its slot to the next item. */
	int (*check)(struct ctx *, const struct cnode *, void *elem, size_t errs_before);
	/* Optional: an element's name, which no two may share; once all
	 * are parsed, twice reports each that repeats an earlier one
	 * (item: its mapping; first: the element it repeats). */
	const char *(*name_of)(const void *elem);
	void (*twice)(struct ctx *, const struct cnode *item, const void *elem, const void *first);
};

struct field {
	const char *key;
	enum field_type type;
	size_t offset;
	uint64_t min, max;
	union {
		/* F_CUSTOM: called with base + offset */
		int (*custom)(struct ctx *, const struct cnode *, void *dst);
		const struct enum_name *names;          /* F_ENUM */
		const struct list_spec *list;           /* F_LIST */
		const struct section *section;          /* F_SECTION */
		const struct items *items;              /* F_ITEMS */
		const struct field *include;            /* F_INCLUDE */
	};
};

struct arena;
int parse_scope_list(struct ctx *x, const struct cnode *n, const char *what, struct arena *a,
    const char **out);

/* The walkers: a mapping with a section's table into base; a list of
 * mappings into a new array (its pointer put at arrayp) and its length;
 * a list of strings, each checked as spec says (NULL when n is no list). */
int parse_section(struct ctx *x, const struct cnode *n, const struct section *s, void *base);
int parse_items(struct ctx *x, const struct cnode *n, const struct items *it, void *arrayp,
    size_t *count);
const char **parse_list(struct ctx *x, const struct cnode *n, const char *what,
    const struct list_spec *spec, size_t *count);

/* tools, resources, prompts (config_tools.c) */
extern const struct items tool_items, resource_items, prompt_items;
void config_tools_finish(struct ctx *x, struct config *c);
void config_tools_free(struct config *c);

/* skills: (config_skills.c) */
int parse_skills(struct ctx *x, const struct cnode *n, void *dst);
void config_skills_free(struct config *c);

/* auth: { plugin: internal } (config_oauth.c) */
void oauth_config_defaults(struct config *c);
int parse_oauth_section(struct ctx *x, const struct cnode *n);
/* The users file, and what the storage must offer. */
void oauth_config_finish(struct ctx *x, struct config *c);

#endif
