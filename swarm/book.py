"""The attempt book: attempts in flight, every attempt's record, and each task's ONE budget.

The budget of a task: `used` counts only attempts that were its fault (see `Reason.counts`); at `max_attempts` the
task fails until `swarm retry`, which gives it a fresh budget (used back to 0). Attempts that were not its fault
(a lost lease, Redis or git trouble, a conflict, main moving, a vendor's rate limit or auth error) never use it
up and never fail the task; instead each one in a row makes the task wait longer before dispatch sends it again
(`streak` -> a backoff doubling from BACKOFF_BASE up to BACKOFF_CAP; the first such run waits nothing). Every step
that reads and changes the budget is one Lua script.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

import redis

from swarm import keys
from swarm.coordination import Door, guarded
from swarm.outcomes import AttemptRecord, Outcome

log = logging.getLogger(__name__)

HISTORY_KEEP = 50
BACKOFF_BASE = 5.0
"""Seconds the task waits after its second run in a row that was not its fault; doubled for each further one."""
BACKOFF_CAP = 600.0

# KEYS: active, budget, failed. ARGV: task, entry JSON. Starts a run unless the task failed; returns its number.
_BEGIN = """
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local n = redis.call('HINCRBY', KEYS[2], 'runs', 1)
local entry = cjson.decode(ARGV[2])
entry['attempt'] = n
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(entry))
return n
"""

# The budget step every finished attempt goes through: history, metrics, landings, used/streak, failure, backoff.
# KEYS: budget, failed, backoff, history, metrics, landings.
# ARGV: record JSON, outcome, reason, counted (1/0), max_attempts, failure JSON, landing JSON, keep, base ms, cap ms.
_FINISH = """
local function finish()
  redis.call('RPUSH', KEYS[4], ARGV[1])
  redis.call('LTRIM', KEYS[4], -tonumber(ARGV[8]), -1)
  if ARGV[2] == 'landed' then
    redis.call('HSET', KEYS[1], 'streak', 0)
    redis.call('DEL', KEYS[3])
    redis.call('LPUSH', KEYS[6], ARGV[7])
    redis.call('LTRIM', KEYS[6], 0, 99)
    redis.call('HINCRBY', KEYS[5], 'landed', 1)
    return 'landed'
  end
  redis.call('HINCRBY', KEYS[5], 'rejected:' .. ARGV[3], 1)
  if ARGV[4] == '1' then
    redis.call('HSET', KEYS[1], 'streak', 0)
    redis.call('DEL', KEYS[3])
    local used = redis.call('HINCRBY', KEYS[1], 'used', 1)
    if used >= tonumber(ARGV[5]) then
      local failure = cjson.decode(ARGV[6])
      failure['attempts'] = used
      redis.call('SET', KEYS[2], cjson.encode(failure))
      return 'failed'
    end
    return ARGV[2]
  end
  local streak = redis.call('HINCRBY', KEYS[1], 'streak', 1)
  if streak > 1 then
    local wait = math.min(tonumber(ARGV[10]), tonumber(ARGV[9]) * 2 ^ (streak - 2))
    redis.call('SET', KEYS[3], streak, 'PX', math.floor(wait))
  end
  return ARGV[2]
end
"""
# KEYS: active + the finish keys. ARGV: task, lease value + the finish arguments. Only the attempt in flight
# under this lease is finished; one already finished as lost is not recorded twice (a landing always is).
_END = (
    _FINISH.replace("KEYS[", "KEYS[1+").replace("ARGV[", "ARGV[2+")
    + """
local v = redis.call('HGET', KEYS[1], ARGV[1])
local ours = v and cjson.decode(v)['lease'] == ARGV[2]
if ours then redis.call('HDEL', KEYS[1], ARGV[1]) end
if ours or ARGV[4] == 'landed' then return finish() end
return 'lost'
"""
)
# KEYS: active, lease. ARGV: task. An attempt whose lease is gone (or replaced) is lost: take it out, return it.
_TAKE_LOST = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
if redis.call('GET', KEYS[2]) == cjson.decode(v)['lease'] then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
return v
"""
_RECORD = _FINISH + "\nreturn finish()\n"
# KEYS: failed, budget, backoff. A fresh budget: the failure goes, used and streak back to 0; runs keep counting.
_RETRY = """
local previous = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('HSET', KEYS[2], 'used', 0, 'streak', 0)
return previous
"""
# KEYS: budget, failed, history. ARGV: runs, used, failure JSON or "", history length, records JSON...
# What origin's ledger says was paid for, after Redis lost it: counters only ever rise (what a running swarm
# counted since the wipe is kept when it is more), a failure is only added, a shorter history is replaced.
_RESTORE = """
for i, name in ipairs({'runs', 'used'}) do
  local cur = tonumber(redis.call('HGET', KEYS[1], name) or '0')
  if tonumber(ARGV[i]) > cur then redis.call('HSET', KEYS[1], name, ARGV[i]) end
end
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3], 'NX') end
local n = tonumber(ARGV[4])
if n > 0 and redis.call('LLEN', KEYS[3]) < n then
  redis.call('DEL', KEYS[3])
  for i = 5, 4 + n do redis.call('RPUSH', KEYS[3], ARGV[i]) end
end
return 1
"""
# KEYS: active. ARGV: task, lease value, field, value. Sets a field of this attempt's entry only.
_NOTE = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then
  local entry = cjson.decode(v)
  if entry['lease'] == ARGV[2] then
    entry[ARGV[3]] = ARGV[4]
    redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(entry))
    return 1
  end
end
return 0
"""


@dataclass(frozen=True)
class Budget:
    """Where a task stands: attempts used of its budget, runs ever started, seconds it waits before the next."""

    used: int = 0
    runs: int = 0
    backoff_s: float = 0.0


@dataclass(frozen=True)
class Reaped:
    """An attempt the reaper finished as lost: its record, and where its agent ran ("host:pgid", or "")."""

    record: AttemptRecord
    agent: str


class AttemptBook(Door):
    """The only holder of the in-flight set, the attempt histories, budgets, failures and the landings list."""

    def __init__(self, client: redis.Redis, max_attempts: int) -> None:
        super().__init__(client)
        self.max_attempts = max_attempts
        self._begin = self.r.register_script(_BEGIN)
        self._end = self.r.register_script(_END)
        self._take_lost = self.r.register_script(_TAKE_LOST)
        self._record = self.r.register_script(_RECORD)
        self._retry = self.r.register_script(_RETRY)
        self._note = self.r.register_script(_NOTE)
        self._restore = self.r.register_script(_RESTORE)

    @guarded
    def begin(self, record: AttemptRecord, lease_value: str) -> int:
        """Mark the attempt in flight and give it its run number; 0 when the task has failed (no run then)."""
        entry = {**record.to_dict(), "lease": lease_value}
        number = int(self._begin(keys=[keys.ACTIVE, keys.budget(record.task), keys.failed(record.task)],
                                 args=[record.task, json.dumps(entry)]))  # fmt: skip
        record.attempt = number
        return number

    @guarded
    def note_agent(self, task_id: str, lease_value: str, pgid: int) -> None:
        """Remember where the agent runs, so the reaper on this host can kill it if this worker dies."""
        self._note(keys=[keys.ACTIVE], args=[task_id, lease_value, "agent", f"{socket.gethostname()}:{pgid}"])

    @guarded
    def end(self, record: AttemptRecord, lease_value: str) -> Outcome:
        """Take the attempt out of flight, keep its record and settle the budget: LANDED, REJECTED or FAILED; LOST
        (and nothing recorded) when the attempt was already finished as lost (the reaper, or a Redis wipe)."""
        record.ended = time.time()
        verdict = str(self._end(keys=[keys.ACTIVE, *self._finish_keys(record.task)],
                                args=[record.task, lease_value, *self._finish_args(record)]))  # fmt: skip
        if verdict == Outcome.LOST:
            log.warning("attempt of %s was already finished as lost; not recording it again", record.task)
        return Outcome(verdict)

    @guarded
    def in_flight(self) -> dict[str, dict[str, Any]]:
        """Every attempt in flight by task: vendor, worker, run number, fence, start, log folder."""
        return {keys.text(task): json.loads(v) for task, v in self.r.hgetall(keys.ACTIVE).items()}

    @guarded
    def take_lost(self, task_id: str) -> Reaped | None:
        """Finish the task's attempt in flight if its lease is gone or replaced: recorded as lost, never counted."""
        raw = self._take_lost(keys=[keys.ACTIVE, keys.lease(task_id)], args=[task_id])
        if not raw:
            return None
        entry = json.loads(raw)
        agent = str(entry.pop("agent", ""))
        record = AttemptRecord.from_dict({**entry, "task": task_id})
        record.outcome, record.reason = Outcome.LOST.value, "lost"
        record.detail = "lease expired: the worker died, stalled or lost Redis before finishing"
        record.ended = time.time()
        self._record(keys=self._finish_keys(task_id), args=self._finish_args(record))
        return Reaped(record, agent)

    @guarded
    def history(self, task_id: str) -> list[AttemptRecord]:
        return [AttemptRecord.from_dict(json.loads(x)) for x in self.r.lrange(keys.history(task_id), 0, -1)]

    @guarded
    def last_records(self, task_ids: list[str]) -> dict[str, AttemptRecord]:
        """Each task's latest attempt record, in one round trip."""
        pipe = self.r.pipeline()
        for task_id in task_ids:
            pipe.lindex(keys.history(task_id), -1)
        found = zip(task_ids, pipe.execute(), strict=True)
        return {t: AttemptRecord.from_dict(json.loads(raw)) for t, raw in found if raw}

    @guarded
    def budgets(self, task_ids: list[str]) -> dict[str, Budget]:
        """Each task's budget, in one round trip (tasks never attempted are left out)."""
        pipe = self.r.pipeline()
        for task_id in task_ids:
            pipe.hgetall(keys.budget(task_id))
            pipe.pttl(keys.backoff(task_id))
        replies = pipe.execute()
        out = {}
        for task_id, raw, pttl in zip(task_ids, replies[::2], replies[1::2], strict=True):
            if raw:
                wait = max(0, int(pttl)) / 1000
                out[task_id] = Budget(int(raw.get("used", 0)), int(raw.get("runs", 0)), wait)
        return out

    def budget(self, task_id: str) -> Budget:
        return self.budgets([task_id]).get(task_id, Budget())

    @guarded
    def failures(self) -> dict[str, dict[str, Any]]:
        """Every failed task with its failure (reason, detail, log folder, attempts used)."""
        found = {}
        for key in self.r.scan_iter(match=keys.FAILED_PATTERN, count=500):
            value = self.r.get(key)
            if value is not None:
                found[keys.task_of_failed(keys.text(key))] = json.loads(value)
        return found

    @guarded
    def entry(self, task_id: str) -> dict[str, Any] | None:
        """The task's attempt in flight (vendor, worker, run number, log folder, ...), or None."""
        raw = self.r.hget(keys.ACTIVE, task_id)
        return dict(json.loads(raw)) if raw else None

    @guarded
    def hold(self, task_id: str, failure: dict[str, Any]) -> None:
        """Mark the task failed (held) without an attempt: dispatch and workers start none until `swarm retry`."""
        self.r.set(keys.failed(task_id), json.dumps(failure, default=str))

    @guarded
    def mark_cancelled(self, task_id: str, ttl: int) -> None:
        """The next lost lease of the task is `swarm cancel`'s doing: that attempt is not the task's fault."""
        self.r.set(keys.cancel(task_id), "1", ex=ttl)

    @guarded
    def take_cancelled(self, task_id: str) -> bool:
        """Whether a lost lease was `swarm cancel`'s doing; answered once per cancel."""
        return bool(self.r.delete(keys.cancel(task_id)))

    @guarded
    def has_failed(self, task_id: str) -> bool:
        return bool(self.r.exists(keys.failed(task_id)))

    @guarded
    def retry(self, task_id: str) -> dict[str, Any] | None:
        """Give the task a fresh budget: max_attempts more attempts; returns the failure it had, if any."""
        previous = self._retry(keys=[keys.failed(task_id), keys.budget(task_id), keys.backoff(task_id)])
        return json.loads(previous) if previous else None

    @guarded
    def recent_landings(self, count: int = 10) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.r.lrange(keys.LANDINGS, 0, count - 1)]

    @guarded
    def restore(
        self, task_id: str, runs: int, used: int, failure: dict[str, Any] | None, history: list[dict[str, Any]]
    ) -> None:
        """Put back what origin's ledger says the task was paid for (see ledger.py); never lowers a count."""
        records = [json.dumps(r, default=str) for r in history[-HISTORY_KEEP:]]
        failed = json.dumps(failure, default=str) if failure is not None else ""
        self._restore(keys=[keys.budget(task_id), keys.failed(task_id), keys.history(task_id)],
                      args=[runs, used, failed, len(records), *records])  # fmt: skip

    @guarded
    def spool(self, record: str) -> None:
        """Keep a ledger record origin could not take now, for `ledger.flush`."""
        self.r.rpush(keys.LEDGER_SPOOL, record)

    @guarded
    def unspool(self) -> str | None:
        """The oldest spooled ledger record, taken out (None when there is none)."""
        raw = self.r.lpop(keys.LEDGER_SPOOL)
        return keys.text(raw) if isinstance(raw, (bytes, str)) else None

    @guarded
    def respool(self, record: str) -> None:
        """Put a record back at the front: origin still cannot take it."""
        self.r.lpush(keys.LEDGER_SPOOL, record)

    @guarded
    def restored(self) -> bool:
        """Whether Redis holds what origin's ledger knows; false exactly after Redis lost its data."""
        return bool(self.r.exists(keys.LEDGER_LOADED))

    @guarded
    def mark_restored(self, tasks: int) -> None:
        self.r.set(keys.LEDGER_LOADED, json.dumps({"at": time.time(), "tasks": tasks}))

    def _finish_keys(self, task_id: str) -> list[str]:
        return [keys.budget(task_id), keys.failed(task_id), keys.backoff(task_id), keys.history(task_id),
                keys.METRICS, keys.LANDINGS]  # fmt: skip

    def _finish_args(self, record: AttemptRecord) -> list[str | int]:
        fields = record.to_dict()
        failure = {k: fields.get(k) for k in ("reason", "detail", "log_dir", "vendor", "worker")}
        landing = {"task": record.task, "commit": record.commit, "vendor": record.vendor, "worker": record.worker,
                   "at": record.ended, **(record.full.to_dict() if record.full else {})}  # fmt: skip
        return [
            json.dumps(fields, default=str),
            record.outcome,
            record.reason or "unknown",
            int(record.counted),
            self.max_attempts,
            json.dumps(failure, default=str),
            json.dumps(landing, default=str),
            HISTORY_KEEP,
            int(BACKOFF_BASE * 1000),
            int(BACKOFF_CAP * 1000),
        ]
