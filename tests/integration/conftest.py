"""Fixtures of the integration suite: the real hms-gateway and hms-api binaries
(from $HMS_BUILD_DIR, set by meson) against real upstreams on 127.0.0.1.

Every process a fixture starts is stopped by that fixture's finalizer, also
when the test fails. Every test phase is bounded by SIGALRM (the `deadline`
marker; Debian ships no pytest-timeout), every socket by a timeout.
"""
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import httpraw

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
APPS = HERE / "apps"
PY = "/usr/bin/python3"
BUILD_DIR = Path(os.environ.get("HMS_BUILD_DIR") or REPO / "build")

DEFAULT_DEADLINE_S = 60
PHASE_DEADLINE_S = 60  # setup and teardown of one test
START_TIMEOUT_S = 20
UBSAN_REPORT = ": runtime error: "  # how UBSan starts each report line


# ---------------------------------------------------------------- deadlines


class DeadlineExceeded(Exception):
    pass


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "deadline(seconds): fail the test when its call phase runs longer")


def _bounded(seconds, what):
    def on_alarm(signum, frame):
        raise DeadlineExceeded(f"{what} exceeded its {seconds} s deadline")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    return old


def _unbound(old):
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    old = _bounded(PHASE_DEADLINE_S, "setup")
    try:
        yield
    finally:
        _unbound(old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    marker = item.get_closest_marker("deadline")
    seconds = marker.args[0] if marker else DEFAULT_DEADLINE_S
    old = _bounded(seconds, "test")
    try:
        yield
    finally:
        _unbound(old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    old = _bounded(PHASE_DEADLINE_S, "teardown")
    try:
        yield
    finally:
        _unbound(old)


# ---------------------------------------------------------------- helpers


def build_option(name):
    """A meson option of the build under test (meson-info), or None."""
    path = BUILD_DIR / "meson-info" / "intro-buildoptions.json"
    for opt in json.loads(path.read_text()):
        if opt["name"] == name:
            return opt["value"]
    return None


def sanitized():
    """The build under test has ASan/UBSan: memory sizes mean nothing there
    (shadow memory, quarantine)."""
    # meson gives "none", "address,undefined" or a list, depending on its version.
    return build_option("b_sanitize") not in (None, "none", "", [], ["none"])


def binary(name):
    """A built binary: meson puts it at the build root or beside src/main/meson.build."""
    for candidate in (BUILD_DIR / name, BUILD_DIR / "src" / "main" / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(f"{name} is not built in {BUILD_DIR} (ninja -C {BUILD_DIR})")


class _Unset:
    pass


def eventually(probe, until=bool, timeout=10.0, interval=0.02, what=None, ignore=()):
    """Calls probe() until until(value) holds and returns that value; fails the
    test after `timeout` s, naming `what` and showing the last value (or the
    last exception of a type in `ignore`, which are retried). The one way this
    suite waits for a state: poll it, never sleep for a guessed time."""
    deadline = time.monotonic() + timeout
    last = _Unset
    while True:
        try:
            last = probe()
            if until(last):
                return last
        except ignore as e:
            last = e
        if time.monotonic() >= deadline:
            shown = "no value" if last is _Unset else repr(last)
            if len(shown) > 2000:
                shown = shown[:2000] + "..."
            raise AssertionError(f"{what or getattr(probe, '__name__', 'condition')}"
                                 f" not within {timeout} s; last: {shown}")
        time.sleep(interval)


def snapshot_versions(gw):
    """(published version, [version each core runs]) from the admin /config."""
    cfg = json.loads(admin_get(gw, "/config").body)
    return cfg["version"], [c["version"] for c in cfg["cores"]]


def wait_snapshot(gw, after=None, timeout=10.0):
    """Waits until every core runs the published snapshot, and (with `after`)
    until that snapshot is newer than version `after`; returns its version.
    The pattern: v = wait_snapshot(gw); <change the store>; wait_snapshot(gw, after=v)."""
    def settled(vs):
        published, cores = vs
        return all(c == published for c in cores) and (after is None or published > after)

    return eventually(lambda: snapshot_versions(gw), settled, timeout,
                      what=f"every core on a snapshot newer than {after}"
                      if after is not None else "every core on the published snapshot")[0]


def closed_port():
    """A 127.0.0.1 port that refuses connections: a socket bound there and never
    listening, held until the test ends, so no other process can take the port
    (a port read from a socket closed again can be anyone's a moment later)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _held_sockets.append(s)
    return s.getsockname()[1]


_held_sockets = []


@pytest.fixture(autouse=True)
def _release_held_sockets():
    yield
    while _held_sockets:
        _held_sockets.pop().close()


def start_on_free_port(start, attempts=5):
    """For servers that cannot bind port 0 and report it (nginx, etcd,
    Prometheus): start(port) with a port just read from the kernel, and again
    with a new one when another process took it in between (start raises
    PortTaken). Returns what start returns."""
    for _ in range(attempts - 1):
        try:
            return start(free_port())
        except PortTaken:
            continue
    return start(free_port())


class PortTaken(Exception):
    """Raised by a start function given to start_on_free_port: its port was taken."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RawUpstream:
    """An HTTP/1.1 upstream in plain Python on 127.0.0.1:0, for answers the
    real servers do not write, or to see what the gateway really sent: each
    connection's request head is read (the bytes up to its blank line), the
    bytes answer(head) returns are sent, and the connection is closed;
    `answered` is set once they are all in the kernel and the socket closed.
    Serves from its creation until close()."""

    def __init__(self, answer):
        self.answer = answer
        self.answered = threading.Event()
        self._srv = socket.socket()
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(16)
        self._srv.settimeout(0.2)
        self.port = self._srv.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._handle(conn)

    def _handle(self, conn):
        """One accepted connection, served before the next is accepted (a
        subclass may serve it otherwise: test_h2_upstream's RawH2Upstream)."""
        with conn:
            conn.settimeout(10)
            data = b""
            try:
                while b"\r\n\r\n" not in data and len(data) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(self.answer(data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"))
            except OSError:
                return
        self.answered.set()

    @staticmethod
    def path_of(head):
        """The request-target of a request head."""
        return head.split(b" ", 2)[1].decode() if head.count(b" ") >= 2 else "/"

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self._srv.close()


def wait_http(port, proc=None, log=None, timeout=START_TIMEOUT_S):
    """Waits until 127.0.0.1:port answers an HTTP request with any response."""
    def answers():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before answering"
                               f"{_tail(log)}")
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return s.recv(5) == b"HTTP/"

    try:
        eventually(answers, timeout=timeout, interval=0.05, ignore=(OSError,),
                   what=f"127.0.0.1:{port} answering")
    except AssertionError as e:
        raise RuntimeError(f"{e}{_tail(log)}") from None


def _tail(path, n=4000):
    if not path:
        return ""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n--- " + str(path) + " ---\n" + text[-n:]


def vmrss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def parse_duration_s(text, default):
    if text is None:
        return default
    if isinstance(text, (int, float)):
        return float(text)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*", str(text))
    if not m:
        return default
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


class Procs:
    """Processes started by one fixture scope; stopped (TERM, then KILL) at its end."""

    def __init__(self):
        self.procs = []

    def start(self, args, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen([str(a) for a in args], start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def stop_all(self):
        for proc in reversed(self.procs):
            stop_process(proc)


def stop_process(proc, sig=signal.SIGTERM, timeout=5):
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    for f in (proc.stdout, proc.stderr):
        if f:
            f.close()
    return proc.returncode


def read_port_line(proc, what, timeout=START_TIMEOUT_S):
    """Reads the "port N" line a helper app prints once it listens."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise RuntimeError(f"{what} did not report its port within {timeout} s")
    line = proc.stdout.readline().decode()
    m = re.match(r"port (\d+)", line)
    if not m:
        raise RuntimeError(f"{what} printed {line!r} instead of its port")
    return int(m.group(1))


class Upstream:
    def __init__(self, proc, port, log=None):
        self.proc = proc
        self.port = port
        self.log = log

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"


def listen_socket():
    """A socket listening on 127.0.0.1, port 0: its port is known (and nobody
    else's) before the server that will own it starts (start_uvicorn sock=)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    return sock


def start_uvicorn(procs, app_dir, module, log_dir, env=None, sock=None):
    """`python3 -m uvicorn MODULE:app` in app_dir on a socket bound here first
    (port 0, handed over with --fd), so no other process can take the port;
    `sock`: that socket, made by the caller (listen_socket) to know the port sooner."""
    sock = sock or listen_socket()
    port = sock.getsockname()[1]
    log = Path(log_dir) / f"uvicorn-{module}-{port}.log"
    with open(log, "wb") as out:
        proc = procs.start(
            [PY, "-m", "uvicorn", f"{module}:app", "--fd", sock.fileno(),
             "--log-level", "warning", "--timeout-keep-alive", "30"],
            cwd=app_dir, stdout=out, stderr=subprocess.STDOUT, pass_fds=[sock.fileno()],
            env={**os.environ, **(env or {})})
    sock.close()
    wait_http(port, proc, log)
    return Upstream(proc, port, log)


def start_helper(procs, script, what):
    proc = procs.start([PY, APPS / script], stdout=subprocess.PIPE)
    port = read_port_line(proc, what)
    return Upstream(proc, port)


# ---------------------------------------------------------------- upstreams


@pytest.fixture
def procs():
    p = Procs()
    yield p
    p.stop_all()


@pytest.fixture(scope="session")
def session_procs():
    p = Procs()
    yield p
    p.stop_all()


@pytest.fixture
def uvicorn_app(procs, tmp_path):
    """uvicorn_app(app_dir, module="app", env=None, sock=None) → Upstream answering
    on 127.0.0.1:port (env: extra environment variables for the app; sock: a
    listen_socket() to serve on)."""

    def start(app_dir, module="app", env=None, sock=None):
        return start_uvicorn(procs, app_dir, module, tmp_path, env, sock)

    return start


@pytest.fixture(scope="session")
def echo_upstream(session_procs, tmp_path_factory):
    """The echo app (apps/echo_app.py), shared by the whole session."""
    return start_uvicorn(session_procs, APPS, "echo_app", tmp_path_factory.mktemp("echo"))


@pytest.fixture(scope="session")
def bad_upstream(session_procs):
    """The raw-socket misbehaving upstream (apps/bad_upstream.py)."""
    return start_helper(session_procs, "bad_upstream.py", "bad_upstream")


@pytest.fixture(scope="session")
def upload_sink(session_procs):
    """The raw-socket upload sink (apps/sink.py): reads whole bodies, answers {"bytes": N}."""
    return start_helper(session_procs, "sink.py", "sink")


# What every nginx of the suite needs (its files under d, no access log);
# a test's nginx adds its own http-level lines and server, and closes "}}".
NGINX_HEAD = """\
worker_processes 1;
{user}
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/client_body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
"""

NGINX_CONF = NGINX_HEAD + """\
    sendfile on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    server {{
        listen 127.0.0.1:{port};
        location = /json {{
            default_type application/json;
            return 200 '{{"ok":true}}';
        }}
        location = /big {{
            root {d}/www;
            default_type application/octet-stream;
        }}
    }}
}}
"""


def start_nginx(procs, d, template):
    """nginx with `template` (formatted with d, port, user) written to
    d/nginx.conf, logging to d/error.log; returns (proc, port) once it answers.
    nginx cannot listen on port 0 and say which port it got: the port is read
    from the kernel, and another one tried when a process took it meanwhile."""
    conf = d / "nginx.conf"
    log = d / "error.log"

    def start(port):
        conf.write_text(template.format(d=d, port=port,
                                        user="user root;" if os.geteuid() == 0 else ""))
        with open(d / "stderr.log", "wb") as out:
            proc = procs.start(
                ["/usr/sbin/nginx", "-c", conf, "-p", d, "-e", log, "-g", "daemon off;"],
                stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_http(port, proc, d / "stderr.log")
        except RuntimeError:
            said = _tail(d / "stderr.log") + _tail(log)
            if proc.poll() is not None and "Address already in use" in said:
                raise PortTaken(port)
            raise
        return proc, port

    return start_on_free_port(start)


BIG_BYTES = 1 << 30


@pytest.fixture(scope="session")
def nginx_upstream(session_procs, tmp_path_factory):
    """nginx (1 worker) on 127.0.0.1:port serving /json ({"ok":true}) and /big
    (a 1 GiB sparse file). Uploads go to `upload_sink`, which reads every byte."""
    d = tmp_path_factory.mktemp("nginx")
    (d / "tmp").mkdir()
    (d / "www").mkdir()
    with open(d / "www" / "big", "wb") as f:
        f.truncate(BIG_BYTES)
    proc, port = start_nginx(session_procs, d, NGINX_CONF)
    return Upstream(proc, port, d / "error.log")


# ---------------------------------------------------------------- control plane


@pytest.fixture
def store_dir(tmp_path):
    d = tmp_path / "store"
    d.mkdir()
    return d


def hms_api_on(store, *args):
    """`hms-api --store STORE ARGS`, which must succeed; its CompletedProcess."""
    r = subprocess.run([str(binary("hms-api")), "--store", store, *map(str, args)],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"hms-api {' '.join(map(str, args))}: {r.stdout}{r.stderr}"
    return r


@pytest.fixture
def hms_api(store_dir):
    """hms_api(*args) → CompletedProcess of `hms-api --store file:<store_dir> ARGS`."""
    exe = binary("hms-api")
    env = {k: v for k, v in os.environ.items() if k != "HMS_STORE"}

    def run(*args, timeout=30):
        return subprocess.run([str(exe), "--store", f"file:{store_dir}", *map(str, args)],
                              capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL)

    return run


@pytest.fixture
def register(hms_api, tmp_path):
    """register(yaml_text, name=None) writes a route file and registers it; asserts success."""
    counter = [0]

    def reg(text, name=None):
        counter[0] += 1
        path = tmp_path / (name or f"route-{counter[0]}.yaml")
        path.write_text(text)
        r = hms_api("register", path)
        assert r.returncode == 0, f"register failed ({r.returncode}):\n{r.stdout}{r.stderr}"
        return path

    return reg


def echo_routes(port, service="echo-svc", slow_timeout=None, retries=0):
    """The echo app's route file."""
    slow = "  - path: /slow\n    methods: [GET]\n"
    if slow_timeout:
        slow += f"    timeout: {slow_timeout}\n"
    return (f"service: {service}\n"
            "routes:\n"
            "  - POST /echo\n"
            "  - GET /stream\n"
            "  - path: /headers\n"
            "  - GET /status/{code}\n"
            f"{slow}"
            f"retries: {retries}\n"
            "breaker: {failures: 1000, open_for: 1s}\n"
            f"endpoints: [127.0.0.1:{port}]\n")


# ---------------------------------------------------------------- the gateway


READY_RE = re.compile(r"^hms-gateway: ready cores=(\d+) snapshot=(\d+)")
LISTEN_RE = re.compile(r"^hms-gateway: listening 127\.0\.0\.1:(\d+)")
ADMIN_RE = re.compile(r"^hms-gateway: admin 127\.0\.0\.1:(\d+)")
EGRESS_RE = re.compile(r"^hms-gateway: egress 127\.0\.0\.1:(\d+)")


class Gateway:
    def __init__(self, proc, config_path, drain_s, stderr_path):
        self.proc = proc
        self.config_path = config_path
        self.drain_s = drain_s
        self.stderr_path = stderr_path
        self.lines = []
        self.ports = []
        self.admin_port = None
        self.egress_port = None  # a sidecar's egress listener
        self.killed = False      # stopped with SIGKILL on purpose: no clean exit expected
        self.cores = None
        self.snapshot = None
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

    def _read_stdout(self):
        # Keeps draining stdout for the process's whole life so it never blocks on a full pipe.
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if m := LISTEN_RE.match(line):
                self.ports.append(int(m.group(1)))
            elif m := ADMIN_RE.match(line):
                self.admin_port = int(m.group(1))
            elif m := EGRESS_RE.match(line):
                self.egress_port = int(m.group(1))
            elif m := READY_RE.match(line):
                self.cores, self.snapshot = int(m.group(1)), int(m.group(2))
                self._ready.set()
        self._ready.set()

    def wait_ready(self, timeout=START_TIMEOUT_S):
        self._ready.wait(timeout)
        if self.cores is None:
            state = ("exited with %s" % self.proc.poll() if self.proc.poll() is not None
                     else f"printed no ready line within {timeout} s")
            raise RuntimeError(f"hms-gateway {state}; stdout:\n" + "\n".join(self.lines)
                               + self.logs())
        assert self.ports, "hms-gateway printed no 'listening' line before 'ready'"

    @property
    def port(self):
        return self.ports[0]

    def logs(self):
        return _tail(self.stderr_path)

    def kill(self):
        """SIGKILL: the process gets no chance to clean up."""
        self.killed = True
        self.proc.kill()
        self.proc.wait(timeout=5)
        self._reader.join(timeout=5)

    def stop(self, sig=signal.SIGTERM):
        """Sends `sig` and returns the exit code; fails if the gateway does not exit
        within drain_timeout + 5 s (it is killed then)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=self.drain_s + 5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                raise AssertionError(
                    f"hms-gateway did not exit within {self.drain_s + 5:.0f} s of {sig.name}"
                    + self.logs())
        self._reader.join(timeout=5)
        return self.proc.returncode


WRK = shutil.which("wrk") or "/usr/bin/wrk"


def parse_wrk(out):
    """(requests, non-2xx responses, socket errors) from wrk's summary."""
    m = re.search(r"(\d+) requests in", out)
    assert m, f"unexpected wrk output:\n{out}"
    requests = int(m.group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return requests, int(non2xx.group(1)) if non2xx else 0, \
        sum(map(int, sock.groups())) if sock else 0


class WrkUntilStopped:
    """`with WrkUntilStopped(url) as wrk: ...; out = wrk.stop(what)`: wrk runs
    until the test's event is over and is then told to stop (SIGINT: it
    prints its summary), rather than for a duration guessed to cover it;
    `max_s` bounds it. Killed on the way out if still running."""

    def __init__(self, url, threads=2, connections=16, max_s=60, latency=False):
        self.args = [WRK, f"-t{threads}", f"-c{connections}", f"-d{max_s}s",
                     *(["--latency"] if latency else []), url]
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        return self

    def stop(self, what):
        """wrk's output; fails if wrk ended before `what` did."""
        assert self.proc.poll() is None, \
            f"wrk ended before {what} did:\n" + self.proc.communicate()[0]
        self.proc.send_signal(signal.SIGINT)
        return self.proc.communicate(timeout=30)[0]

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def log_lines(path):
    """An access log's complete lines, parsed: a poll may catch the writer
    mid-line, and a line without its newline is not written yet."""
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines()]


@pytest.fixture
def gateway(store_dir, tmp_path):
    """gateway(overrides=None) → a running hms-gateway on a tmp gateway.yaml
    (listener and admin on 127.0.0.1 port 0, the test's store, 2 cores, plus
    overrides). Teardown: SIGTERM, and exit code 0 within drain_timeout + 5 s."""
    exe = binary("hms-gateway")
    started = []

    def start(overrides=None, name="gateway.yaml"):
        cfg = {"listeners": ["127.0.0.1:0"], "admin": "127.0.0.1:0",
               "store": f"file:{store_dir}", "cores": 2}
        cfg.update(overrides or {})
        path = tmp_path / name
        # JSON values are YAML flow values, so every key is one line.
        path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in cfg.items()))
        stderr_path = tmp_path / f"{path.stem}.stderr"
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen([str(exe), "--config", str(path)], stdout=subprocess.PIPE,
                                    stderr=err, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        gw = Gateway(proc, path, parse_duration_s(cfg.get("drain_timeout"), 10.0), stderr_path)
        try:
            gw.wait_ready()
        except BaseException:
            stop_process(proc, signal.SIGKILL)  # the start already failed the test
            raise
        started.append(gw)
        return gw

    yield start
    failures = []
    for gw in started:
        try:
            rc = gw.stop()
            if rc != 0 and not gw.killed:
                failures.append(f"hms-gateway exited with {rc} after SIGTERM" + gw.logs())
            elif UBSAN_REPORT in gw.stderr_path.read_text(errors="replace"):
                # The sanitizer build's UBSan reports and carries on: a report
                # in the log fails the test that caused it.
                failures.append("hms-gateway reported undefined behaviour" + gw.logs())
        except AssertionError as e:
            failures.append(str(e))
    assert not failures, "\n".join(failures)


@pytest.fixture
def echo_gateway(echo_upstream, register, gateway):
    """A gateway with echo-svc (the session's echo app) registered."""
    register(echo_routes(echo_upstream.port))
    return gateway()


def admin_get(gw, path, timeout=10):
    assert gw.admin_port, "hms-gateway printed no 'admin' line"
    return httpraw.get(gw.admin_port, path, timeout=timeout)


def metric_sum(gw, name, **labels):
    """The sum of the admin /metrics samples of `name` whose labels include
    `labels`; None when there is none."""
    body = admin_get(gw, "/metrics").body.decode()
    want = [f'{k}="{v}"' for k, v in labels.items()]
    total, found = 0.0, False
    for line in body.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(w in line for w in want):
                total += float(line.rsplit(" ", 1)[1])
                found = True
    return total if found else None


def wait_probe_due(gw, service, timeout=5.0):
    """Until the open breaker of `service` may send its probe: open_for has
    passed by the gateway's own clock (hms_breaker_next_probe_seconds 0 while
    still open). Polled, not slept for, so a slow run cannot probe too early."""
    def state():
        return (metric_sum(gw, "hms_breaker_state", service=service),
                metric_sum(gw, "hms_breaker_next_probe_seconds", service=service))

    eventually(state, lambda s: s == (1.0, 0.0), timeout,
               what=f"{service}'s probe due (breaker state, next probe seconds)")
