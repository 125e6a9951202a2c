#!/usr/bin/python3
"""Route scale: what a route table of N routes costs the control plane, on
the file store, for N in 100, 10k, 100k and 1M (--routes to choose).

The routes are services of 100 routes each (one route file per service, as
an operator registers them): a quarter each of `GET /svc-S/rR/{id}`,
`POST /svc-S/rR`, `GET, PUT /svc-S/rR/{a}/x` (long form, with a timeout) and
`GET /svc-S/rR/items/{rest*}`. Per N it measures, each in a fresh process
(wall time, and peak RSS from wait4's rusage):

  dry-run    `hms-api register --dry-run` of every file into an empty store
  register   `hms-api register` of every file (written to a file store)
  start      `hms-gateway` (1 core, port 0) on that store until its ready
             line: reading, parsing and compiling the whole table
  reload     one service re-registered while that gateway runs: from the
             write to the gateway's "compiled" log line, and that line's own
             compile time and services parsed anew (1 of N/100)
  match      bench-route-scale (bench/control/route_match.cc): the table
             alone built from specs, and p50/p99 of single Find calls

Everything runs on 127.0.0.1 in a temporary directory; every process started
is stopped on exit. `--record` appends the table to bench/RESULTS.md under
a dated heading with the command. test_scale.py imports write_route_files
and measure for its bounded run (100k routes).
"""

import argparse
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RESULTS = os.path.join(ROOT, "bench", "RESULTS.md")
ROUTES_PER_SERVICE = 100


def write_route_files(directory, routes, per_service=ROUTES_PER_SERVICE):
    """Writes ceil(routes / per_service) route files into `directory`;
    returns their paths in order."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for s in range((routes + per_service - 1) // per_service):
        lines = [f"service: svc-{s}", "routes:"]
        for r in range(min(per_service, routes - s * per_service)):
            base = f"/svc-{s}/r{r}"
            lines.append([f"  - GET {base}/{{id}}",
                          f"  - POST {base}",
                          f"  - path: {base}/{{a}}/x\n    methods: [GET, PUT]\n    timeout: 2s",
                          f"  - GET {base}/items/{{rest*}}"][r % 4])
        lines.append(f"endpoints: [127.0.0.1:{7000 + s % 1000}]")
        path = os.path.join(str(directory), f"svc-{s}.yaml")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        paths.append(path)
    return paths


class Run:
    def __init__(self, returncode, seconds, peak_mib, stdout, stderr):
        self.returncode, self.seconds, self.peak_mib = returncode, seconds, peak_mib
        self.stdout, self.stderr = stdout, stderr


def measure(cmd, timeout=600):
    """Runs cmd to its end; its wall time and peak RSS (MiB, from wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid != 0:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        seconds = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(proc.returncode, seconds, usage.ru_maxrss / 1024.0,
                   out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def vm_hwm_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def gateway_run(build, store, work, files):
    """Starts a gateway on `store`, times its start and one reload."""
    config = os.path.join(work, "gateway.yaml")
    with open(config, "w") as f:
        f.write(f"listeners: [127.0.0.1:0]\nadmin: 127.0.0.1:0\ncores: 1\nstore: file:{store}\n")
    log = os.path.join(work, "gateway.stderr")
    started = time.monotonic()
    with open(log, "wb") as err:
        proc = subprocess.Popen([os.path.join(build, "src/main/hms-gateway"), "--config", config],
                                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        for raw in proc.stdout:
            if raw.startswith(b"hms-gateway: ready"):
                break
        else:
            raise RuntimeError("hms-gateway exited before ready: " + open(log).read()[-2000:])
        start_s = time.monotonic() - started
        start_mib = vm_hwm_mib(proc.pid)
        # One service re-registered with one more route: the reload parses it alone.
        changed = os.path.join(work, "svc-0.yaml")
        with open(files[0]) as f:
            text = f.read()
        with open(changed, "w") as f:
            f.write(text.replace("routes:\n", "routes:\n  - GET /svc-0/added\n", 1))
        compiled_before = open(log).read().count("compiled in")
        reg = measure([os.path.join(build, "src/main/hms-api"), "--store", f"file:{store}",
                       "register", changed])
        if reg.returncode != 0:
            raise RuntimeError("register of the changed service failed: " + reg.stderr[-2000:])
        written = time.monotonic()
        line = None
        while time.monotonic() - written < 120:
            lines = [l for l in open(log).read().splitlines() if "compiled in" in l]
            if len(lines) > compiled_before:
                line = lines[-1]
                break
            time.sleep(0.005)
        if line is None:
            raise RuntimeError("no reload within 120 s: " + open(log).read()[-2000:])
        reload_s = time.monotonic() - written
        return {"start_s": start_s, "start_mib": start_mib, "register_one_s": reg.seconds,
                "register_one_mib": reg.peak_mib, "reload_s": reload_s,
                "reload_line": line.split("store: ", 1)[1], "gateway_mib": vm_hwm_mib(proc.pid)}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def one_size(build, n, work):
    routes_dir = os.path.join(work, "routes")
    store = os.path.join(work, "store")
    files = write_route_files(routes_dir, n)
    api = [os.path.join(build, "src/main/hms-api"), "--store", f"file:{store}"]
    row = {"routes": n, "services": len(files)}
    for name, args in (("dry_run", ["register", "--dry-run"]), ("register", ["register"])):
        run = measure(api + args + files)
        if run.returncode != 0:
            raise RuntimeError(f"{name} failed: {run.stderr[-2000:]}")
        row[name + "_s"], row[name + "_mib"] = run.seconds, run.peak_mib
    row.update(gateway_run(build, store, work, files))
    match = measure([os.path.join(build, "bench/bench-route-scale"), str(n)])
    if match.returncode != 0:
        raise RuntimeError("bench-route-scale failed: " + match.stderr[-2000:])
    m = json.loads(match.stdout)
    row.update({"build_ms": m["build_ms"], "p50_ns": m["p50_ns"], "p99_ns": m["p99_ns"]})
    return row


def table(rows):
    out = ["| routes (services) | dry-run s / MiB | register s / MiB | gateway start s / MiB "
           "| reload after 1 change: s (compile) | register 1 into it s / MiB "
           "| table build ms | match p50 / p99 ns |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['routes']:,} ({r['services']:,}) "
                   f"| {r['dry_run_s']:.2f} / {r['dry_run_mib']:.0f} "
                   f"| {r['register_s']:.2f} / {r['register_mib']:.0f} "
                   f"| {r['start_s']:.2f} / {r['start_mib']:.0f} "
                   f"| {r['reload_s']:.2f} ({r['reload_line']}) "
                   f"| {r['register_one_s']:.2f} / {r['register_one_mib']:.0f} "
                   f"| {r['build_ms']:.0f} | {r['p50_ns']} / {r['p99_ns']} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--routes", default="100,10000,100000,1000000",
                    help="comma-separated route counts (default: %(default)s)")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--record", action="store_true", help="append the table to bench/RESULTS.md")
    args = ap.parse_args()
    build = os.path.abspath(args.build_dir)
    rows = []
    for n in (int(x) for x in args.routes.split(",")):
        work = tempfile.mkdtemp(prefix="hms-route-scale-")
        try:
            print(f"route_scale: {n:,} routes ...", file=sys.stderr, flush=True)
            rows.append(one_size(build, n, work))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    text = table(rows)
    print(text)
    if args.record:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        cmd = "bench/control/route_scale.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        with open(RESULTS, "a") as f:
            f.write(f"\n### {now} — route scale (file store)\n\n```\n{cmd}\n```\n\n"
                    f"CPUs: {os.cpu_count()}, load average at the end: "
                    f"{os.getloadavg()[0]:.1f}\n\n{text}\n")


if __name__ == "__main__":
    main()
