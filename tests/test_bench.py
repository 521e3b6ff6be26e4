"""The benchmark script runs every section at tiny sizes and prints its figures (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from swarm.embedded import find_redis_server

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench.py"


@pytest.mark.skipif(find_redis_server() is None, reason="no redis-server available")
@pytest.mark.timeout(900)  # five sections, each starting Redis and sandboxed oracles: minutes on a loaded machine
def test_quick_bench_prints_every_section() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=850, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    for side in ("lock-file", "swarm"):
        for slots in (1, 2):
            assert sum(ln.startswith(side) and f"slots={slots} " in ln for ln in lines) == 2, (side, slots, out.stdout)
    swarm = [ln for ln in lines if ln.startswith("swarm ")]
    assert all("coordination_commits=0 " in ln and "tasks=3/3" in ln for ln in swarm), out.stdout
    lock = [ln for ln in lines if ln.startswith("lock-file")]
    assert all("coordination_commits=6 " in ln for ln in lock), "a claim and a release commit per task"
    assert any(ln.startswith("files=200 ") and "git processes/attempt=" in ln for ln in lines), out.stdout
    assert any(ln.startswith("pickup ") and "median" in ln for ln in lines), out.stdout
    assert any(ln.startswith("lock ") and "tasks=3/3" in ln for ln in lines), out.stdout
    assert any(ln.startswith("train(2) ") and "tasks=3/3" in ln for ln in lines), out.stdout
    for mode in ("speculate ", "batch "):
        assert any(ln.startswith(mode) and "tasks=3/3" in ln and "full oracle runs=" in ln for ln in lines), out.stdout
    for side in ("held ", "given back "):
        assert any(ln.startswith(side) and "tasks/min=" in ln for ln in lines), out.stdout
    for flow in ("worktrees", "folders"):
        assert any(ln.startswith(flow) and "files=200 " in ln for ln in lines), out.stdout
