"""Capacity from live workers: each worker slot announces itself in Redis with a TTL, renewed while it lives.

A Celery worker consuming vendor queues announces one slot per pool process for each of those vendors (as
`swarm:slot:<vendor>:<node>-<index>`), renews them every ttl/3 from a thread of its main process, marks them
paused when it stops consuming a vendor's queue or shuts down, and withdraws them when it exits. A worker that is
killed, stopped or cut off stops renewing and its slots expire within one TTL. Dispatch spreads tasks over the
slots that are alive and not paused; a vendor's `concurrency` is only a cap.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis

from swarm import keys, proc
from swarm.coordination import Door, guarded
from swarm.settings import Settings

log = logging.getLogger(__name__)


def announce(r: redis.Redis, vendor: str, slot: str, ttl: float, paused: bool = False, **info: Any) -> None:
    """Say that a slot of `vendor` is alive for the next `ttl` seconds."""
    value = {"vendor": vendor, "slot": slot, "paused": paused, "at": time.time(), **info}
    r.set(keys.slot(vendor, slot), json.dumps(value), px=max(1, int(ttl * 1000)))


def withdraw(r: redis.Redis, vendor: str, slot: str) -> None:
    r.delete(keys.slot(vendor, slot))


def live(r: redis.Redis) -> list[dict[str, Any]]:
    """Every slot alive now, paused ones included."""
    names = list(r.scan_iter(match=keys.SLOT_PATTERN, count=500))
    values = r.mget(names) if names else []
    return [json.loads(v) for v in values if v is not None]


def clash(r: redis.Redis, node: str) -> dict[str, Any] | None:
    """A live slot of worker name `node` announced by another worker process, or None. Two workers with one
    name would share its slots' homes and build caches; a dead worker of this host does not count."""
    name = node.replace("@", "-")
    for slot in live(r):
        if slot.get("node") != name:
            continue
        same_host = slot.get("host") == socket.gethostname()
        if same_host and (slot.get("pid") == os.getpid() or not proc.alive(int(slot.get("pid") or 0))):
            continue
        return slot
    return None


def capacity(r: redis.Redis, settings: Settings) -> dict[str, int]:
    """Slots alive and not paused per configured vendor, at most the vendor's `concurrency` when it sets one."""
    counts = dict.fromkeys(settings.vendors, 0)
    for slot in live(r):
        if slot.get("vendor") in counts and not slot.get("paused"):
            counts[slot["vendor"]] += 1
    for name, vendor in settings.vendors.items():
        if vendor.concurrency is not None:
            counts[name] = min(counts[name], vendor.concurrency)
    return counts


class Registrar:
    """Keeps one worker's slots announced from a thread: `consumed()` names the vendors it takes tasks of now."""

    def __init__(
        self, r: redis.Redis, node: str, processes: int, ttl: float, consumed: Callable[[], Iterable[str]]
    ) -> None:
        self.r = r
        self.node = node.replace("@", "-")
        self.processes = processes
        self.ttl = ttl
        self.consumed = consumed
        self.vendors: set[str] = set()
        self.paused = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="slots", daemon=True)

    def names(self) -> list[str]:
        """Slot names match the pool processes' own slot ids (`<node>-<index>`, see tasks.slot_id)."""
        return [f"{self.node}-{i}" for i in range(self.processes)]

    def start(self) -> Registrar:
        self.renew()
        self._thread.start()
        return self

    def renew(self) -> None:
        """Announce every slot again: paused for vendors whose queue is no longer consumed or while shutting down."""
        consumed = set(self.consumed())
        info = {"host": socket.gethostname(), "pid": os.getpid(), "node": self.node}
        for vendor in self.vendors | consumed:
            for name in self.names():
                announce(self.r, vendor, name, self.ttl, self.paused or vendor not in consumed, **info)
        self.vendors |= consumed

    def pause(self) -> None:
        """Shutting down: dispatch sends nothing more here, while the running attempts finish."""
        self.paused = True
        self._safely(self.renew)

    def stop(self) -> None:
        self._stop.set()
        self._safely(self._withdraw_all)

    def _withdraw_all(self) -> None:
        for vendor in self.vendors:
            for name in self.names():
                withdraw(self.r, vendor, name)

    def _loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            self._safely(self.renew)

    def _safely(self, step: Callable[[], None]) -> None:
        try:
            step()
        except redis.RedisError as exc:  # Redis away: the slots expire, and come back with the next renewal
            log.warning("could not announce the slots of %s: %s", self.node, exc)


class SlotBoard(Door):
    """The door to the live-slot keys, for dispatch (capacity) and a worker's main process (its registrar)."""

    @guarded
    def capacity(self, settings: Settings) -> dict[str, int]:
        return capacity(self.r, settings)

    @guarded
    def live(self) -> list[dict[str, Any]]:
        return live(self.r)

    @guarded
    def clash(self, node: str) -> dict[str, Any] | None:
        return clash(self.r, node)

    def registrar(self, node: str, processes: int, ttl: float, consumed: Callable[[], Iterable[str]]) -> Registrar:
        return Registrar(self.r, node, processes, ttl, consumed)
