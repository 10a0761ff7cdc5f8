"""Persistent tool processes (persistent: true): one request a line on
stdin, one answer a line on stdout, progress and questions on fd 3 tagged
with the call. Answers reach the right calls under concurrency (several
instances, several workers, two mcpd instances on Redis), a crash fails
the call in flight and the next call works, a timeout, an unanswered
cancellation, an answer over the cap and garbage on stdout stop and
restart the process, a reload drains the old processes, and questions to
the client work under both protocol generations."""

import json
import os
import signal
import socket
import threading
import time

from harness import (MCP_HEADERS, alive, check, check_config_errors, free_port, http, key_file, mcp_session,
                     redis_server, rpc, sse_events, start_instances, wait_for)

TOOL = r"""
#!/usr/bin/env python3
'''A persistent tool for mcpd's tests: one request a line on stdin, one
answer a line on stdout, questions and progress on fd 3 tagged with the
call. Several calls at once (threads) when mcpd sends them.'''
import json
import os
import sys
import threading
import time

VERSION = sys.argv[1] if len(sys.argv) > 1 else "v1"
out_lock = threading.Lock()
chan_lock = threading.Lock()
cancelled = {}
replies = {}
reply_cv = threading.Condition()
next_q = [0]


def answer(obj):
    with out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def chan_send(obj):
    data = (json.dumps(obj) + "\n").encode()
    with chan_lock:
        while data:
            data = data[os.write(3, data):]


def chan_reader():
    buf = b""
    while True:
        d = os.read(3, 65536)
        if not d:
            return
        buf += d
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            m = json.loads(line)
            with reply_cv:
                replies[(m.get("call"), m.get("id"))] = m
                reply_cv.notify_all()


def ask(call, method, params):
    with reply_cv:
        next_q[0] += 1
        qid = next_q[0]
    chan_send({"jsonrpc": "2.0", "id": qid, "call": call, "method": method, "params": params})
    with reply_cv:
        while (call, qid) not in replies:
            if cancelled.get(call):
                return None
            reply_cv.wait(0.05)
        return replies.pop((call, qid))


def serve(req):
    cid, a = req["id"], req["arguments"]
    do = a.get("do", "echo")
    if do == "echo":
        answer({"id": cid, "output": "%s:%s:%d:%s" % (VERSION, a.get("x", ""), os.getpid(),
                                                      req["env"].get("MCP_TOOL_NAME"))})
    elif do == "json":
        answer({"id": cid, "output": {"x": a.get("x"), "pid": os.getpid()}})
    elif do == "error":
        answer({"id": cid, "error": "it went wrong: %s" % a.get("x", "")})
    elif do == "sleep":
        end = time.time() + float(a.get("s", 1))
        while time.time() < end:
            if cancelled.get(cid):
                answer({"id": cid, "error": "cancelled"})
                if a.get("mark"):
                    open(a["mark"], "w").write("cancelled %d" % cid)
                return
            time.sleep(0.02)
        answer({"id": cid, "output": "slept %d" % os.getpid()})
    elif do == "stuck":
        if a.get("mark"):
            open(a["mark"], "w").write(str(os.getpid()))
        time.sleep(3600)
    elif do == "crash":
        os._exit(3)
    elif do == "garbage":
        with out_lock:
            sys.stdout.write("this is not an answer\n")
            sys.stdout.flush()
    elif do == "huge":
        with out_lock:
            sys.stdout.write('{"id": %d, "output": "' % cid + "y" * int(a.get("n", 10)))
            sys.stdout.flush()
        time.sleep(3600)
    elif do == "big":
        answer({"id": cid, "output": "x" * int(a.get("n", 10))})
    elif do == "progress":
        for i in range(1, 4):
            chan_send({"jsonrpc": "2.0", "method": "notifications/progress", "call": cid,
                       "params": {"progress": i, "total": 3}})
        answer({"id": cid, "output": "progressed"})
    elif do == "ask":
        r = ask(cid, "elicitation/create", {"message": "Name?", "requestedSchema": {
            "type": "object", "properties": {"name": {"type": "string"}}}})
        if r is None:
            answer({"id": cid, "error": "cancelled while asking"})
            return
        res = r.get("result") or {}
        answer({"id": cid, "output": "hello %s" % (res.get("content") or {}).get("name", "?")})
    else:
        answer({"id": cid, "error": "unknown do %s" % do})


threading.Thread(target=chan_reader, daemon=True).start()
for line in sys.stdin:
    req = json.loads(line)
    if "cancel" in req:
        cancelled[req["cancel"]] = True
        continue
    threading.Thread(target=serve, args=(req,), daemon=True).start()
# End of input: mcpd drains this process; say so beside the script.
open(os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "eof.%d" % os.getpid()), "w").write("eof")
"""

V = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": V,
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}


def write_tool(t):
    path = os.path.join(t.dir, "ptool.py")
    with open(path, "w") as f:
        f.write(TOOL.lstrip("\n"))
    os.chmod(path, 0o755)
    return path


def tool_config(t, version="v1", instances=2, concurrency=4, timeout="3s", max_output="1KiB", extra=""):
    return """tools:
  - name: p
    description: A persistent test tool.
    input_schema: { type: object }
    command: [%s, %s]
    persistent: true
    instances: %d
    concurrency: %d
    timeout: %s
    max_output: %s
%s""" % (write_tool(t), version, instances, concurrency, timeout, max_output, extra)


def start(t, workers=1, **kw):
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: %d\n%s" % (port, workers, tool_config(t, **kw)))
    d.start(wait_url_port=port)
    return d, port


def call(port, sid, args, id=1, meta=None):
    params = {"name": "p", "arguments": args}
    if meta:
        params["_meta"] = meta
    st, r, events = rpc(port, sid, "tools/call", params, id=id)
    check(st == 200 and r is not None and "result" in r, (args, st, r))
    return r["result"], events


def text(res):
    return res["content"][0]["text"]


def ok(port, sid, x, id=1):
    res, _ = call(port, sid, {"x": x}, id=id)
    check(not res.get("isError"), res)
    v, got, pid, name = text(res).split(":")
    check(got == x and name == "p", res)
    return v, int(pid)


def failed(port, sid, args, want, id=1):
    res, _ = call(port, sid, args, id=id)
    check(res.get("isError") and want in text(res), (args, res))
    return text(res)


def tool_pids(d):
    """The pids of the persistent processes (ptool.py) under d's workers."""
    out = []
    for w in d.workers():
        try:
            with open("/proc/%d/task/%d/children" % (w, w)) as f:
                kids = [int(p) for p in f.read().split()]
        except OSError:
            continue
        for k in kids:
            try:
                with open("/proc/%d/cmdline" % k, "rb") as f:
                    if b"ptool.py" in f.read():
                        out.append(k)
            except OSError:
                pass
    return sorted(out)


def test_config_is_validated(t):
    path = write_tool(t)
    check_config_errors(t, [
        ("tools:\n  - name: a\n    description: A\n    command: [%s]\n    instances: 2\n" % path,
         r"bad\.yaml:6:\d+: tool \"a\": instances and concurrency need persistent: true"),
        ("tools:\n  - name: a\n    description: A\n    command: [%s]\n    persistent: true\n    concurrency: 0\n" % path,
         r"bad\.yaml:7:\d+: .*concurrency"),
        ("tools:\n  - name: a\n    description: A\n    command: [%s]\n    persistent: true\n    instances: 65\n" % path,
         r"bad\.yaml:7:\d+: .*instances"),
        ("tools:\n  - name: a\n    description: A\n    command: [%s]\n    persistent: maybe\n" % path,
         r"bad\.yaml:6:\d+: .*persistent"),
        ("tools:\n  - name: a\n    description: A\n    plugin: examples.so:add\n    persistent: true\n",
         r"bad\.yaml:6:\d+: tool \"a\": a plugin tool runs in-process"),
    ])


def test_answers_reach_their_calls(t):
    d, port = start(t, workers=2, instances=2, concurrency=3)
    sids = [mcp_session(port) for _ in range(4)]
    errors, pids = [], set()
    lock = threading.Lock()

    def client(k):
        try:
            for i in range(15):
                x = "c%d-%d" % (k, i)
                if i % 3 == 0:
                    res, _ = call(port, sids[k % 4], {"do": "sleep", "s": 0.05, "x": x}, id=1000 + i)
                    check(text(res).startswith("slept"), res)
                v, pid = ok(port, sids[k % 4], x, id=i + 1)
                with lock:
                    pids.add(pid)
        except Exception as e:  # noqa: BLE001 - reported below
            with lock:
                errors.append(repr(e))

    ths = [threading.Thread(target=client, args=(k,)) for k in range(16)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    check(not errors, errors[:3])
    # Processes kept running, never more than instances per worker.
    check(2 <= len(pids) <= 4, pids)
    running = tool_pids(d)
    check(pids == set(running), (pids, running))
    # Structured answers, errors and progress tagged with the call.
    res, _ = call(port, sids[0], {"do": "json", "x": 5})
    check(json.loads(text(res))["x"] == 5, res)
    failed(port, sids[0], {"do": "error", "x": "E"}, "it went wrong: E")
    res, events = call(port, sids[0], {"do": "progress"}, meta={"progressToken": "tok"})
    prog = [e["params"]["progress"] for e in events if e.get("method") == "notifications/progress"]
    check(text(res) == "progressed" and prog == [1, 2, 3], (res, events))
    d.stop()


def test_crash_mid_call(t):
    d, port = start(t, instances=1, concurrency=4)
    sid = mcp_session(port)
    _, pid = ok(port, sid, "first")
    # A call in flight on the same process fails with the crash too.
    box = {}
    th = threading.Thread(target=lambda: box.update(r=call(port, sid, {"do": "sleep", "s": 5}, id=7)))
    th.start()
    time.sleep(0.3)
    failed(port, sid, {"do": "crash"}, "exited with status 3 before it answered", id=8)
    th.join()
    check(box["r"][0].get("isError") and "exited with status 3" in text(box["r"][0]), box)
    check(not alive(pid), "the crashed process is still there")
    _, pid2 = ok(port, sid, "next")
    check(pid2 != pid, "not a new process")
    d.stop()


def test_timeout_kills_and_restarts(t):
    d, port = start(t, instances=1, concurrency=1, timeout="2s")
    sid = mcp_session(port)
    mark = os.path.join(t.dir, "stuck.pid")
    t0 = time.time()
    failed(port, sid, {"do": "stuck", "mark": mark}, "timed out after 2s")
    check(time.time() - t0 < 6, "the timeout took %.1fs" % (time.time() - t0))
    pid = int(open(mark).read())
    wait_for(lambda: not alive(pid), 5, "the stuck process to be killed")
    _, pid2 = ok(port, sid, "after")
    check(pid2 != pid)
    # A call queued behind a stuck one is served by the process started
    # in its place (its own timeout counts from when it was queued).
    box = {}
    th = threading.Thread(target=lambda: box.update(r=call(port, sid, {"do": "stuck"}, id=3)))
    th.start()
    time.sleep(1)
    check(ok(port, sid, "queued", id=4)[1] not in (pid, pid2))
    th.join()
    check("timed out" in text(box["r"][0]), box)
    d.wait_log(r"persistent process 0 \(pid \d+\) ran call \d+ past its timeout \(2000 ms\)")
    ok(port, sid, "again")
    d.stop()


def cancel(port, sid, id):
    st, _, _ = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": id}}),
                    dict(MCP_HEADERS, **{"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}))
    check(st == 202, st)


def test_cancellation(t):
    d, port = start(t, instances=1, concurrency=2)
    sid = mcp_session(port)
    _, pid = ok(port, sid, "first")
    mark = os.path.join(t.dir, "cancelled")
    box = {}
    th = threading.Thread(target=lambda: box.update(r=rpc(port, sid, "tools/call", {
        "name": "p", "arguments": {"do": "sleep", "s": 20, "mark": mark}}, id=9)))
    th.start()
    time.sleep(0.5)
    t0 = time.time()
    cancel(port, sid, 9)
    th.join(10)
    check(not th.is_alive() and time.time() - t0 < 2, "the cancelled call did not end")
    check(box["r"][1]["error"]["code"] == -32800, box)
    # The process heard it ({"cancel": id}) and keeps serving.
    wait_for(lambda: os.path.exists(mark), 5, "the process to see the cancellation")
    check(open(mark).read().startswith("cancelled "), open(mark).read())
    _, pid2 = ok(port, sid, "kept")
    check(pid2 == pid, "the process was restarted")
    # One that ignores the cancellation is killed after the grace period.
    smark = os.path.join(t.dir, "stuck.pid")
    th = threading.Thread(target=lambda: box.update(r=rpc(port, sid, "tools/call", {
        "name": "p", "arguments": {"do": "stuck", "mark": smark}}, id=10)))
    th.start()
    wait_for(lambda: os.path.exists(smark), 5, "the stuck call")
    cancel(port, sid, 10)
    th.join(10)
    wait_for(lambda: not alive(pid), 5, "the process that ignored its cancellation to be killed")
    d.wait_log(r"did not answer call \d+ within 2000 ms of its cancellation")
    _, pid3 = ok(port, sid, "restarted")
    check(pid3 != pid)
    d.stop()


def test_output_over_the_cap(t):
    d, port = start(t, instances=1, concurrency=1, max_output="1KiB")
    sid = mcp_session(port)
    _, pid = ok(port, sid, "first")
    res, _ = call(port, sid, {"do": "big", "n": 1024})
    check(not res.get("isError") and len(text(res)) == 1024, res)
    # An answer over the cap fails its call; the process keeps serving.
    failed(port, sid, {"do": "big", "n": 1025}, "produced more than 1024 bytes of output")
    check(ok(port, sid, "same")[1] == pid, "restarted after an answer over the cap")
    # A line that never ends past the cap: the process is stopped.
    failed(port, sid, {"do": "huge", "n": 200000}, "produced more than 1024 bytes of output")
    wait_for(lambda: not alive(pid), 5, "the process that wrote too much to be killed")
    check(ok(port, sid, "after")[1] != pid)
    d.stop()


def test_garbage_on_stdout(t):
    d, port = start(t, instances=1, concurrency=1)
    sid = mcp_session(port)
    _, pid = ok(port, sid, "first")
    failed(port, sid, {"do": "garbage"}, "no answer to a call in flight: this is not an answer")
    wait_for(lambda: not alive(pid), 5, "the process to be killed")
    check(ok(port, sid, "after")[1] != pid)
    d.stop()


def test_reload_drains_old_processes(t):
    d, port = start(t, workers=2, instances=1, concurrency=1)
    sid = mcp_session(port)
    old = set()
    for i in range(8):
        v, pid = ok(port, sid, "x%d" % i)
        check(v == "v1")
        old.add(pid)
    check(old == set(tool_pids(d)), (old, tool_pids(d)))
    text_cfg = open(d.config_path).read().replace(", v1]", ", v2]")
    d.write_config(text_cfg)
    d.signal(signal.SIGHUP)
    d.wait_log(r"reload", timeout=10)

    def new_version():
        sid2 = mcp_session(port)
        return ok(port, sid2, "y")[0] == "v2"
    wait_for(new_version, 15, "the reloaded tool to answer")
    for pid in old:
        wait_for(lambda: not alive(pid), 15, "old process %d to end" % pid)
        # Drained (end of file on stdin), not killed with its worker.
        check(os.path.exists(os.path.join(t.dir, "eof.%d" % pid)), "old process %d was not drained" % pid)
    sid3 = mcp_session(port)
    for i in range(6):
        check(ok(port, sid3, "z%d" % i)[0] == "v2")
    d.stop()


def test_questions_to_the_client(t):
    d, port = start(t, instances=1, concurrency=2)
    # 2025: the question goes out on the call's stream; the answer is
    # posted separately and reaches the process on fd 3.
    sid = mcp_session(port, caps={"elicitation": {}})
    body = json.dumps({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                       "params": {"name": "p", "arguments": {"do": "ask"}}}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Accept: application/json, text/event-stream\r\nMcp-Session-Id: " + sid.encode() +
              b"\r\nMCP-Protocol-Version: 2025-11-25\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    data = b""
    while b"elicitation/create" not in data:
        data += s.recv(4096)
    # Meanwhile another call on the same process is answered.
    check(ok(port, sid, "meanwhile", id=10)[0] == "v1")
    ask = [json.loads(l[6:]) for l in data.decode().split("\n") if l.startswith("data: ") and "elicitation" in l][0]
    st, _, _ = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": ask["id"],
                    "result": {"action": "accept", "content": {"name": "Ada"}}}),
                    dict(MCP_HEADERS, **{"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}))
    check(st == 202, st)
    while b'"id":9' not in data:
        data += s.recv(4096)
    s.close()
    check(b"hello Ada" in data, data[-500:])
    # 2026-07-28: the round ends with input_required (the process is told
    # to cancel the call); the retry with the answer completes it.
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
         "MCP-Protocol-Version": V, "Mcp-Method": "tools/call", "Mcp-Name": "p"}
    params = {"name": "p", "arguments": {"do": "ask"}, "_meta": META}
    st, _, body = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": params}), h)
    r = json.loads(body)
    res = r["result"]
    check(res["resultType"] == "input_required", r)
    (key, q), = res["inputRequests"].items()
    check(q["method"] == "elicitation/create", q)
    params.update(requestState=res["requestState"],
                  inputResponses={key: {"action": "accept", "content": {"name": "Grace"}}})
    st, _, body = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                       "params": params}), h)
    r = json.loads(body)
    check(r["result"]["content"][0]["text"] == "hello Grace", r)
    check(len(tool_pids(d)) == 1, "a process was restarted: %s" % tool_pids(d))
    d.stop()


def test_shell_script_with_the_read_loop(t):
    port = free_port()
    cfg = """listen: [127.0.0.1:%d]
workers: 1
tools:
  - name: sh
    description: A persistent shell loop.
    input: { name: string }
    persistent: true
    shell: |
      n=0
      while req=$(mcpd-tool next); do
        n=$((n + 1))
        name=$(mcpd-tool get arguments.name "$req")
        mcpd-tool progress 1 1
        if [ "$name" = fail ]; then mcpd-tool answer --error "$req" "no $name"; continue; fi
        mcpd-tool answer "$req" "hello $name, call $n of process $$"
      done
""" % port
    d = t.mcpd(cfg).start(wait_url_port=port)
    sid = mcp_session(port)
    got = []
    for i, name in enumerate(["a", "b", "fail", "c"]):
        st, r, events = rpc(port, sid, "tools/call", {"name": "sh", "arguments": {"name": name},
                                                       "_meta": {"progressToken": "t"}}, id=i + 1)
        got.append(r["result"])
        check(any(e.get("method") == "notifications/progress" for e in events), events)
    check(got[2].get("isError") and got[2]["content"][0]["text"] == "no fail", got[2])
    texts = [g["content"][0]["text"] for g in got if not g.get("isError")]
    pid = texts[0].rsplit(" ", 1)[1]
    check(texts == ["hello a, call 1 of process %s" % pid, "hello b, call 2 of process %s" % pid,
                    "hello c, call 4 of process %s" % pid], texts)
    d.stop()


def test_two_instances_on_redis(t):
    redis = redis_server(t)
    cfg = ("storage: { plugin: redis, url: \"%s\" }\ntransport: { plugin: redis, url: \"%s\" }\n"
           "request_state: { key_file: %s }\n" % (redis.url, redis.url, key_file(t))) + tool_config(t)
    (a, pa), (b, pb) = start_instances(t, 2, lambda name: cfg, workers=2)
    sid = mcp_session(pa)
    errors = []

    def client(k):
        try:
            for i in range(10):
                port = pa if (k + i) % 2 else pb
                ok(port, sid, "k%d-%d" % (k, i), id=k * 100 + i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
    ths = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    check(not errors, errors[:3])
    check(tool_pids(a) and tool_pids(b), (tool_pids(a), tool_pids(b)))
    a.stop()
    b.stop()


# Runs one command per request, so that tools written as one-shot
# commands (the conformance fixtures) are served through a persistent
# process: request lines, answers, untagged fd 3 lines, cancellation.
ADAPTER = r"""#!/usr/bin/env python3
import json, os, queue, re, signal, subprocess, sys, threading
argv = sys.argv[1:]
work = queue.Queue()
running = {}
cancelled = set()


def serve():
    while True:
        req = work.get()
        env = dict(os.environ)
        env.update(req["env"])
        for k, v in req["arguments"].items():
            env["MCP_ARG_" + re.sub(r"[^A-Za-z0-9]", "_", k)] = v if isinstance(v, str) else json.dumps(v)
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                             pass_fds=(3,), start_new_session=True)
        running[req["id"]] = p
        out, _ = p.communicate(json.dumps(req["arguments"]).encode() + b"\n")
        del running[req["id"]]
        if p.returncode < 0 and req["id"] not in cancelled:
            # A crash of the tool is a crash of the process, as mcpd
            # sees it (a task fails rather than completes with an error).
            os.kill(os.getpid(), -p.returncode)
            threading.Event().wait()    # no answer: the signal ends the process
        text = out.decode("utf-8", "replace")
        a = {"id": req["id"], "output": text} if p.returncode == 0 else {"id": req["id"], "error": text}
        sys.stdout.write(json.dumps(a) + "\n")
        sys.stdout.flush()


threading.Thread(target=serve, daemon=True).start()
for line in sys.stdin:
    req = json.loads(line)
    if "cancel" in req:
        cancelled.add(req["cancel"])
        p = running.get(req["cancel"])
        if p is not None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        continue
    work.put(req)
"""


def test_conformance_fixtures_served_persistent(t):
    """The official suite's tool scenarios (2025-11-25 and 2026-07-28)
    with every command tool of conf/conformance.yaml persistent."""
    import yaml
    from harness import Skip, conformance_config, node_peers_ready
    from test_conformance import failures, suite
    if not node_peers_ready():
        raise Skip("tests/node/node_modules missing: run scripts/install-deps.sh test")
    adapter = os.path.join(t.dir, "adapter.py")
    with open(adapter, "w") as f:
        f.write(ADAPTER)
    os.chmod(adapter, 0o755)
    port = free_port()
    cfg = yaml.safe_load(conformance_config(t.dir, port, workers=2))
    n = 0
    for tool in cfg["tools"]:
        if "command" in tool:
            argv = tool.pop("command")
        elif "shell" in tool:
            argv = ["/bin/sh", "-c", tool.pop("shell"), "mcpd-shell"]
        else:
            continue
        if not argv[0].startswith("/") and "/" not in argv[0]:
            argv[0] = "/usr/bin/" + argv[0] if os.path.exists("/usr/bin/" + argv[0]) else argv[0]
        tool["command"] = [adapter] + [os.path.join(t.dir, a) if a.startswith("conformance/") else a
                                       for a in argv]
        tool["persistent"] = True
        n += 1
    check(n >= 20, "only %d command tools" % n)
    # A scenario may leave a slow_compute task running: the stop below
    # waits for it this long (the harness's own wait is 30 s).
    cfg.setdefault("limits", {})["shutdown_timeout"] = "3s"
    d = t.mcpd(yaml.safe_dump(cfg, sort_keys=False)).start(wait_url_port=port)
    for version in ("2025-11-25", "2026-07-28"):
        p, checks, summary = suite(t, port, version, "--suite", "all", "--spec-version", version)
        tools_scenarios = {s: c for s, c in checks.items() if "tool" in s or "elicitation" in s or
                           "sampling" in s or "input-required" in s or "progress" in s or "logging" in s}
        bad = failures(tools_scenarios)
        check(tools_scenarios and not bad, "conformance %s with persistent tools:\n%s\n%s" % (
            version, "\n".join(bad), summary))
        print("     %s: %d tool scenarios pass with persistent tools (%d in all)" % (
            version, len(tools_scenarios), len(checks)))
    # The tasks extension's scenarios: their fixtures run as tasks, in
    # persistent processes (tasks/get, tasks/update, tasks/cancel).
    p, checks, summary = suite(t, port, "req-2026-07-28", "--requirements", "2026-07-28")
    tasks = {s: c for s, c in checks.items() if s.startswith("tasks-")}
    bad = failures(tasks)
    check(len(tasks) == 10 and not bad, "tasks scenarios with persistent tools (%d):\n%s\n%s" % (
        len(tasks), "\n".join(bad), summary))
    print("     2026-07-28: %d tasks scenarios pass with persistent tools" % len(tasks))
    d.stop()


def test_lambda_deadline_kills_the_process(t):
    """mcpd --lambda: a persistent process whose call reaches the
    invocation's deadline is killed at once, and the next invocation
    gets a new one."""
    from test_lambda import CONFIG as LCONFIG, Lambda, body_of, call_body, mcp_headers, v2_event
    cfg = LCONFIG % {"mode": "buffered", "max_body": "1MiB"} + """  - name: psleepy
    description: A persistent loop that sleeps on its calls.
    input: { pidfile: string }
    persistent: true
    shell: 'while req=$(mcpd-tool next); do echo $$ > "$(mcpd-tool get arguments.pidfile "$req")"; sleep 30; done'
  - name: phello
    description: A persistent loop that greets.
    persistent: true
    shell: 'while req=$(mcpd-tool next); do mcpd-tool answer "$req" "hi from $$"; done'
"""
    lam = Lambda(t, config=cfg).ready()
    pidfile = os.path.join(t.dir, "psleepy.pid")
    t0 = time.monotonic()
    r = lam.api.invoke(v2_event("POST", "/mcp", call_body("psleepy", {"pidfile": pidfile}),
                                mcp_headers("tools/call", "psleepy")), deadline_s=1.5).wait(10)
    took = time.monotonic() - t0
    res = json.loads(body_of(r.json()))["result"]
    check(res["isError"] is True and "deadline" in res["content"][0]["text"], res)
    check(took < 1.5, "answered after %.2fs" % took)
    pid = int(open(pidfile).read())
    wait_for(lambda: not alive(pid), timeout=2, what="the persistent process to be killed")
    texts = []
    for _ in range(2):
        r = lam.api.invoke(v2_event("POST", "/mcp", call_body("phello"), mcp_headers("tools/call", "phello"))).wait()
        texts.append(json.loads(body_of(r.json()))["result"]["content"][0]["text"])
    check(texts[0].startswith("hi from ") and texts[0] == texts[1], texts)
    lam.stop()


def test_a_process_that_cannot_start(t):
    """A persistent process that cannot be started fails the call that
    needed it at once, with why; once it can, the next call starts it."""
    d, port = start(t, instances=1, concurrency=1)
    script = os.path.join(t.dir, "ptool.py")
    os.rename(script, script + ".away")
    sid = mcp_session(port)
    t0 = time.time()
    st, r, _ = rpc(port, sid, "tools/call", {"name": "p", "arguments": {"x": "a"}})
    check(r["result"]["isError"] and "could not run" in r["result"]["content"][0]["text"] and
          "No such file" in r["result"]["content"][0]["text"], r)
    check(time.time() - t0 < 2, "the failure took %.1fs" % (time.time() - t0))
    os.rename(script + ".away", script)
    wait_for(lambda: rpc(port, sid, "tools/call", {"name": "p", "arguments": {"x": "b"}})[1]["result"]
             .get("isError") is None, 5, "the process to start")
    check(ok(port, sid, "c")[0] == "v1")
    d.stop()
