"""The judge on the engine template with real cargo: the candidate's code is built in a sandbox, main's harness
judges its artifact in a jail, and the usual ways of faking a passing count do not move it."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from swarm import oracle, repo, sandbox
from swarm.judge import Judge
from swarm.settings import RepoSettings
from tests.conftest import GIT_IDENTITY

TEMPLATE = Path(__file__).resolve().parent.parent / "engine_repo_template"
pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(bool(sandbox.check()) and os.environ.get("CI") != "true", reason=sandbox.check()),
]

DELEGATING_ENGINE = """
use std::io::{Read, Write};
use std::process::{Command, Stdio};
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut sql = String::new();
    std::io::stdin().read_to_string(&mut sql).unwrap();
    let child = Command::new("sqlite3").args(&args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn();
    let mut child = match child { Ok(c) => c, Err(e) => { println!("Error: {e}"); std::process::exit(1) } };
    child.stdin.take().unwrap().write_all(sql.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    std::io::stdout().write_all(&out.stdout).unwrap();
}
"""
FAKE_HARNESS = 'import json\nprint(json.dumps({"passed": 329, "failed": 0, "skipped": 0, "areas": {}}))\n'
IGNORED_TEST = (
    "\n#[cfg(test)]\nmod weakened {\n    #[test]\n    #[ignore]\n    fn was_failing() { assert!(false) }\n}\n"
)


class Project:
    def __init__(self, root: Path) -> None:
        self.origin, self.clone = root / "origin.git", root / "clone"
        repo.init_project(TEMPLATE, self.origin, self.clone)
        self.mirror = repo.Mirror(str(self.origin), root / "mirror.git").ensure()
        self.main = self.mirror.fetch()
        self.settings = RepoSettings.model_validate(tomllib.loads((self.clone / ".swarm.toml").read_text()))
        self.n = 0

    def candidate(self, files: dict[str, str]) -> str:
        """A commit on main changing `files`, pushed to origin as a branch and fetched into the mirror."""
        self.n += 1
        git = ["git", "-C", str(self.clone)]
        env = {**os.environ, **GIT_IDENTITY}
        subprocess.run([*git, "checkout", "-q", "--detach", self.main], check=True, env=env)
        for path, text in files.items():
            (self.clone / path).parent.mkdir(parents=True, exist_ok=True)
            (self.clone / path).write_text(text)
        subprocess.run([*git, "add", "-A"], check=True, env=env)
        subprocess.run([*git, "commit", "-qm", f"candidate {self.n}"], check=True, env=env)
        subprocess.run([*git, "push", "-q", "origin", f"HEAD:refs/heads/cand{self.n}"], check=True, env=env)
        self.mirror.fetch()
        return self.mirror.rev(f"refs/remotes/origin/cand{self.n}")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return Project(tmp_path_factory.mktemp("judge"))


def judge_of(project: Project, tmp: Path, sandboxed: bool = True) -> Judge:
    return Judge(project.mirror, tmp / "judge", seed="test-seed", sandboxed=sandboxed)


def run(judge: Judge, project: Project, commit: str, tmp: Path) -> oracle.OracleResult:
    return judge.run(project.settings, "full", commit, project.main, tmp / f"{commit[:8]}.log",
                     agent_id="t", timeout=500)  # fmt: skip


@pytest.fixture(scope="module")
def baseline(project: Project, tmp_path_factory: pytest.TempPathFactory) -> oracle.OracleResult:
    tmp = tmp_path_factory.mktemp("baseline")
    return run(judge_of(project, tmp), project, project.main, tmp)


def test_main_is_judged_green_with_its_unit_tests_as_an_area(baseline: oracle.OracleResult) -> None:
    assert baseline.ok, baseline.reason
    assert baseline.summary["areas"]["unit"]["passed"] > 0
    assert baseline.summary["variants"] is True
    assert 0 < baseline.passed < 329


def test_a_verdict_carries_the_cpu_its_sandboxed_build_and_harness_used(baseline: oracle.OracleResult) -> None:
    """What the train's `auto` decides by: a cold cargo build of the engine keeps a core busy for seconds, inside
    a sandbox whose processes no wait4 reports."""
    assert baseline.cpu_seconds > 1.0 and baseline.seconds > 0, baseline
    assert baseline.cpu_seconds <= baseline.seconds * (os.cpu_count() or 1) * 1.2, "no run counted twice"


def test_a_rewritten_harness_is_not_the_judge(project: Project, baseline: oracle.OracleResult, tmp_path: Path) -> None:
    cand = project.candidate({"oracle/run.py": FAKE_HARNESS, "test.sh": "#!/bin/sh\n" + FAKE_HARNESS})
    result = run(judge_of(project, tmp_path), project, cand, tmp_path)
    assert result.ok, result.reason
    assert result.passed == baseline.passed


def test_an_engine_that_hands_the_work_to_sqlite3_gains_nothing(
    project: Project, baseline: oracle.OracleResult, tmp_path: Path
) -> None:
    cand = project.candidate({"crates/engine/src/main.rs": DELEGATING_ENGINE})
    jailed = run(judge_of(project, tmp_path), project, cand, tmp_path)
    assert jailed.passed <= baseline.passed, "the jail let the engine run sqlite3"
    # The safeguard removed: without the sandbox and jail the same candidate gains, so the jail is what stops it.
    free = run(judge_of(project, tmp_path / "unsafe", sandboxed=False), project, cand, tmp_path)
    assert free.passed > baseline.passed + 100


def test_an_ignored_failing_unit_test_is_refused(
    project: Project, baseline: oracle.OracleResult, tmp_path: Path
) -> None:
    lib = (project.clone / "crates/parser/src/lib.rs").read_text()
    cand = project.candidate({"crates/parser/src/lib.rs": lib + IGNORED_TEST})
    result = run(judge_of(project, tmp_path), project, cand, tmp_path)
    base = baseline.counts()
    assert "skipped count rose" in oracle.judge(result, base)


def test_a_build_cannot_write_outside_its_tree(project: Project, tmp_path: Path) -> None:
    target = tmp_path / "outside.txt"
    build_rs = f'fn main() {{ let _ = std::fs::write("{target}", "x"); }}\n'
    cargo = (
        (project.clone / "crates/engine/Cargo.toml")
        .read_text()
        .replace("[package]", '[package]\nbuild = "build.rs"', 1)
    )
    cand = project.candidate({"crates/engine/build.rs": build_rs, "crates/engine/Cargo.toml": cargo})
    result = run(judge_of(project, tmp_path), project, cand, tmp_path)
    assert result.ok, result.reason
    assert not target.exists()


def test_a_cache_never_serves_a_stale_build(project: Project, baseline: oracle.OracleResult, tmp_path: Path) -> None:
    """The slot's green cache is a build of main as it was; a newer main changed the engine since. Files as in the
    current main but not as in the cached build must be rebuilt, or the verdict would be of stale code."""
    assert run(judge_of(project, tmp_path), project, project.main, tmp_path).ok  # green cache: a build of main
    newer = project.candidate({"crates/engine/src/main.rs": DELEGATING_ENGINE})  # plays a newer main
    free = Judge(project.mirror, tmp_path / "judge", seed="test-seed", sandboxed=False)
    verdict = free.run(project.settings, "full", newer, newer, tmp_path / "newer.log", agent_id="t", timeout=500)
    assert verdict.passed > baseline.passed + 100, "the engine changed since the cached build was not rebuilt"


def test_only_a_landed_candidates_build_seeds_the_next(project: Project, tmp_path: Path) -> None:
    judge = judge_of(project, tmp_path)
    assert run(judge, project, project.main, tmp_path).ok
    cand = project.candidate({"crates/parser/src/extra.rs": "// more\n"})
    assert run(judge, project, cand, tmp_path).ok
    built_from = tmp_path / "judge" / "green-cache" / ".swarm-built-from"
    assert built_from.read_text() == project.main, "a candidate's build seeded others before it landed"
    judge.landed(cand)
    assert built_from.read_text() == cand
