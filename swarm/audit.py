"""`swarm audit`: check a repository's history against the swarm's promises, from git alone.

Every commit on main carries Swarm-Task and Swarm-Agent trailers; every landed ref points to a commit on main
that carries its task; no task landed twice; no coordination commit; with `oracle`, every commit is green.
"""

from __future__ import annotations

import collections
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from swarm import oracle as oracle_mod
from swarm.errors import SettingsError
from swarm.repo import Mirror
from swarm.settings import REPO_SETTINGS_FILE, parse_repo_settings

log = logging.getLogger(__name__)

# Paths a lock-file harness commits; lock files of package managers are ordinary project files.
COORDINATION_PATH = re.compile(r"(^|/)(locks?|claims?|leases?)/|\.(claim|lease)$|(^|/)PROGRESS(\.md)?$", re.I)
TRAILER = "%(trailers:key={},valueonly,separator=%x2C)"


@dataclass
class Problem:
    commit: str
    reason: str

    def __str__(self) -> str:
        return f"{self.commit[:12]}: {self.reason}"


@dataclass
class AuditReport:
    commits: int = 0
    landed: int = 0
    oracle_runs: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def audit(
    mirror: Mirror, check_oracle: bool = False, last: int | None = None, workdir: Path | None = None
) -> AuditReport:
    """Audit origin's main as of a fresh fetch."""
    main = mirror.fetch()
    report = AuditReport()
    commits = _commits(mirror, main)
    report.commits = len(commits)
    tasks_on_main: dict[str, list[str]] = collections.defaultdict(list)
    for sha, task, agent in commits:
        if not task or not agent:
            report.problems.append(Problem(sha, "no Swarm-Task/Swarm-Agent trailers: not the work of a task"))
        tasks_on_main[task].append(sha)
        touched = [p for p in mirror.touched_by(sha) if COORDINATION_PATH.search(p)] if task else []
        if touched:
            report.problems.append(Problem(sha, f"coordination files committed: {', '.join(touched)}"))
    on_main = {sha for sha, _, _ in commits}
    landed = mirror.landed()
    report.landed = len(landed)
    for task, sha in sorted(landed.items()):
        if sha not in on_main:
            report.problems.append(Problem(sha, f"refs/swarm/landed/{task} points to a commit not on main"))
        elif sha not in tasks_on_main.get(task, []):
            report.problems.append(Problem(sha, f"refs/swarm/landed/{task} points to a commit of another task"))
        if len(tasks_on_main.get(task, [])) > 1:
            dupes = ", ".join(s[:12] for s in tasks_on_main[task])
            report.problems.append(Problem(sha, f"task {task} landed more than once: {dupes}"))
    if check_oracle:
        _oracle(mirror, main, [sha for sha, _, _ in commits][:last], report, workdir or mirror.path.parent)
    return report


def _commits(mirror: Mirror, main: str) -> list[tuple[str, str, str]]:
    fmt = "%x00".join(["%H", TRAILER.format("Swarm-Task"), TRAILER.format("Swarm-Agent")])
    out = []
    for line in mirror.log(main, fmt):
        sha, task, agent = line.split("\0")
        out.append((sha, task.strip(), agent.strip()))
    return out


def _oracle(mirror: Mirror, main: str, commits: list[str], report: AuditReport, workdir: Path) -> None:
    """Run the full oracle (as `.swarm.toml` on main defines it) on each commit, newest first."""
    raw = mirror.read(main, REPO_SETTINGS_FILE)
    if raw is None:
        raise SettingsError(f"{mirror.origin} main:{REPO_SETTINGS_FILE} is missing; --oracle needs its oracle command")
    repo = parse_repo_settings(raw.decode(), f"main:{REPO_SETTINGS_FILE}")
    path = workdir / "audit-worktree"
    worktree = mirror.add_worktree(path, main)
    results: dict[str, oracle_mod.OracleResult] = {}
    try:
        for sha in commits:
            worktree.checkout(sha)
            result = oracle_mod.run(
                repo.oracle, "full", path, workdir / "audit-logs" / f"{sha[:12]}.log", workdir / "cache" / "audit",
                agent_id="audit", timeout_cap=repo.oracle.timeout,
            )  # fmt: skip
            report.oracle_runs += 1
            results[sha] = result
            if not result.ok:
                report.problems.append(Problem(sha, f"red: {result.reason} (log {result.log_path})"))
    finally:
        mirror.remove_worktree(path)
    _drops(mirror, results, report)


def _drops(mirror: Mirror, results: dict[str, oracle_mod.OracleResult], report: AuditReport) -> None:
    """No commit may pass fewer oracle cases than its parent, in total or in any area."""
    for sha, result in results.items():
        parent = mirror.parents(sha)[:1]
        before = results.get(parent[0]) if parent else None
        if not result.ok or before is None or not before.ok:
            continue
        reason = oracle_mod.judge(result, {**before.counts(), "areas": before.summary.get("areas")})
        if reason:
            report.problems.append(Problem(sha, f"{reason} (parent {parent[0][:12]})"))
