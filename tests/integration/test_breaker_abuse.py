"""No client can open a service's breaker for everyone (docs/resilience.md
"What counts as a failure"): only the upstream's own failures count. A
caller's short x-hms-timeout-ms, uploads abandoned or stalled mid-body and a
probe whose client leaves say nothing about the service; 5xx, refused
connects and the route's own timeout still open the breaker. A
re-registration with a shorter open_for reaches a breaker that is open.

Against apps/flaky (uvicorn): /who?ms=N answers after N ms (503 while down),
/fail/{key}/0 reads the whole request body before it answers."""
import socket
import struct
import time

import pytest

import httpraw
from conftest import HERE, admin_get, closed_port, eventually

FLAKY = HERE / "apps" / "flaky"


def routes(*endpoints, failures=3, open_for="30s", timeout="5s"):
    eps = ", ".join(e.addr if hasattr(e, "addr") else e for e in endpoints)
    return ("service: flaky-svc\nroutes:\n  - path: /fail/{key}/{n}\n  - GET /who\n"
            f"retries: 0\ntimeout: {timeout}\n"
            f"breaker: {{failures: {failures}, open_for: {open_for}}}\nendpoints: [{eps}]\n")


@pytest.fixture
def flaky(uvicorn_app):
    return uvicorn_app(FLAKY)


def breaker(gw):
    (b,) = [b for b in admin_get(gw, "/status").json()["breakers"] if b["service"] == "flaky-svc"]
    return b


def metric(gw, name):
    body = admin_get(gw, "/metrics").body.decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def assert_closed_and_serving(gw):
    b = breaker(gw)
    assert (b["state"], b["consecutive_failures"]) == ("closed", 0), b
    assert metric(gw, "hms_breaker_opened_total") == 0
    assert metric(gw, "hms_endpoint_ejections_total") == 0
    r = httpraw.get(gw.port, "/who")
    assert r.status == 200, r


def wait_until(what, predicate, timeout=5.0):
    eventually(predicate, timeout=timeout, what=what)


def wait_idle(gw):
    """Every downstream connection closed: the gateway is done with them."""
    wait_until("connections closed", lambda: metric(gw, "hms_connections_active") == 0)


def reset(conn):
    """Closes with a TCP reset (SO_LINGER 0)."""
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def test_caller_deadlines_do_not_open_the_breaker(flaky, register, gateway):
    register(routes(flaky, timeout="500ms"))
    gw = gateway()
    for _ in range(10):
        r = httpraw.get(gw.port, "/who?ms=2000", headers={"x-hms-timeout-ms": "1"})
        assert r.status == 504 and r.header("x-hms-reason") == "caller_deadline", r
    assert_closed_and_serving(gw)
    # The route's own timeout is the service's failure, also when the caller
    # allowed longer: the third one opens the breaker.
    for _ in range(3):
        r = httpraw.get(gw.port, "/who?ms=2000", headers={"x-hms-timeout-ms": "60000"})
        assert r.status == 504 and r.header("x-hms-reason") == "upstream_timeout", r
    r = httpraw.get(gw.port, "/who")
    assert r.status == 503 and r.header("x-hms-reason") == "circuit_open", r
    assert breaker(gw)["state"] == "open"


def test_stalled_uploads_are_408_and_do_not_open_the_breaker(flaky, register, gateway):
    register(routes(flaky, timeout="300ms"))
    gw = gateway()
    partial = [
        ({"Content-Length": "1000"}, b"x" * 10),                 # short of its length
        ({"Transfer-Encoding": "chunked"}, b"100\r\n" + b"y" * 20),  # inside a chunk
        ({"Transfer-Encoding": "chunked"}, b"5\r\nhello\r\n"),   # no last chunk
    ]
    for i in range(6):
        headers, body = partial[i % len(partial)]
        with httpraw.Conn(gw.port) as c:
            c.send(httpraw.build("POST", f"/fail/stall{i}/0", headers, body))
            r = c.read_response("POST")
            assert r.status == 408 and r.header("x-hms-reason") == "body_timeout", r
            assert r.header("connection") == "close", r
    assert_closed_and_serving(gw)


def test_abandoned_uploads_do_not_open_the_breaker(flaky, register, gateway):
    register(routes(flaky, timeout="300ms"))
    gw = gateway()
    for i in range(6):
        c = httpraw.Conn(gw.port)
        c.send(httpraw.build("POST", f"/fail/gone{i}/0", {"Content-Length": "100000"},
                             b"z" * 1000))
        if i % 2 == 0:
            # FIN mid-body: the body can never be finished; answered at once.
            c.sock.shutdown(socket.SHUT_WR)
            r = c.read_response("POST")
            c.close()
            assert r.status == 400 and r.header("x-hms-reason") == "body_incomplete", r
        else:
            reset(c)
    wait_idle(gw)
    assert_closed_and_serving(gw)


@pytest.mark.parametrize("failure", ["5xx", "refused", "route_timeout"])
def test_genuine_upstream_failures_still_open_it(failure, flaky, register, gateway):
    """The control: three failures of the upstream's own open the breaker."""
    if failure == "refused":
        register(routes(f"127.0.0.1:{closed_port()}"))  # nobody listens there
    else:
        register(routes(flaky, timeout="300ms"))
    gw = gateway()
    if failure == "5xx":
        assert httpraw.request(flaky.port, "POST", "/down").status == 200
    path = "/who?ms=2000" if failure == "route_timeout" else "/who"
    for _ in range(3):
        r = httpraw.get(gw.port, path)
        assert r.status in (502, 503, 504), r
    r = httpraw.get(gw.port, "/who")
    assert r.status == 503 and r.header("x-hms-reason") == "circuit_open", r
    assert breaker(gw)["state"] == "open"


def open_breaker(gw, flaky):
    """Fails one request (failures: 1) while the upstream is down, then brings
    it back up. Returns the times just before and just after that request:
    the breaker opened between them."""
    assert httpraw.request(flaky.port, "POST", "/down").status == 200
    sent = time.monotonic()
    assert httpraw.get(gw.port, "/who").status == 503
    received = time.monotonic()
    assert httpraw.request(flaky.port, "POST", "/up").status == 200
    r = httpraw.get(gw.port, "/who")
    assert r.status == 503 and r.header("x-hms-reason") == "circuit_open", r
    return sent, received


def probe_due(gw):
    body = admin_get(gw, "/metrics").body.decode()
    line = 'hms_breaker_next_probe_seconds{service="flaky-svc"} '
    (value,) = [l[len(line):] for l in body.splitlines() if l.startswith(line)]
    return float(value) == 0 and breaker(gw)["state"] == "open"


@pytest.mark.deadline(60)
def test_shorter_open_for_reaches_an_open_breaker(flaky, register, gateway):
    path = register(routes(flaky, failures=1, open_for="60s"), name="flaky.yaml")
    gw = gateway()

    def reregister(open_for):
        register(routes(flaky, failures=1, open_for=open_for), name=path.name)
        ms = int(open_for[:-1]) * 1000
        wait_until("the new open_for is live", lambda: admin_get(gw, "/config").json()
                   ["clusters"][0]["breaker"]["open_for_ms"] == ms)

    # Shortened while the new time is still ahead: the probe goes at the
    # opening time plus the new open_for, not before.
    sent, _ = open_breaker(gw, flaky)
    reregister("2s")
    assert breaker(gw)["next_probe_s"] <= 2, breaker(gw)
    if time.monotonic() < sent + 1.5:
        r = httpraw.get(gw.port, "/who")
        assert r.status == 503 and r.header("x-hms-reason") == "circuit_open", r
    wait_until("the probe goes", lambda: httpraw.get(gw.port, "/who").status == 200)
    assert time.monotonic() >= sent + 2.0
    assert breaker(gw)["state"] == "closed"

    # Shortened after the new time has passed: the probe goes at once.
    reregister("60s")
    _, received = open_breaker(gw, flaky)
    # Past opening + the next open_for (1 s). A sleep by nature: the gateway
    # cannot show this moment, as the open_for it runs is still 60 s.
    time.sleep(max(0.0, received + 1.1 - time.monotonic()))
    reregister("1s")
    r = httpraw.get(gw.port, "/who")
    assert r.status == 200, r
    assert breaker(gw)["state"] == "closed"


@pytest.mark.parametrize("how", ["caller_deadline", "client_reset"])
def test_probe_not_counted_hands_on_its_slot(how, flaky, register, gateway):
    """A probe that ends without saying anything about the service does not
    leave the breaker half-open (every caller refused) for another open_for."""
    register(routes(flaky, failures=1, open_for="1s"))
    gw = gateway()
    open_breaker(gw, flaky)
    wait_until("the probe is due", lambda: probe_due(gw))
    if how == "caller_deadline":
        r = httpraw.get(gw.port, "/who?ms=2000", headers={"x-hms-timeout-ms": "50"})
        assert r.status == 504 and r.header("x-hms-reason") == "caller_deadline", r
    else:
        c = httpraw.Conn(gw.port)
        c.send(httpraw.build("GET", "/who?ms=2000"))
        wait_until("the probe is out", lambda: breaker(gw)["state"] == "half-open")
        reset(c)
        wait_idle(gw)
    r = httpraw.get(gw.port, "/who")
    assert r.status == 200, r
    assert breaker(gw)["state"] == "closed"
