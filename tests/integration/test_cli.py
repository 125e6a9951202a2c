"""hms-api's explain, register --dry-run and status over the real binaries and a file store."""
import json
import os
import re
import subprocess
import time

from conftest import REPO, binary, eventually, metric_sum

DEMO = REPO / "configs" / "demo"
CALC = DEMO / "calc_svc" / "route.yaml"


def store_bytes(store_dir):
    return {str(p.relative_to(store_dir)): p.read_bytes()
            for p in sorted(store_dir.rglob("*")) if p.is_file()}


def seed(hms_api):
    for path in (CALC, DEMO / "hello_svc" / "route.yaml"):
        r = hms_api("register", path)
        assert r.returncode == 0, r.stderr
    for ep in ("127.0.0.1:7001", "localhost:7002"):
        r = hms_api("endpoints", "add", "calc-svc", ep)
        assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------- explain


def test_explain_seed_sum(hms_api):
    seed(hms_api)
    r = hms_api("explain", "GET", "/sum/2/3")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "calc-svc" in out
    assert "/sum/{a}/{b}" in out
    assert f"{CALC}:3" in out, out
    assert "a=2, b=3" in out, out
    assert "rate_limit  20 req/min" in out, out
    assert "timeout     15s" in out and "retries     2" in out, out
    assert "retries     2, on 502, 503, 504, connect-failure, reset, timeout" in out, out
    assert "opens after 3 failures, for 30s" in out, out
    assert "auth        none" in out, out
    assert "websocket   off: an upgrade is refused 403 websocket_not_enabled" in out, out
    # Endpoints in the order the gateway tries them, names resolved.
    first = out.index("1. 127.0.0.1:7001")
    # localhost resolves to 127.0.0.1 or ::1, whichever the resolver puts first.
    second = out.index("2. localhost:7002 (")
    assert first < second, out


def test_explain_json_parses(hms_api):
    seed(hms_api)
    r = hms_api("explain", "--json", "GET", "/sum/2/3?verbose=1")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == 200
    assert doc["path"] == "/sum/2/3"  # the query takes no part in matching
    assert doc["route"] == {"service": "calc-svc", "template": "/sum/{a}/{b}", "methods": "GET",
                            "host": "", "where": f"{CALC}:3"}
    assert doc["params"] == {"a": "2", "b": "3"}
    p = doc["policies"]
    assert p["timeout_ms"] == 15000 and p["retries"] == 2
    assert p["retry_on"] == ["502", "503", "504", "connect-failure", "reset", "timeout"], p
    assert p["breaker"] == {"failures": 3, "open_for_ms": 30000}
    assert p["rate_limit"]["text"] == "20 req/min" and p["rate_limit"]["burst"] == 20
    assert p["auth"] == "none" and p["require"] == {}
    assert p["websocket"] == {"enabled": False, "idle_timeout_ms": 60000}
    assert [e["address"] for e in doc["endpoints"]] == ["127.0.0.1:7001", "localhost:7002"]
    assert doc["endpoints"][0]["resolved"] == "127.0.0.1:7001"
    assert doc["endpoints"][1]["resolved"] in ("127.0.0.1:7002", "[::1]:7002"), doc


def test_explain_a_websocket_route(hms_api, tmp_path):
    f = tmp_path / "live.yaml"
    f.write_text("service: live-svc\nroutes:\n"
                 "  - path: /live\n    websocket: true\n    websocket_idle_timeout: 5m\n"
                 "endpoints: [127.0.0.1:7001]\n")
    assert hms_api("register", f).returncode == 0
    out = hms_api("explain", "GET", "/live").stdout
    assert "websocket   on: an upgrade becomes a tunnel, closed after 5m without a byte" in out, out
    doc = json.loads(hms_api("explain", "--json", "GET", "/live").stdout)
    assert doc["policies"]["websocket"] == {"enabled": True, "idle_timeout_ms": 300000}


def test_explain_404(hms_api):
    seed(hms_api)
    r = hms_api("explain", "GET", "/nope")
    assert r.returncode == 1
    assert r.stdout.startswith("404"), r.stdout
    assert "no route for GET /nope" in r.stdout
    doc = json.loads(hms_api("explain", "--json", "GET", "/sum/2").stdout)
    assert doc["status"] == 404 and doc["reason"] == "no_route"


def test_explain_405_with_allow(hms_api):
    seed(hms_api)
    r = hms_api("explain", "POST", "/sum/2/3")
    assert r.returncode == 1
    assert r.stdout.startswith("405"), r.stdout
    assert "Allow: GET, HEAD" in r.stdout, r.stdout
    r = hms_api("explain", "--json", "DELETE", "/hello")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["status"] == 405 and doc["allow"] == "GET, HEAD", doc


def test_explain_host_specific_route(hms_api, tmp_path):
    seed(hms_api)
    f = tmp_path / "v2.yaml"
    f.write_text("service: v2-svc\n"
                 "routes:\n"
                 "  - path: /sum/{x}/{y}\n"
                 "    methods: [GET]\n"
                 "    host: api.example.com\n"
                 "    timeout: 2s\n"
                 "    require: {scope: calc:read}\n"
                 "    rate_limit: {rate: \"100 req/s\", burst: 5, per: client_ip}\n")
    assert hms_api("register", f).returncode == 0
    doc = json.loads(hms_api("explain", "--json", "--host", "API.example.com:8443",
                             "GET", "/sum/2/3").stdout)
    assert doc["route"]["service"] == "v2-svc" and doc["route"]["host"] == "api.example.com"
    assert doc["route"]["where"] == f"{f}:3"
    assert doc["params"] == {"x": "2", "y": "3"}
    assert doc["policies"]["timeout_ms"] == 2000
    assert doc["policies"]["require"] == {"scope": "calc:read"}
    assert doc["policies"]["rate_limit"]["burst"] == 5
    assert doc["policies"]["rate_limit"]["per"] == "client_ip"
    assert doc["endpoints"] == []
    r = hms_api("explain", "--host=api.example.com", "GET", "/sum/2/3")
    assert "no_endpoints" in r.stdout, r.stdout
    # Any other host falls back to the any-host route.
    doc = json.loads(hms_api("explain", "--json", "--host", "other.example.com",
                             "GET", "/sum/2/3").stdout)
    assert doc["route"]["service"] == "calc-svc"


def test_explain_usage_and_help(hms_api):
    r = hms_api("explain", "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: hms-api explain"), r.stdout
    assert hms_api("explain", "GET").returncode == 2
    assert hms_api("explain", "GET", "sum").returncode == 2
    assert hms_api("explain", "--bogus", "GET", "/").returncode == 2
    assert "explain" in hms_api("--help").stdout


def test_explain_with_the_gateways_config(hms_api, store_dir, tmp_path):
    """--config (or HMS_GATEWAY_CONFIG) explains the stamps as that gateway
    applies them: its jwt section, its mesh file, its mtls identity, its store."""
    seed(hms_api)
    r = hms_api("explain", "GET", "/sum/2/3")
    assert "auth        none: explained for a gateway without a jwt section" in r.stdout, r.stdout
    certs = tmp_path / "certs"
    for args in (["init"], ["issue", "hms-gateway"]):
        assert hms_api("certs", *args, "--dir", certs).returncode == 0
    (tmp_path / "dev.secret").write_text("a-development-secret-of-32-bytes!\n")
    (tmp_path / "mesh.yaml").write_text("retries: 1\nbreaker: {failures: 5, open_for: 10s}\n"
                                        "trust_domain: example.org\n")
    config = tmp_path / "gateway.yaml"
    config.write_text("listeners: [127.0.0.1:8080]\nmesh: mesh.yaml\n"
                      "jwt: {hs256_secret_file: dev.secret, issuer: hms-dev}\n"
                      f"mtls: {{cert: {certs}/hms-gateway.pem, key: {certs}/hms-gateway.key,"
                      f" ca: {certs}/ca.pem}}\n")
    r = hms_api("explain", "--config", config, "GET", "/sum/2/3")
    assert r.returncode == 0, r.stderr
    assert f"gateway     {config}" in r.stdout, r.stdout
    assert "auth        required: no valid token, 401 (HS256 key" in r.stdout, r.stdout
    assert "issuer hms-dev" in r.stdout, r.stdout
    assert "retries     1" in r.stdout and "opens after 5 failures, for 10s" in r.stdout, r.stdout
    assert ("mtls        calls mtls:// endpoints as spiffe://hms.local/svc/hms-gateway; they must "
            "present spiffe://example.org/svc/calc-svc") in r.stdout, r.stdout
    # The environment variable names it too; JSON carries the same.
    env_run = subprocess.run([str(binary("hms-api")), "--store", f"file:{store_dir}", "explain",
                              "--json", "GET", "/sum/2/3"], capture_output=True, text=True,
                             timeout=30, env={**os.environ, "HMS_GATEWAY_CONFIG": str(config)})
    doc = json.loads(env_run.stdout)
    assert doc["gateway"] == str(config)
    assert doc["policies"]["auth"] == "required" and doc["policies"]["retries"] == 1
    assert doc["policies"]["mtls"]["identity"] == "spiffe://hms.local/svc/hms-gateway"
    # A route that opens itself says so.
    open_route = tmp_path / "open.yaml"
    open_route.write_text("service: open-svc\nroutes:\n  - path: /open\n    auth: none\n")
    assert hms_api("register", open_route).returncode == 0
    r = hms_api("explain", "--config", config, "GET", "/open")
    assert "auth        none: the route opens itself (auth: none)" in r.stdout, r.stdout
    # Without --store, the config's own store is the one explained.
    other = tmp_path / "other-store"
    config.write_text(f"listeners: [127.0.0.1:8080]\nstore: file:{other}\n")
    r = subprocess.run([str(binary("hms-api")), "explain", "--config", str(config), "GET", "/x"],
                       capture_output=True, text=True, timeout=30,
                       env={k: v for k, v in os.environ.items() if k != "HMS_STORE"})
    assert f"store {other} does not exist" in r.stderr, r.stderr
    # A sidecar's config is refused: it routes nothing by path.
    config.write_text("role: sidecar\nservice: calc-svc\nlocal_port: 7002\n"
                      "listeners: [127.0.0.1:0]\n")
    r = hms_api("explain", "--config", config, "GET", "/sum/2/3")
    assert r.returncode == 1 and "explain answers for a gateway" in r.stderr, r.stderr


def test_register_warns_when_another_file_replaces_a_service(hms_api, tmp_path, monkeypatch):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("service: calc-svc\nroutes:\n  - GET /a\n")
    b.write_text("service: calc-svc\nroutes:\n  - GET /b\n")
    assert hms_api("register", a).returncode == 0
    # The same file again, by another path to it: no warning.
    monkeypatch.chdir(tmp_path)
    r = hms_api("register", "./a.yaml")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    r = hms_api("register", "--dry-run", b)
    assert f"warning: calc-svc was registered from ./a.yaml; {b} replaces" in r.stderr, r.stderr
    r = hms_api("register", b)
    assert r.returncode == 0, r.stderr
    assert (f"hms-api: warning: calc-svc was registered from ./a.yaml; {b} replaces its routes "
            "and settings (endpoints added with hms-api endpoints add stay)") in r.stderr, r.stderr
    assert "/b" in hms_api("show", "calc-svc").stdout  # replaced all the same


def test_one_service_in_two_files_of_one_command(hms_api, store_dir, tmp_path):
    """The message config.md gives, as --dry-run says it, and nothing made."""
    store_dir.rmdir()
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("service: calc-svc\nroutes:\n  - GET /a\n")
    b.write_text("service: calc-svc\nroutes:\n  - GET /b\n")
    for args in (["register", a, b], ["register", "--dry-run", a, b]):
        r = hms_api(*args)
        assert r.returncode == 1
        assert f"{b}:1: service 'calc-svc' is already defined at {a}:1" in r.stderr, r.stderr
    assert not store_dir.exists()


def test_help_and_store_errors_name_both_stores():
    exe = str(binary("hms-api"))
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30).stdout
    assert "file:DIR or etcd://HOST:PORT" in out, out
    for uri in ("bogus", "ftp://x"):
        r = subprocess.run([exe, "--store", uri, "list"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 1 and "etcd://HOST:PORT" in r.stderr, r.stderr
    out = subprocess.run([str(binary("hms-gateway")), "--help"], capture_output=True, text=True,
                         timeout=30).stdout
    assert "etcd://HOST:PORT" in out, out


def test_a_tab_in_a_route_file_is_named_at_its_line(hms_api, tmp_path):
    f = tmp_path / "calc.yaml"
    f.write_text("service: calc-svc\nroutes:\n  - GET /a\nbreaker:\n\tfailures: 3\n")
    r = hms_api("register", f)
    assert r.returncode == 1
    assert (f"{f}:5: syntax error: a tab indents this line; YAML indents with spaces only"
            in r.stderr), r.stderr


# ---------------------------------------------------------------- register --dry-run


def test_dry_run_new_service_writes_nothing(hms_api, store_dir):
    # A read (list) leaves the store's empty lock file; the dry run adds nothing to that.
    assert hms_api("list").returncode == 0
    before = store_bytes(store_dir)
    assert not any(k.startswith(("services", "endpoints")) for k in before), before
    r = hms_api("register", "--dry-run", CALC)
    assert r.returncode == 0, r.stderr
    assert f"would add calc-svc ({CALC})" in r.stdout, r.stdout
    assert f"  + GET /sum/{{a}}/{{b}}  {CALC}:3" in r.stdout, r.stdout
    assert store_bytes(store_dir) == before
    assert "no services registered" in hms_api("list").stdout


def test_dry_run_changed_routes(hms_api, store_dir, tmp_path):
    old = tmp_path / "calc.yaml"
    old.write_text("service: calc-svc\n"
                   "routes:\n"
                   "  - GET /sum/{a}/{b}\n"
                   "  - GET /old\n"
                   "  - path: /keep\n"
                   "    methods: [GET, HEAD]\n"
                   "rate_limit: \"20 req/min\"\n")
    assert hms_api("register", old).returncode == 0
    assert hms_api("endpoints", "add", "calc-svc", "127.0.0.1:7001").returncode == 0
    before = store_bytes(store_dir)
    new = tmp_path / "calc2.yaml"
    new.write_text("service: calc-svc\n"
                   "routes:\n"
                   "  - path: /sum/{a}/{b}\n"
                   "    methods: [GET]\n"
                   "    timeout: 2s\n"
                   "  - GET /mul/{a}/{b}\n"
                   "  - path: /keep\n"
                   "    methods: [HEAD, GET]\n"
                   "rate_limit: \"20 req/min\"\n")
    r = hms_api("register", "--dry-run", new)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"would change calc-svc ({new})", r.stdout
    assert f"  + GET /mul/{{a}}/{{b}}  {new}:6" in lines, r.stdout
    assert f"  - GET /old  {old}:4" in lines, r.stdout
    assert f"  ~ GET /sum/{{a}}/{{b}}  {new}:3: timeout 15s → 2s" in lines, r.stdout
    # Same method set in another order: the same route, unchanged.
    assert not any("/keep" in l for l in lines), r.stdout
    assert lines[-1] == "dry run: nothing written"
    assert store_bytes(store_dir) == before
    # The real register agrees, and afterwards the dry run has nothing to say.
    assert hms_api("register", new).returncode == 0
    r = hms_api("register", "--dry-run", new)
    assert "calc-svc: unchanged" in r.stdout, r.stdout


def test_dry_run_says_a_route_takes_websocket_now(hms_api, tmp_path):
    f = tmp_path / "live.yaml"
    f.write_text("service: live-svc\nroutes:\n  - GET /live\nendpoints: [127.0.0.1:7001]\n")
    assert hms_api("register", f).returncode == 0
    f.write_text("service: live-svc\nroutes:\n  - path: /live\n    methods: [GET]\n"
                 "    websocket: true\n    websocket_idle_timeout: 2m\n"
                 "endpoints: [127.0.0.1:7001]\n")
    r = hms_api("register", "--dry-run", f)
    assert f"  ~ GET /live  {f}:3: websocket off → on; websocket_idle_timeout default → 2m" in \
        r.stdout.splitlines(), r.stdout


def test_dry_run_identical_file_unchanged(hms_api, store_dir):
    seed(hms_api)
    before = store_bytes(store_dir)
    r = hms_api("register", "--dry-run", CALC, DEMO / "hello_svc" / "route.yaml")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["calc-svc: unchanged", "hello-svc: unchanged",
                                     "dry run: nothing written"], r.stdout
    assert store_bytes(store_dir) == before


def test_dry_run_policy_changes(hms_api, tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("service: p-svc\nroutes:\n  - GET /a\n")
    assert hms_api("register", f).returncode == 0
    g = tmp_path / "p2.yaml"
    g.write_text("service: p-svc\nroutes:\n"
                 "  - path: /a\n    methods: [GET]\n    auth: none\n"
                 "    require: {scope: a:read}\n    rate_limit: \"5 req/s\"\n"
                 "retries: 4\n")
    r = hms_api("register", "--dry-run", g)
    assert r.returncode == 0, r.stderr
    assert ("~ GET /a  " + f"{g}:3: auth default → none; require none → scope=a:read; "
            "rate_limit none → 5 req/s") in r.stdout, r.stdout
    assert "~ retries 2 → 4" in r.stdout, r.stdout


def test_dry_run_invalid_file(hms_api, store_dir, tmp_path):
    seed(hms_api)
    before = store_bytes(store_dir)
    bad = tmp_path / "bad.yaml"
    bad.write_text("service: calc-svc\nroutes:\n  - GET /sum/{a}/{b}\nrate_limt: \"20 req/min\"\n")
    r = hms_api("register", "--dry-run", bad)
    assert r.returncode == 1
    assert f"{bad}:4" in r.stderr and "rate_limit" in r.stderr, r.stderr
    assert "would" not in r.stdout, r.stdout
    # A clash with a registered service is found by the trial compile, as register does.
    clash = tmp_path / "clash.yaml"
    clash.write_text("service: other-svc\nroutes:\n  - GET /sum/{x}/{y}\n")
    r = hms_api("register", "--dry-run", clash)
    assert r.returncode == 1
    assert f"{clash}:3" in r.stderr and "clashes" in r.stderr, r.stderr
    assert store_bytes(store_dir) == before


def test_dry_run_on_a_missing_store_creates_nothing(hms_api, store_dir, tmp_path):
    missing = tmp_path / "absent"
    r = hms_api("--store", f"file:{missing}", "register", "--dry-run", CALC)
    assert r.returncode == 0, r.stderr
    assert "would add calc-svc" in r.stdout, r.stdout
    assert not missing.exists()


def test_register_help_mentions_dry_run(hms_api):
    r = hms_api("register", "--help")
    assert r.returncode == 0 and "--dry-run" in r.stdout
    assert hms_api("register", "--dry-run").returncode == 2


# ---------------------------------------------------------------- status


def status_tables(stdout):
    """`hms-api status` text → (header line, core rows, route rows by template).
    Rows are split on whitespace; the numeric columns are read from the right
    of a route row (REQUESTS, REQ/S, 5XX, 5XX/S, then the rate limit)."""
    lines = stdout.splitlines()
    cores, routes = [], {}
    section = None
    for line in lines[1:]:
        if line.startswith("CORE"):
            section = "cores"
        elif line.startswith("SERVICE") and "ROUTE" in line:
            section = "routes"
        elif line.startswith("SERVICE"):
            section = "breakers"
        elif line.strip() and section == "cores":
            cores.append(line.split())
        elif line.strip() and section == "routes":
            f = line.split()
            template = next(x for x in f if x.startswith("/"))
            routes[template] = {"requests": f[-5], "rps": f[-4], "5xx": f[-3], "5xx_ps": f[-2]}
    return lines[0], cores, routes


def test_status_prints_rates_between_two_samples(echo_upstream, register, gateway, hms_api):
    import threading

    import httpraw
    register("service: echo-svc\nroutes:\n  - GET /headers\n  - GET /status/{code}\n"
             "  - GET /stream\nbreaker: {failures: 1000, open_for: 1s}\n"
             f"endpoints: [127.0.0.1:{echo_upstream.port}]\n")
    gw = gateway()
    assert httpraw.get(gw.port, "/stream").status == 200  # before the samples only
    stop = threading.Event()
    errors = []

    def drive():
        try:
            with httpraw.Conn(gw.port) as c:
                while not stop.is_set():
                    for path, code in (("/headers", 200), ("/status/500", 500)):
                        c.send(httpraw.build("GET", path))
                        assert c.read_response().status == code
                    time.sleep(0.005)  # pacing the load, not waiting for a state
        except Exception as e:  # reported by the test, not lost in the thread
            errors.append(e)

    t = threading.Thread(target=drive, daemon=True)
    t.start()
    try:
        eventually(lambda: errors or metric_sum(gw, "hms_requests_total", route="/status/{code}"),
                   what="the driven requests counted")
        r = hms_api("status", "--admin", f"127.0.0.1:{gw.admin_port}", "--interval", "1")
    finally:
        stop.set()
        t.join(10)
    assert not errors, errors
    assert r.returncode == 0, r.stderr
    header, cores, routes = status_tables(r.stdout)
    m = re.search(r"rates over (\d+\.\d) s", header)
    assert m and 0.9 <= float(m.group(1)) <= 3, header
    assert len(cores) == 2 and sum(float(c[3]) for c in cores) > 0, r.stdout
    ok, bad, idle = routes["/headers"], routes["/status/{code}"], routes["/stream"]
    assert float(ok["rps"]) > 0 and ok["5xx"] == "0" and ok["5xx_ps"] == "0.0", r.stdout
    # Every answer of /status/500 is a 5xx: both rates are the same number.
    assert float(bad["rps"]) > 0 and bad["5xx_ps"] == bad["rps"], r.stdout
    assert idle == {"requests": "1", "rps": "0.0", "5xx": "0", "5xx_ps": "0.0"}, r.stdout


def test_status_interval_zero_prints_counts_without_rates(echo_upstream, register, gateway,
                                                         hms_api):
    import httpraw
    register("service: echo-svc\nroutes:\n  - GET /headers\n  - GET /status/{code}\n"
             "breaker: {failures: 1000, open_for: 1s}\n"
             f"endpoints: [127.0.0.1:{echo_upstream.port}]\n")
    gw = gateway()
    for path, code in [("/headers", 200)] * 3 + [("/status/500", 500)] * 2:
        assert httpraw.get(gw.port, path).status == code
    started = time.monotonic()
    r = hms_api("status", "--admin", f"127.0.0.1:{gw.admin_port}", "--interval", "0")
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - started < 1, "--interval 0 takes one sample at once"
    header, cores, routes = status_tables(r.stdout)
    assert "no rates" in header, header
    assert sum(int(c[2]) for c in cores) == 5 and all(c[3] == "-" for c in cores), r.stdout
    assert routes["/headers"] == {"requests": "3", "rps": "-", "5xx": "0", "5xx_ps": "-"}
    assert routes["/status/{code}"] == {"requests": "2", "rps": "-", "5xx": "2", "5xx_ps": "-"}
    # The JSON is the gateway's, with the clock that rates are computed over.
    r = hms_api("status", "--admin", f"127.0.0.1:{gw.admin_port}", "--json")
    doc = json.loads(r.stdout)
    assert isinstance(doc["clock_ms"], int) and doc["clock_ms"] > 0, doc


def test_status_rejects_a_bad_interval(hms_api):
    for bad in ("abc", "-1", "7200", "1x"):
        r = hms_api("status", "--admin", "127.0.0.1:1", "--interval", bad)
        assert r.returncode == 2, (bad, r.stdout, r.stderr)
        assert "--interval" in r.stderr, r.stderr
    r = hms_api("status", "--help")
    assert r.returncode == 0 and "--interval" in r.stdout
