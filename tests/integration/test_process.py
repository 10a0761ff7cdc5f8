"""Master and workers: start, respawn, reload, graceful stop, signals."""

import json
import os
import shutil
import signal
import socket
import threading
import time

from harness import (MCPD, Mcpd, check, free_port, healthz_json, http, mcp_session, raw, rpc, status_of,
                     wait_for, TestFailure)


def conf(port, workers=2, extra=""):
    return ("listen:\n  - address: 127.0.0.1:%d\nworkers: %d\n"
            "limits:\n  shutdown_timeout: 10s\n%s" % (port, workers, extra))


def test_workers_running(t):
    port = free_port()
    d = t.mcpd(conf(port, workers=3)).start(wait_url_port=port)
    wait_for(lambda: len(d.workers()) == 3, what="3 workers")
    seen = set()
    # New connections land on whichever worker accepts first; every answer
    # must name one of the master's children.
    for _ in range(30):
        h = healthz_json(port)
        check(h["status"] == "ok")
        check(h["pid"] in d.workers(), "answer from pid %s, not a worker" % h["pid"])
        seen.add(h["pid"])
    check(len(seen) >= 1)
    d.stop()


def test_killed_worker_is_replaced(t):
    port = free_port()
    d = t.mcpd(conf(port, workers=2)).start(wait_url_port=port)
    before = wait_for(lambda: len(d.workers()) == 2 and d.workers(), what="2 workers")
    victim = before[0]
    os.kill(victim, signal.SIGKILL)
    d.wait_log(r"worker \d \(pid %d\) killed by signal 9" % victim)
    after = wait_for(lambda: (lambda w: len(w) == 2 and victim not in w and w)(d.workers()),
                     what="replacement worker")
    check(victim not in after)
    for _ in range(10):
        check(healthz_json(port)["pid"] in after)
    d.stop()


class Load:
    """Threads sending requests (new connection each, and keep-alive) until stopped."""

    def __init__(self, port, threads=4):
        self.port = port
        self.ok = 0
        self.errors = []
        self.stop_flag = False
        self.threads = [threading.Thread(target=self.run, args=(i % 2 == 0,)) for i in range(threads)]

    def run(self, keepalive):
        import http.client
        conn = None
        while not self.stop_flag:
            try:
                if conn is None or not keepalive:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/healthz")
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    self.errors.append("status %d" % r.status)
                else:
                    self.ok += 1
                if r.getheader("Connection", "").lower() == "close" or not keepalive:
                    conn.close()
                    conn = None
            except Exception as e:  # a dropped connection is a failure
                self.errors.append(repr(e))
                conn = None

    def __enter__(self):
        for th in self.threads:
            th.start()
        return self

    def __exit__(self, *a):
        self.stop_flag = True
        for th in self.threads:
            th.join()


def test_reload_under_load(t):
    port, port2 = free_port(), free_port()
    d = t.mcpd(conf(port, workers=2)).start(wait_url_port=port)
    old = wait_for(lambda: len(d.workers()) == 2 and d.workers(), what="2 workers")
    with Load(port) as load:
        time.sleep(0.5)
        # Change the worker count and add a listener; both must take effect.
        d.write_config("listen:\n  - address: 127.0.0.1:%d\n  - address: 127.0.0.1:%d\n"
                       "workers: 3\nlimits:\n  shutdown_timeout: 10s\n" % (port, port2))
        d.signal(signal.SIGHUP)
        d.wait_log("reload complete")
        time.sleep(0.5)
        d.signal(signal.SIGHUP)      # a second reload with the same file
        d.wait_log("reload complete", count=2)
        time.sleep(0.5)
    check(not load.errors, "requests failed during reload: %s" % load.errors[:5])
    check(load.ok > 50, "load made only %d requests" % load.ok)
    new = wait_for(lambda: (lambda w: len(w) == 3 and not set(w) & set(old) and w)(d.workers()),
                   what="3 new workers and no old ones")
    check(healthz_json(port2)["pid"] in new)
    d.stop()


def test_reload_with_broken_config_keeps_serving(t):
    port = free_port()
    d = t.mcpd(conf(port, workers=2)).start(wait_url_port=port)
    old = wait_for(lambda: len(d.workers()) == 2 and d.workers(), what="2 workers")
    d.write_config("listen:\n  - address: 127.0.0.1:%d\nworkers: two\nlimits: { max_body: huge }\n" % port)
    d.signal(signal.SIGHUP)
    d.wait_log("reload failed")
    log = d.log()
    check("mcpd.yaml:3:10: workers (auto or a number) must be a whole number" in log, log[-1500:])
    check("mcpd.yaml:4:21: limits.max_body" in log, log[-1500:])
    check(d.workers() == old, "workers changed after a failed reload")
    for _ in range(5):
        check(healthz_json(port)["pid"] in old)
    # A port taken by someone else is a failure too; the old config stays.
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    taken = blocker.getsockname()[1]
    d.write_config(conf(port, workers=2).replace("listen:\n", "listen:\n  - address: 127.0.0.1:%d\n" % taken))
    d.signal(signal.SIGHUP)
    d.wait_log("cannot listen on 127.0.0.1:%d" % taken)
    blocker.close()
    check(d.workers() == old)
    check(healthz_json(port)["status"] == "ok")
    # Fixed again: the reload goes through.
    d.write_config(conf(port, workers=1))
    d.signal(signal.SIGHUP)
    d.wait_log("reload complete")
    wait_for(lambda: len(d.workers()) == 1 and not set(d.workers()) & set(old), what="1 new worker")
    d.stop()


def vm_hwm_kib(pid):
    """Peak resident memory of a process so far, from the kernel."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise TestFailure("no VmHWM for pid %d" % pid)


def test_reload_with_alias_bomb_keeps_serving(t):
    """A SIGHUP with ten levels of nested YAML aliases (a "billion
    laughs") is refused at the alias: the master neither blocks nor
    grows, the old workers go on serving, and a good file reloads."""
    port = free_port()
    d = t.mcpd(conf(port, workers=2)).start(wait_url_port=port)
    old = wait_for(lambda: len(d.workers()) == 2 and d.workers(), what="2 workers")
    bomb = 'laughs:\n  a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, 11):
        bomb += "  a%d: &a%d [%s]\n" % (i, i, ",".join(["*a%d" % (i - 1)] * 9))
    d.write_config(conf(port, workers=2, extra=bomb))
    for n in (1, 2):
        d.signal(signal.SIGHUP)
        d.wait_log("reload failed", count=n)
    d.wait_log(r"mcpd\.yaml:\d+:20: alias \*a4 makes the configuration larger than 250000 nodes", count=2)
    hwm = vm_hwm_kib(d.pid)
    check(hwm < 200 * 1024, "the master peaked at %d KiB" % hwm)
    check(d.workers() == old, "workers changed after a refused reload")
    for _ in range(5):
        check(healthz_json(port)["pid"] in old)
    d.write_config(conf(port, workers=1))
    d.signal(signal.SIGHUP)
    d.wait_log("reload complete")
    wait_for(lambda: len(d.workers()) == 1 and not set(d.workers()) & set(old), what="1 new worker")
    d.stop()


def slow_request(port, body_first, body_rest):
    """Starts a POST whose body arrives in two parts; returns the socket."""
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    total = len(body_first) + len(body_rest)
    s.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total + body_first)
    return s


def read_all(s):
    out = b""
    while True:
        c = s.recv(65536)
        if not c:
            return out
        out += c


def test_sigterm_lets_slow_request_finish(t):
    port = free_port()
    d = t.mcpd(conf(port, workers=2)).start(wait_url_port=port)
    s = slow_request(port, b"hello", b" world")
    time.sleep(0.3)
    d.signal(signal.SIGTERM)
    d.wait_log("SIGTERM: stopping")
    time.sleep(1.0)
    check(d.proc.poll() is None, "master exited with a request in flight")
    # New connections are refused once the master stops listening.
    try:
        http(port, timeout=2)
        raise TestFailure("a new connection was served after SIGTERM")
    except OSError:
        pass
    s.sendall(b" world")
    resp = read_all(s)
    s.close()
    check(status_of(resp) == 405, "in-flight request got %r" % resp[:80])
    check(b"Connection: close" in resp)
    rc = d.proc.wait(15)
    check(rc == 0, "exit status %s" % rc)
    check("exiting" in d.log())


def test_shutdown_timeout_bounds_the_drain(t):
    port = free_port()
    d = t.mcpd(conf(port, workers=1).replace("shutdown_timeout: 10s", "shutdown_timeout: 500ms")
               ).start(wait_url_port=port)
    s = slow_request(port, b"a", b"never sent")
    time.sleep(0.2)
    d.signal(signal.SIGTERM)
    rc = d.proc.wait(20)
    check(rc == 0, "exit status %s" % rc)
    d.wait_log("shutdown_timeout reached; closing 1 connection")
    s.close()


def test_second_sigint_stops_at_once(t):
    port = free_port()
    d = t.mcpd(conf(port, workers=1)).start(wait_url_port=port)
    s = slow_request(port, b"a", b"never sent")
    time.sleep(0.2)
    d.signal(signal.SIGINT)
    d.wait_log("SIGINT: stopping")
    d.signal(signal.SIGINT)
    rc = d.proc.wait(10)
    check(rc == 0, "exit status %s" % rc)
    check("SIGINT again: stopping workers now" in d.log())
    s.close()


def test_pid_file(t):
    port = free_port()
    pidfile = os.path.join(t.dir, "run", "mcpd.pid")
    os.makedirs(os.path.dirname(pidfile))
    d = t.mcpd(conf(port, workers=1, extra="pid_file: %s\n" % pidfile)).start(wait_url_port=port)
    with open(pidfile) as f:
        check(int(f.read().strip()) == d.pid)
    d.stop()
    check(not os.path.exists(pidfile), "pid file left behind")


def test_startup_with_bad_user_exits_1(t):
    port = free_port()
    d = t.mcpd(conf(port, workers=1, extra="user: no-such-user-xyz\n"))
    d.start()
    rc = d.proc.wait(10)
    check(rc == 1, "exit status %s" % rc)
    check('mcpd.yaml:6:7: user "no-such-user-xyz" does not exist' in d.log(), d.log())


def test_privilege_drop(t):
    if os.geteuid() != 0:
        from harness import Skip
        raise Skip("needs root")
    port = free_port()
    os.chmod(t.dir, 0o755)      # the workers (nobody) keep their sessions in it
    d = t.mcpd(conf(port, workers=2, extra="user: nobody\ngroup: nogroup\n")).start(wait_url_port=port)
    workers = wait_for(lambda: len(d.workers()) == 2 and d.workers(), what="2 workers")
    import pwd, grp
    nobody = pwd.getpwnam("nobody").pw_uid
    nogroup = grp.getgrnam("nogroup").gr_gid
    for w in workers:
        with open("/proc/%d/status" % w) as f:
            st = f.read()
        uids = [int(x) for x in st.split("Uid:")[1].split("\n")[0].split()]
        gids = [int(x) for x in st.split("Gid:")[1].split("\n")[0].split()]
        groups = st.split("Groups:")[1].split("\n")[0].split()
        check(all(u == nobody for u in uids), "worker uids %s" % uids)
        check(all(g == nogroup for g in gids), "worker gids %s" % gids)
        check("0" not in groups, "worker keeps group root: %s" % groups)
    with open("/proc/%d/status" % d.pid) as f:
        check("Uid:\t0" in f.read(), "master should keep root for reloads")
    check(healthz_json(port)["status"] == "ok")
    d.stop()


def test_user_ignored_by_a_non_root_master(t):
    """user: is applied only by a root master; otherwise it is ignored, and
    lmdb must not try to give its files to that user either."""
    if os.geteuid() != 0:
        from harness import Skip
        raise Skip("needs root, to start mcpd as another user")
    import pwd
    nobody = pwd.getpwnam("nobody")
    port = free_port()
    os.chmod(t.dir, 0o755)
    state = os.path.join(t.dir, "state")
    os.mkdir(state)
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    d = t.mcpd(conf(port, workers=1, extra="user: daemon\n"))
    d.start(user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])
    d.wait_ready(port)
    check("user: daemon is applied only when mcpd starts as root" in d.log(), d.log())
    check("cannot give" not in d.log(), d.log())
    check(os.stat(state).st_uid == nobody.pw_uid)
    check(healthz_json(port)["status"] == "ok")
    d.stop()


def test_log_file_json_and_reopen(t):
    port = free_port()
    logfile = os.path.join(t.dir, "access.log")
    d = t.mcpd(conf(port, workers=2, extra="log: { file: %s, format: json }\n" % logfile)
               ).start()
    wait_for(lambda: os.path.exists(logfile) and "mcpd ready" in open(logfile).read(),
             what="ready in the log file")
    for _ in range(4):
        http(port, headers={"User-Agent": "probe\"quote"})
    wait_for(lambda: open(logfile).read().count('"type":"access"') >= 4, what="access lines")
    lines = open(logfile).read().splitlines()
    recs = [json.loads(line) for line in lines]   # every line is JSON
    acc = [r for r in recs if r.get("type") == "access"]
    check(acc[0]["method"] == "GET" and acc[0]["target"] == "/healthz" and acc[0]["status"] == 200)
    check(acc[0]["user_agent"] == 'probe"quote')
    check(all("time" in r and "level" in r and "pid" in r for r in recs))
    # logrotate: move the file away, SIGUSR1, new lines go to a new file.
    os.rename(logfile, logfile + ".1")
    d.signal(signal.SIGUSR1)
    wait_for(lambda: os.path.exists(logfile), what="reopened log file")
    time.sleep(0.3)
    for _ in range(6):
        http(port)
    wait_for(lambda: open(logfile).read().count('"type":"access"') >= 6,
             what="access lines from every worker in the new file")
    old_count = open(logfile + ".1").read().count('"type":"access"')
    check(old_count == 4, "old file got %d access lines" % old_count)
    d.stop()


def test_text_access_log(t):
    port = free_port()
    d = t.mcpd(conf(port, workers=1)).start(wait_url_port=port)
    http(port, path="/nothing-here", headers={"User-Agent": "agent/1.0"})
    d.wait_log(r'127\.0\.0\.1:\d+ "GET /nothing-here HTTP/1\.1" 404 \d+ \d+ [\d.]+ms "agent/1\.0"')
    d.stop()


def test_binary_at_a_long_path_keeps_its_state_beside_it(t):
    """A binary in a build tree keeps its state beside it (state/), found
    from /proc/self/exe: a path over 3 KiB was cut, and the state went to
    the installed directory instead. Its plugins and mcpd-tool are found
    there too."""
    deep = t.dir
    while len(deep) < 3500:
        deep = os.path.join(deep, "d" * min(200, 3500 - len(deep)))
    os.makedirs(deep)
    exe = os.path.join(deep, "mcpd")
    shutil.copy2(MCPD, exe)
    build = os.path.dirname(os.path.abspath(MCPD))
    os.symlink(os.path.join(build, "plugins"), os.path.join(deep, "plugins"))
    os.symlink(os.path.join(build, "mcpd-tool"), os.path.join(deep, "mcpd-tool"))
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\nstorage: { plugin: lmdb }\n"
               "tools:\n  - name: said\n    description: Logs through mcpd-tool.\n"
               "    shell: 'mcpd-tool log info hello && echo done'\n" % port)
    d.start(wait_url_port=port, exe=exe)
    check(len(exe) > 3072 and os.path.isdir(os.path.join(deep, "state")), os.listdir(deep))
    check(any(f.endswith(".mdb") for f in os.listdir(os.path.join(deep, "state"))),
          os.listdir(os.path.join(deep, "state")))
    sid = mcp_session(port)
    st, r, _ = rpc(port, sid, "tools/call", {"name": "said", "arguments": {}}, headers={"Accept": "application/json"})
    check(r["result"]["content"][0]["text"].strip() == "done" and not r["result"].get("isError"), r)
    d.stop()
