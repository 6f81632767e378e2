"""DeepEval's best case: every answer generated concurrently, then `evaluate(max_concurrent=N)` on them.

Usage: python deepeval_evaluate.py CONCURRENCY. Prints {"passed": P, "n": N}.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import openai
from deepeval import evaluate
from deepeval.evaluate import AsyncConfig, DisplayConfig
from deepeval_common import ROWS, make_case, metric


async def answers(concurrency: int) -> list[str]:
    client = openai.AsyncOpenAI(max_retries=0)
    gate = asyncio.Semaphore(concurrency)

    async def one(row: dict[str, Any]) -> str:
        async with gate:
            answer = await client.chat.completions.create(model="gpt-4o-mini", messages=row["messages"][:-1])
        return answer.choices[0].message.content or ""

    try:
        return await asyncio.gather(*(one(row) for row in ROWS))
    finally:
        await client.close()


if __name__ == "__main__":
    concurrency = int(sys.argv[1])
    cases = [make_case(row, output) for row, output in zip(ROWS, asyncio.run(answers(concurrency)), strict=False)]
    result = evaluate(cases, [metric()], async_config=AsyncConfig(max_concurrent=concurrency),
                      display_config=DisplayConfig(print_results=False, show_indicator=False))
    print(json.dumps({"passed": sum(test.success for test in result.test_results), "n": len(cases)}))
