"""The default agent runner and judge of a worker slot.

The pipeline only knows their roles (`AgentRunner.run_agent`, `Judge.run`); a sandboxed runner replaces
`LocalRunner` without touching the story of an attempt. `SlotJudge` hands every verdict to swarm.judge: with a
`build`, the candidate built in a sandbox and judged by main's harness; without one, the tier command whole in the
build sandbox with main's harness put back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swarm import proc
from swarm.agents.base import Agent, AgentResult, AgentRun
from swarm.judge import Judge
from swarm.oracle import OracleResult, Tier
from swarm.repo import Mirror
from swarm.roles import OracleJob

log = logging.getLogger(__name__)


class LocalRunner:
    """Runs the vendor's agent adapter on this host, in its sandbox (every process of it dies with the run);
    unsandboxed (the loud opt-out), it kills afterwards whatever of it left the group with its marks."""

    def __init__(self, agents: Callable[[str], Agent]) -> None:
        self.agents = agents

    def run_agent(self, run: AgentRun) -> AgentResult:
        result = self.agents(run.vendor).run(run)
        if run.sandbox is not None:
            return result
        escaped = proc.kill_marked(f"SWARM_RUN={run.env['SWARM_RUN']}")  # processes that left the agent's group
        if escaped:
            log.warning("killed %d process(es) the agent of %s left behind", len(escaped), run.task_id)
        return result


@dataclass
class SlotJudge:
    """Judges commits for one worker slot (swarm.judge): the candidate built in a sandbox, main's harness the judge;
    `folder` holds each slot's runs and green build caches."""

    mirror: Mirror
    folder: Path
    seed: Callable[[], str]
    """The swarm-wide secret seed of the harness's unseen variants."""
    sandboxed: bool = True
    keep_runs: bool = False

    def run(self, tier: Tier, commit: str, job: OracleJob) -> OracleResult:
        timeout = min(job.repo.oracle.timeout, job.timeout_cap)
        return self._judge(job.agent_id).run(job.repo, tier, commit, job.main, job.log_path, agent_id=job.agent_id,
                                             timeout=timeout, cancel=job.cancel)  # fmt: skip

    def landed(self, commit: str, agent_id: str) -> None:
        """`commit` is main now: the slot's green build of it, if any, seeds its next builds."""
        self._judge(agent_id).landed(commit)

    def _judge(self, agent_id: str) -> Judge:
        return Judge(self.mirror, self.folder / agent_id, seed=self.seed(), sandboxed=self.sandboxed,
                     keep_runs=self.keep_runs)  # fmt: skip
