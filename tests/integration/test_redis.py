"""Several mcpd instances sharing sessions through a real redis-server
(plugins/redis): storage and transport, in both transport modes. Each
instance is a separate master with its own workers and port, as on
separate hosts; only Redis and the request_state key are shared."""

import json
import os
import re
import signal
import socket
import threading
import time

from harness import (sid_hash, process_ended, TcpRelay, MCP_HEADERS, Redis, Skip, TestFailure, alive, call_tool, check, check_config_errors,
                     check_host_name, check_unresolvable, conformance_behind_balancer, conformance_config,
                     deleted_everywhere, down_and_back, free_port, http, key_file, mcp_session, node_peers_ready,
                     redis_server, rpc, run_unit_suite, serve, sse_events, start_instances, starts_before, storage_cache,
                     wait_for, with_storage_cache, workers_ready)

TOOLS = """
tools:
  - name: where
    description: The instance that runs the tool.
    shell: 'echo %(name)s'
  - name: slow
    description: Sleeps; writes its pid first.
    input: { pidfile: string }
    shell: 'echo $$ > "$MCP_ARG_pidfile"; exec sleep 30'
  - name: ask
    description: Asks the user.
    shell: 'a=$(mcpd-tool elicit "Go?" "{\\"type\\":\\"object\\"}") && printf "answer %%s" "$(mcpd-tool get action "$a")"'
  - name: chatty
    description: Five progress events, a little apart.
    shell: 'for i in 1 2 3 4 5; do mcpd-tool progress $i 5; sleep 0.15; done; echo done'
  - name: burst
    description: Three progress events at once, then a long wait.
    shell: 'for i in 1 2 3; do mcpd-tool progress $i 3; done; exec sleep 30'
  - name: change
    description: Says the tool list changed.
    shell: 'mcpd-tool changed tools && echo changed'
"""


def backends(t, redis, mode):
    return ("storage: { plugin: redis, url: \"%s\"%s }\n"
            "transport: { plugin: redis, url: \"%s\", mode: %s }\n"
            "request_state: { key_file: %s }\n" % (redis.url, storage_cache(t), redis.url, mode, key_file(t)))


def instances(t, redis, n=3, mode="pubsub", workers=2):
    """n instances, named A, B, C...; returns [(daemon, port)]."""
    return start_instances(t, n, lambda name: backends(t, redis, mode) + TOOLS % {"name": name}, workers)


def post_stream(port, sid, body):
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    data = json.dumps(body).encode()
    s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Accept: application/json, text/event-stream\r\nMcp-Session-Id: " + sid.encode() +
              b"\r\nMCP-Protocol-Version: 2025-11-25\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
    return s


def get_stream(port, sid, last_event_id=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    s.sendall(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: " +
              sid.encode() + b"\r\nMCP-Protocol-Version: 2025-11-25\r\n" +
              (b"Last-Event-ID: " + last_event_id.encode() + b"\r\n" if last_event_id else b"") + b"\r\n")
    return s


def read_until(s, needle, data=b""):
    while needle not in data:
        c = s.recv(65536)
        if not c:
            raise TestFailure("stream ended before %r:\n%r" % (needle, data[-800:]))
        data += c
    return data


def cancel_crosses(t, pa, pb, sid, tag, id=7):
    """A tool call streaming on A is cancelled by a notification sent to B:
    the tool's process dies."""
    pidfile = os.path.join(t.dir, "slow-" + tag)
    s = post_stream(pa, sid, {"jsonrpc": "2.0", "id": id, "method": "tools/call",
                               "params": {"name": "slow", "arguments": {"pidfile": pidfile}}})
    try:
        wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), what="the tool to start")
        tool = int(open(pidfile).read())
        st, _, _ = http(pb, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": id}}), dict(MCP_HEADERS, **{"Mcp-Session-Id": sid}))
        check(st == 202)
        wait_for(lambda: not alive(tool), timeout=5, what="the tool cancelled on another instance to die (%s)" % tag)
    finally:
        s.close()


def elicitation_crosses(pa, pb, sid, read=read_until):
    """A tool running on A asks the user; the client answers on B and the
    tool, on A, gets the answer."""
    s = post_stream(pa, sid, {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                               "params": {"name": "ask", "arguments": {}}})
    try:
        data = read(s, b"elicitation/create")
        ask = [json.loads(l[6:]) for l in data.decode().split("\n")
               if l.startswith("data: ") and "elicitation/create" in l][0]
        st, _, _ = http(pb, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": ask["id"],
                        "result": {"action": "accept", "content": {}}}),
                        dict(MCP_HEADERS, **{"Mcp-Session-Id": sid}))
        check(st == 202, "answer on B: %s" % st)
        data = read(s, b'"id":9', data)
    finally:
        s.close()
    check(b"answer accept" in data, data[-400:])


def resume_crosses(pa, pb, sid, tag="", read=read_until, events=5):
    """The client leaves A after two progress events of a tool call (chatty,
    which sends that many) and resumes on B from the last event id it saw:
    B replays what it missed from storage and relays the rest; nothing is
    lost or repeated."""
    s = post_stream(pa, sid, {"jsonrpc": "2.0", "id": 11, "method": "tools/call",
                               "params": {"name": "chatty", "arguments": {}, "_meta": {"progressToken": "p"}}})
    data = b""
    while data.count(b"notifications/progress") < 2:
        data = read(s, b"\n\n", data + s.recv(4096))
    before = [e for e in sse_events(re.sub(rb"\r\n[0-9a-f]+\r\n", b"", data.split(b"\r\n\r\n", 1)[1]))
              if e.get("data")]
    s.close()       # the connection to A is lost; the client tries B
    st, _, body = http(pb, "GET", "/mcp", None, {"Accept": "text/event-stream", "Mcp-Session-Id": sid,
                       "MCP-Protocol-Version": "2025-11-25", "Last-Event-ID": before[-1]["id"]}, timeout=20)
    check(st == 200, (st, body[:300]))
    got = [json.loads(e["data"]) for e in sse_events(body) if e.get("data")]
    seen = [json.loads(e["data"])["params"]["progress"] for e in before if "notifications/progress" in e["data"]]
    resumed = [m["params"]["progress"] for m in got if m.get("method") == "notifications/progress"]
    check(seen + resumed == list(range(1, events + 1)), "%sbefore %s, resumed on B %s" % (tag, seen, resumed))
    check(got[-1].get("id") == 11 and got[-1]["result"]["content"][0]["text"].strip() == "done", got)


def list_changed_crosses(pa, pb, sid, read=read_until, subscribed=None):
    """A GET stream held by A gets the list_changed caused by a call on B
    (subscribed(), if given, waits until A's subscription has reached the
    server)."""
    g = get_stream(pa, sid)
    try:
        data = read(g, b"\r\n\r\n")
        check(data.startswith(b"HTTP/1.1 200"), data[:200])
        if subscribed:
            subscribed()
        check(call_tool(pb, sid, "change") == "changed")
        read(g, b"notifications/tools/list_changed", data)
    finally:
        g.close()


def test_storage_suite_against_redis(t):
    """The unit suite every storage backend passes, against this server."""
    redis = redis_server(t)
    # Three backends (memory, lmdb, redis), ten checks each, and max_queued.
    run_unit_suite("storage", 35, env={"MCPD_TEST_REDIS_URL": redis.url},
                   unset=["MCPD_TEST_POSTGRES_URL", "MCPD_TEST_DYNAMODB_ENDPOINT"])


@with_storage_cache
def test_a_session_is_served_by_every_instance(t):
    redis = redis_server(t)
    for mode in ("pubsub", "streams"):
        (a, pa), (b, pb), (c, pc) = instances(t, redis, mode=mode)
        sid = mcp_session(pa)
        check(call_tool(pb, sid, "where") == "B" and call_tool(pc, sid, "where") == "C")
        for port in (pa, pb, pc):
            st, r, _ = rpc(port, sid, "tools/list", {})
            check(st == 200 and len(r["result"]["tools"]) == 6, (port, st, r))
        check(redis.cli("EXISTS", "mcpd:session:" + sid_hash(sid)) == "1", "no session record in Redis")
        deleted_everywhere(pb, sid, (pa, pb, pc))
        for d, _ in ((a, pa), (b, pb), (c, pc)):
            d.stop()


@with_storage_cache
def test_cancel_from_another_instance(t):
    redis = redis_server(t)
    for mode in ("pubsub", "streams"):
        (a, pa), (b, pb), (c, pc) = instances(t, redis, mode=mode)
        sid = mcp_session(pa)
        cancel_crosses(t, pa, pc, sid, mode)
        for d, _ in ((a, pa), (b, pb), (c, pc)):
            d.stop()


def test_a_cancellation_is_published_again(t):
    """A cancellation posted to an instance that does not run the call is
    published three times (at once, 250 ms and 1 s later): the worker
    running the call may not have its subscription to the session's
    control channel in effect yet when the first goes out (a cancel sent
    right after the call began was lost under load, with nats and amqp)."""
    redis = redis_server(t)
    (a, pa), (b, pb) = instances(t, redis, n=2)
    sid = mcp_session(pa)
    sub = socket.create_connection(("127.0.0.1", redis.port), timeout=5)
    try:
        sub.sendall(b"*2\r\n$10\r\nPSUBSCRIBE\r\n$10\r\n*control:*\r\n")
        data = b""
        while b"psubscribe" not in data:
            data += sub.recv(4096)
        cancel_crosses(t, pa, pb, sid, "again", id=11)
        deadline = time.monotonic() + 2.5         # the last at 1 s, and no fourth
        while data.count(b"pmessage") < 4 and time.monotonic() < deadline:
            sub.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data += sub.recv(65536)
            except socket.timeout:
                break
        n = data.count(b"pmessage")
        check(n == 3, "the cancellation was published %d times, not 3: %r" % (n, data[-600:]))
    finally:
        sub.close()
    for d, _ in ((a, pa), (b, pb)):
        d.stop()


@with_storage_cache
def test_elicitation_answered_on_another_instance(t):
    redis = redis_server(t)
    for mode in ("pubsub", "streams"):
        (a, pa), (b, pb) = instances(t, redis, n=2, mode=mode)
        sid = mcp_session(pa, caps={"elicitation": {}})
        elicitation_crosses(pa, pb, sid)
        a.stop()
        b.stop()


@with_storage_cache
def test_resume_on_another_instance(t):
    redis = redis_server(t)
    for mode in ("pubsub", "streams"):
        (a, pa), (b, pb) = instances(t, redis, n=2, mode=mode)
        sid = mcp_session(pa)
        resume_crosses(pa, pb, sid, mode + ": ")
        a.stop()
        b.stop()


@with_storage_cache
def test_list_changed_reaches_every_instance(t):
    redis = redis_server(t)
    (a, pa), (b, pb) = instances(t, redis, n=2, mode="streams")
    list_changed_crosses(pa, pb, mcp_session(pa))
    a.stop()
    b.stop()


def test_resume_after_an_instance_is_killed(t):
    """A's tool sends three progress events; the client reads the first,
    A is killed (SIGKILL, master and workers) with the rest unread, and
    the client resumes on B from the last id it has: nothing is lost."""
    redis = redis_server(t)
    (a, pa), (b, pb), (c, pc) = instances(t, redis, mode="streams")
    sid = mcp_session(pa)
    s = post_stream(pa, sid, {"jsonrpc": "2.0", "id": 21, "method": "tools/call",
                               "params": {"name": "burst", "arguments": {}, "_meta": {"progressToken": "k"}}})
    data = read_until(s, b'"progress":1,')
    ids = [e["id"] for e in sse_events(re.sub(rb"\r\n[0-9a-f]+\r\n", b"", data.split(b"\r\n\r\n", 1)[1]))
           if '"progress":1,' in e.get("data", "")]
    wait_for(lambda: redis.cli("XLEN", "mcpd:events:" + sid_hash(sid)) is not None and
             "progress\":3" in (redis.cli("EVAL", "return table.concat(redis.call('LRANGE', KEYS[1], 0, -1), '|')",
                                          "1", "mcpd:events:" + sid_hash(sid)) or ""), what="A to log all three events")
    a.kill()
    s.close()
    g = get_stream(pb, sid, ids[-1])
    data = read_until(g, b'"progress":3,')
    g.close()
    got = [json.loads(e["data"])["params"]["progress"] for e in sse_events(data.split(b"\r\n\r\n", 1)[1]
           .replace(b"\r\n", b"\n")) if e.get("data") and "progress" in e["data"]]
    check(got == [2, 3], "resumed on B after A was killed: %s" % got)
    # The session itself goes on everywhere.
    check(call_tool(pb, sid, "where", id=2) == "B" and call_tool(pc, sid, "where", id=3) == "C")
    b.stop()
    c.stop()


def test_streams_mode_loses_nothing_while_a_reader_reconnects(t):
    """Every connection reading streams is cut (CLIENT KILL) and a change is
    published before the readers are back: the GET stream still gets it."""
    redis = redis_server(t)
    (a, pa), (b, pb) = instances(t, redis, n=2, mode="streams")
    sid = mcp_session(pa)
    g = get_stream(pa, sid)
    data = read_until(g, b"\r\n\r\n")
    for line in (redis.cli("CLIENT", "LIST") or "").splitlines():
        if "cmd=xread" in line:
            redis.cli("CLIENT", "KILL", "ID", re.search(r"\bid=(\d+)", line).group(1))
    check(call_tool(pb, sid, "change") == "changed")
    read_until(g, b"notifications/tools/list_changed", data)
    g.close()
    wait_for(lambda: "stream reader): connected again" in a.log(), what="A's reader to reconnect")
    a.stop()
    b.stop()


def test_unix_socket(t):
    redis = redis_server(t, start=False)
    sock = os.path.join(redis.dir, "redis.sock")
    redis.extra = ["--unixsocket", sock, "--unixsocketperm", "700"]
    redis.start()
    port = free_port()
    url = "unix:" + sock
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\nstorage: { plugin: redis, url: \"%s\", database: 2 }\n"
               "transport: { plugin: redis, url: \"%s\" }\n%s" % (port, url, url, TOOLS % {"name": "U"}))
    d.start(wait_url_port=port)
    wait_for(lambda: http(port, "GET", "/readyz")[0] == 200, what="ready")
    sid = mcp_session(port)
    check(call_tool(port, sid, "where") == "U")
    keyspace = redis.cli("INFO", "keyspace") or ""
    check("db2:keys=" in keyspace and "db0:" not in keyspace, keyspace)
    d.stop()


def test_a_host_name(t):
    """redis://localhost:PORT: the name is looked up on the worker's loop
    (evdns, from /etc/hosts), storage and transport connect and serve."""
    redis = redis_server(t)
    url = redis.url.replace("127.0.0.1", "localhost")
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\nstorage: { plugin: redis, url: \"%s\" }\n"
               "transport: { plugin: redis, url: \"%s\", mode: streams }\nrequest_state: { key_file: %s }\n%s"
               % (port, url, url, key_file(t), TOOLS % {"name": "L"}))
    d.start(wait_url_port=port)
    check_host_name(d, port)
    d.stop()


def test_a_host_name_that_does_not_resolve(t):
    """A name that does not resolve is reported like a server that is down
    (harness.check_unresolvable)."""
    port = free_port()
    url = "redis://no-such-host.invalid:6379/0"
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\nstorage: { plugin: redis, url: \"%s\", connect_timeout: 2s }\n"
               "transport: { plugin: redis, url: \"%s\" }\n%s" % (port, url, url, TOOLS % {"name": "N"}))
    d.start(wait_url_port=port)
    check_unresolvable(d, port)
    d.stop()


def test_redis_restart_under_load(t):
    """Redis goes away while two instances serve a stream of requests: they
    answer 503 meanwhile (never crash or hang), /readyz says why, and
    once Redis is back every session and every cross-instance path works."""
    redis = redis_server(t)
    for mode in ("pubsub", "streams"):
        (a, pa), (b, pb) = instances(t, redis, n=2, mode=mode)
        sid = mcp_session(pa)
        down_and_back(redis, (pa, pb), sid, b"redis", daemons=(a, b))
        # Subscriptions were made again: cancel and answers cross instances.
        cancel_crosses(t, pa, pb, sid, "restart-" + mode, id=5)
        check(call_tool(pb, sid, "where", id=6) == "B")
        for d in (a, b):
            d.stop()


def test_starts_before_redis(t):
    """An instance whose Redis is not up yet starts, is not ready, and
    becomes ready without a restart."""
    redis = redis_server(t, start=False)
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\n%s%s" % (port, backends(t, redis, "pubsub"),
               TOOLS % {"name": "A"}))
    d.start(wait_url_port=port)
    starts_before(redis, [port], b"cannot connect", initialize=True)
    sid = mcp_session(port)
    check(call_tool(port, sid, "where") == "A")
    d.stop()


def test_configuration_errors(t):
    check_config_errors(t, [
        ("storage: { plugin: redis, url: \"http://x\" }\n", r"bad\.yaml:\d+.*url"),
        ("storage: { plugin: redis, url: \"rediss://x\" }\n", r"bad\.yaml:\d+.*rediss:// needs hiredis with TLS"),
        ("storage: { plugin: redis, database: x }\n", r"bad\.yaml:\d+.*database must be"),
        ("storage: { plugin: redis, url: \"redis://127.0.0.1:0\" }\n", r"bad\.yaml:\d+.*port"),
        ("storage: { plugin: redis, colour: red }\n", r"bad\.yaml:\d+.*colour"),
        ("transport: { plugin: redis, mode: carrier-pigeon }\n", r"bad\.yaml:\d+.*mode"),
        ("transport: { plugin: redis, mode: streams, stream_maxlen: 0 }\n", r"bad\.yaml:\d+.*stream_maxlen"),
    ])


@with_storage_cache
def test_conformance_behind_a_balancer(t):
    """The official conformance suite through a round-robin balancer over
    two instances sharing Redis: every new connection of a scenario may
    land on the other instance."""
    if not node_peers_ready():
        raise Skip("tests/node/node_modules missing: run scripts/install-deps.sh test")
    redis = redis_server(t)
    ports = []
    for name in ("A", "B"):
        port = free_port()
        t.mcpd(conformance_config(t.dir, port, workers=2, extra=backends(t, redis, "streams")),
               name=name + ".yaml").start(wait_url_port=port)
        ports.append(port)
    conformance_behind_balancer(t, ports, "")


def test_an_answer_that_outran_the_subscription_is_found_in_storage(t):
    """Answers are stored as well as published: an answer whose message the
    asking worker never got (published before its subscription reached
    the transport, or lost while a pub/sub connection was redone) is
    found in storage. Simulated by storing it without publishing."""
    redis = redis_server(t)
    (a, pa), = instances(t, redis, n=1, mode="pubsub")
    sid = mcp_session(pa, caps={"elicitation": {}})
    s = post_stream(pa, sid, {"jsonrpc": "2.0", "id": 31, "method": "tools/call",
                               "params": {"name": "ask", "arguments": {}}})
    data = read_until(s, b"elicitation/create")
    data = read_until(s, b"\n", data)
    line = [l for l in data.decode().split("\n") if "elicitation/create" in l][-1]
    qid = json.loads(line[line.index("{"):])["id"]
    check(redis.cli("SET", "mcpd:answer:%s:%s" % (sid_hash(sid), qid),
                    json.dumps({"result": {"action": "accept", "content": {}}})) == "OK")
    data = read_until(s, b'"id":31', data)
    s.close()
    check(b"answer accept" in data, data[-300:])
    a.wait_log("was found in storage")
    wait_for(lambda: redis.cli("EXISTS", "mcpd:answer:%s:%s" % (sid_hash(sid), qid)) == "0", what="the answer removed")
    a.stop()


@with_storage_cache
def test_delete_from_another_instance_while_a_stream_opens(t):
    """A GET stream whose replay is still being read from Redis when the
    session is deleted on another instance: the GET gets 404 or an ended
    stream, and no worker dies (this was a use-after-free)."""
    redis = redis_server(t)
    (a, pa), (b, pb) = instances(t, redis, n=2, mode="streams")
    for i in range(40):
        sid = mcp_session(pa)
        g = get_stream(pa, sid)
        st, _, _ = http(pb, "DELETE", "/mcp", None, {"Mcp-Session-Id": sid})
        check(st == 200)
        g.settimeout(10)
        data = b""
        try:
            while True:
                c = g.recv(65536)
                if not c:
                    break
                data += c
                if data.endswith(b"0\r\n\r\n") or (data.startswith(b"HTTP/1.1 404") and b"\r\n\r\n" in data):
                    break
        finally:
            g.close()
        check(data.startswith((b"HTTP/1.1 200", b"HTTP/1.1 404")), data[:200])
    for d in (a, b):
        check("exited with status" not in d.log() and "killed by signal" not in d.log(), d.log()[-2000:])
        d.stop()


def test_a_hung_redis_is_dropped(t):
    """Redis stops answering (SIGSTOP) without closing its connections: the
    watchdog drops them after command_timeout, the request waiting gets
    503, /readyz says not ready; when Redis answers again, all is well."""
    redis = redis_server(t)
    port = free_port()
    extra = backends(t, redis, "streams").replace("\" }\n", "\", command_timeout: 500ms }\n", 1)
    check("command_timeout" in extra, extra)
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\n%s%s" % (port, extra, TOOLS % {"name": "A"}))
    d.start(wait_url_port=port)
    wait_for(lambda: http(port, "GET", "/readyz")[0] == 200, what="ready")
    sid = mcp_session(port)
    os.kill(redis.proc.pid, signal.SIGSTOP)
    try:
        st, r, _ = rpc(port, sid, "ping", timeout=15)
        check(st == 503 and "unavailable" in json.dumps(r), (st, r))
        wait_for(lambda: http(port, "GET", "/readyz")[0] == 503, timeout=5, what="/readyz to say not ready")
        d.wait_log("did not answer within 500ms")
    finally:
        os.kill(redis.proc.pid, signal.SIGCONT)
    wait_for(lambda: all(http(port, "GET", "/readyz")[0] == 200 for _ in range(3)), timeout=15, what="ready again")
    wait_for(lambda: rpc(port, sid, "ping")[0] == 200, timeout=10, what="the session to answer again")
    check(call_tool(port, sid, "where", id=3) == "A")
    d.stop()


def test_storage_behind_a_flooding_tool(t):
    """Redis stops answering while a tool sends its session's stream
    100 MB of log messages: what waits for storage to number it stays
    under limits.stream_buffer (the rest is dropped, and the log says so),
    so the worker does not grow with the flood (its peak RSS, from /proc);
    once Redis answers, the call's answer arrives."""
    redis = redis_server(t)
    port = free_port()
    extra = backends(t, redis, "streams").replace("\" }\n", "\", command_timeout: 60s }\n", 1)
    check("command_timeout" in extra, extra)
    pidfile, go = os.path.join(t.dir, "pid"), os.path.join(t.dir, "go")
    cfg = ("listen: [127.0.0.1:%d]\nworkers: 1\nlimits: { stream_buffer: 4MiB }\n%s"
           "tools:\n  - name: flood\n    description: 1000 log messages of 100 KB, straight to fd 3.\n"
           "    shell: |\n"
           "      echo $$ > %s\n"
           "      while [ ! -e %s ]; do sleep 0.05; done\n"
           "      line=$(head -c 100000 /dev/zero | tr '\\0' x)\n"
           "      yes '{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",'\\\n"
           "      '\"params\":{\"level\":\"info\",\"data\":\"'$line'\"}}' | head -n 1000 >&3\n"
           "      echo said\n" % (port, extra, pidfile, go))
    env = {"ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=8"]))}
    d = t.mcpd(cfg).start(env=env, wait_url_port=port)
    wait_for(lambda: http(port, "GET", "/readyz")[0] == 200, what="ready")
    worker = wait_for(lambda: len(d.workers()) == 1 and d.workers()[0], what="the worker")
    sid = mcp_session(port)
    with open("/proc/%d/status" % worker) as f:
        before = int([l for l in f if l.startswith("VmHWM:")][0].split()[1])
    out = {}
    caller = threading.Thread(target=lambda: out.update(r=rpc(port, sid, "tools/call", {"name": "flood"},
                                                               id=9, timeout=120)))
    caller.start()
    pid = wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip() and
                   int(open(pidfile).read()), what="the tool to start")
    os.kill(redis.proc.pid, signal.SIGSTOP)
    try:
        open(go, "w").close()
        wait_for(lambda: process_ended(pid), timeout=60, what="the tool to end")
        time.sleep(0.5)
        with open("/proc/%d/status" % worker) as f:
            grown = int([l for l in f if l.startswith("VmHWM:")][0].split()[1]) - before
        check(grown < 48 * 1024, "the worker grew by %d KiB while storage was behind" % grown)
        d.wait_log(r"storage is behind: more than limits\.stream_buffer \(4194304 bytes\) of stream \S+ "
                   r"waits for it; dropping the stream's messages until it catches up")
    finally:
        os.kill(redis.proc.pid, signal.SIGCONT)
    caller.join(120)
    st, r, msgs = out["r"]
    check(st == 200 and r["result"]["content"][0]["text"].strip() == "said", (st, r))
    check(len(msgs) < 1000, "%d messages" % len(msgs))
    d.wait_log(r"stream \S+: \d+ messages dropped while storage was behind")
    d.stop()


class HoldingProxy(TcpRelay):
    """A TCP proxy in front of Redis that, once told to, keeps back every
    reply on a connection after that connection has sent LRANGE (the
    read of an event log for a replay): storage slow to answer a
    resumption, and only that."""

    def __init__(self, upstream_port):
        self.hold = False
        self.holding = threading.Event()        # an LRANGE's reply is held
        self.release = threading.Event()
        super().__init__(upstream_port)

    def forward(self, data, to_server, state):
        if to_server and self.hold and b"LRANGE" in data:
            state["held"] = True
            self.holding.set()
        while not to_server and state.get("held") and not self.release.wait(0.05):
            pass
        return data

    def close(self):
        self.release.set()
        super().close()


def test_events_during_a_slow_replay_are_bounded(t):
    """A client resumes a request's stream on B while the tool, on A, sends
    40 MB of log messages, and B's storage is slow to read the log for the
    replay: what arrives meanwhile waits in B for the replay only up to
    limits.stream_buffer (it was kept whole); past it B lets it go (it is
    in the log), writes the replay, closes the stream and says so, and
    the client, resuming from what it got, has every message and the
    answer in the end."""
    redis = serve(t, Redis(t.dir), start=False)
    redis.extra = ["--appendonly", "no"]
    redis.start()
    proxy = HoldingProxy(redis.port)
    go, done = os.path.join(t.dir, "go"), os.path.join(t.dir, "done")
    n = 400
    tool = ("tools:\n  - name: flood\n    description: A first message, then 400 of 100 KB, straight to fd 3.\n"
            "    shell: |\n"
            "      mcpd-tool log info first\n"
            "      while [ ! -e %s ]; do sleep 0.05; done\n"
            "      line=$(head -c 100000 /dev/zero | tr '\\0' x)\n"
            "      yes '{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",'\\\n"
            "      '\"params\":{\"level\":\"info\",\"data\":\"'$line'\"}}' | head -n %d >&3\n"
            "      touch %s; echo said\n" % (go, n, done))
    common = "sse: { history: 5000 }\nrequest_state: { key_file: %s }\n%s" % (key_file(t), tool)
    pa, pb = free_port(), free_port()
    a = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\nlimits: { stream_buffer: 64MiB }\n"
               "storage: { plugin: redis, url: \"%s\" }\ntransport: { plugin: redis, url: \"%s\" }\n%s"
               % (pa, redis.url, redis.url, common), name="A.yaml").start(wait_url_port=pa)
    env = {"ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=8"]))}
    b = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\nlimits: { stream_buffer: 1MiB }\n"
               "storage: { plugin: redis, url: \"redis://127.0.0.1:%d/0\", command_timeout: 60s }\n"
               "transport: { plugin: redis, url: \"%s\" }\n%s"
               % (pb, proxy.port, redis.url, common), name="B.yaml").start(env=env, wait_url_port=pb)
    try:
        for port in (pa, pb):
            wait_for(lambda: http(port, "GET", "/readyz")[0] == 200, what="ready")
        sid = mcp_session(pa)
        s = post_stream(pa, sid, {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                                  "params": {"name": "flood", "arguments": {}}})
        data = read_until(s, b'"data":"first"')
        first = re.findall(rb"id: (\S+)\nevent: message\ndata: [^\n]*\"first\"", data)[0].decode()
        s.close()           # the client leaves A, and resumes on B
        worker = wait_for(lambda: len(b.workers()) == 1 and b.workers()[0], what="B's worker")
        before = int([l for l in open("/proc/%d/status" % worker) if l.startswith("VmHWM:")][0].split()[1])
        channels = len(redis.cli("PUBSUB", "CHANNELS") or "")
        proxy.hold = True
        g = get_stream(pb, sid, first)
        check(proxy.holding.wait(10), "B did not read the log")
        wait_for(lambda: len(redis.cli("PUBSUB", "CHANNELS") or "") > channels, what="B to subscribe")
        open(go, "w").close()
        wait_for(lambda: os.path.exists(done), timeout=60, what="the tool to end")
        wait_for(lambda: redis.cli("LLEN", "mcpd:events:" + sid_hash(sid)) == str(n + 3), timeout=30,
                 what="A to record every event")
        time.sleep(1)       # A publishes each as it is recorded
        grown = int([l for l in open("/proc/%d/status" % worker) if l.startswith("VmHWM:")][0].split()[1]) - before
        proxy.release.set()
        check(grown < 20 * 1024, "B grew by %d KiB while its replay was read" % grown)
        b.wait_log(r"stream \S+: more than limits\.stream_buffer \(1048576 bytes\) came while its replay "
                   r"was read from storage; it will close after the replay, for the client to resume")
        # The client resumes from what it got, as often as it takes.
        got, last = [], first
        for _ in range(200):
            g.settimeout(15)
            body = b""
            while not body.endswith(b"\r\n0\r\n\r\n"):     # cut short, or ended
                c = g.recv(65536)
                if not c:
                    break
                body += c
            g.close()
            events = [e for e in sse_events(re.sub(rb"\r\n[0-9a-f]+\r\n", b"", body.split(b"\r\n\r\n", 1)[-1]))
                      if e.get("data")]
            got += [json.loads(e["data"]) for e in events]
            if got and got[-1].get("id") == 9:
                break
            last = events[-1]["id"] if events else last
            g = get_stream(pb, sid, last)
        logs = [m for m in got if m.get("method") == "notifications/message"]
        check(len(logs) == n and got[-1].get("id") == 9 and
              got[-1]["result"]["content"][0]["text"].strip() == "said",
              (len(logs), got[-1] if got else None))
    finally:
        proxy.close()
    a.stop()
    b.stop()


def test_stopping_with_storage_calls_in_flight(t):
    """The worker stops while its storage calls wait for Redis (the
    clients that caused them gone): it exits on its own. Detaching the
    plugin drops those calls without calling back into the sessions the
    worker has already freed (this was a SIGSEGV at every few stops with
    Redis behind a 5 ms network)."""
    redis = redis_server(t)
    for mode in ("pubsub", "streams"):
        port = free_port()
        d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\n%s%s" % (port, backends(t, redis, mode),
                   TOOLS % {"name": "A"}), name="%s.yaml" % mode)
        d.start(wait_url_port=port)
        workers_ready(port, 1)
        sid = mcp_session(port)
        check(call_tool(port, sid, "where") == "A")
        # Redis holds every command for a while: each call's session read
        # waits; its client leaves before the answer (499).
        check(redis.cli("CLIENT", "PAUSE", "1500", "ALL") == "OK")
        socks = [post_stream(port, sid, {"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call",
                                         "params": {"name": "where", "arguments": {}}}) for i in range(8)]
        time.sleep(0.3)
        for s in socks:
            s.close()
        time.sleep(0.1)
        d.stop()
        check(d.worker_deaths() == [], "a worker did not stop cleanly (%s):\n%s"
              % (mode, "\n".join(d.worker_deaths()) + "\n" + d.log()[-3000:]))
        check(re.search(r"worker 1 \(pid \d+\) finished", d.log()), d.log()[-2000:])
        wait_for(lambda: redis.cli("PING") == "PONG", what="redis to answer again")
