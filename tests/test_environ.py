"""Child environments: built from the inherited one, carrying only what a child needs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swarm.environ import agent_home_env, child_env, swarm_process_env


def test_child_env_passes_only_the_base_and_what_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_REDIS_URL", "redis://secret:1/0")
    monkeypatch.setenv("SECRET_TOKEN", "t0ken")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    env = child_env(["SECRET_TOKEN", "NOT_SET_ANYWHERE"])
    assert env["PATH"] == os.environ["PATH"] and env["LC_ALL"] == "C.UTF-8" and env["SECRET_TOKEN"] == "t0ken"
    assert "SWARM_REDIS_URL" not in env and "NOT_SET_ANYWHERE" not in env
    assert "SECRET_TOKEN" not in child_env()


def test_swarm_processes_get_the_deployment_named_and_no_stray_swarm_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SWARM_LEASE_TTL", "1")
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "a:b")
    env = swarm_process_env(tmp_path / "swarm.toml", "redis://127.0.0.1:1/0")
    assert env["SWARM_CONFIG"] == str((tmp_path / "swarm.toml").resolve())
    assert env["SWARM_REDIS_URL"] == "redis://127.0.0.1:1/0"
    assert "SWARM_LEASE_TTL" not in env and "FLOWER_BASIC_AUTH" not in env and env["PATH"] == os.environ["PATH"]


def test_an_agents_home_is_its_slot_folder_with_its_own_git_identity(tmp_path: Path) -> None:
    env = agent_home_env(tmp_path / "home", "claude agent")
    assert env["HOME"] == str(tmp_path / "home")
    assert env["GIT_AUTHOR_NAME"] == env["GIT_COMMITTER_NAME"] == "claude agent"
    assert env["GIT_AUTHOR_EMAIL"] == "claude-agent@swarm.invalid"
