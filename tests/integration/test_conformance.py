"""The official MCP conformance suite (pinned in tests/node) against the
real daemon serving conf/conformance.yaml."""

import json
import os
import re
import subprocess

from harness import (NODE_DIR, Skip, check, conformance_config, free_port, node_peers_ready)

# Scenario counts of the pinned suite (0.2.0-alpha.12) with --suite all:
# a run that executes fewer has lost scenarios and fails.
EXPECTED = {"2025-11-25": 33, "2025-06-18": 27, "2025-03-26": 1}


def run_suite(t, version, port):
    out_dir = os.path.join(t.dir, "results-" + version)
    p = subprocess.run([os.path.join(NODE_DIR, "conformance.sh"), "server",
                        "--url", "http://127.0.0.1:%d/mcp" % port, "--suite", "all",
                        "--spec-version", version, "--timeout", "10000", "-o", out_dir],
                       capture_output=True, text=True, timeout=600)
    summary = p.stdout[p.stdout.find("=== SUMMARY ==="):]
    failures = []
    for f in sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else []:
        path = os.path.join(out_dir, f, "checks.json")
        if not os.path.exists(path):
            continue
        for c in json.load(open(path)):
            if c.get("status") == "FAILURE":
                failures.append("%s: %s %s" % (f, c.get("id"), c.get("errorMessage", "")))
    scenarios = len(re.findall(r"^[✓✗] ", summary, re.M))
    m = re.search(r"Total: (\d+) passed, (\d+) failed", summary)
    check(p.returncode == 0 and not failures and m and m.group(2) == "0",
          "conformance %s: exit %d\n%s\n%s\n%s" % (version, p.returncode, "\n".join(failures),
                                                  summary, p.stderr[-2000:]))
    check(scenarios == EXPECTED[version],
          "conformance %s ran %d scenarios, expected %d" % (version, scenarios, EXPECTED[version]))
    with open(os.path.join(t.dir, "summary-%s.txt" % version), "w") as f:
        f.write(summary)
    return int(m.group(1))


def test_conformance_2025_revisions(t):
    if not node_peers_ready():
        raise Skip("tests/node/node_modules missing: run scripts/install-deps.sh test")
    port = free_port()
    d = t.mcpd(conformance_config(t.dir, port)).start(wait_url_port=port)
    counts = {v: run_suite(t, v, port) for v in ("2025-11-25", "2025-06-18", "2025-03-26")}
    print("     conformance checks passed: %s" % counts)
    d.stop()
