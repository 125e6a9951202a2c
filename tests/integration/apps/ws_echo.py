"""A WebSocket upstream for tests/integration/test_websocket.py, on Debian's
python3-websockets (10.x, asyncio).

Listens on 127.0.0.1 (port 0 unless given as argv[1]), prints "port N" on
stdout once listening, and serves by path:

  /echo            echoes every message (text or binary, any size) until closed
  /close           closes (1000) right after the handshake
  /reject          answers the upgrade 403 (a normal HTTP answer, no 101)
  /stats           plain HTTP: {"open": N, "closed": N, "headers": {...}} where
                   headers are those of the last upgrade request it accepted

No keepalive pings (a test times the gateway's idle timeout). Runs until SIGTERM.
"""
import asyncio
import http
import json
import sys

import websockets

STATE = {"open": 0, "closed": 0, "headers": {}}


async def handler(ws, path=None):
    path = path or ws.path
    STATE["open"] += 1
    STATE["headers"] = {k.lower(): v for k, v in ws.request_headers.raw_items()}
    try:
        if path == "/close":
            await ws.close(1000, "bye")
            return
        async for message in ws:
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass
    finally:
        STATE["open"] -= 1
        STATE["closed"] += 1


async def process_request(path, headers):
    if path == "/stats":
        body = json.dumps(STATE).encode()
        return http.HTTPStatus.OK, [("Content-Type", "application/json")], body
    if path == "/reject":
        return http.HTTPStatus.FORBIDDEN, [("Content-Type", "text/plain")], b"not you\n"
    return None


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    async with websockets.serve(handler, "127.0.0.1", port, process_request=process_request,
                                max_size=None, ping_interval=None) as server:
        print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
