"""MCP 2026-07-28 on the same endpoint: stateless requests, the header and
_meta checks, MRTR with sealed requestState, listen streams, cancellation
by closing the response."""

import base64
import json
import os
import socket
import time

from harness import alive, check, free_port, http, mcp_session, raw, rpc, sse_events, status_of, wait_for

V = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": V,
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}, "sampling": {}}}

CONFIG = """listen: [127.0.0.1:%(port)d]
workers: 1
request_state: { ttl: %(ttl)s }
tools:
  - name: hello
    description: Greets.
    input: { who: { type: string, x-mcp-header: Who } }
    shell: 'printf "hello %%s" "$${MCP_ARG_who:-world}"'
  - name: ask
    description: Asks for a name first.
    shell: 'a=$(mcpd-tool elicit --key who "Name?" "{\\"type\\":\\"object\\"}") && printf "hi %%s" "$(mcpd-tool get content.name "$a")"'
  - name: sleepy
    description: Sleeps; writes its pid first.
    input: { pidfile: string }
    shell: 'echo $$ > "$MCP_ARG_pidfile"; exec sleep 30'
  - name: talk
    description: Progress and a log line.
    shell: 'mcpd-tool progress 1 2; mcpd-tool log info "said"; echo done'
  - name: change
    description: Announces a changed tool list.
    shell: 'mcpd-tool changed tools; echo changed'
  - name: flood
    description: Announces changes in a loop, and a resource with a long URI.
    input: { uri: string }
    shell: 'mcpd-tool changed resource "$MCP_ARG_uri" 2>&1 || echo "uri refused"; for i in $(seq 40); do mcpd-tool changed tools 2>/dev/null || { echo "refused at $i"; exit 0; }; done; echo "all 40"'
"""


def start(t, ttl="10m"):
    port = free_port()
    d = t.mcpd(CONFIG % {"port": port, "ttl": ttl}).start(wait_url_port=port)
    return d, port


def req(port, method, params=None, id=1, meta=META, headers=None, name=None, accept=None, timeout=20):
    p = dict(params or {})
    if meta is not None:
        p["_meta"] = dict(meta, **p.get("_meta", {}))
    h = {"Content-Type": "application/json", "Accept": accept or "application/json, text/event-stream",
         "MCP-Protocol-Version": V, "Mcp-Method": method}
    if name is not None:
        h["Mcp-Name"] = name
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    st, hdrs, data = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": id, "method": method,
                                                            "params": p}), h, timeout=timeout)
    if hdrs.get("content-type", "").startswith("text/event-stream"):
        msgs = [json.loads(e["data"]) for e in sse_events(data) if e.get("data")]
        final = [m for m in msgs if m.get("id") == id]
        return st, hdrs, (final[-1] if final else None), msgs
    return st, hdrs, json.loads(data) if data else None, []


def test_discover_and_lists(t):
    d, port = start(t)
    st, _, r, _ = req(port, "server/discover")
    res = r["result"]
    check(st == 200 and res["supportedVersions"] == [V] and res["resultType"] == "complete", r)
    check(res["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcpd", res)
    check(res["ttlMs"] == 0 and res["cacheScope"] == "private")
    st, _, r, _ = req(port, "tools/list")
    check([x["name"] for x in r["result"]["tools"]] == ["hello", "ask", "sleepy", "talk", "change", "flood"], r)
    check(r["result"]["ttlMs"] == 300000 and r["result"]["cacheScope"] == "public"
          and r["result"]["resultType"] == "complete", r)
    st, _, r, _ = req(port, "tools/call", {"name": "hello", "arguments": {"who": "x"}}, name="hello",
                      headers={"Mcp-Param-Who": "x"})
    check(r["result"] == {"content": [{"type": "text", "text": "hello x"}], "resultType": "complete"}, r)
    # The same endpoint still serves sessions.
    sid = mcp_session(port)
    st, r2, _ = rpc(port, sid, "tools/list")
    check("resultType" not in r2["result"], r2)
    d.stop()


def test_validation_ladder(t):
    d, port = start(t)
    st, _, r, _ = req(port, "server/discover", meta=None, id=5)
    check(st == 400 and r["error"]["code"] == -32602 and r["id"] == 5, (st, r))
    st, _, r, _ = req(port, "server/discover", meta={"io.modelcontextprotocol/protocolVersion": V})
    check(st == 400 and r["error"]["code"] == -32602, (st, r))
    st, _, r, _ = req(port, "server/discover", headers={"MCP-Protocol-Version": "2099-01-01"})
    check(st == 400 and r["error"]["code"] == -32020, (st, r))
    st, _, r, _ = req(port, "server/discover", headers={"MCP-Protocol-Version": None})
    check(st == 400 and r["error"]["code"] == -32020, (st, r))
    m = dict(META, **{"io.modelcontextprotocol/protocolVersion": "2099-01-01"})
    st, _, r, _ = req(port, "server/discover", meta=m, headers={"MCP-Protocol-Version": "2099-01-01"})
    check(st == 400 and r["error"]["code"] == -32022 and r["error"]["data"] == {"supported": [V], "requested": "2099-01-01"}, r)
    st, _, r, _ = req(port, "tools/list", headers={"Mcp-Method": "prompts/list"})
    check(st == 400 and r["error"]["code"] == -32020, (st, r))
    st, _, r, _ = req(port, "tools/list", headers={"Mcp-Method": None})
    check(st == 400 and r["error"]["code"] == -32020, (st, r))
    st, _, r, _ = req(port, "tools/list", headers={"Mcp-Method": "TOOLS/LIST"})
    check(st == 400 and r["error"]["code"] == -32020, (st, r))
    st, _, r, _ = req(port, "tools/call", {"name": "hello", "arguments": {}})
    check(st == 400 and r["error"]["code"] == -32020, "missing Mcp-Name: %s %s" % (st, r))
    st, _, r, _ = req(port, "tools/call", {"name": "hello", "arguments": {}}, name="talk")
    check(st == 400 and r["error"]["code"] == -32020, (st, r))
    st, _, r, _ = req(port, "resources/read", {"uri": "x://y"}, name="x://z")
    check(st == 400 and r["error"]["code"] == -32020, (st, r))
    for method in ("initialize", "ping", "logging/setLevel", "resources/subscribe", "nope/nope"):
        st, _, r, _ = req(port, method)
        check(st == 404 and r["error"]["code"] == -32601, (method, st, r))
    # Mcp-Param-*: mirrors the argument, plain or =?base64?...?=.
    call = {"name": "hello", "arguments": {"who": "Zoë"}}
    st, _, r, _ = req(port, "tools/call", call, name="hello",
                      headers={"Mcp-Param-Who": "=?base64?" + base64.b64encode("Zoë".encode()).decode() + "?="})
    check(r["result"]["content"][0]["text"] == "hello Zoë", r)
    for bad in ("Zoe", "=?base64?Wm9l?=", "=?base64?!!!?=", None):
        st, _, r, _ = req(port, "tools/call", call, name="hello", headers={"Mcp-Param-Who": bad})
        check(st == 400 and r["error"]["code"] == -32020, (bad, st, r))
    d.stop()


def test_mrtr_round_trip_and_tampering(t):
    d, port = start(t)
    call = {"name": "ask", "arguments": {}}
    st, _, r, _ = req(port, "tools/call", call, name="ask")
    res = r["result"]
    check(res["resultType"] == "input_required" and res["inputRequests"]["who"]["method"] == "elicitation/create", r)
    state = res["requestState"]
    answer = {"who": {"action": "accept", "content": {"name": "Ada"}}}
    st, _, r, _ = req(port, "tools/call", dict(call, inputResponses=answer, requestState=state), name="ask")
    check(r["result"]["content"][0]["text"] == "hi Ada", r)
    # Answers to questions never asked are ignored.
    st, _, r, _ = req(port, "tools/call", dict(call, inputResponses=dict(answer, extra={"x": 1})), name="ask")
    check(r["result"]["content"][0]["text"] == "hi Ada", r)
    # A forged state (another payload under the same MAC) is refused.
    payload, mac = state.split(".")
    forged = base64.urlsafe_b64encode(b'{"m":"tools/call","n":"ask","h":"x","a":{},"exp":9e15}').decode().rstrip("=")
    for bad in (forged + "." + mac, state + "x", "garbage", state[:-4]):
        st, _, r, _ = req(port, "tools/call", dict(call, inputResponses=answer, requestState=bad), name="ask")
        check("error" in r and r["error"]["code"] == -32602, (bad[:20], r))
    # A state for another tool is refused.
    st, _, r, _ = req(port, "tools/call", {"name": "hello", "arguments": {}, "requestState": state},
                      name="hello", headers={"Mcp-Param-Who": None})
    check("error" in r and "another request" in r["error"]["message"], r)
    # Malformed input responses are errors, not answers.
    st, _, r, _ = req(port, "tools/call", dict(call, inputResponses={"who": 42}), name="ask")
    check(r["error"]["code"] == -32602, r)
    # Without the capability the command learns it cannot ask.
    nocaps = dict(META, **{"io.modelcontextprotocol/clientCapabilities": {}})
    st, _, r, _ = req(port, "tools/call", call, name="ask", meta=nocaps)
    check(r["result"]["isError"] and "elicitation" in r["result"]["content"][0]["text"], r)
    d.stop()


def test_expired_request_state(t):
    d, port = start(t, ttl="1s")
    call = {"name": "ask", "arguments": {}}
    st, _, r, _ = req(port, "tools/call", call, name="ask")
    state = r["result"]["requestState"]
    time.sleep(1.3)
    st, _, r, _ = req(port, "tools/call", dict(call, requestState=state,
                      inputResponses={"who": {"action": "accept", "content": {"name": "x"}}}), name="ask")
    check(r["error"]["code"] == -32602 and "expired" in r["error"]["message"], r)
    d.stop()


def test_progress_streams_and_log_level(t):
    d, port = start(t)
    st, hdrs, r, msgs = req(port, "tools/call", {"name": "talk", "_meta": {"progressToken": "p1"}}, name="talk")
    check(hdrs["content-type"] == "text/event-stream" and hdrs.get("x-accel-buffering") == "no", hdrs)
    check([m.get("method") for m in msgs[:-1]] == ["notifications/progress"], msgs)
    check(r["result"]["content"][0]["text"] == "done")
    meta = dict(META, **{"io.modelcontextprotocol/logLevel": "debug"})
    st, hdrs, r, msgs = req(port, "tools/call", {"name": "talk"}, name="talk", meta=meta)
    check([m.get("method") for m in msgs[:-1]] == ["notifications/message"], msgs)
    # Without SSE in Accept the answer is JSON and notifications are dropped.
    st, hdrs, r, msgs = req(port, "tools/call", {"name": "talk", "_meta": {"progressToken": "p"}}, name="talk",
                            accept="application/json")
    check(hdrs["content-type"] == "application/json" and r["result"]["content"][0]["text"] == "done", (hdrs, r))
    d.stop()


def test_closing_the_request_cancels_the_tool(t):
    d, port = start(t)
    pidfile = os.path.join(t.dir, "pid")
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "sleepy", "arguments": {"pidfile": pidfile}, "_meta": META}}).encode()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n"
              b"Mcp-Method: tools/call\r\nMcp-Name: sleepy\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    pid = wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip() and
                   int(open(pidfile).read()), what="the tool to start")
    check(alive(pid))
    s.close()
    wait_for(lambda: not alive(pid), timeout=5, what="the tool to be killed when the client left")
    d.wait_log("tool sleepy cancelled: the client closed the request")
    st, _, r, _ = req(port, "server/discover")
    check(st == 200)
    d.stop()


def test_listen_streams(t):
    d, port = start(t)
    st, _, r, _ = req(port, "subscriptions/listen", {"notifications": {"bogus": True}})
    check(r["error"]["code"] == -32602 and "bogus" in r["error"]["message"], r)
    body = json.dumps({"jsonrpc": "2.0", "id": 77, "method": "subscriptions/listen",
                       "params": {"notifications": {"toolsListChanged": True, "resourceSubscriptions": ["nope://x"]},
                                  "_meta": META}}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Accept: text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n"
              b"Mcp-Method: subscriptions/listen\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    data = b""
    while b"acknowledged" not in data:
        data += s.recv(4096)
    ack = json.loads(data.split(b"data: ")[1].split(b"\n")[0])
    check(ack["params"] == {"_meta": {"io.modelcontextprotocol/subscriptionId": 77},
                            "notifications": {"toolsListChanged": True, "resourceSubscriptions": []}}, ack)
    st, _, r, _ = req(port, "tools/call", {"name": "change"}, name="change")
    check(r["result"]["content"][0]["text"] == "changed")
    while b"tools/list_changed" not in data:
        data += s.recv(4096)
    ev = [json.loads(l[6:]) for l in data.decode().split("\n") if l.startswith("data: ")]
    check(ev[-1] == {"jsonrpc": "2.0", "method": "notifications/tools/list_changed",
                     "params": {"_meta": {"io.modelcontextprotocol/subscriptionId": 77}}}, ev)
    # Stopping the server ends the subscription gracefully, with a result.
    d.signal(__import__("signal").SIGTERM)
    while b'"result"' not in data:
        c = s.recv(4096)
        if not c:
            break
        data += c
    check(b'"id":77,"result":{"_meta":{"io.modelcontextprotocol/subscriptionId":77},"resultType":"complete"}' in data, data[-300:])
    s.close()
    check(d.proc.wait(10) == 0)


def test_plugin_tool_asks_both_ways(t):
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\ntools:\n"
               "  - { name: confirm, description: Asks first., plugin: examples.so:confirm }\n" % port
               ).start(wait_url_port=port)
    # 2026-07-28: the question comes back as an inputRequest; the retry completes.
    st, _, r, _ = req(port, "tools/call", {"name": "confirm"}, name="confirm")
    check(r["result"]["resultType"] == "input_required" and "confirm" in r["result"]["inputRequests"], r)
    st, _, r, _ = req(port, "tools/call", {"name": "confirm", "requestState": r["result"]["requestState"],
                      "inputResponses": {"confirm": {"action": "accept", "content": {}}}}, name="confirm")
    check(r["result"]["content"][0]["text"] == "Confirmed.", r)
    # 2025: the question goes to the client on the call's stream; its
    # answer, posted separately, completes the call.
    sid = mcp_session(port, caps={"elicitation": {}})
    body = json.dumps({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "confirm"}}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Accept: application/json, text/event-stream\r\nMcp-Session-Id: " + sid.encode() +
              b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    data = b""
    while b"elicitation/create" not in data:
        data += s.recv(4096)
    ask = [json.loads(l[6:]) for l in data.decode().split("\n") if l.startswith("data: ") and "elicitation" in l][0]
    st, _, _ = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": ask["id"],
                    "result": {"action": "decline"}}),
                    {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                     "Mcp-Session-Id": sid})
    check(st == 202, st)
    while b'"id":9' not in data:
        data += s.recv(4096)
    check(b"Not confirmed." in data, data)
    s.close()
    d.stop()


def test_plugin_results_as_written(t):
    """A plugin tool's result goes into the answer as the plugin wrote it
    once checked, in JSON or on an SSE stream, 2025 session or stateless:
    a line break between its tokens never splits an SSE data line (the
    result is printed again then); the stateless revision's resultType
    added once; a result that is not a valid one answered as a tool
    error."""
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\ntools:\n"
               "  - { name: answer, description: Answers its json., input: { json: string }, "
               "plugin: examples.so:answer }\n" % port).start(wait_url_port=port)
    sid = mcp_session(port)
    text = {"type": "text", "text": "a\tb"}
    cases = [
        ('{ "content" :\t[ {"type":"text","text":"a\\tb"} ] }', {"content": [text]}),
        ('{\n"content":[{"type":"text","text":"a\\tb"}],\r\n"isError":true}\n', {"content": [text], "isError": True}),
        ('\r\n{"content":[],"structuredContent":{"n":12345678901234567890,"s":"\\u00e9\\n"}}',
         {"content": [], "structuredContent": {"n": 12345678901234567890, "s": "\u00e9\n"}}),
        (' { "content" : [ ] } ', {"content": []}),
    ]
    for js, want in cases:
        for progress in (None, "p"):
            meta = {"progressToken": progress} if progress else {}
            st, r, msgs = rpc(port, sid, "tools/call", {"name": "answer", "arguments": {"json": js}, "_meta": meta})
            check(st == 200 and r["result"] == want, (js, progress, r))
            check([m.get("method") for m in msgs] == (["notifications/progress", None] if progress else []), msgs)
            st, hdrs, r, msgs = req(port, "tools/call", {"name": "answer", "arguments": {"json": js},
                                    "_meta": meta}, name="answer")
            check(st == 200 and r["result"] == dict(want, resultType="complete"), (js, progress, r))
            check(hdrs["content-type"] == ("text/event-stream" if progress else "application/json"), hdrs)
    # A resultType the plugin gave stays, once.
    st, hdrs, data = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                          "params": {"name": "answer", "arguments": {"json": '{"content":[],"resultType":"complete"}'},
                                     "_meta": META}}),
                          {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                           "MCP-Protocol-Version": V, "Mcp-Method": "tools/call", "Mcp-Name": "answer"})
    check(json.loads(data)["result"] == {"content": [], "resultType": "complete"} and
          data.count(b'"resultType"') == 1, data)
    for js in ['[1]', '{"content":[{"type":"bogus"}]}', '{"content":[],"a":1,"a":2}', '{"content":[]', '"s"', '']:
        st, r, _ = rpc(port, sid, "tools/call", {"name": "answer", "arguments": {"json": js}})
        check(r["result"]["isError"] is True and
              r["result"]["content"][0]["text"] == "the tool returned an invalid result", (js, r))
    d.stop()


FLOOD_CONFIG = """listen: [127.0.0.1:%(port)d]
workers: 1
limits: { tool_timeout: 5m }
tools:
  - name: flood
    description: Log messages of 100 KB, as fast as mcpd-tool sends them; writes its pid first.
    input: { pidfile: string, count: integer }
    shell: |
      echo $$ > "$MCP_ARG_pidfile"
      line=$(head -c 100000 /dev/zero | tr '\\0' x)
      i=0
      while [ $i -lt "$MCP_ARG_count" ]; do
        mcpd-tool log info "$i $line" || exit 1
        i=$((i + 1))
      done
      echo flooded
  - name: hello
    description: Greets.
    shell: 'printf hello'
"""


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for pid %d" % (field, pid))


def test_stream_not_read_ends_the_call(t):
    """A tool floods log messages (200 MB of them) to a client that never
    reads its response stream: the worker queues at most
    limits.stream_buffer for it (its peak RSS, from /proc, stays far
    under the flood), then closes the stream, stops the tool and says why
    in the log, and serves other clients meanwhile and after."""
    port = free_port()
    # Freed memory is kept in a sanitizer build's quarantine (256 MB by
    # default), which would hide what the worker really keeps.
    env = {"ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=8"]))}
    d = t.mcpd(FLOOD_CONFIG % {"port": port}).start(env=env, wait_url_port=port)
    worker = wait_for(lambda: len(d.workers()) == 1 and d.workers()[0], what="the worker")
    before = status_kib(worker, "VmHWM")
    pidfile = os.path.join(t.dir, "pid")
    meta = dict(META, **{"io.modelcontextprotocol/logLevel": "info"})
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "flood", "arguments": {"pidfile": pidfile, "count": 2000},
                                  "_meta": meta}}).encode()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n"
              b"Mcp-Method: tools/call\r\nMcp-Name: flood\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    # ... and never reads.
    pid = wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip() and
                   int(open(pidfile).read()), what="the tool to start")
    st, _, r, _ = req(port, "tools/call", {"name": "hello"}, name="hello")
    check(r["result"]["content"][0]["text"] == "hello", r)
    # Stopped, or (without a bound) done flooding: either way over.
    wait_for(lambda: not alive(pid), timeout=120, what="the flooding tool to end")
    grown = status_kib(worker, "VmHWM") - before
    check(grown < 64 * 1024, "the worker grew by %d KiB for a client that does not read" % grown)
    d.wait_log(r"the client does not read its stream: \d+ bytes wait, more than limits.stream_buffer "
               r"\(8388608\); closing it")
    d.wait_log(r"tools/call of tool flood ended: the client did not read its stream "
               r"\(limits.stream_buffer\); stopping the tool")
    check(d.workers() == [worker], "the worker was replaced")
    st, _, r, _ = req(port, "tools/call", {"name": "hello"}, name="hello")
    check(r["result"]["content"][0]["text"] == "hello", r)
    s.close()
    d.stop()


def test_changed_is_bounded(t):
    """mcpd-tool changed from a tool in a loop: every worker of every
    instance would tell every stream about each, so one call gets 20 at
    once and 10 a second after, then an error it can see; a URI over
    4096 bytes is refused with an error, never dropped while the tool is
    told it went out (both were silent before)."""
    d, port = start(t)
    st, _, r, _ = req(port, "tools/call", {"name": "flood", "arguments": {"uri": "file:///" + "x" * 5000}},
                      name="flood")
    text = r["result"]["content"][0]["text"]
    check("longer than 4096 bytes" in text and "uri refused" in text, text)
    # 20 at once; the loop may earn one or two more while it runs.
    n = int(text.split("refused at ")[1].split()[0]) if "refused at " in text else None
    check(n is not None and 21 <= n <= 25, text)
    st, _, r, _ = req(port, "tools/call", {"name": "flood", "arguments": {"uri": "file:///ok"}}, name="flood")
    text = r["result"]["content"][0]["text"]
    check("uri refused" not in text and "refused at " in text, text)
    check(alive(d.proc.pid), "mcpd died")
