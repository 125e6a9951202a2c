"""Routing stamp (404/405 with JSON bodies), trace ids and the headers the
upstream receives (DESIGN §5)."""
import json
import re

import httpraw

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def upstream_headers(resp):
    assert resp.status == 200, resp
    return {k: v for k, v in resp.json()["headers"]}


def upstream_header_names(resp):
    return [k for k, _ in resp.json()["headers"]]


def test_unknown_path_is_404_json(echo_gateway):
    r = httpraw.get(echo_gateway.port, "/no/such/route")
    assert r.status == 404, r
    body = r.json()
    assert set(body) >= {"error", "reason", "trace_id"}, body
    assert r.header("x-hms-reason"), r
    assert r.header("x-trace-id") == body["trace_id"], r
    assert (r.header("content-type") or "").startswith("application/json"), r


def test_wrong_method_is_405_with_allow(echo_gateway):
    r = httpraw.request(echo_gateway.port, "DELETE", "/stream")
    assert r.status == 405, r
    allow = [m.strip() for m in (r.header("allow") or "").split(",")]
    assert "GET" in allow, r
    assert "DELETE" not in allow, r
    assert set(r.json()) >= {"error", "reason", "trace_id"}
    assert r.header("x-hms-reason"), r


def test_trace_id_from_x_trace_id_is_echoed(echo_gateway):
    r = httpraw.get(echo_gateway.port, "/status/200", {"x-trace-id": "7f23ab7f23ab7f23"})
    assert r.status == 200, r
    assert r.header("x-trace-id") == "7f23ab7f23ab7f23", r


def test_trace_id_from_traceparent_is_echoed(echo_gateway):
    r = httpraw.get(echo_gateway.port, "/status/200", {"traceparent": TRACEPARENT})
    assert r.status == 200, r
    assert r.header("x-trace-id") == "4bf92f3577b34da6a3ce929d0e0e4736", r


def test_b3_header_starts_the_trace_and_tracestate_passes_untouched(echo_gateway):
    r = httpraw.get(echo_gateway.port, "/headers",
                    {"b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
                     "tracestate": "vendor=opaque,other=1"})
    assert r.header("x-trace-id") == "80f198ee56343ba864fe8b2a57d3eff7", r
    h = upstream_headers(r)
    assert h["traceparent"].startswith("00-80f198ee56343ba864fe8b2a57d3eff7-"), h
    assert not h["traceparent"].startswith("00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1")
    assert h["tracestate"] == "vendor=opaque,other=1", h
    # traceparent wins over b3 when both come.
    r = httpraw.get(echo_gateway.port, "/status/200",
                    {"b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1", "traceparent": TRACEPARENT})
    assert r.header("x-trace-id") == "4bf92f3577b34da6a3ce929d0e0e4736", r


def test_trace_id_made_when_absent_and_unique(echo_gateway):
    a = httpraw.get(echo_gateway.port, "/status/200").header("x-trace-id")
    b = httpraw.get(echo_gateway.port, "/status/200").header("x-trace-id")
    assert a and b and a != b


def test_upstream_receives_trace_and_forwarding_headers(echo_gateway):
    r = httpraw.get(echo_gateway.port, "/headers", {"traceparent": TRACEPARENT})
    h = upstream_headers(r)
    assert h.get("x-trace-id") == "4bf92f3577b34da6a3ce929d0e0e4736", h
    tp = h.get("traceparent", "")
    m = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})", tp)
    assert m, f"upstream traceparent {tp!r}"
    assert m.group(1) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert m.group(2) != "00f067aa0ba902b7", "the gateway must forward a new span id"
    assert h.get("x-forwarded-for", "").split(",")[-1].strip() == "127.0.0.1", h
    assert h.get("x-forwarded-proto") == "http", h
    # The response to the client carries the same trace id.
    assert r.header("x-trace-id") == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_upstream_gets_trace_headers_without_client_ones(echo_gateway):
    h = upstream_headers(httpraw.get(echo_gateway.port, "/headers"))
    assert h.get("x-trace-id"), h
    assert h.get("traceparent", "").startswith("00-"), h


def test_hop_by_hop_headers_not_forwarded(echo_gateway):
    r = httpraw.get(echo_gateway.port, "/headers", [
        ("Connection", "keep-alive, foo"),
        ("foo", "bar"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Proxy-Authorization", "Basic eDp5"),
        ("X-Kept", "yes"),
    ])
    names = upstream_header_names(r)
    h = upstream_headers(r)
    for hop in ("foo", "keep-alive", "te", "proxy-authorization"):
        assert hop not in names, f"{hop} forwarded upstream: {h}"
    assert "foo" not in h.get("connection", ""), h
    assert h.get("x-kept") == "yes", h


def test_request_body_and_query_reach_upstream(echo_gateway):
    r = httpraw.request(echo_gateway.port, "POST", "/echo",
                        {"Content-Type": "application/json"}, json.dumps({"a": 1}).encode())
    assert r.status == 200 and r.json() == {"a": 1}, r
    r = httpraw.get(echo_gateway.port, "/headers?x=1&y=two")
    assert r.json()["query"] == "x=1&y=two"


def test_local_answer_to_head_has_no_body(echo_gateway):
    """A 404 to HEAD carries the fields of the GET answer and no body, so the
    next response on the connection is read from the right byte."""
    with httpraw.Conn(echo_gateway.port) as c:
        c.send(b"HEAD /nope HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\n")
        head = c.read_response(method="HEAD")
        assert head.status == 404 and head.body == b""
        assert int(head.header("content-length")) > 0
        follow = c.read_response()
        assert follow.status == 404 and follow.json()["reason"] == "no_route"
