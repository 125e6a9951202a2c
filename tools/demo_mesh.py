"""The seed chapter's mesh, as drawn, in one command (`tools/demo --mesh`).

    client --TLS + JWT--> hms-gateway --mTLS--> sidecar --> hello-svc
                                      --mTLS--> sidecar --> calc-svc  (20 req/min)

Makes the mesh CA and identities, an edge certificate for gateway.local and a
dev JWT secret with `hms-api certs` and `hms-api token`; registers the seed's
two services with allow_from and no static endpoint (each sidecar registers
itself); starts the services, their sidecars (mTLS), the gateway (TLS + JWT),
and a small OTLP receiver that writes every span to a file. Tracing and
access logs are on. Prints the commands to try, then supervises: a process
that exits is reported (its name and log) and the rest keeps running;
SIGUSR1 starts again whatever exited; Ctrl-C stops everything it started.

Everything lives under DIR (default build/demo-mesh): certs/, store/, the
configs, logs/ (one log per process, access logs, traces.jsonl), demo.pid
and demo.json (ports, pids, paths: what the commands it prints use).

    /usr/bin/python3 tools/demo_mesh.py [--build-dir build] [--dir DIR]
        [--free-ports] [--breaker-open-for 30s]
"""
import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs" / "demo"
PY = "/usr/bin/python3"
HOST = "gateway.local"
START_TIMEOUT_S = 30

# The fixed ports of the default run; --free-ports lets the kernel choose.
PORTS = {"hello-svc": 7001, "calc-svc": 7002, "gateway": 8443, "gateway-admin": 9901,
         "hello-sidecar": 15001, "hello-egress": 15101, "hello-admin": 9902,
         "calc-sidecar": 15002, "calc-egress": 15102, "calc-admin": 9903, "otlp": 4318}


def say(text):
    print(f"demo: {text}", flush=True)


class SpanFile:
    """An OTLP/HTTP JSON receiver (POST /v1/traces) on 127.0.0.1 that appends
    one line per span to `path`: trace and span ids, parent, name, service."""

    def __init__(self, path, port):
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                lines = []
                try:
                    for rs in json.loads(body).get("resourceSpans", []):
                        attrs = {a["key"]: a["value"].get("stringValue")
                                 for a in rs.get("resource", {}).get("attributes", [])}
                        for ss in rs.get("scopeSpans", []):
                            for s in ss.get("spans", []):
                                lines.append(json.dumps({
                                    "service": attrs.get("service.name"),
                                    "trace_id": s["traceId"], "span_id": s["spanId"],
                                    "parent_span_id": s.get("parentSpanId", ""),
                                    "name": s["name"], "start_ns": s["startTimeUnixNano"],
                                    "end_ns": s["endTimeUnixNano"]}) + "\n")
                except (ValueError, KeyError, TypeError):
                    self.send_response(400)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                with lock, open(path, "a") as out:
                    out.writelines(lines)
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Proc:
    """One process of the demo: how to start it, its log, its process."""

    def __init__(self, name, argv, log, cwd=None, sock_port=None):
        self.name, self.argv, self.log, self.cwd = name, argv, log, cwd
        self.sock_port = sock_port  # uvicorn: the port of the socket handed over with --fd
        self.proc = None
        self.reported = False
        self.ports = {}

    def start(self):
        pass_fds, argv, sock = (), list(self.argv), None
        if self.sock_port is not None:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.sock_port))
            sock.listen(512)
            self.sock_port = sock.getsockname()[1]
            argv += ["--fd", str(sock.fileno())]
            pass_fds = (sock.fileno(),)
        with open(self.log, "ab") as out:
            # Its own session: Ctrl-C in the terminal reaches the demo only,
            # which then stops each process in order.
            self.proc = subprocess.Popen(argv, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, pass_fds=pass_fds,
                                         start_new_session=True)
        if sock is not None:
            sock.close()
        self.reported = False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if not self.alive():
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def wait_until(what, proc, probe):
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if (result := probe()):
            return result
        if not proc.alive():
            raise SystemExit(f"demo: {proc.name} exited while starting; its log: {proc.log}\n"
                             + tail(proc.log))
        time.sleep(0.05)
    raise SystemExit(f"demo: {what} within {START_TIMEOUT_S} s; log: {proc.log}\n" + tail(proc.log))


def tail(path, n=2000):
    try:
        return Path(path).read_text(errors="replace")[-n:]
    except OSError:
        return ""


def gateway_ports(proc):
    """The addresses hms-gateway printed: listening, admin, egress; None before ready."""
    text = tail(proc.log, 100_000)
    if "hms-gateway: ready" not in text:
        return None
    ports = {}
    for line in text.splitlines():
        for kind in ("listening", "admin", "egress"):
            prefix = f"hms-gateway: {kind} 127.0.0.1:"
            if line.startswith(prefix) and kind not in ports:
                ports[kind] = int(line[len(prefix):].split()[0])
    return ports


def port_answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def yaml_line(key, value):
    # JSON values are YAML flow values: one line per key, no quoting surprises.
    return f"{key}: {json.dumps(value)}\n"


def run(args, argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit(f"demo: {' '.join(map(str, argv))} failed:\n{r.stdout}{r.stderr}")
    return r.stdout


class Demo:
    def __init__(self, args):
        self.args = args
        build = Path(args.build_dir).resolve()
        self.hms_api = next((p for p in (build / "hms-api", build / "src/main/hms-api")
                             if p.exists()), None)
        self.hms_gateway = next((p for p in (build / "hms-gateway", build / "src/main/hms-gateway")
                                 if p.exists()), None)
        if self.hms_api is None or self.hms_gateway is None:
            raise SystemExit(f"demo: hms-api and hms-gateway are not built in {build}")
        self.dir = Path(args.dir).resolve()
        self.logs = self.dir / "logs"
        self.certs = self.dir / "certs"
        self.store = f"file:{self.dir / 'store'}"
        self.env = {**os.environ, "HMS_STORE": self.store}
        self.procs = []
        self.port = {k: 0 if args.free_ports else v for k, v in PORTS.items()}

    def api(self, *argv):
        return run(self.args, [str(self.hms_api), *map(str, argv)], env=self.env)

    def prepare(self):
        """Certificates, the JWT secret, the mesh config, the route files: all fresh."""
        for sub in ("logs", "store", "certs"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        for old in list(self.logs.iterdir()) + list((self.dir / "store").rglob("*")):
            if old.is_file():
                old.unlink()
        self.api("certs", "init", "--dir", self.certs, "--force")
        for name in ("hms-gateway", "hello-svc", "calc-svc"):
            self.api("certs", "issue", name, "--dir", self.certs)
        self.api("certs", "issue", "--dns", HOST, "--dir", self.certs)
        secret = self.dir / "jwt-dev-secret"
        secret.write_text(secrets.token_hex(32) + "\n")
        secret.chmod(0o600)
        self.spans = SpanFile(self.logs / "traces.jsonl", self.port["otlp"])
        mesh = self.dir / "mesh-config.yaml"
        breaker = {"failures": 3, "open_for": self.args.breaker_open_for}
        mesh.write_text(yaml_line("breaker", breaker) + yaml_line("tracing", {
            "otlp_endpoint": f"http://127.0.0.1:{self.spans.port}/v1/traces",
            "sample_ratio": 1.0}))
        # The seed's route files, plus who may call each service over mTLS.
        allow = {"hello-svc": ["hms-gateway", "calc-svc"], "calc-svc": ["hms-gateway"]}
        for name, sub in (("hello-svc", "hello_svc"), ("calc-svc", "calc_svc")):
            route = self.dir / f"{name}.route.yaml"
            route.write_text((DEMO / sub / "route.yaml").read_text().rstrip("\n") + "\n"
                             + yaml_line("allow_from", allow[name]))
            self.api("register", route)

    def identity(self, name):
        return {"cert": str(self.certs / f"{name}.pem"), "key": str(self.certs / f"{name}.key"),
                "ca": str(self.certs / "ca.pem")}

    def start_service(self, name, sub):
        p = Proc(name, [PY, "-m", "uvicorn", "app:app", "--log-level", "warning"],
                 self.logs / f"{name}.log", cwd=DEMO / sub, sock_port=self.port[name])
        p.start()
        self.port[name] = p.sock_port
        self.procs.append(p)
        wait_until(f"{name} did not answer", p, lambda: port_answers(p.sock_port))

    def start_gateway(self, name, keys, make_cfg):
        """hms-gateway with the config make_cfg() writes from self.port; `keys`
        maps what it prints (listening, egress, admin) to self.port's keys. The
        ports it bound (any with --free-ports) are written back into its
        config, so a restart (SIGUSR1) comes back on the same ones."""
        path = self.dir / f"{name}.yaml"

        def write():
            path.write_text("".join(yaml_line(k, v) for k, v in make_cfg().items()))

        write()
        p = Proc(name, [str(self.hms_gateway), "--config", str(path)], self.logs / f"{name}.log")
        p.start()
        self.procs.append(p)
        p.ports = wait_until(f"{name} did not report ready", p, lambda: gateway_ports(p))
        for kind, key in keys.items():
            self.port[key] = p.ports[kind]
        write()

    def start_sidecar(self, service, short):
        keys = {"listening": f"{short}-sidecar", "egress": f"{short}-egress",
                "admin": f"{short}-admin"}
        self.start_gateway(f"{short}-sidecar", keys, lambda: {
            "role": "sidecar", "service": service, "local_port": self.port[service],
            "listeners": [f"127.0.0.1:{self.port[short + '-sidecar']}"],
            "egress": f"127.0.0.1:{self.port[short + '-egress']}",
            "admin": f"127.0.0.1:{self.port[short + '-admin']}", "cores": 1,
            "store": self.store, "mesh": str(self.dir / "mesh-config.yaml"),
            "mtls": self.identity(service),
            "access_log": {"path": str(self.logs / f"{short}-sidecar-access.log")}})

    def start_all(self):
        self.start_service("hello-svc", "hello_svc")
        self.start_service("calc-svc", "calc_svc")
        self.start_sidecar("hello-svc", "hello")
        self.start_sidecar("calc-svc", "calc")
        tls = {"cert": str(self.certs / f"{HOST}.pem"), "key": str(self.certs / f"{HOST}.key")}
        self.start_gateway("gateway", {"listening": "gateway", "admin": "gateway-admin"}, lambda: {
            "listeners": [{"address": f"127.0.0.1:{self.port['gateway']}", "tls": tls}],
            "admin": f"127.0.0.1:{self.port['gateway-admin']}", "cores": 2,
            "store": self.store, "mesh": str(self.dir / "mesh-config.yaml"),
            "jwt": {"hs256_secret_file": str(self.dir / "jwt-dev-secret"),
                    "issuer": "hms-demo", "audience": "hms-api"},
            "mtls": self.identity("hms-gateway"),
            "access_log": {"path": str(self.logs / "gateway-access.log")}})
        self.token = self.api("token", "--config", self.dir / "gateway.yaml", "--sub", "veteran",
                              "--ttl", "24h").strip()

    def describe(self):
        p = self.port
        ca = self.certs / "ca.pem"
        curl = f"curl --cacert {ca} --resolve {HOST}:{p['gateway']}:127.0.0.1"
        url = f"https://{HOST}:{p['gateway']}"
        calc = next(x for x in self.procs if x.name == "calc-svc")
        info = {
            "dir": str(self.dir), "pid": os.getpid(), "ports": p, "token": self.token,
            "ca": str(ca), "logs": str(self.logs), "traces": str(self.logs / "traces.jsonl"),
            "pids": {x.name: x.proc.pid for x in self.procs},
            "logs_by_process": {x.name: str(x.log) for x in self.procs},
            "try": {
                "seed": f'{curl} -H "Authorization: Bearer $JWT" {url}/sum/2/3',
                "no_token": f"{curl} -i {url}/sum/2/3",
                "rate_limit": (f'for i in $(seq 21); do {curl} -s -o /dev/null -w "%{{http_code}} " '
                               f'-H "Authorization: Bearer $JWT" {url}/sum/$i/1; done; echo'),
                "egress_allowed": f"curl -i http://127.0.0.1:{p['calc-egress']}/hello-svc/hello",
                "egress_refused": f"curl -i http://127.0.0.1:{p['hello-egress']}/calc-svc/sum/2/3",
            }}
        self.write_state(info)
        (self.dir / "demo.pid").write_text(f"{os.getpid()}\n")
        t = info["try"]
        print(f"""
HMS-API mesh demo is running (everything under {self.dir}).

  client --TLS+JWT--> gateway {url} (admin 127.0.0.1:{p['gateway-admin']})
    --mTLS--> hello-svc sidecar 127.0.0.1:{p['hello-sidecar']} --> hello-svc 127.0.0.1:{p['hello-svc']}
    --mTLS--> calc-svc sidecar  127.0.0.1:{p['calc-sidecar']} --> calc-svc  127.0.0.1:{p['calc-svc']}

The seed's call, with a token minted by `hms-api token` (valid 24 h):

  export JWT={self.token}
  {t['seed']}

Without the token: 401 jwt_missing_token.
  {t['no_token']}

The rate limit (calc-svc: 20 req/min): the 21st call within the minute is 429.
  {t['rate_limit']}

Between sidecars: calc-svc's egress may call hello-svc (allow_from), hello-svc's
may not call calc-svc (403 identity_not_allowed).
  {t['egress_allowed']}
  {t['egress_refused']}

Mini-lab (the seed's section 8): stop calc-svc, call 3 times: the first two fail
(503 local_service_unavailable from its sidecar), the 3rd opens the breaker and
is answered 503 circuit_open; later calls are refused at once.
  kill {calc.proc.pid}        # calc-svc; the demo reports it and keeps running
  for i in 1 2 3 4; do {curl} -s -H "Authorization: Bearer $JWT" {url}/sum/2/3; echo; done
Start it again (the demo restarts whatever exited), and after the breaker's
open_for ({self.args.breaker_open_for}) the next call is the probe and traffic flows:
  kill -USR1 {os.getpid()}

Traces: every hop's spans, one JSON line each, in {self.logs / 'traces.jsonl'}
Metrics: curl http://127.0.0.1:{p['gateway-admin']}/metrics   (sidecars: {p['hello-admin']}, {p['calc-admin']})
Status:  curl http://127.0.0.1:{p['gateway-admin']}/status
Access logs and process logs: {self.logs}/

Press Ctrl-C to stop everything.
""", flush=True)

    def supervise(self):
        restart = threading.Event()
        signal.signal(signal.SIGUSR1, lambda *_: restart.set())
        while True:
            for p in self.procs:
                if not p.alive() and not p.reported:
                    p.reported = True
                    say(f"{p.name} exited with {p.proc.returncode}; its log: {p.log}. "
                        f"Everything else keeps running; kill -USR1 {os.getpid()} starts it again.")
            if restart.is_set():
                restart.clear()
                started = [p for p in self.procs if not p.alive()]
                for p in started:
                    p.start()
                self.write_pids()  # before saying so: a reader of demo.json sees the new pids
                for p in started:
                    say(f"{p.name} started again (pid {p.proc.pid})")
            time.sleep(0.2)

    def write_pids(self):
        info = json.loads((self.dir / "demo.json").read_text())
        info["pids"] = {x.name: x.proc.pid for x in self.procs}
        self.write_state(info)

    def write_state(self, info):
        # Whole or not at all: a reader never sees a half-written file.
        tmp = self.dir / "demo.json.tmp"
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        os.replace(tmp, self.dir / "demo.json")

    def stop(self):
        for p in reversed(self.procs):  # the gateway first, the services last
            p.stop()
        if getattr(self, "spans", None):
            self.spans.server.shutdown()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default=os.environ.get("BUILD_DIR", "build"))
    ap.add_argument("--dir", help="where everything goes (default BUILD_DIR/demo-mesh)")
    ap.add_argument("--free-ports", action="store_true",
                    help="let the kernel choose every port instead of the fixed ones")
    ap.add_argument("--breaker-open-for", default="30s",
                    help="how long an open breaker refuses before its probe (seed: 30s)")
    args = ap.parse_args()
    if args.dir is None:
        args.dir = str(Path(args.build_dir) / "demo-mesh")
    demo = Demo(args)
    stopping = []

    def on_stop(*_):
        if not stopping:
            stopping.append(1)
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    try:
        if not args.free_ports:
            taken = [f"127.0.0.1:{v}" for v in PORTS.values() if port_answers(v)]
            if taken:
                raise SystemExit(f"demo: {', '.join(taken)} already in use; stop what holds it "
                                 "or use --free-ports")
        demo.prepare()
        demo.start_all()
        demo.describe()
        demo.supervise()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        demo.stop()
        print("\ndemo: stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
