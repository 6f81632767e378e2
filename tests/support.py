"""Helpers and constants the tests share (imported, unlike conftest fixtures)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pytest_distill.sim import SimServer

REPO = Path(__file__).resolve().parents[1]
HOBANNU = REPO / "examples" / "hobannu" / "data" / "hobannu.jsonl"
TEST_KEY = "sk-test-4f9c2b7e1d8a6c3b5e0f9a2d7c4b1e8f"
"""A fake key shaped like a real one: tests assert it never shows up anywhere."""


def hears_ctrl_c() -> None:
    """`preexec_fn` of a child that a test interrupts: SIGINT unblocked and at its default in the child,
    whatever the process starting it inherited or was left with (an ignored SIGINT is inherited across
    exec, and then the test's Ctrl-C would never arrive)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def qa_rows(count: int, split: str = "test", prefix: str = "q") -> list[dict[str, Any]]:
    """`count` simple question/answer cases in the chat format."""
    return [{"id": f"{prefix}{i:03d}", "metadata": {"split": split},
             "messages": [{"role": "user", "content": f"What is item {prefix}{i}?"},
                          {"role": "assistant", "content": f"Item {prefix}{i} is number {i}."}]}
            for i in range(count)]


def requests_to(server: SimServer, method: str, path: str) -> list[Any]:
    """The requests the simulator saw for one method and path (path relative to /v1, prefix match)."""
    return [r for r in server.requests if r.method == method and r.path.removeprefix("/v1").startswith(path)]


def module_of(path: Path) -> ModuleType:
    """A Python file outside the package (the benchmarks', the docs' hooks) loaded as a module."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Wait for an event that another thread or process brings about (a request reaching the server), by
    checking for it, never by guessing how long it takes; the timeout only ends a test that would hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout:g} s for {what}")
        threading.Event().wait(0.005)


@contextmanager
def held_until(server: SimServer, condition: Callable[[], bool], what: str) -> Iterator[None]:
    """While the block runs, the server's stalls (injected by the caller) end as soon as `condition` holds:
    a request is held inside the server exactly until the event the test is about has happened."""
    waiter = threading.Thread(target=lambda: (wait_until(condition, what), server.end_stalls()), daemon=True)
    waiter.start()
    try:
        yield
    finally:
        server.end_stalls()
        waiter.join()


def qa_suite(pytester: pytest.Pytester, tmp_path: Path, suite: str, count: int) -> pytest.Pytester:
    """A project whose test file is `suite` with `{spec}` set to a JSONL file of `count` qa_rows."""
    pytester.makepyfile(suite.format(spec=str(write_jsonl(tmp_path / "cases.jsonl", qa_rows(count)))))
    return pytester


def serve_missing() -> str | None:
    """Why `transformers serve` cannot run here (its command, FastAPI or Uvicorn missing), or None."""
    import importlib.util
    import shutil
    import sys

    if shutil.which("transformers", path=str(Path(sys.executable).parent)) is None:
        return "`transformers serve` is not installed (pip install 'transformers[serving]')"
    missing = [name for name in ("fastapi", "uvicorn") if importlib.util.find_spec(name) is None]
    return f"`transformers serve` needs {', '.join(missing)} (pip install 'transformers[serving]')" if missing else None


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(argv: list[str], ready_when: tuple[str, ...], cwd: Path | None = None,
                 env: dict[str, str] | None = None, timeout: float = 300.0) -> subprocess.Popen[str]:
    """Start a server process; return once a line of its log holds one of `ready_when` (read, not
    polled). One that ends or stays silent that long is killed and fails the test with its log."""
    import threading

    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready, log = threading.Event(), []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            if any(marker in line for marker in ready_when):
                ready.set()
        ready.set()  # it ended: let the waiter see that

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout) or process.poll() is not None:
        stop_server(process)
        raise AssertionError(f"{argv} did not start:\n" + "".join(log[-30:]))
    return process


def stop_server(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def transformers_serve(folder: Path, timeout: float = 180.0) -> Iterator[str]:
    """`transformers serve FOLDER` on 127.0.0.1 (a free port): its base URL while the block runs; it is
    stopped, and waited for, after."""
    import shutil
    import sys

    port = free_port()
    command = [str(shutil.which("transformers", path=str(Path(sys.executable).parent))), "serve", str(folder),
               "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    process = start_server(command, ("Uvicorn running on",), env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=timeout)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop_server(process)


Reply = Callable[[dict[str, Any]], tuple[int, object]]
"""The status and JSON body a hostile server answers a request's JSON body with."""


class HostileServer(ThreadingHTTPServer):
    """Answers every POST with `status` and `body` (JSON), or with what `reply` makes of the request."""

    def __init__(self, status: int = 200, body: object = None, reply: Reply | None = None) -> None:
        self.reply: Reply = reply or (lambda request: (status, body))
        self.posts = 0
        super().__init__(("127.0.0.1", 0), _Answer)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Answer(BaseHTTPRequestHandler):
    server: HostileServer

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        self.server.posts += 1
        status, body = self.server.reply(request)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass
