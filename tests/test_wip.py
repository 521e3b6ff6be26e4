"""The work so far of a cut attempt, kept on origin and resumed by its vendor's next attempt (real Redis, real git,
the scripted agent; no Celery)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import redis

from swarm import ledger, reaper, wip
from swarm.runtime import Runtime, connect
from swarm.workspace import Workspaces
from tests.conftest import Project, make_settings, task_file, vendor_table
from tests.test_pipeline import history, pipeline, run_losing_its_lease

WIP_REF = "refs/swarm/wip/slow"
# Attempt 1 writes a file, then hangs past its timeout; attempt 2 writes another and finishes.
SLOW = "@1 write src/alpha.txt alpha\n@1 sleep 60\n@2 write src/beta.txt beta"


def origin_ref(project: Project, ref: str) -> str:
    return project.git("for-each-ref", "--format=%(objectname)", ref)


def timing_out(project: Project, redis_url: str, **vendor: object) -> Runtime:
    table = vendor_table(sandbox_rw=[project.signals], **vendor)
    return connect(make_settings(project, redis_url, agent_timeout=2.0, vendors={"claude": table}))


def prompt_of(rt: Runtime, task_id: str, attempt: int) -> str:
    return (Path(history(rt, task_id)[attempt - 1].log_dir) / "prompt.md").read_text()


def test_a_timed_out_attempt_keeps_its_work_and_the_next_attempt_goes_on_from_it_and_lands(
    project: Project, redis_url: str
) -> None:
    project.add_tasks({"slow": task_file("Slow", SLOW)})
    rt = timing_out(project, redis_url)
    assert pipeline(rt).run("slow", "claude") == "rejected"
    first = history(rt, "slow")[-1]
    assert first.reason == "agent_timeout"
    kept = origin_ref(project, WIP_REF)
    assert kept, "the cut attempt's work is on origin, where a dead machine or a Redis wipe cannot lose it"
    assert project.show("src/alpha.txt", kept) == "alpha"
    assert first.wip is not None and first.wip["commit"] == kept and first.wip["vendor"] == "claude"
    assert "Swarm-Wip-Vendor: claude" in project.git("log", "-1", "--format=%B", kept)
    rt.mirror.fetch()
    end = [rec for rec in ledger.read(rt.mirror, "slow")["slow"] if rec["event"] == "end"][-1]
    assert end["wip"]["commit"] == kept, "origin's ledger says where the work went, whatever Redis forgets"
    kept_folders = sorted(p.name for p in (project.workdir / "workspaces").iterdir())
    assert kept_folders == [".spare-w1.swarm-index", "spare-w1"], "the folder itself goes (kept only as the spare)"

    assert pipeline(rt).run("slow", "claude") == "landed"
    assert project.show("src/alpha.txt") == "alpha", "the work of the cut attempt landed with the resumed one"
    assert project.show("src/beta.txt") == "beta"
    second = history(rt, "slow")[-1]
    assert second.resumed == {"from": kept}, "a command agent has no session: the work is resumed, not the session"
    assert "work so far is already in this folder" in prompt_of(rt, "slow", 2)
    assert not origin_ref(project, WIP_REF), "a landed task's kept work is deleted"


def test_with_resume_off_a_timed_out_attempts_work_is_gone(project: Project, redis_url: str) -> None:
    project.add_tasks({"slow": task_file("Slow", SLOW)})
    rt = timing_out(project, redis_url, resume=False)
    assert pipeline(rt).run("slow", "claude") == "rejected"
    assert not origin_ref(project, WIP_REF) and history(rt, "slow")[-1].wip is None
    assert pipeline(rt).run("slow", "claude") == "landed"
    assert project.show("src/beta.txt") == "beta"
    assert "src/alpha.txt" not in project.git("ls-tree", "-r", "--name-only", "main")
    assert history(rt, "slow")[-1].resumed is None


def test_work_kept_on_a_base_that_conflicts_with_main_is_not_resumed_and_the_prompt_says_so(
    project: Project, redis_url: str
) -> None:
    project.add_tasks({"slow": task_file("Slow", SLOW)})
    rt = timing_out(project, redis_url)
    assert pipeline(rt).run("slow", "claude") == "rejected"
    (project.clone / "src" / "alpha.txt").write_text("from main\n")
    project.add_tasks({}, message="main writes alpha too")
    assert pipeline(rt).run("slow", "claude") == "landed"
    assert project.show("src/alpha.txt") == "from main", "the conflicting kept work was left out"
    resumed = history(rt, "slow")[-1].resumed
    assert resumed is not None and "conflicts with main in src/alpha.txt" in resumed["fresh"]
    assert "could not be carried over" in prompt_of(rt, "slow", 2)


def test_an_attempt_rejected_by_the_oracle_keeps_nothing_and_uses_up_what_it_resumed(
    project: Project, redis_url: str
) -> None:
    script = "@1 write src/alpha.txt alpha\n@1 sleep 60\n@2 write src/alpha.txt BREAK\n@3 write src/beta.txt beta"
    project.add_tasks({"slow": task_file("Slow", script)})
    rt = connect(make_settings(project, redis_url, agent_timeout=2.0, max_attempts=3))
    assert pipeline(rt).run("slow", "claude") == "rejected"
    assert origin_ref(project, WIP_REF)
    assert pipeline(rt).run("slow", "claude") == "rejected"
    assert history(rt, "slow")[-1].reason == "oracle_red" and history(rt, "slow")[-1].wip is None
    assert not origin_ref(project, WIP_REF), "judged work is a normal retry: the next attempt starts from main"
    assert pipeline(rt).run("slow", "claude") == "landed"
    assert "src/alpha.txt" not in project.git("ls-tree", "-r", "--name-only", "main")


def test_another_vendors_attempt_starts_from_main_and_leaves_the_kept_work_alone(
    project: Project, redis_url: str
) -> None:
    project.add_tasks({"slow": task_file("Slow", SLOW)})
    table = vendor_table(sandbox_rw=[project.signals])
    vendors = {"claude": table, "codex": table}
    rt = connect(make_settings(project, redis_url, agent_timeout=2.0, vendors=vendors, max_attempts=3))
    assert pipeline(rt).run("slow", "claude") == "rejected"
    kept = origin_ref(project, WIP_REF)
    project.add_tasks({"slow": task_file("Slow", "@2 sleep 60")}, message="attempt 2 is cut too, with no change")
    assert pipeline(rt).run("slow", "codex") == "rejected"
    assert history(rt, "slow")[-1].resumed is None
    assert origin_ref(project, WIP_REF) == kept, "codex's cut attempt had nothing to keep; claude's work stays"


def test_a_lease_lost_mid_run_keeps_the_work_so_far(project: Project, rt: Runtime, r: redis.Redis) -> None:
    started = project.signals / "started"
    script = f"write src/alpha.txt alpha\nsh touch {started}\nwait-file {project.signals / 'never'} 20"
    project.add_tasks({"late": task_file("Late", script)})
    assert run_losing_its_lease(rt, r, "late", started) == ["rejected"]
    assert history(rt, "late")[-1].reason == "lease_lost"
    kept = wip.find(rt.mirror, "late")
    assert kept is not None and project.show("src/alpha.txt", kept.commit) == "alpha"
    assert not history(rt, "late")[-1].counted, "a lost lease is not the task's fault"


def test_kept_work_never_holds_changes_to_protected_paths(project: Project, redis_url: str) -> None:
    script = "@1 write src/alpha.txt alpha\n@1 write .swarm.toml broken\n@1 sleep 60"
    project.add_tasks({"slow": task_file("Slow", script)})
    rt = timing_out(project, redis_url)
    assert pipeline(rt).run("slow", "claude") == "rejected"
    kept = origin_ref(project, WIP_REF)
    assert project.show("src/alpha.txt", kept) == "alpha"
    assert project.show(".swarm.toml", kept) == project.show(".swarm.toml"), "protected files are put back"


def test_a_stale_attempt_never_overwrites_the_work_a_later_one_kept(project: Project, rt: Runtime) -> None:
    main = rt.mirror.fetch()
    later = wip.keep(rt.mirror, wip.Wip("t", "", main, "claude", "w1", 5, "s-5"), main)
    assert later is not None and origin_ref(project, "refs/swarm/wip/t") == later.commit
    assert wip.keep(rt.mirror, wip.Wip("t", "", main, "claude", "w2", 4, "s-4"), main) is None
    kept = wip.find(rt.mirror, "t")
    assert kept is not None and (kept.fence, kept.session, kept.slot) == (5, "s-5", "w1")
    wip.drop(rt.mirror, "t", fence=4)
    assert origin_ref(project, "refs/swarm/wip/t") == later.commit, "an earlier attempt cannot drop it either"
    wip.drop(rt.mirror, "t")
    assert not origin_ref(project, "refs/swarm/wip/t") and wip.find(rt.mirror, "t") is None


def test_a_session_id_that_is_not_one_is_never_passed_on(project: Project, rt: Runtime) -> None:
    assert wip.session_ok("5b0c1f9e-6a53-4d0e-9a57-1f6e7f3c2d10")
    for bad in ("--dangerously-skip-permissions", "a b", "x\nSwarm-Wip-Slot: other", "", None):
        assert wip.session_ok(bad) is None


def test_the_work_a_killed_worker_left_in_its_workspace_is_kept_by_the_sweep_and_lands_next(
    project: Project, rt: Runtime
) -> None:
    project.add_tasks({"gone": task_file("Gone")})  # no script: the next agent changes nothing itself
    main = rt.mirror.fetch()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = f"{socket.gethostname()}-{child.pid}"  # a worker process killed mid-run (kill -9, cold shutdown)
    lease = rt.leases.acquire_task("gone", 60, worker=dead, vendor="claude")
    assert lease is not None
    spaces = Workspaces(rt.settings, rt.mirror, dead, "slot-0")
    att = spaces.new_attempt("gone", "claude", lease, threading.Event())
    assert att.disk is not None
    att.disk.stop()  # the worker is dead: nothing of its attempt runs on
    folder = spaces.workspace(att, main)
    (folder / "src" / "alpha.txt").write_text("alpha\n")
    reaper.sweep_host(rt.settings, rt.mirror)
    assert not folder.exists()
    kept = origin_ref(project, "refs/swarm/wip/gone")
    assert kept and project.show("src/alpha.txt", kept) == "alpha"
    rt.leases.release(lease)
    assert pipeline(rt).run("gone", "claude") == "landed"
    assert project.show("src/alpha.txt") == "alpha" and not origin_ref(project, "refs/swarm/wip/gone")
