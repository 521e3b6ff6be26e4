"""What a worker's main process does as it starts and stops: announce its slots, warn about shared build folders."""

from __future__ import annotations

import logging
import sys
from typing import Any

from celery.signals import celeryd_init, worker_ready, worker_shutdown, worker_shutting_down

from swarm import buildcache, state
from swarm.errors import SwarmError
from swarm.riders import Riders, Sizer
from swarm.slots import Registrar

log = logging.getLogger(__name__)

_registrar: list[Registrar] = []
_sizers: list[Sizer] = []


@celeryd_init.connect
def _refuse_a_duplicate_name(sender: str, **kwargs: Any) -> None:
    """A second worker with a live worker's -n name would share its slots' homes and build caches: refuse it."""
    from swarm.tasks import runtime

    board = runtime().slots
    clash = board.clash(sender) or board.claim_name(sender)  # the claim: a twin starting at this very moment
    if clash is not None:
        print(f"error: a worker named {sender} is already running (pid {clash.get('pid')} on {clash.get('host')}): "
              "give this one another name with -n NAME@%h", file=sys.stderr)  # fmt: skip
        raise SystemExit(2)


@worker_ready.connect
def _announce_slots(sender: Any, **kwargs: Any) -> None:
    """One slot per pool process for each vendor queue this worker consumes, kept alive while the worker lives."""
    from swarm.tasks import runtime  # the app imports this module; tasks needs the app

    try:
        rt = runtime()
        processes = int(getattr(sender.controller, "concurrency", 1) or 1)
        vendors = set(rt.settings.vendors)

        def consumed() -> set[str]:
            queues = getattr(sender.task_consumer, "queues", None) or []
            return {q.name for q in queues} & vendors

        _registrar.append(rt.slots.registrar(sender.hostname, processes, rt.settings.lease_ttl, consumed).start())
        _warn_shared_build_folders()
    except Exception as exc:  # noqa: BLE001 - the worker runs on; dispatch just does not count its slots
        log.error("could not announce this worker's slots: %s", exc)
    _size_for_riders(sender)


def _size_for_riders(consumer: Any) -> None:
    """With `free_slot_in_train`, grow the pool while candidates ride the train (swarm/riders.py). Only a pool
    that can grow, on Celery's event loop (prefork), does; elsewhere an attempt holds its slot until it ends."""
    from swarm.tasks import runtime

    try:
        rt = runtime()
        hub = getattr(consumer.controller, "hub", None)
        if not (rt.settings.free_slot_in_train and rt.settings.train_window) or hub is None:
            return
        if not hasattr(consumer.pool, "grow") or getattr(consumer.controller, "autoscaler", None):
            log.info("this pool cannot grow (or --autoscale sizes it): an attempt holds its slot until it lands")
            return
        _sizers.append(Sizer(Riders.of(rt.workdir, consumer.hostname), consumer).start(hub))
    except Exception as exc:  # noqa: BLE001 - the worker runs on, one process per attempt
        log.error("could not size the pool for candidates riding the train: %s", exc)


def _warn_shared_build_folders() -> None:
    from swarm.tasks import runtime

    rt = runtime()
    try:
        main = rt.mirror.fetch()
        buildcache.warn(state.read_repo_settings(rt, main), f"{rt.settings.branch}:.swarm.toml")
    except SwarmError as exc:
        log.warning("could not read the repository's settings to check its build folders: %s", exc)


@worker_shutting_down.connect
def _pause_slots(**kwargs: Any) -> None:
    for sizer in _sizers:
        sizer.stop()
    for registrar in _registrar:
        registrar.pause()


@worker_shutdown.connect
def _withdraw_slots(**kwargs: Any) -> None:
    while _registrar:
        _registrar.pop().stop()
