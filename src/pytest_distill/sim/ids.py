"""Identifiers shaped like the real API's (`chatcmpl-…`, `file-…`, `ftjob-…`, `req_…`).

Random ids for objects created at run time, stable ids where the same input must give the same
id in every run (seeded completions, events, fine-tuned model names).
"""

from __future__ import annotations

import hashlib
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def random_id(prefix: str, length: int = 24) -> str:
    """A fresh id, as the real API hands out for each new object (one read of the system's randomness:
    a `secrets.choice` a character was 2% of a simulated session)."""
    return prefix + _letters(int.from_bytes(secrets.token_bytes(length), "big"), length)


def stable_id(prefix: str, *parts: str, length: int = 24) -> str:
    """An id derived from `parts` only, so it is the same in every run and process."""
    return prefix + _letters(int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest(), "big"), length)


def _letters(number: int, length: int) -> str:
    """`length` characters of `_ALPHABET`, the digits of `number` in base 62 (a byte a character is
    more than enough: 62 < 256)."""
    chars = []
    for _ in range(length):
        number, digit = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return "".join(chars)


def request_id() -> str:
    """An `x-request-id` value in the real format (`req_` and 32 hex digits)."""
    return "req_" + secrets.token_hex(16)
