"""Seeding and the stored-completion endpoints: list, filters, pages, messages, update, delete."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from pytest_distill.sim import SeedError, SimServer

from .data import CAPITALS, LONG_TURNS, capital_answer, capital_question, chat_row, seed_rows, user, write_jsonl

SEEDED = len(seed_rows())


def test_each_seed_line_is_a_stored_teacher_completion_in_file_order(client: openai.OpenAI) -> None:
    stored = list(client.chat.completions.list(limit=100))
    assert len(stored) == SEEDED
    assert [c.id for c in stored[:2]] == ["chatcmpl-cap-france", "chatcmpl-cap-japan"]
    assert [c.created for c in stored] == sorted(c.created for c in stored)
    assert len({c.created for c in stored}) == SEEDED
    first = stored[0]
    assert (first.model, first.metadata) == ("gpt-4o-2024-08-06", {"app": "geo", "split": "train"})
    assert first.choices[0].message.content == capital_answer("France")


def test_seeds_without_an_id_get_the_same_id_in_every_run(seed_file: Path) -> None:
    runs = []
    for _ in range(2):
        with SimServer(seed=[seed_file]) as server, openai.OpenAI(base_url=server.url, api_key="k") as sdk:
            runs.append([c.id for c in sdk.chat.completions.list(metadata={"app": "ja"})])
    assert runs[0] == runs[1] and len(runs[0]) == 3
    assert all(i.startswith("chatcmpl-") for i in runs[0])


def test_the_list_pages_by_twenty_with_has_more_and_after(client: openai.OpenAI) -> None:
    first = client.chat.completions.list()
    assert (len(first.data), first.has_more) == (20, True)
    second = client.chat.completions.list(after=first.data[-1].id)
    assert (len(second.data), second.has_more) == (SEEDED - 20, False)
    assert [c.id for c in client.chat.completions.list()] == [c.id for c in first.data + second.data]
    raw = client.chat.completions.with_raw_response.list().http_response.json()
    assert (raw["first_id"], raw["last_id"]) == (first.data[0].id, first.data[-1].id)


def test_order_desc_reverses_the_list(client: openai.OpenAI) -> None:
    ascending = [c.id for c in client.chat.completions.list(limit=100)]
    assert [c.id for c in client.chat.completions.list(limit=100, order="desc")] == ascending[::-1]


def test_limit_above_the_maximum_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="Expected a value <= 100"):
        client.chat.completions.list(limit=101)


def test_metadata_filters_combine(client: openai.OpenAI) -> None:
    tests = list(client.chat.completions.list(metadata={"app": "geo", "split": "test"}))
    assert len(tests) == len(CAPITALS) // 2
    assert all(c.metadata == {"app": "geo", "split": "test"} for c in tests)
    assert list(client.chat.completions.list(metadata={"app": "nowhere"})) == []


def test_the_model_filter_matches_alias_and_snapshot(client: openai.OpenAI) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=[user("hi")], store=True)
    assert len(list(client.chat.completions.list(model="gpt-4o", limit=100))) == SEEDED
    assert len(list(client.chat.completions.list(model="gpt-4o-2024-08-06", limit=100))) == SEEDED
    assert [c.model for c in client.chat.completions.list(model="gpt-4o-mini")] == ["gpt-4o-mini-2024-07-18"]


def test_a_long_conversations_messages_page_by_twenty(client: openai.OpenAI, server: SimServer) -> None:
    first = client.chat.completions.messages.list("chatcmpl-long")
    assert (len(first.data), first.has_more) == (20, True)
    messages = list(client.chat.completions.messages.list("chatcmpl-long"))
    assert [m.content for m in messages] == [f"turn {i}" for i in range(LONG_TURNS)]
    assert [m.id for m in messages[:2]] == ["chatcmpl-long-0", "chatcmpl-long-1"]
    assert [m.role for m in messages[:2]] == ["user", "assistant"]
    pages = [r for r in server.requests if r.path.endswith("/messages")]
    assert pages[-1].query["after"] == ["chatcmpl-long-19"]


def test_messages_in_descending_order(client: openai.OpenAI) -> None:
    messages = client.chat.completions.messages.list("chatcmpl-long", order="desc", limit=3)
    assert [m.content for m in messages.data] == [f"turn {i}" for i in (30, 29, 28)]


def test_update_changes_only_the_metadata(client: openai.OpenAI) -> None:
    updated = client.chat.completions.update("chatcmpl-cap-peru", metadata={"split": "holdout"})
    assert updated.metadata == {"split": "holdout"}
    assert client.chat.completions.retrieve("chatcmpl-cap-peru").metadata == {"split": "holdout"}
    with pytest.raises(openai.BadRequestError, match="Unrecognized request argument supplied: model"):
        client.chat.completions.update("chatcmpl-cap-peru", metadata={}, extra_body={"model": "gpt-4o-mini"})


def test_delete_removes_the_completion_and_its_messages(client: openai.OpenAI) -> None:
    deleted = client.chat.completions.delete("chatcmpl-cap-peru")
    assert (deleted.object, deleted.id, deleted.deleted) == ("chat.completion.deleted", "chatcmpl-cap-peru", True)
    for call in (client.chat.completions.retrieve, client.chat.completions.messages.list, client.chat.completions.delete):
        with pytest.raises(openai.NotFoundError):
            call("chatcmpl-cap-peru")
    assert ask_capital(client, "Peru") == capital_answer("Peru"), "the teacher still knows what it was seeded with"


def ask_capital(client: openai.OpenAI, country: str) -> str:
    completion = client.chat.completions.create(model="gpt-4o", messages=[user(capital_question(country))])
    return completion.choices[0].message.content or ""


@pytest.mark.parametrize(
    "line, problem",
    [
        ("{not json", "not JSON"),
        (json.dumps({"messages": [{"role": "user", "content": "q"}]}), "at least one message must be from the assistant"),
        (json.dumps({"messages": [{"role": "assistant", "content": "a"}]}), "no input messages"),
        (json.dumps({"messages": [{"role": "wizard", "content": "q"}, {"role": "assistant", "content": "a"}]}), "role"),
        (json.dumps({**chat_row("q", "a"), "metadata": {"n": 1}}), "metadata"),
        (json.dumps({"messages": [*chat_row("q", "a")["messages"], user("more")]}), "must be the last message"),
    ],
    ids=["json", "no-answer", "no-input", "role", "metadata", "trailing"],
)
def test_a_bad_seed_line_names_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    seed = tmp_path / "bad.jsonl"
    seed.write_text(json.dumps(chat_row("fine", "ok")) + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(SeedError, match=rf"bad\.jsonl:3: .*{problem}"):
        SimServer(seed=[seed])


def test_a_duplicate_seed_id_is_an_error(tmp_path: Path) -> None:
    seed = write_jsonl(tmp_path / "dup.jsonl", [chat_row("a", "b", row_id="x"), chat_row("c", "d", row_id="x")])
    with pytest.raises(SeedError, match=r"dup\.jsonl:2: id 'chatcmpl-x' was already used at .*dup\.jsonl:1"):
        SimServer(seed=[seed])
