"""The replay demo agent: a patch that does not apply waits for main to move before the attempt ends, so the
next attempt starts on a new main instead of failing at once on the same one."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from swarm.agents import mainline
from swarm.agents.base import AgentResult, AgentRun
from swarm.agents.replay import ReplayAgent, ReplayOptions
from swarm.repo import Mirror
from tests.conftest import Project, wait_for

NOT_APPLYING = """diff --git a/oracle.py b/oracle.py
--- a/oracle.py
+++ b/oracle.py
@@ -1,2 +1,2 @@
-a line that is not in oracle.py
-nor this one
+replaced
+twice
"""


def attempt(project: Project, tmp_path: Path, wait: float) -> tuple[Mirror, AgentRun, ReplayAgent]:
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    (solutions / "t.patch").write_text(NOT_APPLYING)
    mirror = Mirror(str(project.origin), tmp_path / "mirror.git").ensure()
    worktree = mirror.add_worktree(tmp_path / "wt", mirror.fetch()).path
    (tmp_path / "prompt.md").write_text("t")
    run = AgentRun("t", 1, "demo", tmp_path / "prompt.md", worktree, tmp_path / "agent.log", tmp_path / "home", 60, {})
    return mirror, run, ReplayAgent("demo", ReplayOptions(solutions=solutions, think=0, wait_for_main=wait))


def waiting(run: AgentRun) -> bool:
    return run.log_path.is_file() and "waiting up to" in run.log_path.read_text(errors="replace")


def in_thread(agent: ReplayAgent, run: AgentRun) -> tuple[threading.Thread, list[AgentResult]]:
    out: list[AgentResult] = []
    thread = threading.Thread(target=lambda: out.append(agent.run(run)), daemon=True)
    thread.start()
    return thread, out


def test_a_patch_that_does_not_apply_waits_until_main_moves(project: Project, tmp_path: Path) -> None:
    mirror, run, agent = attempt(project, tmp_path, wait=120)
    thread, out = in_thread(agent, run)
    wait_for(lambda: waiting(run), 30, "the agent to start waiting")
    assert thread.is_alive() and not out, "the attempt does not end while main stays where the patch failed"
    (project.clone / "src" / "moved.txt").write_text("main moves\n")
    project.commit_all("Move main")
    mirror.fetch()
    thread.join(timeout=30)
    assert out, "the agent noticed main moving"
    assert out[0].outcome == "failed" and "did not apply" in out[0].message and "main moved from" in out[0].message


def test_the_wait_is_bounded_and_ends_with_the_lease(project: Project, tmp_path: Path) -> None:
    _, run, agent = attempt(project, tmp_path, wait=0.2)
    result = agent.run(run)
    assert result.outcome == "failed" and "main stayed at" in result.message
    agent.options.wait_for_main = 120
    run = dataclasses.replace(run, log_path=tmp_path / "second.log")
    thread, out = in_thread(agent, run)
    wait_for(lambda: waiting(run) and thread.is_alive(), 30, "the agent to wait")
    run.cancel.set()
    thread.join(timeout=30)
    assert out and "lease lost while waiting" in out[0].message


def test_main_is_found_from_a_worktree_and_from_a_standalone_workspace(project: Project, tmp_path: Path) -> None:
    mirror = Mirror(str(project.origin), tmp_path / "mirror.git").ensure()
    main = mirror.fetch()
    worktree = mirror.add_worktree(tmp_path / "wt", main).path
    assert mainline.locate(worktree) == (mirror.path.resolve(), main)
    mirror.workspace(main, tmp_path / "ws")
    assert mainline.locate(tmp_path / "ws") == (mirror.path.resolve(), main)
    assert main in mainline.heads(mirror.path).values()
    assert mainline.locate(tmp_path) == (None, None)
