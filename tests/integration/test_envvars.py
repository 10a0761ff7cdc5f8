"""${VAR} in mcpd.yaml, read from the environment at start and on SIGHUP;
what a client sends is never expanded. The configurations shipped for
containers (Cloud Run) and Azure Functions, run as those platforms run
them."""

import json
import os
import re
import shutil
import signal
import subprocess

from harness import MCPD, ROOT, check, free_port, healthz_json, http, mcp_session, rpc, run_mcpd, wait_for


def text_of(r):
    check(r is not None and "result" in r, r)
    return "".join(c.get("text", "") for c in r["result"]["content"])


def where(path, needle):
    """file:line:column of the first $ of needle in the file, 1-based."""
    with open(path) as f:
        for i, line in enumerate(f, 1):
            j = line.find(needle)
            if j >= 0:
                return "%s:%d:%d" % (path, i, j + 1)
    raise AssertionError("%s not in %s" % (needle, path))


def test_port_from_environment(t):
    """Cloud Run's case: the port comes from PORT; a default not taken."""
    port = free_port()
    d = t.mcpd("listen:\n  - address: 127.0.0.1:${PORT:-1}\nworkers: ${MCPD_TEST_WORKERS:-1}\n")
    d.start(env={"PORT": str(port), "MCPD_TEST_WORKERS": "2"}, wait_url_port=port)
    check(healthz_json(port)["status"] == "ok")
    check(len(d.workers()) == 2, "workers: %s" % d.workers())
    check("127.0.0.1:%d" % port in d.log(), d.log()[-2000:])
    d.stop()


def test_default_used(t):
    port = free_port()
    d = t.mcpd("listen:\n  - address: \"127.0.0.1:${MCPD_TEST_NEVER_SET:-%d}\"\n"
               "workers: ${MCPD_TEST_NEVER_SET_EITHER:-1}\n" % port)
    d.start(env={"MCPD_TEST_NEVER_SET": ""}, wait_url_port=port)   # empty: the default too
    check(len(d.workers()) == 1, "workers: %s" % d.workers())
    d.stop()


def test_unset_variable_reported(t):
    """mcpd -t and a start both name the file, line and column of the $."""
    path = os.path.join(t.dir, "m.yaml")
    with open(path, "w") as f:
        f.write("server: { name: x }\nlisten:\n  - address: 127.0.0.1:${MCPD_TEST_NOT_SET}\n")
    rc, out, err = run_mcpd("-t", "-c", path)
    check(rc != 0, "exit 0: %s" % out)
    check("%s:3:24: environment variable MCPD_TEST_NOT_SET is not set" % path in err, err)
    check("1 error" in err and "configuration test failed" in err, err)
    # set, it passes
    rc, out, err = run_mcpd("-t", "-c", path, env={"MCPD_TEST_NOT_SET": "1"})
    check(rc == 0, err)
    # the daemon refuses to start, saying the same
    rc, out, err = run_mcpd("-c", path)
    check(rc != 0, "started: %s %s" % (out, err))
    check("%s:3:24: environment variable MCPD_TEST_NOT_SET is not set" % path in out + err, out + err)
    # malformed: in a block scalar, the line in it
    with open(path, "w") as f:
        f.write("listen: [127.0.0.1:1]\ntools:\n  - name: t\n    description: d\n"
                "    shell: |\n      echo ok\n      echo \"${1X}\"\n")
    rc, out, err = run_mcpd("-t", "-c", path)
    check(rc != 0 and "%s:7:13: invalid variable name" % path in err, err)
    with open(path, "w") as f:
        f.write("listen: [127.0.0.1:1]\nserver:\n  name: \"a ${MCPD_TEST_NOT_SET:-b\"\n")
    rc, out, err = run_mcpd("-t", "-c", path)
    check(rc != 0 and "%s:3:12: unterminated ${MCPD_TEST_NOT_SET:-" % path in err, err)
    # a shell variable of the run written for the shell must be escaped
    with open(path, "w") as f:
        f.write("listen: [127.0.0.1:1]\ntools:\n  - name: t\n    description: d\n"
                "    shell: 'echo \"${MCP_ARG_x:-none}\"'\n")
    rc, out, err = run_mcpd("-t", "-c", path)
    check(rc != 0 and "%s:5:19: ${MCP_ARG_x}: mcpd sets MCP_ variables" % path in err, err)


CALLS = """listen: [127.0.0.1:%(port)d]
workers: 1
server: { name: "${MCPD_TEST_NAME}" }
tools:
  - name: argv
    description: "${MCPD_TEST_GREETING} from argv"
    command: [/bin/echo, "${MCPD_TEST_GREETING}", "$${HOME}", $HOME, "a$$b"]
  - name: stdin
    description: Its arguments as they arrive on standard input.
    input: { text: string }
    command: [/bin/cat]
  - name: env
    description: An argument from the environment, through the shell.
    input: { text: string }
    shell: 'printf "%%s|%%s" "$MCP_ARG_text" "$${MCP_ARG_text:-unset}"'
prompts:
  - name: say
    description: Repeats.
    arguments: [{ name: text, required: true }]
    messages:
      - { role: user, text: "${MCPD_TEST_GREETING}: {{text}}" }
"""

ENV = {"MCPD_TEST_NAME": "from-env", "MCPD_TEST_GREETING": "hello"}


def test_command_arrays_expanded_escape_kept(t):
    port = free_port()
    d = t.mcpd(CALLS % {"port": port}).start(env=ENV, wait_url_port=port)
    sid = mcp_session(port)
    st, r, _ = rpc(port, sid, "tools/list")
    desc = {x["name"]: x.get("description") for x in r["result"]["tools"]}
    check(desc["argv"] == "hello from argv", desc)
    st, r, _ = rpc(port, sid, "tools/call", {"name": "argv", "arguments": {}})
    # operator text expanded; $${ is ${; a $ not before { untouched, and no shell
    check(text_of(r) == "hello ${HOME} $HOME a$$b", r)
    st, _, init = http(port, "POST", "/mcp", json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"}}}),
        {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
    check(b'"name":"from-env"' in init, init[:300])
    d.stop()


def test_client_arguments_never_expanded(t):
    """What a client sends reaches the tool literally: ${HOME} and the
    rest are text to the daemon, in arguments and in prompt arguments."""
    port = free_port()
    d = t.mcpd(CALLS % {"port": port}).start(env=ENV, wait_url_port=port)
    sid = mcp_session(port)
    lit = "${HOME} $${MCPD_TEST_GREETING} ${MCPD_TEST_GREETING:-x} ${1X} ${"
    st, r, _ = rpc(port, sid, "tools/call", {"name": "stdin", "arguments": {"text": lit}})
    check(json.loads(text_of(r)) == {"text": lit}, r)
    st, r, _ = rpc(port, sid, "tools/call", {"name": "env", "arguments": {"text": lit}})
    check(text_of(r) == lit + "|" + lit, r)
    st, r, _ = rpc(port, sid, "prompts/get", {"name": "say", "arguments": {"text": lit}})
    check(r["result"]["messages"][0]["content"]["text"] == "hello: " + lit, r)
    d.stop()


def test_reload_with_expansions(t):
    """SIGHUP reads the file again with the master's environment: the
    expansions hold; an unset one fails the reload and the old
    configuration goes on serving."""
    port = free_port()
    d = t.mcpd(CALLS % {"port": port}).start(env=ENV, wait_url_port=port)
    old = d.workers()
    d.write_config(CALLS % {"port": port} + "  - name: again\n    description: \"${MCPD_TEST_GREETING} again\"\n"
                   "    messages: [{ role: user, text: \"${MCPD_TEST_NAME:-x}\" }]\n")
    d.signal(signal.SIGHUP)
    d.wait_log("reload complete")
    sid = mcp_session(port)
    st, r, _ = rpc(port, sid, "prompts/list")
    desc = {x["name"]: x.get("description") for x in r["result"]["prompts"]}
    check(desc.get("again") == "hello again", desc)
    st, r, _ = rpc(port, sid, "prompts/get", {"name": "again"})
    check(r["result"]["messages"][0]["content"]["text"] == "from-env", r)
    # the old worker drains and goes
    new = wait_for(lambda: (lambda w: len(w) == 1 and not set(w) & set(old) and w)(d.workers()),
                   what="1 new worker and no old one")
    # now one the master's environment lacks
    d.write_config(CALLS % {"port": port} + "logs_are: ${MCPD_TEST_NOT_SET}\n")
    d.signal(signal.SIGHUP)
    d.wait_log("reload failed")
    check("%s:%d:11: environment variable MCPD_TEST_NOT_SET is not set"
          % (d.config_path, CALLS.count("\n") + 1) in d.log(), d.log()[-2000:])
    check(d.workers() == new, "workers changed after a failed reload")
    st, r, _ = rpc(port, sid, "tools/call", {"name": "argv", "arguments": {}})
    check(text_of(r).startswith("hello "), r)
    d.stop()


def test_container_config(t):
    """conf/container.yaml, which conf/Containerfile installs, as Cloud
    Run runs it: PORT set (K_SERVICE and the rest beside it), tools
    beside the file. No container engine builds the image in the test:
    the file and its tools run here as they would in it."""
    cfg = os.path.join(ROOT, "conf/container.yaml")
    env = {"PORT": "8080", "K_SERVICE": "mcpd", "K_REVISION": "mcpd-00001-abc",
           "K_CONFIGURATION": "mcpd", "MCPD_STATE_DIR": os.path.join(t.dir, "state")}
    rc, out, err = run_mcpd("-t", "-c", cfg, env=env)
    check(rc == 0, err)
    # without PORT: 8080
    rc, out, err = run_mcpd("-t", "-c", cfg, env={"PORT": ""})
    check(rc == 0, err)
    port = free_port()
    d = t.mcpd("")
    d.config_path = cfg
    d.start(env=dict(env, PORT=str(port), MCPD_WORKERS="2"), wait_url_port=port)
    check(len(d.workers()) == 2, d.workers())
    # listening on every address: any Host, as behind Cloud Run's front end
    st, _, _ = http(port, "GET", "/healthz", headers={"Host": "mcpd-abc-uc.a.run.app"})
    check(st == 200, st)
    sid = mcp_session(port)
    st, r, _ = rpc(port, sid, "tools/call", {"name": "greet", "arguments": {"name": "Run"}})
    check(text_of(r) == "Hello, Run!", r)
    check('"msg"' in d.log() or '"message"' in d.log(), "log not JSON: %s" % d.log()[-500:])
    d.stop()
    check(os.path.isdir(os.path.join(t.dir, "state")), "storage path not from MCPD_STATE_DIR")


def test_containerfile(t):
    """What conf/Containerfile promises and can be checked without an
    engine: Debian slim stages, a non-root user, the shipped config, the
    runtime libraries computed from what was built."""
    with open(os.path.join(ROOT, "conf/Containerfile")) as f:
        text = f.read()
    froms = re.findall(r"^FROM (\S+)(?: AS (\S+))?$", text, re.M)
    check(len(froms) == 2 and all(b.startswith("debian:") and b.endswith("-slim") for b, _ in froms), froms)
    runtime = text.split("\nFROM ")[-1]
    check("apt-get install" in runtime and "$(cat /tmp/runtime-packages)" in runtime, runtime)
    check("-dev" not in runtime, "build packages in the runtime stage")
    users = re.findall(r"^USER (\S+)$", runtime, re.M)
    check(users and users[-1] not in ("root", "0"), users)
    check("conf/container.yaml" in text and "scripts/runtime-packages" in text)
    for p in re.findall(r"\b((?:conf|scripts)/[\w./-]+)", text):
        check(os.path.exists(os.path.join(ROOT, p)), "Containerfile names %s, which is missing" % p)


def test_runtime_packages(t):
    """scripts/runtime-packages, which picks the runtime stage's packages:
    the libraries of what is given and no more; an error, not a silent
    gap, for what it cannot place."""
    script = os.path.join(ROOT, "scripts/runtime-packages")
    plugins = os.path.join(os.path.dirname(os.path.abspath(MCPD)), "plugins")
    p = subprocess.run([script, MCPD, os.path.join(plugins, "lmdb.so")], capture_output=True, text=True)
    check(p.returncode == 0, p.stderr)
    pkgs = p.stdout.split()
    for want in ("libc6", "libevent-2.1-7", "libyaml-0-2", "libcjson1", "liblmdb0", "libssl3"):
        check(want in pkgs, "%s not in %s" % (want, pkgs))
    check(pkgs == sorted(set(pkgs)), pkgs)
    p = subprocess.run([script, os.path.join(plugins, "memory.so")], capture_output=True, text=True)
    check(p.returncode == 0 and "libc6" in p.stdout.split(), p.stderr)
    check("liblmdb0" not in p.stdout and "libyaml-0-2" not in p.stdout, p.stdout)
    p = subprocess.run([script, os.path.join(t.dir, "missing")], capture_output=True, text=True)
    check(p.returncode != 0 and "ldd" in p.stderr, (p.returncode, p.stderr))
    # a library that belongs to no package is refused
    with open(os.path.join(t.dir, "stray.c"), "w") as f:
        f.write("int stray(void) { return 1; }\n")
    with open(os.path.join(t.dir, "main.c"), "w") as f:
        f.write("int stray(void);\nint main(void) { return stray(); }\n")
    stray = os.path.join(t.dir, "uses-stray")
    for argv in (["cc", "-shared", "-fPIC", "-o", os.path.join(t.dir, "libstray.so"), os.path.join(t.dir, "stray.c")],
                 ["cc", "-o", stray, os.path.join(t.dir, "main.c"), "-L" + t.dir, "-lstray", "-Wl,-rpath," + t.dir]):
        cc = subprocess.run(argv, capture_output=True, text=True)
        check(cc.returncode == 0, cc.stderr)
    p = subprocess.run([script, stray], capture_output=True, text=True)
    check(p.returncode != 0 and "libstray.so belongs to no package" in p.stderr, (p.returncode, p.stderr))


def azure_app(t):
    """The app's directory as the README says to lay it out: the files of
    conf/azure-functions, the tools beside mcpd.yaml, bin/mcpd."""
    app = os.path.join(t.dir, "wwwroot")
    shutil.copytree(os.path.join(ROOT, "conf/azure-functions"), app)
    shutil.copytree(os.path.join(ROOT, "conf/tools"), os.path.join(app, "tools"))
    os.makedirs(os.path.join(app, "bin"))
    os.symlink(os.path.abspath(MCPD), os.path.join(app, "bin/mcpd"))
    return app


def test_azure_functions_files(t):
    """host.json and mcp/function.json are JSON of the shape the Functions
    host reads for a custom handler that is forwarded every request."""
    app = azure_app(t)
    with open(os.path.join(app, "host.json")) as f:
        host = json.load(f)
    check(host["version"] == "2.0", host)
    ch = host["customHandler"]
    check(ch["enableForwardingHttpRequest"] is True, ch)
    desc = ch["description"]
    check(os.access(os.path.join(app, desc["defaultExecutablePath"]), os.X_OK), desc)
    args = desc["arguments"]
    check(args[0] == "-c" and os.path.isfile(os.path.join(app, desc.get("workingDirectory", ""), args[1])), args)
    check(host["extensions"]["http"]["routePrefix"] == "", "requests would arrive under /api")
    fdirs = [e for e in os.listdir(app) if os.path.isfile(os.path.join(app, e, "function.json"))]
    check(fdirs == ["mcp"], fdirs)
    with open(os.path.join(app, "mcp/function.json")) as f:
        fn = json.load(f)
    ins = [b for b in fn["bindings"] if b["direction"] == "in"]
    outs = [b for b in fn["bindings"] if b["direction"] == "out"]
    check(len(ins) == 1 and ins[0]["type"] == "httpTrigger", ins)
    check({"get", "post", "delete"} <= set(m.lower() for m in ins[0]["methods"]), ins)
    check(ins[0]["route"] == "{*path}" and ins[0]["authLevel"] == "anonymous", ins)
    check(len(outs) == 1 and outs[0]["type"] == "http", outs)


def test_azure_functions_handler(t):
    """mcpd started as the Functions host starts the handler: in the app's
    directory, with host.json's arguments, FUNCTIONS_CUSTOMHANDLER_PORT
    and WEBSITE_HOSTNAME set; requests forwarded with the app's Host."""
    app = azure_app(t)
    cfg = os.path.join(app, "mcpd.yaml")
    with open(os.path.join(app, "host.json")) as f:
        args = json.load(f)["customHandler"]["description"]["arguments"]
    port = free_port()
    env = {"FUNCTIONS_CUSTOMHANDLER_PORT": str(port), "WEBSITE_HOSTNAME": "mcpd-test.azurewebsites.net",
           "MCPD_STATE_DIR": os.path.join(t.dir, "state"), "MCPD_WORKERS": "1"}
    rc, out, err = run_mcpd("-t", "-c", cfg, env=env)
    check(rc == 0, err)
    d = t.mcpd("")
    d.config_path = args[1]
    d.start(env=env, extra_args=args[2:], cwd=app, exe=os.path.join(app, "bin/mcpd"), wait_url_port=port)
    st, _, _ = http(port, "GET", "/healthz", headers={"Host": "mcpd-test.azurewebsites.net"})
    check(st == 200, st)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "greet", "arguments": {"name": "Func"},
                                  "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
                                            "io.modelcontextprotocol/clientCapabilities": {}}}})
    st, hdrs, data = http(port, "POST", "/mcp", body,
                          {"Host": "mcpd-test.azurewebsites.net", "Content-Type": "application/json",
                           "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28",
                           "Mcp-Method": "tools/call", "Mcp-Name": "greet"})
    check(st == 200, (st, data[:300]))
    check(b"Hello, Func!" in data, data[:300])
    # loopback only, so not any Host: the app's, and localhost
    st, _, data = http(port, "POST", "/mcp", body, {"Host": "other.example.com", "Content-Type": "application/json",
                                                    "Accept": "application/json, text/event-stream",
                                                    "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call",
                                                    "Mcp-Name": "greet"})
    check(st == 403, (st, data[:300]))
    d.stop()


def test_azure_functions_port_required(t):
    app = azure_app(t)
    cfg = os.path.join(app, "mcpd.yaml")
    env = dict(os.environ)
    env.pop("FUNCTIONS_CUSTOMHANDLER_PORT", None)
    p = subprocess.run([MCPD, "-t", "-c", cfg], capture_output=True, text=True, env=env)
    check(p.returncode != 0, p.stdout)
    check(where(cfg, "${FUNCTIONS_CUSTOMHANDLER_PORT}") +
          ": environment variable FUNCTIONS_CUSTOMHANDLER_PORT is not set" in p.stderr, p.stderr)
