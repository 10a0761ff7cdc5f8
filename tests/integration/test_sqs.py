"""The sqs transport plugin (plugins/sqs: SNS fan-out to a queue per
worker) with the dynamodb storage, against moto's server with IAM
authentication on (awspeer.Moto): the transport suite, mcpd instances
sharing sessions, cancellation, elicitation answers, Last-Event-ID
resumption, list changes and the internal authorization server's state
through AWS services only, the conformance suite behind a balancer, the
queues of a dead instance swept, a missing topic."""

import json
import os
import re
import subprocess
import time

from awspeer import Moto
from harness import (MCP_HEADERS, MCPD, Skip, check, conformance_config, free_port, http, mcp_session,
                     node_peers_ready, rpc, run_mcpd, sse_events, wait_for)
from test_redis import TOOLS, RoundRobin, alive, call, get_stream, key_file, post_stream, read_until


def moto_server(t):
    m = Moto(t.dir).start()
    t.daemons.append(m)
    return m


def backends(t, m, prefix="q", transport_extra=""):
    return ("storage: { plugin: dynamodb, table: mcpd, endpoint: \"%s\", create_table: true }\n"
            "transport: { plugin: sqs, endpoint: \"%s\", topic: mcpd, create_topic: true, queue_prefix: \"%s-\"%s }\n"
            "request_state: { key_file: %s }\n" % (m.url, m.url, prefix, transport_extra, key_file(t)))


def ready(port, workers):
    return all(http(port, "GET", "/readyz")[0] == 200 for _ in range(3 * workers))


def instances(t, m, n=3, workers=2, transport_extra="", extra="", env=None):
    """n instances, named A, B, C...; returns [(daemon, port)]."""
    out = []
    for i in range(n):
        name = "ABCDEFGH"[i]
        port = free_port()
        d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: %d\n%s%s%s"
                   % (port, workers, backends(t, m, transport_extra=transport_extra), extra,
                      TOOLS % {"name": name}), name="%s.yaml" % name)
        e = m.env()
        e.update(env or {})
        d.start(env=e, wait_url_port=port)
        out.append((d, port))
    for d, port in out:
        wait_for(lambda: ready(port, workers), timeout=20, what="instance ready")
    return out


def test_transport_suite_against_sqs(t):
    """The unit suite of the network transports, against moto: two plugin
    instances in one process, messages on awkward channel names, counts of
    subscribers across them, a service that is not there."""
    m = moto_server(t)
    exe = os.path.join(os.path.dirname(os.path.abspath(MCPD)), "unit-tests")
    check(os.access(exe, os.X_OK), "no unit-test binary at %s" % exe)
    env = dict(os.environ, CK_RUN_SUITE="transport", MCPD_TEST_SQS_ENDPOINT=m.url, **m.env())
    env.pop("MCPD_TEST_NATS_URL", None)
    p = subprocess.run([exe], env=env, capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    check(p.returncode == 0 and re.search(r"Checks: 3, Failures: 0, Errors: 0", out), out[-3000:])


def test_a_session_is_served_by_every_instance(t):
    m = moto_server(t)
    (a, pa), (b, pb), (c, pc) = instances(t, m)
    sid = mcp_session(pa)
    check(call(pb, sid, "where") == "B" and call(pc, sid, "where") == "C")
    for port in (pa, pb, pc):
        st, r, _ = rpc(port, sid, "tools/list", {})
        check(st == 200 and len(r["result"]["tools"]) == 6, (port, st, r))
    queues = m.client("sqs").list_queues(QueueNamePrefix="q-").get("QueueUrls", [])
    check(len(queues) == 6, "a queue per worker of each instance: %s" % queues)
    st, _, _ = http(pb, "DELETE", "/mcp", None, {"Mcp-Session-Id": sid})
    check(st == 200)
    for port in (pa, pb, pc):
        st, r, _ = rpc(port, sid, "ping")
        check(st == 404, "after DELETE on B, %d answered %s" % (port, st))
    for d, _ in ((a, pa), (b, pb), (c, pc)):
        d.stop()
    # A worker that stops takes its queue and its subscription away.
    check(m.client("sqs").list_queues(QueueNamePrefix="q-").get("QueueUrls", []) == [], "queues left")
    subs = m.client("sns").list_subscriptions()["Subscriptions"]
    check(subs == [], "subscriptions left: %s" % subs)


def test_cancel_from_another_instance(t):
    m = moto_server(t)
    (a, pa), (b, pb), (c, pc) = instances(t, m)
    sid = mcp_session(pa)
    pidfile = os.path.join(t.dir, "slow")
    s = post_stream(pa, sid, {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                               "params": {"name": "slow", "arguments": {"pidfile": pidfile}}})
    wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), what="the tool to start")
    tool = int(open(pidfile).read())
    st, _, _ = http(pc, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": 7}}), dict(MCP_HEADERS, **{"Mcp-Session-Id": sid}))
    check(st == 202)
    wait_for(lambda: not alive(tool), timeout=5, what="the tool cancelled from C to die")
    s.close()
    for d, _ in ((a, pa), (b, pb), (c, pc)):
        d.stop()


def test_elicitation_answered_on_another_instance(t):
    m = moto_server(t)
    (a, pa), (b, pb) = instances(t, m, n=2)
    sid = mcp_session(pa, caps={"elicitation": {}})
    s = post_stream(pa, sid, {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                               "params": {"name": "ask", "arguments": {}}})
    data = read_until(s, b"elicitation/create")
    ask = [json.loads(l[6:]) for l in data.decode().split("\n")
           if l.startswith("data: ") and "elicitation/create" in l][0]
    st, _, _ = http(pb, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": ask["id"],
                    "result": {"action": "accept", "content": {}}}),
                    dict(MCP_HEADERS, **{"Mcp-Session-Id": sid}))
    check(st == 202, "answer on B: %s" % st)
    data = read_until(s, b'"id":9', data)
    s.close()
    check(b"answer accept" in data, data[-400:])
    a.stop()
    b.stop()


def test_resume_on_another_instance(t):
    """Events logged in DynamoDB: the client loses A and resumes on B from
    the last id it saw; nothing is lost or repeated."""
    m = moto_server(t)
    (a, pa), (b, pb) = instances(t, m, n=2)
    sid = mcp_session(pa)
    s = post_stream(pa, sid, {"jsonrpc": "2.0", "id": 11, "method": "tools/call",
                               "params": {"name": "chatty", "arguments": {}, "_meta": {"progressToken": "p"}}})
    data = b""
    while data.count(b"notifications/progress") < 2:
        data = read_until(s, b"\n\n", data + s.recv(4096))
    events = [e for e in sse_events(re.sub(rb"\r\n[0-9a-f]+\r\n", b"", data.split(b"\r\n\r\n", 1)[1]))
              if e.get("data")]
    last = events[-1]["id"]
    s.close()       # the connection to A is lost; the client tries B
    st, hdrs, body = http(pb, "GET", "/mcp", None, {"Accept": "text/event-stream", "Mcp-Session-Id": sid,
                          "MCP-Protocol-Version": "2025-11-25", "Last-Event-ID": last}, timeout=15)
    check(st == 200, (st, body[:300]))
    got = [json.loads(e["data"]) for e in sse_events(body) if e.get("data")]
    seen = [json.loads(e["data"])["params"]["progress"] for e in events if "notifications/progress" in e["data"]]
    resumed = [x["params"]["progress"] for x in got if x.get("method") == "notifications/progress"]
    check(seen + resumed == [1, 2, 3, 4, 5], "before %s, resumed on B %s" % (seen, resumed))
    check(got[-1].get("id") == 11 and got[-1]["result"]["content"][0]["text"].strip() == "done", got)
    a.stop()
    b.stop()


def test_list_changed_reaches_every_instance(t):
    m = moto_server(t)
    (a, pa), (b, pb) = instances(t, m, n=2)
    sid = mcp_session(pa)
    g = get_stream(pa, sid)
    data = read_until(g, b"\r\n\r\n")
    check(data.startswith(b"HTTP/1.1 200"), data[:200])
    check(call(pb, sid, "change") == "changed")
    data = read_until(g, b"notifications/tools/list_changed", data)
    g.close()
    a.stop()
    b.stop()


def test_internal_oauth_server_on_aws(t):
    """auth: internal keeps clients, codes and tokens in DynamoDB and tells
    revocations through SNS/SQS: a token issued by A is accepted by B,
    refreshed at B, revoked at A and refused everywhere."""
    from test_oauth import add_user, dead_everywhere, form_post, mcp_status, refresh, register, tokens_for
    m = moto_server(t)
    add_user(t, "alice", "alice-pw", "tools.admin")
    pa, pb = free_port(), free_port()
    auth = "auth: { plugin: internal, users_file: users, resource: \"http://127.0.0.1:%d/mcp\" }\n" % pa
    out = []
    for name, port in (("A", pa), ("B", pb)):
        d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\n%s%s%s" % (port, backends(t, m), auth, TOOLS % {"name": name}),
                   name="%s.yaml" % name)
        d.start(env=m.env(), wait_url_port=port)
        out.append(d)
    for port in (pa, pb):
        wait_for(lambda: ready(port, 2), timeout=20, what="ready")
    client = register(pa)
    client, tok = tokens_for(pa, client)
    for port in (pa, pb):
        for _ in range(4):
            check(mcp_status(port, tok) == 200, "token refused on %d" % port)
    st, _, tok2 = refresh(pb, client, tok["refresh_token"])
    check(st == 200, tok2)
    check(mcp_status(pa, tok2) == 200)
    st, _, _ = form_post(pa, "/oauth/revoke", {"token": tok2["access_token"], "client_id": client["client_id"]})
    check(st == 200)
    dead_everywhere(pb, tok2)
    items = m.client("dynamodb").scan(TableName="mcpd")["Items"]
    keys = [i["pk"]["S"] for i in items]
    check(any(k.startswith("oauth:rt") for k in keys), keys)
    check(not any(tok["refresh_token"] in k for k in keys), "a token in the clear")
    for d in out:
        d.stop()


def test_conformance_behind_a_balancer(t):
    """The official conformance suite through a round-robin balancer over
    two instances sharing DynamoDB and SNS/SQS."""
    if not node_peers_ready():
        raise Skip("tests/node/node_modules missing: run scripts/install-deps.sh test")
    from test_conformance import EXPECTED, failures, suite
    m = moto_server(t)
    ports = []
    for name in ("A", "B"):
        port = free_port()
        t.mcpd(conformance_config(t.dir, port, workers=2, extra=backends(t, m)),
               name=name + ".yaml").start(env=m.env(), wait_url_port=port)
        ports.append(port)
    for port in ports:
        wait_for(lambda: ready(port, 2), timeout=20, what="ready")
    lb = RoundRobin(ports)
    try:
        for version in ("2025-11-25", "2026-07-28"):
            p, checks, summary = suite(t, lb.port, version, "--suite", "all", "--spec-version", version)
            bad = failures(checks)
            mm = re.search(r"Total: (\d+) passed, (\d+) failed", summary)
            check(p.returncode == 0 and not bad and mm and mm.group(2) == "0",
                  "conformance %s: exit %d\n%s\n%s\n%s" % (version, p.returncode, "\n".join(bad),
                                                          summary, p.stderr[-2000:]))
            check(len(checks) == EXPECTED[version], "%s ran %d scenarios" % (version, len(checks)))
            print("     behind the balancer, %s: %s checks in %d scenarios" % (version, mm.group(1), len(checks)))
        check(lb.n > 20, "the balancer saw only %d connections" % lb.n)
    finally:
        lb.close()


def test_queues_of_a_dead_instance_are_swept(t):
    """An instance killed with SIGKILL leaves its queues (and their
    subscriptions); a live instance deletes them once their heartbeat is
    older than queue_expiry, and keeps its own."""
    m = moto_server(t)
    sqs = m.client("sqs")
    (a, pa), = instances(t, m, n=1, transport_extra=", queue_expiry: 3s")
    dead = sqs.list_queues(QueueNamePrefix="q-")["QueueUrls"]
    check(len(dead) == 2, dead)
    tags = sqs.list_queue_tags(QueueUrl=dead[0]).get("Tags", {})
    check("mcpd-heartbeat" in tags and tags.get("mcpd-subscription", "").startswith("arn:aws:sns:"), tags)
    a.kill()
    (b, pb), = instances(t, m, n=1, transport_extra=", queue_expiry: 3s")
    mine = [u for u in sqs.list_queues(QueueNamePrefix="q-")["QueueUrls"] if u not in dead]
    check(len(mine) == 2, mine)
    wait_for(lambda: sorted(sqs.list_queues(QueueNamePrefix="q-").get("QueueUrls", [])) == sorted(mine),
             timeout=20, interval=0.3, what="the dead instance's queues swept")
    subs = [s["Endpoint"] for s in m.client("sns").list_subscriptions()["Subscriptions"]]
    check(len(subs) == 2 and not any(u.rsplit("/", 1)[1] in " ".join(subs) for u in dead), subs)
    b.wait_log("deleting queue .*no heartbeat")
    # The survivor still works, heartbeats and all.
    time.sleep(3.5)
    check(sorted(sqs.list_queues(QueueNamePrefix="q-")["QueueUrls"]) == sorted(mine), "a live queue was swept")
    sid = mcp_session(pb)
    check(call(pb, sid, "where") == "A")
    b.stop()


def test_a_missing_topic(t):
    """Without create_topic the topic must exist: mcpd -t and a start say
    it does not (the master asks the service when it reads the file)."""
    m = moto_server(t)
    port = free_port()
    conf = ("listen: [127.0.0.1:%d]\nworkers: 1\nstorage: { plugin: dynamodb, table: mcpd, endpoint: \"%s\", "
            "create_table: true }\ntransport: { plugin: sqs, endpoint: \"%s\", topic: absent, queue_prefix: x- }\n"
            "request_state: { key_file: %s }\n" % (port, m.url, m.url, key_file(t)))
    path = os.path.join(t.dir, "check.yaml")
    with open(path, "w") as f:
        f.write(conf)
    rc, out, err = run_mcpd("-t", "-c", path, env=m.env())
    check(rc != 0 and "topic absent does not exist" in out + err, (rc, out, err))
    # A workers' view: the topic goes away after the file was read.
    m.client("sns").create_topic(Name="absent")
    d = t.mcpd(conf)
    d.start(env=m.env(), wait_url_port=port)
    wait_for(lambda: http(port, "GET", "/readyz")[0] == 200, timeout=15, what="ready with the topic")
    d.stop()
    arn = [x["TopicArn"] for x in m.client("sns").list_topics()["Topics"] if x["TopicArn"].endswith(":absent")][0]
    m.client("sns").delete_topic(TopicArn=arn)
    d = t.mcpd(conf, name="again.yaml")
    d.start(env=m.env())
    wait_for(lambda: "topic absent does not exist" in d.log(), timeout=15, what="the error at start")
    d.kill()
    m.client("sns").create_topic(Name="absent")
    d = t.mcpd(conf.replace("queue_prefix: x-", "queue_prefix: y-"), name="late.yaml")
    d.start(env=m.env(), wait_url_port=port)
    wait_for(lambda: http(port, "GET", "/readyz")[0] == 200, timeout=15, what="ready once the topic exists")
    d.stop()


def test_configuration_errors(t):
    path = os.path.join(t.dir, "bad.yaml")
    env = {"AWS_ACCESS_KEY_ID": "AKIDX", "AWS_SECRET_ACCESS_KEY": "x", "AWS_REGION": "us-east-1"}
    cases = [
        ("transport: { plugin: sqs }\n", r"bad\.yaml.*sqs needs topic"),
        ("transport: { plugin: sqs, topic: \"a b\" }\n", r"bad\.yaml:\d+.*topic must be"),
        ("transport: { plugin: sqs, topic: t.fifo }\n", r"bad\.yaml:\d+.*needs fifo: true"),
        ("transport: { plugin: sqs, topic: t, fifo: true }\n", r"bad\.yaml:\d+.*must end in \.fifo"),
        ("transport: { plugin: sqs, topic: t, queue_prefix: \"no/slash\" }\n", r"bad\.yaml:\d+.*queue_prefix"),
        ("transport: { plugin: sqs, topic: t, wait: 30s }\n", r"bad\.yaml:\d+.*wait must be"),
        ("transport: { plugin: sqs, topic: t, queue_expiry: 1s }\n", r"bad\.yaml:\d+.*queue_expiry must be"),
        ("transport: { plugin: sqs, topic: t, colour: red }\n", r"bad\.yaml:\d+.*colour"),
    ]
    for text, want in cases:
        with open(path, "w") as f:
            f.write("listen: [127.0.0.1:%d]\n%s" % (free_port(), text))
        rc, out, err = run_mcpd("-t", "-c", path, env=env)
        out += err
        check(rc != 0 and re.search(want, out), "%r: rc %s, %s" % (text, rc, out))
    with open(path, "w") as f:
        # (an endpoint where nothing listens: the check of the topic says
        # it could not ask, and that is not an error)
        f.write("listen: [127.0.0.1:%d]\ntransport: { plugin: sqs, topic: \"arn:aws:sns:us-east-1:1:t.fifo\", "
                "fifo: true, wait: 5s, queue_expiry: 1h, endpoint: \"http://127.0.0.1:%d\" }\n" % (free_port(), free_port()))
    rc, out, err = run_mcpd("-t", "-c", path, env=env)
    check(rc == 0 and "topic arn:aws:sns:us-east-1:1:t.fifo not checked" in out + err, out + err)


def test_fifo_topic_and_queues(t):
    """fifo: true: a FIFO topic and FIFO queues, each channel a message
    group; a list change and an elicitation answer cross instances as
    with a standard topic."""
    m = moto_server(t)
    out = []
    for name in ("A", "B"):
        port = free_port()
        d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\n%s%s"
                   % (port, backends(t, m).replace("topic: mcpd,", "topic: mcpd.fifo, fifo: true,"),
                      TOOLS % {"name": name}), name="%s.yaml" % name)
        d.start(env=m.env(), wait_url_port=port)
        out.append((d, port))
    (a, pa), (b, pb) = out
    for port in (pa, pb):
        wait_for(lambda: ready(port, 2), timeout=20, what="ready")
    queues = m.client("sqs").list_queues(QueueNamePrefix="q-")["QueueUrls"]
    check(len(queues) == 4 and all(u.endswith(".fifo") for u in queues), queues)
    sid = mcp_session(pa)
    g = get_stream(pa, sid)
    data = read_until(g, b"\r\n\r\n")
    check(call(pb, sid, "change") == "changed")
    data = read_until(g, b"notifications/tools/list_changed", data)
    g.close()
    sid = mcp_session(pa, caps={"elicitation": {}})
    s = post_stream(pa, sid, {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                               "params": {"name": "ask", "arguments": {}}})
    data = read_until(s, b"elicitation/create")
    ask = [json.loads(l[6:]) for l in data.decode().split("\n")
           if l.startswith("data: ") and "elicitation/create" in l][0]
    st, _, _ = http(pb, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": ask["id"],
                    "result": {"action": "accept", "content": {}}}), dict(MCP_HEADERS, **{"Mcp-Session-Id": sid}))
    check(st == 202, st)
    data = read_until(s, b'"id":9', data)
    s.close()
    check(b"answer accept" in data, data[-400:])
    a.stop()
    b.stop()


def test_an_emulator_that_hangs(t):
    """moto stops answering (SIGSTOP) without closing its connections: the
    long poll and the publishes end at their time bounds, /readyz says
    sqs is not answering while /healthz is answered all along, and once
    moto answers again the worker polls and is ready again."""
    m = moto_server(t)
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\nstorage: { plugin: lmdb, path: %s }\n"
               "transport: { plugin: sqs, endpoint: \"%s\", topic: mcpd, create_topic: true, queue_prefix: h-, "
               "wait: 1s, timeout: 500ms }\n%s" % (port, os.path.join(t.dir, "state"), m.url, TOOLS % {"name": "A"}))
    d.start(env=m.env(), wait_url_port=port)
    wait_for(lambda: ready(port, 1), timeout=20, what="ready")
    m.pause()
    try:
        wait_for(lambda: http(port, "GET", "/readyz")[0] == 503, timeout=10, what="/readyz 503 while moto hangs")
        st, _, body = http(port, "GET", "/readyz")
        check(b"sqs" in body and (b"timed out" in body or b"Timeout" in body), body)
        for _ in range(10):
            check(http(port, "GET", "/healthz")[0] == 200)
    finally:
        m.resume()
    wait_for(lambda: ready(port, 1), timeout=20, what="ready again")
    d.wait_log("sqs: the service answers again")
    d.stop()
