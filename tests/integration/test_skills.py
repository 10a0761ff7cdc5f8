"""The skills extension (io.modelcontextprotocol/skills, SEP-2640): skills:
in mcpd.yaml, checked at load and by mcpd -t, served as skill://
resources through skills/list, skills/get, resources/directory/read and
resources/read, under both protocol generations; a reload picks up a
changed skill and announces it."""

import base64
import hashlib
import os
import signal
import socket
import time

from harness import check, check_config_errors, free_port, mcp_session, rpc, run_mcpd, status_of
from test_stateless import req

EXT = "io.modelcontextprotocol/skills"


def write(path, text, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(text)


def make_skills(root):
    """Two skills under root: deploy (a reference, a script, a binary file,
    a file name that needs escaping, hidden files left out) and lint."""
    write(os.path.join(root, "deploy", "SKILL.md"),
          "---\nname: deploy\ndescription: Deploy a service with ${NOT_A_VAR}.\nmetadata:\n  team: ops\n"
          "version: 2\n---\n# Deploy\nRead references/STEPS.md.\n")
    write(os.path.join(root, "deploy", "references", "STEPS.md"), "1. build\n2. ship\n")
    write(os.path.join(root, "deploy", "scripts", "run me.sh"), "#!/bin/sh\necho deploying\n")
    write(os.path.join(root, "deploy", "logo.bin"), b"\x00\x01\xffdata", "wb")
    write(os.path.join(root, "deploy", ".git", "HEAD"), "ref: main\n")
    write(os.path.join(root, "lint", "SKILL.md"), "---\nname: lint\ndescription: Lint the code.\n---\nRun it.\n")


def sha(path):
    with open(path, "rb") as f:
        data = f.read()
    return "sha256:" + hashlib.sha256(data).hexdigest(), len(data)


def start(t, extra=""):
    port = free_port()
    root = os.path.join(t.dir, "skills")
    make_skills(root)
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\nlimits: { page_size: 1 }\nskills: [skills]\n%s"
               % (port, extra)).start(wait_url_port=port)
    return d, port, root


def test_skills_served_2025(t):
    d, port, root = start(t)
    sid = mcp_session(port)
    st, r, _ = rpc(port, sid, "tools/list")
    # initialize declared the extension, with directoryRead, and resources
    body = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}}
    from harness import MCP_HEADERS, http
    import json
    st, hdrs, data = http(port, "POST", "/mcp", json.dumps(body), MCP_HEADERS)
    caps = json.loads(data)["result"]["capabilities"]
    check(caps["extensions"][EXT] == {"directoryRead": True} and "resources" in caps, caps)

    # skills/list: one skill a page (page_size 1), the whole list in order
    entries, cursor = [], None
    for i in range(5):
        st, r, _ = rpc(port, sid, "skills/list", {"cursor": cursor} if cursor else {}, id=10 + i)
        entries += r["result"]["skills"]
        cursor = r["result"].get("nextCursor")
        if not cursor:
            break
    check([e["uri"] for e in entries] == ["skill://deploy/SKILL.md", "skill://lint/SKILL.md"], entries)
    dep = entries[0]
    check(dep["frontmatter"] == {"name": "deploy", "description": "Deploy a service with ${NOT_A_VAR}.",
                                 "metadata": {"team": "ops"}, "version": 2}, dep)
    files = {f["uri"]: f for f in dep["resources"]}
    want = {"skill://deploy/SKILL.md": "SKILL.md", "skill://deploy/logo.bin": "logo.bin",
            "skill://deploy/references/STEPS.md": "references/STEPS.md",
            "skill://deploy/scripts/run%20me.sh": "scripts/run me.sh"}
    check(sorted(files) == sorted(want), files)
    for uri, rel in want.items():
        digest, size = sha(os.path.join(root, "deploy", rel))
        check(files[uri]["digest"] == digest and files[uri]["size"] == size, (uri, files[uri]))

    # skills/get: the same entry; an unknown skill is invalid params
    st, r, _ = rpc(port, sid, "skills/get", {"uri": "skill://deploy/SKILL.md"})
    check(r["result"]["skill"] == dep and "nextCursor" not in r["result"], r)
    for bad in ("skill://nope/SKILL.md", "skill://deploy/references/STEPS.md", "skill://deploy"):
        st, r, _ = rpc(port, sid, "skills/get", {"uri": bad})
        check(r["error"]["code"] == -32602, (bad, r))
    st, r, _ = rpc(port, sid, "skills/get", {})
    check(r["error"]["code"] == -32602, r)

    # resources/read: text as text, binary as a blob, bytes as hashed
    st, r, _ = rpc(port, sid, "resources/read", {"uri": "skill://deploy/SKILL.md"})
    c = r["result"]["contents"][0]
    check(c["mimeType"] == "text/markdown" and c["text"].startswith("---\nname: deploy"), c)
    st, r, _ = rpc(port, sid, "resources/read", {"uri": "skill://deploy/scripts/run%20me.sh"})
    check(r["result"]["contents"][0]["text"] == "#!/bin/sh\necho deploying\n", r)
    st, r, _ = rpc(port, sid, "resources/read", {"uri": "skill://deploy/logo.bin"})
    c = r["result"]["contents"][0]
    check(base64.b64decode(c["blob"]) == b"\x00\x01\xffdata" and c["mimeType"] == "application/octet-stream", c)
    for bad in ("skill://deploy/.git/HEAD", "skill://deploy/references", "skill://deploy/../lint/SKILL.md",
                "skill://nope/SKILL.md"):
        st, r, _ = rpc(port, sid, "resources/read", {"uri": bad})
        check(r["error"]["code"] == -32002, (bad, r))

    # resources/list names each SKILL.md from its front matter
    listed, cursor = [], None
    for i in range(10):
        st, r, _ = rpc(port, sid, "resources/list", {"cursor": cursor} if cursor else {}, id=30 + i)
        listed += r["result"]["resources"]
        cursor = r["result"].get("nextCursor")
        if not cursor:
            break
    sk = [x for x in listed if x["uri"].startswith("skill://")]
    check(sk == [{"uri": "skill://deploy/SKILL.md", "name": "deploy",
                  "description": "Deploy a service with ${NOT_A_VAR}.", "mimeType": "text/markdown",
                  "size": sha(os.path.join(root, "deploy", "SKILL.md"))[1]},
                 {"uri": "skill://lint/SKILL.md", "name": "lint", "description": "Lint the code.",
                  "mimeType": "text/markdown", "size": sha(os.path.join(root, "lint", "SKILL.md"))[1]}], sk)

    # resources/directory/read: direct children, subdirectories as such
    st, r, _ = rpc(port, sid, "resources/directory/read", {"uri": "skill://deploy"})
    kids = {x["uri"]: x["mimeType"] for x in r["result"]["resources"]}
    check(kids == {"skill://deploy/SKILL.md": "text/markdown", "skill://deploy/logo.bin": "application/octet-stream",
                   "skill://deploy/references": "inode/directory", "skill://deploy/scripts": "inode/directory"}, kids)
    st, r, _ = rpc(port, sid, "resources/directory/read", {"uri": "skill://deploy/references"})
    check([x["uri"] for x in r["result"]["resources"]] == ["skill://deploy/references/STEPS.md"], r)
    for bad in ("skill://deploy/SKILL.md", "skill://deploy/", "skill://nope", "file:///etc"):
        st, r, _ = rpc(port, sid, "resources/directory/read", {"uri": bad})
        check(r["error"]["code"] == -32602, (bad, r))
    d.stop()


def test_skills_served_2026(t):
    d, port, root = start(t)
    st, r = req(port, "server/discover")[::2]
    check(r["result"]["capabilities"]["extensions"][EXT] == {"directoryRead": True}, r)
    st, r = req(port, "skills/list")[::2]
    res = r["result"]
    check(res["resultType"] == "complete" and "ttlMs" in res and res["cacheScope"] == "public"
          and res["skills"][0]["uri"] == "skill://deploy/SKILL.md", res)
    st, r = req(port, "skills/get", {"uri": "skill://lint/SKILL.md"})[::2]
    res = r["result"]
    check(res["skill"]["frontmatter"]["name"] == "lint" and "ttlMs" in res and "cacheScope" in res, res)
    st, r = req(port, "resources/read", {"uri": "skill://lint/SKILL.md"}, name="skill://lint/SKILL.md")[::2]
    check(r["result"]["contents"][0]["text"].endswith("Run it.\n") and "ttlMs" in r["result"], r)
    # an unknown skill:// URI is invalid params under 2026-07-28 (SEP-2164)
    st, r = req(port, "resources/read", {"uri": "skill://lint/nope"}, name="skill://lint/nope")[::2]
    check(r["error"]["code"] == -32602, r)
    d.stop()


def test_skills_absent_without_config(t):
    """No skills: no extension declared and its methods are not found."""
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 1\n" % port).start(wait_url_port=port)
    sid = mcp_session(port)
    for m in ("skills/list", "skills/get", "resources/directory/read"):
        st, r, _ = rpc(port, sid, m, {"uri": "skill://a/SKILL.md"})
        check(r["error"]["code"] == -32601, (m, r))
    st, r = req(port, "server/discover")[::2]
    check("extensions" not in r["result"]["capabilities"], r)
    d.stop()


def test_skills_config_errors(t):
    root = os.path.join(t.dir, "bad")
    write(os.path.join(root, "nofm", "SKILL.md"), "# no front matter\n")
    write(os.path.join(root, "badname", "SKILL.md"), "---\n# x\nname: Bad_Name\ndescription: d\n---\n")
    write(os.path.join(root, "mismatch", "SKILL.md"), "---\nname: other\ndescription: d\n---\n")
    write(os.path.join(root, "nodesc", "SKILL.md"), "---\nname: nodesc\n---\n")
    write(os.path.join(root, "yaml", "SKILL.md"), "---\nname: yaml\ndescription: [x\n---\n")
    write(os.path.join(root, "empty", "README"), "no skill here\n")
    many = os.path.join(root, "many")
    write(os.path.join(many, "SKILL.md"), "---\nname: many\ndescription: d\n---\n")
    for i in range(513):
        write(os.path.join(many, "f", "%03d.txt" % i), "x")
    write(os.path.join(root, "dup1", "lint", "SKILL.md"), "---\nname: lint\ndescription: d\n---\n")
    write(os.path.join(root, "dup2", "lint", "SKILL.md"), "---\nname: lint\ndescription: d\n---\n")
    p = lambda *a: os.path.join(root, *a)
    check_config_errors(t, [
        ("skills: [%s]\n" % p("nofm"), r"nofm/SKILL.md:1:1: a SKILL.md must begin with its front matter"),
        ("skills: [%s]\n" % p("badname"), r"badname/SKILL.md:3:7: name \"Bad_Name\" must be 1 to 64"),
        ("skills: [%s]\n" % p("mismatch"), r"mismatch/SKILL.md:2:7: name \"other\" must be the name of the skill's directory"),
        ("skills: [%s]\n" % p("nodesc"), r"nodesc/SKILL.md:2:1: the front matter has no \"description\""),
        ("skills: [%s]\n" % p("yaml"), r"yaml/SKILL.md:\d+:\d+: did not find expected"),
        ("skills: [%s]\n" % p("empty"), r":2:10: skills: .*empty holds no SKILL.md"),
        ("skills: [%s]\n" % p("nothere"), r":2:10: skills: .*nothere: No such file"),
        ("skills: [%s]\n" % p("many"), r"more than 512 files"),
        ("skills: [%s, %s]\n" % (p("dup1"), p("dup2")), r"skill \"lint\" .* is served already"),
        ("skills: { a: b }\n", r":2:9: skills must be a list"),
    ])


def test_skills_reload_announces_changes(t):
    d, port, root = start(t)
    sid = mcp_session(port)
    st, r, _ = rpc(port, sid, "skills/get", {"uri": "skill://lint/SKILL.md"})
    old = r["result"]["skill"]["resources"][0]["digest"]
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: "
              + sid.encode() + b"\r\n\r\n")
    check(status_of(s.recv(4096)) == 200)
    # Only a file's content changes: the resource list is the same, the
    # skill's digest is not.
    write(os.path.join(root, "lint", "SKILL.md"), "---\nname: lint\ndescription: Lint the code.\n---\nRun at.\n")
    d.signal(signal.SIGHUP)
    data, deadline = b"", time.time() + 10
    while b"list_changed" not in data and time.time() < deadline:
        c = s.recv(4096)
        if not c:
            break
        data += c
    check(b"notifications/resources/list_changed" in data, data)
    check(b"tools/list_changed" not in data, data)
    s.close()
    d.wait_log("reload complete")
    st, r, _ = rpc(port, sid, "skills/get", {"uri": "skill://lint/SKILL.md"})
    new = r["result"]["skill"]["resources"][0]
    check(new["digest"] != old and new["digest"] == sha(os.path.join(root, "lint", "SKILL.md"))[0], (old, new))
    # A broken skill refuses the reload and the old configuration serves on.
    write(os.path.join(root, "lint", "SKILL.md"), "---\nname: lint\n---\n")
    d.signal(signal.SIGHUP)
    d.wait_log("description")
    st, r, _ = rpc(port, sid, "skills/get", {"uri": "skill://lint/SKILL.md"})
    check(r["result"]["skill"]["resources"][0]["digest"] == new["digest"], r)
    d.stop()


def test_skills_check_command(t):
    """mcpd -t reads the conf/mcpd.yaml example's skills too."""
    root = os.path.join(t.dir, "ok")
    make_skills(root)
    path = os.path.join(t.dir, "ok.yaml")
    write(path, "listen: [127.0.0.1:%d]\nskills: [ok/deploy, ok/lint]\n" % free_port())
    rc, out, err = run_mcpd("-t", "-c", path)
    check(rc == 0, out + err)
