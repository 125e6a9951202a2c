"""Tracing (DESIGN §5, docs/observability.md "Spans"): W3C Trace Context end
to end, and spans exported over OTLP/HTTP JSON to a collector.

The collector here is a small OTLP receiver on 127.0.0.1 written in this file:
it checks every field name of each export request against opentelemetry-proto
(ExportTraceServiceRequest in the protobuf JSON mapping) and keeps the spans.
"""
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import httpraw
from conftest import REPO, admin_get, closed_port, eventually
from test_sidecar import metric, sidecar

DEMO_DIR = REPO / "configs" / "demo"
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
DIGITS = re.compile(r"^[0-9]+$")

# The fields opentelemetry-proto defines for each message (trace.proto,
# common.proto, resource.proto), by their JSON names.
REQUEST_FIELDS = {"resourceSpans"}
RESOURCE_SPANS_FIELDS = {"resource", "scopeSpans", "schemaUrl"}
RESOURCE_FIELDS = {"attributes", "droppedAttributesCount"}
SCOPE_SPANS_FIELDS = {"scope", "spans", "schemaUrl"}
SCOPE_FIELDS = {"name", "version", "attributes", "droppedAttributesCount"}
SPAN_FIELDS = {"traceId", "spanId", "traceState", "parentSpanId", "flags", "name", "kind",
               "startTimeUnixNano", "endTimeUnixNano", "attributes", "droppedAttributesCount",
               "events", "droppedEventsCount", "links", "droppedLinksCount", "status"}
STATUS_FIELDS = {"code", "message"}
ANY_VALUE_FIELDS = {"stringValue", "boolValue", "intValue", "doubleValue", "arrayValue",
                    "kvlistValue", "bytesValue"}


def check_fields(obj, allowed, where):
    assert isinstance(obj, dict), f"{where}: expected an object, got {obj!r}"
    unknown = set(obj) - allowed
    assert not unknown, f"{where}: fields not in OTLP: {sorted(unknown)}"


def check_attributes(attrs, where):
    assert isinstance(attrs, list), f"{where}.attributes: expected a list"
    out = {}
    for i, kv in enumerate(attrs):
        check_fields(kv, {"key", "value"}, f"{where}.attributes[{i}]")
        assert isinstance(kv["key"], str) and kv["key"], f"{where}.attributes[{i}].key"
        value = kv["value"]
        check_fields(value, ANY_VALUE_FIELDS, f"{where}.attributes[{i}].value")
        assert len(value) == 1, f"{where}.attributes[{i}].value: exactly one field, got {value}"
        (kind, v), = value.items()
        if kind == "intValue":
            # int64 in the protobuf JSON mapping: a decimal string (numbers accepted too).
            assert isinstance(v, int) or DIGITS.match(str(v)), f"{where}: intValue {v!r}"
            v = int(v)
        elif kind == "stringValue":
            assert isinstance(v, str), f"{where}: stringValue {v!r}"
        out[kv["key"]] = v
    return out


def validate(body):
    """The spans of one export request, each with its resource's attributes;
    AssertionError when anything is not OTLP."""
    check_fields(body, REQUEST_FIELDS, "request")
    spans = []
    for r, rs in enumerate(body["resourceSpans"]):
        where = f"resourceSpans[{r}]"
        check_fields(rs, RESOURCE_SPANS_FIELDS, where)
        check_fields(rs["resource"], RESOURCE_FIELDS, where + ".resource")
        resource = check_attributes(rs["resource"]["attributes"], where + ".resource")
        assert "service.name" in resource, where + ": resource without service.name"
        for s, ss in enumerate(rs["scopeSpans"]):
            swhere = f"{where}.scopeSpans[{s}]"
            check_fields(ss, SCOPE_SPANS_FIELDS, swhere)
            check_fields(ss.get("scope", {}), SCOPE_FIELDS, swhere + ".scope")
            for k, span in enumerate(ss["spans"]):
                w = f"{swhere}.spans[{k}]"
                check_fields(span, SPAN_FIELDS, w)
                assert HEX32.match(span["traceId"]), f"{w}.traceId {span['traceId']!r}"
                assert HEX16.match(span["spanId"]), f"{w}.spanId {span['spanId']!r}"
                if "parentSpanId" in span:
                    assert HEX16.match(span["parentSpanId"]), f"{w}.parentSpanId"
                assert span["kind"] in (2, "SPAN_KIND_SERVER"), f"{w}.kind {span['kind']!r}"
                for t in ("startTimeUnixNano", "endTimeUnixNano"):
                    assert isinstance(span[t], str) and DIGITS.match(span[t]), f"{w}.{t}"
                assert int(span["startTimeUnixNano"]) <= int(span["endTimeUnixNano"]), w
                assert isinstance(span["name"], str) and span["name"], f"{w}.name"
                if "status" in span:
                    check_fields(span["status"], STATUS_FIELDS, w + ".status")
                attrs = check_attributes(span.get("attributes", []), w)
                spans.append({**span, "attrs": attrs, "resource": resource})
    return spans


class Collector:
    """An OTLP/HTTP receiver on 127.0.0.1:port: POST /v1/traces, JSON only."""

    def __init__(self):
        self.spans = []
        self.errors = []
        self.requests = 0
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length)
                status, answer = 200, b"{}"
                try:
                    assert self.path == "/v1/traces", f"path {self.path}"
                    ctype = self.headers.get("content-type", "")
                    assert ctype.startswith("application/json"), f"content-type {ctype!r}"
                    spans = validate(json.loads(raw))
                    with collector.lock:
                        collector.spans.extend(spans)
                        collector.requests += 1
                except Exception as e:  # noqa: BLE001 - every failure is the test's to report
                    with collector.lock:
                        collector.errors.append(f"{type(e).__name__}: {e}")
                    status, answer = 400, b'{"error":"invalid"}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def wait_spans(self, trace_id, n, within=5.0):
        def got():
            with self.lock:
                assert not self.errors, self.errors
                return [s for s in self.spans if s["traceId"] == trace_id]

        return eventually(got, lambda spans: len(spans) >= n, within,
                          what=f"{n} spans of trace {trace_id}")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector():
    c = Collector()
    yield c
    c.close()


def mesh_file(tmp_path, tracing, name="mesh-config.yaml"):
    path = tmp_path / name
    path.write_text(f"tracing: {json.dumps(tracing)}\n")
    return str(path)


def by_service(spans):
    return {s["resource"]["service.name"]: s for s in spans}


def calc_behind_sidecar(uvicorn_app, hms_api, gateway, mesh):
    calc = uvicorn_app(DEMO_DIR / "calc_svc")
    assert hms_api("register", DEMO_DIR / "calc_svc" / "route.yaml").returncode == 0
    sc = sidecar(gateway, "calc-svc", calc.port, mesh=mesh)
    gw = gateway({"mesh": mesh})
    return sc, gw


@pytest.mark.deadline(90)
def test_gateway_and_sidecar_spans_link_across_both_hops(uvicorn_app, hms_api, gateway,
                                                         collector, tmp_path):
    mesh = mesh_file(tmp_path, {"otlp_endpoint": collector.endpoint})
    sc, gw = calc_behind_sidecar(uvicorn_app, hms_api, gateway, mesh)

    # With the caller's traceparent: the gateway's span is its child.
    trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    r = httpraw.get(gw.port, "/sum/2/3", headers={
        "host": f"127.0.0.1:{gw.port}", "traceparent": f"00-{trace}-{caller_span}-01"})
    assert r.status == 200 and r.json() == {"sum": 5}, r
    assert r.header("x-trace-id") == trace  # the W3C trace id, on the answer

    spans = collector.wait_spans(trace, 2)
    assert len(spans) == 2, spans
    spans = by_service(spans)
    edge, hop = spans["hms-gateway"], spans["calc-svc"]
    assert edge["parentSpanId"] == caller_span
    assert hop["parentSpanId"] == edge["spanId"]  # the sidecar is the gateway span's child
    assert edge["spanId"] != hop["spanId"]
    assert edge["kind"] == 2 and hop["kind"] == 2
    # The child lies within its parent (one clock on this machine).
    assert int(edge["startTimeUnixNano"]) <= int(hop["startTimeUnixNano"])
    assert int(hop["endTimeUnixNano"]) <= int(edge["endTimeUnixNano"])

    # HTTP semantic conventions, and which stamp answered (none: the service did).
    a = edge["attrs"]
    assert edge["name"] == "GET /sum/{a}/{b}"
    assert a["http.request.method"] == "GET"
    assert a["http.route"] == "/sum/{a}/{b}"
    assert a["http.response.status_code"] == 200
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == gw.port
    assert a["network.peer.address"] == "127.0.0.1"
    assert a["hms.service"] == "calc-svc" and a["hms.upstream.address"] == sc.address
    assert a["hms.listener"] == "edge"
    assert "hms.stamp" not in a and "http.request.resend_count" not in a
    assert "status" not in edge
    assert edge["resource"]["hms.role"] == "gateway"
    h = hop["attrs"]
    assert hop["name"] == "GET" and "http.route" not in h  # "(inbound)" is no template
    assert h["hms.listener"] == "inbound" and h["http.response.status_code"] == 200
    assert hop["resource"]["hms.role"] == "sidecar"

    # Without any trace header the gateway starts the trace: a root span.
    r = httpraw.get(gw.port, "/sum/1/1")
    assert r.status == 200, r
    trace = r.header("x-trace-id")
    assert HEX32.match(trace), trace
    spans = by_service(collector.wait_spans(trace, 2))
    assert "parentSpanId" not in spans["hms-gateway"]
    assert spans["calc-svc"]["parentSpanId"] == spans["hms-gateway"]["spanId"]

    # x-trace-id alone is a trace id without a parent span: the gateway's span is its root.
    xid = "0af7651916cd43dd8448eb211c80319c"
    r = httpraw.get(gw.port, "/sum/4/4", headers={"x-trace-id": xid})
    assert r.status == 200 and r.header("x-trace-id") == xid, r
    spans = by_service(collector.wait_spans(xid, 2))
    assert "parentSpanId" not in spans["hms-gateway"]
    assert spans["calc-svc"]["parentSpanId"] == spans["hms-gateway"]["spanId"]

    # A stamp's own answer is a span too: calc-svc's rate limit (20 req/min).
    for _ in range(25):
        r = httpraw.get(gw.port, "/sum/1/2")
        if r.status == 429:
            break
    assert r.status == 429, r
    limited = collector.wait_spans(r.header("x-trace-id"), 1)
    assert len(limited) == 1, limited  # answered at the gateway: no sidecar span
    assert limited[0]["attrs"]["hms.stamp"] == "rate_limited"
    assert limited[0]["attrs"]["http.response.status_code"] == 429
    assert "status" not in limited[0]  # 4xx: the caller's, span status Unset

    assert metric(gw, "hms_spans_exported_total") >= 4
    assert metric(sc, "hms_spans_exported_total") >= 3
    for hop in (gw, sc):
        for reason in ("ring_full", "export_failed"):
            assert metric(hop, "hms_spans_dropped_total", reason=reason) == 0


@pytest.mark.deadline(90)
def test_each_hop_forwards_its_own_span_as_parent(echo_upstream, register, gateway, collector,
                                                  tmp_path):
    """What the service finally receives: a traceparent whose parent is the
    sidecar's span, the caller's tracestate untouched, and x-trace-id."""
    mesh = mesh_file(tmp_path, {"otlp_endpoint": collector.endpoint})
    register("service: echo-svc\nroutes:\n  - path: /headers\nretries: 0\n")
    sidecar(gateway, "echo-svc", echo_upstream.port, mesh=mesh)
    gw = gateway({"mesh": mesh})
    trace = "5bf92f3577b34da6a3ce929d0e0e4736"
    r = httpraw.get(gw.port, "/headers", headers={
        "traceparent": f"00-{trace}-00f067aa0ba902b7-01", "tracestate": "congo=t61rcWkgMzE,rojo=00f"})
    assert r.status == 200, r
    seen = {}
    for k, v in r.json()["headers"]:
        seen.setdefault(k, v)
    spans = by_service(collector.wait_spans(trace, 2))
    hop = spans["echo-svc"]
    assert seen["traceparent"] == f"00-{trace}-{hop['spanId']}-01"
    assert seen["tracestate"] == "congo=t61rcWkgMzE,rojo=00f"
    assert seen["x-trace-id"] == trace
    assert hop["parentSpanId"] == spans["hms-gateway"]["spanId"]


def test_sampling_is_parent_based_else_by_ratio(echo_upstream, register, gateway, collector,
                                                tmp_path):
    mesh = mesh_file(tmp_path, {"otlp_endpoint": collector.endpoint, "sample_ratio": 0,
                                "service_name": "edge-test"})
    register("service: echo-svc\nroutes:\n  - path: /headers\nretries: 0\n"
             f"endpoints: [127.0.0.1:{echo_upstream.port}]\n")
    gw = gateway({"mesh": mesh})

    def forwarded_flags(r):
        tp = dict((k, v) for k, v in reversed(r.json()["headers"]))["traceparent"]
        return tp.rsplit("-", 1)[1]

    # Ratio 0: traces the gateway starts are not sampled, and it says so downstream.
    for _ in range(5):
        r = httpraw.get(gw.port, "/headers")
        assert r.status == 200 and forwarded_flags(r) == "00", r
    # The caller's decision wins both ways.
    sampled = "6bf92f3577b34da6a3ce929d0e0e4736"
    r = httpraw.get(gw.port, "/headers",
                    headers={"traceparent": f"00-{sampled}-00f067aa0ba902b7-01"})
    assert forwarded_flags(r) == "01"
    unsampled = "7bf92f3577b34da6a3ce929d0e0e4736"
    r = httpraw.get(gw.port, "/headers",
                    headers={"traceparent": f"00-{unsampled}-00f067aa0ba902b7-00"})
    assert forwarded_flags(r) == "00"
    assert r.header("x-trace-id") == unsampled  # unsampled traces still propagate

    spans = collector.wait_spans(sampled, 1)
    assert len(spans) == 1 and spans[0]["resource"]["service.name"] == "edge-test"
    # Every span the cores recorded has been exported: nothing else is on its way.
    eventually(lambda: (metric(gw, "hms_spans_recorded_total"),
                        metric(gw, "hms_spans_exported_total")), lambda rx: rx[0] == rx[1],
               what="(spans recorded, spans exported)")
    with collector.lock:
        assert [s["traceId"] for s in collector.spans] == [sampled]
    assert metric(gw, "hms_spans_recorded_total") == 1


@pytest.mark.deadline(60)
def test_a_dead_collector_drops_and_counts_and_requests_carry_on(echo_upstream, register,
                                                                 gateway, tmp_path):
    dead = f"http://127.0.0.1:{closed_port()}/v1/traces"  # nothing listens there
    mesh = mesh_file(tmp_path, {"otlp_endpoint": dead})
    register("service: echo-svc\nroutes:\n  - GET /status/{code}\nretries: 0\n"
             f"endpoints: [127.0.0.1:{echo_upstream.port}]\n")
    gw = gateway({"mesh": mesh})
    n = 30
    with httpraw.Conn(gw.port) as c:
        for _ in range(n):
            c.send(httpraw.build("GET", "/status/200"))
            r = c.read_response()
            assert r.status == 200, r
    eventually(lambda: metric(gw, "hms_spans_dropped_total", reason="export_failed"),
               lambda dropped: dropped >= n, timeout=5, what=f"{n} spans dropped")
    assert metric(gw, "hms_spans_dropped_total", reason="export_failed") == n
    assert metric(gw, "hms_spans_dropped_total", reason="ring_full") == 0
    assert metric(gw, "hms_spans_exported_total") == 0
    assert metric(gw, "hms_span_export_failures_total") >= 1
    assert metric(gw, "hms_spans_recorded_total") == n
    body = admin_get(gw, "/metrics").body.decode()
    assert "# TYPE hms_spans_dropped_total counter" in body
    # Said once, not once per batch.
    assert gw.logs().count("span export to " + dead + " failed") == 1, gw.logs()


def test_tracing_config_errors_name_the_line(tmp_path):
    import subprocess

    from conftest import binary
    mesh = tmp_path / "mesh.yaml"
    mesh.write_text("retries: 2\ntracing:\n  otlp_endpoint: https://collector:4318\n")
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(f"mesh: {mesh}\nlisteners: [127.0.0.1:0]\nadmin: off\n")
    r = subprocess.run([str(binary("hms-gateway")), "--config", str(cfg), "--check"],
                       capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert f"{mesh}:3: tracing.otlp_endpoint:" in r.stderr and "https is not supported" in r.stderr, \
        r.stderr


def test_recording_spans_allocates_nothing_after_warmup(nginx_upstream, register, gateway,
                                                        collector, tmp_path):
    """STYLE §4 with every request sampled and exported: the span is copied
    into the core's ring, never allocated."""
    from test_engine import keepalive_gets
    mesh = mesh_file(tmp_path, {"otlp_endpoint": collector.endpoint})
    register(f"service: json-svc\nroutes:\n  - GET /json\nendpoints: [{nginx_upstream.addr}]\n")
    gw = gateway({"cores": 1, "mesh": mesh})
    keepalive_gets(gw.port, "/json", 1000)  # warm-up
    before = metric(gw, "hms_core_heap_allocations_total")
    keepalive_gets(gw.port, "/json", 1000)
    after = metric(gw, "hms_core_heap_allocations_total")
    assert after - before == 0, f"{after - before} heap allocations in 1000 traced requests"
    eventually(lambda: metric(gw, "hms_spans_exported_total"), lambda n: n >= 2000, timeout=30,
               what="2000 spans exported")
    assert metric(gw, "hms_spans_recorded_total") == 2000
    assert metric(gw, "hms_spans_exported_total") == 2000
    with collector.lock:
        assert len(collector.spans) == 2000 and not collector.errors
