"""A large JSON object read one value at a time: each member, and each element of one array member,
is parsed as it comes and handed on, so memory holds one value (and a chunk of the file), never the
document.

A 109 MB results file read whole as a baseline took 540 MB: its text, then every record as Python
objects, when the comparison keeps four fields of each. Whatever its layout (ours, indented, on one
line), the file is read in chunks; a value longer than the cap (ini `distill_max_line_bytes`) is an
error that names the setting, and the rules are strict JSON's (`strict_json`): no NaN or Infinity, no
nesting past what Python's parser reads, no lone surrogates in what is kept (the caller checks those).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from .jsonl import SETTING
from .strict_json import DECODER, NotJSON

CHUNK = 1 << 20
CUT = 16
"""How far before the window's end a parse that fails may have been cut short (`-Infinity`, `\\u12`)."""
_SPACE = re.compile(r"[ \t\n\r]*")


class NotObject(NotJSON):
    """The document is not a JSON object: the caller reads it some other way."""


class _Reader:
    """A window on the file's text: the value at hand, and what is read past it."""

    def __init__(self, handle: IO[bytes], cap: int) -> None:
        self.handle, self.cap = handle, cap
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.text, self.pos, self.ended = "", 0, False
        self.line, self.line_start = 1, 0
        """The line of the window's start, and where (as an offset into the window) that line starts."""

    def more(self, size: int = 0) -> bool:
        """Drop what is read, add a chunk (`size` bytes if more); False at the end of the file."""
        if self.ended:
            return False
        chunk = self.handle.read(max(size, CHUNK))
        self.ended = not chunk
        try:
            added = self.decoder.decode(chunk, final=self.ended)
        except UnicodeDecodeError as exc:
            raise NotJSON(f"not UTF-8 near line {self.where(len(self.text))[0]}: {exc.reason}") from None
        done = self.text[:self.pos]
        newlines = done.count("\n")
        self.line += newlines
        self.line_start = (self.line_start if not newlines else done.rindex("\n") + 1) - self.pos
        self.text, self.pos = self.text[self.pos:] + added, 0
        return bool(added) or not self.ended

    def where(self, at: int) -> tuple[int, int]:
        """Line and column (from 1) of an offset into the window."""
        before = self.text[:at]
        newlines = before.count("\n")
        start = before.rindex("\n") + 1 if newlines else self.line_start
        return self.line + newlines, at - start + 1

    def peek(self) -> str:
        """The next character that is not white space ("" at the end), left unread."""
        while True:
            self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]  # matches the empty text
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""

    def take(self, expected: str, what: str) -> None:
        if self.peek() != expected:
            line, column = self.where(self.pos)
            raise NotJSON(f"expecting {what} at line {line} column {column}")
        self.pos += 1

    def value(self) -> Any:
        """The next JSON value, read whole (no longer than the cap). A value longer than the window is
        tried again on a window twice as long, so a long value is parsed a few times, not once a chunk."""
        self.peek()
        while True:
            try:
                value, end = DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                # A value cut by the window's end fails there (a literal or escape a few characters before it,
                # a string where it starts): read on. Anything else is an error of the file, said at once.
                cut = exc.pos >= len(self.text) - CUT or exc.msg.startswith("Unterminated string")
                if cut and len(self.text) - self.pos <= self.cap and self.more(len(self.text) - self.pos):
                    continue
                if cut and len(self.text) - self.pos > self.cap:
                    raise self.too_long() from None
                line, column = self.where(exc.pos)
                raise NotJSON(f"{exc.msg} at line {line} column {column}") from None
            except RecursionError:
                raise NotJSON("nested too deep to read") from None
            if end == len(self.text) and self.more():  # a number may go on in the next chunk
                continue
            if end - self.pos > self.cap:
                raise self.too_long()
            self.pos = end
            return value

    def too_long(self) -> NotJSON:
        line, _ = self.where(self.pos)
        return NotJSON(f"the value at line {line} is longer than {SETTING} ({self.cap:,} bytes): raise the ini setting "
                       f"{SETTING} to read it")


def read_object(path: Path, array: str, each: Callable[[int, Any], None], cap: int,
                start: Callable[[Mapping[str, Any]], None] | None = None) -> dict[str, Any]:
    """The members of the JSON object in `path`; the elements of its array `array` go to `each` (with their
    index) as they are read, and the member is returned as []. A member `array` that is no array is
    returned as it is. `start` sees the members read before the array's first element.
    Raises OSError, `NotObject` when the document is no object, `NotJSON` when it is no JSON."""
    members: dict[str, Any] = {}
    with path.open("rb") as handle:
        reader = _Reader(handle, cap)
        if reader.peek() != "{":
            raise NotObject("not a JSON object")
        reader.pos += 1
        if reader.peek() == "}":
            reader.pos += 1
        else:
            while True:
                if reader.peek() != '"':
                    reader.take('"', "a member's name in double quotes")
                key = reader.value()
                reader.take(":", "':' after a member's name")
                if key in members:
                    raise NotJSON(f"the member {key!r} is there twice")
                if key == array and reader.peek() == "[":
                    if start is not None:
                        start(members)
                    members[key] = []
                    _elements(reader, each)
                else:
                    members[key] = reader.value()
                if reader.peek() == "}":
                    reader.pos += 1
                    break
                reader.take(",", "',' or '}' after a member")
        if reader.peek() != "":
            line, column = reader.where(reader.pos)
            raise NotJSON(f"Extra data at line {line} column {column}")
    return members


def _elements(reader: _Reader, each: Callable[[int, Any], None]) -> None:
    reader.pos += 1
    if reader.peek() == "]":
        reader.pos += 1
        return
    index = 0
    while True:
        each(index, reader.value())
        index += 1
        if reader.peek() == "]":
            reader.pos += 1
            return
        reader.take(",", "',' or ']' after an element")
