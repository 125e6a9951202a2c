"""The seed chapter's walk-through (§4), exactly as written: its two FastAPI
services, its route files, `hms-api register`, then calls through the gateway."""
import time

import httpraw
from conftest import REPO

DEMO = REPO / "configs" / "demo"


def test_seed_walkthrough(uvicorn_app, hms_api, gateway):
    hello = uvicorn_app(DEMO / "hello_svc")
    calc = uvicorn_app(DEMO / "calc_svc")

    r = hms_api("register", DEMO / "hello_svc" / "route.yaml")
    assert r.returncode == 0, r.stderr
    assert "✓ registered hello-svc" in r.stdout
    r = hms_api("register", DEMO / "calc_svc" / "route.yaml")
    assert r.returncode == 0, r.stderr
    assert "✓ registered calc-svc" in r.stdout
    for service, upstream in (("hello-svc", hello), ("calc-svc", calc)):
        r = hms_api("endpoints", "add", service, upstream.addr)
        assert r.returncode == 0, r.stderr

    gw = gateway()

    r = httpraw.get(gw.port, "/hello")
    assert r.status == 200, r
    assert r.json() == {"msg": "Hello from HMS!"}
    assert r.header("x-trace-id"), f"no x-trace-id on {r}"

    r = httpraw.get(gw.port, "/sum/2/3")
    assert r.status == 200, r
    assert r.json() == {"sum": 5}
    assert r.header("x-trace-id"), f"no x-trace-id on {r}"

    r = hms_api("list")
    assert r.returncode == 0, r.stderr
    assert "hello-svc" in r.stdout and "calc-svc" in r.stdout, r.stdout


def test_register_invalid_file_changes_nothing(hms_api, tmp_path):
    good = DEMO / "hello_svc" / "route.yaml"
    assert hms_api("register", good).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("service: calc-svc\nroutes:\n  - GET /sum/{a}/{b}\nrate_limt: \"20 req/min\"\n")
    r = hms_api("register", bad)
    assert r.returncode != 0
    assert f"{bad}:4" in r.stderr, r.stderr
    assert "rate_limit" in r.stderr, r.stderr  # the suggestion
    r = hms_api("list")
    assert "hello-svc" in r.stdout and "calc-svc" not in r.stdout, r.stdout


def test_seed_rate_limit_20_per_minute(uvicorn_app, hms_api, gateway):
    # calc_svc/route.yaml says rate_limit: "20 req/min": a bucket of 20 tokens
    # refilled at 20 per minute, so the 21st call within the minute is refused.
    calc = uvicorn_app(DEMO / "calc_svc")
    assert hms_api("register", DEMO / "calc_svc" / "route.yaml").returncode == 0
    assert hms_api("endpoints", "add", "calc-svc", calc.addr).returncode == 0
    gw = gateway()
    statuses = [httpraw.get(gw.port, f"/sum/{i}/1").status for i in range(20)]
    assert statuses == [200] * 20, statuses
    r = httpraw.get(gw.port, "/sum/2/3")
    assert r.status == 429, f"21st call within a minute of a 20 req/min route: {r}"
    assert int(r.header("retry-after") or 0) >= 1, r
    assert r.header("ratelimit-limit") == "20", r
    assert r.header("ratelimit-remaining") == "0", r
    assert r.header("x-hms-reason"), r
    assert set(r.json()) >= {"error", "reason", "trace_id"}, r


def test_seed_mini_lab_circuit_breaker(uvicorn_app, hms_api, gateway):
    # Mini-lab (§8): stop calc-svc, call it 3 times: by the 3rd call the breaker
    # is open and answers 503 at once without touching the upstream.
    calc = uvicorn_app(DEMO / "calc_svc")
    assert hms_api("register", DEMO / "calc_svc" / "route.yaml").returncode == 0
    assert hms_api("endpoints", "add", "calc-svc", calc.addr).returncode == 0
    gw = gateway()
    assert httpraw.get(gw.port, "/sum/2/3").json() == {"sum": 5}
    calc.proc.terminate()
    calc.proc.wait(timeout=10)
    answers = [httpraw.get(gw.port, "/sum/2/3") for _ in range(3)]
    # Calls 1 and 2 fail at the upstream (each after its retries: the
    # breaker counts requests, not attempts); the 3rd failure opens the
    # breaker, which answers it.
    assert [r.status for r in answers] == [502, 502, 503], answers
    assert answers[2].header("x-hms-reason") == "circuit_open", answers[2]
    # From then on every call is refused at once, without an attempt.
    start = time.monotonic()
    r = httpraw.get(gw.port, "/sum/2/3")
    assert r.status == 503 and r.header("x-hms-reason") == "circuit_open", r
    assert time.monotonic() - start < 0.05
