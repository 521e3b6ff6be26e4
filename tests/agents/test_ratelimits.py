"""When a rate-limited vendor may be tried again, from the wordings the CLIs use; and what a run cost."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest

from swarm.agents import ratelimits
from swarm.agents.prices import Price, cost


def test_retry_after_wordings() -> None:
    now = time.time()
    assert ratelimits.retry_after("Please retry in 37.8s.", now) == pytest.approx(37.8)
    assert ratelimits.retry_after('"retryDelay": "12s"', now) == 12
    assert ratelimits.retry_after("Rate limit reached. Please try again in 20ms.", now) == pytest.approx(0.02)
    assert ratelimits.retry_after("Your quota will reset after 2h13m5s.", now) == 2 * 3600 + 13 * 60 + 5
    assert ratelimits.retry_after(f"Claude AI usage limit reached|{int(now) + 600}", now) == pytest.approx(600, abs=1)
    assert ratelimits.retry_after("429 Too Many Requests", now) is None


def test_retry_after_codex_try_again_at_a_clock_time_or_a_date() -> None:
    now = time.time()
    soon = datetime.fromtimestamp(now) + timedelta(minutes=90)
    clock = soon.strftime("%I:%M %p").lstrip("0")
    left = ratelimits.retry_after(f"You've hit your usage limit. ... or try again at {clock}.", now)
    assert left == pytest.approx(90 * 60, abs=61)
    later = datetime.fromtimestamp(now) + timedelta(days=3)
    day = later.strftime("%b %d") + "th, " + later.strftime("%Y %I:%M %p")
    assert ratelimits.retry_after(f"try again at {day}.", now) == pytest.approx(3 * 86400, abs=61)


def test_retry_after_claude_resets_at_a_time_in_a_zone() -> None:
    left = ratelimits.retry_after("You've hit your session limit · resets 5pm (UTC)")
    assert left is not None and 0 <= left <= 86400


def test_cost_counts_cached_input_at_its_own_price_and_falls_back_to_star() -> None:
    prices = {"gpt-x": Price(input=2.0, output=8.0, cached=0.5), "*": Price(input=1.0, output=1.0)}
    assert cost(prices, "gpt-x", 1_000_000, 400_000, 100_000) == pytest.approx(1.2 + 0.2 + 0.8)
    assert cost(prices, "other", 1_000_000, 0, 1_000_000) == pytest.approx(2.0)
    assert cost({}, "gpt-x", 10, 0, 10) is None
