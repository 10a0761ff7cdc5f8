"""moto's server (python3 -m moto.server) as the AWS of the tests of the
dynamodb and sqs plugins and of KMS-wrapped keys: DynamoDB, SQS, SNS, STS, KMS and IAM on one loopback
port. It runs with IAM authentication on: the test's first calls (unsigned,
INITIAL_NO_AUTH_ACTION_COUNT of them) make an IAM user with a policy and an
access key, and from then on every call must carry a valid SigV4
signature of that key, checked by moto with botocore's signer, a peer we
did not write.

moto is a Python package: scripts/install-deps.sh test installs it
(pip install 'moto[server]') where pip can reach PyPI. A machine without
it skips these tests; they are then reported as skipped, never passed."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler

from harness import HTTPPeer, Peer, Skip, TestFailure, free_port, serve, wait_for

REGION = "us-east-1"
# Unsigned setup calls moto allows before it checks every call: CreateUser,
# CreateAccessKey, PutUserPolicy, and the two of a role for web identity.
SETUP_CALLS = 5

POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["dynamodb:*", "sqs:*", "sns:*", "sts:*", "kms:*"], "Resource": "*"}],
}


def have_moto():
    try:
        import moto.server  # noqa: F401
        import boto3  # noqa: F401
    except Exception:
        return False
    return True


class Moto(Peer):
    """One moto server with IAM auth, and an access key allowed everything
    the plugins call (self.key_id, self.secret), and a role for web
    identity (self.role_arn)."""

    def __init__(self, tmpdir, port=None):
        if not have_moto():
            raise Skip("moto is not installed (scripts/install-deps.sh test installs it: pip install 'moto[server]')")
        self.port = port or free_port()
        self.dir = tmpdir
        self.log_path = os.path.join(tmpdir, "moto-%d.log" % self.port)
        self.proc = None
        self.key_id = self.secret = None
        self.role_arn = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def _spawn(self):
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(SETUP_CALLS), MOTO_ALLOW_NONEXISTENT_REGION="true")
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            env.pop(k, None)
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.logf, stderr=subprocess.STDOUT, env=env)

        def up():
            if self.proc.poll() is not None:
                raise TestFailure("moto exited: %s" % open(self.log_path, errors="replace").read()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                return False
        wait_for(up, timeout=30, what="moto to listen", interval=0.1)

    def start(self):
        self._spawn()
        self._setup()
        return self

    def client(self, service, key=None, secret=None, token=None):
        import boto3
        return boto3.client(service, region_name=REGION, endpoint_url=self.url,
                            aws_access_key_id=key or self.key_id or "setup",
                            aws_secret_access_key=secret or self.secret or "setup",
                            aws_session_token=token)

    def _setup(self):
        iam = self.client("iam")
        iam.create_user(UserName="mcpd")
        k = iam.create_access_key(UserName="mcpd")["AccessKey"]
        iam.put_user_policy(UserName="mcpd", PolicyName="mcpd", PolicyDocument=json.dumps(POLICY))
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Federated": "*"}, "Action": "sts:AssumeRoleWithWebIdentity"},
            {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
        role = iam.create_role(RoleName="mcpd-pod", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
        iam.put_role_policy(RoleName="mcpd-pod", PolicyName="mcpd", PolicyDocument=json.dumps(POLICY))
        self.key_id, self.secret = k["AccessKeyId"], k["SecretAccessKey"]
        self.role_arn = role["Arn"]

    def env(self):
        """The environment an mcpd on this moto needs (credentials from
        the environment, the region)."""
        return {"AWS_ACCESS_KEY_ID": self.key_id, "AWS_SECRET_ACCESS_KEY": self.secret, "AWS_REGION": REGION,
                "AWS_EC2_METADATA_DISABLED": "true"}

    def pause(self):
        """SIGSTOP: a service that hangs (accepts, never answers)."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)


def moto_server(t):
    """A moto server for one test, stopped after it like the daemons."""
    return serve(t, Moto(t.dir))


class AwsRelay(HTTPPeer):
    """An HTTP relay in front of moto that notes each call (self.calls:
    the action, X-Amz-Target's or the query's Action, and the body) and
    can answer some itself with what AWS says under load (self.faults:
    (status, body) pairs, used in order), letting the rest through
    unchanged (the signed Host header included). self.rewrite, when set,
    is a function of (action, body, status, answer) that may return
    another (status, answer) for a call moto served; self.refuse, a
    function of (action, body) that may return a fault to answer at
    once."""

    def __init__(self, target_port):
        self.faults, self.calls = [], []
        self.rewrite = None
        self.refuse = None
        self.passed = self.faulted = 0
        self.log_path = "(the relay in front of moto)"
        lock, px = threading.Lock(), self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                target = self.headers.get("X-Amz-Target", "")
                action = target.rsplit(".", 1)[-1] if target else \
                    dict(urllib.parse.parse_qsl(body.decode(errors="replace"))).get("Action", "")
                with lock:
                    px.calls.append((action, body))
                    fault = px.faults.pop(0) if px.faults else None
                if fault is None and px.refuse is not None:
                    fault = px.refuse(action, body)
                if fault is not None:
                    px.faulted += 1
                    return self.answer(fault[0], fault[1].encode(), [("Content-Type", "application/x-amz-json-1.0")])
                c = http.client.HTTPConnection("127.0.0.1", target_port, timeout=30)
                try:
                    c.request("POST", self.path, body, dict(self.headers.items()))
                    r = c.getresponse()
                    data = r.read()
                except OSError:
                    # moto drops a long poll whose queue is deleted under
                    # it (a worker stopping): so does the relay.
                    return self.answer(502, b"", [])
                finally:
                    c.close()
                px.passed += 1
                status = r.status
                if px.rewrite is not None:
                    status, data = px.rewrite(action, body, status, data) or (status, data)
                self.answer(status, data, [(k, v) for k, v in r.getheaders() if k.lower() not in
                                             ("content-length", "connection", "transfer-encoding", "server", "date")])

            def answer(self, status, data, headers):
                try:
                    self.send_response(status)
                    for k, v in headers:
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:         # the caller went away (a worker stopped mid-call)
                    pass

        self.listen(H)

    def log(self):
        return "passed %d, faulted %d, calls: %s" % (self.passed, self.faulted, [c[0] for c in self.calls][-50:])
