"""One attempt of one task, end to end, given its collaborators (testable without Celery).

lease -> standalone workspace at main -> sandboxed agent -> one commit with trailers -> protected paths -> fast oracle
-> under the merge lock: rebase onto main -> full oracle on that exact commit -> lease still ours?
-> atomic push (main OLD->NEW + landed ref, or nothing) -> release, clean up, record.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from swarm import attempts, coalesce, controls, guard, identity, keys, ledger, oracle, proc, prompt, quota, state
from swarm.agents.base import Agent, AgentRun
from swarm.backlog import Task
from swarm.environ import agent_home_env, child_env, toolchain_env
from swarm.errors import AttemptRejected, SettingsError, SwarmError
from swarm.judge import Judge
from swarm.leases import Heartbeat, Lease
from swarm.repo import LandResult, index_of, matches
from swarm.runtime import Runtime
from swarm.sandbox import Sandbox, toolchains
from swarm.settings import REPO_SETTINGS_FILE, RepoSettings, config_file
from swarm.train import Hooks, Train

log = logging.getLogger(__name__)

MERGE_LOCK_POLL = 0.2
OFFLINE_ADAPTERS = ("command", "replay")
"""Adapters whose agents need no network: their sandbox has only a loopback of its own."""
FREE_RUNS_FACTOR = 3
"""A task may run this many times its attempt budget, counting attempts that were not its fault."""


@dataclass
class Attempt:
    """What one attempt carries from step to step."""

    task_id: str
    vendor: str
    worker: str
    lease: Lease
    log_dir: Path
    number: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    record: dict[str, Any] = field(default_factory=dict)
    logs: int = 0
    run_id: str = field(default_factory=lambda: secrets.token_hex(8))
    """Marks every process of this attempt's agent run (SWARM_RUN), even those that leave its process group."""
    folders: list[Path] = field(default_factory=list)
    """The agent's workspaces (standalone repositories), removed when the attempt ends."""

    @property
    def keep_name(self) -> str:
        return f"{self.task_id}-{self.lease.fence}"

    def next_log(self, name: str) -> Path:
        """A new log file of this attempt, numbered in the order of its runs (01-oracle-full.log, ...)."""
        self.logs += 1
        return self.log_dir / f"{self.logs:02d}-{name}.log"

    def trailers(self) -> str:
        return (
            f"Swarm-Task: {self.task_id}\nSwarm-Agent: {self.vendor}\n"
            f"Swarm-Attempt: {self.number}\nSwarm-Fence: {self.lease.fence}\n"
        )


class Pipeline:
    """Runs attempts for one worker process; `agents` builds the adapter of a vendor."""

    def __init__(self, rt: Runtime, agents: Callable[[str], Agent], worker: str, slot: str | None = None) -> None:
        self.rt = rt
        self.agents = agents
        self.worker = worker
        self.slot = slot or worker
        """Names this worker slot's home and build cache: stable across restarts, so caches stay warm."""

    # --- the attempt, top to bottom ---

    def run(self, task_id: str, vendor: str) -> str:
        """One attempt; returns what happened: landed, rejected, failed, busy, done, cooling, unknown_vendor."""
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
            with Heartbeat(self.rt.leases, lease, on_lost=lambda reason: cancel.set()):
                self.rt.redis.delete(keys.queued(task_id))
                att = self._new_attempt(task_id, vendor, lease, cancel)
                attempts.reap_task(self.rt, task_id)  # a dead attempt's entry is finished before a new one starts
                main = self.rt.mirror.fetch()
                if task_id in self.rt.mirror.landed() or self.rt.redis.exists(keys.failed(task_id)):
                    return "done"
                att.number = attempts.begin(self.rt, task_id, vendor, self.worker, lease, str(att.log_dir))
                self._emit(att, "leased", fence=lease.fence)
                return self._attempt(att, main)
        finally:
            self._release(lease)
            if att is not None:
                self._clean_up(att)

    def _attempt(self, att: Attempt, main: str) -> str:
        try:
            commit = self._work(att, main)
        except AttemptRejected as rej:
            return self._rejected(att, rej)
        except (SwarmError, redis.RedisError, OSError) as exc:
            return self._rejected(att, AttemptRejected("error", f"{type(exc).__name__}: {exc}"))
        except Exception as exc:  # a bug or Celery's soft time limit: record it, never leave the task hanging
            log.exception("attempt of %s failed unexpectedly", att.task_id)
            return self._rejected(att, AttemptRejected("error", f"{type(exc).__name__}: {exc}"))
        att.record.update(outcome="landed", commit=commit)
        try:
            attempts.end(self.rt, att.task_id, att.lease, att.record)
        except redis.RedisError as exc:  # it landed: git says so, whatever Redis could record
            log.warning("landed %s but could not record it: %s", att.task_id, exc)
        self._emit(att, "landed", commit=commit)
        return "landed"

    def _work(self, att: Attempt, main: str) -> str:
        repo = self._repo_settings(main)
        snap = state.take(self.rt, fetch=False)
        task = self._task(snap, att.task_id, repo, main)
        snap.oracle = self._baseline(att, repo, main) or snap.oracle  # the agent's baseline
        workspace = self._workspace(att, main)
        candidate = self._run_agent(att, repo, task, snap, workspace, main)
        candidate = self._protect(att, repo, main, candidate)
        self.rt.mirror.keep(candidate, att.keep_name)
        # The oracle never runs in the agent's workspace: nothing the agent left there can change what is tested.
        self._drop_folder(workspace)
        self._emit(att, "fast_oracle", commit=candidate)
        fast = self._oracle(att, repo, candidate, main, "fast")
        att.record["fast"] = fast.counts()
        reason = oracle.judge(fast, None)
        if reason:
            raise AttemptRejected("oracle_red", reason)
        return self._land(att, main, candidate)

    def _run_agent(
        self, att: Attempt, repo: RepoSettings, task: Task, snap: state.Snapshot, workspace: Path, main: str
    ) -> str:
        """Run the vendor's agent in its workspace; its changes, whatever they are, become one candidate commit."""
        raw_prompt = self.rt.mirror.read(main, repo.prompt)
        repo_prompt = raw_prompt.decode(errors="replace") if raw_prompt else None
        prompt_file = att.log_dir / "prompt.md"
        prompt_file.write_text(prompt.build(repo, repo_prompt, task, snap, att.number, self.worker, self._history(att)))
        self._emit(att, "agent_running")
        run = self._agent_run(att, prompt_file, workspace)
        result = self.agents(att.vendor).run(run)
        # In a sandbox every process of the run died with it; unsandboxed, find those that left the agent's group.
        escaped = [] if run.sandbox else proc.kill_marked(f"SWARM_RUN={att.run_id}")
        if escaped:
            log.warning("killed %d process(es) the agent of %s left behind", len(escaped), att.task_id)
        att.record["agent"] = result.record()
        try:
            quota.after_run(self.rt.redis, att.vendor, att.task_id, result)  # spend; cool, park or clear the vendor
        except redis.RedisError as exc:
            log.warning("could not book the run of %s: %s", att.task_id, exc)
        self._check_lease(att)
        if result.fault == "vendor":  # auth, billing, policy, model, CLI, overload, network: never the task's fault
            raise AttemptRejected(f"agent_{result.outcome}", f"{result.reason}: {result.message}", counts=False)
        if result.outcome == "rate_limited":  # not the task's fault: it does not use up an attempt
            raise AttemptRejected("agent_rate_limited", result.message, counts=False)
        if result.outcome == "auth_error":
            raise AttemptRejected("agent_auth_error", result.message, counts=False)
        if result.outcome != "ok":
            raise AttemptRejected(f"agent_{result.outcome}", result.message)
        message = f"{task.title}\n\n{_summary(result.message)}{att.trailers()}"
        candidate = self.rt.mirror.collect(workspace, main, message, author=f"{att.vendor}-agent")
        if candidate is None:
            raise AttemptRejected("no_change", "the agent finished without changing any file")
        return candidate

    def _history(self, att: Attempt) -> list[dict[str, Any]]:
        """The task's earlier attempts, so a retry is told why the last one failed."""
        try:
            return attempts.history(self.rt, att.task_id)
        except redis.RedisError as exc:
            log.warning("could not read the history of %s: %s", att.task_id, exc)
            return []

    def _agent_run(self, att: Attempt, prompt_file: Path, workspace: Path) -> AgentRun:
        home = self._home(att.vendor)
        env = {
            **agent_home_env(home, f"{att.vendor} agent"),
            "SWARM_TASK_ID": att.task_id,
            "SWARM_PROMPT_FILE": str(prompt_file),
            "SWARM_ATTEMPT": str(att.number),
            "SWARM_RUN": att.run_id,
            "SWARM_WORKER": self.worker,
            **identity.marker(self.rt.settings),
        }
        return AgentRun(
            task_id=att.task_id,
            attempt=att.number,
            vendor=att.vendor,
            prompt_file=prompt_file,
            worktree=workspace,
            log_path=att.log_dir / "agent.log",
            home=home,
            timeout=self._agent_timeout(att.vendor),
            env=env,
            cancel=att.cancel,
            on_start=lambda pgid: attempts.note_agent(self.rt, att.task_id, att.lease, pgid),
            sandbox=self._agent_sandbox(att.vendor, workspace, home, prompt_file),
        )

    def _agent_sandbox(self, vendor: str, workspace: Path, home: Path, prompt_file: Path) -> Sandbox | None:
        """What the agent sees: its workspace and home (writable), its prompt, the mirror's objects its workspace
        borrows, the system and toolchains (read-only); not the swarm's workdir, config, origin or other slots."""
        if self.rt.settings.unsafe_no_sandbox:
            return None
        table = self.rt.settings.vendors[vendor]
        network = table.network if table.network is not None else table.adapter not in OFFLINE_ADAPTERS
        box = Sandbox(
            rw=[workspace, home, *table.sandbox_rw],
            ro=[*toolchains(child_env().get("PATH", ""), toolchain_env().values()), self.rt.mirror.path / "objects",
                prompt_file, *table.sandbox_ro],
            network=network,
        )  # fmt: skip
        return box.hiding([self.rt.workdir, config_file().resolve()])

    def _protect(self, att: Attempt, repo: RepoSettings, main: str, candidate: str) -> str:
        """Changes to protected paths are put back as on main, or reject the attempt (per `.swarm.toml`)."""
        # .swarm.toml names the oracle and the protected paths: it is protected whether or not it lists itself.
        protected = [*repo.protected, REPO_SETTINGS_FILE]
        changes = [guard.Change(*c) for c in self.rt.mirror.raw_changes(main, candidate)]
        refused = guard.problems(changes, protected, self.rt.mirror.paths(main), self.rt.mirror.blob)
        if refused:
            raise AttemptRejected("refused_structure", "; ".join(refused))
        touched = [c.path for c in changes if matches(c.path, protected)]
        if not touched:
            return candidate
        att.record["protected_touched"] = touched
        if repo.on_protected == "reject":
            raise AttemptRejected("protected", f"the agent changed protected paths: {', '.join(touched)}")
        self._emit(att, "protected_restored", paths=touched)
        restored = self.rt.mirror.restore(candidate, main, touched)
        if not self.rt.mirror.changed(main, restored):
            raise AttemptRejected("no_change", f"the only changes were to protected paths: {', '.join(touched)}")
        return restored

    def _land(self, att: Attempt, base: str, candidate: str) -> str:
        """Rebase, full oracle on the exact commit, lease check, atomic push; retried when main moved."""
        if self.rt.settings.train_window:
            return self._ride(att, base, candidate)
        for round_ in range(self.rt.settings.land_retries + 1):
            with self._merge_lock(att):
                onto = self.rt.mirror.fetch()
                if att.task_id in self.rt.mirror.landed():
                    raise AttemptRejected("already_landed", "another attempt landed this task first", counts=False)
                repo = self._repo_settings(onto)
                baseline = self._baseline(att, repo, onto)
                self._emit(att, "rebasing", onto=onto, round=round_)
                rebased = self.rt.mirror.rebase(candidate, base, onto)
                if rebased.commit is None:
                    detail = f"rebase onto {onto[:12]} conflicts in {', '.join(rebased.conflicts) or 'some files'}"
                    # Not the agent's fault: the next attempt starts from the new main, without using up the budget.
                    raise AttemptRejected("conflict", detail + "; the task goes back to the queue", counts=False)
                # main may protect more by now than when the agent started: check against what it protects now.
                landing = self._protect(att, repo, onto, rebased.commit)
                self.rt.mirror.keep(landing, f"{att.keep_name}-rebased")
                self._emit(att, "full_oracle", commit=landing)
                full = self._oracle(att, repo, landing, onto, "full")
                att.record["full"] = full.counts()
                reason = oracle.judge(full, baseline)
                if reason:
                    raise AttemptRejected("oracle_red" if not full.ok else "oracle_dropped", reason)
                self._check_lease(att)
                result = self.rt.mirror.land(onto, landing, att.task_id)
                if result is LandResult.LANDED:
                    att.record["rebased"] = onto != base
                    self._landed(att, landing, full)
                    return landing
                if result is LandResult.ALREADY_LANDED:
                    raise AttemptRejected("already_landed", "the landed ref exists on origin", counts=False)
                self._emit(att, "cas_lost", onto=onto)
        rounds = self.rt.settings.land_retries + 1
        raise AttemptRejected("main_moved", f"main moved under {rounds} landing rounds", counts=False)

    def _ride(self, att: Attempt, base: str, candidate: str) -> str:
        """Land through the merge train: the full oracle runs on main + the candidates ahead, in parallel."""
        if att.task_id in self.rt.mirror.landed():
            raise AttemptRejected("already_landed", "another attempt landed this task first", counts=False)

        def build(parent: str) -> str:
            self._emit(att, "rebasing", onto=parent)
            rebased = self.rt.mirror.rebase(candidate, base, parent)
            if rebased.commit is None:
                detail = f"rebase onto {parent[:12]} conflicts in {', '.join(rebased.conflicts) or 'some files'}"
                raise AttemptRejected("conflict", detail + "; the task goes back to the queue", counts=False)
            spec = self._protect(att, self._repo_settings(parent), parent, rebased.commit)
            self.rt.mirror.keep(spec, f"{att.keep_name}-rebased")
            return spec

        def test(commit: str) -> oracle.OracleResult:
            main = self.rt.mirror.main()  # main's harness judges, as in _land; the car may sit on others ahead
            self._emit(att, "full_oracle", commit=commit)
            return self._oracle(att, self._repo_settings(main), commit, main, "full")

        hooks = Hooks(
            main=self.rt.mirror.fetch,
            build=build,
            test=test,
            baseline=lambda main: self._baseline(att, self._repo_settings(main), main),
            alive=lambda: self._check_lease(att),
            land=lambda old, new: self.rt.mirror.land(old, new, att.task_id),
            emit=lambda state, **fields: self._emit(att, state, **fields),
        )
        self._emit(att, "in_train")
        cars = Train(self.rt.redis, self.rt.mirror, self.rt.settings.train_window, self.rt.settings.lease_ttl)
        landing, full = cars.ride(f"{att.task_id}:{att.lease.fence}", hooks)
        att.record.update(full=full.counts(), rebased=landing != candidate)
        self._landed(att, landing, full)
        return landing

    # --- steps ---

    def _lease(self, task_id: str, vendor: str) -> Lease | str:
        """The task's lease, or why this message is dropped instead (the task is then free for dispatch)."""
        if vendor not in self.rt.settings.vendors:
            log.error("no vendor %r in this worker's settings; dropping the message of %s", vendor, task_id)
            return "unknown_vendor"
        cap = self.rt.settings.vendors[vendor].daily_cap_usd
        blocked = quota.gate(self.rt.redis, vendor, self.agents(vendor), self._home(vendor), cap)  # before any oracle
        if blocked:  # this vendor may not start attempts now: give the task back for another vendor
            self.rt.events.emit(task_id, "vendor_blocked", vendor=vendor, reason=blocked)
            return "cooling"
        ledger.ensure_loaded(self.rt)  # after a Redis wipe, fences continue above the last one used
        lease = self.rt.leases.acquire_task(task_id, self.rt.settings.lease_ttl, worker=self.worker, vendor=vendor)
        if lease is None:
            log.info("task %s is leased by another worker; dropping this message", task_id)
            return "busy"
        return lease

    def _home(self, vendor: str) -> Path:
        """This slot's home for the vendor's agent: its config, login link and private temp folder."""
        home = self.rt.workdir / "homes" / f"{vendor}-{self.slot}"
        home.mkdir(parents=True, exist_ok=True)
        return home

    def _unqueue(self, task_id: str, vendor: str) -> None:
        try:
            self.rt.leases.delete_if(keys.queued(task_id), vendor)
        except redis.RedisError as exc:  # the marker expires on its own
            log.warning("could not clear the queued marker of %s: %s", task_id, exc)

    def _new_attempt(self, task_id: str, vendor: str, lease: Lease, cancel: threading.Event) -> Attempt:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        log_dir = self.rt.workdir / "logs" / task_id / f"{stamp}-fence{lease.fence}"
        log_dir.mkdir(parents=True, exist_ok=True)
        att = Attempt(task_id, vendor, self.worker, lease, log_dir, cancel=cancel)
        att.record.update(vendor=vendor, worker=self.worker, fence=lease.fence, log_dir=str(log_dir))
        return att

    def _repo_settings(self, commit: str) -> RepoSettings:
        try:
            return state.read_repo_settings(self.rt, commit)
        except SettingsError as exc:
            raise AttemptRejected("repo_settings", str(exc)) from None

    def _task(self, snap: state.Snapshot, task_id: str, repo: RepoSettings, main: str) -> Task:
        if coalesce.is_pass(task_id):
            text = self.rt.mirror.read(main, repo.coalesce_prompt) if repo.coalesce_prompt else None
            if text is None:
                raise AttemptRejected("invalid_task", f"{task_id}: no coalesce_prompt file in .swarm.toml on main")
            return coalesce.task(task_id, repo, text.decode(errors="replace"))
        task = snap.backlog.tasks.get(task_id)
        if task is None:
            bad = [str(e) for e in snap.backlog.invalid if e.path.endswith(f"/{task_id}.md")]
            raise AttemptRejected("invalid_task", bad[0] if bad else f"no task file for {task_id!r} on main")
        return task

    def _agent_timeout(self, vendor: str) -> float:
        return self.rt.settings.vendors[vendor].timeout or self.rt.settings.agent_timeout

    def _oracle(
        self, att: Attempt, repo: RepoSettings, commit: str, main: str, tier: oracle.Tier
    ) -> oracle.OracleResult:
        """The judge's verdict on `commit`: its code built and tested in a sandbox, main's harness the judge."""
        result = self._judge(att.vendor).run(
            repo,
            tier,
            commit,
            main,
            att.next_log(f"oracle-{tier}"),
            agent_id=f"{att.vendor}-{self.slot}",
            timeout=min(repo.oracle.timeout, self.rt.settings.oracle_timeout),
            cancel=att.cancel,
        )
        self._check_lease(att)
        return result

    def _judge(self, vendor: str) -> Judge:
        return Judge(
            self.rt.mirror,
            self.rt.workdir / "judge" / f"{vendor}-{self.slot}",
            seed=self.rt.judge_seed(),
            sandboxed=not self.rt.settings.unsafe_no_sandbox,
            keep_runs=self.rt.settings.keep_worktrees,
        )

    def _baseline(self, att: Attempt, repo: RepoSettings, main: str) -> dict[str, Any] | None:
        """main's full-oracle counts: cached per commit; measured here once if no landing measured them."""
        cached = self.rt.redis.get(keys.oracle(main))
        if cached:
            return dict(json.loads(cached))
        self._emit(att, "baseline_oracle", commit=main)
        result = self._oracle(att, repo, main, main, "full")
        if not result.ok:
            # Never cache a red or timed-out run: its counts would disable the no-drop check for this commit.
            # A red main lets a green candidate land (it repairs main); the next attempt measures main again.
            self._emit(att, "main_red", commit=main, reason=result.reason)
            return None
        counts = {**result.counts(), "areas": result.summary.get("areas"), "ok": True, "commit": main}
        self.rt.redis.set(keys.oracle(main), json.dumps(counts))
        return counts

    @contextmanager
    def _merge_lock(self, att: Attempt) -> Iterator[None]:
        """Serialise landings: it saves wasted rebases and test runs; correctness comes from the push's CAS."""
        self._emit(att, "waiting_merge_lock")
        ttl = self.rt.settings.lease_ttl
        while True:
            lock = self.rt.leases.acquire(keys.MERGE_LOCK, keys.MERGE_FENCE, ttl, task=att.task_id, worker=self.worker)
            if lock is not None:
                break
            self._check_lease(att)
            time.sleep(MERGE_LOCK_POLL)
        try:
            with Heartbeat(self.rt.leases, lock, on_lost=lambda reason: log.warning("merge lock lost: %s", reason)):
                yield
        finally:
            self.rt.leases.release(lock)

    def _check_lease(self, att: Attempt) -> None:
        """The attempt may go on only while its lease is still the one in Redis."""
        if att.cancel.is_set() or not self.rt.leases.held(att.lease):
            att.cancel.set()
            if controls.cancelled(self.rt, att.task_id):  # `swarm cancel`: not the task's fault, not counted
                raise AttemptRejected("cancelled", "stopped with `swarm cancel`", counts=False)
            raise AttemptRejected("lease_lost", "the task's lease expired or was taken over; this attempt stops")

    def _landed(self, att: Attempt, commit: str, full: oracle.OracleResult) -> None:
        self._judge(att.vendor).landed(commit)  # this slot's build of the landed tree seeds its next builds
        counts = {**full.counts(), "areas": full.summary.get("areas"), "ok": True, "commit": commit}
        landing = {
            "task": att.task_id,
            "commit": commit,
            "vendor": att.vendor,
            "worker": self.worker,
            "at": time.time(),
        }
        pipe = self.rt.redis.pipeline()
        pipe.set(keys.oracle(commit), json.dumps(counts))
        pipe.lpush(keys.LANDINGS, json.dumps({**landing, **full.counts()}))
        pipe.ltrim(keys.LANDINGS, 0, 99)
        pipe.hincrby(keys.METRICS, "landed", 1)
        pipe.execute()

    def _release(self, lease: Lease) -> None:
        try:
            self.rt.leases.release(lease)
        except redis.RedisError as exc:  # unreachable: the lease expires on its own within one TTL
            log.warning("could not release %s: %s", lease.key, exc)

    def _rejected(self, att: Attempt, rej: AttemptRejected) -> str:
        att.record.update(outcome="rejected", reason=rej.reason, detail=rej.detail)
        # Free attempts (rate limits, conflicts, main moving) are bounded too, so no task loops forever.
        final = att.number >= FREE_RUNS_FACTOR * self.rt.settings.max_attempts
        try:
            failed = attempts.end(self.rt, att.task_id, att.lease, att.record, counts=rej.counts, final=final)
        except redis.RedisError as exc:  # the reaper records this attempt as lost once Redis is back
            log.warning("could not record the rejected attempt of %s (%s): %s", att.task_id, rej, exc)
            return "rejected"
        self._emit(att, "failed" if failed else "rejected", reason=rej.reason, detail=rej.detail)
        log.warning("task %s attempt %d rejected: %s", att.task_id, att.number, rej)
        return "failed" if failed else "rejected"

    def _clean_up(self, att: Attempt) -> None:
        for name in (att.keep_name, f"{att.keep_name}-rebased"):
            try:
                self.rt.mirror.unkeep(name)
            except SwarmError as exc:
                log.warning("could not drop %s: %s", name, exc)
        for path in att.folders:
            self._drop_folder(path)

    def _workspace(self, att: Attempt, commit: str) -> Path:
        """The agent's standalone repository at `commit` (no worktree of the mirror: its git dir is the agent's)."""
        path = self.rt.workdir / "workspaces" / f"{att.task_id}-{self.worker}-{secrets.token_hex(3)}"
        att.folders.append(path)
        self.rt.mirror.workspace(commit, path)
        return path

    def _drop_folder(self, path: Path) -> None:
        if self.rt.settings.keep_worktrees:
            return
        shutil.rmtree(path, ignore_errors=True)
        index_of(path).unlink(missing_ok=True)

    def _emit(self, att: Attempt, state_name: str, **fields: Any) -> None:
        self.rt.events.emit(
            att.task_id,
            state_name,
            vendor=att.vendor,
            worker=self.worker,
            attempt=att.number,
            log_dir=str(att.log_dir),
            **fields,
        )


def _summary(message: str, limit: int = 2000) -> str:
    text = message.strip()
    if not text:
        return ""
    if len(text) > limit:
        text = text[:limit] + " [...]"
    # A line in the agent's text that looks like a trailer would be taken for one of ours.
    lines = [("> " + ln) if ln.startswith("Swarm-") else ln for ln in text.splitlines()]
    return "\n".join(lines) + "\n\n"
