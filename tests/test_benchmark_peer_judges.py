"""The benchmark's simulator answers the judge prompts of promptfoo (`factuality`) and DeepEval (GEval) in
the form those tools parse (benchmarks/peer_judges.py, given to the simulator as an answerer); the
simulator that ships answers them as any other free-text request."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from pytest_distill.sim import SimServer

from .support import REPO, module_of


@pytest.fixture(scope="module")
def shared_client() -> Iterator[openai.OpenAI]:
    """The simulator as the benchmark starts it: with the peers' judge prompts answered."""
    peer_answer = module_of(REPO / "benchmarks" / "peer_judges.py").peer_answer
    with SimServer(answerers=[peer_answer]) as running, \
            openai.OpenAI(base_url=running.url, api_key="sk-test", max_retries=0) as sdk:
        yield sdk

EXPECTED = "The capital of France is Paris."
RIGHT = "Paris is the capital of France."
WRONG = "The tallest mountain on Earth is Everest."
PROMPTFOO_SYSTEM = ('You are a precise factuality evaluator ... Respond ONLY with a JSON object in this format:\n'
                    '{\n  "category": "[LETTER]",\n  "reason": "[DETAILED EXPLANATION]"\n}')
GEVAL = """You are an evaluator. ... return a JSON object with two fields:

- `"score"`: an integer between 0 and 10, with 10 indicating strong alignment with the evaluation steps and 0 indicating no alignment.
- `"reason"`: a brief explanation for why the score was given.
---

Evaluation Steps:
1. Check the actual output against the expected output.

Test Case:
Actual Output:
{output} 

Expected Output:
{expected} 


Parameters:
Actual Output and Expected Output
---
JSON:
"""


def promptfoo_verdict(client: openai.OpenAI, output: str) -> dict[str, str]:
    user = (f"I need you to compare these answers:\n\n<question>\nWhat is the capital of France?\n</question>\n\n"
            f"<expert_answer>\n{EXPECTED}\n</expert_answer>\n\n<submitted_answer>\n{output}\n</submitted_answer>\n")
    answer = client.chat.completions.create(model="gpt-4o", messages=[{"role": "system", "content": PROMPTFOO_SYSTEM},
                                                                      {"role": "user", "content": user}])
    return json.loads(answer.choices[0].message.content or "")


def geval_verdict(client: openai.OpenAI, output: str) -> dict[str, object]:
    prompt = GEVAL.format(output=output, expected=EXPECTED)
    answer = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": prompt}],
                                            logprobs=True, top_logprobs=20)
    return json.loads(answer.choices[0].message.content or "")


def test_promptfoo_factuality_gets_a_category_and_a_reason(shared_client: openai.OpenAI) -> None:
    right, wrong = promptfoo_verdict(shared_client, RIGHT), promptfoo_verdict(shared_client, WRONG)
    assert right["category"] in "ABCE" and wrong["category"] == "D"
    assert right["reason"] and wrong["reason"]


def test_geval_gets_a_score_in_its_range_and_a_reason(shared_client: openai.OpenAI) -> None:
    right, wrong = geval_verdict(shared_client, RIGHT), geval_verdict(shared_client, WRONG)
    assert isinstance(right["score"], int) and 0 <= wrong["score"] < right["score"] <= 10
    assert right["reason"]


def test_the_shipped_simulator_leaves_the_peers_prompts_to_its_models() -> None:
    with (SimServer() as running, openai.OpenAI(base_url=running.url, api_key="sk-test", max_retries=0) as sdk,
          pytest.raises(json.JSONDecodeError)):
        promptfoo_verdict(sdk, RIGHT)
