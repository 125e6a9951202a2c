"""1 GiB bodies through the gateway, both ways, in bounded memory: the body is
streamed, never buffered whole (DESIGN §4, §6)."""
import socket
import threading
import time

import pytest

import httpraw
from conftest import BIG_BYTES, vmrss_kib

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
