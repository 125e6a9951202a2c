"""A third service for the sidecar chain: it reaches calc-svc through its own
sidecar's egress listener ($HMS_EGRESS, host:port), by Host (`?by=host`) or
by path prefix (`?by=path`), and passes the caller's x-trace-id along."""
import json
import os
import urllib.request

from fastapi import FastAPI, Request

app = FastAPI()
EGRESS = os.environ["HMS_EGRESS"]


@app.get("/total/{a}/{b}")
def total(a: int, b: int, request: Request, by: str = "host"):
    if by == "host":
        req = urllib.request.Request(f"http://{EGRESS}/sum/{a}/{b}", headers={"Host": "calc-svc"})
    else:
        req = urllib.request.Request(f"http://{EGRESS}/calc-svc/sum/{a}/{b}")
    trace = request.headers.get("x-trace-id")
    if trace:
        req.add_header("x-trace-id", trace)
    with urllib.request.urlopen(req, timeout=10) as r:
        return {"total": json.loads(r.read())["sum"], "trace": r.headers.get("x-trace-id")}
