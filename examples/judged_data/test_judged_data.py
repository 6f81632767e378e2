"""Judged training data: the teacher is wrong on a quarter of its training answers, and the suite's own
model-graded check finds them.

`pytest --distill-sim --distill-dry-run --distill-filter judged --distill-teacher-min 0.7` replays the
`criteria_match` below on every training answer (same prompt, same judge) and leaves the four shrugs
out of the training file; the bare `--distill-filter` (deterministic checks only) keeps them.
The test grades without asserting: the teacher is meant to fail a quarter of the test questions, and
the pass rates (the summary, the gate) are measured from the grades while the session stays green.
"""

import pytest

from pytest_distill import criteria_match, factuality


@pytest.mark.distill_dataset("data/facts-test.jsonl")
def test_fact(case, model):
    answer = model.complete(case)
    criteria_match(answer, "The answer states a fact")
    factuality(answer, case.expected)
