#!/usr/bin/env python3
"""Latency of messages that cross from one mcpd instance to another.

  crossing.py PORT_A PORT_B N

One session. Two measurements, N times each:
  changed  a GET stream is open on A; a tool call posted to B runs
           `mcpd-tool changed tools`; time until A's stream carries
           notifications/tools/list_changed (includes spawning the tool).
  answer   a plugin tool on A asks the client (elicitation/create); the
           answer is posted to B; time until A's stream carries the result.
With PORT_A == PORT_B the same figures for one instance. Prints
"changed_p50_ms X changed_p99_ms Y answer_p50_ms X answer_p99_ms Y"."""

import http.client
import json
import socket
import sys
import time

HDRS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25"}


def post(conn, body, sid=None):
    h = dict(HDRS)
    if sid:
        h["Mcp-Session-Id"] = sid
    conn.request("POST", "/mcp", json.dumps(body), h)
    r = conn.getresponse()
    data = r.read()
    if r.status not in (200, 202):
        sys.exit("crossing: %s answered %d %r" % (body.get("method"), r.status, data[:200]))
    return r, data


def open_stream(port, sid, body=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    if body is None:
        s.sendall(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                  b"MCP-Protocol-Version: 2025-11-25\r\nMcp-Session-Id: %s\r\n\r\n" % sid.encode())
    else:
        data = json.dumps(body).encode()
        s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\n"
                  b"Mcp-Session-Id: %s\r\nContent-Length: %d\r\n\r\n" % (sid.encode(), len(data)) + data)
    return s


WITHIN = 30         # seconds a crossing may take before the run fails


class Reader:
    def __init__(self, s):
        self.s, self.buf, self.pos = s, b"", 0

    def until(self, needle, within=WITHIN):
        """Waits for needle after what was already consumed; returns the text up to it.
        A stream's keep-alive comments would keep recv() from timing out, so a
        message lost on its way would hang the run: the wait has a deadline."""
        deadline = time.monotonic() + within
        while True:
            i = self.buf.find(needle, self.pos)
            if i >= 0:
                out = self.buf[self.pos:i + len(needle)]
                self.pos = i + len(needle)
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                sys.exit("crossing: no %r within %d s: a message was lost between the instances" % (needle, within))
            self.s.settimeout(left)
            try:
                c = self.s.recv(65536)
            except socket.timeout:
                continue
            if not c:
                sys.exit("crossing: stream ended waiting for %r" % needle)
            self.buf += c


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))] * 1000


def main():
    pa, pb, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    ca = http.client.HTTPConnection("127.0.0.1", pa, timeout=30)
    cb = http.client.HTTPConnection("127.0.0.1", pb, timeout=30)
    r, _ = post(ca, {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                     "params": {"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}},
                                "clientInfo": {"name": "crossing", "version": "1"}}})
    sid = r.getheader("Mcp-Session-Id")
    post(ca, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)

    g = Reader(open_stream(pa, sid))
    g.until(b"\r\n\r\n")
    changed = []
    for i in range(n):
        t0 = time.perf_counter()
        post(cb, {"jsonrpc": "2.0", "id": 1000 + i, "method": "tools/call",
                  "params": {"name": "change", "arguments": {}}}, sid)
        g.until(b"notifications/tools/list_changed")
        changed.append(time.perf_counter() - t0)
    g.s.close()

    answer = []
    for i in range(n):
        rid = 5000 + i
        st = Reader(open_stream(pa, sid, {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                                           "params": {"name": "confirm", "arguments": {}}}))
        ask = st.until(b"elicitation/create")
        ask += st.until(b"\n")
        line = [l for l in ask.decode().split("\n") if "elicitation/create" in l][-1]
        qid = json.loads(line[line.index("{"):])["id"]
        t0 = time.perf_counter()
        post(cb, {"jsonrpc": "2.0", "id": qid, "result": {"action": "accept", "content": {}}}, sid)
        st.until(b'"id":%d' % rid)
        answer.append(time.perf_counter() - t0)
        st.s.close()
    print("changed_p50_ms %.2f changed_p99_ms %.2f answer_p50_ms %.2f answer_p99_ms %.2f"
          % (pct(changed, 50), pct(changed, 99), pct(answer, 50), pct(answer, 99)))


if __name__ == "__main__":
    main()
