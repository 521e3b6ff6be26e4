"""The prompt of one attempt: the repository's agent prompt, the task file, and context generated at that moment.

The context replaces the shared PROGRESS file every agent edited in the old harness: nothing about progress is
ever written to the repository.
"""

from __future__ import annotations

import time

from swarm.backlog import Task
from swarm.settings import RepoSettings
from swarm.state import Snapshot

DEFAULT_PROMPT = """You are one agent of a swarm working on this repository. The swarm gave you one task, below.
Work only in the current folder. Do not push, do not create lock, claim or progress files: the swarm commits
your changes as one commit, runs the oracle, and lands it on main only if it is green."""


def build(repo: RepoSettings, repo_prompt: str | None, task: Task, snap: Snapshot, attempt: int, worker: str) -> str:
    parts = [(repo_prompt or DEFAULT_PROMPT).rstrip(), "", f"# Your task: `{task.id}` ({task.title})", ""]
    parts += [f"Task file: `{task.path}` (attempt {attempt}).", "", task.text.rstrip(), ""]
    parts += context(repo, task, snap, worker)
    return "\n".join(parts) + "\n"


def context(repo: RepoSettings, task: Task, snap: Snapshot, worker: str) -> list[str]:
    now = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    lines = [f"# Swarm context (generated {now})", ""]
    counts = snap.oracle or {}
    if counts:
        lines.append(
            f"- `main` is at {snap.main[:12]}; its full oracle: passed {counts.get('passed')}, "
            f"failed {counts.get('failed')}, skipped {counts.get('skipped')}. The passing count may never drop."
        )
    else:
        lines.append(f"- `main` is at {snap.main[:12]}; its oracle counts are not measured yet.")
    lines += ["", f"## Tasks landed so far ({len(snap.landed)})"]
    titles = {t.id: t.title for t in snap.backlog.tasks.values()}
    lines += [f"- `{tid}`: {titles.get(tid, '')}" for tid in sorted(snap.landed)] or ["- none yet"]
    others = {tid: info for tid, info in snap.leases.items() if tid != task.id}
    lines += ["", "## Tasks other agents are working on right now (keep out of their way)"]
    lines += [
        f"- `{tid}`: {titles.get(tid, '')} ({info.get('vendor', '?')})" for tid, info in sorted(others.items())
    ] or ["- none"]
    lines += ["", "## What the swarm enforces"]
    lines += [
        "- Your changes in this folder become one commit; you need not commit, and you cannot push.",
        f"- The oracle must stay green: `{repo.oracle.fast}` now, `{repo.oracle.full}` before landing.",
    ]
    if repo.protected:
        action = "put back as on main" if repo.on_protected == "restore" else "rejected"
        lines.append(f"- Protected paths (changes are {action}): {', '.join(f'`{p}`' for p in repo.protected)}")
    lines.append(f"- New follow-up tasks go in `{repo.backlog}/<id>.md`; they become ready once your work lands.")
    return lines
