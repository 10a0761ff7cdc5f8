"""No secrets in storage keys or channel names: with sessions live on two
instances sharing a real Redis (a GET stream open, a tool running, a
question to the client waiting for its answer, events logged), neither
`redis-cli KEYS '*'` nor `PUBSUB CHANNELS` shows a session id: only its
keyed hash (lib/idhash.c), with the deployment's storage.hash_key_file
key when there is one."""

import os
import subprocess

from harness import (check, http, key_file, mcp_session, redis_server, rpc, sid_hash, start_instances, wait_for)
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
