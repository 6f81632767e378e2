"""POST /embeddings and GET /models."""

from __future__ import annotations

import math
from collections.abc import Sequence

import openai
import pytest

from pytest_distill.sim import SimServer


def cos(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=False)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def vectors(sdk: openai.OpenAI, texts: list[str], **params: object) -> list[list[float]]:
    answer = sdk.embeddings.create(model="text-embedding-3-small", input=texts, **params)  # type: ignore[arg-type]
    return [item.embedding for item in answer.data]


@pytest.mark.parametrize(
    "anchor, similar, unrelated",
    [
        ("The cat sat on the mat.", "A cat was sitting on the mat.", "Quarterly revenue grew by twelve percent."),
        ("日本の首都は東京です。", "東京は日本の首都です。", "富士山の高さは3776メートルです。"),
    ],
    ids=["english", "japanese"],
)
def test_similar_texts_are_closer_than_unrelated_ones(
    shared_client: openai.OpenAI, anchor: str, similar: str, unrelated: str
) -> None:
    a, s, u = vectors(shared_client, [anchor, similar, unrelated])
    assert cos(a, s) > cos(a, u) + 0.2
    assert math.isclose(sum(x * x for x in a), 1.0, rel_tol=1e-5)


def test_the_sdks_default_base64_decodes_to_the_float_answer(client: openai.OpenAI, server: SimServer) -> None:
    decoded = vectors(client, ["hello world"])[0]
    assert server.requests[-1].body is not None and server.requests[-1].body["encoding_format"] == "base64"
    floats = vectors(client, ["hello world"], encoding_format="float")[0]
    assert len(decoded) == len(floats) == 1536
    assert all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-7) for x, y in zip(decoded, floats, strict=False))


def test_dimensions_cut_and_renormalise_and_vectors_are_deterministic(shared_client: openai.OpenAI) -> None:
    short = vectors(shared_client, ["hello world"], dimensions=256, encoding_format="float")[0]
    assert len(short) == 256 and math.isclose(sum(x * x for x in short), 1.0, rel_tol=1e-9)
    assert short == vectors(shared_client, ["hello world"], dimensions=256, encoding_format="float")[0]
    large = shared_client.embeddings.create(model="text-embedding-3-large", input="hello")
    assert len(large.data[0].embedding) == 3072 and large.usage.prompt_tokens == large.usage.total_tokens > 0


@pytest.mark.parametrize(
    "params, match",
    [
        ({"model": "gpt-4o", "input": "x"}, "does not support embeddings"),
        ({"model": "text-embedding-3-small", "input": ""}, "empty string"),
        ({"model": "text-embedding-3-small", "input": [[1, 2]]}, "text only"),
        ({"model": "text-embedding-3-small", "input": "x", "dimensions": 5000}, "dimensions"),
    ],
    ids=["chat-model", "empty", "tokens", "dimensions"],
)
def test_invalid_embedding_requests_are_400s(shared_client: openai.OpenAI, params: dict, match: str) -> None:
    with pytest.raises(openai.BadRequestError, match=match):
        shared_client.embeddings.create(**params)


def test_models_lists_the_base_models(shared_client: openai.OpenAI) -> None:
    ids = {model.id for model in shared_client.models.list()}
    base = {"gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"}
    assert base | {"text-embedding-3-small", "text-embedding-3-large"} <= ids
    model = shared_client.models.retrieve("gpt-4o")
    assert (model.object, model.owned_by) == ("model", "system")


def test_an_unknown_model_is_a_404(shared_client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        shared_client.models.retrieve("gpt-9")
    assert raised.value.response.json()["error"]["code"] == "model_not_found"
