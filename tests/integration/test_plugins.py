"""The plugin loader and ABI: what a third party builds against the
installed header alone, and every way a plugin can be wrong."""

import os
import subprocess

from harness import ROOT, check, free_port, mcp_session, rpc, run_mcpd
from test_install import make


def cc(src, out, *flags):
    p = subprocess.run(["cc", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall", "-Werror",
                        "-o", out, src, *flags], capture_output=True, text=True)
    check(p.returncode == 0, "cc %s:\n%s" % (src, p.stderr))


def test_example_plugin_builds_against_the_installed_header_alone(t):
    prefix = os.path.join(t.dir, "prefix")
    make("install", "BUILD=" + os.path.join(t.dir, "build"), "PREFIX=" + prefix)
    check(os.path.exists(os.path.join(prefix, "include/mcpd/plugin.h")))
    # Only the installed header: no -I into the source tree.
    so = os.path.join(t.dir, "examples.so")
    cc(os.path.join(ROOT, "plugins/examples/examples.c"), so, "-I" + os.path.join(prefix, "include"))
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\ntools:\n"
               "  - { name: add, description: Adds., input: { a: number, b: number }, plugin: %s:add }\n"
               % (port, so)).start(wait_url_port=port)
    sid = mcp_session(port)
    st, r, _ = rpc(port, sid, "tools/call", {"name": "add", "arguments": {"a": 1.5, "b": 2}})
    check(r["result"]["structuredContent"] == {"sum": 3.5}, r)
    d.stop()


BAD_ABI = r"""
#include <mcpd/plugin.h>
static const struct mcpd_plugin d = { .size = sizeof(struct mcpd_plugin), .abi_major = 99,
    .abi_minor = 0, .kind = MCPD_PLUGIN_TOOLS, .name = "future" };
MCPD_EXPORT mcpd_tool_fn t;
void t(const struct mcpd_host *h, struct mcpd_tool_call *c, const char *a) { (void)a; h->tool_text(c, "x", 0); }
const struct mcpd_plugin *mcpd_plugin_entry(void) { return &d; }
"""

NO_ENTRY = r"""
__attribute__((visibility("default"))) int something(void) { return 1; }
"""

# The storage operations mcpd calls, as stubs; OPS_OMIT leaves some out.
STORAGE_STUBS = r"""
#include <mcpd/plugin.h>
#include <stdio.h>
static void get(void *i, const char *k, mcpd_value_cb *cb, void *a) { (void)i; (void)k; cb(a, MCPD_NOT_FOUND, 0, 0, 0); }
static void set(void *i, const char *k, const void *v, size_t l, uint64_t t, unsigned f, mcpd_done_cb *cb, void *a)
{ (void)i; (void)k; (void)v; (void)l; (void)t; (void)f; if (cb) cb(a, MCPD_OK, 0); }
static void del(void *i, const char *k, mcpd_done_cb *cb, void *a) { (void)i; (void)k; if (cb) cb(a, MCPD_OK, 0); }
static void app(void *i, const char *k, const void *e, size_t l, uint64_t m, uint64_t t, mcpd_int_cb *cb, void *a)
{ (void)i; (void)k; (void)e; (void)l; (void)m; (void)t; cb(a, MCPD_ERROR, 0, "no"); }
static void range(void *i, const char *k, uint64_t after, size_t m, mcpd_entries_cb *cb, void *a)
{ (void)i; (void)k; (void)after; (void)m; cb(a, MCPD_OK, 0, 0, 0); }
static const struct mcpd_storage_ops ops = { .size = sizeof(ops), .get = get, .set = set, .del = del,
    .log_append = app, .log_range = range, OPS_OMIT };
"""

REFUSES = STORAGE_STUBS.replace("OPS_OMIT", ".exists = 0") + r"""
static void *create(const struct mcpd_host *h, const struct mcpd_config *s, char *err, size_t len)
{ (void)h; (void)s; snprintf(err, len, "the database is on fire"); return NULL; }
static const struct mcpd_plugin d = { .size = sizeof(struct mcpd_plugin), .abi_major = MCPD_PLUGIN_ABI_MAJOR,
    .abi_minor = MCPD_PLUGIN_ABI_MINOR, .kind = MCPD_PLUGIN_STORAGE, .name = "refuses",
    .create = create, .ops = &ops };
const struct mcpd_plugin *mcpd_plugin_entry(void) { return &d; }
"""

# A storage plugin without del and log_range: refused before it runs.
INCOMPLETE = STORAGE_STUBS.replace("OPS_OMIT", ".del = 0, .log_range = 0") + r"""
static void *create(const struct mcpd_host *h, const struct mcpd_config *s, char *err, size_t len)
{ (void)h; (void)s; (void)err; (void)len; return (void *)1; }
static const struct mcpd_plugin d = { .size = sizeof(struct mcpd_plugin), .abi_major = MCPD_PLUGIN_ABI_MAJOR,
    .abi_minor = MCPD_PLUGIN_ABI_MINOR, .kind = MCPD_PLUGIN_STORAGE, .name = "incomplete",
    .create = create, .ops = &ops };
const struct mcpd_plugin *mcpd_plugin_entry(void) { return &d; }
"""

# A transport built for a table that ended after subscribe (size says so):
# what lies beyond is not read, so unsubscribe and publish are missing.
SHORT_TRANSPORT = r"""
#include <mcpd/plugin.h>
#include <stddef.h>
static void *sub(void *i, const char *c, mcpd_message_cb *cb, void *a) { (void)i; (void)c; (void)cb; (void)a; return 0; }
static void unsub(void *i, void *s) { (void)i; (void)s; }
static const struct mcpd_transport_ops ops = { .size = offsetof(struct mcpd_transport_ops, unsubscribe),
    .subscribe = sub, .unsubscribe = unsub };
static void *create(const struct mcpd_host *h, const struct mcpd_config *s, char *err, size_t len)
{ (void)h; (void)s; (void)err; (void)len; return (void *)1; }
static const struct mcpd_plugin d = { .size = sizeof(struct mcpd_plugin), .abi_major = MCPD_PLUGIN_ABI_MAJOR,
    .abi_minor = MCPD_PLUGIN_ABI_MINOR, .kind = MCPD_PLUGIN_TRANSPORT, .name = "short",
    .create = create, .ops = &ops };
const struct mcpd_plugin *mcpd_plugin_entry(void) { return &d; }
"""


def check_t(t, config, want):
    path = os.path.join(t.dir, "p.yaml")
    with open(path, "w") as f:
        f.write(config)
    rc, out, err = run_mcpd("-t", "-c", path)
    check(rc == 1 and want in err, "%r: exit %d\n%s" % (want, rc, err))
    return err


def test_loader_errors(t):
    inc = "-I" + os.path.join(ROOT, "include")
    srcs = {"future": BAD_ABI, "noentry": NO_ENTRY, "refuses": REFUSES, "incomplete": INCOMPLETE,
            "short": SHORT_TRANSPORT}
    for name, src in srcs.items():
        c = os.path.join(t.dir, name + ".c")
        open(c, "w").write(src)
        cc(c, os.path.join(t.dir, name + ".so"), inc)
    f = lambda n: os.path.join(t.dir, n + ".so")
    tool = "tools:\n  - { name: x, description: X, plugin: %s:t }\n"
    check_t(t, tool % f("future"), "was built for plugin ABI 99.0; this mcpd speaks 1.")
    check_t(t, tool % f("noentry"), "is not an mcpd plugin: it exports no mcpd_plugin_entry")
    check_t(t, tool % os.path.join(t.dir, "absent.so"), "cannot load plugin")
    # A storage plugin named as a transport; a tools plugin as storage.
    check_t(t, "transport: { plugin: memory }\n", "is a storage plugin, not a transport plugin")
    check_t(t, "storage: { plugin: %s }\n" % f("future"), "built for plugin ABI 99.0")
    check_t(t, "storage: { plugin: examples }\n", "is a tools plugin, not a storage plugin")
    # A plugin that refuses its section; its own message, with the place.
    err = check_t(t, "storage:\n  plugin: %s\n" % f("refuses"), "the database is on fire")
    check("p.yaml:2:11: storage plugin %s:" % f("refuses") in err, err)
    # A built-in plugin's own validation, with line and column.
    err = check_t(t, "workers: 1\nstorage:\n  plugin: memory\n  max_itemz: 5\n", 'unknown key "max_itemz"')
    check("p.yaml:4:14:" in err, err)
    err = check_t(t, "storage: { plugin: lmdb, path: relative/dir }\n", "must be an absolute directory")
    # Too long a path is refused, never cut to another directory.
    long_dir = os.path.join(t.dir, "x" * 200) * 21
    err = check_t(t, "storage: { plugin: lmdb, path: %s }\n" % long_dir, "path is longer than 4095 bytes")
    check(not os.path.exists(os.path.join(t.dir, "x" * 200)), "a directory was made for the cut path")
    # Operations that mcpd calls must be there: refused at configuration
    # time, with the names of those missing, instead of a crash later.
    err = check_t(t, "storage:\n  plugin: %s\n" % f("incomplete"),
                  "storage: plugin %s lacks operations that mcpd needs: del, log_range" % f("incomplete"))
    check("p.yaml:2:11:" in err, err)
    check_t(t, "transport: { plugin: %s }\n" % f("short"),
            "lacks operations that mcpd needs: unsubscribe, publish")
    # Per-process storage with several workers is refused.
    check_t(t, "workers: 2\nstorage: { plugin: memory }\n", "needs workers: 1")
    check_t(t, "storage: { path: /tmp }\n", "storage needs plugin:")


def test_backend_names_with_so(t):
    """storage: and transport: take lmdb or lmdb.so, as tools take x.so."""
    state = os.path.join(t.dir, "state")
    for conf in ("storage: { plugin: lmdb.so, path: %s }\ntransport: { plugin: local.so }\n" % state,
                 "workers: 1\nstorage: { plugin: memory.so }\n"):
        path = os.path.join(t.dir, "p.yaml")
        with open(path, "w") as f:
            f.write(conf)
        rc, out, err = run_mcpd("-t", "-c", path)
        check(rc == 0, "%r: exit %d\n%s" % (conf, rc, err))
    check_t(t, "storage: { plugin: nothere.so }\n", "plugins/nothere.so: cannot open")


def test_plugin_header_comments(t):
    """The header is the ABI's documentation: it must match what mcpd does."""
    h = open(os.path.join(ROOT, "include/mcpd/plugin.h")).read()
    for kind in ("MCPD_PLUGIN_STORAGE", "MCPD_PLUGIN_TRANSPORT"):
        line = [l for l in h.splitlines() if l.strip().startswith(kind + " =")][0]
        check("reserved" not in line, line)
    # The comments as prose: continuation lines joined.
    text = " ".join(l.strip().lstrip("/*").strip() for l in h.splitlines())
    check("Required: get, set, del, log_append, log_range" in text)
    check("Required: subscribe, unsubscribe, publish" in text)
    check("or /var for PREFIX=/usr" in text, "state_dir: the /usr -> /var rule")
    check("opts may be NULL" in text and "A cb may be NULL" in text)


INIT_LOG = r"""
#include <mcpd/plugin.h>
static const struct mcpd_host *host;
static int init(const struct mcpd_host *h) { host = h; h->log(MCPD_LOG_NOTICE, "initlog: init_worker"); return 0; }
static void fini(void) { host->log(MCPD_LOG_NOTICE, "initlog: fini_worker"); }
static const struct mcpd_plugin d = { .size = sizeof(struct mcpd_plugin), .abi_major = MCPD_PLUGIN_ABI_MAJOR,
    .abi_minor = MCPD_PLUGIN_ABI_MINOR, .kind = MCPD_PLUGIN_TOOLS, .name = "initlog",
    .init_worker = init, .fini_worker = fini };
MCPD_EXPORT mcpd_tool_fn t;
void t(const struct mcpd_host *h, struct mcpd_tool_call *c, const char *a) { (void)a; h->tool_text(c, "x", 0); }
const struct mcpd_plugin *mcpd_plugin_entry(void) { return &d; }
"""


def test_init_worker_only_for_plugins_in_use(t):
    """A plugin that a reload dropped stays loaded (never dlclose) but is
    not started in the new workers."""
    import signal
    from harness import wait_for
    c = os.path.join(t.dir, "initlog.c")
    open(c, "w").write(INIT_LOG)
    so = os.path.join(t.dir, "initlog.so")
    cc(c, so, "-I" + os.path.join(ROOT, "include"))
    port = free_port()
    base = "listen: [127.0.0.1:%d]\nworkers: 1\n" % port
    with_tool = base + "tools:\n  - { name: x, description: X, plugin: %s:t }\n" % so
    d = t.mcpd(with_tool).start(wait_url_port=port)
    d.wait_log("initlog: init_worker")
    # Reloaded without the tool: the new worker does not start the plugin.
    d.write_config(base)
    d.signal(signal.SIGHUP)
    d.wait_log("reload complete")
    d.wait_log("initlog: fini_worker")      # the old worker, draining
    wait_for(lambda: len(d.workers()) == 1, what="the old worker to finish")
    check(d.log().count("initlog: init_worker") == 1, d.log()[-2000:])
    # And with the tool back, it is started again.
    d.write_config(with_tool)
    d.signal(signal.SIGHUP)
    d.wait_log("reload complete", count=2)
    d.wait_log("initlog: init_worker", count=2)
    d.stop()
    check(d.log().count("initlog: init_worker") == 2, d.log()[-2000:])
