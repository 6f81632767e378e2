"""The same work with pytest-distill: the test body users write, plus the marker that starts the judge early."""

import pytest

from pytest_distill import factuality


@pytest.mark.distill_dataset("cases.jsonl")
@pytest.mark.distill_grade("factuality")
def test_answer(case, model):
    assert factuality(model.complete(case), case.expected)
