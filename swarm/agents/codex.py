"""The `codex` adapter: OpenAI Codex headless (`codex exec --json`), read from its JSON-lines events."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from swarm.agents import output, ratelimits, taxonomy
from swarm.agents.base import AgentResult, AgentRun
from swarm.agents.cli_adapter import CliAgent, CliOptions
from swarm.agents.logins import LoginSpec
from swarm.agents.prices import Price, cost

log = logging.getLogger(__name__)

Sandbox = Literal["read-only", "workspace-write", "danger-full-access", "bypass"]
EXIT_USAGE = 2
PROVIDER = "swarm-openai"
"""The built-in `openai` provider cannot be overridden (codex refuses `model_providers.openai.*`), so its retry
limits are set on a copy of it; used with an API key only (a ChatGPT login needs the built-in provider)."""
_WORK = ("item.started", "item.updated", "item.completed", "turn.completed", "turn.failed")


class CodexOptions(CliOptions):
    """Options of a `[vendors.<name>]` table with `adapter = "codex"`."""

    sandbox: Sandbox = "workspace-write"
    """-s MODE; "bypass" is --dangerously-bypass-approvals-and-sandbox (only inside a container)."""
    reasoning_effort: str = ""
    """-c model_reasoning_effort=...; the CLI's default when empty."""
    prices: dict[str, Price] = Field(default_factory=dict)
    """USD per million tokens by model name ("*" for any other model); codex reports tokens, not cost."""


class CodexAgent(CliAgent):
    """Runs `codex exec --json -C WORKTREE --skip-git-repo-check ... -- PROMPT`."""

    Options = CodexOptions
    cli = "codex"
    package = "@openai/codex"
    checked_versions = ("0.169.0", "0.171.0")
    logins = LoginSpec(key_var="CODEX_API_KEY", config_dir_var="CODEX_HOME", default_dir=".codex",
                       credentials="auth.json")  # fmt: skip
    help_args = ("exec", "--help")
    session_files = ("sessions/**/rollout-*-{id}.jsonl",)
    options: CodexOptions

    def argv(self, run: AgentRun, prompt: str) -> list[str]:
        o = self.options
        argv = [self.executable(), "exec", "--json", "-C", str(run.worktree), "--skip-git-repo-check"]
        argv += ["--dangerously-bypass-approvals-and-sandbox"] if o.sandbox == "bypass" else ["-s", o.sandbox]
        argv += ["-m", o.model] if o.model else []
        argv += ["-c", f"model_reasoning_effort={o.reasoning_effort}"] if o.reasoning_effort else []
        login = self.login()
        argv += self.retry_config() if login is not None and login.method == "api key" else []
        resume = ["resume", run.resume] if run.resume else []  # `codex exec [OPTIONS] resume ID PROMPT`
        return [*argv, *o.extra_args, *resume, "--", prompt]

    def retry_config(self) -> list[str]:
        """Lower request and stream retries: `-c` overrides selecting a copy of the built-in OpenAI provider."""
        retries = self.options.max_retries
        provider = (f'{{name="OpenAI",base_url="https://api.openai.com/v1",wire_api="responses",'
                    f'env_key="{self.logins.key_var}",supports_websockets=false,'
                    f"request_max_retries={retries},stream_max_retries={retries}}}")  # fmt: skip
        return ["-c", f"model_provider={PROVIDER}", "-c", f"model_providers.{PROVIDER}={provider}"]

    def progress(self, line: str) -> bool:
        """Thread and turn starts and reconnect notices come before any answer: only items and turn ends count."""
        try:
            event = json.loads(line)
        except ValueError:
            return False
        if not isinstance(event, dict) or event.get("type") not in _WORK:
            return False
        return (event.get("item") or {}).get("type") != "error"

    def vendor_env(self, run: AgentRun, home: Path) -> dict[str, str]:
        return {"CODEX_HOME": str(home)}

    def parse(self, stdout: Path, stderr: Path, exit_code: int | None) -> AgentResult:
        return parse(stdout, stderr, exit_code, self.options.prices, self.options.model)


@dataclass
class _Stream:
    """What one run's events said."""

    thread_id: str | None = None
    message: str = ""
    turns: int = 0
    failure: str = ""
    last_error: str = ""
    model: str = ""
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    usage_seen: bool = False

    def take(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "thread.started":
            self.thread_id = event.get("thread_id") or self.thread_id
        elif kind == "turn.completed":
            self.turns += 1
            self._usage(event.get("usage"))
        elif kind == "turn.failed":
            self.failure = str((event.get("error") or {}).get("message") or "turn failed")
            self._usage(event.get("usage"))
        elif kind == "item.completed":
            item = event.get("item") or {}
            if item.get("type") == "agent_message":
                self.message = str(item.get("text") or "")
        elif kind == "error" and not str(event.get("message", "")).startswith("Reconnecting"):
            self.last_error = str(event.get("message") or "")  # reconnect notices are not fatal; others may be

    def _usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        self.usage_seen = True
        self.input_tokens += output.number(usage.get("input_tokens")) or 0
        self.cached_tokens += output.number(usage.get("cached_input_tokens")) or 0
        self.output_tokens += output.number(usage.get("output_tokens")) or 0


def parse(
    stdout: Path, stderr: Path, exit_code: int | None, prices: Mapping[str, Price] | None = None, model: str = ""
) -> AgentResult:
    """Read a `codex exec --json` log into an AgentResult; the cost comes from `prices` (codex reports none)."""
    stream = _Stream()
    for event in output.events(stdout):
        stream.take(event)
    result = AgentResult("ok", stream.message, session_id=stream.thread_id, turns=stream.turns)
    if stream.usage_seen:
        output.usage_fields(result, stream.input_tokens, stream.cached_tokens, stream.output_tokens)
        result.cost_usd = cost(prices or {}, model, stream.input_tokens, stream.cached_tokens,
                                       stream.output_tokens)  # fmt: skip
    if stream.failure or exit_code != 0 or not stream.turns:
        _failed(result, stream, output.read_text(stderr), exit_code)
    return result


def _failed(result: AgentResult, stream: _Stream, stderr: str, exit_code: int | None) -> None:
    reason = stream.failure or stream.last_error or output.last_lines(stderr)
    if not reason:
        reason = "the event stream ended before turn.completed (truncated, or not codex --json output)"
    text = f"{reason}\n{stderr}" if not stream.failure else reason
    usage = taxonomy.CLI_INCOMPATIBLE if exit_code == EXIT_USAGE else None  # clap's exit code for a bad flag
    taxonomy.fail(result, usage or taxonomy.classify(text) or taxonomy.UNKNOWN)
    result.message = f"codex failed (exit code {exit_code}): {reason}"
    if result.reason == taxonomy.RATE_LIMIT:
        result.retry_after = ratelimits.retry_after(reason)
