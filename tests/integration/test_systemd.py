"""sd_notify messages and socket activation, without systemd."""

import fcntl
import os
import signal
import socket
import subprocess
import time

from harness import MCPD, check, free_port, http, wait_for, TestFailure


class NotifySocket:
    def __init__(self, path):
        self.path = path
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(path if not path.startswith("@") else "\0" + path[1:])
        self.s.settimeout(0.1)
        self.messages = []

    def poll(self):
        while True:
            try:
                self.messages.append(self.s.recv(4096).decode())
            except socket.timeout:
                return self.messages

    def wait(self, key, count=1, timeout=10):
        return wait_for(lambda: sum(key in m for m in self.poll()) >= count and self.messages,
                        timeout, "sd_notify %s" % key)


def notify_flow(t, path):
    ns = NotifySocket(path)
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\n" % port)
    d.start(env={"NOTIFY_SOCKET": path})
    ns.wait("READY=1")
    ready = [m for m in ns.messages if "READY=1" in m][0]
    check("STATUS=2 workers serving 127.0.0.1:%d" % port in ready, ready)
    check("MAINPID=%d" % d.pid in ready, ready)
    check(http(port)[0] == 200, "READY=1 sent before serving")
    d.signal(signal.SIGHUP)
    ns.wait("READY=1", count=2)
    reloading = [m for m in ns.messages if "RELOADING=1" in m]
    check(reloading and "MONOTONIC_USEC=" in reloading[0], str(ns.messages))
    check(ns.messages.index(reloading[0]) < max(i for i, m in enumerate(ns.messages) if "READY=1" in m))
    d.stop()
    ns.wait("STOPPING=1")


def test_sd_notify_path_socket(t):
    notify_flow(t, os.path.join(t.dir, "notify.sock"))


def test_sd_notify_abstract_socket(t):
    notify_flow(t, "@mcpd-test-notify-%d" % os.getpid())


def test_socket_activation(t):
    """systemd passes a listening socket as fd 3 with LISTEN_PID/LISTEN_FDS."""
    port = free_port()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(16)
    cfg = os.path.join(t.dir, "mcpd.yaml")
    with open(cfg, "w") as f:
        f.write("listen: [127.0.0.1:%d]\nworkers: 2\n" % port)
    log = open(os.path.join(t.dir, "mcpd.log"), "wb")
    # The socket goes to the child at a high fd (pass_fds) and bash moves it
    # to fd 3, whatever fds the test process has open. (A dup2 to 3 in
    # preexec_fn was closed again by close_fds unless fd 3 happened to be
    # Popen's own error pipe: with tests running in parallel threads it
    # was not, and mcpd got another fd 3.) bash, as dash takes no fd
    # above 9; it sets LISTEN_PID to its own pid, which exec keeps.
    fd = fcntl.fcntl(ls.fileno(), fcntl.F_DUPFD, 10)
    p = subprocess.Popen(["bash", "-c", 'exec 3<&%d %d<&-; LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -c "$1"' % (fd, fd),
                          MCPD, cfg], stdout=log, stderr=log, pass_fds=(fd,))
    try:
        os.close(fd)
        ls.close()   # only mcpd holds it now: it must serve, not bind again
        wait_for(lambda: _ok(port), what="socket-activated mcpd")
        text = open(os.path.join(t.dir, "mcpd.log")).read()
        check("using socket 127.0.0.1:%d passed by systemd" % port in text, text)
        p.send_signal(signal.SIGTERM)
        check(p.wait(10) == 0)
    finally:
        if p.poll() is None:
            p.kill()


def test_socket_activation_numbers_are_digits(t):
    """LISTEN_PID and LISTEN_FDS are digits only (strtol took "1x" for 1),
    and a count no systemd passes is not tried descriptor by descriptor:
    either is ignored with a warning, and mcpd binds what its config says."""
    for fds in ("1x", " 1", "+1", "100000000"):
        port, given = free_port(), free_port()
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", given))
        ls.listen(16)
        cfg = os.path.join(t.dir, "mcpd.yaml")
        with open(cfg, "w") as f:
            f.write("listen: [127.0.0.1:%d]\nworkers: 1\n" % port)
        path = os.path.join(t.dir, "mcpd-%d.log" % port)
        log = open(path, "wb")
        fd = ls.fileno()

        def child():
            os.dup2(fd, 3)
            os.set_inheritable(3, True)
        p = subprocess.Popen(["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS="$2" exec "$0" -c "$1"', MCPD, cfg, fds],
                             stdout=log, stderr=log, preexec_fn=child, pass_fds=(3,) if fd == 3 else ())
        try:
            ls.close()
            wait_for(lambda: _ok(port), what="mcpd on its configured address")
            text = open(path).read()
            check("LISTEN_FDS=%s is not a number of descriptors up to 1024; ignored" % fds in text, (fds, text))
            check("passed by systemd" not in text, (fds, text))
            p.send_signal(signal.SIGTERM)
            check(p.wait(10) == 0)
        finally:
            if p.poll() is None:
                p.kill()


def _ok(port):
    try:
        return http(port, timeout=1)[0] == 200
    except OSError:
        return False


def test_status_with_many_listeners(t):
    """A STATUS= too long for its buffer says so ("...") rather than
    dropping addresses silently."""
    path = os.path.join(t.dir, "notify.sock")
    ns = NotifySocket(path)
    ports = []
    while len(ports) < 40:
        p = free_port()
        if p not in ports:
            ports.append(p)
    d = t.mcpd("listen:\n%sworkers: 1\n" % "".join("  - 127.0.0.1:%d\n" % p for p in ports))
    d.start(env={"NOTIFY_SOCKET": path})
    ns.wait("READY=1")
    ready = [m for m in ns.messages if "READY=1" in m][0]
    status = [ln for ln in ready.split("\n") if ln.startswith("STATUS=")][0]
    check(status.startswith("STATUS=1 workers serving 127.0.0.1:%d, 127.0.0.1:%d" % (ports[0], ports[1])), status)
    check(status.endswith("...") and len(status) < 600, status)
    check(http(ports[-1])[0] == 200)
    d.stop()
