"""Signed transport messages (transport: { sign_key_file: ... }): mcpd
instances sharing a real Redis (and a real nats-server) sign what they
publish and drop what they receive unsigned, forged, replayed or out of
the time window. The attacker here writes straight into the backend: a
cancellation (control:<session>) that, if believed, kills a running
tool."""

import hashlib
import hmac
import json
import os
import re
import socket
import time

from harness import (sid_hash, TestFailure, alive, check, check_config_errors, free_port, http, key_file, mcp_session,
                     nats_server, redis_server, start_instances, wait_for)
from test_redis import (TOOLS, cancel_crosses, elicitation_crosses, list_changed_crosses, post_stream,
                        resume_crosses)


def sign_key(t, name, mode=0o600, data=None):
    path = os.path.join(t.dir, name)
    with open(path, "w") as f:
        f.write(data if data is not None else os.urandom(32).hex() + "\n")
    os.chmod(path, mode)
    return path


def derived(path):
    """The key mcpd derives from a key file, and its id (keyfile.c)."""
    secret = open(path, "rb").read().rstrip(b" \t\r\n")
    key = hashlib.sha256(b"mcpd transport signing\0" + secret).digest()
    return key, hashlib.sha256(b"mcpd key id\0" + key).digest()[:4].hex().encode()


def envelope(path, channel, body, ts=None, nonce=None):
    """A message signed as mcpd signs (sigmsg.c), with the key of path."""
    key, kid = derived(path)
    ts = str(int(time.time() * 1000) if ts is None else ts).encode()
    nonce = (nonce or os.urandom(16)).hex().encode()
    mac = hmac.new(key, b"mcpd-sig1\0" + kid + b"\0" + ts + b"\0" + nonce + b"\0" + channel + b"\0" + body,
                   hashlib.sha256).hexdigest().encode()
    return b"mcpd-sig1 " + kid + b" " + ts + b" " + nonce + b" " + mac + b"\n" + body


METRICS = {}     # an instance's main port -> its metrics port


def metrics(name):
    """A metrics listener of its own for instance name (its counters)."""
    METRICS[name] = free_port()
    return "metrics: { listen: 127.0.0.1:%d }\n" % METRICS[name]


def transport(t, redis, sign, accept=None, window=None, mode="pubsub"):
    extra = ", mode: %s" % mode
    if sign:
        extra += ", sign_key_file: %s" % sign
    if accept:
        extra += ", sign_key_file_accept: %s" % accept
    if window:
        extra += ", sign_window: %s" % window
    return ("storage: { plugin: redis, url: \"%s\" }\n"
            "transport: { plugin: redis, url: \"%s\"%s }\n"
            "request_state: { key_file: %s }\n" % (redis.url, redis.url, extra, key_file(t)))


def instances(t, n, conf, workers=2):
    """start_instances with a metrics listener each: [(daemon, port)],
    and METRICS[port] set."""
    out = start_instances(t, n, lambda name: metrics(name) + conf(name), workers)
    for i, (d, port) in enumerate(out):
        METRICS[port] = METRICS["ABCDEFGH"[i]]
    return out


class Resp:
    """A raw Redis connection subscribed to a pattern: the messages
    published on matching channels, as (channel, payload) bytes."""

    def __init__(self, port, pattern):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        p = pattern.encode()
        self.s.sendall(b"*2\r\n$10\r\nPSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(p), p))
        self.buf = b""
        self.item()     # the psubscribe confirmation

    def _line(self):
        while b"\r\n" not in self.buf:
            c = self.s.recv(65536)
            if not c:
                raise TestFailure("redis closed the subscription")
            self.buf += c
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def item(self):
        line = self._line()
        if line[:1] == b"*":
            return [self.item() for _ in range(int(line[1:]))]
        if line[:1] == b"$":
            n = int(line[1:])
            while len(self.buf) < n + 2:
                self.buf += self.s.recv(65536)
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v
        return line[1:]

    def message(self, timeout=10):
        self.s.settimeout(timeout)
        m = self.item()
        return m[2], m[3]

    def close(self):
        self.s.close()


def resp_cmd(port, *args):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    with s:
        s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
        return s.recv(4096)


def start_slow(t, port, sid, tag, id=7):
    """A tool call on port that runs until killed: (stream, pid)."""
    pidfile = os.path.join(t.dir, "slow-" + tag)
    s = post_stream(port, sid, {"jsonrpc": "2.0", "id": id, "method": "tools/call",
                                 "params": {"name": "slow", "arguments": {"pidfile": pidfile}}})
    wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), what="the tool to start")
    return s, int(open(pidfile).read())


def survives(pid, seconds=1.5):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        check(alive(pid), "the tool was cancelled by a message that should have been dropped")
        time.sleep(0.05)


def send_cancel(port, sid, request_id):
    """notifications/cancelled for request_id, posted to port."""
    st, _, _ = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": request_id}}),
                    {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                     "MCP-Protocol-Version": "2025-11-25", "Mcp-Session-Id": sid})
    check(st == 202, st)


def dropped(port):
    """mcpd_transport_dropped_total by reason, summed over the workers."""
    st, _, body = http(METRICS[port], "GET", "/metrics")
    check(st == 200, st)
    return {m.group(1): int(m.group(2)) for m in
            re.finditer(r'mcpd_transport_dropped_total\{reason="(\w+)"\} (\d+)', body.decode())}


def test_forged_and_replayed_messages_are_dropped(t):
    """A genuine cancellation is captured from Redis; republished as it
    was (a replay), stripped of its signature, signed with another key,
    altered, or dated outside the window, it cancels nothing, and each is
    counted and logged. The same cancellation signed with the right key
    and a fresh nonce does cancel: the drops are the signature's doing."""
    redis = redis_server(t)
    k = sign_key(t, "sign.key")
    other = sign_key(t, "other.key")
    (a, pa), (b, pb) = instances(t, 2, lambda name: transport(t, redis, k) + TOOLS % {"name": name})
    sid = mcp_session(pa)
    sub = Resp(redis.port, "*control:*")
    try:
        cancel_crosses(t, pa, pb, sid, "genuine", id=7)
        channel, genuine = sub.message()
    finally:
        sub.close()
    check(genuine.startswith(b"mcpd-sig1 "), "not signed: %r" % genuine[:200])
    body = genuine.split(b"\n", 1)[1]
    check(b"mcpd-sig1" not in body and channel.startswith(b"mcpd:"), (channel, genuine))
    mchan = channel[len(b"mcpd:"):]     # the channel as mcpd names it (key_prefix off)

    # B publishes a cancellation three times, the last after 1 s; and a
    # worker that subscribes to the channel later than 2 s after the
    # original refuses it too (the call may run on the other worker).
    time.sleep(2.5)
    s, pid = start_slow(t, pa, sid, "attacked", id=7)
    try:
        before = dropped(pa)
        now = int(time.time() * 1000)
        attacks = [
            ("replayed", genuine),
            ("unsigned", body),
            ("forged", envelope(other, mchan, body)),                         # another key
            ("forged", genuine[:-1] + (b"X" if genuine[-1:] != b"X" else b"Y")),  # altered body
            ("forged", envelope(k, mchan + b"x", body)),                     # signed for another channel
            ("stale", envelope(k, mchan, body, ts=now - 120000)),
            ("stale", envelope(k, mchan, body, ts=now + 120000)),
        ]
        for _, msg in attacks:
            check(resp_cmd(redis.port, b"PUBLISH", channel, msg).startswith(b":"), "PUBLISH")
        survives(pid)
        want = {}
        for why, _ in attacks:
            want[why] = want.get(why, 0) + 1
        wait_for(lambda: all(dropped(pa).get(w, 0) - before.get(w, 0) >= n for w, n in want.items()),
                 timeout=5, what="the drops counted: %s, before %s, want %s" % (dropped(pa), before, want))
        for why in ("unsigned", "forged", "replayed", "out-of-window"):
            check(re.search(r"transport: dropped an? %s.*message on channel \"%s\"" % (why, re.escape(mchan.decode())),
                            a.log()), "no log of the %s message:\n%s" % (why, a.log()[-2000:]))
        # The right key and a fresh nonce: believed.
        resp_cmd(redis.port, b"PUBLISH", channel, envelope(k, mchan, body))
        wait_for(lambda: not alive(pid), timeout=5, what="a correctly signed cancellation to work")
    finally:
        s.close()
    a.stop()
    b.stop()


def test_every_cross_instance_flow_works_signed(t):
    """With signing on, what crosses instances still does, in both redis
    modes: list_changed, cancellation, an elicitation answered on another
    instance, progress resumed on another instance; nothing dropped."""
    redis = redis_server(t)
    k = sign_key(t, "sign.key")
    for mode in ("pubsub", "streams"):
        (a, pa), (b, pb) = instances(t, 2, lambda name: transport(t, redis, k, mode=mode) + TOOLS % {"name": name})
        sid = mcp_session(pa, caps={"elicitation": {}})
        list_changed_crosses(pa, pb, sid)
        cancel_crosses(t, pa, pb, sid, mode)
        elicitation_crosses(pa, pb, sid)
        resume_crosses(pa, pb, sid)
        for p in (pa, pb):
            check(sum(dropped(p).values()) == 0, "dropped on %d: %s" % (p, dropped(p)))
        a.stop()
        b.stop()


def test_drop_logs_are_bounded(t):
    """A flood of unsigned messages is counted one by one but logged a
    few times only."""
    redis = redis_server(t)
    k = sign_key(t, "sign.key")
    (a, pa), = instances(t, 1, lambda name: transport(t, redis, k) + TOOLS % {"name": name}, workers=1)
    sid = mcp_session(pa)
    s, pid = start_slow(t, pa, sid, "flood", id=3)
    try:
        for i in range(300):
            resp_cmd(redis.port, b"PUBLISH", b"mcpd:control:" + sid_hash(sid).encode(), b'{"cancel":"3"}')
        wait_for(lambda: dropped(pa).get("unsigned", 0) >= 300, timeout=10, what="300 drops counted")
        survives(pid, 0.5)
    finally:
        s.close()
    n = len(re.findall(r"dropped an unsigned message", a.log()))
    check(1 <= n <= 3, "%d log lines for 300 drops" % n)
    a.stop()


def test_rotation_with_two_keys(t):
    """The middle of a rotation: A signs with the old key and accepts the
    new, B signs with the new and accepts the old; cancellations cross
    both ways. C, with a third key only, is not believed by A."""
    redis = redis_server(t)
    old, new, third = sign_key(t, "old.key"), sign_key(t, "new.key"), sign_key(t, "third.key")
    keys = {"A": (old, new), "B": (new, old), "C": (third, None)}
    (a, pa), (b, pb), (c, pc) = instances(
        t, 3, lambda name: transport(t, redis, *keys[name]) + TOOLS % {"name": name})
    sid = mcp_session(pa)
    cancel_crosses(t, pa, pb, sid, "a-to-b", id=1)
    cancel_crosses(t, pb, pa, sid, "b-to-a", id=2)
    s, pid = start_slow(t, pa, sid, "from-c", id=3)
    try:
        send_cancel(pc, sid, 3)
        survives(pid)
        wait_for(lambda: dropped(pa).get("forged", 0) >= 1, timeout=5, what="C's message counted as forged")
    finally:
        s.close()
    for d in (a, b, c):
        d.stop()


def test_keys_are_read_again_on_reload(t):
    """SIGHUP reads the key files again: A, reloaded with another key and
    no second one, drops what B (still on the first key) sends, and is
    believed again once reloaded with the first key accepted. A key file
    gone bad makes the reload fail and the workers keep their key."""
    import signal
    redis = redis_server(t)
    k1, k2 = sign_key(t, "k1.key"), sign_key(t, "k2.key")
    (a, pa), (b, pb) = instances(t, 2, lambda name: transport(t, redis, k1) + TOOLS % {"name": name})
    text = open(a.config_path).read()
    sid = mcp_session(pa)
    cancel_crosses(t, pb, pa, sid, "before", id=1)
    a.write_config(text.replace("sign_key_file: %s" % k1, "sign_key_file: %s" % k2))
    old = a.workers()
    a.signal(signal.SIGHUP)
    a.wait_log("reload complete")
    wait_for(lambda: not set(a.workers()) & set(old), what="A's old workers to go")
    s, pid = start_slow(t, pa, sid, "after", id=2)
    try:
        send_cancel(pb, sid, 2)
        survives(pid)
        check(dropped(pa).get("forged", 0) >= 1, dropped(pa))
    finally:
        s.close()
    # The rotation's middle step: k2 signs, k1 accepted.
    a.write_config(text.replace("sign_key_file: %s" % k1, "sign_key_file: %s, sign_key_file_accept: %s" % (k2, k1)))
    old = a.workers()
    a.signal(signal.SIGHUP)
    wait_for(lambda: a.log().count("reload complete") == 2, what="the second reload")
    wait_for(lambda: not set(a.workers()) & set(old), what="A's old workers to go")
    cancel_crosses(t, pa, pb, sid, "accepted", id=3)     # on A, sent by B with k1
    # A key file that went bad: the reload fails, the workers stay.
    os.chmod(k2, 0o644)
    workers = a.workers()
    a.signal(signal.SIGHUP)
    a.wait_log("reload failed")
    check("readable or writable by others" in a.log(), a.log()[-1500:])
    check(a.workers() == workers, "workers changed after a failed reload")
    a.stop()
    b.stop()


def test_unsigned_instances_still_work_and_are_not_believed(t):
    """Without sign_key_file nothing changes (an instance that does not
    sign is heard by one that does not check); one that checks drops
    what an unsigned instance sends."""
    redis = redis_server(t)
    k = sign_key(t, "sign.key")
    signs = {"A": k, "B": None, "C": None}
    (a, pa), (b, pb), (c, pc) = instances(
        t, 3, lambda name: transport(t, redis, signs[name]) + TOOLS % {"name": name})
    sid = mcp_session(pb)
    cancel_crosses(t, pb, pc, sid, "unsigned", id=1)
    s, pid = start_slow(t, pa, sid, "unsigned-to-signed", id=2)
    try:
        send_cancel(pb, sid, 2)
        survives(pid)
        check(dropped(pa).get("unsigned", 0) >= 1, dropped(pa))
    finally:
        s.close()
    for d in (a, b, c):
        d.stop()


def test_nats_forged_and_replayed(t):
    """The same through NATS: a genuine cancellation captured with a
    subscription to every subject and published again, and one unsigned,
    are dropped; one signed with the key is believed."""
    redis, nats = redis_server(t), nats_server(t)
    k = sign_key(t, "sign.key")
    conf = lambda name: ("storage: { plugin: redis, url: \"%s\" }\n"
                         "transport: { plugin: nats, url: \"%s\", sign_key_file: %s }\n"
                         "request_state: { key_file: %s }\n" % (redis.url, nats.url, k, key_file(t)) +
                         TOOLS % {"name": name})
    (a, pa), (b, pb) = instances(t, 2, conf)
    sid = mcp_session(pa)
    spy = socket.create_connection(("127.0.0.1", nats.port), timeout=10)
    f = spy.makefile("rb")
    check(f.readline().startswith(b"INFO "))
    spy.sendall(b'CONNECT {"verbose":false}\r\nSUB > 1\r\nPING\r\n')
    while f.readline().strip() != b"PONG":
        pass
    try:
        cancel_crosses(t, pa, pb, sid, "genuine", id=7)
        subject = genuine = None
        while genuine is None:
            line = f.readline()
            words = line.split()
            if words[:1] == [b"PING"]:
                spy.sendall(b"PONG\r\n")
            elif words[:1] == [b"MSG"]:
                data = f.read(int(words[-1]) + 2)[:-2]
                if data.startswith(b"mcpd-sig1 ") and b"control" in words[1]:
                    subject, genuine = words[1], data
    finally:
        spy.close()
    body = genuine.split(b"\n", 1)[1]
    mchan = b"control:" + sid_hash(sid).encode()

    def pub(msg):
        with socket.create_connection(("127.0.0.1", nats.port), timeout=5) as p:
            p.makefile("rb").readline()
            p.sendall(b'CONNECT {"verbose":false}\r\nPUB %s %d\r\n%s\r\nPING\r\n' % (subject, len(msg), msg))
            p.recv(100)

    # B publishes a cancellation three times, the last after 1 s; and a
    # worker that subscribes to the channel later than 2 s after the
    # original refuses it too (the call may run on the other worker).
    time.sleep(2.5)
    s, pid = start_slow(t, pa, sid, "attacked", id=7)
    try:
        pub(genuine)
        pub(body)
        survives(pid)
        wait_for(lambda: dropped(pa).get("replayed", 0) >= 1 and dropped(pa).get("unsigned", 0) >= 1,
                 timeout=5, what="the drops counted: %s" % dropped(pa))
        check(re.search(r"dropped a replayed message", a.log()) and re.search(r"dropped an unsigned", a.log()),
              a.log()[-2000:])
        pub(envelope(k, mchan, body))
        wait_for(lambda: not alive(pid), timeout=5, what="a correctly signed cancellation to work")
    finally:
        s.close()
    a.stop()
    b.stop()


def test_key_file_errors(t):
    """Key files are checked when the configuration is read (mcpd -t too):
    missing, too short, readable by others, the accepted key alone, the
    same key twice, a bad window."""
    good = sign_key(t, "good.key")
    short = sign_key(t, "short.key", data="0123456789abcdef\n")
    open_key = sign_key(t, "open.key", mode=0o644)
    check_config_errors(t, [
        ("transport: { plugin: local, sign_key_file: %s/none.key }\n" % t.dir,
         r"sign_key_file: .*none\.key: No such file"),
        ("transport: { plugin: local, sign_key_file: %s }\n" % short,
         r"sign_key_file: .*holds 16 bytes; a key needs at least 32"),
        ("transport: { plugin: local, sign_key_file: %s }\n" % open_key,
         r"sign_key_file: .*readable or writable by others \(mode 644\); chmod 600"),
        ("transport: { plugin: local, sign_key_file_accept: %s }\n" % good,
         r"sign_key_file_accept needs sign_key_file too"),
        ("transport: { plugin: local, sign_key_file: %s, sign_key_file_accept: %s }\n" % (good, good),
         r"sign_key_file_accept is the same key as sign_key_file"),
        ("transport: { plugin: local, sign_key_file: %s, sign_window: 1h1s }\n" % good,
         r"sign_window: \"1h1s\" is not a duration from 1s to 1h"),
        ("transport: { plugin: local, sign_window: 10s }\n", r"sign_window needs sign_key_file"),
        ("transport: { plugin: local, sign_key: %s }\n" % good, r"unknown key \"sign_key\""),
    ])
