"""What every task's state is right now, read from git (backlog, landed refs) and Redis (leases, queue, failures)."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

from swarm import backlog as backlog_mod
from swarm.backlog import Backlog
from swarm.baselines import Baselines
from swarm.book import AttemptBook, Budget
from swarm.counts import Counts
from swarm.errors import SettingsError
from swarm.leases import Leases
from swarm.marks import QueueMarks
from swarm.repo import Mirror
from swarm.runtime import Runtime
from swarm.settings import REPO_SETTINGS_FILE, RepoSettings, Settings, parse_repo_settings

log = logging.getLogger(__name__)

STATES = ("ready", "blocked", "queued", "leased", "landed", "failed", "invalid")


class Sources(Protocol):
    """What a snapshot is read from (a Runtime, or a pipeline holding the same doors)."""

    settings: Settings
    mirror: Mirror
    leases: Leases
    book: AttemptBook
    marks: QueueMarks
    baselines: Baselines


@dataclass
class Snapshot:
    main: str
    repo: RepoSettings | None
    repo_error: str
    backlog: Backlog
    landed: dict[str, str]
    leases: dict[str, dict[str, Any]]
    queued: dict[str, str]
    failed: dict[str, dict[str, Any]]
    budgets: dict[str, Budget] = field(default_factory=dict)
    oracle: Counts | None = None

    def state(self, task_id: str) -> str:
        if task_id in self.landed:
            return "landed"
        if task_id in self.leases:
            return "leased"
        if task_id in self.queued:
            return "queued"
        if task_id in self.failed:
            return "failed"
        task = self.backlog.tasks.get(task_id)
        if task is None:
            return "invalid"
        return "ready" if all(d in self.landed for d in task.depends_on) else "blocked"

    @property
    def attempts(self) -> dict[str, int]:
        """Runs ever started per task (every attempt, counted against the budget or not)."""
        return {task_id: budget.runs for task_id, budget in self.budgets.items()}

    def backoff(self, task_id: str) -> float:
        """Seconds the task still waits before dispatch may send it again (after runs that were not its fault)."""
        return self.budgets.get(task_id, Budget()).backoff_s

    def rows(self) -> list[dict[str, Any]]:
        """Every task with its state, for `status`; invalid files last, with their reason."""
        out = []
        for task in self.backlog.ordered():
            row: dict[str, Any] = {
                "id": task.id,
                "title": task.title,
                "priority": task.priority,
                "state": self.state(task.id),
                "vendor": task.vendor,
                "depends_on": list(task.depends_on),
                "attempts": self.budgets.get(task.id, Budget()).runs,
                "budget_used": self.budgets.get(task.id, Budget()).used,
            }
            if self.backoff(task.id):
                row["backoff_s"] = round(self.backoff(task.id), 1)
            if task.id in self.leases:
                lease = self.leases[task.id]
                row["lease"] = {k: lease.get(k) for k in ("worker", "vendor", "ms_left", "fence")}
            if task.id in self.failed:
                row["failure"] = self.failed[task.id]
            if task.id in self.queued:
                row["queued_on"] = self.queued[task.id]
            if task.id in self.landed:
                row["landed_as"] = self.landed[task.id]
            out.append(row)
        for err in self.backlog.invalid:
            out.append({"id": err.path, "state": "invalid", "reason": err.reason, "path": err.path})
        return out


def read_repo_settings(src: Sources, commit: str) -> RepoSettings:
    raw = src.mirror.read(commit, REPO_SETTINGS_FILE)
    where = f"{src.settings.origin} {src.settings.branch}:{REPO_SETTINGS_FILE}"
    if raw is None:
        raise SettingsError(f"{where}: missing; the target repository needs it (see engine_repo_template/.swarm.toml)")
    return parse_repo_settings(raw.decode("utf-8", errors="replace"), where)


_BACKLOGS: OrderedDict[tuple[str, str, tuple[str, ...]], Backlog] = OrderedDict()
_BACKLOGS_KEPT = 16
_backlogs = threading.Lock()


def read_backlog(src: Sources, commit: str, repo: RepoSettings | None) -> Backlog:
    """The backlog folder at `commit`, parsed once per content: kept by the folder's tree id (a landing that
    touches no task file leaves it as it was), so each attempt and each dispatch reads no task file again."""
    folder = repo.backlog if repo else "tasks"
    tree, files = src.mirror.folder(commit, folder)
    key = (tree, folder.strip("/"), tuple(sorted(src.settings.vendors)))
    with _backlogs:
        kept = _BACKLOGS.get(key) if tree else None
        if kept is not None:
            _BACKLOGS.move_to_end(key)
    if kept is None:
        kept = backlog_mod.load({path: src.mirror.object_data(sha)[1] for path, sha in files.items()}, key[2])
        with _backlogs:
            _BACKLOGS[key] = kept
            while len(_BACKLOGS) > _BACKLOGS_KEPT:
                _BACKLOGS.popitem(last=False)
    return Backlog(dict(kept.tasks), list(kept.invalid))  # callers may change theirs; tasks are frozen


def take(src: Sources, fetch: bool = True) -> Snapshot:
    """Read the whole state: Redis first, then git (fetching origin unless told not to).

    In this order a task that lands meanwhile is never taken for ready: a landing pushes its landed ref before it
    releases its lease, so a lease read as free was released after a push that the later git read sees.
    """
    leases = src.leases.holders()
    queued = src.marks.all()
    failed = src.book.failures()
    main = src.mirror.fetch() if fetch else src.mirror.main()
    try:
        repo: RepoSettings | None = read_repo_settings(src, main)
        repo_error = ""
    except SettingsError as exc:
        repo, repo_error = None, str(exc)
    backlog = read_backlog(src, main, repo)
    return Snapshot(
        main=main,
        repo=repo,
        repo_error=repo_error,
        backlog=backlog,
        landed=src.mirror.landed(),
        leases=leases,
        queued=queued,
        failed=failed,
        budgets=src.book.budgets(list(backlog.tasks)),
        oracle=src.baselines.get(main),
    )


def report(rt: Runtime) -> dict[str, Any]:
    """Everything `swarm status` shows: tasks with states, leases, recent landings, main's oracle counts."""
    snap = take(rt)
    rows = snap.rows()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    shown = [row["id"] for row in rows if row["state"] in ("failed", "landed") or row.get("attempts")]
    last = rt.book.last_records(shown)  # one round trip for all tasks: the demo's live view asks every second
    spends = rt.ledger.task_spends(shown)
    for row in rows:
        if row["id"] in last:
            record = last[row["id"]]
            row["last_attempt"] = {"outcome": record.outcome, "reason": record.reason, "detail": record.detail,
                                   "log_dir": record.log_dir}  # fmt: skip
        if row["id"] in spends:
            row["spend"] = spends[row["id"]]
    caps = {name: v.daily_cap_usd for name, v in rt.settings.vendors.items()}
    vendors = rt.ledger.vendor_states(rt.settings.vendors, caps)
    for name, info in vendors.items():
        info["total"] = rt.ledger.spend_total(name)
    return {
        "main": snap.main,
        "oracle": snap.oracle.to_dict() if snap.oracle else None,
        "counts": counts,
        "tasks": rows,
        "leases": snap.leases,
        "landings": rt.book.recent_landings(10),
        "vendors": vendors,
        "repo_error": snap.repo_error or None,
    }
