"""The tasks extension (io.modelcontextprotocol/tasks, SEP-2663) under
2026-07-28: a tools/call that runs on as a task, its record in storage so
that any worker of any instance answers for it, the command where it
started; cancellation and answers reaching it from anywhere; a task's
owner, its time to live, its result limit, and its worker's death."""

import json
import os
import signal
import socket
import time

from harness import (TcpRelay, check, process_ended, check_config_errors, free_port, mcp_session, redis_server, rpc, sid_hash,
                     start_instances, wait_for)
from storage_peek import Peek
from test_auth import bearer, make_key
from test_redis import backends
from test_stateless import META, req

EXT = "io.modelcontextprotocol/tasks"
TASK_META = dict(META, **{"io.modelcontextprotocol/clientCapabilities":
                          {"elicitation": {}, "extensions": {EXT: {}}}})

TOOLS = """
tools:
  - name: wait
    description: Says it started, waits for a file, prints it.
    input: { pidfile: string, gate: string }
    shell: 'echo $$ > "$MCP_ARG_pidfile"; mcpd-tool progress 1 2 "waiting on %(name)s";
            while [ ! -e "$MCP_ARG_gate" ]; do sleep 0.05; done; cat "$MCP_ARG_gate"'
    timeout: 1m
    task: may
  - name: ask
    description: Asks a name, then greets.
    shell: 'a=$(mcpd-tool elicit --key who "Name?" "{\\"type\\":\\"object\\"}"); printf "hi %%s on %(name)s" "$(mcpd-tool get content.name "$a")"'
    task: must
  - name: big
    description: Prints 5000 bytes.
    shell: 'head -c 5000 /dev/zero | tr "\\\\0" x'
    task: may
  - name: quick
    description: Answers at once; its task is kept one second.
    shell: 'echo done'
    timeout: 1s
    task: may
    task_ttl: 1s
  - name: plain
    description: Never a task.
    shell: 'echo plain'
"""


def call(port, tool, args=None, meta=TASK_META, headers=None, id=1):
    st, _, r, _ = req(port, "tools/call", {"name": tool, "arguments": args or {}}, id=id, meta=meta,
                      name=tool, headers=headers)
    return st, r


def task(port, method, tid, extra=None, headers=None, meta=TASK_META):
    params = dict({"taskId": tid}, **(extra or {}))
    st, _, r, _ = req(port, method, params, meta=meta, name=tid, headers=headers)
    return st, r


def until(port, tid, want, headers=None, timeout=15):
    out = {}

    def ok():
        st, r = task(port, "tasks/get", tid, headers=headers)
        out["r"] = r
        return "result" in r and r["result"]["status"] in want
    try:
        wait_for(ok, timeout, "task %s to be %s" % (tid, want))
    except Exception as e:
        raise type(e)("%s; its last answer: %s" % (e, out.get("r")))
    return out["r"]["result"]


def single(t, extra="", name="A", workers=2):
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: %d\n%s%s" % (port, workers, extra, TOOLS % {"name": name})
               ).start(wait_url_port=port)
    return d, port


def test_task_across_instances(t):
    """Started on A, polled, answered and cancelled on B and C, its result
    fetched on C; A's command is the one that runs and is killed."""
    redis = redis_server(t)
    (da, pa), (db, pb), (dc, pc) = start_instances(
        t, 3, lambda name: backends(t, redis, "pubsub") + TOOLS % {"name": name}, 2)
    pid, gate = os.path.join(t.dir, "pid"), os.path.join(t.dir, "gate")
    st, r = call(pa, "wait", {"pidfile": pid, "gate": gate})
    res = r["result"]
    check(res["resultType"] == "task" and res["status"] == "working" and res["ttlMs"] == 3600000
          and "result" not in res and "requestState" not in res, res)
    tid = res["taskId"]
    wait_for(lambda: os.path.exists(pid) and os.path.getsize(pid) > 0, 10, "the command to start")
    got = until(pb, tid, ("working",))
    check(got["taskId"] == tid and got["createdAt"] == res["createdAt"], got)
    # its progress became the task's status message, seen from C
    # (at once: not at the next renewal of the record, 10s later)
    wait_for(lambda: task(pc, "tasks/get", tid)[1]["result"].get("statusMessage") == "waiting on A", 3,
             "the status message")
    with open(gate, "w") as f:
        f.write("opened")
    done = until(pc, tid, ("completed",))
    check(done["result"]["content"][0]["text"] == "opened" and not done["result"].get("isError"), done)

    # a question asked on A, answered on B, the answer reaching A's command
    st, r = call(pc, "ask")
    tid2 = r["result"]["taskId"]
    q = until(pa, tid2, ("input_required",), timeout=3)
    check(list(q["inputRequests"]) == ["who"] and q["inputRequests"]["who"]["method"] == "elicitation/create", q)
    st, r = task(pb, "tasks/update", tid2, {"inputResponses": {"who": {"action": "accept", "content": {"name": "Ada"}}}})
    check(r["result"] == {"resultType": "complete"}, r)
    done = until(pa, tid2, ("completed",))
    check(done["result"]["content"][0]["text"] == "hi Ada on C", done)

    # a cancellation from C kills the command running on A
    os.unlink(gate)
    os.unlink(pid)
    st, r = call(pa, "wait", {"pidfile": pid, "gate": gate})
    tid3 = r["result"]["taskId"]
    wait_for(lambda: os.path.exists(pid) and os.path.getsize(pid) > 0, 10, "the command to start")
    cpid = int(open(pid).read())
    st, r = task(pc, "tasks/cancel", tid3)
    check(r["result"] == {"resultType": "complete"}, r)
    check(until(pb, tid3, ("cancelled",))["status"] == "cancelled")
    wait_for(lambda: process_ended(cpid), 10, "the command killed")
    da.wait_log("task %.8s… of tool wait cancelled" % tid3)
    # cancelling again, or a finished task, is the same empty answer
    check(task(pb, "tasks/cancel", tid3)[1]["result"] == {"resultType": "complete"})
    check(task(pb, "tasks/cancel", tid)[1]["result"] == {"resultType": "complete"})
    check(until(pa, tid, ("completed",))["status"] == "completed")


class SlowToServer(TcpRelay):
    """Holds what a client sends for DELAY seconds before passing it on (in
    order); replies pass at once. In front of Redis, a SUBSCRIBE through
    it becomes active that much later."""

    DELAY = 1.5

    def forward(self, data, to_server, state):
        if to_server:
            time.sleep(self.DELAY)
        return data


LATE_PROGRESS = """
  - name: late
    description: Waits for a file, says so (a write of the task's record), waits for another.
    input: { pidfile: string, go: string, gate: string }
    shell: 'echo $$ > "$MCP_ARG_pidfile"; while [ ! -e "$MCP_ARG_go" ]; do sleep 0.02; done;
            mcpd-tool progress 1 2 "going"; while [ ! -e "$MCP_ARG_gate" ]; do sleep 0.05; done; echo done'
    timeout: 1m
    task: may
"""


def test_cancel_before_the_subscription_is_active(t):
    """A's SUBSCRIBE to the task's channel reaches Redis 1.5 s late, so the
    cancellation B publishes right after the answer reaches no one; and
    the tool's progress, after it, has A write the record again ("working",
    over B's "cancelled"). A finds the cancellation in its mark at its
    first renewal, a second after the task began (before: at the lease's
    third, 10 s, and then not at all, the record being overwritten)."""
    redis = redis_server(t)
    slow = SlowToServer(redis.port)
    (da, pa), (db, pb) = start_instances(
        t, 2, lambda name: (
            "storage: { plugin: redis, url: \"%s\" }\ntransport: { plugin: redis, url: \"redis://127.0.0.1:%d\" }\n"
            % (redis.url, slow.port if name == "A" else redis.port)) + TOOLS % {"name": name} + LATE_PROGRESS,
        1, timeout=20)
    pid, go, gate = (os.path.join(t.dir, n) for n in ("pid", "go", "gate"))
    st, r = call(pa, "late", {"pidfile": pid, "go": go, "gate": gate})
    tid = r["result"]["taskId"]
    st, r = task(pb, "tasks/cancel", tid)
    check(r["result"] == {"resultType": "complete"}, r)
    open(go, "w").close()
    wait_for(lambda: task(pb, "tasks/get", tid)[1]["result"].get("statusMessage") == "going", 5,
             "the progress written after the cancellation")
    cpid = int(open(pid).read())
    wait_for(lambda: process_ended(cpid), 5, "the command killed (within the first renewal)")
    da.wait_log("task %.8s… of tool late: cancelled by the client" % tid)
    check(until(pa, tid, ("cancelled",))["status"] == "cancelled")


def listen(port, ids, headers=None, id=77):
    """A subscriptions/listen stream asking for notifications/tasks."""
    body = json.dumps({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen",
                       "params": {"notifications": {"taskIds": ids}, "_meta": TASK_META}}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    extra = "".join("%s: %s\r\n" % kv for kv in (headers or {}).items()).encode()
    s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Accept: text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n" + extra +
              b"Mcp-Method: subscriptions/listen\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    data = b""
    while b"acknowledged" not in data:
        data += s.recv(4096)
    return s, data


def heard(s, data, until_text, timeout=10):
    s.settimeout(timeout)
    while until_text.encode() not in data:
        c = s.recv(65536)
        if not c:
            break
        data += c
    return data, [json.loads(l[6:]) for l in data.decode().split("\n") if l.startswith("data: ")]


def test_task_status_notifications(t):
    """notifications/tasks on a listen stream held by another instance:
    each change of the task, the last with its result."""
    redis = redis_server(t)
    (da, pa), (db, pb) = start_instances(t, 2, lambda name: backends(t, redis, "pubsub") + TOOLS % {"name": name}, 2)
    pid, gate = os.path.join(t.dir, "pid"), os.path.join(t.dir, "gate")
    st, r = call(pa, "wait", {"pidfile": pid, "gate": gate})
    tid = r["result"]["taskId"]
    s, data = listen(pb, [tid, "another"])
    ack = json.loads(data.split(b"data: ")[1].split(b"\n")[0])
    check(ack["params"]["notifications"] == {"taskIds": [tid, "another"]}, ack)
    wait_for(lambda: os.path.exists(pid) and os.path.getsize(pid) > 0, 10, "the command to start")
    with open(gate, "w") as f:
        f.write("notified")
    data, ev = heard(s, data, '"completed"')
    tasks = [e["params"] for e in ev if e.get("method") == "notifications/tasks"]
    check(tasks and all(x["taskId"] == tid and x["_meta"]["io.modelcontextprotocol/subscriptionId"] == 77
                        for x in tasks), ev)
    check(tasks[-1]["status"] == "completed" and tasks[-1]["result"]["content"][0]["text"] == "notified", tasks)
    check("owner" not in tasks[-1] and "aliveUntil" not in tasks[-1], tasks[-1])
    s.close()


def test_task_notifications_for_its_owner_only(t):
    port = free_port()
    k1, k2 = make_key(t, "alice"), make_key(t, "bob")
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\nauth: { plugin: apikey, keys_file: keys }\n%s"
               % (port, TOOLS % {"name": "A"})).start(wait_url_port=port)
    pid, gate = os.path.join(t.dir, "pid"), os.path.join(t.dir, "gate")
    st, r = call(port, "wait", {"pidfile": pid, "gate": gate}, headers=bearer(k1))
    tid = r["result"]["taskId"]
    sb, db_ = listen(port, [tid], headers=bearer(k2), id=5)     # bob asks for alice's task
    sa, da_ = listen(port, [tid], headers=bearer(k1), id=6)
    with open(gate, "w") as f:
        f.write("x")
    da_, ev = heard(sa, da_, '"completed"')
    check(any(e.get("method") == "notifications/tasks" for e in ev), ev)
    time.sleep(0.3)
    sb.settimeout(0.5)
    try:
        db_ += sb.recv(65536)
    except socket.timeout:
        pass
    check(b"notifications/tasks" not in db_, db_)
    sa.close()
    sb.close()
    d.stop()


PLUGIN_TOOLS = """
  - name: count
    description: Counts to steps in-process (the example plugin), one a tick.
    input: { steps: integer, interval_ms: integer, stubborn: boolean }
    plugin: examples.so:count
    timeout: 1m
    task: may
  - name: add
    description: Adds at once (the example plugin).
    input: { a: number, b: number }
    plugin: examples.so:add
    task: must
  - name: confirm
    description: Asks the client to confirm (the example plugin).
    plugin: examples.so:confirm
    task: must
"""


def test_plugin_tool_as_task(t):
    """A plugin tool runs as a task on the worker of A where it started:
    its status polled on B, its result stored as a command's is; a
    cancellation from B stops it on A; a plugin that ignores the
    cancellation finishes all the same, and the task stays cancelled."""
    redis = redis_server(t)
    (da, pa), (db, pb) = start_instances(
        t, 2, lambda name: backends(t, redis, "pubsub") + TOOLS % {"name": name} + PLUGIN_TOOLS, 2)
    st, r = call(pa, "count", {"steps": 6, "interval_ms": 300})
    res = r["result"]
    check(res["resultType"] == "task" and res["status"] == "working", res)
    tid = res["taskId"]
    # its progress (ABI 1.5 tool_status) is the status message, seen on B
    wait_for(lambda: task(pb, "tasks/get", tid)[1]["result"].get("statusMessage", "").startswith("step "),
             5, "the plugin's status message")
    done = until(pb, tid, ("completed",))
    check(done["result"]["structuredContent"] == {"count": 6} and
          done["result"]["content"][0]["text"] == "counted to 6" and not done["result"].get("isError"), done)
    da.wait_log("task %.8s… of tool count completed" % tid)

    # a tool that answers before it returns is a task too (task: must)
    st, r = call(pb, "add", {"a": 1, "b": 2})
    check(r["result"]["resultType"] == "task", r)
    done = until(pa, r["result"]["taskId"], ("completed",))
    check(done["result"]["structuredContent"] == {"sum": 3}, done)

    # cancelled from B: the plugin on A hears it and stops
    st, r = call(pa, "count", {"steps": 1000, "interval_ms": 50})
    tid2 = r["result"]["taskId"]
    until(pb, tid2, ("working",))
    st, r = task(pb, "tasks/cancel", tid2)
    check(r["result"] == {"resultType": "complete"}, r)
    da.wait_log("task %.8s… of tool count: cancelled by the client" % tid2)
    da.wait_log("task %.8s… of tool count cancelled" % tid2)
    got = until(pa, tid2, ("cancelled",))
    check("result" not in got, got)

    # one that ignores the cancellation counts on; its result is dropped
    st, r = call(pa, "count", {"steps": 20, "interval_ms": 100, "stubborn": True})
    tid3 = r["result"]["taskId"]
    until(pa, tid3, ("working",))
    check(task(pb, "tasks/cancel", tid3)[1]["result"] == {"resultType": "complete"})
    da.wait_log("task %.8s… of tool count: cancelled by the client" % tid3)
    check(until(pb, tid3, ("cancelled",))["status"] == "cancelled")
    da.wait_log("task %.8s… of tool count cancelled" % tid3, timeout=10)
    time.sleep(0.3)
    got = until(pb, tid3, ("cancelled", "completed"))
    check(got["status"] == "cancelled" and "result" not in got, got)
    # and the daemon goes on serving its tools
    st, r = call(pa, "add", {"a": 2, "b": 2})
    check(until(pb, r["result"]["taskId"], ("completed",))["result"]["structuredContent"] == {"sum": 4})


def test_plugin_task_asks_the_client(t):
    """A plugin tool running as a task asks the client (tool_ask): the
    task is input_required with the question, on every instance; the
    answer given on B reaches the plugin on A, which finishes the task."""
    redis = redis_server(t)
    (da, pa), (db, pb) = start_instances(
        t, 2, lambda name: backends(t, redis, "pubsub") + TOOLS % {"name": name} + PLUGIN_TOOLS, 2)
    st, r = call(pa, "confirm")
    check(r["result"]["resultType"] == "task", r)
    tid = r["result"]["taskId"]
    q = until(pb, tid, ("input_required",), timeout=5)
    check(list(q["inputRequests"]) == ["confirm"] and
          q["inputRequests"]["confirm"]["method"] == "elicitation/create" and
          q["inputRequests"]["confirm"]["params"]["message"] == "Proceed?", q)
    st, r = task(pb, "tasks/update", tid, {"inputResponses": {"confirm": {"action": "accept", "content": {}}}})
    check(r["result"] == {"resultType": "complete"}, r)
    done = until(pa, tid, ("completed",))
    check(done["result"]["content"][0]["text"] == "Confirmed." and "inputRequests" not in done, done)

    # declined this time, answered on A itself
    st, r = call(pb, "confirm")
    tid = r["result"]["taskId"]
    until(pa, tid, ("input_required",), timeout=5)
    task(pa, "tasks/update", tid, {"inputResponses": {"confirm": {"action": "decline"}}})
    check(until(pb, tid, ("completed",))["result"]["content"][0]["text"] == "Not confirmed.")

    # cancelled while it waits for the answer: cancelled, the daemon serves on
    st, r = call(pa, "confirm")
    tid = r["result"]["taskId"]
    until(pb, tid, ("input_required",), timeout=5)
    check(task(pb, "tasks/cancel", tid)[1]["result"] == {"resultType": "complete"})
    check(until(pa, tid, ("cancelled",))["status"] == "cancelled")
    # its question failed ("cancelled"): the plugin finished the call
    da.wait_log("task %.8s… of tool confirm cancelled" % tid)
    st, r = call(pa, "add", {"a": 2, "b": 3})
    check(until(pb, r["result"]["taskId"], ("completed",))["result"]["structuredContent"] == {"sum": 5})


OLD_PLUGIN = r"""
#include <mcpd/plugin.h>
#include <event2/event.h>
#include <stdlib.h>
static const struct mcpd_plugin d = { .size = offsetof(struct mcpd_plugin, create), .abi_major = 1, .abi_minor = 0,
    .kind = MCPD_PLUGIN_TOOLS, .name = "old" };
struct st { const struct mcpd_host *h; struct mcpd_tool_call *c; struct event *ev; int n; };
static void tick(evutil_socket_t fd, short e, void *a)
{
    (void)fd; (void)e;
    struct st *s = a;
    if (s->n++ == 0) {
        s->h->tool_progress(s->c, 1, 2, "half way");
        struct timeval tv = { 1, 0 };
        event_add(s->ev, &tv);
        return;
    }
    s->h->tool_text(s->c, "old and done", 0);
    event_free(s->ev);
    free(s);
}
MCPD_EXPORT mcpd_tool_fn slow;
void slow(const struct mcpd_host *h, struct mcpd_tool_call *c, const char *a)
{
    (void)a;
    struct st *s = calloc(1, sizeof(*s));
    s->h = h; s->c = c;
    s->ev = evtimer_new(h->event_base(), tick, s);
    struct timeval tv = { 0, 100000 };
    event_add(s->ev, &tv);
}
const struct mcpd_plugin *mcpd_plugin_entry(void) { return &d; }
"""


def test_plugin_of_abi_1_0_as_task(t):
    """A plugin built for ABI 1.0 (no tool_status) runs as a task as it
    is: its progress message is the task's status, its text its result."""
    from test_plugins import cc
    src, so = os.path.join(t.dir, "old.c"), os.path.join(t.dir, "old.so")
    with open(src, "w") as f:
        f.write(OLD_PLUGIN)
    cc(src, so, "-I" + os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../include"))
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\ntools:\n"
               "  - { name: slow, description: Slow., plugin: '%s:slow', task: must }\n" % (port, so)
               ).start(wait_url_port=port)
    st, r = call(port, "slow")
    tid = r["result"]["taskId"]
    wait_for(lambda: task(port, "tasks/get", tid)[1]["result"].get("statusMessage") == "half way", 5,
             "the progress message as the status")
    done = until(port, tid, ("completed",))
    check(done["result"]["content"][0]["text"] == "old and done", done)


def test_plugin_task_times_out(t):
    """A plugin task past its timeout fails (not cancelled); the plugin is
    told through tool_on_cancel, as a client's cancellation would."""
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\ntools:\n"
               "  - { name: count, description: Counts., input: { steps: integer, interval_ms: integer },\n"
               "      plugin: examples.so:count, timeout: 1s, task: may }\n" % port).start(wait_url_port=port)
    st, r = call(port, "count", {"steps": 100, "interval_ms": 100})
    tid = r["result"]["taskId"]
    got = until(port, tid, ("failed",))
    check("timed out after 1s" in got["error"]["message"], got)
    d.wait_log("task %.8s… of tool count failed" % tid)


def test_task_finished_before_it_is_stored(t):
    """The command ends while the record that creates its task is still
    being stored (Redis paused for writes): the client gets the task,
    not a 500 "request abandoned", and the task is completed."""
    redis = redis_server(t)
    (d, port), = start_instances(t, 1, lambda name: backends(t, redis, "pubsub") + TOOLS % {"name": name}, 1)
    check(redis.cli("CLIENT", "PAUSE", "700", "WRITE") == "OK")
    st, r = call(port, "quick")
    check(st == 200 and r["result"]["resultType"] == "task", (st, r))
    done = until(port, r["result"]["taskId"], ("completed",))
    check(done["result"]["content"][0]["text"] == "done", done)
    d.wait_log("task %.8s… of tool quick completed" % r["result"]["taskId"])


def test_task_worker_killed(t):
    """The worker running the task dies: the task is failed, with a reason,
    once its lease runs out; never working for ever."""
    d, port = single(t, "limits: { task_lease: 2s }\n", workers=1)
    pid, gate = os.path.join(t.dir, "pid"), os.path.join(t.dir, "gate")
    st, r = call(port, "wait", {"pidfile": pid, "gate": gate})
    tid = r["result"]["taskId"]
    wait_for(lambda: os.path.exists(pid) and os.path.getsize(pid) > 0, 10, "the command to start")
    w = d.workers()
    check(len(w) == 1, w)
    os.kill(w[0], signal.SIGKILL)
    d.wait_log("respawning")
    wait_for(lambda: len(d.workers()) == 1 and d.workers() != w, 10, "a new worker")
    check(task(port, "tasks/get", tid)[1]["result"]["status"] == "working")    # within its lease
    failed = until(port, tid, ("failed",), timeout=10)
    check(failed["error"]["code"] == -32603 and "stopped" in failed["error"]["message"]
          and "result" not in failed, failed)
    # and it stays failed (stored so)
    time.sleep(0.2)
    check(task(port, "tasks/get", tid)[1]["result"]["status"] == "failed")
    d.stop()


def test_task_outlives_a_reload(t):
    """A reload: the old worker finishes its connections, then waits for
    the task it runs; the new workers answer for it."""
    d, port = single(t, "limits: { shutdown_timeout: 20s }\n", workers=1)
    pid, gate = os.path.join(t.dir, "pid"), os.path.join(t.dir, "gate")
    st, r = call(port, "wait", {"pidfile": pid, "gate": gate})
    tid = r["result"]["taskId"]
    wait_for(lambda: os.path.exists(pid) and os.path.getsize(pid) > 0, 10, "the command to start")
    old = d.workers()
    d.signal(signal.SIGHUP)
    d.wait_log("waiting for 1 running task")
    d.wait_log("reload complete")
    check(task(port, "tasks/get", tid)[1]["result"]["status"] == "working")
    with open(gate, "w") as f:
        f.write("after the reload")
    done = until(port, tid, ("completed",))
    check(done["result"]["content"][0]["text"] == "after the reload", done)
    wait_for(lambda: not set(old) & set(d.workers()), 10, "the old worker to exit")
    d.stop()


def test_task_belongs_to_its_principal(t):
    port = free_port()
    k1, k2 = make_key(t, "alice"), make_key(t, "bob")
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\nauth: { plugin: apikey, keys_file: keys }\n%s"
               % (port, TOOLS % {"name": "A"})).start(wait_url_port=port)
    st, r = call(port, "quick", headers=bearer(k1))
    tid = r["result"]["taskId"]
    check(until(port, tid, ("completed",), headers=bearer(k1))["result"]["content"][0]["text"] == "done")
    st, theirs = task(port, "tasks/get", tid, headers=bearer(k2))
    st2, none = task(port, "tasks/get", "no-such-task", headers=bearer(k2))
    check(theirs["error"]["code"] == -32602 and theirs["error"]["message"] == none["error"]["message"], (theirs, none))
    for m, extra in (("tasks/cancel", None), ("tasks/update", {"inputResponses": {}})):
        st, r = task(port, m, tid, extra, headers=bearer(k2))
        check(r["error"]["code"] == -32602, (m, r))
    st, r = task(port, "tasks/get", tid)      # no token at all
    check(st == 401, (st, r))
    d.stop()


def test_task_result_over_the_limit(t):
    d, port = single(t, "limits: { task_result: 1KiB }\n")
    st, r = call(port, "big")
    failed = until(port, r["result"]["taskId"], ("failed", "completed"))
    check(failed["status"] == "failed" and "limits.task_result" in failed["error"]["message"], failed)
    d.stop()


def test_task_expires_after_its_ttl(t):
    """A client that never fetches the result: the task is gone after its
    TTL, from storage too."""
    d, port = single(t)
    st, r = call(port, "quick")
    tid = r["result"]["taskId"]
    check(r["result"]["ttlMs"] == 1000, r)
    peek = Peek(t.dir)
    state = os.path.join(t.dir, "state")
    # The record is named by the id's hash (the id is a credential).
    key = "task:" + sid_hash(tid)
    wait_for(lambda: json.loads(peek(state, "get", key)[0]).get("status") == "completed", 5,
             "the record to be completed")
    check(peek(state, "get", "task:" + tid) == ["(none)"], "a record under the task's id")
    time.sleep(1.2)
    st, r = task(port, "tasks/get", tid)
    check(r["error"]["code"] == -32602, r)
    check(peek(state, "get", key) == ["(none)"], "the record outlived its ttl")
    d.stop()


def test_task_limits_and_gating(t):
    # shutdown_timeout: a worker stopping waits for running tasks, and the
    # cancelled ones may not have ended yet (seen under ASan: 30 s).
    d, port = single(t, "limits: { max_tasks: 2, shutdown_timeout: 5s }\n")
    pid, gate = os.path.join(t.dir, "pid"), os.path.join(t.dir, "gate")
    ids = [call(port, "wait", {"pidfile": pid + str(i), "gate": gate}, id=i)[1]["result"]["taskId"]
           for i in range(2)]
    st, r = call(port, "wait", {"pidfile": pid, "gate": gate}, id=3)
    check(r["error"]["code"] == -32000 and "limits.max_tasks" in r["error"]["message"], r)
    for tid in ids:
        task(port, "tasks/cancel", tid)
    # without the extension: a may tool runs as a plain call, a must tool
    # is refused naming the extension, tasks/* too
    st, r = call(port, "quick", meta=META)
    check(r["result"]["content"][0]["text"] == "done" and "taskId" not in r["result"], r)
    st, r = call(port, "ask", meta=META)
    check(r["error"]["code"] == -32021 and EXT in r["error"]["data"]["requiredCapabilities"]["extensions"], r)
    st, r = task(port, "tasks/get", ids[0], meta=META)
    check(r["error"]["code"] == -32021, r)
    # a plain tool is never a task, even with a legacy task hint
    st, _, r, _ = req(port, "tools/call", {"name": "plain", "arguments": {}, "task": {"ttl": 1000}},
                      meta=TASK_META, name="plain")
    check(r["result"]["content"][0]["text"] == "plain", r)
    # Mcp-Name must be the task's id
    st, _, r, _ = req(port, "tasks/get", {"taskId": ids[0]}, meta=TASK_META, name="another")
    check(st == 400 and r["error"]["code"] == -32020, r)
    # sessions of the 2025 revisions: no extension, every tool a plain call
    sid = mcp_session(port)
    st, r, _ = rpc(port, sid, "tools/call", {"name": "quick", "arguments": {}})
    check(r["result"]["content"][0]["text"] == "done", r)
    d.stop()


def test_task_config_errors(t):
    check_config_errors(t, [
        ("tools:\n  - { name: a, command: [true], task: sometimes }\n", r"a tool.task must be never, may or must, not \"sometimes\""),
        ("tools:\n  - { name: a, command: [true], task_ttl: 1h }\n", r"task_ttl and task_after need task: may or task: must"),
        ("tools:\n  - { name: a, command: [true], task: may, timeout: 1h, task_ttl: 1m }\n",
         r"task_ttl \(60000ms\) is shorter than its timeout"),
        ("tools:\n  - { name: a, command: [true], task: may, task_ttl: 0s }\n", r"task_ttl"),
        ("limits: { max_tasks: 0 }\n", r"max_tasks"),
    ])
