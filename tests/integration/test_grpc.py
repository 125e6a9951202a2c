"""gRPC through the gateway (docs/http2.md "gRPC"): a gRPC twin of
calc-svc in python3-grpcio (grpc_calc.py) behind a route with
`protocol: h2c`, called by grpcio clients over h2c: unary and streaming
calls with their trailers, grpc-timeout as the deadline and written back
with the time left, the gateway's own answers as gRPC statuses, and retries
only on the statuses the service lists."""
import threading

import h2.config
import h2.connection
import h2.events
import pytest

from conftest import closed_port, echo_routes, metric_sum
from test_mtls import identity, mesh_certs  # noqa: F401 (mesh_certs: a fixture)
from test_sidecar import sidecar

grpc = pytest.importorskip("grpc", reason="python3-grpcio is not installed")
import grpc_calc  # noqa: E402 (needs grpc)


@pytest.fixture
def calc_grpc():
    with grpc_calc.serve() as port:
        yield port


GRPC_ROUTES = """service: calc-grpc
routes:
  - POST /calc.Calc/{{method}}
protocol: h2c
retries: 0
endpoints: [127.0.0.1:{port}]
"""


def calc_routes(port, extra="", route_extra=""):
    """calc-grpc with `extra` service keys and `route_extra` keys on its route."""
    return ("service: calc-grpc\nroutes:\n  - path: /calc.Calc/{method}\n    methods: [POST]\n"
            f"{route_extra}protocol: h2c\nendpoints: [127.0.0.1:{port}]\n{extra}")


def channel(gw):
    return grpc.insecure_channel(f"127.0.0.1:{gw.port}")


def unary(ch, method):
    return ch.unary_unary(f"/calc.Calc/{method}", request_serializer=lambda b: b,
                          response_deserializer=lambda b: b)


def call_error(gw, method, body=b"\x01", timeout=10):
    """The RpcError a call ends with (fails the test if it succeeds)."""
    with channel(gw) as ch:
        with pytest.raises(grpc.RpcError) as e:
            unary(ch, method)(body, timeout=timeout)
    return e.value


def raw_call(port, path, headers, body=b"\x00\x00\x00\x00\x01\x05", timeout=10,
             method="POST"):
    """One call over python3-h2 with exactly `headers` (no client deadline of
    its own): the response's headers and trailers as one dict."""
    import socket
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    got, done = {}, False
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        conn.initiate_connection()
        conn.send_headers(1, [(":method", method), (":scheme", "http"), (":path", path),
                              (":authority", "calc"), ("content-type", "application/grpc"),
                              ("te", "trailers"), *headers])
        if body:
            conn.send_data(1, body, end_stream=True)
        else:
            conn.end_stream(1)
        s.sendall(conn.data_to_send())
        while not done:
            data = s.recv(65536)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                    got.update({k.decode(): v.decode() for k, v in ev.headers})
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, 1)
                elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                    done = True
            s.sendall(conn.data_to_send())
    return got


@pytest.mark.deadline(60)
def test_grpc_unary_and_streaming_calls_through_the_gateway(calc_grpc, register, gateway):
    register(GRPC_ROUTES.format(port=calc_grpc))
    gw = gateway()
    with channel(gw) as ch:
        ident = lambda b: b  # noqa: E731 (raw-bytes messages)
        total = ch.unary_unary("/calc.Calc/Sum", request_serializer=ident,
                               response_deserializer=ident)
        assert total(bytes([2, 3]), timeout=10) == bytes([5])
        count = ch.stream_stream("/calc.Calc/Count", request_serializer=ident,
                                 response_deserializer=ident)
        got = list(count(iter([b"a", b"bb", b"ccc" * 100]), timeout=10))
        assert got == [bytes([1]), bytes([2]), bytes([44])]  # 300 % 256
        fail = ch.unary_unary("/calc.Calc/Fail", request_serializer=ident,
                              response_deserializer=ident)
        with pytest.raises(grpc.RpcError) as e:
            fail(b"\x01\x02", timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        assert e.value.details() == "down 100% for now"


@pytest.mark.deadline(60)
def test_grpc_calls_in_parallel_share_the_upstream_connection(calc_grpc, register, gateway):
    register(GRPC_ROUTES.format(port=calc_grpc))
    gw = gateway()
    errors = []

    def caller(k):
        try:
            with channel(gw) as ch:
                total = ch.unary_unary("/calc.Calc/Sum", request_serializer=lambda b: b,
                                       response_deserializer=lambda b: b)
                for i in range(20):
                    assert total(bytes([k, i]), timeout=10) == bytes([k + i])
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert metric_sum(gw, "hms_upstream_connections_total") <= 2 * gw.cores


@pytest.mark.deadline(60)
def test_grpc_timeout_is_the_deadline_and_goes_upstream_with_the_time_left(calc_grpc, register,
                                                                          gateway):
    register(calc_routes(calc_grpc))
    gw = gateway()
    with channel(gw) as ch:
        # The caller's 3 s reach the service as what is left of them.
        left = int(unary(ch, "Deadline")(b"\x00", timeout=3))
        # (grpcio's server reads its clock a few ms apart from ours.)
        assert 1000 < left <= 3050, left
        # Without one, the route's deadline (15 s by default) is sent.
        left = int(unary(ch, "Deadline")(b"\x00"))
        assert 10_000 < left <= 15_000, left


@pytest.mark.deadline(60)
def test_the_gateway_ends_a_call_at_its_grpc_timeout(echo_upstream, register, gateway):
    # An upstream that ignores grpc-timeout (the HTTP echo app's /slow):
    # the gateway ends the call at the caller's 300 ms, not the route's
    # 15 s, and answers as gRPC: DEADLINE_EXCEEDED, the rule named.
    register(echo_routes(echo_upstream.port))
    gw = gateway()
    got = raw_call(gw.port, "/slow?ms=5000", [("grpc-timeout", "300m")], body=b"", method="GET")
    assert got[":status"] == "200", got
    assert got["grpc-status"] == "4" and got["x-hms-reason"] == "caller_deadline", got
    assert got["content-type"] == "application/grpc"


@pytest.mark.deadline(60)
def test_local_answers_are_grpc_statuses(calc_grpc, register, gateway):
    register(calc_routes(calc_grpc, route_extra="    timeout: 300ms\n    rate_limit: \"1 req/min\"\n"))
    register("service: calc-down\nroutes:\n  - POST /down.Down/{m}\nprotocol: h2c\nretries: 0\n"
             f"endpoints: [127.0.0.1:{closed_port()}]\n")
    gw = gateway()
    # 3 s against the route's 300 ms: the service, told grpc-timeout 300m,
    # gives up itself, or the gateway does; either way the same status.
    e = call_error(gw, "Sleep", b"\x1e")
    assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e
    e = call_error(gw, "Sleep", b"\x00")  # the second call in the minute
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
    with channel(gw) as ch:
        e2 = pytest.raises(grpc.RpcError, ch.unary_unary("/down.Down/Call"), b"x", timeout=10)
        assert e2.value.code() == grpc.StatusCode.UNAVAILABLE, e2.value
        assert "cannot connect" in e2.value.details()
        e3 = pytest.raises(grpc.RpcError, ch.unary_unary("/nowhere.No/Call"), b"x", timeout=10)
        assert e3.value.code() == grpc.StatusCode.UNIMPLEMENTED, e3.value
    got = raw_call(gw.port, "/calc.Calc/Sum", [])
    assert got[":status"] == "200" and got["x-hms-reason"] == "rate_limited", got
    assert got["grpc-status"] == "8", got


@pytest.mark.deadline(60)
def test_grpc_retries_only_on_listed_statuses(calc_grpc, register, gateway):
    register(calc_routes(calc_grpc, extra="retries: 2\n"))
    gw = gateway()
    e = call_error(gw, "Flaky", b"\x01")  # not listed: the first UNAVAILABLE is the answer
    assert e.code() == grpc.StatusCode.UNAVAILABLE and e.details() == "try again"
    register(calc_routes(calc_grpc, extra="retries: 2\ngrpc_retry_on: [unavailable]\n"),
             name="route-1.yaml")
    gw2 = gateway(name="gw2.yaml")
    with channel(gw2) as ch:
        # Two calls, each failing once: within the service's retry budget.
        for key in range(2, 4):
            assert unary(ch, "Flaky")(bytes([key]), timeout=10) == b"ok"
    assert metric_sum(gw2, "hms_retries_total") == 2


@pytest.mark.deadline(60)
def test_a_refused_token_is_unauthenticated(calc_grpc, register, gateway, tmp_path):
    from test_jwt import AUD, ISS, SECRET, token
    secret = tmp_path / "jwt-secret"
    secret.write_text(SECRET + "\n")
    register(calc_routes(calc_grpc))
    gw = gateway({"jwt": {"issuer": ISS, "audience": AUD, "hs256_secret_file": str(secret)}})
    e = call_error(gw, "Sum", b"\x01\x02")
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e
    got = raw_call(gw.port, "/calc.Calc/Sum", [])
    assert got["x-hms-reason"] == "jwt_missing_token" and got["grpc-status"] == "16", got
    assert got["www-authenticate"].startswith("Bearer"), got
    with channel(gw) as ch:
        answer = unary(ch, "Sum")(b"\x01\x02", timeout=10,
                                  metadata=(("authorization", f"Bearer {token()}"),))
        assert answer == b"\x03"


@pytest.mark.deadline(120)
def test_grpc_through_sidecars_with_mtls_both_ways(calc_grpc, register, gateway, mesh_certs):
    # calc-svc's sidecar reaches its gRPC service over h2c (local_protocol);
    # callers reach the sidecar in HTTP/2 inside mTLS (protocol: h2).
    register("service: calc-svc\nroutes:\n  - POST /calc.Calc/{method}\nprotocol: h2\n"
             "retries: 0\nallow_from: [hms-gateway, caller-svc]\n")
    register("service: caller-svc\nroutes:\n  - GET /nothing\n")
    sc = sidecar(gateway, "calc-svc", calc_grpc, mtls=identity(mesh_certs, "calc-svc"),
                 local_protocol="h2c")
    caller = sidecar(gateway, "caller-svc", closed_port(), mtls=identity(mesh_certs, "caller-svc"))
    gw = gateway({"mtls": identity(mesh_certs, "hms-gateway"), "cores": 1}, name="gw.yaml")
    # Inbound: client → gateway (h2c) → calc-svc's sidecar (h2, mTLS) → service (h2c).
    with channel(gw) as ch:
        assert unary(ch, "Sum")(bytes([20, 22]), timeout=10) == bytes([42])
        count = ch.stream_stream("/calc.Calc/Count", request_serializer=lambda b: b,
                                 response_deserializer=lambda b: b)
        assert list(count(iter([b"a", b"bb"]), timeout=10)) == [bytes([1]), bytes([2])]
    # Egress: the caller's service → its sidecar (h2c, the service named as
    # :authority) → calc-svc's sidecar (h2, mTLS with caller-svc's identity).
    with grpc.insecure_channel(f"127.0.0.1:{caller.egress_port}",
                               options=[("grpc.default_authority", "calc-svc")]) as ch:
        assert unary(ch, "Sum")(bytes([1, 2]), timeout=10) == bytes([3])
        e = pytest.raises(grpc.RpcError, unary(ch, "Fail"), b"\x01\x02", timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        assert e.value.details() == "down 100% for now"
    assert metric_sum(sc, "hms_downstream_requests_total", protocol="HTTP/2") == 4
    assert metric_sum(sc, "hms_upstream_tls_handshakes_total") in (0, None)
    assert metric_sum(caller, "hms_upstream_tls_handshakes_total", result="ok") == 1
