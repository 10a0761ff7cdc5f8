"""The command line: -t, -V, -h, bad options, startup errors."""

import os
import subprocess
import threading

from harness import MCPD, ROOT, check, run_mcpd


def test_config_check_ok(t):
    path = os.path.join(t.dir, "ok.yaml")
    with open(path, "w") as f:
        f.write("listen: [127.0.0.1:1]\nworkers: 2\n")
    rc, out, err = run_mcpd("-t", "-c", path)
    check(rc == 0, "exit %d: %s" % (rc, err))
    check("configuration file %s test is successful" % path in out, out)


def test_shipped_config_is_valid(t):
    rc, out, err = run_mcpd("-t", "-c", os.path.join(ROOT, "conf/mcpd.yaml"))
    check(rc == 0, "conf/mcpd.yaml: %s" % err)


def test_shipped_config_comments(t):
    """The example's comments tell the truth: the state directory of an
    installed mcpd and of make run (a build tree), and no stray colons."""
    text = open(os.path.join(ROOT, "conf/mcpd.yaml")).read()
    storage = text[text.index("\nstorage:"):text.index("\ntransport:")]
    check("PREFIX/var/lib/mcpd" in storage and "build/state" in storage and "make run" in storage, storage)
    for line in text.splitlines():
        if "#" in line and line.split("#", 1)[0].strip():
            check(not line.rstrip().endswith(":"), "comment ends with a colon: %r" % line)


def test_config_check_reports_every_error(t):
    path = os.path.join(t.dir, "bad.yaml")
    with open(path, "w") as f:
        f.write("listen:\n"
                "  - address: 127.0.0.1:99999\n"
                "workers: auto\n"
                "limits:\n"
                "  max_body: 10XB\n"
                "  idle_timeout: forever\n"
                "logs: {}\n")
    rc, out, err = run_mcpd("-t", "-c", path)
    check(rc == 1, "exit %d" % rc)
    lines = err.strip().splitlines()
    check(lines[0] == "%s:2:14: listen.address \"127.0.0.1:99999\": port must be a number from 1 to 65535" % path, lines[0])
    check(lines[1].startswith("%s:5:13: limits.max_body: \"10XB\" is not a size" % path), lines[1])
    check(lines[2].startswith("%s:6:17: limits.idle_timeout: \"forever\" is not a duration" % path), lines[2])
    check(lines[3] == "%s:7:1: unknown key \"logs\" in the top level (did you mean \"log\"?)" % path, lines[3])
    check(lines[4] == "mcpd: %s: 4 errors; configuration test failed" % path, lines[4])


def alias_bomb(levels):
    """A "billion laughs": each level nine aliases of the one before."""
    text = 'laughs:\n  a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, levels + 1):
        text += "  a%d: &a%d [%s]\n" % (i, i, ",".join(["*a%d" % (i - 1)] * 9))
    return text


def test_config_check_alias_bomb(t):
    """Ten levels of aliases (under 500 bytes; 3.5 billion nodes expanded)
    are refused at once, at the alias that goes past the bound, and the
    check stays small: its peak RSS, read from the kernel's accounting of
    that one child, not a clock."""
    path = os.path.join(t.dir, "bomb.yaml")
    with open(path, "w") as f:
        f.write("listen: [127.0.0.1:1]\n" + alias_bomb(10))
    check(os.path.getsize(path) < 600)
    p = subprocess.Popen([MCPD, "-t", "-c", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killer = threading.Timer(60, p.kill)
    killer.start()
    _, status, usage = os.wait4(p.pid, 0)
    killer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode()
    p.stdout.close()
    p.stderr.close()
    check(p.returncode == 1, "exit %d: %s" % (p.returncode, err[-500:]))
    check(err.startswith("%s:8:20: alias *a4 makes the configuration larger than 250000 nodes once expanded"
                         % path), err[:500])
    check("mcpd: %s: 1 error; configuration test failed" % path in err, err[-500:])
    check(usage.ru_maxrss < 200 * 1024, "mcpd -t peaked at %d KiB" % usage.ru_maxrss)


def test_config_check_tls_files(t):
    path = os.path.join(t.dir, "tls.yaml")
    with open(path, "w") as f:
        f.write("listen:\n  - address: 127.0.0.1:8443\n    tls: { cert: /nonexistent/c.pem, key: /nonexistent/k.pem }\n")
    rc, out, err = run_mcpd("-t", "-c", path)
    check(rc == 1)
    check("%s:2:14: TLS certificate /nonexistent/c.pem:" % path in err, err)


def test_missing_config_file(t):
    rc, out, err = run_mcpd("-c", os.path.join(t.dir, "absent.yaml"))
    check(rc == 1)
    check("absent.yaml: No such file or directory" in err, err)


def test_version_and_help(t):
    rc, out, _ = run_mcpd("-V")
    check(rc == 0 and out.startswith("mcpd "), out)
    rc, out, _ = run_mcpd("-h")
    check(rc == 0 and "usage: mcpd" in out and "-t" in out, out)
    rc, _, err = run_mcpd("-x")
    check(rc == 2 and "usage: mcpd" in err)
    rc, _, err = run_mcpd("extra")
    check(rc == 2 and "unexpected argument" in err)
