"""The distillation loop in real pytest sessions (pytester) against the simulator over HTTP: the gate,
the dry run, the filter, leakage, the fine-tuning job, idempotency, xdist, and waiting."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from pytest_distill.sim import Fault, SimServer

from .openapi_check import validate_request
from .support import TEST_KEY, hears_ctrl_c, qa_rows, requests_to, write_jsonl

RECORDING_SUITE = """
import pytest
from pytest_distill import string_check

@pytest.mark.distill_dataset("cases.jsonl")
def test_reply(case, model):
    string_check(model.complete(case), case.expected)
"""
"""Grades every answer without asserting: the pass rates are measured, the session's exit status
is the loop's alone."""


def start_project(pytester: pytest.Pytester, make_sim: Callable[..., SimServer], *, train: list[dict[str, Any]] | None = None,
                  job_seconds: float = 0.3, suite: str = RECORDING_SUITE) -> SimServer:
    """12 training and 10 test questions seeded as stored teacher completions; the suite's cases are
    the test questions with one reference changed, so the teacher passes 90% and the student 40%."""
    tests = qa_rows(10, "test", "q")
    seeds = write_jsonl(pytester.path / "seed.jsonl", (qa_rows(12, "train", "t") if train is None else train) + tests)
    tests[0]["messages"][-1]["content"] = "A reference that nobody gives."
    write_jsonl(pytester.path / "cases.jsonl", tests)
    pytester.makepyfile(test_suite=suite)
    return make_sim(seed=[seeds], job_seconds=job_seconds)


def creates(server: SimServer) -> tuple[int, int]:
    """How many files were uploaded and fine-tuning jobs created."""
    jobs = [r for r in requests_to(server, "POST", "/fine_tuning/jobs") if r.path.rstrip("/").endswith("/jobs")]
    return len(requests_to(server, "POST", "/files")), len(jobs)


def test_gate_met_uploads_once_and_creates_one_job_tied_to_the_run(pytester: pytest.Pytester, make_sim) -> None:
    server = start_project(pytester, make_sim, job_seconds=60)
    result = pytester.runpytest("--distill", "--distill-suffix", "hobannu", "--distill-epochs", "4",
                                "--distill-lr", "0.5", "--distill-batch-size", "2")
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "*- distillation -*", "distillation gate: MET",
        "  [[]x[]] teacher gpt-4o pass rate 90% >= 90%", "  [[]x[]] gap teacher - student gpt-4o-mini +50% >= 5%",
        "  [[]x[]] 12 valid training examples >= 10 (from stored:split=train)",
        "training data stored:split=train: 12 valid examples, ~* tokens per epoch (estimate)",
        "started openai training ftjob-* of gpt-4o-mini on 12 examples (training file sha256 *)",
        "ftjob-* is *; follow it to the end (no second training starts): pytest --distill * --distill-wait"])
    assert creates(server) == (1, 1)
    upload = requests_to(server, "POST", "/files")[0].body
    assert upload["purpose"] == "fine-tune" and upload["file"]["filename"] == "distill-train.jsonl"
    body = requests_to(server, "POST", "/fine_tuning/jobs")[0].body
    validate_request("post", "/fine_tuning/jobs", body)
    assert body["model"] == "gpt-4o-mini" and body["suffix"] == "hobannu" and isinstance(body["seed"], int)
    assert body["method"] == {"type": "supervised", "supervised": {"hyperparameters": {
        "n_epochs": 4, "learning_rate_multiplier": 0.5, "batch_size": 2}}}
    trained = (pytester.path / ".pytest_cache" / "d" / "distill" / "distill-train.jsonl").read_bytes()
    assert body["metadata"]["training_sha256"] == hashlib.sha256(trained).hexdigest()
    assert body["metadata"]["source"] == "pytest-distill" and body["metadata"]["teacher"] == "gpt-4o"
    assert TEST_KEY not in result.stdout.str()


@pytest.mark.parametrize("option, value, reason", [
    ("--distill-teacher-min", "0.95", "  [[] ] teacher gpt-4o pass rate 90% is below 95%"),
    ("--distill-gap-min", "0.6", "  [[] ] gap teacher - student gpt-4o-mini +50% is below 60%"),
    ("--distill-min-examples", "15", "  [[] ] 12 valid training examples, 3 short of 15 (from stored:split=train)"),
])
def test_gate_not_met_on_each_threshold_alone_starts_nothing_and_says_why(
        pytester: pytest.Pytester, make_sim, option: str, value: str, reason: str) -> None:
    server = start_project(pytester, make_sim)
    result = pytester.runpytest("--distill", option, value)
    result.stdout.fnmatch_lines(["distillation gate: NOT MET", reason, "no training started: the gate is not met"])
    assert result.stdout.str().count("[x]") == 2
    assert result.ret == 0 and creates(server) == (0, 0)


def test_dry_run_writes_the_checked_file_beside_the_results_and_uploads_nothing(pytester: pytest.Pytester, make_sim) -> None:
    server = start_project(pytester, make_sim)
    result = pytester.runpytest("--distill-dry-run", "--distill-results", "out/results.json",
                                "--distill-student-system", "Answer briefly.")
    path = pytester.path / "out" / "distill-train.jsonl"
    result.stdout.fnmatch_lines([f"dry run: training file written to {path.relative_to(pytester.path)}; nothing uploaded"])
    lines = [json.loads(line)["messages"] for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 12 and lines[0][0] == {"role": "system", "content": "Answer briefly."}
    assert all([m["role"] for m in messages] == ["system", "user", "assistant"] for messages in lines)
    assert creates(server) == (0, 0)
    assert json.loads((pytester.path / "out" / "results.json").read_text())["distill"]["gate"]["met"] is True


def test_training_on_the_test_cases_leaves_nothing_and_the_dry_run_says_so(pytester: pytest.Pytester, make_sim) -> None:
    start_project(pytester, make_sim)
    result = pytester.runpytest("--distill-dry-run", "--distill-train", "cases.jsonl")
    result.stdout.fnmatch_lines(["  [[] ] 0 valid training examples, 10 short of 10 (from cases.jsonl)",
                                 "  10 with the same input as a test case (leakage), dropped: q000, q001, q002, q003, q004 and 5 more",
                                 "dry run: no valid training example, so no training file; nothing uploaded"])
    assert not (pytester.path / ".pytest_cache" / "d" / "distill" / "distill-train.jsonl").exists()


def test_training_data_that_cannot_be_read_is_reported_in_the_gate(pytester: pytest.Pytester, make_sim) -> None:
    start_project(pytester, make_sim)
    result = pytester.runpytest("--distill-dry-run", "--distill-train", "stored:split=nowhere")
    result.stdout.fnmatch_lines(["  [[] ] 0 valid training examples, 10 short of 10 (could not be read: *no stored completion matches*"])


def test_leaked_and_duplicate_training_examples_are_dropped_and_reported(pytester: pytest.Pytester, make_sim) -> None:
    train = qa_rows(12, "train", "t")
    leaked = json.loads(json.dumps(qa_rows(10, "test", "q")[3]))
    leaked.update(id="leak", metadata={"split": "train"})
    twin = json.loads(json.dumps(train[0]))
    twin["id"] = "twin"
    start_project(pytester, make_sim, train=[*train, leaked, twin])
    result = pytester.runpytest("--distill-dry-run")
    result.stdout.fnmatch_lines([
        "training data stored:split=train: 12 valid examples*",
        "  1 with the same input as a test case (leakage), dropped: chatcmpl-leak",
        "  1 duplicates, removed: chatcmpl-twin"])
    written = (pytester.path / ".pytest_cache" / "d" / "distill" / "distill-train.jsonl").read_text(encoding="utf-8")
    assert "What is item q3?" not in written


def test_filter_keeps_only_teacher_answers_that_pass_the_suites_deterministic_checks(pytester: pytest.Pytester, make_sim) -> None:
    train = qa_rows(12, "train", "t")
    for index, row in enumerate(train):
        row["messages"][-1]["content"] = json.dumps({"item": index}) if index % 4 else "item: not JSON"
    start_project(pytester, make_sim, train=train, suite=RECORDING_SUITE.replace(
        "import string_check", "import string_check, valid_json").replace(
        "    string_check(", "    valid_json(model.complete(case))\n    string_check("))
    result = pytester.runpytest("--distill-dry-run", "--distill-filter", "--distill-min-examples", "5")
    result.stdout.fnmatch_lines([
        "training data stored:split=train: 9 valid examples*",
        "  3 failed the suite's deterministic checks: valid_json; not replayable (their arguments follow the case): "
        "string_check in test_reply, dropped: chatcmpl-t000 (valid_json: not JSON*"])
    written = (pytester.path / ".pytest_cache" / "d" / "distill" / "distill-train.jsonl").read_text(encoding="utf-8")
    assert len(written.splitlines()) == 9 and "not JSON" not in written


def test_validation_data_is_checked_like_the_training_file_and_sent_with_the_job(pytester: pytest.Pytester, make_sim) -> None:
    server = start_project(pytester, make_sim, job_seconds=60)
    write_jsonl(pytester.path / "validation.jsonl", [*qa_rows(3, "validation", "v"), qa_rows(1, "train", "t")[0]])
    result = pytester.runpytest("--distill", "--distill-validation", "validation.jsonl")
    result.stdout.fnmatch_lines([
        "validation data validation.jsonl: 3 valid examples*",
        "  1 with the same input as a test case or a training example (leakage), dropped: t000"])
    uploads = [r.body["file"]["filename"] for r in requests_to(server, "POST", "/files")]
    assert uploads == ["distill-train.jsonl", "distill-validation.jsonl"]
    assert requests_to(server, "POST", "/fine_tuning/jobs")[0].body["validation_file"].startswith("file-")


def test_a_second_distill_on_the_same_data_starts_no_job_while_the_first_runs(pytester: pytest.Pytester, make_sim) -> None:
    server = start_project(pytester, make_sim, job_seconds=60)
    first = pytester.runpytest("--distill")
    job = re.search(r"started openai training (ftjob-\S+)", first.stdout.str()).group(1)
    second = pytester.runpytest("--distill")
    second.stdout.fnmatch_lines([f"training {job} for the same data is still running (*): no new one started"])
    assert creates(server) == (1, 1)
    third = pytester.runpytest("--distill", "--distill-epochs", "2")
    third.stdout.fnmatch_lines(["started openai training ftjob-*"])
    assert creates(server) == (2, 2)


def test_under_xdist_the_controller_alone_uploads_and_creates_exactly_once(pytester: pytest.Pytester, make_sim) -> None:
    server = start_project(pytester, make_sim, job_seconds=60)
    result = pytester.runpytest("--distill", "-n", "2")
    result.stdout.fnmatch_lines(["distillation gate: MET", "started openai training ftjob-*"])
    assert result.stdout.str().count("distillation gate:") == 1
    assert creates(server) == (1, 1)


def test_wait_follows_the_job_and_prints_the_model_and_the_command_to_rerun(pytester: pytest.Pytester, make_sim) -> None:
    start_project(pytester, make_sim, job_seconds=0.3)
    result = pytester.runpytest("--distill", "--distill-wait")
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "distill: following ftjob-* for up to 7200s (Ctrl-C stops following, not the training)",
        "distill: job ftjob-*: succeeded | The job has successfully completed | trained tokens *",
        "*- distillation -*",
        "ftjob-* succeeded, * trained tokens: distilled model ft:gpt-4o-mini-2024-07-18:sim::*",
        "re-run the suite on it: pytest --basetemp=* --model ft:gpt-4o-mini-2024-07-18:sim::*",
        "side by side: pytest --basetemp=* --model gpt-4o --model gpt-4o-mini --model ft:gpt-4o-mini-2024-07-18:sim::*"])
    model = re.search(r"distilled model (ft:\S+)", result.stdout.str()).group(1)
    again = pytester.runpytest("--model", model)
    assert again.ret == 0 and again.parseoutcomes() == {"passed": 10}


def test_after_wait_the_distilled_model_and_the_rerun_command_are_the_last_lines(pytester: pytest.Pytester, make_sim) -> None:
    start_project(pytester, make_sim, job_seconds=0.3)
    result = pytester.runpytest("--distill", "--distill-wait", "--distill-results", "r.json")
    assert result.ret == 0
    last = [line for line in result.stdout.lines if line.strip()][-2:]
    model = re.search(r"distilled model (ft:\S+)", result.stdout.str()).group(1)
    assert last[0] == f"distill: distilled model {model}", last
    assert re.fullmatch(rf"distill: re-run the suite on it: pytest .*--distill-results r-rerun\.json .*--model {re.escape(model)}",
                        last[1]), last
    results = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))
    assert results["run"]["simulator"] is False and results["run"]["training_data"] == "stored:split=train"


def interrupt_at(pytester: pytest.Pytester, prefix: str) -> str:
    """Run `pytest --distill --distill-wait` in its own process and send it a real SIGINT at the first line
    that starts with `prefix`; its whole output, once it has exited with INTERRUPTED."""
    with subprocess.Popen([sys.executable, "-m", "pytest", "--distill", "--distill-wait", "--distill-timeout", "60",
                           "--distill-results", "out/results.json"], cwd=pytester.path, env=os.environ,
                          preexec_fn=hears_ctrl_c, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as process:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:
            seen.append(line)
            if line.startswith(prefix):
                process.send_signal(signal.SIGINT)
                break
        rest, _ = process.communicate(timeout=120)
    output = "".join(seen) + rest
    assert process.returncode == pytest.ExitCode.INTERRUPTED and "Traceback" not in output, output
    return output


def test_ctrl_c_while_waiting_leaves_the_job_running_and_still_writes_the_results(
        pytester: pytest.Pytester, make_sim) -> None:
    """The tests had all run, so their results are whole."""
    server = start_project(pytester, make_sim, job_seconds=60)
    output = interrupt_at(pytester, "distill: following")
    assert re.search(r"stopped following on Ctrl-C: ftjob-\S+ is left running; follow it again with: pytest --distill "
                     r"--distill-wait", output), output
    assert creates(server) == (1, 1)
    assert not [r for r in requests_to(server, "POST", "/fine_tuning/jobs") if r.path.endswith("/cancel")]
    document = json.loads((pytester.path / "out" / "results.json").read_text(encoding="utf-8"))
    assert len(document["cases"]) == 20 and document["distill"]["interrupted"] is True


def test_ctrl_c_while_uploading_records_no_job_says_so_and_still_writes_the_results(
        pytester: pytest.Pytester, make_sim) -> None:
    server = start_project(pytester, make_sim)
    server.inject(Fault("stall", path="/files", seconds=30))
    output = interrupt_at(pytester, "distill: uploading distill-train.jsonl (12 examples)")
    assert re.search(r"stopped on Ctrl-C while starting the openai training: nothing was recorded, so the next "
                     r"--distill starts anew \(.*\); the training file \S+distill-train.jsonl is kept", output), output
    assert creates(server)[1] == 0
    document = json.loads((pytester.path / "out" / "results.json").read_text(encoding="utf-8"))
    assert len(document["cases"]) == 20 and document["distill"]["run"] is None


def test_wait_on_a_job_that_fails_exits_non_zero_with_the_error_and_a_rerun_starts_anew(
        pytester: pytest.Pytester, make_sim) -> None:
    server = start_project(pytester, make_sim, train=qa_rows(6, "train", "t"))
    result = pytester.runpytest("--distill", "--distill-wait", "--distill-min-examples", "5")
    result.stdout.fnmatch_lines(["distill: job ftjob-*: failed | Training file has 6 example(s), but must have at least 10 examples",
                                 "ftjob-* failed: Training file has 6 example(s), but must have at least 10 examples"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    again = pytester.runpytest("--distill", "--distill-min-examples", "5")
    again.stdout.fnmatch_lines(["the earlier training ftjob-* of the same data failed (Training file has 6 example(s), "
                                "but must have at least 10 examples); starting a new one"])
    assert creates(server) == (2, 2)


def test_a_fine_tuned_model_that_does_not_exist_yet_errors_every_case_saying_so(pytester: pytest.Pytester, make_sim) -> None:
    start_project(pytester, make_sim)
    result = pytester.runpytest("--model", "ft:gpt-4o-mini-2024-07-18:sim::notyet")
    result.assert_outcomes(errors=10)
    result.stdout.fnmatch_lines([
        "*model under test 'ft:gpt-4o-mini-2024-07-18:sim::notyet' at http://127.0.0.1:*/v1: "
        "POST /chat/completions failed (HTTP 404): *does not exist* "
        "(a fine-tuned model exists once its job has succeeded (`pytest --distill --distill-wait` follows the job and "
        "prints its name); if it was deleted or has retired, answer from its recorded answers: a model named "
        "recorded:FILE.jsonl (also as --teacher) stands in for it*"])


def test_wait_gives_up_at_the_timeout_leaving_the_job_running(pytester: pytest.Pytester, make_sim) -> None:
    start_project(pytester, make_sim, job_seconds=60)
    result = pytester.runpytest("--distill", "--distill-wait", "--distill-timeout", "0.2")
    result.stdout.fnmatch_lines(["ftjob-* is still * after 0.2s (--distill-timeout); it is left running; "
                                 "follow it again with: pytest --distill --distill-wait --distill-timeout 0.2 --basetemp=*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_an_upload_the_server_refuses_is_a_clear_error_and_no_job(pytester: pytest.Pytester, make_sim) -> None:
    server = start_project(pytester, make_sim)
    server.inject(Fault("429", count=10, path="/files", retry_after=0.01))
    result = pytester.runpytest("--distill")
    result.stdout.fnmatch_lines(["could not start training: POST /files on http://127.0.0.1:*/v1 failed (HTTP 429): *Rate limit reached*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED and creates(server)[1] == 0


def test_an_unknown_backend_is_refused_before_any_model_is_called(pytester: pytest.Pytester, make_sim) -> None:
    server = start_project(pytester, make_sim)
    result = pytester.runpytest("--distill", "--distill-backend", "nope")
    result.stderr.fnmatch_lines(["*--distill-backend 'nope' is not one of openai*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR and server.requests == []


def read_until(process: subprocess.Popen[str], text: str) -> str:
    """A process's output up to the first line that holds `text`, or all of it if it ends first."""
    assert process.stdout is not None
    lines = []
    for line in iter(process.stdout.readline, ""):
        lines.append(line)
        if text in line:
            break
    return "".join(lines)


def test_two_runs_ending_at_once_on_the_same_data_start_one_job(pytester: pytest.Pytester, make_sim) -> None:
    """The first run is held inside its upload (it has checked the record and holds the lock) until the
    second has come to the lock; then both go on: the second finds the first one's job."""
    server = start_project(pytester, make_sim, job_seconds=60)
    server.inject(Fault("stall", path="/files", seconds=300))
    command = [sys.executable, "-m", "pytest", "--distill"]
    options: dict[str, Any] = {"cwd": pytester.path, "env": os.environ, "stdin": subprocess.DEVNULL,
                               "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    with subprocess.Popen(command, **options) as first:
        outputs = [read_until(first, "distill: uploading distill-train.jsonl"), ""]
        with subprocess.Popen(command, **options) as second:
            outputs[1] = read_until(second, "waiting for it")
            server.end_stalls()
            outputs[1] += second.communicate(timeout=300)[0]
        outputs[0] += first.communicate(timeout=300)[0]
    assert creates(server) == (1, 1), outputs
    assert "distill: another run of this project is starting a training: waiting for it" in outputs[1], outputs[1]
    job = re.search(r"started openai training (ftjob-\S+)", outputs[0]).group(1)
    assert f"training {job} for the same data is still running" in outputs[1], outputs[1]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_two_project_folders_on_the_same_data_make_one_job(
        pytester: pytest.Pytester, make_sim, monkeypatch: pytest.MonkeyPatch, workers: list[str]) -> None:
    """The record of started trainings lives in each folder's .pytest_cache: a second checkout knew
    nothing of the first one's job. Before creating a job, the server's jobs are listed by the training
    file's sha256 (their metadata): a live one for the same data and settings is followed instead."""
    server = start_project(pytester, make_sim, job_seconds=60)
    first = pytester.runpytest("--distill")  # under xdist only the run that finds the job: one xdist start, not three
    job = re.search(r"started openai training (ftjob-\S+)", first.stdout.str()).group(1)
    other = pytester.path / "other-checkout"
    other.mkdir()
    for name in ("cases.jsonl", "test_suite.py"):
        (other / name).write_bytes((pytester.path / name).read_bytes())
    monkeypatch.chdir(other)
    second = pytester.runpytest("--distill", "--rootdir", str(other), str(other), *workers)
    second.stdout.fnmatch_lines([f"training {job} of the same data and settings is already * on the server, started "
                                 "elsewhere (another checkout or CI job): following it, no new one started"])
    assert (other / ".pytest_cache").is_dir()
    assert creates(server) == (1, 1)
    [listing] = requests_to(server, "GET", "/fine_tuning/jobs")[-1:]
    trained = (other / ".pytest_cache" / "d" / "distill" / "distill-train.jsonl").read_bytes()
    assert listing.query == {"metadata[training_sha256]": [hashlib.sha256(trained).hexdigest()], "limit": ["100"]}
    third = pytester.runpytest("--distill", "--distill-epochs", "2", "--rootdir", str(other), str(other))
    third.stdout.fnmatch_lines(["started openai training ftjob-*"])
    assert creates(server) == (2, 2)


def test_two_checkouts_starting_the_same_training_at_once_keep_one_job(pytester: pytest.Pytester, make_sim) -> None:
    """Both runs list the server's jobs (none yet) and are held inside their uploads; released, both
    create a job. Each then looks again: the one whose job is not the oldest cancels it before it
    trains and follows the oldest."""
    server = start_project(pytester, make_sim, job_seconds=60)
    folders = [pytester.path / "a", pytester.path / "b"]
    for folder in folders:
        folder.mkdir()
        for name in ("cases.jsonl", "test_suite.py"):
            (folder / name).write_bytes((pytester.path / name).read_bytes())
    server.inject(Fault("stall", path="/files", seconds=300, count=2))
    options: dict[str, Any] = {"env": os.environ, "stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE,
                               "stderr": subprocess.STDOUT, "text": True}
    command = [sys.executable, "-m", "pytest", "--distill"]
    with subprocess.Popen([*command, "--rootdir", str(folders[0]), str(folders[0])], cwd=folders[0], **options) as first, \
            subprocess.Popen([*command, "--rootdir", str(folders[1]), str(folders[1])], cwd=folders[1], **options) as second:
        outputs = [read_until(process, "distill: uploading distill-train.jsonl") for process in (first, second)]
        server.end_stalls()
        outputs = [output + process.communicate(timeout=300)[0] for output, process in zip(outputs, (first, second), strict=True)]
    assert creates(server) == (2, 2), outputs
    cancels = [r.path for r in requests_to(server, "POST", "/fine_tuning/jobs/") if r.path.endswith("/cancel")]
    assert len(cancels) == 1, outputs
    cancelled = cancels[0].split("/")[-2]
    kept = {re.search(r"started openai training (ftjob-\S+)", output).group(1) for output in outputs} - {cancelled}
    assert len(kept) == 1, outputs
    [job] = kept
    assert sum(f"{job} for the same data and settings was created elsewhere a moment earlier: {cancelled} is cancelled "
               f"before it trained, and {job} is followed" in " ".join(output.split()) for output in outputs) == 1, outputs
