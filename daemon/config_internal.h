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

/* Field tables: most sections are a mapping of simple typed keys. */
enum field_type { F_STRING, F_PATH, F_UINT, F_DURATION, F_SIZE, F_BOOL, F_CUSTOM };

struct field {
	const char *key;
	enum field_type type;
	size_t offset;
	uint64_t min, max;
	/* F_CUSTOM: called with base + offset */
	int (*custom)(struct ctx *, const struct cnode *, void *dst);
};

struct arena;
int parse_scope_list(struct ctx *x, const struct cnode *n, const char *what, struct arena *a,
    const char **out);

int parse_fields(struct ctx *x, const struct cnode *map, const struct field *fields,
    void *base, const char *section);

/* tools, resources, prompts (config_tools.c) */
int parse_tools(struct ctx *x, const struct cnode *n, void *base);
int parse_resources(struct ctx *x, const struct cnode *n, void *base);
int parse_prompts(struct ctx *x, const struct cnode *n, void *base);
void config_tools_finish(struct ctx *x, struct config *c);
void config_tools_free(struct config *c);

/* auth: { plugin: internal } (config_oauth.c) */
void oauth_config_defaults(struct config *c);
int parse_oauth_section(struct ctx *x, const struct cnode *n);
/* The users file, and what the storage must offer. */
void oauth_config_finish(struct ctx *x, struct config *c);

#endif
