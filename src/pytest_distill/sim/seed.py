"""Seed files: JSONL cases that become stored teacher completions.

A line is in the fine-tuning chat format (the last assistant message is the answer) or in the
openai/evals registry format (`input`: messages or a text; `ideal`: the answer, or a list of accepted
answers of which the teacher gives the first; a line without `ideal` seeds nothing). A pytest file
that `python -m pytest_distill.evals import` wrote seeds the cases of its `distill_dataset` file.
"""

from __future__ import annotations

import ast
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..jsonl import BadLine, Line, read_jsonl
from .chatformat import Example, FormatError, example_of, message_problem
from .ids import stable_id


class SeedError(ValueError):
    """A seed line that cannot become a stored completion; the message names file and line."""


def load_seeds(paths: Iterable[str | os.PathLike[str]]) -> list[tuple[str, Example]]:
    """Every case of the seed files in file order, with its stored completion id.

    The id is `chatcmpl-` + the line's `id` when it has one, else derived from the line's
    messages, so the same file seeds the same ids in every run.
    """
    seeded: list[tuple[str, Example]] = []
    where: dict[str, str] = {}
    occurrences: Counter[str] = Counter()
    for path in (found for given in map(Path, paths) for found in _seed_files(given)):
        for line in _seed_lines(path):
            location = f"{path}:{line.number}"
            try:
                example = _seed_example(line.data)
            except FormatError as exc:
                raise SeedError(f"{location}: {exc}") from None
            if example is None:
                continue
            if example.id is not None:
                completion_id = example.id if example.id.startswith("chatcmpl-") else f"chatcmpl-{example.id}"
            else:
                content = json.dumps([*example.input, example.answer], sort_keys=True, ensure_ascii=False)
                occurrences[content] += 1
                completion_id = stable_id("chatcmpl-", content, str(occurrences[content]), length=29)
            if completion_id in where:
                raise SeedError(f"{location}: id {completion_id!r} was already used at {where[completion_id]}")
            where[completion_id] = location
            seeded.append((completion_id, example))
    return seeded


def _seed_lines(path: Path) -> Iterator[Line]:
    """The lines of a seed file, read as every JSONL file is; a file or a line that cannot be read is a
    `SeedError` naming it."""
    try:
        for line in read_jsonl(path):
            if isinstance(line, BadLine):
                raise SeedError(line.at(path))
            yield line
    except OSError as exc:
        raise SeedError(f"{path}: cannot read the seed file ({exc})") from None


def _seed_files(path: Path) -> list[Path]:
    """The JSONL files a seed path stands for: itself, or for a test file the `.jsonl` datasets that its
    `distill_dataset(...)` markers name (read from its syntax tree: the file is never run); a test
    file without one (a placeholder `evals import` wrote) seeds nothing."""
    if path.suffix != ".py":
        return [path]
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError) as exc:
        raise SeedError(f"{path}: cannot read the test file ({exc})") from None
    named = [node.args[0].value for node in ast.walk(tree)
             if isinstance(node, ast.Call) and _called(node.func) == "distill_dataset" and node.args
             and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
             and node.args[0].value.endswith(".jsonl")]
    return [path.parent / name for name in dict.fromkeys(named)]


def _called(func: ast.expr) -> str | None:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _seed_example(obj: dict[str, Any]) -> Example | None:
    """The example of a seed line, None for a registry line without an answer."""
    if "messages" not in obj and "input" in obj:
        return _registry_example(obj)
    example = example_of(obj)
    if not example.input:
        raise FormatError("there are no input messages before the assistant's answer")
    if example.trailing:
        raise FormatError("the last assistant message must be the last message: it is the stored answer")
    return example


def _registry_example(obj: dict[str, object]) -> Example | None:
    """A registry line (`input`, `ideal`) as an example whose answer is the first ideal."""
    given, ideal = obj["input"], obj.get("ideal")
    messages = [{"role": "user", "content": given}] if isinstance(given, str) else given
    if not isinstance(messages, list) or not messages:
        raise FormatError('"input" must be a text or a non-empty list of messages')
    for index, message in enumerate(messages):
        problem = message_problem(message, f"input[{index}]")
        if problem:
            raise FormatError(problem)
    first = ideal[0] if isinstance(ideal, list) and ideal else None if isinstance(ideal, list) else ideal
    if first is None:
        return None
    answer = first if isinstance(first, str) else json.dumps(first, ensure_ascii=False)
    example_id = obj.get("id")
    return Example(input=[dict(message) for message in messages], answer=answer, trailing=[],
                   id=example_id if isinstance(example_id, str) else None)
