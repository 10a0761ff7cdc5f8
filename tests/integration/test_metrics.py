"""Metrics: the figures of the whole daemon, whichever worker answers the
scrape (workers: 2, a new connection per request so that the kernel
spreads them), exact after known calls, kept across a worker's death and
a reload; promtool checks the exposition and the alert rules, and a real
Prometheus scrapes mcpd and answers a PromQL query with the counts."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

from harness import (MCP_HEADERS, MCPD, Skip, TestFailure, check, free_port, http, mcp_session, rpc,
                     wait_for)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TOOLS = """
tools:
  - name: ok
    description: Succeeds.
    shell: 'echo fine'
  - name: fails
    description: Exits 3.
    shell: 'echo no; exit 3'
  - name: slow
    description: Outlives its timeout.
    shell: 'sleep 5'
    timeout: 200ms
"""


def start(t, workers=2, extra=""):
    port, mport = free_port(), free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: %d\n"
               "metrics: { listen: 127.0.0.1:%d }\n%s%s" % (port, workers, mport, extra, TOOLS))
    d.start(wait_url_port=port)
    wait_for(lambda: len(d.workers()) == workers, what="%d workers" % workers)
    return d, port, mport


def scrape(mport, accept=None):
    st, hdrs, body = http(mport, "GET", "/metrics", headers={"Accept": accept} if accept else {})
    check(st == 200, (st, body[:300]))
    return hdrs, body.decode()


def parse(text):
    """{(name, frozenset(labels)): value} from the text format."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        check(m, "bad sample line %r" % line)
        labels = frozenset(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), None)


def call(port, sid, name, id):
    st, msg, _ = rpc(port, sid, "tools/call", {"name": name, "arguments": {}}, id=id)
    check(st == 200 and msg is not None, (st, msg))
    return msg


def tool_call_workers(d):
    return set(re.findall(r"worker \d+\[(\d+)\]: .*tools/call", d.log()))


def workers_answering(d, path):
    return set(re.findall(r"worker \d+\[(\d+)\]: [^\"]*\"GET %s " % re.escape(path), d.log()))


def test_metrics_sum_every_worker_exactly(t):
    d, port, mport = start(t)
    base = parse(scrape(mport)[1])
    check(val(base, "mcpd_workers") == 2, base.get(("mcpd_workers", frozenset())))
    check(val(base, "mcpd_tool_calls_total", tool="ok", outcome="ok") == 0)
    sid = mcp_session(port)
    n_ok, n_fail = 0, 3
    # A free worker takes the next connection: on a busy machine one may
    # take them all for a while. Calls go on until both have served some.
    while n_ok < 7 or (len(tool_call_workers(d)) < 2 and n_ok < 400):
        msg = call(port, sid, "ok", 1000 + n_ok)
        check(msg["result"].get("isError") is not True, msg)
        n_ok += 1
    for i in range(n_fail):
        msg = call(port, sid, "fails", 30 + i)
        check(msg["result"].get("isError") is True, msg)
    msg = call(port, sid, "slow", 40)
    check(msg["result"].get("isError") is True, msg)
    st, msg, _ = rpc(port, sid, "no/such", {}, id=50)
    check(msg["error"]["code"] == -32601, msg)
    st, msg, _ = rpc(port, sid, "tools/list", {}, id=51)
    check("result" in msg, msg)
    # The tool calls were spread over both workers.
    served = tool_call_workers(d)
    check(len(served) == 2, "every call went to one worker; the test proves nothing: %s" % served)
    st, _, _ = http(port, "DELETE", "/mcp", None, dict(MCP_HEADERS, **{"Mcp-Session-Id": sid}))
    check(st in (200, 204), st)

    # Every scrape, on whichever worker, shows the same whole-daemon counts.
    for attempt in range(40):
        s = parse(scrape(mport)[1])
        check(val(s, "mcpd_tool_calls_total", tool="ok", outcome="ok") == n_ok, s)
        check(val(s, "mcpd_tool_calls_total", tool="fails", outcome="is_error") == n_fail)
        check(val(s, "mcpd_tool_calls_total", tool="slow", outcome="timeout") == 1)
        check(val(s, "mcpd_tool_calls_total", tool="ok", outcome="is_error") == 0)
        check(val(s, "mcpd_tool_call_duration_seconds_count", tool="ok") == n_ok)
        check(val(s, "mcpd_tool_call_duration_seconds_bucket", tool="slow", le="0.1") == 0)
        check(val(s, "mcpd_tool_call_duration_seconds_bucket", tool="slow", le="+Inf") == 1)
        check(0.2 <= val(s, "mcpd_tool_call_duration_seconds_sum", tool="slow") < 5)
        check(val(s, "mcpd_mcp_requests_total", method="tools/call", outcome="result") == n_ok + n_fail + 1)
        check(val(s, "mcpd_mcp_requests_total", method="initialize", outcome="result") == 1)
        check(val(s, "mcpd_mcp_requests_total", method="notifications/initialized", outcome="no_response") == 1)
        check(val(s, "mcpd_mcp_requests_total", method="other", outcome="method_not_found") == 1, s)
        check(val(s, "mcpd_mcp_requests_total", method="tools/list", outcome="result") == 1)
        check(val(s, "mcpd_processes_spawned_total") == n_ok + n_fail + 1)
        check(val(s, "mcpd_processes_running") == 0)
        check(val(s, "mcpd_sessions_total", event="created") == 1)
        check(val(s, "mcpd_sessions_total", event="deleted") == 1)
        check(val(s, "mcpd_sessions_active") == 0)
        # initialize, initialized, the calls, no/such, tools/list, DELETE
        check(val(s, "mcpd_http_requests_total", route="mcp", code="2xx") == n_ok + n_fail + 6,
              val(s, "mcpd_http_requests_total", route="mcp", code="2xx"))
        check(val(s, "mcpd_storage_operations_total", plugin="lmdb", operation="set", outcome="ok") >= 1)
        check(val(s, "mcpd_auth_results_total", plugin="none", result="ok") == 0)
        if len(workers_answering(d, "/metrics")) == 2:
            break
    else:
        raise TestFailure("every scrape went to one worker in 40 tries")
    d.stop()


def test_promtool_checks_the_exposition_and_openmetrics(t):
    if shutil.which("promtool") is None:
        raise Skip("promtool is not installed (Debian package prometheus; scripts/install-deps.sh test)")
    d, port, mport = start(t)
    sid = mcp_session(port)
    call(port, sid, "ok", 1)
    hdrs, text = scrape(mport)
    check(hdrs["content-type"].startswith("text/plain; version=0.0.4"), hdrs)
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    check(p.returncode == 0, p.stdout + p.stderr)
    hdrs, om = scrape(mport, "application/openmetrics-text; version=1.0.0")
    check(hdrs["content-type"].startswith("application/openmetrics-text; version=1.0.0"), hdrs)
    check(om.endswith("# EOF\n"), om[-200:])
    check("# TYPE mcpd_tool_calls counter" in om and "# TYPE mcpd_build info" in om)
    check("# TYPE mcpd_tool_calls_total counter" in text)
    # Not asked for by name: the text format.
    hdrs, _ = scrape(mport, "*/*")
    check(hdrs["content-type"].startswith("text/plain"), hdrs)
    # The metrics listener serves /metrics alone.
    st, _, _ = http(mport, "POST", "/mcp", "{}", MCP_HEADERS)
    check(st == 404, st)
    st, _, _ = http(mport, "POST", "/metrics", "")
    check(st == 405, st)
    d.stop()


def test_counts_survive_a_worker_death_and_a_reload(t):
    d, port, mport = start(t)
    sid = mcp_session(port)
    for i in range(6):
        call(port, sid, "ok", 100 + i)
    victim = d.workers()[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(d.workers()) == 2 and victim not in d.workers(), what="the respawn")
    # The new worker shows in /proc as soon as it is forked, a moment
    # before the master counts it.
    wait_for(lambda: val(parse(scrape(mport)[1]), "mcpd_worker_starts_total") == 3, what="the start counted")
    s = parse(scrape(mport)[1])
    check(val(s, "mcpd_tool_calls_total", tool="ok", outcome="ok") == 6, s)
    check(val(s, "mcpd_worker_deaths_total", cause="signal") == 1)
    check(val(s, "mcpd_worker_starts_total") == 3)
    check(val(s, "mcpd_workers") == 2)
    before = val(s, "mcpd_last_reload_success_time_seconds")
    time.sleep(1.1)
    d.signal(signal.SIGHUP)
    d.wait_log("reload complete")
    wait_for(lambda: len(d.workers()) == 2, what="the old workers to go")
    wait_for(lambda: val(parse(scrape(mport)[1]), "mcpd_workers") == 2, what="the old workers' slots folded")
    call(port, sid, "ok", 200)
    s = parse(scrape(mport)[1])
    check(val(s, "mcpd_tool_calls_total", tool="ok", outcome="ok") == 7, s)
    check(val(s, "mcpd_reloads_total", result="ok") == 1)
    check(val(s, "mcpd_reloads_total", result="failed") == 0)
    check(val(s, "mcpd_last_reload_success_time_seconds") > before)
    check(val(s, "mcpd_worker_starts_total") == 5)
    # A reload that fails is counted and changes nothing else.
    with open(d.config_path, "a") as f:
        f.write("bogus_key: 1\n")
    d.signal(signal.SIGHUP)
    d.wait_log("reload failed")
    s = parse(scrape(mport)[1])
    check(val(s, "mcpd_reloads_total", result="failed") == 1, s)
    check(val(s, "mcpd_tool_calls_total", tool="ok", outcome="ok") == 7)
    d.stop()


def test_metrics_on_the_main_listener_need_the_admin_scope(t):
    def key(user, *scopes):
        p = subprocess.run([MCPD, "-k", user, *scopes], capture_output=True, text=True, timeout=10)
        check(p.returncode == 0, p.stderr)
        with open(os.path.join(t.dir, "keys"), "a") as f:
            f.write(p.stdout.strip() + "\n")
        os.chmod(os.path.join(t.dir, "keys"), 0o600)
        return p.stderr.strip().splitlines()[-1]
    alice = key("alice")
    ops = key("ops", "mcpd:admin")
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\nauth: { plugin: apikey, keys_file: keys }\n%s"
               % (port, TOOLS))
    d.start(wait_url_port=port)
    st, _, _ = http(port, "GET", "/metrics")
    check(st == 401, st)
    st, _, _ = http(port, "GET", "/metrics", None, {"Authorization": "Bearer " + alice})
    check(st == 403, st)
    st, hdrs, body = http(port, "GET", "/metrics", None, {"Authorization": "Bearer " + ops})
    check(st == 200 and hdrs["content-type"].startswith("text/plain"), (st, hdrs))
    s = parse(body.decode())
    check(val(s, "mcpd_auth_results_total", plugin="apikey", result="missing") == 1, s)
    check(val(s, "mcpd_auth_results_total", plugin="apikey", result="insufficient_scope") == 1, s)
    check(val(s, "mcpd_auth_results_total", plugin="apikey", result="ok") == 2, s)
    check(val(s, "mcpd_build_info", version=val_version(), storage="lmdb", transport="local",
              auth="apikey", protocols="2025-03-26,2025-06-18,2025-11-25,2026-07-28") == 1, s)
    d.stop()


def val_version():
    p = subprocess.run([MCPD, "-V"], capture_output=True, text=True, timeout=10)
    m = re.search(r"(\d+\.\d+[^\s]*)", p.stdout + p.stderr)
    check(m, p.stdout + p.stderr)
    return m.group(1)


def test_metrics_config_errors_and_off(t):
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nmetrics: { listen: 127.0.0.1:%d }\n" % (port, port))
    p = subprocess.run([MCPD, "-t", "-c", d.config_path], capture_output=True, text=True, timeout=10)
    check(p.returncode != 0 and "is also a listen address" in p.stderr, p.stderr)
    d.write_config("listen: [127.0.0.1:%d]\nmetrics: { enabled: false, listen: 127.0.0.1:%d }\n"
                   % (port, free_port()))
    p = subprocess.run([MCPD, "-t", "-c", d.config_path], capture_output=True, text=True, timeout=10)
    check(p.returncode != 0 and "metrics.listen needs metrics.enabled: true" in p.stderr, p.stderr)
    d.write_config("listen: [127.0.0.1:%d]\nmetrics: { listen: nowhere }\n" % port)
    p = subprocess.run([MCPD, "-t", "-c", d.config_path], capture_output=True, text=True, timeout=10)
    check(p.returncode != 0 and "metrics.listen \"nowhere\"" in p.stderr, p.stderr)


def test_promtool_checks_the_alert_rules_and_the_dashboard_names_real_metrics(t):
    if shutil.which("promtool") is None:
        raise Skip("promtool is not installed (Debian package prometheus; scripts/install-deps.sh test)")
    rules = os.path.join(ROOT, "conf", "prometheus", "mcpd-alerts.yml")
    p = subprocess.run(["promtool", "check", "rules", rules], capture_output=True, text=True, timeout=30)
    check(p.returncode == 0, p.stdout + p.stderr)
    for alert in ("McpdHighErrorRate", "McpdToolTimeouts", "McpdStorageDown", "McpdWorkersDying"):
        check(alert in open(rules).read(), alert)
    d, port, mport = start(t)
    names = set(n for (n, _) in parse(scrape(mport)[1]))
    dash = json.load(open(os.path.join(ROOT, "conf", "grafana", "mcpd-dashboard.json")))
    exprs = [tg["expr"] for panel in dash["panels"] for tg in panel.get("targets", [])]
    check(len(exprs) >= 8, exprs)
    used = set(re.findall(r"\b(mcpd_[a-z_]+)", " ".join(exprs) + open(rules).read()))
    missing = used - names
    check(not missing, "the dashboard or rules name metrics mcpd does not have: %s" % missing)
    d.stop()


def rules_loaded(pport):
    with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/rules" % pport, timeout=5) as r:
        groups = json.load(r)["data"]["groups"]
    names = [rule["name"] for g in groups for rule in g["rules"]]
    return "McpdWorkersDying" in names and all(
        rule.get("health") == "ok" for g in groups for rule in g["rules"] if "lastEvaluation" in rule
        and not rule["lastEvaluation"].startswith("0001"))


def test_prometheus_scrapes_mcpd_and_promql_counts(t):
    prom = shutil.which("prometheus")
    if prom is None:
        raise Skip("prometheus is not installed (Debian package prometheus; scripts/install-deps.sh test)")
    d, port, mport = start(t)
    sid = mcp_session(port)
    # Prometheus keeps its connection, so one worker answers it: the
    # calls must have been served by both for its figure to prove the sum.
    n_ok = 0
    while n_ok < 5 or (len(tool_call_workers(d)) < 2 and n_ok < 400):
        call(port, sid, "ok", 1000 + n_ok)
        n_ok += 1
    for i in range(2):
        call(port, sid, "fails", 400 + i)
    served = tool_call_workers(d)
    check(len(served) == 2, "every call went to one worker; the test proves nothing: %s" % served)
    pport = free_port()
    pdir = os.path.join(t.dir, "prometheus")
    os.makedirs(pdir)
    with open(os.path.join(pdir, "prometheus.yml"), "w") as f:
        f.write("global: { scrape_interval: 1s, evaluation_interval: 1s }\n"
                "rule_files: [%s]\n"
                "scrape_configs:\n  - job_name: mcpd\n    static_configs: [{ targets: ['127.0.0.1:%d'] }]\n"
                % (os.path.join(ROOT, "conf", "prometheus", "mcpd-alerts.yml"), mport))
    log = open(os.path.join(pdir, "log"), "w")
    pp = subprocess.Popen([prom, "--config.file=" + os.path.join(pdir, "prometheus.yml"),
                           "--storage.tsdb.path=" + os.path.join(pdir, "data"),
                           "--web.listen-address=127.0.0.1:%d" % pport], stdout=log, stderr=log)
    try:
        def query(q):
            url = "http://127.0.0.1:%d/api/v1/query?%s" % (pport, urllib.parse.urlencode({"query": q}))
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    res = json.load(r)
            except OSError:
                return None
            check(res["status"] == "success", res)
            return res["data"]["result"]

        def value(q):
            r = query(q)
            return float(r[0]["value"][1]) if r else None

        wait_for(lambda: value('sum(mcpd_tool_calls_total{tool="ok",outcome="ok"})') == n_ok,
                 timeout=60, what="Prometheus to scrape %d ok calls" % n_ok)
        check(value('sum(mcpd_tool_calls_total{tool="fails",outcome="is_error"})') == 2)
        check(value('up{job="mcpd"}') == 1)
        check(value('mcpd_workers') == 2)
        # A later call shows up in the next scrapes.
        call(port, sid, "ok", 500)
        wait_for(lambda: value('sum(mcpd_tool_calls_total{tool="ok",outcome="ok"})') == n_ok + 1,
                 timeout=30, what="Prometheus to see the call after")
        check(value('changes(mcpd_tool_calls_total{tool="ok",outcome="ok"}[1m])') <= 1)
        # The alert rules loaded and evaluate (none fires on a healthy daemon).
        wait_for(lambda: value('count(ALERTS)') is None and rules_loaded(pport), timeout=30,
                 what="the alert rules to load")
    finally:
        pp.terminate()
        try:
            pp.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pp.kill()
            pp.wait()
        log.close()
    d.stop()
