"""Dispatch: every ready task goes to one vendor queue, once, while that vendor has a free slot; Redis can be
wiped and dispatch rebuilds the queue from git (invariant 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import redis

from swarm import dispatch, keys
from swarm.agents import registry
from swarm.pipeline import Pipeline
from swarm.runtime import Runtime, connect
from tests.cluster import REPO_ROOT
from tests.conftest import Project, announce_slots, make_settings, task_file, vendor_table, wait_for


class Queue:
    """The enqueue function dispatch is given: records (task, vendor) instead of sending a Celery message."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def __call__(self, task_id: str, vendor: str) -> None:
        self.sent.append((task_id, vendor))

    def ids(self) -> list[str]:
        return [t for t, _ in self.sent]


def land_by_ref(project: Project, task_id: str) -> None:
    """Mark a task landed on origin the way the swarm does: the landed ref exists."""
    project.git("update-ref", f"refs/swarm/landed/{task_id}", project.git("rev-parse", "main"))


def queued_markers(r: redis.Redis) -> dict[str, str]:
    return {
        k.decode().removeprefix(keys.queued("")): r.get(k).decode()  # type: ignore[union-attr]
        for k in r.scan_iter(match=keys.queued("*"))
    }


def test_ready_tasks_are_enqueued_once(project: Project, rt: Runtime, r: redis.Redis) -> None:
    project.add_tasks({"alpha": task_file("Alpha"), "beta": task_file("Beta")})
    q = Queue()
    report = dispatch.dispatch(rt, q)
    assert sorted(q.ids()) == ["alpha", "beta"]
    assert sorted(report.enqueued) == sorted(q.sent)
    assert report.main == project.git("rev-parse", "main") and report.invalid == [] and not report.skipped_busy
    assert queued_markers(r) == dict(q.sent)
    assert r.ttl(keys.queued("alpha")) > 0, "a marker expires: a lost message does not block the task forever"
    again = dispatch.dispatch(rt, q)
    assert again.enqueued == [] and len(q.sent) == 2, "a second dispatch enqueues nothing"


def test_each_enqueue_is_recorded_as_an_event(project: Project, rt: Runtime) -> None:
    project.add_tasks({"alpha": task_file("Alpha")})
    dispatch.dispatch(rt, Queue())
    events = [e for e in rt.events.recent() if e["task"] == "alpha"]
    assert [e["state"] for e in events] == ["queued"] and events[0]["vendor"] in ("claude", "codex")


def test_blocked_tasks_wait_for_their_dependencies(project: Project, rt: Runtime) -> None:
    project.add_tasks(
        {
            "base": task_file("Base"),
            "mid": task_file("Mid", depends_on=["base"]),
            "top": task_file("Top", depends_on=["mid", "base"]),
        }
    )
    q = Queue()
    dispatch.dispatch(rt, q)
    assert q.ids() == ["base"]
    land_by_ref(project, "base")
    dispatch.dispatch(rt, q)
    assert q.ids() == ["base", "mid"], "mid is ready once base landed; top still waits for mid"
    land_by_ref(project, "mid")
    dispatch.dispatch(rt, q)
    assert q.ids() == ["base", "mid", "top"]


def test_landed_failed_and_leased_tasks_are_not_enqueued(project: Project, rt: Runtime, r: redis.Redis) -> None:
    project.add_tasks(
        {"landed": task_file("L"), "failed": task_file("F"), "leased": task_file("Ld"), "free": task_file("Free")}
    )
    land_by_ref(project, "landed")
    r.set(keys.failed("failed"), json.dumps({"reason": "oracle_red", "attempts": 2}))
    lease = rt.leases.acquire_task("leased", 30, worker="w9", vendor="codex")
    assert lease is not None
    q = Queue()
    report = dispatch.dispatch(rt, q)
    assert q.ids() == ["free"]
    assert report.waiting == []


def test_leases_and_queued_tasks_use_up_vendor_slots(project: Project, rt: Runtime) -> None:
    project.add_tasks({f"t{i}": task_file(f"T{i}") for i in range(3)})
    for i, vendor in enumerate(["claude", "codex"]):
        assert rt.leases.acquire_task(f"other{i}", 30, worker="w", vendor=vendor) is not None
    q = Queue()
    report = dispatch.dispatch(rt, q)
    assert q.sent == [("t0", "claude")], "claude had 2 slots, one leased; codex's only slot is leased"
    assert report.waiting == ["t1", "t2"]


def test_a_task_naming_a_vendor_goes_only_to_that_vendor(project: Project, rt: Runtime) -> None:
    project.add_tasks(
        {
            "c1": task_file("C1", vendor="codex", priority=3),
            "c2": task_file("C2", vendor="codex", priority=2),
            "any": task_file("Any", priority=1),
        }
    )
    q = Queue()
    report = dispatch.dispatch(rt, q)
    assert ("c1", "codex") in q.sent
    assert all(v == "codex" for t, v in q.sent if t.startswith("c")), q.sent
    assert "c2" in report.waiting and "c2" not in q.ids(), "codex is full: c2 waits rather than go to claude"
    assert ("any", "claude") in q.sent


def test_tasks_without_a_vendor_are_spread_by_free_capacity(project: Project, rt: Runtime) -> None:
    project.add_tasks({f"t{i}": task_file(f"T{i}", priority=10 - i) for i in range(4)})
    q = Queue()
    report = dispatch.dispatch(rt, q)
    vendors = [v for _, v in q.sent]
    assert sorted(vendors) == ["claude", "claude", "codex"], "claude has 2 slots, codex 1"
    assert q.ids() == ["t0", "t1", "t2"], "highest priority first"
    assert report.waiting == ["t3"]
    assert dispatch.dispatch(rt, q).enqueued == [] and len(q.sent) == 3, "the 4th waits while every slot is taken"


def test_a_freed_slot_takes_the_waiting_task(project: Project, rt: Runtime, r: redis.Redis) -> None:
    project.add_tasks({f"t{i}": task_file(f"T{i}", priority=10 - i) for i in range(4)})
    q = Queue()
    dispatch.dispatch(rt, q)
    codex_task = next(t for t, v in q.sent if v == "codex")
    r.delete(keys.queued(codex_task))  # a worker took it ...
    land_by_ref(project, codex_task)  # ... and landed it
    dispatch.dispatch(rt, q)
    assert q.sent[-1] == ("t3", "codex")


def test_an_invalid_task_is_reported_and_the_valid_ones_are_still_dispatched(project: Project, rt: Runtime) -> None:
    project.add_tasks(
        {
            "good": task_file("Good"),
            "Bad_Name": task_file("Bad"),
            "no-title": "---\npriority: 1\n---\nbody\n",
            "elsewhere": task_file("Elsewhere", vendor="mistral"),
            "after-bad": task_file("After", depends_on=["no-title"]),
        }
    )
    q = Queue()
    report = dispatch.dispatch(rt, q)
    assert q.ids() == ["good"]
    text = "\n".join(report.invalid)
    for path, word in [
        ("tasks/Bad_Name.md", "task id"),
        ("tasks/no-title.md", "title"),
        ("tasks/elsewhere.md", "mistral"),
        ("tasks/after-bad.md", "no-title"),
    ]:
        line = next((ln for ln in report.invalid if path in ln), "")
        assert word in line, f"{path} not reported with {word!r} in: {text}"
    assert len(report.invalid) == 4


def test_a_broken_repo_settings_file_is_reported_and_nothing_is_enqueued(project: Project, rt: Runtime) -> None:
    project.add_tasks({"good": task_file("Good")})
    (project.clone / ".swarm.toml").write_text("[oracle\n")
    project.commit_all("Break the settings")
    q = Queue()
    report = dispatch.dispatch(rt, q)
    assert q.sent == []
    assert any(".swarm.toml" in line and "TOML" in line for line in report.invalid), report.invalid


def test_retry_clears_a_failure_so_dispatch_picks_the_task_again(project: Project, rt: Runtime, r: redis.Redis) -> None:
    project.add_tasks({"flaky": task_file("Flaky")})
    r.set(keys.failed("flaky"), json.dumps({"reason": "oracle_red", "attempts": 2}))
    q = Queue()
    dispatch.dispatch(rt, q)
    assert q.sent == []
    assert dispatch.retry(rt, "flaky") is True
    assert not rt.book.has_failed("flaky")
    dispatch.dispatch(rt, q)
    assert q.ids() == ["flaky"]
    assert dispatch.retry(rt, "flaky") is False, "not failed any more"
    assert [e["state"] for e in rt.events.recent() if e["task"] == "flaky"].count("retry") == 2


def test_wiping_redis_loses_no_work_dispatch_rebuilds_the_queue_from_git(
    project: Project, rt: Runtime, r: redis.Redis
) -> None:
    project.add_tasks({"alpha": task_file("Alpha", "write src/alpha.txt alpha"), "beta": task_file("Beta"),
                       "gamma": task_file("Gamma", depends_on=["alpha"])})  # fmt: skip
    table = rt.settings.vendors["claude"]
    pipeline = Pipeline.on(rt, lambda v: registry.make(v, table.adapter, table.options()), "w1")
    assert pipeline.run("alpha", "claude") == "landed"
    assert "alpha" in project.landed()
    q = Queue()
    dispatch.dispatch(rt, q)
    assert sorted(q.ids()) == ["beta", "gamma"]
    r.flushall()
    announce_slots(r, rt.settings)  # live workers announce their slots again within a third of the lease TTL
    q2 = Queue()
    report = dispatch.dispatch(rt, q2)
    assert sorted(q2.ids()) == ["beta", "gamma"], "the queue is rebuilt; the landed task is not enqueued again"
    assert "alpha" not in report.waiting


def test_a_dispatch_already_running_makes_a_second_one_skip(project: Project, rt: Runtime, r: redis.Redis) -> None:
    project.add_tasks({"alpha": task_file("Alpha")})
    r.set(keys.DISPATCH_LOCK, "someone-else", px=5000)
    q = Queue()
    report = dispatch.dispatch(rt, q)
    assert report.skipped_busy and q.sent == [] and not r.exists(keys.queued("alpha"))
    assert r.get(keys.DISPATCH_LOCK) == b"someone-else", "the other dispatcher's lock is left alone"
    r.delete(keys.DISPATCH_LOCK)
    dispatch.dispatch(rt, q)
    assert q.ids() == ["alpha"]
    assert not r.exists(keys.DISPATCH_LOCK), "released after the run"


def test_a_failed_enqueue_leaves_no_marker_so_the_next_dispatch_retries(
    project: Project, rt: Runtime, r: redis.Redis
) -> None:
    project.add_tasks({"alpha": task_file("Alpha")})

    def broken(task_id: str, vendor: str) -> None:
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        dispatch.dispatch(rt, broken)
    assert not r.exists(keys.queued("alpha"))
    assert not r.exists(keys.DISPATCH_LOCK), "the lock is released even when enqueue fails"
    q = Queue()
    dispatch.dispatch(rt, q)
    assert q.ids() == ["alpha"]


def test_choose_vendor_and_free_slots_rules() -> None:
    assert dispatch.choose_vendor(None, {"claude": 2, "codex": 1}) == "claude"
    assert dispatch.choose_vendor(None, {"claude": 1, "codex": 1}) == "claude", "ties go by name"
    assert dispatch.choose_vendor(None, {"claude": 0, "codex": 1}) == "codex"
    assert dispatch.choose_vendor(None, {"claude": 0, "codex": 0}) is None
    assert dispatch.choose_vendor(None, {}) is None
    assert dispatch.choose_vendor("codex", {"claude": 5, "codex": 0}) is None
    assert dispatch.choose_vendor("gemini", {"claude": 5}) is None


def test_a_clean_up_pass_is_queued_after_every_n_landings(project: Project, redis_url: str) -> None:
    from swarm.runtime import connect
    from tests.conftest import make_settings
    from tests.test_pipeline import pipeline, with_coalesce_prompt

    with_coalesce_prompt(project)
    project.add_tasks({"beta": task_file("Beta", "write src/beta.txt beta")})
    rt = connect(make_settings(project, redis_url, coalesce_every=1))
    announce_slots(redis.Redis.from_url(redis_url), rt.settings)
    sent: list[tuple[str, str]] = []
    assert dispatch.dispatch(rt, lambda t, v: sent.append((t, v))).enqueued == sent
    assert [t for t, _ in sent] == ["beta"], "nothing landed yet: no clean-up pass"
    assert pipeline(rt).run("beta", sent[0][1]) == "landed"
    sent.clear()
    dispatch.dispatch(rt, lambda t, v: sent.append((t, v)))
    assert [t for t, _ in sent] == ["coalesce-1"]
    sent.clear()
    dispatch.dispatch(rt, lambda t, v: sent.append((t, v)))
    assert sent == [], "queued once"


DISPATCH_AND_HANG = """
import sys, time
from pathlib import Path
from swarm import dispatch
from swarm.runtime import connect
from tests.conftest import Project, make_settings
root, started = Path(sys.argv[1]), Path(sys.argv[3])
project = Project(root, root / "origin.git", root / "work", root / "workdir")
rt = connect(make_settings(project, sys.argv[2], lease_ttl=float(sys.argv[4])))

def hang(task_id: str, vendor: str) -> None:
    started.touch()
    time.sleep(600)  # a dispatcher stalled inside its run (cut off, stopped), until it is killed

dispatch.dispatch(rt, hang)
"""


def test_a_dispatcher_that_dies_holding_the_lock_blocks_others_for_one_ttl_at_most(
    project: Project, rt: Runtime, redis_url: str
) -> None:
    ttl = rt.settings.lease_ttl
    project.add_tasks({"alpha": task_file("Alpha", priority=2), "beta": task_file("Beta", priority=1)})
    started = project.root / "dispatching"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    stalled = subprocess.Popen([sys.executable, "-c", DISPATCH_AND_HANG, str(project.root), redis_url, str(started),
                                str(ttl)], env=env)  # fmt: skip
    try:
        wait_for(started.exists, 60, "the first dispatcher to hold the lock")
        held_until = time.monotonic() + 2 * ttl
        while time.monotonic() < held_until:  # renewed while its holder lives, well past one ttl
            assert dispatch.dispatch(rt, Queue()).skipped_busy, "the lock of a live dispatcher was taken"
            time.sleep(0.1)
    finally:
        stalled.kill()
        stalled.wait()
    q = Queue()
    wait_for(lambda: not dispatch.dispatch(rt, q).skipped_busy, ttl + 10, "another dispatch to proceed")
    assert q.ids() == ["beta"], "alpha keeps the dead dispatcher's mark until it expires; beta goes now"


def test_a_task_that_lands_while_dispatch_runs_is_never_queued_again(project: Project, redis_url: str) -> None:
    """A landing pushes its landed ref, then releases its lease. A dispatch that read git before the push and
    Redis after the release took the task for ready and queued a no-op attempt of it (issue 11). Dispatch runs in
    a loop here while tasks land one by one; blocked tasks make each dispatch read a large backlog."""
    landing = {f"land-{i}": task_file(f"Land {i}") for i in range(8)}
    blocked = {f"later-{i}": task_file(f"Later {i}", depends_on=["anchor"]) for i in range(120)}
    project.add_tasks({"anchor": task_file("Anchor"), **landing, **blocked})
    settings = make_settings(project, redis_url, vendors={"claude": vendor_table(concurrency=50)})
    rt = connect(settings)
    announce_slots(redis.Redis.from_url(redis_url), settings)
    held = {t: rt.leases.acquire_task(t, 600, worker="w1", vendor="claude") for t in ["anchor", *landing]}
    q, cycles, stop = Queue(), [0], threading.Event()

    def dispatcher() -> None:
        while not stop.is_set():
            dispatch.dispatch(rt, q)
            cycles[0] += 1

    loop = threading.Thread(target=dispatcher)
    loop.start()
    try:
        main = project.git("rev-parse", "main")
        for i, task_id in enumerate(landing):
            seen = cycles[0]
            wait_for(lambda seen=seen: cycles[0] > seen, 60, "the next dispatch")  # type: ignore[misc]
            for _ in range(i % 4):  # land at different points of a dispatch
                project.git("rev-parse", "main")
            project.git("update-ref", f"refs/swarm/landed/{task_id}", main)  # the landing push ...
            lease = held[task_id]
            assert lease is not None and rt.leases.release(lease)  # ... then the lease is released
        seen = cycles[0]
        wait_for(lambda: cycles[0] > seen + 1, 60, "dispatches after the last landing")
    finally:
        stop.set()
        loop.join(60)
    assert set(q.ids()) & set(landing) == set(), f"landed tasks were queued again: {q.sent}"


def test_a_message_a_worker_took_and_lost_is_sent_again_once_the_grace_has_passed(
    project: Project, rt: Runtime, r: redis.Redis
) -> None:
    """A worker that took a message and then lost Redis leaves it in the broker's unacked set for hours: past a
    grace, the task is sent again; a message still waiting in its queue is left alone."""
    from celery import Celery

    from swarm.celeryconfig import from_settings

    app = Celery("dispatch-test")
    app.config_from_object(from_settings(rt.settings))

    def send(task_id: str, vendor: str) -> None:  # a real Celery message on the vendor's queue, as tasks.enqueue
        app.send_task("swarm.tasks.run_task", args=[task_id, vendor], queue=vendor)

    project.add_tasks({"taken": task_file("Taken", vendor="claude"), "waits": task_file("Waits", vendor="codex")})
    assert sorted(dispatch.dispatch(rt, send).enqueued) == [("taken", "claude"), ("waits", "codex")]
    assert r.rpop(keys.broker_queue("claude")) is not None, "a worker takes the message (and then loses it)"
    assert dispatch.dispatch(rt, send).enqueued == [], "within the grace the mark still holds"
    marker_ttl = int(max(600.0, 20 * rt.settings.dispatch_interval))
    for task_id in ("taken", "waits"):  # the marks were set long ago: past the grace
        r.expire(keys.queued(task_id), marker_ttl - 60)
    assert dispatch.dispatch(rt, send).enqueued == [("taken", "claude")]
    assert r.llen(keys.broker_queue("codex")) == 1 and r.llen(keys.broker_queue("claude")) == 1


def test_a_lease_whose_candidate_rides_with_its_slot_handed_back_fills_no_slot(rt: Runtime) -> None:
    """claude has two slots: one lease of an attempt at work fills one; a lease whose car rides the train with its
    slot handed back (free_slot_in_train) fills none, and once the train is twice its window, no car hands back."""
    from swarm import state
    from swarm.errors import AttemptRejected
    from swarm.outcomes import Reason
    from swarm.train import Car, Hooks

    def lease_gone(*args: object) -> None:
        raise AttemptRejected(Reason.LEASE_LOST, "the ride stops at its first step")

    stop = Hooks(lease_gone, lease_gone, lease_gone, lease_gone, lease_gone, lease_gone)  # type: ignore[arg-type]

    rt.leases.acquire_task("working", 30, worker="w", vendor="claude")
    rt.leases.acquire_task("riding", 30, worker="w", vendor="claude")
    rt.train._join(Car("riding:1", freed=True))
    rt.train._join(Car("waiting:1"))
    assert rt.train.freed() == {"riding"}
    assert dispatch.free_slots(rt, state.take(rt))["claude"] == 1
    rt.train._leave("riding:1")
    assert dispatch.free_slots(rt, state.take(rt))["claude"] == 0

    handed: list[str] = []
    for i in range(2 * rt.train.window() - 2):  # one short of twice its window with "waiting": the car hands back
        rt.train._join(Car(f"ahead{i}:1"))
    with pytest.raises(AttemptRejected):
        rt.train.ride("last:1", stop, lambda: handed.append("last"))
    assert handed == ["last"]
    rt.train._join(Car("one-more:1"))
    assert rt.train.depth() == 2 * rt.train.window()
    with pytest.raises(AttemptRejected):
        rt.train.ride("full:1", stop, lambda: handed.append("full"))
    assert handed == ["last"], "a train of twice its window took another car's slot"
