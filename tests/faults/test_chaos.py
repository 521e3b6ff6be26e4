"""A short chaos soak (scripts/chaos.py): 16 tasks on three workers under 30 s of random faults. The long soak is the
script itself: `.venv/bin/python scripts/chaos.py` (300 s of faults, 32 tasks; `--hosts` on network namespaces)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swarm.embedded import find_redis_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]  # 30 s of faults, then the swarm settles
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "chaos.py"


def test_a_short_chaos_soak_loses_nothing_lands_nothing_twice_and_leaves_nothing_behind() -> None:
    if find_redis_server() is None:
        pytest.skip("no redis-server")
    seed = os.environ.get("CHAOS_SEED", "")
    argv = [sys.executable, str(SCRIPT), "--duration", "30", "--every", "1.5", "4", "--tasks", "16", "--workers", "3",
            "--settle", "300"]  # fmt: skip
    run = subprocess.run(argv + (["--seed", seed] if seed else []), capture_output=True, text=True, timeout=900)
    print(run.stdout[-6000:], run.stderr[-3000:])
    line = next(ln for ln in reversed(run.stdout.splitlines()) if ln.startswith("chaos figures: "))
    figures = json.loads(line.removeprefix("chaos figures: "))
    assert figures["faults"] >= 5, figures
    assert figures["tasks_lost"] == [] and figures["landed_twice"] == [] and figures["red_commits"] == 0, figures
    assert figures["broken_landed"] == [] and figures["over_budget"] == [] and figures["audit_ok"], figures
    assert figures["leftover_processes"] == [] and figures["leftover_leases"] == [], figures
    assert figures["leftover_worktrees"] == [] and figures["workers_died"] == [], figures
    assert run.returncode == 0, figures
