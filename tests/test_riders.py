"""No idle agent slots: a worker of one slot runs the next task's agent while the first candidate's full oracle
runs (its slot was handed back when it joined the merge train), grows its pool for the ride and shrinks it after;
with `free_slot_in_train = false` the slot is held until the attempt ends."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import psutil
import pytest

from swarm import keys, proc
from swarm.settings import REPO_SETTINGS_FILE
from tests.cluster import Cluster, write_config
from tests.conftest import Project, task_file, wait_for

pytestmark = pytest.mark.e2e

# The first task's candidate (src/first.txt without src/second.txt) passes its full oracle only once the second
# task's agent has run. A worker of one process that held its slot through that oracle could not run it.
# A candidate holding src/victim.txt says it rides and waits for the test's go.
GATE_SH = """#!/bin/bash
if [ -f src/victim.txt ]; then
  touch "$SYNC/victim-riding"
  for i in $(seq 1200); do [ -f "$SYNC/go" ] && exit 0; sleep 0.05; done
  exit 1
fi
if [ -f src/first.txt ] && [ ! -f src/second.txt ]; then
  for i in $(seq 120); do [ -f "$SYNC/second-ran" ] && exit 0; sleep 0.05; done
  exit 1
fi
"""


def gated(project: Project, redis_url: str, free: bool) -> Cluster:
    (project.clone / "gate.sh").write_text(GATE_SH)
    toml = (project.clone / REPO_SETTINGS_FILE).read_text()
    toml = toml.replace('full = "python3 oracle.py"', 'full = "bash gate.sh && python3 oracle.py"')
    toml = toml.replace("env = {", f'env = {{ SYNC = "{project.signals}", ')
    assert "gate.sh" in toml and "SYNC" in toml
    (project.clone / REPO_SETTINGS_FILE).write_text(toml)
    project.commit_all("An oracle that passes the first task only once the second one's agent ran")
    # The oracle watches a host folder, which the judge's sandbox (a private /tmp) would hide.
    config = write_config(project, redis_url, {"claude": 1}, free_slot_in_train=free, unsafe_no_sandbox=True)
    return Cluster(project, config)


@pytest.fixture(params=[True, False], ids=["slot-freed", "slot-held"])
def cluster(request: pytest.FixtureRequest, project: Project, redis_url: str) -> Iterator[Cluster]:
    c = gated(project, redis_url, request.param)
    try:
        yield c
    finally:
        c.stop()
        print(c.dump_logs())


def test_the_next_agent_runs_while_a_candidate_rides_the_train(project: Project, cluster: Cluster) -> None:
    freed = "free_slot_in_train = true" in cluster.config.read_text()
    project.add_tasks(
        {
            "first": task_file("First", "write src/first.txt first", priority=10),
            "second": task_file("Second", f"sh touch {project.signals}/second-ran\nwrite src/second.txt second"),
        }
    )
    worker = cluster.worker("w1", "claude")
    cluster.wait_for_workers(["w1"])
    cluster.beat()

    def settled() -> bool:
        return all(t["state"] in ("landed", "failed") for t in cluster.status()["tasks"])

    wait_for(settled, 120, "both tasks landed or failed")
    assert "second" in project.landed()
    r = cluster_redis(cluster)
    events = [{keys.text(k): keys.text(v) for k, v in f.items()} for _, f in r.xrange(keys.EVENTS)]
    first = [e["state"] for e in events if e["task"] == "first"]
    second_agent = next(i for i, e in enumerate(events) if e["task"] == "second" and e["state"] == "agent_running")
    first_end = next(i for i, e in enumerate(events) if e["task"] == "first" and e["state"] in ("landed", "rejected"))
    if freed:
        assert "first" in project.landed() and "slot_freed" in first and "rejected" not in first, first
        assert second_agent < first_end, "the second agent waited for the first candidate's landing"
        # The pool grew for the ride and is back to its one process once rides are over.
        wait_for(lambda: len(pool(worker.pid)) == 1, 30, "the pool back to one process")
    else:
        # One process per attempt: the first candidate's oracle waited in vain, and the second agent ran after it.
        assert "slot_freed" not in first and "rejected" in first, first
        assert second_agent > first_end, "a held slot ran another agent"


def cluster_redis(cluster: Cluster):  # type: ignore[no-untyped-def]
    import redis

    url = next(ln.split('"')[1] for ln in cluster.config.read_text().splitlines() if ln.startswith("redis_url"))
    return redis.Redis.from_url(url)


def test_a_rider_killed_mid_ride_is_run_again_lands_once_and_the_pool_shrinks_back(
    project: Project, redis_url: str
) -> None:
    cluster = gated(project, redis_url, True)
    try:
        project.add_tasks({"victim": task_file("Victim", "write src/victim.txt victim")})
        worker = cluster.worker("w1", "claude")
        cluster.wait_for_workers(["w1"])
        cluster.beat()
        riding = project.signals / "victim-riding"
        wait_for(riding.exists, 60, "the victim's candidate riding the train")
        wait_for(lambda: len(pool(worker.pid)) == 2, 30, "the pool grown for the rider")
        rider = cluster.lease_holder("victim")
        assert rider is not None
        os.kill(rider, signal.SIGKILL)  # the rider dies with its full oracle under way
        (project.signals / "go").touch()
        wait_for(lambda: "victim" in project.landed(), 90, "the victim landed by another attempt")
        subjects = project.git("log", "--format=%s", "main").splitlines()
        assert subjects.count("Victim") == 1, subjects
        # The attempt that landed may still be finishing its ride: wait for every ride to be over, the dead one's too
        # (its file stays unless the worker removes it, and then the pool would never shrink back).
        riders = project.workdir / "riders"
        wait_for(lambda: not list(riders.glob("*/rider-*")) and len(pool(worker.pid)) == 1, 30,
                 "no rider counted, the dead one included, and the pool back to one process")  # fmt: skip
    finally:
        cluster.stop()
        print(cluster.dump_logs())


def pool(worker: int) -> list[int]:
    """A worker's pool processes that still run (one shrunk away is a zombie until reaped; git is its mirror's)."""
    return [p.pid for p in psutil.Process(worker).children() if proc.alive(p.pid) and p.name() != "git"]
