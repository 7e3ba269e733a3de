"""The built-in scripted model answers under its own name, which the price book prices at zero,
so the offline quickstart's turns cost nothing; a real model's name keeps its price."""

from __future__ import annotations

import json

import httpx
import pytest

from karta.core.money import Micros, PriceBook, TokenUsage
from karta.dataplane.modelenv import resolve_model_endpoint
from karta.testing import ScriptedModel
from karta.testing.scripted_model import BUILTIN_MODEL_NAME

USAGE = TokenUsage(input_tokens=2_000, output_tokens=1_000, cache_read_tokens=500)
ASK = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "hi"}],
}


@pytest.fixture(autouse=True)
def _builtin_prices(monkeypatch):
    monkeypatch.delenv("KARTA_PRICE_BOOK", raising=False)


def answered_as(url: str, stream: bool = False) -> str:
    with httpx.Client(base_url=url, timeout=10) as http:
        if not stream:
            return str(http.post("/v1/messages", json=ASK).json()["model"])
        with http.stream("POST", "/v1/messages", json={**ASK, "stream": True}) as response:
            first = next(line for line in response.iter_lines() if line.startswith("data:"))
    return str(json.loads(first.removeprefix("data:"))["message"]["model"])


def test_the_builtin_model_is_priced_at_zero():
    prices = PriceBook.load()
    assert prices.cost(BUILTIN_MODEL_NAME, USAGE) == Micros(0)
    assert prices.cost("claude-sonnet-4-5", USAGE) > Micros(0)
    assert prices.cost("some-unknown-model", USAGE) > Micros(0)


def test_the_builtin_endpoint_answers_under_the_builtin_name():
    endpoint = resolve_model_endpoint({})
    try:
        url = endpoint.env["ANTHROPIC_BASE_URL"]
        assert answered_as(url) == BUILTIN_MODEL_NAME
        assert answered_as(url, stream=True) == BUILTIN_MODEL_NAME
    finally:
        endpoint.close()


def test_a_test_model_answers_as_the_model_asked_for():
    with ScriptedModel() as model:
        assert answered_as(model.url) == "claude-sonnet-4-5"
