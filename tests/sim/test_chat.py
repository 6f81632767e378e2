"""POST /chat/completions: request rules, model names, and the deterministic simulated models."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from pytest_distill.sim import SimServer
from pytest_distill.sim.models import GENERIC_ANSWER

from .data import CAPITALS, JAPANESE, ask, capital_answer, capital_question, item_rows, user, write_jsonl


def test_an_unknown_parameter_is_a_400_naming_it(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=[user("hi")], extra_body={"foo": 1})
    assert raised.value.response.json() == {
        "error": {
            "message": "Unrecognized request argument supplied: foo",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


@pytest.mark.parametrize(
    "params, param",
    [({"stream": True}, "stream"), ({"n": 2}, "n"), ({"metadata": {"a": "b"}}, "metadata")],
    ids=["stream", "n", "metadata-without-store"],
)
def test_requests_the_simulator_cannot_honour_are_400s(client: openai.OpenAI, params: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=[user("hi")], **params)
    assert raised.value.response.json()["error"]["param"] == param


@pytest.mark.parametrize(
    "params, param, code",
    [({"temperature": 0}, "temperature", "unsupported_value"), ({"max_tokens": 50}, "max_tokens", "unsupported_parameter")],
)
def test_a_reasoning_model_refuses_what_o_series_models_refuse(
        client: openai.OpenAI, params: dict, param: str, code: str) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="o4-mini", messages=[user("hi")], **params)
    error = raised.value.response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    answer = client.chat.completions.create(model="o4-mini", messages=[user(capital_question("Peru"))],
                                            temperature=1, max_completion_tokens=50)
    assert (answer.model, answer.choices[0].message.content) == ("o4-mini-2025-04-16", capital_answer("Peru"))


def test_an_invalid_role_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match=r"messages\[0\]\.role"):
        narrator = {"role": "narrator", "content": "hi"}
        client.chat.completions.create(model="gpt-4o", messages=[narrator])  # type: ignore[list-item]


@pytest.mark.parametrize(
    "asked, answered",
    [
        ("gpt-4o", "gpt-4o-2024-08-06"),
        ("gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
        ("gpt-4o-2024-11-20", "gpt-4o-2024-11-20"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini-2024-07-18"),
    ],
)
def test_the_answer_names_the_snapshot(client: openai.OpenAI, asked: str, answered: str) -> None:
    assert client.chat.completions.create(model=asked, messages=[user("hi")]).model == answered


def test_an_unknown_model_is_a_404_model_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="gpt-9", messages=[user("hi")])
    error = raised.value.response.json()["error"]
    assert error["code"] == "model_not_found"
    assert error["message"] == "The model `gpt-9` does not exist or you do not have access to it."


def test_an_embedding_model_is_not_a_chat_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="not a chat model"):
        client.chat.completions.create(model="text-embedding-3-small", messages=[user("hi")])


def test_the_answer_has_the_real_message_and_usage(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o", messages=[user(capital_question("Peru"))])
    choice = completion.choices[0]
    assert (choice.message.role, choice.message.refusal, choice.message.annotations) == ("assistant", None, [])
    assert choice.finish_reason == "stop" and completion.system_fingerprint
    usage = completion.usage
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0


def test_max_tokens_truncates_with_finish_reason_length(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o", messages=[user(capital_question("France"))], max_completion_tokens=2
    )
    assert completion.choices[0].finish_reason == "length"
    assert capital_answer("France").startswith(completion.choices[0].message.content or "-")
    assert completion.usage is not None and completion.usage.completion_tokens <= 2


def test_a_stop_sequence_cuts_the_answer(client: openai.OpenAI) -> None:
    assert ask(client, "gpt-4o", capital_question("France"), stop=[" is"]) == "The capital of France"


def test_the_teacher_answers_every_seeded_input_with_its_stored_answer(client: openai.OpenAI) -> None:
    for country in CAPITALS:
        assert ask(client, "gpt-4o", capital_question(country)) == capital_answer(country)
    for question, answer in JAPANESE.items():
        assert ask(client, "gpt-4o", question) == answer


def test_the_teacher_knows_an_input_by_its_last_user_message_whatever_the_system_prompt(client: openai.OpenAI) -> None:
    messages = [{"role": "system", "content": "Be terse."}, user("  What is the capital\nof Kenya? ")]
    answer = client.chat.completions.create(model="gpt-4o", messages=messages)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == capital_answer("Kenya")  # seeded under another system prompt


def test_inputs_that_share_a_user_message_keep_their_own_answers_by_system_prompt_and_earlier_turns(tmp_path: Path) -> None:
    question = user("Translate: good morning")
    shots = [user("Translate: thank you"), {"role": "assistant", "content": "merci"}]
    inputs = {
        "french": [{"role": "system", "content": "Translate into French.", "name": "translator"}, question],
        "german": [{"role": "system", "content": "Translate into German."}, question],
        "few-shot": [{"role": "system", "content": "Translate into French."}, *shots, question],
        "japanese": [{"role": "system", "content": "日本語に翻訳してください。"}, question],
    }
    answers = {"french": "bonjour", "german": "guten Morgen", "few-shot": "bonjour (few-shot)", "japanese": "おはようございます"}
    seed = write_jsonl(tmp_path / "shared.jsonl", [
        {"messages": [*messages, {"role": "assistant", "content": answers[name]}]} for name, messages in inputs.items()
    ])
    with SimServer(seed=[seed]) as server, openai.OpenAI(base_url=server.url, api_key="sk-sim", max_retries=0) as sdk:
        for name, messages in inputs.items():
            reply = sdk.chat.completions.create(model="gpt-4o", messages=messages)  # type: ignore[arg-type]
            assert reply.choices[0].message.content == answers[name], name
        other = [{"role": "system", "content": "Answer briefly."}, question]  # no stored input is this one
        reply = sdk.chat.completions.create(model="gpt-4o", messages=other)  # type: ignore[arg-type]
        assert reply.choices[0].message.content == answers["french"]  # the first stored answer to that user message


def test_an_unknown_input_gets_the_generic_answer(client: openai.OpenAI) -> None:
    assert ask(client, "gpt-4o", "What is the airspeed of an unladen swallow?") == GENERIC_ANSWER
    assert ask(client, "gpt-4o-mini", "What is the airspeed of an unladen swallow?") == GENERIC_ANSWER


def test_the_student_is_wrong_on_a_stable_share_the_same_on_two_servers(tmp_path: Path) -> None:
    rows = item_rows(60, prefix="s")
    seed = write_jsonl(tmp_path / "items.jsonl", rows)
    questions = [row["messages"][0]["content"] for row in rows]
    expected = [row["messages"][1]["content"] for row in rows]
    wrong_sets = []
    for _ in range(2):
        with SimServer(seed=[seed]) as server, openai.OpenAI(base_url=server.url, api_key="k", max_retries=0) as sdk:
            answers = [ask(sdk, "gpt-4o-mini", q) for q in questions]
            assert [ask(sdk, "gpt-4o", q) for q in questions] == expected
        wrong_sets.append({q for q, a, e in zip(questions, answers, expected, strict=False) if a != e})
    assert wrong_sets[0] == wrong_sets[1]
    assert 0.3 <= len(wrong_sets[0]) / len(questions) <= 0.7


def test_a_stored_chat_completion_keeps_its_metadata_and_input(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[user("A new question?")], store=True, metadata={"split": "live"}
    )
    created = raw.parse()
    stored = client.chat.completions.retrieve(created.id)
    assert stored.metadata == {"split": "live"}
    assert stored.choices[0].message.content == created.choices[0].message.content
    assert [m.content for m in client.chat.completions.messages.list(created.id)] == ["A new question?"]
    assert stored.model_extra is not None and stored.model_extra["request_id"] == raw.request_id


def test_sixteen_concurrent_requests_are_all_answered(server: SimServer) -> None:
    server.latency_s = 0.05
    questions = [capital_question(country) for country in CAPITALS] + list(JAPANESE) + ["unknown"]
    with openai.OpenAI(base_url=server.url, api_key="k", max_retries=0) as sdk, ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda q: ask(sdk, "gpt-4o", q), questions[:16]))
    assert answers[:12] == [capital_answer(country) for country in CAPITALS]
    assert len(server.requests) == 16
