"""Vendor quota in a real Redis: cooldowns shared by every worker, auth errors, the spend ledger and its cap."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import redis

from swarm import keys, quota
from swarm.agents import Agent, registry, taxonomy
from swarm.agents.base import AgentResult
from swarm.quota import VendorLedger
from tests.agents.helpers import BIN, KEY_VARS, root_sandbox_env


def spent(cost: float | None, tokens: int = 1000, outcome: str = "ok") -> AgentResult:
    return AgentResult(outcome, "m", input_tokens=tokens, output_tokens=tokens // 10, cached_tokens=tokens // 2,
                       cost_usd=cost)  # type: ignore[arg-type]  # fmt: skip


def test_a_cooldown_until_the_cli_reset_time_is_seen_by_every_client(r: redis.Redis, redis_url: str) -> None:
    until = VendorLedger(r).cool_down("claude", time.time() + 120, reason="429")
    other_worker = redis.Redis.from_url(redis_url)
    left = VendorLedger(other_worker).cooling("claude")
    assert left == pytest.approx(120, abs=2) and until == pytest.approx(time.time() + 120, abs=2)
    assert VendorLedger(other_worker).cooling("codex") is None
    assert 115 <= r.pttl(keys.cooldown("claude")) / 1000 <= 121, "the key expires when the cooldown ends"


def test_a_cooldown_never_shrinks_when_another_worker_reports_a_shorter_one(r: redis.Redis) -> None:
    VendorLedger(r).cool_down("claude", time.time() + 300)
    VendorLedger(r).cool_down("claude", time.time() + 10)
    assert VendorLedger(r).cooling("claude") == pytest.approx(300, abs=2)
    VendorLedger(r).cool_down("claude", time.time() + 600)
    assert VendorLedger(r).cooling("claude") == pytest.approx(600, abs=2)


def test_without_a_reset_time_the_backoff_doubles_with_jitter_up_to_the_cap(r: redis.Redis) -> None:
    first = VendorLedger(r).cool_down("codex") - time.time()
    assert quota.BACKOFF_BASE / 2 - 1 <= first <= quota.BACKOFF_BASE + 1
    VendorLedger(r).clear("codex")
    assert VendorLedger(r).cooling("codex") is None
    for n in range(1, 12):
        delay = quota.backoff(n)
        full = min(quota.BACKOFF_CAP, quota.BACKOFF_BASE * 2 ** (n - 1))
        assert full / 2 <= delay <= full
    assert VendorLedger(r).cool_down("x", attempt_no=20) - time.time() <= quota.BACKOFF_CAP + 1


def test_consecutive_rate_limits_grow_the_streak_and_a_good_run_resets_it(r: redis.Redis) -> None:
    for _ in range(3):
        VendorLedger(r).cool_down("gemini")
    assert int(r.get(keys.cooldown_streak("gemini"))) == 3
    assert (VendorLedger(r).cooldown_info("gemini") or {})["streak"] == 3
    VendorLedger(r).note_ok("gemini")
    assert not r.exists(keys.cooldown_streak("gemini"))


def test_a_reset_time_in_the_past_or_absurdly_far_is_bounded(r: redis.Redis) -> None:
    assert VendorLedger(r).cool_down("a", time.time() - 50) > time.time(), "a past reset time falls back to backoff"
    assert VendorLedger(r).cool_down("b", time.time() + 10 * 365 * 86400) <= time.time() + quota.MAX_COOLDOWN + 1


def test_concurrent_rate_limits_leave_the_longest_cooldown(r: redis.Redis, redis_url: str) -> None:
    ends = [time.time() + s for s in (50, 400, 100, 300)]
    threads = [threading.Thread(target=VendorLedger(redis.Redis.from_url(redis_url)).cool_down, args=("claude", end))
               for end in ends]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert VendorLedger(r).cooling("claude") == pytest.approx(400, abs=2)


def test_auth_error_parks_the_vendor_for_a_while(r: redis.Redis) -> None:
    assert VendorLedger(r).auth_error("claude") is None
    VendorLedger(r).mark_auth_error("claude", "Not logged in")
    assert VendorLedger(r).auth_error("claude") == "Not logged in"
    assert 0 < r.ttl(keys.auth_error("claude")) <= quota.AUTH_ERROR_TTL
    assert VendorLedger(r).blocked("claude") == "auth error: Not logged in"
    VendorLedger(r).note_ok("claude")
    assert VendorLedger(r).auth_error("claude") is None


def test_spend_is_added_per_vendor_day_total_and_task(r: redis.Redis) -> None:
    assert VendorLedger(r).record_spend("codex", "t1", spent(0.25)) == {
        "input_tokens": 1000, "output_tokens": 100, "cached_tokens": 500, "cost_usd": 0.25}  # fmt: skip
    VendorLedger(r).record_spend("codex", "t2", spent(0.5, tokens=2000))
    VendorLedger(r).record_spend("claude", "t1", spent(1.0))
    VendorLedger(r).record_spend("claude", "t1", spent(None, tokens=0, outcome="timeout"))
    assert VendorLedger(r).spent_today("codex") == pytest.approx(0.75)
    day = VendorLedger(r).spend("codex")
    assert day["input_tokens"] == 3000 and day["attempts"] == 2 and isinstance(day["input_tokens"], int)
    assert VendorLedger(r).spend_total("claude")["attempts"] == 2
    task = VendorLedger(r).task_spend("t1")
    assert task["cost_usd"] == pytest.approx(1.25) and task["attempts"] == 3
    assert task["cost_usd:claude"] == pytest.approx(1.0) and task["cost_usd:codex"] == pytest.approx(0.25)
    assert 0 < r.ttl(keys.spend_day("codex", quota.today())) <= quota.SPEND_TTL


def test_the_daily_cap_blocks_the_vendor_once_reached(r: redis.Redis) -> None:
    assert not VendorLedger(r).over_cap("claude", 1.0) and not VendorLedger(r).over_cap("claude", None)
    VendorLedger(r).record_spend("claude", "t1", spent(0.6))
    assert not VendorLedger(r).over_cap("claude", 1.0)
    VendorLedger(r).record_spend("claude", "t2", spent(0.4))
    assert VendorLedger(r).over_cap("claude", 1.0) and not VendorLedger(r).over_cap("claude", None)
    assert "over its daily cap: $1.00 of $1.00" in (VendorLedger(r).blocked("claude", 1.0) or "")


def test_after_run_books_spend_and_cools_or_parks_the_vendor(r: redis.Redis) -> None:
    limited = spent(0.1, outcome="rate_limited")
    limited.retry_after = 90
    until = VendorLedger(r).after_run("claude", "t1", limited)
    assert until == pytest.approx(time.time() + 90, abs=2) and VendorLedger(r).cooling("claude")
    assert VendorLedger(r).after_run("codex", "t1", spent(None, outcome="auth_error")) is None
    assert VendorLedger(r).auth_error("codex") == "m"
    VendorLedger(r).after_run("codex", "t2", spent(0.2))
    assert VendorLedger(r).auth_error("codex") is None, "a run that got through clears the auth error"
    assert VendorLedger(r).task_spend("t1")["attempts"] == 2


def test_vendor_states_for_status(r: redis.Redis) -> None:
    VendorLedger(r).cool_down("claude", time.time() + 60, reason="429 Too Many Requests")
    VendorLedger(r).mark_auth_error("codex", "401 Unauthorized")
    VendorLedger(r).record_spend("gemini", "t1", spent(5.0))
    VendorLedger(r).record_spend("extra", "t1", spent(0.5))
    states = VendorLedger(r).vendor_states(["claude", "codex", "gemini", "extra"], {"gemini": 5.0, "extra": 10.0})
    assert {v: s["state"] for v, s in states.items()} == {
        "claude": "cooling", "codex": "auth_error", "gemini": "over_cap", "extra": "active"}  # fmt: skip
    assert states["claude"]["seconds_left"] == pytest.approx(60, abs=2)
    assert "cooling until" in states["claude"]["detail"] and "429" in states["claude"]["detail"]
    assert states["extra"]["spent_today"] == pytest.approx(0.5) and states["extra"]["cap_usd"] == 10.0
    assert VendorLedger(r).blocked("extra", 10.0) is None


# --- vendor-level failures: park or cool, a preflight before any work, a probe before real tasks again ---


def _fake(cli: str, tmp_path: Path, **env: str) -> Agent:
    sandbox = root_sandbox_env(cli)
    record = {"FAKE_CLI_RECORD": str(tmp_path / "record.jsonl")}
    return registry.make(cli, cli, {"binary": str(BIN / cli), "env": {**sandbox, **record, **env}})


@pytest.fixture
def keys_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_VARS:
        monkeypatch.setenv(name, f"sk-{name.lower().replace('_', '-')}-0123456789abcdef")


def test_a_lasting_vendor_failure_parks_the_vendor_and_a_passing_one_cools_it(r: redis.Redis) -> None:
    billing = taxonomy.fail(AgentResult("failed", "Credit balance is too low"), "billing")
    assert VendorLedger(r).after_run("claude", "t1", billing) is None
    assert VendorLedger(r).vendor_state("claude")["state"] == "auth_error"
    assert VendorLedger(r).blocked("claude") == "auth error: billing: Credit balance is too low"
    network = taxonomy.fail(AgentResult("failed", "Unable to connect to API"), "network")
    assert VendorLedger(r).after_run("codex", "t1", network) is not None
    assert VendorLedger(r).vendor_state("codex")["state"] == "cooling"


def test_the_gate_runs_the_preflight_and_parks_a_vendor_with_no_login_without_starting_it(
    r: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (*KEY_VARS, "CLAUDE_CODE_OAUTH_TOKEN", "CODEX_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    why = VendorLedger(r).gate("codex", _fake("codex", tmp_path), tmp_path / "slot")
    assert why is not None and why.startswith("preflight: auth: codex: no login found")
    assert VendorLedger(r).vendor_state("codex")["state"] == "auth_error"
    assert not (tmp_path / "record.jsonl").exists(), "nothing was started"


def test_a_parked_vendor_is_rechecked_by_one_probe_not_by_a_task(
    r: redis.Redis, tmp_path: Path, keys_set: None
) -> None:
    VendorLedger(r).mark_auth_error("gemini", "billing: Credit balance is too low")
    agent = _fake("gemini", tmp_path, FAKE_CLI_STREAM="model_not_found")
    assert VendorLedger(r).gate("gemini", agent, tmp_path / "slot") is not None, "parked: no probe yet"
    r.delete(keys.auth_error("gemini"))  # the park ended (its TTL ran out)
    why = VendorLedger(r).gate("gemini", agent, tmp_path / "slot")
    assert why is not None and why.startswith("probe failed: model_not_found")
    assert VendorLedger(r).vendor_state("gemini")["state"] == "auth_error", "a failed probe parks the vendor again"
    probes = [json.loads(line) for line in (tmp_path / "record.jsonl").read_text().splitlines()]
    assert len(probes) == 1 and "Reply with the single word OK" in probes[0]["argv"][probes[0]["argv"].index("-p") + 1]
    r.delete(keys.auth_error("gemini"))
    assert VendorLedger(r).gate("gemini", _fake("gemini", tmp_path), tmp_path / "slot") is None
    assert VendorLedger(r).vendor_state("gemini")["state"] == "active" and not r.exists(keys.vendor_probe("gemini"))


def test_only_one_worker_claims_the_probe_and_the_others_see_the_vendor_parked_meanwhile(r: redis.Redis) -> None:
    VendorLedger(r).mark_auth_error("claude", "auth: Not logged in")
    r.delete(keys.auth_error("claude"))
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(VendorLedger(r).claim_probe("claude"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert VendorLedger(r).blocked("claude") is not None
