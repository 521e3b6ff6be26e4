"""The one place that reads configuration: deployment `Settings` and the target repository's `.swarm.toml`.

Deployment settings come from, highest first: keyword arguments, `SWARM_*` environment variables, `.env`,
and `swarm.toml` in the current directory (or the file named by `SWARM_CONFIG`). Repository settings live in
the target repository itself and are always read from `main`, so an agent cannot change its own oracle.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from swarm import egress
from swarm.errors import SettingsError
from swarm.redact import redact

log = logging.getLogger(__name__)

VENDOR_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_config_file: ContextVar[Path | None] = ContextVar("swarm_config_file", default=None)


class VendorSettings(BaseModel):
    """One `[vendors.<name>]` table: which adapter runs the agent, how many slots, and the adapter's options."""

    model_config = ConfigDict(extra="allow")

    adapter: str
    """Name of the agent adapter: claude, codex, gemini or command."""
    concurrency: int | None = Field(None, ge=1, le=1000)
    """Optional cap on attempts of this vendor at once across all machines (not counting those riding the merge
    train with their slot given back); capacity comes from live worker slots."""
    timeout: float | None = Field(None, gt=0)
    """Wall-clock limit of one agent run in seconds; the deployment's `agent_timeout` when unset."""
    daily_cap_usd: float | None = Field(None, gt=0)
    """Hard spend cap per UTC day in USD; no new attempts for this vendor once reached."""
    network: Literal["none", "proxy", "host"] | None = None
    """What the agent's sandbox reaches: none (its own loopback), proxy (`allow_hosts` through the egress proxy) or
    host (the host's network and every local service: unsafe); unset: proxy for the vendor CLIs, none otherwise."""
    allow_hosts: list[str] | None = None
    """host:port destinations (`*` matches within a name) a `proxy` sandbox may reach; unset: the adapter's own."""
    sandbox_ro: list[Path] = Field(default_factory=list)
    """Extra files and folders the agent's sandbox sees read-only (its own tools, reference material)."""
    sandbox_rw: list[Path] = Field(default_factory=list)
    """Extra folders the agent's sandbox may write (shared with the agent on purpose; never the swarm's workdir)."""
    resume: bool = True
    """Keep a cut attempt's work (timeout, lost lease, vendor failure) for this vendor's next attempt to resume."""

    @field_validator("network", mode="before")
    @classmethod
    def _network(cls, value: object) -> object:
        # The earlier boolean: true shared the host's network, false cut it.
        return {True: "host", False: "none"}.get(value, value) if isinstance(value, bool) else value

    @field_validator("allow_hosts")
    @classmethod
    def _allow_hosts(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else egress.check_entries(value)

    def options(self) -> dict[str, Any]:
        """The adapter's own options: every key of the table besides the common ones."""
        return dict(self.model_extra or {})


class Settings(BaseSettings):
    """Deployment settings of a swarm: where Redis and origin are, which vendors run, and the time limits."""

    model_config = SettingsConfigDict(
        env_prefix="SWARM_",
        env_nested_delimiter="__",
        env_file=".env",
        dotenv_filtering="match_prefix",  # .env also holds agents' API keys: only SWARM_* are settings
        extra="forbid",
        validate_default=True,
    )

    redis_url: str | None = None
    """Redis used as broker, result backend and coordination store; unset means an embedded one (`swarm up`)."""
    origin: str | None = None
    """URL or path of the origin repository the swarm lands on."""
    workdir: Path = Path(".swarm")
    """Per-host folder for the mirror, worktrees, agent logs and caches."""
    branch: str = "main"
    """The branch that is always green."""
    vendors: dict[str, VendorSettings] = Field(default_factory=dict)
    """Agent vendors by name; each name is also the Celery queue its workers consume."""
    unsafe_no_sandbox: bool = False
    """Run agents, builds and oracles WITHOUT a sandbox (SWARM_UNSAFE_NO_SANDBOX=true): only where bubblewrap
    cannot run, and never against agents you do not trust; workers refuse to start without a sandbox otherwise."""
    judge_secret: str | None = None
    """Seed of the judge's unseen case variants; unset: one made at random and kept in Redis for the swarm."""
    lease_ttl: float = Field(30.0, gt=0, le=3600)
    """Seconds a lease lives without a heartbeat; a crashed worker's task is free again after this."""
    agent_timeout: float = Field(3600.0, gt=0)
    """Default wall-clock limit of one agent run, in seconds."""
    oracle_timeout: float = Field(1800.0, gt=0)
    """Upper bound on one oracle run, in seconds (the repository may ask for less)."""
    max_attempts: int = Field(3, ge=1, le=100)
    """Attempts of a task before it is marked failed."""
    land_retries: int = Field(3, ge=0, le=20)
    """Rebase-and-retest rounds after a lost compare-and-swap on origin before the attempt gives up."""
    train_window: int = Field(8, ge=0, le=64)
    """Candidates the merge train tests at once, each on main + those ahead (0: one at a time, under the merge lock)."""
    train_batch: Literal["speculate", "batch", "auto"] = "auto"
    """How the train spends oracle CPU. speculate: every candidate in the window runs its full oracle at once, on
    main + those ahead. batch: one run at a time, by the last candidate in the window, on a tree holding all of them;
    green, they land together as one merge commit whose first parent is the old main (a red batch is bisected).
    auto: batch when the window's full oracles, run at once, would need more than a machine's cores (each at the
    share of its machine the last full runs wanted; nothing measured yet, by the load average), speculate
    otherwise. The whole train follows one answer at a time, decided by the first worker to ask once the last one
    is 5 s old (train.py)."""
    free_slot_in_train: bool = True
    """A worker slot takes the next agent run as soon as its candidate joins the merge train: the worker grows
    its pool by one process while the candidate rides (up to twice the window in the train). false: one pool
    process per attempt, held until it lands or fails."""
    fast_tier: Literal["auto", "always"] = "auto"
    """auto: a candidate skips the fast tier when the merge train has room, so its full tier starts at once (the
    full tier judges everything the fast one does); always: every candidate passes the fast tier first."""
    dispatch_interval: float = Field(15.0, gt=0)
    """Seconds between periodic dispatch runs (beat); dispatch also runs after every attempt."""
    reap_interval: float | None = Field(None, gt=0)
    """Seconds between reaper runs (beat); a third of `lease_ttl` when unset."""
    control_queue: str = "merge"
    """Queue of the control tasks (dispatch, reap); every worker also consumes it."""
    coalesce_every: int = Field(0, ge=0)
    """After every N landed tasks, queue a clean-up pass with the repository's coalesce prompt (0: only by hand)."""
    cooling_move_after: float = Field(300.0, ge=0)
    """Seconds a task naming no vendor may wait queued on a cooling or blocked vendor before it moves elsewhere."""
    only_tasks: list[str] = Field(default_factory=list)
    """Globs of the task ids this swarm dispatches (all tasks when empty): run a slice of a big backlog."""
    keep_worktrees: bool = False
    """Leave worktrees of finished attempts on disk, for debugging."""
    git_timeout: float = Field(120.0, gt=0)
    """Seconds any one git command (fetch, push, worktree...) may take before it is killed and the step fails."""

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(redis|rediss|unix)://", value):
            raise ValueError(
                f"{redact(repr(value))} is not a Redis URL (redis://host:port/db, rediss://..., unix://path)"
            )
        return value

    @field_validator("vendors")
    @classmethod
    def _vendors(cls, value: dict[str, VendorSettings]) -> dict[str, VendorSettings]:
        # Imported here: the registry imports the adapters, which import swarm.environ, which imports this module.
        from swarm.agents import registry

        for name, vendor in value.items():
            if not VENDOR_NAME.match(name):
                raise ValueError(f"vendor name {name!r}: names match [a-z0-9][a-z0-9_-]* (they are queue names)")
            registry.validate_options(name, vendor.adapter, vendor.options())
        return value

    @field_validator("control_queue")
    @classmethod
    def _control_queue(cls, value: str, info: ValidationInfo) -> str:
        if not VENDOR_NAME.match(value):
            raise ValueError(f"{value!r} is not a queue name: names match [a-z0-9][a-z0-9_-]*")
        if value in (info.data.get("vendors") or {}):
            raise ValueError(f"{value!r} is also a vendor's name; vendors and the control queue need their own queues")
        return value

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9._][A-Za-z0-9._/-]*$", value) or ".." in value or value.endswith((".", "/")):
            raise ValueError(f"{value!r} is not a branch name")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file())
        return (init_settings, env_settings, dotenv_settings, toml)

    @property
    def reap_every(self) -> float:
        return self.reap_interval or max(self.lease_ttl / 3, 0.5)

    @property
    def attempt_time_limit(self) -> float:
        """Hard limit of one Celery attempt: two agent passes plus an oracle per landing round, with margin."""
        agent = max([self.agent_timeout, *(v.timeout or 0 for v in self.vendors.values())])
        return 2 * agent + (3 + self.land_retries + 2 * self.train_window) * self.oracle_timeout + 300

    def require(self, *names: str) -> None:
        """Stop with the setting's name when a setting this command needs is unset."""
        for name in names:
            if getattr(self, name) in (None, "", {}):
                env = f"SWARM_{name.upper()}"
                raise SettingsError(f"setting {name!r} is not set: put `{name} = ...` in {config_file()} or set {env}")


_process_config: Path | None = None


def use_config(path: Path | None) -> None:
    """Make `path` this process's config file (the CLI's --config), for every later load_settings()."""
    global _process_config
    _process_config = path


def config_file() -> Path:
    """The config file: given to load_settings or use_config, else $SWARM_CONFIG, else ./swarm.toml."""
    chosen = _config_file.get() or _process_config
    if chosen is not None:
        return chosen
    return Path(os.environ.get("SWARM_CONFIG") or "swarm.toml")


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Load and validate the deployment settings; any problem raises SettingsError naming the setting."""
    token = _config_file.set(config)
    try:
        path = config_file()
        if os.environ.get("SWARM_CONFIG") and not path.is_file() and config is None and _process_config is None:
            raise SettingsError(f"SWARM_CONFIG names {path}, which is not a file")
        if (config or _process_config) is not None and not path.is_file():
            raise SettingsError(f"config file {path} does not exist")
        _check_names()
        try:
            settings = Settings(**overrides)
            recorded = recorded_redis_url(path) if settings.redis_url is None and "redis_url" not in overrides else None
            return Settings(**{**overrides, "redis_url": recorded}) if recorded else settings
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: not valid TOML: {exc}") from None
        except ValidationError as exc:
            raise SettingsError(explain(exc, source=str(path), env_prefix="SWARM_")) from None
    finally:
        _config_file.reset(token)


REDIS_URL_FILE = Path(".swarm") / "redis.url"
"""Beside swarm.toml: the URL of the embedded Redis of a running `swarm up`/`swarm demo`, for commands run there."""


def recorded_redis_url(config: Path) -> str | None:
    """The embedded Redis URL recorded beside `config`, used when redis_url is not set."""
    try:
        url = (config.resolve().parent / REDIS_URL_FILE).read_text().strip()
    except OSError:
        return None
    return url or None


def record_redis_url(config: Path, url: str | None) -> Path:
    """Record (or, with None, forget) the embedded Redis URL beside `config`; returns the file's path."""
    path = config.resolve().parent / REDIS_URL_FILE
    if url is None:
        path.unlink(missing_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(url + "\n")
    return path


def _check_names() -> None:
    """A misspelled SWARM_* variable (environment or .env) is an error, not silently ignored."""
    from dotenv import dotenv_values

    known = {f"SWARM_{name.upper()}" for name in Settings.model_fields} | {"SWARM_CONFIG"}
    sources: list[tuple[str, list[str]]] = [("the environment", list(os.environ))]
    if Path(".env").is_file():
        sources.append((".env", [k for k in dotenv_values(".env") if k]))
    for where, names in sources:
        for name in names:
            if name.startswith("SWARM_") and name.split("__")[0] not in known:
                hint = difflib.get_close_matches(name.split("__")[0], known, n=1)
                maybe = f"; did you mean {hint[0]}?" if hint else ""
                raise SettingsError(f"{name} in {where} is not a swarm setting{maybe}")


def explain(exc: ValidationError, source: str, env_prefix: str = "") -> str:
    """Turn a pydantic error into one line per bad setting: its dotted name, where it may come from, what is wrong."""
    lines = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]) or "(top level)"
        given = (
            f" (got {redact(repr(err['input']))})" if not isinstance(err.get("input"), dict) and "input" in err else ""
        )
        msg = err["msg"].removeprefix("Value error, ")
        where = f"{source}" + (f" or {env_prefix}{name.split('.')[0].upper()}" if env_prefix else "")
        lines.append(f"setting {name!r} in {where}: {msg}{given}")
    return "bad settings:\n  " + "\n  ".join(lines)


def starter_config(origin: str, workdir: Path, branch: str = "main") -> str:
    """The swarm.toml `swarm init` writes: origin and workdir set, the rest commented with its defaults."""
    return f"""# Deployment settings of this swarm (see README: Configuration). SWARM_* variables override them.
origin = {json.dumps(origin)}
workdir = {json.dumps(str(workdir))}
branch = {json.dumps(branch)}
# redis_url = "redis://127.0.0.1:6379/0"   # required by workers; `swarm demo` starts its own
lease_ttl = 30
agent_timeout = 3600
max_attempts = 3

# One table per vendor; its name is the Celery queue: `celery -A swarm worker -Q <name>`. See README: Configuration.
# [vendors.claude]
# adapter = "claude"          # also: codex, gemini, command (any program), replay (the demo agent)
# concurrency = 2
# model = "sonnet"
# daily_cap_usd = 50
#
# [vendors.codex]
# adapter = "codex"
# concurrency = 2
"""


# --- repository settings: `.swarm.toml` at the root of the target repository, read from `main` ---

REPO_SETTINGS_FILE = ".swarm.toml"


class OracleSettings(BaseModel):
    """How to run the repository's oracle; its last stdout line is JSON with passed/failed/skipped."""

    model_config = ConfigDict(extra="forbid")

    fast: str = Field(min_length=1)
    """Shell command of the fast tier, run on every candidate before landing is tried."""
    full: str = Field(min_length=1)
    """Shell command of the full tier, run on the exact commit to land."""
    timeout: float = Field(900.0, gt=0)
    """Seconds one oracle run may take before its process group is killed."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment for the build and the harness; `{cache}` is replaced by the run's build cache folder."""
    runner: str = "json"
    """How to read the counts: json (its last JSON line), cargo, pytest, go, node, junit:<path>, generic or auto."""
    build: str | None = None
    """Shell command that builds the candidate and runs its own unit tests, in the build sandbox. When set, `fast`
    and `full` are the judge's harness, taken from main and run against the build's `artifacts`."""
    unit_runner: str | None = None
    """How to read the unit-test counts (area `unit`) from the build's output, as `runner` (e.g. cargo)."""
    artifacts: dict[str, str] = Field(default_factory=dict)
    """What the judge needs from the build: name -> file (relative to the tree, or under `{cache}`)."""
    harness: list[str] | None = None
    """Globs of the judge's files, always taken from main (default: the protected paths)."""

    @field_validator("runner", "unit_runner")
    @classmethod
    def _runner(cls, value: str | None) -> str | None:
        from swarm import runners

        return None if value is None else runners.check_name(value)


class RepoSettings(BaseModel):
    """What the swarm needs to know about the target repository."""

    model_config = ConfigDict(extra="forbid")

    backlog: str = "tasks"
    """Folder of task files."""
    prompt: str = "AGENT_PROMPT.md"
    """File whose text opens every agent prompt."""
    coalesce_prompt: str | None = None
    """Prompt of the clean-up agent, if the repository has one."""
    protected: list[str] = Field(default_factory=list)
    """Globs (`**` crosses folders) of paths agents may not change: the oracle and its expected results."""
    on_protected: Literal["restore", "reject"] = "restore"
    """What to do with an attempt that changed a protected path: put main's version back, or reject it."""
    oracle: OracleSettings

    def harness(self) -> list[str]:
        """Globs of the judge's files, taken from main for every verdict: `oracle.harness`, else the protected
        paths (with `.swarm.toml`, which names the oracle)."""
        if self.oracle.harness is not None:
            return list(self.oracle.harness)
        return [*self.protected, REPO_SETTINGS_FILE]

    @field_validator("backlog", "prompt", "coalesce_prompt")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip("/ ") or value.startswith("/") or ".." in Path(value).parts:
            raise ValueError(f"{value!r} must be a non-empty path inside the repository")
        return value.rstrip("/")


def parse_repo_settings(text: str, where: str) -> RepoSettings:
    """Parse `.swarm.toml`; `where` names its origin (e.g. `origin/main:.swarm.toml`) in any error."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{where}: not valid TOML: {exc}") from None
    try:
        return RepoSettings.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(explain(exc, source=where)) from None


# --- the inherited environment, for swarm.environ to compose child environments from ---


def inherited_environment() -> dict[str, str]:
    """A copy of this process's environment: what child environments are built from (see swarm.environ)."""
    return dict(os.environ)
