"""The AWS credential chain (plugins/common/aws_creds.c) as mcpd uses it,
each source in a test, with the dynamodb plugin against moto (IAM auth
on: the credentials must be ones moto issued, or it refuses the calls):
the shared files with a profile, web identity (an STS stand-in: see
StsRelay), the ECS container endpoint and EC2 instance metadata (IMDSv2),
both small servers written here from AWS's documentation of them, and
temporary credentials renewed before they expire."""

import json
import os
import threading
import time
import urllib.parse
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from awspeer import REGION, moto_server
from harness import all_ready, check_not_ready, check, free_port, http, mcp_session, rpc, wait_for

TOOLS = """
tools:
  - name: where
    description: The instance that runs the tool.
    shell: 'echo %(name)s'
"""

# No credentials of the test's own environment reach mcpd.
NO_KEYS = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
           "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}


def iso(seconds_from_now):
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now)).strftime("%Y-%m-%dT%H:%M:%SZ")


class CredServer:
    """A loopback HTTP server for the fetched sources. It hands out
    temporary credentials that moto issued (sts:AssumeRole, signed with
    the test's IAM key) but says they expire after `life` seconds, so that
    mcpd renews them within the test. self.seen lists (method, path,
    headers) of what it was asked."""

    def __init__(self, t, m, life=12):
        self.m, self.life, self.seen = m, life, []
        self.auth = None                # the ECS endpoint's Authorization value
        self.token_file = None          # web identity: the token mcpd must send
        self.imds_token = "imds-session-token-%d" % os.getpid()
        srv = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, code, body, ctype="application/json"):
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self):
                srv.seen.append(("PUT", self.path, dict(self.headers)))
                if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    return self.reply(200, srv.imds_token, "text/plain")
                self.reply(400, "bad")

            def do_GET(self):
                srv.seen.append(("GET", self.path, dict(self.headers)))
                if self.path == "/ecs/creds":
                    if self.headers.get("Authorization") != srv.auth:
                        return self.reply(401, '{"message":"not authorized"}')
                    return self.reply(200, json.dumps(srv.creds()))
                if self.path.startswith("/latest/meta-data/iam/security-credentials/"):
                    if self.headers.get("X-aws-ec2-metadata-token") != srv.imds_token:
                        return self.reply(401, "", "text/plain")
                    role = self.path.rsplit("/", 1)[1]
                    if role == "":
                        return self.reply(200, "mcpd-pod\n", "text/plain")
                    c = srv.creds()
                    c.update({"Code": "Success", "Type": "AWS-HMAC", "LastUpdated": iso(0)})
                    return self.reply(200 if role == "mcpd-pod" else 404, json.dumps(c))
                self.reply(404, "{}")

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(n).decode()))
                srv.seen.append(("POST", self.path, form))
                want = open(srv.token_file).read().strip() if srv.token_file else None
                if (form.get("Action") != "AssumeRoleWithWebIdentity" or form.get("RoleArn") != srv.m.role_arn or
                        form.get("WebIdentityToken") != want or form.get("Version") != "2011-06-15" or
                        not form.get("RoleSessionName")):
                    return self.reply(400, "<ErrorResponse><Error><Code>InvalidIdentityToken</Code><Message>"
                                      "not this token</Message></Error></ErrorResponse>", "text/xml")
                c = srv.creds()
                self.reply(200, "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
                           "<AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey>"
                           "<SessionToken>%s</SessionToken><Expiration>%s</Expiration></Credentials>"
                           "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
                           % (c["AccessKeyId"], c["SecretAccessKey"], c["Token"], c["Expiration"]), "text/xml")

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def creds(self):
        c = self.m.client("sts").assume_role(RoleArn=self.m.role_arn, RoleSessionName="mcpd-test",
                                             DurationSeconds=900)["Credentials"]
        return {"AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
                "Token": c["SessionToken"], "Expiration": iso(self.life)}

    def fetches(self, method, path):
        return [s for s in self.seen if s[0] == method and s[1] == path]

    # The harness stops what a test started.
    def kill(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def log(self):
        return "\n".join("%s %s" % (s[0], s[1]) for s in self.seen)

    def sanitizer_report(self):
        return None

    log_path = "(the credentials server)"


def instance(t, m, env, name="A", storage_extra=""):
    port = free_port()
    d = t.mcpd("listen: [127.0.0.1:%d]\nworkers: 2\nstorage: { plugin: dynamodb, table: mcpd, endpoint: \"%s\", "
               "create_table: true%s }\n%s" % (port, m.url, storage_extra, TOOLS % {"name": name}),
               name="%s.yaml" % name)
    e = dict(NO_KEYS, HOME=t.dir)
    e.update(env)
    d.start(env=e, wait_url_port=port)
    return d, port


def keep_calling(port, seconds):
    """Calls for a while; every one must succeed (no gap at a renewal)."""
    sid = mcp_session(port)
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
        st, r, _ = rpc(port, sid, "tools/call", {"name": "where", "arguments": {}}, id=n)
        check(st == 200 and "result" in r, "call %d: %s %s" % (n, st, r))
        time.sleep(0.1)
    return n


def test_shared_files_with_a_profile(t):
    """Keys of a profile in ~/.aws/credentials, its region in ~/.aws/config,
    chosen by AWS_PROFILE, then by profile: in the section."""
    m = moto_server(t)
    os.makedirs(os.path.join(t.dir, ".aws"))
    with open(os.path.join(t.dir, ".aws", "credentials"), "w") as f:
        f.write("[default]\naws_access_key_id = AKIANOTTHISONE0000\naws_secret_access_key = nope\n"
                "[dev]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (m.key_id, m.secret))
    with open(os.path.join(t.dir, ".aws", "config"), "w") as f:
        f.write("[profile dev]\nregion = %s\n" % REGION)
    d, port = instance(t, m, {"AWS_PROFILE": "dev", "AWS_REGION": ""})
    wait_for(lambda: all_ready(port), timeout=20, what="ready with the profile's keys")
    check(keep_calling(port, 0.5) > 0)
    d.wait_log(r"credentials from profile dev of .*/\.aws/credentials")
    check(m.secret not in d.log(), "the secret in the log")
    d.stop()
    d, port = instance(t, m, {}, name="B", storage_extra=", profile: dev")
    wait_for(lambda: all_ready(port), timeout=20, what="ready with profile: dev")
    d.stop()
    # The default profile's key is not one moto knows: refused, and said so.
    d, port = instance(t, m, {}, name="C")
    wait_for(lambda: b"profile default" in http(port, "GET", "/readyz")[2], timeout=20, what="/readyz to say why")
    d.stop()


def test_web_identity(t):
    """AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN (what EKS gives a pod):
    the token file's content is traded at STS for temporary credentials,
    read again at each renewal (the kubelet rotates it), and the
    credentials are renewed before they expire with no call failing.

    moto's server cannot answer an unsigned AssumeRoleWithWebIdentity
    with IAM auth on (it wants every call signed; AWS's STS does not), so
    the call goes to CredServer, which checks what mcpd sent and answers
    with credentials moto issued for the role."""
    m = moto_server(t)
    cs = CredServer(t, m)
    t.daemons.append(cs)
    token = os.path.join(t.dir, "token")
    with open(token, "w") as f:
        f.write("eyJhbGciOiJSUzI1NiJ9.first.sig\n")
    cs.token_file = token
    d, port = instance(t, m, {"AWS_WEB_IDENTITY_TOKEN_FILE": token, "AWS_ROLE_ARN": m.role_arn,
                              "AWS_ROLE_SESSION_NAME": "pod-1",
                              "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:%d/sts" % cs.port})
    wait_for(lambda: all_ready(port), timeout=20, what="ready with web identity")
    d.wait_log(r"credentials from web identity \(role %s\)" % m.role_arn)
    first = len(cs.fetches("POST", "/sts"))
    check(first >= 1 and cs.fetches("POST", "/sts")[0][2]["RoleSessionName"] == "pod-1")
    with open(token, "w") as f:
        f.write("eyJhbGciOiJSUzI1NiJ9.rotated.sig\n")
    keep_calling(port, 8)      # past half their 12 s life: renewed meanwhile
    later = cs.fetches("POST", "/sts")[first:]
    check(later and all(s[2]["WebIdentityToken"] == "eyJhbGciOiJSUzI1NiJ9.rotated.sig" for s in later), later)
    check("rotated" not in d.log() and "first.sig" not in d.log(), "a token in the log")
    d.stop()


def test_ecs_container_endpoint(t):
    """AWS_CONTAINER_CREDENTIALS_FULL_URI with the token in
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (ECS, EKS Pod Identity): the
    Authorization header carries it; renewed before expiry; a wrong token
    is refused by the endpoint and mcpd says so, naming the source."""
    m = moto_server(t)
    cs = CredServer(t, m)
    t.daemons.append(cs)
    cs.auth = "Bearer container-token-1"
    tf = os.path.join(t.dir, "ecs-token")
    with open(tf, "w") as f:
        f.write(cs.auth + "\n")
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:%d/ecs/creds" % cs.port,
           "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tf}
    d, port = instance(t, m, env)
    wait_for(lambda: all_ready(port), timeout=20, what="ready with the container endpoint")
    first = len(cs.fetches("GET", "/ecs/creds"))
    keep_calling(port, 8)
    check(len(cs.fetches("GET", "/ecs/creds")) > first, "not renewed: %s" % cs.log())
    d.stop()
    cs.auth = "Bearer another"
    d, port = instance(t, m, env, name="B")
    body = check_not_ready(port, b"HTTP status 401", timeout=20)
    check(b"container credentials endpoint http://127.0.0.1" in body, body)
    d.wait_log(r"credentials from the container credentials endpoint .*HTTP status 401")
    check("container-token-1" not in d.log(), "the token in the log")
    d.stop()


def test_instance_metadata(t):
    """IMDSv2 (AWS_EC2_METADATA_SERVICE_ENDPOINT moves it here): a PUT for
    a session token first, then the role's name and its credentials with
    that token; renewed before expiry."""
    m = moto_server(t)
    cs = CredServer(t, m)
    t.daemons.append(cs)
    d, port = instance(t, m, {"AWS_EC2_METADATA_DISABLED": "", "AWS_EC2_METADATA_SERVICE_ENDPOINT":
                              "http://127.0.0.1:%d" % cs.port})
    wait_for(lambda: all_ready(port), timeout=20, what="ready with instance metadata")
    check(cs.seen[0][0] == "PUT" and cs.seen[0][1] == "/latest/api/token", cs.log())
    gets = [s for s in cs.seen if s[0] == "GET"]
    check(gets and all(s[2].get("X-aws-ec2-metadata-token") == cs.imds_token for s in gets), cs.log())
    first = len(cs.fetches("GET", "/latest/meta-data/iam/security-credentials/mcpd-pod"))
    keep_calling(port, 8)
    check(len(cs.fetches("GET", "/latest/meta-data/iam/security-credentials/mcpd-pod")) > first,
          "not renewed: %s" % cs.log())
    d.wait_log(r"credentials from EC2 instance metadata")
    d.stop()
