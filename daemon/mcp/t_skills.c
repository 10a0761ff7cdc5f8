/* The io.modelcontextprotocol/skills extension: skills/list, skills/get,
 * resources/directory/read, and resources/read of a skill's files
 * (skill://<name>/<path>). What is served was found at load
 * (config_skills.c); file contents are read when asked. */
#include "mcp_internal.h"
#include "config.h"
#include "content.h"
#include "log.h"
#include "registry.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A skill may hold 16 MiB in all: no one file is read past that. */
#define SKILL_FILE_MAX (16u << 20)

static void
cache_hints(const struct call *c, cJSON *res)
{
	if (!c->stateless)
		return;
	cJSON_AddNumberToObject(res, "ttlMs", (double)c->m->cfg->cache.list_ttl_ms);
	cJSON_AddStringToObject(res, "cacheScope", "public");
}

void
m_skills_list(struct call *c)
{
	list_page(c, c->m->cfg->skill_pages);
}

void
m_skills_get(struct call *c)
{
	const char *uri = param_string(c, "uri");
	if (uri == NULL) {
		call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: \"uri\" must be a string");
		return;
	}
	const struct skill_def *sk = registry_skill(c->m->cfg, uri);
	if (sk == NULL) {
		cJSON *data = cJSON_CreateObject();
		cJSON_AddStringToObject(data, "uri", uri);
		call_error_data(c, JSONRPC_INVALID_PARAMS, "Invalid params: no skill has this SKILL.md URI", data);
		return;
	}
	cJSON *res = cJSON_CreateObject();
	cJSON_AddItemToObject(res, "skill", cJSON_Duplicate(sk->entry, 1));
	cache_hints(c, res);
	call_result(c, res);
}

static void
add_child(cJSON *arr, const struct skill_def *sk, const struct skill_file *f)
{
	cJSON *o = cJSON_CreateObject();
	const char *base = strrchr(f->path, '/');
	cJSON_AddStringToObject(o, "uri", f->uri);
	cJSON_AddStringToObject(o, "name", f == &sk->files[0] ? sk->name : base ? base + 1 : f->path);
	if (f == &sk->files[0])
		cJSON_AddStringToObject(o, "description", sk->description);
	cJSON_AddStringToObject(o, "mimeType", f->mime_type);
	if (!f->dir)
		cJSON_AddNumberToObject(o, "size", (double)f->size);
	cJSON_AddItemToArray(arr, o);
}

/* The direct children of a skill's directory, or of a directory in it.
 * A skill holds at most 512 files and 512 directories: one page. */
void
m_directory_read(struct call *c)
{
	const char *uri = param_string(c, "uri");
	if (uri == NULL) {
		call_error(c, JSONRPC_INVALID_PARAMS, "Invalid params: \"uri\" must be a string");
		return;
	}
	const char *cursor = param_string(c, "cursor");
	const struct skill_def *sk = NULL;
	const struct skill_file *f = registry_skill_file(c->m->cfg, uri, &sk);
	int root = sk != NULL && f == NULL && strcmp(uri, sk->root_uri) == 0;
	if (sk == NULL || (!root && (f == NULL || !f->dir)) || cursor != NULL) {
		cJSON *data = cJSON_CreateObject();
		cJSON_AddStringToObject(data, "uri", uri);
		call_error_data(c, JSONRPC_INVALID_PARAMS, cursor != NULL ? "Invalid cursor" :
		    "Invalid params: not a directory of a skill this server serves", data);
		return;
	}
	size_t plen = root ? 0 : strlen(f->path);
	cJSON *res = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(res, "resources");
	for (size_t i = 0; i < sk->nfiles; i++) {
		const char *p = sk->files[i].path;
		if (!root && (strncmp(p, f->path, plen) != 0 || p[plen] != '/'))
			continue;
		const char *rest = root ? p : p + plen + 1;
		if (strchr(rest, '/') == NULL)
			add_child(arr, sk, &sk->files[i]);
	}
	cache_hints(c, res);
	call_result(c, res);
}

/* resources/read of skill://...: 1 when the URI is a skill's (answered),
 * else 0. */
int
skill_read(struct call *c, const char *uri)
{
	const struct skill_def *sk = NULL;
	const struct skill_file *f = registry_skill_file(c->m->cfg, uri, &sk);
	if (f == NULL || f->dir)
		return 0;
	char err[256], *data;
	size_t len;
	char *path = NULL;
	if (asprintf(&path, "%s/%s", sk->dir, f->path) < 0 ||
	    read_small_file(path, SKILL_FILE_MAX, &data, &len, err, sizeof(err)) < 0) {
		log_warn("skill %s: %s: %s", sk->name, f->path, path ? err : "out of memory");
		call_error(c, JSONRPC_INTERNAL_ERROR, "Reading %s failed", uri);
		free(path);
		return 1;
	}
	free(path);
	cJSON *item = cJSON_CreateObject();
	cJSON_AddStringToObject(item, "uri", uri);
	cJSON_AddStringToObject(item, "mimeType", f->mime_type);
	if (f->binary) {
		char *b64 = malloc(4 * ((len + 2) / 3) + 1);
		if (b64 != NULL) {
			base64_encode((const unsigned char *)data, len, b64);
			cJSON_AddStringToObject(item, "blob", b64);
			free(b64);
		}
	} else {
		char *clean = utf8_sanitize(data, len);
		cJSON_AddStringToObject(item, "text", clean ? clean : "");
		free(clean);
	}
	free(data);
	cJSON *res = cJSON_CreateObject();
	cJSON_AddItemToArray(cJSON_AddArrayToObject(res, "contents"), item);
	if (c->stateless) {
		cJSON_AddNumberToObject(res, "ttlMs", (double)c->m->cfg->cache.read_ttl_ms);
		cJSON_AddStringToObject(res, "cacheScope", "public");
	}
	call_result(c, res);
	return 1;
}
