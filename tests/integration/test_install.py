"""make install with PREFIX and DESTDIR; man pages render."""

import os
import subprocess

from harness import ROOT, check, free_port, http, wait_for


def make(*args, cwd=ROOT):
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    p = subprocess.run(["make", "-s", *args], cwd=cwd, capture_output=True, text=True, env=env,
                       timeout=600)
    check(p.returncode == 0, "make %s failed:\n%s\n%s" % (" ".join(args), p.stdout, p.stderr))
    return p


def test_install_prefix_gives_a_working_tree(t):
    prefix = os.path.join(t.dir, "prefix")
    make("install", "BUILD=" + os.path.join(t.dir, "build"), "PREFIX=" + prefix)
    mcpd = os.path.join(prefix, "sbin/mcpd")
    for f in ("sbin/mcpd", "etc/mcpd/mcpd.yaml", "share/man/man8/mcpd.8",
              "share/man/man5/mcpd.yaml.5", "lib/mcpd/plugins",
              "etc/mcpd/skills/release-checklist/SKILL.md",     # the example's skill
              "etc/mcpd/skills/release-checklist/references/STEPS.md"):
        check(os.path.exists(os.path.join(prefix, f)), "missing %s" % f)
    out = subprocess.run([mcpd, "-h"], capture_output=True, text=True).stdout
    check("default %s/etc/mcpd/mcpd.yaml" % prefix in out, out)
    # With no -c it reads the installed file.
    p = subprocess.run([mcpd, "-t"], capture_output=True, text=True)
    check(p.returncode == 0 and "%s/etc/mcpd/mcpd.yaml test is successful" % prefix in p.stdout,
          p.stdout + p.stderr)
    # The installed daemon runs from the tree.
    port = free_port()
    cfg = os.path.join(prefix, "etc/mcpd/mcpd.yaml")
    text = open(cfg).read().replace("127.0.0.1:8080", "127.0.0.1:%d" % port)
    open(cfg, "w").write(text)
    d = subprocess.Popen([mcpd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def up():
            try:
                return http(port, timeout=1)[0] == 200
            except OSError:
                return False
        wait_for(up, what="installed mcpd serving")
    finally:
        d.terminate()
        check(d.wait(20) == 0)
    # An existing configuration is never overwritten.
    make("install", "BUILD=" + os.path.join(t.dir, "build"), "PREFIX=" + prefix)
    check(open(cfg).read() == text, "make install replaced the operator's mcpd.yaml")


def test_install_destdir(t):
    stage = os.path.join(t.dir, "stage")
    make("install", "BUILD=" + os.path.join(t.dir, "build"), "PREFIX=/usr", "DESTDIR=" + stage)
    check(os.path.exists(os.path.join(stage, "usr/sbin/mcpd")))
    check(os.path.exists(os.path.join(stage, "etc/mcpd/mcpd.yaml")))
    out = subprocess.run([os.path.join(stage, "usr/sbin/mcpd"), "-h"], capture_output=True, text=True).stdout
    check("default /etc/mcpd/mcpd.yaml" in out, out)


def test_man_pages_render_cleanly(t):
    for page in ("man/mcpd.8", "man/mcpd.yaml.5", "man/mcpd-tool.1"):
        p = subprocess.run(["man", "--warnings", "-l", os.path.join(ROOT, page)],
                           capture_output=True, text=True, env=dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat"))
        check(p.returncode == 0, "%s: %s" % (page, p.stderr))
        check(p.stderr.strip() == "", "%s warnings:\n%s" % (page, p.stderr))
        check(len(p.stdout) > 1500, "%s renders almost nothing" % page)
