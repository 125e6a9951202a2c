"""The admin page /ui in a real browser: headless Chromium (Debian's
chromium + chromium-driver, driven by python3-selenium) opens it on a running
gateway, bounded traffic goes through, and every number the page draws is the
one its data (/ui/data) says, which in turn is what /status and /metrics say.
The page is served by the gateway alone: the browser fetches nothing else."""
import json
import os
import re
import time
from decimal import ROUND_HALF_UP, Decimal

import pytest

import httpraw
from conftest import admin_get, closed_port, eventually, metric_sum

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
BROWSER_MISSING = ("headless Chromium is needed to test /ui: install the Debian packages "
                   "chromium, chromium-driver and python3-selenium (tools/bootstrap does)")


@pytest.fixture
def browser(tmp_path):
    """A headless Chromium under chromedriver, with a fresh profile; quit at teardown."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.fail(BROWSER_MISSING)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(BROWSER_MISSING)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # As root Chromium needs --no-sandbox; the machine has no network, so
    # everything that would reach out (updates, sync, field trials) is off,
    # or the browser stalls waiting for it.
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1600",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(arg)
    service = Service(executable_path=CHROMEDRIVER, log_path=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        proc = getattr(service, "process", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


# What the page shows, read in one script run: the data it last drew and every
# table cell, so both come from the same moment (drawing is synchronous).
READ_PAGE = """
const tables = {};
for (const id of ["routes", "breakers", "cores", "endpoints", "refusals"]) {
  tables[id] = [...document.querySelectorAll("#" + id + " tbody tr[data-key]")].map((tr) => {
    const cells = {};
    for (const td of tr.querySelectorAll("td[data-k]")) cells[td.dataset.k] = td.textContent;
    return {key: tr.dataset.key, cells};
  });
}
const text = (id) => document.getElementById(id).textContent;
return {updates: window.hmsUi.updates, data: window.hmsUi.data, tables,
        head: {role: text("role"), snapshot: text("snapshot"), config: text("config"),
               state: text("state"), unmatched: text("unmatched")}};
"""


def read_page(driver):
    return driver.execute_script(READ_PAGE)


def fixed(v, places):
    """JavaScript's v.toFixed(places) for v >= 0: the exact binary value,
    rounded half up."""
    return str(Decimal(v).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def rate(v):
    return "–" if v is None else fixed(v, 1)


def ms(v):
    return "–" if v is None else fixed(v, 2)


def count(v):
    return "–" if v is None else str(v)


def seconds(v_ms):
    return fixed(v_ms / 1000, 1) + " s"


def utc_time(unix_ms):
    return time.strftime("%H:%M:%S", time.gmtime(unix_ms // 1000)) + f".{unix_ms % 1000:03d}"


def expected_tables(d):
    """Each table's rows as the page must draw them from its data `d`."""
    routes = [{"key": f"{r['service']} {r['route']}", "cells": {
        "service": r["service"], "route": r["route"], "req_per_s": rate(r["req_per_s"]),
        "p50_ms": ms(r["p50_ms"]), "p90_ms": ms(r["p90_ms"]), "p99_ms": ms(r["p99_ms"]),
        "errors_4xx_per_s": rate(r["errors_4xx_per_s"]),
        "errors_5xx_per_s": rate(r["errors_5xx_per_s"]),
        "requests": str(r["requests"]), "errors_4xx": str(r["errors_4xx"]),
        "errors_5xx": str(r["errors_5xx"]), "rate_limit": r.get("rate_limit") or "–",
        "tokens_left": count(r.get("tokens_left"))}} for r in d["routes"]]
    breakers = [{"key": b["service"], "cells": {
        "service": b["service"], "state": b["state"],
        "consecutive_failures": str(b["consecutive_failures"]),
        "next_probe": seconds(b["next_probe_ms"]) if b["state"] == "open" else "–",
        "opened_total": str(b["opened_total"])}} for b in d["breakers"]]
    cores = [{"key": str(c["core"]), "cells": {
        "core": str(c["core"]), "req_per_s": rate(c["req_per_s"]),
        "cpu_pct": "–" if c["cpu_pct"] is None else fixed(c["cpu_pct"], 1) + " %",
        "connections": str(c["connections"]), "requests": str(c["requests"]),
        "snapshot": str(c["snapshot"])}} for c in d["cores"]]
    endpoints = [{"key": f"{e['service']} {e['address']}", "cells": {
        "service": e["service"], "address": e["address"],
        "health": "check failing" if e["check_failing"] else "ok",
        "ejected": "for " + seconds(e["ejected_for_ms"]) if e["ejected"] else "no",
        "ejections_total": str(e["ejections_total"])}} for e in d["endpoints"]]
    refusals = [{"key": r["trace_id"], "cells": {
        "time": utc_time(r["unix_ms"]), "core": str(r["core"]), "status": str(r["status"]),
        "reason": r["reason"], "method": r["method"],
        "service": "–" if r["service"] == "none" else r["service"],
        "route": "–" if r["route"] == "none" else r["route"],
        "trace_id": r["trace_id"]}} for r in d["refusals"]]
    return {"routes": routes, "breakers": breakers, "cores": cores, "endpoints": endpoints,
            "refusals": refusals}


def assert_page_draws_its_data(page):
    d = page["data"]
    assert page["tables"] == expected_tables(d)
    assert page["head"]["role"] == d["role"]
    assert page["head"]["snapshot"] == str(d["snapshot"])
    assert page["head"]["config"] == d["config"]
    assert page["head"]["state"] == "live"
    u = d["unmatched"]
    assert page["head"]["unmatched"] == (f"Requests no route matched: {u['requests']} "
                                         f"({rate(u['req_per_s'])}/s)")


def page_agrees_with_status(gw, page):
    """The page's counts against /status (read after it) and /metrics: a list
    of disagreements, empty when they agree. Tokens refill and breakers count
    down meanwhile, so callers retry (eventually)."""
    d = page["data"]
    status = admin_get(gw, "/status").json()
    wrong = []
    if len(d["routes"]) != len(status["routes"]):
        wrong.append(("routes", d["routes"], status["routes"]))
    for mine, theirs in zip(d["routes"], status["routes"]):
        for k in ("service", "route", "requests", "errors_5xx", "rate_limit", "tokens_left"):
            if mine.get(k) != theirs.get(k):
                wrong.append((theirs["route"], k, mine.get(k), theirs.get(k)))
    if [b["service"] for b in d["breakers"]] != [b["service"] for b in status["breakers"]]:
        wrong.append(("breakers", d["breakers"], status["breakers"]))
    for mine, theirs in zip(d["breakers"], status["breakers"]):
        for k in ("state", "consecutive_failures"):
            if mine[k] != theirs[k]:
                wrong.append((theirs["service"], k, mine[k], theirs[k]))
        if abs(mine["next_probe_s"] - theirs["next_probe_s"]) > 1:
            wrong.append((theirs["service"], "next_probe_s", mine, theirs))
    for mine, theirs in zip(d["cores"], status["cores"], strict=True):
        for k in ("core", "requests", "connections", "snapshot"):
            if mine[k] != theirs[k]:
                wrong.append(("core", theirs["core"], k, mine[k], theirs[k]))
    if d["snapshot"] != status["snapshot"]:
        wrong.append(("snapshot", d["snapshot"], status["snapshot"]))
    for e in d["endpoints"]:
        labels = {"service": e["service"], "endpoint": e["address"]}
        if metric_sum(gw, "hms_endpoint_ejections_total", **labels) != e["ejections_total"]:
            wrong.append(("ejections", e))
        if metric_sum(gw, "hms_endpoint_healthy", **labels) != (0 if e["check_failing"] else 1):
            wrong.append(("healthy", e))
    unmatched = metric_sum(gw, "hms_requests_total", service="none", route="none") or 0
    if d["unmatched"]["requests"] != unmatched:
        wrong.append(("unmatched", d["unmatched"], unmatched))
    return wrong


def wait_updates(driver, at_least, timeout=20):
    return eventually(lambda: read_page(driver), lambda p: p["updates"] >= at_least,
                      timeout=timeout, interval=0.1, what=f"the page's update {at_least}")


ROUTES = """\
service: echo-svc
routes:
  - GET /status/{{code}}
  - path: /headers
    methods: [GET]
    rate_limit: "5 req/min"
retries: 0
breaker: {{failures: 1000, open_for: 1s}}
endpoints: [127.0.0.1:{echo}]
"""

# Every attempt fails to connect: the 5th ejects the endpoint, the 8th opens
# the breaker (and is itself answered circuit_open); its health check fails.
DOWN = """\
service: down-svc
routes:
  - GET /down
retries: 0
breaker: {{failures: 8, open_for: 60s}}
health: {{path: /healthz, interval: 500ms, timeout: 200ms, unhealthy: 1, healthy: 1}}
endpoints: [127.0.0.1:{port}]
"""


def drive(gw):
    """Bounded traffic of every kind the page shows; the trace ids of the
    refusals the gateway made itself, by reason."""
    refused = {}
    with httpraw.Conn(gw.port) as c:
        for path, n in (("/status/200", 30), ("/status/404", 5), ("/status/500", 3)):
            for _ in range(n):
                c.send(httpraw.build("GET", path))
                c.read_response()
    # The page lists the newest 16 refusals: these 15 are all there, whatever
    # order the two cores' clocks give them.
    for path, n in (("/down", 10), ("/nope", 2), ("/headers", 8)):
        for _ in range(n):
            r = httpraw.get(gw.port, path)
            if r.header("x-hms-reason"):
                refused.setdefault(r.header("x-hms-reason"), []).append(
                    (r.status, r.header("x-trace-id")))
    return refused


@pytest.mark.deadline(150)
def test_page_in_a_browser_shows_what_status_says(echo_upstream, register, gateway, browser,
                                                  tmp_path):
    register(ROUTES.format(echo=echo_upstream.port))
    register(DOWN.format(port=closed_port()))
    gw = gateway({"cores": 2})
    url = f"http://127.0.0.1:{gw.admin_port}/ui"
    browser.get(url)
    first = wait_updates(browser, 2)
    assert_page_draws_its_data(first)
    assert first["data"]["role"] == "gateway"

    refused = drive(gw)
    assert [s for s, _ in refused["rate_limited"]] == [429] * 3, refused
    assert [s for s, _ in refused["no_route"]] == [404] * 2, refused
    assert refused["circuit_open"][0][0] == 503, refused

    # While the traffic is inside the page's window: rates and percentiles.
    def busy(page):
        r = next(r for r in page["data"]["routes"] if r["route"] == "GET /status/{code}")
        return r["req_per_s"] and r["p50_ms"] is not None
    page = eventually(lambda: read_page(browser), busy, timeout=15, interval=0.2,
                      what="the page showing the traffic's rate and latency")
    assert_page_draws_its_data(page)
    r = next(r for r in page["data"]["routes"] if r["route"] == "GET /status/{code}")
    assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"], r
    assert r["req_per_s"] > 0 and r["window_requests"] > 0, r
    assert page["data"]["window_s"] > 0

    # Once the traffic is over: the counts are those of /status and /metrics,
    # and the page draws exactly its data.
    page = eventually(lambda: read_page(browser), lambda p: not page_agrees_with_status(gw, p),
                      timeout=20, interval=0.3, what="the page agreeing with /status")
    assert_page_draws_its_data(page)
    d = page["data"]
    routes = {r["route"]: r for r in d["routes"]}
    assert routes["GET /status/{code}"]["requests"] == 38
    assert routes["GET /status/{code}"]["errors_4xx"] == 5
    assert routes["GET /status/{code}"]["errors_5xx"] == 3
    assert routes["GET /headers"]["rate_limit"] == "5 req/min"
    assert routes["GET /headers"]["errors_4xx"] == 3  # the 429s
    assert d["unmatched"]["requests"] == 2
    down = next(b for b in d["breakers"] if b["service"] == "down-svc")
    assert down["state"] == "open" and 0 < down["next_probe_ms"] <= 60000, down
    cells = {t["key"]: t["cells"] for t in page["tables"]["breakers"]}
    assert cells["down-svc"]["state"] == "open"
    assert re.fullmatch(r"\d+\.\d s", cells["down-svc"]["next_probe"]), cells
    ep = next(e for e in d["endpoints"] if e["service"] == "down-svc")
    assert ep["ejections_total"] >= 1 and ep["check_failing"] and not ep["healthy"], ep
    assert len(d["cores"]) == 2
    assert all(c["cpu_pct"] is not None for c in d["cores"]), d["cores"]

    # The refusals listed are the ones the test got, with their reasons and trace ids.
    shown = {t["cells"]["trace_id"]: t["cells"] for t in page["tables"]["refusals"]}
    for reason, route in (("rate_limited", "/headers"), ("no_route", "–"),
                          ("circuit_open", "/down")):
        status, trace = refused[reason][-1]
        assert trace in shown, (reason, trace, shown)
        assert shown[trace]["reason"] == reason
        assert shown[trace]["status"] == str(status)
        assert shown[trace]["route"] == route
        assert shown[trace]["method"] == "GET"

    # Everything the page loaded came from the gateway's admin listener.
    origin = f"http://127.0.0.1:{gw.admin_port}/"
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)")
    assert loaded and all(u.startswith(origin) for u in loaded), loaded
    assert {u[len(origin):].split("?")[0] for u in loaded} >= {"ui/app.js", "ui/style.css",
                                                              "ui/data"}

    shot = tmp_path / "ui.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10000

    # A gateway that goes away is said so, not shown frozen.
    assert gw.stop() == 0
    eventually(lambda: read_page(browser)["head"]["state"],
               lambda s: s.startswith("gateway unreachable"), timeout=10, interval=0.2,
               what="the page saying the gateway is unreachable")


def test_page_files_and_data_are_served_with_their_policy(echo_upstream, register, gateway):
    register(ROUTES.format(echo=echo_upstream.port))
    gw = gateway({"cores": 1})
    want = {"/ui": "text/html", "/ui/": "text/html", "/ui/app.js": "text/javascript",
            "/ui/style.css": "text/css", "/ui/data": "application/json"}
    for path, ctype in want.items():
        r = admin_get(gw, path)
        assert r.status == 200, (path, r)
        assert r.header("content-type").startswith(ctype), (path, r.headers)
        csp = r.header("content-security-policy")
        assert csp and "default-src 'none'" in csp and "script-src 'self'" in csp, (path, csp)
        assert r.header("x-content-type-options") == "nosniff"
    assert admin_get(gw, "/ui/data").header("cache-control") == "no-store"
    page = admin_get(gw, "/ui").body.decode()
    # No outside asset: every src and href is the gateway's own path.
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert refs and all(u.startswith("/") or u.startswith("data:") for u in refs), refs
    d = admin_get(gw, "/ui/data").json()
    assert d["role"] == "gateway" and d["config"] == "ok"
    assert [r["route"] for r in d["routes"]] == ["GET /status/{code}", "GET /headers"]
    assert d["routes"][1]["tokens_left"] == 5
    assert d["refusals"] == []


def test_a_sidecar_serves_the_page_too(echo_upstream, register, gateway):
    register("service: echo-svc\nroutes:\n  - GET /status/{code}\n")
    sc = gateway({"role": "sidecar", "service": "echo-svc", "local_port": echo_upstream.port,
                  "egress": "127.0.0.1:0", "registration_ttl": "2s", "cores": 1},
                 name="sidecar.yaml")
    r = httpraw.get(sc.port, "/status/200")
    assert r.status == 200, r
    # Counted as the exchange ends, which may be a moment after the answer left.
    d = eventually(lambda: admin_get(sc, "/ui/data").json(),
                   lambda d: d["cores"][0]["requests"] == 1, what="the sidecar's request counted")
    assert d["role"] == "sidecar"
    assert admin_get(sc, "/ui").status == 200
    body = admin_get(sc, "/metrics").body.decode()
    assert 'hms_info{role="sidecar",version="' in body
