"""Scenarios aimed at one safeguard each, where the others cannot mask its absence.

scripts/check_safeguards.py removes each safeguard in a copy of the code and shows these fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from swarm.runtime import connect
from tests.cluster import REPO_ROOT
from tests.conftest import Project, make_settings, task_file, wait_for
from tests.test_pipeline import pipeline

RUN_ATTEMPT = """
import sys
from swarm.runtime import connect
from tests.conftest import Project, make_settings
from tests.test_pipeline import pipeline
from pathlib import Path
root = Path(sys.argv[1])
project = Project(root, root / "origin.git", root / "work", root / "workdir")
# Unsandboxed on purpose: the fault is injected by the oracle, which stops this very worker (STOP_AFTER_FULL);
# a sandboxed oracle can neither see nor signal it.
rt = connect(make_settings(project, sys.argv[2], lease_ttl=2.0, unsafe_no_sandbox=True))
print(pipeline(rt, "stalled").run("task", "claude"), flush=True)
"""


def trailer(project: Project, name: str) -> str:
    body = project.git("log", "-1", "--format=%B", project.landed()["task"])
    return next(line.split(": ", 1)[1] for line in body.splitlines() if line.startswith(f"{name}: "))


def test_a_worker_stalled_after_its_full_oracle_cannot_land_once_its_lease_is_gone(
    project: Project, redis_url: str
) -> None:
    """Only the lease check stands between a stalled, passing attempt and the push: main has not moved and the
    task has not landed, so the compare-and-swap and the landed ref would both let it through."""
    stop_file, gate = project.root / "stop.pid", project.signals / "gate"
    toml = (project.clone / ".swarm.toml").read_text()
    toml = toml.replace('env = { ORACLE_RUNS = "{cache}/runs.log" }',
                        f'env = {{ ORACLE_RUNS = "{{cache}}/runs.log", STOP_AFTER_FULL = "{stop_file}" }}')  # fmt: skip
    (project.clone / ".swarm.toml").write_text(toml)
    project.add_tasks({"task": task_file("Task", f"@2 wait-file {gate} 60\nwrite src/alpha.txt alpha")})
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    stalled = subprocess.Popen([sys.executable, "-c", RUN_ATTEMPT, str(project.root), redis_url], env=env,
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    stop_file.write_text(str(stalled.pid))
    rt = connect(make_settings(project, redis_url, lease_ttl=2.0))
    try:
        wait_for(lambda: Path(f"/proc/{stalled.pid}/stat").read_text().split(")")[1].split()[0] == "T", 60, "the stall")
        stop_file.unlink()
        wait_for(lambda: "task" not in rt.leases.holders(), 10, "the stalled attempt's lease to expire")
        second: list[str] = []
        other = threading.Thread(target=lambda: second.append(pipeline(rt, "fresh").run("task", "codex")))
        other.start()
        wait_for(lambda: "task" in rt.leases.holders(), 10, "a second attempt to lease the task")
        os.kill(stalled.pid, signal.SIGCONT)
        first = stalled.communicate(timeout=60)[0].strip()
        gate.touch()
        other.join(timeout=60)
    finally:
        if stalled.poll() is None:
            os.kill(stalled.pid, signal.SIGCONT)
            stalled.kill()
    assert first == "rejected", "the stalled attempt landed after losing its lease"
    assert second == ["landed"]
    assert trailer(project, "Swarm-Agent") == "codex", "what landed is the fresh attempt's work"
    stalled_runs = [h for h in rt.book.history("task") if h.worker == "stalled"]
    assert stalled_runs and all(h.outcome != "landed" for h in stalled_runs)


def test_an_attempt_longer_than_the_lease_ttl_keeps_its_lease_and_lands(project: Project, redis_url: str) -> None:
    """The heartbeat renews the lease every ttl/3: an agent working for three TTLs still owns its task."""
    project.add_tasks({"long": task_file("Long", "sleep 3\nwrite src/alpha.txt alpha")})
    rt = connect(make_settings(project, redis_url, lease_ttl=1.0))
    assert pipeline(rt).run("long", "claude") == "landed"
    assert rt.book.history("long")[-1].outcome == "landed"
