"""Judge prompts of other eval tools, answered in the form each one parses (so the benchmark can run them).

openai/evals' modelgraded specs (`fact`, `closedqa` and others like them) put the texts between
`[Name]: ...` lines and `***` rules, and ask for a choice in free text: `fact` an A-E letter about
`[Expert]` and `[Submission]`, `closedqa` Y or N about `[Submission]` and `[Criterion]`. The answer
takes the form the prompt asks: the choice alone, the choice then the reasoning (classify_cot), or
the reasoning then the choice on its own line, twice (cot_classify).

promptfoo's `factuality` asks in plain text for JSON with an A-E `category` and a `reason`, about
`<expert_answer>` and `<submitted_answer>` sections. DeepEval's GEval asks for JSON with an integer
`score` in a stated range and a `reason`, about `Actual Output:` and `Expected Output:` paragraphs.
Both get the verdict our own judge would give the same texts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .chatformat import message_text
from .judge import criteria_met, factuality, scale

PROMPTFOO_FACTUALITY = re.compile(r"<expert_answer>(.*?)</expert_answer>.*?<submitted_answer>(.*?)</submitted_answer>", re.DOTALL)
GEVAL_OUTPUT = re.compile(r"^Actual Output:\n(.*?) \n\n", re.DOTALL | re.MULTILINE)
GEVAL_EXPECTED = re.compile(r"^Expected Output:\n(.*?) \n\n", re.DOTALL | re.MULTILINE)
GEVAL_RANGE = re.compile(r'"score"`: an integer between (\d+) and (\d+)')
REGISTRY_SECTION = re.compile(r"^\[(\w+)\]: (.*?)\n\*{3,}", re.DOTALL | re.MULTILINE)


def peer_answer(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """The JSON text a peer tool's judge prompt expects, or None when the messages are no such prompt."""
    text = "\n".join(message_text(message) for message in messages)
    found = PROMPTFOO_FACTUALITY.search(text)
    if found:
        letter, reason = factuality(found.group(2).strip(), found.group(1).strip())
        return json.dumps({"category": letter, "reason": reason})
    output, expected, bounds = GEVAL_OUTPUT.search(text), GEVAL_EXPECTED.search(text), GEVAL_RANGE.search(text)
    if output and bounds:
        low, high = int(bounds.group(1)), int(bounds.group(2))
        value, reason = scale(output.group(1).strip(), expected.group(1).strip() if expected else None, low, high,
                              choices=list(range(low, high + 1)))
        return json.dumps({"reason": reason, "score": value})
    return registry_answer(text)


def registry_answer(text: str) -> str | None:
    """The free-text answer to an openai/evals modelgraded prompt (fact or closedqa), or None."""
    found = {name.lower(): value.strip() for name, value in REGISTRY_SECTION.findall(text)}
    if "submission" not in found:
        return None
    if "expert" in found:
        letter, reason = factuality(found["submission"], found["expert"])
        choice = str(letter)
    elif "criterion" in found:
        met, reason = criteria_met(found["submission"], None, found["criterion"], found.get("task"))
        choice = "Y" if met else "N"
    else:
        return None
    if "First, answer by printing" in text:
        return f"{choice}\n{reason}"
    if text.rstrip().endswith("Reasoning:") or "repeat just" in text:
        return f"{reason}\n{choice}\n{choice}"
    return choice
