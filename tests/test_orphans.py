"""No agent outlives its attempt, and a swarm's sweep never touches another swarm's processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm import identity, proc, reaper
from swarm.runtime import connect
from tests.cluster import Cluster, write_config
from tests.conftest import Project, make_settings, task_file, wait_for

LAUNCHER = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from swarm import proc
    marker, log, die = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "1"
    if sys.argv[4] == "0":
        proc.SETPRIV = None  # a machine without util-linux's setpriv: the pre-exec function arms the signal
    proc.run(["sleep", "300"], cwd=Path("."), env={"PATH": "/usr/bin:/bin", "MARK": marker}, timeout=600,
             log_path=log, die_with_parent=die)
    """
)


@pytest.fixture
def spawned() -> Iterator[list[str]]:
    markers: list[str] = []
    yield markers
    for marker in markers:
        proc.kill_marked(marker)


def _launch(tmp_path: Path, marker: str, die: bool, setpriv: bool = True) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    args = [sys.executable, "-c", LAUNCHER, marker, str(tmp_path / f"{marker}.log"), "1" if die else "0",
            "1" if setpriv else "0"]  # fmt: skip
    launcher = subprocess.Popen(args, env=env)
    wait_for(lambda: proc.marked(f"MARK={marker}"), 20, "the child to start")
    return launcher


@pytest.mark.parametrize("setpriv", [True, False])
def test_a_child_dies_with_the_process_that_started_it(tmp_path: Path, spawned: list[str], setpriv: bool) -> None:
    """Armed by setpriv, which executes the program (no Python runs in the child), or by a pre-exec function."""
    if setpriv and proc.SETPRIV is None:
        pytest.skip("util-linux's setpriv is not installed")
    marker = f"pdeath-on-{setpriv}"
    spawned.append(marker)
    launcher = _launch(tmp_path, marker, die=True, setpriv=setpriv)
    os.kill(launcher.pid, signal.SIGKILL)
    launcher.wait()
    wait_for(lambda: not proc.marked(f"MARK={marker}"), 10, "the child to die with its parent")


def test_without_the_death_signal_the_child_would_outlive_its_parent(tmp_path: Path, spawned: list[str]) -> None:
    spawned.append("pdeath-off")
    launcher = _launch(tmp_path, "pdeath-off", die=False)
    os.kill(launcher.pid, signal.SIGKILL)
    launcher.wait()
    assert proc.marked("MARK=pdeath-off"), "the control case: an orphan lives on under init"


@pytest.mark.e2e
def test_sigkill_of_a_worker_main_process_kills_its_running_agent(project: Project, redis_url: str) -> None:
    started = project.signals / "started"
    project.add_tasks({"victim": task_file("Victim", f"@1 sh touch {started}\n@1 sleep 300\nwrite src/v.txt v")})
    cluster = Cluster(project, write_config(project, redis_url, {"claude": 1}))
    try:
        worker = cluster.worker("only", "claude")  # one worker, no beat: no reaper or sweep can be what kills it
        cluster.wait_for_workers(["only"])
        cluster.swarm("dispatch")
        wait_for(started.exists, 60, "the agent to start")
        assert proc.marked("SWARM_TASK_ID=victim")
        os.kill(worker.pid, signal.SIGKILL)
        wait_for(lambda: not proc.marked("SWARM_TASK_ID=victim"), 15, "the agent to die with its worker")
    finally:
        cluster.stop()
        proc.kill_marked("SWARM_TASK_ID=victim")


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_sweep_kills_only_this_swarms_orphans(project: Project, redis_url: str, tmp_path: Path) -> None:
    mine = connect(make_settings(project, redis_url))
    other = connect(make_settings(project, redis_url, workdir=tmp_path / "other-workdir"))
    assert identity.swarm_id(mine.settings) != identity.swarm_id(other.settings)
    owner = f"{socket.gethostname()}-{_dead_pid()}"
    orphans = {}
    for name, rt in (("mine", mine), ("other", other)):
        env = {
            "PATH": os.environ["PATH"],
            "SWARM_WORKER": owner,
            "MARK": f"orphan-{name}",
            **identity.marker(rt.settings),
        }
        orphans[name] = subprocess.Popen(["sleep", "300"], env=env, start_new_session=True)
    try:
        assert reaper.sweep_host(mine.settings, mine.mirror)["processes"] == 1
        wait_for(lambda: orphans["mine"].poll() is not None, 10, "this swarm's orphan to be killed")
        assert orphans["other"].poll() is None, "the other swarm's process on the same host is left alone"
        assert reaper.sweep_host(other.settings, other.mirror)["processes"] == 1
        wait_for(lambda: orphans["other"].poll() is not None, 10, "the other swarm's own sweep to kill it")
    finally:
        for p in orphans.values():
            p.kill()
            p.wait()
