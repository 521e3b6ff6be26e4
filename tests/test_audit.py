"""`swarm audit` passes a history the swarm made and names the commit of every broken promise."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from swarm.audit import audit
from swarm.repo import Mirror
from swarm.runtime import Runtime
from tests.conftest import GIT_IDENTITY, Project, task_file
from tests.test_pipeline import pipeline


def mirror(project: Project, tmp_path: Path) -> Mirror:
    return Mirror(str(project.origin), tmp_path / "audit" / "mirror.git").ensure()


def push_commit(project: Project, message: str, files: dict[str, str]) -> str:
    project.git("pull", "-q", "--rebase", "--autostash", "origin", "main", cwd=project.clone)
    for path, text in files.items():
        (project.clone / path).parent.mkdir(parents=True, exist_ok=True)
        (project.clone / path).write_text(text)
    project.git("add", "-A", cwd=project.clone)
    subprocess.run(["git", "commit", "-qm", message], cwd=project.clone, check=True, env={**os.environ, **GIT_IDENTITY})
    project.git("push", "-q", "origin", "HEAD:main", cwd=project.clone)
    return project.git("rev-parse", "HEAD", cwd=project.clone)


def landed_history(project: Project, rt: Runtime) -> None:
    project.add_tasks({"alpha": task_file("Alpha", "write src/alpha.txt alpha"),
                       "beta": task_file("Beta", "write src/beta.txt beta")})  # fmt: skip
    assert pipeline(rt).run("alpha", "claude") == "landed"
    assert pipeline(rt).run("beta", "codex") == "landed"


def test_a_swarm_history_keeps_every_promise_including_a_green_oracle(
    project: Project, rt: Runtime, tmp_path: Path
) -> None:
    landed_history(project, rt)
    report = audit(mirror(project, tmp_path), check_oracle=True, workdir=tmp_path / "audit")
    assert report.ok, [str(p) for p in report.problems]
    assert report.landed == 2 and report.oracle_runs == report.commits == len(project.main_log())


def test_a_commit_without_trailers_is_reported(project: Project, rt: Runtime, tmp_path: Path) -> None:
    landed_history(project, rt)
    sha = push_commit(project, "Quick fix pushed by hand", {"src/gamma.txt": "g"})
    report = audit(mirror(project, tmp_path))
    assert [(p.commit, "trailers" in p.reason) for p in report.problems] == [(sha, True)]


def test_a_red_commit_is_reported_by_the_oracle_check(project: Project, rt: Runtime, tmp_path: Path) -> None:
    landed_history(project, rt)
    sha = push_commit(project, "Break\n\nSwarm-Task: rogue\nSwarm-Agent: x", {"src/delta.txt": "BREAK"})
    assert audit(mirror(project, tmp_path)).ok, "without --oracle the history looks fine"
    report = audit(mirror(project, tmp_path), check_oracle=True, last=2, workdir=tmp_path / "audit")
    assert [p.commit for p in report.problems] == [sha] and "red" in report.problems[0].reason
    assert report.oracle_runs == 2


def test_a_task_landed_twice_and_a_stray_landed_ref_are_reported(project: Project, rt: Runtime, tmp_path: Path) -> None:
    landed_history(project, rt)
    twice = push_commit(project, "Alpha again\n\nSwarm-Task: alpha\nSwarm-Agent: x", {"src/alpha2.txt": "a"})
    stray = project.git("commit-tree", "-p", "main", "-m", "side", project.git("rev-parse", "main^{tree}"))
    project.git("update-ref", "refs/swarm/landed/ghost", stray)
    reasons = [p.reason for p in audit(mirror(project, tmp_path)).problems]
    assert any("alpha landed more than once" in r and twice[:12] in r for r in reasons)
    assert any("landed/ghost points to a commit not on main" in r for r in reasons)


def test_a_coordination_commit_is_reported(project: Project, rt: Runtime, tmp_path: Path) -> None:
    landed_history(project, rt)
    sha = push_commit(project, "claim gamma\n\nSwarm-Task: gamma\nSwarm-Agent: x", {"locks/gamma.lock": "agent-1"})
    report = audit(mirror(project, tmp_path))
    assert [(p.commit, "coordination" in p.reason) for p in report.problems] == [(sha, True)]


def test_a_commit_passing_fewer_cases_than_its_parent_is_reported(
    project: Project, rt: Runtime, tmp_path: Path
) -> None:
    landed_history(project, rt)
    sha = push_commit(project, "Drop\n\nSwarm-Task: dropper\nSwarm-Agent: x", {"src/beta.txt": "not beta"})
    report = audit(mirror(project, tmp_path), check_oracle=True, last=2, workdir=tmp_path / "audit")
    assert [p.commit for p in report.problems] == [sha]
    assert "dropped from 3" in report.problems[0].reason
