"""A misbehaving HTTP upstream in plain Python, for the 502 tests.

Listens on 127.0.0.1 (port 0 unless given as argv[1]), prints "port N" on
stdout once listening, and answers each request by its path:

  /truncated       half a response head, then closes
  /garbage         bytes that are not HTTP, then closes
  /reset           a complete head announcing 1 MiB, 64 KiB of body, then a TCP reset
  /truncated-body  a head announcing 100 bytes, 5 bytes of body, then closes
  /ws-bad-accept   101 to a WebSocket upgrade with a Sec-WebSocket-Accept that
                   is not the key's, then holds the connection for 5 s
  /hop-by-hop?n=N  200 whose fields X-Hop-0..N-1 are each named by a Connection
                   field of their own (N of them), plus X-End-To-End
  anything else    200 with a small body (so the service itself looks alive)

Runs until SIGTERM; every connection is bounded by a 10 s socket timeout.
"""
import socket
import struct
import sys
import threading

MAX_HEAD = 64 * 1024


def read_head(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        data += chunk
        if len(data) > MAX_HEAD:
            return None
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def reset(conn):
    # SO_LINGER with a zero timeout turns close() into a RST.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def serve(conn):
    try:
        conn.settimeout(10)
        line = read_head(conn)
        if line is None:
            return
        parts = line.split(" ")
        path, _, query = (parts[1] if len(parts) > 1 else "/").partition("?")
        if path == "/truncated":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Le")
        elif path == "/garbage":
            conn.sendall(b"\x00\x01 this is not HTTP at all \xff\xfe\r\n\r\n")
        elif path == "/reset":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Length: 1048576\r\n\r\n" + b"r" * 65536)
            reset(conn)
            return
        elif path == "/truncated-body":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
        elif path == "/ws-bad-accept":
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            conn.settimeout(5)
            try:
                conn.recv(1)
            except OSError:
                pass
        elif path == "/hop-by-hop":
            n = int(query.partition("n=")[2] or "5")
            named = "".join(f"X-Hop-{i}: {i}\r\n" for i in range(n))
            connection = "".join(f"Connection: X-Hop-{i}\r\n" for i in range(n))
            conn.sendall(("HTTP/1.1 200 OK\r\n" + named + connection +
                          "X-End-To-End: kept\r\nContent-Length: 2\r\n\r\nok").encode())
        else:
            body = b'{"bad_upstream":"alive"}'
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        conn.close()
    except OSError:
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
