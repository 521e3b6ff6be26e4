"""Which login a vendor CLI will use, and how a logged-in credentials file is shared by the worker slots.

The methods, in order of precedence: an API key, a subscription or OAuth token in a variable, a cloud provider
(Vertex) named through `pass_env`, then the credentials file a `<cli> login` left in the user's config folder.
A credentials file is never copied: each slot's config folder gets a symlink to the one file, so a refreshed token
is seen by every slot (copies would split single-use refresh tokens). A CLI that replaces the link by a newer file
of its own (an atomic rewrite) has that file moved back over the shared one before the next run.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoginSpec:
    """The logins one CLI understands."""

    key_var: str
    """The variable the CLI reads its API key from."""
    token_vars: tuple[str, ...] = ()
    """Variables holding a subscription/OAuth token (e.g. CLAUDE_CODE_OAUTH_TOKEN from `claude setup-token`)."""
    cloud_vars: tuple[str, ...] = ()
    """Variables that switch the CLI to a cloud provider (its own credentials then come through pass_env)."""
    config_dir_var: str = ""
    """The CLI's config folder variable (CLAUDE_CONFIG_DIR, CODEX_HOME, GEMINI_CLI_HOME)."""
    default_dir: str = ""
    """The config folder under HOME when that variable is unset (.claude, .codex, .gemini)."""
    credentials: str = ""
    """The credentials file a login writes, relative to the config folder."""


@dataclass(frozen=True)
class Login:
    """The login a run will use: what doctor reports, the variables it adds, the file it links."""

    method: str
    detail: str
    env: dict[str, str] = field(default_factory=dict)
    shared_file: Path | None = None


def find(spec: LoginSpec, key_env: str, env: Mapping[str, str]) -> Login | None:
    """The login `env` (the swarm's variables the CLI may see, plus the key variable) provides, or None."""
    if env.get(key_env):
        return Login("api key", f"API key from {key_env}", {spec.key_var: env[key_env]})
    for var in spec.token_vars:
        if env.get(var):
            return Login("token", f"subscription/OAuth token from {var}", {var: env[var]})
    for var in spec.cloud_vars:
        if env.get(var, "").lower() in ("1", "true", "yes"):
            return Login("cloud", f"cloud provider via {var}={env[var]} (credentials through pass_env)")
    source = credentials_file(spec, env)
    if source is not None and source.is_file():
        return Login("credentials file", f"logged-in credentials {source} (linked into each slot)", shared_file=source)
    return None


def credentials_file(spec: LoginSpec, env: Mapping[str, str]) -> Path | None:
    """Where the user's `<cli> login` keeps its credentials (the swarm's own config folder, not a slot's)."""
    if not spec.credentials:
        return None
    if env.get(spec.config_dir_var):
        return Path(env[spec.config_dir_var]) / spec.credentials
    home = env.get("HOME")
    return Path(home) / spec.default_dir / spec.credentials if home else None


def missing(spec: LoginSpec, key_env: str, vendor: str) -> str:
    """What to set when no login was found, naming every method this CLI has."""
    ways = [f"export {key_env}"]
    ways += [f"export {v} (a subscription token)" for v in spec.token_vars]
    ways += [f"pass {v}=true and the cloud credentials through vendors.{vendor}.pass_env" for v in spec.cloud_vars]
    if spec.credentials:
        ways.append(f"log in once so that ~/{spec.default_dir}/{spec.credentials} exists")
    return "no login found: " + "; or ".join(ways)


def share(source: Path, link: Path) -> None:
    """Make `link` a symlink to the one credentials file `source`, keeping a newer token the CLI wrote at `link`."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        if Path(os.readlink(link)) == source:
            return
        link.unlink()
    elif link.exists():
        if link.stat().st_mtime > source.stat().st_mtime:
            _replace(link, source)  # the CLI refreshed the token in place of our link: that token is the live one
            log.info("kept the refreshed credentials of %s in %s", link, source)
        else:
            link.unlink()
    link.symlink_to(source)


def _replace(newer: Path, shared: Path) -> None:
    """Put `newer` in place of `shared` atomically, keeping the shared file's owner-only mode."""
    tmp = shared.with_name(f".{shared.name}.swarm-tmp")
    shutil.copyfile(newer, tmp)
    os.chmod(tmp, 0o600)
    os.replace(tmp, shared)
    newer.unlink()
