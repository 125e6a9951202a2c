"""No client can hold the gateway's resources after it has gone, and a drain
always ends (docs/engine.md, "Connection lifecycle" and "Drain").

A client that resets its connection (SO_LINGER {1, 0}, then close) at any
point (in the middle of a pipelined sequence, of a request body, of a TLS
handshake, after it half-closed) leaves nothing behind: `hms_connections_active` is back to 0 and
the gateway's descriptor count to what it was before, long before any
timeout could explain it (header, idle and route timeouts are all 60 s here,
and the slow upstream answers after 30 s). SIGTERM ends the process within
drain_timeout plus a second, whatever the clients do.
"""
import os
import signal
import socket
import ssl
import struct
import time

import pytest

import httpraw
from conftest import echo_routes, eventually, metric_sum
from test_tls import certs, client_ctx, tls_listener  # noqa: F401 - certs is a fixture

CLIENTS = 1000
BATCH = 100          # connections open at once: far below any fd limit
SETTLE_S = 20        # pooled upstream connections close after 4 s idle; nothing else waits
# Every timeout far beyond the test: only freeing the connection at once can pass.
LONG_TIMEOUTS = {"header_timeout": "60s", "idle_timeout": "60s", "drain_timeout": "5s"}
SLOW = "/slow?ms=30000"  # the echo app's longest


def fd_count(gw):
    return len(os.listdir(f"/proc/{gw.proc.pid}/fd"))


def reset(sock):
    """Closes with a TCP reset (no FIN): what a crashed or impatient client does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_some(sock, n=1):
    """Waits for the first n bytes of an answer (the exchange has reached that point)."""
    got = b""
    while len(got) < n:
        chunk = sock.recv(n - len(got))
        if not chunk:
            break
        got += chunk
    return got


def connect(port, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def get(path, pad=""):
    extra = f"x-pad: {pad}\r\n" if pad else ""
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode()


def post(path, body):
    return f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


class Client:
    """One client connection that counts the bytes it puts on the wire; TLS
    goes through memory BIOs so that the count is exact."""

    def __init__(self, port, ctx=None):
        self.sock = connect(port)
        self.sent = 0
        self.tls = None
        if ctx is not None:
            self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")

    def raw(self, data):
        self.sock.sendall(data)
        self.sent += len(data)

    def _flush(self):
        data = self.out.read()
        if data:
            self.raw(data)

    def _recv_tls(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the gateway closed the connection")
        self.inc.write(chunk)

    def client_hello(self):
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.out.read()

    def handshake(self):
        while True:
            try:
                self.tls.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                self._recv_tls()

    def send(self, data):
        if self.tls is None:
            self.raw(data)
        else:
            self.tls.write(data)
            self._flush()

    def first_byte(self):
        """Waits for the first byte of an answer: the exchange has reached that point."""
        if self.tls is None or self.tls.version() is None:  # plain, or mid-handshake
            return read_some(self.sock)
        while True:
            try:
                return self.tls.read(1)
            except ssl.SSLWantReadError:
                self._recv_tls()

    def reset(self):
        reset(self.sock)


def pipeline_of_gets(i, slow=True):
    """2 to 4 GETs, and whether to wait for the first answer byte before the
    reset: each point of a pipelined sequence, by i."""
    paths = ["/status/200", "/headers", "/stream?n=4&size=3000", "/status/404"]
    reqs = [get(paths[(i + k) % len(paths)]) for k in range(2 + i % 3)]
    mode = i % 5
    if mode == 3 and slow:
        reqs[0] = get(SLOW)  # the first waits upstream; the others wait in the input
    if mode == 4:
        reqs[-1] = reqs[-1][:len(reqs[-1]) // 2]  # the last one cut mid-head
    return b"".join(reqs), mode in (1, 2)


def wait_received(gw, total, what="the clients' bytes"):
    """Polls until the gateway has read `total` bytes from clients (and so has
    acted on them: the read and the parse happen in the same loop pass)."""
    eventually(lambda: metric_sum(gw, "hms_downstream_received_bytes_total"), lambda got: got >= total,
               timeout=20, what=f"the gateway reading {total} bytes ({what})")


def run_clients(gw, count, start):
    """`count` clients in batches of BATCH. start(i) opens one and sends what
    it sends; it returns (client, wait, counted): after the gateway has read
    `counted` bytes of every client of the batch, the ones with `wait` wait
    for their first answer byte, then all reset. So each reset comes when
    the gateway has acted on what the client sent (an exchange running, input
    held), not before it read it."""
    for base in range(0, count, BATCH):
        before = metric_sum(gw, "hms_downstream_received_bytes_total")
        batch = [start(i) for i in range(base, min(count, base + BATCH))]
        wait_received(gw, before + sum(counted for _, _, counted in batch))
        for c, wait, _ in batch:
            if wait:
                c.first_byte()
            c.reset()


def plain(gw, data, wait=False):
    c = Client(gw.port)
    c.send(data)
    return c, wait, c.sent


def assert_released(gw, fds_before, what):
    """Polls until no client connection is left and the descriptors are back."""
    try:
        eventually(lambda: (metric_sum(gw, "hms_connections_active"), fd_count(gw)),
                   lambda s: s[0] == 0 and s[1] <= fds_before, timeout=SETTLE_S, interval=0.05,
                   what=f"{what}: (connections active, descriptors open; {fds_before} before)")
    except AssertionError as e:
        raise AssertionError(str(e) + gw.logs()) from None


@pytest.fixture
def held_gateway(echo_upstream, register, gateway):
    register(echo_routes(echo_upstream.port, slow_timeout="60s"))
    return gateway(LONG_TIMEOUTS)


@pytest.mark.deadline(90)
def test_pipelined_gets_then_reset_leave_nothing_held(held_gateway):
    gw = held_gateway
    fds_before = fd_count(gw)
    run_clients(gw, CLIENTS, lambda i: plain(gw, *pipeline_of_gets(i)))
    assert_released(gw, fds_before, "pipelined GETs then reset")
    # The gateway still serves, and exits cleanly (the fixture checks the code).
    assert httpraw.get(gw.port, "/status/200").status == 200


HALF_CLOSED = 20     # clients that half-close while their exchange runs
SPIN_WINDOW_S = 1.0  # how long the idle core's CPU time is measured


def core_cpu_s(gw, core=0):
    """CPU seconds the core thread `hms-core-N` has used so far."""
    for tid in os.listdir(f"/proc/{gw.proc.pid}/task"):
        with open(f"/proc/{gw.proc.pid}/task/{tid}/stat") as f:
            stat = f.read()
        if stat[stat.index("(") + 1:stat.rindex(")")] == f"hms-core-{core}":
            fields = stat[stat.rindex(")") + 2:].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    raise AssertionError(f"no thread hms-core-{core}")


@pytest.mark.deadline(90)
def test_half_closed_clients_then_reset_leave_nothing_held(echo_upstream, register, gateway):
    """A client that half-closes (shutdown SHUT_WR) while its exchange runs
    is kept: it still gets its answer. Its FIN must not end the reset watch
    (the reset that follows would go unseen and the connection stay until
    its exchange ends, 30 s here), and must not make the core spin while the
    client stays half-closed (a watch that completes again at once would)."""
    register(echo_routes(echo_upstream.port, slow_timeout="60s"))
    gw = gateway({**LONG_TIMEOUTS, "cores": 1})
    fds_before = fd_count(gw)
    before = metric_sum(gw, "hms_downstream_received_bytes_total")
    clients = [connect(gw.port) for _ in range(HALF_CLOSED)]
    try:
        for c in clients:
            c.sendall(get(SLOW))
        wait_received(gw, before + HALF_CLOSED * len(get(SLOW)), "the slow requests")
        for c in clients:
            c.shutdown(socket.SHUT_WR)
        # One core takes completions in order: the answer to a request sent
        # after the FINs comes after it read them and armed the watches.
        assert httpraw.get(gw.port, "/status/200").status == 200
        eventually(lambda: metric_sum(gw, "hms_connections_active"), lambda n: n == HALF_CLOSED,
                   what="only the half-closed clients left")
        cpu_before = core_cpu_s(gw)
        time.sleep(SPIN_WINDOW_S)  # the measurement window, not a wait for a state
        used = core_cpu_s(gw) - cpu_before
        assert used < SPIN_WINDOW_S / 4, (
            f"the core used {used:.2f} s of CPU in {SPIN_WINDOW_S} s with {HALF_CLOSED}"
            " half-closed clients waiting" + gw.logs())
        for c in clients:
            reset(c)
    finally:
        for c in clients:
            c.close()
    assert_released(gw, fds_before, "half-closed clients then reset")
    assert httpraw.get(gw.port, "/status/200").status == 200


@pytest.fixture
def stuck_upstream():
    """An upstream whose accept queue is full: the kernel drops the SYNs of
    new connections, so a connect to it stays pending (for far longer than
    the test). A request body toward it fills the gateway's 256 KiB queue
    toward the upstream, and the rest waits in the client's input."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(0)
    fillers = []
    for _ in range(2):  # one place in the queue (two on some kernels)
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(s.getsockname())
        fillers.append(f)
    yield s.getsockname()[1]
    for f in fillers:
        f.close()
    s.close()


STUCK_READ = 256 * 1024  # what the gateway reads of an upload before the upstream takes a byte


@pytest.mark.deadline(90)
def test_request_bodies_then_reset_leave_nothing_held(echo_upstream, stuck_upstream, register,
                                                      gateway):
    register(echo_routes(echo_upstream.port, slow_timeout="60s"))
    register("service: stuck-svc\n"
             "routes:\n"
             "  - path: /stuck\n"
             "    methods: [POST]\n"
             "    timeout: 60s\n"
             "breaker: {failures: 100000, open_for: 1s}\n"
             f"endpoints: [127.0.0.1:{stuck_upstream}]\n")
    gw = gateway(LONG_TIMEOUTS)
    fds_before = fd_count(gw)

    def bodies(i):
        # The stuck upstream's backlog bounds how many uploads can wait on it.
        mode = i % 5 if i < CLIENTS // 2 else i % 4
        if mode == 0:  # a body partly sent
            return plain(gw, post("/echo", b"b" * 99999)[:-80000])
        if mode == 1:  # a chunked body partly sent
            return plain(gw, b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"1000\r\n" + b"c" * 2000)
        if mode == 2:  # pipelined POSTs, reset at once
            return plain(gw, b"".join(post("/echo", b"p" * (100 * k + 1)) for k in range(2 + i % 3)))
        if mode == 3:  # pipelined POSTs, reset once the first answer is coming
            return plain(gw, b"".join(post("/echo", b"q" * (50 * k + 1)) for k in range(2 + i % 3)),
                         wait=True)
        # An upload whose upstream connection is not up: the body fills the
        # gateway's queue toward it, the rest waits in the client's input
        # (its receive paused), then the reset.
        c, _, _ = plain(gw, post("/stuck", b"s" * 400_000)[:-1])
        return c, False, STUCK_READ

    run_clients(gw, CLIENTS, bodies)
    assert_released(gw, fds_before, "request bodies then reset")
    assert httpraw.request(gw.port, "POST", "/echo", body=b"still here").body == b"still here"


@pytest.mark.deadline(120)
def test_tls_pipelines_and_handshakes_then_reset_leave_nothing_held(echo_upstream, register,
                                                                   gateway, certs):  # noqa: F811
    register(echo_routes(echo_upstream.port, slow_timeout="60s"))
    gw = gateway({**LONG_TIMEOUTS, "listeners": tls_listener(certs)})
    fds_before = fd_count(gw)
    ctx = client_ctx()

    def start(i):
        c = Client(gw.port, ctx)
        mode = i % 6
        if mode == 0:  # reset mid-handshake: half a ClientHello
            hello = c.client_hello()
            c.raw(hello[:len(hello) // 2])
            return c, False, c.sent
        if mode == 1:  # reset mid-handshake: the server's first flight is coming
            c.raw(c.client_hello())
            return c, True, c.sent
        c.handshake()
        if mode == 2:  # handshake done, nothing sent
            return c, False, c.sent
        if mode == 5:
            # A slow exchange, and more pipelined input behind it than the
            # connection's input block and the TLS session's record buffer
            # hold decrypted: the rest waits as ciphertext, unread.
            c.send(get(SLOW) + b"".join(get("/status/200", pad="x" * 400) for _ in range(150)))
            return c, False, c.sent
        data, _ = pipeline_of_gets(i, slow=False)
        c.send(data)
        return c, mode == 4, c.sent

    run_clients(gw, CLIENTS, start)
    assert_released(gw, fds_before, "TLS clients then reset")
    with httpraw.Conn(gw.port, tls=ctx, server_name="localhost") as c:
        c.send(httpraw.build("GET", "/status/200"))
        assert c.read_response().status == 200


# ---------------------------------------------------------------- drain


@pytest.mark.deadline(60)
def test_sigterm_ends_within_drain_timeout_whatever_clients_do(echo_upstream, register, gateway):
    register(echo_routes(echo_upstream.port, slow_timeout="60s"))
    gw = gateway({**LONG_TIMEOUTS, "drain_timeout": "2s"})
    socks = []
    sent = [0]

    def hold(data=b"", rcvbuf=None):
        s = socket.socket()
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(10)
        s.connect(("127.0.0.1", gw.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if data:
            s.sendall(data)
            sent[0] += len(data)
        socks.append(s)
        return s

    try:
        for _ in range(3):
            hold()                                                       # idle
        read_some(hold(get("/status/200")), 12)                          # idle after an answer
        hold(b"GET /status/200 HTTP/1.1\r\nHost: t\r\n")                 # mid-head
        hold(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n"
             + b"x" * 5000)                                              # mid-body
        hold(get(SLOW) + get("/status/200"))                             # pipelined input held
        read_some(hold(get("/stream?n=2000&size=65536"), rcvbuf=4096))   # never reads on
        wait_received(gw, sent[0])
        # The one request that can finish within the drain: at the upstream
        # (it answers after 1 s) when SIGTERM comes.
        finishing = httpraw.Conn(gw.port)
        socks.append(finishing)
        finishing.send(get("/slow?ms=1000"))
        wait_received(gw, sent[0] + len(get("/slow?ms=1000")))
        assert metric_sum(gw, "hms_connections_active") == len(socks)
        start = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        try:
            rc = gw.proc.wait(timeout=10)
        except Exception:
            gw.proc.kill()
            raise
        took = time.monotonic() - start
        assert rc == 0, gw.logs()
        assert took < 3.0, f"SIGTERM took {took:.2f} s with drain_timeout 2s" + gw.logs()
        resp = finishing.read_response()
        assert resp.status == 200, resp
        assert resp.json() == {"slept_ms": 1000}
        assert resp.header("connection") == "close", resp
    finally:
        for s in socks:
            s.close()


@pytest.mark.deadline(60)
def test_sigterm_right_after_clients_reset_ends_within_drain_timeout(held_gateway):
    """The issue's case: pipelined clients reset, then SIGTERM at once. Before,
    the connections they left were never freed, and a core with no timer armed
    never looked at its drain deadline again."""
    gw = held_gateway
    run_clients(gw, 300, lambda i: plain(gw, *pipeline_of_gets(i, slow=False)))
    start = time.monotonic()
    gw.proc.send_signal(signal.SIGTERM)
    try:
        rc = gw.proc.wait(timeout=gw.drain_s + 5)
    except Exception:
        gw.proc.kill()
        raise
    took = time.monotonic() - start
    assert rc == 0, gw.logs()
    assert took < gw.drain_s + 1, f"SIGTERM took {took:.2f} s" + gw.logs()
