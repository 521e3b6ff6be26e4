"""The whole swarm with real Celery worker and beat processes, real Redis and real git."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm import proc
from tests.cluster import Cluster, write_config
from tests.conftest import Project, task_file, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def cluster(project: Project, redis_url: str) -> Iterator[Cluster]:
    c = Cluster(project, write_config(project, redis_url, {"claude": 2, "codex": 1}))
    try:
        yield c
    finally:
        c.stop()
        print(c.dump_logs())


def test_three_workers_on_two_queues_land_a_backlog_through_failures_and_kills(
    project: Project, cluster: Cluster
) -> None:
    started1, started2 = project.signals / "victim1.started", project.signals / "victim2.started"
    project.add_tasks(
        {
            "alpha": task_file("Alpha", "write src/alpha.txt alpha", priority=10),
            "beta": task_file("Beta after alpha", "write src/beta.txt beta", depends_on=["alpha"]),
            "gamma": task_file("Gamma on codex", "write src/gamma.txt gamma", vendor="codex"),
            "broken": task_file("Always breaks", "write src/delta.txt BREAK", priority=5),
            "victim1": task_file(
                "Pool child killed",
                f"@1 sh touch {started1}\n@1 sleep 120\nwrite src/v1.txt v1",
                priority=9,
                vendor="claude",
            ),  # fmt: skip
            "victim2": task_file(
                "Worker killed",
                f"@1 sh touch {started2}\n@1 sleep 120\nwrite src/v2.txt v2",
                depends_on=["victim1"],
                vendor="claude",
            ),  # fmt: skip
        }
    )
    setup_commit = project.main_log()[0]
    for name, queue in (("w1", "claude"), ("w2", "claude"), ("w3", "codex")):
        cluster.worker(name, queue)
    cluster.wait_for_workers(["w1", "w2", "w3"])
    cluster.beat()

    # victim1: SIGKILL the pool process that holds its lease, mid-run.
    wait_for(started1.exists, 60, "victim1's first attempt to start")
    holder = cluster.status()["leases"]["victim1"]["worker"]
    os.kill(int(holder.rsplit("-", 1)[1]), signal.SIGKILL)
    # victim2: SIGKILL the main process of the worker whose pool process holds its lease.
    wait_for(started2.exists, 90, "victim2's first attempt to start")
    holder_pid = int(cluster.status()["leases"]["victim2"]["worker"].rsplit("-", 1)[1])
    parent = int(Path(f"/proc/{holder_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    victim_worker = next(name for name, p in cluster.procs.items() if p.pid == parent)
    os.kill(parent, signal.SIGKILL)

    def settled() -> bool:
        states = {t["id"]: t["state"] for t in cluster.status()["tasks"]}
        return all(s in ("landed", "failed") for s in states.values())

    wait_for(settled, 150, "every task landed or failed")
    report = cluster.status()
    states = {t["id"]: t for t in report["tasks"]}
    assert {tid for tid, t in states.items() if t["state"] == "landed"} == {
        "alpha", "beta", "gamma", "victim1", "victim2"
    }  # fmt: skip
    assert states["broken"]["state"] == "failed"
    assert states["broken"]["failure"]["reason"] == "oracle_red"
    assert "oracle" in states["broken"]["failure"]["detail"]

    # main: exactly one commit per landed task, each with trailers (a batch of the train adds a merge commit);
    # every commit main pointed to passed the full oracle as it is (a batch's merge commit has the tree of the
    # commit it merges, which the audit below checks, and that commit is the one tested).
    swarm_commits = project.git("log", "--no-merges", "--format=%H", f"{setup_commit}..main").splitlines()
    landed = project.landed()
    assert sorted(landed.values()) == sorted(swarm_commits)
    for sha in swarm_commits:
        body = project.git("log", "-1", "--format=%B", sha)
        task = next(line.split(": ", 1)[1] for line in body.splitlines() if line.startswith("Swarm-Task: "))
        assert landed[task] == sha
        assert "Swarm-Agent: " in body
    green = {sha for tier, sha, verdict, _ in project.oracle_runs() if tier == "full" and verdict == "green"}
    for step, tested in project.main_steps(setup_commit):
        assert tested in green, f"main pointed to {step} without a green full run"
    for sha in swarm_commits:
        files = project.git("show", "--name-only", "--format=", sha).splitlines()
        assert not [f for f in files if "lock" in f.lower() or "claim" in f.lower()], "no coordination files"
    assert states["gamma"]["last_attempt"]["outcome"] == "landed"
    assert "Swarm-Agent: codex" in project.git("log", "-1", "--format=%B", landed["gamma"])

    # the killed attempts: each task landed once, on a later attempt; no agent of theirs is left running.
    assert states["victim1"]["attempts"] >= 2 and states["victim2"]["attempts"] >= 2
    leftover = proc.marked("SWARM_TASK_ID=victim1")
    assert leftover == [], [Path(f"/proc/{p}/cmdline").read_text().replace("\0", " ") for p in leftover]
    wait_for(lambda: proc.marked("SWARM_TASK_ID=victim2") == [], 10, "victim2's orphaned agent to be gone")
    assert cluster.procs[victim_worker].poll() is not None

    audit = cluster.swarm("audit", "--oracle", check=False)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "all promises kept" in audit.stdout
