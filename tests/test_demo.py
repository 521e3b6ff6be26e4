"""`swarm demo`, the README's first command, end to end: replay agents on three queues build the engine."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from swarm import proc
from tests.cluster import REPO_ROOT

# The run itself may take up to 900 s (its subprocess timeout): pytest's 300 s default would cut it.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(960)]


def test_the_demo_lands_the_recorded_tasks_rejects_a_wrong_attempt_and_raises_the_count(tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "swarm", "demo", "--dir", str(demo_dir), "--timeout", "600"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    summary = out.split("swarm demo: summary", 1)[1]
    landed, total = map(int, re.search(r"tasks landed: (\d+) of (\d+)", summary).groups())  # type: ignore[union-attr]
    assert landed == total >= 6
    assert int(re.search(r"attempts rejected: (\d+)", summary).group(1)) >= 1  # type: ignore[union-attr]
    assert "lexer-complete (" in summary and "oracle_red" in summary, "the wrong first attempt is rejected"
    assert "coordination commits: 0" in summary
    rebased = int(re.search(r"landed after a rebase onto a moved main: (\d+)", summary).group(1))  # type: ignore[union-attr]
    assert rebased >= 1, "three vendors start in parallel: a later landing must rebase onto a moved main"
    before, after = map(int, re.search(r"before (\d+) passing.*after (\d+) passing", summary).groups())  # type: ignore[union-attr]
    assert after > before
    vendors = dict(v.split() for v in summary.split("per vendor: ", 1)[1].splitlines()[0].split(", "))
    assert sum(map(int, vendors.values())) == landed and set(vendors) <= {"claude", "codex", "gemini"}
    log = subprocess.run(["git", "-C", str(demo_dir / "origin.git"), "log", "--format=%B", "main"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert log.count("Swarm-Task: ") == landed + 1, "one commit per task, plus the project's first"
    assert not proc.marked(f"SWARM_CONFIG={demo_dir / 'swarm.toml'}"), "the demo left processes running"
    report = Path(re.search(r"run report: (\S+)", out).group(1))  # type: ignore[union-attr]
    assert report == (demo_dir / "report" / "index.html").resolve() and report.read_text().count("<svg") == 5
