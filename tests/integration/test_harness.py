"""The suite's own upstreams, checked directly (no gateway in the path), so a
failure elsewhere points at the gateway and not at the harness."""
import socket

import httpraw
from conftest import BIG_BYTES, REPO


def test_echo_app_answers(echo_upstream):
    r = httpraw.request(echo_upstream.port, "POST", "/echo", body=b"hello")
    assert (r.status, r.body) == (200, b"hello")
    r = httpraw.get(echo_upstream.port, "/stream?n=3&size=8")
    assert r.status == 200 and r.body == b"0000xxxx0001xxxx0002xxxx"
    assert httpraw.get(echo_upstream.port, "/status/503").status == 503


def test_seed_services_answer_directly(uvicorn_app):
    hello = uvicorn_app(REPO / "configs/demo/hello_svc")
    calc = uvicorn_app(REPO / "configs/demo/calc_svc")
    assert httpraw.get(hello.port, "/hello").json() == {"msg": "Hello from HMS!"}
    assert httpraw.get(calc.port, "/sum/2/3").json() == {"sum": 5}


def test_nginx_serves_json_and_big_file(nginx_upstream):
    r = httpraw.get(nginx_upstream.port, "/json")
    assert r.status == 200 and r.json() == {"ok": True}
    assert r.header("content-type") == "application/json"
    with httpraw.Conn(nginx_upstream.port) as c:
        c.send(httpraw.build("HEAD", "/big"))
        r = c.read_response("HEAD")
    assert r.status == 200 and int(r.header("content-length")) == BIG_BYTES


def test_sink_counts_bodies(upload_sink):
    r = httpraw.request(upload_sink.port, "POST", "/upload", body=b"x" * 100_000)
    assert r.json() == {"bytes": 100_000}
    r = httpraw.request(upload_sink.port, "POST", "/upload",
                        headers={"Transfer-Encoding": "chunked"},
                        body=b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert r.json() == {"bytes": 11}


def test_bad_upstream_misbehaves(bad_upstream):
    with httpraw.Conn(bad_upstream.port) as c:
        c.send(httpraw.build("GET", "/truncated"))
        assert c.closed_by_peer() and c.buf == b"HTTP/1.1 200 OK\r\nContent-Le"
    with httpraw.Conn(bad_upstream.port) as c:
        c.send(httpraw.build("GET", "/reset"))
        got = 0
        try:
            while True:
                chunk = c.sock.recv(1 << 16)
                if not chunk:
                    break
                got += len(chunk)
        except ConnectionResetError:
            pass
        assert got < 1 << 20
    assert httpraw.get(bad_upstream.port, "/").status == 200
