"""make check runs the benchmark script for a second per scenario: it must
run without error and print its table. Nothing is asserted about speed."""

import os
import subprocess

from harness import ROOT, check


def test_bench_script_runs(t):
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    p = subprocess.run(["bash", os.path.join(ROOT, "bench/run.sh"), "--quick"], capture_output=True,
                       text=True, timeout=600, env=env)
    check(p.returncode == 0, "bench/run.sh --quick failed:\n%s\n%s" % (p.stdout[-3000:], p.stderr[-3000:]))
    for row in ("nginx static reply", "mcpd tools/call, plugin tool", "SDK server tools/call",
                "command tool", "short-lived client", "lmdb bytes per session",
                "one instance, lmdb + local", "two instances, one Redis (pubsub)",
                "two instances, one Redis (streams)", "one instance, PostgreSQL + local", "two instances, NATS transport",
                "two instances, amqp transport on RabbitMQ",
                "mcpd, apikey", "mcpd, jwt (RS256",
                "mcpd, internal authorization server", "TypeScript SDK server, requireBearerAuth"):
        check(row in p.stdout, "no %r row:\n%s" % (row, p.stdout))
