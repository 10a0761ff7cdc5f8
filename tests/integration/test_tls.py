"""TLS listeners (bufferevent_openssl) with a test certificate."""

import http.client as hc
import socket
import ssl

from harness import check, free_port, http, make_cert, tls_client_context, TestFailure


def test_tls_listener_serves_https(t):
    cert, key = make_cert(t.dir)
    plain, secure = free_port(), free_port()
    d = t.mcpd("listen:\n  - address: 127.0.0.1:%d\n  - address: 127.0.0.1:%d\n"
               "    tls: { cert: %s, key: %s }\nworkers: 2\n" % (plain, secure, cert, key)
               ).start(wait_url_port=plain)
    ctx = tls_client_context(cert)
    for _ in range(5):
        st, hdrs, body = http(secure, tls_context=ctx, host="localhost")
        check(st == 200 and b'"status":"ok"' in body)
    # Keep-alive over TLS: several requests on one connection.
    c = hc.HTTPSConnection("localhost", secure, context=ctx, timeout=5)
    for _ in range(3):
        c.request("GET", "/healthz")
        r = c.getresponse()
        check(r.status == 200)
        r.read()
    check(c.sock.version() in ("TLSv1.2", "TLSv1.3"))
    c.close()
    # ALPN offers http/1.1 only.
    ctx2 = tls_client_context(cert)
    ctx2.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", secure)) as raw:
        with ctx2.wrap_socket(raw, server_hostname="localhost") as s:
            check(s.selected_alpn_protocol() == "http/1.1", s.selected_alpn_protocol())
    # Plain HTTP on the TLS port gets no HTTP answer; the daemon goes on.
    with socket.create_connection(("127.0.0.1", secure), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
        check(not data.startswith(b"HTTP/1.1 200"), "plain HTTP served on the TLS port")
    # A client that does not trust the certificate fails the handshake.
    try:
        http(secure, tls_context=ssl.create_default_context(), host="localhost")
        raise TestFailure("untrusted certificate accepted")
    except ssl.SSLError:
        pass
    check(http(secure, tls_context=ctx, host="localhost")[0] == 200)
    check(http(plain)[0] == 200)
    d.stop()
