"""One canonical path, checked and served (docs/engine.md "The canonical path").

A route's stamps are keyed by the route its path selects, so the gateway must
route on the same path the upstream serves. Against nginx (which normalizes
paths itself) with `/secret` behind JWT and an open `/{rest*}`, no spelling of
`/secret` reaches the secret without a token; absolute-form targets are routed
on their authority and go upstream in origin-form with that authority as Host;
the two relaxations (`paths:` in gateway.yaml) do what they say.
"""

import pytest

import httpraw
from conftest import NGINX_HEAD, RawUpstream, closed_port, eventually, start_nginx
from test_jwt import AUD, ISS, SECRET, token
from test_metrics import scrape, value

NGINX_CONF = NGINX_HEAD + """\
    server {{
        listen 127.0.0.1:{port};
        default_type text/plain;
        location = /secret {{ return 200 "THE-SECRET\\n"; }}
        location = /admin/users {{ return 200 "THE-ADMIN-LIST\\n"; }}
        location / {{ return 200 "open $uri\\n"; }}
    }}
}}
"""

# Finding 1 of issue 11: each spelling reached nginx's /secret (or
# /admin/users) through the open catch-all.
SPELLINGS = [
    "/x/../secret",
    "/./secret",
    "//secret",
    "/%73ecret",
    "/x/%2e%2e/secret",
    "/x/.%2E/secret",
    "/x/..%2fsecret",
    "/%61dmin/users",
    "/admin%2fusers",
    "/admin/./users",
    "/x/..%2Fsecret?a=1",
    "http://127.0.0.1/x/../secret",
    "http://127.0.0.1//secret",
    "/..%2fsecret",
    "/../secret",
    "/%2e%2e/secret",
    "/secret%00",
    "/x%5c../secret",
    "/x\\../secret",
]


@pytest.fixture
def nginx(procs, tmp_path):
    """nginx (1 worker) serving /secret, /admin/users and an open '/'."""
    d = tmp_path / "nginx"
    (d / "tmp").mkdir(parents=True)
    _, port = start_nginx(procs, d, NGINX_CONF)
    return port


def echo_head(head):
    """Answers a request with its head, byte for byte, as the body: what the
    gateway really sent."""
    head = head[:-2]  # one CRLF after the last field, as the head was read
    return (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
            b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(head) + head)


@pytest.fixture
def head_echo():
    e = RawUpstream(echo_head)
    yield e
    e.close()


def jwt_section(tmp_path):
    secret = tmp_path / "jwt-secret"
    secret.write_text(SECRET + "\n")
    return {"issuer": ISS, "audience": AUD, "hs256_secret_file": str(secret), "leeway": "5s"}


@pytest.fixture
def secret_gateway(nginx, register, gateway, tmp_path):
    register("service: nginx-svc\nroutes:\n"
             "  - path: /secret\n"
             "  - path: /admin/users\n"
             "  - path: /{rest*}\n    auth: none\n"
             f"endpoints: [127.0.0.1:{nginx}]\n")
    return gateway({"jwt": jwt_section(tmp_path)})


def get(port, target, tok=None):
    headers = {"Authorization": f"Bearer {tok}"} if tok else None
    return httpraw.get(port, target, headers=headers)


def test_nginx_itself_serves_every_spelling_as_the_secret(nginx):
    # The premise: the upstream resolves these spellings to the protected
    # resource, so the gateway must not route them anywhere else.
    for target in ["/x/../secret", "//secret", "/%73ecret", "/x/..%2fsecret", "/%61dmin/users"]:
        r = httpraw.get(nginx, target)
        assert r.status == 200 and b"THE-" in r.body, (target, r)


@pytest.mark.parametrize("target", SPELLINGS)
def test_no_spelling_reaches_the_protected_route_without_a_token(secret_gateway, target):
    r = get(secret_gateway.port, target)
    assert r.status in (400, 401), (target, r)
    assert b"THE-" not in r.body, (target, r)
    if r.status == 400:
        assert r.header("x-hms-reason") == "bad_path", r
        body = r.json()
        assert body["reason"] == "bad_path", body
        assert body["error"].startswith("bad path ("), body
    else:
        assert r.header("x-hms-reason") == "jwt_missing_token", r


@pytest.mark.parametrize("target,rule", [
    ("/x/..%2fsecret", "encoded_slash"),
    ("/admin%2Fusers", "encoded_slash"),
    ("/a%5Cb", "backslash"),
    ("/a\\b", "backslash"),
    ("/a%00b", "control"),
    ("/a%0d%0ab", "control"),
    ("/a%zz", "bad_escape"),
    ("/a%4", "bad_escape"),
    ("/../x", "above_root"),
    ("/a/../../x", "above_root"),
    ("/%2e%2e/x", "above_root"),
    ("/.%2E/x", "above_root"),
])
def test_ambiguous_paths_are_refused_naming_the_rule(secret_gateway, target, rule):
    with httpraw.Conn(secret_gateway.port) as c:
        c.send(httpraw.build("GET", target))
        r = c.read_response()
        assert r.status == 400, (target, r)
        assert r.header("x-hms-reason") == "bad_path", r
        assert r.json()["error"].startswith(f"bad path ({rule}): "), r.json()
        # A refused path is not a framing error: the connection carries on.
        c.send(httpraw.build("GET", "/open"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"open /open\n", r


@pytest.mark.parametrize("target", ["/secret", "/x/../secret", "/%73ecret", "//secret",
                                    "http://127.0.0.1/x/../secret"])
def test_with_a_token_the_secret_is_served(secret_gateway, target):
    r = get(secret_gateway.port, target, token())
    assert r.status == 200 and r.body == b"THE-SECRET\n", (target, r)


def test_bad_paths_are_counted_as_400_without_a_route(secret_gateway):
    # A refused path matched no route: hms_requests_total{route="none",code="400"}.
    for _ in range(3):
        assert get(secret_gateway.port, "/a%2fb").status == 400
    n = eventually(lambda: value(scrape(secret_gateway), "hms_requests_total", service="none",
                                 route="none", code="400"), lambda n: n >= 3,
                   what="3 requests counted")
    assert n == 3, n


def test_the_upstream_receives_the_canonical_path_and_the_query_untouched(
        head_echo, register, gateway):
    register("service: echo-head\nroutes:\n  - path: /{rest*}\n"
             f"endpoints: [127.0.0.1:{head_echo.port}]\n")
    gw = gateway()
    for target, line in [
        ("/a/./b/../c?x=%2F..&y=/../", "GET /a/c?x=%2F..&y=/../ HTTP/1.1"),
        ("/%7euser//docs/%3f?q", "GET /~user/docs/%3F?q HTTP/1.1"),
        ("/plain/path?z", "GET /plain/path?z HTTP/1.1"),
    ]:
        r = httpraw.get(gw.port, target)
        assert r.status == 200, r
        assert r.body.split(b"\r\n", 1)[0].decode() == line, (target, r.body)


def test_absolute_form_is_routed_on_its_authority_and_sent_in_origin_form(
        head_echo, nginx, register, gateway):
    register("service: secret-local\nroutes:\n"
             "  - path: /h/{rest*}\n    host: secret.local\n"
             f"endpoints: [127.0.0.1:{head_echo.port}]\n")
    register("service: other-host\nroutes:\n"
             "  - path: /h/{rest*}\n    host: other\n"
             f"endpoints: [127.0.0.1:{nginx}]\n")
    gw = gateway()
    for target, line in [("http://secret.local/h/x", "GET /h/x HTTP/1.1"),
                         ("http://secret.local/h/y/../x?q=1", "GET /h/x?q=1 HTTP/1.1"),
                         ("HTTP://secret.local:80/h/x", "GET /h/x HTTP/1.1")]:
        r = httpraw.get(gw.port, target, headers={"Host": "other"})
        assert r.status == 200, (target, r)
        head = r.body.decode("latin-1").split("\r\n")
        assert head[0] == line, (target, head)
        hosts = [h.split(":", 1)[1].strip() for h in head[1:] if h.lower().startswith("host:")]
        assert hosts in (["secret.local"], ["secret.local:80"]), (target, head)
        assert hosts[0].startswith("secret.local"), head
    # The Host header alone chooses the other route (nginx answers there).
    r = httpraw.get(gw.port, "/h/x", headers={"Host": "other"})
    assert r.status == 200 and r.body == b"open /h/x\n", r


def test_absolute_form_without_a_path_becomes_slash(head_echo, register, gateway):
    register("service: echo-head\nroutes:\n  - path: /\n  - path: /{rest*}\n"
             f"endpoints: [127.0.0.1:{head_echo.port}]\n")
    gw = gateway()
    r = httpraw.get(gw.port, "http://example.test", headers={"Host": "other"})
    assert r.status == 200, r
    head = r.body.decode("latin-1").split("\r\n")
    assert head[0] == "GET / HTTP/1.1", head
    assert "host: example.test" in [h.lower() for h in head], head
    r = httpraw.get(gw.port, "http://example.test?q=%2f", headers={"Host": "other"})
    assert r.body.decode("latin-1").split("\r\n")[0] == "GET /?q=%2f HTTP/1.1", r


def test_switches_keep_encoded_slashes_and_do_not_merge(head_echo, register, gateway):
    register("service: echo-head\nroutes:\n  - path: /{rest*}\n"
             f"endpoints: [127.0.0.1:{head_echo.port}]\n")
    strict = gateway()
    assert httpraw.get(strict.port, "/a%2fb").status == 400
    r = httpraw.get(strict.port, "//a//b")
    assert r.body.split(b"\r\n", 1)[0] == b"GET /a/b HTTP/1.1", r
    relaxed = gateway({"paths": {"encoded_slashes": "keep", "merge_slashes": False}},
                      name="relaxed.yaml")
    for target, line in [("/a%2fb", b"GET /a%2Fb HTTP/1.1"),
                         ("/x/..%2fsecret", b"GET /x/..%2Fsecret HTTP/1.1"),
                         ("//a//b", b"GET //a//b HTTP/1.1"),
                         ("/a//../b", b"GET /a/b HTTP/1.1")]:
        r = httpraw.get(relaxed.port, target)
        assert r.status == 200, (target, r)
        assert r.body.split(b"\r\n", 1)[0] == line, (target, r.body)
    # Backslashes, controls and climbing above the root stay refused.
    for target in ["/a%5cb", "/a%00", "/../a"]:
        assert httpraw.get(relaxed.port, target).status == 400, target


def test_a_template_not_in_canonical_form_is_refused_at_register(hms_api, tmp_path):
    for path, words in [("/x/../secret", "is not in canonical form"),
                        ("/%73ecret", "write '/secret'"),
                        ("/admin%2Fusers", "(encoded_slash)")]:
        f = tmp_path / "bad.yaml"
        f.write_text(f"service: bad-svc\nroutes:\n  - GET {path}\nendpoints: [127.0.0.1:1]\n")
        r = hms_api("register", f)
        assert r.returncode != 0, r
        assert f"{f}:3:" in r.stderr and words in r.stderr, r.stderr


def test_sidecar_inbound_and_egress_use_the_canonical_path(head_echo, register, gateway):
    from test_sidecar import sidecar  # noqa: PLC0415
    register("service: echo-head\nroutes:\n  - path: /{rest*}\n")
    sc = sidecar(gateway, "echo-head", head_echo.port)
    register("service: caller-svc\nroutes:\n  - GET /caller\n")
    caller = sidecar(gateway, "caller-svc", closed_port())

    def first_line(port, target, headers=None):
        r = httpraw.get(port, target, headers=headers)
        assert r.status == 200, (target, r)
        return r.body.split(b"\r\n", 1)[0].decode()

    # Inbound: the local service gets the canonical path.
    assert first_line(sc.port, "/a/./b/../c?q=%2f") == "GET /a/c?q=%2f HTTP/1.1"
    r = httpraw.get(sc.port, "/a/..%2f..%2fetc")
    assert r.status == 400 and r.header("x-hms-reason") == "bad_path", r
    # Egress: the service is the canonical path's first segment; the rest goes out.
    e = caller.egress_port
    assert first_line(e, "/x/../echo-head/a/./b?q=1") == "GET /a/b?q=1 HTTP/1.1"
    assert first_line(e, "//echo-head//a") == "GET /a HTTP/1.1"
    assert first_line(e, "/%65cho-head/a") == "GET /a HTTP/1.1"
    assert first_line(e, "http://echo-head/a/../b", headers={"Host": "other"}) == \
        "GET /b HTTP/1.1"
    r = httpraw.get(e, "/echo-head/../../x")
    assert r.status == 400 and r.header("x-hms-reason") == "bad_path", r


def test_explain_matches_the_canonical_path(hms_api, register):
    register("service: nginx-svc\nroutes:\n  - path: /secret\n  - path: /{rest*}\n"
             "    auth: none\nendpoints: [127.0.0.1:1]\n")
    r = hms_api("explain", "GET", "/x/../%73ecret")
    assert r.returncode == 0, r
    assert r.stdout.splitlines()[0] == "GET /secret → nginx-svc", r.stdout
    r = hms_api("explain", "GET", "/x/..%2fsecret")
    assert r.returncode == 1, r
    assert r.stdout.startswith("400 Bad Request (bad_path): bad path (encoded_slash)"), r.stdout


def test_normalizing_and_refusing_allocate_nothing_after_warmup(nginx, register, gateway):
    from test_engine import metric  # noqa: PLC0415
    register(f"service: nginx-svc\nroutes:\n  - path: /{{rest*}}\nendpoints: [127.0.0.1:{nginx}]\n")
    gw = gateway({"cores": 1})
    targets = [("/a/./b//%63/../d%3f?q=%2F", 200), ("http://h.test/x/../y?z", 200),
               ("/a%2fb", 400), ("/../x", 400)]

    def run(n):
        with httpraw.Conn(gw.port) as c:
            for i in range(n):
                target, status = targets[i % len(targets)]
                c.send(f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                assert c.read_response().status == status, target

    run(1000)  # warm-up
    before = metric(gw, "hms_core_heap_allocations_total")
    run(1000)
    after = metric(gw, "hms_core_heap_allocations_total")
    assert after - before == 0, f"{after - before} heap allocations in 1000 warm requests"
