"""`recorded:PATH` models: a model that answers from a file of recorded answers, without a call.

A fine-tuned model retires with its base (gpt-4o, gpt-4o-mini, gpt-4.1, gpt-4.1-mini on 2027-01-14).
Its answers, recorded while it exists (`--distill-record`, or any chat-format JSONL), keep it in the
suite afterwards: as a model under test beside its successor, and as the teacher of `--distill`.

The file is read once per runtime, as hostile: a line that is no chat-format line is left out and
counted, so it costs only the case whose answer it held; a case whose input has no recorded answer is
an error of that case, saying what the file held.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..jsonl import DEFAULT_MAX_LINE_BYTES, SETTING, BadLine, read_jsonl
from .hf import chat_messages
from .types import RECORDED_PREFIX, Completion, ModelError, Usage

ENDPOINT = "recorded answer"
SHOWN_PROBLEMS = 3
"""How many unreadable lines an error names before it counts the rest."""


def is_recorded(name: str) -> bool:
    return name.startswith(RECORDED_PREFIX)


def input_key(messages: Sequence[dict[str, Any]]) -> str:
    """What makes two inputs the same: each message's role and text, in order (the system prompt too:
    a model answers its own prompt)."""
    return json.dumps([(m["role"], m["content"]) for m in chat_messages(messages)], ensure_ascii=False)


@dataclass(frozen=True)
class Answer:
    text: str
    model: str
    """The model that gave it, as the line's metadata says ("" when it says none)."""
    line: int


@dataclass
class Recording:
    """One file's answers by input, and the lines that could not be read."""

    path: Path
    answers: dict[str, list[Answer]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    unreadable: str | None = None
    """Why the file as a whole could not be read (no such file), or None."""

    @classmethod
    def read(cls, path: Path, cap: int = DEFAULT_MAX_LINE_BYTES) -> Recording:
        recording = cls(path)
        try:
            for line in read_jsonl(path, cap, SETTING):  # a line at a time, each capped
                if isinstance(line, BadLine):
                    recording.problems.append(f"line {line.number}: {line.problem}")
                    continue
                try:
                    key, answer = _parse(line.data, line.number)
                except ValueError as exc:
                    recording.problems.append(f"line {line.number}: {exc}")
                else:
                    recording.answers.setdefault(key, []).append(answer)
        except OSError as exc:
            recording.unreadable = f"{path}: cannot be read ({exc.strerror or type(exc).__name__})"
        return recording

    def answer(self, name: str, messages: Sequence[dict[str, Any]]) -> Completion:
        """The recorded answer to these messages, or a `ModelError` that says what the file held."""
        if self.unreadable:
            raise ModelError(name, ENDPOINT, self.unreadable)
        try:
            found = self.answers.get(input_key(messages), [])
        except (KeyError, TypeError, AttributeError):
            found = []
        models = sorted({answer.model for answer in found})
        if len(models) > 1:
            raise ModelError(name, ENDPOINT, f"{self.path} holds answers of {len(models)} models to this input "
                                             f"({', '.join(m or 'unnamed' for m in models)}): record one model per file")
        if not found:
            raise ModelError(name, ENDPOINT, f"no recorded answer to this input in {self.path} ({self._contents()})")
        last = found[-1]  # a later recording of the same model wins
        return Completion(text=last.text, model=name, usage=Usage(), latency_s=0.0, served_model=last.model or name)

    def _contents(self) -> str:
        held = f"it holds answers to {len(self.answers)} inputs"
        if not self.problems:
            return held
        shown = "; ".join(self.problems[:SHOWN_PROBLEMS])
        more = f" and {len(self.problems) - SHOWN_PROBLEMS} more" if len(self.problems) > SHOWN_PROBLEMS else ""
        return f"{held}; {len(self.problems)} lines could not be read: {shown}{more}"


def _parse(data: dict[str, Any], number: int) -> tuple[str, Answer]:
    """One chat-format line: its input's key and its answer (the last message, the assistant's)."""
    messages = data.get("messages")
    if not isinstance(messages, list) or len(messages) < 2 or not all(isinstance(m, dict) for m in messages):
        raise ValueError("not a chat-format line (an object whose `messages` hold the input and the answer)")
    *asked, answer = messages
    if answer.get("role") != "assistant" or not isinstance(answer.get("content"), str):
        raise ValueError("the last message is not the assistant's answer as text")
    if not all(isinstance(m.get("role"), str) and isinstance(m.get("content"), (str, list)) for m in asked):
        raise ValueError("an input message has no role or no content")
    metadata = data.get("metadata")
    model = metadata.get("model") if isinstance(metadata, dict) else None
    return input_key(asked), Answer(answer["content"], model if isinstance(model, str) else "", number)


class RecordedModels:
    """The recordings of one runtime, each file read on first use and then kept; `cap` bounds a line (ini
    `distill_max_line_bytes`, as for datasets)."""

    def __init__(self, cap: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.cap = cap
        self._lock = threading.Lock()
        self._files: dict[str, Recording] = {}

    def chat(self, name: str, messages: Sequence[dict[str, Any]]) -> Completion:
        path = name.removeprefix(RECORDED_PREFIX)
        if not path:
            raise ModelError(name, ENDPOINT, "expected recorded:PATH, the file of recorded answers")
        with self._lock:
            if path not in self._files:
                self._files[path] = Recording.read(Path(path).expanduser(), self.cap)
            recording = self._files[path]
        return recording.answer(name, messages)
