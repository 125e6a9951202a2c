"""The control plane at scale and its limits (docs/config.md "Scale" and
"Limits"): a reload re-parses only the stored services that changed; a
route file or config over 16 MiB is refused before it is parsed; a failed
SIGHUP reload shows in /healthz until a good one; `hms-gateway --check`
loads the stored services the way start-up does; and a registration of
100,000 routes stays within bounds a quadratic step would break.
"""
import json
import os
import signal
import subprocess
import sys
import time

import httpraw
from conftest import admin_get, binary, eventually, sanitized

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench", "control"))
import route_scale  # noqa: E402  (the benchmark's file generator and measurement)


def routes(service, route, port):
    return f"service: {service}\nroutes:\n  - {route}\nendpoints: [127.0.0.1:{port}]\n"


def healthz(gw):
    return json.loads(admin_get(gw, "/healthz").body)


def parsed_lines(gw):
    """The compile log lines' "P of N services parsed anew" parts."""
    return [l.split("store: ", 1)[1].split(";")[0] for l in gw.logs().splitlines()
            if "services parsed anew" in l]


def test_a_reload_parses_only_the_services_that_changed(echo_upstream, register, hms_api,
                                                        gateway):
    port = echo_upstream.port
    register(routes("a-svc", "GET /status/{code}", port), name="a.yaml")
    register(routes("b-svc", "GET /headers", port), name="b.yaml")
    register(routes("c-svc", "POST /echo", port), name="c.yaml")
    gw = gateway()
    assert parsed_lines(gw) == ["3 of 3 services parsed anew"]

    def reloads_since(n, total):
        """The reloads after the first n: each parsed at most one service
        (a write may wake the gateway twice), and together exactly one."""
        lines = parsed_lines(gw)[n:]
        assert set(lines) <= {f"0 of {total} services parsed anew",
                              f"1 of {total} services parsed anew"}, lines
        assert lines.count(f"1 of {total} services parsed anew") == 1, lines

    # One service changes: it alone is parsed again, and its change serves.
    n = len(parsed_lines(gw))
    register(routes("b-svc", "GET /headers\n  - GET /stream", port), name="b.yaml")
    eventually(lambda: httpraw.get(gw.port, "/stream").status == 200, what="b-svc's new route")
    reloads_since(n, 3)
    assert httpraw.get(gw.port, "/status/204").status == 204  # a-svc, from the cache

    # An endpoint added changes no route file: nothing is parsed, the
    # endpoint joins the cached service.
    n = len(parsed_lines(gw))
    r = hms_api("endpoints", "add", "c-svc", f"localhost:{port}")
    assert r.returncode == 0, r.stderr

    def c_endpoints():
        clusters = json.loads(admin_get(gw, "/config").body)["clusters"]
        return [e["address"] for c in clusters if c["name"] == "c-svc" for e in c["endpoints"]]

    eventually(lambda: len(c_endpoints()) == 2, what="c-svc's added endpoint")
    assert set(parsed_lines(gw)[n:]) == {"0 of 3 services parsed anew"}

    # A deregistration is served; a new service is the only one parsed.
    assert hms_api("deregister", "a-svc").returncode == 0
    eventually(lambda: httpraw.get(gw.port, "/status/204").status == 404, what="a-svc gone")
    n = len(parsed_lines(gw))
    register(routes("d-svc", "GET /status/{code}", port), name="d.yaml")
    eventually(lambda: httpraw.get(gw.port, "/status/204").status == 204, what="d-svc served")
    reloads_since(n, 3)


def test_an_oversized_route_file_is_refused_before_parsing(hms_api, tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("service: big-svc\nroutes:\n  - GET /big\n")
    os.truncate(path, 17 << 20)  # sparse: nothing to parse was ever written
    started = time.monotonic()
    for args in (["register", path], ["register", "--dry-run", path]):
        r = hms_api(*args)
        assert r.returncode == 1, r.stdout + r.stderr
        assert (f"hms-api: {path}: 17825792 bytes, over the limit of 16 MiB for a config or "
                "route file (refused before parsing" in r.stderr), r.stderr
    assert time.monotonic() - started < 10


def test_an_oversized_gateway_config_is_refused(tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text("listeners: [127.0.0.1:0]\n")
    os.truncate(path, (16 << 20) + 1)
    r = subprocess.run([str(binary("hms-gateway")), "--config", str(path), "--check"],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert f"{path}: 16777217 bytes, over the limit of 16 MiB" in r.stderr, r.stderr


def test_a_failed_sighup_reload_is_stale_in_healthz_until_a_good_one(echo_upstream, register,
                                                                     gateway):
    register(routes("a-svc", "GET /status/{code}", echo_upstream.port))
    gw = gateway()
    assert healthz(gw)["config"] == "ok"
    good = gw.config_path.read_text()
    gw.config_path.write_text(good + "ring_entries: 1000\n")
    gw.proc.send_signal(signal.SIGHUP)
    eventually(lambda: healthz(gw)["config"] != "ok", what="/healthz says the config is stale")
    config = healthz(gw)["config"]
    line = good.count("\n") + 1
    assert config.startswith(f"stale: config file not reloaded: {gw.config_path}:{line}: "
                             "ring_entries"), config
    assert healthz(gw)["status"] == "ok"
    assert httpraw.get(gw.port, "/status/204").status == 204  # the running config serves

    # A store change does not clear it: the file is still not applied.
    register(routes("b-svc", "GET /headers", echo_upstream.port))
    eventually(lambda: httpraw.get(gw.port, "/headers").status != 404, what="b-svc served")
    assert healthz(gw)["config"].startswith("stale: config file not reloaded: ")

    gw.config_path.write_text(good)
    gw.proc.send_signal(signal.SIGHUP)
    eventually(lambda: healthz(gw)["config"] == "ok", what="/healthz says ok again")


def test_check_loads_the_stored_services_as_start_up_does(echo_upstream, register, store_dir,
                                                          tmp_path):
    register(routes("a-svc", "GET /status/{code}", echo_upstream.port))
    config = tmp_path / "check.yaml"
    config.write_text(f"listeners: [127.0.0.1:0]\nadmin: off\ncores: 1\nstore: file:{store_dir}\n")

    def check():
        return subprocess.run([str(binary("hms-gateway")), "--config", str(config), "--check"],
                              capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)

    r = check()
    assert r.returncode == 0, r.stderr
    assert "ok (1 services, 1 routes)" in r.stdout

    # A stored file that start-up would leave out: --check names it and fails.
    (store_dir / "services" / "b-svc.yaml").write_text("service: b-svc\nroutes: 7\n")
    r = check()
    assert r.returncode == 1, r.stdout
    assert f"hms-gateway: store file:{store_dir}: service b-svc: " in r.stderr, r.stderr
    assert f"{store_dir}/services/b-svc.yaml:2: routes: expected a list of routes" in r.stderr
    assert "; not served" in r.stderr

    # And one that would not compile with the others (a hand-written clash).
    (store_dir / "services" / "b-svc.yaml").write_text(
        routes("b-svc", "GET /status/{x}", echo_upstream.port))
    r = check()
    assert r.returncode == 1, r.stdout
    assert "clashes with" in r.stderr, r.stderr


def test_a_registration_of_100k_routes_stays_bounded(hms_api, tmp_path, store_dir):
    """The bounded form of bench/control/route_scale: 1,000 files of 100
    routes, `register --dry-run` then `register`. The limits are several
    times what a loaded 2-core machine takes (about 1.5 s and 120 MiB): a
    step that turned quadratic in routes or services would blow them."""
    files = route_scale.write_route_files(tmp_path / "routes", 100_000)
    for args in (["register", "--dry-run"], ["register"]):
        run = route_scale.measure([str(binary("hms-api")), "--store", f"file:{store_dir}",
                                   *args, *map(str, files)], timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.seconds < 30, (args, run.seconds)
        if not sanitized():  # ASan's shadow memory and quarantine: sizes mean nothing
            assert run.peak_mib < 400, (args, run.peak_mib)
