"""`swarm report --out DIR`: one self-contained HTML page (DIR/index.html, inline SVG) about a run, from git and Redis.

git gives main's commits with their trailers and times (landings, coordination commits); Redis gives the oracle
counts cached for each commit of main, the attempt counters, the events stream (where the time goes) and spend.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from swarm import audit, svg
from swarm.runtime import Runtime
from swarm.timeline import spans

log = logging.getLogger(__name__)

TRAILER = "%(trailers:key={},valueonly,separator=)"
KIND_ORDER = ("agent", "oracle", "waiting", "queued", "setup", "git", "other")
KIND_NAMES = {
    "agent": "agent running",
    "oracle": "oracle (baseline, fast, full)",
    "waiting": "waiting for the merge lock",
    "queued": "queued, waiting for a slot",
    "setup": "lease, fetch, worktree",
    "git": "rebase and push",
    "other": "other",
}


@dataclass
class Commit:
    sha: str
    at: float
    task: str
    agent: str
    human: str
    subject: str
    counts: dict[str, Any] | None = None
    coordination: list[str] = field(default_factory=list)


@dataclass
class RunData:
    """Everything the report shows, gathered once."""

    main: str
    commits: list[Commit]
    landed: set[str]
    """Commits that landed a task (refs/swarm/landed/<task> points to them): the truth, unlike trailers alone."""
    counters: dict[str, int]
    time_by_kind: dict[str, float]
    time_by_vendor: dict[str, dict[str, float]]
    spend: dict[str, dict[str, float]]
    made_at: float = field(default_factory=time.time)

    @property
    def landings(self) -> list[Commit]:
        return [c for c in self.commits if c.sha in self.landed]

    @property
    def coordination(self) -> list[Commit]:
        return [c for c in self.commits if c.coordination]


def gather(rt: Runtime) -> RunData:
    main = rt.mirror.fetch()
    commits = _commits(rt, main)
    known = rt.baselines.get_many([c.sha for c in commits])
    for commit in commits:
        counts = known.get(commit.sha)
        commit.counts = counts.to_dict() if counts is not None else None
    by_kind: dict[str, float] = collections.defaultdict(float)
    by_vendor: dict[str, dict[str, float]] = collections.defaultdict(lambda: collections.defaultdict(float))
    for span in spans(rt.events.all()):
        by_kind[span.kind] += span.seconds
        if span.vendor:
            by_vendor[span.vendor][span.kind] += span.seconds
    return RunData(
        main=main,
        commits=commits,
        landed=set(rt.mirror.landed().values()),
        counters=rt.events.counters(),
        time_by_kind=dict(by_kind),
        time_by_vendor={v: dict(k) for v, k in by_vendor.items()},
        spend={v: rt.ledger.spend_total(v) for v in rt.settings.vendors},
    )


def _commits(rt: Runtime, main: str) -> list[Commit]:
    """main's commits, oldest first, with their trailers and the coordination files they touched."""
    fields = ["%H", "%ct", *(TRAILER.format(k) for k in ("Swarm-Task", "Swarm-Agent", "Swarm-Human")), "%s"]
    out = []
    for line in reversed(rt.mirror.log(main, "%x00".join(fields))):
        sha, at, task, agent, human, subject = line.split("\0")
        commit = Commit(sha, float(at), task.strip(), agent.strip(), human.strip(), subject)
        commit.coordination = [p for p in rt.mirror.touched_by(sha) if audit.COORDINATION_PATH.search(p)]
        out.append(commit)
    return out


def _json(raw: bytes | str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    value = json.loads(raw)
    return value if isinstance(value, dict) else None


# --- the charts ---


def passing_chart(data: RunData) -> str:
    """main's passing count at each commit whose full oracle result is known, in total and per area."""
    series: dict[str, list[svg.Point]] = {"total": []}
    areas: dict[str, list[svg.Point]] = collections.defaultdict(list)
    for c in data.commits:
        if not c.counts:
            continue
        series["total"].append((c.at, float(c.counts.get("passed", 0))))
        for area, values in (c.counts.get("areas") or {}).items():
            if isinstance(values, dict):
                areas[area].append((c.at, float(values.get("passed", 0))))
    series.update(sorted(areas.items()))
    if not series["total"]:
        series.clear()
    return svg.lines(series, "main's passing count over time (full oracle, per area)", "cases passing")


def landings_chart(data: RunData) -> str:
    """Landings per vendor, cumulative, over time."""
    series: dict[str, list[svg.Point]] = collections.defaultdict(list)
    count: collections.Counter[str] = collections.Counter()
    # vendors in name order, each line starting at 0
    landings = data.landings
    if landings:  # every vendor's line starts at 0 when the swarm began: main's last commit before its first landing
        before = [c.at for c in data.commits if c.at <= landings[0].at and c.sha not in data.landed]
        for vendor in sorted({c.agent for c in landings}):
            series[vendor].append((before[-1] if before else landings[0].at, 0.0))
    for c in landings:
        count[c.agent] += 1
        series[c.agent].append((c.at, float(count[c.agent])))
    return svg.lines(series, "tasks landed per vendor over time", "landed")


def outcomes_chart(data: RunData) -> str:
    items = [("landed", float(data.counters.get("landed", 0)))]
    for name, value in sorted(data.counters.items()):
        if name.startswith("rejected:"):
            reason = name.removeprefix("rejected:")
            items.append((f"lost: {reason}" if reason == "lost" else f"rejected: {reason}", float(value)))
    return svg.bars(items, "attempts by outcome", "")


def time_chart(data: RunData) -> str:
    items = [(KIND_NAMES[k], data.time_by_kind[k]) for k in KIND_ORDER if data.time_by_kind.get(k)]
    return svg.bars(items, "where the time goes (seconds, all attempts)", "s")


def spend_chart(data: RunData) -> str:
    items = [(vendor, float(s.get("cost_usd", 0.0))) for vendor, s in sorted(data.spend.items())]
    return svg.bars(items, "spend per vendor (USD)", "$")


# --- the page ---

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:760px;color:#1d2430;background:#fafbfc}
h1{font-size:22px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 8px}
.meta{color:#5b6472;font-size:12px} table{border-collapse:collapse;width:100%;font-size:13px}
td,th{border-bottom:1px solid #e3e6ea;padding:4px 6px;text-align:left} th{color:#5b6472;font-weight:600}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:16px 0}
.card{background:#fff;border:1px solid #e3e6ea;border-radius:8px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:22px} svg{background:#fff;border:1px solid #e3e6ea;border-radius:8px;margin:6px 0}
svg .title{font-weight:600;font-size:13px;fill:#1d2430} svg .tick{font-size:11px;fill:#5b6472}
svg .label{font-size:12px;fill:#1d2430} svg .value{font-size:12px;fill:#1d2430} svg .grid{stroke:#eef0f3}
code{font-size:12px}
"""


def render(data: RunData) -> str:
    landed = data.landings
    with_counts = [c for c in data.commits if c.counts]
    first, last = (with_counts[0].counts, with_counts[-1].counts) if with_counts else (None, None)
    rejected = sum(v for k, v in data.counters.items() if k.startswith("rejected:"))
    cards = [
        ("tasks landed", str(len(landed))),
        ("attempts rejected or lost", str(rejected)),
        ("main passing", f"{_passed(first)} → {_passed(last)}"),
        ("coordination commits", str(len(data.coordination))),
        ("spend", f"${sum(s.get('cost_usd', 0.0) for s in data.spend.values()):,.2f}"),
    ]
    made = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(data.made_at))
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>swarm run report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>swarm run report</h1>",
        f"<div class='meta'>main at <code>{data.main[:12]}</code>, {len(data.commits)} commits; made {made}</div>",
        "<div class='cards'>"
        + "".join(f"<div class='card'><b>{escape(v)}</b>{escape(k)}</div>" for k, v in cards)
        + "</div>",
        "<h2>main's passing count</h2>",
        passing_chart(data),
        "<h2>landings</h2>",
        landings_chart(data),
        "<h2>attempts</h2>",
        outcomes_chart(data),
        "<h2>where the time goes</h2>",
        time_chart(data),
        _time_table(data),
        "<h2>spend</h2>",
        spend_chart(data),
        _spend_table(data),
        "<h2>commits on main</h2>",
        _commit_table(data),
        "</body></html>",
    ]
    return "\n".join(parts)


def _passed(counts: dict[str, Any] | None) -> str:
    return "?" if not counts else str(counts.get("passed", "?"))


def _time_table(data: RunData) -> str:
    kinds = [k for k in KIND_ORDER if any(v.get(k) for v in data.time_by_vendor.values())]
    if not kinds:
        return ""
    head = "".join(f"<th>{escape(k)} (s)</th>" for k in kinds)
    rows = "".join(
        f"<tr><td>{escape(v)}</td>" + "".join(f"<td>{t.get(k, 0.0):,.1f}</td>" for k in kinds) + "</tr>"
        for v, t in sorted(data.time_by_vendor.items())
    )
    return f"<table><tr><th>vendor</th>{head}</tr>{rows}</table>"


def _spend_table(data: RunData) -> str:
    rows = "".join(
        f"<tr><td>{escape(v)}</td><td>{int(s.get('attempts', 0))}</td><td>{int(s.get('input_tokens', 0)):,}</td>"
        f"<td>{int(s.get('output_tokens', 0)):,}</td><td>${float(s.get('cost_usd', 0.0)):,.4f}</td></tr>"
        for v, s in sorted(data.spend.items())
    )
    head = "<tr><th>vendor</th><th>agent runs</th><th>input tokens</th><th>output tokens</th><th>USD</th></tr>"
    return f"<table>{head}{rows}</table>"


def _commit_table(data: RunData) -> str:
    rows = []
    for c in reversed(data.commits[-200:]):
        who = c.agent or ("person: " + c.human if c.human else "person")
        note = ("coordination files: " + ", ".join(c.coordination)) if c.coordination else ""
        rows.append(
            f"<tr><td><code>{c.sha[:10]}</code></td><td>{time.strftime('%H:%M:%S', time.gmtime(c.at))}</td>"
            f"<td>{escape(c.task)}</td><td>{escape(who)}</td><td>{_passed(c.counts)}</td>"
            f"<td>{escape(c.subject[:60])} {escape(note)}</td></tr>"
        )
    head = "<tr><th>commit</th><th>UTC</th><th>task</th><th>by</th><th>passing</th><th>subject</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def write(rt: Runtime, out: Path) -> Path:
    """Gather the run's data and write DIR/index.html; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    page = out / "index.html"
    page.write_text(render(gather(rt)), encoding="utf-8")
    return page
