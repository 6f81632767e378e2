"""A newcomer's first hour: the README's install lines and first test, seeding the simulator, the examples."""

from __future__ import annotations

import re
import shlex
import shutil

import pytest

from .support import HOBANNU, REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    """The README's text under `## title`, up to the next `## ` heading."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_the_readme_installs_from_a_checkout_or_git_url_and_says_where_the_cpu_torch_comes_from() -> None:
    install = "\n".join(blocks(section("Install"), "bash"))
    assert re.search(r"pip install -e \S*pytest-distill", install) and "git+" in install
    assert "download.pytorch.org/whl/cpu" in install and "torch==2.13.0" in install
    assert not re.search(r"pip install \"?pytest-distill(\[\w+\])?\"?\s*($|#)", README, flags=re.M), \
        "not on PyPI yet: no bare `pip install pytest-distill`"


def test_the_readmes_first_test_runs_offline_as_written(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    first = section("A first test")
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
    assert result.ret == pytest.ExitCode.INTERRUPTED
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
    result.assert_outcomes(passed=24)
    for example in ("hobannu", "json_extraction", "quick_reply"):
        assert f"examples/{example}/test_{example}.py" in result.stdout.str()
