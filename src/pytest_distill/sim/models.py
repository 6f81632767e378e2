"""The simulated models: which names exist, and how each one answers.

Every answer is a pure function of the request and the seeded data (no randomness, no clock), so
a suite run against the simulator gives the same grades in every run and every process. The
models stand in for real ones only to exercise wiring: a teacher that knows the seeded answers,
a student wrong on a stable half of them, fine-tuned students that learned their training file and,
as far as that file held the teacher's answers, the teacher.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .chatformat import Example, input_key, whole_key
from .text import char_ngrams, cosine, stable_fraction

GENERIC_ANSWER = "I don't know."
WRONG_ANSWER = "I am not sure, but I believe it is something else entirely."

# A fine-tuned model answers an input this close (character-trigram cosine) to a trained one
# with that one's answer: it generalises to small rewordings, not to other questions.
NEAR_MATCH = 0.8
# On other inputs of its training data's domain (at least this close to a trained input) that its
# teacher knows, a fine-tune gives the teacher's answer for this share of them, times the share of
# its training answers that were the teacher's: it learned the teacher, not only the examples.
SAME_DOMAIN = 0.1
CARRIES_OVER = 0.8

Kind = Literal["teacher", "student", "reasoning", "embedding", "fine-tuned"]
"""A reasoning model knows what the teacher knows, and refuses sampling parameters as o-series models do."""


@dataclass(frozen=True)
class ModelCard:
    """A model the simulator serves, as `GET /models` lists it."""

    id: str
    kind: Kind
    created: int
    owned_by: str = "system"
    dimensions: int = 0

    def as_json(self) -> dict[str, Any]:
        """The real `model` object, with its announced `shutdown_date` (null when none is announced)."""
        return {"id": self.id, "object": "model", "created": self.created, "owned_by": self.owned_by,
                "shutdown_date": shutdown_date(self.id)}


BASE_MODELS: dict[str, ModelCard] = {
    card.id: card
    for card in (
        ModelCard("gpt-4o", "teacher", 1715367049),
        ModelCard("gpt-4o-2024-08-06", "teacher", 1722814719),
        ModelCard("gpt-4o-2024-11-20", "teacher", 1739331543),
        ModelCard("gpt-4o-mini", "student", 1721172741),
        ModelCard("gpt-4o-mini-2024-07-18", "student", 1721172717),
        ModelCard("o4-mini", "reasoning", 1744225308),
        ModelCard("o4-mini-2025-04-16", "reasoning", 1744133506),
        ModelCard("text-embedding-3-small", "embedding", 1705948997, dimensions=1536),
        ModelCard("text-embedding-3-large", "embedding", 1705953180, dimensions=3072),
    )
}

# What an alias answers as, like the real API names the snapshot in every response.
SNAPSHOTS = {"gpt-4o": "gpt-4o-2024-08-06", "gpt-4o-mini": "gpt-4o-mini-2024-07-18", "o4-mini": "o4-mini-2025-04-16"}


# Retirements as OpenAI's deprecations page announced them on 2026-10-14: these snapshots, and every
# fine-tune built on them, shut down on 2027-01-14.
SHUTDOWN_DATES = {name: "2027-01-14" for name in ("gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-2024-11-20", "gpt-4o-mini",
                                                   "gpt-4o-mini-2024-07-18", "gpt-4.1", "gpt-4.1-2025-04-14",
                                                   "gpt-4.1-mini", "gpt-4.1-mini-2025-04-14")}


def shutdown_date(model: str) -> str | None:
    """The announced shutdown date of a model, or of the base a fine-tune (`ft:BASE:...`) was built on."""
    return SHUTDOWN_DATES.get(model.split(":")[1] if model.startswith("ft:") and model.count(":") >= 2 else model)


# The snapshots a fine-tuning job may start from (besides fine-tuned models, which may be tuned further).
FINE_TUNABLE = frozenset({"gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06"})


def snapshot(name: str) -> str:
    """The snapshot an alias stands for; any other name as it is."""
    return SNAPSHOTS.get(name, name)


class Answers:
    """Stored answers found by the whole input first (system prompt and earlier turns included), then,
    for an input no stored one equals, by its last user message (the first stored answer to it)."""

    def __init__(self, examples: Iterable[Example]) -> None:
        self._whole: dict[str, str] = {}
        self._question: dict[str, str] = {}
        for example in examples:
            self._whole.setdefault(example.whole, example.answer)
            self._question.setdefault(example.key, example.answer)

    def answer(self, messages: Sequence[Mapping[str, Any]]) -> str | None:
        """The stored answer to these input messages, if any."""
        return self._whole.get(whole_key(messages)) or self._question.get(input_key(messages))

    def distinct(self) -> list[str]:
        """The distinct answers, sorted (the same order in every process)."""
        return sorted(set(self._whole.values()))


class Knowledge(Answers):
    """What the teacher knows: each seeded input's stored answer (the first, if seeded twice)."""

    def __init__(self, examples: Iterable[Example]) -> None:
        super().__init__(examples)
        self._distinct = self.distinct()

    def student_answer(self, messages: Sequence[Mapping[str, Any]]) -> str | None:
        """The student's answer to a seeded input: right or wrong by a stable hash of the question.

        About half the questions (sha256, so the same in every process) get another seeded case's
        answer, or a plainly wrong sentence when there is no other; the rest the right one.
        """
        right = self.answer(messages)
        key = input_key(messages)
        if right is None or stable_fraction(key, "student") < 0.5:
            return right
        others = [answer for answer in self._distinct if answer != right]
        if not others:
            return WRONG_ANSWER
        return others[int(stable_fraction(key, "wrong") * len(others))]


class TrainedAnswers(Answers):
    """What a fine-tuned model learned: the last assistant turn of each training example."""

    def __init__(self, examples: Iterable[Example]) -> None:
        examples = list(examples)
        super().__init__(examples)
        self._grams = [(char_ngrams(example.key), example.answer) for example in examples]
        self._learned = list({example.whole: (example.input, example.answer) for example in reversed(examples)}.values())

    def lookup(self, messages: Sequence[Mapping[str, Any]]) -> str | None:
        """The trained answer for this input, or for the nearest trained question above NEAR_MATCH."""
        exact = self.answer(messages)
        if exact is not None or not self._grams:
            return exact
        score, answer = self.nearest(input_key(messages))
        return answer if score >= NEAR_MATCH else None

    def nearest(self, key: str) -> tuple[float, str | None]:
        """The similarity of the nearest trained question, and its answer."""
        grams = char_ngrams(key)
        return max(((cosine(grams, trained), answer) for trained, answer in self._grams), key=lambda x: x[0],
                   default=(0.0, None))

    def agreement(self, knowledge: Knowledge) -> float:
        """The share of trained inputs whose answer is the teacher's own answer to that input."""
        if not self._learned:
            return 0.0
        return sum(knowledge.answer(messages) == answer for messages, answer in self._learned) / len(self._learned)


@dataclass(frozen=True)
class FineTune:
    """A fine-tuned model that exists (its job succeeded), and the model it fell back on."""

    model: str
    base: str
    created: int
    trained: TrainedAnswers

    def card(self) -> ModelCard:
        """Its entry in `GET /models`."""
        return ModelCard(self.model, "fine-tuned", self.created, owned_by="sim")


def seeded_fine_tunes(names: Iterable[str], knowledge: Iterable[Example], created: int) -> dict[str, FineTune]:
    """Fine-tuned models that exist from the start (an account's old fine-tunes), each as if trained on
    the seeded answers. A name is `ft:BASE:ORG:SUFFIX:ID` on a base the simulator serves; another is a
    ValueError that says so."""
    examples = list(knowledge)
    fine_tunes = {}
    for name in names:
        parts = name.split(":")
        if len(parts) != 5 or parts[0] != "ft" or snapshot(parts[1]) not in BASE_MODELS or not parts[4]:
            raise ValueError(f"{name!r} is not a fine-tuned model name ft:BASE:ORG:SUFFIX:ID on a base the simulator "
                             f"serves ({', '.join(sorted(FINE_TUNABLE))})")
        fine_tunes[name] = FineTune(name, snapshot(parts[1]), created, TrainedAnswers(examples))
    return fine_tunes


class ModelZoo:
    """Finds models by name and makes them answer.

    `fine_tunes` is asked on every call because a fine-tuned model comes into being when its
    job's time runs out, not at any event the zoo could hear about.
    """

    def __init__(self, knowledge: Knowledge, fine_tunes: Callable[[], Mapping[str, FineTune]]) -> None:
        self.knowledge = knowledge
        self._fine_tunes = fine_tunes

    def find(self, name: str) -> ModelCard | None:
        """The model of that name, or None (the API then answers 404 model_not_found)."""
        card = BASE_MODELS.get(name)
        if card is not None:
            return card
        fine_tune = self._fine_tunes().get(name)
        return fine_tune.card() if fine_tune else None

    def cards(self) -> list[ModelCard]:
        """Every model that exists now, base models first."""
        return [*BASE_MODELS.values(), *(ft.card() for ft in self._fine_tunes().values())]

    def answer(self, name: str, messages: Sequence[Mapping[str, Any]]) -> str:
        """The answer of chat model `name` (which must exist) to these messages."""
        card = BASE_MODELS.get(name)
        if card is None:
            fine_tune = self._fine_tunes()[name]
            return (fine_tune.trained.lookup(messages) or self._carried_over(fine_tune, messages)
                    or self.answer(fine_tune.base, messages))
        if card.kind in ("teacher", "reasoning"):
            return self.knowledge.answer(messages) or GENERIC_ANSWER
        return self.knowledge.student_answer(messages) or GENERIC_ANSWER

    def _carried_over(self, fine_tune: FineTune, messages: Sequence[Mapping[str, Any]]) -> str | None:
        """The teacher's answer, for a stable share of the in-domain inputs the teacher knows."""
        teacher = self.knowledge.answer(messages)
        key = input_key(messages)
        if teacher is None or fine_tune.trained.nearest(key)[0] < SAME_DOMAIN:
            return None
        share = CARRIES_OVER * fine_tune.trained.agreement(self.knowledge)
        return teacher if stable_fraction(key, "carried over") < share else None


def embed(text: str, native_dimensions: int, dimensions: int) -> list[float]:
    """A unit vector of hashed character bigrams and trigrams: similar texts point alike.

    Character n-grams need no word boundaries, so Japanese works as well as English. Like
    text-embedding-3, a shorter `dimensions` is the full vector cut and renormalised.
    """
    vector = [0.0] * native_dimensions
    grams: Counter[str] = char_ngrams(text, 2) + char_ngrams(text, 3)
    for gram, count in grams.items():
        number = int.from_bytes(hashlib.blake2b(gram.encode(), digest_size=8).digest(), "big")
        vector[number % native_dimensions] += count if number >> 63 else -count
    cut = vector[:dimensions]
    norm = math.sqrt(sum(v * v for v in cut))
    if not norm:
        return [1.0] + [0.0] * (dimensions - 1)
    return [v / norm for v in cut]


def encode_base64(vector: Sequence[float]) -> str:
    """The `encoding_format="base64"` form: little-endian float32, as the SDK decodes it."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
