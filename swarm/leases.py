"""Leases with a fence, renewed by a heartbeat, released only by their owner; the merge lock is one too."""

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


class Leases:
    """Lease operations on one Redis; every compare-and-set step is a Lua script."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def acquire(self, key: str, fence_key: str, ttl: float, **owner: Any) -> Lease | None:
        """SET NX PX plus INCR of the fence, atomically; None when someone else holds it."""
        value = json.dumps({"token": secrets.token_hex(16), "since": time.time(), **owner}, sort_keys=True)
        fence = self._acquire(keys=[key, fence_key], args=[value, int(ttl * 1000)])
        if not fence:
            return None
        return Lease(key, value, int(fence), ttl)

    def acquire_task(self, task_id: str, ttl: float, **owner: Any) -> Lease | None:
        return self.acquire(keys.lease(task_id), keys.fence(task_id), ttl, task=task_id, **owner)

    def renew(self, lease: Lease) -> bool:
        """Extend the lease by its ttl if we still own it."""
        return bool(self._renew(keys=[lease.key], args=[lease.value, int(lease.ttl * 1000)]))

    def release(self, lease: Lease) -> bool:
        """Delete the lease only if we still own it; never someone else's."""
        return bool(self._release(keys=[lease.key], args=[lease.value]))

    def delete_if(self, key: str, value: str) -> bool:
        """Delete a key only while it still holds `value` (a queued marker, the dispatch lock)."""
        return bool(self._release(keys=[key], args=[value]))

    def held(self, lease: Lease) -> bool:
        """Whether this exact lease is still the one in Redis."""
        current = self.r.get(lease.key)
        return current is not None and keys.text(current) == lease.value

    def holders(self) -> dict[str, dict[str, Any]]:
        """Every task lease held now: owner info and milliseconds left."""
        found: dict[str, dict[str, Any]] = {}
        for key in self.r.scan_iter(match=keys.LEASE_PATTERN, count=500):
            name = key.decode()
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


class Heartbeat:
    """Renews a lease every ttl/3 in a thread; when renewal fails or cannot be confirmed in time, calls on_lost once."""

    def __init__(self, leases: Leases, lease: Lease, on_lost: Callable[[str], None]) -> None:
        self.leases = leases
        self.lease = lease
        self.on_lost = on_lost
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat:{lease.key}", daemon=True)
        self._confirmed_until = time.monotonic() + lease.ttl

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        interval = self.lease.ttl / 3
        while not self._stop.wait(interval):
            reason = self._beat()
            if reason:
                self.lost.set()
                log.warning("lease %s lost: %s", self.lease.key, reason)
                self.on_lost(reason)
                return

    def _beat(self) -> str:
        started = time.monotonic()
        try:
            if self.leases.renew(self.lease):
                self._confirmed_until = started + self.lease.ttl
                return ""
            return "lease expired or taken over by another worker"
        except redis.RedisError as exc:
            # Redis unreachable: the lease may still be ours until the last confirmed expiry; after that it is not.
            if time.monotonic() + self.lease.ttl / 3 >= self._confirmed_until:
                return f"could not renew before expiry: {exc}"
            log.warning("lease %s renewal failed, will retry: %s", self.lease.key, exc)
            return ""
