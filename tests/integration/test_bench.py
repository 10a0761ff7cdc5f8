"""make check runs the benchmark script for a second per scenario: it must
run without error and print its table. Nothing is asserted about speed."""

import os
import re
import subprocess

from harness import ROOT, Skip, check


def test_bench_script_runs(t):
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    p = subprocess.run(["bash", os.path.join(ROOT, "bench/run.sh"), "--quick"], capture_output=True,
                       text=True, timeout=600, env=env)
    check(p.returncode == 0, "bench/run.sh --quick failed:\n%s\n%s" % (p.stdout[-3000:], p.stderr[-3000:]))
    for row in ("nginx static reply", "mcpd tools/call, plugin tool, session",
                "mcpd tools/call, plugin tool, stateless", "SDK v1 tools/call, session",
                "SDK v1 tools/call, stateless", "SDK v2 tools/call, session",
                "SDK v2 tools/call, stateless (2026-07-28)", "FastMCP tools/call, session",
                "FastMCP tools/call, stateless", "mcpd / FastMCP  calls/s", "FastMCP  / mcpd RSS",
                "one-shot: python3 started for each call", "persistent: true, 1 process per worker",
                "command tool", "short-lived client", "lmdb bytes per session",
                "one instance, lmdb + local", "two instances, one Redis (pubsub)",
                "two instances, one Redis (streams)", "one instance, PostgreSQL + local", "two instances, NATS transport",
                "two instances, amqp transport on RabbitMQ",
                "mcpd, apikey", "mcpd, jwt (RS256",
                "mcpd, internal authorization server", "TypeScript SDK server, requireBearerAuth",
                "metrics on, scraped every second", "metrics off (enabled: false)", "on / off, medians: calls/s",
                "tracing on, every request (sample: 1)", "tracing on, sample: 0.1", "tracing off",
                "mcpd tools/call, plugin tool, session (2025-11-25)",
                "mcpd tools/call, plugin tool, stateless (2026-07-28)",
                "mcpd session: top 15 by inclusive instructions", "mcpd stateless: top 15 by self instructions"):
        check(row in p.stdout, "no %r row:\n%s" % (row, p.stdout))


def test_aws_bench_script_runs(t):
    """bench/aws.sh --quick on moto: it runs and prints its table (skipped
    without moto, which scripts/install-deps.sh test installs)."""
    from awspeer import have_moto
    if not have_moto():
        raise Skip("moto is not installed (scripts/install-deps.sh test installs it)")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    p = subprocess.run(["bash", os.path.join(ROOT, "bench/aws.sh"), "--quick"], capture_output=True,
                       text=True, timeout=600, env=env)
    check(p.returncode == 0, "bench/aws.sh --quick failed:\n%s\n%s" % (p.stdout[-3000:], p.stderr[-3000:]))
    for row in ("one instance, lmdb + local", "one instance, dynamodb (moto) + local",
                "two instances, dynamodb + sqs (moto)", "two instances, Redis (pubsub)"):
        check(row in p.stdout, "no %r row:\n%s" % (row, p.stdout))


def test_azure_bench_script_runs(t):
    """bench/azure.sh --quick: one table with both halves, tools/call on
    cosmos (@vercel/cosmosdb-server) beside lmdb and message latency
    across instances through amqp (RabbitMQ) beside redis, and their
    ratios (skipped without the emulator or RabbitMQ, which
    scripts/install-deps.sh test installs)."""
    from cosmospeer import have_emulator
    if not have_emulator():
        raise Skip("@vercel/cosmosdb-server is not installed (scripts/install-deps.sh test runs npm ci in tests/node)")
    if not os.access("/usr/lib/rabbitmq/bin/rabbitmq-server", os.X_OK):
        raise Skip("rabbitmq-server is not installed (scripts/install-deps.sh test)")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "AZURE_PARTS")}
    p = subprocess.run(["bash", os.path.join(ROOT, "bench/azure.sh"), "--quick"], capture_output=True,
                       text=True, timeout=600, env=env)
    check(p.returncode == 0, "bench/azure.sh --quick failed:\n%s\n%s" % (p.stdout[-3000:], p.stderr[-3000:]))
    lines = p.stdout.splitlines()
    heads = [i for i, x in enumerate(lines) if x.startswith("set-up ")]
    check(len(heads) == 1, "not one table:\n%s" % p.stdout)
    table = []
    for x in lines[heads[0] + 1:]:
        if not x.strip():
            break
        table.append(x)
    rows = ("one instance, lmdb + local", "one instance, cosmos (emulator) + local",
            "two instances, Redis pub/sub transport", "two instances, amqp transport on RabbitMQ")
    check([r for r in rows if any(x.startswith(r) for x in table)] == list(rows) and len(table) == 4,
          "the table's rows:\n%s" % p.stdout)
    for x in table:
        check(re.match(r".{48} +[1-9][0-9]* ", x), "a row without a rate: %r" % x)
    for note in ("cosmos / lmdb: 0.", "amqp (RabbitMQ) / redis: calls/s "):
        check(note in p.stdout, "no %r:\n%s" % (note, p.stdout))


def test_gcp_bench_script_runs(t):
    """bench/gcp.sh --quick on Google's emulators: it runs and prints its
    table (skipped without the emulators or java)."""
    from gcppeer import have_emulators
    if not have_emulators():
        raise Skip("the Google Cloud emulators or java are not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    p = subprocess.run(["bash", os.path.join(ROOT, "bench/gcp.sh"), "--quick"], capture_output=True,
                       text=True, timeout=600, env=env)
    check(p.returncode == 0, "bench/gcp.sh --quick failed:\n%s\n%s" % (p.stdout[-3000:], p.stderr[-3000:]))
    for row in ("one instance, lmdb + local", "one instance, firestore (emulator) + local",
                "two instances, firestore + pubsub (emulators)", "two instances, Redis (pubsub)"):
        check(row in p.stdout, "no %r row:\n%s" % (row, p.stdout))


def test_lambda_bench_script_runs(t):
    """bench/lambda.sh --quick: cold starts and warm calls of mcpd --lambda
    (memory, dynamodb on moto) beside the SDK's Node.js handler, through
    the tests' Runtime API; it runs and prints its table."""
    from awspeer import have_moto
    from harness import node_peers_ready
    if not have_moto() or not node_peers_ready():
        raise Skip("moto or tests/node/node_modules missing (scripts/install-deps.sh test installs them)")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    p = subprocess.run(["bash", os.path.join(ROOT, "bench/lambda.sh"), "--quick"], capture_output=True,
                       text=True, timeout=600, env=env)
    check(p.returncode == 0, "bench/lambda.sh --quick failed:\n%s\n%s" % (p.stdout[-3000:], p.stderr[-3000:]))
    for row in ("mcpd --lambda, memory", "mcpd --lambda, dynamodb (moto)", "TypeScript SDK, Node.js handler",
                "cold start: mcpd"):
        check(row in p.stdout, "no %r row:\n%s" % (row, p.stdout))


def test_cache_bench_script_runs(t):
    """bench/cache.sh --quick: the storage cache off and on, Redis and
    PostgreSQL behind the delaying proxy, beside lmdb; it runs and prints
    its table."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    p = subprocess.run(["bash", os.path.join(ROOT, "bench/cache.sh"), "--quick"], capture_output=True,
                       text=True, timeout=600, env=env)
    check(p.returncode == 0, "bench/cache.sh --quick failed:\n%s\n%s" % (p.stdout[-3000:], p.stderr[-3000:]))
    for row in ("one instance, lmdb + local", "one instance, Redis at 5 ms, cache off",
                "one instance, Redis at 5 ms, cache on", "one instance, PostgreSQL at 5 ms, cache on",
                "two instances, Redis at 5 ms, cache on", "cache on / off calls/s at 5 ms"):
        check(row in p.stdout, "no %r row:\n%s" % (row, p.stdout))
    # The emulators' rows, or why they did not run.
    for store in ("DynamoDB", "Cosmos DB"):
        check(re.search(r"^one instance, %s at 5 ms, cache on +\d+ |^%s: not run" % (store, store), p.stdout, re.M),
              "no %s row:\n%s" % (store, p.stdout))


def test_transport_bench_script_runs(t):
    """bench/transport.sh --quick: large answers across two instances on
    redis and nats, transport.compress_over off and on (and sqs on moto,
    pubsub on the emulator, where installed); it runs and prints its
    table, and compression lowers the bytes the broker received."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    p = subprocess.run(["bash", os.path.join(ROOT, "bench/transport.sh"), "--quick"], capture_output=True,
                       text=True, timeout=600, env=env)
    check(p.returncode == 0, "bench/transport.sh --quick failed:\n%s\n%s" % (p.stdout[-3000:], p.stderr[-3000:]))
    for t_ in ("redis", "nats"):
        got = {}
        for c in ("off", "1KiB"):
            m = re.search(r"^%s, compress_over %s +(\d+) .* (\d+) per crossing$" % (t_, c), p.stdout, re.M)
            check(m and int(m.group(1)) > 0, "no %s/%s row:\n%s" % (t_, c, p.stdout))
            got[c] = int(m.group(2))
        check(got["1KiB"] < got["off"] // 2, "%s: bytes per crossing %s" % (t_, got))
    # The HTTP brokers' rows, where their emulators are installed.
    import importlib.util
    import shutil
    from gcppeer import pubsub_jar
    for name, have in (("sqs (moto)", importlib.util.find_spec("moto") is not None),
                       ("pubsub (emulator)", pubsub_jar() is not None and shutil.which("java") is not None)):
        m = re.search(r"^%s, compress_over off +(\d+) " % re.escape(name), p.stdout, re.M)
        check(not have or (m and int(m.group(1)) > 0), "no %s row:\n%s" % (name, p.stdout))
