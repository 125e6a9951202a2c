#!/usr/bin/python3
"""Writes the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/).

Seeds come from the unit tests' cases (string literals of tests/unit/...),
the shipped configs, the auth fixtures, and real-world samples written here
(browser and curl requests, a ClientHello from Python's ssl module). Files are
named by content hash, so running this again only adds what is new:

    /usr/bin/python3 tests/fuzz/make_corpus.py

Each seed is prefixed with the control byte(s) its target reads first (see
the comment at the top of each target).
"""
import hashlib
import os
import re
import ssl
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def write(target, data):
    if isinstance(data, str):
        data = data.encode("latin-1")
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


LITERAL = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
ESCAPE = re.compile(r'\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)')


def unescape(s):
    def one(m):
        e = m.group(1)
        if e[0] == "x":
            return chr(int(e[1:], 16))
        if e[0] in "01234567":
            return chr(int(e, 8))
        return {"r": "\r", "n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}.get(e, e)
    return ESCAPE.sub(one, s)


def literals(path):
    """C++ string literals of a file, adjacent ones ("a" "b") joined."""
    text = open(os.path.join(ROOT, path), encoding="utf-8").read()
    out = []
    for line in text.splitlines():
        pieces = []
        last_end = None
        for m in LITERAL.finditer(line):
            if last_end is not None and line[last_end:m.start()].strip() == "" and pieces:
                pieces[-1] += unescape(m.group(1))
            else:
                pieces.append(unescape(m.group(1)))
            last_end = m.end()
        out.extend(pieces)
    return out


def http():
    max_byte = b"\x7f"  # http_request: head limit 64 + 127*64 = 8192
    reqs = [l for l in literals("tests/unit/http/parser_test.cc") if " HTTP/1." in l or "HTTP/2" in l]
    frags = [l for l in literals("tests/unit/http/parser_test.cc")
             if re.match(r"^[!-9;-~]+:.*\r\n$", l, re.S)]
    real = [
        "GET / HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) "
        "Gecko/20100101 Firefox/120.0\r\nAccept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
        "Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\n"
        "Upgrade-Insecure-Requests: 1\r\nSec-Fetch-Dest: document\r\n\r\n",
        "GET /sum/2/3 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
        "POST /v1/orders?dry_run=1 HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer abc.def.ghi\r\n"
        "Content-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"qty\": 1234}",
        "PUT /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
        "5\r\nhello\r\n0\r\n\r\n",
        "GET http://api.example.com:8080/x/../y?q=1 HTTP/1.1\r\nHost: other\r\n\r\n",
        "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /%2e%2e/%61dmin//x/./y HTTP/1.0\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    ]
    for r in reqs + real:
        write("http_request", max_byte + r.encode("latin-1"))
    for f in frags:
        write("http_request", max_byte + ("POST /p HTTP/1.1\r\nHost: example.com\r\n" + f + "\r\n").encode("latin-1"))
    write("http_request", b"\x00" + real[0].encode())  # a small head limit

    resps = [l for l in literals("tests/unit/http/parser_test.cc") if l.startswith("HTTP/")]
    resps += [
        "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 00:00:00 GMT\r\n"
        "Content-Type: text/html\r\nContent-Length: 615\r\nConnection: keep-alive\r\nETag: \"6400-267\"\r\n\r\n",
        "HTTP/1.1 200 OK\r\ndate: Sun, 06 Dec 2026 00:00:00 GMT\r\nserver: uvicorn\r\n"
        "content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close",
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    ]
    for r in resps:
        for method in (0, 1, 2):  # GET, HEAD, CONNECT in the low bits; limit 8256
            write("http_response", bytes([0x80 | method]) + r.encode("latin-1"))

    bodies = [l for l in literals("tests/unit/http/chunked_test.cc") if re.match(r"^[0-9a-fA-F]+[\r;\s]", l)]
    bodies += [
        "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n",
        "3;name=value\r\nabc\r\n0\r\nX-Checksum: abc\r\nX-Other:\t v v \r\n\r\n",
        "a ; a = \"q\\\"x;y\" ;b\r\n0123456789\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        "ffffffffffffffff\r\n",
        "0\r\n\r\n",
    ]
    for b in bodies:
        write("chunked", b"\x00" + b.encode("latin-1"))
        write("chunked", b"\x03\x00\x06\x10" + b.encode("latin-1"))  # pieces of 1, 7, 17 bytes


def paths():
    for l in literals("tests/unit/http/path_test.cc"):
        if l.startswith("/") or l.startswith("%") or l.startswith("\\"):
            write("path", l)
    for p in ["/", "/a/b/", "//a//b", "/a/./b/../../c", "/%7euser/%7Efile", "/x/%2F/y", "/a%5cb",
              "/caf%C3%A9", "/..", "/a/b/..", "/a/%2e%2E/%2e"]:
        write("path", p)


def routes():
    write("route_table",
          "GET 0 /users/me\nGET 0 /users/{id}\nGET 0 /users/{rest*}\nGET 0 /\nGET 0 /hello\n--\n"
          "GET 0 /users/me\nHEAD 1 /users/42\nGET 2 /users/a/b\nPOST 0 /users/me\nGET 0 /\nGET 3 /hello/\n")
    write("route_table",
          "GET 0 /a/b/{x}\nGET 0 /a/{y}/c\nGET 0 /a/{y}/d/{z}\nGET 0 /a/b/d/{w*}\n--\n"
          "GET 0 /a/b/c\nGET 0 /a/b/d/e\nGET 0 /a/b/d/\nGET 0 /a/q/d/z\n")
    write("route_table",
          "GET,HEAD 1 /files/{p*}\nPOST 0 /{rest*}\n* 2 /any\nGET 0 /dir/\nGET 0 /dir\n--\n"
          "GET 1 /files/a/b\nPOST 2 /files/a\nDELETE 3 /any\nGET 0 /dir/\nPUT 0 /dir\n")
    write("route_table", "GET 0 /a/{x}\nGET 0 /a/{y}\n--\nGET 0 /a/1\n")  # ambiguous: a build error


def auth():
    fixtures = os.path.join(ROOT, "tests", "unit", "auth", "fixtures")
    for line in open(os.path.join(fixtures, "tokens.txt")):
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#"):
            write("jwt", b"\x00" + parts[1].encode())
    for claims in [
        '{"iss":"https://id.hms.local","aud":"hms-api","sub":"alice","scope":"calc:read calc:write","exp":4102444800,"nbf":1699999000}',
        '{"iss":"https://id.hms.local","aud":["x","hms-api"],"sub":"b\\u00e9\\"q","exp":4102444800}',
        '{"exp":1.5e9,"nbf":"soon","aud":7}',
        '{"exp":4102444800,"iss":"https://id.hms.local","aud":"hms-api","tenant":"acme","n":null,"o":{"a":[1,2]}}',
        '[]',
    ]:
        write("jwt", b"\x01" + claims.encode())
    jwks = open(os.path.join(fixtures, "jwks.json"), "rb").read()
    write("jwks", jwks)
    write("jwks", b'{"keys":[{"kty":"oct","k":"UaLn6E_csXWrqRjcomd3wUPtHzY-aTwCkwl-vt9sYL0"}]}')
    write("jwks", b'{"keys":[{"kty":"EC","crv":"P-256","kid":"a","x":"BqWZ7fUvf1QcopNjj7De4hwq60tViqTRbG7s6CcknH8","y":"Q1p7zZQWGMKphNRKKsnAro_Yp4goxbUiPl64gxuHr6k","use":"sig"},'
                  b'{"kty":"EC","crv":"P-384","kid":"b","x":"AA","y":"AA"}]}')
    write("jwks", open(os.path.join(fixtures, "hs256.secret"), "rb").read())


def configs():
    for d, target in (("configs/routes", "route_file"), ("configs/demo/calc_svc", "route_file"),
                      ("configs/demo/hello_svc", "route_file")):
        for name in sorted(os.listdir(os.path.join(ROOT, d))):
            if name.endswith(".yaml"):
                write(target, open(os.path.join(ROOT, d, name), "rb").read())
    write("route_file", '{"service": "calc-svc", "endpoints": ["127.0.0.1:7002"], '
                        '"routes": [{"path": "/sum/{a}/{b}", "methods": ["GET"]}]}')
    for name in ("gateway.yaml", "sidecar.yaml", "mesh-config.yaml"):
        write("gateway_config", open(os.path.join(ROOT, "configs", name), "rb").read())
    write("gateway_config", "listeners:\n  - address: 127.0.0.1:0\n    tls: {cert: a.pem, key: a.key}\n"
                            "admin: off\ncores: 1\npaths: {merge_slashes: false, encoded_slashes: keep}\n")


def obs():
    def span(fields, numbers=(1, 2, 3, 200 | (1 << 16))):
        b = b"".join(struct.pack(">Q", n) for n in numbers)
        return b + b"\x00".join(f.encode() for f in fields) + b"\x00"
    res = b"hms-gateway\x000.1.0\x00gateway\x00"
    write("otlp", res + span(["GET", "/sum/{a}/{b}", "calc-svc", "api.example.com:8080",
                              "127.0.0.1:7002", "", "127.0.0.1", "spiffe://hms.local/svc/gateway"]))
    write("otlp", res + span(["BREW", "", "", "[::1]:99999", "", "circuit_open", "::1", ""],
                             (7, 5, 4, 503 | (3 << 16))))
    write("otlp", b"q\"uote\\d\x01\x00\x00\x00" + span(["GET", "/a", "s\x7f", "h\tx", "", "", "", ""]))
    write("exposition", b"Requests by route.\n\\ back\x00/sum/{a}/{b}\x00\x00\x00\x00\x00\x00\x00\x2a"
                        b"q\"u\\o\nte\x00\x7f\xf0\x00\x00\x00\x00\x00\x00")
    write("exposition", b"help\x00/\x00\x3f\xf8\x00\x00\x00\x00\x00\x00")


def tls():
    """ClientHellos as a real client sends them (Python's ssl, i.e. OpenSSL)."""
    for versions, alpn, sni in ((ssl.TLSVersion.TLSv1_3, ["http/1.1"], "calc-svc"),
                                (ssl.TLSVersion.TLSv1_2, ["h2", "http/1.1"], "api.example.org"),
                                (None, None, None)):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if versions is not None:
            ctx.minimum_version = versions
            ctx.maximum_version = versions
        if alpn:
            ctx.set_alpn_protocols(alpn)
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_hostname=sni)
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = out.read()
        write("tls_server", b"\x00" + hello)  # whole, plain server
        write("tls_server", b"\x03" + hello)  # 37-byte pieces, client certificates asked


def resp():
    """Redis replies as the fleet client sees them: its handshake's answers,
    the GCRA script's arrays, NOSCRIPT and other errors, in one stream."""
    sha = b"$40\r\n" + b"e0e1f9fabfc9d4800c877a703b823ac0578ff8db" + b"\r\n"
    gcra = b"*3\r\n:2\r\n:0\r\n:6000000\r\n"
    for cut, stream in ((0, b"+OK\r\n" + sha + gcra * 4),
                        (128, b"+OK\r\n" + sha + b"-NOSCRIPT No matching script. Please use EVAL.\r\n"
                         + gcra * 4),
                        (7, b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"),
                        (200, b"+OK\r\n$-1\r\n*-1\r\n:-1\r\n-ERR busy\r\n*2\r\n*1\r\n$0\r\n\r\n+x\r\n"),
                        (90, b"+OK\r\n" + sha + b"*3\r\n:0\r\n:2999817\r\n:60000000\r\n:1\r\n")):
        write("resp_reply", bytes([cut]) + stream)


def h2():
    """HTTP/2 client byte streams from python3-h2 (a client other than the
    nghttp2 the server side is built on), each from the connection preface."""
    try:
        import h2.config
        import h2.connection
        import h2.settings
    except ImportError:
        print("h2_server: python3-h2 is not installed (tools/bootstrap installs it); no seeds")
        return

    def conn(validate=True):
        c = h2.connection.H2Connection(config=h2.config.H2Configuration(
            client_side=True, validate_outbound_headers=validate,
            normalize_outbound_headers=validate))
        c.initiate_connection()
        return c

    get = [(":method", "GET"), (":scheme", "https"), (":authority", "api.example.com"),
           (":path", "/v1/items/./42?limit=10"), ("accept", "*/*"), ("cookie", "a=1"),
           ("cookie", "b=2"), ("user-agent", "h2-seed")]
    seeds = []
    c = conn()
    c.send_headers(1, get, end_stream=True)
    seeds.append(c.data_to_send())
    c = conn()  # a POST with a length and two DATA frames, one padded
    c.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", "svc"),
                       (":path", "/upload"), ("content-length", "10")])
    c.send_data(1, b"hello")
    c.send_data(1, b"world", end_stream=True, pad_length=7)
    seeds.append(c.data_to_send())
    c = conn()  # gRPC-like: no length, a message, trailers
    c.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", "calc"),
                       (":path", "/calc.Calc/Sum"), ("content-type", "application/grpc"),
                       ("te", "trailers"), ("grpc-timeout", "1S")])
    c.send_data(1, b"\x00\x00\x00\x00\x04\x08\x02\x10\x03")
    c.send_headers(1, [("grpc-status", "0"), ("x-sum", "5")], end_stream=True)
    seeds.append(c.data_to_send())
    c = conn()  # many streams, a ping, a priority, a window update, resets, a goaway
    for i in range(12):
        c.send_headers(1 + 2 * i, get[:3] + [(":path", "/s/%d" % i)], end_stream=(i % 3 != 0))
    c.ping(b"12345678")
    c.prioritize(3, weight=200, depends_on=1)
    c.increment_flow_control_window(100000)
    c.reset_stream(1)
    c.reset_stream(7)
    c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    c.close_connection()
    seeds.append(c.data_to_send())
    c = conn()  # a head split over CONTINUATION frames
    c.max_outbound_frame_size = 16384
    c.send_headers(1, get + [("x-long-%d" % i, "v" * 900) for i in range(30)], end_stream=True)
    seeds.append(c.data_to_send())
    c = conn(validate=False)  # heads the rules refuse
    bad = [[("X-Upper", "1")], [("connection", "close")], [("te", "gzip")],
           [(":path", "/again")], [("host", "other.example")], [("content-length", "x")]]
    for i, extra in enumerate(bad):
        c.send_headers(1 + 2 * i, get[:4] + extra, end_stream=True)
    c.send_headers(1 + 2 * len(bad), [(":method", "GET"), (":scheme", "https"),
                                       (":authority", "e"), (":path", "/a/%2e%2e/%2e%2e/x")],
                   end_stream=True)
    seeds.append(c.data_to_send())
    for data in seeds:
        write("h2_server", b"\x00" + data)  # whole, default limits
        write("h2_server", b"\x01" + data)  # whole, tight limits
        write("h2_server", b"\x0a" + data)  # 36-byte pieces
        if len(data) < 7000:
            # Through a whole worker (target engine, h2c): the bytes in sends
            # of at most 255 (op 0), then a read (op 3).
            pieces = (data[i:i + 255] for i in range(0, len(data), 255))
            write("engine", b"".join(b"\x00" + bytes([len(p)]) + p for p in pieces) + b"\x03")


def h2_client():
    """Upstream-to-gateway bytes for tests/fuzz/h2_client.cc: answers to the
    four streams the target opens (1 GET, 3 POST, 5 GET, 7 gRPC POST)."""
    try:
        import h2.config
        import h2.connection
        import h2.errors
    except ImportError:
        print("h2_client: python3-h2 is not installed (tools/bootstrap installs it); no seeds")
        return

    def pair():
        cfg = dict(validate_outbound_headers=False, normalize_outbound_headers=False,
                   validate_inbound_headers=False)
        c = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, **cfg))
        s = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False, **cfg))
        c.initiate_connection()
        for i, path in ((1, "/1"), (3, "/3"), (5, "/5"), (7, "/calc.Calc/Sum")):
            c.send_headers(i, [(":method", "GET"), (":scheme", "http"), (":authority", "svc"),
                               (":path", path)], end_stream=True)
        s.initiate_connection()
        s.receive_data(c.data_to_send())
        s.data_to_send()  # only what follows is the seed: the preface goes first below
        s2 = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False, **cfg))
        s2.initiate_connection()
        return s, s2.data_to_send()

    seeds = []
    s, preface = pair()  # plain answers, one with a body in two frames
    s.send_headers(1, [(":status", "200"), ("content-type", "text/plain")])
    s.send_data(1, b"hello ")
    s.send_data(1, b"world", end_stream=True)
    s.send_headers(3, [(":status", "201"), ("content-length", "0")], end_stream=True)
    s.send_headers(5, [(":status", "100")])
    s.send_headers(5, [(":status", "204")], end_stream=True)
    seeds.append(preface + s.data_to_send())
    s, preface = pair()  # gRPC: a message and trailers; a trailers-only answer
    s.send_headers(7, [(":status", "200"), ("content-type", "application/grpc")])
    s.send_data(7, b"\x00\x00\x00\x00\x02\x08\x05")
    s.send_headers(7, [("grpc-status", "0"), ("grpc-message", "ok%20fine")], end_stream=True)
    s.send_headers(1, [(":status", "200"), ("content-type", "application/grpc"),
                       ("grpc-status", "14"), ("grpc-message", "unavailable")], end_stream=True)
    seeds.append(preface + s.data_to_send())
    s, preface = pair()  # resets, a ping, a window update, a GOAWAY above stream 3
    s.reset_stream(1, h2.errors.ErrorCodes.REFUSED_STREAM)
    s.ping(b"12345678")
    s.increment_flow_control_window(1000)
    s.send_headers(3, [(":status", "200")])
    s.send_data(3, b"x" * 3000)
    s.close_connection(error_code=h2.errors.ErrorCodes.NO_ERROR, last_stream_id=3)
    seeds.append(preface + s.data_to_send())
    s, preface = pair()  # a large head, and a malformed one (no :status)
    s.send_headers(1, [(":status", "200")] + [("x-f%d" % i, "v" * 100) for i in range(30)],
                   end_stream=True)
    s.send_headers(3, [("x-no-status", "1")], end_stream=True)
    seeds.append(preface + s.data_to_send())
    for data in seeds:
        write("h2_client", b"\x00" + data)  # whole, default limits
        write("h2_client", b"\x01" + data)  # whole, tight limits
        write("h2_client", b"\x0a" + data)  # 36-byte pieces


if __name__ == "__main__":
    http()
    paths()
    routes()
    auth()
    configs()
    obs()
    tls()
    resp()
    h2()
    h2_client()
    for t in sorted(os.listdir(OUT)):
        print(t, len(os.listdir(os.path.join(OUT, t))))
