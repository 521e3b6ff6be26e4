"""`swarm up`: the whole swarm on one machine from swarm.toml, and one Ctrl-C stops every process it started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from swarm.proc import marked
from tests.cluster import REPO_ROOT
from tests.conftest import SCRIPTED_AGENT, Project, task_file, wait_for

pytestmark = pytest.mark.e2e


def config_for(project: Project, vendors: str) -> Path:
    path = project.root / "swarm.toml"
    path.write_text(f'origin = "{project.origin}"\nworkdir = "{project.workdir}"\nlease_ttl = 3\n'
                    f"dispatch_interval = 1\n{vendors}")  # fmt: skip
    return path


def up(config: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env.update(SWARM_CONFIG=str(config), PYTHONPATH=str(REPO_ROOT))
    return subprocess.Popen([sys.executable, "-m", "swarm", "up", *args], cwd=config.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def test_up_runs_the_swarm_and_ctrl_c_stops_everything(project: Project) -> None:
    command = json.dumps([sys.executable, str(SCRIPTED_AGENT), "{prompt_file}"])
    vendors = "".join(f'[vendors.{v}]\nadapter = "command"\ncommand = {command}\n' for v in ("claude", "codex"))
    config = config_for(project, vendors)
    project.add_tasks({"alpha": task_file("Alpha", "write src/alpha.txt alpha")})
    proc = up(config, "--workers", "claude=1,codex=1")
    try:
        wait_for(lambda: "alpha" in project.landed() or proc.poll() is not None, 120, "alpha to land through swarm up")
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        marker = f"SWARM_CONFIG={config}"
        assert len(marked(marker)) >= 4, "workers, beat and Flower run with the swarm's config"
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
        proc.wait(timeout=60)
        assert proc.returncode == 130
        wait_for(lambda: not marked(marker), 20, "every process of the swarm to stop")
        redis_dir = str(project.workdir / "redis")
        left = subprocess.run(["pgrep", "-f", redis_dir], capture_output=True, text=True).stdout.split()
        assert left == [], "the embedded Redis was stopped too"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_up_refuses_a_vendor_whose_cli_is_missing(project: Project) -> None:
    config = config_for(project, '[vendors.claude]\nadapter = "claude"\nbinary = "no-such-claude-binary"\n')
    proc = up(config)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "no-such-claude-binary not found" in out and "swarm doctor" in out and "swarm demo" in out


def test_commands_run_in_the_project_folder_find_the_embedded_redis_of_swarm_up(project: Project) -> None:
    command = json.dumps([sys.executable, str(SCRIPTED_AGENT), "{prompt_file}"])
    config = config_for(project, f'[vendors.claude]\nadapter = "command"\ncommand = {command}\n')
    recorded = config.parent / ".swarm" / "redis.url"
    recorded.parent.mkdir()
    recorded.write_text("redis://127.0.0.1:1/0\n")  # left by a killed session: must not be used
    project.add_tasks({"alpha": task_file("Alpha", "write src/alpha.txt alpha")})
    proc = up(config, "--workers", "claude=1", "--no-flower")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}  # no SWARM_REDIS_URL, no SWARM_CONFIG
    env["PYTHONPATH"] = str(REPO_ROOT)
    try:
        wait_for(lambda: "alpha" in project.landed() or proc.poll() is not None, 120, "alpha to land through swarm up")
        url = recorded.read_text().strip()
        assert url.startswith("redis://127.0.0.1:") and url != "redis://127.0.0.1:1/0"
        for args in (["status", "--json"], ["history", "alpha"]):
            done = subprocess.run([sys.executable, "-m", "swarm", *args], cwd=config.parent, env=env,
                                  capture_output=True, text=True, timeout=120)  # fmt: skip
            assert done.returncode == 0, done.stderr
        status = json.loads(subprocess.run([sys.executable, "-m", "swarm", "status", "--json"], cwd=config.parent,
                                           env=env, capture_output=True, text=True, timeout=120).stdout)  # fmt: skip
        assert {t["id"]: t["state"] for t in status["tasks"]}["alpha"] == "landed"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=180)  # stopping every process takes long on a loaded machine
        assert f"redis: {url} (recorded in {recorded}" in out
        assert not recorded.exists(), "the URL of a stopped Redis is forgotten"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
