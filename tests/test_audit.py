"""`swarm audit` passes a history the swarm made and names the commit of every broken promise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from swarm.audit import audit
from swarm.repo import Mirror
from swarm.runtime import Runtime, connect
from tests.conftest import GIT_IDENTITY, Project, make_settings, task_file
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
    without = audit(mirror(project, tmp_path)).problems
    assert [(p.commit, "no landing made it" in p.reason) for p in without] == [(sha, True)], "forged trailers"
    report = audit(mirror(project, tmp_path), check_oracle=True, last=2, workdir=tmp_path / "audit")
    assert {p.commit for p in report.problems} == {sha}
    assert any(p.reason.startswith("red") for p in report.problems)
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
    assert {p.commit for p in report.problems} == {sha}
    assert any("coordination files committed: locks/gamma.lock" in p.reason for p in report.problems)


def test_a_commit_passing_fewer_cases_than_its_parent_is_reported(
    project: Project, rt: Runtime, tmp_path: Path
) -> None:
    landed_history(project, rt)
    sha = push_commit(project, "Drop\n\nSwarm-Task: dropper\nSwarm-Agent: x", {"src/beta.txt": "not beta"})
    report = audit(mirror(project, tmp_path), check_oracle=True, last=2, workdir=tmp_path / "audit")
    assert {p.commit for p in report.problems} == {sha}
    assert any("dropped from 3" in p.reason for p in report.problems)


def test_a_commit_no_landing_made_and_a_change_to_a_protected_path_are_reported(
    project: Project, rt: Runtime, tmp_path: Path
) -> None:
    """An agent that pushed to main itself, with trailers copied from a real landing, is still found out."""
    landed_history(project, rt)
    alpha = project.landed()["alpha"]
    body = project.git("log", "-1", "--format=%B", alpha)
    forged = push_commit(project, body, {"src/extra.txt": "x"})
    harness = push_commit(project, "Ease the checks\n\nSwarm-Task: easy\nSwarm-Agent: x", {"oracle.py": "print(1)\n"})
    reasons = {p.commit: p.reason for p in audit(mirror(project, tmp_path)).problems if "no landing" in p.reason}
    assert set(reasons) == {forged, harness}
    protected = [p for p in audit(mirror(project, tmp_path)).problems if "protected path" in p.reason]
    assert [(p.commit, "oracle.py" in p.reason) for p in protected] == [(harness, True)]


def adopted_project(tmp_path: Path) -> Project:
    """A user's Python repository with history of its own, adopted with a pytest oracle."""
    from swarm import adopt
    from tests.test_adopt import python_project

    work = python_project(tmp_path, branch="main")
    command = f"{sys.executable} -m pytest -p no:cacheprovider --junitxml=.swarm-junit.xml"
    adopted = adopt.adopt(str(work), tmp_path / "swarm", runner="pytest", command=command)
    return Project(tmp_path / "swarm", Path(adopted.origin), adopted.clone, tmp_path / "swarm" / "workdir")


def hand_commit(project: Project, message: str, files: dict[str, str]) -> str:
    return push_commit(project, message, files)


def test_an_adopted_repository_is_audited_from_its_adoption_commit(tmp_path: Path, redis_url: str) -> None:
    project = adopted_project(tmp_path)
    added = hand_commit(project, "Add a task by hand", {"tasks/alpha.md": task_file("Alpha", "write alpha.txt a")})
    rt = connect(make_settings(project, redis_url))
    assert pipeline(rt).run("alpha", "claude") == "landed"
    human = hand_commit(project, "Bump the copyright\n\nSwarm-Human: licence year, no code", {"LICENSE": "2026\n"})
    report = audit(mirror(project, tmp_path), check_oracle=True, workdir=tmp_path / "audit")
    assert report.ok, [str(p) for p in report.problems]
    assert report.commits == 4, "adoption, the hand-added task, the landing, the person's commit; not the 2 before"
    assert report.oracle_runs == 4 and report.landed == 1
    assert added in project.main_log() and human in project.main_log()
    rogue = hand_commit(project, "Quick fix", {"calc.py": "def add(a, b):\n    return b + a\n"})
    sneaky = hand_commit(project, "Sneak code in with a task", {"tasks/beta.md": task_file("Beta"), "x.py": ""})
    problems = audit(mirror(project, tmp_path)).problems
    assert {p.commit for p in problems} == {rogue, sneaky}, [str(p) for p in problems]


def test_without_the_adoption_ref_the_earlier_history_is_not_the_swarms(tmp_path: Path) -> None:
    project = adopted_project(tmp_path)
    project.git("update-ref", "-d", "refs/swarm/adopted")
    report = audit(mirror(project, tmp_path))
    assert report.commits == 3 and len(report.problems) == 2, "the user's two commits have no trailers"


def test_a_forged_batch_merge_that_adds_to_its_tree_is_reported(project: Project, rt: Runtime, tmp_path: Path) -> None:
    """A batch's merge commit may only put main at the tree it merges (the one its oracle run passed)."""
    landed_history(project, rt)
    project.git("pull", "-q", "--rebase", "origin", "main", cwd=project.clone)
    main = project.git("rev-parse", "HEAD", cwd=project.clone)
    line = push_commit(project, "Side\n\nSwarm-Task: alpha\nSwarm-Agent: x", {"src/side.txt": "s"})
    (project.clone / "src" / "sneak.txt").write_text("never tested")
    project.git("add", "-A", cwd=project.clone)
    tree = project.git("write-tree", cwd=project.clone)
    message = "Land a batch\n\nSwarm-Batch: alpha\nSwarm-Agent: swarm-train\n"
    merge = project.git("commit-tree", tree, "-p", main, "-p", line, "-m", message, cwd=project.clone)
    project.git("push", "-q", "-f", "origin", f"{merge}:refs/heads/main", cwd=project.clone)
    reasons = [p.reason for p in audit(mirror(project, tmp_path)).problems if p.commit == merge]
    assert any("tree is not the tree" in r for r in reasons), reasons
    assert any("Swarm-Batch names alpha" in r for r in reasons), "alpha's landing is not on the merged line"
