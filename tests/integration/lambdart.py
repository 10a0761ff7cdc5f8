"""What mcpd --lambda is tested against, no real Lambda being reachable
from here: the Lambda Runtime API written from AWS's published
documentation ("Using the Lambda runtime API for custom runtimes", and
"Response streaming" for the streaming response mode), and an HTTP front
that does what a function URL does: each HTTP request becomes a payload
2.0 event, its answer becomes the HTTP answer, buffered or streamed (the
HTTP integration's JSON prelude, eight NUL bytes, then the body).

RuntimeApi: GET /2018-06-01/runtime/invocation/next hands out the queued
events one at a time (long poll) with Lambda-Runtime-Aws-Request-Id,
Lambda-Runtime-Deadline-Ms, Lambda-Runtime-Invoked-Function-Arn and
Lambda-Runtime-Trace-Id; POST .../invocation/ID/response (buffered, or
Lambda-Runtime-Function-Response-Mode: streaming with a chunked body, each
chunk recorded with its arrival time), .../invocation/ID/error and
/runtime/init/error are recorded; 202 for each, 400 for an unknown
request id, 413 for a buffered response over 6 MB."""

import base64
import http.server
import json
import queue
import socket
import socketserver
import threading
import time
import uuid

API = "/2018-06-01"
MAX_BUFFERED = 6 * 1024 * 1024
PRELUDE_DELIMITER = b"\0" * 8


class Result:
    """The answer to one invocation: kind is "response" or "error"."""

    def __init__(self, rid):
        self.rid = rid
        self.kind = None
        self.headers = {}
        self.body = b""
        self.streaming = False
        self.chunks = []            # (monotonic time, bytes) as they came
        self.done = threading.Event()
        self.started = threading.Event()
        self.new_chunk = threading.Condition()

    def json(self):
        return json.loads(self.body)

    def wait(self, timeout=30):
        if not self.done.wait(timeout):
            raise AssertionError("invocation %s: no answer within %ss" % (self.rid, timeout))
        return self

    def stream(self):
        """The streamed answer: (prelude dict, body bytes)."""
        i = self.body.index(PRELUDE_DELIMITER)
        return json.loads(self.body[:i]), self.body[i + len(PRELUDE_DELIMITER):]


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A runtime that exits (as tests make it) drops its connections.
        import sys
        if not isinstance(sys.exc_info()[1], (ConnectionError, ValueError)):
            super().handle_error(request, client_address)


class RuntimeApi:
    """close_each: every connection is closed after one answer, without a
    Connection: close header (as a server may close a kept-alive one)."""

    def __init__(self, close_each=False):
        self.close_each = close_each
        self.events = queue.Queue()
        self.results = {}
        self.init_errors = []
        self.polls = 0
        self.lock = threading.Lock()
        self.conns = []
        self.gone = False
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                with api.lock:
                    api.conns.append(self.connection)

            def reply(self, status, obj):
                data = json.dumps(obj).encode()
                self.close_connection = api.close_each
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def read_body(self, res=None):
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    out = b""
                    while True:
                        line = self.rfile.readline()
                        size = int(line.split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        data = self.rfile.read(size)
                        self.rfile.read(2)
                        out += data
                        if res is not None:
                            with res.new_chunk:
                                res.chunks.append((time.monotonic(), data))
                                res.body = out
                                res.new_chunk.notify_all()
                n = int(self.headers.get("Content-Length", "0"))
                return self.rfile.read(n) if n else b""

            def do_GET(self):
                if self.path != API + "/runtime/invocation/next":
                    return self.reply(404, {"errorMessage": "not found"})
                with api.lock:
                    api.polls += 1
                while True:
                    try:
                        item = api.events.get(timeout=0.2)
                        break
                    except queue.Empty:
                        if api.gone:
                            item = None
                            break
                if item is None:
                    # The API went away: the connection closes unanswered.
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass  # mcpd may have closed it first
                    return
                rid, event, deadline_ms, trace = item
                data = event if isinstance(event, bytes) else json.dumps(event).encode()
                self.close_connection = api.close_each
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Lambda-Runtime-Aws-Request-Id", rid)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline_ms))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                                 "arn:aws:lambda:us-east-1:123456789012:function:mcpd")
                self.send_header("Lambda-Runtime-Trace-Id", trace)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                if self.path == API + "/runtime/init/error":
                    body = self.read_body()
                    api.init_errors.append((self.headers.get("Lambda-Runtime-Function-Error-Type"),
                                            json.loads(body or b"{}")))
                    return self.reply(202, {"status": "OK"})
                parts = self.path[len(API):].split("/")
                # /runtime/invocation/ID/response|error
                if len(parts) != 5 or parts[1:3] != ["runtime", "invocation"] or \
                        parts[4] not in ("response", "error"):
                    self.read_body()
                    return self.reply(404, {"errorMessage": "not found"})
                res = api.results.get(parts[3])
                if res is None or res.done.is_set():
                    self.read_body()
                    return self.reply(400, {"errorMessage": "unknown or answered request id",
                                            "errorType": "InvalidRequestID"})
                res.kind = parts[4]
                res.headers = {k.lower(): v for k, v in self.headers.items()}
                res.streaming = self.headers.get("Lambda-Runtime-Function-Response-Mode") == "streaming"
                res.started.set()
                body = self.read_body(res)
                res.body = body
                if res.kind == "response" and not res.streaming and len(body) > MAX_BUFFERED:
                    res.kind = "too large"
                    res.done.set()
                    return self.reply(413, {"errorMessage": "payload too large",
                                            "errorType": "RequestEntityTooLarge"})
                res.done.set()
                self.reply(202, {"status": "OK"})

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def invoke(self, event, deadline_s=30, trace=None):
        """Queue an event; returns its Result (answered later)."""
        rid = str(uuid.uuid4())
        res = Result(rid)
        self.results[rid] = res
        trace = trace or "Root=1-%08x-%s;Parent=%s;Sampled=1" % (
            int(time.time()), uuid.uuid4().hex[:24], uuid.uuid4().hex[:16])
        res.trace = trace
        self.events.put((rid, event, int((time.time() + deadline_s) * 1000), trace))
        return res

    def go_away(self):
        """The Runtime API disappears: the pending poll is closed unanswered
        and nothing listens any more."""
        self.gone = True
        self.server.shutdown()
        self.server.server_close()

    def stop(self):
        if not self.gone:
            self.go_away()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def v2_event(method, path, body=b"", headers=None, query="", cookies=None, b64=None):
    """A function URL's (API Gateway HTTP API's) payload 2.0 event."""
    h = {}
    for k, v in (headers or {}).items():
        k = k.lower()
        h[k] = h[k] + "," + v if k in h else v
    if b64 is None:
        b64 = bool(body) and not h.get("content-type", "").startswith(("application/json", "text/"))
    now = time.time()
    ev = {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": h,
        "requestContext": {
            "accountId": "anonymous", "apiId": "abcdefgh", "domainName": h.get("host", "abcdefgh.lambda-url.us-east-1.on.aws"),
            "domainPrefix": "abcdefgh",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7",
                     "userAgent": h.get("user-agent", "")},
            "requestId": str(uuid.uuid4()), "routeKey": "$default", "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": b64,
    }
    if cookies:
        ev["cookies"] = cookies
    if body:
        ev["body"] = base64.b64encode(body).decode() if b64 else body.decode()
    return ev


def v1_event(method, path, body=b"", headers=None, query=None, b64=False, multi=True):
    """An API Gateway REST API's payload 1.0 event (query values decoded)."""
    ev = {"version": "1.0", "resource": "/{proxy+}", "path": path, "httpMethod": method,
          "headers": {k: v[-1] if isinstance(v, list) else v for k, v in (headers or {}).items()},
          "queryStringParameters": {k: v[-1] for k, v in (query or {}).items()} or None,
          "requestContext": {"resourcePath": "/{proxy+}", "httpMethod": method, "path": "/prod" + path,
                             "identity": {"sourceIp": "198.51.100.9"}, "stage": "prod",
                             "requestId": str(uuid.uuid4())},
          "isBase64Encoded": b64,
          "body": (base64.b64encode(body).decode() if b64 else body.decode()) if body else None}
    if multi:
        ev["multiValueHeaders"] = {k: v if isinstance(v, list) else [v] for k, v in (headers or {}).items()}
        ev["multiValueQueryStringParameters"] = query or None
    return ev


def alb_event(method, path, body=b"", headers=None, query=None, b64=False, multi=False):
    """An Application Load Balancer's event: with multi, the target group's
    multi-value headers are on (and the answer must use them too)."""
    ev = {"requestContext": {"elb": {"targetGroupArn":
                                     "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/mcpd/0123"}},
          "httpMethod": method, "path": path, "isBase64Encoded": b64,
          "body": (base64.b64encode(body).decode() if b64 else body.decode()) if body else ""}
    if multi:
        ev["multiValueHeaders"] = {k.lower(): v if isinstance(v, list) else [v] for k, v in (headers or {}).items()}
        ev["multiValueQueryStringParameters"] = query or {}
    else:
        ev["headers"] = {k.lower(): v[-1] if isinstance(v, list) else v for k, v in (headers or {}).items()}
        ev["queryStringParameters"] = {k: v[-1] for k, v in (query or {}).items()}
    return ev


class FunctionUrl:
    """An HTTP server doing what a function URL does in front of the
    Runtime API: BUFFERED (the JSON answer turned into HTTP) or
    RESPONSE_STREAM (the prelude's status and headers sent first, the
    body relayed chunk by chunk as mcpd streams it)."""

    def __init__(self, api, streaming=False, deadline_s=30):
        self.api = api
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def handle_any(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n) if n else b""
                path, _, query = self.path.partition("?")
                hdrs, cookies = {}, []
                for k, v in self.headers.items():
                    if k.lower() == "cookie":
                        cookies += [c.strip() for c in v.split(";") if c.strip()]
                    else:
                        hdrs[k] = hdrs[k] + "," + v if k in hdrs else v
                ev = v2_event(self.command, path, body, hdrs, query, cookies)
                res = front.api.invoke(ev, deadline_s)
                if streaming:
                    return self.relay_stream(res)
                res.wait(deadline_s + 5)
                if res.kind != "response":
                    return self.plain(502, b"Internal Server Error")
                out = json.loads(res.body)
                if not isinstance(out, dict) or "statusCode" not in out:
                    return self.plain(200, res.body, "application/json")
                data = out.get("body") or ""
                data = base64.b64decode(data) if out.get("isBase64Encoded") else data.encode()
                self.send_response(out["statusCode"])
                for k, v in (out.get("headers") or {}).items():
                    self.send_header(k, v)
                for c in out.get("cookies") or []:
                    self.send_header("Set-Cookie", c)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def plain(self, status, data, ctype="text/plain"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def relay_stream(self, res):
                if not res.started.wait(deadline_s + 5) or res.kind != "response":
                    res.done.wait(5)
                    return self.plain(502, b"Internal Server Error")
                sent = 0
                began = False
                while True:
                    with res.new_chunk:
                        while len(res.body) == sent and not res.done.is_set():
                            res.new_chunk.wait(0.2)
                        body = res.body
                    if not began:
                        if PRELUDE_DELIMITER not in body:
                            if res.done.is_set():
                                return self.plain(502, b"no prelude")
                            continue
                        i = body.index(PRELUDE_DELIMITER)
                        prelude = json.loads(body[:i])
                        self.send_response(prelude.get("statusCode", 200))
                        for k, v in (prelude.get("headers") or {}).items():
                            self.send_header(k, v)
                        for c in prelude.get("cookies") or []:
                            self.send_header("Set-Cookie", c)
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        began = True
                        sent = i + len(PRELUDE_DELIMITER)
                    if len(body) > sent:
                        piece = body[sent:]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        self.wfile.flush()
                        sent = len(body)
                    if res.done.is_set() and len(res.body) == sent:
                        self.wfile.write(b"0\r\n\r\n")
                        return

            do_GET = do_POST = do_DELETE = do_OPTIONS = do_PUT = handle_any

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d/mcp" % self.port

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
