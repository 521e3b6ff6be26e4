"""The base of the vendor CLI adapters: one way to run a coding-agent CLI headless, fail fast, check and probe it.

Each vendor module (claude, codex, gemini) subclasses `CliAgent` with its argv, its environment, its logins and its
parser; everything else (an isolated config dir and temp dir, the shared login file, stderr apart from the JSON
stream, redaction, the stall watchdog, how the process ended, doctor's checks, the preflight and the probe) is here,
so the three adapters behave the same way where their CLIs do not differ.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from swarm.agents import logins, outcomes, taxonomy, versions
from swarm.agents.base import AgentResult, AgentRun, Check
from swarm.agents.logins import Login, LoginSpec
from swarm.agents.output import last_lines, read_text
from swarm.agents.process import Watch, launch
from swarm.agents.redaction import redact_file, secret_values
from swarm.environ import child_env

log = logging.getLogger(__name__)

PROMPT_ARG_LIMIT = 100_000
"""Bytes of prompt passed as an argument; Linux caps one argument at 128 KiB, so a longer prompt goes by file."""
DOCTOR_TIMEOUT = 30.0
PROBE_PROMPT = "Reply with the single word OK and do nothing else."


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
    max_retries: int = Field(1, ge=0, le=10)
    """API retries inside one run; the CLIs' defaults (5-10, with backoff) hide an outage for minutes."""
    connect_timeout: float | None = Field(120.0, gt=0)
    """Seconds the CLI may run before the agent's first real output (its own retry notices do not count); then
    it is stopped as a vendor network failure. None: no limit below the attempt timeout."""
    idle_timeout: float | None = Field(None, gt=0)
    """Seconds the agent's output may stay silent once it has started; then it is stopped as stalled. Long tool
    runs (a full build) are silent, so set it above the slowest one. None: no limit below the attempt timeout."""
    memory: bool = False
    """Keep the agent's own memory (claude's auto-memory, gemini's GEMINI.md) from task to task of a slot."""


class CliAgent:
    """A coding-agent CLI run headless in the worktree; subclasses give argv, environment, logins and parser."""

    Options: ClassVar[type[CliOptions]] = CliOptions
    cli: ClassVar[str] = ""
    """The CLI's name: default binary and the name of its config folder under the slot's home."""
    package: ClassVar[str] = ""
    """The npm package the CLI comes from, for the install hints."""
    checked_versions: ClassVar[tuple[str, str]] = ("", "")
    """The oldest and the newest CLI version this adapter was checked against (its flags in --help, its recorded
    runs); doctor warns outside them. .ci/run and the Dockerfile pin the newest."""
    logins: ClassVar[LoginSpec] = LoginSpec("")
    help_args: ClassVar[tuple[str, ...]] = ("--help",)
    hidden_flags: ClassVar[frozenset[str]] = frozenset()
    """Flags the CLI accepts without listing them in --help."""
    memory_files: ClassVar[tuple[str, ...]] = ()
    """Globs, under the slot's config folder, of the agent's memory: removed before each run unless `memory`."""
    session_files: ClassVar[tuple[str, ...]] = ()
    """Globs, under the slot's config folder, of a session's transcript (`{id}`: the session id)."""

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

    def progress(self, line: str) -> bool:
        """Whether a line of the CLI's stdout shows the agent at work (not a start-up or a retry notice)."""
        return bool(line.strip())

    def refusal(self) -> AgentResult | None:
        """A configuration this CLI is known to refuse, found without running it."""
        return None

    # --- shared ---

    def executable(self) -> str:
        return self.options.binary or self.cli

    def install_hint(self) -> str:
        return f"{self.package} (npm install -g {self.package}@{self.checked_versions[1]})"

    @property
    def api_key_env(self) -> str:
        return self.options.api_key_env or self.logins.key_var

    def flags(self) -> list[str]:
        """The flags argv uses with these options, for doctor's check against --help."""
        # With a session to resume: the resume flag, used only then, is checked too.
        dummy = AgentRun("t", 1, self.vendor, Path("p"), Path("w"), Path("l"), Path("h"), 1.0, {}, resume="SESSION")
        used = [a.split("=", 1)[0] for a in self.argv(dummy, "PROMPT") if a.startswith("-") and a != "--"]
        return [f for f in dict.fromkeys(used) if f not in self.hidden_flags and f not in self.options.extra_args]

    def swarm_env(self) -> dict[str, str]:
        """The swarm's variables this CLI may see or log in with: base, pass_env, its key, tokens, config dir."""
        spec = self.logins
        names = [self.api_key_env, *spec.token_vars, *([spec.config_dir_var] if spec.config_dir_var else [])]
        return {**child_env([*names, *self.options.pass_env]), **self.options.env}

    def login(self) -> Login | None:
        return logins.find(self.logins, self.api_key_env, self.swarm_env())

    def env(self, run: AgentRun, home: Path) -> dict[str, str]:
        """PATH, HOME, locale, the names in pass_env, run.env, this CLI's own variables and its login; no other key."""
        login = self.login()
        base = child_env(self.options.pass_env)
        return {**base, **run.env, **self.vendor_env(run, home), **self.options.env, **(login.env if login else {})}

    def home(self, run_home: Path) -> Path:
        """This CLI's config folder in the slot's home."""
        home = run_home / self.cli
        home.mkdir(parents=True, exist_ok=True)
        return home

    def preflight(self, home: Path) -> AgentResult | None:
        """Cheap and offline: the program is there, a login is there, the configuration is one the CLI accepts.
        `home` is the slot's home (AgentRun.home), where a login done in the slot itself also counts."""
        if shutil.which(self.executable(), path=child_env().get("PATH")) is None:
            result = AgentResult("failed", f"{self.executable()} not found on PATH: install {self.install_hint()}")
            return taxonomy.fail(result, taxonomy.CLI_MISSING)
        refused = self.refusal()
        if refused is not None:
            return refused
        if self.login() is None and not self._slot_login(home / self.cli):
            message = logins.missing(self.logins, self.api_key_env, self.vendor)
            return taxonomy.fail(AgentResult("auth_error", f"{self.cli}: {message}"), taxonomy.AUTH)
        return None

    def has_session(self, home: Path, session: str) -> bool:
        """Whether the slot's config folder holds the session's transcript (resuming one it lacks fails the run)."""
        folder = home / self.cli
        return any(next(folder.glob(p.format(id=session)), None) for p in self.session_files)

    def _slot_login(self, home: Path) -> bool:
        """A login done in the slot's own config folder (`CODEX_HOME=<slot> codex login`) counts too."""
        return bool(self.logins.credentials) and (home / self.logins.credentials).is_file()

    def run(self, run: AgentRun) -> AgentResult:
        early = self.preflight(run.home)
        if early is not None:
            run.log_path.parent.mkdir(parents=True, exist_ok=True)
            run.log_path.write_text(f"swarm: {early.message}\n")
            early.log_path = run.log_path
            return early
        home = self.home(run.home)
        login = self.login()
        if login is not None and login.shared_file is not None:
            logins.share(login.shared_file, home / self.logins.credentials)
        if not self.options.memory:
            self.forget(home)
        env = self.env(run, home)
        stderr_path = stderr_log(run.log_path)
        watch = Watch(self.progress, self.options.connect_timeout, self.options.idle_timeout)
        launched = launch(run, self.argv(run, prompt_text(run.prompt_file)), env, stderr_path=stderr_path,
                          watch=watch)  # fmt: skip
        secrets = secret_values(env)
        redact_file(run.log_path, secrets)
        redact_file(stderr_path, secrets)
        parsed = self.safe_parse(run.log_path, stderr_path, launched.ended.returncode)
        parsed.model_asked = self.options.model or None
        return outcomes.settle(launched, parsed, secrets)

    def forget(self, home: Path) -> None:
        """Remove the agent's memory of earlier tasks from the slot's config folder."""
        for pattern in self.memory_files:
            for path in home.glob(pattern):
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()

    def safe_parse(self, stdout: Path, stderr: Path, exit_code: int | None) -> AgentResult:
        """The parser's result; a parser bug becomes an unknown failure, never a dead worker."""
        try:
            return self.parse(stdout, stderr, exit_code)
        except Exception as exc:
            log.exception("could not parse the output of %s in %s", self.cli, stdout)
            result = AgentResult("failed", f"could not read {self.cli}'s output ({type(exc).__name__}: {exc})")
            return taxonomy.fail(result, taxonomy.UNKNOWN)

    def probe(self, home: Path, timeout: float = 60.0) -> AgentResult:
        """A trivial real run (one short prompt, no task) to tell whether a parked vendor works again; `home` is
        the slot's home, so the probe runs with the slot's own config folder and login."""
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"swarm-probe-{self.cli}-", dir=home) as tmp:
            work = Path(tmp, "work")
            work.mkdir()
            prompt = Path(tmp, "prompt.md")
            prompt.write_text(PROBE_PROMPT)
            run = AgentRun("probe", 0, self.vendor, prompt, work, Path(tmp, "probe.log"), home, timeout, {})
            result = self.run(run)
            log.info("probe of vendor %s: %s %s", self.vendor, result.outcome, result.reason or "")
            result.log_path = None  # the log is gone with the temp folder
            return result

    # --- doctor ---

    def check(self) -> list[Check]:
        """doctor's checks: CLI found, its version, the flags the adapter uses still listed, which login."""
        name = f"vendor {self.vendor}"
        path = shutil.which(self.executable(), path=child_env().get("PATH"))
        if path is None:
            hint = f"install {self.install_hint()} or set vendors.{self.vendor}.binary"
            return [(name, False, f"{self.executable()} not found on PATH: {hint}"), *self.extra_checks(),
                    self.login_check()]  # fmt: skip
        version = last_lines(self._info([path, "--version"]), 1) or "no version printed"
        checks: list[Check] = [(name, True, f"{path}, version {version}")]
        checks.append((f"{name} version", *versions.compare(version, self.checked_versions, self.cli, self.package)))
        help_text = self._info([path, *self.help_args])
        missing = [f for f in self.flags() if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", help_text)]
        detail = (
            f"{' '.join(self.help_args)} lists every flag the adapter uses"
            if not missing
            else f"{path} {' '.join(self.help_args)} does not list {', '.join(missing)}: this CLI version is not "
            f"the one the adapter was written for; pin the version the swarm supports"
        )
        return [*checks, (f"{name} flags", not missing, detail), *self.extra_checks(), self.login_check()]

    def extra_checks(self) -> list[Check]:
        return []

    def login_check(self) -> Check:
        """Which login the CLI will use; the methods it has when none is there."""
        login = self.login()
        name = f"vendor {self.vendor} login"
        if login is None:
            return (name, False, logins.missing(self.logins, self.api_key_env, self.vendor))
        return (name, True, f"{login.method}: {login.detail}")

    def _info(self, argv: list[str]) -> str:
        """Output of a quick informational run (--version, --help) of the CLI."""
        with tempfile.TemporaryDirectory(prefix="swarm-doctor-") as tmp:
            run = AgentRun("doctor", 0, "doctor", Path(tmp, "p"), Path(tmp), Path(tmp, "out.log"), Path(tmp),
                           DOCTOR_TIMEOUT, {})  # fmt: skip
            env = {**child_env(self.options.pass_env), **self.vendor_env(run, Path(tmp))}
            launch(run, argv, env)
            return read_text(run.log_path, 256 * 1024)


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


def is_root() -> bool:
    return os.geteuid() == 0
