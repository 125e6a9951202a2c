"""`hms-gateway --check` runs every check start-up runs that needs no port,
through the same function, and every config error names file:line (and the
file named, when that file is missing or is a directory)."""
import subprocess

import pytest

from conftest import REPO, binary, free_port


def check(tmp_path, text):
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    r = subprocess.run([str(binary("hms-gateway")), "--config", str(path), "--check"],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    return path, r


BASE = "listeners: [127.0.0.1:0]\nadmin: off\ncores: 2\n"


@pytest.mark.parametrize("extra, line, message", [
    ("access_log: {path: /nonexistent-dir/a.log}\n", 4,
     "access_log.path: /nonexistent-dir: cannot open the log's directory: "
     "No such file or directory"),
    ("cpu_affinity: [0, 999]\n", 4, "cpu_affinity: CPU 999 is not one this process may run on"),
    ("store: ''\n", 4, "store: must not be empty"),
    ("store: 'etc://127.0.0.1:2379'\n", 4, "store: unsupported store scheme 'etc'"),
    ("jwt: {hs256_secret_file: /nonexistent}\n", 4,
     "jwt.hs256_secret_file: /nonexistent: cannot open: No such file or directory"),
    ("jwt: {jwks: /nonexistent.json}\n", 4,
     "jwt.jwks: /nonexistent.json: cannot open: No such file or directory"),
    ("mtls: {cert: /nonexistent.pem, key: /nonexistent.key, ca: /nonexistent-ca.pem}\n", 4,
     "mtls.cert: /nonexistent.pem: cannot open: No such file or directory"),
    ("mesh: /tmp\n", 4, "mesh: /tmp: is a directory"),
])
def test_check_refuses_what_start_would(tmp_path, extra, line, message):
    path, r = check(tmp_path, BASE + extra)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"{path}:{line}: {message}" in r.stderr, r.stderr


def test_check_refuses_a_listener_given_twice(tmp_path):
    port = free_port()
    path, r = check(tmp_path, f"listeners: [127.0.0.1:{port}, 127.0.0.1:{port}]\nadmin: off\n")
    assert r.returncode == 1
    assert (f"{path}:1: listeners[1]: 127.0.0.1:{port} is also listeners[0] (127.0.0.1:{port}): "
            "each address is bound once") in r.stderr, r.stderr
    path, r = check(tmp_path, f"listeners: [127.0.0.1:{port}]\nadmin: 127.0.0.1:{port}\n")
    assert r.returncode == 1
    assert f"{path}:2: admin: 127.0.0.1:{port} is also listeners[0]" in r.stderr, r.stderr


def test_tls_certificate_missing_names_the_line_and_the_file(tmp_path):
    path, r = check(tmp_path, "listeners:\n  - address: 127.0.0.1:0\n    tls:\n"
                              "      cert: missing.pem\n      key: missing.key\nadmin: off\n")
    assert r.returncode == 1
    assert (f"{path}:4: listeners[0].tls.cert: {tmp_path}/missing.pem: cannot open: "
            "No such file or directory") in r.stderr, r.stderr
    assert "cannot load the certificate chain" not in r.stderr


def test_a_config_check_passes_starts(tmp_path, store_dir):
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    text = (f"listeners: [127.0.0.1:0]\nadmin: 127.0.0.1:0\ncores: 1\nstore: file:{store_dir}\n"
            f"access_log: {{path: {log_dir}/a.log}}\ncpu_affinity: [0]\n")
    path, r = check(tmp_path, text)
    assert r.returncode == 0, r.stderr
    proc = subprocess.Popen([str(binary("hms-gateway")), "--config", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        for out in proc.stdout:
            if out.startswith("hms-gateway: ready"):
                break
        else:
            pytest.fail("hms-gateway exited before ready: " + proc.stderr.read())
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert proc.returncode == 0


def test_a_tab_in_the_indentation_is_named_at_its_line(tmp_path):
    path, r = check(tmp_path, "listeners:\n\t- 127.0.0.1:0\nadmin: off\n")
    assert r.returncode == 1
    assert (f"{path}:2: syntax error: a tab indents this line; YAML indents with spaces only"
            in r.stderr), r.stderr
    assert "illegal" not in r.stderr


def test_a_sidecars_check_counts_the_stores_services(tmp_path, store_dir, hms_api):
    """A sidecar's snapshot holds its local service as one more cluster
    (SERVICE@local); --check counts the store's services, not clusters."""
    for name in ("calc_svc", "hello_svc"):
        r = hms_api("register", REPO / "configs" / "demo" / name / "route.yaml")
        assert r.returncode == 0, r.stderr
    path, r = check(tmp_path, "role: sidecar\nservice: calc-svc\nlocal_port: 7002\n"
                              "listeners: [127.0.0.1:0]\negress: 127.0.0.1:0\nadmin: off\n"
                              f"store: file:{store_dir}\n")
    assert r.returncode == 0, r.stderr
    assert f"{path}: ok (2 services," in r.stdout, r.stdout
