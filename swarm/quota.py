"""Vendor quota shared through Redis: rate-limit cooldowns, auth errors and the spend ledger.

A rate-limited run cools its vendor down for every worker (until the reset time the CLI gave, else an exponential
backoff with jitter); an auth error parks the vendor for a while; tokens and cost are added up per attempt's vendor,
task and UTC day, and a daily cap stops new attempts once reached. `VendorLedger` is the door to these keys.
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
from swarm.coordination import Door, guarded

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
# KEYS: park, probe owed. ARGV: park value, seconds. Claims the probe: parked again while this worker probes.
_CLAIM_PROBE = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


def backoff(attempt_no: int) -> float:
    """Seconds of the n-th rate limit in a row: doubling from BACKOFF_BASE up to BACKOFF_CAP, half of it jitter."""
    delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempt_no - 1))
    return float(delay / 2 + random.uniform(0, delay / 2))


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


class VendorLedger(Door):
    """The only holder of cooldowns, auth errors and spend; what the pipeline, dispatch and status ask."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(client)
        self._cool = self.r.register_script(_COOL)
        self._claim_probe = self.r.register_script(_CLAIM_PROBE)

    # --- cooldowns ---

    @guarded
    def cool_down(
        self, vendor: str, until_ts: float | None = None, attempt_no: int | None = None, reason: str = ""
    ) -> float:
        """Stop the vendor until `until_ts` (from the CLI), else for a backoff; returns when the cooldown ends.

        `attempt_no` is the number of rate limits in a row; counted in Redis when not given. Concurrent calls never
        shorten a cooldown another worker set.
        """
        now = time.time()
        streak = attempt_no if attempt_no is not None else self._bump_streak(vendor)
        until = min(until_ts, now + MAX_COOLDOWN) if until_ts and until_ts > now else now + backoff(streak)
        value = json.dumps({"until": until, "reason": reason, "streak": streak, "at": now})
        stored = json.loads(self._cool(keys=[keys.cooldown(vendor)], args=[repr(until), value, repr(now)]))
        log.warning("vendor %s cools down for %.0fs: %s", vendor, stored["until"] - now, reason or "rate limited")
        return float(stored["until"])

    def _bump_streak(self, vendor: str) -> int:
        pipe = self.r.pipeline()
        pipe.incr(keys.cooldown_streak(vendor))
        pipe.expire(keys.cooldown_streak(vendor), STREAK_TTL)
        return int(pipe.execute()[0])

    @guarded
    def cooling(self, vendor: str) -> float | None:
        """Seconds left of the vendor's cooldown, or None when it may run."""
        info = _json(self.r.get(keys.cooldown(vendor)))
        left = float(info.get("until", 0)) - time.time() if info else 0.0
        return left if left > 0 else None

    @guarded
    def cooldown_info(self, vendor: str) -> dict[str, Any] | None:
        """The cooldown record {until, reason, streak, at}, or None."""
        return _json(self.r.get(keys.cooldown(vendor)))

    @guarded
    def streak(self, vendor: str) -> int:
        """Rate limits of the vendor in a row."""
        return int(self.r.get(keys.cooldown_streak(vendor)) or 0)

    # --- auth errors ---

    @guarded
    def mark_auth_error(self, vendor: str, message: str) -> None:
        """Park the vendor: its CLI could not log in (or bill, or find its model...), so attempts would fail the
        same way; once the park ends, a probe must pass before real tasks go to it again."""
        pipe = self.r.pipeline()
        pipe.set(keys.auth_error(vendor), json.dumps({"message": message, "at": time.time()}), ex=AUTH_ERROR_TTL)
        pipe.set(keys.vendor_probe(vendor), "1", ex=PROBE_OWED_TTL)
        pipe.execute()
        log.error("vendor %s is parked: %s", vendor, message)

    @guarded
    def auth_error(self, vendor: str) -> str | None:
        """The message of the vendor's auth error, or None."""
        info = _json(self.r.get(keys.auth_error(vendor)))
        return str(info.get("message", "")) if info else None

    @guarded
    def auth_error_ttl(self, vendor: str) -> int:
        """Seconds until the vendor's auth error expires (negative when there is none)."""
        return int(self.r.ttl(keys.auth_error(vendor)))

    @guarded
    def note_ok(self, vendor: str) -> None:
        """A run that got through: the backoff starts over and any auth error is cleared."""
        self.r.delete(keys.cooldown_streak(vendor), keys.auth_error(vendor), keys.vendor_probe(vendor))

    @guarded
    def clear(self, vendor: str) -> None:
        """Forget the vendor's cooldown, streak and auth error (an operator fixed it)."""
        names = (
            keys.cooldown(vendor),
            keys.cooldown_streak(vendor),
            keys.auth_error(vendor),
            keys.vendor_probe(vendor),
        )
        self.r.delete(*names)

    @guarded
    def claim_probe(self, vendor: str, seconds: float = PROBE_TIMEOUT) -> bool:
        """True for the one worker that is to probe a vendor whose park ended; the others see it parked meanwhile."""
        value = json.dumps({"message": "a probe is checking whether the vendor works again", "at": time.time()})
        return bool(self._claim_probe(keys=[keys.auth_error(vendor), keys.vendor_probe(vendor)],
                                      args=[value, int(seconds) + 30]))  # fmt: skip

    def vendor_failed(self, vendor: str, result: AgentResult) -> float | None:
        """A vendor-level failure: cool the vendor down when it passes on its own (rate limit, overload, network),
        park it otherwise (auth, billing, policy, model, CLI); returns a cooldown's end."""
        why = f"{result.reason}: {result.message}" if result.reason else result.message
        if result.outcome == "rate_limited" or result.reason in taxonomy.TRANSIENT:
            until = time.time() + result.retry_after if result.retry_after is not None else None
            return self.cool_down(vendor, until, reason=why)
        self.mark_auth_error(vendor, why)
        return None

    def gate(self, vendor: str, agent: Agent, home: Path, cap_usd: float | None = None) -> str | None:
        """Why the vendor may not start an attempt now, or None: blocked (cooldown, park, cap), its preflight fails
        (no CLI, no login: found without running it), or the probe owed since a park fails."""
        why = self.blocked(vendor, cap_usd)
        if why:
            return why
        preflight = getattr(agent, "preflight", None)
        early = preflight(home) if callable(preflight) else None
        if early is not None:
            self.vendor_failed(vendor, early)
            return f"preflight: {early.reason}: {early.message}"
        probe = getattr(agent, "probe", None)
        if callable(probe) and self.claim_probe(vendor):
            result = probe(home, PROBE_TIMEOUT)
            if result.outcome not in ("ok", "no_change"):
                self.vendor_failed(vendor, result)
                return f"probe failed: {result.reason}: {result.message}"
            self.note_ok(vendor)
            log.info("vendor %s passed its probe: active again", vendor)
        return None

    @guarded
    def pause(self, vendor: str) -> None:
        """No new attempt starts on the vendor until `resume` (see controls.py)."""
        self.r.set(keys.paused(vendor), str(time.time()))

    @guarded
    def resume(self, vendor: str) -> None:
        self.r.delete(keys.paused(vendor))

    @guarded
    def paused(self, vendor: str) -> bool:
        return bool(self.r.exists(keys.paused(vendor)))

    # --- the spend ledger ---

    @guarded
    def record_spend(self, vendor: str, task_id: str, result: AgentResult) -> dict[str, Any]:
        """Add one attempt's tokens and cost to its vendor's day and total and to its task; returns what was added."""
        spend: dict[str, Any] = {k: getattr(result, k) for k in (*TOKEN_FIELDS, "cost_usd")}
        spend = {k: v for k, v in spend.items() if v}
        pipe = self.r.pipeline()
        for key in (keys.spend_day(vendor, today()), keys.spend_total(vendor), keys.spend_task(task_id)):
            for name in TOKEN_FIELDS:
                pipe.hincrby(key, name, int(spend.get(name, 0)))
            pipe.hincrbyfloat(key, "cost_usd", float(spend.get("cost_usd", 0.0)))
            pipe.hincrby(key, "attempts", 1)
        pipe.hincrbyfloat(keys.spend_task(task_id), f"cost_usd:{vendor}", float(spend.get("cost_usd", 0.0)))
        pipe.expire(keys.spend_day(vendor, today()), SPEND_TTL)
        pipe.execute()
        return spend

    @guarded
    def restore_spend(self, sums: dict[str, dict[str, float]]) -> None:
        """Put back spend hashes (named by keys.spend_*) that Redis lost; one it holds again is left as it is."""
        for key, values in sums.items():
            if self.r.exists(key):
                continue
            pipe = self.r.pipeline()
            for name, value in values.items():
                pipe.hset(key, name, value if name.startswith("cost_usd") else int(value))
            if ":spend:" in key:
                pipe.expire(key, SPEND_TTL)
            pipe.execute()

    @guarded
    def spend(self, vendor: str, day: str | None = None) -> dict[str, float]:
        """A vendor's tokens, cost and attempts on a UTC day (today by default)."""
        return numbers(self.r.hgetall(keys.spend_day(vendor, day or today())))

    @guarded
    def spend_total(self, vendor: str) -> dict[str, float]:
        return numbers(self.r.hgetall(keys.spend_total(vendor)))

    @guarded
    def task_spend(self, task_id: str) -> dict[str, float]:
        """A task's tokens, cost and attempts over all its attempts, with `cost_usd:<vendor>` per vendor."""
        return numbers(self.r.hgetall(keys.spend_task(task_id)))

    @guarded
    def task_spends(self, task_ids: list[str]) -> dict[str, dict[str, float]]:
        """task_spend of each task, in one round trip (tasks without spend left out)."""
        pipe = self.r.pipeline()
        for task_id in task_ids:
            pipe.hgetall(keys.spend_task(task_id))
        return {t: numbers(raw) for t, raw in zip(task_ids, pipe.execute(), strict=True) if raw}

    @guarded
    def spent_today(self, vendor: str) -> float:
        """USD the vendor cost today (UTC)."""
        return float(self.r.hget(keys.spend_day(vendor, today()), "cost_usd") or 0.0)

    def over_cap(self, vendor: str, cap_usd: float | None) -> bool:
        """True once today's spend reached the vendor's daily cap (no cap: never)."""
        return cap_usd is not None and self.spent_today(vendor) >= cap_usd

    # --- what the pipeline, dispatch and status ask ---

    def after_run(self, vendor: str, task_id: str, result: AgentResult) -> float | None:
        """Book one agent run: its spend, then a cooldown, an auth error or a clean slate; returns a cooldown's end."""
        self.record_spend(vendor, task_id, result)
        if result.fault == "vendor" or result.outcome in ("rate_limited", "auth_error"):
            return self.vendor_failed(vendor, result)
        if result.outcome in ("ok", "no_change"):
            self.note_ok(vendor)
        return None

    def blocked(self, vendor: str, cap_usd: float | None = None) -> str | None:
        """Why the vendor may not start an attempt now (auth error, cooldown, daily cap), or None."""
        state = self.vendor_state(vendor, cap_usd)
        return None if state["state"] == "active" else str(state["detail"])

    def vendor_state(self, vendor: str, cap_usd: float | None = None) -> dict[str, Any]:
        """One vendor's state for `status`: active, cooling (until), auth_error or over_cap, and today's spend."""
        today_spend = self.spend(vendor)
        base = {"spent_today": today_spend.get("cost_usd", 0.0), "cap_usd": cap_usd, "today": today_spend}
        if self.paused(vendor):
            return {**base, "state": "paused", "detail": "paused with `swarm pause`; `swarm resume` starts it again"}
        message = self.auth_error(vendor)
        if message is not None:
            return {**base, "state": "auth_error", "detail": f"auth error: {message}"}
        left = self.cooling(vendor)
        if left is not None:
            info = self.cooldown_info(vendor) or {}
            until = time.strftime("%H:%M:%S", time.localtime(float(info.get("until", 0))))
            detail = f"cooling until {until} ({left:.0f}s left): {info.get('reason') or 'rate limited'}"
            return {**base, "state": "cooling", "until": info.get("until"), "seconds_left": left, "detail": detail}
        if self.over_cap(vendor, cap_usd):
            detail = f"over its daily cap: ${base['spent_today']:.2f} of ${cap_usd:.2f} spent today (UTC)"
            return {**base, "state": "over_cap", "detail": detail}
        return {**base, "state": "active", "detail": "active"}

    def vendor_states(
        self, vendors: Iterable[str], caps: Mapping[str, float | None] | None = None
    ) -> dict[str, dict[str, Any]]:
        """vendor_state of each vendor, by name."""
        return {v: self.vendor_state(v, (caps or {}).get(v)) for v in vendors}


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
