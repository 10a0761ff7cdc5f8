#!/usr/bin/env python3
"""Runs the integration tests: every test_* function of every test_*.py here.

  run.py [-k substring] [--keep] [-j N]

Each test gets a fresh temporary directory (kept with --keep, or when it
fails). A daemon that a test started is stopped after it, and its log is
checked for sanitizer reports. Skipped tests are listed and never counted
as passed; the run fails if any test fails.

A test that runs longer than TEST_TIMEOUT seconds (900 by default) ends
the run: every thread's stack is printed and the run exits 1. Threads a
failed test left running never keep the run from exiting."""

import argparse
import concurrent.futures
import importlib
import inspect
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
import faulthandler

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402


def collect(pattern):
    tests = []
    for fn in sorted(os.listdir(HERE)):
        if not (fn.startswith("test_") and fn.endswith(".py")):
            continue
        mod = importlib.import_module(fn[:-3])
        for name, f in inspect.getmembers(mod, inspect.isfunction):
            if name.startswith("test_") and f.__module__ == mod.__name__:
                # A test marked with variants (harness.with_storage_cache)
                # runs once for each: test_x, test_x[cache].
                for v in getattr(f, "variants", ("",)):
                    full = "%s.%s%s" % (fn[:-3], name, "[%s]" % v if v else "")
                    if pattern is None or pattern in full:
                        tests.append((full, f, inspect.getsourcelines(f)[1], v))
    tests.sort(key=lambda t: (t[0].split(".")[0], t[2]))
    return tests


class Ctx:
    """What a test receives: a temporary directory and a registry of daemons."""

    def __init__(self, tmpdir, variant=""):
        self.dir = tmpdir
        self.daemons = []
        self.variant = variant

    def mcpd(self, config, name="mcpd.yaml"):
        d = harness.Mcpd(self.dir, config, name)
        self.daemons.append(d)
        return d


RUNNING = {}                # test name -> (when it started, its Ctx)
RUNNING_LOCK = threading.Lock()


def watchdog(limit):
    """A hung test would hold the run until CI's own limit, with nothing
    said: end it here, with the stacks that show where it waits."""
    while True:
        time.sleep(5)
        now = time.monotonic()
        with RUNNING_LOCK:
            stuck = [(n, now - t0, ctx) for n, (t0, ctx) in RUNNING.items() if now - t0 > limit]
        if stuck:
            for n, dt, _ in stuck:
                print("\nSTUCK %s: still running after %.0fs (TEST_TIMEOUT=%d); the stacks:"
                      % (n, dt, limit), flush=True)
            faulthandler.dump_traceback(file=sys.stdout, all_threads=True)
            for n, _, ctx in stuck:
                for d in ctx.daemons:
                    try:
                        d.kill()
                        print("--- tail of %s ---\n%s" % (d.log_path, d.log()[-2500:]))
                    except Exception:
                        pass
            sys.stdout.flush()
            os._exit(1)


def run_one(full, f, keep, variant=""):
    tmp = tempfile.mkdtemp(prefix="mcpd-test-")
    ctx = Ctx(tmp, variant)
    t0 = time.monotonic()
    with RUNNING_LOCK:
        RUNNING[full] = (t0, ctx)
    status, detail = "pass", ""
    try:
        f(ctx)
    except harness.Skip as e:
        status, detail = "skip", str(e)
    except Exception:
        status, detail = "FAIL", traceback.format_exc()
    finally:
        for d in ctx.daemons:
            try:
                d.kill()
            except Exception:
                pass
            report = d.sanitizer_report()
            if report and status != "FAIL":
                status, detail = "FAIL", "sanitizer report in %s:\n%s" % (d.log_path, report)
    if status == "FAIL":
        for d in ctx.daemons:
            detail += "\n--- tail of %s ---\n%s" % (d.log_path, d.log()[-2500:])
    if status == "pass" and not keep:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        detail += "\n(files kept in %s)" % tmp if status == "FAIL" or keep else ""
    with RUNNING_LOCK:
        del RUNNING[full]
    return full, status, detail, time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", dest="pattern")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("-j", type=int, default=int(os.environ.get("TEST_JOBS", "1")))
    args = ap.parse_args()
    if not os.access(harness.MCPD, os.X_OK):
        print("no mcpd binary at %s" % harness.MCPD)
        return 2
    tests = collect(args.pattern)
    print("integration tests: %d, binary %s" % (len(tests), harness.MCPD), flush=True)
    threading.Thread(target=watchdog, args=(int(os.environ.get("TEST_TIMEOUT", "900")),),
                     daemon=True).start()
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.j)) as ex:
        futs = [ex.submit(run_one, full, f, args.keep, v) for full, f, _, v in tests]
        for fut in futs:
            full, status, detail, dt = fut.result()
            results.append((full, status, detail))
            print("%-4s %-60s %6.2fs" % (status, full, dt), flush=True)
            if status == "FAIL" or status == "skip":
                print("     " + detail.strip().replace("\n", "\n     "), flush=True)
    failed = [r for r in results if r[1] == "FAIL"]
    skipped = [r for r in results if r[1] == "skip"]
    passed = [r for r in results if r[1] == "pass"]
    if failed:
        # Repeated at the end: CI keeps only the tail of a long log.
        print("\nfailed:")
        for full, _, detail in failed:
            lines = [l for l in detail.strip().splitlines() if l.strip()]
            print("  " + full)
            for l in lines[:3] + (["  ..."] if len(lines) > 14 else []) + lines[max(3, len(lines) - 11):]:
                print("     " + l[:300])
    print("\n%d passed, %d failed, %d skipped (skipped tests are not passes)"
          % (len(passed), len(failed), len(skipped)))
    return 1 if failed else 0


if __name__ == "__main__":
    rc = main()
    left = [th.name for th in threading.enumerate()
            if th is not threading.main_thread() and not th.daemon and th.is_alive()]
    if left:
        # A failed test's load threads may loop for ever: Python's exit
        # would wait for them (a CI run once hung here until its limit).
        print("threads a test left running: %s" % ", ".join(left), flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
