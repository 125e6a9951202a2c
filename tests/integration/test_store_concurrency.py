"""The file store under concurrent writers (DESIGN §2: "a lock around
read-modify-write, so two concurrent `register`s lose nothing"): 50 `hms-api
register` processes, each with its own service and route file, released at
the same instant; every one succeeds, the store then lists all 50 with each
file's text as written, and a gateway watching the store serves all 50.
When all 50 claim the same route, exactly one wins: the tie check runs
inside the store's write."""
import fcntl
import json
import os
import subprocess
import time

import pytest

from conftest import admin_get, binary, eventually

N = 50
RELEASE_TIMEOUT_S = 10  # all N processes waiting at the gate
REGISTER_TIMEOUT_S = 15  # all N processes exited after the release


def route_text(i):
    # Each service has its own paths (no tie between services) and its own
    # timeout, so a file's text is recognisable in `show` and in /config.
    return (f"service: svc-{i:02d}\n"
            "routes:\n"
            f"  - GET /svc-{i:02d}/items/{{id}}\n"
            f"  - path: /svc-{i:02d}/health\n"
            "    methods: [GET, HEAD]\n"
            f"timeout: {1000 + i}ms\n"
            f"endpoints: [127.0.0.1:{20000 + i}]\n")


def blocked_on(gate_path):
    """Processes blocked waiting for a lock on gate_path (the "->" lines of /proc/locks)."""
    ino = os.stat(gate_path).st_ino
    with open("/proc/locks") as f:
        return sum(1 for line in f
                   if "->" in line and line.split()[-3].rsplit(":", 1)[-1] == str(ino))


def register_all_at_once(store_dir, tmp_path, text=route_text):
    """Starts N `hms-api register` processes (file i holds text(i)), each
    behind `flock -s GATE` while this process holds GATE exclusively; releases
    them together once all N wait, and returns {i: (returncode, stdout, stderr)}."""
    exe = binary("hms-api")
    env = {k: v for k, v in os.environ.items() if k != "HMS_STORE"}
    files = {}
    for i in range(N):
        files[i] = tmp_path / f"svc-{i:02d}.yaml"
        files[i].write_text(text(i))
    gate = tmp_path / "gate"
    gate.touch()
    procs = {}
    with open(gate) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            for i in range(N):
                procs[i] = subprocess.Popen(
                    ["/usr/bin/flock", "-s", str(gate), str(exe), "--store", f"file:{store_dir}",
                     "register", str(files[i])],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                    stdin=subprocess.DEVNULL, start_new_session=True)
            eventually(lambda: blocked_on(gate), lambda waiting: waiting >= N,
                       timeout=RELEASE_TIMEOUT_S, interval=0.01,
                       what=f"{N} register processes at the gate")
        except BaseException:
            for p in procs.values():
                p.kill()
                p.communicate()
            raise
        fcntl.flock(held, fcntl.LOCK_UN)  # all N start now
    released = time.monotonic()
    results = {}
    try:
        for i, p in procs.items():
            left = max(0.1, released + REGISTER_TIMEOUT_S - time.monotonic())
            out, err = p.communicate(timeout=left)
            results[i] = (p.returncode, out, err)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.communicate()
    print(f"\n{N} concurrent registers finished {time.monotonic() - released:.3f} s after release")
    return results


def assert_all_registered(results):
    failed = {i: r for i, r in results.items() if r[0] != 0}
    assert not failed, f"{len(failed)} of {N} registers failed: " + "; ".join(
        f"svc-{i:02d} exit {rc}: {err.strip()}" for i, (rc, _, err) in sorted(failed.items()))
    for i, (_, out, _) in results.items():
        assert f"registered svc-{i:02d}" in out, out


@pytest.mark.deadline(30)
def test_50_concurrent_registers_lose_nothing(store_dir, tmp_path, hms_api):
    results = register_all_at_once(store_dir, tmp_path)
    assert_all_registered(results)

    r = hms_api("list", "--json")
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    names = sorted(s["service"] for s in listed)
    assert names == [f"svc-{i:02d}" for i in range(N)], \
        f"{len(names)} of {N} services listed; missing: " \
        f"{sorted(set(f'svc-{i:02d}' for i in range(N)) - set(names))}"
    for s in listed:
        i = int(s["service"][4:])
        assert sorted(rt["path"] for rt in s["routes"]) == \
            [f"/svc-{i:02d}/health", f"/svc-{i:02d}/items/{{id}}"], s
        assert s["endpoints"] == [f"127.0.0.1:{20000 + i}"], s

    for i in range(N):
        r = hms_api("show", f"svc-{i:02d}")
        assert r.returncode == 0, r.stderr
        header, _, text = r.stdout.partition("\n")
        assert header.startswith(f"# svc-{i:02d}, registered from "), r.stdout
        assert text == route_text(i), f"svc-{i:02d}'s text changed in the store:\n{r.stdout}"


@pytest.mark.deadline(30)
def test_gateway_sees_all_50_concurrent_registers(store_dir, tmp_path, gateway):
    gw = gateway({"cores": 2})
    assert admin_get(gw, "/config").json()["clusters"] == []

    results = register_all_at_once(store_dir, tmp_path)
    registered = time.monotonic()
    assert_all_registered(results)

    # Reloads coalesce, so the count may pass through any value on the way;
    # the last change must land, on every core.
    want = [f"svc-{i:02d}" for i in range(N)]
    def state():
        cfg = admin_get(gw, "/config").json()
        return (cfg, sorted(c["name"] for c in cfg["clusters"]),
                {c["core"]: c["version"] for c in cfg["cores"]})

    cfg, clusters, cores = eventually(
        state, lambda s: s[1] == want and set(s[2].values()) == {s[0]["version"]},
        timeout=max(0.0, registered + 5 - time.monotonic()),
        what=f"all {N} clusters on every core 5 s after the registers")
    print(f"gateway serves all {N} at version {cfg['version']} "
          f"{time.monotonic() - registered:.3f} s after the last register returned")
    assert len(cores) == 2, cfg["cores"]
    assert len(cfg["routes"]) == 2 * N, cfg["routes"]
    timeouts = {c["name"]: c["timeout_ms"] for c in cfg["clusters"]}
    assert timeouts == {f"svc-{i:02d}": 1000 + i for i in range(N)}, timeouts


def contested_text(i):
    return (f"service: rival-{i:02d}\n"
            "routes:\n"
            "  - GET /contested/{id}\n"
            f"endpoints: [127.0.0.1:{20000 + i}]\n")


@pytest.mark.deadline(30)
def test_50_concurrent_registers_of_one_route_admit_exactly_one(store_dir, tmp_path, hms_api):
    """A tie is a registration error (DESIGN §3), also when all 50 rivals check
    at the same instant: one registers, 49 are told what they clash with."""
    results = register_all_at_once(store_dir, tmp_path, text=contested_text)
    won = sorted(i for i, (rc, _, _) in results.items() if rc == 0)
    assert len(won) == 1, f"{len(won)} of {N} rivals registered GET /contested/{{id}}: {won}"
    for i, (rc, _, err) in results.items():
        if i != won[0]:
            assert rc != 0 and "clashes with" in err, f"rival-{i:02d} exit {rc}: {err}"

    r = hms_api("list", "--json")
    assert r.returncode == 0, r.stderr
    assert [s["service"] for s in json.loads(r.stdout)] == [f"rival-{won[0]:02d}"], r.stdout
