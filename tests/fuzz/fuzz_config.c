/* libFuzzer target: mcpd.yaml as mcpd -t reads it (daemon/lib/conftree.c,
 * daemon/core/config.c, config_tools.c, config_oauth.c). The input is written to
 * mcpd.yaml in a directory of its own, beside links to conf/tools,
 * conf/conformance and conf/motd.txt, a users file (auth: internal,
 * users_file: users) and a request_state key (key_file: state.key), so
 * that the seeds get past their file checks.
 *
 * Plugins are not loaded: this file brings its own plugin_load, which
 * refuses, so that a fuzzed file can never dlopen an object or have a
 * storage plugin create files. Everything before that is the real code.
 * What an alias bomb may grow to is bounded by conftree.c (nodes and
 * text once expanded), and schema patterns by PCRE2's limits. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "plugin.h"
#include "pwhash.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char dir[4096], path[4200];

struct loaded_plugin *
plugin_load(const char *p, enum mcpd_plugin_kind kind, char *err, size_t errlen)
{
	(void)p;
	(void)kind;
	snprintf(err, errlen, "plugins are not loaded by the fuzz target");
	return NULL;
}

void *
plugin_symbol(struct loaded_plugin *p, const char *symbol, char *err, size_t errlen)
{
	(void)p;
	(void)symbol;
	snprintf(err, errlen, "plugins are not loaded by the fuzz target");
	return NULL;
}

int
plugins_init_worker(const struct mcpd_host *host, struct loaded_plugin *const *use, size_t n,
    char *err, size_t errlen)
{
	(void)host;
	(void)use;
	(void)n;
	snprintf(err, errlen, "plugins are not loaded by the fuzz target");
	return -1;
}

void
plugins_fini_worker(void)
{
}

static void
remove_dir(void)
{
	static const char *const names[] = { "mcpd.yaml", "tools", "conformance", "motd.txt",
	    "users", "state.key" };
	char p[4300];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/mcpd-fuzz-config.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror(dir);
		abort();
	}
	atexit(remove_dir);
	static const char *const links[] = { "tools", "conformance", "motd.txt" };
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		char from[4300], to[4300];
		snprintf(from, sizeof(from), "%s/conf/%s", FUZZ_SRCDIR, links[i]);
		snprintf(to, sizeof(to), "%s/%s", dir, links[i]);
		if (symlink(from, to) < 0) {
			perror(to);
			abort();
		}
	}
	char hash[PWHASH_MAX + 1], err[256];
	if (pwhash_make("alice-pw", 8, hash, sizeof(hash), err, sizeof(err)) < 0) {
		fprintf(stderr, "pwhash_make: %s\n", err);
		abort();
	}
	char users[4300], key[4300];
	snprintf(users, sizeof(users), "%s/users", dir);
	snprintf(key, sizeof(key), "%s/state.key", dir);
	FILE *u = fopen(users, "w"), *k = fopen(key, "w");
	if (u == NULL || k == NULL || fchmod(fileno(u), 0600) < 0 || fchmod(fileno(k), 0600) < 0) {
		perror(dir);
		abort();
	}
	fprintf(u, "# name:hash:scopes\nalice:%s:tools.admin tools.read\nbob:%s:\n", hash, hash);
	fprintf(k, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n");
	fclose(u);
	fclose(k);
	snprintf(path, sizeof(path), "%s/mcpd.yaml", dir);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
		perror(path);
		abort();
	}
	struct errlist errs = { 0 };
	struct config *c = config_load(path, &errs);
	if (c != NULL) {
		/* Plugins are refused: a config can only pass without any. */
		fprintf(stderr, "a configuration loaded without its storage plugin\n");
		abort();
	}
	if (errs.n == 0) {
		fprintf(stderr, "a configuration was refused without a message\n");
		abort();
	}
	for (size_t i = 0; i < errs.n; i++)
		if (errs.msgs[i][0] != '/') {
			/* Every message starts with its file (this one, or the
			 * users file it names), most with line and column. */
			fprintf(stderr, "an error that names no place: %s\n", errs.msgs[i]);
			abort();
		}
	if (getenv("FUZZ_VERBOSE") != NULL)
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msgs[i]);
	errlist_free(&errs);
	return 0;
}
