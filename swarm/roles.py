"""The roles the pipeline hands work to: one that runs the agent, one that judges a commit with the oracle.

`swarm/local.py` has the default of each (local processes); others (a sandbox, a judge from main's blobs) only
need to fill the same role.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from swarm.agents.base import AgentResult, AgentRun
from swarm.oracle import OracleResult, Tier
from swarm.settings import RepoSettings


class AgentRunner(Protocol):
    def run_agent(self, run: AgentRun) -> AgentResult:
        """Run the agent until it stops, times out or `run.cancel` is set; nothing of it may outlive the call."""
        ...


@dataclass
class OracleJob:
    """What a judge gets besides the tier and the commit."""

    repo: RepoSettings
    """main's `.swarm.toml` (its oracle commands and environment) as of `main`."""
    main: str
    """The commit of main the verdict is against: its harness and expected results judge the commit."""
    log_path: Path
    agent_id: str
    """The slot the verdict is for: its build cache, and the fast tier's sample seed."""
    timeout_cap: float
    cancel: threading.Event = field(default_factory=threading.Event)


class Judge(Protocol):
    def run(self, tier: Tier, commit: str, job: OracleJob) -> OracleResult:
        """Run one oracle tier on exactly `commit` and return its verdict and counts."""
        ...

    def landed(self, commit: str, agent_id: str) -> None:
        """`commit` has landed: what the judge kept of its verdict (a build cache) may now serve later verdicts."""
        ...
