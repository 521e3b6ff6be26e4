"""What every task's state is right now, read from git (backlog, landed refs) and Redis (leases, queue, failures)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from swarm import backlog as backlog_mod
from swarm import keys, quota
from swarm.backlog import Backlog
from swarm.errors import SettingsError
from swarm.runtime import Runtime
from swarm.settings import REPO_SETTINGS_FILE, RepoSettings, parse_repo_settings

log = logging.getLogger(__name__)

STATES = ("ready", "blocked", "queued", "leased", "landed", "failed", "invalid")


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
    attempts: dict[str, int] = field(default_factory=dict)
    oracle: dict[str, Any] | None = None

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
                "attempts": self.attempts.get(task.id, 0),
            }
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


def read_repo_settings(rt: Runtime, commit: str) -> RepoSettings:
    raw = rt.mirror.read(commit, REPO_SETTINGS_FILE)
    where = f"{rt.settings.origin} {rt.settings.branch}:{REPO_SETTINGS_FILE}"
    if raw is None:
        raise SettingsError(f"{where}: missing; the target repository needs it (see engine_repo_template/.swarm.toml)")
    return parse_repo_settings(raw.decode("utf-8", errors="replace"), where)


def read_backlog(rt: Runtime, commit: str, repo: RepoSettings | None) -> Backlog:
    folder = repo.backlog if repo else "tasks"
    return backlog_mod.load(rt.mirror.read_folder(commit, folder), rt.settings.vendors.keys())


def take(rt: Runtime, fetch: bool = True) -> Snapshot:
    """Read the whole state; git first (fetching origin unless told not to), then Redis."""
    main = rt.mirror.fetch() if fetch else rt.mirror.main()
    try:
        repo: RepoSettings | None = read_repo_settings(rt, main)
        repo_error = ""
    except SettingsError as exc:
        repo, repo_error = None, str(exc)
    backlog = read_backlog(rt, main, repo)
    ids = list(backlog.tasks)
    attempts = {}
    if ids:
        values = rt.redis.mget([keys.attempts(t) for t in ids])
        attempts = {t: int(v) for t, v in zip(ids, values, strict=True) if v is not None}
    cached = rt.redis.get(keys.oracle(main))
    return Snapshot(
        main=main,
        repo=repo,
        repo_error=repo_error,
        backlog=backlog,
        landed=rt.mirror.landed(),
        leases=rt.leases.holders(),
        queued=_scan_values(rt, "queued"),
        failed={k: json.loads(v) for k, v in _scan_values(rt, "failed").items()},
        attempts=attempts,
        oracle=json.loads(cached) if cached else None,
    )


def _scan_values(rt: Runtime, kind: str) -> dict[str, str]:
    prefix = f"{keys.PREFIX}:{kind}:"
    found = {}
    for key in rt.redis.scan_iter(match=prefix + "*", count=500):
        value = rt.redis.get(key)
        if value is not None:
            found[keys.text(key).removeprefix(prefix)] = keys.text(value)
    return found


def report(rt: Runtime) -> dict[str, Any]:
    """Everything `swarm status` shows: tasks with states, leases, recent landings, main's oracle counts."""
    snap = take(rt)
    rows = snap.rows()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    shown = [row for row in rows if row["state"] in ("failed", "landed") or row.get("attempts")]
    pipe = rt.redis.pipeline()  # one round trip for all tasks: the demo's live view asks every second
    for row in shown:
        pipe.lindex(keys.history(row["id"]), -1)
        pipe.hgetall(keys.spend_task(row["id"]))
    replies = pipe.execute()
    for row, last, spend in zip(shown, replies[::2], replies[1::2], strict=True):
        if last:
            record = json.loads(last)
            row["last_attempt"] = {k: record.get(k) for k in ("outcome", "reason", "detail", "log_dir")}
        if spend:
            row["spend"] = quota.numbers(spend)
    landings = [json.loads(x) for x in rt.redis.lrange(keys.LANDINGS, 0, 9)]
    caps = {name: v.daily_cap_usd for name, v in rt.settings.vendors.items()}
    vendors = quota.vendor_states(rt.redis, rt.settings.vendors, caps)
    for name, info in vendors.items():
        info["total"] = quota.spend_total(rt.redis, name)
    return {
        "main": snap.main,
        "oracle": snap.oracle,
        "counts": counts,
        "tasks": rows,
        "leases": snap.leases,
        "landings": landings,
        "vendors": vendors,
        "repo_error": snap.repo_error or None,
    }
