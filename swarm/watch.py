"""The live view (`swarm status --watch`, `swarm up`, `swarm demo`): stage, elapsed time and vendor per task.

It fits 80 columns (long ids and details are cut, never wrapped) and the terminal's height (the rows that do not
fit are counted), so rich can redraw it in place; log records go through the same console while it runs, so a
warning (an invalid task file, say) is printed once above the view instead of breaking it.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.logging import RichHandler
from rich.table import Table
from rich.text import Text

from swarm import state
from swarm.errors import SwarmError
from swarm.runtime import Runtime

log = logging.getLogger(__name__)

EVENTS_SHOWN = 5
COLOURS = {"landed": "green", "failed": "red", "invalid": "red", "leased": "cyan", "queued": "blue", "blocked": "dim"}


@dataclass
class Row:
    task: str
    state: str
    stage: str = ""
    vendor: str = ""
    attempts: int = 0
    elapsed: float | None = None
    detail: str = ""


def report(rt: Runtime) -> dict[str, Any]:
    """`swarm status`'s report plus what the live view adds: each task's stage, elapsed time and vendor."""
    rep = state.report(rt)
    rep["rows"] = rows(rt, rep)
    rep["events"] = rt.events.recent(EVENTS_SHOWN)
    return rep


def rows(rt: Runtime, rep: dict[str, Any]) -> list[Row]:
    active = rt.book.in_flight()
    stages = _stages(rt.events.recent(500))
    ids = [t["id"] for t in rep["tasks"] if t["state"] != "invalid"]
    last = {t: record.to_dict() for t, record in rt.book.last_records(ids).items()}
    now = time.time()
    out = []
    for task in rep["tasks"]:
        row = Row(task["id"], task["state"], attempts=int(task.get("attempts") or 0))
        record = last.get(task["id"], {})
        entry = active.get(task["id"])
        if task["state"] == "leased":
            row.vendor = task.get("lease", {}).get("vendor") or ""
            row.stage = stages.get(task["id"], "leased")
            row.elapsed = now - float(entry["started"]) if entry and entry.get("started") else None
            row.detail = f"lease {task['lease']['ms_left'] / 1000:.0f}s"
        elif task["state"] == "landed":
            row.vendor = record.get("vendor", "")
            row.detail = f"as {task.get('landed_as', '')[:10]}"
        elif task["state"] == "queued":
            row.vendor = task.get("queued_on", "")
        elif task["state"] == "failed":
            failure = task.get("failure") or {}
            row.vendor = failure.get("vendor") or record.get("vendor", "")
            row.detail = f"{failure.get('reason')}: {failure.get('detail') or ''}"
        elif task["state"] == "invalid":
            row.detail = str(task.get("reason", ""))
        elif task["state"] == "blocked":
            row.vendor = task.get("vendor") or ""
            row.detail = "waits for " + ", ".join(task.get("depends_on", []))
        else:
            row.vendor = task.get("vendor") or ""
            if record and record.get("outcome") != "landed":
                row.detail = f"last: {record.get('reason')}"
        out.append(row)
    return out


def _stages(events: list[dict[str, str]]) -> dict[str, str]:
    """Each task's latest stage, from recent events (newest first)."""
    found: dict[str, str] = {}
    for entry in events:
        if entry.get("attempt") and entry.get("task") not in found:
            found[entry["task"]] = entry.get("state", "")
    return found


def select(rows_: list[Row], states: set[str] | None, vendor: str | None) -> list[Row]:
    return [r for r in rows_ if (not states or r.state in states) and (not vendor or r.vendor == vendor)]


def view(rep: dict[str, Any], shown: list[Row], height: int | None = None, width: int = 80) -> Group:
    """The view: main and its oracle count, a row per task (as many as fit), the latest events."""
    oracle = rep.get("oracle") or {}
    total = int(oracle.get("passed", 0) or 0) + int(oracle.get("failed", 0) or 0)
    counts = " ".join(f"{k} {v}" for k, v in sorted(rep["counts"].items()))
    head = Text.assemble(("main ", "bold"), rep["main"][:10], "  passing ",
                         (str(oracle.get("passed", "?")), "bold green"), f"/{total}  ", counts)  # fmt: skip
    head.truncate(width, overflow="ellipsis")
    room = len(shown) if height is None else max(3, height - 6 - EVENTS_SHOWN)
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    # Fixed widths and a detail cut to what is left: rich never has to squeeze (and drop) a column.
    fixed = {"task": 17, "state": 8, "stage": 15, "vendor": 7, "att": 4, "time": 6}  # with one space after each
    for name, size in fixed.items():
        table.add_column(
            name, width=size, no_wrap=True, overflow="ellipsis", justify="right" if name in ("att", "time") else "left"
        )
    detail_width = max(8, width - sum(fixed.values()))
    table.add_column("detail", width=detail_width, no_wrap=True, overflow="ellipsis")
    for row in shown[:room]:
        colour = COLOURS.get(row.state, "white")
        table.add_row(row.task, f"[{colour}]{row.state}[/]", row.stage, row.vendor, str(row.attempts),
                      _duration(row.elapsed), row.detail)  # fmt: skip
    parts: list[Any] = [head, table]
    if len(shown) > room:
        parts.append(Text(f"... {len(shown) - room} more tasks (filter with --state, --vendor)", style="dim"))
    for entry in reversed(rep.get("events", [])):
        line = Text(_event(entry), style="dim", no_wrap=True, overflow="ellipsis")
        parts.append(line)
    return Group(*parts)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _event(entry: dict[str, str]) -> str:
    at = time.strftime("%H:%M:%S", time.localtime(float(entry.get("ts", 0) or 0)))
    why = entry.get("reason", "")
    return f"{at} {entry.get('task', '')} {entry.get('state', '')} {entry.get('vendor', '')} {why}".rstrip()


def run(rt: Runtime, console: Console, states: set[str] | None, vendor: str | None,
        until: Callable[[dict[str, Any]], bool] | None = None, every: float = 1.0, timeout: float | None = None,
        only: list[str] | None = None, check: Callable[[], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Redraw the view in place every `every` seconds until `until(report)` or the timeout (Ctrl-C raises).

    `only` keeps the tasks matching these patterns (the slice a demo runs); `check` is called each round and
    may raise to stop the view (a process of the swarm died, say).
    """
    deadline = None if timeout is None else time.monotonic() + timeout

    def render(r: dict[str, Any]) -> Group:
        shown = select(r["rows"], states, vendor)
        if only:
            shown = [row for row in shown if any(fnmatch.fnmatchcase(row.task, p) for p in only)]
        return view(r, shown, console.height, min(console.width, 120))

    with logs_through(console):
        rep = report(rt)
        with Live(render(rep), console=console, auto_refresh=False) as live:
            rep = _loop(rt, live, render, rep, until, every, deadline, check)
    return rep


def _loop(rt: Runtime, live: Live, render: Callable[[dict[str, Any]], Group], rep: dict[str, Any],
          until: Callable[[dict[str, Any]], bool] | None, every: float, deadline: float | None,
          check: Callable[[], None] | None) -> dict[str, Any]:  # fmt: skip
    started = time.monotonic()
    while not (until and until(rep)):
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"the swarm did not finish within {deadline - started:.0f}s")
        if check is not None:
            check()
        time.sleep(every)
        rep = report(rt)
        live.update(render(rep), refresh=True)
    return rep


@contextmanager
def logs_through(console: Console) -> Iterator[None]:
    """While the view runs, log records print through its console (each message once), not across it."""
    root = logging.getLogger()
    saved = root.handlers[:]
    handler = RichHandler(console=console, show_path=False, show_time=False)
    seen: set[str] = set()

    def once(record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text in seen:
            return False
        seen.add(text)
        return True

    handler.addFilter(once)
    root.handlers = [handler]
    try:
        yield
    finally:
        root.handlers = saved


def parse_states(text: str) -> set[str] | None:
    """--state a,b: the states asked for; an unknown one is an error naming it."""
    wanted = {s.strip() for s in text.split(",") if s.strip()}
    unknown = sorted(wanted - set(state.STATES))
    if unknown:
        raise SwarmError(f"--state {','.join(unknown)}: not a task state ({', '.join(state.STATES)})")
    return wanted or None


def filtered(rt: Runtime, rep: dict[str, Any], states: set[str] | None, vendor: str | None) -> dict[str, Any]:
    """The report with only the tasks asked for (`swarm status --state/--vendor`)."""
    if not states and not vendor:
        return rep
    keep = {r.task for r in select(rows(rt, rep), states, vendor)}
    return {**rep, "tasks": [t for t in rep["tasks"] if t["id"] in keep]}
