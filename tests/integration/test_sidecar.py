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
from conftest import HERE, REPO, admin_get, closed_port, eventually, listen_socket

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


def test_local_connect_failure_is_retried_once_then_502(register, gateway):
    register("service: down-svc\nroutes:\n  - GET /x\n")
    sc = sidecar(gateway, "down-svc", closed_port())  # nothing listens there
    r = httpraw.get(sc.port, "/x")
    assert r.status == 502 and r.header("x-hms-reason") == "upstream_connect_failed", r
    assert metric(sc, "hms_upstream_connect_errors_total") == 2  # the attempt and its retry


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
