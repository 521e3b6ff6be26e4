"""The attempt book's one budget, at the level of its promises: what counts, what never does, what retry gives."""

from __future__ import annotations

import threading

import redis

from swarm import dispatch, keys, reaper
from swarm.book import BACKOFF_BASE
from swarm.leases import Lease
from swarm.outcomes import AttemptRecord, Reason
from swarm.runtime import Runtime, connect
from tests.conftest import Project, make_settings, task_file, wait_for
from tests.test_pipeline import pipeline


def free_run(rt: Runtime, task_id: str, reason: Reason) -> None:
    """One attempt that ends for a reason that is not the task's fault, through the book as a worker records it."""
    lease = rt.leases.acquire_task(task_id, 30.0, worker="w9", vendor="claude")
    assert lease is not None
    record = AttemptRecord(task=task_id, vendor="claude", worker="w9", fence=lease.fence, log_dir="/nowhere")
    assert rt.book.begin(record, lease.value) > 0
    record.reject(reason, "not the task's fault")
    rt.book.end(record, lease.value)
    rt.leases.release(lease)


class Queue:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def __call__(self, task_id: str, vendor: str) -> None:
        self.sent.append((task_id, vendor))


def test_a_task_retried_after_failing_really_gets_max_attempts_more_runs(project: Project, rt: Runtime) -> None:
    """max_attempts is 2. Before, a task that had run 3 x max_attempts times (counting runs that were not its
    fault) got one attempt per retry; now every retry gives the whole budget again."""
    project.add_tasks({"broken": task_file("Break it", "write src/alpha.txt BREAK")})
    for _ in range(3 * rt.settings.max_attempts):
        free_run(rt, "broken", Reason.LEASE_LOST)
    assert not rt.book.has_failed("broken") and rt.book.budget("broken").used == 0
    for round_no in range(3):
        outcomes = [pipeline(rt).run("broken", "claude") for _ in range(3)]
        assert outcomes == ["rejected", "failed", "done"], f"budget {round_no}: {outcomes}"
        assert rt.book.budget("broken").used == rt.settings.max_attempts
        assert dispatch.retry(rt, "broken")
        assert rt.book.budget("broken").used == 0 and not rt.book.has_failed("broken")
    assert rt.book.budget("broken").runs == 3 * rt.settings.max_attempts + 3 * 2, "run numbers only grow"
    assert rt.book.budget("broken").backoff_s == 0, "an attempt that was the task's own ends any backoff"


def test_a_lost_lease_does_not_count_and_never_fails_the_task(project: Project, redis_url: str, r: redis.Redis) -> None:
    """max_attempts is 1: a single counted attempt would fail the task."""
    rt = connect(make_settings(project, redis_url, max_attempts=1))
    gate, started = project.signals / "gate", project.signals / "started"
    project.add_tasks({"late": task_file("Late", f"sh touch {started}\nwait-file {gate} 20\nwrite src/alpha.txt a")})
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(pipeline(rt).run("late", "claude")))
    worker.start()
    wait_for(started.exists, 20, "the agent to start")
    r.delete(keys.lease("late"))  # as if it expired while the worker was cut off
    worker.join(30)
    gate.touch()
    assert result == ["rejected"]
    assert rt.book.history("late")[-1].reason == "lease_lost" and not rt.book.history("late")[-1].counted
    assert rt.book.budget("late").used == 0 and not rt.book.has_failed("late")
    assert pipeline(rt).run("late", "claude") == "landed", "the task still has its whole budget"


def test_an_attempt_reaped_as_lost_does_not_count(project: Project, redis_url: str, r: redis.Redis) -> None:
    rt = connect(make_settings(project, redis_url, max_attempts=1))
    lease = rt.leases.acquire_task("gone", 30.0, worker="dead", vendor="claude")
    assert lease is not None
    record = AttemptRecord(task="gone", vendor="claude", worker="dead", fence=lease.fence, log_dir="/nowhere")
    rt.book.begin(record, lease.value)
    r.delete(lease.key)  # the worker died: its lease expired
    assert reaper.reap(rt) == ["gone"]
    assert [h.outcome for h in rt.book.history("gone")] == ["lost"]
    assert rt.book.budget("gone").used == 0 and not rt.book.has_failed("gone")
    late = rt.book.end(record, lease.value)
    assert late.value == "lost" and len(rt.book.history("gone")) == 1, "a lost attempt is not recorded twice"


def test_runs_in_a_row_that_were_not_the_tasks_fault_hold_it_back_in_a_backoff(project: Project, rt: Runtime) -> None:
    """No free-run cap fails a task: repeated infrastructure trouble makes dispatch wait longer before sending it
    again, and the first such run waits nothing (a crashed worker's task is picked up at once)."""
    project.add_tasks({"unlucky": task_file("Unlucky", "write src/alpha.txt alpha")})
    free_run(rt, "unlucky", Reason.INFRASTRUCTURE)
    assert rt.book.budget("unlucky").backoff_s == 0
    queue = Queue()
    assert [t for t, _ in dispatch.dispatch(rt, queue).enqueued] == ["unlucky"], "sent again at once"
    rt.marks.clear("unlucky")
    free_run(rt, "unlucky", Reason.CONFLICT)
    waiting = rt.book.budget("unlucky").backoff_s
    assert 0 < waiting <= BACKOFF_BASE
    report = dispatch.dispatch(rt, queue)
    assert report.enqueued == [] and report.waiting == ["unlucky"], "held back while its backoff runs"
    free_run(rt, "unlucky", Reason.MAIN_MOVED)
    assert rt.book.budget("unlucky").backoff_s > BACKOFF_BASE, "the backoff doubles"
    assert not rt.book.has_failed("unlucky") and rt.book.budget("unlucky").used == 0
    assert pipeline(rt).run("unlucky", "claude") == "landed"


def test_a_lease_a_stale_worker_still_holds_cannot_end_the_new_attempt(project: Project, rt: Runtime) -> None:
    """The book ends only the attempt in flight under the lease it began with."""
    first = rt.leases.acquire_task("t", 30.0, worker="old")
    assert first is not None
    old = AttemptRecord(task="t", vendor="claude", worker="old", fence=first.fence, log_dir="/a")
    rt.book.begin(old, first.value)
    rt.leases.release(first)
    second = rt.leases.acquire_task("t", 30.0, worker="new")
    assert isinstance(second, Lease)
    new = AttemptRecord(task="t", vendor="claude", worker="new", fence=second.fence, log_dir="/b")
    rt.book.begin(new, second.value)
    old.reject(Reason.ORACLE_RED, "late")
    assert rt.book.end(old, first.value).value == "lost"
    assert rt.book.entry("t") is not None and rt.book.entry("t")["worker"] == "new"  # type: ignore[index]
    assert rt.book.budget("t").used == 0
