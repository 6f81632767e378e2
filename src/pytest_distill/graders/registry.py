"""The verdicts of openai/evals' registry eval classes, exactly as its own code gives them.

A team leaving the registry keeps its eval's meaning only if a converted test passes and fails on
the same answers as `oaieval` did. These helpers reproduce the classes' checks (evals/elsuite/basic/
match.py, includes.py, fuzzy_match.py, json_match.py, utils.py; modelgraded/classify_utils.py): the
registry's FuzzyMatch is a containment of normalised texts, not `text_similarity`'s rapidfuzz ratio,
and its Match is "starts with", not equality. Each records one grade, named by `name=`.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..calls import replayable
from ..grades import Grade, record, record_judging, record_transcript
from ..models.client import chat_key
from ..models.handle import Model
from ..untrusted import capped
from .judged import STEADY, Judges, by_judges

PUNCTUATION = frozenset(string.punctuation)
"""What the registry's `normalize` and `get_choice` drop: ASCII punctuation only (a 。 or ، stays)."""
_ARTICLE = re.compile(r"\b(a|an|the)\b")
INVALID = "__invalid__"
"""The registry's choice for a judge answer that names none of the choices."""
MATCH_FNS: dict[str, Callable[[str, str], bool]] = {
    "include": lambda line, choice: line in choice,  # as the registry has it: the line inside the choice
    "exact": lambda line, choice: line == choice,
    "endswith": lambda line, choice: line.endswith(choice),
    "starts_or_endswith": lambda line, choice: line.startswith(choice) or line.endswith(choice),
}
"""How a line of the judge's answer is read as a choice (classify's `match_fn`, default starts_or_endswith)."""
CLIP = 80


def normalize(text: str) -> str:
    """The registry's `normalize`: lower case, ASCII punctuation removed, the articles a/an/the
    removed, whitespace runs made single spaces."""
    text = "".join(char for char in text.lower() if char not in PUNCTUATION)
    return " ".join(_ARTICLE.sub(" ", text).split())


def fuzzy_matches(output: str, ideal: str) -> bool:
    """The registry's `fuzzy_match`: one normalised text contains the other (two empty texts match,
    an empty one matches nothing else)."""
    a, b = normalize(output), normalize(ideal)
    if not a or not b:
        return a == b
    return a in b or b in a


def json_matches(sampled: Any, correct: Any) -> bool:
    """The registry's `json_match`: objects key by key over both key sets, lists item by item at equal
    length, anything else by Python's `==`; a missing or null value never matches (not even null).

    Walks with a stack of its own, so deep JSON cannot exhaust Python's."""
    stack = [(sampled, correct)]
    while stack:
        sample, ideal = stack.pop()
        if sample is None or ideal is None:
            return False
        if isinstance(sample, dict):
            if not isinstance(ideal, dict):
                return False
            stack.extend((sample.get(key), ideal.get(key)) for key in {*sample, *ideal})
        elif isinstance(sample, list):
            if not isinstance(ideal, list) or len(sample) != len(ideal):
                return False
            stack.extend(zip(sample, ideal, strict=True))
        elif sample != ideal:
            return False
    return True


def _ideals(helper: str, ideal: str | Sequence[str]) -> list[str]:
    """The accepted answers as a list, as the registry's classes make `ideal` one."""
    ideals: list[Any] = list(ideal) if isinstance(ideal, (list, tuple)) else [ideal]
    if not ideals:
        raise ValueError(f"{helper}: the list of ideal answers is empty (the sample has no accepted answer)")
    for one in ideals:
        if not isinstance(one, str):
            raise TypeError(f"{helper}: an ideal answer is text, not {type(one).__name__} ({one!r:.60})")
    return ideals


def _clip(text: str) -> str:
    return repr(text if len(text) <= CLIP else text[: CLIP - 1] + "…")


def _verdict(name: str, output: str, ideals: Sequence[str], matched: int | None, holds: tuple[str, str], rule: str) -> Grade:
    """One grade for a check against the ideals: which one matched, or that none did."""
    if matched is not None:
        which = f"ideal {matched + 1} of {len(ideals)}" if len(ideals) > 1 else "the ideal"
        reason = f"the answer {holds[0]} {which}, {_clip(ideals[matched])}"
    else:
        shown = ", ".join(map(_clip, ideals[:3])) + (f" and {len(ideals) - 3} more" if len(ideals) > 3 else "")
        reason = f"the answer {_clip(output)} {holds[1]} any ideal: {shown}"
    return record(Grade(name, 1.0 if matched is not None else 0.0, matched is not None, reason, rule))


def _first(ideals: Sequence[str], check: Callable[[str], bool]) -> int | None:
    return next((index for index, ideal in enumerate(ideals) if check(ideal)), None)


def registry_match(output: Any, ideal: str | Sequence[str], *, name: str = "registry_match") -> Grade:
    """The registry's Match (`evals.elsuite.basic.match:Match`): passes when the answer starts with an
    ideal answer, both stripped of surrounding whitespace. `ideal` is one answer or a list of them."""
    ideals, text = _ideals("registry_match", ideal), str(output).strip()
    matched = _first(ideals, lambda one: text.startswith(one.strip()))
    return _verdict(name, text, ideals, matched, ("starts with", "does not start with"), "the answer starts with an ideal")


def registry_includes(output: Any, ideal: str | Sequence[str], *, ignore_case: bool = False,
                      name: str = "registry_includes") -> Grade:
    """The registry's Includes (`evals.elsuite.basic.includes:Includes`): passes when an ideal answer
    is inside the answer; `ignore_case` compares both lower-cased, as the eval's `ignore_case` arg."""
    ideals, text = _ideals("registry_includes", ideal), str(output)
    fold: Callable[[str], str] = str.lower if ignore_case else str
    matched = _first(ideals, lambda one: fold(one) in fold(text))
    rule = "an ideal is inside the answer" + (" (any case)" if ignore_case else "")
    return _verdict(name, text, ideals, matched, ("includes", "includes no"), rule)


def registry_fuzzy_match(output: Any, ideal: str | Sequence[str], *, name: str = "registry_fuzzy_match") -> Grade:
    """The registry's FuzzyMatch (`evals.elsuite.basic.fuzzy_match:FuzzyMatch`): passes when the
    normalised answer and a normalised ideal (lower case, no punctuation, no a/an/the, single spaces)
    contain one another, either way round. Not `text_similarity(metric="fuzzy_match")`, which is the
    grader API's rapidfuzz ratio."""
    ideals, text = _ideals("registry_fuzzy_match", ideal), str(output)
    matched = _first(ideals, lambda one: fuzzy_matches(text, one))
    return _verdict(name, text, ideals, matched, ("fuzzy-matches", "fuzzy-matches no"), "normalised answer and ideal contain one another")


def registry_json_match(output: Any, ideal: str | Sequence[str], *, name: str = "registry_json_match") -> Grade:
    """The registry's JsonMatch (`evals.elsuite.basic.json_match:JsonMatch`): passes when the answer
    parsed as JSON equals an ideal parsed as JSON, key by key and item by item (a null never matches).
    An answer that is no JSON fails; an ideal that is no JSON is an error of the data (ValueError)."""
    ideals, text = _ideals("registry_json_match", ideal), str(output)
    correct = []
    for index, one in enumerate(ideals):
        try:
            correct.append(json.loads(one))
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"registry_json_match: ideal {index + 1} is no JSON ({exc}): {_clip(one)}") from None
    try:
        sampled = json.loads(text)
    except (ValueError, RecursionError):
        sampled = None
    matched = next((index for index, one in enumerate(correct) if json_matches(sampled, one)), None)
    return _verdict(name, text, ideals, matched, ("as JSON equals", "as JSON equals no"), "the answer's JSON equals an ideal's")


# -- model-graded classify ---------------------------------------------------------------------


def chat_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """A chat prompt as the registry shows it to a judge (`chat_prompt_to_text_prompt`, not for
    completion): one message is its content; several are lines prefixed by role (`User: `), by
    `name` when given (`example_user` as `User: `), a system message by nothing."""
    if len(messages) == 1:
        return str(messages[0].get("content"))
    prefixes = {"system": "", "example_user": "User: ", "example_assistant": "Assistant: "}
    lines = []
    for message in messages:
        role = str(message.get("name") or message.get("role"))
        lines.append(f"{prefixes.get(role, role.capitalize() + ': ')}{message.get('content')}\n")
    return "".join(lines).lstrip()


def fill(template: str, fields: Mapping[str, Any]) -> str:
    """A spec prompt with each `{name}` replaced by the sample's field, as the registry formats it
    (`{{`/`}}` are braces; a chat prompt's value is shown as text). A field the sample lacks raises
    KeyError; a field with attribute, index or format parts is refused (data never reaches Python's
    formatting machinery)."""
    out, position = [], 0
    for piece in re.finditer(r"\{\{|\}\}|\{([^{}]*)\}", template):
        out.append(template[position:piece.start()])
        position = piece.end()
        token = piece.group(0)
        if token in ("{{", "}}"):
            out.append(token[0])
            continue
        key = piece.group(1)
        if not key.isidentifier():
            raise ValueError(f"the spec prompt's field {{{key}}} is no plain name (only {{name}} fields are filled)")
        if key not in fields:
            raise KeyError(f"the spec prompt asks for {{{key}}}, which the sample has not (it has {', '.join(sorted(fields))})")
        value = fields[key]
        out.append(chat_text(value) if _is_chat(value) else str(value))
    out.append(template[position:])
    return "".join(out)


def _is_chat(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, Mapping) and "role" in m for m in value)


def read_choice(answer: str, choice_strings: Sequence[str], eval_type: str, match_fn: str = "starts_or_endswith") -> str:
    """The registry's `get_choice`: the first line (the last, for cot_classify) that, stripped of
    whitespace and ASCII punctuation, matches a choice by `match_fn`; `__invalid__` when none does."""
    matches = MATCH_FNS[match_fn]
    lines = answer.strip().split("\n")
    if eval_type.startswith("cot_classify"):
        lines.reverse()
    for raw in lines:
        line = "".join(char for char in raw.strip() if char not in PUNCTUATION)
        if not line:
            continue
        for choice in choice_strings:
            if matches(line, choice):
                return choice
    return INVALID


def sample_fields(sample: Any, spec_args: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The fields a spec prompt is filled from: a mapping as it is, or a case's registry sample (`input`:
    its messages, `ideal`: its accepted answer or the list of them, its other fields), then the eval's
    `modelgraded_spec_args`."""
    if isinstance(sample, Mapping):
        fields = dict(sample)
    else:
        references = list(sample.references)
        fields = {**sample.metadata, "input": sample.messages}
        if references:
            fields["ideal"] = references if len(references) > 1 else references[0]
    return {**fields, **(spec_args or {})}


@replayable
def registry_classify(output: Any, sample: Any, prompt: str | Sequence[Mapping[str, str]], choice_strings: str | Sequence[str],
                      *, eval_type: str, spec_args: Mapping[str, Any] | None = None,
                      choice_scores: Mapping[str, float] | None = None, passing: Sequence[str] | None = None,
                      match_fn: str = "starts_or_endswith", answer_key: str = "completion", name: str = "registry_classify",
                      judge: Judges = None) -> Grade:
    """The registry's model-graded classify (`ModelBasedClassify` with a modelgraded spec).

    The spec's `prompt` (a text, or chat messages) is filled with the `sample`'s fields (a case, or a
    mapping of fields), the eval's `spec_args` and the answer (under `answer_key`, the spec's
    `input_outputs` value); the judge answers in free text, and its choice is read the registry's way
    (`eval_type`: `cot_classify` reads the last line first). The score is the choice's `choice_scores`
    value (the lowest for an unreadable answer, `__invalid__`, which fails as the registry counts it).
    It passes when the choice is one of `passing`: by default the choices of the top score, or every
    choice when there are no scores.
    """
    choices = list(choice_strings)
    if match_fn not in MATCH_FNS:
        raise ValueError(f"registry_classify: unknown match_fn {match_fn!r} (one of {', '.join(MATCH_FNS)})")
    if choice_scores is not None and set(choices) - set(choice_scores):
        raise ValueError(f"registry_classify: choice_scores gives no score to {', '.join(sorted(set(choices) - set(choice_scores)))}")
    if passing is None:
        top = max(choice_scores[c] for c in choices) if choice_scores else None
        passing = [c for c in choices if choice_scores is None or choice_scores[c] == top]
    values = {**sample_fields(sample, spec_args), answer_key: str(output)}
    messages = [{"role": "user", "content": fill(prompt, values)}] if isinstance(prompt, str) else \
        [{**message, "content": fill(str(message["content"]), values)} for message in prompt]
    rule = f"choice in {', '.join(passing)}" if len(passing) > 1 else f"choice is {passing[0]}"

    def graded(model: Model) -> Grade:
        completion = model.chat(messages, optional=STEADY)
        if not completion.cached:
            record_judging(chat_key(model.name, messages), model.name, completion.usage.prompt_tokens,
                           completion.usage.completion_tokens)
        answer = completion.text
        record_transcript({"grader": name, "judge": model.name, "attempt": 1, "messages": messages, "reply": capped(answer)})
        choice = read_choice(answer, choices, eval_type, match_fn)
        if choice_scores is not None:
            score = float(min(choice_scores[c] for c in choices) if choice == INVALID else choice_scores[choice])
        else:
            score = 1.0 if choice in passing else 0.0
        said = "the judge's answer names none of the choices (__invalid__)" if choice == INVALID else f"the judge chose {choice!r}"
        shown = answer if len(answer) <= 2000 else answer[:2000] + "…"
        return Grade(name, score, choice in passing, f"{said}. Judge's answer: {shown}", rule)

    return record(by_judges(name, judge, graded))
