"""Run the repository's oracle, read its JSON summary line, and judge it against main's baseline."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from swarm import proc, runners
from swarm.counts import Counts
from swarm.environ import child_env
from swarm.settings import OracleSettings

log = logging.getLogger(__name__)

Tier = Literal["fast", "full"]


@dataclass
class OracleResult:
    """One oracle run: whether it was green, and its counts."""

    tier: str
    ok: bool
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    reason: str = ""
    exit_code: int | None = None
    log_path: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    """Wall seconds of the run's processes (build and tests)."""
    cpu_seconds: float = 0.0
    """CPU seconds they used."""
    cpu_waited: float = 0.0
    """Seconds their threads waited for a CPU: with `cpu_seconds`, over `seconds`, how many cores one run keeps
    busy or would with the machine to itself (see the train's `auto` mode)."""

    def counts(self) -> Counts:
        return Counts(self.passed, self.failed, self.skipped, Counts.parse(self.summary).areas)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def parse_summary(output: str) -> dict[str, Any] | None:
    """The last line of output that is a JSON object with integer passed/failed counts (runners' JSON reader)."""
    return runners.json_line(output)


def run(
    settings: OracleSettings,
    tier: Tier,
    worktree: Path,
    log_path: Path,
    cache_dir: Path,
    agent_id: str,
    timeout_cap: float,
    cancel: threading.Event | None = None,
    extra_env: dict[str, str] | None = None,
) -> OracleResult:
    """Run one tier in the worktree; green means exit 0 and a summary line."""
    command = settings.fast if tier == "fast" else settings.full
    cache_dir.mkdir(parents=True, exist_ok=True)
    env = child_env()
    env.update({k: v.replace("{cache}", str(cache_dir)) for k, v in settings.env.items()})
    env.update(AGENT_ID=agent_id, SWARM_ORACLE_TIER=tier, **(extra_env or {}))
    timeout = min(settings.timeout, timeout_cap)
    result = proc.run(["bash", "-c", command], cwd=worktree, env=env, timeout=timeout, log_path=log_path, cancel=cancel)
    summary = runners.summarize(settings.runner, proc.tail(log_path, runners.OUTPUT_BYTES), worktree)
    return verdict(tier, command, result, summary, log_path)


def verdict(
    tier: Tier, command: str, result: proc.ProcResult, summary: dict[str, Any] | None, log_path: Path
) -> OracleResult:
    """Green means the command exited 0 and its counts could be read."""
    out = OracleResult(tier=tier, ok=False, exit_code=result.returncode, log_path=str(log_path),
                       seconds=result.duration, cpu_seconds=result.cpu, cpu_waited=result.cpu_waited)  # fmt: skip
    if summary is not None:
        out.summary = summary
        out.passed, out.failed, out.skipped = (int(summary.get(k) or 0) for k in ("passed", "failed", "skipped"))
    if not result.ok:
        out.reason = f"{tier} oracle `{command}`: {result.describe()}"
    elif summary is None:
        out.reason = f"{tier} oracle `{command}` printed no JSON summary line with passed/failed counts"
    else:
        out.ok = True
    return out


def judge(result: OracleResult, baseline: Counts | None) -> str:
    """Why a result may not land ("" when it may): red, or short of main's counts (see `Counts.drop_from`)."""
    if not result.ok:
        return result.reason
    drop = result.counts().drop_from(baseline) if baseline is not None else ""
    return f"{result.tier} oracle: {drop}" if drop else ""
