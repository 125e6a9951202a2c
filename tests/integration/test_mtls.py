"""mTLS inside the mesh (docs/tls.md): a sidecar with a mesh identity takes
only mTLS callers whose identity is in its service's allow_from, registers
itself as mtls://, and tells its service who called (x-hms-peer); gateways and
sidecars call it with their own identity, check it is the service they meant,
reuse pooled connections and resume sessions on new ones."""
import json
import ssl
import subprocess

import pytest

import httpraw
from conftest import closed_port, eventually, log_lines
from test_sidecar import endpoints, metric, sidecar

TRUST = "hms.local"


@pytest.fixture
def mesh_certs(hms_api, tmp_path):
    d = tmp_path / "mesh"
    assert hms_api("certs", "init", "--dir", d).returncode == 0
    for name in ("hms-gateway", "calc-svc", "echo-svc", "caller-svc", "intruder"):
        r = hms_api("certs", "issue", name, "--dir", d)
        assert r.returncode == 0, r.stderr
    return d


def identity(d, name):
    return {"cert": str(d / f"{name}.pem"), "key": str(d / f"{name}.key"), "ca": str(d / "ca.pem")}


def echo_service(allow_from=("hms-gateway",)):
    text = ("service: echo-svc\nroutes:\n  - path: /headers\n  - POST /echo\nretries: 0\n"
            f"allow_from: [{', '.join(allow_from)}]\n")
    return text


def test_gateway_calls_an_mtls_sidecar_with_its_identity(echo_upstream, register, hms_api,
                                                         gateway, mesh_certs):
    register(echo_service())
    sc = sidecar(gateway, "echo-svc", echo_upstream.port, mtls=identity(mesh_certs, "echo-svc"))
    assert sc.address.startswith("mtls://127.0.0.1:")
    assert endpoints(hms_api, "echo-svc") == [sc.address]
    gw = gateway({"mtls": identity(mesh_certs, "hms-gateway"), "cores": 1}, name="gw.yaml")

    for i in range(5):
        # A caller cannot pass itself off as a mesh identity: the field is dropped.
        r = httpraw.get(gw.port, "/headers", headers={"x-hms-peer": "spiffe://hms.local/svc/root"})
        assert r.status == 200, r
        peers = [v for k, v in r.json()["headers"] if k == "x-hms-peer"]
        assert peers == [f"spiffe://{TRUST}/svc/hms-gateway"], r.json()["headers"]
    # One connection carried the five requests (the pool reuses TLS connections).
    assert metric(gw, "hms_upstream_tls_handshakes_total", result="ok") == 1
    assert metric(sc, "hms_tls_handshakes_total", result="ok") == 1


def test_new_upstream_connections_resume_the_session(echo_upstream, register, gateway,
                                                     mesh_certs):
    register(echo_service())
    sidecar(gateway, "echo-svc", echo_upstream.port, mtls=identity(mesh_certs, "echo-svc"))
    # No idle pool: every request opens a connection, and resumes the last session.
    gw = gateway({"mtls": identity(mesh_certs, "hms-gateway"), "upstream_idle_per_core": 0,
                  "cores": 1}, name="gw.yaml")
    for _ in range(6):
        assert httpraw.get(gw.port, "/headers").status == 200
    assert metric(gw, "hms_upstream_tls_handshakes_total", result="ok") == 6
    assert metric(gw, "hms_upstream_tls_handshakes_total", result="resumed") >= 5


def mtls_client(d, name):
    ctx = ssl.create_default_context(cafile=str(d / "ca.pem"))
    ctx.check_hostname = False  # mesh certificates name a SPIFFE id, not a host
    if name:
        ctx.load_cert_chain(str(d / f"{name}.pem"), str(d / f"{name}.key"))
    return ctx


def test_a_sidecar_admits_only_identities_in_allow_from(echo_upstream, register, gateway,
                                                        mesh_certs, tmp_path):
    register(echo_service(allow_from=("hms-gateway", f"spiffe://{TRUST}/svc/caller-svc")))
    log = tmp_path / "access.log"
    sc = sidecar(gateway, "echo-svc", echo_upstream.port, mtls=identity(mesh_certs, "echo-svc"),
                 access_log={"path": str(log)})
    inbound = sc.port
    # Listed, by name or by full identity.
    for name in ("hms-gateway", "caller-svc"):
        with httpraw.Conn(inbound, tls=mtls_client(mesh_certs, name)) as c:
            c.send(b"GET /headers HTTP/1.1\r\nHost: echo-svc\r\n\r\n")
            r = c.read_response()
            assert r.status == 200, (name, r)
            assert [f"spiffe://{TRUST}/svc/{name}"] == [
                v for k, v in r.json()["headers"] if k == "x-hms-peer"]
    # A valid mesh identity that is not listed: refused, counted, said why.
    with httpraw.Conn(inbound, tls=mtls_client(mesh_certs, "intruder")) as c:
        c.send(b"GET /headers HTTP/1.1\r\nHost: echo-svc\r\n\r\n")
        r = c.read_response()
        assert r.status == 403
        assert r.header("x-hms-reason") == "identity_not_allowed"
        assert f"spiffe://{TRUST}/svc/intruder" in r.json()["error"]
    assert metric(sc, "hms_identity_refused_total") == 1
    # The refusal is logged with the identity.
    def refused_lines():
        lines = log_lines(log)
        return [x for x in lines if x["stamp"] == "identity_not_allowed"], lines

    refused, lines = eventually(refused_lines, lambda rl: rl[0], timeout=5,
                                what="the refusal in the access log")
    assert [x["peer_identity"] for x in refused] == [f"spiffe://{TRUST}/svc/intruder"], lines
    # No certificate, or one from another CA: the handshake is refused.
    other = tmp_path / "other"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=x",
                    "-addext", f"subjectAltName=URI:spiffe://{TRUST}/svc/hms-gateway",
                    "-keyout", str(other) + ".key", "-out", str(other) + ".pem"],
                   check=True, capture_output=True)
    no_cert = mtls_client(mesh_certs, None)
    forged = mtls_client(mesh_certs, None)
    forged.load_cert_chain(str(other) + ".pem", str(other) + ".key")
    for ctx in (no_cert, forged):
        with pytest.raises((ssl.SSLError, ConnectionResetError, httpraw.PeerClosed,
                            BrokenPipeError)):
            with httpraw.Conn(inbound, tls=ctx) as c:
                # TLS 1.3: the client's certificate is judged after its handshake ends.
                c.send(b"GET /headers HTTP/1.1\r\nHost: echo-svc\r\n\r\n")
                c.read_response()
    assert metric(sc, "hms_tls_handshakes_total", result="failed") == 2
    # The sidecar's service never saw those callers.
    assert metric(sc, "hms_requests_total", route="(inbound)", code="200") == 2


def test_sidecar_to_sidecar_is_mtls_with_the_callers_identity(uvicorn_app, echo_upstream,
                                                               register, gateway, mesh_certs):
    register(echo_service(allow_from=("caller-svc",)))
    sidecar(gateway, "echo-svc", echo_upstream.port, mtls=identity(mesh_certs, "echo-svc"))
    register("service: caller-svc\nroutes:\n  - GET /nothing\n")
    caller = sidecar(gateway, "caller-svc", closed_port(), mtls=identity(mesh_certs, "caller-svc"))
    r = httpraw.get(caller.egress_port, "/headers", headers={"host": "echo-svc"})
    assert r.status == 200, r
    assert [v for k, v in r.json()["headers"] if k == "x-hms-peer"] == [
        f"spiffe://{TRUST}/svc/caller-svc"]
    assert metric(caller, "hms_upstream_tls_handshakes_total", result="ok") == 1


def test_the_peer_must_be_the_service_called(echo_upstream, register, gateway, mesh_certs):
    register(echo_service())
    sc = sidecar(gateway, "echo-svc", echo_upstream.port, mtls=identity(mesh_certs, "echo-svc"))
    # Another service's route file pointing at echo-svc's sidecar.
    register(f"service: calc-svc\nroutes:\n  - GET /sum/{{a}}/{{b}}\nretries: 0\n"
             f"endpoints: [{sc.address}]\n")
    gw = gateway({"mtls": identity(mesh_certs, "hms-gateway")}, name="gw.yaml")
    r = httpraw.get(gw.port, "/sum/1/2")
    assert r.status == 502 and r.header("x-hms-reason") == "upstream_identity_mismatch", r
    assert httpraw.get(gw.port, "/headers").status == 200  # the right service still works


def test_a_gateway_without_an_identity_says_so(echo_upstream, register, gateway, mesh_certs):
    register(echo_service())
    sidecar(gateway, "echo-svc", echo_upstream.port, mtls=identity(mesh_certs, "echo-svc"))
    gw = gateway(name="gw.yaml")
    r = httpraw.get(gw.port, "/headers")
    assert r.status == 502 and r.header("x-hms-reason") == "no_mesh_identity", r
    assert json.loads(r.body)["reason"] == "no_mesh_identity"
