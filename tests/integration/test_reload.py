"""Config reloads under load (DESIGN §4): re-registering a route file and
SIGHUP never drop a request; the admin API shows the new snapshot."""
import json
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

import httpraw
from conftest import WrkUntilStopped, admin_get, eventually, metric_sum, parse_wrk, wait_snapshot

def json_routes(port, timeout="15s"):
    return (f"service: json-svc\nroutes:\n  - GET /json\ntimeout: {timeout}\n"
            f"endpoints: [127.0.0.1:{port}]\n")


@pytest.fixture
def json_gateway(nginx_upstream, register, gateway):
    path = register(json_routes(nginx_upstream.port), name="json-svc.yaml")
    gw = gateway()
    assert httpraw.get(gw.port, "/json").status == 200
    return gw, path


STORM = 100      # re-registrations of one route file...
STORM_S = 10.0   # ...within this many seconds
STORM_STEP_S = 0.08  # one every 80 ms: 8 s, leaving room for a slow register


def metric_value(gw, name):
    text = admin_get(gw, "/metrics").body.decode()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, f"{name} missing from /metrics:\n{text[:2000]}"
    return float(m.group(1))


@pytest.mark.deadline(60)
def test_reregister_storm_under_load_drops_nothing(nginx_upstream, register, hms_api, gateway):
    """100 re-registrations in under 10 s, each a real change (every text has
    its own timeout), while wrk keeps 16 connections busy on a 2-core
    gateway: no request fails, every core ends on the newest snapshot, the
    last text is the one live, and no snapshot outlives the storm."""
    path = register(json_routes(nginx_upstream.port), name="json-svc.yaml")
    gw = gateway({"cores": 2})
    assert httpraw.get(gw.port, "/json").status == 200
    v0 = admin_get(gw, "/config").json()["version"]

    timeouts_ms = [2000 + i for i in range(STORM)]
    with WrkUntilStopped(f"http://127.0.0.1:{gw.port}/json", max_s=40, latency=True) as wrk:
        eventually(lambda: metric_sum(gw, "hms_connections_active"), lambda n: n >= 16,
                   what="wrk's 16 connections open")
        start = time.monotonic()
        for i, timeout_ms in enumerate(timeouts_ms):
            delay = start + i * STORM_STEP_S - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the storm, not waiting for a state
            path.write_text(json_routes(nginx_upstream.port, timeout=f"{timeout_ms}ms"))
            r = hms_api("register", path)
            assert r.returncode == 0, f"register {i}: {r.stdout}{r.stderr}"
        storm_s = time.monotonic() - start
        out = wrk.stop("the storm")
    assert storm_s <= STORM_S, f"{STORM} registrations took {storm_s:.1f} s"
    requests, non2xx, socket_errors = parse_wrk(out)
    print(f"\nwrk during {STORM} re-registrations in {storm_s:.2f} s: {requests} requests, "
          f"{non2xx} non-2xx, {socket_errors} socket errors\n{out}")
    assert requests > 1000, out
    assert non2xx == 0, out
    assert socket_errors == 0, out
    per_core = [c["requests"] for c in admin_get(gw, "/status").json()["cores"]]
    assert len(per_core) == 2 and min(per_core) > 0, f"one core took no requests: {per_core}"

    # Settle: once no request holds an old snapshot, only the newest is alive
    # and every core runs it.
    def state():
        cfg = admin_get(gw, "/config").json()
        return cfg, metric_value(gw, "hms_snapshot_live")

    cfg, live = eventually(
        state, lambda s: (s[1] == 1 and [rt["timeout_ms"] for rt in s[0]["routes"]]
                          == [timeouts_ms[-1]]
                          and all(c["version"] == s[0]["version"] for c in s[0]["cores"])),
        timeout=5, what="one snapshot alive, the last text live on every core")
    cores = cfg["cores"]
    print(f"/config version {v0} -> {cfg['version']} ({cfg['version'] - v0} snapshots "
          f"for {STORM} registrations); cores {cores}; {live:g} snapshot(s) alive")
    assert [c["core"] for c in cores] == [0, 1], cores
    assert all(c["version"] == cfg["version"] for c in cores), \
        f"cores {cores} not on the top-level version {cfg['version']}"
    assert cfg["version"] > v0, cfg["version"]
    assert live == 1, f"{live:g} snapshots alive 5 s after the storm (leak)"
    assert httpraw.get(gw.port, "/json").status == 200


def test_sighup_reload_keeps_serving(json_gateway):
    gw, _ = json_gateway
    errors = []
    ok = [0]
    stop = threading.Event()

    def client():
        with httpraw.Conn(gw.port) as c:
            while not stop.is_set():
                try:
                    c.send(httpraw.build("GET", "/json"))
                    r = c.read_response()
                    if r.status == 200:
                        ok[0] += 1
                    else:
                        errors.append(r.status)
                except Exception as e:  # noqa: BLE001 - any failure counts
                    errors.append(repr(e))
                    return

    t = threading.Thread(target=client, daemon=True)
    t.start()
    eventually(lambda: ok[0] or errors, what="the client's first answer")
    for _ in range(3):
        v = wait_snapshot(gw)
        gw.proc.send_signal(signal.SIGHUP)
        wait_snapshot(gw, after=v)  # reloaded while the client kept sending
    eventually(lambda: ok[0] > 10 or errors, what="answers after the reloads")
    stop.set()
    t.join(timeout=10)
    assert gw.proc.poll() is None, "hms-gateway exited on SIGHUP" + gw.logs()
    assert not errors, errors
    assert ok[0] > 10
    assert httpraw.get(gw.port, "/json").status == 200


METRIC_LINE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})?'
    r' ([-+]?(\d+(\.\d*)?([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?|NaN|[+-]?Inf))( -?\d+)?$')


def test_admin_metrics_and_config(json_gateway):
    gw, _ = json_gateway
    for _ in range(5):
        assert httpraw.get(gw.port, "/json").status == 200
    r = admin_get(gw, "/metrics")
    assert r.status == 200, r
    assert (r.header("content-type") or "").startswith("text/plain"), r
    text = r.body.decode()
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            if line.startswith("# TYPE"):
                assert re.match(r"^# TYPE \S+ (counter|gauge|histogram|summary|untyped)$", line), line
            continue
        assert METRIC_LINE.match(line), f"not Prometheus text format: {line!r}"
        samples.append(line)
    assert samples, text
    assert any("json-svc" in s for s in samples), "no per-service request metrics:\n" + text
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
        assert "error while linting" not in p.stdout + p.stderr, p.stdout + p.stderr

    r = admin_get(gw, "/config")
    assert r.status == 200, r
    cfg = r.json()
    assert isinstance(cfg.get("version"), int), cfg
    assert "json-svc" in json.dumps(cfg), cfg
