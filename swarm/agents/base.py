"""The `Agent` protocol and the request and result every adapter shares."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from swarm.sandbox import Sandbox

Outcome = Literal["ok", "no_change", "rate_limited", "auth_error", "vendor_error", "timeout", "crashed", "failed"]
"""How a run ended, coarsely; `AgentResult.fault` and `.reason` say whose fault it was and exactly why."""
Fault = Literal["task", "vendor", "unknown"]
"""task: the agent ran and failed at the work; vendor: the CLI, account or API could not run it (never the task's
fault: the vendor is parked or cooled); unknown: an error no rule recognised (counted against the task, as before)."""
Check = tuple[str, bool | None, str]
"""One line of `swarm doctor`: what was checked, whether it passed (None: a warning, not a failure), and the detail
or the fix."""


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
    sandbox: Sandbox | None = None
    """Where the agent runs (swarm.sandbox); None only when the deployment opted out of sandboxing."""
    resume: str | None = None
    """A session id of this slot's CLI to continue (a cut attempt's); None: a new session."""


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
    fault: Fault | None = None
    """Whose fault a failure was (None when the run succeeded); see `swarm.agents.taxonomy`."""
    reason: str | None = None
    """The precise cause, one of `taxonomy.REASONS` (e.g. billing, model_not_found, turn_limit, unknown)."""
    models: list[str] | None = None
    """The models that answered, as the CLI reports them: a fallback model the CLI switched to shows up here."""
    model_asked: str | None = None
    """The model the adapter asked the CLI for (None: the CLI's default), to compare with `models`."""

    def record(self) -> dict[str, Any]:
        """Flat fields for the attempt's record (None values left out)."""
        fields = {k: v for k, v in self.__dict__.items() if v is not None}
        if self.log_path is not None:
            fields["log_path"] = str(self.log_path)
        return fields

    @property
    def vendor_fault(self) -> bool:
        """The vendor, not the task, stopped this run: it must never count against the task."""
        return self.fault == "vendor"


class Agent(Protocol):
    """Runs one coding agent on one worktree until it stops, times out or is cancelled."""

    Options: type[BaseModel]

    def run(self, run: AgentRun) -> AgentResult: ...

    def executable(self) -> str:
        """The program this adapter starts."""
        ...

    def check(self) -> list[Check]:
        """`swarm doctor`'s checks of this vendor: program found, version, flags, which login is in use."""
        ...

    def preflight(self, home: Path) -> AgentResult | None:
        """A cheap look (program present, credentials present; no network) before any oracle work of an attempt:
        the vendor-level result that would end the run at once, or None when the agent may be started."""
        ...

    def probe(self, home: Path, timeout: float) -> AgentResult:
        """A trivial real run with a short timeout, to re-check a parked vendor without spending a task on it."""
        ...

    def has_session(self, home: Path, session: str) -> bool:
        """Whether the slot's home (AgentRun.home) holds the transcript of `session`, so it can be resumed."""
        ...
