"""The `gemini` adapter: Gemini CLI headless (`gemini -p`), read from its stream-json events and stderr."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from swarm.agents import output, ratelimits, taxonomy
from swarm.agents.base import AgentResult, AgentRun
from swarm.agents.cli_adapter import CliAgent, CliOptions
from swarm.agents.logins import LoginSpec
from swarm.agents.prices import Price, cost

log = logging.getLogger(__name__)

ApprovalMode = Literal["default", "auto_edit", "yolo", "plan"]
EXIT_AUTH, EXIT_TURN_LIMIT, EXIT_UNTRUSTED = 41, 53, 55
EXIT_REASONS = {
    EXIT_AUTH: taxonomy.AUTH,  # FatalAuthenticationError
    42: taxonomy.CLI_INCOMPATIBLE,  # FatalInputError: the adapter's input was refused
    44: taxonomy.REFUSED,  # FatalSandboxError
    52: taxonomy.CLI_INCOMPATIBLE,  # FatalConfigError
    EXIT_TURN_LIMIT: taxonomy.TURN_LIMIT,  # FatalTurnLimitedError: model.maxSessionTurns reached
    54: taxonomy.AGENT_ERROR,  # FatalToolExecutionError
    EXIT_UNTRUSTED: taxonomy.REFUSED,  # an untrusted folder
    130: taxonomy.CRASHED,  # FatalCancellationError: interrupted
}
_WORK = ("tool_use", "tool_result", "result")


class GeminiOptions(CliOptions):
    """Options of a `[vendors.<name>]` table with `adapter = "gemini"`."""

    approval_mode: ApprovalMode = "yolo"
    """--approval-mode; headless gemini refuses any tool call the mode does not approve."""
    max_turns: int | None = Field(None, ge=1)
    """model.maxSessionTurns in the slot's settings.json (the CLI has no flag for it); exit 53 when reached."""
    prices: dict[str, Price] = Field(default_factory=dict)
    """USD per million tokens by model name ("*" for any other model); gemini reports tokens, not cost."""


class GeminiAgent(CliAgent):
    """Runs `gemini -p PROMPT -o stream-json --skip-trust --approval-mode MODE` in the worktree."""

    Options = GeminiOptions
    cli = "gemini"
    package = "@google/gemini-cli"
    checked_versions = ("0.61.0", "0.61.0")
    logins = LoginSpec(
        key_var="GEMINI_API_KEY",
        cloud_vars=("GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_GCA"),
        config_dir_var="GEMINI_CLI_HOME",
        credentials=".gemini/oauth_creds.json",
    )
    memory_files = (".gemini/GEMINI.md",)
    """save_memory writes to the global GEMINI.md, which every later task of the slot would read."""
    session_files = (".gemini/tmp/*/chats/session-*-{short}.json",)
    options: GeminiOptions

    def has_session(self, home: Path, session: str) -> bool:
        """gemini names a transcript by its time and the id's first eight characters, per project folder."""
        folder = home / self.cli
        return any(next(folder.glob(p.format(short=session[:8])), None) for p in self.session_files)

    def argv(self, run: AgentRun, prompt: str) -> list[str]:
        o = self.options
        argv = [
            self.executable(),
            "-p",
            prompt,
            "-o",
            "stream-json",
            "--skip-trust",
            "--approval-mode",
            o.approval_mode,
        ]
        argv += ["-m", o.model] if o.model else []
        argv += ["--resume", run.resume] if run.resume else []  # sessions are kept per folder: the same workspace
        return argv + o.extra_args

    def vendor_env(self, run: AgentRun, home: Path) -> dict[str, str]:
        login = self.login()
        oauth = login is not None and login.method == "credentials file"
        write_settings(home / ".gemini" / "settings.json", self.options.max_turns, self.options.max_retries + 1, oauth)
        return {"GEMINI_CLI_HOME": str(home), "GEMINI_CLI_TRUST_WORKSPACE": "true"}

    def parse(self, stdout: Path, stderr: Path, exit_code: int | None) -> AgentResult:
        return parse(stdout, stderr, exit_code, self.options.prices, self.options.model)

    def progress(self, line: str) -> bool:
        """The init event and the echoed user prompt come before any answer; retries are on stderr."""
        try:
            event = json.loads(line)
        except ValueError:
            return False
        if not isinstance(event, dict):
            return False
        return event.get("type") in _WORK or (event.get("type") == "message" and event.get("role") == "assistant")


def write_settings(path: Path, max_turns: int | None, max_attempts: int = 2, oauth: bool = False) -> None:
    """The slot's settings.json: auto-update and usage statistics off, the turn limit, API attempts (the CLI's
    default of 10 hides an outage for minutes), the OAuth login when that is the method; other keys kept."""
    try:
        settings = json.loads(path.read_text())
    except (OSError, ValueError):
        settings = {}
    settings = settings if isinstance(settings, dict) else {}
    general = settings.setdefault("general", {})
    general.update(disableAutoUpdate=True, disableUpdateNag=True, maxAttempts=max_attempts)
    if oauth:
        settings.setdefault("security", {}).setdefault("auth", {})["selectedType"] = "oauth-personal"
    settings.setdefault("privacy", {})["usageStatisticsEnabled"] = False
    model = settings.setdefault("model", {})
    if max_turns:
        model["maxSessionTurns"] = max_turns
    else:
        model.pop("maxSessionTurns", None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2))


@dataclass
class _Stream:
    """What one run's stream-json said."""

    session_id: str | None = None
    model: str = ""
    reply: list[str] = field(default_factory=list)
    turns: int = 0
    result: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)
    in_reply: bool = False

    def take(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "init":
            self.session_id = event.get("session_id") or self.session_id
            self.model = str(event.get("model") or "")
        elif kind == "message" and event.get("role") == "assistant":
            self._assistant(str(event.get("content") or ""))
        elif kind in ("tool_use", "tool_result"):
            self.in_reply = False
        elif kind == "error":
            self.errors.append(str(event.get("message") or ""))
        elif kind == "result":
            self.result = event

    def _assistant(self, content: str) -> None:
        """The final message is the assistant text after the last tool call; each new reply is one turn."""
        if not self.in_reply:
            self.turns += 1
            self.reply = []
            self.in_reply = True
        self.reply.append(content)


def parse(
    stdout: Path, stderr: Path, exit_code: int | None, prices: Mapping[str, Price] | None = None, model: str = ""
) -> AgentResult:
    """Read a `gemini -o stream-json` run (stdout events, stderr text or JSON error) into an AgentResult."""
    stream = _Stream()
    for event in output.events(stdout):
        stream.take(event)
    result = AgentResult("ok", "".join(stream.reply).strip(), session_id=stream.session_id, turns=stream.turns)
    _usage(result, (stream.result or {}).get("stats"), prices or {}, model or stream.model)
    succeeded = stream.result is not None and stream.result.get("status") == "success"
    if not succeeded or exit_code != 0:
        _failed(result, stream, output.read_text(stderr), exit_code)
    return result


def _usage(result: AgentResult, stats: Any, prices: Mapping[str, Price], model: str) -> None:
    """Tokens of the result's stats; per-model stats (newer CLIs) are priced model by model."""
    if not isinstance(stats, dict):
        return
    per_model = stats.get("models") if isinstance(stats.get("models"), dict) else None
    if per_model:
        result.models = sorted(per_model)  # more than one: the CLI fell back to another model
        rows = [(name, m.get("tokens") or {}) for name, m in per_model.items() if isinstance(m, dict)]
        counts = [(n, t.get("prompt") or 0, t.get("cached") or 0, t.get("candidates") or 0) for n, t in rows]
    else:
        counts = [(model, stats.get("input_tokens") or 0, stats.get("cached") or 0, stats.get("output_tokens") or 0)]
    totals = [sum(int(c[i]) for c in counts) for i in (1, 2, 3)]
    output.usage_fields(result, *totals)
    costs = [cost(prices, n, int(i), int(c), int(o)) for n, i, c, o in counts]
    result.cost_usd = None if None in costs else sum(c or 0.0 for c in costs)


def _failed(result: AgentResult, stream: _Stream, stderr: str, exit_code: int | None) -> None:
    reason = _reason(stream, stderr)
    text = f"{reason}\n{stderr}"
    by_code = EXIT_REASONS.get(exit_code or 0)
    taxonomy.fail(result, by_code or taxonomy.classify(text) or taxonomy.UNKNOWN)
    if exit_code == EXIT_TURN_LIMIT:
        reason = f"gemini stopped at its turn limit (model.maxSessionTurns): {reason}"
    elif exit_code == EXIT_UNTRUSTED:
        reason = f"gemini refused the worktree as an untrusted folder: {reason}"
    result.message = f"gemini failed (exit code {exit_code}): {reason}"
    if result.reason == taxonomy.RATE_LIMIT:
        result.retry_after = ratelimits.retry_after(text)


def _reason(stream: _Stream, stderr: str) -> str:
    """The most precise error text: the result's error, the JSON error on stderr, an error event, stderr's end."""
    error = (stream.result or {}).get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    for obj in reversed(output.json_objects(stderr)):
        if isinstance(obj.get("error"), dict) and obj["error"].get("message"):
            return str(obj["error"]["message"])
    if stream.errors:
        return stream.errors[-1]
    if stream.result is None and not stderr.strip():
        return "the event stream ended without a result event (truncated, or not gemini stream-json output)"
    return output.last_lines(stderr) or "the event stream ended without a result event"
