"""The HTTP/2 client session (src/h2/client_session.cc) against a real gRPC
server from python3-grpcio over a plain socket (h2c): the head mapping
(connection-specific fields dropped, te: trailers kept: grpcio answers a
call without it with UNKNOWN), a unary call's message and its grpc-status trailer, and a failing call's
trailers-only answer. Driven by build/tests/unit/h2/h2-probe, one request a
run. The engine's own use of the session: test_h2_upstream.py, test_grpc.py."""
import subprocess

import pytest

from conftest import BUILD_DIR

grpc = pytest.importorskip("grpc", reason="python3-grpcio is not installed")
import grpc_calc  # noqa: E402 (needs grpc)

PROBE = BUILD_DIR / "tests" / "unit" / "h2" / "h2-probe"


def frame(payload: bytes) -> bytes:
    """A gRPC length-prefixed message, uncompressed."""
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


@pytest.fixture
def calc():
    """calc-svc's gRPC twin (grpc_calc.py): Sum adds two bytes; Fail answers
    UNAVAILABLE with a message that needs percent-encoding."""
    with grpc_calc.serve(workers=2) as port:
        yield port


def call(port, method, body: bytes):
    """One call through h2-probe; its lines as (kind, rest) pairs."""
    if not PROBE.exists():
        pytest.skip(f"{PROBE} is not built")
    out = subprocess.run(
        [str(PROBE), str(port), "POST", f"/calc.Calc/{method}", "--body-hex", body.hex(),
         # An HTTP/1.1-style head as the engine rewrites it: Host becomes
         # :authority, Connection is left out, TE: trailers goes on.
         "Host:calc-svc", "Connection:keep-alive", "content-type:application/grpc",
         "TE:trailers", "grpc-timeout:5S", "user-agent:hms-test"],
        capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stdout + out.stderr
    return [tuple(line.split(" ", 1)) for line in out.stdout.splitlines()]


def fields(lines, kind):
    return dict(rest.split(" ", 1) for k, rest in lines if k == kind)


@pytest.mark.deadline(30)
def test_unary_call_returns_its_message_and_status_in_trailers(calc):
    lines = call(calc, "Sum", frame(bytes([2, 3])))
    assert ("status", "200") in lines
    assert fields(lines, "field")["content-type"].startswith("application/grpc")
    data = bytes.fromhex("".join(rest for k, rest in lines if k == "data"))
    assert data == frame(bytes([5]))
    trailers = fields(lines, "trailer")
    assert trailers["grpc-status"] == "0"
    assert lines[-1] == ("end", "complete=1 never_processed=0 code=0")


@pytest.mark.deadline(30)
def test_failing_call_is_read_whole(calc):
    lines = call(calc, "Fail", frame(b"\x01\x02"))
    assert ("status", "200") in lines
    # grpcio answers an abort trailers-only or with trailers: either way the
    # status and the percent-encoded message arrive, and the stream is whole.
    seen = {**fields(lines, "field"), **fields(lines, "trailer")}
    assert seen["grpc-status"] == "14"
    assert seen["grpc-message"] == "down 100%25 for now"
    assert not any(k == "data" for k, _ in lines)
    assert lines[-1] == ("end", "complete=1 never_processed=0 code=0")
