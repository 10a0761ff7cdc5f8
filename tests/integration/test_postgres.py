"""The postgres storage plugin (plugins/postgres) against a real PostgreSQL
server started by the test (harness.Postgres): the storage contract, mcpd
instances sharing sessions, event replay and the internal OAuth server's
state through it, expiry, and the database going away and coming back."""

import json
import os
import re
import signal
import subprocess
import threading
import time

from harness import (MCP_HEADERS, MCPD, Postgres, Redis, check, free_port, http, mcp_session, rpc, run_mcpd,
                     sse_events, wait_for)

TOOLS = """
tools:
  - name: where
    description: The instance that runs the tool.
    shell: 'echo %(name)s'
  - name: chatty
    description: Five progress events, a little apart.
    shell: 'for i in 1 2 3 4 5; do mcpd-tool progress $i 5; sleep 0.15; done; echo done'
"""


def postgres_server(t):
    pg = Postgres(t.dir).start()
    t.daemons.append(pg)        # stopped after the test like the daemons
    return pg


def key_file(t):
    path = os.path.join(t.dir, "state.key")
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(path, 0o600)
    return path


def instance(t, pg, name="A", workers=2, extra="", storage_extra="", redis=None, port=None):
    port = port or free_port()
    transport = "transport: { plugin: redis, url: \"%s\" }\n" % redis.url if redis else ""
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: %d\nstorage: { plugin: postgres, url: \"%s\"%s }\n%s"
               "request_state: { key_file: %s }\n%s%s"
               % (port, workers, pg.url, storage_extra, transport, key_file(t), extra, TOOLS % {"name": name}),
               name="%s.yaml" % name)
    d.start(wait_url_port=port)
    wait_for(lambda: http(port, "GET", "/readyz")[0] == 200, what="instance %s ready" % name)
    return d, port


def call(port, sid, name, args=None, id=1):
    st, r, _ = rpc(port, sid, "tools/call", {"name": name, "arguments": args or {}}, id=id)
    check(st == 200 and r and "result" in r, (port, st, r))
    return r["result"]["content"][0]["text"].strip()


def test_storage_suite_against_postgres(t):
    """The unit suite every storage backend passes, against this server."""
    pg = postgres_server(t)
    exe = os.path.join(os.path.dirname(os.path.abspath(MCPD)), "unit-tests")
    check(os.access(exe, os.X_OK), "no unit-test binary at %s" % exe)
    env = dict(os.environ, CK_RUN_SUITE="storage", MCPD_TEST_POSTGRES_URL=pg.url)
    env.pop("MCPD_TEST_REDIS_URL", None)
    p = subprocess.run([exe], env=env, capture_output=True, text=True, timeout=180)
    out = p.stdout + p.stderr
    m = re.search(r"Checks: (\d+), Failures: 0, Errors: 0", out)
    # Three backends (memory, lmdb, postgres), ten checks each.
    check(p.returncode == 0 and m and int(m.group(1)) == 30, out[-3000:])
    tables = pg.sql("SELECT tablename FROM pg_tables WHERE tablename LIKE 't%\\_kv'")
    check(tables, "the suite made no tables")


def redis_server(t):
    r = Redis(t.dir).start()
    t.daemons.append(r)
    return r


def test_instances_share_sessions_that_survive_a_restart(t):
    """Two instances on one database (and a redis transport for what
    crosses instances): a session made on A is served by B, survives a
    restart of A, and a DELETE on B ends it everywhere."""
    pg = postgres_server(t)
    redis = redis_server(t)
    a, pa = instance(t, pg, "A", redis=redis)
    b, pb = instance(t, pg, "B", redis=redis)
    sid = mcp_session(pa)
    check(call(pb, sid, "where") == "B" and call(pa, sid, "where", id=2) == "A")
    check(pg.sql("SELECT count(*) FROM mcpd_kv WHERE key = 'session:%s'" % sid) == ["1"], "no session row")
    check(sid in pg.sql("SELECT member FROM mcpd_idx WHERE idx = 'user:anonymous:sessions'"))
    a.stop()
    a, pa = instance(t, pg, "A", redis=redis, port=pa)
    check(call(pa, sid, "where", id=3) == "A", "the session did not survive the restart")
    st, _, _ = http(pb, "DELETE", "/mcp", None, {"Mcp-Session-Id": sid})
    check(st == 200, st)
    for port in (pa, pb):
        st, r, _ = rpc(port, sid, "ping", id=4)
        check(st == 404, "after DELETE on B, %d answered %s" % (port, st))
    check(pg.sql("SELECT count(*) FROM mcpd_kv WHERE key LIKE '%%%s%%'" % sid) == ["0"], "rows left")
    a.stop()
    b.stop()


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
    wait_for(lambda: int(pg.sql("SELECT count(*) FROM mcpd_log WHERE log = 'events:%s'" % sid)[0]) >= 5,
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


def test_sessions_expire_and_are_purged(t):
    """An idle session expires on time (the server's clock), and the purge
    deletes its rows; table_prefix and schema name where the tables go."""
    pg = postgres_server(t)
    d, port = instance(t, pg, extra="limits: { session_idle_timeout: 1s }\n",
                       storage_extra=", schema: mcpd_test, table_prefix: x_, purge_interval: 300ms")
    sid = mcp_session(port)
    kv = "mcpd_test.x_kv"
    check(pg.sql("SELECT count(*) FROM %s WHERE key = 'session:%s'" % (kv, sid)) == ["1"])
    for i in range(8):      # used: renewed past its idle timeout
        check(rpc(port, sid, "ping", id=i)[0] == 200)
        time.sleep(0.2)
    time.sleep(1.3)
    check(rpc(port, sid, "ping", id=99)[0] == 404, "the session outlived its idle timeout")
    wait_for(lambda: pg.sql("SELECT count(*) FROM %s WHERE key = 'session:%s'" % (kv, sid)) == ["0"] and
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
    statuses, errors, stop = [], set(), threading.Event()

    def load():
        i = 0
        while not stop.is_set():
            i += 1
            st, r, _ = rpc(pa, sid, "tools/call", {"name": "where", "arguments": {}}, id=i, timeout=10)
            statuses.append(st)
            if st != 200:
                errors.add(json.dumps(r))

    th = threading.Thread(target=load)
    th.start()
    try:
        wait_for(lambda: len(statuses) > 30, what="load")
        pg.stop()
        wait_for(lambda: statuses.count(503) > 10, what="503 while the database is down")
        st, _, body = http(pa, "GET", "/readyz")
        check(st == 503 and b"postgres" in body, (st, body))
        check(http(pa, "GET", "/healthz")[0] == 200, "the process is alive even though it is not ready")
        pg.start()
        wait_for(lambda: all(http(pa, "GET", "/readyz")[0] == 200 for _ in range(6)), timeout=15,
                 what="ready again")
        n = len(statuses)
        wait_for(lambda: len(statuses) > n + 30, what="load after the restart")
    finally:
        stop.set()
        th.join()
    check(set(statuses) <= {200, 503}, "statuses seen: %s" % sorted(set(statuses)))
    check(all("storage is unavailable" in e for e in errors), errors)
    check(statuses[-20:] == [200] * 20, statuses[-40:])
    check("postgres" in a.log() and "connected again" in a.log(), a.log()[-1500:])
    a.stop()


def test_starts_before_the_database(t):
    """An instance whose database is not up yet starts, is not ready, and
    becomes ready without a restart."""
    pg = Postgres(t.dir)
    t.daemons.append(pg)
    d, port = None, free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\nstorage: { plugin: postgres, url: \"%s\" }\n%s"
               % (port, pg.url, TOOLS % {"name": "A"}))
    d.start(wait_url_port=port)
    st, _, body = http(port, "GET", "/readyz")
    check(st == 503 and b"cannot connect" in body, (st, body))
    st, r, _ = rpc(port, None, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "x", "version": "1"}}, id=0)
    check(st == 503, (st, r))
    pg.start()
    wait_for(lambda: all(http(port, "GET", "/readyz")[0] == 200 for _ in range(4)), timeout=20, what="ready")
    sid = mcp_session(port)
    check(call(port, sid, "where") == "A")
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
    wait_for(lambda: all(http(port, "GET", "/readyz")[0] == 200 for _ in range(4)), timeout=20, what="ready")
    sid = mcp_session(port)
    check(call(port, sid, "where") == "L")
    check("cannot resolve" not in d.log(), d.log()[-2000:])
    d.stop()


def test_a_host_name_that_does_not_resolve(t):
    """A name that does not resolve is reported like a server that is
    down: 503, /readyz says why, the log too, and the lookups, retried
    with the back-off, never hold the worker up: /healthz is answered
    all along."""
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\nstorage: { plugin: postgres, "
               "url: \"postgresql://mcpd@no-such-host.invalid:5432/mcpd\", connect_timeout: 2s }\n%s"
               % (port, TOOLS % {"name": "N"}))
    d.start(wait_url_port=port)
    wait_for(lambda: "cannot resolve no-such-host.invalid" in d.log(), timeout=20, what="the lookup error logged")
    for _ in range(20):
        st, _, body = http(port, "GET", "/healthz")
        check(st == 200, (st, body))
    st, _, body = http(port, "GET", "/readyz")
    check(st == 503 and b"cannot resolve no-such-host.invalid" in body, (st, body))
    st, r, _ = rpc(port, None, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "x", "version": "1"}}, id=0)
    check(st == 503, (st, r))
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


def test_internal_oauth_server_on_postgres(t):
    """auth: internal keeps clients, codes and tokens in postgres: a token
    issued by A is accepted by B, refreshed at B, revoked at A."""
    from test_oauth import add_user, dead_everywhere, form_post, mcp_status, refresh, register, tokens_for
    pg = postgres_server(t)
    redis = redis_server(t)
    add_user(t, "alice", "alice-pw", "tools.admin")
    pa, pb = free_port(), free_port()
    auth = "auth: { plugin: internal, users_file: users, resource: \"http://127.0.0.1:%d/mcp\" }\n" % pa
    a, _ = instance(t, pg, "A", redis=redis, port=pa, extra=auth)
    b, _ = instance(t, pg, "B", redis=redis, port=pb, extra=auth)
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
    rows = pg.sql("SELECT key FROM mcpd_kv WHERE key LIKE 'oauth:%'")
    check(any(k.startswith("oauth:rt") for k in rows), rows)
    check(not any(tok["refresh_token"] in k for k in rows), "a token in the clear")
    a.stop()
    b.stop()


def test_configuration_errors(t):
    path = os.path.join(t.dir, "bad.yaml")
    cases = [
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
    ]
    for text, want in cases:
        with open(path, "w") as f:
            f.write("listen: [127.0.0.1:%d]\n%s" % (free_port(), text))
        rc, out, err = run_mcpd("-t", "-c", path)
        out += err
        check(rc != 0 and re.search(want, out), "%r: rc %s, %s" % (text, rc, out))
    # A good section checks without a database to reach.
    with open(path, "w") as f:
        f.write("listen: [127.0.0.1:%d]\nstorage: { plugin: postgres, url: \"postgresql://mcpd@127.0.0.1:1/mcpd\", "
                "connect_timeout: 2s, query_timeout: 3s, purge_interval: 30s }\n" % free_port())
    rc, out, err = run_mcpd("-t", "-c", path)
    check(rc == 0, out + err)


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
    check(call(port, sid, "where") == "P")
    d.stop()
    # Without it the server refuses, and /readyz says so.
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\nstorage: { plugin: postgres, url: \"%s\", table_prefix: g_ }\n"
               % (port, url), name="nopw.yaml")
    d.start(wait_url_port=port)
    wait_for(lambda: b"password" in http(port, "GET", "/readyz")[2], what="/readyz to say why")
    d.stop()
