"""Every known failure of each CLI has a precise reason and a fault: the task's (the agent ran and failed) or the
vendor's (it could not run: never charged to the task). Each row runs the adapter on a fake CLI printing a fixture
(tests/data/agent_outputs/<cli>_<name>.*); recorded outputs of the real CLIs are read by the parsers directly."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm.agents import claude, codex, gemini, registry, taxonomy
from swarm.agents.base import AgentResult
from tests.agents.helpers import BIN, KEY_VARS, NOWHERE, RECORDED, agent_run, root_sandbox_env, script

CASES = [
    ("claude", "success", "ok", None, None),
    ("claude", "max_turns", "failed", "task", "turn_limit"),
    ("claude", "rate_limit", "rate_limited", "vendor", "rate_limit"),
    ("claude", "billing", "vendor_error", "vendor", "billing"),
    ("claude", "org_disabled", "vendor_error", "vendor", "policy"),
    ("claude", "model_not_found", "vendor_error", "vendor", "model_not_found"),
    ("claude", "too_old", "vendor_error", "vendor", "cli_too_old"),
    ("claude", "overloaded", "rate_limited", "vendor", "overloaded"),
    ("claude", "oauth_expired", "auth_error", "vendor", "auth"),
    ("claude", "weird", "failed", "unknown", "unknown"),
    ("codex", "success", "ok", None, None),
    ("codex", "rate_limit", "rate_limited", "vendor", "rate_limit"),
    ("codex", "usage_limit", "rate_limited", "vendor", "rate_limit"),
    ("codex", "auth", "auth_error", "vendor", "auth"),
    ("codex", "billing", "vendor_error", "vendor", "billing"),
    ("codex", "model_not_found", "vendor_error", "vendor", "model_not_found"),
    ("codex", "policy", "vendor_error", "vendor", "policy"),
    ("codex", "overloaded", "rate_limited", "vendor", "overloaded"),
    ("codex", "weird", "failed", "unknown", "unknown"),
    ("gemini", "success", "ok", None, None),
    ("gemini", "rate_limit", "rate_limited", "vendor", "rate_limit"),
    ("gemini", "error_result", "failed", "task", "turn_limit"),
    ("gemini", "model_not_found", "vendor_error", "vendor", "model_not_found"),
    ("gemini", "policy", "vendor_error", "vendor", "policy"),
    ("gemini", "untrusted", "vendor_error", "vendor", "refused"),
    ("gemini", "config", "vendor_error", "vendor", "cli_incompatible"),
    ("gemini", "tool", "failed", "task", "agent_error"),
    ("gemini", "weird", "failed", "unknown", "unknown"),
]


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_VARS:
        monkeypatch.setenv(name, f"sk-{name.lower().replace('_', '-')}-0123456789abcdef")


@pytest.mark.parametrize(("cli", "stream", "outcome", "fault", "reason"), CASES)
def test_each_known_failure_has_its_reason_and_fault_end_to_end(
    cli: str, stream: str, outcome: str, fault: str | None, reason: str | None, tmp_path: Path, keys: None
) -> None:
    env = root_sandbox_env(cli)
    agent = registry.make(cli, cli, {"binary": str(BIN / cli), "env": env})
    result = agent.run(agent_run(tmp_path, script(f"stream {stream}")))
    assert (result.outcome, result.fault, result.reason) == (outcome, fault, reason), result.message


@pytest.mark.parametrize(
    ("parse", "stdout", "stderr", "code", "reason"),
    [
        (claude.parse, "claude_json.out", None, 1, "auth"),
        (claude.parse, "claude_sjson.out", None, 1, "auth"),
        (claude.parse, "claude_text_not_logged_in.out", None, 1, "auth"),
        (claude.parse, "claude_fakekey_r1.out", None, 1, "network"),
        (claude.parse, None, "claude_sjson_noverbose.err", 1, "cli_incompatible"),
        (claude.parse, None, "claude_root_refused.err", 1, "refused"),
        (codex.parse, "codex_json.out", "codex_text.err", -15, "network"),
        (gemini.parse, None, "gemini_json.err", 41, "auth"),
        (gemini.parse, None, "gemini_sjson.err", 41, "auth"),
        (gemini.parse, "gemini_fake_sjson.out", "gemini_fake_sjson.err", -15, "network"),
        (gemini.parse, None, "gemini_fake_json.err", 1, "network"),
    ],
)
def test_recorded_real_cli_failures_are_classified(
    parse: object, stdout: str | None, stderr: str | None, code: int, reason: str
) -> None:
    out = RECORDED / stdout if stdout else NOWHERE
    err = RECORDED / stderr if stderr else NOWHERE
    result = parse(out, err, code)  # type: ignore[operator]
    assert result.reason == reason and result.fault == taxonomy.fault_of(reason), result.message


def test_every_reason_has_one_fault_and_the_sets_do_not_overlap() -> None:
    assert not taxonomy.VENDOR & taxonomy.TASK
    assert taxonomy.TRANSIENT <= taxonomy.VENDOR
    for reason in taxonomy.REASONS:
        result = taxonomy.fail(AgentResult("ok"), reason)
        assert result.outcome != "ok" and result.fault in ("task", "vendor", "unknown")


def test_an_unknown_reason_name_is_refused_not_stored() -> None:
    with pytest.raises(ValueError, match="unknown failure reason 'typo'"):
        taxonomy.fail(AgentResult("failed"), "typo")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "You've hit your usage limit. Upgrade to Pro ... purchase more credits or try again at 3:45 PM.",
            "rate_limit",
        ),
        (
            "You exceeded your current quota, please check your plan and billing details. Please retry in 37.8s.",
            "rate_limit",
        ),
        (
            "You exceeded your current quota, please check your plan and billing details. (insufficient_quota)",
            "billing",
        ),
        ("Your organization has disabled Claude subscription access", "policy"),
        ("Your account does not have access to Claude. Please login again or contact your administrator.", "auth"),
        ("API Error: Usage credits required for 1M context", "billing"),
        ("Prompt is too long", "context_too_long"),
        ("Error: unknown option '--output-format'", "cli_incompatible"),
        ("connect ECONNREFUSED 127.0.0.1:443", "network"),
        ("API Error: Unable to connect to API (FailedToOpenSocket)", "network"),  # claude 2.1.197
        ("API Error: Can't reach the API server — check your internet or DNS (ENOTFOUND)", "network"),  # 2.1.332
        ("Reconnecting... 1/5 (unexpected status 429 Too Many Requests)", "rate_limit"),
        ("the agent wrote a poem instead", None),
    ],
)
def test_failure_wordings(text: str, reason: str | None) -> None:
    assert taxonomy.classify(text) == reason
