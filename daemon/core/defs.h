/* What the operator declared: tools, resources and prompts (and the
 * commands they run), as config_tools.c parses them from mcpd.yaml into
 * the config. Types only: registry.h looks them up. */
#ifndef MCPD_DEFS_H
#define MCPD_DEFS_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;
struct loaded_plugin;

enum tool_kind { TOOL_COMMAND, TOOL_SHELL, TOOL_PLUGIN };
/* Whether a call may run as a task (the io.modelcontextprotocol/tasks
 * extension): never, when the client takes tasks, or always. */
enum task_mode { TASK_NEVER, TASK_MAY, TASK_MUST };
enum tool_output { OUT_TEXT, OUT_JSON, OUT_CONTENT };

/* How a command runs: shared by tools, command resources and prompts. */
struct command_def {
	const char **argv;          /* NULL-terminated; argv[0] resolved at load */
	size_t argc;
	const char **env;           /* "KEY=value", NULL-terminated (operator's env:) */
	size_t nenv;
	const char *cwd;
	uint64_t timeout_ms;
	uint64_t max_output;
	uint64_t max_concurrent;    /* a tool's runs at once per worker; 0: any */
	int persistent;             /* tools only: kept running, one request a line */
	uint64_t instances;         /* persistent: processes per worker */
	uint64_t concurrency;       /* persistent: calls in flight per process */
};

/* The names a command sees as MCP_ARG_<name> variables: a tool's declared
 * input properties, a template's variables, a prompt's arguments. Made
 * at load, where two names that would make one variable are an error;
 * nothing else the client sends reaches a command's environment. */
struct arg_names {
	const char **names;         /* as declared */
	const char **vars;          /* MCP_ARG_<name> with [^A-Za-z0-9] as _ */
	size_t n;
};

struct tool_def {
	const char *name, *title, *description;
	struct cJSON *input_schema;     /* sent as is; arguments validated against it */
	struct cJSON *output_schema;    /* NULL: none */
	struct schema_compiled *input_compiled, *output_compiled;  /* their patterns, compiled at load */
	struct cJSON *annotations;
	struct cJSON *listing;          /* the tools/list entry */
	enum tool_kind kind;
	struct command_def cmd;
	const char *plugin_file, *plugin_symbol;
	struct loaded_plugin *plugin;   /* the object plugin_fn is in, once loaded */
	void *plugin_fn;                /* mcpd_tool_fn, once loaded */
	enum tool_output output;
	struct cJSON *requires;         /* client capabilities the tool needs, or NULL */
	struct cJSON *header_params;    /* x-mcp-header: property -> header suffix */
	const char *scopes;             /* scopes a caller's token needs, space-separated, or NULL */
	struct arg_names arg_env;       /* the properties of input_schema */
	int task;                       /* enum task_mode */
	uint64_t task_ttl_ms;           /* a task and its result are kept this long */
	uint64_t task_after_ms;         /* a plain call this long before it becomes a task */
	unsigned mx;                    /* its label in the metrics (metrics.c) */
	int line;
};

enum resource_kind { RES_TEXT, RES_FILE, RES_COMMAND };

struct resource_def {
	const char *uri;                /* NULL for a template */
	const char *uri_template;
	const char *name, *title, *description, *mime_type;
	enum resource_kind kind;
	const char *text;               /* RES_TEXT */
	const char *file;               /* RES_FILE, absolute */
	int binary;                     /* answer with a base64 blob */
	struct command_def cmd;         /* RES_COMMAND */
	struct cJSON *completions;      /* template variable -> array of values */
	struct cJSON *listing;
	struct arg_names arg_env;       /* the template's variables */
	int line;
};

/* A skill (the io.modelcontextprotocol/skills extension): a directory
 * holding a SKILL.md, its files found and hashed at load; they are read
 * from disk when a client asks, so a change shows after a reload. */
struct skill_file {
	const char *path;           /* relative to the skill's directory, '/'-separated */
	const char *uri;            /* skill://<name>/<path, percent-encoded> */
	const char *mime_type;
	uint64_t size;
	char digest[72];            /* "sha256:" and 64 hex digits; "" for a directory */
	int dir;                    /* a subdirectory */
	int binary;                 /* not UTF-8 text: read as a blob */
};

struct skill_def {
	const char *name, *description;     /* from the front matter */
	const char *dir;                    /* absolute */
	const char *uri;                    /* skill://<name>/SKILL.md */
	const char *root_uri;               /* skill://<name>, the directory */
	struct cJSON *frontmatter;
	struct skill_file *files;           /* sorted by path, directories too */
	size_t nfiles;
	struct cJSON *entry;                /* the skills/list entry */
	struct cJSON *listing;              /* SKILL.md's resources/list entry */
	int line;
};

enum content_type { CT_TEXT, CT_IMAGE, CT_AUDIO, CT_RESOURCE };

struct prompt_message {
	const char *role;
	enum content_type type;
	const char *text;               /* CT_TEXT: template with {{name}} */
	const char *data;               /* CT_IMAGE/AUDIO: base64 */
	const char *mime_type;
	const char *uri;                /* CT_RESOURCE: template */
	const char *resource_text;      /* CT_RESOURCE: template */
};

struct prompt_arg {
	const char *name, *description;
	int required;
	struct cJSON *completions;      /* array of strings or NULL */
	struct command_def complete;    /* argv NULL: none */
};

struct prompt_def {
	const char *name, *title, *description;
	struct prompt_arg *args;
	size_t nargs;
	struct prompt_message *messages;
	size_t nmessages;
	struct command_def cmd;         /* argv non-NULL: messages come from a command */
	struct cJSON *listing;
	struct arg_names arg_env;       /* the arguments, for commands */
	int line;
};

#endif
