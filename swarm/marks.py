"""Queue marks: that a message for a task waits in a vendor's queue, so dispatch does not send it twice.

The one place the "queued" marker is set and cleared. A mark expires on its own: it only spares a second message
while the first waits; if it goes early, the duplicate message is dropped by whichever worker gets it (lease,
landed and failed checks), so a lost message never keeps a task looking queued for longer than the mark's ttl.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable

import redis

from swarm import keys
from swarm.coordination import Door, guarded

log = logging.getLogger(__name__)

# KEYS: mark. ARGV: vendor. Deletes the mark only while it still names this vendor.
_CLEAR_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class QueueMarks(Door):
    """The only holder of the queued markers."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(client)
        self._clear_if = self.r.register_script(_CLEAR_IF)

    @guarded
    def mark(self, task_id: str, vendor: str, ttl: int) -> bool:
        """Mark the task queued on `vendor` for `ttl` seconds; False when it is marked already."""
        return bool(self.r.set(keys.queued(task_id), vendor, nx=True, ex=ttl))

    @guarded
    def force(self, task_id: str, vendor: str, ttl: int) -> None:
        """Mark the task queued on `vendor` whatever mark it had (a pass asked for by hand)."""
        self.r.set(keys.queued(task_id), vendor, ex=ttl)

    @guarded
    def clear(self, task_id: str, vendor: str | None = None) -> bool:
        """Take the mark away: any mark, or only one that still names `vendor` (a message of that vendor ended)."""
        if vendor is None:
            return bool(self.r.delete(keys.queued(task_id)))
        return bool(self._clear_if(keys=[keys.queued(task_id)], args=[vendor]))

    @guarded
    def all(self) -> dict[str, str]:
        """Every marked task and the vendor whose queue holds its message."""
        found = {}
        for key in self.r.scan_iter(match=keys.QUEUED_PATTERN, count=500):
            vendor = self.r.get(key)
            if vendor is not None:
                found[keys.task_of_queued(keys.text(key))] = keys.text(vendor)
        return found

    @guarded
    def seconds_left(self, task_id: str) -> int:
        """Seconds until the mark expires (negative when there is none)."""
        return int(self.r.ttl(keys.queued(task_id)))

    @guarded
    def waiting(self, vendors: Iterable[str]) -> set[str]:
        """The tasks whose messages wait in these vendors' queues (read from the broker's lists; a message a
        worker has taken is no longer there)."""
        found: set[str] = set()
        for vendor in vendors:
            for raw in self.r.lrange(keys.broker_queue(vendor), 0, -1):
                task = _task_of(raw)
                if task:
                    found.add(task)
        return found


def _task_of(raw: bytes | str) -> str | None:
    """The task id a run_task message carries (its first argument), or None for anything else."""
    try:
        message = json.loads(raw)
        body = (
            json.loads(base64.b64decode(message["body"]))
            if message.get("properties", {}).get("body_encoding") == "base64"
            else json.loads(message["body"])
        )
        args = body[0] if isinstance(body, list) else body.get("args", [])
        return str(args[0]) if args else None
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
