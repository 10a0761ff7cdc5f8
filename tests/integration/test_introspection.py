"""The introspection auth plugin (RFC 7662) against a real authorization
server: oidc-provider (tests/node/oidc-server.mjs), whose client "opaque"
gets opaque access tokens that mcpd introspects as the client "mcpd".

Accepted tokens and their scopes, revoked, unknown and misdirected tokens,
the endpoint down or refusing mcpd's credentials, and the plugin's cache
and coalescing, seen in the number of introspection requests the provider
logs. oidc-provider leaves sub out of a client_credentials token's answer,
so the tests take the user from client_id (user_claim: [sub, client_id])."""

import json
import os
import re
import threading

from harness import MCP_HEADERS, check, free_port, http, run_mcpd, wait_for
from test_auth import bearer, challenge, session
from test_jwt import TOOLS, Provider, call, initialize, need_node, readyz, refused, unavailable

class AS(Provider):
    """oidc-provider, as the issuer of opaque tokens and their introspection endpoint."""

    @property
    def endpoint(self):
        return self.issuer + "/token/introspection"

    def opaque(self, resource, scope="tools.read"):
        tok = self.token("opaque", resource, scope)
        check(tok.count(".") == 0, "not an opaque token: %s" % tok[:40])
        return tok

    def revoke(self, token):
        st, body = self._post("/token/revocation", {"token": token, "client_id": "opaque", "client_secret": "secret"})
        check(st == 200, (st, body))

    def introspections(self):
        return len(re.findall(r"^POST /token/introspection", self.log(), re.M))

    def hold(self):
        check(self._post("/_hold", {})[0] == 200)

    def release(self):
        check(self._post("/_release", {})[0] == 200)


def start_mcpd(t, idp, auth_extra="", workers=1, top="", secret="  client_secret: mcpd-secret\n"):
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: %d\n%sauth:\n  plugin: introspection\n  endpoint: %s\n"
               "  client_id: mcpd\n%s  user_claim: [sub, client_id]\n  resource: http://127.0.0.1:%d/mcp\n"
               "  scopes_supported: [tools.read, tools.admin]\n%s%s"
               % (port, workers, top, idp.endpoint, secret, port, auth_extra, TOOLS))
    d.start(wait_url_port=port)
    return d, port, "http://127.0.0.1:%d/mcp" % port


def test_opaque_tokens_are_accepted(t):
    need_node()
    idp = AS(t).start()
    d, port, resource = start_mcpd(t, idp, "  issuer: %s\n" % idp.issuer)
    tok = idp.opaque(resource)
    sid = session(port, tok)
    for i in range(3):
        st, r, _ = call(port, sid, tok, id=i + 1)
        check(st == 200 and r["result"]["content"][0]["text"].strip() == "hi", (st, r))
    # One introspection for the session and its calls (cached since).
    check(idp.introspections() == 1, idp.log())
    # The session is the client's (the user, from client_id): another
    # token of the same client finds it.
    st, r, _ = call(port, sid, idp.opaque(resource), id=9)
    check(st == 200, (st, r))
    check(idp.introspections() == 2, idp.log())
    check(tok not in d.log(), "a token in the log")
    d.stop()


def test_scopes_from_the_answer(t):
    need_node()
    idp = AS(t).start()
    d, port, resource = start_mcpd(t, idp, "  required_scopes: [tools.read]\n")
    reader = idp.opaque(resource, "tools.read")
    admin = idp.opaque(resource, "tools.read tools.admin")
    sid = session(port, reader)
    st, r, _ = call(port, sid, reader, "secret")
    check(st == 403 and "tools.admin" in r["error"]["message"], (st, r))
    st, hdrs, _ = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                       "params": {"name": "secret", "arguments": {}}}),
                       dict(MCP_HEADERS, **bearer(reader), **{"Mcp-Session-Id": sid,
                                                              "MCP-Protocol-Version": "2025-11-25"}))
    c = challenge(hdrs)
    check(c.get("error") == "insufficient_scope" and c.get("scope") == "tools.admin", c)
    st, r, _ = call(port, sid, admin, "secret", id=2)
    check(st == 200 and r["result"]["content"][0]["text"].strip() == "secret", (st, r))
    refused(port, idp.opaque(resource, "tools.admin"), "the token lacks the required scope tools.read")
    d.stop()


def test_unknown_and_misdirected_tokens_are_refused(t):
    need_node()
    idp = AS(t).start()
    d, port, resource = start_mcpd(t, idp, "  negative_cache_ttl: 10m\n")
    # Unknown to the provider; refused again from the negative cache,
    # without asking (however many come).
    for _ in range(5):
        refused(port, "garbage-token-0123456789", "the token is not active")
    check(idp.introspections() == 1, idp.log())
    refused(port, idp.opaque("https://other.example.com/api"), "wrong audience")
    # Another issuer than the one configured.
    d.stop()
    d, port, resource = start_mcpd(t, idp, "  issuer: https://id.example.com\n")
    refused(port, idp.opaque(resource), "wrong issuer")
    d.stop()


def test_revoked_tokens(t):
    need_node()
    idp = AS(t).start()
    # cache_ttl: 0: every request asks, and mcpd's own cache (auth: cache:,
    # 60 s by default) keeps nothing either: a revocation counts at once.
    d, port, resource = start_mcpd(t, idp, "  cache_ttl: 0s\n")
    tok = idp.opaque(resource)
    sid = session(port, tok)
    check(call(port, sid, tok)[0] == 200)
    check(idp.introspections() == 3, idp.log())       # initialize, initialized, the call
    idp.revoke(tok)
    refused(port, tok, "the token is not active")
    d.stop()
    # A long cache_ttl: the revoked token is still taken, without asking.
    d, port, resource = start_mcpd(t, idp, "  cache_ttl: 1h\n")
    tok = idp.opaque(resource)
    sid = session(port, tok)
    seen = idp.introspections()
    idp.revoke(tok)
    check(call(port, sid, tok)[0] == 200)
    check(idp.introspections() == seen, idp.log())
    d.stop()
    # A short one: refused once it has passed, although mcpd's own cache
    # (cache: 1h) would have kept the token longer.
    d, port, resource = start_mcpd(t, idp, "  cache: 1h\n  cache_ttl: 1s\n")
    tok = idp.opaque(resource)
    sid = session(port, tok)
    idp.revoke(tok)
    wait_for(lambda: initialize(port, tok)[0] == 401, 20, "the revoked token refused")
    refused(port, tok, "the token is not active")
    d.stop()


def test_requests_for_one_token_share_its_introspection(t):
    need_node()
    idp = AS(t).start()
    # Nothing cached: only the coalescing saves requests.
    d, port, resource = start_mcpd(t, idp, "  cache_ttl: 0s\n", top="log: { level: debug }\n")
    tok = idp.opaque(resource)
    idp.hold()
    results = []

    def client():
        results.append(initialize(port, tok)[0])
    threads = [threading.Thread(target=client) for _ in range(8)]
    for th in threads:
        th.start()
    d.wait_log(r"introspection: a request waits for the same token's answer", count=7)
    wait_for(lambda: idp.introspections() == 1, 10, "the introspection request")
    check(results == [], results)       # they wait: no answer yet
    idp.release()
    for th in threads:
        th.join(20)
    check(results == [200] * 8, results)
    check(idp.introspections() == 1, idp.log())
    d.stop()


def test_endpoint_down_then_back(t):
    need_node()
    idp = AS(t).start()
    d, port, resource = start_mcpd(t, idp, "  timeout: 2s\n")
    check(readyz(port)[0] == 200)
    idp.kill()
    unavailable(port, "some-token")
    d.wait_log(r"introspection: http://127\.0\.0\.1:%d/token/introspection cannot be asked" % idp.port)
    st, r = readyz(port)
    check(st == 503 and "the introspection endpoint failed" in r["reason"], r)
    # Errors are not cached: the provider back (a new one on the same port,
    # which has forgotten the old tokens), its tokens work.
    os.rename(idp.log_path, idp.log_path + ".before")     # the new one's "ready" line is awaited
    idp2 = AS(t, port=idp.port).start()
    tok = idp2.opaque(resource)
    session(port, tok)
    check(readyz(port)[0] == 200)
    d.wait_log(r"introspection: .* answers again")
    d.stop()


def test_client_credentials(t):
    need_node()
    idp = AS(t).start()
    # A wrong secret: the token's fate is unknown, so 503 (not 401, which
    # would send the client for a new token that fares no better), and
    # the log says what to fix.
    d, port, resource = start_mcpd(t, idp, secret="  client_secret: wrong\n")
    unavailable(port, idp.opaque(resource))
    d.wait_log(r"refuses mcpd's client credentials \(HTTP 401 invalid_client\): check client_id")
    d.stop()
    # client_secret_post, with the secret in a file beside the configuration.
    path = os.path.join(t.dir, "intro.secret")
    with open(path, "w") as f:
        f.write("mcpd-secret\n")
    os.chmod(path, 0o600)
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\nauth:\n  plugin: introspection\n  endpoint: %s\n"
               "  client_id: mcpd-post\n  client_auth: client_secret_post\n  client_secret_file: intro.secret\n"
               "  user_claim: client_id\n  resource: http://127.0.0.1:%d/mcp\n%s"
               % (port, idp.endpoint, port, TOOLS))
    d.start(wait_url_port=port)
    tok = idp.opaque("http://127.0.0.1:%d/mcp" % port)
    sid = session(port, tok)
    check(call(port, sid, tok)[0] == 200)
    d.stop()


def test_config_errors(t):
    path = os.path.join(t.dir, "bad.yaml")
    secret = os.path.join(t.dir, "s.secret")
    with open(secret, "w") as f:
        f.write("x\n")
    os.chmod(secret, 0o600)

    def check_t(section, want):
        with open(path, "w") as f:
            f.write("listen: [127.0.0.1:%d]\nauth:\n  plugin: introspection\n%s" % (free_port(), section))
        rc, out, err = run_mcpd("-t", "-c", path)
        check(rc == 1 and re.search(want, err), "%r: exit %d\n%s" % (want, rc, err))

    ok = "  endpoint: https://id.example.com/introspect\n  client_id: mcpd\n  audience: https://mcp.example.com/mcp\n"
    check_t(ok + "  client_secret: s\n  colour: red\n",
            r"bad\.yaml:8:11: unknown key \"colour\" in auth \(introspection takes endpoint, client_id")
    check_t("  client_id: mcpd\n  client_secret: s\n  audience: a\n", r"bad\.yaml:3:\d+: introspection needs endpoint:")
    check_t(ok, r"introspection needs client_secret_file: .* or client_secret:")
    check_t(ok.replace("https://id", "http://id") + "  client_secret: s\n",
            r"bad\.yaml:4:13: endpoint: http://id\.example\.com/introspect: only https URLs")
    check_t(ok + "  client_secret: s\n  client_secret_file: s.secret\n", r"client_secret and client_secret_file: give one")
    check_t(ok + "  client_secret_file: nowhere.secret\n", r"bad\.yaml:7:23: client_secret_file .*nowhere\.secret: No such")
    os.chmod(secret, 0o644)
    check_t(ok + "  client_secret_file: s.secret\n", r"s\.secret can be read by others \(mode 644\): chmod 600")
    os.chmod(secret, 0o620)
    check_t(ok + "  client_secret_file: s.secret\n", r"s\.secret can be written by others \(mode 620\)")
    os.chmod(secret, 0o640)
    check_t("  endpoint: https://id.example.com/i\n  client_id: mcpd\n  client_secret: s\n",
            r"introspection needs audience: .*or resource:")
    check_t(ok + "  client_secret: s\n  client_auth: private_key_jwt\n",
            r"client_auth must be client_secret_basic or client_secret_post")
    check_t(ok + "  client_secret: s\n  cache_ttl: 2h\n", r"bad\.yaml:8:14: cache_ttl must be a duration from 0 to 1h")
    check_t(ok + "  client_secret: s\n  audience_required: maybe\n", r"audience_required must be true or false")
    check_t(ok + "  client_secret: s\n  required_scopes: [\"a b\"]\n", r"required_scopes: \"a b\" is not a name")
    check_t(ok + "  client_secret: s\n  ca_file: nowhere.pem\n", r"ca_file .*nowhere\.pem cannot be read")
    with open(path, "w") as f:
        f.write("listen: [127.0.0.1:%d]\nauth:\n  plugin: introspection\n%s  client_secret_file: s.secret\n"
                "  cache_ttl: 0s\n  negative_cache_ttl: 30s\n  cache_size: 100\n  client_auth: client_secret_post\n"
                % (free_port(), ok))
    rc, out, err = run_mcpd("-t", "-c", path)
    check(rc == 0, err)
