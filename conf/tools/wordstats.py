#!/usr/bin/python3
"""wordstats: a persistent tool (persistent: true in mcpd.yaml). mcpd
starts it once and keeps it running: one request a line on stdin,
    {"id": 7, "arguments": {...}, "env": {"MCP_TOOL_NAME": ..., ...}}
one answer a line on stdout,
    {"id": 7, "output": "text or any JSON"}   or   {"id": 7, "error": "message"}
Progress and log messages go on fd 3 as for any command, tagged with the
call's id. {"cancel": 7} asks to stop call 7; it is answered anyway.
Nothing else may be written to stdout: a stray line stops the process."""
import json
import os
import sys

channel = os.fdopen(int(os.environ.get("MCP_CHANNEL_FD", "3")), "w", buffering=1)
# Loaded once, not on every call: this is what persistent buys.
STOP = frozenset("a an and are as at be by for from in is it of on or the to with".split())


def progress(call, done, total):
    channel.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/progress", "call": call,
                              "params": {"progress": done, "total": total}}) + "\n")


def serve(req):
    text = req["arguments"].get("text", "")
    lines = text.splitlines() or [""]
    counts = {}
    for i, line in enumerate(lines, 1):
        for w in line.lower().split():
            w = w.strip(".,;:!?\"'()[]")
            if w and w not in STOP:
                counts[w] = counts.get(w, 0) + 1
        if len(lines) > 1000 and i % 1000 == 0:
            progress(req["id"], i, len(lines))
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:int(req["arguments"].get("top", 5))]
    return {"words": sum(counts.values()), "distinct": len(counts), "top": [w for w, _ in top]}


for line in sys.stdin:
    req = json.loads(line)
    if "cancel" in req:
        continue        # one call at a time: each is over before the next line is read
    try:
        answer = {"id": req["id"], "output": serve(req)}
    except Exception as e:  # a bad request fails its call, not the process
        answer = {"id": req["id"], "error": "wordstats: %s" % e}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
