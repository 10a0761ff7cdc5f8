/* mcpd init [DIR]: a new server's directory. On a terminal it asks, with
 * defaults; with --yes (or on a pipe, where it must be given) the flags
 * say everything. It offers only the plugins this build has (those in the
 * plugin directory mcpd itself would load them from), writes every file
 * or none (a file that exists is never overwritten), and prints what to
 * run next. */
#include "apikeygen.h"
#include "config.h"
#include "init_cmd.h"
#include "init_internal.h"
#include "pwhash.h"
#include "ttyline.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ASK_TRIES 5             /* wrong answers to one question before giving up */

struct init_opts {
	int tmpl, auth, preset;         /* -1: not given */
	int examples;                   /* -1: not given */
	int yes;
	const char *name, *user, *dir;
};

static void
init_usage(FILE *f)
{
	fprintf(f,
	    "usage: mcpd init [options] [dir]\n"
	    "\n"
	    "Makes dir (default: the current directory) a new MCP server: mcpd.yaml,\n"
	    "example tools, a users or API keys file, a systemd drop-in or a\n"
	    "Containerfile, and a README. On a terminal it asks; the options answer\n"
	    "instead, and --yes asks nothing (needed when stdin is not a terminal).\n"
	    "\n"
	    "  --name NAME          the server's name (default: dir's name)\n"
	    "  --template T         where state lives: local (lmdb, one host), redis,\n"
	    "                       postgres, nats, aws, azure or google\n"
	    "  --auth A             none (loopback only), internal (mcpd's OAuth\n"
	    "                       server), apikey, or jwt:PRESET with PRESET one of\n"
	    "                       keycloak, auth0, okta, cognito, entra, firebase\n"
	    "  --user USER          the first user (internal) or the key's user (apikey)\n"
	    "  --examples[=LIST]    example tools: all, or of plain, progress, ask\n"
	    "                       (comma-separated); --no-examples for none\n"
	    "  --yes, -y            ask nothing: defaults for what is not given\n"
	    "                       (local, none, no examples); with internal, a\n"
	    "                       random password, printed once\n"
	    "  --help, -h           this help\n");
}

static int
find_name(const char *s, size_t n, const char *(*name_of)(int), int count)
{
	for (int i = 0; i < count; i++)
		if (strlen(name_of(i)) == n && strncmp(s, name_of(i), n) == 0)
			return i;
	return -1;
}

static const char *
tmpl_name(int i)
{
	return init_templates[i].name;
}

static const char *
auth_name(int i)
{
	return init_auths[i].name;
}

static const char *
preset_name(int i)
{
	return init_presets[i].name;
}

static int
preset_count(void)
{
	int n = 0;
	while (init_presets[n].name != NULL)
		n++;
	return n;
}

/* "none", "internal", "apikey", "jwt:PRESET" into *auth and *preset. */
static int
parse_auth(const char *s, int *auth, int *preset)
{
	const char *colon = strchr(s, ':');
	size_t n = colon ? (size_t)(colon - s) : strlen(s);
	int a = find_name(s, n, auth_name, AUTH_N);
	if (a < 0 || (a == AUTH_JWT) != (colon != NULL))
		return -1;
	if (a == AUTH_JWT) {
		int p = find_name(colon + 1, strlen(colon + 1), preset_name, preset_count());
		if (p < 0)
			return -1;
		*preset = p;
	}
	*auth = a;
	return 0;
}

/* "all", "none", or a comma-separated list of plain, progress, ask. */
static int
parse_examples(const char *s)
{
	if (strcmp(s, "all") == 0 || strcmp(s, "yes") == 0 || strcmp(s, "y") == 0)
		return EX_ALL;
	if (strcmp(s, "none") == 0 || strcmp(s, "no") == 0 || strcmp(s, "n") == 0)
		return 0;
	int ex = 0;
	while (*s != '\0') {
		size_t n = strcspn(s, ", ");
		if (n == 5 && strncmp(s, "plain", 5) == 0)
			ex |= EX_PLAIN;
		else if (n == 8 && strncmp(s, "progress", 8) == 0)
			ex |= EX_PROGRESS;
		else if (n == 3 && strncmp(s, "ask", 3) == 0)
			ex |= EX_ASK;
		else
			return -1;
		s += n;
		s += strspn(s, ", ");
	}
	return ex != 0 ? ex : -1;
}

static void
bad_choice(const char *opt, const char *value)
{
	fprintf(stderr, "mcpd init: %s %s: ", opt, value);
	if (strcmp(opt, "--template") == 0) {
		fprintf(stderr, "the templates are");
		for (int i = 0; i < TMPL_N; i++)
			fprintf(stderr, " %s", init_templates[i].name);
	} else if (strcmp(opt, "--auth") == 0) {
		fprintf(stderr, "the choices are none, internal, apikey and jwt:PRESET with PRESET one of");
		for (int i = 0; init_presets[i].name != NULL; i++)
			fprintf(stderr, " %s", init_presets[i].name);
	} else {
		fprintf(stderr, "the examples are all, none, or of plain, progress, ask (comma-separated)");
	}
	fprintf(stderr, "\n\n");
	init_usage(stderr);
}

/* 0, or the exit status of a usage error. */
static int
parse_opts(int argc, char **argv, struct init_opts *o)
{
	static const struct option longopts[] = {
		{ "template", required_argument, NULL, 'T' },
		{ "auth", required_argument, NULL, 'A' },
		{ "examples", optional_argument, NULL, 'E' },
		{ "no-examples", no_argument, NULL, 'N' },
		{ "name", required_argument, NULL, 'n' },
		{ "user", required_argument, NULL, 'u' },
		{ "yes", no_argument, NULL, 'y' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	memset(o, 0, sizeof(*o));
	o->tmpl = o->auth = o->preset = o->examples = -1;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "yh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'T':
			if ((o->tmpl = find_name(optarg, strlen(optarg), tmpl_name, TMPL_N)) < 0) {
				bad_choice("--template", optarg);
				return 2;
			}
			break;
		case 'A':
			if (parse_auth(optarg, &o->auth, &o->preset) < 0) {
				bad_choice("--auth", optarg);
				return 2;
			}
			break;
		case 'E':
			if ((o->examples = optarg ? parse_examples(optarg) : EX_ALL) < 0) {
				bad_choice("--examples", optarg);
				return 2;
			}
			break;
		case 'N':
			o->examples = 0;
			break;
		case 'n':
			o->name = optarg;
			break;
		case 'u':
			o->user = optarg;
			break;
		case 'y':
			o->yes = 1;
			break;
		case 'h':
			init_usage(stdout);
			return -1;
		default:
			init_usage(stderr);
			return 2;
		}
	}
	if (argc - optind > 1) {
		fprintf(stderr, "mcpd init: one directory at most (\"%s\" is another)\n\n", argv[optind + 1]);
		init_usage(stderr);
		return 2;
	}
	o->dir = optind < argc ? argv[optind] : ".";
	return 0;
}

/* ---- what this build has ---- */

struct avail {
	char *plugin_dir;
};

static int
has_plugin(const struct avail *av, const char *name)
{
	if (name == NULL)
		return 1;
	char path[PATH_MAX];
	if ((size_t)snprintf(path, sizeof(path), "%s/%s.so", av->plugin_dir, name) >= sizeof(path))
		return 0;
	return access(path, R_OK) == 0;
}

/* NULL when the template's plugins are here, else the first missing. */
static const char *
tmpl_missing(const struct avail *av, int t)
{
	if (!has_plugin(av, init_templates[t].storage))
		return init_templates[t].storage;
	if (!has_plugin(av, init_templates[t].transport))
		return init_templates[t].transport;
	return NULL;
}

/* ---- checks of what is typed or given ---- */

static int
valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > INIT_NAME_MAX || strchr("._-", s[0]) != NULL)
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static int
valid_user(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > INIT_USER_MAX)
		return 0;
	for (const char *c = s; *c; c++)
		if ((unsigned char)*c <= 0x20 || *c == ':' || *c == 0x7f)
			return 0;
	return 1;
}

/* What may stand in a ${VAR:-default} of a quoted YAML value. */
static int
valid_default(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return 0;
	for (const char *c = s; *c; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || strchr("\"\\}$'#", *c) != NULL)
			return 0;
	return 1;
}

static int
valid_url(const char *s)
{
	return valid_default(s, INIT_URL_MAX) && (strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0);
}

/* The directory's last component, made a valid name, or "mcpd". */
static void
default_name(const char *dir, char *out, size_t len)
{
	const char *base = strrchr(dir, '/');
	base = base ? base + 1 : dir;
	size_t o = 0;
	for (const char *c = base; *c && o + 1 < len; c++) {
		int ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
		    ((*c == '.' || *c == '_' || *c == '-') && o > 0);
		if (ok)
			out[o++] = *c;
	}
	out[o] = '\0';
	if (!valid_name(out))
		snprintf(out, len, "mcpd");
}

/* ---- questions ---- */

/* An answer, the default when the line is empty. 0, or -1 at the end of
 * input (said). */
static int
ask(const char *question, const char *def, char *buf, size_t len)
{
	char prompt[1024];
	snprintf(prompt, sizeof(prompt), def && def[0] ? "%s [%s]: " : "%s: ", question, def);
	for (;;) {
		long n = tty_read_line(stdout, prompt, buf, len, 1);
		if (n == -1) {
			fprintf(stderr, "\nmcpd init: no answer (end of input): nothing written\n");
			return -1;
		}
		if (n == -2) {
			printf("  That is too long.\n");
			continue;
		}
		/* Blanks around an answer are not part of it. */
		size_t s = strspn(buf, " \t");
		memmove(buf, buf + s, strlen(buf + s) + 1);
		n = (long)strlen(buf);
		while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
			buf[--n] = '\0';
		if (n == 0 && def != NULL)
			snprintf(buf, len, "%s", def);
		return 0;
	}
}

/* A choice among count lines: by number or by name. -1 at the end of
 * input or after too many wrong answers. avail_fn says why one cannot be
 * chosen (NULL when it can). */
static int
ask_choice(const char *question, int count, int def, const char *(*name_of)(int),
    const char *(*label_of)(int), const char *(*why_not)(const void *, int), const void *arg)
{
	printf("%s:\n", question);
	for (int i = 0; i < count; i++) {
		const char *why = why_not ? why_not(arg, i) : NULL;
		printf("  %d) %-9s %s%s%s\n", i + 1, name_of(i), label_of(i), why ? " -- " : "", why ? why : "");
	}
	char buf[128], defs[16];
	for (int i = 0; why_not != NULL && why_not(arg, def) != NULL && i < count; i++)
		def = i;        /* the first that can be chosen, when the default cannot */
	snprintf(defs, sizeof(defs), "%d", def + 1);
	for (int tries = 0; tries < ASK_TRIES; tries++) {
		if (ask(question, defs, buf, sizeof(buf)) < 0)
			return -1;
		char *end;
		long v = strtol(buf, &end, 10);
		int i = *end == '\0' && v >= 1 && v <= count ? (int)v - 1 : find_name(buf, strlen(buf), name_of, count);
		if (i < 0) {
			printf("  Answer 1 to %d, or a name.\n", count);
			continue;
		}
		const char *why = why_not ? why_not(arg, i) : NULL;
		if (why != NULL) {
			printf("  %s cannot be chosen: %s.\n", name_of(i), why);
			continue;
		}
		return i;
	}
	fprintf(stderr, "mcpd init: no valid answer: nothing written\n");
	return -1;
}

static const char *
tmpl_label(int i)
{
	return init_templates[i].label;
}

static const char *
auth_label(int i)
{
	return init_auths[i].label;
}

static const char *
preset_label(int i)
{
	return init_presets[i].issuer;
}

static char why_buf[PATH_MAX + 64];

static const char *
tmpl_why_not(const void *arg, int i)
{
	const struct avail *av = arg;
	const char *m = tmpl_missing(av, i);
	if (m == NULL)
		return NULL;
	snprintf(why_buf, sizeof(why_buf), "not built (no %s.so in %s)", m, av->plugin_dir);
	return why_buf;
}

static const char *
auth_why_not(const void *arg, int i)
{
	const struct avail *av = arg;
	if (has_plugin(av, init_auths[i].plugin))
		return NULL;
	snprintf(why_buf, sizeof(why_buf), "not built (no %s.so in %s)", init_auths[i].plugin, av->plugin_dir);
	return why_buf;
}

/* A free-form answer that check accepts; -1 as ask_choice. */
static int
ask_checked(const char *question, const char *def, char *buf, size_t len, int (*ok)(const char *),
    const char *hint)
{
	for (int tries = 0; tries < ASK_TRIES; tries++) {
		if (ask(question, def, buf, len) < 0)
			return -1;
		if (ok(buf))
			return 0;
		printf("  %s\n", hint);
	}
	fprintf(stderr, "mcpd init: no valid answer: nothing written\n");
	return -1;
}

static int
ok_examples(const char *s)
{
	return parse_examples(s) >= 0;
}

static int
ok_audience(const char *s)
{
	return valid_default(s, INIT_URL_MAX);
}

/* The password, twice, not echoed. 0, or -1 (said). */
static int
ask_password(const char *user, char *pw, size_t len)
{
	char again[PWHASH_MAX_PASSWORD + 2], prompt[256];
	int rc = -1;
	for (int tries = 0; tries < ASK_TRIES; tries++) {
		snprintf(prompt, sizeof(prompt), "Password for %s (not shown): ", user);
		long n = tty_read_line(stdout, prompt, pw, len, 0);
		if (n == -1)
			break;
		if (n == -2 || n < 8) {
			printf("  A password is 8 to %d bytes.\n", PWHASH_MAX_PASSWORD);
			continue;
		}
		long m = tty_read_line(stdout, "Again: ", again, sizeof(again), 0);
		if (m == -1)
			break;
		if (m != n || memcmp(pw, again, (size_t)n) != 0) {
			printf("  The passwords differ.\n");
			continue;
		}
		rc = 0;
		break;
	}
	if (rc < 0)
		fprintf(stderr, "mcpd init: no password: nothing written\n");
	OPENSSL_cleanse(again, sizeof(again));
	return rc;
}

/* Every question, the flags given as defaults. 0 or -1. */
static int
ask_all(struct init_plan *p, const struct init_opts *o, const struct avail *av, char *pw, size_t pwlen)
{
	char buf[INIT_URL_MAX + 2];
	printf("mcpd init: a new MCP server in %s (Enter takes the default in brackets)\n\n", p->dir);
	if (ask_checked("Server name", p->name, buf, sizeof(buf), valid_name,
	    "A name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit.") < 0)
		return -1;
	snprintf(p->name, sizeof(p->name), "%.*s", INIT_NAME_MAX, buf);

	int def = o->tmpl >= 0 ? o->tmpl : TMPL_LOCAL;
	if ((p->tmpl = ask_choice("Where state lives", TMPL_N, def, tmpl_name, tmpl_label, tmpl_why_not, av)) < 0)
		return -1;
	def = o->auth >= 0 ? o->auth : AUTH_NONE;
	if ((p->auth = ask_choice("Authorization", AUTH_N, def, auth_name, auth_label, auth_why_not, av)) < 0)
		return -1;
	if (p->auth == AUTH_JWT) {
		if ((p->preset = ask_choice("OpenID provider (preset)", preset_count(), o->preset >= 0 ? o->preset : 0,
		    preset_name, preset_label, NULL, NULL)) < 0)
			return -1;
		const struct init_preset *ps = &init_presets[p->preset];
		if (ask_checked("Issuer URL", ps->issuer, p->issuer, sizeof(p->issuer), valid_url,
		    "An https:// URL, without spaces, quotes, '$', '#' or '}'.") < 0)
			return -1;
		if (ps->audience != NULL && ask_checked("Audience of its tokens", ps->audience, p->audience,
		    sizeof(p->audience), ok_audience, "Without spaces, quotes, '$', '#' or '}'.") < 0)
			return -1;
	}
	if (p->auth == AUTH_INTERNAL || p->auth == AUTH_APIKEY) {
		if (ask_checked(p->auth == AUTH_INTERNAL ? "First user's name" : "The API key's user", p->user, buf,
		    sizeof(buf), valid_user, "A user name is 1 to 128 characters, with no colon or space.") < 0)
			return -1;
		snprintf(p->user, sizeof(p->user), "%.*s", INIT_USER_MAX, buf);
	}
	if (p->auth == AUTH_INTERNAL && ask_password(p->user, pw, pwlen) < 0)
		return -1;
	const char *exdef = o->examples == 0 ? "none" : "all";
	if (ask_checked("Example tools (plain answer, progress, asking the user): all, none, or of plain,progress,ask",
	    exdef, buf, sizeof(buf), ok_examples, "Answer all, none, or some of plain, progress, ask.") < 0)
		return -1;
	p->examples = parse_examples(buf);
	printf("\n");
	return 0;
}

/* ---- the files ---- */

#define MAX_FILES 12

struct out_file {
	char *path;
	struct text text;
	mode_t mode;
};

struct outset {
	struct out_file f[MAX_FILES];
	int n;
	char *dirs[4];          /* made here, removed again on failure */
	int ndirs;
};

static struct text *
add_file(struct outset *s, const struct init_plan *p, const char *rel, mode_t mode)
{
	struct out_file *f = &s->f[s->n++];
	if (asprintf(&f->path, "%s/%s", p->dir, rel) < 0)
		f->path = NULL;
	f->mode = mode;
	return &f->text;
}

static void
outset_free(struct outset *s)
{
	for (int i = 0; i < s->n; i++) {
		free(s->f[i].path);
		if (s->f[i].text.p != NULL)
			OPENSSL_cleanse(s->f[i].text.p, s->f[i].text.cap);
		text_free(&s->f[i].text);
	}
	for (int i = 0; i < s->ndirs; i++)
		free(s->dirs[i]);
}

static void
render(struct outset *s, const struct init_plan *p)
{
	init_text_yaml(add_file(s, p, "mcpd.yaml", 0644), p);
	for (int ex = EX_PLAIN; ex <= EX_ASK; ex <<= 1)
		if (p->examples & ex)
			init_text_tool(add_file(s, p, init_tool_file(ex), 0755), ex);
	if (p->auth == AUTH_INTERNAL || p->auth == AUTH_APIKEY)
		text_printf(add_file(s, p, p->auth == AUTH_INTERNAL ? "users" : "apikeys", 0600),
		    "# %s, made by mcpd init.\n# %s adds one; keep the file mode 600.\n%s\n",
		    p->auth == AUTH_INTERNAL ? "Users who may sign in" : "API keys, as their SHA-256",
		    p->auth == AUTH_INTERNAL ? "mcpd -p USER >> users" : "mcpd -k USER >> apikeys", p->secret_line);
	if (init_templates[p->tmpl].container) {
		init_text_containerfile(add_file(s, p, "Containerfile", 0644), p);
	} else {
		char rel[INIT_NAME_MAX + 32];
		snprintf(rel, sizeof(rel), "mcpd.service.d/%s.conf", p->name);
		init_text_dropin(add_file(s, p, rel, 0644), p);
	}
	init_text_readme(add_file(s, p, "README.md", 0644), p);
}

/* mkdir, remembered so that a failure takes it away again; an existing
 * directory is fine. */
static int
make_dir(struct outset *s, const char *path)
{
	if (mkdir(path, 0755) == 0) {
		if (s->ndirs < (int)(sizeof(s->dirs) / sizeof(s->dirs[0])))
			s->dirs[s->ndirs++] = strdup(path);
		return 0;
	}
	struct stat st;
	if (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	if (errno == EEXIST)
		errno = ENOTDIR;
	fprintf(stderr, "mcpd init: %s: %s: nothing written\n", path, strerror(errno));
	return -1;
}

/* The directories of the files (one level below dir at most). */
static int
make_dirs(struct outset *s, const struct init_plan *p)
{
	for (int i = 0; i < s->n; i++) {
		const char *rel = s->f[i].path + strlen(p->dir) + 1;
		const char *slash = strchr(rel, '/');
		if (slash == NULL)
			continue;
		char sub[PATH_MAX];
		snprintf(sub, sizeof(sub), "%s/%.*s", p->dir, (int)(slash - rel), rel);
		if (make_dir(s, sub) < 0)
			return -1;
	}
	return 0;
}

static int
write_one(const struct out_file *f)
{
	int fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, f->mode);
	if (fd < 0)
		return -1;
	size_t off = 0;
	while (off < f->text.len) {
		ssize_t w = write(fd, f->text.p + off, f->text.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = errno;
			close(fd);
			errno = w < 0 ? e : EIO;
			return -1;
		}
		off += (size_t)w;
	}
	/* The umask may have taken bits away; these are the modes meant. */
	if (fchmod(fd, f->mode) < 0 || fsync(fd) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return close(fd);
}

/* Every file, or none: 0, or -1 with what was written taken away again. */
static int
write_all(struct outset *s, const struct init_plan *p)
{
	/* Nothing exists that would be overwritten: checked before anything
	 * is made, and again by O_EXCL for each. */
	int clash = 0;
	for (int i = 0; i < s->n; i++) {
		struct stat st;
		if (lstat(s->f[i].path, &st) == 0) {
			fprintf(stderr, "mcpd init: %s exists: not overwriting it\n", s->f[i].path);
			clash++;
		}
	}
	if (clash) {
		fprintf(stderr, "mcpd init: nothing written (move the file%s away, or choose another directory)\n",
		    clash > 1 ? "s" : "");
		return -1;
	}
	if (make_dir(s, p->dir) < 0 || make_dirs(s, p) < 0)
		goto undo_dirs;
	int i;
	for (i = 0; i < s->n; i++) {
		if (write_one(&s->f[i]) < 0) {
			fprintf(stderr, "mcpd init: %s: %s: nothing written\n", s->f[i].path, strerror(errno));
			if (errno != EEXIST)
				unlink(s->f[i].path);
			break;
		}
	}
	if (i == s->n)
		return 0;
	while (i-- > 0)
		unlink(s->f[i].path);
undo_dirs:
	for (int d = s->ndirs; d-- > 0;)
		rmdir(s->dirs[d]);
	return -1;
}

/* ---- the plan ---- */

/* dir as an absolute path (it need not exist yet: its parent must). */
static char *
absolute_dir(const char *dir)
{
	char *r = realpath(dir, NULL);
	if (r != NULL || errno != ENOENT)
		return r;
	/* A new directory: its parent's real path and its name. */
	char *copy = strdup(dir);
	if (copy == NULL)
		return NULL;
	size_t n = strlen(copy);
	while (n > 1 && copy[n - 1] == '/')
		copy[--n] = '\0';
	char *slash = strrchr(copy, '/');
	const char *base = slash ? slash + 1 : copy;
	char *parent = NULL, *out = NULL;
	if (slash == copy)
		parent = strdup("/");
	else if (slash != NULL) {
		*slash = '\0';
		parent = realpath(copy, NULL);
	} else
		parent = realpath(".", NULL);
	if (parent != NULL && (base[0] == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0))
		errno = ENOENT;
	else if (parent != NULL &&
	    asprintf(&out, "%s%s%s", parent, strcmp(parent, "/") == 0 ? "" : "/", base) < 0)
		out = NULL;
	free(parent);
	free(copy);
	return out;
}

/* This binary's absolute path, for the drop-in and the README. */
static void
self_path(char *out, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", out, len - 1);
	if (n <= 0 || (size_t)n >= len - 1) {
		snprintf(out, len, "mcpd");
		return;
	}
	out[n] = '\0';
}

/* The users or apikeys line, and what to show once. */
static int
make_secret(struct init_plan *p, const char *pw, size_t pwlen, char *key, size_t keylen)
{
	if (p->auth == AUTH_INTERNAL) {
		char hash[PWHASH_MAX + 1], err[160];
		if (pwhash_make(pw, pwlen, hash, sizeof(hash), err, sizeof(err)) < 0) {
			fprintf(stderr, "mcpd init: the password's hash: %s\n", err);
			return -1;
		}
		return asprintf(&p->secret_line, "%s:%s", p->user, hash) < 0 ? -1 : 0;
	}
	if (p->auth == AUTH_APIKEY) {
		char hex[APIKEY_HASH_HEX + 1];
		if (apikey_generate(key, keylen, hex, sizeof(hex)) < 0) {
			fprintf(stderr, "mcpd init: no random bytes from the kernel\n");
			return -1;
		}
		return asprintf(&p->secret_line, "%s:sha256:%s", p->user, hex) < 0 ? -1 : 0;
	}
	return 0;
}

static void
print_next(const struct init_plan *p, const char *argv0, const char *pw_made, const char *key)
{
	const char *cmd = strchr(argv0, '/') != NULL ? p->mcpd : "mcpd";
	printf("mcpd init: wrote %s/mcpd.yaml and the rest (see %s/README.md).\n", p->dir, p->dir);
	if (pw_made != NULL)
		printf("\nThe password of %s (shown this once; only its hash is in users):\n  %s\n", p->user, pw_made);
	if (key != NULL)
		printf("\nThe API key of %s (shown this once; only its hash is in apikeys):\n  %s\n", p->user, key);
	printf("\nNext, serve it, and connect Claude Code to it:\n\n"
	    "  %s -c %s/mcpd.yaml\n"
	    "  claude mcp add --transport http %s http://127.0.0.1:8080/mcp%s%s%s\n",
	    cmd, p->dir, p->name, key ? " --header \"Authorization: Bearer " : "", key ? key : "", key ? "\"" : "");
	fflush(stdout);
}

int
init_main(const char *prog, int argc, char **argv)
{
	struct init_opts o;
	int rc = parse_opts(argc, argv, &o);
	if (rc != 0)
		return rc < 0 ? 0 : rc;
	int interactive = isatty(STDIN_FILENO) && !o.yes;
	if (!interactive && !o.yes) {
		fprintf(stderr, "mcpd init: standard input is not a terminal, so there is no one to ask: give the "
		    "choices as flags, with --yes (mcpd init --help lists them)\n");
		return 2;
	}
	if (o.name != NULL && !valid_name(o.name)) {
		fprintf(stderr, "mcpd init: --name %s: a name is 1 to 64 letters, digits, '.', '_' or '-', "
		    "starting with a letter or digit\n", o.name);
		return 2;
	}
	if (o.user != NULL && !valid_user(o.user)) {
		fprintf(stderr, "mcpd init: --user %s: a user name is 1 to 128 characters, with no colon or space\n",
		    o.user);
		return 2;
	}

	struct init_plan p;
	struct avail av = { NULL };
	struct outset out;
	char pw[PWHASH_MAX_PASSWORD + 2] = "", made_pw[64] = "", key[APIKEY_LEN + 1] = "";
	memset(&p, 0, sizeof(p));
	memset(&out, 0, sizeof(out));
	rc = 1;
	if ((p.dir = absolute_dir(o.dir)) == NULL) {
		fprintf(stderr, "mcpd init: %s: %s\n", o.dir, strerror(errno));
		goto fail;
	}
	if (!valid_default(p.dir, PATH_MAX - 64) || strchr(p.dir, ':') != NULL) {
		fprintf(stderr, "mcpd init: %s: a directory whose path has no space, quote, '$', '#', ':' or '}' "
		    "(it is written into mcpd.yaml and a systemd unit)\n", p.dir);
		goto fail;
	}
	if ((av.plugin_dir = config_default_plugin_dir()) == NULL) {
		fprintf(stderr, "mcpd init: out of memory\n");
		goto fail;
	}
	self_path(p.mcpd, sizeof(p.mcpd));
	if (o.name != NULL)
		snprintf(p.name, sizeof(p.name), "%s", o.name);
	else
		default_name(p.dir, p.name, sizeof(p.name));
	const char *login = getenv("USER");
	snprintf(p.user, sizeof(p.user), "%s", o.user ? o.user : login && valid_user(login) ? login : "admin");
	p.tmpl = o.tmpl >= 0 ? o.tmpl : TMPL_LOCAL;
	p.auth = o.auth >= 0 ? o.auth : AUTH_NONE;
	p.preset = o.preset >= 0 ? o.preset : 0;
	p.examples = o.examples >= 0 ? o.examples : 0;
	if (p.auth == AUTH_JWT) {
		snprintf(p.issuer, sizeof(p.issuer), "%s", init_presets[p.preset].issuer);
		if (init_presets[p.preset].audience)
			snprintf(p.audience, sizeof(p.audience), "%s", init_presets[p.preset].audience);
	}

	if (interactive) {
		if (ask_all(&p, &o, &av, pw, sizeof(pw)) < 0)
			goto fail;
	} else {
		const char *m = tmpl_missing(&av, p.tmpl);
		if (m != NULL) {
			fprintf(stderr, "mcpd init: template %s needs the plugin %s, which this build does not have "
			    "(no %s.so in %s); the templates here:", init_templates[p.tmpl].name, m, m, av.plugin_dir);
			for (int t = 0; t < TMPL_N; t++)
				if (tmpl_missing(&av, t) == NULL)
					fprintf(stderr, " %s", init_templates[t].name);
			fprintf(stderr, "\n");
			goto fail;
		}
		if (!has_plugin(&av, init_auths[p.auth].plugin)) {
			fprintf(stderr, "mcpd init: auth %s needs the plugin %s, which this build does not have "
			    "(no %s.so in %s)\n", init_auths[p.auth].name, init_auths[p.auth].plugin,
			    init_auths[p.auth].plugin, av.plugin_dir);
			goto fail;
		}
		if (p.auth == AUTH_INTERNAL) {
			if (random_token(made_pw, 16) < 0) {
				fprintf(stderr, "mcpd init: no random bytes from the kernel\n");
				goto fail;
			}
			snprintf(pw, sizeof(pw), "%s", made_pw);
		}
	}
	if (make_secret(&p, pw, strlen(pw), key, sizeof(key)) < 0)
		goto fail;
	render(&out, &p);
	for (int i = 0; i < out.n; i++)
		if (out.f[i].path == NULL || out.f[i].text.failed) {
			fprintf(stderr, "mcpd init: out of memory\n");
			goto fail;
		}
	if (write_all(&out, &p) < 0)
		goto fail;
	print_next(&p, prog != NULL ? prog : "mcpd", made_pw[0] ? made_pw : NULL, key[0] ? key : NULL);
	rc = 0;
fail:
	OPENSSL_cleanse(pw, sizeof(pw));
	OPENSSL_cleanse(made_pw, sizeof(made_pw));
	OPENSSL_cleanse(key, sizeof(key));
	if (p.secret_line != NULL)
		OPENSSL_cleanse(p.secret_line, strlen(p.secret_line));
	free(p.secret_line);
	outset_free(&out);
	free(av.plugin_dir);
	free(p.dir);
	return rc;
}
