"""The pure parts of distillation: the gate's decision, the training file's checks, the filter's
choice of checks, and the commands printed for the user. No server, no pytest session."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from openai.types.fine_tuning import FineTuningJob

from pytest_distill.datasets import BrokenCase, Case
from pytest_distill.distill import training
from pytest_distill.distill.backends import FINGERPRINT, TrainingError, TrainingRequest, TrainingRun
from pytest_distill.distill.filter import suite_checks
from pytest_distill.distill.gate import Thresholds, decide
from pytest_distill.distill.loop import follow_command, rerun_command
from pytest_distill.distill.openai_jobs import OpenAITrainer, progress_line, run_of
from pytest_distill.grades import Grade
from pytest_distill.ledger import Entry, ModelStats
from pytest_distill.models.client import ModelRuntime
from pytest_distill.sim import SimServer

from .support import qa_rows, write_jsonl

THRESHOLDS = Thresholds(teacher_min=0.9, gap_min=0.05, min_examples=10)


def stats(model: str, passed: int, counted: int, errors: int = 0) -> ModelStats:
    return ModelStats(model, counted, passed, errors, {}, 0, 0, ())


def case(case_id: str, question: str, answer: str, *, system: str = "Be brief.", origin: str | None = None) -> Case:
    return Case(case_id, [{"role": "system", "content": system}, {"role": "user", "content": question}], answer,
                origin_model=origin)


@pytest.mark.parametrize("teacher, student, examples, failing", [
    ((10, 10), (5, 10), 12, None),
    ((8, 10), (5, 10), 12, "teacher_pass_rate"),
    ((10, 10), (98, 100), 12, "gap"),
    ((10, 10), (5, 10), 9, "examples"),
])
def test_the_gate_fails_on_each_threshold_alone_and_always_states_all_three(
        teacher: tuple[int, int], student: tuple[int, int], examples: int, failing: str | None) -> None:
    decision = decide({"gpt-4o": stats("gpt-4o", *teacher), "gpt-4o-mini": stats("gpt-4o-mini", *student)},
                      "gpt-4o", "gpt-4o-mini", examples, THRESHOLDS)
    assert decision.met is (failing is None)
    assert [m.name for m in decision.measures if not m.met] == ([failing] if failing else [])
    block = "\n".join(decision.lines())
    assert block.count("[x]") == 3 - bool(failing) and block.count("[ ]") == bool(failing)
    assert ("NOT MET" in block) is bool(failing)


def test_a_short_training_set_says_how_many_examples_are_missing() -> None:
    decision = decide({"t": stats("t", 10, 10), "s": stats("s", 0, 10)}, "t", "s", 7, THRESHOLDS)
    assert decision.reasons == ["7 valid training examples, 3 short of 10"]


def test_errored_cases_count_in_no_rate_and_are_reported_apart() -> None:
    decision = decide({"t": stats("t", 9, 9, errors=3), "s": stats("s", 0, 10)}, "t", "s", 10, THRESHOLDS)
    assert decision.met and decision.measures[0].value == 1.0
    assert decision.to_dict()["errors"] == {"t": 3, "s": 0}
    assert "  errored cases, counted in no rate: t 3" in decision.lines()


def test_a_teacher_that_did_not_run_fails_the_gate_with_a_reason() -> None:
    decision = decide({"s": stats("s", 1, 10)}, "t", "s", 20, THRESHOLDS)
    assert not decision.met
    assert decision.reasons == ["teacher t has no graded case in this run", "no gap: the teacher has no graded case in this run"]


def test_training_examples_are_checked_deduplicated_and_held_out() -> None:
    cases = [
        case("a", "Q1?", "A1."),
        case("dup", "Q1?", "A1."),
        case("empty", "Q2?", "   "),
        case("leak", "Test question?", "A3.", system="Another system prompt"),
        case("other", "Q4?", "A4.", origin="gpt-4o-mini-2024-07-18"),
        case("mine", "Q5?", "A5.", origin="gpt-4o-2024-08-06"),
        Case("late-system", [{"role": "user", "content": "Q6?"}, {"role": "system", "content": "x"}], "A6."),
        BrokenCase("broken", "train.jsonl", "train.jsonl:7: not JSON"),
    ]
    held_out = {training.input_key([{"role": "user", "content": "Test  question?"}])}
    result = training.build(cases, source="train", teacher="gpt-4o", held_out=held_out)
    assert [e.id for e in result.examples] == ["a", "mine"]
    assert result.duplicates == ["dup"] and result.leaked == ["leak"]
    assert result.other_model == ["other (gpt-4o-mini-2024-07-18)"]
    assert result.invalid == ["empty: message 2 (assistant) is empty",
                              "late-system: message 1 is a system message after the conversation started",
                              "train.jsonl:7: not JSON"]
    lines = json.loads(result.jsonl().splitlines()[0])["messages"]
    assert lines == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q1?"},
                     {"role": "assistant", "content": "A1."}]
    assert result.missing(10) == 8
    assert any("(leakage), dropped: leak" in line for line in result.lines())


def test_the_student_system_prompt_replaces_the_teachers() -> None:
    result = training.build([case("a", "Q?", "A.", system="A long teacher prompt.")], source="s", teacher="t",
                            held_out=set(), system="Short.")
    assert result.examples[0].messages[0] == {"role": "system", "content": "Short."}
    assert [m["role"] for m in result.examples[0].messages] == ["system", "user", "assistant"]


def test_the_token_estimate_counts_japanese_characters_one_by_one() -> None:
    english = training.estimate_tokens([{"role": "user", "content": "x" * 400}])
    japanese = training.estimate_tokens([{"role": "user", "content": "ホ" * 400}])
    assert 100 <= english < 120 and 400 <= japanese < 420


def grade(name: str, args: dict | None, passed: bool = True) -> Grade:
    return Grade(name, float(passed), passed, "", args=args)


def test_the_filter_replays_checks_fixed_across_cases_and_skips_those_that_follow_the_case() -> None:
    schema = {"type": "object", "required": ["item"]}
    entries = [Entry(f"t.py::test_x[c{i}-m]", case_id=f"c{i}", grades=[
        grade("valid_json", {}), grade("matches_schema", {"schema": schema}),
        grade("string_check", {"reference": f"answer {i}", "operation": "eq"}),
        grade("factuality", None)]) for i in range(3)]
    checks = suite_checks(entries)
    assert [c.name for c in checks.checks] == ["valid_json", "matches_schema"]
    assert checks.skipped == ("string_check in test_x",)
    assert checks.problems('{"item": 1}') == []
    assert [p.split(":")[0] for p in checks.problems('{"other": 1}')] == ["matches_schema"]
    assert [p.split(":")[0] for p in checks.problems("not json")] == ["valid_json", "matches_schema"]


def test_a_string_check_against_a_fixed_string_is_replayed() -> None:
    entries = [Entry(f"t.py::test_y[c{i}]", case_id=f"c{i}", grades=[grade("string_check", {"reference": "Hi", "operation": "like"})])
               for i in range(2)]
    assert suite_checks(entries).problems("Hello") == ["string_check: the output does not contain the reference"]


def test_the_printed_commands_drop_the_loop_flags_and_models() -> None:
    args = ["examples/hobannu", "--distill-sim", "--model", "gpt-4o", "--distill", "--distill-wait", "--model=x", "-n", "2"]
    assert rerun_command(args, ["ft:gpt-4o-mini:acme::abc"]) == \
        "pytest examples/hobannu --distill-sim -n 2 --model ft:gpt-4o-mini:acme::abc"
    assert rerun_command([*args, "--distill-model", "y"], ["ft:m"]) == "pytest examples/hobannu --distill-sim -n 2 --model ft:m"
    assert follow_command(["t.py", "--distill"]) == "pytest t.py --distill --distill-wait"


def test_the_printed_rerun_writes_its_results_beside_the_training_runs_never_over_them() -> None:
    from pathlib import Path

    for given in (["--distill-results", "out/r.json"], ["--distill-results=out/r.json"], []):
        args = ["t.py", *given, "--distill", "-n", "2"]
        assert rerun_command(args, ["ft:m"], results=Path("out/r.json")) == \
            "pytest t.py -n 2 --distill-results out/r-rerun.json --model ft:m"
    assert rerun_command(["t.py", "--distill"], ["ft:m"]) == "pytest t.py --model ft:m"


def test_where_the_project_owns_model_the_printed_command_keeps_it_and_names_distill_model() -> None:
    args = ["t.py", "--model", "resnet", "--distill-model=gpt-4o", "--distill"]
    assert rerun_command(args, ["ft:m"], "--distill-model") == "pytest t.py --model resnet --distill-model ft:m"
    assert follow_command(["t.py", "--distill", "--distill-wait"]) == "pytest t.py --distill --distill-wait"


def test_a_fine_tuning_job_read_from_a_hostile_server_can_be_shown_and_written() -> None:
    """The SDK's own job object, built as it builds one from a reply, whose texts hold lone surrogates and
    whose token count is infinite: the run and its progress line carry U+FFFD and no count."""
    reply = json.loads('{"id": "ftjob-\\ud800", "object": "fine_tuning.job", "created_at": 1, "model": "gpt-4o-mini",'
                       ' "organization_id": "org", "result_files": [], "seed": 1, "status": "failed\\udfff",'
                       ' "training_file": "file-1", "validation_file": null, "fine_tuned_model": "ft:\\ud800",'
                       ' "finished_at": null, "hyperparameters": {}, "trained_tokens": 1e999,'
                       ' "error": {"code": "x", "message": "bad \\ud800 data", "param": null}}')
    job = FineTuningJob.construct(**reply)
    run = run_of(job)
    assert (run.id, run.status, run.model, run.error, run.trained_tokens) == (
        "ftjob-\ufffd", "failed\ufffd", "ft:\ufffd", "bad \ufffd data", None)
    json.dumps(run.to_dict(), allow_nan=False).encode("utf-8")
    progress_line(job, []).encode("utf-8")


@pytest.mark.parametrize("damage", [{"id": 5}, {"id": ""}, {"status": None}, {"model": ["x"]}, {"trained_tokens": True},
                                    {"trained_tokens": 1.5}], ids=str)
def test_a_damaged_run_in_the_training_record_is_no_run(damage: dict[str, object]) -> None:
    run = TrainingRun("openai", "ftjob-abc", "running", model=None, error=None, trained_tokens=12)
    assert TrainingRun.from_dict(run.to_dict()) == run
    assert TrainingRun.from_dict({**run.to_dict(), **damage}) is None


@pytest.mark.parametrize("job_id", ["..", "ftjob-1/../../files", "ftjob 1", ""])
def test_a_job_id_that_is_no_plain_id_is_never_put_in_a_request_path(sim: SimServer, job_id: str) -> None:
    runtime = ModelRuntime()
    try:
        trainer = OpenAITrainer(runtime, lambda line: None)
        for follow in (trainer.refresh, lambda run: trainer.follow(run, 1.0)):
            with pytest.raises(TrainingError, match="is not a plain id, so no request is made with it"):
                follow(TrainingRun("openai", job_id, "running"))
    finally:
        runtime.close()
    assert sim.requests == []


def test_of_live_jobs_for_the_same_training_the_first_created_is_the_oldest_whatever_their_ids(
        make_sim: Callable[..., SimServer], tmp_path: Path) -> None:
    """Checkouts that start one training at once see each other's jobs, created in the same second as
    likely as not (created_at counts seconds) and with random ids: all must agree on the first created."""
    make_sim(job_seconds=600)
    path = write_jsonl(tmp_path / "train.jsonl", qa_rows(12, "train"))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    request = TrainingRequest(path, sha, 12, None, "gpt-4o-mini-2024-07-18", None, 0,
                              {"training_sha256": sha, FINGERPRINT: "same"}, None, None, None)
    runtime = ModelRuntime()
    try:
        trainer = OpenAITrainer(runtime, lambda line: None)
        runs = [trainer.start(request) for _ in range(6)]
        oldest = trainer.live(request)
    finally:
        runtime.close()
    assert oldest is not None and oldest.id == runs[0].id, (oldest, [run.id for run in runs])
