"""Dispatch: every ready task goes to one vendor queue, once, while that vendor has a free slot."""

from __future__ import annotations

import fnmatch
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from swarm import coalesce, ledger, state
from swarm.leases import Heartbeat
from swarm.runtime import Runtime, worker_id
from swarm.state import Snapshot

log = logging.getLogger(__name__)

Enqueue = Callable[[str, str], None]


@dataclass
class DispatchReport:
    main: str = ""
    enqueued: list[tuple[str, str]] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    skipped_busy: bool = False


def free_slots(rt: Runtime, snap: Snapshot) -> dict[str, int]:
    """Live, unpaused worker slots of each vendor (at most its `concurrency`) minus its leases and queued tasks.
    A lease whose candidate rides the merge train with its slot handed back (`free_slot_in_train`) fills none."""
    free = rt.slots.capacity(rt.settings)
    riding = rt.train.freed()
    for task_id, info in snap.leases.items():
        if info.get("vendor") in free and task_id not in riding:
            free[info["vendor"]] -= 1
    for vendor in snap.queued.values():
        if vendor in free:
            free[vendor] -= 1
    for name in free:
        if rt.ledger.blocked(name, rt.settings.vendors[name].daily_cap_usd):
            free[name] = 0
    return free


def choose_vendor(task_vendor: str | None, free: dict[str, int]) -> str | None:
    """The task's own vendor if it names one, else the one with the most free slots (ties: by name)."""
    if task_vendor is not None:
        return task_vendor if free.get(task_vendor, 0) > 0 else None
    best = max(sorted(free), key=lambda v: free[v], default=None)
    return best if best is not None and free[best] > 0 else None


def dispatch(rt: Runtime, enqueue: Enqueue) -> DispatchReport:
    """Enqueue ready tasks; one dispatcher at a time, so two never over-fill a vendor.

    The dispatch lock is a lease like a task's: it names its owner, a heartbeat renews it while dispatch runs,
    only its owner releases it, and a dispatcher that dies holding it blocks others for one lease_ttl at most.
    """
    ttl = rt.settings.lease_ttl
    lock = rt.leases.acquire_dispatch_lock(ttl, worker=worker_id())
    if lock is None:
        return DispatchReport(skipped_busy=True)
    lost = threading.Event()
    try:
        with Heartbeat(rt.leases, lock, on_lost=lambda reason: lost.set()):
            return _dispatch(rt, _unless(lost, enqueue))
    finally:
        rt.leases.release(lock)


def _unless(lost: threading.Event, enqueue: Enqueue) -> Enqueue:
    """Enqueue only while the dispatch lock is ours: once it is lost, another dispatcher may be filling slots."""

    def send(task_id: str, vendor: str) -> None:
        if lost.is_set():
            raise DispatchLockLost(f"the dispatch lock was lost before {task_id} could be queued; dispatch stops")
        enqueue(task_id, vendor)

    return send


class DispatchLockLost(RuntimeError):
    """Raised inside dispatch to stop it; never leaves this module."""


def _dispatch(rt: Runtime, enqueue: Enqueue) -> DispatchReport:
    ledger.ensure_loaded(rt)  # a wiped Redis gets budgets and failures back before anything is re-queued
    snap = state.take(rt)
    report = DispatchReport(main=snap.main, invalid=[str(e) for e in snap.backlog.invalid])
    if snap.repo_error:
        report.invalid.append(snap.repo_error)
        return report
    # A short mark keeps a task whose message was lost (a worker killed holding it unstarted) from looking
    # queued for long; a duplicate message from an early expiry is dropped by the worker that gets it.
    marker_ttl = int(max(600.0, 20 * rt.settings.dispatch_interval))
    _move_stuck(rt, snap, marker_ttl)
    _requeue_lost(rt, snap, marker_ttl)
    free = free_slots(rt, snap)
    only = rt.settings.only_tasks
    try:
        for task in snap.backlog.ready(snap.landed):
            if snap.state(task.id) != "ready" or (only and not any(fnmatch.fnmatchcase(task.id, p) for p in only)):
                continue
            if snap.backoff(task.id):
                report.waiting.append(task.id)  # its last runs in a row were not its fault: it waits a while
                continue
            _enqueue_one(rt, task.id, task.vendor, free, marker_ttl, enqueue, report)
        cleanup = coalesce.due(rt.settings, snap.repo, snap.landed)
        if cleanup and not {cleanup} & (set(snap.leases) | set(snap.queued) | set(snap.failed)):
            _enqueue_one(rt, cleanup, None, free, marker_ttl, enqueue, report)
    except DispatchLockLost as exc:
        log.warning("%s", exc)
    return report


def _enqueue_one(
    rt: Runtime, task_id: str, task_vendor: str | None, free: dict[str, int], marker_ttl: int, enqueue: Enqueue,
    report: DispatchReport,
) -> None:  # fmt: skip
    vendor = choose_vendor(task_vendor, free)
    if vendor is None:
        report.waiting.append(task_id)
        return
    if not rt.marks.mark(task_id, vendor, marker_ttl):
        return
    try:
        enqueue(task_id, vendor)
    except BaseException:
        rt.marks.clear(task_id, vendor)
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
        if not rt.ledger.blocked(vendor, rt.settings.vendors[vendor].daily_cap_usd):
            continue
        waited = marker_ttl - rt.marks.seconds_left(task_id)
        if waited <= rt.settings.cooling_move_after:
            continue
        if rt.marks.clear(task_id, vendor):
            snap.queued.pop(task_id)
            rt.events.emit(task_id, "moved", vendor=vendor, reason=f"{vendor} is blocked")


def _requeue_lost(rt: Runtime, snap: Snapshot, marker_ttl: int) -> None:
    """A task marked queued whose message is in no queue and that no attempt leases is ready again.

    A worker that took the message and then lost Redis (restarted, cut off) leaves it in the broker's unacked set
    until the visibility timeout (twice the attempt limit: hours), while the mark kept the task from being sent
    again for marker_ttl. Past a grace of a few lease TTLs (a worker takes its lease within a second of taking
    the message), the task is sent again; if the old message ever comes back, its worker finds the task leased or
    landed and drops it.
    """
    grace = max(30.0, 3 * rt.settings.lease_ttl)
    old = [t for t in snap.queued if t not in snap.leases and marker_ttl - rt.marks.seconds_left(t) > grace]
    if not old:
        return
    waiting = rt.marks.waiting(set(snap.queued.values()))
    for task_id in old:
        vendor = snap.queued[task_id]
        if task_id not in waiting and rt.marks.clear(task_id, vendor):
            snap.queued.pop(task_id)
            rt.events.emit(task_id, "requeued", vendor=vendor, reason="its message was taken and lost")


def retry(rt: Runtime, task_id: str) -> bool:
    """Give the task a fresh budget (max_attempts more attempts) so dispatch picks it up again; False if it had
    not failed."""
    previous: dict[str, Any] | None = rt.book.retry(task_id)
    ledger.write(rt.mirror, task_id, "retry", {}, rt.book)  # the fresh budget holds after a wipe too
    rt.events.emit(task_id, "retry", previous=previous)
    return previous is not None
