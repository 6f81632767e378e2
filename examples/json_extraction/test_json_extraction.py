"""Order extraction: the model turns a customer e-mail into JSON for the order system.

The shape is checked without a model (valid JSON, valid against the schema); whether the right
products were extracted is checked by the judge against the teacher's extraction.
"""

import json
from pathlib import Path

import pytest

from pytest_distill import factuality, matches_schema, valid_json

SCHEMA = Path(__file__).parent / "data" / "order.schema.json"

pytestmark = pytest.mark.distill_dataset("stored:app=json_extraction,split=test")


def items(extraction: str) -> str:
    """The `items` field in words, e.g. "2 x phone case, 1 x screen protector"."""
    return ", ".join(f"{item['quantity']} x {item['name']}" for item in json.loads(extraction)["items"])


def test_extraction_is_an_order_with_the_right_items(case, model):
    answer = model.complete(case).text
    assert valid_json(answer)
    assert matches_schema(answer, SCHEMA)
    assert factuality(items(answer), items(case.expected), question="Which products, and how many of each, is the e-mail about?")
