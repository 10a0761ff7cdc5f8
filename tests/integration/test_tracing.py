"""OpenTelemetry traces: spans exported over OTLP/HTTP (JSON) to a receiver
written from the OTLP specification (otlppeer.py: neither Debian nor npm
has a collector that runs here). A span per MCP request with the semantic
conventions for MCP, parented on the traceparent of _meta or the header;
children for the auth check, the session's storage calls and the tool's
process, whose TRACEPARENT names its span; sampling decided at the root
(the parent's flag honoured); a collector that is down costs spans,
counted in the metrics, and nothing else."""

import json
import os
import re
import signal
import time

from harness import MCP_HEADERS, check, free_port, http, mcp_session, rpc, run_mcpd, wait_for
from otlppeer import OtlpReceiver
from test_auth import bearer, make_key, session

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TP_UNSAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"

TOOLS = """
tools:
  - name: tp
    description: Prints TRACEPARENT.
    shell: 'echo "[$TRACEPARENT]"'
  - name: fails
    description: Exits 3.
    shell: 'echo no; exit 3'
"""


def start(t, rx_url, extra="", tracing="", workers=1):
    port, mport = free_port(), free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: %d\nmetrics: { listen: 127.0.0.1:%d }\n"
               "tracing: { endpoint: \"%s\", interval: 100ms%s }\n%s%s"
               % (port, workers, mport, rx_url, tracing, extra, TOOLS))
    d.start(wait_url_port=port)
    return d, port, mport


def metric(mport, name, **labels):
    st, _, body = http(mport, "GET", "/metrics")
    check(st == 200, st)
    want = name + ("{%s}" % ",".join('%s="%s"' % kv for kv in labels.items()) if labels else "")
    for line in body.decode().splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    raise AssertionError("no %s in the metrics" % want)


def by_name(spans, name):
    found = [s for s in spans if s["name"] == name]
    check(len(found) == 1, "%d spans named %r in %r" % (len(found), name, [s["name"] for s in spans]))
    return found[0]


def call_tp(port, sid, id, meta_tp=None, header_tp=None, key=None):
    params = {"name": "tp", "arguments": {}}
    if meta_tp:
        params["_meta"] = {"traceparent": meta_tp}
    h = {}
    if header_tp:
        h["traceparent"] = header_tp
    if key:
        h.update(bearer(key))
    st, msg, _ = rpc(port, sid, "tools/call", params, id=id, headers=h)
    check(st == 200 and "result" in msg, (st, msg))
    return msg["result"]["content"][0]["text"].strip()[1:-1]


def test_spans_of_a_tool_call(t):
    rx = OtlpReceiver().start()
    try:
        key = make_key(t, "alice")
        d, port, mport = start(t, rx.url, extra="auth: { plugin: apikey, keys_file: keys }\n"
                               "server: { name: tracer }\nlog: { format: json }\n")
        sid = session(port, key)
        tp_env = call_tp(port, sid, 7, meta_tp=TP, key=key)
        wait_for(lambda: any(s["name"] == "tools/call tp" for s in rx.snapshot()), what="the call's span")
        spans = [s for s in rx.snapshot() if s["trace"] == TP.split("-")[1]]
        root = by_name(spans, "tools/call tp")
        # The client's span is the parent; the server span has the MCP
        # conventions' name and attributes.
        check(root["parent"] == TP.split("-")[2] and root["kind"] == 2, root)
        a = root["attrs"]
        check(a["mcp.method.name"] == "tools/call" and a["gen_ai.tool.name"] == "tp" and
              a["gen_ai.operation.name"] == "execute_tool" and a["mcp.session.id"] == sid[:8] and
              a["jsonrpc.request.id"] == "7" and a["mcp.protocol.version"] == "2025-11-25" and
              a["user.id"] == "alice" and "error.type" not in a and root["status"] == 0, a)
        check(root["resource"]["service.name"] == "tracer" and root["scope"] == "mcpd", root["resource"])
        # Its children: the auth check, the session's storage read and the
        # tool's process, whose TRACEPARENT names the process span.
        proc = by_name(spans, "process tp")
        check(proc["parent"] == root["id"] and proc["attrs"]["mcpd.tool.outcome"] == "ok", proc)
        check(tp_env == "00-%s-%s-01" % (root["trace"], proc["id"]), (tp_env, proc))
        auth = by_name(spans, "auth")
        check(auth["parent"] == root["id"] and auth["attrs"]["user.id"] == "alice" and
              auth["attrs"]["mcpd.auth.plugin"] == "apikey", auth)
        stor = [s for s in spans if s["name"].startswith("storage ")]
        check(stor and all(s["parent"] == root["id"] and s["kind"] == 3 and
                           s["attrs"]["db.system.name"] == "lmdb" for s in stor), stor)
        for s in spans:
            if s is not root:
                check(root["start"] <= s["start"] and s["end"] <= root["end"] + 1000, (root, s))
        check(len({s["id"] for s in spans}) == len(spans), spans)
        # The header's context when _meta has none.
        tp2 = "00-%s-%s-01" % ("a" * 32, "b" * 16)
        env2 = call_tp(port, sid, 8, header_tp=tp2, key=key)
        wait_for(lambda: any(s["trace"] == "a" * 32 and s["name"] == "tools/call tp" for s in rx.snapshot()),
                 what="the span of the call with a traceparent header")
        root2 = [s for s in rx.snapshot() if s["trace"] == "a" * 32 and s["name"] == "tools/call tp"][0]
        check(root2["parent"] == "b" * 16 and env2.startswith("00-" + "a" * 32 + "-"), (root2, env2))
        # A new trace without any: a root span of our own.
        call_tp(port, sid, 9, key=key)
        st, msg, _ = rpc(port, sid, "tools/call", {"name": "fails", "arguments": {}}, id=10, headers=bearer(key))
        check(st == 200 and msg["result"]["isError"], msg)
        # A request id as long as a body may be: its attribute is cut at
        # 1024 bytes, on a character's start.
        long_id = "é" * 100000
        st, msg, _ = rpc(port, sid, "tools/call", {"name": "nope", "arguments": {}}, id=long_id, headers=bearer(key))
        check(st == 200 and "error" in msg, (st, str(msg)[:200]))
        wait_for(lambda: sum(s["name"] in ("tools/call fails", "tools/call") for s in rx.snapshot()) == 2,
                 what="the failed calls' spans")
        got = rx.snapshot()
        fails = by_name(got, "tools/call fails")
        check(fails["status"] == 2 and fails["attrs"]["error.type"] == "is_error", fails)
        fproc = [s for s in got if s["name"] == "process fails"][0]
        check(fproc["parent"] == fails["id"] and fproc["attrs"]["error.type"] == "is_error", fproc)
        nope = by_name(got, "tools/call")
        check(nope["status"] == 2 and nope["attrs"]["error.type"] == "-32602" and
              nope["attrs"]["rpc.response.status_code"] == "-32602", str(nope)[:300])
        check(nope["attrs"]["jsonrpc.request.id"] == "é" * 512, len(nope["attrs"]["jsonrpc.request.id"]))
        own = [s for s in got if s["name"] == "tools/call tp" and s["trace"] not in (TP.split("-")[1], "a" * 32)]
        check(len(own) == 1 and own[0]["parent"] == "", own)
        check(rx.errors == [], rx.errors)
        # The access log's JSON lines name what the spans name, and join
        # them by trace and span id.
        wait_for(lambda: d.log().count('"mcp.method.name":"tools/call"') == 5, what="5 access lines of tools/call")
        lines = [json.loads(l[l.index("{"):]) for l in d.log().splitlines() if '"type":"access"' in l]
        calls = [l for l in lines if l.get("mcp.method.name") == "tools/call"]
        check(len(calls) == 5, calls)
        first = calls[0]
        check(first["trace_id"] == root["trace"] and first["span_id"] == root["id"] and
              first["gen_ai.tool.name"] == "tp" and first["mcp.session.id"] == sid[:8] and
              first["user.id"] == "alice" and first["status"] == 200 and first["duration_ms"] > 0 and
              "error.type" not in first, first)
        check(calls[1]["trace_id"] == "a" * 32 and calls[1]["span_id"] == root2["id"], calls[1])
        check(calls[3]["gen_ai.tool.name"] == "fails" and calls[3]["error.type"] == "is_error" and
              calls[3]["span_id"] == fails["id"], calls[3])
        check(calls[4]["error.type"] == "-32602" and "gen_ai.tool.name" not in calls[4], calls[4])
        # The whole session id, a credential, is in neither.
        check(sid not in d.log() and sid not in json.dumps(rx.snapshot()), "the session id was written whole")
        note = [l for l in lines if l.get("mcp.method.name") == "notifications/initialized"]
        check(len(note) == 1 and note[0]["mcp.session.id"] == sid[:8] and note[0]["user.id"] == "alice" and
              note[0]["status"] == 202, note)
        init = [l for l in lines if l.get("mcp.method.name") == "initialize"]
        check(len(init) == 1 and init[0]["user.id"] == "alice" and len(init[0]["trace_id"]) == 32, init)
        # Every span received was counted as exported, none dropped.
        wait_for(lambda: metric(mport, "mcpd_tracing_spans_exported_total") == len(rx.snapshot()),
                 what="the exported count to reach %d" % len(rx.snapshot()))
        check(metric(mport, "mcpd_tracing_spans_dropped_total", reason="queue_full") == 0)
        check(metric(mport, "mcpd_tracing_spans_dropped_total", reason="export_failed") == 0)
        d.stop()
    finally:
        rx.stop()


def test_stateless_requests_from_every_worker(t):
    """2026-07-28 requests (no session) get their spans too, with the
    protocol version of _meta, from whichever worker serves them."""
    from test_stateless import req
    rx = OtlpReceiver().start()
    try:
        d, port, _ = start(t, rx.url, workers=2)
        wait_for(lambda: len(d.workers()) == 2, what="2 workers")
        # Which worker accepts a connection is the kernel's choice: under
        # load one may take a long run of them, so calls go on (in rounds
        # of 20, at most 400) until both have served some.
        n = 0
        while n < 400:
            for i in range(n, n + 20):
                st, _, msg, _ = req(port, "tools/call", {"name": "tp", "arguments": {},
                                                         "_meta": {"traceparent": TP}}, id=i + 1, name="tp")
                check(st == 200 and "result" in msg, (st, msg))
            n += 20
            wait_for(lambda: sum(s["name"] == "tools/call tp" for s in rx.snapshot()) == n,
                     what="%d spans of tools/call" % n)
            if len({s["resource"]["service.instance.id"] for s in rx.snapshot()
                    if s["name"] == "tools/call tp"}) == 2:
                break
        roots = [s for s in rx.snapshot() if s["name"] == "tools/call tp"]
        check(all(s["trace"] == TP.split("-")[1] and s["parent"] == TP.split("-")[2] and
                  s["attrs"]["mcp.protocol.version"] == "2026-07-28" and "mcp.session.id" not in s["attrs"]
                  for s in roots), roots)
        check(sorted(int(s["attrs"]["jsonrpc.request.id"]) for s in roots) == list(range(1, n + 1)), roots)
        procs = [s for s in rx.snapshot() if s["name"] == "process tp"]
        check(sorted(p["parent"] for p in procs) == sorted(r["id"] for r in roots), procs)
        # Both workers served some, each exporting its own.
        check(len({s["resource"]["service.instance.id"] for s in roots}) == 2, roots)
        d.stop()
    finally:
        rx.stop()


def test_redis_calls_are_children(t):
    """With a storage and transport that answer later, from the loop
    (Redis), the calls of a request's chain are still its children: the
    session's read, and those its completion starts."""
    from harness import redis_server
    redis = redis_server(t)
    rx = OtlpReceiver().start()
    try:
        d, port, _ = start(t, rx.url, workers=2,
                           extra="storage: { plugin: redis, url: \"%s\" }\n"
                                 "transport: { plugin: redis, url: \"%s\" }\n" % (redis.url, redis.url))
        wait_for(lambda: len(d.workers()) == 2, what="2 workers")
        sid = mcp_session(port)
        call_tp(port, sid, 3, meta_tp=TP)
        wait_for(lambda: any(s["name"] == "tools/call tp" for s in rx.snapshot()), what="the call's span")
        spans = [s for s in rx.snapshot() if s["trace"] == TP.split("-")[1]]
        root = by_name(spans, "tools/call tp")
        stor = [s for s in spans if s["name"].startswith("storage ")]
        check(stor and all(s["parent"] == root["id"] and s["attrs"]["db.system.name"] == "redis" for s in stor),
              [(s["name"], s["parent"]) for s in spans])
        check(any(s["attrs"]["db.operation.name"] == "get" for s in stor), [s["name"] for s in stor])
        # The session's creation: its writes are children of initialize's
        # span (the other worker may have served it: its batch comes later).
        wait_for(lambda: any(s["name"] == "initialize" for s in rx.snapshot()), what="initialize's span")
        init = [s for s in rx.snapshot() if s["name"] == "initialize"]
        check(len(init) == 1, init)
        kids = [s for s in rx.snapshot() if s["parent"] == init[0]["id"]]
        check({"storage set", "storage index_add"} <= {s["name"] for s in kids}, [s["name"] for s in kids])
        check(all(s["parent"] == init[0]["id"] for s in rx.snapshot() if s["trace"] == init[0]["trace"] and s is not init[0]
                  and s["name"].startswith("storage ")), rx.snapshot())
        d.stop()
    finally:
        rx.stop()


def test_task_storage_calls_are_children(t):
    """A task's record writes are children of its tools/call span, also
    those made after the answer went out, when its command ends (a
    process's exit, outside any request's chain)."""
    from test_tasks import call, until
    rx = OtlpReceiver().start()
    try:
        port = free_port()
        gate = os.path.join(t.dir, "gate")
        d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\nstorage: { plugin: memory }\n"
                   "tracing: { endpoint: \"%s\", interval: 100ms }\n"
                   "tools:\n  - name: wait\n    description: Waits for a file.\n    input: { gate: string }\n"
                   "    shell: 'while [ ! -e \"$MCP_ARG_gate\" ]; do sleep 0.05; done; echo opened'\n"
                   "    task: must\n" % (port, rx.url))
        d.start(wait_url_port=port)
        try:
            st, r = call(port, "wait", {"gate": gate})
            tid = r["result"]["taskId"]
            time.sleep(0.3)     # (the call's own span ends with its task)
            before = [s for s in rx.snapshot() if s["name"] == "storage set"]
            check(len(before) == 1, [(s["name"], s["parent"]) for s in rx.snapshot()])
        finally:
            open(gate, "w").close()     # the command ends, whatever happened
        check(until(port, tid, ("completed",))["status"] == "completed")
        wait_for(lambda: any(s["name"] == "tools/call wait" for s in rx.snapshot()), what="the call's span")
        time.sleep(0.3)
        root = by_name(rx.snapshot(), "tools/call wait")
        check(before[0]["parent"] == root["id"], (before, root))
        spans = [s for s in rx.snapshot() if s["trace"] == root["trace"]]
        sets = [s for s in spans if s["name"] == "storage set" and s["parent"] == root["id"]]
        check(len(sets) > len(before), "no write of the completed task under the call's span: %r"
              % [(s["name"], s["parent"]) for s in spans])
        check(all(s["parent"] == root["id"] for s in spans if s["name"].startswith("storage ")),
              [(s["name"], s["parent"]) for s in spans])
        d.stop()
    finally:
        rx.stop()


def test_sampling(t):
    """sample: 0 records no trace of our own, but a sampled parent's; a
    parent that did not sample is not recorded at sample: 1."""
    rx = OtlpReceiver().start()
    try:
        d, port, _ = start(t, rx.url, tracing=", sample: 0", extra="storage: { plugin: memory }\n")
        sid = mcp_session(port)
        for i in range(5):
            call_tp(port, sid, 100 + i)
        env = call_tp(port, sid, 200, meta_tp=TP)
        wait_for(lambda: any(s["name"] == "tools/call tp" for s in rx.snapshot()), what="the sampled call's span")
        # A little longer, for anything that should not come.
        time.sleep(0.5)
        got = rx.snapshot()
        check({s["trace"] for s in got} == {TP.split("-")[1]}, [(s["trace"], s["name"]) for s in got])
        check(env.split("-")[1] == TP.split("-")[1], env)
        d.stop()

        rx.spans.clear()
        d, port, _ = start(t, rx.url, tracing=", sample: 1", extra="storage: { plugin: memory }\n")
        sid = mcp_session(port)
        env = call_tp(port, sid, 1, meta_tp=TP_UNSAMPLED)
        # Unsampled: the tool still gets the caller's context as it came.
        check(env == TP_UNSAMPLED, env)
        call_tp(port, sid, 2)
        wait_for(lambda: any(s["name"] == "tools/call tp" for s in rx.snapshot()), what="the own trace's span")
        time.sleep(0.5)
        check(all(s["trace"] != TP_UNSAMPLED.split("-")[1] for s in rx.snapshot()), rx.snapshot())
        d.stop()
    finally:
        rx.stop()


def test_collector_down_drops_and_counts(t):
    """A collector that never answers: each export waits for its timeout
    while the calls go on, the queue stays within its bound (full: spans
    dropped), both losses are counted and logged; the daemon answers on,
    at its usual pace. Then one that refuses connections."""
    import socket
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(64)     # never accepted, never answered
    try:
        d, port, mport = start(t, "http://127.0.0.1:%d" % hang.getsockname()[1],
                               tracing=", queue: 4, batch: 2, timeout: 500ms, retry: 0s",
                               extra="storage: { plugin: memory }\n")
        sid = mcp_session(port)
        began = time.monotonic()
        for i in range(30):
            call_tp(port, sid, i + 1)
        check(time.monotonic() - began < 5, "the calls waited for the collector")
        check(metric(mport, "mcpd_tracing_spans_dropped_total", reason="queue_full") > 0,
              "30 calls of 3 spans each, a queue of 4: some must have found it full")
        wait_for(lambda: metric(mport, "mcpd_tracing_spans_dropped_total", reason="export_failed") >= 2,
                 what="a timed out export counted")
        check(metric(mport, "mcpd_tracing_spans_exported_total") == 0)
        check(re.search(r"tracing: \d+ spans lost: http://127\.0\.0\.1:\d+/v1/traces: Timeout", d.log()),
              d.log()[-2000:])
        st, _, _ = http(port, "GET", "/healthz")
        check(st == 200)
        d.stop()
    finally:
        hang.close()
    dead = free_port()
    d, port, mport = start(t, "http://127.0.0.1:%d" % dead, tracing=", retry: 0s", extra="storage: { plugin: memory }\n")
    sid = mcp_session(port)
    call_tp(port, sid, 1)
    wait_for(lambda: metric(mport, "mcpd_tracing_spans_dropped_total", reason="export_failed") >= 3,
             what="the refused export counted")
    check(re.search(r"tracing: \d+ spans lost: http://127\.0\.0\.1:%d/v1/traces: Couldn't connect" % dead,
                    d.log()), d.log()[-2000:])
    call_tp(port, sid, 2)
    d.stop()


def test_collector_down_then_up(t):
    """A collector that is down (connections refused) when the first
    batch goes: the batch is tried again with a growing back-off, the
    calls go on unhurried meanwhile, and once the collector is up the
    spans arrive, nothing counted lost."""
    cport = free_port()
    d, port, mport = start(t, "http://127.0.0.1:%d" % cport, extra="storage: { plugin: memory }\n")
    sid = mcp_session(port)
    call_tp(port, sid, 1)
    time.sleep(1.5)     # the first attempt (after 100 ms) and a second have failed
    began = time.monotonic()
    for i in range(20):
        call_tp(port, sid, i + 2)
    check(time.monotonic() - began < 5, "the calls waited for the collector")
    rx = OtlpReceiver(port=cport).start()
    try:
        wait_for(lambda: sum(s["name"] == "tools/call tp" for s in rx.snapshot()) == 21, timeout=20,
                 what="every call's span, once the collector is up")
        wait_for(lambda: metric(mport, "mcpd_tracing_spans_exported_total") == len(rx.snapshot()),
                 what="all counted exported")
        check(metric(mport, "mcpd_tracing_spans_dropped_total", reason="export_failed") == 0)
        check("spans lost" not in d.log(), d.log()[-1500:])
        ids = [s["id"] for s in rx.snapshot()]
        check(len(ids) == len(set(ids)), "a span received twice")
        d.stop()
    finally:
        rx.stop()


def test_headers_and_endpoint_path(t):
    """headers: go with every export; an endpoint with a path is used as is."""
    rx = OtlpReceiver().start()
    try:
        d, port, _ = start(t, rx.url + "/v1/traces",
                           tracing=', headers: ["Authorization: Bearer s3cret", "X-Tenant: blue"]',
                           extra="storage: { plugin: memory }\n")
        sid = mcp_session(port)
        call_tp(port, sid, 1)
        wait_for(lambda: rx.requests, what="an export")
        h = {k.lower(): v for k, v in rx.requests[0][0].items()}
        check(h.get("authorization") == "Bearer s3cret" and h.get("x-tenant") == "blue", h)
        check(h.get("content-type") == "application/json" and h.get("user-agent", "").startswith("mcpd/"), h)
        d.stop()
    finally:
        rx.stop()


def test_a_collector_that_says_later(t):
    """503 and 429 (come back later, as OTLP lets a collector say): the
    same batch again after a back-off (about 1 s, then 2 s), nothing lost; a
    collector that keeps saying so gets attempts until tracing.retry is
    over, then the batch is counted lost."""
    rx = OtlpReceiver().start()
    try:
        rx.faults = [503, 429]
        d, port, mport = start(t, rx.url, extra="storage: { plugin: memory }\n")
        sid = mcp_session(port)
        began = time.monotonic()
        call_tp(port, sid, 1)
        wait_for(lambda: any(s["name"] == "tools/call tp" for s in rx.snapshot()), timeout=15,
                 what="the batch, on its third attempt")
        took = time.monotonic() - began
        check(rx.refused == 2 and 1.5 <= took < 6, (rx.refused, took))
        wait_for(lambda: metric(mport, "mcpd_tracing_spans_exported_total") == len(rx.snapshot()),
                 what="all exported")
        check(metric(mport, "mcpd_tracing_spans_dropped_total", reason="export_failed") == 0)
        ids = [s["id"] for s in rx.snapshot()]
        check(len(ids) == len(set(ids)), "a span received twice")
        # A Retry-After of 3 s is waited for, not the first back-off's 1 s.
        rx.faults = [(503, 3)]
        n = len(rx.snapshot())
        began = time.monotonic()
        call_tp(port, sid, 2)
        wait_for(lambda: len(rx.snapshot()) > n, timeout=15, what="the batch after its Retry-After")
        took = time.monotonic() - began
        check(2.9 <= took < 6, took)
        d.stop()
        # retry: 2s: an attempt, one after 0.75-1 s, and a third would
        # come 1.5-2 s later, past the 2 s.
        rx.faults = [503] * 10
        rx.refused = 0
        d, port, mport = start(t, rx.url, tracing=", retry: 2s", extra="storage: { plugin: memory }\n")
        sid = mcp_session(port)
        n = len(rx.snapshot())
        call_tp(port, sid, 1)
        wait_for(lambda: metric(mport, "mcpd_tracing_spans_dropped_total", reason="export_failed") > 0,
                 timeout=15, what="the batch lost after two attempts")
        check(rx.refused == 2, rx.refused)
        check(re.search(r"tracing: \d+ spans lost: .* answered HTTP 503 \(attempt 2\)", d.log()), d.log()[-1500:])
        check(len(rx.snapshot()) == n, rx.snapshot()[n:])
        d.stop()
    finally:
        rx.stop()


def test_https_collector_and_its_ca(t):
    """An https collector: its certificate checked against ca_file (spans
    arrive), and refused without it (the export fails, counted)."""
    import ssl
    from harness import make_cert
    cert, key = make_cert(t.dir)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    rx = OtlpReceiver(tls=ctx).start()
    try:
        check(rx.url.startswith("https://"), rx.url)
        d, port, mport = start(t, rx.url, tracing=", ca_file: %s" % cert, extra="storage: { plugin: memory }\n")
        sid = mcp_session(port)
        call_tp(port, sid, 1)
        wait_for(lambda: any(s["name"] == "tools/call tp" for s in rx.snapshot()), what="spans over https")
        d.stop()
        n = len(rx.snapshot())
        d, port, mport = start(t, rx.url, extra="storage: { plugin: memory }\n")
        sid = mcp_session(port)
        call_tp(port, sid, 1)
        wait_for(lambda: metric(mport, "mcpd_tracing_spans_dropped_total", reason="export_failed") >= 3,
                 what="the export to an unknown certificate counted as failed")
        check(len(rx.snapshot()) == n, rx.snapshot()[n:])
        check(re.search(r"tracing: \d+ spans lost: https://127\.0\.0\.1:\d+/v1/traces: (SSL|Peer)", d.log()),
              d.log()[-1500:])
        d.stop()
    finally:
        rx.stop()


def test_a_stopping_worker_sends_its_spans(t):
    """Spans still queued when a worker drains (a stop, a reload) go out
    before it exits, long before their interval."""
    rx = OtlpReceiver().start()
    try:
        port, mport = free_port(), free_port()
        d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\nstorage: { plugin: memory }\n"
                   "tracing: { endpoint: \"%s\", interval: 10m }\n%s" % (port, rx.url, TOOLS))
        d.start(wait_url_port=port)
        sid = mcp_session(port)
        call_tp(port, sid, 1)
        time.sleep(0.3)
        check(rx.snapshot() == [], rx.snapshot())
        d.signal(signal.SIGHUP)     # the worker drains, a new one serves
        wait_for(lambda: any(s["name"] == "tools/call tp" for s in rx.snapshot()), what="the drained worker's spans")
        call_tp(port, mcp_session(port), 2)    # (memory storage: the old sessions went with it)
        d.stop()
        check(sum(s["name"] == "tools/call tp" for s in rx.snapshot()) == 2, rx.snapshot())
    finally:
        rx.stop()


def test_stdio_spans(t):
    """mcpd --stdio traces too: the request's _meta decides, and what is
    queued goes out when the client ends the session (stdin closed)."""
    from test_stdio import Stdio
    rx = OtlpReceiver().start()
    try:
        s = Stdio(t, "storage: { plugin: memory }\ntracing: { endpoint: \"%s\", interval: 10m }\n%s"
                  % (rx.url, TOOLS))
        s.initialize()
        r = s.request(5, "tools/call", {"name": "tp", "arguments": {}, "_meta": {"traceparent": TP}})
        env = r["result"]["content"][0]["text"].strip()[1:-1]
        s.proc.stdin.close()
        check(s.wait_exit() == 0, s.d.log())
        got = rx.snapshot()
        root = by_name(got, "tools/call tp")
        proc = by_name(got, "process tp")
        check(root["parent"] == TP.split("-")[2] and root["trace"] == TP.split("-")[1] and
              "network.protocol.name" not in root["attrs"] and root["attrs"]["jsonrpc.request.id"] == "5", root)
        check(proc["parent"] == root["id"] and env == "00-%s-%s-01" % (root["trace"], proc["id"]), (proc, env))
    finally:
        rx.stop()


def test_tracing_config_errors(t):
    path = os.path.join(t.dir, "bad.yaml")
    cases = [
        ('tracing: { endpoint: "ftp://x" }', r"bad\.yaml:1:\d+: tracing\.endpoint must be the collector's http"),
        ('tracing: { endpoint: "http://127.0.0.1:4318", sample: 2 }',
         r"bad\.yaml:1:\d+: tracing\.sample must be a number from 0 to 1"),
        ('tracing: { endpoint: "http://127.0.0.1:4318", sample: lots }', r"tracing\.sample must be a number"),
        ("tracing: { sample: 0.5 }", r"bad\.yaml:1:\d+: tracing needs endpoint"),
        ('tracing: { endpoint: "http://h:1", queue: 10, batch: 20 }', r"tracing\.batch \(20\) must not exceed"),
        ('tracing: { endpoint: "http://h:1", headers: ["no colon"] }', r"header line"),
        ('tracing: { endpoint: "http://h:1", colour: red }', r"unknown key \"colour\" in tracing"),
        ('tracing: { endpoint: "http://h:1", interval: 1ms }', r"tracing\.interval must be between"),
    ]
    for text, want in cases:
        with open(path, "w") as f:
            f.write(text + "\nlisten: [127.0.0.1:1]\n")
        rc, _, err = run_mcpd("-t", "-c", path)
        check(rc != 0 and re.search(want, err), (text, rc, err))
    with open(path, "w") as f:
        f.write('tracing: { endpoint: "http://127.0.0.1:4318", sample: 0.25, queue: 100, batch: 10,\n'
                '  interval: 2s, timeout: 3s, service_name: x, headers: ["A: b"] }\nlisten: [127.0.0.1:1]\n')
    rc, _, err = run_mcpd("-t", "-c", path)
    check(rc == 0, err)
