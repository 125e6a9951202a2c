"""HTTP/1.1 over raw sockets: connection handling and strict framing
(RFC 9112, DESIGN §6). Every framing error answers 400 (431 for oversize
headers, 413 for oversize bodies) with x-hms-reason, then closes."""
import time

import pytest

import httpraw
from conftest import echo_routes


def test_keep_alive_two_requests_one_connection(echo_gateway):
    with httpraw.Conn(echo_gateway.port) as c:
        for code in (200, 201):
            c.send(httpraw.build("GET", f"/status/{code}"))
            r = c.read_response()
            assert r.status == code, r
        assert not c.closed_by_peer(0.3)


def test_pipelining_answers_in_order(echo_gateway):
    with httpraw.Conn(echo_gateway.port) as c:
        c.send(b"".join(httpraw.build("GET", f"/status/{code}") for code in (201, 202, 203)))
        assert [c.read_response().status for _ in range(3)] == [201, 202, 203]


def test_pipelined_bodies_stay_separate(echo_gateway):
    with httpraw.Conn(echo_gateway.port) as c:
        c.send(httpraw.build("POST", "/echo", body=b"first")
               + httpraw.build("POST", "/echo", body=b"second"))
        assert c.read_response().body == b"first"
        assert c.read_response().body == b"second"


def test_http10_client(echo_gateway):
    with httpraw.Conn(echo_gateway.port) as c:
        c.send(b"GET /status/200 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        assert r.version in ("HTTP/1.0", "HTTP/1.1"), r
        assert r.body == b'{"status":200}'
        assert c.closed_by_peer(), "an HTTP/1.0 request without keep-alive ends the connection"


def test_connection_close_closes(echo_gateway):
    with httpraw.Conn(echo_gateway.port) as c:
        c.send(httpraw.build("GET", "/status/200", {"Connection": "close"}))
        r = c.read_response()
        assert r.status == 200, r
        assert "close" in (r.header("connection") or "").lower(), r
        assert c.closed_by_peer()


def test_expect_100_continue(echo_gateway):
    with httpraw.Conn(echo_gateway.port) as c:
        c.send(httpraw.build("POST", "/echo", {"Content-Length": "5",
                                               "Expect": "100-continue"}))
        version, status, _, _ = c.read_head()
        assert (version, status) == ("HTTP/1.1", 100)
        c.send(b"hello")
        r = c.read_response()
        assert (r.status, r.body) == (200, b"hello"), r


def test_chunked_request_body(echo_gateway):
    body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
    r = httpraw.request(echo_gateway.port, "POST", "/echo",
                        {"Transfer-Encoding": "chunked"}, body)
    assert (r.status, r.body) == (200, b"hello world"), r


def test_chunked_response_streams(echo_gateway):
    r = httpraw.get(echo_gateway.port, "/stream?n=20&size=100")
    assert r.status == 200, r
    assert r.body == b"".join((f"{i:04d}" + "x" * 96).encode() for i in range(20))


def test_head_has_no_body(echo_gateway):
    with httpraw.Conn(echo_gateway.port) as c:
        c.send(httpraw.build("HEAD", "/headers"))
        r = c.read_response("HEAD")
        assert r.status == 200, r
        c.send(httpraw.build("GET", "/status/202"))
        assert c.read_response().status == 202


GET = b"GET /headers HTTP/1.1\r\nHost: 127.0.0.1\r\n"
POST = b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"

FRAMING = {
    "cl_and_te": POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "duplicate_differing_cl": POST + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "te_not_ending_in_chunked": POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "te_unknown": POST + b"Transfer-Encoding: gzip\r\n\r\n",
    "bare_lf": GET + b"X-A: b\n\r\n",
    "bare_lf_request_line": b"GET /headers HTTP/1.1\nHost: 127.0.0.1\r\n\r\n",
    "bare_cr": GET + b"X-A: b\rc\r\n\r\n",
    "obs_fold": GET + b"X-A: b\r\n c\r\n\r\n",
    "space_before_colon": GET + b"X-A : b\r\n\r\n",
    "invalid_token_char": GET + b"X@A: b\r\n\r\n",
    "empty_header_name": GET + b": b\r\n\r\n",
    "bad_chunk_size": POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "chunk_size_overflow": POST + b"Transfer-Encoding: chunked\r\n\r\n"
                           + b"f" * 40 + b"\r\nhello\r\n0\r\n\r\n",
    "chunk_missing_crlf": POST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
    "negative_cl": POST + b"Content-Length: -1\r\n\r\n",
    "missing_host": b"GET /headers HTTP/1.1\r\nX-A: b\r\n\r\n",
    "duplicate_host": GET + b"Host: 127.0.0.2\r\n\r\n",
}


def expect_rejected(port, raw, status=400):
    with httpraw.Conn(port) as c:
        c.send(raw)
        r = c.read_response()
        assert r.status == status, r
        assert r.header("x-hms-reason"), f"no x-hms-reason on {r}"
        assert set(r.json()) >= {"error", "reason", "trace_id"}, r
        assert c.closed_by_peer(), "the connection must close after a framing error"
        assert c.buf == b"", f"bytes after the error response: {c.buf[:200]!r}"
        return r


@pytest.mark.parametrize("case", sorted(FRAMING))
def test_framing_error_is_400_and_closes(echo_gateway, case):
    expect_rejected(echo_gateway.port, FRAMING[case])
    # The gateway itself carries on.
    assert httpraw.get(echo_gateway.port, "/status/200").status == 200


def test_smuggled_request_is_not_served(echo_gateway):
    # CL+TE smuggling: whatever follows must not be read as a second request.
    smuggle = (POST + b"Content-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
               b"GET /status/299 HTTP/1.1\r\nHost: x\r\n\r\n")
    with httpraw.Conn(echo_gateway.port) as c:
        c.send(smuggle)
        r = c.read_response()
        assert r.status == 400, r
        assert c.closed_by_peer()
        assert b"299" not in c.buf


def test_oversize_headers_are_431(echo_gateway):
    raw = GET + b"X-Big: " + b"a" * (20 * 1024) + b"\r\n\r\n"  # default max_header_bytes 16 KiB
    expect_rejected(echo_gateway.port, raw, status=431)


def test_body_over_max_body_bytes_is_413(echo_upstream, register, gateway):
    register(echo_routes(echo_upstream.port))
    gw = gateway({"max_body_bytes": "1KiB"})
    ok = httpraw.request(gw.port, "POST", "/echo", body=b"x" * 1000)
    assert (ok.status, ok.body) == (200, b"x" * 1000), ok
    with httpraw.Conn(gw.port) as c:
        c.send(POST + b"Content-Length: 2048\r\n\r\n")
        r = c.read_response()
        assert r.status == 413, r
        assert r.header("x-hms-reason"), r
    # A chunked body that grows past the limit is cut as well.
    with httpraw.Conn(gw.port) as c:
        c.send(POST + b"Transfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):
            c.send(b"200\r\n" + b"y" * 512 + b"\r\n")
        c.send(b"0\r\n\r\n")
        r = c.read_response()
        assert r.status == 413, r


def test_header_timeout_cuts_slow_client(echo_upstream, register, gateway):
    register(echo_routes(echo_upstream.port))
    gw = gateway({"header_timeout": "500ms"})
    with httpraw.Conn(gw.port) as c:
        c.send(b"GET /status/200 HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        start = time.monotonic()
        assert c.closed_by_peer(timeout=5), "a client that never ends its head is cut"
        assert time.monotonic() - start < 4
