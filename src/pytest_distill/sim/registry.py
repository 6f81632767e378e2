"""Judge prompts of openai/evals' registry, answered in the free-text form its classify evals parse.

The modelgraded specs (`fact`, `closedqa` and others like them) put the texts between `[Name]: ...`
lines and `***` rules, and ask for a choice in free text: `fact` an A-E letter about `[Expert]` and
`[Submission]`, `closedqa` Y or N about `[Submission]` and `[Criterion]`. The answer takes the form the
prompt asks: the choice alone, the choice then the reasoning (classify_cot), or the reasoning then the
choice on its own line, twice (cot_classify). This is what `python -m pytest_distill.evals import` of
a registry eval asks its judge, so a converted registry eval runs against the simulator too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .chatformat import message_text
from .judge import criteria_met, factuality

REGISTRY_SECTION = re.compile(r"^\[(\w+)\]: (.*?)\n\*{3,}", re.DOTALL | re.MULTILINE)


def registry_answer(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """The free-text answer to an openai/evals modelgraded prompt (fact or closedqa), or None."""
    text = "\n".join(message_text(message) for message in messages)
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
    if "First, answer by printing" in text or "alone on the first line" in text:
        return f"{choice}\n{reason}"
    if text.rstrip().endswith("Reasoning:") or "repeat just" in text:
        return f"{reason}\n{choice}\n{choice}"
    return choice
