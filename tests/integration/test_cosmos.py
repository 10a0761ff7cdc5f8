"""The cosmos storage plugin (plugins/cosmos) against @vercel/cosmosdb-server
behind cosmospeer.CosmosGate, which checks every request's authorization
as Cosmos DB does (the emulator checks none): the storage contract,
instances sharing sessions and the internal OAuth server's state, a wrong
key, a missing database or container, items over 2 MB, throttling, the
service away and back, the emulator restarted empty, a server that hangs,
Entra ID tokens (workload identity, instance metadata, the Container Apps
endpoint) against endpoints written from Microsoft's documentation, TLS
without verification for tests, and configuration errors."""

import json
import os
import time

from cosmospeer import CosmosEmulator, CosmosGate, TokenService, account_key, tls_files, token_in_logs
from harness import (sid_hash, Load, RoundRobin, all_ready, call_tool, check, check_config_errors, deleted_everywhere,
                     down_and_back, free_port, http, key_file, mcp_session, redis_server, rpc, run_mcpd, run_unit_suite,
                     serve, storage_hangs, wait_for, workers_ready)

TOOLS = """
tools:
  - name: where
    description: The instance that runs the tool.
    shell: 'echo %(name)s'
"""


class Cosmos:
    """An emulator and the gate in front of it, with the account key."""

    def __init__(self, t, tokens=None):
        self.emu = serve(t, CosmosEmulator(t.dir))
        self.key_path, self.key = account_key(t.dir)
        self.gate = serve(t, CosmosGate(t.dir, self.emu, self.key, tokens=tokens))
        self.ca, _ = tls_files(t.dir)

    def storage(self, endpoint=None, database="mcpd", container="state", extra="", key=True):
        return ("storage: { plugin: cosmos, endpoint: \"%s\", database: %s, container: %s, ca_file: \"%s\"%s%s }\n"
                % (endpoint or self.gate.url, database, container, self.ca,
                   ", key_file: \"%s\"" % self.key_path if key else "", extra))


def instance(t, c, name="A", workers=2, extra="", storage=None, env=None, port=None, ready=True, transport="",
             tools=""):
    port = port or free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: %d\n%s%srequest_state: { key_file: %s }\n%s%s%s"
               % (port, workers, storage or c.storage(extra=", create_container: true"), transport, key_file(t),
                  extra, TOOLS % {"name": name}, tools), name="%s.yaml" % name)
    d.start(env=env, wait_url_port=port)
    if ready:
        workers_ready(port, workers, timeout=20)
    return d, port


def test_storage_suite_against_cosmos(t):
    """The unit suite every storage backend passes, against the emulator
    behind the gate: a request signed wrong would fail every check."""
    c = Cosmos(t)
    # Three backends (memory, lmdb, cosmos), ten checks each.
    run_unit_suite("storage", 34, env={"MCPD_TEST_COSMOS_ENDPOINT": c.gate.url, "MCPD_TEST_COSMOS_KEY_FILE": c.key_path,
                                       "MCPD_TEST_COSMOS_CA_FILE": c.ca},
                   unset=["MCPD_TEST_REDIS_URL", "MCPD_TEST_POSTGRES_URL", "MCPD_TEST_DYNAMODB_ENDPOINT"], timeout=300)
    check(c.gate.refused == [] and c.gate.master > 100, c.gate.log())
    check(any(m == "POST" and p.endswith("/docs") for m, p in c.gate.ops), "no item was written")


def test_instances_share_sessions_through_cosmos(t):
    """Two instances on one container: a session made on A is served by B,
    survives a restart of A, and a DELETE on B ends it everywhere; the
    items are where the plugin's layout says."""
    c = Cosmos(t)
    a, pa = instance(t, c, "A")
    b, pb = instance(t, c, "B")
    sid = mcp_session(pa)
    check(call_tool(pb, sid, "where") == "B" and call_tool(pa, sid, "where", id=2) == "A")
    item = c.emu.item("mcpd", "state", "session:" + sid_hash(sid), "v")
    check(item is not None and item["k"] == "v" and json.loads(item["v"])["i"]["name"] == "harness" and
          item["exp"] > time.time() * 1000 and item["ttl"] >= 1, item)
    members = [i for i in c.emu.items("mcpd", "state", "user:anonymous:sessions") if i["k"] == "m"]
    check([m["m"] for m in members] == [sid_hash(sid)], members)
    a.stop()
    a, pa = instance(t, c, "A", port=pa)
    check(call_tool(pa, sid, "where", id=3) == "A", "the session did not survive the restart")
    deleted_everywhere(pb, sid, (pa, pb), id=4)
    check(c.emu.item("mcpd", "state", "session:" + sid_hash(sid), "v") is None, "the session's item is still there")
    check(c.gate.refused == [], c.gate.log())
    a.stop()
    b.stop()


def test_internal_oauth_server_on_cosmos(t):
    """auth: internal keeps clients, codes and tokens in Cosmos DB (and
    tells revocations through Redis): a token issued by A is accepted by
    B, refreshed at B, revoked at A and refused everywhere; no token is
    stored in the clear."""
    from test_oauth import add_user, tokens_cross
    c = Cosmos(t)
    r = redis_server(t)
    add_user(t, "alice", "alice-pw", "tools.admin")
    pa, pb = free_port(), free_port()
    auth = "auth: { plugin: internal, users_file: users, resource: \"http://127.0.0.1:%d/mcp\" }\n" % pa
    transport = "transport: { plugin: redis, url: \"%s\" }\n" % r.url
    out = []
    for name, port in (("A", pa), ("B", pb)):
        d, _ = instance(t, c, name, port=port, extra=auth, transport=transport, ready=False)
        out.append(d)
    for port in (pa, pb):
        workers_ready(port, 2, timeout=20)
    tok = tokens_cross(pa, pb)
    st, ans = c.emu.request("POST", "/dbs/mcpd/colls/state/docs", {"query": "SELECT c.pk, c.v, c.b FROM c"},
                            {"Content-Type": "application/query+json", "x-ms-documentdb-isquery": "True",
                             "x-ms-documentdb-query-enablecrosspartition": "True"})
    keys = [d["pk"] for d in ans["Documents"]]
    check(any(k.startswith("oauth:rt") for k in keys), keys)
    text = json.dumps(ans)
    check(tok["refresh_token"] not in text and tok["access_token"] not in text, "a token in the clear")
    for d in out:
        d.stop()


def test_a_wrong_key_is_refused(t):
    """A key that is not the account's: the service refuses the signature;
    mcpd starts, is not ready, says which credentials were refused and why
    (never the key), answers 503, and does not crash."""
    c = Cosmos(t)
    wrong, wrong_text = account_key(t.dir, "wrong.key")
    storage = c.storage(extra=", create_container: true").replace(c.key_path, wrong)
    d, port = instance(t, c, storage=storage, ready=False)
    wait_for(lambda: http(port, "GET", "/readyz")[0] == 503 and b"refused" in http(port, "GET", "/readyz")[2],
             timeout=15, what="/readyz to fail")
    st, _, body = http(port, "GET", "/readyz")
    check(("the account key in %s" % wrong).encode() in body and b"HTTP 401 Unauthorized" in body, body)
    st, r, _ = rpc(port, None, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "x", "version": "1"}}, id=0)
    check(st == 503, (st, r))
    d.wait_log(r"cosmos refused the request made with the account key in .*wrong\.key: HTTP 401")
    check(wrong_text not in d.log() and c.key not in d.log(), "a key in the log")
    check(http(port, "GET", "/healthz")[0] == 200)
    check(d.proc.poll() is None and len(d.workers()) == 2, "a worker died")
    # The right key put in the file (a rotation): used without a restart.
    with open(wrong, "w") as f:
        f.write(c.key + "\n")
    wait_for(lambda: all_ready(port), timeout=15, what="ready with the rotated key")
    d.wait_log(r"the account key in .*wrong\.key changed")
    d.stop()


def test_a_missing_database_or_container(t):
    """Without create_container a missing database or container is an error
    in mcpd -t and at start (the worker says so and mcpd is not ready);
    with it, both are made."""
    c = Cosmos(t)
    path = os.path.join(t.dir, "missing.yaml")
    port = free_port()
    with open(path, "w") as f:
        f.write("listen: [127.0.0.1:%d]\n%s" % (port, c.storage(database="nodb")))
    rc, out, err = run_mcpd("-t", "-c", path)
    check(rc != 0 and "database nodb does not exist" in out + err, (rc, out, err))
    c.emu.create("here")
    with open(path, "w") as f:
        f.write("listen: [127.0.0.1:%d]\n%s" % (port, c.storage(database="here", container="nocoll")))
    rc, out, err = run_mcpd("-t", "-c", path)
    check(rc != 0 and "container nocoll does not exist in database here" in out + err, (rc, out, err))
    # Deleted while mcpd runs: not ready, and says why.
    c.emu.create("here", "gone")
    d, port = instance(t, c, storage=c.storage(database="here", container="gone"), workers=1)
    c.emu.request("DELETE", "/dbs/here/colls/gone")
    wait_for(lambda: b"container gone does not exist in database here" in http(port, "GET", "/readyz")[2],
             timeout=15, what="/readyz to say the container is gone")
    d.wait_log(r"container gone does not exist in database here \(create it, or set create_container: true\)")
    d.kill()
    d, port = instance(t, c, storage=c.storage(database="made", container="here",
                                               extra=", create_container: true"), workers=2)
    check(c.emu.collections("made") == ["here"], c.emu.collections("made"))
    sid = mcp_session(port)
    check(call_tool(port, sid, "where") == "A")
    d.stop()


def test_an_item_over_2mb(t):
    """An event over Cosmos DB's 2 MB (a 3 MB answer on a stream) cannot be
    kept for resumption: the storage call fails with a clear error (logged
    by mcpd), the client still gets its answer, and the session's event
    log goes on working; the service's own 413 for an item it finds too
    large reads the same."""
    c = Cosmos(t)
    d, port = instance(t, c, workers=1, tools="""
  - name: big
    description: A large answer on a stream.
    max_output: 4MiB
    shell: 'mcpd-tool progress 1 2; head -c 3000000 /dev/zero | tr "\\\\0" x'
  - name: small
    description: A small answer on a stream.
    shell: 'mcpd-tool progress 1 2; echo small'
""")
    sid = mcp_session(port)
    st, r, _ = rpc(port, sid, "tools/call", {"name": "big", "arguments": {}, "_meta": {"progressToken": "p"}}, id=2)
    check(st == 200 and r and len(r["result"]["content"][0]["text"]) >= 3000000, (st, str(r)[:300]))
    d.wait_log(r"event not kept for resumption: cosmos: the item is too large \(Cosmos DB keeps at most 2 MB an item\)")
    log = "events:" + sid_hash(sid)
    before = max(i.get("s", 0) for i in c.emu.items("mcpd", "state", log) if i["k"] == "e")
    st, r, _ = rpc(port, sid, "tools/call", {"name": "small", "arguments": {}, "_meta": {"progressToken": "p"}}, id=3)
    check(st == 200 and r["result"]["content"][0]["text"].strip() == "small", r)
    entries = [i for i in c.emu.items("mcpd", "state", log) if i["k"] == "e"]
    check(max(i["s"] for i in entries) > before and any("small" in i.get("v", "") for i in entries), entries)
    batch = lambda h: h.command == "POST" and h.headers.get("x-ms-cosmos-is-batch-request") == "True"
    c.gate.faults = [(413, {}, json.dumps({"code": "RequestEntityTooLarge", "message": "Request size is too large"}),
                      batch)]
    st, r, _ = rpc(port, sid, "tools/call", {"name": "small", "arguments": {}, "_meta": {"progressToken": "p"}}, id=4)
    check(st == 200 and c.gate.faulted == 1, (st, r, c.gate.log()))
    d.wait_log(r"cosmos: the item is too large \(Cosmos DB keeps at most 2 MB an item\): cosmos: HTTP 413", count=1)
    check(call_tool(port, sid, "where", id=5) == "A")
    d.stop()


def test_configuration_errors(t):
    """mcpd -t refuses a bad cosmos section with the file, line and column
    of what is wrong (a key never written in the configuration, a key file
    unreadable or not a key, Entra ID settings half given)."""
    key_path, _ = account_key(t.dir)
    bad_key = os.path.join(t.dir, "bad.key")
    with open(bad_key, "w") as f:
        f.write("not base64 at all!\n")
    base = "plugin: cosmos, endpoint: \"https://acct.documents.azure.com\", database: d, container: c"
    check_config_errors(t, [
        ("storage: { plugin: cosmos }\n", r"bad\.yaml:2:\d+: .*cosmos needs endpoint:, database: and container:"),
        ("storage: { %s, colour: red }\n" % base, r"bad\.yaml:2:\d+: .*unknown key \"colour\""),
        ("storage: { %s, key: abc }\n" % base, r"bad\.yaml:2:\d+: .*the account key is never written in the conf"),
        ("storage: { %s, create_container: maybe }\n" % base, r"bad\.yaml:2:\d+: create_container must be true or"),
        ("storage: { %s, tls_verify: 1 }\n" % base, r"bad\.yaml:2:\d+: tls_verify must be true or false"),
        ("storage: { %s, key_file: /no/such/key }\n" % base, r"bad\.yaml:2:\d+: .*cannot read the key file "
                                                              r"/no/such/key: No such file"),
        ("storage: { %s, key_file: \"%s\" }\n" % (base, bad_key), r"bad\.yaml:2:\d+: .*bad\.key"),
        ("storage: { plugin: cosmos, endpoint: \"ftp://acct\", database: d, container: c }\n",
         r"bad\.yaml:2:\d+: endpoint must be the account's https URL"),
        ("storage: { plugin: cosmos, endpoint: \"https://acct.documents.azure.com/dbs\", database: d, container: c }\n",
         r"bad\.yaml:2:\d+: endpoint must be the account's https URL, without a path"),
        # A block section: the line of the key at fault.
        ("storage:\n  plugin: cosmos\n  endpoint: \"https://acct.documents.azure.com\"\n  database: \"a b\"\n"
         "  container: c\n", r"bad\.yaml:5:\d+: database must be 1 to 255 letters"),
        ("storage:\n  plugin: cosmos\n  endpoint: \"https://acct.documents.azure.com\"\n  database: d\n"
         "  container: c\n  key_file: \"%s\"\n  timeout: 1ms\n" % key_path, r"bad\.yaml:8:\d+: timeout must be"),
    ])
    # Entra ID chosen (no key_file) with its settings half given.
    check_config_errors(t, [("storage: { %s }\n" % base, r"bad\.yaml:2:\d+: .*no key_file, and no Entra ID "
                             r"credentials: AZURE_FEDERATED_TOKEN_FILE needs AZURE_CLIENT_ID and AZURE_TENANT_ID")],
                        env={"AZURE_FEDERATED_TOKEN_FILE": key_path, "AZURE_CLIENT_ID": "", "AZURE_TENANT_ID": ""})
    check_config_errors(t, [("storage: { %s }\n" % base, r"IDENTITY_ENDPOINT and IDENTITY_HEADER must be set together")],
                        env={"IDENTITY_ENDPOINT": "http://127.0.0.1:9/msi/token", "IDENTITY_HEADER": "",
                             "AZURE_FEDERATED_TOKEN_FILE": ""})


def test_service_down_then_back(t):
    """The service goes away under load (a relay in front of the gate taken
    away: the emulator keeps its data): requests get 503 meanwhile (never
    a crash or a hang), /readyz says why; once it is back everything
    works, and the session stored before is still there."""
    c = Cosmos(t)
    relay = RoundRobin([c.gate.port])
    a, pa = instance(t, c, "A", storage=c.storage(endpoint="https://127.0.0.1:%d" % relay.port,
                                                  extra=", create_container: true, timeout: 1s"), workers=1)
    sid = mcp_session(pa)
    down_and_back(relay, (pa,), sid, b"cosmos https://127.0.0.1:%d" % relay.port, calls=20, daemons=(a,),
                  again="the service answers again")
    check(call_tool(pa, sid, "where", id=9999) == "A", "the session stored before the outage is gone")
    check(c.gate.refused == [], c.gate.log())
    a.stop()


def test_the_emulator_restarted_empty_under_load(t):
    """The emulator itself is stopped under load and started again empty
    (it keeps nothing on disk): while it is away calls fail with 503 and
    the log says why; once it is back the plugin makes the database and
    container again (create_container), /readyz is 200, the old session is
    gone as its data is (404, as for any unknown session), and a new one
    works on both instances."""
    c = Cosmos(t)
    storage = c.storage(extra=", create_container: true, timeout: 1s")
    a, pa = instance(t, c, "A", storage=storage)
    b, pb = instance(t, c, "B", storage=storage)
    sid = mcp_session(pa)
    load = Load((pa, pb), sid)
    try:
        load.wait(20)
        c.emu.stop()
        # The gate answers 503 as Cosmos DB does when a partition is
        # away; the plugin tries again within the call's 2 s bound.
        wait_for(lambda: load.statuses.count(503) >= 4, timeout=20, what="503 while the emulator is away")
        wait_for(lambda: http(pb, "GET", "/readyz")[0] == 503, timeout=15, what="/readyz 503")
        check(http(pa, "GET", "/healthz")[0] == 200 and http(pb, "GET", "/healthz")[0] == 200)
        c.emu.start()
        for port in (pa, pb):
            wait_for(lambda: all_ready(port, times=6), timeout=20, what="ready again")
        wait_for(lambda: load.statuses[-1] == 404, timeout=10, what="the lost session to be unknown")
    finally:
        load.stop()
    check(set(load.statuses) <= {200, 503, 404}, "statuses seen: %s" % sorted(set(load.statuses)))
    check(all("storage is unavailable" in e or "ession" in e for e in load.errors), load.errors)
    for d in (a, b):
        check("HTTP 503 ServiceUnavailable" in d.log() or "not found" in d.log(), d.log()[-1500:])
        d.wait_log(r"container state is ready", count=2)
    check(c.emu.collections("mcpd") == ["state"], c.emu.collections("mcpd"))
    sid2 = mcp_session(pa)
    check(call_tool(pb, sid2, "where") == "B" and call_tool(pa, sid2, "where", id=2) == "A")
    check(a.proc.poll() is None and b.proc.poll() is None, "a daemon died")
    a.stop()
    b.stop()


def test_an_emulator_that_hangs(t):
    """The emulator stops answering (SIGSTOP) without closing its
    connections: a request ends at the call's time bound with 503,
    /healthz is answered all along, and once it answers again so does
    mcpd."""
    c = Cosmos(t)
    d, port = instance(t, c, workers=1, storage=c.storage(extra=", create_container: true, timeout: 500ms"))
    storage_hangs(d, port, c.emu)
    d.stop()


def throttled(after_ms):
    return (429, {"x-ms-retry-after-ms": str(after_ms), "x-ms-substatus": "3200"},
            json.dumps({"code": "TooManyRequests", "message": "Request rate is large. More Request Units may be "
                        "needed, so no changes were made. Please retry this request later.\r\nActivityId: x"}))


def test_throttling_waits_as_the_service_says(t):
    """429 with x-ms-retry-after-ms is waited out and tried again: a few in
    a row cost the caller only the wait; throttling longer than the call's
    bound gives 503 and the log says so (with the wait asked for); a 503
    from the service is tried again too; then calls succeed again."""
    c = Cosmos(t)
    d, port = instance(t, c, workers=1, storage=c.storage(extra=", create_container: true, timeout: 1s"))
    sid = mcp_session(port)
    c.gate.faults = [throttled(100), throttled(100), throttled(100),
                     (503, {}, json.dumps({"code": "ServiceUnavailable", "message": "busy"}))]
    t0 = time.monotonic()
    check(call_tool(port, sid, "where") == "A")
    check(c.gate.faulted == 4 and c.gate.faults == [], c.gate.log())
    check(time.monotonic() - t0 >= 0.3, "the waits asked for were not kept")
    c.gate.faults = [throttled(5000)] * 50
    st, r, _ = rpc(port, sid, "ping", id=5, timeout=15)
    check(st == 503 and "unavailable" in json.dumps(r), (st, r))
    d.wait_log(r"cosmos: throttled \(HTTP 429, retry after 5000 ms\) for longer than the call may wait: Request "
               r"rate is large")
    c.gate.faults = []
    wait_for(lambda: rpc(port, sid, "ping", id=6)[0] == 200, timeout=10, what="calls to succeed again")
    d.stop()


def test_tls_verification(t):
    """The emulator's certificate is not one the system trusts: without
    ca_file mcpd refuses it (not ready, the log says why); tls_verify:
    false takes it (for emulators only, with a warning)."""
    c = Cosmos(t)
    c.emu.create("mcpd", "state")
    plain = c.storage().replace(", ca_file: \"%s\"" % c.ca, "")
    d, port = instance(t, c, storage=plain, workers=1, ready=False)
    wait_for(lambda: b"certificate" in http(port, "GET", "/readyz")[2], timeout=15, what="/readyz on the certificate")
    check(http(port, "GET", "/readyz")[0] == 503)
    d.stop()
    d, port = instance(t, c, "B", storage=plain.replace(" }", ", tls_verify: false }"), workers=1)
    d.wait_log(r"tls_verify is false: the server's certificate is not checked")
    sid = mcp_session(port)
    check(call_tool(port, sid, "where") == "B")
    d.stop()


def entra_instance(t, c, svc, env, name="A"):
    """An instance without key_file: Entra ID tokens from env's source, the
    container made beforehand (data-plane roles cannot make one)."""
    c.emu.create("mcpd", "state")
    base = {"AZURE_FEDERATED_TOKEN_FILE": "", "IDENTITY_ENDPOINT": "", "IDENTITY_HEADER": "",
            "AZURE_CLIENT_ID": "", "AZURE_TENANT_ID": "", "AZURE_POD_IDENTITY_AUTHORITY_HOST": ""}
    base.update(env)
    return instance(t, c, name, storage=c.storage(key=False), env=base)


def entra_works(t, c, svc, d, port):
    sid = mcp_session(port)
    check(call_tool(port, sid, "where") == "A")
    check(c.gate.aad > 0 and c.gate.master == 0 and c.gate.refused == [], c.gate.log())
    check(svc.issued and token_in_logs(d, svc) == [], "a token in the log")
    return sid


def test_entra_id_workload_identity(t):
    """Workload identity (AKS): the federated token file traded at the
    authority's token endpoint; tokens renewed before they expire (read
    from the file again); a token the service refuses (revoked) replaced
    at once; a token file that the authority refuses leaves mcpd serving,
    not ready, saying why."""
    svc = serve(t, TokenService(t.dir, lifetime=6, assertion="fed-token-1"))
    c = Cosmos(t, tokens=svc)
    tf = os.path.join(t.dir, "federated-token")
    with open(tf, "w") as f:
        f.write("fed-token-1")
    d, port = entra_instance(t, c, svc, {"AZURE_FEDERATED_TOKEN_FILE": tf, "AZURE_CLIENT_ID": "c-mcpd",
                                         "AZURE_TENANT_ID": "t-mcpd", "AZURE_AUTHORITY_HOST": svc.url})
    sid = entra_works(t, c, svc, d, port)
    check(all(r == ("token", "/t-mcpd/oauth2/v2.0/token", "c-mcpd") for r in svc.requests), svc.log())
    # Renewed before the 6 s lifetime ends, with the file's new token.
    with open(tf, "w") as f:
        f.write("fed-token-2")
    svc.assertion = "fed-token-2"
    n = len(svc.requests)
    wait_for(lambda: len(svc.requests) > n, timeout=10, what="a renewal")
    for i in range(8):
        check(call_tool(port, sid, "where", id=10 + i) == "A")
        time.sleep(1)
    check(c.gate.refused == [], c.gate.log())
    # Revoked: refused once, a new token fetched, the call succeeds.
    svc.revoke_all()
    check(call_tool(port, sid, "where", id=30) == "A")
    check(c.gate.refused != [] and len(svc.issued) >= 1, c.gate.log())
    # The authority refuses the assertion from now on: once the token
    # lapses mcpd is not ready and says why (never the assertion).
    svc.assertion = "something else"
    svc.revoke_all()
    wait_for(lambda: b"AADSTS700024" in http(port, "GET", "/readyz")[2], timeout=20,
             what="/readyz to give the authority's refusal")
    check("fed-token-2" not in d.log(), "the federated token in the log")
    check(http(port, "GET", "/healthz")[0] == 200 and d.proc.poll() is None)
    d.stop()


def test_entra_id_managed_identity_endpoints(t):
    """Managed identity through the Container Apps / App Service endpoint
    (IDENTITY_ENDPOINT with X-IDENTITY-HEADER) and through the instance
    metadata service (Metadata: true), for the account's resource, a
    user-assigned identity chosen by client_id."""
    svc = serve(t, TokenService(t.dir, identity_header="id-header-secret"))
    c = Cosmos(t, tokens=svc)
    d, port = entra_instance(t, c, svc, {"IDENTITY_ENDPOINT": svc.url + "/msi/token",
                                         "IDENTITY_HEADER": "id-header-secret"})
    entra_works(t, c, svc, d, port)
    check(svc.requests and all(r[:2] == ("managed", "/msi/token") for r in svc.requests), svc.log())
    check("id-header-secret" not in d.log(), "the identity header in the log")
    d.stop()
    svc.requests.clear()
    c.gate.aad = 0
    d, port = entra_instance(t, c, svc, {"AZURE_POD_IDENTITY_AUTHORITY_HOST": svc.url}, name="A")
    entra_works(t, c, svc, d, port)
    check(svc.requests and all(r[:2] == ("managed", "/metadata/identity/oauth2/token") for r in svc.requests),
          svc.log())
    d.stop()
    svc.requests.clear()
    storage = c.storage(key=False, extra=", client_id: \"11111111-2222-3333-4444-555555555555\"")
    d, port = instance(t, c, "A", storage=storage, env={"AZURE_POD_IDENTITY_AUTHORITY_HOST": svc.url,
                                                         "AZURE_FEDERATED_TOKEN_FILE": "", "IDENTITY_ENDPOINT": "",
                                                         "IDENTITY_HEADER": "", "AZURE_CLIENT_ID": ""})
    sid = mcp_session(port)
    check(call_tool(port, sid, "where") == "A")
    check(all(r[2] == "11111111-2222-3333-4444-555555555555" for r in svc.requests), svc.log())
    d.stop()
