"""Upload sink: a raw-socket HTTP/1.1 server that reads every request body
(Content-Length or chunked) to the end and answers {"bytes": N}.

Listens on 127.0.0.1 (port 0 unless given as argv[1]), prints "port N" on
stdout once listening; keep-alive; runs until SIGTERM; each connection is
bounded by a 60 s socket timeout.
"""
import json
import socket
import sys
import threading

BUF = 1 << 20
MAX_HEAD = 64 * 1024


def read_body_cl(f, length, buf):
    view = memoryview(buf)
    left = length
    while left:
        n = f.readinto(view[:min(left, len(buf))])
        if not n:
            raise ConnectionError("body ended early")
        left -= n
    return length


def read_body_chunked(f, buf):
    view = memoryview(buf)
    total = 0
    while True:
        line = f.readline(1024)
        if not line.endswith(b"\r\n"):
            raise ConnectionError("bad chunk line")
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while f.readline(1024) not in (b"\r\n", b""):  # trailers
                pass
            return total
        left = size
        while left:
            n = f.readinto(view[:min(left, len(buf))])
            if not n:
                raise ConnectionError("chunk ended early")
            left -= n
        total += size
        if f.read(2) != b"\r\n":
            raise ConnectionError("chunk not followed by CRLF")


def serve(conn):
    buf = bytearray(BUF)
    try:
        conn.settimeout(60)
        f = conn.makefile("rb", buffering=BUF)
        while True:
            head = []
            size = 0
            while True:
                line = f.readline(MAX_HEAD)
                if not line:
                    return
                size += len(line)
                if line in (b"\r\n", b"\n") or size > MAX_HEAD:
                    break
                head.append(line.decode("latin-1").rstrip("\r\n"))
            if not head:
                return
            headers = {}
            for h in head[1:]:
                name, _, value = h.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                n = read_body_chunked(f, buf)
            else:
                n = read_body_cl(f, int(headers.get("content-length", "0")), buf)
            body = json.dumps({"bytes": n}).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            if headers.get("connection", "").lower() == "close":
                return
    except (OSError, ValueError, ConnectionError):
        pass
    finally:
        conn.close()


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(128)
    print(f"port {srv.getsockname()[1]}", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
