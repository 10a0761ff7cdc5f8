"""MCP over Streamable HTTP: protocol errors, sessions, streams, and tools
that misbehave. Every bad input gets a clear error and the daemon keeps
serving; nothing runs that the operator did not declare."""

import json
import re
import os
import signal
import socket
import threading
import time

from harness import (MCP_HEADERS, alive, check, free_port, http, mcp_session, raw, rpc, sse_events, status_of,
                     wait_for)

TOOLS = """
tools:
  - name: echo
    description: Prints its text argument.
    input: { text: string }
    required: [text]
    shell: 'printf "%%s" "$MCP_ARG_text"'
  - name: args
    description: Prints the JSON it got on stdin.
    command: [cat]
  - name: count
    description: A number argument with a range.
    input: { n: { type: integer, minimum: 1, maximum: 10 } }
    required: [n]
    command: [cat]
  - name: flood
    description: Writes without end.
    command: [yes]
    max_output: 64KiB
  - name: hang
    description: Starts a child and never exits.
    input: { pidfile: string }
    shell: 'sleep 600 & echo $! > "$MCP_ARG_pidfile"; wait'
    timeout: 1s
  - name: fail
    description: Exits 3 with a message on stderr.
    shell: 'echo "disk on fire" >&2; exit 3'
  - name: binary
    description: Writes bytes that are not UTF-8.
    shell: 'printf "ok \\377\\376 end"'
  - name: structured
    description: JSON output checked against a schema.
    input: { good: boolean }
    shell: 'if [ "$MCP_ARG_good" = true ]; then echo "{\\"n\\": 1}"; else echo "{\\"n\\": \\"x\\"}"; fi'
    output: json
    output_schema: { type: object, properties: { n: { type: integer } }, required: [n] }
  - name: talk
    description: Sends progress and a log line, then answers.
    shell: 'mcpd-tool log warning "careful"; mcpd-tool progress 1 1; echo done'
resources:
  - uri: file:///motd
    name: motd
    mime_type: text/plain
    file: %(motd)s
"""


def start(t, extra="", workers=1, tools=True):
    port = free_port()
    motd = os.path.join(t.dir, "motd.txt")
    with open(motd, "w") as f:
        f.write("hello from the file\n")
    cfg = "listen: [127.0.0.1:%d]\nworkers: %d\n%s" % (port, workers, extra)
    if tools:
        cfg += TOOLS % {"motd": motd}
    d = t.mcpd(cfg).start(wait_url_port=port)
    return d, port


def post(port, body, sid=None, headers=None):
    h = dict(MCP_HEADERS)
    if sid:
        h["Mcp-Session-Id"] = sid
    h.update(headers or {})
    st, hdrs, data = http(port, "POST", "/mcp", body, h)
    try:
        return st, hdrs, json.loads(data) if data else None
    except ValueError:
        return st, hdrs, data


def test_jsonrpc_errors(t):
    d, port = start(t, "limits: { max_body: 64KiB, json_depth: 32 }\n")
    sid = mcp_session(port)
    st, _, r = post(port, "{not json", sid)
    check(st == 400 and r["error"]["code"] == -32700 and r["id"] is None, (st, r))
    st, _, r = post(port, '[{"jsonrpc":"2.0","id":1,"method":"ping"}]', sid)
    check(st == 400 and r["error"]["code"] == -32600 and "batch" in r["error"]["message"], (st, r))
    st, _, r = post(port, '{"jsonrpc":"1.0","id":7,"method":"ping"}', sid)
    check(st == 400 and r["error"]["code"] == -32600 and r["id"] == 7, (st, r))
    st, _, r = post(port, '{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', sid)
    check(st == 400 and r["error"]["code"] == -32600, (st, r))
    st, _, r = post(port, '{"jsonrpc":"2.0","id":8,"method":"no/such/method"}', sid)
    check(st == 200 and r["error"]["code"] == -32601 and r["id"] == 8, (st, r))
    st, _, r = post(port, '{"jsonrpc":"2.0","id":9,"method":"ping","params":[1]}', sid)
    check(st == 400 and r["error"]["code"] == -32600, (st, r))
    deep = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"args","arguments":{"a":' + "[" * 100 + "]" * 100 + "}}}"
    st, _, r = post(port, deep, sid)
    check(st == 400 and r["error"]["code"] == -32700 and "nested" in r["error"]["message"], (st, r))
    st, _, r = post(port, b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"\xff\xfe"}}', sid)
    check(st == 400 and r["error"]["code"] == -32700 and "UTF-8" in r["error"]["message"], (st, r))
    big = '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + "a" * 70000 + '"}}'
    st, _, _ = post(port, big, sid)
    check(st == 413, st)
    st, _, r = post(port, '{"jsonrpc":"2.0","id":1,"method":"ping"}', sid, {"Content-Type": "text/plain"})
    check(st == 415, st)
    st, _, r = post(port, '{"jsonrpc":"2.0","id":1,"method":"ping"}', sid, {"Accept": "text/html"})
    check(st == 406, st)
    st, _, r = post(port, '{"jsonrpc":"2.0","id":10,"method":"ping"}', sid)
    check(st == 200 and r == {"jsonrpc": "2.0", "id": 10, "result": {}}, r)
    d.stop()


def test_sessions(t):
    d, port = start(t)
    ping = '{"jsonrpc":"2.0","id":1,"method":"ping"}'
    st, _, r = post(port, ping)
    check(st == 400 and "Mcp-Session-Id" in r["error"]["message"], (st, r))
    st, _, r = post(port, ping, "no-such-session")
    check(st == 404, st)
    sid = mcp_session(port)
    check(post(port, ping, sid)[0] == 200)
    st, _, r = post(port, ping, sid, {"MCP-Protocol-Version": "1999-01-01"})
    check(st == 400 and "MCP-Protocol-Version" in r["error"]["message"], (st, r))
    for v in ("2025-03-26", "2025-06-18", "2025-11-25"):
        check(post(port, ping, sid, {"MCP-Protocol-Version": v})[0] == 200, v)
    # Version negotiation: a supported version is echoed, others get ours.
    for asked, got in (("2025-03-26", "2025-03-26"), ("2025-06-18", "2025-06-18"), ("2024-01-01", "2025-11-25")):
        body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        st, _, r = post(port, body)
        check(st == 200 and r["result"]["protocolVersion"] == got, (asked, r))
    # initialize inside a session is refused.
    st, _, r = post(port, body, sid)
    check(st == 400, st)
    # DELETE ends the session for good.
    st, _, _ = http(port, "DELETE", "/mcp", None, {"Mcp-Session-Id": sid})
    check(st == 200, st)
    check(post(port, ping, sid)[0] == 404)
    st, _, _ = http(port, "DELETE", "/mcp", None, {"Mcp-Session-Id": sid})
    check(st == 404, st)
    st, hdrs, _ = http(port, "PUT", "/mcp", "x", MCP_HEADERS)
    check(st == 405 and "POST" in hdrs.get("allow", ""), st)
    d.stop()


def test_origin_and_host_checks(t):
    d, port = start(t)
    body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    st, _, r = post(port, body, headers={"Origin": "https://evil.example.com"})
    check(st == 403 and "Origin" in r["error"]["message"], (st, r))
    st, _, r = post(port, body, headers={"Host": "evil.example.com"})
    check(st == 403 and "Host" in r["error"]["message"], (st, r))
    # Too long to be a host name: refused whole, never cut to "localhost".
    st, _, r = post(port, body, headers={"Host": "localhost:" + "a" * 300 + ":1"})
    check(st == 403 and "Host" in r["error"]["message"], (st, r))
    st, hdrs, r = post(port, body, headers={"Origin": "http://localhost:5173"})
    check(st == 200 and hdrs.get("access-control-allow-origin") == "http://localhost:5173", hdrs)
    check("Mcp-Session-Id" in hdrs.get("access-control-expose-headers", ""))
    st, hdrs, _ = http(port, "OPTIONS", "/mcp", None, {"Origin": "http://localhost:5173",
                       "Access-Control-Request-Method": "POST",
                       "Access-Control-Request-Headers": "content-type, mcp-session-id"})
    check(st == 204 and "POST" in hdrs.get("access-control-allow-methods", ""), (st, hdrs))
    d.stop()
    # An operator who serves other origins lists them; others stay refused.
    d2, port2 = start(t, 'allowed_origins: ["https://app.example.com"]\nallowed_hosts: ["*"]\n')
    check(post(port2, body, headers={"Origin": "https://app.example.com", "Host": "mcp.example.com"})[0] == 200)
    check(post(port2, body, headers={"Origin": "http://localhost:5173"})[0] == 403)
    d2.stop()


def call(port, sid, name, args=None, **kw):
    params = {"name": name}
    if args is not None:
        params["arguments"] = args
    return rpc(port, sid, "tools/call", params, **kw)


LONG_TOOLS = """
tools:
  - name: longerr
    description: A stderr line of 2000 bytes, then a short one.
    shell: 'printf "%02000d\\n" 0 | tr 0 e >&2; echo short >&2; echo ok'
  - name: longkey
    description: Asks with a key longer than mcpd keeps.
    shell: 'mcpd-tool elicit --key "$(printf "%0200d" 0)" "Name?" 2>&1 || echo refused'
  - name: words
    description: Logs a message given as several words.
    shell: 'mcpd-tool log info two words "and  more"; echo ok'
"""


def test_long_resource_uri_is_not_cut(t):
    """A command resource sees the whole URI in MCP_RESOURCE_URI; it was cut
    at about 4 KiB."""
    d, port = start(t, """resources:
  - uri_template: "long://{x}"
    name: long
    command: [printenv, MCP_RESOURCE_URI]
""", tools=False)
    sid = mcp_session(port)
    uri = "long://" + "a" * 4089
    st, r, _ = rpc(port, sid, "resources/read", {"uri": uri})
    check(r["result"]["contents"][0]["text"].strip() == uri, r)
    uri = "long://" + "b" * 20000
    st, r, _ = rpc(port, sid, "resources/read", {"uri": uri})
    check(r["result"]["contents"][0]["text"].strip() == uri, r)
    d.stop()


def test_long_stderr_lines_and_question_keys(t):
    """What does not fit is said, never cut silently: a tool's long stderr
    line is logged ending in "...", and a question key too long to keep is
    refused (a cut key could take the answer to another question)."""
    d, port = start(t, LONG_TOOLS, tools=False)
    sid = mcp_session(port)
    st, r, _ = call(port, sid, "longerr", {})
    check(r["result"]["content"][0]["text"] == "ok", r)
    d.wait_log(r"tool longerr stderr: e{512}\.\.\.\n")
    d.wait_log(r"tool longerr stderr: short\n")
    st, r, _ = call(port, sid, "longkey", {})
    text = r["result"]["content"][0]["text"]
    check("key: at most 95 bytes" in text and "refused" in text, r)
    st, r, msgs = rpc(port, sid, "tools/call", {"name": "words", "arguments": {}})
    check(msgs[0]["params"] == {"level": "info", "data": "two words and  more"}, msgs)
    d.stop()


def test_arguments_are_data_not_code(t):
    d, port = start(t)
    sid = mcp_session(port)
    marker = os.path.join(t.dir, "pwned")
    evil = '$(touch %s); `touch %s`; "; touch %s; echo \'' % (marker, marker, marker)
    st, r, _ = call(port, sid, "echo", {"text": evil})
    check(st == 200 and r["result"]["content"][0]["text"] == evil, r)
    # Arguments reach command tools on stdin as one JSON object, intact.
    weird = {"text": "naïve — ünïcödé and \\ and \" quotes \u2028", "n": [1, {"x": None}], "b": True}
    st, r, _ = call(port, sid, "args", weird)
    check(json.loads(r["result"]["content"][0]["text"]) == weird, r)
    # NUL cannot reach a command intact: refused, not truncated.
    st, r, _ = call(port, sid, "args", {"text": "a\u0000b"})
    check(st == 400 and r["error"]["code"] == -32700 and "u0000" in r["error"]["message"], (st, r))
    time.sleep(0.2)
    check(not os.path.exists(marker), "a shell metacharacter in an argument was executed")
    d.stop()


def test_arguments_validated_before_running(t):
    d, port = start(t)
    sid = mcp_session(port)
    st, r, _ = call(port, sid, "echo", {"text": 5})
    check(r["result"]["isError"] and "arguments.text: expected string, got number" in r["result"]["content"][0]["text"], r)
    st, r, _ = call(port, sid, "echo", {})
    check(r["result"]["isError"] and 'missing required property "text"' in r["result"]["content"][0]["text"], r)
    st, r, _ = call(port, sid, "count", {"n": 11})
    check(r["result"]["isError"] and "must be at most 10" in r["result"]["content"][0]["text"], r)
    st, r, _ = call(port, sid, "count", {"n": 2.5})
    check(r["result"]["isError"] and "expected integer" in r["result"]["content"][0]["text"], r)
    st, r, _ = call(port, sid, "echo", "not an object")
    check(r["error"]["code"] == -32602, r)
    st, r, _ = call(port, sid, "nope", {})
    check(r["error"]["code"] == -32602 and "Unknown tool" in r["error"]["message"], r)
    # 2025-06-18 sessions get the protocol error instead.
    old = mcp_session(port, proto="2025-06-18")
    st, r, _ = rpc(port, old, "tools/call", {"name": "echo", "arguments": {"text": 5}},
                   headers={"MCP-Protocol-Version": "2025-06-18"})
    check(r["error"]["code"] == -32602 and "expected string" in r["error"]["message"], r)
    d.wait_log("tools/call")
    check("tool echo" not in d.log(), "a tool ran with invalid arguments")
    d.stop()


def test_misbehaving_tools(t):
    d, port = start(t)
    sid = mcp_session(port)
    st, r, _ = call(port, sid, "flood", {})
    check(r["result"]["isError"] and "more than 65536 bytes" in r["result"]["content"][0]["text"], r)
    pidfile = os.path.join(t.dir, "child.pid")
    st, r, _ = call(port, sid, "hang", {"pidfile": pidfile})
    check(r["result"]["isError"] and "timed out after 1s" in r["result"]["content"][0]["text"], r)
    child = int(open(pidfile).read())
    wait_for(lambda: not alive(child), timeout=5, what="the tool's child to be killed with its group")
    st, r, _ = call(port, sid, "fail", {})
    check(r["result"]["isError"] and "disk on fire" in r["result"]["content"][0]["text"], r)
    d.wait_log("tool fail stderr: disk on fire")
    st, r, _ = call(port, sid, "binary", {})
    check(r["result"]["content"][0]["text"] == "ok \ufffd\ufffd end", r)
    st, r, _ = call(port, sid, "structured", {"good": True})
    check(r["result"]["structuredContent"] == {"n": 1} and not r["result"].get("isError"), r)
    st, r, _ = call(port, sid, "structured", {"good": False})
    check(r["result"]["isError"] and "structuredContent.n: expected integer" in r["result"]["content"][0]["text"], r)
    st, r, _ = rpc(port, sid, "ping", id=99)
    check(r["result"] == {}, "daemon stopped answering")
    d.stop()


def test_sse_notifications_and_json_answers(t):
    d, port = start(t)
    sid = mcp_session(port)
    # A call that sends nothing first is answered with JSON.
    st, hdrs, data = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": "echo", "arguments": {"text": "hi"}}}),
                          dict(MCP_HEADERS, **{"Mcp-Session-Id": sid}))
    check(hdrs["content-type"] == "application/json", hdrs)
    # One that talks first switches to SSE: log and progress, then the result.
    st, r, msgs = rpc(port, sid, "tools/call", {"name": "talk", "arguments": {}, "_meta": {"progressToken": 7}}, id=2)
    methods = [m.get("method") for m in msgs]
    check(methods[:2] == ["notifications/message", "notifications/progress"], msgs)
    check(msgs[0]["params"] == {"level": "warning", "data": "careful"}, msgs[0])
    check(msgs[1]["params"] == {"progressToken": 7, "progress": 1, "total": 1}, msgs[1])
    check(r["result"]["content"][0]["text"] == "done")
    # Below the session's log level, messages are not sent.
    rpc(port, sid, "logging/setLevel", {"level": "error"}, id=3)
    st, r, msgs = rpc(port, sid, "tools/call", {"name": "talk", "arguments": {}}, id=4)
    check(not [m for m in msgs if m.get("method") == "notifications/message"], msgs)
    st, r, _ = rpc(port, sid, "logging/setLevel", {"level": "loud"}, id=5)
    check(r["error"]["code"] == -32602)
    d.stop()


def test_get_stream_and_resume(t):
    d, port = start(t, "sse: { keepalive: 1s }\n")
    sid = mcp_session(port)
    h = {"Accept": "text/event-stream", "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: "
              + sid.encode() + b"\r\n\r\n")
    head = s.recv(4096)
    check(status_of(head) == 200 and b"text/event-stream" in head, head)
    # A second GET stream for the session is refused while the first is open.
    st, _, _ = http(port, "GET", "/mcp", None, h)
    check(st == 409, st)
    # Keep-alive comments arrive on a quiet stream.
    data = head
    deadline = time.time() + 5
    while b": keep-alive" not in data and time.time() < deadline:
        data += s.recv(4096)
    check(b": keep-alive" in data, data)
    s.close()
    # A client that asked for JSON only gets its request's notifications on
    # the GET stream; a later GET replays them.
    st, r, _ = rpc(port, sid, "tools/call", {"name": "talk", "arguments": {}}, id=6,
                   headers={"Accept": "application/json"})
    check(r["result"]["content"][0]["text"] == "done", r)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: "
              + sid.encode() + b"\r\n\r\n")
    data = b""
    while b"careful" not in data and time.time() < deadline + 5:
        data += s.recv(4096)
    check(b'"data":"careful"' in data, data)
    s.close()
    # Last-Event-ID replays what a POST stream carried after that event.
    st, r, msgs = rpc(port, sid, "tools/call", {"name": "talk", "arguments": {}, "_meta": {"progressToken": "p"}}, id=7)
    st, hdrs, body = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                          "params": {"name": "talk", "arguments": {}, "_meta": {"progressToken": "q"}}}),
                          dict(MCP_HEADERS, **{"Mcp-Session-Id": sid}))
    events = [e for e in sse_events(body) if e.get("data")]
    first_id = events[0]["id"]
    st, hdrs, body = http(port, "GET", "/mcp", None, dict(h, **{"Last-Event-ID": first_id}))
    replay = [json.loads(e["data"]) for e in sse_events(body) if e.get("data")]
    check(len(replay) == len(events) - 1 and replay[-1]["id"] == 8, (first_id, replay))
    st, _, _ = http(port, "GET", "/mcp", None, dict(h, **{"Last-Event-ID": "999-1"}))
    check(st == 400, st)
    # The event number is digits only: strtoull took a sign, blanks and
    # a number past 64 bits (as the largest).
    stream, n = first_id.rsplit("-", 1)
    for bad in ("+" + n, " " + n, "\t" + n, "0x" + n, "18446744073709551616", ""):
        st, _, body = http(port, "GET", "/mcp", None, dict(h, **{"Last-Event-ID": stream + "-" + bad}))
        check(st == 400 and b"malformed Last-Event-ID" in body, (bad, st, body[:200]))
    d.stop()


def read_to_end(s, timeout):
    """Read until the server ends the response (the connection closes,
    or the chunked body ends), within timeout: the data, or None."""
    data = b""
    deadline = time.time() + timeout
    while not data.endswith(b"\r\n0\r\n\r\n"):
        if time.time() > deadline:
            return None
        s.settimeout(max(0.1, deadline - time.time()))
        try:
            c = s.recv(4096)
        except socket.timeout:
            return None
        if not c:
            break
        data += c
    return data


def read_until(s, pred, timeout=10):
    """Read an open response until pred(data) holds; the data."""
    data = b""
    deadline = time.time() + timeout
    while not pred(data):
        check(time.time() < deadline, "timed out; got %r" % data[-600:])
        c = s.recv(4096)
        check(c, "closed early; got %r" % data[-600:])
        data += c
    return data


def open_get(port, sid, last=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: "
              + sid.encode() + b"\r\nMCP-Protocol-Version: 2025-11-25\r\n"
              + (b"Last-Event-ID: " + last.encode() + b"\r\n" if last else b"") + b"\r\n")
    return s


def priming_id(data):
    """The id of the first event, sent with empty data before any other."""
    body = data.split(b"\r\n\r\n", 1)[1].decode()
    m = __import__("re").search(r"(?m)^id: (\S+)\n(?:retry: \d+\n)?data: \n", body)
    check(m, "no priming event in %r" % body)
    return m.group(1)


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for pid %d" % (field, pid))


def test_get_stream_not_read_is_closed(t):
    """A session's GET stream whose client stops reading while a tool
    sends it 100 MB of log messages: the worker keeps at most
    limits.stream_buffer for it (peak RSS from /proc), closes it and says
    so; the call (2025: not cancelled by a stream) answers, and the
    session opens a new GET stream."""
    port = free_port()
    cfg = ("listen: [127.0.0.1:%d]\nworkers: 1\nsse: { history: 50 }\nlimits: { stream_buffer: 4MiB }\n"
           "tools:\n  - name: chatty\n    description: 1000 log messages of 100 KB, straight to fd 3.\n"
           "    shell: |\n"
           "      line=$(head -c 100000 /dev/zero | tr '\\0' x)\n"
           "      yes '{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",'\\\n"
           "      '\"params\":{\"level\":\"info\",\"data\":\"'$line'\"}}' | head -n 1000 >&3\n"
           "      echo said\n" % port)
    env = {"ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=8"]))}
    d = t.mcpd(cfg).start(env=env, wait_url_port=port)
    worker = wait_for(lambda: len(d.workers()) == 1 and d.workers()[0], what="the worker")
    before = status_kib(worker, "VmHWM")
    sid = mcp_session(port)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: "
              + sid.encode() + b"\r\nMCP-Protocol-Version: 2025-11-25\r\n\r\n")
    check(status_of(s.recv(200)) == 200)
    # ... and reads no more. The call asks for JSON: its messages go to
    # the GET stream.
    st, r, _ = rpc(port, sid, "tools/call", {"name": "chatty", "arguments": {}}, id=5,
                   headers={"Accept": "application/json"}, timeout=120)
    check(r["result"]["content"][0]["text"].strip() == "said", r)
    grown = status_kib(worker, "VmHWM") - before
    check(grown < 48 * 1024, "the worker grew by %d KiB for a client that does not read" % grown)
    d.wait_log(r"127\.0\.0\.1:\d+: GET /mcp: the client does not read its stream: \d+ bytes wait, "
               r"more than limits\.stream_buffer \(4194304\); closing it")
    # The connection ends once what the kernel held is read.
    data = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        data += c
    check(len(data) < 16 * 1024 * 1024, "%d bytes came after the stream was closed" % len(data))
    s.close()
    s = open_get(port, sid)
    head = read_until(s, lambda x: b"\r\n\r\n" in x)
    check(status_of(head) == 200, head[:200])
    s.close()
    d.stop()


def test_a_flood_while_the_master_lags_is_bounded(t):
    """Why test_get_stream_not_read_is_closed once saw a worker grow by
    120 MB under load: once the GET stream is closed, each event is
    published for whichever worker might hold the stream, through the
    master's relay; a master that lags (a busy machine) left them queued
    in the worker, up to 64 MiB. Stopped here (SIGSTOP) for the whole
    flood: the worker queues at most limits.stream_buffer for it, says
    so, and the call still answers."""
    port = free_port()
    cfg = ("listen: [127.0.0.1:%d]\nworkers: 1\nsse: { history: 50 }\nlimits: { stream_buffer: 4MiB }\n"
           "tools:\n  - name: chatty\n    description: 1000 log messages of 100 KB, straight to fd 3.\n"
           "    shell: |\n"
           "      line=$(head -c 100000 /dev/zero | tr '\\0' x)\n"
           "      yes '{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",'\\\n"
           "      '\"params\":{\"level\":\"info\",\"data\":\"'$line'\"}}' | head -n 1000 >&3\n"
           "      echo said\n" % port)
    env = {"ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=8"]))}
    d = t.mcpd(cfg).start(env=env, wait_url_port=port)
    worker = wait_for(lambda: len(d.workers()) == 1 and d.workers()[0], what="the worker")
    before = status_kib(worker, "VmHWM")
    sid = mcp_session(port)
    os.kill(d.pid, signal.SIGSTOP)
    try:
        st, r, _ = rpc(port, sid, "tools/call", {"name": "chatty", "arguments": {}}, id=5,
                       headers={"Accept": "application/json"}, timeout=120)
        check(r["result"]["content"][0]["text"].strip() == "said", r)
        grown = status_kib(worker, "VmHWM") - before
    finally:
        os.kill(d.pid, signal.SIGCONT)
    check(grown < 48 * 1024, "the worker grew by %d KiB while the master did not read" % grown)
    d.wait_log(r"relay: the master does not keep up: \d+ bytes wait for it, more than "
               r"limits\.stream_buffer \(4194304\); messages to it are dropped until it catches up")
    st, r, _ = rpc(port, sid, "ping", id=6)
    check(st == 200, st)
    d.stop()


def conn_owner(pids, server_port, client_port, must=True):
    """Which of pids holds the server end of the connection from client_port
    (None, unless must, when none does yet)."""
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f.read().splitlines()[1:]:
            fields = line.split()
            if (int(fields[1].split(":")[1], 16) == server_port and
                    int(fields[2].split(":")[1], 16) == client_port):
                inode = fields[9]
    if inode is None and not must:
        return None
    check(inode is not None, "no such connection")
    for pid in pids:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "socket:[%s]" % inode:
                    return pid
            except FileNotFoundError:
                pass
    if not must:
        return None
    raise AssertionError("no worker holds the connection")


def connection_to(port, pids, want, tries=60):
    """A connection that worker want accepted (the others' are closed)."""
    for _ in range(tries):
        c = socket.create_connection(("127.0.0.1", port), timeout=30)
        try:
            owner = wait_for(lambda: conn_owner(pids, port, c.getsockname()[1], must=False), timeout=5,
                             what="the connection accepted")
        except Exception:
            owner = None
        if owner == want:
            return c
        c.close()
    raise AssertionError("worker %d accepted none of %d connections" % (want, tries))


def rpc_on(c, sid, method, params, id):
    """A JSON-RPC request on an open connection; its JSON answer."""
    body = json.dumps({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).encode()
    c.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Accept: application/json\r\nMcp-Session-Id: " + sid.encode() +
              b"\r\nMCP-Protocol-Version: 2025-11-25\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    data = b""
    while b"\r\n\r\n" not in data:
        data += c.recv(65536)
    head, rest = data.split(b"\r\n\r\n", 1)
    n = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(rest) < n:
        rest += c.recv(65536)
    return json.loads(rest[:n])


def test_a_lagging_worker_ends_the_streams_that_lost_events(t):
    """The master's relay drops messages to a worker that lags (over
    limits.stream_buffer wait for it): the GET stream that worker holds
    would silently miss events. The worker hears where the drops began
    and ended, ends the streams it holds, and the client resuming with
    Last-Event-ID gets every event from the log (before: the stream
    stayed open with a hole in it)."""
    lost_events_end_streams(t, stop="holder")


def test_a_lagging_master_ends_the_streams_that_lost_events(t):
    """The same when the master lags: the worker publishing drops what it
    cannot queue for the master, tells the master so, and the master
    tells the worker holding the stream (seen under load: the test above
    hung when the drops happened on this side)."""
    lost_events_end_streams(t, stop="master")


def lost_events_end_streams(t, stop):
    port = free_port()
    cfg = """listen: [127.0.0.1:%d]
workers: 2
sse: { history: 2000 }
limits: { stream_buffer: 1MiB }
tools:
  - name: chatty
    description: 400 numbered log messages of 10 KB.
    shell: |
      line=$(head -c 10000 /dev/zero | tr '\\0' x)
      for i in $(seq 400); do
        printf '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"%%s %%s"}}\\n' $i $line
      done >&3
      echo said
""" % port
    d = t.mcpd(cfg).start(wait_url_port=port)
    wait_for(lambda: len(d.workers()) == 2, what="two workers")
    sid = mcp_session(port)
    rpc(port, sid, "logging/setLevel", {"level": "info"}, id=2)
    g = open_get(port, sid)
    data = read_until(g, lambda b: b"data: \n\n" in b)
    holder = conn_owner(d.workers(), port, g.getsockname()[1])
    other = [p for p in d.workers() if p != holder][0]
    c = connection_to(port, d.workers(), other)
    victim = holder if stop == "holder" else d.pid
    os.kill(victim, signal.SIGSTOP)
    try:
        r = rpc_on(c, sid, "tools/call", {"name": "chatty", "arguments": {}}, id=5)
        check(r["result"]["content"][0]["text"].strip() == "said", r)
    finally:
        os.kill(victim, signal.SIGCONT)
    c.close()
    # Dropped by the master for the stopped worker, or by the other worker
    # for a master that lagged too (a busy machine): told either way.
    d.wait_log(r"relay: (the worker in slot \d+|the master) does not keep up")
    # The stream ends (the chunked body's last chunk) once the worker has
    # read what waited for it.
    g.settimeout(30)
    deadline = time.time() + 30
    while not data.endswith(b"0\r\n\r\n"):
        check(time.time() < deadline, "the stream that lost events is still open")
        c = g.recv(65536)
        check(c, "closed without its last chunk")
        data += c
    g.close()
    d.wait_log(r"relay: messages were dropped while this worker or the master lagged; 1 stream held here ended")
    seen = set(int(n) for n in re.findall(rb'"data":"(\d+) x', data))
    check(0 < len(seen) < 400, "the first stream got %d of 400" % len(seen))
    # Resumed from the last event it got (again when the replay itself is
    # over limits.stream_buffer and closed, as a client would).
    last = re.findall(rb"(?m)^id: (\S+)$", data)[-1].decode()
    for attempt in range(40):
        if 400 in seen:
            break
        g = open_get(port, sid, last)
        g.settimeout(30)
        data = b""
        deadline = time.time() + 30
        while 400 not in seen and time.time() < deadline:
            c = g.recv(65536)
            if not c:
                break
            data += c
            seen |= set(int(n) for n in re.findall(rb'"data":"(\d+) x', data))
        g.close()
        ids = re.findall(rb"(?m)^id: (\S+)$", data)
        if ids:
            last = ids[-1].decode()
    check(seen == set(range(1, 401)), "missing: %s" % sorted(set(range(1, 401)) - seen)[:20])
    d.stop()


def test_get_stream_resumes_from_its_priming_event(t):
    """Every stream can be resumed from its priming event: a GET stream
    too, whether or not it has delivered anything yet."""
    d, port = start(t, "sse: { keepalive: 1s }\n")
    sid = mcp_session(port)
    s = open_get(port, sid)
    data = read_until(s, lambda b: b"data: \n\n" in b)
    first = priming_id(data)
    s.close()
    # A log line for the GET stream while none is open: the client, cut
    # off after the priming event, resumes from it and gets the line.
    st, r, _ = rpc(port, sid, "tools/call", {"name": "talk", "arguments": {}}, id=1,
                   headers={"Accept": "application/json"})
    check(r["result"]["content"][0]["text"] == "done", r)
    s = open_get(port, sid, first)
    data = read_until(s, lambda b: b'"data":"careful"' in b or (b"\r\n\r\n" in b and status_of(b) != 200))
    check(status_of(data) == 200, "resuming from %s: %r" % (first, data[:300]))
    s.close()
    # That GET stream delivered the line: a new one starts after it, and
    # its priming id says so; resuming from it replays nothing old.
    s = open_get(port, sid)
    data = read_until(s, lambda b: b"data: \n\n" in b)
    second = priming_id(data)
    s.close()
    check(second != first, "the priming id %s does not move on" % second)
    s = open_get(port, sid, second)
    data = read_until(s, lambda b: b": keep-alive" in b)
    check(status_of(data) == 200 and b"careful" not in data, data[:400])
    s.close()
    d.stop()


def test_resumed_stream_ends_after_its_last_event(t):
    d, port = start(t, "sse: { keepalive: 1s }\n")
    sid = mcp_session(port)
    h = {"Accept": "text/event-stream", "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}
    st, hdrs, body = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                          "params": {"name": "talk", "arguments": {}, "_meta": {"progressToken": "p"}}}),
                          dict(MCP_HEADERS, **{"Mcp-Session-Id": sid}))
    events = [e for e in sse_events(body) if "id" in e]
    check(json.loads(events[-1]["data"])["id"] == 5, events)
    # From the priming event: everything again, then the stream ends.
    st, _, again = http(port, "GET", "/mcp", None, dict(h, **{"Last-Event-ID": events[0]["id"]}), timeout=5)
    replay = [json.loads(e["data"]) for e in sse_events(again) if e.get("data")]
    check(st == 200 and replay[-1]["id"] == 5 and len(replay) == len(events) - 1, replay)
    # From the last event, which carried the result: nothing is left, and
    # the stream ends at once instead of sending keep-alives forever.
    s = open_get(port, sid, events[-1]["id"])
    rest = read_to_end(s, 3)
    s.close()
    check(rest is not None, "the stream resumed after its last event did not end")
    check(status_of(rest) == 200 and b"event: message" not in rest, rest)
    d.stop()


def test_resources_and_prompts_errors(t):
    d, port = start(t)
    sid = mcp_session(port)
    st, r, _ = rpc(port, sid, "resources/read", {"uri": "file:///motd"})
    check(r["result"]["contents"][0]["text"] == "hello from the file\n", r)
    st, r, _ = rpc(port, sid, "resources/read", {"uri": "file:///etc/passwd"})
    check(r["error"]["code"] == -32002 and r["error"]["data"]["uri"] == "file:///etc/passwd", r)
    st, r, _ = rpc(port, sid, "resources/read", {})
    check(r["error"]["code"] == -32602, r)
    st, r, _ = rpc(port, sid, "prompts/get", {"name": "nope"})
    check(r["error"]["code"] == -32602, r)
    st, r, _ = rpc(port, sid, "tools/list", {"cursor": "garbage"})
    check(r["error"]["code"] == -32602, r)
    d.stop()


def test_long_prompt_argument_names_reach_commands_whole(t):
    """MCP_COMPLETE_ARGUMENT carries the argument's whole name, however
    long: it was cut at about 180 bytes (a 200-byte buffer), so that a
    command could not tell two long names apart."""
    names = ["a" * 300 + "_one", "a" * 300 + "_two"]
    port = free_port()
    cfg = ("listen: [127.0.0.1:%d]\nworkers: 1\nprompts:\n  - name: p\n    arguments:\n" % port
           + "".join("      - { name: %s, complete: [sh, -c, 'printf \"%%s\\\\n\" \"$MCP_COMPLETE_ARGUMENT\"'] }\n" % n
                     for n in names)
           + "    shell: 'printf \"[{\\\"role\\\":\\\"user\\\",\\\"content\\\":{\\\"type\\\":\\\"text\\\","
             "\\\"text\\\":\\\"%s\\\"}}]\" \"$MCP_PROMPT_NAME\"'\n")
    d = t.mcpd(cfg).start(wait_url_port=port)
    sid = mcp_session(port)
    for n in names:
        st, r, _ = rpc(port, sid, "completion/complete", {"ref": {"type": "ref/prompt", "name": "p"},
                                                          "argument": {"name": n, "value": ""}})
        check(r["result"]["completion"]["values"] == [n], (n[-8:], r))
    st, r, _ = rpc(port, sid, "prompts/get", {"name": "p", "arguments": {}})
    check(r["result"]["messages"][0]["content"]["text"] == "p", r)
    d.stop()


ASK_TOOLS = """
tools:
  - name: asker
    description: Asks 64 questions straight on fd 3 and never reads the answers.
    shell: |
      i=0; while [ $i -lt 64 ]; do i=$((i+1))
        printf '{"jsonrpc":"2.0","id":%d,"method":"elicitation/create","params":{"message":"q%d","requestedSchema":{"type":"object"}}}\\n' $i $i
      done >&3
      sleep 30; echo slept
    timeout: 60s
  - name: greedy
    description: Asks 65 questions at once, then reads one line of fd 3.
    shell: |
      i=0; while [ $i -lt 65 ]; do i=$((i+1))
        printf '{"jsonrpc":"2.0","id":%d,"method":"elicitation/create","params":{"message":"q%d","requestedSchema":{"type":"object"}}}\\n' $i $i
      done >&3
      head -n 1 <&3
    timeout: 10s
"""


def test_a_tool_that_does_not_read_its_answers_is_stopped(t):
    """A command that asks and never reads fd 3: the client's answers are
    not queued for it without end. Past 4 MiB unread it is stopped, with
    a result that says why; and at most 64 questions of one call wait for
    answers (each holds a subscription and a timer), the 65th refused."""
    port = free_port()
    env = {"ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=8"]))}
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\n%s" % (port, ASK_TOOLS)).start(env=env, wait_url_port=port)
    sid = mcp_session(port, caps={"elicitation": {}})
    g = open_get(port, sid)
    out = {}

    def call_it():
        out["r"] = rpc(port, sid, "tools/call", {"name": "asker", "arguments": {}}, id=3,
                       headers={"Accept": "application/json"}, timeout=90)[1]
    worker = wait_for(lambda: len(d.workers()) == 1 and d.workers()[0], what="the worker")
    before = status_kib(worker, "VmHWM")
    th = threading.Thread(target=call_it)
    th.start()
    answer = json.dumps({"v": "x" * 1000000})
    answered, buf = set(), b""
    g.settimeout(1)
    deadline = time.time() + 60
    while th.is_alive() and time.time() < deadline:
        try:
            c = g.recv(65536)
        except socket.timeout:
            continue
        if not c:
            break
        buf += c
        for m in re.findall(rb'data: (\{[^\n]*"elicitation/create"[^\n]*\})\n', buf):
            ask = json.loads(m)
            if ask["id"] in answered or not th.is_alive():
                continue
            answered.add(ask["id"])
            st, _, _ = http(port, "POST", "/mcp", '{"jsonrpc":"2.0","id":%s,"result":{"action":"accept","content":%s}}'
                            % (json.dumps(ask["id"]), answer), dict(MCP_HEADERS, **{"Mcp-Session-Id": sid}))
            check(st == 202, st)
    th.join(30)
    g.close()
    r = out.get("r")
    check(r is not None and r["result"]["isError"], r)
    text = r["result"]["content"][0]["text"]
    check("did not read the answers to its questions" in text, text)
    check(len(answered) < 64, "all %d answers were taken" % len(answered))
    grown = status_kib(worker, "VmHWM") - before
    check(grown < 32 * 1024, "the worker grew by %d KiB for answers a tool did not read" % grown)
    d.wait_log(r"tool asker: does not read its channel \(fd 3\): \d+ bytes of answers wait, more than 4194304; "
               r"stopping it")
    # The 65th question waiting is refused, to the command.
    st, r, _ = rpc(port, sid, "tools/call", {"name": "greedy", "arguments": {}}, id=4,
                   headers={"Accept": "application/json"}, timeout=30)
    line = json.loads(r["result"]["content"][0]["text"])
    check(line["id"] == 65 and "too many questions waiting" in line["error"]["message"], r)
    st, r, _ = rpc(port, sid, "ping", id=5)
    check(st == 200, st)
    d.stop()


def test_messages_sent_just_before_exit_arrive(t):
    """What a command writes on fd 3 just before it exits reaches the
    client: the call ended as soon as the command's exit and the end of
    its output were seen, with its last messages still unread on the
    channel (7 to 124 of these 150 arrived)."""
    port = free_port()
    cfg = ("listen: [127.0.0.1:%d]\nworkers: 1\n"
           "tools:\n  - name: burst\n    description: 150 log messages of 1 KB on fd 3, then exits.\n"
           "    shell: |\n"
           "      line=$(head -c 1000 /dev/zero | tr '\\0' x)\n"
           "      yes '{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",'\\\n"
           "      '\"params\":{\"level\":\"info\",\"data\":\"'$line'\"}}' | head -n 150 >&3\n"
           "      echo said\n" % port)
    d = t.mcpd(cfg).start(wait_url_port=port)
    sid = mcp_session(port)
    for i in range(5):
        st, r, msgs = rpc(port, sid, "tools/call", {"name": "burst", "arguments": {}}, id=10 + i)
        logs = [m for m in msgs if m.get("method") == "notifications/message"]
        check(len(logs) == 150 and r["result"]["content"][0]["text"] == "said", (i, len(logs), r))
    d.stop()


def test_pagination(t):
    tools = "tools:\n" + "".join(
        "  - { name: t%03d, description: tool %d, command: [true] }\n" % (i, i) for i in range(25))
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\nlimits: { page_size: 10 }\n%s" % (port, tools)
               ).start(wait_url_port=port)
    sid = mcp_session(port)
    names, cursor, pages = [], None, 0
    while True:
        st, r, _ = rpc(port, sid, "tools/list", {"cursor": cursor} if cursor else {}, id=pages)
        names += [x["name"] for x in r["result"]["tools"]]
        pages += 1
        cursor = r["result"].get("nextCursor")
        if not cursor:
            break
    check(pages == 3 and names == ["t%03d" % i for i in range(25)], (pages, names))
    # A cursor is ours as we wrote it: no sign, blank or wrapped number.
    for bad in ("page-+1", "page- 1", "page-\t1", "page-1 ", "page-0x1", "page--18446744073709551615",
                "page-18446744073709551617", "page-", "page-0", "page-3"):
        st, r, _ = rpc(port, sid, "tools/list", {"cursor": bad})
        check(r["error"]["code"] == -32602 and r["error"]["message"] == "Invalid cursor", (bad, r))
    st, r, _ = rpc(port, sid, "tools/list", {"cursor": "page-2"})
    check([x["name"] for x in r["result"]["tools"]] == ["t%03d" % i for i in range(20, 25)], r)
    d.stop()


def test_list_changed_after_reload(t):
    port = free_port()
    base = "listen: [127.0.0.1:%d]\nworkers: 1\ntools:\n  - { name: a, description: A, command: [true] }\n" % port
    d = t.mcpd(base).start(wait_url_port=port)
    sid = mcp_session(port)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: "
              + sid.encode() + b"\r\n\r\n")
    check(status_of(s.recv(4096)) == 200)
    d.write_config(base + "  - { name: b, description: B, command: [true] }\n")
    d.signal(signal.SIGHUP)
    data = b""
    deadline = time.time() + 10
    while b"list_changed" not in data and time.time() < deadline:
        c = s.recv(4096)
        if not c:
            break
        data += c
    check(b"notifications/tools/list_changed" in data, data)
    check(b"prompts/list_changed" not in data, "an unchanged list was announced")
    s.close()
    d.stop()


def test_resources_updated_when_file_changes(t):
    d, port = start(t)
    sid = mcp_session(port)
    st, r, _ = rpc(port, sid, "resources/subscribe", {"uri": "file:///motd"})
    check(r["result"] == {}, r)
    st, r, _ = rpc(port, sid, "resources/subscribe", {"uri": "file:///nope"})
    check(r["error"]["code"] == -32002, r)
    other = mcp_session(port)      # not subscribed: hears nothing
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: "
              + sid.encode() + b"\r\n\r\n")
    check(status_of(s.recv(4096)) == 200)
    # Replace the file the way editors do: write aside, rename over.
    motd = os.path.join(t.dir, "motd.txt")
    with open(motd + ".new", "w") as f:
        f.write("new motd\n")
    os.rename(motd + ".new", motd)
    data = b""
    deadline = time.time() + 10
    while b"resources/updated" not in data and time.time() < deadline:
        data += s.recv(4096)
    check(b'"method":"notifications/resources/updated","params":{"uri":"file:///motd"}' in data, data)
    s.close()
    st, r, _ = rpc(port, sid, "resources/read", {"uri": "file:///motd"})
    check(r["result"]["contents"][0]["text"] == "new motd\n")
    rpc(port, sid, "resources/unsubscribe", {"uri": "file:///motd"})
    d.stop()


def test_plugin_tool(t):
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\ntools:\n"
               "  - name: add\n    description: Add in-process.\n    input: { a: number, b: number }\n"
               "    required: [a, b]\n    plugin: examples.so:add\n" % port).start(wait_url_port=port)
    sid = mcp_session(port)
    st, r, _ = call(port, sid, "add", {"a": 2, "b": 40.5})
    check(r["result"]["content"][0]["text"] == "42.5" and r["result"]["structuredContent"] == {"sum": 42.5}, r)
    st, r, _ = call(port, sid, "add", {"a": "x", "b": 1})
    check(r["result"]["isError"], r)
    d.stop()


def test_plugin_errors_are_config_errors(t):
    from harness import run_mcpd
    cases = [
        ("plugin: nope.so:add", "cannot load plugin"),
        ("plugin: examples.so:subtract", 'exports no symbol "subtract"'),
        ("plugin: examples.so", "plugin must be file.so:symbol"),
        ("plugin: /bin/true:main", "cannot load plugin"),
    ]
    for ref, want in cases:
        path = os.path.join(t.dir, "p.yaml")
        with open(path, "w") as f:
            f.write("tools:\n  - name: x\n    description: X\n    %s\n" % ref)
        rc, out, err = run_mcpd("-t", "-c", path)
        check(rc == 1 and want in err and "p.yaml:" in err, (ref, err))


def test_small_fixes(t):
    """Edge cases found in review: each must stay fixed."""
    port = free_port()
    slow_plugin = os.path.join(t.dir, "never.c")
    open(slow_plugin, "w").write(r'''
#include <mcpd/plugin.h>
static const struct mcpd_plugin d = { .size = sizeof(struct mcpd_plugin), .abi_major = MCPD_PLUGIN_ABI_MAJOR,
    .abi_minor = MCPD_PLUGIN_ABI_MINOR, .kind = MCPD_PLUGIN_TOOLS, .name = "never" };
static struct mcpd_tool_call *held; static const struct mcpd_host *host;
static void cancelled(void *arg) { (void)arg; host->tool_text(held, "late", 0); }
MCPD_EXPORT mcpd_tool_fn never;
void never(const struct mcpd_host *h, struct mcpd_tool_call *c, const char *a)
{ (void)a; host = h; held = c; h->tool_on_cancel(c, cancelled, 0); }
const struct mcpd_plugin *mcpd_plugin_entry(void) { return &d; }
''')
    import subprocess
    from harness import ROOT
    so = os.path.join(t.dir, "never.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-I" + os.path.join(ROOT, "include"), "-o", so, slow_plugin], check=True)
    d = t.mcpd("listen: [127.0.0.2:%d]\nworkers: 1\ntools:\n"
               "  - { name: never, description: Never answers by itself., plugin: %s:never, timeout: 300ms }\n"
               "  - { name: list, description: Prints an array., shell: 'echo [1]', output: json }\n" % (port, so))
    d.start()
    def up():
        try:
            return http(port, host="127.0.0.2", timeout=1)[0] == 200
        except OSError:
            return False
    wait_for(up, what="mcpd on 127.0.0.2")
    # A loopback listener other than 127.0.0.1 accepts its own Host.
    body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    st, hdrs, data = http(port, "POST", "/mcp", body, MCP_HEADERS, host="127.0.0.2")
    check(st == 200, (st, data))
    sid = hdrs["mcp-session-id"]
    # A plugin tool that never finishes times out; the daemon goes on.
    st, h2, data = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                        "params": {"name": "never", "arguments": {}}}),
                        dict(MCP_HEADERS, **{"Mcp-Session-Id": sid}), host="127.0.0.2")
    r = json.loads(data)
    check(r["result"]["isError"] and "timed out after 0.3s" in r["result"]["content"][0]["text"], r)
    # structuredContent must be an object.
    st, h2, data = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                        "params": {"name": "list", "arguments": {}}}),
                        dict(MCP_HEADERS, **{"Mcp-Session-Id": sid}), host="127.0.0.2")
    r = json.loads(data)
    check(r["result"]["isError"] and "JSON object" in r["result"]["content"][0]["text"], r)
    # A refused Origin gets no CORS grant.
    st, h2, data = http(port, "POST", "/mcp", body, dict(MCP_HEADERS, Origin="https://evil.example"), host="127.0.0.2")
    check(st == 403 and "access-control-allow-origin" not in h2, (st, h2))
    d.stop()
