"""A small AMQP 1.0 broker on python3-qpid-proton, for the amqp transport's
tests of what no broker on this machine does (Debian's ActiveMQ has no AMQP
connector, and Service Bus is a cloud service):

  topic://NAME          every link receiving from it gets a copy (ActiveMQ's
                        non-durable topic subscriptions);
  TOPIC and TOPIC/Subscriptions/SUB   (--servicebus TOPIC) Service Bus: a
                        message sent to the topic reaches the subscriptions
                        whose rule takes its "to" property; links to either
                        are refused until a token was put on $cbs and
                        checked: a SAS token signed with --sas-key for the
                        topic's audience, --jwt's text, or (--jwt-issuer
                        URL) a token that cosmospeer.TokenService at URL
                        issued for --jwt-audience and that has not ended;
                        a connection whose last token ends is closed
                        (amqp:unauthorized-access), as Service Bus stops
                        serving it;
  --admin-port N        (with --servicebus) Service Bus's management API on
                        HTTPS: PUT /TOPIC/subscriptions/SUB with an ATOM
                        SubscriptionDescription makes SUB, its default rule
                        an SQL filter "user.to IN ('a', 'b')" (nothing else
                        is understood), authorized like $cbs (SAS for
                        https://127.0.0.1:N/TOPIC, or Bearer --jwt, or a
                        Bearer token from --jwt-issuer); a
                        subscription not made so cannot be attached;
  --refuse SUBSTR       links to or from an address holding SUBSTR are
                        refused (closed at once with amqp:not-found);
  --close-link SUBSTR   a link to an address holding SUBSTR is closed with
                        amqp:internal-error at its first message;
  --max-message N       links it receives on allow messages of N bytes;
  --cbs-refuse          (with --servicebus) $cbs refuses every token (401),
                        as Service Bus refuses a revoked or wrong one.

Prints one line a link, message and token to stdout (the test's log)."""

import argparse
import base64
import hashlib
import hmac
import http.server
import json
import re
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

from proton import Condition, Message
from proton.handlers import MessagingHandler
from proton.reactor import Container


LOG_LOCK = threading.Lock()


def log(*a):
    # The management API answers on threads of its own: one line at a
    # time, or two lines interleave (print writes its parts apart).
    line = " ".join(str(x) for x in a) + "\n"
    with LOG_LOCK:
        sys.stdout.write(line)
        sys.stdout.flush()


SUBSCRIPTIONS = {}      # name -> the "to" values its rule takes


def sas_ok(args, token, resource):
    """None if token is a SAS token for resource signed with --sas-key, or why not."""
    if not token.startswith("SharedAccessSignature "):
        return "not a SAS token"
    f = dict(p.split("=", 1) for p in token[len("SharedAccessSignature "):].split("&"))
    sr = urllib.parse.unquote(f.get("sr", ""))
    if sr != resource or f.get("skn") != args.sas_key_name:
        return "wrong resource or key name"
    if int(f.get("se", "0")) < time.time():
        return "expired"
    want = base64.b64encode(hmac.new(args.sas_key.encode(), ("%s\n%s" % (urllib.parse.quote(
        sr, safe=""), f["se"])).encode(), hashlib.sha256).digest()).decode()
    if urllib.parse.unquote(f.get("sig", "")) != want:
        return "bad signature"
    return None


def jwt_ok(args, token):
    """(None, its end) if token is a jwt this broker takes, else (why, 0)."""
    if args.jwt_issuer:
        try:
            with urllib.request.urlopen("%s/_test/issued?token=%s" % (args.jwt_issuer, urllib.parse.quote(
                    token, safe="")), timeout=5) as r:
                e = json.loads(r.read())
        except urllib.error.HTTPError:
            return "a token the issuer did not issue (or revoked)", 0
        if e["audience"] != args.jwt_audience:
            return "a token for %s, not %s" % (e["audience"], args.jwt_audience), 0
        if e["expires"] <= time.time():
            return "an expired token", 0
        return None, e["expires"]
    if args.jwt and token == args.jwt:
        return None, time.time() + 3600
    return "bad jwt", 0


def admin_server(args):
    NS = "{http://schemas.microsoft.com/netservices/2010/10/servicebus/connect}"

    class H(http.server.BaseHTTPRequestHandler):
        def answer(self, code, text):
            body = text.encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self):
            path = urllib.parse.urlparse(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            m = re.fullmatch(r"/([^/]+)/subscriptions/([A-Za-z0-9._-]{1,50})", path.path)
            if not m or m.group(1) != args.servicebus or "api-version=" not in (path.query or ""):
                return self.answer(404, "no such entity")
            auth = self.headers.get("Authorization", "")
            resource = "https://127.0.0.1:%d/%s" % (args.admin_port, args.servicebus)
            if auth.startswith("Bearer "):
                why = jwt_ok(args, auth[len("Bearer "):])[0]
                why = why and "bad token: " + why
            else:
                why = sas_ok(args, auth, resource) if args.sas_key else "no key"
            if why:
                log("admin 401", why)
                return self.answer(401, why)
            try:
                d = ET.fromstring(body).find("{http://www.w3.org/2005/Atom}content").find(NS + "SubscriptionDescription")
                sql = d.find(NS + "DefaultRuleDescription").find(NS + "Filter").find(NS + "SqlExpression").text
                idle = d.find(NS + "AutoDeleteOnIdle").text
            except (ET.ParseError, AttributeError) as e:
                return self.answer(400, "bad description: %s" % e)
            rule = re.fullmatch(r"user\.to IN \(((?:'[A-Za-z0-9._-]+'(?:, )?)+)\)", sql or "")
            if not rule:
                return self.answer(400, "a rule this fake does not read: %s" % sql)
            name = m.group(2)
            existed = name in SUBSCRIPTIONS
            SUBSCRIPTIONS[name] = set(re.findall(r"'([^']+)'", rule.group(1)))
            log("subscription", name, sorted(SUBSCRIPTIONS[name]), "idle", idle)
            return self.answer(409 if existed else 201, "<entry/>")

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.admin_port), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()


class Broker(MessagingHandler):
    def __init__(self, args):
        super().__init__(auto_accept=False)
        self.args = args
        self.subs = []          # (address, sender link)
        self.authorized = set()  # connections that put a valid token
        self.to_close = []      # refused links, closed once opened
        self.token_ends = {}    # connection -> when its last token ends

    def on_start(self, event):
        if self.args.cert:
            event.container.ssl.server.set_credentials(self.args.cert, self.args.key, None)
        self.acceptor = event.container.listen("%s://127.0.0.1:%d" % ("amqps" if self.args.cert else "amqp",
                                                                     self.args.port))
        if self.args.servicebus:
            self.container = event.container
            event.container.schedule(0.2, self)

    def on_timer_task(self, event):
        """Connections whose token ended without a new one are closed."""
        for c, end in list(self.token_ends.items()):
            if end < time.time():
                del self.token_ends[c]
                self.authorized.discard(c)
                log("token expired, closing the connection")
                c.condition = Condition("amqp:unauthorized-access", "the token put on $cbs has expired")
                c.close()
        self.container.schedule(0.2, self)

    def refused(self, address):
        return self.args.refuse and address and self.args.refuse in address

    def needs_token(self, address):
        t = self.args.servicebus
        return t and address and (address == t or address.startswith(t + "/"))

    def on_link_opening(self, event):
        link = event.link
        if link.is_sender:
            address = link.remote_source.address
            link.source.address = address
        else:
            address = link.remote_target.address
            link.target.address = address
            if self.args.max_message:
                link.max_message_size = self.args.max_message
        log("link", "sender" if link.is_sender else "receiver", address)
        sub = self.args.admin_port and link.is_sender and self.needs_token(address) and "/Subscriptions/" in address
        missing = sub and address.split("/Subscriptions/", 1)[1] not in SUBSCRIPTIONS
        if self.refused(address) or missing or (self.needs_token(address) and
                                                event.connection not in self.authorized):
            why = "refused by the test" if self.refused(address) else "no such subscription" if missing \
                else "no token put for this entity"
            link.condition = Condition("amqp:not-found" if self.refused(address) or missing
                                       else "amqp:unauthorized-access", "%s: %s" % (why, address))
            link.open()
            self.to_close.append(link)
            return
        link.open()
        if link.is_sender:
            self.subs.append((address, link))
        else:
            link.flow(100)

    def on_link_opened(self, event):
        if event.link in self.to_close:
            self.to_close.remove(event.link)
            event.link.close()

    def on_link_closing(self, event):
        self.subs = [(a, l) for a, l in self.subs if l != event.link]

    def on_connection_closing(self, event):
        self.subs = [(a, l) for a, l in self.subs if l.connection != event.connection]
        self.authorized.discard(event.connection)
        self.token_ends.pop(event.connection, None)

    def on_disconnected(self, event):
        self.subs = [(a, l) for a, l in self.subs if l.connection != event.connection]
        self.authorized.discard(event.connection)
        self.token_ends.pop(event.connection, None)

    def check_token(self, msg):
        props = msg.properties or {}
        token, kind, name = msg.body, props.get("type"), props.get("name")
        if props.get("operation") != "put-token" or not isinstance(token, str):
            return (400, "not a put-token"), 0
        if name != "sb://%s/%s" % (self.args.host, self.args.servicebus):
            return (400, "wrong audience %s" % name), 0
        if self.args.cbs_refuse:
            return (401, "refused by the test"), 0
        if kind == "jwt":
            why, end = jwt_ok(self.args, token)
            return ((401, why) if why else (200, "ok")), end
        if kind != "servicebus.windows.net:sastoken" or not token.startswith("SharedAccessSignature "):
            return (400, "unknown token type %s" % kind), 0
        why = sas_ok(self.args, token, name)
        return ((401, why) if why else (200, "ok")), int(token.split("&se=", 1)[1].split("&", 1)[0]) if not why else 0

    def on_message(self, event):
        link, msg = event.link, event.message
        address = link.target.address
        log("message", address, (msg.properties or {}).get("op"))
        if address == "$cbs":
            (code, desc), end = self.check_token(msg)
            log("token", code, desc, (msg.properties or {}).get("type"))
            if code == 200:
                self.authorized.add(event.connection)
                self.token_ends[event.connection] = end
            self.accept(event.delivery)
            for a, l in self.subs:
                if l.connection == event.connection and a == "$cbs" and l.credit > 0:
                    l.send(Message(correlation_id=msg.id, properties={"status-code": code,
                                                                      "status-description": desc}))
            return
        if self.args.close_link and self.args.close_link in (address or ""):
            self.release(event.delivery, delivered=False)
            link.condition = Condition("amqp:internal-error", "closed by the test: %s" % address)
            link.close()
            return
        self.accept(event.delivery)
        to = (msg.properties or {}).get("to")
        for a, l in self.subs:
            if a == address and address.startswith("topic://"):
                pass
            elif self.args.servicebus and address == self.args.servicebus and \
                    a.startswith(address + "/Subscriptions/") and \
                    (to in SUBSCRIPTIONS.get(a.split("/Subscriptions/", 1)[1], ()) if self.args.admin_port
                     else (to == "all" or (to and a.endswith(to)))):
                pass
            elif a == address and not address.startswith("topic://"):
                pass
            else:
                continue
            if l.credit > 0:
                l.send(msg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--servicebus")
    ap.add_argument("--sas-key-name", default="mcpd")
    ap.add_argument("--sas-key")
    ap.add_argument("--jwt")
    ap.add_argument("--jwt-issuer")
    ap.add_argument("--jwt-audience", default="https://servicebus.azure.net")
    ap.add_argument("--refuse")
    ap.add_argument("--close-link")
    ap.add_argument("--max-message", type=int)
    ap.add_argument("--cbs-refuse", action="store_true")
    ap.add_argument("--admin-port", type=int)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    if args.admin_port:
        admin_server(args)
    Container(Broker(args)).run()


if __name__ == "__main__":
    sys.exit(main())
