"""The postgres storage plugin (plugins/postgres) against a real PostgreSQL
server started by the test (harness.Postgres): the storage contract, mcpd
instances sharing sessions, event replay and the internal OAuth server's
state through it, expiry, and the database going away and coming back."""

import json
import os
import re
import signal
import socket
import time

from harness import (sid_hash, call_tool, check, check_config_errors, check_config_valid, check_host_name, check_unresolvable,
                     deleted_everywhere, down_and_back, free_port, http, key_file, mcp_session, postgres_server,
                     redis_server, rpc, run_unit_suite, sse_events, starts_before, storage_cache, wait_for,
                     with_storage_cache, workers_ready)

TOOLS = """
tools:
  - name: where
    description: The instance that runs the tool.
    shell: 'echo %(name)s'
  - name: chatty
    description: Five progress events, a little apart.
    shell: 'for i in 1 2 3 4 5; do mcpd-tool progress $i 5; sleep 0.15; done; echo done'
"""


def instance(t, pg, name="A", workers=2, extra="", storage_extra="", redis=None, port=None):
    port = port or free_port()
    transport = "transport: { plugin: redis, url: \"%s\" }\n" % redis.url if redis else ""
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: %d\nstorage: { plugin: postgres, url: \"%s\"%s }\n%s"
               "request_state: { key_file: %s }\n%s%s"
               % (port, workers, pg.url, storage_extra + storage_cache(t), transport, key_file(t), extra, TOOLS % {"name": name}),
               name="%s.yaml" % name)
    d.start(wait_url_port=port)
    workers_ready(port, workers)
    return d, port


def test_storage_suite_against_postgres(t):
    """The unit suite every storage backend passes, against this server."""
    pg = postgres_server(t)
    # Three backends (memory, lmdb, postgres), ten checks each.
    run_unit_suite("storage", 34, env={"MCPD_TEST_POSTGRES_URL": pg.url},
                   unset=["MCPD_TEST_REDIS_URL", "MCPD_TEST_DYNAMODB_ENDPOINT"], timeout=180)
    tables = pg.sql("SELECT tablename FROM pg_tables WHERE tablename LIKE 't%\\_kv'")
    check(tables, "the suite made no tables")


@with_storage_cache
def test_instances_share_sessions_that_survive_a_restart(t):
    """Two instances on one database (and a redis transport for what
    crosses instances): a session made on A is served by B, survives a
    restart of A, and a DELETE on B ends it everywhere."""
    pg = postgres_server(t)
    redis = redis_server(t)
    a, pa = instance(t, pg, "A", redis=redis)
    b, pb = instance(t, pg, "B", redis=redis)
    sid = mcp_session(pa)
    check(call_tool(pb, sid, "where") == "B" and call_tool(pa, sid, "where", id=2) == "A")
    check(pg.sql("SELECT count(*) FROM mcpd_kv WHERE key = 'session:%s'" % sid_hash(sid)) == ["1"], "no session row")
    check(sid_hash(sid) in pg.sql("SELECT member FROM mcpd_idx WHERE idx = 'user:anonymous:sessions'"))
    a.stop()
    a, pa = instance(t, pg, "A", redis=redis, port=pa)
    check(call_tool(pa, sid, "where", id=3) == "A", "the session did not survive the restart")
    deleted_everywhere(pb, sid, (pa, pb), id=4)
    check(pg.sql("SELECT count(*) FROM mcpd_kv WHERE key LIKE '%%%s%%'" % sid_hash(sid)) == ["0"], "rows left")
    a.stop()
    b.stop()


@with_storage_cache
def test_last_event_id_replay_from_postgres(t):
    """A stream's events are logged in postgres: the client loses A and
    resumes on B from the last id it saw; nothing is lost or repeated."""
    pg = postgres_server(t)
    redis = redis_server(t)
    a, pa = instance(t, pg, "A", redis=redis)
    b, pb = instance(t, pg, "B", redis=redis)
    sid = mcp_session(pa)
    import socket
    s = socket.create_connection(("127.0.0.1", pa), timeout=15)
    body = json.dumps({"jsonrpc": "2.0", "id": 11, "method": "tools/call",
                       "params": {"name": "chatty", "arguments": {}, "_meta": {"progressToken": "p"}}}).encode()
    s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Accept: application/json, text/event-stream\r\nMcp-Session-Id: " + sid.encode() +
              b"\r\nMCP-Protocol-Version: 2025-11-25\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    data = b""
    while data.count(b"notifications/progress") < 2:
        c = s.recv(4096)
        check(c, "stream ended: %r" % data[-500:])
        data += c
    data = data[:data.rindex(b"notifications/progress")]
    data = data[:data.rindex(b"\n\n") + 2] if b"\n\n" in data else data
    events = [e for e in sse_events(re.sub(rb"\r\n[0-9a-f]+\r\n", b"", data.split(b"\r\n\r\n", 1)[1]))
              if e.get("data") and e.get("id")]
    s.close()
    check(events, data)
    last = events[-1]["id"]
    seen = [json.loads(e["data"])["params"]["progress"] for e in events if "notifications/progress" in e["data"]]
    wait_for(lambda: int(pg.sql("SELECT count(*) FROM mcpd_log WHERE log = 'events:%s'" % sid_hash(sid))[0]) >= 5,
             what="the events logged in postgres")
    st, hdrs, body = http(pb, "GET", "/mcp", None, {"Accept": "text/event-stream", "Mcp-Session-Id": sid,
                          "MCP-Protocol-Version": "2025-11-25", "Last-Event-ID": last}, timeout=15)
    check(st == 200, (st, body[:300]))
    got = [json.loads(e["data"]) for e in sse_events(body) if e.get("data")]
    resumed = [m["params"]["progress"] for m in got if m.get("method") == "notifications/progress"]
    check(seen + resumed == [1, 2, 3, 4, 5], "before %s, resumed on B %s" % (seen, resumed))
    check(got[-1].get("id") == 11 and got[-1]["result"]["content"][0]["text"].strip() == "done", got)
    a.stop()
    b.stop()


@with_storage_cache
def test_sessions_expire_and_are_purged(t):
    """An idle session expires on time (the server's clock), and the purge
    deletes its rows; table_prefix and schema name where the tables go."""
    pg = postgres_server(t)
    d, port = instance(t, pg, extra="limits: { session_idle_timeout: 1s }\n",
                       storage_extra=", schema: mcpd_test, table_prefix: x_, purge_interval: 300ms")
    sid = mcp_session(port)
    kv = "mcpd_test.x_kv"
    check(pg.sql("SELECT count(*) FROM %s WHERE key = 'session:%s'" % (kv, sid_hash(sid))) == ["1"])
    for i in range(8):      # used: renewed past its idle timeout
        check(rpc(port, sid, "ping", id=i)[0] == 200)
        time.sleep(0.2)
    time.sleep(1.3)
    check(rpc(port, sid, "ping", id=99)[0] == 404, "the session outlived its idle timeout")
    wait_for(lambda: pg.sql("SELECT count(*) FROM %s WHERE key = 'session:%s'" % (kv, sid_hash(sid))) == ["0"] and
             pg.sql("SELECT count(*) FROM mcpd_test.x_idx WHERE member = '%s'" % sid) == ["0"],
             timeout=5, what="the expired rows purged")
    check(pg.sql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'mcpd\\_%'") == ["0"],
          "tables made outside the schema and prefix")
    d.stop()


def test_database_down_then_back(t):
    """The database goes away under load: requests get 503 meanwhile (never
    a crash or a hang), /readyz says why; once it is back everything works,
    the session included."""
    pg = postgres_server(t)
    a, pa = instance(t, pg, "A")
    sid = mcp_session(pa)
    down_and_back(pg, (pa,), sid, b"postgres", calls=30, daemons=(a,))
    a.stop()


def test_starts_before_the_database(t):
    """An instance whose database is not up yet starts, is not ready, and
    becomes ready without a restart."""
    pg = postgres_server(t, start=False)
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\nstorage: { plugin: postgres, url: \"%s\" }\n%s"
               % (port, pg.url, TOOLS % {"name": "A"}))
    d.start(wait_url_port=port)
    starts_before(pg, [port], b"cannot connect", initialize=True, timeout=20)
    sid = mcp_session(port)
    check(call_tool(port, sid, "where") == "A")
    d.stop()


def test_a_host_name(t):
    """postgresql://mcpd@localhost:PORT/mcpd: the name is looked up on the
    worker's loop (evdns, from /etc/hosts) and given to libpq as hostaddr
    beside host; the instance connects and serves. A host of a list that
    does not resolve is left out, the others tried."""
    pg = postgres_server(t)
    url = pg.url.replace("127.0.0.1", "no-such-host.invalid:%d,localhost" % pg.port)
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\nstorage: { plugin: postgres, url: \"%s\" }\n"
               "request_state: { key_file: %s }\n%s" % (port, url, key_file(t), TOOLS % {"name": "L"}))
    d.start(wait_url_port=port)
    check_host_name(d, port, timeout=20)
    d.stop()


def test_a_host_name_that_does_not_resolve(t):
    """A name that does not resolve is reported like a server that is down
    (harness.check_unresolvable)."""
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\nstorage: { plugin: postgres, "
               "url: \"postgresql://mcpd@no-such-host.invalid:5432/mcpd\", connect_timeout: 2s }\n%s"
               % (port, TOOLS % {"name": "N"}))
    d.start(wait_url_port=port)
    check_unresolvable(d, port)
    d.stop()


def test_a_hung_database_is_dropped(t):
    """The server process of mcpd's connections stops answering (SIGSTOP)
    without closing them: the worker gives up after query_timeout (+1s),
    the request waiting gets 503, and a new connection serves again."""
    pg = postgres_server(t)
    d, port = instance(t, pg, workers=1, storage_extra=", query_timeout: 500ms")
    sid = mcp_session(port)
    backends = [int(x) for x in pg.sql("SELECT pid FROM pg_stat_activity WHERE application_name = 'mcpd'")]
    check(backends, "no mcpd connection seen by the server")
    for pid in backends:
        os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        st, r, _ = rpc(port, sid, "ping", timeout=15)
        check(st == 503 and "unavailable" in json.dumps(r), (st, r))
        check(time.monotonic() - t0 < 5, "took %.1fs" % (time.monotonic() - t0))
        d.wait_log("did not answer within 500ms")
    finally:
        for pid in backends:
            os.kill(pid, signal.SIGCONT)
    wait_for(lambda: all(http(port, "GET", "/readyz")[0] == 200 for _ in range(3)), timeout=15, what="ready again")
    wait_for(lambda: rpc(port, sid, "ping")[0] == 200, timeout=10, what="the session to answer again")
    d.stop()


@with_storage_cache
def test_internal_oauth_server_on_postgres(t):
    """auth: internal keeps clients, codes and tokens in postgres: a token
    issued by A is accepted by B, refreshed at B, revoked at A."""
    from test_oauth import add_user, tokens_cross
    pg = postgres_server(t)
    redis = redis_server(t)
    add_user(t, "alice", "alice-pw", "tools.admin")
    pa, pb = free_port(), free_port()
    auth = "auth: { plugin: internal, users_file: users, resource: \"http://127.0.0.1:%d/mcp\" }\n" % pa
    a, _ = instance(t, pg, "A", redis=redis, port=pa, extra=auth)
    b, _ = instance(t, pg, "B", redis=redis, port=pb, extra=auth)
    tok = tokens_cross(pa, pb)
    rows = pg.sql("SELECT key FROM mcpd_kv WHERE key LIKE 'oauth:%'")
    check(any(k.startswith("oauth:rt") for k in rows), rows)
    check(not any(tok["refresh_token"] in k for k in rows), "a token in the clear")
    a.stop()
    b.stop()


def test_configuration_errors(t):
    check_config_errors(t, [
        ("storage: { plugin: postgres }\n", r"bad\.yaml:\d+.*postgres needs url"),
        ("storage: { plugin: postgres, url: \"host=x bogus=1\" }\n", r"bad\.yaml:\d+.*url.*bogus"),
        ("storage: { plugin: postgres, url: \"postgresql://x/y\", table_prefix: \"Bad-Name\" }\n",
         r"bad\.yaml:\d+.*table_prefix must be"),
        ("storage: { plugin: postgres, url: \"postgresql://x/y\", schema: \"\" }\n", r"bad\.yaml:\d+.*schema must be"),
        ("storage: { plugin: postgres, url: \"postgresql://x/y\", query_timeout: 1ms }\n",
         r"bad\.yaml:\d+.*query_timeout must be"),
        ("storage: { plugin: postgres, url: \"postgresql://x/y\", password_file: nope }\n",
         r"bad\.yaml:\d+.*password_file: cannot open nope"),
        ("storage: { plugin: postgres, url: \"postgresql://x/y\", colour: red }\n", r"bad\.yaml:\d+.*colour"),
    ])
    # A good section checks without a database to reach.
    check_config_valid(t, "storage: { plugin: postgres, url: \"postgresql://mcpd@127.0.0.1:1/mcpd\", "
                       "connect_timeout: 2s, query_timeout: 3s, purge_interval: 30s }\n")


def test_password_file(t):
    """password_file: the password sent, from a file read at start."""
    pg = postgres_server(t)
    pg.sql("CREATE ROLE guarded LOGIN PASSWORD 'pw-in-a-file'")
    hba = os.path.join(pg.data, "pg_hba.conf")
    lines = open(hba).read()
    with open(hba, "w") as f:
        f.write("host all guarded 127.0.0.1/32 scram-sha-256\n" + lines)
    pg.sql("SELECT pg_reload_conf()")
    pwfile = os.path.join(t.dir, "pg.pw")
    with open(pwfile, "w") as f:
        f.write("pw-in-a-file\n")
    os.chmod(pwfile, 0o600)
    pg.sql("GRANT ALL ON SCHEMA public TO guarded")
    url = "postgresql://guarded@127.0.0.1:%d/mcpd" % pg.port
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\nstorage: { plugin: postgres, url: \"%s\", "
               "password_file: pg.pw, table_prefix: g_ }\n%s" % (port, url, TOOLS % {"name": "P"}))
    d.start(wait_url_port=port)
    wait_for(lambda: http(port, "GET", "/readyz")[0] == 200, what="ready with the password")
    sid = mcp_session(port)
    check(call_tool(port, sid, "where") == "P")
    d.stop()
    # Without it the server refuses, and /readyz says so.
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\nstorage: { plugin: postgres, url: \"%s\", table_prefix: g_ }\n"
               % (port, url), name="nopw.yaml")
    d.start(wait_url_port=port)
    wait_for(lambda: b"password" in http(port, "GET", "/readyz")[2], what="/readyz to say why")
    d.stop()


def test_stopping_with_storage_calls_in_flight(t):
    """The worker stops while its queries wait for a server that does not
    answer (SIGSTOP), the clients that caused them gone: it exits on its
    own. Detaching the plugin drops those queries without calling back
    into the sessions the worker has already freed."""
    pg = postgres_server(t)
    d, port = instance(t, pg, workers=1)
    sid = mcp_session(port)
    check(call_tool(port, sid, "where") == "A")
    backends = [int(x) for x in pg.sql("SELECT pid FROM pg_stat_activity WHERE application_name = 'mcpd'")]
    check(backends, "no mcpd connection seen by the server")
    body = json.dumps({"jsonrpc": "2.0", "id": 10, "method": "tools/call",
                       "params": {"name": "where", "arguments": {}}}).encode()
    for pid in backends:
        os.kill(pid, signal.SIGSTOP)
    try:
        socks = []
        for _ in range(8):
            s = socket.create_connection(("127.0.0.1", port), timeout=15)
            s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      b"Accept: application/json, text/event-stream\r\nMcp-Session-Id: " + sid.encode() +
                      b"\r\nMCP-Protocol-Version: 2025-11-25\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            socks.append(s)
        time.sleep(0.3)
        for s in socks:
            s.close()
        time.sleep(0.1)
        d.stop()
    finally:
        for pid in backends:
            os.kill(pid, signal.SIGCONT)
    check(d.worker_deaths() == [], "a worker did not stop cleanly:\n%s"
          % ("\n".join(d.worker_deaths()) + "\n" + d.log()[-3000:]))
    check(re.search(r"worker 1 \(pid \d+\) finished", d.log()), d.log()[-2000:])
