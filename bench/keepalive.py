#!/usr/bin/env python3
"""keepalive: a fixed number of POSTs on one keep-alive connection, for
bench/instructions.sh.

    keepalive.py PORT WARM N BODY [ON_CMD] [OFF_CMD] [-H 'Name: value' ...]
        [--reply TEXT] [--mark PATH]

Sends WARM requests, runs ON_CMD (a shell command, e.g. callgrind_control
-i on PID), sends N more, runs OFF_CMD. With --mark, a GET of PATH on the
same connection where the commands run, and one more after the last
(callgrind --dump-before on PATH's handler: the second dump holds the N
requests and one GET, the third one GET). Each request's body is BODY with
its "id":1 replaced by the request's own number, and each answer must be a
200 carrying that id and "Hello, bench!"; with --status, a 200 with
BODY's reply bytes (--reply, nginx's static reply has a fixed id). Exits 1
at the first bad answer or closed connection, so that a count is only
divided by requests that were all served.
"""
import argparse
import http.client
import re
import socket
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("warm", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("body")
    ap.add_argument("on_cmd", nargs="?", default="")
    ap.add_argument("off_cmd", nargs="?", default="")
    ap.add_argument("-H", dest="headers", action="append", default=[])
    ap.add_argument("--reply", help="the exact reply expected (a static one)")
    ap.add_argument("--mark", help="a path to GET at the commands' points")
    a = ap.parse_args()

    m = re.match(r'^(.*?"id":)1([,}].*)$', a.body, re.S)
    if m is None:
        sys.exit('keepalive: BODY has no "id":1')
    head = {"Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-11-25"}
    for h in a.headers:
        k, _, v = h.partition(":")
        head[k.strip()] = v.strip()

    # Each request goes out in one write, head and body together, as wrk
    # sends them: http.client writes the body apart, and a server that
    # reads the head alone then pays a second read and a body timeout
    # that wrk's requests never cost it.
    sock = socket.create_connection(("127.0.0.1", a.port), timeout=120)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def exchange(method, path, body=b"", headers=None):
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1:%d" % a.port]
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        if method == "POST":
            lines.append("Content-Length: %d" % len(body))
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        r = http.client.HTTPResponse(sock)
        r.begin()
        return r, r.read()

    def mark():
        if a.mark:
            r, _ = exchange("GET", a.mark)
            if r.status != 200 or r.will_close:
                sys.exit("keepalive: GET %s: %d" % (a.mark, r.status))

    for i in range(1, a.warm + a.n + 1):
        if i == a.warm + 1:
            if a.on_cmd:
                subprocess.run(a.on_cmd, shell=True, check=True, stdout=subprocess.DEVNULL)
            mark()
        body = m.group(1) + str(i) + m.group(2)
        r, text = exchange("POST", "/mcp", body.encode(), head)
        text = text.decode("utf-8", "replace")
        if a.reply is not None:
            ok = r.status == 200 and text == a.reply
        else:
            ok = (r.status == 200 and "Hello, bench!" in text and
                  re.search(r'"id":%d[,}]' % i, text) is not None)
        if not ok or r.will_close:
            sys.exit("keepalive: request %d: %d %s%s" % (
                i, r.status, text[:300], " (connection closed)" if r.will_close else ""))
    mark()
    mark()
    if a.off_cmd:
        subprocess.run(a.off_cmd, shell=True, check=True, stdout=subprocess.DEVNULL)
    sock.close()
    print(a.n)


if __name__ == "__main__":
    main()
