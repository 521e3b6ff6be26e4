"""What the adapter tests share: where the test data and fake CLIs are, and an AgentRun on a scratch worktree."""

from __future__ import annotations

import subprocess
from pathlib import Path

from swarm.agents.base import AgentRun

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
