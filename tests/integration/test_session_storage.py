"""What a session leaves in storage: the index of sessions lives as long as
the record, and DELETE takes everything of the session with it. Checked
in the lmdb files themselves (storage_peek)."""

import json
import os
import socket
import time

from harness import MCP_HEADERS, check, free_port, http, mcp_session, rpc, sid_hash, sse_events, wait_for
from storage_peek import Peek

TOOLS = """
tools:
  - name: talk
    description: Sends a log line, then answers.
    shell: 'mcpd-tool log warning "careful"; echo done'
"""


def start(t, extra=""):
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\n%s%s" % (port, extra, TOOLS))
    d.start(wait_url_port=port)
    return d, port, os.path.join(t.dir, "state")


def test_session_index_renewed_with_the_record(t):
    peek = Peek(t.dir)
    d, port, state = start(t, "limits: { session_idle_timeout: 1s }\n")
    sid = mcp_session(port)
    check(sid_hash(sid) in peek(state, "members", "user:anonymous:sessions"))
    # Used for twice its idle timeout: the record is renewed, so must its
    # entry in the index be.
    until = time.monotonic() + 2.5
    i = 0
    while time.monotonic() < until:
        st, r, _ = rpc(port, sid, "ping", id=i)
        check(st == 200, "ping %d: %s %s" % (i, st, r))
        i += 1
        time.sleep(0.1)
    check(sid_hash(sid) in peek(state, "members", "user:anonymous:sessions"),
          "a live session dropped out of user:anonymous:sessions")
    # Left alone, record and index entry expire together.
    time.sleep(1.5)
    check(rpc(port, sid, "ping", id=99)[0] == 404)
    check(sid_hash(sid) not in peek(state, "members", "user:anonymous:sessions"))
    d.stop()


def test_delete_removes_the_event_log_and_gsent(t):
    peek = Peek(t.dir)
    d, port, state = start(t)
    sid = mcp_session(port)
    # Events of a POST stream, and one delivered on the GET stream.
    st, r, msgs = rpc(port, sid, "tools/call", {"name": "talk", "arguments": {}}, id=1)
    check(r["result"]["content"][0]["text"] == "done", r)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: "
              + sid.encode() + b"\r\n\r\n")
    data = s.recv(4096)
    st, r, _ = rpc(port, sid, "tools/call", {"name": "talk", "arguments": {}}, id=2,
                   headers={"Accept": "application/json"})
    while b"careful" not in data:
        c = s.recv(4096)
        check(c, "GET stream closed: %r" % data)
        data += c
    s.close()
    wait_for(lambda: peek(state, "get", "gsent:" + sid_hash(sid)) != ["(none)"], what="gsent to be stored")
    check(int(peek(state, "log", "events:" + sid_hash(sid))[0]) >= 3)
    st, _, _ = http(port, "DELETE", "/mcp", None, {"Mcp-Session-Id": sid})
    check(st == 200, st)
    check(peek(state, "get", "session:" + sid_hash(sid)) == ["(none)"])
    check(peek(state, "log", "events:" + sid_hash(sid)) == ["0"], "events:<id> outlived DELETE")
    check(peek(state, "get", "gsent:" + sid_hash(sid)) == ["(none)"], "gsent:<id> outlived DELETE")
    check(sid_hash(sid) not in peek(state, "members", "user:anonymous:sessions"))
    d.stop()


def test_long_principal_names_get_their_own_index(t):
    """A principal name too long for the index key is hashed: cut, two
    names with the same beginning shared one index (and past 511 bytes
    LMDB refused the key, leaving no index)."""
    import hashlib
    import subprocess
    from harness import MCPD
    peek = Peek(t.dir)
    keys = []
    users = ["u" * 600 + "-alice", "u" * 600 + "-bob", "carol"]
    with open(os.path.join(t.dir, "keys"), "w") as f:
        for u in users:
            p = subprocess.run([MCPD, "-k", u], capture_output=True, text=True, timeout=10)
            check(p.returncode == 0, p.stderr)
            f.write(p.stdout.strip() + "\n")
            keys.append(p.stderr.strip().splitlines()[-1])
    os.chmod(os.path.join(t.dir, "keys"), 0o600)
    d, port, state = start(t, "auth: { plugin: apikey, keys_file: keys }\n")
    sids = []
    for key in keys:
        body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                           "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                      "clientInfo": {"name": "t", "version": "1"}}})
        st, hdrs, data = http(port, "POST", "/mcp", body, dict(MCP_HEADERS, Authorization="Bearer " + key))
        check(st == 200, (st, data[:200]))
        sids.append(hdrs["mcp-session-id"])
    for u, sid in zip(users[:2], sids[:2]):
        ik = "user#%s:sessions" % hashlib.sha256(u.encode()).hexdigest()
        check(peek(state, "members", ik) == [sid_hash(sid)], (ik, peek(state, "members", ik)))
    check(peek(state, "members", "user:carol:sessions") == [sid_hash(sids[2])])
    d.stop()
