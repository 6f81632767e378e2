"""Several endpoints in one run: the model under test on your own server, the judge on OpenAI.

Two simulator instances stand in for the two servers, each taking only its own key, so a call sent to
the wrong one (or with the wrong key) is refused; their request logs show who was asked what.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_distill.sim import SimServer

from .support import TEST_KEY, qa_rows, write_jsonl

LOCAL_KEY = "sk-local-7d1e0c9b8a7f6e5d4c3b2a1f0e9d8c7b"
SUITE = """
import pytest
from pytest_distill import factuality, string_check

@pytest.mark.distill_dataset("{spec}")
def test_reply(case, model):
    out = model.complete(case)
    assert string_check(out, "", "ne")
    factuality(out, case.expected){judge}

def test_endpoints_are_known_by_name(request):
    from pytest_distill.plugin import SESSION
    assert request.config.stash[SESSION].endpoints() == {{"": "{default}", "local": "{local}"}}
"""


@pytest.fixture
def servers(make_sim: Callable[..., SimServer], monkeypatch: pytest.MonkeyPatch) -> tuple[SimServer, SimServer]:
    """OpenAI (the default endpoint, OPENAI_* set for it) and the team's own server, `local`."""
    local = make_sim(api_key=LOCAL_KEY)
    openai = make_sim(api_key=TEST_KEY)
    monkeypatch.setenv("LOCAL_KEY", LOCAL_KEY)
    return openai, local


def project(pytester: pytest.Pytester, tmp_path: Path, servers: tuple[SimServer, SimServer], judge: str = "") -> None:
    openai, local = servers
    spec = write_jsonl(tmp_path / "cases.jsonl", qa_rows(3))
    pytester.makepyfile(SUITE.format(spec=spec, judge=judge, default=openai.url, local=local.url))
    pytester.makeini(f"[pytest]\ndistill_endpoints =\n    local {local.url} LOCAL_KEY\n")


def chat_calls(server: SimServer) -> list[tuple[str, bool]]:
    """(model, is a judge call) of each chat completion the server saw."""
    return [(r.body["model"], "response_format" in r.body) for r in server.requests
            if r.method == "POST" and r.path == "/v1/chat/completions" and r.body]


def test_the_model_under_test_runs_on_its_server_and_the_judge_on_openai(
        pytester: pytest.Pytester, tmp_path: Path, servers: tuple[SimServer, SimServer]) -> None:
    openai, local = servers
    project(pytester, tmp_path, servers)
    result = pytester.runpytest("--model", "local:gpt-4o-mini", "--distill-results", "results.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    assert chat_calls(local) == [("gpt-4o-mini", False)] * 3
    assert chat_calls(openai) and set(chat_calls(openai)) == {("gpt-4o", True)}
    result.stdout.fnmatch_lines(["distill: models local:gpt-4o-mini; teacher gpt-4o; judge gpt-4o",
                                 f"distill: endpoints local at {local.url}", "*local:gpt-4o-mini *100%*"])
    results = json.loads((pytester.path / "results.json").read_text())
    assert {case["model"] for case in results["cases"]} == {"local:gpt-4o-mini"}


def test_a_judge_named_on_an_endpoint_is_asked_there_from_the_option_and_from_judge_argument(
        pytester: pytest.Pytester, tmp_path: Path, servers: tuple[SimServer, SimServer]) -> None:
    openai, local = servers
    project(pytester, tmp_path, servers, judge="\n    factuality(out, case.expected, judge='local:gpt-4o-mini')")
    result = pytester.runpytest("--model", "gpt-4o-mini", "--grader-model", "local:gpt-4o", "-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=4)
    assert set(chat_calls(openai)) == {("gpt-4o-mini", False)}
    assert set(chat_calls(local)) == {("gpt-4o", True), ("gpt-4o-mini", True)}


def test_errors_name_the_role_the_model_the_base_url_and_the_server_s_words(
        pytester: pytest.Pytester, tmp_path: Path, servers: tuple[SimServer, SimServer]) -> None:
    local = servers[1]
    project(pytester, tmp_path, servers)
    result = pytester.runpytest("--model", "local:gpt-4o-mini", "--grader-model", "local:gpt-9", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=3)
    result.stdout.fnmatch_lines([f"*judge 'local:gpt-9' at {local.url}: POST /chat/completions failed (HTTP 404): "
                                 "Error code: 404 - The model `gpt-9` does not exist*"])
    text = result.stdout.str()
    assert LOCAL_KEY not in text and TEST_KEY not in text


def test_an_embedding_model_on_an_endpoint_names_its_role_when_it_fails(
        pytester: pytest.Pytester, tmp_path: Path, servers: tuple[SimServer, SimServer]) -> None:
    local = servers[1]
    pytester.makepyfile("""
        from pytest_distill import embedding_similarity

        def test_close(model):
            embedding_similarity(model.complete("Say hello").text, "hello")
    """)
    pytester.makeini(f"[pytest]\ndistill_endpoints = local {local.url} LOCAL_KEY\ndistill_embedding_model = local:text-embedding-9\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*embeddings 'local:text-embedding-9' at {local.url}: POST /embeddings failed (HTTP 404)*"])


def test_an_endpoint_without_a_key_variable_is_sent_no_key_at_all(
        pytester: pytest.Pytester, tmp_path: Path, make_sim: Callable[..., SimServer]) -> None:
    bare = make_sim()
    openai = make_sim(api_key=TEST_KEY)
    pytester.makepyfile(SUITE.format(spec=write_jsonl(tmp_path / "cases.jsonl", qa_rows(1)), judge="",
                                     default=openai.url, local=bare.url))
    pytester.makeini(f"[pytest]\ndistill_endpoints = local {bare.url}\n")
    result = pytester.runpytest("--model", "local:gpt-4o-mini", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([f"*model under test 'local:gpt-4o-mini' at {bare.url}: *(HTTP 401)*You didn't provide an API key*"])


@pytest.mark.parametrize("lines, said", [
    ("ft http://127.0.0.1:1/v1", "line 1: 'ft' cannot name an endpoint*not ft or hf*"),
    ("local http://[::1/v1", "line 1: the base URL is not usable: it cannot be read as a URL*"),
    ("local http://127.0.0.1:1/v1\n    local http://127.0.0.1:2/v1", "line 2: the endpoint 'local' is declared twice"),
    ("local http://127.0.0.1:1/v1 sk-local-7d1e0c9b8a7f6e5d4c3b2a1f0e9d8c7b",
     "line 1: API_KEY_ENV is the name of an environment variable, not a key; the third field, 41 characters*"),
    ("local", "line 1: expected NAME BASE_URL [[]API_KEY_ENV[]] [[]api=chat|responses[]]"),
], ids=["reserved-name", "bad-url", "twice", "a-key-in-place-of-its-variable", "no-url"])
def test_a_bad_endpoint_line_stops_the_run_at_start_up_without_quoting_it(
        pytester: pytest.Pytester, sim: SimServer, lines: str, said: str) -> None:
    pytester.makepyfile("def test_x(model):\n    model.complete('hi')\n")
    pytester.makeini(f"[pytest]\ndistill_endpoints =\n    {lines}\n")
    result = pytester.runpytest()
    result.stderr.fnmatch_lines([f"*ini distill_endpoints: {said}"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "sk-local" not in result.stderr.str() + result.stdout.str()
    assert sim.requests == []


@pytest.mark.parametrize("pasted", ["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", "AKIAIOSFODNN7EXAMPLE",
                                    "xai_b7Qm2Lp9Zt4Kw8Rv3Ns6"], ids=["groq", "aws", "mixed-case"])
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_an_identifier_shaped_key_in_place_of_its_variable_is_never_shown(
        pytester: pytest.Pytester, sim: SimServer, pasted: str, workers: list[str]) -> None:
    """`gsk_…` is a valid identifier: it used to be taken for a variable's name, and every test said
    "gsk_…SECRET is not set" in the terminal, JUnit, HTML and results. Now the run stops at start-up,
    saying where the value is and what it is made of, never what it is."""
    pytester.makepyfile("def test_x(model):\n    model.complete('hi')\n")
    pytester.makeini(f"[pytest]\ndistill_endpoints = local http://127.0.0.1:1/v1 {pasted}\n")
    result = pytester.runpytest("--model", "local:gpt-4o", "--junitxml", "junit.xml", "--html", "report.html",
                                "--distill-results", "results.json", *workers)
    result.stderr.fnmatch_lines([f"*ini distill_endpoints: line 1: API_KEY_ENV is the name of an environment variable, "
                                 f"not a key; the third field, {len(pasted)} characters (*), is not shaped like one*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    shown = result.stderr.str() + result.stdout.str() + "".join(
        path.read_text(encoding="utf-8", errors="replace") for path in pytester.path.rglob("*") if path.is_file() and path.suffix != ".ini")
    assert pasted[4:12] not in shown
    assert sim.requests == []


@pytest.mark.parametrize("student, said", [
    ("local:llama3", "--student local:llama3: the openai backend creates its fine-tuning job on the default endpoint "
                     "(OPENAI_BASE_URL / OPENAI_API_KEY), not on 'local': name the student 'llama3' there"),
    ("hf:some/model", "--student hf:some/model: an hf: model trains with --distill-backend trl, not openai"),
], ids=["declared-endpoint", "hf"])
def test_a_student_the_openai_backend_cannot_train_stops_the_run_at_start_up(
        pytester: pytest.Pytester, sim: SimServer, student: str, said: str) -> None:
    pytester.makepyfile("def test_x(model):\n    model.complete('hi')\n")
    pytester.makeini("[pytest]\ndistill_endpoints = local http://127.0.0.1:1/v1\n")
    result = pytester.runpytest("--distill", "--distill-backend", "openai", "--student", student)
    result.stderr.fnmatch_lines([f"*{said}*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert sim.requests == []
