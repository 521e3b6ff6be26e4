"""The oracle: its summary line, its verdict against main's baseline, and runs that must not read old output."""

from __future__ import annotations

from pathlib import Path

from swarm import oracle
from swarm.counts import Counts
from swarm.settings import OracleSettings


def settings(fast: str, full: str = "true", timeout: float = 10) -> OracleSettings:
    return OracleSettings(fast=fast, full=full, timeout=timeout)


def run(tmp_path: Path, command: str, log: Path, timeout: float = 10) -> oracle.OracleResult:
    return oracle.run(settings(command, timeout=timeout), "fast", tmp_path, log, tmp_path / "cache", "a1", 60)


def test_the_last_json_line_with_counts_is_the_summary() -> None:
    text = 'noise\n{"passed": 1, "failed": 2}\nmore\n{"passed": 5, "failed": 1, "skipped": 2, "areas": {}}\n'
    assert oracle.parse_summary(text) == {"passed": 5, "failed": 1, "skipped": 2, "areas": {}}
    assert oracle.parse_summary('{"passed": "5", "failed": 1}') is None, "counts must be integers"
    assert oracle.parse_summary("{not json\n") is None
    assert oracle.parse_summary("") is None


def test_a_run_reads_only_its_own_output_never_an_earlier_runs_summary(tmp_path: Path) -> None:
    log = tmp_path / "oracle.log"
    first = run(tmp_path, """echo '{"passed": 329, "failed": 0}'""", log)
    assert first.ok and first.passed == 329
    second = run(tmp_path, "echo built, but printed no summary", log)
    assert not second.ok and "no JSON summary" in second.reason
    assert second.passed == 0


def test_exit_code_decides_green_and_a_timeout_is_red(tmp_path: Path) -> None:
    red = run(tmp_path, """echo '{"passed": 3, "failed": 0}'; exit 1""", tmp_path / "red.log")
    assert not red.ok and red.passed == 3 and "exit code 1" in red.reason
    slow = run(tmp_path, "sleep 30", tmp_path / "slow.log", timeout=0.5)
    assert not slow.ok and "timed out" in slow.reason


def test_the_environment_gets_the_agent_id_the_tier_and_the_cache(tmp_path: Path) -> None:
    line = 'echo "{\\"passed\\": 1, \\"failed\\": 0, \\"id\\": \\"$AGENT_ID-$SWARM_ORACLE_TIER-$C\\"}"'
    cfg = OracleSettings(fast=line, full="true", env={"C": "{cache}/x"})
    result = oracle.run(cfg, "fast", tmp_path, tmp_path / "e.log", tmp_path / "cache", "claude-w1", 60)
    assert result.summary["id"] == f"claude-w1-fast-{tmp_path / 'cache'}/x"


def test_judge_rejects_red_a_lower_total_and_a_lower_area() -> None:
    base = Counts.parse({"passed": 10, "areas": {"a": {"passed": 6}, "b": {"passed": 4}}})
    ok = oracle.OracleResult("full", True, 11, summary={"areas": {"a": {"passed": 6}, "b": {"passed": 5}}})
    assert oracle.judge(ok, base) == ""
    assert "dropped from 10" in oracle.judge(oracle.OracleResult("full", True, 9), base)
    traded = oracle.OracleResult("full", True, 10, summary={"areas": {"a": {"passed": 7}, "b": {"passed": 3}}})
    assert "b 4->3" in oracle.judge(traded, base), "a case traded for another in a different area"
    assert oracle.judge(oracle.OracleResult("full", False, 20, reason="red"), base) == "red"
    assert oracle.judge(ok, None) == "", "no green baseline: a green candidate may land"


def test_judge_rejects_more_skipped_in_total_or_in_any_area() -> None:
    """A failing test skipped or ignored instead of fixed weakens the suite: skipped may not rise."""
    summary = {"passed": 10, "skipped": 1, "areas": {"unit": {"passed": 4, "skipped": 1}, "sql": {"passed": 6}}}
    base = Counts.parse(summary)
    same = oracle.OracleResult("full", True, 10, skipped=1, summary=summary)
    assert oracle.judge(same, base) == ""
    ignored = {"areas": {"unit": {"passed": 4, "skipped": 2}, "sql": {"passed": 6}}}
    assert "skipped count rose from 1 on main to 2" in oracle.judge(
        oracle.OracleResult("full", True, 10, skipped=2, summary=ignored), base
    )
    moved = {"areas": {"unit": {"passed": 4, "skipped": 0}, "sql": {"passed": 6, "skipped": 1}}}
    assert "sql 0->1" in oracle.judge(oracle.OracleResult("full", True, 10, skipped=1, summary=moved), base)
