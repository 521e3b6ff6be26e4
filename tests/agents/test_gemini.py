"""The gemini adapter: its parser on recorded and built stream-json and stderr, argv, environment, settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swarm.agents import gemini
from swarm.agents.gemini import GeminiAgent, GeminiOptions
from swarm.agents.prices import Price
from tests.agents.helpers import DATA, NOWHERE, RECORDED, agent_run

PRICES = {"gemini-2.5-pro": Price(input=1.25, output=10.0, cached=0.31)}


def test_success_stream_gives_the_reply_after_the_last_tool_call_tokens_and_cost() -> None:
    result = gemini.parse(DATA / "gemini_success.out", NOWHERE, 0, PRICES)
    assert result.outcome == "ok" and result.message == "Created src/alpha.txt."
    assert result.session_id == "8f0e2c55-3c0a-4f57-b2a4-0f1d1c4e9a77" and result.turns == 2
    assert (result.input_tokens, result.cached_tokens, result.output_tokens) == (12800, 8000, 500)
    assert result.cost_usd == pytest.approx((4800 * 1.25 + 8000 * 0.31 + 500 * 10.0) / 1e6)


def test_per_model_stats_are_priced_model_by_model(tmp_path: Path) -> None:
    stats = {"models": {"gemini-2.5-pro": {"tokens": {"prompt": 1000, "cached": 0, "candidates": 100}},
                        "gemini-2.5-flash": {"tokens": {"prompt": 500, "cached": 0, "candidates": 50}}}}  # fmt: skip
    log = tmp_path / "out.log"
    log.write_text(json.dumps({"type": "result", "status": "success", "stats": stats}) + "\n")
    prices = {**PRICES, "*": Price(input=0.3, output=2.5)}
    result = gemini.parse(log, NOWHERE, 0, prices)
    assert result.input_tokens == 1500 and result.output_tokens == 150
    assert result.cost_usd == pytest.approx((1000 * 1.25 + 100 * 10 + 500 * 0.3 + 50 * 2.5) / 1e6)
    assert result.models == ["gemini-2.5-flash", "gemini-2.5-pro"], "the fallback model is recorded"


def test_quota_error_on_stderr_is_rate_limited_with_the_retry_delay() -> None:
    result = gemini.parse(DATA / "gemini_rate_limit.out", DATA / "gemini_rate_limit.err", 1)
    assert result.outcome == "rate_limited" and "RESOURCE_EXHAUSTED" in result.message
    assert result.retry_after == pytest.approx(37, abs=1)


@pytest.mark.parametrize("name", ["gemini_json.err", "gemini_sjson.err", "gemini_untrusted_noprompt.err"])
def test_recorded_exit_41_is_an_auth_error(name: str) -> None:
    result = gemini.parse(NOWHERE, RECORDED / name, 41)
    assert result.outcome == "auth_error" and "Auth method" in result.message


def test_recorded_network_retries_killed_is_the_vendors_network_with_a_readable_reason() -> None:
    result = gemini.parse(RECORDED / "gemini_fake_sjson.out", RECORDED / "gemini_fake_sjson.err", -15)
    assert (result.fault, result.reason) == (
        "vendor",
        "network",
    ) and result.session_id == "972ee05f-8990-48ef-9326-5385ba565b60"
    assert "file:///" not in result.message, "stack frames are left out of the message"


def test_turn_limit_exit_53_is_failed_and_says_so() -> None:
    result = gemini.parse(DATA / "gemini_error_result.out", NOWHERE, 53)
    assert result.outcome == "failed" and "turn limit" in result.message and result.input_tokens == 800


def test_untrusted_folder_exit_55_says_so(tmp_path: Path) -> None:
    err = tmp_path / "err.log"
    err.write_text("Gemini CLI is not running in a trusted directory.\n")
    assert "untrusted folder" in gemini.parse(NOWHERE, err, 55).message


@pytest.mark.parametrize("content", [b"", b"\x00garbage\xff", b'{"type":"init","session_id":"s"}\n{"type":"mess'])
def test_garbage_or_truncated_is_failed(tmp_path: Path, content: bytes) -> None:
    log = tmp_path / "out.log"
    log.write_bytes(content)
    assert gemini.parse(log, NOWHERE, 0).outcome == "failed"


def test_argv_is_headless_stream_json_trusting_the_worktree(tmp_path: Path) -> None:
    argv = GeminiAgent("g", GeminiOptions(model="gemini-2.5-pro")).argv(agent_run(tmp_path), "PROMPT")
    assert argv[:3] == ["gemini", "-p", "PROMPT"]
    assert argv[3:8] == ["-o", "stream-json", "--skip-trust", "--approval-mode", "yolo"]
    assert argv[-2:] == ["-m", "gemini-2.5-pro"]


def test_env_and_settings_file_of_the_slot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaTestKey0123456789")
    run = agent_run(tmp_path)
    home = run.home / "gemini"
    settings = home / ".gemini" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text('{"ui": {"theme": "x"}, "model": {"maxSessionTurns": 3}}')
    env = GeminiAgent("g", GeminiOptions(max_turns=40)).env(run, home)
    assert env["GEMINI_CLI_HOME"] == str(home) and env["GEMINI_CLI_TRUST_WORKSPACE"] == "true"
    assert env["GEMINI_API_KEY"] == "AIzaTestKey0123456789"
    written = json.loads(settings.read_text())
    assert written["ui"] == {"theme": "x"}, "the slot's other settings are kept"
    assert written["model"]["maxSessionTurns"] == 40 and written["general"]["disableAutoUpdate"] is True
