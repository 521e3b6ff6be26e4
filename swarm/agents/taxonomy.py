"""Whose fault a failed run was: each known failure of the agent CLIs named by a precise reason.

A reason is task-level (the agent ran and failed at the work: the task may be tried again, and it counts), or
vendor-level (the CLI, the account or the API could not run it: the vendor is parked or cooled down, and the task is
never charged for it). Errors that no rule recognises are reported as `unknown`, never guessed.
"""

from __future__ import annotations

import re
from typing import Final

from swarm.agents.base import AgentResult, Fault, Outcome

# --- vendor-level: the vendor waits until it works again ---
AUTH: Final = "auth"
"""No or bad credentials: not logged in, invalid key, expired or revoked OAuth token."""
BILLING: Final = "billing"
"""Credit balance too low, quota of a paid plan used up, payment missing."""
POLICY: Final = "policy"
"""Organisation disabled, access disabled by policy, account on hold, permission denied."""
MODEL_NOT_FOUND: Final = "model_not_found"
CLI_TOO_OLD: Final = "cli_too_old"
"""The vendor no longer serves this CLI version."""
CLI_MISSING: Final = "cli_missing"
CLI_INCOMPATIBLE: Final = "cli_incompatible"
"""The CLI rejected the adapter's flags or its config: another version than the adapter was written for."""
REFUSED: Final = "refused"
"""The CLI refuses to run as configured (bypassPermissions as root, an untrusted folder, no sandbox)."""
RATE_LIMIT: Final = "rate_limit"
OVERLOADED: Final = "overloaded"
NETWORK: Final = "network"
"""The API cannot be reached (DNS, connection refused, TLS, no answer before the connect timeout)."""

# --- task-level: the agent ran and did not finish the work ---
AGENT_ERROR: Final = "agent_error"
TURN_LIMIT: Final = "turn_limit"
BUDGET_LIMIT: Final = "budget_limit"
CONTEXT_TOO_LONG: Final = "context_too_long"
TIMEOUT: Final = "timeout"
STALLED: Final = "stalled"
"""The agent's stream fell silent for longer than the idle timeout after it had started working."""
LEASE_LOST: Final = "lease_lost"

# --- neither known ---
UNKNOWN: Final = "unknown"
CRASHED: Final = "crashed"

TRANSIENT = frozenset({RATE_LIMIT, OVERLOADED, NETWORK})
"""Vendor reasons that pass on their own: the vendor cools down (backoff) instead of being parked."""
VENDOR = frozenset(
    {AUTH, BILLING, POLICY, MODEL_NOT_FOUND, CLI_TOO_OLD, CLI_MISSING, CLI_INCOMPATIBLE, REFUSED, *TRANSIENT}
)
TASK = frozenset({AGENT_ERROR, TURN_LIMIT, BUDGET_LIMIT, CONTEXT_TOO_LONG, TIMEOUT, STALLED, LEASE_LOST})
REASONS = VENDOR | TASK | {UNKNOWN, CRASHED}

_OUTCOME: dict[str, Outcome] = {AUTH: "auth_error", RATE_LIMIT: "rate_limited", OVERLOADED: "rate_limited",
                                TIMEOUT: "timeout", CRASHED: "crashed"}  # fmt: skip

# Most specific first: "exceeded your current quota ... billing" is billing, not a rate limit.
_RULES: list[tuple[str, re.Pattern[str]]] = [
    (
        CLI_INCOMPATIBLE,
        re.compile(
            r"requires --verbose|unknown option|unexpected argument|unrecognized (option|argument|arguments)|"
            r"Unknown arguments?:|invalid value for '--|error parsing config|Invalid configuration",
            re.I,
        ),
    ),
    (
        REFUSED,
        re.compile(
            r"cannot be used with root/sudo privileges|untrusted (folder|workspace|directory)|"
            r"refus\w* to run|sandbox (is )?(required|not available|unavailable)",
            re.I,
        ),
    ),
    (
        CLI_TOO_OLD,
        re.compile(
            r"out of date|version (is )?(too old|no longer supported)|minimum (required )?version|"
            r"(please )?(update|upgrade) (to the latest|claude|codex|gemini|your cli)|needs? (an )?update",
            re.I,
        ),
    ),
    (
        MODEL_NOT_FOUND,
        re.compile(
            r"issue with the selected model|model[^\n]{0,80}(not found|does not exist|not supported|not available)|"
            r"not_found_error|model_not_found|Requested entity was not found|unknown model|invalid model",
            re.I,
        ),
    ),
    (
        CONTEXT_TOO_LONG,
        re.compile(
            r"prompt is too long|context (window|length) (exceeded|is exceeded)|conversation too long|"
            r"maximum context length|input token count[^\n]{0,40}exceeds",
            re.I,
        ),
    ),
    (  # limits that reset: before billing, whose words ("quota", "credits") they share
        RATE_LIMIT,
        re.compile(
            r"usage limit|session limit|weekly limit|RESOURCE_EXHAUSTED|retryDelay|rate[ _-]?limit (reached|exceeded)|"
            r"rate_limit_error|try again (in|at) |retry in \d",
            re.I,
        ),
    ),
    (
        BILLING,
        re.compile(
            r"credit balance|insufficient_quota|billing|add funds|payment (required|method)|"
            r"purchase (more )?credits|usage credits required",
            re.I,
        ),
    ),
    (
        POLICY,
        re.compile(
            r"organi[sz]ation (has been|is) disabled|disabled by your organi[sz]ation|organi[sz]ation's policy|"
            r"organi[sz]ation has disabled|account (is |has been )?(on hold|suspended|disabled|banned)|"
            r"permission_error|PERMISSION_DENIED|usage polic(y|ies)|terms of service|not allowed for this organi",
            re.I,
        ),
    ),
    (
        AUTH,
        re.compile(
            r"not logged in|please run /login|invalid[ _-]?(x-)?api[ _-]?key|api key not valid|API_KEY_INVALID|"
            r"authentication[ _](failed|error)|\b401\b|unauthori[sz]ed|auth method|refresh token|sign in again|"
            r"incorrect api key|missing (environment variable|api key)|oauth token (revoked|has expired|expired)|"
            r"does not meet scope requirement|log ?in again|token (is )?(expired|revoked)",
            re.I,
        ),
    ),
    (
        RATE_LIMIT,
        re.compile(
            r"\b429\b|rate[ _-]?limit|usage limit|session limit|weekly limit|too many requests|"
            r"resource[ _]?exhausted|quota|exhausted your capacity|limiting requests",
            re.I,
        ),
    ),
    (
        OVERLOADED,
        re.compile(
            r"\b529\b|overloaded|\b50[0234]\b|internal server error|service unavailable|UNAVAILABLE|high demand|"
            r"server_error|api_error",
            re.I,
        ),
    ),
    (
        NETWORK,
        re.compile(
            r"unable to connect|FailedToOpenSocket|connection (refused|failed|reset|error|closed)|ECONNREFUSED|"
            r"ECONNRESET|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ENETUNREACH|fetch failed|failed to lookup address|"
            r"name does not resolve|waiting for network|network (error|is unreachable|unreachable)|"
            r"SSL certificate|certificate verify|request timed out|stream disconnected|could not resolve host",
            re.I,
        ),
    ),
]


def classify(text: str) -> str | None:
    """The reason a failure's text names, or None when no rule knows it."""
    for reason, pattern in _RULES:
        if pattern.search(text):
            return reason
    return None


def fault_of(reason: str) -> Fault:
    if reason in VENDOR:
        return "vendor"
    return "task" if reason in TASK else "unknown"


def outcome_of(reason: str) -> Outcome:
    """The coarse outcome string the pipeline has always read, for a reason."""
    if reason in _OUTCOME:
        return _OUTCOME[reason]
    return "vendor_error" if reason in VENDOR else "failed"


def fail(result: AgentResult, reason: str) -> AgentResult:
    """Mark a result failed for `reason`: outcome, fault and reason set together, never one without the others."""
    if reason not in REASONS:
        raise ValueError(f"unknown failure reason {reason!r} (known: {', '.join(sorted(REASONS))})")
    result.outcome, result.fault, result.reason = outcome_of(reason), fault_of(reason), reason
    return result


def fail_text(result: AgentResult, text: str, default: str = UNKNOWN) -> AgentResult:
    """Mark a result failed for the reason its error text names, else `default` (unknown unless said)."""
    return fail(result, classify(text) or default)
