"""A real Prometheus server (Debian's) scrapes a running gateway: the request
rate of a route the test drove comes back through its query API, and every
query of the shipped Grafana dashboard (configs/grafana/hms-dashboard.json)
parses and returns data."""
import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request

import pytest

import httpraw
from conftest import REPO, PortTaken, eventually, start_on_free_port, stop_process

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
DASHBOARD = REPO / "configs" / "grafana" / "hms-dashboard.json"


@pytest.fixture
def prometheus(tmp_path):
    """prometheus(*admin_ports) → the port of a Prometheus scraping them every second."""
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.skip("prometheus is not installed (Debian package prometheus)")
    procs = []

    def start_on(port, admin_ports):
        cfg = tmp_path / "prometheus.yml"
        targets = ", ".join(f"'127.0.0.1:{a}'" for a in admin_ports)
        cfg.write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                       "scrape_configs:\n"
                       "  - job_name: hms\n"
                       f"    static_configs: [{{targets: [{targets}]}}]\n")
        log = open(tmp_path / "prometheus.log", "wb")
        proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        procs.append(proc)

        def ready():
            if proc.poll() is not None:
                text = (tmp_path / "prometheus.log").read_text()
                if "address already in use" in text:
                    raise PortTaken(port)  # taken since free_port read it: another port
                raise AssertionError("prometheus exited at start:\n" + text[-3000:])
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False

        eventually(ready, timeout=30, interval=0.1, what="prometheus ready")
        return port

    def start(*admin_ports):
        # Prometheus cannot listen on port 0 and say which port it got.
        return start_on_free_port(lambda port: start_on(port, admin_ports))

    yield start
    for proc in procs:
        stop_process(proc, timeout=10)


def query(port, expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:  # 400 with the parse error in the body
        return json.loads(e.read())


def dashboard_queries():
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]


def test_dashboard_is_a_grafana_dashboard():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 30
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        assert {"h", "w", "x", "y"} <= set(p["gridPos"]), p["title"]
        assert p["datasource"]["type"] == "prometheus"
        assert p["targets"] and all(t["expr"] and t["refId"] for t in p["targets"]), p["title"]


@pytest.mark.deadline(90)
def test_prometheus_scrapes_the_gateway_and_every_dashboard_query_returns_data(
        nginx_upstream, register, gateway, prometheus):
    register(f"service: json-svc\nroutes:\n  - GET /json\n  - path: /limited\n"
             f"    methods: [GET]\n    rate_limit: \"2 req/s\"\n"
             f"endpoints: [{nginx_upstream.addr}]\n")
    gw = gateway({"cores": 2})
    port = prometheus(gw.admin_port)
    # Prometheus applies new targets in its first reload cycle (about 5 s).
    eventually(lambda: query(port, 'up{job="hms"}')["data"]["result"], timeout=20,
               interval=0.2, what="prometheus scraping the gateway")

    # Drive traffic while Prometheus scrapes every second (/json answers,
    # /limited is limited: 429s, a nonexistent path gives 404s) until every
    # dashboard query has data: a rate needs two scrapes that saw traffic.
    def drive():
        with httpraw.Conn(gw.port) as c:
            for _ in range(5):
                for path in ("/json", "/json", "/limited", "/nope"):
                    c.send(httpraw.build("GET", path))
                    c.read_response()

    def without_data():
        drive()
        return [f"{title}: {expr}" for title, expr in dashboard_queries()
                if not query(port, expr).get("data", {}).get("result")]

    eventually(without_data, lambda empty: not empty, timeout=30, interval=0.1,
               what="every dashboard query with data")

    r = query(port, 'sum(rate(hms_requests_total{service="json-svc",route="/json"}[1m]))')
    assert r["status"] == "success", r
    assert r["data"]["result"], r
    assert float(r["data"]["result"][0]["value"][1]) > 0, r
    r = query(port, 'up{job="hms"}')
    assert r["data"]["result"][0]["value"][1] == "1", r

    empty = []
    for title, expr in dashboard_queries():
        r = query(port, expr)
        assert r["status"] == "success", f"{title}: {expr}: {r}"
        if not r["data"]["result"]:
            empty.append(f"{title}: {expr}")
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
