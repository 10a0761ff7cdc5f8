"""Several mcpd instances delivering session messages to each other through
a real nats-server (plugins/nats), with their sessions in a real Redis
(storage must be shared too). Each instance is a separate master with its
own workers and port, as on separate hosts."""

import json
import os
import re
import socket
import subprocess
import time

from harness import (MCP_HEADERS, MCPD, Nats, Redis, Skip, TestFailure, check, conformance_config, free_port,
                     http, make_cert, mcp_session, node_peers_ready, rpc, run_mcpd, sse_events, wait_for)
from test_redis import TOOLS, RoundRobin, alive, call, get_stream, key_file, post_stream


def nats_server(t, port=None):
    n = Nats(t.dir, port).start()
    t.daemons.append(n)     # killed after the test like the daemons
    return n


def redis_server(t):
    r = Redis(t.dir).start()
    t.daemons.append(r)
    return r


def backends(t, redis, nats, extra=""):
    return ("storage: { plugin: redis, url: \"%s\" }\n"
            "transport: { plugin: nats, url: \"%s\"%s }\n"
            "request_state: { key_file: %s }\n" % (redis.url, nats.url, extra, key_file(t)))


def instances(t, redis, nats, n=2, workers=2, ready=True):
    """n instances, named A, B, C...; returns [(daemon, port)]."""
    out = []
    for i in range(n):
        name = "ABCDEFGH"[i]
        port = free_port()
        d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: %d\n%s%s"
                   % (port, workers, backends(t, redis, nats), TOOLS % {"name": name}),
                   name="%s.yaml" % name)
        d.start(wait_url_port=port)
        out.append((d, port))
    if ready:
        for d, port in out:
            wait_for(lambda: all_ready(port), what="instance ready")
    return out


def read_until(s, needle, data=b"", timeout=15):
    """Reads a stream until needle, within timeout seconds in all (a stream
    kept open by keep-alive comments must not hang the test)."""
    deadline = time.monotonic() + timeout
    while needle not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TestFailure("no %r within %ss:\n%r" % (needle, timeout, data[-800:]))
        s.settimeout(left)
        try:
            c = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            c = b""
        if not c:
            raise TestFailure("stream ended before %r:\n%r" % (needle, data[-800:]))
        data += c
    return data


def all_ready(port, times=4):
    """Every worker ready: /readyz asked a few times (new connections may
    reach different workers)."""
    return all(http(port, "GET", "/readyz")[0] == 200 for _ in range(times))


def list_changed_crosses(nats, pa, pb, sid):
    """A GET stream held by A gets the list_changed caused by a call on B."""
    g = get_stream(pa, sid)
    try:
        data = read_until(g, b"\r\n\r\n")
        check(data.startswith(b"HTTP/1.1 200"), data[:200])
        # The stream's subscription reaches the server asynchronously.
        wait_for(lambda: nats.request("mcpd.p.toclient:" + sid, timeout=0.3), timeout=5,
                 what="A's stream subscribed")
        check(call(pb, sid, "change") == "changed")
        read_until(g, b"notifications/tools/list_changed", data)
    finally:
        g.close()


def cancel_crosses(t, pa, pb, sid, tag, id=7):
    pidfile = os.path.join(t.dir, "slow-" + tag)
    s = post_stream(pa, sid, {"jsonrpc": "2.0", "id": id, "method": "tools/call",
                               "params": {"name": "slow", "arguments": {"pidfile": pidfile}}})
    try:
        wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), what="the tool to start")
        tool = int(open(pidfile).read())
        st, _, _ = http(pb, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": id}}), dict(MCP_HEADERS, **{"Mcp-Session-Id": sid}))
        check(st == 202)
        wait_for(lambda: not alive(tool), timeout=5, what="the tool cancelled from B to die (%s)" % tag)
    finally:
        s.close()


def test_transport_suite_against_nats(t):
    """The unit suite of the transport against this server: delivery and
    has_subscribers between two plugin instances, channel names with
    dots and wildcards that must not collide, failing fast while down."""
    nats = nats_server(t)
    exe = os.path.join(os.path.dirname(os.path.abspath(MCPD)), "unit-tests")
    check(os.access(exe, os.X_OK), "no unit-test binary at %s" % exe)
    p = subprocess.run([exe], env=dict(os.environ, CK_RUN_SUITE="transport", MCPD_TEST_NATS_URL=nats.url, MCPD_TEST_SQS_ENDPOINT=""),
                       capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    check(p.returncode == 0 and re.search(r"Checks: 3, Failures: 0, Errors: 0", out), out[-3000:])


def test_a_session_is_served_across_instances(t):
    """list_changed, cancellation, and an elicitation answered on B for a
    tool running on A, and progress resumed on B while A's tool runs."""
    redis, nats = redis_server(t), nats_server(t)
    (a, pa), (b, pb) = instances(t, redis, nats)
    sid = mcp_session(pa, caps={"elicitation": {}})
    check(call(pb, sid, "where") == "B")
    list_changed_crosses(nats, pa, pb, sid)
    cancel_crosses(t, pa, pb, sid, "first")

    s = post_stream(pa, sid, {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                               "params": {"name": "ask", "arguments": {}}})
    data = read_until(s, b"elicitation/create")
    ask = [json.loads(l[6:]) for l in data.decode().split("\n")
           if l.startswith("data: ") and "elicitation/create" in l][0]
    st, _, _ = http(pb, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": ask["id"],
                    "result": {"action": "accept", "content": {}}}), dict(MCP_HEADERS, **{"Mcp-Session-Id": sid}))
    check(st == 202, "answer on B: %s" % st)
    data = read_until(s, b'"id":9', data)
    s.close()
    check(b"answer accept" in data, data[-400:])
    check("was found in storage" not in a.log(), "the answer came through storage, not NATS")

    # Progress: the client leaves A after two events and resumes on B,
    # which replays from storage and relays the rest live from A.
    s = post_stream(pa, sid, {"jsonrpc": "2.0", "id": 11, "method": "tools/call",
                               "params": {"name": "chatty", "arguments": {}, "_meta": {"progressToken": "p"}}})
    data = b""
    while data.count(b"notifications/progress") < 2:
        data = read_until(s, b"\n\n", data + s.recv(4096))
    events = [e for e in sse_events(re.sub(rb"\r\n[0-9a-f]+\r\n", b"", data.split(b"\r\n\r\n", 1)[1]))
              if e.get("data")]
    s.close()
    st, _, body = http(pb, "GET", "/mcp", None, {"Accept": "text/event-stream", "Mcp-Session-Id": sid,
                       "MCP-Protocol-Version": "2025-11-25", "Last-Event-ID": events[-1]["id"]}, timeout=15)
    check(st == 200, (st, body[:300]))
    got = [json.loads(e["data"]) for e in sse_events(body) if e.get("data")]
    seen = [json.loads(e["data"])["params"]["progress"] for e in events if "notifications/progress" in e["data"]]
    resumed = [m["params"]["progress"] for m in got if m.get("method") == "notifications/progress"]
    check(seen + resumed == [1, 2, 3, 4, 5], "before %s, resumed on B %s" % (seen, resumed))
    check(got[-1].get("id") == 11 and got[-1]["result"]["content"][0]["text"].strip() == "done", got)
    st, _, _ = http(pb, "DELETE", "/mcp", None, {"Mcp-Session-Id": sid})
    check(st == 200)
    check(rpc(pa, sid, "ping")[0] == 404, "A still serves the session deleted on B")
    a.stop()
    b.stop()


def test_presence_across_instances(t):
    """has_subscribers' protocol seen from outside: the workers holding a
    channel answer a probe on its presence subject, and nobody does once
    the stream that held it is gone (the server then says so at once)."""
    redis, nats = redis_server(t), nats_server(t)
    (a, pa), (b, pb) = instances(t, redis, nats, workers=1)
    sid = mcp_session(pa)
    subject = "mcpd.p.toclient:" + sid
    check(nats.request(subject) == [], "a probe before any stream: %s" % nats.request(subject))
    g = get_stream(pb, sid)
    read_until(g, b"\r\n\r\n")
    wait_for(lambda: nats.request(subject, timeout=0.3) == ["1"], timeout=5, what="B's worker to answer")
    g.close()
    wait_for(lambda: nats.request(subject, timeout=0.3) == [], timeout=10, what="nobody to hold the channel")
    a.stop()
    b.stop()


def test_starts_before_nats(t):
    """An instance whose NATS is not up yet starts, is not ready, and
    becomes ready without a restart."""
    redis = redis_server(t)
    nats = Nats(t.dir)
    t.daemons.append(nats)
    (a, pa), (b, pb) = instances(t, redis, nats, ready=False)
    for port in (pa, pb):
        # "not connected yet" until the first attempt has failed.
        wait_for(lambda: http(port, "GET", "/readyz")[2].count(b"cannot connect to nats") == 1, timeout=5,
                 what="/readyz to say why")
        check(http(port, "GET", "/readyz")[0] == 503)
    nats.start()
    for port in (pa, pb):
        wait_for(lambda: all_ready(port), timeout=15, what="ready")
    sid = mcp_session(pa)
    list_changed_crosses(nats, pa, pb, sid)
    a.stop()
    b.stop()


def test_nats_restart(t):
    """nats-server is killed: /readyz says not ready on both instances,
    which keep serving what needs no transport; once it is back (same
    port), subscriptions are made again and messages cross again."""
    redis, nats = redis_server(t), nats_server(t)
    (a, pa), (b, pb) = instances(t, redis, nats)
    sid = mcp_session(pa)
    list_changed_crosses(nats, pa, pb, sid)
    nats.kill()
    for port in (pa, pb):
        wait_for(lambda: http(port, "GET", "/readyz")[0] == 503, timeout=10, what="not ready")
        st, _, body = http(port, "GET", "/readyz")
        check(st == 503 and b"nats" in body, (st, body))
        check(http(port, "GET", "/healthz")[0] == 200, "the process is alive even though it is not ready")
    nats.start()
    for port in (pa, pb):
        wait_for(lambda: all_ready(port), timeout=15, what="ready again")
    for d in (a, b):
        d.wait_log("nats: connected again")
    list_changed_crosses(nats, pa, pb, sid)
    cancel_crosses(t, pa, pb, sid, "restart")
    for d in (a, b):
        check("exited with status" not in d.log() and "killed by signal" not in d.log(), d.log()[-2000:])
        d.stop()


def test_tls_and_a_password(t):
    """TLS to a server whose certificate the plugin trusts through
    tls_ca_file, and a user whose password is in password_file; with the
    wrong password the instance stays not ready and keeps trying."""
    redis = redis_server(t)
    cert, key = make_cert(t.dir)
    nats = Nats(t.dir)
    nats.extra = ["--tls", "--tlscert", cert, "--tlskey", key, "--user", "mcpd", "--pass", "s3cret"]
    t.daemons.append(nats)
    nats.start()
    check(b'"tls_required":true' in nats.info(), nats.info())
    pw = os.path.join(t.dir, "nats.pw")
    extra = ", url: \"tls://127.0.0.1:%d\", tls_ca_file: %s, user: mcpd, password_file: nats.pw }" % (nats.port, cert)
    out = []
    for name, secret in (("A", "s3cret\n"), ("B", "wrong\n")):
        with open(pw, "w") as f:
            f.write(secret)
        port = free_port()
        text = "listen: [127.0.0.1:%d]\nworkers: 1\n%s%s" % (port, backends(t, redis, nats), TOOLS % {"name": name})
        text = re.sub(r", url: \"nats://[^\"]*\" }", lambda m: extra, text)
        check("tls_ca_file" in text, text)
        d = t.mcpd(text, name=name + ".yaml")
        d.start(wait_url_port=port)     # the master read the password file now
        out.append((d, port))
    (a, pa), (b, pb) = out
    wait_for(lambda: all_ready(pa), timeout=10, what="A ready over TLS")
    sid = mcp_session(pa)
    check(call(pa, sid, "where") == "A")
    st, _, body = http(pb, "GET", "/readyz")
    check(st == 503 and b"nats" in body, (st, body))
    # libnats gives a refused connection up; the plugin makes new ones.
    b.wait_log(r"nats closed the connection.*; connecting again", count=3, timeout=10)
    check(http(pb, "GET", "/readyz")[0] == 503 and "connected to" not in b.log(), b.log()[-1500:])
    a.stop()
    b.stop()


def test_configuration_errors(t):
    path = os.path.join(t.dir, "bad.yaml")
    cases = [
        ("transport: { plugin: nats, url: \"http://x\" }\n", r"bad\.yaml:\d+.*url"),
        ("transport: { plugin: nats, url: \"nats://127.0.0.1:0\" }\n", r"bad\.yaml:\d+.*url"),
        ("transport: { plugin: nats, url: [\"nats://a:4222\", 5x] }\n", r"bad\.yaml:\d+.*url"),
        ("transport: { plugin: nats, colour: red }\n", r"bad\.yaml:\d+.*unknown key \"colour\""),
        ("transport: { plugin: nats, prefix: \"a.*.\" }\n", r"bad\.yaml:\d+.*prefix"),
        ("transport: { plugin: nats, prefix: \"a..b\" }\n", r"bad\.yaml:\d+.*prefix"),
        ("transport: { plugin: nats, user: u }\n", r"bad\.yaml:\d+.*user and password"),
        ("transport: { plugin: nats, user: u, password_file: /nonexistent }\n",
         r"bad\.yaml:\d+.*password_file: cannot read /nonexistent"),
        ("transport: { plugin: nats, token: t, user: u, password: p }\n", r"bad\.yaml:\d+.*token or a user"),
        ("transport: { plugin: nats, creds_file: nothing.creds }\n", r"bad\.yaml:\d+.*creds_file"),
        ("transport: { plugin: nats, connect_timeout: 2 }\n", r"bad\.yaml:\d+.*connect_timeout"),
        ("transport: { plugin: nats, tls: maybe }\n", r"bad\.yaml:\d+.*tls"),
    ]
    for text, want in cases:
        with open(path, "w") as f:
            f.write("listen: [127.0.0.1:%d]\n%s" % (free_port(), text))
        rc, out, err = run_mcpd("-t", "-c", path)
        out += err
        check(rc != 0 and re.search(want, out), "%r: rc %s, %s" % (text, rc, out))
    pw = os.path.join(t.dir, "nats.pw")
    with open(pw, "w") as f:
        f.write("secret\n")
    with open(path, "w") as f:
        f.write("listen: [127.0.0.1:%d]\ntransport: { plugin: nats, url: [\"nats://h1:4222\", \"tls://h2\"], "
                "user: u, password_file: nats.pw, prefix: app1 }\n" % free_port())
    rc, out, err = run_mcpd("-t", "-c", path)
    check(rc == 0, out + err)


def test_conformance_behind_a_balancer(t):
    """The official conformance suite through a round-robin balancer over
    two instances sharing Redis storage and the NATS transport."""
    if not node_peers_ready():
        raise Skip("tests/node/node_modules missing: run scripts/install-deps.sh test")
    from test_conformance import EXPECTED, failures, suite
    redis, nats = redis_server(t), nats_server(t)
    ports = []
    for name in ("A", "B"):
        port = free_port()
        t.mcpd(conformance_config(t.dir, port, workers=2, extra=backends(t, redis, nats)),
               name=name + ".yaml").start(wait_url_port=port)
        ports.append(port)
    for port in ports:
        wait_for(lambda: all_ready(port), what="ready")
    lb = RoundRobin(ports)
    try:
        for version in ("2025-11-25", "2026-07-28"):
            p, checks, summary = suite(t, lb.port, version, "--suite", "all", "--spec-version", version)
            bad = failures(checks)
            m = re.search(r"Total: (\d+) passed, (\d+) failed", summary)
            check(p.returncode == 0 and not bad and m and m.group(2) == "0",
                  "conformance %s: exit %d\n%s\n%s\n%s" % (version, p.returncode, "\n".join(bad),
                                                          summary, p.stderr[-2000:]))
            check(len(checks) == EXPECTED[version], "%s ran %d scenarios" % (version, len(checks)))
            print("     behind the balancer (nats), %s: %s checks in %d scenarios"
                  % (version, m.group(1), len(checks)))
        check(lb.n > 20, "the balancer saw only %d connections" % lb.n)
    finally:
        lb.close()
