"""Registry samples and the files `evals import` writes seed the simulator; registry judge prompts get registry answers."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from pytest_distill.graders.registry import read_choice
from pytest_distill.sim import SeedError, SimServer

from .conftest import CLIENT_KEY
from .data import write_jsonl


def ask(server: SimServer, messages: list[dict[str, str]], model: str = "gpt-4o") -> str:
    with openai.OpenAI(base_url=server.url, api_key=CLIENT_KEY, max_retries=0) as sdk:
        return sdk.chat.completions.create(model=model, messages=messages).choices[0].message.content or ""  # type: ignore[arg-type]


def test_registry_lines_seed_the_teacher_with_the_first_ideal(tmp_path: Path) -> None:
    seed = write_jsonl(tmp_path / "samples.jsonl", [
        {"input": "대한민국의 수도는?", "ideal": ["서울", "Seoul"]},
        {"input": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "中国的首都？"}], "ideal": "北京"},
        {"input": "מהי בירת ישראל?"},  # a model-graded sample without an ideal seeds nothing
        {"input": "JSON?", "ideal": {"capital": "서울"}},
    ])
    with SimServer(seed=[seed]) as server:
        assert server.seeded == 3
        assert ask(server, [{"role": "user", "content": "대한민국의 수도는?"}]) == "서울"
        assert ask(server, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "中国的首都？"}]) == "北京"
        assert ask(server, [{"role": "user", "content": "JSON?"}]) == '{"capital": "서울"}'


def test_a_written_test_file_seeds_the_cases_of_its_dataset_and_is_never_run(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "test_x.jsonl", [{"input": "q", "ideal": "a"}])
    (tmp_path / "test_x.py").write_text(
        "import pytest\nraise SystemExit('never run')\npytestmark = pytest.mark.distill_dataset('test_x.jsonl')\n", encoding="utf-8")
    (tmp_path / "test_placeholder.py").write_text("def test_nothing():\n    pass\n", encoding="utf-8")
    with SimServer(seed=[tmp_path / "test_x.py", tmp_path / "test_placeholder.py"]) as server:
        assert server.seeded == 1 and ask(server, [{"role": "user", "content": "q"}]) == "a"
    (tmp_path / "test_bad.py").write_text("def (:\n", encoding="utf-8")
    with pytest.raises(SeedError, match=r"test_bad\.py: cannot read the test file"):
        SimServer(seed=[tmp_path / "test_bad.py"])
    write_jsonl(tmp_path / "wrong.jsonl", [{"input": [{"role": "wizard", "content": "q"}], "ideal": "a"}])
    with pytest.raises(SeedError, match=r"wrong\.jsonl:1: input\[0\]\.role"):
        SimServer(seed=[tmp_path / "wrong.jsonl"])


FACT = ("[BEGIN DATA]\n***\n[Question]: {q}\n***\n[Expert]: {expert}\n***\n[Submission]: {answer}\n***\n[END DATA]\n"
        "Then print only a single choice ... At the end, repeat just the answer by itself on a new line.\n\nReasoning:")
CLOSEDQA = "[Task]: {q}\n***\n[Submission]: {answer}\n***\n[Criterion]: {criterion}\n***\n[END DATA]\nDoes it? Answer Y or N."


@pytest.mark.parametrize("prompt, choices, eval_type, choice", [
    (FACT.format(q="수도?", expert="서울", answer="서울"), "ABCDE", "cot_classify", "C"),
    (FACT.format(q="首都？", expert="北京", answer="上海"), "ABCDE", "cot_classify", "D"),
    (CLOSEDQA.format(q="Capital?", answer="Jerusalem", criterion="mentions Jerusalem"), "YN", "classify", "Y"),
    (CLOSEDQA.format(q="Capital?", answer="Tel Aviv", criterion="mentions Jerusalem"), "YN", "classify", "N"),
])
def test_registry_judge_prompts_get_a_choice_the_registry_reads(shared_client: openai.OpenAI, prompt: str, choices: str,
                                                                 eval_type: str, choice: str) -> None:
    answer = shared_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": prompt}])
    text = answer.choices[0].message.content or ""
    assert read_choice(text, list(choices), eval_type) == choice
    assert text.splitlines()[-1] == choice  # free text: the choice on its own line, last
