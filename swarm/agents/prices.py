"""What a run cost when the CLI reports tokens but no price (codex, gemini): USD per million tokens by model."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field


class Price(BaseModel):
    """USD per million tokens of one model."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    """Price of a million input tokens that were not read from the cache."""
    output: float = Field(ge=0)
    """Price of a million output tokens (reasoning included)."""
    cached: float | None = Field(None, ge=0)
    """Price of a million input tokens read from the cache; the input price when unset."""


def cost(prices: Mapping[str, Price], model: str, input_tokens: int, cached: int, output: int) -> float | None:
    """Cost in USD of a run; `input_tokens` includes the cached ones. None when the model has no price."""
    price = prices.get(model) or prices.get("*")
    if price is None:
        return None
    cached_price = price.input if price.cached is None else price.cached
    fresh = max(0, input_tokens - cached)
    return (fresh * price.input + cached * cached_price + output * price.output) / 1e6
