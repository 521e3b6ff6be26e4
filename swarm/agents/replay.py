"""The `replay` adapter: a demo agent that needs no API key. It "solves" a task by applying a recorded patch.

Patches live in a folder as `<task>.patch` (every attempt) or `<task>.<attempt>.patch` (that attempt only, so a
recording can hold a wrong first attempt). They are applied with `git apply --3way`, a real 3-way merge onto
whatever `main` is by then. Not meant for real work: `swarm up` never picks it unless a vendor asks for it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from swarm.agents import mainline, outcomes, taxonomy
from swarm.agents.base import AgentResult, AgentRun, Check
from swarm.agents.process import launch
from swarm.environ import child_env

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).resolve().parent.parent / "replay"


class ReplayOptions(BaseModel):
    """Options of a vendor table with `adapter = "replay"`."""

    model_config = ConfigDict(extra="forbid")

    solutions: Path = SHIPPED
    """Folder of recorded patches; the ones shipped with swarm for engine_repo_template by default."""
    think: float = Field(2.0, ge=0)
    """Seconds the agent 'thinks' before applying its patch, so the demo's progress can be watched."""
    wait_for_main: float = Field(300.0, ge=0)
    """Seconds a patch that did not apply waits for main to move before the attempt ends, so the next attempt
    starts on a new main instead of failing at once on the same one."""


class ReplayAgent:
    """Applies the recorded patch of a task with a 3-way merge; no recording means no change."""

    Options = ReplayOptions

    def __init__(self, vendor: str, options: ReplayOptions) -> None:
        self.vendor = vendor
        self.options = options

    def executable(self) -> str:
        return "git"

    def patch_for(self, task_id: str, attempt: int) -> Path | None:
        for name in (f"{task_id}.{attempt}.patch", f"{task_id}.patch"):
            path = self.options.solutions / name
            if path.is_file():
                return path
        return None

    def run(self, run: AgentRun) -> AgentResult:
        patch = self.patch_for(run.task_id, run.attempt)
        if patch is None:
            return AgentResult("no_change", f"no recorded solution for {run.task_id}", 0, run.log_path)
        if run.cancel.wait(self.options.think):
            lost = AgentResult("failed", "lease lost while thinking", None, run.log_path)
            return taxonomy.fail(lost, taxonomy.LEASE_LOST)
        argv = ["git", "apply", "--3way", "--whitespace=nowarn", str(patch)]
        launched = launch(run, argv, {**child_env(), **run.env})
        if launched.ended.returncode != 0:
            detail = f"patch {patch.name} did not apply: {launched.ended.describe()}; {self._wait_for_main(run)}"
            return outcomes.settle(launched, taxonomy.fail(AgentResult("failed", detail), taxonomy.AGENT_ERROR))
        return outcomes.settle(launched, AgentResult("ok", f"applied the recorded solution {patch.name}"))

    def _wait_for_main(self, run: AgentRun) -> str:
        """Hold the attempt until the mirror's main differs from the commit the patch failed on (or the wait ends):
        a retry on the same main would fail the same way and use up the task's budget in seconds."""
        mirror, base = mainline.locate(run.worktree)
        if mirror is None or base is None:
            return "cannot see main from here: not waiting"
        watched = {ref for ref, sha in mainline.heads(mirror).items() if sha == base}
        with open(run.log_path, "a") as out:
            out.write(f"replay: waiting up to {self.options.wait_for_main:.0f}s for main to move from {base[:12]}\n")
        deadline = time.monotonic() + min(self.options.wait_for_main, run.timeout)
        while True:
            heads = mainline.heads(mirror)
            moved = sorted(heads[ref] for ref in watched if heads.get(ref, base) != base)
            if moved or not watched:
                return f"main moved from {base[:12]}: the next attempt starts on the new main"
            if time.monotonic() >= deadline:
                return f"main stayed at {base[:12]} for {self.options.wait_for_main:.0f}s"
            if run.cancel.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
                return "lease lost while waiting for main to move"

    def check(self) -> list[Check]:
        folder = self.options.solutions
        patches = sorted(folder.glob("*.patch")) if folder.is_dir() else []
        if not patches:
            what = "has no <task>.patch file" if folder.is_dir() else "is not a folder"
            return [
                (f"vendor {self.vendor}", False, f"solutions = {folder} {what}: the replay agent has nothing to apply")
            ]
        return [(f"vendor {self.vendor}", True, f"{len(patches)} recorded solution(s) in {folder}")]

    def preflight(self, home: Path) -> AgentResult | None:
        return None

    def has_session(self, home: Path, session: str) -> bool:
        return False

    def probe(self, home: Path, timeout: float) -> AgentResult:
        return AgentResult("ok", "replay needs no vendor")
