"""HTTP/2 downstream (docs/http2.md): ALPN h2 on TLS listeners, h2c with prior
knowledge on plain ones, each stream an exchange with every stamp, toward
HTTP/1.1 upstreams.

Clients are independent implementations from Debian: curl (--http2,
--http2-prior-knowledge), nghttp2's h2load, and python3-h2 for what no
command-line client does on purpose (a stream reset mid-body, floods, a body
without content-length)."""
import json
import socket
import struct
import subprocess
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import jwt
import pytest

import httpraw
from conftest import RawUpstream, binary, echo_routes, eventually, log_lines, metric_sum
from test_upgrade import certs  # noqa: F401 (a fixture: one certificate for localhost)

CURL = "/usr/bin/curl"


def curl(*args, timeout=30):
    """curl's body, status, negotiated version and response headers (lowercase)."""
    r = subprocess.run([CURL, "-sS", "-k", "-D", "/dev/stderr", "-w", "\n%{http_code} %{http_version}",
                        *map(str, args)], capture_output=True, timeout=timeout)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    out = r.stdout
    body, _, tail = out.rpartition(b"\n")
    status, version = tail.decode().split()
    headers = {}
    for line in r.stderr.decode(errors="replace").splitlines():
        if ":" in line and not line.startswith("HTTP/"):
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return body, int(status), version, headers


def h2c(gw, path, *args):
    return curl("--http2-prior-knowledge", f"http://127.0.0.1:{gw.port}{path}", *args)


def tls_listener(certs, **extra):
    listener = {"address": "127.0.0.1:0",
                "tls": {"cert": str(certs / "a.pem"), "key": str(certs / "a.key")}}
    listener.update(extra)
    return [listener]


# ------------------------------------------------------------------ negotiation


def test_h2c_prior_knowledge_is_served_with_authority_as_host(echo_gateway):
    body, status, version, headers = h2c(echo_gateway, "/headers?a=1")
    assert (status, version) == (200, "2")
    seen = json.loads(body)
    fields = dict(seen["headers"])
    assert seen["path"] == "/headers" and seen["query"] == "a=1"
    assert fields["host"] == f"127.0.0.1:{echo_gateway.port}"  # from :authority
    assert "te" not in fields and "connection" not in fields
    assert fields["x-forwarded-proto"] == "http"
    assert len(headers["x-trace-id"]) == 32


def test_trace_ids_are_never_indexed(echo_gateway):
    # A value new in every answer would only churn both HPACK tables
    # (RFC 7541 §7.1.3); the fields that repeat stay indexable.
    c = H2Client(echo_gateway.port)
    try:
        r = c.wait(c.request("GET", "/headers"))
    finally:
        c.close()
    assert r["status"] == 200
    assert "x-trace-id" in r["never_indexed"], r["never_indexed"]
    assert "content-type" not in r["never_indexed"]


def test_alpn_offers_h2_first_on_tls(echo_upstream, register, gateway, certs):
    register(echo_routes(echo_upstream.port))
    gw = gateway({"listeners": tls_listener(certs)})
    body, status, version, _ = curl("--http2", f"https://localhost:{gw.port}/headers",
                                    "--resolve", f"localhost:{gw.port}:127.0.0.1")
    assert (status, version) == (200, "2")
    assert dict(json.loads(body)["headers"])["x-forwarded-proto"] == "https"
    # HTTP/1.1 clients are served on the same listener as before.
    _, status, version, _ = curl("--http1.1", f"https://localhost:{gw.port}/headers",
                                 "--resolve", f"localhost:{gw.port}:127.0.0.1")
    assert (status, version) == (200, "1.1")


def test_a_large_answer_under_flow_control_over_tls(echo_upstream, register, gateway, certs,
                                                    tmp_path):
    # 13 MiB through the client's 64 KiB stream window, both ways: the
    # stream stops reading its upstream while its queue is full and is
    # resumed as the client opens its window (OnSendable).
    register(echo_routes(echo_upstream.port))
    gw = gateway({"listeners": tls_listener(certs)})
    url = f"https://localhost:{gw.port}"
    resolve = ["--resolve", f"localhost:{gw.port}:127.0.0.1"]
    body, status, version, _ = curl("--http2", f"{url}/stream?n=200&size=65536", *resolve,
                                    timeout=120)
    assert (status, version, len(body)) == (200, "2", 200 * 65536)
    assert body[-65536:-65532] == b"0199"
    data = bytes(range(256)) * 16384  # 4 MiB
    f = tmp_path / "up"
    f.write_bytes(data)
    body, status, version, _ = curl("--http2", f"{url}/echo", *resolve, "--data-binary", f"@{f}",
                                    "-H", "content-type: application/octet-stream", timeout=120)
    assert (status, version) == (200, "2") and body == data


def test_a_listener_may_turn_h2_off(echo_upstream, register, gateway, certs):
    register(echo_routes(echo_upstream.port))
    gw = gateway({"listeners": tls_listener(certs, http2=False) + [
        {"address": "127.0.0.1:0", "http2": False}]})
    _, status, version, _ = curl("--http2", f"https://localhost:{gw.ports[0]}/headers",
                                 "--resolve", f"localhost:{gw.ports[0]}:127.0.0.1")
    assert (status, version) == (200, "1.1")
    # The preface is then an HTTP/1.1 request line with a bad version, as before.
    with httpraw.Conn(gw.ports[1]) as conn:
        conn.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        r = conn.read_response()
    assert r.status == 400 and r.header("x-hms-reason") == "bad_version"


# ------------------------------------------------------------------ bodies


@pytest.mark.parametrize("size", [100, 300 * 1024])
def test_post_bodies_both_ways(echo_gateway, tmp_path, size):
    data = bytes((i * 7 + 3) % 251 for i in range(size))
    f = tmp_path / "body"
    f.write_bytes(data)
    body, status, version, headers = h2c(echo_gateway, "/echo", "--data-binary", f"@{f}",
                                         "-H", "content-type: application/octet-stream")
    assert (status, version) == (200, "2")
    assert body == data


def test_chunked_answer_streams_as_data(echo_gateway):
    body, status, version, _ = h2c(echo_gateway, "/stream?n=100&size=4096")
    assert (status, version) == (200, "2")
    assert len(body) == 100 * 4096
    assert body[:4] == b"0000" and body[-4096:-4092] == b"0099"


def test_nginx_answer_over_h2(nginx_upstream, register, gateway):
    register(f"service: json-svc\nroutes:\n  - GET /json\nendpoints: [127.0.0.1:{nginx_upstream.port}]\n")
    gw = gateway()
    body, status, version, headers = h2c(gw, "/json")
    assert (status, version, body) == (200, "2", b'{"ok":true}')
    assert headers["content-length"] == "11"


class H2Client:
    """A python3-h2 client on one plain connection (prior knowledge)."""

    def __init__(self, port, settings=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.flush()
        self.responses = {}  # stream id → {"status", "headers", "body", "ended", "reset"}
        self.goaway = None

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, method, path, body=None, end=True, headers=()):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", method), (":scheme", "http"),
                                     (":authority", "localhost"), (":path", path), *headers],
                               end_stream=end and body is None)
        self.responses[sid] = {"status": None, "headers": {}, "body": b"", "ended": False,
                               "reset": None, "trailers": {}}
        if body is not None:
            self.send_body(sid, body, end)
        self.flush()
        return sid

    def send_body(self, sid, body, end):
        while body:
            n = min(len(body), self.conn.local_flow_control_window(sid),
                    self.conn.max_outbound_frame_size)
            if n == 0:
                self.pump()
                continue
            self.conn.send_data(sid, body[:n])
            body = body[n:]
            self.flush()
        if end:
            self.conn.end_stream(sid)
        self.flush()

    def pump(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        for ev in self.conn.receive_data(data):
            r = self.responses.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.ResponseReceived):
                hs = {k.decode(): v.decode() for k, v in ev.headers}
                r["status"], r["headers"] = int(hs[":status"]), hs
                r["never_indexed"] = {h[0].decode() for h in ev.headers
                                      if isinstance(h, hpack.NeverIndexedHeaderTuple)}
            elif isinstance(ev, h2.events.DataReceived):
                r["body"] += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.InformationalResponseReceived):
                r["interim"] = [int(v) for k, v in ev.headers if k == b":status"][0]
            elif isinstance(ev, h2.events.TrailersReceived):
                r["trailers"] = {k.decode(): v.decode() for k, v in ev.headers}
            elif isinstance(ev, h2.events.StreamEnded):
                r["ended"] = True
            elif isinstance(ev, h2.events.StreamReset) and r is not None:
                r["reset"] = ev.error_code
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = ev.error_code
        self.flush()

    def wait(self, sid, timeout=10):
        deadline = time.monotonic() + timeout
        r = self.responses[sid]
        while not (r["ended"] or r["reset"] is not None):
            assert time.monotonic() < deadline, f"stream {sid} unanswered: {r}"
            self.pump()
        return r

    def close(self):
        self.sock.close()


def test_expect_100_continue_over_h2(echo_gateway):
    c = H2Client(echo_gateway.port)
    try:
        data = b"z" * 5000
        sid = c.request("POST", "/echo", end=False,
                        headers=[("content-length", str(len(data))), ("expect", "100-continue")])
        r = c.responses[sid]
        while "interim" not in r:
            c.pump()
        assert r["interim"] == 100 and r["status"] is None
        c.send_body(sid, data, True)
        r = c.wait(sid)
        assert r["status"] == 200 and r["body"] == data
    finally:
        c.close()


def test_body_without_content_length_goes_chunked(echo_gateway):
    c = H2Client(echo_gateway.port)
    try:
        data = b"abc" * 30000
        sid = c.request("POST", "/echo", body=data)
        r = c.wait(sid)
        assert r["status"] == 200 and r["body"] == data
    finally:
        c.close()


def test_a_reset_stream_ends_only_its_exchange(echo_gateway):
    c = H2Client(echo_gateway.port)
    try:
        # A stream resets mid-body; another on the same connection goes on.
        half = c.request("POST", "/echo", body=b"x" * 1000, end=False,
                         headers=[("content-length", "100000")])
        slow = c.request("GET", "/slow?ms=300")
        c.conn.reset_stream(half, error_code=8)  # CANCEL
        c.flush()
        r = c.wait(slow)
        assert r["status"] == 200 and json.loads(r["body"]) == {"slept_ms": 300}
        again = c.request("GET", "/headers")
        assert c.wait(again)["status"] == 200
        # No stream is left holding a slot (the reset one included).
        eventually(lambda: metric_sum(echo_gateway, "hms_h2_streams_open"), lambda n: n == 0,
                   what="no stream open")
    finally:
        c.close()


def test_many_streams_on_few_connections_with_h2load(echo_gateway):
    r = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "10",
                        f"http://127.0.0.1:{echo_gateway.port}/headers"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2000 succeeded, 0 failed, 0 errored" in r.stdout, r.stdout
    assert "status codes: 2000 2xx" in r.stdout, r.stdout


RAW_ANSWERS = {
    "/trailers": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
                 b"Trailer: x-checksum\r\n\r\n5\r\nhello\r\n6\r\n world\r\n"
                 b"0\r\nx-checksum: abc123\r\nContent-Type: text/evil\r\nx-count: 2\r\n"
                 b"Set-Cookie: s=1\r\nx-trace-id: forged\r\n\r\n",
    "/until-close": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"c" * 100000,
    "/many-trailers": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n"
                      + b"set-cookie: s=1\r\n" * 16 + b"grpc-status: 13\r\n\r\n",
}


@pytest.fixture
def raw_upstream():
    """An HTTP/1.1 upstream in plain Python for the framings the echo app does
    not write: a chunked answer with trailers, and a body its close delimits.
    Each connection gets one answer (by path) and is closed."""
    up = RawUpstream(lambda head: RAW_ANSWERS.get(
        RawUpstream.path_of(head), b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
    yield up.port
    up.close()


def test_forbidden_trailers_do_not_push_the_kept_ones_out(raw_upstream, register, gateway):
    # At most 16 trailer fields go on, counted after the filter: sixteen
    # set-cookie first (forbidden in trailers) leave grpc-status its place.
    register("service: raw-svc\nroutes:\n  - GET /many-trailers\n"
             f"endpoints: [127.0.0.1:{raw_upstream}]\n")
    gw = gateway()
    c = H2Client(gw.port)
    try:
        r = c.wait(c.request("GET", "/many-trailers"))
    finally:
        c.close()
    assert (r["status"], r["body"]) == (200, b"hi"), r
    assert r["trailers"] == {"grpc-status": "13"}, r["trailers"]


class ChunkedEchoUpstream(RawUpstream):
    """An HTTP/1.1 upstream that reads a whole chunked request with a body
    (one connection at a time) and answers 200 with the trailer section it
    got, as sent (the bytes after the last chunk's "0\\r\\n")."""

    def _handle(self, conn):
        with conn:
            conn.settimeout(10)
            data = b""
            try:
                while True:
                    body = data.partition(b"\r\n\r\n")[2]
                    if b"\r\n0\r\n" in body and body.endswith(b"\r\n\r\n"):
                        break
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                trailers = body[body.index(b"\r\n0\r\n") + 5:]
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(trailers), trailers))
            except OSError:
                return
        self.answered.set()


def test_an_h2_clients_trailers_to_an_http1_upstream_are_filtered(register, gateway):
    # The gateway frames the last chunk itself: a trailer must not speak in
    # its name (x-hms-peer, x-forwarded-for), nor carry what RFC 9110 §6.5.1
    # forbids in trailers (authorization, content-length); x-checksum goes on.
    up = ChunkedEchoUpstream(None)
    try:
        register("service: chunked-echo\nroutes:\n  - POST /sink\n"
                 f"endpoints: [127.0.0.1:{up.port}]\n")
        gw = gateway()
        c = H2Client(gw.port)
        try:
            sid = c.request("POST", "/sink", body=b"hello", end=False)
            c.conn.send_headers(sid, [("x-checksum", "abc"), ("x-hms-peer", "spiffe://forged"),
                                      ("x-forwarded-for", "10.6.6.6"),
                                      ("authorization", "Bearer forged"),
                                      ("content-length", "99")], end_stream=True)
            c.flush()
            r = c.wait(sid)
        finally:
            c.close()
    finally:
        up.close()
    assert r["status"] == 200, r
    assert r["body"] == b"x-checksum: abc\r\n\r\n", r["body"]


def test_upstream_framings_become_h2_data_and_trailers(raw_upstream, bad_upstream, register,
                                                       gateway):
    register("service: raw-svc\nroutes:\n  - GET /trailers\n  - GET /until-close\n"
             f"endpoints: [127.0.0.1:{raw_upstream}]\n")
    register("service: bad-svc\nroutes:\n  - GET /reset\n"
             f"endpoints: [127.0.0.1:{bad_upstream.port}]\n")
    gw = gateway()
    c = H2Client(gw.port)
    try:
        r = c.wait(c.request("GET", "/trailers"))
        assert (r["status"], r["body"]) == (200, b"hello world")
        # Those RFC 9110 §6.5.1 forbids in trailers, and x-trace-id, are left out.
        assert r["trailers"] == {"x-checksum": "abc123", "x-count": "2"}, r["trailers"]
        assert "transfer-encoding" not in r["headers"]
        r = c.wait(c.request("GET", "/until-close"))
        assert (r["status"], len(r["body"])) == (200, 100000)
        assert r["body"] == b"c" * 100000
        # The upstream resets mid-body: the stream is reset (the client must
        # not take a short body for a whole one), the connection goes on.
        r = c.wait(c.request("GET", "/reset"))
        assert r["reset"] == 2, r["reset"]  # INTERNAL_ERROR
        assert c.wait(c.request("GET", "/trailers"))["status"] == 200
    finally:
        c.close()


# ------------------------------------------------------------------ stamps


def test_jwt_refusal_over_h2(echo_upstream, register, gateway, tmp_path):
    secret = tmp_path / "jwt-secret"
    secret.write_text("s3cret-for-the-h2-tests-32-bytes-long\n")
    register("service: echo-svc\nroutes:\n  - path: /headers\n    methods: [GET]\n"
             f"endpoints: [127.0.0.1:{echo_upstream.port}]\n")
    gw = gateway({"jwt": {"issuer": "https://iss.test", "audience": "hms",
                          "hs256_secret_file": str(secret)}})
    body, status, version, headers = h2c(gw, "/headers")
    assert (status, version) == (401, "2")
    assert headers["x-hms-reason"] == "jwt_missing_token"
    assert json.loads(body)["reason"] == "jwt_missing_token"
    assert headers["www-authenticate"].startswith("Bearer")
    now = int(time.time())
    tok = jwt.encode({"sub": "a", "iss": "https://iss.test", "aud": "hms", "exp": now + 60},
                     "s3cret-for-the-h2-tests-32-bytes-long", algorithm="HS256")
    _, status, _, _ = h2c(gw, "/headers", "-H", f"authorization: Bearer {tok}")
    assert status == 200


def test_rate_limit_over_one_h2_connection(nginx_upstream, register, gateway):
    register(f"service: json-svc\nroutes:\n  - GET /json\nrate_limit: \"20 req/min\"\n"
             f"endpoints: [127.0.0.1:{nginx_upstream.port}]\n")
    gw = gateway()
    c = H2Client(gw.port)
    try:
        answers = [c.wait(c.request("GET", "/json")) for _ in range(30)]
    finally:
        c.close()
    statuses = [a["status"] for a in answers]
    assert statuses.count(200) == 20 and statuses.count(429) == 10, statuses
    last = answers[-1]
    assert last["headers"]["x-hms-reason"] == "rate_limited"
    assert json.loads(last["body"])["reason"] == "rate_limited"
    assert last["headers"]["ratelimit-limit"] == "20"


def test_paths_are_held_to_the_http1_rules(echo_gateway):
    for path in ["/x/../headers", "/headers/%2e%2e/echo", "/a/%2f/b"]:
        h1 = httpraw.get(echo_gateway.port, path)
        body, status, version, headers = h2c(echo_gateway, path, "--path-as-is")
        assert version == "2"
        assert status == h1.status, (path, status, h1.status)
        assert headers.get("x-hms-reason") == h1.header("x-hms-reason"), path


def test_access_log_and_metrics_say_the_protocol(echo_upstream, register, gateway, tmp_path):
    register(echo_routes(echo_upstream.port))
    log = tmp_path / "access.log"
    gw = gateway({"access_log": {"path": str(log)}})
    assert h2c(gw, "/headers")[1] == 200
    assert httpraw.get(gw.port, "/headers").status == 200
    lines = eventually(lambda: log_lines(log), lambda ls: len(ls) >= 2, what="two log lines")
    assert sorted(line["protocol"] for line in lines) == ["HTTP/1.1", "HTTP/2"]
    assert metric_sum(gw, "hms_downstream_requests_total", protocol="HTTP/2") == 1
    assert metric_sum(gw, "hms_downstream_requests_total", protocol="HTTP/1.1") == 1
    assert metric_sum(gw, "hms_h2_sessions_total") == 1
    assert metric_sum(gw, "hms_h2_streams_total") == 1


def test_drain_sends_goaway_and_lets_open_streams_finish(echo_gateway):
    # nghttp prints the frames it receives: the GOAWAY, then the open
    # stream's answer, whole.
    nghttp = subprocess.Popen(["nghttp", "-v", f"http://127.0.0.1:{echo_gateway.port}/slow?ms=1500"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        eventually(lambda: metric_sum(echo_gateway, "hms_h2_streams_open"), lambda n: n == 1,
                   what="the stream open")
        echo_gateway.proc.send_signal(15)
        out = nghttp.communicate(timeout=20)[0]
    finally:
        if nghttp.poll() is None:
            nghttp.kill()
            nghttp.wait()
    assert "recv GOAWAY frame" in out and "error_code=NO_ERROR" in out, out
    assert '{"slept_ms":1500}' in out, out
    assert out.index("recv GOAWAY frame") < out.index('{"slept_ms":1500}'), out


def warm_streams(c, path, n, at_once):
    """n GETs of `path` on the H2Client `c`, `at_once` streams at a time, each answered 200."""
    for _ in range(n // at_once):
        sids = [c.request("GET", path) for _ in range(at_once)]
        for sid in sids:
            assert c.wait(sid)["status"] == 200
            del c.responses[sid]


def test_warm_h2_streams_allocate_nothing(nginx_upstream, register, gateway):
    # As test_engine's keep-alive test, for streams: one connection, ten
    # streams at a time; after a warm-up no stream takes from the heap
    # (nghttp2's memory and the sessions' are the core's counted pool).
    register(f"service: json-svc\nroutes:\n  - GET /json\nendpoints: [127.0.0.1:{nginx_upstream.port}]\n")
    gw = gateway({"cores": 1})
    # The gateway's HPACK encoder keeps up to 4 KiB of fields it may send
    # again (a Date a second fills it in about a minute): a connection's
    # bounded warm-up that this test's seconds cannot reach, so the client
    # asks for no dynamic table (SETTINGS_HEADER_TABLE_SIZE 0).
    c = H2Client(gw.port, settings={h2.settings.SettingCodes.HEADER_TABLE_SIZE: 0})

    def streams(n, at_once):
        warm_streams(c, "/json", n, at_once)

    try:
        # The pools grow to the most streams ever open at once: the warm-up
        # opens more at once than the measured run does, so that a slow
        # client (a loaded machine) cannot make the measured run a new peak.
        streams(1000, 50)
        streams(500, 10)
        before = metric_sum(gw, "hms_core_heap_allocations_total")
        streams(1000, 10)
        after = metric_sum(gw, "hms_core_heap_allocations_total")
    finally:
        c.close()
    assert after - before == 0, f"{after - before} heap allocations in 1000 warm streams"
    assert metric_sum(gw, "hms_downstream_requests_total", protocol="HTTP/2") == 2500


# ------------------------------------------------------------------ limits and floods


def check(tmp_path, listener):
    path = tmp_path / "gateway.yaml"
    path.write_text(f"listeners:\n  - {json.dumps(listener)}\nadmin: off\n")
    r = subprocess.run([str(binary("hms-gateway")), "--config", str(path), "--check"],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    return path, r


@pytest.mark.parametrize("http2, message", [
    ({"max_concurrent_streams": 0}, "listeners[0].http2.max_concurrent_streams"),
    ({"stream_window_bytes": "1KiB"}, "listeners[0].http2.stream_window_bytes"),
    ({"connection_window_bytes": "4GiB"}, "listeners[0].http2.connection_window_bytes"),
    ({"max_header_list_bytes": "2MiB"}, "listeners[0].http2.max_header_list_bytes"),
    ({"header_table_bytes": "1MiB"}, "listeners[0].http2.header_table_bytes"),
    ({"max_streams": 10}, "listeners[0].http2"),
    ({"resets": {"burst": 100}}, "listeners[0].http2.resets: needs both"),
    ({"resets": {"burst": 0, "per_second": 5}}, "listeners[0].http2.resets"),
    ({"control_frames": {"burst": 5, "per_second": 5}}, "listeners[0].http2.control_frames"),
    ({"max_continuations": 0}, "listeners[0].http2.max_continuations"),
    ({"max_empty_frames": 5000}, "listeners[0].http2.max_empty_frames"),
    ("sometimes", "listeners[0].http2"),
])
def test_bad_h2_limits_are_refused_with_their_line(tmp_path, http2, message):
    path, r = check(tmp_path, {"address": "127.0.0.1:0", "http2": http2})
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"{path}:2: {message}" in r.stderr, r.stderr


def test_listener_limits_reach_the_settings(echo_upstream, register, gateway):
    register(echo_routes(echo_upstream.port))
    gw = gateway({"listeners": [{"address": "127.0.0.1:0", "http2": {
        "max_concurrent_streams": 7, "stream_window_bytes": "128KiB",
        "max_header_list_bytes": "8KiB"}}]})
    c = H2Client(gw.port)
    try:
        c.wait(c.request("GET", "/headers"))
        remote = c.conn.remote_settings
        assert remote.max_concurrent_streams == 7
        assert remote.initial_window_size == 128 * 1024
        assert remote.max_header_list_size == 8 * 1024
        # Over the header list size: 431, naming the rule, the connection goes on.
        big = c.wait(c.request("GET", "/headers", headers=[("x-big", "a" * 9000)]))
        assert big["status"] == 431 and big["headers"]["x-hms-reason"] == "headers_too_large"
        assert c.wait(c.request("GET", "/headers"))["status"] == 200
    finally:
        c.close()


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", sid) + payload


def goaway_code(sock, timeout=10):
    """Reads frames until a GOAWAY; its error code (None if the connection
    closed without one)."""
    sock.settimeout(timeout)
    buf = b""
    while True:
        while len(buf) >= 9:
            n = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + n:
                break
            kind, payload, buf = buf[3], buf[9:9 + n], buf[9 + n:]
            if kind == 7:
                return int.from_bytes(payload[4:8], "big")
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return None
        if not data:
            return None
        buf += data


def flood(port, frames):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        try:
            sock.sendall(PREFACE + frame(4, 0, 0) + frames)
        except (BrokenPipeError, ConnectionResetError):
            pass  # ended mid-flood: the GOAWAY may still be read
        return goaway_code(sock)
    finally:
        sock.close()


def rapid_resets(n):
    enc = hpack.Encoder()
    out = []
    for i in range(n):
        sid = 2 * i + 1
        block = enc.encode([(":method", "GET"), (":scheme", "http"), (":authority", "x"),
                            (":path", "/nothing-here")])
        out.append(frame(1, 0x5, sid, block) + frame(3, 0, sid, struct.pack(">I", 8)))
    return b"".join(out)


FLOODS = {
    "rapid_reset": lambda: rapid_resets(2500),
    "ping": lambda: b"".join(frame(6, 0, 0, struct.pack(">Q", i)) for i in range(2000)),
    "settings": lambda: frame(4, 0, 0) * 2000,
}


@pytest.mark.parametrize("what, counter", [
    ("rapid_reset", "hms_h2_flood_resets_total"),
    ("ping", "hms_h2_flood_control_frames_total"),
    ("settings", "hms_h2_flood_control_frames_total"),
])
def test_floods_end_only_their_connection(echo_gateway, what, counter):
    calm = H2Client(echo_gateway.port)  # a well-behaved client, before and after
    try:
        assert calm.wait(calm.request("GET", "/headers"))["status"] == 200
        assert flood(echo_gateway.port, FLOODS[what]()) == 0xb, \
            f"{what}: no GOAWAY(ENHANCE_YOUR_CALM)"
        assert metric_sum(echo_gateway, counter) == 1, what
        for _ in range(20):
            assert calm.wait(calm.request("GET", "/headers"))["status"] == 200
        assert h2c(echo_gateway, "/headers")[1] == 200  # and a new connection
    finally:
        calm.close()


def continuation_flood(n):
    """A request's header block split over HEADERS and n CONTINUATIONs."""
    enc = hpack.Encoder()
    head = enc.encode([(":method", "GET"), (":scheme", "http"), (":authority", "x"),
                       (":path", "/headers")])
    out = frame(1, 0x1, 1, head)  # END_STREAM, no END_HEADERS
    for i in range(n):
        out += frame(9, 0x4 if i == n - 1 else 0, 1, enc.encode([("x-pad", str(i))]))
    return out


def empty_frames(n):
    enc = hpack.Encoder()
    head = enc.encode([(":method", "POST"), (":scheme", "http"), (":authority", "x"),
                       (":path", "/echo")])
    return frame(1, 0x4, 1, head) + frame(0, 0, 1) * n  # DATA without payload or END_STREAM


@pytest.mark.parametrize("what, frames, counter", [
    ("continuation", lambda: continuation_flood(50), "hms_h2_flood_continuations_total"),
    ("empty_frames", lambda: empty_frames(100), "hms_h2_flood_empty_frames_total"),
])
def test_more_floods_end_only_their_connection(echo_gateway, what, frames, counter):
    calm = H2Client(echo_gateway.port)
    try:
        assert calm.wait(calm.request("GET", "/headers"))["status"] == 200
        assert flood(echo_gateway.port, frames()) == 0xb, f"{what}: no GOAWAY(ENHANCE_YOUR_CALM)"
        assert metric_sum(echo_gateway, counter) == 1, what
        for _ in range(20):
            assert calm.wait(calm.request("GET", "/headers"))["status"] == 200
        assert h2c(echo_gateway, "/headers")[1] == 200
    finally:
        calm.close()


def test_an_hpack_bomb_is_431_and_the_connection_goes_on(echo_gateway):
    """A 3000-byte field indexed once, then referenced 1000 times: about
    4 KB on the wire that decode to 3 MB. Decoding stops counting at
    max_header_list_bytes; the stream is answered 431, the HPACK state stays
    in step, and other clients are served throughout."""
    calm = H2Client(echo_gateway.port)
    bomber = H2Client(echo_gateway.port)
    try:
        assert calm.wait(calm.request("GET", "/headers"))["status"] == 200
        before = metric_sum(echo_gateway, "hms_h2_header_lists_too_large_total") or 0
        sid = bomber.conn.get_next_available_stream_id()
        fields = [(":method", "GET"), (":scheme", "http"), (":authority", "x"),
                  (":path", "/headers")] + [("x-bomb", "q" * 3000)] * 1000
        block = bomber.conn.encoder.encode(fields)
        assert len(block) < 5000
        bomber.sock.sendall(frame(1, 0x5, sid, block))  # sent raw: python3-h2 checks sizes
        got = b""
        bomber.sock.settimeout(10)
        while b"headers_too_large" not in got:
            data = bomber.sock.recv(65536)
            assert data, "closed instead of answering 431"
            got += data
        assert metric_sum(echo_gateway, "hms_h2_header_lists_too_large_total") == before + 1
        for _ in range(5):
            assert calm.wait(calm.request("GET", "/headers"))["status"] == 200
        assert h2c(echo_gateway, "/headers")[1] == 200
    finally:
        calm.close()
        bomber.close()


@pytest.mark.parametrize("limits, frames, counter", [
    ({"max_continuations": 2}, lambda: continuation_flood(4), "hms_h2_flood_continuations_total"),
    ({"max_empty_frames": 2}, lambda: empty_frames(5), "hms_h2_flood_empty_frames_total"),
    ({"resets": {"burst": 10, "per_second": 1}}, lambda: rapid_resets(30),
     "hms_h2_flood_resets_total"),
    ({"control_frames": {"burst": 20, "per_second": 1}},
     lambda: b"".join(frame(6, 0, 0, struct.pack(">Q", i)) for i in range(40)),
     "hms_h2_flood_control_frames_total"),
], ids=["max_continuations", "max_empty_frames", "resets", "control_frames"])
def test_flood_thresholds_are_listener_keys(echo_upstream, register, gateway, limits, frames,
                                            counter):
    """Each threshold, set below its default, trips on a flood the default
    lets pass; a well-behaved client on that listener is still served."""
    register(echo_routes(echo_upstream.port))
    gw = gateway({"listeners": [{"address": "127.0.0.1:0", "http2": limits}]})
    assert flood(gw.port, frames()) == 0xb
    assert metric_sum(gw, counter) == 1
    c = H2Client(gw.port)
    try:
        for _ in range(5):
            assert c.wait(c.request("GET", "/headers"))["status"] == 200
    finally:
        c.close()
