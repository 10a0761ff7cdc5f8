"""W3C trace context: a valid traceparent, from the request's _meta or its
header, reaches a command tool as TRACEPARENT and its trace id the JSON
access log (_meta's first, as for the tool); an invalid one reaches
neither."""

import json
import re

from harness import check, free_port, mcp_session, rpc, wait_for

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TP2 = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def test_traceparent_to_tools_and_the_access_log(t):
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\nlog: { format: json }\ntools:\n"
               "  - name: tp\n    description: Prints TRACEPARENT.\n    shell: 'echo \"[$TRACEPARENT]\"'\n"
               % port)
    d.start(wait_url_port=port)
    sid = mcp_session(port)

    def text(params, headers=None, id=1):
        st, msg, _ = rpc(port, sid, "tools/call", params, id=id, headers=headers)
        check(st == 200 and "result" in msg, (st, msg))
        return msg["result"]["content"][0]["text"].strip()

    check(text({"name": "tp", "arguments": {}}) == "[]")
    check(text({"name": "tp", "arguments": {}, "_meta": {"traceparent": TP}}, id=2) == "[%s]" % TP)
    check(text({"name": "tp", "arguments": {}}, {"traceparent": TP2}, id=3) == "[%s]" % TP2)
    # _meta wins over the header, as the MCP request's own context.
    check(text({"name": "tp", "arguments": {}, "_meta": {"traceparent": TP}}, {"traceparent": TP2}, id=4)
          == "[%s]" % TP)
    for bad in ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "garbage", TP.upper(),
                TP + "-more", "ff" + TP[2:]):
        check(text({"name": "tp", "arguments": {}, "_meta": {"traceparent": bad}}, id=5) == "[]", bad)
        check(text({"name": "tp", "arguments": {}}, {"traceparent": bad}, id=6) == "[]", bad)
    # The access line is written as the response ends: the client may
    # read the answer first.
    wait_for(lambda: d.log().count('"rpc":"tools/call"') == 14, what="14 access lines of tools/call")
    lines = [json.loads(l[l.index("{"):]) for l in d.log().splitlines() if '"type":"access"' in l]
    calls = [l for l in lines if l.get("rpc") == "tools/call"]
    check(len(calls) == 14, len(calls))
    # The request's trace: _meta's (where MCP carries it) over the header's.
    check([l.get("trace_id") for l in calls[:4]] ==
          [None, TP.split("-")[1], TP2.split("-")[1], TP.split("-")[1]], [l.get("trace_id") for l in calls[:4]])
    check(all("trace_id" not in l for l in calls[4:]), calls[4:])
    d.stop()
