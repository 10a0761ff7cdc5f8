"""Several mcpd instances delivering session messages to each other through
a real nats-server (plugins/nats), with their sessions in a real Redis
(storage must be shared too). Each instance is a separate master with its
own workers and port, as on separate hosts."""

import os
import re
import socket
import time

from harness import (sid_hash, Skip, TestFailure, all_ready, call_tool, check, check_config_errors, check_config_valid,
                     check_not_ready, conformance_behind_balancer, conformance_config, deleted_everywhere,
                     free_port, http, key_file, make_cert, mcp_session, nats_server, node_peers_ready, redis_server,
                     run_unit_suite, start_instances, starts_before, storage_cache, wait_for, with_storage_cache)
from test_redis import TOOLS, cancel_crosses, elicitation_crosses, get_stream, resume_crosses
from test_redis import list_changed_crosses as list_changed_through


def backends(t, redis, nats, extra=""):
    return ("storage: { plugin: redis, url: \"%s\"%s }\n"
            "transport: { plugin: nats, url: \"%s\"%s }\n"
            "request_state: { key_file: %s }\n" % (redis.url, storage_cache(t), nats.url, extra, key_file(t)))


def instances(t, redis, nats, n=2, workers=2, ready=True):
    """n instances, named A, B, C...; returns [(daemon, port)]."""
    return start_instances(t, n, lambda name: backends(t, redis, nats) + TOOLS % {"name": name}, workers,
                           ready)


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


def list_changed_crosses(nats, pa, pb, sid):
    """A GET stream held by A gets the list_changed caused by a call on B,
    made once the stream's subscription has reached the server (it does
    so asynchronously)."""
    list_changed_through(pa, pb, sid, read=read_until, subscribed=lambda: wait_for(
        lambda: nats.request("mcpd.p.toclient:" + sid_hash(sid), timeout=0.3), timeout=5, what="A's stream subscribed"))


def test_transport_suite_against_nats(t):
    """The unit suite of the transport against this server: delivery and
    has_subscribers between two plugin instances, channel names with
    dots and wildcards that must not collide, failing fast while down."""
    nats = nats_server(t)
    run_unit_suite("transport", 3, env={"MCPD_TEST_NATS_URL": nats.url}, unset=["MCPD_TEST_SQS_ENDPOINT"])


@with_storage_cache
def test_a_session_is_served_across_instances(t):
    """list_changed, cancellation, and an elicitation answered on B for a
    tool running on A, and progress resumed on B while A's tool runs."""
    redis, nats = redis_server(t), nats_server(t)
    (a, pa), (b, pb) = instances(t, redis, nats)
    sid = mcp_session(pa, caps={"elicitation": {}})
    check(call_tool(pb, sid, "where") == "B")
    list_changed_crosses(nats, pa, pb, sid)
    cancel_crosses(t, pa, pb, sid, "first")

    elicitation_crosses(pa, pb, sid, read=read_until)
    check("was found in storage" not in a.log(), "the answer came through storage, not NATS")

    # Progress: the client leaves A after two events and resumes on B,
    # which replays from storage and relays the rest live from A.
    resume_crosses(pa, pb, sid, read=read_until)
    deleted_everywhere(pb, sid, (pa, pb))
    a.stop()
    b.stop()


@with_storage_cache
def test_presence_across_instances(t):
    """has_subscribers' protocol seen from outside: the workers holding a
    channel answer a probe on its presence subject, and nobody does once
    the stream that held it is gone (the server then says so at once)."""
    redis, nats = redis_server(t), nats_server(t)
    (a, pa), (b, pb) = instances(t, redis, nats, workers=1)
    sid = mcp_session(pa)
    subject = "mcpd.p.toclient:" + sid_hash(sid)
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
    nats = nats_server(t, start=False)
    (a, pa), (b, pb) = instances(t, redis, nats, ready=False)
    starts_before(nats, (pa, pb), b"cannot connect to nats", first_attempt=5)
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
        check_not_ready(port, b"nats", healthz=1)
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
    nats = nats_server(t, start=False)
    nats.extra = ["--tls", "--tlscert", cert, "--tlskey", key, "--user", "mcpd", "--pass", "s3cret"]
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
    check(call_tool(pa, sid, "where") == "A")
    st, _, body = http(pb, "GET", "/readyz")
    check(st == 503 and b"nats" in body, (st, body))
    # libnats gives a refused connection up; the plugin makes new ones.
    b.wait_log(r"nats closed the connection.*; connecting again", count=3, timeout=10)
    check(http(pb, "GET", "/readyz")[0] == 503 and "connected to" not in b.log(), b.log()[-1500:])
    a.stop()
    b.stop()


def test_configuration_errors(t):
    check_config_errors(t, [
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
    ])
    with open(os.path.join(t.dir, "nats.pw"), "w") as f:
        f.write("secret\n")
    check_config_valid(t, "transport: { plugin: nats, url: [\"nats://h1:4222\", \"tls://h2\"], "
                       "user: u, password_file: nats.pw, prefix: app1 }\n")


@with_storage_cache
def test_conformance_behind_a_balancer(t):
    """The official conformance suite through a round-robin balancer over
    two instances sharing Redis storage and the NATS transport."""
    if not node_peers_ready():
        raise Skip("tests/node/node_modules missing: run scripts/install-deps.sh test")
    redis, nats = redis_server(t), nats_server(t)
    ports = []
    for name in ("A", "B"):
        port = free_port()
        t.mcpd(conformance_config(t.dir, port, workers=2, extra=backends(t, redis, nats)),
               name=name + ".yaml").start(wait_url_port=port)
        ports.append(port)
    for port in ports:
        wait_for(lambda: all_ready(port), what="ready")
    conformance_behind_balancer(t, ports, " (nats)")
