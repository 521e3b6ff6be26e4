"""The `claude` adapter: Claude Code headless (`claude -p`), read from its stream-json output."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from swarm.agents import streams
from swarm.agents.base import AgentResult, AgentRun, Outcome
from swarm.agents.streams import Check, CliAgent, CliOptions

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
    max_retries: int = Field(2, ge=0, le=10)
    """CLAUDE_CODE_MAX_RETRIES: API retries inside one run (the CLI's default of 10 hides outages for minutes)."""


class ClaudeAgent(CliAgent):
    """Runs `claude -p PROMPT --output-format stream-json --verbose` in the worktree."""

    Options = ClaudeOptions
    cli = "claude"
    package = "@anthropic-ai/claude-code (npm install -g @anthropic-ai/claude-code)"
    key_var = "ANTHROPIC_API_KEY"
    hidden_flags = frozenset({"--max-turns"})
    options: ClaudeOptions

    def argv(self, run: AgentRun, prompt: str) -> list[str]:
        o = self.options
        argv = [self.executable(), "-p", prompt, "--output-format", "stream-json", "--verbose"]
        argv += ["--permission-mode", o.permission_mode]
        argv += ["--model", o.model] if o.model else []
        argv += ["--max-turns", str(o.max_turns)] if o.max_turns else []
        argv += ["--max-budget-usd", str(o.max_budget_usd)] if o.max_budget_usd else []
        argv += ["--allowedTools", *o.allowed_tools] if o.allowed_tools else []
        return argv + o.extra_args

    def check(self) -> list[Check]:
        """The shared checks, plus claude's refusal of bypassPermissions as root outside a declared sandbox."""
        checks = super().check()
        if os.geteuid() == 0 and self.options.permission_mode == "bypassPermissions":
            sandboxed = self.options.env.get("IS_SANDBOX") == "1"
            detail = (
                "runs as root with IS_SANDBOX=1 (a container or VM)"
                if sandboxed
                else "claude refuses --permission-mode bypassPermissions as root: run workers as another user, set "
                f'env = {{IS_SANDBOX = "1"}} in vendors.{self.vendor} inside a container, or use acceptEdits'
            )
            checks.insert(len(checks) - 1, (f"vendor {self.vendor} as root", sandboxed, detail))  # the key stays last
        return checks

    def vendor_env(self, run: AgentRun, home: Path) -> dict[str, str]:
        return {
            "CLAUDE_CONFIG_DIR": str(home),
            "CLAUDE_CODE_MAX_RETRIES": str(self.options.max_retries),
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }

    def parse(self, stdout: Path, stderr: Path, exit_code: int | None) -> AgentResult:
        return parse(stdout, stderr, exit_code)


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

    def take(self, event: dict[str, Any]) -> None:
        self.events += 1
        self.session_id = event.get("session_id") or self.session_id
        kind = event.get("type")
        self.last_kind = "/".join(str(x) for x in (kind, event.get("subtype")) if x)
        if kind == "result":
            self.result = event
        elif kind == "assistant":
            self._assistant(event)
        elif kind == "rate_limit_event":
            self._rate_limit(event.get("rate_limit_info") or {})
        elif kind == "system" and event.get("subtype") == "api_retry":
            status = streams.number(event.get("error_status"))
            self.statuses.update([status] if status else [])

    def _assistant(self, event: dict[str, Any]) -> None:
        if event.get("error"):
            self.errors.append(str(event["error"]))
        content = (event.get("message") or {}).get("content") or []
        texts = [c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text"]
        self.last_text = "\n".join(texts) or self.last_text

    def _rate_limit(self, info: dict[str, Any]) -> None:
        resets = streams.number(info.get("resetsAt"))
        if info.get("status") == "rejected":
            self.errors.append("rate_limit")
            self.resets_at = streams.epoch(resets) if resets else self.resets_at


def parse(stdout: Path, stderr: Path, exit_code: int | None) -> AgentResult:
    """Read a claude stream-json log (or a single --output-format json result) into an AgentResult."""
    stream = _Stream()
    for event in streams.events(stdout):
        stream.take(event)
    if stream.result is None:
        return _no_result(stream, stdout, stderr, exit_code)
    res = stream.result
    result = AgentResult("ok", str(res.get("result") or stream.last_text))
    result.session_id = res.get("session_id") or stream.session_id
    result.turns = streams.number(res.get("num_turns"))
    cost = res.get("total_cost_usd")
    result.cost_usd = float(cost) if isinstance(cost, int | float) else None
    _usage(result, res.get("usage") or {})
    if res.get("is_error") or res.get("subtype") != "success" or exit_code != 0:
        result.outcome = _failure(stream, res, streams.read_text(stderr))
        result.message = _failure_message(res, exit_code)
        result.retry_after = _retry_after(stream, result)
    return result


def _usage(result: AgentResult, usage: dict[str, Any]) -> None:
    """Claude counts cache reads and cache writes apart from input; the swarm's input_tokens includes both."""
    fresh, read, written = (streams.number(usage.get(k)) for k in
                            ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"))  # fmt: skip
    total = None if fresh is None else fresh + (read or 0) + (written or 0)
    streams.usage_fields(result, total, read, streams.number(usage.get("output_tokens")))


def _failure(stream: _Stream, res: dict[str, Any], stderr: str) -> Outcome:
    status = streams.number(res.get("api_error_status"))
    if status in (401, 403) or "authentication_failed" in stream.errors:
        return "auth_error"
    if status in (429, 529) or "rate_limit" in stream.errors:
        return "rate_limited"
    text = f"{res.get('result') or ''}\n{' '.join(map(str, res.get('errors') or []))}\n{stderr}"
    return streams.fail(text)


def _failure_message(res: dict[str, Any], exit_code: int | None) -> str:
    subtype = str(res.get("subtype") or "")
    if subtype == "error_max_turns":
        return f"claude stopped at its turn limit ({res.get('num_turns')} turns) before finishing"
    if subtype == "error_max_budget_usd":
        return f"claude stopped at its budget limit (${res.get('total_cost_usd')})"
    detail = res.get("result") or "; ".join(map(str, res.get("errors") or [])) or subtype
    return f"claude reported an error (exit code {exit_code}, {subtype}): {detail}"


def _retry_after(stream: _Stream, result: AgentResult) -> float | None:
    if result.outcome != "rate_limited":
        return None
    if stream.resets_at is not None:
        return max(0.0, stream.resets_at - time.time())
    return streams.retry_after(result.message)


def _no_result(stream: _Stream, stdout: Path, stderr: Path, exit_code: int | None) -> AgentResult:
    """No result event: a crash, a truncated stream, or claude printing plain text (e.g. a flag error)."""
    err = streams.read_text(stderr)
    raw = streams.read_text(stdout)
    text = f"{stream.last_text}\n{err}\n{raw if not stream.events else ''}"
    why = "no output at all" if not raw.strip() else "no result event in the stream (truncated or not stream-json)"
    last = f"last event {stream.last_kind}" if stream.last_kind else streams.last_lines(raw)
    tail = streams.last_lines(err) or stream.last_text or last
    outcome = streams.fail(text, "rate_limited" if stream.statuses & {429, 529} else "failed")
    result = AgentResult(outcome, f"claude ended with {why}, exit code {exit_code}: {tail}")
    result.session_id = stream.session_id
    result.retry_after = _retry_after(stream, result)
    return result
