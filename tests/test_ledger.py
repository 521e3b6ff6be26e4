"""The ledger on origin: concurrent appends lose nothing, and a wiped Redis gets budgets, fences and history back."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import redis

from swarm import dispatch, keys, ledger, quota, repo
from swarm.pipeline import Pipeline
from swarm.quota import VendorLedger
from swarm.repo import LandResult, Mirror
from swarm.runtime import Runtime
from tests.cluster import Cluster, write_config
from tests.conftest import Project, announce_slots, task_file, wait_for
from tests.test_pipeline import pipeline


def _mirror(project: Project, tmp_path: Path, name: str) -> Mirror:
    return Mirror(str(project.origin), tmp_path / name / "mirror.git").ensure()


def test_concurrent_writers_on_separate_hosts_never_lose_a_record(project: Project, tmp_path: Path) -> None:
    mirrors = [_mirror(project, tmp_path, f"host{i}") for i in range(4)]
    errors: list[BaseException] = []

    def writer(i: int, mirror: Mirror) -> None:
        try:
            for n in range(5):
                assert ledger.write(mirror, "shared", "end", {"fence": i * 10 + n, "worker": f"w{i}"})
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i, m)) for i, m in enumerate(mirrors)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    reader = _mirror(project, tmp_path, "reader")
    reader.fetch()
    records = ledger.read(reader)["shared"]
    assert sorted(r["fence"] for r in records) == sorted(i * 10 + n for i in range(4) for n in range(5))
    for i in range(4):  # each writer's records stay in the order it wrote them
        assert [r["fence"] for r in records if r["worker"] == f"w{i}"] == [i * 10 + n for n in range(5)]


def _attempt(rt: Runtime, task: str, fence: int, number: int, **end: object) -> None:
    ledger.write(rt.mirror, task, "begin", {"fence": fence, "attempt": number, "vendor": "claude", "started": 100.0})
    if end:
        record = {"fence": fence, "attempt": number, "vendor": "claude", "started": 100.0, "ended": 160.5, **end}
        ledger.write(rt.mirror, task, "end", record)


def test_a_wiped_redis_gets_budgets_fences_failures_and_history_back(rt: Runtime, r: redis.Redis) -> None:
    agent = {"input_tokens": 1000, "output_tokens": 200, "cost_usd": 0.25}
    _attempt(rt, "bad", 1, 1, outcome="rejected", reason="oracle_red", counts=True, agent=agent)
    _attempt(rt, "bad", 2, 2, outcome="rejected", reason="oracle_red", counts=True, failed=True)
    _attempt(rt, "busy", 1, 1, outcome="rejected", reason="agent_rate_limited", counts=False)
    _attempt(rt, "busy", 2, 2, outcome="rejected", reason="oracle_red", counts=True)
    _attempt(rt, "busy", 3, 3)  # in flight when Redis was wiped: it never wrote its end
    r.flushall()

    assert ledger.ensure_loaded(rt)
    assert rt.book.budget("bad").used == 2 and rt.book.budget("bad").runs == 2
    assert json.loads(r.get(keys.failed("bad")) or "{}")["reason"] == "oracle_red"
    assert rt.book.budget("busy").used == 1, "only the attempt that counted uses the budget"
    assert rt.book.budget("busy").runs == 3 and not r.exists(keys.failed("busy"))
    fence = rt.leases.acquire_task("busy", 5.0, worker="w")
    assert fence is not None and fence.fence == 4, "fences continue above the last one used, in flight too"
    history = [json.loads(x) for x in r.lrange(keys.history("bad"), 0, -1)]
    assert [h["reason"] for h in history] == ["oracle_red", "oracle_red"]
    assert history[0]["tokens"] == 1200 and history[0]["cost_usd"] == 0.25 and history[0]["duration"] == 60.5
    total = VendorLedger(r).spend_total("claude")
    assert total["input_tokens"] == 1000 and total["output_tokens"] == 200 and total["cost_usd"] == 0.25
    assert quota.numbers(r.hgetall(keys.spend_day("claude", "1970-01-01")))["cost_usd"] == 0.25, "daily caps hold"
    assert quota.numbers(r.hgetall(keys.spend_task("bad")))["cost_usd:claude"] == 0.25
    lost = [json.loads(x) for x in r.lrange(keys.history("busy"), 0, -1)][-1]
    assert lost["outcome"] == "lost" and lost["fence"] == 3 and lost["counts"] is False
    assert not ledger.ensure_loaded(rt), "loaded once per wipe"


def test_retry_starts_a_fresh_budget_in_the_ledger_too(rt: Runtime, r: redis.Redis) -> None:
    _attempt(rt, "bad", 1, 1, outcome="rejected", reason="oracle_red", counts=True, failed=True)
    ledger.write(rt.mirror, "bad", "retry", {})
    _attempt(rt, "bad", 2, 2, outcome="rejected", reason="oracle_red", counts=True)
    r.flushall()
    ledger.ensure_loaded(rt)
    assert rt.book.budget("bad").used == 1 and not r.exists(keys.failed("bad"))
    assert len(ledger.history(rt, "bad")) == 2


def test_restore_never_lowers_what_redis_counted_since_the_wipe(rt: Runtime, r: redis.Redis) -> None:
    _attempt(rt, "t", 1, 1, outcome="rejected", reason="oracle_red", counts=True)
    r.flushall()
    r.set(keys.fence("t"), 7)
    ledger.ensure_loaded(rt)
    assert r.get(keys.fence("t")) == b"7" and rt.book.budget("t").used == 1


def test_one_task_history_is_not_mixed_with_a_task_whose_name_extends_it(rt: Runtime) -> None:
    _attempt(rt, "a", 1, 1, outcome="landed", reason="")
    _attempt(rt, "a-b", 1, 1, outcome="rejected", reason="oracle_red", counts=True)
    assert [h["outcome"] for h in ledger.history(rt, "a")] == ["landed"]
    assert ledger.history(rt, "missing") == []


def test_a_wipe_between_runs_keeps_failures_history_and_fences(project: Project, rt: Runtime, r: redis.Redis) -> None:
    project.add_tasks(
        {"bad": task_file("Bad", "write src/bad.txt BREAK"), "good": task_file("Good", "write src/g.txt g")}
    )
    runner = pipeline(rt)
    assert [runner.run("bad", "claude") for _ in range(2)] == ["rejected", "failed"]
    assert runner.run("good", "claude") == "landed"
    r.flushall()
    announce_slots(r, rt.settings)  # live workers announce their slots again
    sent: list[tuple[str, str]] = []
    dispatch.dispatch(rt, lambda t, v: sent.append((t, v)))
    assert sent == [], "the failed task is not given a second budget, the landed one is not re-run"
    assert [h.reason for h in rt.book.history("bad")] == ["oracle_red", "oracle_red"]
    assert [h.outcome for h in rt.book.history("good")] == ["landed"]
    lease = rt.leases.acquire_task("bad", 5.0, worker="w")
    assert lease is not None and lease.fence == 3
    assert dispatch.retry(rt, "bad")
    r.flushall()
    assert ledger.ensure_loaded(rt) and not r.exists(keys.failed("bad")), "retry's fresh budget survives a wipe"


@pytest.mark.e2e
def test_a_wipe_mid_run_never_reruns_a_failed_tasks_budget(project: Project, redis_url: str, r: redis.Redis) -> None:
    runs, started2, gate = project.signals / "runs", project.signals / "started2", project.signals / "gate"
    script = f"@1+ sh echo run >> {runs}\n@2 sh touch {started2}\n@2 wait-file {gate} 60\nwrite src/bad.txt BREAK"
    project.add_tasks({"bad": task_file("Bad", script), "good": task_file("Good", "write src/g.txt g")})
    cluster = Cluster(project, write_config(project, redis_url, {"claude": None}, max_attempts=2))
    try:
        cluster.worker("w1", "claude")
        cluster.wait_for_workers(["w1"])
        cluster.beat()
        wait_for(started2.exists, 90, "the second attempt of the bad task to be running")
        r.flushall()  # mid-run: the second attempt's lease, the budget used so far and the history are gone
        gate.touch()
        wait_for(lambda: r.exists(keys.failed("bad")) and "good" in project.landed(), 90, "bad failed, good landed")
        history = json.loads(cluster.swarm("history", "bad", "--json").stdout)
    finally:
        cluster.stop()
    assert runs.read_text().count("run") == 3, "one attempt counted before the wipe: one more after it, not two"
    assert [h["outcome"] for h in history] == ["rejected", "lost", "rejected"], history
    assert [h["fence"] for h in history] == [1, 2, 3], "fences continue above the last one used"


def test_a_record_origin_cannot_take_waits_in_the_spool(project: Project, rt: Runtime, r: redis.Redis) -> None:
    away = project.origin.with_name("away.git")
    project.origin.rename(away)  # origin unreachable, as over a cut link
    try:
        assert not ledger.write(rt.mirror, "t", "end", {"fence": 1, "outcome": "rejected", "reason": "x"}, rt.book)
        assert ledger.flush(rt) == 0 and r.llen(keys.LEDGER_SPOOL) == 1, "still unreachable: kept for later"
    finally:
        away.rename(project.origin)
    assert ledger.flush(rt) == 1 and r.llen(keys.LEDGER_SPOOL) == 0
    assert [h["reason"] for h in ledger.history(rt, "t")] == ["x"]


def _chain(project: Project, tmp_path: Path, task: str) -> list[dict[str, object]]:
    reader = _mirror(project, tmp_path, "chain-reader")
    reader.fetch()
    return ledger.read(reader, task)[task]


def test_a_landing_carries_its_end_record_so_an_attempt_pushes_twice(
    project: Project, rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.add_tasks({"alpha": task_file("Write alpha", "write src/alpha.txt alpha")})
    pushes: list[str] = []
    execute = repo._execute

    def counting(g, args, **kwargs):  # type: ignore[no-untyped-def]
        pushes.extend(args[:1] if args[0] == "push" else [])
        return execute(g, args, **kwargs)

    monkeypatch.setattr(repo, "_execute", counting)
    assert pipeline(rt).run("alpha", "claude") == "landed"
    assert len(pushes) == 2, "the begin record, then the landing with the end record in the same atomic push"
    chain = _chain(project, tmp_path, "alpha")
    assert [(r["event"], r.get("outcome")) for r in chain] == [("begin", None), ("end", "landed")]
    assert chain[1]["commit"] == project.git("rev-parse", "main", cwd=project.origin)
    assert chain[1]["fence"] == chain[0]["fence"] and chain[1]["counts"] is False


def test_the_begin_record_goes_out_beside_the_agent_and_lands_before_the_end(
    project: Project, rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Origin takes the begin record only once the attempt waits for it (or has landed without it): the agent
    ran meanwhile, and the end record still comes after the begin record."""
    project.add_tasks({"alpha": task_file("Write alpha", "write src/alpha.txt alpha")})
    append, collect, land = rt.mirror.append_record, rt.mirror.collect, rt.mirror.land_recorded
    agent_ran, needed = threading.Event(), threading.Event()
    begun = Pipeline._begun

    def slow_begin(ref: str, message: str, tries: int = 20) -> str:
        if '"event": "begin"' in message:
            assert needed.wait(60), "the attempt never needed its begin record"
            assert agent_ran.is_set(), "the agent waited for the begin record to reach origin"
        return append(ref, message, tries)

    def waiting(att):  # type: ignore[no-untyped-def]
        needed.set()  # the attempt waits for its begin record here
        begun(att)

    def landing(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return land(*args, **kwargs)
        finally:
            needed.set()  # an attempt that lands without waiting for its begin record: it comes too late

    def collecting(*args, **kwargs):  # type: ignore[no-untyped-def]
        agent_ran.set()  # the agent has run: its workspace is being read
        return collect(*args, **kwargs)

    monkeypatch.setattr(rt.mirror, "append_record", slow_begin)
    monkeypatch.setattr(rt.mirror, "collect", collecting)
    monkeypatch.setattr(rt.mirror, "land_recorded", landing)
    monkeypatch.setattr(Pipeline, "_begun", staticmethod(waiting))
    assert pipeline(rt).run("alpha", "claude") == "landed"
    chain = _chain(project, tmp_path, "alpha")
    assert [(r["event"], r.get("outcome")) for r in chain] == [("begin", None), ("end", "landed")]


def test_an_end_record_that_lost_its_race_with_another_writer_is_written_after_the_landing(
    project: Project, rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.add_tasks({"alpha": task_file("Write alpha", "write src/alpha.txt alpha")})
    other, land = _mirror(project, tmp_path, "other-host"), rt.mirror.land_recorded

    def raced(old: str, new: str, task_id: str, record: tuple[str, str] | None = None,
              carried: dict[str, str] | None = None) -> tuple[LandResult, bool]:  # fmt: skip
        if record is not None:  # another host appends first (once)
            ledger.write(other, task_id, "retry", {"worker": "someone"})
        return land(old, new, task_id, record, carried=carried)

    monkeypatch.setattr(rt.mirror, "land_recorded", raced)
    assert pipeline(rt).run("alpha", "claude") == "landed"
    chain = _chain(project, tmp_path, "alpha")
    assert [(r["event"], r.get("outcome")) for r in chain] == [("begin", None), ("retry", None), ("end", "landed")]


def test_a_worker_without_a_git_identity_still_lands_and_writes_its_records(
    project: Project, rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service user's HOME has no git config, and git will not guess an identity (useConfigOnly, as on a host
    without a domain name): the swarm's own commits name their author, so records and landings still go out."""
    project.add_tasks({"alpha": task_file("Write alpha", "write src/alpha.txt alpha")})
    home = tmp_path / "service-home"
    home.mkdir()
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "user.useConfigOnly")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "true")
    assert pipeline(rt).run("alpha", "claude") == "landed"
    chain = _chain(project, tmp_path, "alpha")
    assert [(r["event"], r.get("outcome")) for r in chain] == [("begin", None), ("end", "landed")]
    assert ledger.write(rt.mirror, "alpha", "retry", {"worker": "w1"}), "an append on its own names its author too"
