"""A newcomer's first hour: the install lines and first test of the README and of the docs' Getting started,
seeding the simulator, the examples."""

from __future__ import annotations

import re
import shlex
import shutil

import pytest

from .support import HOBANNU, REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
FIRST_PAGES = ["README.md", "docs/getting-started.md"]
"""Where a newcomer reads how to install and the first test: each must work as written."""


def section(title: str, page: str = "README.md") -> str:
    """A page's text under `## title`, up to the next `## ` heading."""
    text = (REPO / page).read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("page", FIRST_PAGES)
def test_install_is_from_a_clone_or_the_git_url_and_says_where_the_cpu_torch_comes_from(page: str) -> None:
    install = "\n".join(blocks(section("Install", page), "bash"))
    assert re.search(r"pip install -e \S*pytest-distill", install) and "git+" in install
    assert "download.pytorch.org/whl/cpu" in install
    text = (REPO / page).read_text(encoding="utf-8")
    assert not re.search(r"pip install \"?pytest-distill(\[\w+\])?\"?\s*($|#)", text, flags=re.M), \
        "not on PyPI yet: no bare `pip install pytest-distill`"
    assert "GIT_URL" not in text, "a placeholder no reader can fill in"


def test_the_readme_is_a_landing_page_of_at_most_12_kb() -> None:
    assert len(README.encode("utf-8")) <= 12288


@pytest.mark.parametrize("page", FIRST_PAGES)
def test_the_first_test_runs_offline_as_written(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    first = section("A first test", page)
    (code,), (data,) = blocks(first, "python"), blocks(first, "jsonl")
    name = re.match(r"# (\S+\.py)\n", code)
    assert name is not None
    pytester.path.joinpath(name.group(1)).write_text(code, encoding="utf-8")
    pytester.path.joinpath("support.jsonl").write_text(data, encoding="utf-8")
    cases = len(data.splitlines())
    offline = [line.split("#")[0] for block in blocks(first, "bash") for line in block.splitlines() if "--distill-sim" in line]
    assert len(offline) == 2 and all("--distill-sim-seed support.jsonl" in line for line in offline)
    student, teacher = (pytester.runpytest(*shlex.split(line)[1:]) for line in offline)
    student_outcomes = student.parseoutcomes()
    assert "error" not in student_outcomes and "errors" not in student_outcomes
    assert student_outcomes.get("passed", 0) + student_outcomes.get("failed", 0) == cases
    teacher.assert_outcomes(passed=cases)


def test_an_unseeded_simulator_asked_for_stored_cases_says_how_to_seed_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.distill_dataset("stored:split=test")
        def test_reply(case, model):
            pass
    """)
    result = pytester.runpytest("--distill-sim")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*the simulator (--distill-sim) holds no stored completions: seed it with "
                                 "--distill-sim-seed FILE.jsonl (repeatable) or the ini setting distill_sim_seed*"])


def test_sim_seeds_on_the_command_line_replace_the_inis_and_an_unreadable_one_stops_the_run(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ndistill_sim_seed = nowhere.jsonl\n")
    pytester.makepyfile("""
        import pytest

        @pytest.mark.distill_dataset("stored:split=test")
        def test_reply(case, model):
            pass
    """)
    (pytester.path / "data").mkdir()
    shutil.copy(HOBANNU, pytester.path / "data" / "first.jsonl")
    result = pytester.runpytest("--distill-sim", "--distill-sim-seed", "data/first.jsonl")
    result.assert_outcomes(passed=12)
    refused = pytester.runpytest("--distill-sim")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["ERROR: --distill-sim-seed / ini distill_sim_seed: *nowhere.jsonl: cannot read the seed file*"])
    assert "INTERNALERROR" not in refused.stdout.str() + refused.stderr.str()


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_pytest_examples_with_the_simulator_runs_every_example_at_once(pytester: pytest.Pytester, workers: list[str]) -> None:
    shutil.copytree(REPO / "examples", pytester.path / "examples")
    result = pytester.runpytest("examples", "--distill-sim", "--model", "gpt-4o", "-v", *workers)
    result.assert_outcomes(passed=40)
    for example in ("hobannu", "json_extraction", "quick_reply", "judged_data"):
        assert f"examples/{example}/test_{example}.py" in result.stdout.str()
