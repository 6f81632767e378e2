"""JSONL files from outside, read one line at a time with each line's size capped.

A 200 MB dataset read whole was 1.6 GB of memory in every xdist worker; read a line at a time, only
the line at hand and the cases made so far are held. A line longer than the cap (ini
`distill_max_line_bytes`) is never held at all: it is skipped in chunks and reported by its size, as
an error of its own case.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_LINE_BYTES = 5_000_000
"""5 MB, about a million tokens: more than any model's context, so a longer case could never be sent."""
SETTING = "distill_max_line_bytes"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class LongLine:
    """A line over the cap, by its size in bytes (without its line break)."""

    size: int

    def problem(self, cap: int) -> str:
        return (f"the line is {self.size:,} bytes, more than {SETTING} ({cap:,}): a case this long cannot be sent to a "
                f"model; raise the ini setting {SETTING} to read it anyway")


def jsonl_lines(path: Path, cap: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | LongLine]]:
    """(line number, the line's bytes without `\\n`, or a `LongLine`) for each line of the file; raises
    OSError when the file cannot be opened or read."""
    with path.open("rb") as handle:
        number = 0
        while line := handle.readline(cap + 1):
            number += 1
            if len(line) <= cap or line == line[:cap] + b"\n":
                yield number, line.removesuffix(b"\n")
                continue
            size = len(line)
            while not line.endswith(b"\n") and (line := handle.readline(_CHUNK)):
                size += len(line)
            yield number, LongLine(size - line.endswith(b"\n"))
