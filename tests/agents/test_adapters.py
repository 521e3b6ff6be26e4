"""What the three vendor adapters share, run against the fake CLIs in bin/: isolation, redaction, endings, doctor."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from swarm import proc
from tests.agents.helpers import CLIS, HELP, KEY_VARS, OWN_KEY, agent_run, fake_cli, script

LOGIN_VARS = ("CLAUDE_CODE_OAUTH_TOKEN", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CONFIG_DIR",
              "CODEX_HOME", "GEMINI_CLI_HOME", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_GCA")  # fmt: skip
HOME_VAR = {"claude": "CLAUDE_CONFIG_DIR", "codex": "CODEX_HOME", "gemini": "GEMINI_CLI_HOME"}


@pytest.fixture
def all_keys(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every vendor's key and the swarm's Redis URL set in the swarm's own environment."""
    values = {name: f"sk-{name.lower().replace('_', '-')}-0123456789abcdef" for name in KEY_VARS}
    values["SWARM_REDIS_URL"] = "redis://:hunter2-redis-password@redis.internal:6379/0"
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.mark.parametrize("cli", CLIS)
def test_the_cli_sees_only_its_own_key_base_env_its_config_dir_and_run_env(
    cli: str, tmp_path: Path, all_keys: dict[str, str]
) -> None:
    record = tmp_path / "record.jsonl"
    run = agent_run(tmp_path, script("write src/alpha.txt alpha"))
    result = fake_cli(cli, env={"FAKE_CLI_RECORD": str(record)}).run(run)
    assert result.outcome == "ok", result.message
    seen = json.loads(record.read_text())
    env = seen["env"]
    assert env[OWN_KEY[cli]] == all_keys[OWN_KEY[cli]]
    others = [k for k in (*KEY_VARS, "SWARM_REDIS_URL") if k != OWN_KEY[cli] and k in env]
    assert others == [], f"{cli} must not see {others}"
    assert env[HOME_VAR[cli]] == str(run.home / cli) and (run.home / cli).is_dir()
    assert env["SWARM_TASK_ID"] == "t1" and "PATH" in env
    assert Path(seen["cwd"]).resolve() == run.worktree.resolve()
    assert (run.worktree / "src" / "alpha.txt").read_text() == "alpha\n"


@pytest.mark.parametrize("cli", CLIS)
def test_stdout_and_stderr_go_to_separate_logs_with_secrets_redacted(
    cli: str, tmp_path: Path, all_keys: dict[str, str]
) -> None:
    run = agent_run(tmp_path, script("print-key"))
    result = fake_cli(cli).run(run)
    assert result.outcome == "ok", "a banner line before the JSON does not spoil the stream"
    stdout = run.log_path.read_text()
    stderr = run.log_path.with_name("agent.stderr.log").read_text()
    key = all_keys[OWN_KEY[cli]]
    assert key not in stdout and key not in stderr
    assert "debug: using key [REDACTED]" in stdout and "debug: using key [REDACTED]" in stderr
    assert result.log_path == run.log_path


@pytest.mark.parametrize("cli", CLIS)
def test_a_rate_limit_stream_is_rate_limited(cli: str, tmp_path: Path, all_keys: dict[str, str]) -> None:
    run = agent_run(tmp_path, script("resets-in 120", "stream rate_limit"))
    result = fake_cli(cli).run(run)
    assert result.outcome == "rate_limited"
    assert result.exit_code == 1 and result.message


@pytest.mark.parametrize("cli", CLIS)
def test_a_hanging_cli_is_killed_at_the_timeout_with_its_process_group(
    cli: str, tmp_path: Path, all_keys: dict[str, str]
) -> None:
    pids = tmp_path / "pids"
    run = agent_run(tmp_path, script(f"hang {pids}"), timeout=1.5)
    started = time.monotonic()
    result = fake_cli(cli).run(run)
    assert result.outcome == "timeout" and "timed out" in result.message
    assert time.monotonic() - started < 10
    for pid in map(int, pids.read_text().split()):
        assert not proc.alive(pid), f"process {pid} of the hanging {cli} outlived the timeout"


def test_a_lost_lease_stops_the_cli_at_once(tmp_path: Path, all_keys: dict[str, str]) -> None:
    run = agent_run(tmp_path, script("sleep 30"), timeout=60)
    threading.Timer(0.5, run.cancel.set).start()
    result = fake_cli("claude").run(run)
    assert result.outcome == "failed" and result.message.startswith("lease lost")


def test_a_cli_killed_by_a_signal_has_crashed(tmp_path: Path, all_keys: dict[str, str]) -> None:
    pids = tmp_path / "pids"
    run = agent_run(tmp_path, script(f"hang {pids}"), timeout=30)
    run.on_start = lambda pgid: threading.Timer(0.5, lambda: _kill(pgid)).start()
    assert fake_cli("gemini").run(run).outcome == "crashed"


def test_a_missing_binary_is_the_vendors_fault_found_before_starting(tmp_path: Path, all_keys: dict[str, str]) -> None:
    result = fake_cli("claude", binary=str(tmp_path / "no-such-claude")).run(agent_run(tmp_path))
    assert (result.outcome, result.fault, result.reason) == ("vendor_error", "vendor", "cli_missing")
    assert "not found on PATH" in result.message


# --- doctor ---


@pytest.mark.parametrize("cli", CLIS)
def test_doctor_passes_with_the_recorded_help_and_a_key(cli: str, all_keys: dict[str, str]) -> None:
    as_root = cli == "claude" and os.geteuid() == 0  # claude's bypass mode as root needs a declared sandbox
    checks = (fake_cli(cli, env={"IS_SANDBOX": "1"}) if as_root else fake_cli(cli)).check()
    assert all(ok for _, ok, _ in checks), checks
    assert "version" in checks[0][2]
    root = [f"vendor {cli} as root"] if as_root else []
    names = [f"vendor {cli}", f"vendor {cli} version", f"vendor {cli} flags", *root, f"vendor {cli} login"]
    assert [name for name, _, _ in checks] == names
    assert checks[-1][2].startswith("api key: API key from"), "doctor says which login is in use"


@pytest.mark.parametrize("cli", CLIS)
def test_doctor_says_in_plain_words_that_the_cli_is_missing(cli: str, all_keys: dict[str, str]) -> None:
    (name, ok, detail), *_ = fake_cli(cli, binary=f"{cli}-not-installed").check()
    assert not ok
    package = {"claude": "@anthropic-ai/claude-code", "codex": "@openai/codex", "gemini": "@google/gemini-cli"}[cli]
    assert detail.startswith(f"{cli}-not-installed not found on PATH: install {package}")
    assert f"vendors.{cli}.binary" in detail


@pytest.mark.parametrize("cli", CLIS)
def test_doctor_says_which_logins_would_do_when_none_is_there(
    cli: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in (*KEY_VARS, *LOGIN_VARS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no logged-in credentials file either
    name, ok, detail = fake_cli(cli).check()[-1]
    assert name == f"vendor {cli} login" and not ok
    assert detail.startswith(f"no login found: export {OWN_KEY[cli]}")


@pytest.mark.parametrize(("cli", "flag"), [("claude", "--verbose"), ("codex", "--skip-git-repo-check"),
                                           ("gemini", "--skip-trust")])  # fmt: skip
def test_doctor_names_a_flag_the_cli_no_longer_lists(
    cli: str, flag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, all_keys: dict[str, str]
) -> None:
    name = "codex_exec" if cli == "codex" else cli
    old = tmp_path / "help.txt"
    old.write_text("\n".join(line for line in (HELP / f"{name}.txt").read_text().splitlines() if flag not in line))
    monkeypatch.setenv("FAKE_CLI_HELP", str(old))
    checks = dict((n, (ok, d)) for n, ok, d in fake_cli(cli, pass_env=["FAKE_CLI_HELP"]).check())
    ok, detail = checks[f"vendor {cli} flags"]
    assert not ok and flag in detail


def test_doctor_checks_only_flags_the_options_use(all_keys: dict[str, str]) -> None:
    assert "--model" not in fake_cli("claude").flags()
    assert "--model" in fake_cli("claude", model="opus").flags()
    assert "--max-turns" not in fake_cli("claude", max_turns=5).flags(), "accepted though hidden from --help"
    assert "--resume" in fake_cli("claude").flags() and "--resume" in fake_cli("gemini").flags(), "doctor checks it"


def _kill(pgid: int) -> None:
    os.killpg(pgid, signal.SIGKILL)
