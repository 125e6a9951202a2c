"""Access logs (docs/observability.md): one JSON line per request, written by
the control thread from each core's ring; off unless configured."""
import os
import signal

import httpraw
from conftest import admin_get, eventually, log_lines, metric_sum, wait_snapshot


def read_lines(path, n, within=5.0):
    """The log's lines once it has at least n."""
    return eventually(lambda: log_lines(path), lambda lines: len(lines) >= n, within,
                      what=f"{n} lines in {path.name}")


def wait_written(gw, path, before=0):
    """The log's lines once the control thread has written every line the
    cores logged since the counter stood at `before` (lines in other files)."""
    def both():
        return metric_sum(gw, "hms_access_log_lines_total") - before, len(log_lines(path))

    return eventually(both, lambda b: b[0] == b[1] and b[0] > 0,
                      what=f"(lines logged, lines in {path.name})")[1]


def test_one_json_line_per_request(echo_upstream, register, gateway, tmp_path):
    log = tmp_path / "access.log"
    register("service: echo-svc\nroutes:\n  - GET /status/{code}\n  - POST /echo\n"
             "  - path: /slow\n    methods: [GET]\n    rate_limit: \"1 req/min\"\n"
             "retries: 0\nbreaker: off\n"
             f"endpoints: [127.0.0.1:{echo_upstream.port}]\n")
    gw = gateway({"cores": 2, "access_log": {"path": str(log)}})
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert httpraw.get(gw.port, "/status/201", headers={"x-trace-id": trace}).status == 201
    assert httpraw.request(gw.port, "POST", "/echo", body=b"x" * 1000).status == 200
    assert httpraw.get(gw.port, "/slow?ms=0").status == 200
    assert httpraw.get(gw.port, "/slow?ms=0").status == 429
    assert httpraw.get(gw.port, "/nowhere").status == 404
    lines = read_lines(log, 5)
    assert len(lines) == 5, lines
    by_status = {line["status"]: line for line in lines}
    first = by_status[201]
    assert first["trace_id"] == trace
    assert (first["method"], first["service"], first["route"]) == ("GET", "echo-svc", "/status/{code}")
    assert first["upstream"] == f"127.0.0.1:{echo_upstream.port}"
    assert first["retries"] == 0 and first["stamp"] == "" and first["peer"] == "127.0.0.1"
    assert first["peer_identity"] == ""
    assert first["time"].endswith("Z") and first["duration_ms"] >= 0
    post = by_status[200] if by_status[200]["method"] == "POST" else \
        [line for line in lines if line["method"] == "POST"][0]
    assert post["bytes_in"] > 1000 and post["bytes_out"] > 1000
    assert by_status[429]["stamp"] == "rate_limited" and by_status[429]["upstream"] == ""
    assert by_status[404]["stamp"] == "no_route" and by_status[404]["route"] == ""
    body = admin_get(gw, "/metrics").body.decode()
    assert "hms_access_log_lines_total 5" in body, body


def test_sampling_and_rotation(nginx_upstream, register, gateway, tmp_path):
    log = tmp_path / "access.log"
    register(f"service: json-svc\nroutes:\n  - GET /json\nendpoints: [{nginx_upstream.addr}]\n")
    gw = gateway({"cores": 1, "access_log": {"path": str(log), "sample_ratio": "0.25"}})
    with httpraw.Conn(gw.port) as c:
        for _ in range(400):
            c.send(httpraw.build("GET", "/json"))
            assert c.read_response().status == 200
    n = wait_written(gw, log)
    assert 50 <= n <= 150, n  # a quarter of 400, give or take
    # Rotation: move the file away, SIGHUP, and new lines go to a new file.
    os.rename(log, tmp_path / "access.log.1")
    v = wait_snapshot(gw)
    gw.proc.send_signal(signal.SIGHUP)
    wait_snapshot(gw, after=v)  # the SIGHUP is handled: the path was opened anew first
    with httpraw.Conn(gw.port) as c:
        for _ in range(40):
            c.send(httpraw.build("GET", "/json"))
            c.read_response()
    assert 1 <= wait_written(gw, log, before=n) <= 40


def test_logging_allocates_nothing_after_warmup(nginx_upstream, register, gateway, tmp_path):
    """STYLE §4 with every request logged: each line is formatted on the
    core's stack and copied into its ring, never allocated."""
    from test_engine import keepalive_gets
    log = tmp_path / "access.log"
    register(f"service: json-svc\nroutes:\n  - GET /json\nendpoints: [{nginx_upstream.addr}]\n")
    gw = gateway({"cores": 1, "access_log": {"path": str(log)}})
    keepalive_gets(gw.port, "/json", 1000)  # warm-up
    before = metric_sum(gw, "hms_core_heap_allocations_total")
    keepalive_gets(gw.port, "/json", 1000)
    after = metric_sum(gw, "hms_core_heap_allocations_total")
    assert after - before == 0, f"{after - before} heap allocations in 1000 logged requests"
    assert wait_written(gw, log) == 2000
