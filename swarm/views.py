"""What the terminal shows: the `swarm status` tables and `swarm history` (the live view is in watch.py)."""

from __future__ import annotations

import logging
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from swarm import prompt

log = logging.getLogger(__name__)


def _cost(spend: dict[str, Any] | None) -> str:
    if not spend:
        return ""
    tokens = f"{spend.get('input_tokens', 0)}/{spend.get('output_tokens', 0)} tok"
    return f"${spend.get('cost_usd', 0):.2f} {tokens}"


def print_status(console: Console, report: dict[str, Any]) -> None:
    """The `swarm status` tables: tasks, vendors, last landings."""
    oracle = report["oracle"] or {}
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report["counts"].items()))
    console.print(f"main {report['main'][:12]}  oracle: passed {oracle.get('passed', '?')} failed "
                  f"{oracle.get('failed', '?')}  tasks: {counts}")  # fmt: skip
    if report["repo_error"]:
        console.print(f"[red]{escape(report['repo_error'])}[/]", highlight=False)
    table = Table("task", "state", "pri", "vendor", "attempts", "cost", "detail")
    colors = {
        "landed": "green",
        "failed": "red",
        "invalid": "red",
        "leased": "cyan",
        "queued": "blue",
        "blocked": "dim",
    }
    for row in report["tasks"]:
        detail = row.get("reason") or ""
        if "lease" in row:
            detail = f"{row['lease']['worker']} ({row['lease']['ms_left'] / 1000:.0f}s left)"
        elif "failure" in row:
            detail = f"{row['failure'].get('reason')}: {row['failure'].get('detail')}"
        elif row["state"] == "blocked":
            detail = "waits for " + ", ".join(row["depends_on"])
        color = colors.get(row["state"], "white")
        table.add_row(escape(row["id"]), f"[{color}]{row['state']}[/]", str(row.get("priority", "")),
                      row.get("lease", {}).get("vendor") or row.get("queued_on") or row.get("vendor") or "",
                      str(row.get("attempts", "")), _cost(row.get("spend")), escape(detail[:100]))  # fmt: skip
    console.print(table)
    vendors = Table("vendor", "state", "tokens in/out today", "spent today", "total spent")
    for name, info in report["vendors"].items():
        today, total = info.get("today", {}), info.get("total", {})
        cap = f" of ${info['cap_usd']:.2f}" if info.get("cap_usd") else ""
        state_text = info["state"] if info["state"] == "active" else f"[red]{info['detail']}[/]"
        vendors.add_row(name, state_text, f"{today.get('input_tokens', 0)}/{today.get('output_tokens', 0)}",
                        f"${info.get('spent_today', 0):.2f}{cap}", f"${total.get('cost_usd', 0):.2f}")  # fmt: skip
    console.print(vendors)
    for landing in report["landings"][:5]:
        when = time.strftime("%H:%M:%S", time.localtime(landing["at"]))
        console.print(f"landed {landing['task']} as {landing['commit'][:12]} by {landing['vendor']} at {when} "
                      f"(passed {landing.get('passed')})")  # fmt: skip


def print_history(console: Console, task_id: str, records: list[dict[str, Any]]) -> None:
    """`swarm history`: each attempt with how it ended and why, its duration, cost, commit and oracle counts
    against main's, its log folder, and the tail of its failing oracle output."""
    if not records:
        console.print(f"{task_id}: no attempt recorded yet")
        return
    for n, rec in enumerate(records, 1):
        ended = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(rec.get("ended", 0)))
        why = f"{rec.get('reason')}: {rec.get('detail')}" if rec.get("detail") else rec.get("reason") or ""
        console.print(f"#{n} {ended} {rec.get('vendor')} on {rec.get('worker')}: {rec.get('outcome')} {why}",
                      highlight=False)  # fmt: skip
        facts = [_took(rec), _cost(rec.get("agent")), _oracle(rec)]
        if rec.get("commit"):
            facts.append(f"commit {str(rec['commit'])[:12]}")
        facts += [_models(rec), _resume(rec)]
        if any(facts):
            console.print("   " + "; ".join(f for f in facts if f), highlight=False)
        console.print(f"   logs: {rec.get('log_dir')}", highlight=False)
        if rec.get("outcome") != "landed" and str(rec.get("reason", "")).startswith("oracle"):
            tail = prompt.oracle_tail(rec.get("log_dir"), lines=8)
            if tail:
                console.print(escape("   | " + tail.replace("\n", "\n   | ")), highlight=False)


def _models(rec: dict[str, Any]) -> str:
    """The models that answered, as the CLI reported them, and the one asked for when none of them is it (the CLI
    fell back to another)."""
    agent = _field(rec, "agent")
    models = agent.get("models") or rec.get("models")
    if not isinstance(models, list) or not models:
        return ""
    asked = agent.get("model_asked")
    other = f" (asked for {asked})" if asked and not any(str(asked) in str(m) for m in models) else ""
    return f"models {', '.join(map(str, models))}{other}"


def _resume(rec: dict[str, Any]) -> str:
    """Whether the attempt went on from a cut attempt's work, and whether it kept its own for the next one."""
    facts = []
    resumed = _field(rec, "resumed")
    if resumed.get("fresh"):
        facts.append(f"started fresh: kept work unusable ({resumed['fresh']})")
    elif resumed.get("from"):
        session = f", session {resumed['session']}" if resumed.get("session") else ", new session"
        facts.append(f"resumed {str(resumed['from'])[:12]}{session}")
    kept = _field(rec, "wip")
    if kept.get("commit"):
        session = f" with session {kept['session']}" if kept.get("session") else ""
        facts.append(f"work kept as {str(kept['commit'])[:12]}{session}")
    return "; ".join(facts)


def _field(rec: dict[str, Any], name: str) -> dict[str, Any]:
    value = rec.get(name)
    return value if isinstance(value, dict) else {}


def _took(rec: dict[str, Any]) -> str:
    if not rec.get("started") or not rec.get("ended"):
        return ""
    return f"took {float(rec['ended']) - float(rec['started']):.0f}s"


def _oracle(rec: dict[str, Any]) -> str:
    """The attempt's last oracle counts, with the change against main's (its baseline) when known."""
    tier = "full" if isinstance(rec.get("full"), dict) else "fast" if isinstance(rec.get("fast"), dict) else ""
    if not tier:
        return ""
    passed = int(rec[tier].get("passed", 0))
    base = rec.get("baseline") if isinstance(rec.get("baseline"), dict) else None
    delta = f" ({passed - int(base.get('passed', 0)):+d} vs main)" if base else ""
    return f"{tier} oracle: {passed} passed, {rec[tier].get('failed')} failed{delta}"
