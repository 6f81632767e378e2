"""Judged training data: each test question rewords a training question; the teacher shrugs on a
quarter of its training answers and on three test questions about other things, and the suite's own
model-graded check finds the shrugs.

`pytest --distill-sim --distill --distill-filter judged --distill-teacher-min 0.7` replays the
`criteria_match` below on every training answer (same prompt, same judge) and leaves the four shrugs
out of the training file; without the filter (or with the bare `--distill-filter`, deterministic checks
only) they are trained on. The test grades without asserting: the teacher is meant to fail some test
questions, and the pass rates (the summary, the gate, the results file) are measured from the grades
while the session stays green. The answers are one sentence: 64 tokens are room enough.
"""

import pytest

from pytest_distill import criteria_match, factuality


@pytest.mark.distill_dataset("data/facts-test.jsonl")
def test_fact(case, model):
    answer = model.complete(case, max_tokens=64)
    criteria_match(answer, "The answer states a fact")
    factuality(answer, case.expected)
