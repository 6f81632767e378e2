"""docs/leaving-openai.md's walk-through runs as it is written: its files are written, its commands run.

Each path's blocks are read from the page: a block with `title="PATH"` is a file, a `bash` block is
commands (one a line, `\\` continues one). `export` sets the environment of the next commands; a
command ending in `&` is a server, started and waited for until it says it is ready (read from its
log, not polled), and stopped by the test. Ports 8000 and 8001 become free ones, and the student
the page names becomes the tests' tiny offline Llama: nothing reaches the internet.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .support import HOBANNU, REPO, free_port, serve_missing, start_server, stop_server, write_jsonl

PAGE = REPO / "docs" / "leaving-openai.md"
READY = ("Press Ctrl-C to stop.", "Uvicorn running on")
"""What the simulator and `transformers serve` print once they listen."""
FINE_TUNE = "ft:gpt-4o-mini-2024-07-18:acme:support:9fJ2kLq1"


def section(heading: str) -> str:
    text = PAGE.read_text(encoding="utf-8")
    start = text.index(heading)
    end = min((found for found in (text.find("\n## ", start), text.find("\n### ", start + 1)) if found > 0), default=-1)
    return text[start:end if end > 0 else len(text)]


def files_and_commands(part: str) -> tuple[dict[str, str], list[str]]:
    files = dict(re.findall(r'```\w+ title="([^"]+)"\n(.*?)```', part, re.S))
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", part, re.S):
        for command in block.replace("\\\n", " ").splitlines():
            if command.strip() and not command.lstrip().startswith("#"):
                commands.append(" ".join(command.split()))
    return files, commands


@contextmanager
def shell(folder: Path, replace: dict[str, str]) -> Iterator[Callable[[str], subprocess.CompletedProcess[str]]]:
    """Run the page's commands in `folder`, one after another; servers stop when the block ends."""
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "COLUMNS": "300"}
    servers: list[subprocess.Popen[str]] = []

    def run(command: str) -> subprocess.CompletedProcess[str]:
        for old, new in replace.items():
            command = command.replace(old, new)
        if command.startswith("export "):
            env.update(assignment.split("=", 1) for assignment in shlex.split(command)[1:])  # type: ignore[misc]
            return subprocess.CompletedProcess(command, 0, "", "")
        if command.endswith("&"):
            servers.append(start_server(shlex.split(command[:-1]), READY, folder, env))
            return subprocess.CompletedProcess(command, 0, "", "")
        done = subprocess.run(command, shell=True, cwd=folder, env=env, capture_output=True, text=True, timeout=1500)
        allowed = (0, 1) if command.startswith("pytest") else (0,)  # 1: some cases failed, which the page expects
        assert done.returncode in allowed, f"{command}\n{done.stdout}\n{done.stderr}"
        return done

    try:
        yield run
    finally:
        for server in servers:
            stop_server(server)


def write(folder: Path, files: dict[str, str], replace: dict[str, str] | None = None) -> None:
    for name, text in files.items():
        for old, new in (replace or {}).items():
            text = text.replace(old, new)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")


def cases(results: Path) -> list[dict[str, object]]:
    return list(json.loads(results.read_text(encoding="utf-8"))["cases"])


def test_path_1_registry_evals_become_a_suite_that_runs_offline(tmp_path: Path) -> None:
    files, commands = files_and_commands(section("### Path 1"))
    write(tmp_path, files)
    with shell(tmp_path, {}) as run:
        outputs = [run(command) for command in commands]
    assert "converted: capitals (evals.elsuite.basic.match:Match -> registry_match)" in outputs[0].stdout
    assert [case["outcome"] for case in cases(tmp_path / "capitals.json")] == ["passed"] * 3


@pytest.mark.slow
@pytest.mark.timeout(1500)  # five commands, a training among them: minutes on a busy CPU
@pytest.mark.skipif(serve_missing() is not None, reason=str(serve_missing()))
def test_path_2_a_fine_tune_is_recorded_distilled_served_and_run_beside_its_recording(tmp_path: Path, toy_model: Path) -> None:
    pytest.importorskip("trl")
    rows = [json.loads(line) for line in HOBANNU.read_text(encoding="utf-8").splitlines()]
    write_jsonl(tmp_path / "cases.jsonl", rows)
    write_jsonl(tmp_path / "test.jsonl", [row for row in rows if row["metadata"]["split"] == "test"])
    files, commands = files_and_commands(section("### Path 2"))
    replace = {"8000": str(free_port()), "8001": str(free_port()), "Qwen/Qwen2.5-0.5B-Instruct": str(toy_model)}
    write(tmp_path, files, replace)
    with shell(tmp_path, replace) as run:
        outputs = [run(command) for command in commands]

    def said(start: str) -> str:
        return next(done.stdout for done in outputs if str(done.args).startswith(start))

    inventory = said("python -m pytest_distill.exit inventory")
    assert re.search(rf"{re.escape(FINE_TUNE)}\s+gpt-4o-mini-2024-07-18\s+2027-01-14\s+\d+\s+API", inventory), inventory
    recorded = [json.loads(line) for line in (tmp_path / "ft.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(recorded) == len(rows) and {line["metadata"]["model"] for line in recorded} == {FINE_TUNE}
    training = said("pytest test_support.py --distill ")
    assert "distillation gate: MET" in training and "distilled model hf:distilled" in training, training
    assert json.loads((tmp_path / "distilled" / "merged" / "config.json").read_text(encoding="utf-8"))["model_type"] == "llama"
    side_by_side = cases(tmp_path / "side-by-side.json")
    by_model: dict[str, list[str]] = {}
    for case in side_by_side:
        by_model.setdefault(str(case["model"]), []).append(str(case["outcome"]))
    assert by_model["recorded:ft.jsonl"] == ["passed"] * 12
    assert len(by_model["local:./distilled/merged"]) == 12 and "error" not in by_model["local:./distilled/merged"]
