"""The training file: the teacher's answers as assistant turns, checked before anything is uploaded.

Every example that is left out is counted under the reason it was left out (broken, another model's
answer, wrong roles or order, an empty turn, leaked into the test cases, a duplicate, failed the
suite's checks), so the summary can say what happened to the data instead of silently shrinking it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..datasets import BrokenCase, Case, content_text
from ..models.handle import is_snapshot_of

SYSTEM_ROLES = frozenset({"system", "developer"})
ROLES = SYSTEM_ROLES | {"user", "assistant", "tool"}
KEPT_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id")
SHOWN = 5
"""How many ids or problems a summary line lists before it says `and N more`."""
_WIDE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uff00-\uffef]")


@dataclass(frozen=True)
class Example:
    """One training example: the full conversation, the teacher's answer last."""

    id: str
    messages: list[dict[str, Any]]

    @property
    def answer(self) -> str:
        return content_text(self.messages[-1].get("content"))

    def line(self) -> str:
        return json.dumps({"messages": self.messages}, ensure_ascii=False, sort_keys=True)


@dataclass
class TrainingSet:
    """The examples that passed every check, and what was left out, by reason."""

    source: str
    examples: list[Example] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    other_model: list[str] = field(default_factory=list)
    leaked: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    filtered: list[str] = field(default_factory=list)
    flipped: list[str] = field(default_factory=list)
    """Examples whose teacher answer passed the suite in some repeats and failed in others (--distill-filter)."""
    filter_note: str = ""
    filter_lines: list[str] = field(default_factory=list)
    """What the filter let through per check and what it cost (--distill-filter)."""
    filter_record: dict[str, Any] | None = None
    held_out_what: str = "a test case"

    def jsonl(self) -> str:
        return "".join(example.line() + "\n" for example in self.examples)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.jsonl().encode("utf-8")).hexdigest()

    @property
    def tokens(self) -> int:
        """An estimate of the tokens one epoch trains on (no tokenizer needed, so no exact count)."""
        return sum(estimate_tokens(example.messages) for example in self.examples)

    def inputs(self) -> set[str]:
        return {input_key(example.messages[:-1]) for example in self.examples}

    def missing(self, minimum: int) -> int:
        return max(0, minimum - len(self.examples))

    def lines(self, label: str = "training data") -> list[str]:
        """What the summary says about this set: its size, then every reason an example was left out."""
        rows = [f"{label} {self.source}: {len(self.examples)} valid examples, ~{self.tokens:,} tokens per epoch (estimate)"]
        for items, what in ((self.invalid, "invalid, left out"),
                            (self.other_model, "answered by another model than the teacher, left out"),
                            (self.leaked, f"with the same input as {self.held_out_what} (leakage), dropped"),
                            (self.duplicates, "duplicates, removed")):
            if items:
                rows.append(f"  {len(items)} {what}: {_some(items)}")
        if self.filter_note:
            dropped = f", dropped: {_some(self.filtered)}" if self.filtered else ""
            rows.append(f"  {len(self.filtered)} failed {self.filter_note}{dropped}")
            rows += self.filter_lines
        if self.flipped:
            rows.append(f"  {len(self.flipped)} whose teacher answer's verdict flipped between repeats, "
                        f"dropped: {_some(self.flipped)}")
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "examples": len(self.examples), "tokens_estimate": self.tokens,
                "sha256": self.sha256, "invalid": self.invalid, "other_model": self.other_model,
                "leaked": self.leaked, "duplicates": self.duplicates, "filtered": self.filtered, "flipped": self.flipped,
                **({"filter": self.filter_record} if self.filter_record is not None else {})}


def build(cases: Sequence[Case | BrokenCase], *, source: str, teacher: str, held_out: set[str],
          held_out_what: str = "a test case", system: str | None = None,
          vet: Callable[[Example], Example | str] | None = None, filter_note: str = "",
          flipped: Collection[str] = ()) -> TrainingSet:
    """Check every case and keep the good ones as examples.

    `held_out` are the input keys that must not be trained on (the test cases' inputs, `held_out_what`
    in the summary); `system` replaces the teacher's system prompt; `vet` is the filter (the example to keep, its answer maybe
    repaired, or why it is left out), and
    `flipped` the ids of examples whose teacher answer's verdict changed between repeats.
    """
    result = TrainingSet(source, filter_note=filter_note, held_out_what=held_out_what)
    seen: set[str] = set()
    for case in cases:
        if isinstance(case, BrokenCase):
            result.invalid.append(case.problem)
            continue
        if case.origin_model and not is_snapshot_of(case.origin_model, teacher):
            result.other_model.append(f"{case.id} ({case.origin_model})")
            continue
        messages = conversation(case, system)
        problem = format_problem(messages)
        if problem:
            result.invalid.append(f"{case.id}: {problem}")
            continue
        if input_key(messages[:-1]) in held_out:
            result.leaked.append(case.id)
            continue
        example = Example(case.id, messages)
        line = example.line()
        if line in seen:
            result.duplicates.append(case.id)
            continue
        seen.add(line)
        if case.id in flipped:
            result.flipped.append(case.id)
            continue
        kept = vet(example) if vet else example
        if isinstance(kept, str):
            result.filtered.append(f"{case.id} ({kept})")
            continue
        result.examples.append(kept)
    return result


def conversation(case: Case, system: str | None) -> list[dict[str, Any]]:
    """The case's input and its stored answer as chat messages; `system` replaces the system prompt."""
    messages = [{key: message[key] for key in KEPT_KEYS if message.get(key) is not None} for message in case.messages]
    if system is not None:
        messages = [{"role": "system", "content": system},
                    *(message for message in messages if message.get("role") not in SYSTEM_ROLES)]
    return [*messages, {"role": "assistant", "content": case.expected or ""}]


def format_problem(messages: Sequence[dict[str, Any]]) -> str | None:
    """Why a conversation is not a valid chat fine-tuning example, or None."""
    users = 0
    for index, message in enumerate(messages):
        role = message.get("role")
        if role not in ROLES:
            return f"message {index} has role {role!r}, not one of {', '.join(sorted(ROLES))}"
        if role in SYSTEM_ROLES and index and messages[index - 1].get("role") not in SYSTEM_ROLES:
            return f"message {index} is a {role} message after the conversation started"
        if role == "assistant" and not users:
            return f"message {index} is an assistant turn before any user message"
        if role in ("user", "assistant") and not content_text(message.get("content")).strip() and not message.get("tool_calls"):
            return f"message {index} ({role}) is empty"
        users += role == "user"
    if not users:
        return "no user message"
    if messages[-1].get("role") != "assistant":
        return "the last message is not the assistant's answer"
    return None


def input_key(messages: Iterable[dict[str, Any]]) -> str:
    """What makes two inputs the same question: the turns after the system prompt, whitespace aside."""
    turns = [(m.get("role"), " ".join(content_text(m.get("content")).split())) for m in messages if m.get("role") not in SYSTEM_ROLES]
    return json.dumps(turns, ensure_ascii=False)


def estimate_tokens(messages: Iterable[dict[str, Any]]) -> int:
    """About one token per CJK character and per four other characters, plus each message's framing."""
    total = 3
    for message in messages:
        text = content_text(message.get("content"))
        wide = len(_WIDE.findall(text))
        total += 4 + wide + (len(text) - wide + 3) // 4
    return total


def _some(items: Sequence[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")
