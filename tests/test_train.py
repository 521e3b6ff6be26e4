"""The merge train with real Redis, real git, the toy oracle and the scripted agent: speculation, order, re-tests
without a failed car, every commit of main tested as it is, and trees judged once."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from swarm import audit, keys, oracle, train
from swarm.agents import registry
from swarm.counts import Counts
from swarm.errors import AttemptRejected, CoordinationError
from swarm.outcomes import Reason
from swarm.pipeline import Pipeline
from swarm.repo import LandResult
from swarm.runtime import Runtime, connect
from swarm.settings import REPO_SETTINGS_FILE, parse_repo_settings
from tests.conftest import Project, make_settings, task_file, wait_for

# A run that holds only one of src/a.txt and src/b.txt waits until a run holding both has started: serial landing
# (one full oracle at a time, each on main) would never get there, so it proves the full oracles ran speculatively.
# A file holding FULLRED fails the full tier only (the fast tier is the toy oracle alone).
SPEC_SH = """#!/bin/bash
a=0; b=0; [ -f src/a.txt ] && a=1; [ -f src/b.txt ] && b=1
if [ $a = 1 ] && [ $b = 1 ]; then touch "$SYNC/both"
elif [ $a = 1 ] || [ $b = 1 ]; then
  [ $a = 1 ] && touch "$SYNC/a-running"
  for i in $(seq 3000); do [ -f "$SYNC/both" ] && break; sleep 0.05; done
  [ -f "$SYNC/both" ] || exit 1
fi
! grep -qs FULLRED src/*.txt
"""


def scripted_oracle(project: Project, sync: Path, script: str, text: str, why: str) -> None:
    """The full tier runs `script` (holding `text`, with $SYNC the folder the test signals through) before the
    toy oracle."""
    sync.mkdir()
    (project.clone / script).write_text(text)
    toml = (project.clone / REPO_SETTINGS_FILE).read_text()
    toml = toml.replace('full = "python3 oracle.py"', f'full = "bash {script} && python3 oracle.py"')
    toml = toml.replace("env = {", f'env = {{ SYNC = "{sync}", ')
    assert script in toml and "SYNC" in toml
    (project.clone / REPO_SETTINGS_FILE).write_text(toml)
    project.commit_all(why)


def speculative_project(project: Project, sync: Path) -> None:
    scripted_oracle(project, sync, "spec.sh", SPEC_SH, "An oracle that proves speculation")


def run_all(rts: list[Runtime], jobs: list[tuple[str, str]]) -> dict[str, str]:
    outcomes: dict[str, str] = {}

    def one(rt: Runtime, task: str, vendor: str, worker: str) -> None:
        def agent(v: str):  # type: ignore[no-untyped-def]
            table = rt.settings.vendors[v]
            return registry.make(v, table.adapter, table.options())

        outcomes[task] = Pipeline.on(rt, agent, worker).run(task, vendor)

    threads = [
        threading.Thread(target=one, args=(rt, task, vendor, f"w{i}"))
        for i, (rt, (task, vendor)) in enumerate(zip(rts, jobs, strict=True))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)  # a hang guard with a wide margin: this machine is shared
    assert not any(t.is_alive() for t in threads), "an attempt did not finish"
    return outcomes


def runtimes(project: Project, redis_url: str, n: int) -> list[Runtime]:
    # The oracles signal each other through a host folder, which a sandbox (private /tmp) would hide. These tests
    # are about speculation: batching (or `auto` on a busy machine) would test the cars as one tree instead.
    settings = make_settings(project, redis_url, train_window=4, train_batch="speculate", lease_ttl=10.0,
                             unsafe_no_sandbox=True)  # fmt: skip
    return [connect(settings) for _ in range(n)]


def events(r: redis.Redis) -> list[dict[str, str]]:
    return [{keys.text(k): keys.text(v) for k, v in f.items()} for _, f in r.xrange(keys.EVENTS)]


def assert_every_main_commit_was_tested_as_is(project: Project, since: str) -> None:
    green = {sha for tier, sha, verdict, _ in project.oracle_runs() if tier == "full" and verdict == "green"}
    for sha in project.git("rev-list", f"{since}..main").split():
        assert sha in green, f"main's commit {sha[:12]} never passed the full oracle as it is"


def test_cars_land_in_order_each_tested_speculatively_on_the_one_ahead(
    project: Project, redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    speculative_project(project, tmp_path / "sync")
    start = project.main_log()[0]
    project.add_tasks(
        {
            "a": task_file("Write a", "write src/a.txt a"),
            "b": task_file("Write b", f"wait-file {tmp_path}/sync/a-running 60\nwrite src/b.txt b"),
        }
    )
    setup = project.main_log()[0]
    outcomes = run_all(runtimes(project, redis_url, 2), [("a", "claude"), ("b", "codex")])
    assert outcomes == {"a": "landed", "b": "landed"}
    landed = project.landed()
    story = [(e["task"], e["state"], e.get("commit", "")[:8], e.get("onto", "")[:8]) for e in events(r)]
    assert project.git("rev-parse", f"{landed['b']}^") == landed["a"], f"b landed on a, in train order: {story}"
    assert project.git("rev-parse", f"{landed['a']}^") == setup
    assert project.main_log()[0] == landed["b"]
    assert_every_main_commit_was_tested_as_is(project, start)
    # b's full oracle ran on a + b before a landed: the event stream orders them.
    states = [(e["task"], e["state"], e.get("commit")) for e in events(r)]
    b_tested = states.index(("b", "full_oracle", landed["b"]))
    a_landed = states.index(("a", "landed", landed["a"]))
    assert b_tested < a_landed
    assert not r.exists(keys.TRAIN), "every car left the train"


def test_when_a_car_ahead_fails_the_one_behind_is_retested_without_it(
    project: Project, redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    speculative_project(project, tmp_path / "sync")
    project.add_tasks(
        {
            "a": task_file("Break a", "write src/a.txt FULLRED"),
            "b": task_file("Write b", f"wait-file {tmp_path}/sync/a-running 60\nwrite src/b.txt b"),
        }
    )
    setup = project.main_log()[0]
    rts = runtimes(project, redis_url, 2)
    outcomes = run_all(rts, [("a", "claude"), ("b", "codex")])
    assert outcomes == {"a": "rejected", "b": "landed"}
    landed = project.landed()
    assert list(landed) == ["b"] and project.git("rev-parse", f"{landed['b']}^") == setup
    assert project.git("ls-tree", "--name-only", "main", "src/") == "src/b.txt\nsrc/base.txt"
    specs = [e["commit"] for e in events(r) if e["task"] == "b" and e["state"] == "full_oracle"]
    assert len(specs) == 2 and specs[-1] == landed["b"], "b was tested on a + b, then again on main alone"
    assert rts[1].mirror.read(specs[0], "src/a.txt") == b"FULLRED\n"
    assert_every_main_commit_was_tested_as_is(project, setup)
    assert int(r.get(keys.TRAIN_WINDOW) or 0) == 3, "the window halved on the red car and grew on the landing"


def test_a_tree_the_full_oracle_passed_is_not_judged_again(
    project: Project, rt: Runtime, r: redis.Redis, tmp_path: Path
) -> None:
    main = rt.mirror.fetch()
    repo_settings = rt.mirror.read(main, REPO_SETTINGS_FILE)
    assert repo_settings is not None
    settings = parse_repo_settings(repo_settings.decode(), REPO_SETTINGS_FILE)
    runs: list[str] = []

    def test(commit: str) -> oracle.OracleResult:
        runs.append(commit)
        folder = tmp_path / "tree"
        rt.mirror.sync(commit, folder)
        return oracle.run(settings.oracle, "full", folder, tmp_path / f"run{len(runs)}.log", tmp_path / "c", "t", 60)

    hooks = train.Hooks(
        main=rt.mirror.main,
        build=lambda parent: parent,
        test=test,
        baseline=lambda main: None,
        alive=lambda: None,
        land=lambda old, new: LandResult.LANDED,
    )
    cars = train.Train(r, rt.mirror, 2, 10.0)
    first = cars._test(main, hooks)
    # Another commit with the same tree (an empty commit on main) is judged from the cache.
    same_tree = rt.mirror.commit_tree(rt.mirror.tree(main), main, "empty\n", author="t")
    second = cars._test(same_tree, hooks)
    assert runs == [main] and first.ok and second.ok and second.passed == first.passed
    assert r.exists(keys.verdict(rt.mirror.tree(main), "full"))


def test_a_dead_car_is_dropped_and_those_behind_move_up(rt: Runtime, r: redis.Redis) -> None:
    cars = train.Train(r, rt.mirror, 4, 10.0)
    cars._join(train.Car("x:1"))
    cars._join(train.Car("y:1"))
    cars._join(train.Car("z:1"))
    assert [c.member for c in cars._view("z:1").ahead] == ["x:1", "y:1"]
    r.delete(keys.train_car("x:1"))  # what its expiry does when its process died
    assert [c.member for c in cars._view("z:1").ahead] == ["y:1"]
    assert [keys.text(m) for m in r.lrange(keys.TRAIN, 0, -1)] == ["y:1", "z:1"]


@pytest.mark.parametrize("window", [0])
def test_without_a_window_the_merge_lock_path_lands_as_before(
    project: Project, redis_url: str, r: redis.Redis, window: int
) -> None:
    project.add_tasks({"alpha": task_file("Write alpha", "write src/alpha.txt alpha")})
    rt = connect(make_settings(project, redis_url, train_window=window))
    assert run_all([rt], [("alpha", "claude")]) == {"alpha": "landed"}
    assert not r.exists(keys.TRAIN_WINDOW)
    wait_for(lambda: "alpha" in project.landed(), 5, "alpha landed")
    landed = rt.baselines.get(project.landed()["alpha"])
    assert landed is not None and landed.passed == 2


def test_a_car_stays_in_the_train_while_a_long_step_runs(rt: Runtime, r: redis.Redis) -> None:
    """A full oracle outlasts the car's TTL many times over: the car is renewed meanwhile, not taken for dead."""
    cars = train.Train(r, rt.mirror, 4, 3.0)
    entered, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def build(parent: str) -> str:
        entered.set()
        release.wait(60)
        raise AttemptRejected(Reason.CONFLICT, "the test ends the ride here")

    hooks = train.Hooks(
        main=lambda: "0" * 40,
        build=build,
        test=lambda commit: oracle.OracleResult("full", ok=False),
        baseline=lambda main: None,
        alive=lambda: None,
        land=lambda old, new: LandResult.MAIN_MOVED,
    )

    def ride() -> None:
        try:
            cars.ride("x:1", hooks)
        except AttemptRejected as exc:
            failures.append(exc)

    rider = threading.Thread(target=ride)
    rider.start()
    key = keys.train_car("x:1")
    try:
        assert entered.wait(30)
        ttls = [r.pttl(key)]

        def renewed() -> bool:
            # A renewal sets the TTL back to its full value, the value it had on joining: it shows as the TTL
            # rising between two readings of a live entry, not as rising above the first reading (taken at the full
            # value, it is only exceeded by a reading within a millisecond or so of a renewal). Without renewals the
            # TTL only falls, then the entry is gone (-2) and nothing brings it back while the step blocks.
            ttls.append(r.pttl(key))
            assert ttls[-1] != -2, "the car's entry expired while its step ran"  # nothing brings it back: fail now
            return 0 < ttls[-2] < ttls[-1]

        for _ in range(4):  # renewed again and again while the step runs, past one TTL
            wait_for(renewed, 60, "the car's entry renewed")
        assert [keys.text(m) for m in r.lrange(keys.TRAIN, 0, -1)] == ["x:1"]
    finally:  # a failed test must not leave its rider blocked, holding the session open for a minute
        release.set()
        rider.join(30)
    assert len(failures) == 1 and not r.exists(key) and not r.exists(keys.TRAIN)


def test_redis_out_of_reach_during_a_ride_is_a_coordination_error(rt: Runtime) -> None:
    """Not an unexpected error: the pipeline takes it as the infrastructure's fault, and the task keeps its budget."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once it is closed
    cars = train.Train(redis.Redis(port=port, socket_connect_timeout=2), rt.mirror, 4, 10.0)
    hooks = train.Hooks(
        main=lambda: "0" * 40,
        build=lambda parent: parent,
        test=lambda commit: oracle.OracleResult("full", ok=False),
        baseline=lambda main: None,
        alive=lambda: None,
        land=lambda old, new: LandResult.MAIN_MOVED,
    )
    with pytest.raises(CoordinationError, match="Train.ride"):
        cars.ride("x:1", hooks)


# --- batching: one full oracle run for several candidates, landed as one merge commit ---

# The full tier of a candidate waits at a gate the test opens once the train holds every candidate, so the first
# car's run is the only one before they have all joined (main's own runs, with src/base.txt alone, do not wait);
# FULLRED fails the full tier only.
GATE_SH = """#!/bin/bash
if ls src | grep -qv '^base.txt$'; then
  for i in $(seq 3000); do [ -f "$SYNC/go" ] && break; sleep 0.05; done
fi
! grep -qs FULLRED src/*.txt
"""


def gated_project(project: Project, sync: Path) -> None:
    scripted_oracle(project, sync, "gate.sh", GATE_SH, "An oracle gated by the test")


def run_batched(project: Project, redis_url: str, r: redis.Redis, sync: Path, tasks: list[str]) -> dict[str, str]:
    """Every task on its own runtime, batching; the gate opens once all of them are in the train."""
    settings = make_settings(project, redis_url, train_window=8, train_batch="batch", lease_ttl=10.0,
                             unsafe_no_sandbox=True)  # fmt: skip
    rts = [connect(settings) for _ in tasks]

    def open_gate() -> None:
        wait_for(lambda: r.llen(keys.TRAIN) >= 1, 300, "a candidate in the train")
        (sync / "first-in").touch()
        wait_for(lambda: r.llen(keys.TRAIN) == len(tasks), 300, "every candidate in the train")
        (sync / "go").touch()

    gate = threading.Thread(target=open_gate, daemon=True)
    gate.start()
    outcomes = run_all(rts, [(t, "claude" if i % 2 else "codex") for i, t in enumerate(tasks)])
    (sync / "go").touch()
    return outcomes


def full_runs(project: Project, r: redis.Redis) -> list[tuple[str, str]]:
    """(tree, verdict) of every full oracle run on a candidate (not a baseline of main), in the events' order."""
    tested = [e["commit"] for e in events(r) if e["state"] == "full_oracle"]
    verdicts = {sha: v for tier, sha, v, _ in project.oracle_runs() if tier == "full"}
    mirror = project.workdir / "mirror.git"  # the workers' mirror holds every commit they built
    return [(project.git("-C", str(mirror), "rev-parse", f"{sha}^{{tree}}"), verdicts[sha]) for sha in tested]


def assert_main_only_ever_pointed_to_tested_trees(project: Project, since: str, r: redis.Redis) -> None:
    green = {tree for tree, verdict in full_runs(project, r) if verdict == "green"}
    for step, tested in project.main_steps(since):
        assert project.git("rev-parse", f"{tested}^{{tree}}") in green, f"main pointed to {step[:12]}, never tested"


def assert_landed_as_batches(project: Project, since: str, landed: dict[str, str]) -> list[list[str]]:
    """Each step of main since `since` is one landing, or a batch's merge commit: first parent the old main, tree
    exactly the merged line's tip, and on that line each task's own commit with its trailer. The tasks of each."""
    by_commit = {sha: task for task, sha in landed.items()}
    batches = []
    for step in reversed(project.git("rev-list", "--first-parent", f"{since}..main").split()):
        parents = project.git("rev-list", "--parents", "-n", "1", step).split()[1:]
        if len(parents) == 1:
            batches.append([by_commit[step]])
            continue
        old_main, tip = parents
        assert project.git("rev-parse", f"{step}^{{tree}}") == project.git("rev-parse", f"{tip}^{{tree}}")
        line = project.git("rev-list", "--reverse", f"{old_main}..{tip}").split()
        tasks = [by_commit[sha] for sha in line]
        for task, sha in zip(tasks, line, strict=True):
            trailer = project.git("log", "-1", "--format=%(trailers:key=Swarm-Task,valueonly)", sha).strip()
            assert trailer == task, "each task keeps its own commit and trailers on the merged line"
        assert f"Swarm-Batch: {' '.join(tasks)}" in project.git("log", "-1", "--format=%B", step)
        batches.append(tasks)
    return batches


def test_a_batch_is_tested_as_one_tree_and_lands_as_one_merge_commit_audit_follows(
    project: Project, redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    gated_project(project, tmp_path / "sync")
    project.add_tasks({name: task_file(f"Write {name}", f"write src/{name}.txt {name}") for name in "abc"})
    setup = project.main_log()[0]
    outcomes = run_batched(project, redis_url, r, tmp_path / "sync", ["a", "b", "c"])
    assert outcomes == {"a": "landed", "b": "landed", "c": "landed"}
    landed = project.landed()
    # Whoever joined while another's full oracle ran waited for it; those waiting together were tested once, as one
    # tree, and landed as one merge commit whose first parent is the old main (a car alone lands as before).
    batches = assert_landed_as_batches(project, setup, landed)
    assert any(len(batch) > 1 for batch in batches), batches
    assert sorted(t for batch in batches for t in batch) == ["a", "b", "c"]
    runs = full_runs(project, r)
    assert len(runs) == len(batches) and all(v == "green" for _, v in runs), f"one run per batch: {runs} {batches}"
    assert_main_only_ever_pointed_to_tested_trees(project, setup, r)
    states = [e["state"] for e in events(r)]
    assert states.count("batch_landed") == sum(len(b) > 1 for b in batches)
    assert states.count("landed_in_batch") == sum(len(b) - 1 for b in batches)
    assert not r.exists(keys.TRAIN), "every car left the train"
    # `swarm audit` follows the shape: the merged line is each task's landing, the oracle judges main's own steps.
    rt = connect(make_settings(project, redis_url, unsafe_no_sandbox=True))
    steps = len(batches) + 1  # main's own steps: one per batch, and the gate's commit before them
    report = audit.audit(rt.mirror, check_oracle=True, last=steps, workdir=tmp_path / "audit", sandboxed=False)
    assert report.ok, report.problems
    assert report.oracle_runs == steps


def test_a_red_batch_is_bisected_its_green_half_lands_and_only_the_culprit_is_rejected(
    project: Project, redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    gated_project(project, tmp_path / "sync")
    scripts = {name: f"write src/{name}.txt {name}" for name in "abde"}
    # The culprit joins once another car has (first and alone, it would be tested alone: no batch to bisect).
    scripts["c"] = f"wait-file {tmp_path}/sync/first-in 120\nwrite src/c.txt FULLRED"
    project.add_tasks({name: task_file(f"Write {name}", body) for name, body in scripts.items()})
    setup = project.main_log()[0]
    outcomes = run_batched(project, redis_url, r, tmp_path / "sync", list("abcde"))
    assert outcomes == {"a": "landed", "b": "landed", "c": "rejected", "d": "landed", "e": "landed"}, events(r)
    landed = project.landed()
    assert "c" not in landed and "src/c.txt" not in project.git("ls-tree", "--name-only", "main", "src/")
    assert_main_only_ever_pointed_to_tested_trees(project, setup, r)
    states = [(e["task"], e["state"]) for e in events(r)]
    assert any(s == "batch_red" for _, s in states), "the batch of four was red as one tree"
    runs = full_runs(project, r)
    # Bisection, not one run per candidate: a alone, the red four, then halves, then the rest as one batch.
    assert len(runs) <= 6, runs
    rejected = [e for e in events(r) if e["task"] == "c" and e["state"] == "rejected"]
    assert rejected and rejected[-1].get("reason") == "oracle_red", rejected
    rt = connect(make_settings(project, redis_url, unsafe_no_sandbox=True))
    assert audit.audit(rt.mirror).ok


def test_a_batch_lands_only_while_every_car_in_it_holds_its_lease(rt: Runtime, r: redis.Redis) -> None:
    """The fence check covers the cars a batch lands for others: one whose attempt lost its lease holds it back."""
    main = rt.mirror.fetch()
    ahead = rt.mirror.commit_tree(rt.mirror.tree(main), main, "x\n", author="t")
    r.rpush(keys.TRAIN, "x:1")  # a car ahead, untested (batching), whose attempt is in another process
    r.hset(keys.train_car("x:1"), mapping={"spec": ahead, "parent": main, "state": "", "counts": ""})
    holds, asked, pushes = threading.Event(), [], []

    def current(members: list[str]) -> bool:
        asked.append(members)
        return holds.is_set()

    def land_batch(base: str, tip: str, members: list[tuple[str, str]], counts: object) -> tuple[LandResult, str]:
        pushes.append((base, tip, members))
        return LandResult.LANDED, "f" * 40

    hooks = train.Hooks(
        main=rt.mirror.main,
        build=lambda parent: rt.mirror.commit_tree(rt.mirror.tree(parent), parent, "y\n", author="t"),
        test=lambda commit: oracle.OracleResult("full", ok=True, passed=1),
        baseline=lambda main: None,
        alive=lambda: None,
        land=lambda old, new: LandResult.MAIN_MOVED,
        land_batch=land_batch,
        current=current,
    )
    cars = train.Train(r, rt.mirror, 4, 10.0, "batch")
    landed: list[tuple[str, object]] = []
    rider = threading.Thread(target=lambda: landed.append(cars.ride("y:1", hooks)), daemon=True)
    rider.start()
    wait_for(lambda: len(asked) >= 3, 30, "the batch checked its cars' leases")
    assert asked[0] == ["x:1"] and not pushes, "no push while a car of the batch has lost its lease"
    holds.set()
    rider.join(timeout=30)
    assert landed and len(pushes) == 1
    base, tip, members = pushes[0]
    assert base == main and members == [("x:1", ahead), ("y:1", tip)] and rt.mirror.parents(tip) == [ahead]
    assert keys.text(r.hget(keys.train_car("x:1"), "landed") or b"") == "f" * 40, "the car ahead is told"
    assert r.pttl(keys.train_car("x:1")) > 0, "an entry written for another car expires (its process may be dead)"


def test_a_batching_worker_and_a_speculating_one_agree_on_how_the_train_runs(rt: Runtime, r: redis.Redis) -> None:
    """Workers set differently (or `auto` on machines of different load) share one train, run one way at a time.
    Were each car to decide alone, the batching car ahead would wait for the one behind to test it in a batch,
    while that one, speculating, waited for the car ahead to test itself: neither would ever land."""
    main = rt.mirror.fetch()
    stop = threading.Event()
    specs: dict[str, str] = {}
    ridden: dict[str, tuple[str, object]] = {}

    def alive() -> None:
        if stop.is_set():
            raise AttemptRejected(Reason.LEASE_LOST, "the test gave up on the train")

    def hooks(member: str) -> train.Hooks:
        def build(parent: str) -> str:
            if member == "x:1":  # the car ahead builds once the one behind has joined: it is not the last car
                wait_for(lambda: r.llen(keys.TRAIN) == 2 or stop.is_set(), 60, "the second car joined")
            specs[member] = rt.mirror.commit_tree(rt.mirror.tree(parent), parent, f"{member}\n", author="t")
            return specs[member]

        return train.Hooks(
            main=lambda: main,
            build=build,
            test=lambda commit: oracle.OracleResult("full", ok=True, passed=1),
            baseline=lambda main: None,
            alive=alive,
            land=lambda old, new: LandResult.LANDED,
            land_batch=lambda base, tip, members, counts: (LandResult.LANDED, "f" * 40),
            landed=lambda: specs.get(member),
        )

    def ride(mode: train.Mode, member: str) -> None:
        ridden[member] = train.Train(r, rt.mirror, 4, 10.0, mode).ride(member, hooks(member))

    riders = [threading.Thread(target=ride, args=("batch", "x:1"), daemon=True)]
    riders[0].start()
    wait_for(lambda: r.llen(keys.TRAIN) == 1, 30, "the first car joined")
    riders.append(threading.Thread(target=ride, args=("speculate", "y:1"), daemon=True))
    riders[1].start()
    try:
        for rider in riders:
            rider.join(timeout=60)  # a few seconds at most; a hang guard with a wide margin
        assert sorted(ridden) == ["x:1", "y:1"], f"the cars waited on each other: {r.hgetall(keys.train_car('y:1'))}"
    finally:
        stop.set()
        for rider in riders:
            rider.join(timeout=30)


def car_commit(rt: Runtime, parent: str, member: str) -> str:
    """A commit on parent adding a file of its own: a tree no other car has, so none is judged by another's verdict."""
    git = ["git", "-C", str(rt.mirror.path)]
    blob = subprocess.run([*git, "hash-object", "-w", "--stdin"], input=member.encode(), capture_output=True,
                          check=True).stdout.decode().strip()  # fmt: skip
    listing = subprocess.run([*git, "ls-tree", parent], capture_output=True, check=True, text=True).stdout
    entries = f"{listing}100644 blob {blob}\t{member.replace(':', '-')}.txt\n"
    tree = subprocess.run([*git, "mktree"], input=entries, capture_output=True, check=True, text=True).stdout.strip()
    return rt.mirror.commit_tree(tree, parent, f"{member}\n", author="t")


def ride_in_order(
    cars: train.Train, r: redis.Redis, hooks: Callable[[str], train.Hooks], members: tuple[str, ...]
) -> dict[str, object]:
    """The cars join the train in this order, each once the one before has; all ride to the end. What each ride
    returned, or the reason it was rejected for, by car."""
    ridden: dict[str, object] = {}

    def ride(member: str) -> None:
        try:
            ridden[member] = cars.ride(member, hooks(member))
        except AttemptRejected as exc:
            ridden[member] = exc.reason

    riders = [threading.Thread(target=ride, args=(m,), daemon=True) for m in members]
    for joined, rider in enumerate(riders):
        rider.start()
        wait_for(lambda joined=joined: r.llen(keys.TRAIN) >= joined + 1 or bool(ridden), 30, "the car joined")
    for rider in riders:
        rider.join(timeout=60)  # seconds at most; a hang guard with a wide margin
    return ridden


def ride_two(cars: train.Train, r: redis.Redis, hooks: Callable[[str], train.Hooks]) -> dict[str, object]:
    """Car x:1 joins the train, then y:1 behind it; both ride to the end."""
    return ride_in_order(cars, r, hooks, ("x:1", "y:1"))


@pytest.mark.parametrize(
    ("cores_busy", "cores_waited", "shape"), [(1.0, 0.0, "batch"), (0.25, 0.75, "batch"), (0.01, 0.0, "speculate")]
)
def test_auto_batches_by_the_cpu_share_the_full_oracle_runs_wanted(
    rt: Runtime, r: redis.Redis, cores_busy: float, cores_waited: float, shape: str
) -> None:
    """`auto` asks how much of a machine the full oracle's runs wanted: one that kept every core busy batches two
    cars (speculating, they would share the cores), and so does one that got a quarter of them and waited for the
    rest (it ran beside others); one that mostly slept speculates, however busy the machine is with anything else.
    The first ride measures it: its figures are what the judge read of its run."""
    main = rt.mirror.fetch()
    cores = os.cpu_count() or 1
    specs: dict[str, str] = {}
    lands: list[str] = []
    batches: list[list[tuple[str, str]]] = []

    def hooks(member: str, files: str, wait_for_second: bool = False) -> train.Hooks:
        def build(parent: str) -> str:
            if wait_for_second:  # the car ahead builds once the one behind has joined: it is not the last car
                wait_for(lambda: r.llen(keys.TRAIN) == 2, 60, "the second car joined")
            specs[member] = rt.mirror.commit_tree(rt.mirror.tree(parent), parent, f"{member} {files}\n", author="t")
            return specs[member]

        def land_batch(base: str, tip: str, members: list[tuple[str, str]], counts: object) -> tuple[LandResult, str]:
            batches.append(members)
            return LandResult.LANDED, "f" * 40

        def land(old: str, new: str) -> LandResult:
            lands.append(member)
            return LandResult.LANDED

        return train.Hooks(
            main=lambda: main,
            build=build,
            test=lambda commit: oracle.OracleResult(
                "full",
                ok=True,
                passed=1,
                seconds=2.0,
                cpu_seconds=2.0 * cores * cores_busy,
                cpu_waited=2.0 * cores * cores_waited,
            ),  # fmt: skip
            baseline=lambda main: None,
            alive=lambda: None,
            land=land,
            land_batch=land_batch,
            landed=lambda: specs.get(member) if batches else None,
        )

    cars = train.Train(r, rt.mirror, 4, 10.0, "auto")
    # Nothing measured yet, the load average decided: the wrong way, say, and for a minute.
    r.set(keys.TRAIN_MODE, "speculate" if shape == "batch" else "batch", px=60_000)
    assert cars.ride("m:1", hooks("m:1", "measured")), "a car alone lands"
    assert lands == ["m:1"] and r.llen(keys.TRAIN_ORACLE_SHARE) == 1, "the ride kept its run's CPU share"
    assert not r.exists(keys.TRAIN_MODE), "the first run measured ends the answer made without one"
    r.delete(keys.verdict(rt.mirror.tree(main), "full"))  # the cars below run their oracle (same tree)
    lands.clear()
    ridden = ride_two(cars, r, lambda m: hooks(m, m, m == "x:1"))
    assert sorted(ridden) == ["x:1", "y:1"], "both cars left the train"
    if shape == "batch":
        assert batches == [[("x:1", specs["x:1"]), ("y:1", specs["y:1"])]] and not lands, "one run, one merge"
    else:
        assert not batches and lands == ["x:1", "y:1"], "each car tested and landed on its own"


# The candidate's full run (its tree holds src/alpha.txt) passes only if main's own run starts while it runs.
EARLY_SH = """#!/bin/bash
if [ -f src/alpha.txt ]; then
  for i in $(seq 600); do [ -f "$SYNC/main-running" ] && exit 0; sleep 0.05; done
  exit 1
fi
touch "$SYNC/main-running"
"""


def test_main_without_counts_is_measured_beside_the_head_cars_own_full_run(
    project: Project, redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """A human's push leaves main without counts: the head car's full run and main's run go at once, so the car
    waits for one oracle run, not two (a full run that waits for main's would never end if they ran in turn)."""
    scripted_oracle(project, tmp_path / "sync", "early.sh", EARLY_SH, "An oracle that proves the overlap")
    project.add_tasks({"alpha": task_file("Write alpha", "write src/alpha.txt alpha")})
    pushed = project.main_log()[0]
    (rt,) = runtimes(project, redis_url, 1)
    r.lpush(keys.TRAIN_ORACLE_SHARE, "0.01")  # the oracle was measured as one that waits: two runs fit at once
    assert rt.baselines.get(pushed) is None
    assert run_all([rt], [("alpha", "claude")]) == {"alpha": "landed"}, events(r)
    assert rt.baselines.get(pushed) is not None, "main's counts were kept"
    measured = [commit for tier, commit, _, _ in project.oracle_runs() if tier == "full"]
    assert measured.count(pushed) == 1, "main was measured once"
    record = rt.book.history("alpha")[-1]
    assert record.baseline is not None, "the attempt's baseline is main's counts, as when measured after its run"


@pytest.mark.parametrize("human_push", [False, True])
def test_a_car_lands_on_the_car_ahead_without_a_fetch_and_the_push_still_decides(
    rt: Runtime, r: redis.Redis, human_push: bool
) -> None:
    """The car ahead landed alone, as this car's parent: that is main now, so the car behind pushes with no fetch
    first. If main moved meanwhile (a human's push), the compare-and-swap refuses, and the car fetches, rebuilds
    on what it fetched and lands there."""
    main = rt.mirror.fetch()
    human = rt.mirror.commit_tree(rt.mirror.tree(main), main, "a human's push\n", author="t")
    state = {"main": main}
    fetches: dict[str, int] = {"x:1": 0, "y:1": 0}
    pushes: list[tuple[str, str, str]] = []
    specs: dict[str, str] = {}

    def hooks(member: str) -> train.Hooks:
        def fetch() -> str:
            fetches[member] += 1
            return state["main"]

        def build(parent: str) -> str:
            if member == "x:1":  # builds once the car behind has joined, so that one builds on it
                wait_for(lambda: r.llen(keys.TRAIN) == 2, 60, "the second car joined")
            specs[member] = rt.mirror.commit_tree(rt.mirror.tree(parent), parent, f"{member}\n", author="t")
            return specs[member]

        def land(old: str, new: str) -> LandResult:
            if old != state["main"]:
                return LandResult.MAIN_MOVED
            pushes.append((member, old, new))
            state["main"] = new
            if human_push and member == "x:1":
                state["main"] = human  # pushed by hand right after the car ahead landed
            return LandResult.LANDED

        def test(commit: str) -> oracle.OracleResult:
            if member == "x:1":  # the car ahead's run ends once the one behind has built on it
                wait_for(lambda: "y:1" in specs, 60, "the car behind built")
            return oracle.OracleResult("full", ok=True, passed=1)

        return train.Hooks(
            main=fetch,
            build=build,
            test=test,
            baseline=lambda main: None,
            alive=lambda: None,
            land=land,
        )

    cars = train.Train(r, rt.mirror, 4, 10.0, "speculate")
    ridden = ride_two(cars, r, hooks)
    assert sorted(ridden) == ["x:1", "y:1"], "both cars left the train"
    assert [(m, old) for m, old, _ in pushes] == [("x:1", main), ("y:1", human if human_push else specs["x:1"])]
    assert specs["y:1"] == pushes[1][2]
    if human_push:
        assert fetches["y:1"] >= 1 and rt.mirror.parents(specs["y:1"]) == [human], "rebuilt on what it fetched"
    else:
        assert fetches["y:1"] == 0, "the car behind landed on the car ahead with no fetch"


def test_a_car_whose_run_ends_after_the_car_ahead_landed_is_judged_on_its_counts_not_a_new_run(
    rt: Runtime, r: redis.Redis
) -> None:
    """The car ahead landed while the car behind's run went on: main is that car now, and its counts are what the
    car behind is judged against. They are kept before the car ahead leaves the line; kept later (as the attempt
    ends), the car behind could find none and run the full oracle on main once more."""
    main = rt.mirror.fetch()
    state = {"main": main}
    known: dict[str, Counts] = {}
    measured: list[str] = []
    specs: dict[str, str] = {}
    landed: list[str] = []

    def hooks(member: str) -> train.Hooks:
        def build(parent: str) -> str:
            if member == "x:1":
                wait_for(lambda: r.llen(keys.TRAIN) == 2, 60, "the second car joined")
            specs[member] = car_commit(rt, parent, member)
            return specs[member]

        def test(commit: str) -> oracle.OracleResult:
            if member == "x:1":
                wait_for(lambda: "y:1" in specs, 60, "the car behind built on this one")
            else:
                # ... and left the line, while this run went on: the car behind never sees it ahead again
                wait_for(lambda: "x:1" in landed and b"x:1" not in r.lrange(keys.TRAIN, 0, -1), 60, "x landed")
            return oracle.OracleResult("full", ok=True, passed=2 if member == "y:1" else 1)

        def baseline(commit: str) -> Counts | None:
            if commit not in known:
                measured.append(commit)  # the pipeline would run the full oracle on main here
            return known.get(commit)

        def land(old: str, new: str) -> LandResult:
            if old != state["main"]:
                return LandResult.MAIN_MOVED
            state["main"] = new
            landed.append(member)
            return LandResult.LANDED

        return train.Hooks(
            main=lambda: state["main"],
            build=build,
            test=test,
            baseline=baseline,
            alive=lambda: None,
            land=land,
            landed_as=lambda commit, counts: known.update({commit: counts}),
        )

    cars = train.Train(r, rt.mirror, 4, 10.0, "speculate")
    known[main] = Counts(1, 0, 0)
    ridden = ride_two(cars, r, hooks)
    assert landed == ["x:1", "y:1"], ridden
    assert measured == [], "main's counts came from the car that landed as main, not from another run"
    assert known[specs["x:1"]].passed == 1 and known[specs["y:1"]].passed == 2


@pytest.mark.parametrize(("share", "beside"), [(0.01, True), (0.9, False)])
def test_main_is_measured_beside_a_car_only_where_two_runs_fit_the_machine(
    rt: Runtime, r: redis.Redis, share: float, beside: bool
) -> None:
    """Two runs at once that need more than the machine only slow each other down (and risk the timeout): then
    main is measured after the car's run, as before."""
    main = rt.mirror.fetch()
    r.lpush(keys.TRAIN_ORACLE_SHARE, str(share))
    asked: list[str] = []
    hooks = train.Hooks(
        main=lambda: main,
        build=lambda parent: rt.mirror.commit_tree(rt.mirror.tree(parent), parent, "x\n", author="t"),
        test=lambda commit: oracle.OracleResult("full", ok=True, passed=1),
        baseline=lambda main: None,
        alive=lambda: None,
        land=lambda old, new: LandResult.LANDED,
        early_baseline=asked.append,
    )
    assert train.Train(r, rt.mirror, 4, 10.0, "speculate").ride("x:1", hooks)
    assert asked == ([main] if beside else [])


# --- a car landing carries the green cars right behind it in its push ---


@pytest.mark.parametrize("case", ["carried", "lease gone", "off the line"])
def test_green_cars_right_behind_the_head_land_in_its_push(rt: Runtime, r: redis.Redis, case: str) -> None:
    """The car behind was judged green on the head's run before the head was judged, so the head's one push lands
    both: main moves past both commits, each task's landed ref on its own commit; the car behind pushes nothing and
    returns its own run's verdict. Not carried, the head landing alone and the car behind as before: a car whose
    attempt no longer holds its lease, and one whose commit is not a child of the head's in git, whatever the
    train's entry in Redis says (main would move to a line without the head's commit)."""
    main = rt.mirror.fetch()
    state = {"main": main}
    specs: dict[str, str] = {}
    pushes: list[tuple[str, str, str, list[tuple[str, str]]]] = []
    asked: list[list[str]] = []
    story: list[str] = []

    def hooks(member: str) -> train.Hooks:
        def build(parent: str) -> str:
            if member == "x:1":  # builds once the car behind has joined, so that one builds on it
                wait_for(lambda: r.llen(keys.TRAIN) == 2, 60, "the second car joined")
            on = main if case == "off the line" and member == "y:1" else parent  # a build gone wrong
            specs[member] = car_commit(rt, on, member)
            return specs[member]

        def baseline(commit: str) -> Counts | None:
            # The head is judged once the car behind has judged itself on the head's run, not on its verdict.
            wait_for(lambda: r.hget(keys.train_car("y:1"), "state") == b"green", 60, "the car behind green")
            return Counts(1)

        def land(old: str, new: str) -> LandResult:
            return land_run(old, new, [])

        def land_run(old: str, new: str, run: list[tuple[str, str]]) -> LandResult:
            if old != state["main"]:
                return LandResult.MAIN_MOVED
            pushes.append((member, old, new, run))
            state["main"] = run[-1][1] if run else new
            return LandResult.LANDED

        def current(members: list[str]) -> bool:
            asked.append(members)
            return case != "lease gone"

        return train.Hooks(
            main=lambda: state["main"],
            build=build,
            test=lambda commit: oracle.OracleResult("full", ok=True, passed=2 if member == "y:1" else 1),
            baseline=baseline,
            alive=lambda: None,
            land=land,
            land_run=land_run,
            landed=lambda: specs.get(member) if any(specs.get(member) in (p[2], *dict(p[3]).values()) for p in pushes)
            else None,
            current=current,
            emit=lambda state_name, **fields: story.append(state_name),
        )  # fmt: skip

    cars = train.Train(r, rt.mirror, 4, 10.0, "speculate")
    ridden = ride_two(cars, r, hooks)
    assert sorted(ridden) == ["x:1", "y:1"], "both cars left the train"
    assert asked == ([] if case == "off the line" else [["y:1"]]), "whether the car behind still holds its lease"
    if case == "carried":
        assert pushes == [("x:1", main, specs["x:1"], [("y:1", specs["y:1"])])], "one push for both"
        assert state["main"] == specs["y:1"] and rt.mirror.parents(specs["y:1"]) == [specs["x:1"]]
        landed, result = ridden["y:1"]  # type: ignore[misc]
        assert landed == specs["y:1"] and result.passed == 2, "the car behind's own commit and run"
        assert story.count("run_landed") == 1 and story.count("landed_in_run") == 1
    else:
        assert [(m, old) for m, old, _, run in pushes] == [("x:1", main), ("y:1", specs["x:1"])]
        assert all(not run for *_, run in pushes) and "run_landed" not in story


def test_a_car_red_on_the_run_ahead_waits_for_that_cars_verdict_before_it_is_rejected(
    rt: Runtime, r: redis.Redis
) -> None:
    """A car may be judged green on the run of the car ahead before that car is judged (a red car ahead leaves, and
    the car is built again without it), never red: measured against a car ahead that is red itself, a drop says
    nothing about the car's own work. Here the car ahead drops a test main passes and the car behind inherits the
    drop; rejected on the run ahead, it would be paid work thrown away."""
    main = rt.mirror.fetch()
    specs: dict[str, list[str]] = {"x:1": [], "y:1": []}
    tested: list[tuple[str, str]] = []
    landed: list[str] = []
    cars = train.Train(r, rt.mirror, 4, 10.0, "speculate")
    # The car behind must look at the train while the run ahead has counted and is not judged yet: the car ahead's
    # verdict waits until the car behind has waited twice since that run's counts were out (so one whole look came
    # in between), or has left the train. Without that hold, a quick verdict ahead could hide the car behind's.
    waits_after_run_ahead = 0
    own_wait = cars._wait

    def wait() -> None:
        nonlocal waits_after_run_ahead
        if cars._local.member == "y:1" and r.hget(keys.train_car("x:1"), "result"):
            waits_after_run_ahead += 1
        own_wait()

    cars._wait = wait  # type: ignore[method-assign]

    def car_behind_looked() -> bool:
        return waits_after_run_ahead >= 2 or "y:1" not in {keys.text(m) for m in r.lrange(keys.TRAIN, 0, -1)}

    def baseline(member: str) -> Counts:
        if member == "x:1":
            wait_for(car_behind_looked, 60, "the car behind to look at the run ahead")
        return Counts(5)

    def hooks(member: str) -> train.Hooks:
        def build(parent: str) -> str:
            if member == "x:1":
                wait_for(lambda: r.llen(keys.TRAIN) == 2, 60, "the second car joined")
            specs[member].append(car_commit(rt, parent, member))
            return specs[member][-1]

        def test(commit: str) -> oracle.OracleResult:
            on_main = rt.mirror.parents(commit) == [main]
            tested.append((member, "main" if on_main else "x"))
            if member == "x:1":  # its run ends once the car behind has a run of its own on it
                wait_for(lambda: r.hget(keys.train_car("y:1"), "result"), 60, "the car behind's run")
                return oracle.OracleResult("full", ok=True, passed=3)  # main passes 5: x drops two
            return oracle.OracleResult("full", ok=True, passed=5 if on_main else 2)  # on x: one fewer than x

        def land(old: str, new: str) -> LandResult:
            landed.append(member)
            return LandResult.LANDED

        return train.Hooks(
            main=lambda: main,
            build=build,
            test=test,
            baseline=lambda commit: baseline(member),
            alive=lambda: None,
            land=land,
        )

    outcome = ride_two(cars, r, hooks)
    assert outcome["x:1"] is Reason.ORACLE_DROPPED
    assert landed == ["y:1"], outcome
    assert ("y:1", "x") in tested and tested[-1] == ("y:1", "main"), "tested on x, then again without it"


def test_a_waiting_car_looks_again_when_the_car_ahead_changes_not_at_its_next_poll(
    rt: Runtime, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each change to the train (a car built, judged, landed, gone) is published, and the cars waiting on it look
    again at once. With the longest wait raised to a minute, two cars ride to the end only if they are woken: a
    car left to its timeout would not land within the ride's hang guard."""
    monkeypatch.setattr(train, "LISTEN_SECONDS", 60.0)
    main = rt.mirror.fetch()
    state = {"main": main}
    specs: dict[str, str] = {}

    def hooks(member: str) -> train.Hooks:
        def build(parent: str) -> str:
            if member == "x:1":
                wait_for(lambda: r.llen(keys.TRAIN) == 2, 60, "the second car joined")
            specs[member] = car_commit(rt, parent, member)
            return specs[member]

        def land(old: str, new: str) -> LandResult:
            if old != state["main"]:
                return LandResult.MAIN_MOVED
            state["main"] = new
            return LandResult.LANDED

        return train.Hooks(
            main=lambda: state["main"],
            build=build,
            test=lambda commit: oracle.OracleResult("full", ok=True, passed=1),
            baseline=lambda commit: Counts(1),
            alive=lambda: None,
            land=land,
        )

    ridden = ride_two(train.Train(r, rt.mirror, 4, 10.0, "speculate"), r, hooks)
    assert sorted(ridden) == ["x:1", "y:1"], "both cars landed, woken by each other's changes"
    assert state["main"] == specs["y:1"]


# main's own run (its tree holds src/base.txt alone) waits for the test's go, so the head car is judged only then;
# the head's run tells the car behind it may start.
CARRY_SH = """#!/bin/bash
if ! ls src | grep -qv '^base.txt$'; then
  for i in $(seq 3000); do [ -f "$SYNC/go" ] && break; sleep 0.05; done
fi
if [ -f src/a.txt ] && [ ! -f src/b.txt ]; then touch "$SYNC/a-running"; fi
true
"""


def test_a_landing_carries_the_green_car_behind_it_each_task_on_its_own_commit_audit_follows(
    project: Project, redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """Through the pipeline, real git: b is judged green on a's run while a waits for main's counts; a's push lands
    both. Main's line holds a then b, each a tree the full oracle passed, each landed ref on its task's own commit,
    b's attempt records its own landing on origin's ledger, and `swarm audit` finds nothing wrong."""
    sync = tmp_path / "sync"
    scripted_oracle(project, sync, "carry.sh", CARRY_SH, "An oracle that holds main's run")
    start = project.main_log()[0]
    project.add_tasks(
        {
            "a": task_file("Write a", "write src/a.txt a"),
            "b": task_file("Write b", f"wait-file {sync}/a-running 60\nwrite src/b.txt b"),
        }
    )
    setup = project.main_log()[0]

    def go_once_b_is_green() -> None:
        def b_green() -> bool:
            cars = [keys.text(m) for m in r.lrange(keys.TRAIN, 0, -1)]
            return any(m.startswith("b:") and r.hget(keys.train_car(m), "state") == b"green" for m in cars)

        wait_for(b_green, 300, "b judged green on a's run")
        (sync / "go").touch()

    gate = threading.Thread(target=go_once_b_is_green, daemon=True)
    gate.start()
    try:
        outcomes = run_all(runtimes(project, redis_url, 2), [("a", "claude"), ("b", "codex")])
    finally:
        (sync / "go").touch()
    assert outcomes == {"a": "landed", "b": "landed"}
    landed = project.landed()
    story = [(e["task"], e["state"]) for e in events(r)]
    assert ("a", "run_landed") in story and ("b", "landed_in_run") in story, story
    assert project.git("rev-parse", f"{landed['b']}^") == landed["a"] and project.main_log()[0] == landed["b"]
    assert project.git("rev-parse", f"{landed['a']}^") == setup
    assert_every_main_commit_was_tested_as_is(project, start)
    record = project.git("log", "-1", "--format=%B", "refs/swarm/attempts/b")
    assert '"event": "end"' in record and '"outcome": "landed"' in record, record
    rt = connect(make_settings(project, redis_url, unsafe_no_sandbox=True))
    report = audit.audit(rt.mirror, check_oracle=True, last=2, workdir=tmp_path / "audit", sandboxed=False)
    assert report.ok, report.problems


# main's own run (its tree holds src/base.txt alone) goes on once both agents run, then says it runs; the agents
# wait for that before writing. So both attempts have started while main's run goes on.
MAIN_SH = """#!/bin/bash
if ! ls src | grep -qv '^base.txt$'; then
  for i in $(seq 1200); do [ -f "$SYNC/agent-a" ] && [ -f "$SYNC/agent-b" ] && break; sleep 0.05; done
  touch "$SYNC/main-running"
fi
true
"""


def test_main_without_counts_is_measured_beside_the_agents_by_one_attempt_and_auto_learns_from_it(
    project: Project, redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """A human's push leaves main without counts. It is measured while the agents work, by one of the two attempts
    (the other does not run it again at once): the agents finish only once main's run has started, and no car has
    joined the train by then. The run's CPU share is the first the train's `auto` keeps."""
    sync = tmp_path / "sync"
    scripted_oracle(project, sync, "main.sh", MAIN_SH, "An oracle that says when main is measured")
    script = "write {sync}/agent-{name} 1\nwait-file {sync}/main-running 60\nwrite src/{name}.txt {name}"
    project.add_tasks({name: task_file(f"Write {name}", script.format(sync=sync, name=name)) for name in ("a", "b")})
    pushed = project.main_log()[0]
    outcomes = run_all(runtimes(project, redis_url, 2), [("a", "claude"), ("b", "codex")])
    assert outcomes == {"a": "landed", "b": "landed"}
    story = [(e["task"], e["state"], e.get("commit", "")) for e in events(r)]
    first_car = next(i for i, (_, state, _) in enumerate(story) if state == "in_train")
    beside = [task for task, state, commit in story[:first_car] if state == "baseline_oracle" and commit == pushed]
    assert len(beside) == 1, f"main measured beside the agents, by one attempt: {story}"
    full_runs_ = [commit for tier, commit, _, _ in project.oracle_runs() if tier == "full"]
    assert pushed in full_runs_ and len(full_runs_) <= train.SHARE_SAMPLES
    assert r.llen(keys.TRAIN_ORACLE_SHARE) == len(full_runs_), "every full run's CPU share is kept, main's too"
    assert connect(make_settings(project, redis_url)).baselines.get(pushed) is not None


def test_the_car_behind_a_carried_line_keeps_its_build_when_the_line_lands(rt: Runtime, r: redis.Redis) -> None:
    """x lands and carries y; z, built on y and still running when they land, is not built again: x and y leave
    the line in one step, so z never sees x ahead of it as the commit to build on (it would rebuild on x without
    y, a tree no one lands, and run its full oracle there)."""
    main = rt.mirror.fetch()
    state = {"main": main}
    builds: dict[str, list[str]] = {"x:1": [], "y:1": [], "z:1": []}
    pushes: list[tuple[str, str, list[tuple[str, str]]]] = []
    members = ["x:1", "y:1", "z:1"]

    def hooks(member: str) -> train.Hooks:
        def build(parent: str) -> str:
            if member != "z:1":  # each builds once the car behind has joined, so that one builds on it
                behind = members[members.index(member) + 1]
                wait_for(lambda: behind.encode() in r.lrange(keys.TRAIN, 0, -1), 60, f"{behind} joined")
            builds[member].append(car_commit(rt, parent, member))
            return builds[member][-1]

        def test(commit: str) -> oracle.OracleResult:
            if member == "z:1":  # z's run ends once x and y have landed
                wait_for(lambda: bool(pushes), 60, "x landed")
            return oracle.OracleResult("full", ok=True, passed=1)

        def baseline(commit: str) -> Counts | None:
            if member == "x:1":  # x is judged once y is green on x's run
                wait_for(lambda: r.hget(keys.train_car("y:1"), "state") == b"green", 60, "y judged green")
            return Counts(1)

        def land_run(old: str, new: str, run: list[tuple[str, str]]) -> LandResult:
            if old != state["main"]:
                return LandResult.MAIN_MOVED
            pushes.append((member, old, run))
            state["main"] = run[-1][1] if run else new
            return LandResult.LANDED

        def landed() -> str | None:
            pushed = {c for *_, run in pushes for _, c in run} | {old for _, old, _ in pushes} | {state["main"]}
            return next((c for c in builds[member] if c in pushed), None)

        return train.Hooks(
            main=lambda: state["main"],
            build=build,
            test=test,
            baseline=baseline,
            alive=lambda: None,
            land=lambda old, new: land_run(old, new, []),
            land_run=land_run,
            landed=landed,
            current=lambda members: True,
            emit=emit,
        )

    def emit(state_name: str, **fields: object) -> None:
        if state_name == "run_landed":  # x lingers once landed, until z has looked at the train (and built, or landed)
            wait_for(lambda: len(builds["z:1"]) > 1 or len(pushes) > 1, 60, "z looked at the train")

    ridden = ride_in_order(train.Train(r, rt.mirror, 4, 10.0, "speculate"), r, hooks, tuple(members))
    assert sorted(ridden) == members, "every car landed"
    assert pushes[0] == ("x:1", main, [("y:1", builds["y:1"][0])]), pushes
    assert len(builds["z:1"]) == 1, "z kept the build it made on y"
    assert pushes[1] == ("z:1", builds["y:1"][0], [])
