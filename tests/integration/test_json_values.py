"""What a tool and a client see of JSON values: a command sees validated
arguments under their declared names only, numbers as the client wrote
them (ids too), strict JSON (no raw control characters, no duplicate
names), and arguments too large for the environment still reach it on
standard input."""

import json
import os
import resource

from harness import (MCP_HEADERS, check, free_port, http, mcp_session, rpc, run_mcpd, sse_events)

V = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": V,
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}

# Each command prints the MCP_ARG_ variables it got, then its stdin.
SHOW = "env | grep ^MCP_ARG_ | LC_ALL=C sort; echo ---; cat"

CONFIG = """listen: [127.0.0.1:%(port)d]
workers: 1
limits: { max_body: 8MiB }
tools:
  - name: pick
    description: A declared file_name that must be "safe".
    input: { file_name: { type: string, enum: [safe] } }
    shell: 'printf "%%s" "$MCP_ARG_file_name"'
  - name: open
    description: Declared a, anything else allowed (stdin only).
    input_schema:
      type: object
      properties: { a: { type: string } }
      additionalProperties: true
    shell: '%(show)s'
  - name: bare
    description: Declares no input.
    shell: '%(show)s'
  - name: num
    description: Integers and numbers.
    input:
      n: integer
      x: number
      big: { type: integer, maximum: 9007199254740992 }
      odd: { type: integer, enum: [9007199254740993] }
      step: { type: integer, multipleOf: 3 }
      mill: { type: number, minimum: 0.1 }
    shell: '%(show)s'
  - name: talk
    description: Progress, then the result.
    shell: 'mcpd-tool progress 1 2; echo done'
  - name: ask
    description: Asks before it answers (MRTR under 2026-07-28).
    input: { n: integer }
    shell: 'a=$(mcpd-tool elicit --key q "Go?" "{\\"type\\":\\"object\\"}") && printf "n=%%s got=%%s in=%%s" "$MCP_ARG_n" "$(mcpd-tool get content.v "$a")" "$(mcpd-tool get n)"'
  - name: structured
    description: Prints JSON with a big integer in it.
    shell: 'printf "{\\"n\\":9007199254740993,\\"f\\":1000000000000000}"'
    output: json
  - name: controlled
    description: Prints JSON with a raw control character inside a string.
    shell: 'printf "{\\"s\\":\\"a\\001b\\"}"'
    output: json
  - name: large
    description: Large arguments; prints which variables it got and the size of its stdin.
    input: { text: string, n: integer }
    shell: 'printf "%%s|%%s|%%s|" "$${MCP_ARG_text+set}" "$MCP_ARG_n" "$${MCP_CLIENT_CAPABILITIES+caps}"; wc -c'
  - name: many
    description: Many large arguments.
    input: { %(many)s }
    shell: 'env | grep -c ^MCP_ARG_; wc -c'
resources:
  - uri_template: "tmpl://{id}/{a-b}"
    name: tmpl
    shell: 'printf "%%s\\n" "$MCP_RESOURCE_URI"; %(show)s'
prompts:
  - name: greet
    arguments: [{ name: who, required: true }]
    messages: [{ role: user, text: "Hello {{who}}" }]
  - name: ran
    arguments: [{ name: who, required: true }, { name: how }]
    shell: 'printf "[{\\"role\\":\\"user\\",\\"content\\":{\\"type\\":\\"text\\",\\"text\\":\\"%%s\\"}}]" "$({ %(show)s; } | tr "\\n\\"" "; ")"'
  - name: done
    arguments:
      - { name: who, complete: [sh, -c, '%(show)s'] }
      - { name: how }
    messages: [{ role: user, text: "{{who}} {{how}}" }]
"""

MANY = 24


def stack_8mib():
    # The kernel's limit on a command's arguments and environment is a
    # quarter of the stack limit: 2 MiB here, whatever the shell had.
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    want = 8 << 20
    resource.setrlimit(resource.RLIMIT_STACK, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))


def start(t, extra=""):
    port = free_port()
    many = ", ".join("a%d: string" % i for i in range(MANY))
    cfg = CONFIG % {"port": port, "show": SHOW, "many": many} + extra
    d = t.mcpd(cfg).start(wait_url_port=port, preexec_fn=stack_8mib)
    return d, port


def post_raw(port, body, sid=None, headers=None):
    """POST a body as it is (bytes or text); returns status and the raw body."""
    h = dict(MCP_HEADERS)
    if sid:
        h["Mcp-Session-Id"] = sid
        h["MCP-Protocol-Version"] = "2025-11-25"
    h.update(headers or {})
    st, hdrs, data = http(port, "POST", "/mcp", body, h)
    return st, hdrs, data


def call(port, sid, name, args, id=1, headers=None):
    return rpc(port, sid, "tools/call", {"name": name, "arguments": args}, id=id, headers=headers)


def text_of(r):
    check(r is not None and "result" in r, r)
    return r["result"]["content"][0]["text"]


def stateless(port, method, params, id=1, name=None, headers=None):
    p = dict(params)
    p["_meta"] = META
    h = {"Content-Type": "application/json", "Accept": "application/json",
         "MCP-Protocol-Version": V, "Mcp-Method": method}
    if name is not None:
        h["Mcp-Name"] = name
    h.update(headers or {})
    st, hdrs, data = http(port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": id, "method": method,
                                                            "params": p}), h)
    return st, data


def test_undeclared_arguments_never_reach_the_environment(t):
    d, port = start(t)
    sid = mcp_session(port)
    # The attack: a second name that maps to the same variable.
    st, r, _ = call(port, sid, "pick", {"file_name": "safe", "file-name": "EVIL"})
    check(r["result"].get("isError") and 'unexpected property "file-name"' in text_of(r), r)
    check("EVIL" not in json.dumps(r), r)
    st, r, _ = call(port, sid, "pick", {"file_name": "safe"})
    check(text_of(r) == "safe" and not r["result"].get("isError"), r)
    # The same name twice is not JSON mcpd takes.
    st, _, data = post_raw(port, '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"pick",'
                           '"arguments":{"file_name":"safe","file_name":"EVIL"}}}', sid)
    r = json.loads(data)
    check(st == 400 and r["error"]["code"] == -32700 and "file_name" in r["error"]["message"], (st, r))
    # 2025-06-18: the protocol error.
    old = mcp_session(port, proto="2025-06-18")
    st, r, _ = call(port, old, "pick", {"file_name": "safe", "file-name": "EVIL"},
                    headers={"MCP-Protocol-Version": "2025-06-18"})
    check(r["error"]["code"] == -32602 and "file-name" in r["error"]["message"], r)
    # 2026-07-28: a tool error, as for any invalid argument.
    st, data = stateless(port, "tools/call", {"name": "pick", "arguments": {"file_name": "safe", "file-name": "EVIL"}},
                         name="pick")
    r = json.loads(data)
    check(r["result"]["isError"] and "file-name" in text_of(r) and "EVIL" not in data.decode(), r)
    # The published schema says so.
    st, r, _ = rpc(port, sid, "tools/list")
    schemas = {x["name"]: x["inputSchema"] for x in r["result"]["tools"]}
    check(schemas["pick"].get("additionalProperties") is False, schemas["pick"])
    check(schemas["open"].get("additionalProperties") is True, schemas["open"])
    # Allowed undeclared arguments reach stdin, never the environment.
    args = {"a": "1", "b-c": "2", "a_": "3"}
    st, r, _ = call(port, sid, "open", args)
    env, _, stdin = text_of(r).partition("---\n")
    check(env == "MCP_ARG_a=1\n" and json.loads(stdin) == args, text_of(r))
    # A tool that declares no input gets what the client sent on stdin only.
    st, r, _ = call(port, sid, "bare", {"x": "1", "PATH": "/evil"})
    env, _, stdin = text_of(r).partition("---\n")
    check(env == "" and json.loads(stdin) == {"x": "1", "PATH": "/evil"}, text_of(r))
    d.wait_log("tools/call")
    check("EVIL" not in d.log(), "the undeclared value reached a command")
    d.stop()


def test_prompts_and_templates_take_declared_names_only(t):
    d, port = start(t)
    sid = mcp_session(port)
    st, r, _ = rpc(port, sid, "prompts/get", {"name": "greet", "arguments": {"who": "Ann", "wh-o": "x"}})
    check(r["error"]["code"] == -32602 and "wh-o" in r["error"]["message"], r)
    st, r, _ = rpc(port, sid, "prompts/get", {"name": "ran", "arguments": {"who": "Ann", "w-ho": "EVIL"}})
    check(r["error"]["code"] == -32602 and "w-ho" in r["error"]["message"], r)
    st, r, _ = rpc(port, sid, "prompts/get", {"name": "ran", "arguments": {"who": "Ann"}})
    text = r["result"]["messages"][0]["content"]["text"]
    check(text.startswith("MCP_ARG_who=Ann;---;"), text)
    # Completion context: undeclared names are dropped, declared ones pass.
    st, r, _ = rpc(port, sid, "completion/complete", {
        "ref": {"type": "ref/prompt", "name": "done"}, "argument": {"name": "who", "value": "A"},
        "context": {"arguments": {"how": "x", "ho-w": "EVIL", "who": "B"}}})
    values = r["result"]["completion"]["values"]
    check(values[:3] == ["MCP_ARG_how=x", "MCP_ARG_who=A", "---"] and json.loads(values[3]) == {"how": "x", "who": "A"},
          values)
    # A template's variables are its declared names.
    st, r, _ = rpc(port, sid, "resources/read", {"uri": "tmpl://7/x"})
    out = r["result"]["contents"][0]["text"]
    check(out.startswith("tmpl://7/x\nMCP_ARG_a_b=x\nMCP_ARG_id=7\n---\n"), out)
    d.wait_log("completion/complete")
    check("EVIL" not in d.log())
    d.stop()


def config_error(t, body):
    path = os.path.join(t.dir, "bad.yaml")
    with open(path, "w") as f:
        f.write("listen: [127.0.0.1:%d]\n%s" % (free_port(), body))
    rc, out, err = run_mcpd("-t", "-c", path)
    return rc, err


def test_colliding_names_are_config_errors(t):
    rc, err = config_error(t, "tools:\n  - name: x\n    input: { file_name: string, file-name: string }\n"
                              "    command: [cat]\n")
    check(rc != 0 and "bad.yaml:4:" in err and "MCP_ARG_file_name" in err, err)
    rc, err = config_error(t, "tools:\n  - name: x\n    input_schema:\n      type: object\n"
                              "      properties:\n        a.b: { type: string }\n        a_b: { type: string }\n"
                              "    command: [cat]\n")
    check(rc != 0 and "bad.yaml:8:9:" in err and "MCP_ARG_a_b" in err, err)
    # Three names, one variable: the second and third are each an error.
    rc, err = config_error(t, "tools:\n  - name: x\n    input:\n      a.b: string\n      c: string\n"
                              "      a b: string\n      a-b: string\n    command: [cat]\n")
    check(rc != 0 and "bad.yaml:7:7:" in err and "bad.yaml:8:7:" in err and '"a.b" and "a-b"' in err
          and "bad.yaml:5:" not in err, err)
    rc, err = config_error(t, "resources:\n  - uri_template: \"x://{a-b}/{a.b}\"\n    name: x\n    command: [cat]\n")
    check(rc != 0 and "bad.yaml:3:" in err and "MCP_ARG_a_b" in err, err)
    rc, err = config_error(t, "resources:\n  - uri_template: \"x://{id}/{id}\"\n    name: x\n    command: [cat]\n")
    check(rc != 0 and "bad.yaml:3:" in err and "{id}" in err, err)
    rc, err = config_error(t, "prompts:\n  - name: p\n    arguments: [{ name: a-b }, { name: a_b }]\n"
                              "    command: [cat]\n")
    check(rc != 0 and "bad.yaml:4:" in err and "MCP_ARG_a_b" in err, err)


def test_numbers_and_ids_travel_exactly(t):
    d, port = start(t)
    sid = mcp_session(port)
    # Integers reach the command as written: environment and stdin.
    body = ('{"jsonrpc":"2.0","id":9007199254740993,"method":"tools/call","params":{"name":"num",'
            '"arguments":{"n":1000000000000000,"x":9007199254740993,"mill":0.1}}}')
    st, _, data = post_raw(port, body, sid)
    check(st == 200 and data.startswith(b'{"jsonrpc":"2.0","id":9007199254740993,'), data)
    out = json.loads(data)["result"]["content"][0]["text"]
    env, _, stdin = out.partition("---\n")
    check(env == "MCP_ARG_mill=0.1\nMCP_ARG_n=1000000000000000\nMCP_ARG_x=9007199254740993\n", out)
    check(stdin == '{"n":1000000000000000,"x":9007199254740993,"mill":0.1}', out)
    # Ids come back as written, in errors too, and in SSE.
    for id_text in ("9007199254740993", "-0", "1.5e300", "12345678901234567890123"):
        st, _, data = post_raw(port, '{"jsonrpc":"2.0","id":%s,"method":"no/such"}' % id_text, sid)
        check(('"id":%s,' % id_text).encode() in data, (id_text, data))
    st, _, data = post_raw(port, '{"jsonrpc":"1.0","id":9007199254740993,"method":"ping"}', sid)
    check(st == 400 and b'"id":9007199254740993,' in data, data)
    st, _, data = post_raw(port, '{"jsonrpc":"2.0","id":9007199254740995,"method":"tools/call","params":'
                           '{"name":"talk","arguments":{},"_meta":{"progressToken":9007199254740997}}}', sid)
    check(b'"progressToken":9007199254740997,' in data and b'"id":9007199254740995,' in data, data)
    # Validation judges the number written, not its nearest double.
    for args, why in (('{"big":9007199254740993}', "at most 9007199254740992"),
                      ('{"odd":9007199254740992}', "must be one of [9007199254740993]"),
                      ('{"n":12345678901234567890.5}', "expected integer"),
                      ('{"step":9007199254740995}', "multiple of 3"),
                      ('{"mill":0.09999999999999999999}', "at least 0.1")):
        st, _, data = post_raw(port, '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":'
                               '{"name":"num","arguments":%s}}' % args, sid)
        r = json.loads(data)
        check(r["result"].get("isError") and why in text_of(r), (args, r))
    for args in ('{"big":9007199254740992}', '{"odd":9007199254740993}', '{"n":1e2}', '{"n":1.50e1}',
                 '{"step":9007199254740993}', '{"mill":0.1}', '{"mill":1e-1}'):
        st, _, data = post_raw(port, '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":'
                               '{"name":"num","arguments":%s}}' % args, sid)
        r = json.loads(data)
        check(not r["result"].get("isError"), (args, r))
    # A command's JSON output keeps its numbers too.
    st, _, data = post_raw(port, '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"structured"}}', sid)
    check(b'"structuredContent":{"n":9007199254740993,"f":1000000000000000}' in data, data)
    # 2026-07-28: the same.
    st, data = stateless(port, "tools/call", {"name": "num", "arguments": {"n": 9007199254740993}},
                         id=9007199254740993, name="num")
    check(data.startswith(b'{"jsonrpc":"2.0","id":9007199254740993,') and
          b"MCP_ARG_n=9007199254740993" in data, data)
    d.stop()


def test_request_state_is_bound_to_exact_arguments(t):
    d, port = start(t)
    st, data = stateless(port, "tools/call", {"name": "ask", "arguments": {"n": 9007199254740992}}, name="ask")
    res = json.loads(data)["result"]
    check(res["resultType"] == "input_required", res)
    # The client's answer travels through requestState and mcpd-tool intact.
    answer = {"q": {"action": "accept", "content": {"v": 12345678901234567890123}}}
    st, data = stateless(port, "tools/call", {"name": "ask", "arguments": {"n": 9007199254740993},
                                              "inputResponses": answer, "requestState": res["requestState"]},
                         name="ask")
    r = json.loads(data)
    check("error" in r and "another request" in r["error"]["message"], r)
    st, data = stateless(port, "tools/call", {"name": "ask", "arguments": {"n": 9007199254740992},
                                              "inputResponses": answer, "requestState": res["requestState"]},
                         name="ask")
    check(json.loads(data)["result"]["content"][0]["text"] ==
          "n=9007199254740992 got=12345678901234567890123 in=9007199254740992", data)
    d.stop()


def test_raw_control_characters_are_parse_errors(t):
    d, port = start(t)
    sid = mcp_session(port)
    for raw in (b"a\x00b", b"a\x01b", b"tab\there", b"new\nline", b"\x1f"):
        body = b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"pick","arguments":{"file_name":"' \
            + raw + b'"}}}'
        st, _, data = post_raw(port, body, sid)
        r = json.loads(data)
        check(st == 400 and r["error"]["code"] == -32700 and "control character" in r["error"]["message"], (raw, st, r))
    # In a name too, and outside strings (only space, tab, CR and LF separate tokens).
    for body in (b'{"jsonrpc":"2.0","id":5,"method":"ping","params":{"a\x00b":1}}',
                 b'{"jsonrpc":"2.0",\x0b"id":5,"method":"ping"}',
                 b'{"jsonrpc":"2.0","id":5,"method":"ping"}\x00'):
        st, _, data = post_raw(port, body, sid)
        check(st == 400 and json.loads(data)["error"]["code"] == -32700, (body, data))
    # Escaped, the same characters are fine.
    st, r, _ = call(port, sid, "open", {"a": "tab\there\u0001"})
    env, _, stdin = text_of(r).partition("---\n")
    check(json.loads(stdin) == {"a": "tab\there\u0001"}, text_of(r))
    # A command's output with a raw control character is not JSON either.
    st, r, _ = call(port, sid, "controlled", {})
    check(r["result"].get("isError") and "not valid JSON" in text_of(r), r)
    d.stop()


def test_large_arguments_reach_the_command_on_stdin(t):
    d, port = start(t)
    sid = mcp_session(port)
    text = "x" * (200 * 1024)
    st, r, _ = call(port, sid, "large", {"text": text, "n": 5})
    want_stdin = len(json.dumps({"text": text, "n": 5}, separators=(",", ":"))) + 1
    check(not r["result"].get("isError") and text_of(r) == "|5|caps|%d" % want_stdin, r)
    # Just under the kernel's limit for one string, the variable is set.
    text = "y" * (128 * 1024 - len("MCP_ARG_text=") - 1)
    st, r, _ = call(port, sid, "large", {"text": text})
    check(text_of(r).startswith("set||caps|"), r)
    text += "y"
    st, r, _ = call(port, sid, "large", {"text": text})
    check(text_of(r).startswith("||caps|"), r)
    # Many large ones together: some variables are left out, stdin has all.
    args = {"a%d" % i: "z" * (100 * 1024) for i in range(MANY)}
    st, r, _ = call(port, sid, "many", args)
    lines = text_of(r).split("\n")
    check(not r["result"].get("isError") and 0 < int(lines[0]) < MANY and
          int(lines[1]) == len(json.dumps(args, separators=(",", ":"))) + 1, r)
    # Capabilities too large for the environment are left out, and the call runs.
    big = mcp_session(port, caps={"experimental": {"x": {"pad": "c" * (200 * 1024)}}})
    st, r, _ = call(port, big, "large", {"n": 1})
    check(text_of(r).startswith("|1||"), r)
    # A long template URI reaches the command whole.
    uri = "tmpl://%s/x" % ("u" * 5000)
    st, r, _ = rpc(port, sid, "resources/read", {"uri": uri})
    out = r["result"]["contents"][0]["text"]
    check(out.split("\n")[0] == uri, out[:100])
    d.stop()
