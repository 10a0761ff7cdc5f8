"""Several mcpd instances delivering session messages to each other through
an AMQP 1.0 broker (plugins/amqp), with their sessions in a real Redis.
The broker is a real RabbitMQ (its AMQP 1.0 plugin) started in the test's
directory; what no broker here has (ActiveMQ's topic:// addresses, Service
Bus's $cbs and subscriptions, faults on demand) is played by fakebroker.py
on python3-qpid-proton. Each instance is a separate master with its own
workers and port, as on separate hosts."""

import json
import os
import re
import threading
import time

from amqppeer import fake_broker, make_ca, rabbitmq_server
from harness import (MCP_HEADERS, Load, Skip, TestFailure, all_ready, call_tool, check, check_config_errors,
                     check_config_valid, check_not_ready, conformance_behind_balancer, conformance_config, free_port,
                     http, key_file, make_cert, mcp_session, node_peers_ready, redis_server, rpc, run_unit_suite,
                     serve, start_instances, starts_before, wait_for, workers_ready)
from test_nats import read_until
from test_redis import TOOLS, cancel_crosses, elicitation_crosses, get_stream, post_stream, resume_crosses


def backends(t, redis, url, extra=", flavor: rabbitmq"):
    return ("storage: { plugin: redis, url: \"%s\" }\n"
            "transport: { plugin: amqp, url: \"%s\"%s, heartbeat: 500ms }\n"
            "request_state: { key_file: %s }\n" % (redis.url, url, extra, key_file(t)))


def instances(t, redis, url, extra=", flavor: rabbitmq", n=2, workers=2, ready=True):
    """n instances, named A, B, C...; returns [(daemon, port)]."""
    return start_instances(t, n, lambda name: backends(t, redis, url, extra) + TOOLS % {"name": name}, workers,
                           ready)


def list_changed_crosses(pa, pb, sid):
    """A GET stream held by A gets the list_changed caused by a call on B
    (once B has heard that A holds the stream's channel: the call is made
    again until then, a few times at most)."""
    g = get_stream(pa, sid)
    try:
        data = read_until(g, b"\r\n\r\n")
        check(data.startswith(b"HTTP/1.1 200"), data[:200])
        for attempt in range(20):
            check(call_tool(pb, sid, "change") == "changed")
            try:
                read_until(g, b"notifications/tools/list_changed", data, timeout=0.5)
                return attempt
            except TestFailure:
                continue
        raise TestFailure("A's stream never got B's list_changed")
    finally:
        g.close()


def no_crash(*daemons):
    for d in daemons:
        check("exited with status" not in d.log() and "killed by signal" not in d.log(), d.log()[-2000:])


def test_transport_suite_against_rabbitmq(t):
    """The unit suite of the transport against RabbitMQ's AMQP 1.0
    addresses on a topic exchange: delivery and has_subscribers between
    two plugin instances, channel names that must not collide, bytes and
    sizes, failing fast while down."""
    rabbit = rabbitmq_server(t)
    run_unit_suite("transport", 3, env={"MCPD_TEST_AMQP_URL": rabbit.url, "MCPD_TEST_AMQP_FLAVOR": "rabbitmq"},
                   unset=("MCPD_TEST_NATS_URL", "MCPD_TEST_AMQP_MAX_MESSAGE"))


def test_transport_suite_on_activemq_addresses(t):
    """The same suite with flavor activemq (topic:// addresses) on the fake
    broker, which allows messages of 4096 bytes at most: one over it is an
    error the publisher hears (and the log says), the link goes on."""
    broker = fake_broker(t, ["--max-message", "4096"])
    run_unit_suite("transport", 3, env={"MCPD_TEST_AMQP_URL": broker.url, "MCPD_TEST_AMQP_FLAVOR": "activemq",
                                        "MCPD_TEST_AMQP_MAX_MESSAGE": "4096"}, unset=("MCPD_TEST_NATS_URL",))
    check("link receiver topic://" in broker.log() and "link sender topic://" in broker.log(), broker.log()[-800:])


def test_a_session_is_served_across_instances(t):
    """list_changed, cancellation, an elicitation answered on B for a tool
    running on A, and progress resumed on B while A's tool runs."""
    redis, rabbit = redis_server(t), rabbitmq_server(t)
    (a, pa), (b, pb) = instances(t, redis, rabbit.url)
    sid = mcp_session(pa, caps={"elicitation": {}})
    check(call_tool(pb, sid, "where") == "B")
    list_changed_crosses(pa, pb, sid)
    cancel_crosses(t, pa, pb, sid, "first")
    elicitation_crosses(pa, pb, sid, read=read_until)
    check("was found in storage" not in a.log(), "the answer came through storage, not AMQP")
    resume_crosses(pa, pb, sid, read=read_until)
    st, _, _ = http(pb, "DELETE", "/mcp", None, {"Mcp-Session-Id": sid})
    check(st == 200)
    check(rpc(pa, sid, "ping")[0] == 404, "A still serves the session deleted on B")
    no_crash(a, b)
    a.stop()
    b.stop()


def test_rabbitmq_restart_under_load(t):
    """RabbitMQ stops while two instances serve a stream of calls: the
    calls go on (200) or are refused (503) while it is down, /readyz says
    why, nothing crashes; once it is back every worker is ready again,
    the last calls all succeed and messages cross again."""
    redis, rabbit = redis_server(t), rabbitmq_server(t)
    (a, pa), (b, pb) = instances(t, redis, rabbit.url)
    sid = mcp_session(pa)
    list_changed_crosses(pa, pb, sid)
    load = Load((pa, pb), sid)
    try:
        load.wait(30)
        rabbit.stop()
        for port in (pa, pb):
            wait_for(lambda: http(port, "GET", "/readyz")[0] == 503, timeout=15, what="not ready")
        check_not_ready(pb, b"amqp", healthz=1)
        load.wait(20)
        rabbit.start()
        for port in (pa, pb):
            wait_for(lambda: all_ready(port, times=6), timeout=30, what="ready again")
        load.wait(30)
    finally:
        load.stop()
    check(set(load.statuses) <= {200, 503}, "statuses seen: %s" % sorted(set(load.statuses)))
    check(load.statuses[-20:] == [200] * 20, load.statuses[-40:])
    for d in (a, b):
        d.wait_log("amqp: connected again")
    list_changed_crosses(pa, pb, sid)
    cancel_crosses(t, pa, pb, sid, "restart")
    no_crash(a, b)
    a.stop()
    b.stop()


class StreamReader:
    """Reads a held GET stream on a thread, counting the list_changed
    notifications it brings."""

    def __init__(self, sock):
        self.sock, self.data, self.ended = sock, b"", False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        self.sock.settimeout(None)
        while True:
            try:
                c = self.sock.recv(65536)
            except OSError:
                c = b""
            if not c:
                self.ended = True
                return
            self.data += c

    def changes(self):
        return self.data.count(b"notifications/tools/list_changed")


def test_rabbitmq_killed_under_load(t):
    """RabbitMQ is killed (SIGKILL: no close frames, its sockets reset)
    while two instances serve calls and B publishes list_changed to a
    stream that A holds: meanwhile calls get 200 or 503 and nothing
    crashes (on the sanitizer build: no leak of the messages that could
    not be sent); once it is back every worker is ready, the stream A
    held all along gets B's messages again, without being opened anew."""
    redis, rabbit = redis_server(t), rabbitmq_server(t)
    (a, pa), (b, pb) = instances(t, redis, rabbit.url)
    sid = mcp_session(pa)
    list_changed_crosses(pa, pb, sid)
    g = get_stream(pa, sid)
    check(read_until(g, b"\r\n\r\n").startswith(b"HTTP/1.1 200"))
    stream = StreamReader(g)
    changes, done = [], threading.Event()

    def publish():
        i = 0
        while not done.is_set():
            i += 1
            st, _, _ = rpc(pb, sid, "tools/call", {"name": "change", "arguments": {}}, id=100000 + i, timeout=10)
            changes.append(st)
            time.sleep(0.02)

    publisher = threading.Thread(target=publish)
    publisher.start()
    load = Load((pa, pb), sid)
    try:
        load.wait(30)
        wait_for(lambda: stream.changes() > 5, timeout=15, what="B's messages on A's stream")
        rabbit.kill()
        for port in (pa, pb):
            wait_for(lambda: http(port, "GET", "/readyz")[0] == 503, timeout=15, what="not ready")
        n = len(changes)
        wait_for(lambda: len(changes) > n + 20, timeout=30, what="publishes while the broker is down")
        load.wait(20)
        rabbit.start()
        for port in (pa, pb):
            wait_for(lambda: all_ready(port, times=6), timeout=30, what="ready again")
        seen = stream.changes()
        wait_for(lambda: stream.changes() > seen + 5, timeout=15, what="B's messages on the stream A held")
        load.wait(30)
    finally:
        done.set()
        load.stop()
        publisher.join()
    check(not stream.ended, "A's stream ended: %r" % stream.data[-300:])
    check(set(load.statuses) <= {200, 503}, "statuses seen: %s" % sorted(set(load.statuses)))
    check(set(changes) <= {200, 503}, "publishing calls: %s" % sorted(set(changes)))
    check(load.statuses[-20:] == [200] * 20, load.statuses[-40:])
    check(changes[-10:] == [200] * 10, changes[-20:])
    for d in (a, b):
        d.wait_log(r"amqp: lost the connection to 127\.0\.0\.1:%d: the connection to 127\.0\.0\.1:%d "
                   r"(failed: Connection reset by peer|was closed by the broker)" % (rabbit.port, rabbit.port))
        d.wait_log("amqp: connected again")
    g.close()
    cancel_crosses(t, pa, pb, sid, "killed")
    no_crash(a, b)
    a.stop()
    b.stop()


def test_starts_before_rabbitmq(t):
    """Instances whose RabbitMQ is not up yet start, serve /healthz, are
    not ready and say why; they become ready without a restart once it
    runs, and messages cross."""
    redis = redis_server(t)
    rabbit = rabbitmq_server(t, start=False)
    (a, pa), (b, pb) = instances(t, redis, rabbit.url, ready=False)
    starts_before(rabbit, (pa, pb), b"cannot connect to 127.0.0.1:%d" % rabbit.port, first_attempt=5, timeout=20)
    sid = mcp_session(pa)
    list_changed_crosses(pa, pb, sid)
    no_crash(a, b)
    a.stop()
    b.stop()


def test_wrong_credentials(t):
    """A user that RabbitMQ knows connects with SASL PLAIN (password from a
    file); with a wrong password the instance says so in its log and in
    /readyz, keeps serving /healthz, keeps trying, and does not crash."""
    redis, rabbit = redis_server(t), rabbitmq_server(t)
    rabbit.add_user("mcpd", "s3cret")
    pw = os.path.join(t.dir, "amqp.pw")
    out = []
    for name, secret in (("A", "s3cret\n"), ("B", "wrong\n")):
        with open(pw, "w") as f:
            f.write(secret)
        port = free_port()
        extra = ", flavor: rabbitmq, user: mcpd, password_file: %s" % pw
        d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\n%s%s" % (port, backends(t, redis, rabbit.url, extra),
                                                                 TOOLS % {"name": name}), name=name + ".yaml")
        d.start(wait_url_port=port)     # the master read the password file now
        out.append((d, port))
    (a, pa), (b, pb) = out
    wait_for(lambda: all_ready(pa), timeout=10, what="A ready with the right password")
    b.wait_log(r"amqp: 127\.0\.0\.1:%d refused the credentials" % rabbit.port, timeout=10)
    time.sleep(1.5)     # it keeps trying, and says so once
    check_not_ready(pb, b"refused the credentials", healthz=3)
    check(b.log().count("refused the credentials") == 1, b.log()[-1500:])
    check("connected" not in b.log(), b.log()[-1500:])
    no_crash(a, b)
    a.stop()
    b.stop()


def test_tls_and_sasl_external(t):
    """amqps:// to RabbitMQ's TLS listener, its certificate checked against
    tls_ca_file, the worker's client certificate the credentials (SASL
    EXTERNAL, the user its CN names): messages cross. A certificate the
    broker has no user for is refused, said, and leaves /readyz failing;
    a CA that did not sign the broker's certificate too."""
    certs = make_ca(t.dir, clients=("mcpd", "stranger"))
    redis = redis_server(t)
    rabbit = rabbitmq_server(t, tls=(certs["ca"][0], *certs["server"]))
    rabbit.add_user("mcpd", "unused-password")
    url = "amqps://localhost:%d" % rabbit.tls_port
    extra = ", flavor: rabbitmq, tls_ca_file: %s, tls_cert_file: %s, tls_key_file: %s" % (
        certs["ca"][0], *certs["mcpd"])
    (a, pa), (b, pb) = instances(t, redis, url, extra, workers=1)
    sid = mcp_session(pa)
    list_changed_crosses(pa, pb, sid)
    (c, pc), = instances(t, redis, url, extra.replace(certs["mcpd"][0], certs["stranger"][0]).replace(
        certs["mcpd"][1], certs["stranger"][1]), n=1, workers=1, ready=False)
    c.wait_log(r"amqp: localhost:%d refused the credentials" % rabbit.tls_port, timeout=15)
    check_not_ready(pc, b"refused the credentials", healthz=2)
    wrong_ca = os.path.join(t.dir, "cert.pem")
    make_cert(t.dir)
    (d, pd), = instances(t, redis, url, extra.replace(certs["ca"][0], wrong_ca), n=1, workers=1, ready=False)
    d.wait_log(r"amqp: .*certificate verify failed", timeout=15)
    check_not_ready(pd, b"certificate verify failed", healthz=2)
    no_crash(a, b, c, d)
    for x in (a, b, c, d):
        x.stop()


def test_a_broker_that_hangs(t):
    """RabbitMQ is stopped (SIGSTOP) with connections open: within the
    idle time-out the workers drop them and say so, /readyz fails, /healthz
    answers; an instance started meanwhile connects (TCP accepts) and
    gets no answer: not ready, never stuck. Once it runs again, both are
    ready and messages cross."""
    redis, rabbit = redis_server(t), rabbitmq_server(t)
    extra = ", flavor: rabbitmq, idle_timeout: 2s, connect_timeout: 2s"
    (a, pa), = instances(t, redis, rabbit.url, extra, n=1, workers=1)
    rabbit.pause()
    try:
        wait_for(lambda: http(pa, "GET", "/readyz")[0] == 503, timeout=10, what="A not ready")
        check_not_ready(pa, b"amqp", healthz=3)
        port = free_port()
        b = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\n%s%s" % (port, backends(t, redis, rabbit.url, extra),
                                                                 TOOLS % {"name": "B"}), name="B.yaml")
        b.start(wait_url_port=port)
        b.wait_log(r"amqp: no answer from 127\.0\.0\.1:%d within 2000 ms" % rabbit.port, timeout=10)
        check_not_ready(port, b"no answer", healthz=3)
    finally:
        rabbit.resume()
    for p in (pa, port):
        wait_for(lambda: all_ready(p), timeout=30, what="ready once the broker runs again")
    sid = mcp_session(pa)
    list_changed_crosses(pa, port, sid)
    no_crash(a, b)
    a.stop()
    b.stop()


def test_messages_go_to_holders_only(t):
    """Routing by presence, seen at the broker (which logs each message's
    address and op; "m" is a message on a channel). An elicitation's
    answer, posted on B, goes to the one worker of A that runs the tool
    and waits on its channel: one message, to that worker's address
    alone, not to "all". A tool list change, on a channel every worker
    holds, goes once to each worker but the sender, and not to "all"."""
    redis, broker = redis_server(t), fake_broker(t)
    (a, pa), (b, pb) = instances(t, redis, broker.url, ", flavor: activemq")
    sid = mcp_session(pa, caps={"elicitation": {}})
    s = post_stream(pa, sid, {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                              "params": {"name": "ask", "arguments": {}}})
    try:
        data = read_until(s, b"elicitation/create")
        ask = [json.loads(line[6:]) for line in data.decode().split("\n")
               if line.startswith("data: ") and "elicitation/create" in line][0]
        time.sleep(1.5)     # B has heard that A's worker holds the answer's channel
        mark = len(broker.log())
        st, _, _ = http(pb, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": ask["id"],
                        "result": {"action": "accept", "content": {}}}), dict(MCP_HEADERS, **{"Mcp-Session-Id": sid}))
        check(st == 202, "answer on B: %s" % st)
        data = read_until(s, b'"id":9', data)
        check(b"answer accept" in data, data[-400:])
    finally:
        s.close()
    sent = re.findall(r"^message (\S+) m$", broker.log()[mark:], re.M)
    check(len(sent) == 1 and re.fullmatch(r"topic://mcpd\.w\.[0-9a-f]+-[12]", sent[0]),
          "the answer went to %s" % sent)
    a_id = re.search(r"amqp: connected to \S+ as ([0-9a-f]+)-", a.log()).group(1)
    check(sent[0].startswith("topic://mcpd.w.%s-" % a_id), "the answer went to %s, not to A (%s)" % (sent, a_id))
    mark = len(broker.log())
    check(call_tool(pb, sid, "change") == "changed")
    wait_for(lambda: len(re.findall(r"^message \S+ m$", broker.log()[mark:], re.M)) >= 3, timeout=5,
             what="the change sent to the three other workers")
    time.sleep(0.3)
    sent = sorted(re.findall(r"^message (\S+) m$", broker.log()[mark:], re.M))
    check(len(sent) == 3 and len(set(sent)) == 3 and all(re.fullmatch(r"topic://mcpd\.w\.[0-9a-f]+-[12]", x)
                                                         for x in sent), "the change went to %s" % sent)
    no_crash(a, b)
    a.stop()
    b.stop()


def test_a_refused_address(t):
    """A broker that refuses the address the workers receive from: not
    ready, the log says the broker closed the link and why, the worker
    tries again with its back-off and serves /healthz all along."""
    redis, broker = redis_server(t), fake_broker(t, ["--refuse", ".all"])
    (a, pa), = instances(t, redis, broker.url, ", flavor: activemq", n=1, workers=1, ready=False)
    a.wait_log(r"amqp: the broker closed the link from topic://mcpd\.all: amqp:not-found: refused by the test",
               timeout=10)
    time.sleep(1)
    check_not_ready(pa, b"amqp:not-found", healthz=3)
    check(a.log().count("refused by the test") == 1, "said once: %s" % a.log()[-1500:])
    no_crash(a)
    a.stop()


def test_a_link_closed_by_the_broker(t):
    """A broker that closes the link a worker sends on (to another worker's
    address): the message is lost with an error in the log that names the
    address and the broker's reason, the worker stays connected, and a
    new link is made for later messages."""
    redis, broker = redis_server(t), fake_broker(t, ["--close-link", ".w."])
    (a, pa), (b, pb) = instances(t, redis, broker.url, ", flavor: activemq", workers=1)
    sid = mcp_session(pa)
    g = get_stream(pa, sid)
    try:
        read_until(g, b"\r\n\r\n")
        for _ in range(10):
            call_tool(pb, sid, "change")
            if "the broker closed the link to topic://mcpd.w." in b.log():
                break
            time.sleep(0.3)
    finally:
        g.close()
    b.wait_log(r"amqp: the broker closed the link to topic://mcpd\.w\.[0-9a-f]+-1: amqp:internal-error: "
               r"closed by the test")
    check(all_ready(pb), "the connection stays up")
    no_crash(a, b)
    a.stop()
    b.stop()


def sb_instances(t, redis, broker, auth, n=2, ready=True, env=None, topic="mcpd", first="A"):
    """n instances on the fake Service Bus, named from first on (a name
    each: its log is its own)."""
    cert = os.path.join(t.dir, "cert.pem")
    extra = (", flavor: servicebus, topic: %s, tls_ca_file: %s, management_url: \"https://127.0.0.1:%d\"%s%s"
             % (topic, cert, broker.admin_port, ", " if auth else "", auth))
    url = "amqps://127.0.0.1:%d" % broker.port
    out = []
    for i in range(n):
        name = chr(ord(first) + i)
        port = free_port()
        d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\n%s%s" % (port, backends(t, redis, url, extra),
                                                                 TOOLS % {"name": name}), name="%s.yaml" % name)
        d.start(env=env, wait_url_port=port)
        out.append((d, port))
    for d, port in out:
        if ready:
            workers_ready(port, 2)
    return out


def test_service_bus_addresses_and_cbs(t):
    """Flavor servicebus against the fake broker playing Service Bus over
    TLS: a SAS token signed with the key in sas_key_file is put on $cbs
    (audience sb://host/topic) before any link; both instances send to the
    topic and receive from their subscriptions (TOPIC/Subscriptions/
    mcpd-<worker>), which keep the messages whose "to" names them; a
    session's messages cross. A wrong key: refused, said, not ready."""
    make_cert(t.dir, cn="127.0.0.1")
    with open(os.path.join(t.dir, "sb.key"), "w") as f:
        f.write("c2VjcmV0LWtleS1vZi10aGUtdGVzdA==\n")
    redis = redis_server(t)
    admin = free_port()
    broker = fake_broker(t, ["--servicebus", "mcpd", "--sas-key", "c2VjcmV0LWtleS1vZi10aGUtdGVzdA==",
                             "--sas-key-name", "mcpd-send-listen", "--cert", os.path.join(t.dir, "cert.pem"),
                             "--key", os.path.join(t.dir, "key.pem"), "--admin-port", str(admin)])
    broker.admin_port = admin
    auth = "sas_key_name: mcpd-send-listen, sas_key_file: sb.key"
    (a, pa), (b, pb) = sb_instances(t, redis, broker, auth)
    check("token 200 ok" in broker.log(), broker.log()[-1000:])
    check("link sender mcpd/Subscriptions/mcpd-" in broker.log(), broker.log()[-1000:])
    # Each worker made its subscription: its rule takes its own id and
    # "all", and it deletes itself after five idle minutes.
    for d in (a, b):
        for w in (1, 2):
            me = "%s-%d" % (re.search(r"amqp: connected to \S+ as ([0-9a-f]+)-", d.log()).group(1), w)
            check("subscription mcpd-%s %s idle PT5M" % (me, sorted([me, "all"])) in broker.log(),
                  broker.log()[-1500:])
    sid = mcp_session(pa, caps={"elicitation": {}})
    list_changed_crosses(pa, pb, sid)
    elicitation_crosses(pa, pb, sid, read=read_until)
    with open(os.path.join(t.dir, "sb.key"), "w") as f:
        f.write("d3Jvbmc=\n")
    (c, pc), = sb_instances(t, redis, broker, auth, n=1, ready=False, first="C")
    c.wait_log(r"Service Bus refused to make the subscription mcpd/Subscriptions/mcpd-[0-9a-f]+-\d \(HTTP 401: "
               r"the key or token needs the Manage right; bad signature\)", timeout=10)
    check_not_ready(pc, b"refused to make the subscription", healthz=2)
    no_crash(a, b, c)
    for d in (a, b, c):
        d.stop()


def test_service_bus_token_file(t):
    """token_file: a token written by something else (an Entra ID token
    here), read again at each connection and renewal, put as type jwt."""
    make_cert(t.dir, cn="127.0.0.1")
    tok = os.path.join(t.dir, "token")
    with open(tok, "w") as f:
        f.write("eyJhbGciOi.test-token.sig\n")
    redis = redis_server(t)
    admin = free_port()
    broker = fake_broker(t, ["--servicebus", "mcpd", "--jwt", "eyJhbGciOi.test-token.sig", "--cert",
                             os.path.join(t.dir, "cert.pem"), "--key", os.path.join(t.dir, "key.pem"),
                             "--admin-port", str(admin)])
    broker.admin_port = admin
    (a, pa), (b, pb) = sb_instances(t, redis, broker, "token_file: %s" % tok)
    sid = mcp_session(pa)
    list_changed_crosses(pa, pb, sid)
    check("token 200 ok" in broker.log(), broker.log()[-1000:])
    no_crash(a, b)
    a.stop()
    b.stop()


NO_AZURE = {"AZURE_FEDERATED_TOKEN_FILE": "", "IDENTITY_ENDPOINT": "", "IDENTITY_HEADER": "", "AZURE_CLIENT_ID": "",
            "AZURE_TENANT_ID": "", "AZURE_POD_IDENTITY_AUTHORITY_HOST": "", "AZURE_AUTHORITY_HOST": ""}


def entra_broker(t, svc):
    """The fake Service Bus taking the tokens svc issued for Service Bus's
    audience, and closing a connection whose token ends unrenewed."""
    make_cert(t.dir, cn="127.0.0.1")
    admin = free_port()
    broker = fake_broker(t, ["--servicebus", "mcpd", "--jwt-issuer", svc.url, "--cert",
                             os.path.join(t.dir, "cert.pem"), "--key", os.path.join(t.dir, "key.pem"),
                             "--admin-port", str(admin)])
    broker.admin_port = admin
    return broker


def entra_env(**kw):
    env = dict(NO_AZURE)
    env.update(kw)
    return env


def test_service_bus_entra_id_workload_identity(t):
    """No key or token file: each worker trades the federated token file
    (workload identity) at the authority's token endpoint for an Entra ID
    token for https://servicebus.azure.net, puts it on $cbs as a jwt and
    sends it as a Bearer token to the management API; the broker checks
    it against what the endpoint issued. Tokens live 6 s: each is renewed
    on $cbs before it ends (the broker closes a connection whose token
    ended), with the file read again, so the connections stay up and
    messages keep crossing; no token or assertion in the log."""
    from cosmospeer import TokenService, token_in_logs
    svc = serve(t, TokenService(t.dir, lifetime=6, assertion="fed-token-1"))
    broker = entra_broker(t, svc)
    tf = os.path.join(t.dir, "federated-token")
    with open(tf, "w") as f:
        f.write("fed-token-1\n")
    redis = redis_server(t)
    env = entra_env(AZURE_FEDERATED_TOKEN_FILE=tf, AZURE_CLIENT_ID="c-mcpd", AZURE_TENANT_ID="t-mcpd",
                    AZURE_AUTHORITY_HOST=svc.url)
    (a, pa), (b, pb) = sb_instances(t, redis, broker, "", env=env)
    blog = broker.log()
    check("token 200 ok jwt" in blog and "admin 401" not in blog and "token 401" not in blog, blog[-1500:])
    check(re.search(r"^subscription mcpd-[0-9a-f]+-1 ", blog, re.M), blog[-1500:])
    check(svc.requests and all(r == ("token", "/t-mcpd/oauth2/v2.0/token", "c-mcpd") for r in svc.requests),
          svc.log())
    check(all(aud == "https://servicebus.azure.net" for _, aud in list(svc.issued.values())), svc.issued)
    a.wait_log(r"amqp: Entra ID tokens for Service Bus from workload identity \(client c-mcpd")
    sid = mcp_session(pa)
    list_changed_crosses(pa, pb, sid)
    # Renewal: the federated token rotates; over 15 s (2.5 lifetimes)
    # every connection stays up with a new token put before the last
    # ended, and messages still cross.
    with open(tf, "w") as f:
        f.write("fed-token-2\n")
    svc.assertion = "fed-token-2"
    puts = broker.log().count("token 200 ok jwt")
    time.sleep(15)
    blog = broker.log()
    check("token expired" not in blog, blog[-2000:])
    check(blog.count("token 200 ok jwt") >= puts + 4 * 2, "renewals: %d then %d" % (puts, blog.count(
        "token 200 ok jwt")))
    for d in (a, b):
        check("lost the connection" not in d.log() and "connected again" not in d.log(), d.log()[-2000:])
    check(all_ready(pa) and all_ready(pb))
    list_changed_crosses(pa, pb, sid)
    for d in (a, b):
        check(token_in_logs(d, svc) == [] and "fed-token" not in d.log(), "a token in the log")
    no_crash(a, b)
    a.stop()
    b.stop()


def test_service_bus_entra_id_managed_identity(t):
    """Managed identity through the instance metadata service (a
    user-assigned identity chosen by client_id) and through the Container
    Apps endpoint (IDENTITY_ENDPOINT, X-IDENTITY-HEADER): the resource
    asked is https://servicebus.azure.net, and messages cross."""
    from cosmospeer import TokenService
    svc = serve(t, TokenService(t.dir, identity_header="id-header-secret"))
    broker = entra_broker(t, svc)
    redis = redis_server(t)
    (a, pa), (b, pb) = sb_instances(t, redis, broker, "client_id: \"11111111-2222-3333-4444-555555555555\"",
                                    env=entra_env(AZURE_POD_IDENTITY_AUTHORITY_HOST=svc.url))
    check(svc.requests and all(r == ("managed", "/metadata/identity/oauth2/token",
                                     "11111111-2222-3333-4444-555555555555") for r in svc.requests), svc.log())
    check(all(aud == "https://servicebus.azure.net" for _, aud in list(svc.issued.values())), svc.issued)
    sid = mcp_session(pa)
    list_changed_crosses(pa, pb, sid)
    no_crash(a, b)
    a.stop()
    b.stop()
    svc.requests.clear()
    (c, pc), = sb_instances(t, redis, broker, "", n=1, first="C",
                            env=entra_env(IDENTITY_ENDPOINT=svc.url + "/msi/token", IDENTITY_HEADER="id-header-secret"))
    check(svc.requests and all(r[:2] == ("managed", "/msi/token") for r in svc.requests), svc.log())
    check("id-header-secret" not in c.log(), "the identity header in the log")
    no_crash(c)
    c.stop()


def test_service_bus_entra_id_refused(t):
    """Tokens refused: by the authority (the federated token is not what
    it takes: the log says why, with AADSTS700024, /readyz 503 says it,
    /healthz answers, no crash), then taken once the file is right
    (without a restart); and a token for another audience (token_scope),
    which the management API refuses (401, said, not ready)."""
    from cosmospeer import TokenService
    svc = serve(t, TokenService(t.dir, assertion="fed-token-good"))
    broker = entra_broker(t, svc)
    tf = os.path.join(t.dir, "federated-token")
    with open(tf, "w") as f:
        f.write("fed-token-bad\n")
    redis = redis_server(t)
    env = entra_env(AZURE_FEDERATED_TOKEN_FILE=tf, AZURE_CLIENT_ID="c-mcpd", AZURE_TENANT_ID="t-mcpd",
                    AZURE_AUTHORITY_HOST=svc.url)
    (a, pa), = sb_instances(t, redis, broker, "", n=1, ready=False, env=env)
    a.wait_log(r"azure: token from workload identity \(client c-mcpd, token file \S+\): HTTP status 401: "
               r"invalid_client: AADSTS700024", timeout=10)
    a.wait_log(r"amqp: cannot make the subscription: no Entra ID token: .*AADSTS700024", timeout=10)
    time.sleep(1)
    check_not_ready(pa, b"AADSTS700024", healthz=3)
    check("fed-token-bad" not in a.log(), "the assertion in the log")
    with open(tf, "w") as f:
        f.write("fed-token-good\n")
    wait_for(lambda: all_ready(pa), timeout=20, what="ready once the authority takes the token file")
    no_crash(a)
    a.stop()
    (b, pb), = sb_instances(t, redis, broker, "token_scope: \"https://other.example.com/.default\"", n=1,
                            ready=False, env=env, first="B")
    b.wait_log(r"Service Bus refused to make the subscription mcpd/Subscriptions/mcpd-[0-9a-f]+-\d \(HTTP 401: "
               r"the key or token needs the Manage right; bad token: a token for https://other\.example\.com, "
               r"not https://servicebus\.azure\.net\)", timeout=10)
    check_not_ready(pb, b"refused to make the subscription", healthz=2)
    no_crash(b)
    b.stop()


def says_why(port, why, timeout=15):
    """/readyz says why, at every worker (four answers in a row)."""
    def four():
        return all(why in http(port, "GET", "/readyz")[2] for _ in range(4))
    wait_for(four, timeout=timeout, what="/readyz to say %r" % why)


def test_service_bus_refuses_the_token_or_the_topic(t):
    """$cbs refuses the token (revoked, or without the Listen and Send
    rights), after the management API took it: the log says Service Bus
    refused it and why, /readyz is 503 with it, /healthz answers, the
    worker tries again with its back-off (an Entra ID token is fetched
    anew each time: the refused one is dropped), no crash. A topic that
    does not exist: the management API's 404 is said the same way."""
    from cosmospeer import TokenService
    make_cert(t.dir, cn="127.0.0.1")
    with open(os.path.join(t.dir, "sb.key"), "w") as f:
        f.write("c2VjcmV0LWtleS1vZi10aGUtdGVzdA==\n")
    svc = serve(t, TokenService(t.dir))
    admin = free_port()
    broker = fake_broker(t, ["--servicebus", "mcpd", "--sas-key", "c2VjcmV0LWtleS1vZi10aGUtdGVzdA==",
                             "--sas-key-name", "mcpd-send-listen", "--jwt-issuer", svc.url, "--cbs-refuse",
                             "--cert", os.path.join(t.dir, "cert.pem"), "--key", os.path.join(t.dir, "key.pem"),
                             "--admin-port", str(admin)])
    broker.admin_port = admin
    redis = redis_server(t)
    (a, pa), = sb_instances(t, redis, broker, "sas_key_name: mcpd-send-listen, sas_key_file: sb.key", n=1,
                            ready=False)
    a.wait_log(r"amqp: 127\.0\.0\.1:%d refused the credentials: amqp:unauthorized-access: Service Bus refused "
               r"the token for mcpd \(status 401: refused by the test\)" % broker.port, timeout=10)
    says_why(pa, b"Service Bus refused the token for mcpd")
    check_not_ready(pa, b"Service Bus refused the token for mcpd", healthz=3)
    check("token 401 refused by the test servicebus.windows.net:sastoken" in broker.log(), broker.log()[-1000:])
    (b, pb), = sb_instances(t, redis, broker, "", n=1, ready=False, first="B",
                            env=entra_env(AZURE_POD_IDENTITY_AUTHORITY_HOST=svc.url))
    b.wait_log(r"Service Bus refused the token for mcpd \(status 401: refused by the test\)", timeout=10)
    says_why(pb, b"Service Bus refused the token for mcpd")
    check_not_ready(pb, b"Service Bus refused the token for mcpd", healthz=2)
    n = len(svc.requests)
    wait_for(lambda: len(svc.requests) >= n + 2, timeout=15, what="new tokens fetched after the refusals")
    check("token 401 refused by the test jwt" in broker.log(), broker.log()[-1000:])
    (c, pc), = sb_instances(t, redis, broker, "sas_key_name: mcpd-send-listen, sas_key_file: sb.key", n=1,
                            ready=False, topic="nosuch", first="C")
    c.wait_log(r"amqp: Service Bus refused to make the subscription nosuch/Subscriptions/mcpd-[0-9a-f]+-\d "
               r"\(HTTP 404: no such entity\)", timeout=10)
    says_why(pc, b"HTTP 404: no such entity")
    check_not_ready(pc, b"HTTP 404: no such entity", healthz=2)
    no_crash(a, b, c)
    for d in (a, b, c):
        d.stop()


def test_service_bus_that_hangs(t):
    """The fake Service Bus stopped (SIGSTOP) with connections open: within
    the idle time-out the workers drop them and say so, /readyz fails,
    /healthz answers; an instance started meanwhile gets no answer from
    the management API (its PUT bounded by connect_timeout, said) and is
    not ready, never stuck. Once it runs again both are ready and
    messages cross."""
    make_cert(t.dir, cn="127.0.0.1")
    with open(os.path.join(t.dir, "sb.key"), "w") as f:
        f.write("c2VjcmV0LWtleS1vZi10aGUtdGVzdA==\n")
    admin = free_port()
    broker = fake_broker(t, ["--servicebus", "mcpd", "--sas-key", "c2VjcmV0LWtleS1vZi10aGUtdGVzdA==",
                             "--sas-key-name", "mcpd-send-listen", "--cert", os.path.join(t.dir, "cert.pem"),
                             "--key", os.path.join(t.dir, "key.pem"), "--admin-port", str(admin)])
    broker.admin_port = admin
    redis = redis_server(t)
    auth = "sas_key_name: mcpd-send-listen, sas_key_file: sb.key, idle_timeout: 2s, connect_timeout: 2s"
    (a, pa), = sb_instances(t, redis, broker, auth, n=1)
    broker.pause()
    try:
        wait_for(lambda: http(pa, "GET", "/readyz")[0] == 503, timeout=10, what="A not ready")
        check_not_ready(pa, b"amqp", healthz=3)
        (b, pb), = sb_instances(t, redis, broker, auth, n=1, ready=False, first="B")
        b.wait_log(r"amqp: cannot make the subscription: .*timed out after \d+ milliseconds", timeout=15)
        says_why(pb, b"cannot make the subscription")
        check(http(pb, "GET", "/healthz")[0] == 200)
    finally:
        broker.resume()
    for p in (pa, pb):
        wait_for(lambda: all_ready(p), timeout=30, what="ready once the broker runs again")
    sid = mcp_session(pa)
    list_changed_crosses(pa, pb, sid)
    no_crash(a, b)
    a.stop()
    b.stop()


def test_configuration_errors(t):
    with open(os.path.join(t.dir, "pw"), "w") as f:
        f.write("secret\n")
    check_config_errors(t, [
        ("transport: { plugin: amqp, flavor: rabbitmq }\n", r"bad\.yaml:\d+.*needs url"),
        ("transport: { plugin: amqp, url: \"http://x\", flavor: rabbitmq }\n", r"bad\.yaml:\d+.*url must be amqp"),
        ("transport: { plugin: amqp, url: \"amqp://h:0\", flavor: rabbitmq }\n", r"bad\.yaml:\d+.*url"),
        ("transport: { plugin: amqp, url: \"amqp://h\", flavor: kafka }\n", r"bad\.yaml:\d+.*flavor must be"),
        ("transport: { plugin: amqp, url: \"amqp://h\" }\n", r"bad\.yaml:\d+.*needs worker_address and all_address"),
        ("transport: { plugin: amqp, url: \"amqp://h\", worker_address: \"q.{id}\", all_address: a }\n",
         r"bad\.yaml:\d+.*worker_address must be an address template holding \{worker\}"),
        ("transport: { plugin: amqp, url: \"amqp://h\", flavor: rabbitmq, colour: red }\n",
         r"bad\.yaml:\d+.*unknown key \"colour\""),
        ("transport: { plugin: amqp, url: \"amqp://h\", flavor: rabbitmq, sasl: plain }\n",
         r"bad\.yaml:\d+.*sasl plain needs a user and a password"),
        ("transport: { plugin: amqp, url: \"amqp://h\", flavor: rabbitmq, sasl: external }\n",
         r"bad\.yaml:\d+.*sasl external needs a client certificate"),
        ("transport: { plugin: amqp, url: \"amqp://h\", flavor: rabbitmq, tls_ca_file: pw }\n",
         r"bad\.yaml:\d+.*need TLS"),
        ("transport: { plugin: amqp, url: \"amqps://h\", flavor: rabbitmq, user: u, password_file: /nonexistent }\n",
         r"bad\.yaml:\d+.*password_file: cannot read /nonexistent"),
        ("transport: { plugin: amqp, url: \"amqps://ns.servicebus.windows.net\", flavor: servicebus }\n",
         r"bad\.yaml:\d+.*servicebus needs topic"),
        ("transport: { plugin: amqp, url: \"amqp://ns\", flavor: servicebus, topic: t, token_file: pw }\n",
         r"bad\.yaml:\d+.*amqps:// only"),
        ("transport: { plugin: amqp, url: \"amqps://ns\", flavor: servicebus, topic: t, sas_key_file: pw, "
         "token_file: pw, sas_key_name: n }\n", r"bad\.yaml:\d+.*takes sas_key_name with sas_key_file, or token_file"),
        ("transport: { plugin: amqp, url: \"amqps://ns\", flavor: servicebus, topic: t, sas_key_file: pw }\n",
         r"bad\.yaml:\d+.*takes sas_key_name with sas_key_file"),
        ("transport: { plugin: amqp, url: \"amqps://ns\", flavor: servicebus, topic: t, token_file: pw, "
         "client_id: x }\n", r"bad\.yaml:\d+.*client_id and token_scope are for the Entra ID tokens"),
        ("transport: { plugin: amqp, url: \"amqp://h\", flavor: rabbitmq, client_id: x }\n",
         r"bad\.yaml:\d+.*are for flavor servicebus"),
        ("transport: { plugin: amqp, url: \"amqp://h\", flavor: rabbitmq, heartbeat: 5 }\n",
         r"bad\.yaml:\d+.*heartbeat"),
        ("transport: { plugin: amqp, url: \"amqp://h\", flavor: rabbitmq, tls: maybe }\n", r"bad\.yaml:\d+.*tls"),
    ])
    check_config_valid(t, "transport: { plugin: amqp, url: \"amqps://ns.servicebus.windows.net\", flavor: servicebus, "
                       "topic: mcpd, sas_key_name: send-listen, sas_key_file: pw }\n")
    # Neither a key nor a token file: Entra ID, its settings half given.
    check_config_errors(t, [("transport: { plugin: amqp, url: \"amqps://ns\", flavor: servicebus, topic: t }\n",
                             r"bad\.yaml:\d+.*no sas_key_file or token_file, and no Entra ID credentials: "
                             r"AZURE_FEDERATED_TOKEN_FILE needs AZURE_CLIENT_ID and AZURE_TENANT_ID")],
                        env=dict(NO_AZURE, AZURE_FEDERATED_TOKEN_FILE=os.path.join(t.dir, "pw")))
    check_config_valid(t, "transport: { plugin: amqp, url: \"amqps://ns.servicebus.windows.net\", flavor: servicebus, "
                       "topic: mcpd, client_id: \"11111111-2222-3333-4444-555555555555\" }\n")
    check_config_valid(t, "transport: { plugin: amqp, url: \"amqp://u:p%40ss@broker:5672/prod\", flavor: rabbitmq, "
                       "exchange: mcpd.topic }\n")
    check_config_valid(t, "transport: { plugin: amqp, url: \"amqp://broker\", worker_address: \"q/{prefix}{worker}\", "
                       "all_address: \"t/{prefix}all\" }\n")


def test_conformance_behind_a_balancer(t):
    """The official conformance suite through a round-robin balancer over
    two instances sharing Redis storage and the amqp transport on RabbitMQ."""
    if not node_peers_ready():
        raise Skip("tests/node/node_modules missing: run scripts/install-deps.sh test")
    redis, rabbit = redis_server(t), rabbitmq_server(t)
    ports = []
    for name in ("A", "B"):
        port = free_port()
        t.mcpd(conformance_config(t.dir, port, workers=2, extra=backends(t, redis, rabbit.url)),
               name=name + ".yaml").start(wait_url_port=port)
        ports.append(port)
    for port in ports:
        workers_ready(port, 2)
    conformance_behind_balancer(t, ports, " (amqp, rabbitmq)")
