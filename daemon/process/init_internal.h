/* mcpd init: what init_cmd.c (the questions, the flags, writing the
 * files) and init_text.c (the files' text) share. */
#ifndef MCPD_INIT_INTERNAL_H
#define MCPD_INIT_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

enum init_tmpl { TMPL_LOCAL, TMPL_REDIS, TMPL_POSTGRES, TMPL_NATS, TMPL_AWS, TMPL_AZURE, TMPL_GOOGLE, TMPL_N };
enum init_auth { AUTH_NONE, AUTH_INTERNAL, AUTH_APIKEY, AUTH_JWT, AUTH_N };

/* The example tools, one bit each. */
#define EX_PLAIN        1       /* a plain answer */
#define EX_PROGRESS     2       /* progress notifications */
#define EX_ASK          4       /* asks the user (elicitation) */
#define EX_ALL          (EX_PLAIN | EX_PROGRESS | EX_ASK)

struct init_template {
	const char *name;               /* --template */
	const char *label;              /* what the question shows */
	const char *storage, *transport;        /* the plugins it needs */
	int container;                  /* deployed as a container, else with systemd */
};
extern const struct init_template init_templates[TMPL_N];

struct init_authinfo {
	const char *name;               /* --auth */
	const char *label;
	const char *plugin;             /* the .so it needs, or NULL */
};
extern const struct init_authinfo init_auths[AUTH_N];

/* The jwt presets (plugins/jwt knows them): the issuer's form, and the
 * audience for those whose tokens carry no resource URL. */
struct init_preset {
	const char *name;
	const char *issuer;
	const char *audience;           /* NULL: the resource is the audience */
};
extern const struct init_preset init_presets[];

#define INIT_NAME_MAX   64
#define INIT_USER_MAX   128
#define INIT_URL_MAX    512

/* Everything chosen, and the secrets made from it. */
struct init_plan {
	char *dir;                      /* absolute, without a final slash */
	char name[INIT_NAME_MAX + 1];
	int tmpl, auth, preset, examples;
	char issuer[INIT_URL_MAX + 1];  /* jwt */
	char audience[INIT_URL_MAX + 1];
	char user[INIT_USER_MAX + 1];   /* internal, apikey */
	char *secret_line;              /* the users or apikeys file's line */
	char mcpd[4096];                /* this binary's absolute path */
};

/* Text that grows; an allocation failure is remembered (failed) rather
 * than reported by each call. */
struct text {
	char *p;
	size_t len, cap;
	int failed;
};

void text_printf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void text_free(struct text *t);

/* The files' contents, appended to t. */
void init_text_yaml(struct text *t, const struct init_plan *p);
void init_text_tool(struct text *t, int example);
void init_text_dropin(struct text *t, const struct init_plan *p);
void init_text_containerfile(struct text *t, const struct init_plan *p);
void init_text_readme(struct text *t, const struct init_plan *p);
/* The tools/ file of an example. */
const char *init_tool_file(int example);

#endif
