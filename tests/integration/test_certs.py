"""`hms-api certs init|issue` (DESIGN §2): the mesh CA and service identities,
checked by independent implementations (Debian's openssl and
python3-cryptography)."""
import os
import shutil
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

OPENSSL = shutil.which("openssl")


def test_init_and_issue_make_a_verifiable_spiffe_identity(hms_api, tmp_path):
    d = tmp_path / "certs"
    mesh = tmp_path / "mesh-config.yaml"
    mesh.write_text("trust_domain: va.example\n")
    r = hms_api("certs", "init", "--dir", d, "--mesh", mesh)
    assert r.returncode == 0, r.stderr
    assert "✓ mesh CA for va.example" in r.stdout
    r = hms_api("certs", "issue", "calc-svc", "--dir", d, "--mesh", mesh)
    assert r.returncode == 0, r.stderr
    assert "spiffe://va.example/svc/calc-svc" in r.stdout

    for key in ("ca.key", "calc-svc.key"):
        assert stat.S_IMODE(os.stat(d / key).st_mode) == 0o600, key
    ca = x509.load_pem_x509_certificate((d / "ca.pem").read_bytes())
    leaf = x509.load_pem_x509_certificate((d / "calc-svc.pem").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://va.example/svc/calc-svc"]
    assert len(list(san)) == 1  # the URI is the only name
    assert leaf.issuer == ca.subject
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.ExtendedKeyUsageOID.CLIENT_AUTH in eku and x509.ExtendedKeyUsageOID.SERVER_AUTH in eku
    ca.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes,
                           ec.ECDSA(leaf.signature_hash_algorithm))
    if OPENSSL:
        v = subprocess.run([OPENSSL, "verify", "-CAfile", d / "ca.pem", d / "calc-svc.pem"],
                           capture_output=True, text=True, timeout=30)
        assert v.returncode == 0 and "OK" in v.stdout, v.stdout + v.stderr
        k = subprocess.run([OPENSSL, "ec", "-in", d / "calc-svc.key", "-check", "-noout"],
                           capture_output=True, text=True, timeout=30)
        assert k.returncode == 0, k.stderr


def test_certs_refusals(hms_api, tmp_path):
    d = tmp_path / "certs"
    r = hms_api("certs", "issue", "calc-svc", "--dir", d)
    assert r.returncode == 1 and "certs init" in r.stderr, r.stderr
    assert hms_api("certs", "init", "--dir", d).returncode == 0
    r = hms_api("certs", "init", "--dir", d)
    assert r.returncode == 1 and "--force" in r.stderr, r.stderr
    assert hms_api("certs", "init", "--dir", d, "--force").returncode == 0
    r = hms_api("certs", "issue", "Calc_Svc", "--dir", d)
    assert r.returncode == 1 and "service name" in r.stderr, r.stderr
    r = hms_api("certs", "rotate", "--dir", d)
    assert r.returncode == 2
    assert hms_api("certs", "--help").returncode == 0
