"""What the adapter tests share: where the test data and fake CLIs are, and an AgentRun on a scratch worktree."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from swarm.agents import registry
from swarm.agents.base import Agent, AgentResult, AgentRun
from swarm.agents.cli_adapter import CliAgent

AGENTS = Path(__file__).resolve().parent
BIN = AGENTS / "bin"
DATA = AGENTS.parent / "data" / "agent_outputs"
RECORDED = DATA / "recorded"
HELP = DATA / "help"
NOWHERE = Path("/nonexistent/stderr.log")
KEY_VARS = ("ANTHROPIC_API_KEY", "CODEX_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")


def agent_run(tmp: Path, prompt: str = "Do it.", timeout: float = 20.0, **env: str) -> AgentRun:
    """A run on a fresh git worktree under tmp, logging to tmp/logs/agent.log."""
    worktree = tmp / "worktree"
    worktree.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(worktree)], check=True)
    prompt_file = tmp / "prompt.md"
    prompt_file.write_text(prompt)
    return AgentRun(
        task_id="t1",
        attempt=1,
        vendor="v",
        prompt_file=prompt_file,
        worktree=worktree,
        log_path=tmp / "logs" / "agent.log",
        home=tmp / "home",
        timeout=timeout,
        env={"SWARM_TASK_ID": "t1", "SWARM_ATTEMPT": "1", **env},
    )


def script(*actions: str) -> str:
    """A prompt whose ```agent block drives the fake CLIs (see bin/fake_cli.py)."""
    body = "\n".join(actions)
    return f"Do the task.\n\n```agent\n{body}\n```\n"


CLIS = ["claude", "codex", "gemini"]
OWN_KEY = {"claude": "ANTHROPIC_API_KEY", "codex": "CODEX_API_KEY", "gemini": "GEMINI_API_KEY"}
FAKE_KEY = {cli: "AIzaFakeKeyFakeKeyFakeKeyFakeKey0123456" if cli == "gemini" else "sk-fake-0123456789abcdef"
            for cli in CLIS}  # fmt: skip
"""Each CLI's key, of the right shape, that no API accepts."""


def root_sandbox_env(cli: str) -> dict[str, str]:
    """claude refuses its bypass mode as root outside a declared sandbox (see ClaudeAgent.check): a test machine
    running as root declares one."""
    return {"IS_SANDBOX": "1"} if cli == "claude" and os.geteuid() == 0 else {}


def fake_cli(cli: str, **options: object) -> CliAgent:
    """The adapter of `cli` running its fake CLI (tests/agents/bin), with the options given."""
    env = {**root_sandbox_env(cli), **options.pop("env", {})}  # type: ignore[dict-item]
    agent = registry.make(cli, cli, {"binary": str(BIN / cli), "env": env, **options})
    assert isinstance(agent, CliAgent)
    return agent


def real_cli(cli: str, **options: object) -> Agent:
    """The installed real CLI's adapter, with the options given."""
    env = root_sandbox_env(cli)
    return registry.make(cli, cli, {**options, "env": env} if env else options)


def real_clis_side_by_side(
    folders: pytest.TempPathFactory, run: Callable[[str, Path], AgentResult]
) -> dict[str, tuple[AgentResult, float]]:
    """`run(cli, folder)` for each installed real CLI at once, with its fake key set and a folder of its own:
    result and seconds, by CLI.

    Without a reachable API the CLIs wait out their connect timeout doing nothing; side by side, three of them take
    one timeout of the suite's time, not three."""
    installed = [cli for cli in CLIS if shutil.which(cli) is not None]
    own = {cli: folders.mktemp(cli) for cli in installed}  # before the threads: mktemp is not safe across them

    def timed(cli: str) -> tuple[AgentResult, float]:
        started = time.monotonic()
        result = run(cli, own[cli])
        return result, time.monotonic() - started

    with pytest.MonkeyPatch.context() as patch:
        for cli in installed:
            patch.setenv(OWN_KEY[cli], FAKE_KEY[cli])
        with ThreadPoolExecutor(max(1, len(installed))) as pool:
            futures = {cli: pool.submit(timed, cli) for cli in installed}
        return {cli: future.result() for cli, future in futures.items()}
