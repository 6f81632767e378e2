"""Test data and small helpers for the simulator's tests (imported, unlike conftest fixtures)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import openai
from openai.types.fine_tuning import FineTuningJob

CAPITALS = {
    "France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Spain": "Madrid", "Germany": "Berlin",
    "Canada": "Ottawa", "Egypt": "Cairo", "Peru": "Lima", "Kenya": "Nairobi", "Norway": "Oslo",
    "Chile": "Santiago", "India": "New Delhi",
}  # fmt: skip
JAPANESE = {
    "日本の首都はどこですか？": "日本の首都は東京です。",
    "富士山の高さは何メートルですか？": "富士山の高さは3776メートルです。",
    "一年は何日ですか？": "一年は365日です。",
}
SYSTEM = {"role": "system", "content": "You answer questions about geography in one sentence."}
LONG_TURNS = 31


def chat_row(question: str, answer: str, *, row_id: str | None = None, system: bool = False, **metadata: str) -> dict[str, Any]:
    """One line of a chat-format file."""
    row: dict[str, Any] = {"messages": [*([SYSTEM] if system else []), user(question), {"role": "assistant", "content": answer}]}
    if metadata:
        row["metadata"] = metadata
    if row_id is not None:
        row["id"] = row_id
    return row


def capital_question(country: str) -> str:
    return f"What is the capital of {country}?"


def capital_answer(country: str) -> str:
    return f"The capital of {country} is {CAPITALS[country]}."


def item_rows(count: int, prefix: str = "q", **metadata: str) -> list[dict[str, Any]]:
    """`count` numbered question/answer cases."""
    return [chat_row(f"What is item {prefix}{i}?", f"Item {prefix}{i} is number {i}.", **metadata) for i in range(count)]


def long_row() -> dict[str, Any]:
    """A conversation with LONG_TURNS input messages, more than one page of stored messages."""
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(LONG_TURNS)]
    return {"id": "long", "metadata": {"app": "long"}, "messages": [*turns, {"role": "assistant", "content": "the end"}]}


def seed_rows() -> list[dict[str, Any]]:
    """12 capitals (ids cap-<country>), 3 Japanese, 10 items and the long conversation: 26 cases."""
    capitals = [
        chat_row(capital_question(c), capital_answer(c), row_id=f"cap-{c.lower()}", system=True,
                 app="geo", split="test" if i % 2 else "train")
        for i, c in enumerate(CAPITALS)
    ]  # fmt: skip
    japanese = [chat_row(q, a, app="ja", split="test") for q, a in JAPANESE.items()]
    return [*capitals, *japanese, *item_rows(10, app="items", split="train"), long_row()]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def user(content: str) -> dict[str, str]:
    return {"role": "user", "content": content}


def ask(client: openai.OpenAI, model: str, question: str, **params: Any) -> str:
    """The text a model answers to one user message."""
    completion = client.chat.completions.create(model=model, messages=[user(question)], **params)
    return completion.choices[0].message.content or ""


def wait_for_job(
    client: openai.OpenAI, job_id: str, *, polls: int = 2000, seconds: float = 30.0
) -> tuple[FineTuningJob, list[str]]:
    """Poll a job until it ends (bounded by count and time); return it and the statuses seen."""
    deadline = time.monotonic() + seconds
    seen: list[str] = []
    for _ in range(polls):
        job = client.fine_tuning.jobs.retrieve(job_id)
        if not seen or seen[-1] != job.status:
            seen.append(job.status)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job, seen
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)  # poll interval, not synchronisation: the loop's exit is the job's status
    raise AssertionError(f"job {job_id} did not finish; statuses seen: {seen}")
