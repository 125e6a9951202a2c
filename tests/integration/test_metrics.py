"""/metrics families of the observability issue, read after driving requests
whose counts are known: the upstream-side duration histogram (one
observation per attempt, so retries show), request and response bytes per
route, JWT rejections by reason and circuit-breaker transitions. The page
with all of them present passes `promtool check metrics`."""
import re
import shutil
import socket
import subprocess
import time

import pytest

import httpraw
from conftest import admin_get, echo_routes, eventually, wait_probe_due
from test_jwt import get, jwt_gateway, token  # noqa: F401 (jwt_gateway is a fixture)

def scrape(gw):
    r = admin_get(gw, "/metrics")
    assert r.status == 200, r
    return r.body.decode()


def samples(text, name):
    """{frozenset(labels): value} of every sample named exactly `name`."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[labels] = float(m.group(3))
    return out


def value(text, name, **labels):
    """The sum of `name`'s samples whose labels include `labels` (0 when none)."""
    want = set(labels.items())
    return sum(v for k, v in samples(text, name).items() if want <= k)


def exchange(conn_sock, request):
    """Sends one request on a raw socket and reads its whole response; returns
    the response's exact bytes (head and body as they arrived)."""
    conn_sock.sendall(request)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn_sock.recv(65536)
        assert chunk, f"closed before a head: {buf!r}"
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    fields = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        k, _, v = line.partition(":")
        fields[k.strip().lower()] = v.strip()
    if "content-length" in fields:
        need = int(fields["content-length"])
        while len(rest) < need:
            chunk = conn_sock.recv(65536)
            assert chunk, "closed before the whole body"
            rest += chunk
        assert len(rest) == need, "bytes after the response"
    else:
        assert fields.get("transfer-encoding", "").lower() == "chunked", fields
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = conn_sock.recv(65536)
            assert chunk, "closed before the last chunk"
            rest += chunk
    return head + b"\r\n\r\n" + rest


def test_upstream_duration_counts_attempts_and_retries_show(echo_upstream, register, gateway):
    register(echo_routes(echo_upstream.port, retries=2))
    gw = gateway()
    for _ in range(5):
        assert httpraw.get(gw.port, "/slow?ms=40").status == 200
    text = scrape(gw)
    slow = {"service": "echo-svc", "route": "/slow"}
    up = "hms_upstream_response_duration_seconds"
    assert value(text, up + "_count", **slow) == 5
    assert value(text, up + "_bucket", le="+Inf", **slow) == 5
    assert value(text, up + "_bucket", le="10", **slow) == 5
    assert value(text, up + "_bucket", le="0.025", **slow) == 0  # each took 40 ms or more
    up_sum = value(text, up + "_sum", **slow)
    assert 5 * 0.04 <= up_sum < 5 * 10
    # One attempt per request: the gateway's side holds the upstream's.
    assert value(text, "hms_request_duration_seconds_sum", **slow) >= up_sum

    # A 503 is retried twice (GET, retries: 2): three attempts, one answer.
    assert httpraw.get(gw.port, "/status/503").status == 503
    text = scrape(gw)
    st = {"service": "echo-svc", "route": "/status/{code}"}
    assert value(text, "hms_requests_total", code="503", **st) == 1
    assert value(text, "hms_retries_total", **st) == 2
    assert value(text, up + "_count", **st) == 3
    assert value(text, "hms_request_duration_seconds_count", **st) == 1

    # A request no route matched reaches no upstream: no upstream histogram.
    assert httpraw.get(gw.port, "/nope").status == 404
    text = scrape(gw)
    assert value(text, "hms_request_duration_seconds_count", service="none") == 1
    assert value(text, up + "_count", service="none") == 0


def test_request_and_response_bytes_per_route_are_exact(echo_upstream, register, gateway):
    register(echo_routes(echo_upstream.port))
    gw = gateway()
    sent = {"/echo": 0, "/headers": 0}
    got = {"/echo": 0, "/headers": 0}
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        for size in (0, 1000, 70000):
            req = httpraw.build("POST", "/echo", {"Content-Type": "application/octet-stream"},
                                b"b" * size)
            if size == 0:  # an explicit zero-length body
                req = req.replace(b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\n", 1)
            resp = exchange(s, req)
            assert resp.startswith(b"HTTP/1.1 200 "), resp[:200]
            sent["/echo"] += len(req)
            got["/echo"] += len(resp)
        # A chunked request body: its framing counts as received.
        req = (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        resp = exchange(s, req)
        assert resp.endswith(b"hello world"), resp[-100:]
        sent["/echo"] += len(req)
        got["/echo"] += len(resp)
        for _ in range(3):
            req = httpraw.build("GET", "/headers", {"X-Pad": "p" * 100})
            resp = exchange(s, req)
            sent["/headers"] += len(req)
            got["/headers"] += len(resp)
    text = scrape(gw)
    for route in ("/echo", "/headers"):
        labels = {"service": "echo-svc", "route": route}
        assert value(text, "hms_request_bytes_total", **labels) == sent[route], route
        assert value(text, "hms_response_bytes_total", **labels) == got[route], route
    # Every byte of this test belonged to an answered request: the per-route
    # counts add up to the listener's (sent bytes are counted when the
    # kernel reports the send, a moment after the client has them).
    text = eventually(lambda: scrape(gw),
                      lambda t: value(t, "hms_downstream_sent_bytes_total") == sum(got.values()),
                      timeout=5, what=f"hms_downstream_sent_bytes_total == {sum(got.values())}")
    assert value(text, "hms_downstream_received_bytes_total") == sum(sent.values())
    assert value(text, "hms_request_bytes_total") == sum(sent.values())
    assert value(text, "hms_response_bytes_total") == sum(got.values())


def test_jwt_rejections_are_counted_by_route_and_reason(jwt_gateway):
    gw = jwt_gateway
    expect = [("/headers", None, 401, "missing_token"),
              ("/headers", None, 401, "missing_token"),
              ("/headers", "not.a.jwt", 401, "malformed"),
              ("/headers", token(exp=int(time.time()) - 60), 401, "expired"),
              ("/headers", token(iss="https://evil.test"), 401, "wrong_issuer"),
              ("/stream", token(), 403, "insufficient_scope"),
              ("/headers", token(), 200, None),
              ("/status/200", None, 200, None)]  # auth: none
    for path, tok, status, _ in expect:
        assert get(gw, path, tok).status == status, path
    text = scrape(gw)
    want = {}
    for path, _, _, reason in expect:
        if reason:
            route = "/headers" if path == "/headers" else "/stream"
            want[(route, reason)] = want.get((route, reason), 0) + 1
    got = {(dict(k)["route"], dict(k)["reason"]): v
           for k, v in samples(text, "hms_jwt_rejections_total").items()}
    assert got == want, text
    assert all(dict(k)["service"] == "echo-svc" for k in samples(text, "hms_jwt_rejections_total"))
    # The refused requests are answers like any other.
    assert value(text, "hms_requests_total", route="/headers", code="401") == 5


def test_breaker_transitions_are_counted_once_each(echo_upstream, register, gateway):
    register(f"service: flaky-svc\nroutes:\n  - GET /status/{{code}}\nretries: 0\n"
             f"breaker: {{failures: 2, open_for: 1s}}\nendpoints: [127.0.0.1:{echo_upstream.port}]\n")
    gw = gateway()

    def transitions():
        text = scrape(gw)
        return {dict(k)["to"]: v for k, v in samples(text, "hms_breaker_transitions_total").items()
                if dict(k)["service"] == "flaky-svc"}

    assert transitions() == {"open": 0, "half_open": 0, "closed": 0}
    assert [httpraw.get(gw.port, "/status/500").status for _ in range(3)] == [500, 500, 503]
    assert transitions() == {"open": 1, "half_open": 0, "closed": 0}
    wait_probe_due(gw, "flaky-svc")
    assert httpraw.get(gw.port, "/status/500").status == 500  # the probe fails: open again
    assert transitions() == {"open": 2, "half_open": 1, "closed": 0}
    wait_probe_due(gw, "flaky-svc")
    assert httpraw.get(gw.port, "/status/200").status == 200  # the probe succeeds: closed
    assert transitions() == {"open": 2, "half_open": 2, "closed": 1}
    text = scrape(gw)
    assert value(text, "hms_breaker_opened_total", service="flaky-svc") == 2
    assert value(text, "hms_breaker_state", service="flaky-svc") == 0


def test_metrics_page_with_every_family_passes_promtool(jwt_gateway):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    gw = jwt_gateway
    assert get(gw, "/headers").status == 401
    assert get(gw, "/headers", token()).status == 200
    assert get(gw, "/status/200").status == 200
    assert get(gw, "/nope").status == 404
    text = scrape(gw)
    for family in ("hms_jwt_rejections_total", "hms_upstream_response_duration_seconds_bucket",
                   "hms_request_bytes_total", "hms_response_bytes_total",
                   "hms_breaker_transitions_total"):
        assert samples(text, family), f"{family} missing:\n{text}"
    p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout + p.stderr == "", p.stdout + p.stderr
