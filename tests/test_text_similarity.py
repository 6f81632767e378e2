"""`text_similarity`: each of OpenAI's metrics against values computed by hand."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from pytest_distill import MetricUnavailable, Model, text_similarity
from pytest_distill.graders.similarity import DEFAULT_THRESHOLDS, words
from pytest_distill.grades import Scope, scoped
from pytest_distill.sim import SimServer

from .support import requests_to

needs_evals = pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in ("rapidfuzz", "sacrebleu", "nltk", "rouge_score")),
    reason="the metrics need the [evals] extra")

OUTPUT, REFERENCE = "the cat sat on the mat", "the cat sat on a mat"
# By hand, output against reference: 6 words each; matching n-grams (clipped) 5 of 6 unigrams,
# 3 of 5 bigrams, 2 of 4 trigrams, 1 of 3 4-grams, 0 of 2 5-grams; longest common subsequence 5 words.
HAND = {
    "bleu": (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** (1 / 4),  # geometric mean of the 4 precisions, no brevity penalty
    "gleu": (5 + 3 + 2 + 1) / 18,                        # matches over the 18 n-grams (n = 1..4) of either side
    "rouge_1": 5 / 6, "rouge_2": 3 / 5, "rouge_3": 2 / 4, "rouge_4": 1 / 3, "rouge_5": 0.0,
    "rouge_l": 5 / 6,                                    # F-measure of LCS precision 5/6 and recall 5/6
}


@needs_evals
@pytest.mark.parametrize("metric", sorted(HAND))
def test_each_n_gram_metric_scores_as_computed_by_hand(metric: str) -> None:
    grade = text_similarity(OUTPUT, REFERENCE, metric, threshold=0.3)
    assert grade.score == pytest.approx(HAND[metric])
    assert grade.passed == (HAND[metric] >= 0.3)
    assert grade.name == "text_similarity" and grade.threshold == f"{metric} >= 0.3"
    assert grade.reason == f"{metric} {HAND[metric]:.3f} of the output against the reference"


@needs_evals
def test_fuzzy_match_is_one_minus_the_indel_distance_over_both_lengths() -> None:
    # kitten -> sitting: longest common subsequence "ittn" (4), so 6 + 7 - 2 * 4 = 5 insertions and deletions
    grade = text_similarity("kitten", "sitting")
    assert grade.score == pytest.approx(1 - 5 / 13)
    assert not grade.passed and grade.threshold == "fuzzy_match >= 0.8"  # the default bar
    assert text_similarity("Paris", "Paris").score == 1.0


@needs_evals
def test_identical_texts_score_one_on_every_local_metric() -> None:
    for metric in sorted(set(DEFAULT_THRESHOLDS) - {"cosine", "meteor"}):
        assert text_similarity("The capital of France is Paris.", "The capital of France is Paris.", metric).score == \
            pytest.approx(1.0), metric


@needs_evals
def test_rouge_counts_words_of_any_script_and_cjk_characters_one_by_one() -> None:
    assert words("Η Αθήνα, είναι!") == ["η", "αθήνα", "είναι"]
    assert words("東京は2024年") == ["東", "京", "は", "2024", "年"]
    greek = text_similarity("Η Αθήνα είναι η πρωτεύουσα", "η πρωτεύουσα είναι η Αθήνα", "rouge_2")
    assert greek.score == pytest.approx(3 / 4)  # η αθήνα, είναι η, η πρωτεύουσα of 4 bigrams each
    japanese = text_similarity("東京は日本の首都です", "日本の首都は東京です", "rouge_1")
    assert japanese.score == pytest.approx(1.0)  # the same ten characters in another order


@needs_evals
def test_meteor_without_wordnet_data_says_so_instead_of_scoring_without_synonyms(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])  # a data folder without WordNet, as on this machine
    with pytest.raises(MetricUnavailable, match=r"meteor needs nltk's WordNet data.*nltk\.downloader wordnet"):
        text_similarity(OUTPUT, REFERENCE, "meteor")


def test_a_metric_whose_library_is_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sacrebleu", None)  # an import of it now fails, as when it is not installed
    extra = r'install the \[evals\] extra: pip install -e "\./pytest-distill\[evals\]" from a checkout'
    with pytest.raises(MetricUnavailable, match=rf"bleu needs sacrebleu: {extra}"):
        text_similarity(OUTPUT, REFERENCE, "bleu")


@needs_evals
def test_a_list_of_references_records_one_grade_naming_the_match() -> None:
    with scoped(Scope()) as scope:
        grade = text_similarity("the cat sat on the mat", ["a dog ran", REFERENCE], "rouge_1")
    assert grade.passed and scope.grades == [grade]
    assert grade.reason.startswith("reference 2 of 2 ('the cat sat on a mat') matched: rouge_1 0.833")


@pytest.mark.parametrize("arguments, problem", [
    ({"metric": "bleurt"}, "unknown metric 'bleurt'"),
    ({"threshold": 1.5}, "threshold must be a number from 0 to 1"),
])
def test_bad_arguments_are_usage_errors(arguments: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        text_similarity("a", "b", **arguments)  # type: ignore[arg-type]


def test_cosine_embeds_both_texts_with_text_embedding_3_large_in_one_call(sim: SimServer) -> None:
    model = Model("text-embedding-3-large")
    assert text_similarity("Paris is the capital.", "Paris is the capital.", "cosine", model=model).score == pytest.approx(1.0)
    far = text_similarity("Paris is the capital.", "Bananas are yellow.", "cosine", model=model)
    assert not far.passed and far.reason.startswith("cosine of the text-embedding-3-large embeddings ")
    calls = requests_to(sim, "POST", "/embeddings")
    assert len(calls) == 2 and all(call.body["model"] == "text-embedding-3-large" for call in calls)


@needs_evals
def test_an_unavailable_metric_is_an_error_of_the_test_not_a_failure(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(f"""
        import nltk
        from pytest_distill import text_similarity

        def test_meteor():
            nltk.data.path[:] = [{str(tmp_path)!r}]
            assert text_similarity("a b c", "a b c", "meteor")

        def test_rouge():
            assert text_similarity("a b c", "a b d", "rouge_1", threshold=0.9)
    """)
    result = pytester.runpytest("--distill-results", "results.json")
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors") == 1 and outcomes.get("failed") == 1
    cases = {entry["nodeid"].rsplit("::", 1)[-1]: entry for entry in
             json.loads((pytester.path / "results.json").read_text(encoding="utf-8"))["cases"]}
    assert "meteor needs nltk's WordNet data" in cases["test_meteor"]["error"]
    assert cases["test_rouge"]["error"] is None and cases["test_rouge"]["grades"][0]["passed"] is False


@needs_evals
def test_rouge_l_gives_rouge_score_s_own_numbers_in_linear_memory() -> None:
    """ROUGE-L's LCS is computed by rapidfuzz (bit-parallel, linear memory): rouge-score's own table took
    57 s and 1 GB on 1 MB x 4 KB. The numbers are rouge-score's, on any script and on empty texts."""
    from rouge_score import rouge_scorer

    from pytest_distill.graders.similarity import _Words

    pairs = [(OUTPUT, REFERENCE), ("東京は日本の首都です", "日本の首都は東京です"), ("a b c d e", "e d c b a"),
             ("", "anything"), ("only words here", ""), ("the the the cat", "the cat the the"),
             ("Η Αθήνα είναι η πρωτεύουσα", "η πρωτεύουσα είναι η Αθήνα")]
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Words())
    for output, reference in pairs:
        expected = scorer.score(reference, output)["rougeL"].fmeasure
        assert text_similarity(output, reference, "rouge_l").score == pytest.approx(expected), (output, reference)


@needs_evals
@pytest.mark.parametrize(("metric", "limit"), [("fuzzy_match", 50_000), ("rouge_l", 100_000)])
def test_a_metric_that_costs_the_product_of_both_lengths_scores_a_bounded_prefix_and_says_so(metric: str, limit: int) -> None:
    """fuzzy_match on 2 MB x 2 MB took 152 s: each text is scored on its first `limit` characters, and
    the grade's reason says how much there was."""
    output = "the cat sat on the mat and looked around " * 50_000
    reference = "a dog lay on the rug and looked outside " * 50_000
    grade = text_similarity(output, reference, metric, threshold=0.0)
    assert grade.score == pytest.approx(text_similarity(output[:limit], reference[:limit], metric, threshold=0.0).score)
    assert grade.reason.endswith(f"(scored on the first {limit:,} characters of each: the output has {len(output):,}, "
                                 f"the reference {len(reference):,})")
    short = text_similarity(output[:limit], reference[:limit], metric)
    assert "scored on the first" not in short.reason
