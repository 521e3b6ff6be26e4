"""A build folder shared by every worker's oracle runs is flagged by doctor (and by workers at start-up)."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm import buildcache
from swarm.settings import parse_repo_settings
from tests.cluster import Cluster
from tests.cluster import write_config as cluster_config
from tests.conftest import Project, wait_for
from tests.test_cli import AGENT, swarm, write_config

ORACLE = '[oracle]\nfast = "true"\nfull = "true"\n'


def _repo(env: str) -> str:
    return f"{ORACLE}env = {{ {env} }}\n"


def test_a_fixed_build_folder_is_flagged_and_a_per_slot_one_is_not() -> None:
    def flagged(env: str) -> list[str]:
        return buildcache.shared_folders(parse_repo_settings(_repo(env), "t"))

    assert "CARGO_TARGET_DIR" in flagged('CARGO_TARGET_DIR = "/var/cache/target"')[0]
    assert flagged('TMPDIR = "~/tmp"') and flagged('GOCACHE = "$HOME/go-cache"')
    assert not flagged('CARGO_TARGET_DIR = "{cache}/target"')
    assert not flagged('CARGO_TARGET_DIR = "target"'), "relative: inside the run's own worktree"
    assert not flagged('JAVA_HOME = "/usr/lib/jvm/default"'), "a toolchain, not a build folder"


def _share_a_build_folder(project: Project) -> None:
    settings = project.clone / ".swarm.toml"
    text = settings.read_text().replace("env = { ORACLE_RUNS", 'env = { CARGO_TARGET_DIR = "/srv/t", ORACLE_RUNS')
    settings.write_text(text)
    project.commit_all("Share one build folder")


def test_doctor_warns_about_a_shared_build_folder_without_failing(
    project: Project, redis_url: str, tmp_path: Path
) -> None:
    _share_a_build_folder(project)
    config = write_config(tmp_path / "swarm.toml", project, redis_url, claude=AGENT)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = swarm("doctor", config=config, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    warned = [ln for ln in result.stdout.splitlines() if ln.startswith("warn")]
    assert len(warned) == 1 and "CARGO_TARGET_DIR" in warned[0] and "{cache}" in warned[0], result.stdout


@pytest.mark.e2e
def test_a_worker_warns_at_start_about_a_shared_build_folder(project: Project, redis_url: str) -> None:
    _share_a_build_folder(project)
    cluster = Cluster(project, cluster_config(project, redis_url, {"claude": None}))
    try:
        cluster.worker("w1", "claude")
        cluster.wait_for_workers(["w1"])
        log = cluster.logs / "w1.log"
        wait_for(lambda: b"CARGO_TARGET_DIR = '/srv/t' is one folder" in log.read_bytes(), 30, "the warning")
    finally:
        cluster.stop()
