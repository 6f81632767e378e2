"""Quick replies: the model suggests a short answer to the last message of an e-mail thread.

There is no single right reply, so the judge checks the criteria that any good one meets, and how
well it is written.
"""

import pytest

from pytest_distill import criteria_match, text_quality

pytestmark = pytest.mark.distill_dataset("stored:app=quick_reply,split=test")


def test_reply_answers_the_last_sender(case, model):
    reply = model.complete(case)
    assert criteria_match(reply, "replies to the last sender of the thread")
    assert text_quality(reply)
