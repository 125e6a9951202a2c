"""WebSocket over HTTP/1.1 through the gateway (docs/engine.md "WebSocket"):
an upgrade passes every stamp like any request (routing, JWT, the rate
limit once per connection attempt, allow_from through sidecars), a route
takes upgrades only with `websocket: true`, a malformed upgrade or a bad
101 is refused naming the rule, and after the 101 the two connections are a
byte tunnel (TLS and mTLS included) until either side closes, with an idle
timeout, byte counters, an access-log line and a span for its whole life.
Clients and the echo upstream are Debian's python3-websockets."""
import asyncio
import json
import os
import socket
import ssl
import struct
import time

import jwt
import pytest
import websockets

import httpraw
from conftest import eventually, log_lines, metric_sum, start_helper, vmrss_kib

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's sample key
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def ws_upstream(procs):
    return start_helper(procs, "ws_echo.py", "ws echo")


def ws_routes(port, echo_keys=""):
    """ws-svc's route file; `echo_keys`: more keys of the /echo route."""
    return ("service: ws-svc\nroutes:\n"
            "  - path: /echo\n    methods: [GET]\n    websocket: true\n"
            f"{echo_keys}"
            "  - path: /close\n    websocket: true\n"
            "  - path: /reject\n    websocket: true\n"
            "  - path: /stats\n"
            "retries: 2\nbreaker: {failures: 1000, open_for: 1s}\n"
            f"endpoints: [127.0.0.1:{port}]\n")


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def stats(upstream):
    return json.loads(httpraw.get(upstream.port, "/stats").body)


def settled(gw):
    """Every tunnel and client connection of the gateway is gone."""
    return eventually(lambda: (metric_sum(gw, "hms_websocket_tunnels_active"),
                               metric_sum(gw, "hms_connections_active")),
                      lambda v: v == (0.0, 0.0), timeout=10,
                      what="tunnels and connections back to zero")


async def echo_once(url, messages, **kw):
    async with websockets.connect(url, max_size=None, ping_interval=None, **kw) as ws:
        got = []
        for m in messages:
            await ws.send(m)
            got.append(await ws.recv())
        return got, dict(ws.response_headers)


def refusal(url, **kw):
    """The status and headers of an upgrade the gateway (or upstream) refuses."""
    async def attempt():
        with pytest.raises(websockets.InvalidStatusCode) as e:
            async with websockets.connect(url, ping_interval=None, **kw):
                pass
        return e.value.status_code, e.value.headers
    return run(attempt())


def test_echo_text_and_a_binary_mib_with_every_stamp(ws_upstream, register, gateway, tmp_path):
    register(ws_routes(ws_upstream.port))
    log = tmp_path / "access.log"
    gw = gateway({"access_log": {"path": str(log)}})
    big = os.urandom(1 << 20)  # 1 MiB that permessage-deflate cannot shrink
    got, headers = run(echo_once(
        f"ws://127.0.0.1:{gw.port}/echo", ["hello", big],
        extra_headers={"x-trace-id": TRACE, "x_sneaky": "1"}))
    assert got == ["hello", big]
    assert headers.get("x-trace-id") == TRACE
    # The upstream got the upgrade and the gateway's stamps, not the caller's extras.
    seen = stats(ws_upstream)["headers"]
    assert seen["upgrade"] == "websocket" and seen["connection"] == "upgrade"
    assert seen["x-forwarded-for"] == "127.0.0.1" and seen["x-trace-id"] == TRACE
    assert "traceparent" in seen and "x_sneaky" not in seen
    assert metric_sum(gw, "hms_websocket_tunnels_total") == 1
    assert metric_sum(gw, "hms_websocket_bytes_total", direction="to_upstream") > len(big)
    assert metric_sum(gw, "hms_websocket_bytes_total", direction="to_client") > len(big)
    settled(gw)
    assert metric_sum(gw, "hms_requests_total", code="101") == 1
    # One access-log line for the connection's whole life, with its bytes.
    lines = eventually(lambda: [x for x in log_lines(log) if x["status"] == 101], timeout=5,
                       what="the tunnel's access-log line")
    assert len(lines) == 1 and lines[0]["route"] == "/echo", lines
    assert lines[0]["bytes_in"] > len(big) and lines[0]["bytes_out"] > len(big)
    assert lines[0]["trace_id"] == TRACE


def test_through_tls(ws_upstream, register, gateway, tmp_path):
    from test_tls import make_cert, tls_listener
    d = tmp_path / "certs"
    d.mkdir()
    make_cert(d, "a", ["localhost"])
    make_cert(d, "b", ["b.test"])
    register(ws_routes(ws_upstream.port))
    gw = gateway({"listeners": tls_listener(d)})
    ctx = ssl.create_default_context(cafile=str(d / "a.pem"))
    ctx.check_hostname = False
    msgs = ["over tls", b"\x00" * 300_000, "again"]
    got, _ = run(echo_once(f"wss://127.0.0.1:{gw.port}/echo", msgs, ssl=ctx))
    assert got == msgs
    settled(gw)


SECRET = "w" * 48


def test_jwt_is_required_and_a_missing_token_refused(ws_upstream, register, gateway, tmp_path):
    secret = tmp_path / "jwt-secret"
    secret.write_text(SECRET + "\n")
    register(ws_routes(ws_upstream.port))
    gw = gateway({"jwt": {"issuer": "iss", "audience": "aud",
                          "hs256_secret_file": str(secret)}})
    url = f"ws://127.0.0.1:{gw.port}/echo"
    status, headers = refusal(url)
    assert status == 401 and headers["x-hms-reason"] == "jwt_missing_token"
    assert stats(ws_upstream)["open"] == 0
    tok = jwt.encode({"sub": "u", "iss": "iss", "aud": "aud", "exp": int(time.time()) + 600},
                     SECRET, algorithm="HS256")
    got, _ = run(echo_once(url, ["with a token"],
                           extra_headers={"Authorization": f"Bearer {tok}"}))
    assert got == ["with a token"]


def test_rate_limit_counts_connection_attempts_not_messages(ws_upstream, register, gateway):
    register(ws_routes(ws_upstream.port, echo_keys="    rate_limit: 2 req/min\n"))
    gw = gateway()
    url = f"ws://127.0.0.1:{gw.port}/echo"

    async def two_open_tunnels():
        async with websockets.connect(url, ping_interval=None) as a, \
                websockets.connect(url, ping_interval=None) as b:
            for i in range(30):  # many messages, one token each connection
                await a.send(f"a{i}")
                await b.send(f"b{i}")
                assert await a.recv() == f"a{i}" and await b.recv() == f"b{i}"
    run(two_open_tunnels())
    status, headers = refusal(url)
    assert status == 429 and headers["x-hms-reason"] == "rate_limited"
    assert metric_sum(gw, "hms_websocket_tunnels_total") == 2


def test_a_client_that_vanishes_frees_everything(ws_upstream, register, gateway):
    register(ws_routes(ws_upstream.port))
    gw = gateway()
    url = f"ws://127.0.0.1:{gw.port}/echo"
    before = stats(ws_upstream)["closed"]

    async def vanish(reset):
        ws = await websockets.connect(url, ping_interval=None)
        await ws.send("x" * 1000)
        assert await ws.recv() == "x" * 1000
        await ws.send(b"y" * 200_000)  # mid-stream: its echo is still coming
        sock = ws.transport.get_extra_info("socket")
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.transport.abort()  # no close frame: gone (a FIN, or with SO_LINGER 0 a reset)
    for reset in (True, False):
        run(vanish(reset))
    # The upstream saw both connections close, and the gateway let go of them.
    eventually(lambda: stats(ws_upstream), lambda s: s["open"] == 0 and s["closed"] >= before + 2,
               timeout=10, what="the upstream sees both closes")
    settled(gw)
    assert metric_sum(gw, "hms_upstream_idle_connections") == 0  # never pooled


def test_an_upstream_that_closes_is_passed_on(ws_upstream, register, gateway):
    register(ws_routes(ws_upstream.port))
    gw = gateway()

    async def closed_by_upstream():
        async with websockets.connect(f"ws://127.0.0.1:{gw.port}/close",
                                      ping_interval=None) as ws:
            with pytest.raises(websockets.ConnectionClosedOK):
                await ws.recv()
            return ws.close_code, ws.close_reason
    assert run(closed_by_upstream()) == (1000, "bye")
    settled(gw)


def test_idle_tunnels_are_closed(ws_upstream, register, gateway):
    register(ws_routes(ws_upstream.port, echo_keys="    websocket_idle_timeout: 1s\n"))
    gw = gateway()
    url = f"ws://127.0.0.1:{gw.port}/echo"

    async def chatty_then_silent():
        async with websockets.connect(url, ping_interval=None) as ws:
            # Talking every 300 ms for 2.4 s: never idle for the whole second.
            for i in range(8):
                await ws.send(str(i))
                assert await ws.recv() == str(i)
                await asyncio.sleep(0.3)
            start = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()  # silent: the gateway closes it
            return time.monotonic() - start
    waited = run(chatty_then_silent())
    assert 0.5 < waited < 8, waited
    assert metric_sum(gw, "hms_websocket_idle_timeouts_total") == 1
    settled(gw)


def test_a_101_with_a_wrong_accept_is_502(bad_upstream, register, gateway):
    register("service: liar-svc\nroutes:\n  - path: /ws-bad-accept\n    websocket: true\n"
             f"retries: 2\nendpoints: [127.0.0.1:{bad_upstream.port}]\n")
    gw = gateway()
    status, headers = refusal(f"ws://127.0.0.1:{gw.port}/ws-bad-accept")
    assert status == 502 and headers["x-hms-reason"] == "upstream_bad_upgrade"
    # Never retried after a 101, whatever the service's retries say.
    assert metric_sum(gw, "hms_upstream_connections_total") == 1
    settled(gw)


def test_routes_take_upgrades_only_when_they_say_so(ws_upstream, register, gateway):
    register(ws_routes(ws_upstream.port))
    gw = gateway()
    status, headers = refusal(f"ws://127.0.0.1:{gw.port}/stats")
    assert status == 403 and headers["x-hms-reason"] == "websocket_not_enabled"
    # The route itself still serves plain HTTP.
    assert httpraw.get(gw.port, "/stats").status == 200
    # An upstream that answers the upgrade with a normal response: relayed.
    status, headers = refusal(f"ws://127.0.0.1:{gw.port}/reject")
    assert status == 403 and "x-hms-reason" not in headers


def upgrade_head(path="/echo", method="GET", version="HTTP/1.1", **fields):
    base = {"Host": "x", "Connection": "Upgrade", "Upgrade": "websocket",
            "Sec-WebSocket-Key": KEY, "Sec-WebSocket-Version": "13"}
    for k, v in fields.items():
        base[k.replace("_", "-")] = v
    lines = "".join(f"{k}: {v}\r\n" for k, v in base.items() if v is not None)
    return f"{method} {path} {version}\r\n{lines}\r\n".encode()


@pytest.mark.parametrize("head,status,rule", [
    (upgrade_head(Sec_WebSocket_Key=None), 400, "key"),
    (upgrade_head(Sec_WebSocket_Key="short=="), 400, "key"),
    (upgrade_head(Sec_WebSocket_Version="8"), 426, "version"),
    (upgrade_head(Sec_WebSocket_Version=None), 426, "version"),
    (upgrade_head(Connection="keep-alive"), 400, "connection"),
    (upgrade_head(method="POST", Content_Length="0"), 400, "method"),
    (upgrade_head(version="HTTP/1.0"), 400, "http_version"),
])
def test_malformed_upgrades_are_refused_naming_the_rule(ws_upstream, register, gateway,
                                                        head, status, rule):
    register(ws_routes(ws_upstream.port).replace("methods: [GET]", "methods: [GET, POST]"))
    gw = gateway()
    with httpraw.Conn(gw.port) as c:
        c.send(head)
        r = c.read_response()
    assert r.status == status, r
    assert r.header("x-hms-reason") == "bad_websocket_upgrade"
    assert f"({rule})" in r.json()["error"], r.json()
    if status == 426:
        assert r.header("sec-websocket-version") == "13"
    assert stats(ws_upstream)["open"] == 0


def test_other_upgrades_are_still_dropped(echo_upstream, register, gateway):
    from conftest import echo_routes
    register(echo_routes(echo_upstream.port))
    gw = gateway()
    r = httpraw.get(gw.port, "/headers", headers={"Connection": "Upgrade", "Upgrade": "h2c"})
    assert r.status == 200
    names = [k.lower() for k, _ in r.json()["headers"]]
    assert "upgrade" not in names and "connection" not in names


def test_through_sidecars_with_mtls(ws_upstream, register, hms_api, gateway, tmp_path):
    from test_mtls import identity
    from test_sidecar import sidecar
    d = tmp_path / "mesh"
    assert hms_api("certs", "init", "--dir", d).returncode == 0
    for name in ("hms-gateway", "ws-svc"):
        assert hms_api("certs", "issue", name, "--dir", d).returncode == 0
    register(ws_routes(ws_upstream.port).replace(
        f"endpoints: [127.0.0.1:{ws_upstream.port}]\n", "allow_from: [hms-gateway]\n"))
    sc = sidecar(gateway, "ws-svc", ws_upstream.port, mtls=identity(d, "ws-svc"))
    gw = gateway({"mtls": identity(d, "hms-gateway"), "cores": 1}, name="gw.yaml")
    eventually(lambda: httpraw.get(gw.port, "/stats").status, lambda s: s == 200, timeout=10,
               what="the gateway reaches the sidecar")
    msgs = ["through the mesh", b"\x01" * 500_000]
    got, _ = run(echo_once(f"ws://127.0.0.1:{gw.port}/echo", msgs))
    assert got == msgs
    assert metric_sum(sc, "hms_websocket_tunnels_total") == 1
    seen = stats(ws_upstream)["headers"]
    assert seen["x-hms-peer"] == "spiffe://hms.local/svc/hms-gateway"
    settled(gw)
    settled(sc)


def test_many_concurrent_tunnels_complete_and_memory_returns(ws_upstream, register, gateway):
    register(ws_routes(ws_upstream.port))
    gw = gateway({"cores": 1})
    url = f"ws://127.0.0.1:{gw.port}/echo"

    async def one(i):
        async with websockets.connect(url, ping_interval=None, max_size=None) as ws:
            for j in range(5):
                m = f"{i}:{j}:" + "z" * 4000
                await ws.send(m)
                assert await ws.recv() == m
        return i

    async def many(n):
        return await asyncio.gather(*(one(i) for i in range(n)))

    # The first wave grows the core's slabs and pools to 200 tunnels; the
    # waves after it reuse them.
    assert sorted(run(many(200), timeout=120)) == list(range(200))
    settled(gw)
    base = vmrss_kib(gw.proc.pid)
    for _ in range(2):
        assert sorted(run(many(200), timeout=120)) == list(range(200))
        settled(gw)
    assert metric_sum(gw, "hms_websocket_tunnels_total") == 600
    grown = vmrss_kib(gw.proc.pid) - base
    assert grown < 4 * 1024, f"RSS grew {grown} KiB over 400 more tunnels"


def test_warm_tunnels_allocate_nothing(ws_upstream, register, gateway):
    """Messages through an open tunnel, and whole tunnels once the core's
    slabs and pools have their size, take nothing from the heap."""
    register(ws_routes(ws_upstream.port))
    gw = gateway({"cores": 1})
    url = f"ws://127.0.0.1:{gw.port}/echo"

    async def talk(ws, n):
        for i in range(n):
            m = os.urandom(2000 + i % 3000)
            await ws.send(m)
            assert await ws.recv() == m

    async def tunnels(n):
        for _ in range(n):
            async with websockets.connect(url, ping_interval=None) as ws:
                await talk(ws, 3)

    async def warm_then_count():
        await tunnels(50)  # warm-up
        async with websockets.connect(url, ping_interval=None) as ws:
            await talk(ws, 200)
            before = metric_sum(gw, "hms_core_heap_allocations_total")
            await talk(ws, 1000)
            in_tunnel = metric_sum(gw, "hms_core_heap_allocations_total") - before
        before = metric_sum(gw, "hms_core_heap_allocations_total")
        await tunnels(100)
        return in_tunnel, metric_sum(gw, "hms_core_heap_allocations_total") - before
    in_tunnel, whole = run(warm_then_count(), timeout=120)
    assert in_tunnel == 0, f"{in_tunnel} heap allocations in 1000 warm messages"
    assert whole == 0, f"{whole} heap allocations in 100 warm tunnels"


def test_one_span_covers_the_tunnels_whole_life(ws_upstream, register, gateway, tmp_path):
    from test_tracing import Collector, mesh_file
    collector = Collector()
    try:
        register(ws_routes(ws_upstream.port))
        gw = gateway({"mesh": mesh_file(tmp_path, {"otlp_endpoint": collector.endpoint})})
        trace = "6bf92f3577b34da6a3ce929d0e0e4736"

        async def a_second_long():
            async with websockets.connect(
                    f"ws://127.0.0.1:{gw.port}/echo", ping_interval=None,
                    extra_headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"}) as ws:
                for i in range(5):
                    await ws.send(str(i))
                    assert await ws.recv() == str(i)
                    await asyncio.sleep(0.25)
        run(a_second_long())
        (span,) = collector.wait_spans(trace, 1)
        assert span["attrs"]["http.response.status_code"] == 101
        assert span["attrs"]["http.route"] == "/echo"
        life_s = (int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e9
        assert life_s >= 1.0, life_s
    finally:
        collector.close()


def test_a_client_that_does_not_read_holds_back_its_upstream(ws_upstream, register, gateway):
    """Back-pressure both ways: a client that sends but does not read fills
    the kernel's buffers and the gateway's bounded queues (256 KiB toward each
    peer), then its own sends stop; the gateway's memory does not grow with
    what is pending, and every byte arrives once it reads."""
    register(ws_routes(ws_upstream.port))
    gw = gateway({"cores": 1})
    url = f"ws://127.0.0.1:{gw.port}/echo"
    msg = os.urandom(1 << 20)
    n = 128

    async def stall(count):
        """Until the sender stops making progress for a second: its count then."""
        last = -1
        while count() != last:
            last = count()
            await asyncio.sleep(1)
        return last

    async def flood():
        async with websockets.connect(url, ping_interval=None, max_size=None, compression=None,
                                      max_queue=1) as ws:
            sent = 0

            async def sender():
                nonlocal sent
                for _ in range(n):
                    await ws.send(msg)
                    sent += 1
            task = asyncio.create_task(sender())
            stalled = await stall(lambda: sent)
            peak = vmrss_kib(gw.proc.pid)
            for _ in range(n):
                assert await ws.recv() == msg
            await task
            return stalled, sent, peak

    # The first flood touches the pages of the core's receive-buffer ring and
    # block pool for the first time; the second must find them enough.
    run(flood(), timeout=120)
    settled(gw)
    base = vmrss_kib(gw.proc.pid)
    stalled_at, sent, peak = run(flood(), timeout=120)
    assert stalled_at < n, "the sender never stalled: nothing held it back"
    assert sent == n
    assert peak - base < 2 * 1024, f"RSS grew {peak - base} KiB with {stalled_at} MiB pending"
    settled(gw)


# ------------------------------------------------- over HTTP/2 (RFC 8441)
# websockets and curl do not speak extended CONNECT: the client is python3-h2
# with the WebSocket framing (RFC 6455 §5.2, masked as a client must) written
# here.


def ws_frame(payload, opcode=0x2):
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_unframe(buf):
    """(opcode, payload, rest) of the server's first whole frame in buf, or None."""
    if len(buf) < 2:
        return None
    n, at = buf[1] & 0x7f, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, at = struct.unpack(">H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, at = struct.unpack(">Q", buf[2:10])[0], 10
    if len(buf) < at + n:
        return None
    return buf[0] & 0x0f, buf[at:at + n], buf[at + n:]


class H2WebSocket:
    """One extended-CONNECT stream on a python3-h2 connection."""

    def __init__(self, client, path="/echo", headers=()):
        import h2.settings
        self.c = client
        # RFC 8441 §3: the client waits for the server's SETTINGS to say so.
        code = h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL
        deadline = time.monotonic() + 5
        while self.c.conn.remote_settings.get(code) != 1:
            assert time.monotonic() < deadline, "no SETTINGS_ENABLE_CONNECT_PROTOCOL"
            self.c.pump()
        self.sid = self.c.request("CONNECT", path, end=False,
                                  headers=[(":protocol", "websocket"),
                                           ("sec-websocket-version", "13"), *headers])
        self.r = self.c.responses[self.sid]
        while self.r["status"] is None and self.r["reset"] is None and not self.r["ended"]:
            self.c.pump()

    def send(self, payload, opcode=0x2):
        self.c.send_body(self.sid, ws_frame(payload, opcode), end=False)

    def recv(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            got = ws_unframe(self.r["body"])
            if got is not None:
                self.r["body"] = got[2]
                return got[0], got[1]
            assert not self.r["ended"] and self.r["reset"] is None, self.r
            assert time.monotonic() < deadline, "no frame"
            self.c.pump()


def h2_ws_client(gw):
    from test_h2 import H2Client
    return H2Client(gw.port)


def test_h2_extended_connect_echoes_with_every_stamp(ws_upstream, register, gateway, tmp_path):
    register(ws_routes(ws_upstream.port))
    log = tmp_path / "access.log"
    gw = gateway({"access_log": {"path": str(log)}})
    c = h2_ws_client(gw)
    try:
        ws = H2WebSocket(c, headers=[("x-trace-id", TRACE)])
        assert ws.r["status"] == 200, ws.r  # RFC 8441 §5: a 2xx, not a 101
        assert "sec-websocket-accept" not in ws.r["headers"]
        assert ws.r["headers"].get("x-trace-id") == TRACE
        ws.send(b"hello", opcode=0x1)
        assert ws.recv() == (0x1, b"hello")
        big = os.urandom(300_000)  # past both sides' stream windows (64 KiB, 256 KiB)
        ws.send(big)
        assert ws.recv() == (0x2, big)
        # A plain stream on the same connection goes on beside the tunnel.
        assert c.wait(c.request("GET", "/stats"))["status"] == 200
        seen = stats(ws_upstream)["headers"]
        assert seen["upgrade"] == "websocket" and seen["connection"] == "upgrade"
        assert seen["sec-websocket-version"] == "13" and len(seen["sec-websocket-key"]) == 24
        assert seen["x-trace-id"] == TRACE
        # The client's END_STREAM is the upstream's FIN; the upstream's close
        # comes back as the stream's end.
        ws.send(struct.pack(">H", 1000), opcode=0x8)
        assert ws.recv()[0] == 0x8
        c.conn.end_stream(ws.sid)
        c.flush()
        c.wait(ws.sid)
        assert ws.r["reset"] is None
    finally:
        c.close()
    eventually(lambda: metric_sum(gw, "hms_websocket_tunnels_active"), lambda v: v == 0,
               timeout=10, what="the tunnel ends")
    assert metric_sum(gw, "hms_websocket_tunnels_total") == 1
    assert metric_sum(gw, "hms_websocket_bytes_total", direction="to_upstream") > len(big)
    assert metric_sum(gw, "hms_websocket_bytes_total", direction="to_client") > len(big)
    lines = eventually(lambda: [x for x in log_lines(log) if x["route"] == "/echo"], timeout=5,
                       what="the tunnel's access-log line")
    assert len(lines) == 1 and lines[0]["status"] == 200 and lines[0]["protocol"] == "HTTP/2"
    assert lines[0]["bytes_in"] > len(big) and lines[0]["bytes_out"] > len(big)


def test_h2_extended_connect_is_refused_where_the_route_says_no(echo_upstream, ws_upstream,
                                                                 register, gateway):
    register(ws_routes(ws_upstream.port))
    gw = gateway()
    c = h2_ws_client(gw)
    try:
        ws = H2WebSocket(c, path="/stats")  # a route without websocket: true
        c.wait(ws.sid)
        assert ws.r["status"] == 403 and ws.r["headers"]["x-hms-reason"] == "websocket_not_enabled", ws.r
        other = c.request("CONNECT", "/echo", end=False,
                          headers=[(":protocol", "connect-udp")])
        assert c.wait(other)["headers"]["x-hms-reason"] == "bad_protocol"
        assert c.wait(c.request("GET", "/stats"))["status"] == 200  # the connection goes on
    finally:
        c.close()


def test_h2_tunnel_reset_or_idle_ends_only_its_stream(ws_upstream, register, gateway):
    register(ws_routes(ws_upstream.port, echo_keys="    websocket_idle_timeout: 1s\n"))
    gw = gateway()
    before = stats(ws_upstream)["closed"]
    c = h2_ws_client(gw)
    try:
        a, b = H2WebSocket(c), H2WebSocket(c)
        a.send(b"x" * 1000)
        assert a.recv() == (0x2, b"x" * 1000)
        c.conn.reset_stream(a.sid)  # the client vanishes from this stream
        c.flush()
        eventually(lambda: stats(ws_upstream)["closed"], lambda n: n >= before + 1, timeout=10,
                   what="the upstream sees the reset stream's close")
        b.send(b"still here")
        assert b.recv() == (0x2, b"still here")
        start = time.monotonic()
        c.wait(b.sid)  # silent now: the idle timeout resets it
        assert b.r["reset"] is not None and time.monotonic() - start > 0.5
        assert c.wait(c.request("GET", "/stats"))["status"] == 200
    finally:
        c.close()
    assert metric_sum(gw, "hms_websocket_idle_timeouts_total") == 1
    eventually(lambda: metric_sum(gw, "hms_websocket_tunnels_active"), lambda v: v == 0,
               timeout=10, what="both tunnels end")


def test_h2_client_that_vanishes_mid_tunnel_frees_everything(ws_upstream, register, gateway):
    register(ws_routes(ws_upstream.port))
    gw = gateway()
    before = stats(ws_upstream)["closed"]
    c = h2_ws_client(gw)
    ws = H2WebSocket(c)
    ws.send(b"x" * 1000)
    assert ws.recv() == (0x2, b"x" * 1000)
    ws.send(os.urandom(200_000))  # mid-stream: its echo is still coming
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()  # a reset, no GOAWAY, no RST_STREAM
    eventually(lambda: stats(ws_upstream), lambda s: s["open"] == 0 and s["closed"] >= before + 1,
               timeout=10, what="the upstream sees the tunnel close")
    eventually(lambda: (metric_sum(gw, "hms_websocket_tunnels_active"),
                        metric_sum(gw, "hms_h2_streams_open")),
               lambda v: v == (0.0, 0.0), timeout=10, what="tunnel and stream let go")
    assert metric_sum(gw, "hms_upstream_idle_connections") == 0  # never pooled
