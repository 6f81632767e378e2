"""`python -m pytest_distill.datasets split FILE --by KEY`: a stratified train/test split of a JSONL dataset.

Production traffic is skewed: a random split can leave a rare intent out of the test set, or out of
the training data, and the student then fails exactly there. Here every value of KEY (a metadata key,
or `length` for the input's length bucket) with two or more cases is in both files, in the asked
proportion; `--min-per-value M` copies the cases of a rarer value in the training file until it has M
(each copy says so in its metadata). The lines are kept as written (chat or openai/evals registry
format); one that is no JSON object is left out and named, the others are split.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import write_atomic
from .jsonl import BadLine, Line, read_jsonl
from .untrusted import printable

LENGTH = "length"
"""The pseudo-key of the input's length bucket."""
LENGTH_BUCKETS = ((200, "short (< 200 chars)"), (1000, "medium (200-999 chars)"))
LONG = "long (>= 1000 chars)"
NONE = "(none)"
"""The value of a case that has no such key."""


def value_of(data: dict[str, Any], key: str) -> str:
    """The value a line has for KEY: its metadata's (a registry line's own keys are its metadata), or its
    input's length bucket for `length`."""
    if key == LENGTH:
        return length_bucket(_input_text(data))
    metadata = data.get("metadata") if "messages" in data else data
    value = metadata.get(key) if isinstance(metadata, dict) else None
    if value is None:
        return NONE
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def length_bucket(text: str) -> str:
    for limit, name in LENGTH_BUCKETS:
        if len(text) < limit:
            return name
    return LONG


def _input_text(data: dict[str, Any]) -> str:
    """The input's text: the messages before the answer (a chat line) or the registry's `input`."""
    messages = data.get("messages") if "messages" in data else data.get("input")
    if isinstance(messages, str):
        return messages
    if not isinstance(messages, list):
        return ""
    if "messages" in data and messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant":
        messages = messages[:-1]
    texts = [message.get("content") for message in messages if isinstance(message, dict)]
    return "\n".join(text for text in texts if isinstance(text, str))


@dataclass
class Split:
    train: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)
    counts: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """Per value: its cases, in train (copies included), in test."""
    skipped: list[str] = field(default_factory=list)


def read_lines(path: Path) -> tuple[list[Line], list[str]]:
    """The JSON-object lines of a file, and what was wrong with each other non-blank line; raises OSError
    when the file cannot be read."""
    lines, skipped = [], []
    for line in read_jsonl(path):
        if isinstance(line, BadLine):
            skipped.append(f"line {line.number}: {line.problem}")
        else:
            lines.append(line)
    return lines, skipped


def stratified(lines: Sequence[Line], key: str, test_share: float, seed: int, min_per_value: int = 0) -> Split:
    """Each value's lines shuffled by `seed` and cut at `test_share` (at least one each side when it has two)."""
    groups: dict[str, list[Line]] = {}
    for line in lines:
        groups.setdefault(value_of(line.data, key), []).append(line)
    rng = random.Random(seed)
    split = Split()
    for value in sorted(groups):
        group = list(groups[value])
        rng.shuffle(group)
        n_test = 0 if len(group) < 2 else min(len(group) - 1, max(1, round(len(group) * test_share)))
        test, train = group[:n_test], group[n_test:]
        copies = _copies(train, min_per_value)
        split.test += [line.text for line in sorted(test, key=lambda line: line.number)]
        split.train += [line.text for line in sorted(train, key=lambda line: line.number)] + copies
        split.counts[value] = (len(group), len(train) + len(copies), len(test))
    return split


def _copies(train: Sequence[Line], wanted: int) -> list[str]:
    """Copies of a value's training lines, in turn, until it has `wanted`: each with its own id and the
    id of the line it copies in its metadata (`oversampled_from`)."""
    copies = []
    for index in range(max(0, wanted - len(train)) if train else 0):
        line = train[index % len(train)]
        data = dict(line.data)
        original = str(data.get("id", f"line{line.number}"))
        data["id"] = f"{original}~copy{index // len(train) + 1}"
        if "messages" in data:
            metadata = data.get("metadata")
            data["metadata"] = {**(metadata if isinstance(metadata, dict) else {}), "oversampled_from": original}
        else:
            data["oversampled_from"] = original
        copies.append(json.dumps(data, ensure_ascii=False))
    return copies


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_distill.datasets split", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path, help="the JSONL dataset (chat or openai/evals registry format)")
    parser.add_argument("--by", required=True, metavar="KEY", help=f"the metadata key to stratify by, or {LENGTH!r}")
    parser.add_argument("--test", type=float, default=0.2, metavar="SHARE", help="the test set's share of each value (default 0.2)")
    parser.add_argument("--seed", type=int, default=0, help="the shuffle's seed: the same seed, the same split (default 0)")
    parser.add_argument("--min-per-value", type=int, default=0, metavar="M",
                        help="copy a value's training cases until it has M (default 0: no copies)")
    parser.add_argument("-o", "--output", type=Path, metavar="DIR", help="where to write FILE-train.jsonl and FILE-test.jsonl "
                        "(default: beside FILE)")
    args = parser.parse_args(argv)
    if not 0 < args.test < 1:
        parser.error(f"--test takes a share between 0 and 1, e.g. 0.2, got {args.test}")
    if not 0 <= args.min_per_value <= 1_000_000:
        parser.error(f"--min-per-value takes a whole number from 0 to 1000000, got {args.min_per_value}")
    try:
        lines, skipped = read_lines(args.file)
    except OSError as exc:
        parser.error(f"{args.file}: cannot be read: {exc}")
    if not lines:
        parser.error(f"{args.file}: no line is a JSON object" + (f" ({skipped[0]})" if skipped else ""))
    split = stratified(lines, args.by, args.test, args.seed, args.min_per_value)
    folder = args.output or args.file.parent
    folder.mkdir(parents=True, exist_ok=True)
    for part, written in (("train", split.train), ("test", split.test)):
        write_atomic(folder / f"{args.file.stem}-{part}.jsonl", "".join(f"{line}\n" for line in written))
    print(f"{args.file}: {len(lines)} cases by {args.by!r} -> {folder / args.file.stem}-train.jsonl ({len(split.train)}), "
          f"{folder / args.file.stem}-test.jsonl ({len(split.test)})")
    width = max(len(printable(value)) for value in split.counts)
    print(f"{'value':<{width}}  cases  train  test")
    for value, (cases, train, test) in split.counts.items():
        note = "  (one case: train only)" if cases == 1 else ""
        print(f"{printable(value):<{width}}  {cases:>5}  {train:>5}  {test:>4}{note}")
    for problem in skipped:
        print(f"left out: {printable(problem)}")
    return 0

