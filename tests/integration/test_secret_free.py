"""No secrets in storage keys or channel names: with sessions live on two
instances sharing a real Redis (a GET stream open, a tool running, a
question to the client waiting for its answer, events logged), neither
`redis-cli KEYS '*'` nor `PUBSUB CHANNELS` shows a session id: only its
keyed hash (lib/idhash.c), with the deployment's storage.hash_key_file
key when there is one."""

import os
import subprocess

from harness import (check, free_port, http, key_file, mcp_session, redis_server, rpc, sid_hash, start_instances,
                     wait_for)
from test_redis import TOOLS, get_stream, post_stream, read_until
from test_sign import sign_key


def cli(redis, *args):
    p = subprocess.run(["redis-cli", "-p", str(redis.port), *args], capture_output=True, text=True, timeout=20)
    check(p.returncode == 0, p.stderr)
    return p.stdout.split()


def live_names(t, redis, hash_key=None):
    """Two instances, a session with everything live: (keys, channels,
    sid), read while it is live."""
    extra = ", hash_key_file: %s" % hash_key if hash_key else ""
    conf = lambda name: ("storage: { plugin: redis, url: \"%s\"%s }\n"
                         "transport: { plugin: redis, url: \"%s\" }\n"
                         "request_state: { key_file: %s }\n" % (redis.url, extra, redis.url, key_file(t)) +
                         TOOLS % {"name": name})
    (a, pa), (b, pb) = start_instances(t, 2, conf)
    sid = mcp_session(pa, caps={"elicitation": {}})
    g = get_stream(pb, sid)
    s = post_stream(pa, sid, {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                               "params": {"name": "ask", "arguments": {}}})
    try:
        read_until(g, b"\r\n\r\n")
        read_until(s, b"elicitation/create")
        h = sid_hash(sid, hash_key)
        wait_for(lambda: any(h in c for c in cli(redis, "PUBSUB", "CHANNELS")), what="the session's channels")
        keys, channels = cli(redis, "KEYS", "*"), cli(redis, "PUBSUB", "CHANNELS")
    finally:
        s.close()
        g.close()
    a.stop()
    b.stop()
    return keys, channels, sid


def test_no_session_id_in_keys_or_channels(t):
    redis = redis_server(t)
    keys, channels, sid = live_names(t, redis)
    h = sid_hash(sid)
    for name in keys + channels:
        check(sid not in name, "the session id in %r" % name)
    # What is there is named by the hash (the check above looked at the
    # names that matter).
    check("mcpd:session:" + h in keys and "mcpd:events:" + h in keys, keys)
    check("mcpd:toclient:" + h in channels and "mcpd:control:" + h in channels and
          any(c.startswith("mcpd:toserver:" + h + ":") for c in channels), channels)


def test_a_deployment_key(t):
    """With hash_key_file the names are the key's HMAC: not those of the
    fixed key, which someone holding an id could compute."""
    redis = redis_server(t)
    k = sign_key(t, "hash.key")
    keys, channels, sid = live_names(t, redis, hash_key=k)
    check("mcpd:session:" + sid_hash(sid, k) in keys, keys)
    check(not any(sid_hash(sid) in n or sid in n for n in keys + channels), keys + channels)


def values(redis):
    """Every value in the Redis, whatever its type, as one text."""
    out = []
    for k in cli(redis, "--scan"):
        kind = cli(redis, "TYPE", k)[0]
        read = {"string": ["GET", k], "set": ["SMEMBERS", k], "zset": ["ZRANGE", k, "0", "-1"],
                "list": ["LRANGE", k, "0", "-1"], "hash": ["HGETALL", k], "stream": ["XRANGE", k, "-", "+"]}.get(kind)
        if read is not None:
            p = subprocess.run(["redis-cli", "-p", str(redis.port), *read], capture_output=True, text=True,
                               timeout=20)
            out.append("%s (%s): %s" % (k, kind, p.stdout))
    return "\n".join(out)


def test_no_session_id_in_values_or_messages(t):
    """Nor in the values of the user index (its members) nor in the
    messages that go by on the transport (mcpd:sessions: a changed record,
    a deleted session; mcpd:changes; mcpd:cache), read by a subscriber to
    every channel while a session lives, changes and ends."""
    redis = redis_server(t)
    conf = lambda name: ("storage: { plugin: redis, url: \"%s\" }\n"
                         "transport: { plugin: redis, url: \"%s\" }\n"
                         "request_state: { key_file: %s }\n" % (redis.url, redis.url, key_file(t)) +
                         TOOLS % {"name": name})
    (a, pa), (b, pb) = start_instances(t, 2, conf)
    seen = open(os.path.join(t.dir, "pubsub.txt"), "w+")
    sub = subprocess.Popen(["redis-cli", "-p", str(redis.port), "PSUBSCRIBE", "*"], stdout=seen,
                           stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: cli(redis, "PUBSUB", "NUMPAT") == ["1"], what="the subscriber")
        sid = mcp_session(pa, caps={"elicitation": {}})
        h = sid_hash(sid)
        st, _, _ = rpc(pb, sid, "logging/setLevel", {"level": "debug"})
        check(st == 200, st)
        st, _, _ = rpc(pa, sid, "tools/list", id=2)
        check(st == 200, st)
        stored = values(redis)
        check(h in stored, stored)          # the index and the record are there
        check(sid not in stored, "the session id in a stored value:\n%s" % stored)
        st, _, _ = http(pa, "DELETE", "/mcp", None, {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"})
        check(st in (200, 204), st)
        # The deletion's message went by (named by the hash).
        wait_for(lambda: open(seen.name).read().count(h) >= 2, what="the session's messages")
    finally:
        sub.terminate()
        sub.wait()
        a.stop()
        b.stop()
    text = open(seen.name).read()
    check("sessions" in text, text)
    check(sid not in text, "the session id in a message:\n%s" % text)


# ---- tasks, OAuth and API keys ----

def task_flow(pa, pb, headers, found):
    """On two instances: a task-augmented tools/call started on A, read
    and cancelled on B while its command runs (its channel live), a task
    that asks the client answered on B, a listen stream for the first on B.
    Snapshots the names (found["snap"]) while the tasks live; adds to
    found every task id the client saw."""
    from test_tasks import call as task_call, listen, task, until
    gate = os.path.join(found["dir"], "gate%d" % len(found["tids"]))
    pid = gate + ".pid"
    st, r = task_call(pa, "wait", {"pidfile": pid, "gate": gate}, headers=headers)
    check(st == 200 and r["result"]["resultType"] == "task", r)
    tid = r["result"]["taskId"]
    found["tids"].append(tid)
    s, _ = listen(pb, [tid], headers=headers)
    try:
        wait_for(lambda: os.path.exists(pid) and os.path.getsize(pid) > 0, 10, "the command to start")
        until(pb, tid, ("working",), headers=headers)
        found["names"] += found["snap"]()
        st, r = task(pb, "tasks/cancel", tid, headers=headers)
        check(r["result"] == {"resultType": "complete"}, r)
        check(until(pa, tid, ("cancelled",), headers=headers)["status"] == "cancelled")
        st, r = task_call(pb, "ask", headers=headers, id=2)
        tid2 = r["result"]["taskId"]
        found["tids"].append(tid2)
        until(pa, tid2, ("input_required",), headers=headers)
        found["names"] += found["snap"]()
        st, r = task(pb, "tasks/update", tid2, {"inputResponses": {"who": {"action": "accept",
                                                                            "content": {"name": "Ada"}}}},
                     headers=headers)
        check(r["result"] == {"resultType": "complete"}, r)
        check(until(pa, tid2, ("completed",), headers=headers)["result"]["content"][0]["text"].startswith("hi Ada"))
    finally:
        s.close()


def secret_flows(t, backends, snap, dump, heard):
    """Two instances on backends (the text of their storage, transport and
    request_state), first with the internal OAuth server (a confidential
    client's secret, a code, its verifier, access and refresh tokens, a
    refresh), then with API keys;
    with each a session and tasks (one cancelled, one answered). snap()
    gives the backend's names now (keys, index members, channels), dump()
    every stored value as text, heard() the text of every message and
    channel a listener to all of them heard. Checks that none holds a task
    id, token, code, key or session id the client saw."""
    from test_auth import bearer as key_bearer, make_key
    from test_auth import session as key_session
    from test_oauth import (add_user, authorize_url, exchange, pkce, redirected, refresh, register,
                            session as oauth_session, sign_in)
    from test_tasks import TOOLS as TASK_TOOLS
    found = {"dir": t.dir, "snap": snap, "tids": [], "names": []}
    shown = []

    # OAuth: both instances serve one resource (A's URL).
    add_user(t, "alice", "alice-pw")
    pa, pb = free_port(), free_port()
    ds = []
    for name, port in (("A", pa), ("B", pb)):
        d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\n"
                   "auth: { plugin: internal, users_file: users, resource: \"http://127.0.0.1:%d/mcp\" }\n%s%s"
                   % (port, pa, backends, TASK_TOOLS % {"name": name}), name="%s.yaml" % name)
        d.start(wait_url_port=port)
        ds.append(d)
    # A confidential client: its secret is presented too.
    client = register(pa, token_endpoint_auth_method="client_secret_post")
    secret = client["client_secret"]
    verifier, challenge = pkce()
    st, hdrs, body = sign_in(pa, authorize_url(pa, client["client_id"], challenge, scope=None))
    check(st == 303, (st, body[:300]))
    code = redirected(hdrs)[1]["code"]
    st, _, tok = exchange(pb, client, code, verifier, client_secret=secret)
    check(st == 200, tok)
    st, _, tok2 = refresh(pa, client, tok["refresh_token"], client_secret=secret)
    check(st == 200, tok2)
    shown += [secret, code, verifier, tok["access_token"], tok["refresh_token"], tok2["access_token"],
              tok2["refresh_token"]]
    sid = oauth_session(pb, tok2)
    shown.append(sid)
    st, _, _ = rpc(pa, sid, "tools/list", id=2, headers={"Authorization": "Bearer " + tok2["access_token"]})
    check(st == 200, st)
    found["names"] += snap()
    task_flow(pa, pb, {"Authorization": "Bearer " + tok2["access_token"]}, found)
    stored = dump()
    for d in ds:
        d.stop()

    # API keys.
    key = make_key(t, "bob")
    shown.append(key)
    (a, pa), (b, pb) = start_instances(t, 2, lambda name: "auth: { plugin: apikey, keys_file: keys }\n" +
                                       backends + TASK_TOOLS % {"name": name})
    sid = key_session(pa, key)
    shown.append(sid)
    st, _, _ = rpc(pb, sid, "tools/list", id=2, headers=key_bearer(key))
    check(st == 200, st)
    task_flow(pb, pa, key_bearer(key), found)
    stored += dump()
    # Both flows' answers to their tasks went by (and the rest before them).
    wait_for(lambda: "mcpd:tasks" in heard() and heard().count('"t":"answers"') >= 2, what="the tasks' messages")
    a.stop()
    b.stop()

    shown += found["tids"]
    check(len(found["tids"]) == 4 and all(shown), shown)
    text = heard()
    check(found["names"] and stored and "mcpd:tasks" in text, (found["names"], stored[:300], text[-300:]))
    # The snapshots saw the tasks' keys: named by their hashes.
    check(all(any(sid_hash(tid) in n for n in found["names"]) for tid in found["tids"]), found["names"])
    bad = []
    for s in shown:
        bad += ["%s… in the name %r" % (s[:12], n) for n in set(found["names"]) if s in n]
        if s in stored:
            bad.append("%s… in a stored value: %s" % (s[:12], [l for l in stored.split("\n") if s in l]))
        if s in text:
            bad.append("%s… in a message or channel: %s" % (s[:12], [l for l in text.split("\n") if s in l]))
    check(not bad, "secrets the client saw in the backends:\n" + "\n".join(bad))


def test_no_task_id_token_code_or_key_in_redis(t):
    """On Redis: KEYS *, PUBSUB CHANNELS while the tasks live, every value
    (whatever its type), and every channel and message a PSUBSCRIBE *
    heard."""
    redis = redis_server(t)
    seen = open(os.path.join(t.dir, "pubsub.txt"), "w+")
    sub = subprocess.Popen(["redis-cli", "-p", str(redis.port), "PSUBSCRIBE", "*"], stdout=seen,
                           stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: cli(redis, "PUBSUB", "NUMPAT") == ["1"], what="the subscriber")
        secret_flows(t, "storage: { plugin: redis, url: \"%s\" }\ntransport: { plugin: redis, url: \"%s\" }\n"
                     "request_state: { key_file: %s }\n" % (redis.url, redis.url, key_file(t)),
                     lambda: cli(redis, "KEYS", "*") + cli(redis, "PUBSUB", "CHANNELS"),
                     lambda: values(redis), lambda: open(seen.name).read())
    finally:
        sub.terminate()
        sub.wait()


class NatsSpy:
    """A raw NATS connection subscribed to every subject (SUB >): each
    message's subject and body, as text, in a file."""

    def __init__(self, t, nats):
        import socket
        import threading
        self.path = os.path.join(t.dir, "nats-heard.txt")
        self.out = open(self.path, "w")
        self.s = socket.create_connection(("127.0.0.1", nats.port), timeout=30)
        self.f = self.s.makefile("rb")
        check(self.f.readline().startswith(b"INFO "))
        self.s.sendall(b'CONNECT {"verbose":false}\r\nSUB > 1\r\nPING\r\n')
        while self.f.readline().strip() != b"PONG":
            pass
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def run(self):
        try:
            while True:
                words = self.f.readline().split()
                if not words:
                    return
                if words[0] == b"PING":
                    self.s.sendall(b"PONG\r\n")
                elif words[0] in (b"MSG", b"HMSG"):
                    data = self.f.read(int(words[-1]) + 2)[:-2]
                    self.out.write("%s\n%s\n" % (words[1].decode(), data.decode(errors="replace")))
                    self.out.flush()
        except (OSError, ValueError):
            return

    def text(self):
        return open(self.path).read()

    def close(self):
        try:
            self.s.shutdown(2)
        except OSError:
            pass
        self.s.close()
        self.th.join(5)


def test_no_task_id_token_code_or_key_in_postgres_or_nats(t):
    """The same with PostgreSQL storage (every table's keys, index names
    and members, and values, read with psql) and the NATS transport
    (every subject and message, heard by a subscriber to all)."""
    from harness import nats_server, postgres_server
    pg, nats = postgres_server(t), nats_server(t)
    spy = NatsSpy(t, nats)

    def names():
        return (pg.sql("SELECT key FROM mcpd_kv") + pg.sql("SELECT idx || ' ' || member FROM mcpd_idx") +
                pg.sql("SELECT DISTINCT log FROM mcpd_log") + pg.sql("SELECT log FROM mcpd_logmeta"))

    def dump():
        return "\n".join(pg.sql("SELECT key || ' ' || encode(value, 'escape') FROM mcpd_kv") +
                         pg.sql("SELECT idx || ' ' || member FROM mcpd_idx") +
                         pg.sql("SELECT log || ' ' || encode(value, 'escape') FROM mcpd_log"))
    try:
        secret_flows(t, "storage: { plugin: postgres, url: \"%s\" }\ntransport: { plugin: nats, url: \"%s\" }\n"
                     "request_state: { key_file: %s }\n" % (pg.url, nats.url, key_file(t)), names, dump, spy.text)
    finally:
        spy.close()
