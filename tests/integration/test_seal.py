"""Encrypted state (storage: { encrypt_key_file: ... }): what mcpd keeps in
a real Redis and a real PostgreSQL, read raw with redis-cli and psql,
holds no session record, client info or event in clear; sessions still
work across instances (and resume from the sealed event log); a value
sealed with a key not configured is an error the daemon survives; a
rotation reads old values with the old key."""

import json
import os
import re
import subprocess

from harness import (sid_hash, alive, call_tool, check, check_config_errors, free_port, http, key_file, postgres_server,
                     redis_server, rpc, start_instances, wait_for, workers_ready, MCP_HEADERS)
from test_redis import TOOLS, resume_crosses
from test_sign import derived, sign_key


def enc_kid(path):
    """The key id mcpd stores beside values sealed with path's key."""
    import hashlib
    secret = open(path, "rb").read().rstrip(b" \t\r\n")
    key = hashlib.sha256(b"mcpd storage sealing\0" + secret).digest()
    return hashlib.sha256(b"mcpd key id\0" + key).digest()[:4].hex()


def storage(t, redis, key=None, accept=None):
    extra = ", encrypt_key_file: %s" % key if key else ""
    if accept:
        extra += ", encrypt_key_file_accept: %s" % accept
    return ("storage: { plugin: redis, url: \"%s\"%s }\n"
            "transport: { plugin: redis, url: \"%s\" }\n"
            "request_state: { key_file: %s }\n" % (redis.url, extra, redis.url, key_file(t)))


def session_as(port, client):
    """A session whose clientInfo names client: its id."""
    body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                       "params": {"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}},
                                  "clientInfo": {"name": client, "version": "9.8.7"}}})
    st, hdrs, data = http(port, "POST", "/mcp", body, MCP_HEADERS)
    check(st == 200, (st, data[:300]))
    sid = hdrs["mcp-session-id"]
    st, _, _ = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                    dict(MCP_HEADERS, **{"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}))
    check(st == 202, st)
    return sid


def redis_cli(redis, *args):
    p = subprocess.run(["redis-cli", "-p", str(redis.port), "--no-raw", *args], capture_output=True, text=True,
                       timeout=20)
    check(p.returncode == 0, p.stderr)
    return p.stdout


def redis_dump(redis):
    """Every key and its values as redis-cli shows them: {key: text}."""
    out = {}
    for key in redis_cli(redis, "--scan").split():
        key = key.strip('"')
        kind = redis_cli(redis, "TYPE", key).strip()
        cmd = {"string": ["GET", key], "list": ["LRANGE", key, "0", "-1"], "set": ["SMEMBERS", key],
               "zset": ["ZRANGE", key, "0", "-1"], "hash": ["HGETALL", key],
               "stream": ["XRANGE", key, "-", "+"]}.get(kind)
        out[key] = redis_cli(redis, *cmd) if cmd else ""
    return out


def no_clear_state(dump, sid, client):
    """No value of dump shows the session's record, client or events."""
    for key, text in dump.items():
        for secret in (client, "9.8.7", "clientInfo", "protocolVersion", "notifications/progress", '"jsonrpc"'):
            check(secret not in text, "%r in the raw value of %s: %s" % (secret, key, text[:400]))


def test_nothing_in_clear_in_redis_and_sessions_work(t):
    redis = redis_server(t)
    k = sign_key(t, "enc.key")
    (a, pa), (b, pb) = start_instances(t, 2, lambda name: storage(t, redis, k) + TOOLS % {"name": name})
    client = "sealed-client-%s" % os.urandom(4).hex()
    sid = session_as(pa, client)
    check(call_tool(pb, sid, "where") == "B" and call_tool(pa, sid, "where", id=2) == "A")
    resume_crosses(pa, pb, sid)      # events logged by A, replayed from storage by B
    dump = redis_dump(redis)
    record = [v for key, v in dump.items() if key.endswith(sid_hash(sid)) and key.startswith("mcpd:session")]
    check(record and record[0].strip().strip('"').startswith("mcpd-enc1:%s:" % enc_kid(k)),
          "the session record is not sealed: %s" % dump)
    check(any("events" in key for key in dump), "no event log in %s" % list(dump))
    no_clear_state(dump, sid, client)

    # Without encryption the same shows in clear (the check above can fail).
    (c, pc), = start_instances(t, 1, lambda name: storage(t, redis) + TOOLS % {"name": "C"})
    sid2 = session_as(pc, client)
    clear = redis_dump(redis)
    check(any(client in v for v in clear.values()), "a clear session record has no client name")
    # A record written in clear is absent to an instance that seals.
    st, _, _ = rpc(pa, sid2, "ping", id=3)
    check(st == 404, "a session stored in clear was served by a sealing instance: %s" % st)
    wait_for(lambda: "is taken as absent" in a.log(), what="the clear value logged")
    for d in (a, b, c):
        d.stop()


def test_an_unknown_key_is_an_error_not_a_crash(t):
    """An instance with another key reads the sealed session: an error
    (the session is not served, the log says which key sealed it) and the
    workers live on; a rotation that keeps the old key as
    encrypt_key_file_accept serves it, and writes with the new key."""
    redis = redis_server(t)
    k, other = sign_key(t, "enc.key"), sign_key(t, "other.key")
    keys = {"A": (k, None), "B": (other, None), "C": (other, k)}
    (a, pa), (b, pb), (c, pc) = start_instances(
        t, 3, lambda name: storage(t, redis, *keys[name]) + TOOLS % {"name": name})
    sid = session_as(pa, "rotating-client")
    workers = b.workers()
    st, r, _ = rpc(pb, sid, "tools/list", {}, id=2)
    check(st >= 500 or st == 404, "a value sealed with an unknown key was served: %s %s" % (st, r))
    check(st != 404, "an unknown key taken as a missing session: %s" % st)
    wait_for(lambda: re.search(r"sealed with key %s, which is not configured" % enc_kid(k), b.log()),
             what="the unknown key logged")
    check(b.workers() == workers and all(alive(p) for p in workers), "a worker died")
    check(http(pb, "GET", "/healthz")[0] == 200)
    # The rotation: C opens it with the key it accepts.
    check(call_tool(pc, sid, "where", id=3) == "C")
    # What C writes is sealed with its new key (a new session here).
    sid2 = session_as(pc, "rotated-client")
    v = redis_cli(redis, "GET", "mcpd:session:" + sid_hash(sid2))
    check(("mcpd-enc1:%s:" % enc_kid(other)) in v, v[:200])
    # and A, which has only the old key, cannot read it.
    st, _, _ = rpc(pa, sid2, "ping", id=4)
    check(st >= 500, st)
    for d in (a, b, c):
        d.stop()


def test_nothing_in_clear_in_postgres(t):
    pg = postgres_server(t)
    redis = redis_server(t)
    k = sign_key(t, "enc.key")
    conf = lambda name: ("storage: { plugin: postgres, url: \"%s\", encrypt_key_file: %s }\n"
                         "transport: { plugin: redis, url: \"%s\" }\n"
                         "request_state: { key_file: %s }\n" % (pg.url, k, redis.url, key_file(t)) +
                         TOOLS % {"name": name})
    (a, pa), (b, pb) = start_instances(t, 2, conf)
    client = "pg-sealed-client-%s" % os.urandom(4).hex()
    sid = session_as(pa, client)
    check(call_tool(pb, sid, "where") == "B")
    resume_crosses(pa, pb, sid)
    kv = pg.sql("SELECT key || ' ' || encode(value, 'escape') FROM mcpd_kv")
    log = pg.sql("SELECT log || ' ' || encode(value, 'escape') FROM mcpd_log")
    check(any(row.startswith("session:" + sid_hash(sid) + " mcpd-enc1:") for row in kv), kv)
    check(log, "no event log rows")
    dump = {row.split(" ", 1)[0] + "#%d" % i: row.split(" ", 1)[1] for i, row in enumerate(kv + log)}
    for v in dump.values():
        check(v.startswith("mcpd-enc1:"), "a value in clear: %s" % v[:300])
    no_clear_state(dump, sid, client)
    a.stop()
    b.stop()


def test_encryption_key_errors(t):
    good = sign_key(t, "good.key")
    open_key = sign_key(t, "open.key", mode=0o604)
    check_config_errors(t, [
        ("storage: { plugin: memory, encrypt_key_file: %s }\nworkers: 1\n" % open_key,
         r"encrypt_key_file: .*readable or writable by others \(mode 604\)"),
        ("storage: { plugin: memory, encrypt_key_file: %s/none }\nworkers: 1\n" % t.dir,
         r"encrypt_key_file: .*No such file"),
        ("storage: { plugin: memory, encrypt_key_file_accept: %s }\nworkers: 1\n" % good,
         r"encrypt_key_file_accept needs encrypt_key_file too"),
        ("storage: { plugin: memory, sign_key_file: %s }\nworkers: 1\n" % good, r"unknown key \"sign_key_file\""),
    ])


def published(redis, path):
    """A redis-cli subscribed to every channel, writing what goes by to
    path: the process."""
    sub = subprocess.Popen(["redis-cli", "-p", str(redis.port), "PSUBSCRIBE", "*"], stdout=open(path, "w"),
                           stderr=subprocess.STDOUT)
    wait_for(lambda: redis_cli(redis, "PUBSUB", "NUMPAT").strip() == "(integer) 1", what="the subscriber")
    return sub


def test_session_messages_are_sealed(t):
    """With encrypt_key_file a changed session record goes sealed on
    mcpd:sessions too (the transport's readers are not only the
    storage's): no client info in any message that goes by; without it
    the record shows (the check can fail)."""
    redis = redis_server(t)
    k = sign_key(t, "enc.key")
    for key in (k, None):
        (a, pa), (b, pb) = start_instances(t, 2, lambda name: storage(t, redis, key) + TOOLS % {"name": name})
        path = os.path.join(t.dir, "pubsub-%s.txt" % ("sealed" if key else "clear"))
        sub = published(redis, path)
        try:
            client = "msg-client-%s" % os.urandom(4).hex()
            sid = session_as(pa, client)
            st, _, _ = rpc(pb, sid, "logging/setLevel", {"level": "debug"})
            check(st == 200, st)
            check(call_tool(pa, sid, "where") == "A" and call_tool(pb, sid, "where", id=2) == "B")
            wait_for(lambda: "sessions" in open(path).read() and sid_hash(sid) in open(path).read(),
                     what="the session's record on mcpd:sessions")
        finally:
            sub.terminate()
            sub.wait()
        text = open(path).read()
        if key:
            check(client not in text and "9.8.7" not in text, "a session record in clear on the transport:\n%s" % text)
            check("mcpd-enc1:%s:" % enc_kid(k) in text, text)
        else:
            check(client in text, "without encryption the record goes in clear:\n%s" % text)
        a.stop()
        b.stop()
