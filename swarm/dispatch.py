"""Dispatch: every ready task goes to one vendor queue, once, while that vendor has a free slot."""

from __future__ import annotations

import fnmatch
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from swarm import coalesce, keys, ledger, quota, slots, state
from swarm.runtime import Runtime
from swarm.state import Snapshot

log = logging.getLogger(__name__)

Enqueue = Callable[[str, str], None]
DISPATCH_LOCK_TTL_MS = 30_000


@dataclass
class DispatchReport:
    main: str = ""
    enqueued: list[tuple[str, str]] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    skipped_busy: bool = False


def free_slots(rt: Runtime, snap: Snapshot) -> dict[str, int]:
    """Live, unpaused worker slots of each vendor (at most its `concurrency`) minus its leases and queued tasks."""
    free = slots.capacity(rt.redis, rt.settings)
    for info in snap.leases.values():
        if info.get("vendor") in free:
            free[info["vendor"]] -= 1
    for vendor in snap.queued.values():
        if vendor in free:
            free[vendor] -= 1
    for name in free:
        if quota.blocked(rt.redis, name, rt.settings.vendors[name].daily_cap_usd):
            free[name] = 0
    return free


def choose_vendor(task_vendor: str | None, free: dict[str, int]) -> str | None:
    """The task's own vendor if it names one, else the one with the most free slots (ties: by name)."""
    if task_vendor is not None:
        return task_vendor if free.get(task_vendor, 0) > 0 else None
    best = max(sorted(free), key=lambda v: free[v], default=None)
    return best if best is not None and free[best] > 0 else None


def dispatch(rt: Runtime, enqueue: Enqueue) -> DispatchReport:
    """Enqueue ready tasks; one dispatcher at a time, so two never over-fill a vendor."""
    token = secrets.token_hex(8)
    if not rt.redis.set(keys.DISPATCH_LOCK, token, nx=True, px=DISPATCH_LOCK_TTL_MS):
        return DispatchReport(skipped_busy=True)
    try:
        return _dispatch(rt, enqueue)
    finally:
        rt.leases.delete_if(keys.DISPATCH_LOCK, token)


def _dispatch(rt: Runtime, enqueue: Enqueue) -> DispatchReport:
    ledger.ensure_loaded(rt)  # a wiped Redis gets budgets and failures back before anything is re-queued
    snap = state.take(rt)
    report = DispatchReport(main=snap.main, invalid=[str(e) for e in snap.backlog.invalid])
    if snap.repo_error:
        report.invalid.append(snap.repo_error)
        return report
    # The marker only spares a second message while the first waits; if it expires early, the duplicate message
    # is dropped by whichever worker gets it (lease, landed and failed checks), so a short TTL is safe and keeps a
    # task whose message was lost (a worker killed holding it unstarted) from looking queued for long.
    marker_ttl = int(max(600.0, 20 * rt.settings.dispatch_interval))
    _move_stuck(rt, snap, marker_ttl)
    free = free_slots(rt, snap)
    only = rt.settings.only_tasks
    for task in snap.backlog.ready(snap.landed):
        if snap.state(task.id) != "ready" or (only and not any(fnmatch.fnmatchcase(task.id, p) for p in only)):
            continue
        _enqueue_one(rt, task.id, task.vendor, free, marker_ttl, enqueue, report)
    cleanup = coalesce.due(rt.settings, snap.repo, snap.landed)
    if cleanup and not {cleanup} & (set(snap.leases) | set(snap.queued) | set(snap.failed)):
        _enqueue_one(rt, cleanup, None, free, marker_ttl, enqueue, report)
    return report


def _enqueue_one(
    rt: Runtime, task_id: str, task_vendor: str | None, free: dict[str, int], marker_ttl: int, enqueue: Enqueue,
    report: DispatchReport,
) -> None:  # fmt: skip
    vendor = choose_vendor(task_vendor, free)
    if vendor is None:
        report.waiting.append(task_id)
        return
    if not rt.redis.set(keys.queued(task_id), vendor, nx=True, ex=marker_ttl):
        return
    try:
        enqueue(task_id, vendor)
    except Exception:
        rt.redis.delete(keys.queued(task_id))
        raise
    free[vendor] -= 1
    report.enqueued.append((task_id, vendor))
    rt.events.emit(task_id, "queued", vendor=vendor)


def _move_stuck(rt: Runtime, snap: Snapshot, marker_ttl: int) -> None:
    """A task naming no vendor, queued too long on a blocked vendor, becomes ready again for another vendor.

    The message left on the old queue is harmless: that vendor's worker finds the task leased, landed or its own
    vendor blocked, and drops it.
    """
    for task_id, vendor in list(snap.queued.items()):
        task = snap.backlog.tasks.get(task_id)
        if task is None or task.vendor is not None or vendor not in rt.settings.vendors:
            continue
        if not quota.blocked(rt.redis, vendor, rt.settings.vendors[vendor].daily_cap_usd):
            continue
        waited = marker_ttl - rt.redis.ttl(keys.queued(task_id))
        if waited <= rt.settings.cooling_move_after:
            continue
        if rt.leases.delete_if(keys.queued(task_id), vendor):
            snap.queued.pop(task_id)
            rt.events.emit(task_id, "moved", vendor=vendor, reason=f"{vendor} is blocked")


def retry(rt: Runtime, task_id: str) -> bool:
    """Forget a task's failure and attempt count so dispatch picks it up again; False if it had not failed."""
    pipe = rt.redis.pipeline()
    pipe.get(keys.failed(task_id))
    pipe.delete(keys.failed(task_id), keys.attempts(task_id))
    previous, _ = pipe.execute()
    ledger.write(rt.mirror, task_id, "retry", {}, rt.redis)  # the fresh budget holds after a wipe too
    rt.events.emit(task_id, "retry", previous=json.loads(previous) if previous else None)
    return previous is not None
