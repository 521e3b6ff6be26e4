"""Where an attempt's time goes: spans between the states of the events stream (agent, oracle, waiting, ...)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

ENDS = frozenset({"landed", "rejected", "failed", "lost"})
"""States after which an attempt has no stage left."""
KINDS = {
    "queued": "queued",
    "leased": "setup",
    "baseline_oracle": "oracle",
    "agent_running": "agent",
    "protected_restored": "setup",
    "resuming": "setup",
    "work_kept": "git",
    "fast_oracle": "oracle",
    "fast_skipped": "setup",
    "in_train": "waiting",
    "oracle_cached": "oracle",
    "waiting_merge_lock": "waiting",
    "rebasing": "git",
    "full_oracle": "oracle",
    "cas_lost": "git",
    "batch_red": "waiting",
    "batch_landed": "git",
    "landed_in_batch": "git",
    "run_landed": "git",
    "landed_in_run": "git",
    "main_red": "setup",
}
"""What each state's span counts as, for `where the time goes`."""
TIERS = {"baseline_oracle": "baseline", "fast_oracle": "fast", "full_oracle": "full"}


@dataclass(frozen=True)
class Span:
    """One stage of one attempt (or the wait of a queued task), from its state's event to the next."""

    task: str
    vendor: str
    stage: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def kind(self) -> str:
        return KINDS.get(self.stage, "other")


class Timeline:
    """Turns events, fed in stream order, into finished spans; keeps the open stage of every attempt."""

    def __init__(self) -> None:
        self.open: dict[tuple[str, str], tuple[str, str, float]] = {}
        self.queued: dict[str, tuple[str, float]] = {}

    def feed(self, entry: dict[str, Any]) -> list[Span]:
        task, state, ts = str(entry.get("task", "")), str(entry.get("state", "")), _float(entry.get("ts"))
        if not task or ts is None:
            return []
        vendor = str(entry.get("vendor", ""))
        if state == "queued":
            self.queued[task] = (vendor, ts)
            return []
        spans: list[Span] = []
        if state == "leased" and task in self.queued:
            queued_on, since = self.queued.pop(task)
            spans.append(Span(task, vendor or queued_on, "queued", since, ts))
        attempt = str(entry.get("attempt", ""))
        if not attempt:
            return spans
        key = (task, attempt)
        if key in self.open:
            stage, opened_vendor, start = self.open.pop(key)
            spans.append(Span(task, opened_vendor, stage, start, ts))
        if state not in ENDS:
            self.open[key] = (state, vendor, ts)
        return spans


def spans(entries: list[dict[str, Any]]) -> list[Span]:
    """Every finished span of a list of events, oldest first."""
    timeline = Timeline()
    return [span for entry in entries for span in timeline.feed(entry)]


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
