"""`text_similarity`: the metrics of OpenAI's `text_similarity` grader, on the libraries that define them.

OpenAI's Evals grade text against a reference with one of these metrics and a `pass_threshold`; teams
leaving OpenAI Evals keep their thresholds only if the scores are the same 0-1 numbers. OpenAI names
the library for fuzzy matching (rapidfuzz) and the embedding model for cosine (text-embedding-3-large);
the n-gram metrics are the standard definitions, computed here by the libraries people use for them:
sacrebleu (BLEU), nltk (GLEU, METEOR) and Google's rouge-score (ROUGE; ROUGE-L's longest common
subsequence by rapidfuzz, in linear memory). They come with the optional
`pytest-distill[evals]` extra and are imported only when a metric is used.

METEOR matches synonyms through WordNet, whose data nltk fetches with its own downloader at run time
(not from a package registry). Where that data is missing the metric raises `MetricUnavailable`, an
error of the test, instead of scoring without synonyms and silently differing from METEOR.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, cast

from ..errors import DistillError, install_hint
from ..grades import Grade, record
from ..models.handle import Model
from .embedding import embedded_cosine
from .references import first_passing, several

EXTRA = install_hint("evals")
COSINE_MODEL = "text-embedding-3-large"
"""The model OpenAI's cosine metric embeds with."""
DEFAULT_THRESHOLDS = {
    "fuzzy_match": 0.8, "bleu": 0.4, "gleu": 0.4, "meteor": 0.5, "cosine": 0.8,
    "rouge_1": 0.5, "rouge_2": 0.4, "rouge_3": 0.3, "rouge_4": 0.2, "rouge_5": 0.1, "rouge_l": 0.5,
}  # fmt: skip
"""OpenAI's grader has no default (its `pass_threshold` is required); ours are usual bars for a close answer."""
BOUNDED = {"fuzzy_match": 50_000, "rouge_l": 100_000, "meteor": 10_000}
"""The metrics whose cost grows with the product of the two lengths, and how many characters of each text
they score (fuzzy_match on 2 MB x 2 MB took 152 s; METEOR aligns word by word in Python). A longer text
is cut there, and the grade's reason says so."""
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_WORD = re.compile(f"[{_CJK}]|[^\\W_{_CJK}]+")


class MetricUnavailable(DistillError):
    """A metric that cannot be computed here (its library or its data is missing): the test errors."""


def text_similarity(output: Any, reference: str | Sequence[str], metric: str = "fuzzy_match", threshold: float | None = None,
                    *, model: Model | str | None = None, name: str = "text_similarity") -> Grade:
    """Passes when the `metric` score (0-1) of the output against the reference is at least `threshold`.

    `metric` is one of OpenAI's: fuzzy_match, bleu, gleu, meteor, cosine, rouge_1 ... rouge_5, rouge_l.
    `threshold` defaults per metric (`DEFAULT_THRESHOLDS`). `model` is the embedding model of
    `cosine` (default text-embedding-3-large). A list of references passes when one of them does.
    `name` names the grade. Scores are kept within [0, 1] (floating point can give BLEU 1.0000000000000004).
    """
    if metric not in DEFAULT_THRESHOLDS:
        raise ValueError(f"text_similarity: unknown metric {metric!r} (use one of {', '.join(DEFAULT_THRESHOLDS)})")
    bar = DEFAULT_THRESHOLDS[metric] if threshold is None else threshold
    if isinstance(bar, bool) or not isinstance(bar, (int, float)) or not 0 <= bar <= 1:
        raise ValueError(f"text_similarity: threshold must be a number from 0 to 1, not {threshold!r}")
    if several(reference):
        return first_passing("text_similarity", reference, lambda one: text_similarity(output, one, metric, threshold,
                                                                                         model=model, name=name))
    if reference is None:
        raise ValueError("text_similarity: reference is None (the case has no reference answer)")
    text, wanted, note = str(output), str(reference), ""
    if metric == "cosine":
        score, embedder = embedded_cosine("text_similarity", text, wanted, COSINE_MODEL if model is None else model, COSINE_MODEL)
        how, args = f"cosine of the {embedder} embeddings", None
    else:
        limit = BOUNDED.get(metric)
        cut = limit is not None and max(len(text), len(wanted)) > limit
        score, how = SCORERS[metric](text[:limit], wanted[:limit]) if cut else SCORERS[metric](text, wanted), metric
        args = {"reference": wanted, "metric": metric, "threshold": bar}
        if cut:
            note = (f" (scored on the first {limit:,} characters of each: the output has {len(text):,}, "
                    f"the reference {len(wanted):,})")
    score = min(1.0, max(0.0, score))
    reason = f"{how} {score:.3f} of the output against the reference{note}"
    return record(Grade(name, score, score >= bar, reason, f"{metric} >= {bar:g}", args=args))


def words(text: str) -> list[str]:
    """Lower-cased words, and each CJK character a word of its own (those scripts put no spaces
    between words): what GLEU, METEOR and ROUGE count. On ASCII text this is rouge-score's own tokenizer."""
    return _WORD.findall(text.lower())


def fuzzy_match(output: str, reference: str) -> float:
    """rapidfuzz's `fuzz.ratio`: 1 minus the Indel distance over the two lengths (1 is identical)."""
    fuzz = _library("rapidfuzz.fuzz", "fuzzy_match")
    return float(fuzz.ratio(output, reference)) / 100


def bleu(output: str, reference: str) -> float:
    """sacrebleu's sentence BLEU (its standard 13a tokenizer and exponential smoothing), as 0-1."""
    sacrebleu = _library("sacrebleu", "bleu")
    return float(sacrebleu.sentence_bleu(output, [reference]).score) / 100


def gleu(output: str, reference: str) -> float:
    """nltk's sentence GLEU (Google BLEU): the smaller of n-gram precision and recall, n = 1 to 4."""
    gleu_score = _library("nltk.translate.gleu_score", "gleu")
    return float(gleu_score.sentence_gleu([words(reference)], words(output)))


def meteor(output: str, reference: str) -> float:
    """nltk's METEOR (exact, stem and WordNet synonym matches); needs nltk's WordNet data."""
    nltk = _library("nltk", "meteor")
    try:
        nltk.data.find("corpora/wordnet")
    except LookupError:
        raise MetricUnavailable(
            "text_similarity: meteor needs nltk's WordNet data, which is not installed here (METEOR matches synonyms "
            "through it; scoring without it would not be METEOR). Fetch it where the network allows with "
            "`python -m nltk.downloader wordnet` (or set NLTK_DATA to a folder that has it), or use another metric"
        ) from None
    meteor_score = _library("nltk.translate.meteor_score", "meteor")
    return float(meteor_score.meteor_score([words(reference)], words(output)))


def rouge_l(output: str, reference: str) -> float:
    """ROUGE-L's F-measure as rouge-score defines it (longest common subsequence of the words, over each
    side's length), with the LCS computed by rapidfuzz's bit-parallel `LCSseq`: rouge-score's own
    table is quadratic in memory (1 MB x 4 KB took 57 s and 1 GB); this is linear and gives the same numbers."""
    lcs = _library("rapidfuzz.distance.LCSseq", "rouge_l")
    produced, wanted = words(output), words(reference)
    common = lcs.similarity(wanted, produced) if produced and wanted else 0
    precision, recall = (common / len(produced), common / len(wanted)) if common else (0.0, 0.0)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def rouge(n: str) -> Callable[[str, str], float]:
    """Google's rouge-score F-measure of ROUGE-`n` (`1`...`5`)."""
    def score(output: str, reference: str) -> float:
        scorer = _library("rouge_score.rouge_scorer", f"rouge_{n.lower()}")
        rouge_type = f"rouge{n}"
        result = scorer.RougeScorer([rouge_type], tokenizer=_Words()).score(reference, output)
        return float(result[rouge_type].fmeasure)
    return score


class _Words:
    """The tokenizer rouge-score is given (its own drops every non-ASCII letter, so Greek or Japanese scored 0)."""

    def tokenize(self, text: str) -> list[str]:
        return words(text)


SCORERS: dict[str, Callable[[str, str], float]] = {
    "fuzzy_match": fuzzy_match, "bleu": bleu, "gleu": gleu, "meteor": meteor,
    **{f"rouge_{n}": rouge(n) for n in ("1", "2", "3", "4", "5")}, "rouge_l": rouge_l,
}


def _library(module: str, metric: str) -> Any:
    """Import a metric's library, or say which extra installs it."""
    import importlib

    try:
        return cast(Any, importlib.import_module(module))
    except ImportError:
        raise MetricUnavailable(f"text_similarity: {metric} needs {module.split('.')[0]}: {EXTRA}") from None
