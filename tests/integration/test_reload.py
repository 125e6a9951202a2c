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
from conftest import admin_get

WRK = shutil.which("wrk") or "/usr/bin/wrk"


def json_routes(port, timeout="15s"):
    return (f"service: json-svc\nroutes:\n  - GET /json\ntimeout: {timeout}\n"
            f"endpoints: [127.0.0.1:{port}]\n")


@pytest.fixture
def json_gateway(nginx_upstream, register, gateway):
    path = register(json_routes(nginx_upstream.port), name="json-svc.yaml")
    gw = gateway()
    assert httpraw.get(gw.port, "/json").status == 200
    return gw, path


def parse_wrk(out):
    m = re.search(r"(\d+) requests in", out)
    assert m, f"unexpected wrk output:\n{out}"
    requests = int(m.group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return requests, int(non2xx.group(1)) if non2xx else 0, \
        sum(map(int, sock.groups())) if sock else 0


@pytest.mark.deadline(90)
def test_reregister_under_load_drops_nothing(json_gateway, nginx_upstream, hms_api):
    gw, path = json_gateway
    before = admin_get(gw, "/config")
    assert before.status == 200, before
    v0 = before.json()["version"]

    wrk = subprocess.Popen([WRK, "-t1", "-c16", "-d5s", "--latency", f"http://127.0.0.1:{gw.port}/json"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    try:
        time.sleep(0.3)
        for i in range(20):
            # Alternate between two different texts so every register is a real change.
            path.write_text(json_routes(nginx_upstream.port, timeout=f"{15 + i % 2}s"))
            r = hms_api("register", path)
            assert r.returncode == 0, r.stderr
            time.sleep(0.2)
        out, _ = wrk.communicate(timeout=30)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    requests, non2xx, socket_errors = parse_wrk(out)
    print(f"\nwrk during 20 re-registrations: {requests} requests, {non2xx} non-2xx, "
          f"{socket_errors} socket errors\n{out}")
    assert requests > 100, out
    assert non2xx == 0, out
    assert socket_errors == 0, out

    deadline = time.monotonic() + 5
    while True:
        v1 = admin_get(gw, "/config").json()["version"]
        if v1 > v0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert v1 > v0, f"/config version stayed at {v0} after 20 registrations"


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
    time.sleep(0.3)
    for _ in range(3):
        gw.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
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
