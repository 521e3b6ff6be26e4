"""What Flower shows of an attempt: each stage as a custom task state, its end as a state that says what happened.

Celery's event state copies every field of a task event onto its task object, so the swarm's fields all carry a
`swarm_` prefix (a `worker` field would replace the task's worker object and break Flower's pages). Event names
that Celery already uses (`task-rejected`, `task-failed`) are renamed. A rejected attempt ends in the custom state
`ATTEMPT_REJECTED` (`TASK_FAILED` when it was the task's last), with its reason, log folder and oracle counts as
the result: the task raises Celery's `Ignore`, so Celery neither logs an error nor overwrites the state with
SUCCESS or FAILURE. A landed attempt is a Celery SUCCESS whose result says so.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from celery import Task, states
from celery.events.state import TASK_EVENT_TO_STATE
from celery.exceptions import Ignore

from swarm.runtime import Runtime

log = logging.getLogger(__name__)

PREFIX = "swarm_"
ENDS = {"rejected": "ATTEMPT_REJECTED", "failed": "TASK_FAILED", "interrupted": "ATTEMPT_INTERRUPTED"}
"""Outcomes of run_task that end in a custom state instead of SUCCESS."""
NOT_THIS_ATTEMPT = {"lost"}
"""States emitted while an attempt runs that belong to an earlier attempt (the reaper finishing it)."""
DETAIL_LIMIT = 600
SUMMARY_FIELDS = ("reason", "detail", "attempt", "vendor", "worker", "log_dir", "commit", "fast", "full", "fence")


def celery_state(state: str) -> str:
    """The Celery state name of a swarm state, never one of Celery's own."""
    if state in ENDS:
        return ENDS[state]
    name = state.upper()
    if state in TASK_EVENT_TO_STATE or name in states.ALL_STATES or name == states.IGNORED:
        return f"SWARM_{name}"
    return name


def event_fields(entry: dict[str, Any]) -> dict[str, Any]:
    """An event's fields under names no Celery task attribute has."""
    return {f"{PREFIX}{key}": value for key, value in entry.items()}


class AttemptView:
    """The events hook of one run_task call: forwards the attempt's stages, then reports how it ended."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.log_dir: str | None = None
        self.attempt: int | None = None

    def __call__(self, state: str, entry: dict[str, Any]) -> None:
        if entry.get("log_dir"):
            self.log_dir, self.attempt = str(entry["log_dir"]), entry.get("attempt")
        if state in ENDS or state in NOT_THIS_ATTEMPT:
            return  # the end is reported once, by `end`, with the attempt's result
        self._send(celery_state(state), event_fields(entry), None)

    def end(self, rt: Runtime, task_id: str, outcome: str) -> dict[str, Any]:
        """The result of run_task; raises Ignore after recording a custom end state for a rejected attempt."""
        summary = self.summary(rt, task_id, outcome)
        if outcome in ENDS:
            self.fail(outcome, summary)
        return summary

    def fail(self, outcome: str, summary: dict[str, Any]) -> NoReturn:
        """Show the attempt's end state in Flower and the result backend, and stop Celery from recording another."""
        name = celery_state(outcome)
        try:
            self._send(name, {f"{PREFIX}outcome": outcome}, summary)
        except Exception as exc:  # noqa: BLE001 - Redis may be the reason this attempt ends; the swarm recorded it
            log.warning("could not show the end of %s in Flower: %s", self.task.request.id, exc)
        raise Ignore(f"{outcome}: {summary.get('reason', '')}")

    def summary(self, rt: Runtime, task_id: str, outcome: str) -> dict[str, Any]:
        """The attempt's outcome with its reason, log folder and oracle counts, from its record in Redis."""
        summary: dict[str, Any] = {"task": task_id, "outcome": outcome}
        record = self._record(rt, task_id)
        summary.update({k: record[k] for k in SUMMARY_FIELDS if record.get(k) is not None})
        if self.log_dir:
            summary.setdefault("log_dir", self.log_dir)
            summary.setdefault("attempt", self.attempt)
        if isinstance(summary.get("detail"), str) and len(summary["detail"]) > DETAIL_LIMIT:
            summary["detail"] = summary["detail"][:DETAIL_LIMIT] + " [...]"
        return summary

    def _record(self, rt: Runtime, task_id: str) -> dict[str, Any]:
        if self.log_dir is None:
            return {}  # no attempt began (busy, cooling, already done): nothing was recorded
        try:
            records = [r.to_dict() for r in rt.book.history(task_id)]
        except Exception as exc:  # noqa: BLE001 - the result is a view; the record stays in Redis
            log.warning("could not read the record of %s: %s", task_id, exc)
            return {}
        return next((r for r in reversed(records) if r.get("log_dir") == self.log_dir), {})

    def _send(self, name: str, fields: dict[str, Any], result: dict[str, Any] | None) -> None:
        meta = dict(fields)
        if result is not None:
            fields = {**fields, "result": repr(result)}  # Flower shows a task's `result` on its page
            meta = result
        self.task.send_event(f"task-{name.lower()}", **fields)
        self.task.update_state(state=name, meta=meta)
