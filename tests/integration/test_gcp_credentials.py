"""Google's Application Default Credentials (plugins/common/gcp_auth.c) as
mcpd uses them, each source in a test, with the firestore (and pubsub)
plugins against the emulators behind a front end that accepts only the
access tokens the test's token endpoints issued (the emulators take no
credentials). The token endpoint, the security token service, the IAM
credentials endpoint and the metadata server are small servers written
here from Google's documentation of them:

- OAuth 2.0 for service accounts: a JWT (RS256, iss the client_email,
  scope, aud the token_uri, iat, exp an hour later) POSTed as
  grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=...;
  verified here with the key's public half (the cryptography package);
- the authorized user's refresh token (grant_type=refresh_token);
- workload identity federation: STS token exchange (RFC 8693) of the
  subject token, then generateAccessToken with the federated token;
- the metadata server: GET /computeMetadata/v1/instance/service-accounts/
  default/token with Metadata-Flavor: Google.

Tokens live a few seconds here, so that mcpd renews them within a test."""

import base64
import json
import os
import threading
import time
import urllib.parse
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gcppeer import PROJECT, firestore_emulator, pubsub_emulator
from harness import all_ready, check_not_ready, call_tool, check, free_port, http, key_file, mcp_session, rpc, wait_for, workers_ready
from test_firestore import FakeGoogle
from test_redis import TOOLS

SA_EMAIL = "mcpd@test-project.iam.gserviceaccount.com"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Tokens:
    """The token side of Google, on a loopback port: /token (OAuth 2.0:
    JWT bearer and refresh token grants), /sts (token exchange),
    /iam/...:generateAccessToken (impersonation) and the metadata
    server's token path. Every token it issues lives `life` seconds;
    self.valid holds those not expired or revoked; self.seen what it was
    asked, self.errors what it refused and why."""

    def __init__(self, t, life=6):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        self.life, self.valid, self.seen, self.errors, self.refuse = life, {}, [], [], None
        self.subject = None             # the subject token STS expects
        self.n = 0
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public = key.public_key()
        self.pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()
        self.lock = threading.Lock()
        srv = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if self.path.startswith("/computeMetadata"):
                    self.send_header("Metadata-Flavor", "Google")
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                srv.seen.append(("GET", self.path, dict(self.headers)))
                if self.path != "/computeMetadata/v1/instance/service-accounts/default/token":
                    return self.reply(404, {"error": "not found"})
                if self.headers.get("Metadata-Flavor") != "Google":
                    srv.errors.append("no Metadata-Flavor header")
                    return self.reply(403, {"error": "Missing Metadata-Flavor:Google header"})
                self.reply(200, srv.issue("metadata"))

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                srv.seen.append(("POST", self.path, dict(self.headers), body))
                if srv.refuse:
                    return self.reply(400, srv.refuse)
                if self.path == "/token":
                    return self.reply(*srv.oauth(urllib.parse.parse_qs(body)))
                if self.path == "/sts":
                    return self.reply(*srv.sts(urllib.parse.parse_qs(body)))
                if self.path.endswith(":generateAccessToken"):
                    return self.reply(*srv.impersonate(self.headers.get("Authorization", ""), body))
                self.reply(404, {"error": "not found"})

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        t.daemons.append(self)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def issue(self, how, kind="service"):
        with self.lock:
            self.n += 1
            tok = "ya29.%s-%d-%s" % (how, self.n, base64.urlsafe_b64encode(os.urandom(18)).decode())
            self.valid[tok] = (time.time() + self.life, kind, how)
        return {"access_token": tok, "expires_in": self.life, "token_type": "Bearer"}

    def good(self, auth, kind="service"):
        """Is auth ("Bearer <token>") a token issued here, of kind, not expired?"""
        if not auth or not auth.startswith("Bearer "):
            return False
        v = self.valid.get(auth[7:])
        return v is not None and v[0] > time.time() and v[1] == kind

    def oauth(self, form):
        grant = form.get("grant_type", [""])[0]
        if grant == "refresh_token":
            if (form.get("client_id") != ["cid.apps.googleusercontent.com"] or form.get("client_secret") != ["csecret"]
                    or form.get("refresh_token") != ["1//refresh"]):
                self.errors.append("bad refresh grant: %s" % form)
                return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
            return 200, self.issue("user")
        if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            self.errors.append("grant %s" % grant)
            return 400, {"error": "unsupported_grant_type"}
        why = self.verify(form.get("assertion", [""])[0])
        if why:
            self.errors.append(why)
            return 400, {"error": "invalid_grant", "error_description": why}
        return 200, self.issue("jwt")

    def verify(self, jwt):
        """Why the service account's JWT is not good, or None."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        try:
            h, c, s = jwt.split(".")
            header, claims = json.loads(b64url_decode(h)), json.loads(b64url_decode(c))
            self.public.verify(b64url_decode(s), ("%s.%s" % (h, c)).encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return "Invalid JWT Signature."
        except Exception as e:
            return "not a JWT: %s" % e
        now = time.time()
        if header.get("alg") != "RS256" or header.get("kid") != "key-1":
            return "header %s" % header
        if claims.get("iss") != SA_EMAIL or claims.get("scope") != SCOPE or claims.get("aud") != self.url + "/token":
            return "claims %s" % claims
        if not (now - 60 <= claims["iat"] <= now + 5) or claims["exp"] - claims["iat"] != 3600:
            return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe"
        return None

    def sts(self, form):
        want = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k8s",
                "scope": SCOPE, "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt", "subject_token": self.subject}
        for k, v in want.items():
            if form.get(k) != [v]:
                self.errors.append("sts: %s is %s" % (k, form.get(k)))
                return 400, {"error": "invalid_request", "error_description": "bad " + k}
        return 200, dict(self.issue("sts", kind="federated"), issued_token_type="urn:ietf:params:oauth:token-type:access_token")

    def impersonate(self, auth, body):
        if not self.good(auth, kind="federated"):
            self.errors.append("impersonation without a federated token: %s" % auth[:20])
            return 401, {"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                                   "status": "UNAUTHENTICATED"}}
        req = json.loads(body)
        if req.get("scope") != [SCOPE]:
            return 400, {"error": {"code": 400, "message": "bad scope", "status": "INVALID_ARGUMENT"}}
        tok = self.issue("impersonated")
        expire = (datetime.now(timezone.utc) + timedelta(seconds=self.life)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return 200, {"accessToken": tok["access_token"], "expireTime": expire}

    def grants(self, how):
        return sum(1 for v in self.valid.values() if v[2] == how)

    def kill(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def log(self):
        return "errors: %s" % self.errors

    def sanitizer_report(self):
        return None

    log_path = "(the token endpoints)"


def front(t, e, tokens):
    """The emulator behind a front end that wants a valid token, as Google
    does: 401 UNAUTHENTICATED otherwise."""
    g = FakeGoogle(e.port)
    t.daemons.append(g)

    def gate(method, path, headers, body):
        if tokens.good(headers.get("Authorization")):
            return None
        return (401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.")
    g.always = gate
    return g


def write_json(t, name, obj):
    path = os.path.join(t.dir, name)
    with open(path, "w") as f:
        json.dump(obj, f)
    return path


def sa_file(t, tokens):
    return write_json(t, "sa.json", {"type": "service_account", "project_id": PROJECT, "private_key_id": "key-1",
                                     "private_key": tokens.pem, "client_email": SA_EMAIL,
                                     "token_uri": tokens.url + "/token"})


# Nothing of the test's own environment chooses a source.
CLEAN = {"GOOGLE_APPLICATION_CREDENTIALS": "", "GCE_METADATA_HOST": "", "FIRESTORE_EMULATOR_HOST": "",
         "PUBSUB_EMULATOR_HOST": "", "GOOGLE_CLOUD_PROJECT": ""}


def instance(t, g, env, workers=2, name="A", transport="", ready=True):
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: %d\nstorage: { plugin: firestore, project: %s, endpoint: \"%s\", "
               "credentials: default }\n%srequest_state: { key_file: %s }\n%s"
               % (port, workers, PROJECT, g.url, transport, key_file(t), TOOLS % {"name": name}), name="%s.yaml" % name)
    d.start(env=dict(CLEAN, HOME=t.dir, **env), wait_url_port=port)
    if ready:
        workers_ready(port, workers, timeout=20)
    return d, port


def calls_for(port, sid, seconds):
    """tools/call over and over for seconds: the statuses."""
    out, end, i = [], time.time() + seconds, 0
    while time.time() < end:
        i += 1
        out.append(rpc(port, sid, "tools/call", {"name": "where", "arguments": {}}, id=i)[0])
        time.sleep(0.05)
    return out


def no_secrets(d, tokens, *more):
    log = d.log()
    for tok in tokens.valid:
        check(tok not in log, "an access token in the log")
    key_line = tokens.pem.splitlines()[5]
    check(key_line not in log, "the private key in the log")
    for s in more:
        check(s not in log, "a secret in the log")


def test_service_account_key(t):
    """GOOGLE_APPLICATION_CREDENTIALS names a service account key: mcpd signs
    a JWT with it (verified at the token endpoint with the public half),
    gets access tokens, renews them before they expire while calls go on
    (none fails), and never logs a token or the key."""
    e = firestore_emulator(t)
    tokens = Tokens(t, life=6)
    g = front(t, e, tokens)
    d, port = instance(t, g, {"GOOGLE_APPLICATION_CREDENTIALS": sa_file(t, tokens)})
    sid = mcp_session(port)
    statuses = calls_for(port, sid, 9)
    check(set(statuses) == {200}, sorted(set(statuses)))
    check(tokens.errors == [], tokens.errors)
    # Each worker, and the master's check: at least one renewal each.
    check(tokens.grants("jwt") >= 5, "%d tokens issued" % tokens.grants("jwt"))
    check(g.faulted == 0, "calls refused at the front end: %d" % g.faulted)
    d.wait_log(r"google: an access token from service account %s" % SA_EMAIL)
    no_secrets(d, tokens)
    d.stop()


def test_a_refused_key_and_an_expired_token(t):
    """The token endpoint refuses the JWT (a key Google does not know): mcpd
    starts, is not ready, and says which credentials were refused and
    why; once the endpoint accepts it, mcpd is ready without a restart. A
    token the service refuses (401: expired or revoked) is replaced by a
    new one at once, and the call that met it succeeds."""
    e = firestore_emulator(t)
    tokens = Tokens(t, life=3600)
    g = front(t, e, tokens)
    tokens.refuse = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
    d, port = instance(t, g, {"GOOGLE_APPLICATION_CREDENTIALS": sa_file(t, tokens)}, workers=1, ready=False)
    body = check_not_ready(port, b"Invalid JWT Signature", timeout=15)
    check(SA_EMAIL.encode() in body and b"invalid_grant" in body, body)
    check(http(port, "GET", "/healthz")[0] == 200)
    tokens.refuse = None
    wait_for(lambda: all_ready(port, 3), timeout=15, what="ready once the key is accepted")
    sid = mcp_session(port)
    before = tokens.grants("jwt")
    for tok in list(tokens.valid):      # revoked: the service refuses them now
        tokens.valid[tok] = (0, "service", "jwt")
    check(call_tool(port, sid, "where") == "A")
    check(tokens.grants("jwt") > before or len(tokens.valid) > before, "no new token after a 401")
    no_secrets(d, tokens)
    d.stop()


def test_metadata_server(t):
    """No file: the metadata server (GCE_METADATA_HOST moves it, as for
    Google's libraries), asked with Metadata-Flavor: Google."""
    e = firestore_emulator(t)
    tokens = Tokens(t, life=5)
    g = front(t, e, tokens)
    d, port = instance(t, g, {"GCE_METADATA_HOST": "127.0.0.1:%d" % tokens.port})
    sid = mcp_session(port)
    statuses = calls_for(port, sid, 6)
    check(set(statuses) == {200}, sorted(set(statuses)))
    asked = [s for s in tokens.seen if s[0] == "GET"]
    check(asked and all(s[2].get("Metadata-Flavor") == "Google" for s in asked), asked[:2])
    check(tokens.grants("metadata") >= 3 and tokens.errors == [], (tokens.grants("metadata"), tokens.errors))
    d.wait_log(r"google: an access token from the metadata server \(127\.0\.0\.1:%d\)" % tokens.port)
    no_secrets(d, tokens)
    d.stop()


def test_workload_identity_federation(t):
    """An external account file: the subject token (a file the platform
    rotates: read again at each renewal) exchanged at STS, the federated
    token then exchanged for the service account's (generateAccessToken);
    only that one reaches the service."""
    e = firestore_emulator(t)
    tokens = Tokens(t, life=5)
    g = front(t, e, tokens)
    subject = os.path.join(t.dir, "k8s-token")
    tokens.subject = "eyJhbGciOiJSUzI1NiJ9.first.sig"
    with open(subject, "w") as f:
        f.write(tokens.subject + "\n")
    path = write_json(t, "external.json", {
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k8s",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": tokens.url + "/sts",
        "service_account_impersonation_url": tokens.url + "/iam/v1/projects/-/serviceAccounts/%s:generateAccessToken"
        % SA_EMAIL,
        "credential_source": {"file": subject}})
    d, port = instance(t, g, {"GOOGLE_APPLICATION_CREDENTIALS": path})
    sid = mcp_session(port)
    check(call_tool(port, sid, "where") == "A")
    # The platform rotates the subject token: the next renewal sends the new one.
    tokens.subject = "eyJhbGciOiJSUzI1NiJ9.second.sig"
    with open(subject, "w") as f:
        f.write(tokens.subject)
    n = tokens.grants("sts")
    statuses = calls_for(port, sid, 6)
    check(set(statuses) == {200}, sorted(set(statuses)))
    check(tokens.grants("sts") > n and tokens.grants("impersonated") >= tokens.grants("sts") - 1, tokens.valid)
    check(tokens.errors == [], tokens.errors)
    d.wait_log(r"google: an access token from workload identity federation")
    no_secrets(d, tokens, "first.sig", "second.sig")
    d.stop()


def test_authorized_user_with_pubsub(t):
    """gcloud's file (the authorized user's refresh token) where gcloud
    writes it, $CLOUDSDK_CONFIG/application_default_credentials.json, for
    both plugins: firestore and pubsub reach their services with its
    tokens, and a message crosses instances."""
    e, ps = firestore_emulator(t), pubsub_emulator(t)
    tokens = Tokens(t, life=3600)
    g, gp = front(t, e, tokens), front(t, ps, tokens)
    conf = os.path.join(t.dir, "gcloud")
    os.makedirs(conf)
    write_json(t, "gcloud/application_default_credentials.json", {
        "type": "authorized_user", "client_id": "cid.apps.googleusercontent.com", "client_secret": "csecret",
        "refresh_token": "1//refresh", "token_uri": tokens.url + "/token"})
    transport = ("transport: { plugin: pubsub, project: %s, topic: mcpd, create_topic: true, endpoint: \"%s\", "
                 "credentials: default }\n" % (PROJECT, gp.url))
    env = {"CLOUDSDK_CONFIG": conf}
    a, pa = instance(t, g, env, transport=transport, name="A")
    b, pb = instance(t, g, env, transport=transport, name="B")
    from test_redis import elicitation_crosses
    elicitation_crosses(pa, pb, mcp_session(pa, caps={"elicitation": {}}))
    check(tokens.grants("user") >= 4 and tokens.errors == [], (tokens.grants("user"), tokens.errors))
    check(g.faulted == 0 and gp.faulted == 0, (g.log(), gp.log()))
    no_secrets(a, tokens, "csecret", "1//refresh")
    a.stop()
    b.stop()
