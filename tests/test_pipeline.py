"""One attempt end to end with real Redis, real git and the scripted agent; no Celery."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import redis

from swarm import keys
from swarm.agents import registry
from swarm.errors import CoordinationError
from swarm.outcomes import AttemptRecord
from swarm.pipeline import Pipeline
from swarm.runtime import Runtime, connect
from tests.conftest import Project, announce_slots, kill_processes, make_settings, still_beating, task_file, wait_for


def pipeline(rt: Runtime, worker: str = "w1") -> Pipeline:
    def agent(vendor: str):  # type: ignore[no-untyped-def]
        table = rt.settings.vendors[vendor]
        return registry.make(vendor, table.adapter, table.options())

    return Pipeline.on(rt, agent, worker)


def history(rt: Runtime, task_id: str) -> list[AttemptRecord]:
    return rt.book.history(task_id)


def trailers(project: Project, rev: str) -> dict[str, str]:
    body = project.git("log", "-1", "--format=%B", rev)
    return dict(line.split(": ", 1) for line in body.splitlines() if line.startswith("Swarm-"))


def test_a_task_lands_as_one_commit_with_trailers_tested_by_the_full_oracle(
    project: Project, rt: Runtime, r: redis.Redis
) -> None:
    project.add_tasks({"alpha": task_file("Write alpha", "write src/alpha.txt alpha\ncommit wip\nwrite src/x.txt x")})
    before = project.main_log()
    assert pipeline(rt).run("alpha", "claude") == "landed"
    after = project.main_log()
    assert len(after) == len(before) + 1, "exactly one commit per landed task (agent commits squashed)"
    head = after[0]
    assert project.landed() == {"alpha": head}
    assert trailers(project, head)["Swarm-Task"] == "alpha"
    assert trailers(project, head)["Swarm-Agent"] == "claude"
    assert project.show("src/alpha.txt") == "alpha" and project.show("src/x.txt") == "x"
    assert ("full", head, "green", 2) in project.oracle_runs(), "the landed commit is the one the full oracle passed"
    baseline = rt.baselines.get(head)
    assert baseline is not None and baseline.passed == 2, "the landed commit's counts are main's new baseline"
    assert not rt.leases.holders() and not rt.book.in_flight()
    kept = sorted(p.name for p in (project.workdir / "workspaces").iterdir())
    assert kept == [".spare-w1.swarm-index", "spare-w1"], "the agent's folder is kept only as the slot's spare"
    assert not list(project.workdir.glob("judge/*/runs/*")), "the judge's run folders are removed"


@pytest.mark.parametrize("train_window", [8, 0])
def test_a_main_no_landing_measured_is_measured_once_where_its_counts_are_needed_not_before_the_agent(
    project: Project, redis_url: str, train_window: int
) -> None:
    """A human's push leaves main without counts. The agent starts at once (with N slots, N measurements of one
    commit before any agent could start); main is measured once (beside the agent, and the verdict waits for that
    run rather than starting another), and its counts are known after."""
    rt = connect(make_settings(project, redis_url, train_window=train_window))
    project.add_tasks({name: task_file(f"Write {name}", f"write src/{name}.txt {name}") for name in ("alpha", "beta")})
    pushed = project.main_log()[0]
    assert rt.baselines.get(pushed) is None
    assert pipeline(rt).run("alpha", "claude") == "landed"
    states = [e["state"] for e in reversed(rt.events.recent()) if e.get("task") == "alpha"]
    assert states.index("agent_running") < states.index("baseline_oracle"), states
    assert rt.baselines.get(pushed) is not None
    assert pipeline(rt).run("beta", "claude") == "landed"
    measured = [commit for tier, commit, _, _ in project.oracle_runs() if tier == "full"]
    assert measured.count(pushed) == 1, "main is measured once; the next main's counts come from its landing"


@pytest.mark.parametrize(("fast_tier", "train_window", "fast_runs"), [("auto", 8, 0), ("always", 8, 1), ("auto", 0, 1)])
def test_the_fast_tier_is_skipped_only_when_the_full_tier_starts_at_once(
    project: Project, redis_url: str, fast_tier: str, train_window: int, fast_runs: int
) -> None:
    """With room in the train the full tier starts at once, so a fast run first would only add its time; asked for
    (`always`), or on the merge lock's path (where a candidate may wait), the fast tier still filters first."""
    rt = connect(make_settings(project, redis_url, fast_tier=fast_tier, train_window=train_window))
    project.add_tasks({"alpha": task_file("Write alpha", "write src/alpha.txt alpha")})
    assert pipeline(rt).run("alpha", "claude") == "landed"
    head = project.main_log()[0]
    tiers = [tier for tier, commit, _, _ in project.oracle_runs() if commit != project.main_log()[1]]
    assert tiers.count("fast") == fast_runs and tiers.count("full") == 1, project.oracle_runs()
    (record,) = history(rt, "alpha")
    assert (record.fast is None) == (fast_runs == 0) and record.full is not None and record.commit == head
    skipped = [e for e in rt.events.recent() if e.get("state") == "fast_skipped"]
    assert len(skipped) == 1 - fast_runs


def test_a_car_waiting_outside_the_window_means_the_train_has_no_room(rt: Runtime, r: redis.Redis) -> None:
    assert rt.train.has_room()
    r.set(keys.TRAIN_WINDOW, 1)
    r.rpush(keys.TRAIN, "other:1")
    assert not rt.train.has_room(), "one car in a window of one: a new car would wait, so it takes the fast tier"
    r.set(keys.TRAIN_WINDOW, 2)
    assert rt.train.has_room()


def test_a_damaged_spare_folder_is_written_anew_and_the_slot_goes_on(project: Project, rt: Runtime) -> None:
    project.add_tasks({"alpha": task_file("Write alpha", "write src/alpha.txt alpha"),
                       "beta": task_file("Write beta", "write src/beta.txt beta")})  # fmt: skip
    assert pipeline(rt).run("alpha", "claude") == "landed"
    (project.workdir / "workspaces" / ".spare-w1.swarm-index").write_bytes(b"not an index")
    assert pipeline(rt).run("beta", "claude") == "landed", history(rt, "beta")[-1].detail
    assert project.show("src/beta.txt") == "beta"


def test_an_agent_that_breaks_the_oracle_never_lands_and_fails_after_its_attempts(
    project: Project, rt: Runtime
) -> None:
    project.add_tasks({"broken": task_file("Break it", "write src/alpha.txt BREAK")})
    before = project.main_log()
    assert pipeline(rt).run("broken", "claude") == "rejected"
    assert pipeline(rt).run("broken", "codex") == "failed"
    assert project.main_log() == before and "broken" not in project.landed()
    failure = rt.book.failures()["broken"]
    assert failure["reason"] == "oracle_red" and failure["attempts"] == 2
    assert list(Path(failure["log_dir"]).glob("*-oracle-full.log"))
    assert [h.reason for h in history(rt, "broken")] == ["oracle_red", "oracle_red"]
    assert pipeline(rt).run("broken", "claude") == "done", "a failed task is not attempted again until retried"


def test_a_drop_in_the_passing_count_is_rejected(project: Project, rt: Runtime) -> None:
    project.add_tasks({"drop": task_file("Drop base", "delete src/base.txt\nwrite src/other.txt x")})
    assert pipeline(rt).run("drop", "claude") == "rejected"
    assert history(rt, "drop")[-1].reason == "oracle_dropped"
    assert "drop" not in project.landed()


@pytest.mark.parametrize("policy", ["restore", "reject"])
def test_protected_paths_are_restored_or_rejected(project: Project, redis_url: str, policy: str) -> None:
    if policy == "reject":
        text = (project.clone / ".swarm.toml").read_text().replace("[oracle]", 'on_protected = "reject"\n\n[oracle]')
        (project.clone / ".swarm.toml").write_text(text)
    script = "write checks/base.check path=src/base.txt\\nexpect=anything\nwrite src/base.txt anything"
    project.add_tasks({"cheat": task_file("Cheat", script)})
    rt = connect(make_settings(project, redis_url))
    outcome = pipeline(rt).run("cheat", "claude")
    if policy == "reject":
        assert outcome == "rejected"
        assert history(rt, "cheat")[-1].reason == "protected"
        return
    # The check was put back: changing src/base.txt now drops the passing count, so the cheat cannot land.
    assert outcome == "rejected"
    assert history(rt, "cheat")[-1].protected_touched == ["checks/base.check"]
    assert history(rt, "cheat")[-1].reason == "oracle_dropped"
    assert project.show("checks/base.check").endswith("expect=base")


def test_protected_change_is_restored_and_the_honest_rest_lands(project: Project, rt: Runtime) -> None:
    project.add_tasks({"mixed": task_file("Mixed", "write oracle.py print('fake')\nwrite src/alpha.txt alpha")})
    assert pipeline(rt).run("mixed", "claude") == "landed"
    assert "BREAK" in project.show("oracle.py"), "oracle.py is main's, not the agent's"
    assert project.show("src/alpha.txt") == "alpha"


def test_no_change_is_an_attempt_that_fails(project: Project, rt: Runtime) -> None:
    project.add_tasks({"idle": task_file("Idle", "say nothing to do")})
    assert pipeline(rt).run("idle", "claude") == "rejected"
    assert history(rt, "idle")[-1].reason == "no_change"


def test_two_workers_racing_for_one_task_one_lease_wins(
    project: Project, rt: Runtime, settings, r: redis.Redis
) -> None:  # type: ignore[no-untyped-def]
    gate = project.signals / "gate"
    project.add_tasks({"race": task_file("Race", f"wait-file {gate} 20\nwrite src/alpha.txt alpha")})
    results: list[str] = []
    first = threading.Thread(target=lambda: results.append(pipeline(rt, "w1").run("race", "claude")))
    first.start()
    wait_for(lambda: "race" in rt.leases.holders(), 20, "the first worker to lease the task")
    second = pipeline(connect(settings), "w2").run("race", "codex")
    gate.touch()
    first.join()
    assert second == "busy" and results == ["landed"]
    assert list(project.landed()) == ["race"]


def run_losing_its_lease(rt: Runtime, r: redis.Redis, task_id: str, started: Path) -> list[str]:
    """Run the task on claude and delete its lease once the agent touched `started`, as if it expired while the
    worker was stalled; the attempt's outcome (empty if it did not end within a minute)."""
    result: list[str] = []
    t = threading.Thread(target=lambda: result.append(pipeline(rt).run(task_id, "claude")))
    t.start()
    wait_for(started.exists, 180, "the agent to start")
    r.delete(keys.lease(task_id))
    t.join(timeout=60)
    return result


def test_a_lease_lost_mid_attempt_cannot_land(project: Project, rt: Runtime, r: redis.Redis) -> None:
    gate = project.signals / "gate"
    started = project.signals / "started"
    script = f"sh touch {started}\nwait-file {gate} 20\nwrite src/alpha.txt alpha"
    project.add_tasks({"late": task_file("Late", script)})
    assert run_losing_its_lease(rt, r, "late", started) == ["rejected"]
    assert history(rt, "late")[-1].reason in ("lease_lost", "agent_failed")
    assert "late" not in project.landed()


def test_two_attempts_of_one_task_racing_to_land_exactly_one_lands(
    project: Project, rt: Runtime, settings, r: redis.Redis
) -> None:  # type: ignore[no-untyped-def]
    """Two attempts both pass every check; the landed-ref create and main's CAS let only one in."""
    gate = project.signals / "gate"
    project.add_tasks({"twice": task_file("Twice", f"write src/alpha.txt alpha\nwait-file {gate} 20")})
    results: list[str] = []
    first = threading.Thread(target=lambda: results.append(pipeline(rt, "w1").run("twice", "claude")))
    first.start()
    wait_for(lambda: "twice" in rt.leases.holders(), 20, "the first attempt to lease the task")
    r.delete(keys.lease("twice"))  # a second attempt gets a lease, as after a wrongly expired one
    rt2 = connect(settings)
    second = threading.Thread(target=lambda: results.append(pipeline(rt2, "w2").run("twice", "codex")))
    second.start()
    wait_for(lambda: rt.book.in_flight().get("twice", {}).get("worker") == "w2", 20, "the second attempt to start")
    gate.touch()
    first.join()
    second.join()
    assert sorted(results) == ["landed", "rejected"], "a lost race is not the task's fault: it never fails it"
    assert {h.reason for h in history(rt, "twice") if h.outcome != "landed"} <= {
        "lease_lost",
        "lost",
        "already_landed",
    }
    assert list(project.landed()) == ["twice"]
    assert sum(1 for sha in project.main_log() if trailers(project, sha).get("Swarm-Task") == "twice") == 1


def test_main_moved_the_attempt_is_rebased_and_the_rebased_commit_is_what_was_tested(
    project: Project, rt: Runtime
) -> None:
    gate = project.signals / "gate"
    started = project.signals / "started"
    project.add_tasks({"beta": task_file("Beta", f"sh touch {started}\nwait-file {gate} 20\nwrite src/beta.txt beta")})
    result: list[str] = []
    t = threading.Thread(target=lambda: result.append(pipeline(rt).run("beta", "claude")))
    t.start()
    wait_for(started.exists, 180, "the agent to start")
    (project.clone / "src" / "alpha.txt").write_text("alpha\n")
    project.git("pull", "-q", "--rebase", "--autostash", "origin", "main", cwd=project.clone)
    project.commit_all("Alpha by hand")
    gate.touch()
    t.join()
    assert result == ["landed"]
    head = project.main_log()[0]
    assert project.landed()["beta"] == head
    assert project.git("rev-parse", f"{head}^") == project.main_log()[1], "rebased onto the moved main"
    assert ("full", head, "green", 3) in project.oracle_runs()


def test_a_rebase_conflict_sends_the_task_back(project: Project, rt: Runtime) -> None:
    gate = project.signals / "gate"
    started = project.signals / "started"
    project.add_tasks(
        {"clash": task_file("Clash", f"sh touch {started}\nwait-file {gate} 20\nwrite src/base.txt mine")}
    )
    result: list[str] = []
    t = threading.Thread(target=lambda: result.append(pipeline(rt).run("clash", "claude")))
    t.start()
    wait_for(started.exists, 180, "the agent to start")
    project.git("pull", "-q", "--rebase", "--autostash", "origin", "main", cwd=project.clone)
    (project.clone / "src" / "base.txt").write_text("theirs\n")
    project.commit_all("Conflicting change")
    gate.touch()
    t.join()
    assert result == ["rejected"]
    assert history(rt, "clash")[-1].reason == "conflict"
    assert not rt.book.has_failed("clash")
    assert rt.book.budget("clash").used == 0, "a conflict does not use up the task's attempt budget"


def test_the_prompt_holds_the_task_and_the_swarms_context(project: Project, rt: Runtime) -> None:
    project.add_tasks(
        {"first": task_file("First", "write src/alpha.txt alpha"), "second": task_file("Second", "say x")}
    )
    assert pipeline(rt).run("first", "claude") == "landed"
    rt.leases.acquire_task("other", 30, worker="w9", vendor="codex")
    pipeline(rt).run("second", "claude")
    prompt = (Path(history(rt, "second")[-1].log_dir) / "prompt.md").read_text()
    assert prompt.startswith("# Toy repository agent prompt")
    assert "# Your task: `second` (Second)" in prompt and "```agent" in prompt
    assert "- `first`: First" in prompt, "landed tasks are listed"
    assert "- `other`" in prompt and "(codex)" in prompt, "tasks other workers hold are listed"
    assert "passed 2" in prompt, "main's oracle counts are given"


def test_an_agent_that_hangs_is_killed_at_the_timeout(project: Project, redis_url: str) -> None:
    beat = project.signals / "child.beat"
    loop = f"sh (while true; do date +%s%N > {beat}; sleep 0.2; done) & wait"
    project.add_tasks({"hang": task_file("Hang", loop)})
    rt = connect(make_settings(project, redis_url, agent_timeout=2.0))
    assert pipeline(rt).run("hang", "claude") == "rejected"
    assert history(rt, "hang")[-1].reason == "agent_timeout"
    assert beat.exists(), "the agent's child never ran"
    assert not still_beating(beat, 2.0), "a child of the timed-out agent lives on"


def test_an_agent_cannot_push_from_its_worktree_nor_find_origin_there(project: Project, rt: Runtime) -> None:
    out = project.signals / "push.out"
    script = f"write src/alpha.txt alpha\nsh (git push origin HEAD:main; git push; git remote -v) > {out} 2>&1"
    project.add_tasks({"pusher": task_file("Pusher", script)})
    before = project.main_log()
    assert pipeline(rt).run("pusher", "claude") == "landed"
    assert project.main_log()[1:] == before, "main moved only by the swarm's landing, one commit"
    text = out.read_text()
    assert str(project.origin) not in text and "origin" not in text.split("\n")[-1]
    assert "does not appear to be a git repository" in text or "No configured push destination" in text


def test_a_red_main_is_never_cached_as_a_baseline_and_a_green_repair_lands(project: Project, rt: Runtime) -> None:
    (project.clone / "src" / "alpha.txt").write_text("BREAK\n")
    project.add_tasks({"repair": task_file("Repair", "write src/alpha.txt alpha")}, message="A red commit by hand")
    red_main = project.main_log()[0]
    assert pipeline(rt).run("repair", "claude") == "landed"
    assert rt.baselines.get(red_main) is None, "a red run's counts would disable the no-drop check"
    assert rt.baselines.get(project.main_log()[0]) is not None


def test_swarm_toml_is_protected_even_when_it_does_not_list_itself(project: Project, redis_url: str) -> None:
    toml = (project.clone / ".swarm.toml").read_text().replace(', ".swarm.toml"]', "]")
    (project.clone / ".swarm.toml").write_text(toml)
    fake = 'write .swarm.toml [oracle]\\nfast = "true"\\nfull = "echo {}"\nwrite src/alpha.txt alpha'
    project.add_tasks({"judge": task_file("Rewrite the judge", fake)})
    rt = connect(make_settings(project, redis_url))
    assert pipeline(rt).run("judge", "claude") == "landed"
    assert project.show(".swarm.toml") == toml.strip(), "the landed commit keeps main's .swarm.toml"
    assert history(rt, "judge")[-1].protected_touched == [".swarm.toml"]


def test_a_process_that_escaped_the_agents_group_cannot_change_what_the_oracle_tests(
    project: Project, rt: Runtime
) -> None:
    beat = project.signals / "escapee.beat"
    escape = (f"sh setsid env -i /bin/bash -c 'sleep 1; echo CHEATED > src/base.txt; "
              f"while true; do date +%s%N > {beat}; sleep 0.2; done' &")  # fmt: skip
    project.add_tasks({"sneaky": task_file("Sneaky", f"{escape}\nwrite src/alpha.txt alpha")})
    try:
        assert pipeline(rt).run("sneaky", "claude") == "landed"
        assert project.show("src/base.txt") == "base"
        # The escapee sleeps 1 s before its first beat: watch longer than that.
        assert not still_beating(beat, 3.0), "a process that left the agent's group and environment lives on"
    finally:  # with the sandbox removed (scripts/check_safeguards.py) the escapee carries no mark of the test
        kill_processes(
            [p.pid for p in psutil.process_iter(["cmdline"]) if str(beat) in " ".join(p.info["cmdline"] or [])]
        )


def test_hooks_an_agent_plants_in_the_shared_git_config_never_run(project: Project, rt: Runtime) -> None:
    hooks, fired = project.signals / "evil-hooks", project.signals / "hook-fired"
    hooks.mkdir()
    for hook in ("post-checkout", "pre-commit", "reference-transaction", "pre-push"):
        (hooks / hook).write_text(f"#!/bin/sh\ntouch {fired}\necho CHEATED > src/base.txt 2>/dev/null\nexit 0\n")
        (hooks / hook).chmod(0o755)
    plant = f"sh git config core.hooksPath {hooks} && git config core.fsmonitor {hooks}/post-checkout"
    project.add_tasks({"planter": task_file("Planter", f"{plant}\nwrite src/alpha.txt alpha")})
    assert pipeline(rt).run("planter", "claude") == "landed"
    assert not fired.exists(), "a hook ran in one of the swarm's own git commands"
    assert project.show("src/base.txt") == "base"


def test_an_agent_cannot_find_origin_from_its_worktree_and_has_its_own_home(project: Project, rt: Runtime) -> None:
    seen = project.signals / "seen.txt"
    look = (f"sh (cat $(git rev-parse --git-common-dir)/FETCH_HEAD; git config -l; git remote -v; env; "
            f"ls -a $(git rev-parse --git-common-dir)) > {seen} 2>&1")  # fmt: skip
    project.add_tasks({"curious": task_file("Curious", f"write src/alpha.txt alpha\n{look}")})
    assert pipeline(rt).run("curious", "claude") == "landed"
    text = seen.read_text()
    assert str(project.origin).removesuffix(".git") not in text, "the agent could learn where origin is"
    home = next(line.split("=", 1)[1] for line in text.splitlines() if line.startswith("HOME="))
    assert home.startswith(str(project.workdir / "homes")), "the agent's HOME is its slot's folder"


def test_a_message_dropped_before_its_lease_leaves_the_task_free_for_dispatch(project: Project, rt: Runtime) -> None:
    """A worker whose settings lack the vendor, or that hits an error before leasing, must clear the marker."""
    project.add_tasks({"alpha": task_file("Alpha", "write src/alpha.txt alpha")})
    assert rt.marks.mark("alpha", "gemini", 600)
    assert pipeline(rt).run("alpha", "gemini") == "unknown_vendor"
    assert "alpha" not in rt.marks.all(), "the task would look queued for the marker's whole TTL"
    assert rt.marks.mark("alpha", "claude", 600)
    broken = Pipeline.on(connect(make_settings(project, "redis://127.0.0.1:1/0")), lambda v: None, "w9")  # type: ignore[arg-type,return-value]
    broken.marks = rt.marks  # the marker is cleared through a Redis that answers
    with pytest.raises(CoordinationError):
        broken.run("alpha", "claude")
    assert "alpha" not in rt.marks.all()


def test_a_path_main_started_protecting_during_the_attempt_is_protected_at_landing(
    project: Project, rt: Runtime
) -> None:
    gate, started = project.signals / "gate", project.signals / "started"
    script = f"sh touch {started}\nwait-file {gate} 20\nwrite src/alpha.txt alpha\nwrite src/base.txt rewritten"
    project.add_tasks({"late": task_file("Late", script)})
    result: list[str] = []
    t = threading.Thread(target=lambda: result.append(pipeline(rt).run("late", "claude")))
    t.start()
    wait_for(started.exists, 180, "the agent to start")
    toml = (project.clone / ".swarm.toml").read_text().replace('"checks/**",', '"checks/**", "src/base.txt",')
    (project.clone / ".swarm.toml").write_text(toml)
    project.git("pull", "-q", "--rebase", "--autostash", "origin", "main", cwd=project.clone)
    project.commit_all("Protect src/base.txt")
    gate.touch()
    t.join()
    assert result == ["landed"]
    assert project.show("src/base.txt") == "base" and project.show("src/alpha.txt") == "alpha"


def with_coalesce_prompt(project: Project, script: str = "write src/alpha.txt alpha") -> None:
    prompts = 'prompt = "AGENT_PROMPT.md"\ncoalesce_prompt = "COALESCE.md"'
    toml = (project.clone / ".swarm.toml").read_text().replace('prompt = "AGENT_PROMPT.md"', prompts)
    (project.clone / ".swarm.toml").write_text(toml)
    (project.clone / "COALESCE.md").write_text(f"Merge duplicated code.\n\n```agent\n{script}\n```\n")
    project.add_tasks({}, message="A coalesce prompt")


def test_a_clean_up_pass_follows_the_coalesce_prompt_and_lands_like_a_task(project: Project, rt: Runtime) -> None:
    with_coalesce_prompt(project)
    assert pipeline(rt).run("coalesce-1", "codex") == "landed"
    head = project.main_log()[0]
    assert project.landed()["coalesce-1"] == head
    assert trailers(project, head)["Swarm-Task"] == "coalesce-1"
    prompt_text = (Path(history(rt, "coalesce-1")[-1].log_dir) / "prompt.md").read_text()
    assert "Merge duplicated code." in prompt_text


def test_a_clean_up_pass_without_a_coalesce_prompt_is_an_invalid_task(project: Project, rt: Runtime) -> None:
    assert pipeline(rt).run("coalesce-1", "claude") == "rejected"
    assert history(rt, "coalesce-1")[-1].reason == "invalid_task"


def fill(folder: Path) -> Path:
    filler = folder / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
    return filler


def fill_inodes(folder: Path) -> Path:
    filler = folder / "filler"
    filler.mkdir()
    with contextlib.suppress(OSError):  # no space left on device: every inode is taken
        for n in itertools.count():
            (filler / str(n)).touch()
    return filler


@dataclass(frozen=True)
class SmallDisk:
    """A tmpfs that runs out of space (8 MB) or of inodes (a few thousand files, the workdir about a tenth of it)."""

    options: str
    fill: Callable[[Path], Path]
    hog: str
    """What an agent runs to fill it itself."""
    said: str
    """What an infrastructure rejection's detail says of it."""


SMALL_DISKS = {
    "space": SmallDisk("size=8m", fill, "dd if=/dev/zero of=hog bs=64k", "bytes free"),
    "inodes": SmallDisk("size=64m,nr_inodes=6000", fill_inodes, "i=0; while : > hog$i; do i=$((i+1)); done",
                        "no free inodes"),
}  # fmt: skip


@pytest.fixture(params=sorted(SMALL_DISKS))
def small_disk(request: pytest.FixtureRequest, project: Project) -> Iterator[SmallDisk]:
    """The workdir on a small tmpfs of its own, so a test can fill it."""
    disk = SMALL_DISKS[request.param]
    project.workdir.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", disk.options, "tmpfs", str(project.workdir)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:  # a laptop without root skips; CI (root) must run it
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(f"cannot mount a tmpfs: {mounted.stderr}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(project.workdir)], capture_output=True)


def test_an_agent_that_fails_while_the_disk_is_full_is_not_charged_for_it(
    project: Project, redis_url: str, small_disk: SmallDisk
) -> None:
    """The chaos soak's lost task: its agent could not write its output on a full workdir disk and failed, twice,
    which used up its budget. With one attempt allowed, only a failure not charged to the task lets it land."""
    go = project.signals / "go"
    script = f"@1 wait-file {go} 60\nwrite src/alpha.txt alpha"
    project.add_tasks({"alpha": task_file("Write alpha", script)})
    rt = connect(make_settings(project, redis_url, max_attempts=1))
    announce_slots(redis.Redis.from_url(redis_url), rt.settings)
    outcome: list[str] = []
    run = threading.Thread(target=lambda: outcome.append(pipeline(rt).run("alpha", "claude")))
    run.start()
    try:
        wait_for(lambda: any(e.get("state") == "agent_running" for e in rt.events.recent()), 60, "the agent to start")
        filler = small_disk.fill(project.workdir)
        go.touch()
    finally:
        go.touch()
        run.join(120)
    assert outcome == ["rejected"]
    record = history(rt, "alpha")[-1]
    assert record.reason == "infrastructure" and not record.counted, record
    assert "was full" in record.detail and small_disk.said in record.detail, record.detail
    assert "agent_failed" in record.detail, record.detail
    shutil.rmtree(filler) if filler.is_dir() else filler.unlink()
    assert pipeline(rt).run("alpha", "codex") == "landed"


def test_an_agent_that_fills_the_disk_itself_is_charged_for_its_failure(
    project: Project, redis_url: str, small_disk: SmallDisk
) -> None:
    """No free retries for filling the disk: the attempt's own folders hold what filled it, so the failure counts."""
    project.add_tasks({"hog": task_file("Fill the disk", f"sh {small_disk.hog}\nwrite src/hog.txt hog")})
    rt = connect(make_settings(project, redis_url, max_attempts=1))
    announce_slots(redis.Redis.from_url(redis_url), rt.settings)
    assert pipeline(rt).run("hog", "claude") == "failed"
    record = history(rt, "hog")[-1]
    assert record.reason == "agent_failed" and record.counted, record
