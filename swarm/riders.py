"""No idle agent slots: a pool process whose candidate rides the merge train gives its worker slot back.

Once a candidate has joined the train (setting `free_slot_in_train`), its pool process writes its pid in the
worker's riders folder and dispatches: dispatch no longer counts that lease against its vendor's slots
(`Train.freed`), so it sends the next task at once. The worker's main process keeps its pool at its slots plus
the riders alive (`Sizer`, on Celery's event loop, where Celery's own autoscaler and `pool_grow` act): it grows
the pool and the prefetch count by one per rider, so another process takes that task while the rider's full
oracle runs, and shrinks it by one idle process at a time once rides end. The rider stays an ordinary running
Celery task (its lease, heartbeat, Flower view and warm shutdown unchanged); the slots announced, and so the
agents at once, stay what the worker was started with. A rider that dies leaves the file of a dead pid: it no
longer counts, and the next step removes it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import psutil
from celery.worker import state as worker_state

from swarm import proc

log = logging.getLogger(__name__)

STEP_SECONDS = 0.25
GROWS = "grows"
"""The file in the riders folder holding the pid of the main process whose sizer runs (pool processes check it)."""


class Riders:
    """The riders folder of one worker (`<workdir>/riders/<node>`): one `rider-<pid>` file per riding process."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def of(cls, workdir: Path, node: str) -> Riders:
        return cls(workdir / "riders" / node.replace("@", "-"))

    # --- in a pool process ---

    def growing(self) -> bool:
        """Whether this pool process's worker grows its pool for riders (else nothing could take the slot)."""
        try:
            return int((self.folder / GROWS).read_text()) == os.getppid()
        except (OSError, ValueError):
            return False

    def start(self, pid: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"rider-{pid}").touch()

    def end(self, pid: int) -> None:
        (self.folder / f"rider-{pid}").unlink(missing_ok=True)

    # --- in the worker's main process ---

    def count(self) -> int:
        """Riders alive among this process's pool processes; the files of dead ones are removed."""
        alive = 0
        for path in self.folder.glob("rider-*"):
            pid = int(path.name.removeprefix("rider-")) if path.name.removeprefix("rider-").isdigit() else 0
            if pid and proc.alive(pid) and _parent(pid) == os.getpid():
                alive += 1
            elif not pid or not proc.alive(pid):
                path.unlink(missing_ok=True)
        return alive


def _parent(pid: int) -> int:
    try:
        return int(psutil.Process(pid).ppid())
    except psutil.Error:
        return 0


class Sizer:
    """Keeps a worker's pool at its slots plus its riders; runs on the worker's event loop (see module doc)."""

    def __init__(self, riders: Riders, consumer: Any) -> None:
        self.riders = riders
        self.consumer = consumer
        self.extra = 0
        self.stopped = False

    def start(self, hub: Any) -> Sizer:
        self.riders.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.riders.folder.glob("rider-*"):  # of an earlier run of this worker
            stale.unlink(missing_ok=True)
        (self.riders.folder / GROWS).write_text(f"{os.getpid()}\n")
        hub.call_repeatedly(STEP_SECONDS, self.step)
        return self

    def stop(self) -> None:
        """Shutting down: no more growing; pool processes no longer hand their slot back."""
        self.stopped = True
        (self.riders.folder / GROWS).unlink(missing_ok=True)

    def step(self) -> None:
        if self.stopped:
            return
        try:
            want = self.riders.count()
            pool = self.consumer.pool
            inner = getattr(pool, "_pool", None)
            maintain = getattr(inner, "maintain_pool", None)
            if inner is not None and len(inner._pool) != inner._processes:
                # A process shrunk away and not reaped yet would look idle again and be "shrunk" twice: reap first.
                if maintain is not None:
                    maintain()
                return
            if want > self.extra:
                grow = want - self.extra
                pool.grow(grow)
                self.consumer._update_prefetch_count(grow)
                self.extra += grow
                if maintain is not None:
                    maintain()  # start the new process now, not at the pool's next upkeep (seconds away)
                log.info("pool grown by %d for candidates riding the merge train (%d extra)", grow, self.extra)
            elif want < self.extra and len(worker_state.reserved_requests) == len(worker_state.active_requests):
                # Only when every task received has been taken up by its process: a message just handed to an
                # idle process (not yet acknowledged) would otherwise make that process look idle, and it would go.
                pool.shrink(1)  # an idle process only; ValueError while every one is busy: the next step tries
                self.consumer._update_prefetch_count(-1)
                self.extra -= 1
                log.info("pool shrunk by 1 as a ride ended (%d extra)", self.extra)
        except ValueError:
            return
        except Exception as exc:  # noqa: BLE001 - the worker runs on at its size; the next step tries again
            log.warning("could not resize the pool for riders: %s", exc)
