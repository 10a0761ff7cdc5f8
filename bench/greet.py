#!/usr/bin/env python3
"""greet in Python, for bench/persistent.sh: one-shot (arguments on stdin,
the greeting on stdout) or, under persistent: true (MCP_PERSISTENT=1), a
loop of one request a line and one answer a line."""
import json
import os
import sys


def greet(args):
    return "Hello, %s!" % args.get("name", "world")


if os.environ.get("MCP_PERSISTENT") == "1":
    for line in sys.stdin:
        req = json.loads(line)
        if "cancel" in req:
            continue
        sys.stdout.write(json.dumps({"id": req["id"], "output": greet(req["arguments"])}) + "\n")
        sys.stdout.flush()
else:
    sys.stdout.write(greet(json.load(sys.stdin)))
