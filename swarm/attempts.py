"""Bookkeeping of attempts: the in-flight set, each attempt's record, failure after the budget, and the reaper."""

from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import time
from typing import Any

from swarm import identity, keys, ledger, proc
from swarm.leases import Lease
from swarm.runtime import Runtime

log = logging.getLogger(__name__)

HISTORY_KEEP = 50

# KEYS: active hash. ARGV: task, lease value. Deletes the entry only if it is this attempt's.
_END = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and cjson.decode(v)['lease'] == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return v
end
return false
"""
# KEYS: active hash, lease key. ARGV: task. An attempt whose lease is gone (or replaced) is lost: take it out.
_REAP = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
if redis.call('GET', KEYS[2]) == cjson.decode(v)['lease'] then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
return v
"""


def begin(rt: Runtime, task_id: str, vendor: str, worker: str, lease: Lease, log_dir: str) -> int:
    """Count the attempt against the budget and mark it in flight; returns its run number (1 for the first).

    The run number only grows: an attempt that does not count (rate limited, say) refunds the budget, but the
    next run is still told it is a later attempt.
    """
    rt.redis.incr(keys.attempts(task_id))
    number = int(rt.redis.incr(keys.runs(task_id)))
    entry = {
        "lease": lease.value,
        "vendor": vendor,
        "worker": worker,
        "attempt": number,
        "fence": lease.fence,
        "started": time.time(),
        "log_dir": log_dir,
    }
    rt.redis.hset(keys.ACTIVE, task_id, json.dumps(entry))
    ledger.write(rt.mirror, task_id, "begin", entry, rt.redis)  # its fence and number survive a Redis wipe
    return number


# KEYS: active hash. ARGV: task, lease value, field, value. Sets a field of this attempt's entry only.
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


def note_agent(rt: Runtime, task_id: str, lease: Lease, pgid: int) -> None:
    """Remember where the agent runs, so the reaper on this host can kill it if this worker dies."""
    rt.redis.eval(_NOTE, 1, keys.ACTIVE, task_id, lease.value, "agent", f"{socket.gethostname()}:{pgid}")


def end(
    rt: Runtime, task_id: str, lease: Lease, record: dict[str, Any], counts: bool = True, final: bool = False
) -> bool:
    """Take the attempt out of flight and keep its record; True when this was the last allowed attempt.

    An attempt already finished as lost (its lease expired and a newer attempt or the reaper took over) is
    not recorded twice.
    """
    ours = rt.redis.eval(_END, 1, keys.ACTIVE, task_id, lease.value)
    if not ours and record.get("outcome") != "landed":
        log.warning("attempt of %s was already finished as lost; not recording it again", task_id)
        return rt.redis.exists(keys.failed(task_id)) > 0
    entry = json.loads(ours) if ours else {}
    started = {k: entry[k] for k in ("attempt", "started") if k in entry}
    return _record(rt, task_id, {**started, **record}, counts, final)


def _record(rt: Runtime, task_id: str, record: dict[str, Any], counts: bool, final: bool = False) -> bool:
    """Keep the record in Redis and in origin's ledger; True when the task is now failed."""
    record = {**record, "ended": time.time()}
    failed = _book(rt, task_id, record, counts, final)
    counted = record.get("outcome") != "landed" and (counts or final)
    ledger.write(rt.mirror, task_id, "end", {**record, "counts": counted, "failed": failed}, rt.redis)
    return failed


def _book(rt: Runtime, task_id: str, record: dict[str, Any], counts: bool, final: bool) -> bool:
    pipe = rt.redis.pipeline()
    pipe.rpush(keys.history(task_id), json.dumps(record, default=str))
    pipe.ltrim(keys.history(task_id), -HISTORY_KEEP, -1)
    if record.get("outcome") != "landed":
        pipe.hincrby(keys.METRICS, f"rejected:{record.get('reason', 'unknown')}", 1)
    pipe.execute()
    if record.get("outcome") == "landed":
        return False
    if not counts and not final:
        rt.redis.decr(keys.attempts(task_id))
        return False
    used = int(rt.redis.get(keys.attempts(task_id)) or 0)
    if used < rt.settings.max_attempts and not final:
        return False
    failure = {k: record.get(k) for k in ("reason", "detail", "log_dir", "vendor", "worker")}
    failure["attempts"] = used
    rt.redis.set(keys.failed(task_id), json.dumps(failure, default=str))
    return True


def history(rt: Runtime, task_id: str) -> list[dict[str, Any]]:
    ledger.ensure_loaded(rt)  # after a wipe, the history comes back from origin first
    return [json.loads(x) for x in rt.redis.lrange(keys.history(task_id), 0, -1)]


def reap(rt: Runtime) -> list[str]:
    """Finish the attempts whose lease is gone (worker killed, stalled or cut off); their tasks are free again."""
    ledger.ensure_loaded(rt)
    ledger.flush(rt)
    return [keys.text(t) for t in rt.redis.hkeys(keys.ACTIVE) if reap_task(rt, keys.text(t))]


def reap_task(rt: Runtime, task_id: str) -> bool:
    """Finish the task's in-flight attempt if its lease is gone or replaced: record it as lost, kill its agent."""
    value = rt.redis.eval(_REAP, 2, keys.ACTIVE, keys.lease(task_id), task_id)
    if not value:
        return False
    entry = json.loads(value)
    _kill_agent(task_id, entry.pop("agent", ""))
    entry.pop("lease", None)
    reason = "lease expired: the worker died, stalled or lost Redis before finishing"
    failed = _record(rt, task_id, {**entry, "outcome": "lost", "reason": "lost", "detail": reason}, counts=True)
    rt.events.emit(task_id, "failed" if failed else "lost", reason=reason, worker=entry.get("worker"))
    return True


def _kill_agent(task_id: str, where: str) -> None:
    host, _, pgid = where.rpartition(":")
    if host == socket.gethostname() and pgid.isdigit() and proc.kill_orphan(int(pgid), f"SWARM_TASK_ID={task_id}"):
        log.warning("killed the orphaned agent of %s (process group %s)", task_id, pgid)


def sweep_host(rt: Runtime) -> dict[str, int]:
    """Clean up after this host's dead worker processes: their agents and oracles, worktrees and workspaces."""
    host = socket.gethostname()
    killed = proc.sweep_orphans(host, identity.swarm_id(rt.settings))
    removed = 0
    dead = re.compile(rf"-{re.escape(host)}-(\d+)-[0-9a-f]{{6}}$")
    folder = rt.workdir / "worktrees"
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        match = dead.search(path.name)
        if match and not proc.alive(int(match.group(1))):
            rt.mirror.remove_worktree(path)
            removed += 1
    spaces = rt.workdir / "workspaces"  # agents' standalone repositories (and the swarm's index beside each)
    for path in sorted(spaces.iterdir()) if spaces.is_dir() else []:
        match = dead.search(path.name.removeprefix(".").removesuffix(".swarm-index"))
        if match and not proc.alive(int(match.group(1))):
            if path.is_dir():
                shutil.rmtree(path)
                removed += 1
            else:
                path.unlink()
    if killed or removed:
        log.warning("swept %d process(es) and %d worktree(s) of dead workers on %s", len(killed), removed, host)
    return {"processes": len(killed), "worktrees": removed}
