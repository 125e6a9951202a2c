"""Gateways on the etcd store (DESIGN §2): two hms-gateway processes sharing
one real etcd both serve a newly registered route within 1 s; with etcd
stopped they keep serving the last good config and say so in /healthz; with
etcd back they catch up without a restart."""
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

import httpraw
from conftest import (REPO, PortTaken, admin_get, eventually, free_port, hms_api_on,
                      start_on_free_port, stop_process)

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


class Etcd:
    def __init__(self, data_dir, log_path):
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = None  # chosen at the first start
        self.peer_port = None
        self.proc = None

    @property
    def uri(self):
        return f"etcd://127.0.0.1:{self.port}"

    def start(self):
        if self.port is not None:
            return self._start()  # a restart keeps its address: the gateways know it

        # etcd cannot listen on port 0 and say which port it got: ports read
        # from the kernel, and new ones when another process took one meanwhile.
        def first(port):
            self.port, self.peer_port = port, free_port()
            self._start()

        start_on_free_port(first)

    def _start(self):
        client = f"http://127.0.0.1:{self.port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        logged = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [ETCD, "--name", "default", "--data-dir", str(self.data_dir),
                 "--listen-client-urls", client, "--advertise-client-urls", client,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", f"default={peer}"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)

        def healthy():
            if self.proc.poll() is not None:
                text = self.log_path.read_bytes()[logged:].decode(errors="replace")
                self.proc = None
                if "address already in use" in text:
                    raise PortTaken(self.port)
                raise AssertionError("etcd exited at start:\n" + text[-3000:])
            try:
                with urllib.request.urlopen(f"{client}/health", timeout=1) as r:
                    return json.loads(r.read()).get("health") == "true"
            except OSError:
                return False

        eventually(healthy, timeout=20, interval=0.05, what="etcd healthy")

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, timeout=10)
            self.proc = None


@pytest.fixture
def etcd(tmp_path):
    if not os.access(ETCD, os.X_OK):
        pytest.skip("etcd is not installed (Debian package etcd-server)")
    e = Etcd(tmp_path / "etcd-data", tmp_path / "etcd.log")
    e.start()
    yield e
    e.stop()


def wait_status(gw, path, status, within):
    eventually(lambda: httpraw.get(gw.port, path).status, lambda s: s == status, within,
               ignore=(OSError,), what=f"{path} answering {status}")


def test_two_gateways_share_etcd_and_survive_its_outage(etcd, nginx_upstream, echo_upstream,
                                                        gateway, tmp_path):
    gw1 = gateway({"store": etcd.uri}, name="gw1.yaml")
    gw2 = gateway({"store": etcd.uri}, name="gw2.yaml")
    assert httpraw.get(gw1.port, "/json").status == 404

    route = tmp_path / "json-svc.yaml"
    route.write_text(f"service: json-svc\nroutes:\n  - GET /json\nendpoints: [{nginx_upstream.addr}]\n")
    hms_api_on(etcd.uri, "register", route)
    registered = time.monotonic()
    for gw in (gw1, gw2):
        wait_status(gw, "/json", 200, within=1.0)
    print(f"\nboth gateways served the new route {time.monotonic() - registered:.3f} s after register")

    etcd.stop()
    for gw in (gw1, gw2):
        health = eventually(lambda: json.loads(admin_get(gw, "/healthz").body),
                            lambda h: h["store"] != "ok", timeout=15,
                            what="/healthz noticing etcd stopping")
        assert health["status"] == "ok"
        assert "unreachable" in health["store"], health
        assert httpraw.get(gw.port, "/json").status == 200  # the last good config serves

    etcd.start()
    echo = tmp_path / "echo-svc.yaml"
    echo.write_text("service: echo-svc\nroutes:\n  - GET /status/{code}\n"
                    f"endpoints: [127.0.0.1:{echo_upstream.port}]\n")
    hms_api_on(etcd.uri, "register", echo)
    for gw in (gw1, gw2):
        wait_status(gw, "/status/201", 201, within=10.0)
        assert httpraw.get(gw.port, "/json").status == 200
        eventually(lambda: json.loads(admin_get(gw, "/healthz").body)["store"],
                   lambda store: store == "ok", timeout=10, what="/healthz store ok again")


@pytest.mark.deadline(60)
def test_sidecar_holds_its_endpoint_with_an_etcd_lease(etcd, uvicorn_app, gateway, tmp_path):
    """A sidecar on etcd: its endpoint lives under a lease it keeps alive; a
    gateway on the same etcd routes through it; SIGKILL → the lease expires
    and the endpoint leaves within the TTL, and the gateway follows."""
    calc = uvicorn_app(REPO / "configs" / "demo" / "calc_svc")
    hms_api_on(etcd.uri, "register", REPO / "configs" / "demo" / "calc_svc" / "route.yaml")
    sc = gateway({"store": etcd.uri, "role": "sidecar", "service": "calc-svc",
                  "local_port": calc.port, "registration_ttl": "2s", "cores": 1},
                 name="sidecar.yaml")
    gw = gateway({"store": etcd.uri}, name="gw.yaml")
    wait_status(gw, "/sum/1/2", 200, within=2.0)

    def listed():
        out = json.loads(hms_api_on(etcd.uri, "list", "--json").stdout)
        return [s for s in out if s["service"] == "calc-svc"][0]["endpoints"]

    # Past the TTL: renewals keep it. An interval of the real clock by nature:
    # etcd expires leases on its own clock, in another process.
    time.sleep(3)
    assert listed() == [f"127.0.0.1:{sc.port}"]
    killed = time.monotonic()
    sc.kill()
    eventually(listed, lambda eps: eps == [], timeout=6, interval=0.05,
               what="the endpoint gone after SIGKILL")
    gone_after = time.monotonic() - killed
    # etcd expires leases on its own clock, to the second: TTL + 1 s at most.
    assert gone_after <= 3.2, f"left {gone_after:.2f} s after SIGKILL (TTL 2 s)"
    wait_status(gw, "/sum/1/2", 503, within=2.0)
