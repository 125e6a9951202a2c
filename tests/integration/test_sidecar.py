"""Sidecar mode (DESIGN §1-§3, docs/sidecar.md): the same hms-gateway binary
beside one service. Its inbound listener forwards to the local service (one
retry on connect failure), its egress listener carries the service's calls to
other services by name, and it keeps its inbound address registered in the
store under a lease: removed on SIGTERM before draining, expired within the
TTL after SIGKILL."""
import json
import re
import time

import pytest

import httpraw
from conftest import (HERE, REPO, admin_get, closed_port, eventually, listen_socket,
                      metric_sum)

DEMO_DIR = REPO / "configs" / "demo"
CALLER = HERE / "apps" / "caller_svc"


def sidecar(gateway, service, local_port, ttl="2s", name=None, **extra):
    cfg = {"role": "sidecar", "service": service, "local_port": local_port,
           "egress": "127.0.0.1:0", "registration_ttl": ttl, "cores": 1}
    cfg.update(extra)
    sc = gateway(cfg, name=name or f"sidecar-{service}.yaml")
    m = re.search(r"registered as (\S+)", "\n".join(sc.lines))
    assert m, "no registration line:\n" + "\n".join(sc.lines)
    sc.address = m.group(1)
    return sc


def endpoints(hms_api, service):
    r = hms_api("list", "--json")
    assert r.returncode == 0, r.stderr
    for s in json.loads(r.stdout):
        if s["service"] == service:
            return s["endpoints"]
    return None


def metric(gw, name, **labels):
    body = admin_get(gw, "/metrics").body.decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name + ("{" if labels else " ")) and want in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_gateway_to_sidecars_to_the_seed_services(uvicorn_app, hms_api, gateway):
    """The seed's walk-through with a sidecar beside each service: the route
    files are the seed's own (no endpoints); the sidecars register themselves."""
    hello = uvicorn_app(DEMO_DIR / "hello_svc")
    calc = uvicorn_app(DEMO_DIR / "calc_svc")
    for svc in ("hello_svc", "calc_svc"):
        assert hms_api("register", DEMO_DIR / svc / "route.yaml").returncode == 0
    sc_hello = sidecar(gateway, "hello-svc", hello.port)
    sc_calc = sidecar(gateway, "calc-svc", calc.port)
    assert endpoints(hms_api, "hello-svc") == [sc_hello.address]
    assert endpoints(hms_api, "calc-svc") == [sc_calc.address]

    gw = gateway()
    r = httpraw.get(gw.port, "/hello")
    assert r.status == 200, r
    assert r.json() == {"msg": "Hello from HMS!"}
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    r = httpraw.get(gw.port, "/sum/2/3", headers={"x-trace-id": trace})
    assert r.status == 200, r
    assert r.json() == {"sum": 5}
    assert r.header("x-trace-id") == trace  # the same trace id across both hops

    # The sidecar counted and timed what came in, under route="(inbound)".
    assert metric(sc_calc, "hms_requests_total", service="calc-svc", route="(inbound)",
                  code="200") == 1
    assert metric(sc_calc, "hms_request_duration_seconds_count", service="calc-svc",
                  route="(inbound)") == 1


@pytest.mark.deadline(90)
def test_service_to_service_through_both_sidecars(uvicorn_app, hms_api, register, gateway):
    """caller-svc → its sidecar's egress → calc-svc's sidecar → calc-svc."""
    calc = uvicorn_app(DEMO_DIR / "calc_svc")
    assert hms_api("register", DEMO_DIR / "calc_svc" / "route.yaml").returncode == 0
    register("service: caller-svc\nroutes:\n  - GET /total/{a}/{b}\n")
    sc_calc = sidecar(gateway, "calc-svc", calc.port)
    # The caller's socket listens first, so its sidecar (egress on port 0) can
    # start before the caller app, which learns the egress port it reported.
    caller_sock = listen_socket()
    caller_port = caller_sock.getsockname()[1]
    sc_caller = sidecar(gateway, "caller-svc", caller_port)
    assert sc_caller.egress_port
    caller = uvicorn_app(CALLER, env={"HMS_EGRESS": f"127.0.0.1:{sc_caller.egress_port}"},
                         sock=caller_sock)
    assert caller.port == caller_port
    gw = gateway()

    trace = "0af7651916cd43dd8448eb211c80319c"
    for by in ("host", "path"):
        r = httpraw.get(gw.port, f"/total/20/22?by={by}", headers={"x-trace-id": trace})
        assert r.status == 200, (by, r)
        assert r.json() == {"total": 42, "trace": trace}, by
    # Each hop saw the calls: the caller's sidecar out through egress, the
    # calc sidecar in through inbound.
    assert metric(sc_caller, "hms_requests_total", service="calc-svc", route="(egress)",
                  code="200") == 2
    assert metric(sc_calc, "hms_requests_total", service="calc-svc", route="(inbound)",
                  code="200") == 2


def test_egress_names_services_by_host_or_path(uvicorn_app, hms_api, register, gateway):
    calc = uvicorn_app(DEMO_DIR / "calc_svc")
    assert hms_api("register", DEMO_DIR / "calc_svc" / "route.yaml").returncode == 0
    sidecar(gateway, "calc-svc", calc.port)
    # A sidecar of a service without its own sidecar-registered peers.
    register("service: lonely-svc\nroutes:\n  - GET /lonely\n")
    sc = sidecar(gateway, "lonely-svc", closed_port())
    e = sc.egress_port
    assert httpraw.get(e, "/sum/1/2", headers={"host": "calc-svc"}).json() == {"sum": 3}
    assert httpraw.get(e, "/sum/1/2", headers={"host": "calc-svc:80"}).json() == {"sum": 3}
    assert httpraw.get(e, "/calc-svc/sum/3/4").json() == {"sum": 7}
    assert httpraw.get(e, "/calc-svc/sum/3/4?x=1").json() == {"sum": 7}
    r = httpraw.get(e, "/nope-svc/sum/1/2")
    assert r.status == 404 and r.header("x-hms-reason") == "no_service", r
    assert r.json()["reason"] == "no_service"
    # A registered service nobody serves: 503, and which rule said so.
    register("service: ghost-svc\nroutes:\n  - GET /ghost\n")
    r = eventually(lambda: httpraw.get(e, "/ghost-svc/ghost"), lambda r: r.status != 404,
                   timeout=5, what="the sidecar knowing ghost-svc")
    assert r.status == 503 and r.header("x-hms-reason") == "no_endpoints", r


def test_local_connect_failure_is_retried_then_503_local_service_unavailable(register, gateway):
    register("service: down-svc\nroutes:\n  - GET /x\n")
    sc = sidecar(gateway, "down-svc", closed_port())  # nothing listens there
    r = httpraw.get(sc.port, "/x")
    # The sidecar's own answer: its service is down (not the service's 5xx).
    assert r.status == 503 and r.header("x-hms-reason") == "local_service_unavailable", r
    assert r.json()["reason"] == "local_service_unavailable", r
    # The connect and its transparent repeat: no backoff before saying so.
    assert metric(sc, "hms_upstream_connect_errors_total") == 2
    # Listed, a refused connect gets the policy retry too.
    sc2 = sidecar(gateway, "down-svc", closed_port(), name="sc2.yaml",
                  local_retry_on=["connect-failure"])
    assert httpraw.get(sc2.port, "/x").status == 503
    assert metric(sc2, "hms_upstream_connect_errors_total") == 3


FLAKY_ROUTES = "service: flaky-svc\nroutes:\n  - path: /fail/{key}/{n}\n  - GET /calls/{key}\n"


def test_sidecar_retries_its_service_once_on_5xx_when_safe(uvicorn_app, register, gateway):
    # The seed: "Sidecar ... retries once on 5xx" -- only what may be repeated.
    flaky = uvicorn_app(HERE / "apps" / "flaky")
    register(FLAKY_ROUTES)
    sc = sidecar(gateway, "flaky-svc", flaky.port)

    def calls(key):
        return httpraw.get(flaky.port, f"/calls/{key}").json()["calls"]

    for code in (500, 502, 503, 504):
        r = httpraw.get(sc.port, f"/fail/g{code}/1?code={code}")
        assert r.status == 200 and r.json()["call"] == 2, (code, r)
    r = httpraw.get(sc.port, "/fail/twice/2?code=500")
    assert r.status == 500 and calls("twice") == 2, r  # once, not more
    r = httpraw.get(sc.port, "/fail/n501/1?code=501")
    assert r.status == 501 and calls("n501") == 1, r  # not a 5xx worth asking again
    r = httpraw.request(sc.port, "POST", "/fail/post/1?code=500", body=b"x")
    assert r.status == 500 and calls("post") == 1, r  # not idempotent
    r = httpraw.request(sc.port, "POST", "/fail/key/1?code=500", body=b"x",
                        headers={"Idempotency-Key": "k1"})
    assert r.status == 200 and r.json()["body_len"] == 1, r
    # Configurable: local_retries and local_retry_on.
    sc0 = sidecar(gateway, "flaky-svc", flaky.port, name="sc0.yaml", local_retries=0)
    r = httpraw.get(sc0.port, "/fail/off/1?code=500")
    assert r.status == 500 and calls("off") == 1, r
    sc503 = sidecar(gateway, "flaky-svc", flaky.port, name="sc503.yaml", local_retry_on=[503])
    assert httpraw.get(sc503.port, "/fail/only503/1?code=503").status == 200
    r = httpraw.get(sc503.port, "/fail/not500/1?code=500")
    assert r.status == 500 and calls("not500") == 1, r


def test_a_sidecars_down_service_is_one_failure_and_never_retried_there(
        uvicorn_app, hms_api, register, gateway):
    """A caller that gets 503 local_service_unavailable from a sidecar counts
    one failure of that endpoint, does not ask that sidecar again, and tries
    another endpoint when there is one."""
    flaky = uvicorn_app(HERE / "apps" / "flaky")
    register(FLAKY_ROUTES + "retries: 2\nbreaker: {failures: 100, open_for: 1s}\n")
    down = sidecar(gateway, "flaky-svc", closed_port(), name="down.yaml")
    gw = gateway()
    r = httpraw.get(gw.port, "/fail/x/0")
    assert r.status == 503 and r.header("x-hms-reason") == "local_service_unavailable", r
    # One request reached the sidecar: no retry with backoff against it.
    assert metric_sum(down, "hms_requests_total", route="(inbound)") == 1
    assert not metric_sum(gw, "hms_retries_total")
    # With a second sidecar whose service is up, every call is answered.
    up = sidecar(gateway, "flaky-svc", flaky.port, name="up.yaml")
    def gateway_endpoints():
        config = json.loads(admin_get(gw, "/config").body)
        return [len(c["endpoints"]) for c in config["clusters"] if c["name"] == "flaky-svc"]

    eventually(gateway_endpoints, lambda n: n == [2], timeout=10,
               what="the gateway knowing both sidecars")
    for i in range(6):
        r = httpraw.get(gw.port, f"/fail/y{i}/0")
        assert r.status == 200, r
    assert metric_sum(up, "hms_requests_total", route="(inbound)") == 6
    assert not metric_sum(gw, "hms_retries_total")  # moving on is not a policy retry


def calc_behind_sidecar(uvicorn_app, hms_api, gateway, ttl):
    """The seed's calc-svc with its sidecar (lease TTL `ttl`) and a gateway in front."""
    calc = uvicorn_app(DEMO_DIR / "calc_svc")
    assert hms_api("register", DEMO_DIR / "calc_svc" / "route.yaml").returncode == 0
    sc = sidecar(gateway, "calc-svc", calc.port, ttl=ttl)
    gw = gateway()
    assert httpraw.get(gw.port, "/sum/1/1").status == 200
    return sc, gw


@pytest.mark.deadline(60)
def test_sigterm_deregisters_before_draining(uvicorn_app, hms_api, gateway):
    sc, gw = calc_behind_sidecar(uvicorn_app, hms_api, gateway, ttl="30s")
    assert sc.stop() == 0
    # Gone at once, not after the 30 s TTL.
    assert endpoints(hms_api, "calc-svc") == []
    assert "deregistered " + sc.address in sc.logs()
    r = eventually(lambda: httpraw.get(gw.port, "/sum/1/1"), lambda r: r.status == 503,
                   timeout=2, what="the gateway answering 503")
    assert r.status == 503 and r.header("x-hms-reason") == "no_endpoints", r


@pytest.mark.deadline(60)
def test_sigkill_entry_expires_within_its_ttl(uvicorn_app, hms_api, gateway):
    sc, gw = calc_behind_sidecar(uvicorn_app, hms_api, gateway, ttl="2s")
    # Kept alive well past its TTL while the sidecar lives. An interval of the
    # real clock by nature: the sidecar is another process renewing on its own
    # clock (the store's unit tests prove renewal and expiry on a fake clock).
    time.sleep(3)
    assert endpoints(hms_api, "calc-svc") == [sc.address]
    killed = time.monotonic()
    sc.kill()
    eventually(lambda: endpoints(hms_api, "calc-svc"), lambda e: e == [], timeout=5,
               interval=0.05, what="the entry gone after SIGKILL")
    gone_after = time.monotonic() - killed
    assert gone_after <= 2.2, f"entry left {gone_after:.2f} s after SIGKILL (TTL 2 s)"
    # The gateway follows without any write to the store: the expiry alone.
    r = eventually(lambda: httpraw.get(gw.port, "/sum/1/1"), lambda r: r.status == 503,
                   timeout=2, what="the gateway answering 503")
    assert r.status == 503 and r.header("x-hms-reason") == "no_endpoints", r
