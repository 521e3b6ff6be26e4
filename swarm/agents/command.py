"""The `command` adapter: any program, given an argv template; the agent's own output is not interpreted."""

from __future__ import annotations

import logging
import shutil
import string
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from swarm import proc
from swarm.agents import outcomes, taxonomy
from swarm.agents.base import AgentResult, AgentRun, Check
from swarm.agents.process import launch
from swarm.environ import child_env

log = logging.getLogger(__name__)

PLACEHOLDERS = {"prompt_file", "task_id", "worktree", "model"}


class CommandOptions(BaseModel):
    """Options of a `[vendors.<name>]` table with `adapter = "command"`."""

    model_config = ConfigDict(extra="forbid")

    command: list[str] = Field(min_length=1)
    """argv template; {prompt_file}, {task_id}, {worktree} and {model} are filled in per attempt."""
    model: str = ""
    """Model name handed to the command through {model}."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment variables for the command."""
    pass_env: list[str] = Field(default_factory=list)
    """Names of the swarm's environment variables the command may see (API keys, for instance)."""

    @field_validator("command")
    @classmethod
    def _placeholders(cls, argv: list[str]) -> list[str]:
        for arg in argv:
            try:
                names = {name for _, name, _, _ in string.Formatter().parse(arg) if name is not None}
            except ValueError as exc:
                raise ValueError(f"bad template {arg!r}: {exc} (write {{{{ and }}}} for literal braces)") from None
            unknown = names - PLACEHOLDERS
            if unknown:
                raise ValueError(f"unknown placeholder(s) {sorted(unknown)} in {arg!r} (known: {sorted(PLACEHOLDERS)})")
        return argv


class CommandAgent:
    """Runs the vendor's command in the worktree; exit 0 is success, anything else fails the attempt."""

    Options = CommandOptions

    def __init__(self, vendor: str, options: CommandOptions) -> None:
        self.vendor = vendor
        self.options = options

    def executable(self) -> str:
        return self.options.command[0]

    def argv(self, run: AgentRun) -> list[str]:
        values = {
            "prompt_file": str(run.prompt_file),
            "task_id": run.task_id,
            "worktree": str(run.worktree),
            "model": self.options.model,
        }
        return [arg.format(**values) for arg in self.options.command]

    def run(self, run: AgentRun) -> AgentResult:
        env = {**child_env(self.options.pass_env), **run.env, **self.options.env}
        launched = launch(run, self.argv(run), env)
        tail = proc.tail(run.log_path, 2000).strip().splitlines()
        message = tail[-1] if tail else ""
        if launched.ended.returncode == 0:
            return outcomes.settle(launched, AgentResult("ok", message))
        # The command's output is not interpreted: a plain failure is the agent's, not a guess at the vendor's.
        failed = taxonomy.fail(AgentResult("failed", f"{launched.ended.describe()}: {message}"), taxonomy.AGENT_ERROR)
        return outcomes.settle(launched, failed)

    def check(self) -> list[Check]:
        path = shutil.which(self.executable(), path=child_env().get("PATH"))
        found = f"{self.executable()} -> {path}" if path else f"{self.executable()!r} not found on PATH"
        return [(f"vendor {self.vendor}", path is not None, found)]

    def preflight(self, home: Path) -> AgentResult | None:
        if shutil.which(self.executable(), path=child_env().get("PATH")) is None:
            missing = AgentResult("vendor_error", f"{self.executable()!r} not found on PATH")
            return taxonomy.fail(missing, taxonomy.CLI_MISSING)
        return None

    def has_session(self, home: Path, session: str) -> bool:
        return False  # a command reports no session

    def probe(self, home: Path, timeout: float) -> AgentResult:
        """A command has no cheap trivial run of its own: it is back when its program is there."""
        return self.preflight(home) or AgentResult("ok", f"{self.executable()} found")
