"""The promises under faults: workers killed, stopped and cut off, Redis restarted and wiped, two swarms, and
agents that hang, crash, flood, cheat and push. Each scenario ends with `swarm audit --oracle`."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from swarm import proc, repo
from swarm.embedded import EmbeddedRedis
from tests.cluster import Cluster, write_config
from tests.conftest import Project, task_file, wait_for
from tests.faults.conftest import Fault
from tests.faults.proxy import Proxy

pytestmark = pytest.mark.e2e

GOOD = {
    "alpha": task_file("Alpha", "write src/alpha.txt alpha", priority=5),
    "beta": task_file("Beta", "write src/beta.txt beta", depends_on=["alpha"]),
}


def start(f: Fault, workers: tuple[tuple[str, str], ...] = (("w1", "claude"), ("w2", "claude"), ("w3", "codex")),
          beat: bool = True) -> None:  # fmt: skip
    for name, queue in workers:
        f.cluster.worker(name, queue)
    f.cluster.wait_for_workers([name for name, _ in workers])
    if beat:
        f.cluster.beat()


def test_worker_main_process_sigkilled_mid_attempt(fault: Fault) -> None:
    started = fault.project.signals / "started"
    script = f"@1 sh touch {started}\n@1 sleep 120\nwrite src/v.txt v"
    fault.project.add_tasks({**GOOD, "victim": task_file("Victim", script, priority=9, vendor="claude")})
    start(fault)
    wait_for(started.exists, 60, "the victim's first attempt")
    pool = fault.cluster.lease_holder("victim")
    assert pool is not None
    os.kill(fault.cluster.procs[fault.cluster.worker_of(pool)].pid, signal.SIGKILL)
    fault.inject("SIGKILL worker main process")
    fault.settle({"alpha", "beta", "victim"})
    wait_for(lambda: not proc.marked("SWARM_TASK_ID=victim"), 15, "the orphaned agent to be killed")


def test_worker_pool_child_sigkilled_mid_attempt(fault: Fault) -> None:
    started = fault.project.signals / "started"
    fault.project.add_tasks({**GOOD, "victim": task_file("Victim", f"@1 sh touch {started}\n@1 sleep 120\n"
                                                          "write src/v.txt v", priority=9)})  # fmt: skip
    start(fault)
    wait_for(started.exists, 60, "the victim's first attempt")
    os.kill(fault.cluster.lease_holder("victim") or 0, signal.SIGKILL)
    fault.inject("SIGKILL pool child")
    report = fault.settle({"alpha", "beta", "victim"})
    assert next(t for t in report["tasks"] if t["id"] == "victim")["attempts"] >= 2
    assert not proc.marked("SWARM_TASK_ID=victim")


def test_worker_sigstopped_past_its_lease_cannot_land_and_its_agent_is_killed(fault: Fault) -> None:
    started, gate = fault.project.signals / "started", fault.project.signals / "gate"
    fault.project.add_tasks({**GOOD, "victim": task_file("Victim", f"@1 sh touch {started}\n@1 wait-file {gate} 120\n"
                                                          "write src/v.txt v", priority=9)})  # fmt: skip
    start(fault)
    wait_for(started.exists, 60, "the victim's first attempt")
    pool = fault.cluster.lease_holder("victim") or 0
    first_agent = proc.marked("SWARM_TASK_ID=victim")
    os.kill(pool, signal.SIGSTOP)
    fault.inject("SIGSTOP worker past its lease TTL")
    wait_for(lambda: "victim" in fault.project.landed(), 60, "the victim to land through another worker")
    assert not [p for p in first_agent if p in proc.marked("SWARM_TASK_ID=victim")], "stale agent killed"
    gate.touch()
    os.kill(pool, signal.SIGCONT)
    report = fault.settle({"alpha", "beta", "victim"})
    assert next(t for t in report["tasks"] if t["id"] == "victim")["attempts"] >= 2


def test_redis_restarted_mid_run(fault: Fault) -> None:
    started = fault.project.signals / "started"
    fault.project.add_tasks(
        {**GOOD, "slow": task_file("Slow", f"@1 sh touch {started}\n@1 sleep 8\nwrite src/s.txt s")}
    )
    start(fault)
    wait_for(started.exists, 60, "an attempt in flight")
    fault.redis.stop()
    time.sleep(1.5)  # Redis is down for a while: part of the fault, not a wait for a condition
    fault.redis.start()
    fault.inject("Redis restarted (no persistence)")
    fault.settle({"alpha", "beta", "slow"})


def test_redis_wiped_mid_run_dispatch_rebuilds_from_git(fault: Fault) -> None:
    started = fault.project.signals / "started"
    fault.project.add_tasks({**GOOD, "slow": task_file("Slow", f"@1 sh touch {started}\n@1 sleep 6\nwrite src/s.txt s",
                                                       priority=9)})  # fmt: skip
    start(fault)
    wait_for(started.exists, 60, "an attempt in flight")
    wait_for(lambda: "alpha" in fault.project.landed(), 60, "alpha to land before the wipe")
    import redis

    redis.Redis.from_url(fault.redis.url).flushall()
    fault.inject("FLUSHALL")
    fault.settle({"alpha", "beta", "slow"})


def test_two_swarms_on_one_origin_keep_main_green_one_landing_or_batch_at_a_time(
    fault: Fault, project: Project, tmp_path: Path
) -> None:
    tasks = {f"t{i}": task_file(f"T{i}", f"write src/t{i}.txt {i}") for i in range(4)}
    project.add_tasks({**GOOD, **tasks})
    other_redis = EmbeddedRedis(tmp_path / "redis2").start()
    other = Cluster(
        project, write_config(project, other_redis.url, {"claude": 2, "codex": 1}, workdir=str(tmp_path / "wd2"))
    )
    other.config = other.config.rename(project.root / "swarm2.toml")
    fault.cluster.config = write_config(project, fault.redis.url, {"claude": 2, "codex": 1})
    try:
        start(fault)
        for name, queue in (("x1", "claude"), ("x2", "codex")):
            other.worker(name, queue)
        other.beat()
        fault.inject("a second swarm on the same origin")
        fault.settle({"alpha", "beta", *tasks})
        # main moves by one landing or by one batch's merge commit (whose shape the audit in settle checked).
        steps = project.git(
            "log", "--first-parent", "--format=%P%x00%(trailers:key=Swarm-Agent,valueonly,separator=)", "main"
        )
        for parents, agent in (line.split("\0") for line in steps.splitlines()):
            assert len(parents.split()) <= 1 or agent.strip() == repo.BATCH_AGENT, f"{parents}: not a landing or batch"
    finally:
        other.stop()
        other_redis.stop()


def test_a_network_cut_between_a_worker_and_redis_longer_than_the_ttl(fault: Fault) -> None:
    started = fault.project.signals / "started"
    script = f"@1 sh touch {started}\n@1 sleep 20\nwrite src/v.txt v"
    fault.project.add_tasks({**GOOD, "victim": task_file("Victim", script, priority=9, vendor="codex")})
    proxy = Proxy(fault.redis.port)
    try:
        fault.cluster.worker("cut", "codex", env={"SWARM_REDIS_URL": proxy.url()})
        start(fault, workers=(("w1", "claude"),))
        wait_for(started.exists, 60, "the victim's attempt behind the proxy")
        proxy.cut()
        fault.inject("network cut worker<->Redis longer than the lease TTL")
        fault.cluster.worker("w4", "codex")  # another codex worker takes the task once the lease is gone
        wait_for(lambda: "victim" in fault.project.landed(), 90, "the victim to land through another worker")
        proxy.restore()
        fault.settle({"alpha", "beta", "victim"})
        wait_for(lambda: not proc.marked("SWARM_TASK_ID=victim"), 15, "the cut-off attempt's agent to be killed")
    finally:
        proxy.close()


# Edits a protected check and replaces the oracle with one that claims everything passes.
CHEAT = "\n".join(
    [
        "write checks/base.check path=src/none\\nexpect=x",
        'write oracle.py print(\'{"passed": 99, "failed": 0}\')',
        "write src/cheat.txt ok",
    ]
)
MISBEHAVING = {
    "hang": "@1 sh sleep 300\nwrite src/hang.txt ok",
    "crash": "@1 sh kill -SEGV $PPID\nwrite src/crash.txt ok",
    "flood": "@1 sh head -c 30000000 /dev/zero | tr '\\\\0' x\nwrite src/flood.txt ok",
    "garbage": "@1 sh head -c 200000 /dev/urandom\n@1 exit 1\nwrite src/garbage.txt ok",
    "idle": "@1 say nothing\n@2+ write src/idle.txt ok",
    "wipe": "@1 sh rm -rf ./* ./.git ./.swarm.toml\nwrite src/wipe.txt ok",
    "cheat": CHEAT,
    "commit-main": "write src/commitmain.txt ok\nsh git checkout -q -B main && git add -A && "
    "git -c user.name=a -c user.email=b commit -qm 'on main'",
    "pusher": "write src/pusher.txt ok\nsh git push origin HEAD:main; git push",
    "outside": "write src/outside.txt ok\nsh echo outside > ../../outside-{task}.txt",
    "breaks": "write src/breaks.txt BREAK",
}


@pytest.mark.timeout(600)  # settles within 240 s after the workers start, then the audit re-runs the oracle
def test_misbehaving_agents_fail_only_their_attempt(fault: Fault) -> None:
    tasks = {tid: task_file(tid, script.replace("{task}", tid)) for tid, script in MISBEHAVING.items()}
    fault.project.add_tasks({**GOOD, **tasks})
    config = write_config(fault.project, fault.redis.url, {"claude": 2, "codex": 1}, agent_timeout=5, max_attempts=3)
    fault.cluster.config = config
    start(fault)
    for tid in MISBEHAVING:
        fault.inject(f"misbehaving agent: {tid}")
    report = fault.settle(set(GOOD) | set(MISBEHAVING) - {"breaks"}, {"breaks"}, timeout=240)
    history = {t["id"]: t for t in report["tasks"]}
    assert history["breaks"]["failure"]["reason"] == "oracle_red"
    main = fault.project
    assert "BREAK" in main.show("oracle.py") and main.show("checks/base.check").endswith("expect=base")
    # One commit per landed task after the project's two (a batch of the train adds a merge commit, which the
    # audit in settle checked).
    landed = main.git("log", "--no-merges", "--format=%H", "main").splitlines()
    assert len(landed) == 2 + len(GOOD) + len(MISBEHAVING) - 1
