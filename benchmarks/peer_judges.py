"""The judge prompts of the benchmark's peers, answered in the form each one parses, so that the
simulator can serve promptfoo and DeepEval as it serves pytest-distill (`SimServer(answerers=[peer_answer])`).

promptfoo's `factuality` asks in plain text for JSON with an A-E `category` and a `reason`, about
`<expert_answer>` and `<submitted_answer>` sections. DeepEval's GEval asks for JSON with an integer
`score` in a stated range and a `reason`, about `Actual Output:` and `Expected Output:` paragraphs.
Both get the verdict the simulator's own judge gives the same texts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_distill.sim.chatformat import message_text
from pytest_distill.sim.judge import factuality, scale

PROMPTFOO_FACTUALITY = re.compile(r"<expert_answer>(.*?)</expert_answer>.*?<submitted_answer>(.*?)</submitted_answer>", re.DOTALL)
GEVAL_OUTPUT = re.compile(r"^Actual Output:\n(.*?) \n\n", re.DOTALL | re.MULTILINE)
GEVAL_EXPECTED = re.compile(r"^Expected Output:\n(.*?) \n\n", re.DOTALL | re.MULTILINE)
GEVAL_RANGE = re.compile(r'"score"`: an integer between (\d+) and (\d+)')


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
    return None
