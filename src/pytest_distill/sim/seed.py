"""Seed files: JSONL cases in the fine-tuning chat format that become stored teacher completions."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from .chatformat import Example, FormatError, parse_example
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
    for path in map(Path, paths):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise SeedError(f"{path}: cannot read the seed file ({exc})") from None
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            location = f"{path}:{number}"
            try:
                example = _seed_example(line)
            except FormatError as exc:
                raise SeedError(f"{location}: {exc}") from None
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


def _seed_example(line: str) -> Example:
    example = parse_example(line)
    if not example.input:
        raise FormatError("there are no input messages before the assistant's answer")
    if example.trailing:
        raise FormatError("the last assistant message must be the last message: it is the stored answer")
    return example
