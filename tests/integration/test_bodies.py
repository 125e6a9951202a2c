"""1 GiB bodies through the gateway, both ways, in bounded memory: the body is
streamed, never buffered whole (DESIGN §4, §6)."""
import socket
import threading
import time

import pytest

import httpraw
from conftest import BIG_BYTES, RawUpstream, vmrss_kib

RSS_GROWTH_LIMIT_KIB = 64 * 1024


class RssSampler:
    def __init__(self, pid, every=0.05):
        self.pid, self.every = pid, every
        self.start_kib = vmrss_kib(pid)
        self.peak_kib = self.start_kib
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.every):
            try:
                self.peak_kib = max(self.peak_kib, vmrss_kib(self.pid))
            except (OSError, RuntimeError):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def report(self, what, nbytes, seconds):
        print(f"\n{what}: {nbytes} bytes in {seconds:.2f} s ({nbytes / seconds / 2**20:.0f} MiB/s); "
              f"gateway VmRSS start {self.start_kib} KiB, peak {self.peak_kib} KiB "
              f"(+{self.peak_kib - self.start_kib} KiB)")
        assert self.peak_kib - self.start_kib < RSS_GROWTH_LIMIT_KIB, (
            f"gateway grew by {self.peak_kib - self.start_kib} KiB while relaying {what}")


@pytest.fixture
def bulk_gateway(nginx_upstream, upload_sink, register, gateway):
    register("service: files-svc\nroutes:\n  - GET /big\n  - GET /json\ntimeout: 5m\n"
             f"endpoints: [{nginx_upstream.addr}]\n")
    register("service: sink-svc\nroutes:\n  - POST /upload\ntimeout: 5m\n"
             f"endpoints: [{upload_sink.addr}]\n")
    gw = gateway()
    # Warm up both routes so pools and buffers exist before the first sample.
    assert httpraw.get(gw.port, "/json").status == 200
    assert httpraw.request(gw.port, "POST", "/upload", body=b"x" * 1000).json() == {"bytes": 1000}
    return gw


@pytest.mark.deadline(240)
def test_1gib_download(bulk_gateway):
    gw = bulk_gateway
    buf = bytearray(1 << 20)
    with RssSampler(gw.proc.pid) as rss, httpraw.Conn(gw.port, timeout=30) as c:
        start = time.monotonic()
        c.send(httpraw.build("GET", "/big"))
        _, status, _, headers = c.read_head()
        assert status == 200
        assert dict(headers).get("content-length") == str(BIG_BYTES), headers
        got = len(c.buf)
        c.buf = b""
        view = memoryview(buf)
        while got < BIG_BYTES:
            n = c.sock.recv_into(view)
            if not n:
                break
            got += n
        elapsed = time.monotonic() - start
    assert got == BIG_BYTES
    rss.report("1 GiB download", got, elapsed)


@pytest.mark.deadline(240)
def test_1gib_upload(bulk_gateway):
    gw = bulk_gateway
    piece = b"u" * (1 << 20)
    with RssSampler(gw.proc.pid) as rss, httpraw.Conn(gw.port, timeout=30) as c:
        start = time.monotonic()
        c.send(httpraw.build("POST", "/upload", {"Content-Length": str(BIG_BYTES),
                                                 "Content-Type": "application/octet-stream"}))
        for _ in range(BIG_BYTES // len(piece)):
            c.sock.sendall(piece)
        r = c.read_response()
        elapsed = time.monotonic() - start
    assert r.status == 200, r
    assert r.json() == {"bytes": BIG_BYTES}
    rss.report("1 GiB upload", BIG_BYTES, elapsed)


def test_an_upstream_close_behind_a_whole_body_waits_for_a_slow_client(register, gateway):
    # The upstream sends its whole content-length body and closes while the
    # client reads nothing: the gateway stops reading it with bytes held
    # for the client, and the close arrives behind them. The close is not
    # the answer's end nor its failure: the held bytes go first, and the
    # body completes (it used to be cut short: the close read as a reset).
    size = [0]

    def answer(head):
        return (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                % size[0] + b"b" * size[0])

    up = RawUpstream(answer)
    try:
        register(f"service: closing\nroutes:\n  - GET /big\nendpoints: [127.0.0.1:{up.port}]\n")
        gw = gateway({"cores": 1})
        for n in (1 << 20, 2 << 20):
            size[0] = n
            up.answered.clear()
            head, body = get_after_the_upstream_closed(gw.port, up, n)
            assert head.startswith(b"HTTP/1.1 200"), head
            assert len(body) == n, f"{len(body)} of {n} body bytes"
    finally:
        up.close()


def get_after_the_upstream_closed(port, up, n):
    """GET /big, read nothing until the upstream sent its whole answer and
    closed, then read the answer (until n body bytes, or the close): (head, body)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the client falls behind at once
        s.connect(("127.0.0.1", port))
        s.settimeout(10)
        s.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        assert up.answered.wait(10), "the upstream could not send its whole answer"
        got = b""
        while len(got.partition(b"\r\n\r\n")[2]) < n:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    return head, body


ODD_ANSWERS = {
    # Interim answers before the final one: skipped (the gateway answered any
    # Expect itself); the final head and body are the client's.
    "/interim": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    # A 101 to a request that asked for no upgrade: a malformed answer.
    "/switch": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
               b"Connection: upgrade\r\n\r\n",
    # A chunked body cut by the close: the head left, so the close tells the client.
    "/cut": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n9\r\nwor",
    # A body its close delimits: whole at the close.
    "/until-close": b"HTTP/1.1 200 OK\r\n\r\n" + b"u" * 70000,
}


def test_odd_upstream_answers_each_end_as_their_framing_says(register, gateway):
    up = RawUpstream(lambda head: ODD_ANSWERS.get(
        RawUpstream.path_of(head), b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
    try:
        register("service: odd\nroutes:\n  - GET /interim\n  - GET /switch\n  - GET /cut\n"
                 f"  - GET /until-close\nretries: 0\nendpoints: [127.0.0.1:{up.port}]\n")
        gw = gateway({"cores": 1})
        with httpraw.Conn(gw.port) as c:
            c.send(httpraw.build("GET", "/interim"))
            r = c.read_response(skip_1xx=False)  # the first head the client gets is the final one
        assert (r.status, r.body, r.header("link")) == (200, b"ok", None), r
        r = httpraw.get(gw.port, "/switch")
        assert (r.status, r.header("x-hms-reason")) == (502, "upstream_bad_response"), r
        for path, whole in (("/cut", False), ("/until-close", True)):
            with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                got = b""
                while chunk := s.recv(65536):  # until the gateway closes
                    got += chunk
            head, _, body = got.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            if whole:
                assert body == b"u" * 70000, len(body)
            else:  # what arrived went on, the last chunk never came
                assert body.startswith(b"5\r\nhello\r\n") and not body.endswith(b"0\r\n\r\n")
    finally:
        up.close()
