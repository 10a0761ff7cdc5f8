/* The tools:, resources: and prompts: sections of mcpd.yaml. */
#include "arena.h"
#include "config.h"
#include "config_internal.h"
#include "plugin.h"
#include "registry.h"
#include "schema.h"
#include "tool_exec.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER_PARAMS 64

static int
valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 128)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
			return 0;
	return 1;
}

/* A path relative to the config file's directory, made absolute. */
static const char *
resolve_path(struct ctx *x, const char *p)
{
	if (p[0] == '/' || x->cfg->config_dir == NULL)
		return p;
	return arena_printf(x->cfg->arena, "%s/%s", x->cfg->config_dir, p);
}

/* argv[0] as posix_spawn will see it: with a slash, relative to the config
 * directory; without, looked up in the tools' PATH now, so that a typo is
 * a config error rather than a failing call. */
static void
resolve_program(struct ctx *x, const struct cnode *at, struct command_def *cmd)
{
	const char *prog = cmd->argv[0];
	if (strchr(prog, '/') != NULL) {
		prog = resolve_path(x, prog);
		if (access(prog, X_OK) < 0) {
			err_at(x, at, "command %s: %s", prog, strerror(errno));
			return;
		}
		cmd->argv[0] = prog;
		return;
	}
	char dirs[] = TOOL_PATH;
	char *save = NULL;
	for (char *d = strtok_r(dirs, ":", &save); d != NULL; d = strtok_r(NULL, ":", &save)) {
		const char *full = arena_printf(x->cfg->arena, "%s/%s", d, prog);
		if (access(full, X_OK) == 0) {
			cmd->argv[0] = full;
			return;
		}
	}
	err_at(x, at, "command \"%s\" not found in %s (give a path)", prog, TOOL_PATH);
}

static int
parse_argv(struct ctx *x, const struct cnode *n, void *dst)
{
	struct command_def *cmd = dst;
	if (want_type(x, n, CNODE_SEQ, "command") < 0)
		return -1;
	if (n->n == 0) {
		err_at(x, n, "command needs at least the program to run");
		return -1;
	}
	cmd->argv = arena_zalloc(x->cfg->arena, (n->n + 1) * sizeof(char *));
	for (size_t i = 0; i < n->n; i++) {
		if (scalar_string(x, n->items[i], "command argument", &cmd->argv[i]) < 0)
			return -1;
	}
	cmd->argc = n->n;
	resolve_program(x, n->items[0], cmd);
	return 0;
}

static int
parse_shell(struct ctx *x, const struct cnode *n, void *dst)
{
	struct command_def *cmd = dst;
	const char *script;
	if (scalar_string(x, n, "shell", &script) < 0)
		return -1;
	cmd->argv = arena_zalloc(x->cfg->arena, 5 * sizeof(char *));
	cmd->argv[0] = "/bin/sh";
	cmd->argv[1] = "-c";
	cmd->argv[2] = script;
	cmd->argv[3] = "mcpd-shell";    /* $0 of the script */
	cmd->argc = 4;
	return 0;
}

static int
parse_env(struct ctx *x, const struct cnode *n, void *dst)
{
	struct command_def *cmd = dst;
	if (want_type(x, n, CNODE_MAP, "env") < 0)
		return -1;
	cmd->env = arena_zalloc(x->cfg->arena, (n->n + 1) * sizeof(char *));
	for (size_t i = 0; i < n->n; i++) {
		const char *k = n->pairs[i].key->str, *v;
		if (k[0] == '\0' || strchr(k, '=') != NULL) {
			err_at(x, n->pairs[i].key, "env name \"%s\" is not valid", k);
			continue;
		}
		if (strncmp(k, "MCP_", 4) == 0) {
			err_at(x, n->pairs[i].key, "env names starting with MCP_ are set by mcpd");
			continue;
		}
		if (scalar_string(x, n->pairs[i].value, "env value", &v) < 0)
			continue;
		cmd->env[cmd->nenv++] = arena_printf(x->cfg->arena, "%s=%s", k, v);
	}
	return 0;
}

static int
parse_cwd(struct ctx *x, const struct cnode *n, void *dst)
{
	const char **out = dst;
	const char *p;
	if (scalar_string(x, n, "cwd", &p) < 0)
		return -1;
	*out = resolve_path(x, p);
	struct stat st;
	if (stat(*out, &st) < 0 || !S_ISDIR(st.st_mode))
		err_at(x, n, "cwd %s is not a directory", *out);
	return 0;
}

static int
parse_json_node(struct ctx *x, const struct cnode *n, void *dst)
{
	cJSON **out = dst;
	if (want_type(x, n, CNODE_MAP, "this key") < 0)
		return -1;
	*out = cnode_to_json(n);
	return 0;
}

/* The keys of a command, in tools, resources and prompts alike. */
static const struct field command_fields[] = {
	{ "command", F_CUSTOM, 0, 0, 0, { parse_argv } },
	{ "shell", F_CUSTOM, 0, 0, 0, { parse_shell } },
	{ "env", F_CUSTOM, 0, 0, 0, { parse_env } },
	{ "cwd", F_CUSTOM, offsetof(struct command_def, cwd), 0, 0, { parse_cwd } },
	{ "timeout", F_DURATION, offsetof(struct command_def, timeout_ms), 1, 86400000, { NULL } },
	{ "max_output", F_SIZE, offsetof(struct command_def, max_output), 1, 1ULL << 30, { NULL } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};

/* ---- the variables of declared names ---- */

struct var_ref {
	const char *var;
	size_t i;
};

static int
var_ref_cmp(const void *a, const void *b)
{
	const struct var_ref *x = a, *y = b;
	int c = strcmp(x->var, y->var);
	return c != 0 ? c : (x->i > y->i) - (x->i < y->i);
}

/* names[i] declared at nodes[i] (NULL: at `at`) becomes MCP_ARG_<name>.
 * Two names that make the same variable are an error at the second, as a
 * command could not tell them apart (and one could stand in for the
 * other, which its schema does not check). Sorted, so that a schema of
 * many properties costs n log n. what: "tool \"x\": inputs". */
static void
make_arg_env(struct ctx *x, struct arg_names *an, const char **names, const struct cnode **nodes,
    size_t n, const struct cnode *at, const char *what)
{
	an->n = 0;
	an->names = arena_zalloc(x->cfg->arena, (n ? n : 1) * sizeof(char *));
	an->vars = arena_zalloc(x->cfg->arena, (n ? n : 1) * sizeof(char *));
	struct var_ref *refs = calloc(n ? n : 1, sizeof(*refs));
	char *clash = calloc(n ? n : 1, 1);
	if (an->names == NULL || an->vars == NULL || refs == NULL || clash == NULL) {
		free(refs);
		free(clash);
		err_at(x, at, "%s: out of memory", what);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen("MCP_ARG_") + strlen(names[i]) + 1;
		char *var = arena_alloc(x->cfg->arena, len);
		if (var == NULL || tool_env_name(var, len, "MCP_ARG_", names[i]) < 0) {
			free(refs);
			free(clash);
			err_at(x, at, "%s: out of memory", what);
			return;
		}
		refs[i].var = var;
		refs[i].i = i;
		an->vars[i] = var;
	}
	qsort(refs, n, sizeof(*refs), var_ref_cmp);
	for (size_t k = 1, first = 0; k < n; k++) {
		if (strcmp(refs[k - 1].var, refs[k].var) != 0) {
			first = k;          /* a group of equal variables starts */
			continue;
		}
		size_t a = refs[first].i, b = refs[k].i;
		const struct cnode *where = nodes != NULL && nodes[b] != NULL ? nodes[b] : at;
		clash[b] = 1;
		if (strcmp(names[a], names[b]) == 0)
			err_at(x, where, "%s: \"%s\" is declared twice", what, names[b]);
		else
			err_at(x, where, "%s: \"%s\" and \"%s\" would both be the variable %s; "
			    "rename one", what, names[a], names[b], refs[k].var);
	}
	for (size_t i = 0; i < n; i++) {
		if (clash[i])
			continue;
		an->names[an->n] = names[i];
		an->vars[an->n] = an->vars[i];
		an->n++;
	}
	free(refs);
	free(clash);
}

/* A tool's inputs: the properties of its schema, where they were written
 * (the schema's properties keep the order of the mapping they came from,
 * some perhaps left out: one pass over both finds each). */
static void
tool_arg_env(struct ctx *x, const struct cnode *item, struct tool_def *t)
{
	const cJSON *props = cJSON_GetObjectItemCaseSensitive(t->input_schema, "properties");
	const struct cnode *input = cnode_get(item, "input");
	if (input == NULL)
		input = cnode_get(cnode_get(item, "input_schema"), "properties");
	if (input != NULL && input->type != CNODE_MAP)
		input = NULL;
	size_t n = (size_t)cJSON_GetArraySize(props), i = 0, k = 0;
	const char **names = calloc(n ? n : 1, sizeof(char *));
	const struct cnode **nodes = calloc(n ? n : 1, sizeof(*nodes));
	if (names == NULL || nodes == NULL) {
		free(names);
		free(nodes);
		err_at(x, item, "out of memory");
		return;
	}
	const cJSON *p;
	cJSON_ArrayForEach(p, props) {
		names[i] = arena_strdup(x->cfg->arena, p->string);
		size_t from = k;
		while (input != NULL && k < input->n && strcmp(input->pairs[k].key->str, p->string) != 0)
			k++;
		if (input != NULL && k < input->n)
			nodes[i] = input->pairs[k++].key;
		else
			k = from;
		i++;
	}
	char what[200];
	snprintf(what, sizeof(what), "tool \"%s\": inputs", t->name);
	make_arg_env(x, &t->arg_env, names, nodes, n, item, what);
	free(names);
	free(nodes);
}

/* Undeclared arguments are refused unless the schema allows them: an
 * input schema with properties, and none of the keywords through which
 * other properties may be declared, gets "additionalProperties": false,
 * sent to clients too so that they know. */
static void
close_input_schema(cJSON *schema)
{
	static const char *const open[] = { "additionalProperties", "unevaluatedProperties", "allOf",
	    "anyOf", "oneOf", "not", "if", "then", "else", "$ref", "$dynamicRef", "dependentSchemas", NULL };
	if (!cJSON_IsObject(schema) || !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(schema, "properties")))
		return;
	for (size_t i = 0; open[i] != NULL; i++)
		if (cJSON_HasObjectItem(schema, open[i]))
			return;
	cJSON_AddFalseToObject(schema, "additionalProperties");
}

/* ---- tools ---- */

static const struct enum_name output_modes[] = {
	{ "text", OUT_TEXT }, { "json", OUT_JSON }, { "content", OUT_CONTENT }, { NULL, 0 },
};
_Static_assert(sizeof(enum tool_output) == sizeof(int), "scalar_enum writes an int");

static int
parse_output_mode(struct ctx *x, const struct cnode *n, void *dst)
{
	return scalar_enum(x, n, "output", output_modes, dst);
}

static int
parse_plugin_ref(struct ctx *x, const struct cnode *n, void *dst)
{
	struct tool_def *t = (struct tool_def *)((char *)dst - offsetof(struct tool_def, plugin_file));
	const char *ref;
	if (scalar_string(x, n, "plugin", &ref) < 0)
		return -1;
	const char *colon = strrchr(ref, ':');
	if (colon == NULL || colon == ref || colon[1] == '\0') {
		err_at(x, n, "plugin must be file.so:symbol");
		return -1;
	}
	t->plugin_file = arena_strndup(x->cfg->arena, ref, (size_t)(colon - ref));
	t->plugin_symbol = colon + 1;
	t->kind = TOOL_PLUGIN;
	return 0;   /* loaded once plugin_dir is known: config_tools_finish */
}

/* Client capabilities a tool cannot work without. */
static int
parse_requires(struct ctx *x, const struct cnode *n, void *dst)
{
	cJSON **out = dst;
	if (want_type(x, n, CNODE_SEQ, "requires") < 0)
		return -1;
	cJSON *caps = cJSON_CreateObject();
	for (size_t i = 0; i < n->n; i++) {
		const char *cap;
		if (scalar_string(x, n->items[i], "requires entry", &cap) < 0)
			continue;
		if (strcmp(cap, "sampling") != 0 && strcmp(cap, "elicitation") != 0 && strcmp(cap, "roots") != 0) {
			err_at(x, n->items[i], "requires: \"%s\" is not a client capability (sampling, elicitation, roots)", cap);
			continue;
		}
		cJSON_AddObjectToObject(caps, cap);
	}
	*out = caps;
	return 0;
}

/* SEP-2243: a primitive argument may be mirrored in an Mcp-Param-<name>
 * header so that proxies can route on it; mcpd checks the mirror. */
static void
collect_header_params(struct ctx *x, const struct cnode *at, struct tool_def *t)
{
	const cJSON *props = cJSON_GetObjectItemCaseSensitive(t->input_schema, "properties");
	const cJSON *p;
	cJSON_ArrayForEach(p, props) {
		const cJSON *h = cJSON_GetObjectItemCaseSensitive(p, "x-mcp-header");
		if (h == NULL)
			continue;
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
		int primitive = cJSON_IsString(type) && (strcmp(type->valuestring, "string") == 0 ||
		    strcmp(type->valuestring, "number") == 0 || strcmp(type->valuestring, "integer") == 0 ||
		    strcmp(type->valuestring, "boolean") == 0);
		/* a token (RFC 9110 5.6.2) short enough for Mcp-Param-<name> to
		 * be looked up whole */
		int ok = cJSON_IsString(h) && h->valuestring[0] != '\0' && strlen(h->valuestring) <= 128;
		for (const char *c = ok ? h->valuestring : ""; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
			    strchr("!#$%&'*+-.^_`|~", *c) != NULL))
				ok = 0;
		if (!ok || !primitive) {
			err_at(x, at, "tool \"%s\": x-mcp-header of \"%s\" must be a header name (at most 128 letters, digits or !#$%%&'*+-.^_`|~) on a string, number, integer or boolean property",
			    t->name, p->string);
			continue;
		}
		if (t->header_params == NULL)
			t->header_params = cJSON_CreateObject();
		if (cJSON_GetArraySize(t->header_params) == MAX_HEADER_PARAMS) {
			/* A request carries 100 header fields at most. */
			err_at(x, at, "tool \"%s\": more than %d x-mcp-header properties", t->name, MAX_HEADER_PARAMS);
			return;
		}
		const cJSON *o;
		cJSON_ArrayForEach(o, t->header_params)
			if (strcasecmp(o->valuestring, h->valuestring) == 0)
				err_at(x, at, "tool \"%s\": x-mcp-header \"%s\" is used twice", t->name, h->valuestring);
		cJSON_AddStringToObject(t->header_params, p->string, h->valuestring);
	}
}

static cJSON *
short_property(struct ctx *x, const struct cnode *v)
{
	static const char *const types[] = { "string", "integer", "number", "boolean",
	    "array", "object", "null", NULL };
	if (v->type == CNODE_MAP)
		return cnode_to_json(v);
	if (v->type == CNODE_SCALAR) {
		for (size_t i = 0; types[i] != NULL; i++) {
			if (strcmp(v->str, types[i]) == 0) {
				cJSON *p = cJSON_CreateObject();
				cJSON_AddStringToObject(p, "type", v->str);
				return p;
			}
		}
		err_at(x, v, "\"%s\" is not a JSON Schema type (string, integer, number, boolean, array, object)", v->str);
		return NULL;
	}
	err_at(x, v, "an input property is a type name or a JSON Schema mapping");
	return NULL;
}

static int
parse_tool_scopes(struct ctx *x, const struct cnode *n, void *dst)
{
	return parse_scope_list(x, n, "scopes", x->cfg->arena, dst);
}

static const struct enum_name task_modes[] = {
	{ "never", TASK_NEVER }, { "may", TASK_MAY }, { "must", TASK_MUST }, { NULL, 0 },
};

static const struct field tool_fields[] = {
	{ "name", F_STRING, offsetof(struct tool_def, name), 0, 0, { NULL } },
	{ "title", F_STRING, offsetof(struct tool_def, title), 0, 0, { NULL } },
	{ "description", F_STRING, offsetof(struct tool_def, description), 0, 0, { NULL } },
	{ "input", F_IGNORE, 0, 0, 0, { NULL } },       /* build_input_schema */
	{ "required", F_IGNORE, 0, 0, 0, { NULL } },
	{ "input_schema", F_CUSTOM, offsetof(struct tool_def, input_schema), 0, 0, { parse_json_node } },
	{ "output_schema", F_CUSTOM, offsetof(struct tool_def, output_schema), 0, 0, { parse_json_node } },
	{ "annotations", F_CUSTOM, offsetof(struct tool_def, annotations), 0, 0, { parse_json_node } },
	{ "", F_INCLUDE, offsetof(struct tool_def, cmd), 0, 0, { .include = command_fields } },
	{ "plugin", F_CUSTOM, offsetof(struct tool_def, plugin_file), 0, 0, { parse_plugin_ref } },
	{ "output", F_CUSTOM, offsetof(struct tool_def, output), 0, 0, { parse_output_mode } },
	{ "requires", F_CUSTOM, offsetof(struct tool_def, requires), 0, 0, { parse_requires } },
	{ "scopes", F_CUSTOM, offsetof(struct tool_def, scopes), 0, 0, { parse_tool_scopes } },
	{ "task", F_ENUM, offsetof(struct tool_def, task), 0, 0, { .names = task_modes } },
	{ "task_ttl", F_DURATION, offsetof(struct tool_def, task_ttl_ms), 1000, 30ULL * 86400000, { NULL } },
	{ "task_after", F_DURATION, offsetof(struct tool_def, task_after_ms), 0, 3600000, { NULL } },
	{ "max_concurrent", F_UINT, offsetof(struct tool_def, cmd.max_concurrent), 1, 100000, { NULL } },
	{ "persistent", F_BOOL, offsetof(struct tool_def, cmd.persistent), 0, 0, { NULL } },
	{ "instances", F_UINT, offsetof(struct tool_def, cmd.instances), 1, 64, { NULL } },
	{ "concurrency", F_UINT, offsetof(struct tool_def, cmd.concurrency), 1, 1024, { NULL } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static cJSON *
build_input_schema(struct ctx *x, const struct cnode *item, struct tool_def *t)
{
	const struct cnode *input = cnode_get(item, "input");
	const struct cnode *required = cnode_get(item, "required");
	if (t->input_schema != NULL) {
		if (input != NULL || required != NULL)
			err_at(x, input ? input : required, "use either input/required or input_schema, not both");
		if (t->input_schema != NULL && !cJSON_IsObject(t->input_schema))
			return t->input_schema;
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(t->input_schema, "type");
		if (!cJSON_IsString(type) || strcmp(type->valuestring, "object") != 0)
			err_at(x, cnode_get(item, "input_schema"), "input_schema must have \"type\": \"object\"");
		return t->input_schema;
	}
	cJSON *schema = cJSON_CreateObject();
	cJSON_AddStringToObject(schema, "type", "object");
	cJSON *props = cJSON_AddObjectToObject(schema, "properties");
	if (input != NULL && want_type(x, input, CNODE_MAP, "input") == 0) {
		for (size_t i = 0; i < input->n; i++) {
			cJSON *p = short_property(x, input->pairs[i].value);
			if (p != NULL)
				cJSON_AddItemToObject(props, input->pairs[i].key->str, p);
		}
	}
	if (required != NULL && want_type(x, required, CNODE_SEQ, "required") == 0) {
		/* Looked up in the sorted names: a long list costs n log n. */
		size_t np = input != NULL && input->type == CNODE_MAP ? input->n : 0;
		const char **names = arena_alloc(x->cfg->arena, (np ? np : 1) * sizeof(*names));
		if (names == NULL) {
			err_at(x, required, "required: out of memory");
			return schema;
		}
		for (size_t i = 0; i < np; i++)
			names[i] = input->pairs[i].key->str;
		qsort(names, np, sizeof(*names), str_cmp);
		cJSON *req = cJSON_AddArrayToObject(schema, "required");
		for (size_t i = 0; i < required->n; i++) {
			const char *name;
			if (scalar_string(x, required->items[i], "required entry", &name) < 0)
				continue;
			if (bsearch(&name, names, np, sizeof(*names), str_cmp) == NULL)
				err_at(x, required->items[i], "required \"%s\" is not an input property", name);
			cJSON_AddItemToArray(req, cJSON_CreateString(name));
		}
	}
	return schema;
}

static void
tool_init(void *elem, const struct cnode *item)
{
	((struct tool_def *)elem)->line = item->line;
	((struct tool_def *)elem)->task_ttl_ms = 3600000;
}

static int
tool_check(struct ctx *x, const struct cnode *item, void *elem, size_t before)
{
	struct tool_def *t = elem;
	if (t->name == NULL) {
		err_at(x, item, "a tool needs a name");
		cJSON_Delete(t->requires);
		cJSON_Delete(t->input_schema);
		cJSON_Delete(t->output_schema);
		cJSON_Delete(t->annotations);
		memset(t, 0, sizeof(*t));
		return -1;
	}
	if (!valid_name(t->name))
		err_at(x, cnode_get(item, "name"), "tool name \"%s\" must be 1-128 of A-Z a-z 0-9 _ - .", t->name);
	int runs = (cnode_get(item, "command") != NULL) + (cnode_get(item, "shell") != NULL) +
	    (cnode_get(item, "plugin") != NULL);
	if (runs != 1)
		err_at(x, item, "tool \"%s\" needs exactly one of command, shell or plugin", t->name);
	t->kind = cnode_get(item, "plugin") ? TOOL_PLUGIN : cnode_get(item, "shell") ? TOOL_SHELL : TOOL_COMMAND;
	if (t->kind == TOOL_PLUGIN && t->cmd.max_concurrent != 0)
		err_at(x, cnode_get(item, "max_concurrent"), "tool \"%s\": max_concurrent applies to command "
		    "and shell tools (a plugin tool runs in the worker)", t->name);
	/* A persistent process serves commands and shell scripts alike (a
	 * shell loop reads with mcpd-tool next); a plugin runs in-process. */
	if (!t->cmd.persistent && (cnode_get(item, "instances") != NULL || cnode_get(item, "concurrency") != NULL))
		err_at(x, cnode_get(item, "instances") ? cnode_get(item, "instances") : cnode_get(item, "concurrency"),
		    "tool \"%s\": instances and concurrency need persistent: true", t->name);
	if (t->cmd.persistent && t->cmd.max_concurrent != 0)
		err_at(x, cnode_get(item, "max_concurrent"), "tool \"%s\": max_concurrent counts processes; "
		    "a persistent tool's calls are bounded by instances and concurrency", t->name);
	if (t->cmd.persistent && t->kind == TOOL_PLUGIN)
		err_at(x, cnode_get(item, "persistent"), "tool \"%s\": a plugin tool runs in-process; "
		    "persistent is for command and shell tools", t->name);
	if (t->cmd.persistent) {
		if (t->cmd.instances == 0)
			t->cmd.instances = 1;
		if (t->cmd.concurrency == 0)
			t->cmd.concurrency = 1;
	}
	if (t->task == TASK_NEVER && (cnode_get(item, "task_ttl") != NULL || cnode_get(item, "task_after") != NULL))
		err_at(x, cnode_get(item, "task_ttl") ? cnode_get(item, "task_ttl") : cnode_get(item, "task_after"),
		    "tool \"%s\": task_ttl and task_after need task: may or task: must", t->name);
	t->input_schema = build_input_schema(x, item, t);
	/* A tool that declares no input at all takes what it is given, on
	 * standard input only; one that declares inputs takes those. */
	if (cnode_get(item, "input") != NULL || cnode_get(item, "input_schema") != NULL)
		close_input_schema(t->input_schema);
	tool_arg_env(x, item, t);
	char why[256];
	if (t->input_schema != NULL &&
	    (t->input_compiled = schema_compile(t->input_schema, why, sizeof(why))) == NULL)
		err_at(x, cnode_get(item, "input_schema") ? cnode_get(item, "input_schema") : item,
		    "tool \"%s\" input schema: %s", t->name, why);
	if (t->input_schema != NULL)
		collect_header_params(x, cnode_get(item, "input_schema") ? cnode_get(item, "input_schema") :
		    cnode_get(item, "input") ? cnode_get(item, "input") : item, t);
	if (t->output_schema != NULL) {
		if (t->output != OUT_JSON)
			err_at(x, cnode_get(item, "output_schema"), "output_schema needs output: json");
		if ((t->output_compiled = schema_compile(t->output_schema, why, sizeof(why))) == NULL)
			err_at(x, cnode_get(item, "output_schema"), "output_schema: %s", why);
	}
	return 0;      /* kept even when wrong: config_free releases its JSON */
}

static const char *
tool_name(const void *elem)
{
	return ((const struct tool_def *)elem)->name;
}

static void
tool_twice(struct ctx *x, const struct cnode *item, const void *elem, const void *first)
{
	const struct tool_def *t = elem, *f = first;
	err_at(x, cnode_get(item, "name"), "tool \"%s\" declared twice (first at line %d)", t->name, f->line);
}

const struct items tool_items = {
	"tools", "a tool", tool_fields, sizeof(struct tool_def), offsetof(struct config, ntools),
	tool_init, NULL, tool_check, tool_name, tool_twice,
};

/* ---- resources ---- */

static int
parse_completions_map(struct ctx *x, const struct cnode *n, void *dst)
{
	cJSON **out = dst;
	if (want_type(x, n, CNODE_MAP, "completions") < 0)
		return -1;
	cJSON *map = cJSON_CreateObject();
	for (size_t i = 0; i < n->n; i++) {
		const struct cnode *list = n->pairs[i].value;
		if (want_type(x, list, CNODE_SEQ, "a completions entry") < 0)
			continue;
		/* Values are offered as text: 123 and "123" are the same. */
		cJSON *vals = cJSON_AddArrayToObject(map, n->pairs[i].key->str);
		for (size_t j = 0; j < list->n; j++) {
			const char *v;
			if (scalar_string(x, list->items[j], "a completion", &v) == 0)
				cJSON_AddItemToArray(vals, cJSON_CreateString(v));
		}
	}
	*out = map;
	return 0;
}

static int
parse_path(struct ctx *x, const struct cnode *n, void *dst)
{
	const char **out = dst;
	const char *p;
	if (scalar_string(x, n, "file", &p) < 0)
		return -1;
	*out = resolve_path(x, p);
	return 0;
}

static const struct field resource_fields[] = {
	{ "uri", F_STRING, offsetof(struct resource_def, uri), 0, 0, { NULL } },
	{ "uri_template", F_STRING, offsetof(struct resource_def, uri_template), 0, 0, { NULL } },
	{ "name", F_STRING, offsetof(struct resource_def, name), 0, 0, { NULL } },
	{ "title", F_STRING, offsetof(struct resource_def, title), 0, 0, { NULL } },
	{ "description", F_STRING, offsetof(struct resource_def, description), 0, 0, { NULL } },
	{ "mime_type", F_STRING, offsetof(struct resource_def, mime_type), 0, 0, { NULL } },
	{ "text", F_STRING, offsetof(struct resource_def, text), 0, 0, { NULL } },
	{ "file", F_CUSTOM, offsetof(struct resource_def, file), 0, 0, { parse_path } },
	{ "binary", F_BOOL, offsetof(struct resource_def, binary), 0, 0, { NULL } },
	{ "", F_INCLUDE, offsetof(struct resource_def, cmd), 0, 0, { .include = command_fields } },
	{ "completions", F_CUSTOM, offsetof(struct resource_def, completions), 0, 0, { parse_completions_map } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};

/* A template's variables, {name} each, as uri_template_match reads them. */
static void
template_arg_env(struct ctx *x, const struct cnode *at, struct resource_def *r)
{
	const char *names[64];
	size_t n = 0;
	for (const char *t = r->uri_template; (t = strchr(t, '{')) != NULL; ) {
		const char *close = strchr(t, '}');
		if (close == NULL)
			break;
		size_t len = (size_t)(close - t - 1);
		if (len == 0 || len >= 128) {
			err_at(x, at, "uri_template \"%s\": a variable needs a name of 1 to 127 bytes", r->uri_template);
			return;
		}
		if (n == sizeof(names) / sizeof(names[0])) {
			err_at(x, at, "uri_template \"%s\" has more than 64 variables", r->uri_template);
			return;
		}
		names[n++] = arena_strndup(x->cfg->arena, t + 1, len);
		t = close + 1;
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(names[i], names[j]) == 0) {
				err_at(x, at, "uri_template \"%s\": the variable {%s} appears twice", r->uri_template,
				    names[i]);
				return;
			}
	char what[160];
	snprintf(what, sizeof(what), "resource template \"%.100s\": variables", r->uri_template);
	make_arg_env(x, &r->arg_env, names, NULL, n, at, what);
}

static int
textual_mime(const char *m)
{
	if (m == NULL)
		return 1;
	return strncmp(m, "text/", 5) == 0 || strstr(m, "json") != NULL || strstr(m, "xml") != NULL ||
	    strstr(m, "yaml") != NULL || strcmp(m, "application/javascript") == 0 ||
	    strcmp(m, "application/x-sh") == 0;
}

static void
resource_init(void *elem, const struct cnode *item)
{
	struct resource_def *r = elem;
	r->line = item->line;
	r->binary = -1;
}

static int
resource_check(struct ctx *x, const struct cnode *item, void *elem, size_t before)
{
	struct resource_def *r = elem;
	if ((r->uri == NULL) == (r->uri_template == NULL)) {
		err_at(x, item, "a resource needs exactly one of uri and uri_template");
		cJSON_Delete(r->completions);
		memset(r, 0, sizeof(*r));
		return -1;
	}
	const char *what = r->uri ? r->uri : r->uri_template;
	if (strstr(what, ":") == NULL)
		err_at(x, cnode_get(item, r->uri ? "uri" : "uri_template"),
		    "\"%s\" is not a URI (it needs a scheme, such as file: or https:)", what);
	if (r->name == NULL)
		err_at(x, item, "resource %s needs a name", what);
	int sources = (r->text != NULL) + (r->file != NULL) + (r->cmd.argv != NULL);
	if (sources != 1)
		err_at(x, item, "resource %s needs exactly one of text, file, command or shell", what);
	r->kind = r->text ? RES_TEXT : r->file ? RES_FILE : RES_COMMAND;
	if (r->uri_template != NULL && r->kind != RES_COMMAND)
		err_at(x, item, "a uri_template resource is served by a command or shell");
	if (r->kind == RES_FILE && access(r->file, R_OK) < 0)
		err_at(x, cnode_get(item, "file"), "file %s: %s", r->file, strerror(errno));
	if (r->completions != NULL && r->uri_template == NULL)
		err_at(x, cnode_get(item, "completions"), "completions apply to uri_template resources");
	if (r->binary == -1)
		r->binary = !textual_mime(r->mime_type);
	if (r->uri_template != NULL)
		template_arg_env(x, cnode_get(item, "uri_template"), r);
	return 0;
}

static const char *
resource_name(const void *elem)
{
	const struct resource_def *r = elem;
	return r->uri ? r->uri : r->uri_template;
}

static void
resource_twice(struct ctx *x, const struct cnode *item, const void *elem, const void *first)
{
	err_at(x, item, "resource %s declared twice (first at line %d)", resource_name(elem),
	    ((const struct resource_def *)first)->line);
}

const struct items resource_items = {
	"resources", "a resource", resource_fields, sizeof(struct resource_def),
	offsetof(struct config, nresources), resource_init, NULL, resource_check, resource_name, resource_twice,
};

/* ---- prompts ---- */

static const char *
file_base64(struct ctx *x, const struct cnode *at, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		err_at(x, at, "%s: %s", path, strerror(errno));
		return NULL;
	}
	size_t cap = 65536, len = 0;
	unsigned char *buf = malloc(cap);
	size_t r;
	while (buf != NULL && (r = fread(buf + len, 1, cap - len, f)) > 0) {
		len += r;
		if (len > EMBED_FILE_MAX || x->file_bytes + len > EMBED_TOTAL_MAX) {
			if (len > EMBED_FILE_MAX)
				err_at(x, at, "%s is larger than %u MiB", path, EMBED_FILE_MAX >> 20);
			else
				err_at(x, at, "%s: the prompts' files come to more than %u MiB in all", path,
				    EMBED_TOTAL_MAX >> 20);
			free(buf);
			fclose(f);
			return NULL;
		}
		if (len == cap) {
			unsigned char *nb = realloc(buf, cap * 2);
			if (nb == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	fclose(f);
	if (buf == NULL) {
		err_at(x, at, "%s: out of memory", path);
		return NULL;
	}
	x->file_bytes += len;
	char *out = arena_alloc(x->cfg->arena, 4 * ((len + 2) / 3) + 1);
	if (out == NULL) {
		free(buf);
		err_at(x, at, "%s: out of memory", path);
		return NULL;
	}
	base64_encode(buf, len, out);
	free(buf);
	return out;
}

static int
parse_message(struct ctx *x, const struct cnode *n, struct prompt_message *m)
{
	if (want_type(x, n, CNODE_MAP, "a prompt message") < 0)
		return -1;
	m->role = "user";
	int kinds = 0;
	for (size_t i = 0; i < n->n; i++) {
		const char *k = n->pairs[i].key->str;
		const struct cnode *v = n->pairs[i].value;
		if (strcmp(k, "role") == 0) {
			if (scalar_string(x, v, "role", &m->role) == 0 &&
			    strcmp(m->role, "user") != 0 && strcmp(m->role, "assistant") != 0)
				err_at(x, v, "role must be user or assistant");
		} else if (strcmp(k, "text") == 0) {
			kinds++;
			m->type = CT_TEXT;
			scalar_string(x, v, "text", &m->text);
		} else if (strcmp(k, "image") == 0 || strcmp(k, "audio") == 0) {
			kinds++;
			m->type = k[0] == 'i' ? CT_IMAGE : CT_AUDIO;
			const char *path;
			if (scalar_string(x, v, k, &path) == 0)
				m->data = file_base64(x, v, resolve_path(x, path));
		} else if (strcmp(k, "data") == 0) {
			scalar_string(x, v, "data", &m->data);
		} else if (strcmp(k, "mime_type") == 0) {
			scalar_string(x, v, "mime_type", &m->mime_type);
		} else if (strcmp(k, "resource") == 0) {
			kinds++;
			m->type = CT_RESOURCE;
			if (want_type(x, v, CNODE_MAP, "resource") < 0)
				continue;
			for (size_t j = 0; j < v->n; j++) {
				const char *rk = v->pairs[j].key->str;
				if (strcmp(rk, "uri") == 0)
					scalar_string(x, v->pairs[j].value, "resource.uri", &m->uri);
				else if (strcmp(rk, "text") == 0)
					scalar_string(x, v->pairs[j].value, "resource.text", &m->resource_text);
				else if (strcmp(rk, "mime_type") == 0)
					scalar_string(x, v->pairs[j].value, "resource.mime_type", &m->mime_type);
				else
					err_at(x, v->pairs[j].key, "unknown key \"%s\" in a prompt resource (uri, text, mime_type)", rk);
			}
			if (m->uri == NULL)
				err_at(x, v, "an embedded resource needs a uri");
			if (m->resource_text == NULL)
				m->resource_text = "";
		} else {
			err_at(x, n->pairs[i].key, "unknown key \"%s\" in a prompt message (role, text, image, audio, data, mime_type, resource)", k);
		}
	}
	if (kinds != 1) {
		err_at(x, n, "a prompt message needs exactly one of text, image, audio or resource");
		return -1;
	}
	if ((m->type == CT_IMAGE || m->type == CT_AUDIO) && m->mime_type == NULL)
		err_at(x, n, "image and audio messages need a mime_type");
	return 0;
}

static int
parse_string_list(struct ctx *x, const struct cnode *n, void *dst)
{
	cJSON **out = dst;
	if (want_type(x, n, CNODE_SEQ, "completions") < 0)
		return -1;
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < n->n; i++) {
		const char *s;
		if (scalar_string(x, n->items[i], "a completion", &s) == 0)
			cJSON_AddItemToArray(a, cJSON_CreateString(s));
	}
	*out = a;
	return 0;
}

static const struct field arg_fields[] = {
	{ "name", F_STRING, offsetof(struct prompt_arg, name), 0, 0, { NULL } },
	{ "description", F_STRING, offsetof(struct prompt_arg, description), 0, 0, { NULL } },
	{ "required", F_BOOL, offsetof(struct prompt_arg, required), 0, 0, { NULL } },
	{ "completions", F_CUSTOM, offsetof(struct prompt_arg, completions), 0, 0, { parse_string_list } },
	{ "complete", F_CUSTOM, offsetof(struct prompt_arg, complete), 0, 0, { parse_argv } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};

static int
arg_check(struct ctx *x, const struct cnode *item, void *elem, size_t before)
{
	if (((struct prompt_arg *)elem)->name == NULL)
		err_at(x, item, "a prompt argument needs a name");
	return 0;
}

static const struct items arg_items = {
	"arguments", "a prompt argument", arg_fields, sizeof(struct prompt_arg),
	offsetof(struct prompt_def, nargs), NULL, NULL, arg_check, NULL, NULL,
};

static int
parse_prompt_messages(struct ctx *x, const struct cnode *n, void *dst)
{
	struct prompt_def *p = (struct prompt_def *)((char *)dst - offsetof(struct prompt_def, messages));
	if (want_type(x, n, CNODE_SEQ, "messages") < 0)
		return -1;
	p->messages = arena_zalloc(x->cfg->arena, (n->n ? n->n : 1) * sizeof(*p->messages));
	for (size_t i = 0; i < n->n; i++)
		if (parse_message(x, n->items[i], &p->messages[p->nmessages]) == 0)
			p->nmessages++;
	return 0;
}

/* A prompt's arguments, for its command and its completion commands. */
static void
prompt_arg_env(struct ctx *x, const struct cnode *item, struct prompt_def *p)
{
	const struct cnode *list = cnode_get(item, "arguments");
	const char **names = calloc(p->nargs ? p->nargs : 1, sizeof(char *));
	const struct cnode **nodes = calloc(p->nargs ? p->nargs : 1, sizeof(*nodes));
	if (names == NULL || nodes == NULL) {
		free(names);
		free(nodes);
		err_at(x, item, "out of memory");
		return;
	}
	/* The arguments are the list's mappings, in order. */
	size_t n = 0, k = 0;
	for (size_t i = 0; i < p->nargs; i++) {
		while (list != NULL && list->type == CNODE_SEQ && k < list->n && list->items[k]->type != CNODE_MAP)
			k++;
		const struct cnode *at = list != NULL && list->type == CNODE_SEQ && k < list->n ?
		    cnode_get(list->items[k++], "name") : NULL;
		if (p->args[i].name == NULL)
			continue;
		nodes[n] = at;
		names[n++] = p->args[i].name;
	}
	char what[200];
	snprintf(what, sizeof(what), "prompt \"%s\": arguments", p->name);
	make_arg_env(x, &p->arg_env, names, nodes, n, item, what);
	free(names);
	free(nodes);
}

static const struct field prompt_fields[] = {
	{ "name", F_STRING, offsetof(struct prompt_def, name), 0, 0, { NULL } },
	{ "title", F_STRING, offsetof(struct prompt_def, title), 0, 0, { NULL } },
	{ "description", F_STRING, offsetof(struct prompt_def, description), 0, 0, { NULL } },
	{ "arguments", F_ITEMS, offsetof(struct prompt_def, args), 0, 0, { .items = &arg_items } },
	{ "messages", F_CUSTOM, offsetof(struct prompt_def, messages), 0, 0, { parse_prompt_messages } },
	{ "", F_INCLUDE, offsetof(struct prompt_def, cmd), 0, 0, { .include = command_fields } },
	{ NULL, 0, 0, 0, 0, { NULL } },
};

static void
prompt_init(void *elem, const struct cnode *item)
{
	((struct prompt_def *)elem)->line = item->line;
}

static int
prompt_check(struct ctx *x, const struct cnode *item, void *elem, size_t before)
{
	struct prompt_def *p = elem;
	if (p->name == NULL) {
		err_at(x, item, "a prompt needs a name");
		for (size_t j = 0; j < p->nargs; j++)
			cJSON_Delete(p->args[j].completions);
		memset(p, 0, sizeof(*p));
		return -1;
	}
	if (!valid_name(p->name))
		err_at(x, cnode_get(item, "name"), "prompt name \"%s\" must be 1-128 of A-Z a-z 0-9 _ - .", p->name);
	if ((p->nmessages > 0 || cnode_get(item, "messages")) == (p->cmd.argv != NULL))
		err_at(x, item, "prompt \"%s\" needs exactly one of messages, command or shell", p->name);
	prompt_arg_env(x, item, p);
	return 0;
}

static const char *
prompt_name(const void *elem)
{
	return ((const struct prompt_def *)elem)->name;
}

static void
prompt_twice(struct ctx *x, const struct cnode *item, const void *elem, const void *first)
{
	const struct prompt_def *p = elem, *f = first;
	err_at(x, item, "prompt \"%s\" declared twice (first at line %d)", p->name, f->line);
}

const struct items prompt_items = {
	"prompts", "a prompt", prompt_fields, sizeof(struct prompt_def), offsetof(struct config, nprompts),
	prompt_init, NULL, prompt_check, prompt_name, prompt_twice,
};

static void
command_defaults(struct config *c, struct command_def *cmd)
{
	if (cmd->timeout_ms == 0)
		cmd->timeout_ms = c->limits.tool_timeout_ms;
	if (cmd->max_output == 0)
		cmd->max_output = c->limits.tool_output;
}

static void
load_plugin_tool(struct ctx *x, struct config *c, struct tool_def *t)
{
	const char *file = t->plugin_file;
	const char *path = strchr(file, '/') == NULL ?
	    arena_printf(c->arena, "%s/%s", c->plugin_dir, file) :
	    (file[0] == '/' ? file : arena_printf(c->arena, "%s/%s", c->config_dir, file));
	char err[512];
	struct loaded_plugin *p = plugin_load(path, MCPD_PLUGIN_TOOLS, err, sizeof(err));
	if (p == NULL) {
		errlist_add(x->errs, "%s:%d: tool \"%s\": %s", c->path, t->line, t->name, err);
		return;
	}
	t->plugin = p;
	t->plugin_fn = plugin_symbol(p, t->plugin_symbol, err, sizeof(err));
	if (t->plugin_fn == NULL)
		errlist_add(x->errs, "%s:%d: tool \"%s\": %s", c->path, t->line, t->name, err);
}

void
config_tools_finish(struct ctx *x, struct config *c)
{
	for (size_t i = 0; i < c->ntools; i++)
		if (c->tools[i].kind == TOOL_PLUGIN && c->tools[i].plugin_file != NULL)
			load_plugin_tool(x, c, &c->tools[i]);
	for (size_t i = 0; i < c->ntools; i++) {
		struct tool_def *t = &c->tools[i];
		command_defaults(c, &t->cmd);
		if (t->task == TASK_NEVER)
			continue;
		c->tasks = 1;
		/* A task outlives its request, not its record. */
		if (t->task_ttl_ms < t->cmd.timeout_ms)
			errlist_add(x->errs, "%s:%d: tool \"%s\": task_ttl (%llums) is shorter than its timeout "
			    "(%llums): the task would be forgotten while it runs", c->path, t->line, t->name,
			    (unsigned long long)t->task_ttl_ms, (unsigned long long)t->cmd.timeout_ms);
	}
	for (size_t i = 0; i < c->nresources; i++)
		command_defaults(c, &c->resources[i].cmd);
	for (size_t i = 0; i < c->nprompts; i++) {
		command_defaults(c, &c->prompts[i].cmd);
		for (size_t j = 0; j < c->prompts[i].nargs; j++)
			command_defaults(c, &c->prompts[i].args[j].complete);
	}
	char err[256];
	if (x->errs->n == 0 && registry_build(c, err, sizeof(err)) < 0)
		errlist_add(x->errs, "%s: %s", c->path, err);
}

void
config_tools_free(struct config *c)
{
	for (size_t i = 0; i < c->ntools; i++) {
		schema_compiled_free(c->tools[i].input_compiled);
		schema_compiled_free(c->tools[i].output_compiled);
		cJSON_Delete(c->tools[i].input_schema);
		cJSON_Delete(c->tools[i].output_schema);
		cJSON_Delete(c->tools[i].annotations);
		cJSON_Delete(c->tools[i].listing);
		cJSON_Delete(c->tools[i].requires);
		cJSON_Delete(c->tools[i].header_params);
	}
	for (size_t i = 0; i < c->nresources; i++) {
		cJSON_Delete(c->resources[i].completions);
		cJSON_Delete(c->resources[i].listing);
	}
	for (size_t i = 0; i < c->nprompts; i++) {
		for (size_t j = 0; j < c->prompts[i].nargs; j++)
			cJSON_Delete(c->prompts[i].args[j].completions);
		cJSON_Delete(c->prompts[i].listing);
	}
	registry_free(c);
}
