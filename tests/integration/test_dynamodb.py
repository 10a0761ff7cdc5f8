"""The dynamodb storage plugin (plugins/dynamodb) against moto's server with
IAM authentication on (awspeer.Moto): every call signed with SigV4 and
checked by a peer we did not write. The storage contract, instances
sharing sessions, refused credentials and signatures, a missing table, an
emulator that hangs, and the service going away and coming back."""

import json
import os
import re

from awspeer import REGION, AwsRelay, moto_server
from harness import (sid_hash, RoundRobin, call_tool, check, check_config_errors, deleted_everywhere, down_and_back, free_port,
                     http, key_file, mcp_session, rpc, run_mcpd, run_unit_suite, serve, storage_hangs, wait_for,
                     workers_ready)

TOOLS = """
tools:
  - name: where
    description: The instance that runs the tool.
    shell: 'echo %(name)s'
"""


def instance(t, m, name="A", workers=2, table="mcpd", extra="", storage_extra="", env=None, port=None,
             transport="", endpoint=None, ready=True):
    port = port or free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: %d\nstorage: { plugin: dynamodb, table: %s, endpoint: \"%s\", "
               "create_table: true%s }\n%srequest_state: { key_file: %s }\n%s%s"
               % (port, workers, table, endpoint or m.url, storage_extra, transport, key_file(t), extra,
                  TOOLS % {"name": name}), name="%s.yaml" % name)
    e = m.env()
    e.update(env or {})
    d.start(env=e, wait_url_port=port)
    if ready:
        workers_ready(port, workers, timeout=20)
    return d, port


def test_storage_suite_against_dynamodb(t):
    """The unit suite every storage backend passes, against moto with IAM
    authentication: a call signed wrong would fail every check."""
    m = moto_server(t)
    # Three backends (memory, lmdb, dynamodb), ten checks each.
    run_unit_suite("storage", 34, env=dict(m.env(), MCPD_TEST_DYNAMODB_ENDPOINT=m.url),
                   unset=["MCPD_TEST_REDIS_URL", "MCPD_TEST_POSTGRES_URL"], timeout=300)
    tables = m.client("dynamodb").list_tables()["TableNames"]
    check(any(re.fullmatch(r"t\d+", n) for n in tables), "the suite made no table: %s" % tables)


def test_instances_share_sessions_through_dynamodb(t):
    """Two instances on one table: a session made on A is served by B,
    survives a restart of A, and a DELETE on B ends it everywhere; the
    items are where the plugin's layout says."""
    m = moto_server(t)
    a, pa = instance(t, m, "A")
    b, pb = instance(t, m, "B")
    sid = mcp_session(pa)
    check(call_tool(pb, sid, "where") == "B" and call_tool(pa, sid, "where", id=2) == "A")
    ddb = m.client("dynamodb")
    item = ddb.get_item(TableName="mcpd", Key={"pk": {"S": "session:" + sid_hash(sid)}, "sk": {"S": "v"}}, ConsistentRead=True)
    check("Item" in item and "B" in item["Item"]["v"] and "ttl" in item["Item"], item)
    idx = ddb.get_item(TableName="mcpd", Key={"pk": {"S": "user:anonymous:sessions"}, "sk": {"S": "m:" + sid_hash(sid)}},
                       ConsistentRead=True)
    check("Item" in idx, idx)
    ttl = ddb.describe_time_to_live(TableName="mcpd")["TimeToLiveDescription"]
    check(ttl.get("TimeToLiveStatus") == "ENABLED" and ttl.get("AttributeName") == "ttl", ttl)
    a.stop()
    a, pa = instance(t, m, "A", port=pa)
    check(call_tool(pa, sid, "where", id=3) == "A", "the session did not survive the restart")
    deleted_everywhere(pb, sid, (pa, pb), id=4)
    item = ddb.get_item(TableName="mcpd", Key={"pk": {"S": "session:" + sid_hash(sid)}, "sk": {"S": "v"}}, ConsistentRead=True)
    check("Item" not in item, item)
    a.stop()
    b.stop()


def test_a_wrong_secret_is_refused(t):
    """A secret that is not the key's: moto refuses the signature; mcpd
    starts, is not ready, says which credentials were refused and why
    (never the secret), and answers 503, without crashing."""
    m = moto_server(t)
    secret = "WRONG" + m.secret[5:]
    d, port = instance(t, m, env={"AWS_SECRET_ACCESS_KEY": secret}, ready=False)
    # Each worker checks the table on its own: until every one has, a
    # /readyz may come from one that has not ("not checked yet"), so one
    # answer is read and judged whole.
    seen = []
    def refused(port):
        st, _, body = http(port, "GET", "/readyz")
        seen[:] = [st, body]
        return st == 503 and b"refused" in body
    wait_for(lambda: refused(port), timeout=15, what="/readyz to fail")
    body = seen[1]
    check(b"the environment (AWS_ACCESS_KEY_ID)" in body and b"SignatureDoesNotMatch" in body, body)
    st, r, _ = rpc(port, None, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "x", "version": "1"}}, id=0)
    check(st == 503, (st, r))
    d.wait_log(r"dynamodb refused the request signed with the credentials from the environment")
    check(secret not in d.log() and m.secret not in d.log(), "a secret in the log")
    check(http(port, "GET", "/healthz")[0] == 200)
    # An access key that does not exist, and a session token that is not
    # the key's: refused likewise.
    d.stop()
    d2, port2 = instance(t, m, name="B", env={"AWS_ACCESS_KEY_ID": "AKIANOTAKEY00000000", "AWS_SESSION_TOKEN": "bogus"},
                         ready=False)
    wait_for(lambda: refused(port2), timeout=15, what="/readyz to fail")
    st, body = seen
    check(st == 503 and (b"InvalidClientTokenId" in body or b"UnrecognizedClient" in body), body)
    d2.stop()


def test_a_missing_table(t):
    """Without create_table a missing table is an error at start (the
    worker says so and mcpd is not ready) and in mcpd -t; with it, the
    table is made."""
    m = moto_server(t)
    port = free_port()
    path = os.path.join(t.dir, "missing.yaml")
    with open(path, "w") as f:
        f.write("listen: [127.0.0.1:%d]\nstorage: { plugin: dynamodb, table: nothere, endpoint: \"%s\" }\n"
                % (port, m.url))
    rc, out, err = run_mcpd("-t", "-c", path, env=m.env())
    check(rc != 0 and "table nothere does not exist" in out + err, (rc, out, err))
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\nstorage: { plugin: dynamodb, table: nothere, endpoint: \"%s\" }\n"
               % (port, m.url), name="missing-run.yaml")
    d.start(env=m.env())
    wait_for(lambda: "table nothere does not exist" in d.log(), timeout=15, what="the error at start")
    d.kill()
    with open(path, "w") as f:
        f.write("listen: [127.0.0.1:%d]\nstorage: { plugin: dynamodb, table: nothere, endpoint: \"%s\", "
                "create_table: true }\n" % (port, m.url))
    rc, out, err = run_mcpd("-t", "-c", path, env=m.env())
    check(rc == 0, out + err)
    d, port = instance(t, m, table="madehere")
    check("madehere" in m.client("dynamodb").list_tables()["TableNames"])
    d.stop()


def test_configuration_errors(t):
    check_config_errors(t, [
        ("storage: { plugin: dynamodb }\n", r"bad\.yaml.*dynamodb needs table"),
        ("storage: { plugin: dynamodb, table: \"a b\" }\n", r"bad\.yaml:\d+.*table must be"),
        ("storage: { plugin: dynamodb, table: t1x, colour: red }\n", r"bad\.yaml:\d+.*colour"),
        ("storage: { plugin: dynamodb, table: t1x, create_table: maybe }\n", r"bad\.yaml:\d+.*create_table"),
        ("storage: { plugin: dynamodb, table: t1x, timeout: 1ms }\n", r"bad\.yaml:\d+.*timeout must be"),
        ("storage: { plugin: dynamodb, table: t1x, region: \"EU WEST\" }\n", r"not a region name"),
        ("storage: { plugin: dynamodb, table: t1x, endpoint: \"ftp://x\" }\n", r"http or https"),
    ], env={"AWS_ACCESS_KEY_ID": "AKIDX", "AWS_SECRET_ACCESS_KEY": "x", "AWS_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true"})
    check_config_errors(t, [("storage: { plugin: dynamodb, table: t1x }\n", r"no region")],
                        env={"AWS_REGION": "", "AWS_DEFAULT_REGION": "", "HOME": t.dir})
    check_config_errors(t, [("storage: { plugin: dynamodb, table: t1x, region: eu-west-1 }\n", r"no AWS credentials")],
                        env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "HOME": t.dir,
                             "AWS_EC2_METADATA_DISABLED": "true"})
    check_config_errors(t, [("storage: { plugin: dynamodb, table: t1x, region: eu-west-1, profile: nope }\n",
                             r"no profile nope")],
                        env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "HOME": t.dir})


def test_service_down_then_back(t):
    """The service goes away under load (a relay in front of moto taken
    away: moto keeps its data): requests get 503 meanwhile (never a crash
    or a hang), /readyz says why on every worker, the one without traffic
    too (within its idle check); once it is back everything works, and
    the session stored before is still there."""
    m = moto_server(t)
    relay = RoundRobin([m.port])
    a, pa = instance(t, m, "A", endpoint="http://127.0.0.1:%d" % relay.port)
    sid = mcp_session(pa)

    def every_worker():
        wait_for(lambda: all(http(pa, "GET", "/readyz")[0] == 503 for _ in range(6)), timeout=10,
                 what="/readyz 503 on every worker")
    down_and_back(relay, (pa,), sid, b"dynamodb http://127.0.0.1:%d" % relay.port, calls=20, daemons=(a,), again="the service answers again",
                  while_down=every_worker)
    check(call_tool(pa, sid, "where", id=9999) == "A", "the session stored before the outage is gone")
    a.stop()


def test_an_emulator_that_hangs(t):
    """moto stops answering (SIGSTOP) without closing its connections: a
    request ends at the call's time bound with 503, /healthz is answered
    all along, and once moto answers again so does mcpd."""
    m = moto_server(t)
    d, port = instance(t, m, workers=1, storage_extra=", timeout: 500ms")
    storage_hangs(d, port, m, r"dynamodb: .*(timed out|Timeout|timeout)")
    d.stop()


THROTTLED = (400, '{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}')
INTERNAL = (500, '{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal error"}')


def test_throttling_and_5xx_are_tried_again(t):
    """Throttling and 500s are tried again with back-off: a few of them in
    a row cost the caller nothing; more than the call's bound gives 503
    (the log says why), and the next call succeeds."""
    m = moto_server(t)
    px = serve(t, AwsRelay(m.port))
    d, port = instance(t, m, workers=1, endpoint="http://127.0.0.1:%d" % px.port, storage_extra=", timeout: 1s")
    sid = mcp_session(port)
    px.faults = [THROTTLED, INTERNAL, THROTTLED]
    check(call_tool(port, sid, "where") == "A")
    check(px.faulted == 3 and px.faults == [], px.log())
    px.faults = [THROTTLED] * 1000          # throttled for good
    st, r, _ = rpc(port, sid, "ping", id=5, timeout=15)
    check(st == 503 and "unavailable" in json.dumps(r), (st, r))
    d.wait_log(r"dynamodb: ThrottlingException: Rate exceeded")
    px.faults = []
    wait_for(lambda: rpc(port, sid, "ping", id=6)[0] == 200, timeout=10, what="calls to succeed again")
    d.stop()
