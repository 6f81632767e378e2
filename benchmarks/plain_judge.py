"""The factuality judge request of the plain variants (the asyncio floor and plain pytest).

A compact A-E prompt with the tagged sections and the strict `json_schema` answer our helper asks
for, so that the simulator grades it the same way; the server's cost is the same for any prompt.
"""

from __future__ import annotations

import json
from typing import Any

FORMAT: dict[str, Any] = {"type": "json_schema", "json_schema": {"name": "factuality", "strict": True, "schema": {
    "type": "object", "additionalProperties": False, "required": ["reasoning", "choice"],
    "properties": {"reasoning": {"type": "string"}, "choice": {"type": "string", "enum": ["A", "B", "C", "D", "E"]}}}}}


def messages(question: str, expected: str, output: str) -> list[dict[str, str]]:
    system = ("Compare the factual content of a submitted answer with an expert answer. Answer in JSON: "
              '"reasoning", then "choice": A subset, B superset, C same, D disagreement, E differences do not matter.')
    user = f"<question>\n{question}\n</question>\n\n<expected>\n{expected}\n</expected>\n\n<output>\n{output}\n</output>"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def passed(content: str | None) -> bool:
    return json.loads(content or "{}").get("choice") != "D"
