/* JSON Schema (2020-12) validation of tool arguments and structured
 * output: the keywords an operator writes in practice (type, enum, const,
 * ranges, lengths, pattern, properties, required, additionalProperties,
 * items, prefixItems, allOf/anyOf/oneOf/not, if/then/else, local $ref).
 * Unknown keywords are annotations and are ignored, as the spec says. */
#ifndef MCPD_SCHEMA_H
#define MCPD_SCHEMA_H

#include <stddef.h>

struct cJSON;
struct schema_compiled;

/* Checks that a schema is usable (patterns compile, $refs resolve).
 * Returns 0, or -1 with a message. */
int schema_check(const struct cJSON *schema, char *err, size_t errlen);

/* Returns 0 when value is valid; otherwise -1 and a message naming the
 * first failing location, e.g. "arguments.times: expected integer, got
 * string". where names the root ("arguments"). */
int schema_validate(const struct cJSON *schema, const struct cJSON *value,
    const char *where, char *err, size_t errlen);

/* schema_check that also keeps each pattern compiled (JIT where the
 * library has it) for schema_validate_compiled: built when the config is
 * read, freed with it. schema must outlive it and not change. NULL with
 * a message when the schema is not usable. */
struct schema_compiled *schema_compile(const struct cJSON *schema, char *err, size_t errlen);
void schema_compiled_free(struct schema_compiled *sc);
size_t schema_compiled_patterns(const struct schema_compiled *sc);

/* schema_validate against the schema sc was compiled from, reusing its
 * compiled patterns, match data and context (not safe to call from two
 * threads at once on the same sc). */
int schema_validate_compiled(const struct schema_compiled *sc, const struct cJSON *value,
    const char *where, char *err, size_t errlen);

/* Valid UTF-8 (no overlongs, no surrogates)? */
int utf8_valid(const char *s, size_t len);
size_t utf8_length(const char *s);

#endif
