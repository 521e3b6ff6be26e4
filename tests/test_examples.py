"""The shipped Python example: `swarm demo --example python` builds textkit with a plain pytest oracle."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from swarm import proc, templates
from swarm.backlog import load_dir
from swarm.demo import recorded_tasks
from swarm.settings import parse_repo_settings
from tests.cluster import REPO_ROOT

EXAMPLE = templates.examples()["python"]


def test_every_task_has_a_recorded_solution_and_the_oracle_is_plain_pytest() -> None:
    backlog = load_dir(EXAMPLE.template / "tasks")
    assert not backlog.invalid and set(backlog.tasks) == set(recorded_tasks(EXAMPLE.solutions))
    oracle = parse_repo_settings((EXAMPLE.template / ".swarm.toml").read_text(), "example").oracle
    assert oracle.runner == "pytest" and oracle.full.startswith("python3 -m pytest ")


@pytest.mark.e2e
def test_the_python_demo_lands_every_task_rejects_the_wrong_attempt_and_raises_the_count(tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env.update(PYTHONPATH=str(REPO_ROOT), PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    result = subprocess.run(
        [sys.executable, "-m", "swarm", "demo", "--example", "python", "--dir", str(demo_dir), "--timeout", "300"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    summary = out.split("swarm demo: summary", 1)[1]
    assert re.search(r"tasks landed: 5 of 5", summary), summary
    assert "title-case (" in summary and "oracle_red" in summary, "the wrong first attempt is rejected"
    assert "coordination commits: 0" in summary
    assert re.search(r"before 3 passing, 0 failing; after 15 passing, 0 failing", summary), summary
    log = subprocess.run(["git", "-C", str(demo_dir / "origin.git"), "log", "--format=%B", "main"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert log.count("Swarm-Task: ") == 6, "one commit per task, plus the project's first"
    assert not proc.marked(f"SWARM_CONFIG={demo_dir / 'swarm.toml'}"), "the demo left processes running"
