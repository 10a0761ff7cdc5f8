"""Shared helpers for the integration tests: run the real mcpd on loopback
ports of its own, talk to it over real sockets.

MCPD names the binary under test (the Makefile sets it)."""

import http.client as httpclient
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

MCPD = os.environ.get("MCPD", os.path.join(os.path.dirname(__file__), "../../build/mcpd"))
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))


class TestFailure(AssertionError):
    pass


class Skip(Exception):
    """Raised by a test that cannot run here; reported, never counted as passed."""


def check(cond, msg="check failed"):
    if not cond:
        raise TestFailure(msg)


def wait_for(pred, timeout=10.0, what="condition", interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TestFailure("timed out waiting for " + what)
        time.sleep(interval)


def read_log(path):
    """A daemon's log as text so far ("" before it has one)."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def alive(pid):
    """The process runs (neither gone nor a zombie)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):    # gone, or going while read
        return False


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(port, method="GET", path="/healthz", body=None, headers=None, host="127.0.0.1",
         timeout=10, tls_context=None, unix=None):
    """One request on a new connection: (status, headers dict lowercased, body bytes)."""
    if unix:
        conn = UnixHTTPConnection(unix, timeout=timeout)
    elif tls_context is not None:
        conn = httpclient.HTTPSConnection(host, port, timeout=timeout, context=tls_context)
    else:
        conn = httpclient.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


class UnixHTTPConnection(httpclient.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def raw(port, data, timeout=5, host="127.0.0.1"):
    """Send raw bytes, read until the server closes or timeout: the bytes."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def status_of(response_bytes):
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", response_bytes)
    return int(m.group(1)) if m else None


# The master's line for a worker that crashed.
CRASHED = re.compile(r"worker \d+ \(pid \d+\) killed by signal (%s) " % "|".join(
    str(int(s)) for s in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGFPE, signal.SIGILL)))


class Mcpd:
    """One mcpd master with its workers, in its own temporary directory."""

    def __init__(self, tmpdir, config, name="mcpd.yaml"):
        self.dir = tmpdir
        self.config_path = os.path.join(tmpdir, name)
        self.log_path = os.path.join(tmpdir, name + ".log")
        self.proc = None
        self.write_config(config)

    def write_config(self, text):
        # Each daemon keeps its sessions in its own directory unless the
        # test chooses a storage itself.
        if "\nstorage:" not in "\n" + text:
            text = text.rstrip("\n") + "\nstorage: { plugin: lmdb, path: %s }\n" % os.path.join(self.dir, "state")
        with open(self.config_path, "w") as f:
            f.write(text)

    def start(self, env=None, wait_url_port=None, extra_args=(), exe=None, **popen):
        e = dict(os.environ)
        e.update(env or {})
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([exe or MCPD, "-c", self.config_path, *extra_args],
                                     stdout=self.logf, stderr=self.logf, env=e, **popen)
        if wait_url_port is not None:
            self.wait_ready(wait_url_port)
        return self

    def wait_ready(self, port, timeout=15):
        def ok():
            if self.proc.poll() is not None:
                raise TestFailure("mcpd exited with %s:\n%s" % (self.proc.returncode, self.log()))
            if "mcpd ready" not in self.log():
                return False
            try:
                return http(port, timeout=2)[0] == 200
            except OSError:
                return False
        wait_for(ok, timeout, "mcpd to serve on port %d" % port)

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        return read_log(self.log_path)

    def wait_log(self, pattern, timeout=10, count=1):
        rx = re.compile(pattern)
        return wait_for(lambda: len(rx.findall(self.log())) >= count, timeout,
                        "log line matching %r" % pattern)

    def workers(self):
        """Pids of the master's children that are mcpd workers."""
        try:
            with open("/proc/%d/task/%d/children" % (self.pid, self.pid)) as f:
                pids = [int(p) for p in f.read().split()]
        except OSError:
            return []
        out = []
        for p in pids:
            try:
                with open("/proc/%d/stat" % p) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    out.append(p)
            except OSError:
                pass            # gone between the two reads (ProcessLookupError)
        return sorted(out)

    def signal(self, sig):
        os.kill(self.pid, sig)

    def stop(self, timeout=30, expect_status=0):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise TestFailure("mcpd did not stop within %ss:\n%s" % (timeout, self.log()[-3000:]))
        if expect_status is not None:
            check(rc == expect_status, "mcpd exited with %s, expected %s:\n%s"
                  % (rc, expect_status, self.log()[-3000:]))
        return rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            for w in self.workers():
                try:
                    os.kill(w, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.kill()
            self.proc.wait()

    def sanitizer_report(self):
        text = self.log()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "SUMMARY: UndefinedBehaviorSanitizer"):
            i = text.find(marker)
            if i >= 0:
                return text[max(0, i - 200):i + 4000]
        # A worker that crashed (the master goes on and exits 0): tests
        # kill workers with SIGKILL on purpose, never with these.
        m = CRASHED.search(text)
        if m:
            return text[max(0, m.start() - 3000):m.end() + 200]
        return None

    def worker_deaths(self):
        """The master's log lines for workers that did not end on their
        own with status 0 (killed by a signal, or exited with an error):
        after stop(), [] when every worker stopped cleanly."""
        return [l for l in self.log().splitlines()
                if re.search(r"master\[\d+\]: worker \d+ \(pid \d+\) (killed by signal|exited with status [1-9])", l)]


def run_mcpd(*args, timeout=30, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([MCPD, *args], capture_output=True, text=True, timeout=timeout, env=e)
    return p.returncode, p.stdout, p.stderr


def make_cert(dirpath, cn="localhost"):
    cert = os.path.join(dirpath, "cert.pem")
    key = os.path.join(dirpath, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=" + cn, "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def tls_client_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    return ctx


def healthz_json(port, **kw):
    st, _, body = http(port, **kw)
    check(st == 200, "healthz status %s" % st)
    return json.loads(body)


NODE_DIR = os.path.join(ROOT, "tests", "node")


def conformance_config(tmpdir, port, workers=1, extra="", extra_tools=""):
    """conf/conformance.yaml on another port, its scripts reached through a
    symlink so that the relative paths in it still resolve."""
    link = os.path.join(tmpdir, "conformance")
    if not os.path.exists(link):
        os.symlink(os.path.join(ROOT, "conf", "conformance"), link)
    text = open(os.path.join(ROOT, "conf", "conformance.yaml")).read()
    text = text.replace("127.0.0.1:8090", "127.0.0.1:%d" % port)
    text = text.replace("workers: 1\n", "workers: %d\n%s" % (workers, extra))
    if extra_tools:
        text = text.replace("\nresources:\n", "\n" + extra_tools + "\nresources:\n")
    return text


def node_peers_ready():
    return os.path.exists(os.path.join(NODE_DIR, "node_modules", ".package-lock.json"))


def mcp_session(port, path="/mcp", proto="2025-11-25", caps=None):
    """initialize + initialized; returns the session id."""
    body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                       "params": {"protocolVersion": proto, "capabilities": caps or {},
                                  "clientInfo": {"name": "harness", "version": "1"}}})
    st, hdrs, data = http(port, "POST", path, body, MCP_HEADERS)
    check(st == 200, "initialize: %s %r" % (st, data[:200]))
    sid = hdrs.get("mcp-session-id")
    check(sid, "no Mcp-Session-Id")
    st, _, _ = http(port, "POST", path, json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                    dict(MCP_HEADERS, **{"Mcp-Session-Id": sid, "MCP-Protocol-Version": proto}))
    check(st == 202, "initialized: %s" % st)
    return sid


MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def rpc(port, sid, method, params=None, id=1, headers=None, path="/mcp", timeout=30):
    """One JSON-RPC request; returns (status, message) where message is the
    response (from JSON or from the last SSE event) and also .events."""
    h = dict(MCP_HEADERS)
    if sid:
        h["Mcp-Session-Id"] = sid
        h["MCP-Protocol-Version"] = "2025-11-25"
    h.update(headers or {})
    msg = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        msg["params"] = params
    st, hdrs, data = http(port, "POST", path, json.dumps(msg), h, timeout=timeout)
    if hdrs.get("content-type", "").startswith("text/event-stream"):
        events = sse_events(data)
        msgs = [json.loads(e["data"]) for e in events if e.get("data")]
        final = [m for m in msgs if m.get("id") == id and ("result" in m or "error" in m)]
        return st, (final[-1] if final else None), msgs
    try:
        return st, json.loads(data) if data else None, []
    except ValueError:
        return st, data, []


def sse_events(data):
    events, cur = [], {}
    for line in data.decode().split("\n"):
        if line == "":
            if cur:
                events.append(cur)
            cur = {}
            continue
        if line.startswith(":"):
            continue
        k, _, v = line.partition(":")
        v = v[1:] if v.startswith(" ") else v
        cur[k] = cur.get(k, "") + ("\n" if k == "data" and k in cur else "") + v
    if cur:
        events.append(cur)
    return events


class Peer:
    """A server the plugins talk to, run by a test as a process of its own:
    its log for a failed test's report; stop() lets it end cleanly (SIGTERM:
    redis writes its files), kill() does not."""

    proc = None
    log_path = None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log(self):
        return read_log(self.log_path)

    def sanitizer_report(self):
        return None


class TcpRelay:
    """A TCP proxy on a free loopback port in front of upstream_port, a
    thread a direction for each connection. A subclass's forward(data,
    to_server, state) may hold or change each chunk (state: a dict of the
    connection's, shared by both directions) and returns what to pass."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.conns = []
        threading.Thread(target=self.accept, daemon=True).start()

    def forward(self, data, to_server, state):
        return data

    def accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.upstream))
            self.conns += [c, up]
            state = {}
            threading.Thread(target=self.pump, args=(c, up, state, True), daemon=True).start()
            threading.Thread(target=self.pump, args=(up, c, state, False), daemon=True).start()

    def pump(self, src, dst, state, to_server):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(self.forward(data, to_server, state))
        except OSError:
            pass
        for x in (src, dst):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.ls.close()
        for x in self.conns:
            x.close()


def json_handler():
    """A base for a peer's request handler that answers JSON (HTTP/1.1,
    no log lines): answer(status, body) sends body, a value or bytes."""
    from http.server import BaseHTTPRequestHandler

    class JSONHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def answer(self, status, body):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
    return JSONHandler


class HTTPPeer(Peer):
    """A server a test runs in a thread of its own (a relay, a gate, a fake
    service) rather than as a process: listen() binds its handler to a
    free loopback port (HTTPS with a TLS context), start() serves, stop()
    (and kill(), the same here) shuts it."""

    scheme = "http"
    serving = False

    def listen(self, handler, tls=None, daemon_threads=False, port=None):
        from http.server import ThreadingHTTPServer
        self.port = port or free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        if daemon_threads:
            self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % (self.scheme, self.port)

    def start(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.serving = True
        return self

    def stop(self):
        if self.serving:
            self.serving = False
            self.httpd.shutdown()
        self.httpd.server_close()

    kill = stop


class Redis(Peer):
    """A real redis-server on a loopback port of its own, for the tests of
    the redis plugin. It keeps its data in an append-only file, so that a
    restart loses nothing (as a production Redis would be set up)."""

    def __init__(self, tmpdir, port=None):
        self.port = port or free_port()
        self.dir = os.path.join(tmpdir, "redis-%d" % self.port)
        os.makedirs(self.dir, exist_ok=True)
        self.log_path = os.path.join(self.dir, "redis.log")
        self.proc = None
        self.extra = []

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self):
        exe = shutil.which("redis-server")
        if exe is None:
            raise TestFailure("redis-server is not installed (scripts/install-deps.sh test installs it)")
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--dir", self.dir, "--appendonly", "yes", "--appendfsync", "always",
                                      "--save", "", "--logfile", self.log_path, *self.extra],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.cli("PING") == "PONG", what="redis-server to answer")
        return self

    def cli(self, *args):
        """One command over a raw socket (RESP); the reply as text, or None."""
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        except OSError:
            return None
        with s:
            s.sendall(b"*%d\r\n" % len(args) + b"".join(
                b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in map(str, args)))
            data = b""
            while not data.endswith(b"\r\n"):
                c = s.recv(65536)
                if not c:
                    return None
                data += c
            if data[:1] in (b"+", b"-", b":"):
                return data[1:-2].decode()
            if data[:1] == b"$":
                n = int(data[1:data.index(b"\r\n")])
                if n < 0:
                    return None
                head = data.index(b"\r\n") + 2
                while len(data) < head + n + 2:
                    data += s.recv(65536)
                return data[head:head + n].decode(errors="replace")
            return data.decode(errors="replace")



class Postgres(Peer):
    """A real PostgreSQL cluster of its own (initdb + pg_ctl from
    /usr/lib/postgresql/*/bin) on a loopback port of its own, trusting
    connections from 127.0.0.1, with a database named mcpd. As root the
    server runs as the postgres user (or nobody): it refuses to run as
    root. stop() and start() again keep the data, as a real outage would."""

    def __init__(self, tmpdir, port=None):
        self.port = port or free_port()
        self.dir = os.path.join(tmpdir, "postgres-%d" % self.port)
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.bindir = self.find_bindir()
        self.user = self.group = None
        if os.getuid() == 0:
            import pwd
            for name in ("postgres", "nobody"):
                try:
                    pw = pwd.getpwnam(name)
                except KeyError:
                    continue
                self.user, self.group = pw.pw_uid, pw.pw_gid
                break
            # The server's user must reach its directory under the test's.
            os.chmod(tmpdir, 0o711)
        os.makedirs(self.dir, exist_ok=True)
        if self.user is not None:
            os.chown(self.dir, self.user, self.group)
        self.initialised = False
        self.proc = None

    @staticmethod
    def find_bindir():
        import glob
        for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
            if os.access(os.path.join(d, "pg_ctl"), os.X_OK):
                return d
        raise TestFailure("PostgreSQL is not installed (scripts/install-deps.sh test installs postgresql)")

    @property
    def url(self):
        return "postgresql://mcpd@127.0.0.1:%d/mcpd" % self.port

    def run(self, *argv, check_rc=True):
        kw = {}
        if self.user is not None:
            kw = dict(user=self.user, group=self.group, extra_groups=[])
        p = subprocess.run([os.path.join(self.bindir, argv[0]), *argv[1:]], cwd=self.dir, capture_output=True,
                           text=True, timeout=60, env=dict(os.environ, LC_ALL="C"), **kw)
        if check_rc and p.returncode != 0:
            raise TestFailure("%s failed: %s%s" % (argv[0], p.stdout, p.stderr))
        return p

    def start(self):
        if not self.initialised:
            self.run("initdb", "-D", self.data, "-U", "mcpd", "-A", "trust", "--no-sync", "-E", "UTF8",
                     "--locale=C")
            with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
                f.write("listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"
                        "fsync = off\nmax_connections = 200\n" % (self.port, self.dir))
            self.initialised = True
        self.run("pg_ctl", "-D", self.data, "-l", self.log_path, "-w", "-t", "60", "start")
        if not getattr(self, "created", False):
            self.sql("CREATE DATABASE mcpd", db="postgres")
            self.created = True
        return self

    def psql(self, *args, db="mcpd"):
        exe = shutil.which("psql") or os.path.join(self.bindir, "psql")
        return subprocess.run([exe, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                               "-p", str(self.port), "-U", "mcpd", "-d", db, *args],
                              capture_output=True, text=True, timeout=30)

    def sql(self, query, db="mcpd"):
        """Runs one query; its rows as lines of text."""
        p = self.psql("-c", query, db=db)
        if p.returncode != 0:
            raise TestFailure("psql %r: %s" % (query, p.stderr))
        return [l for l in p.stdout.splitlines() if l]

    def pid(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (FileNotFoundError, ValueError):
            return None

    def stop(self, mode="fast"):
        if self.initialised and self.pid() is not None:
            self.run("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check_rc=False)

    def kill(self):
        self.stop("immediate")


class Nats(Peer):
    """A real nats-server on a loopback port of its own, for the tests of
    the nats transport (core NATS: nothing kept across a restart)."""

    def __init__(self, tmpdir, port=None):
        self.port = port or free_port()
        self.dir = os.path.join(tmpdir, "nats-%d" % self.port)
        os.makedirs(self.dir, exist_ok=True)
        self.log_path = os.path.join(self.dir, "nats.log")
        self.proc = None
        self.extra = []     # more nats-server options (TLS, users)

    @property
    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def info(self):
        """The server's INFO line (sent first, before any TLS), or None."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                line = s.makefile("rb").readline()
                return line if line.startswith(b"INFO ") else None
        except OSError:
            return None

    def start(self):
        exe = shutil.which("nats-server")
        if exe is None:
            raise TestFailure("nats-server is not installed (scripts/install-deps.sh test installs it)")
        self.proc = subprocess.Popen([exe, "-a", "127.0.0.1", "-p", str(self.port), "-l", self.log_path,
                                      *self.extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.info, what="nats-server to answer")
        return self

    def request(self, subject, timeout=1.0):
        """Publishes an empty request on a connection of its own and collects
        the answers for timeout seconds: a list of payloads, [] when the
        server says nobody listens (no responders), None when the server
        cannot be reached."""
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        except OSError:
            return None
        with s:
            try:
                f = s.makefile("rb")
                if not f.readline().startswith(b"INFO "):
                    return None
                s.sendall(b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\n'
                          b"SUB _probe.reply 1\r\nPUB %s _probe.reply 0\r\n\r\nPING\r\n" % subject.encode())
                out, deadline = [], time.monotonic() + timeout
                while time.monotonic() < deadline:
                    s.settimeout(max(0.01, deadline - time.monotonic()))
                    try:
                        line = f.readline()
                    except (socket.timeout, OSError):
                        break
                    if not line:
                        return None
                    words = line.split()
                    if words[:1] == [b"MSG"]:
                        out.append(f.read(int(words[-1]) + 2)[:-2].decode())
                    elif words[:1] == [b"HMSG"]:
                        data = f.read(int(words[-1]) + 2)[:-2]
                        if b" 503" in data.split(b"\r\n", 1)[0]:
                            return out
                    elif words[:1] == [b"PING"]:
                        s.sendall(b"PONG\r\n")
                return out
            except (OSError, ValueError):
                return None


# ---- peers: the servers the storage and transport plugins talk to ----

def serve(t, server, start=True):
    """A peer server (Redis, Postgres, Nats) for one test, stopped after it
    like the daemons; started now unless the test starts it later."""
    t.daemons.append(server)
    return server.start() if start else server


def redis_server(t, start=True):
    return serve(t, Redis(t.dir), start)


def postgres_server(t, start=True):
    return serve(t, Postgres(t.dir), start)


def nats_server(t, port=None, start=True):
    return serve(t, Nats(t.dir, port), start)


def process_ended(pid):
    """Has pid exited (gone, or a zombie)? It may go between any two reads
    of /proc (ProcessLookupError, FileNotFoundError)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def id_hash_key(key=None):
    """The HMAC key of lib/idhash.c: from storage.hash_key_file (the
    path), or None: mcpd's fixed key."""
    import hashlib
    if key is None:
        return b"mcpd id hash: no hash_key_file"
    return hashlib.sha256(b"mcpd id hashing\0" + open(key, "rb").read().rstrip(b" \t\r\n")).digest()


def sid_hash(sid, key=None):
    """A session id as mcpd names it in storage keys and channels
    (lib/idhash.c): HMAC-SHA256 with the storage's hash_key_file key (the
    path; None: mcpd's fixed key), 144 bits, base64url."""
    import base64
    import hashlib
    import hmac
    mac = hmac.new(id_hash_key(key), sid.encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(mac).decode()


def token_hash(token, key=None):
    """An OAuth code or token as the internal authorization server names it
    in storage and revocations (lib/idhash.c, idhash_hex): the whole
    HMAC-SHA256 with the deployment's key (as sid_hash), in hexadecimal."""
    import hashlib
    import hmac
    return hmac.new(id_hash_key(key), token.encode(), hashlib.sha256).hexdigest()


def key_file(t):
    """The request_state key that instances of one test share."""
    path = os.path.join(t.dir, "state.key")
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(path, 0o600)
    return path


def call_tool(port, sid, name, args=None, id=1):
    """tools/call in a session: the text of the result's first content."""
    st, r, _ = rpc(port, sid, "tools/call", {"name": name, "arguments": args or {}}, id=id)
    check(st == 200 and r and "result" in r, (port, st, r))
    return r["result"]["content"][0]["text"].strip()


def with_storage_cache(f):
    """The test runs twice: as it is, and as test[cache] with the storage
    cache on (storage_cache(t) in its storage: section)."""
    f.variants = ("", "cache")
    return f


def storage_cache(t):
    """What a storage: section gains in the [cache] variant of a test: a
    ttl long enough that a missed invalidation or expiry fails the test
    rather than lapsing unseen."""
    return ", cache: { entries: 1000, ttl: 60s }" if getattr(t, "variant", "") == "cache" else ""


def deleted_everywhere(port, sid, ports, id=1):
    """A DELETE of the session on port ends it: each of ports (instances
    sharing the session's storage) then answers 404 for it."""
    st, _, _ = http(port, "DELETE", "/mcp", None, {"Mcp-Session-Id": sid})
    check(st == 200, "DELETE: %s" % st)
    for p in ports:
        st, r, _ = rpc(p, sid, "ping", id=id)
        check(st == 404, "after DELETE on %d, %d answered %s" % (port, p, st))


def start_instances(t, n, config, workers=2, ready=True, env=None, timeout=10):
    """n mcpd instances named A, B, C..., each on a port of its own with
    config(name), the text after listen and workers, started with env
    added to the environment: [(daemon, port)], every worker of each ready
    (within timeout seconds) unless ready is False."""
    out = []
    for i in range(n):
        name = "ABCDEFGH"[i]
        port = free_port()
        d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: %d\n%s" % (port, workers, config(name)),
                   name="%s.yaml" % name)
        d.start(env=env, wait_url_port=port)
        out.append((d, port))
    for d, port in out:
        if ready:
            workers_ready(port, workers, timeout)
    return out


def check_host_name(d, port, workers=2, timeout=15):
    """An instance whose server is named by a host name (looked up on the
    worker's loop) becomes ready, every worker of it, and serves (its tool
    "where" answers), and no lookup failed."""
    workers_ready(port, workers, timeout)
    sid = mcp_session(port)
    check(call_tool(port, sid, "where") == "L")
    check("cannot resolve" not in d.log(), d.log()[-2000:])


def run_unit_suite(suite, checks, env=None, unset=(), timeout=120):
    """The unit-test binary beside MCPD runs one suite (against the peer
    server that env names) and passes exactly checks checks."""
    exe = os.path.join(os.path.dirname(os.path.abspath(MCPD)), "unit-tests")
    check(os.access(exe, os.X_OK), "no unit-test binary at %s" % exe)
    e = dict(os.environ, CK_RUN_SUITE=suite, **(env or {}))
    for name in unset:
        e.pop(name, None)
    p = subprocess.run([exe], env=e, capture_output=True, text=True, timeout=timeout)
    out = p.stdout + p.stderr
    m = re.search(r"Checks: (\d+), Failures: 0, Errors: 0", out)
    check(p.returncode == 0 and m and int(m.group(1)) == checks, out[-3000:])


def all_ready(port, times=4):
    """Every worker ready: /readyz asked a few times (new connections may
    reach different workers)."""
    return all(http(port, "GET", "/readyz")[0] == 200 for _ in range(times))


def workers_ready(port, workers, timeout=10):
    """Waits until each worker of an instance has answered /readyz with 200
    (a new connection reaches any worker: one ready worker does not make
    the others so)."""
    seen = set()

    def poll():
        st, _, body = http(port, "GET", "/readyz")
        if st == 200:
            seen.add(json.loads(body)["worker"])
        return len(seen) >= workers
    wait_for(poll, timeout, "every worker of the instance on port %d to be ready" % port)


def check_not_ready(port, why, initialize=False, healthz=0, timeout=10):
    """An instance whose storage or transport is unreachable: /readyz says
    503 and why; /healthz answers all the same (healthz times); with
    initialize, a new session is refused with 503. Returns the body of the
    answer that said why."""
    for _ in range(healthz):
        st, _, body = http(port, "GET", "/healthz")
        check(st == 200, "the process is alive even though it is not ready: %s %r" % (st, body))
    # Each worker finds out on its own: until every one has, the answer
    # may come from one that says only "not connected yet", or from one
    # that has not yet seen the loss (200). Every worker that answered 200
    # must say why before the timeout; none may go back to 200 after.
    said = {}
    ready, told = set(), set()

    def says_why():
        st, _, body = http(port, "GET", "/readyz")
        try:
            worker = json.loads(body).get("worker")
        except ValueError:
            worker = None
        if st == 200:
            check(worker not in told, "worker %s said ready after it said why: %r" % (worker, body))
            ready.add(worker)
            return False
        check(st == 503, (st, body))
        said["body"] = body
        if why in body:
            told.add(worker)
        return why in body and ready <= told
    wait_for(says_why, timeout=timeout, what="/readyz to say %r" % why)
    if initialize:
        st, r, _ = rpc(port, None, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "x", "version": "1"}}, id=0)
        check(st == 503, (st, r))
    return said["body"]


def starts_before(server, ports, why, initialize=False, first_attempt=0, timeout=15):
    """Instances started before their server (not started yet) serve but
    are not ready (check_not_ready), and become ready once it starts,
    without a restart. first_attempt: seconds to wait for /readyz to give
    the reason once ("not connected yet" until the first attempt failed)."""
    for port in ports:
        if first_attempt:
            wait_for(lambda: http(port, "GET", "/readyz")[2].count(why) == 1, timeout=first_attempt,
                     what="/readyz to say why")
        check_not_ready(port, why, initialize=initialize)
    server.start()
    for port in ports:
        wait_for(lambda: all_ready(port), timeout=timeout, what="ready")


def check_unresolvable(d, port, name="no-such-host.invalid"):
    """A server name that does not resolve is reported like a server that
    is down: 503, /readyz says why, the log too, and the lookups, retried
    with the back-off, never hold the worker up: /healthz is answered all
    along."""
    why = "cannot resolve " + name
    wait_for(lambda: why in d.log(), timeout=20, what="the lookup error logged")
    check_not_ready(port, why.encode(), initialize=True, healthz=20)


class Load:
    """tools/call "where" in a session, over and over on a thread, on ports
    in turn: the statuses seen, and the errors of the calls that failed."""

    def __init__(self, ports, sid):
        self.ports, self.sid = ports, sid
        self.statuses, self.errors, self.done = [], set(), threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        i = 0
        while not self.done.is_set():
            i += 1
            st, r, _ = rpc(self.ports[i % len(self.ports)], self.sid, "tools/call",
                           {"name": "where", "arguments": {}}, id=i, timeout=10)
            self.statuses.append(st)
            if st != 200:
                self.errors.add(json.dumps(r))

    def wait(self, more):
        n = len(self.statuses)
        wait_for(lambda: len(self.statuses) > n + more, what="load")

    def stop(self):
        self.done.set()
        self.thread.join()


def down_and_back(server, ports, sid, why, calls=50, daemons=(), again="connected again", while_down=None):
    """The storage server goes away under load and comes back: meanwhile
    requests get 503 saying storage is unavailable (never a crash or a
    hang) and /readyz says why (then while_down(), if given, checks more);
    once it is back every instance is ready, the last calls all succeed,
    and the daemons' logs tell of the outage (why) and of the connection
    made again (again)."""
    load = Load(ports, sid)
    try:
        load.wait(calls)
        server.stop()
        # (generous: under ASan on a loaded machine each refused call is slow)
        wait_for(lambda: load.statuses.count(503) > 10, timeout=30, what="503 while the server is down")
        check_not_ready(ports[-1], why, healthz=1)
        if while_down:
            while_down()
        server.start()
        for port in ports:
            wait_for(lambda: all_ready(port, times=6), timeout=15, what="ready again")
        load.wait(calls)
    finally:
        load.stop()
    check(set(load.statuses) <= {200, 503}, "statuses seen: %s" % sorted(set(load.statuses)))
    check(all("storage is unavailable" in e for e in load.errors), load.errors)
    check(load.statuses[-20:] == [200] * 20, load.statuses[-40:])
    for d in daemons:
        check(why.decode() in d.log() and again in d.log(), d.log()[-1500:])


def storage_hangs(d, port, peer, log_re=None):
    """The storage service stops answering (peer.pause(): SIGSTOP) without
    closing its connections, under d (one worker, a 500 ms call bound, on
    port): a request ends at the call's bound with 503, /healthz is
    answered all along (and d's log matches log_re, if given); once it
    answers again (peer.resume()) so does mcpd."""
    sid = mcp_session(port)
    peer.pause()
    try:
        t0 = time.monotonic()
        st, r, _ = rpc(port, sid, "ping", timeout=15)
        took = time.monotonic() - t0
        check(st == 503 and "unavailable" in json.dumps(r), (st, r))
        check(took < 4, "took %.1fs" % took)
        check(http(port, "GET", "/healthz")[0] == 200)
        if log_re:
            d.wait_log(log_re)
    finally:
        peer.resume()
    wait_for(lambda: all_ready(port, 3), timeout=15, what="ready again")
    wait_for(lambda: rpc(port, sid, "ping")[0] == 200, timeout=10, what="the session to answer again")


def transport_hangs(d, port, peer, name, timeout):
    """The transport's service stops answering (peer.pause(): SIGSTOP)
    without closing its connections, under d (one worker, on port): its
    long poll and calls end at their bounds, /readyz says the plugin
    (name) is not answering within timeout seconds while /healthz is
    answered all along; once it answers again (peer.resume()) the worker
    is ready again and says so."""
    peer.pause()
    try:
        wait_for(lambda: http(port, "GET", "/readyz")[0] == 503, timeout=timeout, what="/readyz 503 while it hangs")
        st, _, body = http(port, "GET", "/readyz")
        check(name.encode() in body and (b"timed out" in body or b"Timeout" in body), body)
        for _ in range(10):
            check(http(port, "GET", "/healthz")[0] == 200)
    finally:
        peer.resume()
    wait_for(lambda: all_ready(port, 3), timeout=20, what="ready again")
    d.wait_log("%s: the service answers again" % name)


def check_config_errors(t, cases, env=None):
    """Each (text, regex): mcpd -t (with env added to the environment)
    refuses a config of one listen address and text, with a message
    matching regex."""
    path = os.path.join(t.dir, "bad.yaml")
    for text, want in cases:
        with open(path, "w") as f:
            f.write("listen: [127.0.0.1:%d]\n%s" % (free_port(), text))
        rc, out, err = run_mcpd("-t", "-c", path, env=env)
        out += err
        check(rc != 0 and re.search(want, out), "%r: rc %s, %s" % (text, rc, out))


def check_config_valid(t, text, env=None):
    """mcpd -t accepts a config of one listen address and text (a plugin
    checks its section without its server to reach): what it said."""
    path = os.path.join(t.dir, "good.yaml")
    with open(path, "w") as f:
        f.write("listen: [127.0.0.1:%d]\n%s" % (free_port(), text))
    rc, out, err = run_mcpd("-t", "-c", path, env=env)
    check(rc == 0, out + err)
    return out + err


class RoundRobin:
    """A TCP relay on loopback: each new connection goes to the next backend
    in turn, as a round-robin balancer without affinity does (with one
    backend, a relay in front of it). stop() takes it away, its listener
    closed and the connections through it cut, and start() brings it back
    on the same port: a server unreachable while it keeps its data."""

    def __init__(self, ports):
        self.ports, self.n, self.port = ports, 0, 0
        self.sock, self.conns, self.lock = None, [], threading.Lock()
        self.start()

    def start(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept, args=(self.sock,), daemon=True).start()
        return self

    def accept(self, ls):
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            if ls.fileno() < 0:         # accepted as stop() closed it
                c.close()
                return
            port = self.ports[self.n % len(self.ports)]
            self.n += 1
            try:
                u = socket.create_connection(("127.0.0.1", port))
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns.append((c, u))
            threading.Thread(target=self.relay, args=(c, u), daemon=True).start()

    def relay(self, c, u):
        back = threading.Thread(target=self.pipe, args=(u, c), daemon=True)
        back.start()
        self.pipe(c, u)
        back.join()
        with self.lock:
            self.conns.remove((c, u))
        c.close()
        u.close()

    @staticmethod
    def pipe(src, dst):
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                dst.sendall(b)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def stop(self):
        # shutdown() first: close() alone leaves the listener accepting
        # while the accept thread is blocked in it (a kept-alive client
        # would then go on through the relay "taken away").
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            for pair in self.conns:
                for s in pair:
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

    close = stop


def conformance_behind_balancer(t, ports, label):
    """The official conformance suite, both generations, through a
    round-robin balancer over instances: every new connection of a
    scenario may land on another instance."""
    from test_conformance import EXPECTED, SKILLS_SCENARIOS, TASKS_SCENARIOS, failures, suite
    lb = RoundRobin(ports)
    try:
        # The extensions: a task started on one instance is polled,
        # answered and cancelled through the others; skills from any.
        p, checks, summary = suite(t, lb.port, "req-2026-07-28", "--requirements", "2026-07-28")
        tasks = [s for s in checks if s.startswith("tasks-")]
        check(p.returncode == 0 and not failures(checks) and len(tasks) == TASKS_SCENARIOS,
              "requirements 2026-07-28 behind the balancer: exit %d, %d tasks scenarios\n%s\n%s"
              % (p.returncode, len(tasks), "\n".join(failures(checks)), summary))
        for scenario in SKILLS_SCENARIOS:
            p, checks, summary = suite(t, lb.port, scenario, "--scenario", scenario,
                                       "--spec-version", "2026-07-28", "--force")
            check(p.returncode == 0 and checks and not failures(checks),
                  "%s behind the balancer\n%s" % (scenario, "\n".join(failures(checks))))
        print("     behind the balancer%s: the tasks and skills extensions' scenarios pass" % label)
        for version in ("2025-11-25", "2026-07-28"):
            p, checks, summary = suite(t, lb.port, version, "--suite", "all", "--spec-version", version)
            bad = failures(checks)
            m = re.search(r"Total: (\d+) passed, (\d+) failed", summary)
            check(p.returncode == 0 and not bad and m and m.group(2) == "0",
                  "conformance %s: exit %d\n%s\n%s\n%s" % (version, p.returncode, "\n".join(bad),
                                                          summary, p.stderr[-2000:]))
            check(len(checks) == EXPECTED[version], "%s ran %d scenarios" % (version, len(checks)))
            print("     behind the balancer%s, %s: %s checks in %d scenarios"
                  % (label, version, m.group(1), len(checks)))
        check(lb.n > 20, "the balancer saw only %d connections" % lb.n)
    finally:
        lb.close()
