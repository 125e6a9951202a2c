"""The control plane survives mistakes: a file store whose directory is
removed under a running gateway and made again by `hms-api register` is
watched again; read-only commands refuse a missing store, writing ones make
it; a store file whose `service:` is not its file name, or a hand-written
clash, is refused by the gateways (which keep their last good config and say
so in /healthz) and reported by `hms-api list` with the command that fixes it.
"""
import json
import shutil
import threading
import time

import pytest

import httpraw
from conftest import admin_get, eventually


def routes(service, route, port):
    return f"service: {service}\nroutes:\n  - {route}\nendpoints: [127.0.0.1:{port}]\n"


def healthz(gw):
    return json.loads(admin_get(gw, "/healthz").body)


def wait_for(what, predicate, timeout=5.0):
    eventually(predicate, timeout=timeout, what=what)


@pytest.mark.deadline(60)
def test_removed_store_is_watched_again_once_register_makes_it(echo_upstream, register, hms_api,
                                                               store_dir, gateway):
    register(routes("echo-svc", "GET /headers", echo_upstream.port))
    gw = gateway()
    assert httpraw.get(gw.port, "/headers").status == 200

    # Requests flow through the gateway the whole time (bounded: 20 s or 20,000 requests).
    stop = threading.Event()
    errors, answered = [], [0]

    def load():
        deadline = time.monotonic() + 20
        while not stop.is_set() and time.monotonic() < deadline and answered[0] < 20000:
            try:
                httpraw.get(gw.port, "/headers", timeout=5)
                answered[0] += 1
            except Exception as e:  # noqa: BLE001 - any failure to get an answer counts
                errors.append(repr(e))

    t = threading.Thread(target=load)
    t.start()
    try:
        shutil.rmtree(store_dir)
        wait_for("the gateway notices the store is gone",
                 lambda: healthz(gw)["store"] != "ok"
                 or httpraw.get(gw.port, "/headers").status == 404)
        assert httpraw.get(gw.port, "/status/204").status == 404  # no such route yet

        path = store_dir.parent / "late.yaml"
        path.write_text(routes("late-svc", "GET /status/{code}", echo_upstream.port))
        r = hms_api("register", path)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"store {store_dir} did not exist: creating it" in r.stderr
        registered = time.monotonic()
        wait_for("the registration is served", lambda: httpraw.get(gw.port, "/status/204").status
                 == 204, timeout=1.0)
        assert time.monotonic() - registered < 1.0
    finally:
        stop.set()
        t.join(timeout=30)
    assert not errors, errors[:5]
    assert answered[0] > 0
    wait_for("/healthz says the store is ok", lambda: healthz(gw)["store"] == "ok")

    # And the watch stays whole: a later change applies too.
    r = hms_api("deregister", "late-svc")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_for("the deregistration is served", lambda: httpraw.get(gw.port, "/status/204").status
             == 404, timeout=1.0)


def test_read_only_commands_refuse_a_missing_store_and_writers_make_it(hms_api, store_dir,
                                                                       tmp_path):
    shutil.rmtree(store_dir)
    # endpoints add too: the service it names cannot be registered in a store
    # that does not exist, and a mistyped path must leave no directory behind.
    for args in (["list"], ["show", "echo-svc"], ["explain", "GET", "/x"],
                 ["deregister", "echo-svc"], ["endpoints", "remove", "echo-svc", "127.0.0.1:1"],
                 ["endpoints", "add", "echo-svc", "127.0.0.1:1"]):
        r = hms_api(*args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert f"store {store_dir} does not exist" in r.stderr, (args, r.stderr)
        assert "hms-api register FILE creates it" in r.stderr
        assert not store_dir.exists()
    path = tmp_path / "a.yaml"
    path.write_text("service: a-svc\nroutes:\n  - GET /a\n")
    r = hms_api("register", path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("\n") == 1 and "did not exist: creating it" in r.stderr
    assert hms_api("list").returncode == 0


def test_read_only_commands_refuse_a_directory_that_holds_no_store(hms_api, store_dir,
                                                                   tmp_path):
    """A store path mistyped onto an existing directory (a home, a project):
    reading commands must not write the store's layout into it."""
    (store_dir / "notes.txt").write_text("not a store\n")
    for args in (["list"], ["show", "a-svc"], ["endpoints", "add", "a-svc", "127.0.0.1:1"]):
        r = hms_api(*args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert f"store {store_dir} is not a store: it holds files but no services/" in r.stderr
        assert "etcd://HOST:PORT" in r.stderr
    assert sorted(p.name for p in store_dir.iterdir()) == ["notes.txt"]
    path = tmp_path / "a.yaml"
    path.write_text("service: a-svc\nroutes:\n  - GET /a\n")
    r = hms_api("register", path)
    assert r.returncode == 0, r.stderr
    assert f"store {store_dir} held no store: creating one in it" in r.stderr, r.stderr
    assert hms_api("list").returncode == 0


def test_register_of_a_directory_says_so(hms_api, tmp_path):
    r = hms_api("register", tmp_path)
    assert r.returncode == 1
    assert f"{tmp_path}: is a directory" in r.stderr
    assert "file is empty" not in r.stderr


def test_store_file_named_otherwise_keeps_the_last_good_version(echo_upstream, register, hms_api,
                                                                store_dir, gateway):
    register(routes("echo-svc", "GET /headers", echo_upstream.port))
    gw = gateway()
    assert healthz(gw)["config"] == "ok"
    # A hand edit: the file says another service, with another route.
    store_file = store_dir / "services" / "echo-svc.yaml"
    store_file.write_text(routes("other-svc", "GET /status/{code}", echo_upstream.port))
    wait_for("/healthz says the config is stale", lambda: healthz(gw)["config"] != "ok")
    config = healthz(gw)["config"]
    assert config.startswith("stale: service echo-svc: "), config
    assert "'other-svc' is not the name it is stored under ('echo-svc')" in config
    assert "serving its last good version" in config
    assert healthz(gw)["status"] == "ok"  # probes keep sending traffic: it serves
    assert httpraw.get(gw.port, "/headers").status == 200  # the last good version
    assert httpraw.get(gw.port, "/status/200").status == 404  # not the inner name's routes
    body = json.loads(admin_get(gw, "/config").body)
    assert "other-svc" not in json.dumps(body)

    r = hms_api("list")
    assert r.returncode == 0
    assert "echo-svc" in r.stdout
    assert ":1: service: 'other-svc' is not the name it is stored under ('echo-svc')" in r.stderr
    assert "hms-api deregister echo-svc" in r.stderr

    # The fix hms-api names: the gateway serves the store again.
    assert hms_api("deregister", "echo-svc").returncode == 0
    wait_for("/healthz says the config is ok", lambda: healthz(gw)["config"] == "ok")


def test_hand_written_clash_is_reported_with_its_fix(echo_upstream, register, hms_api, store_dir,
                                                     gateway):
    register(routes("a-svc", "GET /headers", echo_upstream.port))
    register(routes("b-svc", "GET /status/{code}", echo_upstream.port))
    gw = gateway()
    # A hand edit gives b-svc the route a-svc has: every gateway refuses the
    # whole store, so no later change would apply until someone fixes it.
    (store_dir / "services" / "b-svc.yaml").write_text(
        routes("b-svc", "GET /headers", echo_upstream.port))
    wait_for("/healthz says the config is stale", lambda: healthz(gw)["config"] != "ok")
    assert "/headers" in healthz(gw)["config"]
    assert httpraw.get(gw.port, "/status/200").status == 200  # the last good config serves

    r = hms_api("list")
    assert r.returncode == 0
    assert "the store's services clash, so gateways keep their last good config" in r.stderr
    assert "hms-api deregister a-svc" in r.stderr and "hms-api deregister b-svc" in r.stderr

    status = hms_api("status", "--admin", f"127.0.0.1:{gw.admin_port}", "--interval", "0")
    assert status.returncode == 0, status.stderr
    assert "config: stale: " in status.stdout
    assert "hms-api list shows" in status.stdout

    assert hms_api("deregister", "b-svc").returncode == 0
    wait_for("/healthz says the config is ok", lambda: healthz(gw)["config"] == "ok")
    assert httpraw.get(gw.port, "/status/200").status == 404
