"""Money as integers: micro-cents for prices and metered cost, cents for caps and display.

`Micros` and `Cents` are distinct types whose arithmetic only combines like units, so mixing them
is a type error (and a runtime `TypeError`). Converting down rounds up: Karta never under-bills.
No float ever touches money.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

MICROS_PER_CENT = 1_000_000


@dataclass(frozen=True, order=True)
class Micros:
    """Millionths of a cent."""

    value: int

    def __post_init__(self) -> None:
        if not isinstance(self.value, int) or isinstance(self.value, bool):
            raise TypeError(f"Micros holds an int, not {type(self.value).__name__}")

    def __add__(self, other: Micros) -> Micros:
        if not isinstance(other, Micros):
            return NotImplemented
        return Micros(self.value + other.value)

    def to_cents(self) -> Cents:
        """Round up to whole cents."""
        return Cents(-(-self.value // MICROS_PER_CENT))


@dataclass(frozen=True, order=True)
class Cents:
    value: int

    def __post_init__(self) -> None:
        if not isinstance(self.value, int) or isinstance(self.value, bool):
            raise TypeError(f"Cents holds an int, not {type(self.value).__name__}")

    def __add__(self, other: Cents) -> Cents:
        if not isinstance(other, Cents):
            return NotImplemented
        return Cents(self.value + other.value)

    def to_micros(self) -> Micros:
        return Micros(self.value * MICROS_PER_CENT)


PER_MILLION = 1_000_000


@dataclass(frozen=True)
class Price:
    """Micro-cents per *million* tokens, by kind of token: every published price (down to
    $0.000001 per million tokens) is an exact integer in this unit. A turn's cost is the exact
    sum divided by a million, rounded up."""

    input: int
    output: int
    cache_read: int
    cache_write: int

    def cost(self, usage: TokenUsage) -> Micros:
        uncached = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
        scaled = (
            max(uncached, 0) * self.input
            + usage.cache_read_tokens * self.cache_read
            + usage.cache_write_tokens * self.cache_write
            + usage.output_tokens * self.output
        )
        return Micros(-(-scaled // PER_MILLION))


@dataclass(frozen=True)
class TokenUsage:
    """Tokens of a model call (or a sum of them). `input_tokens` includes the cached reads and
    writes."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


def dollars_per_mtok(dollars: str) -> int:
    """A price in dollars per million tokens, given as a decimal string, in this module's unit
    (micro-cents per million tokens), parsed exactly."""
    if not isinstance(dollars, str):
        raise ValueError(f'price {dollars!r} must be a decimal string, e.g. "3.75"')
    try:
        units = Decimal(dollars) * 100 * MICROS_PER_CENT
    except ArithmeticError as exc:
        raise ValueError(f"price {dollars!r} is not a decimal number") from exc
    if units < 0 or units != units.to_integral_value():
        raise ValueError(f"price {dollars!r} must be ≥ 0 and whole in millionths of a cent")
    return int(units)


def _price(inp: str, out: str, cache_read: str, cache_write: str) -> Price:
    return Price(*(dollars_per_mtok(p) for p in (inp, out, cache_read, cache_write)))


# Dollars per million tokens (input, output, cache read, cache write), matched by model-name
# prefix, longest prefix first. `default` prices anything unknown, on the expensive side.
BUILTIN_PRICES: dict[str, Price] = {
    # Karta's built-in scripted model (karta.testing.scripted_model.BUILTIN_MODEL_NAME): the
    # offline quickstart's echoes cost nothing.
    "karta-scripted": _price("0", "0", "0", "0"),
    "claude-opus": _price("15", "75", "1.50", "18.75"),
    "claude-sonnet": _price("3", "15", "0.30", "3.75"),
    "claude-haiku": _price("1", "5", "0.10", "1.25"),
    "gpt-4o-mini": _price("0.15", "0.60", "0.075", "0.15"),
    "gpt-4o": _price("2.50", "10", "1.25", "2.50"),
    # A provider's own model names, as `provider/prefix` (checked before the plain prefixes).
    "bedrock/anthropic.claude-opus": _price("15", "75", "1.50", "18.75"),
    "bedrock/anthropic.claude-sonnet": _price("3", "15", "0.30", "3.75"),
    "bedrock/anthropic.claude-haiku": _price("1", "5", "0.10", "1.25"),
    "openrouter/anthropic/claude-opus": _price("15", "75", "1.50", "18.75"),
    "openrouter/anthropic/claude-sonnet": _price("3", "15", "0.30", "3.75"),
    "openrouter/anthropic/claude-haiku": _price("1", "5", "0.10", "1.25"),
    "default": _price("15", "75", "1.50", "18.75"),
}


class PriceBook:
    def __init__(self, prices: dict[str, Price]) -> None:
        if "default" not in prices:
            raise ValueError("a price book needs a 'default' entry")
        self.prices = prices
        self._prefixes = sorted((k for k in prices if k != "default"), key=len, reverse=True)

    def price(self, model: str | None, provider: str | None = None) -> Price:
        """The longest `provider/prefix` entry the model starts with, else the longest plain
        prefix, else the default."""
        name = (model or "").lower()
        names = [f"{provider.lower()}/{name}", name] if provider else [name]
        for candidate in names:
            for prefix in self._prefixes:
                if candidate.startswith(prefix):
                    return self.prices[prefix]
        return self.prices["default"]

    def cost(self, model: str | None, usage: TokenUsage, provider: str | None = None) -> Micros:
        return self.price(model, provider).cost(usage)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> PriceBook:
        """The built-in prices, overridden by a JSON file named by `KARTA_PRICE_BOOK`:
        `{"model-prefix": {"input": "3", "output": "15", "cache_read": "0.30",
        "cache_write": "3.75"}}` — dollars per million tokens as decimal strings (a JSON number
        would pass through a float, so it is refused). A key `provider/model-prefix` prices
        that provider's calls only (`bedrock/anthropic.claude-sonnet`)."""
        prices = dict(BUILTIN_PRICES)
        source = path or os.environ.get("KARTA_PRICE_BOOK")
        if source:
            raw: dict[str, Any] = json.loads(Path(source).read_text())
            for prefix, entry in raw.items():
                prices[prefix.lower()] = _price(
                    *(entry[k] for k in ("input", "output", "cache_read", "cache_write"))
                )
        return cls(prices)
