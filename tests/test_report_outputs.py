"""The reports of real sessions against the simulator: terminal table, results JSON, HTML, JUnit."""

from __future__ import annotations

import html
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import openai
import pytest

from pytest_distill.report.cost import PriceTable
from pytest_distill.sim import SimServer

from .sim.data import wait_for_job
from .support import TEST_KEY, qa_rows, requests_to, write_jsonl

GRADED_SUITE = """
import pytest
from pytest_distill import string_check

@pytest.mark.distill_dataset("{spec}")
def test_reply(case, model):
    assert string_check(model.complete(case), case.expected)
"""
BOTH = ("--model", "gpt-4o", "--model", "gpt-4o-mini")


def table_rows(output: str) -> dict[str, dict[str, str]]:
    """The distill summary table of a run's output: {model: {column: cell}}, its blocks (a table wider
    than the terminal is cut into blocks of columns, each led by the model) put back together."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if "distill summary" in line) + 1
    rows: dict[str, dict[str, str]] = {}
    header: list[str] = []
    for line in lines[start:]:
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] == "model":
            header = cells
        elif header and len(cells) == len(header):
            rows.setdefault(cells[0], {}).update(zip(header, cells, strict=True))
        elif line.strip():
            break
    return rows


def read_results(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_tables_numbers_are_the_counts_of_the_results_file(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(GRADED_SUITE.format(spec="stored:split=test"))
    result = pytester.runpytest(*BOTH, "--distill-results", "out/nested/results.json")
    results = read_results(pytester.path / "out" / "nested" / "results.json")
    assert results["version"] == 1 and results["distill"] == {}
    assert len(results["cases"]) == 24
    assert set(results["cases"][0]) == {"nodeid", "case_id", "model", "output", "grades", "usage", "latency_s", "error", "outcome",
                                        "sample", "dataset", "judging"}
    rows = table_rows(result.stdout.str())
    assert list(rows) == ["gpt-4o", "gpt-4o-mini"]
    for model, row in rows.items():
        records = [r for r in results["cases"] if r["model"] == model]
        passed = sum(all(g["passed"] for g in r["grades"]) for r in records)
        assert row["pass rate"].startswith(f"{passed / len(records):.0%} [") and row["cases"] == str(len(records))
        assert row["errors"] == "0"
        grader = results["summary"][model]["string_check"]
        low, high = grader.pop("ci95")
        assert grader == {"pass_rate": passed / len(records), "mean_score": passed / len(records), "n": len(records)}
        assert low <= grader["pass_rate"] <= high
        assert row["string_check rate/mean/n"] == (f"{grader['pass_rate']:.0%} [{math.floor(low * 100)}–{math.ceil(high * 100)}]"
                                                    f" / {grader['mean_score']:.2f} / {grader['n']}")
        tokens = [sum(r["usage"][key] for r in records) for key in ("prompt_tokens", "completion_tokens")]
        assert row["tokens in/out"] == f"{tokens[0]:,} / {tokens[1]:,}"
    assert rows["gpt-4o"]["pass rate"].startswith("100% [") and not rows["gpt-4o-mini"]["pass rate"].startswith("100%")
    result.stdout.fnmatch_lines(["distill: results written to out/nested/results.json"])


def test_the_cost_line_shows_the_student_cheaper_than_the_teacher(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(GRADED_SUITE.format(spec="stored:split=test"))
    result = pytester.runpytest(*BOTH, "--distill-results", "results.json")
    prices = PriceTable.with_defaults("")
    per_case = {}
    for model in ("gpt-4o", "gpt-4o-mini"):
        records = [r for r in read_results(pytester.path / "results.json")["cases"] if r["model"] == model]
        tokens = [sum(r["usage"][key] for r in records) for key in ("prompt_tokens", "completion_tokens")]
        per_case[model] = prices.per_1000_cases(model, *tokens, len(records))
    ratio = per_case["gpt-4o"] / per_case["gpt-4o-mini"]
    assert ratio > 10
    result.stdout.fnmatch_lines([f"cost: gpt-4o-mini costs 1/{ratio:.0f} of the teacher gpt-4o per case*"])
    assert table_rows(result.stdout.str())["gpt-4o-mini"]["cost/1k cases"] == f"${per_case['gpt-4o-mini']:.4f}"


def test_the_ini_price_table_wins_and_a_snapshot_is_priced_like_its_alias(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makeini("[pytest]\ndistill_prices =\n    gpt-4o-mini 1.00 1.00\n")
    pytester.makepyfile(GRADED_SUITE.format(spec="stored:split=test"))
    result = pytester.runpytest("--model", "gpt-4o-mini", "--model", "gpt-4o-2024-11-20")
    rows = table_rows(result.stdout.str())
    tokens = {model: [int(n.replace(",", "")) for n in row["tokens in/out"].split(" / ")] for model, row in rows.items()}
    assert rows["gpt-4o-mini"]["cost/1k cases"] == f"${1000 * sum(tokens['gpt-4o-mini']) / 1e6 / 12:.4f}"
    snapshot = (tokens["gpt-4o-2024-11-20"][0] * 2.50 + tokens["gpt-4o-2024-11-20"][1] * 10.00) / 1e6 / 12 * 1000
    assert rows["gpt-4o-2024-11-20"]["cost/1k cases"] == f"${snapshot:.4f}"


def test_xdist_gives_the_same_numbers_records_and_baseline_verdict_as_a_serial_run(
        pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(GRADED_SUITE.format(spec="stored:split=test").replace("    assert string_check", "    string_check"))
    serial = pytester.runpytest(*BOTH, "--distill-results", "serial.json")
    better = read_results(pytester.path / "serial.json")
    for record in better["cases"]:
        record["grades"][0]["passed"] = True
    (pytester.path / "better.json").write_text(json.dumps(better), encoding="utf-8")
    spread = pytester.runpytest(*BOTH, "-n", "2", "--distill-results", "spread.json", "--html", "spread.html",
                                "--distill-baseline", "better.json")
    assert serial.ret == pytest.ExitCode.OK and spread.ret == pytest.ExitCode.TESTS_FAILED
    spread.stdout.fnmatch_lines(["distill: REGRESSION against the baseline better.json (tolerance 0%): "
                                 "gpt-4o-mini string_check 100% -> *"])
    runs = [read_results(pytester.path / name) for name in ("serial.json", "spread.json")]
    assert runs[0]["summary"] == runs[1]["summary"]
    without_latency = [[{k: v for k, v in r.items() if k != "latency_s"} for r in run["cases"]] for run in runs]
    assert without_latency[0] == without_latency[1]
    tables = [{model: {k: v for k, v in row.items() if k != "latency p50/p95"} for model, row in table_rows(run.stdout.str()).items()}
              for run in (serial, spread)]
    assert tables[0] == tables[1]
    assert len(html_data(pytester.path / "spread.html")["tests"]) == 24


def html_data(path: Path) -> dict[str, Any]:
    """What the report's script renders: the JSON blob pytest-html keeps in an HTML attribute."""
    blob = re.search(r'data-jsonblob="([^"]*)"', path.read_text(encoding="utf-8"))
    assert blob is not None
    return json.loads(html.unescape(blob.group(1)))


JUDGED_SUITE = """
import pytest
from pytest_distill import factuality

@pytest.mark.distill_dataset("stored:split=test")
@pytest.mark.distill_grade("factuality")
def test_reply(case, model):
    assert factuality(model.complete(case), case.expected)
"""


def test_the_summary_counts_what_judging_took_once_per_distinct_judge_call(
        pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(JUDGED_SUITE)
    result = pytester.runpytest(*BOTH)
    judge_calls = [r for r in requests_to(sim, "POST", "/chat/completions") if r.body.get("response_format")]
    assert len(judge_calls) < 24, "a right student answer asks the judge what the teacher's did"
    line = next(line for line in result.stdout.lines if line.startswith("judging: "))
    match = re.fullmatch(rf"judging: gpt-4o took {len(judge_calls)} calls, ([\d,]+) / ([\d,]+) tokens in/out, "
                         r"\$(\d+\.\d+)", line)
    assert match, line
    tokens = [int(group.replace(",", "")) for group in match.groups()[:2]]
    cost = PriceTable.with_defaults("").price("gpt-4o").cost(*tokens)
    assert tokens[0] > len(judge_calls) * 100 and match.group(3) == f"{cost:.4f}"
    under_xdist = pytester.runpytest(*BOTH, "-n", "2")
    under_xdist.stdout.fnmatch_lines([line])
    pytester.runpytest(*BOTH, "--distill-cache")
    from_cache = pytester.runpytest(*BOTH, "--distill-cache")
    from_cache.stdout.no_fnmatch_line("judging: *")


def test_the_html_report_shows_each_case_with_model_text_escaped(
        pytester: pytest.Pytester, make_sim, tmp_path: Path) -> None:
    rows = qa_rows(3)
    rows[1]["messages"] = [{"role": "user", "content": "Say <img src=x onerror=alert(2)>"},
                           {"role": "assistant", "content": "Sure: <script>alert(1)</script>"}]
    make_sim(seed=[write_jsonl(tmp_path / "cases.jsonl", rows)])
    pytester.makepyfile(GRADED_SUITE.format(spec="stored"))
    result = pytester.runpytest("--model", "gpt-4o", "--html", "reports/report.html")
    result.assert_outcomes(passed=3)
    report = pytester.path / "reports" / "report.html"
    raw = report.read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in raw and "<img src=x" not in raw
    tests = html_data(report)["tests"]
    assert len(tests) == 3
    shown = []
    for (row,) in tests.values():
        extra = "".join(e["content"] for e in row["extras"] if e["format_type"] == "html")
        assert "<h4>Input</h4>" in extra and "Output of gpt-4o" in extra and "string_check" in extra
        assert "<h4>Reference</h4>" in extra
        assert '<td class="col-model">gpt-4o</td>' in row["resultsTableRow"]
        shown.append(extra + "".join(row["resultsTableRow"]) + row["log"])
    text = "".join(shown)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;img src=x onerror=alert(2)&gt;" in text
    assert "<script>" not in text and "<img" not in text
    assert "Distill summary" in raw and "string_check rate/mean/n" in raw


def test_a_failing_row_of_the_html_report_says_its_verdict_once(pytester: pytest.Pytester, make_sim, tmp_path: Path) -> None:
    """The failed grade and its reason are in the row's log; the details table holds the grades that passed."""
    make_sim(seed=[write_jsonl(tmp_path / "cases.jsonl", qa_rows(1))])
    pytester.makepyfile("""
        import pytest
        from pytest_distill import string_check

        @pytest.mark.distill_dataset("stored")
        def test_reply(case, model):
            answer = model.complete(case)
            assert string_check(answer, "Item", "like", name="mentions_item")
            assert string_check(answer, "nothing like it", name="exact")
    """)
    result = pytester.runpytest("--model", "gpt-4o", "--html", "report.html")
    result.assert_outcomes(failed=1)
    (row,) = next(iter(html_data(pytester.path / "report.html")["tests"].values()))
    extra = "".join(e["content"] for e in row["extras"] if e["format_type"] == "html")
    shown = extra + row["log"]
    assert shown.count("the output does not equal the reference") == 1 and "exact: FAILED" in row["log"]
    assert "<td>mentions_item</td>" in extra and "<td>exact</td>" not in extra


def test_the_html_hooks_are_harmless_without_pytest_html(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(GRADED_SUITE.format(spec="stored:split=test,limit=2"))
    result = pytester.runpytest("-p", "no:html", "--model", "gpt-4o")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*distill summary*"])


def test_only_a_run_that_writes_an_html_report_gives_its_reports_the_details(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(GRADED_SUITE.format(spec="stored:split=test,limit=2"))
    pytester.makeconftest("""
        import pytest

        @pytest.hookimpl(trylast=True)
        def pytest_runtest_logreport(report):
            if report.when == "teardown":
                with open("extras.txt", "a") as seen:
                    seen.write(f"{len(getattr(report, 'extras', []))}\\n")
    """)
    pytester.runpytest("--model", "gpt-4o").assert_outcomes(passed=2)
    assert (pytester.path / "extras.txt").read_text().split() == ["0", "0"]
    (pytester.path / "extras.txt").unlink()
    pytester.runpytest("--model", "gpt-4o", "--html", "report.html").assert_outcomes(passed=2)
    assert (pytester.path / "extras.txt").read_text().split() == ["1", "1"]


def test_junit_carries_each_grade_as_a_property_and_not_the_ledger(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(GRADED_SUITE.format(spec="stored:split=test"))
    pytester.runpytest("--model", "gpt-4o-mini", "--junitxml", "junit/out.xml")
    cases = ET.parse(pytester.path / "junit" / "out.xml").getroot().iter("testcase")
    properties = [{p.get("name"): p.get("value") for p in case.iter("property")} for case in cases]
    assert len(properties) == 12
    assert all(set(props) == {"grade:string_check"} for props in properties)
    values = [props["grade:string_check"] for props in properties]
    assert any(v == "pass score=1: the output equals the reference" for v in values)
    assert any(v == "fail score=0: the output does not equal the reference" for v in values)


INTERRUPTED_SUITE = GRADED_SUITE + """

def test_stop_here():
    {stop}
"""


@pytest.mark.parametrize("stop", ["raise KeyboardInterrupt", "pytest.exit('stopped by the test')"])
@pytest.mark.parametrize("earlier", [True, False], ids=["old-file", "no-file"])
def test_an_interrupted_run_leaves_no_partial_results_file(
        pytester: pytest.Pytester, sim: SimServer, stop: str, earlier: bool) -> None:
    pytester.makepyfile(INTERRUPTED_SUITE.format(spec="stored:split=test,limit=3", stop=stop))
    folder = pytester.path / "results"
    folder.mkdir()
    old = '{"version": 1, "cases": [], "summary": {}, "distill": {}}\n'
    if earlier:
        (folder / "results.json").write_text(old, encoding="utf-8")
    result = pytester.runpytest("--model", "gpt-4o", "--distill-results", "results/results.json", no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["distill: the run was interrupted: no results file written*"])
    assert [p.name for p in folder.iterdir()] == (["results.json"] if earlier else [])
    if earlier:
        assert (folder / "results.json").read_text(encoding="utf-8") == old


def test_repeats_show_how_often_a_verdict_changed(pytester: pytest.Pytester, make_sim, tmp_path: Path) -> None:
    cases = write_jsonl(tmp_path / "cases.jsonl", qa_rows(4))
    make_sim(seed=[cases])
    pytester.makepyfile(f"""
        import pytest
        from pytest_distill import string_check

        @pytest.mark.distill_dataset({str(cases)!r})
        def test_reply(case, model, distill_sample):
            # the last case's verdict depends on the repeat, as a real model's may at temperature 0
            flaky = case.id == "q003" and distill_sample == 1
            assert string_check(model.complete(case), "nothing like it" if flaky else case.expected)
    """)
    result = pytester.runpytest("--model", "gpt-4o", "--distill-repeat", "3", "--distill-results", "r.json")
    result.assert_outcomes(passed=11, failed=1)
    row = table_rows(result.stdout.str())["gpt-4o"]
    assert row["verdict changed"] == "25% of 4" and row["pass rate"] == "92% [64–99]" and row["cases"] == "12"
    assert len(read_results(pytester.path / "r.json")["cases"]) == 12


def test_a_bad_price_line_in_the_ini_file_stops_the_run_at_start_up(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makeini("[pytest]\ndistill_prices =\n    gpt-4o-mini 0.15 0.60\n    gpt-4o 2.50\n")
    pytester.makepyfile(GRADED_SUITE.format(spec="stored:split=test"))
    sim.clear_requests()
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: ini distill_prices line 2: expected `MODEL INPUT_PER_1M OUTPUT_PER_1M`, got 'gpt-4o 2.50'"])
    assert sim.requests == []


def fine_tune(server: SimServer, rows: list[dict[str, Any]]) -> str:
    """A fine-tuned model of gpt-4o-mini on the simulator, trained on `rows`: its name."""
    client = openai.OpenAI(base_url=server.url, api_key=TEST_KEY)
    data = "".join(json.dumps(row) + "\n" for row in rows).encode()
    training = client.files.create(file=("train.jsonl", data), purpose="fine-tune").id
    job, _ = wait_for_job(client, client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training).id)
    assert job.fine_tuned_model is not None, job
    return job.fine_tuned_model


def test_a_fine_tuned_model_is_priced_at_the_fine_tuned_rate_and_a_model_without_answers_costs_dash(
        pytester: pytest.Pytester, make_sim) -> None:
    server = make_sim(job_seconds=0.1)
    tuned = fine_tune(server, qa_rows(10, "train", "t"))
    pytester.makepyfile(GRADED_SUITE.format(spec="stored:split=test"))
    result = pytester.runpytest("--model", tuned, "--model", "gpt-4.1-nano")
    rows = table_rows(result.stdout.str())
    tokens = [int(n.replace(",", "")) for n in rows[tuned]["tokens in/out"].split(" / ")]
    assert tokens[0] > 0
    fine_tuned_rate = (tokens[0] * 0.30 + tokens[1] * 1.20) / 1e6 / 12 * 1000
    assert rows[tuned]["cost/1k cases"] == f"${fine_tuned_rate:.4f}"
    assert rows["gpt-4.1-nano"]["errors"] == "12" and rows["gpt-4.1-nano"]["cost/1k cases"] == "-"


ALL_FAIL_SUITE = """
import pytest
from pytest_distill import factuality

@pytest.mark.distill_dataset("{spec}")
def test_reply(case, model):
    answer = model.complete(case)
    assert factuality(answer, case.expected)
"""


def test_a_failing_graded_assert_says_its_verdict_once_in_a_few_lines(pytester: pytest.Pytester, make_sim, tmp_path: Path) -> None:
    """12 failing cases: each failure is its line, the grader's verdict and rule, the judge's reasoning,
    the output and the reference, once; no object reprs."""
    seeds = qa_rows(12)
    make_sim(seed=[write_jsonl(tmp_path / "seed.jsonl", seeds)])
    for row in seeds:
        row["messages"][-1]["content"] = "Nobody has ever counted the items."
    pytester.makepyfile(ALL_FAIL_SUITE.format(spec=str(write_jsonl(tmp_path / "cases.jsonl", seeds))))
    result = pytester.runpytest("--model", "gpt-4o")
    result.assert_outcomes(failed=12)
    output = result.stdout.str()
    lines = result.stdout.lines
    failures = lines[lines.index(next(line for line in lines if "= FAILURES =" in line)) + 1:
                     lines.index(next(line for line in lines if "distill summary" in line))]
    assert len(failures) == 12 * 6, "\n".join(failures)
    # Counted in the failures section: with CI set, pytest's short summary repeats each message whole.
    shown = "\n".join(failures)
    assert shown.count("Judge's reasoning") == 12 and shown.count("passes when choice in A, B, C, E") == 12
    assert "Completion(" not in output and "<factuality" not in output
    result.stdout.fnmatch_lines(["_* test_reply[[]q000-gpt-4o[]] _*",
                                 "test_a_failing_graded_assert_says_its_verdict_once_in_a_few_lines.py:7: "
                                 "assert factuality(answer, case.expected)",
                                 "factuality: FAILED, score 0, passes when choice in A, B, C, E",
                                 "  reason: choice D: *Judge's reasoning: *",
                                 "output: Item q0 is number 0.", "reference: Nobody has ever counted the items."])


def test_with_a_long_traceback_pytests_assert_message_is_short_and_the_verdict_follows_once(
        pytester: pytest.Pytester, make_sim, tmp_path: Path) -> None:
    seeds = qa_rows(1)
    make_sim(seed=[write_jsonl(tmp_path / "seed.jsonl", seeds)])
    seeds[0]["messages"][-1]["content"] = "Nobody has ever counted the items."
    pytester.makepyfile(ALL_FAIL_SUITE.format(spec=str(write_jsonl(tmp_path / "cases.jsonl", seeds))))
    result = pytester.runpytest("--model", "gpt-4o", "--tb=long")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "E       AssertionError: assert <factuality FAIL score=0>",
        "E        +  where <factuality FAIL score=0> = factuality(Completion('Item q0 is number 0.', model='gpt-4o'), "
        "'Nobody has ever counted the items.')",
        "*- distill grades -*", "factuality: FAILED, score 0, passes when choice in A, B, C, E"])
    assert result.stdout.str().count("Judge's reasoning") == 1


WIDE_SUITE = """
import pytest
from pytest_distill import criteria_match, factuality, string_check, valid_json

@pytest.mark.distill_dataset("stored:split=test")
def test_reply(case, model):
    answer = model.complete(case)
    factuality(answer, case.expected)
    criteria_match(answer, "answers the question")
    string_check(answer, case.expected)
    valid_json(answer)
"""


@pytest.mark.parametrize("columns", [80, 100])
def test_the_summary_fits_the_terminal_width_with_every_cell_still_there(
        pytester: pytest.Pytester, sim: SimServer, monkeypatch: pytest.MonkeyPatch, columns: int) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    pytester.makepyfile(WIDE_SUITE)
    result = pytester.runpytest("--model", "gpt-4o-2024-11-20", "--model", "gpt-4o-mini", "--distill-results", "r.json")
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "distill summary" in line)
    summary = lines[start:next(i for i in range(start + 1, len(lines)) if lines[i].startswith("=="))]
    assert summary and max(len(line) for line in summary) <= columns, "\n".join(summary)
    rows = table_rows(result.stdout.str())
    results = read_results(pytester.path / "r.json")["summary"]
    for model in ("gpt-4o-2024-11-20", "gpt-4o-mini"):
        for grader in ("factuality", "criteria_match", "string_check", "valid_json"):
            g = results[model][grader]
            assert rows[model][f"{grader} rate/mean/n"].startswith(f"{g['pass_rate']:.0%} [")
            assert rows[model][f"{grader} rate/mean/n"].endswith(f"] / {g['mean_score']:.2f} / {g['n']}")
        assert {"cost/1k cases", "tokens in/out", "latency p50/p95"} <= set(rows[model])
    assert any(line.startswith("cost: ") for line in summary)


def test_a_model_name_too_long_for_the_terminal_is_cut_in_the_middle() -> None:
    from pytest_distill.report.terminal import render_table
    name = "ft:gpt-4o-mini-2024-07-18:a-very-long-organisation-name:support-replies:mjFTTajP"
    lines = render_table(["model", "pass rate", "cost/1k cases"], [[name, "50%", "$0.0400"]], width=60)
    assert max(len(line) for line in lines) <= 60
    assert any(line.startswith("ft:gpt-4o-mini-20") and "…" in line and ":mjFTTajP" in line for line in lines)


def test_the_results_file_and_html_say_how_the_run_was_made_and_each_cases_outcome(
        pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(GRADED_SUITE.format(spec="stored:split=test,limit=4"))
    pytester.runpytest("--model", "gpt-4o", "--model", "gpt-4o-mini", "--model", "no-such-model", "--grader-model", "gpt-4o-mini",
                       "--distill-results", "r.json", "--html", "r.html")
    raw = (pytester.path / "r.json").read_text(encoding="utf-8")
    assert TEST_KEY not in raw
    results = json.loads(raw)
    run = results["run"]
    assert run["plugin_version"] == "0.1.0" and run["simulator"] is False and run["duration_s"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", run["started"])
    assert run["endpoints"] == [{"name": "default", "base_url": sim.url}]
    assert run["roles"] == {"models_under_test": ["gpt-4o", "gpt-4o-mini", "no-such-model"], "teacher": "gpt-4o",
                            "student": "gpt-4o-mini", "judge": "gpt-4o-mini"}
    assert run["datasets"] == ["stored:split=test,limit=4"]
    outcomes = {model: {r["outcome"] for r in results["cases"] if r["model"] == model}
                for model in run["roles"]["models_under_test"]}
    assert outcomes == {"gpt-4o": {"passed"}, "gpt-4o-mini": {"passed", "failed"}, "no-such-model": {"error"}}
    summary = html.unescape((pytester.path / "r.html").read_text(encoding="utf-8"))
    assert f"pytest-distill 0.1.0, started {run['started']}" in summary and f"against the API (default {sim.url})" in summary
    assert "models under test: gpt-4o, gpt-4o-mini, no-such-model; teacher gpt-4o; student gpt-4o-mini; judge gpt-4o-mini" in summary
    assert "datasets: stored:split=test,limit=4" in summary


def test_an_unknown_model_is_one_summary_line_with_the_count_and_the_models_the_server_knows(
        pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makepyfile(GRADED_SUITE.format(spec="stored:split=test"))
    result = pytester.runpytest("--model", "gpt-5-nano", "--model", "gpt-4o", "--distill-concurrency", "2")
    result.assert_outcomes(passed=12, errors=12)
    asked = [r for r in requests_to(sim, "POST", "/chat/completions") if r.body["model"] == "gpt-5-nano"]
    assert 1 <= len(asked) <= 2, "after the first 404 (and the calls on the wire with it) the model is not asked again"
    summary = result.stdout.str().split("distill summary", 1)[1].split("short test summary", 1)[0]
    flat = " ".join(summary.split())
    assert flat.count("errors: ") == 1 and re.search(r"errors: 12 tests: [^)]*'gpt-5-nano'[^)]*\(HTTP 404\)", flat), flat
    assert "(this server knows: gpt-4o, gpt-4o-2024-08-06, gpt-4o-2024-11-20, gpt-4o-mini," in flat
    result.stdout.fnmatch_lines(["*ModelError: *'gpt-5-nano'*404*this server knows: gpt-4o, *"])
    assert len(requests_to(sim, "GET", "/models")) == 1


def test_a_bad_key_errors_every_case_and_the_summary_says_it_once_with_the_count(
        pytester: pytest.Pytester, make_sim, monkeypatch: pytest.MonkeyPatch) -> None:
    make_sim(api_key="sk-the-right-key-000000000000")
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    pytester.makepyfile(GRADED_SUITE.format(spec="cases.jsonl"))
    write_jsonl(pytester.path / "cases.jsonl", qa_rows(12))
    result = pytester.runpytest("--model", "gpt-4o", "-n", "2")
    result.assert_outcomes(errors=12)
    summary = result.stdout.str().split("distill summary", 1)[1]
    flat = " ".join(summary.split())
    assert flat.count("errors: ") == 1 and re.search(r"errors: 12 tests: [^)]*'gpt-4o'[^)]*\(HTTP 401\)", flat), flat
    assert TEST_KEY not in result.stdout.str()


def test_a_case_test_without_a_model_under_test_is_in_every_report_whatever_its_outcome(
        pytester: pytest.Pytester, tmp_path: Path) -> None:
    """A test of a case that asks only the teacher used to reach the results file only when it errored:
    its passes and failures were missing. Now each case test is an entry, as the terminal and JUnit count it."""
    seed = write_jsonl(tmp_path / "seed.jsonl", qa_rows(2))
    (pytester.path / "cases.jsonl").write_text(seed.read_text(encoding="utf-8") + "{not json\n", encoding="utf-8")
    pytester.makepyfile("""
        import pytest

        @pytest.mark.distill_dataset("cases.jsonl")
        def test_teacher(case, teacher):
            assert teacher.complete(case).text and case.id != "q001"

        def test_plain():
            assert True
    """)
    result = pytester.runpytest("--distill-sim", "--distill-sim-seed", str(seed), "--distill-results", "results.json",
                                "--junitxml", "junit.xml", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    outcomes = {case["case_id"]: case["outcome"] for case in json.loads((pytester.path / "results.json").read_text())["cases"]}
    assert sorted(outcomes.values()) == ["error", "failed", "passed"] and outcomes["q000"] == "passed" and outcomes["q001"] == "failed"
    suite = ET.parse(pytester.path / "junit.xml").getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "1")


def test_a_run_that_records_nothing_says_the_files_asked_for_are_not_written(pytester: pytest.Pytester) -> None:
    """Only plain tests ran: no results or Markdown to write, and an old results file is left as it was."""
    pytester.makepyfile("def test_plain():\n    assert True\n")
    (pytester.path / "results.json").write_text("old", encoding="utf-8")
    result = pytester.runpytest("--distill-results", "results.json", "--distill-markdown", "summary.md", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["distill: no test ran a case or recorded a grade: --distill-results results.json not written; "
                                 "--distill-markdown summary.md not written"])
    assert (pytester.path / "results.json").read_text(encoding="utf-8") == "old"
    assert not (pytester.path / "summary.md").exists()
