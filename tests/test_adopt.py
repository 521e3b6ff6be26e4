"""`swarm init --adopt`: an existing repository becomes a swarm project through one commit on its own origin."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from swarm import adopt, oracle, repo, templates
from swarm.errors import SwarmError
from swarm.settings import parse_repo_settings
from tests.conftest import GIT_IDENTITY
from tests.test_cli import swarm


def git(cwd: Path, *args: str) -> str:
    env = {**GIT_IDENTITY, "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout.strip()


def python_project(root: Path, branch: str = "master") -> Path:
    """A user's working clone with history of its own (no trailers) and a bare origin on `branch`."""
    work = root / "user-clone"
    (work / "tests").mkdir(parents=True)
    (work / "pyproject.toml").write_text('[project]\nname = "calc"\nversion = "0.1"\n')
    (work / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (work / "tests/test_calc.py").write_text("from calc import add\n\ndef test_add():\n    assert add(1, 2) == 3\n")
    git(work, "init", "-q", f"--initial-branch={branch}")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "first")
    (work / "README.md").write_text("calc\n")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "second")
    git(root, "clone", "-q", "--bare", str(work), str(root / "upstream.git"))
    git(work, "remote", "add", "origin", str(root / "upstream.git"))
    return work


def test_adopting_a_clone_lands_one_commit_on_its_own_origin(tmp_path: Path) -> None:
    work = python_project(tmp_path)
    before = git(tmp_path / "upstream.git", "rev-parse", "master")
    adopted = adopt.adopt(str(work), tmp_path / "swarm")
    assert adopted.origin == str((tmp_path / "upstream.git").resolve()), "the clone's own origin"
    assert adopted.branch == "master"
    upstream = tmp_path / "upstream.git"
    assert git(upstream, "rev-parse", "master") == adopted.head == git(upstream, "rev-parse", repo.ADOPTED_REF)
    assert git(upstream, "rev-parse", f"{adopted.head}^") == before, "one commit on top of the user's history"
    message = git(upstream, "log", "-1", "--format=%B", adopted.head)
    assert "Swarm-Adopted: yes" in message and "Swarm-Task: adopt" in message
    files = set(git(upstream, "show", "--name-only", "--format=", adopted.head).splitlines())
    assert files == {".swarm.toml", "AGENT_PROMPT.md", "COALESCE_PROMPT.md", "tasks/README.md", ".gitignore"}
    settings = parse_repo_settings(git(upstream, "show", f"{adopted.head}:.swarm.toml"), "adopted")
    assert settings.oracle.runner == "pytest" and "--junitxml" in settings.oracle.full
    assert settings.coalesce_prompt == "COALESCE_PROMPT.md"


def test_the_proposed_oracle_runs_green_with_its_counts(tmp_path: Path) -> None:
    work = python_project(tmp_path)
    adopted = adopt.adopt(str(work), tmp_path / "swarm")
    settings = parse_repo_settings((adopted.clone / ".swarm.toml").read_text(), "adopted").oracle
    settings.full = settings.full.replace("python3", sys.executable)
    result = oracle.run(settings, "full", adopted.clone, tmp_path / "o.log", tmp_path / "cache", "doctor", 120)
    assert result.ok, result.reason
    assert result.passed == 1 and result.summary["areas"] == {"tests/test_calc.py": {"passed": 1, "failed": 0,
                                                                                      "skipped": 0}}  # fmt: skip


def test_a_clone_without_origin_gets_a_bare_copy_and_a_second_adoption_is_refused(tmp_path: Path) -> None:
    work = python_project(tmp_path, branch="main")
    git(work, "remote", "remove", "origin")
    adopted = adopt.adopt(str(work), tmp_path / "swarm")
    assert adopted.origin == str((tmp_path / "swarm" / "origin.git").resolve())
    assert git(Path(adopted.origin), "rev-parse", repo.ADOPTED_REF) == adopted.head
    with pytest.raises(SwarmError, match="already has a .swarm.toml"):
        adopt.adopt(adopted.origin, tmp_path / "again")


@pytest.mark.parametrize(
    ("files", "runner", "command"),
    [
        ({"Cargo.toml": "[package]\n"}, "cargo", "cargo test --no-fail-fast"),
        ({"go.mod": "module x\n"}, "go", "go test -json ./..."),
        ({"package.json": '{"scripts": {"test": "node --test"}}'}, "node", "node --test --test-reporter=tap"),
        ({"package.json": '{"scripts": {"test": "jest"}}'}, "auto", "npm test"),
        ({"tests/test_x.py": ""}, "pytest", "python3 -m pytest -p no:cacheprovider --junitxml=.swarm-junit.xml"),
    ],
)
def test_the_runner_is_detected_from_the_tree(tmp_path: Path, files: dict[str, str], runner: str, command: str) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = adopt.detect(tmp_path)
    assert found is not None and (found.runner, found.command) == (runner, command)
    assert parse_repo_settings(adopt.repo_settings(found), "proposed").oracle.runner == runner


def test_no_runner_found_asks_for_the_oracle(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    (work / "notes.txt").write_text("x")
    git(work, "init", "-q", "--initial-branch=main")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "x")
    with pytest.raises(SwarmError, match="--oracle"):
        adopt.adopt(str(work), tmp_path / "s1")
    adopted = adopt.adopt(str(work), tmp_path / "s2", runner="generic", command="./check.sh")
    assert parse_repo_settings((adopted.clone / ".swarm.toml").read_text(), "x").oracle.runner == "generic"


def test_swarm_init_adopt_writes_the_deployment_config(tmp_path: Path) -> None:
    work = python_project(tmp_path)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    result = swarm("init", str(tmp_path / "proj"), "--adopt", str(work), config=None, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert "test runner: pytest" in result.stdout
    config = tomllib.loads((tmp_path / "proj" / "swarm.toml").read_text())
    assert config["branch"] == "master" and config["origin"] == str((tmp_path / "upstream.git").resolve())
    bad = swarm("init", str(tmp_path / "p2"), "--adopt", str(tmp_path / "nothing-here"), config=None, cwd=elsewhere)
    assert bad.returncode == 2 and "nothing-here" in bad.stderr


def doctor_config(path: Path, adopted: adopt.Adopted, redis_url: str | None, solutions: Path) -> Path:
    lines = [f'redis_url = "{redis_url}"'] if redis_url else []
    lines += [f'origin = "{adopted.origin}"', f'workdir = "{path.parent / "wd"}"', f'branch = "{adopted.branch}"',
              "[vendors.demo]", 'adapter = "replay"', f'solutions = "{solutions}"']  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def test_doctor_runs_the_oracle_once_on_main_and_shows_its_counts(tmp_path: Path, redis_url: str) -> None:
    work = python_project(tmp_path)
    command = f"{sys.executable} -m pytest -p no:cacheprovider --junitxml=.swarm-junit.xml"
    adopted = adopt.adopt(str(work), tmp_path / "swarm", runner="pytest", command=command)
    solutions = templates.examples()["python"].solutions
    config = doctor_config(tmp_path / "swarm.toml", adopted, redis_url, solutions)
    result = swarm("doctor", config=config, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "oracle on main: green: passed 1, failed 0, skipped 0, 1 area(s) (runner pytest)" in result.stdout
    (adopted.clone / "tests/test_calc.py").write_text("def test_add():\n    assert False\n")
    subprocess.run(["git", "commit", "-qam", "break\n\nSwarm-Human: test"], cwd=adopted.clone, check=True,
                   env={**os.environ, **GIT_IDENTITY})  # fmt: skip
    git(adopted.clone, "push", "-q", "origin", "HEAD:master")
    red = swarm("doctor", config=config, cwd=tmp_path)
    assert red.returncode == 1 and "FAIL oracle on main" in red.stdout, red.stdout


def test_doctor_is_green_on_the_embedded_path_and_checks_the_replay_solutions(tmp_path: Path) -> None:
    work = python_project(tmp_path)
    command = f"{sys.executable} -m pytest -p no:cacheprovider --junitxml=.swarm-junit.xml"
    adopted = adopt.adopt(str(work), tmp_path / "swarm", runner="pytest", command=command)
    good = doctor_config(tmp_path / "a.toml", adopted, None, templates.examples()["python"].solutions)
    result = swarm("doctor", config=good, cwd=tmp_path)
    assert result.returncode == 0 and "FAIL" not in result.stdout, result.stdout
    assert "warn redis" in result.stdout and "embedded" in result.stdout
    empty = tmp_path / "no-patches"
    empty.mkdir()
    bad = swarm("doctor", config=doctor_config(tmp_path / "b.toml", adopted, None, empty), cwd=tmp_path)
    fails = [ln for ln in bad.stdout.splitlines() if "FAIL" in ln]
    assert bad.returncode == 1 and len(fails) == 1 and "vendor demo" in fails[0] and "no <task>.patch" in fails[0]
