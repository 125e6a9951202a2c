"""TLS termination at the edge (docs/tls.md): versions, ALPN, SNI, resumption
on any core, bad TLS input, plain HTTP to the TLS port, certificate reload.

Clients are independent implementations: Python's ssl module (OpenSSL),
curl and openssl s_client from Debian."""
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest

import httpraw
from conftest import binary, echo_routes, eventually


def make_cert(d, name, names):
    """A self-signed P-256 certificate for `names` (the first is its CN), by openssl."""
    san = ",".join(f"DNS:{n}" for n in names)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", f"/CN={names[0]}",
                    "-addext", f"subjectAltName={san}", "-keyout", str(d / f"{name}.key"),
                    "-out", str(d / f"{name}.pem")], check=True, capture_output=True)
    return d / f"{name}.pem", d / f"{name}.key"


@pytest.fixture
def certs(tmp_path):
    d = tmp_path / "certs"
    d.mkdir()
    make_cert(d, "a", ["localhost", "a.test"])
    make_cert(d, "b", ["b.test", "*.wild.test"])
    return d


def tls_listener(certs, **extra):
    tls = {"cert": str(certs / "a.pem"), "key": str(certs / "a.key"),
           "sni_certs": [{"cert": str(certs / "b.pem"), "key": str(certs / "b.key")}]}
    tls.update(extra)
    return [{"address": "127.0.0.1:0", "tls": tls}]


@pytest.fixture
def tls_gateway(echo_upstream, register, gateway, certs):
    register(echo_routes(echo_upstream.port))
    return gateway({"listeners": tls_listener(certs), "header_timeout": "1s"})


def client_ctx(maximum=None, alpn=("http/1.1",)):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if maximum:
        ctx.maximum_version = maximum
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def served_cn(conn):
    der = conn.sock.getpeercert(binary_form=True)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"], input=der,
                         capture_output=True, check=True).stdout.decode()
    return out.strip().split("CN", 1)[1].strip(" =")


def metric(gw, name, labels=""):
    text = urllib.request.urlopen(f"http://127.0.0.1:{gw.admin_port}/metrics", timeout=5).read().decode()
    total = 0
    found = False
    for line in text.splitlines():
        if line.startswith(name + labels + " ") or (not labels and line.startswith(name + "{")):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    assert found, f"{name}{labels} not in /metrics"
    return total


def test_tls13_and_tls12_with_alpn_serve_requests(tls_gateway):
    for maximum, version in ((None, "TLSv1.3"), (ssl.TLSVersion.TLSv1_2, "TLSv1.2")):
        with httpraw.Conn(tls_gateway.port, tls=client_ctx(maximum)) as c:
            assert c.sock.version() == version
            assert c.sock.selected_alpn_protocol() == "http/1.1"
            for _ in range(2):  # keep-alive over TLS
                c.send(b"GET /headers HTTP/1.1\r\nHost: a.test\r\n\r\n")
                r = c.read_response()
                assert r.status == 200
                headers = dict(r.json()["headers"])
                assert headers["x-forwarded-proto"] == "https"


def test_a_client_asking_only_for_others_goes_on_without_alpn(tls_gateway):
    with httpraw.Conn(tls_gateway.port, tls=client_ctx(alpn=("spdy/3", "h2c"))) as c:
        assert c.sock.selected_alpn_protocol() is None
        c.send(b"GET /headers HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().status == 200


def test_older_versions_are_refused(tls_gateway):
    failed = metric(tls_gateway, "hms_tls_handshakes_total", '{result="failed"}')
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{tls_gateway.port}",
                          "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    assert out.returncode != 0
    assert "alert protocol version" in out.stderr, out.stderr  # the gateway's answer
    assert metric(tls_gateway, "hms_tls_handshakes_total", '{result="failed"}') == failed + 1


def test_sni_chooses_the_certificate(tls_gateway):
    for sni, cn in (("b.test", "b.test"), ("x.wild.test", "b.test"), ("a.test", "localhost"),
                    ("localhost", "localhost"), ("unknown.test", "localhost"), (None, "localhost")):
        with httpraw.Conn(tls_gateway.port, tls=client_ctx(), server_name=sni) as c:
            assert served_cn(c) == cn, sni
            c.send(b"GET /headers HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.read_response().status == 200


def test_curl_over_https(tls_gateway, certs):
    out = subprocess.run(
        ["curl", "-sS", "--cacert", str(certs / "b.pem"), "--resolve",
         f"b.test:{tls_gateway.port}:127.0.0.1", "-w", "\n%{http_code} %{http_version}",
         f"https://b.test:{tls_gateway.port}/headers"],
        capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    body, _, status = out.stdout.rpartition("\n")
    assert status == "200 2"  # ALPN offers h2 first (test_h2.py)
    assert ["x-forwarded-proto", "https"] in json.loads(body)["headers"]


def test_sessions_resume_whichever_core_a_client_lands_on(tls_gateway):
    for maximum in (None, ssl.TLSVersion.TLSv1_2):
        ctx = client_ctx(maximum)
        with httpraw.Conn(tls_gateway.port, tls=ctx) as c:
            c.send(b"GET /headers HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.read_response().status == 200  # TLS 1.3 tickets come after the handshake
            session = c.sock.session
        assert session is not None
        before = metric(tls_gateway, "hms_core_requests_total")
        per_core_before = core_requests(tls_gateway)
        for _ in range(24):
            with httpraw.Conn(tls_gateway.port, tls=ctx, session=session) as c:
                assert c.sock.session_reused, maximum
                c.send(b"GET /headers HTTP/1.1\r\nHost: x\r\n\r\n")
                assert c.read_response().status == 200
        assert metric(tls_gateway, "hms_core_requests_total") - before == 24
        per_core = core_requests(tls_gateway)
        # SO_REUSEPORT spread the 24 connections over both cores (all on one: p = 2^-23).
        assert all(per_core[k] > per_core_before.get(k, 0) for k in per_core), per_core
    assert metric(tls_gateway, "hms_tls_handshakes_total", '{result="resumed"}') >= 48


def core_requests(gw):
    text = urllib.request.urlopen(f"http://127.0.0.1:{gw.admin_port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("hms_core_requests_total{"):
            out[line.split("}")[0]] = float(line.rsplit(" ", 1)[1])
    assert len(out) == 2, out
    return out


def raw_exchange(port, data, wait):
    """Sends `data`, reads until the peer closes; returns (bytes, seconds)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=wait)
    t0 = time.monotonic()
    s.sendall(data)
    got = b""
    try:
        while True:
            b = s.recv(4096)
            if not b:
                break
            got += b
    except ConnectionResetError:
        pass
    finally:
        s.close()
    return got, time.monotonic() - t0


def test_bad_tls_input_closes_that_connection_only(tls_gateway):
    good = httpraw.Conn(tls_gateway.port, tls=client_ctx())
    good.send(b"GET /headers HTTP/1.1\r\nHost: x\r\n\r\n")
    assert good.read_response().status == 200
    failed_before = metric(tls_gateway, "hms_tls_handshakes_total", '{result="failed"}')
    # A handshake record with garbage inside, and bytes that are no record at all.
    got, took = raw_exchange(tls_gateway.port, b"\x16\x03\x01\x00\x05hello", 5)
    assert took < 1.0
    got, took = raw_exchange(tls_gateway.port, b"\x00\x01garbage garbage\r\n\r\n", 5)
    assert took < 1.0
    assert got[:1] in (b"", b"\x15")  # nothing, or an alert record
    # A ClientHello cut short, and a client that sends nothing: closed after
    # header_timeout (1 s), not before.
    hello_start = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(20)
    for data in (hello_start, b""):
        got, took = raw_exchange(tls_gateway.port, data, 10)
        assert got == b"" and 0.8 <= took < 4.0, (got, took)
    assert metric(tls_gateway, "hms_tls_handshakes_total", '{result="failed"}') >= failed_before + 3
    # The established connection was not touched.
    good.send(b"GET /headers HTTP/1.1\r\nHost: x\r\n\r\n")
    assert good.read_response().status == 200
    good.close()


def test_plain_http_to_the_tls_port_gets_a_clear_400(tls_gateway):
    got, _ = raw_exchange(tls_gateway.port, b"GET /headers HTTP/1.1\r\nHost: x\r\n\r\n", 5)
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"x-hms-reason: plain_http_to_tls_port" in head
    assert json.loads(body)["reason"] == "plain_http_to_tls_port"
    assert metric(tls_gateway, "hms_tls_handshakes_total", '{result="plain_http"}') == 1


def test_certificates_reload_when_their_files_change(tls_gateway, certs, tmp_path):
    with httpraw.Conn(tls_gateway.port, tls=client_ctx()) as before:
        assert served_cn(before) == "localhost"
        before.send(b"GET /headers HTTP/1.1\r\nHost: x\r\n\r\n")
        assert before.read_response().status == 200
        # A new certificate for the default slot, moved into place (key first:
        # a reload that sees a mismatched pair keeps the old one and retries).
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        make_cert(fresh, "a", ["renewed.test"])
        os.replace(fresh / "a.key", certs / "a.key")
        os.replace(fresh / "a.pem", certs / "a.pem")
        def cn_served():
            with httpraw.Conn(tls_gateway.port, tls=client_ctx()) as c:
                return served_cn(c)

        eventually(cn_served, lambda cn: cn == "renewed.test", timeout=10, interval=0.1,
                   what="the new certificate served")
        # The connection made before the reload goes on.
        before.send(b"GET /headers HTTP/1.1\r\nHost: x\r\n\r\n")
        assert before.read_response().status == 200


def test_a_bad_certificate_stops_the_start_with_the_file_named(certs, tmp_path, store_dir):
    (certs / "broken.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"listeners: [{{address: 127.0.0.1:0, tls: {{cert: {certs}/broken.pem, "
                   f"key: {certs}/a.key}}}}]\nadmin: off\nstore: file:{store_dir}\n")
    r = subprocess.run([str(binary("hms-gateway")), "--config", str(cfg)], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 1
    assert "broken.pem" in r.stderr and "listeners[0].tls" in r.stderr, r.stderr
    # The key of another certificate.
    cfg.write_text(f"listeners: [{{address: 127.0.0.1:0, tls: {{cert: {certs}/a.pem, "
                   f"key: {certs}/b.key}}}}]\nadmin: off\nstore: file:{store_dir}\n")
    r = subprocess.run([str(binary("hms-gateway")), "--config", str(cfg)], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 1
    assert "does not match" in r.stderr, r.stderr


def unread_bytes(server_port, client_port):
    """Bytes in the receive queue of the gateway's end of a loopback connection
    (/proc/net/tcp), None until the kernel lists it."""
    want = (f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}")
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if (fields[1], fields[2]) == want:
                return int(fields[4].split(":")[1], 16)
    return None


def test_a_client_hello_split_anywhere_is_still_tls(tls_gateway):
    """Only a connection's first byte tells plain HTTP from TLS: a ClientHello
    whose second segment starts with a letter is a handshake like any other."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx().wrap_bio(inc, out)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = out.read()
    cut = next(i for i in range(6, len(hello)) if 65 <= hello[i] <= 90)  # 'A'..'Z'
    s = socket.create_connection(("127.0.0.1", tls_gateway.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(hello[:cut])
    # Two segments, two receives: the second goes once the gateway has read the first.
    eventually(lambda: unread_bytes(tls_gateway.port, s.getsockname()[1]), lambda n: n == 0,
               what="the first segment read by the gateway")
    s.sendall(hello[cut:])
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            s.sendall(out.read())
            data = s.recv(65536)
            assert data, "closed during the handshake"
            inc.write(data)
    obj.write(b"GET /headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    s.sendall(out.read())
    got = b""
    while True:
        try:
            chunk = obj.read(65536)
            if not chunk:
                break  # close_notify
            got += chunk
        except ssl.SSLWantReadError:
            data = s.recv(65536)
            if not data:
                break
            inc.write(data)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            break
    s.close()
    assert got.startswith(b"HTTP/1.1 200 "), got[:200]


def test_tls_keepalive_allocates_nothing_after_warmup(nginx_upstream, register, gateway, certs):
    register(f"service: json-svc\nroutes:\n  - GET /json\nendpoints: [127.0.0.1:{nginx_upstream.port}]\n")
    gw = gateway({"listeners": tls_listener(certs), "cores": 1})
    with httpraw.Conn(gw.port, tls=client_ctx()) as c:
        def gets(n):
            for _ in range(n):
                c.send(b"GET /json HTTP/1.1\r\nHost: t\r\n\r\n")
                assert c.read_response().status == 200
        gets(500)  # warm-up: the session's buffers, pools, blocks
        before = metric(gw, "hms_core_heap_allocations_total")
        gets(1000)
        after = metric(gw, "hms_core_heap_allocations_total")
    assert after - before == 0, f"{after - before} heap allocations in 1000 warm TLS requests"
