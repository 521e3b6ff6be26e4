"""When a rate-limited vendor may be tried again, from the wordings its CLI uses (seconds, clock times, epochs)."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo


def retry_after(text: str, now: float | None = None) -> float | None:
    """Seconds until the vendor says to try again, from the usual wordings; None when the text gives no time."""
    now = time.time() if now is None else now
    for parse in (_retry_in, _reset_after, _epoch_after_bar, _try_again_at, _resets_clock):
        seconds = parse(text, now)
        if seconds is not None:
            return max(0.0, seconds)
    return None


def _unit(name: str) -> float:
    name = name.lower()
    if name == "ms":
        return 0.001
    return {"s": 1.0, "m": 60.0, "h": 3600.0}[name[0]]


def _retry_in(text: str, now: float) -> float | None:
    m = re.search(r'"retryDelay"\s*:\s*"([\d.]+)(s)"', text)
    m = m or re.search(r"(?:retry|try again) (?:in|after) ([\d.]+)\s*(ms|s|secs?|seconds?|m|mins?|minutes?|h|hours?)\b",
                       text, re.IGNORECASE)  # fmt: skip
    return float(m.group(1)) * _unit(m.group(2)) if m else None


def _reset_after(text: str, now: float) -> float | None:
    m = re.search(r"reset (?:after|in) (?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text, re.IGNORECASE)
    if not m or not any(m.groups()):
        return None
    h, mi, s = (int(g or 0) for g in m.groups())
    return float(h * 3600 + mi * 60 + s)


def _epoch_after_bar(text: str, now: float) -> float | None:
    m = re.search(r"limit reached\|(\d{10,13})", text)  # claude's older "Claude AI usage limit reached|<epoch>"
    return epoch(int(m.group(1))) - now if m else None


def _try_again_at(text: str, now: float) -> float | None:
    m = re.search(r"try again at ([A-Za-z0-9 ,:]+?(?:[AP]M)\b)", text, re.IGNORECASE)
    if not m:
        return None
    when = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", m.group(1)).replace(",", " ")
    when = " ".join(when.split()).upper()
    local = datetime.fromtimestamp(now)
    for fmt in ("%b %d %Y %I:%M %p", "%B %d %Y %I:%M %p", "%I:%M %p", "%I %p"):
        try:
            parsed = datetime.strptime(when, fmt)
        except ValueError:
            continue
        if "%Y" not in fmt:  # a time of day only: today, or tomorrow if already past
            parsed = local.replace(hour=parsed.hour, minute=parsed.minute, second=0, microsecond=0)
            if parsed.timestamp() < now:
                parsed += timedelta(days=1)
        return parsed.timestamp() - now
    return None


def _resets_clock(text: str, now: float) -> float | None:
    m = re.search(r"resets (?:at )?(\d{1,2})(?::(\d\d))?\s*(am|pm)(?:\s*\(([\w/+-]+)\))?", text, re.IGNORECASE)
    if not m:
        return None
    try:
        zone = ZoneInfo(m.group(4)) if m.group(4) else None
    except (KeyError, ValueError):
        zone = None
    local = datetime.fromtimestamp(now, zone)
    hour = int(m.group(1)) % 12 + (12 if m.group(3).lower() == "pm" else 0)
    when = local.replace(hour=hour, minute=int(m.group(2) or 0), second=0, microsecond=0)
    if when.timestamp() < now:
        when += timedelta(days=1)
    return when.timestamp() - now


def epoch(value: float) -> float:
    """Unix seconds from a timestamp that may be in milliseconds."""
    return value / 1000 if value > 1e11 else float(value)
