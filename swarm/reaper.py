"""The reaper: attempts whose lease is gone are finished as lost (their agents killed), and what this host's dead
worker processes left behind (agents, oracles, worktrees) is swept away."""

from __future__ import annotations

import logging
import re
import shutil
import socket
from pathlib import Path

from swarm import identity, ledger, proc, wip
from swarm.book import AttemptBook
from swarm.errors import SettingsError, SwarmError
from swarm.events import Events
from swarm.repo import Mirror
from swarm.runtime import Runtime
from swarm.settings import REPO_SETTINGS_FILE, Settings, parse_repo_settings
from swarm.workspace import note_of, owner_pid

log = logging.getLogger(__name__)


def reap(rt: Runtime) -> list[str]:
    """Finish the attempts whose lease is gone (worker killed, stalled or cut off); their tasks are free again.

    First Redis gets back what origin's ledger knows (after a wipe), and spooled ledger records go out."""
    ledger.ensure_loaded(rt)
    ledger.flush(rt)
    return [task_id for task_id in rt.book.in_flight() if reap_task(rt.book, rt.events, task_id)]


def reap_task(book: AttemptBook, events: Events, task_id: str) -> bool:
    """Finish the task's in-flight attempt if its lease is gone or replaced: record it as lost, kill its agent."""
    reaped = book.take_lost(task_id)
    if reaped is None:
        return False
    _kill_agent(task_id, reaped.agent)
    events.emit(task_id, "lost", reason=reaped.record.detail, worker=reaped.record.worker)
    return True


def _salvage(settings: Settings, mirror: Mirror, folder: Path) -> None:
    """A dead worker's workspace: its work so far is kept for the vendor's next attempt, as a cut attempt's is."""
    note = note_of(folder)
    if not note.is_file() or mirror.g is None:
        return

    def protected(base: str) -> list[str]:
        raw = mirror.read(base, REPO_SETTINGS_FILE)
        where = f"{base[:12]}:{REPO_SETTINGS_FILE}"
        if raw is None:
            raise SettingsError(f"{where}: missing")
        return [*parse_repo_settings(raw.decode("utf-8", errors="replace"), where).protected, REPO_SETTINGS_FILE]

    try:
        kept = wip.salvage(mirror, folder, note.read_text(), protected)
    except (SwarmError, OSError, ValueError, KeyError) as exc:
        log.warning("could not keep the work left in %s: %s", folder, exc)
        return
    if kept is not None:
        log.warning("kept the work a dead worker left in %s as %s", folder, kept.commit[:12])


def _kill_agent(task_id: str, where: str) -> None:
    host, _, pgid = where.rpartition(":")
    if host == socket.gethostname() and pgid.isdigit() and proc.kill_orphan(int(pgid), f"SWARM_TASK_ID={task_id}"):
        log.warning("killed the orphaned agent of %s (process group %s)", task_id, pgid)


def sweep_host(settings: Settings, mirror: Mirror) -> dict[str, int]:
    """Clean up after this host's dead worker processes of this swarm: agents, oracles, worktrees, workspaces."""
    host = socket.gethostname()
    killed = proc.sweep_orphans(host, identity.swarm_id(settings))
    removed = 0
    dead = re.compile(rf"-{re.escape(host)}-(\d+)-[0-9a-f]{{6}}$")
    folder = settings.workdir.resolve() / "worktrees"
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        match = dead.search(path.name)
        if match and not proc.alive(int(match.group(1))):
            mirror.remove_worktree(path)
            removed += 1
    spaces = settings.workdir.resolve() / "workspaces"  # agents' standalone repositories, the swarm's files beside
    for path in sorted(spaces.iterdir(), key=lambda p: p.name.startswith(".")) if spaces.is_dir() else []:
        name = re.sub(r"\.swarm-(index|owner|attempt)$", "", path.name.removeprefix("."))
        match = dead.search(name)
        owner = owner_pid(spaces / name)  # a resumed session's folder keeps its first worker's name
        if not match or proc.alive(owner or int(match.group(1))):
            continue
        if path.is_dir():
            _salvage(settings, mirror, path)  # its folders first: then the files beside them go
            shutil.rmtree(path)
            removed += 1
        else:
            path.unlink(missing_ok=True)
    if killed or removed:
        log.warning("swept %d process(es) and %d worktree(s) of dead workers on %s", len(killed), removed, host)
    return {"processes": len(killed), "worktrees": removed}
