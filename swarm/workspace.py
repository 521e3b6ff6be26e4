"""Where one attempt works on this host: its log folder, its worktrees, the agent's home and run request.

`Attempt` is what the pipeline carries from step to step; `Workspaces` makes and removes its folders.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from swarm import identity
from swarm.agents.base import AgentRun
from swarm.counts import Counts
from swarm.disk import DiskWatch
from swarm.egress import DEFAULT_ALLOW
from swarm.environ import agent_home_env, child_env, toolchain_env
from swarm.errors import SwarmError
from swarm.leases import Lease
from swarm.outcomes import AttemptRecord
from swarm.repo import Mirror, Worktree, index_of
from swarm.sandbox import Network, Sandbox, toolchains
from swarm.settings import Settings, VendorSettings, config_file

log = logging.getLogger(__name__)

OFFLINE_ADAPTERS = ("command", "replay")
"""Adapters whose agents need no network: their sandbox has only a loopback of its own (others: the egress proxy)."""


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
    folders: list[Path] = field(default_factory=list)
    """The agent's workspaces (standalone repositories), removed when the attempt ends."""
    workspace: Path | None = None
    """The agent's workspace (its folder is removed once the candidate commit is made)."""
    base: str = ""
    """The main the agent's work is on."""
    candidate: str | None = None
    resume: str | None = None
    """The CLI session this attempt continues (a cut attempt's, on this slot)."""
    begin: threading.Thread | None = None
    """Writes the begin record to origin's ledger while the attempt goes on (see `Pipeline._begin_record`)."""
    end_written: bool = False
    """Whether the landing push carried the attempt's end record."""
    early: dict[str, tuple[Future[Counts | None], threading.Thread, threading.Event]] = field(default_factory=dict)
    """main's counts measured beside the car's own full run, by main: its counts to come, the thread, its stop."""
    disk: DiskWatch | None = None
    """Watches the workdir's disk while the attempt runs: a failure while it was full is not the task's."""

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
        att = Attempt(task_id, vendor, lease, log_dir, record, cancel=cancel)
        home = self._home(vendor)
        att.disk = DiskWatch([self.workdir, log_dir, self.mirror.path], lambda: [att.workspace, log_dir, home]).start()
        return att

    def worktree(self, att: Attempt, commit: str) -> Worktree:
        """A new worktree of this attempt at `commit`, at a path no earlier run has used."""
        path = self.workdir / "worktrees" / f"{att.task_id}-{self.worker}-{secrets.token_hex(3)}"
        att.worktrees.append(path)
        return self.mirror.add_worktree(path, commit)

    def workspace(self, att: Attempt, commit: str, head: str | None = None, path: Path | None = None) -> Path:
        """The agent's standalone repository with `commit`'s files at `head` (see Mirror.workspace), at `path` or a
        new one: its git dir is its own (objects borrowed read-only from the mirror), so nothing it writes there
        reaches the swarm's git; the swarm reads it back with `collect`."""
        if path is not None:  # a cut session's folder, named for its dead worker: this process owns it now
            owner_of(path).write_text(f"{os.getpid()}\n")
        spare = False
        if path is None:
            path = self.workdir / "workspaces" / f"{att.task_id}-{self.worker}-{secrets.token_hex(3)}"
            spare = self._take_spare(path)
        att.folders.append(path)
        try:
            self.mirror.workspace(commit, path, head)
        except (SwarmError, OSError) as exc:
            if not spare:
                raise
            log.warning("writing %s anew instead of the slot's last folder (%s)", path, exc)
            shutil.rmtree(path, ignore_errors=True)
            index_of(path).unlink(missing_ok=True)
            self.mirror.workspace(commit, path, head)
        att.workspace, att.base = path, head or commit
        if self.settings.vendors[att.vendor].resume:  # if this process dies, the sweep keeps the work from this note
            note = {"task": att.task_id, "vendor": att.vendor, "slot": self.slot, "fence": att.lease.fence,
                    "base": att.base, "home": str(self.home(att.vendor))}  # fmt: skip
            note_of(path).write_text(json.dumps(note))
        return path

    @property
    def spare(self) -> Path:
        """The slot's last agent folder, kept for its next one: `sync` then rewrites only what differs (and puts
        back whatever the last agent changed), so setting up a workspace costs what changed, not the repository."""
        return self.workdir / "workspaces" / f"spare-{self.slot}"

    def _take_spare(self, path: Path) -> bool:
        """Whether the slot's last folder became `path` (else `path` is written whole)."""
        spare = self.spare
        try:
            if spare.is_dir() and not spare.is_symlink() and index_of(spare).is_file():
                spare.rename(path)
                index_of(spare).rename(index_of(path))
                return True
            if spare.is_dir() and not spare.is_symlink():  # half kept: of no use, and it blocks the next keep
                shutil.rmtree(spare)
        except OSError as exc:
            log.warning("could not reuse %s: %s", spare, exc)
        return False

    def drop_folder(self, path: Path) -> None:
        if self.settings.keep_worktrees:
            return
        for beside in (owner_of(path), note_of(path)):
            beside.unlink(missing_ok=True)
        spare = self.spare
        try:
            if path.is_dir() and not path.is_symlink() and index_of(path).is_file() and not spare.exists():
                path.rename(spare)
                index_of(path).rename(index_of(spare))
                return
        except OSError as exc:
            log.warning("could not keep %s for the next agent of this slot: %s", path, exc)
        shutil.rmtree(path, ignore_errors=True)
        index_of(path).unlink(missing_ok=True)

    def drop(self, path: Path) -> None:
        try:
            self.mirror.remove_worktree(path)
        except SwarmError as exc:
            log.warning("could not remove worktree %s: %s", path, exc)
            shutil.rmtree(path, ignore_errors=True)

    def clean_up(self, att: Attempt) -> None:
        if att.disk is not None:
            att.disk.stop()
        try:
            self.mirror.unkeep(att.keep_name, f"{att.keep_name}-rebased")
        except SwarmError as exc:
            log.warning("could not drop the pins of %s: %s", att.keep_name, exc)
        if not self.settings.keep_worktrees:
            for path in att.worktrees:
                self.drop(path)
        for path in att.folders:
            self.drop_folder(path)

    def home(self, vendor: str) -> Path:
        """This slot's home for the vendor's agent: its config, login link and private temp folder."""
        home = self._home(vendor)
        home.mkdir(parents=True, exist_ok=True)
        return home

    def _home(self, vendor: str) -> Path:
        return self.workdir / "homes" / f"{vendor}-{self.slot}"

    def agent_run(self, att: Attempt, prompt_file: Path, workspace: Path, on_start: Callable[[int], None]) -> AgentRun:
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
        box = self.sandbox(att.vendor, workspace, home, prompt_file)
        if box is not None:
            env["IS_SANDBOX"] = "1"  # it is one: claude's unattended mode, refused as root elsewhere, may run here
        return AgentRun(task_id=att.task_id, attempt=att.number, vendor=att.vendor, prompt_file=prompt_file,
                        worktree=workspace, log_path=att.log_dir / "agent.log", home=home, timeout=timeout,
                        env=env, cancel=att.cancel, on_start=on_start, sandbox=box, resume=att.resume)  # fmt: skip

    def sandbox(self, vendor: str, workspace: Path, home: Path, prompt_file: Path) -> Sandbox | None:
        """What the agent sees: its workspace and home (writable), the login files its home links to, its prompt,
        the mirror's objects its workspace borrows, the system and toolchains (read-only); not the swarm's workdir,
        its config, origin, other slots' homes or any other process."""
        if self.settings.unsafe_no_sandbox:
            return None
        table = self.settings.vendors[vendor]
        network, allow = reach(table)
        tools = toolchains(child_env().get("PATH", ""), toolchain_env().values())
        objects = self.mirror.path / "objects"
        box = Sandbox(rw=[workspace, home, *_login_files(home), *table.sandbox_rw],
                      ro=[*tools, objects, prompt_file, *table.sandbox_ro], network=network,
                      allow_hosts=allow)  # fmt: skip
        return box.hiding([self.workdir, config_file().resolve()])


def reach(table: VendorSettings) -> tuple[Network, list[str]]:
    """What a vendor's agent reaches: its network mode and allow-list, the adapter's defaults where unset."""
    network: Network = table.network or ("none" if table.adapter in OFFLINE_ADAPTERS else "proxy")
    allow = table.allow_hosts if table.allow_hosts is not None else list(DEFAULT_ALLOW.get(table.adapter, ()))
    return network, allow


def owner_of(dest: Path) -> Path:
    """Beside a workspace reused for a resumed session: the pid of the process using it now, for the sweep of dead
    workers' folders (whose pid is in the folder's name)."""
    return dest.parent / f".{dest.name}.swarm-owner"


def note_of(dest: Path) -> Path:
    """Beside a workspace: whose work it is (task, vendor, slot, fence, base), for the sweep to keep it (wip.py)."""
    return dest.parent / f".{dest.name}.swarm-attempt"


def owner_pid(dest: Path) -> int | None:
    try:
        return int(owner_of(dest).read_text().strip())
    except (OSError, ValueError):
        return None


def _login_files(home: Path) -> list[Path]:
    """Files outside the slot's home that its links point to: a CLI's login (shared, never copied, so a refreshed
    token reaches every slot), which the agent must read and may rewrite."""
    found = []
    for link in [*home.glob("*"), *home.glob(".*/*"), *home.glob(".*/.*")]:
        if link.is_symlink():
            target = link.resolve()
            if target.is_file() and not target.is_relative_to(home.resolve()):
                found.append(target)
    return found
