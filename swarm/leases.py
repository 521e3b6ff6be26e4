"""Leases with a fence, renewed by a heartbeat, released only by their owner; the merge and dispatch locks are
leases too. `Leases` is the door to their keys; `Heartbeat` is where leases are renewed."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from swarm import keys
from swarm.coordination import Door, guarded, with_options
from swarm.errors import CoordinationError

log = logging.getLogger(__name__)

# KEYS: lease, fence. ARGV: value, ttl_ms. Returns the new fence, or nil when the lease is held.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return false
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS: fence. ARGV: fence. A fence only ever rises.
_RAISE_FENCE = """
if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[1]) or '0') then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass
class Lease:
    """A held lease: the key, the exact value written (owner info and a random token), and its fence number."""

    key: str
    value: str
    fence: int
    ttl: float
    acquired_at: float = field(default_factory=time.monotonic)

    @property
    def token(self) -> str:
        return str(json.loads(self.value)["token"])


class Leases(Door):
    """Lease operations on one Redis; every compare-and-set step is a Lua script."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(client)
        self._acquire = self.r.register_script(_ACQUIRE)
        self._renew = self.r.register_script(_RENEW)
        self._release = self.r.register_script(_RELEASE)
        self._raise_fence = self.r.register_script(_RAISE_FENCE)

    @property
    def timeout(self) -> float:
        """Seconds after which a call to an unreachable Redis fails."""
        return float(self.r.connection_pool.connection_kwargs.get("socket_timeout") or 5.0)

    def renewer(self, ttl: float) -> Leases:
        """Leases on a client whose calls time out well within `ttl`: a renewal that hangs must fail early enough
        to be tried again before the lease's last confirmed expiry."""
        return Leases(with_options(self.r, socket_timeout=heartbeat_timeout(ttl)))

    def close(self) -> None:
        self.r.close()

    @guarded
    def acquire(self, key: str, fence_key: str, ttl: float, **owner: Any) -> Lease | None:
        """SET NX PX plus INCR of the fence, atomically; None when someone else holds it."""
        value = json.dumps({"token": secrets.token_hex(16), "since": time.time(), **owner}, sort_keys=True)
        sent = time.monotonic()  # Redis starts the ttl after this moment: sent + ttl is a safe lower bound
        fence = self._acquire(keys=[key, fence_key], args=[value, int(ttl * 1000)])
        if not fence:
            return None
        return Lease(key, value, int(fence), ttl, acquired_at=sent)

    def acquire_task(self, task_id: str, ttl: float, **owner: Any) -> Lease | None:
        return self.acquire(keys.lease(task_id), keys.fence(task_id), ttl, task=task_id, **owner)

    def acquire_merge_lock(self, ttl: float, **owner: Any) -> Lease | None:
        """The merge lock serialises landings (it saves wasted rebases and test runs; the push's CAS is the guard)."""
        return self.acquire(keys.MERGE_LOCK, keys.MERGE_FENCE, ttl, **owner)

    def acquire_dispatch_lock(self, ttl: float, **owner: Any) -> Lease | None:
        """The dispatch lock: one dispatcher at a time, so two never over-fill a vendor."""
        return self.acquire(keys.DISPATCH_LOCK, keys.DISPATCH_FENCE, ttl, **owner)

    def acquire_ledger_lock(self, ttl: float, **owner: Any) -> Lease | None:
        """The lock of the one process rebuilding Redis from origin's ledger (see ledger.py)."""
        return self.acquire(keys.LEDGER_LOADING, keys.LEDGER_LOADING_FENCE, ttl, **owner)

    @guarded
    def ledger_locked(self) -> bool:
        return bool(self.r.exists(keys.LEDGER_LOADING))

    @guarded
    def take_away(self, task_id: str) -> bool:
        """Delete the task's lease whoever holds it (`swarm cancel`): its heartbeat then stops the attempt."""
        return bool(self.r.delete(keys.lease(task_id)))

    @guarded
    def raise_fence(self, task_id: str, fence: int) -> None:
        """Make the task's next lease's fence higher than `fence` (used before a wipe); never lowers it."""
        self._raise_fence(keys=[keys.fence(task_id)], args=[fence])

    @guarded
    def renew(self, lease: Lease) -> bool:
        """Extend the lease by its ttl if we still own it."""
        return bool(self._renew(keys=[lease.key], args=[lease.value, int(lease.ttl * 1000)]))

    @guarded
    def release(self, lease: Lease) -> bool:
        """Delete the lease only if we still own it; never someone else's."""
        return bool(self._release(keys=[lease.key], args=[lease.value]))

    @guarded
    def current(self, task_id: str, fence: int) -> bool:
        """Whether the attempt with this fence still holds the task's lease (a later lease has a higher fence)."""
        pipe = self.r.pipeline()
        pipe.exists(keys.lease(task_id))
        pipe.get(keys.fence(task_id))
        held, latest = pipe.execute()
        return bool(held) and latest is not None and int(latest) == fence

    @guarded
    def held(self, lease: Lease) -> bool:
        """Whether this exact lease is still the one in Redis."""
        return bool(self.r.get(lease.key) == lease.value)

    @guarded
    def holders(self) -> dict[str, dict[str, Any]]:
        """Every task lease held now: owner info and milliseconds left."""
        found: dict[str, dict[str, Any]] = {}
        for name in self.r.scan_iter(match=keys.LEASE_PATTERN, count=500):
            pipe = self.r.pipeline()
            pipe.get(name)
            pipe.pttl(name)
            value, pttl = pipe.execute()
            if value is None or pttl is None or pttl < 0:
                continue
            info = json.loads(value)
            info["ms_left"] = int(pttl)
            found[keys.task_of_lease(name)] = info
        return found


def heartbeat_timeout(ttl: float) -> float:
    """The renewal call's timeout: a tenth of the ttl (0.1 s to 2 s), so several tries fit before expiry."""
    return max(0.1, min(2.0, ttl / 10))


class Heartbeat:
    """Renews a lease every ttl/3 in a thread; calls on_lost once when the lease is gone or cannot be confirmed.

    A renewal that errors (Redis paused, a network blip) is not a loss: it is tried again soon, on a client with a
    short timeout, until the lease's last confirmed expiry comes too close to try once more. Only then is the
    lease taken as lost: until that moment no other worker can hold it.
    """

    def __init__(self, leases: Leases, lease: Lease, on_lost: Callable[[str], None]) -> None:
        self.leases = leases.renewer(lease.ttl)
        self.lease = lease
        self.on_lost = on_lost
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat:{lease.key}", daemon=True)
        self._confirmed_until = lease.acquired_at + lease.ttl
        self._retry = max(0.05, lease.ttl / 20)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.leases.close()

    def _loop(self) -> None:
        delay = self.lease.ttl / 3
        while not self._stop.wait(delay):
            reason, delay = self._beat()
            if reason:
                self.lost.set()
                log.warning("lease %s lost: %s", self.lease.key, reason)
                self.on_lost(reason)
                return

    def _beat(self) -> tuple[str, float]:
        """One renewal: why the lease is lost ("" if it is not), and how long to wait before the next one."""
        started = time.monotonic()
        try:
            owned = self.leases.renew(self.lease)
        except CoordinationError as exc:
            # The lease is still ours until its last confirmed expiry; try again while one more try fits before it,
            # with a retry's interval to spare: a loaded machine wakes the thread late, and on_lost must still come
            # before the expiry, not at it.
            room = self._confirmed_until - time.monotonic() - self.leases.timeout - self._retry
            if room <= 0:
                return f"could not renew before expiry: {exc}", 0.0
            log.warning("lease %s renewal failed (%.1fs to its expiry), will retry: %s", self.lease.key, room, exc)
            return "", min(self._retry, room)
        if not owned:
            return "lease expired or taken over by another worker", 0.0
        self._confirmed_until = started + self.lease.ttl
        return "", self.lease.ttl / 3
