"""limits.rate on the endpoint: a burst, then 429 with Retry-After and a
JSON-RPC error; per principal with auth, per client address without;
shared through Redis between instances; changed by SIGHUP. And a tool's
max_concurrent: a burst of calls to one tool leaves room for the others."""

import json
import os
import re
import signal
import subprocess
import threading

from harness import (MCP_HEADERS, MCPD, check, free_port, http, key_file, mcp_session, redis_server, rpc,
                     run_mcpd, start_instances, wait_for, workers_ready)

PING = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"})


def ping(port, sid, headers=None):
    h = dict(MCP_HEADERS, **{"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"})
    h.update(headers or {})
    return http(port, "POST", "/mcp", PING, h)


def check_429(st, hdrs, body):
    """The refusal: 429, Retry-After in whole seconds, a JSON-RPC error."""
    check(st == 429, (st, body[:300]))
    ra = hdrs.get("retry-after", "")
    check(re.fullmatch(r"[1-9][0-9]*", ra), "Retry-After: %r" % ra)
    msg = json.loads(body)
    check(msg.get("jsonrpc") == "2.0" and msg.get("id") is None, msg)
    check(msg["error"]["code"] == -32000 and "limits.rate" in msg["error"]["message"], msg)
    check(msg["error"]["data"]["retryAfter"] == int(ra), (msg, ra))
    return int(ra)


def limited_count(mport):
    st, _, body = http(mport, "GET", "/metrics")
    check(st == 200, st)
    m = re.search(r'^mcpd_limited_total\{limit="rate"\} (\d+)$', body.decode(), re.M)
    check(m, body.decode()[-2000:])
    return int(m.group(1))


def test_rate_burst_then_429(t):
    """Without auth the client's address is counted: initialize,
    initialized and 3 pings are the burst of 5; the next is refused, and
    /healthz is not counted. The metrics count the refusals."""
    port, mport = free_port(), free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\nmetrics: { listen: 127.0.0.1:%d }\n"
               "limits: { rate: { sustained: 1/m, burst: 5 } }\n" % (port, mport))
    d.start(wait_url_port=port)
    sid = mcp_session(port)
    for _ in range(3):
        st, _, body = ping(port, sid)
        check(st == 200, (st, body))
    for _ in range(2):
        ra = check_429(*ping(port, sid))
        check(ra <= 60, ra)     # one request's worth at 1/m
    check(http(port)[0] == 200, "healthz is not limited")
    check(limited_count(mport) == 2)
    d.stop()


def test_rate_config_errors(t):
    """Bad limits.rate values are errors at their line and column."""
    path = os.path.join(t.dir, "bad.yaml")
    cases = [
        ("limits:\n  rate: { sustained: 10 }\n", "3:22: limits.rate.sustained must be requests per second"),
        ("limits:\n  rate: { sustained: 10/d }\n", "3:22: limits.rate.sustained must be"),
        ("limits:\n  rate: { sustained: 0/s }\n", "3:22: limits.rate.sustained must be"),
        ("limits:\n  rate: { burst: 5 }\n", "3:9: limits.rate needs sustained"),
        ("limits:\n  rate: { sustained: 5/s, burst: 0 }\n", "3:36: limits.rate.burst"),
        ("limits:\n  rate: { sustained: 5/s, shared: maybe }\n", "3:37: limits.rate.shared"),
        ("limits:\n  rate: { sustained: 5/s, every: 1 }\n", "3:30: unknown key"),
    ]
    for text, want in cases:
        with open(path, "w") as f:
            f.write("listen: [127.0.0.1:1]\n" + text)
        rc, out, err = run_mcpd("-t", "-c", path)
        check(rc != 0 and ("%s:%s" % (path, want.split(":")[0])) in err and want.split(": ", 1)[1] in err,
              (text, want, err))


def api_keys(t, *users):
    """A keys file in t.dir for apikey auth: each user's key, in order."""
    keys = []
    for user in users:
        p = subprocess.run([MCPD, "-k", user], capture_output=True, text=True, timeout=10)
        check(p.returncode == 0, p.stderr)
        with open(os.path.join(t.dir, "keys"), "a") as f:
            f.write(p.stdout.strip() + "\n")
        keys.append(p.stderr.strip().splitlines()[-1])
    os.chmod(os.path.join(t.dir, "keys"), 0o600)
    return keys


def test_rate_per_principal(t):
    """With auth each principal has its own bucket: alice spent hers,
    bob is still served, alice is refused."""
    keys = api_keys(t, "alice", "bob")
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\nauth: { plugin: apikey, keys_file: keys }\n"
               "limits: { rate: { sustained: 1/m, burst: 3 } }\n" % port)
    d.start(wait_url_port=port)
    init = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                       "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                  "clientInfo": {"name": "t", "version": "1"}}})
    auth = [{"Authorization": "Bearer " + k} for k in keys]
    st, hdrs, _ = http(port, "POST", "/mcp", init, dict(MCP_HEADERS, **auth[0]))
    check(st == 200, st)
    sid = hdrs["mcp-session-id"]
    for _ in range(2):
        check(ping(port, sid, auth[0])[0] == 200)
    check_429(*ping(port, sid, auth[0]))
    st, hdrs, _ = http(port, "POST", "/mcp", init, dict(MCP_HEADERS, **auth[1]))
    check(st == 200, "bob has his own bucket: %s" % st)
    check_429(*ping(port, sid, auth[0]))
    d.stop()


def from_address(source, port, headers, body=PING):
    """A POST to the endpoint from the source address given: (status,
    headers, body)."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    c.request("POST", "/mcp", body, headers)
    r = c.getresponse()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    c.close()
    return out


def test_rate_refused_tokens_per_address(t):
    """With auth, requests refused 401 (no token, a bad one) count against
    their client address with limits.rate: past the burst that address is
    answered 429 before its token is checked, while accepted tokens never
    drew on it and another address is still served."""
    keys = api_keys(t, "alice", "bob")
    port, mport = free_port(), free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\nauth: { plugin: apikey, keys_file: keys }\n"
               "metrics: { listen: 127.0.0.1:%d }\n"
               "limits: { rate: { sustained: 1/m, burst: 3 } }\n" % (port, mport))
    d.start(wait_url_port=port)
    init = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                       "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                  "clientInfo": {"name": "t", "version": "1"}}})
    alice = dict(MCP_HEADERS, Authorization="Bearer " + keys[0])
    bob = dict(MCP_HEADERS, Authorization="Bearer " + keys[1])
    for _ in range(2):
        check(from_address("127.0.0.2", port, alice, init)[0] == 200)
    # Three refusals (no token, a bad one): the address's burst, though
    # alice's two requests came from it too.
    for h in (MCP_HEADERS, dict(MCP_HEADERS, Authorization="Bearer mcpd_nope"), MCP_HEADERS):
        st, _, body = from_address("127.0.0.2", port, h, init)
        check(st == 401, (st, body[:200]))
    # Then 429 before the token is looked at: no token, a bad one, a good one.
    for h in (MCP_HEADERS, dict(MCP_HEADERS, Authorization="Bearer mcpd_nope"), bob):
        check_429(*from_address("127.0.0.2", port, h, init))
    check(limited_count(mport) == 3)
    check("refused too often" in d.log(), d.log()[-1500:])
    # Another address has its own count.
    check(from_address("127.0.0.3", port, MCP_HEADERS, init)[0] == 401)
    check(from_address("127.0.0.3", port, bob, init)[0] == 200)
    d.stop()


def test_rate_shared_through_redis(t):
    """Two instances of 2 workers each, sharing one count in Redis: 6
    requests pass between them, then both refuse. (Per worker, 4 workers
    would let 24 through.)"""
    redis = redis_server(t)
    conf = ("storage: { plugin: redis, url: \"%s\" }\ntransport: { plugin: redis, url: \"%s\" }\n"
            "request_state: { key_file: %s }\n"
            "limits: { rate: { sustained: 1/h, burst: 6, shared: true } }\n" % (redis.url, redis.url, key_file(t)))
    (a, pa), (b, pb) = start_instances(t, 2, lambda name: conf, workers=2)
    sid = mcp_session(pa)                       # 2 requests
    for port in (pb, pa, pb, pa):               # 4 more: 6
        st, _, body = ping(port, sid)
        check(st == 200, (port, st, body))
    for port in (pa, pb, pa, pb):
        check_429(*ping(port, sid))
    keys = redis.cli("KEYS", "*rate:*")
    check("a:127.0.0.1" in keys, keys)
    a.stop()
    b.stop()


def test_rate_changed_by_sighup(t):
    """A rate added by SIGHUP applies to the new workers; removed by
    another SIGHUP, it is gone."""
    port = free_port()
    base = "listen: [127.0.0.1:%d]\nworkers: 1\n" % port
    d = t.mcpd(base)
    d.start(wait_url_port=port)
    sid = mcp_session(port)
    for _ in range(10):
        check(ping(port, sid)[0] == 200)

    def reload(text):
        old = set(d.workers())
        d.write_config(text)
        d.signal(signal.SIGHUP)
        wait_for(lambda: d.workers() and not (set(d.workers()) & old), what="new workers only")
        workers_ready(port, 1)
    reload(base + "limits: { rate: { sustained: 1/m, burst: 2 } }\n")
    # workers_ready's /readyz is not counted; the new worker's bucket is full
    check(ping(port, sid)[0] == 200)
    check(ping(port, sid)[0] == 200)
    check_429(*ping(port, sid))
    reload(base)
    for _ in range(10):
        check(ping(port, sid)[0] == 200)
    d.stop()


CONCURRENT = """
limits: { tool_processes: 3 }
tools:
  - name: slow
    description: Waits until its file exists.
    input: { go: string }
    shell: 'while [ ! -e "$MCP_ARG_go" ]; do sleep 0.05; done; echo slept'
    max_concurrent: 2
  - name: quick
    description: Answers at once.
    shell: 'echo quick'
"""


def test_max_concurrent_leaves_room_for_other_tools(t):
    """Of 3 tool processes, slow may hold 2: a third call of it is a
    clear tool error at once, while quick still runs; once the two end,
    slow runs again. The metrics count the refusal."""
    port, mport = free_port(), free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\nmetrics: { listen: 127.0.0.1:%d }\n%s"
               % (port, mport, CONCURRENT))
    d.start(wait_url_port=port)
    sid = mcp_session(port)
    go = os.path.join(t.dir, "go")
    results = []

    def slow_call(i):
        results.append(rpc(port, sid, "tools/call", {"name": "slow", "arguments": {"go": go}}, id=10 + i))
    threads = [threading.Thread(target=slow_call, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()

    def running():
        st, _, body = http(mport, "GET", "/metrics")
        m = re.search(r"^mcpd_processes_running (\d+)$", body.decode(), re.M)
        return m and int(m.group(1)) == 2
    wait_for(running, what="2 slow calls running")
    st, r, _ = rpc(port, sid, "tools/call", {"name": "slow", "arguments": {"go": go}}, id=20)
    check(st == 200 and r["result"]["isError"] is True, r)
    text = r["result"]["content"][0]["text"]
    check("slow is busy" in text and "max_concurrent" in text, text)
    for i in range(3):
        st, r, _ = rpc(port, sid, "tools/call", {"name": "quick", "arguments": {}}, id=30 + i)
        check(st == 200 and not r["result"].get("isError") and r["result"]["content"][0]["text"].strip() == "quick",
              r)
    open(go, "w").close()
    for th in threads:
        th.join(30)
    check(len(results) == 2 and all(r[1]["result"]["content"][0]["text"].strip() == "slept" for r in results),
          results)
    st, r, _ = rpc(port, sid, "tools/call", {"name": "slow", "arguments": {"go": go}}, id=40)
    check(r["result"]["content"][0]["text"].strip() == "slept", r)
    st, _, body = http(mport, "GET", "/metrics")
    check(re.search(r'^mcpd_limited_total\{limit="max_concurrent"\} 1$', body.decode(), re.M), body[-1500:])
    d.stop()


def test_max_concurrent_config_errors(t):
    path = os.path.join(t.dir, "bad.yaml")
    for text, want in [
        ("tools:\n  - name: a\n    shell: 'true'\n    max_concurrent: 0\n", ":5:21: a tool.max_concurrent must be between 1 and 100000"),
        ("tools:\n  - name: a\n    plugin: examples.so:add\n    max_concurrent: 2\n",
         ":5:21: tool \"a\": max_concurrent applies to command and shell tools"),
    ]:
        with open(path, "w") as f:
            f.write("listen: [127.0.0.1:1]\n" + text)
        rc, out, err = run_mcpd("-t", "-c", path)
        check(rc != 0 and want in err, (text, err))
