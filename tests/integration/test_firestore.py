"""The firestore storage plugin (plugins/firestore) against Google's
Firestore emulator (gcppeer.Emulator): the storage contract, instances
sharing sessions, the documents where the plugin's layout says, a missing
database, configuration errors, the service away and back under load, the
emulator restarted (it keeps nothing), an emulator that hangs, and
UNAVAILABLE and 429 answers tried again."""

import json
import os
import re
import threading
import urllib.parse

from gcppeer import PROJECT, firestore_emulator
from harness import (sid_hash, Load, RoundRobin, all_ready, call_tool, check, check_config_errors, deleted_everywhere,
                     down_and_back, free_port, http, key_file, mcp_session, rpc, run_mcpd, run_unit_suite,
                     storage_hangs, wait_for, workers_ready)

TOOLS = """
tools:
  - name: where
    description: The instance that runs the tool.
    shell: 'echo %(name)s'
"""

ROOT = "projects/%s/databases/(default)/documents" % PROJECT


def instance(t, e, name="A", workers=2, collection="mcpd", storage_extra="", port=None, endpoint=None, ready=True,
             extra=""):
    port = port or free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: %d\nstorage: { plugin: firestore, project: %s, collection: %s, "
               "endpoint: \"%s\"%s }\nrequest_state: { key_file: %s }\n%s%s"
               % (port, workers, PROJECT, collection, endpoint or e.url, storage_extra, key_file(t), extra,
                  TOOLS % {"name": name}), name="%s.yaml" % name)
    d.start(wait_url_port=port)
    if ready:
        workers_ready(port, workers, timeout=20)
    return d, port


def doc_id(key):
    """The plugin's document id of a key (its encoding, as the header of
    storage_firestore.c says)."""
    out = []
    for i, b in enumerate(key.encode()):
        c = chr(b)
        if (c.isascii() and c.isalnum() or c in "-_.") and not (i == 0 and c in "._"):
            out.append(c)
        else:
            out.append("~%02X" % b)
    return "".join(out)


def get_doc(e, path):
    st, body = e.rest("GET", "/v1/%s/%s" % (ROOT, urllib.parse.quote(path, safe="/~")))
    return body if st == 200 else None


def test_storage_suite_against_firestore(t):
    """The unit suite every storage backend passes, against the emulator."""
    e = firestore_emulator(t)
    # Three backends (memory, lmdb, firestore), ten checks each.
    run_unit_suite("storage", 34, env={"MCPD_TEST_FIRESTORE_ENDPOINT": e.url},
                   unset=["MCPD_TEST_REDIS_URL", "MCPD_TEST_POSTGRES_URL", "MCPD_TEST_DYNAMODB_ENDPOINT"], timeout=300)


def test_instances_share_sessions_through_firestore(t):
    """Two instances on one database: a session made on A is served by B,
    survives a restart of A, and a DELETE on B ends it everywhere; the
    documents are where the plugin's layout says, with expire_at."""
    e = firestore_emulator(t)
    a, pa = instance(t, e, "A")
    b, pb = instance(t, e, "B")
    sid = mcp_session(pa)
    check(call_tool(pb, sid, "where") == "B" and call_tool(pa, sid, "where", id=2) == "A")
    doc = get_doc(e, "mcpd/" + doc_id("session:" + sid_hash(sid)))
    check(doc is not None and "v" in doc["fields"] and "timestampValue" in doc["fields"]["expire_at"], doc)
    member = get_doc(e, "mcpd/%s/m/%s" % (doc_id("user:anonymous:sessions"), doc_id(sid_hash(sid))))
    check(member is not None, "no index member for the session")
    a.stop()
    a, pa = instance(t, e, "A", port=pa)
    check(call_tool(pa, sid, "where", id=3) == "A", "the session did not survive the restart")
    deleted_everywhere(pb, sid, (pa, pb), id=4)
    check(get_doc(e, "mcpd/" + doc_id("session:" + sid_hash(sid))) is None, "the session's document is still there")
    a.stop()
    b.stop()


class FakeGoogle:
    """An HTTP server in front of the emulator that answers some calls
    itself as Google does (its error bodies, written from Google's API
    documentation) and passes the rest through: faults, in order, as
    (status, Google status name, message) or a function of the request."""

    def __init__(self, target_port):
        import http.client
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        self.faults = []
        self.always = None              # answered to every call while set
        self.passed = self.faulted = 0
        self.auth_seen = []
        px = self
        lock = threading.Lock()

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def answer(self, code, data, ctype="application/json"):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass                # the caller went (a daemon stopped mid-pull)

            def handle_any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
                with lock:
                    px.auth_seen.append(self.headers.get("Authorization"))
                    fault = px.always or (px.faults.pop(0) if px.faults else None)
                if callable(fault):
                    fault = fault(self.command, self.path, self.headers, body)
                if fault is not None:
                    px.faulted += 1
                    code, status, msg = fault
                    self.answer(code, json.dumps({"error": {"code": code, "message": msg, "status": status}}).encode())
                    return
                c = http.client.HTTPConnection("127.0.0.1", target_port, timeout=30)
                hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "authorization")}
                try:
                    c.request(self.command, self.path, body if body else None, hdrs)
                    r = c.getresponse()
                    data = r.read()
                except OSError:
                    # The service behind is gone (a test's end): as a front
                    # end says it.
                    self.answer(503, json.dumps({"error": {"code": 503, "message": "backend unreachable",
                                                           "status": "UNAVAILABLE"}}).encode())
                    return
                finally:
                    c.close()
                px.passed += 1
                self.answer(r.status, data, r.getheader("Content-Type", "application/json"))

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def kill(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def log(self):
        return "passed %d, faulted %d" % (self.passed, self.faulted)

    def sanitizer_report(self):
        return None

    log_path = "(the fake Google front end)"


def test_a_missing_database(t):
    """A database that does not exist (Google answers NOT_FOUND to a
    listing of it): mcpd -t says so, and so does a start (not ready, the
    log says why); once it answers, the workers are ready without a
    restart."""
    e = firestore_emulator(t)
    g = FakeGoogle(e.port)
    t.daemons.append(g)
    missing = (404, "NOT_FOUND", "The database (default) does not exist for project %s Please visit "
               "https://console.cloud.google.com/datastore/setup?project=%s to add a Cloud Datastore or Cloud "
               "Firestore database." % (PROJECT, PROJECT))
    g.always = missing
    port = free_port()
    path = os.path.join(t.dir, "missing.yaml")
    with open(path, "w") as f:
        f.write("listen: [127.0.0.1:%d]\nstorage: { plugin: firestore, project: %s, endpoint: \"%s\" }\n"
                % (port, PROJECT, g.url))
    rc, out, err = run_mcpd("-t", "-c", path)
    check(rc != 0 and "database (default) of project test-project does not exist" in out + err, (rc, out, err))
    # The database goes away after the master read the file (its listing
    # passes): the workers say so.
    listings = []

    def after_the_first(method, path, headers, body):
        if method == "GET" and "pageSize=1" in path:
            listings.append(path)
            return missing if len(listings) > 1 else None
        return None
    g.always = after_the_first
    d, port = instance(t, e, name="B", workers=1, endpoint=g.url, ready=False, port=port)
    wait_for(lambda: "does not exist" in d.log(), timeout=15, what="the error at start")
    st, _, body = http(port, "GET", "/readyz")
    check(st == 503 and b"database (default) of project test-project does not exist" in body, body)
    g.always = None
    wait_for(lambda: all_ready(port, 3), timeout=15, what="ready once the database answers")
    d.stop()


def test_a_missing_project(t):
    """A project that does not exist (Google answers NOT_FOUND, "The
    project P does not exist or it does not contain an active ...
    database"): mcpd -t says the project, not the database; a worker that
    meets it later says so in /readyz, and is ready once it answers."""
    e = firestore_emulator(t)
    g = FakeGoogle(e.port)
    t.daemons.append(g)
    missing = (404, "NOT_FOUND", "The project %s does not exist or it does not contain an active Cloud Datastore "
               "or Cloud Firestore database. Please visit http://console.cloud.google.com to create a project or "
               "https://console.cloud.google.com/datastore/setup?project=%s to add a Cloud Datastore or Cloud "
               "Firestore database. Note that Cloud Datastore or Cloud Firestore always have an associated App "
               "Engine app and this app must not be disabled." % (PROJECT, PROJECT))
    g.always = missing
    port = free_port()
    path = os.path.join(t.dir, "missing.yaml")
    with open(path, "w") as f:
        f.write("listen: [127.0.0.1:%d]\nstorage: { plugin: firestore, project: %s, endpoint: \"%s\" }\n"
                % (port, PROJECT, g.url))
    rc, out, err = run_mcpd("-t", "-c", path)
    check(rc != 0 and "project test-project does not exist or has no Firestore database" in out + err,
          (rc, out, err))
    g.always = None
    d, port = instance(t, e, name="B", workers=1, endpoint=g.url, port=port)
    sid = mcp_session(port)
    g.always = missing
    st, r, _ = rpc(port, sid, "tools/call", {"name": "where", "arguments": {}}, id=2, timeout=15)
    check(st == 503, (st, r))
    wait_for(lambda: http(port, "GET", "/readyz")[0] == 503, timeout=15, what="not ready")
    st, _, body = http(port, "GET", "/readyz")
    check(b"project test-project does not exist or has no Firestore database" in body, body)
    g.always = None
    wait_for(lambda: all_ready(port, 3), timeout=15, what="ready once the project answers")
    d.stop()


def test_configuration_errors(t):
    check_config_errors(t, [
        ("storage: { plugin: firestore, endpoint: \"http://127.0.0.1:1\" }\n", r"firestore needs project"),
        ("storage: { plugin: firestore, project: \"A B\", endpoint: \"http://127.0.0.1:1\" }\n",
         r"bad\.yaml:\d+.*project must be"),
        ("storage: { plugin: firestore, project: my-proj, database: X, endpoint: \"http://127.0.0.1:1\" }\n",
         r"bad\.yaml:\d+.*database must be"),
        ("storage: { plugin: firestore, project: my-proj, collection: \"a/b\", endpoint: \"http://127.0.0.1:1\" }\n",
         r"bad\.yaml:\d+.*collection must be"),
        ("storage: { plugin: firestore, project: my-proj, colour: red }\n", r"bad\.yaml:\d+.*colour"),
        ("storage: { plugin: firestore, project: my-proj, timeout: 1ms, endpoint: \"http://127.0.0.1:1\" }\n",
         r"bad\.yaml:\d+.*timeout must be"),
        ("storage: { plugin: firestore, project: my-proj, endpoint: \"ftp://x\" }\n", r"http or https"),
        ("storage: { plugin: firestore, project: my-proj, credentials: maybe, endpoint: \"http://127.0.0.1:1\" }\n",
         r"bad\.yaml:\d+.*credentials must be default or none"),
    ], env={"GOOGLE_CLOUD_PROJECT": "", "GCLOUD_PROJECT": "", "FIRESTORE_EMULATOR_HOST": ""})
    # Credentials that cannot be used are an error when the file is read.
    bad = os.path.join(t.dir, "sa.json")
    with open(bad, "w") as f:
        f.write('{"type": "service_account", "client_email": "x@y", "private_key": "not a key"}')
    check_config_errors(t, [("storage: { plugin: firestore, project: my-proj }\n", r"sa\.json: private_key is not")],
                        env={"GOOGLE_APPLICATION_CREDENTIALS": bad, "FIRESTORE_EMULATOR_HOST": ""})
    # The project from the environment; the emulator from FIRESTORE_EMULATOR_HOST.
    e = firestore_emulator(t)
    port = free_port()
    path = os.path.join(t.dir, "env.yaml")
    with open(path, "w") as f:
        f.write("listen: [127.0.0.1:%d]\nstorage: { plugin: firestore }\n" % port)
    rc, out, err = run_mcpd("-t", "-c", path, env={"GOOGLE_CLOUD_PROJECT": PROJECT, "FIRESTORE_EMULATOR_HOST": e.host})
    check(rc == 0 and "not checked" not in out + err, out + err)


def test_service_down_then_back(t):
    """The service goes away under load (a relay in front of the emulator
    taken away: the emulator keeps its data): requests get 503 meanwhile
    (never a crash or a hang), /readyz says why on every worker, the one
    without traffic too (within its idle check); once it is back
    everything works, and the session stored before is still there."""
    e = firestore_emulator(t)
    relay = RoundRobin([e.port])
    a, pa = instance(t, e, "A", endpoint="http://127.0.0.1:%d" % relay.port)
    sid = mcp_session(pa)

    def every_worker():
        wait_for(lambda: all(http(pa, "GET", "/readyz")[0] == 503 for _ in range(6)), timeout=10,
                 what="/readyz 503 on every worker")
    down_and_back(relay, (pa,), sid, b"http://127.0.0.1:%d" % relay.port, calls=20, daemons=(a,),
                  again="the service answers again", while_down=every_worker)
    check(call_tool(pa, sid, "where", id=9999) == "A", "the session stored before the outage is gone")
    a.stop()


def test_emulator_restarted_under_load(t):
    """The emulator itself stopped and started again under load (it keeps
    nothing): calls get 503 while it is down, no crash; afterwards the
    workers are ready, the old session is unknown (404: its record went
    with the emulator) and a new one works."""
    e = firestore_emulator(t)
    a, pa = instance(t, e, "A")
    sid = mcp_session(pa)
    load = Load([pa], sid)
    statuses = load.statuses
    try:
        load.wait(10)
        e.stop()
        wait_for(lambda: statuses.count(503) > 5, what="503 while the emulator is down")
        e.start()
        wait_for(lambda: all_ready(pa, 6), timeout=20, what="ready again")
        load.wait(10)
    finally:
        load.stop()
    # (the old session's record went with the emulator: 404, or 200 from
    # a worker's cache of it)
    check(set(statuses) <= {200, 503, 404}, sorted(set(statuses)))
    check(503 not in statuses[-5:], statuses[-20:])
    sid2 = mcp_session(pa)
    check(call_tool(pa, sid2, "where") == "A")
    check("firestore: the service answers again" in a.log(), a.log()[-1500:])
    a.stop()


def test_an_emulator_that_hangs(t):
    """The emulator stops answering (SIGSTOP) without closing its
    connections: a request ends at the call's time bound with 503,
    /healthz is answered all along, and once it answers again so does
    mcpd."""
    e = firestore_emulator(t)
    d, port = instance(t, e, workers=1, storage_extra=", timeout: 500ms")
    storage_hangs(d, port, e, r"firestore: .*(timed out|Timeout|timeout)")
    d.stop()


UNAVAILABLE = (503, "UNAVAILABLE", "The service is currently unavailable.")
EXHAUSTED = (429, "RESOURCE_EXHAUSTED", "Quota exceeded.")
INTERNAL = (500, "INTERNAL", "Internal error encountered.")


def test_unavailable_and_429_are_tried_again(t):
    """UNAVAILABLE, 429 and 500 answers are tried again with back-off: a
    few of them in a row cost the caller nothing; more than the call's
    bound gives 503 (the log says why), and the next call succeeds."""
    e = firestore_emulator(t)
    g = FakeGoogle(e.port)
    t.daemons.append(g)
    d, port = instance(t, e, workers=1, endpoint=g.url, storage_extra=", timeout: 1s")
    sid = mcp_session(port)
    g.faults = [UNAVAILABLE, EXHAUSTED, INTERNAL]
    check(call_tool(port, sid, "where") == "A")
    check(g.faulted == 3 and g.faults == [], g.log())
    g.always = UNAVAILABLE                  # unavailable for good
    st, r, _ = rpc(port, sid, "ping", id=5, timeout=15)
    check(st == 503 and "unavailable" in json.dumps(r), (st, r))
    d.wait_log(r"firestore: .*UNAVAILABLE: The service is currently unavailable")
    g.always = None
    wait_for(lambda: rpc(port, sid, "ping", id=6)[0] == 200, timeout=10, what="calls to succeed again")
    d.stop()


def test_expired_values_are_purged(t):
    """Worker 1 of each instance deletes the expired values it finds
    (Firestore's TTL policy is late, and the emulator has none): a
    session's record that lapsed on A is gone from the collection within
    the first purge, while B's live one, in the same collection, stays."""
    e = firestore_emulator(t)
    a, pa = instance(t, e, "A", workers=1, extra="limits: { session_idle_timeout: 2s }\n")
    b, pb = instance(t, e, "B", workers=1)
    old, live = mcp_session(pa), mcp_session(pb)
    check(get_doc(e, "mcpd/" + doc_id("session:" + sid_hash(old))) is not None, "no document for the session")
    wait_for(lambda: get_doc(e, "mcpd/" + doc_id("session:" + sid_hash(old))) is None, timeout=30, interval=0.5,
             what="the lapsed session's document purged")
    check(get_doc(e, "mcpd/" + doc_id("session:" + sid_hash(live))) is not None, "the live session's document was purged")
    check(call_tool(pb, live, "where") == "B")
    a.stop()
    b.stop()
