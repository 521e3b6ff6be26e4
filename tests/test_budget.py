"""A budget of git processes per attempt: the git work of one attempt must not creep up unnoticed."""

from __future__ import annotations

from swarm import repo
from swarm.agents import registry
from swarm.pipeline import Pipeline
from swarm.runtime import Runtime
from tests.conftest import Project, task_file

GIT_BUDGET = 32
"""git processes started through repo.py for one trivial attempt that lands, baseline measured on the way (50 on
2026-11-30; 46 on 2026-12-01, once the end record rode the landing push and an unmoved main skipped the rebase;
34 later that day, once the backlog and a commit's tree were read through the batch, each fetch brought main and
the landed refs with one process, and an attempt's pins were dropped together; 29 on 2026-12-02, once main's
protected files were read through the batch): a step that starts git per file or per poll shows up here."""


def test_one_landed_attempt_stays_within_its_git_budget(project: Project, rt: Runtime) -> None:
    project.add_tasks({"alpha": task_file("Write alpha", "write src/alpha.txt alpha")})

    def agent(vendor: str):  # type: ignore[no-untyped-def]
        table = rt.settings.vendors[vendor]
        return registry.make(vendor, table.adapter, table.options())

    pipeline = Pipeline.on(rt, agent, "w1")
    rt.mirror.fetch()
    start = repo.git_calls()
    assert pipeline.run("alpha", "claude") == "landed"
    used = repo.git_calls() - start
    print(f"git processes for one landed attempt: {used}")
    assert used <= GIT_BUDGET, f"one attempt started {used} git processes, over its budget of {GIT_BUDGET}"
