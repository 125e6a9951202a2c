"""Engine properties seen from outside (DESIGN §4, STYLE §4): the steady-state
data path allocates nothing, upstream connections are pooled and reused, every
core runs the same snapshot after a reload, and no snapshot leaks."""
import json
import re

import httpraw
from conftest import admin_get, eventually, wait_snapshot


def metric(gw, name, labels=""):
    text = admin_get(gw, "/metrics").body.decode()
    total = 0.0
    found = False
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if labels and labels not in line:
                continue
            total += float(line.rsplit(" ", 1)[1])
            found = True
    assert found, f"{name} missing from /metrics:\n{text[:2000]}"
    return total


def keepalive_gets(port, path, n):
    """n GETs on one keep-alive connection, each answered 200."""
    with httpraw.Conn(port) as c:
        for _ in range(n):
            c.send(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            assert c.read_response().status == 200


def test_keepalive_get_allocates_nothing_after_warmup(nginx_upstream, register, gateway):
    register(f"service: json-svc\nroutes:\n  - GET /json\nendpoints: [127.0.0.1:{nginx_upstream.port}]\n")
    gw = gateway({"cores": 1})
    keepalive_gets(gw.port, "/json", 1000)  # warm-up: pools, blocks, slabs reach their size
    before = metric(gw, "hms_core_heap_allocations_total")
    keepalive_gets(gw.port, "/json", 1000)
    after = metric(gw, "hms_core_heap_allocations_total")
    assert after - before == 0, f"{after - before} heap allocations in 1000 warm requests"
    # The same 1000 requests went over pooled upstream connections.
    assert metric(gw, "hms_upstream_reused_total") >= 1999


def test_reload_leaves_every_core_on_one_version_and_frees_old_snapshots(
        nginx_upstream, register, gateway):
    text = f"service: json-svc\nroutes:\n  - GET /json\nendpoints: [127.0.0.1:{nginx_upstream.port}]\n"
    register(text, name="json.yaml")
    gw = gateway({"cores": 2})
    for i in range(10):
        register(text + f"timeout: {i + 1}s\n", name="json.yaml")
        keepalive_gets(gw.port, "/json", 3)
    # Reloads coalesce (a burst of store changes may become fewer snapshots),
    # but the last change always lands, on every core, and old snapshots die.
    def state():
        # /config first: versions only grow, so cores seen on its version
        # afterwards are on the newest one.
        config = json.loads(admin_get(gw, "/config").body)
        timeouts = [r["timeout_ms"] for r in config["routes"]]
        body = admin_get(gw, "/metrics").body.decode()
        versions = set(re.findall(r'hms_core_snapshot_version\{core="\d+"\} (\d+)', body))
        return config, timeouts, versions, metric(gw, "hms_snapshot_live")

    config, timeouts, versions, live = eventually(
        state, lambda s: s[2] == {str(s[0]["version"])} and s[1] == [10000] and s[3] == 1,
        timeout=5, what="(config, route timeouts, core versions, live snapshots) settled")
    assert timeouts == [10000], f"the last registration did not land: {timeouts}"
    assert len(versions) == 1, f"cores disagree on the snapshot: {versions}"
    assert int(versions.pop()) == config["version"] >= 2
    assert live == 1, f"{live} snapshots alive after the reloads settled"


def test_reload_keeps_pools_of_surviving_endpoints_and_closes_removed_ones(
        nginx_upstream, echo_upstream, register, gateway):
    """Per-core state across a reload (DESIGN §4): a service that keeps its
    endpoint keeps its pooled connections; an endpoint that leaves has its
    idle connections closed at the reload, not at their idle timeout."""
    json_svc = f"service: json-svc\nroutes:\n  - GET /json\nendpoints: [{nginx_upstream.addr}]\n"
    register(json_svc, name="json.yaml")
    gw = gateway({"cores": 1})
    keepalive_gets(gw.port, "/json", 3)
    assert metric(gw, "hms_upstream_idle_connections") == 1
    opened = metric(gw, "hms_upstream_connections_total")
    # A change elsewhere in the service: the endpoint survives, so does its pool.
    v = wait_snapshot(gw)
    register(json_svc + "timeout: 7s\n", name="json.yaml")
    wait_snapshot(gw, after=v)
    assert json.loads(admin_get(gw, "/config").body)["routes"][0]["timeout_ms"] == 7000
    keepalive_gets(gw.port, "/json", 3)
    assert metric(gw, "hms_upstream_connections_total") == opened  # reused, none new
    # The endpoint leaves (the service moves to another): its pool closes now.
    register(json_svc.replace(nginx_upstream.addr, echo_upstream.addr), name="json.yaml")
    eventually(lambda: metric(gw, "hms_upstream_idle_connections"), lambda n: n == 0,
               timeout=1,  # well before the 4 s idle close
               what="idle connections to a removed endpoint closed")


def test_zero_copy_sends_relay_a_large_body_intact(nginx_upstream, register, gateway):
    """zero_copy_min_bytes: sends of at least that many bytes use SEND_ZC, whose
    buffers are recycled only after the kernel's notification: 256 MiB arrive
    intact and in order (the sparse file reads as zeros; any recycled-too-early
    block would show another response's bytes)."""
    register("service: files-svc\nroutes:\n  - GET /big\ntimeout: 5m\n"
             f"endpoints: [{nginx_upstream.addr}]\n")
    gw = gateway({"zero_copy_min_bytes": "64KiB", "cores": 1})
    want = 256 << 20
    with httpraw.Conn(gw.port, timeout=30) as c:
        c.send(f"GET /big HTTP/1.1\r\nHost: t\r\nRange: bytes=0-{want - 1}\r\n\r\n".encode())
        _, status, _, headers = c.read_head()
        assert status == 206, headers
        got = len(c.buf)
        assert c.buf.count(0) == got
        c.buf = b""
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while got < want:
            n = c.sock.recv_into(view)
            assert n, "connection closed early"
            assert buf[:n].count(0) == n, "non-zero byte in a zero-filled body"
            got += n
    assert got == want
    assert httpraw.get(gw.port, "/big", headers={"Range": "bytes=0-9"}).status == 206
    assert metric(gw, "hms_zero_copy_sends_total") > 0


def test_upstream_pipelining_keeps_every_answer_with_its_request(echo_upstream, nginx_upstream,
                                                                 register, gateway):
    """upstream_pipeline_depth: GETs of one pass share an upstream connection
    and a send; each answer still reaches its own request (uvicorn answers
    pipelined requests in order), and nginx under wrk gives no error."""
    import concurrent.futures
    import random
    import shutil
    import subprocess

    register(f"service: echo-svc\nroutes:\n  - GET /status/{{code}}\n"
             f"breaker: {{failures: 1000, open_for: 1s}}\nendpoints: [127.0.0.1:{echo_upstream.port}]\n")
    register(f"service: json-svc\nroutes:\n  - GET /json\nendpoints: [{nginx_upstream.addr}]\n")
    gw = gateway({"upstream_pipeline_depth": 8, "cores": 1})

    def client(seed):
        rng = random.Random(seed)
        with httpraw.Conn(gw.port) as c:
            for _ in range(40):
                code = rng.choice([200, 201, 202, 203, 226])
                c.send(f"GET /status/{code} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                assert c.read_response().status == code
        return True

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        assert all(pool.map(client, range(32)))

    out = subprocess.run([shutil.which("wrk") or "/usr/bin/wrk", "-t1", "-c32", "-d2s",
                          f"http://127.0.0.1:{gw.port}/json"],
                         capture_output=True, text=True, timeout=30).stdout
    assert "Non-2xx" not in out and "Socket errors" not in out, out
    assert metric(gw, "hms_upstream_pipelined_total") > 0


def test_request_duration_histogram_counts_every_answer(nginx_upstream, register, gateway):
    register(f"service: json-svc\nroutes:\n  - GET /json\nendpoints: [{nginx_upstream.addr}]\n")
    gw = gateway()
    keepalive_gets(gw.port, "/json", 50)
    labels = 'service="json-svc",route="/json"'
    count = metric(gw, "hms_request_duration_seconds_count", labels)
    inf = metric(gw, "hms_request_duration_seconds_bucket", labels + ',le="+Inf"')
    fast = metric(gw, "hms_request_duration_seconds_bucket", labels + ',le="10"')
    total = metric(gw, "hms_request_duration_seconds_sum", labels)
    assert count == inf == fast == 50
    assert 0 < total < 50 * 10


def test_status_and_metrics_show_breakers_and_rate_limits(nginx_upstream, register, gateway, hms_api):
    """A dead service's breaker opens and says so in /metrics and in
    `hms-api status`; a rate-limited route shows the tokens it has left."""
    import socket
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    register(f"service: dead-svc\nroutes:\n  - GET /dead\nbreaker: {{failures: 2, open_for: 30s}}\n"
             f"endpoints: [127.0.0.1:{dead}]\n")
    register(f"service: json-svc\nroutes:\n  - GET /json\nrate_limit: \"20 req/min\"\n"
             f"endpoints: [{nginx_upstream.addr}]\n")
    gw = gateway()
    assert [httpraw.get(gw.port, "/dead").status for _ in range(3)] == [502, 503, 503]
    for _ in range(5):
        assert httpraw.get(gw.port, "/json").status == 200
    assert metric(gw, "hms_breaker_state", 'service="dead-svc"') == 1
    assert metric(gw, "hms_breaker_state", 'service="json-svc"') == 0
    assert 0 < metric(gw, "hms_breaker_next_probe_seconds", 'service="dead-svc"') <= 30
    assert metric(gw, "hms_rate_limit_available_tokens", 'service="json-svc"') == 15

    r = hms_api("status", "--admin", f"127.0.0.1:{gw.admin_port}")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(l.split()[:2] == ["dead-svc", "open"] for l in lines), r.stdout
    assert any("json-svc" in l and "20 req/min, 15 left" in l for l in lines), r.stdout
    r = hms_api("status", "--admin", f"127.0.0.1:{gw.admin_port}", "--json")
    status = json.loads(r.stdout)
    assert {b["service"]: b["state"] for b in status["breakers"]} == {"dead-svc": "open",
                                                                       "json-svc": "closed"}
    assert sum(c["requests"] for c in status["cores"]) == 8
