"""Google's own emulators of Firestore and Pub/Sub (the Cloud SDK's
google-cloud-cli-firestore-emulator and google-cloud-cli-pubsub-emulator,
Java programs) as the Google Cloud of the tests of the firestore and pubsub
plugins, each on a loopback port of its own, serving the REST API over
plain HTTP as Google's client libraries reach them through
FIRESTORE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST. They take no credentials;
test_gcp_credentials.py checks the token paths against endpoints of its
own.

What the emulators do not do, and the tests therefore do not rely on:
Pub/Sub's subscription filters are stored but not applied (every
subscription gets every message: the plugin checks the addressing itself,
and test_pubsub checks the filters and the addressing apart), expiration
policies are not enforced, and Firestore's emulator keeps everything in
memory (a restart loses it: the outage tests put a relay in front of it to
take the service away while it keeps its data).

A machine without the emulators or Java skips these tests; they are then
reported as skipped, never passed. scripts/install-deps.sh test installs
them where Google's Cloud SDK apt repository can be reached."""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time

from harness import Peer, Skip, TestFailure, free_port, serve, wait_for

SDK = "/usr/lib/google-cloud-sdk/platform"
FIRESTORE_JAR = os.path.join(SDK, "cloud-firestore-emulator", "cloud-firestore-emulator.jar")
PUBSUB_LIB = os.path.join(SDK, "pubsub-emulator", "lib")
PROJECT = "test-project"


def pubsub_jar():
    try:
        jars = [f for f in os.listdir(PUBSUB_LIB) if f.startswith("cloud-pubsub-emulator") and f.endswith("-all.jar")]
    except OSError:
        return None
    return os.path.join(PUBSUB_LIB, sorted(jars)[-1]) if jars else None


def have_emulators():
    return shutil.which("java") is not None and os.path.exists(FIRESTORE_JAR) and pubsub_jar() is not None


class Emulator(Peer):
    """One emulator (kind "firestore" or "pubsub") on a port of its own."""

    def __init__(self, tmpdir, kind, port=None):
        if not have_emulators():
            raise Skip("the Google Cloud emulators (google-cloud-cli-firestore-emulator, "
                       "google-cloud-cli-pubsub-emulator) or java are not installed")
        self.kind = kind
        self.port = port or free_port()
        self.log_path = os.path.join(tmpdir, "%s-emulator-%d.log" % (kind, self.port))
        self.proc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def host(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        java = ["java", "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
        if self.kind == "firestore":
            argv = java + ["-cp", FIRESTORE_JAR, "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
                           "start", "--host=127.0.0.1", "--port=%d" % self.port]
        else:
            argv = java + ["-jar", pubsub_jar(), "--host=127.0.0.1", "--port=%d" % self.port]
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT, start_new_session=True)

        def up():
            if self.proc.poll() is not None:
                raise TestFailure("the %s emulator exited: %s" % (self.kind, self.log()[-2000:]))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            except OSError:
                return False
            try:
                st, _ = self.rest("GET", self.probe_path())
                return st in (200, 404)
            except OSError:
                return False
        wait_for(up, timeout=60, what="the %s emulator to answer" % self.kind, interval=0.2)
        self.warm()
        return self

    def probe_path(self):
        if self.kind == "firestore":
            return "/v1/projects/%s/databases/(default)/documents/warmup?pageSize=1" % PROJECT
        return "/v1/projects/%s/topics" % PROJECT

    def warm(self):
        """A few calls of each kind first: a cold JVM answers its first ones
        slowly, and the storage suite has entries that live 50 ms."""
        for _ in range(30):
            if self.kind == "firestore":
                root = "projects/%s/databases/(default)/documents" % PROJECT
                self.rest("POST", "/v1/%s:commit" % root, {"writes": [{"update": {
                    "name": root + "/warmup/w", "fields": {"v": {"bytesValue": "AA=="}}}}]})
                self.rest("GET", "/v1/%s/warmup/w" % root)
            else:
                self.rest("PUT", "/v1/projects/%s/topics/warmup" % PROJECT, {})
                self.rest("POST", "/v1/projects/%s/topics/warmup:publish" % PROJECT,
                          {"messages": [{"data": "AA==", "attributes": {"a": "b"}}]})

    def rest(self, method, path, body=None, timeout=10):
        """A call of the REST API: (status, the answer as JSON or text)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            c.request(method, path, data, {"Content-Type": "application/json"} if data is not None else {})
            r = c.getresponse()
            text = r.read()
            try:
                return r.status, json.loads(text) if text else None
            except ValueError:
                return r.status, text.decode(errors="replace")
        finally:
            c.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def restart(self):
        """Stopped and started again on the same port (the emulators keep
        nothing: topics, subscriptions and documents are gone)."""
        self.stop()
        time.sleep(0.2)
        return self.start()

    def pause(self):
        """SIGSTOP: a service that hangs (accepts, never answers)."""
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.killpg(self.proc.pid, signal.SIGCONT)


def firestore_emulator(t):
    return serve(t, Emulator(t.dir, "firestore"))


def pubsub_emulator(t):
    return serve(t, Emulator(t.dir, "pubsub"))
