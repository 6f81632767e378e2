"""Strict JSON (RFC 8259) for every text that comes from outside: dataset lines, model and judge
answers, cache files, schemas.

Python's `json.loads` is lenient where that hurts us: it reads `NaN` and `Infinity` (which then pass
every `minimum`/`maximum` check and make the results file unreadable for other parsers), `1e999` as an
infinity, strings with lone surrogates (which no UTF-8 file can hold), and it recurses once per level
of nesting, so a line nested 100,000 deep raises `RecursionError`. `loads` refuses all of these with
a `NotJSON` whose message says what is wrong.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from itertools import accumulate
from typing import Any

MAX_DEPTH = 200
"""Nesting deeper than this is refused before parsing; real data is nowhere near it."""
_ESCAPE = re.compile(r"\\.", re.DOTALL)
_STRING = re.compile(r'"[^"]*"?')
"""A string once escapes are gone, or an unterminated one up to the end: a match never fails where it
starts, so the scan never retries (a pattern that must find the closing quote is quadratic on open
quotes, and one that repeats a group keeps a backtracking record per escape: 1 GB for 16 MB)."""
_BRACKET = re.compile(r"[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
"""Where a JSON text may write a surrogate: without one of these and without a raw one, its value holds none."""


class NotJSON(ValueError):
    """Text that is not strict JSON; the message says why, for a person to act on."""


def loads(text: str) -> Any:
    """The value of a strict JSON text, or `NotJSON`. Nesting is counted once, by `nesting` before
    the parse (exact wherever the text is JSON), so the parser never recurses past `MAX_DEPTH`."""
    if text.startswith("\ufeff"):  # json.loads says so; its decoder, made once, reads it as no value
        raise NotJSON("a byte order mark (U+FEFF) at line 1 column 1")
    depth = nesting(text)
    if depth > MAX_DEPTH:
        raise NotJSON(f"nested {depth} levels deep (at most {MAX_DEPTH} are read)")
    try:
        value = DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise NotJSON(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except NotJSON:
        raise
    except ValueError as exc:  # e.g. an integer longer than Python reads (sys.set_int_max_str_digits)
        raise NotJSON(str(exc)) from None
    path = lone_surrogate(value) if _SURROGATE_ESCAPE.search(text) or has_lone_surrogate(text) else None
    if path is not None:
        raise NotJSON(f"a lone surrogate in the string at {path}: not Unicode text")
    return value


def dumps(value: Any) -> str:
    """Indented strict JSON that any parser reads: NaN or Infinity raise `ValueError` here rather than
    reach a reader, and a lone surrogate (which a model's answer may carry) becomes U+FFFD, since no
    UTF-8 file can hold it."""
    return as_unicode(json.dumps(value, ensure_ascii=False, indent=2, allow_nan=False))


def as_unicode(text: str) -> str:
    """The text with each lone surrogate replaced by U+FFFD: what any report, UTF-8 file or xdist worker
    can carry, for text that quotes a hostile source (a server's error message)."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def nesting(text: str) -> int:
    """How deep arrays and objects nest in a JSON text (brackets inside strings, or after an unterminated
    quote, do not count), in time and memory linear in the text.

    Escapes are dropped first (pairs from the left, exact wherever the text is JSON, and a parser stops
    at the first place it is not), then strings; what is left has brackets only where they nest."""
    plain = _STRING.sub('""', _ESCAPE.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, _BRACKET.findall(plain)), initial=0))


def lone_surrogate(value: Any) -> str | None:
    """The JSON path of the first string (key or value) holding a lone surrogate, or None."""
    return string_matching(value, has_lone_surrogate)


def has_lone_surrogate(text: str) -> bool:
    """Whether the text holds a lone surrogate; an ASCII text (Python knows without looking) cannot."""
    return not text.isascii() and _SURROGATE.search(text) is not None


def string_matching(value: Any, found: Callable[[str], bool]) -> str | None:
    """The JSON path of the first string (key or value) of which `found` is true, or None.

    Walks with a stack of its own, so a deep value cannot exhaust Python's. The paths are made only
    once such a string is there: making one for every string was most of a dataset's parse time."""
    if not _any_string(value, found):
        return None
    stack: list[tuple[str, Any]] = [("$", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if found(item):
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                if found(key):
                    return path
                stack.append((f"{path}.{key}", child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", child) for index, child in enumerate(item))
    return None


def _any_string(value: Any, found: Callable[[str], bool]) -> bool:
    """Whether `found` is true of any string (key or value) in the value."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if found(item):
                return True
        elif isinstance(item, dict):
            if any(map(found, item)):
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _constant(name: str) -> Any:
    raise NotJSON(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise NotJSON(f"the number {text[:40]} is out of range")
    return number


DECODER = json.JSONDecoder(parse_constant=_constant, parse_float=_finite)
"""Made once: `json.loads` with these arguments makes a decoder per call, a tenth of a short line's parse."""
