"""The storage cache (storage: { cache: }) against a real redis-server and
nats-server: what it keeps is dropped on every instance when mcpd changes
it, it is bypassed while the transport is down and used again once it is
back, and its section is checked. Records are removed behind mcpd's back
(straight in Redis) to see whether a worker answers from its cache or
from storage: the cache never learns of those."""

import re
import time

from harness import (all_ready, check, check_config_errors, check_config_valid, free_port, http, key_file, mcp_session,
                     nats_server, redis_server, rpc, sid_hash, start_instances, wait_for)
from test_oauth import add_user, dead_everywhere, form_post, mcp_status, register, tokens_for

CACHE = ", cache: { entries: 1000, ttl: 60s }"


def backends(t, redis, nats=None, extra=""):
    transport = ("transport: { plugin: nats, url: \"%s\" }\n" % nats.url if nats else
                 "transport: { plugin: redis, url: \"%s\" }\n" % redis.url)
    return ("storage: { plugin: redis, url: \"%s\"%s }\n%srequest_state: { key_file: %s }\n%s"
            % (redis.url, CACHE, transport, key_file(t), extra))


def pings(port, sid, n=6):
    """n pings on new connections (spread over the workers): their statuses."""
    return [rpc(port, sid, "ping", id=i)[0] for i in range(n)]


def test_the_cache_answers_until_mcpd_changes_a_key(t):
    """A session record read once is answered from the cache: removed in
    Redis behind mcpd's back, the session is still served. A DELETE made
    through mcpd on A is 404 on B at once."""
    redis = redis_server(t)
    mport = free_port()
    (a, pa), (b, pb) = start_instances(t, 2, lambda name: backends(t, redis, extra="metrics: { listen: "
                                       "127.0.0.1:%d }\n" % mport if name == "B" else ""), workers=1)
    sid = mcp_session(pa)
    check(pings(pb, sid) == [200] * 6)
    check(redis.cli("DEL", "mcpd:session:" + sid_hash(sid)) == "1")
    check(pings(pb, sid) == [200] * 6, "not answered from the cache")
    # Seen in the metrics: the first read missed, the others hit.
    st, _, body = http(mport, "GET", "/metrics")
    reads = dict(re.findall(r'mcpd_storage_cache_reads_total\{result="(\w+)"\} (\d+)', body.decode()))
    check(st == 200 and int(reads.get("hit", 0)) >= 11 and int(reads.get("miss", 0)) >= 1, reads)
    check(re.search(r"mcpd_storage_cache_entries [1-9]", body.decode()), body.decode()[-1500:])
    sid = mcp_session(pa)
    check(pings(pb, sid) == [200] * 6)
    st, _, _ = http(pa, "DELETE", "/mcp", None, {"Mcp-Session-Id": sid})
    check(st == 200)
    check(pings(pb, sid) == [404] * 6, "a deleted session served from B's cache")
    a.stop()
    b.stop()


def test_a_revoked_token_is_refused_everywhere(t):
    """Access tokens and grants read on B are kept in B's cache; revoked on
    A, B refuses the token (the auth cache's broadcast evicts it there, and
    B then reads it again: not from a stale copy)."""
    redis = redis_server(t)
    add_user(t, "alice", "alice-pw", "tools.admin")
    pa, pb = free_port(), free_port()
    # Both name A's resource: a token issued by A is good on B.
    auth = "auth: { plugin: internal, users_file: users, resource: \"http://127.0.0.1:%d/mcp\" }\n" % pa
    daemons = []
    for name, port in (("A", pa), ("B", pb)):
        d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\n%s" % (port, backends(t, redis, extra=auth)),
                   name=name + ".yaml")
        d.start(wait_url_port=port)
        daemons.append(d)
    client, tok = tokens_for(pa, register(pa))
    for port in (pa, pb):
        for _ in range(8):
            check(mcp_status(port, tok) == 200, "token refused on %d" % port)
    st, _, _ = form_post(pa, "/oauth/revoke", {"token": tok["access_token"], "client_id": client["client_id"]})
    check(st == 200)
    dead_everywhere(pb, tok)
    dead_everywhere(pa, tok)
    for d in daemons:
        d.stop()


def test_transport_down_bypasses_the_cache(t):
    """nats (the transport) is killed: the workers read storage again at
    once (a record removed behind mcpd's back is gone); once nats is back
    they use the cache again."""
    redis, nats = redis_server(t), nats_server(t)
    (a, pa), = start_instances(t, 1, lambda name: backends(t, redis, nats), workers=2)
    sid, sid2 = mcp_session(pa), mcp_session(pa)
    check(pings(pa, sid) == [200] * 6 and pings(pa, sid2) == [200] * 6)
    nats.kill()
    wait_for(lambda: http(pa, "GET", "/readyz")[0] == 503 and http(pa, "GET", "/readyz")[0] == 503,
             timeout=10, what="not ready")
    check(pings(pa, sid) == [200] * 6, "calls fail while the transport is down")
    check(redis.cli("DEL", "mcpd:session:" + sid_hash(sid)) == "1")
    check(pings(pa, sid) == [404] * 6, "served from the cache while the transport was down")
    # A DELETE does not wait for the transport to come back.
    t0 = time.monotonic()
    st, _, _ = http(pa, "DELETE", "/mcp", None, {"Mcp-Session-Id": sid2})
    check(st == 200 and time.monotonic() - t0 < 2, (st, time.monotonic() - t0))
    check(pings(pa, sid2) == [404] * 6)
    nats.start()
    wait_for(lambda: all_ready(pa), timeout=15, what="ready again")

    def cached():
        sid = mcp_session(pa)
        pings(pa, sid)
        check(redis.cli("DEL", "mcpd:session:" + sid_hash(sid)) == "1")
        return pings(pa, sid, 2) == [200] * 2
    # Used again once the resubscription has had its moment.
    wait_for(cached, timeout=10, what="the cache used again")
    a.stop()


def test_configuration_errors(t):
    check_config_errors(t, [
        ("storage: { plugin: memory, cache: { entries: 0 } }\n", r"bad\.yaml:\d+:\d+: .*entries must be"),
        ("storage: { plugin: memory, cache: { ttl: forever } }\n", r"bad\.yaml:\d+:\d+: .*ttl"),
        ("storage: { plugin: memory, cache: { size: 5 } }\n", r"bad\.yaml:\d+:\d+: unknown key .*size.*storage\.cache"),
        ("storage: { plugin: memory, cache: 12 }\n", r"bad\.yaml:\d+:\d+: storage\.cache must be a mapping"),
    ])
    check_config_valid(t, "workers: 1\nstorage: { plugin: memory, cache: { entries: 10, ttl: 2s } }\n")
    check_config_valid(t, "workers: 1\nstorage: { plugin: memory, cache: true }\n")


def test_a_delete_is_404_everywhere_at_once_with_nats(t):
    """With the nats transport (messages reach a worker through libnats'
    threads), a session deleted on A is 404 on every worker of B at once,
    round after round: B's workers hold the record in their caches."""
    redis, nats = redis_server(t), nats_server(t)
    (a, pa), (b, pb) = start_instances(t, 2, lambda name: backends(t, redis, nats))
    for round in range(40):
        sid = mcp_session(pa)
        check(pings(pb, sid, 4) == [200] * 4)
        st, _, _ = http(pa, "DELETE", "/mcp", None, {"Mcp-Session-Id": sid})
        check(st == 200)
        got = pings(pb, sid, 4)
        check(got == [404] * 4, "round %d: a deleted session served from B's cache: %s" % (round, got))
    a.stop()
    b.stop()
