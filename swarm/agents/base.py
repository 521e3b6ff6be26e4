"""The `Agent` protocol and the request and result every adapter shares."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel

Outcome = Literal["ok", "no_change", "rate_limited", "auth_error", "timeout", "crashed", "failed"]


@dataclass
class AgentRun:
    """Everything one agent run needs; the pipeline builds it, the adapter only reads it."""

    task_id: str
    attempt: int
    vendor: str
    prompt_file: Path
    worktree: Path
    log_path: Path
    home: Path
    """A folder of this worker slot for the agent's own config and state (never shared between slots)."""
    timeout: float
    env: dict[str, str]
    """Base environment (PATH, HOME, locale) plus SWARM_TASK_ID, SWARM_PROMPT_FILE, SWARM_ATTEMPT."""
    cancel: threading.Event = field(default_factory=threading.Event)
    """Set by the heartbeat when the lease is lost: the adapter must stop the agent at once."""
    on_start: Callable[[int], None] | None = None
    """The adapter calls it with the agent's process group id, so a lost attempt's agent can be found and killed."""


@dataclass
class AgentResult:
    """How one agent run ended, in the same terms for every adapter."""

    outcome: Outcome
    message: str = ""
    exit_code: int | None = None
    log_path: Path | None = None
    session_id: str | None = None
    turns: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None
    retry_after: float | None = None

    def record(self) -> dict[str, Any]:
        """Flat fields for the attempt's record (None values left out)."""
        fields = {k: v for k, v in self.__dict__.items() if v is not None}
        if self.log_path is not None:
            fields["log_path"] = str(self.log_path)
        return fields


class Agent(Protocol):
    """Runs one coding agent on one worktree until it stops, times out or is cancelled."""

    Options: type[BaseModel]

    def run(self, run: AgentRun) -> AgentResult: ...

    def executable(self) -> str:
        """The program this adapter starts, for `swarm doctor`."""
        ...
