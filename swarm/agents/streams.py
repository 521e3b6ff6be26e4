"""What the vendor CLI adapters share: one way to run a CLI, lenient reading of its output, and hiding secrets.

Each vendor module (claude, codex, gemini) subclasses `CliAgent` with its argv, its environment and its parser;
everything else (isolated config dir, stderr apart from the JSON stream, redaction, timeout and signal outcomes,
`doctor` checks) is here, so the three adapters behave the same way where their CLIs do not differ.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from swarm import proc
from swarm.agents.base import AgentResult, AgentRun, Outcome
from swarm.environ import child_env

log = logging.getLogger(__name__)

REDACTED = "[REDACTED]"
PROMPT_ARG_LIMIT = 100_000
"""Bytes of prompt passed as an argument; Linux caps one argument at 128 KiB, so a longer prompt goes by file."""
PROBE_TIMEOUT = 30.0
MESSAGE_LIMIT = 600

# Names whose values are secrets wherever they appear; values of any *_KEY/*_TOKEN/... variable are also hidden.
SECRET_NAMES = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|REDIS_URL)$")
_TOKENS = re.compile(r"\b(sk-[A-Za-z0-9_-]{16,}|AIza[0-9A-Za-z_-]{30,}|gh[pousr]_[A-Za-z0-9]{30,})")
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)([^@\s]+)(@)")

Check = tuple[str, bool, str]


# --- secrets ---


def secret_values(env: Mapping[str, str]) -> list[str]:
    """Values of the secret-looking variables of an environment (long enough not to be ordinary words)."""
    return sorted({v for k, v in env.items() if SECRET_NAMES.search(k) and len(v) >= 8}, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Hide the given secret values, API-key-shaped tokens and passwords in URLs."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = _TOKENS.sub(REDACTED, text)
    return _URL_PASSWORD.sub(rf"\g<1>{REDACTED}\g<3>", text)


def redact_file(path: Path, secrets: Iterable[str] = ()) -> None:
    """Rewrite a log the CLI wrote itself, with its secrets hidden (left alone when there is nothing to hide)."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return
    clean = redact(text, secrets)
    if clean != text:
        path.write_text(clean)


# --- reading output ---


def events(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines log, one per line; lines that are not a JSON object are skipped."""
    if not path.is_file():
        return
    with open(path, "rb") as f:
        for raw in f:
            line = raw.decode("utf-8", errors="replace").strip()
            if not line.startswith("{"):
                continue
            try:
                value = json.loads(line)
            except ValueError:
                continue  # a truncated last line, or the CLI printed something odd
            if isinstance(value, dict):
                yield value


def json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object found in free text (gemini pretty-prints its fatal error amid other stderr lines)."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    start = text.find("{")
    while start != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        start = text.find("{", end)
    return found


def read_text(path: Path, max_bytes: int = 16 * 1024) -> str:
    """The end of a log, decoded leniently."""
    return proc.tail(path, max_bytes)


def last_lines(text: str, count: int = 3) -> str:
    """The last few non-blank lines of a text, for a failure message (stack-trace frames left out)."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("at ")]
    return " | ".join(lines[-count:])


def number(value: Any) -> int | None:
    """An int from a JSON value, or None when it is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def shorten(text: str, limit: int = MESSAGE_LIMIT) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- classifying failures ---

_AUTH = re.compile(
    r"not logged in|please run /login|invalid[ _-]?(x-)?api[ _-]?key|api key not valid|API_KEY_INVALID|"
    r"authentication[ _](failed|error)|\b401\b|unauthori[sz]ed|auth method|refresh token|sign in again|"
    r"incorrect api key|missing (environment variable|api key)",
    re.IGNORECASE,
)
_RATE = re.compile(
    r"\b429\b|\b529\b|rate[ _-]?limit|usage limit|too many requests|resource[ _]?exhausted|quota|overloaded|"
    r"exhausted your capacity",
    re.IGNORECASE,
)


def classify(text: str) -> Outcome | None:
    """auth_error or rate_limited when a failure's text says so; None for any other failure."""
    if _AUTH.search(text):
        return "auth_error"
    if _RATE.search(text):
        return "rate_limited"
    return None


def retry_after(text: str, now: float | None = None) -> float | None:
    """Seconds until the vendor says to try again, from the usual wordings; None when the text gives no time."""
    now = time.time() if now is None else now
    for parse in (_retry_in, _reset_after, _epoch_after_bar, _try_again_at, _resets_clock):
        seconds = parse(text, now)
        if seconds is not None:
            return max(0.0, seconds)
    return None


def _unit(name: str) -> float:
    name = name.lower()
    if name == "ms":
        return 0.001
    return {"s": 1.0, "m": 60.0, "h": 3600.0}[name[0]]


def _retry_in(text: str, now: float) -> float | None:
    m = re.search(r'"retryDelay"\s*:\s*"([\d.]+)(s)"', text)
    m = m or re.search(r"(?:retry|try again) (?:in|after) ([\d.]+)\s*(ms|s|secs?|seconds?|m|mins?|minutes?|h|hours?)\b",
                       text, re.IGNORECASE)  # fmt: skip
    return float(m.group(1)) * _unit(m.group(2)) if m else None


def _reset_after(text: str, now: float) -> float | None:
    m = re.search(r"reset (?:after|in) (?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text, re.IGNORECASE)
    if not m or not any(m.groups()):
        return None
    h, mi, s = (int(g or 0) for g in m.groups())
    return float(h * 3600 + mi * 60 + s)


def _epoch_after_bar(text: str, now: float) -> float | None:
    m = re.search(r"limit reached\|(\d{10,13})", text)  # claude's older "Claude AI usage limit reached|<epoch>"
    return epoch(int(m.group(1))) - now if m else None


def _try_again_at(text: str, now: float) -> float | None:
    m = re.search(r"try again at ([A-Za-z0-9 ,:]+?(?:[AP]M)\b)", text, re.IGNORECASE)
    if not m:
        return None
    when = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", m.group(1)).replace(",", " ")
    when = " ".join(when.split()).upper()
    local = datetime.fromtimestamp(now)
    for fmt in ("%b %d %Y %I:%M %p", "%B %d %Y %I:%M %p", "%I:%M %p", "%I %p"):
        try:
            parsed = datetime.strptime(when, fmt)
        except ValueError:
            continue
        if "%Y" not in fmt:  # a time of day only: today, or tomorrow if already past
            parsed = local.replace(hour=parsed.hour, minute=parsed.minute, second=0, microsecond=0)
            if parsed.timestamp() < now:
                parsed += timedelta(days=1)
        return parsed.timestamp() - now
    return None


def _resets_clock(text: str, now: float) -> float | None:
    m = re.search(r"resets (?:at )?(\d{1,2})(?::(\d\d))?\s*(am|pm)(?:\s*\(([\w/+-]+)\))?", text, re.IGNORECASE)
    if not m:
        return None
    try:
        zone = ZoneInfo(m.group(4)) if m.group(4) else None
    except (KeyError, ValueError):
        zone = None
    local = datetime.fromtimestamp(now, zone)
    hour = int(m.group(1)) % 12 + (12 if m.group(3).lower() == "pm" else 0)
    when = local.replace(hour=hour, minute=int(m.group(2) or 0), second=0, microsecond=0)
    if when.timestamp() < now:
        when += timedelta(days=1)
    return when.timestamp() - now


def epoch(value: float) -> float:
    """Unix seconds from a timestamp that may be in milliseconds."""
    return value / 1000 if value > 1e11 else float(value)


# --- prices ---


class Price(BaseModel):
    """USD per million tokens of one model."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    """Price of a million input tokens that were not read from the cache."""
    output: float = Field(ge=0)
    """Price of a million output tokens (reasoning included)."""
    cached: float | None = Field(None, ge=0)
    """Price of a million input tokens read from the cache; the input price when unset."""


def cost(prices: Mapping[str, Price], model: str, input_tokens: int, cached: int, output: int) -> float | None:
    """Cost in USD of a run; `input_tokens` includes the cached ones. None when the model has no price."""
    price = prices.get(model) or prices.get("*")
    if price is None:
        return None
    cached_price = price.input if price.cached is None else price.cached
    fresh = max(0, input_tokens - cached)
    return (fresh * price.input + cached * cached_price + output * price.output) / 1e6


# --- the adapter skeleton ---


class CliOptions(BaseModel):
    """Options every vendor CLI adapter has."""

    model_config = ConfigDict(extra="forbid")

    binary: str = ""
    """Program to run: a name looked up on PATH or an absolute path; the CLI's own name when unset."""
    model: str = ""
    """Model to ask the CLI for; the CLI's default when empty."""
    extra_args: list[str] = Field(default_factory=list)
    """More arguments, added after the adapter's own."""
    api_key_env: str = ""
    """Name of the swarm's environment variable holding this vendor's API key; the CLI's usual name when unset."""
    pass_env: list[str] = Field(default_factory=list)
    """Other variables of the swarm's environment the CLI may see (a proxy, Vertex settings); never other keys."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment variables for the CLI, set as given."""


class CliAgent:
    """A coding-agent CLI run headless in the worktree; subclasses give argv, environment and parser."""

    Options: ClassVar[type[CliOptions]] = CliOptions
    cli: ClassVar[str] = ""
    """The CLI's name: default binary and the name of its config folder under the slot's home."""
    package: ClassVar[str] = ""
    """Where the CLI comes from, for doctor's install hint."""
    key_var: ClassVar[str] = ""
    """The variable the CLI reads its API key from."""
    help_args: ClassVar[tuple[str, ...]] = ("--help",)
    hidden_flags: ClassVar[frozenset[str]] = frozenset()
    """Flags the CLI accepts without listing them in --help."""

    def __init__(self, vendor: str, options: CliOptions) -> None:
        self.vendor = vendor
        self.options = options

    # --- what subclasses give ---

    def argv(self, run: AgentRun, prompt: str) -> list[str]:
        raise NotImplementedError

    def vendor_env(self, run: AgentRun, home: Path) -> dict[str, str]:
        """Variables of this CLI: its config folder, retries, auto-update off."""
        return {}

    def parse(self, stdout: Path, stderr: Path, exit_code: int | None) -> AgentResult:
        raise NotImplementedError

    def preflight(self, env: Mapping[str, str], home: Path) -> AgentResult | None:
        """A result without running the CLI, when it could only hang (see codex)."""
        return None

    # --- shared ---

    def executable(self) -> str:
        return self.options.binary or self.cli

    @property
    def api_key_env(self) -> str:
        return self.options.api_key_env or self.key_var

    def flags(self) -> list[str]:
        """The flags argv uses with these options, for doctor's check against --help."""
        dummy = AgentRun("t", 1, self.vendor, Path("p"), Path("w"), Path("l"), Path("h"), 1.0, {})
        used = [a.split("=", 1)[0] for a in self.argv(dummy, "PROMPT") if a.startswith("-") and a != "--"]
        return [f for f in dict.fromkeys(used) if f not in self.hidden_flags and f not in self.options.extra_args]

    def env(self, run: AgentRun, home: Path) -> dict[str, str]:
        """PATH, HOME, locale, the names in pass_env, run.env, this CLI's own variables and its key; nothing else."""
        base = child_env([self.api_key_env, *self.options.pass_env])
        key = base.pop(self.api_key_env, None)
        env = {**base, **run.env, **self.vendor_env(run, home), **self.options.env}
        if key:
            env[self.key_var] = key
        return env

    def run(self, run: AgentRun) -> AgentResult:
        home = run.home / self.cli
        home.mkdir(parents=True, exist_ok=True)
        env = self.env(run, home)
        stderr_path = stderr_log(run.log_path)
        early = self.preflight(env, home)
        if early is not None:
            run.log_path.parent.mkdir(parents=True, exist_ok=True)
            run.log_path.write_text(f"swarm: {early.message}\n")
            early.log_path = run.log_path
            return early
        result = proc.run(
            self.argv(run, prompt_text(run.prompt_file)),
            cwd=run.worktree,
            env=env,
            timeout=run.timeout,
            log_path=run.log_path,
            stderr_path=stderr_path,
            cancel=run.cancel,
            on_start=run.on_start,
        )
        secrets = secret_values(env)
        redact_file(run.log_path, secrets)
        redact_file(stderr_path, secrets)
        return self.finish(result, self.safe_parse(run.log_path, stderr_path, result.returncode), secrets)

    def safe_parse(self, stdout: Path, stderr: Path, exit_code: int | None) -> AgentResult:
        """The parser's result; a parser bug becomes a failed attempt, never a dead worker."""
        try:
            return self.parse(stdout, stderr, exit_code)
        except Exception as exc:
            log.exception("could not parse the output of %s in %s", self.cli, stdout)
            return AgentResult("failed", f"could not read {self.cli}'s output ({type(exc).__name__}: {exc})")

    def finish(self, ended: proc.ProcResult, parsed: AgentResult, secrets: list[str]) -> AgentResult:
        """The parsed result, overruled by how the process ended (timeout, lease lost, signal)."""
        if ended.timed_out:
            parsed.outcome, parsed.message = "timeout", f"{ended.describe()}; last words: {parsed.message}"
        elif ended.cancelled:
            parsed.outcome, parsed.message = "failed", "lease lost: " + ended.describe()
        elif ended.signalled:
            parsed.outcome, parsed.message = "crashed", f"{ended.describe()}: {parsed.message}"
        parsed.exit_code = ended.returncode
        parsed.log_path = ended.log_path
        parsed.message = shorten(redact(parsed.message, secrets))
        return parsed

    # --- doctor ---

    def check(self) -> list[Check]:
        """doctor's checks: CLI found, its version, the flags the adapter uses still listed, an API key present."""
        name = f"vendor {self.vendor}"
        path = shutil.which(self.executable(), path=child_env().get("PATH"))
        if path is None:
            hint = f"install {self.package} or set vendors.{self.vendor}.binary"
            return [(name, False, f"{self.executable()} not found on PATH: {hint}"), self._key_check(name)]
        version = last_lines(self._probe([path, "--version"]), 1) or "no version printed"
        checks = [(name, True, f"{path}, version {version}")]
        help_text = self._probe([path, *self.help_args])
        missing = [f for f in self.flags() if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", help_text)]
        detail = (
            f"{' '.join(self.help_args)} lists every flag the adapter uses"
            if not missing
            else f"{path} {' '.join(self.help_args)} does not list {', '.join(missing)}: this CLI version is not "
            f"the one the adapter was written for; pin the version the swarm supports"
        )
        return [*checks, (f"{name} flags", not missing, detail), self._key_check(name)]

    def _key_check(self, name: str) -> Check:
        if child_env([self.api_key_env]).get(self.api_key_env):
            return (f"{name} api key", True, f"{self.api_key_env} is set")
        where = f"export it where the workers run, or name another variable in vendors.{self.vendor}.api_key_env"
        return (f"{name} api key", False, f"{self.api_key_env} is not set: {where}")

    def _probe(self, argv: list[str]) -> str:
        """Output of a quick informational run (--version, --help) of the CLI."""
        with tempfile.TemporaryDirectory(prefix="swarm-doctor-") as tmp:
            out = Path(tmp, "out.log")
            env = {**child_env(self.options.pass_env), **self.vendor_env(_probe_run(Path(tmp)), Path(tmp))}
            proc.run(argv, cwd=Path(tmp), env=env, timeout=PROBE_TIMEOUT, log_path=out)
            return read_text(out, 256 * 1024)


def _probe_run(tmp: Path) -> AgentRun:
    return AgentRun("doctor", 0, "doctor", tmp / "p", tmp, tmp / "l", tmp, PROBE_TIMEOUT, {})


def stderr_log(log_path: Path) -> Path:
    """Where the CLI's stderr goes, next to its stdout log (agent.log -> agent.stderr.log)."""
    return log_path.with_name(f"{log_path.stem}.stderr{log_path.suffix or '.log'}")


def prompt_text(prompt_file: Path) -> str:
    """The prompt as an argument; a prompt too long for one argument is replaced by a pointer to its file."""
    text = prompt_file.read_text(errors="replace")
    if len(text.encode()) > PROMPT_ARG_LIMIT:
        text = f"Your full instructions are in the file {prompt_file}. Read all of it first, then do what it says."
    if text.startswith("-"):
        text = "\n" + text  # never let a prompt be read as a flag
    return text


def fail(text: str, default: Outcome = "failed") -> Outcome:
    """The outcome of a failure from its text: auth_error, rate_limited, else `default`."""
    return classify(text) or default


def usage_fields(result: AgentResult, input_tokens: int | None, cached: int | None, output: int | None) -> None:
    result.input_tokens, result.cached_tokens, result.output_tokens = input_tokens, cached, output
