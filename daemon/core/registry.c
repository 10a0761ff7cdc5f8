#include "registry.h"
#include "config.h"
#include "json.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct tool_def *
registry_tool(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->ntools; i++)
		if (strcmp(c->tools[i].name, name) == 0)
			return &c->tools[i];
	return NULL;
}

const struct skill_def *
registry_skill(const struct config *c, const char *uri)
{
	for (size_t i = 0; i < c->nskills; i++)
		if (strcmp(c->skills[i].uri, uri) == 0)
			return &c->skills[i];
	return NULL;
}

const struct skill_file *
registry_skill_file(const struct config *c, const char *uri, const struct skill_def **skill)
{
	if (strncmp(uri, "skill://", 8) != 0)
		return NULL;
	for (size_t i = 0; i < c->nskills; i++) {
		const struct skill_def *sk = &c->skills[i];
		size_t rl = strlen(sk->root_uri);
		if (strncmp(uri, sk->root_uri, rl) != 0 || (uri[rl] != '/' && uri[rl] != '\0'))
			continue;
		*skill = sk;
		for (size_t j = 0; j < sk->nfiles; j++)
			if (strcmp(sk->files[j].uri, uri) == 0)
				return &sk->files[j];
		return NULL;
	}
	return NULL;
}

const struct prompt_def *
registry_prompt(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->nprompts; i++)
		if (strcmp(c->prompts[i].name, name) == 0)
			return &c->prompts[i];
	return NULL;
}

/* RFC 6570 level 1: {var} expands to unreserved characters and
 * percent-encodings; here a variable matches up to the next literal
 * character of the template, and never spans a '/'. */
int
uri_template_match(const char *tmpl, const char *uri, cJSON **vars)
{
	cJSON *obj = cJSON_CreateObject();
	const char *t = tmpl, *u = uri;
	while (*t) {
		if (*t == '{') {
			const char *close = strchr(t, '}');
			if (close == NULL)
				goto no;
			char name[128];
			size_t nl = (size_t)(close - t - 1);
			if (nl == 0 || nl >= sizeof(name))
				goto no;
			memcpy(name, t + 1, nl);
			name[nl] = '\0';
			char stop = close[1];
			const char *start = u;
			while (*u && *u != stop && *u != '/' && *u != '?' && *u != '#')
				u++;
			if (u == start)
				goto no;
			char *val = strndup(start, (size_t)(u - start));
			cJSON_AddItemToObject(obj, name, cJSON_CreateString(val));
			free(val);
			t = close + 1;
			continue;
		}
		if (*t != *u)
			goto no;
		t++;
		u++;
	}
	if (*u != '\0')
		goto no;
	if (vars != NULL)
		*vars = obj;
	else
		cJSON_Delete(obj);
	return 1;
no:
	cJSON_Delete(obj);
	return 0;
}

const struct resource_def *
registry_resource(const struct config *c, const char *uri, cJSON **vars)
{
	*vars = NULL;
	for (size_t i = 0; i < c->nresources; i++)
		if (c->resources[i].uri != NULL && strcmp(c->resources[i].uri, uri) == 0)
			return &c->resources[i];
	for (size_t i = 0; i < c->nresources; i++)
		if (c->resources[i].uri_template != NULL &&
		    uri_template_match(c->resources[i].uri_template, uri, vars))
			return &c->resources[i];
	return NULL;
}

static void
add_opt(cJSON *o, const char *k, const char *v)
{
	if (v != NULL)
		cJSON_AddStringToObject(o, k, v);
}

/* Pages of a list, each the JSON text of its result object minus the
 * final '}', so that the 2026 revision can append its cache hints. */
static struct list_pages *
build_pages(cJSON **items, size_t n, const char *key, size_t page_size)
{
	struct list_pages *lp = calloc(1, sizeof(*lp));
	size_t npages = n == 0 ? 1 : (n + page_size - 1) / page_size;
	lp->pages = calloc(npages, sizeof(char *));
	lp->npages = npages;
	for (size_t p = 0; p < npages; p++) {
		cJSON *res = cJSON_CreateObject();
		cJSON *arr = cJSON_AddArrayToObject(res, key);
		for (size_t i = p * page_size; i < n && i < (p + 1) * page_size; i++)
			cJSON_AddItemToArray(arr, cJSON_Duplicate(items[i], 1));
		if (p + 1 < npages) {
			char cursor[32];
			snprintf(cursor, sizeof(cursor), "page-%zu", p + 1);
			cJSON_AddStringToObject(res, "nextCursor", cursor);
		}
		char *txt = json_print(res);   /* schema numbers as written */
		cJSON_Delete(res);
		txt[strlen(txt) - 1] = '\0';
		lp->pages[p] = txt;
	}
	return lp;
}

static void
free_pages(struct list_pages *lp)
{
	if (lp == NULL)
		return;
	for (size_t i = 0; i < lp->npages; i++)
		free(lp->pages[i]);
	free(lp->pages);
	free(lp);
}

int
registry_build(struct config *c, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	size_t page = c->limits.page_size;
	cJSON **items = calloc(c->ntools + c->nresources + c->nprompts + c->nskills + 1, sizeof(cJSON *));
	if (items == NULL)
		return -1;

	for (size_t i = 0; i < c->ntools; i++) {
		struct tool_def *t = &c->tools[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", t->name);
		add_opt(o, "title", t->title);
		add_opt(o, "description", t->description);
		cJSON_AddItemToObject(o, "inputSchema", cJSON_Duplicate(t->input_schema, 1));
		if (t->output_schema != NULL)
			cJSON_AddItemToObject(o, "outputSchema", cJSON_Duplicate(t->output_schema, 1));
		if (t->annotations != NULL)
			cJSON_AddItemToObject(o, "annotations", cJSON_Duplicate(t->annotations, 1));
		t->listing = o;
		items[i] = o;
	}
	c->tool_pages = build_pages(items, c->ntools, "tools", page);

	size_t nres = 0, ntmpl = 0;
	for (size_t i = 0; i < c->nresources; i++) {
		struct resource_def *r = &c->resources[i];
		cJSON *o = cJSON_CreateObject();
		if (r->uri != NULL)
			cJSON_AddStringToObject(o, "uri", r->uri);
		else
			cJSON_AddStringToObject(o, "uriTemplate", r->uri_template);
		cJSON_AddStringToObject(o, "name", r->name);
		add_opt(o, "title", r->title);
		add_opt(o, "description", r->description);
		add_opt(o, "mimeType", r->mime_type);
		r->listing = o;
		if (r->uri != NULL)
			items[nres++] = o;
	}
	/* Each skill's SKILL.md is a resource too, named and described by
	 * its front matter (the skills extension); its other files are
	 * found through skills/list and resources/directory/read. */
	for (size_t i = 0; i < c->nskills; i++) {
		struct skill_def *sk = &c->skills[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "uri", sk->uri);
		cJSON_AddStringToObject(o, "name", sk->name);
		cJSON_AddStringToObject(o, "description", sk->description);
		cJSON_AddStringToObject(o, "mimeType", "text/markdown");
		cJSON_AddNumberToObject(o, "size", (double)sk->files[0].size);
		sk->listing = o;
		items[nres++] = o;
	}
	c->resource_pages = build_pages(items, nres, "resources", page);
	for (size_t i = 0; i < c->nresources; i++)
		if (c->resources[i].uri_template != NULL)
			items[ntmpl++] = c->resources[i].listing;
	c->template_pages = build_pages(items, ntmpl, "resourceTemplates", page);

	for (size_t i = 0; i < c->nprompts; i++) {
		struct prompt_def *p = &c->prompts[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", p->name);
		add_opt(o, "title", p->title);
		add_opt(o, "description", p->description);
		if (p->nargs > 0) {
			cJSON *args = cJSON_AddArrayToObject(o, "arguments");
			for (size_t j = 0; j < p->nargs; j++) {
				cJSON *a = cJSON_CreateObject();
				cJSON_AddStringToObject(a, "name", p->args[j].name);
				add_opt(a, "description", p->args[j].description);
				cJSON_AddBoolToObject(a, "required", p->args[j].required);
				cJSON_AddItemToArray(args, a);
			}
		}
		p->listing = o;
		items[i] = o;
	}
	c->prompt_pages = build_pages(items, c->nprompts, "prompts", page);

	/* skills/list entries: the SKILL.md's URI, its front matter as
	 * written, and every file with its digest and size, never split
	 * across pages. */
	for (size_t i = 0; i < c->nskills; i++) {
		struct skill_def *sk = &c->skills[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "uri", sk->uri);
		cJSON_AddItemToObject(o, "frontmatter", cJSON_Duplicate(sk->frontmatter, 1));
		cJSON *files = cJSON_AddArrayToObject(o, "resources");
		for (size_t j = 0; j < sk->nfiles; j++) {
			if (sk->files[j].dir)
				continue;
			cJSON *f = cJSON_CreateObject();
			cJSON_AddStringToObject(f, "uri", sk->files[j].uri);
			cJSON_AddStringToObject(f, "digest", sk->files[j].digest);
			cJSON_AddNumberToObject(f, "size", (double)sk->files[j].size);
			cJSON_AddItemToArray(files, f);
		}
		sk->entry = o;
		items[i] = o;
	}
	c->skill_pages = build_pages(items, c->nskills, "skills", page);
	free(items);

	/* A Lambda function that answers only once complete has no stream
	 * to carry change notifications on. */
	int notify = !(c->lambda.serving && c->lambda.response_mode == LAMBDA_BUFFERED);
	cJSON *caps = cJSON_CreateObject();
	cJSON *t = cJSON_AddObjectToObject(caps, "tools");
	cJSON_AddBoolToObject(t, "listChanged", notify);
	cJSON *r = cJSON_AddObjectToObject(caps, "resources");
	cJSON_AddBoolToObject(r, "subscribe", notify);
	cJSON_AddBoolToObject(r, "listChanged", notify);
	cJSON *p = cJSON_AddObjectToObject(caps, "prompts");
	cJSON_AddBoolToObject(p, "listChanged", notify);
	cJSON_AddObjectToObject(caps, "logging");
	cJSON_AddObjectToObject(caps, "completions");
	cJSON *ext = cJSON_CreateObject();
	if (c->nskills > 0) {
		cJSON *sk = cJSON_AddObjectToObject(ext, "io.modelcontextprotocol/skills");
		cJSON_AddBoolToObject(sk, "directoryRead", 1);
	}
	/* Tasks are served to 2026-07-28 requests only: the sessions of
	 * the 2025 revisions run every tool as a plain call. */
	if (cJSON_GetArraySize(ext) > 0)
		cJSON_AddItemToObject(caps, "extensions", cJSON_Duplicate(ext, 1));
	c->capabilities_2025_json = cJSON_PrintUnformatted(caps);
	if (c->tasks) {
		cJSON_AddObjectToObject(ext, "io.modelcontextprotocol/tasks");
		cJSON_DeleteItemFromObjectCaseSensitive(caps, "extensions");
		cJSON_AddItemToObject(caps, "extensions", cJSON_Duplicate(ext, 1));
	}
	cJSON_Delete(ext);
	c->capabilities_json = cJSON_PrintUnformatted(caps);
	cJSON_Delete(caps);
	return 0;
}

void
registry_free(struct config *c)
{
	free_pages(c->tool_pages);
	free_pages(c->resource_pages);
	free_pages(c->template_pages);
	free_pages(c->prompt_pages);
	free_pages(c->skill_pages);
	c->tool_pages = c->resource_pages = c->template_pages = c->prompt_pages = NULL;
	c->skill_pages = NULL;
	free(c->capabilities_json);
	free(c->capabilities_2025_json);
	c->capabilities_json = c->capabilities_2025_json = NULL;
}
