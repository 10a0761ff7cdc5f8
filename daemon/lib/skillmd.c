#include "skillmd.h"
#include "arena.h"
#include "conftree.h"
#include "schema.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
skill_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (ch == '-' && s[i + 1] == '-')
			return 0;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
			return 0;
	}
	return 1;
}

/* The end of the line that starts at p (the '\n', or end). */
static const char *
line_end(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	return nl ? nl : end;
}

/* Is [p, e) a closing "---", trailing blanks and a '\r' allowed? */
static int
is_fence(const char *p, const char *e)
{
	if (e - p < 3 || memcmp(p, "---", 3) != 0)
		return 0;
	for (p += 3; p < e; p++)
		if (*p != ' ' && *p != '\t' && !(*p == '\r' && p + 1 == e))
			return 0;
	return 1;
}

static const struct cnode *
string_field(const char *path, const struct cnode *root, const char *key, int required,
    struct errlist *errs)
{
	const struct cnode *v = cnode_get(root, key);
	if (v == NULL) {
		if (required)
			errlist_add(errs, "%s:%d:%d: the front matter has no \"%s\" (required)", path,
			    root->line, root->col, key);
		return NULL;
	}
	if (v->type != CNODE_SCALAR || (v->plain && cnode_is_null(v))) {
		errlist_add(errs, "%s:%d:%d: \"%s\" must be a string", path, v->line, v->col, key);
		return NULL;
	}
	cJSON *j = cnode_to_json(v);
	int ok = cJSON_IsString(j);
	cJSON_Delete(j);
	if (!ok) {
		errlist_add(errs, "%s:%d:%d: \"%s\" must be a string (quote it)", path, v->line, v->col, key);
		return NULL;
	}
	if (strlen(v->str) != v->len) {
		errlist_add(errs, "%s:%d:%d: \"%s\" contains a NUL character", path, v->line, v->col, key);
		return NULL;
	}
	return v;
}

int
skillmd_parse(const char *path, const char *text, size_t len, const char *expect_name,
    struct skillmd *out, struct errlist *errs)
{
	size_t nerr = errs->n;
	memset(out, 0, sizeof(*out));
	const char *p = text, *end = text + len;
	if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;         /* a byte order mark */
	const char *e = line_end(p, end);
	if (e == end || !is_fence(p, e) || e - p > 4 || (e - p == 4 && p[3] != '\r')) {
		errlist_add(errs, "%s:1:1: a SKILL.md must begin with its front matter: a line \"---\", "
		    "the YAML (name:, description:), and a line \"---\"", path);
		return -1;
	}
	const char *body = e + 1, *close = NULL;
	int line = 2;
	for (const char *q = body; q < end; line++) {
		const char *qe = line_end(q, end);
		if (is_fence(q, qe)) {
			close = q;
			break;
		}
		q = qe + 1;
	}
	if (close == NULL) {
		errlist_add(errs, "%s:1:1: the front matter has no closing \"---\" line", path);
		return -1;
	}
	size_t ylen = (size_t)(close - body);
	if (ylen > SKILLMD_MAX_FRONTMATTER) {
		errlist_add(errs, "%s:2:1: the front matter is larger than %u bytes", path,
		    SKILLMD_MAX_FRONTMATTER);
		return -1;
	}
	/* One newline in place of the opening "---": the parser's lines are
	 * then the file's lines. */
	char *y = malloc(ylen + 2);
	struct arena *a = arena_new(4096);
	if (y == NULL || a == NULL) {
		free(y);
		arena_free(a);
		errlist_add(errs, "%s: out of memory", path);
		return -1;
	}
	y[0] = '\n';
	memcpy(y + 1, body, ylen);
	y[ylen + 1] = '\0';
	char err[600];
	const struct cnode *root = conftree_load_verbatim(a, path, y, ylen + 1, err, sizeof(err));
	if (root == NULL) {
		errlist_add(errs, "%s", err);
		goto done;
	}
	if (root->type != CNODE_MAP) {
		errlist_add(errs, "%s:%d:%d: the front matter must be a mapping (name: ..., description: ...)",
		    path, root->line, root->col);
		goto done;
	}
	const struct cnode *name = string_field(path, root, "name", 1, errs);
	const struct cnode *desc = string_field(path, root, "description", 1, errs);
	if (name != NULL && !skill_name_valid(name->str))
		errlist_add(errs, "%s:%d:%d: name \"%s\" must be 1 to 64 lowercase letters, digits and "
		    "hyphens, with no hyphen first, last or next to another", path, name->line, name->col,
		    name->str);
	else if (name != NULL && expect_name != NULL && strcmp(name->str, expect_name) != 0)
		errlist_add(errs, "%s:%d:%d: name \"%s\" must be the name of the skill's directory, \"%s\"",
		    path, name->line, name->col, name->str, expect_name);
	if (desc != NULL && (desc->len == 0 || utf8_length(desc->str) > 1024))
		errlist_add(errs, "%s:%d:%d: description must be 1 to 1024 characters", path,
		    desc->line, desc->col);
	string_field(path, root, "license", 0, errs);
	const struct cnode *compat = string_field(path, root, "compatibility", 0, errs);
	if (compat != NULL && utf8_length(compat->str) > 500)
		errlist_add(errs, "%s:%d:%d: compatibility must be at most 500 characters", path,
		    compat->line, compat->col);
	string_field(path, root, "allowed-tools", 0, errs);
	const struct cnode *meta = cnode_get(root, "metadata");
	if (meta != NULL && meta->type != CNODE_MAP)
		errlist_add(errs, "%s:%d:%d: metadata must be a mapping of names to strings", path,
		    meta->line, meta->col);
	else if (meta != NULL)
		for (size_t i = 0; i < meta->n; i++)
			if (meta->pairs[i].value->type != CNODE_SCALAR)
				errlist_add(errs, "%s:%d:%d: metadata.%s must be a string", path,
				    meta->pairs[i].value->line, meta->pairs[i].value->col,
				    meta->pairs[i].key->str);
	if (errs->n == nerr) {
		out->frontmatter = cnode_to_json(root);
		out->name = cJSON_GetObjectItemCaseSensitive(out->frontmatter, "name")->valuestring;
		out->description = cJSON_GetObjectItemCaseSensitive(out->frontmatter, "description")->valuestring;
	}
done:
	arena_free(a);
	free(y);
	return errs->n == nerr ? 0 : -1;
}
