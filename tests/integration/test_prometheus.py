"""A real Prometheus server (Debian's) scrapes a running gateway: the request
rate of a route the test drove comes back through its query API, and every
query of the shipped Grafana dashboard (configs/grafana/hms-dashboard.json)
parses and returns data. The dashboard's role and instance selectors pick
one process's series when a gateway and a sidecar are scraped together."""
import json
import os
import re
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
        targets = ", ".join(f"'127.0.0.1:{p}'" for p in admin_ports)
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


def label_values(port, label, match):
    """Grafana's label_values(MATCH, LABEL) variable query, through the
    Prometheus API it uses: the label's values on the series MATCH selects."""
    url = (f"http://127.0.0.1:{port}/api/v1/label/{label}/values?"
           + urllib.parse.urlencode({"match[]": match}))
    with urllib.request.urlopen(url, timeout=10) as r:
        return sorted(json.loads(r.read())["data"])


def grafana_regex(values):
    """A multi-value variable as Grafana's Prometheus data source writes it
    into a query: each value regex-escaped (and the escape escaped for the
    PromQL string), joined with | in a group."""
    return "(" + "|".join(re.sub(r"([\\$^*{}\[\]'+?.()|])", r"\\\\\1", v)
                          for v in values) + ")"


def variables():
    dash = json.loads(DASHBOARD.read_text())
    return {v["name"]: v for v in dash["templating"]["list"]}


def variable_query(name, **values):
    """The label_values() query of a query variable, with variables in it replaced."""
    q = variables()[name]["query"]["query"]
    for k, v in values.items():
        q = q.replace(f"${k}", v)
    m = re.fullmatch(r"label_values\((.+), (\w+)\)", q)
    assert m, q
    return m.group(1), m.group(2)


def selected_instances(port, role_regex):
    """What the instance selector offers once the role selector says role_regex."""
    match, label = variable_query("role")
    assert (match, label) == ("hms_info", "role")
    match, label = variable_query("instance", role=role_regex)
    return label_values(port, label, match)


def dashboard_queries(instances=None, role=".*"):
    """(title, expr) of every panel; with `instances`, the queries as Grafana
    sends them once the selectors name those instances (and role)."""
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for p in dash["panels"]:
        for t in p["targets"]:
            expr = t["expr"]
            if instances is not None:
                expr = expr.replace("$instance", grafana_regex(instances)).replace("$role", role)
            out.append((p["title"], expr))
    return out


def test_dashboard_is_a_grafana_dashboard():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 30
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        assert {"h", "w", "x", "y"} <= set(p["gridPos"]), p["title"]
        assert p["datasource"]["type"] == "prometheus"
        assert p["targets"] and all(t["expr"] and t["refId"] for t in p["targets"]), p["title"]
    # The selectors: role from hms_info, and the instances of the chosen
    # roles; "All" instances means every instance the role offers (no
    # allValue, which would ignore the role).
    v = variables()
    assert v["role"]["query"]["query"] == "label_values(hms_info, role)"
    assert v["instance"]["query"]["query"] == 'label_values(hms_info{role=~"$role"}, instance)'
    assert v["role"]["includeAll"] and v["role"]["multi"] and v["role"]["allValue"] == ".*"
    assert v["instance"]["includeAll"] and v["instance"]["multi"]
    assert "allValue" not in v["instance"]
    # Every series a panel reads is filtered by the instance selector.
    for title, expr in dashboard_queries():
        for m in re.finditer(r"\b(hms_[a-z_]+)(\{[^}]*\})?", expr):
            assert m.group(2) and 'instance=~"$instance"' in m.group(2), (title, m.group(0))


@pytest.mark.deadline(90)
def test_prometheus_scrapes_the_gateway_and_every_dashboard_query_returns_data(
        nginx_upstream, register, gateway, prometheus):
    register(f"service: json-svc\nroutes:\n  - GET /json\n  - path: /limited\n"
             f"    methods: [GET]\n    rate_limit: \"2 req/s\"\n"
             f"endpoints: [{nginx_upstream.addr}]\n")
    gw = gateway({"cores": 2})
    port = prometheus(gw.admin_port)
    instance = f"127.0.0.1:{gw.admin_port}"
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
        return [f"{title}: {expr}" for title, expr in dashboard_queries([instance])
                if not query(port, expr).get("data", {}).get("result")]

    eventually(without_data, lambda empty: not empty, timeout=30, interval=0.1,
               what="every dashboard query with data")

    r = query(port, 'sum(rate(hms_requests_total{service="json-svc",route="/json"}[1m]))')
    assert r["status"] == "success", r
    assert r["data"]["result"], r
    assert float(r["data"]["result"][0]["value"][1]) > 0, r
    r = query(port, 'up{job="hms"}')
    assert r["data"]["result"][0]["value"][1] == "1", r

    # The selectors offer this gateway (hms_info{role="gateway"}).
    assert selected_instances(port, ".*") == [instance]
    assert selected_instances(port, "gateway") == [instance]
    assert selected_instances(port, "sidecar") == []

    empty = []
    for title, expr in dashboard_queries([instance]):
        r = query(port, expr)
        assert r["status"] == "success", f"{title}: {expr}: {r}"
        if not r["data"]["result"]:
            empty.append(f"{title}: {expr}")
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)


@pytest.mark.deadline(120)
def test_role_and_instance_selectors_keep_a_gateway_and_its_sidecar_apart(
        nginx_upstream, register, gateway, prometheus):
    """A gateway and the sidecar of the service behind it, scraped by one
    Prometheus: their series share names and service labels; choosing a role
    gives that process's series only."""
    register("service: json-svc\nroutes:\n  - GET /json\n")
    sc = gateway({"role": "sidecar", "service": "json-svc", "local_port": nginx_upstream.port,
                  "egress": "127.0.0.1:0", "registration_ttl": "2s", "cores": 1},
                 name="sidecar.yaml")
    gw = gateway({"cores": 1})
    port = prometheus(gw.admin_port, sc.admin_port)
    gw_instance, sc_instance = f"127.0.0.1:{gw.admin_port}", f"127.0.0.1:{sc.admin_port}"
    eventually(lambda: len(query(port, 'up{job="hms"} == 1')["data"]["result"]) == 2,
               timeout=20, interval=0.2, what="prometheus scraping the gateway and the sidecar")

    def drive():
        with httpraw.Conn(gw.port) as c:
            for _ in range(5):
                c.send(httpraw.build("GET", "/json"))
                assert c.read_response().status == 200

    rate = dict(dashboard_queries())["Request rate per route"]

    def routes_seen(instances):
        expr = rate.replace("$instance", grafana_regex(instances))
        return sorted(r["metric"]["route"] for r in query(port, expr)["data"]["result"])

    # Both processes counted the calls: the gateway by route, the sidecar inbound.
    eventually(lambda: (drive(), routes_seen([gw_instance, sc_instance]))[1],
               lambda seen: seen == ["(inbound)", "/json"], timeout=30, interval=0.2,
               what="both processes' request rates in Prometheus")

    assert label_values(port, "role", "hms_info") == ["gateway", "sidecar"]
    assert selected_instances(port, ".*") == sorted([gw_instance, sc_instance])
    assert selected_instances(port, "gateway") == [gw_instance]
    assert selected_instances(port, "sidecar") == [sc_instance]
    # One role's instances: that process's series only.
    assert routes_seen(selected_instances(port, "gateway")) == ["/json"]
    assert routes_seen(selected_instances(port, "sidecar")) == ["(inbound)"]
    for role, inst in (("gateway", gw_instance), ("sidecar", sc_instance)):
        for title, expr in dashboard_queries([inst], role):
            if title not in ("Instances", "Per-core balance", "Config snapshots"):
                continue
            result = query(port, expr)["data"]["result"]
            assert result, (role, title, expr)
            assert {r["metric"]["instance"] for r in result} == {inst}, (role, title, result)
            if title == "Instances":
                assert [r["metric"]["role"] for r in result] == [role], result
