"""Chaos, bounded: clients holding 2025 sessions call tools on two
instances without pause while workers are SIGKILLed, SIGHUP reloads run
one after another, and Redis, PostgreSQL and NATS are each stopped and
started again. Each fault has a window, from the moment it is made to
the moment every worker of every instance is ready again (and a second
for the requests then in flight); between faults the load runs clean.
The test asserts that no session is lost, that no master died, and that
every failed request overlapped a fault's window, that a reload fails
no request and a killed worker only those it held; it prints the counts
(requests, failures, sessions lost) for the report."""

import json
import os
import random
import signal
import threading
import time

from harness import (all_ready, check, key_file, mcp_session, nats_server, postgres_server, redis_server, rpc,
                     start_instances, wait_for)

TOOLS = """
tools:
  - name: where
    description: The instance that runs the tool.
    shell: 'echo %(name)s'
"""
CLIENTS = 4
GRACE = 1.0         # a request in flight when the window closed


class Clients:
    """CLIENTS threads, each with its session (made on one instance),
    calling "where" on each instance in turn: every request's start, end
    and outcome."""

    def __init__(self, ports):
        self.ports = ports
        self.sids = [mcp_session(ports[i % len(ports)]) for i in range(CLIENTS)]
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.records = []           # (start, end, ok, what)
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(CLIENTS)]
        for th in self.threads:
            th.start()

    def run(self, k):
        sid, i = self.sids[k], 0
        while not self.done.is_set():
            i += 1
            port = self.ports[(i + k) % len(self.ports)]
            start = time.monotonic()
            try:
                st, r, _ = rpc(port, sid, "tools/call", {"name": "where", "arguments": {}}, id=i, timeout=10)
                ok = st == 200 and r and "result" in r and not r["result"].get("isError")
                what = "%s %s" % (st, json.dumps(r)[:200])
            except OSError as e:
                ok, what = False, "%s: %s" % (type(e).__name__, e)
            with self.lock:
                self.records.append((start, time.monotonic(), ok, what))
            if not ok:
                time.sleep(0.02)        # an outage answers at once: no busy loop

    def count(self):
        with self.lock:
            return len(self.records), sum(1 for r in self.records if not r[2])

    def more(self, n):
        have = self.count()[0]
        wait_for(lambda: self.count()[0] >= have + n, timeout=20, what="%d more requests" % n)

    def stop(self):
        self.done.set()
        for th in self.threads:
            th.join(30)


class Chaos:
    def __init__(self, daemons):
        self.daemons = daemons              # [(daemon, port)]
        self.ports = [p for _, p in daemons]
        self.windows = []                   # (name, start, end)
        self.clients = Clients(self.ports)
        self.clients.more(20)

    def recovered(self):
        for d, port in self.daemons:
            check(d.proc.poll() is None, "the master of %s died:\n%s" % (d.config_path, d.log()[-3000:]))
            wait_for(lambda: all_ready(port, times=6), timeout=30, what="instance on %d ready again" % port)

    def fault(self, name, make, unmake=None, down=0.0):
        start = time.monotonic()
        make()
        if down:
            time.sleep(down)
        if unmake:
            unmake()
        self.recovered()
        self.windows.append((name, start, time.monotonic() + GRACE))
        # Clean load between faults: these requests must all pass.
        time.sleep(GRACE)
        self.clients.more(10)

    def kill_workers(self, times):
        for i in range(times):
            d, _ = self.daemons[i % len(self.daemons)]
            before = d.workers()
            victim = random.choice(before)

            def kill():
                os.kill(victim, signal.SIGKILL)
                wait_for(lambda: victim not in d.workers() and len(d.workers()) == len(before),
                         timeout=20, what="worker %d replaced" % victim)
            self.fault("SIGKILL worker %d" % victim, kill)

    def reloads(self, times):
        for i in range(times):
            d, _ = self.daemons[i % len(self.daemons)]
            n = d.log().count("reload complete")

            def hup():
                d.signal(signal.SIGHUP)
                d.wait_log("reload complete", timeout=20, count=n + 1)
            self.fault("SIGHUP %s" % os.path.basename(d.config_path), hup)

    def outage(self, name, server, down=1.5):
        self.fault("%s stopped and started" % name, server.stop, server.start, down)

    def finish(self, label):
        self.clients.stop()
        records = self.clients.records
        failures = [r for r in records if not r[2]]
        outside = [r for r in failures
                   if not any(r[0] <= end and r[1] >= start for _, start, end in self.windows)]
        lost = []
        for sid in self.clients.sids:
            for port in self.ports:
                st, _, _ = rpc(port, sid, "ping", id=99)
                if st != 200:
                    lost.append((sid[:8], port, st))
        by_fault, sample = {}, {}
        for name, start, end in self.windows:
            key = name.split(" ")[0]
            during = [r for r in failures if r[0] <= end and r[1] >= start]
            by_fault[key] = by_fault.get(key, 0) + len(during)
            if during:
                sample.setdefault(key, during[0][3])
        print("chaos %s: %d requests, %d failures (%s), %d faults, %d sessions lost"
              % (label, len(records), len(failures), ", ".join("%s: %d" % kv for kv in sorted(by_fault.items())),
                 len(self.windows), len({x[0] for x in lost})))
        for key, what in sorted(sample.items()):
            print("  a failure during %s: %s" % (key, what))
        check(not lost, "sessions lost: %s" % lost)
        # A reload drops nothing; a killed worker loses the requests it
        # held, and only those: a new worker takes connections once its
        # storage is connected (never a 503 from one that is not yet).
        for name, start, end in self.windows:
            during = [r for r in failures if r[0] <= end and r[1] >= start]
            if name.startswith("SIGHUP"):
                check(not during, "failures during %s: %s" % (name, during[:5]))
            if name.startswith("SIGKILL"):
                check(all(not r[3][:1].isdigit() for r in during), "failures during %s: %s" % (name, during[:5]))
        check(not outside, "failures outside every fault's window: %s" % outside[:5])
        for d, _ in self.daemons:
            check(d.proc.poll() is None, "a master died")
        check(len(records) - len(failures) > 100, "too few requests succeeded: %d" % len(records))


def test_chaos_workers_reloads_and_redis(t):
    redis = redis_server(t)
    conf = ("storage: { plugin: redis, url: \"%s\" }\ntransport: { plugin: redis, url: \"%s\" }\n"
            "request_state: { key_file: %s }\n" % (redis.url, redis.url, key_file(t)))
    daemons = start_instances(t, 2, lambda name: conf + TOOLS % {"name": name}, workers=2)
    c = Chaos(daemons)
    c.kill_workers(4)
    c.reloads(4)
    c.outage("redis", redis)
    c.finish("workers+reloads+redis")
    for d, _ in daemons:
        d.stop()


def test_chaos_postgres_and_nats(t):
    pg = postgres_server(t)
    nats = nats_server(t)
    conf = ("storage: { plugin: postgres, url: \"%s\" }\ntransport: { plugin: nats, url: \"%s\" }\n"
            "request_state: { key_file: %s }\n" % (pg.url, nats.url, key_file(t)))
    daemons = start_instances(t, 2, lambda name: conf + TOOLS % {"name": name}, workers=2)
    c = Chaos(daemons)
    c.outage("postgres", pg)
    c.outage("nats", nats)
    c.kill_workers(2)
    c.reloads(2)
    c.finish("postgres+nats+workers+reloads")
    for d, _ in daemons:
        d.stop()
