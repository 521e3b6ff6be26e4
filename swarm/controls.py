"""Steering a running swarm: add a task, cancel an attempt, pause and resume vendors, follow logs and events.

Every control goes through the swarm's own doors: a task file lands on main by compare-and-swap push like any
landing (a commit that only adds a backlog file, which `swarm audit` accepts); a cancel takes the attempt's lease
away, so its heartbeat stops the agent at once, and marks the task held so no new attempt starts.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarm import state
from swarm.backlog import parse_task
from swarm.errors import SwarmError, TaskFileError
from swarm.runtime import Runtime

log = logging.getLogger(__name__)

CANCEL_TTL = 3600
"""Seconds a cancel marker lives: long enough for the attempt to notice and end."""
ADD_TRIES = 10
TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class UnknownTask(SwarmError):
    """A control named a task id that the backlog on main does not have."""


# --- add ---


@dataclass
class NewTask:
    task_id: str
    title: str
    body: str = ""
    depends_on: tuple[str, ...] = ()
    vendor: str | None = None
    priority: int = 0

    def text(self) -> str:
        lines = ["---", f"title: {json.dumps(self.title)}", f"priority: {self.priority}"]
        if self.depends_on:
            lines.append(f"depends_on: [{', '.join(self.depends_on)}]")
        if self.vendor:
            lines.append(f"vendor: {self.vendor}")
        lines += ["---", self.body.strip() or self.title, ""]
        return "\n".join(lines)


def add(rt: Runtime, new: NewTask, author: str = "swarm add") -> str:
    """Land the task file on main (compare-and-swap, retried if main moves); returns the commit."""
    if not TASK_ID.match(new.task_id):
        raise SwarmError(
            f"task id {new.task_id!r}: use letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    for _ in range(ADD_TRIES):
        snap = state.take(rt)
        _check_new(rt, snap, new)
        folder = snap.repo.backlog if snap.repo else "tasks"
        path = f"{folder}/{new.task_id}.md"
        message = f"Add task {new.task_id}: {new.title}\n\nSwarm-Human: added with `swarm add`\n"
        commit = rt.mirror.commit_file(snap.main, path, new.text(), message, author)
        if rt.mirror.push_main(snap.main, commit):
            rt.events.emit(new.task_id, "added", commit=commit, path=path)
            return commit
        log.info("main moved while adding %s; trying again on the new main", new.task_id)
    raise SwarmError(f"could not add {new.task_id}: main kept moving ({ADD_TRIES} tries); try again")


def _check_new(rt: Runtime, snap: state.Snapshot, new: NewTask) -> None:
    known = set(snap.backlog.tasks) | set(snap.landed)
    if new.task_id in known or any(e.path.endswith(f"/{new.task_id}.md") for e in snap.backlog.invalid):
        raise SwarmError(f"task {new.task_id} already exists in the backlog on main")
    missing = [d for d in new.depends_on if d not in known]
    if missing:
        raise UnknownTask(f"--depends-on: no task {', '.join(missing)} in the backlog on main")
    if new.vendor and new.vendor not in rt.settings.vendors:
        raise SwarmError(
            f"--vendor {new.vendor}: not a vendor of this swarm ({', '.join(sorted(rt.settings.vendors))})"
        )
    try:  # the file must be one the backlog accepts, or it would land only to be reported invalid
        parse_task(f"{new.task_id}.md", new.text().encode())
    except TaskFileError as exc:
        raise SwarmError(f"the task file would be invalid: {exc.reason}") from None


# --- cancel ---


def cancel(rt: Runtime, task_id: str, wait: float = 60.0) -> dict[str, Any]:
    """Stop the task's running attempt (not counted against its budget) and hold the task until `swarm retry`."""
    snap = require_task(rt, task_id)
    if task_id in snap.landed:
        raise SwarmError(f"task {task_id} has already landed; there is nothing to cancel")
    held = {
        "reason": "cancelled",
        "detail": f"cancelled with `swarm cancel` at {time.strftime('%H:%M:%S')}; `swarm retry {task_id}` runs it",
        "attempts": snap.attempts.get(task_id, 0),
    }
    rt.book.hold(task_id, held)  # held: dispatch and workers start no attempt of it
    running = task_id in snap.leases
    stopped = False
    if running:  # the heartbeat cannot renew a lease that is gone: it stops the agent within ttl/3
        rt.book.mark_cancelled(task_id, CANCEL_TTL)
        rt.leases.take_away(task_id)
        stopped = _wait_ended(rt, task_id, wait)
    rt.events.emit(task_id, "cancelled", running=running)
    return {"task": task_id, "was_running": running, "stopped": stopped}


def _wait_ended(rt: Runtime, task_id: str, wait: float) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if rt.book.entry(task_id) is None:
            return True
        time.sleep(0.2)
    return False


# --- pause and resume ---


def pause(rt: Runtime, vendor: str | None) -> list[str]:
    """Start no new attempt on these vendors (all when None); running attempts finish."""
    vendors = _vendors(rt, vendor)
    for name in vendors:
        rt.ledger.pause(name)
        rt.events.emit("*", "paused", vendor=name)
    return vendors


def resume(rt: Runtime, vendor: str | None) -> list[str]:
    vendors = _vendors(rt, vendor)
    for name in vendors:
        rt.ledger.resume(name)
        rt.events.emit("*", "resumed", vendor=name)
    return vendors


def _vendors(rt: Runtime, vendor: str | None) -> list[str]:
    if vendor is None:
        return sorted(rt.settings.vendors)
    if vendor not in rt.settings.vendors:
        raise SwarmError(f"no vendor {vendor!r} in this swarm ({', '.join(sorted(rt.settings.vendors))})")
    return [vendor]


# --- logs and events ---


def log_dir(rt: Runtime, task_id: str) -> Path:
    """The log folder of the task's running attempt, or of its last one."""
    require_task(rt, task_id)
    entry = rt.book.entry(task_id)
    if entry is not None:
        return Path(entry["log_dir"])
    records = rt.book.history(task_id)
    if not records:
        raise SwarmError(f"task {task_id} has no attempt yet: no logs")
    return Path(records[-1].log_dir)


def running(rt: Runtime, task_id: str, folder: Path) -> bool:
    entry = rt.book.entry(task_id)
    return entry is not None and Path(entry.get("log_dir", "")) == folder


def follow(path: Path, alive: Any, poll: float = 0.5) -> Iterator[str]:
    """Lines of a growing file, until `alive()` is false and the file has no more."""
    pos = 0
    while True:
        still = alive()
        if path.exists():
            with path.open("r", errors="replace") as fh:
                fh.seek(pos)
                chunk = fh.read()
                pos = fh.tell()
            if chunk:
                yield chunk
                continue
        if not still:
            return
        time.sleep(poll)


def format_event(entry: dict[str, str]) -> str:
    at = time.strftime("%H:%M:%S", time.localtime(float(entry.get("ts", 0) or 0)))
    extra = " ".join(f"{k}={entry[k]}" for k in ("vendor", "attempt", "reason", "commit") if entry.get(k))
    detail = entry.get("detail", "")
    return f"{at} {entry.get('task', '?'):<20} {entry.get('state', '?'):<18} {extra} {detail[:100]}".rstrip()


def require_task(rt: Runtime, task_id: str) -> state.Snapshot:
    snap = state.take(rt)
    if task_id not in snap.backlog.tasks and task_id not in snap.landed:
        raise UnknownTask(f"no task {task_id!r} in the backlog on main (see `swarm status`)")
    return snap
