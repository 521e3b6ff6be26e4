"""Capacity from live workers: each worker slot announces itself in Redis with a TTL, renewed while it lives.

A Celery worker consuming vendor queues announces one slot per pool process for each of those vendors (as
`swarm:slot:<vendor>:<node>-<index>`), renews them every ttl/3 from a thread of its main process, marks them
paused when it stops consuming a vendor's queue or shuts down, and withdraws them when it exits. A worker that is
killed, stopped or cut off stops renewing and its slots expire within one TTL. Dispatch spreads tasks over the
slots that are alive and not paused; a vendor's `concurrency` is only a cap.
A worker's name is held the same way (claimed in one step at start-up), so two workers never share one.
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


# Set the name's holder to ARGV[1] when no one holds it or ARGV[3] does (the caller itself, or a dead holder it
# replaces); else return the holder. One step, so two workers starting at once cannot both take the name.
_CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[3] then return holder end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
NAME_TTL = 120.0
"""Seconds a worker name is held from start-up (celeryd_init) until its slots are first announced (worker_ready)."""


def holder_of(node: str) -> str:
    """This process as the holder of worker name `node`."""
    node = node.replace("@", "-")
    return json.dumps({"node": node, "host": socket.gethostname(), "pid": os.getpid()}, sort_keys=True)


def claim_name(r: redis.Redis, node: str, ttl: float) -> dict[str, Any] | None:
    """Hold worker name `node` for `ttl` seconds: None when this process holds it now, else its live holder. A
    holder that was a process of this host that has died (a crashed worker restarted) is replaced."""
    key, mine, ms = keys.worker_name(node.replace("@", "-")), holder_of(node), max(1, int(ttl * 1000))
    claim = r.register_script(_CLAIM)
    held = claim(keys=[key], args=[mine, ms, mine])
    if not held:
        return None
    holder = json.loads(held)
    dead = holder.get("host") == socket.gethostname() and not proc.alive(int(holder.get("pid") or 0))
    if dead and not claim(keys=[key], args=[mine, ms, held]):
        return None
    return dict(holder)


def release_name(r: redis.Redis, node: str) -> None:
    """Let go of worker name `node`, only if this process still holds it."""
    r.register_script(_RELEASE)(keys=[keys.worker_name(node.replace("@", "-"))], args=[holder_of(node)])


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
        """Announce every slot again: paused for vendors whose queue is no longer consumed or while shutting down.
        The worker's name is held again with them."""
        holder = claim_name(self.r, self.node, self.ttl)
        if holder is not None:
            log.error("worker name %s is now held by pid %s on %s: two workers share it", self.node,
                      holder.get("pid"), holder.get("host"))  # fmt: skip
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
        if self._thread.is_alive():  # a renewal under way would announce the slots again after their withdrawal
            self._thread.join(timeout=10)
        self._safely(self._withdraw_all)

    def _withdraw_all(self) -> None:
        for vendor in self.vendors:
            for name in self.names():
                withdraw(self.r, vendor, name)
        release_name(self.r, self.node)

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

    @guarded
    def claim_name(self, node: str, ttl: float = NAME_TTL) -> dict[str, Any] | None:
        return claim_name(self.r, node, ttl)

    def registrar(self, node: str, processes: int, ttl: float, consumed: Callable[[], Iterable[str]]) -> Registrar:
        return Registrar(self.r, node, processes, ttl, consumed)
