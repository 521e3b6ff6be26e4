"""What an attempt can end as: the outcome of a message, the reason of a rejection (and whether it is the task's
fault, so whether it uses up the task's budget), and the typed record kept in the attempt book."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from swarm.counts import Counts


class Outcome(StrEnum):
    """What one `run_task` message did."""

    LANDED = "landed"
    REJECTED = "rejected"
    """The attempt ended without landing; the task goes back to dispatch."""
    FAILED = "failed"
    """Rejected, and that used up the task's budget: it waits for `swarm retry`."""
    LOST = "lost"
    """The attempt's lease expired before it finished (recorded by the reaper)."""
    BUSY = "busy"
    """Another worker holds the task's lease; the message is dropped."""
    DONE = "done"
    """The task already landed or failed; the message is dropped."""
    COOLING = "cooling"
    """The vendor may not start attempts now (cooldown, auth error, daily cap); the message is dropped."""
    UNKNOWN_VENDOR = "unknown_vendor"


class Reason(StrEnum):
    """Why an attempt did not land."""

    # The task's fault (or its agent's): each uses up one attempt of the task's budget.
    ORACLE_RED = "oracle_red"
    ORACLE_DROPPED = "oracle_dropped"
    NO_CHANGE = "no_change"
    PROTECTED = "protected"
    REFUSED_STRUCTURE = "refused_structure"
    """A link out of the tree, a protected path turned into a link or swapped with a folder (swarm/guard.py)."""
    INVALID_TASK = "invalid_task"
    AGENT_FAILED = "agent_failed"
    AGENT_CRASHED = "agent_crashed"
    AGENT_TIMEOUT = "agent_timeout"
    AGENT_NO_CHANGE = "agent_no_change"
    ERROR = "error"
    """An unexpected exception (a bug, or Celery's time limit): counted, so a task that trips it cannot loop."""
    # Not the task's fault: these never use up its budget; the task goes back to dispatch after a backoff.
    AGENT_RATE_LIMITED = "agent_rate_limited"
    AGENT_AUTH_ERROR = "agent_auth_error"
    AGENT_VENDOR_ERROR = "agent_vendor_error"
    """Billing, policy, model, CLI, overload or network trouble of the vendor (see agents/taxonomy.py)."""
    CANCELLED = "cancelled"
    """Stopped with `swarm cancel`; the task is held until `swarm retry`."""
    CONFLICT = "conflict"
    MAIN_MOVED = "main_moved"
    ALREADY_LANDED = "already_landed"
    LEASE_LOST = "lease_lost"
    LOST = "lost"
    INFRASTRUCTURE = "infrastructure"
    """Redis, git, the network or the disk failed under the attempt."""
    REPO_SETTINGS = "repo_settings"
    """main's `.swarm.toml` is broken: an operator must fix it, the task is not to blame."""

    @property
    def counts(self) -> bool:
        """Whether an attempt rejected for this reason uses up one attempt of the task's budget."""
        return self in _COUNTED

    @property
    def cut(self) -> bool:
        """Whether an attempt rejected for this reason was cut short, not judged: its work so far is worth keeping
        for the vendor's next attempt (swarm/wip.py)."""
        return self in _CUT

    @classmethod
    def of_agent(cls, outcome: str) -> Reason | None:
        """The rejection of an agent run that did not end `ok` (None when it did)."""
        if outcome == "ok":
            return None
        try:
            return cls(f"agent_{outcome}")
        except ValueError:  # an outcome this swarm does not know yet: the agent failed
            return cls.AGENT_FAILED


_COUNTED = frozenset(
    {
        Reason.ORACLE_RED,
        Reason.ORACLE_DROPPED,
        Reason.NO_CHANGE,
        Reason.PROTECTED,
        Reason.REFUSED_STRUCTURE,
        Reason.INVALID_TASK,
        Reason.AGENT_FAILED,
        Reason.AGENT_CRASHED,
        Reason.AGENT_TIMEOUT,
        Reason.AGENT_NO_CHANGE,
        Reason.ERROR,
    }
)


_CUT = frozenset(
    {
        Reason.AGENT_TIMEOUT,
        Reason.AGENT_CRASHED,
        Reason.AGENT_RATE_LIMITED,
        Reason.AGENT_AUTH_ERROR,
        Reason.AGENT_VENDOR_ERROR,
        Reason.LEASE_LOST,
        Reason.INFRASTRUCTURE,
    }
)


@dataclass
class AttemptRecord:
    """One attempt as the attempt book keeps it (`swarm history`)."""

    task: str
    vendor: str
    worker: str
    fence: int
    log_dir: str
    attempt: int = 0
    """The run number of the task (1 for its first run ever): it only grows, also across `swarm retry`."""
    started: float = field(default_factory=time.time)
    ended: float | None = None
    outcome: str = ""
    """An `Outcome` value: landed, rejected or lost (a rejection that used up the budget is still `rejected`)."""
    reason: str = ""
    detail: str = ""
    counted: bool = False
    """Whether this attempt used up one attempt of the task's budget."""
    commit: str | None = None
    rebased: bool | None = None
    fast: Counts | None = None
    full: Counts | None = None
    baseline: Counts | None = None
    """main's full-oracle counts the attempt was measured against (its delta in `swarm history`)."""
    agent: dict[str, Any] | None = None
    protected_touched: list[str] = field(default_factory=list)
    wip: dict[str, Any] | None = None
    """The work so far this cut attempt kept on origin for the next one (commit, base, vendor, slot, session)."""
    resumed: dict[str, Any] | None = None
    """The kept work this attempt started from (commit, session when continued), or why it started fresh."""

    def reject(self, reason: Reason, detail: str, counts: bool | None = None) -> None:
        """End as rejected; it uses up the budget as its reason says, unless `counts` says otherwise."""
        self.outcome, self.reason, self.detail = Outcome.REJECTED.value, reason.value, detail
        self.counted = reason.counts if counts is None else counts

    def counts(self, tier: str, counts: Counts) -> None:
        """Keep the counts of the tier's last oracle run (`fast` or `full`)."""
        if tier == "fast":
            self.fast = counts
        else:
            self.full = counts

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; unset ones left out."""
        out = asdict(self)
        for name in ("fast", "full", "baseline"):
            value = getattr(self, name)
            out[name] = value.to_dict() if value is not None else None
        return {k: v for k, v in out.items() if v not in (None, [], "")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttemptRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for name in ("fast", "full", "baseline"):
            if known.get(name) is not None:
                known[name] = Counts.parse(known[name])
        if not isinstance(known.get("protected_touched"), list):
            known.pop("protected_touched", None)
        known.setdefault("task", "")
        for name in ("vendor", "worker", "log_dir"):
            known.setdefault(name, "")
        known.setdefault("fence", 0)
        return cls(**known)
