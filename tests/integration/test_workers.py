"""Sessions shared by every worker: workers: 4 and a new connection per
request, so that the kernel spreads them. Where a check needs two
different workers, the scenario repeats until the access log shows it."""

import json
import os
import re
import signal
import socket
import time

from harness import (MCP_HEADERS, TestFailure, alive, check, free_port, http, mcp_session, rpc, sse_events,
                     status_of, wait_for)

TOOLS = """
tools:
  - name: whoami
    description: The worker that runs the tool.
    shell: 'echo $PPID'
  - name: slow
    description: Sleeps; writes worker and own pid first.
    input: { pidfile: string }
    shell: 'echo "$PPID $$" > "$MCP_ARG_pidfile"; exec sleep 30'
  - name: family
    description: Sleeps in a child and a grandchild; writes worker, own and child pids first.
    input: { pidfile: string }
    shell: 'sleep 30 & echo "$PPID $$ $!" > "$MCP_ARG_pidfile"; wait'
  - name: pause
    description: One progress event, then a pause, then the answer; writes the worker's pid first.
    input: { pidfile: string, seconds: number }
    shell: 'echo $PPID > "$MCP_ARG_pidfile"; mcpd-tool progress 1 2; sleep "$MCP_ARG_seconds"; echo late'
  - name: ask
    description: Asks the user.
    shell: 'a=$(mcpd-tool elicit "Go?" "{\\"type\\":\\"object\\"}") && printf "answer %s" "$(mcpd-tool get action "$a")"'
  - name: chatty
    description: Five progress events, a little apart.
    shell: 'for i in 1 2 3 4 5; do mcpd-tool progress $i 5; sleep 0.1; done; echo done'
"""


def start(t, workers=4, extra="", port=None):
    port = port or free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: %d\n%s%s" % (port, workers, extra, TOOLS))
    d.start(wait_url_port=port)
    wait_for(lambda: len(d.workers()) == workers, what="%d workers" % workers)
    return d, port


def worker_of(d, method_re):
    """Pids of workers whose access log lines match."""
    return set(int(p) for p in re.findall(r"worker \d+\[(\d+)\]: .*" + method_re, d.log()))


def whoami(port, sid, i=1):
    st, r, _ = rpc(port, sid, "tools/call", {"name": "whoami", "arguments": {}}, id=i)
    check(st == 200 and "result" in r, (st, r))
    return int(r["result"]["content"][0]["text"])


def test_a_session_is_served_by_every_worker(t):
    d, port = start(t)
    sid = mcp_session(port)
    seen = set(whoami(port, sid, i) for i in range(60))
    check(seen <= set(d.workers()), "answers from unknown pids %s" % seen)
    check(len(seen) >= 2, "all 60 connections went to one worker; the test proves nothing")
    # Every request of the session found it, wherever it landed.
    check(" 404 " not in d.log())
    d.stop()


def post_stream(port, sid, body):
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    data = json.dumps(body).encode()
    s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Accept: application/json, text/event-stream\r\nMcp-Session-Id: " + sid.encode() +
              b"\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
    return s


def test_cancel_posted_to_another_worker(t):
    d, port = start(t)
    sid = mcp_session(port)
    for attempt in range(20):
        pidfile = os.path.join(t.dir, "slow%d" % attempt)
        rid = 100 + attempt
        s = post_stream(port, sid, {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                                     "params": {"name": "slow", "arguments": {"pidfile": pidfile}}})
        wait_for(lambda: os.path.exists(pidfile) and len(open(pidfile).read().split()) == 2,
                 what="the tool to start")
        wpid, tpid = map(int, open(pidfile).read().split())
        before = len(re.findall("notifications/cancelled", d.log()))
        st, _, _ = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": rid}}), dict(MCP_HEADERS, **{"Mcp-Session-Id": sid}))
        check(st == 202)
        t0 = time.monotonic()
        wait_for(lambda: not alive(tpid), timeout=5, what="the cancelled tool to die")
        took = time.monotonic() - t0
        s.close()
        d.wait_log("notifications/cancelled", count=before + 1)
        lines = re.findall(r"worker \d+\[(\d+)\]: .*notifications/cancelled", d.log())
        if int(lines[-1]) != wpid:
            check(took < 1.5, "cancel took %.2fs" % took)
            d.stop()
            return
    raise TestFailure("the cancel never landed on another worker in 20 tries")


def test_elicitation_answered_on_another_worker(t):
    d, port = start(t)
    sid = mcp_session(port, caps={"elicitation": {}})
    for attempt in range(20):
        rid = 200 + attempt
        s = post_stream(port, sid, {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                                     "params": {"name": "ask", "arguments": {}}})
        data = b""
        while b"elicitation/create" not in data:
            data += s.recv(4096)
        ask = [json.loads(l[6:]) for l in data.decode().split("\n")
               if l.startswith("data: ") and "elicitation/create" in l][0]
        asked_by = int(ask["id"].split(".")[0], 16)     # ids are "<worker pid hex>.<n>"
        st, _, _ = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": ask["id"],
                        "result": {"action": "accept", "content": {}}}),
                        dict(MCP_HEADERS, **{"Mcp-Session-Id": sid}))
        check(st == 202)
        while b'"id":%d' % rid not in data:
            c = s.recv(4096)
            if not c:
                break
            data += c
        s.close()
        check(b"answer accept" in data, data[-400:])
        answered = re.findall(r"worker \d+\[(\d+)\]: .*\" 202 .* response", d.log())
        if int(answered[-1]) != asked_by:
            d.stop()
            return
    raise TestFailure("the answer never landed on another worker in 20 tries")


def test_resume_on_another_worker(t):
    d, port = start(t)
    sid = mcp_session(port)
    for attempt in range(20):
        rid = 300 + attempt
        s = post_stream(port, sid, {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                                     "params": {"name": "chatty", "arguments": {}, "_meta": {"progressToken": "p"}}})
        data = b""
        while data.count(b"notifications/progress") < 2:
            data += s.recv(4096)
        events = [e for e in sse_events(re.sub(rb"\r\n[0-9a-f]+\r\n", b"", data.split(b"\r\n\r\n", 1)[1]))
                  if e.get("data")]
        last = events[-1]["id"]
        stream_pid = int(last.split("x")[0], 16)     # stream ids are "<worker pid hex>x<n>"
        s.close()       # the client loses the connection mid-stream
        st, hdrs, body = http(port, "GET", "/mcp", None, {"Accept": "text/event-stream", "Mcp-Session-Id": sid,
                              "Last-Event-ID": last}, timeout=15)
        got = [json.loads(e["data"]) for e in sse_events(body) if e.get("data")]
        progress = [m["params"]["progress"] for m in got if m.get("method") == "notifications/progress"]
        check(got and got[-1].get("id") == rid and got[-1]["result"]["content"][0]["text"] == "done", got)
        check(progress == list(range(progress[0], 6)) if progress else True, progress)
        seen = [m["params"]["progress"] for m in
                (json.loads(e["data"]) for e in events) if m.get("method") == "notifications/progress"]
        check(seen + progress == [1, 2, 3, 4, 5], "before %s, resumed %s" % (seen, progress))
        # The access log line is written as the stream ends: maybe just
        # after the client saw it end.
        d.wait_log(r"worker \d+\[(\d+)\]: .*\"GET /mcp.*stream", count=attempt + 1)
        gets = re.findall(r"worker \d+\[(\d+)\]: .*\"GET /mcp.*stream", d.log())
        if int(gets[-1]) != stream_pid:
            d.stop()
            return
    raise TestFailure("the resume never landed on another worker in 20 tries")


def test_sessions_survive_a_killed_worker_and_a_restart(t):
    state = os.path.join(t.dir, "keep")
    port = free_port()
    extra = "storage: { plugin: lmdb, path: %s }\n" % state
    d, port = start(t, extra=extra, port=port)
    sid = mcp_session(port)
    victim = whoami(port, sid)
    os.kill(victim, signal.SIGKILL)
    d.wait_log(r"\(pid %d\) killed by signal 9" % victim)
    wait_for(lambda: len(d.workers()) == 4, what="the replacement worker")
    for i in range(12):
        check(whoami(port, sid, i) != victim)
    d.stop()
    # A full restart: the same storage, the same session.
    d2 = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\n%s%s" % (port, extra, TOOLS), name="again.yaml")
    d2.start(wait_url_port=port)
    whoami(port, sid)
    st, r, _ = rpc(port, sid, "tools/list", {})
    check(st == 200 and len(r["result"]["tools"]) == 6, (st, r))
    d2.stop()


def test_tools_die_with_a_killed_worker(t):
    """A worker killed by SIGKILL cannot stop its commands: the master
    does, the command and what it started."""
    d, port = start(t, workers=2)
    sid = mcp_session(port)
    pidfile = os.path.join(t.dir, "family")
    s = post_stream(port, sid, {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                 "params": {"name": "family", "arguments": {"pidfile": pidfile}}})
    wait_for(lambda: os.path.exists(pidfile) and len(open(pidfile).read().split()) == 3,
             what="the tool to start")
    worker, shell, sleep = map(int, open(pidfile).read().split())
    check(worker in d.workers() and alive(shell) and alive(sleep))
    os.kill(worker, signal.SIGKILL)
    d.wait_log(r"\(pid %d\) killed by signal 9" % worker)
    wait_for(lambda: not alive(shell) and not alive(sleep), timeout=5,
             what="the tool (pid %d) and its child (pid %d) to die with their worker" % (shell, sleep))
    # The shell and its sleep, or only one of them when the other was
    # already on its way out: the count depends on timing, the deaths not.
    d.wait_log(r"worker \d \(pid %d\) left [12] command process(es)? running; killed" % worker)
    s.close()
    # The replacement serves the session.
    wait_for(lambda: len(d.workers()) == 2, what="the replacement worker")
    check(whoami(port, sid) in d.workers())
    d.stop()


def stream_events(data):
    """The events of a raw chunked SSE response read so far."""
    body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    return sse_events(re.sub(rb"(^|\r\n)[0-9a-f]+\r\n", b"", body))


def read_stream(s, pred, timeout):
    """Read until pred(data) or the end of the response; (data, ended)."""
    data = b""
    deadline = time.monotonic() + timeout
    while not pred(data):
        if data.endswith(b"\r\n0\r\n\r\n"):
            return data, True
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        s.settimeout(left)
        try:
            c = s.recv(4096)
        except socket.timeout:
            return data, False
        if not c:
            return data, True
        data += c
    return data, False


def resume(port, sid, last):
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    s.sendall(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: "
              + sid.encode() + b"\r\nLast-Event-ID: " + last.encode() + b"\r\n\r\n")
    return s


def start_paused(t, port, sid, rid, seconds):
    """A call that streams one progress event, then pauses: (socket,
    worker pid, the progress event's id)."""
    pidfile = os.path.join(t.dir, "pause%d" % rid)
    s = post_stream(port, sid, {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                                 "params": {"name": "pause", "arguments": {"pidfile": pidfile, "seconds": seconds},
                                            "_meta": {"progressToken": "p"}}})
    data, _ = read_stream(s, lambda b: b"notifications/progress" in b and b.endswith(b"\n\n\r\n"), 10)
    events = [e for e in stream_events(data) if e.get("data")]
    check(events and "progress" in events[-1]["data"], data)
    return s, int(open(pidfile).read()), events[-1]["id"]


def test_resumed_stream_of_a_lost_request_ends(t):
    """The worker running a request dies: a client that resumes its
    stream is answered with an error once nothing more can come, instead
    of a stream that never ends; later resumptions get it at once."""
    d, port = start(t, workers=2, extra="sse: { keepalive: 1s }\n")
    sid = mcp_session(port)
    s, worker, last = start_paused(t, port, sid, 7, 30)
    os.kill(worker, signal.SIGKILL)
    d.wait_log(r"\(pid %d\) killed by signal 9" % worker)
    s.close()
    t0 = time.monotonic()
    r = resume(port, sid, last)
    data, ended = read_stream(r, lambda b: False, 15)
    r.close()
    took = time.monotonic() - t0
    check(ended, "the resumed stream of a lost request did not end in 15s: %r" % data[-300:])
    got = [json.loads(e["data"]) for e in stream_events(data) if e.get("data")]
    check(len(got) == 1 and got[0]["id"] == 7 and got[0]["error"]["code"] == -32603, got)
    check("lost" in got[0]["error"]["message"], got)
    check(2 <= took < 8, "ended after %.1fs (3 keep-alive periods expected)" % took)
    d.wait_log("its request is lost")
    # The answer is in the log now: another resumption ends at once.
    t0 = time.monotonic()
    r = resume(port, sid, last)
    data, ended = read_stream(r, lambda b: False, 5)
    r.close()
    again = [json.loads(e["data"]) for e in stream_events(data) if e.get("data")]
    check(ended and again == got and time.monotonic() - t0 < 1, (ended, again))
    d.stop()


def test_resumed_stream_of_a_slow_request_waits_for_it(t):
    """A request still running on its worker is not taken for lost while it
    says nothing for longer than that: its worker tells the resumed stream,
    wherever it is held, that it still runs."""
    d, port = start(t, extra="sse: { keepalive: 1s }\n")
    sid = mcp_session(port)
    for attempt in range(10):
        rid = 400 + attempt
        s, worker, last = start_paused(t, port, sid, rid, 4.5)
        s.close()
        r = resume(port, sid, last)
        data, ended = read_stream(r, lambda b: False, 15)
        r.close()
        got = [json.loads(e["data"]) for e in stream_events(data) if e.get("data")]
        check(ended and got and got[-1].get("id") == rid, got)
        check(got[-1].get("result", {}).get("content", [{}])[0].get("text") == "late", got)
        d.wait_log(r"worker \d+\[(\d+)\]: .*\"GET /mcp.*stream", count=attempt + 1)
        gets = re.findall(r"worker \d+\[(\d+)\]: .*\"GET /mcp.*stream", d.log())
        if int(gets[-1]) != worker:
            check("its request is lost" not in d.log())
            d.stop()
            return
    raise TestFailure("the resume never landed on another worker in 10 tries")


def test_expired_session_is_404_everywhere(t):
    d, port = start(t, extra="limits: { session_idle_timeout: 1s }\n")
    sid = mcp_session(port)
    whoami(port, sid)
    time.sleep(2.2)
    for i in range(12):
        st, r, _ = rpc(port, sid, "ping", id=i)
        check(st == 404, "request %d after expiry: %s %s" % (i, st, r))
    d.stop()


def test_deleted_session_is_404_everywhere(t):
    d, port = start(t)
    sid = mcp_session(port)
    for i in range(8):
        whoami(port, sid, i)         # cached by several workers now
    st, _, _ = http(port, "DELETE", "/mcp", None, {"Mcp-Session-Id": sid})
    check(st == 200)
    for i in range(12):
        st, r, _ = rpc(port, sid, "ping", id=i)
        check(st == 404, "request %d after DELETE: %s" % (i, st))
    d.stop()
