"""An OTLP/HTTP trace receiver written from the OpenTelemetry protocol
specification (opentelemetry-proto, docs/specification.md: "OTLP/HTTP",
JSON Protobuf encoding), for the tracing tests: neither Debian nor npm has
a collector (otelcol, Jaeger) that runs here. It takes POST /v1/traces
with Content-Type application/json, decodes ExportTraceServiceRequest as
the spec's JSON mapping has it (trace and span ids as hex, not base64;
64-bit integers as decimal strings or numbers; enums as integers), checks
every field it decodes, and answers an ExportTraceServiceResponse. What
does not decode is noted in self.errors, and answered 400 as the spec says."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler

from harness import HTTPPeer

HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")


def _u64(v):
    if isinstance(v, int):
        return v
    if isinstance(v, str) and re.fullmatch(r"[0-9]+", v):
        return int(v)
    raise ValueError("not a fixed64 value: %r" % (v,))


def _any_value(v):
    """An AnyValue as a Python value."""
    if not isinstance(v, dict) or len(v) != 1:
        raise ValueError("AnyValue must have exactly one field: %r" % (v,))
    (k, x), = v.items()
    if k == "stringValue" and isinstance(x, str):
        return x
    if k == "intValue":
        return _u64(x) if not (isinstance(x, str) and x.startswith("-")) else int(x)
    if k == "boolValue" and isinstance(x, bool):
        return x
    if k == "doubleValue" and isinstance(x, (int, float)):
        return float(x)
    if k == "arrayValue":
        return [_any_value(e) for e in x.get("values", [])]
    raise ValueError("unknown AnyValue %r" % (v,))


def _attributes(lst):
    out = {}
    for kv in lst or []:
        if not isinstance(kv.get("key"), str) or not kv["key"]:
            raise ValueError("attribute without a key: %r" % (kv,))
        if kv["key"] in out:
            raise ValueError("attribute %r given twice" % kv["key"])
        out[kv["key"]] = _any_value(kv.get("value"))
    return out


def decode(body):
    """ExportTraceServiceRequest (JSON) -> [span dicts], each with its
    resource's attributes under "resource" and its scope's name."""
    req = json.loads(body)
    spans = []
    for rs in req.get("resourceSpans", []):
        res = _attributes(rs.get("resource", {}).get("attributes"))
        for ss in rs.get("scopeSpans", []):
            scope = ss.get("scope", {}).get("name")
            for s in ss.get("spans", []):
                if not HEX32.fullmatch(s.get("traceId", "")) or s["traceId"] == "0" * 32:
                    raise ValueError("bad traceId %r" % s.get("traceId"))
                if not HEX16.fullmatch(s.get("spanId", "")) or s["spanId"] == "0" * 16:
                    raise ValueError("bad spanId %r" % s.get("spanId"))
                parent = s.get("parentSpanId", "")
                if parent and not HEX16.fullmatch(parent):
                    raise ValueError("bad parentSpanId %r" % parent)
                if not isinstance(s.get("name"), str) or not s["name"]:
                    raise ValueError("a span needs a name: %r" % s)
                kind = s.get("kind", 0)
                if not isinstance(kind, int) or not 0 <= kind <= 5:
                    raise ValueError("bad kind %r" % kind)
                start, end = _u64(s.get("startTimeUnixNano")), _u64(s.get("endTimeUnixNano"))
                if not 0 < start <= end:
                    raise ValueError("bad times %r..%r" % (start, end))
                st = s.get("status", {})
                code = st.get("code", 0)
                if not isinstance(code, int) or code not in (0, 1, 2):
                    raise ValueError("bad status code %r" % code)
                spans.append({
                    "trace": s["traceId"], "id": s["spanId"], "parent": parent, "name": s["name"],
                    "kind": kind, "start": start, "end": end, "attrs": _attributes(s.get("attributes")),
                    "status": code, "status_message": st.get("message", ""), "resource": res,
                    "scope": scope,
                })
    return spans


class OtlpReceiver(HTTPPeer):
    """self.spans: every span received; self.requests: (headers, count)
    of each export; self.errors: what did not decode; self.faults: the
    statuses to answer first (self.refused counts them)."""

    def __init__(self, tls=None, port=None):
        self.spans, self.requests, self.errors = [], [], []
        self.faults = []        # statuses (or (status, Retry-After)) answered first, one per export
        self.refused = 0
        self.log_path = "(the OTLP receiver in the test)"
        lock, rx = threading.Lock(), self
        self.lock = lock

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def answer(self, status, obj, retry_after=None):
                data = json.dumps(obj).encode()
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", str(retry_after))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path != "/v1/traces":
                    self.answer(404, {"code": 5, "message": "no such path"})
                    return
                if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
                    with lock:
                        rx.errors.append("Content-Type %r" % self.headers.get("Content-Type"))
                    self.answer(415, {"code": 3, "message": "JSON only here"})
                    return
                with lock:
                    fault = rx.faults.pop(0) if rx.faults else None
                    if fault is not None:
                        rx.refused += 1
                if fault is not None:
                    status, after = fault if isinstance(fault, tuple) else (fault, None)
                    self.answer(status, {"code": 14, "message": "try later"}, after)
                    return
                try:
                    spans = decode(body)
                except (ValueError, TypeError, AttributeError, KeyError) as e:
                    with lock:
                        rx.errors.append("%s in %r" % (e, body[:300]))
                    self.answer(400, {"code": 3, "message": str(e)})
                    return
                with lock:
                    rx.spans.extend(spans)
                    rx.requests.append((dict(self.headers), len(spans)))
                self.answer(200, {})

        self.listen(H, tls=tls, daemon_threads=True, port=port)

    def snapshot(self):
        with self.lock:
            return list(self.spans)
