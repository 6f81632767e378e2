"""The simulated judge: answers a `json_schema` chat request from the request itself.

Contract with the plugin's grader templates: the last user message holds tagged sections,
`<output>` (the text graded), and optionally `<expected>` (the reference), `<question>`,
`<criteria>`, each either bare or fenced with a boundary (`<output boundary="B">` ...
`</output boundary="B">`, as the plugin sends them); the schema's properties are `reasoning` first, then one verdict property. The
verdict is read off a similarity `s` in [0, 1] between output and expected (see
`text.Overlap.similarity`), shaped by the verdict property's schema:

- enum A-E (factuality): C when nearly equal, B when the output contains the reference, A when
  the reference contains the output, E when `s` >= 0.6, else D (disagreement, the one that fails);
- enum positive/neutral/negative (sentiment): from small word lists, English and Japanese;
- boolean (criteria): `s` >= 0.5 against `<expected>`, else the share of the criteria's content
  words found in the output >= 0.5; criteria that only say how the output relates to its input
  ("replies to the last sender of the thread") are met when the output names someone or something
  of the last part of `<question>` and nothing the question never mentions;
- integer or number (with minimum/maximum, else 1-5 or 0-1) or an enum of integers: `lo + s * (hi - lo)`
  rounded; with no `<expected>`, `s` is a text-quality score instead;
- any other string enum: labels taken as running from worst to best, picked at `s` along the list.

The judge grades wiring, not meaning: it is deterministic and knows nothing a word count misses.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .chatformat import message_text
from .text import STOP_WORDS, Overlap, has_cjk, normalize, overlap

TAGS = ("output", "expected", "question", "criteria")

FACTUALITY_MEANING = {
    "A": "a subset of the expected answer and consistent with it",
    "B": "a superset of the expected answer and consistent with it",
    "C": "the same as the expected answer",
    "D": "in disagreement with the expected answer",
    "E": "different from the expected answer only in ways that do not matter",
}

POSITIVE_WORDS = frozenset(
    """good great excellent love loved like happy glad wonderful amazing fantastic best pleased
    helpful thanks thank awesome perfect nice enjoy enjoyed satisfied recommend delighted""".split()
)
NEGATIVE_WORDS = frozenset(
    """bad terrible awful hate hated poor worst sad angry disappointed disappointing broken useless
    horrible slow problem fail failed unhappy annoying wrong complaint refund""".split()
)
NEGATORS = frozenset({"not", "no", "never", "t"})  # "t" is what normalising leaves of "n't"
JAPANESE_POSITIVE = tuple("良い よい 素晴らしい すばらしい 嬉しい うれしい 好き 最高 ありがとう 満足 楽しい 便利".split())
JAPANESE_NEGATIVE = tuple("悪い 最悪 嫌い 残念 不満 遅い 壊れ ひどい 悲しい 失望 困っ".split())

# Words that say what to check rather than what should be there ("The answer mentions Paris").
INSTRUCTION_WORDS = frozenset(
    """response answer output text reply mention mentions mentioned include includes included
    contain contains state states say says explain explains describe describes correct correctly
    criteria criterion given provided""".split()
)
# Words of criteria that say how the output relates to its input rather than what it contains.
RELATION_WORDS = frozenset(
    """reply replies replying respond responds responding address addresses addressed sender
    senders writer author recipient last latest previous message messages thread email mail e""".split()
)
_CAPITALISED = re.compile(r"\b[A-Z][a-z][\w'-]*")
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+)[A-Z][\w'-]*")
TERMINAL = tuple(".!?。！？…)」』\"'”’")
PASS_LEVEL = 0.5

Verdict = tuple[Any, str]


def judge(messages: Sequence[Mapping[str, Any]], json_schema: Mapping[str, Any]) -> dict[str, Any]:
    """The judge's JSON answer: `reasoning`, the verdict, and defaults for any other required field."""
    schema = json_schema.get("schema") or {}
    properties: Mapping[str, Mapping[str, Any]] = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    found = sections(next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), ""))
    verdict_name = next((name for name in properties if name != "reasoning"), None)
    value, reasoning = verdict(properties[verdict_name], found) if verdict_name else (None, _no_verdict())
    answer: dict[str, Any] = {}
    for name, prop in properties.items():
        if name == "reasoning":
            answer[name] = reasoning
        elif name == verdict_name:
            answer[name] = value
        elif name in required:
            answer[name] = _default(prop)
    return answer


SECTIONS = {tag: re.compile(rf'<{tag}(\s+boundary="[^"<>]*"|)>(.*?)</{tag}\1>', re.DOTALL) for tag in TAGS}
"""A section, bare or fenced: its closing tag carries the same boundary as its opening one."""


def sections(text: str) -> dict[str, str]:
    """The tagged sections of a judge prompt: the first `<tag>...</tag>` of each tag (or the first
    `<tag boundary="B">...</tag boundary="B">`), stripped."""
    found = {}
    for tag, pattern in SECTIONS.items():
        match = pattern.search(text)
        if match:
            found[tag] = match.group(2).strip()
    return found


def verdict(prop: Mapping[str, Any], found: Mapping[str, str]) -> Verdict:
    """The verdict value for the verdict property's schema, and the one-sentence reasoning."""
    enum = prop.get("enum") or []
    types = {prop["type"]} if isinstance(prop.get("type"), str) else set(prop.get("type") or ())
    output, expected = found.get("output", ""), found.get("expected")
    if set(enum) == set("ABCDE"):
        return factuality(output, expected)
    if set(enum) == {"positive", "neutral", "negative"}:
        return sentiment(output)
    if "boolean" in types:
        return criteria_met(output, expected, found.get("criteria"), found.get("question"))
    if enum and all(isinstance(v, int) and not isinstance(v, bool) for v in enum):
        return scale(output, expected, min(enum), max(enum), choices=sorted(enum))
    if types & {"integer", "number"}:
        integer = "integer" in types
        low, high = prop.get("minimum", 1 if integer else 0), prop.get("maximum", 5 if integer else 1)
        return scale(output, expected, low, high, choices=None if not integer else list(range(low, high + 1)))
    if enum:
        return label(output, expected, list(enum))
    s, how = _graded(output, expected)
    return f"{s:.2f}", f"{how}, so {s:.2f}."


def factuality(output: str, expected: str | None) -> Verdict:
    """A-E as in the classic model-graded fact template; D, the disagreement, is the one that fails."""
    if expected is None:
        return "D", "There was no <expected> section to compare the output with, so D."
    found = overlap(output, expected)
    s = found.similarity
    if not normalize(output):
        letter = "D"
    elif found.dice >= 0.9:
        letter = "C"
    elif found.recall == 1:
        letter = "B"
    elif found.precision == 1:
        letter = "A"
    elif s >= 0.6:
        letter = "E"
    else:
        letter = "D"
    return letter, f"{_compared(found)}, so {letter}: the output is {FACTUALITY_MEANING[letter]}."


def sentiment(output: str) -> Verdict:
    """positive, neutral or negative by counting sentiment words (a preceding negation flips one)."""
    words = normalize(output).split()
    positive = negative = 0
    for index, word in enumerate(words):
        polarity = (word in POSITIVE_WORDS) - (word in NEGATIVE_WORDS)
        if index and words[index - 1] in NEGATORS:
            polarity = -polarity
        positive += polarity > 0
        negative += polarity < 0
    positive += sum(output.count(word) for word in JAPANESE_POSITIVE)
    negative += sum(output.count(word) for word in JAPANESE_NEGATIVE)
    result = "positive" if positive > negative else "negative" if negative > positive else "neutral"
    return result, f"Counted sentiment words in the output: {positive} positive, {negative} negative, so {result}."


def criteria_met(output: str, expected: str | None, criteria: str | None, question: str | None = None) -> Verdict:
    """True when the output overlaps the reference enough.

    Against `<expected>`: similarity >= 0.5. Against `<criteria>`: at least half of the
    criteria's content words (stop words and instruction words such as "mention" left out)
    occur in the output; criteria made only of relation words are checked by `addressed`
    against `<question>`. With neither, the text-quality score >= 0.5.
    """
    if expected is not None:
        found = overlap(output, expected)
        met = found.similarity >= PASS_LEVEL
        return met, f"{_compared(found)}, so the criteria are {'met' if met else 'not met'}."
    if criteria is not None and question and not has_cjk(criteria) and _relational(criteria):
        return addressed(output, question)
    if criteria is not None:
        words = normalize(criteria).split()
        wanted = criteria if has_cjk(criteria) else " ".join(w for w in words if w not in INSTRUCTION_WORDS)
        share = overlap(output, wanted).recall
        met = share >= PASS_LEVEL
        return met, f"{share:.2f} of the criteria's content words occur in the output, so {'met' if met else 'not met'}."
    s, how = _graded(output, None)
    met = s >= PASS_LEVEL
    return met, f"{how}, so {'met' if met else 'not met'}."


def addressed(output: str, question: str) -> Verdict:
    """Whether the output answers the last part of the question (its last block of text).

    The names in the output (capitalised words inside a sentence) must include one from that last
    part and none that the question never mentions: a reply to someone else's message fails.
    Text without such names (Japanese, lower-case) needs half its content units in the last part.
    """
    last = re.split(r"\n\s*(?:-{3,}\s*)?\n", question.strip())[-1]
    names = sorted(set(_CAPITALISED.findall(output)) - {m.split()[-1].lstrip(".!?") for m in _SENTENCE_START.findall(output)})
    if not names:
        share = overlap(output, last).precision
        met = share >= PASS_LEVEL
        return met, f"{share:.2f} of the output occurs in the last part of the input, so the criteria are {'met' if met else 'not met'}."
    last_words, all_words = set(normalize(last).split()), set(normalize(question).split())
    found = [name for name in names if normalize(name) in last_words]
    unknown = [name for name in names if normalize(name) not in all_words]
    met = bool(found) and not unknown
    return met, (f"The criteria are about how the output relates to the input, so its names were looked up there: "
                 f"{', '.join(found) or 'none'} in the last part, {', '.join(unknown) or 'none'} nowhere in the input, "
                 f"so the criteria are {'met' if met else 'not met'}.")


def _relational(criteria: str) -> bool:
    words = [w for w in normalize(criteria).split() if w not in INSTRUCTION_WORDS and w not in STOP_WORDS]
    return bool(words) and all(word in RELATION_WORDS for word in words)


def scale(output: str, expected: str | None, low: float, high: float, *, choices: list[int] | None) -> Verdict:
    """A score from `low` to `high`: the nearest of `choices` (integers), else a number to 2 places."""
    s, how = _graded(output, expected)
    point = low + s * (high - low)
    value: float = min(choices, key=lambda c: (abs(c - point), -c)) if choices else round(point, 2)
    return value, f"{how}, so {value} on the {low}-{high} scale."


def label(output: str, expected: str | None, labels: list[Any]) -> Verdict:
    """One of `labels`, read as running from worst to best, picked at the similarity along the list."""
    s, how = _graded(output, expected)
    chosen = labels[math.floor(s * (len(labels) - 1) + 0.5)]
    return chosen, f"{how}, so {chosen!r}."


def quality(text: str) -> tuple[float, list[str]]:
    """A text-quality score in [0, 1]: 1 minus 0.4 for each failed check, 0 for empty text."""
    stripped = text.strip()
    if not stripped:
        return 0.0, ["empty"]
    words = normalize(stripped).split()
    long_enough = len("".join(stripped.split())) >= 8 if has_cjk(stripped) else len(words) >= 3
    checks = (
        ("too short to be a sentence", long_enough),
        ("cut off without final punctuation", stripped.endswith(TERMINAL)),
        ("repetitive", not _repetitive(words)),
        ("unbalanced brackets", all(stripped.count(a) == stripped.count(b) for a, b in ("()", "[]", "{}", "「」"))),
    )
    failed = [name for name, ok in checks if not ok]
    return max(0.0, 1 - 0.4 * len(failed)), failed


def _graded(output: str, expected: str | None) -> tuple[float, str]:
    """Similarity to `<expected>` when there is one, else text quality; and how it was found."""
    if expected is not None:
        found = overlap(output, expected)
        return found.similarity, _compared(found)
    score, failed = quality(output)
    problems = ", ".join(failed) or "none"
    how = f"There was no <expected> section, so the output's form was checked (problems: {problems})"
    return score, f"{how}: quality {score:.2f}"


def _compared(found: Overlap) -> str:
    return f"Compared the output with the expected answer by {found.unit} overlap: similarity {found.similarity:.2f}"


def _repetitive(words: list[str]) -> bool:
    tripled = any(words[i] == words[i + 1] == words[i + 2] for i in range(len(words) - 2))
    return tripled or (len(words) >= 6 and len(set(words)) / len(words) < 0.4)


def _no_verdict() -> str:
    return "The schema has no verdict property, so there was nothing to grade."


def _default(prop: Mapping[str, Any]) -> Any:
    """A value valid for a required property the judge has no opinion on."""
    if prop.get("enum"):
        return prop["enum"][0]
    kind = prop.get("type")
    kind = str(kind[0] if isinstance(kind, list) else kind)
    lowest = prop.get("minimum", 0)
    return {"string": "", "integer": lowest, "number": lowest, "boolean": False, "array": [], "object": {}}.get(kind)
