"""Where one attempt works on this host: its log folder, its worktrees, the agent's home and run request.

`Attempt` is what the pipeline carries from step to step; `Workspaces` makes and removes its folders.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from swarm import identity
from swarm.agents.base import AgentRun
from swarm.environ import agent_home_env
from swarm.errors import SwarmError
from swarm.leases import Lease
from swarm.outcomes import AttemptRecord
from swarm.repo import Mirror, Worktree
from swarm.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Attempt:
    """What one attempt carries from step to step."""

    task_id: str
    vendor: str
    lease: Lease
    log_dir: Path
    record: AttemptRecord
    cancel: threading.Event = field(default_factory=threading.Event)
    logs: int = 0
    run_id: str = field(default_factory=lambda: secrets.token_hex(8))
    """Marks every process of this attempt's agent run (SWARM_RUN), even those that leave its process group."""
    worktrees: list[Path] = field(default_factory=list)

    @property
    def number(self) -> int:
        return self.record.attempt

    @property
    def keep_name(self) -> str:
        return f"{self.task_id}-{self.lease.fence}"

    def next_log(self, name: str) -> Path:
        """A new log file of this attempt, numbered in the order of its runs (01-oracle-full.log, ...)."""
        self.logs += 1
        return self.log_dir / f"{self.logs:02d}-{name}.log"

    def trailers(self) -> str:
        return (
            f"Swarm-Task: {self.task_id}\nSwarm-Agent: {self.vendor}\n"
            f"Swarm-Attempt: {self.number}\nSwarm-Fence: {self.lease.fence}\n"
        )


@dataclass
class Workspaces:
    """The folders of this worker slot's attempts under `workdir`."""

    settings: Settings
    mirror: Mirror
    worker: str
    slot: str

    @property
    def workdir(self) -> Path:
        return self.settings.workdir.resolve()

    def new_attempt(self, task_id: str, vendor: str, lease: Lease, cancel: threading.Event) -> Attempt:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        log_dir = self.workdir / "logs" / task_id / f"{stamp}-fence{lease.fence}"
        log_dir.mkdir(parents=True, exist_ok=True)
        record = AttemptRecord(task=task_id, vendor=vendor, worker=self.worker, fence=lease.fence, log_dir=str(log_dir))
        return Attempt(task_id, vendor, lease, log_dir, record, cancel=cancel)

    def worktree(self, att: Attempt, commit: str) -> Worktree:
        """A new worktree of this attempt at `commit`, at a path no earlier run has used."""
        path = self.workdir / "worktrees" / f"{att.task_id}-{self.worker}-{secrets.token_hex(3)}"
        att.worktrees.append(path)
        return self.mirror.add_worktree(path, commit)

    def drop(self, path: Path) -> None:
        try:
            self.mirror.remove_worktree(path)
        except SwarmError as exc:
            log.warning("could not remove worktree %s: %s", path, exc)
            shutil.rmtree(path, ignore_errors=True)

    def clean_up(self, att: Attempt) -> None:
        for name in (att.keep_name, f"{att.keep_name}-rebased"):
            try:
                self.mirror.unkeep(name)
            except SwarmError as exc:
                log.warning("could not drop %s: %s", name, exc)
        if not self.settings.keep_worktrees:
            for path in att.worktrees:
                self.drop(path)

    def home(self, vendor: str) -> Path:
        """This slot's home for the vendor's agent: its config, login link and private temp folder."""
        home = self.workdir / "homes" / f"{vendor}-{self.slot}"
        home.mkdir(parents=True, exist_ok=True)
        return home

    def agent_run(
        self, att: Attempt, prompt_file: Path, worktree: Worktree, on_start: Callable[[int], None]
    ) -> AgentRun:
        """The request the runner gets: the slot's own home, the attempt's marks in the environment, the timeout."""
        home = self.home(att.vendor)
        env = {
            **agent_home_env(home, f"{att.vendor} agent"),
            "SWARM_TASK_ID": att.task_id,
            "SWARM_PROMPT_FILE": str(prompt_file),
            "SWARM_ATTEMPT": str(att.number),
            "SWARM_RUN": att.run_id,
            "SWARM_WORKER": self.worker,
            **identity.marker(self.settings),
        }
        timeout = self.settings.vendors[att.vendor].timeout or self.settings.agent_timeout
        return AgentRun(task_id=att.task_id, attempt=att.number, vendor=att.vendor, prompt_file=prompt_file,
                        worktree=worktree.path, log_path=att.log_dir / "agent.log", home=home, timeout=timeout,
                        env=env, cancel=att.cancel, on_start=on_start)  # fmt: skip
