"""Upstream faults (DESIGN §6): malformed, truncated, reset, refused and slow
upstreams turn into 502/503/504 for the affected request only."""
import signal
import threading
import time

import pytest

import httpraw
from conftest import APPS, closed_port, echo_routes


def bad_routes(port):
    return ("service: bad-svc\n"
            "routes:\n"
            "  - GET /truncated\n"
            "  - GET /garbage\n"
            "  - GET /reset\n"
            "  - GET /truncated-body\n"
            "retries: 0\n"
            "breaker: {failures: 1000, open_for: 1s}\n"
            f"endpoints: [127.0.0.1:{port}]\n")


@pytest.fixture
def bad_gateway(bad_upstream, echo_upstream, register, gateway):
    register(bad_routes(bad_upstream.port))
    register(echo_routes(echo_upstream.port))
    return gateway()


def assert_local_error(r, statuses):
    assert r.status in statuses, r
    assert r.header("x-hms-reason"), f"no x-hms-reason on {r}"
    assert set(r.json()) >= {"error", "reason", "trace_id"}, r


def test_truncated_upstream_head_is_502(bad_gateway):
    assert_local_error(httpraw.get(bad_gateway.port, "/truncated"), {502})
    assert httpraw.get(bad_gateway.port, "/status/200").status == 200


def test_garbage_from_upstream_is_502(bad_gateway):
    assert_local_error(httpraw.get(bad_gateway.port, "/garbage"), {502})
    assert httpraw.get(bad_gateway.port, "/status/200").status == 200


def read_partial(port, path):
    """GET path; returns (response head status or None, body bytes, closed)."""
    with httpraw.Conn(port) as c:
        c.send(httpraw.build("GET", path))
        version, status, reason, headers = c.read_head()
        closed = c.closed_by_peer(timeout=10)
        return status, dict(headers), c.buf, closed


@pytest.mark.parametrize("path,declared", [("/reset", 1 << 20), ("/truncated-body", 100)])
def test_upstream_dies_mid_body(bad_gateway, path, declared):
    status, headers, body, closed = read_partial(bad_gateway.port, path)
    if status == 502:  # the gateway had not forwarded the head yet
        assert headers.get("x-hms-reason"), headers
    else:
        # Head already forwarded: the client must see the connection end short of
        # the declared length, never a response it could take as complete.
        assert status == 200
        assert closed, "connection left open after the upstream died mid-body"
        assert len(body) < declared
    assert httpraw.get(bad_gateway.port, "/status/200").status == 200


def test_refused_upstream_is_502_or_503(register, gateway):
    port = closed_port()  # nobody listens there
    register("service: gone-svc\nroutes:\n  - GET /gone\nretries: 0\n"
             f"endpoints: [127.0.0.1:{port}]\n")
    gw = gateway()
    assert_local_error(httpraw.get(gw.port, "/gone"), {502, 503})


def test_no_endpoints_is_503(register, gateway):
    register("service: empty-svc\nroutes:\n  - GET /empty\n")
    gw = gateway()
    r = httpraw.get(gw.port, "/empty")
    assert_local_error(r, {503})
    # The answer says what gives the service an endpoint.
    assert r.header("x-hms-reason") == "no_endpoints", r
    assert "hms-api endpoints add" in r.json()["error"], r
    assert "sidecar" in r.json()["error"], r


def test_slow_upstream_beyond_route_timeout_is_504(echo_upstream, register, gateway):
    register(echo_routes(echo_upstream.port, slow_timeout="300ms"))
    gw = gateway()
    start = time.monotonic()
    r = httpraw.get(gw.port, "/slow?ms=3000")
    elapsed = time.monotonic() - start
    assert_local_error(r, {504})
    assert r.header("x-hms-reason") == "upstream_timeout", r
    assert 0.25 < elapsed < 2.0, f"answered after {elapsed:.2f} s for a 300 ms timeout"
    # Within the timeout it still works.
    assert httpraw.get(gw.port, "/slow?ms=10").status == 200


def test_upstream_killed_mid_response(uvicorn_app, bad_upstream, register, gateway):
    victim = uvicorn_app(APPS, "echo_app")
    register("service: victim-svc\nroutes:\n  - GET /stream\nretries: 0\n"
             f"breaker: {{failures: 1000, open_for: 1s}}\nendpoints: [{victim.addr}]\n")
    register(f"service: alive-svc\nroutes:\n  - GET /alive\nendpoints: [{bad_upstream.addr}]\n")
    gw = gateway()

    with httpraw.Conn(gw.port, timeout=10) as c:
        c.send(httpraw.build("GET", "/stream?n=100&size=1000&delay_ms=100"))
        version, status, _, headers = c.read_head()
        assert status == 200
        while len(c.buf) < 100:  # some of the body has arrived
            assert c._fill(), "closed before any body"
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(timeout=5)
        assert c.closed_by_peer(timeout=10), "client connection left open after upstream died"
        assert b"0\r\n\r\n" not in c.buf, "a dead upstream must not look like a complete body"

    # Everything else carries on: the dead service fails cleanly, the gateway's
    # own answers and other services still work.
    r = httpraw.get(gw.port, "/stream?n=1")
    assert r.status in (502, 503), r
    assert httpraw.get(gw.port, "/no/such/route").status == 404
    assert httpraw.get(gw.port, "/alive").status == 200


def test_concurrent_faults_do_not_disturb_good_requests(bad_gateway):
    results = []

    def worker(path, n):
        for _ in range(n):
            try:
                results.append((path, httpraw.get(bad_gateway.port, path, timeout=10).status))
            except (httpraw.PeerClosed, OSError) as e:
                results.append((path, type(e).__name__))

    threads = [threading.Thread(target=worker, args=(p, 20))
               for p in ("/garbage", "/truncated", "/status/200", "/status/200")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=40)
    good = [s for p, s in results if p == "/status/200"]
    bad = [s for p, s in results if p != "/status/200"]
    assert good == [200] * 40, good
    assert set(bad) == {502}, bad
