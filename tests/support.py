"""Helpers and constants the tests share (imported, unlike conftest fixtures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_distill.sim import SimServer

REPO = Path(__file__).resolve().parents[1]
HOBANNU = REPO / "examples" / "hobannu" / "data" / "hobannu.jsonl"
TEST_KEY = "sk-test-4f9c2b7e1d8a6c3b5e0f9a2d7c4b1e8f"
"""A fake key shaped like a real one: tests assert it never shows up anywhere."""


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


def qa_suite(pytester: pytest.Pytester, tmp_path: Path, suite: str, count: int) -> pytest.Pytester:
    """A project whose test file is `suite` with `{spec}` set to a JSONL file of `count` qa_rows."""
    pytester.makepyfile(suite.format(spec=str(write_jsonl(tmp_path / "cases.jsonl", qa_rows(count)))))
    return pytester
