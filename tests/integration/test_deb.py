"""make deb: the Debian packages built, checked by lintian, installed on this
machine with dpkg, run, upgraded, removed and purged.

The packages are built once (make deb compiles everything again, with
PREFIX=/usr). This machine does not run systemd as PID 1, so nothing here
goes through systemctl: the maintainer scripts' systemd parts run as they
do there (deb-systemd-helper enables the unit; the start and stop of
deb-systemd-invoke are left out without /run/systemd/system), and the test
starts the service as the installed unit's ExecStartPre and ExecStart
would, as root with NOTIFY_SOCKET, the workers dropping to the user mcpd,
and stops it with SIGTERM to the master as systemd's KillMode=mixed does.
The unit's sandboxing (ProtectSystem= and the rest) is not applied.

It needs root (dpkg -i): as another user it is a skip, which run.py reports
and never counts as a pass. Whatever happens, every mcpd package is purged
at the end, so that the rest of make check uses the build tree alone."""

import glob
import grp
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import time

from harness import (MCPD, ROOT, Skip, TestFailure, call_tool, check, free_port, mcp_session, sid_hash,
                     redis_server, wait_for, http)
from test_systemd import NotifySocket

PACKAGES = ("mcpd", "mcpd-redis", "mcpd-postgres", "mcpd-nats", "mcpd-aws", "mcpd-google", "mcpd-azure",
            "mcpd-amqp", "mcpd-dev")
HEAVY = {"mcpd-redis": ("redis.so", "libhiredis"), "mcpd-postgres": ("postgres.so", "libpq5"),
         "mcpd-nats": ("nats.so", "libnats")}
# The cloud plugins, a package a cloud (amqp apart: a broker of any
# cloud); all but amqp call HTTPS APIs through libcurl, which mcpd itself
# needs too, so only the package's own Depends is checked.
CLOUD = {"mcpd-aws": (("dynamodb.so", "sqs.so"), "libcurl"), "mcpd-google": (("firestore.so", "pubsub.so"), "libcurl"),
         "mcpd-azure": (("cosmos.so",), "libcurl"), "mcpd-amqp": (("amqp.so",), "libqpid-proton")}
LIGHT = ("apikey", "examples", "introspection", "jwt", "lmdb", "local", "memory")
UNIT = "/lib/systemd/system/mcpd.service"
CONFIG = "/etc/mcpd/mcpd.yaml"
# Where the packages put anything: after the purge no name with mcpd in it
# is left there that was not there before.
ROOTS = ("/etc", "/usr/sbin", "/usr/bin", "/usr/lib/mcpd", "/usr/libexec", "/usr/include",
         "/usr/share/man", "/usr/share/doc", "/lib/systemd/system", "/usr/lib/systemd/system",
         "/var/lib", "/var/log", "/var/lib/systemd/deb-systemd-helper-enabled")


def run(*argv, ok=True, timeout=120, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, **kw)
    if ok:
        check(p.returncode == 0, "%s: exit %d\n%s\n%s" % (" ".join(argv), p.returncode, p.stdout, p.stderr))
    return p


def dpkg(*args):
    """dpkg, waiting for its lock while another dpkg or apt holds it."""
    deadline = time.monotonic() + 120
    while True:
        p = run("dpkg", *args, ok=False, timeout=300)
        if p.returncode == 0:
            return p
        if "lock" not in p.stderr or time.monotonic() > deadline:
            raise TestFailure("dpkg %s: exit %d\n%s\n%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        time.sleep(2)


def status(pkg):
    p = run("dpkg-query", "-W", "-f=${Status} ${Version}", pkg, ok=False)
    return p.stdout.strip() if p.returncode == 0 else ""


def mcpd_names():
    """Every path under ROOTS whose name holds mcpd (not below such a path)."""
    found = set()
    for top in ROOTS:
        for d, dirs, files in os.walk(top):
            for n in list(dirs) + files:
                if "mcpd" in n:
                    found.add(os.path.join(d, n))
            dirs[:] = [n for n in dirs if "mcpd" not in n and not os.path.islink(os.path.join(d, n))]
    return found


def purge_all():
    installed = [p for p in PACKAGES if status(p) and "not-installed" not in status(p)]
    if installed:
        dpkg("--purge", *installed)


def unit_commands(key):
    """The installed unit's command lines for key (ExecStartPre, ExecStart)."""
    lines = [ln.split("=", 1)[1] for ln in open(UNIT).read().splitlines() if ln.startswith(key + "=")]
    check(lines, "%s has no %s=" % (UNIT, key))
    return [shlex.split(ln) for ln in lines]


class Service:
    """The service started the way its unit does, without systemd."""

    def __init__(self, t, name):
        for argv in unit_commands("ExecStartPre"):
            run(*argv)
        self.notify = NotifySocket(os.path.join(t.dir, "notify-%s.sock" % name))
        self.log_path = os.path.join(t.dir, "service-%s.log" % name)
        (argv,) = unit_commands("ExecStart")
        check(argv[0] == "/usr/sbin/mcpd", argv)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
               "NOTIFY_SOCKET": self.notify.path}
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=open(self.log_path, "w"),
                                     stderr=subprocess.STDOUT, env=env, cwd="/")
        try:
            self.notify.wait("READY=1", timeout=20)
        except TestFailure:
            self.stop()
            raise TestFailure("the service did not send READY=1:\n" + open(self.log_path).read()[-2000:])

    def workers(self):
        kids = []
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = open(stat).read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                kids.append(int(stat.split("/")[2]))
        return kids

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise TestFailure("the service did not stop on SIGTERM")
        return self.proc.returncode


def uid_of(pid):
    for ln in open("/proc/%d/status" % pid):
        if ln.startswith("Uid:"):
            return int(ln.split()[1])
    return None


def repack(deb, outdir, old, new):
    """The same package with version new: what an upgrade installs."""
    tree = os.path.join(outdir, os.path.basename(deb) + ".d")
    run("dpkg-deb", "-R", deb, tree)
    control = os.path.join(tree, "DEBIAN/control")
    text = open(control).read()
    text = text.replace("Version: %s\n" % old, "Version: %s\n" % new)
    text = text.replace("mcpd (= %s)" % old, "mcpd (= %s)" % new)
    open(control, "w").write(text)
    out = os.path.join(outdir, os.path.basename(deb).replace("_%s_" % old, "_%s_" % new))
    run("dpkg-deb", "--build", tree, out)
    return out


def check_plugin_packages(t):
    """Each heavy plugin loads from its package (mcpd -t loads the plugins
    a file names); the redis one serves sessions from a real Redis."""
    for pkg, (so, _) in HEAVY.items():
        name = so[:-3]
        key = "transport" if name == "nats" else "storage"
        url = {"redis": "redis://127.0.0.1:1", "postgres": "postgresql://mcpd@127.0.0.1:1/mcpd",
               "nats": "nats://127.0.0.1:1"}[name]
        path = os.path.join(t.dir, "%s.yaml" % name)
        open(path, "w").write("listen: [127.0.0.1:%d]\nworkers: 1\n%s: { plugin: %s, url: \"%s\" }\n"
                              % (free_port(), key, name, url))
        p = run("/usr/sbin/mcpd", "-t", "-c", path, ok=False)
        check(p.returncode == 0, "%s from %s: %s%s" % (so, pkg, p.stdout, p.stderr))
    redis = redis_server(t)
    port = free_port()
    path = os.path.join(t.dir, "redis-serve.yaml")
    open(path, "w").write("listen: [127.0.0.1:%d]\nworkers: 2\nuser: mcpd\n"
                          "storage: { plugin: redis, url: \"%s\" }\ntransport: { plugin: redis, url: \"%s\" }\n"
                          "tools:\n  - { name: echo, command: [/bin/echo, from-redis] }\n"
                          % (port, redis.url, redis.url))
    log = open(os.path.join(t.dir, "redis-serve.log"), "w")
    d = subprocess.Popen(["/usr/sbin/mcpd", "-c", path], stdin=subprocess.DEVNULL, stdout=log,
                         stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _up(port), 20, "mcpd with the packaged redis plugin")
        sid = mcp_session(port)
        check(call_tool(port, sid, "echo") == "from-redis")
        keys = redis.cli("KEYS", "*%s*" % sid_hash(sid))      # named by the id's hash
        check(keys and sid_hash(sid) in keys, "no session %s in Redis: %r" % (sid, keys))
    finally:
        d.terminate()
        d.wait(40)


def _up(port):
    try:
        return http(port, timeout=1)[0] == 200
    except OSError:
        return False


def test_deb_build_install_upgrade_purge(t):
    if os.geteuid() != 0:
        raise Skip("needs root: dpkg installs and purges the packages on this machine")
    if "libasan" in run("ldd", MCPD, ok=False).stdout:
        raise Skip("the packages are built from the source, without sanitizers, not from %s: "
                   "tested in the pass without them" % MCPD)
    if [p for p in PACKAGES if "installed" in status(p) and "not-installed" not in status(p)] \
            or os.path.exists("/etc/mcpd"):
        raise TestFailure("mcpd is installed on this machine (dpkg, or /etc/mcpd): this test "
                          "installs and purges the packages, remove them first")
    try:
        pwd.getpwnam("mcpd")
        raise TestFailure("a user mcpd exists: the package makes it and its purge removes it")
    except KeyError:
        pass
    before = mcpd_names()

    # Build once: make deb runs dpkg-buildpackage in a copy of the source,
    # then lintian, which fails it on any error or warning.
    out = os.path.join(t.dir, "deb")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    p = subprocess.run(["make", "-s", "deb", "DEB_DIR=" + out], cwd=ROOT, capture_output=True,
                       text=True, env=env, timeout=1800)
    check(p.returncode == 0, "make deb failed:\n%s\n%s" % (p.stdout[-4000:], p.stderr[-4000:]))
    tags = [ln for ln in (p.stdout + p.stderr).splitlines() if re.match(r"^[EW]: ", ln)]
    check(not tags, "lintian: %s" % tags)
    version = re.search(r"\((.*?)\)", open(os.path.join(ROOT, "debian/changelog")).readline()).group(1)
    arch = run("dpkg", "--print-architecture").stdout.strip()
    debs = {pkg: os.path.join(out, "%s_%s_%s.deb" % (pkg, version, "all" if pkg == "mcpd-dev" else arch))
            for pkg in PACKAGES}
    for pkg, deb in debs.items():
        check(os.path.exists(deb), "make deb made no %s" % deb)

    # What each package holds and needs.
    files = run("dpkg-deb", "-c", debs["mcpd"]).stdout
    for f in ["./usr/sbin/mcpd", "./usr/libexec/mcpd/mcpd-tool", "./usr/bin/mcpd-tool -> ",
              "./etc/mcpd/mcpd.yaml", "./etc/mcpd/tools/greet.sh", ".%s" % UNIT,
              "./etc/mcpd/skills/release-checklist/SKILL.md",
              "./lib/systemd/system/mcpd.socket", "./usr/share/man/man8/mcpd.8.gz",
              "./usr/share/man/man5/mcpd.yaml.5.gz", "./usr/share/man/man1/mcpd-tool.1.gz"] + \
            ["./usr/lib/mcpd/plugins/%s.so" % n for n in LIGHT]:
        check(f in files, "mcpd lacks %s:\n%s" % (f, files))
    depends = run("dpkg-deb", "-f", debs["mcpd"], "Depends").stdout
    for pkg, (so, lib) in HEAVY.items():
        check(so not in files, "mcpd holds %s, which belongs to %s" % (so, pkg))
        check(lib not in depends, "mcpd depends on %s" % lib)
        check("./usr/lib/mcpd/plugins/%s" % so in run("dpkg-deb", "-c", debs[pkg]).stdout, pkg)
        dep = run("dpkg-deb", "-f", debs[pkg], "Depends").stdout
        check(lib in dep and "mcpd (= %s)" % version in dep, "%s depends on %s" % (pkg, dep))

    for pkg, (sos, lib) in CLOUD.items():
        held = run("dpkg-deb", "-c", debs[pkg]).stdout
        dep = run("dpkg-deb", "-f", debs[pkg], "Depends").stdout
        check(lib in dep and "mcpd (= %s)" % version in dep, "%s depends on %s" % (pkg, dep))
        for so in sos:
            check(so not in files, "mcpd holds %s, which belongs to %s" % (so, pkg))
            check("./usr/lib/mcpd/plugins/%s" % so in held, "%s lacks %s" % (pkg, so))

    service = None
    try:
        dpkg("-i", *debs.values())
        # Every plugin's libraries are there once its package is installed.
        for sos, _ in CLOUD.values():
            for so in sos:
                ldd = run("ldd", "/usr/lib/mcpd/plugins/" + so).stdout
                check("not found" not in ldd, "%s: %s" % (so, ldd))
        for pkg in PACKAGES:
            check(status(pkg) == "install ok installed %s" % version, "%s: %s" % (pkg, status(pkg)))
        user = pwd.getpwnam("mcpd")
        check(user.pw_uid < 1000 and user.pw_shell.endswith("nologin"), "not a system user: %r" % (user,))
        check(grp.getgrgid(user.pw_gid).gr_name == "mcpd", "primary group")
        st = os.stat("/var/lib/mcpd")
        check(st.st_uid == user.pw_uid and st.st_mode & 0o777 == 0o750, "/var/lib/mcpd: %o" % st.st_mode)
        conffiles = run("dpkg-query", "-W", "-f=${Conffiles}", "mcpd").stdout
        for f in (CONFIG, "/etc/mcpd/motd.txt", "/etc/mcpd/tools/greet.sh",
                  "/etc/mcpd/skills/release-checklist/SKILL.md"):
            check(" %s " % f in conffiles, "%s is no conffile:\n%s" % (f, conffiles))
        check(re.search(r"^user: mcpd\b", open(CONFIG).read(), re.M), "the packaged config has no user: mcpd")
        # Enabled by the postinst; started and stopped where systemd runs.
        check(os.path.islink("/etc/systemd/system/multi-user.target.wants/mcpd.service"), "mcpd.service not enabled")
        check(not os.path.exists("/etc/systemd/system/sockets.target.wants/mcpd.socket"), "mcpd.socket enabled")
        check("deb-systemd-invoke stop 'mcpd.service'" in open("/var/lib/dpkg/info/mcpd.prerm").read(),
              "the prerm does not stop the service")
        check("deb-systemd-invoke $_dh_action 'mcpd.service'" in open("/var/lib/dpkg/info/mcpd.postinst").read(),
              "the postinst does not start the service")
        if shutil.which("systemd-analyze"):
            run("systemd-analyze", "verify", UNIT)
        check(run("/usr/bin/mcpd-tool", "quote", "a\"b").stdout.strip() == '"a\\"b"', "mcpd-tool quote")
        check(run("man", "-w", "mcpd-tool").stdout.strip().startswith("/usr/share/man/man1/"), "man mcpd-tool")

        p = run("/usr/sbin/mcpd", "-t", "-c", CONFIG)
        check("test is successful" in p.stdout, p.stdout)
        p = run("/usr/sbin/mcpd", "-t")
        check("%s test is successful" % CONFIG in p.stdout, "the default configuration: " + p.stdout)

        # The operator's edit: another port (8080 may be taken here), a comment.
        port = free_port()
        text = open(CONFIG).read()
        check("127.0.0.1:8080" in text, "the packaged config listens elsewhere")
        text = text.replace("127.0.0.1:8080", "127.0.0.1:%d" % port) + "# edited by test_deb\n"
        open(CONFIG, "w").write(text)

        service = Service(t, "first")
        workers = service.workers()
        check(workers and all(uid_of(w) == user.pw_uid for w in workers),
              "workers %r do not run as mcpd" % [(w, uid_of(w)) for w in workers])
        check(uid_of(service.proc.pid) == 0, "the master runs as root, as the unit has no User=")
        sid = mcp_session(port)
        check(call_tool(port, sid, "greet", {"name": "Debian"}) == "Hello, Debian!")
        check(call_tool(port, sid, "add", {"a": 2, "b": 3}, id=2) == "5", "the examples plugin")
        check('"hostname"' in call_tool(port, sid, "stats", id=3), "mcpd-tool quote in a tool")
        # systemctl reload: the unit's ExecReload lines, $MAINPID the master.
        for argv in unit_commands("ExecReload"):
            run(*[a.replace("$MAINPID", str(service.proc.pid)) for a in argv])
        service.notify.wait("READY=1", count=2)
        check(any("RELOADING=1" in m for m in service.notify.messages), service.notify.messages)
        check(call_tool(port, sid, "greet", {"name": "reloaded"}, id=5) == "Hello, reloaded!")
        for f in os.listdir("/var/lib/mcpd"):
            check(os.stat(os.path.join("/var/lib/mcpd", f)).st_uid == user.pw_uid, "/var/lib/mcpd/%s not mcpd's" % f)
        check(os.listdir("/var/lib/mcpd"), "no lmdb storage in /var/lib/mcpd")
        check(service.stop() == 0, "the service's exit status")
        service.notify.wait("STOPPING=1")
        service = None

        check_plugin_packages(t)

        # Upgrade over the installed version: the edited config and the
        # sessions are kept.
        new = version + "+debtest1"
        newdebs = [repack(deb, out, version, new) for deb in debs.values()]
        uid = pwd.getpwnam("mcpd").pw_uid
        p = dpkg("-i", *newdebs)
        for pkg in PACKAGES:
            check(status(pkg) == "install ok installed %s" % new, "%s: %s" % (pkg, status(pkg)))
        check(open(CONFIG).read() == text, "the upgrade changed the edited %s" % CONFIG)
        check(not glob.glob("/etc/mcpd/*.dpkg-*"), "dpkg left %s" % glob.glob("/etc/mcpd/*.dpkg-*"))
        check(pwd.getpwnam("mcpd").pw_uid == uid, "the user was made again")
        service = Service(t, "upgraded")
        check(call_tool(port, sid, "greet", {"name": "again"}, id=4) == "Hello, again!",
              "the session made before the upgrade")
        check(service.stop() == 0, "the service's exit status")
        service = None

        # Remove: the configuration, the state and the user stay.
        dpkg("--remove", *[p for p in PACKAGES if p != "mcpd"], "mcpd")
        check(not os.path.exists("/usr/sbin/mcpd") and not os.path.exists("/usr/lib/mcpd/plugins/lmdb.so"),
              "files left after remove")
        check(open(CONFIG).read() == text, "remove touched the configuration")
        check(os.listdir("/var/lib/mcpd") and pwd.getpwnam("mcpd"), "remove took the state or the user")

        # Purge: nothing left.
        dpkg("--purge", *PACKAGES)
        for pkg in PACKAGES:
            check(status(pkg) in ("", "unknown ok not-installed"), "%s: %s" % (pkg, status(pkg)))
        for gone in (lambda: pwd.getpwnam("mcpd"), lambda: grp.getgrnam("mcpd")):
            try:
                gone()
                raise TestFailure("the user or group mcpd is left after purge")
            except KeyError:
                pass
        left = mcpd_names() - before
        check(not left, "left after purge: %s" % sorted(left))
    finally:
        if service is not None:
            service.stop()
        purge_all()
