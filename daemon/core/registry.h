/* Looking up what the operator declared (defs.h) by name or URI, and
 * the list responses prebuilt at load so that tools/list and friends
 * never re-serialize static data. */
#ifndef MCPD_REGISTRY_H
#define MCPD_REGISTRY_H

#include <stddef.h>

#include "defs.h"

struct cJSON;
struct config;

const struct tool_def *registry_tool(const struct config *c, const char *name);
const struct prompt_def *registry_prompt(const struct config *c, const char *name);
/* The skill whose SKILL.md has this URI; the file or directory of a
 * skill that has this URI (and its skill in *skill). */
const struct skill_def *registry_skill(const struct config *c, const char *uri);
const struct skill_file *registry_skill_file(const struct config *c, const char *uri,
    const struct skill_def **skill);
/* The resource whose uri equals uri, or the first template that matches it;
 * template variables are returned as an object in *vars (caller frees). */
const struct resource_def *registry_resource(const struct config *c, const char *uri,
    struct cJSON **vars);
/* Match uri against an RFC 6570 level 1 template. */
int uri_template_match(const char *tmpl, const char *uri, struct cJSON **vars);
/* Build the prebuilt list pages; called once the config is parsed. */
int registry_build(struct config *c, char *err, size_t errlen);
void registry_free(struct config *c);

/* Prebuilt list pages: the JSON of a result object without its closing
 * brace, so that a protocol revision can append its own members. */
struct list_pages {
	char **pages;               /* "{\"tools\":[...],\"nextCursor\":\"...\"" */
	size_t npages;
};

#endif
