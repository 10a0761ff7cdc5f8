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
    # Three backends (memory, lmdb, postgres), seven checks each.
    check(p.returncode == 0 and m and int(m.group(1)) == 21, out[-3000:])
    tables = pg.sql("SELECT tablename FROM pg_tables WHERE tablename LIKE 't%\\_kv'")
    check(tables, "the suite made no tables")
