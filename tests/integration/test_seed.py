"""The seed chapter's walk-through (§4), exactly as written: its two FastAPI
services, its route files, `hms-api register`, then calls through the gateway."""
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
