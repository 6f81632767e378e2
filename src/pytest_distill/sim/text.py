"""Text measures shared by the simulated models, the judge and the embeddings.

Deterministic and tokenizer-free on purpose: words for text written with spaces, character
bigrams for text written without (Japanese, Chinese), so both behave alike with no model.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")

# Function words carry no content: without this list "The capital of France is Paris" and
# "The capital of Japan is Tokyo" would look two-thirds alike. Negations are left out of it
# on purpose, so that "not Paris" does not read as "Paris".
STOP_WORDS = frozenset(
    """a an the is are was were be been being am of to in on at by for with and or but if it its
    this that these those as from into than then so such do does did has have had i you he she
    we they me him her us them my your his our their what which who whom whose when where why
    how there here can could will would shall should may might must also just very""".split()
)


def normalize(text: str) -> str:
    """NFKC (full-width to half-width), case-folded, punctuation and symbols as spaces."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    spaced = "".join(" " if unicodedata.category(char)[0] in "PSZC" else char for char in folded)
    return " ".join(spaced.split())


def has_cjk(text: str) -> bool:
    """Whether the text is (partly) written without spaces between words."""
    return _CJK.search(text) is not None


def units(text: str, *, cjk: bool) -> list[str]:
    """What two texts are compared by: content words, or character bigrams without spaces."""
    norm = normalize(text)
    if cjk:
        joined = norm.replace(" ", "")
        return [joined[i : i + 2] for i in range(len(joined) - 1)] or ([joined] if joined else [])
    words = norm.split()
    return [word for word in words if word not in STOP_WORDS] or words


@dataclass(frozen=True)
class Overlap:
    """How an output and a reference share units.

    `dice` is symmetric, `recall` the share of the reference found in the output, `precision`
    the share of the output found in the reference; `unit` names what was counted.
    """

    dice: float
    recall: float
    precision: float
    unit: str

    @property
    def similarity(self) -> float:
        """The larger of the Dice overlap and 0.9 x recall.

        An output that contains the whole reference plus explanation ("The capital of France is
        Paris." for "Paris") is as good as a close paraphrase, though its Dice overlap is low.
        """
        return max(self.dice, 0.9 * self.recall)


def overlap(output: str, reference: str) -> Overlap:
    """Compare two texts by multiset overlap of `units`; character bigrams if either has CJK."""
    cjk = has_cjk(output) or has_cjk(reference)
    unit = "character-bigram" if cjk else "word"
    out, ref = Counter(units(output, cjk=cjk)), Counter(units(reference, cjk=cjk))
    n_out, n_ref = sum(out.values()), sum(ref.values())
    if not n_out or not n_ref:
        same = 1.0 if n_out == n_ref else 0.0
        return Overlap(same, same, same, unit)
    common = sum((out & ref).values())
    return Overlap(2 * common / (n_out + n_ref), common / n_ref, common / n_out, unit)


def char_ngrams(text: str, n: int = 3) -> Counter[str]:
    """Character n-grams of the normalised text, padded so that short words count too."""
    padded = f" {normalize(text)} "
    return Counter(padded[i : i + n] for i in range(max(1, len(padded) - n + 1)))


def cosine(a: Counter[str], b: Counter[str]) -> float:
    """Cosine similarity of two sparse count vectors."""
    dot = sum(count * b[gram] for gram, count in a.items() if gram in b)
    norms = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))
    return dot / norms if norms else 0.0


def count_tokens(text: str) -> int:
    """About four UTF-8 bytes a token, the usual rule of thumb for OpenAI's tokenizers."""
    return math.ceil(len(text.encode()) / 4)


def truncate_tokens(text: str, max_tokens: int) -> str:
    """The longest prefix of `text` that `count_tokens` counts as at most `max_tokens`."""
    budget, size = 4 * max_tokens, 0
    for index, char in enumerate(text):
        size += len(char.encode())
        if size > budget:
            return text[:index]
    return text


def stable_fraction(text: str, salt: str = "") -> float:
    """A number in [0, 1) fixed by the text alone (sha256, unlike `hash()`, is not salted per run)."""
    digest = hashlib.sha256(f"{salt}\x1f{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
