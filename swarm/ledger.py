"""The ledger of paid work: every attempt's record on origin, so budgets, history and fences survive Redis.

Each task has a commit chain `refs/swarm/attempts/<task>` on origin; each commit's message is one JSON record:
`begin` when an attempt starts (its fence and number), `end` when it ends (outcome, reason, cost, tokens,
commit), `retry` when `swarm retry` gives the task a fresh budget. Appends are compare-and-swap pushes, so
concurrent writers never lose a record. When Redis comes back empty, `ensure_loaded` rebuilds from these chains
what Redis forgot: the budget used since the last retry, the failed mark, run numbers, fences, history, and the
tokens and cost spent per vendor (daily caps hold) and per task.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from swarm import keys
from swarm.book import AttemptBook
from swarm.errors import CoordinationError, SwarmError
from swarm.leases import Leases
from swarm.quota import TOKEN_FIELDS, VendorLedger
from swarm.repo import RECORDS_PREFIX, Mirror

log = logging.getLogger(__name__)


class Doors(Protocol):
    """What the ledger reads and restores through (a Runtime, or a pipeline holding the same doors)."""

    mirror: Mirror
    leases: Leases
    book: AttemptBook
    ledger: VendorLedger


HEADER = "swarm attempt record"
"""First line of every record commit's message; the JSON record follows on the next line."""
RECORD_FIELDS = (
    "task", "event", "attempt", "fence", "outcome", "reason", "detail", "vendor", "worker", "started", "ended",
    "duration", "cost_usd", "tokens", *TOKEN_FIELDS, "commit", "counts", "failed", "log_dir", "at", "wip",
    "resumed", "models", "session_id",
)  # fmt: skip
HISTORY_KEEP = 50
LOAD_LOCK_MS = 120_000
LOAD_WAIT_SECONDS = 60.0
LOST = {
    "event": "end", "outcome": "lost", "reason": "lost", "counts": False,
    "detail": "no end record: the attempt's worker died, or lost Redis and origin, before it could write one",
}  # fmt: skip


def ref(task_id: str) -> str:
    return f"{RECORDS_PREFIX}{task_id}"


def entry(task_id: str, event: str, record: dict[str, Any]) -> dict[str, Any]:
    """The ledger's record of an attempt record: its known fields, plus token totals from the agent's run."""
    out: dict[str, Any] = {k: record[k] for k in RECORD_FIELDS if record.get(k) is not None}
    if "counted" in record:  # the attempt book's name for whether the attempt used up the budget
        out.setdefault("counts", bool(record["counted"]))
    agent = record.get("agent") or {}
    for name in TOKEN_FIELDS:
        if agent.get(name):
            out.setdefault(name, int(agent[name]))
    tokens = sum(int(out.get(k) or 0) for k in TOKEN_FIELDS)
    if tokens:
        out.setdefault("tokens", tokens)
    if agent.get("cost_usd") is not None:
        out.setdefault("cost_usd", agent["cost_usd"])
    for name in ("models", "session_id"):  # which models answered (a fallback shows), the session to resume
        if agent.get(name):
            out.setdefault(name, agent[name])
    if "started" in out and "ended" in out:
        out.setdefault("duration", round(float(out["ended"]) - float(out["started"]), 3))
    out.update(task=task_id, event=event, at=out.get("at") or time.time())
    return out


def write(mirror: Mirror, task_id: str, event: str, record: dict[str, Any], spool: AttemptBook | None = None) -> bool:
    """Append one record to the task's chain on origin; False (and a warning) when origin cannot take it now.

    A record origin could not take (cut off, disk full) waits in Redis's spool, if given, for `flush`.
    """
    body = entry(task_id, event, record)
    if _append(mirror, body):
        return True
    if spool is not None:
        try:
            spool.spool(json.dumps(body, sort_keys=True, default=str))
        except CoordinationError as exc:
            log.warning("could not spool the %s record of %s either: %s", event, task_id, exc)
    return False


def commit_of(task_id: str, event: str, record: dict[str, Any]) -> tuple[str, str]:
    """The ref and commit message of one record, for a push that carries it with something else (a landing)."""
    return _ref_and_message(entry(task_id, event, record))


def _ref_and_message(body: dict[str, Any]) -> tuple[str, str]:
    return ref(body["task"]), f"{HEADER}\n{json.dumps(body, sort_keys=True, default=str)}\n"


def _append(mirror: Mirror, body: dict[str, Any]) -> bool:
    try:
        mirror.append_record(*_ref_and_message(body))
        return True
    except SwarmError as exc:
        log.warning("could not write the %s record of %s to origin's ledger: %s", body["event"], body["task"], exc)
        return False


def flush(rt: Doors) -> int:
    """Write the spooled records to origin (the reaper calls this); returns how many went out."""
    sent = 0
    while (raw := rt.book.unspool()) is not None:
        if not _append(rt.mirror, json.loads(raw)):  # origin still cannot take it: back to the front, later
            rt.book.respool(raw)
            break
        sent += 1
    return sent


def read(mirror: Mirror, task_id: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every task's records (or one task's), oldest first, from the mirror's copy of origin (fetch first)."""
    books: dict[str, list[dict[str, Any]]] = {}
    for message in mirror.records(ref(task_id) if task_id else RECORDS_PREFIX):
        head, _, body = message.partition("\n")
        if head.strip() != HEADER:
            continue
        try:
            record = json.loads(body)
        except ValueError:
            log.warning("skipping a ledger record that is not JSON: %.80s", body)
            continue
        if isinstance(record, dict) and isinstance(record.get("task"), str):
            books.setdefault(record["task"], []).append(record)
    return books


@dataclass
class Book:
    """What a task's chain says was paid for."""

    runs: int = 0
    """Highest attempt number ever begun."""
    fence: int = 0
    """Highest fence ever used."""
    used: int = 0
    """Attempts that counted against the budget since the last retry."""
    failed: dict[str, Any] | None = None
    """The failure of the last attempt since the last retry, when it used up the budget."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """Attempt records (end records; a begin with no end shows as lost)."""


def summarize(records: Iterable[dict[str, Any]]) -> Book:
    """Fold a chain, oldest first, into the numbers Redis keeps."""
    book = Book()
    begun: dict[int, dict[str, Any]] = {}
    ended: set[int] = set()
    for rec in records:
        fence = int(rec.get("fence") or 0)
        book.fence = max(book.fence, fence)
        book.runs = max(book.runs, int(rec.get("attempt") or 0))
        if rec.get("event") == "retry":
            book.used, book.failed = 0, None
        elif rec.get("event") == "begin":
            begun[fence] = rec
        elif rec.get("event") == "end" and fence not in ended:  # a fence ends once, whoever wrote it first
            ended.add(fence)
            book.history.append(rec)
            book.used += 1 if rec.get("counts", True) and rec.get("outcome") != "landed" else 0
            book.failed = _failure(rec, book.used) if rec.get("failed") else None
    for fence, rec in begun.items():  # begun, never ended: the worker died or lost Redis before it could say
        if fence not in ended:
            book.history.append({**rec, **LOST})
    book.history.sort(key=lambda r: float(r.get("ended") or r.get("at") or 0))
    return book


def _failure(rec: dict[str, Any], used: int) -> dict[str, Any]:
    return {**{k: rec.get(k) for k in ("reason", "detail", "log_dir", "vendor", "worker")}, "attempts": used}


def restore(rt: Doors, books: dict[str, Book]) -> None:
    """Write back into Redis what it forgot; never lowers a counter Redis holds."""
    for task_id, book in books.items():
        rt.leases.raise_fence(task_id, book.fence)
        rt.book.restore(task_id, book.runs, book.used, book.failed, book.history)


def restore_spend(rt: Doors, books: dict[str, Book]) -> None:
    """Tokens and cost per vendor (total and per UTC day, so daily caps hold) and per task, from the end records;
    a hash Redis already holds again is left as it is."""
    sums: dict[str, dict[str, float]] = {}
    for task_id, book in books.items():
        for rec in book.history:
            vendor = rec.get("vendor")
            if not vendor or not any(rec.get(k) for k in (*TOKEN_FIELDS, "cost_usd")):
                continue
            day = time.strftime("%Y-%m-%d", time.gmtime(float(rec.get("ended") or rec.get("at") or 0)))
            for key in (keys.spend_total(vendor), keys.spend_day(vendor, day), keys.spend_task(task_id)):
                into = sums.setdefault(key, {})
                for name in (*TOKEN_FIELDS, "cost_usd"):
                    into[name] = into.get(name, 0) + float(rec.get(name) or 0)
                into["attempts"] = into.get("attempts", 0) + 1
            cost = sums[keys.spend_task(task_id)]
            cost[f"cost_usd:{vendor}"] = cost.get(f"cost_usd:{vendor}", 0) + float(rec.get("cost_usd") or 0)
    rt.ledger.restore_spend(sums)


def ensure_loaded(rt: Doors) -> bool:
    """Rebuild Redis from the ledger if Redis came back empty; True when this call did the rebuild.

    The `loaded` mark lives in Redis with no expiry, so it vanishes exactly when Redis loses its data. One process
    rebuilds under a lock; the others wait for it, so no lease is taken with a fence the ledger has used.
    """
    if rt.book.restored():
        return False
    lock = rt.leases.acquire_ledger_lock(LOAD_LOCK_MS / 1000)
    if lock is None:
        _wait_loaded(rt)
        return False
    try:
        rt.mirror.fetch()
        books = {task: summarize(records) for task, records in read(rt.mirror).items()}
        restore(rt, books)
        restore_spend(rt, books)
        rt.book.mark_restored(len(books))
        if books:
            log.warning("Redis had no ledger mark: restored budgets, fences and history of %d task(s) from origin",
                        len(books))  # fmt: skip
        return True
    finally:
        rt.leases.release(lock)


def _wait_loaded(rt: Doors) -> None:
    deadline = time.monotonic() + LOAD_WAIT_SECONDS
    while time.monotonic() < deadline:
        if rt.book.restored():
            return
        if not rt.leases.ledger_locked():  # the loader died: take over
            ensure_loaded(rt)
            return
        time.sleep(0.1)
    raise CoordinationError("the ledger is still being restored from origin by another process; try again")


def history(rt: Doors, task_id: str) -> list[dict[str, Any]]:
    """A task's attempt records straight from origin: whole, whatever Redis lost."""
    rt.mirror.fetch()
    return summarize(read(rt.mirror, task_id).get(task_id, [])).history
