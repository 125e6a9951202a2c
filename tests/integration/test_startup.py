"""Start-up (docs/engine.md, "One gateway per address"): a listener or admin
address another process listens on is refused with exit 1 and a message that
names it, while the gateway already there keeps every connection; every other
start-up failure is a clear message and exit 1 too, never an abort."""
import json
import resource
import socket
import subprocess
import time

import pytest

import httpraw
from conftest import (BUILD_DIR, admin_get, binary, echo_routes, eventually, free_port,
                      metric_sum, stop_process)

REFUSE_WITHIN_S = 5  # a refused start ends at once; the claim lock wait is 2 s


def run_to_exit(tmp_path, store_dir, overrides, name, timeout=REFUSE_WITHIN_S, preexec_fn=None):
    """Starts hms-gateway on a config like the gateway fixture's and waits for it
    to exit; fails (after killing it) if it is still running after `timeout`.
    Returns (exit code, stdout + stderr)."""
    cfg = {"listeners": ["127.0.0.1:0"], "admin": "127.0.0.1:0",
           "store": f"file:{store_dir}", "cores": 2}
    cfg.update(overrides)
    path = tmp_path / name
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in cfg.items()))
    proc = subprocess.Popen([str(binary("hms-gateway")), "--config", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=preexec_fn)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=5)
        pytest.fail(f"hms-gateway still running {timeout} s after start (it should have "
                    f"refused):\n{out.decode(errors='replace')}")
    return proc.returncode, out.decode(errors="replace")


def assert_clean_refusal(rc, out, address):
    assert rc == 1, f"exit {rc}, want 1:\n{out}"
    assert "terminate called" not in out and "Aborted" not in out, out
    assert address in out, f"the message does not name {address}:\n{out}"


def answered_by(gw, connections):
    """Opens `connections` connections to gw's listener, one request each, and
    returns how many of them gw's own counter saw accepted."""
    before = metric_sum(gw, "hms_connections_accepted_total")
    for _ in range(connections):
        r = httpraw.get(gw.port, "/status/200", timeout=5)
        assert r.status == 200, r
    # The counter is bumped by the core that accepted: poll until it settles.
    return eventually(lambda: metric_sum(gw, "hms_connections_accepted_total") - before,
                      lambda seen: seen >= connections, timeout=5,
                      what=f"{connections} connections counted")


def test_second_gateway_on_the_same_listener_is_refused(echo_upstream, register, gateway,
                                                        tmp_path, store_dir):
    register(echo_routes(echo_upstream.port))
    first = gateway()
    address = f"127.0.0.1:{first.port}"
    # Without a jwt section or with other routes, a second gateway that shared
    # the port would answer some of the first one's clients its own way.
    rc, out = run_to_exit(tmp_path, store_dir, {"listeners": [address]}, "second.yaml")
    assert_clean_refusal(rc, out, address)
    assert "another process listens there" in out, out
    # Every connection reaches the first gateway.
    assert answered_by(first, 50) == 50


def start_where_another_listens(tmp_path, store_dir, key, reuseport=False):
    """Starts a gateway whose `key` ("listeners" or "admin") names an address
    a plain socket of this process listens on; returns (rc, output, address)."""
    with socket.socket() as other:
        if reuseport:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        address = f"127.0.0.1:{other.getsockname()[1]}"
        value = [address] if key == "listeners" else address
        rc, out = run_to_exit(tmp_path, store_dir, {key: value}, "gw.yaml")
    return rc, out, address


def test_a_same_user_reuseport_listener_is_refused(tmp_path, store_dir):
    # Any process of the same user may join an SO_REUSEPORT group: the probe
    # (a bind without SO_REUSEPORT) is what sees it.
    rc, out, address = start_where_another_listens(tmp_path, store_dir, "listeners",
                                                   reuseport=True)
    assert_clean_refusal(rc, out, address)
    assert "another process listens there" in out, out


def test_second_gateway_on_the_same_admin_address_is_refused(echo_gateway, tmp_path, store_dir):
    first = echo_gateway
    address = f"127.0.0.1:{first.admin_port}"
    rc, out = run_to_exit(tmp_path, store_dir, {"admin": address}, "second.yaml")
    assert_clean_refusal(rc, out, address)
    assert "another process listens there" in out, out
    # The refused start took nothing from the first one: its admin API and
    # its listener answer, and no other process accepted a connection.
    for _ in range(20):
        assert admin_get(first, "/healthz").status == 200
    assert answered_by(first, 50) == 50


def test_admin_port_taken_by_another_socket(tmp_path, store_dir):
    rc, out, address = start_where_another_listens(tmp_path, store_dir, "admin")
    assert_clean_refusal(rc, out, address)
    assert "admin: cannot listen on" in out and "another process listens there" in out, out


def test_listener_taken_by_another_socket(tmp_path, store_dir):
    rc, out, address = start_where_another_listens(tmp_path, store_dir, "listeners")
    assert_clean_refusal(rc, out, address)
    assert "another process listens there" in out, out


def test_a_start_up_holding_the_claim_lock_makes_the_next_one_wait_then_refuse(tmp_path,
                                                                                store_dir):
    # What two gateways starting at the same moment on one port meet: the
    # second waits for the first's claim (here held, as by a start-up that
    # stopped mid-way) and gives up after 2 s with a message, not a share.
    port = free_port()
    with socket.socket(socket.AF_UNIX) as lock:
        lock.bind(f"\0hms-gateway-claim:{port}")
        start = time.monotonic()
        rc, out = run_to_exit(tmp_path, store_dir, {"listeners": [f"127.0.0.1:{port}"]},
                              "gw.yaml")
        waited = time.monotonic() - start
    assert_clean_refusal(rc, out, f"127.0.0.1:{port}")
    assert "another hms-gateway has been starting" in out, out
    assert waited >= 1.9, waited


def test_simultaneous_starts_on_one_port_leave_one_gateway(tmp_path, store_dir):
    exe = str(binary("hms-gateway"))
    for round_ in range(3):
        port = free_port()
        procs = []
        try:
            for i in range(2):
                path = tmp_path / f"race{round_}-{i}.yaml"
                path.write_text(f'listeners: ["127.0.0.1:{port}"]\nadmin: "127.0.0.1:0"\n'
                                f'store: "file:{store_dir}"\ncores: 2\n')
                procs.append(subprocess.Popen(
                    [exe, "--config", str(path)], stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True))
            # One exits 1 (refused); the other keeps running.
            codes = eventually(lambda: [p.poll() for p in procs],
                               lambda codes: any(c is not None for c in codes),
                               timeout=REFUSE_WITHIN_S, what="one of the two exiting")
            assert sorted(codes, key=lambda c: c is None) == [1, None], \
                f"round {round_}: exit codes {codes}"
        finally:
            for p in procs:
                stop_process(p)


def sanitized_build():
    info = BUILD_DIR / "meson-info" / "intro-buildoptions.json"
    try:
        options = json.loads(info.read_text())
    except OSError:
        return False
    return any(o["name"] == "b_sanitize" and o["value"] not in ("none", "", [], ["none"])
               for o in options)


def test_a_core_that_cannot_start_ends_in_exit_1_not_an_abort(tmp_path, store_dir):
    if sanitized_build():
        pytest.skip("AddressSanitizer maps terabytes of shadow: RLIMIT_AS cannot be bounded")

    def limit_address_space():
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))

    # 32768 buffers of 1 MiB are 32 GiB per core: the buffer ring's mmap fails
    # under an 8 GiB address-space limit, once the listeners are bound and the
    # first core's thread has started.
    rc, out = run_to_exit(tmp_path, store_dir,
                          {"buffers": {"count": 32768, "size": "1MiB"}}, "gw.yaml",
                          timeout=10, preexec_fn=limit_address_space)
    assert rc == 1, f"exit {rc}, want 1:\n{out}"
    assert "terminate called" not in out, out
    assert "cannot start core 0" in out and "buffers 32768 x 1048576" in out, out
