"""The live view: stage, elapsed time and vendor per task, filters, 80 columns, redrawn in place."""

from __future__ import annotations

import io
import re
import signal
import subprocess
import sys
import threading
import time

from rich.console import Console

from swarm import watch
from swarm.runtime import Runtime
from tests.cluster import Cluster, write_config
from tests.conftest import Project, task_file, wait_for
from tests.test_exporter import run


def render(rt: Runtime, states: set[str] | None = None, vendor: str | None = None, height: int = 40) -> list[str]:
    console = Console(width=80, height=height, file=io.StringIO(), color_system=None, record=True)
    rep = watch.report(rt)
    console.print(watch.view(rep, watch.select(rep["rows"], states, vendor), height))
    return console.export_text().rstrip("\n").splitlines()


def line_of(lines: list[str], task: str) -> str:
    return next(ln for ln in lines if ln.startswith(task + " "))


def test_rows_show_stage_elapsed_and_vendor_within_80_columns(project: Project, rt: Runtime) -> None:
    started, go = project.signals / "started", project.signals / "go"
    project.add_tasks({
        "slow": task_file("Slow", f"sh touch {started}\nwait-file {go} 300\nwrite src/alpha.txt alpha", priority=9),
        "done-by-codex": task_file("Beta", "write src/beta.txt beta"),
        "a-task-with-a-very-long-identifier": task_file("Long", "write src/x.txt x", depends_on=["slow"]),
    })  # fmt: skip
    (project.clone / "tasks" / "broken.md").write_text("no front matter at all\n" * 3)
    project.commit_all("An invalid task file")
    assert run(rt, "done-by-codex", "codex") == "landed"
    outcome: list[str] = []
    thread = threading.Thread(target=lambda: outcome.append(run(rt, "slow", "claude")), daemon=True)
    thread.start()
    try:
        wait_for(started.exists, 60, "the slow agent to start")
        wait_for(lambda: "agent_running" in line_of(render(rt), "slow"), 30, "the stage to show")
        lines = render(rt)
        assert all(len(ln) <= 80 for ln in lines), "\n".join(ln for ln in lines if len(ln) > 80)
        slow = line_of(lines, "slow")
        assert re.search(r"slow\s+leased\s+agent_running\s+claude\s+1\s+\d+s\s+lease \d+s", slow), slow
        assert re.search(r"done-by-codex\s+landed\s+codex\s+1\s+as [0-9a-f]{10}", line_of(lines, "done-by-codex"))
        long_row = next(ln for ln in lines if ln.startswith("a-task-with-a-v"))
        assert "blocked" in long_row and "waits for slow" in long_row
        assert any("invalid" in ln and "broken.md" in ln for ln in lines)
        assert any(re.match(r"\d\d:\d\d:\d\d slow agent_running claude", ln) for ln in lines), "latest events"

        only_landed = render(rt, states={"landed"})
        assert [ln.split()[0] for ln in only_landed[2:] if ln.split()[1:2] == ["landed"]] == ["done-by-codex"]
        assert not any(ln.startswith("slow ") for ln in only_landed)
        by_claude = render(rt, vendor="claude")
        assert any(ln.startswith("slow ") for ln in by_claude)
        assert not any(ln.startswith("done-by-codex ") for ln in by_claude)
        short = render(rt, height=14)
        assert len(short) <= 14 and any("more tasks" in ln for ln in short), "the view fits the terminal's height"
    finally:
        go.touch()
        thread.join(120)
    assert outcome == ["landed"]


def test_status_filters_and_watch_redraws_until_ctrl_c(project: Project, redis_url: str) -> None:
    cli = Cluster(project, write_config(project, redis_url, {"claude": 1, "codex": 1}))
    project.add_tasks({"alpha": task_file("Alpha", "x"), "beta": task_file("Beta", "x", depends_on=["alpha"])})
    (project.clone / "tasks" / "broken.md").write_text("not a task\n")
    project.commit_all("An invalid task file")
    out = cli.swarm("status", "--state", "blocked").stdout
    ids = [cells[1].strip() for ln in out.splitlines() if len(cells := ln.split("│")) > 2]
    assert "beta" in ids and "alpha" not in ids, out
    bad = cli.swarm("status", "--state", "sleeping", check=False)
    assert bad.returncode == 2 and "--state sleeping" in bad.stderr

    env = {**cli.env(), "COLUMNS": "80", "LINES": "30"}
    out_file, err_file = project.root / "watch.out", project.root / "watch.err"
    with out_file.open("w") as out, err_file.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "swarm", "status", "--watch"], cwd=project.root, env=env,
                                stdout=out, stderr=err)  # fmt: skip
    try:
        wait_for(lambda: "skipping task file" in out_file.read_text() or proc.poll() is not None, 60, "a first round")
        time.sleep(3)  # a few more rounds, each of which logs the warning again; none must print it again
        assert proc.poll() is None, err_file.read_text()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out_file.read_text()
    assert proc.returncode == 0, err_file.read_text()
    assert re.search(r"alpha\s+ready", text) and re.search(r"beta\s+blocked", text)
    assert "skipping task file" not in err_file.read_text(), "warnings go through the view's console"
    assert text.count("skipping task file") == 1, "a warning is shown once, not at every redraw"
    assert all(len(ln) <= 80 for ln in text.splitlines())
