"""The default agent runner and judge of a worker slot.

The pipeline only knows their roles (`AgentRunner.run_agent`, `Judge.run`); a sandboxed runner replaces
`LocalRunner` without touching the story of an attempt. `SlotJudge` hands a repository that declares a `build` to
swarm.judge (built in a sandbox, judged by main's harness) and runs the legacy tier command locally otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swarm import oracle, proc
from swarm.agents.base import Agent, AgentResult, AgentRun
from swarm.judge import Judge
from swarm.oracle import OracleResult, Tier
from swarm.repo import Mirror
from swarm.roles import OracleJob

log = logging.getLogger(__name__)


class LocalRunner:
    """Runs the vendor's agent adapter in the attempt's worktree, then kills whatever of it is left."""

    def __init__(self, agents: Callable[[str], Agent]) -> None:
        self.agents = agents

    def run_agent(self, run: AgentRun) -> AgentResult:
        result = self.agents(run.vendor).run(run)
        escaped = proc.kill_marked(f"SWARM_RUN={run.env['SWARM_RUN']}")  # processes that left the agent's group
        if escaped:
            log.warning("killed %d process(es) the agent of %s left behind", len(escaped), run.task_id)
        return result


@dataclass
class SlotJudge:
    """Judges commits for one worker slot; `folder` holds the judge's runs and green build caches."""

    mirror: Mirror
    folder: Path
    seed: Callable[[], str]
    """The swarm-wide secret seed of the harness's unseen variants (asked for only when a build is judged)."""
    sandboxed: bool = True
    keep_runs: bool = False

    def run(self, tier: Tier, commit: str, job: OracleJob) -> OracleResult:
        if job.repo.oracle.build is None:
            return self._legacy(tier, commit, job)
        judge = Judge(self.mirror, self.folder / job.agent_id, seed=self.seed(), sandboxed=self.sandboxed,
                      keep_runs=self.keep_runs)  # fmt: skip
        timeout = min(job.repo.oracle.timeout, job.timeout_cap)
        return judge.run(job.repo.oracle, tier, commit, job.main, job.log_path, agent_id=job.agent_id,
                         timeout=timeout, cancel=job.cancel)  # fmt: skip

    def _legacy(self, tier: Tier, commit: str, job: OracleJob) -> OracleResult:
        """The repository's tier command, run in a worktree of the swarm's own checked out at `commit`."""
        job.worktree.checkout(commit)
        return oracle.run(
            job.repo.oracle,
            tier,
            job.worktree.path,
            log_path=job.log_path,
            cache_dir=job.cache_dir,
            agent_id=job.agent_id,
            timeout_cap=job.timeout_cap,
            cancel=job.cancel,
            extra_env=job.env,
        )
