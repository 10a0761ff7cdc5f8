#!/usr/bin/env python3
"""Large messages between two mcpd instances: a plugin tool on A asks the
client (elicitation/create), the client answers on B with a log-like
text of SIZE bytes, and B's transport carries the answer to A, where the
tool's result comes back. CLIENTS clients at once (each its own session),
for SECONDS.

  transport.py PORT_A PORT_B SIZE CLIENTS SECONDS

Prints "crossings N per_s X p50_ms Y p99_ms Z"."""

import json
import random
import sys
import threading
import time

from crossing import Reader, open_stream, pct, post
import http.client


def text(n, seed):
    rnd = random.Random(seed)
    words = ["tool", "call", "step", "ok", "retry", "worker", "session", "bytes", "done", "error"]
    out, size = [], 0
    while size < n:
        out.append("%s=%d" % (rnd.choice(words), rnd.randrange(1000)))
        size += len(out[-1]) + 1
    return " ".join(out)[:n]


def client(k, pa, pb, size, until, times, errors):
    try:
        ca = http.client.HTTPConnection("127.0.0.1", pa, timeout=30)
        cb = http.client.HTTPConnection("127.0.0.1", pb, timeout=30)
        r, _ = post(ca, {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                         "params": {"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}},
                                    "clientInfo": {"name": "transport", "version": "1"}}})
        sid = r.getheader("Mcp-Session-Id")
        post(ca, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
        body = text(size, k)
        i = 0
        while time.monotonic() < until:
            i += 1
            rid = 5000 + i
            st = Reader(open_stream(pa, sid, {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                                               "params": {"name": "confirm", "arguments": {}}}))
            ask = st.until(b"elicitation/create")
            ask += st.until(b"\n")
            line = [ln for ln in ask.decode().split("\n") if "elicitation/create" in ln][-1]
            qid = json.loads(line[line.index("{"):])["id"]
            t0 = time.perf_counter()
            post(cb, {"jsonrpc": "2.0", "id": qid, "result": {"action": "accept", "content": {"log": body}}}, sid)
            st.until(b'"id":%d' % rid)
            times.append(time.perf_counter() - t0)
            st.s.close()
    except BaseException as e:      # sys.exit in Reader included
        errors.append(repr(e))


def main():
    pa, pb, size, clients, secs = (int(a) for a in sys.argv[1:6])
    until = time.monotonic() + secs
    times, errors = [], []
    ths = [threading.Thread(target=client, args=(k, pa, pb, size, until, times, errors)) for k in range(clients)]
    t0 = time.monotonic()
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    if errors:
        sys.exit("transport.py: %s" % errors[0])
    el = time.monotonic() - t0
    print("crossings %d per_s %.0f p50_ms %.2f p99_ms %.2f" % (len(times), len(times) / el, pct(times, 50),
                                                                pct(times, 99)))


if __name__ == "__main__":
    main()
