"""Steering a swarm from the command line: add, cancel, pause/resume, logs, events, --version; real Redis and git."""

from __future__ import annotations

import re
import subprocess
import sys
import threading

import pytest
import redis

from swarm import dispatch, proc
from swarm.backlog import parse_task
from swarm.runtime import Runtime, connect
from tests.cluster import Cluster, write_config
from tests.conftest import Project, announce_slots, make_settings, task_file, vendor_table, wait_for
from tests.test_exporter import claude_table, run, write_toml


@pytest.fixture
def cli(project: Project, redis_url: str) -> Cluster:
    """The `swarm` command in the project folder, with its swarm.toml (no processes started)."""
    return Cluster(project, write_config(project, redis_url, {"claude": 1, "codex": 1}))


@pytest.fixture
def rt(project: Project, redis_url: str) -> Runtime:
    settings = make_settings(project, redis_url)
    runtime = connect(settings)
    announce_slots(redis.Redis.from_url(redis_url), settings)  # live worker slots, as running workers announce them
    return runtime


def test_add_lands_a_task_file_that_audit_accepts_and_the_swarm_runs(
    project: Project, cli: Cluster, rt: Runtime
) -> None:
    project.add_tasks({"alpha": task_file("Alpha", "write src/alpha.txt alpha")})
    before = project.main_log()[0]
    out = cli.swarm("add", "gamma", "--title", "Write gamma: the third", "--body", "Write src/gamma.txt.",
                    "--depends-on", "alpha", "--vendor", "codex", "--priority", "3")  # fmt: skip
    assert "added gamma" in out.stdout
    head = project.main_log()[0]
    assert project.git("rev-parse", f"{head}^") == before, "one commit on top of main"
    assert project.git("show", "--name-only", "--format=", head).splitlines() == ["tasks/gamma.md"]
    task = parse_task("tasks/gamma.md", project.show("tasks/gamma.md").encode())
    assert (task.title, task.depends_on, task.vendor, task.priority) == (
        "Write gamma: the third",
        ("alpha",),
        "codex",
        3,
    )
    assert "Write src/gamma.txt." in task.body
    states = {t["id"]: t["state"] for t in cli.status()["tasks"]}
    assert states["gamma"] == "blocked", "waits for alpha, as its file says"
    assert run(rt, "alpha", "claude") == "landed"
    queued: list[tuple[str, str]] = []
    dispatch.dispatch(rt, lambda t, v: queued.append((t, v)))
    assert queued == [("gamma", "codex")]

    audit = cli.swarm("audit", check=False)
    assert audit.returncode == 0 and "all promises kept" in audit.stdout, audit.stdout + audit.stderr

    for args, error in [
        (["gamma", "--title", "again"], "already exists"),
        (["delta", "--title", "D", "--depends-on", "nope"], "no task nope"),
        (["delta", "--title", "D", "--vendor", "openai"], "--vendor openai"),
        (["bad/id", "--title", "D"], "task id 'bad/id'"),
    ]:
        bad = cli.swarm("add", *args, check=False)
        assert bad.returncode == 2 and error in bad.stderr, bad.stderr
    assert "delta" not in project.git("ls-tree", "-r", "--name-only", "main", "tasks/"), "a refused add lands nothing"


def start_attempt(rt: Runtime, task_id: str, vendor: str = "claude") -> tuple[threading.Thread, list[str]]:
    outcome: list[str] = []
    thread = threading.Thread(target=lambda: outcome.append(run(rt, task_id, vendor)), daemon=True)
    thread.start()
    return thread, outcome


def test_cancel_stops_the_running_agent_without_using_its_budget_and_holds_the_task(
    project: Project, cli: Cluster, rt: Runtime
) -> None:
    started, go = project.signals / "started", project.signals / "go"
    project.add_tasks({"slow": task_file("Slow", f"sh touch {started}\nwait-file {go} 300\nwrite src/alpha.txt alpha")})
    thread, outcome = start_attempt(rt, "slow")
    wait_for(started.exists, 60, "the agent to start")
    assert proc.marked("SWARM_TASK_ID=slow"), "the agent runs"

    out = cli.swarm("cancel", "slow")
    assert "attempt stopped" in out.stdout
    thread.join(60)
    assert outcome == ["rejected"]
    wait_for(lambda: not proc.marked("SWARM_TASK_ID=slow"), 10, "the agent to be gone")
    assert rt.book.history("slow")[-1].reason == "cancelled"
    assert rt.book.budget("slow").used == 0, "a cancelled attempt does not use up the budget"
    row = next(t for t in cli.status()["tasks"] if t["id"] == "slow")
    assert row["state"] == "failed" and row["failure"]["reason"] == "cancelled"
    assert run(rt, "slow", "claude") == "done", "a held task starts no attempt"

    cli.swarm("retry", "slow")
    go.touch()
    assert run(rt, "slow", "claude") == "landed"
    landed = cli.swarm("cancel", "slow", check=False)
    assert landed.returncode == 2 and "already landed" in landed.stderr
    unknown = cli.swarm("cancel", "nope", check=False)
    assert unknown.returncode == 2 and "no task 'nope'" in unknown.stderr


def test_pause_stops_new_attempts_on_a_vendor_until_resume(project: Project, cli: Cluster, rt: Runtime) -> None:
    project.add_tasks({"alpha": task_file("Alpha", "write src/alpha.txt alpha", vendor="codex")})
    assert "paused: codex" in cli.swarm("pause", "codex").stdout
    assert cli.status()["vendors"]["codex"]["state"] == "paused"
    assert cli.status()["vendors"]["claude"]["state"] == "active"
    queued: list[tuple[str, str]] = []
    dispatch.dispatch(rt, lambda t, v: queued.append((t, v)))
    assert queued == [], "nothing is queued on a paused vendor"
    assert run(rt, "alpha", "codex") == "cooling", "a message already queued gives its task back"
    assert "resumed: claude, codex" in cli.swarm("resume").stdout
    assert cli.status()["vendors"]["codex"]["state"] == "active"
    dispatch.dispatch(rt, lambda t, v: queued.append((t, v)))
    assert queued == [("alpha", "codex")]
    assert "paused: claude, codex" in cli.swarm("pause").stdout
    bad = cli.swarm("pause", "openai", check=False)
    assert bad.returncode == 2 and "no vendor 'openai'" in bad.stderr


def follows_now(rt: Runtime, events: subprocess.Popen[str]) -> None:
    """Wait until `swarm events -f` prints what is emitted: probe events until the first one shows."""
    shown = threading.Event()

    def probe() -> None:
        while not shown.wait(0.5):
            rt.events.emit("probe", "probe")

    threading.Thread(target=probe, daemon=True).start()
    assert events.stdout is not None and " probe " in events.stdout.readline()
    shown.set()


def test_logs_print_and_follow_an_attempt_and_events_follow_the_stream(
    project: Project, cli: Cluster, rt: Runtime
) -> None:
    go = project.signals / "go"
    project.add_tasks({"alpha": task_file("Alpha", f"sh echo step-one-done\nwait-file {go} 300\n"
                                          "write src/alpha.txt alpha\nsay all written")})  # fmt: skip
    no_attempt = cli.swarm("logs", "alpha", check=False)
    assert no_attempt.returncode == 2 and "no attempt yet" in no_attempt.stderr
    events = subprocess.Popen([sys.executable, "-m", "swarm", "events", "-f", "-n", "0"], cwd=project.root,
                              env=cli.env(), stdout=subprocess.PIPE, text=True)  # fmt: skip
    follows_now(rt, events)
    thread, outcome = start_attempt(rt, "alpha")
    wait_for(lambda: rt.book.entry("alpha") is not None, 60, "the attempt to start")
    follow = subprocess.Popen([sys.executable, "-m", "swarm", "logs", "alpha", "-f"], cwd=project.root,
                              env=cli.env(), stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert follow.stdout is not None
        assert "step-one-done" in follow.stdout.readline(), "the running agent's output, as it comes"
        go.touch()
        rest, _ = follow.communicate(timeout=120)  # ends by itself when the attempt ends
        assert "all written" in rest and follow.returncode == 0
    finally:
        follow.kill()
    thread.join(60)
    assert outcome == ["landed"]
    assert "all written" in cli.swarm("logs", "alpha").stdout
    oracle_log = cli.swarm("logs", "alpha", "--file", "nope.log", check=False)
    assert oracle_log.returncode == 2 and "agent.log" in oracle_log.stderr

    recent = cli.swarm("events", "-n", "50").stdout
    assert "alpha" in recent and "landed" in recent and "agent_running" in recent
    events.terminate()
    streamed, _ = events.communicate(timeout=30)
    for state in ("leased", "agent_running", "full_oracle", "landed"):
        assert f" {state} " in streamed, streamed

    unknown = cli.swarm("logs", "nope", check=False)
    assert unknown.returncode == 2 and "no task 'nope'" in unknown.stderr
    assert cli.swarm("--version").stdout.strip() == "swarm, version 0.1.0"


def test_history_shows_duration_cost_commit_oracle_delta_and_the_failing_tail(
    project: Project, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-anthropic-0123456789")
    cli = Cluster(project, write_toml(project, redis_url))
    rt = connect(make_settings(project, redis_url, vendors={"claude": claude_table(), "codex": vendor_table()}))
    project.add_tasks({"alpha": task_file("Alpha", "@1 write src/alpha.txt BREAK\n@2 write src/alpha.txt alpha\n"
                                          "@2 stream success")})  # fmt: skip
    assert run(rt, "alpha", "codex") == "rejected"
    assert run(rt, "alpha", "claude") == "landed"
    out = cli.swarm("history", "alpha").stdout
    first, second = out.split("#2 ", 1)
    assert "rejected oracle_red" in first and re.search(r"took \d+s", first)
    assert "full oracle: 1 passed, 2 failed (+0 vs main)" in first
    assert '   | {"passed": 1, "failed": 2' in first, "the tail of the failing oracle output"
    assert "landed" in second and re.search(r"took \d+s; \$0\.\d+ \d+/\d+ tok; full oracle: 2 passed, 1 failed "
                                            r"\(\+1 vs main\); commit [0-9a-f]{12}", second), second  # fmt: skip
    unknown = cli.swarm("history", "nope", check=False)
    assert unknown.returncode == 2 and "no task 'nope'" in unknown.stderr
    assert cli.swarm("history", "alpha", "--json").stdout.startswith("[")
