"""The environments handed to child processes: only what a tool needs, never the swarm's own secrets.

Built from the inherited environment that `settings.inherited_environment()` reads (the only reader of os.environ).
"""

from __future__ import annotations

import logging
from pathlib import Path

from swarm.settings import inherited_environment

log = logging.getLogger(__name__)

BASE_NAMES = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
              "RUSTUP_HOME")  # fmt: skip
"""RUSTUP_HOME: where an image (the Rust ones) installed the toolchains; without it rustup's cargo finds none.
CARGO_HOME is not passed: a build keeps its own (the judge's is fresh per run)."""


def child_env(pass_env: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """Base environment for agents and oracles: PATH, HOME, locale, plus the names asked for explicitly."""
    inherited = inherited_environment()
    env = {k: v for k, v in inherited.items() if k in BASE_NAMES or k.startswith("LC_")}
    env.update({k: inherited[k] for k in pass_env if k in inherited})
    return env


def agent_home_env(home: Path, name: str) -> dict[str, str]:
    """HOME of an agent is its worker slot's own folder (not the user's ~/.ssh and credentials), with the Rust
    toolchain still found where it is installed, and a git identity for the agent's own commits."""
    env = {"HOME": str(home), "GIT_AUTHOR_NAME": name, "GIT_COMMITTER_NAME": name}
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = f"{name.replace(' ', '-')}@swarm.invalid"
    env.update(toolchain_env())
    return env


def swarm_process_env(config: Path, redis_url: str) -> dict[str, str]:
    """The environment of the processes `swarm up` starts: this one's, with the deployment named explicitly
    (SWARM_CONFIG, SWARM_REDIS_URL) instead of any SWARM_* or FLOWER_* variable inherited by chance."""
    env = {k: v for k, v in inherited_environment().items() if not k.startswith(("SWARM_", "FLOWER_"))}
    env.update(SWARM_CONFIG=str(config.resolve()), SWARM_REDIS_URL=redis_url)
    return env


def toolchain_env(names: tuple[str, ...] = ("RUSTUP_HOME", "CARGO_HOME")) -> dict[str, str]:
    """Where installed toolchains live (a rustup proxy needs RUSTUP_HOME to find its toolchain)."""
    inherited = inherited_environment()
    real_home = Path(inherited.get("HOME") or Path.home())
    env = {}
    for var in names:
        default = real_home / ("." + var.removesuffix("_HOME").lower())
        value = inherited.get(var) or (str(default) if default.exists() else "")
        if value:
            env[var] = value
    return env
