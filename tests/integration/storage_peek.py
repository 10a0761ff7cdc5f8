"""Reads what mcpd keeps in lmdb storage, through the plugin ABI: a small C
program loads the lmdb plugin the daemon under test uses (a mock host,
as a third party would write one) and runs one operation."""

import os
import subprocess

from harness import MCPD, ROOT, check

PEEK_C = r"""
#include <mcpd/plugin.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *dir;
static void hlog(enum mcpd_log_level l, const char *fmt, ...)
{ va_list ap; (void)l; va_start(ap, fmt); vfprintf(stderr, fmt, ap); va_end(ap); fputc('\n', stderr); }
static size_t count(const struct mcpd_config *n) { (void)n; return 0; }
static void ident(long *u, long *g) { *u = -1; *g = -1; }
static const char *state(void) { return dir; }

static void value(void *a, int st, const void *v, size_t len, const char *err)
{ (void)a; (void)err; if (st == MCPD_OK) printf("%.*s\n", (int)len, (const char *)v); else printf("(none)\n"); }
static void members(void *a, int st, const char *const *m, size_t n, const char *err)
{ (void)a; (void)st; (void)err; for (size_t i = 0; i < n; i++) printf("%s\n", m[i]); }
static void entries(void *a, int st, const struct mcpd_log_entry *e, size_t n, const char *err)
{ (void)a; (void)st; (void)e; (void)err; printf("%zu\n", n); }

int main(int argc, char **argv)
{
	if (argc != 5)
		return 2;
	dir = argv[2];
	void *h = dlopen(argv[1], RTLD_NOW);
	mcpd_plugin_entry_fn *entry = h ? (mcpd_plugin_entry_fn *)dlsym(h, MCPD_PLUGIN_ENTRY) : NULL;
	if (entry == NULL) {
		fprintf(stderr, "%s\n", dlerror());
		return 2;
	}
	const struct mcpd_plugin *d = entry();
	struct mcpd_host host = { .size = sizeof(host), .abi_major = MCPD_PLUGIN_ABI_MAJOR,
	    .abi_minor = MCPD_PLUGIN_ABI_MINOR, .log = hlog, .config_count = count,
	    .worker_identity = ident, .state_dir = state };
	char err[512] = "";
	void *inst = d->create(&host, NULL, err, sizeof(err));
	if (inst == NULL || d->attach(inst, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	const struct mcpd_storage_ops *ops = d->ops;
	if (strcmp(argv[3], "get") == 0)
		ops->get(inst, argv[4], value, NULL);
	else if (strcmp(argv[3], "members") == 0)
		ops->index_members(inst, argv[4], members, NULL);
	else if (strcmp(argv[3], "log") == 0)
		ops->log_range(inst, argv[4], 0, 100000, entries, NULL);
	d->detach(inst);
	d->destroy(inst);
	return 0;
}
"""


class Peek:
    """peek = Peek(t.dir); peek("members", "user:anonymous:sessions") -> lines."""

    def __init__(self, tmpdir):
        self.so = os.path.join(os.path.dirname(os.path.abspath(MCPD)), "plugins", "lmdb.so")
        self.exe = os.path.join(tmpdir, "peek")
        src = self.exe + ".c"
        with open(src, "w") as f:
            f.write(PEEK_C)
        flags = []
        with open(self.so, "rb") as f:
            if b"__asan_init" in f.read():
                flags = ["-fsanitize=address,undefined"]     # to load an instrumented plugin
        p = subprocess.run(["cc", "-o", self.exe, "-I" + os.path.join(ROOT, "include"), *flags,
                            src, "-ldl"], capture_output=True, text=True)
        check(p.returncode == 0, p.stderr)

    def __call__(self, state_dir, op, key):
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
        p = subprocess.run([self.exe, self.so, state_dir, op, key], capture_output=True, text=True,
                           timeout=30, env=env)
        check(p.returncode == 0, "peek %s %s: %s" % (op, key, p.stderr))
        return p.stdout.splitlines()
