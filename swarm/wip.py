"""The work so far of a cut attempt, kept on origin for the next attempt of the same vendor to resume.

An attempt cut by its timeout, a lost lease, a vendor failure mid-run or a fault of the swarm leaves its files as one
commit on the main it started from, at `refs/swarm/wip/<task>` on origin (so it survives the worker's machine and a
Redis wipe). The commit's trailers say which vendor and slot made it and the CLI session to continue. The next
attempt of that vendor starts its workspace from it (rebased onto the current main), and on the same slot, where
the session's transcript lives, continues the session. A landing or a final failure deletes the ref.

The kept files are the agent's, so untrusted: they pass the same structure guard as a candidate (or are not kept),
protected paths are put back as on main, and they only ever reach main through the oracle like any candidate.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from swarm import guard
from swarm.errors import SwarmError
from swarm.repo import WIP_PREFIX, Mirror, matches

log = logging.getLogger(__name__)

SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
"""What a session id must look like to be passed to a CLI: it comes from the agent's output, so it may not be a flag
or hold anything a shell or a trailer would read otherwise."""
TRAILER = "Swarm-Wip-"


@dataclass(frozen=True)
class Wip:
    """A kept piece of work: its commit (whose parent is the main it started from) and how to continue it."""

    task: str
    commit: str
    base: str
    vendor: str
    slot: str
    fence: int
    session: str | None = None
    """The CLI's session id, valid only where its transcript is: the slot's home."""
    home: str = ""
    """The slot's home that holds the session's transcript."""
    workspace: str = ""
    """The folder the session worked in: the CLIs key their transcripts on it."""

    def record(self) -> dict[str, object]:
        """The attempt record's `wip` field."""
        fields = {"commit": self.commit, "base": self.base, "vendor": self.vendor, "slot": self.slot,
                  "session": self.session}  # fmt: skip
        return {k: v for k, v in fields.items() if v}

    def message(self) -> str:
        lines = [f"Work so far of {self.task}, cut before it could land", ""]
        fields = {"Vendor": self.vendor, "Slot": self.slot, "Fence": str(self.fence), "Session": self.session or "",
                  "Home": self.home, "Workspace": self.workspace}  # fmt: skip
        lines += [f"{TRAILER}{name}: {value}" for name, value in fields.items() if value]
        return "\n".join(lines) + "\n"


def ref(task_id: str) -> str:
    return f"{WIP_PREFIX}{task_id}"


def session_ok(session: str | None) -> str | None:
    """The session id if it is safe to pass to a CLI, else None."""
    return session if session and SESSION_ID.match(session) else None


def find(mirror: Mirror, task_id: str) -> Wip | None:
    """The task's kept work as of the mirror's last fetch, or None."""
    commit = mirror.local_rev(ref(task_id))
    if commit is None:
        return None
    parents = mirror.parents(commit)
    if len(parents) != 1:
        log.warning("ignoring %s: %s is not a commit on one base", ref(task_id), commit[:12])
        return None
    fields = _trailers(mirror.message(commit))
    try:
        fence = int(fields.get("Fence", "0"))
    except ValueError:
        fence = 0
    return Wip(task_id, commit, parents[0], fields.get("Vendor", ""), fields.get("Slot", ""), fence,
               session_ok(fields.get("Session")), fields.get("Home", ""), fields.get("Workspace", ""))  # fmt: skip


def _trailers(message: str) -> dict[str, str]:
    found = {}
    for line in message.splitlines():
        if line.startswith(TRAILER) and ": " in line:
            name, _, value = line.removeprefix(TRAILER).partition(": ")
            found[name] = value.strip()
    return found


def safe_tree(mirror: Mirror, base: str, work: str, protected: list[str]) -> str | None:
    """The work fit to keep: protected paths put back as on `base`; None when its structure is refused (a link
    out of the tree, a protected folder swapped), which no restore makes safe."""
    changes = [guard.Change(*c) for c in mirror.raw_changes(base, work)]
    refused = guard.problems(changes, protected, mirror.paths(base, protected), mirror.blob)
    if refused:
        log.warning("not keeping the work so far: %s", "; ".join(refused))
        return None
    touched = [c.path for c in changes if matches(c.path, protected)]
    return mirror.restore(work, base, touched) if touched else work


def keep(mirror: Mirror, wip: Wip, tree_of: str, tries: int = 3) -> Wip | None:
    """Store `tree_of`'s files as the task's kept work on origin, unless a later attempt (higher fence) kept its own
    first; the kept Wip, or None."""
    commit = mirror.commit_tree(mirror.tree(tree_of), wip.base, wip.message(), author=f"{wip.vendor}-agent")
    for _ in range(tries):
        current = find(mirror, wip.task)  # after a lost compare-and-swap: origin's newer value
        if current is not None and current.fence > wip.fence:
            log.info("not keeping the work of %s fence %d: fence %d kept its own", wip.task, wip.fence, current.fence)
            return None
        if mirror.set_ref(ref(wip.task), commit, current.commit if current else None):
            log.info("kept the work so far of %s as %s", wip.task, commit[:12])
            return replace(wip, commit=commit)
    log.warning("not keeping the work of %s: its wip ref kept moving", wip.task)
    return None


def drop(mirror: Mirror, task_id: str, fence: int | None = None) -> None:
    """Delete the task's kept work on origin (landed, failed for good, or used up), unless a later attempt than
    `fence` kept it; a failure only leaves it stale."""
    try:
        current = find(mirror, task_id)  # callers fetched first: what the mirror lacks, origin lacks
        if current is None or (fence is not None and current.fence > fence):
            return
        if mirror.set_ref(ref(task_id), None, current.commit):
            log.info("dropped the kept work of %s", task_id)
    except SwarmError as exc:
        log.warning("could not delete %s on origin: %s", ref(task_id), exc)


@dataclass(frozen=True)
class Start:
    """Where an attempt's workspace starts: `files` checked out at `head`, in `folder` (None: a new one), continuing
    `session`; `record` goes on the attempt record as `resumed`."""

    files: str
    head: str
    folder: Path | None = None
    session: str | None = None
    record: dict[str, str] | None = None


def plan(mirror: Mirror, kept: Wip | None, vendor: str, main: str, slot: str, home: Path, folders: Path,
         has_session: Callable[[str], bool]) -> Start:  # fmt: skip
    """The workspace of the vendor's next attempt: at main, or with the kept work rebased onto main; in the
    session's own folder, continuing it, when the session's transcript is in this slot's home."""
    if kept is None or kept.vendor != vendor:
        return Start(main, main)
    files, why = _rebased(mirror, kept, main)
    if files is None:
        return Start(main, main, record={"from": kept.commit, "fresh": why})
    here = kept.session and kept.slot == slot and kept.home == str(home) and has_session(kept.session)
    folder = _folder(kept, folders) if here else None
    session = kept.session if folder is not None else None
    record = {"from": kept.commit, **({"session": session} if session else {})}
    return Start(files, main, folder, session, record)


def _rebased(mirror: Mirror, wip: Wip, main: str) -> tuple[str | None, str]:
    """The kept work rebased onto `main` (None when it cannot be) and why not."""
    if wip.base == main:
        return wip.commit, ""
    if not mirror.is_ancestor(wip.base, main):
        return None, f"its base {wip.base[:12]} is no longer on main"
    rebased = mirror.rebase(wip.commit, wip.base, main)
    if rebased.commit is None:
        return None, f"it conflicts with main in {', '.join(rebased.conflicts) or 'some files'}"
    return rebased.commit, ""


def _folder(wip: Wip, folders: Path) -> Path | None:
    """The folder the session worked in, when it can be made again there (the CLIs find a transcript by it)."""
    path = Path(wip.workspace) if wip.workspace else None
    if path is None or path.parent != folders or path.exists():
        return None
    return path


def salvage(mirror: Mirror, folder: Path, note: str, protected: Callable[[str], list[str]]) -> Wip | None:
    """Keep the work a dead worker process left in its workspace, from the note the swarm wrote beside it (no
    session: the run's end, which names it, never came)."""
    meta = json.loads(note)
    mirror.fetch()
    task, base, vendor = str(meta["task"]), str(meta["base"]), str(meta["vendor"])
    if task in mirror.landed():
        return None
    work = mirror.collect(folder, base, f"work so far of {task}", author=f"{vendor}-agent")
    safe = safe_tree(mirror, base, work, protected(base)) if work else None
    if safe is None:
        return None
    return keep(mirror, Wip(task, "", base, vendor, str(meta["slot"]), int(meta["fence"]), None,
                            str(meta.get("home", "")), str(folder)), safe)  # fmt: skip
