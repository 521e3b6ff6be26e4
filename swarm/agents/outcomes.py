"""The one mapping from how an agent's process ended to the run's outcome, shared by every adapter.

The adapter reads the output (what the agent or its CLI said); how the process ended overrules it: the attempt's
timeout, the lost lease, the stall watchdog, a signal, a program that could not be started.
"""

from __future__ import annotations

from collections.abc import Iterable

from swarm.agents import taxonomy
from swarm.agents.base import AgentResult
from swarm.agents.output import shorten
from swarm.agents.process import Launched
from swarm.agents.redaction import redact

NOT_STARTED = 127
"""proc.run's exit code when the program could not be started (as a shell's "command not found")."""


def settle(launched: Launched, parsed: AgentResult, secrets: Iterable[str] = ()) -> AgentResult:
    """The parsed result, overruled by how the process ended; fault and reason always filled in on failure."""
    ended = launched.ended
    if launched.stalled:
        _stalled(launched, parsed)
    elif ended.timed_out:
        # Still retrying a rate limit or an outage at the deadline: the vendor's fault, with its own outcome.
        taxonomy.fail(parsed, parsed.reason if parsed.vendor_fault and parsed.reason else taxonomy.TIMEOUT)
        parsed.message = f"{ended.describe()}; last words: {parsed.message}"
    elif ended.cancelled:
        taxonomy.fail(parsed, taxonomy.LEASE_LOST)
        parsed.message = "lease lost: " + ended.describe()
    elif ended.signalled:
        taxonomy.fail(parsed, taxonomy.CRASHED)
        parsed.message = f"{ended.describe()}: {parsed.message}"
    elif ended.returncode == NOT_STARTED and ended.duration < 1.0:
        taxonomy.fail(parsed, taxonomy.CLI_MISSING)
        parsed.message = f"could not start {ended.argv[0]}: {parsed.message}"
    elif parsed.outcome not in ("ok", "no_change") and parsed.reason is None:
        taxonomy.fail(parsed, taxonomy.UNKNOWN)  # an adapter that did not say why: reported as unknown
    if launched.egress and parsed.outcome not in ("ok", "no_change"):
        # Said first, so a shortened message keeps it: a CLI's own words rarely name the host it could not reach.
        parsed.message = f"egress proxy: {', '.join(launched.egress)}; {parsed.message}"
    parsed.exit_code = ended.returncode
    parsed.log_path = ended.log_path
    parsed.message = shorten(redact(parsed.message, secrets))
    return parsed


def _stalled(launched: Launched, parsed: AgentResult) -> None:
    """No progress in time: the vendor's fault before the agent started (or when it was only retrying), else the
    agent's (a hung tool, a silent loop)."""
    seconds = f"{launched.silent_for:.0f}s"
    if parsed.vendor_fault and parsed.reason:
        parsed.message = f"stopped after {seconds} without progress ({parsed.reason}): {parsed.message}"
        return
    if launched.stalled == "connect":
        taxonomy.fail(parsed, taxonomy.NETWORK)
        parsed.message = f"no answer from the vendor within {seconds} (connect timeout): {parsed.message}"
    else:
        taxonomy.fail(parsed, taxonomy.STALLED)
        parsed.message = f"the agent's output stopped for {seconds} (idle timeout): {parsed.message}"
