"""Texts from outside (server messages, judge reasons, model output) made fit to show and store.

A server's error body or a judge's reasoning can be megabytes long: shown in every test of a run it
made a 40 MB terminal log and a 120 MB HTML report. Each such text is capped where it enters, with
how much was cut said, so every report carries the same short text.
"""

from __future__ import annotations

SERVER_TEXT_CHARS = 2000
"""The most of a server's message (an error body, a job's error) that we show or store."""


def capped(text: str, limit: int = SERVER_TEXT_CHARS) -> str:
    """`text` cut to `limit` characters, saying how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit:,} more characters cut]"
