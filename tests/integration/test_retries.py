"""Retries, timeouts and load balancing (DESIGN §5, docs/resilience.md),
through the real gateway against a real upstream that fails on demand
(apps/flaky: 5xx, slow answers, counters of what it received)."""
import signal
import threading
import time

import pytest

import httpraw
from conftest import HERE, admin_get, closed_port, eventually, wait_probe_due, wait_snapshot

FLAKY = HERE / "apps" / "flaky"


def routes(*endpoints, extra=""):
    eps = ", ".join(e.addr if hasattr(e, "addr") else e for e in endpoints)
    return ("service: flaky-svc\nroutes:\n  - path: /fail/{key}/{n}\n  - GET /who\n"
            "  - GET /calls/{key}\n"
            f"breaker: {{failures: 1000, open_for: 1s}}\nendpoints: [{eps}]\n{extra}")


def calls(port, key):
    return httpraw.get(port, f"/calls/{key}").json()["calls"]


def metric(gw, name):
    body = admin_get(gw, "/metrics").body.decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def ejected(gw, addr):
    body = admin_get(gw, "/metrics").body.decode()
    line = f'hms_endpoint_ejected{{service="flaky-svc",endpoint="{addr}"}} '
    (value,) = [l[len(line):] for l in body.splitlines() if l.startswith(line)]
    return float(value)


@pytest.fixture
def flaky(uvicorn_app):
    return uvicorn_app(FLAKY)


def test_idempotent_request_retried_until_it_succeeds(flaky, register, gateway):
    register(routes(flaky, extra="retries: 2\n"))
    gw = gateway()
    r = httpraw.get(gw.port, "/fail/a/2")
    assert r.status == 200, r
    assert r.json()["call"] == 3
    assert calls(flaky.port, "a") == 3
    assert metric(gw, "hms_retries_total") == 2


def test_retries_stop_at_the_configured_count(flaky, register, gateway):
    register(routes(flaky, extra="retries: 2\n"))
    gw = gateway()
    r = httpraw.get(gw.port, "/fail/b/5?code=502")
    # The upstream's own answer to the last attempt goes out as it was.
    assert r.status == 502 and r.json()["call"] == 3, r
    assert calls(flaky.port, "b") == 3
    r = httpraw.get(gw.port, "/fail/c/5?code=500")
    assert r.status == 500 and calls(flaky.port, "c") == 1  # 500 is not retried


def test_retry_on_lists_what_a_service_retries(flaky, register, gateway, hms_api, tmp_path):
    # The seed's "retry 2x on 500 or timeout", written in the route file.
    register(routes(flaky, extra="retries: 2\nretry_on: [500, timeout]\n"))
    gw = gateway()
    r = httpraw.get(gw.port, "/fail/ra/1?code=500")
    assert r.status == 200 and r.json()["call"] == 2, r
    r = httpraw.get(gw.port, "/fail/rb/5?code=500")
    assert r.status == 500 and calls(flaky.port, "rb") == 3, r  # 2 retries, then its answer
    # What the list leaves out is not retried: 503 here.
    r = httpraw.get(gw.port, "/fail/rc/1?code=503")
    assert r.status == 503 and calls(flaky.port, "rc") == 1, r
    # A 500 is still not repeated for a request that is not safe to repeat.
    r = httpraw.request(gw.port, "POST", "/fail/rd/1?code=500", body=b"x")
    assert r.status == 500 and calls(flaky.port, "rd") == 1, r
    # A token that is none of the list: the file and line say which.
    bad = tmp_path / "bad.yaml"
    bad.write_text(routes(flaky, extra="retry_on: [500, 5xx]\n"))
    r = hms_api("register", bad)
    assert r.returncode != 0 and f"{bad}:" in r.stderr and "retry_on[1]" in r.stderr, r.stderr
    assert "connect-failure" in r.stderr, r.stderr


def test_retries_zero_means_one_attempt(flaky, register, gateway):
    register(routes(flaky, extra="retries: 0\n"))
    gw = gateway()
    assert httpraw.get(gw.port, "/fail/d/1").status == 503
    assert calls(flaky.port, "d") == 1


def test_post_is_retried_only_with_an_idempotency_key(flaky, register, gateway):
    register(routes(flaky, extra="retries: 2\n"))
    gw = gateway()
    body = b"x" * 1000
    r = httpraw.request(gw.port, "POST", "/fail/e/1", body=body)
    assert r.status == 503 and calls(flaky.port, "e") == 1, r
    r = httpraw.request(gw.port, "POST", "/fail/f/1", headers={"Idempotency-Key": "k-1"}, body=body)
    assert r.status == 200, r
    assert (r.json()["call"], r.json()["body_len"]) == (2, 1000)  # the body went again, whole
    # Chunked bodies are replayed as they came.
    chunked = b"400\r\n" + b"y" * 1024 + b"\r\n0\r\n\r\n"
    r = httpraw.request(gw.port, "PUT", "/fail/g/1",
                        headers={"Transfer-Encoding": "chunked"}, body=chunked)
    assert r.status == 200 and r.json()["body_len"] == 1024, r


def test_body_larger_than_the_replay_bound_is_not_retried(flaky, register, gateway):
    register(routes(flaky, extra="retries: 2\n"))
    gw = gateway()
    r = httpraw.request(gw.port, "PUT", "/fail/h/1", body=b"z" * (200 * 1024))
    assert r.status == 503 and calls(flaky.port, "h") == 1, r
    r = httpraw.request(gw.port, "PUT", "/fail/i/1", body=b"z" * (60 * 1024))
    assert r.status == 200 and r.json()["body_len"] == 60 * 1024, r


def test_connect_failure_moves_to_the_next_endpoint(flaky, register, gateway):
    dead = f"127.0.0.1:{closed_port()}"
    register(routes(dead, flaky, extra="retries: 0\n"))  # transparent: no policy retry needed
    gw = gateway({"cores": 1})
    for _ in range(6):
        r = httpraw.get(gw.port, "/who")
        assert r.status == 200, r


def test_per_try_timeout_retries_a_stalled_attempt(flaky, register, gateway):
    register(routes(flaky, extra="retries: 2\ntimeout: 5s\nper_try_timeout: 300ms\n"))
    gw = gateway()
    start = time.monotonic()
    r = httpraw.get(gw.port, "/fail/j/1?slow_ms=3000")
    took = time.monotonic() - start
    assert r.status == 200 and r.json()["call"] == 2, r
    assert 0.3 <= took < 1.5, f"took {took:.2f} s"
    # The attempt was told its time: the per-try timeout.
    assert r.json()["timeout_ms"].strip() == "300"


def test_deadline_is_passed_upstream_and_ends_in_504(flaky, register, gateway):
    register(routes(flaky, extra="retries: 2\ntimeout: 400ms\n"))
    gw = gateway()
    r = httpraw.get(gw.port, "/fail/k/0")
    assert r.status == 200
    assert 1 <= int(r.json()["timeout_ms"]) <= 400
    # A caller's shorter deadline wins (what a sidecar gets from a gateway).
    r = httpraw.get(gw.port, "/fail/l/0", headers={"x-hms-timeout-ms": "150"})
    assert 1 <= int(r.json()["timeout_ms"]) <= 150
    start = time.monotonic()
    r = httpraw.get(gw.port, "/fail/m/9?slow_ms=2000")
    took = time.monotonic() - start
    assert r.status == 504 and r.header("x-hms-reason") == "upstream_timeout", r
    assert took < 1.0, f"took {took:.2f} s"
    assert calls(flaky.port, "m") == 1  # no time was left to retry a stalled attempt


@pytest.mark.deadline(60)
def test_retry_budget_bounds_what_a_dead_service_receives(flaky, register, gateway):
    register(routes(flaky, extra="retries: 2\n"))
    gw = gateway()
    n = 200
    start = time.monotonic()
    for i in range(n):
        assert httpraw.get(gw.port, "/fail/dead/1000000").status == 503
    seconds = time.monotonic() - start
    received = calls(flaky.port, "dead")
    retries = received - n
    # Without the budget: 3 attempts each (600). The budget allows 20% of the
    # requests of the last 10 s, and at least 3 retries per second.
    allowed = 0.2 * n + 3 * (int(seconds) + 1)
    print(f"\n{n} requests in {seconds:.1f} s: {retries} retries (budget {allowed:.0f})")
    assert 0 < retries <= allowed, (retries, allowed)
    assert metric(gw, "hms_retry_budget_exhausted_total") > 0


def test_least_request_avoids_the_busy_endpoint(uvicorn_app, register, gateway):
    a, b = uvicorn_app(FLAKY), uvicorn_app(FLAKY)
    register(routes(a, b, extra="load_balancing: least_request\nretries: 0\n"))
    gw = gateway({"cores": 1})  # one core: its view of what is busy is the whole view
    slow = {}

    def hold():
        slow["r"] = httpraw.get(gw.port, "/who?ms=1500")

    t = threading.Thread(target=hold)
    t.start()
    eventually(lambda: calls(a.port, "who") + calls(b.port, "who"), lambda n: n == 1,
               what="the slow request at an upstream")
    ports = [httpraw.get(gw.port, "/who").json()["port"] for _ in range(20)]
    t.join(timeout=10)
    busy = slow["r"].json()["port"]
    assert busy not in ports, (busy, ports)
    assert len(set(ports)) == 1
    # Round robin, for contrast, alternates whatever is busy.
    v = wait_snapshot(gw)
    register(routes(a, b, extra="retries: 0\n"))
    wait_snapshot(gw, after=v)
    ports = [httpraw.get(gw.port, "/who").json()["port"] for _ in range(4)]
    assert len(set(ports)) == 2


@pytest.mark.deadline(60)
def test_failing_endpoint_is_ejected_while_the_other_serves(uvicorn_app, register, gateway):
    good, bad = uvicorn_app(FLAKY), uvicorn_app(FLAKY, env={"FLAKY_DOWN": "1"})
    register(routes(good, bad, extra="retries: 0\n"))
    gw = gateway({"cores": 2})
    start = time.monotonic()
    statuses = [httpraw.get(gw.port, "/who").status for _ in range(40)]
    took = time.monotonic() - start
    # Round robin alone would send half to the bad one (20 failures). It is
    # ejected after 5 consecutive failures counted over both cores, for 1 s,
    # then 2 s, ...: each ejection costs exactly 5 failed requests, and once
    # the last one ends (a slow run: sanitizers) fewer than 5 more may fail
    # before the next.
    failures = statuses.count(503)
    ejections = metric(gw, "hms_endpoint_ejections_total")
    print(f"\n40 requests in {took:.2f} s: {failures} failed, {ejections:.0f} ejections")
    assert ejections >= 1, statuses
    assert 5 * ejections <= failures <= 5 * ejections + (4 if took > 1.0 else 0), statuses
    assert ejections <= 1 + int(took), statuses  # 1 s, then 2 s, 4 s...
    body = admin_get(gw, "/metrics").body.decode()
    assert f'hms_endpoint_ejected{{service="flaky-svc",endpoint="{bad.addr}"}}' in body, body
    # With retries, a request that meets the bad one goes again to the good
    # one: no failure reaches the client (6 requests: 3 retries, within the
    # retry budget's floor of 3 per second).
    v = wait_snapshot(gw)
    register(routes(good, bad, extra="retries: 2\n"))
    wait_snapshot(gw, after=v)
    eventually(lambda: ejected(gw, bad.addr), lambda e: e == 0, timeout=10,
               what="the ejection of the bad endpoint ends")
    after = [httpraw.get(gw.port, "/who").status for _ in range(6)]
    assert after == [200] * 6, after
    assert metric(gw, "hms_retries_total") >= 1


@pytest.mark.deadline(60)
def test_active_health_checks_take_a_failing_endpoint_out_and_back(uvicorn_app, register, gateway):
    good, bad = uvicorn_app(FLAKY), uvicorn_app(FLAKY, env={"FLAKY_DOWN": "1"})
    register(routes(good, bad, extra="retries: 0\n"
                    "health: {path: /who, interval: 200ms, timeout: 150ms, unhealthy: 1}\n"))
    gw = gateway({"cores": 2})

    def healthy(addr):
        body = admin_get(gw, "/metrics").body.decode()
        line = f'hms_endpoint_healthy{{service="flaky-svc",endpoint="{addr}"}} '
        return [l for l in body.splitlines() if l.startswith(line)][0].endswith(" 1")

    eventually(lambda: healthy(bad.addr), lambda h: not h, timeout=3,
               what="the failing endpoint marked unhealthy")
    assert healthy(good.addr)
    # Every core skips it: no request meets the failing endpoint.
    assert [httpraw.get(gw.port, "/who").status for _ in range(20)] == [200] * 20
    checks = metric(gw, "hms_health_checks_total")
    assert checks >= 2
    # It recovers: the next good check brings it back for every core.
    assert httpraw.request(bad.port, "POST", "/up").status == 200
    eventually(lambda: healthy(bad.addr), timeout=3, what="the endpoint healthy again")
    ports = {httpraw.get(gw.port, "/who").json()["port"] for _ in range(10)}
    assert ports == {good.port, bad.port}


@pytest.mark.deadline(60)
def test_paused_endpoint_costs_a_per_try_timeout_then_the_other_answers(uvicorn_app, register,
                                                                       gateway):
    a, b = uvicorn_app(FLAKY), uvicorn_app(FLAKY)
    register(routes(a, b, extra="retries: 2\ntimeout: 5s\nper_try_timeout: 200ms\n"))
    gw = gateway({"cores": 1})
    b.proc.send_signal(signal.SIGSTOP)  # accepts (the kernel does), never answers
    try:
        # 6 requests: round robin sends 3 to the paused endpoint, so 3
        # retries, within the retry budget's floor of 3 per second however
        # slowly this machine runs them.
        start = time.monotonic()
        answers = [httpraw.get(gw.port, "/who") for _ in range(6)]
        took = time.monotonic() - start
    finally:
        b.proc.send_signal(signal.SIGCONT)
    assert [r.status for r in answers] == [200] * 6, answers
    assert {r.json()["port"] for r in answers} == {a.port}
    # Each request that met the paused one lost its 200 ms per-try timeout
    # and some backoff, not the 5 s deadline.
    assert took < 6 * 0.1 + 3 * 0.5, f"{took:.2f} s"
    assert metric(gw, "hms_retries_total") == 3


@pytest.mark.deadline(60)
def test_breaker_sends_exactly_one_probe_and_closes_on_every_core(flaky, register, gateway):
    register(routes(flaky, extra="retries: 0\n").replace(
        "breaker: {failures: 1000, open_for: 1s}", "breaker: {failures: 3, open_for: 1s}"))
    gw = gateway({"cores": 2})
    assert httpraw.request(flaky.port, "POST", "/down").status == 200
    statuses = [httpraw.get(gw.port, "/who").status for _ in range(3)]
    assert statuses == [503, 503, 503]
    before = calls(flaky.port, "who")
    r = httpraw.get(gw.port, "/who")  # open: answered at once, the upstream untouched
    assert r.status == 503 and r.header("x-hms-reason") == "circuit_open", r
    assert calls(flaky.port, "who") == before

    # After open_for, a burst over fresh connections (both cores): exactly one
    # probe reaches the upstream (a slow one, so the burst meets it half-open).
    wait_probe_due(gw, "flaky-svc")
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        httpraw.get(gw.port, "/who?ms=400").status)) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert calls(flaky.port, "who") == before + 1, results
    assert sorted(results) == [503] * 10  # the probe failed too: open again

    # The service recovers; after open_for the probe succeeds and every core
    # lets traffic through again.
    assert httpraw.request(flaky.port, "POST", "/up").status == 200
    wait_probe_due(gw, "flaky-svc")
    statuses = [httpraw.get(gw.port, "/who").status for _ in range(10)]
    assert statuses == [200] * 10, statuses
    body = admin_get(gw, "/metrics").body.decode()
    assert 'hms_breaker_state{service="flaky-svc"} 0' in body
