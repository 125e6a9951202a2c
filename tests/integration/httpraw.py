"""A small HTTP/1.1 client over raw sockets, for tests that must control every
byte on the wire (framing errors, pipelining, hop-by-hop headers) and see
exactly what comes back. Loopback only; every read is bounded by a timeout."""
import json
import socket
import time


class Response:
    def __init__(self, version, status, reason, headers, body):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # [(lower-case name, value)] in arrival order
        self.body = body

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return (f"<Response {self.version} {self.status} {self.reason} "
                f"headers={self.headers} body={self.body[:200]!r}>")


class PeerClosed(Exception):
    pass


class Conn:
    def __init__(self, port, host="127.0.0.1", timeout=10.0, tls=None, server_name=None,
                 session=None):
        """tls: an ssl.SSLContext to speak TLS with (server_name as SNI, session to resume)."""
        assert host.startswith("127."), "tests talk to loopback only"
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=server_name, session=session)
        self.buf = b""
        self.eof = False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        if self.eof:
            return False
        try:
            chunk = self.sock.recv(1 << 16)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _take(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise PeerClosed(f"connection closed with {len(self.buf)} of {n} bytes")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self, limit=1 << 16):
        while b"\r\n" not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("line too long")
            if not self._fill():
                raise PeerClosed(f"connection closed inside a line: {self.buf[:200]!r}")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_head(self):
        """Reads one response head (status line and headers)."""
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise ValueError("response head over 1 MiB")
            if not self._fill():
                raise PeerClosed(f"connection closed before a full head: {self.buf[:300]!r}")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        status, _, reason = rest.partition(" ")
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        return version, int(status), reason, headers

    def read_response(self, method="GET", skip_1xx=True):
        while True:
            version, status, reason, headers = self.read_head()
            if not (skip_1xx and 100 <= status < 200 and status != 101):
                break
        resp = Response(version, status, reason, headers, b"")
        te = (resp.header("transfer-encoding") or "").lower()
        cl = resp.header("content-length")
        if method == "HEAD" or status < 200 or status in (204, 304):
            return resp
        if "chunked" in te:
            body = []
            while True:
                size = int(self._line().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self._line() != b"":
                        pass
                    break
                body.append(self._take(size))
                if self._take(2) != b"\r\n":
                    raise ValueError("chunk data not followed by CRLF")
            resp.body = b"".join(body)
        elif cl is not None:
            resp.body = self._take(int(cl))
        else:
            while self._fill():
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def closed_by_peer(self, timeout=3.0):
        """Reads until the peer closes (EOF or reset) or `timeout` passes; True if
        it closed. Bytes that arrive meanwhile are kept in self.buf."""
        deadline = time.monotonic() + timeout
        old = self.sock.gettimeout()
        try:
            while not self.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)
                try:
                    self._fill()
                except socket.timeout:
                    return False
            return True
        finally:
            self.sock.settimeout(old)


def build(method, path, headers=None, body=b"", version="HTTP/1.1"):
    """Builds a request; adds Host and Content-Length unless given."""
    headers = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {k.lower() for k, _ in headers}
    if "host" not in names:
        headers.insert(0, ("Host", "127.0.0.1"))
    if body and "content-length" not in names and "transfer-encoding" not in names:
        headers.append(("Content-Length", str(len(body))))
    out = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return out.encode("latin-1") + b"\r\n" + body


def request(port, method, path, headers=None, body=b"", timeout=10.0):
    """One request on a fresh connection."""
    with Conn(port, timeout=timeout) as c:
        c.send(build(method, path, headers, body))
        return c.read_response(method)


def get(port, path, headers=None, timeout=10.0):
    return request(port, "GET", path, headers, timeout=timeout)
