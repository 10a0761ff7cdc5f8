"""The pubsub transport plugin (plugins/pubsub: a subscription per worker on
one topic, messages addressed to the workers that hold a subscriber) with
the firestore storage, against Google's emulators (gcppeer.Emulator): the
transport suite, instances sharing sessions, cancellation, elicitation
answers, Last-Event-ID resumption, list changes and the internal
authorization server's state through Google services only, the
conformance suite behind a balancer, the routing of messages, a missing
topic, configuration errors, the emulator restarted under load, and an
emulator that hangs."""

import base64
import json
import os
import re
import threading
import time

from gcppeer import PROJECT, firestore_emulator, pubsub_emulator
from harness import (Load, Skip, all_ready, call_tool, check, check_config_errors, check_config_valid,
                     conformance_behind_balancer, conformance_config, deleted_everywhere, free_port, http, key_file,
                     mcp_session, node_peers_ready, rpc, run_mcpd, run_unit_suite, start_instances, transport_hangs,
                     wait_for, workers_ready)
from test_redis import TOOLS, cancel_crosses, elicitation_crosses, list_changed_crosses, resume_crosses


def backends(t, fs, ps, prefix="s-", transport_extra="", topic="mcpd"):
    return ("storage: { plugin: firestore, project: %s, endpoint: \"%s\" }\n"
            "transport: { plugin: pubsub, project: %s, endpoint: \"%s\", topic: %s, create_topic: true, "
            "subscription_prefix: \"%s\"%s }\n"
            "request_state: { key_file: %s }\n" % (PROJECT, fs.url, PROJECT, ps.url, topic, prefix, transport_extra,
                                                  key_file(t)))


def instances(t, fs, ps, n=3, workers=2, transport_extra="", extra="", prefixes=None, tools=TOOLS):
    """n instances, named A, B, C...; returns [(daemon, port)]."""
    return start_instances(t, n, lambda name: backends(t, fs, ps, prefix=(prefixes or {}).get(name, "s-"),
                           transport_extra=transport_extra) + extra + tools % {"name": name}, workers, timeout=30)


# chatty with twenty events: the routing test looks at the last ones, sent
# well after the resumed stream's announcement (seconds, even under load).
LONG_CHATTY = TOOLS.replace("Five progress events", "Twenty progress events").replace(
    "for i in 1 2 3 4 5; do mcpd-tool progress $i 5;",
    "for i in $(seq 20); do mcpd-tool progress $i 20;")


def subscriptions(ps):
    st, body = ps.rest("GET", "/v1/projects/%s/subscriptions" % PROJECT)
    check(st == 200, body)
    return sorted(s["name"].rsplit("/", 1)[1] for s in (body or {}).get("subscriptions", [])
                  if s["name"].rsplit("/", 1)[1] != "spy")


def test_transport_suite_against_pubsub(t):
    """The unit suite of the network transports, against the emulator: two
    plugin instances in one process, messages on awkward channel names,
    counts of subscribers across them, a service that is not there."""
    ps = pubsub_emulator(t)
    run_unit_suite("transport", 7, env={"MCPD_TEST_PUBSUB_ENDPOINT": ps.url},
                   unset=["MCPD_TEST_NATS_URL", "MCPD_TEST_SQS_ENDPOINT"], timeout=300)


def test_a_burst_is_published_together(t):
    """Seventy messages published in one loop turn (forty channels, thirty
    on one more) all arrive, those of one channel in order, and each
    publisher hears of its own; they leave in one publish call (a relay in
    front of the emulator counts them), not the first few each alone
    while calls are free. A burst before it, which the relay refuses as
    an unavailable service would, fails every publisher's call, and the
    plugin goes on."""
    from test_firestore import FakeGoogle
    ps = pubsub_emulator(t)
    g = FakeGoogle(ps.port)
    t.daemons.append(g)
    seen = []

    def note(method, path, headers, body):
        if path.endswith(":publish"):
            seen.append([base64.b64decode(m.get("data", "")).decode(errors="replace")
                         for m in json.loads(body).get("messages", [])])
            if any(re.fullmatch(r"x\d+", m) for m in seen[-1]):
                return 503, "UNAVAILABLE", "down for the test"
        return None
    g.always = note
    run_unit_suite("transport", 1, env={"MCPD_TEST_PUBSUB_ENDPOINT": g.url, "MCPD_TEST_BURST": "1",
                                        "MCPD_TEST_BURST_DOWN": "1", "CK_RUN_CASE": "burst"},
                   unset=["MCPD_TEST_NATS_URL", "MCPD_TEST_SQS_ENDPOINT", "MCPD_TEST_AMQP_URL"], timeout=120)
    calls = [[m for m in c if re.fullmatch(r"[bs]\d+", m)] for c in seen]
    calls = [c for c in calls if c]
    check(sum(len(c) for c in calls) == 70 and len(calls) <= 2,
          "the burst in %d calls: %s" % (len(calls), [len(c) for c in calls]))
    print("     70 messages in %d publish call(s)" % len(calls))


def test_a_session_is_served_by_every_instance(t):
    fs, ps = firestore_emulator(t), pubsub_emulator(t)
    (a, pa), (b, pb), (c, pc) = instances(t, fs, ps)
    sid = mcp_session(pa)
    check(call_tool(pb, sid, "where") == "B" and call_tool(pc, sid, "where") == "C")
    for port in (pa, pb, pc):
        st, r, _ = rpc(port, sid, "tools/list", {})
        check(st == 200 and len(r["result"]["tools"]) == 6, (port, st, r))
    subs = subscriptions(ps)
    check(len(subs) == 6 and all(re.fullmatch(r"s-[0-9a-f]{16}-[12]", s) for s in subs),
          "a subscription per worker of each instance: %s" % subs)
    st, sub = ps.rest("GET", "/v1/projects/%s/subscriptions/%s" % (PROJECT, subs[0]))
    check(sub.get("expirationPolicy", {}).get("ttl") == "86400s" and sub.get("enableMessageOrdering") is True and
          "attributes:to_" in sub.get("filter", ""), sub)
    deleted_everywhere(pb, sid, (pa, pb, pc))
    for d, _ in ((a, pa), (b, pb), (c, pc)):
        d.stop()
    # A worker that stops takes its subscription away.
    check(subscriptions(ps) == [], "subscriptions left: %s" % subscriptions(ps))


def test_cancel_from_another_instance(t):
    fs, ps = firestore_emulator(t), pubsub_emulator(t)
    (a, pa), (b, pb), (c, pc) = instances(t, fs, ps)
    cancel_crosses(t, pa, pc, mcp_session(pa), "pubsub")
    for d, _ in ((a, pa), (b, pb), (c, pc)):
        d.stop()


def test_elicitation_answered_on_another_instance(t):
    fs, ps = firestore_emulator(t), pubsub_emulator(t)
    (a, pa), (b, pb) = instances(t, fs, ps, n=2)
    elicitation_crosses(pa, pb, mcp_session(pa, caps={"elicitation": {}}))
    a.stop()
    b.stop()


def test_resume_on_another_instance(t):
    """Events logged in Firestore: the client loses A and resumes on B from
    the last id it saw; nothing is lost or repeated."""
    fs, ps = firestore_emulator(t), pubsub_emulator(t)
    (a, pa), (b, pb) = instances(t, fs, ps, n=2)
    resume_crosses(pa, pb, mcp_session(pa))
    a.stop()
    b.stop()


def test_list_changed_reaches_every_instance(t):
    fs, ps = firestore_emulator(t), pubsub_emulator(t)
    (a, pa), (b, pb) = instances(t, fs, ps, n=2)
    list_changed_crosses(pa, pb, mcp_session(pa))
    a.stop()
    b.stop()


def test_internal_oauth_server_on_google_cloud(t):
    """auth: internal keeps clients, codes and tokens in Firestore and tells
    revocations through Pub/Sub: a token issued by A is accepted by B,
    refreshed at B, revoked at A and refused everywhere."""
    from test_oauth import add_user, tokens_cross
    fs, ps = firestore_emulator(t), pubsub_emulator(t)
    add_user(t, "alice", "alice-pw", "tools.admin")
    pa, pb = free_port(), free_port()
    auth = "auth: { plugin: internal, users_file: users, resource: \"http://127.0.0.1:%d/mcp\" }\n" % pa
    out = []
    for name, port in (("A", pa), ("B", pb)):
        d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\n%s%s%s" % (port, backends(t, fs, ps), auth,
                   TOOLS % {"name": name}), name="%s.yaml" % name)
        d.start(wait_url_port=port)
        out.append(d)
    for port in (pa, pb):
        workers_ready(port, 2, timeout=30)
    tok = tokens_cross(pa, pb)
    st, body = fs.rest("GET", "/v1/projects/%s/databases/(default)/documents/mcpd?pageSize=300" % PROJECT)
    names = [d["name"].rsplit("/", 1)[1] for d in (body or {}).get("documents", [])]
    check(any(n.startswith("oauth~3Art") for n in names), names)
    check(not any(tok["refresh_token"] in n for n in names), "a token in the clear")
    for d in out:
        d.stop()


def test_conformance_behind_a_balancer(t):
    """The official conformance suite through a round-robin balancer over
    two instances sharing Firestore and Pub/Sub."""
    if not node_peers_ready():
        raise Skip("tests/node/node_modules missing: run scripts/install-deps.sh test")
    fs, ps = firestore_emulator(t), pubsub_emulator(t)
    ports = []
    for name in ("A", "B"):
        port = free_port()
        t.mcpd(conformance_config(t.dir, port, workers=2, extra=backends(t, fs, ps)),
               name=name + ".yaml").start(wait_url_port=port)
        ports.append(port)
    for port in ports:
        workers_ready(port, 2, timeout=30)
    conformance_behind_balancer(t, ports, " (pubsub)")


def matches(flt, attrs):
    """Pub/Sub's filter syntax, the part the plugin's filters use: a:k
    (the attribute is there), a.k = "v", a.k != "v" (absent counts as
    different), AND, OR, parentheses."""
    toks = re.findall(r'\(|\)|AND|OR|attributes:\w+|attributes\.\w+\s*!?=\s*"[^"]*"', flt)
    check("".join(toks).replace(" ", "") == re.sub(r"\s+", "", flt), "a filter beyond this evaluator: %s" % flt)
    pos = 0

    def atom():
        nonlocal pos
        tok = toks[pos]
        pos += 1
        if tok == "(":
            v = expr()
            pos += 1
            return v
        if tok.startswith("attributes:"):
            return tok.split(":", 1)[1] in attrs
        m = re.match(r'attributes\.(\w+)\s*(!?=)\s*"([^"]*)"', tok)
        return (attrs.get(m.group(1)) == m.group(3)) == (m.group(2) == "=")

    def conj():
        nonlocal pos
        v = atom()
        while pos < len(toks) and toks[pos] == "AND":
            pos += 1
            v = atom() and v
        return v

    def expr():
        nonlocal pos
        v = conj()
        while pos < len(toks) and toks[pos] == "OR":
            pos += 1
            v = conj() or v
        return v
    return expr()


def spy_messages(ps):
    """What the test's own subscription (no filter) got since it was made."""
    out = []
    while True:
        st, body = ps.rest("POST", "/v1/projects/%s/subscriptions/spy:pull" % PROJECT,
                           {"maxMessages": 1000, "returnImmediately": True})
        got = (body or {}).get("receivedMessages", [])
        if not got:
            return out
        ps.rest("POST", "/v1/projects/%s/subscriptions/spy:acknowledge" % PROJECT,
                {"ackIds": [m["ackId"] for m in got]})
        out += [m["message"] for m in got]


def test_messages_reach_only_the_workers_holding_a_subscriber(t):
    """A session's messages go only to the worker that holds its stream:
    each is addressed to it alone (to_<its id>), and of the workers'
    subscription filters (static) only its own matches them, so that
    Pub/Sub delivers them there and nowhere else. Shown on a resumption
    (the events of a call on A go to the stream on B) and a cancellation
    (sent to B, for the call on A); announcements go to all. A spy
    subscription without a filter sees what is published (the emulator
    does not apply filters; every worker also checks the addressing)."""
    fs, ps = firestore_emulator(t), pubsub_emulator(t)
    check(LONG_CHATTY != TOOLS, "chatty not lengthened")
    (a, pa), (b, pb) = instances(t, fs, ps, n=2, prefixes={"A": "a-", "B": "b-"}, tools=LONG_CHATTY)
    st, _ = ps.rest("PUT", "/v1/projects/%s/subscriptions/spy" % PROJECT,
                    {"topic": "projects/%s/topics/mcpd" % PROJECT})
    check(st == 200, st)
    filters = {}
    for s in subscriptions(ps):
        st, sub = ps.rest("GET", "/v1/projects/%s/subscriptions/%s" % (PROJECT, s))
        filters[s] = sub["filter"]
    check(len(filters) == 4, filters)

    sid = mcp_session(pa)
    resume_crosses(pa, pb, sid, events=20)
    cancel_crosses(t, pa, pb, sid, "pubsub", id=21)
    time.sleep(1)
    msgs = spy_messages(ps)

    def data(m):
        return base64.b64decode(m.get("data", "")).decode(errors="replace")

    def receivers(m):
        return sorted(s for s, f in filters.items() if matches(f, m.get("attributes", {})))

    def progress_of(m):
        for line in data(m).split("\n"):
            if "notifications/progress" in line:
                return json.loads(line)["params"]["progress"]
        return None

    # The last events of the call on A: published seconds after B's stream
    # subscribed and said so (the first ones may have gone to all).
    late = [m for m in msgs if "k" not in m["attributes"] and (progress_of(m) or 0) >= 16]
    cancels = [m for m in msgs if "k" not in m["attributes"] and '"cancel"' in data(m)]
    check(len(late) >= 2 and cancels, "session messages not seen: %s" % [(m["attributes"], data(m)[:80]) for m in msgs])
    # A worker trusts what it knows of a channel only after a message of its
    # own to all on it (announcements reach only those there to hear them):
    # a cancel that is its sender's first on the control channel goes to all.
    def first_of_sender(m):
        a = m["attributes"]
        return not any(o is not m and "k" not in o["attributes"] and o["attributes"].get("from") == a.get("from") and
                       o["attributes"].get("c") == a.get("c") and int(o["attributes"].get("id", 0)) < int(a["id"])
                       for o in msgs)
    # A cancellation is published again 250 ms and 1 s later (the holder's
    # subscription may not be in effect yet): a repeat may find the call
    # over and its channel without a holder known, and go to all too.
    def repeat_of_earlier(m):
        a = m["attributes"]
        return any(o is not m and o["attributes"].get("from") == a.get("from") and data(o) == data(m) and
                   int(o["attributes"].get("id", 0)) < int(a["id"]) for o in cancels)
    cancels_to_all = [m for m in cancels if "all" in m["attributes"]]
    check(all(first_of_sender(m) or repeat_of_earlier(m) for m in cancels_to_all),
          [m["attributes"] for m in cancels_to_all])
    cancels = [m for m in cancels if "all" not in m["attributes"]]
    for m in late + cancels:
        attrs = m["attributes"]
        to = [k for k in attrs if k.startswith("to_")]
        check("all" not in attrs and to, "not addressed to workers: %s" % attrs)
        check(len(receivers(m)) == len(to), "the filters let %s through to %s" % (attrs, receivers(m)))
    # The events of the call on A go to the one worker of B that holds the
    # resumed stream; the cancel from B goes to A's workers that hold the
    # session's control channel (the one running the call, and the other
    # if its last call's subscription is still there), none of B's (unless
    # it went to all, above).
    check(all(receivers(m) == receivers(late[0]) and receivers(m)[0].startswith("b-") and len(receivers(m)) == 1
              for m in late), [(m["attributes"], receivers(m)) for m in late])
    check(all(r.startswith("a-") for m in cancels for r in receivers(m)),
          [(m["attributes"], receivers(m)) for m in cancels])
    # Announcements (a first subscriber) go to all but their sender.
    subs = [m for m in msgs if m["attributes"].get("k") == "sub"]
    check(subs and all("all" in m["attributes"] and len(receivers(m)) == 3 for m in subs),
          [(m["attributes"], receivers(m)) for m in subs])
    a.stop()
    b.stop()


def test_a_missing_topic(t):
    """Without create_topic the topic must exist: mcpd -t and a start say
    it does not (the master asks the service when it reads the file); a
    topic deleted afterwards is said by the workers, which are ready once
    it is there again."""
    fs, ps = firestore_emulator(t), pubsub_emulator(t)
    port = free_port()
    conf = ("listen: [127.0.0.1:%d]\nworkers: 1\nstorage: { plugin: firestore, project: %s, endpoint: \"%s\" }\n"
            "transport: { plugin: pubsub, project: %s, endpoint: \"%s\", topic: absent }\n"
            "request_state: { key_file: %s }\n" % (port, PROJECT, fs.url, PROJECT, ps.url, key_file(t)))
    path = os.path.join(t.dir, "check.yaml")
    with open(path, "w") as f:
        f.write(conf)
    rc, out, err = run_mcpd("-t", "-c", path)
    check(rc != 0 and "topic absent does not exist in project test-project" in out + err, (rc, out, err))
    topic = "/v1/projects/%s/topics/absent" % PROJECT
    check(ps.rest("PUT", topic, {})[0] == 200)
    d = t.mcpd(conf)
    d.start(wait_url_port=port)
    wait_for(lambda: http(port, "GET", "/readyz")[0] == 200, timeout=15, what="ready with the topic")
    # Deleted while the worker runs: its pull finds its subscription gone
    # (the emulator drops a topic's subscriptions with it) and it says why.
    sub = subscriptions(ps)[0]
    check(ps.rest("DELETE", topic)[0] == 200)
    ps.rest("DELETE", "/v1/projects/%s/subscriptions/%s" % (PROJECT, sub))
    wait_for(lambda: "topic absent does not exist" in d.log(), timeout=30, what="the error")
    st, _, body = http(port, "GET", "/readyz")
    check(st == 503 and b"topic absent does not exist" in body, body)
    check(ps.rest("PUT", topic, {})[0] == 200)
    wait_for(lambda: all_ready(port, 3), timeout=20, what="ready once the topic exists again")
    d.stop()


def test_a_missing_project(t):
    """A project that does not exist, or that the credentials cannot see
    (Pub/Sub answers NOT_FOUND, "Requested project not found or user does
    not have access to it"): mcpd -t says so, with create_topic too (a
    topic cannot be made there); a worker that meets it when it sets up
    its subscription says so in /readyz, and is ready once it answers."""
    from test_firestore import FakeGoogle
    fs, ps = firestore_emulator(t), pubsub_emulator(t)
    g = FakeGoogle(ps.port)
    t.daemons.append(g)
    missing = (404, "NOT_FOUND", "Requested project not found or user does not have access to it (project=%s). "
               "Make sure to specify the unique project identifier and not the Google Cloud Console display name."
               % PROJECT)
    g.always = missing
    port = free_port()
    for extra in ("", ", create_topic: true"):
        conf = ("listen: [127.0.0.1:%d]\nworkers: 1\nstorage: { plugin: firestore, project: %s, endpoint: \"%s\" }\n"
                "transport: { plugin: pubsub, project: %s, endpoint: \"%s\", topic: mcpd%s }\n"
                "request_state: { key_file: %s }\n" % (port, PROJECT, fs.url, PROJECT, g.url, extra, key_file(t)))
        path = os.path.join(t.dir, "check.yaml")
        with open(path, "w") as f:
            f.write(conf)
        rc, out, err = run_mcpd("-t", "-c", path)
        check(rc != 0 and "pubsub: project test-project not found, or the credentials have no access to it" in
              out + err, (extra, rc, out, err))
    # The master's check passes; the worker's set-up meets the missing
    # project.
    def after_the_first(method, path, headers, body):
        return missing if method != "GET" else None
    g.always = after_the_first
    d = t.mcpd(conf)
    d.start(wait_url_port=port)
    wait_for(lambda: "project test-project not found" in d.log(), timeout=15, what="the error")
    # (/readyz names storage first while firestore is being checked)
    wait_for(lambda: b"pubsub: project test-project not found" in http(port, "GET", "/readyz")[2], timeout=10,
             what="/readyz to say why")
    check(http(port, "GET", "/readyz")[0] == 503)
    g.always = None
    wait_for(lambda: all_ready(port, 3), timeout=20, what="ready once the project answers")
    d.stop()


def test_configuration_errors(t):
    env = {"GOOGLE_CLOUD_PROJECT": "", "GCLOUD_PROJECT": "", "PUBSUB_EMULATOR_HOST": ""}
    ep = "endpoint: \"http://127.0.0.1:%d\"" % free_port()
    check_config_errors(t, [
        ("transport: { plugin: pubsub, project: my-proj, %s }\n" % ep, r"bad\.yaml.*pubsub needs topic"),
        ("transport: { plugin: pubsub, topic: t1x, %s }\n" % ep, r"pubsub needs project"),
        ("transport: { plugin: pubsub, project: my-proj, topic: \"a b\", %s }\n" % ep, r"bad\.yaml:\d+.*topic must be"),
        ("transport: { plugin: pubsub, project: my-proj, topic: goog1, %s }\n" % ep, r"bad\.yaml:\d+.*topic must be"),
        ("transport: { plugin: pubsub, project: my-proj, topic: t1x, subscription_prefix: \"no/slash\", %s }\n" % ep,
         r"bad\.yaml:\d+.*subscription_prefix"),
        ("transport: { plugin: pubsub, project: my-proj, topic: t1x, wait: 2m, %s }\n" % ep, r"bad\.yaml:\d+.*wait must be"),
        ("transport: { plugin: pubsub, project: my-proj, topic: t1x, subscription_ttl: 1h, %s }\n" % ep,
         r"bad\.yaml:\d+.*subscription_ttl must be"),
        ("transport: { plugin: pubsub, project: my-proj, topic: t1x, colour: red }\n", r"bad\.yaml:\d+.*colour"),
        ("transport: { plugin: pubsub, project: my-proj, topic: t1x, endpoint: \"ftp://x\" }\n", r"http or https"),
    ], env=env)
    # An endpoint where nothing listens: the topic could not be checked,
    # which is not an error.
    out = check_config_valid(t, "transport: { plugin: pubsub, project: my-proj, topic: t1x, %s }\n" % ep, env=env)
    check("topic t1x not checked" in out, out)


def test_emulator_restarted_under_load(t):
    """The Pub/Sub emulator stopped and started again (it keeps nothing:
    the topic and the subscriptions are gone) while calls go on: no crash,
    /readyz says why meanwhile; afterwards each worker has made its
    subscription again and messages cross instances again."""
    fs, ps = firestore_emulator(t), pubsub_emulator(t)
    (a, pa), (b, pb) = instances(t, fs, ps, n=2)
    sid = mcp_session(pa)
    load = Load([pb], sid)
    statuses = load.statuses
    try:
        load.wait(10)
        ps.stop()

        def down_everywhere():
            answers = [http(pa, "GET", "/readyz") for _ in range(6)]
            return all(st == 503 and b"pubsub" in body for st, _, body in answers)
        wait_for(down_everywhere, timeout=15, what="/readyz 503 on every worker, saying why, while it is down")
        check(http(pa, "GET", "/healthz")[0] == 200)
        ps.start()
        for port in (pa, pb):
            wait_for(lambda: all_ready(port, 6), timeout=30, what="ready again")
        load.wait(10)
    finally:
        load.stop()
    check(set(statuses) <= {200, 503}, sorted(set(statuses)))
    check(statuses[-5:] == [200] * 5, statuses[-20:])
    wait_for(lambda: len(subscriptions(ps)) == 4, timeout=20, what="the subscriptions made again")
    list_changed_crosses(pa, pb, sid)
    elicitation_crosses(pa, pb, mcp_session(pa, caps={"elicitation": {}}))
    a.stop()
    b.stop()


def test_both_emulators_killed_twice_under_load(t):
    """Both emulators killed (SIGKILL) at once while two instances serve
    tool calls and new sessions, and started again; twice. While they are
    down every request is answered within its bound (200 from what a
    worker holds, else 503), /healthz all along, /readyz 503 saying why;
    after each restart the workers are ready, new sessions and calls in
    them work (the old one went with the emulator), the subscriptions are
    made again, and messages cross instances again; no worker died."""
    fs, ps = firestore_emulator(t), pubsub_emulator(t)
    (a, pa), (b, pb) = instances(t, fs, ps, n=2)
    sids = [mcp_session(pa)]              # the calls' session (a new one after each restart)
    results = []
    stop = threading.Event()
    init = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "load", "version": "1"}}})

    def load(port, kind):
        i = 0
        while not stop.is_set():
            i += 1
            t0 = time.monotonic()
            if kind == "call":
                st = rpc(port, sids[-1], "tools/call", {"name": "where", "arguments": {}}, id=i, timeout=20)[0]
            else:
                st = http(port, "POST", "/mcp", init, {"Content-Type": "application/json",
                          "Accept": "application/json, text/event-stream"}, timeout=20)[0]
            results.append((kind, st, time.monotonic() - t0))
    ths = [threading.Thread(target=load, args=(pb, "call")), threading.Thread(target=load, args=(pa, "init"))]
    for th in ths:
        th.start()
    try:
        for _ in range(2):
            wait_for(lambda: len(results) > 20, what="load")
            n0 = len(results)
            fs.kill()
            ps.kill()
            t0 = time.monotonic()
            while time.monotonic() - t0 < 5:
                for port in (pa, pb):
                    check(http(port, "GET", "/healthz")[0] == 200)
                time.sleep(0.5)
            for port in (pa, pb):
                st, _, body = http(port, "GET", "/readyz")
                check(st == 503 and (b"firestore" in body or b"pubsub" in body), body)
            down = results[n0:]
            check(len(down) >= 4 and {r[1] for r in down} <= {200, 503}, down)
            check(max(r[2] for r in down) < 5, "a request took %.1fs while the emulators were down"
                  % max(r[2] for r in down))
            fs.start()
            ps.start()
            for port in (pa, pb):
                wait_for(lambda: all_ready(port, 6), timeout=40, what="ready again")
            # The calls' session went with the emulator (404): a new one.
            sids.append(mcp_session(pa))
            n = len(results)
            wait_for(lambda: len(results) > n + 20, what="load after the restart")
            after = results[-10:]
            check(all(st == 200 for _, st, _ in after), after)
            results.clear()
    finally:
        stop.set()
        for th in ths:
            th.join()
    wait_for(lambda: len(subscriptions(ps)) == 4, timeout=20, what="the subscriptions made again")
    sid = mcp_session(pa)
    list_changed_crosses(pa, pb, sid)
    cancel_crosses(t, pa, pb, sid, "after")
    elicitation_crosses(pa, pb, mcp_session(pa, caps={"elicitation": {}}))
    for d in (a, b):
        check(d.proc.poll() is None and not re.search(r"worker \d+ \(pid \d+\) .*respawning|new worker", d.log()),
              d.log()[-3000:])
    a.stop()
    b.stop()


def test_an_emulator_that_hangs(t):
    """The emulator stops answering (SIGSTOP) without closing its
    connections: the pull and the calls end at their time bounds, /readyz
    says pubsub is not answering while /healthz is answered all along, and
    once it answers again the worker pulls and is ready again."""
    ps = pubsub_emulator(t)
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\nstorage: { plugin: lmdb, path: %s }\n"
               "transport: { plugin: pubsub, project: %s, endpoint: \"%s\", topic: mcpd, create_topic: true, "
               "wait: 2s, timeout: 500ms }\n%s" % (port, os.path.join(t.dir, "state"), PROJECT, ps.url,
                                                   TOOLS % {"name": "A"}))
    d.start(wait_url_port=port)
    workers_ready(port, 1, timeout=20)
    transport_hangs(d, port, ps, "pubsub", 15)
    d.stop()
