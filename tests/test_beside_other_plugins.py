"""Living beside other plugins: a suite that does not use pytest-distill runs as if it were not installed,
a project's own `case`/`model` fixtures and `--model` option keep their meaning, `--help` reads well."""

from __future__ import annotations

import pytest

from pytest_distill.sim import SimServer

OWN_MODEL_OPTION = """
import pytest

def pytest_addoption(parser):
    parser.addoption("--model", default="resnet", help="the project's own model")

@pytest.fixture
def model(request):
    return request.config.getoption("--model")
"""

OWN_FIXTURES = """
import pytest

@pytest.fixture
def case():
    return "my case"

@pytest.fixture
def model():
    return "my model"

@pytest.fixture
def teacher():
    return "my teacher"

@pytest.fixture
def student():
    return "my student"

@pytest.fixture
def judge():
    return "my judge"
"""

PLAIN_SUITE = """
def test_one():
    assert 1 + 1 == 2
"""

SEES_OPENAI = """
import sys

HEAVY = ("openai", "pytest_distill.session", "pytest_distill.recording", "pytest_distill.prefetch",
         "pytest_distill.report.reporter", "pytest_distill.models.client", "pytest_distill.graders.judged")

def pytest_sessionfinish(session):
    with open("modules.txt", "w") as out:
        out.write(" ".join(name for name in HEAVY if name in sys.modules))
"""


def ours(output: str) -> list[str]:
    """The lines of the output that the plugin wrote (pytest's own lines name every plugin, and the test's folder)."""
    return [line for line in output.splitlines()
            if "distill" in line and not line.startswith(("plugins:", "metadata:", "rootdir:", "platform "))]


def test_a_project_with_its_own_model_option_keeps_it(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(OWN_MODEL_OPTION)
    pytester.makepyfile("""
        def test_model(model):
            assert model == "vgg"
    """)
    result = pytester.runpytest("-v", "--model", "vgg")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*::test_model PASSED*"])
    assert ours(result.stdout.str()) == []


def test_with_the_project_owning_model_the_plugin_answers_to_distill_model(pytester: pytest.Pytester, sim: SimServer) -> None:
    pytester.makeconftest(OWN_MODEL_OPTION)
    pytester.makepyfile("""
        import pytest

        @pytest.fixture
        def model_under_test(request):
            return request.getfixturevalue("model")

        def test_project_model(model):
            assert model == "vgg"
    """)
    result = pytester.runpytest("--model", "vgg", "--distill-model", "gpt-4o")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["distill: models gpt-4o; *",
                                 "distill: this project has its own --model; name the models under test with --distill-model"])
    assert result.stdout.str().count("its own --model") == 1


@pytest.mark.parametrize("own_option", [False, True], ids=["free", "taken"])
def test_loaded_from_a_conftest_the_plugin_still_yields_model_to_the_project(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, own_option: bool) -> None:
    """Without entry points the plugin loads from the conftest's `pytest_plugins`, after that conftest's options."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeconftest('pytest_plugins = ["pytest_distill.plugin"]\n' + (OWN_MODEL_OPTION if own_option else ""))
    pytester.makepyfile("""
        def test_model(model):
            assert getattr(model, "name", model) == "vgg"
    """)
    result = pytester.runpytest_subprocess("-v", "--model", "vgg")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*::test_model PASSED*" if own_option else "*::test_model[[]vgg[]] PASSED*"])


def test_distill_model_is_always_a_spelling_of_model(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_reply(model):
            assert model.name
    """)
    result = pytester.runpytest("--collect-only", "-q", "--distill-model", "gpt-4o", "--model", "gpt-4.1")
    result.stdout.fnmatch_lines(["*test_reply[[]gpt-4o[]]", "*test_reply[[]gpt-4.1[]]"])


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_projects_own_fixtures_of_the_plugins_names_win(pytester: pytest.Pytester, workers: list[str]) -> None:
    pytester.makeconftest(OWN_FIXTURES)
    pytester.makepyfile("""
        def test_case(case):
            assert case == "my case"

        def test_model(model):
            assert model == "my model"

        def test_roles(teacher, student, judge):
            assert (teacher, student, judge) == ("my teacher", "my student", "my judge")
    """)
    result = pytester.runpytest("-v", *workers)
    result.assert_outcomes(passed=3)
    result.stdout.no_fnmatch_line("*test_model[[]*")
    assert ours(result.stdout.str()) == []


def test_a_plain_session_shows_nothing_of_the_plugin_and_imports_none_of_its_machinery(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(SEES_OPENAI)
    pytester.makepyfile(PLAIN_SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert ours(result.stdout.str()) == []
    assert (pytester.path / "modules.txt").read_text() == ""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_session_that_only_uses_the_fixtures_gets_its_summary(pytester: pytest.Pytester, workers: list[str]) -> None:
    """No option or ini setting: the first test that asks for `case` switches the plugin on (under xdist,
    the controller, which collects nothing, learns it from the first entry a worker sends)."""
    pytester.makefile(".jsonl", cases='{"id": "q1", "messages": [{"role": "user", "content": "hi"}, '
                                      '{"role": "assistant", "content": "hello"}]}')
    pytester.makepyfile("""
        import pytest
        from pytest_distill import string_check

        @pytest.mark.distill_dataset("cases.jsonl")
        def test_echo(case):
            assert string_check("hello", case.expected)
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *workers)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*distill summary*", "model*string_check rate/mean/n*", "-  *100%*1*0*100%*/ 1.00 / 1*"])


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_module_that_only_imports_a_helper_gets_the_session_and_its_summary(
        pytester: pytest.Pytester, workers: list[str]) -> None:
    """No option, no fixture: importing a helper is use enough (a model-graded one needs the session's judge)."""
    pytester.makepyfile("""
        from pytest_distill import string_check

        def test_plain():
            assert string_check("hello world", "world", "like")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *workers)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*distill summary*", "model*string_check rate/mean/n*"])


def test_a_plain_session_gets_no_plugin_columns_in_its_html_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PLAIN_SUITE)
    result = pytester.runpytest("--html", "report.html")
    result.assert_outcomes(passed=1)
    report = (pytester.path / "report.html").read_text()
    assert 'data-column-type="result"' in report
    assert 'data-column-type="case"' not in report and 'data-column-type="grades"' not in report


def test_help_groups_the_options_with_readable_placeholders_and_defaults(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines([
        "distill: models*",
        "*--model=NAME, --distill-model=NAME",
        "*--teacher=NAME*the teacher model (default: gpt-4o)",
        "*--grader-model=NAME, --judge-model=NAME",
        "distill: datasets:",
        "*--distill-dataset=SPEC*",
        "*'stored' or 'stored:KEY=VALUE,...'*",
        "distill: grading:",
        "distill: reports and baselines:",
        "*--distill-tolerance=RATE*",
        "distill: distillation*",
        "*--distill-min-examples=N*",
        "distill: training backends:",
        "*--distill-lora-rank=N*",
        "*LoRA rank (trl) (default: 16)",
        "distill: the offline simulator:",
        "*--distill-sim *",
    ])
    result.stdout.fnmatch_lines(["*distill_model (linelist):*", "*distill_concurrency (int):*", "*distill_gap_min (float):*",
                                 "*distill_filter (string):*", "*distill_sim_seed (paths):*"])
    assert "DISTILL_" not in result.stdout.str()


def test_judge_model_is_a_spelling_of_grader_model(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PLAIN_SUITE)
    result = pytester.runpytest("--judge-model", "gpt-4.1")
    result.stdout.fnmatch_lines(["distill: models gpt-4o-mini; teacher gpt-4o; judge gpt-4.1"])


def test_model_a_comma_b_is_two_models(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_reply(model):
            assert model.name
    """)
    result = pytester.runpytest("--collect-only", "-q", "--model", "gpt-4o, gpt-4o-mini")
    result.stdout.fnmatch_lines(["*test_reply[[]gpt-4o[]]", "*test_reply[[]gpt-4o-mini[]]", "2 tests collected*"])


@pytest.mark.parametrize("given", ["gpt-4o,", ",", "gpt-4o,,gpt-4o-mini"])
def test_an_empty_model_name_in_a_list_is_a_usage_error(pytester: pytest.Pytester, given: str) -> None:
    pytester.makepyfile(PLAIN_SUITE)
    result = pytester.runpytest("--model", given)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--model: {given!r} names an empty model*"])


def test_a_teacher_is_one_model(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PLAIN_SUITE)
    result = pytester.runpytest("--teacher", "gpt-4o,gpt-4.1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--teacher: 'gpt-4o,gpt-4.1' is not one model name*"])
