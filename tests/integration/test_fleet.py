"""A fleet of gateways on one store (docs/config.md, "The fleet"; docs/tls.md,
"Tickets shared by a fleet"): each member keeps a record in the store,
`hms-api fleet` lists them and flags one that lags the store, `hms-api status
--all` sums their request counts and rates (file store and etcd); a TLS
session from one gateway resumes on another sharing the ticket key file, and
ticket keys rotate."""
import json
import os
import signal
import ssl
import threading


import httpraw
from conftest import admin_get, echo_routes, eventually, hms_api_on
from test_etcd import etcd  # noqa: F401 (the fixture)
from test_upgrade import certs, new_session, resumes, ticket_key_file, tls_config  # noqa: F401


def fleet(store):
    return json.loads(hms_api_on(store, "fleet", "--json").stdout)


def by_admin(view):
    return {m["admin"]: m for m in view["members"]}


def check_fleet(store, register_change, a, b):
    """Two gateways a and b on `store`: both listed, current; b stopped while
    the store changes lags, and catches up once it runs again."""
    view = eventually(lambda: fleet(store), lambda v: len(v["members"]) == 2,
                      what="two members in the fleet")
    members = by_admin(view)
    for gw in (a, b):
        m = members[f"127.0.0.1:{gw.admin_port}"]
        assert m["role"] == "gateway" and m["pid"] == gw.proc.pid, m
        assert m["state"] == "serving" and not m["lags"], m
    text = hms_api_on(store, "fleet").stdout
    assert "current" in text and "LAGS" not in text, text
    os.kill(b.proc.pid, signal.SIGSTOP)
    try:
        register_change()
        view = eventually(lambda: by_admin(fleet(store)),
                          lambda v: not v[f"127.0.0.1:{a.admin_port}"]["lags"],
                          what="the running gateway on the new config")
        assert view[f"127.0.0.1:{b.admin_port}"]["lags"], view
        assert "LAGS" in hms_api_on(store, "fleet").stdout
    finally:
        os.kill(b.proc.pid, signal.SIGCONT)
    eventually(lambda: by_admin(fleet(store)),
               lambda v: not any(m["lags"] for m in v.values()),
               what="the stopped gateway caught up")


def check_status_all(store, a, b):
    """status --all: each member's requests as its own /status counts them,
    the sum, and a rate while traffic runs."""
    for gw, n in ((a, 20), (b, 10)):
        for _ in range(n):
            assert httpraw.get(gw.port, "/status/200").status == 200
    stop = threading.Event()

    def load():
        while not stop.is_set():
            for gw in (a, b):
                httpraw.get(gw.port, "/status/200")

    t = threading.Thread(target=load, daemon=True)
    t.start()
    try:
        out = json.loads(hms_api_on(store, "status", "--all", "--json", "--interval", "0.5").stdout)
    finally:
        stop.set()
        t.join(timeout=10)
    members = {m["admin"]: m for m in out["members"]}
    assert set(members) == {f"127.0.0.1:{a.admin_port}", f"127.0.0.1:{b.admin_port}"}, out
    assert all(m["ok"] for m in members.values()), out
    assert members[f"127.0.0.1:{a.admin_port}"]["requests"] >= 20, out
    assert members[f"127.0.0.1:{b.admin_port}"]["requests"] >= 10, out
    assert out["requests"] == sum(m["requests"] for m in members.values()), out
    assert out["req_per_s"] > 0, out
    assert abs(out["req_per_s"] - sum(m["req_per_s"] for m in members.values())) < 0.5, out
    text = hms_api_on(store, "status", "--all", "--interval", "0.1").stdout
    assert "fleet" in text and "2 members" in text, text


def test_fleet_on_the_file_store(echo_upstream, register, gateway, store_dir, tmp_path):
    path = register(echo_routes(echo_upstream.port), name="echo.yaml")
    a = gateway(name="a.yaml")
    b = gateway(name="b.yaml")
    store = f"file:{store_dir}"

    def change():
        path.write_text(echo_routes(echo_upstream.port) + "# changed\n")
        hms_api_on(store, "register", path)

    check_fleet(store, change, a, b)
    check_status_all(store, a, b)
    # A member that stops leaves the fleet.
    b.stop()
    eventually(lambda: fleet(store), lambda v: len(v["members"]) == 1,
               what="the stopped member gone")


def test_fleet_on_etcd(etcd, echo_upstream, gateway, tmp_path):  # noqa: F811
    route = tmp_path / "echo.yaml"
    route.write_text(echo_routes(echo_upstream.port))
    hms_api_on(etcd.uri, "register", route)
    a = gateway({"store": etcd.uri}, name="a.yaml")
    b = gateway({"store": etcd.uri}, name="b.yaml")

    def change():
        route.write_text(echo_routes(echo_upstream.port) + "# changed\n")
        hms_api_on(etcd.uri, "register", route)

    check_fleet(etcd.uri, change, a, b)
    check_status_all(etcd.uri, a, b)


def test_a_session_from_one_gateway_resumes_on_another(echo_upstream, register, gateway,
                                                       certs, tmp_path):  # noqa: F811
    register(echo_routes(echo_upstream.port))
    shared = ticket_key_file(tmp_path / "fleet.keys")
    a = gateway(tls_config(certs, shared), name="a.yaml")
    b = gateway(tls_config(certs, shared), name="b.yaml")
    own = gateway(tls_config(certs), name="own.yaml")  # its own per-process keys
    for maximum in (None, ssl.TLSVersion.TLSv1_2):
        ctx, session = new_session(a.port, maximum)
        assert resumes(b.port, ctx, session), maximum
        assert not resumes(own.port, ctx, session), maximum


def test_ticket_keys_rotate(echo_upstream, register, gateway, certs, tmp_path):  # noqa: F811
    """The first key seals, every key opens: with a new key put first, the
    old tickets still resume while new ones are sealed with the new key;
    with the old key gone, its tickets no longer resume."""
    register(echo_routes(echo_upstream.port))
    keys = ticket_key_file(tmp_path / "a.keys")
    k1 = keys.read_text()
    a = gateway(tls_config(certs, keys), name="a.yaml")
    only_k1 = tmp_path / "b.keys"
    only_k1.write_text(k1)
    b = gateway(tls_config(certs, only_k1), name="b.yaml")  # keeps k1 only
    ctx, old = new_session(a.port)
    assert resumes(b.port, ctx, old)
    k2 = ticket_key_file(tmp_path / "k2").read_text()
    keys.write_text(k2 + k1)
    # Re-read on change: a's new tickets are k2's, which b cannot open...
    eventually(lambda: resumes(b.port, *new_session(a.port)), lambda r: not r,
               what="a sealing with the new key")
    # ...while k1's tickets still open on a.
    assert resumes(a.port, ctx, old)
    keys.write_text(k2)
    eventually(lambda: resumes(a.port, ctx, old), lambda r: not r,
               what="the old key's tickets refused once it is gone")
    # A bad file keeps the keys in use, and /healthz says why.
    keys.write_text("not a key\n")
    eventually(lambda: admin_get(a, "/healthz").json()["config"], lambda c: "ticket" in c,
               what="the bad key file reported")
    ctx2, fresh = new_session(a.port)
    assert resumes(a.port, ctx2, fresh)
