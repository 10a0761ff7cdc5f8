/* skillmd: a SKILL.md's front matter (the Agent Skills format): the YAML
 * mapping between a first line "---" and the next line "---", read into
 * JSON as written (no ${VAR} expansion) and checked: name (1-64
 * lowercase letters, digits and single hyphens, not at either end) and
 * description (1-1024 characters) are required; license, compatibility
 * and allowed-tools are strings, metadata a mapping of strings. */
#ifndef MCPD_SKILLMD_H
#define MCPD_SKILLMD_H

#include <stddef.h>

struct cJSON;
struct errlist;

#define SKILLMD_MAX_FRONTMATTER (64u << 10)    /* bytes of YAML */

struct skillmd {
	struct cJSON *frontmatter;  /* the front matter as JSON (the caller frees) */
	const char *name;           /* its "name", inside frontmatter */
	const char *description;    /* its "description", inside frontmatter */
};

/* Parse the text (len bytes) of the SKILL.md at path. When expect_name is
 * not NULL the name must equal it (the skill's directory). Returns 0, or
 * -1 with each problem added to errs as "path:line:column: message"
 * (out->frontmatter is then NULL). */
int skillmd_parse(const char *path, const char *text, size_t len, const char *expect_name,
    struct skillmd *out, struct errlist *errs);

/* A skill name as the Agent Skills specification has it. */
int skill_name_valid(const char *s);

#endif
