"""The `hf:` provider: a tiny Llama built offline (tests/toy_model.py) answers through the model runtime."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
from pathlib import Path

import pytest

from pytest_distill.models.client import ModelRuntime
from pytest_distill.models.hf import LocalModels
from pytest_distill.models.types import ModelError

from .support import HOBANNU, write_jsonl
from .toy_model import build_toy_model, texts_of

pytestmark = pytest.mark.slow
pytest.importorskip("torch")
pytest.importorskip("peft")

QUESTION = [{"role": "system", "content": "短く答えてください。"},
            {"role": "user", "content": "ホバンヌの1チームは何人ですか？"}]


@pytest.fixture
def runtime() -> ModelRuntime:
    runtime = ModelRuntime()
    yield runtime
    runtime.close()


def random_adapter(base: Path, folder: Path) -> Path:
    """A LoRA adapter with random (non-zero) weights on `base`: it changes the answers, it was never trained."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(str(base))
    lora = LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(model, lora).save_pretrained(str(folder))
    return folder


def test_an_hf_model_answers_with_usage_counted_by_its_tokenizer(runtime: ModelRuntime, toy_model: Path) -> None:
    from transformers import AutoTokenizer

    answer = runtime.chat(f"hf:{toy_model}", QUESTION, max_tokens=7)
    prompt = AutoTokenizer.from_pretrained(str(toy_model)).apply_chat_template(
        QUESTION, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    assert answer.model == f"hf:{toy_model}" and str(answer) == answer.text
    assert answer.usage.prompt_tokens == len(prompt)
    assert 1 <= answer.usage.completion_tokens <= 7
    assert answer.latency_s > 0


def test_greedy_by_default_sampled_with_a_temperature(runtime: ModelRuntime, toy_model: Path) -> None:
    name = f"hf:{toy_model}"
    greedy = [runtime.chat(name, QUESTION, sample=i, max_tokens=12).text for i in range(2)]
    sampled = [runtime.chat(name, QUESTION, temperature=1.5, seed=seed, max_tokens=12).text for seed in (1, 2)]
    again = runtime.chat(name, QUESTION, temperature=1.5, seed=1, max_tokens=12, sample=1).text
    assert greedy[0] == greedy[1]
    assert sampled[0] != sampled[1]
    assert again == sampled[0]


def test_a_model_is_loaded_once_and_answers_concurrent_calls(toy_model: Path) -> None:
    models = LocalModels()
    name = f"hf:{toy_model}"
    questions = [[{"role": "user", "content": text}] for text in texts_of(HOBANNU)[1:9:2]]
    one_by_one = [models.chat(name, question, {"max_tokens": 8}).text for question in questions]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        at_once = list(pool.map(lambda question: models.chat(name, question, {"max_tokens": 8}).text, questions))
    assert models.get(name) is models.get(name)
    assert at_once == one_by_one


def test_an_adapter_is_applied_and_found_from_its_folder(runtime: ModelRuntime, toy_model: Path, tmp_path: Path) -> None:
    adapter = random_adapter(toy_model, tmp_path / "adapter")
    base = runtime.chat(f"hf:{toy_model}", QUESTION, max_tokens=10).text
    explicit = runtime.chat(f"hf:{toy_model}+{adapter}", QUESTION, max_tokens=10).text
    recorded = runtime.chat(f"hf:{adapter}", QUESTION, max_tokens=10).text
    assert explicit == recorded
    assert explicit != base


@pytest.mark.parametrize("name, message", [
    ("hf:{tmp}/missing", "missing: no such model folder"),
    ("hf:{tmp}/t5", "is not a causal language model (its config is T5Config)"),
    ("hf:{toy}+{tmp}/missing", "/missing: no such folder"),
    ("hf:{toy}+{tmp}", "not a PEFT adapter folder"),
])
def test_a_model_that_cannot_load_is_a_model_error_saying_why(runtime: ModelRuntime, toy_model: Path, tmp_path: Path,
                                                              name: str, message: str) -> None:
    from transformers import T5Config

    T5Config(vocab_size=100, d_model=32, num_layers=1, num_heads=2).save_pretrained(str(tmp_path / "t5"))
    with pytest.raises(ModelError, match="hf load") as error:
        runtime.chat(name.format(tmp=tmp_path, toy=toy_model), QUESTION)
    assert message in str(error.value)


def test_an_adapter_for_another_base_says_which_base_it_was_trained_on(runtime: ModelRuntime, toy_model: Path,
                                                                       tmp_path: Path) -> None:
    other = build_toy_model(tmp_path / "other", texts_of(HOBANNU), hidden_size=64)
    adapter = random_adapter(other, tmp_path / "adapter")
    with pytest.raises(ModelError) as error:
        runtime.chat(f"hf:{toy_model}+{adapter}", QUESTION)
    assert f"adapter {adapter} does not fit base {toy_model}: it was trained on {other}" in str(error.value)


def test_a_failed_load_is_not_retried_for_every_call(toy_model: Path, tmp_path: Path) -> None:
    models = LocalModels()
    name = f"hf:{tmp_path}/late"
    with pytest.raises(ModelError, match="no such model folder"):
        models.get(name)
    build_toy_model(tmp_path / "late", ["あいう"])
    with pytest.raises(ModelError, match="no such model folder"):
        models.get(name)


def test_parameters_a_local_model_cannot_honour_are_refused(runtime: ModelRuntime, toy_model: Path) -> None:
    with pytest.raises(ModelError, match="hf: models do not take response_format"):
        runtime.chat(f"hf:{toy_model}", QUESTION, response_format={"type": "json_object"})


def test_a_prompt_longer_than_the_context_is_refused(runtime: ModelRuntime, toy_model: Path) -> None:
    long = [{"role": "user", "content": "ホバンヌ" * 800}]
    with pytest.raises(ModelError, match=r"the prompt is \d+ tokens, the model's context 512"):
        runtime.chat(f"hf:{toy_model}", long)


def test_a_suite_runs_on_an_hf_model(pytester: pytest.Pytester, toy_model: Path, tmp_path: Path) -> None:
    rows = [json.loads(line) for line in HOBANNU.read_text(encoding="utf-8").splitlines()[:3]]
    write_jsonl(pytester.path / "cases.jsonl", rows)
    pytester.makepyfile("""
        import pytest

        @pytest.mark.distill_dataset("cases.jsonl")
        def test_reply(case, model):
            answer = model.complete(case, max_tokens=4)
            assert answer.usage.completion_tokens <= 4 and answer.usage.prompt_tokens > 0
    """)
    result = pytester.runpytest("--model", f"hf:{toy_model}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def hf_children() -> list[int]:
    """The pids of this process's children that run hf: models (Linux: read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
            if parent == os.getpid() and b"pytest_distill.models.hf_process" in command:
                found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the child process through /proc")
def test_api_calls_are_answered_while_an_hf_model_generates(toy_model: Path, make_sim) -> None:
    """The hf: model generates in its own process: the API calls of the same runtime do not wait for it.

    The child is stopped (SIGSTOP) before the hf: call is sent, so the call cannot end until the test
    lets it: every API call made meanwhile is counted, with no race against the model's speed."""
    server = make_sim()
    runtime = ModelRuntime(base_url=server.url, api_key="sk-test")
    try:
        runtime.chat(f"hf:{toy_model}", QUESTION, max_tokens=1)
        [child] = hf_children()
        os.kill(child, signal.SIGSTOP)
        try:
            generating = runtime.submit_chat(f"hf:{toy_model}", QUESTION, sample=1, temperature=1.0, max_tokens=40)
            answered_meanwhile = 0
            for index in range(10):
                runtime.chat("gpt-4o", [{"role": "user", "content": f"question {index}"}])
                answered_meanwhile += not generating.done()
        finally:
            os.kill(child, signal.SIGCONT)
        assert runtime.wait(generating).usage.completion_tokens > 0
    finally:
        runtime.close()
    assert answered_meanwhile == 10
