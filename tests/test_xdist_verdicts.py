"""The verdicts workers send to the controller are the serial run's verdicts.

Starting xdist workers costs seconds of CPU each time, so one project holds many scenarios whose
meaning the serial tests check (judge labels, several judges, own grades from threads and tasks, a
failing judged assert, a pass-rate threshold, the Markdown report against a baseline); a second holds
those that need two models (a model's own label, judged grades in the summary, McNemar against a
baseline, a missed threshold), a third those that need repeats or training data (a flaky case, the
balance of train and test). Each runs once serial and once with `-n 2`: each scenario's verdict and
message must come out of both, and both runs must agree exactly, in the terminal, the results file,
JUnit, the HTML report and the Markdown."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_distill.sim import SimServer

from .support import HOBANNU, HostileServer, qa_rows, write_jsonl
from .test_balance import EXPECTED as BALANCE
from .test_balance import start as balance_project
from .test_graders_judged import FACT_SUITE, judge_requests, tagged
from .test_judges import SUITE as MAJORITY_SUITE
from .test_judges import contrarian  # noqa: F401 - the fixture
from .test_markdown_report import HOSTILE
from .test_record_grade import SUITE as OWN_GRADES_SUITE
from .test_report_outputs import html_data, read_results, table_rows
from .test_significant_regressions import SUITE as REGRESSION_SUITE
from .test_verdicts import FLIPPING_SUITE, LABELLED_SUITE

FAILING_JUDGED_SUITE = """
import pytest
from pytest_distill import factuality

@pytest.mark.distill_dataset("judged.jsonl")
def test_judged(case, model):
    answer = model.complete(case)
    assert factuality(answer, case.expected)
"""
REPORTED_SUITE = """
import pytest
from pytest_distill import string_check
from pytest_distill.datasets import DatasetError

@pytest.mark.distill_dataset("reported.jsonl")
def test_reported(case, model):
    if case.id == "m003":
        raise DatasetError("the data went away")
    answer = model.complete(case)
    assert string_check(answer, "nothing like it" if case.id in ("m000", "m001") else case.expected)
"""
THRESHOLD_SUITE = """
import pytest
from pytest_distill import string_check

@pytest.mark.distill_dataset("rated.jsonl")
def test_rated(case, model):
    assert string_check(model.complete(case), "nothing like it" if case.id == "r002" else case.expected)
"""
# by hand: observed .8; people and grader each pass 7 of 10, chance .7*.7 + .3*.3 = .58; (.8 - .58) / .42
KAPPA = (0.8 - 0.58) / (1 - 0.58)
OPTIONS = ("--model", "gpt-4o", "--distill-judge-labels", "labels.jsonl", "--distill-keep-transcripts",
           "--distill-pass-rate", "0.5", "--distill-baseline", "base.json", "--distill-results", "r.json",
           "--junitxml", "junit.xml", "--html", "report.html", "--distill-markdown", "summary.md")


def scenarios(pytester: pytest.Pytester, contrary_judge: HostileServer) -> list[Path]:
    """Every scenario's test file and dataset in one project; the datasets the simulator must answer.
    Each dataset has its own ids, so that the labels (q...) meet only the labelled scenario's verdicts."""
    pytester.makeini(f"[pytest]\ndistill_endpoints =\n    local {contrary_judge.url} LOCAL_KEY\n")
    labelled = write_jsonl(pytester.path / "labelled.jsonl", qa_rows(10))
    people = {f"q{i:03d}": i <= 5 or i == 7 for i in range(10)}  # they disagree with the grader on q006, q007
    write_jsonl(pytester.path / "labels.jsonl", [
        *({"case_id": case, "grader": "string_check", "passed": passed} for case, passed in people.items()),
        {"case_id": "q000", "grader": "factuality", "passed": True},
        {"case_id": "elsewhere", "grader": "string_check", "passed": True, "note": "not in this run"}])
    panel = write_jsonl(pytester.path / "panel.jsonl", qa_rows(3, prefix="j"))
    own = write_jsonl(pytester.path / "own.jsonl", qa_rows(3, prefix="g"))
    answers = qa_rows(12, prefix="f")
    seeded_answers = write_jsonl(pytester.path / "answers.jsonl", answers)
    for row in answers:
        row["messages"][-1]["content"] = "Nobody has ever counted the items."
    write_jsonl(pytester.path / "judged.jsonl", answers)
    reported_rows = qa_rows(6, prefix="m")
    reported_rows[0]["messages"][1]["content"] = HOSTILE
    reported = write_jsonl(pytester.path / "reported.jsonl", reported_rows)
    rated = write_jsonl(pytester.path / "rated.jsonl", qa_rows(10, prefix="r"))
    own_grades = OWN_GRADES_SUITE.format(spec=str(own)).replace('"q001"', '"g001"')  # its failing case, in this dataset
    pytester.makepyfile(test_labelled=LABELLED_SUITE.format(spec=str(labelled)),
                        test_panel=MAJORITY_SUITE.format(spec=str(panel)), test_own_grades=own_grades,
                        test_failing_judged=FAILING_JUDGED_SUITE, test_escaped_output=REPORTED_SUITE,
                        test_rated=THRESHOLD_SUITE)
    return [labelled, panel, own, seeded_answers, reported, rated]


@pytest.fixture
def project(pytester: pytest.Pytester, make_sim: Callable[..., SimServer], contrarian: HostileServer,  # noqa: F811
            ) -> pytest.Pytester:
    """The scenarios against one simulator, and the baseline their Markdown report is compared with."""
    make_sim(seed=scenarios(pytester, contrarian))
    baseline = pytester.runpytest("--model", "gpt-4o", "--distill-results", "base.json")  # serial is enough
    baseline.assert_outcomes(passed=33, failed=22, errors=1)
    return pytester


def failure_blocks(lines: list[str]) -> dict[str, list[str]]:
    """The FAILURES section's blocks by their title (`test_judged[f000-gpt-4o]`); xdist's `[gw0]` lines and
    JUnit's `- generated xml file` line (after whichever block came last) left out."""
    start = lines.index(next(line for line in lines if "= FAILURES =" in line)) + 1
    end = lines.index(next(line for line in lines if "distill summary" in line))
    blocks: dict[str, list[str]] = {}
    current: list[str] = []
    for line in lines[start:end]:
        title = re.fullmatch(r"_{3,} (\S+) _{3,}", line)
        if title:
            current = blocks.setdefault(title.group(1), [])
        elif not line.startswith(("[gw", "- generated xml file")):
            current.append(line)
    return blocks


def junit_verdicts(path: Path) -> dict[str, str]:
    """Each JUnit test case's verdict by its node id (the project's test files are top-level modules)."""
    verdicts = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        found = [kind for kind in ("failure", "error", "skipped") if case.find(kind) is not None]
        verdicts[f"{case.get('classname')}.py::{case.get('name')}"] = found[0] if found else "passed"
    return verdicts


def without_latency_or_prefetch(text: str) -> str:
    """Latency cells (`0.01s / 0.05s`, escaped in Markdown) say how fast, and the prefetch line how the work
    was split between processes, not what came out: the two things allowed to differ."""
    text = re.sub(r"^(- )?prefetch\\?: .*\n", "", text, flags=re.MULTILINE)
    return re.sub(r"\d+(\\?\.\d+)?s / \d+(\\?\.\d+)?s", "<latency>", text)


def what_must_agree(run: pytest.RunResult, path: Path) -> dict[str, Any]:
    """Everything a serial run and an xdist run must say alike: all but latencies, durations and prefetch's waste."""
    results = read_results(path / "r.json")
    output = run.stdout.str()
    # up to pytest's short summary, whose entries (with their verdict lines) come in the order tests finished
    blocks = output[output.index("distill summary"):output.index("short test summary info")].splitlines()
    return {
        "exit": run.ret,
        "outcomes": run.parseoutcomes(),
        "table": {model: {k: v for k, v in row.items() if "latency" not in k} for model, row in table_rows(output).items()},
        "distill lines": [re.sub(r"\s{2,}", "  ", without_latency_or_prefetch(line)) for line in blocks
                          if not re.match(r"(FAILED|ERROR|=+|- Generated html|prefetch:) ", line)],
        "results": {r["nodeid"]: (r["outcome"], [(g["name"], g["passed"], g.get("votes")) for g in r["grades"]])
                    for r in results["cases"]},
        **{key: results.get(key) for key in ("summary", "judges", "panels", "threshold", "repeats", "balance")},
        "junit": junit_verdicts(path / "junit.xml"),
        "html": sorted((nodeid, t["result"]) for nodeid, runs in html_data(path / "report.html")["tests"].items()
                       for t in runs),
        "markdown": without_latency_or_prefetch((path / "summary.md").read_text(encoding="utf-8")),
    }


def check_each_scenario(run: pytest.RunResult, path: Path, contrarian_posts: int) -> None:
    """Each scenario's verdict and message, as its serial test states its meaning."""
    run.assert_outcomes(passed=33, failed=22, errors=1)
    results = read_results(path / "r.json")
    records = {r["nodeid"]: r for r in results["cases"]}
    # judge labels (tests/test_verdicts.py)
    run.stdout.fnmatch_lines([
        "judges against people (labels.jsonl):",
        f"  string_check: agreed on 8 of 10 (80%), kappa {KAPPA:.2f}; disagreed on q006, q007",
        "  factuality: no labelled case was graded by it in this run"])
    judges = results["judges"]
    assert judges["string_check"]["n"] == 10 and judges["string_check"]["agreement"] == pytest.approx(0.8)
    assert judges["string_check"]["kappa"] == pytest.approx(KAPPA)
    assert judges["string_check"]["disagreements"] == ["q006", "q007"]
    assert judges["factuality"] == {"n": 0, "agreement": None, "kappa": None, "disagreements": []}
    assert f"string_check: agreed on 8 of 10 (80%), kappa {KAPPA:.2f}" in (path / "report.html").read_text(encoding="utf-8")
    # several judges (tests/test_judges.py)
    assert contrarian_posts >= 3
    tie = records["test_panel.py::test_two[j000-gpt-4o]"]["grades"][0]
    assert tie["votes"] == {"gpt-4o": True, "local:contrarian": False} and tie["passed"] is False
    assert tie["reason"].startswith("1 of 2 judges passed it (a tie fails). gpt-4o pass: ")
    assert "local:contrarian FAIL: choice D: " in tie["reason"]
    most = records["test_panel.py::test_three[j001-gpt-4o]"]
    assert most["grades"][0]["votes"] == {"gpt-4o": True, "gpt-4o-mini": True, "local:contrarian": False}
    assert most["grades"][0]["passed"] is True
    transcripts = most["judge_transcripts"]
    assert [t["judge"] for t in transcripts] == ["gpt-4o", "gpt-4o-mini", "local:contrarian"]
    assert all([m["role"] for m in t["messages"]] == ["system", "user"] and "Item j1 is number 1." in t["messages"][1]["content"]
               for t in transcripts)
    assert json.loads(transcripts[2]["reply"]) == {"reasoning": "I disagree with everything.", "choice": "D"}
    panel = results["panels"]["factuality"]
    assert (panel["n"], panel["unanimous"]) == (6, 0)
    assert panel["with_majority"] == {"gpt-4o": 0.5, "local:contrarian": 0.5, "gpt-4o-mini": 1.0}
    run.stdout.fnmatch_lines(["judges among themselves (judge=[[]...[]]):",
                              "  factuality: all agreed on 0 of 6 (0%); kappa gpt-4o / gpt-4o-mini -, gpt-4o / local:contrarian 0.00, "
                              "gpt-4o-mini / local:contrarian 0.00; with the majority: gpt-4o 50%, gpt-4o-mini 100%, "
                              "local:contrarian 50%"])
    # own grades from threads and tasks (tests/test_record_grade.py)
    grades = {nodeid.split("::")[1]: [g["name"] for g in r["grades"]] for nodeid, r in records.items()
              if nodeid.startswith("test_own_grades.py")}
    assert grades["test_own_check[g000-gpt-4o]"] == ["mine"]
    assert grades["test_in_a_plain_thread[g000-gpt-4o]"] == ["short", "string_check"]
    assert grades["test_in_a_pool_with_the_context_copied[g002-gpt-4o]"] == ["short"]
    assert grades["test_in_asyncio_tasks[g001-gpt-4o]"] == ["task0", "task1"]
    summary = results["summary"]["gpt-4o"]
    assert (summary["mine"]["n"], summary["mine"]["pass_rate"]) == (3, 2 / 3)
    assert summary["short"]["n"] == 6 and summary["task0"]["n"] == 3
    assert table_rows(run.stdout.str())["gpt-4o"]["mine rate/mean/n"] == "67% [20–94] / 0.67 / 3"
    assert 'name="grade:mine" value="fail score=0: my own rule"' in (path / "junit.xml").read_text(encoding="utf-8")
    # a failing judged assert says its verdict once (tests/test_report_outputs.py)
    judged = {title: block for title, block in failure_blocks(run.stdout.lines).items() if title.startswith("test_judged[")}
    assert len(judged) == 12 and all(len(block) == 5 for block in judged.values()), judged  # and its title: 6
    shown = "\n".join(line for block in judged.values() for line in block)
    assert shown.count("Judge's reasoning") == 12 and shown.count("passes when choice in A, B, C, E") == 12
    assert "Completion(" not in run.stdout.str() and "<factuality" not in run.stdout.str()
    run.stdout.fnmatch_lines(["_* test_judged[[]f000-gpt-4o[]] _*",
                              "test_failing_judged.py:7: assert factuality(answer, case.expected)",
                              "factuality: FAILED, score 0, passes when choice in A, B, C, E",
                              "  reason: choice D: *Judge's reasoning: *",
                              "output: Item f0 is number 0.", "reference: Nobody has ever counted the items."])
    # a pass-rate threshold: the failed case stays a failure everywhere (tests/test_pass_rate_threshold.py)
    # and an error fails the session all the same (tests/test_markdown_report.py)
    assert run.ret == pytest.ExitCode.TESTS_FAILED
    line = "distill: pass rate threshold MET (each pass rate): gpt-4o 60% [46–72] >= 50%; but 1 test failed or errored"
    assert run.stdout.lines[-1].startswith(line)
    junit = junit_verdicts(path / "junit.xml")
    failed = sorted(nodeid for nodeid, r in records.items() if r["outcome"] == "failed")
    assert sorted(nodeid for nodeid, verdict in junit.items() if verdict == "failure") == failed
    assert [nodeid for nodeid in failed if nodeid.startswith("test_rated")] == ["test_rated.py::test_rated[r002-gpt-4o]"]
    html_results = [t["result"] for runs in html_data(path / "report.html")["tests"].values() for t in runs]
    assert (html_results.count("Failed"), html_results.count("Error")) == (22, 1)
    assert results["threshold"]["checks"][0]["met"] is True
    # the Markdown report (tests/test_markdown_report.py)
    page = (path / "summary.md").read_text(encoding="utf-8")
    assert "**33 passed, 22 failed, 1 error**" in page
    assert "❌ pass rate threshold MET \\(each pass rate\\)\\: gpt\\-4o 60% \\[46–72\\] &gt;= 50%; but 1 test failed" in page
    assert "✅ no regression against the baseline base\\.json" in page
    assert "| model | pass rate | cases | errors |" in page and "| gpt\\-4o | 60% \\[46–72\\] | 55 | 1 |" in page
    worst = page[page.index("### Worst failures (10 of 22)"):]
    rows = [line for line in worst.splitlines() if line.startswith("| m00")]
    assert [row.split(" | ")[0] for row in rows] == ["| m000", "| m001"]  # its file sorts first among score-0 failures
    assert all(len(re.findall(r"(?<!\\)\|", row)) == 6 for row in rows)
    assert "<script>" not in page and "@octocat" not in page and "](" not in page and "**bold" not in page
    assert "&lt;script&gt;" in page and "&#64;octocat" in page and "\\#12" in page


def serial_and_under_xdist(project: pytest.Pytester, options: tuple[str, ...]) -> Iterator[pytest.RunResult]:
    """The project's run serial, then with `-n 2`, each handed to the caller to check; then both must agree."""
    seen = []
    for spread in ((), ("-n", "2")):
        run = project.runpytest(*options, *spread)
        yield run
        seen.append(what_must_agree(run, project.path))
    serial, spread_ = seen
    for key in serial:
        assert serial[key] == spread_[key], key


def test_workers_give_each_scenario_the_verdicts_and_messages_of_a_serial_run(
        project: pytest.Pytester, contrarian: HostileServer) -> None:  # noqa: F811
    posts = contrarian.posts
    for run in serial_and_under_xdist(project, OPTIONS):
        check_each_scenario(run, project.path, contrarian.posts - posts)
        posts = contrarian.posts


TWO_MODELS = ("--model", "gpt-4o", "--model", "gpt-4o-mini", "--distill-judge-labels", "labels.jsonl",
              "--distill-baseline", "baseline.json", "--distill-baseline-test", "mcnemar", "--distill-pass-rate", "0.95",
              "--distill-results", "r.json", "--junitxml", "junit.xml", "--html", "report.html",
              "--distill-markdown", "summary.md")
FLIPS = ("gpt-4o string_check 80% -> 55%, p=0.0625, 6 (s000-gpt-4o, s001-gpt-4o, s002-gpt-4o, ...) went failing, "
         "1 (s009-gpt-4o) went passing")


@pytest.fixture
def two_models(pytester: pytest.Pytester, make_sim: Callable[..., SimServer]) -> tuple[pytest.Pytester, SimServer]:
    """Labelled cases (q...), the hobannu cases judged by factuality, and ten cases (s...) whose baseline
    failed s009 alone, graded for gpt-4o only (the other model skips them) by the names in fail.txt."""
    labelled = write_jsonl(pytester.path / "labelled.jsonl", qa_rows(10))
    write_jsonl(pytester.path / "labels.jsonl", [
        {"case_id": "q008", "grader": "string_check", "passed": False, "model": "gpt-4o"},
        {"case_id": "q008", "grader": "string_check", "passed": True}])
    regressed = write_jsonl(pytester.path / "regressed.jsonl", qa_rows(10, prefix="s"))
    regression = REGRESSION_SUITE.format(spec=str(regressed)).replace(
        "def test_reply(case, model):\n", "def test_regressed(case, model):\n    if model.name != \"gpt-4o\":\n"
        "        pytest.skip(\"the baseline is gpt-4o's\")\n")
    pytester.makepyfile(test_labelled=LABELLED_SUITE.format(spec=str(labelled)), test_regressed=regression,
                        test_fact=FACT_SUITE.format(spec="stored:app=hobannu,split=test", extra=""))
    server = make_sim(seed=[labelled, regressed, HOBANNU])
    (pytester.path / "fail.txt").write_text("s009", encoding="utf-8")
    pytester.runpytest("--model", "gpt-4o", "--model", "gpt-4o-mini", "--distill-results", "baseline.json")
    (pytester.path / "fail.txt").write_text("s000 s001 s002 s003 s004 s005", encoding="utf-8")
    return pytester, server


def check_each_two_model_scenario(run: pytest.RunResult, path: Path, server: SimServer) -> None:
    """Each scenario's verdict and message, as its serial test states its meaning."""
    # a label naming a model wins over the general one (tests/test_judge_label_precedence.py)
    run.stdout.fnmatch_lines(["  string_check: agreed on 1 of 2 (50%), kappa *; disagreed on q008"])
    judges = read_results(path / "r.json")["judges"]
    assert judges["string_check"]["n"] == 2 and judges["string_check"]["agreement"] == pytest.approx(0.5)
    # judged grades in the summary (tests/test_graders_judged.py)
    fact = {nodeid: r["outcome"] for nodeid, r in ((r["nodeid"], r) for r in read_results(path / "r.json")["cases"])
            if nodeid.startswith("test_fact.py")}
    outcomes = list(fact.values())
    assert outcomes.count("passed") > 12 and outcomes.count("failed") > 0 and "error" not in outcomes
    assert table_rows(run.stdout.str())["gpt-4o"]["factuality rate/mean/n"] == "100% [75–100] / 1.00 / 12"
    bodies = judge_requests(server)
    assert {body["model"] for body in bodies} == {"gpt-4o"}
    assert "ホバンヌでは、各チームから何人の選手が試合に出ますか？" in {tagged(body, "question") for body in bodies}
    # six flips down and one up: no significant regression at 5% (tests/test_significant_regressions.py)
    run.stdout.fnmatch_lines([
        "gpt-4o string_check: 80% -> 55% on 20 shared cases, p=0.0625", "  went from pass to fail (6):",
        "*", "*", "*", "*", "*", "*", "  went from fail to pass (1):", "      test_regressed.py::test_regressed?s009-gpt-4o?",
        "distill: no significant regression against the baseline baseline.json (McNemar exact, one-sided, alpha 0.05; "
        f"* model/grader pairs compared): {FLIPS}*"])
    # a missed threshold fails the session and names the model (tests/test_pass_rate_threshold.py)
    assert run.ret == pytest.ExitCode.TESTS_FAILED
    assert run.stdout.lines[-1].startswith("distill: pass rate threshold MISSED (each pass rate): gpt-4o ")
    assert "< 95%" in run.stdout.lines[-1]


def test_workers_give_each_two_model_scenario_the_verdicts_and_messages_of_a_serial_run(
        two_models: tuple[pytest.Pytester, SimServer]) -> None:
    project, server = two_models
    server.clear_requests()
    for run in serial_and_under_xdist(project, TWO_MODELS):
        check_each_two_model_scenario(run, project.path, server)
        server.clear_requests()


REPEATED = ("--model", "gpt-4o", "--distill-repeat", "3", "--distill-train", "train.jsonl", "--distill-balance", "intent",
            "--distill-results", "r.json", "--junitxml", "junit.xml", "--html", "report.html", "--distill-markdown", "summary.md")


@pytest.fixture
def repeated(pytester: pytest.Pytester, make_sim: Callable[..., SimServer]) -> pytest.Pytester:
    """The balance project (train.jsonl by intent, cases.jsonl) and four cases (q...) without an intent,
    whose q002 always fails and q003 on its second repeat only."""
    flipping = write_jsonl(pytester.path / "flipping.jsonl", qa_rows(4))
    balance_project(pytester, make_sim, flipping)
    pytester.makepyfile(test_flipping=FLIPPING_SUITE.format(spec=str(flipping)))
    return pytester


def check_each_repeated_scenario(run: pytest.RunResult, path: Path) -> None:
    """Each scenario's verdict and message, as its serial test states its meaning."""
    run.assert_outcomes(passed=35, failed=4)
    results = read_results(path / "r.json")
    # a case that flips on one repeat is flaky (tests/test_verdicts.py)
    failed = sorted(r["nodeid"] for r in results["cases"] if r["outcome"] == "failed")
    assert failed == [f"test_flipping.py::test_reply[{case}-gpt-4o-rep{n}]" for case, n in
                      (("q002", 0), ("q002", 1), ("q002", 2), ("q003", 1))]
    row = table_rows(run.stdout.str())["gpt-4o"]
    assert (row["pass^3"], row["pass@3"], row["verdict changed"]) == ("54% [29–77]", "62% [35–83]", "8% of 13")
    run.stdout.fnmatch_lines(["pass^3: the share of repeated cases*", "flaky: gpt-4o 1 case: q003"])
    repeats = results["repeats"]["gpt-4o"]
    assert (repeats["n"], repeats["flaky"]) == (3, ["q003"])
    report = (path / "report.html").read_text(encoding="utf-8")
    assert "<th>pass^3</th>" in report and "<td>54% [29–77]</td>" in report and "<p>flaky: gpt-4o 1 case: q003</p>" in report
    # train and test side by side by intent (tests/test_balance.py); the flipping cases have none
    assert {value: seen for value, seen in results["balance"]["intent"].items() if value != "(none)"} == BALANCE
    run.stdout.fnmatch_lines([
        "*distill balance by intent*",
        "intent*train*test*gpt-4o*",
        "billing*120 (60%)*4 (31%)*100%",
        "refund*79 (40%)*2 (15%)*50%",
        "legal*1 (0%)*0 (0%)*-*rare",
        "(none)*0 (0%)*4 (31%)*67%*unseen",
        "shipping*0 (0%)*3 (23%)*0%*unseen",
        "rare in training (< 1% of it): legal",
        "in the test split but never in training (unseen): (none), shipping",
        "gpt-4o is weakest on intent=shipping (0%)",
    ])


def test_workers_give_each_repeated_scenario_the_verdicts_and_messages_of_a_serial_run(repeated: pytest.Pytester) -> None:
    for run in serial_and_under_xdist(repeated, REPEATED):
        check_each_repeated_scenario(run, repeated.path)
