"""Capacity comes from live worker slots: announced with a TTL, paused at shutdown, gone when a worker dies."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator

import pytest
import redis

from swarm import keys, slots
from swarm.settings import Settings
from tests.cluster import Cluster, write_config
from tests.conftest import Project, make_settings, task_file, vendor_table, wait_for


def test_capacity_counts_live_unpaused_slots_up_to_the_cap(project: Project, redis_url: str, r: redis.Redis) -> None:
    settings = make_settings(
        project, redis_url, vendors={"claude": vendor_table(), "codex": vendor_table(concurrency=1)}
    )
    assert slots.capacity(r, settings) == {"claude": 0, "codex": 0}, "no live worker: no capacity, whatever the config"
    for i in range(3):
        slots.announce(r, "claude", f"a-{i}", 60)
        slots.announce(r, "codex", f"b-{i}", 60)
    slots.announce(r, "claude", "paused-0", 60, paused=True)
    slots.announce(r, "gemini", "c-0", 60)  # a vendor this swarm does not configure
    assert slots.capacity(r, settings) == {"claude": 3, "codex": 1}, "codex is capped by its concurrency"
    slots.announce(r, "claude", "short-0", 0.2)
    wait_for(lambda: slots.capacity(r, settings)["claude"] == 3, 5, "an unrenewed slot to expire")


def _capacity(r: redis.Redis, settings: Settings, vendor: str) -> int:
    return slots.capacity(r, settings)[vendor]


@pytest.fixture
def cluster(project: Project, redis_url: str) -> Iterator[Cluster]:
    # codex is configured for two attempts at once; only its live workers decide whether it gets any.
    c = Cluster(project, write_config(project, redis_url, {"claude": None, "codex": 2}))
    try:
        yield c
    finally:
        c.stop()
        print(c.dump_logs())


@pytest.mark.e2e
def test_a_task_reaped_from_a_dead_worker_goes_to_a_vendor_with_a_live_slot(
    project: Project, cluster: Cluster, redis_url: str, r: redis.Redis
) -> None:
    settings = make_settings(project, redis_url, vendors={"claude": vendor_table(), "codex": vendor_table()})
    started = project.signals / "started"
    script = f"@1 sh touch {started}\n@1 sleep 300\nwrite src/v.txt v"
    project.add_tasks({"victim": task_file("Victim", script)})
    doomed = cluster.worker("doomed", "codex")
    stopped = cluster.worker("stopped", "codex")
    cluster.wait_for_workers(["doomed", "stopped"])
    wait_for(lambda: _capacity(r, settings, "codex") == 2, 15, "both codex workers to announce a slot")
    os.kill(stopped.pid, signal.SIGSTOP)  # codex's other worker: alive as a process, but it takes nothing
    wait_for(lambda: _capacity(r, settings, "codex") == 1, 15, "the stopped worker's slot to expire")
    cluster.swarm("dispatch")
    wait_for(started.exists, 60, "the victim's first attempt, on the one live codex worker")
    os.kill(doomed.pid, signal.SIGKILL)
    wait_for(lambda: _capacity(r, settings, "codex") == 0, 15, "the killed worker's slot to expire")
    cluster.worker("claude1", "claude")
    cluster.wait_for_workers(["claude1"])
    cluster.beat()  # the reaper finds the lost attempt and dispatch sends the task where a slot is alive
    wait_for(lambda: "victim" in project.landed(), 90, "the victim to land through claude")
    trailers = project.git("log", "-1", "--format=%(trailers:key=Swarm-Agent,valueonly)", project.landed()["victim"])
    assert trailers.strip() == "claude"


@pytest.mark.e2e
def test_a_worker_shutting_down_pauses_its_slots_and_withdraws_them_on_exit(
    project: Project, cluster: Cluster, redis_url: str, r: redis.Redis
) -> None:
    settings = make_settings(project, redis_url, vendors={"claude": vendor_table(), "codex": vendor_table()})
    started, gate = project.signals / "started", project.signals / "gate"
    project.add_tasks({"slow": task_file("Slow", f"@1 sh touch {started}\n@1 wait-file {gate} 120\nwrite src/s.txt s")})
    worker = cluster.worker("w1", "claude")
    cluster.wait_for_workers(["w1"])
    wait_for(lambda: _capacity(r, settings, "claude") == 1, 15, "the worker's slot")
    cluster.swarm("dispatch")
    wait_for(started.exists, 60, "the attempt to start")
    os.kill(worker.pid, signal.SIGTERM)  # warm shutdown: the running attempt finishes, nothing new comes
    wait_for(lambda: [s["paused"] for s in slots.live(r)] == [True], 15, "the slot to be marked paused")
    assert _capacity(r, settings, "claude") == 0
    gate.touch()
    wait_for(lambda: worker.poll() is not None, 60, "the worker to finish its attempt and exit")
    assert "slow" in project.landed()
    assert slots.live(r) == [], "an exiting worker withdraws its slots at once"


def _holder(r: redis.Redis, node: str) -> dict[str, object] | None:
    raw = r.get(keys.worker_name(node))
    return json.loads(raw) if raw else None


def test_a_worker_name_is_held_by_one_live_process_and_let_go_only_by_it(r: redis.Redis) -> None:
    assert slots.claim_name(r, "w1@host", 60) is None
    assert _holder(r, "w1-host") == {"node": "w1-host", "host": socket.gethostname(), "pid": os.getpid()}
    assert slots.claim_name(r, "w1@host", 60) is None, "its holder renews it"
    other = {"node": "w2-host", "host": "another-machine", "pid": os.getpid()}
    r.set(keys.worker_name("w2-host"), json.dumps(other, sort_keys=True))
    assert slots.claim_name(r, "w2@host", 60) == other, "a holder elsewhere keeps its name"
    slots.release_name(r, "w2@host")
    assert _holder(r, "w2-host") == other, "only the holder lets go"
    slots.release_name(r, "w1@host")
    assert _holder(r, "w1-host") is None


def test_a_dead_holder_of_this_host_is_replaced(r: redis.Redis) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = {"node": "w1-host", "host": socket.gethostname(), "pid": dead.pid}
    r.set(keys.worker_name("w1-host"), json.dumps(stale, sort_keys=True))
    assert slots.claim_name(r, "w1@host", 60) is None
    assert _holder(r, "w1-host") == {**stale, "pid": os.getpid()}


def test_the_registrar_holds_the_name_while_it_runs_and_lets_go_when_it_stops(r: redis.Redis) -> None:
    registrar = slots.Registrar(r, "w1@host", 1, 60, lambda: ["claude"]).start()
    try:
        assert _holder(r, "w1-host") is not None and r.pttl(keys.worker_name("w1-host")) > 0
    finally:
        registrar.stop()
    assert _holder(r, "w1-host") is None
