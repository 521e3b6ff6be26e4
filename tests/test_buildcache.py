"""A build folder shared by every worker's oracle runs is flagged by doctor (and by workers at start-up)."""

from __future__ import annotations

from pathlib import Path

from swarm import buildcache
from swarm.settings import parse_repo_settings
from tests.conftest import Project
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


def test_doctor_warns_about_a_shared_build_folder_without_failing(
    project: Project, redis_url: str, tmp_path: Path
) -> None:
    settings = project.clone / ".swarm.toml"
    settings.write_text(
        settings.read_text().replace("env = { ORACLE_RUNS", 'env = { CARGO_TARGET_DIR = "/srv/t", ORACLE_RUNS')
    )
    project.commit_all("Share one build folder")
    config = write_config(tmp_path / "swarm.toml", project, redis_url, claude=AGENT)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = swarm("doctor", config=config, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    warned = [ln for ln in result.stdout.splitlines() if ln.startswith("warn")]
    assert len(warned) == 1 and "CARGO_TARGET_DIR" in warned[0] and "{cache}" in warned[0], result.stdout
