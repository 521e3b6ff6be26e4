"""`swarm demo`: a fresh engine project built by three vendor queues of replay agents, start to summary."""

from __future__ import annotations

import collections
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from swarm import repo, report, session
from swarm.agents.replay import SHIPPED
from swarm.backlog import load_dir
from swarm.errors import SwarmError

log = logging.getLogger(__name__)
console = Console(soft_wrap=True)

VENDORS = ("claude", "codex", "gemini")
MARKER = ".swarm-demo"


def recorded_tasks(solutions: Path = SHIPPED) -> list[str]:
    return sorted({p.name.split(".", 1)[0] for p in solutions.glob("*.patch")})


def prepare(directory: Path, template: Path, solutions: Path = SHIPPED) -> Path:
    """A fresh project in `directory` (a previous demo there is replaced) and its swarm.toml."""
    directory = directory.resolve()
    if directory.exists():
        if not (directory / MARKER).exists() and any(directory.iterdir()):
            raise SwarmError(f"{directory} exists and was not made by `swarm demo`; choose another --dir")
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    (directory / MARKER).write_text("made by swarm demo; removed by the next demo run here\n")
    repo.init_project(template, directory / "origin.git", directory / "work")
    backlog = load_dir(template / "tasks")
    tasks = [t for t in recorded_tasks(solutions) if t in backlog.tasks]
    if not tasks:
        raise SwarmError(f"no recorded solution matches a task of {template / 'tasks'}")
    config = directory / "swarm.toml"
    table = f'adapter = "replay"\nconcurrency = 1\nthink = 2.0\nsolutions = "{solutions.resolve()}"\n'
    vendors = "".join(f"\n[vendors.{v}]\n{table}" for v in VENDORS)
    config.write_text(
        f"""# Written by `swarm demo`: three vendor queues, each running the replay agent (no API key needed).
origin = "{directory / "origin.git"}"
workdir = "{directory / ".swarm"}"
lease_ttl = 15
agent_timeout = 300
oracle_timeout = 600
max_attempts = 3
dispatch_interval = 2
only_tasks = {tasks!r}
{vendors}"""
    )
    return config


@dataclass
class Summary:
    tasks: list[str]
    landed: list[str]
    failed: dict[str, str]
    rejected: list[str]
    per_vendor: dict[str, int]
    rebased: list[str]
    coordination_commits: int
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    elapsed: float
    directory: Path
    batches: int = 0
    """Merge commits of the train's batches on main (train_batch)."""
    extra: dict[str, Any] = field(default_factory=dict)


def summarize(s: session.Started, first: str, report: dict[str, Any], elapsed: float, directory: Path) -> Summary:
    selected = [row for row in report["tasks"] if row["id"] in s.settings.only_tasks]
    everything = session.landed_commits(s.rt, first)
    # A batch's merge commit (train_batch) is the train's step of main, neither a vendor's work nor coordination.
    commits = [c for c in everything if c["agent"] != repo.BATCH_AGENT]
    rejected, rebased = [], []
    for row in selected:
        for h in (r.to_dict() for r in s.rt.book.history(row["id"])):
            if h.get("outcome") == "landed" and h.get("rebased"):
                rebased.append(row["id"])
            elif h.get("outcome") != "landed":
                rejected.append(f"{row['id']} ({h.get('vendor')}): {h.get('reason')}: {str(h.get('detail'))[:120]}")
    return Summary(
        tasks=[r["id"] for r in selected],
        landed=[r["id"] for r in selected if r["state"] == "landed"],
        failed={r["id"]: r.get("failure", {}).get("reason", "") for r in selected if r["state"] == "failed"},
        rejected=rejected,
        per_vendor=dict(collections.Counter(c["agent"] for c in commits)),
        rebased=rebased,
        coordination_commits=sum(1 for c in commits if not c["task"]),
        batches=len(everything) - len(commits),
        before=session.oracle_of(s.rt, first),
        after=session.oracle_of(s.rt, report["main"]),
        elapsed=elapsed,
        directory=directory,
    )


def show(summary: Summary) -> None:
    def passed(counts: dict[str, Any] | None) -> str:
        return "?" if not counts else f"{counts.get('passed')} passing, {counts.get('failed')} failing"

    console.print()
    console.rule("swarm demo: summary")
    console.print(f"tasks landed: {len(summary.landed)} of {len(summary.tasks)}  ({', '.join(summary.landed)})")
    for task, reason in summary.failed.items():
        console.print(f"[red]failed[/] {task}: {reason}")
    console.print(f"attempts rejected: {len(summary.rejected)}")
    for line in summary.rejected:
        console.print(f"  - {line}")
    console.print("commits on main per vendor: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.per_vendor.items())))
    console.print(f"landed after a rebase onto a moved main: {len(summary.rebased)} ({', '.join(summary.rebased)})")
    console.print(f"coordination commits: {summary.coordination_commits}")
    if summary.batches:
        console.print(f"batches the train landed as one merge commit each: {summary.batches}")
    console.print(f"oracle on main: before {passed(summary.before)}; after {passed(summary.after)}")
    console.print(f"elapsed: {summary.elapsed:.0f}s")
    work = summary.directory / "work"
    console.print(f"look at the result: git -C {work} pull -q && git -C {work} log --format='%h %an %s'")


def write_report(s: session.Started, out: Path) -> None:
    """The run report (swarm report): its path is printed; a report that cannot be written does not fail the demo."""
    try:
        page = report.write(s.rt, out)
    except Exception as exc:  # noqa: BLE001 - the demo's result is the summary above; the report is a view of it
        log.warning("could not write the run report to %s: %s", out, exc)
        return
    console.print(f"run report: {page.resolve()}")


def run(directory: Path, template: Path, keep: bool, timeout: float, solutions: Path = SHIPPED) -> Summary:
    config = prepare(directory, template, solutions)
    console.print(f"demo project: {directory.resolve()} (origin.git, work/, swarm.toml)")
    start = time.monotonic()
    with session.started(config, {v: 1 for v in VENDORS}) as s:
        if s.flower_url and s.flower_auth:
            console.print(f"Flower: {s.flower_url}  user {s.flower_auth[0]}  password {s.flower_auth[1]}")
        first = s.rt.mirror.fetch()
        selected = set(s.settings.only_tasks)

        def done(report: dict[str, Any]) -> bool:
            states = {r["id"]: r["state"] for r in report["tasks"] if r["id"] in selected}
            return bool(states) and all(st in session.TERMINAL for st in states.values())

        report = session.watch(s, done, timeout)
        summary = summarize(s, first, report, time.monotonic() - start, directory.resolve())
        show(summary)
        write_report(s, directory / "report")
        if keep:
            console.print(f"--keep: the swarm keeps running; Flower at {s.flower_url}. Ctrl-C stops everything.")
            while True:
                time.sleep(3600)
    return summary
