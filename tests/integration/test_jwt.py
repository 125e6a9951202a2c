"""JWT at the gateway (DESIGN §3, §5): with a `jwt` section every route
requires a valid bearer token unless it says `auth: none`; refusals are 401
with WWW-Authenticate (403 insufficient_scope when claims fall short), and
they say which rule refused them. Tokens are minted independently with
Debian's python3-jwt."""
import base64
import json
import os
import time

import jwt
import pytest

import httpraw
from conftest import eventually

SECRET = "s" * 48
ISS = "https://auth.hms.test"
AUD = "hms-gateway"


def token(**over):
    now = int(time.time())
    claims = {"sub": "veteran-42", "iss": ISS, "aud": AUD, "exp": now + 600, "iat": now}
    claims.update(over)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, SECRET, algorithm="HS256")


@pytest.fixture
def jwt_gateway(echo_upstream, register, gateway, tmp_path):
    secret = tmp_path / "jwt-secret"
    secret.write_text(SECRET + "\n")
    register("service: echo-svc\nroutes:\n"
             "  - path: /headers\n    methods: [GET]\n"
             "  - path: /status/{code}\n    methods: [GET]\n    auth: none\n"
             "  - path: /stream\n    methods: [GET]\n    require: {scope: calc:read}\n"
             "breaker: {failures: 1000, open_for: 1s}\n"
             f"endpoints: [127.0.0.1:{echo_upstream.port}]\n")
    return gateway({"jwt": {"issuer": ISS, "audience": AUD,
                            "hs256_secret_file": str(secret), "leeway": "5s"}})


def get(gw, path, tok=None):
    headers = {"Authorization": f"Bearer {tok}"} if tok else None
    return httpraw.get(gw.port, path, headers=headers)


def test_valid_token_passes(jwt_gateway):
    r = get(jwt_gateway, "/headers", token())
    assert r.status == 200, r


def test_missing_token_is_401_with_bearer_challenge(jwt_gateway):
    r = get(jwt_gateway, "/headers")
    assert r.status == 401, r
    assert r.header("www-authenticate").startswith("Bearer"), r
    assert r.header("x-hms-reason") == "jwt_missing_token"
    assert r.json()["reason"] == "jwt_missing_token"


@pytest.mark.parametrize("tok,reason", [
    (lambda: token(exp=int(time.time()) - 60), "jwt_expired"),
    (lambda: token(nbf=int(time.time()) + 600), "jwt_not_yet_valid"),
    (lambda: token(iss="https://evil.test"), "jwt_wrong_issuer"),
    (lambda: token(aud="someone-else"), "jwt_wrong_audience"),
    (lambda: token()[:-3] + "AAA", "jwt_bad_signature"),
    (lambda: jwt.encode({"sub": "x", "iss": ISS, "aud": AUD, "exp": int(time.time()) + 60},
                        None, algorithm="none"), "jwt_alg_none"),
    (lambda: "not.a.token", "jwt_malformed"),
])
def test_bad_tokens_are_401_invalid_token(jwt_gateway, tok, reason):
    r = get(jwt_gateway, "/headers", tok())
    assert r.status == 401, r
    assert r.header("x-hms-reason") == reason, r
    assert 'error="invalid_token"' in r.header("www-authenticate"), r


def test_missing_scope_is_403_insufficient_scope(jwt_gateway):
    r = get(jwt_gateway, "/stream", token())
    assert r.status == 403, r
    assert 'error="insufficient_scope"' in r.header("www-authenticate"), r
    r = get(jwt_gateway, "/stream", token(scope="calc:read other"))
    assert r.status == 200, r


def test_auth_none_route_is_open(jwt_gateway):
    assert get(jwt_gateway, "/status/204").status == 204


def test_seed_jwt_authenticated_call(uvicorn_app, hms_api, gateway, tmp_path):
    """The seed's §4.3: the route file says nothing about auth, the gateway has
    a jwt section, so the call needs its bearer token (zero trust by default)."""
    from conftest import REPO
    demo = REPO / "configs" / "demo"
    calc = uvicorn_app(demo / "calc_svc")
    assert hms_api("register", demo / "calc_svc" / "route.yaml").returncode == 0
    assert hms_api("endpoints", "add", "calc-svc", calc.addr).returncode == 0
    secret = tmp_path / "jwt-secret"
    secret.write_text(SECRET)
    gw = gateway({"jwt": {"issuer": ISS, "audience": AUD, "hs256_secret_file": str(secret)}})
    assert get(gw, "/sum/2/3").status == 401
    r = get(gw, "/sum/2/3", token())
    assert r.status == 200, r
    assert r.json() == {"sum": 5}
    assert r.header("x-trace-id")


def test_hms_api_token_mints_what_the_gateway_accepts(jwt_gateway, hms_api):
    """`hms-api token` signs with the dev key the gateway config names; the
    token is a standard JWT (python3-jwt reads it) and the gateway admits it."""
    gw = jwt_gateway
    r = hms_api("token", "--config", gw.config_path, "--sub", "alice", "--scope", "calc:read",
                "--ttl", "15m")
    assert r.returncode == 0, r.stderr
    tok = r.stdout.strip()
    claims = jwt.decode(tok, SECRET, algorithms=["HS256"], audience=AUD, issuer=ISS)
    assert claims["sub"] == "alice" and claims["scope"] == "calc:read"
    assert 899 <= claims["exp"] - claims["iat"] <= 900
    assert get(gw, "/headers", tok).status == 200
    assert get(gw, "/stream", tok).status == 200  # requires scope calc:read
    r = hms_api("token", "--config", gw.config_path, "--sub", "bob")
    assert get(gw, "/stream", r.stdout.strip()).status == 403  # no scope
    # Another audience than the gateway's: refused, and why.
    r = hms_api("token", "--config", gw.config_path, "--sub", "eve", "--aud", "elsewhere")
    refused = get(gw, "/headers", r.stdout.strip())
    assert refused.status == 401 and refused.header("x-hms-reason") == "jwt_wrong_audience", refused


def test_hms_api_token_errors(hms_api, tmp_path):
    r = hms_api("token", "--sub", "alice")
    assert r.returncode == 2 and "--config" in r.stderr
    conf = tmp_path / "gw.yaml"
    conf.write_text("cores: 1\n")
    r = hms_api("token", "--config", conf, "--sub", "alice")
    assert r.returncode == 1 and "no jwt section" in r.stderr, r.stderr
    short = tmp_path / "short"
    short.write_text("too short\n")
    r = hms_api("token", "--secret-file", short, "--sub", "alice")
    assert r.returncode == 1 and "at least 32" in r.stderr, r.stderr
    r = hms_api("token", "--secret-file", short, "--sub", "alice", "--ttl", "forever")
    assert r.returncode == 2 and "--ttl" in r.stderr
    assert hms_api("token", "--help").returncode == 0


def es256_key(kid):
    """A P-256 key pair; the public half as a JWK with `kid`."""
    from cryptography.hazmat.primitives.asymmetric import ec
    private = ec.generate_private_key(ec.SECP256R1())
    numbers = private.public_key().public_numbers()

    # RFC 7518 §6.2.1.2: x and y are exactly 32 bytes, leading zeros kept (a
    # shorter encoding is refused by the gateway, as it should be).
    def coordinate(n):
        return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()

    jwk = {"kty": "EC", "crv": "P-256", "x": coordinate(numbers.x), "y": coordinate(numbers.y),
           "kid": kid, "alg": "ES256", "use": "sig"}
    return private, jwk


def es256_token(private, kid):
    now = int(time.time())
    return jwt.encode({"sub": "u1", "iss": ISS, "aud": AUD, "exp": now + 600}, private,
                      algorithm="ES256", headers={"kid": kid})


def wait_accepted(gw, tok, within_s):
    def answer():
        r = get(gw, "/headers", tok)
        assert r.status == 200 or (r.status == 401 and
                                   r.header("x-hms-reason") == "jwt_unknown_kid"), r
        return r

    eventually(answer, lambda r: r.status == 200, within_s, interval=0.05,
               what="the token accepted")


@pytest.mark.deadline(60)
def test_jwks_reloads_on_change_and_on_an_unknown_kid(echo_upstream, register, gateway, tmp_path):
    k1, jwk1 = es256_key("k1")
    k2, jwk2 = es256_key("k2")
    k3, jwk3 = es256_key("k3")
    jwks = tmp_path / "jwks.json"
    # Every version of the file has the same length, so that the last one can
    # be written without changing the file's size, inode or mtime.
    docs = [json.dumps({"keys": keys}) for keys in ([jwk1], [jwk1, jwk2], [jwk1, jwk3])]
    width = max(len(d) for d in docs)
    docs = [d.ljust(width) for d in docs]
    jwks.write_text(docs[0])
    register("service: echo-svc\nroutes:\n  - path: /headers\n    methods: [GET]\n"
             f"endpoints: [127.0.0.1:{echo_upstream.port}]\n")
    gw = gateway({"jwt": {"issuer": ISS, "audience": AUD, "jwks": str(jwks)}})
    assert get(gw, "/headers", es256_token(k1, "k1")).status == 200

    # A new key, the file replaced by rename: seen within the once-a-second look.
    tmp = tmp_path / "jwks.json.new"
    tmp.write_text(docs[1])
    os.replace(tmp, jwks)
    wait_accepted(gw, es256_token(k2, "k2"), 5)
    assert get(gw, "/headers", es256_token(k1, "k1")).status == 200

    # A key added without any change the stamp shows: the unknown kid makes
    # the gateway read the file again (at most once per 5 s).
    st = os.stat(jwks)
    with open(jwks, "r+") as f:
        f.write(docs[2])
    os.utime(jwks, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(jwks).st_mtime_ns == st.st_mtime_ns and os.stat(jwks).st_size == st.st_size
    wait_accepted(gw, es256_token(k3, "k3"), 10)
    # k2 left with that rewrite.
    r = get(gw, "/headers", es256_token(k2, "k2"))
    assert r.status == 401 and r.header("x-hms-reason") == "jwt_unknown_kid", r


def test_jwks_key_meant_for_encryption_never_verifies(echo_upstream, register, gateway, tmp_path):
    """RFC 7517 §4.3: a key whose key_ops lack "verify" (here ["encrypt"], no
    "use") is skipped and logged with its kid; a token it signed is refused."""
    k_sig, jwk_sig = es256_key("sig-1")
    k_enc, jwk_enc = es256_key("enc-1")
    del jwk_enc["use"]
    jwk_enc["key_ops"] = ["encrypt"]
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk_sig, jwk_enc]}))
    register("service: echo-svc\nroutes:\n  - path: /headers\n    methods: [GET]\n"
             f"endpoints: [127.0.0.1:{echo_upstream.port}]\n")
    gw = gateway({"jwt": {"issuer": ISS, "audience": AUD, "jwks": str(jwks)}})
    assert get(gw, "/headers", es256_token(k_sig, "sig-1")).status == 200
    r = get(gw, "/headers", es256_token(k_enc, "enc-1"))
    assert r.status == 401, r
    assert r.header("x-hms-reason") == "jwt_unknown_kid", r
    assert ('key 1 (kid "enc-1"): skipped: "key_ops" ["encrypt"] lacks "verify"'
            in gw.logs()), gw.logs()


def test_jwks_without_a_usable_key_stops_the_start_and_keeps_the_old_keys_on_reload(
        echo_upstream, register, gateway, tmp_path):
    import subprocess
    from conftest import binary
    k1, jwk1 = es256_key("k1")
    _, enc = es256_key("enc")
    enc["use"] = "enc"
    only_enc = json.dumps({"keys": [enc]})
    register("service: echo-svc\nroutes:\n  - path: /headers\n    methods: [GET]\n"
             f"endpoints: [127.0.0.1:{echo_upstream.port}]\n")
    # At start: exit 1, naming the file and why its keys were skipped.
    bad = tmp_path / "bad-jwks.json"
    bad.write_text(only_enc)
    conf = tmp_path / "bad.yaml"
    conf.write_text('listeners: ["127.0.0.1:0"]\nadmin: "127.0.0.1:0"\ncores: 1\n'
                    f'store: "file:{tmp_path / "empty-store"}"\n'
                    f'jwt: {{issuer: "{ISS}", audience: "{AUD}", jwks: "{bad}"}}\n')
    r = subprocess.run([str(binary("hms-gateway")), "--config", str(conf)], capture_output=True,
                       text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"{bad}: no signing keys" in r.stderr and '"use" is "enc"' in r.stderr, r.stderr
    # On a reload: the old keys stay.
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk1]}))
    gw = gateway({"jwt": {"issuer": ISS, "audience": AUD, "jwks": str(jwks)}})
    assert get(gw, "/headers", es256_token(k1, "k1")).status == 200
    _, wrap = es256_key("wrap")
    del wrap["use"]
    wrap["key_ops"] = ["wrapKey", "encrypt"]
    tmp = tmp_path / "jwks.json.new"
    tmp.write_text(json.dumps({"keys": [wrap]}))
    os.replace(tmp, jwks)
    eventually(gw.logs, lambda logs: "no signing keys" in logs, timeout=10, interval=0.05,
               what="the bad JWKS read")
    assert "keeping the last good one" in gw.logs(), gw.logs()
    assert get(gw, "/headers", es256_token(k1, "k1")).status == 200
