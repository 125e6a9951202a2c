#!/usr/bin/python3
"""Regenerates tests/unit/auth/fixtures/: a JWKS, an HS256 secret and tokens
minted by PyJWT and python3-cryptography, independently of the C++ code under
test. Run with Debian's /usr/bin/python3 (python3-jwt, python3-cryptography).

Every token is verified by the tests at the fixed time NOW below; "good"
tokens expire in the year 2100.
"""
import base64
import hashlib
import hmac
import json
import os

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
NOW = 1_700_000_000
EXP_2100 = 4_102_444_800
ISS = "https://id.hms.local"
AUD = "hms-api"


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint_b64u(n: int) -> str:
    return b64u(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def rsa_jwk(key, kid, **extra):
    pub = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "n": uint_b64u(pub.n), "e": uint_b64u(pub.e), **extra}


def ec_jwk(key, kid, **extra):
    pub = key.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "kid": kid, "x": b64u(pub.x.to_bytes(32, "big")),
            "y": b64u(pub.y.to_bytes(32, "big")), **extra}


def claims(**over):
    c = {"iss": ISS, "aud": AUD, "sub": "alice", "scope": "calc:read calc:write",
         "exp": EXP_2100, "nbf": NOW - 3600, "iat": NOW - 3600, "tenant": "acme",
         "admin": True, "groups": ["a", "b"]}
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def hs_manual(header, payload, secret: bytes) -> str:
    si = b64u(compact(header)) + "." + b64u(compact(payload))
    return si + "." + b64u(hmac.new(secret, si.encode(), hashlib.sha256).digest())


def main():
    os.makedirs(HERE, exist_ok=True)
    rsa1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_enc = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec1 = ec.generate_private_key(ec.SECP256R1())
    ec_other = ec.generate_private_key(ec.SECP256R1())
    hs_jwks = os.urandom(32)
    secret = b"dev-secret-for-unit-tests-0123456789abcdef"

    jwks = {"keys": [
        rsa_jwk(rsa1, "rsa-1", alg="RS256", use="sig"),
        ec_jwk(ec1, "ec-1", alg="ES256"),
        {"kty": "oct", "kid": "hs-1", "alg": "HS256", "k": b64u(hs_jwks)},
        # An encryption key: not for signatures, skipped by the loader.
        rsa_jwk(rsa_enc, "enc-1", alg="RSA-OAEP", use="enc"),
    ]}
    with open(os.path.join(HERE, "jwks.json"), "w") as f:
        json.dump(jwks, f, indent=2)
        f.write("\n")
    with open(os.path.join(HERE, "hs256.secret"), "wb") as f:
        f.write(secret + b"\n")

    rsa1_pub_pem = rsa1.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    t = {}
    rs = lambda c, kid="rsa-1", key=rsa1: jwt.encode(c, key, "RS256", headers={"kid": kid} if kid else None)
    es = lambda c, kid="ec-1", key=ec1: jwt.encode(c, key, "ES256", headers={"kid": kid})
    hs = lambda c, key=secret, kid=None: jwt.encode(c, key, "HS256", headers={"kid": kid} if kid else None)

    t["rs256_good"] = rs(claims())
    t["es256_good"] = es(claims())
    t["hs256_jwks_good"] = hs(claims(), hs_jwks, "hs-1")
    t["hs256_secret_good"] = hs(claims())
    t["rs256_aud_array"] = rs(claims(aud=["other", AUD]))
    t["rs256_aud_array_wrong"] = rs(claims(aud=["other", "another"]))
    t["hs256_wrong_aud"] = hs(claims(aud="someone-else"))
    t["hs256_wrong_iss"] = hs(claims(iss="https://evil.example"))
    t["hs256_no_iss"] = hs(claims(iss=None))
    t["hs256_expired"] = hs(claims(exp=NOW - 3600))
    t["es256_expired"] = es(claims(exp=NOW - 3600))
    t["hs256_nbf_future"] = hs(claims(nbf=NOW + 3600))
    t["hs256_no_exp"] = hs(claims(exp=None))
    t["hs256_no_nbf"] = hs(claims(nbf=None))
    t["hs256_float_exp"] = hs(claims(exp=EXP_2100 + 0.5))
    t["hs256_exp_string"] = hs(claims(exp="4102444800"))
    t["hs256_wrong_secret"] = hs(claims(), b"another-secret-of-at-least-32-bytes!!")
    t["hs256_escaped"] = hs(claims(sub="al\"ice\u00e9", tenant="a\\b"))
    # Algorithm confusion: HMAC keyed with rsa-1's public key, claiming rsa-1's kid.
    t["hs256_with_rsa_pub"] = hs_manual({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims(),
                                        rsa1_pub_pem)
    t["hs256_with_rsa_n"] = hs_manual({"alg": "HS256", "kid": "rsa-1"}, claims(),
                                      jwks["keys"][0]["n"].encode())
    # alg none, with and without a kid, and an odd case spelling.
    for name, hdr in (("alg_none", {"alg": "none", "typ": "JWT"}),
                      ("alg_none_kid", {"alg": "none", "kid": "rsa-1"}),
                      ("alg_none_caps", {"alg": "NONE", "kid": "rsa-1"})):
        t[name] = b64u(compact(hdr)) + "." + b64u(compact(claims())) + "."
    t["rs256_wrong_key"] = rs(claims(), key=rsa_other)
    t["es256_wrong_key"] = es(claims(), key=ec_other)
    t["rs256_unknown_kid"] = rs(claims(), kid="rsa-404")
    t["rs256_no_kid"] = rs(claims(), kid=None)
    t["rs256_header_says_es256"] = b64u(compact({"alg": "ES256", "kid": "rsa-1"})) + "." + \
        t["rs256_good"].split(".", 1)[1]
    t["es256_header_says_rs256"] = b64u(compact({"alg": "RS256", "kid": "ec-1"})) + "." + \
        t["es256_good"].split(".", 1)[1]
    t["ps256_rsa_kid"] = jwt.encode(claims(), rsa1, "PS256", headers={"kid": "rsa-1"})
    t["rs384_rsa_kid"] = jwt.encode(claims(), rsa1, "RS384", headers={"kid": "rsa-1"})
    # ES256 with an ASN.1 DER signature instead of JWS's raw r||s.
    hdr = {"alg": "ES256", "kid": "ec-1", "typ": "JWT"}
    si = (b64u(compact(hdr)) + "." + b64u(compact(claims()))).encode()
    der = ec1.sign(si, ec.ECDSA(hashes.SHA256()))
    t["es256_der_sig"] = si.decode() + "." + b64u(der)
    r, s = decode_dss_signature(der)
    t["es256_manual"] = si.decode() + "." + b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    # crit names an extension this verifier does not implement (RFC 7515 §4.1.11).
    t["hs256_crit"] = hs_manual({"alg": "HS256", "crit": ["exp"], "exp": 1}, claims(), secret)
    t["hs256_payload_not_json"] = (lambda si: si + "." + b64u(hmac.new(
        secret, si.encode(), hashlib.sha256).digest()))(b64u(compact({"alg": "HS256"})) + "." +
                                                        b64u(b"not json"))
    t["hs256_payload_array"] = (lambda si: si + "." + b64u(hmac.new(
        secret, si.encode(), hashlib.sha256).digest()))(b64u(compact({"alg": "HS256"})) + "." +
                                                        b64u(b"[1,2]"))
    t["hs256_dup_exp"] = (lambda si: si + "." + b64u(hmac.new(
        secret, si.encode(), hashlib.sha256).digest()))(
            b64u(compact({"alg": "HS256"})) + "." +
            b64u(b'{"iss":"https://id.hms.local","aud":"hms-api","exp":4102444800,"exp":1}'))
    # RS256 signed by hand with cryptography (not PyJWT), same claims.
    hdr = {"alg": "RS256", "kid": "rsa-1"}
    si = (b64u(compact(hdr)) + "." + b64u(compact(claims(sub="bob")))).encode()
    t["rs256_manual"] = si.decode() + "." + b64u(
        rsa1.sign(si, padding.PKCS1v15(), hashes.SHA256()))

    with open(os.path.join(HERE, "tokens.txt"), "w") as f:
        f.write(f"# name token (verified at now={NOW}; regenerate with make_fixtures.py)\n")
        for k, v in t.items():
            f.write(f"{k} {v}\n")


if __name__ == "__main__":
    main()
