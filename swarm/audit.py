"""`swarm audit`: check a repository's history against the swarm's promises, from git alone.

Every commit on main carries Swarm-Task and Swarm-Agent trailers; every landed ref points to a commit on main
that carries its task; no task landed twice; no coordination commit; with `oracle`, every commit main pointed to
is green. A batch of the merge train lands as a merge commit (Swarm-Batch: its tasks) whose first parent is the old
main and whose tree is exactly its last task's commit's: main's first-parent line is what the oracle passed, and
the tasks' own commits sit on the merged line, each checked as any other.
A repository adopted with `swarm init --adopt` is audited from its adoption commit (`refs/swarm/adopted`) on:
what came before was not the swarm's work. Two kinds of commit made by people are accepted besides landings:
one that only adds or edits task files in the backlog folder (`swarm add`, or by hand), and one that says why a
person made it with a `Swarm-Human: <reason>` trailer.
"""

from __future__ import annotations

import collections
import logging
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from swarm import oracle as oracle_mod
from swarm.errors import SettingsError
from swarm.judge import Judge
from swarm.repo import ADOPTED_REF, BATCH_AGENT, Mirror, matches
from swarm.settings import REPO_SETTINGS_FILE, parse_repo_settings

log = logging.getLogger(__name__)

TOOL_AGENTS = {"swarm-init"}
"""Commits the swarm's own tools make outside a landing (`swarm init`, `--adopt`): the project's first commit."""

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
    mirror: Mirror,
    check_oracle: bool = False,
    last: int | None = None,
    workdir: Path | None = None,
    sandboxed: bool = True,
) -> AuditReport:
    """Audit origin's main as of a fresh fetch."""
    main = mirror.fetch()
    report = AuditReport()
    commits = _commits(mirror, main, report)
    report.commits = len(commits)
    backlog = _backlog_folder(mirror, main)
    protected = _protected(mirror, main)
    landed = mirror.landed()
    tasks_on_main: dict[str, list[str]] = collections.defaultdict(list)
    for sha, task, agent, human, batch in commits:
        if agent == BATCH_AGENT:
            report.problems.extend(_batch(mirror, sha, batch.split(), landed))
            continue
        touched = mirror.touched_by(sha)
        tool = agent in TOOL_AGENTS
        if task and agent and not tool and landed.get(task) != sha and not human:
            why = f"carries Swarm-Task: {task} but no landing made it (refs/swarm/landed/{task} does not point here)"
            report.problems.append(Problem(sha, why))
        changed = [p for p in touched if matches(p, protected)]
        if changed and not human and not tool:
            report.problems.append(Problem(sha, f"changes protected path(s) {', '.join(changed[:5])}"))
        if task and agent:
            tasks_on_main[task].append(sha)
        elif not human and not _only_backlog(touched, backlog):
            report.problems.append(Problem(sha, "no Swarm-Task/Swarm-Agent trailers: not the work of a task (a "
                                                "person's commit says why in a Swarm-Human: trailer)"))  # fmt: skip
        coordination = [p for p in touched if COORDINATION_PATH.search(p)]
        if coordination:
            report.problems.append(Problem(sha, f"coordination files committed: {', '.join(coordination)}"))
    on_main = {sha for sha, *_ in commits}
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
        commits_ = _steps(mirror, main)[:last]
        _oracle(mirror, main, commits_, report, workdir or mirror.path.parent, sandboxed)
    return report


def _commits(mirror: Mirror, main: str, report: AuditReport) -> list[tuple[str, str, str, str, str]]:
    """Main's commits, newest first, from the adoption commit on when the repository was adopted."""
    keys_ = ("Swarm-Task", "Swarm-Agent", "Swarm-Human", "Swarm-Batch")
    fmt = "%x00".join(["%H", *(TRAILER.format(key) for key in keys_)])
    out = []
    for line in mirror.log(_range(mirror, main), fmt):
        sha, task, agent, human, batch = line.split("\0")
        out.append((sha, task.strip(), agent.strip(), human.strip(), batch.replace(",", " ").strip()))
    adopted = mirror.adopted()
    if adopted is not None and adopted not in {sha for sha, *_ in out}:
        report.problems.append(Problem(adopted, f"{ADOPTED_REF} is not on main: main was rewritten after adoption"))
    return out


def _range(mirror: Mirror, main: str) -> str:
    adopted = mirror.adopted()
    return main if adopted is None else f"{adopted}^..{main}"  # adoption commits have a parent


def _steps(mirror: Mirror, main: str) -> list[str]:
    """The commits main pointed to, newest first: its first-parent line (a batch's merged line was never main)."""
    return mirror.log(_range(mirror, main), first_parent=True)


def _batch(mirror: Mirror, merge: str, tasks: list[str], landed: dict[str, str]) -> list[Problem]:
    """A batch's merge commit: first parent the old main, tree exactly its second parent's, and the commits it
    merges are those its Swarm-Batch trailer names, each the landing of its task."""
    parents = mirror.parents(merge)
    if len(parents) != 2:
        return [Problem(merge, f"made by {BATCH_AGENT} but not a merge of the old main and a batch")]
    problems = []
    if mirror.tree(merge) != mirror.tree(parents[1]):
        problems.append(Problem(merge, "a batch's merge commit whose tree is not the tree of the commit it merges"))
    merged = set(mirror.log(f"{parents[0]}..{parents[1]}"))
    named = {landed.get(t, "") for t in tasks}
    if not tasks or named != merged:
        problems.append(Problem(merge, f"Swarm-Batch names {' '.join(tasks) or 'nothing'}, which are not the "
                                       f"landings of the {len(merged)} commit(s) it merges"))  # fmt: skip
    return problems


def _protected(mirror: Mirror, main: str) -> list[str]:
    """main's protected paths (with `.swarm.toml`): no landing ever changes them, only a person's commit does."""
    raw = mirror.read(main, REPO_SETTINGS_FILE)
    try:
        return parse_repo_settings(raw.decode(), f"main:{REPO_SETTINGS_FILE}").harness() if raw else []
    except SettingsError:
        return [REPO_SETTINGS_FILE]


def _backlog_folder(mirror: Mirror, main: str) -> str:
    raw = mirror.read(main, REPO_SETTINGS_FILE)
    try:
        return parse_repo_settings(raw.decode(), f"main:{REPO_SETTINGS_FILE}").backlog if raw else "tasks"
    except SettingsError:
        return "tasks"


def _only_backlog(paths: list[str], backlog: str) -> bool:
    """A commit that only adds or edits task files: backlog work by a person, which changes no code."""
    return bool(paths) and all(p.startswith(f"{backlog}/") and p.endswith(".md") for p in paths)


def _oracle(mirror: Mirror, main: str, commits: list[str], report: AuditReport, workdir: Path, sandboxed: bool) -> None:
    """Run the full oracle (as `.swarm.toml` on main defines it) on each commit, newest first."""
    raw = mirror.read(main, REPO_SETTINGS_FILE)
    if raw is None:
        raise SettingsError(f"{mirror.origin} main:{REPO_SETTINGS_FILE} is missing; --oracle needs its oracle command")
    repo = parse_repo_settings(raw.decode(), f"main:{REPO_SETTINGS_FILE}")
    # The same judge as landings (sandboxed build, each commit's own harness), with a seed of this audit's own:
    # counts agree between parent and child, whatever the swarm recorded.
    judge = Judge(mirror, workdir / "audit-judge", seed=secrets.token_hex(16), sandboxed=sandboxed)
    results: dict[str, oracle_mod.OracleResult] = {}
    for sha in commits:
        log_path = workdir / "audit-logs" / f"{sha[:12]}.log"
        result = judge.run(repo, "full", sha, sha, log_path, agent_id="audit", timeout=repo.oracle.timeout)
        report.oracle_runs += 1
        results[sha] = result
        if not result.ok:
            report.problems.append(Problem(sha, f"red: {result.reason} (log {result.log_path})"))
    _drops(mirror, results, report)


def _drops(mirror: Mirror, results: dict[str, oracle_mod.OracleResult], report: AuditReport) -> None:
    """No commit may pass fewer oracle cases than its parent, in total or in any area."""
    for sha, result in results.items():
        parent = mirror.parents(sha)[:1]
        before = results.get(parent[0]) if parent else None
        if not result.ok or before is None or not before.ok:
            continue
        reason = oracle_mod.judge(result, before.counts())
        if reason:
            report.problems.append(Problem(sha, f"{reason} (parent {parent[0][:12]})"))
