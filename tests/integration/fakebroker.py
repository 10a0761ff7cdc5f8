"""A small AMQP 1.0 broker on python3-qpid-proton, for the amqp transport's
tests of what no broker on this machine does (Debian's ActiveMQ has no AMQP
connector, and Service Bus is a cloud service):

  topic://NAME          every link receiving from it gets a copy (ActiveMQ's
                        non-durable topic subscriptions);
  TOPIC and TOPIC/Subscriptions/SUB   (--servicebus TOPIC) Service Bus: a
                        message sent to the topic reaches the subscriptions
                        whose name ends with its "to" property, or all when
                        "to" is "all" (the rule mcpd's subscriptions have);
                        links to either are refused until a token was put
                        on $cbs and checked: a SAS token signed with
                        --sas-key for the topic's audience, or --jwt's text;
  --refuse SUBSTR       links to or from an address holding SUBSTR are
                        refused (closed at once with amqp:not-found);
  --close-link SUBSTR   a link to an address holding SUBSTR is closed with
                        amqp:internal-error at its first message;
  --max-message N       links it receives on allow messages of N bytes.

Prints one line a link, message and token to stdout (the test's log)."""

import argparse
import base64
import hashlib
import hmac
import sys
import time
import urllib.parse

from proton import Condition, Message
from proton.handlers import MessagingHandler
from proton.reactor import Container


def log(*a):
    print(*a, flush=True)


class Broker(MessagingHandler):
    def __init__(self, args):
        super().__init__(auto_accept=False)
        self.args = args
        self.subs = []          # (address, sender link)
        self.authorized = set()  # connections that put a valid token
        self.to_close = []      # refused links, closed once opened

    def on_start(self, event):
        if self.args.cert:
            event.container.ssl.server.set_credentials(self.args.cert, self.args.key, None)
        self.acceptor = event.container.listen("%s://127.0.0.1:%d" % ("amqps" if self.args.cert else "amqp",
                                                                     self.args.port))

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
        if self.refused(address) or (self.needs_token(address) and event.connection not in self.authorized):
            why = "refused by the test" if self.refused(address) else "no token put for this entity"
            link.condition = Condition("amqp:not-found" if self.refused(address) else "amqp:unauthorized-access",
                                       "%s: %s" % (why, address))
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

    def on_disconnected(self, event):
        self.subs = [(a, l) for a, l in self.subs if l.connection != event.connection]
        self.authorized.discard(event.connection)

    def check_token(self, msg):
        props = msg.properties or {}
        token, kind, name = msg.body, props.get("type"), props.get("name")
        if props.get("operation") != "put-token" or not isinstance(token, str):
            return 400, "not a put-token"
        if name != "sb://%s/%s" % (self.args.host, self.args.servicebus):
            return 400, "wrong audience %s" % name
        if kind == "jwt":
            return (200, "ok") if self.args.jwt and token == self.args.jwt else (401, "bad jwt")
        if kind != "servicebus.windows.net:sastoken" or not token.startswith("SharedAccessSignature "):
            return 400, "unknown token type %s" % kind
        f = dict(p.split("=", 1) for p in token[len("SharedAccessSignature "):].split("&"))
        sr = urllib.parse.unquote(f.get("sr", ""))
        if sr != name or f.get("skn") != self.args.sas_key_name:
            return 401, "wrong resource or key name"
        if int(f.get("se", "0")) < time.time():
            return 401, "expired"
        want = base64.b64encode(hmac.new(self.args.sas_key.encode(), ("%s\n%s" % (urllib.parse.quote(
            sr, safe=""), f["se"])).encode(), hashlib.sha256).digest()).decode()
        if urllib.parse.unquote(f.get("sig", "")) != want:
            return 401, "bad signature"
        return 200, "ok"

    def on_message(self, event):
        link, msg = event.link, event.message
        address = link.target.address
        log("message", address, (msg.properties or {}).get("op"))
        if address == "$cbs":
            code, desc = self.check_token(msg)
            log("token", code, desc)
            if code == 200:
                self.authorized.add(event.connection)
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
                    a.startswith(address + "/Subscriptions/") and (to == "all" or (to and a.endswith(to))):
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
    ap.add_argument("--refuse")
    ap.add_argument("--close-link")
    ap.add_argument("--max-message", type=int)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    Container(Broker(args)).run()


if __name__ == "__main__":
    sys.exit(main())
