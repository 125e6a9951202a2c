"""A misbehaving-on-demand upstream for the retry, timeout and load-balancing
tests (FastAPI under uvicorn; counters live in this one process).

ANY /fail/{key}/{n}?code=503&slow_ms=0
    The first n calls for `key` fail: with status `code`, or, with slow_ms,
    by sleeping that long first; later calls answer 200. Every answer is
    {"call": k, "body_len": bytes received, "port": this server's port}.
GET /calls/{key}   how many calls `key` has had
GET /who?ms=0      {"port": ...} after sleeping ms milliseconds; while the
                   server is down (FLAKY_DOWN=1 in its environment, or after
                   POST /down) it answers 503
POST /down, /up    switch that
"""
import asyncio
import collections
import os

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()
calls = collections.Counter()
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


@app.api_route("/fail/{key}/{n}", methods=METHODS)
async def fail(key: str, n: int, request: Request, code: int = 503, slow_ms: int = 0):
    body = await request.body()
    calls[key] += 1
    k = calls[key]
    answer = {"call": k, "body_len": len(body), "port": request.scope["server"][1],
              "timeout_ms": request.headers.get("x-hms-timeout-ms")}
    if k <= n:
        if slow_ms:
            await asyncio.sleep(min(slow_ms, 30_000) / 1000)
        else:
            return JSONResponse(answer, status_code=code)
    return answer


@app.get("/calls/{key}")
async def count(key: str):
    return {"calls": calls[key]}


state = {"down": os.environ.get("FLAKY_DOWN") == "1"}


@app.post("/down")
async def down():
    state["down"] = True
    return {"down": True}


@app.post("/up")
async def up():
    state["down"] = False
    return {"down": False}


@app.get("/who")
async def who(request: Request, ms: int = 0):
    calls["who"] += 1
    if ms:
        await asyncio.sleep(min(ms, 30_000) / 1000)
    answer = {"port": request.scope["server"][1]}
    return JSONResponse(answer, status_code=503) if state["down"] else answer
