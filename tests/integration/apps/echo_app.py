"""Echo upstream for the integration suite (FastAPI, run under uvicorn).

POST /echo            returns the request body as received
ANY  /headers         returns the method, path, query and the headers as received
GET  /stream?n=&size=&delay_ms=
                      a chunked response of n pieces "0000xxx…", "0001xxx…", …
GET  /slow?ms=        answers after sleeping ms milliseconds
GET  /status/{code}   answers with that status code
"""
import asyncio

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

app = FastAPI()

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


@app.post("/echo")
async def echo(request: Request):
    body = await request.body()
    return Response(content=body,
                    media_type=request.headers.get("content-type", "application/octet-stream"))


@app.api_route("/headers", methods=ALL_METHODS)
async def headers(request: Request):
    return {
        "method": request.method,
        "path": request.url.path,
        "query": request.url.query,
        "headers": [[k.decode("latin-1"), v.decode("latin-1")]
                    for k, v in request.scope["headers"]],
    }


def piece(i: int, size: int) -> bytes:
    head = f"{i:04d}"
    return (head + "x" * max(0, size - len(head))).encode()


@app.get("/stream")
async def stream(n: int = 5, size: int = 16, delay_ms: int = 0):
    n = min(max(n, 0), 10_000)
    size = min(max(size, 4), 1 << 20)
    delay = min(max(delay_ms, 0), 5_000) / 1000

    async def pieces():
        for i in range(n):
            yield piece(i, size)
            if delay:
                await asyncio.sleep(delay)

    return StreamingResponse(pieces(), media_type="application/octet-stream")


@app.get("/slow")
async def slow(ms: int = 1000):
    ms = min(max(ms, 0), 30_000)
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}


@app.get("/status/{code}")
async def status(code: int):
    if code < 200 or code in (204, 304):
        return Response(status_code=code)
    return JSONResponse({"status": code}, status_code=code)
