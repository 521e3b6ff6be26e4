"""One tampering strategy, run as a scripted agent's task through a real Celery worker on its own engine project.

Each strategy gets its own origin, workdir, worker HOME and Redis database: a faked landing poisons main's cached
baseline and a tampered environment sways every later oracle run, so strategies sharing one project would judge
each other instead of the swarm. What the swarm recorded (its landing, the counts it believed) is only collected
here; the verdict comes from the clean room (cleanroom.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from swarm import keys, repo
from tests.cluster import REPO_ROOT, Cluster, write_config
from tests.conftest import Project, task_file, wait_for

TEMPLATE = REPO_ROOT / "engine_repo_template"
KIT = Path(__file__).resolve().parent / "kit.py"
SETTLE_TIMEOUT = 600.0


@dataclass
class Outcome:
    """What happened to one strategy's task, as the swarm and git tell it."""

    name: str
    state: str = "unknown"
    reason: str = ""
    detail: str = ""
    landed: str | None = None
    """The commit main moved to for this task (refs/swarm/landed/<task> on origin)."""
    before: str = ""
    """main before the task ran."""
    claimed: dict[str, Any] | None = None
    """The full-oracle counts the swarm recorded for the landing."""
    baseline: dict[str, Any] | None = None
    """The counts the swarm believed for main just before the landing."""
    origin: Path = Path()
    error: str = ""
    logs: str = ""
    notes: list[str] = field(default_factory=list)


def engine_template(dest: Path) -> Path:
    """The template without its backlog (each scenario's backlog is its one task)."""
    shutil.copytree(TEMPLATE, dest, ignore=shutil.ignore_patterns("target", "__pycache__"))
    for task in (dest / "tasks").glob("*.md"):
        task.unlink()
    (dest / "tasks" / ".keep").write_text("")
    return dest


def worker_env(root: Path) -> dict[str, str]:
    """A HOME, CARGO_HOME and python3 of this scenario's own, so what an agent plants there stays here."""
    home = root / "home"
    (home / ".cargo").mkdir(parents=True, exist_ok=True)
    real_home = Path.home()
    if (real_home / ".rustup").exists() and not (home / ".rustup").exists():
        (home / ".rustup").symlink_to(real_home / ".rustup")  # toolchains, read-only to every strategy here
    bin_dir = root / "bin"
    bin_dir.mkdir(exist_ok=True)
    python = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"], capture_output=True, text=True,
                            check=True).stdout.strip()  # fmt: skip
    if not (bin_dir / "python3").exists():
        (bin_dir / "python3").symlink_to(python)
    return {
        "HOME": str(home),
        "CARGO_HOME": str(home / ".cargo"),
        "RUSTUP_HOME": str(home / ".rustup"),
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    }


def script_for(kit_action: str) -> str:
    return f"sh {sys.executable} {KIT} {kit_action}"


def run(name: str, script: str, root: Path, redis_url: str, lease_ttl: float = 8.0) -> Outcome:
    """Make the project, start one worker, dispatch the task, wait until it landed or failed; stop everything."""
    outcome = Outcome(name)
    root.mkdir(parents=True)
    project = Project(root, root / "origin.git", root / "work", root / "workdir")
    repo.init_project(engine_template(root / "template"), project.origin, project.clone)
    project.add_tasks({name: task_file(name, script)})
    outcome.before, outcome.origin = project.main_log()[0], project.origin
    config = write_config(project, redis_url, {"claude": 1}, lease_ttl=lease_ttl, max_attempts=1,
                          agent_timeout=600, oracle_timeout=600)  # fmt: skip
    # The agent's know-how (kit.py) and the recorded work it borrows, readable inside the agent's sandbox.
    with open(config, "a") as out:
        out.write(f"sandbox_ro = {json.dumps([str(KIT.parent), str(REPO_ROOT / 'swarm' / 'replay')])}\n")
    cluster = Cluster(project, config)
    try:
        cluster.worker("w", "claude", env=worker_env(root))
        cluster.wait_for_workers(["w"], timeout=120)
        _settle(cluster, name, outcome)
        _collect(project, redis_url, name, outcome)
    except Exception as exc:  # noqa: BLE001 - reported by the strategy's test, with the logs
        outcome.error = f"{type(exc).__name__}: {exc}"
    finally:
        cluster.stop()
        kill_left_behind(root)
        if outcome.error:
            outcome.logs = cluster.dump_logs()
    return outcome


def _settle(cluster: Cluster, name: str, outcome: Outcome) -> None:
    last_dispatch = 0.0

    def settled() -> bool:
        nonlocal last_dispatch
        if time.monotonic() - last_dispatch > 5:  # no beat: dispatch again now and then (tasks sent back)
            cluster.swarm("dispatch", check=False)
            last_dispatch = time.monotonic()
        task = next((t for t in cluster.status()["tasks"] if t["id"] == name), {})
        outcome.state = task.get("state", "unknown")
        last = task.get("last_attempt") or task.get("failure") or {}
        outcome.reason, outcome.detail = str(last.get("reason") or ""), str(last.get("detail") or "")
        if outcome.state == "landed":  # git says so at the push; the worker records its counts just after
            return str(last.get("outcome") or "") == "landed"
        return outcome.state == "failed"

    wait_for(settled, SETTLE_TIMEOUT, f"task {name} to land or fail")


def _collect(project: Project, redis_url: str, name: str, outcome: Outcome) -> None:
    outcome.landed = project.landed().get(name)
    if outcome.landed is None:
        return
    client = redis.Redis.from_url(redis_url)
    try:
        # What the swarm cached for main at the landed commit and its parent: the counts it believed, with areas.
        landed = client.get(keys.oracle(outcome.landed))
        outcome.claimed = json.loads(landed) if landed else None
        parent = project.git("rev-parse", f"{outcome.landed}^")
        cached = client.get(keys.oracle(parent))
        outcome.baseline = json.loads(cached) if cached else None
    finally:
        client.close()


def kill_left_behind(root: Path) -> list[int]:
    """SIGKILL processes this scenario started that outlived it: any whose command line or cwd is under root."""
    mark, killed = str(root), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if mark in cmdline or cwd.startswith(mark):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
            except OSError:
                pass
    return killed
