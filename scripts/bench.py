#!/usr/bin/env python3
"""Throughput side by side, in one run: the lock-file harness's protocol against the swarm, and what one attempt
costs on a small and a large repository.

Sections (each prints its lines; ratios are computed inside the same run, since this machine is shared and noisy):
  coordination  the lock-file protocol (pull, claim commit + push with retries, work, test, commit + push, release
                commit + push; N processes, each its own clone of one bare origin) against the swarm (real Redis,
                the pipeline in N slot processes, dispatch after each attempt and on a 1 s beat) as users run it (a
                slot given back once its candidate joins the train, spare processes taking the next task, as a
                worker's pool grows) and held (one process per attempt: coordination with nothing overlapping), at
                each slot count, with zero-time and realistic agent and oracle times (`--integrity-cost`: also the
                swarm with its sandboxes off, to show what they cost per task, and the held swarm's overhead split
                into the judge's runs, the agent's runs and the rest: bookkeeping);
  landing       the merge lock against the speculative train (train_window), with a slow full oracle;
  attempt-cost  one slot, trivial tasks, on a 200-file and a 20,000-file repository: wall, CPU (this process and
                its children) and git processes (counted by a `git` shim on PATH) per attempt; then on 200 files
                after 3,000 tasks (`--history`), with the mirror's refs packed as shipped and left loose;
  attempt-git   the git side of one attempt on 200 and 20,000 files: today's worktrees against per-slot folders kept
                in step with a commit (Mirror.workspace/collect/sync);
  pickup        a chain of dependent tasks: from one landing to the next task's agent starting;
  free-slots    real Celery workers of N processes: an attempt holding its slot until it lands against one that
                gives it back once its candidate joins the train (free_slot_in_train), agent time counted busy;
  oracle-cpu    the engine template with real cargo (sandboxed judge): oracle CPU-seconds per landed task against
                one incremental full run of a one-line change (not in --quick: real builds take minutes).

Never asserts timings. Usage: .venv/bin/python scripts/bench.py [--quick] [--only SECTION ...] [--slots 1,2,4]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import multiprocessing
import os
import queue
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from swarm import dispatch, proc, repo  # noqa: E402
from swarm.agents import registry  # noqa: E402
from swarm.embedded import EmbeddedRedis  # noqa: E402
from swarm.judge import Judge  # noqa: E402
from swarm.local import LocalRunner, SlotJudge  # noqa: E402
from swarm.pipeline import Pipeline  # noqa: E402
from swarm.runtime import Runtime, connect  # noqa: E402
from swarm.sandbox import masked_libraries  # noqa: E402
from swarm.settings import Settings, parse_repo_settings  # noqa: E402
from swarm.slots import announce  # noqa: E402

IDENTITY = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
SUMMARY = '{"passed": 1, "failed": 0}'
BEAT_SECONDS = 1.0
RUN_TIMEOUT = 900.0
SECTIONS = ["coordination", "landing", "batch", "attempt-cost", "attempt-git", "pickup", "free-slots", "oracle-cpu"]
TEMPLATE = Path(__file__).resolve().parent.parent / "engine_repo_template"


@dataclass(frozen=True)
class Times:
    """Seconds an agent and each oracle tier take: the work that no coordination can remove."""

    name: str
    agent: float
    fast: float
    full: float

    @property
    def work(self) -> float:
        """What one task needs at the least: its agent and one full oracle run (all the lock-file harness runs)."""
        return self.agent + self.full


@dataclass
class Figures:
    """One run of one side at one slot count."""

    side: str
    slots: int
    tasks: int
    wall: float
    work: float
    coordination_commits: int = 0
    rejected_pushes: int = 0
    lost_claims: int = 0
    landed: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def per_min(self) -> float:
        return self.landed / self.wall * 60 if self.wall else 0.0

    @property
    def overhead(self) -> float:
        """Slot-seconds per task spent on anything but the work, against the best a perfect scheduler could do."""
        ideal = math.ceil(self.tasks / self.slots) * self.work
        return max(0.0, self.wall - ideal) * self.slots / self.tasks

    def idle(self, times: Times) -> float:
        """Agent-slot seconds per task not spent running an agent: what the paid slots wait for, oracle included."""
        return self.wall * self.slots / self.tasks - times.agent

    def line(self) -> str:
        return (
            f"{self.side:9} slots={self.slots:<3} tasks={self.landed}/{self.tasks} wall={self.wall:7.2f}s "
            f"tasks/min={self.per_min:6.1f} overhead/task={self.overhead:6.2f}s "
            f"coordination_commits={self.coordination_commits} rejected_pushes={self.rejected_pushes} "
            f"lost_claims={self.lost_claims}"
        )


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **IDENTITY}
    return subprocess.run(["git", *args], cwd=cwd, check=check, capture_output=True, text=True, env=env)


def oracle_command(seconds: float) -> str:
    return f"sleep {seconds}; echo '{SUMMARY}'"


def make_template(
    dest: Path, tasks: list[str], times: Times, files: int = 0, deps: bool = False, full: str | None = None
) -> Path:
    """A project holding `files` filler files, one task file per id (a chain when `deps`), and a sleeping oracle
    (or `full` as the full one)."""
    (dest / "tasks").mkdir(parents=True)
    (dest / "src").mkdir()
    (dest / "src" / "base.txt").write_text("base\n")
    for i in range(files):
        folder = dest / "files" / f"d{i // 500:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.txt").write_text(f"filler {i}\n")
    for i, task in enumerate(tasks):
        dep = f"depends_on: [{tasks[i - 1]}]\n" if deps and i else ""
        (dest / "tasks" / f"{task}.md").write_text(f"---\ntitle: Task {task}\npriority: {-i}\n{dep}---\nWrite it.\n")
    (dest / "AGENT_PROMPT.md").write_text("Do the task.\n")
    (dest / ".swarm.toml").write_text(
        'backlog = "tasks"\nprotected = [".swarm.toml"]\n\n[oracle]\n'
        f"fast = {json.dumps(oracle_command(times.fast))}\nfull = {json.dumps(full or oracle_command(times.full))}\n"
    )
    return dest


def origin_commits(origin: Path) -> list[str]:
    return git(origin, "log", "--format=%s", "main").stdout.splitlines()


# --- the lock-file harness's protocol ---


def _lockfile_worker(origin: str, clone: str, wid: int, times: Times, out: multiprocessing.Queue, go: Any) -> None:  # type: ignore[type-arg]
    """One bash loop of the seed harness, played with the same git commands, until every task is done."""
    here = Path(clone)
    git(here.parent, "clone", "-q", origin, clone)
    out.put("ready")  # set up, as a harness's loops are before they run: the clock starts when all are
    go.wait()
    stats: Counter[str] = Counter()

    def sync() -> None:
        if git(here, "pull", "-q", "--rebase", "origin", "main", check=False).returncode != 0:
            git(here, "rebase", "--abort", check=False)
            git(here, "fetch", "-q", "origin")
            git(here, "reset", "-q", "--hard", "origin/main")

    def push(claim: str | None = None) -> bool:
        """Push with retries; for a claim, False when the rebase shows someone else claimed or did it first."""
        while git(here, "push", "-q", "origin", "HEAD:main", check=False).returncode != 0:
            stats["rejected"] += 1
            rebased = git(here, "pull", "-q", "--rebase", "origin", "main", check=False).returncode == 0
            if claim is not None and (not rebased or (here / "src" / f"{claim}.txt").exists()):
                git(here, "rebase", "--abort", check=False)
                git(here, "fetch", "-q", "origin")
                git(here, "reset", "-q", "--hard", "origin/main")
                return False
            if not rebased:  # only a claim can conflict (two adds of one lock file); anything else is a bug here
                raise RuntimeError(f"lock-file worker {wid}: rebase failed outside a claim")
        return True

    tasks = sorted(p.stem for p in (here / "tasks").glob("*.md"))
    while True:
        sync()
        done = {t for t in tasks if (here / "src" / f"{t}.txt").exists()}
        free = [t for t in tasks if t not in done and not (here / "locks" / f"{t}.lock").exists()]
        if len(done) == len(tasks):
            break
        if not free:  # every open task is claimed by someone: wait for them, as the loops did
            time.sleep(0.05)
            continue
        task = free[0]
        (here / "locks").mkdir(exist_ok=True)
        (here / "locks" / f"{task}.lock").write_text(f"claimed by worker {wid}\n")
        git(here, "add", "-A")
        git(here, "commit", "-qm", f"claim {task}")
        if not push(claim=task):
            stats["lost_claims"] += 1
            continue
        time.sleep(times.agent)
        (here / "src" / f"{task}.txt").write_text(f"{task}\n")
        subprocess.run(["bash", "-c", oracle_command(times.full)], cwd=here, check=True, capture_output=True)
        git(here, "add", "-A")
        git(here, "commit", "-qm", f"work {task}")
        push()
        git(here, "rm", "-q", f"locks/{task}.lock")
        git(here, "commit", "-qm", f"release {task}")
        push()
    out.put(dict(stats))


def lockfile_run(root: Path, slots: int, tasks: list[str], times: Times) -> Figures:
    template = make_template(root / "template", tasks, times)
    origin = root / "origin.git"
    repo.init_project(template, origin, root / "seed")
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    go = ctx.Event()
    procs = [
        ctx.Process(target=_lockfile_worker, args=(str(origin), str(root / f"w{i}"), i, times, out, go))
        for i in range(slots)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        out.get(timeout=RUN_TIMEOUT)
    start = time.monotonic()
    go.set()
    stats: Counter[str] = Counter()
    for _ in procs:
        stats.update(out.get(timeout=RUN_TIMEOUT))
    for p in procs:
        p.join()
    wall = time.monotonic() - start
    subjects = origin_commits(origin)
    return Figures(
        "lock-file",
        slots,
        len(tasks),
        wall,
        times.work,
        coordination_commits=sum(s.startswith(("claim ", "release ")) for s in subjects),
        rejected_pushes=stats["rejected"],
        lost_claims=stats["lost_claims"],
        landed=sum(s.startswith("work ") for s in subjects),
    )


# --- the swarm: real Redis, real git, the pipeline in N slot processes (as Celery's pool) or threads ---

STEPS: Counter[str] = Counter()
"""Seconds and runs of the timed steps (see `timed_steps`); a slot process sends its own back with each outcome."""


class SwarmDriver:
    """N slots, each with its own Runtime (as each Celery pool process has), fed by dispatch as the workers are.

    With `processes` (the default for more than one slot) each slot is a process of its own, as in Celery's prefork
    pool and as the lock-file side's workers are; threads would share one interpreter lock. One slot runs in a
    thread of this process, so `on_outcome` can read this process's CPU and git counters at each outcome."""

    def __init__(self, settings: Settings, slots: int, processes: bool | None = None, free: bool = False) -> None:
        self.settings = settings
        self.slots = slots
        self.free = free and settings.free_slot_in_train and settings.train_window > 0
        self.processes = (slots > 1 or self.free) if processes is None else processes
        # With `free`, an attempt gives its slot back once its candidate joins the train, as a worker's does
        # (free_slot_in_train, on by default): dispatch then sends the next task, and a spare process takes it, as
        # the worker's pool grows by one per rider. The train gives no slot back past twice its window, so that
        # many spares are enough; dispatch still runs at most `slots` agents at once.
        self.processes_started = slots + (2 * settings.train_window if self.free else 0)
        self.q: queue.Queue[tuple[str, str]] = queue.Queue()
        self.outcomes: Counter[str] = Counter()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.on_outcome: Callable[[str], None] = lambda outcome: None

    def agent(self, vendor: str):  # type: ignore[no-untyped-def]
        table = self.settings.vendors[vendor]
        return registry.make(vendor, table.adapter, table.options())

    def dispatch(self, rt: Runtime) -> None:
        for _ in range(100):  # another slot may hold the dispatch lock: try again, as its next dispatch would
            if not dispatch.dispatch(rt, lambda t, v: self.q.put((t, v))).skipped_busy:
                return
            time.sleep(0.01)

    def slot(self, i: int, rt: Runtime) -> None:
        pipe = Pipeline.on(rt, self.agent, f"bench-{i}", f"slot{i}")
        while not self.stop.is_set():
            try:
                task, vendor = self.q.get(timeout=0.05)
            except queue.Empty:
                continue
            outcome = pipe.run(task, vendor)
            with self.lock:
                self.outcomes[outcome] += 1
                self.on_outcome(outcome)
            self.dispatch(rt)

    def beat(self, rt: Runtime) -> None:
        while not self.stop.wait(BEAT_SECONDS):
            self.dispatch(rt)

    def run_until(self, landed: int) -> float:
        if self.processes:
            return self._run_processes(landed)
        masked_libraries()  # walked once at start, as a worker does before its first task (cached after)
        # Runtimes are made one after the other: connect() probes the workdir with a per-process file name.
        runtimes = [connect(self.settings) for _ in range(self.slots + 1)]
        client = redis.Redis.from_url(self.settings.redis_url or "")
        for i in range(self.slots):  # live slots, as a running worker announces them: dispatch fills only these
            announce(client, "a", f"slot{i}", RUN_TIMEOUT)
        client.close()
        threads = [threading.Thread(target=self.slot, args=(i, runtimes[i]), daemon=True) for i in range(self.slots)]
        threads.append(threading.Thread(target=self.beat, args=(runtimes[-1],), daemon=True))
        start = time.monotonic()
        for t in threads:
            t.start()
        self.dispatch(runtimes[-1])
        try:
            while self.outcomes["landed"] < landed:
                if time.monotonic() - start > RUN_TIMEOUT or self.outcomes["failed"]:
                    raise RuntimeError(f"swarm run did not finish: {dict(self.outcomes)}")
                time.sleep(0.01)
            return time.monotonic() - start
        finally:
            self.stop.set()
            for t in threads:
                t.join()

    def _run_processes(self, landed: int) -> float:
        ctx = multiprocessing.get_context("fork")  # forked before this process starts any thread
        masked_libraries()  # walked once before the fork, as a Celery worker does before forking its pool
        work: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
        done: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
        stop = ctx.Event()
        client = redis.Redis.from_url(self.settings.redis_url or "")
        for i in range(self.slots):
            announce(client, "a", f"slot{i}", RUN_TIMEOUT)
        client.close()
        procs = [ctx.Process(target=self._slot_process, args=(i, work, done, stop), daemon=True)
                 for i in range(self.processes_started)]  # fmt: skip
        for proc_ in procs:
            proc_.start()
        for _ in procs:  # connected, as a worker's pool processes are before its first task: the clock starts now
            done.get(timeout=RUN_TIMEOUT)
        start = time.monotonic()
        self.q = work  # type: ignore[assignment]  # the beat's dispatch feeds the slots' queue
        rt = connect(self.settings)
        beat = threading.Thread(target=self.beat, args=(rt,), daemon=True)
        beat.start()
        self.dispatch(rt)
        steps: dict[int, dict[str, float]] = {}
        try:
            while self.outcomes["landed"] < landed:
                if time.monotonic() - start > RUN_TIMEOUT or self.outcomes["failed"]:
                    raise RuntimeError(f"swarm run did not finish: {dict(self.outcomes)}")
                try:
                    slot, outcome, spent = done.get(timeout=1.0)
                except queue.Empty:
                    continue
                steps[slot] = spent
                self.outcomes[outcome] += 1
                self.on_outcome(outcome)
            return time.monotonic() - start
        finally:
            self.stop.set()
            stop.set()
            beat.join()
            for proc_ in procs:
                proc_.join(timeout=30)
                if proc_.is_alive():
                    proc_.kill()
            for spent in steps.values():
                STEPS.update(spent)

    def _slot_process(self, i: int, work: Any, done: Any, stop: Any) -> None:
        STEPS.clear()  # this slot's own steps, sent back with each outcome
        rt = connect(self.settings)
        self.q = work
        pipe = Pipeline.on(rt, self.agent, f"bench-{i}", f"slot{i}")
        if self.free:  # as swarm.tasks._hand_back: the candidate rides on here, dispatch fills the slot at once
            pipe.free_slot = lambda: self.dispatch(rt)
        done.put("ready")
        while not stop.is_set():
            try:
                task, vendor = work.get(timeout=0.5)  # a put wakes it at once; the timeout only checks `stop`
            except queue.Empty:
                continue
            outcome = pipe.run(task, vendor)
            done.put((i, str(outcome), dict(STEPS)))
            self.dispatch(rt)


def swarm_settings(root: Path, url: str, slots: int, times: Times, train_window: int | None = None,
                   agent: str | None = None, **extra: object) -> Settings:  # fmt: skip
    agent = agent or f"sleep {times.agent}; echo {{task_id}} > src/{{task_id}}.txt"
    return Settings(
        redis_url=url,
        origin=str(root / "origin.git"),
        workdir=root / "wd",
        vendors={"a": {"adapter": "command", "command": ["bash", "-c", agent], "concurrency": slots}},
        lease_ttl=30.0,
        **({} if train_window is None else {"train_window": train_window}),  # None: the default (the train)
        git_timeout=RUN_TIMEOUT,  # a worktree of 20,000 files on a loaded machine takes minutes
        land_retries=20,
        dispatch_interval=BEAT_SECONDS,
        **extra,
    )  # type: ignore[arg-type]


def swarm_run(root: Path, slots: int, tasks: list[str], times: Times, train_window: int | None = None,
              full: str | None = None, metrics: dict[str, int] | None = None, free: bool = False,
              **extra: object) -> Figures:  # fmt: skip
    make_template(root / "template", tasks, times, full=full)
    repo.init_project(root / "template", root / "origin.git", root / "seed")
    metrics = {} if metrics is None else metrics
    with EmbeddedRedis(root / "redis") as server:
        driver = SwarmDriver(swarm_settings(root, server.url, slots, times, train_window, **extra), slots, free=free)
        wall = driver.run_until(len(tasks))
        r = redis.Redis.from_url(server.url)
        metrics.update({k.decode(): int(v) for k, v in r.hgetall("swarm:metrics").items()})
        r.close()
    subjects = origin_commits(root / "origin.git")
    merges = len(git(root / "origin.git", "rev-list", "--merges", "main").stdout.split())
    return Figures(
        "lock" if train_window == 0 else f"train({train_window})" if train_window else "swarm" if free else "held",
        slots,
        len(tasks),
        wall,
        times.work,
        # All but the first commit, the landings and a batch's merge commits (train_batch): what coordination cost.
        coordination_commits=len(subjects) - 1 - driver.outcomes["landed"] - merges,
        rejected_pushes=metrics.get("state:cas_lost", 0),
        lost_claims=driver.outcomes["busy"],
        landed=driver.outcomes["landed"],
    )


def coordination(args: argparse.Namespace, base: Path) -> None:
    tasks = [f"t{i:03d}" for i in range(args.tasks)]
    for times in args.times:
        print(
            f"== coordination, {times.name}: {len(tasks)} tasks; agent {times.agent}s, fast oracle {times.fast}s, "
            f"full oracle {times.full}s (overhead/task = (wall - ceil(tasks/slots) x (agent + full)) x slots / tasks)"
        )
        for slots in args.slots:
            lock = lockfile_run(fresh(base, f"lock-{times.name}-{slots}"), slots, tasks, times)
            print(lock.line(), flush=True)
            # As users run it: a slot goes back to dispatch once its candidate joins the train (free_slot_in_train).
            sw = swarm_run(fresh(base, f"swarm-{times.name}-{slots}"), slots, tasks, times, free=True)
            print(sw.line(), flush=True)
            with timed_steps() as steps:  # one process per attempt: what coordination costs when nothing overlaps
                held = swarm_run(fresh(base, f"held-{times.name}-{slots}"), slots, tasks, times)
            print(held.line(), flush=True)
            print(
                f"ratio     slots={slots:<3} swarm/lock-file tasks/min {sw.per_min / lock.per_min:.2f}x; "
                f"lock-file/swarm overhead {ratio(lock.overhead, sw.overhead)}; "
                f"lock-file/held overhead {ratio(lock.overhead, held.overhead)}; agent slots idle per task: "
                f"lock-file {lock.idle(times):.2f}s, swarm {sw.idle(times):.2f}s, held {held.idle(times):.2f}s",
                flush=True,
            )
            if args.integrity_cost:  # the same swarm with its sandboxes off: what they cost per task
                bare = swarm_run(fresh(base, f"bare-{times.name}-{slots}"), slots, tasks, times, unsafe_no_sandbox=True)
                print(dataclasses.replace(bare, side="unsandbox").line(), flush=True)
                cost = held.overhead - bare.overhead
                print(f"ratio     slots={slots:<3} sandboxes cost {cost:.2f}s of overhead per task (held)", flush=True)
                # Slot-seconds per task in each step, less the work it holds (the oracle's and the agent's own time).
                work = steps["judge:full"] * times.full + steps["judge:fast"] * times.fast
                judge = (steps["judge"] - work) / len(tasks)
                agent = (steps["agent"] - steps["agent:runs"] * times.agent) / len(tasks)
                print(f"split     slots={slots:<3} of {held.overhead:.2f}s overhead/task (held): judge runs "
                      f"{judge:.2f}s, agent runs {agent:.2f}s, the rest (git, Redis, dispatch, waits) "
                      f"{held.overhead - judge - agent:.2f}s", flush=True)  # fmt: skip


@contextmanager
def timed_steps() -> Iterator[Counter[str]]:
    """Seconds spent in the judge's runs and the agents' runs (all slots summed) while the block runs in-process,
    and how many of each ran (judge:full, judge:fast, agent:runs)."""
    STEPS.clear()
    spent = STEPS
    originals = {"judge": (SlotJudge, "run"), "agent": (LocalRunner, "run_agent")}

    def timing(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.monotonic()
            try:
                return method(*args, **kwargs)
            finally:
                spent[name] += time.monotonic() - start
                spent[f"{name}:{args[1]}" if name == "judge" else f"{name}:runs"] += 1  # SlotJudge.run(self, tier, ...)

        return run

    saved = {name: getattr(owner, attr) for name, (owner, attr) in originals.items()}
    for name, (owner, attr) in originals.items():
        setattr(owner, attr, timing(name, saved[name]))
    try:
        yield spent
    finally:
        for name, (owner, attr) in originals.items():
            setattr(owner, attr, saved[name])


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0.005 else ("n/a (both ~0)" if a <= 0.005 else "inf (swarm ~0)")


# --- per-attempt cost on a small and a large repository ---


@contextmanager
def counting_git(folder: Path) -> Iterator[Path]:
    """Every `git` this process and its children start goes through a shim that logs one line per process."""
    real = shutil.which("git")
    assert real is not None
    folder.mkdir(parents=True, exist_ok=True)
    counts = folder / "git-calls.log"
    counts.write_text("")
    shim = folder / "git"
    shim.write_text(f'#!/bin/sh\necho "$1" >> {counts}\nexec {real} "$@"\n')
    shim.chmod(0o755)
    old = os.environ["PATH"]
    os.environ["PATH"] = f"{folder}{os.pathsep}{old}"
    try:
        yield counts
    finally:
        os.environ["PATH"] = old


def child_cpu_seconds() -> float:
    """CPU of the processes this one started and waited for (with theirs): oracle builds and harness, git, agents."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def attempt_cost(args: argparse.Namespace, base: Path) -> None:
    tasks = [f"c{i:02d}" for i in range(args.cost_tasks)]
    print(
        f"== attempt cost: 1 slot, {len(tasks)} zero-time tasks; git counted by a PATH shim; the slot's first attempt "
        "(which writes its judge's tree and its agent folder whole) apart from the attempts after it"
    )
    rows = {files: _cost_run(fresh(base, f"cost-{files}"), tasks, files, f"files={files:<6}") for files in args.files}
    small, large = rows[min(rows)], rows[max(rows)]
    print(
        f"ratio     {max(rows)} vs {min(rows)} files: wall {large[0] / small[0]:.1f}x, cpu {large[1] / small[1]:.1f}x, "
        f"git processes {large[2] / small[2]:.1f}x"
    )
    if not args.history:
        return
    # A swarm that ran many tasks: each left a landed ref and a ledger chain on origin (packed there, as a served
    # repository's upkeep keeps them), and the mirror fetches them all. Run as shipped, then with the mirror's
    # packing of loose refs off (as before it existed), side by side.
    files, shipped = min(args.files), repo.LOOSE_REFS_TO_PACK
    label = f"files={files} tasks run before={args.history}"
    packed = _cost_run(fresh(base, "cost-history"), tasks, files, f"{label} (mirror packs loose refs)", args.history)
    try:
        repo.LOOSE_REFS_TO_PACK = 0
        loose = _cost_run(fresh(base, "cost-history-loose"), tasks, files, f"{label} (mirror refs left loose)",
                          args.history)  # fmt: skip
    finally:
        repo.LOOSE_REFS_TO_PACK = shipped
    print(
        f"ratio     {args.history} tasks run before vs none ({files} files): wall {packed[0] / small[0]:.1f}x, "
        f"cpu {packed[1] / small[1]:.1f}x; refs left loose vs packed: wall {loose[0] / packed[0]:.1f}x, "
        f"cpu {loose[1] / packed[1]:.1f}x"
    )


def _cost_run(root: Path, tasks: list[str], files: int, label: str, history: int = 0) -> tuple[float, float, float]:
    """One slot running `tasks` to the end on a project of `files` filler files (and `history` earlier tasks' refs
    on origin); prints its line and returns wall, CPU and git processes per attempt after the first."""
    zero = Times("zero", 0.0, 0.0, 0.0)
    make_template(root / "template", tasks, zero, files)
    origin = root / "origin.git"
    repo.init_project(root / "template", origin, root / "seed")
    if history:
        main = git(origin, "rev-parse", "main").stdout.strip()
        record = git(origin, "commit-tree", repo.EMPTY_TREE, "-m", "swarm attempt record\n{}").stdout.strip()
        refs = "".join(f"create {repo.LANDED_PREFIX}h{i:05d} {main}\ncreate {repo.RECORDS_PREFIX}h{i:05d} {record}\n"
                       for i in range(history))  # fmt: skip
        subprocess.run(["git", "update-ref", "--stdin"], cwd=origin, input=refs, text=True, check=True)
        git(origin, "pack-refs", "--all")
    with EmbeddedRedis(root / "redis") as server:
        driver = SwarmDriver(swarm_settings(root, server.url, 1, zero), 1)
        connect(driver.settings).mirror.fetch()  # the host's first fetch is set-up, not an attempt
        with counting_git(root / "shim") as calls:
            marks: list[tuple[float, float, int]] = []  # (time, cpu, git processes) at each attempt's end

            def mark(outcome: str, marks: list[tuple[float, float, int]] = marks, calls: Path = calls) -> None:
                marks.append((time.monotonic(), cpu_seconds(), len(calls.read_text().splitlines())))

            driver.on_outcome = mark
            start = (time.monotonic(), cpu_seconds(), 0)
            driver.run_until(len(tasks))
    first = [b - a for a, b in zip(start, marks[0], strict=True)]
    n = max(1, len(marks) - 1)
    rest = [(b - a) / n for a, b in zip(marks[0], marks[-1], strict=True)]
    print(
        f"{label} first attempt: wall={first[0]:6.2f}s cpu={first[1]:6.2f}s git={first[2]:3.0f} | "
        f"next {n}: wall/attempt={rest[0]:6.2f}s cpu/attempt={rest[1]:6.2f}s git processes/attempt={rest[2]:5.1f}",
        flush=True,
    )
    return rest[0], rest[1], rest[2]


def landing(args: argparse.Namespace, base: Path) -> None:
    times = Times("slow-oracle", args.agent, args.fast, args.slow_full)
    tasks = [f"l{i:03d}" for i in range(args.train_tasks)]
    print(
        f"== landing: the merge lock against the train (window {args.window}), {len(tasks)} tasks; agent "
        f"{times.agent}s, fast oracle {times.fast}s, full oracle {times.full}s"
    )
    for n in args.train_slots:
        lock = swarm_run(fresh(base, f"lock-slow-{n}"), n, tasks, times, train_window=0)
        print(lock.line(), flush=True)
        spec = swarm_run(fresh(base, f"train-slow-{n}"), n, tasks, times, train_window=args.window)
        print(spec.line(), flush=True)
        print(f"ratio     slots={n:<3} train/lock landings per minute {spec.per_min / lock.per_min:.2f}x", flush=True)


def burn_command(seconds: float) -> str:
    """A full oracle of a fixed amount of CPU work (about `seconds` on one idle core): run side by side, they share
    the cores, as real builds and test suites do."""
    start = time.process_time()
    for _ in range(2_000_000):
        pass
    per_loop = max(1e-9, (time.process_time() - start) / 2_000_000)
    return f"python3 -c 'for _ in range({int(seconds / per_loop)}): pass'; echo '{SUMMARY}'"


def batch(args: argparse.Namespace, base: Path) -> None:
    """Speculation against batching where oracle CPU is the limit: every run competes for the same cores."""
    times = Times("cpu-oracle", args.agent, 0.0, args.cpu_full)
    tasks = [f"b{i:03d}" for i in range(args.batch_tasks)]
    full = burn_command(args.cpu_full)
    print(
        f"== batch: {len(tasks)} tasks, {args.batch_slots} slots, train window {args.window}, agent {times.agent}s, "
        f"a full oracle of {args.cpu_full} CPU-seconds on {os.cpu_count()} cores (speculation runs one per candidate "
        "at once; batching one at a time for the candidates waiting, landed as one merge commit; auto batches when "
        "the window's runs would need more than the cores, by the CPU share the last runs wanted)"
    )
    rows = {}
    for mode in ("speculate", "batch", "auto"):
        metrics: dict[str, int] = {}
        root = fresh(base, f"batch-{mode}")
        fig = swarm_run(root, args.batch_slots, tasks, times, args.window, full, metrics, train_batch=mode)
        merges = len(git(root / "origin.git", "rev-list", "--merges", "main").stdout.split())
        runs = metrics.get("state:full_oracle", 0)
        rows[mode] = fig
        print(
            f"{mode:9} tasks={fig.landed}/{fig.tasks} wall={fig.wall:7.2f}s tasks/min={fig.per_min:6.1f} "
            f"full oracle runs={runs} ({runs / max(1, fig.landed):.2f} per landed task) merge commits={merges}",
            flush=True,
        )
    for mode in ("batch", "auto"):
        print(f"ratio     {mode}/speculate landings per minute {rows[mode].per_min / rows['speculate'].per_min:.2f}x")


def attempt_git(args: argparse.Namespace, base: Path) -> None:
    """The git side of one attempt, today's worktrees against the folders kept in step (Mirror.sync/workspace)."""
    print("== attempt git work: one trivial change; per attempt after one warm-up, git counted by repo.py's door")
    rows: dict[str, dict[int, tuple[float, float, float]]] = {"worktrees": {}, "folders": {}}
    for files in args.files:
        root = fresh(base, f"git-{files}")
        make_template(root / "template", [], Times("none", 0, 0, 0), files)
        repo.init_project(root / "template", root / "origin.git", root / "seed")
        mirror = repo.Mirror(str(root / "origin.git"), root / "mirror.git", git_timeout=RUN_TIMEOUT).ensure()
        main = mirror.fetch()
        for flow in rows:
            step = _worktree_flow if flow == "worktrees" else _folder_flow
            step(mirror, main, root / flow, 0)  # warm-up: the first sync of a slot writes every file
            cpu, calls, start = cpu_seconds(), repo.git_calls(), time.perf_counter()
            for i in range(1, args.git_rounds + 1):
                step(mirror, main, root / flow, i)
            n = args.git_rounds
            rows[flow][files] = (
                (time.perf_counter() - start) / n,
                (cpu_seconds() - cpu) / n,
                (repo.git_calls() - calls) / n,
            )
            wall, cpu_s, gits = rows[flow][files]
            print(
                f"{flow:9} files={files:<6} wall/attempt={wall:6.3f}s cpu/attempt={cpu_s:6.3f}s "
                f"git processes/attempt={gits:4.1f}",
                flush=True,
            )
    small, large = min(args.files), max(args.files)
    for flow, by_size in rows.items():
        a, b = by_size[small], by_size[large]
        print(f"ratio     {flow}: {large} vs {small} files: wall {b[0] / a[0]:.1f}x, cpu {b[1] / a[1]:.1f}x")


def _worktree_flow(mirror: repo.Mirror, main: str, root: Path, i: int) -> None:
    """As the pipeline does today: a worktree for the agent, its snapshot, a fresh worktree to test, a checkout."""
    work = mirror.add_worktree(root / f"agent-{i}", main)
    (work.path / "src" / "change.txt").write_text(f"{i}\n")
    candidate = work.snapshot(main, f"change {i}\n", author="bench")
    assert candidate is not None
    mirror.remove_worktree(work.path)
    tested = mirror.add_worktree(root / f"oracle-{i}", candidate)
    tested.checkout(candidate)
    mirror.remove_worktree(tested.path)


def _folder_flow(mirror: repo.Mirror, main: str, root: Path, i: int) -> None:
    """Per-slot folders moved to each commit: the agent's standalone workspace, collect, the oracle folder synced."""
    mirror.workspace(main, root / "workspace")
    (root / "workspace" / "src" / "change.txt").write_text(f"{i}\n")
    candidate = mirror.collect(root / "workspace", main, f"change {i}\n", author="bench")
    assert candidate is not None
    mirror.sync(candidate, root / "oracle")  # fast tier
    mirror.sync(candidate, root / "oracle")  # full tier on the landing commit (here the same)


# --- pickup latency ---


def pickup(args: argparse.Namespace, base: Path) -> None:
    times = Times("pickup", 0.0, 0.0, 0.0)
    tasks = [f"p{i:02d}" for i in range(args.chain)]
    root = fresh(base, "pickup")
    make_template(root / "template", tasks, times, deps=True)
    repo.init_project(root / "template", root / "origin.git", root / "seed")
    with EmbeddedRedis(root / "redis") as server:
        driver = SwarmDriver(swarm_settings(root, server.url, 2, times), 2)
        driver.run_until(len(tasks))
        r = redis.Redis.from_url(server.url)
        events = [{k.decode(): v.decode() for k, v in f.items()} for _, f in r.xrange("swarm:events")]
        r.close()
    landed = {e["task"]: float(e["ts"]) for e in events if e["state"] == "landed"}
    started = {e["task"]: float(e["ts"]) for e in events if e["state"] == "agent_running"}
    gaps = [started[b] - landed[a] for a, b in zip(tasks, tasks[1:], strict=False) if a in landed and b in started]
    print(
        f"== pickup: a chain of {len(tasks)} dependent zero-time tasks, 2 slots, dispatch after each attempt "
        f"and every {BEAT_SECONDS:.0f}s\npickup    landed -> next agent running: median {statistics.median(gaps):.3f}s "
        f"max {max(gaps):.3f}s over {len(gaps)} hand-overs",
        flush=True,
    )


def celery_run(root: Path, slots: int, tasks: list[str], times: Times, free: bool) -> tuple[float, float, list[float]]:
    """A real Celery worker of `slots` processes and beat on an embedded Redis, until every task landed: the wall
    time, how busy the slots were with agents (agent-seconds over slots x wall), and the pickups (a slot given
    back to the next agent running)."""
    make_template(root / "template", tasks, times)
    repo.init_project(root / "template", root / "origin.git", root / "seed")
    agent = f"sleep {times.agent}; echo {{task_id}} > src/{{task_id}}.txt"
    with EmbeddedRedis(root / "redis") as server:
        (root / "swarm.toml").write_text(
            f'redis_url = "{server.url}"\norigin = "{root / "origin.git"}"\nworkdir = "{root / "wd"}"\n'
            f"lease_ttl = 30\ndispatch_interval = {BEAT_SECONDS}\nfree_slot_in_train = {str(free).lower()}\n"
            f'\n[vendors.a]\nadapter = "command"\ncommand = {json.dumps(["bash", "-c", agent])}\n'
        )
        env = {**os.environ, "SWARM_CONFIG": str(root / "swarm.toml"), "PYTHONPATH": str(ROOT)}
        env = {k: v for k, v in env.items() if not k.startswith("SWARM_") or k == "SWARM_CONFIG"}
        celery = [sys.executable, "-m", "celery", "-A", "swarm"]
        worker = [*celery, "worker", "-Q", "a", "-c", str(slots), "-n", "bench@%h", "--without-gossip",
                  "--without-mingle", "--loglevel=WARNING"]  # fmt: skip
        services = [proc.start_service("worker", worker, cwd=root, env=env, log_path=root / "worker.log")]
        r = redis.Redis.from_url(server.url)
        try:
            deadline = time.monotonic() + 120
            while len(list(r.scan_iter(match="swarm:slot:a:*"))) < slots:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the worker did not start: {(root / 'worker.log').read_text()[-2000:]}")
                time.sleep(0.1)
            start = time.monotonic()
            beat = [*celery, "beat", "-s", str(root / "beat-schedule"), "--loglevel=WARNING"]
            services.append(proc.start_service("beat", beat, cwd=root, env=env, log_path=root / "beat.log"))
            while len(git(root / "origin.git", "for-each-ref", "refs/swarm/landed/").stdout.splitlines()) < len(tasks):
                if time.monotonic() - start > RUN_TIMEOUT:
                    raise RuntimeError(f"the run did not finish: {(root / 'worker.log').read_text()[-2000:]}")
                time.sleep(0.05)
            wall = time.monotonic() - start
            events = [{k.decode(): v.decode() for k, v in f.items()} for _, f in r.xrange("swarm:events")]
        finally:
            proc.stop_services(services, grace=30)
            r.close()
    agent_seconds, running = 0.0, {}  # an agent runs from agent_running to its attempt's next step
    freed: list[float] = []  # slots given back while a task had not started, not yet taken by an agent
    pickups, unstarted = [], set(tasks)
    for e in events:
        if e["state"] == "agent_running":
            running[e["task"]] = float(e["ts"])
            if e["task"] in unstarted and freed:
                pickups.append(float(e["ts"]) - freed.pop(0))
            unstarted.discard(e["task"])
        elif e["task"] in running and e["state"] in ("fast_skipped", "fast_oracle", "rejected", "failed"):
            agent_seconds += float(e["ts"]) - running.pop(e["task"])
        elif e["state"] == "slot_freed" and len(unstarted) > len(freed):
            freed.append(float(e["ts"]))
    return wall, agent_seconds / (slots * wall), pickups


def free_slots(args: argparse.Namespace, base: Path) -> None:
    times = Times("free-slots", args.agent_slow, 0.0, args.slow_full)
    tasks = [f"s{i:02d}" for i in range(args.free_tasks)]
    print(
        f"== free slots: a real Celery worker of {args.free_slots} processes, {len(tasks)} tasks; agent "
        f"{times.agent}s, full oracle {times.full}s; an attempt holding its slot until it lands against one giving "
        "it back once its candidate joins the train"
    )
    walls = {}
    for free in (False, True):
        name = "given back" if free else "held"
        wall, busy, pickups = celery_run(fresh(base, f"free-{free}"), args.free_slots, tasks, times, free)
        walls[free] = wall
        pickup = f" pickup (slot given back -> next agent) median {statistics.median(pickups):.3f}s" if pickups else ""
        print(f"{name:10} wall={wall:7.2f}s tasks/min={len(tasks) / wall * 60:6.1f} slots busy with agents "
              f"{busy:5.0%}{pickup}", flush=True)  # fmt: skip
    print(f"ratio      given back / held tasks per minute {walls[False] / walls[True]:.2f}x", flush=True)


def oracle_cpu(args: argparse.Namespace, base: Path) -> None:
    """Oracle CPU per landed task on the engine template (1 slot, one-line tasks), against one incremental run."""
    if args.quick:
        print("== oracle-cpu: not in --quick (real cargo builds); run --only oracle-cpu", flush=True)
        return
    root = fresh(base, "oracle-cpu")
    shutil.copytree(TEMPLATE, root / "template")
    shutil.rmtree(root / "template" / "tasks")
    tasks = [f"o{i:02d}" for i in range(args.cpu_tasks)]
    make_template(root / "backlog", tasks, Times("zero", 0, 0, 0))
    shutil.copytree(root / "backlog" / "tasks", root / "template" / "tasks")
    repo.init_project(root / "template", root / "origin.git", root / "seed")
    agent = "echo '// {task_id}' >> crates/parser/src/lib.rs"  # recompiles the parser and what depends on it
    with EmbeddedRedis(root / "redis") as server:
        settings = swarm_settings(root, server.url, 1, Times("zero", 0, 0, 0), agent=agent)
        driver = SwarmDriver(settings, 1)
        marks: list[tuple[float, str]] = []
        driver.on_outcome = lambda outcome: marks.append((child_cpu_seconds(), outcome))
        start = child_cpu_seconds()
        driver.run_until(len(tasks))
        runs = [json.loads(ln) for log in (root / "wd").glob("judge/*/verdicts.jsonl") for ln in log.open()]
    first = marks[0][0] - start
    rest = (marks[-1][0] - marks[0][0]) / max(1, len(marks) - 1)
    # The reference: the same judge, warm (a green build of main), on one candidate that changes one line.
    mirror = repo.Mirror(str(root / "origin.git"), root / "ref-mirror.git").ensure()
    main = mirror.fetch()
    parent = mirror.rev(f"{main}~1")
    judge = Judge(mirror, root / "ref-judge", seed="bench")
    repo_settings = parse_repo_settings((TEMPLATE / ".swarm.toml").read_text(), ".swarm.toml")
    judge.run(repo_settings, "full", parent, parent, root / "ref-warm.log", agent_id="ref", timeout=900)
    before = child_cpu_seconds()
    judge.run(repo_settings, "full", main, parent, root / "ref.log", agent_id="ref", timeout=900)
    one = child_cpu_seconds() - before
    tiers = Counter(run["tier"] for run in runs)
    print(
        f"== oracle-cpu: engine template, real cargo, 1 slot, {len(tasks)} one-line tasks\n"
        f"oracle-cpu (CPU of child processes: oracle builds and harness, git, the agent) first attempt (cold build "
        f"of main as baseline + its full run) {first:.1f} cpu-s; "
        f"per landed task after it {rest:.1f} cpu-s; one incremental full run {one:.1f} cpu-s; "
        f"ratio {rest / one:.2f}x; judge runs by tier {dict(tiers)}",
        flush=True,
    )


def fresh(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir(parents=True)
    return path


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that every section runs")
    p.add_argument("--only", nargs="*", choices=SECTIONS, default=None)
    p.add_argument("--slots", default="1,2,4,8,16", help="comma-separated slot counts")
    p.add_argument("--tasks", type=int, default=24)
    p.add_argument("--integrity-cost", action="store_true", help="coordination: also the swarm unsandboxed")
    p.add_argument("--agent", type=float, default=0.5, help="realistic agent seconds")
    p.add_argument("--fast", type=float, default=0.25, help="realistic fast-oracle seconds")
    p.add_argument("--full", type=float, default=1.0, help="realistic full-oracle seconds")
    p.add_argument("--files", default="200,20000", help="repository sizes for attempt-cost")
    p.add_argument("--cost-tasks", type=int, default=4)
    p.add_argument("--history", type=int, default=3000, help="tasks run before, for attempt-cost (0: skip)")
    p.add_argument("--chain", type=int, default=8)
    p.add_argument("--slow-full", type=float, default=3.0, help="full-oracle seconds for lock against train")
    p.add_argument("--train-slots", default="8,16")
    p.add_argument("--train-tasks", type=int, default=16)
    p.add_argument("--window", type=int, default=8, help="train window")
    p.add_argument("--git-rounds", type=int, default=3)
    p.add_argument("--cpu-tasks", type=int, default=4, help="tasks of oracle-cpu")
    p.add_argument("--free-slots", type=int, default=2, help="worker processes of free-slots")
    p.add_argument("--free-tasks", type=int, default=8, help="tasks of free-slots")
    p.add_argument("--agent-slow", type=float, default=2.0, help="agent seconds of free-slots")
    p.add_argument("--batch-slots", type=int, default=8, help="slots of batch")
    p.add_argument("--batch-tasks", type=int, default=16, help="tasks of batch")
    p.add_argument("--cpu-full", type=float, default=2.0, help="CPU-seconds of one full oracle run in batch")
    args = p.parse_args(argv)
    if args.quick:
        args.slots, args.tasks, args.files, args.cost_tasks, args.chain = "1,2", 3, "20,200", 2, 3
        args.history = 300
        args.agent, args.fast, args.full = 0.05, 0.0, 0.05
        args.slow_full, args.train_slots, args.train_tasks, args.window, args.git_rounds = 0.3, "2", 3, 2, 1
        args.free_slots, args.free_tasks, args.agent_slow = 1, 2, 0.1
        args.batch_slots, args.batch_tasks, args.cpu_full = 2, 3, 0.2
    args.slots = [int(s) for s in str(args.slots).split(",")]
    args.files = [int(s) for s in str(args.files).split(",")]
    args.train_slots = [int(s) for s in str(args.train_slots).split(",")]
    args.times = [Times("zero-time", 0.0, 0.0, 0.0), Times("realistic", args.agent, args.fast, args.full)]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    logging.basicConfig(level=logging.ERROR)
    sections = args.only or SECTIONS
    print(f"bench: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; sections {', '.join(sections)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as tmp:
        base = Path(tmp)
        if "coordination" in sections:
            coordination(args, base)
        if "attempt-cost" in sections:
            attempt_cost(args, base)
        if "landing" in sections:
            landing(args, base)
        if "batch" in sections:
            batch(args, base)
        if "attempt-git" in sections:
            attempt_git(args, base)
        if "pickup" in sections:
            pickup(args, base)
        if "free-slots" in sections:
            free_slots(args, base)
        if "oracle-cpu" in sections:
            oracle_cpu(args, base)


if __name__ == "__main__":
    main()
