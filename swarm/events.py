"""One `emit()` for task-state changes: a Redis stream, counters, and a hook that Celery fills (seen in Flower)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import redis

from swarm import keys

log = logging.getLogger(__name__)

STREAM_MAXLEN = 10_000
Hook = Callable[[str, dict[str, Any]], None]


class Events:
    """Records what happens to tasks; `hook` forwards each state to Celery when running inside a worker."""

    def __init__(self, client: redis.Redis, hook: Hook | None = None) -> None:
        self.r = client
        self.hook = hook

    def emit(self, task_id: str, state: str, **fields: Any) -> None:
        """Record a state change; never raises, so bookkeeping cannot break an attempt."""
        entry = {"task": task_id, "state": state, "ts": f"{time.time():.3f}"}
        entry.update({k: _flat(v) for k, v in fields.items() if v is not None})
        log.info("task %s: %s %s", task_id, state, fields.get("reason", ""))
        try:
            pipe = self.r.pipeline()
            pipe.xadd(keys.EVENTS, entry, maxlen=STREAM_MAXLEN, approximate=True)  # type: ignore[arg-type]
            pipe.hincrby(keys.METRICS, f"state:{state}", 1)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("could not record event %s of %s: %s", state, task_id, exc)
        if self.hook is not None:
            try:
                self.hook(state, entry)
            except Exception as exc:  # noqa: BLE001 - Flower is a view; losing one update must not fail work
                log.warning("could not forward event %s of %s: %s", state, task_id, exc)

    def recent(self, count: int = 50) -> list[dict[str, str]]:
        entries = self.r.xrevrange(keys.EVENTS, count=count) or []
        return [{keys.text(k): keys.text(v) for k, v in (fields or {}).items()} for _, fields in entries]


def _flat(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)
