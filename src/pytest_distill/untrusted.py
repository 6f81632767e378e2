"""Texts from outside (server messages, judge reasons, model output) made fit to show and store.

A server's error body or a judge's reasoning can be megabytes long: shown in every test of a run it
made a 40 MB terminal log and a 120 MB HTML report. Each such text is capped where it enters, with
how much was cut said, so every report carries the same short text. And any of them may hold
terminal escape sequences: what we print shows them escaped.
"""

from __future__ import annotations

import re

SERVER_TEXT_CHARS = 2000
"""The most of a server's message (an error body, a job's error) that we show or store."""


def capped(text: str, limit: int = SERVER_TEXT_CHARS) -> str:
    """`text` cut to `limit` characters, saying how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit:,} more characters cut]"


_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""Control characters but tab and newline (an escape sequence clears the screen or moves the cursor to
fake a PASSED line; a carriage return overwrites one), and the bidirectional marks that reorder a line."""


def printable(text: str) -> str:
    """`text` with each control character shown as its escape (`\\x1b`, `\\r`, `\\u202e`): what a model,
    a judge or a server wrote is read in the terminal, never obeyed by it."""
    return _UNPRINTABLE.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)
