"""The shared parts of the vendor adapters: lenient JSON lines, secret redaction, failure wording, prices."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from swarm.agents import streams
from swarm.agents.streams import Price


def test_events_skip_garbage_truncated_and_non_object_lines(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    log.write_bytes(b'banner text\n{"type":"a"}\n[1,2]\n\xff\xfe binary\n{"type":"b"}\n{"type":"c","trunc')
    assert [e["type"] for e in streams.events(log)] == ["a", "b"]
    assert list(streams.events(tmp_path / "missing.log")) == []


def test_json_objects_finds_a_pretty_printed_error_amid_text() -> None:
    text = 'Warning: x\n{\n  "error": {"message": "boom", "code": 41}\n}\nmore {not json\n'
    assert streams.json_objects(text) == [{"error": {"message": "boom", "code": 41}}]


def test_redact_hides_given_values_key_shaped_tokens_and_url_passwords() -> None:
    text = "key=s3cr3t-value-123 sk-ant-api03-abcdefghijklmnop AIzaSyA1234567890abcdefghijklmnopqrstu redis://:pw@host:6379/0"
    clean = streams.redact(text, ["s3cr3t-value-123"])
    assert "s3cr3t" not in clean and "sk-ant" not in clean and "AIza" not in clean and ":pw@" not in clean
    assert clean.count(streams.REDACTED) == 4


def test_secret_values_come_from_secret_looking_names_only() -> None:
    env = {"ANTHROPIC_API_KEY": "abcdefghij", "PATH": "/usr/bin:/bin", "GH_TOKEN": "short", "X_SECRET": "123456789"}
    assert streams.secret_values(env) == ["abcdefghij", "123456789"]


def test_redact_file_rewrites_only_when_needed(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("nothing secret\n")
    before = log.stat().st_mtime_ns
    streams.redact_file(log, ["topsecret-1"])
    assert log.stat().st_mtime_ns == before
    log.write_text("the key is topsecret-1\n")
    streams.redact_file(log, ["topsecret-1"])
    assert log.read_text() == f"the key is {streams.REDACTED}\n"
    streams.redact_file(tmp_path / "missing.log", ["x"])


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ("Not logged in · Please run /login", "auth_error"),
        ("API Error: 401 Invalid API key · Please run /login", "auth_error"),
        ("Please set an Auth method in your settings.json", "auth_error"),
        ("API key not valid. Please pass a valid API key.", "auth_error"),
        ("exceeded retry limit, last status: 429 Too Many Requests", "rate_limited"),
        ("You've hit your usage limit. Upgrade to Pro", "rate_limited"),
        ('{"status": "RESOURCE_EXHAUSTED"}', "rate_limited"),
        ("API Error: Unable to connect to API (FailedToOpenSocket)", None),
        ("", None),
    ],
)
def test_classify(text: str, outcome: str | None) -> None:
    assert streams.classify(text) == outcome


def test_retry_after_wordings() -> None:
    now = time.time()
    assert streams.retry_after("Please retry in 37.8s.", now) == pytest.approx(37.8)
    assert streams.retry_after('"retryDelay": "12s"', now) == 12
    assert streams.retry_after("Rate limit reached. Please try again in 20ms.", now) == pytest.approx(0.02)
    assert streams.retry_after("Your quota will reset after 2h13m5s.", now) == 2 * 3600 + 13 * 60 + 5
    assert streams.retry_after(f"Claude AI usage limit reached|{int(now) + 600}", now) == pytest.approx(600, abs=1)
    assert streams.retry_after("429 Too Many Requests", now) is None


def test_retry_after_codex_try_again_at_a_clock_time_or_a_date() -> None:
    now = time.time()
    soon = datetime.fromtimestamp(now) + timedelta(minutes=90)
    clock = soon.strftime("%I:%M %p").lstrip("0")
    left = streams.retry_after(f"You've hit your usage limit. ... or try again at {clock}.", now)
    assert left == pytest.approx(90 * 60, abs=61)
    later = datetime.fromtimestamp(now) + timedelta(days=3)
    day = later.strftime("%b %d") + "th, " + later.strftime("%Y %I:%M %p")
    assert streams.retry_after(f"try again at {day}.", now) == pytest.approx(3 * 86400, abs=61)


def test_retry_after_claude_resets_at_a_time_in_a_zone() -> None:
    left = streams.retry_after("You've hit your session limit · resets 5pm (UTC)")
    assert left is not None and 0 <= left <= 86400


def test_cost_counts_cached_input_at_its_own_price_and_falls_back_to_star() -> None:
    prices = {"gpt-x": Price(input=2.0, output=8.0, cached=0.5), "*": Price(input=1.0, output=1.0)}
    assert streams.cost(prices, "gpt-x", 1_000_000, 400_000, 100_000) == pytest.approx(1.2 + 0.2 + 0.8)
    assert streams.cost(prices, "other", 1_000_000, 0, 1_000_000) == pytest.approx(2.0)
    assert streams.cost({}, "gpt-x", 10, 0, 10) is None


def test_a_long_or_dash_prompt_is_still_one_safe_argument(tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.md"
    prompt.write_text("--help me")
    assert streams.prompt_text(prompt) == "\n--help me"
    prompt.write_text("x" * (streams.PROMPT_ARG_LIMIT + 1))
    assert str(prompt) in streams.prompt_text(prompt) and len(streams.prompt_text(prompt)) < 1000
