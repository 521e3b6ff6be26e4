"""One attempt of one task, end to end, given its collaborators (testable without Celery).

lease -> standalone workspace at main -> agent in its sandbox (the runner) -> its files read from outside into one
commit with trailers -> structure and protected paths -> fast gate (the judge: built sandboxed, main's harness;
skipped when the merge train has room, see `fast_tier`) -> land: through the merge train (or under the merge lock),
rebase onto what is ahead -> full gate on that exact commit -> lease still ours? -> atomic push (main OLD->NEW +
landed ref, or nothing) -> release, clean up, record in the attempt book.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from swarm import coalesce, guard, ledger, prompt, state, wip
from swarm.agents.base import Agent, AgentResult
from swarm.backlog import Task
from swarm.baselines import Baselines
from swarm.book import AttemptBook
from swarm.counts import Counts
from swarm.errors import AttemptRejected, CoordinationError, SettingsError, SwarmError
from swarm.events import Events
from swarm.leases import Heartbeat, Lease, Leases
from swarm.marks import QueueMarks
from swarm.oracle import OracleResult, Tier, judge
from swarm.outcomes import AttemptRecord, Outcome, Reason
from swarm.quota import VendorLedger
from swarm.repo import LandResult, Mirror, matches
from swarm.roles import AgentRunner, Judge, OracleJob
from swarm.runtime import Runtime
from swarm.settings import REPO_SETTINGS_FILE, RepoSettings, Settings
from swarm.train import Hooks, Train
from swarm.workspace import Attempt, Workspaces

log = logging.getLogger(__name__)

MERGE_LOCK_POLL = 0.2


@dataclass
class Pipeline:
    """Runs attempts for one worker process, through the doors and roles it is given."""

    settings: Settings
    mirror: Mirror
    leases: Leases
    book: AttemptBook
    marks: QueueMarks
    baselines: Baselines
    ledger: VendorLedger
    events: Events
    agents: Callable[[str], Agent]
    """The adapter of a vendor: the vendor gate asks it for a preflight and, after a park, a probe."""
    runner: AgentRunner
    judge: Judge
    train: Train
    worker: str
    slot: str
    """Names this worker slot's home and build cache: stable across restarts, so caches stay warm."""
    free_slot: Callable[[], None] | None = None
    """Hands this worker slot back for the next agent run while the candidate rides the train (see
    `free_slot_in_train`); None where nothing can take the slot meanwhile (one process per attempt)."""

    @classmethod
    def on(cls, rt: Runtime, agents: Callable[[str], Agent], worker: str, slot: str | None = None) -> Pipeline:
        """A pipeline on the runtime's doors, with the local runner and judge."""
        from swarm.local import LocalRunner, SlotJudge

        settings = rt.settings
        judge = SlotJudge(rt.mirror, rt.workdir / "judge", rt.judge_seed, sandboxed=not settings.unsafe_no_sandbox,
                          keep_runs=settings.keep_worktrees)  # fmt: skip
        return cls(settings, rt.mirror, rt.leases, rt.book, rt.marks, rt.baselines, rt.ledger, rt.events, agents,
                   LocalRunner(agents), judge, rt.train, worker, slot or worker)  # fmt: skip

    @property
    def spaces(self) -> Workspaces:
        return Workspaces(self.settings, self.mirror, self.worker, self.slot)

    # --- the attempt, top to bottom ---

    def run(self, task_id: str, vendor: str) -> Outcome:
        """One message of `run_task`: lease the task, make one attempt, release; or say why the message is dropped."""
        try:
            lease = self._lease(task_id, vendor)
        except BaseException:
            self._unqueue(task_id, vendor)  # the task must not look queued while no message is left for it
            raise
        if not isinstance(lease, Lease):
            self._unqueue(task_id, vendor)
            return lease
        att: Attempt | None = None
        cancel = threading.Event()
        try:
            # The heartbeat starts at once: even a slow fetch of a big repository must not outlast the lease.
            with Heartbeat(self.leases, lease, on_lost=lambda reason: cancel.set()):
                self.marks.clear(task_id)
                att = self.spaces.new_attempt(task_id, vendor, lease, cancel)
                self._reap_previous(task_id)
                main = self.mirror.fetch()
                if task_id in self.mirror.landed() or not self.book.begin(att.record, lease.value):
                    return Outcome.DONE  # landed, or failed until `swarm retry`
                self._begin_record(att)
                self._emit(att, "leased", fence=lease.fence)
                return self._attempt(att, main)
        finally:
            if att is not None:
                self._stop_early(att)
                self._begun(att)  # no thread of this attempt outlives it
            self._release(lease)
            if att is not None:
                self.spaces.clean_up(att)

    def _attempt(self, att: Attempt, main: str) -> Outcome:
        """Work towards a landing; whatever stops it becomes a rejection with a reason, recorded in the book."""
        try:
            commit = self._work(att, main)
        except AttemptRejected as rej:
            return self._rejected(att, rej.reason, rej.detail, rej.counts)
        except (SwarmError, OSError) as exc:  # Redis, git, network or disk: not the task's fault
            return self._rejected(att, Reason.INFRASTRUCTURE, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug or Celery's soft time limit: record it, never leave the task hanging
            log.exception("attempt of %s failed unexpectedly", att.task_id)
            return self._rejected(att, Reason.ERROR, f"{type(exc).__name__}: {exc}")
        return self._landed(att, commit)

    def _work(self, att: Attempt, main: str) -> str:
        """Agent, candidate commit, fast gate, landing; returns the commit that landed."""
        repo = self._repo_settings(main)
        snap = state.take(self, fetch=False)
        task = self._task(snap, att.task_id, repo, main)
        # main's counts, when known (the agent's prompt; `swarm history` shows the attempt's delta against them). A main
        # no landing measured (a human's push, the first main) is measured beside the agent, by one attempt of the
        # swarm (`_measure_beside_agent`), and else where the verdict needs it: never before an agent may start.
        att.record.baseline = snap.oracle
        workspace = self._workspace(att, main)
        candidate = self._run_agent(att, repo, task, snap, workspace, main)
        candidate = self._protect(att, repo, main, candidate)
        self.mirror.keep(candidate, att.keep_name)
        att.candidate = candidate
        # The judge exports the trees it tests from git: nothing the agent left in its workspace reaches them.
        self.spaces.drop_folder(workspace)
        if self._fast_tier_needed():
            self._gate(att, "fast", candidate, repo, main, baseline=None)
        else:
            self._emit(att, "fast_skipped", reason="the train has room: the full tier starts at once")
        return self._land(att, main, candidate)

    def _fast_tier_needed(self) -> bool:
        """The fast tier only saves time as a filter before a wait: with room in the train, the full tier (which
        judges all the fast one does, and more) starts at once, so the fast run would only add its own time."""
        if self.settings.fast_tier == "always" or not self.settings.train_window:
            return True
        return not self.train.has_room()

    def _run_agent(self, att: Attempt, repo: RepoSettings, task: Task, snap: state.Snapshot, workspace: Path,
                   main: str) -> str:  # fmt: skip
        """Run the vendor's agent in its workspace; its changes, whatever they are, become one candidate commit."""
        raw_prompt = self.mirror.read(main, repo.prompt)
        repo_prompt = raw_prompt.decode(errors="replace") if raw_prompt else None
        prompt_file = att.log_dir / "prompt.md"
        prompt_file.write_text(prompt.build(repo, repo_prompt, task, snap, att.number, self.worker, self._history(att),
                                            att.record.resumed))  # fmt: skip
        self._emit(att, "agent_running")
        if snap.oracle is None or snap.main != main:  # the snapshot's counts are main's when it read this main
            self._measure_beside_agent(att, main)
        on_start = self._noting_agent(att)
        result = self.runner.run_agent(self.spaces.agent_run(att, prompt_file, workspace, on_start))
        att.record.agent = result.record()
        self._book_run(att, result)
        self._check_lease(att)
        reason = Reason.of_agent(result.outcome)
        if reason is not None and result.fault == "vendor":  # auth, billing, model, network...: the vendor's
            raise AttemptRejected(reason, f"{result.reason}: {result.message}", counts=False)
        if reason is not None:
            raise AttemptRejected(reason, result.message)
        message = f"{task.title}\n\n{_summary(result.message)}{att.trailers()}"
        candidate = self.mirror.collect(workspace, main, message, author=f"{att.vendor}-agent")
        if candidate is None:
            raise AttemptRejected(Reason.NO_CHANGE, "the agent finished without changing any file")
        return candidate

    def _workspace(self, att: Attempt, main: str) -> Path:
        """The agent's workspace: at main, or with the work a cut attempt of its vendor kept, continuing its
        session when this slot holds the transcript."""
        kept = wip.find(self.mirror, att.task_id) if self.settings.vendors[att.vendor].resume else None
        home, folders = self.spaces.home(att.vendor), self.spaces.workdir / "workspaces"
        # An adapter of an older make has no has_session: its sessions are not resumed, its work still is.
        has_session = getattr(self.agents(att.vendor), "has_session", lambda home, session: False)
        start = wip.plan(self.mirror, kept, att.vendor, main, self.slot, home, folders,
                         lambda session: bool(has_session(home, session)))  # fmt: skip
        att.record.resumed, att.resume = start.record, start.session
        if start.record:
            self._emit(att, "resuming", **start.record)
        return self.spaces.workspace(att, start.files, start.head, start.folder)

    def _protect(self, att: Attempt, repo: RepoSettings, main: str, candidate: str) -> str:
        """Changes to protected paths are put back as on main, or reject the attempt (per `.swarm.toml`)."""
        # .swarm.toml names the oracle and the protected paths: it is protected whether or not it lists itself.
        protected = [*repo.protected, REPO_SETTINGS_FILE]
        changes = [guard.Change(*c) for c in self.mirror.raw_changes(main, candidate)]
        refused = guard.problems(changes, protected, self.mirror.paths(main, protected), self.mirror.blob)
        if refused:  # no restore can make these safe (a link out of the tree, a protected folder swapped)
            raise AttemptRejected(Reason.REFUSED_STRUCTURE, "; ".join(refused))
        touched = [c.path for c in changes if matches(c.path, protected)]
        if not touched:
            return candidate
        att.record.protected_touched = touched
        if repo.on_protected == "reject":
            raise AttemptRejected(Reason.PROTECTED, f"the agent changed protected paths: {', '.join(touched)}")
        self._emit(att, "protected_restored", paths=touched)
        restored = self.mirror.restore(candidate, main, touched)
        if not self.mirror.changed(main, restored):
            raise AttemptRejected(Reason.NO_CHANGE, f"the only changes were to protected paths: {', '.join(touched)}")
        return restored

    def _gate(self, att: Attempt, tier: Tier, commit: str, repo: RepoSettings, main: str,
              baseline: Counts | None) -> None:  # fmt: skip
        """The judge runs one tier on exactly `commit` (its counts go on the record); red, or short of `baseline`,
        rejects the attempt."""
        self._emit(att, f"{tier}_oracle", commit=commit)
        result = self.judge.run(tier, commit, self._oracle_job(att, tier, repo, main))
        att.record.counts(tier, result.counts())
        self._check_lease(att)
        reason = judge(result, baseline)
        if reason:
            raise AttemptRejected(Reason.ORACLE_RED if not result.ok else Reason.ORACLE_DROPPED, reason)

    def _land(self, att: Attempt, base: str, candidate: str) -> str:
        """Rebase, full gate on the exact commit, lease check, atomic push; another round when main moved.
        With a train window, through the merge train instead."""
        if self.settings.train_window:
            return self._ride(att, base, candidate)
        rounds = self.settings.land_retries + 1
        for round_ in range(rounds):
            with self._merge_lock(att):
                landed = self._land_round(att, base, candidate, round_)
            if landed is not None:
                return landed
        raise AttemptRejected(Reason.MAIN_MOVED, f"main moved under {rounds} landing rounds")

    def _land_round(self, att: Attempt, base: str, candidate: str, round_: int) -> str | None:
        """One landing round under the merge lock: the landed commit, or None when main moved before the push."""
        onto = self.mirror.fetch()
        if att.task_id in self.mirror.landed():
            raise AttemptRejected(Reason.ALREADY_LANDED, "another attempt landed this task first")
        repo = self._repo_settings(onto)
        baseline = self._main_counts(att, onto)
        self._emit(att, "rebasing", onto=onto, round=round_)
        landing = self._rebase(att, candidate, base, onto, repo)
        self._gate(att, "full", landing, repo, onto, baseline)
        self._check_lease(att)
        result = self._push_landing(att, onto, landing, rebased=onto != base)
        if result is LandResult.ALREADY_LANDED:
            raise AttemptRejected(Reason.ALREADY_LANDED, "the landed ref exists on origin")
        if result is LandResult.MAIN_MOVED:
            self._emit(att, "cas_lost", onto=onto)
            return None
        att.record.rebased = onto != base
        return landing

    def _rebase(self, att: Attempt, candidate: str, base: str, onto: str, repo: RepoSettings) -> str:
        """The candidate rebased onto `onto`, checked against what `onto` protects now (it may protect more)."""
        if onto == base:  # main has not moved: the candidate stands as it was checked against this very main
            return candidate
        rebased = self.mirror.rebase(candidate, base, onto)
        if rebased.commit is None:
            detail = f"rebase onto {onto[:12]} conflicts in {', '.join(rebased.conflicts) or 'some files'}"
            raise AttemptRejected(Reason.CONFLICT, detail + "; the task goes back to the queue")
        landing = self._protect(att, repo, onto, rebased.commit)
        self.mirror.keep(landing, f"{att.keep_name}-rebased")
        return landing

    def _ride(self, att: Attempt, base: str, candidate: str) -> str:
        """Land through the merge train: the full oracle runs on main + the candidates ahead, in parallel."""
        if att.task_id in self.mirror.landed():
            raise AttemptRejected(Reason.ALREADY_LANDED, "another attempt landed this task first")

        def build(parent: str) -> str:
            self._emit(att, "rebasing", onto=parent)
            return self._rebase(att, candidate, base, parent, self._repo_settings(parent))

        def test(commit: str) -> OracleResult:
            main = self.mirror.main()  # main's harness judges, as in _land; the car may sit on others ahead
            self._emit(att, "full_oracle", commit=commit)
            result = self.judge.run("full", commit, self._oracle_job(att, "full", self._repo_settings(main), main))
            att.record.counts("full", result.counts())
            self._check_lease(att)
            return result

        hooks = Hooks(
            main=self.mirror.fetch,
            build=build,
            test=test,
            baseline=lambda main: self._main_counts(att, main),
            early_baseline=lambda main: self._early_baseline(att, main),
            landed_as=self.baselines.put,
            alive=lambda: self._check_lease(att),
            land=lambda old, new: self._push_landing(att, old, new, rebased=new != candidate),
            land_run=lambda old, new, run: self._push_landing(
                att, old, new, rebased=new != candidate, carried={_car(m)[0]: commit for m, commit in run}
            ),
            emit=lambda state_name, **fields: self._emit(att, state_name, **fields),
            land_batch=self._land_batch,
            landed=lambda: self.mirror.landed().get(att.task_id),
            current=lambda members: all(self.leases.current(*_car(m)) for m in members),
        )
        self._emit(att, "in_train")
        freeing = self._freeing(att) if self.free_slot is not None and self.settings.free_slot_in_train else None
        landing, full = self.train.ride(f"{att.task_id}:{att.lease.fence}", hooks, freeing)
        if full is not None:
            att.record.counts("full", full.counts())
        att.record.rebased = landing != candidate
        return landing

    def _main_counts(self, att: Attempt, main: str) -> Counts | None:
        """main's counts for a car judged against main; they are the attempt's baseline (`swarm history`'s delta)."""
        for other in [m for m in att.early if m != main]:
            att.early[other][2].set()  # main moved on: that run's counts would judge nothing here
        early = att.early.get(main)
        try:
            counts = early[0].result() if early is not None else self._baseline(att, self._repo_settings(main), main)
        except _Unmeasured:  # stopped (the attempt is ending, or main moved): measured here, as it always was
            counts = self._baseline(att, self._repo_settings(main), main)
        att.record.baseline = counts or att.record.baseline
        return counts

    def _measure_beside_agent(self, att: Attempt, main: str) -> None:
        """Measure a main no landing measured (a new swarm, a human's push) while the agent works, by one attempt
        of the swarm at a time: an agent takes minutes and mostly waits for its vendor, so the run costs the verdict
        no time, where otherwise the car at the head waits for it (after its own run, when two runs do not fit the
        machine at once). Its CPU figures are the first `auto` decides by (`Train.measured`). Wasted only when the
        attempt ends first (the run is stopped, and another may take it up) or main moves on before a car needs it."""
        try:  # main as the attempt fetched it: counts may have come since the snapshot read it
            if self.baselines.get(main) is not None or not self.baselines.claim(main, self.settings.oracle_timeout):
                return
        except CoordinationError as exc:  # measured where the verdict needs it, as without this run
            log.warning("could not claim the measurement of main %s: %s", main[:12], exc)
            return
        self._early_baseline(att, main, claimed=True)

    def _early_baseline(self, att: Attempt, main: str, claimed: bool = False) -> None:
        """Measure main beside the car's own full run rather than after it (or beside its agent, see
        `_measure_beside_agent`), when no landing recorded its counts (a human's push, a new swarm): the head car
        waits for one oracle run, not two. It runs in a judge folder of
        its own (`-main`): the slot's folder holds one run at a time. The train asks only where two runs at once
        fit the machine (`Train._too_many`). The run has its own stop, set when the attempt ends or main moves on;
        it checks no lease (the car's thread does, and says why it stopped)."""
        if main in att.early or self.baselines.get(main) is not None:
            return
        repo = self._repo_settings(main)
        stop = threading.Event()
        job = replace(self._oracle_job(att, "full", repo, main, judge="main"), cancel=stop)  # its log named here
        counts: Future[Counts | None] = Future()

        def measure() -> None:
            try:
                counts.set_result(self._baseline(att, repo, main, job))
            except BaseException as exc:  # noqa: BLE001 - the car's thread raises it where it needs the counts
                counts.set_exception(exc)
                if claimed:  # stopped or failed: not measured, another attempt may measure it
                    with suppress(CoordinationError):
                        self.baselines.unclaim(main)

        thread = threading.Thread(target=measure, name=f"baseline-{att.task_id}", daemon=True)
        att.early[main] = (counts, thread, stop)
        thread.start()

    @staticmethod
    def _stop_early(att: Attempt) -> None:
        """No measurement of main outlives its attempt."""
        for _, thread, stop in att.early.values():
            stop.set()
            thread.join()

    def _push_landing(
        self, att: Attempt, old: str, new: str, rebased: bool, carried: dict[str, str] | None = None
    ) -> LandResult:
        """The landing push, with the attempt's end record on origin's ledger in the same atomic push, so the record
        costs no push of its own; if another writer's record got in first, it is appended after (`_write_end`).
        With `carried`, the green cars right behind land in the same push (their own attempts write their records)."""
        self._begun(att)  # the begin record first: the end record goes on top of it
        landed = replace(att.record, outcome=Outcome.LANDED.value, commit=new, rebased=rebased, ended=time.time())
        result, written = self.mirror.land_recorded(
            old, new, att.task_id, ledger.commit_of(att.task_id, "end", self._end_fields(landed, Outcome.LANDED)),
            carried=carried,
        )  # fmt: skip
        att.end_written = written
        return result

    def _land_batch(
        self, base: str, tip: str, members: list[tuple[str, str]], counts: Counts
    ) -> tuple[LandResult, str]:
        """A batch's push; landed, its merge commit is main, and the counts its tree passed with are main's."""
        outcome, merge = self.mirror.land_batch(base, tip, {_car(m)[0]: commit for m, commit in members})
        if outcome is LandResult.LANDED:
            try:
                self.baselines.put(merge, counts)
            except CoordinationError as exc:  # the next attempt measures main itself
                log.warning("landed the batch %s but could not record its counts: %s", merge[:12], exc)
        return outcome, merge

    def _freeing(self, att: Attempt) -> Callable[[], None]:
        """What the train calls once the car has joined: the slot goes back while this process rides on."""
        hand_back = self.free_slot
        assert hand_back is not None

        def free() -> None:
            self._emit(att, "slot_freed", reason="its candidate rides the merge train")
            try:
                hand_back()
            except Exception as exc:  # noqa: BLE001 - the ride goes on; dispatch sends the next task at its beat
                log.warning("could not hand the slot of %s back: %s", att.task_id, exc)

        return free

    # --- steps ---

    def _lease(self, task_id: str, vendor: str) -> Lease | Outcome:
        """The task's lease, or why this message is dropped instead (the task is then free for dispatch)."""
        if vendor not in self.settings.vendors:
            log.error("no vendor %r in this worker's settings; dropping the message of %s", vendor, task_id)
            return Outcome.UNKNOWN_VENDOR
        cap = self.settings.vendors[vendor].daily_cap_usd
        blocked = self.ledger.gate(vendor, self.agents(vendor), self.spaces.home(vendor), cap)  # before any oracle
        if blocked:  # this vendor may not start attempts now: give the task back for another vendor
            self.events.emit(task_id, "vendor_blocked", vendor=vendor, reason=blocked)
            return Outcome.COOLING
        ledger.ensure_loaded(self)  # after a Redis wipe, fences and budgets continue from origin's ledger
        lease = self.leases.acquire_task(task_id, self.settings.lease_ttl, worker=self.worker, vendor=vendor)
        if lease is None:
            log.info("task %s is leased by another worker; dropping this message", task_id)
            return Outcome.BUSY
        return lease

    def _unqueue(self, task_id: str, vendor: str) -> None:
        try:
            self.marks.clear(task_id, vendor)
        except CoordinationError as exc:  # the marker expires on its own
            log.warning("could not clear the queued marker of %s: %s", task_id, exc)

    def _reap_previous(self, task_id: str) -> None:
        """A dead attempt's entry is finished (as lost, its agent killed) before a new one starts."""
        from swarm.reaper import reap_task

        reap_task(self.book, self.events, task_id)

    def _repo_settings(self, commit: str) -> RepoSettings:
        try:
            return state.read_repo_settings(self, commit)
        except SettingsError as exc:
            raise AttemptRejected(Reason.REPO_SETTINGS, str(exc)) from None

    def _task(self, snap: state.Snapshot, task_id: str, repo: RepoSettings, main: str) -> Task:
        if coalesce.is_pass(task_id):
            text = self.mirror.read(main, repo.coalesce_prompt) if repo.coalesce_prompt else None
            if text is None:
                raise AttemptRejected(Reason.INVALID_TASK, f"{task_id}: no coalesce_prompt file in .swarm.toml on main")
            return coalesce.task(task_id, repo, text.decode(errors="replace"))
        task = snap.backlog.tasks.get(task_id)
        if task is None:
            bad = [str(e) for e in snap.backlog.invalid if e.path.endswith(f"/{task_id}.md")]
            raise AttemptRejected(Reason.INVALID_TASK, bad[0] if bad else f"no task file for {task_id!r} on main")
        return task

    def _oracle_job(self, att: Attempt, tier: Tier, repo: RepoSettings, main: str, judge: str = "") -> OracleJob:
        agent_id = f"{att.vendor}-{self.slot}" + (f"-{judge}" if judge else "")  # the judge's folder: one run at a time
        log_path = att.next_log(f"oracle-{tier}" + (f"-{judge}" if judge else ""))
        return OracleJob(repo, main, log_path, agent_id=agent_id, timeout_cap=self.settings.oracle_timeout,
                         cancel=att.cancel)  # fmt: skip

    def _baseline(self, att: Attempt, repo: RepoSettings, main: str, job: OracleJob | None = None) -> Counts | None:
        """main's full-oracle counts: shared per commit; measured here once if no landing measured them. With `job`,
        a run beside the car (`_early_baseline`): stopped, it is no verdict (`_Unmeasured`), and it checks no lease,
        which is the car's thread's to check (taking a `swarm cancel` marker there says why the attempt ended)."""
        known = self.baselines.get(main)
        if known is not None:
            return known
        self._emit(att, "baseline_oracle", commit=main)
        result = self.judge.run("full", main, job or self._oracle_job(att, "full", repo, main))
        if job is not None and job.cancel is not None and job.cancel.is_set():
            raise _Unmeasured(main)  # a run measured beside the car, stopped: not a verdict on main
        if self.settings.train_window:
            try:  # what the oracle asks of the machine: `auto` decides by it
                self.train.measured(result)
            except CoordinationError as exc:
                log.warning("could not keep the CPU share of main's run: %s", exc)
        if job is None:
            self._check_lease(att)
        if not result.ok:
            # Never keep a red or timed-out run: its counts would disable the no-drop check for this commit.
            # A red main lets a green candidate land (it repairs main); the next attempt measures main again.
            self._emit(att, "main_red", commit=main, reason=result.reason)
            return None
        self.baselines.put(main, result.counts())
        return result.counts()

    @contextmanager
    def _merge_lock(self, att: Attempt) -> Iterator[None]:
        """Serialise landings: it saves wasted rebases and test runs; correctness comes from the push's CAS."""
        self._emit(att, "waiting_merge_lock")
        ttl = self.settings.lease_ttl
        while (lock := self.leases.acquire_merge_lock(ttl, task=att.task_id, worker=self.worker)) is None:
            self._check_lease(att)
            time.sleep(MERGE_LOCK_POLL)
        try:
            with Heartbeat(self.leases, lock, on_lost=lambda reason: log.warning("merge lock lost: %s", reason)):
                yield
        finally:
            self._release(lock)

    def _check_lease(self, att: Attempt) -> None:
        """The attempt may go on only while its lease is still the one in Redis."""
        if att.cancel.is_set() or not self.leases.held(att.lease):
            att.cancel.set()
            if self.book.take_cancelled(att.task_id):  # `swarm cancel` took the lease: not the task's fault
                raise AttemptRejected(Reason.CANCELLED, "stopped with `swarm cancel`")
            raise AttemptRejected(Reason.LEASE_LOST, "the task's lease expired or was taken over; this attempt stops")

    def _history(self, att: Attempt) -> list[dict[str, Any]]:
        """The task's earlier attempts, so a retry is told why the last one failed."""
        try:
            return [record.to_dict() for record in self.book.history(att.task_id)]
        except CoordinationError as exc:
            log.warning("could not read the history of %s: %s", att.task_id, exc)
            return []

    def _noting_agent(self, att: Attempt) -> Callable[[int], None]:
        def note(pgid: int) -> None:
            self.book.note_agent(att.task_id, att.lease.value, pgid)

        return note

    def _book_run(self, att: Attempt, result: AgentResult) -> None:
        """Spend, then cool, park or clear the vendor; the attempt goes on if Redis cannot book it."""
        try:
            self.ledger.after_run(att.vendor, att.task_id, result)
        except CoordinationError as exc:
            log.warning("could not book the run of %s: %s", att.task_id, exc)

    def _landed(self, att: Attempt, commit: str) -> Outcome:
        """It landed: git says so whatever Redis can still record, so nothing here may turn it into a rejection."""
        att.record.outcome, att.record.commit = Outcome.LANDED.value, commit
        self.judge.landed(commit, f"{att.vendor}-{self.slot}")  # this slot's build of it seeds its next builds
        try:
            if att.record.full is not None:
                self.baselines.put(commit, att.record.full)
            self.book.end(att.record, att.lease.value)
        except CoordinationError as exc:
            log.warning("landed %s but could not record it: %s", att.task_id, exc)
        wip.drop(self.mirror, att.task_id)  # after the landing's fetch: whatever was kept is done with
        self._write_end(att, Outcome.LANDED)
        self._emit(att, "landed", commit=commit)
        return Outcome.LANDED

    def _rejected(self, att: Attempt, reason: Reason, detail: str, counts: bool | None = None) -> Outcome:
        full = att.disk.full() if att.disk is not None and (reason.counts if counts is None else counts) else None
        if full is not None:  # what failed may have failed for want of space: the machine's fault, not the task's
            reason, detail, counts = Reason.INFRASTRUCTURE, f"{full}; then {reason}: {detail}", None
        self._keep_work(att, reason)
        att.record.reject(reason, detail, counts)
        try:
            verdict = self.book.end(att.record, att.lease.value)
        except CoordinationError as exc:  # the reaper records this attempt as lost once Redis is back
            log.warning("could not record the rejected attempt of %s (%s): %s", att.task_id, reason, exc)
            return Outcome.REJECTED
        if verdict is Outcome.LOST:  # already finished as lost: its record (and the ledger's) says so
            return Outcome.REJECTED
        if verdict is Outcome.FAILED and att.record.wip:  # failed for good: nothing will resume it
            wip.drop(self.mirror, att.task_id, att.lease.fence)
        self._write_end(att, verdict)
        self._emit(att, verdict.value, reason=reason.value, detail=detail)
        log.warning("task %s attempt %d rejected: %s: %s", att.task_id, att.number, reason, detail)
        return verdict

    def _keep_work(self, att: Attempt, reason: Reason) -> None:
        """A cut attempt keeps its work on origin for its vendor's next attempt; kept work that an attempt resumed
        and that ended otherwise (judged, landed elsewhere) is used up."""
        vendor_fault = (att.record.agent or {}).get("fault") == "vendor"
        try:
            if (reason.cut or vendor_fault) and self.settings.vendors[att.vendor].resume:
                att.record.wip = self._kept(att)
            if att.record.wip is None and (att.record.resumed or {}).get("from"):
                wip.drop(self.mirror, att.task_id, att.lease.fence)
        except (SwarmError, OSError) as exc:  # the work is lost, not the attempt's record
            log.warning("could not keep the work so far of %s: %s", att.task_id, exc)

    def _kept(self, att: Attempt) -> dict[str, Any] | None:
        """The attempt's work so far (its candidate, or its workspace read from outside) stored on origin."""
        if att.workspace is None:
            return None  # the agent never had a workspace: nothing to keep
        self.mirror.fetch()
        if att.task_id in self.mirror.landed():
            return None
        work = att.candidate
        if work is None and att.workspace.is_dir():
            message = f"work so far of {att.task_id}\n\n{att.trailers()}"
            work = self.mirror.collect(att.workspace, att.base, message, author=f"{att.vendor}-agent")
        session = wip.session_ok((att.record.agent or {}).get("session_id"))
        if work is None and session is None:
            return None  # no change and no session to continue
        repo = state.read_repo_settings(self, att.base)
        safe = wip.safe_tree(self.mirror, att.base, work or att.base, [*repo.protected, REPO_SETTINGS_FILE])
        if safe is None:
            return None
        home = str(self.spaces.home(att.vendor))
        kept = wip.keep(self.mirror, wip.Wip(att.task_id, "", att.base, att.vendor, self.slot, att.lease.fence,
                                             session, home, str(att.workspace)), safe)  # fmt: skip
        if kept is not None:
            self._emit(att, "work_kept", commit=kept.commit, session=session)
        return kept.record() if kept else None

    def _write_end(self, att: Attempt, verdict: Outcome) -> None:
        """The end record on origin's ledger: what was paid for survives a Redis wipe. A landing pushed it already
        (`_push_landing`), unless another writer's record got in between."""
        self._begun(att)
        if verdict is Outcome.LANDED and att.end_written:
            return
        ledger.write(self.mirror, att.task_id, "end", self._end_fields(att.record, verdict), self.book)

    @staticmethod
    def _end_fields(record: AttemptRecord, verdict: Outcome) -> dict[str, Any]:
        return {**record.to_dict(), "counts": record.counted, "failed": verdict is Outcome.FAILED}

    def _begin_record(self, att: Attempt) -> None:
        """The begin record goes to origin beside the attempt rather than before it: it must be there before the
        attempt's end record (so a Redis wipe cannot lose what was paid for), not before its agent starts, so its
        push costs the attempt no time (`_begun` waits for it where it must be there)."""
        record = att.record.to_dict()
        att.begin = threading.Thread(target=ledger.write, args=(self.mirror, att.task_id, "begin", record, self.book),
                                     name=f"begin-{att.task_id}", daemon=True)  # fmt: skip
        att.begin.start()

    @staticmethod
    def _begun(att: Attempt) -> None:
        """Wait until the begin record is on origin (or spooled: `ledger.write` never raises for origin's faults)."""
        if att.begin is not None:
            att.begin.join()

    def _release(self, lease: Lease) -> None:
        try:
            self.leases.release(lease)
        except CoordinationError as exc:  # unreachable: the lease expires on its own within one TTL
            log.warning("could not release %s: %s", lease.key, exc)

    def _emit(self, att: Attempt, state_name: str, **fields: Any) -> None:
        self.events.emit(att.task_id, state_name, vendor=att.vendor, worker=self.worker, attempt=att.number,
                         log_dir=str(att.log_dir), **fields)  # fmt: skip


class _Unmeasured(Exception):
    """A run of main measured beside a car was stopped before its verdict (see `Pipeline._early_baseline`)."""


def _car(member: str) -> tuple[str, int]:
    """A train car's task and the fence of its attempt's lease ("task:fence")."""
    task, _, fence = member.rpartition(":")
    return task, int(fence)


def _summary(message: str, limit: int = 2000) -> str:
    text = message.strip()
    if not text:
        return ""
    if len(text) > limit:
        text = text[:limit] + " [...]"
    # A line in the agent's text that looks like a trailer would be taken for one of ours.
    lines = [("> " + ln) if ln.startswith("Swarm-") else ln for ln in text.splitlines()]
    return "\n".join(lines) + "\n\n"
