"""JSONL from outside, read one way by every reader: dataset, recorded-answer, label, training, eval-item
and seed files, and the batch and training files a server hands over.

A line at a time, each line's size capped: a 200 MB dataset read whole was 1.6 GB of memory in every
xdist worker, and a line longer than the cap (for datasets the ini setting `distill_max_line_bytes`) is
never held at all: it is skipped in chunks and reported by its size. Lines end at `\\n` only (a U+2028 in
a string is text, as JSON says, where `str.splitlines` would cut it); a `\\r` before it, a UTF-8 BOM
before the first line and lines of only whitespace are dropped. Each other line is strict JSON
(`strict_json`: no NaN or Infinity, no lone surrogates, nesting bounded) and an object, or a `BadLine`
that says why: an error of that line only, which its caller counts against the line's case or the whole
file. Time is linear in the file.

This module imports nothing of the plugin but `strict_json` (which imports nothing of it), so the
simulator reads its seed, training and batch files with it too.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import strict_json

DEFAULT_MAX_LINE_BYTES = 5_000_000
"""5 MB, about a million tokens: more than any model's context, so a longer case could never be sent."""
SETTING = "distill_max_line_bytes"
_CHUNK = 1 << 20
_BLANK = " \t\r"
"""JSON's whitespace within a line: a line of nothing else is skipped."""


@dataclass(frozen=True)
class Line:
    """A JSON-object line: its number (from 1), its text as written, and its object."""

    number: int
    text: str
    data: dict[str, Any]


@dataclass(frozen=True)
class BadLine:
    """A line that is no JSON object, and why, for a person to act on."""

    number: int
    problem: str
    is_json: bool = False
    """Whether the line is JSON at all (a value that is no object), for a caller that answers the two apart."""

    def at(self, where: str | Path) -> str:
        """The problem with its place, `FILE:LINE: problem`."""
        return f"{where}:{self.number}: {self.problem}"


def read_jsonl(path: Path, cap: int = DEFAULT_MAX_LINE_BYTES, setting: str | None = None) -> Iterator[Line | BadLine]:
    """Each non-blank line of the file, a `Line` or a `BadLine`; raises OSError when the file cannot be
    opened or read. `setting` names where the cap is set, for the message of a longer line."""
    with path.open("rb") as handle:
        yield from _lines(handle, cap, setting)


def parse_jsonl(data: bytes, cap: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[Line | BadLine]:
    """Each non-blank line of a file's content held in memory (an upload, a server's output file)."""
    return _lines(io.BytesIO(data), cap)


def _lines(handle: IO[bytes], cap: int = DEFAULT_MAX_LINE_BYTES, setting: str | None = None) -> Iterator[Line | BadLine]:
    """Each non-blank line of a binary stream, a `Line` or a `BadLine`."""
    number = 0
    while raw := handle.readline(cap + 1):
        number += 1
        if len(raw) > cap and raw != raw[:cap] + b"\n":
            size = len(raw)
            while not raw.endswith(b"\n") and (raw := handle.readline(_CHUNK)):
                size += len(raw)
            yield BadLine(number, _too_long(size - raw.endswith(b"\n"), cap, setting))
            continue
        try:
            text = raw.decode("utf-8").removesuffix("\n").removesuffix("\r").removeprefix("\ufeff" if number == 1 else "")
        except UnicodeDecodeError as exc:
            yield BadLine(number, f"not UTF-8: byte 0x{exc.object[exc.start]:02x} at column {exc.start + 1}")
            continue
        if text.strip(_BLANK):
            yield _parsed(number, text)


def _parsed(number: int, text: str) -> Line | BadLine:
    """One line's text as a `Line`, or a `BadLine` saying why it is none."""
    try:
        data = strict_json.loads(text)
    except strict_json.NotJSON as exc:
        return BadLine(number, f"not JSON: {exc}")
    if not isinstance(data, dict):
        return BadLine(number, f"not a JSON object (a {_kind(data)})", is_json=True)
    return Line(number, text, data)


def _too_long(size: int, cap: int, setting: str | None) -> str:
    if setting is None:
        return f"the line is {size:,} bytes, more than the {cap:,} bytes a line may hold"
    return (f"the line is {size:,} bytes, more than {setting} ({cap:,}): a case this long cannot be sent to a "
            f"model; raise the ini setting {setting} to read it anyway")


def _kind(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")
