"""Integer money: distinct units, rounding up, exact prices, a price book that refuses floats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from karta.core.money import Cents, Micros, PriceBook, TokenUsage, dollars_per_mtok


def test_units_do_not_mix() -> None:
    assert Micros(5) + Micros(7) == Micros(12)
    with pytest.raises(TypeError):
        Micros(5) + Cents(1)  # type: ignore[operator]
    with pytest.raises(TypeError):
        Micros(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Cents(True)


def test_conversions_round_up() -> None:
    assert Micros(0).to_cents() == Cents(0)
    assert Micros(1).to_cents() == Cents(1)
    assert Micros(1_000_000).to_cents() == Cents(1)
    assert Micros(1_000_001).to_cents() == Cents(2)
    assert Cents(3).to_micros() == Micros(3_000_000)


def test_prices_are_exact_integers() -> None:
    assert dollars_per_mtok("3") == 300_000_000
    assert dollars_per_mtok("0.075") == 7_500_000
    assert dollars_per_mtok("0.000001") == 100
    for bad in ("0.0000000001", "-1", "abc"):
        with pytest.raises(ValueError):
            dollars_per_mtok(bad)
    with pytest.raises(ValueError):
        dollars_per_mtok(0.5)  # type: ignore[arg-type]


def test_cost_of_a_model_call() -> None:
    book = PriceBook.load()
    # Sonnet: $3 in, $15 out, $0.30 cache read, $3.75 cache write per million tokens.
    usage = TokenUsage(input_tokens=1_000, output_tokens=200, cache_read_tokens=400)
    # 600 × 3 + 400 × 0.30 + 200 × 15 = 4,920 dollars per million = 0.492 cents.
    assert book.cost("claude-sonnet-4-5", usage) == Micros(492_000)
    assert book.cost("claude-sonnet-4-5", TokenUsage(output_tokens=1)) == Micros(1_500)
    # An odd price still rounds up to a whole micro-cent, never down.
    assert book.cost("gpt-4o-mini", TokenUsage(cache_read_tokens=1, input_tokens=1)) == Micros(8)
    # Unknown models pay the default (most expensive) rate.
    assert book.cost("mystery", usage) > book.cost("claude-haiku-4", usage)


def test_price_book_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {"Local-Model": {"input": "1", "output": "2", "cache_read": "0", "cache_write": "0"}}
        )
    )
    book = PriceBook.load(path)
    assert book.cost("local-model-7b", TokenUsage(input_tokens=1_000_000)) == Micros(100_000_000)
    path.write_text(
        json.dumps({"x": {"input": 1.5, "output": "2", "cache_read": "0", "cache_write": "0"}})
    )
    with pytest.raises(ValueError, match="decimal string"):
        PriceBook.load(path)
