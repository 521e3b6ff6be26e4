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
        return [_entry(fields) for _, fields in entries]

    def since(
        self, after: str = "0-0", count: int = 1000, block_ms: int | None = None
    ) -> list[tuple[str, dict[str, str]]]:
        """Events after the stream id `after`, oldest first, with their ids; waits up to block_ms for one if asked."""
        if block_ms is None:
            entries: Any = self.r.xrange(keys.EVENTS, min=f"({after}", count=count) or []
        else:
            answer: Any = self.r.xread({keys.EVENTS: after}, count=count, block=block_ms) or []
            # RESP2 answers [[stream, entries]], RESP3 {stream: entries}
            entries = next(iter(answer.values()), []) if isinstance(answer, dict) else (answer[0][1] if answer else [])
        return [(keys.text(eid), _entry(fields)) for eid, fields in entries]

    def last_id(self) -> str:
        """The id of the newest event ("0-0" when there is none): follow the stream from here."""
        newest: Any = self.r.xrevrange(keys.EVENTS, count=1) or []
        return keys.text(newest[0][0]) if newest else "0-0"

    def counters(self) -> dict[str, int]:
        """The swarm's counters: `landed`, `rejected:<reason>`, `state:<state>` (see keys.METRICS)."""
        raw = self.r.hgetall(keys.METRICS) or {}
        return {keys.text(k): int(float(v)) for k, v in raw.items()}

    def all(self) -> list[dict[str, str]]:
        """Every event the stream still holds, oldest first."""
        found: list[dict[str, str]] = []
        after = "0-0"
        while batch := self.since(after, 5000):
            found += [entry for _, entry in batch]
            after = batch[-1][0]
        return found


def _entry(fields: dict[Any, Any] | None) -> dict[str, str]:
    return {keys.text(k): keys.text(v) for k, v in (fields or {}).items()}


def _flat(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)
