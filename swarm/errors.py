"""The one exception tree of the swarm: every message says what failed, on what, and what to do."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from swarm.outcomes import Reason


class SwarmError(Exception):
    """Base of every error the swarm raises on purpose."""


class SettingsError(SwarmError):
    """A setting is missing or has a bad value; raised at start-up, before any work begins."""


class TaskFileError(SwarmError):
    """A task file in the backlog is malformed; it is reported and skipped, never fatal."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class GitError(SwarmError):
    """A git operation on the mirror, a worktree or origin failed."""


class CoordinationError(SwarmError):
    """Redis (the coordination store) could not be reached or refused a step; never the task's fault."""


class AttemptRejected(SwarmError):
    """An attempt ended without landing, for a reason worth recording (oracle red, no change, ...)."""

    def __init__(self, reason: Reason, detail: str = "", *, counts: bool | None = None) -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail
        self.counts = counts
        """Whether it uses up the task's budget, when not as its reason says (a vendor's fault never does)."""


class SandboxUnavailable(SwarmError):
    """No sandbox can be made on this machine (bubblewrap missing or namespaces refused), and no opt-out was set."""
