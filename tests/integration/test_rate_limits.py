"""Rate limits are process-wide whichever core a connection lands on
(DESIGN §5, docs/resilience.md): exact at low rates, within ±2% at high
ones, kept across reloads, with every 429 saying why."""
import json
import re
import shutil
import subprocess

import pytest

import httpraw
from conftest import admin_get, eventually, metric_sum, wait_snapshot

WRK = shutil.which("wrk") or "/usr/bin/wrk"


def json_routes(port, limit):
    return (f"service: json-svc\nroutes:\n  - GET /json\nrate_limit: {json.dumps(limit)}\n"
            f"endpoints: [127.0.0.1:{port}]\n")


def policy_counts(gw):
    body = admin_get(gw, "/metrics").body.decode()

    def total(name):
        return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                   if line.startswith(name + "{") and 'service="json-svc"' in line)

    return total("hms_rate_limit_admitted_total"), total("hms_rate_limit_limited_total")


@pytest.mark.parametrize("cores", [2, 4])
def test_20_per_minute_admits_exactly_20_over_fresh_connections(nginx_upstream, register, gateway,
                                                                 cores):
    # cores: 4 runs four core threads on this machine's CPUs: more cores than
    # CPUs is allowed, and the limit must not care.
    register(json_routes(nginx_upstream.port, "20 req/min"))
    gw = gateway({"cores": cores})
    answers = [httpraw.get(gw.port, "/json") for _ in range(100)]  # a new connection each
    ok = [r for r in answers if r.status == 200]
    limited = [r for r in answers if r.status == 429]
    assert (len(ok), len(limited)) == (20, 80), [r.status for r in answers]
    r = limited[-1]
    assert r.header("x-hms-reason") == "rate_limited"
    assert r.json()["reason"] == "rate_limited" and r.json()["trace_id"]
    assert int(r.header("retry-after")) >= 1
    assert r.header("ratelimit-limit") == "20" and r.header("ratelimit-remaining") == "0"
    assert int(r.header("ratelimit-reset")) > 0
    assert ok[0].header("ratelimit-remaining") == "19"
    assert policy_counts(gw) == (20, 80)


@pytest.mark.deadline(60)
def test_1000_per_second_within_2_percent_under_overload(nginx_upstream, register, gateway):
    register(json_routes(nginx_upstream.port, {"rate": "1000 req/s", "burst": 100}))
    gw = gateway({"cores": 2})
    out = subprocess.run([WRK, "-t2", "-c16", "-d5s", f"http://127.0.0.1:{gw.port}/json"],
                         capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    assert m, out
    offered = int(m.group(1))
    seconds = float(m.group(2)) / (1000 if m.group(3) == "ms" else 1)
    admitted, limited = policy_counts(gw)
    expected = 100 + 1000 * seconds
    print(f"\noffered {offered / seconds:.0f} req/s for {seconds:.2f} s: admitted {admitted:.0f} "
          f"(expected {expected:.0f}, {100 * (admitted - expected) / expected:+.2f}%), "
          f"limited {limited:.0f}")
    assert offered / seconds >= 3000, f"the load did not reach 3x the limit:\n{out}"
    assert admitted + limited >= offered  # every answered request was judged (in-flight ones too)
    assert abs(admitted - expected) <= 0.02 * expected, (admitted, expected)


def test_bucket_survives_a_reload_and_a_new_limit_applies_at_once(nginx_upstream, register,
                                                                   gateway):
    path = register(json_routes(nginx_upstream.port, "5 req/min"), name="json.yaml")
    gw = gateway({"cores": 2})
    assert [httpraw.get(gw.port, "/json").status for _ in range(6)] == [200] * 5 + [429]

    v = wait_snapshot(gw)
    # Another change to the same route: its bucket, empty, carries over.
    path.write_text(json_routes(nginx_upstream.port, "5 req/min") + "timeout: 9s\n")
    register(path.read_text(), name="json.yaml")
    v = wait_snapshot(gw, after=v)
    assert httpraw.get(gw.port, "/json").status == 429
    # A faster limit refills at its rate from now on: 8 tokens within 0.16 s
    # at 50/s (at 5/min it would take 96 s).
    register(json_routes(nginx_upstream.port, {"rate": "50 req/s", "burst": 50}), name="json.yaml")
    wait_snapshot(gw, after=v)
    eventually(lambda: metric_sum(gw, "hms_rate_limit_available_tokens", route="/json"),
               lambda n: n >= 8, timeout=2, what="8 tokens in the bucket")
    statuses = [httpraw.get(gw.port, "/json").status for _ in range(8)]
    assert statuses == [200] * 8, statuses
