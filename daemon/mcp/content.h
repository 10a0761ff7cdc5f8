/* MCP content: tool results built from a command's output, text made safe
 * for JSON, and {{name}} templates for prompts. */
#ifndef MCPD_CONTENT_H
#define MCPD_CONTENT_H

#include <stddef.h>

struct cJSON;
struct tool_def;
struct tool_result;

/* A copy of s in which every invalid UTF-8 sequence is U+FFFD. */
char *utf8_sanitize(const char *s, size_t len);
struct cJSON *content_text(const char *s, size_t len);
/* Checks an array of content blocks (text, image, audio, resource,
 * resource_link). Returns 0 or -1 with a message. */
int content_blocks_check(const struct cJSON *blocks, char *err, size_t errlen);
/* A plugin's result as it is sent on: 1 when r is a CallToolResult
 * object whose content blocks check, with whether its isError is true
 * and whether it has a resultType member (named in any case, as
 * cJSON_HasObjectItem finds it); 0 when not. content_result_scan is the
 * same check of the JSON text without a tree: 1 only where the tree's
 * would be 1 (with the same two answers); 0 for anything it leaves to
 * the tree (any fault, a \u escape, non-ASCII, very deep or wide, and
 * a line break anywhere: a result it reads is on one line, as one sent
 * as it is must be). */
int content_result_tree(const struct cJSON *r, int *is_error, int *has_type);
int content_result_scan(const char *json, size_t len, int *is_error, int *has_type);
/* The CallToolResult for a finished command. */
struct cJSON *tool_result_build(const struct tool_def *t, const struct tool_result *r);
/* Substitute {{name}} with the string value of args[name] (missing: ""). */
char *template_render(const char *tmpl, const struct cJSON *args);

#endif
