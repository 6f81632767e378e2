"""The pure parts of the reports: prices, the summary table's cells, repeats, node ids less a parameter."""

from __future__ import annotations

import pytest

from pytest_distill.errors import ConfigError
from pytest_distill.grades import Grade
from pytest_distill.ledger import Entry, summarize, verdict_changes, without_param, without_repeat
from pytest_distill.report import table
from pytest_distill.report.agreement import cohen_kappa
from pytest_distill.report.baseline import unlike_runs
from pytest_distill.report.cost import Price, PriceTable


@pytest.mark.parametrize("name, alias", [
    ("gpt-4o-mini", "gpt-4o-mini"),
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "ft:gpt-4o-mini"),
    ("ft:gpt-4o-2024-08-06:acme:support:xyz", "ft:gpt-4o"),
])
def test_snapshots_are_priced_like_their_alias_and_fine_tunes_at_the_fine_tuned_rate(name: str, alias: str) -> None:
    prices = PriceTable.with_defaults("")
    assert prices.price(name) == prices.price(alias) is not None


@pytest.mark.parametrize("base, price", [
    ("gpt-4o-mini", Price(0.30, 1.20)), ("gpt-4o", Price(3.75, 15.00)), ("gpt-4.1", Price(3.00, 12.00)),
    ("gpt-4.1-mini", Price(0.80, 3.20)), ("gpt-4.1-nano", Price(0.20, 0.80)),
])
def test_a_fine_tuned_model_costs_what_openai_bills_for_fine_tunes_not_its_base_price(base: str, price: Price) -> None:
    prices = PriceTable.with_defaults("")
    assert prices.price(f"ft:{base}:acme::abc123") == price != prices.price(base)


def test_an_unknown_model_has_no_price_and_so_no_cost() -> None:
    prices = PriceTable.with_defaults("")
    assert prices.price("hf:Qwen/Qwen2.5-0.5B-Instruct") is None
    assert prices.per_1000_cases("llama3", 1000, 1000, 10) is None


def test_ini_lines_add_to_and_override_the_defaults() -> None:
    prices = PriceTable.with_defaults("# our deployment\ngpt-4o-mini 1.0 2.0\nft:gpt-4o-mini 0.30 1.20  # fine-tuned rate\nllama3 0 0\n")
    assert prices.price("gpt-4o-mini") == Price(1.0, 2.0)
    assert prices.price("ft:gpt-4o-mini-2024-07-18:acme::x") == Price(0.30, 1.20)
    assert prices.price("llama3") == Price(0.0, 0.0)
    assert prices.price("gpt-4o") == Price(2.50, 10.00)
    assert prices.per_1000_cases("gpt-4o-mini", 2_000_000, 1_000_000, 1000) == pytest.approx(4.0)


@pytest.mark.parametrize("text", ["gpt-4o 2.5", "gpt-4o two 10", "gpt-4o 2.5 -1"])
def test_a_bad_price_line_is_a_config_error_naming_the_line(text: str) -> None:
    with pytest.raises(ConfigError, match=r"ini distill_prices line 2: .*gpt-4o"):
        PriceTable.parse(f"gpt-4o-mini 0.15 0.60\n{text}")


def test_the_cost_note_says_how_much_cheaper_the_student_is_than_the_teacher() -> None:
    notes = table.cost_notes({"gpt-4o": 1.50, "gpt-4o-mini": 0.09, "llama3": None}, teacher="gpt-4o")
    assert notes == ["cost: gpt-4o-mini costs 1/17 of the teacher gpt-4o per case ($0.0900 vs $1.50 per 1,000 cases)"]
    assert table.cost_notes({"a": 1.0, "b": 2.0}, teacher="gpt-4o") == [
        "cost: a costs 1/2.0 of b per case ($1.00 vs $2.00 per 1,000 cases)"]
    assert table.cost_notes({"gpt-4o-mini": 0.09}, teacher="gpt-4o") == []


def test_a_model_priced_at_zero_still_gets_its_cost_line() -> None:
    assert table.cost_notes({"gpt-4o": 1.50, "local:llama3": 0.0}, teacher="gpt-4o") == [
        "cost: local:llama3 costs nothing per token against the teacher gpt-4o ($1.50 per 1,000 cases)"]
    assert table.cost_notes({"gpt-4o": 0.0, "local:llama3": 0.0}, teacher="gpt-4o") == []
    prices = PriceTable.with_defaults("local:llama3 0 0")
    assert prices.per_1000_cases("local:llama3", 500, 50, 5) == 0.0 and prices.price("local:gpt-4o") is None


def test_the_student_prompts_saving_is_averaged_over_the_cases_it_answered() -> None:
    from pytest_distill.ledger import ModelStats

    teacher = ModelStats("gpt-4o", 4, 4, 0, {}, 400, 40, (), answered=4)
    student = ModelStats("s", 2, 1, 2, {}, 60, 20, (), answered=2)  # two cases errored before any answer
    assert table.prompt_notes({"gpt-4o": teacher, "s": student}, "gpt-4o") == [
        "prompt: s reads 30 input tokens per case, the teacher gpt-4o 100: --distill-student-system saves 70 per call"]


def _entry(nodeid: str, model: str, passed: bool, sample: int = 0, outcome: str = "passed") -> Entry:
    grade = Grade("string_check", float(passed), passed, "why")
    return Entry(nodeid=nodeid, model=model, grades=[grade], outcome=outcome, sample=sample,
                 usage={"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}, latency_s=0.5)


def test_the_table_has_a_row_per_model_with_rates_tokens_latency_and_cost() -> None:
    entries = [_entry("t.py::t[a-gpt-4o-mini]", "gpt-4o-mini", True), _entry("t.py::t[b-gpt-4o-mini]", "gpt-4o-mini", False),
               _entry("t.py::t[c-gpt-4o-mini]", "gpt-4o-mini", False, outcome="error"),
               _entry("t.py::t[a-local]", "local", True)]
    summary = table.build(summarize(entries), verdict_changes(entries), PriceTable.with_defaults(""), "gpt-4o")
    assert summary.header == ["model", "pass rate", "cases", "errors", "string_check rate/mean/n",
                              "tokens in/out", "latency p50/p95", "cost/1k cases"]
    assert summary.rows == [
        ["gpt-4o-mini", "50% [9–91]", "2", "1", "50% [9–91] / 0.50 / 2", "300 / 30", "0.50s / 0.50s", "$0.0210"],
        ["local", "100% [20–100]", "1", "0", "100% [20–100] / 1.00 / 1", "100 / 10", "0.50s / 0.50s", "-"],
    ]


def test_repeats_count_the_cases_whose_verdict_changed() -> None:
    entries = [_entry(f"t.py::t[{case}-m-rep{rep}]", "m", passed, sample=rep)
               for case, verdicts in {"a": (True, True, True), "b": (True, False, True), "c": (False, False, False)}.items()
               for rep, passed in enumerate(verdicts)]
    entries.append(_entry("t.py::t[d-m-rep0]", "m", True, outcome="error"))
    changes = verdict_changes(entries)
    assert (changes["m"].cases, changes["m"].changed) == (3, 1)
    summary = table.build(summarize(entries), changes, PriceTable.with_defaults(""), "gpt-4o")
    assert summary.rows[0][summary.header.index("verdict changed")] == "33% of 3"
    assert verdict_changes([_entry("t.py::t[a-m]", "m", True)]) == {}


@pytest.mark.parametrize("nodeid, param, expected", [
    ("t.py::test[c1-gpt-4o-rep0]", "gpt-4o", "t.py::test[c1-rep0]"),
    ("t.py::test[c1-gpt-4o]", "gpt-4o", "t.py::test[c1]"),
    ("t.py::test[gpt-4o-c1]", "gpt-4o", "t.py::test[c1]"),
    ("t.py::test[gpt-4o]", "gpt-4o", "t.py::test"),
    ("t.py::test[c1-gpt-4o-gpt-4o-rep0]", "gpt-4o", "t.py::test[c1-gpt-4o-rep0]"),
    ("t.py::test[c1-gpt-4o-mini]", "gpt-4o-mini", "t.py::test[c1]"),
    ("t.py::test[c1-gpt-4o-rep2]", "rep2", "t.py::test[c1-gpt-4o]"),
    ("t.py::test", "gpt-4o", "t.py::test"),
])
def test_a_node_id_less_one_parameter(nodeid: str, param: str, expected: str) -> None:
    assert without_param(nodeid, param) == expected


def test_repeats_give_pass_every_time_pass_at_least_once_and_the_flaky_case_ids() -> None:
    entries = [_entry(f"t.py::t[{case}-m-rep{rep}]", "m", passed, sample=rep)
               for case, verdicts in {"a": (True, True, True), "b": (True, False, True), "c": (False, False, False),
                                      "d": (False, True, False)}.items()
               for rep, passed in enumerate(verdicts)]
    for entry in entries:
        entry.case_id = entry.nodeid[8]
    repeats = verdict_changes(entries)["m"]
    assert (repeats.n, repeats.cases, repeats.pass_all, repeats.pass_any) == (3, 4, 0.25, 0.75)
    assert repeats.to_dict() == {"n": 3, "pass^3": 0.25, "pass@3": 0.75, "flaky": ["b", "d"],
                                 "ci95": {"pass^3": [0.0456, 0.6994], "pass@3": [0.3006, 0.9544]}}
    summary = table.build(summarize(entries), {"m": repeats}, PriceTable.with_defaults(""), "gpt-4o")
    cells = dict(zip(summary.header, summary.rows[0], strict=True))
    assert (cells["pass^3"], cells["pass@3"], cells["verdict changed"]) == ("25% [4–70]", "75% [30–96]", "50% of 4")
    assert "flaky: m 2 cases: b, d" in summary.notes


def test_a_repeat_id_is_taken_off_a_node_id_only_where_it_is_the_last_parameter() -> None:
    assert without_repeat("t.py::test[c1-gpt-4o-rep12]") == "t.py::test[c1-gpt-4o]"
    assert without_repeat("t.py::test[rep1]") == "t.py::test"
    assert without_repeat("t.py::test[rep1-c1]") == "t.py::test[rep1-c1]"
    assert without_repeat("t.py::test") == "t.py::test"


def test_cohens_kappa_discounts_the_agreement_of_chance() -> None:
    # 8 of 10 alike; each side passes 7 of 10: chance agreement .7*.7 + .3*.3 = .58, kappa (.8-.58)/(1-.58)
    human = [True] * 6 + [False, True, False, False]
    judge = [True] * 7 + [False, False, False]
    assert cohen_kappa(list(zip(human, judge, strict=True))) == pytest.approx(0.22 / 0.42)
    assert cohen_kappa([(True, True)] * 5) is None
    assert cohen_kappa([]) is None
    assert cohen_kappa([(True, False), (False, True)]) == pytest.approx(-1.0)


def test_runs_served_differently_or_on_other_data_are_said_to_differ() -> None:
    sim = {"run": {"simulator": True, "datasets": ["stored:split=test"]}}
    real = {"run": {"simulator": False, "datasets": ["stored:split=test", "extra.jsonl"]}}
    assert unlike_runs(real, sim) == [
        "note: the baseline was served by a real API and this run by the offline simulator: the simulator's "
        "scores measure wiring, not model quality",
        "note: the dataset specs differ: the baseline ran stored:split=test, extra.jsonl, this run stored:split=test"]
    assert unlike_runs(sim, sim) == []
    assert unlike_runs({}, sim) == [] and unlike_runs({"run": "odd"}, {"run": {"simulator": 1}}) == []
