"""Hobannu, a made-up sport: questions about its rules in Japanese, answered by the model under test.

The teacher's stored answers (`stored:app=hobannu,split=test`) are the reference, and the judge
decides whether each answer states the same facts, whatever its wording.
"""

import pytest

from pytest_distill import factuality


@pytest.mark.distill_dataset("stored:app=hobannu,split=test")
def test_answer_states_the_rules_correctly(case, model):
    answer = model.complete(case)
    assert factuality(answer, case.expected)
