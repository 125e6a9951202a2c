"""The seed chapter's whole mesh, as `tools/demo --mesh` runs it: TLS + JWT at
the gateway (the edge certificate for gateway.local from `hms-api certs issue
--dns`), each service behind an mTLS sidecar with allow_from, 20 req/min on
calc-svc, the breaker mini-lab with and without sidecars, one trace across
every hop, and a real Prometheus scraping the gateway and both sidecars.

The demo runs on ports the kernel chooses (--free-ports) with the breaker's
open_for shortened to 2 s, so its recovery is waited for by polling the
gateway's own clock (wait_probe_due), not by sleeping 30 s."""
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time

import pytest

import httpraw
from conftest import (BUILD_DIR, PY, REPO, eventually, listen_socket, stop_process,
                      wait_probe_due)
from test_prometheus import prometheus, query  # noqa: F401 (prometheus: a fixture)

DEMO = REPO / "configs" / "demo"
HOST = "gateway.local"
OPEN_FOR_S = 2


class Admin:
    """What conftest's admin helpers need of a process: its admin port."""

    def __init__(self, port):
        self.admin_port = port


@pytest.fixture
def demo(tmp_path):
    out = tmp_path / "demo.out"
    d = tmp_path / "demo"
    with open(out, "wb") as f:
        proc = subprocess.Popen(
            [PY, str(REPO / "tools" / "demo_mesh.py"), "--build-dir", str(BUILD_DIR), "--dir",
             str(d), "--free-ports", "--breaker-open-for", f"{OPEN_FOR_S}s"],
            stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def info():
        if proc.poll() is not None:
            raise AssertionError(f"the demo exited with {proc.returncode}:\n{out.read_text()}")
        return (d / "demo.json").exists() and "Press Ctrl-C" in out.read_text()

    try:
        eventually(info, timeout=60, interval=0.1, what="the demo running")
    except BaseException:
        stop_process(proc, signal.SIGKILL)
        raise
    state = json.loads((d / "demo.json").read_text())
    state.update(proc=proc, out=out, dir=d)
    yield state
    if stop_process(proc, signal.SIGINT, timeout=40) == -signal.SIGKILL:
        # The demo had to be killed: what it started is still ours to stop
        # (checked by its command line, since a pid may have been reused).
        for pid in json.loads((d / "demo.json").read_text())["pids"].values():
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
                if str(d) in cmd or "uvicorn app:app" in cmd:
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass


def tls_context(ca):
    return ssl.create_default_context(cafile=ca)  # the name is checked: gateway.local


class Edge:
    """A keep-alive HTTPS client of https://gateway.local:PORT, resolved to
    127.0.0.1 and trusting the dev CA (what the printed curl lines do), so a
    timed call measures the gateway, not a TLS handshake."""

    def __init__(self, demo):
        self.demo = demo
        self.conn = None

    def connect(self):
        port = self.demo["ports"]["gateway"]
        self.conn = http.client.HTTPSConnection(HOST, port, timeout=10)
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn.sock = tls_context(self.demo["ca"]).wrap_socket(raw, server_hostname=HOST)

    def get(self, path, token=True, headers=None):
        """(status, headers dict, body, seconds of the request and its answer)."""
        h = {"Host": HOST, **(headers or {})}
        if token:
            h["Authorization"] = f"Bearer {self.demo['token']}"
        if self.conn is None:
            self.connect()
        start = time.monotonic()
        self.conn.request("GET", path, headers=h)
        r = self.conn.getresponse()
        body = r.read()
        seconds = time.monotonic() - start
        if r.will_close:
            self.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body, seconds

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def call(demo, path, token=True, headers=None):
    """One call on a connection of its own."""
    edge = Edge(demo)
    try:
        return edge.get(path, token, headers)
    finally:
        edge.close()


def spans_of(path, trace_id):
    if not path.exists():
        return []
    # Only whole lines: the receiver may be writing the last one.
    lines = path.read_text().split("\n")[:-1]
    return [s for s in map(json.loads, lines) if s["trace_id"] == trace_id]


def mini_lab(call_once, stop, start, admin, service):
    """The seed's section 8, as it reads: stop the service, call 3 times: the
    3rd is 503 circuit_open; later calls are refused at once; start it again,
    and once the breaker's open_for has passed, calls flow. Returns the
    answers [(status, reason, seconds)] of the 3 calls and the fast one."""
    stop()
    answers = [call_once() for _ in range(3)]
    assert [a[0] for a in answers][2] == 503 and answers[2][1] == "circuit_open", answers
    # "the 3rd call instantly returns 503": the request that opens the
    # breaker waits for no retry (docs/resilience.md).
    assert answers[2][2] < 0.05, answers
    fast = call_once()
    assert fast[:2] == (503, "circuit_open") and fast[2] < 0.05, fast
    start()
    wait_probe_due(admin, service, timeout=OPEN_FOR_S + 10)
    flows = eventually(call_once, lambda a: a[0] == 200, timeout=10, interval=0.2,
                       what=f"{service} answering again after its breaker's open_for")
    return answers + [fast, flows]


@pytest.mark.deadline(180)
def test_the_seed_chapter_through_tools_demo_mesh(demo, prometheus):
    p = demo["ports"]
    env = {**os.environ, "JWT": demo["token"]}
    # The seed's call, exactly as the demo prints it (curl, the dev CA, --resolve).
    r = subprocess.run(["bash", "-c", demo["try"]["seed"]], capture_output=True, text=True,
                       env=env, timeout=30)
    assert r.returncode == 0 and json.loads(r.stdout) == {"sum": 5}, (r.stdout, r.stderr)
    assert "--resolve gateway.local:" in demo["try"]["seed"]
    status, headers, body, _ = call(demo, "/hello")
    assert (status, json.loads(body)) == (200, {"msg": "Hello from HMS!"})
    assert headers.get("x-trace-id"), headers
    # Zero trust at the edge: no token, no call.
    status, headers, _, _ = call(demo, "/sum/2/3", token=False)
    assert status == 401 and headers["x-hms-reason"].startswith("jwt_"), headers
    # Between sidecars: mTLS, and allow_from decides (calc-svc may call hello-svc,
    # not the reverse). The egress listeners are plain on loopback.
    r = httpraw.get(p["calc-egress"], "/hello-svc/hello")
    assert r.status == 200 and r.json() == {"msg": "Hello from HMS!"}, r
    r = httpraw.get(p["hello-egress"], "/calc-svc/sum/2/3")
    assert r.status == 403 and r.header("x-hms-reason") == "identity_not_allowed", r
    # A sidecar's inbound speaks only mTLS: plain HTTP gets no service.
    r = httpraw.get(p["calc-sidecar"], "/sum/2/3")
    assert r.status == 400 and r.header("x-hms-reason") == "plain_http_to_tls_port", r

    # One trace id across every hop, each hop's span the child of the one before.
    tid, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    status, headers, _, _ = call(demo, "/sum/4/5",
                                 headers={"traceparent": f"00-{tid}-{parent}-01"})
    assert status == 200 and headers["x-trace-id"] == tid, headers
    traces = demo["dir"] / "logs" / "traces.jsonl"
    spans = eventually(lambda: spans_of(traces, tid), lambda s: len(s) >= 2, timeout=15,
                       what="the gateway's and the sidecar's spans")
    by_service = {s["service"]: s for s in spans}
    assert set(by_service) == {"hms-gateway", "calc-svc"}, spans
    assert by_service["hms-gateway"]["parent_span_id"] == parent, spans
    assert by_service["calc-svc"]["parent_span_id"] == by_service["hms-gateway"]["span_id"], spans
    # Sidecar to sidecar (calc-svc's egress to hello-svc's inbound): the same.
    tid2 = "5bf92f3577b34da6a3ce929d0e0e4737"
    r = httpraw.get(p["calc-egress"], "/hello-svc/hello",
                    headers={"traceparent": f"00-{tid2}-{parent}-01"})
    assert r.status == 200, r
    spans = eventually(lambda: spans_of(traces, tid2), lambda s: len(s) >= 2, timeout=15,
                       what="both sidecars' spans")
    egress = [s for s in spans if s["service"] == "calc-svc"]
    inbound = [s for s in spans if s["service"] == "hello-svc"]
    assert len(egress) == 1 and len(inbound) == 1, spans
    assert inbound[0]["parent_span_id"] == egress[0]["span_id"], spans
    # Access logs, one per proxy, under the demo's own log directory.
    for name in ("gateway", "calc-sidecar", "hello-sidecar"):
        log = demo["dir"] / "logs" / f"{name}-access.log"
        eventually(lambda: log.exists() and log.stat().st_size > 0, timeout=10,
                   what=f"{name}'s access log")

    # The mini-lab through the sidecars: the demo reports the exit and keeps running.
    gw = Admin(p["gateway-admin"])

    edge = Edge(demo)

    def lab_call():
        status, headers, _, seconds = edge.get("/sum/2/3")
        return status, headers.get("x-hms-reason"), seconds

    def stop_calc():
        os.kill(demo["pids"]["calc-svc"], signal.SIGTERM)
        eventually(lambda: "calc-svc exited" in demo["out"].read_text(), timeout=10,
                   what="the demo saying calc-svc exited")

    def start_calc():
        demo["proc"].send_signal(signal.SIGUSR1)
        eventually(lambda: "calc-svc started again" in demo["out"].read_text(), timeout=10,
                   what="the demo starting calc-svc again")

    try:
        answers = mini_lab(lab_call, stop_calc, start_calc, gw, "calc-svc")
    finally:
        edge.close()
    assert [a[:2] for a in answers[:3]] == [(503, "local_service_unavailable")] * 2 + [
        (503, "circuit_open")], answers
    # No backoff anywhere on this path: even the call that opens the breaker
    # is answered at once (the sidecar's two refused connects).
    assert answers[2][2] < 0.05, answers
    out = demo["out"].read_text()
    assert "calc-svc exited" in out and str(demo["dir"] / "logs" / "calc-svc.log") in out, out
    assert demo["proc"].poll() is None
    print("mini-lab through sidecars (status, reason, seconds):", answers)

    # Killing a sidecar does not end the demo either; started again, it comes
    # back on the same ports and registers itself again.
    before = json.loads((demo["dir"] / "demo.json").read_text())
    os.kill(before["pids"]["calc-sidecar"], signal.SIGKILL)
    eventually(lambda: "calc-sidecar exited" in demo["out"].read_text(), timeout=10,
               what="the demo saying calc-sidecar exited")
    demo["proc"].send_signal(signal.SIGUSR1)
    eventually(lambda: "calc-sidecar started again" in demo["out"].read_text(), timeout=30,
               what="the demo starting calc-sidecar again")
    after = json.loads((demo["dir"] / "demo.json").read_text())
    assert after["ports"] == before["ports"] and after["pids"] != before["pids"], (before, after)
    eventually(lambda: call(demo, "/sum/3/4"), lambda r: r[0] == 200, timeout=15, interval=0.5,
               what="calls through the restarted sidecar")
    assert demo["proc"].poll() is None

    # 20 req/min on calc-svc: what is left of the minute's 20, then 429.
    status, headers, _, _ = call(demo, "/sum/1/1")
    assert status == 200 and headers["ratelimit-limit"] == "20", headers
    remaining = int(headers["ratelimit-remaining"])
    statuses = [call(demo, f"/sum/{i}/1")[0] for i in range(remaining + 3)]
    first_429 = statuses.index(429)
    assert remaining <= first_429 <= remaining + 1, (remaining, statuses)  # +1: a token refilled
    status, headers, body, _ = call(demo, "/sum/2/3")
    assert status == 429 and headers["x-hms-reason"] == "rate_limited", headers
    assert int(headers["retry-after"]) >= 1, headers

    # A real Prometheus (the fixture skips without Debian's) scrapes the
    # gateway and both sidecars.
    targets = [p["gateway-admin"], p["calc-admin"], p["hello-admin"]]
    prom = prometheus(*targets)

    def scraped():
        res = query(prom, "sum by (instance) (hms_requests_total)")["data"]["result"]
        return {r["metric"]["instance"] for r in res}

    want = {f"127.0.0.1:{t}" for t in targets}
    eventually(scraped, lambda got: got == want, timeout=30, interval=0.5,
               what="gateway and both sidecars scraped")

    # Ctrl-C stops everything the demo started.
    pids = json.loads((demo["dir"] / "demo.json").read_text())["pids"]
    demo["proc"].send_signal(signal.SIGINT)
    demo["proc"].wait(timeout=40)
    for name, pid in pids.items():
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(
            f"/proc/{pid}/status").read().lower(), f"{name} still runs after Ctrl-C"


@pytest.mark.deadline(90)
def test_the_mini_lab_reads_the_same_without_sidecars(uvicorn_app, hms_api, gateway, tmp_path):
    """Straight to the service (a static endpoint, no sidecar): the same lab."""
    mesh = tmp_path / "mesh-config.yaml"
    mesh.write_text(f"breaker: {{failures: 3, open_for: {OPEN_FOR_S}s}}\n")
    sock = listen_socket()
    port = sock.getsockname()[1]
    calc = [uvicorn_app(DEMO / "calc_svc", sock=sock)]
    assert hms_api("register", DEMO / "calc_svc" / "route.yaml").returncode == 0
    assert hms_api("endpoints", "add", "calc-svc", f"127.0.0.1:{port}").returncode == 0
    gw = gateway({"mesh": str(mesh)})

    def lab_call():
        start = time.monotonic()
        r = httpraw.get(gw.port, "/sum/2/3")
        return r.status, r.header("x-hms-reason"), time.monotonic() - start

    def stop():
        calc[0].proc.terminate()
        calc[0].proc.wait(timeout=10)

    def start():
        again = socket.socket()
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen(512)
        calc[0] = uvicorn_app(DEMO / "calc_svc", sock=again)

    answers = mini_lab(lab_call, stop, start, gw, "calc-svc")
    assert [a[:2] for a in answers[:3]] == [(502, "upstream_connect_failed")] * 2 + [
        (503, "circuit_open")], answers
    print("mini-lab without sidecars (status, reason, seconds):", answers)
