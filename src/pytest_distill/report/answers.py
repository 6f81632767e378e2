"""`--distill-record FILE.jsonl`: each answer of a model under test, as a chat-format line.

Written while a model still exists (a fine-tune retires with its base), the file lets a `recorded:FILE`
model stand in for it later: beside its successor, and as the teacher of `--distill`.

Only the controller writes, from the entries that reach it on the teardown reports (as pytest's
junitxml does): under xdist one process appends whole lines, so no line is ever torn and no lock is
needed. Each line is flushed as its test ends, so a run stopped half-way keeps what it recorded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

import pytest

from .. import strict_json
from ..ledger import Entry, EntrySource
from ..models.recorded import is_recorded
from . import results


def record_line(entry: Entry) -> str | None:
    """The chat-format line of a test's answer, or None when it has none to record (no case, no answer,
    a repeat past the first, a `recorded:` model's own answer)."""
    if entry.input is None or entry.output is None or entry.model is None or entry.sample or is_recorded(entry.model):
        return None
    metadata: dict[str, Any] = {**(entry.metadata or {}), "model": entry.model, "case_id": entry.case_id}
    line = {"messages": [*entry.input, {"role": "assistant", "content": entry.output}], "metadata": metadata}
    return strict_json.as_unicode(json.dumps(line, ensure_ascii=False, allow_nan=False))


class AnswerRecord:
    """Appends the answers to `path` as the tests end; on the controller only."""

    def __init__(self, path: Path, recorder: EntrySource) -> None:
        results.check_destination(path, "--distill-record", "answers.jsonl")
        self.path, self.recorder = path, recorder
        self.written = 0
        self._file: IO[str] | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """After the recorder took the entry off the teardown report (it runs first)."""
        if report.when != "teardown":
            return
        entry = self.recorder.entry_of_node(report.nodeid)
        line = record_line(entry) if entry is not None else None
        if line is None:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(line + "\n")
        self._file.flush()
        self.written += 1

    def pytest_sessionfinish(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.written:
            terminalreporter.write_line(f"distill: {self.written} answers recorded to {self.path} "
                                        f"(a model named recorded:{self.path} answers from them)")
