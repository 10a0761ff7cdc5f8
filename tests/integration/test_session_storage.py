"""What a session leaves in storage: the index of sessions lives as long as
the record. Checked in the lmdb files themselves (storage_peek)."""

import os
import time

from harness import check, free_port, mcp_session, rpc
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
    check(sid in peek(state, "members", "user:anonymous:sessions"))
    # Used for twice its idle timeout: the record is renewed, so must its
    # entry in the index be.
    until = time.monotonic() + 2.5
    i = 0
    while time.monotonic() < until:
        st, r, _ = rpc(port, sid, "ping", id=i)
        check(st == 200, "ping %d: %s %s" % (i, st, r))
        i += 1
        time.sleep(0.1)
    check(sid in peek(state, "members", "user:anonymous:sessions"),
          "a live session dropped out of user:anonymous:sessions")
    # Left alone, record and index entry expire together.
    time.sleep(1.5)
    check(rpc(port, sid, "ping", id=99)[0] == 404)
    check(sid not in peek(state, "members", "user:anonymous:sessions"))
    d.stop()

