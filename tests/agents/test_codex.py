"""The codex adapter: its parser on recorded and built JSON lines, argv, environment and the no-credentials guard."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from swarm.agents import codex
from swarm.agents.codex import CodexAgent, CodexOptions
from swarm.agents.prices import Price
from tests.agents.helpers import DATA, NOWHERE, RECORDED, agent_run

PRICES = {"gpt-test": Price(input=1.25, output=10.0, cached=0.125)}


def test_success_stream_gives_last_agent_message_thread_tokens_and_priced_cost() -> None:
    result = codex.parse(DATA / "codex_success.out", NOWHERE, 0, PRICES, "gpt-test")
    assert result.outcome == "ok" and result.message == "Created src/alpha.txt."
    assert result.session_id == "0199a213-81c0-7800-8aa1-bbab2a035a53" and result.turns == 1
    assert (result.input_tokens, result.cached_tokens, result.output_tokens) == (24763, 24448, 122)
    expected = (315 * 1.25 + 24448 * 0.125 + 122 * 10.0) / 1e6
    assert result.cost_usd == pytest.approx(expected)


def test_no_price_for_the_model_means_no_cost_but_tokens_still_counted() -> None:
    result = codex.parse(DATA / "codex_success.out", NOWHERE, 0, PRICES, "other-model")
    assert result.cost_usd is None and result.input_tokens == 24763


def test_429_after_retries_is_rate_limited() -> None:
    result = codex.parse(DATA / "codex_rate_limit.out", NOWHERE, 1)
    assert result.outcome == "rate_limited" and "429" in result.message and result.retry_after is None


def test_usage_limit_is_rate_limited_until_the_time_it_names(tmp_path: Path) -> None:
    soon = datetime.now() + timedelta(minutes=45)
    log = tmp_path / "out.log"
    log.write_text((DATA / "codex_usage_limit.out").read_text().replace("3:45 PM", soon.strftime("%I:%M %p")))
    result = codex.parse(log, NOWHERE, 1)
    assert result.outcome == "rate_limited"
    assert result.retry_after == pytest.approx(45 * 60, abs=61)


def test_401_is_an_auth_error() -> None:
    assert codex.parse(DATA / "codex_auth.out", NOWHERE, 1).outcome == "auth_error"


def test_recorded_reconnect_loop_killed_is_the_vendors_network_not_a_rate_limit() -> None:
    """Reconnect notices are not fatal by themselves; what they say (no DNS) is the vendor's, never the task's."""
    result = codex.parse(RECORDED / "codex_json.out", RECORDED / "codex_text.err", -15)
    assert (result.outcome, result.fault, result.reason) == ("vendor_error", "vendor", "network")
    assert result.session_id == "01a22d7f-9120-7a41-8c88-690503b4b171"
    assert "waiting for network" in result.message


def test_exit_0_without_turn_completed_is_a_truncated_stream(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    log.write_text('{"type":"thread.started","thread_id":"x"}\n{"type":"turn.started"}\n{"type":"item.compl')
    result = codex.parse(log, NOWHERE, 0)
    assert result.outcome == "failed" and "turn.completed" in result.message


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00", b"Error: unexpected argument '--jsn' found\n"])
def test_garbage_is_failed_as_unknown_and_exit_2_is_a_flag_the_cli_refused(tmp_path: Path, content: bytes) -> None:
    log = tmp_path / "out.log"
    log.write_bytes(content)
    assert (codex.parse(log, NOWHERE, 1).outcome, codex.parse(log, NOWHERE, 1).fault) == ("failed", "unknown")
    assert codex.parse(log, NOWHERE, 2).reason == "cli_incompatible"


def test_argv_runs_exec_json_in_the_worktree_with_the_prompt_after_double_dash(tmp_path: Path) -> None:
    run = agent_run(tmp_path)
    options = CodexOptions(model="gpt-test", reasoning_effort="high", extra_args=["-i", "a.png"])
    argv = CodexAgent("x", options).argv(run, "-PROMPT")
    assert argv[:7] == ["codex", "exec", "--json", "-C", str(run.worktree), "--skip-git-repo-check", "-s"]
    assert argv[7] == "workspace-write"
    assert argv[argv.index("-m") : argv.index("-m") + 2] == ["-m", "gpt-test"]
    assert "model_reasoning_effort=high" in argv
    assert argv[-4:] == ["-i", "a.png", "--", "-PROMPT"]


def test_bypass_sandbox_option(tmp_path: Path) -> None:
    argv = CodexAgent("x", CodexOptions(sandbox="bypass")).argv(agent_run(tmp_path), "P")
    assert "--dangerously-bypass-approvals-and-sandbox" in argv and "-s" not in argv


def test_env_maps_the_configured_key_variable_to_codex_api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_OPENAI_KEY", "sk-team-0123456789abcdef")
    run = agent_run(tmp_path)
    env = CodexAgent("x", CodexOptions(api_key_env="TEAM_OPENAI_KEY")).env(run, run.home / "codex")
    assert env["CODEX_API_KEY"] == "sk-team-0123456789abcdef" and "TEAM_OPENAI_KEY" not in env
    assert env["CODEX_HOME"] == str(run.home / "codex")


def test_without_credentials_codex_is_not_started_since_it_would_never_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CODEX_API_KEY", raising=False)
    monkeypatch.delenv("CODEX_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    run = agent_run(tmp_path)
    started = time.monotonic()
    result = CodexAgent("x", CodexOptions(binary="/bin/sleep")).run(run)
    assert result.outcome == "auth_error" and "no login found: export CODEX_API_KEY" in result.message
    assert time.monotonic() - started < 5 and result.log_path == run.log_path
    assert "CODEX_API_KEY" in run.log_path.read_text()
