"""The `claude` adapter: Claude Code headless (`claude -p`), read from its stream-json output."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from swarm.agents import output, ratelimits, taxonomy
from swarm.agents.base import AgentResult, AgentRun, Check
from swarm.agents.cli_adapter import CliAgent, CliOptions, is_root
from swarm.agents.logins import LoginSpec

log = logging.getLogger(__name__)

PermissionMode = Literal["acceptEdits", "auto", "bypassPermissions", "default", "dontAsk", "plan"]


class ClaudeOptions(CliOptions):
    """Options of a `[vendors.<name>]` table with `adapter = "claude"`."""

    permission_mode: PermissionMode = "bypassPermissions"
    """--permission-mode; bypassPermissions is refused as root unless env IS_SANDBOX=1 (a container)."""
    allowed_tools: list[str] = Field(default_factory=list)
    """--allowedTools, e.g. ["Bash(pytest *)", "Edit"], for a narrower mode such as acceptEdits."""
    max_turns: int | None = Field(None, ge=1)
    """--max-turns: stop the agent after this many turns."""
    max_budget_usd: float | None = Field(None, gt=0)
    """--max-budget-usd: stop the agent once one run has cost this much."""


class ClaudeAgent(CliAgent):
    """Runs `claude -p PROMPT --output-format stream-json --verbose` in the worktree."""

    Options = ClaudeOptions
    cli = "claude"
    package = "@anthropic-ai/claude-code"
    checked_versions = ("2.1.197", "2.1.332")
    """From 2.1.198 the package declares Node >=22, but it is a native binary: Node only runs its postinstall,
    which works on Node 20 (npm warns EBADENGINE); 2.1.332 was installed and run on Node 20."""
    logins = LoginSpec(
        key_var="ANTHROPIC_API_KEY",
        token_vars=("CLAUDE_CODE_OAUTH_TOKEN",),
        cloud_vars=("CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_BEDROCK"),
        config_dir_var="CLAUDE_CONFIG_DIR",
        default_dir=".claude",
        credentials=".credentials.json",
    )
    hidden_flags = frozenset({"--max-turns"})
    memory_files = ("projects/*/memory",)
    session_files = ("projects/*/{id}.jsonl",)
    """Auto-memory is keyed on the project path, which is the shared mirror for every worktree of a slot."""
    options: ClaudeOptions

    def argv(self, run: AgentRun, prompt: str) -> list[str]:
        o = self.options
        argv = [self.executable(), "-p", prompt, "--output-format", "stream-json", "--verbose"]
        argv += ["--permission-mode", o.permission_mode]
        argv += ["--resume", run.resume] if run.resume else []
        argv += ["--model", o.model] if o.model else []
        argv += ["--max-turns", str(o.max_turns)] if o.max_turns else []
        argv += ["--max-budget-usd", str(o.max_budget_usd)] if o.max_budget_usd else []
        argv += ["--allowedTools", *o.allowed_tools] if o.allowed_tools else []
        return argv + o.extra_args

    def refusal(self) -> AgentResult | None:
        """claude refuses bypassPermissions as root outside a declared sandbox: no use starting it."""
        if not self._refused_as_root():
            return None
        message = (
            "claude refuses --permission-mode bypassPermissions as root: run workers as another user, set "
            f'env = {{IS_SANDBOX = "1"}} in vendors.{self.vendor} inside a container, or use acceptEdits'
        )
        return taxonomy.fail(AgentResult("vendor_error", message), taxonomy.REFUSED)

    def _refused_as_root(self) -> bool:
        sandboxed = self.options.env.get("IS_SANDBOX") == "1"
        return is_root() and self.options.permission_mode == "bypassPermissions" and not sandboxed

    def extra_checks(self) -> list[Check]:
        """claude's refusal of bypassPermissions as root outside a declared sandbox."""
        if not is_root() or self.options.permission_mode != "bypassPermissions":
            return []
        refused = self.refusal()
        detail = refused.message if refused else "runs as root with IS_SANDBOX=1 (a container or VM)"
        return [(f"vendor {self.vendor} as root", refused is None, detail)]

    def progress(self, line: str) -> bool:
        """Start-up, retry and rate-limit notices come before any answer of the API: they are not progress."""
        event = _event(line)
        kind = event.get("type")
        if kind in (None, "rate_limit_event"):
            return False
        return not (kind == "system" and event.get("subtype") in ("init", "api_retry", "status"))

    def vendor_env(self, run: AgentRun, home: Path) -> dict[str, str]:
        env = {
            "CLAUDE_CONFIG_DIR": str(home),
            "CLAUDE_CODE_MAX_RETRIES": str(self.options.max_retries),
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
        if not self.options.memory:
            env["CLAUDE_CODE_DISABLE_AUTO_MEMORY"] = "1"
        return env

    def parse(self, stdout: Path, stderr: Path, exit_code: int | None) -> AgentResult:
        return parse(stdout, stderr, exit_code)


def _event(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass
class _Stream:
    """What one run's stream-json said, gathered event by event."""

    session_id: str | None = None
    result: dict[str, Any] | None = None
    last_text: str = ""
    errors: list[str] = field(default_factory=list)
    resets_at: float | None = None
    statuses: set[int] = field(default_factory=set)
    events: int = 0
    last_kind: str = ""
    models: list[str] = field(default_factory=list)
    """Models named by the init event and the assistant messages: what answered when no result event came."""

    def take(self, event: dict[str, Any]) -> None:
        self.events += 1
        self.session_id = event.get("session_id") or self.session_id
        kind = event.get("type")
        self._model(event.get("model") if kind == "system" else (event.get("message") or {}).get("model"))
        self.last_kind = "/".join(str(x) for x in (kind, event.get("subtype")) if x)
        if kind == "result":
            self.result = event
        elif kind == "assistant":
            self._assistant(event)
        elif kind == "rate_limit_event":
            self._rate_limit(event.get("rate_limit_info") or {})
        elif kind == "system" and event.get("subtype") == "api_retry":
            status = output.number(event.get("error_status"))
            self.statuses.update([status] if status else [])

    def _model(self, model: object) -> None:
        if isinstance(model, str) and model and not model.startswith("<") and model not in self.models:
            self.models.append(model)  # "<synthetic>": claude's own error message, not a model

    def _assistant(self, event: dict[str, Any]) -> None:
        if event.get("error"):
            self.errors.append(str(event["error"]))
        content = (event.get("message") or {}).get("content") or []
        texts = [c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text"]
        self.last_text = "\n".join(texts) or self.last_text

    def _rate_limit(self, info: dict[str, Any]) -> None:
        resets = output.number(info.get("resetsAt"))
        if info.get("status") == "rejected":
            self.errors.append("rate_limit")
            self.resets_at = ratelimits.epoch(resets) if resets else self.resets_at


def parse(stdout: Path, stderr: Path, exit_code: int | None) -> AgentResult:
    """Read a claude stream-json log (or a single --output-format json result) into an AgentResult."""
    stream = _Stream()
    for event in output.events(stdout):
        stream.take(event)
    if stream.result is None:
        return _no_result(stream, stdout, stderr, exit_code)
    res = stream.result
    result = AgentResult("ok", str(res.get("result") or stream.last_text))
    result.session_id = res.get("session_id") or stream.session_id
    result.turns = output.number(res.get("num_turns"))
    cost = res.get("total_cost_usd")
    result.cost_usd = float(cost) if isinstance(cost, int | float) else None
    _usage(result, res.get("usage") or {})
    model_usage = res.get("modelUsage")
    result.models = sorted(model_usage) if isinstance(model_usage, dict) and model_usage else stream.models or None
    if res.get("is_error") or res.get("subtype") != "success" or exit_code != 0:
        taxonomy.fail(result, _reason(stream, res, output.read_text(stderr)))
        result.message = _failure_message(res, exit_code)
        result.retry_after = _retry_after(stream, result)
    return result


def _usage(result: AgentResult, usage: dict[str, Any]) -> None:
    """Claude counts cache reads and cache writes apart from input; the swarm's input_tokens includes both."""
    fresh, read, written = (output.number(usage.get(k)) for k in
                            ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"))  # fmt: skip
    total = None if fresh is None else fresh + (read or 0) + (written or 0)
    output.usage_fields(result, total, read, output.number(usage.get("output_tokens")))


# The `error` of an assistant message, and the HTTP status of the API error, where they name the cause.
_ERROR_TYPES = {"authentication_failed": taxonomy.AUTH, "billing_error": taxonomy.BILLING,
                "rate_limit": taxonomy.RATE_LIMIT, "max_output_tokens": taxonomy.AGENT_ERROR}  # fmt: skip
_STATUS = {401: taxonomy.AUTH, 402: taxonomy.BILLING, 403: taxonomy.POLICY, 404: taxonomy.MODEL_NOT_FOUND,
           413: taxonomy.CONTEXT_TOO_LONG, 429: taxonomy.RATE_LIMIT, 500: taxonomy.OVERLOADED,
           502: taxonomy.OVERLOADED, 503: taxonomy.OVERLOADED, 504: taxonomy.OVERLOADED,
           529: taxonomy.OVERLOADED}  # fmt: skip
_SUBTYPES = {"error_max_turns": taxonomy.TURN_LIMIT, "error_max_budget_usd": taxonomy.BUDGET_LIMIT}


def _reason(stream: _Stream, res: dict[str, Any], stderr: str) -> str:
    """Why a run with a result event failed: its subtype, the API status, the error type, else its text."""
    subtype = str(res.get("subtype") or "")
    status = output.number(res.get("api_error_status"))
    typed = [_ERROR_TYPES[e] for e in stream.errors if e in _ERROR_TYPES]
    text = f"{res.get('result') or ''}\n{' '.join(map(str, res.get('errors') or []))}\n{stderr}"
    server = taxonomy.OVERLOADED if "server_error" in stream.errors else None
    known = _SUBTYPES.get(subtype) or _STATUS.get(status or 0) or (typed[0] if typed else None)
    return known or taxonomy.classify(text) or server or taxonomy.UNKNOWN


def _failure_message(res: dict[str, Any], exit_code: int | None) -> str:
    subtype = str(res.get("subtype") or "")
    if subtype == "error_max_turns":
        return f"claude stopped at its turn limit ({res.get('num_turns')} turns) before finishing"
    if subtype == "error_max_budget_usd":
        return f"claude stopped at its budget limit (${res.get('total_cost_usd')})"
    detail = res.get("result") or "; ".join(map(str, res.get("errors") or [])) or subtype
    return f"claude reported an error (exit code {exit_code}, {subtype}): {detail}"


def _retry_after(stream: _Stream, result: AgentResult) -> float | None:
    if result.reason != taxonomy.RATE_LIMIT:
        return None
    if stream.resets_at is not None:
        return max(0.0, stream.resets_at - time.time())
    return ratelimits.retry_after(result.message)


def _no_result(stream: _Stream, stdout: Path, stderr: Path, exit_code: int | None) -> AgentResult:
    """No result event: a crash, a truncated stream, or claude printing plain text (e.g. a flag error)."""
    err = output.read_text(stderr)
    raw = output.read_text(stdout)
    text = f"{stream.last_text}\n{err}\n{raw if not stream.events else ''}"
    why = "no output at all" if not raw.strip() else "no result event in the stream (truncated or not stream-json)"
    last = f"last event {stream.last_kind}" if stream.last_kind else output.last_lines(raw)
    tail = output.last_lines(err) or stream.last_text or last
    result = AgentResult("failed", f"claude ended with {why}, exit code {exit_code}: {tail}")
    retried = taxonomy.RATE_LIMIT if 429 in stream.statuses else taxonomy.OVERLOADED if stream.statuses else None
    typed = [_ERROR_TYPES[e] for e in stream.errors if e in _ERROR_TYPES]
    taxonomy.fail(result, (typed[0] if typed else None) or taxonomy.classify(text) or retried or taxonomy.UNKNOWN)
    result.session_id = stream.session_id
    result.models = stream.models or None
    result.retry_after = _retry_after(stream, result)
    return result
