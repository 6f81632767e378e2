"""`embedding_similarity`: how close two texts are by the cosine of their embedding vectors.

No judge and no prompt: one call to the embeddings endpoint for both texts. The model is the
session's `distill_embedding_model`, or `model=`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..calls import replayable
from ..grades import Grade, record
from ..models.handle import Model
from ..models.types import ModelError
from .judged import scope_model
from .references import first_passing, several

DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine of the angle between two vectors (0 when either is all zeros)."""
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=False)) / norms if norms else 0.0


@replayable
def embedding_similarity(output: Any, expected: str | Sequence[str], threshold: float = 0.8, *,
                         model: Model | str | None = None, name: str = "embedding_similarity") -> Grade:
    """Passes when the embeddings of output and reference have a cosine similarity of at least `threshold`
    (with a list of references, of at least one of them). `name` names the grade."""
    if several(expected):
        return first_passing("embedding_similarity", expected, lambda one: embedding_similarity(
            output, one, threshold, model=model, name=name), "expected")
    if expected is None:
        raise ValueError("embedding_similarity: expected is None (the case has no reference answer)")
    score, embedder = embedded_cosine("embedding_similarity", str(output), str(expected), model, DEFAULT_EMBEDDING_MODEL)
    reason = f"cosine similarity {score:.3f} between the {embedder} embeddings of output and reference"
    return record(Grade(name, score, score >= threshold, reason, f"cosine >= {threshold:g}"))


def embedded_cosine(helper: str, output: str, reference: str, model: Model | str | None, default: str) -> tuple[float, str]:
    """The cosine of the two texts' embeddings (one call for both), and the embedding model's name."""
    embedder = scope_model(helper, model, "embedding_model", "model", default)
    first, second = embedder.embed([output, reference])
    score = cosine(first, second)
    if not math.isfinite(score):
        raise ModelError(embedder.name, "POST /embeddings", "the embedding vectors hold numbers that are not finite (NaN or Infinity)")
    return score, embedder.name
