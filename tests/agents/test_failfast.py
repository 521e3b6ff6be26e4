"""Fail fast: a CLI that never gets an answer is stopped at its connect timeout, a silent agent at its idle
timeout (both far below the attempt timeout), the CLIs' own retries are lowered, and the preflight finds a missing
CLI, a missing login or a refused configuration without starting anything."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from swarm.agents import registry
from swarm.agents.codex import CodexAgent, CodexOptions
from tests.agents.helpers import BIN, CLIS, KEY_VARS, agent_run, fake_cli, script


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_VARS:
        monkeypatch.setenv(name, f"sk-{name.lower().replace('_', '-')}-0123456789abcdef")


@pytest.mark.parametrize(
    ("cli", "stuck"),
    [
        ("claude", "recorded/claude_fakekey_sjson.out"),  # init and api_retry events only: retrying, no answer
        ("codex", "recorded/codex_json.out"),  # thread/turn started, then "Reconnecting... waiting for network"
        ("codex", "recorded/codex_custom_provider_no_network.out"),
        ("gemini", "recorded/gemini_fake_sjson.out"),  # init and the echoed prompt; its retries go to stderr
    ],
)
def test_a_cli_stuck_before_any_answer_is_stopped_at_the_connect_timeout_as_the_vendors_network(
    cli: str, stuck: str, tmp_path: Path, keys: None
) -> None:
    run = agent_run(tmp_path, script(f"emit {stuck}", "sleep 60"), timeout=60)
    started = time.monotonic()
    result = fake_cli(cli, connect_timeout=1.5).run(run)
    assert time.monotonic() - started < 30, "stopped long before the attempt's timeout"
    assert (result.fault, result.reason) == ("vendor", "network"), result.message
    assert "connect timeout" in result.message or "stopped after" in result.message


def test_an_agent_silent_after_it_started_is_stalled_by_the_idle_timeout_the_tasks_fault(
    tmp_path: Path, keys: None
) -> None:
    run = agent_run(tmp_path, script("emit claude_progress.out", "sleep 60"), timeout=60)
    started = time.monotonic()
    result = fake_cli("claude", connect_timeout=30, idle_timeout=1.5).run(run)
    assert time.monotonic() - started < 30
    assert (result.outcome, result.fault, result.reason) == ("failed", "task", "stalled"), result.message
    assert "idle timeout" in result.message


def test_without_timeouts_set_only_the_attempt_timeout_stops_a_silent_cli(tmp_path: Path, keys: None) -> None:
    run = agent_run(tmp_path, script("sleep 60"), timeout=2)
    result = fake_cli("gemini", connect_timeout=None).run(run)
    assert (result.outcome, result.reason) == ("timeout", "timeout")


def test_retries_are_lowered_in_each_clis_own_terms(tmp_path: Path, keys: None) -> None:
    run = agent_run(tmp_path)
    claude_env = fake_cli("claude", max_retries=1).env(run, run.home / "claude")
    assert claude_env["CLAUDE_CODE_MAX_RETRIES"] == "1"
    gemini = fake_cli("gemini", max_retries=2)
    gemini.env(run, run.home / "gemini")
    settings = json.loads((run.home / "gemini" / ".gemini" / "settings.json").read_text())
    assert settings["general"]["maxAttempts"] == 3
    argv = fake_cli("codex", max_retries=0).argv(run, "P")
    config = [argv[i + 1] for i, a in enumerate(argv) if a == "-c"]
    assert "model_provider=swarm-openai" in config
    provider = next(c for c in config if c.startswith("model_providers.swarm-openai="))
    assert "request_max_retries=0" in provider and "stream_max_retries=0" in provider
    assert 'env_key="CODEX_API_KEY"' in provider and "supports_websockets=false" in provider


def test_codex_with_a_chatgpt_login_keeps_the_built_in_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CODEX_API_KEY", raising=False)
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "user-codex"))
    (tmp_path / "user-codex").mkdir()
    (tmp_path / "user-codex" / "auth.json").write_text('{"tokens": {"refresh_token": "rt-1"}}')
    argv = CodexAgent("x", CodexOptions()).argv(agent_run(tmp_path), "P")
    assert not any(a.startswith("model_provider") for a in argv)


@pytest.mark.parametrize("cli", CLIS)
def test_preflight_finds_a_missing_cli_and_a_missing_login_without_running_anything(
    cli: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = fake_cli(cli, binary=str(tmp_path / "nope")).preflight(tmp_path / "home")
    assert missing is not None and (missing.fault, missing.reason) == ("vendor", "cli_missing")
    for name in (*KEY_VARS, "CLAUDE_CODE_OAUTH_TOKEN", "CLAUDE_CONFIG_DIR", "CODEX_HOME", "GEMINI_CLI_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    record = tmp_path / "record.jsonl"
    no_login = fake_cli(cli, env={"FAKE_CLI_RECORD": str(record)}).run(agent_run(tmp_path))
    assert (no_login.outcome, no_login.fault, no_login.reason) == ("auth_error", "vendor", "auth")
    assert not record.exists(), "the CLI was never started"


@pytest.mark.skipif(os.geteuid() != 0, reason="claude refuses bypassPermissions as root only")
def test_claude_as_root_in_bypass_mode_is_refused_by_the_preflight_not_charged_to_tasks(
    tmp_path: Path, keys: None
) -> None:
    agent = registry.make("claude", "claude", {"binary": str(BIN / "claude")})
    result = agent.run(agent_run(tmp_path))
    assert (result.outcome, result.fault, result.reason) == ("vendor_error", "vendor", "refused")
    assert "IS_SANDBOX" in result.message


def test_a_cli_still_retrying_a_rate_limit_at_the_attempt_timeout_is_the_vendors_not_the_tasks(
    tmp_path: Path, keys: None
) -> None:
    run = agent_run(tmp_path, script("emit claude_retrying_429.out", "sleep 60"), timeout=2)
    result = fake_cli("claude", connect_timeout=None).run(run)
    assert (result.outcome, result.fault, result.reason) == ("rate_limited", "vendor", "rate_limit"), result.message
    assert "timed out" in result.message
