"""Process lifecycle (DESIGN §2): --check, SIGTERM drains in-flight requests,
health endpoint."""
import signal
import subprocess
import threading
import time

import httpraw
from conftest import REPO, admin_get, binary, echo_routes, eventually, metric_sum


def check(config_path):
    return subprocess.run([str(binary("hms-gateway")), "--config", str(config_path), "--check"],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def test_check_accepts_shipped_config():
    config = REPO / "configs" / "gateway.yaml"
    assert config.is_file(), "configs/gateway.yaml is missing"
    r = check(config)
    assert r.returncode == 0, r.stdout + r.stderr


def test_check_rejects_unknown_key_with_line_and_suggestion(tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text("role: gateway\n"
                      "listeners: [\"127.0.0.1:0\"]\n"
                      "drain_timout: 2s\n")
    r = check(config)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert f"{config}:3" in out, out
    assert "drain_timeout" in out, f"no suggestion in: {out}"


def test_check_rejects_bad_value(tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text("listeners: [\"127.0.0.1:0\"]\nmax_body_bytes: lots\n")
    r = check(config)
    assert r.returncode != 0
    assert f"{config}:2" in r.stdout + r.stderr, r.stdout + r.stderr


def test_sigterm_drains_in_flight_request(echo_upstream, register, gateway):
    register(echo_routes(echo_upstream.port))
    gw = gateway({"drain_timeout": "5s"})
    result = {}

    def slow_request():
        try:
            result["resp"] = httpraw.get(gw.port, "/slow?ms=1500", timeout=15)
        except Exception as e:  # noqa: BLE001 - reported below
            result["error"] = repr(e)

    t = threading.Thread(target=slow_request)
    t.start()
    # The request is on its way to the upstream: a connection was opened (or reused) for it.
    eventually(lambda: metric_sum(gw, "hms_upstream_connections_total")
               + metric_sum(gw, "hms_upstream_reused_total"), lambda n: n >= 1,
               what="the slow request sent upstream")
    start = time.monotonic()
    rc = gw.stop(signal.SIGTERM)
    t.join(timeout=15)
    assert "error" not in result, result
    assert result["resp"].status == 200, result["resp"]
    assert result["resp"].json() == {"slept_ms": 1500}
    assert rc == 0, gw.logs()
    assert time.monotonic() - start < 5 + 5


def test_sigterm_stops_accepting(echo_gateway):
    port = echo_gateway.port
    assert echo_gateway.stop(signal.SIGTERM) == 0
    try:
        httpraw.get(port, "/status/200", timeout=2)
        accepted = True
    except OSError:
        accepted = False
    assert not accepted, "still answering after SIGTERM and exit"


def test_sigint_also_exits_cleanly(echo_gateway):
    assert echo_gateway.stop(signal.SIGINT) == 0


def test_healthz(echo_gateway):
    r = admin_get(echo_gateway, "/healthz")
    assert r.status == 200, r


def test_ready_line_reports_cores(echo_gateway):
    assert echo_gateway.cores == 2
    assert echo_gateway.snapshot is not None
