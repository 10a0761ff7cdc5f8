"""The sqs transport plugin (plugins/sqs: SNS fan-out to a queue per
worker) with the dynamodb storage, against moto's server with IAM
authentication on (awspeer.Moto): the transport suite, mcpd instances
sharing sessions, cancellation, elicitation answers, Last-Event-ID
resumption, list changes and the internal authorization server's state
through AWS services only, the conformance suite behind a balancer, the
queues of a dead instance swept, a missing topic."""

import json
import os
import re
import time

from awspeer import AwsRelay, moto_server
from harness import (Skip, call_tool, check, check_config_errors, check_config_valid, conformance_behind_balancer,
                     conformance_config, deleted_everywhere, free_port, http, key_file, mcp_session, node_peers_ready,
                     rpc, run_mcpd, run_unit_suite, serve, start_instances, transport_hangs, wait_for, workers_ready)
from test_redis import (TOOLS, cancel_crosses, elicitation_crosses, list_changed_crosses, post_stream, read_until,
                        resume_crosses)


def backends(t, m, prefix="q", transport_extra="", topic="mcpd"):
    return ("storage: { plugin: dynamodb, table: mcpd, endpoint: \"%s\", create_table: true }\n"
            "transport: { plugin: sqs, endpoint: \"%s\", topic: %s, create_topic: true, queue_prefix: \"%s-\"%s }\n"
            "request_state: { key_file: %s }\n" % (m.url, m.url, topic, prefix, transport_extra, key_file(t)))


def instances(t, m, n=3, workers=2, transport_extra="", extra="", env=None, topic="mcpd"):
    """n instances, named A, B, C...; returns [(daemon, port)]."""
    return start_instances(t, n, lambda name: backends(t, m, transport_extra=transport_extra, topic=topic) + extra +
                           TOOLS % {"name": name}, workers, env=dict(m.env(), **(env or {})), timeout=20)


ROUTE_TOOLS = """
tools:
  - name: where
    description: The instance that runs the tool.
    shell: 'echo %(name)s'
  - name: chatty
    description: Twenty progress events, a little apart.
    shell: 'for i in $(seq 1 20); do mcpd-tool progress $i 20; sleep 0.1; done; echo done'
"""


def spy_on(m, daemons, workers):
    """For each worker's queue of each daemon, a queue of the test's own
    subscribed to the topic with that queue's filter policy as mcpd made
    it: it gets what SNS delivers to the worker. {queue name: (daemon
    index, spy url)}."""
    sns, sqs = m.client("sns"), m.client("sqs")
    owner = {}
    for i, d in enumerate(daemons):
        for name in re.findall(r"sqs: queue (\S+) on topic", d.log()):
            owner[name] = i
    topic = [x["TopicArn"] for x in sns.list_topics()["Topics"] if x["TopicArn"].endswith(":mcpd")][0]
    spies = {}
    for sub in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]:
        name = sub["Endpoint"].rsplit(":", 1)[1]
        policy = sns.get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])["Attributes"]["FilterPolicy"]
        url = sqs.create_queue(QueueName="spy-" + name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn,
                      Attributes={"RawMessageDelivery": "true", "FilterPolicy": policy})
        spies[name] = (owner[name], url)
    check(len(spies) == workers * len(daemons) and len(owner) == len(spies), (spies, owner))
    return spies


def spied(m, url, prefix):
    """What a spy queue got on channels starting with prefix: a list of
    each message's "to" attribute (None when it had none)."""
    sqs, out, empty = m.client("sqs"), [], 0
    while empty < 2:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                  MessageAttributeNames=["All"]).get("Messages", [])
        empty = empty + 1 if not got else 0
        for msg in got:
            a = msg.get("MessageAttributes", {})
            if a.get("channel", {}).get("StringValue", "").startswith(prefix) and "kind" not in a:
                out.append(a.get("to", {}).get("StringValue"))
    return out


def test_a_message_reaches_only_the_workers_that_hold_its_channel(t):
    """A tool runs on A; its client leaves A and resumes on B, so A sends
    the rest of the call's events to the worker of B that holds the
    session's stream. Those of the first presence_timeout go to all (the
    first asks who holds the channel); the rest are addressed to that
    worker: none of them reaches C's queue (watched by a spy queue with
    its filter policy, as every worker's is), and the client gets every
    event once, in order. Once B's stream is gone, B says so to A when A
    next sends it something, and A's messages then go nowhere."""
    m = moto_server(t)
    # One worker each: the same worker of A publishes all along.
    insts = start_instances(t, 3, lambda name: backends(t, m) + ROUTE_TOOLS % {"name": name}, 1, env=m.env(),
                            timeout=20)
    (a, pa), (b, pb), (c, pc) = insts
    spies = spy_on(m, [d for d, _ in insts], 1)
    sid = mcp_session(pa)
    resume_crosses(pa, pb, sid, events=20)
    to_b, elsewhere = [], {}
    for name, (owner, url) in spies.items():
        tos = spied(m, url, "toclient:")
        if owner == 1:
            to_b += [x for x in tos if x not in (None, "all")]
        else:
            elsewhere[name] = tos
    print("     addressed to B: %d; elsewhere: %s" % (len(to_b), {k: len(v) for k, v in elsewhere.items()}))
    # Most events went to B's worker, addressed to it alone.
    check(len(to_b) >= 8 and all(json.loads(x) == [json.loads(to_b[0])[0]] for x in to_b), to_b)
    # Elsewhere: only what went to all, while the route was learned.
    for name, tos in elsewhere.items():
        check(len(tos) < len(to_b) and all(x == "all" for x in tos), "%s got %s" % (name, tos))

    # The call is over, B's stream with it. Another call's events, its
    # client gone: the first goes to B's worker, which says it holds the
    # channel no more; then they go nowhere.
    s = post_stream(pa, sid, {"jsonrpc": "2.0", "id": 12, "method": "tools/call",
                               "params": {"name": "chatty", "arguments": {}, "_meta": {"progressToken": "q"}}})
    read_until(s, b"notifications/progress")
    s.close()
    time.sleep(2.5)
    after = {name: spied(m, url, "toclient:") for name, (owner, url) in spies.items()}
    print("     then, to the stream gone: %s" % {k: len(v) for k, v in after.items()})
    check(sum(len(v) for v in after.values()) <= 4 and all(x not in (None, "all") for v in after.values() for x in v),
          after)


def test_transport_suite_against_sqs(t):
    """The unit suite of the network transports, against moto: two plugin
    instances in one process, messages on awkward channel names, counts of
    subscribers across them, a service that is not there; a holder
    learned late is sent what it missed; answers that wait together leave
    in one SendMessageBatch (counted by a relay in front of moto), and the
    messages received are deleted in batches."""
    m = moto_server(t)
    relay = serve(t, AwsRelay(m.port))
    run_unit_suite("transport", 5, env=dict(m.env(), MCPD_TEST_SQS_ENDPOINT=relay.url), unset=["MCPD_TEST_NATS_URL"],
                   timeout=300)
    batches = [json.loads(body) for action, body in relay.calls if action == "SendMessageBatch"]
    answers = [e for b in batches for e in b["Entries"]]
    check(any(len(b["Entries"]) > 1 for b in batches), "no answers sent together: %s" % batches)
    check(all(e["MessageAttributes"]["kind"]["StringValue"] in ("count", "gone") for e in answers), answers)
    deletes = [json.loads(body) for action, body in relay.calls if action == "DeleteMessageBatch"]
    check(any(len(d["Entries"]) > 1 for d in deletes), "no messages deleted together")
    singles = sum(1 for action, _ in relay.calls if action == "SendMessage")
    check(any(action == "PublishBatch" for action, _ in relay.calls), "no messages published together")
    print("     answers: %d in %d SendMessageBatch, %d alone" % (len(answers), len(batches), singles))


def test_a_burst_is_published_together(t):
    """Seventy messages published in one loop turn (forty channels, thirty
    on one more) all arrive, and each publisher hears of its own; they
    leave in PublishBatch calls from the first (none alone in a Publish
    while calls are free: the first four of a burst went so), and a batch
    in which SNS refused one entry (the relay says so, as SNS does: a
    member of <Failed>) fails that message's publisher alone (all were told
    it was published). A burst before it, which the relay refuses as an
    unavailable service would, fails every publisher's call, and the
    plugin goes on."""
    import urllib.parse
    m = moto_server(t)
    relay = serve(t, AwsRelay(m.port))

    def refuse(action, body, status, data):
        form = dict(urllib.parse.parse_qsl(body.decode(errors="replace")))
        if action == "Publish" and form.get("Message") == "refuse-me":
            return 400, (b'<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameter</Code>'
                         b'<Message>refused by the test</Message></Error></ErrorResponse>')
        if action != "PublishBatch" or "refuse-me" not in form.values():
            return None
        ids = {v: k.split(".")[2] for k, v in form.items() if k.endswith(".Id")}
        bad = [k.split(".")[2] for k, v in form.items() if k.endswith(".Message") and v == "refuse-me"]
        ok = "".join("<member><Id>%s</Id><MessageId>m%s</MessageId></member>" % (i, i) for i in ids.values()
                     if i not in bad)
        failed = "".join("<member><Id>%s</Id><Code>InternalError</Code><Message>refused by the test</Message>"
                         "<SenderFault>false</SenderFault></member>" % i for i in bad)
        return 200, ('<PublishBatchResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishBatchResult>'
                     '<Successful>%s</Successful><Failed>%s</Failed></PublishBatchResult><ResponseMetadata>'
                     '<RequestId>r</RequestId></ResponseMetadata></PublishBatchResponse>' % (ok, failed)).encode()
    relay.rewrite = refuse

    def down(action, body):
        form = dict(urllib.parse.parse_qsl(body.decode(errors="replace")))
        if action in ("Publish", "PublishBatch") and any(re.fullmatch(r"x\d+", v) for v in form.values()):
            return 503, ("<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code>"
                         "<Message>down for the test</Message></Error></ErrorResponse>")
        return None
    relay.refuse = down
    run_unit_suite("transport", 1, env=dict(m.env(), MCPD_TEST_SQS_ENDPOINT=relay.url, MCPD_TEST_BURST="1",
                                            MCPD_TEST_BURST_DOWN="1",
                                            CK_RUN_CASE="burst", MCPD_TEST_FAIL_BODY="refuse-me"),
                   unset=["MCPD_TEST_NATS_URL", "MCPD_TEST_PUBSUB_ENDPOINT", "MCPD_TEST_AMQP_URL"], timeout=120)
    calls = []
    for action, body in relay.calls:
        if action in ("Publish", "PublishBatch"):
            form = dict(urllib.parse.parse_qsl(body.decode(errors="replace")))
            msgs = [v for k, v in form.items() if k.endswith("Message") and re.fullmatch(r"[bs]\d+|refuse-me", v)]
            if msgs:
                calls.append((action, msgs))
    many = [c for c in calls if any(re.fullmatch(r"b\d+", v) for v in c[1])]
    check(many and all(a == "PublishBatch" for a, _ in many) and len(many) <= 4,
          "the forty channels' messages in %d calls: %s" % (len(many), [(a, len(c)) for a, c in many]))
    print("     %d messages in %d calls (%d PublishBatch)" % (sum(len(c) for _, c in calls), len(calls),
                                                           sum(1 for a, _ in calls if a == "PublishBatch")))


def test_a_session_is_served_by_every_instance(t):
    m = moto_server(t)
    (a, pa), (b, pb), (c, pc) = instances(t, m)
    sid = mcp_session(pa)
    check(call_tool(pb, sid, "where") == "B" and call_tool(pc, sid, "where") == "C")
    for port in (pa, pb, pc):
        st, r, _ = rpc(port, sid, "tools/list", {})
        check(st == 200 and len(r["result"]["tools"]) == 6, (port, st, r))
    queues = m.client("sqs").list_queues(QueueNamePrefix="q-").get("QueueUrls", [])
    check(len(queues) == 6, "a queue per worker of each instance: %s" % queues)
    deleted_everywhere(pb, sid, (pa, pb, pc))
    for d, _ in ((a, pa), (b, pb), (c, pc)):
        d.stop()
    # A worker that stops takes its queue and its subscription away.
    check(m.client("sqs").list_queues(QueueNamePrefix="q-").get("QueueUrls", []) == [], "queues left")
    subs = m.client("sns").list_subscriptions()["Subscriptions"]
    check(subs == [], "subscriptions left: %s" % subs)


def test_cancel_from_another_instance(t):
    m = moto_server(t)
    (a, pa), (b, pb), (c, pc) = instances(t, m)
    cancel_crosses(t, pa, pc, mcp_session(pa), "sqs")
    for d, _ in ((a, pa), (b, pb), (c, pc)):
        d.stop()


def test_elicitation_answered_on_another_instance(t):
    m = moto_server(t)
    (a, pa), (b, pb) = instances(t, m, n=2)
    elicitation_crosses(pa, pb, mcp_session(pa, caps={"elicitation": {}}))
    a.stop()
    b.stop()


def test_resume_on_another_instance(t):
    """Events logged in DynamoDB: the client loses A and resumes on B from
    the last id it saw; nothing is lost or repeated."""
    m = moto_server(t)
    (a, pa), (b, pb) = instances(t, m, n=2)
    resume_crosses(pa, pb, mcp_session(pa))
    a.stop()
    b.stop()


def test_list_changed_reaches_every_instance(t):
    m = moto_server(t)
    (a, pa), (b, pb) = instances(t, m, n=2)
    list_changed_crosses(pa, pb, mcp_session(pa))
    a.stop()
    b.stop()


def test_internal_oauth_server_on_aws(t):
    """auth: internal keeps clients, codes and tokens in DynamoDB and tells
    revocations through SNS/SQS: a token issued by A is accepted by B,
    refreshed at B, revoked at A and refused everywhere."""
    from test_oauth import add_user, tokens_cross
    m = moto_server(t)
    add_user(t, "alice", "alice-pw", "tools.admin")
    pa, pb = free_port(), free_port()
    auth = "auth: { plugin: internal, users_file: users, resource: \"http://127.0.0.1:%d/mcp\" }\n" % pa
    out = []
    for name, port in (("A", pa), ("B", pb)):
        d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\n%s%s%s" % (port, backends(t, m), auth, TOOLS % {"name": name}),
                   name="%s.yaml" % name)
        d.start(env=m.env(), wait_url_port=port)
        out.append(d)
    for port in (pa, pb):
        workers_ready(port, 2, timeout=20)
    tok = tokens_cross(pa, pb)
    items = m.client("dynamodb").scan(TableName="mcpd")["Items"]
    keys = [i["pk"]["S"] for i in items]
    check(any(k.startswith("oauth:rt") for k in keys), keys)
    check(not any(tok["refresh_token"] in k for k in keys), "a token in the clear")
    for d in out:
        d.stop()


def test_conformance_behind_a_balancer(t):
    """The official conformance suite through a round-robin balancer over
    two instances sharing DynamoDB and SNS/SQS."""
    if not node_peers_ready():
        raise Skip("tests/node/node_modules missing: run scripts/install-deps.sh test")
    m = moto_server(t)
    ports = []
    for name in ("A", "B"):
        port = free_port()
        t.mcpd(conformance_config(t.dir, port, workers=2, extra=backends(t, m)),
               name=name + ".yaml").start(env=m.env(), wait_url_port=port)
        ports.append(port)
    for port in ports:
        workers_ready(port, 2, timeout=20)
    conformance_behind_balancer(t, ports, " (sqs)")


def test_queues_of_a_dead_instance_are_swept(t):
    """An instance killed with SIGKILL leaves its queues (and their
    subscriptions); a live instance deletes them once their heartbeat is
    older than queue_expiry, and keeps its own."""
    m = moto_server(t)
    sqs = m.client("sqs")
    (a, pa), = instances(t, m, n=1, transport_extra=", queue_expiry: 3s")
    dead = sqs.list_queues(QueueNamePrefix="q-")["QueueUrls"]
    check(len(dead) == 2, dead)
    tags = sqs.list_queue_tags(QueueUrl=dead[0]).get("Tags", {})
    check("mcpd-heartbeat" in tags and tags.get("mcpd-subscription", "").startswith("arn:aws:sns:"), tags)
    a.kill()
    (b, pb), = instances(t, m, n=1, transport_extra=", queue_expiry: 3s")
    mine = [u for u in sqs.list_queues(QueueNamePrefix="q-")["QueueUrls"] if u not in dead]
    check(len(mine) == 2, mine)
    wait_for(lambda: sorted(sqs.list_queues(QueueNamePrefix="q-").get("QueueUrls", [])) == sorted(mine),
             timeout=20, interval=0.3, what="the dead instance's queues swept")
    subs = [s["Endpoint"] for s in m.client("sns").list_subscriptions()["Subscriptions"]]
    check(len(subs) == 2 and not any(u.rsplit("/", 1)[1] in " ".join(subs) for u in dead), subs)
    b.wait_log("deleting queue .*no heartbeat")
    # The survivor still works, heartbeats and all.
    time.sleep(3.5)
    check(sorted(sqs.list_queues(QueueNamePrefix="q-")["QueueUrls"]) == sorted(mine), "a live queue was swept")
    sid = mcp_session(pb)
    check(call_tool(pb, sid, "where") == "A")
    b.stop()


def test_a_missing_topic(t):
    """Without create_topic the topic must exist: mcpd -t and a start say
    it does not (the master asks the service when it reads the file)."""
    m = moto_server(t)
    port = free_port()
    conf = ("listen: [127.0.0.1:%d]\nworkers: 1\nstorage: { plugin: dynamodb, table: mcpd, endpoint: \"%s\", "
            "create_table: true }\ntransport: { plugin: sqs, endpoint: \"%s\", topic: absent, queue_prefix: x- }\n"
            "request_state: { key_file: %s }\n" % (port, m.url, m.url, key_file(t)))
    path = os.path.join(t.dir, "check.yaml")
    with open(path, "w") as f:
        f.write(conf)
    rc, out, err = run_mcpd("-t", "-c", path, env=m.env())
    check(rc != 0 and "topic absent does not exist" in out + err, (rc, out, err))
    # A workers' view: the topic goes away after the file was read.
    m.client("sns").create_topic(Name="absent")
    d = t.mcpd(conf)
    d.start(env=m.env(), wait_url_port=port)
    wait_for(lambda: http(port, "GET", "/readyz")[0] == 200, timeout=15, what="ready with the topic")
    d.stop()
    arn = [x["TopicArn"] for x in m.client("sns").list_topics()["Topics"] if x["TopicArn"].endswith(":absent")][0]
    m.client("sns").delete_topic(TopicArn=arn)
    d = t.mcpd(conf, name="again.yaml")
    d.start(env=m.env())
    wait_for(lambda: "topic absent does not exist" in d.log(), timeout=15, what="the error at start")
    d.kill()
    m.client("sns").create_topic(Name="absent")
    d = t.mcpd(conf.replace("queue_prefix: x-", "queue_prefix: y-"), name="late.yaml")
    d.start(env=m.env(), wait_url_port=port)
    wait_for(lambda: http(port, "GET", "/readyz")[0] == 200, timeout=15, what="ready once the topic exists")
    d.stop()


def test_configuration_errors(t):
    env = {"AWS_ACCESS_KEY_ID": "AKIDX", "AWS_SECRET_ACCESS_KEY": "x", "AWS_REGION": "us-east-1"}
    check_config_errors(t, [
        ("transport: { plugin: sqs }\n", r"bad\.yaml.*sqs needs topic"),
        ("transport: { plugin: sqs, topic: \"a b\" }\n", r"bad\.yaml:\d+.*topic must be"),
        ("transport: { plugin: sqs, topic: t.fifo }\n", r"bad\.yaml:\d+.*needs fifo: true"),
        ("transport: { plugin: sqs, topic: t, fifo: true }\n", r"bad\.yaml:\d+.*must end in \.fifo"),
        ("transport: { plugin: sqs, topic: t, queue_prefix: \"no/slash\" }\n", r"bad\.yaml:\d+.*queue_prefix"),
        ("transport: { plugin: sqs, topic: t, wait: 30s }\n", r"bad\.yaml:\d+.*wait must be"),
        ("transport: { plugin: sqs, topic: t, queue_expiry: 1s }\n", r"bad\.yaml:\d+.*queue_expiry must be"),
        ("transport: { plugin: sqs, topic: t, colour: red }\n", r"bad\.yaml:\d+.*colour"),
        ("transport: { plugin: sqs, topic: t, route_ttl: 2h }\n", r"bad\.yaml:\d+.*route_ttl must be a duration"),
    ], env=env)
    # (an endpoint where nothing listens: the check of the topic says it
    # could not ask, and that is not an error)
    out = check_config_valid(t, "transport: { plugin: sqs, topic: \"arn:aws:sns:us-east-1:1:t.fifo\", fifo: true, "
                             "wait: 5s, queue_expiry: 1h, route_ttl: 0, endpoint: \"http://127.0.0.1:%d\" }\n"
                             % free_port(), env=env)
    check("topic arn:aws:sns:us-east-1:1:t.fifo not checked" in out, out)


def test_fifo_topic_and_queues(t):
    """fifo: true: a FIFO topic and FIFO queues, each channel a message
    group; a list change and an elicitation answer cross instances as
    with a standard topic."""
    m = moto_server(t)
    (a, pa), (b, pb) = instances(t, m, n=2, transport_extra=", fifo: true", topic="mcpd.fifo")
    queues = m.client("sqs").list_queues(QueueNamePrefix="q-")["QueueUrls"]
    check(len(queues) == 4 and all(u.endswith(".fifo") for u in queues), queues)
    list_changed_crosses(pa, pb, mcp_session(pa))
    elicitation_crosses(pa, pb, mcp_session(pa, caps={"elicitation": {}}))
    a.stop()
    b.stop()


def test_an_emulator_that_hangs(t):
    """moto stops answering (SIGSTOP) without closing its connections: the
    long poll and the publishes end at their time bounds, /readyz says
    sqs is not answering while /healthz is answered all along, and once
    moto answers again the worker polls and is ready again."""
    m = moto_server(t)
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\nstorage: { plugin: lmdb, path: %s }\n"
               "transport: { plugin: sqs, endpoint: \"%s\", topic: mcpd, create_topic: true, queue_prefix: h-, "
               "wait: 1s, timeout: 500ms }\n%s" % (port, os.path.join(t.dir, "state"), m.url, TOOLS % {"name": "A"}))
    d.start(env=m.env(), wait_url_port=port)
    workers_ready(port, 1, timeout=20)
    transport_hangs(d, port, m, "sqs", 10)
    d.stop()
