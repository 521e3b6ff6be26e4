"""The test suite's own promise: a test that times out leaves no process behind, escaped or not."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from swarm import proc
from tests.cluster import REPO_ROOT
from tests.conftest import wait_for

INNER = """
import subprocess
import time
from pathlib import Path

import pytest


@pytest.mark.timeout(3)
def test_hangs_after_starting_processes(tmp_path: Path) -> None:
    out = Path({pids!r})
    child = subprocess.Popen(["sleep", "300"], start_new_session=True)
    # A process that left its group and its parent (setsid, then the parent exits): an orphan, as agents become.
    subprocess.run(["bash", "-c", "setsid sleep 300 & echo $! > {escaped}"], check=True)
    out.write_text(str(child.pid))
    time.sleep(60)
"""


def test_a_test_that_times_out_leaves_no_process_behind(tmp_path: Path) -> None:
    pids, escaped = tmp_path / "child.pid", tmp_path / "escaped.pid"
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER.format(pids=str(pids), escaped=str(escaped))))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-q",
         str(tmp_path / "test_inner.py"), "--rootdir", str(tmp_path), "--basetemp", str(tmp_path / "inner-tmp")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1 and "Timeout" in result.stdout, result.stdout + result.stderr
    started = [int(pids.read_text()), int(escaped.read_text())]
    for pid in started:
        wait_for(lambda pid=pid: not proc.alive(pid), 10, f"process {pid} of the timed-out test to be gone")  # type: ignore[misc]
