"""The reaper on this host: what dead worker processes leave behind is swept away."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from swarm import identity, proc, reaper
from swarm.runtime import Runtime, worker_id
from tests.conftest import Project


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_sweep_takes_away_what_dead_workers_left_and_spares_live_ones(project: Project, rt: Runtime) -> None:
    host, main = socket.gethostname(), rt.mirror.fetch()
    dead = f"{host}-{dead_pid()}"
    marked = {**os.environ, **identity.marker(rt.settings)}
    orphan = subprocess.Popen(["sleep", "60"], env={**marked, "SWARM_WORKER": dead})
    ours = subprocess.Popen(["sleep", "60"], env={**marked, "SWARM_WORKER": worker_id()})
    left = rt.mirror.add_worktree(rt.workdir / "worktrees" / f"alpha-{dead}-abc123", main)
    kept = rt.mirror.add_worktree(rt.workdir / "worktrees" / f"beta-{worker_id()}-def456", main)
    try:
        swept = reaper.sweep_host(rt.settings, rt.mirror)
        orphan.wait(timeout=10)
        assert swept == {"processes": 1, "worktrees": 1}
        assert orphan.returncode == -9 and ours.poll() is None
        assert not left.path.exists() and kept.path.exists()
    finally:
        ours.kill()
        orphan.kill()


def test_alive_tells_a_running_process_from_a_finished_one() -> None:
    assert proc.alive(os.getpid())
    assert not proc.alive(dead_pid())
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while proc.alive(zombie.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not proc.alive(zombie.pid), "a zombie is not alive"
    zombie.wait()
