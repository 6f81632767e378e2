"""The floor of the work: a bare asyncio client, N calls in flight, each case's completion then its judge.

Usage: python benchmarks/lower_bound.py CASES.jsonl CONCURRENCY (OPENAI_BASE_URL / OPENAI_API_KEY from the
environment). Prints {"passed": P, "n": N}.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import openai

import plain_judge


async def main(path: Path, concurrency: int) -> dict[str, int]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    client = openai.AsyncOpenAI(max_retries=0)
    gate = asyncio.Semaphore(concurrency)

    async def one(row: dict[str, Any]) -> bool:
        messages, expected = row["messages"][:-1], row["messages"][-1]["content"]
        async with gate:
            answer = await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        output = answer.choices[0].message.content or ""
        async with gate:
            verdict = await client.chat.completions.create(
                model="gpt-4o", messages=plain_judge.messages(messages[-1]["content"], expected, output),
                temperature=0, response_format=plain_judge.FORMAT)
        return plain_judge.passed(verdict.choices[0].message.content)

    verdicts = await asyncio.gather(*(one(row) for row in rows))
    await client.close()
    return {"passed": sum(verdicts), "n": len(verdicts)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))))
