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
from swarm.repo import Worktree
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
    worktree: Worktree
    """A worktree of the swarm's own, where the commit may be checked out; no agent ever ran in it."""
    log_path: Path
    cache_dir: Path
    agent_id: str
    timeout_cap: float
    cancel: threading.Event = field(default_factory=threading.Event)
    env: dict[str, str] = field(default_factory=dict)


class Judge(Protocol):
    def run(self, tier: Tier, commit: str, job: OracleJob) -> OracleResult:
        """Run one oracle tier on exactly `commit` and return its verdict and counts."""
        ...
