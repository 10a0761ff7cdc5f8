"""Transport messages over transport.compress_over cross instances
deflated, on real redis-server and nats-server: a large answer to a
tool's question (posted on one instance, awaited by the tool on another)
is seen compressed on the wire and arrives whole, also at an instance
whose own config has compression off."""

import hashlib
import json
import random
import socket
import threading
import time
import zlib

from harness import (TestFailure, check, check_config_errors, key_file, mcp_session, nats_server, redis_server, start_instances,
                     http, MCP_HEADERS)
from test_nats import read_until
from test_redis import post_stream
from test_sign import Resp, sign_key

TOOLS = """
tools:
  - name: ask_text
    description: Asks for a text; says its length and SHA-256.
    shell: 'a=$(mcpd-tool elicit "Text?" "{\\"type\\":\\"object\\"}") && t=$(printf %s "$a" | mcpd-tool get content.text) && printf "%s %s" "$${#t}" "$(printf %s "$t" | sha256sum | cut -c1-64)"'
"""


def backends(t, redis, nats, compress, sign=None):
    extra = (", compress_over: 1KiB" if compress else "") + (", sign_key_file: %s" % sign if sign else "")
    transport = ("transport: { plugin: nats, url: \"%s\"%s }\n" % (nats.url, extra) if nats else
                 "transport: { plugin: redis, url: \"%s\"%s }\n" % (redis.url, extra))
    return ("storage: { plugin: redis, url: \"%s\" }\n%srequest_state: { key_file: %s }\n%s"
            % (redis.url, transport, key_file(t), TOOLS))


def big_text(n, seed):
    """A log-like text that deflates well but not to nothing."""
    rnd = random.Random(seed)
    words = ["tool", "call", "step", "ok", "retry", "worker", "session", "bytes", "done", "error"]
    out, size = [], 0
    while size < n:
        out.append("%s=%d" % (rnd.choice(words), rnd.randrange(1000)))
        size += len(out[-1]) + 1
    return " ".join(out)[:n]


class Tap:
    """Every message on the broker, as it is on the wire, collected by a
    thread: redis (PSUBSCRIBE *) or nats (SUB >)."""

    def __init__(self, redis, nats):
        self.msgs = []
        if nats:
            self.s = socket.create_connection(("127.0.0.1", nats.port), timeout=5)
            self.f = self.s.makefile("rb")
            self.f.readline()
            self.s.sendall(b'CONNECT {"verbose":false}\r\nSUB > 1\r\nPING\r\n')
            while self.f.readline() != b"PONG\r\n":
                pass
            self.next = self._nats
        else:
            self.r = Resp(redis.port, "*")
            self.s = self.r.s
            self.next = lambda: self.r.message(timeout=None)[1]
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _nats(self):
        while True:
            line = self.f.readline()
            if not line:
                raise OSError("closed")
            w = line.split()
            if w[:1] == [b"MSG"]:
                return self.f.read(int(w[-1]) + 2)[:-2]
            if w[:1] == [b"PING"]:
                self.s.sendall(b"PONG\r\n")

    def _run(self):
        while True:
            try:
                self.msgs.append(self.next())
            except (OSError, ValueError, TestFailure):
                return      # closed

    def close(self):
        self.s.close()

    def carrying(self, text, timeout=5):
        """The messages seen whose content (inflated if compressed) holds
        text: [(compressed, length on the wire)]."""
        needle = json.dumps(text)[1:-1].encode()[:2000]
        deadline = time.monotonic() + timeout
        while True:
            out = []
            for m in list(self.msgs):
                if m.startswith(b"mcpd-sig1 "):
                    m = m.split(b"\n", 1)[1]       # signed: the body after the envelope's line
                if m[:2] == b"\0Z":
                    if needle in zlib.decompress(m[6:]):
                        out.append((True, len(m)))
                elif needle in m:
                    out.append((False, len(m)))
            if out or time.monotonic() > deadline:
                return out
            time.sleep(0.05)


def crosses(asker, answerer, sid, text):
    """A tool on asker asks; the client answers on answerer with text;
    the tool, on asker, gets it whole."""
    s = post_stream(asker, sid, {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                                 "params": {"name": "ask_text", "arguments": {}}})
    try:
        data = read_until(s, b"elicitation/create")
        ask = [json.loads(line[6:]) for line in data.decode().split("\n")
               if line.startswith("data: ") and "elicitation/create" in line][0]
        st, _, _ = http(answerer, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": ask["id"], "result": {
                        "action": "accept", "content": {"text": text}}}), dict(MCP_HEADERS, **{"Mcp-Session-Id": sid}))
        check(st == 202, "answer: %s" % st)
        data = read_until(s, b'"id":9', data)
    finally:
        s.close()
    want = "%d %s" % (len(text), hashlib.sha256(text.encode()).hexdigest())
    check(want.encode() in data, "the tool did not get the text whole: %r" % data[-300:])


def run(t, nats_too, signed=False):
    redis = redis_server(t)
    nats = nats_server(t) if nats_too else None
    sign = sign_key(t, "sign.key") if signed else None
    # A compresses, B does not.
    (a, pa), (b, pb) = start_instances(t, 2, lambda name: backends(t, redis, nats, name == "A", sign))
    tap = Tap(redis, nats)
    try:
        sid = mcp_session(pa, caps={"elicitation": {}})
        text = big_text(100000, 1)
        crosses(pb, pa, sid, text)      # A's message to B: compressed, read by B
        seen = tap.carrying(text)
        check(seen and all(c and n < len(text) // 2 for c, n in seen), "on the wire: %s" % seen)
        text = big_text(60000, 2)
        crosses(pa, pb, sid, text)      # B's to A: as it is
        seen = tap.carrying(text)
        check(seen and not any(c for c, _ in seen), "on the wire: %s" % seen)
        if signed:
            check(all(m.startswith(b"mcpd-sig1 ") for m in tap.msgs), "an unsigned message on the wire")
    finally:
        tap.close()
    a.stop()
    b.stop()


def test_large_messages_cross_compressed_on_redis(t):
    run(t, False)


def test_large_messages_cross_compressed_on_nats(t):
    run(t, True)


def test_large_messages_cross_compressed_and_signed(t):
    """Compressed, then signed (the signature covers what is on the wire):
    both instances check it and the receiver inflates it."""
    run(t, False, signed=True)


def test_configuration_errors(t):
    check_config_errors(t, [
        ("transport: { plugin: local, compress_over: 0 }\n", r"compress_over: \"0\" is not a size"),
        ("transport: { plugin: local, compress_over: lots }\n", r"compress_over: \"lots\" is not a size"),
        ("transport: { plugin: local, compress_over: 65MiB }\n", r"compress_over: \"65MiB\" is not a size"),
    ])
