"""Vendor quota shared through Redis: rate-limit cooldowns, auth errors and the spend ledger.

A rate-limited run cools its vendor down for every worker (until the reset time the CLI gave, else an exponential
backoff with jitter); an auth error parks the vendor for a while; tokens and cost are added up per attempt's vendor,
task and UTC day, and a daily cap stops new attempts once reached. Functions take a Redis client; no Celery here.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import redis

from swarm import keys
from swarm.agents import taxonomy
from swarm.agents.base import Agent, AgentResult

log = logging.getLogger(__name__)

BACKOFF_BASE = 30.0
"""Seconds of the first cooldown when the CLI gave no reset time; doubled on each rate limit in a row."""
BACKOFF_CAP = 1800.0
MAX_COOLDOWN = 7 * 86400.0
"""Longest cooldown taken from a CLI's reset time (weekly limits exist; anything later is a parsing mistake)."""
STREAK_TTL = 3600
AUTH_ERROR_TTL = 600
"""Seconds a vendor stays parked after an auth error (or any lasting vendor failure); then a probe tries it."""
PROBE_OWED_TTL = 7 * 86400
PROBE_TIMEOUT = 90.0
"""Seconds a probe (a trivial real run of the CLI) may take; the vendor stays parked meanwhile."""
SPEND_TTL = 40 * 86400
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cached_tokens")

# KEYS: cooldown. ARGV: until (unix s), JSON value, now (unix s). A cooldown only ever grows.
_COOL = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, v = pcall(cjson.decode, cur)
  if ok and tonumber(v['until']) and tonumber(v['until']) >= tonumber(ARGV[1]) then return cur end
end
local ms = math.max(1, math.floor((tonumber(ARGV[1]) - tonumber(ARGV[3])) * 1000))
redis.call('SET', KEYS[1], ARGV[2], 'PX', ms)
return ARGV[2]
"""


# --- cooldowns ---


def backoff(attempt_no: int) -> float:
    """Seconds of the n-th rate limit in a row: doubling from BACKOFF_BASE up to BACKOFF_CAP, half of it jitter."""
    delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempt_no - 1))
    return float(delay / 2 + random.uniform(0, delay / 2))


def cool_down(
    r: redis.Redis, vendor: str, until_ts: float | None = None, attempt_no: int | None = None, reason: str = ""
) -> float:
    """Stop the vendor until `until_ts` (from the CLI), else for a backoff; returns when the cooldown ends.

    `attempt_no` is the number of rate limits in a row; counted in Redis when not given. Concurrent calls never
    shorten a cooldown another worker set.
    """
    now = time.time()
    streak = attempt_no if attempt_no is not None else _bump_streak(r, vendor)
    until = min(until_ts, now + MAX_COOLDOWN) if until_ts and until_ts > now else now + backoff(streak)
    value = json.dumps({"until": until, "reason": reason, "streak": streak, "at": now})
    stored = json.loads(r.eval(_COOL, 1, keys.cooldown(vendor), repr(until), value, repr(now)))
    log.warning("vendor %s cools down for %.0fs: %s", vendor, stored["until"] - now, reason or "rate limited")
    return float(stored["until"])


def _bump_streak(r: redis.Redis, vendor: str) -> int:
    pipe = r.pipeline()
    pipe.incr(keys.cooldown_streak(vendor))
    pipe.expire(keys.cooldown_streak(vendor), STREAK_TTL)
    return int(pipe.execute()[0])


def cooling(r: redis.Redis, vendor: str) -> float | None:
    """Seconds left of the vendor's cooldown, or None when it may run."""
    info = _json(r.get(keys.cooldown(vendor)))
    left = float(info.get("until", 0)) - time.time() if info else 0.0
    return left if left > 0 else None


def cooldown_info(r: redis.Redis, vendor: str) -> dict[str, Any] | None:
    """The cooldown record {until, reason, streak, at}, or None."""
    return _json(r.get(keys.cooldown(vendor)))


# --- auth errors ---


def mark_auth_error(r: redis.Redis, vendor: str, message: str) -> None:
    """Park the vendor: its CLI could not log in (or bill, or find its model...), so attempts would fail the same
    way; once the park ends, a probe must pass before real tasks go to it again."""
    pipe = r.pipeline()
    pipe.set(keys.auth_error(vendor), json.dumps({"message": message, "at": time.time()}), ex=AUTH_ERROR_TTL)
    pipe.set(keys.vendor_probe(vendor), "1", ex=PROBE_OWED_TTL)
    pipe.execute()
    log.error("vendor %s is parked: %s", vendor, message)


def auth_error(r: redis.Redis, vendor: str) -> str | None:
    """The message of the vendor's auth error, or None."""
    info = _json(r.get(keys.auth_error(vendor)))
    return str(info.get("message", "")) if info else None


def note_ok(r: redis.Redis, vendor: str) -> None:
    """A run that got through: the backoff starts over and any auth error is cleared."""
    r.delete(keys.cooldown_streak(vendor), keys.auth_error(vendor), keys.vendor_probe(vendor))


def clear(r: redis.Redis, vendor: str) -> None:
    """Forget the vendor's cooldown, streak and auth error (an operator fixed it)."""
    r.delete(keys.cooldown(vendor), keys.cooldown_streak(vendor), keys.auth_error(vendor), keys.vendor_probe(vendor))


# KEYS: park, probe owed. ARGV: park value, seconds. Claims the probe: parked again while this worker probes.
_CLAIM_PROBE = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


def claim_probe(r: redis.Redis, vendor: str, seconds: float = PROBE_TIMEOUT) -> bool:
    """True for the one worker that is to probe a vendor whose park ended; the others see it parked meanwhile."""
    value = json.dumps({"message": "a probe is checking whether the vendor works again", "at": time.time()})
    return bool(r.eval(_CLAIM_PROBE, 2, keys.auth_error(vendor), keys.vendor_probe(vendor), value,
                       int(seconds) + 30))  # fmt: skip


def vendor_failed(r: redis.Redis, vendor: str, result: AgentResult) -> float | None:
    """A vendor-level failure: cool the vendor down when it passes on its own (rate limit, overload, network),
    park it otherwise (auth, billing, policy, model, CLI); returns a cooldown's end."""
    why = f"{result.reason}: {result.message}" if result.reason else result.message
    if result.outcome == "rate_limited" or result.reason in taxonomy.TRANSIENT:
        until = time.time() + result.retry_after if result.retry_after is not None else None
        return cool_down(r, vendor, until, reason=why)
    mark_auth_error(r, vendor, why)
    return None


def gate(r: redis.Redis, vendor: str, agent: Agent, home: Path, cap_usd: float | None = None) -> str | None:
    """Why the vendor may not start an attempt now, or None: blocked (cooldown, park, cap), its preflight fails
    (no CLI, no login: found without running it), or the probe owed since a park fails."""
    why = blocked(r, vendor, cap_usd)
    if why:
        return why
    preflight = getattr(agent, "preflight", None)
    early = preflight(home) if callable(preflight) else None
    if early is not None:
        vendor_failed(r, vendor, early)
        return f"preflight: {early.reason}: {early.message}"
    probe = getattr(agent, "probe", None)
    if callable(probe) and claim_probe(r, vendor):
        result = probe(home, PROBE_TIMEOUT)
        if result.outcome not in ("ok", "no_change"):
            vendor_failed(r, vendor, result)
            return f"probe failed: {result.reason}: {result.message}"
        note_ok(r, vendor)
        log.info("vendor %s passed its probe: active again", vendor)
    return None


# --- the spend ledger ---


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def record_spend(r: redis.Redis, vendor: str, task_id: str, result: AgentResult) -> dict[str, Any]:
    """Add one attempt's tokens and cost to its vendor's day and total and to its task; returns what was added."""
    spend: dict[str, Any] = {k: getattr(result, k) for k in (*TOKEN_FIELDS, "cost_usd")}
    spend = {k: v for k, v in spend.items() if v}
    pipe = r.pipeline()
    for key in (keys.spend_day(vendor, today()), keys.spend_total(vendor), keys.spend_task(task_id)):
        for name in TOKEN_FIELDS:
            pipe.hincrby(key, name, int(spend.get(name, 0)))
        pipe.hincrbyfloat(key, "cost_usd", float(spend.get("cost_usd", 0.0)))
        pipe.hincrby(key, "attempts", 1)
    pipe.hincrbyfloat(keys.spend_task(task_id), f"cost_usd:{vendor}", float(spend.get("cost_usd", 0.0)))
    pipe.expire(keys.spend_day(vendor, today()), SPEND_TTL)
    pipe.execute()
    return spend


def spend(r: redis.Redis, vendor: str, day: str | None = None) -> dict[str, float]:
    """A vendor's tokens, cost and attempts on a UTC day (today by default)."""
    return numbers(r.hgetall(keys.spend_day(vendor, day or today())))


def spend_total(r: redis.Redis, vendor: str) -> dict[str, float]:
    return numbers(r.hgetall(keys.spend_total(vendor)))


def task_spend(r: redis.Redis, task_id: str) -> dict[str, float]:
    """A task's tokens, cost and attempts over all its attempts, with `cost_usd:<vendor>` per vendor."""
    return numbers(r.hgetall(keys.spend_task(task_id)))


def spent_today(r: redis.Redis, vendor: str) -> float:
    """USD the vendor cost today (UTC)."""
    return float(r.hget(keys.spend_day(vendor, today()), "cost_usd") or 0.0)


def over_cap(r: redis.Redis, vendor: str, cap_usd: float | None) -> bool:
    """True once today's spend reached the vendor's daily cap (no cap: never)."""
    return cap_usd is not None and spent_today(r, vendor) >= cap_usd


# --- what the pipeline, dispatch and status ask ---


def after_run(r: redis.Redis, vendor: str, task_id: str, result: AgentResult) -> float | None:
    """Book one agent run: its spend, then a cooldown, an auth error or a clean slate; returns a cooldown's end."""
    record_spend(r, vendor, task_id, result)
    if result.fault == "vendor" or result.outcome in ("rate_limited", "auth_error"):
        return vendor_failed(r, vendor, result)
    if result.outcome in ("ok", "no_change"):
        note_ok(r, vendor)
    return None


def blocked(r: redis.Redis, vendor: str, cap_usd: float | None = None) -> str | None:
    """Why the vendor may not start an attempt now (auth error, cooldown, daily cap), or None."""
    state = vendor_state(r, vendor, cap_usd)
    return None if state["state"] == "active" else str(state["detail"])


def vendor_state(r: redis.Redis, vendor: str, cap_usd: float | None = None) -> dict[str, Any]:
    """One vendor's state for `status`: active, cooling (until), auth_error or over_cap, and today's spend."""
    today_spend = spend(r, vendor)
    base = {"spent_today": today_spend.get("cost_usd", 0.0), "cap_usd": cap_usd, "today": today_spend}
    if r.exists(keys.paused(vendor)):
        return {**base, "state": "paused", "detail": "paused with `swarm pause`; `swarm resume` starts it again"}
    message = auth_error(r, vendor)
    if message is not None:
        return {**base, "state": "auth_error", "detail": f"auth error: {message}"}
    left = cooling(r, vendor)
    if left is not None:
        info = cooldown_info(r, vendor) or {}
        until = time.strftime("%H:%M:%S", time.localtime(float(info.get("until", 0))))
        detail = f"cooling until {until} ({left:.0f}s left): {info.get('reason') or 'rate limited'}"
        return {**base, "state": "cooling", "until": info.get("until"), "seconds_left": left, "detail": detail}
    if over_cap(r, vendor, cap_usd):
        detail = f"over its daily cap: ${base['spent_today']:.2f} of ${cap_usd:.2f} spent today (UTC)"
        return {**base, "state": "over_cap", "detail": detail}
    return {**base, "state": "active", "detail": "active"}


def pause(r: redis.Redis, vendor: str) -> None:
    """No new attempt starts on the vendor until `resume` (see controls.py)."""
    r.set(keys.paused(vendor), str(time.time()))


def resume(r: redis.Redis, vendor: str) -> None:
    r.delete(keys.paused(vendor))


def vendor_states(
    r: redis.Redis, vendors: Iterable[str], caps: Mapping[str, float | None] | None = None
) -> dict[str, dict[str, Any]]:
    """vendor_state of each vendor, by name."""
    return {v: vendor_state(r, v, (caps or {}).get(v)) for v in vendors}


def _json(raw: bytes | str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def numbers(raw: Mapping[Any, Any]) -> dict[str, float]:
    """A spend hash from Redis as numbers: token counts as ints, costs as floats."""
    out: dict[str, float] = {}
    for k, v in raw.items():
        key = k.decode() if isinstance(k, bytes) else str(k)
        value = float(v)
        out[key] = value if key.startswith("cost") or not value.is_integer() else int(value)
    return out
