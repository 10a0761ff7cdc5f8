"""The official MCP conformance suite (pinned in tests/node) against one
running daemon serving conf/conformance.yaml: every server scenario of the
2025 revisions and of 2026-07-28, and the two frozen requirement sets."""

import json
import os
import re
import subprocess

from harness import (NODE_DIR, Skip, check, conformance_config, free_port, node_peers_ready)

# Scenario counts of the pinned suite (0.2.0-alpha.12) with --suite all:
# a run that executes fewer has lost scenarios and fails.
EXPECTED = {"2025-11-25": 33, "2025-06-18": 27, "2025-03-26": 1, "2026-07-28": 40}
TASKS_SCENARIOS = 10
SKILLS_SCENARIOS = ("sep-2640-skills-directory", "sep-2640-skills-enumeration", "sep-2640-skills-manifest")


def suite(t, port, name, *args):
    # 30 s a scenario: under ASan on a loaded machine 10 s was once too few.
    out_dir = os.path.join(t.dir, "results-" + name)
    p = subprocess.run([os.path.join(NODE_DIR, "conformance.sh"), "server",
                        "--url", "http://127.0.0.1:%d/mcp" % port, "--timeout", "30000",
                        "-o", out_dir, *args],
                       capture_output=True, text=True, timeout=900)
    checks = {}
    for f in sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else []:
        path = os.path.join(out_dir, f, "checks.json")
        if os.path.exists(path):
            scenario = re.sub(r"^server-(.*)-\d{4}-\d\d-\d\dT.*$", r"\1", f)
            checks[scenario] = json.load(open(path))
    summary = p.stdout[p.stdout.find("=== SUMMARY ==="):]
    return p, checks, summary


def failures(checks, ignore=()):
    return ["%s: %s %s" % (s, c.get("id"), c.get("errorMessage", ""))
            for s, cs in checks.items() if not any(s.startswith(i) for i in ignore)
            for c in cs if c.get("status") == "FAILURE"]


def test_conformance_suite(t):
    if not node_peers_ready():
        raise Skip("tests/node/node_modules missing: run scripts/install-deps.sh test")
    port = free_port()
    # Four workers: every scenario's requests spread over them.
    d = t.mcpd(conformance_config(t.dir, port, workers=4)).start(wait_url_port=port)
    report = []
    for version in ("2025-11-25", "2025-06-18", "2025-03-26", "2026-07-28"):
        p, checks, summary = suite(t, port, version, "--suite", "all", "--spec-version", version)
        bad = failures(checks)
        m = re.search(r"Total: (\d+) passed, (\d+) failed", summary)
        check(p.returncode == 0 and not bad and m and m.group(2) == "0",
              "conformance %s: exit %d\n%s\n%s\n%s" % (version, p.returncode, "\n".join(bad),
                                                      summary, p.stderr[-2000:]))
        check(len(checks) == EXPECTED[version],
              "conformance %s ran %d scenarios, expected %d" % (version, len(checks), EXPECTED[version]))
        report.append("%s: %s checks in %d scenarios" % (version, m.group(1), len(checks)))
    # The skills extension's scenarios (SEP-2640) are on no revision's
    # timeline: each is run by name, forced, under both generations, and
    # every check must pass (conf/conformance.yaml serves two skills).
    for version in ("2025-11-25", "2026-07-28"):
        for scenario in SKILLS_SCENARIOS:
            p, checks, summary = suite(t, port, "%s-%s" % (scenario, version), "--scenario", scenario,
                                       "--spec-version", version, "--force")
            # Skipped only where the suite says a check is not for this
            # revision (cache attributes before 2026-07-28).
            bad = ["%s: %s %s" % (c.get("id"), c.get("status"), c.get("errorMessage", ""))
                   for cs in checks.values() for c in cs
                   if c.get("status") != "SUCCESS" and not (
                       c.get("status") == "SKIPPED" and version < "2026-07-28"
                       and c.get("id", "").endswith("-cache-attributes"))]
            passed = sum(c.get("status") == "SUCCESS" for cs in checks.values() for c in cs)
            check(p.returncode == 0 and checks and not bad,
                  "%s (%s): %d checks passed\n%s\n%s" % (
                      scenario, version, passed, "\n".join(bad), p.stdout[-3000:]))
            report.append("%s (%s): %d checks passed" % (scenario, version, passed))
    # The frozen requirement sets. For 2026-07-28 they include the tasks
    # extension's ten scenarios (conf/conformance.yaml declares their
    # fixtures as ordinary tools): every check of every scenario passes.
    for req in ("2025-11-25", "2026-07-28"):
        p, checks, summary = suite(t, port, "req-" + req, "--requirements", req)
        check(p.returncode == 0 and not failures(checks),
              "requirements %s: exit %d\n%s\n%s" % (req, p.returncode, "\n".join(failures(checks)), summary))
        ext = {s: cs for s, cs in checks.items() if s.startswith("tasks-")}
        ext_pass = sum(c.get("status") == "SUCCESS" for cs in ext.values() for c in cs)
        if req == "2026-07-28":
            check(len(ext) == TASKS_SCENARIOS, "requirements %s ran %d tasks scenarios, expected %d"
                  % (req, len(ext), TASKS_SCENARIOS))
        report.append("requirements %s: %d scenarios pass%s" % (
            req, len(checks),
            " (tasks extension: %d scenarios, %d checks passed, none failed)" % (len(ext), ext_pass)
            if ext else ""))
    for line in report:
        print("     " + line)
    with open(os.path.join(t.dir, "conformance-report.txt"), "w") as f:
        f.write("\n".join(report) + "\n")
    d.stop()
