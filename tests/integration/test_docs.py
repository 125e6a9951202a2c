"""Every example in README.md and docs/*.md is marked runnable or illustrative,
and the runnable ones run as written (docs/writing.md): in order, per page,
against real processes this test starts and stops, on ports it chooses.

A page's runnable blocks share one scratch directory (holding a copy of
configs/), its environment (the build's hms-api and hms-gateway first on PATH,
HMS_STORE a fresh file store, a curl that fails on an HTTP error) and one port
map: each `127.0.0.1:PORT`, `localhost:PORT` or `--port PORT` a page writes
stands for one port of the test's, the same one throughout the page.
"""
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import (PY, REPO, UBSAN_REPORT, binary, eventually, free_port, listen_socket,
                      start_uvicorn)

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL = {"sh", "bash", "shell"}
ILLUSTRATIVE = {"console", "text"}
FILES = {"yaml", "json", "promql", "cpp", "python", "ini", "toml", "dockerfile"}
BLOCK_TIMEOUT_S = 60

# `127.0.0.1:8080`, `localhost:8080` and `--port 8080` name a port the page
# chose; the test maps each to its own.
ADDRESS_RE = re.compile(r"(?<![\w.])(127\.0\.0\.1|localhost):(\d{2,5})\b")
PORT_FLAG_RE = re.compile(r"(--port[ =]|local_port: )(\d{2,5})\b")


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence
    info: list
    text: str

    @property
    def where(self):
        return f"{self.page.relative_to(REPO)}:{self.line}"

    @property
    def lang(self):
        return self.info[0] if self.info else ""

    @property
    def runnable(self):
        return "runnable" in self.info[1:]

    def attr(self, name):
        """`name=value` from the info string, or None."""
        for word in self.info[1:]:
            if word.startswith(name + "="):
                return word.split("=", 1)[1]
        return None


def blocks(page):
    """The fenced blocks of a page (``` fences at the start of a line)."""
    out, current = [], None
    for n, line in enumerate(page.read_text().splitlines(), 1):
        if not line.startswith("```"):
            if current is not None:
                current.text += line + "\n"
            continue
        if current is None:
            current = Block(page, n, line[3:].split(), "")
        else:
            out.append(current)
            current = None
    assert current is None, f"{page}:{current.line}: fence never closed"
    return out


def marking_problems(block):
    """Why a block's info string breaks the convention, or None."""
    lang = block.lang
    if not lang:
        return "unmarked block: say what it is (sh runnable, console, text, yaml, ...)"
    if lang in SHELL and not block.runnable:
        return (f"'{lang}' block neither runnable nor illustrative: mark it "
                f"'{lang} runnable' or use 'console'")
    if block.runnable and lang not in SHELL:
        return f"only shell blocks run; '{lang}' cannot be runnable"
    if lang not in SHELL | ILLUSTRATIVE | FILES:
        return f"unknown language '{lang}' (docs/writing.md lists them)"
    for word in block.info[1:]:
        if word not in ("runnable", "background") and not word.startswith(("waits-for=",
                                                                           "needs=")):
            return f"unknown marking '{word}'"
    if "background" in block.info and not block.attr("waits-for"):
        return "a background block says what it waits for: waits-for=127.0.0.1:PORT"
    if block.attr("needs") not in (None, "demo"):
        return f"unknown setup needs={block.attr('needs')} (the harness knows: demo)"
    return None


def test_every_block_is_marked():
    problems = [f"{b.where}: {why}" for page in PAGES for b in blocks(page)
                if (why := marking_problems(b))]
    assert not problems, "\n".join(problems)


def test_the_marking_checker_refuses_what_it_should():
    def check(info):
        return marking_problems(Block(REPO / "README.md", 1, info.split(), "true\n"))

    assert check("") and check("sh") and check("bash") and check("yaml runnable")
    assert check("sh runnable background") and check("sh runnable needs=grafana")
    assert check("sh runnable sometimes")
    for ok in ("sh runnable", "sh runnable background waits-for=127.0.0.1:8080",
               "sh runnable needs=demo", "console", "text", "yaml", "json"):
        assert check(ok) is None, ok


RUNNABLE_PAGES = [p for p in PAGES if any(b.runnable for b in blocks(p))]


class Page:
    """The scratch directory, environment, port map and background processes
    of one page's run."""

    def __init__(self, page, tmp_path):
        self.page = page
        self.dir = tmp_path / "page"
        self.dir.mkdir()
        shutil.copytree(REPO / "configs", self.dir / "configs")
        self.store = tmp_path / "store"
        self.ports = {}
        self.background = []  # (Popen, log path, block)
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        # Pages say python3; the suite's is Debian's, whatever PATH puts first.
        (bin_dir / "python3").write_text(f'#!/bin/sh\nexec {PY} "$@"\n')
        (bin_dir / "python3").chmod(0o755)
        (tmp_path / ".curlrc").write_text(
            'fail-with-body\nsilent\nshow-error\nmax-time = 20\nnoproxy = "*"\n')
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("HMS_") and k.lower() not in ("http_proxy", "https_proxy")}
        self.env.update(
            PATH=f"{bin_dir}:{binary('hms-api').parent}:{binary('hms-gateway').parent}:"
                 + os.environ.get("PATH", "/usr/bin:/bin"),
            HMS_STORE=f"file:{self.store}", CURL_HOME=str(tmp_path), HOME=str(tmp_path))

    def port(self, page_port):
        if page_port not in self.ports:
            self.ports[page_port] = free_port()
        return self.ports[page_port]

    def rewrite(self, text):
        text = ADDRESS_RE.sub(lambda m: f"{m.group(1)}:{self.port(int(m.group(2)))}", text)
        return PORT_FLAG_RE.sub(lambda m: f"{m.group(1)}{self.port(int(m.group(2)))}", text)

    def failure(self, block, what, out=""):
        logs = "".join(f"\n--- {b.where} (background) ---\n{log.read_text(errors='replace')[-3000:]}"
                       for _, log, b in self.background)
        return (f"{block.where}: {what}\n--- the block as run ---\n{self.rewrite(block.text)}"
                f"--- its output ---\n{out}{logs}")

    def run(self, block):
        if block.attr("needs") == "demo":
            self.start_demo()
        if "background" in block.info:
            return self.start(block)
        try:
            r = subprocess.run(["bash", "-euo", "pipefail", "-c", self.rewrite(block.text)],
                               cwd=self.dir, env=self.env, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            pytest.fail(self.failure(block, f"still running after {BLOCK_TIMEOUT_S} s",
                                     str(e.stdout or "")))
        if r.returncode != 0:
            pytest.fail(self.failure(block, f"exit status {r.returncode}", r.stdout + r.stderr))

    def start(self, block):
        log = self.dir.parent / f"background-{block.line}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(["bash", "-c", self.rewrite(block.text)], cwd=self.dir,
                                    env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.background.append((proc, log, block))
        # HOST:PORT: until it accepts connections; http://HOST:PORT/PATH: until
        # a GET of it is answered below 400 (a sidecar's egress, say, once
        # its own registration reached its routes).
        wanted = self.rewrite(block.attr("waits-for"))
        url = urllib.parse.urlsplit(wanted if "//" in wanted else "tcp://" + wanted)

        def ready():
            if proc.poll() is not None:
                pytest.fail(self.failure(block, f"exited with {proc.returncode} before "
                                                f"{wanted} was ready"))
            if url.scheme != "http":
                with socket.create_connection((url.hostname, url.port), timeout=2):
                    return True
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=2)
            try:
                conn.request("GET", url.path or "/")
                return conn.getresponse().status < 400
            finally:
                conn.close()

        eventually(ready, timeout=20, interval=0.05, ignore=(OSError, http.client.HTTPException),
                   what=f"{block.where}: {wanted} ready")

    def start_demo(self):
        """What tools/demo starts, on this test's ports: the seed's two
        services, their route files and endpoints, a gateway on the embedded
        defaults but for its addresses."""
        if getattr(self, "demo_started", False):
            return
        self.demo_started = True
        for name, page_port in (("hello_svc", 7001), ("calc_svc", 7002)):
            sock = listen_socket()
            self.ports[page_port] = sock.getsockname()[1]
            up = start_uvicorn(self.procs, REPO / "configs" / "demo" / name, "app",
                               self.dir.parent, sock=sock)
            service = name.replace("_", "-")
            for args in (["register", f"configs/demo/{name}/route.yaml"],
                         ["endpoints", "add", service, up.addr]):
                subprocess.run([binary("hms-api"), *args], cwd=self.dir, env=self.env,
                               check=True, capture_output=True, timeout=30)
        gateway = self.dir.parent / "demo-gateway.yaml"
        gateway.write_text(f"listeners: [127.0.0.1:{self.port(8080)}]\n"
                           f"admin: 127.0.0.1:{self.port(9901)}\n")
        block = Block(self.page, 0, ["sh", "runnable", "background",
                                     "waits-for=127.0.0.1:8080"],
                      f"exec hms-gateway --config {gateway}\n")
        self.start(block)

    def stop(self):
        """SIGTERM to each background block's process group (its own
        session), SIGKILL after 10 s; a UBSan report in a log (the sanitizer
        build reports and carries on) fails the page that caused it."""
        for proc, _, _ in reversed(self.background):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
        for _, log, block in self.background:
            assert UBSAN_REPORT not in log.read_text(errors="replace"), \
                self.failure(block, "undefined behaviour reported")


@pytest.mark.deadline(300)
@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_runnable_blocks_run_as_written(page, tmp_path, procs):
    run = Page(page, tmp_path)
    run.procs = procs
    try:
        for block in blocks(page):
            if block.runnable:
                run.run(block)
    finally:
        run.stop()
