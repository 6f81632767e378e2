"""--distill-balance KEY in real sessions against the simulator: the train and test distributions side
by side, rare and unseen values, every model's pass rate per value."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_distill.sim import SimServer

from .support import qa_rows, write_jsonl

SUITE = """
import pytest
from pytest_distill import string_check

@pytest.mark.distill_dataset("cases.jsonl")
def test_reply(case, model):
    string_check(model.complete(case), case.expected)
"""


def tagged(rows: list[dict[str, Any]], intent: str) -> list[dict[str, Any]]:
    for row in rows:
        row["metadata"]["intent"] = intent
    return rows


def start(pytester: pytest.Pytester, make_sim: Callable[..., SimServer], *more: Path) -> SimServer:
    """Training: 120 billing, 79 refund, 1 legal (0.5%: rare). Tests: 4 billing and 2 refund the teacher
    knows (one refund reference nobody gives: 50%), 3 shipping nobody seeded (0%, and unseen in training).
    `more` files are seeded into the simulator too."""
    train = (tagged(qa_rows(120, "train", "b"), "billing") + tagged(qa_rows(79, "train", "r"), "refund")
             + tagged(qa_rows(1, "train", "l"), "legal"))
    write_jsonl(pytester.path / "train.jsonl", train)
    known = tagged(qa_rows(4, "test", "qb"), "billing") + tagged(qa_rows(2, "test", "qr"), "refund")
    cases = [*known, *tagged(qa_rows(3, "test", "qs"), "shipping")]
    for row in cases:
        row["id"] = f"case-{row['id']}"
    seed = write_jsonl(pytester.path / "seed.jsonl", json.loads(json.dumps(known)))
    cases[5]["messages"][-1]["content"] = "A reference that nobody gives."
    write_jsonl(pytester.path / "cases.jsonl", cases)
    pytester.makepyfile(test_suite=SUITE)
    return make_sim(seed=[seed, *more])


EXPECTED = {
    "billing": {"train": 120, "test": 4, "gpt-4o": 1.0},
    "refund": {"train": 79, "test": 2, "gpt-4o": 0.5},
    "legal": {"train": 1, "test": 0, "rare": True},
    "shipping": {"train": 0, "test": 3, "gpt-4o": 0.0, "unseen": True},
}


def test_balance_counts_both_splits_flags_rare_and_unseen_and_rates_each_value(
        pytester: pytest.Pytester, make_sim: Callable[..., SimServer]) -> None:
    start(pytester, make_sim)
    result = pytester.runpytest("--model", "gpt-4o", "--distill-train", "train.jsonl", "--distill-balance", "intent",
                                "--distill-results", "out.json")
    assert json.loads((pytester.path / "out.json").read_text(encoding="utf-8"))["balance"] == {"intent": EXPECTED}
    result.stdout.fnmatch_lines([
        "*distill balance by intent*",
        "intent*train*test*gpt-4o*",
        "billing*120 (60%)*4 (44%)*100%",
        "refund*79 (40%)*2 (22%)*50%",
        "legal*1 (0%)*0 (0%)*-*rare",
        "shipping*0 (0%)*3 (33%)*0%*unseen",
        "rare in training (< 1% of it): legal",
        "in the test split but never in training (unseen): shipping",
        "gpt-4o is weakest on intent=shipping (0%)",
    ])


def test_balance_against_another_dataset_and_by_length_bucket(pytester: pytest.Pytester,
                                                                make_sim: Callable[..., SimServer]) -> None:
    start(pytester, make_sim)
    traffic = tagged(qa_rows(5, "live", "x"), "shipping") + tagged(qa_rows(5, "live", "y"), "billing")
    write_jsonl(pytester.path / "traffic.jsonl", traffic)
    pytester.runpytest("--model", "gpt-4o", "--distill-train", "train.jsonl", "--distill-balance", "intent",
                       "--distill-balance-against", "traffic.jsonl", "--distill-results", "out.json")
    balance = json.loads((pytester.path / "out.json").read_text(encoding="utf-8"))["balance"]["intent"]
    assert {value: (row["train"], row["test"], row["against"], "unseen" in row) for value, row in balance.items()} == {
        "billing": (120, 4, 5, False), "refund": (79, 2, 0, False), "legal": (1, 0, 0, False),
        "shipping": (0, 3, 5, True)}
    pytester.runpytest("--model", "gpt-4o", "--distill-train", "train.jsonl", "--distill-balance", "length",
                       "--distill-results", "length.json")
    by_length = json.loads((pytester.path / "length.json").read_text(encoding="utf-8"))["balance"]["length"]
    assert by_length == {"short (< 200 chars)": {"train": 200, "test": 9, "gpt-4o": 5 / 9}}


def test_balance_values_are_escaped_in_the_html_and_a_missing_dataset_is_said(
        pytester: pytest.Pytester, make_sim: Callable[..., SimServer]) -> None:
    start(pytester, make_sim)
    hostile = tagged(qa_rows(2, "train", "h"), "<script>alert(1)</script>")
    write_jsonl(pytester.path / "train.jsonl", hostile)
    result = pytester.runpytest("--model", "gpt-4o", "--distill-train", "train.jsonl", "--distill-balance", "intent",
                                "--html", "report.html")
    page = (pytester.path / "report.html").read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Balance by intent" in page
    assert result.ret == 0
    missing = pytester.runpytest("--model", "gpt-4o", "--distill-train", "nowhere.jsonl", "--distill-balance", "intent")
    missing.stdout.fnmatch_lines(["distill: no balance by 'intent': *nowhere.jsonl*"])
    refused = pytester.runpytest("--distill-balance-against", "traffic.jsonl")
    refused.stderr.fnmatch_lines(["*--distill-balance-against needs --distill-balance KEY*"])
