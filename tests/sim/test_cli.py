"""`python -m pytest_distill.sim`: starts, prints the banner, answers, and stops on Ctrl-C."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx2
import openai

import pytest_distill.sim

from ..support import hears_ctrl_c
from .data import ask, capital_answer, capital_question

SRC = Path(pytest_distill.sim.__file__).resolve().parents[2]


def read_lines(stream: object, into: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.put(line)


def test_the_cli_serves_until_interrupted(seed_file: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_distill.sim", "--port", "0", "--seed", str(seed_file), "--job-seconds", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, preexec_fn=hears_ctrl_c,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        banner = []
        while not banner or not banner[-1].startswith("Press Ctrl-C"):
            banner.append(lines.get(timeout=30).rstrip("\n"))
        text = "\n".join(banner)
        assert "scores measure wiring, not model quality" in text
        assert "26 stored completion(s) seeded from" in text
        url = next(line for line in banner if line.startswith("export OPENAI_BASE_URL=")).split("=", 1)[1]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        with openai.OpenAI(base_url=url, api_key="sk-anything", max_retries=0) as sdk:
            assert ask(sdk, "gpt-4o", capital_question("Chile")) == capital_answer("Chile")
        admin = next(line for line in banner if line.startswith("Admin endpoints (/_sim/...) take: "))
        header = admin.split(": ", 1)[1]
        assert header.startswith("Authorization: Bearer sk-sim-admin-")
        requests = url.removesuffix("/v1") + "/_sim/requests"
        assert httpx2.get(requests).status_code == 401
        assert len(httpx2.get(requests, headers={"Authorization": header.split(": ", 1)[1]}).json()) == 1
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert lines.get(timeout=30).startswith("pytest-distill simulator stopped.")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_bad_seed_file_exits_with_the_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest_distill.sim", "--port", "0", "--seed", str(bad)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"{bad}:1: not JSON" in result.stderr


def test_the_cli_refuses_to_listen_beyond_loopback_without_allow_remote(seed_file: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest_distill.sim", "--port", "0", "--host", "0.0.0.0", "--seed", str(seed_file)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0: the simulator has no real authentication" in result.stderr
    assert "--allow-remote" in result.stderr and result.stdout == ""
