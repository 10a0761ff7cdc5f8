"""The AMQP 1.0 peers of the amqp transport's tests.

RabbitMQ: a real rabbitmq-server with its AMQP 1.0 plugin, on loopback
ports of its own (AMQP, Erlang distribution, epmd), its state (Mnesia,
logs, cookie) in the test's directory: nothing of the machine's own
RabbitMQ is used or touched.

FakeBroker (fakebroker.py, run as a process of its own): a small AMQP 1.0
broker written on python3-qpid-proton, for what no broker here can do:
Service Bus's $cbs node and subscriptions, ActiveMQ's topic:// addresses,
and faults on demand (an address refused, a link closed, a small
max-message-size, a broker that accepts connections and then says
nothing)."""

import os
import socket
import subprocess
import sys
import time

from harness import Peer, TestFailure, free_port, wait_for

RABBIT_BIN = "/usr/lib/rabbitmq/bin"


def amqp_answers(port, timeout=1.0):
    """The broker on port answers an AMQP 1.0 SASL header with its own."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"AMQP\x03\x01\x00\x00")
            return s.recv(8).startswith(b"AMQP")
    except OSError:
        return False


def epmd_pids(port):
    """The epmd daemons started for ERL_EPMD_PORT=port."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % d) as f:
                if f.read().strip() != "epmd":
                    continue
            with open("/proc/%s/environ" % d, "rb") as f:
                if b"ERL_EPMD_PORT=%d\0" % port in f.read() + b"\0":
                    out.append(int(d))
        except OSError:
            continue
    return out


class RabbitMQ(Peer):
    """rabbitmq-server with rabbitmq_amqp1_0 enabled; users: guest (the
    default, for SASL ANONYMOUS as well) and those add_user makes."""

    def __init__(self, tmpdir, port=None, tls=None):
        """tls: (ca, cert, key) for a TLS listener on tls_port that asks
        for client certificates and takes SASL EXTERNAL (the user named
        by the certificate's CN)."""
        self.port = port or free_port()
        self.dist_port, self.epmd_port = free_port(), free_port()
        self.dir = os.path.join(tmpdir, "rabbitmq-%d" % self.port)
        os.makedirs(self.dir, exist_ok=True)
        self.log_path = os.path.join(self.dir, "rabbitmq.out")
        self.node = "mcpdtest%d@localhost" % self.port
        plugins = "rabbitmq_amqp1_0" + (",rabbitmq_auth_mechanism_ssl" if tls else "")
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[%s].\n" % plugins)
        conf = "loopback_users = none\nlisteners.tcp.1 = 127.0.0.1:%d\nlog.file.level = info\n" % self.port
        if tls:
            self.tls_port = free_port()
            conf += ("listeners.ssl.1 = 127.0.0.1:%d\nssl_options.cacertfile = %s\nssl_options.certfile = %s\n"
                     "ssl_options.keyfile = %s\nssl_options.verify = verify_peer\n"
                     "ssl_options.fail_if_no_peer_cert = true\nauth_mechanisms.1 = EXTERNAL\n"
                     "auth_mechanisms.2 = PLAIN\nssl_cert_login_from = common_name\n" % (self.tls_port, *tls))
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write(conf)
        self.proc = None

    @property
    def url(self):
        return "amqp://127.0.0.1:%d" % self.port

    def env(self):
        d = self.dir
        return dict(os.environ, HOME=d, RABBITMQ_NODENAME=self.node, RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                    RABBITMQ_NODE_PORT=str(self.port), RABBITMQ_DIST_PORT=str(self.dist_port),
                    ERL_EPMD_PORT=str(self.epmd_port), ERL_EPMD_ADDRESS="127.0.0.1",
                    RABBITMQ_MNESIA_BASE=os.path.join(d, "mnesia"), RABBITMQ_LOG_BASE=os.path.join(d, "log"),
                    RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(d, "enabled_plugins"),
                    RABBITMQ_CONFIG_FILE=os.path.join(d, "rabbitmq"),
                    RABBITMQ_ADVANCED_CONFIG_FILE=os.path.join(d, "advanced.config"),
                    RABBITMQ_CONF_ENV_FILE=os.path.join(d, "rabbitmq-env.conf"),
                    RABBITMQ_PID_FILE=os.path.join(d, "pid"),
                    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}")

    def start(self):
        exe = os.path.join(RABBIT_BIN, "rabbitmq-server")
        if not os.access(exe, os.X_OK):
            raise TestFailure("rabbitmq-server is not installed (scripts/install-deps.sh test installs it)")
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([exe], env=self.env(), stdout=self.logf, stderr=self.logf,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: self.proc.poll() is None and amqp_answers(self.port), timeout=90,
                 what="rabbitmq-server to answer AMQP 1.0", interval=0.2)
        return self

    def ctl(self, *args, timeout=60):
        p = subprocess.run([os.path.join(RABBIT_BIN, "rabbitmqctl"), "-n", self.node, *args], env=self.env(),
                           capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise TestFailure("rabbitmqctl %s: %s%s" % (" ".join(args), p.stdout, p.stderr))
        return p.stdout

    def add_user(self, user, password):
        self.ctl("add_user", user, password)
        self.ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")

    def _end(self, sig):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=10)
        # epmd was started by this node, on a port of its own, as a daemon
        # outside the group: end it too, found by that port.
        for pid in epmd_pids(self.epmd_port):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass

    def stop(self):
        self._end(15)

    def kill(self):
        self._end(9)

    def pause(self):
        os.killpg(self.proc.pid, 19)

    def resume(self):
        os.killpg(self.proc.pid, 18)


class FakeBroker(Peer):
    """fakebroker.py on a port of its own, with options (see that file)."""

    def __init__(self, tmpdir, port=None, args=()):
        self.port = port or free_port()
        self.dir = tmpdir
        self.log_path = os.path.join(tmpdir, "fakebroker-%d.log" % self.port)
        self.args = list(args)
        self.proc = None

    @property
    def url(self):
        return "amqp://127.0.0.1:%d" % self.port

    def start(self):
        self.logf = open(self.log_path, "ab")
        here = os.path.dirname(os.path.abspath(__file__))
        # Debian's python3-qpid-proton is in the system's Python, which
        # may not be the one running the tests.
        py = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
        self.proc = subprocess.Popen([py, os.path.join(here, "fakebroker.py"), "--port",
                                      str(self.port), *self.args], stdout=self.logf, stderr=self.logf)
        wait_for(lambda: self.proc.poll() is None and amqp_answers(self.port), timeout=15,
                 what="the fake broker to answer")
        return self

    def pause(self):
        self.proc.send_signal(19)

    def resume(self):
        self.proc.send_signal(18)


def rabbitmq_server(t, start=True, tls=None):
    from harness import serve
    return serve(t, RabbitMQ(t.dir, tls=tls), start)


def make_ca(dirpath, clients=("mcpd",)):
    """A CA, a server certificate it signed (localhost, 127.0.0.1) and a
    client certificate for each name (CN=name): {name: (cert, key)}, with
    "ca" and "server" too."""
    def run(*argv):
        subprocess.run(argv, check=True, capture_output=True, cwd=dirpath)

    out = {}
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-days", "2", "-subj", "/CN=mcpd test CA", "-keyout", "ca.key", "-out", "ca.pem")
    out["ca"] = (os.path.join(dirpath, "ca.pem"), os.path.join(dirpath, "ca.key"))
    for name, subj, ext in [("server", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1")] + \
            [(c, "/CN=" + c, "extendedKeyUsage=clientAuth") for c in clients]:
        run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", subj, "-keyout", name + ".key", "-out", name + ".csr")
        with open(os.path.join(dirpath, name + ".ext"), "w") as f:
            f.write(ext + "\n")
        run("openssl", "x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", name + ".ext", "-out", name + ".pem")
        out[name] = (os.path.join(dirpath, name + ".pem"), os.path.join(dirpath, name + ".key"))
    return out


def fake_broker(t, args=(), start=True):
    from harness import serve
    return serve(t, FakeBroker(t.dir, args=args), start)
