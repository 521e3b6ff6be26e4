"""The claude adapter: its parser on recorded and built stream-json, its argv and its environment."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from swarm.agents import claude, registry
from swarm.agents.claude import ClaudeAgent, ClaudeOptions
from tests.agents.helpers import DATA, NOWHERE, RECORDED, agent_run

SUCCESS = DATA / "claude_success.out"


def test_success_stream_gives_message_session_turns_tokens_and_cost() -> None:
    result = claude.parse(SUCCESS, NOWHERE, 0)
    assert result.outcome == "ok"
    assert result.message == "Wrote src/alpha.txt with the expected content."
    assert result.session_id == "5b0c1f9e-6a53-4d0e-9a57-1f6e7f3c2d10"
    assert result.turns == 3 and result.cost_usd == pytest.approx(0.0421)
    # input counts fresh + cache reads + cache writes; cached is the cache reads
    assert (result.input_tokens, result.cached_tokens, result.output_tokens) == (9700, 8000, 350)
    assert result.models == ["claude-sonnet-4-5"] and result.record()["models"] == ["claude-sonnet-4-5"]


def test_a_fallback_model_is_recorded_next_to_the_requested_one(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    text = SUCCESS.read_text().replace('"modelUsage":{', '"modelUsage":{"claude-haiku-4-5":{"inputTokens":1},', 1)
    log.write_text(text)
    assert claude.parse(log, NOWHERE, 0).models == ["claude-haiku-4-5", "claude-sonnet-4-5"]


@pytest.mark.parametrize("name", ["claude_json.out", "claude_sjson.out"])
def test_recorded_not_logged_in_is_an_auth_error_although_subtype_says_success(name: str) -> None:
    result = claude.parse(RECORDED / name, NOWHERE, 1)
    assert result.outcome == "auth_error"
    assert "Not logged in" in result.message and result.session_id


def test_recorded_is_error_with_subtype_success_is_never_ok_even_with_exit_0() -> None:
    result = claude.parse(RECORDED / "claude_fakekey_r1.out", NOWHERE, 0)
    assert (result.outcome, result.fault, result.reason) == ("vendor_error", "vendor", "network")
    assert "Can't reach the API server" in result.message  # 2.1.197 said "FailedToOpenSocket"


def test_recorded_stream_cut_while_retrying_is_failed_with_the_last_event() -> None:
    result = claude.parse(RECORDED / "claude_fakekey_sjson.out", NOWHERE, None)
    assert result.outcome == "failed" and result.reason == "unknown", "retries with no status say nothing yet"
    assert "no result event" in result.message and "system/api_retry" in result.message
    assert result.session_id == "3da45722-df9c-4a45-8b3a-32ca17ed4741"


def test_recorded_plain_text_not_logged_in_is_an_auth_error() -> None:
    result = claude.parse(RECORDED / "claude_text_not_logged_in.out", NOWHERE, 1)
    assert result.outcome == "auth_error"


def test_recorded_flag_error_on_stderr_is_the_cli_version_not_the_task() -> None:
    result = claude.parse(NOWHERE, RECORDED / "claude_sjson_noverbose.err", 1)
    assert (result.fault, result.reason) == ("vendor", "cli_incompatible") and "requires --verbose" in result.message


def test_rate_limit_stream_is_rate_limited_with_retry_after_from_resets_at(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    log.write_text((DATA / "claude_rate_limit.out").read_text().replace("4102444800", str(int(time.time()) + 300)))
    result = claude.parse(log, NOWHERE, 1)
    assert result.outcome == "rate_limited"
    assert result.retry_after == pytest.approx(300, abs=3)


def test_resets_at_in_milliseconds_is_understood(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    ms = str(int((time.time() + 120) * 1000))
    log.write_text((DATA / "claude_rate_limit.out").read_text().replace("4102444800", ms))
    assert claude.parse(log, NOWHERE, 1).retry_after == pytest.approx(120, abs=3)


def test_max_turns_is_a_failure_that_says_so() -> None:
    result = claude.parse(DATA / "claude_max_turns.out", NOWHERE, 1)
    assert result.outcome == "failed" and "turn limit" in result.message and result.cost_usd == pytest.approx(0.31)


def test_a_success_result_with_a_non_zero_exit_is_not_ok() -> None:
    assert claude.parse(SUCCESS, NOWHERE, 1).outcome == "failed"


@pytest.mark.parametrize("content", [b"", b"\x00\xff garbage \x80\n", b"Segmentation fault\n", b'{"type":"result","is'])
def test_garbage_truncated_or_empty_output_is_failed_never_an_exception(tmp_path: Path, content: bytes) -> None:
    log = tmp_path / "out.log"
    log.write_bytes(content)
    result = claude.parse(log, NOWHERE, 1)
    assert result.outcome == "failed" and result.message


def test_truncated_built_stream_keeps_the_session() -> None:
    result = claude.parse(DATA / "claude_truncated.out", NOWHERE, None)
    assert result.outcome == "failed" and result.session_id


def test_argv_is_headless_stream_json_with_the_options(tmp_path: Path) -> None:
    options = ClaudeOptions(model="opus", max_turns=30, max_budget_usd=2.5, extra_args=["--effort", "high"])
    argv = ClaudeAgent("c", options).argv(agent_run(tmp_path), "PROMPT")
    assert argv[:3] == ["claude", "-p", "PROMPT"]
    assert argv[3:6] == ["--output-format", "stream-json", "--verbose"]
    for pair in (["--permission-mode", "bypassPermissions"], ["--model", "opus"], ["--max-turns", "30"],
                 ["--max-budget-usd", "2.5"]):  # fmt: skip
        i = argv.index(pair[0])
        assert argv[i : i + 2] == pair
    assert argv[-2:] == ["--effort", "high"]


def test_allowed_tools_come_last_before_extra_args_so_they_swallow_nothing(tmp_path: Path) -> None:
    options = ClaudeOptions(permission_mode="acceptEdits", allowed_tools=["Edit", "Bash(pytest *)"])
    argv = ClaudeAgent("c", options).argv(agent_run(tmp_path), "PROMPT")
    assert argv[1:3] == ["-p", "PROMPT"]
    assert argv[-3:] == ["--allowedTools", "Edit", "Bash(pytest *)"]


def test_env_has_the_config_dir_retries_and_autoupdate_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789abcdef")
    run = agent_run(tmp_path)
    monkeypatch.delenv("CLAUDE_CODE_OAUTH_TOKEN", raising=False)
    env = ClaudeAgent("c", ClaudeOptions(max_retries=1)).env(run, run.home / "claude")
    assert env["CLAUDE_CONFIG_DIR"] == str(run.home / "claude")
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "1" and env["DISABLE_AUTOUPDATER"] == "1"
    assert env["ANTHROPIC_API_KEY"] == "sk-ant-test-0123456789abcdef"


def test_options_are_validated_with_the_vendor_name() -> None:
    with pytest.raises(ValueError, match=r"vendors\.c\.permision_mode"):
        registry.validate_options("c", "claude", {"permision_mode": "plan"})
    with pytest.raises(ValueError, match=r"vendors\.c\.permission_mode"):
        registry.validate_options("c", "claude", {"permission_mode": "yolo"})
    assert registry.make("c", "claude", {"model": "sonnet"}).executable() == "claude"


@pytest.mark.skipif(os.geteuid() != 0, reason="the check concerns workers running as root")
def test_doctor_flags_bypass_permissions_as_root_outside_a_sandbox() -> None:
    from swarm.agents import registry

    plain = registry.make("claude", "claude", {})
    sandboxed = registry.make("claude", "claude", {"env": {"IS_SANDBOX": "1"}})
    root_check = [c for c in plain.check() if c[0] == "vendor claude as root"]  # type: ignore[attr-defined]
    assert root_check and root_check[0][1] is False and "IS_SANDBOX" in root_check[0][2]
    assert all(ok for name, ok, _ in sandboxed.check() if name == "vendor claude as root")  # type: ignore[attr-defined]
    assert [c for c in sandboxed.check() if c[0] == "vendor claude as root"]  # type: ignore[attr-defined]
