"""`python -m pytest_distill.evals import REGISTRY.yaml`: openai/evals registry evals become pytest files whose
verdicts are the registry's, run offline against the simulator seeded with the registry's own data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_distill.evals.__main__ import main

from .support import REPO

FIXTURE = REPO / "tests" / "registry"
VERDICTS = {
    # Match: the answer starts with an ideal (line 1 answered with the ideal itself, from the registry seed)
    "test_capitals_match[line1": True, "test_capitals_match[line2": False, "test_capitals_match[line3": True,
    # Includes (ignore_case): "It is PARIS." holds "paris"; "교토입니다." holds no "도쿄"; line 3: the first ideal
    "test_capitals_includes[line1": True, "test_capitals_includes[line2": False, "test_capitals_includes[line3": True,
    # FuzzyMatch: "The city councilmen feared violence." / "city councilmen"; 上海 inside 上海市; חיפה is no תל אביב
    "test_capitals_fuzzy[line1": True, "test_capitals_fuzzy[line2": True, "test_capitals_fuzzy[line3": False,
    # JsonMatch: the ideal's own JSON; a missing "country"
    "test_capitals_json[line1": True, "test_capitals_json[line2": False,
    # fact (cot_classify): the expert answer itself is C; 巴西 disagrees with 长城在中国 (D)
    "test_capitals_fact[line1": True, "test_capitals_fact[line2": False, "test_capitals_fact[line3": True,
    # closedqa with criteria "mentions Jerusalem": Jerusalem (Y), Tel Aviv (N)
    "test_capitals_closedqa[line1": True, "test_capitals_closedqa[line2": False,
    # the registry's own spec names-the-city (eval_type classify): Seoul (Y), Pyongyang (N)
    "test_capitals_named[line1": True, "test_capitals_named[line2": False,
    "test_capitals_choice_not_converted": False,
}


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    """A copy of the hand-made registry (evals/, data/, modelgraded/, and the answers the model gives)."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "registry"))


def test_a_registry_file_becomes_one_suite_per_eval_that_gives_the_registrys_verdicts(
        pytester: pytest.Pytester, registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tests = pytester.path / "tests"
    assert main(["import", str(registry / "evals" / "capitals.yaml"), "-o", str(tests)]) == 0
    said = capsys.readouterr().out
    assert "wrote" in said and "test_capitals_fact.py: converted: capitals-fact" in said
    assert "NOT converted: capitals-choice (evals.elsuite.multiple_choice:MultipleChoice)" in said
    written = sorted(path.name for path in tests.glob("*.py"))
    assert written == [f"test_capitals_{name}.py" for name in
                       ("choice", "closedqa", "fact", "fuzzy", "includes", "json", "match", "named")]
    assert (tests / "test_capitals_match.jsonl").read_bytes() == (registry / "data" / "capitals" / "match.jsonl").read_bytes()
    fact = (tests / "test_capitals_fact.py").read_text(encoding="utf-8")
    assert "[Expert]: {ideal}" in fact and "PASSING = ['A', 'B', 'C', 'E']" in fact and "eval_type='cot_classify'" in fact
    assert "CHOICES = ['Y', 'N']" in (tests / "test_capitals_named.py").read_text(encoding="utf-8")

    seeds = [arg for path in [registry / "answers.jsonl", *sorted(tests.glob("*.py"))] for arg in ("--distill-sim-seed", str(path))]
    for workers in ([], ["-n", "2"]):
        result = pytester.runpytest("tests", "--distill-sim", *seeds, "--model", "gpt-4o", "--distill-results", "results.json",
                                    "-p", "no:cacheprovider", *workers)
        outcomes = {entry["nodeid"].split("::")[-1]: entry["outcome"]
                    for entry in json.loads((pytester.path / "results.json").read_text(encoding="utf-8"))["cases"]}
        got = {key: any(node.startswith(key) and outcome == "passed" for node, outcome in outcomes.items()) for key in VERDICTS}
        assert got == VERDICTS, result.stdout.str()
        result.assert_outcomes(passed=11, failed=8)


def hostile_registry(root: Path, name: str) -> Path:
    (root / "data").mkdir(parents=True)
    (root / "data" / "s.jsonl").write_text('{"input": "q", "ideal": "a"}\n', encoding="utf-8")
    (root / "evals").mkdir()
    path = root / "evals" / "hostile.yaml"
    path.write_text(yaml.safe_dump({name: {"id": f"{name}.dev.v0"}, f"{name}.dev.v0": {
        "class": "evals.elsuite.basic.match:Match", "args": {"samples_jsonl": "s.jsonl"}}}, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ['수도 """\n\'; import os; os.system("x") #', "\\u2028'''\r\n\u2028", "平\x00"])
def test_a_hostile_eval_name_is_a_literal_of_the_written_file(tmp_path: Path, name: str,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = hostile_registry(tmp_path / "reg", name)
    assert main(["import", str(path), "-o", str(tmp_path / "out")]) == 0
    (written,) = (tmp_path / "out").glob("*.py")
    source = written.read_text(encoding="utf-8")
    compile(source, str(written), "exec")
    namespace: dict[str, object] = {}
    exec(compile(source.replace("pytestmark", "marked"), str(written), "exec"), namespace)  # defines a test; runs nothing
    test = next(value for key, value in namespace.items() if key.startswith("test_"))
    grade_names: list[str] = []

    class Answer:
        text = "a"

    class Case:
        references = ("a",)

    class Model:
        def complete(self, case: object) -> Answer:
            return Answer()

    from pytest_distill.grades import Scope, scoped

    with scoped(Scope()) as scope:
        test(Case(), Model())  # type: ignore[operator]
        grade_names = [grade.name for grade in scope.grades]
    assert grade_names == [name]


def test_yaml_is_read_safely(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    laughs = "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    (tmp_path / "laughs.yaml").write_text(laughs, encoding="utf-8")
    assert main(["import", str(tmp_path / "laughs.yaml")]) == 2
    assert "expand to more than 200000 nodes (a billion-laughs YAML?): refused" in capsys.readouterr().err

    (tmp_path / "tag.yaml").write_text("x: !!python/object/apply:os.system ['touch pwned']\n", encoding="utf-8")
    assert main(["import", str(tmp_path / "tag.yaml")]) == 2
    assert "not YAML: could not determine a constructor for the tag" in capsys.readouterr().err
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()

    (tmp_path / "loop.yaml").write_text("a: &a [1, *a]\n", encoding="utf-8")
    assert main(["import", str(tmp_path / "loop.yaml")]) == 2
    assert "recursive YAML" in capsys.readouterr().err

    (tmp_path / "deep.yaml").write_text("a: " + "[" * 20000 + "]" * 20000 + "\n", encoding="utf-8")
    assert main(["import", str(tmp_path / "deep.yaml")]) == 2
    assert "nested too deep" in capsys.readouterr().err


def test_what_cannot_be_converted_is_named_with_a_failing_placeholder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reg = tmp_path / "reg"
    path = hostile_registry(reg, "ok")
    path.write_text(path.read_text(encoding="utf-8") + "\n" + "\n".join([
        "outside: {id: outside.v0}",
        "outside.v0: {class: 'evals.elsuite.basic.match:Match', args: {samples_jsonl: ../../secret.txt}}",
        "missing: {id: missing.v0}",
        "missing.v0: {class: 'evals.elsuite.basic.match:Match', args: {samples_jsonl: nowhere.jsonl}}",
        "spec: {id: spec.v0}",
        "spec.v0: {class: 'evals.elsuite.modelgraded.classify:ModelBasedClassify', args: {samples_jsonl: s.jsonl, "
        "modelgraded_spec: unknown-spec}}",
        "few: {id: few.v0}",
        "few.v0: {class: 'evals.elsuite.basic.match:Match', args: {samples_jsonl: s.jsonl, num_few_shot: 2}}",
        "no-eval-type: {id: no-eval-type.v0}",
        "no-eval-type.v0: {class: 'evals.elsuite.modelgraded.classify:ModelBasedClassify', args: {samples_jsonl: s.jsonl, "
        "modelgraded_spec: fact}}",
        "dangling: {id: nowhere.v0}",
    ]) + "\n", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("sk-secret\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["import", str(path), "-o", str(out)]) == 0
    said = capsys.readouterr().out
    for reason in ("lies outside the registry's data folder", "'nowhere.jsonl' is no file", "modelgraded_spec 'unknown-spec' "
                   "is not found", "few-shot prompts (num_few_shot) are not converted", "eval_type None is none of classify",
                   "'dangling': its id 'nowhere.v0' is defined nowhere in this file"):
        assert reason in said, said
    assert not any("sk-secret" in path.read_text(encoding="utf-8") for path in out.iterdir())
    outside = (out / "test_outside.py").read_text(encoding="utf-8")
    assert "pytest.fail(" in outside and "distill_dataset" not in outside


def test_several_evals_need_a_folder_and_the_registry_root_is_found(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "registry")
    done = subprocess.run([sys.executable, "-m", "pytest_distill.evals", "import", "registry/evals/capitals.yaml", "-o", "t.py"],
                          cwd=tmp_path, capture_output=True, text=True, check=False,
                          env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and "defines 8 evals, one test file each: -o names their folder" in done.stderr
    (tmp_path / "elsewhere").mkdir()
    shutil.move(tmp_path / "registry" / "evals" / "capitals.yaml", tmp_path / "elsewhere" / "capitals.yaml")
    assert main(["import", str(tmp_path / "elsewhere" / "capitals.yaml"), "--registry", str(tmp_path / "registry"),
                 "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "test_capitals_named.jsonl").is_file()
